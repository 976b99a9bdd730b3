//! The connection over stdin/stdout (inetd, systemd `Accept=yes` with
//! `StandardInput=socket`, `rpyc.classic.connect_subproc`).
//!
//! The protocol gets private duplicates of fds 0 and 1, and fds 0 and 1
//! themselves are pointed at /dev/null: a `print()` in client code, or a
//! stray write from a C extension, must never reach the client's stream.
//! fd 2 gets the same treatment when it is a socket, since inetd passes the
//! client's socket as 0, 1 and 2.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::stat::{fstat, SFlag};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};

pub struct Stdio {
    pub reader: File,
    pub writer: File,
    /// Another handle on the input, to shut a socket down and wake a reader.
    pub closer: OwnedFd,
}

fn is_socket(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    fstat(fd)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
}

/// Whether fd 2 may be the client's stream, so that nothing may be logged
/// there: a socket that is not the journal's.
pub fn stderr_is_unsafe() -> bool {
    is_socket(io::stderr().as_fd()) && !crate::daemon::log::stderr_is_journal()
}

/// How log lines name the client: its address when stdin is a socket.
pub fn peer_name(input: &std::fs::File) -> String {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    match getpeername::<SockaddrStorage>(input.as_raw_fd()) {
        Ok(addr) => match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(v4), _) => format!("[{}]:{}", v4.ip(), v4.port()),
            (_, Some(v6)) => format!("[{}]:{}", v6.ip(), v6.port()),
            _ => "stdio".into(),
        },
        Err(_) => "stdio".into(),
    }
}

/// In stdio mode a process serves one connection: a SIGHUP meant for the
/// daemons' logfiles (logrotate's `pkill -HUP`) must not end it.
pub fn ignore_hangups() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installs the ignore disposition, no handler code.
    let _ = unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) };
}

/// Takes fds 0 and 1 for the protocol (see the module comment).
pub fn take() -> io::Result<Stdio> {
    let input = io::stdin().as_fd().try_clone_to_owned()?;
    let output = io::stdout().as_fd().try_clone_to_owned()?;
    let closer = input.try_clone()?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup2_stdin(&null)?;
    dup2_stdout(&null)?;
    if stderr_is_unsafe() {
        dup2_stderr(&null)?;
    }
    Ok(Stdio {
        reader: File::from(input),
        writer: File::from(output),
        closer,
    })
}

/// Shuts a socket down so a reader blocked on it wakes; a no-op for pipes.
pub fn shutdown(fd: &OwnedFd, how: std::net::Shutdown) {
    use nix::sys::socket::Shutdown;
    let how = match how {
        std::net::Shutdown::Read => Shutdown::Read,
        std::net::Shutdown::Write => Shutdown::Write,
        std::net::Shutdown::Both => Shutdown::Both,
    };
    let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), how);
}
