//! TLS with rustls: the authenticator behind `--ssl-keyfile`,
//! `--ssl-certfile` and `--ssl-cafile`.
//!
//! A connection is read by one thread while others write (replies,
//! callbacks, DEL from finalizers), so the TLS session is shared: readers
//! pull ciphertext from the socket without any lock and hand it to the
//! session under a short one; writers encrypt under the session lock and
//! write the records under a separate write lock, taken first, which keeps
//! records in the order they were made. Nobody holds the session lock
//! during socket IO, so a peer that stops reading cannot block our reads.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName};
use rustls::{ServerConfig, ServerConnection};
use thiserror::Error;

use super::anchors::Anchors;
use super::signatures;
use super::transport::{Authenticated, Authenticator, ReadFd, Refusal, Transport};
use crate::protocol::x509;
use crate::sync::lock;

/// How long a client may take to complete its handshake, unless told.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM {what}", path.display())]
    NotPem { path: PathBuf, what: &'static str },
    #[error("{} does not fit {}: {reason}", key.display(), cert.display())]
    Mismatch {
        key: PathBuf,
        cert: PathBuf,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "{}: certificate {position} ({subject}) cannot be trusted to issue client \
         certificates: {reason}; remove it from the CA bundle",
        path.display()
    )]
    NotACa {
        path: PathBuf,
        position: usize,
        subject: String,
        reason: String,
    },
    #[error(
        "{} is not among the credentials in {} ($CREDENTIALS_DIRECTORY); \
         write ./{} for a file in the working directory",
        name.display(),
        directory.display(),
        name.display()
    )]
    NoCredential { name: PathBuf, directory: PathBuf },
}

/// The TLS files of the command line (`None` for the CA: no client certificates asked).
pub struct TlsFiles<'a> {
    pub key: &'a Path,
    pub cert: &'a Path,
    pub ca: Option<&'a Path>,
}

pub struct TlsAuthenticator {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
}

