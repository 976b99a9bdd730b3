//! Signature checks on certificates read by [`rpycd_proto::x509`], with
//! the algorithms rustls offers: a CA bundle entry's issuer, and X.509 v1
//! client certificates, which webpki does not accept (`openssl x509 -req`
//! without extensions, the recipe rpyc's own tests use, makes them; Python's
//! ssl accepts them).

use rpycd_proto::x509::{Certificate, IssuerKey, V1Certificate};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{SignatureVerificationAlgorithm, UnixTime};
use rustls::CertificateError;

/// `cert` is signed by `issuer`'s key, with one of `algorithms`.
pub fn signed_by(
    cert: &Certificate<'_>,
    issuer: &IssuerKey,
    algorithms: &WebPkiSupportedAlgorithms,
) -> bool {
    let (tbs, signature_algorithm, signature) = cert.signed();
    let (key_algorithm, key) = issuer.public_key();
    issuer.subject() == cert.issuer()
        && algorithms.all.iter().any(|alg| {
            *alg.signature_alg_id() == *signature_algorithm
                && *alg.public_key_alg_id() == *key_algorithm
                && alg.verify_signature(key, tbs, signature).is_ok()
        })
}

/// A v1 certificate signed by one of `issuers` with an algorithm of
/// `algorithms`, and valid at `now`, or why not, as webpki would say it of
/// a v3 one (and so with the alert OpenSSL sends). The signature comes
/// first: nothing else the peer wrote is believed before it is known to
/// come from a trusted issuer.
pub fn verify_v1(
    cert: &V1Certificate<'_>,
    issuers: &[&IssuerKey],
    algorithms: &WebPkiSupportedAlgorithms,
    now: UnixTime,
) -> Result<(), CertificateError> {
    let cert = cert.certificate();
    if !issuers
        .iter()
        .any(|issuer| signed_by(cert, issuer, algorithms))
    {
        return Err(CertificateError::UnknownIssuer);
    }
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < cert.not_before {
        return Err(CertificateError::NotValidYet);
    }
    if now > cert.not_after {
        return Err(CertificateError::Expired);
    }
    Ok(())
}

/// The handshake signature made with a v1 certificate's key.
pub fn v1_handshake_signed(
    cert: &V1Certificate<'_>,
    message: &[u8],
    signature: &[u8],
    candidates: &[&dyn SignatureVerificationAlgorithm],
) -> bool {
    let (key_algorithm, key) = cert.certificate().public_key();
    candidates.iter().any(|alg| {
        *alg.public_key_alg_id() == *key_algorithm
            && alg.verify_signature(key, message, signature).is_ok()
    })
}
