//! Bulk bytes values between the Rust client and the classic server (the
//! embedded CPython), past every size where the transfer path changes:
//! byte strings of 1 MiB and more are written from where they are and keep
//! the buffer they are read into, and 32 MiB and more ask for huge pages
//! (src/memory.rs). Each value goes to the server and back, and is
//! compared whole.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rpycd::api::{Bytes, Obj, RemoteObject};
use rpycd::protocol::Value;

const CLASSIC: &str = env!("CARGO_BIN_EXE_rpyc-classic");

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start(mode: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("rpycd-bulk-{mode}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("makes a socket directory");
        let child = Command::new(CLASSIC)
            .args(["-q", "--mode", mode, "--unix-socket"])
            .arg(dir.join("classic.sock"))
            .stdin(Stdio::null())
            .spawn()
            .expect("starts rpyc-classic");
        Server { child, dir }
    }

    fn connect(&self) -> rpycd::api::Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rpycd::api::connect_unix(self.dir.join("classic.sock")) {
                Ok(client) => return client,
                Err(error) if Instant::now() > deadline => panic!("no server: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn noise(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut row = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("{row},{},bulk row {:x}\n", row * row, row * 7919).as_bytes(),
        );
        row += 1;
    }
    out.truncate(len);
    out
}

fn remote_lambda(root: &RemoteObject, source: &str) -> RemoteObject {
    root.callattr("eval", (source,)).expect("evaluates")
}

#[test]
fn bulk_bytes_go_to_the_server_and_back_intact() {
    let all_sizes = [
        ("1 MiB of noise", noise(1 << 20, 1)),
        ("3 MiB of noise", noise(3 << 20, 2)),
        ("34 MB of noise", noise(34_000_000, 3)),
        ("34 MB of text", text(34_000_000)),
    ];
    round_trips("threaded", &all_sizes);
}

#[test]
fn bulk_bytes_in_forking_and_threadpool_modes() {
    let one = [("34 MB of noise", noise(34_000_000, 6))];
    round_trips("forking", &one);
    round_trips("threadpool", &one);
}

fn round_trips(mode: &str, values: &[(&str, Vec<u8>)]) {
    let server = Server::start(mode);
    let client = server.connect();
    let root = client.root().expect("root");
    let echo = remote_lambda(&root, "lambda b: b");
    let describe = remote_lambda(
        &root,
        "lambda b: '%s %d %s' % (type(b).__name__, len(b), __import__('hashlib').sha256(b).hexdigest()[:16])",
    );
    for (name, data) in values {
        let back: Bytes = echo.call((Bytes(data.clone()),)).expect(name);
        assert!(back.0 == *data, "{mode}, {name}: the echo differs");
        let seen: String = describe.call((Bytes(data.clone()),)).expect(name);
        assert!(
            seen.starts_with(&format!("bytes {} ", data.len())),
            "{mode}, {name}: the server saw {seen}"
        );
    }
    // two bulk strings in one message: the first is read into the bytes
    // object it becomes, the second is copied out of the frame buffer
    let swap = remote_lambda(&root, "lambda a, n, b: (b, n, a)");
    let (a, b) = (noise(2 << 20, 4), noise(3 << 20, 5));
    let swapped: Vec<Obj> = swap
        .call((Bytes(a.clone()), 5i64, Bytes(b.clone())))
        .expect("swaps");
    let expected = [
        Obj::Value(Value::Bytes(b.into())),
        Obj::Value(Value::Int(5)),
        Obj::Value(Value::Bytes(a.into())),
    ];
    assert!(swapped == expected, "{mode}: the swapped tuple differs");
}
