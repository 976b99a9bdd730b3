//! How many bytes the UDP registry may send to a source address. UDP
//! sources can be forged, so every reply is a reply to a possible victim:
//! the registry must not turn a small request into a large answer for
//! whoever's address it bears. DNS servers meet the same problem with
//! Response Rate Limiting (BIND's and Knot's RRL), which caps replies per
//! second per source network; here the cap is on bytes, tied to the bytes
//! the source sent:
//!
//! - each request earns its source [`Limits::ratio`] bytes of reply per
//!   byte of request, spent by the reply to it or saved, up to
//!   [`Limits::source_burst`], for later ones;
//! - a source new to the registry (or silent for [`Limits::renewal`]) is
//!   topped up to that burst, the first time a reply needs more than its
//!   own credit, from one pool shared by all sources, which refills at
//!   [`Limits::pool_rate`] bytes a second up to [`Limits::pool_burst`]: an
//!   occasional client gets whole answers at once, but forging many sources
//!   yields no more than the pool.
//!
//! So, over any stretch of time, a source that keeps asking gets back at
//! most `ratio` × what it sent plus one burst, and all sources together at
//! most `ratio` × what they sent plus what the pool gave out. A reply the
//! allowance cannot carry is cut to the items that fit (QUERY and LIST
//! answers are lists; rpyc's clients take a shorter one as it is).
//!
//! The table of sources is bounded too: past [`Limits::sources`] the least
//! recently heard one is forgotten. Forgetting is never a gift: a source
//! that comes back starts with nothing saved and can only draw on the pool.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub ratio: usize,
    pub source_burst: usize,
    pub pool_burst: usize,
    /// Bytes a second.
    pub pool_rate: usize,
    pub sources: usize,
    pub renewal: Duration,
}

impl Default for Limits {
    /// The registry's real replies are small beside their requests: "OK" to
    /// a REGISTER of 30 bytes or more, one `(host, port)` pair (20 to 60
    /// bytes) to a QUERY of 16 or more. A ratio of 4 always carries those
    /// whole, and a few endpoints more; it is below every protocol in
    /// US-CERT's list of UDP amplification vectors (TA14-017A, from NetBIOS's
    /// 3.8 and SNMP's 6.3 up), where DNS stands at 28 to 54. The burst holds
    /// a LIST of some 250 names; the pool, four such lists at once and one a
    /// few seconds after. A source silent for a minute (a script listing
    /// services now and then) is topped up again.
    fn default() -> Limits {
        Limits {
            ratio: 4,
            source_burst: 4096,
            pool_burst: 16384,
            pool_rate: 1024,
            sources: 4096,
            renewal: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    /// Bytes of reply the source may still get.
    credit: usize,
    /// Whether it may be topped up from the pool.
    entitled: bool,
    last: Instant,
    /// The bucket's place in the least-recently-heard order.
    stamp: u64,
}

pub struct ReplyBudget {
    limits: Limits,
    buckets: HashMap<Source, Bucket>,
    /// Stamp → source, oldest first: the next to forget.
    order: BTreeMap<u64, Source>,
    next_stamp: u64,
    pool: f64,
    pool_at: Instant,
}

impl ReplyBudget {
    pub fn new(limits: Limits, now: Instant) -> ReplyBudget {
        ReplyBudget {
            limits,
            buckets: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            pool: limits.pool_burst as f64,
            pool_at: now,
        }
    }

    /// A request of `length` bytes came from `source`: the most bytes its
    /// reply may take. Call [`ReplyBudget::spend`] with what was sent.
    pub fn admit(&mut self, source: IpAddr, length: usize, now: Instant) -> usize {
        let limits = self.limits;
        let elapsed = now.saturating_duration_since(self.pool_at).as_secs_f64();
        self.pool = (self.pool + elapsed * limits.pool_rate as f64).min(limits.pool_burst as f64);
        self.pool_at = now;
        let key = Source::from(source);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let renewed = match self.buckets.get_mut(&key) {
            Some(bucket) => {
                self.order.remove(&bucket.stamp);
                bucket.stamp = stamp;
                let renewed = now.saturating_duration_since(bucket.last) >= limits.renewal;
                bucket.last = now;
                renewed
            }
            None => {
                if self.buckets.len() >= limits.sources {
                    if let Some((_, oldest)) = self.order.pop_first() {
                        self.buckets.remove(&oldest);
                    }
                }
                self.buckets.insert(
                    key,
                    Bucket {
                        credit: 0,
                        entitled: true,
                        last: now,
                        stamp,
                    },
                );
                true
            }
        };
        self.order.insert(stamp, key);
        let Some(bucket) = self.buckets.get_mut(&key) else {
            return 0;
        };
        // saved credit is capped before this request's is added, so that
        // a request is always worth its own ratio
        bucket.credit = bucket
            .credit
            .min(limits.source_burst)
            .saturating_add(length.saturating_mul(limits.ratio));
        bucket.entitled |= renewed;
        let credit = bucket.credit;
        credit + self.grant(&key)
    }

    /// What the pool would top the source's credit up with.
    fn grant(&self, key: &Source) -> usize {
        match self.buckets.get(key) {
            Some(bucket) if bucket.entitled => self
                .limits
                .source_burst
                .saturating_sub(bucket.credit)
                .min(self.pool as usize),
            _ => 0,
        }
    }

    /// `sent` bytes of reply went to `source`, after [`ReplyBudget::admit`].
    /// A reply beyond the source's own credit takes its top-up from the pool.
    pub fn spend(&mut self, source: IpAddr, sent: usize) {
        let key = Source::from(source);
        let needs_grant = self
            .buckets
            .get(&key)
            .is_some_and(|bucket| sent > bucket.credit);
        let grant = if needs_grant { self.grant(&key) } else { 0 };
        if let Some(bucket) = self.buckets.get_mut(&key) {
            if needs_grant && bucket.entitled {
                self.pool -= grant as f64;
                bucket.credit += grant;
                bucket.entitled = false;
            }
            bucket.credit = bucket.credit.saturating_sub(sent);
        }
    }

    /// How many sources are remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn small() -> Limits {
        Limits {
            ratio: 4,
            source_burst: 1000,
            pool_burst: 3000,
            pool_rate: 100,
            sources: 8,
            renewal: Duration::from_secs(60),
        }
    }

    /// Asks `count` times with `length`-byte requests, each taking all it
    /// may up to `want`; returns the bytes sent back.
    fn drain(
        budget: &mut ReplyBudget,
        source: IpAddr,
        length: usize,
        want: usize,
        count: usize,
        now: Instant,
    ) -> usize {
        let mut out = 0;
        for _ in 0..count {
            let sent = budget.admit(source, length, now).min(want);
            budget.spend(source, sent);
            out += sent;
        }
        out
    }

    #[test]
    fn a_source_gets_its_burst_then_ratio_times_what_it_sends() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        // the first request: its own earning topped up to the burst
        assert_eq!(budget.admit(ip(1), 20, t0), 1000);
        budget.spend(ip(1), 1000);
        let out = drain(&mut budget, ip(1), 20, 1500, 1000, t0);
        assert_eq!(out, 1000 * 80);
        // small answers are never held back
        assert_eq!(drain(&mut budget, ip(1), 20, 3, 10, t0), 30);
    }

