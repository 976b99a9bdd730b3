//! The bulk-transfer workloads: 1 MB to 100 MB of random or text bytes,
//! up and down, from Python's client and ours, against both servers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::ceiling::loopback_transfer;
use super::client::Client;
use super::compare::{median, Lab, Plan, Results};
use super::report::{Row, Target};
use super::servers::Programs;
use super::workloads::{client_args, interleaved, run_client_py, MB};
use super::{BenchError, Result};
use rpycd::protocol::brine::Value;
use rpycd::protocol::message::Boxed;

/// The Python source that makes the benchmark's data on the server, as
/// bench/client.py writes it.
fn python_data_source(random: bool, size: usize) -> String {
    if random {
        format!("__import__('os').urandom({size})")
    } else {
        format!(
            "(lambda n, block: (block * (n // len(block) + 1))[:n])({size}, \
             b''.join(b'%d,%d,rpyc benchmark row %x\\n' % (i, i * i, i * 7919) \
             for i in range(30000)))"
        )
    }
}

/// The same kinds of data made here: text rows like the Python source's,
/// or xorshift noise that zlib cannot shrink.
fn rust_data(random: bool, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size + 64);
    if random {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        while data.len() < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
    } else {
        let mut block = Vec::new();
        for i in 0u64..30_000 {
            block.extend_from_slice(
                format!("{i},{},rpyc benchmark row {:x}\n", i * i, i * 7919).as_bytes(),
            );
        }
        while data.len() < size {
            data.extend_from_slice(&block);
        }
    }
    data.truncate(size);
    data
}

/// One bulk transfer with the Rust client: bytes per second.
pub fn rust_bulk(addr: SocketAddr, random: bool, download: bool, size: usize) -> Result<Json> {
    let client = Client::connect(addr, Duration::from_secs(10))?;
    let root = client.root()?;
    let expect_len = |boxed: Boxed| match boxed {
        Boxed::Value(Value::Bytes(bytes)) if bytes.len() == size => Ok(()),
        Boxed::Value(Value::Int(n)) if usize::try_from(n).ok() == Some(size) => Ok(()),
        other => Err(BenchError::Unexpected(format!(
            "bulk answer is not {size} bytes long: {:?}",
            std::mem::discriminant(&other)
        ))),
    };
    let elapsed = if download {
        let source = format!("bench_blob = {}", python_data_source(random, size));
        client.callattr(&root, "execute", vec![Boxed::Value(Value::str(source))])?;
        let started = Instant::now();
        let blob = client.callattr(&root, "eval", vec![Boxed::Value(Value::str("bench_blob"))])?;
        let elapsed = started.elapsed();
        expect_len(blob)?;
        client.callattr(
            &root,
            "execute",
            vec![Boxed::Value(Value::str("del bench_blob"))],
        )?;
        elapsed
    } else {
        let builtins = client.getmodule(&root, "builtins")?;
        let Boxed::RemoteRef(len) = client.getattr(&builtins, "len")? else {
            return Err(BenchError::Unexpected(
                "builtins.len is not an object".into(),
            ));
        };
        let data = Boxed::Value(Value::Bytes(rust_data(random, size).into()));
        let started = Instant::now();
        let answer = client.call(&len, vec![data])?;
        let elapsed = started.elapsed();
        expect_len(answer)?;
        client.release(&len)?;
        client.release(&builtins)?;
        elapsed
    };
    client.release(&root)?;
    client.close();
    Ok(json!({
        "bytes": size,
        "seconds": elapsed.as_secs_f64(),
        "bytes_per_sec": size as f64 / elapsed.as_secs_f64(),
    }))
}

fn bytes_per_sec(json: &Json) -> Option<f64> {
    json.get("bytes_per_sec").and_then(Json::as_f64)
}

