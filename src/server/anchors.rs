//! The CA bundle (`--ssl-cafile`) as trust anchors, meaning what it means to
//! OpenSSL and so to Python's rpyc server on the same file.
//!
//! webpki takes every certificate it is given as a root, whatever the
//! certificate says of itself, never looks at a root's validity, and keeps
//! no pathLenConstraint with one. So the bundle is judged here: an entry
//! OpenSSL would never accept in a client's chain (a leaf, a CA whose
//! keyUsage forbids signing certificates, ...; see
//! [`x509::Certificate::anchor_refusal`]) stops the daemon at start, named by
//! its place in the file and its subject, and so does a CA that leads to no
//! self-signed root in the bundle (OpenSSL, by default, trusts no chain that
//! does not end at one). Only the self-signed roots are webpki's anchors, and
//! only those valid at the handshake; the bundle's other CAs are offered to
//! webpki as intermediates, which it checks as such; a root's
//! pathLenConstraint is applied to the path webpki built. v1 client
//! certificates, which webpki cannot read, are checked against the bundle's
//! CAs here, each valid only while its whole chain to the root is.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};

use super::signatures::signed_by;
use super::tls::TlsError;
use crate::protocol::x509;
use crate::sync::lock;

struct Anchor {
    der: CertificateDer<'static>,
    key: x509::IssuerKey,
    /// The subject Name's contents, as webpki names the anchor of a path.
    subject: Vec<u8>,
    /// A self-signed root: webpki's trust anchors are these only; the
    /// other CAs of the bundle are offered to it as intermediates.
    root: bool,
    /// A root's pathLenConstraint, which webpki does not keep with an anchor.
    path_len: Option<u64>,
    /// Whether the pathLenConstraints above allow it to sign a client directly.
    issues_v1: bool,
    /// When it may vouch: a CA below a root only while the whole chain is valid.
    not_before: i64,
    not_after: i64,
}

