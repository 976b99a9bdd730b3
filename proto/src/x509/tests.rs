//! X.509 reading's unit tests, with certificates built by hand.

use super::*;

#[test]
fn times_convert_to_unix_seconds() {
    assert_eq!(der_time(UTC_TIME, b"700101000000Z"), Some(0));
    assert_eq!(der_time(UTC_TIME, b"261125131500Z"), Some(1_795_612_500));
    assert_eq!(
        der_time(GENERALIZED_TIME, b"20261125131500Z"),
        Some(1_795_612_500)
    );
    assert_eq!(
        der_time(GENERALIZED_TIME, b"99991231235959Z"),
        Some(253_402_300_799)
    );
    assert_eq!(der_time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
    assert_eq!(
        der_time(GENERALIZED_TIME, b"20240229000000Z"),
        Some(1_709_164_800)
    );
    assert_eq!(der_time(UTC_TIME, b"261325131500Z"), None);
    assert_eq!(der_time(UTC_TIME, b"2611251315Z"), None);
    assert_eq!(der_time(UTC_TIME, b"261125131500"), None);
}

#[test]
fn year_zero_and_impossible_dates_neither_panic_nor_pass() {
    // 0000-01-01: the day before 1970 by 719 528 days
    assert_eq!(
        der_time(GENERALIZED_TIME, b"00000101000000Z"),
        Some(-62_167_219_200)
    );
    assert_eq!(
        der_time(GENERALIZED_TIME, b"00000229000000Z"),
        Some(-62_162_121_600)
    );
    assert_eq!(der_time(GENERALIZED_TIME, b"20230229000000Z"), None);
    assert_eq!(der_time(GENERALIZED_TIME, b"20230431000000Z"), None);
    assert_eq!(der_time(UTC_TIME, b"260101000060Z"), None);
    // str::parse would take a sign
    assert_eq!(der_time(UTC_TIME, b"+61125131500Z"), None);
    assert_eq!(der_time(UTC_TIME, b"26112513150+Z"), None);
    assert_eq!(der_time(UTC_TIME, b"26112513150\xffZ"), None);
}

#[test]
fn lengths_must_be_minimal() {
    assert!(item(&[0x04, 0x01, 0xaa]).is_some());
    // 1 in the long form
    assert!(item(&[0x04, 0x81, 0x01, 0xaa]).is_none());
    // 200 with a leading zero byte
    let mut padded = vec![0x04, 0x82, 0x00, 0xc8];
    padded.extend([0; 200]);
    assert!(item(&padded).is_none());
    let mut minimal = vec![0x04, 0x81, 0xc8];
    minimal.extend([0; 200]);
    assert!(item(&minimal).is_some());
    // indefinite length, high tag number
    assert!(item(&[0x30, 0x80, 0x00, 0x00]).is_none());
    assert!(item(&[0x1f, 0x01, 0x00]).is_none());
}

/// A DER item of `tag` around `contents`.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        len @ 0..=0x7f => out.push(len as u8),
        len @ 0x80..=0xff => out.extend([0x81, len as u8]),
        len => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const SHA256_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const SHA384_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const RSA_KEY: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn name(cn: &str) -> Vec<u8> {
    let pair = tlv(
        SEQUENCE,
        &cat(&[&tlv(OID, COMMON_NAME), &tlv(0x0c, cn.as_bytes())]),
    );
    tlv(SEQUENCE, &tlv(SET, &pair))
}

struct Parts {
    version: Option<u8>,
    inner: &'static [u8],
    outer: &'static [u8],
    issuer: &'static str,
    subject: &'static str,
    not_before: &'static [u8],
    extensions: Option<Vec<u8>>,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            version: None,
            inner: SHA256_RSA,
            outer: SHA256_RSA,
            issuer: "root",
            subject: "root",
            not_before: b"20200101000000Z",
            extensions: None,
        }
    }
}

