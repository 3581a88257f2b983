//! Compression codecs of Kafka record data: gzip, snappy, lz4 and zstd.
//!
//! A record batch names its codec in the low three bits of its attributes ([`Compression`]); the
//! codec applies to the batch's records section (magic 2) or to the value of a wrapper message
//! (magic 0 and 1). This module owns the codecs and the wire formats Kafka clients actually use:
//!
//! - gzip: RFC 1952 members (several concatenated members are accepted), via `flate2` on its
//!   pure-Rust backend.
//! - snappy: the Java client writes the framing of the `snappy-java` library ("xerial": an
//!   8-byte magic, a version and a compatible-version word, then blocks of a big-endian 32-bit
//!   length and a raw snappy block, 32 KiB of input per block). librdkafka writes either that or
//!   a single raw snappy block. Both are read; the xerial framing is written.
//! - lz4: the LZ4 frame format (<https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md>)
//!   framed here over `lz4_flex`'s block codec, 64 KiB independent blocks as the Java client
//!   writes them. Magic 0 message sets came from Kafka versions that computed the frame
//!   descriptor checksum wrongly; that checksum is not verified for them, as the Java client
//!   does.
//! - zstd: standard zstd frames (RFC 8878), through the `zstd` crate (C libzstd) or, with only
//!   the `zstd-pure` feature, through `ruzstd`.
//!
//! Each codec is behind a cargo feature of the same name; a codec that is not built in fails
//! with `CompressionNotEnabled`, never a panic.
//!
//! Decompression takes untrusted input, so its output is bounded by [`DecompressionLimits`]: a
//! maximum size and a maximum expansion ratio, checked while decompressing (a zip bomb stops at
//! the limit and is a [`DecodeError::DecompressionLimitExceeded`]). Output is decompressed once
//! into one buffer, sized up front from what the format announces (capped by the limit), and
//! returned as [`Bytes`] so records can be sliced from it without copying.

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(any(feature = "zstd", feature = "zstd-pure"))]
mod zstd;

/// A compression codec, with the code Kafka stores in the low three bits of batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (code 0).
    #[default]
    None,
    /// gzip (code 1).
    Gzip,
    /// snappy (code 2).
    Snappy,
    /// lz4 frames (code 3).
    Lz4,
    /// zstd frames (code 4; record batches of magic 2 only).
    Zstd,
}

impl Compression {
    /// Every codec, in code order.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The code stored in batch attributes.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with attribute code `id` (only the low three bits of the attributes), if any.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The name Kafka uses in `compression.type`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether this build includes the codec (its cargo feature is on).
    pub const fn is_enabled(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(any(feature = "zstd", feature = "zstd-pure")),
        }
    }

    /// The compression levels the codec accepts and its default level, as Kafka's
    /// `compression.<codec>.level` settings define them (KIP-390); `None` for codecs without
    /// levels (none, snappy).
    pub const fn level_range(self) -> Option<(i32, i32, i32)> {
        match self {
            Compression::None | Compression::Snappy => None,
            // (min, max, default)
            Compression::Gzip => Some((1, 9, 6)),
            Compression::Lz4 => Some((1, 17, 9)),
            Compression::Zstd => Some((-131_072, 22, 3)),
        }
    }

    /// Appends `input` compressed with this codec at its default level to `out`.
    ///
    /// ```
    /// # #[cfg(feature = "lz4")] {
    /// use bytes::BytesMut;
    /// use klamm_protocol::compression::{Compression, DecompressionLimits};
    ///
    /// let mut out = BytesMut::new();
    /// Compression::Lz4.compress(b"hello hello hello hello", &mut out).unwrap();
    /// let back = Compression::Lz4.decompress(&out, &DecompressionLimits::default()).unwrap();
    /// assert_eq!(&back[..], b"hello hello hello hello");
    /// # }
    /// ```
    pub fn compress(self, input: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        self.compress_with_level(input, None, out)
    }

    /// Appends `input` compressed with this codec to `out`, at `level` (or the codec's default
    /// when `None`). A level outside [`Compression::level_range`] is an error. lz4 accepts the
    /// Kafka range but always uses the fast compressor (`lz4_flex` has no high-compression
    /// mode); the pure-Rust zstd encoder offers one level (about zstd's level 1) and uses it for
    /// every level.
    pub fn compress_with_level(
        self,
        input: &[u8],
        level: Option<i32>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if let (Some(level), Some((min, max, _))) = (level, self.level_range()) {
            if !(min..=max).contains(&level) {
                return Err(EncodeError::InvalidValue {
                    field: "compression level",
                    reason: "outside the range the codec accepts",
                });
            }
        }
        match self {
            Compression::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            #[cfg(feature = "gzip")]
            Compression::Gzip => gzip::compress(input, level.unwrap_or(6), out),
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::compress(input, out),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => lz4::compress(input, out),
            #[cfg(any(feature = "zstd", feature = "zstd-pure"))]
            Compression::Zstd => zstd::compress(input, level.unwrap_or(3), out),
            #[allow(unreachable_patterns)]
            other => Err(EncodeError::CompressionNotEnabled(other.name())),
        }
    }

    /// Decompresses `input`, refusing output beyond what `limits` allow for an input of this
    /// size. [`Compression::None`] returns a copy of the input.
    pub fn decompress(self, input: &[u8], limits: &DecompressionLimits) -> Result<Bytes, DecodeError> {
        self.decompress_inner(input, limits, false)
    }

    /// As [`Compression::decompress`]; `legacy_lz4` skips the lz4 frame descriptor checksum,
    /// which Kafka's magic 0 producers computed wrongly.
    #[cfg_attr(not(feature = "lz4"), allow(unused_variables))]
    pub(crate) fn decompress_inner(
        self,
        input: &[u8],
        limits: &DecompressionLimits,
        legacy_lz4: bool,
    ) -> Result<Bytes, DecodeError> {
        let limit = limits.output_limit(input.len());
        match self {
            Compression::None if input.len() > limit => {
                Err(DecodeError::DecompressionLimitExceeded { codec: "none", limit })
            }
            Compression::None => Ok(Bytes::copy_from_slice(input)),
            #[cfg(feature = "gzip")]
            Compression::Gzip => gzip::decompress(input, limit).map(Bytes::from),
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::decompress(input, limit).map(Bytes::from),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => lz4::decompress(input, limit, !legacy_lz4).map(Bytes::from),
            #[cfg(any(feature = "zstd", feature = "zstd-pure"))]
            Compression::Zstd => zstd::decompress(input, limit, limits.max_size).map(Bytes::from),
            #[allow(unreachable_patterns)]
            other => Err(DecodeError::CompressionNotEnabled(other.name())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given to [`Compression::from_str`] is not a Kafka codec name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression type {0:?} (expected none, gzip, snappy, lz4 or zstd)")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    /// Parses a `compression.type` value (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCompression(s.to_owned()))
    }
}

/// How much a decompression may produce.
///
/// The output limit for an input of `n` bytes is `max_size`, lowered to
/// `max(n * max_ratio, RATIO_FLOOR)` when a ratio is set: small inputs may always expand to
/// [`DecompressionLimits::RATIO_FLOOR`], larger ones by at most `max_ratio`. A zstd frame whose
/// window is larger than `max_size` is refused too, since a decoder must allocate its window.
///
/// ```
/// use klamm_protocol::compression::DecompressionLimits;
///
/// let mut limits = DecompressionLimits::default();
/// limits.max_size = 16 << 20;
/// assert_eq!(limits.output_limit(10), 1 << 20);
/// assert_eq!(limits.output_limit(1 << 20), 16 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecompressionLimits {
    /// The most bytes one decompression may produce (default 64 MiB).
    pub max_size: usize,
    /// The largest expansion ratio allowed above [`DecompressionLimits::RATIO_FLOOR`]
    /// (default 1024; `None` for no ratio check).
    pub max_ratio: Option<usize>,
}

