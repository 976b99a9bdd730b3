//! The PROXY protocol behind a TCP load balancer (`--proxy-protocol-from`):
//! a connection from an address the switch lists must begin with a PROXY
//! header, whose client address then names the connection everywhere (log
//! lines, the service's endpoints); from any other address a PROXY header
//! is refused. That is Postfix's and Dovecot's rule: a trusted source that
//! sends no header, and an untrusted one that sends one, are both turned
//! away, so neither can pass for a client it is not.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::daemon::listener::Stream;
use crate::protocol::proxy::{announces_header, parse, v2_length, Parsed, V1_PREFIX, V2_SIGNATURE};
use crate::transport::ReadFd;

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| {
            format!("{text:?} is not an address or an address block (ADDRESS/BITS)")
        })?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= bits => prefix,
                _ => return Err(format!("{text:?}: the prefix must be 0 to {bits}")),
            },
        };
        if Cidr::masked(network, prefix) != network {
            return Err(format!(
                "{text:?} has bits set past its /{prefix} (the block is {}/{prefix})",
                Cidr::masked(network, prefix)
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    fn masked(address: IpAddr, prefix: u8) -> IpAddr {
        match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `address` is in the block (an IPv4 peer of an IPv6 socket,
    /// `::ffff:192.0.2.1`, counts as its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        address.is_ipv4() == self.network.is_ipv4()
            && Cidr::masked(address, self.prefix) == self.network
    }
}

/// Who may send PROXY headers, and how long one may take to arrive.
#[derive(Debug, Clone)]
pub struct ProxyPolicy {
    trusted: Vec<Cidr>,
    timeout: Duration,
}

/// Why a trusted peer's connection is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It closed without a byte: a balancer's plain TCP health check.
    Silent,
    /// What it did wrong, to complete "it ...".
    Because(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Silent => f.write_str("closed without sending anything"),
            Refused::Because(why) => f.write_str(why),
        }
    }
}

/// Who is at the other end, as a connection's log lines and its service
/// see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A balancer's connection for a client (the header's source) that
    /// connected to the header's destination.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A trusted balancer's own connection (a health check).
    Balancer,
}

impl ProxyPolicy {
    pub fn new(trusted: Vec<Cidr>, timeout: Duration) -> ProxyPolicy {
        ProxyPolicy { trusted, timeout }
    }

    /// Whether a connection from `address` must begin with a PROXY header.
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.trusted.iter().any(|block| block.contains(address))
    }

    /// Reads the PROXY header a trusted peer's connection begins with, and
    /// not a byte past it. An error says why the connection is refused.
    pub fn receive(&self, stream: &Stream) -> Result<Peer, Refused> {
        let deadline = Instant::now() + self.timeout;
        let mut reader = stream
            .try_clone()
            .map_err(|e| Refused::Because(format!("cannot read its PROXY header: {e}")))?;
        let mut header = Vec::with_capacity(64);
        let got = loop {
            let parsed = parse(&header);
            if parsed != Parsed::Incomplete {
                break parsed;
            }
            let want = still_wanted(&header);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Refused::Because(format!(
                    "sent no whole PROXY header within {:?} (--handshake-timeout)",
                    self.timeout
                )));
            }
            reader
                .set_read_timeout(Some(left))
                .map_err(|e| Refused::Because(format!("cannot read its PROXY header: {e}")))?;
            let start = header.len();
            header.resize(start + want, 0);
            match reader.read(&mut header[start..]) {
                // a balancer's plain TCP health check: connect, close
                Ok(0) if start == 0 => return Err(Refused::Silent),
                Ok(0) => {
                    return Err(Refused::Because(
                        "closed before its PROXY header was whole".into(),
                    ))
                }
                Ok(n) => header.truncate(start + n),
                Err(error) if is_timeout(&error) => header.truncate(start),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => header.truncate(start),
                Err(error) => {
                    return Err(Refused::Because(format!(
                        "reading its PROXY header: {error}"
                    )))
                }
            }
        };
        // the transport sets the connection's own timeout after
        let _ = reader.set_read_timeout(None);
        match got {
            Parsed::Proxied {
                source,
                destination,
                ..
            } => Ok(Peer::Proxied {
                source,
                destination,
            }),
            Parsed::Local { .. } => Ok(Peer::Balancer),
            Parsed::NotProxy => Err(Refused::Because(
                "sent no PROXY header, which --proxy-protocol-from requires of its address".into(),
            )),
            Parsed::Invalid(why) => {
                Err(Refused::Because(format!("sent a bad PROXY header: {why}")))
            }
            Parsed::Incomplete => Err(Refused::Because(
                "closed before its PROXY header was whole".into(),
            )),
        }
    }
}

