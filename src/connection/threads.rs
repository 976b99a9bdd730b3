//! Threads bound to threads (rpyc 6's `bind_threads`, the
//! [`Dialect::V6Threads`] envelope): each message names the thread that
//! sends it and the peer's thread it is for. A client with it on expects
//! a callback made while serving its request to reach the client thread
//! that waits for that request's reply, and its nested requests to be
//! served on the server thread that waits for the callback's reply; a
//! request for no thread in particular, read by a thread of ours that
//! waits for a reply, is served on another thread (rpyc's
//! `_serve_bound` hands it to its thread pool) so it does not nest inside
//! an unrelated call.
//!
//! Here: which thread of ours is which (`this_thread`), which peer thread
//! a thread of ours is serving on a connection (`serving`, `peer_served`),
//! the requests routed to a thread of ours while it waits (`Inbox`), and
//! the threads that serve a request read by a busy thread (`hand_off`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{lock, Boxed, ConnError, Connection, Handler, Route};

/// Threads serving requests that a busy thread read, per connection at
/// once; past that a busy thread serves them itself, nested, as it does
/// for a client without threads bound.
pub(super) const MAX_HELPERS: usize = 16;

/// Requests kept for one waiting thread at most. A client's thread sends
/// the thread it calls back one request at a time (or a few reference
/// drops); past this, a client that floods a waiting thread gets its
/// requests served as unrouted ones are, so the reader stops reading
/// while it serves them instead of queueing without end.
pub(super) const INBOX_MAX: usize = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THIS_THREAD: u64 = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    /// The peer threads whose requests this thread is serving, innermost
    /// last, each with the connection (by address) it came on: a thread
    /// may serve a request of one connection inside another's.
    static SERVING: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's id in routes: unique in the process, never 0 (which
/// means "any thread").
pub(super) fn this_thread() -> u64 {
    THIS_THREAD.with(|id| *id)
}

fn key(conn: &Connection) -> usize {
    conn as *const Connection as usize
}

/// The peer thread this thread serves on `conn` now (0: none), whom a
/// request sent from here is for.
pub(super) fn peer_served(conn: &Connection) -> u64 {
    let key = key(conn);
    SERVING.with(|serving| {
        serving
            .borrow()
            .iter()
            .rev()
            .find(|(conn, _)| *conn == key)
            .map_or(0, |(_, peer)| *peer)
    })
}

/// Runs `f` as this thread serving a request of `peer`'s on `conn`.
pub(super) fn serving<R>(conn: &Connection, peer: u64, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SERVING.with(|serving| serving.borrow_mut().pop());
        }
    }
    SERVING.with(|serving| serving.borrow_mut().push((key(conn), peer)));
    let _pop = Pop;
    f()
}

/// A request, with the route it came by, for a thread of ours that waits.
pub(super) struct Routed {
    pub seq: i64,
    pub handler: Handler,
    pub args: Boxed,
    pub from: u64,
}

/// The requests routed to a thread of ours while it waits for replies
/// (`depth` waits, nested).
#[derive(Default)]
pub(super) struct Inbox {
    pub depth: usize,
    pub requests: VecDeque<Routed>,
}

impl Connection {
    /// Whether the peer binds threads: messages carry routes.
    pub(super) fn binds_threads(&self) -> bool {
        self.dialect() == super::Dialect::V6Threads
    }

    /// The route of a message this thread sends to `to`.
    pub(super) fn route_to(&self, to: u64) -> Route {
        Route {
            from: this_thread(),
            to,
        }
    }

    /// Gives a request read for thread `to` of ours to it, if it is
    /// waiting for a reply (and so looks at its inbox) and its inbox has
    /// room; the request back if not.
    pub(super) fn deliver(&self, to: u64, request: Routed) -> Result<(), Routed> {
        if to == 0 || to == this_thread() {
            return Err(request);
        }
        let mut waiting = lock(&self.waiting);
        let Some(inbox) = waiting.inboxes.get_mut(&to) else {
            return Err(request);
        };
        if inbox.requests.len() >= INBOX_MAX {
            return Err(request);
        }
        inbox.requests.push_back(request);
        self.wake_sleepers(waiting);
        Ok(())
    }

    /// Serves a request on a thread of its own, for a reader that waits
    /// for a reply of its own; gives it back when no thread can be had.
    pub(super) fn hand_off(self: &Arc<Self>, request: Routed) -> Result<(), Routed> {
        {
            let mut waiting = lock(&self.waiting);
            if waiting.helpers >= MAX_HELPERS {
                return Err(request);
            }
            waiting.helpers += 1;
        }
        let conn = Arc::clone(self);
        let slot = Arc::new(std::sync::Mutex::new(Some(request)));
        let taken = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("rpycd-bound".into())
            .spawn(move || {
                if let Some(request) = lock(&taken).take() {
                    // its end is the connection's: the reader sees it too
                    let _ = conn.serve_routed(request);
                }
                lock(&conn.waiting).helpers -= 1;
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(_) => {
                lock(&self.waiting).helpers -= 1;
                lock(&slot).take().map_or(Ok(()), Err)
            }
        }
    }

    /// Serves a request as its route asks: the reply goes back to the
    /// thread that sent it, and so do requests sent while serving it.
    pub(super) fn serve_routed(self: &Arc<Self>, request: Routed) -> Result<(), ConnError> {
        let Routed {
            seq,
            handler,
            args,
            from,
        } = request;
        serving(self, from, || self.serve_counted(seq, handler, args))
    }

    /// This thread starts waiting for a reply: requests routed to it are
    /// kept for it from now on.
    pub(super) fn open_inbox(&self) {
        lock(&self.waiting)
            .inboxes
            .entry(this_thread())
            .or_default()
            .depth += 1;
    }

    /// The next request routed to this thread while it waits, if any.
    pub(super) fn next_routed(waiting: &mut super::Waiting) -> Option<Routed> {
        waiting
            .inboxes
            .get_mut(&this_thread())
            .and_then(|inbox| inbox.requests.pop_front())
    }

    /// This thread stops waiting: what was routed to it and not yet
    /// served is served now, before it returns to its caller.
    pub(super) fn close_inbox(self: &Arc<Self>) {
        let me = this_thread();
        let left = {
            let mut waiting = lock(&self.waiting);
            let Some(inbox) = waiting.inboxes.get_mut(&me) else {
                return;
            };
            inbox.depth -= 1;
            if inbox.depth > 0 {
                return;
            }
            waiting
                .inboxes
                .remove(&me)
                .map(|inbox| inbox.requests)
                .unwrap_or_default()
        };
        for request in left {
            if self.is_closed() || self.serve_routed(request).is_err() {
                return;
            }
        }
    }

    /// A request read from the peer that no waiting thread of ours took
    /// (see `read_settled`), served on a thread of its own if the reader
    /// is `busy` waiting for a reply of its own and the request is not for
    /// it, else by the reader.
    pub(super) fn dispatch_routed(
        self: &Arc<Self>,
        request: Routed,
        to: u64,
        busy: bool,
    ) -> Result<(), ConnError> {
        let request = if busy && to != this_thread() {
            match self.hand_off(request) {
                Ok(()) => return Ok(()),
                Err(request) => request,
            }
        } else {
            request
        };
        self.serve_routed(request)
    }
}
