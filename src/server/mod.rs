//! Where connections come from and how they are served: a [`Runner`] takes
//! listeners, a [`Strategy`] and a service, and runs one poll loop over the
//! listeners, the signal pipe and the watchdog timer. The loop's thread is
//! the only thread of the process in forking mode, so fork() stays safe.

mod anchors;
mod forking;
mod parking;
mod signatures;
pub mod stdio;
mod strategy;
mod threaded;
pub mod tls;
pub mod transport;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::connection::{Config, ConnError, Connection, Served};
use crate::daemon::accept::{is_exhaustion, ACCEPT_PAUSE};
pub use crate::daemon::listener::{Inherited, Listener, Stream};
use crate::daemon::log::{Flood, Logger};
use crate::daemon::notify::Notifier;
use crate::daemon::signals::{Event, Signals};
use crate::registry::registrar::Registrar;
use crate::service::{PeerInfo, SessionFactory};
use crate::sync::lock;
pub use strategy::Strategy;
use transport::{Authenticator, Transport};

/// `listen()` backlog: rpyc passes `socket.SOMAXCONN`, 4096 on Linux.
pub const DEFAULT_BACKLOG: u32 = 4096;
/// Grace period for in-flight requests after SIGTERM.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of a server needs, cloned into its thread.
#[derive(Clone)]
pub struct Context {
    pub service: Arc<dyn SessionFactory>,
    pub config: Config,
    pub log: Logger,
    pub auth: Option<Arc<dyn Authenticator>>,
    pub connections: Arc<Connections>,
    /// How long a new connection has to send its first whole message.
    pub greeting_timeout: Duration,
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (rpyc's KeyboardInterrupt).
    Interrupted,
    /// SIGTERM, after draining.
    Terminated,
    /// Oneshot served its connection.
    Served,
}

pub struct Runner {
    listeners: Vec<Listener>,
    strategy: Strategy,
    context: Context,
    log: Logger,
    notifier: Notifier,
    max_connections: Option<usize>,
    shutdown_timeout: Duration,
    registrar: Option<Registrar>,
}

pub struct Options {
    pub max_connections: Option<usize>,
    pub shutdown_timeout: Duration,
    pub auth: Option<Arc<dyn Authenticator>>,
    pub greeting_timeout: Duration,
}

impl Runner {
    pub fn new(
        listeners: Vec<Listener>,
        strategy: Strategy,
        service: Arc<dyn SessionFactory>,
        config: Config,
        log: Logger,
        notifier: Notifier,
        options: Options,
    ) -> Runner {
        let connections = Arc::new(Connections {
            notifier: notifier.clone(),
            ..Connections::default()
        });
        Runner {
            listeners,
            strategy,
            context: Context {
                service,
                config,
                log: log.clone(),
                auth: options.auth,
                connections,
                greeting_timeout: options.greeting_timeout,
            },
            log,
            notifier,
            max_connections: options.max_connections,
            shutdown_timeout: options.shutdown_timeout,
            registrar: None,
        }
    }

    /// Announces the server to a registry while it runs (`--register`).
    pub fn set_registrar(&mut self, registrar: Registrar) {
        self.registrar = Some(registrar);
    }

