//! The registry service: a decoded request and its source address in, a
//! reply and log lines out, over the shared [`Table`]. Both transports use
//! it; neither the table nor this module touches a socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::discovered::{merged, Discovered};
use super::table::{Endpoint, Limits, Removed, Table};
use super::throttle::Throttle;
use crate::daemon::log::{Flood, Logger};
use crate::daemon::notify::Notifier;
use crate::protocol::brine;
use crate::protocol::registry::{
    endpoints_reply, names_reply, ok_reply, Request, RequestError, MAX_MESSAGE,
};
use crate::sync::lock;

/// At most one warning per source address in this long.
pub const WARNING_WINDOW: Duration = Duration::from_secs(5);
/// How many sources the warning throttle remembers one by one.
const THROTTLED_SOURCES: usize = 4096;

pub struct Registry {
    table: Mutex<Table>,
    throttle: Mutex<Throttle>,
    listing: bool,
    log: Logger,
    notifier: Notifier,
    /// The counts last sent as STATUS, to send only changes.
    reported: Mutex<Option<(usize, usize)>>,
    /// What DNS-SD found (`--dnssd`), answered after the table.
    discovered: Option<Arc<Mutex<Discovered>>>,
}

impl Registry {
    pub fn new(
        timeout: Duration,
        limits: Limits,
        listing: bool,
        log: Logger,
        notifier: Notifier,
    ) -> Registry {
        Registry {
            table: Mutex::new(Table::new(timeout, limits)),
            throttle: Mutex::new(Throttle::new(WARNING_WINDOW, THROTTLED_SOURCES)),
            listing,
            log,
            notifier,
            reported: Mutex::new(None),
            discovered: None,
        }
    }

    /// Answers QUERY and LIST from `discovered` too, after the table.
    pub fn with_discovered(mut self, discovered: Arc<Mutex<Discovered>>) -> Registry {
        self.discovered = Some(discovered);
        self
    }

    fn discovered<T>(&self, what: impl FnOnce(&Discovered) -> Vec<T>) -> Vec<T> {
        self.discovered
            .as_ref()
            .map(|discovered| what(&lock(discovered)))
            .unwrap_or_default()
    }

    pub fn log(&self) -> &Logger {
        &self.log
    }

