//! An rpyc service written in Rust, for stock Python clients:
//!
//! ```text
//! cargo run --example counter_service -- 18861            # or 0: any free port
//! cargo run --example counter_service -- 0 --mode forking # threaded, threadpool, forking, oneshot
//! ```
//!
//! ```python
//! import rpyc
//! conn = rpyc.connect("127.0.0.1", 18861)
//! conn.root.add(1, 2)                      # 3
//! conn.root.greet("Ada", greeting="Hi")    # 'Hi, Ada!'
//! c = conn.root.counter(start=10)          # a Rust object, by reference
//! c.increment(); c.value                   # 11
//! conn.root.apply(lambda x: x * 2, 21)     # 42: the service calls back
//! conn.root.div(1, 0)                      # ZeroDivisionError
//! ```
//!
//! It prints `listening on HOST:PORT` once the port is bound, then serves
//! until SIGTERM (draining) or SIGINT.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use rpycd::api::{Call, Class, Error, Obj, Object, RemoteObject, Service};

/// A counter a client holds by reference.
struct Counter {
    value: AtomicI64,
}

impl Counter {
    fn new(start: i64) -> Counter {
        Counter {
            value: AtomicI64::new(start),
        }
    }
}

impl Object for Counter {
    fn describe(class: &mut Class<Self>) {
        class
            .name("counter_service.Counter")
            .doc("A counter that lives in the server.")
            .method("increment", |this, call| {
                let (step,): (Option<i64>,) = call.params(&["step"])?;
                let step = step.unwrap_or(1);
                Ok(this.value.fetch_add(step, Ordering::SeqCst) + step)
            })
            .method("reset", |this, call| {
                call.params::<()>(&[])?;
                this.value.store(0, Ordering::SeqCst);
                Ok(())
            })
            // `counter()` in Python: a callable proxy
            .method("__call__", |this, _| Ok(this.value.load(Ordering::SeqCst)))
            .attribute("value", |this| Ok(this.value.load(Ordering::SeqCst)));
    }

    fn repr(&self) -> Option<String> {
        Some(format!(
            "<Counter value={}>",
            self.value.load(Ordering::SeqCst)
        ))
    }
}

/// The service: `conn.root` of every client.
pub struct CounterService {
    /// One counter all clients share (`root.shared`).
    shared: Arc<Counter>,
    calls: AtomicU64,
}

impl Object for CounterService {
    fn describe(class: &mut Class<Self>) {
        class
            .name("counter_service.CounterService")
            .doc("Arithmetic, counters and callbacks, served from Rust.")
            .method("add", |this, call| {
                this.count();
                let (a, b): (i64, i64) = call.params(&["a", "b"])?;
                a.checked_add(b)
                    .ok_or_else(|| Error::builtin("OverflowError", "int too large"))
            })
            .method("div", |this, call| {
                this.count();
                let (a, b): (f64, f64) = call.params(&["a", "b"])?;
                if b == 0.0 {
                    return Err(Error::zero_division_error("division by zero"));
                }
                Ok(a / b)
            })
            .method("echo", |this, call| {
                this.count();
                let (value,): (Obj,) = call.params(&["value"])?;
                Ok(value)
            })
            .method("greet", |this, call| {
                this.count();
                let (name, greeting): (String, Option<String>) =
                    call.params(&["name", "greeting"])?;
                Ok(format!(
                    "{}, {name}!",
                    greeting.as_deref().unwrap_or("Hello")
                ))
            })
            .method("sum", |this, call| {
                this.count();
                // a tuple by value, or a Python list by reference: both work
                let (items,): (Vec<i64>,) = call.params(&["items"])?;
                Ok(items.iter().sum::<i64>())
            })
            .method("counter", |this, call| {
                this.count();
                let (start,): (Option<i64>,) = call.params(&["start"])?;
                Ok(Arc::new(Counter::new(start.unwrap_or(0))))
            })
            .method("apply", |this, call| {
                this.count();
                // apply(func, *args, **kwargs): calls the client's function
                let func: RemoteObject = call.arg(0)?;
                let mut args = rpycd::api::Args::new();
                for arg in call.args().iter().skip(1) {
                    args = args.arg(arg.clone());
                }
                for (name, value) in call.kwargs() {
                    args = args.kwarg(name, value.clone());
                }
                func.call::<Obj>(args)
            })
            .method("map", |this, call| {
                this.count();
                let (func, items): (RemoteObject, Vec<Obj>) = call.params(&["func", "items"])?;
                items
                    .into_iter()
                    .map(|item| func.call::<Obj>((item,)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .method("fail", |this, call| {
                this.count();
                // fail("KeyError", "k") raises builtins.KeyError("k");
                // fail("mymod.MyError", "m") a class the client may not know
                let (class, message): (String, String) = call.params(&["class", "message"])?;
                Err::<(), _>(match class.rsplit_once('.') {
                    Some((module, name)) => Error::new(module, name, message),
                    None => Error::builtin(&class, message),
                })
            })
            .method("pid", |_, _| Ok(std::process::id()))
            .method("calls", |this, _| Ok(this.calls.load(Ordering::Relaxed)))
            .method("whoami", whoami)
            .attribute("shared", |this| Ok(this.shared.clone()))
            .attribute("version", |_| Ok("1.0"));
    }
}

impl CounterService {
    /// A service with its shared counter at 0 (tests run it in-process).
    pub fn new() -> CounterService {
        CounterService {
            shared: Arc::new(Counter::new(0)),
            calls: AtomicU64::new(0),
        }
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// The client's own service name, asked back over the same connection.
fn whoami(_: &Arc<CounterService>, call: &Call) -> Result<String, Error> {
    call.peer().root()?.callattr("get_service_name", ())
}

impl Default for CounterService {
    fn default() -> CounterService {
        CounterService::new()
    }
}

impl Service for CounterService {
    const ALIASES: &'static [&'static str] = &["COUNTER", "RUST-COUNTER"];
}

fn usage() -> ! {
    eprintln!(
        "usage: counter_service [PORT] [--host HOST] [--mode threaded|threadpool|forking|oneshot]"
    );
    std::process::exit(64)
}

fn main() {
    let mut port: u16 = 0;
    let mut host = "127.0.0.1".to_owned();
    let mut mode = "threaded".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--host" => host = args.next().unwrap_or_else(|| usage()),
            "--mode" => mode = args.next().unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            other => port = other.parse().unwrap_or_else(|_| usage()),
        }
    }
    let server = rpycd::Server::new(CounterService::new());
    let server = match mode.as_str() {
        "threaded" => server.threaded(),
        "threadpool" => server.thread_pool(8),
        "forking" => server.forking(),
        "oneshot" => server.oneshot(),
        _ => usage(),
    };
    let bound = match server.tcp((host.as_str(), port)).stop_on_signals().bind() {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("counter_service: {error}");
            std::process::exit(69)
        }
    };
    match bound.local_addr() {
        Some(addr) => println!("listening on {}:{}", addr.ip(), addr.port()),
        None => println!("listening"),
    }
    if let Err(error) = bound.serve() {
        eprintln!("counter_service: {error}");
        std::process::exit(70)
    }
}
