//! `rpycd-bench compare`: starts ours and Python's servers on loopback
//! ports, runs every workload against each, interleaved (ours, Python's,
//! ours, Python's ...), and writes the table, the JSON file and the chart.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};

use super::ceiling::PingServer;
use super::report::{self, Row, Series};
use super::servers::{Kind, Programs, Server, Side};
use super::{bulk, cost, workloads};
use super::{BenchError, Result};

/// The workload groups, in the order they run.
pub const GROUPS: [&str; 8] = [
    "startup", "memory", "client", "capacity", "connect", "bulk", "cpu", "registry",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub programs: Programs,
    pub out_dir: PathBuf,
    /// Run only these groups (all when empty).
    pub only: Vec<String>,
}

/// How long and how often: every loop is bounded by these.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Length of one timed run.
    pub seconds: Duration,
    /// Runs of each contender, interleaved.
    pub rounds: usize,
    /// Rounds of the capacity runs, whose spread between runs on a shared
    /// machine is the widest (a median of three outlasts one bad run).
    pub capacity_rounds: usize,
    /// Rounds of the Rust client's bulk transfers: a tenth of a second
    /// each, and one in a few pays for fresh memory several times over.
    pub bulk_rounds: usize,
    pub concurrency: Vec<usize>,
    /// Operations per connection at most, whatever the time.
    pub max_ops: u64,
    pub bulk_size: usize,
    /// How long one bulk client process may live.
    pub bulk_timeout: Duration,
    pub idle_threaded: usize,
    pub idle_forking: usize,
    pub startup_runs: usize,
    pub registry_udp_clients: usize,
    pub registry_tcp_clients: usize,
    pub connect_clients: usize,
    /// Rounds of the server CPU workloads, and their operations per run:
    /// enough that a reading's resolution is a small part of it.
    pub cpu_rounds: usize,
    pub cpu_ops: u64,
    pub cpu_connects: u64,
    pub cpu_bulk_transfers: u64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        Plan {
            quick,
            seconds: Duration::from_secs_f64(if quick { 1.0 } else { 2.0 }),
            rounds: if quick { 1 } else { 2 },
            capacity_rounds: if quick { 1 } else { 3 },
            bulk_rounds: if quick { 1 } else { 5 },
            concurrency: vec![1, 4, 16, 64],
            max_ops: 2_000_000,
            bulk_size: if quick { 10_000_000 } else { 100_000_000 },
            bulk_timeout: Duration::from_secs(if quick { 60 } else { 150 }),
            idle_threaded: 1000,
            idle_forking: 100,
            startup_runs: if quick { 3 } else { 5 },
            registry_udp_clients: 4,
            registry_tcp_clients: 16,
            connect_clients: 4,
            cpu_rounds: if quick { 1 } else { 3 },
            cpu_ops: if quick { 5_000 } else { 20_000 },
            cpu_connects: if quick { 300 } else { 1_000 },
            cpu_bulk_transfers: if quick { 2 } else { 8 },
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "quick": self.quick,
            "seconds_per_run": self.seconds.as_secs_f64(),
            "rounds": self.rounds,
            "capacity_rounds": self.capacity_rounds,
            "bulk_rounds": self.bulk_rounds,
            "concurrency": self.concurrency,
            "max_ops_per_connection": self.max_ops,
            "bulk_bytes": self.bulk_size,
            "bulk_timeout_seconds": self.bulk_timeout.as_secs_f64(),
            "idle_connections_threaded": self.idle_threaded,
            "idle_connections_forking": self.idle_forking,
            "startup_runs": self.startup_runs,
            "registry_udp_clients": self.registry_udp_clients,
            "registry_tcp_clients": self.registry_tcp_clients,
            "connect_clients": self.connect_clients,
            "cpu_rounds": self.cpu_rounds,
            "cpu_ops": self.cpu_ops,
            "cpu_connects": self.cpu_connects,
            "cpu_bulk_transfers": self.cpu_bulk_transfers,
        })
    }
}

/// The long-running servers most workloads share.
pub struct Lab {
    pub ours_threaded: Server,
    pub python_threaded: Server,
    pub ours_forking: Server,
    pub python_forking: Server,
    pub ceiling: PingServer,
}

impl Lab {
    pub fn start(programs: &Programs) -> Result<Lab> {
        Ok(Lab {
            ours_threaded: Server::start(programs, Side::Ours, Kind::Threaded)?,
            python_threaded: Server::start(programs, Side::Python, Kind::Threaded)?,
            ours_forking: Server::start(programs, Side::Ours, Kind::Forking)?,
            python_forking: Server::start(programs, Side::Python, Kind::Forking)?,
            ceiling: PingServer::start()?,
        })
    }

    /// (ours, Python's) in a mode.
    pub fn pair(&self, kind: Kind) -> (&Server, &Server) {
        match kind {
            Kind::Forking => (&self.ours_forking, &self.python_forking),
            _ => (&self.ours_threaded, &self.python_threaded),
        }
    }

