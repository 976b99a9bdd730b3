//! Framing's unit tests (a sibling file, so that encode and decode stay
//! readable); `noise` is shared with the message tests.

use super::*;

fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut decoder = Decoder::new(limits);
    decoder.feed(bytes);
    let mut out = Vec::new();
    while let Some(payload) = decoder.next_frame()? {
        out.push(payload);
    }
    Ok(out)
}

#[test]
fn small_payloads_travel_plain() {
    assert_eq!(encode(b"abc", true).unwrap(), b"\0\0\0\x03\0abc\n");
    let exactly = vec![b'x'; COMPRESSION_THRESHOLD];
    assert_eq!(encode(&exactly, true).unwrap()[4], 0);
    let over = vec![b'x'; COMPRESSION_THRESHOLD + 1];
    assert_eq!(encode(&over, true).unwrap()[4], 1);
    assert_eq!(encode(&over, false).unwrap()[4], 0);
}

/// Bytes that deflate cannot shrink (xorshift noise).
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn incompressible_payloads_travel_plain() {
    // small enough to be deflated whole, and sent plain when that did
    // not shrink it; large enough to be judged by a sample
    for len in [COMPRESSION_THRESHOLD + 1, 100_000, 1 << 20] {
        let payload = noise(len);
        let wire = encode(&payload, true).unwrap();
        assert_eq!(wire[4], 0, "{len} bytes of noise");
        assert_eq!(wire.len(), HEADER_LEN + len + 1);
        assert_eq!(decode_all(&wire, Limits::default()).unwrap(), vec![payload]);
    }
    // text still shrinks, sampled or not
    for len in [10_000, 1 << 20] {
        let text: Vec<u8> = (0..len).map(|i| b"0123456789,abc\n"[i % 15]).collect();
        let wire = encode(&text, true).unwrap();
        assert_eq!(wire[4], 1);
        assert!(wire.len() < len / 4);
        assert_eq!(decode_all(&wire, Limits::default()).unwrap(), vec![text]);
    }
}

#[test]
fn seal_frames_in_place_as_encode_does() {
    let text: Vec<u8> = (0..50_000).map(|i| (i % 7) as u8).collect();
    for payload in [Vec::new(), b"short".to_vec(), noise(200_000), text] {
        for compress in [false, true] {
            let mut buffer = begin(payload.len());
            buffer.extend_from_slice(&payload);
            assert_eq!(
                seal(buffer, compress).unwrap(),
                encode(&payload, compress).unwrap()
            );
        }
    }
}

#[test]
fn plain_payloads_are_borrowed_from_the_buffer() {
    let mut wire = encode(b"plain", true).unwrap();
    encode_into(&[b'z'; 5000], true, &mut wire).unwrap();
    let mut decoder = Decoder::default();
    decoder.feed(&wire);
    assert!(matches!(
        decoder.next_payload().unwrap().map(|p| p.bytes),
        Some(Cow::Borrowed(b"plain"))
    ));
    assert!(matches!(
        decoder.next_payload().unwrap().map(|p| p.bytes),
        Some(Cow::Owned(inflated)) if inflated == [b'z'; 5000]
    ));
    assert!(decoder.next_payload().unwrap().is_none());
}

#[test]
fn frames_survive_byte_by_byte_delivery() {
    let payloads: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        vec![b'z'; 100_000],
        (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ];
    let mut wire = Vec::new();
    for payload in &payloads {
        encode_into(payload, true, &mut wire).unwrap();
    }
    let mut decoder = Decoder::default();
    let mut got = Vec::new();
    for byte in &wire {
        assert!(decoder.wanted() >= 1);
        decoder.feed(std::slice::from_ref(byte));
        while let Some(payload) = decoder.next_frame().unwrap() {
            got.push(payload);
        }
    }
    assert_eq!(got, payloads);
    assert_eq!(decoder.buffered(), 0);
}

