//! Registry messages: bare brine values, one per datagram (UDP) or per
//! connection (TCP). A request is `("RPYC", COMMAND, args)`:
//!
//! - `REGISTER (aliases, port)` → `"OK"`
//! - `UNREGISTER (port,)` → `"OK"`
//! - `QUERY (name,)` → `((host, port), ...)`
//! - `LIST ((filter_host,),)` → `(name, ...)`, or `None` when listing is off
//!
//! rpyc's clients read at most 1500 bytes of a reply (15000 for LIST over
//! UDP), and its server reads requests of at most 1500 bytes.

use thiserror::Error;

use crate::brine::{self, DecodeError, EncodeError, Value};

pub const MAGIC: &str = "RPYC";
/// rpyc's MAX_DGRAM_SIZE: the largest request, and the largest reply a
/// client reads (but for LIST over UDP).
pub const MAX_MESSAGE: usize = 1500;
/// What rpyc's UDP client reads of a LIST reply.
pub const MAX_LIST_REPLY: usize = MAX_MESSAGE * 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Register {
        aliases: Vec<String>,
        port: u16,
    },
    Unregister {
        port: u16,
    },
    Query {
        name: String,
    },
    /// `filter_host`: only services with a server on that host.
    List {
        filter_host: Option<String>,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("not brine: {0}")]
    Brine(#[from] DecodeError),
    #[error("not a (magic, command, args) triple")]
    NotTriple,
    #[error("invalid magic {0:?}")]
    BadMagic(String),
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("bad arguments for {0}")]
    BadArgs(&'static str),
}

