//! Channel framing (rpyc 6.0.2 `rpyc/core/channel.py`): a 4-byte big-endian
//! length, a one-byte "compressed" flag, the payload, and a `\n` that makes
//! line-buffered transports flush. rpyc compresses payloads over 3000 bytes
//! with zlib at level 1; so do we, except payloads that do not shrink
//! (random or already compressed data), which go plain: the flag is per
//! frame and rpyc's reader takes either (`Channel.recv` inflates only
//! frames flagged 1), so this changes nothing a peer can see but the time.
//!
//! The decoder takes bytes as they arrive and yields whole payloads. It checks
//! a header against the limits before buffering the body it announces, and it
//! inflates compressed bodies with a cap, so neither a lying length nor a zlib
//! bomb can make it allocate past what the limits allow. Given a locator, it
//! reads a large plain frame's first bulk byte string into memory of its own
//! (the value's final home) instead of into the frame buffer.

use std::borrow::Cow;
use std::io::{self, IoSlice, Write};

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use super::brine::{Bulk, Detached, Located};
use super::bytebuf::BulkMemory;

pub const HEADER_LEN: usize = 5;
pub const FLUSHER: u8 = b'\n';
/// rpyc compresses payloads strictly longer than this.
pub const COMPRESSION_THRESHOLD: usize = 3000;
pub const COMPRESSION_LEVEL: u32 = 1;
/// Limits' default: large enough for real bulk transfers.
pub const DEFAULT_MAX_SIZE: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest length field accepted (the body as sent, compressed or not).
    pub max_frame_size: usize,
    /// Largest payload accepted after decompression.
    pub max_payload_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_size: DEFAULT_MAX_SIZE,
            max_payload_size: DEFAULT_MAX_SIZE,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { len: usize, limit: usize },
    #[error("payload inflates past the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("frame has compression flag {flag}, expected 0 or 1")]
    BadFlag { flag: u8 },
    #[error("frame ends with byte {byte:#04x} instead of a newline")]
    BadTrailer { byte: u8 },
    #[error("compressed payload is not a valid zlib stream: {reason}")]
    BadCompression { reason: String },
    #[error("no memory for a payload of {len} bytes")]
    OutOfMemory { len: usize },
    #[error("payload of {len} bytes does not fit a frame's 4-byte length")]
    Unencodable { len: usize },
}

/// The 5-byte header of a frame whose body is `len` bytes.
pub fn header(len: usize, compressed: bool) -> Result<[u8; HEADER_LEN], FrameError> {
    let len = u32::try_from(len).map_err(|_| FrameError::Unencodable { len })?;
    let [a, b, c, d] = len.to_be_bytes();
    Ok([a, b, c, d, u8::from(compressed)])
}

/// Frames `payload` as rpyc's channel does, compressing it when `compress`
/// is set and it is over the threshold.
pub fn encode(payload: &[u8], compress: bool) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 1);
    encode_into(payload, compress, &mut out)?;
    Ok(out)
}

/// Appends the frame of `payload` to `out`.
pub fn encode_into(payload: &[u8], compress: bool, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if compress && payload.len() > COMPRESSION_THRESHOLD && worth_deflating(payload) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        deflate_into(payload, out);
        let len = out.len() - start - HEADER_LEN;
        if len < payload.len() {
            let head = header(len, true)?;
            out[start..start + HEADER_LEN].copy_from_slice(&head);
            out.push(FLUSHER);
            return Ok(());
        }
        out.truncate(start);
    }
    out.extend_from_slice(&header(payload.len(), false)?);
    out.extend_from_slice(payload);
    out.push(FLUSHER);
    Ok(())
}

/// Room for a frame's header at the start of a buffer the payload is then
/// written into, so that [`seal`] frames it without copying the payload.
pub fn begin(capacity: usize) -> Vec<u8> {
    let mut buffer = crate::host::with_capacity(HEADER_LEN + capacity + 1);
    buffer.extend_from_slice(&[0; HEADER_LEN]);
    buffer
}

