//! DNS-SD (RFC 6763) through the Avahi daemon: what a server publishes
//! for each TCP listener (`--dnssd`), and what a registry learns from
//! browsing (`rpyc-registry --dnssd`). The records themselves are
//! Avahi's to send; here are their names and TXT strings, the D-Bus calls
//! that hand them to Avahi (`avahi`), and the publisher (`publisher`).

pub mod avahi;
pub mod browser;
pub mod publisher;

/// The DNS-SD service type of an rpyc server, whatever its service.
pub const SERVICE_TYPE: &str = "_rpyc._tcp";

/// The longest instance name DNS allows: one label of 63 bytes.
pub const MAX_INSTANCE_NAME: usize = 63;

/// What one TCP port of a server is published as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The service's aliases, the first naming the instance.
    pub aliases: Vec<String>,
    pub port: u16,
    /// Whether the port speaks TLS.
    pub tls: bool,
}

impl Offer {
    /// The offers of a server: one per distinct port, in order.
    pub fn per_port(aliases: &[String], ports: &[u16], tls: bool) -> Vec<Offer> {
        let mut offers: Vec<Offer> = Vec::new();
        for &port in ports {
            if !offers.iter().any(|offer| offer.port == port) {
                offers.push(Offer {
                    aliases: aliases.to_vec(),
                    port,
                    tls,
                });
            }
        }
        offers
    }

    /// The instance name on `host`: "ALIAS on HOST", and the port after it
    /// for the offers past the first (`nth` > 0), which would otherwise
    /// share the name. Cut to DNS's 63 bytes at a character boundary.
    pub fn instance_name(&self, host: &str, nth: usize) -> String {
        let alias = self.aliases.first().map_or("RPYC", String::as_str);
        let name = if nth == 0 {
            format!("{alias} on {host}")
        } else {
            format!("{alias} on {host} ({})", self.port)
        };
        truncate_label(name)
    }

    /// The TXT strings: `txtvers=1`, `aliases=A,B` and `tls=0|1`.
    pub fn txt(&self) -> Vec<Vec<u8>> {
        vec![
            b"txtvers=1".to_vec(),
            format!("aliases={}", self.aliases.join(",")).into_bytes(),
            format!("tls={}", u8::from(self.tls)).into_bytes(),
        ]
    }
}

fn truncate_label(mut name: String) -> String {
    if name.len() > MAX_INSTANCE_NAME {
        let mut end = MAX_INSTANCE_NAME;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// What a published service's TXT strings say, as a registry reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txt {
    pub aliases: Vec<String>,
    pub tls: bool,
}

impl Txt {
    /// Reads TXT strings as RFC 6763 §6 says: `key=value`, keys compared
    /// without case, the first of a repeated key wins, a string without
    /// `=` is a key with no value. Aliases are upper-cased, as rpyc's
    /// registry keeps them; empty ones are dropped.
    pub fn parse(strings: &[Vec<u8>]) -> Txt {
        let mut txt = Txt::default();
        let mut seen: Vec<String> = Vec::new();
        for string in strings {
            let (key, value) = match string.iter().position(|&b| b == b'=') {
                Some(at) => (&string[..at], &string[at + 1..]),
                None => (&string[..], &[][..]),
            };
            let key = String::from_utf8_lossy(key).to_ascii_lowercase();
            if key.is_empty() || seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            let value = String::from_utf8_lossy(value);
            match key.as_str() {
                "aliases" => {
                    txt.aliases = value
                        .split(',')
                        .map(|alias| alias.trim().to_uppercase())
                        .filter(|alias| !alias.is_empty())
                        .collect();
                }
                "tls" => txt.tls = value.trim() == "1",
                _ => {}
            }
        }
        txt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic(port: u16) -> Offer {
        Offer {
            aliases: vec!["CLASSIC".into(), "SLAVE".into()],
            port,
            tls: false,
        }
    }

    #[test]
    fn an_offer_is_named_after_its_first_alias_and_host() {
        assert_eq!(classic(18812).instance_name("box", 0), "CLASSIC on box");
        assert_eq!(
            classic(18813).instance_name("box", 1),
            "CLASSIC on box (18813)"
        );
    }

    #[test]
    fn a_long_name_is_cut_to_one_label_at_a_character_boundary() {
        let host = format!("{}x", "é".repeat(40));
        let name = classic(1).instance_name(&host, 0);
        assert!(name.len() <= MAX_INSTANCE_NAME, "{}", name.len());
        assert!(name.starts_with("CLASSIC on é"));
        assert_eq!(name.len(), 63, "an é is two bytes: 11 + 2 × 26");
        // one byte short of a whole é: that é goes
        let odd = classic(1).instance_name(&format!("x{host}"), 0);
        assert_eq!(odd.len(), 62);
    }

    #[test]
    fn txt_strings_say_version_aliases_and_tls() {
        let mut offer = classic(18812);
        assert_eq!(
            offer.txt(),
            vec![
                b"txtvers=1".to_vec(),
                b"aliases=CLASSIC,SLAVE".to_vec(),
                b"tls=0".to_vec()
            ]
        );
        offer.tls = true;
        assert_eq!(offer.txt()[2], b"tls=1".to_vec());
    }

    #[test]
    fn txt_strings_read_back() {
        let offer = Offer {
            tls: true,
            ..classic(1)
        };
        assert_eq!(
            Txt::parse(&offer.txt()),
            Txt {
                aliases: vec!["CLASSIC".into(), "SLAVE".into()],
                tls: true
            }
        );
    }

    #[test]
    fn txt_keys_ignore_case_and_the_first_of_a_repeated_key_wins() {
        let strings: Vec<Vec<u8>> = vec![
            b"novalue".to_vec(),
            b"=orphan".to_vec(),
            b"ALIASES= my ,,svc".to_vec(),
            b"aliases=LATER".to_vec(),
            b"tls=yes".to_vec(),
            vec![b'x', 0xff, b'='],
        ];
        assert_eq!(
            Txt::parse(&strings),
            Txt {
                aliases: vec!["MY".into(), "SVC".into()],
                tls: false
            }
        );
    }

    #[test]
    fn one_offer_per_port() {
        let aliases = vec!["CLASSIC".to_string()];
        let offers = Offer::per_port(&aliases, &[18812, 18812, 18813], true);
        assert_eq!(
            offers.iter().map(|o| o.port).collect::<Vec<_>>(),
            [18812, 18813]
        );
        assert!(offers.iter().all(|o| o.tls));
    }
}
