//! The calls of Avahi's D-Bus API (avahi-daemon 0.8,
//! `org.freedesktop.Avahi.Server` and `.EntryGroup`) a publisher makes,
//! over zbus's blocking connection to the system bus.

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

/// Avahi's name on the system bus.
pub const BUS_NAME: &str = "org.freedesktop.Avahi";
const SERVER_PATH: &str = "/";
const SERVER: &str = "org.freedesktop.Avahi.Server";
const ENTRY_GROUP: &str = "org.freedesktop.Avahi.EntryGroup";

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
}
