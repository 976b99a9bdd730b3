//! Lines a peer can cause as often as it likes (one per connection, per
//! failed handshake, per datagram), kept to a rate as journald keeps a
//! service's (`RateLimitIntervalSec=`, `RateLimitBurst=`): each kind of
//! line gets [`BURST`] lines per [`INTERVAL`]; the rest of the interval's
//! lines of that kind are counted, not written, and the count becomes one
//! line, "N similar messages suppressed", when the interval has ended (at
//! the next line of any kind, or at the latest at the next line of that
//! kind) or the daemon stops.
//!
//! The windows are per kind, not per peer: a peer's addresses are not
//! scarce (IPv6, spoofed datagrams), so only a limit for everyone bounds
//! what a flood writes. A flood then hides the lines of that kind of the
//! other peers too, as with journald; the count says how many there were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Level;
use crate::sync::lock;

/// journald's default `RateLimitIntervalSec=`.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Lines of one kind per [`INTERVAL`]: a connection every 0.3 s, or a
/// registration every 0.3 s, is all logged (more than a busy interactive
/// server sees); a flood writes at most 101 lines of each kind per 30 s,
/// about 10 KB, whatever its rate. journald's own default, 10 000 per
/// service, is a budget for all of a service's lines, not one kind.
pub const BURST: u32 = 100;

/// A kind of line that a peer can cause at will; each is limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// `accepted PEER`.
    Accepted,
    /// A connection turned away for want of room (`--max-connections`, a
    /// busy thread pool, no thread or process to serve it).
    Refused,
    /// `accept()` failing for reasons of the moment (a peer that gave up,
    /// no file descriptors left): one line per try while it lasts.
    AcceptFailed,
    /// `PEER failed to authenticate` (TLS handshakes).
    Authentication,
    /// `welcome PEER`.
    Welcome,
    /// `goodbye PEER`.
    Goodbye,
    /// A connection's end by error or timeout (a peer that sent nothing,
    /// went idle, reset, or sent something bad).
    Disconnected,
    /// The registry's `registering ... as NAMES`.
    Registered,
    /// The registry's `unregistering ... as NAMES`.
    Unregistered,
    /// The registry's `pruning stale ... as NAMES`.
    Pruned,
    /// The registry's warnings about requests it refused or dropped.
    RegistryRefused,
    /// An exception a client's request raised (at debug level).
    RequestException,
}

impl Flood {
    const ALL: [Flood; 12] = [
        Flood::Accepted,
        Flood::Refused,
        Flood::AcceptFailed,
        Flood::Authentication,
        Flood::Welcome,
        Flood::Goodbye,
        Flood::Disconnected,
        Flood::Registered,
        Flood::Unregistered,
        Flood::Pruned,
        Flood::RegistryRefused,
        Flood::RequestException,
    ];

    /// What the suppressed lines were, for the line that counts them.
    fn what(self) -> &'static str {
        match self {
            Flood::Accepted => "accepted connections",
            Flood::Refused => "refused connections",
            Flood::AcceptFailed => "failed accepts",
            Flood::Authentication => "failed authentications",
            Flood::Welcome => "welcomes",
            Flood::Goodbye => "goodbyes",
            Flood::Disconnected => "connection errors",
            Flood::Registered => "registrations",
            Flood::Unregistered => "unregistrations",
            Flood::Pruned => "pruned registrations",
            Flood::RegistryRefused => "refused registry requests",
            Flood::RequestException => "request exceptions",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many lines of a kind go through per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub interval: Duration,
    pub burst: u32,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            interval: INTERVAL,
            burst: BURST,
        }
    }
}

/// The lines of one kind that a window did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub kind: Flood,
    pub count: u64,
    /// The most severe of them, and at least a warning: a flood is news.
    pub level: Level,
    /// The logger that would have written them (`SLAVE/18812`).
    pub name: Arc<str>,
}

impl Suppressed {
    /// The message of the line that stands for them.
    pub fn message(&self, rule: Rule) -> String {
        format!(
            "{} similar messages suppressed ({}: more than {} in {}s)",
            self.count,
            self.kind.what(),
            rule.burst,
            rule.interval.as_secs()
        )
    }
}

/// Whether a line may be written.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Write it, after the count of its kind's last window, if any.
    Pass(Option<Suppressed>),
    Suppress,
}

/// One kind's current interval.
#[derive(Default)]
struct Window {
    /// When its first line came; `None` until one comes.
    started: Option<Instant>,
    passed: u32,
    suppressed: u64,
    level: Option<Level>,
    name: Option<Arc<str>>,
}

impl Window {
    /// The count so far, which starts again from nothing.
    fn take(&mut self, kind: Flood) -> Option<Suppressed> {
        let count = std::mem::take(&mut self.suppressed);
        let level = self.level.take();
        let name = self.name.take();
        if count == 0 {
            return None;
        }
        Some(Suppressed {
            kind,
            count,
            level: level.map_or(Level::Warning, |level| level.max(Level::Warning)),
            name: name.unwrap_or_else(|| Arc::from("")),
        })
    }