/// A hand-built certificate (its signature is junk: parsing never checks it).
fn build(parts: Parts) -> Vec<u8> {
    let mut tbs = Vec::new();
    if let Some(version) = parts.version {
        tbs.extend(tlv(0xa0, &tlv(INTEGER, &[version])));
    }
    tbs.extend(tlv(INTEGER, &[0x01]));
    tbs.extend(tlv(SEQUENCE, parts.inner));
    tbs.extend(name(parts.issuer));
    tbs.extend(tlv(
        SEQUENCE,
        &cat(&[
            &tlv(GENERALIZED_TIME, parts.not_before),
            &tlv(GENERALIZED_TIME, b"20991231235959Z"),
        ]),
    ));
    tbs.extend(name(parts.subject));
    tbs.extend(tlv(
        SEQUENCE,
        &cat(&[&tlv(SEQUENCE, RSA_KEY), &tlv(BIT_STRING, &[0, 0x30, 0x00])]),
    ));
    if let Some(extensions) = parts.extensions {
        tbs.extend(tlv(0xa3, &tlv(SEQUENCE, &extensions)));
    }
    tlv(
        SEQUENCE,
        &cat(&[
            &tlv(SEQUENCE, &tbs),
            &tlv(SEQUENCE, parts.outer),
            &tlv(BIT_STRING, &[0, 1, 2, 3]),
        ]),
    )
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let flag = if critical {
        tlv(BOOLEAN, &[0xff])
    } else {
        Vec::new()
    };
    tlv(
        SEQUENCE,
        &cat(&[&tlv(OID, oid), &flag, &tlv(OCTET_STRING, value)]),
    )
}

fn basic_constraints(ca: bool) -> Vec<u8> {
    let contents = if ca {
        tlv(BOOLEAN, &[0xff])
    } else {
        Vec::new()
    };
    extension(BASIC_CONSTRAINTS, true, &tlv(SEQUENCE, &contents))
}

fn key_usage(first_byte: u8) -> Vec<u8> {
    extension(KEY_USAGE, true, &tlv(BIT_STRING, &[1, first_byte]))
}

fn v3(extensions: &[Vec<u8>]) -> Vec<u8> {
    build(Parts {
        version: Some(2),
        extensions: Some(extensions.concat()),
        ..Parts::default()
    })
}

fn refusal(der: &[u8]) -> Option<String> {
    Certificate::parse(der).expect("reads").anchor_refusal()
}

#[test]
fn a_hand_built_certificate_reads() {
    let der = build(Parts::default());
    let cert = Certificate::parse(&der).expect("reads");
    assert_eq!(cert.version, 0);
    assert_eq!(cert.subject_cn().as_deref(), Some("CN=root"));
    assert_eq!(cert.not_before, 1_577_836_800);
    assert!(V1Certificate::parse(&der).is_some());
    fuzz_parse(&der);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut der = build(Parts::default());
    der.push(0);
    assert!(Certificate::parse(&der).is_none());
    assert!(subject_cn(&der).is_none());
}

#[test]
fn non_minimal_lengths_are_refused() {
    let der = build(Parts::default());
    // the outer SEQUENCE's length, re-encoded one byte longer than needed
    let item = item(&der).expect("reads");
    let len = item.contents.len();
    assert!((0x80..0x100).contains(&len), "{len}");
    let mut padded = vec![SEQUENCE, 0x82, 0, len as u8];
    padded.extend_from_slice(item.contents);
    assert!(Certificate::parse(&padded).is_none());
    let mut same = vec![SEQUENCE, 0x81, len as u8];
    same.extend_from_slice(item.contents);
    assert!(Certificate::parse(&same).is_some());
}

#[test]
fn inner_and_outer_signature_algorithms_must_agree() {
    assert!(Certificate::parse(&build(Parts {
        outer: SHA384_RSA,
        ..Parts::default()
    }))
    .is_none());
    assert!(Certificate::parse(&build(Parts {
        inner: SHA384_RSA,
        ..Parts::default()
    }))
    .is_none());
}

#[test]
fn a_year_zero_validity_reads_without_panicking() {
    let der = build(Parts {
        not_before: b"00000101000000Z",
        ..Parts::default()
    });
    assert_eq!(
        Certificate::parse(&der).expect("reads").not_before,
        -62_167_219_200
    );
    assert!(Certificate::parse(&build(Parts {
        not_before: b"00000100000000Z",
        ..Parts::default()
    }))
    .is_none());
}

#[test]
fn versions_and_extensions_must_agree() {
    // an explicit v1 version is not DER; extensions need v3
    assert!(Certificate::parse(&build(Parts {
        version: Some(0),
        ..Parts::default()
    }))
    .is_none());
    assert!(Certificate::parse(&build(Parts {
        version: Some(1),
        extensions: Some(basic_constraints(true)),
        ..Parts::default()
    }))
    .is_none());
    assert!(Certificate::parse(&build(Parts {
        version: Some(3),
        ..Parts::default()
    }))
    .is_none());
    // duplicated extensions, an empty list, an empty keyUsage
    assert!(Certificate::parse(&v3(&[basic_constraints(true), basic_constraints(true)])).is_none());
    assert!(Certificate::parse(&v3(&[])).is_none());
    assert!(
        Certificate::parse(&v3(&[extension(KEY_USAGE, true, &tlv(BIT_STRING, &[0]))])).is_none()
    );
}

