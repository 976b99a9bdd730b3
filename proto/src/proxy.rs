//! The PROXY protocol header that a TCP load balancer (HAProxy's
//! `send-proxy` / `send-proxy-v2`, nginx's `proxy_protocol on`) sends
//! before the client's own bytes, saying who the client is: version 1 is
//! a text line, version 2 binary. The `ppp` crate parses them; this says
//! what a server makes of the first bytes of a connection.

use std::net::{IpAddr, SocketAddr};

/// How a version 1 header starts.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// How a version 2 header starts.
pub const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest header taken: version 1's are at most 107 bytes; version
/// 2's may carry up to 64 KiB of extensions (TLVs), of which load
/// balancers send a few hundred bytes at most.
pub const MAX_HEADER: usize = 16 + 4096;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a PROXY header: the client's own bytes.
    NotProxy,
    /// The start of a header (or nothing yet): more bytes are needed.
    Incomplete,
    /// A header of `length` bytes for a client at `source` that connected
    /// to `destination`.
    Proxied {
        length: usize,
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A header of `length` bytes that names no client: the balancer's own
    /// connection (version 2's LOCAL, a health check; version 1's
    /// UNKNOWN; addresses of a family other than IP). The connection's own
    /// addresses stand.
    Local { length: usize },
    /// A PROXY header that is not well formed, or not for a TCP stream.
    Invalid(String),
}

impl Parsed {
    /// How many bytes the header takes, when there is one.
    pub fn length(&self) -> Option<usize> {
        match self {
            Parsed::Proxied { length, .. } | Parsed::Local { length } => Some(*length),
            _ => None,
        }
    }
}

/// Whether `bytes` is `prefix` or a start of it.
fn begins(bytes: &[u8], prefix: &[u8]) -> bool {
    let n = bytes.len().min(prefix.len());
    bytes[..n] == prefix[..n]
}

/// What `bytes`, the first of a connection, are.
pub fn parse(bytes: &[u8]) -> Parsed {
    if bytes.is_empty() {
        return Parsed::Incomplete;
    }
    if begins(bytes, V2_SIGNATURE) {
        if bytes.len() < 16 {
            return Parsed::Incomplete;
        }
        return version_2(bytes);
    }
    if begins(bytes, V1_PREFIX) {
        if bytes.len() < V1_PREFIX.len() {
            return Parsed::Incomplete;
        }
        return version_1(bytes);
    }
    Parsed::NotProxy
}

/// Whether a connection's first bytes begin a PROXY header: `None` while
/// too few have come to tell (they are a start of a signature).
pub fn announces_header(bytes: &[u8]) -> Option<bool> {
    for signature in [V2_SIGNATURE, V1_PREFIX] {
        if begins(bytes, signature) {
            return (bytes.len() >= signature.len()).then_some(true);
        }
    }
    Some(false)
}

/// How long the version 2 header begun with `bytes` says it is, once its
/// 16 fixed bytes have come.
pub fn v2_length(bytes: &[u8]) -> Option<usize> {
    let length = bytes.get(14..16)?;
    Some(16 + usize::from(u16::from_be_bytes([length[0], length[1]])))
}

fn version_2(bytes: &[u8]) -> Parsed {
    use ppp::v2::{Addresses, Command, Header, ParseError, Protocol};
    let Some(declared) = v2_length(bytes) else {
        return Parsed::Incomplete;
    };
    if declared > MAX_HEADER {
        return Parsed::Invalid(format!(
            "a version 2 header of {declared} bytes (at most {MAX_HEADER} are taken)"
        ));
    }
    let header = match Header::try_from(bytes) {
        Ok(header) => header,
        Err(ParseError::Incomplete(_) | ParseError::Partial(..)) => return Parsed::Incomplete,
        Err(error) => return Parsed::Invalid(format!("version 2 header: {error}")),
    };
    let length = header.len();
    if header.command == Command::Local {
        return Parsed::Local { length };
    }
    let ips = match header.addresses {
        Addresses::IPv4(a) => Some((
            SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
            SocketAddr::new(IpAddr::V4(a.destination_address), a.destination_port),
        )),
        Addresses::IPv6(a) => Some((
            SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
            SocketAddr::new(IpAddr::V6(a.destination_address), a.destination_port),
        )),
        // the specification: a receiver uses the connection's own
        // addresses for a family it does not know
        Addresses::Unspecified | Addresses::Unix(_) => None,
    };
    match (header.protocol, ips) {
        (Protocol::Datagram, _) => {
            Parsed::Invalid("a version 2 header for a datagram, not a TCP stream".into())
        }
        (_, Some((source, destination))) => Parsed::Proxied {
            length,
            source,
            destination,
        },
        (_, None) => Parsed::Local { length },
    }
}

/// The longest version 1 header, its line end included.
const V1_MAX: usize = 107;