impl DecompressionLimits {
    /// The default `max_size`: 64 MiB per batch.
    pub const DEFAULT_MAX_SIZE: usize = 64 << 20;
    /// The default `max_ratio`. gzip cannot exceed about 1032:1 and lz4 about 255:1; zstd can,
    /// but only on data so repetitive that a batch holding more than a MiB of it is suspect.
    pub const DEFAULT_MAX_RATIO: usize = 1024;
    /// Output any input may expand to regardless of the ratio: 1 MiB.
    pub const RATIO_FLOOR: usize = 1 << 20;

    /// Limits with the given maximum size and ratio.
    pub const fn new(max_size: usize, max_ratio: Option<usize>) -> Self {
        Self { max_size, max_ratio }
    }

    /// The most output allowed for `input_len` bytes of input.
    pub fn output_limit(&self, input_len: usize) -> usize {
        match self.max_ratio {
            Some(ratio) => self.max_size.min(input_len.saturating_mul(ratio).max(Self::RATIO_FLOOR)),
            None => self.max_size,
        }
    }
}

impl Default for DecompressionLimits {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_SIZE, Some(Self::DEFAULT_MAX_RATIO))
    }
}

/// A decompression error from a codec library.
#[cfg(any(feature = "gzip", feature = "snappy", feature = "lz4", feature = "zstd", feature = "zstd-pure"))]
fn failed(codec: &'static str, reason: impl fmt::Display) -> DecodeError {
    DecodeError::Decompression { codec, reason: reason.to_string() }
}

/// Reads a decompressing reader to its end, appending to `out`, which may not grow beyond
/// `limit` bytes in all. It starts with room for `hint` more bytes and grows by doubling, but
/// never past `limit + 1`, so a bomb costs at most the limit.
#[cfg(any(feature = "gzip", feature = "zstd", feature = "zstd-pure"))]
fn read_limited(
    mut reader: impl std::io::Read,
    codec: &'static str,
    limit: usize,
    hint: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    use std::io::ErrorKind;
    let ceiling = limit.saturating_add(1);
    let mut len = out.len();
    if len > limit {
        return Err(DecodeError::DecompressionLimitExceeded { codec, limit });
    }
    out.resize(len.saturating_add(hint.max(1)).min(ceiling), 0);
    loop {
        if len == out.len() {
            if len >= ceiling {
                return Err(DecodeError::DecompressionLimitExceeded { codec, limit });
            }
            out.resize(len.saturating_mul(2).max(64 << 10).min(ceiling), 0);
        }
        match reader.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(codec, e)),
        }
    }
    out.truncate(len);
    if len > limit {
        return Err(DecodeError::DecompressionLimitExceeded { codec, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
