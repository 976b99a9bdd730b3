//! How a server makes itself known. Where it registers and as what: each
//! registry (an address, or a name resolved once the listeners' families
//! are known) gets a registrar for each TCP listener, announcing the
//! listener's address and port or what `--register-address` names. And
//! what it publishes through DNS-SD (`--dnssd`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::builder::ServeError;
use crate::daemon::dnssd::publisher::Publisher;
use crate::daemon::dnssd::Offer;
use crate::daemon::listener::Listener;
use crate::daemon::log::Logger;
use crate::registry::registrar::Registrar;
use crate::registry::Transport;

/// Where the registry is: an address, or a name resolved once the server's
/// own address (and so the family to pick) is known.
pub(super) enum RegistryAddr {
    Resolved(SocketAddr),
    Named(String, u16),
}

impl RegistryAddr {
    /// The registry's addresses (one, or what its name resolves to).
    fn resolve(&self) -> Result<Vec<SocketAddr>, ServeError> {
        match self {
            RegistryAddr::Resolved(addr) => Ok(vec![*addr]),
            RegistryAddr::Named(host, port) => (host.as_str(), *port)
                .to_socket_addrs()
                .map(Iterator::collect)
                .map_err(|error| {
                    ServeError::Register(format!("cannot resolve registry {host}: {error}"))
                }),
        }
    }

    fn name(&self) -> String {
        match self {
            RegistryAddr::Resolved(addr) => addr.to_string(),
            RegistryAddr::Named(host, _) => host.clone(),
        }
    }
}

/// A registrar for each registry and each TCP listener (the registry's
/// address of the listener's family; with `announce`, from its address
/// and with its port). A registry with no address of any listener's
/// family, and an announced address this machine does not have, are
/// errors.
pub(super) fn registrars(
    registries: &[(Transport, RegistryAddr)],
    announce: (Option<IpAddr>, Option<u16>),
    listeners: &[Listener],
    aliases: &[String],
    log: &Logger,
) -> Result<Vec<Registrar>, ServeError> {
    if registries.is_empty() {
        return Ok(Vec::new());
    }
    let locals: Vec<SocketAddr> = listeners.iter().filter_map(Listener::local_addr).collect();
    if locals.is_empty() {
        return Err(ServeError::Register(
            "registering needs a TCP listener to announce".into(),
        ));
    }
    let (host, port) = announce;
    if let Some(host) = host {
        if !crate::daemon::listener::is_local_address(host) {
            return Err(ServeError::Register(format!(
                "{host} is not an address of this machine: a registry records the address \
                 a registration comes from, so only this machine's own can be announced"
            )));
        }
        if !locals.iter().any(|local| local.is_ipv6() == host.is_ipv6()) {
            return Err(ServeError::Register(format!(
                "no listener of {host}'s family to announce as {host}"
            )));
        }
    }
    let mut made: Vec<(Transport, SocketAddr, IpAddr, u16)> = Vec::new();
    for (transport, registry) in registries {
        let addresses = registry.resolve()?;
        let mut any = false;
        for local in &locals {
            let Some(to) = addresses.iter().find(|a| a.is_ipv6() == local.is_ipv6()) else {
                continue;
            };
            any = true;
            let from = host
                .filter(|host| host.is_ipv6() == local.is_ipv6())
                .unwrap_or(local.ip());
            let entry = (*transport, *to, from, port.unwrap_or(local.port()));
            // a wildcard listener and the announced address say the same twice
            if !made.contains(&entry) {
                made.push(entry);
            }
        }
        if !any {
            return Err(ServeError::Register(format!(
                "registry {} has no address of the server's family",
                registry.name()
            )));
        }
    }
    Ok(made
        .into_iter()
        .map(|(transport, to, from, port)| {
            Registrar::new(transport, to, from, aliases.to_vec(), port, log.clone())
        })
        .collect())
}

/// The DNS-SD publisher of the TCP listeners not on a loopback address
/// (a loopback port is no use to another machine: said in the log).
pub(super) fn publisher(
    listeners: &[Listener],
    aliases: &[String],
    tls: bool,
    log: &Logger,
) -> Option<Publisher> {
    let tcp: Vec<SocketAddr> = listeners.iter().filter_map(Listener::local_addr).collect();
    let (loopback, reachable): (Vec<SocketAddr>, Vec<SocketAddr>) =
        tcp.into_iter().partition(|addr| addr.ip().is_loopback());
    for addr in &loopback {
        log.warning(format_args!(
            "DNS-SD: not publishing {addr}: other machines cannot reach a loopback address"
        ));
    }
    if reachable.is_empty() {
        if loopback.is_empty() {
            log.warning(format_args!("DNS-SD: no TCP listener to publish"));
        }
        return None;
    }
    let ports: Vec<u16> = reachable.iter().map(SocketAddr::port).collect();
    Publisher::start(Offer::per_port(aliases, &ports, tls), log)
}
