//! Strict DER: one item at a time (minimal lengths, nothing left over),
//! times as RFC 5280 allows them, OIDs for messages.

/// One DER item: its tag, its contents, the whole item, and what follows it.
#[derive(Clone, Copy)]
pub(super) struct Item<'a> {
    pub(super) tag: u8,
    pub(super) contents: &'a [u8],
    pub(super) whole: &'a [u8],
    pub(super) rest: &'a [u8],
}

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const SET: u8 = 0x31;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const BIT_STRING: u8 = 0x03;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const OID: u8 = 0x06;
pub(super) const BOOLEAN: u8 = 0x01;
pub(super) const UTC_TIME: u8 = 0x17;
pub(super) const GENERALIZED_TIME: u8 = 0x18;

/// The next DER item of `data`, in distinguished encoding only: a low tag
/// number, a definite length in its shortest form.
pub(super) fn item(data: &[u8]) -> Option<Item<'_>> {
    let (&tag, rest) = data.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers: nothing in a certificate uses them
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header_len, rest) = if first < 0x80 {
        (usize::from(first), 2, rest)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length; more than 4 bytes is beyond any file we read
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let bytes = &rest[..count];
        let len = bytes
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        // the shortest form: no leading zero byte, and the long form only from 128 on
        if bytes[0] == 0 || len < 0x80 {
            return None;
        }
        (len, 2 + count, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some(Item {
        tag,
        contents: &rest[..len],
        whole: &data[..header_len + len],
        rest: &rest[len..],
    })
}

/// The next item, which must have tag `tag`.
pub(super) fn expect(data: &[u8], tag: u8) -> Option<Item<'_>> {
    item(data).filter(|found| found.tag == tag)
}

/// `data` is exactly one item with tag `tag`.
pub(super) fn only(data: &[u8], tag: u8) -> Option<&[u8]> {
    let found = expect(data, tag)?;
    found.rest.is_empty().then_some(found.contents)
}

/// A BIT STRING's first two bytes of named bits, as OpenSSL keeps them
/// (bit 0 is 0x80 of the first byte).
pub(super) fn named_bits(contents: &[u8]) -> Option<u16> {
    let (&unused, bits) = contents.split_first()?;
    if unused > 7 || (bits.is_empty() && unused != 0) {
        return None;
    }
    let first = bits.first().copied().unwrap_or(0);
    let second = bits.get(1).copied().unwrap_or(0);
    Some(u16::from(first) | u16::from(second) << 8)
}

/// A BIT STRING holding whole bytes (a signature, a public key).
pub(super) fn whole_bytes(contents: &[u8]) -> Option<&[u8]> {
    match contents.split_first()? {
        (0, bytes) => Some(bytes),
        _ => None,
    }
}

// extension identifiers (OID contents)

/// An OID's contents in dotted decimal, for messages.
pub(super) fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = value.saturating_mul(128) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let text: Vec<String> = arcs.iter().map(u64::to_string).collect();
    text.join(".")
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix
/// seconds; only the forms RFC 5280 allows, and only real dates.
pub(super) fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |at: usize, len: usize| -> i64 {
        digits[at..at + len]
            .iter()
            .fold(0, |n, digit| n * 10 + i64::from(digit - b'0'))
    };
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = number(0, 2);
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0, 4), 4),
        _ => return None,
    };
    let month = number(rest, 2);
    let day = number(rest + 2, 2);
    let hour = number(rest + 4, 2);
    let minute = number(rest + 6, 2);
    let second = number(rest + 8, 2);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // days from the civil date (Howard Hinnant's algorithm), in signed
    // arithmetic: year 0000 and dates before 1970 are fine
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}
