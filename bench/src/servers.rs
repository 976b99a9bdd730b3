//! Ours and Python's servers as child processes on loopback ports: start,
//! wait until they answer, measure memory, stop.
//!
//! Each server runs in its own process group, so stopping it also stops the
//! children a forking server made; only groups this harness started are
//! ever signalled.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::cpu::CpuMeter;
use super::{BenchError, Result};
use rpycd::protocol::brine::Value;
use rpycd::protocol::frame;
use rpycd::protocol::message::{Boxed, Handler, Message};
use rpycd::protocol::registry::Request;

/// How long a server may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ours,
    Python,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Python => "python",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Threaded,
    Forking,
    RegistryUdp,
    RegistryTcp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Threaded => "threaded",
            Kind::Forking => "forking",
            Kind::RegistryUdp => "registry-udp",
            Kind::RegistryTcp => "registry-tcp",
        }
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// Holds our release `rpyc-classic` and `rpyc-registry`.
    pub bin_dir: PathBuf,
    /// The venv's Python, with rpyc 6.0.2.
    pub python: PathBuf,
    /// This repository's `bench/` (client.py, py_registry.py).
    pub bench_dir: PathBuf,
    /// Where server logs go.
    pub log_dir: PathBuf,
}

impl Programs {
    fn venv_script(&self, name: &str) -> PathBuf {
        self.python
            .parent()
            .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
    }

    fn command(&self, side: Side, kind: Kind, port: u16) -> Command {
        let port = port.to_string();
        let mut command = match (side, kind) {
            (Side::Ours, Kind::Threaded | Kind::Forking) => {
                let mut c = Command::new(self.bin_dir.join("rpyc-classic"));
                c.args(["-q", "--host", "127.0.0.1", "-p", &port, "-m", kind.name()]);
                c
            }
            (Side::Python, Kind::Threaded | Kind::Forking) => {
                let mut c = Command::new(&self.python);
                c.arg(self.venv_script("rpyc_classic"));
                c.args(["-q", "--host", "127.0.0.1", "-p", &port, "-m", kind.name()]);
                c
            }
            (Side::Ours, Kind::RegistryUdp | Kind::RegistryTcp) => {
                let mut c = Command::new(self.bin_dir.join("rpyc-registry"));
                let mode = if kind == Kind::RegistryUdp {
                    "UDP"
                } else {
                    "TCP"
                };
                c.args(["-q", "--host", "127.0.0.1", "-p", &port, "-m", mode]);
                c
            }
            (Side::Python, Kind::RegistryUdp | Kind::RegistryTcp) => {
                // rpyc_registry binds every address and has no --host: the
                // same server classes, bound to the loopback, via a shim
                let mut c = Command::new(&self.python);
                let mode = if kind == Kind::RegistryUdp {
                    "UDP"
                } else {
                    "TCP"
                };
                c.arg(self.bench_dir.join("py_registry.py"));
                c.args(["--port", &port, "--mode", mode]);
                c
            }
        };
        command.env_remove("NOTIFY_SOCKET");
        command.env_remove("LISTEN_FDS");
        command.env_remove("LISTEN_PID");
        // the environment must not change the servers' switches
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RPYC_") {
                command.env_remove(key);
            }
        }
        command
    }
}

/// A running server.
pub struct Server {
    pub side: Side,
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    /// From spawn to the first answer (a PING's, a QUERY's).
    pub started_in: Duration,
    /// From spawn to `READY=1` (ours, when asked for).
    pub ready_in: Option<Duration>,
    /// The CPU time of its processes (see [`CpuMeter`]).
    cpu: CpuMeter,
}

/// A port free at the moment of asking (the server binds it a moment
/// later; a lost race shows as a server that exits, and is retried).
fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

impl Server {
    /// Starts a server and waits until it answers.
    pub fn start(programs: &Programs, side: Side, kind: Kind) -> Result<Server> {
        Server::start_with(programs, side, kind, false)
    }