/// Turns a buffer from [`begin`] (header room, then the payload) into the
/// frame: in place when the payload goes plain, into a new buffer when it
/// is compressed.
pub fn seal(mut buffer: Vec<u8>, compress: bool) -> Result<Vec<u8>, FrameError> {
    let payload = buffer.get(HEADER_LEN..).unwrap_or_default();
    if compress && payload.len() > COMPRESSION_THRESHOLD && worth_deflating(payload) {
        let mut out = Vec::new();
        out.extend_from_slice(&[0; HEADER_LEN]);
        deflate_into(payload, &mut out);
        let len = out.len() - HEADER_LEN;
        if len < payload.len() {
            out[..HEADER_LEN].copy_from_slice(&header(len, true)?);
            out.push(FLUSHER);
            return Ok(out);
        }
    }
    if buffer.len() < HEADER_LEN {
        buffer.resize(HEADER_LEN, 0);
    }
    let head = header(buffer.len() - HEADER_LEN, false)?;
    buffer[..HEADER_LEN].copy_from_slice(&head);
    buffer.push(FLUSHER);
    Ok(buffer)
}

/// [`seal`] for a buffer whose bulk byte strings were left out of it (see
/// [`crate::Message::encode_detached`]): they are written from
/// where they are, unless the payload is worth deflating, which needs it
/// in one piece.
pub fn seal_detached<'v>(
    mut buffer: Vec<u8>,
    detached: Vec<Detached<'v>>,
    compress: bool,
) -> Result<Frame<'v>, FrameError> {
    let Some(largest) = detached.iter().map(|d| d.bytes).max_by_key(|b| b.len()) else {
        return Ok(Frame::whole(seal(buffer, compress)?));
    };
    if buffer.len() < HEADER_LEN {
        buffer.resize(HEADER_LEN, 0);
    }
    let len = buffer.len() - HEADER_LEN + detached.iter().map(|d| d.bytes.len()).sum::<usize>();
    // the bulk strings are nearly all of the payload: their sample decides
    if compress && worth_deflating(largest) {
        let whole = Frame {
            head: buffer,
            detached,
        };
        return Ok(Frame::whole(seal(whole.joined(), compress)?));
    }
    let head = header(len, false)?;
    buffer[..HEADER_LEN].copy_from_slice(&head);
    buffer.push(FLUSHER);
    Ok(Frame {
        head: buffer,
        detached,
    })
}

/// A frame ready to be written: a buffer, with byte strings of the payload
/// that stay where they are written in between.
#[derive(Debug)]
pub struct Frame<'v> {
    head: Vec<u8>,
    /// In the order of their positions in `head`.
    detached: Vec<Detached<'v>>,
}

