//! zstd: standard zstd frames (RFC 8878), through the `zstd` crate (C libzstd) when the `zstd`
//! feature is on, else through the pure-Rust `ruzstd`.
//!
//! Before decoding, the frame header is read here: a frame whose window is larger than the
//! configured maximum size is refused (a decoder allocates its window up front, so a six-byte
//! header could otherwise claim 100 MiB or more), and the content size, when the frame gives
//! one, sizes the output buffer. Several frames in a row are read as their concatenation, and
//! skippable frames are skipped.
//!
//! Writing uses the level asked for with the C library, and records the content size in the
//! frame so readers can allocate once. `ruzstd` offers a single compression level (about
//! zstd's level 1); it is used whatever level is asked for.

use bytes::{BufMut, BytesMut};

use super::{failed, read_limited};
use crate::error::{DecodeError, EncodeError};

const CODEC: &str = "zstd";

const MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames use the magic numbers 0x184D2A50 to 0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// What a frame header says about the frame's memory needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    window_size: u64,
    content_size: Option<u64>,
}

/// Reads the header of the zstd frame at the start of `input` (after checking its magic).
fn frame_header(input: &[u8]) -> Result<FrameHeader, DecodeError> {
    let truncated = || failed(CODEC, "truncated frame header");
    let magic = input.get(..4).ok_or_else(truncated)?;
    if magic != MAGIC.to_le_bytes() {
        return Err(failed(CODEC, "invalid frame magic"));
    }
    let fhd = *input.get(4).ok_or_else(truncated)?;
    if fhd & 0b0000_1000 != 0 {
        return Err(failed(CODEC, "reserved frame header bit is set"));
    }
    let single_segment = fhd & 0b0010_0000 != 0;
    let mut at = 5;
    let mut window_size = None;
    if !single_segment {
        let wd = *input.get(at).ok_or_else(truncated)?;
        at += 1;
        let base = 1u64 << (10 + (wd >> 3));
        window_size = Some(base + (base / 8) * u64::from(wd & 7));
    }
    at += [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let content_size = if fcs_len == 0 {
        None
    } else {
        let bytes = input.get(at..at + fcs_len).ok_or_else(truncated)?;
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(bytes);
        let value = u64::from_le_bytes(le);
        Some(if fcs_len == 2 { value + 256 } else { value })
    };
    let window_size = match (window_size, content_size) {
        (Some(w), _) => w,
        (None, Some(c)) => c,
        (None, None) => return Err(truncated()),
    };
    Ok(FrameHeader { window_size, content_size })
}

/// Checks the frame at the start of `input` against the limits; returns its content size.
fn check_frame(input: &[u8], max_window: usize) -> Result<Option<u64>, DecodeError> {
    let header = frame_header(input)?;
    if header.window_size > max_window as u64 {
        return Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit: max_window });
    }
    Ok(header.content_size)
}

/// The little-endian `u32` at the start of `input`.
fn magic(input: &[u8]) -> Option<u32> {
    input.first_chunk::<4>().map(|m| u32::from_le_bytes(*m))
}

/// Skips skippable frames at the start of `input`.
fn skip_skippable(mut input: &[u8]) -> Result<&[u8], DecodeError> {
    while magic(input).is_some_and(|m| m & SKIPPABLE_MASK == SKIPPABLE_MAGIC) {
        let len = input.get(4..8).ok_or_else(|| failed(CODEC, "truncated skippable frame"))?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        input = input
            .get(8..)
            .and_then(|r| r.get(len..))
            .ok_or_else(|| failed(CODEC, "truncated skippable frame"))?;
    }
    Ok(input)
}

/// The room to start with: the content size when known, else a guess, never above `limit`.
fn initial_room(content_size: Option<u64>, input_len: usize, limit: usize) -> usize {
    let guess =
        content_size.map_or(input_len.saturating_mul(4), |c| usize::try_from(c).unwrap_or(usize::MAX));
    guess.min(limit)
}

#[cfg(feature = "zstd")]
fn compress_failed(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::Compression { codec: CODEC, reason: e.to_string() }
}

