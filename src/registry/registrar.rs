//! The registrar: `rpyc-classic --register` announcing itself to a registry
//! (rpyc 6.0.2 `Server._bg_register` with `UDPRegistryClient` /
//! `TCPRegistryClient`): register, re-register every 60 s once
//! acknowledged, retry every second until then, unregister on a clean stop.
//!
//! rpyc runs this in a thread. Here it is a state machine the server's poll
//! loop drives, never blocking: in forking mode that loop's thread must be
//! the process's only thread, or a fork could copy a lock held mid-way.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};

use crate::daemon::log::Logger;
use crate::protocol::registry::{is_ok_reply, Request, MAX_MESSAGE};
use crate::registry::Transport;

/// rpyc's RegistryClient.REREGISTER_INTERVAL.
pub const REREGISTER_INTERVAL: Duration = Duration::from_secs(60);
/// How soon to try again after a failure (rpyc's `tnext = t + 1`).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait for the registry's "OK" (rpyc's client timeout).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

enum State {
    Waiting {
        until: Instant,
    },
    UdpSent {
        socket: UdpSocket,
        deadline: Instant,
    },
    TcpConnecting {
        stream: TcpStream,
        deadline: Instant,
    },
    TcpSent {
        stream: TcpStream,
        deadline: Instant,
    },
}

pub struct Registrar {
    transport: Transport,
    registry: SocketAddr,
    /// The server's own address: registrations leave from it, so the
    /// registry records the address clients should connect to.
    interface: IpAddr,
    aliases: Vec<String>,
    port: u16,
    log: Logger,
    state: State,
    registered: bool,
}

/// What the poll loop should wait for on the registrar's behalf.
pub struct Interest<'a> {
    pub fd: BorrowedFd<'a>,
    pub writable: bool,
}

impl Registrar {
    pub fn new(
        transport: Transport,
        registry: SocketAddr,
        interface: IpAddr,
        aliases: Vec<String>,
        port: u16,
        log: Logger,
    ) -> Registrar {
        Registrar {
            transport,
            registry,
            interface,
            aliases,
            port,
            log,
            state: State::Waiting {
                until: Instant::now(),
            },
            registered: false,
        }
    }

