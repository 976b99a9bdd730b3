//! A connection's unit tests, over in-memory pipes.

use super::*;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(300);

/// A connection over one end of a socket pair, set up as the server
/// sets up its own (reads time out at `Config::read_timeout`).
fn connection() -> (Arc<Connection>, UnixStream) {
    connection_with(Config {
        sync_request_timeout: Some(TIMEOUT),
        ..Config::default()
    })
}

fn connection_with(config: Config) -> (Arc<Connection>, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let reader = ours.try_clone().expect("clone");
    reader
        .set_read_timeout(config.read_timeout())
        .expect("read timeout");
    let closer = ours.try_clone().expect("clone");
    let conn = Connection::new(
        Box::new(reader),
        Box::new(ours),
        Box::new(move |how| {
            let _ = closer.shutdown(how);
        }),
        config,
    );
    (conn, theirs)
}

fn ping_args() -> Boxed {
    Boxed::Value(Value::Tuple(vec![Value::str("are you there")]))
}

/// The peer's side: reads one request and, after `delay`, echoes its
/// arguments back as the reply.
fn answer(peer: &mut UnixStream, decoder: &mut Decoder, delay: Duration) {
    let payload = loop {
        if let Some(payload) = decoder.next_frame().expect("frame") {
            break payload;
        }
        let mut buffer = [0u8; 4096];
        let got = peer.read(&mut buffer).expect("read");
        assert!(got > 0, "connection ended");
        decoder.feed(&buffer[..got]);
    };
    let Message::Request { seq, args, .. } = Message::decode(&payload).expect("message") else {
        panic!("not a request");
    };
    std::thread::sleep(delay);
    let reply = Message::Reply { seq, value: args }
        .encode()
        .expect("encodes");
    peer.write_all(&frame::encode(&reply, false).expect("frames"))
        .expect("write");
}

#[test]
fn a_reader_whose_reply_never_comes_gives_up() {
    let (conn, _silent_peer) = connection();
    let started = Instant::now();
    let result = conn.sync_request(Handler::Ping, ping_args());
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ConnError::Timeout(timeout)) if timeout == TIMEOUT),
        "{result:?}"
    );
    assert!(took >= TIMEOUT && took < TIMEOUT * 10, "took {took:?}");
    assert!(!conn.is_closed());
    assert!(lock(&conn.waiting).replies.is_empty());
}

#[test]
fn a_waiter_behind_another_reader_gives_up_on_time() {
    let (conn, _silent_peer) = connection();
    // another thread is the reader (as the serve loop would be), and
    // stays so for longer than the timeout
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let reader = {
        let conn = conn.clone();
        std::thread::spawn(move || {
            let inbound = lock(&conn.inbound);
            held_tx.send(()).expect("send");
            std::thread::sleep(TIMEOUT * 5);
            drop(inbound);
        })
    };
    held_rx.recv().expect("reader started");
    let started = Instant::now();
    let result = conn.sync_request(Handler::Ping, ping_args());
    let took = started.elapsed();
    assert!(matches!(result, Err(ConnError::Timeout(_))), "{result:?}");
    assert!(took >= TIMEOUT && took < TIMEOUT * 4, "took {took:?}");
    reader.join().expect("reader");
}

#[test]
fn a_late_reply_is_dropped_and_the_connection_goes_on() {
    let (conn, mut peer) = connection();
    let peer = std::thread::spawn(move || {
        let mut decoder = Decoder::default();
        // late for the first request, in time for the second, which
        // is sent when the first gives up
        answer(&mut peer, &mut decoder, TIMEOUT + TIMEOUT / 4);
        answer(&mut peer, &mut decoder, Duration::ZERO);
        peer
    });
    let late = conn.sync_request(Handler::Ping, ping_args());
    assert!(matches!(late, Err(ConnError::Timeout(_))), "{late:?}");
    let next = conn
        .sync_request(Handler::Ping, ping_args())
        .expect("answered");
    assert_eq!(next, Ok(ping_args()));
    assert!(lock(&conn.waiting).replies.is_empty());
    drop(peer.join().expect("peer"));
}

