//! The calls of Avahi's D-Bus API (avahi-daemon 0.8,
//! `org.freedesktop.Avahi.Server`, `.EntryGroup` and `.ServiceBrowser`)
//! that publishing and browsing make, over zbus's blocking connection to
//! the system bus.

use zbus::blocking::{Connection, MessageIterator};
use zbus::zvariant::OwnedObjectPath;
use zbus::MatchRule;

/// Avahi's name on the system bus.
pub const BUS_NAME: &str = "org.freedesktop.Avahi";
const SERVER_PATH: &str = "/";
const SERVER: &str = "org.freedesktop.Avahi.Server";
const ENTRY_GROUP: &str = "org.freedesktop.Avahi.EntryGroup";
pub const SERVICE_BROWSER: &str = "org.freedesktop.Avahi.ServiceBrowser";

/// `AVAHI_IF_UNSPEC` and `AVAHI_PROTO_UNSPEC`: every interface, both
/// IPv4 and IPv6.
const ANY_INTERFACE: i32 = -1;
const ANY_PROTOCOL: i32 = -1;

/// `AvahiServerState`.
pub mod server_state {
    pub const REGISTERING: i32 = 1;
    pub const RUNNING: i32 = 2;
    pub const COLLISION: i32 = 3;
}

/// `AvahiEntryGroupState`.
pub mod group_state {
    pub const ESTABLISHED: i32 = 2;
    pub const COLLISION: i32 = 3;
    pub const FAILURE: i32 = 4;
}

/// A connection to the system bus and the events `listen` follows on it;
/// `None`, logged with what follows for the daemon (`otherwise`), if
/// either cannot be had.
pub fn connect<E>(
    listen: fn(&Connection) -> zbus::Result<std::sync::mpsc::Receiver<E>>,
    log: &crate::daemon::log::Logger,
    otherwise: &str,
) -> Option<(Connection, std::sync::mpsc::Receiver<E>)> {
    let bus = match Connection::system() {
        Ok(bus) => bus,
        Err(error) => {
            log.warning(format_args!(
                "DNS-SD: cannot reach the system D-Bus ({error}); {otherwise}"
            ));
            return None;
        }
    };
    match listen(&bus) {
        Ok(events) => Some((bus, events)),
        Err(error) => {
            log.warning(format_args!(
                "DNS-SD: cannot follow Avahi's signals ({error}); {otherwise}"
            ));
            None
        }
    }
}

/// Whether Avahi is on the system bus now.
pub fn is_running(bus: &Connection) -> zbus::Result<bool> {
    bus.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "NameHasOwner",
        &(BUS_NAME,),
    )?
    .body()
    .deserialize()
}

/// Avahi's signals of `interface` (all of its signals if `None`, but
/// only those named `member` if given).
pub fn signals(interface: Option<&str>, member: Option<&str>) -> zbus::Result<MatchRule<'static>> {
    let mut rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS_NAME)?;
    if let Some(interface) = interface {
        rule = rule.interface(interface.to_owned())?;
    }
    if let Some(member) = member {
        rule = rule.member(member.to_owned())?;
    }
    Ok(rule.build())
}

/// Avahi coming onto the system bus (`true`) or leaving it.
fn owner_changes() -> zbus::Result<MatchRule<'static>> {
    Ok(MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.DBus")?
        .interface("org.freedesktop.DBus")?
        .member("NameOwnerChanged")?
        .add_arg(BUS_NAME)?
        .build())
}

/// Subscribes to `rule` now, and hands each message to `each` in a thread
/// named `name` until it returns false: subscribed before anything is
/// asked of Avahi, so no signal an answer causes goes unheard.
pub fn follow(
    bus: &Connection,
    rule: MatchRule<'static>,
    queue: usize,
    name: &str,
    mut each: impl FnMut(&zbus::Message) -> bool + Send + 'static,
) -> zbus::Result<()> {
    let messages = MessageIterator::for_match_rule(rule, bus, Some(queue))?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for message in messages.flatten() {
                if !each(&message) {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|error| zbus::Error::Failure(error.to_string()))
}

/// Follows Avahi coming and going: `each(true)` when it gets onto the bus,
/// `each(false)` when it leaves, until `each` returns false.
pub fn follow_owner(
    bus: &Connection,
    mut each: impl FnMut(bool) -> bool + Send + 'static,
) -> zbus::Result<()> {
    follow(
        bus,
        owner_changes()?,
        64,
        "dnssd-owner",
        move |message| match message.body().deserialize::<(String, String, String)>() {
            Ok((_, _, new_owner)) => each(!new_owner.is_empty()),
            Err(_) => true,
        },
    )
}

/// Avahi's server object, through one connection to the system bus.
pub struct Avahi<'c> {
    pub bus: &'c Connection,
}

