//! What the registry learnt through DNS-SD (`rpyc-registry --dnssd`): the
//! `_rpyc._tcp` services Avahi found, answered beside the registered
//! ones. An entry lives as long as Avahi reports the service there; no
//! timeout prunes it.

use std::collections::HashMap;

use super::table::Endpoint;
use crate::daemon::dnssd::avahi::Found;
use crate::daemon::dnssd::browser::{Change, Service};

#[derive(Default)]
pub struct Discovered {
    /// Each found service, with when it was found (answers keep that order).
    services: HashMap<Found, (u64, Service)>,
    next_seq: u64,
}

impl Discovered {
    /// Applies what the browser saw; the line to log, if any.
    pub fn apply(&mut self, change: Change) -> Option<String> {
        match change {
            Change::Appeared(found, service) => {
                let line = format!(
                    "DNS-SD: found \"{}\" at {} as {}",
                    service.name,
                    endpoint_text(&endpoint(&service)),
                    service.txt.aliases.join(", ")
                );
                // Avahi resolves again when a record changes: said once,
                // and kept in its place
                if let Some((_, known)) = self.services.get_mut(&found) {
                    *known = service;
                    return None;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.services.insert(found, (seq, service));
                Some(line)
            }
            Change::Vanished(found) => {
                let (_, gone) = self.services.remove(&found)?;
                Some(format!(
                    "DNS-SD: \"{}\" at {} is gone",
                    gone.name,
                    endpoint_text(&endpoint(&gone))
                ))
            }
            Change::AllGone => {
                let count = self.services.len();
                self.services.clear();
                (count > 0).then(|| format!("DNS-SD: forgetting {count} service(s) found"))
            }
        }
    }

    fn in_order(&self) -> Vec<&Service> {
        let mut services: Vec<&(u64, Service)> = self.services.values().collect();
        services.sort_by_key(|(seq, _)| *seq);
        services.into_iter().map(|(_, service)| service).collect()
    }

    /// The endpoints of the services with alias `name` (any case), in the
    /// order they were found, each once.
    pub fn endpoints(&self, name: &str) -> Vec<Endpoint> {
        let name = name.to_uppercase();
        let mut endpoints = Vec::new();
        for service in self.in_order() {
            if service.txt.aliases.contains(&name) {
                push_new(&mut endpoints, endpoint(service));
            }
        }
        endpoints
    }

    /// Every alias found, in the order found, each once; only those of
    /// services at `filter_host` if given.
    pub fn names(&self, filter_host: Option<&str>) -> Vec<String> {
        let mut names = Vec::new();
        for service in self.in_order() {
            if filter_host.is_some_and(|host| host != service.address.to_string()) {
                continue;
            }
            for alias in &service.txt.aliases {
                push_new(&mut names, alias.clone());
            }
        }
        names
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// The registered items first, then the discovered ones not among them.
pub fn merged<T: PartialEq>(registered: Vec<T>, discovered: Vec<T>) -> Vec<T> {
    let mut all = registered;
    for item in discovered {
        push_new(&mut all, item);
    }
    all
}

fn push_new<T: PartialEq>(items: &mut Vec<T>, item: T) {
    if !items.contains(&item) {
        items.push(item);
    }
}

fn endpoint(service: &Service) -> Endpoint {
    (service.address.to_string(), service.port)
}

fn endpoint_text((host, port): &Endpoint) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::dnssd::Txt;

    fn found(name: &str, protocol: i32) -> Found {
        Found {
            interface: 2,
            protocol,
            name: name.into(),
            service_type: "_rpyc._tcp".into(),
            domain: "local".into(),
        }
    }

    fn service(name: &str, address: &str, port: u16, aliases: &[&str]) -> Service {
        Service {
            name: name.into(),
            address: address.parse().expect("an address"),
            port,
            txt: Txt {
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                tls: false,
            },
        }
    }

    fn endpoint(host: &str, port: u16) -> Endpoint {
        (host.into(), port)
    }

    #[test]
    fn a_found_service_answers_for_each_alias_until_it_goes() {
        let mut discovered = Discovered::default();
        let line = discovered.apply(Change::Appeared(
            found("CLASSIC on a", 0),
            service("CLASSIC on a", "10.0.0.1", 18812, &["CLASSIC", "SLAVE"]),
        ));
        assert_eq!(
            line.as_deref(),
            Some("DNS-SD: found \"CLASSIC on a\" at 10.0.0.1:18812 as CLASSIC, SLAVE")
        );
        assert_eq!(discovered.endpoints("slave"), [endpoint("10.0.0.1", 18812)]);
        assert_eq!(
            discovered.endpoints("CLASSIC"),
            [endpoint("10.0.0.1", 18812)]
        );
        assert!(discovered.endpoints("OTHER").is_empty());
        let gone = discovered.apply(Change::Vanished(found("CLASSIC on a", 0)));
        assert_eq!(
            gone.as_deref(),
            Some("DNS-SD: \"CLASSIC on a\" at 10.0.0.1:18812 is gone")
        );
        assert!(discovered.endpoints("CLASSIC").is_empty());
        assert!(discovered.is_empty());
    }

    #[test]
    fn one_service_on_two_protocols_answers_each_address_once() {
        let mut discovered = Discovered::default();
        discovered.apply(Change::Appeared(
            found("CLASSIC on a", 0),
            service("CLASSIC on a", "10.0.0.1", 18812, &["CLASSIC"]),
        ));
        discovered.apply(Change::Appeared(
            found("CLASSIC on a", 1),
            service("CLASSIC on a", "fd00::1", 18812, &["CLASSIC"]),
        ));
        // the same one again, as on a TXT change: no new line, no new answer
        let again = discovered.apply(Change::Appeared(
            found("CLASSIC on a", 0),
            service("CLASSIC on a", "10.0.0.1", 18812, &["CLASSIC"]),
        ));
        assert_eq!(again, None);
        assert_eq!(
            discovered.endpoints("CLASSIC"),
            [endpoint("10.0.0.1", 18812), endpoint("fd00::1", 18812)]
        );
        assert_eq!(discovered.len(), 2);
        assert_eq!(
            discovered.apply(Change::AllGone).as_deref(),
            Some("DNS-SD: forgetting 2 service(s) found")
        );
        assert!(discovered.endpoints("CLASSIC").is_empty());
        assert_eq!(discovered.apply(Change::AllGone), None);
    }

    #[test]
    fn names_are_listed_once_and_by_host() {
        let mut discovered = Discovered::default();
        discovered.apply(Change::Appeared(
            found("CLASSIC on a", 0),
            service("CLASSIC on a", "10.0.0.1", 18812, &["CLASSIC", "SLAVE"]),
        ));
        discovered.apply(Change::Appeared(
            found("CLASSIC on b", 0),
            service("CLASSIC on b", "10.0.0.2", 18812, &["CLASSIC", "SLAVE"]),
        ));
        discovered.apply(Change::Appeared(
            found("ECHO on b", 0),
            service("ECHO on b", "10.0.0.2", 18861, &["ECHO"]),
        ));
        assert_eq!(discovered.names(None), ["CLASSIC", "SLAVE", "ECHO"]);
        assert_eq!(discovered.names(Some("10.0.0.1")), ["CLASSIC", "SLAVE"]);
        assert!(discovered.names(Some("10.0.0.9")).is_empty());
    }

    #[test]
    fn registrations_come_first_and_a_discovered_twin_is_not_repeated() {
        let registered = vec![endpoint("10.0.0.1", 18812), endpoint("10.0.0.3", 1)];
        let discovered = vec![endpoint("10.0.0.2", 18812), endpoint("10.0.0.1", 18812)];
        assert_eq!(
            merged(registered, discovered),
            [
                endpoint("10.0.0.1", 18812),
                endpoint("10.0.0.3", 1),
                endpoint("10.0.0.2", 18812)
            ]
        );
        assert_eq!(
            merged(
                vec!["SLAVE".to_string()],
                vec!["CLASSIC".into(), "SLAVE".into()]
            ),
            ["SLAVE", "CLASSIC"]
        );
    }
}
