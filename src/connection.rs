//! One RPyC connection over any byte stream: sequence numbers, replies,
//! requests sent while the peer's requests keep arriving, and the serve loop.
//!
//! Threads share a connection the way rpyc's do: one of them at a time reads
//! (whoever holds the inbound lock), a reply it reads for another thread is
//! parked for that thread, and a request it reads it serves itself. So a
//! thread waiting for its reply serves the peer's nested requests meanwhile,
//! which is what callbacks need (server → client → server ...).
//!
//! The connection knows nothing of Python: requests go to a [`Session`],
//! which owns the objects behind the references.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use thiserror::Error;

use crate::protocol::brine::{self, BulkMemory, EncodeError, Value};
use crate::protocol::frame::{self, Decoder, Frame, FrameError, Limits};
use crate::protocol::message::{
    self, BadRequest, Boxed, Dialect, ExceptionInfo, Handler, Message, MessageError,
    RemoteException,
};
use crate::sync::lock;

/// What a request comes back with: a value, or the exception it raised.
pub type Reply = Result<Boxed, RemoteException>;

/// What a request's handling keeps alive until its reply is sent: the
/// objects of the request and the result. Dropping them may release the
/// peer's objects (DEL), which must reach the peer after the reply that
/// still names them, as with rpyc, whose handler's locals live that long.
pub type KeepAlive = Option<Box<dyn Send>>;

/// The per-connection side of a service: answers the peer's requests.
pub trait Session: Send + Sync {
    /// Serves one request. May send requests of its own through `conn`
    /// (which serves nested requests while it waits).
    fn handle(&self, conn: &Arc<Connection>, handler: Handler, args: Boxed) -> (Reply, KeepAlive);

    /// The connection is over: drop every object the peer held.
    fn close(&self);

    /// Memory for a bulk byte string of `len` bytes the peer is sending,
    /// read into straight from the stream: where the session wants the
    /// value to live (the classic service: a Python bytes object). `None`
    /// leaves it to a plain vector.
    fn bulk_memory(&self, _len: usize) -> Option<Box<dyn BulkMemory>> {
        None
    }
}

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("connection closed by peer")]
    Eof,
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("bad message: {0}")]
    Message(#[from] MessageError),
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    #[error("idle for longer than the idle timeout")]
    Idle,
    #[error("a frame came at {bytes} bytes in {took:.1?}, slower than {MIN_FRAME_RATE} bytes/s")]
    TooSlow {
        bytes: usize,
        took: std::time::Duration,
    },
    /// A request of ours got no reply within `Config::sync_request_timeout`
    /// (rpyc raises `AsyncResultTimeout("result expired")` there). The
    /// connection stays usable; a reply that comes later is dropped.
    #[error("no reply within {0:?} (sync_request_timeout)")]
    Timeout(std::time::Duration),
    #[error("not an RPyC 4/5/6 peer: its first message starts with {0:#04x}")]
    UnknownDialect(u8),
}

/// The slowest a frame may come once it has been coming for longer than
/// the idle timeout, in bytes per second (Apache's mod_reqtimeout asks a
/// request body for 500 bytes/s by default).
pub const MIN_FRAME_RATE: usize = 500;

/// How the frame being read has been coming: since when, and how much of
/// it (and of what followed it in the same reads) has come.
#[derive(Debug, Default)]
struct FramePace {
    began: Option<Instant>,
    bytes: usize,
}

