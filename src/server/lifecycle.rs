//! One connection from accept to goodbye: its transport, the greeting
//! guard, its session's start and end, and their log lines.

use super::proxy::{Peer, RefuseHeader, Refused};
use super::*;
use crate::protocol::message::RemoteException;
use transport::Authenticated;

/// The transport of an accepted stream: reads time out at the idle
/// timeout or the sync-request timeout, whichever is shorter (the idle
/// clock's tick, and when a reader waiting for a reply gives up).
pub fn stream_transport(stream: Stream, config: &Config) -> std::io::Result<Transport> {
    Transport::of_stream(stream, config.read_timeout())
}

/// Serves the one connection systemd accepted for us (`Accept=yes`) in
/// this thread, from welcome to goodbye.
pub fn serve_accepted(stream: Stream, context: &Context) -> std::io::Result<()> {
    let Some(who) = identify(&stream, context) else {
        return Ok(());
    };
    let transport = who.guard(stream_transport(stream, &context.config)?);
    serve_transport(transport, who.peer, who.endpoints, context);
    Ok(())
}

/// Who a connection is from, as its log lines and its service see it.
struct Identified {
    peer: String,
    endpoints: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// From an address that may not send a PROXY header: its first bytes
    /// are watched for one.
    watch_for_header: bool,
}

impl Identified {
    fn guard(&self, mut transport: Transport) -> Transport {
        if self.watch_for_header {
            transport.reader = Box::new(RefuseHeader::new(transport.reader));
        }
        transport
    }
}

/// The peer's name and addresses: its own, or, when its address is one
/// `--proxy-protocol-from` lists, the client's its PROXY header names
/// (read here, in the connection's thread). `None`: refused, and logged.
fn identify(stream: &Stream, context: &Context) -> Option<Identified> {
    let peer = stream.peer_name();
    let endpoints = stream.endpoints();
    let (Some(policy), Some((_, theirs))) = (&context.proxy, endpoints) else {
        return Some(Identified {
            peer,
            endpoints,
            watch_for_header: false,
        });
    };
    if !policy.trusts(theirs.ip()) {
        return Some(Identified {
            peer,
            endpoints,
            watch_for_header: true,
        });
    }
    match policy.receive(stream) {
        Ok(Peer::Proxied {
            source,
            destination,
        }) => {
            let client = crate::daemon::listener::name_of(source);
            context
                .log
                .limited(Flood::Accepted)
                .info(format_args!("accepted {client} through the proxy {peer}"));
            Some(Identified {
                peer: client,
                endpoints: Some((destination, source)),
                watch_for_header: false,
            })
        }
        Ok(Peer::Balancer) => Some(Identified {
            peer,
            endpoints,
            watch_for_header: false,
        }),
        Err(Refused::Silent) => {
            context
                .log
                .limited(Flood::Disconnected)
                .info(format_args!("{peer} closed without sending anything"));
            None
        }
        Err(why) => {
            context
                .log
                .limited(Flood::Authentication)
                .warning(format_args!("refusing {peer}: it {why}"));
            let _ = stream.shutdown(std::net::Shutdown::Both);
            None
        }
    }
}

/// Serves a connection made outside the server's loop (`Accept=yes`,
/// stdio) in this thread, from welcome to goodbye.
pub fn serve_transport(
    transport: Transport,
    peer: String,
    endpoints: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    context: &Context,
) {
    if let Some((conn, info)) = connect(transport, peer, endpoints, context) {
        guard_greeting(&conn, context.greeting_timeout, &context.log);
        serve_connection(&conn, &info, context);
    }
}

/// For a connection served outside the server's loop (a forked child,
/// stdio, `Accept=yes`): closes it if its peer sends no whole first
/// message in time.
pub fn guard_greeting(conn: &Arc<Connection>, timeout: Duration, log: &Logger) {
    let conn = Arc::downgrade(conn);
    let log = log.clone();
    let _ = std::thread::Builder::new()
        .name("greeting".into())
        .spawn(move || {
            std::thread::sleep(timeout);
            if let Some(conn) = conn.upgrade() {
                if conn.greeting_deadline(timeout).is_some() {
                    log.limited(Flood::Disconnected).warning(format_args!(
                        "closing a connection that sent no whole message within {timeout:?}"
                    ));
                    conn.close();
                }
            }
        });
}

/// Authenticates a transport if the server asks for it and makes the
/// connection, with what the service may know of the peer; a refusal is
/// logged and ends here.
pub fn connect(
    transport: Transport,
    peer: String,
    endpoints: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    context: &Context,
) -> Option<(Arc<Connection>, PeerInfo)> {
    let authenticated = match &context.auth {
        None => Authenticated::nothing_yet(transport),
        Some(auth) => match auth.authenticate(transport) {
            Ok(authenticated) => authenticated,
            Err(refusal) => {
                context
                    .log
                    .limited(Flood::Authentication)
                    .warning(format_args!("{peer} failed to authenticate: {refusal}"));
                return None;
            }
        },
    };
    let Authenticated {
        transport,
        credentials,
        certificate,
        granted,
        ..
    } = authenticated;
    // a plain socket's first bytes can be looked at: the envelope of a
    // client to whom the service speaks first (see learn_dialect)
    let first_bytes = match transport.plain_socket {
        true => transport.reader.as_fd().try_clone_to_owned().ok(),
        false => None,
    };
    let conn = Connection::new(
        transport::into_reader(transport.reader),
        transport.writer,
        transport.shutdown,
        config_for(&peer, context),
    );
    if let Some(fd) = first_bytes {
        conn.set_peek(peek_at(fd));
    }
    let info = PeerInfo {
        name: peer,
        credentials,
        certificate,
        endpoints,
        granted,
    };
    Some((conn, info))
}

