//! Reading: bytes from the stream to whole messages, with the frame
//! decoder, the read timeouts and the pace a frame must keep.

use super::*;

impl Connection {
    /// Where the session wants a bulk byte string of `len` bytes read to.
    pub(super) fn bulk_memory(&self, len: usize) -> Option<Box<dyn BulkMemory>> {
        let session = lock(&self.session).clone()?;
        session.bulk_memory(len)
    }

    /// Reads the next message. A reader waiting for a reply of its own
    /// passes the reply's `deadline`: past it, the first read timeout
    /// returns `ConnError::Timeout` (the stream stays in step: what was
    /// read of a frame stays buffered). With `quiet`, a read timeout after
    /// that long without bytes, with nothing in progress or buffered,
    /// returns `Incoming::Quiet`.
    pub(super) fn read_message(
        &self,
        inbound: &mut Inbound,
        deadline: Option<Instant>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Incoming<(Message, Route)>, ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        // the idle clock: since the last bytes came in (or reading began)
        let mut quiet_since = Instant::now();
        loop {
            let limits = self.config.decode_limits();
            let decoded = match inbound.decoder.next_payload()? {
                Some(payload) => {
                    let dialect = self.dialect_of(&payload.bytes)?;
                    let route = match dialect {
                        Dialect::V6Threads => Route::of(&payload.bytes).unwrap_or_default(),
                        Dialect::V6 | Dialect::V5 => Route::default(),
                    };
                    let message =
                        Message::decode_with_bulk(&payload.bytes, payload.bulk, dialect, limits);
                    Some((message, route))
                }
                None => None,
            };
            if let Some((decoded, route)) = decoded {
                // what is left buffered is the next frame, begun now
                inbound.pace = FramePace::begun(inbound.decoder.buffered(), Instant::now());
                self.greeted.store(true, Ordering::Release);
                let since_open =
                    u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.last_message_ms.store(since_open, Ordering::Release);
                return match decoded {
                    Ok(message) => Ok(Incoming::Message((message, route))),
                    Err(MessageError::BadRequest { seq, reason }) => {
                        // rpyc answers these with an exception and carries on
                        let exception = Message::Exception {
                            seq,
                            exception: bad_request_exception(&reason),
                        };
                        self.send_routed(&exception, self.route_to(route.from))?;
                        continue;
                    }
                    Err(error) => Err(error.into()),
                };
            }
            self.partial_frame
                .store(inbound.decoder.buffered(), Ordering::Relaxed);
            let Inbound {
                reader,
                decoder,
                pace,
            } = inbound;
            if let Some(len) = decoder.bulk_wanted() {
                if let Some(memory) = self.bulk_memory(len) {
                    decoder.give_bulk_memory(memory);
                }
            }
            // small reads while idle keep an idle connection small; a frame
            // known to be large is read in large pieces
            let want = decoder.wanted().clamp(READ_MIN, 1 << 20);
            let got = decoder.feed_with(want, |buf| loop {
                match reader.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            });
            match got {
                Ok(0) if self.is_closed() => return Err(ConnError::Closed),
                Ok(0) => return Err(ConnError::Eof),
                Ok(got) => {
                    quiet_since = Instant::now();
                    pace.arrived(got, quiet_since);
                    if let Some(error) = self.too_slow(pace, quiet_since) {
                        return Err(error);
                    }
                }
                Err(_) if self.is_closed() => return Err(ConnError::Closed),
                Err(error) if is_timeout(&error) => {
                    let now = Instant::now();
                    if let (Some(deadline), Some(timeout)) =
                        (deadline, self.config.sync_request_timeout)
                    {
                        if now >= deadline {
                            return Err(ConnError::Timeout(timeout));
                        }
                    }
                    if let Some(error) = self.too_slow(pace, now) {
                        return Err(error);
                    }
                    // the read timeout is also the idle clock's tick:
                    // quiet for the idle timeout counts only when no
                    // request of either side is in progress (part of a
                    // frame that stopped coming is no progress)
                    let quiet_enough = self
                        .config
                        .idle_timeout
                        .is_some_and(|idle| now.duration_since(quiet_since) >= idle);
                    if quiet_enough && self.is_idle() {
                        return Err(ConnError::Idle);
                    }
                    let quiet_for_long = quiet.is_some_and(|quiet| {
                        now.duration_since(quiet_since) >= quiet
                            && inbound.decoder.buffered() == 0
                            && !self.is_closed()
                    });
                    if quiet_for_long && self.is_idle() {
                        return Ok(Incoming::Quiet);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Before this side speaks first: the peer's envelope, from the first
    /// bytes it has sent, looked at without taking them. A peer that has
    /// sent nothing after [`FIRST_WORDS`] (or whose first frame is
    /// compressed, or a connection that cannot look: TLS) is spoken to in
    /// rpyc 6's. rpyc's own servers know their clients' envelope from
    /// their configuration; a service that calls its client in
    /// `on_connect` would otherwise send a 5.x client, or one with threads
    /// bound, what it cannot read.
    pub(super) fn learn_dialect(&self) {
        if self.dialect.load(Ordering::Acquire) != DIALECT_UNKNOWN {
            return;
        }
        // looked at once: the first request of ours, or never
        let Some(mut peek) = lock(&self.peek).take() else {
            return;
        };
        let deadline = Instant::now() + FIRST_WORDS;
        let mut first = [0u8; frame::HEADER_LEN + Route::LEN + 2];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(got) = peek(&mut first, left) else {
                return;
            };
            match dialect_of_first_bytes(&first[..got]) {
                Some(Some(dialect)) => {
                    // unless a reader learnt it meanwhile from the message itself
                    let _ = self.dialect.compare_exchange(
                        DIALECT_UNKNOWN,
                        dialect_code(dialect),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    return;
                }
                Some(None) => return,
                None if got == 0 || left.is_zero() || self.is_closed() => return,
                // part of a frame has come: the rest is a moment away
                None => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }

    /// The peer's dialect, learnt from `payload` if this is its first message.
    pub(super) fn dialect_of(&self, payload: &[u8]) -> Result<Dialect, ConnError> {
        if let Some(dialect) = dialect_of_code(self.dialect.load(Ordering::Acquire)) {
            return Ok(dialect);
        }
        let dialect = Dialect::detect(payload).ok_or(ConnError::UnknownDialect(
            payload.first().copied().unwrap_or(0),
        ))?;
        self.dialect.store(dialect_code(dialect), Ordering::Release);
        Ok(dialect)
    }

    /// With an idle timeout, a frame that has been coming for longer than
    /// it must average [`MIN_FRAME_RATE`]: trickling a byte just before
    /// each idle deadline holds a connection slot no longer than silence.
    pub(super) fn too_slow(&self, pace: &FramePace, now: Instant) -> Option<ConnError> {
        let idle = self.config.idle_timeout?;
        let began = pace.began?;
        let took = now.duration_since(began);
        let floor = MIN_FRAME_RATE as f64 * took.as_secs_f64();
        (took >= idle && (pace.bytes as f64) < floor).then_some(ConnError::TooSlow {
            bytes: pace.bytes,
            took,
        })
    }
}

/// The slowest a frame may come once it has been coming for longer than
/// the idle timeout, in bytes per second (Apache's mod_reqtimeout asks a
/// request body for 500 bytes/s by default).
pub const MIN_FRAME_RATE: usize = 500;

/// How the frame being read has been coming: since when, and how much of
/// it (and of what followed it in the same reads) has come.
#[derive(Debug, Default)]
pub(super) struct FramePace {
    began: Option<Instant>,
    bytes: usize,
}

impl FramePace {
    /// The pace of a frame of which `buffered` bytes are in already.
    pub(super) fn begun(buffered: usize, now: Instant) -> FramePace {
        FramePace {
            began: (buffered > 0).then_some(now),
            bytes: buffered,
        }
    }

    pub(super) fn arrived(&mut self, bytes: usize, now: Instant) {
        self.began.get_or_insert(now);
        self.bytes += bytes;
    }
}

/// The smallest read: enough for a typical request whole (a ping with
/// rpyc's 520-character payload is about 540 bytes), small enough that an
/// idle connection's read buffer takes a fraction of a page. A frame whose
/// header says it is longer is read in pieces of its size.
pub(super) const READ_MIN: usize = 1024;

/// How long a connection about to speak first waits for the peer's first
/// bytes, to learn its envelope; clients speak within milliseconds of
/// connecting, as `conn.root` does.
pub(super) const FIRST_WORDS: std::time::Duration = std::time::Duration::from_secs(2);

/// What a frame's first bytes (its header, then its payload's start) say
/// of the peer's dialect: `None` while too few have come; `Some(None)`
/// when no more would tell (a compressed frame, whose payload cannot be
/// looked at, or a whole frame of no dialect).
pub(super) fn dialect_of_first_bytes(bytes: &[u8]) -> Option<Option<Dialect>> {
    let header = bytes.get(..frame::HEADER_LEN)?;
    if header[4] != 0 {
        return Some(None);
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let payload = &bytes[frame::HEADER_LEN..];
    let enough = payload.len() >= Route::LEN + 2 || payload.len() >= len;
    enough.then(|| Dialect::detect(&payload[..payload.len().min(len)]))
}

/// `Connection::dialect`'s value before the peer's dialect is known.
pub(super) const DIALECT_UNKNOWN: u8 = 0;

/// A dialect as `Connection::dialect` keeps it.
fn dialect_code(dialect: Dialect) -> u8 {
    match dialect {
        Dialect::V5 => 5,
        Dialect::V6 => 6,
        Dialect::V6Threads => 7,
    }
}

/// The dialect `Connection::dialect` keeps, if it is known.
pub(super) fn dialect_of_code(code: u8) -> Option<Dialect> {
    match code {
        5 => Some(Dialect::V5),
        6 => Some(Dialect::V6),
        7 => Some(Dialect::V6Threads),
        _ => None,
    }
}

pub(super) fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
