//! Shared by the integration tests: the captured vectors under `tests/data`
//! and the Python that has rpyc 6.0.2.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::PathBuf;
use std::process::Command;

use rpycd_proto::brine::Value;
use rpycd_proto::message::{Boxed, ExceptionInfo, IdPack, Message, RemoteException};
use rpycd_proto::Handler;
use serde_json::Value as Json;

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The entries of one vector file.
pub fn vectors(name: &str) -> Vec<Json> {
    let path = data_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Json::Array(entries)) => entries,
        other => panic!("{} is not a JSON list: {other:?}", path.display()),
    }
}

pub fn field<'a>(entry: &'a Json, key: &str) -> &'a Json {
    entry
        .get(key)
        .unwrap_or_else(|| panic!("vector lacks {key:?}: {entry}"))
}

pub fn text(json: &Json) -> &str {
    json.as_str()
        .unwrap_or_else(|| panic!("expected a string: {json}"))
}

pub fn hex(json: &Json) -> Vec<u8> {
    let digits = text(json).as_bytes();
    assert!(digits.len() % 2 == 0, "odd hex length");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii hex");
            u8::from_str_radix(pair, 16).expect("hex digit")
        })
        .collect()
}

fn items(json: &Json) -> &Vec<Json> {
    json.as_array()
        .unwrap_or_else(|| panic!("expected a list: {json}"))
}

fn float(json: &Json) -> f64 {
    let bytes: [u8; 8] = hex(json).try_into().expect("8 bytes of float");
    f64::from_be_bytes(bytes)
}

/// A brine value from the generator's `["tag", ...]` notation.
pub fn value(json: &Json) -> Value {
    let parts = items(json);
    let arg = |i: usize| &parts[i];
    match text(&parts[0]) {
        "none" => Value::None,
        "bool" => Value::Bool(arg(1).as_bool().expect("bool")),
        "notimpl" => Value::NotImplemented,
        "ellipsis" => Value::Ellipsis,
        "int" => Value::int_from_decimal(text(arg(1)).as_bytes()).expect("decimal int"),
        "float" => Value::Float(float(arg(1))),
        "complex" => {
            let bytes = hex(arg(1));
            let re = f64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
            let im = f64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
            Value::Complex(re, im)
        }
        "str" => Value::str(text(arg(1))),
        "bytes" => Value::Bytes(hex(arg(1)).into()),
        "slice" => Value::Slice(Box::new([value(arg(1)), value(arg(2)), value(arg(3))])),
        "tuple" => Value::Tuple(items(arg(1)).iter().map(value).collect()),
        "frozenset" => Value::FrozenSet(items(arg(1)).iter().map(value).collect()),
        other => panic!("unknown value notation {other:?}"),
    }
}

fn id_pack(parts: &[Json]) -> IdPack {
    let number = |json: &Json| -> u64 {
        match json {
            Json::String(digits) => digits.parse().expect("decimal id"),
            other => other.as_u64().expect("id number"),
        }
    };
    IdPack {
        name: text(&parts[1]).to_owned(),
        type_id: number(&parts[2]),
        obj_id: number(&parts[3]),
    }
}

pub fn boxed(json: &Json) -> Boxed {
    let parts = items(json);
    match text(&parts[0]) {
        "value" => Boxed::Value(value(&parts[1])),
        "tuple" => Boxed::Tuple(items(&parts[1]).iter().map(boxed).collect()),
        "local_ref" => Boxed::LocalRef(id_pack(parts)),
        "remote_ref" => Boxed::RemoteRef(id_pack(parts)),
        other => panic!("unknown boxed notation {other:?}"),
    }
}

pub fn exception(json: &Json) -> RemoteException {
    if json.is_array() {
        return match text(&items(json)[0]) {
            "stop_iteration" => RemoteException::StopIteration,
            other => panic!("unknown exception notation {other:?}"),
        };
    }
    if let Some(text) = json.as_str() {
        return RemoteException::Text(text.to_owned());
    }
    RemoteException::Raised(ExceptionInfo {
        module: text(field(json, "module")).to_owned(),
        name: text(field(json, "name")).to_owned(),
        args: items(field(json, "args")).iter().map(value).collect(),
        attrs: items(field(json, "attrs"))
            .iter()
            .map(|pair| {
                let pair = items(pair);
                (text(&pair[0]).to_owned(), value(&pair[1]))
            })
            .collect(),
        traceback: text(field(json, "traceback")).to_owned(),
    })
}

pub fn message(json: &Json) -> Message {
    let seq = field(json, "seq").as_i64().expect("seq");
    match text(field(json, "type")) {
        "request" => {
            let code = field(json, "handler").as_i64().expect("handler");
            Message::Request {
                seq,
                handler: Handler::from_code(code).expect("known handler"),
                args: boxed(field(json, "args")),
            }
        }
        "reply" => Message::Reply {
            seq,
            value: boxed(field(json, "value")),
        },
        "exception" => Message::Exception {
            seq,
            exception: exception(field(json, "exc")),
        },
        other => panic!("unknown message type {other:?}"),
    }
}

/// The Python with rpyc 6.0.2 that `scripts/test` sets up.
pub fn python() -> Command {
    let python = std::env::var_os("RPYCD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with rpyc at {} (run scripts/install-deps or set RPYCD_TEST_PYTHON)",
        python.display()
    );
    Command::new(python)
}
