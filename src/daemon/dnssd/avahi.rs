//! The calls of Avahi's D-Bus API (avahi-daemon 0.8,
//! `org.freedesktop.Avahi.Server`, `.EntryGroup` and `.ServiceBrowser`)
//! that publishing and browsing make, over zbus's blocking connection to
//! the system bus.

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

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
