//! The registry's service table, as rpyc 6.0.2's `RegistryServer.services`:
//! upper-cased service names, each with the endpoints `(host, port)` that
//! registered it and when they last did. Time comes in as an argument, so
//! the table is pure and its tests need no sleeps.
//!
//! Unlike rpyc's, the table is bounded: one source host holds at most
//! [`Limits::per_host`] entries (name × port) and the whole table at most
//! [`Limits::total`], so a flood of registrations cannot grow it forever.
//! UDP sources can be forged, so many "hosts" may flood at once: the last
//! [`Limits::reserved`] entries are kept for hosts the registry already
//! knows (holding entries, or having held some within the timeout), each up
//! to [`Limits::reserved_per_host`]. A flood of new sources stops short of
//! them, and a server registered before it can still come back after a
//! restart. Entries are never taken from one host for another: what a
//! flood holds, it holds until it stops refreshing and the timeout prunes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A server's address as clients get it back: the registering packet's
/// source host and the port it named.
pub type Endpoint = (String, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_host: usize,
    pub total: usize,
    /// The top of the table, kept for known hosts.
    pub reserved: usize,
    /// What a known host may hold once the table is into its reserve.
    pub reserved_per_host: usize,
}

impl Default for Limits {
    /// A host registers a handful of names (a classic server two, a few
    /// hosted services a few more): 64 is far beyond that, and it takes 192
    /// forged sources rather than 16 to reach the reserve. The whole table
    /// stays in the tens of megabytes even with 1500-byte names. The
    /// reserve holds 512 known hosts coming back with 8 names each.
    fn default() -> Limits {
        Limits {
            per_host: 64,
            total: 16384,
            reserved: 4096,
            reserved_per_host: 8,
        }
    }
}

/// One entry that left the table, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub name: String,
    pub endpoint: Endpoint,
}

/// What a REGISTER did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// The names that are new for the endpoint (none for a keepalive).
    pub added: Vec<String>,
    /// Stale entries dropped to make room.
    pub pruned: Vec<Removed>,
}

/// Why a REGISTER changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{host} already holds {held} of its {limit} entries")]
    HostFull {
        host: String,
        held: usize,
        limit: usize,
    },
    #[error("the registry already holds {held} of its {limit} entries")]
    TableFull { held: usize, limit: usize },
    #[error(
        "the registry holds {held} of its {limit} entries and keeps the rest \
         for hosts already registered (up to {per_host} entries each; {host} holds {host_held})"
    )]
    Reserved {
        host: String,
        host_held: usize,
        held: usize,
        limit: usize,
        per_host: usize,
    },
}

/// What the table knows of a source host.
#[derive(Debug, Clone, Copy)]
struct Host {
    held: usize,
    /// When it last registered or lost its last entry: a host with none
    /// left is still known for a timeout after that.
    last: Instant,
}

struct Service {
    /// When the name first appeared: LIST answers in this order, as
    /// rpyc's dict iterates in insertion order.
    seq: u64,
    /// In insertion order, so that QUERY's stable sort by time breaks ties
    /// as rpyc's does.
    endpoints: Vec<(Endpoint, Instant)>,
}

pub struct Table {
    services: HashMap<String, Service>,
    hosts: HashMap<String, Host>,
    /// Hosts holding nothing, remembered as known.
    departed: usize,
    total: usize,
    next_seq: u64,
    timeout: Duration,
    limits: Limits,
    last_prune: Option<Instant>,
}

/// Entries outlive their timeout by at most this much for want of a prune;
/// the timeout is a whole number of seconds, at least one.
pub const PRUNE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

impl Table {
    /// `timeout`: how long an entry lives after its last registration.
    pub fn new(timeout: Duration, limits: Limits) -> Table {
        Table {
            services: HashMap::new(),
            hosts: HashMap::new(),
            departed: 0,
            total: 0,
            next_seq: 0,
            timeout,
            limits,
            last_prune: None,
        }
    }

    /// How many names, and how many entries (name × endpoint).
    pub fn counts(&self) -> (usize, usize) {
        (self.services.len(), self.total)
    }

