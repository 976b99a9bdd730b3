//! zlib streams as rpyc's `zlib.compress(data, 1)` makes them, from one
//! core or, for a large payload, from several at once: deflate at level 1
//! runs at 90-150 MB/s on this kind of core, so a 100 MB bulk transfer
//! spends most of a second here. A large payload is cut into pieces, each
//! deflated as a job of its own (on a thread of its own where the
//! [`crate::host::Host`] runs jobs at once) into a raw deflate stream that ends on a
//! byte boundary (a sync flush, the last piece a final block), and the
//! pieces are joined behind the zlib header with the Adler-32 of the whole
//! (combined from the pieces'). That is one valid zlib stream, as pigz
//! makes; any inflater reads it. Each piece starts with no history, which
//! costs nothing measurable at pieces of megabytes.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::host::{Host, Job};

/// Pieces are at least this long: shorter payloads are deflated whole,
/// where a thread's start would cost more than it saves.
const MIN_PIECE: usize = 4 << 20;

/// zlib's header for deflate with a 32 KiB window at the fastest levels,
/// what `zlib.compress(data, 1)` and flate2 at level 1 write.
const ZLIB_HEADER_FAST: [u8; 2] = [0x78, 0x01];

/// Appends the zlib stream of `payload` at `level` to `out`.
pub fn zlib_into(payload: &[u8], level: u32, out: &mut Vec<u8>) {
    zlib_into_on(crate::host::host(), payload, level, out);
}

fn zlib_into_on(host: &dyn Host, payload: &[u8], level: u32, out: &mut Vec<u8>) {
    let pieces = (payload.len() / MIN_PIECE).clamp(1, host.parallelism().max(1));
    if pieces <= 1 || level > 1 {
        deflate_with(payload, level, true, FlushCompress::Finish, out);
        return;
    }
    let size = payload.len().div_ceil(pieces);
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let last = chunks.len() - 1;
    let mut results: Vec<Option<(Vec<u8>, u32)>> = vec![None; chunks.len()];
    let jobs: Vec<Job<'_>> = chunks
        .iter()
        .zip(results.iter_mut())
        .enumerate()
        .map(|(at, (chunk, result))| {
            Box::new(move || *result = Some(piece(chunk, level, at == last))) as Job<'_>
        })
        .collect();
    host.run_all(jobs);
    // a piece the host could not run (no thread to be had) is done here
    let deflated: Vec<(Vec<u8>, u32)> = results
        .into_iter()
        .zip(&chunks)
        .enumerate()
        .map(|(at, (result, chunk))| result.unwrap_or_else(|| piece(chunk, level, at == last)))
        .collect();
    out.reserve(2 + deflated.iter().map(|(bytes, _)| bytes.len()).sum::<usize>() + 4);
    out.extend_from_slice(&ZLIB_HEADER_FAST);
    let mut adler = 1;
    for ((bytes, piece_adler), chunk) in deflated.iter().zip(&chunks) {
        out.extend_from_slice(bytes);
        adler = adler32_combine(adler, *piece_adler, chunk.len());
    }
    out.extend_from_slice(&adler.to_be_bytes());
}

/// One piece as raw deflate, ending on a byte boundary (or, for the last,
/// with the final block), and its Adler-32.
fn piece(chunk: &[u8], level: u32, last: bool) -> (Vec<u8>, u32) {
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::new();
    deflate_with(chunk, level, false, flush, &mut out);
    (out, simd_adler32::adler32(&chunk))
}

/// Deflates `input` into `out` with `flush` at the end: a zlib stream with
/// `zlib_header`, raw deflate without.
fn deflate_with(
    input: &[u8],
    level: u32,
    zlib_header: bool,
    flush: FlushCompress,
    out: &mut Vec<u8>,
) {
    let mut deflater = Compress::new(Compression::new(level), zlib_header);
    // zlib's worst case is a few bytes per 16 KiB block over the input size
    out.reserve(input.len() + input.len() / 1000 + 64);
    loop {
        let consumed = deflater.total_in() as usize;
        let status = deflater.compress_vec(&input[consumed..], out, flush);
        let all_in = deflater.total_in() as usize == input.len();
        match status {
            Ok(Status::StreamEnd) => return,
            // a sync flush is complete once all the input is in and the
            // output was not filled up (zlib's own rule for Z_SYNC_FLUSH)
            Ok(Status::Ok | Status::BufError)
                if flush == FlushCompress::Sync && all_in && out.len() < out.capacity() =>
            {
                return
            }
            // Out of room, or no progress possible without it: grow and go
            // on. Compressing from memory into memory has no failure mode
            // but running out of space, which this handles too.
            _ => out.reserve(out.capacity().max(64 * 1024)),
        }
    }
}

