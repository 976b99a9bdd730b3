//! Threaded mode's quiet connections, held without a thread: a connection
//! whose peer has sent nothing for [`QUIET`] is parked here (its socket in
//! one epoll set, watched by one thread), and its serving thread goes back
//! to wait for other work. When the peer sends again, or the connection is
//! shut down (drain, greeting cut, interrupt), it is handed back to a
//! thread, which serves it on as if it had never left. So a thousand idle
//! sessions cost a thousand small connection records, not a thousand
//! thread stacks and Python thread states, as nginx keeps idle keep-alive
//! connections in its event loop rather than in a worker.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::Connections;
use crate::connection::Connection;
use crate::daemon::log::Logger;
use crate::service::PeerInfo;
use crate::sync::lock;

/// How long a connection's peer must be quiet before its thread lets it
/// go: long enough that a client's requests a few milliseconds apart (a
/// script, a loop of calls) never pay the hand-back, short enough that
/// idle sessions soon hold no thread.
pub(super) const QUIET: Duration = Duration::from_millis(250);

/// A live connection of a threaded server, between two bursts of
/// requests or being served, and what serving it on needs. Counted among
/// the server's live connections until dropped; dropping it closes it.
pub(super) struct Parked {
    pub conn: Arc<Connection>,
    pub info: PeerInfo,
    /// The socket to watch; it stays open as long as `conn` does.
    pub fd: RawFd,
    /// Handed back because it was idle for the idle timeout, not because
    /// its peer sent anything.
    pub idle: bool,
    id: u64,
    connections: Arc<Connections>,
}

impl Parked {
    /// Counts `conn` among `connections` for as long as this lives.
    pub(super) fn new(
        conn: Arc<Connection>,
        info: PeerInfo,
        fd: RawFd,
        connections: &Arc<Connections>,
    ) -> Parked {
        Parked {
            id: connections.add(&conn),
            connections: connections.clone(),
            conn,
            info,
            fd,
            idle: false,
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // a no-op for a connection served to its end; otherwise (a thread
        // that could not start, a server that stopped) it ends here
        self.conn.close();
        self.connections.remove(self.id);
    }
}

/// Serves a connection handed back (in some thread, not the poller's).
pub(super) type Resume = Box<dyn Fn(Parked) + Send + Sync>;

/// The parked connections and the thread that watches them. Stops its
/// thread when dropped; connections still parked then are closed.
pub(super) struct Parking {
    shared: Arc<Shared>,
    poller: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    epoll: Epoll,
    /// Wakes the poller: to stop, or to look at a new idle deadline.
    wake: EventFd,
    stopping: AtomicBool,
    parked: Mutex<HashMap<u64, Parked>>,
    /// Idle deadlines, soonest first; an entry whose connection was handed
    /// back meanwhile is skipped when it comes up.
    deadlines: Mutex<BinaryHeap<Reverse<(Instant, u64)>>>,
    next_token: AtomicU64,
    idle_timeout: Option<Duration>,
    /// When to give freed memory back to the system, once threads ended.
    trim_due: Mutex<Option<Instant>>,
}

/// How long after threads end the memory they freed is given back: long
/// enough for the rest of a burst's threads to end too.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// The token of the wake-up eventfd in the epoll set; connections' tokens
/// count up from zero and never reach it.
const WAKE: u64 = u64::MAX;

impl Parking {
    /// Starts the poller, which hands every connection that needs serving
    /// again to the `Resume` that `resumer` makes (given the lot where the
    /// threads it starts park connections).
    pub(super) fn start(
        idle_timeout: Option<Duration>,
        resumer: impl FnOnce(Lot) -> Resume,
        log: Logger,
    ) -> std::io::Result<Parking> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let shared = Arc::new(Shared {
            epoll,
            wake,
            stopping: AtomicBool::new(false),
            parked: Mutex::default(),
            deadlines: Mutex::default(),
            next_token: AtomicU64::new(0),
            idle_timeout,
            trim_due: Mutex::default(),
        });
        let resume = resumer(Lot {
            shared: shared.clone(),
        });
        let watched = shared.clone();
        let poller = std::thread::Builder::new()
            .name("parking".into())
            .spawn(move || watched.watch(&resume, &log))?;
        Ok(Parking {
            shared,
            poller: Some(poller),
        })
    }

    /// Where the threads that serve connections park them.
    pub(super) fn lot(&self) -> Lot {
        Lot {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let _ = self.shared.wake.write(1);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
        // closed as they are dropped, outside the lock
        let left: Vec<Parked> = lock(&self.shared.parked).drain().map(|(_, p)| p).collect();
        drop(left);
    }
}

/// Where a serving thread parks a quiet connection.
#[derive(Clone)]
pub(super) struct Lot {
    shared: Arc<Shared>,
}

impl Lot {
    /// A serving thread ends: once its burst's threads have, the memory
    /// they freed (read buffers, Python thread states, the allocator's
    /// per-thread arenas) goes back to the system, which glibc's malloc
    /// does not do by itself for memory in the middle of its heaps. After
    /// a thousand connections went quiet, the daemon shrinks back.
    pub(super) fn thread_ended(&self) {
        let mut due = lock(&self.shared.trim_due);
        if due.is_none() {
            *due = Some(Instant::now() + TRIM_AFTER);
            drop(due);
            let _ = self.shared.wake.write(1);
        }
    }