#[test]
fn anchors_are_judged_as_openssl_check_ca_does() {
    // v1: a CA only when self-signed
    assert_eq!(refusal(&build(Parts::default())), None);
    assert!(refusal(&build(Parts {
        issuer: "someone else",
        ..Parts::default()
    }))
    .is_some_and(|why| why.contains("not self-signed")));
    // a v1 whose signature algorithm does not fit its key is not self-signed either
    const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    assert!(refusal(&build(Parts {
        inner: ECDSA_SHA256,
        outer: ECDSA_SHA256,
        ..Parts::default()
    }))
    .is_some());
    // v3: basicConstraints decide when present
    assert_eq!(refusal(&v3(&[basic_constraints(true)])), None);
    assert!(refusal(&v3(&[basic_constraints(false)])).is_some_and(|why| why.contains("CA:FALSE")));
    // keyUsage without keyCertSign rules out even CA:TRUE
    assert!(refusal(&v3(&[basic_constraints(true), key_usage(0x80)]))
        .is_some_and(|why| why.contains("keyCertSign")));
    assert_eq!(
        refusal(&v3(&[basic_constraints(true), key_usage(0x06)])),
        None
    );
    // no basicConstraints: keyUsage with keyCertSign makes a CA, nothing else does
    assert_eq!(refusal(&v3(&[key_usage(0x04)])), None);
    assert!(refusal(&v3(&[extension(
        &[0x55, 0x1d, 0x0e],
        false,
        &tlv(OCTET_STRING, &[1])
    )]))
    .is_some());
    // self-signed, as OpenSSL tells it: the authority key identifier points at itself
    let key_id = |id: u8| extension(SUBJECT_KEY_ID, false, &tlv(OCTET_STRING, &[id]));
    let authority = |id: u8| extension(AUTHORITY_KEY_ID, false, &tlv(SEQUENCE, &tlv(0x80, &[id])));
    let own = Certificate::parse(&v3(&[key_id(1), authority(1), key_usage(0x04)]))
        .map(|c| c.self_signed());
    assert_eq!(own, Some(true));
    let other = v3(&[key_id(1), authority(2), key_usage(0x04)]);
    assert_eq!(
        Certificate::parse(&other).map(|c| c.self_signed()),
        Some(false)
    );
    // below a root, only basicConstraints CA:TRUE makes a CA
    assert!(refusal(&other).is_some_and(|why| why.contains("CA:TRUE")));
    // a v3 self-signed certificate is no V1 root
    let san = extension(&[0x55, 0x1d, 0x11], false, &tlv(SEQUENCE, &tlv(0x82, b"x")));
    assert!(refusal(&v3(&[san])).is_some());
    // Netscape's sslCA without basicConstraints
    let ns = |bits: u8| extension(NETSCAPE_CERT_TYPE, false, &tlv(BIT_STRING, &[0, bits]));
    assert_eq!(refusal(&v3(&[ns(0x04)])), None);
    assert!(refusal(&v3(&[ns(0x02)])).is_some());
    // an extendedKeyUsage without clientAuth cannot vouch for clients
    let eku = |purpose: &[u8]| extension(EXT_KEY_USAGE, false, &tlv(SEQUENCE, &tlv(OID, purpose)));
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    assert!(refusal(&v3(&[basic_constraints(true), eku(SERVER_AUTH)]))
        .is_some_and(|why| why.contains("clientAuth")));
    assert_eq!(
        refusal(&v3(&[basic_constraints(true), eku(CLIENT_AUTH)])),
        None
    );
    // a critical extension OpenSSL does not understand
    let odd = extension(&[0x2a, 0x03, 0x04], true, &tlv(0x05, &[]));
    assert!(
        refusal(&v3(&[basic_constraints(true), odd])).is_some_and(|why| why.contains("1.2.3.4"))
    );
    let odd = extension(&[0x2a, 0x03, 0x04], false, &tlv(0x05, &[]));
    assert_eq!(refusal(&v3(&[basic_constraints(true), odd])), None);
}

#[test]
fn garbage_is_not_a_certificate() {
    assert!(subject_cn(&[]).is_none());
    assert!(V1Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    assert!(Certificate::parse(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
    for len in 0..200u16 {
        let junk: Vec<u8> = (0..len)
            .map(|i| (i.wrapping_mul(37) ^ 0x30) as u8)
            .collect();
        fuzz_parse(&junk);
    }
}

#[test]
fn oids_print_dotted() {
    assert_eq!(dotted(CLIENT_AUTH), "1.3.6.1.5.5.7.3.2");
    assert_eq!(dotted(NETSCAPE_CERT_TYPE), "2.16.840.1.113730.1.1");
}
