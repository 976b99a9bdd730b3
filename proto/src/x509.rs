//! Just enough X.509 for what webpki leaves out: the subject's common name
//! for log lines, X.509 v1 client certificates, and what a CA bundle entry
//! may be trusted for.
//!
//! `openssl x509 -req` without extensions (the recipe rpyc's own tests use
//! for client certificates) makes v1 certificates. Python's ssl accepts
//! them; webpki, which rustls verifies with, accepts v3 only. A v1
//! certificate has no extensions, so there is nothing to check beyond its
//! issuer's signature and its validity: [`V1Certificate`] gives what that
//! check needs, and the daemon makes it with the signature algorithms
//! rustls offers (this crate does no cryptography).
//!
//! webpki trusts every root it is given as an issuer, whatever the root
//! says of itself; OpenSSL does not. [`Certificate::anchor_refusal`] is
//! OpenSSL's judgement of a trusted certificate (`X509_check_ca` and the
//! purpose and extension checks `X509_verify_cert` applies to the root of a
//! client's chain), so that a bundle means here what it means to Python.
//!
//! Everything read here comes from files or peers: the reading is strict
//! DER (minimal lengths, no trailing bytes, nothing left unread) and never
//! panics.

/// One DER item: its tag, its contents, the whole item, and what follows it.
#[derive(Clone, Copy)]
struct Item<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The next DER item of `data`, in distinguished encoding only: a low tag
/// number, a definite length in its shortest form.
fn item(data: &[u8]) -> Option<Item<'_>> {
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
fn expect(data: &[u8], tag: u8) -> Option<Item<'_>> {
    item(data).filter(|found| found.tag == tag)
}

/// `data` is exactly one item with tag `tag`.
fn only(data: &[u8], tag: u8) -> Option<&[u8]> {
    let found = expect(data, tag)?;
    found.rest.is_empty().then_some(found.contents)
}

/// A BIT STRING's first two bytes of named bits, as OpenSSL keeps them
/// (bit 0 is 0x80 of the first byte).
fn named_bits(contents: &[u8]) -> Option<u16> {
    let (&unused, bits) = contents.split_first()?;
    if unused > 7 || (bits.is_empty() && unused != 0) {
        return None;
    }
    let first = bits.first().copied().unwrap_or(0);
    let second = bits.get(1).copied().unwrap_or(0);
    Some(u16::from(first) | u16::from(second) << 8)
}

/// A BIT STRING holding whole bytes (a signature, a public key).
fn whole_bytes(contents: &[u8]) -> Option<&[u8]> {
    match contents.split_first()? {
        (0, bytes) => Some(bytes),
        _ => None,
    }
}

// extension identifiers (OID contents)
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const NETSCAPE_CERT_TYPE: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x01, 0x01];
/// The critical extensions OpenSSL's verifier understands
/// (`X509_supported_extension`); any other critical one makes it refuse
/// the chain with X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION.
const HANDLED_WHEN_CRITICAL: &[&[u8]] = &[
    NETSCAPE_CERT_TYPE,
    KEY_USAGE,
    EXT_KEY_USAGE,
    BASIC_CONSTRAINTS,
    &[0x55, 0x1d, 0x20], // certificatePolicies
    &[0x55, 0x1d, 0x1f], // cRLDistributionPoints
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x05], // id-pkix-ocsp-nocheck
    &[0x55, 0x1d, 0x21], // policyMappings
    &[0x55, 0x1d, 0x24], // policyConstraints
    &[0x55, 0x1d, 0x36], // inhibitAnyPolicy
    &[0x55, 0x1d, 0x1e], // nameConstraints
    &[0x55, 0x1d, 0x11], // subjectAltName
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x0e], // proxyCertInfo
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x07], // sbgp-ipAddrBlock
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x08], // sbgp-autonomousSysNum
];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// keyUsage's keyCertSign, as OpenSSL numbers it.
const KEY_CERT_SIGN: u16 = 0x0004;
/// nsCertType's sslCA.
const NS_SSL_CA: u16 = 0x04;
const NS_ANY_CA: u16 = 0x07;

/// The extensions that decide what a certificate may be trusted for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extensions {
    /// basicConstraints' cA, when the extension is there.
    pub ca: Option<bool>,
    /// basicConstraints' pathLenConstraint (saturated at u64::MAX).
    pub path_len: Option<u64>,
    /// keyUsage's bits, when the extension is there.
    pub key_usage: Option<u16>,
    /// extendedKeyUsage: whether it names clientAuth, when it is there.
    pub client_auth: Option<bool>,
    /// nsCertType's bits, when the extension is there.
    pub netscape_type: Option<u16>,
    /// The first critical extension OpenSSL would not handle (its OID contents).
    pub unhandled_critical: Option<Vec<u8>>,
    /// subjectKeyIdentifier.
    pub key_id: Option<Vec<u8>>,
    /// authorityKeyIdentifier's keyIdentifier and authorityCertSerialNumber.
    pub authority_key_id: Option<Vec<u8>>,
    pub authority_serial: Option<Vec<u8>>,
}

