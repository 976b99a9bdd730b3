//! The [`Server`] builder: a service, a serving strategy, where connections
//! come from, and optionally an authenticator, then [`Server::serve`]. It
//! runs the daemons' own server loop (sd-notify, draining on stop, the
//! greeting timeout), so a Rust service behaves as `rpyc-classic` does.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::registration::{publisher, registrars, RegistryAddr};
use crate::connection::Config;
use crate::daemon::listener::{Inherited, Listener, Stream};
use crate::daemon::log::{Level, Logger};
use crate::daemon::notify::Notifier;
use crate::daemon::signals::{Event, Signals, Trigger};
use crate::registry::Transport;
use crate::server::proxy::{Cidr, ProxyPolicy};
use crate::server::transport::Authenticator;
use crate::server::{serve_accepted, Context, Options, Runner, Strategy};
use crate::service::rust::root::{Service, ServiceFactory};
use crate::service::SessionFactory;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot use the sockets systemd passed: {0}")]
    Systemd(std::io::Error),
    #[error("systemd passed no sockets (LISTEN_FDS is not set for this process)")]
    NoSystemdSockets,
    #[error("no listener: call tcp(), unix(), systemd() or listener() first")]
    NoListener,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("server failed: {0}")]
    Run(std::io::Error),
    #[error("DNS-SD publishing forks its publisher from the process's only thread: call serve(), not spawn()")]
    DnssdInThread,
    #[error("forking mode needs the process's only thread: call serve(), not spawn()")]
    ForkingInThread,
    #[error("cannot register with the registry: {0}")]
    Register(String),
    #[error("the server's thread panicked")]
    Panicked,
}

enum Source {
    Tcp(Result<SocketAddr, String>, String),
    Unix(PathBuf),
    Systemd,
    Listener(Listener),
    Accepted(Stream),
}

/// A server for a Rust [`Service`], built like rpyc's
/// `ThreadedServer(MyService, port=18861)`.
///
/// ```no_run
/// use rpycd::api::{Class, Object, Service};
///
/// struct EchoService;
/// impl Object for EchoService {
///     fn describe(class: &mut Class<Self>) {
///         class.method("echo", |_, call| call.arg::<rpycd::api::Obj>(0));
///     }
/// }
/// impl Service for EchoService {}
///
/// # fn main() -> Result<(), rpycd::api::ServeError> {
/// rpycd::Server::new(EchoService)
///     .threaded()
///     .tcp("127.0.0.1:18861")
///     .stop_on_signals()
///     .serve()
/// # }
/// ```
pub struct Server {
    factory: Arc<dyn SessionFactory>,
    name: String,
    aliases: Vec<String>,
    strategy: Strategy,
    sources: Vec<Source>,
    auth: Option<Arc<dyn Authenticator>>,
    config: Config,
    logger: Option<Logger>,
    signals: bool,
    registries: Vec<(Transport, RegistryAddr)>,
    /// What registrations announce in place of a listener's own address
    /// and port (`--register-address`).
    announce: (Option<IpAddr>, Option<u16>),
    /// Why listening on a non-loopback address without TLS is dangerous
    /// for this service, if it is.
    exposure: Option<String>,
    max_connections: Option<usize>,
    shutdown_timeout: Duration,
    greeting_timeout: Duration,
    backlog: u32,
    proxy_from: Vec<Cidr>,
    /// Publish the TCP listeners through DNS-SD, saying whether they
    /// speak TLS.
    dnssd: Option<bool>,
}

impl Server {
    /// Serves `service`, shared by every connection (rpyc's
    /// `ThreadedServer(MyService())`), with a thread per busy connection
    /// (see [`Server::threaded`]).
    pub fn new<S: Service>(service: S) -> Server {
        Server::hosting::<S>(Arc::new(ServiceFactory::shared(Arc::new(service))))
    }

    /// Serves a new service from `make` to each connection (rpyc's
    /// `ThreadedServer(MyService)`).
    pub fn per_connection<S: Service>(make: impl Fn() -> S + Send + Sync + 'static) -> Server {
        Server::hosting::<S>(Arc::new(ServiceFactory::per_connection(make)))
    }

    fn hosting<S: Service>(factory: Arc<dyn SessionFactory>) -> Server {
        Server::from_factory(factory, S::service_name(), S::service_aliases())
    }