/// How many more bytes to read of a header begun with `header` without
/// reading past its end (the client's bytes follow it): version 1's line
/// ends at a CRLF nobody can see coming, so it is read a byte at a time.
fn still_wanted(header: &[u8]) -> usize {
    // both versions take at least this much ("PROXY UNKNOWN\r\n")
    const SHORTEST: usize = 15;
    if header.len() < SHORTEST {
        return SHORTEST - header.len();
    }
    if header.starts_with(V2_SIGNATURE) {
        return match v2_length(header) {
            None => 16 - header.len(),
            Some(declared) => declared.saturating_sub(header.len()).max(1),
        };
    }
    debug_assert!(header.starts_with(V1_PREFIX));
    1
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The reader of a connection from an address that may not send PROXY
/// headers: its first bytes are looked at as they pass, and if they begin
/// one, the read fails (the connection ends, and its log line says why).
pub struct RefuseHeader {
    inner: Box<dyn ReadFd>,
    /// The first bytes, until they decide.
    first: Vec<u8>,
    decided: bool,
}

/// Why a connection that began with a PROXY header was ended.
pub const UNTRUSTED_HEADER: &str =
    "sent a PROXY header from an address --proxy-protocol-from does not list";

impl RefuseHeader {
    pub fn new(inner: Box<dyn ReadFd>) -> RefuseHeader {
        RefuseHeader {
            inner,
            first: Vec::new(),
            decided: false,
        }
    }
}

impl Read for RefuseHeader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.decided {
            self.first
                .extend_from_slice(&buf[..n.min(V2_SIGNATURE.len() - self.first.len())]);
            match announces_header(&self.first) {
                Some(true) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, UNTRUSTED_HEADER))
                }
                Some(false) => {
                    self.decided = true;
                    self.first = Vec::new();
                }
                None if n == 0 => self.decided = true,
                None => {}
            }
        }
        Ok(n)
    }
}

impl std::os::fd::AsFd for RefuseHeader {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn cidr(text: &str) -> Cidr {
        text.parse().expect(text)
    }

    #[test]
    fn address_blocks() {
        assert!(cidr("192.0.2.0/24").contains("192.0.2.200".parse().unwrap()));
        assert!(!cidr("192.0.2.0/24").contains("192.0.3.1".parse().unwrap()));
        assert!(cidr("192.0.2.0/24").contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(cidr("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(!cidr("127.0.0.1").contains("127.0.0.2".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("203.0.113.1".parse().unwrap()));
        assert!(!cidr("0.0.0.0/0").contains("2001:db8::1".parse().unwrap()));
        assert!(cidr("2001:db8::/32").contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(cidr("::/0").contains("::1".parse().unwrap()));
        for bad in [
            "192.0.2.1/24",
            "192.0.2.0/33",
            "::/129",
            "host",
            "1.2.3.4/x",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    /// A connected pair: the server's end as a Stream, the client's.
    fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (Stream::tcp(server), client)
    }

    fn policy() -> ProxyPolicy {
        ProxyPolicy::new(vec![cidr("127.0.0.0/8")], Duration::from_millis(300))
    }

    #[test]
    fn reads_the_header_and_not_a_byte_more() {
        let v2 = {
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.extend([
                0x21, 0x11, 0, 12, 203, 0, 113, 7, 192, 0, 2, 1, 0x9c, 0x40, 0x49, 0x7c,
            ]);
            bytes
        };
        for header in [
            b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 18812\r\n".to_vec(),
            v2,
        ] {
            let (mut server, mut client) = pair();
            // in pieces, the client's bytes right behind
            let rest = header[7..].to_vec();
            client.write_all(&header[..7]).expect("write");
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                client.write_all(&rest).expect("write");
                client.write_all(b"rpyc").expect("write");
                client
            });
            let peer = policy().receive(&server).expect("a header");
            assert_eq!(
                peer,
                Peer::Proxied {
                    source: "203.0.113.7:40000".parse().unwrap(),
                    destination: "192.0.2.1:18812".parse().unwrap(),
                }
            );
            let _client = sender.join().expect("sender");
            let mut rest = [0u8; 4];
            server.read_exact(&mut rest).expect("the client's bytes");
            assert_eq!(&rest, b"rpyc");
        }
    }

    #[test]
    fn a_trusted_peer_without_a_header_or_with_a_bad_one_is_refused() {
        for (sent, said) in [
            (
                &b"\x00\x00\x00\x10\x00rpyc's own frame"[..],
                "sent no PROXY header",
            ),
            (b"PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n", "bad PROXY header"),
            (b"PROXY UNKNOWN\r", "within"),
            (b"PROX", "within"),
        ] {
            let (server, mut client) = pair();
            client.write_all(sent).expect("write");
            let refusal = policy().receive(&server).expect_err("refused").to_string();
            assert!(refusal.contains(said), "{sent:?}: {refusal}");
        }
        let (server, client) = pair();
        drop(client);
        assert_eq!(policy().receive(&server), Err(Refused::Silent));
        let (server, mut client) = pair();
        client.write_all(b"PROXY UNKNOWN\r\n").expect("write");
        assert_eq!(policy().receive(&server), Ok(Peer::Balancer));
    }

    #[test]
    fn an_untrusted_peer_may_not_begin_with_a_header() {
        for (sent, refused) in [
            (
                &b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 18812\r\n"[..],
                true,
            ),
            (V2_SIGNATURE, true),
            (b"\x00\x00\x00\x10\x00", false),
            (b"PR", false),
        ] {
            let (server, mut client) = pair();
            let mut reader = RefuseHeader::new(Box::new(server));
            // a byte at a time: the decision waits for enough of them
            for &byte in sent {
                client.write_all(&[byte]).expect("write");
            }
            drop(client);
            let mut all = Vec::new();
            let outcome = reader.read_to_end(&mut all);
            match refused {
                true => {
                    let error = outcome.expect_err("refused");
                    assert_eq!(error.to_string(), UNTRUSTED_HEADER);
                }
                false => {
                    outcome.expect("read");
                    assert_eq!(all, sent);
                }
            }
        }
    }
}