/// Appends `input` as one zstd frame at `level` to `out`.
#[cfg(feature = "zstd")]
pub(super) fn compress(input: &[u8], level: i32, out: &mut BytesMut) -> Result<(), EncodeError> {
    use std::io::Write;
    out.reserve(input.len() / 2 + 64);
    let mut encoder = ::zstd::stream::write::Encoder::new(out.writer(), level).map_err(compress_failed)?;
    encoder.include_contentsize(true).map_err(compress_failed)?;
    encoder.set_pledged_src_size(Some(input.len() as u64)).map_err(compress_failed)?;
    encoder.write_all(input).map_err(compress_failed)?;
    encoder.finish().map_err(compress_failed)?;
    Ok(())
}

/// Appends `input` as one zstd frame to `out` with `ruzstd`'s only compression level.
#[cfg(not(feature = "zstd"))]
pub(super) fn compress(input: &[u8], level: i32, out: &mut BytesMut) -> Result<(), EncodeError> {
    use ruzstd::encoding::{CompressionLevel, FrameCompressor};
    let _ = level;
    out.reserve(input.len() / 2 + 64);
    let mut compressor = FrameCompressor::new(CompressionLevel::Fastest);
    compressor.set_source(input);
    compressor.set_drain(out.writer());
    compressor.compress();
    Ok(())
}

/// Decompresses a sequence of zstd frames, producing at most `limit` bytes and refusing
/// windows larger than `max_window`.
#[cfg(feature = "zstd")]
pub(super) fn decompress(input: &[u8], limit: usize, max_window: usize) -> Result<Vec<u8>, DecodeError> {
    let first = skip_skippable(input)?;
    let content_size = check_frame(first, max_window)?;
    let mut decoder = ::zstd::stream::read::Decoder::with_buffer(input).map_err(|e| failed(CODEC, e))?;
    // Later frames are held to the same window bound by the library.
    let window_log = (usize::BITS - 1 - max_window.max(1).leading_zeros()).clamp(10, 31);
    decoder.window_log_max(window_log).map_err(|e| failed(CODEC, e))?;
    let mut out = Vec::new();
    read_limited(decoder, CODEC, limit, initial_room(content_size, input.len(), limit), &mut out)?;
    Ok(out)
}

/// Decompresses a sequence of zstd frames, producing at most `limit` bytes and refusing
/// windows larger than `max_window`.
#[cfg(not(feature = "zstd"))]
pub(super) fn decompress(input: &[u8], limit: usize, max_window: usize) -> Result<Vec<u8>, DecodeError> {
    use ruzstd::decoding::StreamingDecoder;
    let mut rest = skip_skippable(input)?;
    if rest.is_empty() {
        return Err(failed(CODEC, "no frame"));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let content_size = check_frame(rest, max_window)?;
        let room = initial_room(content_size, rest.len(), limit.saturating_sub(out.len()));
        let mut decoder = StreamingDecoder::new(&mut rest).map_err(|e| failed(CODEC, e))?;
        read_limited(&mut decoder, CODEC, limit, room, &mut out)?;
        let frame = decoder.into_frame_decoder();
        if let (Some(stored), Some(computed)) =
            (frame.get_checksum_from_data(), frame.get_calculated_checksum())
        {
            if stored != computed {
                return Err(DecodeError::ChecksumMismatch { what: "zstd content", stored, computed });
            }
        }
        rest = skip_skippable(rest)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_fields() {
        // Single segment, 1-byte content size 5.
        let h = frame_header(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 5]).unwrap();
        assert_eq!(h, FrameHeader { window_size: 5, content_size: Some(5) });
        // Window descriptor 0x58: exponent 11, mantissa 0 -> 2^21; 2-byte content size.
        let h = frame_header(&[0x28, 0xb5, 0x2f, 0xfd, 0x40, 0x58, 0x00, 0x01]).unwrap();
        assert_eq!(h, FrameHeader { window_size: 1 << 21, content_size: Some(256 + 256) });
    }

    #[test]
    fn huge_windows_are_refused_before_decoding() {
        // Window descriptor 0xf8: 2^41 bytes.
        let input = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0];
        assert_eq!(
            decompress(&input, 1 << 20, 64 << 20),
            Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit: 64 << 20 })
        );
    }
}
