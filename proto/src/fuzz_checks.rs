//! Properties that must hold for any input whatsoever. The cargo-fuzz
//! targets and the corpus test both call these, so a property is written
//! once; a violated property panics, which is how a fuzzer notices.

use crate::brine::{self, DecodeError};
use crate::frame::{Decoder, FrameError, Limits};
use crate::message::Message;
use crate::registry::{Request, RequestError, MAX_MESSAGE};

/// Small limits, so the fuzzer reaches them with inputs it can afford.
pub const FUZZ_LIMITS: Limits = Limits {
    max_frame_size: 1 << 16,
    max_payload_size: 1 << 18,
};

/// Whatever decodes re-encodes, decodes to the same value, and re-encodes
/// to the same bytes again (our encoding is canonical).
pub fn brine_round_trip(data: &[u8]) {
    if let Ok(value) = brine::decode(data) {
        let encoded = value.to_bytes().expect("a decoded value re-encodes");
        let decoded = brine::decode(&encoded).expect("our own encoding decodes");
        assert_eq!(decoded, value, "re-decoded value differs");
        let again = decoded.to_bytes().expect("re-encodes");
        assert_eq!(again, encoded, "encoding is not a fixed point");
        bulk_apart(data, &value);
    }
}

/// A byte string that a reader finds and reads apart from the rest (as
/// it does with bulk strings; a small `min` lets the fuzzer reach it) is
/// taken back in the same place by the decoder.
fn bulk_apart(data: &[u8], value: &brine::Value) {
    if let brine::Located::At { data: at, len } = brine::find_bulk(data, 16) {
        let bytes = data.get(at..at + len).expect("found inside the value");
        let mut without = data[..at].to_vec();
        without.extend_from_slice(&data[at + len..]);
        let bulk = brine::Bulk {
            at,
            bytes: bytes.to_vec().into(),
        };
        let decoded = brine::decode_with_bulk(
            &without,
            brine::DecodeLimits::for_input(data.len()),
            Some(bulk),
        )
        .expect("decodes with its bulk string apart");
        assert_eq!(&decoded, value, "the bulk string went elsewhere");
    }
}

/// Same for whole messages, in every dialect: what one decodes
/// re-encodes, with the same route, to what decodes to the same message;
/// and bytes that decode in a dialect are detected as that one. (A route
/// whose first byte is not 0 is no real thread id's, and its message is
/// detected as a 6.x one by the first byte: no client sends it.)
pub fn message_round_trip(data: &[u8]) {
    use crate::message::{Dialect, Route};
    let limits = brine::DecodeLimits::for_input(data.len());
    for dialect in [Dialect::V6, Dialect::V5, Dialect::V6Threads] {
        let Ok(message) = Message::decode_for(data, dialect, limits) else {
            continue;
        };
        if dialect != Dialect::V6Threads || data.first() == Some(&0) {
            assert_eq!(
                Dialect::detect(data),
                Some(dialect),
                "decodes as {dialect:?}"
            );
        }
        let route = match dialect {
            Dialect::V6Threads => Route::of(data).expect("a routed message has its route"),
            Dialect::V6 | Dialect::V5 => Route::default(),
        };
        let encoded = message
            .encode_routed(dialect, route)
            .expect("a decoded message re-encodes");
        let again = brine::DecodeLimits::for_input(encoded.len());
        let decoded =
            Message::decode_for(&encoded, dialect, again).expect("our own encoding decodes");
        assert_eq!(decoded, message, "re-decoded message differs");
        if dialect == Dialect::V6Threads {
            assert_eq!(Route::of(&encoded), Some(route), "the route changed");
        }
    }
}

/// The decoder yields the same frames (and the same error) whether the
/// input arrives at once or in small pieces, and no payload passes the limit.
pub fn frames_any_chunking(data: &[u8]) {
    let whole = decode_frames(data, data.len().max(1));
    let pieces = decode_frames(data, 7);
    assert_eq!(whole, pieces, "chunking changed the outcome");
    for payload in &whole.0 {
        assert!(payload.len() <= FUZZ_LIMITS.max_payload_size);
        // and every payload goes back out as a frame Python can read
        let frame = crate::frame::encode(payload, true).expect("payload encodes");
        let mut decoder = Decoder::new(FUZZ_LIMITS);
        decoder.feed(&frame);
        assert_eq!(
            decoder.next_frame().expect("own frame decodes").as_ref(),
            Some(payload)
        );
    }
}

type Outcome = (Vec<Vec<u8>>, Option<FrameError>);

fn decode_frames(data: &[u8], chunk: usize) -> Outcome {
    let mut decoder = Decoder::new(FUZZ_LIMITS);
    let mut payloads = Vec::new();
    for piece in data.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(payload)) => payloads.push(payload),
                Ok(None) => break,
                Err(error) => return (payloads, Some(error)),
            }
        }
    }
    (payloads, None)
}

/// What a decode may allocate, in the fuzz run: a tight budget (a few
/// times the input) so that inputs reach it, not only the default.
fn tight_limits(len: usize) -> brine::DecodeLimits {
    brine::DecodeLimits {
        max_depth: brine::DEFAULT_MAX_DEPTH,
        max_memory: len.saturating_mul(4).saturating_add(4096),
    }
}