    /// Serves any [`SessionFactory`] (the classic service, a Python one):
    /// `name` names its log lines, `aliases` are registered.
    pub fn from_factory(
        factory: Arc<dyn SessionFactory>,
        name: String,
        aliases: Vec<String>,
    ) -> Server {
        Server {
            factory,
            name,
            aliases,
            strategy: Strategy::Threaded,
            sources: Vec::new(),
            auth: None,
            proxy_from: Vec::new(),
            dnssd: None,
            config: Config::default(),
            logger: None,
            signals: false,
            registries: Vec::new(),
            announce: (None, None),
            exposure: None,
            max_connections: None,
            shutdown_timeout: crate::server::DEFAULT_SHUTDOWN_TIMEOUT,
            greeting_timeout: Duration::from_secs(10),
            backlog: crate::server::DEFAULT_BACKLOG,
        }
    }

    /// A thread per connection (the default; rpyc's `ThreadedServer`),
    /// while it is busy: a connection whose client has been quiet for
    /// 250 ms gives its thread back and waits in one poll set until the
    /// client sends again, then a thread serves it on. Services keep no
    /// state in a thread (a `thread_local!`) across requests.
    pub fn threaded(self) -> Server {
        self.strategy(Strategy::Threaded)
    }

    /// `size` threads; a connection that finds them all busy is dropped
    /// (rpyc's `ThreadPoolServer`).
    pub fn thread_pool(self, size: usize) -> Server {
        self.strategy(Strategy::ThreadPool(size.max(1)))
    }

    /// A process per connection (rpyc's `ForkingServer`): each connection
    /// has its own copy of the service. [`serve`](Server::serve) must run in
    /// the process's only thread; signal handlers are installed (the
    /// server reaps its children on SIGCHLD).
    pub fn forking(self) -> Server {
        self.strategy(Strategy::Forking)
    }

    /// One connection, served in the calling thread, then `serve` returns
    /// (rpyc's `OneShotServer`).
    pub fn oneshot(self) -> Server {
        self.strategy(Strategy::OneShot)
    }

