//! The `rpyc-classic` daemon: from parsed switches to a serving server.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use thiserror::Error;

use super::Program;
use crate::api::{ServeError, Server};
use crate::cli::classic::{ClassicArgs, Mode};
use crate::cli::CliError;
use crate::connection::{Config, Exceptions};
use crate::daemon::listener::{resolve, Inherited, Listener};
use crate::daemon::log::{Destination, LogError, Logger};
use crate::protocol::frame::Limits;
use crate::server::tls::{TlsAuthenticator, TlsError, TlsFiles};
use crate::server::transport::Authenticator;
use crate::server::{stdio, Context, Strategy};
use crate::service::python::authenticator::PythonAuthenticator;
use crate::service::python::classic::{ClassicService, ServiceError};
use crate::service::SessionFactory;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot use the sockets systemd passed: {0}")]
    Inherit(std::io::Error),
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// The service named on the command line cannot be loaded.
    #[error("{0}")]
    Load(crate::service::python::hosted::LoadError),
    #[error("cannot take stdin/stdout: {0}")]
    Stdio(std::io::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// `rpyc-classic`, start to end.
pub fn main(program: &str) -> ExitCode {
    super::start::<ClassicProgram>(program)
}

/// The `rpyc-classic` program.
pub struct ClassicProgram;

impl Program for ClassicProgram {
    type Args = ClassicArgs;
    type Error = RunError;

    fn parse(args: Vec<OsString>) -> Result<ClassicArgs, CliError> {
        ClassicArgs::parse_from(args)
    }

    fn checks_only(args: &ClassicArgs) -> bool {
        args.check_config
    }

    fn check(args: &ClassicArgs) -> Result<(), RunError> {
        check(args)
    }

    fn run(args: &ClassicArgs) -> Result<(), RunError> {
        run(args)
    }

    fn stderr_is_the_client(args: &ClassicArgs) -> bool {
        stderr_is_the_client(args.mode)
    }
}

/// In stdio mode fd 2 may be the client's socket (inetd passes it as 0, 1
/// and 2): then not even an error line may be written there.
pub fn stderr_is_the_client(mode: Mode) -> bool {
    mode == Mode::Stdio && stdio::stderr_is_unsafe()
}

fn config_of(args: &ClassicArgs) -> Config {
    let max = usize::try_from(args.max_message_size).unwrap_or(usize::MAX);
    let protocol = args.protocol();
    let defaults = Config::default();
    Config {
        limits: Limits {
            max_frame_size: max,
            max_payload_size: max,
        },
        idle_timeout: args.idle_timeout,
        brine_depth: args.max_depth as usize,
        sync_request_timeout: protocol
            .sync_request_timeout
            .unwrap_or(defaults.sync_request_timeout),
        exceptions: Exceptions {
            log_exceptions: protocol.log_exceptions,
            log: None,
            propagate_keyboard_interrupt: protocol.propagate_keyboard_interrupt,
            propagate_system_exit: protocol.propagate_system_exit,
            include_local_traceback: protocol.include_local_traceback,
            include_local_version: protocol.include_local_version,
        },
        ..defaults
    }
}

/// Where the switches send log lines. In stdio mode stderr may be the
/// client's socket, so there it is a file, syslog or nothing.
fn destination(args: &ClassicArgs, ident: &str) -> Destination {
    let otherwise = if args.mode == Mode::Stdio && stdio::stderr_is_unsafe() {
        Destination::Silent
    } else {
        Destination::Stderr
    };
    Destination::chosen(args.logfile.as_deref(), args.syslog, ident, otherwise)
}

/// What a daemon serves, once loaded: the service, the name its log lines
/// carry (rpyc's logger name: the service's name) and the aliases it
/// registers under.
pub struct Loaded {
    pub service: Arc<dyn SessionFactory>,
    pub name: String,
    pub aliases: Vec<String>,
    /// The service's own authenticator (rpyc-serve's `--authenticator`),
    /// run after the server's TLS.
    pub authenticator: Option<PythonAuthenticator>,
}

/// A daemon built on the classic server's switches: the classic service,
/// or another (`rpyc-serve`).
pub struct Hosting<'a> {
    /// The program's name: syslog's ident.
    pub program: &'a str,
    /// The log name until the service is loaded.
    pub log_name: &'a str,
    pub load: &'a dyn Fn() -> Result<Loaded, RunError>,
    /// Why a non-loopback address without TLS is dangerous for this service.
    pub exposure: &'a str,
    /// How long the service waits for the client to answer a request of
    /// its own (a callback): `Some` sets it (`Some(None)`: forever),
    /// `None` keeps rpyc's default.
    pub sync_request_timeout: Option<Option<std::time::Duration>>,
}

