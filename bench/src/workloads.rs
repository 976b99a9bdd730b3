//! The workloads BENCH.md reports (bulk transfers are in `bulk.rs`), each run against ours and Python's servers in
//! turn (ours, Python's, ours, Python's ...) and summed up as table rows.
//! A run that fails is recorded and leaves its figure out; it does not end
//! the comparison.

use std::fs;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::ceiling::UdpResponder;
use super::client::Client;
use super::compare::{median, progress, Lab, Plan, Results};
use super::load::{self, Op, Spec};
use super::registry::{self, UdpOp};
use super::report::{Better, Row, Series, Target};
use super::servers::{Kind, Programs, Server, Side};
use super::{BenchError, Result};

pub(crate) const MB: f64 = 1e6;

/// Runs `measure` for each contender, `rounds` times over, interleaved;
/// returns each contender's figures (failed runs left out).
pub(crate) fn interleaved<C>(
    results: &mut Results,
    workload: &str,
    rounds: usize,
    contenders: &[(&str, C)],
    mut measure: impl FnMut(&C) -> Result<Json>,
    mut figure_of: impl FnMut(&Json) -> Option<f64>,
) -> Vec<Vec<f64>> {
    let mut figures = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (index, (name, contender)) in contenders.iter().enumerate() {
            match measure(contender) {
                Ok(json) => {
                    if let Some(value) = figure_of(&json) {
                        figures[index].push(value);
                    }
                    results.record(workload, name, round, json);
                }
                Err(error) => {
                    results.record(workload, name, round, json!({ "error": error.to_string() }))
                }
            }
        }
    }
    figures
}

pub(crate) fn per_sec(json: &Json) -> Option<f64> {
    json.get("per_sec").and_then(Json::as_f64)
}

/// Runs bench/client.py with the venv's Python; its one line of JSON.
pub(crate) fn run_client_py(
    programs: &Programs,
    args: &[String],
    timeout: Duration,
) -> Result<Json> {
    let log = programs.log_dir.join("client-stderr.log");
    let mut child = Command::new(&programs.python)
        .arg(programs.bench_dir.join("client.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log)?)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            // our own child, by its handle
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Setup(format!(
                "the Python client did not finish in {timeout:?}"
            )));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stdout)?;
    }
    if !status.success() {
        let stderr = fs::read_to_string(&log).unwrap_or_default();
        let last = stderr.lines().last().unwrap_or("no message");
        return Err(BenchError::Setup(format!(
            "client.py failed ({status}): {last}"
        )));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| BenchError::Unexpected(format!("client.py printed {line:?}: {e}")))
}

pub(crate) fn client_args(workload: &str, addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut args = vec![workload.into(), "--port".into(), addr.port().to_string()];
    args.extend_from_slice(extra);
    args
}

/// Start-up: from exec to the port answering, and to `READY=1` (ours).
pub fn startup(plan: &Plan, programs: &Programs, results: &mut Results) -> Result<()> {
    for kind in [Kind::Threaded, Kind::Forking] {
        let workload = format!("start-up, {}", kind.name());
        let contenders = [("ours", Side::Ours), ("python", Side::Python)];
        let mut ready = Vec::new();
        let figures = interleaved(
            results,
            &workload,
            plan.startup_runs,
            &contenders,
            |side| {
                let server = Server::start_with(programs, *side, kind, true)?;
                let figures = json!({
                    "ms": server.started_in.as_secs_f64() * 1e3,
                    "ready_ms": server.ready_in.map(|d| d.as_secs_f64() * 1e3),
                });
                server.stop();
                Ok(figures)
            },
            |json| {
                if let Some(ms) = json.get("ready_ms").and_then(Json::as_f64) {
                    ready.push(ms);
                }
                json.get("ms").and_then(Json::as_f64)
            },
        );
        let mut row = Row::new(
            "start-up (exec to ...)",
            format!("{} → first PING answered", kind.name()),
            "ms",
        );
        row.better = Better::Lower;
        row.ours = median(&figures[0]);
        row.python = median(&figures[1]);
        // judged like for like: the same event on both sides
        row.targets = vec![Target::Ratio(5.0)];
        results.rows.push(row);
        let mut row = Row::new(
            "start-up (exec to ...)",
            format!("{} → READY=1", kind.name()),
            "ms",
        );
        row.better = Better::Lower;
        row.ours = median(&ready);
        row.note = "Python's rpyc_classic has no sd_notify: nothing to compare with".into();
        results.rows.push(row);
    }
    Ok(())
}