/// A file named on the command line; a bare name is looked up among the
/// credentials systemd passed (`LoadCredential=`) when there are any.
pub fn resolve(path: &Path) -> Result<PathBuf, TlsError> {
    resolve_in(path, std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
}

fn resolve_in(path: &Path, credentials: Option<&std::ffi::OsStr>) -> Result<PathBuf, TlsError> {
    let bare = path.components().count() == 1 && !path.starts_with(".");
    match credentials.filter(|dir| !dir.is_empty()) {
        Some(dir) if bare => {
            let credential = Path::new(dir).join(path);
            // never the working directory instead: in the units that is the
            // state directory, which the clients' code can write
            if credential.exists() {
                Ok(credential)
            } else {
                Err(TlsError::NoCredential {
                    name: path.to_owned(),
                    directory: dir.into(),
                })
            }
        }
        _ => Ok(path.to_owned()),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NotPem {
            path: path.to_owned(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

impl TlsAuthenticator {
    /// Loads and checks everything before anything is bound: each error
    /// names the file at fault.
    pub fn from_files(files: &TlsFiles<'_>) -> Result<TlsAuthenticator, TlsError> {
        let key_path = resolve(files.key)?;
        let cert_path = resolve(files.cert)?;
        let key_pem = read(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NotPem {
            path: key_path.clone(),
            what: "private key",
        })?;
        let chain = certificates(&cert_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Mismatch {
                key: key_path.clone(),
                cert: cert_path.clone(),
                reason: e.to_string(),
            })?;
        let builder = match files.ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let ca_path = resolve(ca)?;
                let anchors =
                    Anchors::from_bundle(&ca_path, certificates(&ca_path)?, provider.clone())?;
                builder.with_client_cert_verifier(Arc::new(ClientVerifier { anchors }))
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Mismatch {
                key: key_path,
                cert: cert_path,
                reason: e.to_string(),
            })?;
        Ok(TlsAuthenticator {
            config: Arc::new(config),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }
}

impl TlsAuthenticator {
    pub fn with_handshake_timeout(self, handshake_timeout: Duration) -> TlsAuthenticator {
        TlsAuthenticator {
            handshake_timeout,
            ..self
        }
    }
}

impl Authenticator for TlsAuthenticator {
    fn authenticate(&self, transport: Transport) -> Result<Authenticated, Refusal> {
        let Transport {
            mut reader,
            mut writer,
            shutdown,
            ..
        } = transport;
        let mut session = ServerConnection::new(self.config.clone())
            .map_err(|e| Refusal(format!("cannot start TLS: {e}")))?;
        let deadline = Instant::now() + self.handshake_timeout;
        if let Err(refusal) = handshake(&mut session, &mut *reader, &mut *writer, deadline) {
            shutdown(std::net::Shutdown::Both);
            return Err(refusal);
        }
        let leaf = session.peer_certificates().and_then(|chain| chain.first());
        let credentials = leaf.map(|cert| subject_of(cert.as_ref()));
        let certificate = leaf
            .and_then(|cert| x509::peer_cert(cert.as_ref()))
            .map(Box::new);
        let certificate_der = leaf.map(|cert| cert.as_ref().to_vec());
        let shared = Arc::new(Shared {
            session: Mutex::new(Session {
                tls: session,
                pending: Vec::new(),
            }),
            writer: Mutex::new(writer),
        });
        let closing = shared.clone();
        Ok(Authenticated {
            transport: Transport {
                reader: Box::new(TlsReader {
                    raw: reader,
                    shared: shared.clone(),
                    ciphertext: vec![0; 32 * 1024],
                    fed: 0,
                    got: 0,
                }),
                writer: Box::new(TlsWriter { shared }),
                shutdown: Box::new(move |how| {
                    if how != std::net::Shutdown::Read {
                        closing.close_notify();
                    }
                    shutdown(how);
                }),
                plain_socket: false,
            },
            credentials,
            certificate,
            certificate_der,
            granted: None,
        })
    }
}

fn handshake(
    session: &mut ServerConnection,
    mut reader: &mut dyn ReadFd,
    writer: &mut dyn Write,
    deadline: Instant,
) -> Result<(), Refusal> {
    let io_refusal = |what: &str, error: io::Error| Refusal(format!("{what}: {error}"));
    loop {
        while session.wants_write() {
            session
                .write_tls(writer)
                .map_err(|e| io_refusal("handshake write failed", e))?;
        }
        writer
            .flush()
            .map_err(|e| io_refusal("handshake write failed", e))?;
        if !session.is_handshaking() {
            return Ok(());
        }
        wait_readable(reader, deadline)?;
        match session.read_tls(&mut reader) {
            Ok(0) => return Err(Refusal("closed during the handshake".into())),
            Ok(_) => {}
            Err(e) => return Err(io_refusal("handshake read failed", e)),
        }
        if let Err(error) = session.process_new_packets() {
            // tell the peer why, as TLS does, before hanging up
            while session.wants_write() {
                if session.write_tls(writer).is_err() {
                    break;
                }
            }
            return Err(Refusal(format!("TLS handshake failed: {error}")));
        }
    }
}

fn wait_readable(reader: &dyn ReadFd, deadline: Instant) -> Result<(), Refusal> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refusal("handshake timed out".into()));
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(error) => return Err(Refusal(format!("handshake poll failed: {error}"))),
        }
    }
}

struct Session {
    tls: ServerConnection,
    /// Records the reading side made (alerts, key updates), waiting for a
    /// writer to send them in order with its own.
    pending: Vec<u8>,
}

struct Shared {
    session: Mutex<Session>,
    writer: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    /// Encrypts `plaintext` (may be empty) and writes it, with whatever
    /// records were pending, under the write lock.
    fn send(&self, plaintext: &[u8]) -> io::Result<()> {
        self.send_with(lock(&self.writer), plaintext)
    }

    fn send_with(
        &self,
        mut writer: MutexGuard<'_, Box<dyn Write + Send>>,
        plaintext: &[u8],
    ) -> io::Result<()> {
        // rustls takes plaintext only up to its buffer limit (64 KiB of
        // records not yet written): a larger frame goes in turns of
        // encrypting what it takes and writing that out
        let mut rest = plaintext;
        loop {
            let records = {
                let mut session = lock(&self.session);
                let Session { tls, pending } = &mut *session;
                let mut records = std::mem::take(pending);
                while !rest.is_empty() {
                    let taken = tls.writer().write(rest)?;
                    if taken == 0 {
                        break;
                    }
                    rest = &rest[taken..];
                }
                while tls.wants_write() {
                    tls.write_tls(&mut records)?;
                }
                records
            };
            if records.is_empty() && !rest.is_empty() {
                // nothing taken and nothing to write: it would never end
                return Err(io::ErrorKind::WriteZero.into());
            }
            writer.write_all(&records)?;
            if rest.is_empty() {
                return writer.flush();
            }
        }
    }

    fn close_notify(&self) {
        // best effort, and never wait for a writer that may be stuck
        if let Ok(mut writer) = self.writer.try_lock() {
            let mut records = Vec::new();
            {
                let mut session = lock(&self.session);
                session.tls.send_close_notify();
                records.append(&mut session.pending);
                while session.tls.wants_write() {
                    if session.tls.write_tls(&mut records).is_err() {
                        break;
                    }
                }
            }
            let _ = writer.write_all(&records);
        }
    }
}

struct TlsReader {
    raw: Box<dyn ReadFd>,
    shared: Arc<Shared>,
    ciphertext: Vec<u8>,
    /// `ciphertext[fed..got]` was read but not yet given to rustls, which
    /// takes more only once its plaintext has been read out.
    fed: usize,
    got: usize,
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let has_pending = {
                let mut session = lock(&self.shared.session);
                match session.tls.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    // the peer closed without close_notify: an end all the same
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(error) => return Err(error),
                }
                !session.pending.is_empty() || session.tls.wants_write()
            };
            let mut writer_busy = false;
            if has_pending {
                // only if no writer is busy: a busy one sends them itself
                match self.shared.writer.try_lock() {
                    Ok(writer) => self.shared.send_with(writer, &[])?,
                    Err(_) => writer_busy = true,
                }
            }
            if self.fed == self.got {
                let got = self.raw.read(&mut self.ciphertext)?;
                if got == 0 {
                    return Ok(0);
                }
                (self.fed, self.got) = (0, got);
            }
            // rustls holds at most 16 KiB of plaintext not yet read out: feed
            // it only while it wants more, and read the plaintext out first
            let mut session = lock(&self.shared.session);
            let Session { tls, pending } = &mut *session;
            // (when it wants none, it has plaintext, a close_notify, or
            // handshake records to send: the next turn deals with those)
            while self.fed < self.got && tls.wants_read() {
                let mut rest = &self.ciphertext[self.fed..self.got];
                let taken = tls.read_tls(&mut rest)?;
                self.fed += taken;
                let state = tls.process_new_packets();
                while tls.wants_write() {
                    tls.write_tls(pending)?;
                }
                state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if taken == 0 {
                    break;
                }
            }
            // rustls wants no ciphertext until records it holds are sent,
            // and the busy writer sends them when it is done: wait for it
            // a little rather than spin on the session lock meanwhile
            let stalled = writer_busy && self.fed < self.got && !tls.wants_read();
            drop(session);
            if stalled {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

impl AsFd for TlsReader {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.raw.as_fd()
    }
}

struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.shared.send(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn subject_of(der: &[u8]) -> String {
    x509::subject_cn(der).unwrap_or_else(|| "a certificate without a common name".into())
}

/// webpki's client verification over the anchors valid at the time, plus
/// X.509 v1 client certificates (see `x509`), which webpki refuses and
/// Python's ssl accepts.
#[derive(Debug)]
struct ClientVerifier {
    anchors: Anchors,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.anchors.all().root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = match x509::V1Certificate::parse(end_entity) {
            None => match self.anchors.verifier_at(now) {
                Some(verifier) => {
                    let intermediates = self.anchors.with_intermediates(intermediates);
                    verifier
                        .webpki
                        .verify_client_cert(end_entity, &intermediates, now)
                        .and_then(|verified| {
                            self.anchors
                                .check_root_path_len(&verifier, end_entity, &intermediates, now)
                                .map(|()| verified)
                        })
                }
                None => Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
            },
            Some(v1) => signatures::verify_v1(
                &v1,
                &self.anchors.issuers_at(now),
                self.anchors.algorithms(),
                now,
            )
            .map(|()| ClientCertVerified::assertion())
            .map_err(rustls::Error::InvalidCertificate),
        };
        // a client refused because its CA is out of date is told so, as OpenSSL does
        verified.map_err(|error| {
            x509::Certificate::parse(end_entity)
                .and_then(|cert| self.anchors.lapsed_issuer(cert.issuer(), now))
                .map_or(error, rustls::Error::InvalidCertificate)
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match x509::V1Certificate::parse(cert) {
            None => self
                .anchors
                .all()
                .verify_tls12_signature(message, cert, dss),
            Some(v1) => self.verify_v1(&v1, message, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match x509::V1Certificate::parse(cert) {
            None => self
                .anchors
                .all()
                .verify_tls13_signature(message, cert, dss),
            Some(_) if !allowed_in_tls13(dss.scheme) => Err(rustls::Error::General(
                "signature scheme not allowed in TLS 1.3".into(),
            )),
            Some(v1) => self.verify_v1(&v1, message, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.anchors.all().supported_verify_schemes()
    }
}

/// TLS 1.3 signs handshakes with PSS or ECDSA/EdDSA only (RFC 8446 4.2.3).
fn allowed_in_tls13(scheme: rustls::SignatureScheme) -> bool {
    use rustls::SignatureScheme::*;
    !matches!(
        scheme,
        RSA_PKCS1_SHA1 | ECDSA_SHA1_Legacy | RSA_PKCS1_SHA256 | RSA_PKCS1_SHA384 | RSA_PKCS1_SHA512
    )
}

impl ClientVerifier {
    fn verify_v1(
        &self,
        cert: &x509::V1Certificate<'_>,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let candidates = self
            .anchors
            .algorithms()
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map_or(&[][..], |(_, algorithms)| *algorithms);
        if signatures::v1_handshake_signed(cert, message, dss.signature(), candidates) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::General("bad handshake signature".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_found_among_credentials_and_nowhere_else() {
        let dir = std::env::temp_dir().join(format!("rpycd-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        std::fs::write(dir.join("there.key"), b"").expect("a scratch file");
        let credentials = Some(dir.as_os_str());
        let resolved = |name: &str, credentials| resolve_in(Path::new(name), credentials);
        assert_eq!(
            resolved("/etc/x.key", credentials).ok(),
            Some(PathBuf::from("/etc/x.key"))
        );
        assert_eq!(
            resolved("./x.key", credentials).ok(),
            Some(PathBuf::from("./x.key"))
        );
        assert_eq!(
            resolved("there.key", credentials).ok(),
            Some(dir.join("there.key"))
        );
        assert_eq!(resolved("x.key", None).ok(), Some(PathBuf::from("x.key")));
        let missing = resolved("x.key", credentials).expect_err("no fallback");
        let message = missing.to_string();
        assert!(
            message.contains("x.key") && message.contains(&*dir.to_string_lossy()),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