fn version_1(bytes: &[u8]) -> Parsed {
    use ppp::v1::{Addresses, Header};
    // The line is printable ASCII up to its CRLF, and whole only with it:
    // before that ppp may take a port cut short for a bad one, and it ends
    // a line at any carriage return, which would let a header's length
    // depend on what follows it.
    let searched = &bytes[..bytes.len().min(V1_MAX)];
    let mut end = None;
    for (at, &byte) in searched.iter().enumerate() {
        match byte {
            b'\r' => {
                end = Some(at);
                break;
            }
            b' '..=b'~' => {}
            _ => {
                return Parsed::Invalid(format!(
                    "byte {byte:#04x} in a version 1 header, which is printable text"
                ))
            }
        }
    }
    let Some(end) = end else {
        return match bytes.len() < V1_MAX {
            true => Parsed::Incomplete,
            false => Parsed::Invalid(format!("a version 1 header longer than {V1_MAX} bytes")),
        };
    };
    match bytes.get(end + 1) {
        None => return Parsed::Incomplete,
        Some(b'\n') => {}
        Some(_) => {
            return Parsed::Invalid(
                "a carriage return without a line feed in a version 1 header".into(),
            )
        }
    }
    let header = match Header::try_from(&bytes[..end + 2]) {
        Ok(header) => header,
        Err(error) => return Parsed::Invalid(format!("version 1 header: {error}")),
    };
    let length = header.header.len();
    if length != end + 2 {
        return Parsed::Invalid("a version 1 header that does not end at its line end".into());
    }
    match header.addresses {
        Addresses::Unknown => Parsed::Local { length },
        Addresses::Tcp4(a) => Parsed::Proxied {
            length,
            source: SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
            destination: SocketAddr::new(IpAddr::V4(a.destination_address), a.destination_port),
        },
        Addresses::Tcp6(a) => Parsed::Proxied {
            length,
            source: SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
            destination: SocketAddr::new(IpAddr::V6(a.destination_address), a.destination_port),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend((addresses.len() as u16).to_be_bytes());
        bytes.extend(addresses);
        bytes
    }

    #[test]
    fn version_1_tcp4_and_tcp6_and_unknown() {
        let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 18812\r\nrest";
        assert_eq!(
            parse(line),
            Parsed::Proxied {
                length: line.len() - 4,
                source: "203.0.113.7:40000".parse().unwrap(),
                destination: "192.0.2.1:18812".parse().unwrap(),
            }
        );
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 18812\r\n";
        assert_eq!(parse(line).length(), Some(line.len()), "{:?}", parse(line));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Local { length: 15 });
    }

    #[test]
    fn version_2_proxy_local_and_families() {
        let mut addresses = vec![203, 0, 113, 7, 192, 0, 2, 1];
        addresses.extend(40000u16.to_be_bytes());
        addresses.extend(18812u16.to_be_bytes());
        let header = v2(1, 0x11, &addresses);
        let mut with_rest = header.clone();
        with_rest.extend(b"\x00\x00\x00\x10rpyc");
        assert_eq!(
            parse(&with_rest),
            Parsed::Proxied {
                length: header.len(),
                source: "203.0.113.7:40000".parse().unwrap(),
                destination: "192.0.2.1:18812".parse().unwrap(),
            }
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Parsed::Local { length: 16 });
        // a health check names addresses, and still is the balancer's own
        assert_eq!(
            parse(&v2(0, 0x11, &addresses)),
            Parsed::Local { length: 28 }
        );
        assert!(matches!(
            parse(&v2(1, 0x12, &addresses)),
            Parsed::Invalid(_)
        ));
        // a TLV after the addresses is part of the header
        let mut tlv = addresses.clone();
        tlv.extend([0x04, 0x00, 0x02, b'o', b'k']);
        assert_eq!(parse(&v2(1, 0x11, &tlv)).length(), Some(16 + tlv.len()));
    }

    #[test]
    fn every_strict_start_of_a_header_is_incomplete() {
        let mut addresses = vec![0u8; 36];
        addresses.extend([0, 1, 0, 2]);
        for header in [
            b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 18812\r\n".to_vec(),
            v2(1, 0x21, &addresses[..36]),
        ] {
            assert!(parse(&header).length().is_some(), "{:?}", parse(&header));
            for n in 0..header.len() {
                assert_eq!(parse(&header[..n]), Parsed::Incomplete, "{n} bytes");
            }
        }
    }

    #[test]
    fn rpyc_and_other_bytes_are_not_proxy_headers() {
        // rpyc 6's first frame, 5.x's, TLS's ClientHello, a stray "P"
        for first in [
            &b"\x00\x00\x00\x10\x00"[..],
            b"\x00\x00\x00\x10",
            b"\x16\x03\x01\x02\x00",
            b"POST /",
            b"\r\n\r\nX",
        ] {
            assert_eq!(parse(first), Parsed::NotProxy, "{first:?}");
        }
    }

    #[test]
    fn a_signature_announces_a_header() {
        assert_eq!(announces_header(b""), None);
        assert_eq!(announces_header(b"PROX"), None);
        assert_eq!(announces_header(b"PROXY "), Some(true));
        assert_eq!(announces_header(&V2_SIGNATURE[..11]), None);
        assert_eq!(announces_header(V2_SIGNATURE), Some(true));
        assert_eq!(announces_header(b"PROXX"), Some(false));
        assert_eq!(announces_header(b"\x00\x00"), Some(false));
    }

    #[test]
    fn malformed_and_oversize_headers_are_invalid() {
        for bad in [
            &b"PROXY TCP4 999.0.0.1 192.0.2.1 1 2\r\n"[..],
            b"PROXY TCP9 x y 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 70000\r\n",
        ] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{bad:?}");
        }
        // what a fuzzer found: a lone CR, then a whole line after it
        let lone = b"PROXY UNKNOWN \x00f6 \n\rPROXY UNKNOWN \x00f6 \n\r\nf";
        assert!(
            matches!(parse(lone), Parsed::Invalid(_)),
            "{:?}",
            parse(lone)
        );
        assert!(matches!(
            parse(b"PROXY UNKNOWN x\ry\r\n"),
            Parsed::Invalid(_)
        ));
        let mut long = V1_PREFIX.to_vec();
        long.extend([b'1'; 200]);
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse(&huge), Parsed::Invalid(_)));
    }
}