/// Serves the classic service as the switches say until the server stops.
pub fn run(args: &ClassicArgs) -> Result<(), RunError> {
    run_hosted(args, &classic_hosting(&load_classic))
}

/// What `--check-config` checks: everything start-up opens and loads
/// before it binds (see [`check_hosted`]).
pub fn check(args: &ClassicArgs) -> Result<(), RunError> {
    check_hosted(args, &classic_hosting(&load_classic))
}

fn load_classic() -> Result<Loaded, RunError> {
    Ok(Loaded {
        service: Arc::new(ClassicService::new()?),
        name: "SLAVE".into(),
        // rpyc's ClassicService is "CLASSIC", its SlaveService (what
        // rpyc_classic serves and registers) "SLAVE": both are this service
        aliases: vec!["CLASSIC".into(), "SLAVE".into()],
        authenticator: None,
    })
}

fn classic_hosting<'a>(load: &'a dyn Fn() -> Result<Loaded, RunError>) -> Hosting<'a> {
    Hosting {
        program: "rpyc-classic",
        log_name: "SLAVE",
        load,
        exposure: "anyone who can reach it can run any code as this user \
                   (the classic service is remote code execution)",
        sync_request_timeout: None,
    }
}

/// What start-up opens before it binds: a logfile, syslog, the TLS files
/// (key and certificate matching, a CA bundle every entry of which can
/// issue client certificates) are configuration errors found here.
struct Opened {
    config: Config,
    log: Logger,
    auth: Option<Arc<dyn Authenticator>>,
}

fn open_configured(args: &ClassicArgs, hosting: &Hosting<'_>) -> Result<Opened, RunError> {
    let mut config = config_of(args);
    if let Some(timeout) = hosting.sync_request_timeout {
        config.sync_request_timeout = timeout;
    }
    // opened first: an unusable logfile is a configuration error, reported
    // before anything is bound
    let log = Logger::open(
        hosting.log_name,
        destination(args, hosting.program),
        args.quiet,
    )?
    .with_level(super::log_level(args.quiet, args.log_level));
    // the TLS files too: a bad key is reported before anything is bound
    let auth = authenticator(args)?;
    Ok(Opened { config, log, auth })
}

/// `--check-config`, as `nginx -t` or `sshd -t`: opens and validates
/// what start-up would, by the same code (`open_configured` and the
/// service's load, which imports a hosted service and checks its class),
/// and binds nothing.
pub fn check_hosted(args: &ClassicArgs, hosting: &Hosting<'_>) -> Result<(), RunError> {
    open_configured(args, hosting)?;
    (hosting.load)()?;
    Ok(())
}

