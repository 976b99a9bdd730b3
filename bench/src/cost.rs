//! What a request costs the server: its CPU time (every thread and forked
//! child, see [`super::cpu`]) over a bounded run, divided by the
//! operations of that run, for ours and Python's servers, threaded and
//! forking, in interleaved rounds. Clients: the stock Python client for
//! pings, calls (math.sqrt(2.0)) and a bulk download of random bytes; the
//! Rust generator for connections (connect, GETROOT, close: its own cost
//! is not the server's, and Python's client would take longer to connect
//! than the server takes to serve).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::compare::{median, Lab, Plan, Results};
use super::cpu::CpuMeter;
use super::load::{self, Op, Spec};
use super::report::{Better, Row, Target};
use super::servers::{Kind, Programs, Server};
use super::workloads::{client_args, interleaved, run_client_py, MB};
use super::{BenchError, Result};

pub const GROUP: &str = "server CPU per operation (lower is better)";

/// What an operation is for dividing the server's CPU time.
#[derive(Debug, Clone, Copy)]
enum Per {
    /// The figures' `ops`.
    Op,
    /// The figures' `bytes`, per megabyte.
    Megabyte,
}

impl Per {
    fn unit(self) -> &'static str {
        match self {
            Per::Op => "µs/op",
            Per::Megabyte => "µs/MB",
        }
    }

    fn count(self, figures: &Json) -> Option<f64> {
        match self {
            Per::Op => figures.get("ops").and_then(Json::as_f64),
            Per::Megabyte => figures.get("bytes").and_then(Json::as_f64).map(|b| b / MB),
        }
    }
}

/// A server whose CPU time is read: ours, Python's, or the floor.
struct Metered<'a> {
    label: String,
    addr: SocketAddr,
    meter: &'a CpuMeter,
}

impl<'a> Metered<'a> {
    fn server(server: &'a Server) -> Metered<'a> {
        Metered {
            label: server.label(),
            addr: server.addr,
            meter: server.meter(),
        }
    }
}

/// The floor: the harness's zero-cost ping server (`rpycd-bench ceiling`,
/// which answers a PING by rewriting its bytes, never decoding them) in a
/// process of its own, metered as the servers are. What it costs per ping
/// is what the loopback's system calls and wake-ups cost on this machine.
struct Floor {
    child: Child,
    addr: SocketAddr,
    meter: CpuMeter,
}

impl Floor {
    fn start() -> Result<Floor> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["ceiling", "--seconds", "900"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let meter = CpuMeter::attach(child.id(), "floor");
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        // "zero-cost ping server on 127.0.0.1:PORT"
        let addr = line
            .trim()
            .rsplit_once(" on ")
            .and_then(|(_, addr)| addr.parse().ok());
        match addr {
            Some(addr) => Ok(Floor { child, addr, meter }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError::Setup(format!(
                    "the zero-cost ping server said {line:?}"
                )))
            }
        }
    }

