//! Serving: the loop that reads the peer's messages and answers its
//! requests through the session.

use super::*;

impl Connection {
    /// Serves the peer until it closes the connection (`Ok`) or the stream
    /// fails; either way the session's objects are released on return.
    pub fn serve_all(self: &Arc<Self>) -> Result<(), ConnError> {
        self.serve_until_quiet(None).map(|_| ())
    }

    /// Serves the peer as [`Connection::serve_all`] does, but with
    /// `quiet: Some(time)` returns [`Served::Quiet`] once the peer has sent
    /// nothing for that long while nothing was in progress and nothing is
    /// buffered: the connection stays open, and whoever resumes serving it
    /// when its stream is readable again loses nothing. The transport's
    /// reads must time out at `time` (or sooner) for this to take effect.
    pub fn serve_until_quiet(
        self: &Arc<Self>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Served, ConnError> {
        let result = loop {
            match self.serve_next(quiet) {
                Ok(Incoming::Quiet) => {
                    lock(&self.inbound).decoder.release_if_empty();
                    // a waiter that found the inbound side taken just now
                    // sleeps until the reader says it let go: say it again
                    self.notify();
                    return Ok(Served::Quiet);
                }
                Ok(Incoming::Message(())) => continue,
                Err(ConnError::Eof | ConnError::Closed) => break Ok(Served::Ended),
                Err(error) => break Err(error),
            }
        };
        self.close();
        result
    }

    /// Reads and handles one message, unless the peer was quiet.
    pub(super) fn serve_next(
        self: &Arc<Self>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Incoming<()>, ConnError> {
        let message = {
            let mut inbound = lock(&self.inbound);
            let message = self.read_settled(&mut inbound, None, quiet);
            drop(inbound);
            self.notify();
            message
        };
        match message {
            Ok(Incoming::Quiet) => Ok(Incoming::Quiet),
            Ok(Incoming::Message(None)) => Ok(Incoming::Message(())),
            Ok(Incoming::Message(Some(message))) => {
                self.dispatch(Ok(message), false).map(Incoming::Message)
            }
            Err(error) => self.dispatch(Err(error), false).map(Incoming::Message),
        }
    }

    /// Reads the next message and, before the caller lets go of the
    /// inbound side, hands over what is for another thread that waits: a
    /// reply is parked, a request routed to a waiting thread goes to its
    /// inbox. Done later, the thread it is for could take the inbound side
    /// first and block reading for a message already read. What is left
    /// to serve comes back.
    pub(super) fn read_settled(
        &self,
        inbound: &mut Inbound,
        deadline: Option<Instant>,
        quiet: Option<std::time::Duration>,
    ) -> Result<Incoming<Option<(Message, Route)>>, ConnError> {
        Ok(match self.read_message(inbound, deadline, quiet)? {
            Incoming::Message(message) => Incoming::Message(self.settle(message)),
            Incoming::Quiet => Incoming::Quiet,
        })
    }

    fn settle(&self, (message, route): (Message, Route)) -> Option<(Message, Route)> {
        match message {
            Message::Reply { seq, value } => self.park(seq, Ok(value)),
            Message::Exception { seq, exception } => self.park(seq, Err(exception)),
            Message::Request { seq, handler, args }
                if handler != Handler::Close && self.binds_threads() =>
            {
                let request = threads::Routed {
                    seq,
                    handler,
                    args,
                    from: route.from,
                };
                if let Err(request) = self.deliver(route.to, request) {
                    let threads::Routed {
                        seq, handler, args, ..
                    } = request;
                    return Some((Message::Request { seq, handler, args }, route));
                }
            }
            request => return Some((request, route)),
        }
        None
    }

    /// Handles one message read from the peer; `busy`: the reader waits
    /// for a reply of its own.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        message: Result<(Message, Route), ConnError>,
        busy: bool,
    ) -> Result<(), ConnError> {
        let (message, route) = match message {
            Ok(message) => message,
            Err(error) => {
                self.end(&error.to_string());
                return Err(error);
            }
        };
        match message {
            Message::Request {
                handler: Handler::Close,
                ..
            } => {
                // rpyc 6.0.2 closes without replying: the peer sees EOF
                self.close();
                Err(ConnError::Closed)
            }
            Message::Request { seq, handler, args } if self.binds_threads() => {
                let request = threads::Routed {
                    seq,
                    handler,
                    args,
                    from: route.from,
                };
                self.dispatch_routed(request, route.to, busy)
            }
            Message::Request { seq, handler, args } => self.serve_counted(seq, handler, args),
            Message::Reply { seq, value } => {
                self.park(seq, Ok(value));
                Ok(())
            }
            Message::Exception { seq, exception } => {
                self.park(seq, Err(exception));
                Ok(())
            }
        }
    }

    /// Serves a request, counted as in progress meanwhile (a draining
    /// connection waits for it; an idle one is not idle).
    pub(super) fn serve_counted(
        self: &Arc<Self>,
        seq: i64,
        handler: Handler,
        args: Boxed,
    ) -> Result<(), ConnError> {
        lock(&self.activity).serving += 1;
        let sent = self.serve_request(seq, handler, args);
        lock(&self.activity).serving -= 1;
        sent
    }

    fn serve_request(
        self: &Arc<Self>,
        seq: i64,
        handler: Handler,
        args: Boxed,
    ) -> Result<(), ConnError> {
        let session = lock(&self.session).clone();
        let mut kept: KeepAlive = None;
        let reply = match session {
            // A bug of ours must cost this request, not the connection, its
            // objects or (in a thread pool) the worker: answer it instead.
            Some(session) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session.handle(self, handler, args)
            }))
            .map(|(reply, keep_alive)| {
                kept = keep_alive;
                reply
            })
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                Err(RemoteException::Raised(ExceptionInfo::builtin(
                    "SystemError",
                    &format!("rpycd failed internally serving {handler:?}: {what}"),
                )))
            }),
            None => Err(RemoteException::Raised(ExceptionInfo::builtin(
                "RuntimeError",
                "no service on this connection",
            ))),
        };
        if let Err(exception) = &reply {
            let exceptions = &self.config.exceptions;
            if let Some(log) = &exceptions.log {
                log(handler, exception);
            }
            if let Some((exception, key)) = exceptions.propagated(exception) {
                drop(kept);
                let error = ConnError::Propagated { exception, key };
                self.end(&error.to_string());
                return Err(error);
            }
        }
        let message = match reply {
            Ok(value) => Message::Reply { seq, value },
            Err(exception) => Message::Exception {
                seq,
                exception: self.config.exceptions.as_sent(exception),
            },
        };
        let sent = self.send(&message);
        drop(kept);
        sent
    }
}

pub(super) fn bad_request_exception(reason: &BadRequest) -> RemoteException {
    RemoteException::Raised(match reason {
        // rpyc looks the handler up in a dict: an unknown one is a KeyError
        BadRequest::UnknownHandler(code) => ExceptionInfo {
            args: vec![Value::Int(*code)],
            ..ExceptionInfo::builtin("KeyError", &code.to_string())
        },
        BadRequest::Malformed(what) => ExceptionInfo::builtin("ValueError", what),
    })
}
