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
    RemoteException, Route,
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
    /// A request raised an exception that rpyc's servers do not send back
    /// but raise where they are (`propagate_KeyboardInterrupt_locally`,
    /// `propagate_SystemExit_locally`), which ends the connection.
    #[error("{exception} raised serving a request ends the connection, as with rpyc's {key}")]
    Propagated {
        exception: String,
        key: &'static str,
    },
}

/// Looks at the bytes the peer has sent without taking them, waiting up to
/// the given time for some (`recv` with `MSG_PEEK` on a socket): how the
/// connection learns the peer's envelope before it speaks first.
pub type Peek = Box<dyn FnMut(&mut [u8], std::time::Duration) -> io::Result<usize> + Send>;

/// Called with every exception a request of the peer's raised, before it
/// is sent back (rpyc's `log_exceptions`).
pub type ExceptionLog = Arc<dyn Fn(Handler, &RemoteException) + Send + Sync>;

/// What becomes of the exceptions the peer's requests raise, as rpyc's
/// protocol configuration says.
#[derive(Clone)]
pub struct Exceptions {
    /// rpyc's `log_exceptions` (on by default): a server logs each one,
    /// with its traceback, at debug level. The server sets `log` for each
    /// connection when its log level shows them.
    pub log_exceptions: bool,
    pub log: Option<ExceptionLog>,
    /// rpyc's `propagate_KeyboardInterrupt_locally` (on by default): a
    /// `KeyboardInterrupt` is not sent back; the connection ends.
    pub propagate_keyboard_interrupt: bool,
    /// rpyc's `propagate_SystemExit_locally` (off by default).
    pub propagate_system_exit: bool,
    /// rpyc's `include_local_traceback` (on by default): off, the client
    /// gets "<traceback denied>" instead of the server's traceback.
    pub include_local_traceback: bool,
    /// rpyc's `include_local_version` (on by default): off, the
    /// exception's `_remote_version` is "<version denied>".
    pub include_local_version: bool,
}

impl Default for Exceptions {
    fn default() -> Exceptions {
        Exceptions {
            log_exceptions: true,
            log: None,
            propagate_keyboard_interrupt: true,
            propagate_system_exit: false,
            include_local_traceback: true,
            include_local_version: true,
        }
    }
}

impl std::fmt::Debug for Exceptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exceptions")
            .field("log_exceptions", &self.log_exceptions)
            .field("log", &self.log.is_some())
            .field(
                "propagate_keyboard_interrupt",
                &self.propagate_keyboard_interrupt,
            )
            .field("propagate_system_exit", &self.propagate_system_exit)
            .field("include_local_traceback", &self.include_local_traceback)
            .field("include_local_version", &self.include_local_version)
            .finish()
    }
}

impl Exceptions {
    /// The exception as the peer is to see it: without the server's
    /// traceback or version when the configuration denies them, in
    /// rpyc's words (`vinegar.dump`).
    fn as_sent(&self, exception: RemoteException) -> RemoteException {
        match exception {
            RemoteException::Raised(mut info) => {
                if !self.include_local_traceback {
                    info.traceback = "<traceback denied>".to_owned();
                }
                if !self.include_local_version {
                    for (name, value) in &mut info.attrs {
                        if name == "_remote_version" {
                            *value = brine::Value::str("<version denied>");
                        }
                    }
                }
                RemoteException::Raised(info)
            }
            other => other,
        }
    }

    /// The `(exception, config key)` of an exception that is to end the
    /// connection instead of going back (rpyc compares the exact class).
    fn propagated(&self, exception: &RemoteException) -> Option<(String, &'static str)> {
        let RemoteException::Raised(info) = exception else {
            return None;
        };
        if info.module != "builtins" {
            return None;
        }
        let key = match info.name.as_str() {
            "KeyboardInterrupt" if self.propagate_keyboard_interrupt => {
                "propagate_KeyboardInterrupt_locally"
            }
            "SystemExit" if self.propagate_system_exit => "propagate_SystemExit_locally",
            _ => return None,
        };
        let last = info
            .traceback
            .trim_end()
            .lines()
            .last()
            .unwrap_or(&info.name);
        Some((last.to_owned(), key))
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
    pub exceptions: Exceptions,
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
            exceptions: Exceptions::default(),
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
    /// How the frame being read is coming, across reads and whichever
    /// thread reads: a frame begun in the read that ended the one before
    /// is timed from then.
    pace: FramePace,
}

struct Outbound {
    writer: Box<dyn Write + Send>,
}

/// Replies parked for the threads that wait for them.
#[derive(Default)]
struct Waiting {
    replies: HashMap<i64, Option<Reply>>,
    /// With threads bound, the threads of ours that wait for a reply, by
    /// id, and the peer's requests routed to each meanwhile.
    inboxes: HashMap<u64, threads::Inbox>,
    /// Threads serving requests that a waiting reader could not serve.
    helpers: usize,
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
    peek: Mutex<Option<Peek>>,
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
                pace: FramePace::default(),
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
            peek: Mutex::new(None),
        })
    }

    /// How to look at the peer's first bytes before reading them, for a
    /// server that may speak first (see [`Connection::learn_dialect`]).
    pub fn set_peek(&self, peek: Peek) {
        *lock(&self.peek) = Some(peek);
    }

    /// Installs the session that answers the peer's requests.
    pub fn set_session(&self, session: Arc<dyn Session>) {
        *lock(&self.session) = Some(session);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
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
        dialect_of_code(self.dialect.load(Ordering::Acquire)).unwrap_or(Dialect::V6)
    }

    fn is_idle(&self) -> bool {
        lock(&self.activity).serving == 0 && lock(&self.waiting).replies.is_empty()
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

mod inbound;
mod outbound;
mod requests;
mod serving;
mod threads;

pub use inbound::MIN_FRAME_RATE;
use inbound::{dialect_of_code, FramePace, DIALECT_UNKNOWN};
use serving::bad_request_exception;

#[cfg(test)]
mod tests;