impl Request {
    pub fn decode(data: &[u8]) -> Result<Request, RequestError> {
        if data.len() > MAX_MESSAGE {
            return Err(RequestError::TooLarge(data.len()));
        }
        let [magic, command, args]: [Value; 3] = brine::decode(data)?
            .into_tuple()
            .and_then(|items| items.try_into().ok())
            .ok_or(RequestError::NotTriple)?;
        match magic.as_str() {
            Some(MAGIC) => {}
            Some(other) => return Err(RequestError::BadMagic(other.to_owned())),
            None => return Err(RequestError::BadMagic(format!("{magic:?}"))),
        }
        let command = command.as_str().ok_or(RequestError::NotTriple)?;
        let mut args = args.into_tuple().ok_or(RequestError::NotTriple)?;
        // rpyc looks the handler up as cmd_<command.lower()>
        let known = ["register", "unregister", "query", "list"]
            .into_iter()
            .find(|known| command.eq_ignore_ascii_case(known));
        match (known.unwrap_or(""), args.as_mut_slice()) {
            ("register", [aliases, port]) => Ok(Request::Register {
                aliases: aliases
                    .as_tuple()
                    .ok_or(RequestError::BadArgs("REGISTER"))?
                    .iter()
                    .map(|alias| alias.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(RequestError::BadArgs("REGISTER"))?,
                port: port_of(port).ok_or(RequestError::BadArgs("REGISTER"))?,
            }),
            ("unregister", [port]) => Ok(Request::Unregister {
                port: port_of(port).ok_or(RequestError::BadArgs("UNREGISTER"))?,
            }),
            // the registry's busiest request: the name is moved, not copied
            ("query", [Value::Str(name)]) => Ok(Request::Query {
                name: std::mem::take(name),
            }),
            ("query", [_]) => Err(RequestError::BadArgs("QUERY")),
            ("list", [filter]) => match filter.as_tuple() {
                Some([Value::None]) => Ok(Request::List { filter_host: None }),
                Some([Value::Str(host)]) => Ok(Request::List {
                    filter_host: (!host.is_empty()).then(|| host.clone()),
                }),
                _ => Err(RequestError::BadArgs("LIST")),
            },
            ("register" | "unregister" | "query" | "list", _) => {
                Err(RequestError::BadArgs("that command"))
            }
            _ => Err(RequestError::UnknownCommand(command.to_owned())),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let (command, args) = match self {
            Request::Register { aliases, port } => (
                "REGISTER",
                vec![
                    Value::Tuple(aliases.iter().map(|a| Value::str(a.as_str())).collect()),
                    Value::Int(i64::from(*port)),
                ],
            ),
            Request::Unregister { port } => ("UNREGISTER", vec![Value::Int(i64::from(*port))]),
            Request::Query { name } => ("QUERY", vec![Value::str(name.as_str())]),
            Request::List { filter_host } => (
                "LIST",
                vec![Value::Tuple(vec![filter_host
                    .as_deref()
                    .map_or(Value::None, Value::from)])],
            ),
        };
        Value::Tuple(vec![
            Value::str(MAGIC),
            Value::str(command),
            Value::Tuple(args),
        ])
        .to_bytes()
    }
}

fn port_of(value: &Value) -> Option<u16> {
    value.as_i64().and_then(|port| u16::try_from(port).ok())
}

/// The registry's answer to REGISTER and UNREGISTER.
pub fn ok_reply() -> Vec<u8> {
    // a constant that always encodes
    let mut out = Vec::with_capacity(4);
    let _ = brine::encode_str("OK", &mut out);
    out
}

/// Whether a reply is rpyc's acknowledgement.
pub fn is_ok_reply(data: &[u8]) -> bool {
    brine::decode(data).is_ok_and(|value| value.as_str() == Some("OK"))
}

/// The answer to QUERY: as many endpoints as fit in `limit` bytes.
pub fn endpoints_reply(endpoints: &[(String, u16)], limit: usize) -> Vec<u8> {
    // encoded straight from the table's strings: this answers every query
    fit_encoded(
        endpoints.iter().map(|(host, port)| {
            move |out: &mut Vec<u8>| {
                brine::encode_tuple_header(2, out)?;
                brine::encode_str(host, out)?;
                brine::encode_int(i64::from(*port), out);
                Ok(())
            }
        }),
        limit,
    )
}

/// The answer to LIST: as many names as fit, or `None` (listing is off).
pub fn names_reply(names: Option<&[String]>, limit: usize) -> Vec<u8> {
    match names {
        None => vec![brine::TAG_NONE],
        Some(names) => fit_tuple(names.iter().map(|name| Value::str(name.as_str())), limit),
    }
}

/// A tuple of the leading items whose encoding fits in `limit` bytes: a
/// client reading `limit` bytes must get a whole value, not a cut one.
fn fit_tuple(items: impl Iterator<Item = Value>, limit: usize) -> Vec<u8> {
    fit_encoded(
        items.map(|item| move |out: &mut Vec<u8>| item.encode(out)),
        limit,
    )
}

/// [`fit_tuple`] of items given as their encoders.
fn fit_encoded<E>(items: impl Iterator<Item = E>, limit: usize) -> Vec<u8>
where
    E: FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
{
    let mut body = Vec::new();
    let mut count = 0;
    for encode in items {
        let before = body.len();
        if encode(&mut body).is_err() || tuple_header_len(count + 1) + body.len() > limit {
            body.truncate(before);
            break;
        }
        count += 1;
    }
    let mut out = Vec::with_capacity(tuple_header_len(count) + body.len());
    // fewer than 2^32 items: the header always encodes
    let _ = brine::encode_tuple_header(count, &mut out);
    out.extend_from_slice(&body);
    out
}

fn tuple_header_len(count: usize) -> usize {
    match count {
        0..=4 => 1,
        5..=255 => 2,
        _ => 5,
    }
}

/// Decodes a QUERY reply (for the registrar's own use and tests).
pub fn decode_endpoints(data: &[u8]) -> Option<Vec<(String, u16)>> {
    brine::decode(data)
        .ok()?
        .into_tuple()?
        .into_iter()
        .map(|pair| match pair.as_tuple() {
            Some([Value::Str(host), port]) => Some((host.clone(), port_of(port)?)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Register {
                aliases: vec!["SLAVE".into(), "CLASSIC".into()],
                port: 18812,
            },
            Request::Unregister { port: 18812 },
            Request::Query {
                name: "slave".into(),
            },
            Request::List { filter_host: None },
            Request::List {
                filter_host: Some("10.0.0.1".into()),
            },
        ] {
            let bytes = request.encode().expect("encodes");
            assert_eq!(Request::decode(&bytes), Ok(request));
        }
    }

    #[test]
    fn rpyc_register_bytes() {
        // brine.dump(("RPYC", "REGISTER", (("SLAVE",), 18812)))
        let bytes = b"\x12\x08\x0dRPYC\x08\x0e\x08REGISTER\x11\x10\x08\x0e\x05SLAVE\x16\x0518812";
        assert_eq!(
            Request::decode(bytes),
            Ok(Request::Register {
                aliases: vec!["SLAVE".into()],
                port: 18812
            })
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(
            Request::decode(&[0u8; 1501]),
            Err(RequestError::TooLarge(1501))
        );
        let wrong_magic = Value::Tuple(vec![
            Value::str("XXXX"),
            Value::str("QUERY"),
            Value::Tuple(vec![Value::str("a")]),
        ]);
        assert!(matches!(
            Request::decode(&wrong_magic.to_bytes().unwrap()),
            Err(RequestError::BadMagic(_))
        ));
        let unknown = Value::Tuple(vec![
            Value::str("RPYC"),
            Value::str("EXPLODE"),
            Value::Tuple(vec![]),
        ]);
        assert!(matches!(
            Request::decode(&unknown.to_bytes().unwrap()),
            Err(RequestError::UnknownCommand(_))
        ));
        let bad_port = Value::Tuple(vec![
            Value::str("RPYC"),
            Value::str("UNREGISTER"),
            Value::Tuple(vec![Value::Int(70000)]),
        ]);
        assert!(matches!(
            Request::decode(&bad_port.to_bytes().unwrap()),
            Err(RequestError::BadArgs(_))
        ));
    }

    #[test]
    fn commands_are_matched_without_case_and_queries_need_a_name() {
        let query = |command: &str, args: Vec<Value>| {
            Value::Tuple(vec![
                Value::str(MAGIC),
                Value::str(command),
                Value::Tuple(args),
            ])
            .to_bytes()
            .expect("encodes")
        };
        for command in ["QUERY", "query", "Query"] {
            assert_eq!(
                Request::decode(&query(command, vec![Value::str("slave")])),
                Ok(Request::Query {
                    name: "slave".into()
                })
            );
        }
        assert_eq!(
            Request::decode(&query("QUERY", vec![Value::Int(1)])),
            Err(RequestError::BadArgs("QUERY"))
        );
        assert_eq!(
            Request::decode(&query("QUERY", vec![])),
            Err(RequestError::BadArgs("that command"))
        );
        assert_eq!(
            Request::decode(&query("QUERYX", vec![Value::str("a")])),
            Err(RequestError::UnknownCommand("QUERYX".into()))
        );
    }

    #[test]
    fn an_endpoints_reply_is_the_brine_tuple_of_host_port_pairs() {
        let endpoints = [("10.0.0.1".to_string(), 18812), ("::1".to_string(), 1)];
        let expected = Value::Tuple(
            endpoints
                .iter()
                .map(|(host, port)| {
                    Value::Tuple(vec![
                        Value::str(host.as_str()),
                        Value::Int(i64::from(*port)),
                    ])
                })
                .collect(),
        );
        assert_eq!(
            endpoints_reply(&endpoints, MAX_MESSAGE),
            expected.to_bytes().expect("encodes")
        );
        assert_eq!(endpoints_reply(&[], MAX_MESSAGE), [brine::TAG_EMPTY_TUPLE]);
    }

    #[test]
    fn replies_fit_their_limit() {
        let endpoints: Vec<(String, u16)> = (0..500)
            .map(|i| (format!("10.0.{}.{}", i / 256, i % 256), 18812))
            .collect();
        let reply = endpoints_reply(&endpoints, MAX_MESSAGE);
        assert!(reply.len() <= MAX_MESSAGE);
        let decoded = decode_endpoints(&reply).expect("decodes");
        assert!(!decoded.is_empty() && decoded.len() < 500);
        assert_eq!(decoded[..], endpoints[..decoded.len()]);
        assert_eq!(names_reply(None, MAX_LIST_REPLY), [brine::TAG_NONE]);
        assert!(is_ok_reply(&ok_reply()));
    }
}