impl Frame<'_> {
    pub fn whole(bytes: Vec<u8>) -> Frame<'static> {
        Frame {
            head: bytes,
            detached: Vec::new(),
        }
    }

    /// The frame's bytes in order, as slices.
    fn pieces(&self) -> Vec<&[u8]> {
        let mut pieces = Vec::with_capacity(2 * self.detached.len() + 1);
        let mut from = 0;
        for detached in &self.detached {
            pieces.push(&self.head[from..detached.at]);
            pieces.push(detached.bytes);
            from = detached.at;
        }
        pieces.push(&self.head[from..]);
        pieces.retain(|piece| !piece.is_empty());
        pieces
    }

    /// The frame in one buffer (for a queue that outlives the values).
    pub fn joined(self) -> Vec<u8> {
        if self.detached.is_empty() {
            return self.head;
        }
        let len = self.head.len() + self.detached.iter().map(|d| d.bytes.len()).sum::<usize>();
        let mut out = crate::host::with_capacity(len);
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        out
    }

    /// Writes the whole frame, with one `writev` where the writer has it.
    pub fn write_to(&self, writer: &mut dyn Write) -> io::Result<()> {
        if self.detached.is_empty() {
            // nearly every frame: one buffer, no slices to gather
            return writer.write_all(&self.head);
        }
        let pieces = self.pieces();
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|piece| IoSlice::new(piece)).collect();
        let mut remaining = &mut slices[..];
        while !remaining.is_empty() {
            match writer.write_vectored(remaining) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut remaining, written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// Payloads at most this long are deflated whole (and sent plain if that
/// did not shrink them); longer ones only if a sample of them shrinks.
const SAMPLE_WINDOW: usize = 16 * 1024;
const SAMPLE_WINDOWS: usize = 4;

/// Whether deflating `payload` pays: for a long payload, whether samples
/// from its start, middle and end deflate to 7/8 of their size or less.
/// Random bytes, and data compressed already, do not; deflating them
/// (about 90-150 MB/s at level 1 on a 2 GHz core) would cost far more time
/// than the few bytes it saves, and the peer would pay again to inflate.
fn worth_deflating(payload: &[u8]) -> bool {
    if payload.len() <= SAMPLE_WINDOW * SAMPLE_WINDOWS * 2 {
        return true;
    }
    let mut sample = Vec::with_capacity(SAMPLE_WINDOW * SAMPLE_WINDOWS);
    let step = (payload.len() - SAMPLE_WINDOW) / (SAMPLE_WINDOWS - 1);
    for index in 0..SAMPLE_WINDOWS {
        let at = index * step;
        sample.extend_from_slice(&payload[at..at + SAMPLE_WINDOW]);
    }
    let mut deflated = Vec::new();
    deflate_into(&sample, &mut deflated);
    deflated.len() * 8 <= sample.len() * 7
}

fn deflate_into(payload: &[u8], out: &mut Vec<u8>) {
    crate::compress::zlib_into(payload, COMPRESSION_LEVEL, out);
}

/// Inflates a compressed body, refusing to produce more than `limit` bytes.
pub fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut inflater = Decompress::new(true);
    // Start modest and grow by doubling: the body's size says nothing
    // trustworthy about what it inflates to.
    let mut out: Vec<u8> =
        Vec::with_capacity(body.len().saturating_mul(4).clamp(64, limit.max(64)));
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(FrameError::PayloadTooLarge { limit });
            }
            // one byte beyond the limit tells "exactly at" from "past" it
            let room = out.capacity().max(64).min(limit + 1 - out.len());
            out.try_reserve_exact(room.max(1))
                .map_err(|_| FrameError::OutOfMemory {
                    len: out.len() + room,
                })?;
        }
        let consumed = inflater.total_in() as usize;
        let before = (consumed, out.len());
        let status = inflater
            .decompress_vec(&body[consumed..], &mut out, FlushDecompress::None)
            .map_err(|e| FrameError::BadCompression {
                reason: e.to_string(),
            })?;
        if out.len() > limit {
            return Err(FrameError::PayloadTooLarge { limit });
        }
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                let progressed = (inflater.total_in() as usize, out.len()) != before;
                if !progressed && out.len() < out.capacity() {
                    return Err(FrameError::BadCompression {
                        reason: "stream ends before its end marker".into(),
                    });
                }
            }
        }
    }
    if inflater.total_in() as usize != body.len() {
        return Err(FrameError::BadCompression {
            reason: "bytes follow the end of the stream".into(),
        });
    }
    Ok(out)
}

/// A payload, and its bulk byte string if that was read apart from it
/// (see [`Decoder::locating_bulk`]).
#[derive(Debug)]
pub struct Payload<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub bulk: Option<Bulk>,
}

/// How the frame at the front of the buffer is being read.
#[derive(Default)]
enum BulkRead {
    /// Not looked at yet: its header is not whole, or too little of its
    /// payload is in to tell where a bulk byte string would be.
    #[default]
    Unknown,
    /// Whole into the buffer.
    Inline,
    /// Its bulk byte string's data, `len` bytes from `at` bytes into the
    /// frame on, is to be read apart, into memory not given yet.
    Wanted { at: usize, len: usize },
    /// ... into `memory`, which holds `filled` bytes of it so far; the
    /// buffer holds the rest of the frame, without them.
    Reading {
        at: usize,
        len: usize,
        memory: Box<dyn BulkMemory>,
        filled: usize,
    },
}

impl std::fmt::Debug for BulkRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BulkRead::Unknown => f.write_str("Unknown"),
            BulkRead::Inline => f.write_str("Inline"),
            BulkRead::Wanted { at, len } => write!(f, "Wanted {{ at: {at}, len: {len} }}"),
            BulkRead::Reading {
                at, len, filled, ..
            } => write!(f, "Reading {{ at: {at}, len: {len}, filled: {filled} }}"),
        }
    }
}

/// How much of a bulk frame's payload is read into the buffer, at most,
/// to find its bulk byte string: a message's envelope is a few bytes.
const LOCATE_WINDOW: usize = 64 * 1024;

