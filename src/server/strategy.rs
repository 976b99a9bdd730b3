//! How an accepted connection is served: a thread each while it is busy
//! (threaded, see [`threaded`](super::threaded)), one of
//! a fixed set of threads (thread pool; when all are busy the connection is
//! dropped, as the seed describes), a process each (forking), or in the
//! server's own thread once (oneshot).

use std::collections::HashSet;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::forking::{fork_child, serve_in_child};
use super::threaded::Threaded;
use super::{open, serve_connection, Accepted, Connections, Context, Stop};
use crate::daemon::log::{Flood, Logger};
use crate::sync::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Threaded,
    ThreadPool(usize),
    Forking,
    OneShot,
}

pub(super) enum Workers {
    Threaded(Threaded),
    Pool {
        idle: Arc<AtomicUsize>,
        size: usize,
        queue: Sender<Accepted>,
    },
    Forking {
        children: HashSet<Pid>,
        /// Descriptors a child must not keep: the listeners, the signal pipe.
        parent_fds: Vec<RawFd>,
    },
    OneShot,
}

impl Strategy {
    pub(super) fn start(&self, context: &Context) -> std::io::Result<Workers> {
        Ok(match *self {
            Strategy::Threaded => Workers::Threaded(Threaded::start(context)?),
            Strategy::OneShot => Workers::OneShot,
            Strategy::Forking => Workers::Forking {
                children: HashSet::new(),
                parent_fds: Vec::new(),
            },
            Strategy::ThreadPool(size) => {
                let (queue, streams) = channel::<Accepted>();
                let streams = Arc::new(Mutex::new(streams));
                let idle = Arc::new(AtomicUsize::new(size));
                for index in 0..size {
                    let streams = streams.clone();
                    let idle = idle.clone();
                    let context = context.clone();
                    std::thread::Builder::new()
                        .name(format!("pool worker {index}"))
                        .spawn(move || pool_worker(&streams, &idle, &context))?;
                }
                Workers::Pool { idle, size, queue }
            }
        })
    }
}

fn pool_worker(streams: &Mutex<Receiver<Accepted>>, idle: &AtomicUsize, context: &Context) {
    loop {
        let next = lock(streams).recv();
        let Ok(accepted) = next else { return };
        serve_tracked(accepted, context);
        idle.fetch_add(1, Ordering::AcqRel);
    }
}

/// Serves one connection in this thread, counted among the live ones.
fn serve_tracked(accepted: Accepted, context: &Context) {
    let Accepted { stream, opening } = accepted;
    let Some((conn, info)) = open(stream, context) else {
        return;
    };
    let tracked = Tracked {
        id: context.connections.add(&conn),
        connections: &context.connections,
    };
    drop(opening);
    serve_connection(&conn, &info, context);
    drop(tracked);
}

/// Removes a connection from the live set however its thread ends.
struct Tracked<'a> {
    id: u64,
    connections: &'a Connections,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.connections.remove(self.id);
    }
}

impl Workers {
    /// Lets a child close what belongs to the parent.
    pub(super) fn set_parent_fds(&mut self, fds: Vec<RawFd>) {
        if let Workers::Forking { parent_fds, .. } = self {
            *parent_fds = fds;
        }
    }

    pub(super) fn serve(&mut self, accepted: Accepted, context: &Context) -> Option<Stop> {
        let log = &context.log;
        match self {
            Workers::Threaded(threads) => {
                threads.serve(accepted);
                None
            }
            Workers::Pool { idle, size, queue } => {
                let reserved = idle
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok();
                if reserved {
                    if let Err(returned) = queue.send(accepted) {
                        idle.fetch_add(1, Ordering::AcqRel);
                        drop(returned);
                        log.error(format_args!("thread pool is gone; dropping a connection"));
                    }
                } else {
                    log.limited(Flood::Refused).warning(format_args!(
                        "thread pool exhausted ({size} workers busy): dropping {}",
                        accepted.stream.peer_name()
                    ));
                }
                None
            }
            Workers::Forking {
                children,
                parent_fds,
            } => {
                // a child counts as a connection from its fork to its end
                let Accepted { stream, opening } = accepted;
                drop(opening);
                match fork_child(context) {
                    Ok(ForkResult::Parent { child }) => {
                        children.insert(child);
                    }
                    Ok(ForkResult::Child) => serve_in_child(stream, parent_fds, context),
                    Err(error) => log
                        .limited(Flood::Refused)
                        .error(format_args!("cannot fork: {error}")),
                }
                None
            }
            Workers::OneShot => {
                serve_tracked(accepted, context);
                Some(Stop::Served)
            }
        }
    }

    /// Collects the forked children that ended, so none stay zombies.
    pub(super) fn reap(&mut self, log: &Logger) {
        let Workers::Forking { children, .. } = self else {
            return;
        };
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    children.remove(&pid);
                    if code != 0 {
                        log.warning(format_args!("child {pid} exited with status {code}"));
                    }
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    children.remove(&pid);
                    log.warning(format_args!("child {pid} killed by {signal}"));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    pub(super) fn children(&self) -> usize {
        match self {
            Workers::Forking { children, .. } => children.len(),
            _ => 0,
        }
    }

    /// SIGINT: end everything now.
    pub(super) fn abort(&mut self, connections: &Connections) {
        connections.close_all();
        if let Workers::Forking { children, .. } = self {
            for child in children.iter() {
                let _ = kill(*child, Signal::SIGTERM);
            }
        }
    }

    /// SIGTERM: let requests in flight finish for up to `timeout`.
    pub(super) fn drain(&mut self, connections: &Connections, timeout: Duration, log: &Logger) {
        let cut = connections.drain(timeout);
        if cut > 0 {
            log.warning(format_args!(
                "closed {cut} connection(s) still busy after {timeout:?}"
            ));
        }
        let Workers::Forking { children, .. } = self else {
            return;
        };
        for child in children.iter() {
            let _ = kill(*child, Signal::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while self.children() > 0 && Instant::now() < deadline {
            self.reap(log);
            if self.children() > 0 {
                // children end on their own time; SIGCHLD is the parent
                // loop's, which no longer runs, so look again shortly
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Workers::Forking { children, .. } = self {
            for child in children.drain() {
                log.warning(format_args!(
                    "killing child {child}, still busy after {timeout:?}"
                ));
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
            }
        }
    }
}
