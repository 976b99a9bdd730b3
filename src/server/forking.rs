//! A forked child's life (forking mode): one connection, its greeting
//! deadline and SIGTERM drain watched by one thread, then `_exit`.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use super::{guard_greeting, open, serve_connection, Context, Stream, DRAIN_QUIET};
use crate::connection::Connection;
use crate::daemon::log::Logger;
use crate::daemon::signals;

/// A forked child's watcher: closes the connection if its peer sends no
/// whole first message within `greeting` (as `guard_greeting` does), and
/// drains it on SIGTERM (blocked in every thread, so it waits here).
fn watch_child(conn: &Arc<Connection>, terms: &SigSet, greeting: Duration, log: &Logger) {
    if let Some(due) = conn.greeting_deadline(greeting) {
        if !wait_signal(terms, due) {
            if conn.greeting_deadline(greeting).is_some() {
                log.warning(format_args!(
                    "closing a connection that sent no whole message within {greeting:?}"
                ));
                conn.close();
                return;
            }
            if terms.wait().is_err() {
                return;
            }
        }
    } else if terms.wait().is_err() {
        return;
    }
    conn.drain();
    // the parent kills what is left after its timeout
    while !conn.is_closed() && !conn.end_if_quiet(DRAIN_QUIET) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a signal of `set` until `deadline`: whether one came.
fn wait_signal(set: &SigSet, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = libc::timespec {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
        };
        // SAFETY: the set and timespec are valid for the call; no siginfo
        // is asked for.
        let got = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
        if got >= 0 {
            return true;
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return false;
        }
    }
}

/// The child's life: one connection, then `_exit` (Python's ForkingServer
/// ends its children with `os._exit` too: no interpreter teardown).
pub(super) fn serve_in_child(stream: Stream, parent_fds: &[RawFd], context: &Context) -> ! {
    signals::reset_in_child();
    for fd in parent_fds {
        let _ = nix::unistd::close(*fd);
    }
    if let Some((conn, info)) = open(stream, context) {
        // one thread watches both the greeting deadline and SIGTERM (which
        // drains this connection, as the parent's does its own): a thread
        // started is a good part of what a forked connection costs
        let mut terms = SigSet::empty();
        terms.add(Signal::SIGTERM);
        let watching = terms.thread_block().is_ok() && {
            let watched = conn.clone();
            let log = context.log.clone();
            let greeting = context.greeting_timeout;
            std::thread::Builder::new()
                .name("watcher".into())
                .spawn(move || watch_child(&watched, &terms, greeting, &log))
                .is_ok()
        };
        if !watching {
            guard_greeting(&conn, context.greeting_timeout, &context.log);
        }
        serve_connection(&conn, &info, context);
    }
    // SAFETY: _exit ends the process at once; nothing after it runs.
    unsafe { libc::_exit(0) }
}
