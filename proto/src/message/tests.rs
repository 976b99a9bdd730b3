//! Messages' unit tests: both dialects, round trips, bulk strings.

use super::*;
use crate::frame;
use crate::frame::tests::noise;

fn round_trip(message: Message) -> Vec<u8> {
    let bytes = message.encode().expect("encodes");
    assert_eq!(Message::decode(&bytes).expect("decodes"), message);
    bytes
}

fn bulk_reply(first: Vec<u8>, second: Vec<u8>) -> Message {
    Message::Reply {
        seq: 7,
        value: Boxed::Tuple(vec![
            Boxed::Value(Value::Bytes(first.into())),
            Boxed::Value(Value::Int(5)),
            Boxed::Value(Value::Bytes(second.into())),
        ]),
    }
}

/// The frame as the connection writes it: bulk strings left where they
/// are, then written in between the encoded rest.
fn detached_wire(message: &Message, compress: bool) -> Vec<u8> {
    let mut buffer = frame::begin(message.size_hint());
    let detached = message
        .encode_detached(Dialect::V6, Route::default(), &mut buffer)
        .expect("encodes");
    assert_eq!(detached.len(), 2, "both bulk strings stay where they are");
    assert!(buffer.len() < 64, "{} bytes encoded", buffer.len());
    let frame = frame::seal_detached(buffer, detached, compress).expect("frames");
    let mut wire = Vec::new();
    frame.write_to(&mut wire).expect("writes");
    wire
}

#[test]
fn bulk_strings_written_from_their_values_make_the_same_frame() {
    let message = bulk_reply(noise(3 << 20), noise(brine::BULK_MIN));
    let whole = message.encode().expect("encodes");
    for compress in [false, true] {
        assert_eq!(
            detached_wire(&message, compress),
            frame::encode(&whole, compress).expect("frames"),
            "compress {compress}"
        );
    }
    // a payload worth deflating is deflated whole, as before
    let text = b"1,1,rpyc benchmark row 1f0f\n".repeat(80_000);
    let message = bulk_reply(text.clone(), text);
    let wire = detached_wire(&message, true);
    assert_eq!(wire[4], 1, "compressed flag");
    assert_eq!(
        wire,
        frame::encode(&message.encode().expect("encodes"), true).expect("frames")
    );
}

/// Decodes the stream `wire` fed in `piece`-byte reads, with the first
/// bulk string read into memory given for it: the messages, and
/// whether that string is in the memory given.
fn decode_stream(wire: &[u8], piece: usize, dialect: Dialect) -> Vec<(Message, bool)> {
    let mut decoder =
        frame::Decoder::new(frame::Limits::default()).locating_bulk(locate_bulk, brine::BULK_MIN);
    let mut given = None;
    let mut messages = Vec::new();
    for chunk in wire.chunks(piece) {
        decoder.feed(chunk);
        if let Some(len) = decoder.bulk_wanted() {
            let memory = vec![0; len];
            given = Some(memory.as_ptr());
            decoder.give_bulk_memory(Box::new(memory));
        }
        while let Some(payload) = decoder.next_payload().expect("frames are valid") {
            let message = Message::decode_with_bulk(
                &payload.bytes,
                payload.bulk,
                dialect,
                DecodeLimits::for_messages(frame::DEFAULT_MAX_SIZE, brine::DEFAULT_MAX_DEPTH),
            )
            .expect("decodes");
            let first_bulk = match &message {
                Message::Reply {
                    value: Boxed::Tuple(items),
                    ..
                } => match items.first() {
                    Some(Boxed::Value(Value::Bytes(first))) => Some(first.as_ptr()),
                    _ => None,
                },
                _ => None,
            };
            let in_given = first_bulk.is_some() && first_bulk == given.take();
            messages.push((message, in_given));
        }
    }
    assert_eq!(decoder.buffered(), 0);
    messages
}

#[test]
fn a_bulk_string_is_read_into_the_memory_given_for_it() {
    let first = noise(3 << 20);
    let message = bulk_reply(first.clone(), noise(2 << 20));
    let next = Message::Reply {
        seq: 8,
        value: Boxed::Value(Value::None),
    };
    let mut wire = detached_wire(&message, true);
    wire.extend(frame::encode(&next.encode().expect("encodes"), false).expect("frames"));
    // one read, reads cutting the length header, the string and the
    // frames' boundary anywhere, large reads
    for piece in [wire.len(), 1, 7, 4093, 1 << 20] {
        if piece == 1 {
            // a byte at a time through the envelope only: it is slow
            let mut decoder = frame::Decoder::new(frame::Limits::default())
                .locating_bulk(locate_bulk, brine::BULK_MIN);
            let found = wire.iter().take(40).position(|byte| {
                decoder.feed(std::slice::from_ref(byte));
                decoder.bulk_wanted().is_some()
            });
            // as soon as the string's length is in
            let data_at = wire
                .windows(16)
                .position(|window| window == &first[..16])
                .expect("the string is on the wire");
            assert_eq!(found, Some(data_at - 1));
            assert_eq!(decoder.bulk_wanted(), Some(3 << 20));
            continue;
        }
        let decoded = decode_stream(&wire, piece, Dialect::V6);
        assert_eq!(
            decoded,
            vec![(message.clone(), true), (next.clone(), false)],
            "read in pieces of {piece}"
        );
    }
}

