//! Signals as events for a poll loop: each signal sets its flag and writes
//! a byte to a socket pair whose read end the loop polls. Nothing else runs
//! in the handler, so it stays async-signal-safe.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};

/// What the daemon reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGINT: stop now, as rpyc does on Ctrl-C ("keyboard interrupt!").
    Interrupt,
    /// SIGTERM: stop accepting, let requests in flight finish.
    Terminate,
    /// SIGHUP: reopen the logfile.
    Hangup,
    /// SIGCHLD: a forked child ended.
    Child,
}

const WATCHED: [(i32, Event); 4] = [
    (SIGINT, Event::Interrupt),
    (SIGTERM, Event::Terminate),
    (SIGHUP, Event::Hangup),
    (SIGCHLD, Event::Child),
];

pub struct Signals {
    wake: UnixStream,
    /// The write end, kept so a [`Trigger`] can raise events too.
    wake_write: UnixStream,
    flags: Vec<(Arc<AtomicBool>, Event)>,
}

/// Raises a [`Signals`] event from another thread, as if the signal had
/// come: how a program embedding a server stops it without a signal.
#[derive(Clone)]
pub struct Trigger {
    wake: Arc<UnixStream>,
    flags: Vec<(Arc<AtomicBool>, Event)>,
}

impl Trigger {
    pub fn raise(&self, event: Event) {
        for (flag, watched) in &self.flags {
            if *watched == event {
                flag.store(true, Ordering::SeqCst);
            }
        }
        // a full pipe already wakes the loop: a lost byte loses nothing
        let _ = (&*self.wake).write(&[1]);
    }
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let (wake, wake_write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for (signal, event) in WATCHED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal, flag.clone())?;
            signal_hook::low_level::pipe::register(signal, wake_write.try_clone()?)?;
            flags.push((flag, event));
        }
        Ok(Signals {
            wake,
            wake_write,
            flags,
        })
    }

    /// Events that only a [`Trigger`] raises: no signal handler is
    /// installed, so the process keeps its own dispositions (a library
    /// user's program, tests).
    pub fn manual() -> io::Result<Signals> {
        let (wake, wake_write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let flags = WATCHED
            .iter()
            .map(|(_, event)| (Arc::new(AtomicBool::new(false)), *event))
            .collect();
        Ok(Signals {
            wake,
            wake_write,
            flags,
        })
    }

    /// A handle that raises events on these signals from any thread.
    pub fn trigger(&self) -> io::Result<Trigger> {
        Ok(Trigger {
            wake: Arc::new(self.wake_write.try_clone()?),
            flags: self.flags.clone(),
        })
    }

    /// The descriptor that becomes readable when a signal arrives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The signals that arrived since the last call.
    pub fn take(&self) -> Vec<Event> {
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(flag, _)| flag.swap(false, Ordering::SeqCst))
            .map(|(_, event)| *event)
            .collect()
    }
}

/// In a forked child: the default dispositions back, so SIGTERM ends it
/// (the child installs its own graceful handling if it wants one).
pub fn reset_in_child() {
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: restoring the default disposition installs no handler code.
        let _ = unsafe { sigaction(signal, &default) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_raises_events_on_manual_signals() {
        let signals = Signals::manual().expect("socket pair");
        let trigger = signals.trigger().expect("clone");
        assert!(signals.take().is_empty());
        trigger.raise(Event::Terminate);
        let mut ready = [nix::poll::PollFd::new(
            signals.fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(nix::poll::poll(&mut ready, 1000u16), Ok(1));
        assert_eq!(signals.take(), vec![Event::Terminate]);
        assert!(signals.take().is_empty());
    }
}