/// Serves what `hosting` loads as the switches say until the server stops:
/// the sockets are bound (or taken from systemd) and the service loaded
/// here, the rest is the Rust API's [`Server`], the one way every server
/// runs.
pub fn run_hosted(args: &ClassicArgs, hosting: &Hosting<'_>) -> Result<(), RunError> {
    crate::memory::map_bulk_allocations();
    let Opened { config, log, auth } = open_configured(args, hosting)?;
    if args.mode == Mode::Stdio {
        let loaded = (hosting.load)()?;
        let auth = chained(auth, loaded.authenticator, &config);
        let log = log.renamed(format!("{}/stdio", loaded.name));
        let context = Context::single(loaded.service, config, log, auth, args.handshake_timeout);
        return stdio::serve(&context).map_err(RunError::Stdio);
    }
    let inherited = Listener::from_systemd().map_err(RunError::Inherit)?;
    let (listeners, accepted) = match inherited {
        Some(Inherited::Listeners(listeners)) => (listeners, None),
        Some(Inherited::Connection(stream)) => (Vec::new(), Some(stream)),
        None => (vec![bind(args)?], None),
    };
    let loaded = (hosting.load)()?;
    let auth = chained(auth, loaded.authenticator, &config);
    let strategy = match args.mode {
        Mode::Threaded => Strategy::Threaded,
        Mode::Threadpool => Strategy::ThreadPool(args.pool_size as usize),
        Mode::Forking => Strategy::Forking,
        Mode::Oneshot | Mode::Stdio => Strategy::OneShot,
    };
    let mut server = Server::from_factory(loaded.service, loaded.name, loaded.aliases)
        .strategy(strategy)
        .config(config)
        .logger(log)
        .greeting_timeout(args.handshake_timeout)
        .proxy_protocol_from(args.proxy_protocol_from.clone())
        .shutdown_timeout(args.shutdown_timeout)
        .warn_when_exposed(hosting.exposure)
        .stop_on_signals();
    if let Some(stream) = accepted {
        // Accept=yes: systemd accepted the connection for us
        stdio::ignore_hangups();
        server = server.accepted(stream);
    }
    for listener in listeners {
        server = server.listener(listener);
    }
    if let Some(auth) = auth {
        server = server.authenticator(auth);
    }
    if let Some(max) = args.max_connections {
        server = server.max_connections(max as usize);
    }
    if args.register {
        // validation guarantees a host (TCP requires one, UDP broadcasts)
        for host in args.effective_registry_hosts() {
            server = server.register_with(args.registry_type, host, args.registry_port);
        }
        if let Some(announce) = args.register_address {
            server = server.announce_as(announce.host, announce.port);
        }
    }
    if args.dnssd {
        server = server.publish_dnssd(args.tls());
    }
    let bound = server.bind()?;
    if args.mode == Mode::Oneshot {
        if let Some(addr) = bound.local_addr() {
            // rpyc 6's banner, which its own tests read to find the port
            println!("rpyc-oneshot\n{}\t{}", addr.ip(), addr.port());
        }
    }
    Ok(bound.serve()?)
}

/// The server's authenticator (TLS), then the service's own, if any.
fn chained(
    server: Option<Arc<dyn Authenticator>>,
    service: Option<PythonAuthenticator>,
    config: &Config,
) -> Option<Arc<dyn Authenticator>> {
    match service {
        Some(service) => Some(Arc::new(service.after(server, config.read_timeout()))),
        None => server,
    }
}

fn bind(args: &ClassicArgs) -> Result<Listener, RunError> {
    if let Some(path) = &args.unix_socket {
        return Listener::bind_unix(path, args.backlog).map_err(|source| RunError::Bind {
            address: path.display().to_string(),
            source,
        });
    }
    let host = args.effective_host();
    let port = args.effective_port();
    let bind_error = |source| RunError::Bind {
        address: format!("[{host}]:{port}"),
        source,
    };
    let addr = resolve(host, port, args.ipv6).map_err(bind_error)?;
    Listener::bind_tcp(addr, args.backlog).map_err(bind_error)
}

/// The authenticator the switches ask for, its files checked now.
fn authenticator(args: &ClassicArgs) -> Result<Option<Arc<dyn Authenticator>>, RunError> {
    let (Some(key), Some(cert)) = (&args.ssl_keyfile, &args.ssl_certfile) else {
        return Ok(None);
    };
    let tls = TlsAuthenticator::from_files(&TlsFiles {
        key,
        cert,
        ca: args.ssl_cafile.as_deref(),
    })?
    .with_handshake_timeout(args.handshake_timeout);
    Ok(Some(Arc::new(tls)))
}
