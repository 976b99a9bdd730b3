//! The ceiling: servers that do the least work a correct answer allows, on
//! the same loopback, so the real servers' figures read as a fraction of
//! what the machine allows.
//!
//! - [`PingServer`] answers PING by rewriting the request's bytes into the
//!   reply, never decoding the payload it echoes;
//! - [`UdpResponder`] answers every datagram with fixed bytes;
//! - [`loopback_transfer`] moves raw bytes through one TCP connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rpycd::protocol::brine::Value;
use rpycd::protocol::brine::{
    shape, token_len, Shape, Token, IMM_INT_MAX, IMM_INT_MIN, IMM_INT_OFFSET, TAG_TUP1, TAG_TUP2,
};
use rpycd::protocol::frame::{self, FLUSHER, HEADER_LEN};
use rpycd::protocol::message::{Boxed, ExceptionInfo, Handler, Message, MsgType, RemoteException};

/// Frames larger than this are refused: nothing the benchmark pings with
/// comes close, and the server must not buffer whatever a peer announces.
const MAX_FRAME: usize = 64 << 20;
/// The int 1 in brine (`1 + 0x50`): the PING handler code, and the
/// "value" boxing label.
const BRINE_ONE: u8 = 0x51;

/// The length of the brine int at the start of `bytes`, if it is one (by
/// the protocol's own tokenizer).
fn brine_int_len(bytes: &[u8]) -> Option<usize> {
    let tag = *bytes.first()?;
    let is_int = (IMM_INT_MIN..=IMM_INT_MAX).contains(&(i64::from(tag) - IMM_INT_OFFSET))
        || matches!(shape(tag), Shape::SizedInt(_));
    match token_len(bytes, 0) {
        Token::Len(len) if is_int => Some(len),
        _ => None,
    }
}

/// Appends the reply frame to the PING request `payload`, if it is one in
/// the shape rpyc sends, without decoding what it echoes; `false` otherwise.
///
/// rpyc's request is `\x01` + brine `(seq, (HANDLE_PING, (LABEL_VALUE, (data,))))`
/// and `_handle_ping(data)` returns `data`, so the reply is `\x02` + brine
/// `(seq, (LABEL_VALUE, data))`. Both handler code and label are the int 1
/// (one byte, 0x51), so after the seq the request reads
/// `TUP2 0x51 TUP2 0x51 TUP1 <data>` and the reply `TUP2 0x51 <data>`: the
/// reply is the request with its type byte changed and three bytes cut.
/// (Changing the type byte alone would decode, as the value
/// `(1, (data,))`, and fail rpyc's echo check.)
pub fn ping_reply(payload: &[u8], out: &mut Vec<u8>) -> bool {
    const ARGS: [u8; 5] = [TAG_TUP2, BRINE_ONE, TAG_TUP2, BRINE_ONE, TAG_TUP1];
    let [kind, TAG_TUP2, rest @ ..] = payload else {
        return false;
    };
    if *kind != MsgType::Request as u8 {
        return false;
    }
    let Some(seq_len) = brine_int_len(rest) else {
        return false;
    };
    let Some((seq, args)) = rest.split_at_checked(seq_len) else {
        return false;
    };
    let Some(data) = args.strip_prefix(&ARGS) else {
        return false;
    };
    if data.is_empty() {
        return false;
    }
    let len = 2 + seq.len() + 2 + data.len();
    let Ok(head) = frame::header(len, false) else {
        return false;
    };
    out.extend_from_slice(&head);
    out.extend_from_slice(&[MsgType::Reply as u8, TAG_TUP2]);
    out.extend_from_slice(seq);
    out.extend_from_slice(&[TAG_TUP2, BRINE_ONE]);
    out.extend_from_slice(data);
    out.push(FLUSHER);
    true
}

/// What the ping server does with one whole frame.
enum Answer {
    Sent,
    Close,
}

