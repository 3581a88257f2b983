//! snappy: raw snappy blocks, and the "xerial" framing of the `snappy-java` library that the
//! Java client writes.
//!
//! The xerial stream is a 16-byte header (the magic `0x82 "SNAPPY" 0x00`, then the version and
//! the compatible version as big-endian 32-bit integers, both 1) followed by blocks, each a
//! big-endian 32-bit length and a raw snappy block of that length. The Java client compresses
//! 32 KiB of input per block. Input that does not start with the magic is read as one raw
//! snappy block (librdkafka may write that).
//!
//! Every raw block announces its decompressed length up front, so the framing is walked first,
//! the total checked against the limit and each block's length against what the block can
//! expand to, and the output allocated once at its exact size.

use bytes::BytesMut;
use snap::raw::{decompress_len, max_compress_len, Decoder, Encoder};

use super::failed;
use crate::error::{DecodeError, EncodeError};

const CODEC: &str = "snappy";

/// The first 8 bytes of a xerial snappy stream.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The header the Java client writes: magic, version 1, compatible version 1.
const XERIAL_HEADER: [u8; 16] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
/// Uncompressed bytes per xerial block, as `snappy-java` writes them.
const XERIAL_BLOCK: usize = 32 << 10;

/// The most a raw block expands: a copy with a 2-byte offset turns 3 bytes into up to 64, and
/// nothing yields more per byte, so a block of `n` bytes holds less than `22 * n`.
const MAX_EXPANSION: usize = 22;

/// Checks the length `block` announces against what the block can expand to: a few bytes
/// claiming a megabyte would otherwise have the megabyte zero-filled before decoding fails.
fn check_announced(block: &[u8], len: usize) -> Result<(), DecodeError> {
    if len > block.len().saturating_mul(MAX_EXPANSION) {
        return Err(failed(
            CODEC,
            format_args!("a block of {} bytes cannot expand to the {len} it announces", block.len()),
        ));
    }
    Ok(())
}

/// Appends `input` in xerial framing to `out`, compressing each 32 KiB block straight into
/// `out`.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut encoder = Encoder::new();
    out.reserve(XERIAL_HEADER.len() + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_HEADER);
    for block in input.chunks(XERIAL_BLOCK) {
        let start = out.len();
        out.resize(start + 4 + max_compress_len(block.len()), 0);
        let n = encoder
            .compress(block, &mut out[start + 4..])
            .map_err(|e| EncodeError::Compression { codec: CODEC, reason: e.to_string() })?;
        // A block is at most 32 KiB of input, so its compressed length fits in 32 bits.
        out[start..start + 4].copy_from_slice(&(n as u32).to_be_bytes());
        out.truncate(start + 4 + n);
    }
    Ok(())
}

/// Decompresses xerial-framed or raw snappy, producing at most `limit` bytes.
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = Decoder::new();
    let Some(body) = input.strip_prefix(&XERIAL_MAGIC[..]) else {
        let len = decompress_len(input).map_err(|e| failed(CODEC, e))?;
        if len > limit {
            return Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit });
        }
        check_announced(input, len)?;
        let mut out = vec![0; len];
        let n = decoder.decompress(input, &mut out).map_err(|e| failed(CODEC, e))?;
        out.truncate(n);
        return Ok(out);
    };
    // Skip the version and compatible-version words; their values do not change the format.
    let blocks = body.get(8..).ok_or_else(|| failed(CODEC, "truncated xerial header"))?;
    let mut total = 0usize;
    for block in XerialBlocks(blocks) {
        let block = block?;
        let len = decompress_len(block).map_err(|e| failed(CODEC, e))?;
        total = total.saturating_add(len);
        if total > limit {
            return Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit });
        }
        check_announced(block, len)?;
    }
    let mut out = vec![0; total];
    let mut at = 0;
    for block in XerialBlocks(blocks) {
        // The walk above validated the framing and sized `out` to the announced lengths.
        at += decoder.decompress(block?, &mut out[at..]).map_err(|e| failed(CODEC, e))?;
    }
    out.truncate(at);
    Ok(out)
}

/// The raw blocks of a xerial stream after its header.
struct XerialBlocks<'a>(&'a [u8]);

impl<'a> Iterator for XerialBlocks<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let Some((len, rest)) = self.0.split_first_chunk::<4>() else {
            self.0 = &[];
            return Some(Err(failed(CODEC, "truncated xerial block length")));
        };
        let len = i32::from_be_bytes(*len);
        match usize::try_from(len).ok().filter(|n| *n <= rest.len()) {
            Some(n) => {
                let (block, rest) = rest.split_at(n);
                self.0 = rest;
                Some(Ok(block))
            }
            None => {
                self.0 = &[];
                Some(Err(failed(CODEC, format_args!("invalid xerial block length {len}"))))
            }
        }
    }
}
