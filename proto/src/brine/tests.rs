//! brine's unit tests (a sibling file, so that the grammar's modules stay readable).

use super::*;

fn round_trip(value: Value) -> Vec<u8> {
    let bytes = value.to_bytes().expect("encodes");
    assert_eq!(decode(&bytes).expect("decodes"), value);
    bytes
}

#[test]
fn immediate_ints_are_one_byte() {
    assert_eq!(round_trip(Value::Int(-48)), [0x20]);
    assert_eq!(round_trip(Value::Int(0)), [0x50]);
    assert_eq!(round_trip(Value::Int(159)), [0xef]);
    assert_eq!(round_trip(Value::Int(160)), b"\x16\x03160");
    assert_eq!(round_trip(Value::Int(-49)), b"\x16\x03-49");
}

#[test]
fn ints_outside_i64_are_big() {
    let big = Value::int_from_decimal(b"9223372036854775808").expect("parses");
    assert!(matches!(big, Value::BigInt(_)));
    assert_eq!(round_trip(big), b"\x16\x139223372036854775808");
    assert_eq!(
        Value::int_from_decimal(b"-9223372036854775808"),
        Some(Value::Int(i64::MIN))
    );
    assert_eq!(Value::from_u64(u64::MAX).as_u64(), Some(u64::MAX));
}

#[test]
fn int_text_follows_python_int() {
    assert_eq!(
        Value::int_from_decimal(b" +1_000 \n"),
        Some(Value::Int(1000))
    );
    assert_eq!(Value::int_from_decimal(b"-000"), Some(Value::Int(0)));
    assert_eq!(Value::int_from_decimal(b"007"), Some(Value::Int(7)));
    for bad in [
        &b""[..],
        b"-",
        b"1__0",
        b"_1",
        b"1_",
        b"0x10",
        b"1.0",
        b"- 1",
    ] {
        assert_eq!(Value::int_from_decimal(bad), None, "{bad:?}");
    }
}

#[test]
fn length_forms_switch_at_python_boundaries() {
    assert_eq!(round_trip(Value::Bytes(vec![].into())), [TAG_EMPTY_STR]);
    assert_eq!(round_trip(Value::Bytes(vec![7; 4].into()))[0], TAG_STR4);
    assert_eq!(
        round_trip(Value::Bytes(vec![7; 255].into()))[..2],
        [TAG_STR_L1, 255]
    );
    assert_eq!(
        round_trip(Value::Bytes(vec![7; 256].into()))[..5],
        [TAG_STR_L4, 0, 0, 1, 0]
    );
    assert_eq!(round_trip(Value::Tuple(vec![])), [TAG_EMPTY_TUPLE]);
    assert_eq!(round_trip(Value::Tuple(vec![Value::None; 4]))[0], TAG_TUP4);
    let long = round_trip(Value::Tuple(vec![Value::None; 256]));
    assert_eq!(long[..5], [TAG_TUP_L4, 0, 0, 1, 0]);
}

#[test]
fn floats_compare_by_bits() {
    round_trip(Value::Float(f64::NAN));
    round_trip(Value::Complex(-0.0, f64::INFINITY));
    assert_ne!(Value::Float(0.0), Value::Float(-0.0));
}

#[test]
fn truncation_is_an_error_everywhere() {
    let value = Value::Tuple(vec![
        Value::str("héllo wörld"),
        Value::Float(1.5),
        Value::Int(123456),
        Value::FrozenSet(vec![Value::Int(1)]),
        Value::Slice(Box::new([Value::None, Value::Int(5), Value::None])),
    ]);
    let bytes = value.to_bytes().expect("encodes");
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    assert_eq!(
        decode(&[TAG_NONE, TAG_NONE]),
        Err(DecodeError::TrailingBytes {
            count: 1,
            offset: 1
        })
    );
}

#[test]
fn unknown_tags_are_refused() {
    for tag in [0x07u8, 0x09, 0x1c, 0x1f, 0xf0, 0xff] {
        assert_eq!(
            decode(&[tag]),
            Err(DecodeError::UnknownTag { tag, offset: 0 })
        );
    }
}

