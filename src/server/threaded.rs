//! Threaded mode: a thread serves a connection while its peer keeps it
//! busy. Once the peer has been quiet for a while, the connection is
//! parked (see [`parking`](super::parking)) and the thread waits for other
//! work: a new connection, or a parked one whose peer speaks again. A
//! thread that finds no work for a while ends; so does one that would
//! make too many waiting threads.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::parking::{Lot, Parked, Parking, QUIET};
use super::{end_session, open_ticking, serve_session, start_session, Accepted, Context};
use crate::connection::{ConnError, Served};
use crate::daemon::log::Flood;
use crate::sync::lock;

/// What a thread is given to serve.
enum Work {
    New(Accepted),
    /// A parked connection whose peer sent something (or that is over).
    Resume(Parked),
}

/// Threaded mode's threads, and the parking for their quiet connections.
pub(super) struct Threaded {
    threads: Threads,
    // dropped after `threads`: stops the poller, closes what is parked
    _parking: Option<Parking>,
}

impl Threaded {
    pub(super) fn start(context: &Context) -> std::io::Result<Threaded> {
        let spare = Spare::new();
        // an authenticated (TLS) stream may hold decrypted bytes that its
        // socket no longer shows as readable: such connections keep their
        // thread
        let parking = if context.auth.is_none() {
            let resume_spare = spare.clone();
            let resume_context = context.clone();
            Some(Parking::start(
                context.config.idle_timeout,
                move |lot| {
                    let threads = Threads {
                        spare: resume_spare,
                        context: resume_context,
                        lot: Some(lot),
                    };
                    Box::new(move |parked| threads.run(Work::Resume(parked)))
                },
                context.log.clone(),
            )?)
        } else {
            None
        };
        let threads = Threads {
            spare,
            context: context.clone(),
            lot: parking.as_ref().map(Parking::lot),
        };
        Ok(Threaded {
            threads,
            _parking: parking,
        })
    }

    pub(super) fn serve(&self, accepted: Accepted) {
        self.threads.run(Work::New(accepted));
    }
}

#[derive(Clone)]
struct Threads {
    spare: Spare,
    context: Context,
    /// Where quiet connections go; none when they keep their thread.
    lot: Option<Lot>,
}

impl Threads {
    /// Gives `work` to a waiting thread, or to a new one.
    fn run(&self, work: Work) {
        let Some(work) = self.spare.hand_over(work) else {
            return;
        };
        let threads = self.clone();
        let spawned = std::thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                threads.serve(work);
                threads.serve_more();
            });
        // the work went down with the closure: a parked connection is
        // closed and uncounted as it is dropped
        if let Err(error) = spawned {
            self.context.log.limited(Flood::Refused).error(format_args!(
                "cannot start a thread for a connection: {error}"
            ));
        }
    }

    /// A thread whose work is done: serves what is handed to it until
    /// none comes for `SPARE_WAIT`, or until enough other threads wait.
    fn serve_more(&self) {
        while let Some(work) = self.spare.next() {
            self.serve(work);
        }
        if let Some(lot) = &self.lot {
            lot.thread_ended();
        }
    }

    /// Serves a connection until it ends, or until its peer is quiet and
    /// it is parked.
    fn serve(&self, work: Work) {
        let context = &self.context;
        let parked = match work {
            Work::New(Accepted { stream, opening }) => {
                let fd = stream.as_fd().as_raw_fd();
                let tick = match (&self.lot, context.config.read_timeout()) {
                    (None, tick) => tick,
                    (Some(_), Some(tick)) => Some(tick.min(QUIET)),
                    (Some(_), None) => Some(QUIET),
                };
                let Some((conn, info)) = open_ticking(stream, context, tick) else {
                    return;
                };
                let parked = Parked::new(conn, info, fd, &context.connections);
                drop(opening);
                if !start_session(&parked.conn, &parked.info, context) {
                    return;
                }
                parked
            }
            Work::Resume(parked) => parked,
        };
        if parked.idle {
            // closed as it is dropped
            end_session(&parked.info, context, Err(ConnError::Idle));
            return;
        }
        let quiet = self.lot.as_ref().map(|_| QUIET);
        if serve_session(&parked.conn, &parked.info, context, quiet) == Served::Ended {
            return;
        }
        if let Some(lot) = &self.lot {
            if let Some(parked) = lot.park(parked) {
                // cannot be watched: it stays with this thread
                serve_session(&parked.conn, &parked.info, context, None);
            }
        }
    }
}

/// Threads whose work is done, waiting a while for more before they end:
/// a new connection then costs no thread start and exit (stack mapping
/// and unmapping, with a TLB shoot-down on every core, and the thread's
/// Python thread state, made and destroyed).
#[derive(Clone)]
struct Spare {
    /// Threads waiting (or about to wait) for work, minus work handed
    /// over and not yet taken.
    idle: Arc<AtomicUsize>,
    queue: Sender<Work>,
    work: Arc<Mutex<Receiver<Work>>>,
}

/// How long a thread waits for more work.
const SPARE_WAIT: Duration = Duration::from_secs(5);

/// At most this many threads wait for work; more end at once. After a
/// burst of connections has gone quiet, their threads do not stay.
const MAX_SPARE: usize = 16;

impl Spare {
    fn new() -> Spare {
        let (queue, work) = channel();
        Spare {
            idle: Arc::default(),
            queue,
            work: Arc::new(Mutex::new(work)),
        }
    }

    /// Gives the work to a waiting thread if there is one; if not, hands
    /// it back for a new thread.
    fn hand_over(&self, work: Work) -> Option<Work> {
        let reserved = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !reserved {
            return Some(work);
        }
        match self.queue.send(work) {
            Ok(()) => None,
            Err(returned) => {
                self.idle.fetch_add(1, Ordering::AcqRel);
                Some(returned.0)
            }
        }
    }

    /// The next work for a thread whose work is done; `None` when it is to
    /// end.
    fn next(&self) -> Option<Work> {
        let reserved = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SPARE).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return None;
        }
        loop {
            let next = lock(&self.work).recv_timeout(SPARE_WAIT);
            match next {
                Ok(work) => return Some(work),
                Err(RecvTimeoutError::Timeout) => {
                    // leave only if no work was handed over meanwhile
                    // counting on this thread (it is on its way if so)
                    let left = self
                        .idle
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok();
                    if left {
                        return None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}