/// Memory: the server (and its forked children) with 1 idle classic
/// connection, then with many; the difference per connection.
pub fn memory(plan: &Plan, programs: &Programs, results: &mut Results) -> Result<()> {
    for (kind, count) in [
        (Kind::Threaded, plan.idle_threaded),
        (Kind::Forking, plan.idle_forking),
    ] {
        let workload = format!("memory, {}", kind.name());
        let contenders = [("ours", Side::Ours), ("python", Side::Python)];
        let mut one = [Vec::new(), Vec::new()];
        let mut index = 0;
        let per_connection = interleaved(
            results,
            &workload,
            1,
            &contenders,
            |side| {
                let figures = idle_memory(programs, *side, kind, count);
                if let Ok(json) = &figures {
                    if let Some(pss) = json.get("pss_one").and_then(Json::as_f64) {
                        one[index % 2].push(pss / MB);
                    }
                }
                index += 1;
                figures
            },
            |json| json.get("kib").and_then(Json::as_f64),
        );
        let group = "memory (PSS of the server and its children)";
        let mut row = Row::new(group, format!("{}, 1 idle connection", kind.name()), "MB");
        row.better = Better::Lower;
        row.ours = median(&one[0]);
        row.python = median(&one[1]);
        results.rows.push(row);
        let mut row = Row::new(
            group,
            format!("{}, per idle connection (of {count})", kind.name()),
            "KiB",
        );
        row.better = Better::Lower;
        row.ours = median(&per_connection[0]);
        row.python = median(&per_connection[1]);
        row.targets = vec![Target::Ratio(4.0)];
        results.rows.push(row);
    }
    Ok(())
}

fn idle_memory(programs: &Programs, side: Side, kind: Kind, count: usize) -> Result<Json> {
    let server = Server::start(programs, side, kind)?;
    let open = |clients: &mut Vec<Client>| -> Result<()> {
        let client = Client::connect(server.addr, Duration::from_secs(10))?;
        // GETROOT: the server has made the connection's session by now
        client.root()?;
        clients.push(client);
        Ok(())
    };
    let mut clients = Vec::with_capacity(count);
    open(&mut clients)?;
    // let the server settle (a forked child finish its start)
    thread::sleep(Duration::from_millis(500));
    let first = server.memory()?;
    while clients.len() < count {
        open(&mut clients)?;
    }
    // idle for a while: ours parks a connection quiet for 250 ms and gives
    // back the memory of the threads that served the burst a second after
    // they end (Python's server changes nothing with time)
    thread::sleep(Duration::from_millis(2500));
    let all = server.memory()?;
    for client in clients {
        client.close();
    }
    server.stop();
    let per = (all.pss as f64 - first.pss as f64) / (count.max(2) - 1) as f64 / 1024.0;
    Ok(json!({
        "connections": count,
        "pss_one": first.pss,
        "rss_one": first.rss,
        "pss_all": all.pss,
        "rss_all": all.rss,
        "processes_all": all.processes,
        "kib": per,
    }))
}

/// One stock Python client: pings (against the ceiling too), calls, and
/// calls that call back into the client.
pub fn python_client(
    plan: &Plan,
    programs: &Programs,
    lab: &Lab,
    results: &mut Results,
) -> Result<()> {
    let seconds = vec![
        "--seconds".to_string(),
        plan.seconds.as_secs_f64().to_string(),
        "--max-ops".to_string(),
        plan.max_ops.to_string(),
    ];
    let timeout = plan.seconds + Duration::from_secs(60);
    let group = "one stock Python client (threaded servers)";
    let ours = lab.ours_threaded.addr;
    let python = lab.python_threaded.addr;
    // pings: ours, Python's and the ceiling
    let contenders = [
        ("ours", ours),
        ("python", python),
        ("ceiling", lab.ceiling.addr()),
    ];
    let figures = interleaved(
        results,
        "python client: ping",
        plan.rounds,
        &contenders,
        |addr| run_client_py(programs, &client_args("ping", *addr, &seconds), timeout),
        per_sec,
    );
    let mut row = Row::new(group, "pings/s", "ops/s");
    row.ours = median(&figures[0]);
    row.python = median(&figures[1]);
    row.ceiling = median(&figures[2]);
    row.targets = vec![Target::Ceiling(0.9)];
    results.rows.push(row);
    for (workload, label, target) in [
        ("call", "math.sqrt(2.0) calls/s", 1.3),
        ("callback", "calls/s of a call that calls back", 50.0),
    ] {
        let contenders = [("ours", ours), ("python", python)];
        let figures = interleaved(
            results,
            &format!("python client: {workload}"),
            plan.rounds,
            &contenders,
            |addr| run_client_py(programs, &client_args(workload, *addr, &seconds), timeout),
            per_sec,
        );
        let mut row = Row::new(group, label, "ops/s");
        row.ours = median(&figures[0]);
        row.python = median(&figures[1]);
        row.targets = vec![Target::Ratio(target)];
        results.rows.push(row);
    }
    Ok(())
}