    fn ends(&self, interval: Duration) -> Option<Instant> {
        self.started.map(|started| started + interval)
    }
}

/// The windows of every kind, shared by a logger's clones (and so by all
/// threads of a process).
pub struct Limiter {
    rule: Rule,
    /// One lock per kind: a flood of one kind does not wait on another's.
    windows: [Mutex<Window>; Flood::ALL.len()],
    /// The origin of `due`.
    base: Instant,
    /// When the first window holding a count ends, in nanoseconds since
    /// `base`; `u64::MAX` when none holds one. Every line looks at it, so
    /// that a count is written soon after its interval, without a timer
    /// thread (a forking server's parent must stay single-threaded).
    due: AtomicU64,
}

impl Limiter {
    pub fn new(rule: Rule, now: Instant) -> Limiter {
        Limiter {
            rule,
            windows: Default::default(),
            base: now,
            due: AtomicU64::new(u64::MAX),
        }
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Whether a line of `kind` from logger `name` may be written at `now`.
    pub fn admit(&self, kind: Flood, level: Level, name: &Arc<str>, now: Instant) -> Admission {
        let mut window = lock(&self.windows[kind.index()]);
        let mut last = None;
        if window
            .ends(self.rule.interval)
            .is_some_and(|end| now >= end)
        {
            last = window.take(kind);
            *window = Window::default();
        }
        let started = *window.started.get_or_insert(now);
        if window.passed < self.rule.burst {
            window.passed += 1;
            return Admission::Pass(last);
        }
        window.suppressed += 1;
        window.level = Some(window.level.map_or(level, |was| was.max(level)));
        if window.name.is_none() {
            window.name = Some(name.clone());
        }
        if window.suppressed == 1 {
            // under the window's lock, so that `expired` either sees this
            // count or finds `due` set again after it cleared it
            self.due
                .fetch_min(self.nanos(started + self.rule.interval), Ordering::AcqRel);
        }
        Admission::Suppress
    }

    /// The counts of windows that ended by `now`; nothing, and no lock
    /// taken, until the first of them ends.
    pub fn expired(&self, now: Instant) -> Vec<Suppressed> {
        let now_nanos = self.nanos(now);
        if now_nanos < self.due.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.due.store(u64::MAX, Ordering::Release);
        let mut ended = Vec::new();
        for kind in Flood::ALL {
            let mut window = lock(&self.windows[kind.index()]);
            if window.suppressed == 0 {
                continue;
            }
            match window.ends(self.rule.interval) {
                Some(end) if now < end => {
                    self.due.fetch_min(self.nanos(end), Ordering::AcqRel);
                }
                _ => {
                    ended.extend(window.take(kind));
                    *window = Window::default();
                }
            }
        }
        ended
    }

    /// Every count so far, ended or not (the daemon is stopping); the
    /// windows go on, so lines past their burst are still counted.
    pub fn take_all(&self) -> Vec<Suppressed> {
        self.due.store(u64::MAX, Ordering::Release);
        Flood::ALL
            .iter()
            .filter_map(|&kind| lock(&self.windows[kind.index()]).take(kind))
            .collect()
    }

    /// Starts every window afresh: in a forked child, whose copy of the
    /// parent's counts is the parent's to write.
    pub fn forget(&self) {
        for window in &self.windows {
            *lock(window) = Window::default();
        }
        self.due.store(u64::MAX, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        interval: Duration::from_secs(30),
        burst: 3,
    };

    fn name() -> Arc<str> {
        Arc::from("SLAVE/1")
    }

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    fn admit(limiter: &Limiter, kind: Flood, now: Instant) -> Admission {
        limiter.admit(kind, Level::Info, &name(), now)
    }

    fn suppressed(kind: Flood, count: u64) -> Suppressed {
        Suppressed {
            kind,
            count,
            level: Level::Warning,
            name: name(),
        }
    }

    #[test]
    fn a_burst_passes_then_lines_are_counted_until_the_interval_ends() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..3 {
            assert_eq!(
                admit(&limiter, Flood::Accepted, at(start, i)),
                Admission::Pass(None)
            );
        }
        for i in 3..10 {
            assert_eq!(
                admit(&limiter, Flood::Accepted, at(start, i)),
                Admission::Suppress
            );
        }
        // still within the interval the first line started
        assert_eq!(
            admit(&limiter, Flood::Accepted, at(start, 29_999)),
            Admission::Suppress
        );
        assert_eq!(limiter.expired(at(start, 29_999)), []);
        // the next line after it: the count first, then the line
        assert_eq!(
            admit(&limiter, Flood::Accepted, at(start, 30_000)),
            Admission::Pass(Some(suppressed(Flood::Accepted, 8)))
        );
        // and a new window with a whole burst, which began at that line
        for i in 1..3 {
            assert_eq!(
                admit(&limiter, Flood::Accepted, at(start, 30_000 + i)),
                Admission::Pass(None)
            );
        }
        assert_eq!(
            admit(&limiter, Flood::Accepted, at(start, 30_003)),
            Admission::Suppress
        );
    }

    #[test]
    fn a_count_is_due_when_its_interval_ends_whatever_line_comes_next() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..5 {
            admit(&limiter, Flood::Refused, at(start, i));
        }
        for i in 0..4 {
            admit(&limiter, Flood::Authentication, at(start, 10_000 + i));
        }
        assert_eq!(limiter.expired(at(start, 29_999)), []);
        assert_eq!(
            limiter.expired(at(start, 30_000)),
            [suppressed(Flood::Refused, 2)]
        );
        // once only
        assert_eq!(limiter.expired(at(start, 30_001)), []);
        assert_eq!(limiter.expired(at(start, 39_999)), []);
        assert_eq!(
            limiter.expired(at(start, 40_000)),
            [suppressed(Flood::Authentication, 1)]
        );
        assert_eq!(limiter.expired(at(start, 100_000)), []);
        // the refused window ended with its count: a whole burst again
        assert_eq!(
            admit(&limiter, Flood::Refused, at(start, 40_001)),
            Admission::Pass(None)
        );
    }

