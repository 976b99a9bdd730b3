//! Signals as events for a poll loop: each signal sets its flag and writes
//! a byte to a socket pair whose read end the loop polls. Nothing else runs
//! in the handler, so it stays async-signal-safe.

use std::io::{self, Read};
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
    flags: Vec<(Arc<AtomicBool>, Event)>,
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
        Ok(Signals { wake, flags })
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
