//! Counts from the wire do not size allocations: the largest single allocation made while
//! decoding hostile input stays small whatever the input claims.
//!
//! A global allocator wrapper records, per thread, the largest block asked for (allocations
//! and reallocations) so that each test can measure one decode call while other tests run on
//! their own threads. It forwards everything to the system allocator; this is the one place
//! the crate's tests need `unsafe`, as `GlobalAlloc` is an unsafe trait.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use klamm_protocol::compression::{Compression, DecompressionLimits};
use klamm_protocol::{decode_response_frame, ApiKey, DecodeError, Reader};

thread_local! {
    // Const-initialised and without a destructor, so reading it never allocates.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

struct Recording;

// SAFETY: every call is forwarded unchanged to `System`, which upholds the trait's contract.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`, with the caller's guarantees for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The largest single allocation `f` makes on this thread, and what it returned.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (usize, R) {
    LARGEST.with(|largest| largest.set(0));
    let result = f();
    (LARGEST.with(Cell::get), result)
}

/// An allocation this size is plainly not sized by a hostile count.
const SMALL: usize = 1 << 20;

#[test]
fn an_array_count_does_not_size_the_allocation() {
    // Four million elements announced, four million bytes following: every element could take
    // a byte, so the count passes the length check, but each element is 128 bytes in memory.
    let count = 4 << 20;
    let mut input = (count as i32).to_be_bytes().to_vec();
    input.resize(4 + count, 0);
    let input = Bytes::from(input);
    let (largest, result) = largest_allocation(|| {
        Reader::new(input).array(false, "elements", |r| {
            let _ = r.u8()?;
            Err::<[u64; 16], _>(DecodeError::InvalidValue { field: "element", value: 0 })
        })
    });
    assert!(matches!(result, Err(DecodeError::InvalidValue { field: "element", .. })));
    assert!(largest < SMALL, "largest allocation {largest} bytes");
}

#[test]
fn a_response_array_count_does_not_size_the_allocation() {
    // Metadata v1: correlation id, then a brokers array announcing as many brokers as bytes
    // follow; the first broker has a null host, so decoding stops there.
    let count = 4 << 20;
    let mut frame = 7i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&(count as i32).to_be_bytes());
    frame.resize(frame.len() + count, 0xff);
    let frame = Bytes::from(frame);
    let (largest, result) = largest_allocation(|| decode_response_frame(ApiKey::METADATA, 1, frame));
    assert!(matches!(result, Err(DecodeError::UnexpectedNull { .. })), "{result:?}");
    assert!(largest < SMALL, "largest allocation {largest} bytes");
}

/// A zstd frame with a 1 KiB window whose header claims 64 MiB of content, then `blocks`.
fn zstd_claiming_64_mib(blocks: &[u8]) -> Vec<u8> {
    // Magic; descriptor: 8-byte content size, not single-segment; window descriptor 0 (1 KiB).
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00];
    frame.extend_from_slice(&(64u64 << 20).to_le_bytes());
    frame.extend_from_slice(blocks);
    frame
}

/// A block header: last-block flag, type (0 raw, 1 RLE, 2 compressed) and size.
fn block_header(last: bool, kind: u32, size: u32) -> [u8; 3] {
    let raw = u32::from(last) | kind << 1 | size << 3;
    let [a, b, c, _] = raw.to_le_bytes();
    [a, b, c]
}

#[cfg(any(feature = "zstd", feature = "zstd-pure"))]
#[test]
fn a_zstd_content_size_claim_does_not_size_the_buffer() {
    let limits = DecompressionLimits::new(64 << 20, None);
    // One compressed block of ten garbage bytes.
    let mut compressed = block_header(true, 2, 10).to_vec();
    compressed.extend_from_slice(&[0x5a; 10]);
    // One raw block of a hundred bytes: valid, but far short of the claimed size.
    let mut raw = block_header(true, 0, 100).to_vec();
    raw.extend_from_slice(&[b'x'; 100]);
    for blocks in [compressed, raw] {
        let input = zstd_claiming_64_mib(&blocks);
        let (largest, result) = largest_allocation(|| Compression::Zstd.decompress(&input, &limits));
        assert!(largest < SMALL, "largest allocation {largest} bytes for {input:x?}");
        // Whatever the decoder makes of the mismatch, it never gives more than the input holds.
        if let Ok(out) = result {
            assert!(out.len() <= 100);
        }
    }
}

#[cfg(feature = "lz4")]
#[test]
fn an_lz4_content_size_claim_does_not_size_the_buffer() {
    let limits = DecompressionLimits::new(64 << 20, None);
    // Magic; FLG: version 1, independent blocks, content size; BD: 64 KiB blocks; 64 MiB.
    let mut descriptor = vec![0x68, 0x40];
    descriptor.extend_from_slice(&(64u64 << 20).to_le_bytes());
    let mut frame = vec![0x04, 0x22, 0x4d, 0x18];
    frame.extend_from_slice(&descriptor);
    frame.push((twox_hash::XxHash32::oneshot(0, &descriptor) >> 8) as u8);
    // One stored block of ten bytes, then the end mark.
    frame.extend_from_slice(&(10u32 | 1 << 31).to_le_bytes());
    frame.extend_from_slice(b"0123456789");
    frame.extend_from_slice(&0u32.to_le_bytes());
    let (largest, result) = largest_allocation(|| Compression::Lz4.decompress(&frame, &limits));
    assert!(matches!(result, Err(DecodeError::Decompression { .. })), "{result:?}");
    assert!(largest < SMALL, "largest allocation {largest} bytes");
}

#[cfg(feature = "snappy")]
#[test]
fn a_snappy_length_claim_does_not_size_the_buffer() {
    let limits = DecompressionLimits::new(64 << 20, None);
    // A raw block announcing 16 MiB (varint), then a 2-byte literal.
    let raw = [0x80, 0x80, 0x80, 0x08, 0x04, b'a', b'b'];
    let (largest, result) = largest_allocation(|| Compression::Snappy.decompress(&raw, &limits));
    assert!(matches!(result, Err(DecodeError::Decompression { .. })), "{result:?}");
    assert!(largest < SMALL, "largest allocation {largest} bytes");
    // The same block in xerial framing.
    let mut xerial = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
    xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    xerial.extend_from_slice(&raw);
    let (largest, result) = largest_allocation(|| Compression::Snappy.decompress(&xerial, &limits));
    assert!(matches!(result, Err(DecodeError::Decompression { .. })), "{result:?}");
    assert!(largest < SMALL, "largest allocation {largest} bytes");
}
