//! sd_notify(3): readiness, status, watchdog and stopping, for
//! `Type=notify` units. Outside systemd (no `NOTIFY_SOCKET`) every call is
//! a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog,
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
