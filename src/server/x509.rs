//! Just enough X.509 for what webpki leaves out: the subject's common name
//! for log lines, and X.509 v1 client certificates.
//!
//! `openssl x509 -req` without extensions (the recipe rpyc's own tests use
//! for client certificates) makes v1 certificates. Python's ssl accepts
//! them; webpki, which rustls verifies with, accepts v3 only. A v1
//! certificate has no extensions, so there is nothing to check beyond its
//! issuer's signature and its validity, which is what [`V1Certificate`]
//! does, with the same signature algorithms rustls offers.

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::UnixTime;

/// One DER item: (tag, contents, the whole item, what follows it).
type DerItem<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der_item(data: &[u8]) -> Option<DerItem<'_>> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, header_len, rest) = if first < 0x80 {
        (usize::from(first), 2, rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (len, 2 + count, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &data[..header_len + len], &rest[len..]))
}

/// The parts of a certificate this module needs.
struct Parsed<'a> {
    version_present: bool,
    tbs: &'a [u8],
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    issuer: &'a [u8],
    not_before: &'a [u8],
    not_after: &'a [u8],
    time_tags: (u8, u8),
    subject: &'a [u8],
    subject_contents: &'a [u8],
    /// The public key's AlgorithmIdentifier contents.
    key_algorithm: &'a [u8],
    /// The public key itself (the BIT STRING without its unused-bits byte).
    key: &'a [u8],
}

fn parse(der: &[u8]) -> Option<Parsed<'_>> {
    let (_, cert, _, _) = der_item(der)?;
    let (_, tbs_contents, tbs, rest) = der_item(cert)?;
    let (_, signature_algorithm, _, rest) = der_item(rest)?;
    let (bit_string_tag, signature, _, _) = der_item(rest)?;
    let (&unused, signature) = signature.split_first()?;
    if bit_string_tag != 0x03 || unused != 0 {
        return None;
    }
    let mut rest = tbs_contents;
    let version_present = rest.first() == Some(&0xa0);
    if version_present {
        rest = der_item(rest)?.3;
    }
    let rest = der_item(rest)?.3; // serial number
    let rest = der_item(rest)?.3; // signature algorithm, repeated
    let (_, _, issuer, rest) = der_item(rest)?;
    let (_, validity, _, rest) = der_item(rest)?;
    let (before_tag, not_before, _, after) = der_item(validity)?;
    let (after_tag, not_after, _, _) = der_item(after)?;
    let (_, subject_contents, subject, rest) = der_item(rest)?;
    let (_, spki, _, _) = der_item(rest)?;
    let (_, key_algorithm, _, rest) = der_item(spki)?;
    let (key_tag, key, _, _) = der_item(rest)?;
    let (&unused, key) = key.split_first()?;
    if key_tag != 0x03 || unused != 0 {
        return None;
    }
    Some(Parsed {
        version_present,
        tbs,
        signature_algorithm,
        signature,
        issuer,
        not_before,
        not_after,
        time_tags: (before_tag, after_tag),
        subject,
        subject_contents,
        key_algorithm,
        key,
    })
}

/// The subject of a DER certificate as `CN=alice`, for log lines.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut names = parse(der)?.subject_contents;
    while !names.is_empty() {
        let (_, set, _, next) = der_item(names)?;
        names = next;
        let (_, pair, _, _) = der_item(set)?;
        let (tag, oid, _, after) = der_item(pair)?;
        let (_, value, _, _) = der_item(after)?;
        if tag == 0x06 && oid == CN {
            return Some(format!("CN={}", String::from_utf8_lossy(value)));
        }
    }
    None
}

/// A trust anchor as v1 verification needs it.
#[derive(Debug, Clone)]
pub struct Issuer {
    subject: Vec<u8>,
    key_algorithm: Vec<u8>,
    key: Vec<u8>,
}

impl Issuer {
    pub fn from_der(der: &[u8]) -> Option<Issuer> {
        let parsed = parse(der)?;
        Some(Issuer {
            subject: parsed.subject.to_vec(),
            key_algorithm: parsed.key_algorithm.to_vec(),
            key: parsed.key.to_vec(),
        })
    }
}

/// A certificate without a version field: X.509 v1.
pub struct V1Certificate<'a> {
    parsed: Parsed<'a>,
}

impl<'a> V1Certificate<'a> {
    /// `None` if `der` is not a readable v1 certificate (v3 ones are webpki's).
    pub fn parse(der: &'a [u8]) -> Option<V1Certificate<'a>> {
        let parsed = parse(der)?;
        (!parsed.version_present).then_some(V1Certificate { parsed })
    }

    /// Signed by one of `issuers` with an algorithm of `algorithms`, and
    /// valid at `now`.
    pub fn verify(
        &self,
        issuers: &[Issuer],
        algorithms: &WebPkiSupportedAlgorithms,
        now: UnixTime,
    ) -> Result<(), &'static str> {
        let cert = &self.parsed;
        let now = now.as_secs();
        let not_before =
            der_time(cert.time_tags.0, cert.not_before).ok_or("unreadable validity")?;
        let not_after = der_time(cert.time_tags.1, cert.not_after).ok_or("unreadable validity")?;
        if now < not_before {
            return Err("certificate not valid yet");
        }
        if now > not_after {
            return Err("certificate expired");
        }
        for issuer in issuers
            .iter()
            .filter(|issuer| issuer.subject == cert.issuer)
        {
            let signed = algorithms.all.iter().any(|alg| {
                *alg.signature_alg_id() == *cert.signature_algorithm
                    && *alg.public_key_alg_id() == *issuer.key_algorithm
                    && alg
                        .verify_signature(&issuer.key, cert.tbs, cert.signature)
                        .is_ok()
            });
            if signed {
                return Ok(());
            }
        }
        Err("certificate not signed by a trusted CA")
    }

    /// The handshake signature made with this certificate's key.
    pub fn verify_handshake(
        &self,
        message: &[u8],
        signature: &[u8],
        candidates: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
    ) -> bool {
        candidates.iter().any(|alg| {
            *alg.public_key_alg_id() == *self.parsed.key_algorithm
                && alg
                    .verify_signature(self.parsed.key, message, signature)
                    .is_ok()
        })
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn der_time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = text.strip_suffix(b"Z")?;
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        std::str::from_utf8(digits.get(range)?).ok()?.parse().ok()
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = number(0..2)?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let month = number(rest..rest + 2)?;
    let day = number(rest + 2..rest + 4)?;
    let hour = number(rest + 4..rest + 6)?;
    let minute = number(rest + 6..rest + 8)?;
    let second = number(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // days from the civil date (Howard Hinnant's algorithm)
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"261125131500Z"), Some(1_795_612_500));
        assert_eq!(der_time(0x18, b"20261125131500Z"), Some(1_795_612_500));
        assert_eq!(der_time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        assert_eq!(der_time(0x17, b"261325131500Z"), None);
        assert_eq!(der_time(0x17, b"2611251315Z"), None);
        assert_eq!(der_time(0x17, b"261125131500"), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(subject_cn(&[]).is_none());
        assert!(V1Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(Issuer::from_der(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
        for len in 0..200u16 {
            let junk: Vec<u8> = (0..len)
                .map(|i| (i.wrapping_mul(37) ^ 0x30) as u8)
                .collect();
            let _ = subject_cn(&junk);
            let _ = V1Certificate::parse(&junk);
        }
    }
}
