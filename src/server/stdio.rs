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

fn inet(addr: &nix::sys::socket::SockaddrStorage) -> Option<std::net::SocketAddr> {
    match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
        (Some(v4), _) => Some(std::net::SocketAddr::V4((*v4).into())),
        (_, Some(v6)) => Some(std::net::SocketAddr::V6((*v6).into())),
        _ => None,
    }
}

/// Whether input and output are one socket (inetd's, `Accept=yes`'s), not
/// pipes or two different things.
fn one_socket(input: &File, output: &File) -> bool {
    let same_file = match (fstat(input.as_fd()), fstat(output.as_fd())) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    same_file && is_socket(input.as_fd())
}

/// How log lines name the client: its address when stdin is a TCP socket.
pub fn peer_name(input: &File) -> String {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    match getpeername::<SockaddrStorage>(input.as_raw_fd())
        .ok()
        .as_ref()
        .and_then(inet)
    {
        Some(addr) => format!("[{}]:{}", addr.ip(), addr.port()),
        None => "stdio".into(),
    }
}

/// `(ours, theirs)` when stdin is a TCP socket (inetd, `Accept=yes`).
pub fn endpoints(input: &File) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    use nix::sys::socket::{getpeername, getsockname, SockaddrStorage};
    let fd = input.as_raw_fd();
    let ours = inet(&getsockname::<SockaddrStorage>(fd).ok()?)?;
    let theirs = inet(&getpeername::<SockaddrStorage>(fd).ok()?)?;
    Some((ours, theirs))
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

/// The input with a read timeout, which a pipe cannot have
/// (`SO_RCVTIMEO` is for sockets): a read waits in poll() for at most
/// `timeout`, then fails with `TimedOut`, as a socket's timed-out read
/// does. The connection's idle clock and its wait for replies tick on it.
pub struct TimedReader {
    input: File,
    timeout: Option<std::time::Duration>,
}

impl TimedReader {
    pub fn new(input: File, timeout: Option<std::time::Duration>) -> TimedReader {
        TimedReader { input, timeout }
    }
}

impl AsFd for TimedReader {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.input.as_fd()
    }
}

impl io::Read for TimedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if let Some(timeout) = self.timeout {
            let wait = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.input.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Err(io::ErrorKind::Interrupted.into()),
                Err(errno) => return Err(errno.into()),
            }
        }
        self.input.read(buf)
    }
}

/// Serves the one connection inetd (or a pipe) gives on stdin and stdout,
/// until it ends.
pub fn serve(context: &super::Context) -> io::Result<()> {
    ignore_hangups();
    let stdio = take()?;
    let peer = peer_name(&stdio.reader);
    let endpoints = endpoints(&stdio.reader);
    let closer = stdio.closer;
    let plain_socket = one_socket(&stdio.reader, &stdio.writer);
    let transport = super::transport::Transport {
        // a pipe has no SO_RCVTIMEO: poll() gives the idle clock its tick
        reader: Box::new(TimedReader::new(
            stdio.reader,
            context.config.read_timeout(),
        )),
        writer: Box::new(stdio.writer),
        shutdown: Box::new(move |how| shutdown(&closer, how)),
        plain_socket,
    };
    super::serve_transport(transport, peer, endpoints, context);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    #[test]
    fn a_quiet_pipe_times_out_and_a_written_one_reads() {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let mut reader = TimedReader::new(File::from(read_end), Some(Duration::from_millis(50)));
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let error = reader.read(&mut buf).expect_err("nothing written");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(40));
        let mut writer = File::from(write_end);
        writer.write_all(b"abc").expect("write");
        assert_eq!(reader.read(&mut buf).expect("read"), 3);
        assert_eq!(&buf[..3], b"abc");
        drop(writer);
        assert_eq!(reader.read(&mut buf).expect("eof"), 0);
    }
}