    #[test]
    fn saved_credit_is_capped_at_the_burst() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        // registrations: big requests, tiny answers, no draw on the pool
        drain(&mut budget, ip(1), 500, 3, 100, t0);
        assert_eq!(budget.admit(ip(1), 16, t0), 1000 + 64);
        assert_eq!(budget.pool as usize, 3000);
    }

    #[test]
    fn over_any_stretch_a_busy_source_gets_at_most_ratio_times_plus_one_burst() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        let mut sent_in = 0;
        let mut out = 0;
        for step in 0..5000u64 {
            let now = t0 + Duration::from_millis(step * 10);
            let length = 16 + (step as usize * 7) % 100;
            sent_in += length;
            let sent = budget.admit(ip(1), length, now).min(15000);
            budget.spend(ip(1), sent);
            out += sent;
            assert!(out <= 4 * sent_in + 1000, "step {step}");
        }
    }

    #[test]
    fn many_sources_share_one_pool() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        let mut out = 0;
        for n in 0..100 {
            out += drain(&mut budget, ip(n), 16, 15000, 1, t0);
        }
        // each source its own 64 bytes, and the pool's 3000 on top
        assert_eq!(out, 100 * 64 + 3000);
        // the pool refills with time
        let later = t0 + Duration::from_secs(5);
        assert_eq!(budget.admit(ip(1000), 16, later), 500 + 64);
    }

    #[test]
    fn the_table_is_bounded_and_forgetting_gives_nothing_back() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        for n in 0..100 {
            drain(&mut budget, ip(n), 16, 15000, 1, t0);
            assert!(budget.len() <= 8);
        }
        // ip(0) was forgotten long ago and the pool is dry: only its own
        assert_eq!(budget.admit(ip(0), 16, t0), 64);
        // the most recent ones are remembered
        assert_eq!(budget.admit(ip(99), 16, t0), 64);
        assert_eq!(budget.len(), 8);
    }

    #[test]
    fn a_silent_source_is_topped_up_again() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        drain(&mut budget, ip(1), 16, 15000, 3, t0);
        assert_eq!(budget.admit(ip(1), 16, t0 + Duration::from_secs(59)), 64);
        budget.spend(ip(1), 64);
        let renewed = t0 + Duration::from_secs(59 + 60);
        assert_eq!(budget.admit(ip(1), 16, renewed), 1000);
    }

    #[test]
    fn ipv6_sources_count_by_their_64_bit_prefix() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(small(), t0);
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 2));
        drain(&mut budget, a, 16, 15000, 1, t0);
        assert_eq!(budget.admit(b, 16, t0), 64);
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        drain(&mut budget, mapped, 16, 15000, 1, t0);
        assert_eq!(budget.admit(ip(7), 16, t0), 64);
        assert_eq!(budget.len(), 2);
    }
}
