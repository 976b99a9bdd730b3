//! Whether stderr is systemd's journal, and the priority prefixes it reads.
//!
//! systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stdout or
//! stderr it connects to the journal; the variable is inherited by children
//! and survives redirections, so it counts only when fd 2 is that very file
//! (systemd.exec(5) says to compare it with fstat(2)).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use super::Level;

pub(super) fn stderr_is_journal() -> bool {
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    is_journal(journal_stream.as_deref(), stderr_identity().ok())
}

/// Device and inode of fd 2, through a duplicate so that fd 2 is never
/// closed here; an error (no fd 2) means it is not the journal.
fn stderr_identity() -> io::Result<(u64, u64)> {
    let fd = io::stderr().as_fd().try_clone_to_owned()?;
    let metadata = File::from(fd).metadata()?;
    Ok((metadata.dev(), metadata.ino()))
}

/// The decision, given `JOURNAL_STREAM` and fd 2's (device, inode).
fn is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|value| value.split_once(':')) else {
        return false;
    };
    match (dev.parse::<u64>(), ino.parse::<u64>(), stderr) {
        (Ok(dev), Ok(ino), Some(identity)) => (dev, ino) == identity,
        _ => false,
    }
}

/// sd-daemon(3)'s prefixes, so that `journalctl -p warning` selects by level.
pub(super) fn priority_prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warning => "<4>",
        Level::Info => "<6>",
        Level::Debug => "<7>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_only_when_stderr_is_the_named_stream() {
        let fd2 = Some((64769, 1234567));
        assert!(is_journal(Some("64769:1234567"), fd2));
        assert!(!is_journal(None, fd2));
        assert!(!is_journal(Some("64769:1234568"), fd2));
        assert!(!is_journal(Some("64768:1234567"), fd2));
        assert!(!is_journal(Some("64769:1234567"), None));
    }

    #[test]
    fn malformed_journal_stream_is_not_the_journal() {
        let fd2 = Some((8, 9));
        for value in ["", "8", "8:", ":9", "8:9:10", "8 :9", "0x8:9", "-8:9"] {
            assert!(!is_journal(Some(value), fd2), "{value:?}");
        }
    }

    #[test]
    fn stderr_identity_is_that_of_fd_2() {
        let identity = stderr_identity().expect("fd 2 is open under cargo test");
        // the kernel's view of the same descriptor, from another angle
        let proc = std::fs::metadata("/proc/self/fd/2").expect("stat /proc/self/fd/2");
        assert_eq!(identity, (proc.dev(), proc.ino()));
    }

    #[test]
    fn prefixes_are_sd_daemon_priorities() {
        assert_eq!(priority_prefix(Level::Error), "<3>");
        assert_eq!(priority_prefix(Level::Warning), "<4>");
        assert_eq!(priority_prefix(Level::Info), "<6>");
        assert_eq!(priority_prefix(Level::Debug), "<7>");
    }
}