fn extensions(data: &[u8]) -> Option<Extensions> {
    let mut found = Extensions::default();
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut list = only(data, SEQUENCE)?;
    if list.is_empty() {
        return None; // SEQUENCE SIZE (1..MAX)
    }
    while !list.is_empty() {
        let extension = expect(list, SEQUENCE)?;
        list = extension.rest;
        let id = expect(extension.contents, OID)?;
        let mut rest = id.rest;
        let mut critical = false;
        if let Some(flag) = expect(rest, BOOLEAN) {
            critical = match flag.contents {
                [0xff] => true,
                [0x00] => false,
                _ => return None,
            };
            rest = flag.rest;
        }
        let value = only(rest, OCTET_STRING)?;
        // a repeated extension makes OpenSSL call the certificate invalid
        if seen.contains(&id.contents) {
            return None;
        }
        seen.push(id.contents);
        match id.contents {
            BASIC_CONSTRAINTS => {
                let mut fields = only(value, SEQUENCE)?;
                let mut ca = false;
                if let Some(flag) = expect(fields, BOOLEAN) {
                    ca = match flag.contents {
                        [0xff] => true,
                        [0x00] => false,
                        _ => return None,
                    };
                    fields = flag.rest;
                }
                if !fields.is_empty() {
                    let path_len = only(fields, INTEGER)?;
                    // a negative pathLenConstraint is invalid to OpenSSL
                    if path_len.first().is_none_or(|byte| byte & 0x80 != 0) {
                        return None;
                    }
                    found.path_len = Some(path_len.iter().fold(0u64, |n, byte| {
                        n.saturating_mul(256).saturating_add(u64::from(*byte))
                    }));
                }
                found.ca = Some(ca);
            }
            KEY_USAGE => {
                let bits = named_bits(only(value, BIT_STRING)?)?;
                // RFC 5280: at least one bit; OpenSSL calls an empty one invalid
                if bits == 0 {
                    return None;
                }
                found.key_usage = Some(bits);
            }
            EXT_KEY_USAGE => {
                let mut purposes = only(value, SEQUENCE)?;
                let mut client_auth = false;
                while !purposes.is_empty() {
                    let purpose = expect(purposes, OID)?;
                    client_auth |= purpose.contents == CLIENT_AUTH;
                    purposes = purpose.rest;
                }
                found.client_auth = Some(client_auth);
            }
            NETSCAPE_CERT_TYPE => {
                found.netscape_type = Some(named_bits(only(value, BIT_STRING)?)? & 0xff);
            }
            SUBJECT_KEY_ID => found.key_id = Some(only(value, OCTET_STRING)?.to_vec()),
            AUTHORITY_KEY_ID => {
                let mut fields = only(value, SEQUENCE)?;
                if let Some(key_id) = expect(fields, 0x80) {
                    found.authority_key_id = Some(key_id.contents.to_vec());
                    fields = key_id.rest;
                }
                if let Some(issuer) = expect(fields, 0xa1) {
                    fields = issuer.rest;
                }
                if let Some(serial) = expect(fields, 0x82) {
                    found.authority_serial = Some(serial.contents.to_vec());
                    fields = serial.rest;
                }
                if !fields.is_empty() {
                    return None;
                }
            }
            _ => {}
        }
        if critical
            && found.unhandled_critical.is_none()
            && !HANDLED_WHEN_CRITICAL.contains(&id.contents)
        {
            found.unhandled_critical = Some(id.contents.to_vec());
        }
    }
    Some(found)
}

/// A certificate, read strictly.
#[derive(Clone)]
pub struct Certificate<'a> {
    /// 0 for v1, 1 for v2, 2 for v3, as encoded.
    pub version: u8,
    serial: &'a [u8],
    tbs: &'a [u8],
    /// The outer signatureAlgorithm's contents.
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    /// The issuer Name, the whole item.
    issuer: &'a [u8],
    /// Validity in Unix seconds (negative before 1970).
    pub not_before: i64,
    pub not_after: i64,
    /// The subject Name, the whole item.
    subject: &'a [u8],
    subject_contents: &'a [u8],
    /// The public key's AlgorithmIdentifier contents.
    key_algorithm: &'a [u8],
    /// The public key itself (the BIT STRING without its unused-bits byte).
    key: &'a [u8],
    pub extensions: Extensions,
}

