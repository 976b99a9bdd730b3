//! Messages (rpyc 6.0.2 `Connection._send`/`_dispatch`, `consts.py`,
//! `vinegar.py`): a one-byte message type, then the brine dump of
//! `(seq, args)`.
//!
//! - a request's args are `(handler, boxed_args)`;
//! - a reply's args are one boxed value;
//! - an exception's args are a vinegar tuple, not boxed.
//!
//! (rpyc 5.x and 4.x send `(msg, seq, args)` as one brine tuple instead.)

use thiserror::Error;

use super::brine::{self, DecodeError, DecodeLimits, Detached, EncodeError, Sink, Value};

mod dialect;
pub use dialect::{locate_bulk, Dialect, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    Request = 1,
    Reply = 2,
    Exception = 3,
}

impl TryFrom<u8> for MsgType {
    type Error = u8;

    fn try_from(code: u8) -> Result<MsgType, u8> {
        match code {
            1 => Ok(MsgType::Request),
            2 => Ok(MsgType::Reply),
            3 => Ok(MsgType::Exception),
            other => Err(other),
        }
    }
}

/// The request handlers of `rpyc/core/consts.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Handler {
    Ping = 1,
    Close = 2,
    GetRoot = 3,
    GetAttr = 4,
    DelAttr = 5,
    SetAttr = 6,
    Call = 7,
    CallAttr = 8,
    Repr = 9,
    Str = 10,
    Cmp = 11,
    Hash = 12,
    Dir = 13,
    Pickle = 14,
    Del = 15,
    Inspect = 16,
    BuffIter = 17,
    OldSlicing = 18,
    CtxExit = 19,
    InstanceCheck = 20,
}

impl Handler {
    pub const ALL: [Handler; 20] = [
        Handler::Ping,
        Handler::Close,
        Handler::GetRoot,
        Handler::GetAttr,
        Handler::DelAttr,
        Handler::SetAttr,
        Handler::Call,
        Handler::CallAttr,
        Handler::Repr,
        Handler::Str,
        Handler::Cmp,
        Handler::Hash,
        Handler::Dir,
        Handler::Pickle,
        Handler::Del,
        Handler::Inspect,
        Handler::BuffIter,
        Handler::OldSlicing,
        Handler::CtxExit,
        Handler::InstanceCheck,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: i64) -> Option<Handler> {
        let index = usize::try_from(code).ok()?.checked_sub(1)?;
        Handler::ALL.get(index).copied()
    }
}

/// Boxing labels of `consts.py`, named from the receiver's side as rpyc does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Label {
    /// A brine-dumpable value.
    Value = 1,
    /// A tuple of boxed items.
    Tuple = 2,
    /// A reference back to one of the receiver's own objects.
    LocalRef = 3,
    /// An object of the sender's: the receiver makes a proxy for it.
    RemoteRef = 4,
}

/// Names an object of one party: `(type name, id(type), id(obj))`. For a
/// class the object id is 0; for a module the name is the module's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPack {
    pub name: String,
    pub type_id: u64,
    pub obj_id: u64,
}

impl IdPack {
    fn to_value(&self) -> Value {
        Value::Tuple(vec![
            Value::str(self.name.as_str()),
            Value::from_u64(self.type_id),
            Value::from_u64(self.obj_id),
        ])
    }

    fn from_value(value: &Value) -> Result<IdPack, &'static str> {
        let malformed = "id pack is not (str, int, int)";
        match value.as_tuple() {
            Some([name, type_id, obj_id]) => Ok(IdPack {
                name: name.as_str().ok_or(malformed)?.to_owned(),
                type_id: type_id.as_u64().ok_or(malformed)?,
                obj_id: obj_id.as_u64().ok_or(malformed)?,
            }),
            _ => Err(malformed),
        }
    }
}

/// A value as one party packs it for the other (`Connection._box`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boxed {
    Value(Value),
    Tuple(Vec<Boxed>),
    LocalRef(IdPack),
    RemoteRef(IdPack),
}

impl Boxed {
    pub fn label(&self) -> Label {
        match self {
            Boxed::Value(_) => Label::Value,
            Boxed::Tuple(_) => Label::Tuple,
            Boxed::LocalRef(_) => Label::LocalRef,
            Boxed::RemoteRef(_) => Label::RemoteRef,
        }
    }

    pub fn to_value(&self) -> Value {
        let body = match self {
            Boxed::Value(value) => value.clone(),
            Boxed::Tuple(items) => Value::Tuple(items.iter().map(Boxed::to_value).collect()),
            Boxed::LocalRef(id) | Boxed::RemoteRef(id) => id.to_value(),
        };
        Value::Tuple(vec![Value::Int(self.label() as i64), body])
    }

