//! Properties that must hold for any input whatsoever. The cargo-fuzz
//! targets and the corpus test both call these, so a property is written
//! once; a violated property panics, which is how a fuzzer notices.

use super::brine;
use super::frame::{Decoder, FrameError, Limits};
use super::message::Message;

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
        let decoded = brine::decode_with_bulk(&without, brine::DEFAULT_MAX_DEPTH, Some(bulk))
            .expect("decodes with its bulk string apart");
        assert_eq!(&decoded, value, "the bulk string went elsewhere");
    }
}

/// Same for whole messages.
pub fn message_round_trip(data: &[u8]) {
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode().expect("a decoded message re-encodes");
        let decoded = Message::decode(&encoded).expect("our own encoding decodes");
        assert_eq!(decoded, message, "re-decoded message differs");
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
        let frame = super::frame::encode(payload, true).expect("payload encodes");
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