    /// Starts a server; `notify` also times our server's `READY=1`.
    pub fn start_with(programs: &Programs, side: Side, kind: Kind, notify: bool) -> Result<Server> {
        let mut last = String::new();
        for attempt in 0..3 {
            match Server::try_start(programs, side, kind, notify && side == Side::Ours, attempt) {
                Ok(server) => return Ok(server),
                Err(error) => last = error.to_string(),
            }
        }
        Err(BenchError::Setup(format!(
            "{} {} server did not start: {last}",
            side.name(),
            kind.name()
        )))
    }

    fn try_start(
        programs: &Programs,
        side: Side,
        kind: Kind,
        notify: bool,
        attempt: u32,
    ) -> Result<Server> {
        let udp = kind == Kind::RegistryUdp;
        let port = free_port(udp)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = programs.log_dir.join(format!(
            "{}-{}-{port}-{attempt}.log",
            side.name(),
            kind.name()
        ));
        let log = fs::File::create(&log_path)?;
        let mut command = programs.command(side, kind, port);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // its own group: stopping it stops a forking server's children
            .process_group(0);
        let notify_path = programs.log_dir.join(format!("notify-{port}.sock"));
        let notify_socket = if notify {
            let _ = fs::remove_file(&notify_path);
            let socket = UnixDatagram::bind(&notify_path)?;
            socket.set_read_timeout(Some(Duration::from_millis(100)))?;
            command.env("NOTIFY_SOCKET", &notify_path);
            Some(socket)
        } else {
            None
        };
        let spawned = Instant::now();
        let child = command.spawn()?;
        let cpu = CpuMeter::attach(child.id(), &format!("{}-{}", side.name(), kind.name()));
        // READY=1 is awaited on a thread of its own, so that polling for it
        // never delays noticing the first answer, nor the other way round
        let answered = Arc::new(AtomicBool::new(false));
        let ready_watch = notify_socket.map(|socket| {
            let answered = Arc::clone(&answered);
            thread::spawn(move || {
                let until = spawned + START_DEADLINE;
                let mut message = [0u8; 4096];
                // once the server answers, READY=1 is late or never coming:
                // a few more reads (100 ms each) and the watch ends
                let mut grace = 10;
                while Instant::now() < until && grace > 0 {
                    if answered.load(Ordering::Acquire) {
                        grace -= 1;
                    }
                    if let Ok(n) = socket.recv(&mut message) {
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&message[..n]);
                        if text.lines().any(|line| line == "READY=1") {
                            return Some(at - spawned);
                        }
                    }
                }
                None
            })
        });
        let mut server = Server {
            side,
            kind,
            addr,
            child,
            started_in: Duration::ZERO,
            ready_in: None,
            cpu,
        };
        let deadline = spawned + START_DEADLINE;
        loop {
            if server.answers() {
                server.started_in = spawned.elapsed();
                answered.store(true, Ordering::Release);
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(BenchError::Setup(format!("exited with {status}: {log}")));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Setup(format!(
                    "not answering after {START_DEADLINE:?}; log in {}",
                    log_path.display()
                )));
            }
            thread::sleep(Duration::from_millis(1));
        }
        if let Some(watch) = ready_watch {
            server.ready_in = watch.join().ok().flatten();
            let _ = fs::remove_file(&notify_path);
        }
        Ok(server)
    }

    /// Whether the server answers now: a classic server answers a PING, a
    /// registry a QUERY. (A connection being accepted proves nothing: the
    /// kernel completes it as soon as the socket listens.)
    fn answers(&self) -> bool {
        match self.kind {
            Kind::Threaded | Kind::Forking => classic_answers(self.addr),
            Kind::RegistryUdp => registry_udp_answers(self.addr, Duration::from_millis(50)),
            Kind::RegistryTcp => registry_tcp_answers(self.addr, Duration::from_millis(500)),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time its processes have used since it started.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cpu.read()
    }

    /// How [`Server::cpu_time`] is read.
    pub fn cpu_method(&self) -> &'static str {
        self.cpu.method()
    }

    /// The meter of its CPU time.
    pub fn meter(&self) -> &CpuMeter {
        &self.cpu
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.side.name(), self.kind.name())
    }

    /// Memory of the server and every process it forked: the sum of their
    /// proportional set sizes (shared pages split between the processes that
    /// map them, so forked children are not counted as whole copies) and of
    /// their resident set sizes, in bytes.
    pub fn memory(&self) -> Result<Memory> {
        let mut memory = Memory::default();
        for pid in process_tree(self.pid()) {
            // a child may exit between listing and reading: skip it
            if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
                memory.pss += kib_field(&rollup, "Pss:").unwrap_or(0) * 1024;
                memory.rss += kib_field(&rollup, "Rss:").unwrap_or(0) * 1024;
                memory.processes += 1;
            }
        }
        if memory.processes == 0 {
            return Err(BenchError::Setup(format!(
                "no /proc entry for {}",
                self.label()
            )));
        }
        Ok(memory)
    }

    /// Stops the server and its process group: SIGTERM, then SIGKILL.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with the negated id of a group this process made
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // whatever is left of the group (a forked child, a hung server)
        // SAFETY: as above
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.shutdown();
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub pss: u64,
    pub rss: u64,
    pub processes: u32,
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `pid` and its descendants, from /proc's parent links.
pub(crate) fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_of(&entry.path()) {
                parents.push((child, parent));
            }
        }
    }
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let current = tree[index];
        tree.extend(
            parents
                .iter()
                .filter(|(_, parent)| *parent == current)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    tree
}

