//! Tests of the codecs: round trips, the exact framing Kafka clients expect, limits against
//! decompression bombs, and builds without a codec.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

fn compressed(codec: Compression, input: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    codec.compress(input, &mut out).unwrap();
    out
}

/// Data that compresses: a few repeated phrases with a counter.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("record {i} of the topic, value {} ", i % 7).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn codes_and_names() {
    for (i, c) in Compression::ALL.into_iter().enumerate() {
        assert_eq!(c.id() as usize, i);
        assert_eq!(Compression::from_id(c.id()), Some(c));
        assert_eq!(c.name().parse::<Compression>(), Ok(c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(Compression::from_id(5), None);
    assert_eq!("LZ4".parse::<Compression>(), Ok(Compression::Lz4));
    assert!("brotli".parse::<Compression>().is_err());
}

#[test]
fn limits() {
    let l = DecompressionLimits::default();
    assert_eq!(l.output_limit(0), DecompressionLimits::RATIO_FLOOR);
    assert_eq!(l.output_limit(4 << 10), 4 << 20);
    assert_eq!(l.output_limit(1 << 30), 64 << 20);
    assert_eq!(DecompressionLimits::new(100, None).output_limit(1), 100);
}

#[test]
fn invalid_levels_are_refused() {
    let mut out = BytesMut::new();
    assert!(matches!(
        Compression::Gzip.compress_with_level(b"x", Some(10), &mut out),
        Err(EncodeError::InvalidValue { .. })
    ));
    // Snappy has no levels: any level is ignored.
    assert!(
        Compression::Snappy.compress_with_level(b"x", Some(100), &mut out).is_ok()
            || !cfg!(feature = "snappy")
    );
}

#[test]
fn disabled_codecs_are_typed_errors() {
    for c in Compression::ALL {
        if c.is_enabled() {
            continue;
        }
        let mut out = BytesMut::new();
        assert_eq!(c.compress(b"abc", &mut out), Err(EncodeError::CompressionNotEnabled(c.name())));
        assert_eq!(
            c.decompress(b"abc", &DecompressionLimits::default()),
            Err(DecodeError::CompressionNotEnabled(c.name()))
        );
    }
}

#[test]
fn round_trips_of_every_size_class() {
    for codec in Compression::ALL.into_iter().filter(|c| c.is_enabled()) {
        for len in [0, 1, 13, 100, 32 << 10, (32 << 10) + 1, 64 << 10, (64 << 10) + 7, 300_000] {
            let input = text(len);
            let out = compressed(codec, &input);
            let back = codec.decompress(&out, &DecompressionLimits::default()).unwrap();
            assert_eq!(back.len(), input.len(), "{codec} at {len}");
            assert!(back[..] == input[..], "{codec} at {len}");
        }
    }
}

#[test]
fn output_over_the_limit_is_refused_by_every_codec() {
    let input = vec![0u8; 3 << 20];
    for codec in Compression::ALL.into_iter().filter(|c| c.is_enabled()) {
        let out = compressed(codec, &input);
        let limits = DecompressionLimits::new(2 << 20, None);
        assert!(
            matches!(codec.decompress(&out, &limits), Err(DecodeError::DecompressionLimitExceeded { .. })),
            "{codec}"
        );
        // The ratio check alone: 3 MiB of zeros compress beyond 4:1 with every codec.
        let limits = DecompressionLimits::new(64 << 20, Some(4));
        assert!(
            codec == Compression::None
                || matches!(
                    codec.decompress(&out, &limits),
                    Err(DecodeError::DecompressionLimitExceeded { .. })
                ),
            "{codec}"
        );
        let back = codec.decompress(&out, &DecompressionLimits::new(3 << 20, None)).unwrap();
        assert_eq!(back.len(), 3 << 20, "{codec}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for codec in Compression::ALL.into_iter().filter(|c| c.is_enabled() && *c != Compression::None) {
        for input in [&b""[..], b"garbage that is not compressed", &[0xff; 64]] {
            assert!(codec.decompress(input, &DecompressionLimits::default()).is_err(), "{codec} {input:?}");
        }
    }
}

#[cfg(feature = "snappy")]
mod snappy {
    use super::*;

    const HEADER: [u8; 16] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];

    #[test]
    fn writes_xerial_framing_byte_by_byte() {
        let out = compressed(Compression::Snappy, b"hello");
        let mut expected = HEADER.to_vec();
        // One block of 7 bytes: the length 5 as a varint, a literal tag for 5 bytes, the bytes.
        expected.extend_from_slice(&[0, 0, 0, 7, 5, 0x10]);
        expected.extend_from_slice(b"hello");
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn splits_xerial_blocks_at_32_kib() {
        let input = text(80 << 10);
        let out = compressed(Compression::Snappy, &input);
        let mut rest = &out[16..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let block = &rest[4..4 + len];
            sizes.push(snap::raw::decompress_len(block).unwrap());
            rest = &rest[4 + len..];
        }
        assert_eq!(sizes, [32 << 10, 32 << 10, 16 << 10]);
    }

    #[test]
    fn reads_raw_snappy() {
        let input = text(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let back = Compression::Snappy.decompress(&raw, &DecompressionLimits::default()).unwrap();
        assert_eq!(&back[..], &input[..]);
    }

    #[test]
    fn xerial_block_length_past_the_end_is_an_error() {
        let mut input = HEADER.to_vec();
        input.extend_from_slice(&[0, 0, 0, 9, 5, 0x10, b'h']);
        assert!(matches!(
            Compression::Snappy.decompress(&input, &DecompressionLimits::default()),
            Err(DecodeError::Decompression { .. })
        ));
    }

    #[test]
    fn the_most_repetitive_input_stays_within_the_expansion_bound() {
        // Zeros compress to copies of 64 bytes each: the densest snappy there is.
        let zeros = vec![0u8; 1 << 20];
        let framed = compressed(Compression::Snappy, &zeros);
        let back = Compression::Snappy.decompress(&framed, &DecompressionLimits::new(2 << 20, None)).unwrap();
        assert_eq!(back.len(), zeros.len());
        // As one raw block, too.
        let mut raw = vec![0; snap::raw::max_compress_len(zeros.len())];
        let n = snap::raw::Encoder::new().compress(&zeros, &mut raw).unwrap();
        let back =
            Compression::Snappy.decompress(&raw[..n], &DecompressionLimits::new(2 << 20, None)).unwrap();
        assert_eq!(back.len(), zeros.len());
    }

    #[test]
    fn announced_snappy_length_is_checked_before_allocating() {
        // A raw block announcing 2^32 - 1 bytes.
        let input = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(matches!(
            Compression::Snappy.decompress(&input, &DecompressionLimits::default()),
            Err(DecodeError::DecompressionLimitExceeded { .. })
        ));
    }
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::*;

    #[test]
    fn writes_the_frame_the_java_client_reads() {
        let out = compressed(Compression::Lz4, b"hello");
        // Magic, FLG (version 1, independent blocks), BD (64 KiB), header checksum; one block
        // stored uncompressed (bit 31), the end mark.
        let mut expected = vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 5, 0, 0, 0x80];
        expected.extend_from_slice(b"hello");
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn frames_agree_with_lz4_flex() {
        let input = text(200_000);
        // Ours read by lz4_flex's frame decoder.
        let ours = compressed(Compression::Lz4, &input);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(&ours[..]), &mut back).unwrap();
        assert!(back == input);
        // lz4_flex's frames, in every block mode and with checksums, read by ours.
        for (mode, checksums) in [
            (lz4_flex::frame::BlockMode::Independent, false),
            (lz4_flex::frame::BlockMode::Linked, false),
            (lz4_flex::frame::BlockMode::Linked, true),
        ] {
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.block_mode = mode;
            info.block_checksums = checksums;
            info.content_checksum = checksums;
            info.content_size = checksums.then_some(input.len() as u64);
            info.block_size = lz4_flex::frame::BlockSize::Max256KB;
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            std::io::Write::write_all(&mut enc, &input).unwrap();
            let theirs = enc.finish().unwrap();
            let back = Compression::Lz4.decompress(&theirs, &DecompressionLimits::default()).unwrap();
            assert!(back[..] == input[..], "{mode:?} {checksums}");
        }
    }

    #[test]
    fn descriptor_checksum_is_verified_except_for_magic_0() {
        let mut out = compressed(Compression::Lz4, b"hello").to_vec();
        out[6] ^= 0xff;
        let limits = DecompressionLimits::default();
        assert!(matches!(
            Compression::Lz4.decompress(&out, &limits),
            Err(DecodeError::ChecksumMismatch { what: "lz4 frame descriptor", .. })
        ));
        let back = Compression::Lz4.decompress_inner(&out, &limits, true).unwrap();
        assert_eq!(&back[..], b"hello");
    }

    #[test]
    fn corrupted_block_checksum_is_detected() {
        let mut info = lz4_flex::frame::FrameInfo::new();
        info.block_checksums = true;
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        std::io::Write::write_all(&mut enc, &text(1000)).unwrap();
        let mut frame = enc.finish().unwrap();
        let last_checksum_byte = frame.len() - 5;
        frame[last_checksum_byte] ^= 1;
        assert!(matches!(
            Compression::Lz4.decompress(&frame, &DecompressionLimits::default()),
            Err(DecodeError::ChecksumMismatch { what: "lz4 block", .. })
        ));
    }
}

#[cfg(feature = "gzip")]
mod gzip {
    use super::*;

    #[test]
    fn reads_concatenated_members() {
        let mut out = compressed(Compression::Gzip, b"hello ");
        Compression::Gzip.compress(b"world", &mut out).unwrap();
        let back = Compression::Gzip.decompress(&out, &DecompressionLimits::default()).unwrap();
        assert_eq!(&back[..], b"hello world");
    }

    #[test]
    fn writes_rfc_1952_members() {
        let out = compressed(Compression::Gzip, b"hello");
        assert_eq!(&out[..3], &[0x1f, 0x8b, 8]);
        // The trailer: CRC-32 and size of the input.
        let n = out.len();
        assert_eq!(&out[n - 8..n - 4], &crc32fast::hash(b"hello").to_le_bytes());
        assert_eq!(&out[n - 4..], &5u32.to_le_bytes());
    }
}

#[cfg(any(feature = "zstd", feature = "zstd-pure"))]
mod zstd {
    use super::*;

    #[test]
    fn writes_standard_frames() {
        let out = compressed(Compression::Zstd, &text(10_000));
        assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }

    #[test]
    fn reads_concatenated_and_skippable_frames() {
        let mut out = compressed(Compression::Zstd, b"hello ");
        out.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        Compression::Zstd.compress(b"world", &mut out).unwrap();
        let back = Compression::Zstd.decompress(&out, &DecompressionLimits::default()).unwrap();
        assert_eq!(&back[..], b"hello world");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_input_round_trips(input in proptest::collection::vec(any::<u8>(), 0..5000), codec_id in 0u8..5) {
        let codec = Compression::from_id(codec_id).unwrap();
        prop_assume!(codec.is_enabled());
        let out = compressed(codec, &input);
        let back = codec.decompress(&out, &DecompressionLimits::default()).unwrap();
        prop_assert_eq!(&back[..], &input[..]);
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..512), codec_id in 0u8..5) {
        let codec = Compression::from_id(codec_id).unwrap();
        let _ = codec.decompress(&input, &DecompressionLimits::default());
        let _ = codec.decompress_inner(&input, &DecompressionLimits::default(), true);
    }
}