#[test]
fn no_timeout_waits_as_long_as_it_takes() {
    let config = Config {
        sync_request_timeout: None,
        ..Config::default()
    };
    assert_eq!(config.read_timeout(), None);
    let both = Config {
        idle_timeout: Some(Duration::from_secs(5)),
        ..Config::default()
    };
    assert_eq!(both.read_timeout(), Some(Duration::from_secs(5)));
    assert_eq!(
        Config::default().sync_request_timeout,
        Some(DEFAULT_SYNC_REQUEST_TIMEOUT)
    );
}

#[test]
fn a_peers_envelope_is_told_from_its_first_bytes() {
    use super::inbound::dialect_of_first_bytes;
    let request = Message::Request {
        seq: 1,
        handler: Handler::GetRoot,
        args: Boxed::Value(Value::Tuple(vec![])),
    };
    let route = Route {
        from: 0x7f00_0000_1000,
        to: 0,
    };
    for dialect in [Dialect::V6, Dialect::V5, Dialect::V6Threads] {
        let payload = request.encode_routed(dialect, route).expect("encodes");
        let wire = frame::encode(&payload, false).expect("frames");
        assert_eq!(
            dialect_of_first_bytes(&wire),
            Some(Some(dialect)),
            "{dialect:?}"
        );
        // a header alone, or a route cut short, does not say yet
        assert_eq!(dialect_of_first_bytes(&wire[..5]), None);
        if dialect == Dialect::V6Threads {
            assert_eq!(dialect_of_first_bytes(&wire[..12]), None);
        }
    }
    // a compressed first frame cannot be looked into, however much comes
    let mut compressed = frame::encode(&[1, 2, 3], false).expect("frames");
    compressed[4] = 1;
    assert_eq!(dialect_of_first_bytes(&compressed), Some(None));
    // nor a whole frame of no dialect
    let nothing = frame::encode(&[0x99, 1, 2], false).expect("frames");
    assert_eq!(dialect_of_first_bytes(&nothing), Some(None));
}

#[test]
fn a_first_frame_that_stops_coming_is_waited_for_no_longer_than_first_words() {
    use super::inbound::FIRST_WORDS;
    // three bytes of a header, then nothing, however often it is looked at
    let (conn, _peer) = connection();
    conn.set_peek(Box::new(|buf: &mut [u8], _wait| {
        buf[..3].copy_from_slice(&[0, 0, 0]);
        Ok(3)
    }));
    let started = Instant::now();
    conn.learn_dialect();
    let took = started.elapsed();
    assert!(took >= FIRST_WORDS && took < FIRST_WORDS * 2, "{took:?}");
    // still unknown, so the peer's first message decides; spoken to in 6.x's meanwhile
    assert_eq!(conn.dialect.load(Ordering::Acquire), DIALECT_UNKNOWN);
    assert_eq!(conn.dialect(), Dialect::V6);

    // a route, looked at before it is read, is learnt
    let (conn, _peer) = connection();
    let request = Message::Request {
        seq: 1,
        handler: Handler::GetRoot,
        args: Boxed::Value(Value::Tuple(vec![])),
    };
    let payload = request
        .encode_routed(Dialect::V6Threads, Route { from: 9, to: 0 })
        .expect("encodes");
    let wire = frame::encode(&payload, false).expect("frames");
    conn.set_peek(Box::new(move |buf: &mut [u8], _wait| {
        let n = buf.len().min(wire.len());
        buf[..n].copy_from_slice(&wire[..n]);
        Ok(n)
    }));
    conn.learn_dialect();
    assert_eq!(conn.dialect(), Dialect::V6Threads);
}

