//! At most one warning per source address per window: a flood of bad
//! datagrams must not become a flood of log lines. Suppressed warnings are
//! counted and the count rides on the source's next warning.
//!
//! The memory is bounded too: past [`Throttle::new`]'s `sources`, new
//! addresses share one overflow slot (spoofed UDP sources are free).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// When a warning was last let through; `None` for a new source.
    last: Option<Instant>,
    suppressed: u64,
}

pub struct Throttle {
    window: Duration,
    max_sources: usize,
    sources: HashMap<IpAddr, Slot>,
    overflow: Slot,
}

impl Throttle {
    pub fn new(window: Duration, max_sources: usize) -> Throttle {
        Throttle {
            window,
            max_sources,
            sources: HashMap::new(),
            overflow: Slot::default(),
        }
    }

    /// Whether a warning about `source` may be logged now: `Some(n)` with the
    /// number of warnings suppressed since the last one logged, or `None`.
    pub fn admit(&mut self, source: IpAddr, now: Instant) -> Option<u64> {
        let window = self.window;
        let expired = |slot: &Slot| {
            slot.last
                .is_none_or(|last| now.saturating_duration_since(last) >= window)
        };
        let known = self.sources.contains_key(&source);
        if !known && self.sources.len() >= self.max_sources {
            self.sources.retain(|_, slot| !expired(slot));
        }
        let slot = if known || self.sources.len() < self.max_sources {
            self.sources.entry(source).or_default()
        } else {
            &mut self.overflow
        };
        if expired(slot) {
            let suppressed = slot.suppressed;
            *slot = Slot {
                last: Some(now),
                suppressed: 0,
            };
            Some(suppressed)
        } else {
            slot.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn one_warning_per_source_per_window_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(5), 16);
        assert_eq!(throttle.admit(ip(1), t0), Some(0));
        for _ in 0..10 {
            assert_eq!(throttle.admit(ip(1), t0 + Duration::from_secs(1)), None);
        }
        // another source is not held back
        assert_eq!(throttle.admit(ip(2), t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(throttle.admit(ip(1), t0 + Duration::from_secs(5)), Some(10));
        assert_eq!(throttle.admit(ip(1), t0 + Duration::from_secs(6)), None);
    }

    #[test]
    fn many_sources_share_an_overflow_slot_until_old_ones_expire() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(5), 2);
        assert_eq!(throttle.admit(ip(1), t0), Some(0));
        assert_eq!(throttle.admit(ip(2), t0), Some(0));
        assert_eq!(throttle.admit(ip(3), t0), Some(0));
        assert_eq!(throttle.admit(ip(4), t0), None);
        assert_eq!(throttle.sources.len(), 2);
        // the window passed: the old sources make room again
        let later = t0 + Duration::from_secs(5);
        assert_eq!(throttle.admit(ip(4), later), Some(0));
        assert_eq!(throttle.sources.len(), 1);
    }
}