    fn metered(&self) -> Metered<'_> {
        Metered {
            label: "zero-cost ping server".into(),
            addr: self.addr,
            meter: &self.meter,
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `run` against `server`, adding the server's CPU time over it to
/// the figures: `server_cpu_seconds`, `server_cpu_us` per `per`.
fn metered(server: &Metered<'_>, per: Per, run: impl FnOnce() -> Result<Json>) -> Result<Json> {
    let unavailable = || BenchError::Setup(format!("no CPU time of the {}", server.label));
    let before = server.meter.read().ok_or_else(unavailable)?;
    let mut figures = run()?;
    let after = server.meter.read().ok_or_else(unavailable)?;
    let used = after.saturating_sub(before);
    let count = per
        .count(&figures)
        .filter(|count| *count > 0.0)
        .ok_or_else(|| BenchError::Unexpected(format!("no operations counted in {figures}")))?;
    if let Json::Object(map) = &mut figures {
        map.insert("server_cpu_seconds".into(), json!(used.as_secs_f64()));
        map.insert(
            "server_cpu_us".into(),
            json!(used.as_secs_f64() * 1e6 / count),
        );
        map.insert("server_cpu_per".into(), json!(per.unit()));
        map.insert("server_cpu_method".into(), json!(server.meter.method()));
    }
    Ok(figures)
}

fn server_cpu_us(figures: &Json) -> Option<f64> {
    figures.get("server_cpu_us").and_then(Json::as_f64)
}

/// The workloads, each bounded in count (and in time by the client).
struct Workload {
    name: &'static str,
    per: Per,
    /// How many times better ours must be (Python's figure / ours).
    goal: f64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "ping",
        per: Per::Op,
        goal: 10.0,
    },
    Workload {
        name: "sqrt call",
        per: Per::Op,
        goal: 10.0,
    },
    Workload {
        name: "connect+close",
        per: Per::Op,
        goal: 10.0,
    },
    Workload {
        name: "16 MB download",
        per: Per::Megabyte,
        goal: 100.0,
    },
];

const BULK_BYTES: usize = 16_000_000;

/// One run of `workload` against `server`, metered.
fn run_once(
    plan: &Plan,
    programs: &Programs,
    workload: &Workload,
    server: &Metered<'_>,
) -> Result<Json> {
    let bounded = |ops: u64| {
        vec![
            "--seconds".to_string(),
            // the count ends the run; this only bounds a slow one
            "60".to_string(),
            "--max-ops".to_string(),
            ops.to_string(),
        ]
    };
    let timeout = Duration::from_secs(120);
    metered(server, workload.per, || match workload.name {
        "ping" => run_client_py(
            programs,
            &client_args("ping", server.addr, &bounded(plan.cpu_ops)),
            timeout,
        ),
        "sqrt call" => run_client_py(
            programs,
            &client_args("call", server.addr, &bounded(plan.cpu_ops)),
            timeout,
        ),
        "connect+close" => load::run(
            server.addr,
            Spec {
                op: Op::Connect,
                connections: 1,
                duration: Duration::from_secs(60),
                max_ops: plan.cpu_connects,
            },
        )
        .map(|outcome| outcome.to_json()),
        _ => {
            let mut args = bounded(plan.cpu_bulk_transfers);
            args.extend(
                [
                    "--size",
                    &BULK_BYTES.to_string(),
                    "--data",
                    "random",
                    "--direction",
                    "download",
                ]
                .map(String::from),
            );
            run_client_py(programs, &client_args("bulk", server.addr, &args), timeout)
        }
    })
}

/// Server CPU per operation of every workload, threaded and forking; for
/// pings, the floor's too.
pub fn server_cpu(
    plan: &Plan,
    programs: &Programs,
    lab: &Lab,
    results: &mut Results,
) -> Result<()> {
    let floor = Floor::start()?;
    for workload in &WORKLOADS {
        for kind in [Kind::Threaded, Kind::Forking] {
            let (ours, python) = lab.pair(kind);
            let mut contenders = vec![
                ("ours", Metered::server(ours)),
                ("python", Metered::server(python)),
            ];
            // one floor for both modes: measured with the threaded rows
            let with_floor = workload.name == "ping" && kind == Kind::Threaded;
            if with_floor {
                contenders.push(("zero-cost", floor.metered()));
            }
            let figures = interleaved(
                results,
                &format!("server CPU: {}, {}", workload.name, kind.name()),
                plan.cpu_rounds,
                &contenders,
                |server| run_once(plan, programs, workload, server),
                server_cpu_us,
            );
            let mut row = Row::new(
                GROUP,
                format!("{}, {}", workload.name, kind.name()),
                workload.per.unit(),
            );
            row.better = Better::Lower;
            row.ours = median(&figures[0]);
            row.python = median(&figures[1]);
            if with_floor {
                row.ceiling = median(&figures[2]);
            }
            row.targets = vec![Target::Ratio(workload.goal)];
            row.note = spread(&figures[0], &figures[1]);
            results.rows.push(row);
        }
    }
    Ok(())
}

/// The rounds' range of each side, for the table's note: CPU time on a
/// shared machine moves between rounds, and the median hides by how much.
fn spread(ours: &[f64], python: &[f64]) -> String {
    let range = |values: &[f64]| -> Option<String> {
        let min = values.iter().copied().reduce(f64::min)?;
        let max = values.iter().copied().reduce(f64::max)?;
        Some(format!("{min:.1}–{max:.1}"))
    };
    match (range(ours), range(python)) {
        (Some(ours), Some(python)) => {
            format!("rounds: ours {ours}, Python {python}")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_counted_from_the_figures() {
        assert_eq!(Per::Op.count(&json!({"ops": 20000})), Some(20000.0));
        assert_eq!(
            Per::Megabyte.count(&json!({"bytes": 32_000_000})),
            Some(32.0)
        );
        assert_eq!(Per::Op.count(&json!({"transfers": 3})), None);
    }

    #[test]
    fn the_spread_names_each_sides_range() {
        assert_eq!(
            spread(&[5.5, 6.0, 5.0], &[40.0, 37.5]),
            "rounds: ours 5.0–6.0, Python 37.5–40.0"
        );
        assert_eq!(spread(&[], &[1.0]), "");
    }
}