    /// Appends the brine form without building the `(label, body)` tuples
    /// as values first, so a large value is copied once.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_to(&mut Sink::plain(out))
    }

    /// [`Boxed::encode`] into a [`Sink`].
    pub fn encode_to<'v>(&'v self, sink: &mut Sink<'_, 'v>) -> Result<(), EncodeError> {
        brine::encode_tuple_header(2, sink.buf)?;
        brine::encode_int(self.label() as i64, sink.buf);
        match self {
            Boxed::Value(value) => value.encode_to(sink),
            Boxed::Tuple(items) => {
                brine::encode_tuple_header(items.len(), sink.buf)?;
                items.iter().try_for_each(|item| item.encode_to(sink))
            }
            Boxed::LocalRef(id) | Boxed::RemoteRef(id) => id.to_value().encode(sink.buf),
        }
    }

    /// About how many bytes [`Boxed::encode`] appends (see [`Value::size_hint`]).
    pub fn size_hint(&self) -> usize {
        match self {
            Boxed::Value(value) => 2 + value.size_hint(),
            Boxed::Tuple(items) => 7 + items.iter().map(Boxed::size_hint).sum::<usize>(),
            Boxed::LocalRef(id) | Boxed::RemoteRef(id) => 32 + id.name.len(),
        }
    }

    pub fn from_value(value: Value) -> Result<Boxed, &'static str> {
        let malformed = "boxed value is not (label, body)";
        let [label, body]: [Value; 2] = value
            .into_tuple()
            .ok_or(malformed)?
            .try_into()
            .map_err(|_| malformed)?;
        match label.as_i64() {
            Some(1) => Ok(Boxed::Value(body)),
            Some(2) => body
                .into_tuple()
                .ok_or("boxed tuple body is not a tuple")?
                .into_iter()
                .map(Boxed::from_value)
                .collect::<Result<_, _>>()
                .map(Boxed::Tuple),
            Some(3) => IdPack::from_value(&body).map(Boxed::LocalRef),
            Some(4) => IdPack::from_value(&body).map(Boxed::RemoteRef),
            _ => Err("unknown boxing label"),
        }
    }
}

/// An exception as vinegar packs it (`vinegar.dump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteException {
    /// StopIteration travels as the int 1.
    StopIteration,
    /// A bare string: old-style string exceptions, still accepted by rpyc.
    Text(String),
    Raised(ExceptionInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionInfo {
    pub module: String,
    pub name: String,
    /// `args`, each dumpable or its repr.
    pub args: Vec<Value>,
    /// Public attributes, each dumpable or its repr; rpyc adds
    /// `_remote_version`, whose major version the client compares with its own.
    pub attrs: Vec<(String, Value)>,
    pub traceback: String,
}

impl ExceptionInfo {
    /// An exception of a builtin class, raised by rpycd itself.
    pub fn builtin(name: &str, message: &str) -> ExceptionInfo {
        ExceptionInfo {
            module: "builtins".into(),
            name: name.into(),
            args: vec![Value::str(message)],
            attrs: vec![("_remote_version".into(), Value::str(crate::RPYC_VERSION))],
            traceback: format!("{name}: {message}\n"),
        }
    }
}

impl RemoteException {
    pub fn to_value(&self) -> Value {
        match self {
            RemoteException::StopIteration => Value::Int(1),
            RemoteException::Text(text) => Value::str(text.as_str()),
            RemoteException::Raised(info) => Value::Tuple(vec![
                Value::Tuple(vec![
                    Value::str(info.module.as_str()),
                    Value::str(info.name.as_str()),
                ]),
                Value::Tuple(info.args.clone()),
                Value::Tuple(
                    info.attrs
                        .iter()
                        .map(|(name, value)| {
                            Value::Tuple(vec![Value::str(name.as_str()), value.clone()])
                        })
                        .collect(),
                ),
                Value::str(info.traceback.as_str()),
            ]),
        }
    }

    pub fn from_value(value: Value) -> Result<RemoteException, &'static str> {
        let malformed = "exception is not ((module, name), args, attrs, traceback)";
        let items = match value {
            // vinegar.load compares with ==, so True counts as 1 too
            Value::Int(1) | Value::Bool(true) => return Ok(RemoteException::StopIteration),
            Value::Str(text) => return Ok(RemoteException::Text(text)),
            Value::Tuple(items) => items,
            _ => return Err(malformed),
        };
        let [kind, args, attrs, traceback]: [Value; 4] = items.try_into().map_err(|_| malformed)?;
        let (module, name) = match kind.as_tuple() {
            Some([Value::Str(module), Value::Str(name)]) => (module.clone(), name.clone()),
            _ => return Err(malformed),
        };
        let attrs = attrs
            .into_tuple()
            .ok_or(malformed)?
            .into_iter()
            .map(|pair| match pair.into_tuple().as_deref() {
                Some([Value::Str(name), value]) => Ok((name.clone(), value.clone())),
                _ => Err(malformed),
            })
            .collect::<Result<_, _>>()?;
        Ok(RemoteException::Raised(ExceptionInfo {
            module,
            name,
            args: args.into_tuple().ok_or(malformed)?,
            attrs,
            traceback: traceback.as_str().ok_or(malformed)?.to_owned(),
        }))
    }
}