/// Server capacity: the Rust generator at each concurrency, pings (and the
/// ceiling) and calls, threaded and forking.
pub fn capacity(plan: &Plan, lab: &Lab, results: &mut Results) -> Result<()> {
    let group = "capacity (Rust generator)";
    for op in [Op::Ping, Op::Call] {
        let mut contenders = vec![
            ("ours threaded", lab.ours_threaded.addr),
            ("python threaded", lab.python_threaded.addr),
            ("ours forking", lab.ours_forking.addr),
            ("python forking", lab.python_forking.addr),
        ];
        if op == Op::Ping {
            contenders.push(("zero-cost, a thread per connection", lab.ceiling.addr()));
        }
        let mut points = vec![Vec::new(); contenders.len()];
        for &connections in &plan.concurrency {
            let spec = Spec {
                op,
                connections,
                duration: plan.seconds,
                max_ops: plan.max_ops,
            };
            let figures = interleaved(
                results,
                &format!("capacity: {} x{connections}", op.name()),
                plan.capacity_rounds,
                &contenders,
                |addr| load::run(*addr, spec).map(|outcome| outcome.to_json()),
                per_sec,
            );
            let medians: Vec<Option<f64>> = figures.iter().map(|f| median(f)).collect();
            for (index, value) in medians.iter().enumerate() {
                if let Some(value) = value {
                    points[index].push((connections as f64, *value));
                }
            }
            for (mode, ours, python) in [("threaded", 0, 1), ("forking", 2, 3)] {
                let mut row = Row::new(
                    group,
                    format!("{}s/s, {connections} conn, {mode}", op.name()),
                    "ops/s",
                );
                row.ours = medians[ours];
                row.python = medians[python];
                // the zero-cost server gives each connection a thread: a
                // ceiling for one connection, not for many (ours, which
                // parks quiet connections, beats it there)
                if connections == 1 {
                    row.ceiling = medians.get(4).copied().flatten();
                }
                if connections == 16 && op == Op::Call {
                    row.targets = vec![Target::Ratio(4.0)];
                }
                results.rows.push(row);
            }
        }
        for ((name, _), points) in contenders.iter().zip(points) {
            results.series.push(Series {
                name: (*name).into(),
                op: op.name(),
                points,
            });
        }
    }
    Ok(())
}

/// Connection rate: connect, GETROOT, release, CLOSE, in a loop.
pub fn connection_rate(plan: &Plan, lab: &Lab, results: &mut Results) -> Result<()> {
    for (kind, target) in [(Kind::Threaded, 5.0), (Kind::Forking, 3.0)] {
        let (ours, python) = lab.pair(kind);
        let spec = Spec {
            op: Op::Connect,
            connections: plan.connect_clients,
            duration: plan.seconds,
            // bounded: each connection leaves a socket in TIME_WAIT
            max_ops: if plan.quick { 2_500 } else { 5_000 },
        };
        let contenders = [("ours", ours.addr), ("python", python.addr)];
        let figures = interleaved(
            results,
            &format!("connection rate, {}", kind.name()),
            plan.rounds,
            &contenders,
            |addr| load::run(*addr, spec).map(|outcome| outcome.to_json()),
            per_sec,
        );
        let mut row = Row::new(
            "connection rate (Rust generator)",
            format!(
                "connect+GETROOT+close/s, {}, {} clients",
                kind.name(),
                plan.connect_clients
            ),
            "conn/s",
        );
        row.ours = median(&figures[0]);
        row.python = median(&figures[1]);
        row.targets = vec![Target::Ratio(target)];
        results.rows.push(row);
    }
    Ok(())
}