    /// Listens on a TCP address: `"127.0.0.1:18861"`, `("::1", 0)`; port 0
    /// picks a free port ([`Bound::local_addr`] says which).
    pub fn tcp(mut self, addr: impl ToSocketAddrs + std::fmt::Debug) -> Server {
        let described = format!("{addr:?}");
        let resolved = addr
            .to_socket_addrs()
            .map_err(|error| error.to_string())
            .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_owned()));
        self.sources.push(Source::Tcp(resolved, described));
        self
    }

    /// Listens on a Unix socket at `path` (removed when the server stops).
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Server {
        self.sources.push(Source::Unix(path.into()));
        self
    }

    /// Serves the sockets systemd passes (socket activation, `LISTEN_FDS`):
    /// listening sockets (`Accept=no`), or one connection (`Accept=yes`).
    pub fn systemd(mut self) -> Server {
        self.sources.push(Source::Systemd);
        self
    }

    /// Serves a listener made elsewhere.
    pub fn listener(mut self, listener: Listener) -> Server {
        self.sources.push(Source::Listener(listener));
        self
    }

    /// Serves one connection accepted elsewhere (systemd's `Accept=yes`),
    /// in the calling thread, then stops.
    pub fn accepted(mut self, stream: Stream) -> Server {
        self.sources.push(Source::Accepted(stream));
        self
    }

    /// Any of the serving strategies (forking installs the signal
    /// handlers: the server reaps its children on SIGCHLD).
    pub fn strategy(mut self, strategy: Strategy) -> Server {
        if strategy == Strategy::Forking {
            self.signals = true;
        }
        self.strategy = strategy;
        self
    }

    /// Every connection's settings at once: limits, timeouts.
    pub fn config(mut self, config: Config) -> Server {
        self.config = config;
        self
    }

    /// How long a new connection has to send its first whole message.
    pub fn greeting_timeout(mut self, timeout: Duration) -> Server {
        self.greeting_timeout = timeout;
        self
    }

    /// Logs a warning, naming `why`, for each listener on a non-loopback
    /// address when connections are not authenticated.
    pub fn warn_when_exposed(mut self, why: impl Into<String>) -> Server {
        self.exposure = Some(why.into());
        self
    }

    /// Authenticates each connection first (for example a
    /// [`TlsAuthenticator`](crate::server::tls::TlsAuthenticator)).
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Server {
        self.auth = Some(auth);
        self
    }

    /// Connections from the addresses `trusted` lists come through a load
    /// balancer and begin with a PROXY header (version 1 or 2), which
    /// names the client; from any other address a PROXY header is
    /// refused. The header has the greeting timeout to arrive.
    pub fn proxy_protocol_from(mut self, trusted: Vec<Cidr>) -> Server {
        self.proxy_from = trusted;
        self
    }

    fn proxy_policy(&self) -> Option<Arc<ProxyPolicy>> {
        (!self.proxy_from.is_empty()).then(|| {
            Arc::new(ProxyPolicy::new(
                self.proxy_from.clone(),
                self.greeting_timeout,
            ))
        })
    }

    /// Where log lines go (default: warnings and errors to stderr).
    pub fn logger(mut self, logger: Logger) -> Server {
        self.logger = Some(logger);
        self
    }

    /// Handles signals as the daemons do: SIGTERM drains and stops, SIGINT
    /// stops at once, SIGHUP reopens the logfile. Without it the process
    /// keeps its own signal dispositions, and [`Stopper`] stops the server.
    pub fn stop_on_signals(mut self) -> Server {
        self.signals = true;
        self
    }

    /// Registers the service's aliases with an rpyc registry while serving
    /// (as `rpyc-classic --register` does), every TCP listener's address
    /// and port; called again, with each registry named.
    pub fn register(mut self, transport: Transport, registry: SocketAddr) -> Server {
        self.registries
            .push((transport, RegistryAddr::Resolved(registry)));
        self
    }

    /// Registers as [`register`](Server::register) does, with a registry
    /// named by host: its address of each listener's family.
    pub fn register_with(mut self, transport: Transport, host: &str, port: u16) -> Server {
        self.registries
            .push((transport, RegistryAddr::Named(host.to_owned(), port)));
        self
    }

    /// Registers as `host` (an address of this machine: registrations
    /// leave from it, and a registry records where they come from) and
    /// `port` in place of each listener's own, where given.
    pub fn announce_as(mut self, host: Option<IpAddr>, port: Option<u16>) -> Server {
        self.announce = (host, port);
        self
    }

    /// Publishes every TCP listener through DNS-SD while serving (Avahi's
    /// daemon, over the system D-Bus; see `rpyc-classic --dnssd`), with
    /// `tls` in its TXT strings: whether clients must speak TLS to it.
    pub fn publish_dnssd(mut self, tls: bool) -> Server {
        self.dnssd = Some(tls);
        self
    }

    /// Refuses connections beyond `max` at a time.
    pub fn max_connections(mut self, max: usize) -> Server {
        self.max_connections = Some(max);
        self
    }

    /// How long a stopping server waits for connections to finish.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Server {
        self.shutdown_timeout = timeout;
        self
    }

    /// Ends a connection idle for this long.
    pub fn idle_timeout(mut self, timeout: Duration) -> Server {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Binds the listeners (or takes systemd's), so the port is known
    /// before serving.
    pub fn bind(mut self) -> Result<Bound, ServeError> {
        if self.sources.is_empty() {
            return Err(ServeError::NoListener);
        }
        let mut listeners = Vec::new();
        let mut single = None;
        for source in std::mem::take(&mut self.sources) {
            match source {
                Source::Tcp(resolved, described) => {
                    let bind_error = |source| ServeError::Bind {
                        address: described.clone(),
                        source,
                    };
                    let addr = resolved.map_err(|error| {
                        bind_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, error))
                    })?;
                    listeners.push(Listener::bind_tcp(addr, self.backlog).map_err(bind_error)?);
                }
                Source::Unix(path) => {
                    listeners.push(Listener::bind_unix(&path, self.backlog).map_err(|source| {
                        ServeError::Bind {
                            address: path.display().to_string(),
                            source,
                        }
                    })?)
                }
                Source::Systemd => match Listener::from_systemd().map_err(ServeError::Systemd)? {
                    Some(Inherited::Listeners(inherited)) => listeners.extend(inherited),
                    Some(Inherited::Connection(stream)) => single = Some(stream),
                    None => return Err(ServeError::NoSystemdSockets),
                },
                Source::Listener(listener) => listeners.push(listener),
                Source::Accepted(stream) => single = Some(stream),
            }
        }
        let signals = if self.signals {
            Signals::install()
        } else {
            Signals::manual()
        }
        .map_err(ServeError::Signals)?;
        let trigger = signals.trigger().map_err(ServeError::Signals)?;
        Ok(Bound {
            server: self,
            listeners,
            single,
            signals,
            trigger,
        })
    }

    /// Binds and serves until stopped (a signal with
    /// [`stop_on_signals`](Server::stop_on_signals); the one connection in
    /// oneshot mode).
    pub fn serve(self) -> Result<(), ServeError> {
        self.bind()?.serve()
    }
}

/// A server whose sockets are bound: its addresses are known; serve it
/// here ([`serve`](Bound::serve)) or in a thread ([`spawn`](Bound::spawn)).
pub struct Bound {
    server: Server,
    listeners: Vec<Listener>,
    /// systemd's `Accept=yes`: one connection, accepted for us.
    single: Option<Stream>,
    signals: Signals,
    trigger: Trigger,
}