/// Why a DER certificate could not be read (for messages about files).
pub const UNREADABLE: &str = "not a well-formed DER X.509 certificate";

impl<'a> Certificate<'a> {
    /// `None` unless `der` is exactly one well-formed certificate.
    pub fn parse(der: &'a [u8]) -> Option<Certificate<'a>> {
        let cert = only(der, SEQUENCE)?;
        let tbs = expect(cert, SEQUENCE)?;
        let outer_algorithm = expect(tbs.rest, SEQUENCE)?;
        let signature = whole_bytes(only(outer_algorithm.rest, BIT_STRING)?)?;

        let mut rest = tbs.contents;
        let mut version = 0;
        if let Some(explicit) = expect(rest, 0xa0) {
            match only(explicit.contents, INTEGER)? {
                // DER leaves a v1's version out: an explicit 0 is not DER
                [1] => version = 1,
                [2] => version = 2,
                _ => return None,
            }
            rest = explicit.rest;
        }
        let serial = expect(rest, INTEGER)?;
        if serial.contents.is_empty() {
            return None;
        }
        let inner_algorithm = expect(serial.rest, SEQUENCE)?;
        // the algorithm signed over must be the one the signature claims
        if inner_algorithm.whole != outer_algorithm.whole {
            return None;
        }
        let issuer = expect(inner_algorithm.rest, SEQUENCE)?;
        let validity = expect(issuer.rest, SEQUENCE)?;
        let before = item(validity.contents)?;
        let after = item(before.rest)?;
        if !after.rest.is_empty() {
            return None;
        }
        let not_before = der_time(before.tag, before.contents)?;
        let not_after = der_time(after.tag, after.contents)?;
        let subject = expect(validity.rest, SEQUENCE)?;
        let spki = expect(subject.rest, SEQUENCE)?;
        let key_algorithm = expect(spki.contents, SEQUENCE)?;
        let key = whole_bytes(only(key_algorithm.rest, BIT_STRING)?)?;

        // issuerUniqueID [1], subjectUniqueID [2] (v2 and v3), extensions [3] (v3)
        let mut rest = spki.rest;
        for unique_id in [0x81, 0x82] {
            if let Some(id) = expect(rest, unique_id) {
                if version == 0 {
                    return None;
                }
                rest = id.rest;
            }
        }
        let mut found = Extensions::default();
        if let Some(explicit) = expect(rest, 0xa3) {
            if version != 2 {
                return None;
            }
            found = extensions(explicit.contents)?;
            rest = explicit.rest;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Certificate {
            version,
            serial: serial.contents,
            tbs: tbs.whole,
            signature_algorithm: outer_algorithm.contents,
            signature,
            issuer: issuer.whole,
            not_before,
            not_after,
            subject: subject.whole,
            subject_contents: subject.contents,
            key_algorithm: key_algorithm.contents,
            key,
            extensions: found,
        })
    }

    /// The subject Name's contents (as webpki keeps a trust anchor's).
    pub fn subject_contents(&self) -> &'a [u8] {
        self.subject_contents
    }

    /// The subject as `CN=alice`, for messages.
    pub fn subject_cn(&self) -> Option<String> {
        let mut names = self.subject_contents;
        while !names.is_empty() {
            let set = expect(names, SET)?;
            names = set.rest;
            let mut pairs = set.contents;
            while !pairs.is_empty() {
                let pair = expect(pairs, SEQUENCE)?;
                pairs = pair.rest;
                let oid = expect(pair.contents, OID)?;
                let value = item(oid.rest)?;
                if oid.contents == COMMON_NAME {
                    return Some(format!("CN={}", String::from_utf8_lossy(value.contents)));
                }
            }
        }
        None
    }

    /// Subject and issuer are one name, its authority key identifier (if
    /// any) points at itself, and the signature's algorithm fits the key:
    /// what OpenSSL calls self-signed (EXFLAG_SS), without checking the
    /// signature. OpenSSL trusts a chain only when it ends at such a
    /// certificate of the bundle.
    pub fn self_signed(&self) -> bool {
        let ext = &self.extensions;
        let key_id_fits = match (&ext.authority_key_id, &ext.key_id) {
            (Some(authority), Some(own)) => authority == own,
            _ => true,
        };
        let serial_fits = ext
            .authority_serial
            .as_ref()
            .is_none_or(|serial| serial.as_slice() == self.serial);
        self.subject == self.issuer
            && key_id_fits
            && serial_fits
            && signature_fits_key(oid_of(self.signature_algorithm), oid_of(self.key_algorithm))
    }