#[test]
fn a_bulk_string_is_found_in_an_rpyc5_envelope_too() {
    let message = bulk_reply(noise(1 << 20), b"small".to_vec());
    let payload = message.encode_for(Dialect::V5).expect("encodes");
    let wire = frame::encode(&payload, false).expect("frames");
    assert_eq!(
        decode_stream(&wire, 65536, Dialect::V5),
        vec![(message, true)]
    );
}

#[test]
fn bulk_strings_are_not_looked_for_in_text_or_small_frames() {
    let text = String::from_utf8(vec![b'x'; 2 << 20]).expect("ascii");
    let mut prefix = vec![2];
    brine::encode_tuple_header(2, &mut prefix).expect("encodes");
    brine::encode_int(1, &mut prefix);
    brine::encode_str(&text, &mut prefix).expect("encodes");
    assert_eq!(
        locate_bulk(&prefix[..64], brine::BULK_MIN),
        brine::Located::NeedMore
    );
    let message = Message::Reply {
        seq: 1,
        value: Boxed::Value(Value::Str(text)),
    };
    let wire = frame::encode(&message.encode().expect("encodes"), false).expect("frames");
    assert_eq!(
        decode_stream(&wire, 1 << 16, Dialect::V6),
        vec![(message, false)]
    );
    let small = bulk_reply(vec![1; 100], vec![2; 100]);
    let wire = frame::encode(&small.encode().expect("encodes"), false).expect("frames");
    assert_eq!(decode_stream(&wire, 3, Dialect::V6), vec![(small, false)]);
    // what starts no message of any dialect (past where a route would end)
    assert_eq!(
        locate_bulk(&[0x99; 20], brine::BULK_MIN),
        brine::Located::Nowhere
    );
}

#[test]
fn handler_codes_match_consts_py() {
    for (index, handler) in Handler::ALL.iter().enumerate() {
        assert_eq!(usize::from(handler.code()), index + 1);
        assert_eq!(Handler::from_code(index as i64 + 1), Some(*handler));
    }
    assert_eq!(Handler::from_code(0), None);
    assert_eq!(Handler::from_code(21), None);
    assert_eq!(Handler::from_code(-1), None);
}

#[test]
fn ping_request_matches_rpyc_bytes() {
    // bytes([1]) + brine.dump((0, (1, (1, ("ab",)))))
    let bytes = round_trip(Message::Request {
        seq: 0,
        handler: Handler::Ping,
        args: Boxed::Value(Value::Tuple(vec![Value::str("ab")])),
    });
    assert_eq!(bytes, b"\x01\x11\x50\x11\x51\x11\x51\x10\x08\x0bab");
}

#[test]
fn boxed_encoding_equals_value_encoding() {
    let boxed = Boxed::Tuple(vec![
        Boxed::Value(Value::Int(5)),
        Boxed::RemoteRef(IdPack {
            name: "builtins.list".into(),
            type_id: 94_000_000_000_000,
            obj_id: u64::MAX,
        }),
        Boxed::LocalRef(IdPack {
            name: "sys".into(),
            type_id: 1,
            obj_id: 2,
        }),
    ]);
    let mut direct = Vec::new();
    boxed.encode(&mut direct).unwrap();
    assert_eq!(direct, boxed.to_value().to_bytes().unwrap());
    assert_eq!(Boxed::from_value(boxed.to_value()), Ok(boxed));
}

#[test]
fn exceptions_round_trip() {
    round_trip(Message::Exception {
        seq: 7,
        exception: RemoteException::StopIteration,
    });
    round_trip(Message::Exception {
        seq: 8,
        exception: RemoteException::Raised(ExceptionInfo {
            module: "builtins".into(),
            name: "KeyError".into(),
            args: vec![Value::str("k")],
            attrs: vec![("_remote_version".into(), Value::str("6.0.2"))],
            traceback: "Traceback ...".into(),
        }),
    });
}

