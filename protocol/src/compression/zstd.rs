//! zstd: standard zstd frames (RFC 8878), through the `zstd` crate (C libzstd) when the `zstd`
//! feature is on, else through the pure-Rust `ruzstd`.
//!
//! Before decoding, the frame header is read here: a frame whose window is larger than the
//! configured maximum size is refused (a decoder allocates its window up front, so a six-byte
//! header could otherwise claim 100 MiB or more). The output buffer starts at what the input
//! can expand to: the block headers are walked first, and a raw or RLE block yields exactly
//! its size, a compressed block at most 128 KiB. The content size a header claims is only
//! believed up to that bound, so a few bytes claiming 64 MiB no longer zero-fill 64 MiB before
//! decoding fails; the buffer grows as output actually arrives. Several frames in a row are
//! read as their concatenation, and skippable frames are skipped.
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
/// The most one block decompresses to (RFC 8878, 3.1.1.2.3: the smaller of the window and
/// 128 KiB).
const BLOCK_MAX: usize = 128 << 10;

/// What a frame header says about the frame's memory needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    window_size: u64,
    content_size: Option<u64>,
    /// The header's length, magic included: the first block starts there.
    len: usize,
    /// Whether a 4-byte content checksum follows the last block.
    checksum: bool,
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
    let checksum = fhd & 0b0000_0100 != 0;
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
    Ok(FrameHeader { window_size, content_size, len: at + fcs_len, checksum })
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

/// The most the frames in `input` can decompress to, from their block headers: a raw or RLE
/// block yields its size, a compressed block at most [`BLOCK_MAX`]. The walk stops at the
/// first malformed frame or block (decoding reports it); what it summed up to there is the
/// bound. No allocation depends on the input's claims.
fn expansion_bound(mut input: &[u8]) -> usize {
    let mut bound = 0usize;
    loop {
        let Ok(rest) = skip_skippable(input) else { return bound };
        let Ok(header) = frame_header(rest) else { return bound };
        let Some(mut blocks) = rest.get(header.len..) else { return bound };
        loop {
            let Some((&[a, b, c], after)) = blocks.split_first_chunk::<3>() else { return bound };
            let raw = u32::from_le_bytes([a, b, c, 0]);
            let (last, kind, size) = (raw & 1 != 0, (raw >> 1) & 3, (raw >> 3) as usize);
            let (stored, output) = match kind {
                0 => (size, size),
                1 => (1, size),
                2 => (size, BLOCK_MAX),
                _ => return bound,
            };
            bound = bound.saturating_add(output.min(BLOCK_MAX));
            let Some(after) = after.get(stored..) else { return bound };
            blocks = after;
            if last {
                break;
            }
        }
        let trailer = if header.checksum { 4 } else { 0 };
        match blocks.get(trailer..) {
            Some(next) if !next.is_empty() => input = next,
            _ => return bound,
        }
    }
}

/// The room to start with for a frame claiming `content_size` at the start of `input`: what
/// the input can expand to, lowered to the content size when the frame gives one and to a
/// guess of four times the input when it does not (the buffer grows past it as output
/// arrives), never above `limit`.
fn initial_room(content_size: Option<u64>, input: &[u8], limit: usize) -> usize {
    let claimed =
        content_size.map_or(input.len().saturating_mul(4), |c| usize::try_from(c).unwrap_or(usize::MAX));
    claimed.min(expansion_bound(input)).min(limit)
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
    read_limited(decoder, CODEC, limit, initial_room(content_size, first, limit), &mut out)?;
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
        let room = initial_room(content_size, rest, limit.saturating_sub(out.len()));
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
        assert_eq!(h, FrameHeader { window_size: 5, content_size: Some(5), len: 6, checksum: false });
        // Window descriptor 0x58: exponent 11, mantissa 0 -> 2^21; 2-byte content size.
        // Content checksum flag set.
        let h = frame_header(&[0x28, 0xb5, 0x2f, 0xfd, 0x44, 0x58, 0x00, 0x01]).unwrap();
        assert_eq!(
            h,
            FrameHeader { window_size: 1 << 21, content_size: Some(256 + 256), len: 8, checksum: true }
        );
    }

    /// A frame header (1 KiB window, 8-byte content size `claimed`), then `blocks`.
    fn frame(claimed: u64, blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00];
        out.extend_from_slice(&claimed.to_le_bytes());
        for block in blocks {
            out.extend_from_slice(block);
        }
        out
    }

    /// A block: header (last flag, type, size) and `body`.
    fn block(last: bool, kind: u32, size: u32, body: &[u8]) -> Vec<u8> {
        let raw = u32::from(last) | kind << 1 | size << 3;
        let mut out = raw.to_le_bytes()[..3].to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn the_bound_follows_the_blocks() {
        let raw = block(false, 0, 100, &[7; 100]);
        let rle = block(false, 1, 1000, &[7]);
        let compressed = block(true, 2, 5, &[0; 5]);
        let input = frame(64 << 20, &[&raw, &rle, &compressed]);
        assert_eq!(expansion_bound(&input), 100 + 1000 + BLOCK_MAX);
        // A claimed 64 MiB is believed only as far as the blocks can go.
        assert_eq!(initial_room(Some(64 << 20), &input, 64 << 20), 100 + 1000 + BLOCK_MAX);
        assert_eq!(initial_room(Some(500), &input, 64 << 20), 500);
        // A block running past the input ends the walk where it stands.
        let truncated = frame(64 << 20, &[&raw, &block(true, 0, 100, &[7; 10])]);
        assert_eq!(expansion_bound(&truncated), 200);
        // Frames after the first one count too, skippable frames in between or not.
        let mut two = frame(1, &[&block(true, 1, 300, &[1])]);
        two.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        two.extend_from_slice(&frame(1, &[&block(true, 0, 3, b"abc")]));
        assert_eq!(expansion_bound(&two), 303);
    }

    #[test]
    fn the_bound_covers_real_frames() {
        let text: Vec<u8> =
            (0..300_000u32).flat_map(|i| format!("record {} ", i % 1000).into_bytes()).collect();
        let mut out = BytesMut::new();
        compress(&text, 3, &mut out).unwrap();
        assert!(expansion_bound(&out) >= text.len());
        let back = decompress(&out, 64 << 20, 64 << 20).unwrap();
        assert_eq!(back, text);
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
