//! A connection's byte streams before the protocol sees them, and the
//! authenticators that may stand in between (the seed's "authenticators":
//! a stream goes in, an authenticated stream or a refusal comes out).

use std::io::{Read, Write};
use std::os::fd::AsFd;

use std::time::Duration;

use crate::connection::Shutdown;
use crate::daemon::listener::Stream;

/// Something to read from that can also be polled (for handshake timeouts).
pub trait ReadFd: Read + AsFd + Send {}

impl<T: Read + AsFd + Send> ReadFd for T {}

pub struct Transport {
    pub reader: Box<dyn ReadFd>,
    pub writer: Box<dyn Write + Send>,
    pub shutdown: Shutdown,
    /// Whether the bytes read and written are the socket's own, the one
    /// the reader's fd is (not TLS records, not a pipe): what can be
    /// peeked at, or handed to code that wants a socket.
    pub plain_socket: bool,
}

impl Transport {
    /// A socket's transport: reads time out at `tick` (the idle clock's
    /// tick, and when a reader waiting for a reply looks at its deadline).
    pub fn of_stream(stream: Stream, tick: Option<Duration>) -> std::io::Result<Transport> {
        let reader = stream.try_clone()?;
        reader.set_read_timeout(tick)?;
        let closer = stream.try_clone()?;
        Ok(Transport {
            reader: Box::new(reader),
            writer: Box::new(stream),
            shutdown: Box::new(move |how| {
                // the peer may be gone already: nothing to shut then
                let _ = closer.shutdown(how);
            }),
            plain_socket: true,
        })
    }
}

pub struct Authenticated {
    pub transport: Transport,
    /// Who the peer proved to be (a certificate subject), for the welcome line.
    pub credentials: Option<String>,
    /// The peer's certificate as Python's `getpeercert()` shows it.
    pub certificate: Option<Box<crate::protocol::x509::PeerCert>>,
    /// The peer's certificate as it came (DER).
    pub certificate_der: Option<Vec<u8>>,
    /// What an authenticator of the service's own kind granted, for the
    /// service to read (see [`crate::service::PeerInfo::granted`]).
    pub granted: Option<crate::service::Granted>,
}

impl Authenticated {
    /// A transport nothing has authenticated yet: where a chain of
    /// authenticators starts.
    pub fn nothing_yet(transport: Transport) -> Authenticated {
        Authenticated {
            transport,
            credentials: None,
            certificate: None,
            certificate_der: None,
            granted: None,
        }
    }
}

/// Why a connection was turned away, for the log.
#[derive(Debug)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub trait Authenticator: Send + Sync {
    fn authenticate(&self, transport: Transport) -> Result<Authenticated, Refusal>;
}

/// The reader as a plain `Read` for the connection, which needs no fd.
pub fn into_reader(reader: Box<dyn ReadFd>) -> Box<dyn Read + Send> {
    struct Plain(Box<dyn ReadFd>);
    impl Read for Plain {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    Box::new(Plain(reader))
}