impl Bound {
    /// The first TCP address listened on (with the port picked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find_map(Listener::local_addr)
    }

    /// Every TCP address listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(Listener::local_addr)
            .collect()
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.trigger.clone())
    }

    /// The service's name, and where it listens: the port, else the first
    /// listener (a Unix socket's path), else `socket` for a connection
    /// systemd accepted.
    fn logger(&self) -> Logger {
        let place = match (self.local_addr(), self.listeners.first()) {
            (Some(addr), _) => addr.port().to_string(),
            (None, Some(listener)) => listener.describe(),
            (None, None) if self.single.is_some() => "socket".into(),
            (None, None) => String::new(),
        };
        let name = if place.is_empty() {
            self.server.name.clone()
        } else {
            format!("{}/{place}", self.server.name)
        };
        match &self.server.logger {
            Some(logger) => logger.renamed(name),
            None => Logger::stderr(name, false).with_level(Level::Warning),
        }
    }

    /// Serves until stopped.
    pub fn serve(self) -> Result<(), ServeError> {
        let log = self.logger();
        let Bound {
            server,
            listeners,
            single,
            signals,
            trigger: _,
        } = self;
        let proxy = server.proxy_policy();
        if let Some(stream) = single {
            let context = Context::single(
                server.factory,
                server.config,
                log,
                server.auth,
                server.greeting_timeout,
            )
            .with_proxy(proxy);
            return serve_accepted(stream, &context).map_err(ServeError::Run);
        }
        for listener in &listeners {
            log.info(format_args!("server started on {}", listener.describe()));
            let exposed = listener
                .local_addr()
                .is_some_and(|addr| !addr.ip().is_loopback());
            if let Some(why) = server
                .exposure
                .as_deref()
                .filter(|_| exposed && server.auth.is_none())
            {
                log.warning(format_args!(
                    "{} is not a loopback address and TLS is off: {why}",
                    listener.describe()
                ));
            }
        }
        let registrars = registrars(
            &server.registries,
            server.announce,
            &listeners,
            &server.aliases,
            &log,
        )?;
        // forked before the runner starts a thread (see `Publisher::start`)
        let publisher = server
            .dnssd
            .and_then(|tls| publisher(&listeners, &server.aliases, tls, &log));
        let mut runner = Runner::new(
            listeners,
            server.strategy,
            server.factory,
            server.config,
            log,
            Notifier::from_env(),
            Options {
                max_connections: server.max_connections,
                shutdown_timeout: server.shutdown_timeout,
                auth: server.auth,
                greeting_timeout: server.greeting_timeout,
                proxy,
            },
        );
        for registrar in registrars {
            runner.add_registrar(registrar);
        }
        let served = runner.run(&signals).map_err(ServeError::Run).map(drop);
        if let Some(publisher) = publisher {
            publisher.stop();
        }
        served
    }

    /// Serves in a new thread (not in forking mode, which needs the
    /// process's only thread). The server stops when the [`Running`] handle
    /// is stopped or dropped.
    pub fn spawn(self) -> Result<Running, ServeError> {
        if self.server.strategy == Strategy::Forking {
            return Err(ServeError::ForkingInThread);
        }
        if self.server.dnssd.is_some() {
            return Err(ServeError::DnssdInThread);
        }
        let stopper = self.stopper();
        let addrs = self.local_addrs();
        let thread = std::thread::Builder::new()
            .name(format!("rpycd server {}", self.server.name))
            .spawn(move || self.serve())
            .map_err(ServeError::Run)?;
        Ok(Running {
            thread: Some(thread),
            stopper,
            addrs,
        })
    }
}

/// Stops a server from any thread.
#[derive(Clone)]
pub struct Stopper(Trigger);

impl Stopper {
    /// Stops accepting, lets connections finish (up to the shutdown
    /// timeout), then stops: what SIGTERM does.
    pub fn stop(&self) {
        self.0.raise(Event::Terminate);
    }

    /// Stops now, closing every connection: what SIGINT does.
    pub fn abort(&self) {
        self.0.raise(Event::Interrupt);
    }
}

/// A server serving in its own thread ([`Bound::spawn`]).
pub struct Running {
    thread: Option<JoinHandle<Result<(), ServeError>>>,
    stopper: Stopper,
    addrs: Vec<SocketAddr>,
}

impl Running {
    /// The first TCP address listened on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops the server as SIGTERM does and waits for it.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.stopper.stop();
        self.join()
    }

    fn join(&mut self) -> Result<(), ServeError> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ServeError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stopper.stop();
            // nothing to report to in a drop; `stop` returns the outcome
            let _ = self.join();
        }
    }
}
