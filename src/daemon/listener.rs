//! Where connections come from: sockets we bind (TCP v4/v6, Unix), or
//! sockets systemd passes (`LISTEN_FDS`), which may be listening sockets
//! (`Accept=no`) or one already-accepted connection (`Accept=yes`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::socket::{
    bind, getsockopt, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, UnixAddr,
};

/// A socket that connections are accepted from.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Option<PathBuf>),
}

/// What systemd passed us.
pub enum Inherited {
    Listeners(Vec<Listener>),
    /// `Accept=yes` without `StandardInput=socket`: one connection, as fd 3.
    Connection(Stream),
}

/// An accepted connection.
pub enum Stream {
    /// With whether anything was written since the last read, shared by
    /// the stream's clones (see `quick_ack`).
    Tcp(TcpStream, Arc<AtomicBool>),
    Unix(UnixStream),
}

impl Stream {
    pub fn tcp(stream: TcpStream) -> Stream {
        Stream::Tcp(stream, Arc::default())
    }
}

/// The first address `host` resolves to in the requested family, as
/// rpyc's servers take `getaddrinfo(...)[0]`.
pub fn resolve(host: &str, port: u16, ipv6: bool) -> io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()?
        .find(|addr| addr.is_ipv6() == ipv6)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                if ipv6 {
                    "the name has no IPv6 address"
                } else {
                    "the name has no IPv4 address (IPv6 needs --ipv6)"
                },
            )
        })
}

impl Listener {
    /// Binds a TCP socket with `SO_REUSEADDR` (so a restart does not wait
    /// out TIME_WAIT) and the given backlog.
    pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let family = if addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        // IPV6_V6ONLY is left at the system's default, as rpyc leaves it
        match addr {
            SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?,
            SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?,
        }
        listen(&fd, backlog_of(backlog)?)?;
        Ok(Listener::Tcp(TcpListener::from(fd)))
    }

    /// Binds a Unix stream socket at `path`. A socket left there by a
    /// server that died without removing it (nothing accepts on it) is
    /// removed first, as a restart after a crash needs; a socket something
    /// accepts on, and anything that is not a socket, are left alone.
    pub fn bind_unix(path: &Path, backlog: u32) -> io::Result<Listener> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let address = UnixAddr::new(path)?;
        match bind(fd.as_raw_fd(), &address) {
            Err(nix::errno::Errno::EADDRINUSE) => {
                remove_stale_socket(path)?;
                bind(fd.as_raw_fd(), &address)?;
            }
            other => other?,
        }
        listen(&fd, backlog_of(backlog)?)?;
        Ok(Listener::Unix(
            UnixListener::from(fd),
            Some(path.to_owned()),
        ))
    }

    /// The sockets systemd passed, if it passed any.
    pub fn from_systemd() -> io::Result<Option<Inherited>> {
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Ok(None);
        }
        let mut listeners = Vec::new();
        for index in 0..fds.len() {
            let Some(fd) = fds.take_raw_fd(index)? else {
                continue;
            };
            // SAFETY: systemd hands these descriptors to us and to nobody
            // else; listenfd gives each out once.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            set_cloexec(fd.as_fd())?;
            let accepting = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
            let unix = matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::Stream))
                && is_unix(fd.as_fd());
            if !accepting {
                if fds.len() != 1 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "systemd passed a connection among several sockets",
                    ));
                }
                return Ok(Some(Inherited::Connection(if unix {
                    Stream::Unix(UnixStream::from(fd))
                } else {
                    Stream::tcp(TcpStream::from(fd))
                })));
            }
            listeners.push(if unix {
                Listener::Unix(UnixListener::from(fd), None)
            } else {
                Listener::Tcp(TcpListener::from(fd))
            });
        }
        Ok(Some(Inherited::Listeners(listeners)))
    }

    /// How log lines name it: `[127.0.0.1]:18812`, `[::1]:18812`, a path.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("[{}]:{}", addr.ip(), addr.port()),
                Err(_) => "a TCP socket".into(),
            },
            Listener::Unix(listener, path) => match (path, listener.local_addr()) {
                (Some(path), _) => path.display().to_string(),
                (None, Ok(addr)) => match addr.as_pathname() {
                    Some(path) => path.display().to_string(),
                    None => "an unnamed Unix socket".into(),
                },
                (None, Err(_)) => "a Unix socket".into(),
            },
        }
    }

    /// The TCP port, for the logger's name (`SLAVE/18812`).
    pub fn port(&self) -> Option<u16> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok().map(|addr| addr.port()),
            Listener::Unix(..) => None,
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            Listener::Unix(listener, _) => listener.set_nonblocking(nonblocking),
        }
    }

    /// Accepts one connection; the stream is blocking whatever the listener is.
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                stream.set_nonblocking(false)?;
                // requests are small and latency-bound, as rpyc's are
                let _ = stream.set_nodelay(true);
                Ok((
                    Stream::tcp(stream),
                    format!("{}:{}", peer.ip(), peer.port()),
                ))
            }
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept()?;
                stream.set_nonblocking(false)?;
                Ok((Stream::Unix(stream), "unix".into()))
            }
        }
    }

    /// Removes a socket file we bound ourselves.
    pub fn remove_file(&self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(listener) => listener.as_raw_fd(),
            Listener::Unix(listener, _) => listener.as_raw_fd(),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(listener) => listener.as_fd(),
            Listener::Unix(listener, _) => listener.as_fd(),
        }
    }
}