impl FramePace {
    fn arrived(&mut self, bytes: usize, now: Instant) {
        self.began.get_or_insert(now);
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    pub brine_depth: usize,
    /// Compress outgoing payloads over the threshold, as rpyc does.
    pub compress: bool,
    /// End the connection when the peer sends nothing for this long while
    /// nothing is in progress. The transport's reads must time out at this
    /// interval for it to take effect (see `server::connection_over`).
    pub idle_timeout: Option<std::time::Duration>,
    /// How long [`Connection::sync_request`] waits for its reply before it
    /// gives up with [`ConnError::Timeout`]; `None` waits forever. rpyc's
    /// `sync_request_timeout`, 30 s by default as there. A thread waiting
    /// while another reads gives up on time; a thread that is itself the
    /// reader gives up at the first read timeout past the deadline, so the
    /// transport's reads must time out (at [`Config::read_timeout`], as
    /// server connections' do) for it to take effect there.
    pub sync_request_timeout: Option<std::time::Duration>,
}

/// rpyc 6.0.2's `DEFAULT_CONFIG["sync_request_timeout"]`.
pub const DEFAULT_SYNC_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Config {
    /// What one message may take decoded: `brine_depth` levels, and a
    /// memory budget that is a small multiple of the largest payload
    /// allowed, so that neither lying counts nor a zlib bomb can make a
    /// connection take more.
    pub fn decode_limits(&self) -> brine::DecodeLimits {
        brine::DecodeLimits::for_messages(self.limits.max_payload_size, self.brine_depth)
    }

    /// The read timeout a transport should have so that both the idle
    /// clock and the sync-request deadline are looked at: the shorter of
    /// the two. (With an idle timeout longer than the sync-request
    /// timeout, idleness is noticed up to one such interval late.)
    pub fn read_timeout(&self) -> Option<std::time::Duration> {
        match (self.idle_timeout, self.sync_request_timeout) {
            (Some(idle), Some(sync)) => Some(idle.min(sync)),
            (idle, sync) => idle.or(sync),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            limits: Limits::default(),
            brine_depth: crate::protocol::brine::DEFAULT_MAX_DEPTH,
            compress: true,
            idle_timeout: None,
            sync_request_timeout: Some(DEFAULT_SYNC_REQUEST_TIMEOUT),
        }
    }
}

/// How a serve loop returned with the connection still open or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The peer closed the connection, or it was closed.
    Ended,
    /// The peer has been quiet (see [`Connection::serve_until_quiet`]).
    Quiet,
}

/// What a read brought.
enum Incoming<M = Message> {
    Message(M),
    Quiet,
}

struct Inbound {
    reader: Box<dyn Read + Send>,
    decoder: Decoder,
}

struct Outbound {
    writer: Box<dyn Write + Send>,
}

/// Replies parked for the threads that wait for them.
#[derive(Default)]
struct Waiting {
    replies: HashMap<i64, Option<Reply>>,
    /// Why the connection ended, once it has; every waiter then gives up.
    ended: Option<String>,
    /// Threads asleep on `Connection::changed`: waking a condvar is a
    /// system call even with nobody asleep, and the serve loop would
    /// otherwise make one per request.
    sleepers: usize,
}

/// Shuts the underlying transport down (one direction or both), so a
/// thread blocked reading wakes up.
pub type Shutdown = Box<dyn Fn(std::net::Shutdown) + Send + Sync>;

/// The peer's requests being served, and whether the server is stopping.
#[derive(Default)]
struct Activity {
    serving: usize,
    draining: bool,
}

