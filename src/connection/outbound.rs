//! Writing: messages to frames on the stream, and the queue that lets a
//! request be sent without waiting for a busy writer.

use super::*;

impl Connection {
    /// Encodes, frames and writes one message; with threads bound, for
    /// the peer thread this thread is serving (any, if none).
    pub fn send(&self, message: &Message) -> Result<(), ConnError> {
        self.send_routed(message, self.route())
    }

    /// The route of a message this thread sends now.
    pub(super) fn route(&self) -> Route {
        if self.binds_threads() {
            self.route_to(threads::peer_served(self))
        } else {
            Route::default()
        }
    }

    pub(super) fn send_routed(&self, message: &Message, route: Route) -> Result<(), ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let frame_bytes = match self.frame_of(message, route) {
            Ok(frame_bytes) => frame_bytes,
            Err(ConnError::Encode(error)) => {
                // a reply too big or deep for brine still owes the peer an answer
                let Message::Reply { seq, .. } = message else {
                    return Err(error.into());
                };
                let exception = Message::Exception {
                    seq: *seq,
                    exception: RemoteException::Raised(ExceptionInfo::builtin(
                        "ValueError",
                        &format!("cannot send the reply: {error}"),
                    )),
                };
                Frame::whole(self.frame_of(&exception, route)?.joined())
            }
            Err(error) => return Err(error),
        };
        let mut outbound = lock(&self.outbound);
        let written = frame_bytes
            .write_to(&mut outbound.writer)
            .and_then(|()| outbound.writer.flush());
        if let Err(error) = written {
            drop(outbound);
            self.end(&error.to_string());
            return Err(error.into());
        }
        self.flush_queue(&mut outbound)
    }

    /// A message as one frame: encoded straight after the header's room,
    /// so a plain payload is never copied, and a bulk byte string is
    /// written from where it is.
    pub(super) fn frame_of<'v>(
        &self,
        message: &'v Message,
        route: Route,
    ) -> Result<Frame<'v>, ConnError> {
        // room for a bulk string that stays where it is is never touched,
        // so costs no memory; a buffer grown by doublings instead left the
        // threaded server's malloc arenas fragmented (the soak's RSS rose
        // by 27 MiB in two minutes)
        let mut buffer = frame::begin(message.size_hint());
        let detached = message.encode_detached(self.dialect(), route, &mut buffer)?;
        Ok(frame::seal_detached(
            buffer,
            detached,
            self.config.compress,
        )?)
    }

    pub(super) fn flush_queue(&self, outbound: &mut Outbound) -> Result<(), ConnError> {
        loop {
            let queued = std::mem::take(&mut *lock(&self.send_queue));
            if queued.is_empty() {
                return Ok(());
            }
            for frame_bytes in queued {
                outbound.writer.write_all(&frame_bytes)?;
            }
            outbound.writer.flush()?;
        }
    }
}
