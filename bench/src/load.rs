//! The load generator: N connections, each a thread running one operation
//! in a loop bounded in time and in count, with every latency kept.
//!
//! Connections are opened and set up (GETROOT and the rest) before the
//! clock starts, so the figures are of the operation alone; a barrier
//! starts all loops together. A watchdog shuts every socket down shortly
//! after the deadline (setup included), so a server that stops answering
//! cannot hang the run.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::client::{default_ping_data, CachedCall, Client};
use super::{BenchError, Result};

/// How long past the deadline an operation in flight may take before the
/// watchdog cuts its connection.
const GRACE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening and setting up the connections may take.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// PING with rpyc's default payload.
    Ping,
    /// `sqrt(2.0)` on a cached remote `math.sqrt` (CALL).
    Call,
    /// Connect, GETROOT, release the root, CLOSE: one per iteration.
    Connect,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Call => "call",
            Op::Connect => "connect",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub op: Op,
    pub connections: usize,
    pub duration: Duration,
    /// At most this many operations per connection.
    pub max_ops: u64,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: Percentiles,
}

/// Operations per second over `elapsed` (0 for no time at all).
pub fn rate(ops: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        ops as f64 / seconds
    } else {
        0.0
    }
}

impl Outcome {
    pub fn per_sec(&self) -> f64 {
        rate(self.ops, self.elapsed)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "ops": self.ops,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.elapsed.as_secs_f64(),
            "per_sec": self.per_sec(),
            "p50_us": self.latency.p50,
            "p99_us": self.latency.p99,
            "max_us": self.latency.max,
        })
    }
}

/// The sample at percentile `p` (0..=100) of sorted samples, nearest rank:
/// the smallest sample with at least p % of the samples at or below it.
/// `None` for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// p50, p99 and max of unsorted samples (sorts them).
pub fn percentiles(samples: &mut [f64]) -> Percentiles {
    samples.sort_by(f64::total_cmp);
    Percentiles {
        p50: percentile(samples, 50.0).unwrap_or(0.0),
        p99: percentile(samples, 99.0).unwrap_or(0.0),
        max: samples.last().copied().unwrap_or(0.0),
    }
}

/// One connection's state between iterations.
enum Session {
    Ping(Client),
    Call(Client, CachedCall),
    /// Connection-rate loops open a client per iteration.
    Connect,
}

/// The socket each loop is using now, for the watchdog to cut.
type Slot = Mutex<Option<TcpStream>>;

fn lock_slot(slot: &Slot) -> MutexGuard<'_, Option<TcpStream>> {
    // a loop that panicked leaves a usable slot behind
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Connects and shows the watchdog the new socket.
fn connect(addr: SocketAddr, slot: &Slot) -> Result<Client> {
    let client = Client::connect(addr, CONNECT_TIMEOUT)?;
    *lock_slot(slot) = client.stream_handle().ok();
    Ok(client)
}

impl Session {
    fn open(op: Op, addr: SocketAddr, slot: &Slot) -> Result<Session> {
        Ok(match op {
            Op::Ping => {
                let client = connect(addr, slot)?;
                client.ping(&default_ping_data())?;
                Session::Ping(client)
            }
            Op::Call => {
                let client = connect(addr, slot)?;
                let call = CachedCall::sqrt(&client)?;
                call.call(&client)?;
                Session::Call(client, call)
            }
            Op::Connect => Session::Connect,
        })
    }

    fn once(&self, addr: SocketAddr, data: &rpycd::protocol::Value, slot: &Slot) -> Result<()> {
        match self {
            Session::Ping(client) => client.ping(data),
            Session::Call(client, call) => call.call(client),
            Session::Connect => {
                let client = connect(addr, slot)?;
                let root = client.root()?;
                client.release(&root)?;
                client.close();
                Ok(())
            }
        }
    }

    fn finish(self) {
        match self {
            Session::Ping(client) => client.close(),
            Session::Call(client, call) => {
                // best effort: the figures are taken; a failed release only
                // leaves objects on a server that is stopped at the end
                let _ = call.release(&client);
                client.close();
            }
            Session::Connect => {}
        }
    }
}

struct Tally {
    samples: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    ended: Instant,
}

/// Runs `spec` against the server at `addr`.
pub fn run(addr: SocketAddr, spec: Spec) -> Result<Outcome> {
    let connections = spec.connections.max(1);
    let slots: Vec<Slot> = (0..connections).map(|_| Mutex::new(None)).collect();
    let over = AtomicBool::new(false);
    // the whole run, setup included, ends by this time whatever the server does
    let hard_deadline = Instant::now() + SETUP_LIMIT + spec.duration + GRACE;
    thread::scope(|scope| {
        let watchdog = scope.spawn(|| watchdog(&slots, &over, hard_deadline));
        let outcome = load(addr, spec, &slots);
        over.store(true, Ordering::Release);
        let _ = watchdog.join();
        outcome
    })
}