#[test]
fn rpyc5_envelope_round_trips_and_is_detected() {
    let message = Message::Request {
        seq: 3,
        handler: Handler::GetRoot,
        args: Boxed::Value(Value::Tuple(vec![])),
    };
    // rpyc 5.3.1: brine.dump((1, 3, (3, (1, ()))))
    let v5 = message.encode_for(Dialect::V5).unwrap();
    assert_eq!(v5, b"\x12\x51\x53\x11\x53\x11\x51\x02");
    assert_eq!(Dialect::detect(&v5), Some(Dialect::V5));
    assert_eq!(
        Message::decode_for(&v5, Dialect::V5, DecodeLimits::for_input(v5.len())),
        Ok(message.clone())
    );
    let v6 = message.encode().unwrap();
    assert_eq!(Dialect::detect(&v6), Some(Dialect::V6));
    assert_eq!(Dialect::detect(b"\x50"), None);
    assert_eq!(Dialect::detect(b""), None);
}

#[test]
fn bound_threads_envelope_round_trips_and_is_detected() {
    let message = Message::Request {
        seq: 3,
        handler: Handler::GetRoot,
        args: Boxed::Value(Value::Tuple(vec![])),
    };
    // rpyc 6.0.2 with bind_threads, Connection._send from a thread whose
    // id (threading.get_ident()) is 0x7f0012345678, to no thread yet:
    // brine.I8I8.pack(tid, 0) + brine.I1.pack(1) + brine.dump((3, (3, (1, ()))))
    let wire = b"\x00\x00\x7f\x00\x12\x34\x56\x78\x00\x00\x00\x00\x00\x00\x00\x00\x01\x11\x53\x11\x53\x11\x51\x02";
    let route = Route {
        from: 0x7f00_1234_5678,
        to: 0,
    };
    assert_eq!(
        message.encode_routed(Dialect::V6Threads, route).unwrap(),
        wire
    );
    assert_eq!(Dialect::detect(wire), Some(Dialect::V6Threads));
    assert_eq!(Route::of(wire), Some(route));
    assert_eq!(
        Message::decode_for(
            wire,
            Dialect::V6Threads,
            DecodeLimits::for_input(wire.len())
        ),
        Ok(message.clone())
    );
    // a later message is for a thread of ours, and is detected all the same
    let reply = Message::Reply {
        seq: 3,
        value: Boxed::Value(Value::Int(7)),
    };
    let back = Route {
        from: 9,
        to: 0x7f00_1234_5678,
    };
    let payload = reply.encode_routed(Dialect::V6Threads, back).unwrap();
    assert_eq!(Dialect::detect(&payload), Some(Dialect::V6Threads));
    assert_eq!(Route::of(&payload), Some(back));
    // the other dialects carry no route
    assert_eq!(message.encode_routed(Dialect::V6, route), message.encode());
    // too short to say
    assert_eq!(Dialect::detect(&wire[..17]), None);
    assert_eq!(Route::of(&wire[..15]), None);
}

#[test]
fn a_bulk_string_is_located_past_the_route() {
    let data = vec![7u8; 2 << 20];
    let message = Message::Reply {
        seq: 1,
        value: Boxed::Value(Value::Bytes(data.clone().into())),
    };
    let route = Route { from: 5, to: 6 };
    let payload = message.encode_routed(Dialect::V6Threads, route).unwrap();
    let plain = message.encode().unwrap();
    let (
        brine::Located::At { data: at, len },
        brine::Located::At {
            data: at6,
            len: len6,
        },
    ) = (
        locate_bulk(&payload[..64], brine::BULK_MIN),
        locate_bulk(&plain[..64], brine::BULK_MIN),
    )
    else {
        panic!("not located");
    };
    assert_eq!((at, len), (at6 + Route::LEN, len6));
    assert_eq!(&payload[at..at + len], &data[..]);
    // a route alone is not enough to say
    assert_eq!(
        locate_bulk(&payload[..10], brine::BULK_MIN),
        brine::Located::NeedMore
    );
}

#[test]
fn unknown_handler_keeps_the_seq_for_an_answer() {
    let bytes = b"\x01\x11\x59\x11\x16\x0299\x11\x51\x02";
    assert_eq!(
        Message::decode(bytes),
        Err(MessageError::BadRequest {
            seq: 9,
            reason: BadRequest::UnknownHandler(99)
        })
    );
}

#[test]
fn malformed_envelopes_are_refused() {
    assert_eq!(Message::decode(b""), Err(MessageError::Empty));
    assert_eq!(
        Message::decode(b"\x12\x11\x50\x50"),
        Err(MessageError::UnknownType(0x12))
    );
    assert_eq!(
        Message::decode(b"\x02\x10\x50"),
        Err(MessageError::NotSeqArgs)
    );
    assert!(matches!(
        Message::decode(b"\x02\x11\x50\x11\x59\x50"),
        Err(MessageError::BadResponse { kind: "reply", .. })
    ));
    assert!(matches!(
        Message::decode(b"\x03\x11\x50\x52"),
        Err(MessageError::BadResponse {
            kind: "exception",
            ..
        })
    ));
}
