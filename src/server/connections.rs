//! The connections a server process has: counted from accept on (for
//! `--max-connections`), live ones kept so a stopping server can drain them.

use super::*;

/// An accepted connection on its way to being live, counted among the
/// admitted ones while this lives.
pub(super) struct Opening(Arc<Connections>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted stream, counted from accept on.
pub(super) struct Accepted {
    pub stream: Stream,
    pub opening: Opening,
}

/// The connections being served in this process, so a stopping server
/// can drain them and the status line can count them.
pub struct Connections {
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Accepted and not yet live: in a worker's queue, or authenticating
    /// (a TLS handshake takes up to --handshake-timeout).
    opening: AtomicUsize,
    next_id: AtomicU64,
    changed: Condvar,
    notifier: Notifier,
}

impl Connections {
    /// Connections whose count goes to systemd's status line.
    pub(super) fn reporting_to(notifier: Notifier) -> Connections {
        Connections {
            notifier,
            ..Connections::default()
        }
    }
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            live: Mutex::default(),
            opening: AtomicUsize::default(),
            next_id: AtomicU64::default(),
            changed: Condvar::default(),
            notifier: Notifier::disabled(),
        }
    }
}

impl Connections {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        lock(&self.live)
    }

    pub(super) fn add(&self, conn: &Arc<Connection>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut live = self.lock();
        live.insert(id, conn.clone());
        self.notifier.status(&connections_status(live.len()));
        id
    }

    pub(super) fn remove(&self, id: u64) {
        let mut live = self.lock();
        live.remove(&id);
        self.notifier.status(&connections_status(live.len()));
        drop(live);
        self.changed.notify_all();
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Live connections and those accepted that are not yet: what
    /// --max-connections counts, so that connections stuck before their
    /// session (a TLS handshake that never ends) hold slots too.
    pub fn admitted(&self) -> usize {
        self.count() + self.opening.load(Ordering::Acquire)
    }

    /// Counts an accepted connection until the returned ticket is dropped
    /// (once the connection is live, or has failed to become so).
    pub(super) fn opening(self: &Arc<Self>) -> Opening {
        self.opening.fetch_add(1, Ordering::AcqRel);
        Opening(self.clone())
    }

    pub(super) fn status(&self) -> String {
        connections_status(self.count())
    }

    /// Asks every connection to finish, waits up to `timeout`, then closes
    /// what is left.
    pub(super) fn drain(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut live = self.lock();
        for conn in live.values() {
            conn.drain();
        }
        while !live.is_empty() {
            for conn in live.values() {
                conn.end_if_quiet(DRAIN_QUIET);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self
                .changed
                .wait_timeout(live, left.min(DRAIN_POLL))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        let cut = live.len();
        for conn in live.values() {
            conn.close();
        }
        cut
    }

    /// Closes connections whose peer has not sent a whole first message in
    /// `timeout` (slowloris, or a port scanner that never speaks), and says
    /// when the next one falls due.
    pub(super) fn cut_silent(&self, timeout: Duration, log: &Logger) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for conn in self.lock().values() {
            match conn.greeting_deadline(timeout) {
                Some(due) if due <= now => {
                    log.limited(Flood::Disconnected).warning(format_args!(
                        "closing a connection that sent no whole message within {timeout:?}"
                    ));
                    conn.close();
                }
                Some(due) => next = Some(next.map_or(due, |next| next.min(due))),
                None => {}
            }
        }
        next
    }

    pub(super) fn close_all(&self) {
        for conn in self.lock().values() {
            conn.close();
        }
    }
}
