//! The protocol core against bytes captured from Python rpyc 6.0.2 by
//! `tests/data/gen_vectors.py`: every vector decodes to the value the
//! generator recorded, and re-encodes to the very same bytes.

mod support;

use std::io::Write;

use rpycd_proto::frame::{self, Decoder};
use rpycd_proto::{brine, Message};
use support::{field, hex, text};

#[test]
fn brine_vectors_decode_and_reencode_byte_for_byte() {
    let vectors = support::vectors("brine.json");
    assert!(vectors.len() >= 100, "only {} brine vectors", vectors.len());
    for entry in &vectors {
        let name = text(field(entry, "name"));
        let bytes = hex(field(entry, "hex"));
        let expected = support::value(field(entry, "value"));
        let decoded = brine::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}: decoded value");
        let encoded = expected
            .to_bytes()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(encoded == bytes, "{name}: our encoding differs from rpyc's");
    }
}

#[test]
fn brine_vectors_cover_every_tag() {
    let mut seen = [false; 256];
    for entry in support::vectors("brine.json") {
        mark_tags(&hex(field(&entry, "hex")), &mut seen);
    }
    let expected_tags = (0x00u8..=0x1b).filter(|tag| ![0x07, 0x09].contains(tag));
    for tag in expected_tags.chain([0x20, 0x50, 0xef]) {
        assert!(seen[usize::from(tag)], "no vector has tag {tag:#04x}");
    }
}

/// Marks the tag of every value inside `bytes` by walking it as brine does.
fn mark_tags(bytes: &[u8], seen: &mut [bool; 256]) {
    fn walk(bytes: &[u8], pos: &mut usize, seen: &mut [bool; 256]) {
        let tag = bytes[*pos];
        seen[usize::from(tag)] = true;
        *pos += 1;
        let len_u32 = |pos: &mut usize| {
            let n = u32::from_be_bytes(bytes[*pos..*pos + 4].try_into().unwrap()) as usize;
            *pos += 4;
            n
        };
        match tag {
            0x01..=0x06 | 0x00 | 0x20..=0xef => {}
            0x08 | 0x19 | 0x1a => walk(bytes, pos, seen),
            0x0a..=0x0d => *pos += usize::from(tag - 0x09),
            0x0e | 0x16 => *pos += 1 + usize::from(bytes[*pos]),
            0x0f | 0x17 => {
                let n = len_u32(pos);
                *pos += n;
            }
            0x10..=0x15 => {
                let n = match tag {
                    0x14 => {
                        *pos += 1;
                        usize::from(bytes[*pos - 1])
                    }
                    0x15 => len_u32(pos),
                    _ => usize::from(tag - 0x0f),
                };
                for _ in 0..n {
                    walk(bytes, pos, seen);
                }
            }
            0x18 => *pos += 8,
            0x1b => *pos += 16,
            other => panic!("unexpected tag {other:#04x} in a vector"),
        }
    }
    walk(bytes, &mut 0, seen);
}

