//! The registry's sockets: one it binds (UDP or TCP, as `-m` says), or the
//! ones systemd passes (`LISTEN_FDS`), which must be of the mode's kind:
//! datagram sockets for UDP, listening stream sockets for TCP.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::socket::SockaddrStorage;
use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike};

use crate::daemon::listener::{resolve, Listener};
use crate::registry::Transport;

/// rpyc's TCP registry listens with a backlog of 10; a concurrent server
/// can afford more before connections are refused.
const TCP_BACKLOG: u32 = 128;

pub enum Sockets {
    Udp(Vec<UdpSocket>),
    Tcp(Vec<TcpListener>),
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("cannot use the sockets systemd passed: {0}")]
    Inherit(io::Error),
    #[error(
        "systemd passed fd {fd}, {found}, but -m {mode} needs {wanted}; \
         fix the .socket unit or the mode"
    )]
    WrongKind {
        fd: i32,
        found: &'static str,
        mode: &'static str,
        wanted: &'static str,
    },
}

impl Sockets {
    /// The sockets systemd passed, if it passed any.
    pub fn from_systemd(mode: Transport) -> Result<Option<Sockets>, SocketError> {
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Ok(None);
        }
        let mut sockets = match mode {
            Transport::Udp => Sockets::Udp(Vec::new()),
            Transport::Tcp => Sockets::Tcp(Vec::new()),
        };
        for index in 0..fds.len() {
            let Some(raw) = fds.take_raw_fd(index).map_err(SocketError::Inherit)? else {
                continue;
            };
            // SAFETY: systemd hands these descriptors to us and to nobody
            // else; listenfd gives each out once.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            set_cloexec(fd.as_fd()).map_err(SocketError::Inherit)?;
            let kind = kind_of(fd.as_fd());
            match (&mut sockets, kind) {
                (Sockets::Udp(list), Kind::Datagram) => list.push(UdpSocket::from(fd)),
                (Sockets::Tcp(list), Kind::Listening) => list.push(TcpListener::from(fd)),
                (_, found) => {
                    return Err(SocketError::WrongKind {
                        fd: raw,
                        found: found.describe(),
                        mode: mode.name(),
                        wanted: match mode {
                            Transport::Udp => "an IP datagram socket (ListenDatagram=)",
                            Transport::Tcp => {
                                "a listening IP stream socket (ListenStream=, Accept=no)"
                            }
                        },
                    })
                }
            }
        }
        Ok(Some(sockets))
    }

    /// Binds the first address of the requested family, as rpyc's
    /// `getaddrinfo(...)[0]` does.
    pub fn bind(
        host: &str,
        port: u16,
        ipv6: bool,
        transport: Transport,
    ) -> Result<Sockets, SocketError> {
        let bind_error = |source| SocketError::Bind {
            address: format!("[{host}]:{port}"),
            source,
        };
        let addr = resolve(host, port, ipv6).map_err(bind_error)?;
        match transport {
            Transport::Udp => Ok(Sockets::Udp(vec![
                UdpSocket::bind(addr).map_err(bind_error)?
            ])),
            Transport::Tcp => match Listener::bind_tcp(addr, TCP_BACKLOG).map_err(bind_error)? {
                Listener::Tcp(listener) => Ok(Sockets::Tcp(vec![listener])),
                Listener::Unix(..) => Err(bind_error(io::Error::other("bound a Unix socket"))),
            },
        }
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Sockets::Udp(list) => list.iter().filter_map(|s| s.local_addr().ok()).collect(),
            Sockets::Tcp(list) => list.iter().filter_map(|s| s.local_addr().ok()).collect(),
        }
    }

    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        match self {
            Sockets::Udp(list) => list.iter().map(AsFd::as_fd).collect(),
            Sockets::Tcp(list) => list.iter().map(AsFd::as_fd).collect(),
        }
    }

    pub fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Sockets::Udp(list) => list.iter().try_for_each(|s| s.set_nonblocking(true)),
            Sockets::Tcp(list) => list.iter().try_for_each(|s| s.set_nonblocking(true)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Datagram,
    Listening,
    Connected,
    Local,
    Other,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Datagram => "a datagram socket",
            Kind::Listening => "a listening stream socket",
            Kind::Connected => "a connected stream socket (Accept=yes?)",
            Kind::Local => "a Unix socket",
            Kind::Other => "not an IP datagram or stream socket",
        }
    }
}

fn kind_of(fd: BorrowedFd<'_>) -> Kind {
    let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|addr| addr.family());
    match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {}
        Some(AddressFamily::Unix) => return Kind::Local,
        _ => return Kind::Other,
    }
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Datagram) => Kind::Datagram,
        Ok(SockType::Stream) if getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) => {
            Kind::Listening
        }
        Ok(SockType::Stream) => Kind::Connected,
        _ => Kind::Other,
    }
}

fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_sockets_are_told_apart() {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        assert_eq!(kind_of(udp.as_fd()), Kind::Datagram);
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        assert_eq!(kind_of(tcp.as_fd()), Kind::Listening);
        let addr = tcp.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(addr).expect("connect");
        assert_eq!(kind_of(client.as_fd()), Kind::Connected);
        let (unix, _) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(kind_of(unix.as_fd()), Kind::Local);
    }
}