pub struct Connection {
    config: Config,
    inbound: Mutex<Inbound>,
    outbound: Mutex<Outbound>,
    /// Frames whose senders found the writer busy and could not wait
    /// (reference drops from a finalizer); whoever writes next sends them.
    send_queue: Mutex<Vec<Vec<u8>>>,
    /// Threads inside [`Connection::hold_requests`]: while any is, requests
    /// sent without waiting are queued, not written.
    holding: std::sync::atomic::AtomicUsize,
    waiting: Mutex<Waiting>,
    /// Signalled when a reply is parked, when the reader lets go of the
    /// inbound side, and when the connection ends.
    changed: Condvar,
    next_seq: AtomicI64,
    /// The peer's message envelope (`DIALECT_*`), learnt from the first
    /// message it sends; rpyc 6's until then.
    dialect: std::sync::atomic::AtomicU8,
    /// When the connection was made, and whether the peer has sent a whole
    /// message since: a peer that sends nothing, or one byte at a time, is
    /// cut after the handshake timeout (see `server::Connections`).
    opened: std::time::Instant,
    greeted: AtomicBool,
    /// When the peer last sent a whole message, in milliseconds after
    /// `opened`: a draining connection ends once it has been quiet a while.
    last_message_ms: std::sync::atomic::AtomicU64,
    /// Bytes of a frame received but not yet whole, kept by the reader so
    /// the idle check (made while it holds the inbound side) need not lock
    /// it: a peer halfway through sending a frame is not idle.
    partial_frame: std::sync::atomic::AtomicUsize,
    closed: AtomicBool,
    shutdown: Shutdown,
    activity: Mutex<Activity>,
    session: Mutex<Option<Arc<dyn Session>>>,
}

impl Connection {
    pub fn new(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        shutdown: Shutdown,
        config: Config,
    ) -> Arc<Connection> {
        crate::memory::install_host();
        Arc::new(Connection {
            inbound: Mutex::new(Inbound {
                reader,
                decoder: Decoder::new(config.limits)
                    .locating_bulk(message::locate_bulk, brine::BULK_MIN),
            }),
            outbound: Mutex::new(Outbound { writer }),
            config,
            send_queue: Mutex::new(Vec::new()),
            holding: std::sync::atomic::AtomicUsize::new(0),
            waiting: Mutex::new(Waiting::default()),
            changed: Condvar::new(),
            next_seq: AtomicI64::new(0),
            partial_frame: std::sync::atomic::AtomicUsize::new(0),
            opened: std::time::Instant::now(),
            greeted: AtomicBool::new(false),
            last_message_ms: std::sync::atomic::AtomicU64::new(0),
            dialect: std::sync::atomic::AtomicU8::new(DIALECT_UNKNOWN),
            closed: AtomicBool::new(false),
            shutdown,
            activity: Mutex::new(Activity::default()),
            session: Mutex::new(None),
        })
    }

