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

/// How messages are enveloped: rpyc 6.x sends a type byte, then brine
/// `(seq, args)`; rpyc 5.x (and 4.x) send brine `(msg, seq, args)`. Brine,
/// boxing, handlers and vinegar are the same in both (rpyc 5.3.1's
/// brine.py, vinegar.py, channel.py and consts.py match 6.0.2's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V6,
    V5,
}

impl Dialect {
    /// Which dialect a peer speaks, from the first message it sends. A 6.x
    /// message starts with its type (1, 2 or 3); a 5.x one with the tag of
    /// a 3-tuple, which is none of those. `None` for anything else.
    pub fn detect(payload: &[u8]) -> Option<Dialect> {
        match payload.first()? {
            1..=3 => Some(Dialect::V6),
            &brine::TAG_TUP3 => Some(Dialect::V5),
            _ => None,
        }
    }
}

/// Where the first bulk byte string of the message that `prefix` begins
/// has its data (see [`brine::find_bulk`]), in either dialect: what a
/// frame decoder needs to read it into memory of its own. Byte strings
/// shorter than `min` are not bulk.
pub fn locate_bulk(prefix: &[u8], min: usize) -> brine::Located {
    match Dialect::detect(prefix) {
        Some(Dialect::V6) => match brine::find_bulk(&prefix[1..], min) {
            brine::Located::At { data, len } => brine::Located::At {
                data: data + 1,
                len,
            },
            other => other,
        },
        Some(Dialect::V5) => brine::find_bulk(prefix, min),
        None if prefix.is_empty() => brine::Located::NeedMore,
        None => brine::Located::Nowhere,
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
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_into(dialect, &mut out)?;
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
        self.encode_to(dialect, &mut Sink::plain(out))
    }

    /// [`Message::encode_into`], leaving byte strings of
    /// [`brine::BULK_MIN`] bytes or more out of `out`: the result says
    /// where they belong, so they can be written from where they are.
    pub fn encode_detached<'v>(
        &'v self,
        dialect: Dialect,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Detached<'v>>, EncodeError> {
        let mut detached = Vec::new();
        self.encode_to(dialect, &mut Sink::detaching(out, &mut detached))?;
        Ok(detached)
    }

    fn encode_to<'v>(
        &'v self,
        dialect: Dialect,
        sink: &mut Sink<'_, 'v>,
    ) -> Result<(), EncodeError> {
        let out = &mut *sink.buf;
        match dialect {
            Dialect::V6 => {
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
        let code = payload.first().copied().ok_or(MessageError::Empty)?;
        let (body, bulk) = match dialect {
            Dialect::V6 => {
                // the brine value starts after the code byte
                let bulk = bulk
                    .map(|brine::Bulk { at, bytes }| {
                        let at = at.checked_sub(1).ok_or(DecodeError::Malformed {
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
            Dialect::V6 => {
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
mod tests {
    use super::*;
    use crate::frame;
    use crate::frame::tests::noise;

    fn round_trip(message: Message) -> Vec<u8> {
        let bytes = message.encode().expect("encodes");
        assert_eq!(Message::decode(&bytes).expect("decodes"), message);
        bytes
    }

    fn bulk_reply(first: Vec<u8>, second: Vec<u8>) -> Message {
        Message::Reply {
            seq: 7,
            value: Boxed::Tuple(vec![
                Boxed::Value(Value::Bytes(first.into())),
                Boxed::Value(Value::Int(5)),
                Boxed::Value(Value::Bytes(second.into())),
            ]),
        }
    }

    /// The frame as the connection writes it: bulk strings left where they
    /// are, then written in between the encoded rest.
    fn detached_wire(message: &Message, compress: bool) -> Vec<u8> {
        let mut buffer = frame::begin(message.size_hint());
        let detached = message
            .encode_detached(Dialect::V6, &mut buffer)
            .expect("encodes");
        assert_eq!(detached.len(), 2, "both bulk strings stay where they are");
        assert!(buffer.len() < 64, "{} bytes encoded", buffer.len());
        let frame = frame::seal_detached(buffer, detached, compress).expect("frames");
        let mut wire = Vec::new();
        frame.write_to(&mut wire).expect("writes");
        wire
    }

    #[test]
    fn bulk_strings_written_from_their_values_make_the_same_frame() {
        let message = bulk_reply(noise(3 << 20), noise(brine::BULK_MIN));
        let whole = message.encode().expect("encodes");
        for compress in [false, true] {
            assert_eq!(
                detached_wire(&message, compress),
                frame::encode(&whole, compress).expect("frames"),
                "compress {compress}"
            );
        }
        // a payload worth deflating is deflated whole, as before
        let text = b"1,1,rpyc benchmark row 1f0f\n".repeat(80_000);
        let message = bulk_reply(text.clone(), text);
        let wire = detached_wire(&message, true);
        assert_eq!(wire[4], 1, "compressed flag");
        assert_eq!(
            wire,
            frame::encode(&message.encode().expect("encodes"), true).expect("frames")
        );
    }

    /// Decodes the stream `wire` fed in `piece`-byte reads, with the first
    /// bulk string read into memory given for it: the messages, and
    /// whether that string is in the memory given.
    fn decode_stream(wire: &[u8], piece: usize, dialect: Dialect) -> Vec<(Message, bool)> {
        let mut decoder = frame::Decoder::new(frame::Limits::default())
            .locating_bulk(locate_bulk, brine::BULK_MIN);
        let mut given = None;
        let mut messages = Vec::new();
        for chunk in wire.chunks(piece) {
            decoder.feed(chunk);
            if let Some(len) = decoder.bulk_wanted() {
                let memory = vec![0; len];
                given = Some(memory.as_ptr());
                decoder.give_bulk_memory(Box::new(memory));
            }
            while let Some(payload) = decoder.next_payload().expect("frames are valid") {
                let message = Message::decode_with_bulk(
                    &payload.bytes,
                    payload.bulk,
                    dialect,
                    DecodeLimits::for_messages(frame::DEFAULT_MAX_SIZE, brine::DEFAULT_MAX_DEPTH),
                )
                .expect("decodes");
                let first_bulk = match &message {
                    Message::Reply {
                        value: Boxed::Tuple(items),
                        ..
                    } => match items.first() {
                        Some(Boxed::Value(Value::Bytes(first))) => Some(first.as_ptr()),
                        _ => None,
                    },
                    _ => None,
                };
                let in_given = first_bulk.is_some() && first_bulk == given.take();
                messages.push((message, in_given));
            }
        }
        assert_eq!(decoder.buffered(), 0);
        messages
    }

    #[test]
    fn a_bulk_string_is_read_into_the_memory_given_for_it() {
        let first = noise(3 << 20);
        let message = bulk_reply(first.clone(), noise(2 << 20));
        let next = Message::Reply {
            seq: 8,
            value: Boxed::Value(Value::None),
        };
        let mut wire = detached_wire(&message, true);
        wire.extend(frame::encode(&next.encode().expect("encodes"), false).expect("frames"));
        // one read, reads cutting the length header, the string and the
        // frames' boundary anywhere, large reads
        for piece in [wire.len(), 1, 7, 4093, 1 << 20] {
            if piece == 1 {
                // a byte at a time through the envelope only: it is slow
                let mut decoder = frame::Decoder::new(frame::Limits::default())
                    .locating_bulk(locate_bulk, brine::BULK_MIN);
                let found = wire.iter().take(40).position(|byte| {
                    decoder.feed(std::slice::from_ref(byte));
                    decoder.bulk_wanted().is_some()
                });
                // as soon as the string's length is in
                let data_at = wire
                    .windows(16)
                    .position(|window| window == &first[..16])
                    .expect("the string is on the wire");
                assert_eq!(found, Some(data_at - 1));
                assert_eq!(decoder.bulk_wanted(), Some(3 << 20));
                continue;
            }
            let decoded = decode_stream(&wire, piece, Dialect::V6);
            assert_eq!(
                decoded,
                vec![(message.clone(), true), (next.clone(), false)],
                "read in pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_bulk_string_is_found_in_an_rpyc5_envelope_too() {
        let message = bulk_reply(noise(1 << 20), b"small".to_vec());
        let payload = message.encode_for(Dialect::V5).expect("encodes");
        let wire = frame::encode(&payload, false).expect("frames");
        assert_eq!(
            decode_stream(&wire, 65536, Dialect::V5),
            vec![(message, true)]
        );
    }

    #[test]
    fn bulk_strings_are_not_looked_for_in_text_or_small_frames() {
        let text = String::from_utf8(vec![b'x'; 2 << 20]).expect("ascii");
        let mut prefix = vec![2];
        brine::encode_tuple_header(2, &mut prefix).expect("encodes");
        brine::encode_int(1, &mut prefix);
        brine::encode_str(&text, &mut prefix).expect("encodes");
        assert_eq!(
            locate_bulk(&prefix[..64], brine::BULK_MIN),
            brine::Located::NeedMore
        );
        let message = Message::Reply {
            seq: 1,
            value: Boxed::Value(Value::Str(text)),
        };
        let wire = frame::encode(&message.encode().expect("encodes"), false).expect("frames");
        assert_eq!(
            decode_stream(&wire, 1 << 16, Dialect::V6),
            vec![(message, false)]
        );
        let small = bulk_reply(vec![1; 100], vec![2; 100]);
        let wire = frame::encode(&small.encode().expect("encodes"), false).expect("frames");
        assert_eq!(decode_stream(&wire, 3, Dialect::V6), vec![(small, false)]);
        assert_eq!(
            locate_bulk(&[0x99, 1, 2], brine::BULK_MIN),
            brine::Located::Nowhere
        );
    }

    #[test]
    fn handler_codes_match_consts_py() {
        for (index, handler) in Handler::ALL.iter().enumerate() {
            assert_eq!(usize::from(handler.code()), index + 1);
            assert_eq!(Handler::from_code(index as i64 + 1), Some(*handler));
        }
        assert_eq!(Handler::from_code(0), None);
        assert_eq!(Handler::from_code(21), None);
        assert_eq!(Handler::from_code(-1), None);
    }

    #[test]
    fn ping_request_matches_rpyc_bytes() {
        // bytes([1]) + brine.dump((0, (1, (1, ("ab",)))))
        let bytes = round_trip(Message::Request {
            seq: 0,
            handler: Handler::Ping,
            args: Boxed::Value(Value::Tuple(vec![Value::str("ab")])),
        });
        assert_eq!(bytes, b"\x01\x11\x50\x11\x51\x11\x51\x10\x08\x0bab");
    }

    #[test]
    fn boxed_encoding_equals_value_encoding() {
        let boxed = Boxed::Tuple(vec![
            Boxed::Value(Value::Int(5)),
            Boxed::RemoteRef(IdPack {
                name: "builtins.list".into(),
                type_id: 94_000_000_000_000,
                obj_id: u64::MAX,
            }),
            Boxed::LocalRef(IdPack {
                name: "sys".into(),
                type_id: 1,
                obj_id: 2,
            }),
        ]);
        let mut direct = Vec::new();
        boxed.encode(&mut direct).unwrap();
        assert_eq!(direct, boxed.to_value().to_bytes().unwrap());
        assert_eq!(Boxed::from_value(boxed.to_value()), Ok(boxed));
    }

    #[test]
    fn exceptions_round_trip() {
        round_trip(Message::Exception {
            seq: 7,
            exception: RemoteException::StopIteration,
        });
        round_trip(Message::Exception {
            seq: 8,
            exception: RemoteException::Raised(ExceptionInfo {
                module: "builtins".into(),
                name: "KeyError".into(),
                args: vec![Value::str("k")],
                attrs: vec![("_remote_version".into(), Value::str("6.0.2"))],
                traceback: "Traceback ...".into(),
            }),
        });
    }

    #[test]
    fn rpyc5_envelope_round_trips_and_is_detected() {
        let message = Message::Request {
            seq: 3,
            handler: Handler::GetRoot,
            args: Boxed::Value(Value::Tuple(vec![])),
        };
        // rpyc 5.3.1: brine.dump((1, 3, (3, (1, ()))))
        let v5 = message.encode_for(Dialect::V5).unwrap();
        assert_eq!(v5, b"\x12\x51\x53\x11\x53\x11\x51\x02");
        assert_eq!(Dialect::detect(&v5), Some(Dialect::V5));
        assert_eq!(
            Message::decode_for(&v5, Dialect::V5, DecodeLimits::for_input(v5.len())),
            Ok(message.clone())
        );
        let v6 = message.encode().unwrap();
        assert_eq!(Dialect::detect(&v6), Some(Dialect::V6));
        assert_eq!(Dialect::detect(b"\x50"), None);
        assert_eq!(Dialect::detect(b""), None);
    }

    #[test]
    fn unknown_handler_keeps_the_seq_for_an_answer() {
        let bytes = b"\x01\x11\x59\x11\x16\x0299\x11\x51\x02";
        assert_eq!(
            Message::decode(bytes),
            Err(MessageError::BadRequest {
                seq: 9,
                reason: BadRequest::UnknownHandler(99)
            })
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        assert_eq!(Message::decode(b""), Err(MessageError::Empty));
        assert_eq!(
            Message::decode(b"\x12\x11\x50\x50"),
            Err(MessageError::UnknownType(0x12))
        );
        assert_eq!(
            Message::decode(b"\x02\x10\x50"),
            Err(MessageError::NotSeqArgs)
        );
        assert!(matches!(
            Message::decode(b"\x02\x11\x50\x11\x59\x50"),
            Err(MessageError::BadResponse { kind: "reply", .. })
        ));
        assert!(matches!(
            Message::decode(b"\x03\x11\x50\x52"),
            Err(MessageError::BadResponse {
                kind: "exception",
                ..
            })
        ));
    }
}