/// Bulk transfer: the stock Python client against ours and Python's, and
/// the Rust client against ours and the raw loopback.
pub fn bulk(plan: &Plan, programs: &Programs, lab: &Lab, results: &mut Results) -> Result<()> {
    let size = plan.bulk_size;
    let megabytes = size as f64 / MB;
    let ours = lab.ours_threaded.addr;
    let python = lab.python_threaded.addr;
    let bound = size as f64 / plan.bulk_timeout.as_secs_f64() / MB;
    for (random, download, target) in [
        (true, true, 30.0),
        (true, false, 15.0),
        (false, true, 2.0),
        (false, false, 2.0),
    ] {
        let data = if random { "random" } else { "text" };
        let direction = if download { "download" } else { "upload" };
        let extra = vec![
            "--size".to_string(),
            size.to_string(),
            "--data".into(),
            data.into(),
            "--direction".into(),
            direction.into(),
            "--seconds".into(),
            plan.seconds.as_secs_f64().to_string(),
            "--max-ops".into(),
            "3".into(),
            "--timeout".into(),
            plan.bulk_timeout.as_secs_f64().to_string(),
        ];
        let contenders = [("ours", ours), ("python", python)];
        let mut timed_out = [false, false];
        let mut index = 0;
        // one round: Python's quadratic writes make a 100 MB download last
        // about 40 s on the reference machine
        let figures = interleaved(
            results,
            &format!("bulk {data} {direction}, Python client"),
            1,
            &contenders,
            |addr| {
                let outcome = run_client_py(
                    programs,
                    &client_args("bulk", *addr, &extra),
                    plan.bulk_timeout + Duration::from_secs(30),
                );
                if outcome.is_err() {
                    timed_out[index % 2] = true;
                }
                index += 1;
                outcome
            },
            bytes_per_sec,
        );
        let mut row = Row::new(
            "bulk (stock Python client, threaded servers)",
            format!("{megabytes:.0} MB {data} {direction}"),
            "MB/s",
        );
        row.ours = median(&figures[0]).map(|b| b / MB);
        row.python = median(&figures[1]).map(|b| b / MB);
        if timed_out[1] && row.python.is_none() {
            row.python = Some(bound);
            row.note = format!(
                "Python's did not finish in {:?}: its figure is an upper bound",
                plan.bulk_timeout
            );
        }
        row.targets = vec![Target::Ratio(target)];
        results.rows.push(row);
    }
    // the Rust client against ours, with the raw loopback as the ceiling
    let ceiling = interleaved(
        results,
        "bulk: raw loopback",
        plan.bulk_rounds,
        &[("ceiling", ())],
        |()| {
            let elapsed = loopback_transfer(size)?;
            Ok(json!({ "bytes": size, "seconds": elapsed.as_secs_f64(),
                       "bytes_per_sec": size as f64 / elapsed.as_secs_f64() }))
        },
        bytes_per_sec,
    );
    let ceiling = median(&ceiling[0]).map(|b| b / MB);
    for (random, download) in [(true, true), (true, false), (false, true), (false, false)] {
        let data = if random { "random" } else { "text" };
        let direction = if download { "download" } else { "upload" };
        // one transfer first, not counted: on the reference VM the first
        // 100 MB of fresh memory after a while is up to 4x slower to clear
        // (the kernel's clear_page, as perf shows; the host backing the
        // guest's pages, as far as we can tell), a cost the raw loopback's
        // reused buffer never pays
        if let Err(error) = rust_bulk(ours, random, download, size) {
            eprintln!("bulk {data} {direction}, Rust client: warm-up: {error}");
        }
        let figures = interleaved(
            results,
            &format!("bulk {data} {direction}, Rust client"),
            plan.bulk_rounds,
            &[("ours", ours)],
            |addr| rust_bulk(*addr, random, download, size),
            bytes_per_sec,
        );
        let mut row = Row::new(
            "bulk (Rust client; ceiling: raw loopback TCP)",
            format!("{megabytes:.0} MB {data} {direction}"),
            "MB/s",
        );
        row.ours = median(&figures[0]).map(|b| b / MB);
        row.ceiling = ceiling;
        row.targets = vec![Target::WithinOfCeiling(2.0)];
        row.note = "not run against Python's server (its large writes are quadratic)".into();
        results.rows.push(row);
    }
    Ok(())
}