fn parent_of(proc_dir: &Path) -> Option<u32> {
    let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// One PING, raw: connect, send the frame, wait for any answer.
fn classic_answers(addr: SocketAddr) -> bool {
    let ping = || -> Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_nodelay(true)?;
        // a server still starting answers once it is ready
        stream.set_read_timeout(Some(START_DEADLINE))?;
        let payload = Message::Request {
            seq: 0,
            handler: Handler::Ping,
            args: Boxed::Value(Value::Tuple(vec![Value::str("up?")])),
        }
        .encode()
        .map_err(|e| BenchError::Unexpected(e.to_string()))?;
        stream.write_all(
            &frame::encode(&payload, false).map_err(|e| BenchError::Unexpected(e.to_string()))?,
        )?;
        let mut answer = [0u8; 64];
        Ok(stream.read(&mut answer)? > 0)
    };
    ping().unwrap_or(false)
}

/// One registry QUERY over UDP; true if any answer came back in time.
pub fn registry_udp_answers(addr: SocketAddr, timeout: Duration) -> bool {
    let query = || -> Result<bool> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(addr)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.send(&query_bytes("BENCH")?)?;
        let mut answer = [0u8; 1500];
        Ok(socket.recv(&mut answer).is_ok())
    };
    query().unwrap_or(false)
}

/// One registry QUERY over TCP; true if an answer came back in time.
pub fn registry_tcp_answers(addr: SocketAddr, timeout: Duration) -> bool {
    let query = || -> Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(&query_bytes("BENCH")?)?;
        let mut answer = [0u8; 1500];
        Ok(stream.read(&mut answer)? > 0)
    };
    query().unwrap_or(false)
}

pub fn query_bytes(name: &str) -> Result<Vec<u8>> {
    Request::Query { name: name.into() }
        .encode()
        .map_err(|e| BenchError::Unexpected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_from_smaps_rollup() {
        let rollup =
            "00400000-7fff [rollup]\nRss:                5120 kB\nPss:                 300 kB\n";
        assert_eq!(kib_field(rollup, "Rss:"), Some(5120));
        assert_eq!(kib_field(rollup, "Pss:"), Some(300));
        assert_eq!(kib_field(rollup, "Swap:"), None);
    }

    #[test]
    fn this_process_is_in_its_own_tree() {
        let me = std::process::id();
        assert_eq!(process_tree(me).first(), Some(&me));
        assert!(parent_of(Path::new(&format!("/proc/{me}"))).is_some());
    }
}
