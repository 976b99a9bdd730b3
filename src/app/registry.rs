//! `rpyc-registry`: from parsed switches to a serving registry.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

use super::Program;
use crate::cli::registry::RegistryArgs;
use crate::cli::CliError;
use crate::daemon::dnssd::browser;
use crate::daemon::log::{Destination, LogError, Logger};
use crate::daemon::notify::Notifier;
use crate::daemon::signals::Signals;
use crate::registry::answer::Registry;
use crate::registry::discovered::Discovered;
use crate::registry::event_loop::{bracketed, prune_interval, serve};
use crate::registry::sockets::{SocketError, Sockets};
use crate::registry::table::Limits;
use crate::sync::lock;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("{0}")]
    Socket(#[from] SocketError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Log(#[from] LogError),
}

/// `rpyc-registry`, start to end.
pub fn main(program: &str) -> ExitCode {
    super::start::<RegistryProgram>(program)
}

/// The `rpyc-registry` program.
pub struct RegistryProgram;

impl Program for RegistryProgram {
    type Args = RegistryArgs;
    type Error = RunError;

    fn parse(args: Vec<OsString>) -> Result<RegistryArgs, CliError> {
        RegistryArgs::parse_from(args)
    }

    fn checks_only(args: &RegistryArgs) -> bool {
        args.check_config
    }

    fn check(args: &RegistryArgs) -> Result<(), RunError> {
        check(args)
    }

    fn run(args: &RegistryArgs) -> Result<(), RunError> {
        run(args)
    }
}

/// Opened first: an unusable logfile or syslog is a configuration error,
/// reported before anything is bound.
fn open_log(args: &RegistryArgs) -> Result<Logger, RunError> {
    let mode = args.mode.name();
    Ok(
        Logger::open(format!("REGSRV/{mode}"), destination(args), args.quiet)?
            .with_level(super::log_level(args.quiet, args.log_level)),
    )
}

/// What `--check-config` checks, as `nginx -t`: what start-up opens before
/// it binds (the log's destination), by the same code.
pub fn check(args: &RegistryArgs) -> Result<(), RunError> {
    open_log(args).map(drop)
}

fn destination(args: &RegistryArgs) -> Destination {
    Destination::chosen(
        args.logfile.as_deref(),
        args.syslog,
        "rpyc-registry",
        Destination::Stderr,
    )
}

/// Serves as the switches say until SIGINT or SIGTERM.
pub fn run(args: &RegistryArgs) -> Result<(), RunError> {
    let mode = args.mode.name();
    let log = open_log(args)?;
    let sockets = match Sockets::from_systemd(args.mode)? {
        Some(sockets) => sockets,
        None => Sockets::bind(args.effective_host(), args.port, args.ipv6, args.mode)?,
    };
    let addrs = sockets.local_addrs();
    let log = match addrs.first() {
        Some(addr) => log.renamed(format!("REGSRV/{mode}/{}", addr.port())),
        None => log,
    };
    for addr in &addrs {
        log.info(format_args!("server started on {}", bracketed(*addr)));
    }
    let signals = Signals::install().map_err(RunError::Signals)?;
    let timeout = Duration::from_secs(args.timeout);
    let notifier = Notifier::from_env();
    let mut registry = Registry::new(
        timeout,
        Limits::default(),
        args.listing,
        log.clone(),
        notifier.clone(),
    );
    if args.dnssd {
        registry = registry.with_discovered(browse(args, &log));
    }
    serve(
        sockets,
        &registry,
        &signals,
        &notifier,
        prune_interval(timeout),
    )
    .map_err(RunError::Server)
}

/// Starts the DNS-SD browser (`--dnssd`): what it finds, for the registry's
/// answers, with a log line for each service that comes or goes.
fn browse(args: &RegistryArgs, log: &Logger) -> Arc<Mutex<Discovered>> {
    let discovered = Arc::new(Mutex::new(Discovered::default()));
    let domains = if args.dnssd_domain.is_empty() {
        vec![String::new()]
    } else {
        args.dnssd_domain.clone()
    };
    let table = Arc::clone(&discovered);
    let sink_log = log.clone();
    let started = browser::start(domains, log.clone(), move |change| {
        if let Some(line) = lock(&table).apply(change) {
            sink_log.info(format_args!("{line}"));
        }
    });
    if let Err(error) = started {
        log.warning(format_args!(
            "DNS-SD: cannot start browsing ({error}); answering from registrations only"
        ));
    }
    discovered
}
