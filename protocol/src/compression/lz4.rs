//! lz4: the LZ4 frame format (<https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md>),
//! framed here over the block codec of `lz4_flex`.
//!
//! Writing follows the Java client, whose reader is the strictest peer: one frame, format
//! version 1, independent blocks of at most 64 KiB, no checksums and no content size; a block
//! that does not shrink is stored uncompressed. Each block is compressed straight into the
//! output buffer.
//!
//! Reading accepts any valid frame sequence: linked or independent blocks, block sizes up to
//! 4 MiB, block and content checksums (verified), a content size (verified), skippable frames.
//! Dictionaries are refused (Kafka has no way to name one). Blocks decompress straight into the
//! one output buffer; linked blocks use the output before them as their dictionary.
//!
//! The descriptor checksum ("HC") is the second byte of the xxHash32 of the descriptor. Kafka
//! 0.8 to 0.9 hashed the magic number too, so the reader can skip that check for magic 0 data.

use bytes::BytesMut;
use lz4_flex::block::{
    compress_into, decompress_into, decompress_into_with_dict, get_maximum_output_size, DecompressError,
};
use twox_hash::XxHash32;

use super::failed;
use crate::error::{DecodeError, EncodeError};

const CODEC: &str = "lz4";

const MAGIC: u32 = 0x184D_2204;
/// Skippable frames use the magic numbers 0x184D2A50 to 0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// FLG bits.
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_1: u8 = 0b0100_0000;
const FLG_BLOCK_INDEPENDENCE: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_RESERVED: u8 = 0b0000_0010;
const FLG_DICT_ID: u8 = 0b0000_0001;

/// The block size the writer uses (BD code 4: 64 KiB, the Java client's default).
const BLOCK_SIZE: usize = 64 << 10;
const BD_64K: u8 = 4 << 4;
/// Bit 31 of a block size marks a block stored uncompressed.
const UNCOMPRESSED_BIT: u32 = 1 << 31;
/// Linked blocks may refer back at most 64 KiB.
const WINDOW: usize = 64 << 10;
/// An LZ4 block expands at most 255-fold: every byte that extends a match length adds at most
/// 255 bytes of output, and no other part of a sequence yields more output than it takes input.
const MAX_EXPANSION: usize = 255;

/// The most a compressed block of `size` bytes can decompress to in a frame whose blocks hold
/// at most `block_max` bytes.
fn block_bound(size: usize, block_max: usize) -> usize {
    block_max.min(size.saturating_mul(MAX_EXPANSION).saturating_add(16))
}

/// The descriptor checksum byte over `descriptor` (FLG up to the byte before HC).
fn header_checksum(descriptor: &[u8]) -> u8 {
    (XxHash32::oneshot(0, descriptor) >> 8) as u8
}

/// Appends `input` as one LZ4 frame of independent 64 KiB blocks to `out`.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
    let flg = FLG_VERSION_1 | FLG_BLOCK_INDEPENDENCE;
    out.reserve(7 + get_maximum_output_size(input.len().min(BLOCK_SIZE)) + 8);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[flg, BD_64K, header_checksum(&[flg, BD_64K])]);
    for block in input.chunks(BLOCK_SIZE) {
        let start = out.len();
        out.resize(start + 4 + get_maximum_output_size(block.len()), 0);
        let n = compress_into(block, &mut out[start + 4..])
            .map_err(|e| EncodeError::Compression { codec: CODEC, reason: e.to_string() })?;
        if n < block.len() {
            // Both lengths are at most 64 KiB plus the block codec's small overhead.
            out[start..start + 4].copy_from_slice(&(n as u32).to_le_bytes());
            out.truncate(start + 4 + n);
        } else {
            out.truncate(start);
            out.extend_from_slice(&(block.len() as u32 | UNCOMPRESSED_BIT).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

/// Decompresses a sequence of LZ4 frames, producing at most `limit` bytes. `check_header`
/// verifies each frame descriptor checksum.
pub(super) fn decompress(input: &[u8], limit: usize, check_header: bool) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = input;
    if rest.is_empty() {
        return Err(failed(CODEC, "empty input"));
    }
    while !rest.is_empty() {
        let magic = read_u32(&mut rest).ok_or_else(|| failed(CODEC, "truncated frame magic"))?;
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let len = read_u32(&mut rest).ok_or_else(|| failed(CODEC, "truncated skippable frame"))?;
            rest = rest.get(len as usize..).ok_or_else(|| failed(CODEC, "truncated skippable frame"))?;
            continue;
        }
        if magic != MAGIC {
            return Err(failed(CODEC, format_args!("invalid frame magic {magic:#010x}")));
        }
        rest = decompress_frame(rest, &mut out, limit, check_header)?;
    }
    Ok(out)
}

/// A frame's descriptor.
struct Descriptor {
    flg: u8,
    block_max: usize,
    content_size: Option<u64>,
}

/// Reads the frame descriptor after the magic number.
fn read_descriptor(input: &mut &[u8], check_header: bool) -> Result<Descriptor, DecodeError> {
    let frame = *input;
    let (&[flg, bd], _) =
        frame.split_first_chunk::<2>().ok_or_else(|| failed(CODEC, "truncated frame header"))?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_1 {
        return Err(failed(CODEC, format_args!("unsupported frame version in FLG {flg:#04x}")));
    }
    if flg & FLG_RESERVED != 0 || bd & 0b1000_1111 != 0 {
        return Err(failed(CODEC, "reserved frame header bits are set"));
    }
    if flg & FLG_DICT_ID != 0 {
        return Err(failed(CODEC, "frames that need a dictionary are not supported"));
    }
    let block_max = match bd >> 4 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        code => return Err(failed(CODEC, format_args!("invalid block maximum size code {code}"))),
    };
    let descriptor_len = if flg & FLG_CONTENT_SIZE != 0 { 10 } else { 2 };
    let descriptor = frame.get(..descriptor_len).ok_or_else(|| failed(CODEC, "truncated frame header"))?;
    let hc = *frame.get(descriptor_len).ok_or_else(|| failed(CODEC, "truncated frame header"))?;
    if check_header && hc != header_checksum(descriptor) {
        return Err(DecodeError::ChecksumMismatch {
            what: "lz4 frame descriptor",
            stored: u32::from(hc),
            computed: u32::from(header_checksum(descriptor)),
        });
    }
    let content_size = descriptor.get(2..10).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    *input = &frame[descriptor_len + 1..];
    Ok(Descriptor { flg, block_max, content_size })
}