/// Cuts a byte stream into payloads.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    /// Bytes received are `buffer[start..end]`; the rest of `buffer` is
    /// room already initialised, so reads into it need no zero-filling.
    buffer: Vec<u8>,
    /// Bytes of `buffer` before this were handed out already.
    start: usize,
    end: usize,
    /// Where a plain payload's first bulk byte string is, from the
    /// payload's first bytes; without it, every frame is read whole.
    locate: Option<fn(&[u8], usize) -> Located>,
    /// The least length a byte string must have to be read apart.
    bulk_min: usize,
    bulk: BulkRead,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// Reads the first bulk byte string of a plain frame apart from the
    /// rest, into memory of its own ([`Decoder::give_bulk_memory`], or a
    /// zeroed vector), found by `locate` from the payload's first bytes.
    /// A 100 MB value then lands where it is to live, instead of in a
    /// frame buffer it is copied out of.
    pub fn locating_bulk(mut self, locate: fn(&[u8], usize) -> Located, min: usize) -> Decoder {
        self.locate = Some(locate);
        self.bulk_min = min;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes received but not yet returned as part of a payload.
    pub fn buffered(&self) -> usize {
        let apart = match &self.bulk {
            BulkRead::Reading { filled, .. } => *filled,
            _ => 0,
        };
        self.end - self.start + apart
    }

    /// Appends received bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Ok(taken) = self.feed_with(bytes.len(), |room| {
                let taken = room.len().min(bytes.len());
                room[..taken].copy_from_slice(&bytes[..taken]);
                Ok::<usize, std::convert::Infallible>(taken)
            });
            bytes = &bytes[taken..];
        }
    }

    /// Lets a reader write straight into the buffer (or into the memory a
    /// bulk byte string is read into): `fill` gets space, at least `room`
    /// bytes of it unless a bulk string needs less to be whole, and returns
    /// how many bytes it filled. Saves a copy per read on bulk transfers.
    pub fn feed_with<E>(
        &mut self,
        room: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        if let BulkRead::Wanted { len, .. } = self.bulk {
            match crate::host::zeroed(len) {
                Some(memory) => self.give_bulk_memory(Box::new(memory)),
                // without memory for it apart, the string comes with the rest
                None => self.bulk = BulkRead::Inline,
            }
        }
        if let BulkRead::Reading { memory, filled, .. } = &mut self.bulk {
            let rest = memory.as_mut_slice().get_mut(*filled..).unwrap_or_default();
            if !rest.is_empty() {
                let space = rest.len();
                let result = fill(rest);
                *filled += (*result.as_ref().unwrap_or(&0)).min(space);
                return result;
            }
        }
        self.compact();
        self.reserve(room);
        let result = fill(&mut self.buffer[self.end..self.end + room]);
        let got = *result.as_ref().unwrap_or(&0);
        self.end += got.min(room);
        self.look_for_bulk();
        result
    }

    /// How long the bulk byte string of the frame in progress is, once it
    /// is known and memory for it is wanted.
    pub fn bulk_wanted(&self) -> Option<usize> {
        match self.bulk {
            BulkRead::Wanted { len, .. } => Some(len),
            _ => None,
        }
    }

    /// Memory for the bulk byte string [`Decoder::bulk_wanted`] asked for;
    /// the part of it already received is moved there. Memory of another
    /// length is not taken (a zeroed vector is, when reading goes on).
    pub fn give_bulk_memory(&mut self, mut memory: Box<dyn BulkMemory>) {
        let BulkRead::Wanted { at, len } = self.bulk else {
            return;
        };
        let target = memory.as_mut_slice();
        if target.len() != len {
            return;
        }
        let from = self.start + at;
        let received = self.end.saturating_sub(from).min(len);
        target[..received].copy_from_slice(&self.buffer[from..from + received]);
        // what came after the string's received part closes the gap
        self.buffer.copy_within(from + received..self.end, from);
        self.end -= received;
        self.bulk = BulkRead::Reading {
            at,
            len,
            memory,
            filled: received,
        };
    }

    /// Decides how the frame at the front is read, once enough of it is in.
    fn look_for_bulk(&mut self) {
        if !matches!(self.bulk, BulkRead::Unknown) {
            return;
        }
        let pending = &self.buffer[self.start..self.end];
        let Some(len) = frame_len(pending) else {
            return;
        };
        let plain = pending[4] == 0;
        let fits = len <= self.limits.max_frame_size && len <= self.limits.max_payload_size;
        let locate = self
            .locate
            .filter(|_| plain && fits && len >= self.bulk_min);
        let Some(locate) = locate else {
            self.bulk = BulkRead::Inline;
            return;
        };
        let body = &pending[HEADER_LEN..pending.len().min(HEADER_LEN + len)];
        self.bulk = match locate(body, self.bulk_min) {
            Located::At { data, len: bulk } if data.checked_add(bulk).is_some_and(|e| e <= len) => {
                BulkRead::Wanted {
                    at: HEADER_LEN + data,
                    len: bulk,
                }
            }
            Located::NeedMore if body.len() < LOCATE_WINDOW.min(len) => BulkRead::Unknown,
            _ => BulkRead::Inline,
        };
    }

    /// Room for `more` bytes after the data, zero-filled only where the
    /// buffer never reached before.
    fn reserve(&mut self, more: usize) {
        let needed = self.end + more;
        if self.buffer.len() < needed {
            // (a frame over the limit is refused on its header alone)
            let frame_end = frame_len(&self.buffer[self.start..self.end]).map_or(0, |len| {
                self.start + HEADER_LEN + len.min(self.limits.max_frame_size) + 1
            });
            let capacity = self.buffer.capacity();
            let whole = matches!(self.bulk, BulkRead::Inline);
            if whole && needed > capacity && frame_end > capacity && frame_end >= crate::host::LARGE
            {
                // a bulk frame read whole: a buffer on huge pages, twice
                // what has arrived (the header's length is only a claim,
                // so it alone reserves nothing), never past the frame's
                // end, with room for the little more than the frame's rest
                // that a reader asks for at its end
                let size = needed
                    .max(capacity.saturating_mul(2))
                    .min(frame_end.max(needed));
                if let Some(mut bigger) = crate::host::zeroed(size + KEEP_BUFFER) {
                    bigger[..self.end].copy_from_slice(&self.buffer[..self.end]);
                    self.buffer = bigger;
                }
            }
            self.buffer.resize(needed, 0);
        }
    }

    /// How many more bytes the frame in progress needs at least (the whole
    /// rest of it once its header is in, but no more than it takes to find
    /// a bulk string), so a reader can size its reads.
    pub fn wanted(&self) -> usize {
        let pending = &self.buffer[self.start..self.end];
        let Some(len) = frame_len(pending) else {
            return HEADER_LEN - pending.len();
        };
        let rest = (HEADER_LEN + len + 1).saturating_sub(self.buffered());
        match self.bulk {
            BulkRead::Unknown => rest.min(LOCATE_WINDOW),
            _ => rest,
        }
    }

    /// The next whole payload, decompressed; `Ok(None)` until one is in.
    /// After an error the stream is out of step and must be abandoned.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        Ok(self.next_payload()?.map(|payload| match payload.bulk {
            None => payload.bytes.into_owned(),
            Some(bulk) => {
                let at = bulk.at.min(payload.bytes.len());
                let mut whole = crate::host::with_capacity(payload.bytes.len() + bulk.bytes.len());
                whole.extend_from_slice(&payload.bytes[..at]);
                whole.extend_from_slice(&bulk.bytes);
                whole.extend_from_slice(&payload.bytes[at..]);
                whole
            }
        }))
    }

    /// [`Decoder::next_frame`] without copying a plain payload out of the
    /// buffer (it is borrowed until the decoder is used again), nor its
    /// bulk byte string into it.
    pub fn next_payload(&mut self) -> Result<Option<Payload<'_>>, FrameError> {
        self.look_for_bulk();
        let Some((len, flag, apart)) = self.whole_frame()? else {
            return Ok(None);
        };
        let in_buffer = HEADER_LEN + len + 1 - apart;
        let body = self.start + HEADER_LEN..self.start + in_buffer - 1;
        let bulk = match std::mem::take(&mut self.bulk) {
            BulkRead::Reading { at, memory, .. } => Some(Bulk {
                at: at - HEADER_LEN,
                bytes: memory.into_bytes(),
            }),
            _ => None,
        };
        if flag == 1 {
            let payload = inflate(&self.buffer[body], self.limits.max_payload_size)?;
            self.start += in_buffer;
            Ok(Some(Payload {
                bytes: Cow::Owned(payload),
                bulk,
            }))
        } else if len > self.limits.max_payload_size {
            Err(FrameError::PayloadTooLarge {
                limit: self.limits.max_payload_size,
            })
        } else {
            self.start += in_buffer;
            Ok(Some(Payload {
                bytes: Cow::Borrowed(&self.buffer[body]),
                bulk,
            }))
        }
    }

    /// The body length and flag of the whole frame at the front of the
    /// buffer, checked against the limits, and how many of its bytes were
    /// read apart; `Ok(None)` until it is all in.
    fn whole_frame(&self) -> Result<Option<(usize, u8, usize)>, FrameError> {
        let pending = &self.buffer[self.start..self.end];
        let Some(len) = frame_len(pending) else {
            return Ok(None);
        };
        if len > self.limits.max_frame_size {
            return Err(FrameError::FrameTooLarge {
                len,
                limit: self.limits.max_frame_size,
            });
        }
        let flag = pending[4];
        if flag > 1 {
            return Err(FrameError::BadFlag { flag });
        }
        let apart = match self.bulk {
            BulkRead::Reading { len, filled, .. } if filled == len => len,
            BulkRead::Reading { .. } => return Ok(None),
            _ => 0,
        };
        let total = HEADER_LEN + len + 1 - apart;
        if pending.len() < total {
            return Ok(None);
        }
        let trailer = pending[total - 1];
        if trailer != FLUSHER {
            return Err(FrameError::BadTrailer { byte: trailer });
        }
        Ok(Some((len, flag, apart)))
    }

    /// Gives the buffer back if nothing is buffered: a connection about to
    /// sit idle for long keeps no read buffer meanwhile.
    pub fn release_if_empty(&mut self) {
        if self.buffered() == 0 {
            self.buffer = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops consumed bytes once they outweigh the live ones, so the buffer
    /// neither grows forever nor is shifted on every frame. A buffer grown
    /// large for a bulk transfer is given back once it is empty again.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buffer.len() > KEEP_BUFFER {
                self.buffer = Vec::new();
            }
        } else if self.start > 0 && self.start >= self.end - self.start {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

/// The buffer a connection keeps between frames; more is freed once used.
const KEEP_BUFFER: usize = 64 * 1024;

/// The body length a buffered header announces, once the header is whole.
fn frame_len(pending: &[u8]) -> Option<usize> {
    match pending {
        [a, b, c, d, _flag, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d]) as usize),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut decoder = Decoder::new(limits);
        decoder.feed(bytes);
        let mut out = Vec::new();
        while let Some(payload) = decoder.next_frame()? {
            out.push(payload);
        }
        Ok(out)
    }

    #[test]
    fn small_payloads_travel_plain() {
        assert_eq!(encode(b"abc", true).unwrap(), b"\0\0\0\x03\0abc\n");
        let exactly = vec![b'x'; COMPRESSION_THRESHOLD];
        assert_eq!(encode(&exactly, true).unwrap()[4], 0);
        let over = vec![b'x'; COMPRESSION_THRESHOLD + 1];
        assert_eq!(encode(&over, true).unwrap()[4], 1);
        assert_eq!(encode(&over, false).unwrap()[4], 0);
    }

    /// Bytes that deflate cannot shrink (xorshift noise).
    pub(crate) fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_payloads_travel_plain() {
        // small enough to be deflated whole, and sent plain when that did
        // not shrink it; large enough to be judged by a sample
        for len in [COMPRESSION_THRESHOLD + 1, 100_000, 1 << 20] {
            let payload = noise(len);
            let wire = encode(&payload, true).unwrap();
            assert_eq!(wire[4], 0, "{len} bytes of noise");
            assert_eq!(wire.len(), HEADER_LEN + len + 1);
            assert_eq!(decode_all(&wire, Limits::default()).unwrap(), vec![payload]);
        }
        // text still shrinks, sampled or not
        for len in [10_000, 1 << 20] {
            let text: Vec<u8> = (0..len).map(|i| b"0123456789,abc\n"[i % 15]).collect();
            let wire = encode(&text, true).unwrap();
            assert_eq!(wire[4], 1);
            assert!(wire.len() < len / 4);
            assert_eq!(decode_all(&wire, Limits::default()).unwrap(), vec![text]);
        }
    }

    #[test]
    fn seal_frames_in_place_as_encode_does() {
        let text: Vec<u8> = (0..50_000).map(|i| (i % 7) as u8).collect();
        for payload in [Vec::new(), b"short".to_vec(), noise(200_000), text] {
            for compress in [false, true] {
                let mut buffer = begin(payload.len());
                buffer.extend_from_slice(&payload);
                assert_eq!(
                    seal(buffer, compress).unwrap(),
                    encode(&payload, compress).unwrap()
                );
            }
        }
    }

    #[test]
    fn plain_payloads_are_borrowed_from_the_buffer() {
        let mut wire = encode(b"plain", true).unwrap();
        encode_into(&[b'z'; 5000], true, &mut wire).unwrap();
        let mut decoder = Decoder::default();
        decoder.feed(&wire);
        assert!(matches!(
            decoder.next_payload().unwrap().map(|p| p.bytes),
            Some(Cow::Borrowed(b"plain"))
        ));
        assert!(matches!(
            decoder.next_payload().unwrap().map(|p| p.bytes),
            Some(Cow::Owned(inflated)) if inflated == [b'z'; 5000]
        ));
        assert!(decoder.next_payload().unwrap().is_none());
    }

    #[test]
    fn frames_survive_byte_by_byte_delivery() {
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![b'z'; 100_000],
            (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ];
        let mut wire = Vec::new();
        for payload in &payloads {
            encode_into(payload, true, &mut wire).unwrap();
        }
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for byte in &wire {
            assert!(decoder.wanted() >= 1);
            decoder.feed(std::slice::from_ref(byte));
            while let Some(payload) = decoder.next_frame().unwrap() {
                got.push(payload);
            }
        }
        assert_eq!(got, payloads);
        assert_eq!(decoder.buffered(), 0);
    }

    /// As the connection reads: small reads until the header is in, then
    /// pieces of at most 1 MiB, and at least 1 KiB even at the frame's end.
    /// The header's length is a claim: room is reserved as bytes arrive,
    /// by doublings, so the buffer moves a few times, never per read.
    #[test]
    fn a_bulk_frame_is_read_into_room_that_grows_with_what_came() {
        // the last read asks for 1 KiB when 500 bytes are left
        let len = crate::host::LARGE + 1518;
        let mut wire = header(len, false).unwrap().to_vec();
        wire.extend((0..len).map(|i| (i % 251) as u8));
        wire.push(FLUSHER);
        let mut decoder = Decoder::new(Limits::default());
        let mut fed = 0;
        let mut bases = std::collections::BTreeSet::new();
        while fed < wire.len() {
            let room = decoder.wanted().clamp(1024, 1 << 20);
            let got = decoder
                .feed_with(room, |buf: &mut [u8]| {
                    let take = buf.len().min(wire.len() - fed);
                    buf[..take].copy_from_slice(&wire[fed..fed + take]);
                    Ok::<usize, ()>(take)
                })
                .unwrap();
            fed += got;
            let reserved = decoder.buffer.capacity();
            assert!(
                reserved <= 2 * (fed + room) + KEEP_BUFFER,
                "{reserved} bytes reserved when {fed} came"
            );
            bases.insert(decoder.buffer.as_ptr() as usize);
        }
        assert!(bases.len() <= 24, "the buffer moved {} times", bases.len());
        let payload = decoder.next_payload().unwrap().expect("the frame");
        assert!(payload.bulk.is_none());
        assert_eq!(payload.bytes.len(), len);
        assert!(matches!(payload.bytes, Cow::Borrowed(_)));
        assert!(payload
            .bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8));
    }

    /// As the connection reads, with a bulk string located: its bytes go
    /// straight into the memory given for it, and the frame buffer stays
    /// small whatever the string's size.
    #[test]
    fn a_located_bulk_string_bypasses_the_frame_buffer() {
        let len = crate::host::LARGE + 3;
        let mut payload = Vec::new();
        crate::brine::encode_tuple_header(3, &mut payload).unwrap();
        crate::brine::encode_int(9, &mut payload);
        let bulk: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        crate::brine::encode_bytes(&bulk, &mut payload).unwrap();
        crate::brine::encode_int(10, &mut payload);
        let mut wire = encode(&payload, false).unwrap();
        encode_into(b"next", false, &mut wire).unwrap();
        let mut decoder =
            Decoder::new(Limits::default()).locating_bulk(crate::brine::find_bulk, 1 << 20);
        let mut fed = 0;
        let mut given = None;
        let mut payloads = Vec::new();
        while fed < wire.len() {
            if let Some(wanted) = decoder.bulk_wanted() {
                assert_eq!(wanted, len);
                let memory = vec![0; wanted];
                given = Some(memory.as_ptr());
                decoder.give_bulk_memory(Box::new(memory));
            }
            let room = decoder.wanted().clamp(1024, 1 << 20);
            fed += decoder
                .feed_with(room, |buf: &mut [u8]| {
                    let take = buf.len().min(wire.len() - fed);
                    buf[..take].copy_from_slice(&wire[fed..fed + take]);
                    Ok::<usize, ()>(take)
                })
                .unwrap();
            assert!(decoder.buffer.len() <= 2 << 20, "{}", decoder.buffer.len());
            while let Some(payload) = decoder.next_payload().unwrap() {
                payloads.push((payload.bytes.into_owned(), payload.bulk));
            }
        }
        let [(first, Some(first_bulk)), (second, None)] = &payloads[..] else {
            panic!(
                "not a bulk frame and a small one: {} payloads",
                payloads.len()
            );
        };
        // (tuple header, 9, then the string's tag and length
        assert_eq!(first_bulk.at, 1 + 1 + 5);
        assert_eq!(Some(first_bulk.bytes.as_ptr()), given);
        assert!(first_bulk.bytes.as_slice() == bulk.as_slice());
        assert_eq!(first.len(), payload.len() - len);
        assert_eq!(first[..first_bulk.at], payload[..first_bulk.at]);
        assert_eq!(first[first_bulk.at..], payload[first_bulk.at + len..]);
        assert_eq!(second, b"next");
    }

    #[test]
    fn feed_with_reads_in_place() {
        let wire = encode(b"in place", true).unwrap();
        let mut decoder = Decoder::default();
        let got: Result<usize, ()> = decoder.feed_with(4096, |room| {
            room[..wire.len()].copy_from_slice(&wire);
            Ok(wire.len())
        });
        assert_eq!(got, Ok(wire.len()));
        assert_eq!(decoder.next_frame().unwrap(), Some(b"in place".to_vec()));
    }

    #[test]
    fn oversize_length_is_refused_from_the_header_alone() {
        let limits = Limits {
            max_frame_size: 1024,
            max_payload_size: 1024,
        };
        let err = decode_all(&[0, 0, 4, 1, 0], limits).unwrap_err();
        assert_eq!(
            err,
            FrameError::FrameTooLarge {
                len: 1025,
                limit: 1024
            }
        );
    }

    #[test]
    fn zlib_bomb_is_cut_at_the_limit() {
        let bomb = encode(&vec![0u8; 10 << 20], true).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let limits = Limits {
            max_frame_size: 1 << 20,
            max_payload_size: 1 << 20,
        };
        assert_eq!(
            decode_all(&bomb, limits).unwrap_err(),
            FrameError::PayloadTooLarge { limit: 1 << 20 }
        );
        let exact = encode(&vec![0u8; 1 << 20], true).unwrap();
        assert_eq!(decode_all(&exact, limits).unwrap()[0].len(), 1 << 20);
    }

    #[test]
    fn plain_payload_over_the_payload_limit_is_refused() {
        let limits = Limits {
            max_frame_size: 100,
            max_payload_size: 10,
        };
        let wire = encode(&[1; 11], false).unwrap();
        assert_eq!(
            decode_all(&wire, limits).unwrap_err(),
            FrameError::PayloadTooLarge { limit: 10 }
        );
    }

    #[test]
    fn wrong_trailer_and_flag_are_refused() {
        assert_eq!(
            decode_all(b"\0\0\0\x01\0xX", Limits::default()).unwrap_err(),
            FrameError::BadTrailer { byte: b'X' }
        );
        assert_eq!(
            decode_all(b"\0\0\0\x01\x02x\n", Limits::default()).unwrap_err(),
            FrameError::BadFlag { flag: 2 }
        );
    }

    #[test]
    fn truncated_frames_wait_for_more() {
        let wire = encode(b"complete me", true).unwrap();
        for cut in 0..wire.len() {
            assert_eq!(decode_all(&wire[..cut], Limits::default()), Ok(vec![]));
        }
    }

    #[test]
    fn broken_zlib_is_refused() {
        let wire = encode(&[7u8; 5000], true).unwrap();
        let body = &wire[HEADER_LEN..wire.len() - 1];
        for cut in [0, 1, 2, body.len() / 2, body.len() - 1] {
            assert!(matches!(
                inflate(&body[..cut], 1 << 20),
                Err(FrameError::BadCompression { .. })
            ));
        }
        let mut trailing = body.to_vec();
        trailing.push(0);
        assert!(matches!(
            inflate(&trailing, 1 << 20),
            Err(FrameError::BadCompression { .. })
        ));
        assert!(matches!(
            inflate(b"not zlib at all", 1 << 20),
            Err(FrameError::BadCompression { .. })
        ));
    }
}
