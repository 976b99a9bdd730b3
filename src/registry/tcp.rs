//! The TCP registry's connections: one request and one reply each, as
//! rpyc's TCP clients expect. rpyc's server reads each connection to the
//! end before accepting the next, so one silent client stalls everyone.
//! Here every connection waits on the poll loop with a deadline of its own,
//! up to [`MAX_CLIENTS`] at once, and is answered as soon as its request
//! is whole.
//!
//! Why not a thread per connection: rpyc's TCP client sends UNREGISTER
//! without waiting for the answer, then may query at once. Answering on the
//! loop's thread, each connection's bytes read as soon as it is accepted,
//! keeps requests in the order clients sent them, as rpyc's server does.
//!
//! One source address may hold at most [`MAX_PER_SOURCE`] of the slots, and
//! when every slot is taken a newcomer takes the oldest slot of the source
//! holding the most, if that source holds more than the newcomer's would:
//! however the slots are spread, another source gets in.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::answer::{peer_text, Registry};
use super::source::Source;
use crate::daemon::accept::{is_exhaustion, ACCEPT_PAUSE};
use crate::protocol::brine::DecodeError;
use crate::protocol::registry::{Request, RequestError, MAX_MESSAGE};

/// Connections waiting for their request at once.
pub const MAX_CLIENTS: usize = 256;
/// Of those, connections from one source: an eighth. A query is one short
/// connection, answered as soon as its bytes arrive, so even a busy host
/// (or many clients behind one address) rarely has more than a few waiting.
pub const MAX_PER_SOURCE: usize = 32;
/// How long a client has to send its whole request after connecting.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// A connection whose request is not whole yet.
struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    received: Vec<u8>,
    deadline: Instant,
}

/// The connections waiting for their request, in the order they came.
#[derive(Default)]
pub struct Clients {
    waiting: Vec<Client>,
}