    /// The socket to poll, if a registration is in flight.
    pub fn interest(&self) -> Option<Interest<'_>> {
        match &self.state {
            State::Waiting { .. } => None,
            State::UdpSent { socket, .. } => Some(Interest {
                fd: socket.as_fd(),
                writable: false,
            }),
            State::TcpConnecting { stream, .. } => Some(Interest {
                fd: stream.as_fd(),
                writable: true,
            }),
            State::TcpSent { stream, .. } => Some(Interest {
                fd: stream.as_fd(),
                writable: false,
            }),
        }
    }

    /// When the registrar next needs the loop, readable socket or not.
    pub fn deadline(&self) -> Instant {
        match &self.state {
            State::Waiting { until } => *until,
            State::UdpSent { deadline, .. }
            | State::TcpConnecting { deadline, .. }
            | State::TcpSent { deadline, .. } => *deadline,
        }
    }

    /// Moves on: called when the deadline passed or the socket is ready.
    pub fn advance(&mut self) {
        let now = Instant::now();
        let state = std::mem::replace(&mut self.state, State::Waiting { until: now });
        self.state = match state {
            State::Waiting { until } if now < until => State::Waiting { until },
            State::Waiting { .. } => self.start(now),
            State::UdpSent { socket, deadline } => match self.udp_reply(&socket) {
                Some(true) => self.acknowledged(now),
                Some(false) | None if now < deadline => State::UdpSent { socket, deadline },
                _ => self.failed(now, "no registry acknowledged"),
            },
            State::TcpConnecting { stream, deadline } => match stream.take_error() {
                Ok(None) if is_connected(&stream) => match self.send_tcp(stream, deadline) {
                    Ok(next) => next,
                    Err(error) => self.failed(now, &format!("could not send to registry: {error}")),
                },
                Ok(None) if now < deadline => State::TcpConnecting { stream, deadline },
                Ok(None) => self.failed(now, "could not connect to registry: timed out"),
                Ok(Some(error)) | Err(error) => {
                    self.failed(now, &format!("could not connect to registry: {error}"))
                }
            },
            State::TcpSent {
                mut stream,
                deadline,
            } => {
                let mut reply = [0u8; MAX_MESSAGE];
                match stream.read(&mut reply) {
                    Ok(n) if is_ok_reply(&reply[..n]) => {
                        self.log
                            .info(format_args!("registry {} acknowledged", self.registry));
                        self.acknowledged(now)
                    }
                    Ok(_) => self.failed(now, "registry did not acknowledge"),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock && now < deadline => {
                        State::TcpSent { stream, deadline }
                    }
                    Err(_) => self.failed(now, "registry did not acknowledge"),
                }
            }
        };
    }

    fn start(&mut self, now: Instant) -> State {
        self.log
            .info(format_args!("registering on {}", self.registry));
        let started = match self.transport {
            Transport::Udp => self.send_udp(now),
            Transport::Tcp => self.connect_tcp(now),
        };
        started.unwrap_or_else(|error| {
            self.failed(now, &format!("cannot reach the registry: {error}"))
        })
    }

    fn request(&self) -> io::Result<Vec<u8>> {
        Request::Register {
            aliases: self.aliases.clone(),
            port: self.port,
        }
        .encode()
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))
    }

    /// An unbound UDP socket, allowed to broadcast when the registry
    /// address is a broadcast one (rpyc's default). rpyc binds it to the
    /// server's address; here the address rides on each datagram instead
    /// (`send_from`), so that the registrar needs no bind(): the units deny
    /// bind() to the code they run, and the first send binds the socket to
    /// an ephemeral port, which is all a reply needs.
    fn udp_socket(&self) -> io::Result<UdpSocket> {
        let family = match self.registry {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd: OwnedFd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
        let socket = UdpSocket::from(fd);
        if is_broadcast(self.registry.ip()) {
            socket.set_broadcast(true)?;
        }
        Ok(socket)
    }

    /// Sends `datagram` to the registry from the server's own address, as
    /// rpyc's bind((interface, 0)) does: the registry records the address a
    /// datagram comes from. IP_PKTINFO / IPV6_PKTINFO pick that source
    /// address, and the route with it, for this datagram alone.
    fn send_from(&self, socket: &UdpSocket, datagram: &[u8]) -> io::Result<()> {
        let source = self.interface_for_family();
        if source.is_unspecified() {
            return socket.send_to(datagram, self.registry).map(drop);
        }
        let iov = [IoSlice::new(datagram)];
        let sent = match (source, self.registry) {
            (IpAddr::V4(source), SocketAddr::V4(to)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(source).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                sendmsg(
                    socket.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&SockaddrIn::from(to)),
                )
            }
            (IpAddr::V6(source), SocketAddr::V6(to)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: source.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                sendmsg(
                    socket.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&SockaddrIn6::from(to)),
                )
            }
            // interface_for_family() answers in the registry's family
            _ => return socket.send_to(datagram, self.registry).map(drop),
        };
        sent.map(drop).map_err(io::Error::from)
    }

    fn send_udp(&self, now: Instant) -> io::Result<State> {
        let socket = self.udp_socket()?;
        socket.set_nonblocking(true)?;
        self.send_from(&socket, &self.request()?)?;
        Ok(State::UdpSent {
            socket,
            deadline: now + REPLY_TIMEOUT,
        })
    }

    /// `Some(true)`: acknowledged; `Some(false)`: a datagram that is not
    /// the registry's OK; `None`: nothing (more) to read yet.
    fn udp_reply(&self, socket: &UdpSocket) -> Option<bool> {
        let mut reply = [0u8; MAX_MESSAGE];
        let mut seen = None;
        while let Ok((n, from)) = socket.recv_from(&mut reply) {
            // rpyc's client takes answers only from the registry's port
            if from.port() == self.registry.port() && is_ok_reply(&reply[..n]) {
                self.log.info(format_args!(
                    "registry {}:{} acknowledged",
                    from.ip(),
                    from.port()
                ));
                return Some(true);
            }
            seen = Some(false);
        }
        seen
    }

    /// A TCP connection to the registry from the server's own address. The
    /// route to the registry usually picks that address by itself (always,
    /// for a loopback server and registry), so the first try connects
    /// without bind(), which the units deny; only when the kernel picked
    /// another source address does it bind as rpyc does and try again.
    fn connect_tcp(&self, now: Instant) -> io::Result<State> {
        let source = self.interface_for_family();
        let stream = self.tcp_connect(None)?;
        let picked = stream.local_addr()?.ip();
        let stream = if source.is_unspecified() || picked == source {
            stream
        } else {
            drop(stream);
            self.tcp_connect(Some(source))?
        };
        Ok(State::TcpConnecting {
            stream,
            deadline: now + REPLY_TIMEOUT,
        })
    }

    /// A non-blocking connect() to the registry, from `source` if given.
    fn tcp_connect(&self, source: Option<IpAddr>) -> io::Result<TcpStream> {
        let family = match self.registry {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd: OwnedFd = socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        match source.map(|ip| SocketAddr::new(ip, 0)) {
            Some(SocketAddr::V4(v4)) => {
                nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?
            }
            Some(SocketAddr::V6(v6)) => {
                nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?
            }
            None => {}
        }
        let connected = match self.registry {
            SocketAddr::V4(v4) => connect(fd.as_raw_fd(), &SockaddrIn::from(v4)),
            SocketAddr::V6(v6) => connect(fd.as_raw_fd(), &SockaddrIn6::from(v6)),
        };
        match connected {
            Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
            Err(error) => Err(error.into()),
        }
    }

    fn send_tcp(&self, mut stream: TcpStream, deadline: Instant) -> io::Result<State> {
        // one small write into an empty socket buffer: it goes out whole
        stream.write_all(&self.request()?)?;
        Ok(State::TcpSent { stream, deadline })
    }

    fn interface_for_family(&self) -> IpAddr {
        match (self.interface, self.registry) {
            (IpAddr::V4(_), SocketAddr::V4(_)) | (IpAddr::V6(_), SocketAddr::V6(_)) => {
                self.interface
            }
            (_, SocketAddr::V4(_)) => IpAddr::from([0, 0, 0, 0]),
            (_, SocketAddr::V6(_)) => IpAddr::from([0u16; 8]),
        }
    }

    fn acknowledged(&mut self, now: Instant) -> State {
        self.registered = true;
        State::Waiting {
            until: now + REREGISTER_INTERVAL,
        }
    }

    fn failed(&mut self, now: Instant, why: &str) -> State {
        self.log.warning(format_args!("{why}"));
        self.log
            .info(format_args!("registering services did not work - retry"));
        State::Waiting {
            until: now + RETRY_INTERVAL,
        }
    }

    /// On a clean stop: tell the registry we are gone (best effort, bounded).
    pub fn unregister(&mut self) {
        if !self.registered {
            return;
        }
        self.log
            .info(format_args!("unregistering from {}", self.registry));
        let request = Request::Unregister { port: self.port }.encode();
        let Ok(request) = request else { return };
        let sent = match self.transport {
            Transport::Udp => self
                .udp_socket()
                .and_then(|socket| self.send_from(&socket, &request)),
            Transport::Tcp => {
                TcpStream::connect_timeout(&self.registry, REPLY_TIMEOUT).and_then(|mut stream| {
                    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
                    stream.write_all(&request)?;
                    // wait for the OK so the registry has it before we go
                    let mut reply = [0u8; 64];
                    stream.read(&mut reply).map(drop)
                })
            }
        };
        if let Err(error) = sent {
            self.log
                .warning(format_args!("could not unregister: {error}"));
        }
        self.registered = false;
    }
}

fn is_connected(stream: &TcpStream) -> bool {
    stream.peer_addr().is_ok()
}

fn is_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.octets()[3] == 255,
        IpAddr::V6(_) => false,
    }
}