/// Room the decoder's own bookkeeping may take beside the value: its
/// stack of open containers at the default depth.
const DECODER_OVERHEAD: usize = 64 * 1024;

/// The decoder never allocates past its memory budget, whatever counts
/// the input claims. `peak_during` runs its argument and returns the most
/// bytes that were allocated at once while it ran, beyond what was
/// allocated before (the caller's allocator counts them).
pub fn decoding_stays_in_budget(data: &[u8], peak_during: impl FnOnce(&mut dyn FnMut()) -> usize) {
    let limits = tight_limits(data.len());
    let mut outcome = None;
    let peak = peak_during(&mut || outcome = Some(brine::decode_with_bulk(data, limits, None)));
    // a tuple's room grows by doubling: while it moves, old and new room
    // are both held, so the peak is up to 1.5 times what was charged
    let bound = limits.max_memory + limits.max_memory / 2 + DECODER_OVERHEAD;
    assert!(
        peak <= bound,
        "decoding {} bytes allocated {peak} at once; the budget is {} ({outcome:?})",
        data.len(),
        limits.max_memory
    );
}

/// Limits small enough for the fuzzer to reach, large enough for a bulk
/// string (here: 16 bytes or more) to be found and read apart.
const BULK_FUZZ_MIN: usize = 16;

/// Frames read with the bulk locator (a byte string of [`BULK_FUZZ_MIN`]
/// bytes or more read into memory of its own, as the daemon does with
/// 1 MiB ones) decode to the same messages, or fail alike, as frames read
/// whole, in any chunking.
pub fn bulk_frames_agree(data: &[u8]) {
    let whole = messages_of(data, data.len().max(1), false);
    for chunk in [data.len().max(1), 7, 1] {
        let apart = messages_of(data, chunk, true);
        assert_eq!(
            whole, apart,
            "reading bulk strings apart changed the outcome"
        );
    }
}

/// Each payload's message (`None` where it does not decode; where in the
/// payload it failed may differ, as a string read apart is not in it), and
/// whether the stream ended in a framing error.
type MessagesOutcome = (Vec<Option<Message>>, bool);

/// The messages in `data` read `chunk` bytes at a time.
fn messages_of(data: &[u8], chunk: usize, locating: bool) -> MessagesOutcome {
    let mut decoder = Decoder::new(FUZZ_LIMITS);
    if locating {
        decoder = decoder.locating_bulk(crate::message::locate_bulk, BULK_FUZZ_MIN);
    }
    let mut messages = Vec::new();
    for piece in data.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            if let Some(len) = decoder.bulk_wanted() {
                decoder.give_bulk_memory(Box::new(vec![0xa5_u8; len]));
            }
            let taken = decoder
                .feed_with(rest.len(), |room| {
                    let n = room.len().min(rest.len());
                    room[..n].copy_from_slice(&rest[..n]);
                    Ok::<usize, std::convert::Infallible>(n)
                })
                .unwrap_or_else(|never| match never {});
            rest = &rest[taken..];
            loop {
                match decoder.next_payload() {
                    Ok(Some(payload)) => {
                        let full = payload.bytes.len()
                            + payload.bulk.as_ref().map_or(0, |bulk| bulk.bytes.len());
                        let limits = brine::DecodeLimits::for_input(full);
                        let dialect = crate::message::Dialect::detect(&payload.bytes)
                            .unwrap_or(crate::message::Dialect::V6);
                        let message = Message::decode_with_bulk(
                            &payload.bytes,
                            payload.bulk,
                            dialect,
                            limits,
                        );
                        messages.push(message.ok());
                    }
                    Ok(None) => break,
                    Err(_) => return (messages, true),
                }
            }
        }
    }
    (messages, false)
}

// The registry's request decoder (the `registry_request` target).

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

/// What a server makes of a connection's first bytes under the PROXY
/// protocol is decided by the header alone: a header's length is within
/// the input and the bound, the header by itself reads the same, every
/// strict start of it is "incomplete" (the server reads on exactly while
/// the parser says so), and an input that is not a header stays not one
/// whatever follows. An undecided input is shorter than the bound.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy::{parse, Parsed, MAX_HEADER};
    let parsed = parse(data);
    match &parsed {
        Parsed::Incomplete => assert!(data.len() < MAX_HEADER, "undecided at {}", data.len()),
        Parsed::NotProxy => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"PROXY \r\n");
            assert_eq!(
                parse(&more),
                Parsed::NotProxy,
                "more bytes changed the decision"
            );
        }
        Parsed::Invalid(_) => {}
        Parsed::Proxied { length, .. } | Parsed::Local { length } => {
            assert!(
                *length <= data.len() && *length <= MAX_HEADER,
                "length {length}"
            );
            assert_eq!(
                parse(&data[..*length]),
                parsed,
                "the header alone reads otherwise"
            );
            for n in prefix_lengths(*length) {
                assert_eq!(
                    parse(&data[..n]),
                    Parsed::Incomplete,
                    "{n} of {length} bytes"
                );
            }
        }
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