    #[test]
    fn kinds_are_limited_each_on_its_own() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..50 {
            admit(&limiter, Flood::Accepted, at(start, i));
        }
        for kind in Flood::ALL.into_iter().filter(|&k| k != Flood::Accepted) {
            for i in 0..3 {
                assert_eq!(
                    admit(&limiter, kind, at(start, 100 + i)),
                    Admission::Pass(None),
                    "{kind:?}"
                );
            }
            assert_eq!(
                admit(&limiter, kind, at(start, 200)),
                Admission::Suppress,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_count_carries_the_most_severe_level_and_at_least_a_warning() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..4 {
            admit(&limiter, Flood::Disconnected, at(start, i));
        }
        assert_eq!(limiter.take_all()[0].level, Level::Warning);
        limiter.admit(Flood::Disconnected, Level::Error, &name(), at(start, 5));
        limiter.admit(Flood::Disconnected, Level::Info, &name(), at(start, 6));
        assert_eq!(
            limiter.take_all(),
            [Suppressed {
                kind: Flood::Disconnected,
                count: 2,
                level: Level::Error,
                name: name(),
            }]
        );
    }

    #[test]
    fn take_all_empties_the_counts_but_keeps_the_windows() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..5 {
            admit(&limiter, Flood::Welcome, at(start, i));
            admit(&limiter, Flood::Goodbye, at(start, i));
        }
        assert_eq!(
            limiter.take_all(),
            [suppressed(Flood::Welcome, 2), suppressed(Flood::Goodbye, 2)]
        );
        assert_eq!(limiter.take_all(), []);
        assert_eq!(limiter.expired(at(start, 60_000)), []);
        // the burst was spent in this window
        assert_eq!(
            admit(&limiter, Flood::Welcome, at(start, 10)),
            Admission::Suppress
        );
    }

    #[test]
    fn forget_starts_afresh() {
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        for i in 0..5 {
            admit(&limiter, Flood::Accepted, at(start, i));
        }
        limiter.forget();
        assert_eq!(limiter.take_all(), []);
        assert_eq!(limiter.expired(at(start, 60_000)), []);
        assert_eq!(
            admit(&limiter, Flood::Accepted, at(start, 10)),
            Admission::Pass(None)
        );
    }

    #[test]
    fn every_line_is_written_or_counted_once_across_threads() {
        const THREADS: u64 = 8;
        const LINES: u64 = 5_000;
        let start = Instant::now();
        let limiter = Limiter::new(RULE, start);
        let (passed, counted) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        let (mut passed, mut counted) = (0, 0);
                        for i in 0..LINES {
                            // the clock runs through three intervals and a bit
                            let now = at(start, i * 20);
                            counted += limiter.expired(now).iter().map(|s| s.count).sum::<u64>();
                            match admit(&limiter, Flood::Accepted, now) {
                                Admission::Pass(last) => {
                                    passed += 1;
                                    counted += last.map_or(0, |s| s.count);
                                }
                                Admission::Suppress => {}
                            }
                        }
                        (passed, counted)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a worker"))
                .fold((0, 0), |(p, c), (wp, wc)| (p + wp, c + wc))
        });
        let left: u64 = limiter.take_all().iter().map(|s| s.count).sum();
        assert_eq!(passed + counted + left, THREADS * LINES);
        // (how many pass is not bounded here: each thread's clock runs on
        // its own, so a thread behind the others starts windows in their
        // past, and a thread ahead ends them; the sequential tests bound
        // the rate with one clock, as a process has)
        assert!(passed >= u64::from(RULE.burst), "{passed}");
    }
}