impl Anchor {
    fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// A verifier over some roots, and those roots for path checks of our own.
#[derive(Clone)]
pub struct Verifier {
    pub webpki: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
}

/// Which anchors a verifier holds, and the verifier (`None` when none is held).
type Verifying = (Vec<bool>, Option<Verifier>);

/// The anchors of one bundle, and webpki verifiers over the ones valid now.
pub struct Anchors {
    anchors: Vec<Anchor>,
    provider: Arc<CryptoProvider>,
    /// The verifier of the last handshake, rebuilt only when the set of
    /// anchors valid at a handshake changes.
    current: Mutex<Verifying>,
    /// Over every root, for the CA names sent to clients.
    all: Arc<dyn ClientCertVerifier>,
    /// The CAs of the bundle that are not roots.
    intermediates: Vec<CertificateDer<'static>>,
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
) -> Result<Option<Verifier>, String> {
    let mut roots = RootCertStore::empty();
    for (anchor, _) in anchors
        .iter()
        .zip(take)
        .filter(|(a, take)| **take && a.root)
    {
        roots.add(anchor.der.clone()).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Ok(None);
    }
    let roots = Arc::new(roots);
    // as rpyc: with a CA given, a client certificate is required
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map(|webpki| Some(Verifier { webpki, roots }))
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

/// The chain of signatures within the bundle from entry `start` up to a
/// self-signed root (`start` first, the root last); `None` if there is none.
fn chain_to_root(
    bundle: &[x509::Certificate<'_>],
    start: usize,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Option<Vec<usize>> {
    // depth-first over issuers, each entry at most once on a path: a
    // bundle of n certificates has no chain longer than n
    fn walk(
        bundle: &[x509::Certificate<'_>],
        on_path: &mut Vec<usize>,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> bool {
        let Some(&at) = on_path.last() else {
            return false;
        };
        let cert = &bundle[at];
        if cert.self_signed() {
            return true;
        }
        let issuers: Vec<usize> = (0..bundle.len())
            .filter(|issuer| !on_path.contains(issuer))
            .filter(|&issuer| signed_by(cert, &bundle[issuer].issuer_key(), algorithms))
            .collect();
        for issuer in issuers {
            on_path.push(issuer);
            if walk(bundle, on_path, algorithms) {
                return true;
            }
            on_path.pop();
        }
        false
    }
    let mut chain = vec![start];
    walk(bundle, &mut chain, algorithms).then_some(chain)
}

/// When a CA vouches for clients through `chain`: while every certificate
/// on it is valid, as OpenSSL checks the whole chain up to the root.
fn validity_of(bundle: &[x509::Certificate<'_>], chain: &[usize]) -> (i64, i64) {
    chain
        .iter()
        .fold((i64::MIN, i64::MAX), |(before, after), &at| {
            (
                before.max(bundle[at].not_before),
                after.min(bundle[at].not_after),
            )
        })
}

/// Whether a v1 client certificate signed by `chain[0]` respects every
/// pathLenConstraint above it (a v3 one has webpki and
/// [`Anchors::check_root_path_len`] for that): the CA at position k has k
/// CAs below it, the self-issued ones not counted, as OpenSSL counts.
fn path_lens_allow(bundle: &[x509::Certificate<'_>], chain: &[usize]) -> bool {
    let mut below: u64 = 0;
    for &at in chain {
        let cert = &bundle[at];
        if cert.extensions.path_len.is_some_and(|limit| below > limit) {
            return false;
        }
        if cert.subject_contents() != cert.issuer_contents() {
            below += 1;
        }
    }
    true
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
            let Some(chain) = chain_to_root(&parsed, index, algorithms) else {
                let reason = "it is not self-signed and does not lead to a self-signed root \
                              in the bundle (OpenSSL trusts a chain only when it ends at one); \
                              add its root CA"
                    .to_string();
                return Err(not_a_ca(path, index + 1, cert, reason));
            };
            let (not_before, not_after) = validity_of(&parsed, &chain);
            anchors.push(Anchor {
                der: certs[index].clone(),
                key: cert.issuer_key(),
                subject: cert.subject_contents().to_vec(),
                root: cert.self_signed(),
                path_len: cert.extensions.path_len,
                issues_v1: path_lens_allow(&parsed, &chain),
                not_before,
                not_after,
            });
        }
        let intermediates = anchors
            .iter()
            .filter(|a| !a.root)
            .map(|a| a.der.clone())
            .collect();
        let bad = |reason: String| TlsError::BadCa {
            path: path.to_owned(),
            reason,
        };
        let everyone = vec![true; anchors.len()];
        let all = verifier(&anchors, &everyone, &provider)
            .map_err(bad)?
            .ok_or_else(|| bad("holds no certificate".into()))?
            .webpki;
        let now = seconds(UnixTime::now());
        let valid: Vec<bool> = anchors.iter().map(|a| a.valid_at(now)).collect();
        let current = verifier(&anchors, &valid, &provider).map_err(bad)?;
        Ok(Anchors {
            anchors,
            provider,
            current: Mutex::new((valid, current)),
            all,
            intermediates,
        })
    }

    /// The verifier over every anchor: what the server names to clients.
    pub fn all(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.all
    }

    /// The verifier over the roots valid at `now`; `None` when none is.
    pub fn verifier_at(&self, now: UnixTime) -> Option<Verifier> {
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
            .filter(|a| a.valid_at(now) && a.issues_v1)
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

    /// The client's intermediates, then the bundle's own CAs below its roots.
    pub fn with_intermediates<'a>(
        &'a self,
        client: &[CertificateDer<'a>],
    ) -> Vec<CertificateDer<'a>> {
        client
            .iter()
            .cloned()
            .chain(self.intermediates.iter().cloned())
            .collect()
    }

    /// What webpki leaves out of a path it accepted: the pathLenConstraint
    /// of the root, which OpenSSL applies to the CAs below it (counting those
    /// not self-issued). A path is looked for again, this time with the
    /// check, only when some root carries such a constraint.
    pub fn check_root_path_len(
        &self,
        verifier: &Verifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if !self.anchors.iter().any(|a| a.root && a.path_len.is_some()) {
            return Ok(());
        }
        let limit_of = |subject: &[u8]| {
            self.anchors
                .iter()
                .find(|a| a.root && a.subject == subject)
                .and_then(|a| a.path_len)
        };
        let within = |path: &webpki::VerifiedPath<'_>| {
            let below = path
                .intermediate_certificates()
                .filter(|cert| cert.subject() != cert.issuer())
                .count();
            match limit_of(path.anchor().subject.as_ref()) {
                Some(limit) if u64::try_from(below).unwrap_or(u64::MAX) > limit => {
                    Err(webpki::Error::PathLenConstraintViolated)
                }
                _ => Ok(()),
            }
        };
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_for_usage(
            self.algorithms().all,
            &verifier.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&within),
        )
        .map(|_| ())
        .map_err(|error| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(error),
            )))
        })
    }
}