/// Answers a frame the fast path does not take (compressed, or not a PING)
/// the slow, correct way: decode, and answer PING or refuse the rest.
fn slow_answer(compressed: bool, body: &[u8], out: &mut Vec<u8>) -> Option<Answer> {
    let payload = if compressed {
        frame::inflate(body, MAX_FRAME).ok()?
    } else {
        body.to_vec()
    };
    let message = match Message::decode(&payload) {
        Ok(Message::Request {
            handler: Handler::Close,
            ..
        }) => return Some(Answer::Close),
        Ok(Message::Request {
            seq,
            handler: Handler::Ping,
            args,
        }) => {
            let value = match args {
                Boxed::Value(Value::Tuple(mut items)) if items.len() == 1 => {
                    Boxed::Value(items.pop()?)
                }
                _ => return None,
            };
            Message::Reply { seq, value }
        }
        Ok(Message::Request { seq, handler, .. }) => Message::Exception {
            seq,
            exception: RemoteException::Raised(ExceptionInfo::builtin(
                "NotImplementedError",
                &format!("the zero-cost ping server answers PING only, not {handler:?}"),
            )),
        },
        // replies and exceptions are not for a server; bad bytes end it
        _ => return None,
    };
    frame::encode_into(&message.encode().ok()?, true, out).ok()?;
    Some(Answer::Sent)
}