    /// Installs the session that answers the peer's requests.
    pub fn set_session(&self, session: Arc<dyn Session>) {
        *lock(&self.session) = Some(session);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Serves the peer until it closes the connection (`Ok`) or the stream
    /// fails; either way the session's objects are released on return.
    pub fn serve_all(self: &Arc<Self>) -> Result<(), ConnError> {
        self.serve_until_quiet(None).map(|_| ())
    }

    /// Serves the peer as [`Connection::serve_all`] does, but with
    /// `quiet: Some(time)` returns [`Served::Quiet`] once the peer has sent
    /// nothing for that long while nothing was in progress and nothing is
    /// buffered: the connection stays open, and whoever resumes serving it
    /// when its stream is readable again loses nothing. The transport's
    /// reads must time out at `time` (or sooner) for this to take effect.
    pub fn serve_until_quiet(
        self: &Arc<Self>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Served, ConnError> {
        let result = loop {
            match self.serve_next(quiet) {
                Ok(Incoming::Quiet) => {
                    lock(&self.inbound).decoder.release_if_empty();
                    // a waiter that found the inbound side taken just now
                    // sleeps until the reader says it let go: say it again
                    self.notify();
                    return Ok(Served::Quiet);
                }
                Ok(Incoming::Message(())) => continue,
                Err(ConnError::Eof | ConnError::Closed) => break Ok(Served::Ended),
                Err(error) => break Err(error),
            }
        };
        self.close();
        result
    }

    /// Reads and handles one message, unless the peer was quiet.
    fn serve_next(
        self: &Arc<Self>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Incoming<()>, ConnError> {
        let message = {
            let mut inbound = lock(&self.inbound);
            let message = self.read_message(&mut inbound, None, quiet);
            drop(inbound);
            self.notify();
            message
        };
        match message {
            Ok(Incoming::Quiet) => Ok(Incoming::Quiet),
            Ok(Incoming::Message(message)) => self.dispatch(Ok(message)).map(Incoming::Message),
            Err(error) => self.dispatch(Err(error)).map(Incoming::Message),
        }
    }

    /// Sends a request and waits for its reply, serving whatever the peer
    /// sends in the meantime; gives up after `Config::sync_request_timeout`.
    pub fn sync_request(
        self: &Arc<Self>,
        handler: Handler,
        args: Boxed,
    ) -> Result<Reply, ConnError> {
        let timeout = self.config.sync_request_timeout;
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).replies.insert(seq, None);
        let sent = self.send(&Message::Request { seq, handler, args });
        if let Err(error) = sent {
            lock(&self.waiting).replies.remove(&seq);
            return Err(error);
        }
        loop {
            let mut waiting = lock(&self.waiting);
            if let Some(Some(_)) = waiting.replies.get(&seq) {
                if let Some(Some(reply)) = waiting.replies.remove(&seq) {
                    return Ok(reply);
                }
            }
            if waiting.ended.is_some() {
                waiting.replies.remove(&seq);
                return Err(ConnError::Closed);
            }
            if let (Some(deadline), Some(timeout)) = (deadline, timeout) {
                if Instant::now() >= deadline {
                    waiting.replies.remove(&seq);
                    return Err(ConnError::Timeout(timeout));
                }
            }
            // Taking the inbound side while holding `waiting` cannot miss a
            // wake-up: the reader must take `waiting` to announce it let go.
            match self.inbound.try_lock() {
                Ok(mut inbound) => {
                    drop(waiting);
                    let message = self.read_message(&mut inbound, deadline, None);
                    drop(inbound);
                    self.notify();
                    match message {
                        Ok(Incoming::Message(message)) => self.dispatch(Ok(message))?,
                        Ok(Incoming::Quiet) => {}
                        // looked at on the next turn, with the reply that
                        // may have been parked meanwhile
                        Err(ConnError::Timeout(_)) => {}
                        Err(error) => {
                            self.end(&error.to_string());
                            return Err(error);
                        }
                    }
                }
                Err(TryLockError::WouldBlock) => {
                    waiting.sleepers += 1;
                    let mut waiting = match deadline {
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            self.changed
                                .wait_timeout(waiting, left)
                                .map(|(guard, _)| guard)
                                .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                        }
                        None => self
                            .changed
                            .wait(waiting)
                            .unwrap_or_else(|poisoned| poisoned.into_inner()),
                    };
                    waiting.sleepers -= 1;
                }
                Err(TryLockError::Poisoned(_)) => return Err(ConnError::Closed),
            }
        }
    }

    /// Sends a request whose reply nobody waits for (rpyc's DEL from a
    /// finalizer). Never blocks on a busy writer: it queues instead.
    pub fn async_request(&self, handler: Handler, args: Boxed) -> Result<(), ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // the queue outlives the message: the frame goes in one piece
        let frame_bytes = self
            .frame_of(&Message::Request { seq, handler, args })?
            .joined();
        lock(&self.send_queue).push(frame_bytes);
        if self.holding.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        match self.outbound.try_lock() {
            Ok(mut outbound) => self.flush_queue(&mut outbound),
            Err(_) => Ok(()),
        }
    }