/// As the connection reads: small reads until the header is in, then
/// pieces of at most 1 MiB, and at least 1 KiB even at the frame's end.
/// The header's length is a claim: room is reserved as bytes arrive,
/// by doublings, so the buffer moves a few times, never per read.
#[test]
fn a_bulk_frame_is_read_into_room_that_grows_with_what_came() {
    // the last read asks for 1 KiB when 500 bytes are left
    let len = crate::host::LARGE + 1518;
    let mut wire = header(len, false).unwrap().to_vec();
    wire.extend((0..len).map(|i| (i % 251) as u8));
    wire.push(FLUSHER);
    let mut decoder = Decoder::new(Limits::default());
    let mut fed = 0;
    let mut bases = std::collections::BTreeSet::new();
    while fed < wire.len() {
        let room = decoder.wanted().clamp(1024, 1 << 20);
        let got = decoder
            .feed_with(room, |buf: &mut [u8]| {
                let take = buf.len().min(wire.len() - fed);
                buf[..take].copy_from_slice(&wire[fed..fed + take]);
                Ok::<usize, ()>(take)
            })
            .unwrap();
        fed += got;
        let reserved = decoder.buffer.capacity();
        assert!(
            reserved <= 2 * (fed + room) + KEEP_BUFFER,
            "{reserved} bytes reserved when {fed} came"
        );
        bases.insert(decoder.buffer.as_ptr() as usize);
    }
    assert!(bases.len() <= 24, "the buffer moved {} times", bases.len());
    let payload = decoder.next_payload().unwrap().expect("the frame");
    assert!(payload.bulk.is_none());
    assert_eq!(payload.bytes.len(), len);
    assert!(matches!(payload.bytes, Cow::Borrowed(_)));
    assert!(payload
        .bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
}

/// As the connection reads, with a bulk string located: its bytes go
/// straight into the memory given for it, and the frame buffer stays
/// small whatever the string's size.
#[test]
fn a_located_bulk_string_bypasses_the_frame_buffer() {
    let len = crate::host::LARGE + 3;
    let mut payload = Vec::new();
    crate::brine::encode_tuple_header(3, &mut payload).unwrap();
    crate::brine::encode_int(9, &mut payload);
    let bulk: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    crate::brine::encode_bytes(&bulk, &mut payload).unwrap();
    crate::brine::encode_int(10, &mut payload);
    let mut wire = encode(&payload, false).unwrap();
    encode_into(b"next", false, &mut wire).unwrap();
    let mut decoder =
        Decoder::new(Limits::default()).locating_bulk(crate::brine::find_bulk, 1 << 20);
    let mut fed = 0;
    let mut given = None;
    let mut payloads = Vec::new();
    while fed < wire.len() {
        if let Some(wanted) = decoder.bulk_wanted() {
            assert_eq!(wanted, len);
            let memory = vec![0; wanted];
            given = Some(memory.as_ptr());
            decoder.give_bulk_memory(Box::new(memory));
        }
        let room = decoder.wanted().clamp(1024, 1 << 20);
        fed += decoder
            .feed_with(room, |buf: &mut [u8]| {
                let take = buf.len().min(wire.len() - fed);
                buf[..take].copy_from_slice(&wire[fed..fed + take]);
                Ok::<usize, ()>(take)
            })
            .unwrap();
        assert!(decoder.buffer.len() <= 2 << 20, "{}", decoder.buffer.len());
        while let Some(payload) = decoder.next_payload().unwrap() {
            payloads.push((payload.bytes.into_owned(), payload.bulk));
        }
    }
    let [(first, Some(first_bulk)), (second, None)] = &payloads[..] else {
        panic!(
            "not a bulk frame and a small one: {} payloads",
            payloads.len()
        );
    };
    // (tuple header, 9, then the string's tag and length
    assert_eq!(first_bulk.at, 1 + 1 + 5);
    assert_eq!(Some(first_bulk.bytes.as_ptr()), given);
    assert!(first_bulk.bytes.as_slice() == bulk.as_slice());
    assert_eq!(first.len(), payload.len() - len);
    assert_eq!(first[..first_bulk.at], payload[..first_bulk.at]);
    assert_eq!(first[first_bulk.at..], payload[first_bulk.at + len..]);
    assert_eq!(second, b"next");
}

#[test]
fn feed_with_reads_in_place() {
    let wire = encode(b"in place", true).unwrap();
    let mut decoder = Decoder::default();
    let got: Result<usize, ()> = decoder.feed_with(4096, |room| {
        room[..wire.len()].copy_from_slice(&wire);
        Ok(wire.len())
    });
    assert_eq!(got, Ok(wire.len()));
    assert_eq!(decoder.next_frame().unwrap(), Some(b"in place".to_vec()));
}

#[test]
fn oversize_length_is_refused_from_the_header_alone() {
    let limits = Limits {
        max_frame_size: 1024,
        max_payload_size: 1024,
    };
    let err = decode_all(&[0, 0, 4, 1, 0], limits).unwrap_err();
    assert_eq!(
        err,
        FrameError::FrameTooLarge {
            len: 1025,
            limit: 1024
        }
    );
}

#[test]
fn zlib_bomb_is_cut_at_the_limit() {
    let bomb = encode(&vec![0u8; 10 << 20], true).unwrap();
    assert!(bomb.len() < 64 * 1024);
    let limits = Limits {
        max_frame_size: 1 << 20,
        max_payload_size: 1 << 20,
    };
    assert_eq!(
        decode_all(&bomb, limits).unwrap_err(),
        FrameError::PayloadTooLarge { limit: 1 << 20 }
    );
    let exact = encode(&vec![0u8; 1 << 20], true).unwrap();
    assert_eq!(decode_all(&exact, limits).unwrap()[0].len(), 1 << 20);
}

#[test]
fn plain_payload_over_the_payload_limit_is_refused() {
    let limits = Limits {
        max_frame_size: 100,
        max_payload_size: 10,
    };
    let wire = encode(&[1; 11], false).unwrap();
    assert_eq!(
        decode_all(&wire, limits).unwrap_err(),
        FrameError::PayloadTooLarge { limit: 10 }
    );
}

#[test]
fn wrong_trailer_and_flag_are_refused() {
    assert_eq!(
        decode_all(b"\0\0\0\x01\0xX", Limits::default()).unwrap_err(),
        FrameError::BadTrailer { byte: b'X' }
    );
    assert_eq!(
        decode_all(b"\0\0\0\x01\x02x\n", Limits::default()).unwrap_err(),
        FrameError::BadFlag { flag: 2 }
    );
}

#[test]
fn truncated_frames_wait_for_more() {
    let wire = encode(b"complete me", true).unwrap();
    for cut in 0..wire.len() {
        assert_eq!(decode_all(&wire[..cut], Limits::default()), Ok(vec![]));
    }
}

#[test]
fn broken_zlib_is_refused() {
    let wire = encode(&[7u8; 5000], true).unwrap();
    let body = &wire[HEADER_LEN..wire.len() - 1];
    for cut in [0, 1, 2, body.len() / 2, body.len() - 1] {
        assert!(matches!(
            inflate(&body[..cut], 1 << 20),
            Err(FrameError::BadCompression { .. })
        ));
    }
    let mut trailing = body.to_vec();
    trailing.push(0);
    assert!(matches!(
        inflate(&trailing, 1 << 20),
        Err(FrameError::BadCompression { .. })
    ));
    assert!(matches!(
        inflate(b"not zlib at all", 1 << 20),
        Err(FrameError::BadCompression { .. })
    ));
}