    /// REGISTER: adds or refreshes `endpoint` under every alias. It is all
    /// or nothing: if the new entries would pass a limit even once stale
    /// entries are dropped, nothing is added or refreshed.
    pub fn register(
        &mut self,
        endpoint: &Endpoint,
        aliases: &[String],
        now: Instant,
    ) -> Result<Registration, Refused> {
        let mut names: Vec<String> = aliases.iter().map(|alias| alias.to_uppercase()).collect();
        // rpyc stores each name once however often it is given
        let mut seen = std::collections::HashSet::new();
        names.retain(|name| seen.insert(name.clone()));
        let fresh: Vec<String> = names
            .iter()
            .filter(|name| self.position(name, endpoint).is_none())
            .cloned()
            .collect();
        let mut pruned = Vec::new();
        if self.check_room(&endpoint.0, fresh.len(), now).is_err() {
            // stale entries must not count against a host that came back
            pruned = self.prune_if_due(now);
            self.check_room(&endpoint.0, fresh.len(), now)?;
        }
        if let Some(host) = self.hosts.get_mut(&endpoint.0) {
            host.last = now;
        }
        for name in &names {
            match self.position(name, endpoint) {
                Some(index) => {
                    if let Some(service) = self.services.get_mut(name) {
                        service.endpoints[index].1 = now;
                    }
                }
                None => self.insert(name, endpoint, now),
            }
        }
        Ok(Registration {
            added: fresh,
            pruned,
        })
    }

    /// UNREGISTER: removes `endpoint` from every name; returns the names it
    /// had. The host stays known for a timeout: it is likely to come back.
    pub fn unregister(&mut self, endpoint: &Endpoint, now: Instant) -> Vec<String> {
        let mut removed: Vec<(u64, String)> = Vec::new();
        self.services.retain(|name, service| {
            let before = service.endpoints.len();
            service.endpoints.retain(|(held, _)| held != endpoint);
            if service.endpoints.len() != before {
                removed.push((service.seq, name.clone()));
            }
            !service.endpoints.is_empty()
        });
        self.forget(&endpoint.0, removed.len());
        if let Some(host) = self.hosts.get_mut(&endpoint.0) {
            host.last = now;
        }
        removed.sort();
        removed.into_iter().map(|(_, name)| name).collect()
    }