/// Decompresses one frame (after its magic number) onto `out`; returns the input after it.
fn decompress_frame<'a>(
    mut input: &'a [u8],
    out: &mut Vec<u8>,
    limit: usize,
    check_header: bool,
) -> Result<&'a [u8], DecodeError> {
    let d = read_descriptor(&mut input, check_header)?;
    let block_checksum = d.flg & FLG_BLOCK_CHECKSUM != 0;
    let linked = d.flg & FLG_BLOCK_INDEPENDENCE == 0;
    let frame_start = out.len();

    // Room for the whole frame up front: every block at the most it can expand to, lowered to
    // the content size when the frame gives one (a header alone cannot make us reserve more
    // than its blocks can fill). The walk stops at the first malformed block; decoding below
    // reports it.
    let walked = {
        let mut sum = 0u64;
        let mut walk = input;
        while let Some(raw) = read_u32(&mut walk).filter(|raw| *raw != 0) {
            let size = (raw & !UNCOMPRESSED_BIT) as usize;
            let stored = if raw & UNCOMPRESSED_BIT != 0 { size } else { block_bound(size, d.block_max) };
            sum = sum.saturating_add(stored as u64);
            let skip = size + if block_checksum { 4 } else { 0 };
            match walk.get(skip..) {
                Some(next) => walk = next,
                None => break,
            }
        }
        sum
    };
    let upper = d.content_size.map_or(walked, |claimed| claimed.min(walked));
    let room = limit.saturating_sub(frame_start);
    out.reserve(usize::try_from(upper).unwrap_or(usize::MAX).min(room));

    loop {
        let raw = read_u32(&mut input).ok_or_else(|| failed(CODEC, "truncated block size"))?;
        if raw == 0 {
            break;
        }
        let size = (raw & !UNCOMPRESSED_BIT) as usize;
        if size > d.block_max {
            return Err(failed(CODEC, format_args!("block of {size} bytes exceeds the frame's maximum")));
        }
        let block = input.get(..size).ok_or_else(|| failed(CODEC, "truncated block"))?;
        input = &input[size..];
        if block_checksum {
            let stored = read_u32(&mut input).ok_or_else(|| failed(CODEC, "truncated block checksum"))?;
            let computed = XxHash32::oneshot(0, block);
            if stored != computed {
                return Err(DecodeError::ChecksumMismatch { what: "lz4 block", stored, computed });
            }
        }
        let at = out.len();
        if raw & UNCOMPRESSED_BIT != 0 {
            if at + size > limit {
                return Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit });
            }
            out.extend_from_slice(block);
            continue;
        }
        let bound = block_bound(size, d.block_max);
        let end = at + bound.min(limit - at);
        out.resize(end, 0);
        let result = if linked && at > frame_start {
            let (before, after) = out.split_at_mut(at);
            let dict = &before[frame_start.max(at.saturating_sub(WINDOW))..];
            decompress_into_with_dict(block, after, dict)
        } else {
            decompress_into(block, &mut out[at..])
        };
        match result {
            Ok(n) => out.truncate(at + n),
            Err(DecompressError::OutputTooSmall { .. }) if end - at < bound => {
                return Err(DecodeError::DecompressionLimitExceeded { codec: CODEC, limit });
            }
            Err(e) => return Err(failed(CODEC, e)),
        }
    }
    if d.flg & FLG_CONTENT_CHECKSUM != 0 {
        let stored = read_u32(&mut input).ok_or_else(|| failed(CODEC, "truncated content checksum"))?;
        let computed = XxHash32::oneshot(0, &out[frame_start..]);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { what: "lz4 content", stored, computed });
        }
    }
    if let Some(size) = d.content_size {
        if size != (out.len() - frame_start) as u64 {
            return Err(failed(
                CODEC,
                format_args!("frame announced {size} bytes but held {}", out.len() - frame_start),
            ));
        }
    }
    Ok(input)
}

/// Takes a little-endian `u32` off the front of `input`.
fn read_u32(input: &mut &[u8]) -> Option<u32> {
    let (head, rest) = input.split_first_chunk::<4>()?;
    *input = rest;
    Some(u32::from_le_bytes(*head))
}
