//! A Rust client for `counter_service` (or any rpyc server with the same
//! methods):
//!
//! ```text
//! cargo run --example counter_service -- 18861 &
//! cargo run --example counter_client -- 127.0.0.1:18861
//! ```

use rpycd::api::{Args, Error, Obj, RemoteObject};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18861".into());
    if let Err(error) = run(&addr) {
        eprintln!("counter_client: {error}");
        std::process::exit(1);
    }
}

fn run(addr: &str) -> Result<(), Error> {
    let client = rpycd::connect(addr)?;
    let root = client.root()?;

    let name: String = root.callattr("get_service_name", ())?;
    println!("connected to {name}");

    let sum: i64 = root.callattr("add", (1, 2))?;
    println!("add(1, 2) = {sum}");

    let greeting: String =
        root.callattr("greet", Args::new().arg("Ada").kwarg("greeting", "Hi"))?;
    println!("greet('Ada', greeting='Hi') = {greeting:?}");

    // a Rust object of the server's, held by reference
    let counter: RemoteObject = root.callattr("counter", Args::new().kwarg("start", 10))?;
    let after: i64 = counter.callattr("increment", (5,))?;
    let value: i64 = counter.getattr("value")?;
    println!(
        "counter: increment(5) = {after}, value = {value}, {}",
        counter.repr()?
    );

    // a Rust closure the server calls back
    let double = Obj::function("double", |call| {
        let x: i64 = call.arg(0)?;
        Ok(Obj::from_value((x * 2).into()))
    });
    let doubled: i64 = root.callattr("apply", (double, 21))?;
    println!("apply(double, 21) = {doubled}");

    // a Python exception, carried back
    match root.callattr::<f64>("div", (1, 0)) {
        Err(Error::Exception(exception)) => println!(
            "div(1, 0) raised {}: {}",
            exception.qualified_name(),
            exception.message()
        ),
        other => println!("div(1, 0) = {other:?}"),
    }
    client.close();
    Ok(())
}
