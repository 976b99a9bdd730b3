//! `rpycd-bench`: parse the command line, then run this package's benchmark
//! (bench/src/); see BENCH.md. Not installed by the Debian package.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use rpycd_bench::bulk;
use rpycd_bench::ceiling::{PingServer, UdpResponder};
use rpycd_bench::compare::{self, Options};
use rpycd_bench::load::{self, Op, Spec};
use rpycd_bench::registry::{self, UdpOp};
use rpycd_bench::servers::Programs;

/// Where this package's sources are: bench/ (the Python helpers), and the
/// repository's .venv and target/ one level up.
const BENCH_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Parser)]
#[command(
    name = "rpycd-bench",
    version,
    about = "rpycd against Python rpyc 6.0.2, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start ours and Python's servers on loopback ports and compare them
    Compare {
        /// About 1 s per workload (a run takes a minute or two)
        #[arg(long)]
        quick: bool,
        /// Where results.json, the charts (*.png) and the server logs go [default: target/bench]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where our release rpyc-classic and rpyc-registry are [default: beside this program]
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// A Python with rpyc 6.0.2 [default: $RPYCD_BENCH_PYTHON, or the repository's .venv]
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Run only these workload groups (startup, memory, client, capacity, connect, bulk, registry)
        #[arg(long, value_delimiter = ',', value_name = "GROUP,...")]
        only: Vec<String>,
    },
    /// Load one server on the loopback with the Rust generator
    Load {
        /// The server's port on 127.0.0.1
        #[arg(long)]
        port: u16,
        #[arg(long, value_enum, default_value_t = LoadOp::Ping)]
        op: LoadOp,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// At most this many operations per connection
        #[arg(long, default_value_t = 1_000_000)]
        max_ops: u64,
    },
    /// One bulk transfer with the Rust client against one classic server
    Bulk {
        /// The server's port on 127.0.0.1
        #[arg(long)]
        port: u16,
        /// Bytes to move
        #[arg(long, default_value_t = 100_000_000)]
        size: usize,
        /// Text rows (deflate shrinks them) instead of random bytes
        #[arg(long)]
        text: bool,
        /// Send the bytes to the server instead of fetching them
        #[arg(long)]
        upload: bool,
    },
    /// Run the zero-cost ping server on an ephemeral loopback port for a while
    Ceiling {
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// The zero-cost UDP registry responder instead (answers a QUERY)
        #[arg(long)]
        udp: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LoadOp {
    Ping,
    Call,
    Connect,
    /// UDP registry QUERY (the service is registered first); one
    /// "connection" is one UDP client
    UdpQuery,
    /// UDP registry REGISTER
    UdpRegister,
}

fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|e| format!("bad --seconds {value}: {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Compare {
            quick,
            out,
            bin_dir,
            python,
            only,
        } => {
            let bench_dir = PathBuf::from(BENCH_DIR);
            let repo = bench_dir
                .parent()
                .map(PathBuf::from)
                .ok_or("bench/ has no parent directory")?;
            let out_dir = out.unwrap_or_else(|| repo.join("target").join("bench"));
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => std::env::current_exe()
                    .map_err(|e| e.to_string())?
                    .parent()
                    .map(PathBuf::from)
                    .ok_or("cannot tell where this program is: pass --bin-dir")?,
            };
            let python = python
                .or_else(|| std::env::var_os("RPYCD_BENCH_PYTHON").map(PathBuf::from))
                .unwrap_or_else(|| repo.join(".venv").join("bin").join("python"));
            let options = Options {
                quick,
                programs: Programs {
                    bin_dir,
                    python,
                    bench_dir,
                    log_dir: out_dir.join("logs"),
                },
                out_dir,
                only,
            };
            let table = compare::run(&options).map_err(|e| e.to_string())?;
            print!("{table}");
            Ok(())
        }
        Command::Load {
            port,
            op,
            connections,
            seconds: secs,
            max_ops,
        } => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let udp = match op {
                LoadOp::UdpQuery => Some(UdpOp::Query),
                LoadOp::UdpRegister => Some(UdpOp::Register),
                _ => None,
            };
            if let Some(udp) = udp {
                if udp == UdpOp::Query {
                    // the zero-cost responder acknowledges nothing, and
                    // answers the query all the same
                    if let Err(error) = registry::register_once(addr) {
                        eprintln!("rpycd-bench: querying without a registration: {error}");
                    }
                }
                let outcome = registry::udp_load(addr, udp, connections, seconds(secs)?, max_ops)
                    .map_err(|e| e.to_string())?;
                println!("{}", outcome.to_json());
                return Ok(());
            }
            let spec = Spec {
                op: match op {
                    LoadOp::Call => Op::Call,
                    LoadOp::Connect => Op::Connect,
                    _ => Op::Ping,
                },
                connections,
                duration: seconds(secs)?,
                max_ops,
            };
            let outcome = load::run(addr, spec).map_err(|e| e.to_string())?;
            println!("{}", outcome.to_json());
            Ok(())
        }
        Command::Bulk {
            port,
            size,
            text,
            upload,
        } => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let outcome = bulk::rust_bulk(addr, !text, !upload, size).map_err(|e| e.to_string())?;
            println!("{outcome}");
            Ok(())
        }
        Command::Ceiling { seconds: secs, udp } => {
            if udp {
                // what the registry answers a QUERY of the one service
                let answer = rpycd::protocol::registry::endpoints_reply(
                    &[("127.0.0.1".into(), 18812)],
                    rpycd::protocol::registry::MAX_MESSAGE,
                );
                let responder = UdpResponder::start(answer).map_err(|e| e.to_string())?;
                println!("zero-cost UDP responder on {}", responder.addr());
                std::thread::sleep(seconds(secs)?);
                return Ok(());
            }
            let server = PingServer::start().map_err(|e| e.to_string())?;
            println!("zero-cost ping server on {}", server.addr());
            std::thread::sleep(seconds(secs)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rpycd-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