    /// QUERY: the live endpoints of `name`, least recently registered first
    /// (rpyc's order), and the stale ones it dropped on the way, as rpyc does.
    pub fn query(&mut self, name: &str, now: Instant) -> (Vec<Endpoint>, Vec<Removed>) {
        // names are kept upper-cased; most queries already are
        let upper_already = name
            .chars()
            .all(|c| c.to_uppercase().eq(std::iter::once(c)));
        let name: std::borrow::Cow<'_, str> = if upper_already {
            name.into()
        } else {
            name.to_uppercase().into()
        };
        let Some(service) = self.services.get_mut(name.as_ref()) else {
            return (Vec::new(), Vec::new());
        };
        let timeout = self.timeout;
        let mut stale = Vec::new();
        service.endpoints.retain(|(endpoint, at)| {
            let live = !is_stale(*at, now, timeout);
            if !live {
                stale.push(endpoint.clone());
            }
            live
        });
        let mut live: Vec<&(Endpoint, Instant)> = service.endpoints.iter().collect();
        live.sort_by_key(|(_, at)| *at);
        let endpoints = live
            .into_iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        if service.endpoints.is_empty() {
            self.services.remove(name.as_ref());
        }
        let removed = stale
            .into_iter()
            .map(|endpoint| {
                self.forget(&endpoint.0, 1);
                Removed {
                    name: name.to_string(),
                    endpoint,
                }
            })
            .collect();
        (endpoints, removed)
    }

    /// LIST: the names in the order they appeared, only those with an
    /// endpoint on `filter_host` if given. Call [`Table::prune`] first for
    /// live names only (rpyc lists stale ones too).
    pub fn names(&self, filter_host: Option<&str>) -> Vec<String> {
        let mut names: Vec<(u64, &String)> = self
            .services
            .iter()
            .filter(|(_, service)| {
                filter_host
                    .is_none_or(|host| service.endpoints.iter().any(|((held, _), _)| held == host))
            })
            .map(|(name, service)| (service.seq, name))
            .collect();
        names.sort();
        names.into_iter().map(|(_, name)| name.clone()).collect()
    }

    /// [`Table::prune`], unless the last one was less than
    /// [`PRUNE_AT_MOST_EVERY`] ago: for requests that want the table pruned
    /// (LIST, a REGISTER that finds no room), which a flood can send by the
    /// thousand a second, and a prune walks the whole table.
    pub fn prune_if_due(&mut self, now: Instant) -> Vec<Removed> {
        let due = self
            .last_prune
            .is_none_or(|last| now.saturating_duration_since(last) >= PRUNE_AT_MOST_EVERY);
        if due {
            self.prune(now)
        } else {
            Vec::new()
        }
    }

    /// Drops every entry not refreshed within the timeout.
    pub fn prune(&mut self, now: Instant) -> Vec<Removed> {
        self.last_prune = Some(now);
        let timeout = self.timeout;
        let mut ordered: Vec<(u64, Removed)> = Vec::new();
        self.services.retain(|name, service| {
            service.endpoints.retain(|(endpoint, at)| {
                let stale = is_stale(*at, now, timeout);
                if stale {
                    ordered.push((
                        service.seq,
                        Removed {
                            name: name.clone(),
                            endpoint: endpoint.clone(),
                        },
                    ));
                }
                !stale
            });
            !service.endpoints.is_empty()
        });
        // a stable order for the log, whatever the hash map's
        ordered.sort_by_key(|(seq, _)| *seq);
        let removed = ordered
            .into_iter()
            .map(|(_, gone)| {
                self.forget(&gone.endpoint.0, 1);
                gone
            })
            .collect();
        if self.departed > 0 {
            let before = self.hosts.len();
            self.hosts
                .retain(|_, host| host.held > 0 || !is_stale(host.last, now, timeout));
            self.departed -= before - self.hosts.len();
        }
        removed
    }

    fn position(&self, name: &str, endpoint: &Endpoint) -> Option<usize> {
        self.services
            .get(name)?
            .endpoints
            .iter()
            .position(|(held, _)| held == endpoint)
    }

    fn check_room(&self, host: &str, adding: usize, now: Instant) -> Result<(), Refused> {
        let known = self.hosts.get(host);
        let held = known.map_or(0, |known| known.held);
        if held + adding > self.limits.per_host {
            return Err(Refused::HostFull {
                host: host.to_owned(),
                held,
                limit: self.limits.per_host,
            });
        }
        if self.total + adding > self.limits.total {
            return Err(Refused::TableFull {
                held: self.total,
                limit: self.limits.total,
            });
        }
        let open = self.limits.total.saturating_sub(self.limits.reserved);
        let is_known =
            known.is_some_and(|known| known.held > 0 || !is_stale(known.last, now, self.timeout));
        if self.total + adding > open
            && adding > 0
            && !(is_known && held + adding <= self.limits.reserved_per_host)
        {
            return Err(Refused::Reserved {
                host: host.to_owned(),
                host_held: held,
                held: self.total,
                limit: self.limits.total,
                per_host: self.limits.reserved_per_host,
            });
        }
        Ok(())
    }

    fn insert(&mut self, name: &str, endpoint: &Endpoint, now: Instant) {
        let next_seq = &mut self.next_seq;
        self.services
            .entry(name.to_owned())
            .or_insert_with(|| {
                *next_seq += 1;
                Service {
                    seq: *next_seq,
                    endpoints: Vec::new(),
                }
            })
            .endpoints
            .push((endpoint.clone(), now));
        match self.hosts.get_mut(&endpoint.0) {
            Some(host) => {
                if host.held == 0 {
                    self.departed = self.departed.saturating_sub(1);
                }
                host.held += 1;
                host.last = now;
            }
            None => {
                self.hosts
                    .insert(endpoint.0.clone(), Host { held: 1, last: now });
            }
        }
        self.total += 1;
    }

    /// Counts `gone` entries of `host` out. A host left with none is
    /// remembered for a timeout after it was last heard (see
    /// [`Limits::reserved`]), but only so many of them: past
    /// [`Limits::reserved`] departed hosts, all are forgotten.
    fn forget(&mut self, host: &str, gone: usize) {
        if gone == 0 {
            return;
        }
        self.total = self.total.saturating_sub(gone);
        if let Some(known) = self.hosts.get_mut(host) {
            known.held = known.held.saturating_sub(gone);
            if known.held == 0 {
                self.departed += 1;
            }
        }
        if self.departed > self.limits.reserved {
            self.hosts.retain(|_, known| known.held > 0);
            self.departed = 0;
        }
    }
}

/// rpyc keeps an entry while `t >= now - timeout`.
fn is_stale(at: Instant, now: Instant, timeout: Duration) -> bool {
    now.saturating_duration_since(at) > timeout
}

#[cfg(test)]
mod tests;
