//! Who a request comes from, for the registry's per-source limits.

use std::net::IpAddr;

/// Sources are told apart by address; an IPv6 host usually holds a whole
/// /64, so its addresses count as one (as the default prefix lengths of
/// DNS servers' response rate limiting do for networks), and an IPv4
/// address mapped into IPv6 is that IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}