impl Avahi<'_> {
    fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> zbus::Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        self.bus
            .call_method(Some(BUS_NAME), path, Some(iface), method, body)?
            .body()
            .deserialize()
    }

    pub fn state(&self) -> zbus::Result<i32> {
        self.call(SERVER_PATH, SERVER, "GetState", &())
    }

    /// The host name Avahi publishes under (after its own renames).
    pub fn host_name(&self) -> zbus::Result<String> {
        self.call(SERVER_PATH, SERVER, "GetHostName", &())
    }

    /// Avahi's choice of the next name after `name` was taken.
    pub fn alternative_service_name(&self, name: &str) -> zbus::Result<String> {
        self.call(SERVER_PATH, SERVER, "GetAlternativeServiceName", &(name,))
    }

    /// A new, empty entry group, freed when this connection closes.
    pub fn entry_group_new(&self) -> zbus::Result<OwnedObjectPath> {
        self.call(SERVER_PATH, SERVER, "EntryGroupNew", &())
    }

    /// Adds a service of `service_type` on every interface and protocol,
    /// on the default domain and host name.
    pub fn add_service(
        &self,
        group: &str,
        name: &str,
        service_type: &str,
        port: u16,
        txt: &[Vec<u8>],
    ) -> zbus::Result<()> {
        let body = (
            ANY_INTERFACE,
            ANY_PROTOCOL,
            0u32,
            name,
            service_type,
            "",
            "",
            port,
            txt,
        );
        self.call(group, ENTRY_GROUP, "AddService", &body)
    }

    pub fn commit(&self, group: &str) -> zbus::Result<()> {
        self.call(group, ENTRY_GROUP, "Commit", &())
    }

    /// Withdraws what the group published; it can be filled again.
    pub fn reset(&self, group: &str) -> zbus::Result<()> {
        self.call(group, ENTRY_GROUP, "Reset", &())
    }

    /// Withdraws what the group published and frees it.
    pub fn free(&self, group: &str) -> zbus::Result<()> {
        self.call(group, ENTRY_GROUP, "Free", &())
    }

    /// A browser of `service_type` services in `domain` ("" for Avahi's
    /// default) on every interface and protocol; its signals
    /// (`ItemNew`, `ItemRemove`, `Failure`) come from the returned path.
    pub fn service_browser_new(
        &self,
        service_type: &str,
        domain: &str,
    ) -> zbus::Result<OwnedObjectPath> {
        let body = (ANY_INTERFACE, ANY_PROTOCOL, service_type, domain, 0u32);
        self.call(SERVER_PATH, SERVER, "ServiceBrowserNew", &body)
    }

    pub fn free_browser(&self, browser: &str) -> zbus::Result<()> {
        self.call(browser, SERVICE_BROWSER, "Free", &())
    }

    /// Resolves a service a browser found: its address (of the protocol
    /// it was found on), port and TXT strings.
    pub fn resolve_service(&self, found: &Found) -> zbus::Result<Resolved> {
        let body = (
            found.interface,
            found.protocol,
            found.name.as_str(),
            found.service_type.as_str(),
            found.domain.as_str(),
            found.protocol,
            0u32,
        );
        let (_, _, _, _, _, host, _, address, port, txt, _): ResolvedReply =
            self.call(SERVER_PATH, SERVER, "ResolveService", &body)?;
        Ok(Resolved {
            host,
            address,
            port,
            txt,
        })
    }
}

/// `ResolveService`'s answer: interface, protocol, name, type, domain,
/// host, address protocol, address, port, TXT, flags.
type ResolvedReply = (
    i32,
    i32,
    String,
    String,
    String,
    String,
    i32,
    String,
    u16,
    Vec<Vec<u8>>,
    u32,
);

/// A service as a browser's `ItemNew` and `ItemRemove` name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Found {
    pub interface: i32,
    pub protocol: i32,
    pub name: String,
    pub service_type: String,
    pub domain: String,
}

/// Where a found service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Its host's name (`box.local`).
    pub host: String,
    pub address: String,
    pub port: u16,
    pub txt: Vec<Vec<u8>>,
}
