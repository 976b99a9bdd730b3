//! The Rust API end to end: the Rust client against the example counter
//! service in this process, and against Python rpyc's own ThreadedServer.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpycd::api::{Args, Error, Obj, RemoteObject, Running};

#[allow(dead_code)]
#[path = "../examples/counter_service.rs"]
mod counter_service;

fn serve_counter(server: rpycd::Server) -> Running {
    server
        .tcp("127.0.0.1:0")
        .shutdown_timeout(Duration::from_secs(5))
        .bind()
        .expect("binds a loopback port")
        .spawn()
        .expect("serves in a thread")
}

fn threaded_counter() -> Running {
    serve_counter(rpycd::Server::new(counter_service::CounterService::new()).threaded())
}

fn addr_of(running: &Running) -> std::net::SocketAddr {
    running.local_addr().expect("a TCP address")
}

#[test]
fn calls_with_positional_and_keyword_arguments() {
    let running = threaded_counter();
    let client = rpycd::connect(addr_of(&running)).expect("connects");
    let root = client.root().expect("root");
    assert_eq!(root.callattr::<i64>("add", (1, 2)).unwrap(), 3);
    // rpyc's naming: the exposed_ spelling reaches the same method
    assert_eq!(root.callattr::<i64>("exposed_add", (3, 4)).unwrap(), 7);
    let by_keyword = Args::new().arg(1).kwarg("b", 5);
    assert_eq!(root.callattr::<i64>("add", by_keyword).unwrap(), 6);
    assert_eq!(
        root.callattr::<String>("greet", ("Ada",)).unwrap(),
        "Hello, Ada!"
    );
    let greeting = Args::new().arg("Ada").kwarg("greeting", "Hi");
    assert_eq!(
        root.callattr::<String>("greet", greeting).unwrap(),
        "Hi, Ada!"
    );
    // GETATTR then CALL, as a Python client's `root.add(...)` does
    let add: RemoteObject = root.getattr("add").unwrap();
    assert_eq!(add.call::<i64>((20, 22)).unwrap(), 42);
    assert_eq!(add.type_name(), "builtins.method");
    assert_eq!(root.getattr::<String>("version").unwrap(), "1.0");
    let echoed: (i64, String, Option<i64>) =
        root.callattr("echo", ((1, "a", Obj::none()),)).unwrap();
    assert_eq!(echoed, (1, "a".to_owned(), None));
    assert_eq!(root.callattr::<i64>("sum", (vec![1, 2, 3],)).unwrap(), 6);
    client.ping().expect("ping");
    client.close();
    running.stop().expect("stops");
}

#[test]
fn service_names_follow_rpyc() {
    let running = threaded_counter();
    let root = rpycd::connect(addr_of(&running)).unwrap().root().unwrap();
    assert_eq!(
        root.callattr::<String>("get_service_name", ()).unwrap(),
        "COUNTER"
    );
    assert_eq!(
        root.callattr::<Vec<String>>("get_service_aliases", ())
            .unwrap(),
        vec!["COUNTER", "RUST-COUNTER"]
    );
    let names = root.dir().unwrap();
    for name in ["add", "exposed_add", "get_service_name", "shared"] {
        assert!(
            names.iter().any(|known| known == name),
            "{name} in {names:?}"
        );
    }
    let methods = root.inspect().unwrap();
    assert!(methods.iter().any(|(name, _)| name == "add"), "{methods:?}");
}

#[test]
fn objects_travel_by_reference() {
    let running = threaded_counter();
    let client = rpycd::connect(addr_of(&running)).unwrap();
    let root = client.root().unwrap();
    let counter: RemoteObject = root
        .callattr("counter", Args::new().kwarg("start", 10))
        .unwrap();
    assert_eq!(counter.type_name(), "counter_service.Counter");
    assert_eq!(counter.callattr::<i64>("increment", ()).unwrap(), 11);
    assert_eq!(
        counter
            .callattr::<i64>("increment", Args::new().kwarg("step", 5))
            .unwrap(),
        16
    );
    assert_eq!(counter.getattr::<i64>("value").unwrap(), 16);
    assert_eq!(counter.call::<i64>(()).unwrap(), 16, "__call__");
    assert_eq!(counter.repr().unwrap(), "<Counter value=16>");
    // a second counter is another object
    let other: RemoteObject = root.callattr("counter", ()).unwrap();
    assert_ne!(other.id_pack(), counter.id_pack());
    assert_eq!(other.getattr::<i64>("value").unwrap(), 0);
    // the shared counter is one object, whoever asks
    let shared_a: RemoteObject = root.getattr("shared").unwrap();
    let second = rpycd::connect(addr_of(&running)).unwrap();
    let shared_b: RemoteObject = second.root().unwrap().getattr("shared").unwrap();
    let before: i64 = shared_a.getattr("value").unwrap();
    shared_b.callattr::<i64>("increment", ()).unwrap();
    assert_eq!(shared_a.getattr::<i64>("value").unwrap(), before + 1);
    // our reference passed back is the object itself (echo returns it)
    let echoed: RemoteObject = root.callattr("echo", (counter.clone(),)).unwrap();
    assert_eq!(echoed.id_pack(), counter.id_pack());
}

