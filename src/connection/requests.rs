//! Our requests to the peer: sent, then waited for (a reply read by
//! whichever thread holds the inbound side is parked for its waiter).

use super::*;

impl Connection {
    /// Sends a request and waits for its reply, serving whatever the peer
    /// sends in the meantime; gives up after `Config::sync_request_timeout`.
    pub fn sync_request(
        self: &Arc<Self>,
        handler: Handler,
        args: Boxed,
    ) -> Result<Reply, ConnError> {
        let timeout = self.config.sync_request_timeout;
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        self.learn_dialect();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).replies.insert(seq, None);
        // the peer's requests for this thread come to it while it waits:
        // from before the request goes, which they may answer at once
        let bound = self.binds_threads();
        if bound {
            self.open_inbox();
        }
        let reply = match self.send(&Message::Request { seq, handler, args }) {
            Ok(()) => self.wait_for_reply(seq, deadline, timeout),
            Err(error) => {
                lock(&self.waiting).replies.remove(&seq);
                Err(error)
            }
        };
        if bound {
            self.close_inbox();
        }
        reply
    }

    fn wait_for_reply(
        self: &Arc<Self>,
        seq: i64,
        deadline: Option<Instant>,
        timeout: Option<std::time::Duration>,
    ) -> Result<Reply, ConnError> {
        loop {
            let mut waiting = lock(&self.waiting);
            if let Some(Some(_)) = waiting.replies.get(&seq) {
                if let Some(Some(reply)) = waiting.replies.remove(&seq) {
                    return Ok(reply);
                }
            }
            if let Some(request) = Connection::next_routed(&mut waiting) {
                drop(waiting);
                self.serve_routed(request)?;
                continue;
            }
            if waiting.ended.is_some() {
                waiting.replies.remove(&seq);
                return Err(ConnError::Closed);
            }
            if let (Some(deadline), Some(timeout)) = (deadline, timeout) {
                if Instant::now() >= deadline {
                    waiting.replies.remove(&seq);
                    return Err(ConnError::Timeout(timeout));
                }
            }
            // Taking the inbound side while holding `waiting` cannot miss a
            // wake-up: the reader must take `waiting` to announce it let go.
            match self.inbound.try_lock() {
                Ok(mut inbound) => {
                    drop(waiting);
                    let message = self.read_settled(&mut inbound, deadline, None);
                    drop(inbound);
                    self.notify();
                    match message {
                        Ok(Incoming::Message(Some(message))) => self.dispatch(Ok(message), true)?,
                        Ok(Incoming::Message(None) | Incoming::Quiet) => {}
                        // looked at on the next turn, with the reply that
                        // may have been parked meanwhile
                        Err(ConnError::Timeout(_)) => {}
                        Err(error) => {
                            self.end(&error.to_string());
                            return Err(error);
                        }
                    }
                }
                Err(TryLockError::WouldBlock) => {
                    waiting.sleepers += 1;
                    let mut waiting = match deadline {
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            self.changed
                                .wait_timeout(waiting, left)
                                .map(|(guard, _)| guard)
                                .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                        }
                        None => self
                            .changed
                            .wait(waiting)
                            .unwrap_or_else(|poisoned| poisoned.into_inner()),
                    };
                    waiting.sleepers -= 1;
                }
                Err(TryLockError::Poisoned(_)) => return Err(ConnError::Closed),
            }
        }
    }

    /// Sends a request whose reply nobody waits for (rpyc's DEL from a
    /// finalizer). Never blocks on a busy writer: it queues instead.
    pub fn async_request(&self, handler: Handler, args: Boxed) -> Result<(), ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        self.learn_dialect();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // the queue outlives the message: the frame goes in one piece
        let frame_bytes = self
            .frame_of(&Message::Request { seq, handler, args }, self.route())?
            .joined();
        lock(&self.send_queue).push(frame_bytes);
        if self.holding.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        match self.outbound.try_lock() {
            Ok(mut outbound) => self.flush_queue(&mut outbound),
            Err(_) => Ok(()),
        }
    }

    pub(super) fn park(&self, seq: i64, reply: Reply) {
        let mut waiting = lock(&self.waiting);
        // a reply nobody waits for (an async request's) is dropped
        if let Some(slot) = waiting.replies.get_mut(&seq) {
            *slot = Some(reply);
        }
        self.wake_sleepers(waiting);
    }
}