/// Looks at what has come on a socket without taking it, waiting for
/// something up to the time given (0 bytes: nothing came).
fn peek_at(fd: std::os::fd::OwnedFd) -> crate::connection::Peek {
    use nix::sys::socket::{recv, MsgFlags};
    Box::new(move |buf, wait| {
        let millis = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut ready = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut ready, PollTimeout::from(millis))? == 0 {
            return Ok(0);
        }
        Ok(recv(
            fd.as_raw_fd(),
            buf,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        )?)
    })
}

/// The server's connection configuration, with the peer's request
/// exceptions logged at debug level when the log shows them (rpyc's
/// `log_exceptions`: "Exception caught", with the traceback).
fn config_for(peer: &str, context: &Context) -> Config {
    let mut config = context.config.clone();
    if config.exceptions.log_exceptions && context.log.logs(crate::daemon::log::Level::Debug) {
        let log = context.log.clone();
        let peer = peer.to_owned();
        config.exceptions.log = Some(Arc::new(move |handler, exception| {
            let text = match exception {
                // rpyc logs every exception but StopIteration, which ends
                // an iteration rather than reports a fault
                RemoteException::StopIteration => return,
                RemoteException::Text(text) => text.as_str(),
                RemoteException::Raised(info) => info.traceback.trim_end(),
            };
            log.limited(Flood::RequestException).debug(format_args!(
                "Exception caught serving {handler:?} for {peer}: {text}"
            ));
        }));
    }
    config
}

/// `connect` over an accepted stream.
pub(super) fn open(stream: Stream, context: &Context) -> Option<(Arc<Connection>, PeerInfo)> {
    open_ticking(stream, context, context.config.read_timeout())
}

/// `connect` over an accepted stream whose reads time out at `tick` (at
/// most `Config::read_timeout`: the idle clock and sync-request deadlines
/// tick with it).
pub(super) fn open_ticking(
    stream: Stream,
    context: &Context,
    tick: Option<Duration>,
) -> Option<(Arc<Connection>, PeerInfo)> {
    open_wrapped(stream, context, tick, |transport| transport)
}

/// [`open_ticking`], with the transport passed through `wrap` before the
/// connection is made over it (a forked child watches its reads).
pub(super) fn open_wrapped(
    stream: Stream,
    context: &Context,
    tick: Option<Duration>,
    wrap: impl FnOnce(Transport) -> Transport,
) -> Option<(Arc<Connection>, PeerInfo)> {
    let who = identify(&stream, context)?;
    match Transport::of_stream(stream, tick) {
        Ok(transport) => connect(wrap(who.guard(transport)), who.peer, who.endpoints, context),
        Err(error) => {
            context.log.limited(Flood::Disconnected).error(format_args!(
                "cannot use the connection of {}: {error}",
                who.peer
            ));
            None
        }
    }
}

/// Serves one connection from welcome to goodbye.
pub fn serve_connection(conn: &Arc<Connection>, info: &PeerInfo, context: &Context) {
    if start_session(conn, info, context) {
        serve_session(conn, info, context, None);
    }
}

/// Gives a connection its session and welcomes the peer; whether it may
/// be served (a session that cannot start closes the connection).
pub(super) fn start_session(conn: &Arc<Connection>, info: &PeerInfo, context: &Context) -> bool {
    let log = &context.log;
    let peer = &info.name;
    match context.service.open(conn, info) {
        Ok(session) => conn.set_session(session),
        Err(error) => {
            log.error(format_args!("cannot start a session for {peer}: {error}"));
            conn.close();
            return false;
        }
    }
    match &info.credentials {
        Some(credentials) => log
            .limited(Flood::Welcome)
            .info(format_args!("welcome {peer} ({credentials})")),
        None => log
            .limited(Flood::Welcome)
            .info(format_args!("welcome {peer}")),
    }
    true
}

/// Serves a started session until goodbye, or with `quiet: Some(time)`
/// until the peer has been quiet that long and the session may go on in
/// another thread (`Served::Quiet`: the connection is still open).
pub(super) fn serve_session(
    conn: &Arc<Connection>,
    info: &PeerInfo,
    context: &Context,
    mut quiet: Option<Duration>,
) -> Served {
    let outcome = loop {
        match conn.serve_until_quiet(quiet) {
            Ok(Served::Quiet) if context.service.may_move() => return Served::Quiet,
            // the client's code keeps state in this thread: the session
            // stays with it to the end
            Ok(Served::Quiet) => quiet = None,
            Ok(Served::Ended) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    end_session(info, context, outcome);
    Served::Ended
}

/// Says goodbye to a session that ended with `outcome`, and tells the
/// service this thread is done with it.
pub(super) fn end_session(info: &PeerInfo, context: &Context, outcome: Result<(), ConnError>) {
    let log = &context.log;
    let peer = &info.name;
    match outcome {
        Ok(()) => {}
        Err(ConnError::Idle) => {
            log.limited(Flood::Disconnected).info(format_args!(
                "closing {peer}: idle for longer than --idle-timeout"
            ));
        }
        // a client that closes while replies to its last requests (the
        // DELs rpyc sends as it closes) are on their way: its own business,
        // as with rpyc's server, which says nothing of it
        Err(ConnError::Io(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            log.limited(Flood::Disconnected)
                .info(format_args!("{peer}: {error}"));
        }
        Err(error) => log
            .limited(Flood::Disconnected)
            .warning(format_args!("{peer}: {error}")),
    }
    context.service.connection_done();
    log.limited(Flood::Goodbye)
        .info(format_args!("goodbye {peer}"));
}
