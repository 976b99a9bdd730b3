//! Payloads to frames: the header, zlib where it pays, and bulk byte
//! strings written from where they are.

use super::*;

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