impl Clients {
    /// What to poll: one descriptor per waiting connection, in order.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.waiting
            .iter()
            .map(|client| client.stream.as_fd())
            .collect()
    }

    /// When the next deadline passes.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|client| client.deadline).min()
    }

    /// Reads the connections at `ready` (indexes into [`Clients::fds`]),
    /// answers those now whole and drops those past their deadline.
    pub fn serve(&mut self, ready: &[usize], registry: &Registry) {
        let now = Instant::now();
        let waiting = std::mem::take(&mut self.waiting);
        for (index, mut client) in waiting.into_iter().enumerate() {
            let is_ready = ready.contains(&index);
            let outcome = match if is_ready { client.read() } else { Ok(None) } {
                // a client dripping bytes must not outlive its deadline either
                Ok(None) if now >= client.deadline => Err(ReadError::Silent),
                outcome => outcome,
            };
            if let Some(client) = finish(client, outcome, registry) {
                self.waiting.push(client);
            }
        }
    }

    /// Accepts what `listener` has queued and reads each connection's bytes
    /// before accepting the next, so that requests keep their order.
    pub fn accept(&mut self, listener: &TcpListener, registry: &Registry, batch: usize) {
        for _ in 0..batch {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // out of descriptors or memory, or a peer that gave up:
                    // the listener itself is fine, try again on the next
                    // wake-up (after a rest, if that try would fail alike)
                    registry.warn(peer_unknown(), format_args!("accept failed: {error}"));
                    if is_exhaustion(&error) {
                        std::thread::sleep(ACCEPT_PAUSE);
                    }
                    return;
                }
            };
            if !self.make_room(peer, registry) {
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let mut client = Client {
                stream,
                peer,
                received: Vec::new(),
                deadline: Instant::now() + REQUEST_DEADLINE,
            };
            let outcome = client.read();
            if let Some(client) = finish(client, outcome, registry) {
                self.waiting.push(client);
            }
        }
    }

    /// Whether a connection from `peer` may wait: within its source's share,
    /// and with a slot free or freed from the busiest source.
    fn make_room(&mut self, peer: SocketAddr, registry: &Registry) -> bool {
        let source = Source::from(peer.ip());
        let mut counts: HashMap<Source, usize> = HashMap::new();
        for client in &self.waiting {
            *counts.entry(Source::from(client.peer.ip())).or_default() += 1;
        }
        let held = counts.get(&source).copied().unwrap_or(0);
        if held >= MAX_PER_SOURCE {
            registry.warn(
                peer.ip(),
                format_args!(
                    "refusing {}: {held} connections from that address are already waiting",
                    peer_text(peer)
                ),
            );
            return false;
        }
        if self.waiting.len() < MAX_CLIENTS {
            return true;
        }
        // the busiest source, the lowest address among equals: a stable choice
        let busiest = counts
            .iter()
            .max_by_key(|(source, count)| (**count, std::cmp::Reverse(**source)))
            .map(|(source, count)| (*source, *count));
        match busiest {
            Some((busiest, count)) if count > held + 1 => {
                // the oldest: the one closest to its deadline anyway
                if let Some(index) = self
                    .waiting
                    .iter()
                    .position(|client| Source::from(client.peer.ip()) == busiest)
                {
                    let evicted = self.waiting.remove(index);
                    registry.warn(
                        evicted.peer.ip(),
                        format_args!(
                            "closing {}: all {MAX_CLIENTS} slots taken, {count} of them from \
                             that address, and {} waits",
                            peer_text(evicted.peer),
                            peer_text(peer)
                        ),
                    );
                }
                true
            }
            _ => {
                registry.warn(
                    peer.ip(),
                    format_args!(
                        "refusing {}: already waiting for {MAX_CLIENTS} requests",
                        peer_text(peer)
                    ),
                );
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Answers or drops a client whose read came to something; gives it back
/// if it is still waiting.
fn finish(
    mut client: Client,
    outcome: Result<Option<Request>, ReadError>,
    registry: &Registry,
) -> Option<Client> {
    let peer = client.peer;
    match outcome {
        Ok(None) => return Some(client),
        Ok(Some(request)) => {
            // rpyc's TCP client reads one recv of up to MAX_MESSAGE bytes
            // a TCP peer's address is not forged: no reply budget
            if let Some(reply) = registry.answer(request, peer, MAX_MESSAGE, usize::MAX) {
                // a fresh connection's send buffer holds far more than a
                // reply; a client that cannot take it gets nothing
                if let Err(error) = client.stream.write_all(&reply) {
                    registry
                        .log()
                        .debug(format_args!("replying to {}: {error}", peer_text(peer)));
                }
            }
        }
        Err(ReadError::Request(error)) => registry.reject(&error, peer),
        Err(ReadError::Silent) => registry.warn(
            peer.ip(),
            format_args!(
                "closing {}: no whole request within {}s ({} bytes received)",
                peer_text(peer),
                REQUEST_DEADLINE.as_secs(),
                client.received.len()
            ),
        ),
        // a port probe, or a client that gave up: nothing worth a warning
        Err(ReadError::Closed) => {}
        Err(ReadError::Io(error)) => registry
            .log()
            .debug(format_args!("reading from {}: {error}", peer_text(peer))),
    }
    None
}

fn peer_unknown() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
}

#[derive(Debug)]
enum ReadError {
    Request(RequestError),
    /// The deadline passed before a whole request came.
    Silent,
    /// End of file before any byte.
    Closed,
    Io(io::Error),
}

impl Client {
    /// Reads what has arrived: the request once it is whole (rpyc's client
    /// sends it with one `send`, but TCP may deliver it in pieces), `None`
    /// while it is not.
    fn read(&mut self) -> Result<Option<Request>, ReadError> {
        read_available(&mut self.stream, &mut self.received)
    }
}

/// Reads from a non-blocking `stream` until it would block, the bytes make
/// a whole request, the peer stops sending, or they pass [`MAX_MESSAGE`].
fn read_available(
    stream: &mut impl Read,
    received: &mut Vec<u8>,
) -> Result<Option<Request>, ReadError> {
    let mut chunk = [0u8; MAX_MESSAGE + 1];
    loop {
        let room = (MAX_MESSAGE + 1).saturating_sub(received.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) if received.is_empty() => return Err(ReadError::Closed),
            Ok(0) => {
                return Request::decode(received)
                    .map(Some)
                    .map_err(ReadError::Request)
            }
            Ok(read) => {
                received.extend_from_slice(&chunk[..read]);
                match Request::decode(received) {
                    Err(RequestError::Brine(DecodeError::Truncated { .. })) => continue,
                    decoded => return decoded.map(Some).map_err(ReadError::Request),
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Hands out its pieces one read at a time, as TCP may; `None` is a
    /// moment with nothing to read, the end of the queue is end of file.
    struct Pieces(VecDeque<Option<Vec<u8>>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                Some(Some(piece)) => {
                    let length = piece.len().min(buf.len());
                    buf[..length].copy_from_slice(&piece[..length]);
                    Ok(length)
                }
                Some(None) => Err(io::ErrorKind::WouldBlock.into()),
                None => Ok(0),
            }
        }
    }

    fn query() -> Vec<u8> {
        Request::Query {
            name: "SLAVE".into(),
        }
        .encode()
        .expect("encodes")
    }

    #[test]
    fn a_request_in_pieces_is_put_together() {
        let bytes = query();
        let (first, second) = bytes.split_at(5);
        let mut stream = Pieces(VecDeque::from([
            Some(first[..2].to_vec()),
            Some(first[2..].to_vec()),
            None,
            Some(second.to_vec()),
        ]));
        let mut received = Vec::new();
        assert!(matches!(
            read_available(&mut stream, &mut received),
            Ok(None)
        ));
        assert_eq!(received.len(), 5);
        assert!(matches!(
            read_available(&mut stream, &mut received),
            Ok(Some(Request::Query { .. }))
        ));
    }

    #[test]
    fn oversize_cut_and_empty_requests_are_errors() {
        // a brine string header promising more than the limit allows
        let mut big = vec![0x0e_u8, 0xff, 0xff, 0xff, 0x00];
        big.resize(2000, b'x');
        let mut received = Vec::new();
        assert!(matches!(
            read_available(&mut Pieces(VecDeque::from([Some(big)])), &mut received),
            Err(ReadError::Request(RequestError::TooLarge(1501)))
        ));

        let mut received = Vec::new();
        let mut cut = Pieces(VecDeque::from([Some(query()[..5].to_vec())]));
        assert!(matches!(
            read_available(&mut cut, &mut received),
            Err(ReadError::Request(RequestError::Brine(_)))
        ));

        let mut received = Vec::new();
        assert!(matches!(
            read_available(&mut Pieces(VecDeque::new()), &mut received),
            Err(ReadError::Closed)
        ));
    }
}