fn load(addr: SocketAddr, spec: Spec, slots: &[Slot]) -> Result<Outcome> {
    // Open every connection first (in parallel: a forking server's fork per
    // connection would otherwise eat into the setup sequentially).
    let opened: Vec<Result<Session>> = thread::scope(|scope| {
        let handles: Vec<_> = slots
            .iter()
            .map(|slot| scope.spawn(move || Session::open(spec.op, addr, slot)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(BenchError::Setup("setup thread panicked".into())))
            })
            .collect()
    });
    let mut sessions = Vec::with_capacity(slots.len());
    for session in opened {
        sessions.push(session?);
    }
    let barrier = Barrier::new(slots.len() + 1);
    let data = default_ping_data();
    let (tallies, started) = thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .zip(slots)
            .map(|(session, slot)| {
                let barrier = &barrier;
                let data = &data;
                scope.spawn(move || {
                    let mut tally = Tally {
                        // a guess that saves regrowing for most runs
                        samples: Vec::with_capacity(spec.max_ops.min(1 << 16) as usize),
                        errors: 0,
                        first_error: None,
                        ended: Instant::now(),
                    };
                    barrier.wait();
                    let deadline = Instant::now() + spec.duration;
                    let mut now = Instant::now();
                    while now < deadline && (tally.samples.len() as u64) < spec.max_ops {
                        let result = session.once(addr, data, slot);
                        let after = Instant::now();
                        match result {
                            Ok(()) => tally.samples.push((after - now).as_secs_f64() * 1e6),
                            Err(error) => {
                                tally.errors += 1;
                                tally.first_error.get_or_insert(error.to_string());
                                // a broken connection stays broken: stop it
                                if !matches!(spec.op, Op::Connect) {
                                    break;
                                }
                            }
                        }
                        now = after;
                    }
                    tally.ended = now;
                    session.finish();
                    tally
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let tallies: Vec<Tally> = handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect();
        (tallies, started)
    });
    summarize(tallies, started)
}

fn summarize(tallies: Vec<Tally>, started: Instant) -> Result<Outcome> {
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    // The window is from the common start to the last loop's end: the
    // duration, unless every loop ran out of count before it.
    let mut ended = started;
    for tally in tallies {
        samples.extend_from_slice(&tally.samples);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
        ended = ended.max(tally.ended);
    }
    if samples.is_empty() {
        return Err(BenchError::Unexpected(format!(
            "no operation succeeded: {}",
            first_error.as_deref().unwrap_or("no time to run any")
        )));
    }
    let ops = samples.len() as u64;
    Ok(Outcome {
        ops,
        errors,
        first_error,
        elapsed: ended - started,
        latency: percentiles(&mut samples),
    })
}

/// At `deadline`, unless the run is over first, shuts down every socket in
/// use: each loop then fails its operation and stops.
fn watchdog(slots: &[Slot], over: &AtomicBool, deadline: Instant) {
    while !over.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= deadline {
            for slot in slots {
                if let Some(stream) = lock_slot(slot).as_ref() {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            return;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50.0));
        assert_eq!(percentile(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile(&sorted, 100.0), Some(100.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        // 99.5 % of 100 samples needs the 100th
        assert_eq!(percentile(&sorted, 99.5), Some(100.0));
    }

    #[test]
    fn percentile_of_few_samples_rounds_up() {
        let sorted = [10.0, 20.0, 30.0];
        assert_eq!(percentile(&sorted, 50.0), Some(20.0));
        assert_eq!(percentile(&sorted, 34.0), Some(20.0));
        assert_eq!(percentile(&sorted, 33.0), Some(10.0));
        assert_eq!(percentile(&sorted, 99.0), Some(30.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn percentile_clamps_out_of_range_requests() {
        let sorted = [1.0, 2.0];
        assert_eq!(percentile(&sorted, -5.0), Some(1.0));
        assert_eq!(percentile(&sorted, 250.0), Some(2.0));
    }

    #[test]
    fn percentiles_sort_their_samples() {
        let mut samples = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        let p = percentiles(&mut samples);
        assert_eq!(p.p50, 3.0);
        assert_eq!(p.p99, 5.0);
        assert_eq!(p.max, 5.0);
        assert_eq!(samples, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        assert_eq!(percentiles(&mut []), Percentiles::default());
    }
}
