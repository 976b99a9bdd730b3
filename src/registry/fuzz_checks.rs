//! Properties of the registry's request decoder that must hold for any
//! input: the `registry_request` fuzz target and the corpus test both call
//! [`registry_request`], and a violated property panics.

use super::protocol::{Request, RequestError, MAX_MESSAGE};
use crate::protocol::brine::DecodeError;

/// Strict prefixes checked one by one up to this length; past it, a sample
/// of them, so that a long input stays cheap for the fuzzer.
const EVERY_PREFIX_UP_TO: usize = 256;
const SAMPLED_PREFIXES: usize = 64;

/// Any bytes: decoding never panics. What decodes re-encodes to bytes that
/// decode to the same request (or, if those bytes are over the size limit,
/// are refused as such), and every strict prefix of it is "truncated":
/// the TCP registry reads a request in pieces and waits for more exactly
/// while the decoder says so.
pub fn registry_request(data: &[u8]) {
    let Ok(request) = Request::decode(data) else {
        return;
    };
    let encoded = request.encode().expect("a decoded request re-encodes");
    match Request::decode(&encoded) {
        Ok(decoded) => assert_eq!(decoded, request, "re-decoded request differs"),
        Err(RequestError::TooLarge(length)) => assert!(length > MAX_MESSAGE),
        Err(error) => panic!("our own encoding of {request:?} does not decode: {error}"),
    }
    for length in prefix_lengths(data.len()) {
        match Request::decode(&data[..length]) {
            Err(RequestError::Brine(DecodeError::Truncated { .. })) => {}
            other => panic!("the first {length} bytes of a request gave {other:?}"),
        }
    }
}

fn prefix_lengths(length: usize) -> Box<dyn Iterator<Item = usize>> {
    if length <= EVERY_PREFIX_UP_TO {
        Box::new(0..length)
    } else {
        Box::new((0..SAMPLED_PREFIXES).map(move |step| step * length / SAMPLED_PREFIXES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_for_every_kind_of_request_and_for_garbage() {
        for request in [
            Request::Register {
                aliases: vec!["SLAVE".into(), "CLASSIC".into()],
                port: 18812,
            },
            Request::Register {
                aliases: vec![],
                port: 65535,
            },
            Request::Unregister { port: 1 },
            Request::Query { name: "é".into() },
            Request::List { filter_host: None },
            Request::List {
                filter_host: Some("::1".into()),
            },
        ] {
            registry_request(&request.encode().expect("encodes"));
        }
        for garbage in [&b""[..], b"\x00", b"\xff\xff\xff\xff", &[0x12; 1600]] {
            registry_request(garbage);
        }
    }
}