#[test]
fn callbacks_run_in_the_client_and_are_released() {
    let running = threaded_counter();
    let client = rpycd::connect(addr_of(&running)).unwrap();
    let root = client.root().unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let double = Obj::function("double", move |call| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let x: i64 = call.arg(0)?;
        Ok(Obj::from_value((x * 2).into()))
    });
    assert_eq!(
        root.callattr::<i64>("apply", (double.clone(), 21)).unwrap(),
        42
    );
    let mapped: Vec<i64> = root.callattr("map", (double, vec![1, 2, 3])).unwrap();
    assert_eq!(mapped, vec![2, 4, 6]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    // a callback's exception reaches the server's caller as its class
    let failing = Obj::function("failing", |_| Err(Error::key_error("from the client")));
    let error = root.callattr::<Obj>("apply", (failing,)).unwrap_err();
    assert!(error.is_builtin("KeyError"), "{error}");
    // the server asks the client's own service over the same connection
    assert_eq!(root.callattr::<String>("whoami", ()).unwrap(), "VOID");
    // the server dropped the callbacks: their DELs arrive by the next reply
    client.ping().unwrap();
    assert_eq!(client.held_by_server(), 0);
}

#[test]
fn exceptions_carry_class_message_and_traceback() {
    let running = threaded_counter();
    let root = rpycd::connect(addr_of(&running)).unwrap().root().unwrap();
    let error = root.callattr::<f64>("div", (1, 0)).unwrap_err();
    let exception = error.exception().expect("an exception");
    assert!(exception.is("builtins", "ZeroDivisionError"));
    assert_eq!(exception.message(), "division by zero");
    assert!(
        exception.traceback.contains("CounterService.div"),
        "{}",
        exception.traceback
    );
    let error = root
        .callattr::<()>("fail", ("mymod.MyError", "m"))
        .unwrap_err();
    let exception = error.exception().expect("an exception");
    assert_eq!(
        (exception.module.as_str(), exception.name.as_str()),
        ("mymod", "MyError")
    );
    assert_eq!(exception.to_string(), "mymod.MyError: m");
    let error = root.callattr::<i64>("add", (1,)).unwrap_err();
    assert!(error.is_builtin("TypeError"), "{error}");
    assert!(error.to_string().contains("'b'"), "{error}");
    let error = root.callattr::<i64>("add", Args::new().arg(1).arg(2).kwarg("c", 3));
    assert!(error.unwrap_err().is_builtin("TypeError"));
    let error = root.getattr::<Obj>("no_such_thing").unwrap_err();
    assert!(error.is_builtin("AttributeError"), "{error}");
    let error = root.setattr("version", 2).unwrap_err();
    assert!(error.is_builtin("AttributeError"), "{error}");
}