    /// Reads the next message. A reader waiting for a reply of its own
    /// passes the reply's `deadline`: past it, the first read timeout
    /// returns `ConnError::Timeout` (the stream stays in step: what was
    /// read of a frame stays buffered). With `quiet`, a read timeout after
    /// that long without bytes, with nothing in progress or buffered,
    /// returns `Incoming::Quiet`.
    fn read_message(
        &self,
        inbound: &mut Inbound,
        deadline: Option<Instant>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Incoming<Message>, ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        // the idle clock: since the last bytes came in (or reading began)
        let mut quiet_since = Instant::now();
        let mut pace = FramePace::default();
        loop {
            let limits = self.config.decode_limits();
            let decoded = match inbound.decoder.next_payload()? {
                Some(payload) => {
                    let dialect = self.dialect_of(&payload.bytes)?;
                    Some(Message::decode_with_bulk(
                        &payload.bytes,
                        payload.bulk,
                        dialect,
                        limits,
                    ))
                }
                None => None,
            };
            if let Some(decoded) = decoded {
                pace = FramePace::default();
                self.greeted.store(true, Ordering::Release);
                let since_open =
                    u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.last_message_ms.store(since_open, Ordering::Release);
                return match decoded {
                    Ok(message) => Ok(Incoming::Message(message)),
                    Err(MessageError::BadRequest { seq, reason }) => {
                        // rpyc answers these with an exception and carries on
                        self.send(&Message::Exception {
                            seq,
                            exception: bad_request_exception(&reason),
                        })?;
                        continue;
                    }
                    Err(error) => Err(error.into()),
                };
            }
            self.partial_frame
                .store(inbound.decoder.buffered(), Ordering::Relaxed);
            let Inbound { reader, decoder } = inbound;
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
                    if let Some(error) = self.too_slow(&pace, quiet_since) {
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
                    if let Some(error) = self.too_slow(&pace, now) {
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

    fn dispatch(self: &Arc<Self>, message: Result<Message, ConnError>) -> Result<(), ConnError> {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                self.end(&error.to_string());
                return Err(error);
            }
        };
        match message {
            Message::Request {
                handler: Handler::Close,
                ..
            } => {
                // rpyc 6.0.2 closes without replying: the peer sees EOF
                self.close();
                Err(ConnError::Closed)
            }
            Message::Request { seq, handler, args } => {
                lock(&self.activity).serving += 1;
                let sent = self.serve_request(seq, handler, args);
                lock(&self.activity).serving -= 1;
                sent
            }
            Message::Reply { seq, value } => {
                self.park(seq, Ok(value));
                Ok(())
            }
            Message::Exception { seq, exception } => {
                self.park(seq, Err(exception));
                Ok(())
            }
        }
    }

    fn serve_request(
        self: &Arc<Self>,
        seq: i64,
        handler: Handler,
        args: Boxed,
    ) -> Result<(), ConnError> {
        let session = lock(&self.session).clone();
        let mut kept: KeepAlive = None;
        let reply = match session {
            // A bug of ours must cost this request, not the connection, its
            // objects or (in a thread pool) the worker: answer it instead.
            Some(session) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session.handle(self, handler, args)
            }))
            .map(|(reply, keep_alive)| {
                kept = keep_alive;
                reply
            })
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                Err(RemoteException::Raised(ExceptionInfo::builtin(
                    "SystemError",
                    &format!("rpycd failed internally serving {handler:?}: {what}"),
                )))
            }),
            None => Err(RemoteException::Raised(ExceptionInfo::builtin(
                "RuntimeError",
                "no service on this connection",
            ))),
        };
        let message = match reply {
            Ok(value) => Message::Reply { seq, value },
            Err(exception) => Message::Exception { seq, exception },
        };
        let sent = self.send(&message);
        drop(kept);
        sent
    }

    /// Runs `f` with requests sent without waiting (DEL) held back: they
    /// go out with the next frame written, after it. A session drops a
    /// request's objects in here before its reply is sent, so a DEL that
    /// dropping causes cannot overtake the reply that still names the
    /// object, without a second pass (and a second hold of the GIL) after
    /// the reply.
    pub fn hold_requests<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Release<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.holding.fetch_add(1, Ordering::AcqRel);
        let _release = Release(&self.holding);
        f()
    }

    /// The server is stopping: the connection is to end once it has been
    /// quiet for a while (see `end_if_quiet`), so that requests in flight,
    /// and a session whose next request is on its way, are served first.
    pub fn drain(&self) {
        lock(&self.activity).draining = true;
    }

    /// For a draining connection: when nothing is in progress and the peer
    /// has sent nothing for `quiet`, stop reading (replies can still go
    /// out) so the connection ends. Whether it did.
    pub fn end_if_quiet(&self, quiet: std::time::Duration) -> bool {
        let activity = lock(&self.activity);
        if !activity.draining
            || activity.serving > 0
            || self.partial_frame.load(Ordering::Relaxed) > 0
        {
            return false;
        }
        let last = std::time::Duration::from_millis(self.last_message_ms.load(Ordering::Acquire));
        if self.opened.elapsed().saturating_sub(last) < quiet {
            return false;
        }
        (self.shutdown)(std::net::Shutdown::Read);
        true
    }

    /// When the peer must have sent its first whole message, if it has not yet.
    pub fn greeting_deadline(&self, timeout: std::time::Duration) -> Option<std::time::Instant> {
        (!self.greeted.load(Ordering::Acquire)).then(|| self.opened + timeout)
    }

    /// The dialect to speak: the peer's, once known.
    pub fn dialect(&self) -> Dialect {
        match self.dialect.load(Ordering::Acquire) {
            DIALECT_V5 => Dialect::V5,
            _ => Dialect::V6,
        }
    }

    /// Where the session wants a bulk byte string of `len` bytes read to.
    fn bulk_memory(&self, len: usize) -> Option<Box<dyn BulkMemory>> {
        let session = lock(&self.session).clone()?;
        session.bulk_memory(len)
    }

    /// The peer's dialect, learnt from `payload` if this is its first message.
    fn dialect_of(&self, payload: &[u8]) -> Result<Dialect, ConnError> {
        match self.dialect.load(Ordering::Acquire) {
            DIALECT_V5 => Ok(Dialect::V5),
            DIALECT_V6 => Ok(Dialect::V6),
            _ => {
                let dialect = Dialect::detect(payload).ok_or(ConnError::UnknownDialect(
                    payload.first().copied().unwrap_or(0),
                ))?;
                let code = match dialect {
                    Dialect::V5 => DIALECT_V5,
                    Dialect::V6 => DIALECT_V6,
                };
                self.dialect.store(code, Ordering::Release);
                Ok(dialect)
            }
        }
    }

    fn is_idle(&self) -> bool {
        lock(&self.activity).serving == 0 && lock(&self.waiting).replies.is_empty()
    }

    /// With an idle timeout, a frame that has been coming for longer than
    /// it must average [`MIN_FRAME_RATE`]: trickling a byte just before
    /// each idle deadline holds a connection slot no longer than silence.
    fn too_slow(&self, pace: &FramePace, now: Instant) -> Option<ConnError> {
        let idle = self.config.idle_timeout?;
        let began = pace.began?;
        let took = now.duration_since(began);
        let floor = MIN_FRAME_RATE as f64 * took.as_secs_f64();
        (took >= idle && (pace.bytes as f64) < floor).then_some(ConnError::TooSlow {
            bytes: pace.bytes,
            took,
        })
    }

    fn park(&self, seq: i64, reply: Reply) {
        let mut waiting = lock(&self.waiting);
        // a reply nobody waits for (an async request's) is dropped
        if let Some(slot) = waiting.replies.get_mut(&seq) {
            *slot = Some(reply);
        }
        self.wake_sleepers(waiting);
    }

    /// Tells the threads waiting for a reply or for the inbound side to
    /// look again (taking `waiting` orders this after their last look).
    fn notify(&self) {
        self.wake_sleepers(lock(&self.waiting));
    }

    fn wake_sleepers(&self, waiting: MutexGuard<'_, Waiting>) {
        let anyone = waiting.sleepers > 0;
        drop(waiting);
        if anyone {
            self.changed.notify_all();
        }
    }

    /// Encodes, frames and writes one message.
    pub fn send(&self, message: &Message) -> Result<(), ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let frame_bytes = match self.frame_of(message) {
            Ok(frame_bytes) => frame_bytes,
            Err(ConnError::Encode(error)) => {
                // a reply too big or deep for brine still owes the peer an answer
                let Message::Reply { seq, .. } = message else {
                    return Err(error.into());
                };
                let exception = Message::Exception {
                    seq: *seq,
                    exception: RemoteException::Raised(ExceptionInfo::builtin(
                        "ValueError",
                        &format!("cannot send the reply: {error}"),
                    )),
                };
                Frame::whole(self.frame_of(&exception)?.joined())
            }
            Err(error) => return Err(error),
        };
        let mut outbound = lock(&self.outbound);
        let written = frame_bytes
            .write_to(&mut outbound.writer)
            .and_then(|()| outbound.writer.flush());
        if let Err(error) = written {
            drop(outbound);
            self.end(&error.to_string());
            return Err(error.into());
        }
        self.flush_queue(&mut outbound)
    }

    /// A message as one frame: encoded straight after the header's room,
    /// so a plain payload is never copied, and a bulk byte string is
    /// written from where it is.
    fn frame_of<'v>(&self, message: &'v Message) -> Result<Frame<'v>, ConnError> {
        // room for a bulk string that stays where it is is never touched,
        // so costs no memory; a buffer grown by doublings instead left the
        // threaded server's malloc arenas fragmented (the soak's RSS rose
        // by 27 MiB in two minutes)
        let mut buffer = frame::begin(message.size_hint());
        let detached = message.encode_detached(self.dialect(), &mut buffer)?;
        Ok(frame::seal_detached(
            buffer,
            detached,
            self.config.compress,
        )?)
    }

    fn flush_queue(&self, outbound: &mut Outbound) -> Result<(), ConnError> {
        loop {
            let queued = std::mem::take(&mut *lock(&self.send_queue));
            if queued.is_empty() {
                return Ok(());
            }
            for frame_bytes in queued {
                outbound.writer.write_all(&frame_bytes)?;
            }
            outbound.writer.flush()?;
        }
    }

    /// Ends the connection: wakes every waiter and every blocked reader, and
    /// releases the session's objects.
    pub fn close(&self) {
        self.end("connection closed");
    }

    fn end(&self, reason: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        (self.shutdown)(std::net::Shutdown::Both);
        {
            let mut waiting = lock(&self.waiting);
            waiting.ended.get_or_insert_with(|| reason.to_owned());
        }
        self.changed.notify_all();
        let session = lock(&self.session).take();
        if let Some(session) = session {
            session.close();
        }
    }
}

fn bad_request_exception(reason: &BadRequest) -> RemoteException {
    RemoteException::Raised(match reason {
        // rpyc looks the handler up in a dict: an unknown one is a KeyError
        BadRequest::UnknownHandler(code) => ExceptionInfo {
            args: vec![Value::Int(*code)],
            ..ExceptionInfo::builtin("KeyError", &code.to_string())
        },
        BadRequest::Malformed(what) => ExceptionInfo::builtin("ValueError", what),
    })
}

/// The smallest read: enough for a typical request whole (a ping with
/// rpyc's 520-character payload is about 540 bytes), small enough that an
/// idle connection's read buffer takes a fraction of a page. A frame whose
/// header says it is longer is read in pieces of its size.
const READ_MIN: usize = 1024;

const DIALECT_UNKNOWN: u8 = 0;
const DIALECT_V5: u8 = 5;
const DIALECT_V6: u8 = 6;

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_millis(300);

    /// A connection over one end of a socket pair, set up as the server
    /// sets up its own (reads time out at `Config::read_timeout`).
    fn connection() -> (Arc<Connection>, UnixStream) {
        let config = Config {
            sync_request_timeout: Some(TIMEOUT),
            ..Config::default()
        };
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
}
