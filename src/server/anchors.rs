//! The CA bundle (`--ssl-cafile`) as trust anchors, meaning what it means to
//! OpenSSL and so to Python's rpyc server on the same file.
//!
//! webpki takes every certificate it is given as a root, whatever the
//! certificate says of itself, and never looks at a root's validity. So the
//! bundle is judged here: an entry OpenSSL would never accept as the root of
//! a client's chain (a leaf, a CA whose keyUsage forbids signing
//! certificates, ...; see [`x509::Certificate::anchor_refusal`]) stops the
//! daemon at start, named by its place in the file and its subject, and so
//! does a CA that leads to no self-signed root in the bundle (OpenSSL, by
//! default, trusts no chain that does not end at one). At each handshake
//! only the anchors valid at that moment vouch for a client, a CA below a
//! root only while its whole chain to the root is valid, as OpenSSL checks
//! the validity of every certificate of a chain, the root included.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};

use super::tls::TlsError;
use super::x509;
use crate::sync::lock;

struct Anchor {
    der: CertificateDer<'static>,
    key: x509::IssuerKey,
    not_before: i64,
    not_after: i64,
}

impl Anchor {
    fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Which anchors a verifier holds, and the verifier (`None` when none is held).
type Verifying = (Vec<bool>, Option<Arc<dyn ClientCertVerifier>>);

/// The anchors of one bundle, and webpki verifiers over the ones valid now.
pub struct Anchors {
    anchors: Vec<Anchor>,
    provider: Arc<CryptoProvider>,
    /// The verifier of the last handshake, rebuilt only when the set of
    /// anchors valid at a handshake changes.
    current: Mutex<Verifying>,
    /// Over every anchor, for the CA names sent to clients.
    all: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for Anchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchors")
            .field("count", &self.anchors.len())
            .finish()
    }
}

