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

mod der;
mod peercert;
#[cfg(test)]
mod tests;

pub use peercert::{peer_cert, AltName, Name, PeerCert};

use der::*;

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
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

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
    /// subjectAltName's GeneralNames, the SEQUENCE's contents.
    pub subject_alt_name: Option<Vec<u8>>,
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
            SUBJECT_ALT_NAME => found.subject_alt_name = Some(only(value, SEQUENCE)?.to_vec()),
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

/// The fuzz target `x509_parse`'s property: reading never panics, and what
/// reads, reads the same again, through every accessor, and agrees with
/// itself (a v1 never has extensions; validity is an ordered pair of real
/// times or the certificate does not read).
pub fn fuzz_parse(data: &[u8]) {
    let Some(cert) = Certificate::parse(data) else {
        assert!(V1Certificate::parse(data).is_none());
        assert!(subject_cn(data).is_none());
        assert!(peer_cert(data).is_none());
        return;
    };
    // what getpeercert() would show: read alike twice, of the same version
    if let Some(shown) = peer_cert(data) {
        assert_eq!(shown.version, cert.version + 1);
        assert_eq!(peer_cert(data), Some(shown));
    }
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