#[test]
fn a_thread_pool_serves_concurrent_clients() {
    let running =
        serve_counter(rpycd::Server::new(counter_service::CounterService::new()).thread_pool(8));
    let addr = addr_of(&running);
    let threads: Vec<_> = (0..8)
        .map(|index| {
            std::thread::spawn(move || {
                let root = rpycd::connect(addr).unwrap().root().unwrap();
                for i in 0..50 {
                    assert_eq!(root.callattr::<i64>("add", (index, i)).unwrap(), index + i);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    let started = Instant::now();
    running.stop().expect("stops");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn per_connection_services_and_unix_sockets() {
    let dir = std::env::temp_dir().join(format!("rpycd-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("counter.sock");
    let _ = std::fs::remove_file(&path);
    let running = rpycd::Server::per_connection(counter_service::CounterService::new)
        .unix(&path)
        .bind()
        .unwrap()
        .spawn()
        .unwrap();
    let first = rpycd::api::connect_unix(&path).unwrap().root().unwrap();
    let second = rpycd::api::connect_unix(&path).unwrap().root().unwrap();
    let shared_first: RemoteObject = first.getattr("shared").unwrap();
    let shared_second: RemoteObject = second.getattr("shared").unwrap();
    shared_first.callattr::<i64>("increment", ()).unwrap();
    // each connection has its own service, so its own "shared" counter
    assert_eq!(shared_first.getattr::<i64>("value").unwrap(), 1);
    assert_eq!(shared_second.getattr::<i64>("value").unwrap(), 0);
    drop((first, second, shared_first, shared_second));
    running.stop().unwrap();
    assert!(!path.exists(), "the socket file is removed on stop");
    let _ = std::fs::remove_dir(&dir);
}

/// The Python with rpyc the tests drive: `RPYCD_TEST_PYTHON`, else the
/// repository's `.venv`. `None` (the test is skipped, saying so) if there
/// is none.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("RPYCD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let has_rpyc = Command::new(&python)
        .args(["-c", "import rpyc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if has_rpyc {
        Some(python)
    } else {
        eprintln!(
            "SKIPPED: no Python with rpyc at {} (set RPYCD_TEST_PYTHON)",
            python.display()
        );
        None
    }
}

const PYTHON_SERVICE: &str = r#"
import sys, rpyc
from rpyc.utils.server import ThreadedServer

class CalculatorService(rpyc.Service):
    ALIASES = ["CALC", "CALCULATOR"]
    def exposed_add(self, a, b):
        return a + b
    def exposed_greet(self, name, greeting="Hello"):
        return f"{greeting}, {name}!"
    def exposed_apply(self, func, *args, **kwargs):
        return func(*args, **kwargs)
    def exposed_squares(self, n):
        return [i * i for i in range(n)]
    def exposed_fail(self, message):
        raise ValueError(message)
    exposed_version = "py"

server = ThreadedServer(CalculatorService, hostname="127.0.0.1", port=0,
                        protocol_config={"allow_public_attrs": False})
print(server.port, flush=True)
server.start()
"#;

/// Python's ThreadedServer serving the service above; killed on drop.
struct PythonServer {
    child: Child,
    port: u16,
}

impl PythonServer {
    fn start(python: &PathBuf) -> PythonServer {
        let mut child = Command::new(python)
            .args(["-c", PYTHON_SERVICE])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts python");
        let stdout = child.stdout.take().expect("stdout");
        // the port line comes once the socket is bound; a thread reads it
        // so a server that never prints cannot hang the test
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_default();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            panic!("the Python server printed no port: {line:?}");
        };
        PythonServer { child, port }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_rust_client_calls_pythons_threaded_server() {
    let Some(python) = python() else { return };
    let server = PythonServer::start(&python);
    // rpyc's ThreadedServer binds in __init__ (the port it prints) but
    // listens only in start(): try again until it does
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let client = loop {
        match rpycd::connect(("127.0.0.1", server.port)) {
            Ok(client) => break client,
            Err(error) if std::time::Instant::now() > deadline => panic!("connects: {error:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let root = client.root().unwrap();
    assert_eq!(root.callattr::<i64>("add", (1, 2)).unwrap(), 3);
    assert_eq!(root.callattr::<i64>("exposed_add", (3, 4)).unwrap(), 7);
    let greeting = Args::new().arg("Ada").kwarg("greeting", "Hi");
    assert_eq!(
        root.callattr::<String>("greet", greeting).unwrap(),
        "Hi, Ada!"
    );
    let add: RemoteObject = root.getattr("add").unwrap();
    assert_eq!(add.call::<i64>((40, 2)).unwrap(), 42);
    assert_eq!(root.getattr::<String>("version").unwrap(), "py");
    assert_eq!(
        root.callattr::<String>("get_service_name", ()).unwrap(),
        "CALC"
    );
    // a Python list arrives by reference and is read through requests
    let squares: Vec<i64> = root.callattr("squares", (5,)).unwrap();
    assert_eq!(squares, vec![0, 1, 4, 9, 16]);
    // a Rust closure as the Python service's callback, keywords included
    let describe = Obj::function("describe", |call| {
        let (a, b): (i64, Option<String>) = call.params(&["a", "b"])?;
        Ok(Obj::from_value(rpycd::protocol::Value::str(format!(
            "{a}:{}",
            b.unwrap_or_default()
        ))))
    });
    let described: String = root
        .callattr("apply", Args::new().arg(describe).arg(7).kwarg("b", "x"))
        .unwrap();
    assert_eq!(described, "7:x");
    // a Python exception comes back with its class, message and traceback
    let error = root.callattr::<Obj>("fail", ("bad input",)).unwrap_err();
    let exception = error.exception().expect("an exception");
    assert!(exception.is("builtins", "ValueError"), "{exception}");
    assert_eq!(exception.message(), "bad input");
    assert!(
        exception.traceback.contains("exposed_fail"),
        "{}",
        exception.traceback
    );
    // rpyc's attribute rules hold on Python's side too
    let error = root.getattr::<Obj>("_private").unwrap_err();
    assert!(error.is_builtin("AttributeError"), "{error}");
    client.ping().unwrap();
    assert_eq!(client.held_by_server(), 0, "Python released the callback");
    client.close();
}

/// A service that tells a client where it sees it from.
struct WhereService;

impl rpycd::api::Object for WhereService {
    fn describe(class: &mut rpycd::api::Class<Self>) {
        class.method("client_port", |_, call| {
            let port = call
                .peer()
                .info()
                .endpoints
                .map(|(_, theirs)| theirs.port());
            Ok(i64::from(port.unwrap_or(0)))
        });
    }
}

impl rpycd::Service for WhereService {}

#[test]
fn both_sides_know_the_endpoints() {
    let running = serve_counter(rpycd::Server::new(WhereService).threaded());
    let client = rpycd::connect(addr_of(&running)).unwrap();
    let (ours, theirs) = client.peer().info().endpoints.expect("a TCP connection");
    assert_eq!(theirs, addr_of(&running));
    let seen: i64 = client.root().unwrap().callattr("client_port", ()).unwrap();
    assert_eq!(seen, i64::from(ours.port()));
    client.close();
    running.stop().expect("stops");
}