impl Stream {
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(stream, wrote) => Stream::Tcp(stream.try_clone()?, wrote.clone()),
            Stream::Unix(stream) => Stream::Unix(stream.try_clone()?),
        })
    }

    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream, _) => stream.set_read_timeout(timeout),
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(stream, _) => stream.shutdown(how),
            Stream::Unix(stream) => stream.shutdown(how),
        }
    }

    /// `(ours, theirs)` for TCP, what rpyc's services find in
    /// `conn._config["endpoints"]`.
    pub fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        match self {
            Stream::Tcp(stream, _) => Some((stream.local_addr().ok()?, stream.peer_addr().ok()?)),
            Stream::Unix(_) => None,
        }
    }

    /// How log lines name the peer: `[127.0.0.1]:34044`.
    pub fn peer_name(&self) -> String {
        match self {
            Stream::Tcp(stream, _) => match stream.peer_addr() {
                Ok(addr) => name_of(addr),
                Err(_) => "[?]".into(),
            },
            Stream::Unix(_) => "unix".into(),
        }
    }
}

/// Whether `address` is one of this machine's (an interface has it, or
/// it is loopback).
pub fn is_local_address(address: std::net::IpAddr) -> bool {
    if address.is_loopback() {
        return true;
    }
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return false;
    };
    interfaces
        .filter_map(|interface| interface.address)
        .any(|found| {
            let found = match (found.as_sockaddr_in(), found.as_sockaddr_in6()) {
                (Some(v4), _) => std::net::IpAddr::V4(v4.ip()),
                (_, Some(v6)) => std::net::IpAddr::V6(v6.ip()),
                _ => return false,
            };
            found == address
        })
}

/// How log lines name a TCP peer: `[127.0.0.1]:34044`, `[::1]:34044`.
pub fn name_of(addr: SocketAddr) -> String {
    format!("[{}]:{}", addr.ip(), addr.port())
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream, _) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, wrote) => {
                if !wrote.swap(false, Ordering::Relaxed) {
                    quick_ack(stream);
                }
                stream.read(buf)
            }
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

/// Acknowledges what was read at once rather than after the delayed-ACK
/// timer (40 ms). rpyc's clients do not set TCP_NODELAY, so a client that
/// sends something we do not answer (a DEL, a callback's result) and then
/// its next request holds that request back until our ACK: with a delayed
/// ACK, each callback round cost 40 ms. Linux clears the flag as it acts
/// on it, so it is set again before a read that follows a read with
/// nothing written between (setting it sends an ACK that is due): after
/// a request that was answered, the answer carried the ACK, and a server
/// busy with pings and calls saves a system call per request.
fn quick_ack(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket we own, with a valid int.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, wrote) => {
                wrote.store(true, Ordering::Relaxed);
                stream.write(buf)
            }
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, wrote) => {
                wrote.store(true, Ordering::Relaxed);
                stream.write_vectored(bufs)
            }
            Stream::Unix(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn backlog_of(backlog: u32) -> io::Result<Backlog> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // the kernel caps it at net.core.somaxconn anyway
    Backlog::new(backlog.min(Backlog::MAXCONN.into())).map_err(io::Error::from)
}

fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Removes the Unix socket at `path` if nothing accepts on it; an error
/// that says why not otherwise.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let in_use = |why: String| io::Error::new(io::ErrorKind::AddrInUse, why);
    let kind = std::fs::symlink_metadata(path)?.file_type();
    if !kind.is_socket() {
        return Err(in_use(format!(
            "{} exists and is not a socket; it is left alone",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use(format!(
            "{}: another server accepts connections on it",
            path.display()
        ))),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)
        }
        Err(error) => Err(error),
    }
}

fn is_unix(fd: BorrowedFd<'_>) -> bool {
    matches!(
        nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd.as_raw_fd()),
        Ok(addr) if nix::sys::socket::SockaddrLike::family(&addr) == Some(AddressFamily::Unix)
    )
}
