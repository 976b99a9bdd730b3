//! Bytes as they arrive to whole payloads, within the limits.

use super::*;

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
    pub(super) buffer: Vec<u8>,
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
pub(super) const KEEP_BUFFER: usize = 64 * 1024;

/// The body length a buffered header announces, once the header is whole.
fn frame_len(pending: &[u8]) -> Option<usize> {
    match pending {
        [a, b, c, d, _flag, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d]) as usize),
        _ => None,
    }
}