#[test]
fn a_waiting_threads_inbox_holds_a_bounded_number_of_requests() {
    use super::threads::{this_thread, Routed, INBOX_MAX};
    let (conn, _peer) = connection();
    // a thread of ours waiting for a reply, with its inbox open
    let (opened, waiter_id) = std::sync::mpsc::channel();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let waiting = {
        let conn = Arc::clone(&conn);
        std::thread::spawn(move || {
            conn.open_inbox();
            opened.send(this_thread()).expect("sent");
            finish.recv().expect("told to finish");
        })
    };
    let waiter = waiter_id.recv().expect("its id");
    let request = |seq| Routed {
        seq,
        handler: Handler::Ping,
        args: ping_args(),
        from: 1,
    };
    for seq in 0..INBOX_MAX as i64 {
        assert!(conn.deliver(waiter, request(seq)).is_ok(), "request {seq}");
    }
    // one more is given back, to be served as an unrouted one is
    let refused = conn
        .deliver(waiter, request(-1))
        .expect_err("the inbox is full");
    assert_eq!(refused.seq, -1);
    // as is one for a thread that does not wait, and one for this thread
    assert!(conn.deliver(waiter + 1_000_000, request(0)).is_err());
    assert!(conn.deliver(this_thread(), request(0)).is_err());
    done.send(()).expect("sent");
    waiting.join().expect("the waiting thread");
}

/// The peer's side for [`a_reply_read_for_another_waiter_reaches_it`]:
/// reads `count` requests, then replies to them all at once, last first.
fn answer_in_batches(peer: &mut UnixStream, count: usize, rounds: usize) {
    let mut decoder = Decoder::default();
    for _ in 0..rounds {
        let mut seqs = Vec::new();
        while seqs.len() < count {
            if let Some(payload) = decoder.next_frame().expect("frame") {
                let Message::Request { seq, .. } = Message::decode(&payload).expect("message")
                else {
                    panic!("not a request");
                };
                seqs.push(seq);
                continue;
            }
            let mut buffer = [0u8; 4096];
            let Ok(got) = peer.read(&mut buffer) else {
                return;
            };
            if got == 0 {
                return;
            }
            decoder.feed(&buffer[..got]);
        }
        let mut replies = Vec::new();
        for seq in seqs.into_iter().rev() {
            let reply = Message::Reply {
                seq,
                value: ping_args(),
            };
            let payload = reply.encode().expect("encodes");
            replies.extend(frame::encode(&payload, false).expect("frames"));
        }
        if peer.write_all(&replies).is_err() {
            return;
        }
    }
}

#[test]
fn a_reply_read_for_another_waiter_reaches_it() {
    // Several threads of ours wait at once; whichever reads parks the
    // others' replies. The last reply of a batch, read for a thread that
    // is about to take the inbound side, must be found by it, not waited
    // for in a read: the peer sends nothing more until every request of
    // the batch is answered.
    const THREADS: usize = 4;
    const ROUNDS: usize = 300;
    let (conn, mut theirs) = connection_with(Config {
        sync_request_timeout: Some(Duration::from_secs(5)),
        ..Config::default()
    });
    let peer = std::thread::spawn(move || answer_in_batches(&mut theirs, THREADS, ROUNDS));
    let started = Instant::now();
    let waiters: Vec<_> = (0..THREADS)
        .map(|_| {
            let conn = Arc::clone(&conn);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let asked = Instant::now();
                    let reply = conn.sync_request(Handler::Ping, ping_args());
                    assert!(matches!(reply, Ok(Ok(_))), "round {round}: {reply:?}");
                    // a reply left unseen would wait for the read timeout
                    let took = asked.elapsed();
                    assert!(took < Duration::from_secs(2), "round {round} took {took:?}");
                }
            })
        })
        .collect();
    for waiter in waiters {
        waiter.join().expect("every reply reached its waiter");
    }
    conn.close();
    peer.join().expect("peer");
    assert!(started.elapsed() < Duration::from_secs(60));
}
