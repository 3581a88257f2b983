//! gzip (RFC 1952) through `flate2` on its pure-Rust backend (miniz_oxide).
//!
//! Kafka's Java client writes one gzip member per batch; a sequence of members is read as their
//! concatenation, as `GZIPInputStream` does.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{failed, read_limited};
use crate::error::{DecodeError, EncodeError};

const CODEC: &str = "gzip";
/// Deflate expands at most about 1032-fold (a 258-byte match per 2 bits).
const MAX_DEFLATE_RATIO: usize = 1032;

/// Appends `input` as one gzip member at `level` (1 to 9) to `out`.
pub(super) fn compress(input: &[u8], level: i32, out: &mut BytesMut) -> Result<(), EncodeError> {
    let level = flate2::Compression::new(level.clamp(0, 9).unsigned_abs());
    // The deflate output of ordinary record data is rarely above half the input.
    out.reserve(input.len() / 2 + 64);
    let mut encoder = GzEncoder::new(out.writer(), level);
    let fail = |e: std::io::Error| EncodeError::Compression { codec: CODEC, reason: e.to_string() };
    encoder.write_all(input).map_err(fail)?;
    encoder.finish().map_err(fail)?;
    Ok(())
}

/// Decompresses every gzip member of `input`, producing at most `limit` bytes.
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if input.is_empty() {
        return Err(failed(CODEC, "empty input"));
    }
    // The last four bytes of a member are its size modulo 2^32: a hint, capped by what deflate
    // can expand this input to at all, and by the limit.
    let hint = match input.len().checked_sub(4).and_then(|at| input.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    let hint = hint.min(input.len().saturating_mul(MAX_DEFLATE_RATIO)).min(limit);
    let mut out = Vec::new();
    read_limited(MultiGzDecoder::new(input), CODEC, limit, hint, &mut out)?;
    Ok(out)
}
