//! The Rust client: [`connect`] to any rpyc 6 server (Python's
//! `ThreadedServer`, `rpyc-classic`, `rpyc-serve`, a Rust service), then
//! use its root object.
//!
//! No thread serves the connection in the background: the thread waiting
//! for a reply reads, and serves whatever the server asks meanwhile (its
//! calls of our callbacks), as rpyc's own client does.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{Config, Connection};
use crate::daemon::listener::Stream;
use crate::server::transport::{into_reader, Transport};
use crate::service::rust::error::Error;
use crate::service::rust::remote::{Peer, RemoteObject};
use crate::service::rust::root::{open_session, Service, VoidService};
use crate::service::PeerInfo;

/// How long [`connect`] tries each address the name resolves to.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects over TCP (`"127.0.0.1:18861"`, `("localhost", 18861)`), offering
/// the server nothing of ours but the callbacks we pass it.
///
/// ```no_run
/// # fn main() -> Result<(), rpycd::api::Error> {
/// let root = rpycd::connect("127.0.0.1:18861")?.root()?;
/// let sum: i64 = root.callattr("add", (1, 2))?;
/// # Ok(()) }
/// ```
pub fn connect(addr: impl ToSocketAddrs) -> Result<Client, Error> {
    connect_with(addr, VoidService)
}

/// Connects over TCP, offering `service` as our root: the server's
/// `conn.root` (rpyc's `rpyc.connect(..., service=MyService)`).
pub fn connect_with<S: Service>(addr: impl ToSocketAddrs, service: S) -> Result<Client, Error> {
    let mut last = None;
    for addr in addr.to_socket_addrs().map_err(Error::Connect)? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // requests are small and latency-bound, as rpyc's are
                stream.set_nodelay(true).map_err(Error::Connect)?;
                let info = PeerInfo {
                    name: format!("[{}]:{}", addr.ip(), addr.port()),
                    credentials: None,
                    certificate: None,
                    endpoints: stream.local_addr().ok().map(|ours| (ours, addr)),
                    granted: None,
                };
                let transport = transport_of(Stream::tcp(stream))?;
                return Ok(Client::over_with(
                    into_reader(transport.reader),
                    transport.writer,
                    transport.shutdown,
                    service,
                    info,
                ));
            }
            Err(error) => last = Some(error),
        }
    }
    Err(Error::Connect(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "the name resolves to no address",
        )
    })))
}

/// Connects to a server's Unix socket.
pub fn connect_unix(path: impl AsRef<Path>) -> Result<Client, Error> {
    let stream = UnixStream::connect(path).map_err(Error::Connect)?;
    let transport = transport_of(Stream::Unix(stream))?;
    Ok(Client::over(
        into_reader(transport.reader),
        transport.writer,
        transport.shutdown,
        VoidService,
    ))
}

/// A socket's transport for a client: the reader's timeout is when a call
/// waiting for its reply looks at its deadline (sync_request_timeout, as
/// rpyc's).
fn transport_of(stream: Stream) -> Result<Transport, Error> {
    Transport::of_stream(stream, Config::default().read_timeout()).map_err(Error::Connect)
}

/// A connection to a server. Clones share it; it ends with [`Client::close`]
/// or when the client and every proxy it made are dropped.
#[derive(Clone)]
pub struct Client {
    peer: Peer,
}

impl Client {
    /// A client over any byte stream (a TLS stream, a pipe), offering `service`.
    pub fn over<S: Service>(
        reader: Box<dyn std::io::Read + Send>,
        writer: Box<dyn std::io::Write + Send>,
        shutdown: crate::connection::Shutdown,
        service: S,
    ) -> Client {
        Client::over_with(reader, writer, shutdown, service, PeerInfo::default())
    }

    fn over_with<S: Service>(
        reader: Box<dyn std::io::Read + Send>,
        writer: Box<dyn std::io::Write + Send>,
        shutdown: crate::connection::Shutdown,
        service: S,
        info: PeerInfo,
    ) -> Client {
        let conn = Connection::new(reader, writer, shutdown, Config::default());
        let (session, peer) = open_session(&conn, Arc::new(service), true, info);
        conn.set_session(session);
        Client { peer }
    }

    /// The server's service (`conn.root`).
    pub fn root(&self) -> Result<RemoteObject, Error> {
        self.peer.root()
    }

    /// PING: the server echoes what it is sent.
    pub fn ping(&self) -> Result<(), Error> {
        self.peer.ping()
    }

    /// The connection, as services see theirs.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// How many of our objects (callbacks) the server holds.
    pub fn held_by_server(&self) -> usize {
        self.peer.inner.session.object_count()
    }

    pub fn is_closed(&self) -> bool {
        self.peer.is_closed()
    }

    /// Says goodbye (CLOSE) and ends the connection.
    pub fn close(&self) {
        self.peer.close();
    }
}