#[test]
fn frame_vectors_decode_and_plain_frames_reencode_byte_for_byte() {
    let vectors = support::vectors("frames.json");
    assert!(vectors.len() >= 10, "only {} frame vectors", vectors.len());
    let mut stream = Vec::new();
    let mut payloads = Vec::new();
    for entry in &vectors {
        let name = text(field(entry, "name"));
        let wire = hex(field(entry, "frame_hex"));
        let payload = hex(field(entry, "payload_hex"));
        let compressed = field(entry, "compressed").as_bool().expect("bool");
        assert_eq!(wire[4] == 1, compressed, "{name}: flag");
        let mut decoder = Decoder::default();
        decoder.feed(&wire);
        let got = decoder
            .next_frame()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.as_ref() == Some(&payload), "{name}: payload differs");
        assert_eq!(decoder.buffered(), 0, "{name}: bytes left over");
        // a channel made with compress=False sends big payloads plain too
        let compressing_channel = compressed || payload.len() <= frame::COMPRESSION_THRESHOLD;
        let ours = frame::encode(&payload, compressing_channel).expect("encodes");
        if compressed && ours[4] == 0 {
            // rpyc deflates every payload over the threshold; we send one
            // that deflate cannot shrink plain (the flag is per frame, and
            // rpyc's reader inflates only flagged frames)
            assert!(
                name.contains("incompressible"),
                "{name}: we sent a compressible payload plain"
            );
        } else {
            assert_eq!(ours[4] == 1, compressed, "{name}: we compress differently");
        }
        if ours[4] == 0 {
            let plain = frame::encode(&payload, false).expect("encodes plain");
            assert!(ours == plain, "{name}: our plain frame differs from rpyc's");
        }
        if !compressed {
            assert!(ours == wire, "{name}: our frame differs from rpyc's");
        }
        let mut ours_back = Decoder::default();
        ours_back.feed(&ours);
        assert!(
            ours_back.next_frame().expect("ours decodes").as_ref() == Some(&payload),
            "{name}: our frame does not carry the payload"
        );
        stream.extend_from_slice(&wire);
        payloads.push(payload);
    }
    // all of them back to back, as they would arrive on a socket
    let mut decoder = Decoder::default();
    let mut got = Vec::new();
    for piece in stream.chunks(1000) {
        decoder.feed(piece);
        while let Some(payload) = decoder.next_frame().expect("stream decodes") {
            got.push(payload);
        }
    }
    assert!(got == payloads, "stream of all frames decodes differently");
}

#[test]
fn message_vectors_decode_and_reencode_byte_for_byte() {
    let vectors = support::vectors("messages.json");
    assert!(
        vectors.len() >= 40,
        "only {} message vectors",
        vectors.len()
    );
    let mut types = [false; 4];
    let mut handlers = [false; 21];
    for entry in &vectors {
        let name = text(field(entry, "name"));
        let bytes = hex(field(entry, "hex"));
        let expected = support::message(field(entry, "message"));
        let decoded = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}: decoded message");
        let encoded = expected.encode().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(encoded == bytes, "{name}: our encoding differs from rpyc's");
        types[usize::from(bytes[0])] = true;
        if let Message::Request { handler, .. } = decoded {
            handlers[usize::from(handler.code())] = true;
        }
    }
    assert_eq!(types[1..], [true; 3], "every message type has a vector");
    assert_eq!(
        handlers[1..],
        [true; 20],
        "every handler has a request vector"
    );
}

/// What we compress must be what Python's channel can read: the frames go
/// through rpyc 6.0.2's own `Channel.recv`.
#[test]
fn python_rpyc_reads_frames_we_encode() {
    let mut payloads: Vec<Vec<u8>> = support::vectors("frames.json")
        .iter()
        .map(|entry| hex(field(entry, "payload_hex")))
        .collect();
    payloads.push(vec![0; 5 << 20]);
    payloads.push(
        (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    );
    let mut wire = Vec::new();
    for payload in &payloads {
        frame::encode_into(payload, true, &mut wire).expect("encodes");
    }
    let dir = std::env::temp_dir().join(format!("rpycd-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let frames_path = dir.join("frames.bin");
    std::fs::File::create(&frames_path)
        .and_then(|mut file| file.write_all(&wire))
        .expect("writes frames");
    let payloads_path = dir.join("payloads.bin");
    let output = support::python()
        .arg(support::data_path("read_frames.py"))
        .arg(&frames_path)
        .arg(&payloads_path)
        .output()
        .expect("runs python");
    let returned = std::fs::read(&payloads_path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let returned = returned.expect("python wrote payloads");
    let mut rest = &returned[..];
    let mut got = Vec::new();
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*head) as usize;
        got.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    assert_eq!(
        got.len(),
        payloads.len(),
        "python read a different frame count"
    );
    for (index, (ours, theirs)) in payloads.iter().zip(&got).enumerate() {
        assert!(
            ours == theirs,
            "frame {index}: python read a different payload"
        );
    }
}