    /// Accepts and serves until a signal (or, for oneshot, the one
    /// connection) ends it.
    pub fn run(&mut self, signals: &Signals) -> std::io::Result<Stop> {
        for listener in &self.listeners {
            listener.set_nonblocking(true)?;
        }
        let mut workers = self.strategy.start(&self.context)?;
        let mut parent_fds: Vec<_> = self.listeners.iter().map(|l| l.as_raw_fd()).collect();
        parent_fds.push(signals.fd().as_raw_fd());
        workers.set_parent_fds(parent_fds);
        self.notifier.ready(&self.context.connections.status());
        let watchdog = self.notifier.watchdog_interval();
        let mut last_ping = Instant::now();
        let stop = loop {
            let now = Instant::now();
            let mut wake = watchdog.map(|interval| last_ping + interval);
            if let Some(registrar) = &self.registrar {
                let due = registrar.deadline();
                wake = Some(wake.map_or(due, |wake| wake.min(due)));
            }
            let greetings = self
                .context
                .connections
                .cut_silent(self.context.greeting_timeout, &self.log);
            // connections register from their own threads, after this
            // look: check again within half the timeout in any case
            let due = greetings.unwrap_or(now + self.context.greeting_timeout / 2);
            wake = Some(wake.map_or(due, |wake| wake.min(due)));
            let timeout = match wake {
                Some(wake) => PollTimeout::try_from(wake.saturating_duration_since(now))
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let mut fds: Vec<PollFd<'_>> = self
                .listeners
                .iter()
                .map(|listener| PollFd::new(listener.as_fd(), PollFlags::POLLIN))
                .collect();
            fds.push(PollFd::new(signals.fd(), PollFlags::POLLIN));
            let registrar_interest = self.registrar.as_ref().and_then(Registrar::interest);
            if let Some(interest) = &registrar_interest {
                let flags = if interest.writable {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                fds.push(PollFd::new(interest.fd, flags));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|events| !events.is_empty()))
                .collect();
            drop(fds);
            if let Some(interval) = watchdog {
                if last_ping.elapsed() >= interval {
                    self.notifier.watchdog();
                    last_ping = Instant::now();
                }
            }
            if let Some(registrar) = &mut self.registrar {
                let socket_ready =
                    ready.len() > self.listeners.len() + 1 && ready[self.listeners.len() + 1];
                if socket_ready || Instant::now() >= registrar.deadline() {
                    registrar.advance();
                }
            }
            let mut stop = None;
            for event in signals.take() {
                match event {
                    Event::Interrupt => stop = Some(Stop::Interrupted),
                    Event::Terminate => stop = stop.or(Some(Stop::Terminated)),
                    Event::Hangup => self.log.reopen(),
                    Event::Child => {
                        workers.reap(&self.log);
                        self.notifier
                            .status(&connections_status(workers.children()));
                    }
                }
            }
            if let Some(stop) = stop {
                break stop;
            }
            for (index, is_ready) in ready.iter().take(self.listeners.len()).enumerate() {
                if *is_ready && self.accept(index, &mut workers) == Some(Stop::Served) {
                    return Ok(Stop::Served);
                }
            }
        };
        self.notifier.stopping();
        if let Some(registrar) = &mut self.registrar {
            registrar.unregister();
        }
        match stop {
            Stop::Interrupted => {
                self.log.warning(format_args!("keyboard interrupt!"));
                workers.abort(&self.context.connections);
            }
            _ => {
                self.close_listeners();
                let count = self.context.connections.count().max(workers.children());
                self.log.info(format_args!(
                    "terminating: waiting up to {:?} for {count} connection(s)",
                    self.shutdown_timeout
                ));
                workers.drain(&self.context.connections, self.shutdown_timeout, &self.log);
            }
        }
        self.log.flush_suppressed();
        self.log.info(format_args!("server has terminated"));
        self.close_listeners();
        Ok(stop)
    }

    /// Accepts what one ready listener has (it may have several queued).
    fn accept(&mut self, index: usize, workers: &mut strategy::Workers) -> Option<Stop> {
        loop {
            let (stream, peer) = match self.listeners[index].accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(error) if is_transient(&error) => {
                    self.log
                        .limited(Flood::AcceptFailed)
                        .warning(format_args!("accept failed: {error}"));
                    if is_exhaustion(&error) {
                        std::thread::sleep(ACCEPT_PAUSE);
                    }
                    return None;
                }
                Err(error) => {
                    self.log
                        .limited(Flood::AcceptFailed)
                        .error(format_args!("accept failed: {error}"));
                    std::thread::sleep(ACCEPT_PAUSE);
                    return None;
                }
            };
            self.log
                .limited(Flood::Accepted)
                .info(format_args!("accepted {peer}"));
            let live = self.context.connections.admitted().max(workers.children());
            if self.max_connections.is_some_and(|max| live >= max) {
                self.log.limited(Flood::Refused).warning(format_args!(
                    "refusing {peer}: already serving {live} connections (--max-connections)"
                ));
                continue;
            }
            let accepted = Accepted {
                stream,
                opening: self.context.connections.opening(),
            };
            if workers.serve(accepted, &self.context) == Some(Stop::Served) {
                self.close_listeners();
                return Some(Stop::Served);
            }
            if workers.children() > 0 {
                self.notifier
                    .status(&connections_status(workers.children()));
            }
        }
    }