#[test]
fn lengths_past_the_end_allocate_nothing() {
    assert!(matches!(
        decode(&[TAG_TUP_L4, 0xff, 0xff, 0xff, 0xff, TAG_NONE]),
        Err(DecodeError::Truncated { .. })
    ));
    assert!(matches!(
        decode(&[TAG_STR_L4, 0xff, 0xff, 0xff, 0xff, b'x']),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn counts_that_lie_reserve_nothing_past_the_memory_budget() {
    // 64 tuples, each claiming about as many items as bytes remain,
    // then a megabyte of Nones: the old decoder reserved 64 times
    // 32 MiB before reading an item
    let mut data = Vec::new();
    for level in 0..64_u32 {
        data.push(TAG_TUP_L4);
        data.extend_from_slice(&((1 << 20) - 5 * level).to_be_bytes());
    }
    data.resize(data.len() + (1 << 20), TAG_NONE);
    let limits = DecodeLimits {
        max_depth: DEFAULT_MAX_DEPTH,
        max_memory: 4 << 20,
    };
    match decode_with_bulk(&data, limits, None) {
        Err(DecodeError::TooMuchMemory { limit, .. }) => assert_eq!(limit, 4 << 20),
        other => panic!("{other:?}"),
    }
    // a value that fits its budget decodes, however its room grew
    let items = 100_000;
    let mut data = vec![TAG_TUP_L4];
    data.extend_from_slice(&(items as u32).to_be_bytes());
    data.resize(5 + items, TAG_NONE);
    let fits = DecodeLimits {
        max_depth: DEFAULT_MAX_DEPTH,
        max_memory: items * std::mem::size_of::<Value>(),
    };
    assert_eq!(
        decode_with_bulk(&data, fits, None)
            .ok()
            .and_then(|v| v.as_tuple().map(<[Value]>::len)),
        Some(items)
    );
    let short = DecodeLimits {
        max_memory: fits.max_memory - 1,
        ..fits
    };
    assert!(matches!(
        decode_with_bulk(&data, short, None),
        Err(DecodeError::TooMuchMemory { .. })
    ));
}

#[test]
fn copied_text_and_bytes_are_charged() {
    let data = Value::Tuple(vec![
        Value::str("é".repeat(600)),
        Value::Bytes(vec![7; 900].into()),
    ])
    .to_bytes()
    .expect("encodes");
    let limits = |max_memory| DecodeLimits {
        max_depth: DEFAULT_MAX_DEPTH,
        max_memory,
    };
    let nodes = 2 * std::mem::size_of::<Value>();
    assert!(decode_with_bulk(&data, limits(nodes + 2100), None).is_ok());
    assert!(decode_with_bulk(&data, limits(nodes + 2099), None).is_err());
}

#[test]
fn nesting_is_bounded() {
    let mut deep = vec![TAG_TUP1; 100_000];
    deep.push(TAG_NONE);
    assert!(matches!(
        decode(&deep),
        Err(DecodeError::TooDeep {
            limit: DEFAULT_MAX_DEPTH,
            ..
        })
    ));
    let mut ok = vec![TAG_TUP1; DEFAULT_MAX_DEPTH];
    ok.push(TAG_NONE);
    assert!(decode(&ok).is_ok());
    let mut value = Value::None;
    for _ in 0..DEFAULT_MAX_DEPTH + 1 {
        value = Value::Tuple(vec![value]);
    }
    assert!(matches!(value.to_bytes(), Err(EncodeError::TooDeep)));
}

#[test]
fn a_run_of_unicode_tags_does_not_recurse() {
    let run = vec![TAG_UNICODE; 1_000_000];
    assert!(matches!(
        decode(&run),
        Err(DecodeError::Malformed { what: "str", .. })
    ));
}

#[test]
fn str_must_wrap_valid_utf8_bytes() {
    assert!(matches!(
        decode(&[TAG_UNICODE, TAG_STR1, 0xff]),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    assert!(matches!(
        decode(&[TAG_UNICODE, 0x51]),
        Err(DecodeError::Malformed { what: "str", .. })
    ));
}

#[test]
fn slices_need_three_parts() {
    assert!(matches!(
        decode(&[TAG_SLICE, TAG_TUP2, 0x50, 0x51]),
        Err(DecodeError::Malformed { what: "slice", .. })
    ));
    assert!(matches!(
        decode(&[TAG_FSET, 0x50]),
        Err(DecodeError::Malformed {
            what: "frozenset",
            ..
        })
    ));
}

/// Every kind of token before the bulk string, then the string, then
/// more: found where its data is, and decoded whole again from the
/// encoding without it.
#[test]
fn a_bulk_string_is_found_past_every_kind_of_token_and_put_back() {
    let bulk = vec![0x5a; 2 << 20];
    let value = Value::Tuple(vec![
        Value::None,
        Value::Bool(true),
        Value::Ellipsis,
        Value::Int(7),
        Value::Int(1 << 40),
        Value::int_from_decimal(b"123456789012345678901234567890").expect("an int"),
        Value::Float(1.5),
        Value::Complex(1.0, -2.0),
        Value::str("text"),
        Value::str("t".repeat(300)),
        Value::Bytes(vec![1; 300].into()),
        Value::Bytes(vec![2; 3].into()),
        Value::Bytes(Vec::new().into()),
        Value::Tuple(Vec::new()),
        Value::Tuple((0..300).map(Value::Int).collect()),
        Value::FrozenSet(vec![Value::Int(1)]),
        Value::Slice(Box::new([Value::None, Value::Int(3), Value::None])),
        Value::Bytes(bulk.clone().into()),
        Value::Bytes(vec![3; 1 << 20].into()),
    ]);
    let encoded = value.to_bytes().expect("encodes");
    let Located::At { data, len } = find_bulk(&encoded, BULK_MIN) else {
        panic!("not found");
    };
    assert_eq!(len, bulk.len());
    assert_eq!(&encoded[data..data + len], &bulk[..]);
    // every shorter prefix that cuts the way there asks for more
    for cut in [0, 1, 5, data / 2, data - 1] {
        assert_eq!(
            find_bulk(&encoded[..cut], BULK_MIN),
            Located::NeedMore,
            "{cut}"
        );
    }
    let mut without = encoded[..data].to_vec();
    without.extend_from_slice(&encoded[data + len..]);
    let bulk = Bulk {
        at: data,
        bytes: bulk.into(),
    };
    let decoded =
        decode_with_bulk(&without, DecodeLimits::for_input(1 << 20), Some(bulk)).expect("decodes");
    assert_eq!(decoded, value);
}

#[test]
fn a_long_str_is_not_a_bulk_string() {
    let text = Value::str("x".repeat(BULK_MIN));
    let encoded = Value::Tuple(vec![text, Value::Int(1)])
        .to_bytes()
        .expect("encodes");
    assert_eq!(find_bulk(&encoded, BULK_MIN), Located::NeedMore);
    assert_eq!(find_bulk(&[TAG_TUP1, 0xff], BULK_MIN), Located::Nowhere);
    assert_eq!(
        find_bulk(&[TAG_UNICODE, TAG_NONE], BULK_MIN),
        Located::Nowhere
    );
}

#[test]
fn a_bulk_string_out_of_place_is_refused() {
    // (1, b"\x09" * 8) with a 4-byte length, as bulk strings have, and
    // the string's data, which belongs at 7, left out
    let without = &[TAG_TUP2, 0x51, TAG_STR_L4, 0, 0, 0, 8][..];
    let wrong_len = Bulk {
        at: 7,
        bytes: vec![9; 7].into(),
    };
    assert!(decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(wrong_len)).is_err());
    let nowhere = Bulk {
        at: 3,
        bytes: vec![9; 8].into(),
    };
    assert!(decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(nowhere)).is_err());
    let right = Bulk {
        at: 7,
        bytes: vec![9; 8].into(),
    };
    assert!(decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(right)).is_ok());
}

#[test]
fn every_tag_has_one_shape_that_the_decoder_and_the_locator_share() {
    for tag in 0..=255u8 {
        let known = shape(tag) != Shape::Unknown;
        // one byte: a known tag is at most cut short, an unknown one refused
        let refused = matches!(decode(&[tag]), Err(DecodeError::UnknownTag { .. }));
        assert_eq!(refused, !known, "{tag:#04x}");
        assert_eq!(token_len(&[tag], 0) == Token::Unknown, !known, "{tag:#04x}");
    }
}