    /// The reply to send back to `peer`, if any. `list_limit` is what the
    /// transport's client reads of a LIST reply; `budget` the most bytes the
    /// reply may take (see [`super::budget`]): a list is cut to the items
    /// that fit, and a reply of which nothing fits is not sent, as silence
    /// tells an rpyc client no less than an empty answer.
    pub fn answer(
        &self,
        request: Request,
        peer: SocketAddr,
        list_limit: usize,
        budget: usize,
    ) -> Option<Vec<u8>> {
        let host = || peer.ip().to_string();
        let now = Instant::now();
        let mut table = lock(&self.table);
        let reply = match request {
            Request::Register { aliases, port } => {
                let endpoint = (host(), port);
                match table.register(&endpoint, &aliases, now) {
                    Ok(registration) => {
                        self.log_removed(&registration.pruned, "pruning stale");
                        if !registration.added.is_empty() {
                            self.log.limited(Flood::Registered).info(format_args!(
                                "registering {} as {}",
                                endpoint_text(&endpoint),
                                registration.added.join(", ")
                            ));
                        }
                        Some(ok_reply())
                    }
                    Err(refused) => {
                        // no "OK": the registrar says "no registry acknowledged"
                        self.warn(
                            peer.ip(),
                            format_args!(
                                "refusing to register {} as {}: {refused}",
                                endpoint_text(&endpoint),
                                aliases.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
            Request::Unregister { port } => {
                let endpoint = (host(), port);
                let removed = table.unregister(&endpoint, now);
                if !removed.is_empty() {
                    self.log.limited(Flood::Unregistered).info(format_args!(
                        "unregistering {} as {}",
                        endpoint_text(&endpoint),
                        removed.join(", ")
                    ));
                }
                Some(ok_reply())
            }
            Request::Query { name } => {
                let (endpoints, pruned) = table.query(&name, now);
                self.log_removed(&pruned, "pruning stale");
                let endpoints = merged(endpoints, self.discovered(|d| d.endpoints(&name)));
                let reply = endpoints_reply(&endpoints, MAX_MESSAGE.min(budget));
                whole_or_some(reply, !endpoints.is_empty())
            }
            Request::List { filter_host } => {
                if self.listing {
                    // rpyc lists names whose servers are long gone; we do not
                    let pruned = table.prune_if_due(now);
                    self.log_removed(&pruned, "pruning stale");
                    let names = merged(
                        table.names(filter_host.as_deref()),
                        self.discovered(|d| d.names(filter_host.as_deref())),
                    );
                    let reply = names_reply(Some(&names), list_limit.min(budget));
                    whole_or_some(reply, !names.is_empty())
                } else {
                    Some(names_reply(None, list_limit))
                }
            }
        };
        self.report(&table);
        reply.filter(|reply| reply.len() <= budget)
    }

    /// Logs a request that gets no answer.
    pub fn reject(&self, error: &RequestError, peer: SocketAddr) {
        self.warn(
            peer.ip(),
            format_args!("dropping a request from {}: {error}", peer_text(peer)),
        );
    }

    /// A warning about `source`, unless one was logged less than
    /// [`WARNING_WINDOW`] ago.
    pub fn warn(&self, source: IpAddr, message: fmt::Arguments<'_>) {
        let admitted = lock(&self.throttle).admit(source, Instant::now());
        match admitted {
            Some(0) => self.log.limited(Flood::RegistryRefused).warning(message),
            Some(suppressed) => self
                .log
                .limited(Flood::RegistryRefused)
                .warning(format_args!(
                    "{message} ({suppressed} more warnings suppressed since the last one)"
                )),
            None => {}
        }
    }

    /// Drops the entries not refreshed within the timeout.
    pub fn prune(&self) {
        let mut table = lock(&self.table);
        let pruned = table.prune(Instant::now());
        self.log_removed(&pruned, "pruning stale");
        self.report(&table);
    }

    pub fn status(&self) -> String {
        let (names, entries) = lock(&self.table).counts();
        status_text(names, entries)
    }

    /// One line per endpoint, naming all its names that went.
    fn log_removed(&self, removed: &[Removed], what: &str) {
        let mut grouped: Vec<(&Endpoint, Vec<&str>)> = Vec::new();
        for gone in removed {
            match grouped
                .iter_mut()
                .find(|(endpoint, _)| **endpoint == gone.endpoint)
            {
                Some((_, names)) => names.push(&gone.name),
                None => grouped.push((&gone.endpoint, vec![&gone.name])),
            }
        }
        for (endpoint, names) in grouped {
            self.log.limited(Flood::Pruned).info(format_args!(
                "{what} {} as {}",
                endpoint_text(endpoint),
                names.join(", ")
            ));
        }
    }

    fn report(&self, table: &Table) {
        let counts = table.counts();
        let mut reported = lock(&self.reported);
        if *reported != Some(counts) {
            *reported = Some(counts);
            self.notifier.status(&status_text(counts.0, counts.1));
        }
    }
}

/// `None` for a list reply cut to nothing when there was something to say.
fn whole_or_some(reply: Vec<u8>, had_items: bool) -> Option<Vec<u8>> {
    (!had_items || reply != [brine::TAG_EMPTY_TUPLE]).then_some(reply)
}

fn status_text(names: usize, entries: usize) -> String {
    format!("{names} service(s), {entries} registration(s)")
}

/// `host:port` as rpyc writes it, with brackets around an IPv6 host.
fn endpoint_text((host, port): &Endpoint) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub fn peer_text(peer: SocketAddr) -> String {
    endpoint_text(&(peer.ip().to_string(), peer.port()))
}

// Nothing panics while holding these locks; if something ever did, the data
// is still consistent enough to keep answering.