/// The registries: UDP queries and registrations from several clients
/// (a zero-cost responder as the ceiling), and TCP queries with and
/// without a silent client holding a connection.
pub fn registry(plan: &Plan, programs: &Programs, results: &mut Results) -> Result<()> {
    let group = "registry";
    let ours_udp = Server::start(programs, Side::Ours, Kind::RegistryUdp)?;
    let python_udp = Server::start(programs, Side::Python, Kind::RegistryUdp)?;
    let answer = rpycd::protocol::registry::endpoints_reply(
        &[("127.0.0.1".into(), 18812)],
        rpycd::protocol::registry::MAX_MESSAGE,
    );
    let responder = UdpResponder::start(answer)?;
    registry::register_once(ours_udp.addr)?;
    registry::register_once(python_udp.addr)?;
    let clients = plan.registry_udp_clients;
    for op in [UdpOp::Query, UdpOp::Register] {
        let contenders = [
            ("ours", ours_udp.addr),
            ("python", python_udp.addr),
            ("ceiling", responder.addr()),
        ];
        let figures = interleaved(
            results,
            &format!("registry udp {}", op.name()),
            plan.rounds,
            &contenders,
            |addr| {
                registry::udp_load(*addr, op, clients, plan.seconds, plan.max_ops)
                    .map(|o| o.to_json())
            },
            per_sec,
        );
        let mut row = Row::new(
            group,
            format!("UDP {}/s, {clients} clients", op.name()),
            "ops/s",
        );
        row.ours = median(&figures[0]);
        row.python = median(&figures[1]);
        row.ceiling = median(&figures[2]);
        if op == UdpOp::Query {
            row.targets = vec![Target::Ceiling(0.85)];
        }
        results.rows.push(row);
    }
    ours_udp.stop();
    python_udp.stop();
    drop(responder);

    let ours_tcp = Server::start(programs, Side::Ours, Kind::RegistryTcp)?;
    let python_tcp = Server::start(programs, Side::Python, Kind::RegistryTcp)?;
    let clients = plan.registry_tcp_clients;
    // bounded: every query is a connection that leaves a socket in TIME_WAIT
    let tcp_max_ops = if plan.quick { 2_000 } else { 4_000 };
    for silent in [false, true] {
        let contenders = [("ours", ours_tcp.addr), ("python", python_tcp.addr)];
        let mut slowest = [Vec::new(), Vec::new()];
        let mut index = 0;
        let figures = interleaved(
            results,
            &format!(
                "registry tcp query{}",
                if silent { " + silent" } else { "" }
            ),
            plan.rounds,
            &contenders,
            |addr| {
                let outcome = registry::tcp_load(*addr, clients, silent, plan.seconds, tcp_max_ops);
                if let Ok(outcome) = &outcome {
                    // a timed-out query took the whole wait: count it so
                    let worst = if outcome.timeouts > 0 {
                        registry::TCP_WAIT.as_secs_f64() * 1e3
                    } else {
                        outcome.latency.max / 1e3
                    };
                    slowest[index % 2].push(worst);
                }
                index += 1;
                outcome.map(|o| o.to_json())
            },
            per_sec,
        );
        let label = if silent {
            format!("TCP queries/s, {clients} clients + 1 silent")
        } else {
            format!("TCP queries/s, {clients} clients")
        };
        let mut row = Row::new(group, label, "ops/s");
        row.ours = median(&figures[0]);
        row.python = median(&figures[1]);
        results.rows.push(row);
        if silent {
            let mut row = Row::new(group, "TCP slowest query beside a silent client", "ms");
            row.better = Better::Lower;
            row.ours = slowest[0].iter().copied().reduce(f64::max);
            row.python = slowest[1].iter().copied().reduce(f64::max);
            row.targets = vec![Target::AtMost(500.0)];
            row.note = format!(
                "a query that timed out ({:?}, rpyc's client timeout) counts as that long",
                registry::TCP_WAIT
            );
            results.rows.push(row);
        }
    }
    ours_tcp.stop();
    python_tcp.stop();
    progress("registry workloads done");
    Ok(())
}