    fn stop(self) {
        for server in [
            self.ours_threaded,
            self.python_threaded,
            self.ours_forking,
            self.python_forking,
        ] {
            server.stop();
        }
    }
}

/// Everything a run produces.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    /// Every single measurement, for the JSON file.
    pub raw: Vec<Json>,
    pub series: Vec<Series>,
}

impl Results {
    pub fn record(&mut self, workload: &str, contender: &str, round: usize, figures: Json) {
        progress(&format!("{workload} [{contender}] {}", summary(&figures)));
        self.raw.push(json!({
            "workload": workload,
            "contender": contender,
            "round": round,
            "figures": figures,
        }));
    }
}

fn summary(figures: &Json) -> String {
    for key in ["per_sec", "bytes_per_sec", "ms", "kib"] {
        if let Some(value) = figures.get(key).and_then(Json::as_f64) {
            return format!("{key} {}", report::figure(Some(value)));
        }
    }
    figures.to_string()
}

/// Prints a progress line on stderr (stdout carries the table).
pub fn progress(line: &str) {
    eprintln!("rpycd-bench: {line}");
}

/// The middle value (mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// What the machine is: nproc, CPU model, kernel, load average.
pub fn machine() -> Json {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_owned());
    let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": model,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "load_average_at_start": read("/proc/loadavg"),
        "memory_total": read("/proc/meminfo").and_then(|m| m.lines().next().map(str::to_owned)),
    })
}

fn git_commit(repo: &std::path::Path) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Checks that the programs are there before anything starts.
fn check_programs(programs: &Programs) -> Result<()> {
    for name in ["rpyc-classic", "rpyc-registry"] {
        let path = programs.bin_dir.join(name);
        if !path.is_file() {
            return Err(BenchError::Setup(format!(
                "{} is missing: build the servers first (`cargo build --release --bins`, \
                 or run bench/run, which does)",
                path.display()
            )));
        }
    }
    if !programs.python.is_file() {
        return Err(BenchError::Setup(format!(
            "{} is missing: run scripts/install-deps (it makes .venv with rpyc 6.0.2) \
             or pass --python",
            programs.python.display()
        )));
    }
    for script in ["client.py", "py_registry.py"] {
        let path = programs.bench_dir.join(script);
        if !path.is_file() {
            return Err(BenchError::Setup(format!("{} is missing", path.display())));
        }
    }
    Ok(())
}

/// Runs the comparison and writes its outputs; returns the table.
pub fn run(options: &Options) -> Result<String> {
    check_programs(&options.programs)?;
    for group in &options.only {
        if !GROUPS.contains(&group.as_str()) {
            return Err(BenchError::Setup(format!(
                "unknown workload group {group:?}; choose from {}",
                GROUPS.join(", ")
            )));
        }
    }
    fs::create_dir_all(&options.out_dir)?;
    fs::create_dir_all(&options.programs.log_dir)?;
    super::raise_fd_limit();
    let machine = machine();
    let began = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let plan = Plan::new(options.quick);
    let wanted = |group: &str| options.only.is_empty() || options.only.iter().any(|g| g == group);
    let mut results = Results::default();

    // fresh servers of their own: a server's start and its memory at rest
    if wanted("startup") {
        workloads::startup(&plan, &options.programs, &mut results)?;
    }
    if wanted("memory") {
        workloads::memory(&plan, &options.programs, &mut results)?;
    }
    if ["client", "capacity", "connect", "bulk", "cpu"]
        .iter()
        .any(|g| wanted(g))
    {
        let lab = Lab::start(&options.programs)?;
        progress("servers up: ours and Python's, threaded and forking, and the ceiling");
        let outcome = (|| -> Result<()> {
            if wanted("client") {
                workloads::python_client(&plan, &options.programs, &lab, &mut results)?;
            }
            if wanted("capacity") {
                workloads::capacity(&plan, &lab, &mut results)?;
            }
            if wanted("connect") {
                workloads::connection_rate(&plan, &lab, &mut results)?;
            }
            if wanted("bulk") {
                bulk::bulk(&plan, &options.programs, &lab, &mut results)?;
            }
            if wanted("cpu") {
                cost::server_cpu(&plan, &options.programs, &lab, &mut results)?;
            }
            Ok(())
        })();
        lab.stop();
        outcome?;
    }
    if wanted("registry") {
        workloads::registry(&plan, &options.programs, &mut results)?;
    }

    let table = report::table(&results.rows);
    let load_at_end = fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.trim().to_owned());
    let document = json!({
        "tool": "rpycd-bench compare",
        "started_unix": started_at,
        "wall_seconds": began.elapsed().as_secs_f64(),
        "commit": git_commit(&options.programs.bench_dir),
        "machine": machine,
        "load_average_at_end": load_at_end,
        "plan": plan.to_json(),
        "rows": results.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "measurements": results.raw,
        "table": table,
    });
    let json_path = options.out_dir.join("results.json");
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    fs::write(&json_path, text + "\n")?;
    progress(&format!("figures written to {}", json_path.display()));
    if !results.series.is_empty() {
        let png_path = options.out_dir.join("throughput.png");
        let title = format!(
            "rpycd vs Python rpyc 6.0.2: throughput against concurrency{}",
            if options.quick { " (--quick)" } else { "" }
        );
        match report::chart(&results.series, &title, &png_path) {
            Ok(()) => progress(&format!("chart written to {}", png_path.display())),
            Err(error) => progress(&format!("no chart: {error}")),
        }
    }
    let quick = if options.quick { " (--quick)" } else { "" };
    for (file, title, log, rows) in bar_charts(&results.rows) {
        if rows.is_empty() {
            continue;
        }
        let path = options.out_dir.join(file);
        let shown: Vec<&Row> = rows.iter().collect();
        match report::bars(&shown, &format!("{title}{quick}"), log, &path) {
            Ok(()) => progress(&format!("chart written to {}", path.display())),
            Err(error) => progress(&format!("no chart {file}: {error}")),
        }
    }
    Ok(table)
}