    fn close_listeners(&mut self) {
        if self.listeners.is_empty() {
            return;
        }
        for listener in &self.listeners {
            listener.remove_file();
        }
        self.listeners.clear();
        self.log.info(format_args!("listener closed"));
    }
}

/// Errors of one accept that say nothing about the listener itself (a peer
/// that gave up, a momentary fd or memory shortage).
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    ) || is_exhaustion(error)
}

/// A stopping server ends a connection once the peer has been this quiet:
/// long enough that a session in the middle of a script (requests ms
/// apart) is not cut between two requests, short enough that an idle
/// interactive session does not hold the stop for the whole timeout.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);
const DRAIN_POLL: Duration = Duration::from_millis(50);

fn connections_status(children: usize) -> String {
    format!("serving {children} connection(s)")
}

/// An accepted connection on its way to being live, counted among the
/// admitted ones while this lives.
pub(super) struct Opening(Arc<Connections>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted stream, counted from accept on.
pub(super) struct Accepted {
    pub stream: Stream,
    pub opening: Opening,
}

/// The connections being served in this process, so a stopping server
/// can drain them and the status line can count them.
pub struct Connections {
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Accepted and not yet live: in a worker's queue, or authenticating
    /// (a TLS handshake takes up to --handshake-timeout).
    opening: AtomicUsize,
    next_id: AtomicU64,
    changed: Condvar,
    notifier: Notifier,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            live: Mutex::default(),
            opening: AtomicUsize::default(),
            next_id: AtomicU64::default(),
            changed: Condvar::default(),
            notifier: Notifier::disabled(),
        }
    }
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        lock(&self.live)
    }

    pub(super) fn add(&self, conn: &Arc<Connection>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut live = self.lock();
        live.insert(id, conn.clone());
        self.notifier.status(&connections_status(live.len()));
        id
    }

    pub(super) fn remove(&self, id: u64) {
        let mut live = self.lock();
        live.remove(&id);
        self.notifier.status(&connections_status(live.len()));
        drop(live);
        self.changed.notify_all();
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Live connections and those accepted that are not yet: what
    /// --max-connections counts, so that connections stuck before their
    /// session (a TLS handshake that never ends) hold slots too.
    pub fn admitted(&self) -> usize {
        self.count() + self.opening.load(Ordering::Acquire)
    }

    /// Counts an accepted connection until the returned ticket is dropped
    /// (once the connection is live, or has failed to become so).
    pub(super) fn opening(self: &Arc<Self>) -> Opening {
        self.opening.fetch_add(1, Ordering::AcqRel);
        Opening(self.clone())
    }

    fn status(&self) -> String {
        connections_status(self.count())
    }

    /// Asks every connection to finish, waits up to `timeout`, then closes
    /// what is left.
    fn drain(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut live = self.lock();
        for conn in live.values() {
            conn.drain();
        }
        while !live.is_empty() {
            for conn in live.values() {
                conn.end_if_quiet(DRAIN_QUIET);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self
                .changed
                .wait_timeout(live, left.min(DRAIN_POLL))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        let cut = live.len();
        for conn in live.values() {
            conn.close();
        }
        cut
    }

    /// Closes connections whose peer has not sent a whole first message in
    /// `timeout` (slowloris, or a port scanner that never speaks), and says
    /// when the next one falls due.
    fn cut_silent(&self, timeout: Duration, log: &Logger) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for conn in self.lock().values() {
            match conn.greeting_deadline(timeout) {
                Some(due) if due <= now => {
                    log.limited(Flood::Disconnected).warning(format_args!(
                        "closing a connection that sent no whole message within {timeout:?}"
                    ));
                    conn.close();
                }
                Some(due) => next = Some(next.map_or(due, |next| next.min(due))),
                None => {}
            }
        }
        next
    }

    fn close_all(&self) {
        for conn in self.lock().values() {
            conn.close();
        }
    }
}

/// The transport of an accepted stream: reads time out at the idle
/// timeout or the sync-request timeout, whichever is shorter (the idle
/// clock's tick, and when a reader waiting for a reply gives up).
pub fn stream_transport(stream: Stream, config: &Config) -> std::io::Result<Transport> {
    ticking_transport(stream, config.read_timeout())
}

/// The transport of an accepted stream whose reads time out at `tick`.
fn ticking_transport(stream: Stream, tick: Option<Duration>) -> std::io::Result<Transport> {
    let reader = stream.try_clone()?;
    reader.set_read_timeout(tick)?;
    let closer = stream.try_clone()?;
    Ok(Transport {
        reader: Box::new(reader),
        writer: Box::new(stream),
        shutdown: Box::new(move |how| {
            let _ = closer.shutdown(how);
        }),
    })
}

/// Serves the one connection systemd accepted for us (`Accept=yes`) in
/// this thread, from welcome to goodbye.
pub fn serve_accepted(stream: Stream, context: &Context) -> std::io::Result<()> {
    let peer = stream.peer_name();
    let endpoints = stream.endpoints();
    let transport = stream_transport(stream, &context.config)?;
    serve_transport(transport, peer, endpoints, context);
    Ok(())
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
    let (transport, credentials) = match &context.auth {
        None => (transport, None),
        Some(auth) => match auth.authenticate(transport) {
            Ok(authenticated) => (authenticated.transport, authenticated.credentials),
            Err(refusal) => {
                context
                    .log
                    .limited(Flood::Authentication)
                    .warning(format_args!("{peer} failed to authenticate: {refusal}"));
                return None;
            }
        },
    };
    let conn = Connection::new(
        transport::into_reader(transport.reader),
        transport.writer,
        transport.shutdown,
        context.config.clone(),
    );
    let info = PeerInfo {
        name: peer,
        credentials,
        endpoints,
    };
    Some((conn, info))
}

/// `connect` over an accepted stream.
fn open(stream: Stream, context: &Context) -> Option<(Arc<Connection>, PeerInfo)> {
    open_ticking(stream, context, context.config.read_timeout())
}

/// `connect` over an accepted stream whose reads time out at `tick` (at
/// most `Config::read_timeout`: the idle clock and sync-request deadlines
/// tick with it).
fn open_ticking(
    stream: Stream,
    context: &Context,
    tick: Option<Duration>,
) -> Option<(Arc<Connection>, PeerInfo)> {
    open_wrapped(stream, context, tick, |transport| transport)
}

/// [`open_ticking`], with the transport passed through `wrap` before the
/// connection is made over it (a forked child watches its reads).
fn open_wrapped(
    stream: Stream,
    context: &Context,
    tick: Option<Duration>,
    wrap: impl FnOnce(Transport) -> Transport,
) -> Option<(Arc<Connection>, PeerInfo)> {
    let peer = stream.peer_name();
    let endpoints = stream.endpoints();
    match ticking_transport(stream, tick) {
        Ok(transport) => connect(wrap(transport), peer, endpoints, context),
        Err(error) => {
            context
                .log
                .limited(Flood::Disconnected)
                .error(format_args!("cannot use the connection of {peer}: {error}"));
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
fn start_session(conn: &Arc<Connection>, info: &PeerInfo, context: &Context) -> bool {
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
fn serve_session(
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
fn end_session(info: &PeerInfo, context: &Context, outcome: Result<(), ConnError>) {
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