    /// Parks `parked`, whose peer has been quiet for [`QUIET`]; gives it
    /// back if it cannot be watched (the caller then serves it on itself).
    pub(super) fn park(&self, parked: Parked) -> Option<Parked> {
        let shared = &self.shared;
        if shared.stopping.load(Ordering::Acquire) {
            return Some(parked);
        }
        let token = shared.next_token.fetch_add(1, Ordering::Relaxed);
        let fd = parked.fd;
        lock(&shared.parked).insert(token, parked);
        // one-shot: the poller takes the connection out on its first event,
        // and the socket gives none until it is added again
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        // SAFETY: `fd` belongs to the parked connection, which the map
        // keeps open at least until the poller has removed it from the set
        let socket = unsafe { BorrowedFd::borrow_raw(fd) };
        if shared
            .epoll
            .add(socket, EpollEvent::new(interest, token))
            .is_err()
        {
            // no event can come for a socket not in the set, so the entry
            // is still there to give back
            return lock(&shared.parked).remove(&token);
        }
        if let Some(idle) = shared.idle_timeout {
            // quiet for QUIET already when parked
            let due = Instant::now() + idle.saturating_sub(QUIET);
            let mut deadlines = lock(&shared.deadlines);
            deadlines.push(Reverse((due, token)));
            // entries of connections handed back before their deadline
            // wait there until it comes; a long idle timeout and a busy
            // server must not pile them up
            if deadlines.len() > 64 && deadlines.len() > 2 * lock(&shared.parked).len() {
                let parked = lock(&shared.parked);
                deadlines.retain(|Reverse((_, token))| parked.contains_key(token));
            }
            drop(deadlines);
            let _ = shared.wake.write(1);
        }
        None
    }
}

impl Shared {
    /// The poller's loop: hands back each connection whose socket has
    /// something (data, end of stream, an error) or whose idle deadline
    /// passed, until the parking stops.
    fn watch(&self, resume: &Resume, log: &Logger) {
        let mut events = vec![EpollEvent::empty(); 64];
        while !self.stopping.load(Ordering::Acquire) {
            let trim_due = *lock(&self.trim_due);
            let next = match (self.next_deadline(), trim_due) {
                (Some(deadline), Some(trim)) => Some(deadline.min(trim)),
                (deadline, trim) => deadline.or(trim),
            };
            let timeout = next.map_or(EpollTimeout::NONE, |due| {
                let left = due.saturating_duration_since(Instant::now());
                // rounded up, so a deadline is not missed by a millisecond
                EpollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(EpollTimeout::MAX)
            });
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(error) => {
                    log.error(format_args!("parking: epoll_wait failed: {error}"));
                    std::thread::sleep(Duration::from_millis(100));
                    0
                }
            };
            for event in &events[..ready] {
                match event.data() {
                    WAKE => {
                        let _ = self.wake.read();
                    }
                    token => {
                        if let Some(parked) = self.take(token) {
                            resume(parked);
                        }
                    }
                }
            }
            for parked in self.take_idle() {
                resume(parked);
            }
            self.trim_if_due();
        }
    }

    /// Takes a connection out of the parking and the epoll set.
    fn take(&self, token: u64) -> Option<Parked> {
        let parked = lock(&self.parked).remove(&token)?;
        // SAFETY: the connection (and so its socket) is alive: we hold it
        let socket = unsafe { BorrowedFd::borrow_raw(parked.fd) };
        let _ = self.epoll.delete(socket);
        Some(parked)
    }

    /// The connections whose idle deadline has passed.
    fn take_idle(&self) -> Vec<Parked> {
        let now = Instant::now();
        let mut due = Vec::new();
        loop {
            let token = {
                let mut deadlines = lock(&self.deadlines);
                match deadlines.peek() {
                    Some(Reverse((when, token))) if *when <= now => {
                        let token = *token;
                        deadlines.pop();
                        token
                    }
                    _ => break,
                }
            };
            if let Some(mut parked) = self.take(token) {
                parked.idle = true;
                due.push(parked);
            }
        }
        due
    }

    fn trim_if_due(&self) {
        let mut due = lock(&self.trim_due);
        if due.is_some_and(|due| due <= Instant::now()) {
            *due = None;
            drop(due);
            // SAFETY: malloc_trim has no preconditions; it takes the
            // allocator's locks itself
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        lock(&self.deadlines).peek().map(|Reverse((when, _))| *when)
    }
}