fn verifier(
    anchors: &[Anchor],
    take: &[bool],
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let mut roots = RootCertStore::empty();
    for (anchor, _) in anchors.iter().zip(take).filter(|(_, take)| **take) {
        roots.add(anchor.der.clone()).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Ok(None);
    }
    // as rpyc: with a CA given, a client certificate is required
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

fn not_a_ca(
    path: &Path,
    position: usize,
    cert: &x509::Certificate<'_>,
    reason: String,
) -> TlsError {
    TlsError::NotACa {
        path: path.to_owned(),
        position,
        subject: cert
            .subject_cn()
            .unwrap_or_else(|| "without a common name".into()),
        reason,
    }
}

/// When entry `start` of the bundle may vouch for clients: a self-signed
/// root, over its own validity; a CA below one, only while every
/// certificate from it up to the root is valid, as OpenSSL checks the whole
/// chain up to the root. `None` if no chain of signatures within the bundle
/// leads from it to a self-signed root.
fn validity_to_root(
    bundle: &[x509::Certificate<'_>],
    start: usize,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Option<(i64, i64)> {
    // depth-first over issuers, each entry at most once on a path: a
    // bundle of n certificates has no chain longer than n
    fn walk(
        bundle: &[x509::Certificate<'_>],
        at: usize,
        on_path: &mut Vec<usize>,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Option<(i64, i64)> {
        let cert = &bundle[at];
        let own = (cert.not_before, cert.not_after);
        if cert.self_signed() {
            return Some(own);
        }
        on_path.push(at);
        let issuers: Vec<usize> = (0..bundle.len())
            .filter(|issuer| !on_path.contains(issuer))
            .filter(|&issuer| cert.signed_by(&bundle[issuer].issuer_key(), algorithms))
            .collect();
        let found = issuers
            .into_iter()
            .find_map(|issuer| walk(bundle, issuer, on_path, algorithms));
        on_path.pop();
        found.map(|(before, after)| (before.max(own.0), after.min(own.1)))
    }
    walk(bundle, start, &mut Vec::new(), algorithms)
}

fn seconds(now: UnixTime) -> i64 {
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

impl Anchors {
    /// Every certificate of `path` (already read from it, in order), each
    /// one a CA that may vouch for TLS clients, or an error naming the first
    /// that is not.
    pub fn from_bundle(
        path: &Path,
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Anchors, TlsError> {
        let mut parsed = Vec::with_capacity(certs.len());
        for (index, der) in certs.iter().enumerate() {
            let position = index + 1;
            let Some(cert) = x509::Certificate::parse(der) else {
                return Err(TlsError::BadCa {
                    path: path.to_owned(),
                    reason: format!("certificate {position}: {}", x509::UNREADABLE),
                });
            };
            if let Some(reason) = cert.anchor_refusal() {
                return Err(not_a_ca(path, position, &cert, reason));
            }
            parsed.push(cert);
        }
        let algorithms = &provider.signature_verification_algorithms;
        let mut anchors = Vec::with_capacity(certs.len());
        for (index, cert) in parsed.iter().enumerate() {
            let Some((not_before, not_after)) = validity_to_root(&parsed, index, algorithms) else {
                let reason = "it is not self-signed and does not lead to a self-signed root \
                              in the bundle (OpenSSL trusts a chain only when it ends at one); \
                              add its root CA"
                    .to_string();
                return Err(not_a_ca(path, index + 1, cert, reason));
            };
            anchors.push(Anchor {
                der: certs[index].clone(),
                key: cert.issuer_key(),
                not_before,
                not_after,
            });
        }
        let bad = |reason: String| TlsError::BadCa {
            path: path.to_owned(),
            reason,
        };
        let everyone = vec![true; anchors.len()];
        let all = verifier(&anchors, &everyone, &provider)
            .map_err(bad)?
            .ok_or_else(|| bad("holds no certificate".into()))?;
        let now = seconds(UnixTime::now());
        let valid: Vec<bool> = anchors.iter().map(|a| a.valid_at(now)).collect();
        let current = verifier(&anchors, &valid, &provider).map_err(bad)?;
        Ok(Anchors {
            anchors,
            provider,
            current: Mutex::new((valid, current)),
            all,
        })
    }

    /// The verifier over every anchor: what the server names to clients.
    pub fn all(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.all
    }

    /// The verifier over the anchors valid at `now`; `None` when none is.
    pub fn verifier_at(&self, now: UnixTime) -> Option<Arc<dyn ClientCertVerifier>> {
        let now = seconds(now);
        let valid: Vec<bool> = self.anchors.iter().map(|a| a.valid_at(now)).collect();
        let mut current = lock(&self.current);
        if current.0 != valid {
            // the same certificates built a verifier at start: this cannot fail
            let rebuilt = verifier(&self.anchors, &valid, &self.provider)
                .ok()
                .flatten();
            *current = (valid, rebuilt);
        }
        current.1.clone()
    }

    /// The keys of the anchors valid at `now`, for v1 client certificates.
    pub fn issuers_at(&self, now: UnixTime) -> Vec<&x509::IssuerKey> {
        let now = seconds(now);
        self.anchors
            .iter()
            .filter(|a| a.valid_at(now))
            .map(|a| &a.key)
            .collect()
    }

    /// Why a client whose certificate names `issuer` cannot be vouched for
    /// at `now`, when it is the anchor's own validity: OpenSSL's
    /// CERTIFICATE_EXPIRED / CERTIFICATE_NOT_YET_VALID, sent as the same alerts.
    pub fn lapsed_issuer(&self, issuer: &[u8], now: UnixTime) -> Option<CertificateError> {
        let now = seconds(now);
        let mut lapsed = self
            .anchors
            .iter()
            .filter(|a| a.key.subject() == issuer && !a.valid_at(now));
        lapsed.next().map(|a| {
            if now > a.not_after {
                CertificateError::Expired
            } else {
                CertificateError::NotValidYet
            }
        })
    }

    pub fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}
