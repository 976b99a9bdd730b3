//! A forked child's life (forking mode): one connection, served by the
//! child's only thread, then `_exit`.
//!
//! The greeting deadline and the SIGTERM drain are watched by the reads
//! themselves: every read of the connection first polls the socket and a
//! signalfd for SIGTERM, until the deadline or the next drain check. A
//! thread for them (as before) cost each connection a clone, a stack, a
//! malloc arena and a second thread's exit, a good part of what a forked
//! connection costs in time and memory.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::ForkResult;

use super::transport::ReadFd;
use super::{
    guard_greeting, open, open_wrapped, serve_connection, Context, PeerInfo, Stream, DRAIN_QUIET,
};
use crate::connection::Connection;
use crate::daemon::log::{Flood, Logger};
use crate::daemon::signals;

/// How often a draining child looks whether its connection has been quiet
/// long enough to end (as the parent's drain does for its own).
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// The child's reader: reads the socket once it is readable, and meanwhile
/// closes a connection whose peer sends no whole first message in time
/// and takes SIGTERM (blocked, so it waits in the signalfd) as the start
/// of a drain.
struct Watched {
    inner: Box<dyn ReadFd>,
    terms: SignalFd,
    /// Set once the connection exists (it is made with this reader).
    conn: Arc<OnceLock<Weak<Connection>>>,
    greeting: Duration,
    /// The socket's own read timeout (`SO_RCVTIMEO`), which the poll
    /// stands in for: when it passes, the read fails as the socket would.
    read_timeout: Option<Duration>,
    draining: bool,
    log: Logger,
}

enum Ready {
    Socket,
    Signal,
    Timeout,
}

impl Watched {
    fn poll(&self, timeout: Option<Duration>) -> std::io::Result<Ready> {
        let mut fds = [
            PollFd::new(self.inner.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.terms.as_fd(), PollFlags::POLLIN),
        ];
        // rounded up: a poll that wakes a little early would spin
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.as_micros().div_ceil(1000)).unwrap_or(PollTimeout::MAX)
        });
        poll(&mut fds, timeout)?;
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|events| !events.is_empty());
        if ready(&fds[1]) {
            return Ok(Ready::Signal);
        }
        if ready(&fds[0]) {
            return Ok(Ready::Socket);
        }
        Ok(Ready::Timeout)
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(conn) = self.conn.get().and_then(Weak::upgrade) else {
            // authentication (TLS) reads before the connection exists, with
            // its own deadline
            return self.inner.read(buf);
        };
        let give_up = self
            .read_timeout
            .and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.draining && conn.end_if_quiet(DRAIN_QUIET) {
                // its read side is shut: the read ends the connection
                return self.inner.read(buf);
            }
            let greeting_due = conn.greeting_deadline(self.greeting);
            let mut wake = [greeting_due, give_up].into_iter().flatten().min();
            if self.draining {
                let tick = Instant::now() + DRAIN_POLL;
                wake = Some(wake.map_or(tick, |wake| wake.min(tick)));
            }
            let timeout = wake.map(|wake| wake.saturating_duration_since(Instant::now()));
            match self.poll(timeout) {
                Ok(Ready::Socket) => return self.inner.read(buf),
                Ok(Ready::Signal) => {
                    let _ = self.terms.read_signal();
                    conn.drain();
                    self.draining = true;
                }
                Ok(Ready::Timeout) => {
                    let now = Instant::now();
                    if greeting_due.is_some_and(|due| due <= now)
                        && conn.greeting_deadline(self.greeting).is_some()
                    {
                        self.log.limited(Flood::Disconnected).warning(format_args!(
                            "closing a connection that sent no whole message within {:?}",
                            self.greeting
                        ));
                        conn.close();
                        return Ok(0);
                    }
                    if give_up.is_some_and(|give_up| give_up <= now) {
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

impl AsFd for Watched {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// `server::open` for a child: the connection over a watched reader, or
/// with a thread guarding its greeting if SIGTERM cannot be watched.
fn open_watched(
    stream: Stream,
    terms: Option<SignalFd>,
    context: &Context,
) -> Option<(Arc<Connection>, PeerInfo)> {
    let Some(terms) = terms else {
        let (conn, info) = open(stream, context)?;
        guard_greeting(&conn, context.greeting_timeout, &context.log);
        return Some((conn, info));
    };
    let slot = Arc::new(OnceLock::new());
    let read_timeout = context.config.read_timeout();
    let (conn, info) = open_wrapped(stream, context, read_timeout, |mut transport| {
        transport.reader = Box::new(Watched {
            inner: transport.reader,
            terms,
            conn: slot.clone(),
            greeting: context.greeting_timeout,
            read_timeout,
            draining: false,
            log: context.log.clone(),
        });
        transport
    })?;
    let _ = slot.set(Arc::downgrade(&conn));
    Some((conn, info))
}

/// Forks a child for a connection (the service's fork, which the caller,
/// the process's only thread, may make). The child starts with SIGTERM
/// blocked, as [`serve_in_child`] keeps it: a stop sent between the fork
/// and the child's signalfd then drains the child rather than killing it
/// by the default action mid-request. The parent's mask is restored, and
/// a SIGTERM that came meanwhile is delivered to it then.
pub(super) fn fork_child(context: &Context) -> nix::Result<ForkResult> {
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    let mut previous = SigSet::empty();
    let held = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&term), Some(&mut previous)).is_ok();
    let forked = context.service.fork();
    if held && !matches!(forked, Ok(ForkResult::Child)) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    }
    forked
}

/// The child's life: one connection, then `_exit` (Python's ForkingServer
/// ends its children with `os._exit` too: no interpreter teardown).
pub(super) fn serve_in_child(stream: Stream, parent_fds: &[RawFd], context: &Context) -> ! {
    signals::reset_in_child();
    context.log.forget_suppressed();
    for fd in parent_fds {
        let _ = nix::unistd::close(*fd);
    }
    // SIGTERM drains this connection, as the parent's does its own: it is
    // blocked, so it waits in the signalfd that the reads poll
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    let terms = set
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC));
    let terms = match terms {
        Ok(terms) => Some(terms),
        Err(error) => {
            // then SIGTERM ends the child at once, as its default does
            let _ = set.thread_unblock();
            context
                .log
                .warning(format_args!("cannot watch for SIGTERM in a child: {error}"));
            None
        }
    };
    if let Some((conn, info)) = open_watched(stream, terms, context) {
        serve_connection(&conn, &info, context);
    }
    // SAFETY: _exit ends the process at once; nothing after it runs.
    unsafe { libc::_exit(0) }
}
