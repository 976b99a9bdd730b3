//! What an accept loop does when `accept()` fails for want of a resource.

use std::time::Duration;

use nix::errno::Errno;

/// No descriptor or memory for one more connection: the next try fails
/// the same way until something is freed.
pub fn is_exhaustion(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::ENOBUFS)
    )
}

/// The rest after an accept that failed for a reason the next try would
/// meet again: the waiting connection keeps the listener readable, and
/// without a rest the loop retried as fast as it turns, a core busy and a
/// log line per try. nginx rests its accepts too, for 500 ms; this is
/// shorter, so that a descriptor freed is soon used.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
