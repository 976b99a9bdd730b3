//! Where connections come from and how they are served: a [`Runner`] takes
//! listeners, a [`Strategy`] and a service, and runs one poll loop over the
//! listeners, the signal pipe and the watchdog timer. The loop's thread is
//! the only thread of the process in forking mode, so fork() stays safe.

mod anchors;
mod connections;
mod forking;
mod lifecycle;
mod parking;
pub mod proxy;
mod signatures;
pub mod stdio;
mod strategy;
mod threaded;
pub mod tls;
// where it was first: the servers' paths to it stay
pub use crate::transport;

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
use connections::Accepted;
pub use connections::Connections;
pub use lifecycle::*;
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
    /// Whose connections begin with a PROXY header (`--proxy-protocol-from`).
    pub proxy: Option<Arc<proxy::ProxyPolicy>>,
}

impl Context {
    /// For a connection served in the calling thread without a [`Runner`]
    /// (stdio, systemd's `Accept=yes`): there are no others to count.
    pub fn single(
        service: Arc<dyn SessionFactory>,
        config: Config,
        log: Logger,
        auth: Option<Arc<dyn Authenticator>>,
        greeting_timeout: Duration,
    ) -> Context {
        Context {
            service,
            config,
            log,
            auth,
            connections: Arc::default(),
            greeting_timeout,
            proxy: None,
        }
    }

    /// With connections from `policy`'s trusted addresses read past their
    /// PROXY header first.
    pub fn with_proxy(self, policy: Option<Arc<proxy::ProxyPolicy>>) -> Context {
        Context {
            proxy: policy,
            ..self
        }
    }
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
    registrars: Vec<Registrar>,
}

pub struct Options {
    pub max_connections: Option<usize>,
    pub shutdown_timeout: Duration,
    pub auth: Option<Arc<dyn Authenticator>>,
    pub greeting_timeout: Duration,
    pub proxy: Option<Arc<proxy::ProxyPolicy>>,
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
        let connections = Arc::new(Connections::reporting_to(notifier.clone()));
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
                proxy: options.proxy,
            },
            log,
            notifier,
            max_connections: options.max_connections,
            shutdown_timeout: options.shutdown_timeout,
            registrars: Vec::new(),
        }
    }

    /// Announces the server to a registry while it runs (`--register`);
    /// one registrar per registry and listener.
    pub fn add_registrar(&mut self, registrar: Registrar) {
        self.registrars.push(registrar);
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
            for registrar in &self.registrars {
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
            // each registrar's socket, if it has one in flight, in order
            let mut registrar_slots = Vec::with_capacity(self.registrars.len());
            for registrar in &self.registrars {
                match registrar.interest() {
                    Some(interest) => {
                        let flags = if interest.writable {
                            PollFlags::POLLOUT
                        } else {
                            PollFlags::POLLIN
                        };
                        registrar_slots.push(Some(fds.len()));
                        fds.push(PollFd::new(interest.fd, flags));
                    }
                    None => registrar_slots.push(None),
                }
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
            for (registrar, slot) in self.registrars.iter_mut().zip(registrar_slots) {
                let socket_ready = slot.is_some_and(|slot| ready[slot]);
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
        for registrar in &mut self.registrars {
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
