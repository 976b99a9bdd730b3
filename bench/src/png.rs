//! A minimal PNG encoder for the chart: 8-bit RGB, no filtering, one zlib
//! stream. plotters draws into a pixel buffer; writing that buffer as a PNG
//! takes this much, where plotters' own encoder would bring in the `image`
//! crate and its codecs.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Encodes `pixels` (rows of `width` RGB triples, top to bottom) as a PNG.
pub fn encode_rgb(width: u32, height: u32, pixels: &[u8]) -> std::io::Result<Vec<u8>> {
    let row = width as usize * 3;
    if pixels.len() != row * height as usize || width == 0 || height == 0 {
        return Err(std::io::Error::other(format!(
            "{} bytes are not a {width}x{height} RGB image",
            pixels.len()
        )));
    }
    let mut png = SIGNATURE.to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    for line in pixels.chunks_exact(row) {
        // filter type 0 (none) before each row
        zlib.write_all(&[0])?;
        zlib.write_all(line)?;
    }
    chunk(&mut png, b"IDAT", &zlib.finish()?);
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // chunks are far below 4 GiB: the length always fits
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    /// (kind, data) of each chunk, checking lengths and CRCs on the way.
    fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert_eq!(png[..8], SIGNATURE);
        let mut rest = &png[8..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = rest[4..8].try_into().unwrap();
            let data = rest[8..8 + len].to_vec();
            let crc = u32::from_be_bytes(rest[8 + len..12 + len].try_into().unwrap());
            let mut check = Crc::new();
            check.update(&kind);
            check.update(&data);
            assert_eq!(check.sum(), crc);
            out.push((kind, data));
            rest = &rest[12 + len..];
        }
        out
    }

    #[test]
    fn encodes_header_rows_and_end() {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8).collect();
        let png = encode_rgb(3, 2, &pixels).expect("encodes");
        let chunks = chunks(&png);
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"IHDR", b"IDAT", b"IEND"]);
        assert_eq!(chunks[0].1, [0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
        let mut raw = Vec::new();
        ZlibDecoder::new(&chunks[1].1[..])
            .read_to_end(&mut raw)
            .expect("inflates");
        let mut expected = vec![0];
        expected.extend_from_slice(&pixels[..9]);
        expected.push(0);
        expected.extend_from_slice(&pixels[9..]);
        assert_eq!(raw, expected);
    }

    #[test]
    fn refuses_a_buffer_of_the_wrong_size() {
        assert!(encode_rgb(2, 2, &[0; 11]).is_err());
        assert!(encode_rgb(0, 0, &[]).is_err());
    }
}
