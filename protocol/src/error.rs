//! Errors of the codec: what went wrong while decoding untrusted bytes or encoding a message.
//!
//! Both enums are `#[non_exhaustive]` so new cases can be added without breaking users. Neither
//! is ever retriable by itself: a decode error means the peer sent bytes we cannot understand
//! (or that were corrupted), an encode error means the caller asked for something the
//! negotiated version cannot carry.

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a value was complete.
    #[error("unexpected end of input: needed {needed} more bytes, {remaining} remain")]
    UnexpectedEnd {
        /// Bytes the value needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix is negative (and not the null marker) or larger than what remains.
    #[error("invalid length {length} ({remaining} bytes remain)")]
    InvalidLength {
        /// The length read from the wire.
        length: i64,
        /// Bytes that were left after the prefix.
        remaining: usize,
    },
    /// A frame's size prefix is larger than the configured limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The size read from the wire.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A variable-length integer ran over its maximum width.
    #[error("variable-length integer is longer than {max_bytes} bytes")]
    VarintTooLong {
        /// The widest encoding the type allows.
        max_bytes: u8,
    },
    /// A string was not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A null was found where the version does not allow one.
    #[error("null value for non-nullable field {field}")]
    UnexpectedNull {
        /// The field that was null.
        field: &'static str,
    },
    /// A known tagged field did not use exactly the size its header announced.
    #[error("tagged field {tag} announced {size} bytes but its value used {used}")]
    TaggedFieldSize {
        /// The tag.
        tag: u32,
        /// The announced size.
        size: usize,
        /// What the value consumed.
        used: usize,
    },
    /// A string's length is beyond [`MAX_STRING_LEN`](crate::codec::MAX_STRING_LEN) (a compact
    /// string's varint can announce more; the Java client refuses it too).
    #[error("string of length {length} is longer than the protocol allows (32767 bytes)")]
    StringTooLong {
        /// The length read from the wire.
        length: i64,
    },
    /// A tagged-field section repeats a tag or does not list its tags in increasing order.
    #[error("tagged field {tag} follows tag {previous}: tags must be strictly increasing")]
    TaggedFieldOrder {
        /// The tag out of order.
        tag: u32,
        /// The tag before it.
        previous: u32,
    },
    /// Bytes were left over after a complete message.
    #[error("{remaining} bytes left over after a complete {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were not consumed.
        remaining: usize,
    },
    /// The message version is not one this crate implements for that API.
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
    /// An API key this crate does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A value that is out of the range the protocol defines (a bad enum, magic byte, ...).
    #[error("invalid value for {field}: {value}")]
    InvalidValue {
        /// What was being read.
        field: &'static str,
        /// The offending value.
        value: i64,
    },
    /// A checksum did not match the bytes it covers.
    #[error("{what} checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Which checksum (record batch CRC-32C, legacy message CRC-32, ...).
        what: &'static str,
        /// The checksum in the data.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// Decompression failed or produced more than the allowed amount.
    #[error("{codec} decompression failed: {reason}")]
    Decompression {
        /// The codec.
        codec: &'static str,
        /// What the decompressor reported.
        reason: String,
    },
    /// The data uses a compression codec this build does not include.
    #[error("compression codec {0} is not enabled in this build")]
    CompressionNotEnabled(&'static str),
    /// Decompressed data would exceed the configured limit (a decompression bomb, or a batch
    /// larger than the limits allow).
    #[error("{codec} decompression exceeds the limit of {limit} bytes")]
    DecompressionLimitExceeded {
        /// The codec.
        codec: &'static str,
        /// The limit that applied to this input.
        limit: usize,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field holds a non-default value that the negotiated version cannot carry, and the field
    /// is not one the protocol allows to be dropped silently.
    #[error("field {field} is not available in version {version}")]
    FieldNotAvailable {
        /// The field.
        field: &'static str,
        /// The version being encoded.
        version: i16,
    },
    /// A field is null but the version requires a value.
    #[error("field {field} may not be null in version {version}")]
    NullNotAllowed {
        /// The field.
        field: &'static str,
        /// The version being encoded.
        version: i16,
    },
    /// A string, byte string or array is longer than its length prefix can express.
    #[error("{what} of length {length} is too long for its length prefix")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        length: usize,
    },
    /// The message version is not one this crate implements for that API.
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
    /// Two tagged fields of one structure have the same tag (a known field and an unknown one
    /// kept from decoding, or two unknown ones): readers refuse such a section.
    #[error("tagged field {tag} is given twice")]
    DuplicateTag {
        /// The tag.
        tag: u32,
    },
    /// Compression failed.
    #[error("{codec} compression failed: {reason}")]
    Compression {
        /// The codec.
        codec: &'static str,
        /// What the compressor reported.
        reason: String,
    },
    /// The requested compression codec is not enabled in this build.
    #[error("compression codec {0} is not enabled in this build")]
    CompressionNotEnabled(&'static str),
    /// A value is out of the range the protocol can carry (too many records, offset delta
    /// beyond i32, ...).
    #[error("invalid value for {field}: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// Why it cannot be encoded.
        reason: &'static str,
    },
}
