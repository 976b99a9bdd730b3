//! sd_notify(3): readiness, status, watchdog and stopping, for
//! `Type=notify` units. Outside systemd (no `NOTIFY_SOCKET`) every call is
//! a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// sd_watchdog_enabled(3): `WATCHDOG_USEC` enables the watchdog, unless
/// `WATCHDOG_PID` is set and names another process (an unset PID means
/// this one, as systemd reads it; the sd-notify crate insists on it).
fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    match pid.map(|pid| pid.trim().parse::<u32>()) {
        None => Some(Duration::from_micros(usec)),
        Some(Ok(pid)) if pid == own_pid => Some(Duration::from_micros(usec)),
        Some(_) => None,
    }
}

#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: watchdog_timeout(usec.as_deref(), pid.as_deref(), std::process::id()),
        }
    }

    /// A notifier that says nothing (forked children, tests).
    pub fn disabled() -> Notifier {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled {
            // systemd gone or not listening is no reason to stop serving
            let _ = sd_notify::notify(false, states);
        }
    }

    /// Every socket is bound or inherited: clients may come.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(watchdog_timeout(Some("1000000"), None, 7), second);
        assert_eq!(watchdog_timeout(Some("1000000"), Some("7"), 7), second);
        assert_eq!(watchdog_timeout(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_timeout(Some("0"), None, 7), None);
        assert_eq!(watchdog_timeout(Some("soon"), None, 7), None);
        assert_eq!(watchdog_timeout(None, Some("7"), 7), None);
    }
}