/// The Adler-32 of two strings joined, from theirs and the second's
/// length (zlib's `adler32_combine`).
fn adler32_combine(first: u32, second: u32, second_len: usize) -> u32 {
    const BASE: u64 = 65_521;
    let rem = (second_len as u64) % BASE;
    let first_low = u64::from(first & 0xffff);
    let first_high = u64::from(first >> 16);
    let second_low = u64::from(second & 0xffff);
    let second_high = u64::from(second >> 16);
    let low = (first_low + second_low + BASE - 1) % BASE;
    let high = (rem * first_low % BASE + first_high + second_high + BASE - rem) % BASE;
    ((high << 16) | low) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut row = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!("{row},item-{},{}.{:02}\n", row % 97, row * 7, row % 100).as_bytes(),
            );
            row += 1;
        }
        out.truncate(len);
        out
    }

    fn inflated(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("a valid zlib stream");
        out
    }

    /// Runs jobs out of order, and drops the first one unrun, as a host
    /// out of threads may.
    struct Unreliable;

    impl Host for Unreliable {
        fn parallelism(&self) -> usize {
            4
        }

        fn run_all(&self, mut jobs: Vec<Job<'_>>) {
            drop(jobs.remove(0));
            while let Some(job) = jobs.pop() {
                job();
            }
        }
    }

    #[test]
    fn a_large_payload_deflated_in_pieces_is_one_zlib_stream() {
        let payload = text(3 * MIN_PIECE + 12_345);
        let mut stream = Vec::new();
        zlib_into_on(&Unreliable, &payload, 1, &mut stream);
        assert_eq!(&stream[..2], &ZLIB_HEADER_FAST);
        assert!(stream.len() < payload.len() / 2, "{} bytes", stream.len());
        assert_eq!(inflated(&stream), payload);
        // and our own inflater, with its checks, agrees
        let ours = crate::frame::inflate(&stream, payload.len()).expect("inflates");
        assert_eq!(ours, payload);
    }

    #[test]
    fn pieces_are_made_whatever_the_cores_and_checked_by_adler() {
        // the pieces' path, whatever this machine's core count
        let payload = text(2 * MIN_PIECE + 1);
        let chunks: Vec<&[u8]> = payload.chunks(MIN_PIECE).collect();
        let mut stream = ZLIB_HEADER_FAST.to_vec();
        let mut adler = 1;
        for (index, chunk) in chunks.iter().enumerate() {
            let (bytes, piece_adler) = piece(chunk, 1, index == chunks.len() - 1);
            stream.extend_from_slice(&bytes);
            adler = adler32_combine(adler, piece_adler, chunk.len());
        }
        assert_eq!(adler, simd_adler32::adler32(&payload.as_slice()));
        stream.extend_from_slice(&adler.to_be_bytes());
        assert_eq!(inflated(&stream), payload);
        // a wrong checksum is caught: the pieces are not just concatenated
        let last = stream.len() - 1;
        stream[last] ^= 1;
        let mut out = Vec::new();
        assert!(ZlibDecoder::new(stream.as_slice())
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn small_payloads_are_what_zlib_compress_makes() {
        let payload = text(100_000);
        let mut ours = Vec::new();
        zlib_into(&payload, 1, &mut ours);
        let mut whole = Compress::new(Compression::new(1), true);
        let mut reference = Vec::with_capacity(payload.len() + 64);
        let status = whole
            .compress_vec(&payload, &mut reference, FlushCompress::Finish)
            .expect("deflates");
        assert_eq!(status, Status::StreamEnd);
        assert_eq!(ours, reference);
    }

    #[test]
    fn adler32_combine_matches_the_whole() {
        let data = text(70_000);
        for split in [0, 1, 65_520, 65_521, 65_522, 69_999, 70_000] {
            let (a, b) = data.split_at(split);
            let combined = adler32_combine(
                simd_adler32::adler32(&a),
                simd_adler32::adler32(&b),
                b.len(),
            );
            assert_eq!(
                combined,
                simd_adler32::adler32(&data.as_slice()),
                "split {split}"
            );
        }
    }
}