    /// What a signature check needs: the signed bytes (the
    /// TBSCertificate), the signature algorithm's contents and the
    /// signature itself.
    pub fn signed(&self) -> (&'a [u8], &'a [u8], &'a [u8]) {
        (self.tbs, self.signature_algorithm, self.signature)
    }

    /// The public key's AlgorithmIdentifier contents, and the key.
    pub fn public_key(&self) -> (&'a [u8], &'a [u8]) {
        (self.key_algorithm, self.key)
    }

    /// Why OpenSSL would never let this certificate, as a trusted root,
    /// vouch for a TLS client; `None` if it may. These are `check_ca`
    /// (crypto/x509/v3_purp.c) and the ssl_client purpose applied with a
    /// CA required, and the unhandled-critical-extension check
    /// `X509_verify_cert` makes of every certificate of a chain.
    pub fn anchor_refusal(&self) -> Option<String> {
        let ext = &self.extensions;
        let mut why: Vec<String> = Vec::new();
        if let Some(oid) = &ext.unhandled_critical {
            why.push(format!(
                "it has a critical extension ({}) that is not understood",
                dotted(oid)
            ));
        }
        // the ssl_client purpose: extendedKeyUsage, if there, must allow clientAuth
        if ext.client_auth == Some(false) {
            why.push("its extendedKeyUsage does not include clientAuth".into());
        }
        if ext.key_usage.is_some_and(|bits| bits & KEY_CERT_SIGN == 0) {
            why.push("its keyUsage does not include keyCertSign".into());
        }
        match ext.ca {
            // below a root, OpenSSL wants exactly this (strict for intermediates)
            Some(true) => {}
            Some(false) => why.push("its basicConstraints say CA:FALSE".into()),
            None if self.version != 0 && !self.self_signed() => why.push(
                "it is not self-signed, and a CA below a root needs basicConstraints CA:TRUE"
                    .into(),
            ),
            None if self.version == 0 => {
                if !self.self_signed() {
                    why.push("it is a v1 certificate but not self-signed".into());
                }
            }
            None if ext.key_usage.is_some() => {}
            // legacy Netscape CA types; for TLS, sslCA is the one that counts
            None => match ext.netscape_type {
                Some(bits) if bits & NS_ANY_CA != 0 && bits & NS_SSL_CA != 0 => {}
                _ => why.push(
                    "it has neither basicConstraints CA:TRUE nor keyUsage keyCertSign, \
                     and is not a self-signed v1 certificate"
                        .into(),
                ),
            },
        }
        (!why.is_empty()).then(|| why.join(", and "))
    }

    /// The issuer Name as encoded (to compare with a subject).
    pub fn issuer(&self) -> &'a [u8] {
        self.issuer
    }

    /// The issuer Name's contents.
    pub fn issuer_contents(&self) -> &'a [u8] {
        item(self.issuer).map_or(&[], |name| name.contents)
    }

    /// Valid at `now` (Unix seconds), as OpenSSL checks: both ends inclusive.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// What an issuer needs of this certificate to check what it signed.
    pub fn issuer_key(&self) -> IssuerKey {
        IssuerKey {
            subject: self.subject.to_vec(),
            key_algorithm: self.key_algorithm.to_vec(),
            key: self.key.to_vec(),
        }
    }

    /// A summary of everything read, to compare two readings of one input.
    pub fn describe(&self) -> String {
        format!(
            "v{} subject={:?} not_before={} not_after={} extensions={:?}",
            u16::from(self.version) + 1,
            self.subject_cn(),
            self.not_before,
            self.not_after,
            self.extensions
        )
    }
}

/// The contents of the OID that starts an AlgorithmIdentifier's contents.
fn oid_of(algorithm: &[u8]) -> &[u8] {
    expect(algorithm, OID).map_or(&[], |oid| oid.contents)
}

/// OpenSSL's `check_sig_alg_match`, for the key types rustls can verify.
fn signature_fits_key(signature: &[u8], key: &[u8]) -> bool {
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SIGNATURE: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    const EC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const ED448: &[u8] = &[0x2b, 0x65, 0x71];
    let rsa_key = key.len() == PKCS1.len() + 1
        && key.starts_with(PKCS1)
        && matches!(key[PKCS1.len()], 0x01 | 0x0a);
    if signature.starts_with(PKCS1) && signature.len() == PKCS1.len() + 1 {
        rsa_key
    } else if signature.starts_with(ECDSA_SIGNATURE) {
        key == EC_KEY
    } else {
        (signature == ED25519 || signature == ED448) && signature == key
    }
}

