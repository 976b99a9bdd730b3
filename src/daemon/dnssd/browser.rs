//! Browsing: the `_rpyc._tcp` services Avahi finds, resolved, as a stream
//! of changes (what `rpyc-registry --dnssd` answers from). A thread of its
//! own follows Avahi: it browses each domain asked for, resolves what
//! appears, reports what goes, and starts again when `avahi-daemon`
//! restarts; while Avahi is away it reports that everything went.

use std::net::IpAddr;
use std::sync::mpsc;

use zbus::blocking::Connection;

use super::avahi::{self, Avahi, Found};
use super::{Txt, SERVICE_TYPE};
use crate::daemon::log::Logger;

/// A service found, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The instance name ("CLASSIC on box").
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub txt: Txt,
}

/// What the browser tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Appeared(Found, Service),
    Vanished(Found),
    /// Avahi went away: nothing found before holds.
    AllGone,
}

/// Starts browsing `domains` ("" is Avahi's default, the link's `local`)
/// in a thread, telling `changes` what it finds. Whatever goes wrong is
/// logged there; the caller serves on.
pub fn start(
    domains: Vec<String>,
    log: Logger,
    changes: impl Fn(Change) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("dnssd-browse".into())
        .spawn(move || browse(&domains, &log, &changes))
        .map(drop)
}

enum Event {
    AvahiOwner(bool),
    ItemNew(Found),
    ItemRemove(Found),
    Failure(String),
}

fn browse(domains: &[String], log: &Logger, changes: &dyn Fn(Change)) {
    let Some((bus, events)) = avahi::connect(listen, log, "answering from registrations only")
    else {
        return;
    };
    let avahi = Avahi { bus: &bus };
    let start_browsing = || {
        for domain in domains {
            if let Err(error) = avahi.service_browser_new(SERVICE_TYPE, domain) {
                log.warning(format_args!(
                    "DNS-SD: Avahi cannot browse {}: {error}",
                    shown(domain)
                ));
            }
        }
    };
    match avahi::is_running(&bus) {
        Ok(true) => start_browsing(),
        _ => log.warning(format_args!(
            "DNS-SD: Avahi is not running (no {} on the system bus); browsing once it starts",
            avahi::BUS_NAME
        )),
    }
    for event in events {
        match event {
            Event::AvahiOwner(true) => {
                log.info(format_args!("DNS-SD: Avahi started; browsing"));
                start_browsing();
            }
            Event::AvahiOwner(false) => {
                log.warning(format_args!(
                    "DNS-SD: Avahi stopped; answering from registrations only until it is back"
                ));
                changes(Change::AllGone);
            }
            Event::ItemNew(found) => match resolve(&avahi, &found) {
                Ok(Some(service)) => changes(Change::Appeared(found, service)),
                Ok(None) => {}
                Err(error) => log.info(format_args!(
                    "DNS-SD: cannot resolve \"{}\" ({error})",
                    found.name
                )),
            },
            Event::ItemRemove(found) => changes(Change::Vanished(found)),
            Event::Failure(error) => {
                log.warning(format_args!("DNS-SD: browsing failed: {error}"));
            }
        }
    }
}

fn shown(domain: &str) -> &str {
    if domain.is_empty() {
        "the default domain"
    } else {
        domain
    }
}

/// The service, unless its address is one no client could use (an IPv6
/// link-local address means nothing without its interface).
fn resolve(avahi: &Avahi<'_>, found: &Found) -> zbus::Result<Option<Service>> {
    let resolved = avahi.resolve_service(found)?;
    let Ok(address) = resolved.address.parse::<IpAddr>() else {
        return Ok(None);
    };
    if let IpAddr::V6(v6) = address {
        if v6.is_unicast_link_local() {
            return Ok(None);
        }
    }
    Ok(Some(Service {
        name: found.name.clone(),
        address,
        port: resolved.port,
        txt: Txt::parse(&resolved.txt),
    }))
}

/// Follows Avahi coming and going, and every service browser's signals,
/// into the returned channel: subscribed before any browser exists, since
/// Avahi may send the first `ItemNew` before `ServiceBrowserNew` returns.
fn listen(bus: &Connection) -> zbus::Result<mpsc::Receiver<Event>> {
    let (sender, events) = mpsc::channel();
    let to_owner = sender.clone();
    avahi::follow_owner(bus, move |running| {
        to_owner.send(Event::AvahiOwner(running)).is_ok()
    })?;
    let items = avahi::signals(Some(avahi::SERVICE_BROWSER), None)?;
    avahi::follow(bus, items, 4096, "dnssd-items", move |message| {
        let header = message.header();
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        let body = message.body();
        let item = || {
            body.deserialize::<(i32, i32, String, String, String, u32)>()
                .ok()
                .map(
                    |(interface, protocol, name, service_type, domain, _)| Found {
                        interface,
                        protocol,
                        name,
                        service_type,
                        domain,
                    },
                )
        };
        let event = match member.as_str() {
            "ItemNew" => item().map(Event::ItemNew),
            "ItemRemove" => item().map(Event::ItemRemove),
            "Failure" => body
                .deserialize::<(String,)>()
                .ok()
                .map(|(error,)| Event::Failure(error)),
            _ => None,
        };
        event.is_none_or(|event| sender.send(event).is_ok())
    })?;
    Ok(events)
}
