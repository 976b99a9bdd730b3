//! Registry clients in bounded loops: UDP QUERY or REGISTER from several
//! clients, and TCP queries from several clients while one more client
//! connects and says nothing.
//!
//! A UDP client waits at most [`UDP_WAIT`] for each answer (a lost datagram
//! is counted, not retried); a TCP client waits as long as rpyc's
//! `TCPRegistryClient` does (2 s), so a registry that one silent client
//! blocks shows as timeouts and a low rate, not as a hung benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::load::{percentiles, Percentiles};
use super::servers::query_bytes;
use super::{BenchError, Result};
use rpycd::protocol::registry::Request;

/// How long a UDP client waits for one answer.
pub const UDP_WAIT: Duration = Duration::from_millis(250);
/// rpyc's `TCPRegistryClient` timeout.
pub const TCP_WAIT: Duration = Duration::from_secs(2);
/// The port the benchmark's REGISTER announces (nothing listens there;
/// the registry only stores it).
const ANNOUNCED_PORT: u16 = 18812;
pub const SERVICE: &str = "BENCH";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpOp {
    Query,
    Register,
}

impl UdpOp {
    pub fn name(self) -> &'static str {
        match self {
            UdpOp::Query => "query",
            UdpOp::Register => "register",
        }
    }

    fn request(self) -> Result<Vec<u8>> {
        match self {
            UdpOp::Query => query_bytes(SERVICE),
            UdpOp::Register => register_bytes(),
        }
    }
}

pub fn register_bytes() -> Result<Vec<u8>> {
    Request::Register {
        aliases: vec![SERVICE.into()],
        port: ANNOUNCED_PORT,
    }
    .encode()
    .map_err(|e| BenchError::Unexpected(e.to_string()))
}

#[derive(Debug, Clone)]
pub struct RegistryOutcome {
    pub ops: u64,
    pub timeouts: u64,
    pub elapsed: Duration,
    pub latency: Percentiles,
}

impl RegistryOutcome {
    pub fn per_sec(&self) -> f64 {
        super::load::rate(self.ops, self.elapsed)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "ops": self.ops,
            "timeouts": self.timeouts,
            "seconds": self.elapsed.as_secs_f64(),
            "per_sec": self.per_sec(),
            "p50_us": self.latency.p50,
            "p99_us": self.latency.p99,
            "max_us": self.latency.max,
        })
    }
}

struct Tally {
    samples: Vec<f64>,
    timeouts: u64,
}

fn combine(tallies: Vec<Tally>, elapsed: Duration) -> RegistryOutcome {
    let mut samples = Vec::new();
    let mut timeouts = 0;
    for tally in tallies {
        samples.extend(tally.samples);
        timeouts += tally.timeouts;
    }
    RegistryOutcome {
        ops: samples.len() as u64,
        timeouts,
        elapsed,
        latency: percentiles(&mut samples),
    }
}

/// Registers the benchmark's service once, so queries have an answer.
pub fn register_once(addr: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send(&register_bytes()?)?;
    let mut answer = [0u8; 1500];
    let n = socket.recv(&mut answer)?;
    if rpycd::protocol::registry::is_ok_reply(&answer[..n]) {
        Ok(())
    } else {
        Err(BenchError::Unexpected(
            "REGISTER was not acknowledged".into(),
        ))
    }
}

/// `clients` UDP clients, each sending `op` and waiting for the answer,
/// for `duration` or `max_ops` answers each.
pub fn udp_load(
    addr: SocketAddr,
    op: UdpOp,
    clients: usize,
    duration: Duration,
    max_ops: u64,
) -> Result<RegistryOutcome> {
    let request = op.request()?;
    let started = Instant::now();
    let deadline = started + duration;
    let tallies = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients.max(1))
            .map(|_| {
                let request = &request;
                scope.spawn(move || -> Result<Tally> {
                    // connected: answers from any other port are not taken
                    let socket = UdpSocket::bind("127.0.0.1:0")?;
                    socket.connect(addr)?;
                    socket.set_read_timeout(Some(UDP_WAIT))?;
                    let mut tally = Tally {
                        samples: Vec::new(),
                        timeouts: 0,
                    };
                    let mut answer = [0u8; 1500];
                    let mut now = Instant::now();
                    while now < deadline && (tally.samples.len() as u64) < max_ops {
                        socket.send(request)?;
                        let got = socket.recv(&mut answer);
                        let after = Instant::now();
                        match got {
                            Ok(_) => tally.samples.push((after - now).as_secs_f64() * 1e6),
                            Err(_) => tally.timeouts += 1,
                        }
                        now = after;
                    }
                    Ok(tally)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BenchError::Setup("client panicked".into())))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(combine(tallies, started.elapsed()))
}

/// `clients` TCP clients, each connecting, sending a QUERY, reading the
/// answer and closing, for `duration` or `max_ops` answers each; with
/// `silent`, one more client connects first and sends nothing until the
/// end.
pub fn tcp_load(
    addr: SocketAddr,
    clients: usize,
    silent: bool,
    duration: Duration,
    max_ops: u64,
) -> Result<RegistryOutcome> {
    let request = query_bytes(SERVICE)?;
    // held open, silent, for the whole run; closed when dropped
    let _silent = if silent {
        let stream = TcpStream::connect_timeout(&addr, TCP_WAIT)?;
        // let a registry accept it before the others come
        thread::sleep(Duration::from_millis(50));
        Some(stream)
    } else {
        None
    };
    let started = Instant::now();
    let deadline = started + duration;
    let tallies = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients.max(1))
            .map(|_| {
                let request = &request;
                scope.spawn(move || {
                    let mut tally = Tally {
                        samples: Vec::new(),
                        timeouts: 0,
                    };
                    let mut now = Instant::now();
                    while now < deadline && (tally.samples.len() as u64) < max_ops {
                        let answered = tcp_query(addr, request);
                        let after = Instant::now();
                        match answered {
                            Ok(()) => tally.samples.push((after - now).as_secs_f64() * 1e6),
                            Err(_) => tally.timeouts += 1,
                        }
                        now = after;
                    }
                    tally
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<Vec<_>>()
    });
    Ok(combine(tallies, started.elapsed()))
}

fn tcp_query(addr: SocketAddr, request: &[u8]) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, TCP_WAIT)?;
    stream.set_read_timeout(Some(TCP_WAIT))?;
    stream.write_all(request)?;
    let mut answer = [0u8; 1500];
    // rpyc's client reads one recv() worth and decodes it
    match stream.read(&mut answer)? {
        0 => Err(BenchError::Unexpected("closed without an answer".into())),
        _ => Ok(()),
    }
}