/// Serves one connection: reads what is there, answers every whole frame
/// in it, and writes all the answers at once.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let got = stream.read(&mut buffer[filled..])?;
        if got == 0 {
            return Ok(());
        }
        filled += got;
        let mut start = 0;
        let mut close = false;
        while let [a, b, c, d, flag, ..] = buffer[start..filled] {
            let len = u32::from_be_bytes([a, b, c, d]) as usize;
            if len > MAX_FRAME || flag > 1 {
                return Ok(());
            }
            let total = HEADER_LEN + len + 1;
            if filled - start < total {
                if buffer.len() < total {
                    buffer.resize(total, 0);
                }
                break;
            }
            let body = &buffer[start + HEADER_LEN..start + total - 1];
            let fast = flag == 0 && ping_reply(body, &mut out);
            if !fast {
                match slow_answer(flag == 1, body, &mut out) {
                    Some(Answer::Sent) => {}
                    Some(Answer::Close) => close = true,
                    None => return Ok(()),
                }
            }
            start += total;
            if close {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if close {
            return stream.shutdown(Shutdown::Both);
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// The zero-cost PING server, on 127.0.0.1 and an ephemeral port.
pub struct PingServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl PingServer {
    pub fn start() -> io::Result<PingServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let acceptor = thread::Builder::new()
            .name("ceiling-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    // a connection's thread ends with its connection
                    let _ = thread::Builder::new()
                        .name("ceiling-conn".into())
                        .spawn(move || serve(stream));
                }
            })?;
        Ok(PingServer {
            addr,
            stopping,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PingServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // wake the blocked accept() so it sees the flag
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answers every datagram with the same bytes: the registry's ceiling.
pub struct UdpResponder {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl UdpResponder {
    pub fn start(answer: Vec<u8>) -> io::Result<UdpResponder> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        // the flag is checked at least this often
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let worker = thread::Builder::new()
            .name("ceiling-udp".into())
            .spawn(move || {
                let mut buffer = [0u8; 1500];
                while !stop.load(Ordering::Acquire) {
                    if let Ok((_, peer)) = socket.recv_from(&mut buffer) {
                        let _ = socket.send_to(&answer, peer);
                    }
                }
            })?;
        Ok(UdpResponder {
            addr,
            stopping,
            worker: Some(worker),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Moves `bytes` raw bytes over one loopback TCP connection, 1 MiB writes
/// into 1 MiB reads; returns how long the reader took from the first byte
/// it asked for to the last it got.
pub fn loopback_transfer(bytes: usize) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        let chunk = vec![0x5au8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut chunk = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut got = 0;
    while got < bytes {
        match stream.read(&mut chunk)? {
            0 => break,
            n => got += n,
        }
    }
    let elapsed = started.elapsed();
    writer
        .join()
        .map_err(|_| io::Error::other("the loopback writer panicked"))??;
    if got < bytes {
        return Err(io::Error::other(format!(
            "the loopback stream ended after {got} of {bytes} bytes"
        )));
    }
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpycd::protocol::frame::{Decoder, Limits};

    fn request(seq: i64, data: Value) -> Vec<u8> {
        Message::Request {
            seq,
            handler: Handler::Ping,
            args: Boxed::Value(Value::Tuple(vec![data])),
        }
        .encode()
        .expect("encodes")
    }

    fn reply_of(payload: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        ping_reply(payload, &mut out).then_some(out)
    }

    fn datas() -> Vec<Value> {
        vec![
            Value::str("abcdefghijklmnopqrstuvwxyz".repeat(20)),
            Value::str(""),
            Value::Bytes(vec![0, 1, 2, 0xff].into()),
            Value::Int(-48),
            Value::Int(1 << 40),
            Value::None,
            Value::Tuple(vec![Value::Int(1), Value::str("x"), Value::Float(2.5)]),
        ]
    }

    #[test]
    fn reply_is_byte_for_byte_what_rpyc_sends() {
        for seq in [0, 1, 159, 160, 1_000_000, i64::MAX, -1] {
            for data in datas() {
                let frame = reply_of(&request(seq, data.clone())).expect("a ping");
                let expected = Message::Reply {
                    seq,
                    value: Boxed::Value(data),
                }
                .encode()
                .expect("encodes");
                assert_eq!(frame, frame::encode(&expected, true).expect("frames"));
            }
        }
    }

    #[test]
    fn reply_decodes_as_the_echo() {
        let data = Value::str("abcdefghijklmnopqrstuvwxyz".repeat(20));
        let frame = reply_of(&request(42, data.clone())).expect("a ping");
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(&frame);
        let payload = decoder.next_frame().expect("a frame").expect("whole");
        assert_eq!(
            Message::decode(&payload),
            Ok(Message::Reply {
                seq: 42,
                value: Boxed::Value(data)
            })
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn only_pings_take_the_fast_path() {
        let getroot = Message::Request {
            seq: 3,
            handler: Handler::GetRoot,
            args: Boxed::Value(Value::Tuple(vec![])),
        }
        .encode()
        .expect("encodes");
        assert_eq!(reply_of(&getroot), None);
        let reply = Message::Reply {
            seq: 3,
            value: Boxed::Value(Value::Tuple(vec![Value::Int(1)])),
        }
        .encode()
        .expect("encodes");
        assert_eq!(reply_of(&reply), None);
        // a ping with no data is not one rpyc sends
        let mut bare = request(0, Value::None);
        bare.pop();
        assert_eq!(reply_of(&bare), None);
    }

    #[test]
    fn truncated_requests_are_refused_not_read_past() {
        let full = request(1_000_000, Value::str("abc"));
        for cut in 0..full.len() - 1 {
            // every prefix either is refused or still ends in the data
            let mut out = Vec::new();
            if ping_reply(&full[..cut], &mut out) {
                assert!(cut > 2 + 9 + 5, "accepted a prefix of {cut} bytes");
            }
        }
        assert_eq!(reply_of(b""), None);
        assert_eq!(reply_of(b"\x01\x11\x17\xff\xff\xff\xff"), None);
    }

    #[test]
    fn slow_path_answers_a_compressed_ping() {
        let data = Value::Bytes(vec![7; 10_000].into());
        let payload = request(5, data.clone());
        let framed = frame::encode(&payload, true).expect("frames");
        assert_eq!(framed[4], 1, "a payload this size is compressed");
        let body = &framed[HEADER_LEN..framed.len() - 1];
        let mut out = Vec::new();
        assert!(matches!(
            slow_answer(true, body, &mut out),
            Some(Answer::Sent)
        ));
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(&out);
        let reply = decoder.next_frame().expect("a frame").expect("whole");
        assert_eq!(
            Message::decode(&reply),
            Ok(Message::Reply {
                seq: 5,
                value: Boxed::Value(data)
            })
        );
    }

    #[test]
    fn ping_server_echoes_over_tcp() {
        let server = PingServer::start().expect("starts");
        let client = super::super::client::Client::connect(server.addr(), Duration::from_secs(5))
            .expect("connects");
        for _ in 0..3 {
            client
                .ping(&super::super::client::default_ping_data())
                .expect("echoes");
        }
        client.close();
    }
}