/// One whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request {
        seq: i64,
        handler: Handler,
        /// The boxed argument tuple the handler is called with.
        args: Boxed,
    },
    Reply {
        seq: i64,
        value: Boxed,
    },
    Exception {
        seq: i64,
        exception: RemoteException,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("empty message")]
    Empty,
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("message body: {0}")]
    Brine(#[from] DecodeError),
    #[error("message body is not (seq, args)")]
    NotSeqArgs,
    /// The sequence number was read, so the peer can be answered with an
    /// exception for it, as rpyc answers a request its handlers reject.
    #[error("request {seq}: {reason}")]
    BadRequest { seq: i64, reason: BadRequest },
    #[error("{kind} {seq}: {reason}")]
    BadResponse {
        kind: &'static str,
        seq: i64,
        reason: &'static str,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BadRequest {
    #[error("unknown handler {0}")]
    UnknownHandler(i64),
    #[error("{0}")]
    Malformed(&'static str),
}

impl Message {
    pub fn seq(&self) -> i64 {
        match self {
            Message::Request { seq, .. }
            | Message::Reply { seq, .. }
            | Message::Exception { seq, .. } => *seq,
        }
    }

    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Request { .. } => MsgType::Request,
            Message::Reply { .. } => MsgType::Reply,
            Message::Exception { .. } => MsgType::Exception,
        }
    }

    /// The message as a frame payload.
    /// The message as a frame payload, in rpyc 6's encoding.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.encode_for(Dialect::V6)
    }

    /// The message as a frame payload in `dialect`.
    pub fn encode_for(&self, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
        self.encode_routed(dialect, Route::default())
    }

    /// The message as a frame payload in `dialect`, sent along `route`
    /// (which only [`Dialect::V6Threads`] carries).
    pub fn encode_routed(&self, dialect: Dialect, route: Route) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_to(dialect, route, &mut Sink::plain(&mut out))?;
        Ok(out)
    }

    /// About how many bytes the message encodes to.
    pub fn size_hint(&self) -> usize {
        16 + match self {
            Message::Request { args, .. } => 4 + args.size_hint(),
            Message::Reply { value, .. } => value.size_hint(),
            Message::Exception { .. } => 256,
        }
    }

    /// Appends the message's payload in `dialect` to `out`. On an error
    /// `out` may hold part of it.
    pub fn encode_into(&self, dialect: Dialect, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_to(dialect, Route::default(), &mut Sink::plain(out))
    }

    /// [`Message::encode_into`], leaving byte strings of
    /// [`brine::BULK_MIN`] bytes or more out of `out`: the result says
    /// where they belong, so they can be written from where they are.
    pub fn encode_detached<'v>(
        &'v self,
        dialect: Dialect,
        route: Route,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Detached<'v>>, EncodeError> {
        let mut detached = Vec::new();
        self.encode_to(dialect, route, &mut Sink::detaching(out, &mut detached))?;
        Ok(detached)
    }

    fn encode_to<'v>(
        &'v self,
        dialect: Dialect,
        route: Route,
        sink: &mut Sink<'_, 'v>,
    ) -> Result<(), EncodeError> {
        let out = &mut *sink.buf;
        if dialect == Dialect::V6Threads {
            out.extend_from_slice(&route.from.to_be_bytes());
            out.extend_from_slice(&route.to.to_be_bytes());
        }
        match dialect {
            Dialect::V6 | Dialect::V6Threads => {
                out.push(self.msg_type() as u8);
                brine::encode_tuple_header(2, out)?;
            }
            Dialect::V5 => {
                brine::encode_tuple_header(3, out)?;
                brine::encode_int(self.msg_type() as i64, out);
            }
        }
        brine::encode_int(self.seq(), out);
        match self {
            Message::Request { handler, args, .. } => {
                brine::encode_tuple_header(2, out)?;
                brine::encode_int(i64::from(handler.code()), out);
                args.encode_to(sink)?;
            }
            Message::Reply { value, .. } => value.encode_to(sink)?,
            Message::Exception { exception, .. } => exception.to_value().encode(out)?,
        }
        Ok(())
    }

    pub fn decode(payload: &[u8]) -> Result<Message, MessageError> {
        Message::decode_with_depth(payload, brine::DEFAULT_MAX_DEPTH)
    }

    pub fn decode_with_depth(payload: &[u8], max_depth: usize) -> Result<Message, MessageError> {
        let limits = DecodeLimits {
            max_depth,
            ..DecodeLimits::for_input(payload.len())
        };
        Message::decode_for(payload, Dialect::V6, limits)
    }

    /// Decodes a payload in `dialect`.
    pub fn decode_for(
        payload: &[u8],
        dialect: Dialect,
        limits: DecodeLimits,
    ) -> Result<Message, MessageError> {
        Message::decode_with_bulk(payload, None, dialect, limits)
    }

    /// [`Message::decode_for`] of a payload whose bulk byte string was read
    /// apart from it (see [`locate_bulk`]).
    pub fn decode_with_bulk(
        payload: &[u8],
        bulk: Option<brine::Bulk>,
        dialect: Dialect,
        limits: DecodeLimits,
    ) -> Result<Message, MessageError> {
        let payload = payload
            .get(dialect.envelope_len()..)
            .ok_or(MessageError::Empty)?;
        let code = payload.first().copied().ok_or(MessageError::Empty)?;
        let (body, bulk) = match dialect {
            Dialect::V6 | Dialect::V6Threads => {
                // the brine value starts after the envelope and the code byte
                let skipped = dialect.envelope_len() + 1;
                let bulk = bulk
                    .map(|brine::Bulk { at, bytes }| {
                        let at = at.checked_sub(skipped).ok_or(DecodeError::Malformed {
                            what: "bulk bytes",
                            offset: 0,
                        })?;
                        Ok::<_, DecodeError>(brine::Bulk { at, bytes })
                    })
                    .transpose()?;
                (&payload[1..], bulk)
            }
            Dialect::V5 => (payload, bulk),
        };
        let value = brine::decode_with_bulk(body, limits, bulk)?;
        Message::from_brine(code, value, dialect)
    }

    /// The message of a payload whose first byte is `code` and whose brine
    /// value (the rest in rpyc 6, the whole in rpyc 5) is `value`.
    fn from_brine(code: u8, value: Value, dialect: Dialect) -> Result<Message, MessageError> {
        let (code, seq, args) = match dialect {
            Dialect::V6 | Dialect::V6Threads => {
                let [seq, args]: [Value; 2] = value
                    .into_tuple()
                    .ok_or(MessageError::NotSeqArgs)?
                    .try_into()
                    .map_err(|_| MessageError::NotSeqArgs)?;
                (code, seq, args)
            }
            Dialect::V5 => {
                let [code, seq, args]: [Value; 3] = value
                    .into_tuple()
                    .ok_or(MessageError::NotSeqArgs)?
                    .try_into()
                    .map_err(|_| MessageError::NotSeqArgs)?;
                let code = code
                    .as_i64()
                    .and_then(|code| u8::try_from(code).ok())
                    .ok_or(MessageError::NotSeqArgs)?;
                (code, seq, args)
            }
        };
        let msg_type = MsgType::try_from(code).map_err(MessageError::UnknownType)?;
        let seq = seq.as_i64().ok_or(MessageError::NotSeqArgs)?;
        match msg_type {
            MsgType::Request => {
                let bad = |reason| MessageError::BadRequest { seq, reason };
                let [handler, args]: [Value; 2] = args
                    .into_tuple()
                    .and_then(|items| items.try_into().ok())
                    .ok_or(bad(BadRequest::Malformed(
                        "request args are not (handler, args)",
                    )))?;
                let code = handler
                    .as_i64()
                    .ok_or(bad(BadRequest::Malformed("handler is not an int")))?;
                let handler =
                    Handler::from_code(code).ok_or(bad(BadRequest::UnknownHandler(code)))?;
                let args = Boxed::from_value(args).map_err(|e| bad(BadRequest::Malformed(e)))?;
                Ok(Message::Request { seq, handler, args })
            }
            MsgType::Reply => Ok(Message::Reply {
                seq,
                value: Boxed::from_value(args).map_err(|reason| MessageError::BadResponse {
                    kind: "reply",
                    seq,
                    reason,
                })?,
            }),
            MsgType::Exception => Ok(Message::Exception {
                seq,
                exception: RemoteException::from_value(args).map_err(|reason| {
                    MessageError::BadResponse {
                        kind: "exception",
                        seq,
                        reason,
                    }
                })?,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