/// The bar charts beside the throughput chart: (file, title, log scale,
/// the rows it shows, named as the chart calls them).
fn bar_charts(rows: &[Row]) -> Vec<(&'static str, String, bool, Vec<Row>)> {
    let pick = |keep: &dyn Fn(&Row) -> Option<String>| -> Vec<Row> {
        rows.iter()
            .filter_map(|row| {
                keep(row).map(|name| Row {
                    workload: name,
                    ..row.clone()
                })
            })
            .collect()
    };
    let startup = pick(&|row| {
        (row.group.starts_with("start-up") && row.python.is_some())
            .then(|| row.workload.replace(" → ", ": exec to "))
    });
    let memory = pick(&|row| {
        (row.group.starts_with("memory") && row.workload.contains("per idle connection"))
            .then(|| row.workload.clone())
    });
    // "100 MB random download": the size goes to the title, which has room
    let bulk_size = rows
        .iter()
        .find(|row| row.group.starts_with("bulk"))
        .and_then(|row| row.workload.split_once(" MB "))
        .map(|(megabytes, _)| megabytes.to_owned());
    let what = |workload: &str| {
        workload
            .split_once(" MB ")
            .map_or(workload, |(_, what)| what)
            .to_owned()
    };
    let bulk = pick(&|row| {
        if row.group.starts_with("bulk (stock") {
            Some(what(&row.workload))
        } else if row.group.starts_with("bulk (Rust") {
            Some(format!("{} (Rust client)", what(&row.workload)))
        } else {
            None
        }
    });
    let bulk_title = format!(
        "bulk transfers{} (MB/s, higher is better; ceiling: raw loopback TCP)",
        bulk_size.map_or(String::new(), |megabytes| format!(" of {megabytes} MB"))
    );
    let cpu = pick(&|row| (row.group == cost::GROUP).then(|| row.workload.clone()));
    vec![
        (
            "cpu.png",
            "server CPU per operation (µs; per MB for downloads; lower is better; log scale)"
                .into(),
            true,
            cpu,
        ),
        (
            "startup.png",
            "start-up: exec to the first PING answered (ms, lower is better)".into(),
            false,
            startup,
        ),
        (
            "memory.png",
            "memory per idle connection (KiB of PSS, lower is better)".into(),
            true,
            memory,
        ),
        ("bulk.png", bulk_title, true, bulk),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn bar_charts_take_like_for_like_rows() {
        let mut rows = Vec::new();
        for (group, workload) in [
            ("start-up (exec to ...)", "threaded → first PING answered"),
            ("start-up (exec to ...)", "threaded → READY=1"),
            ("memory (PSS)", "threaded, 1 idle connection"),
            ("memory (PSS)", "threaded, per idle connection (of 1000)"),
            ("bulk (stock Python client)", "100 MB random download"),
            ("bulk (Rust client)", "100 MB random download"),
            ("registry", "UDP query/s, 4 clients"),
        ] {
            let mut row = Row::new(group, workload, "u");
            row.ours = Some(1.0);
            // READY=1 has no Python figure: it is not compared
            row.python = (!workload.contains("READY")).then_some(2.0);
            rows.push(row);
        }
        let charts = bar_charts(&rows);
        let names = |file: &str| -> Vec<String> {
            let (_, _, _, rows) = charts.iter().find(|c| c.0 == file).expect("chart");
            rows.iter().map(|row| row.workload.clone()).collect()
        };
        assert_eq!(
            names("startup.png"),
            ["threaded: exec to first PING answered"]
        );
        assert_eq!(
            names("memory.png"),
            ["threaded, per idle connection (of 1000)"]
        );
        assert_eq!(
            names("bulk.png"),
            ["random download", "random download (Rust client)"]
        );
        let bulk = charts
            .iter()
            .find(|c| c.0 == "bulk.png")
            .expect("bulk chart");
        assert!(bulk.1.starts_with("bulk transfers of 100 MB"), "{}", bulk.1);
    }

    #[test]
    fn machine_names_the_kernel_and_cores() {
        let machine = machine();
        assert!(machine["nproc"].as_u64().is_some_and(|n| n >= 1));
        assert!(machine["kernel"].is_string());
    }
}