/// An OID's contents in dotted decimal, for messages.
fn dotted(oid: &[u8]) -> String {
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

/// The subject of a DER certificate as `CN=alice`, for log lines.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    Certificate::parse(der)?.subject_cn()
}

/// A trust anchor as v1 verification needs it.
#[derive(Debug, Clone)]
pub struct IssuerKey {
    subject: Vec<u8>,
    key_algorithm: Vec<u8>,
    key: Vec<u8>,
}

impl IssuerKey {
    /// The subject Name as encoded.
    pub fn subject(&self) -> &[u8] {
        &self.subject
    }

    /// The public key's AlgorithmIdentifier contents, and the key.
    pub fn public_key(&self) -> (&[u8], &[u8]) {
        (&self.key_algorithm, &self.key)
    }
}

/// A certificate without a version field: X.509 v1.
pub struct V1Certificate<'a> {
    parsed: Certificate<'a>,
}

impl<'a> V1Certificate<'a> {
    /// `None` if `der` is not a readable v1 certificate (v3 ones are webpki's).
    pub fn parse(der: &'a [u8]) -> Option<V1Certificate<'a>> {
        let parsed = Certificate::parse(der)?;
        (parsed.version == 0).then_some(V1Certificate { parsed })
    }

    /// The certificate as read.
    pub fn certificate(&self) -> &Certificate<'a> {
        &self.parsed
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix
/// seconds; only the forms RFC 5280 allows, and only real dates.
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
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

/// The fuzz target `x509_parse`'s property: reading never panics, and what
/// reads, reads the same again, through every accessor, and agrees with
/// itself (a v1 never has extensions; validity is an ordered pair of real
/// times or the certificate does not read).
pub fn fuzz_parse(data: &[u8]) {
    let Some(cert) = Certificate::parse(data) else {
        assert!(V1Certificate::parse(data).is_none());
        assert!(subject_cn(data).is_none());
        return;
    };
    let again = Certificate::parse(data).expect("a certificate that read once reads again");
    assert_eq!(cert.describe(), again.describe());
    assert_eq!(cert.tbs, again.tbs);
    assert_eq!(cert.anchor_refusal(), again.anchor_refusal());
    assert_eq!(subject_cn(data), cert.subject_cn());
    assert!(cert.version <= 2);
    if cert.version != 2 {
        assert_eq!(cert.extensions, Extensions::default());
    }
    assert_eq!(V1Certificate::parse(data).is_some(), cert.version == 0);
    // the signed part is a whole item inside the input, and the input is all used
    assert!(data.windows(cert.tbs.len()).any(|w| w == cert.tbs));
    assert!(item(data).is_some_and(|whole| whole.rest.is_empty()));
    // one byte more or one less never reads
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(Certificate::parse(&longer).is_none());
    assert!(Certificate::parse(&data[..data.len() - 1]).is_none());
    let _ = cert.valid_at(0);
    let _ = cert.issuer_key();
}

#[cfg(test)]
mod tests {
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
        assert!(
            Certificate::parse(&v3(&[basic_constraints(true), basic_constraints(true)])).is_none()
        );
        assert!(Certificate::parse(&v3(&[])).is_none());
        assert!(
            Certificate::parse(&v3(&[extension(KEY_USAGE, true, &tlv(BIT_STRING, &[0]))]))
                .is_none()
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
        assert!(
            refusal(&v3(&[basic_constraints(false)])).is_some_and(|why| why.contains("CA:FALSE"))
        );
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
        let authority =
            |id: u8| extension(AUTHORITY_KEY_ID, false, &tlv(SEQUENCE, &tlv(0x80, &[id])));
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
        let eku =
            |purpose: &[u8]| extension(EXT_KEY_USAGE, false, &tlv(SEQUENCE, &tlv(OID, purpose)));
        const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
        assert!(refusal(&v3(&[basic_constraints(true), eku(SERVER_AUTH)]))
            .is_some_and(|why| why.contains("clientAuth")));
        assert_eq!(
            refusal(&v3(&[basic_constraints(true), eku(CLIENT_AUTH)])),
            None
        );
        // a critical extension OpenSSL does not understand
        let odd = extension(&[0x2a, 0x03, 0x04], true, &tlv(0x05, &[]));
        assert!(refusal(&v3(&[basic_constraints(true), odd]))
            .is_some_and(|why| why.contains("1.2.3.4")));
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
}
