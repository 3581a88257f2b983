//! Legacy message sets, magic 0 and 1: decoded (never written) so old data stays readable.
//!
//! A message set entry is `offset` (int64), `message_size` (int32), then the message: `crc`
//! (uint32, CRC-32 (IEEE) of the rest of the message), `magic` (int8), `attributes` (int8:
//! compression in bits 0-2, timestamp type in bit 3 for magic 1), `timestamp` (int64, magic 1
//! only), `key` and `value` (int32 length, negative for null). See
//! <https://kafka.apache.org/documentation/#messageset> and `LegacyRecord` /
//! `AbstractLegacyRecordBatch` in Apache Kafka.
//!
//! A compressed message is a wrapper: its value is a compressed message set of uncompressed
//! inner messages. Kafka's rules for those, followed here:
//! - zstd never wraps a legacy message set; inner messages may not be compressed; a wrapper
//!   with a null value or no inner messages is invalid; a partial inner message at the end is
//!   ignored.
//! - Magic 1 wrappers use relative inner offsets: the wrapper carries the offset of the last
//!   inner message, so an inner offset `o` is `wrapper_offset - last_inner_offset + o` (a
//!   wrapper offset of 0, written by some librdkafka versions, means inner offsets are
//!   absolute). Magic 0 inner offsets are absolute.
//! - Under log-append time the wrapper's timestamp is every inner message's timestamp.
//!
//! Each wrapper or plain message is presented as one [`RecordBatch`](super::RecordBatch)
//! whose records carry no headers. Wrappers are decompressed and validated when the batch is
//! decoded (they are rare, and their first offset is only known after decompression).

use bytes::Bytes;

use crate::codec::Reader;
use crate::compression::{Compression, DecompressionLimits};
use crate::error::DecodeError;
use crate::records::record::{Record, Span};
use crate::records::{TimestampType, LOG_OVERHEAD, NO_TIMESTAMP};

/// The smallest magic 0 message: crc, magic, attributes, key length, value length.
pub(crate) const MIN_MESSAGE_V0: usize = 14;
/// The smallest magic 1 message: a magic 0 message plus the timestamp.
pub(crate) const MIN_MESSAGE_V1: usize = 22;

/// The fields of one legacy message, with where its key and value are in its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) magic: i8,
    pub(crate) attributes: i8,
    /// The stored timestamp (`-1` for magic 0).
    pub(crate) timestamp: i64,
    pub(crate) key: Span,
    pub(crate) value: Span,
}

impl Message {
    fn compression(&self) -> Result<Compression, DecodeError> {
        match Compression::from_id((self.attributes & 0x07) as u8) {
            Some(Compression::Zstd) | None => Err(DecodeError::InvalidValue {
                field: "legacy message compression",
                value: i64::from(self.attributes & 0x07),
            }),
            Some(c) => Ok(c),
        }
    }
}

/// Reads a message (`msg` runs from its crc to its end), verifying its CRC-32 when `verify`.
pub(crate) fn read_message(msg: &Bytes, verify: bool) -> Result<Message, DecodeError> {
    let len = msg.len();
    if len < MIN_MESSAGE_V0 {
        return Err(DecodeError::InvalidLength { length: len as i64, remaining: len });
    }
    let mut r = Reader::new(msg.clone());
    let stored = r.u32()?;
    if verify {
        let computed = crc32fast::hash(&msg[4..]);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { what: "legacy message CRC-32", stored, computed });
        }
    }
    let magic = r.i8()?;
    let attributes = r.i8()?;
    let timestamp = match magic {
        0 => NO_TIMESTAMP,
        1 => r.i64()?,
        _ => return Err(DecodeError::InvalidValue { field: "legacy message magic", value: magic.into() }),
    };
    let key = sized(&mut r, len)?;
    let value = sized(&mut r, len)?;
    // Bytes after the value are covered by the CRC but carry nothing; Kafka ignores them too.
    Ok(Message { magic, attributes, timestamp, key, value })
}

/// Where the int32-length byte string `r` is at lies in the message of `total` bytes
/// ([`Span::NULL`] for a negative length).
fn sized(r: &mut Reader, total: usize) -> Result<Span, DecodeError> {
    let length = r.i32()?;
    let Ok(len) = usize::try_from(length) else {
        return Ok(Span::NULL);
    };
    let start = total - r.remaining();
    r.skip(len)
        .map_err(|_| DecodeError::InvalidLength { length: length.into(), remaining: r.remaining() })?;
    Ok(Span::new(start, start + len))
}

/// A decoded top-level legacy entry: what its batch view shows, and its records.
#[derive(Debug, Clone)]
pub(crate) struct LegacyBatch {
    pub(crate) magic: i8,
    pub(crate) attributes: i8,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) compression: Compression,
    pub(crate) count: u32,
    pub(crate) records: LegacyRecords,
}

/// Decodes a top-level entry (`entry` holds offset, size and message).
pub(crate) fn read_entry(
    entry: &Bytes,
    limits: &DecompressionLimits,
    verify: bool,
) -> Result<LegacyBatch, DecodeError> {
    let offset = Reader::new(entry.clone()).i64()?;
    let msg = entry.slice(LOG_OVERHEAD.min(entry.len())..);
    let m = read_message(&msg, verify)?;
    let compression = m.compression()?;
    let timestamp_type = timestamp_type(m.magic, m.attributes);
    let (timestamp, log_append_time) = match timestamp_type {
        TimestampType::LogAppendTime => (m.timestamp, Some(m.timestamp)),
        _ => (m.timestamp, None),
    };
    let mut batch = LegacyBatch {
        magic: m.magic,
        attributes: m.attributes,
        base_offset: offset,
        last_offset: offset,
        timestamp,
        timestamp_type,
        compression,
        count: 1,
        records: LegacyRecords::Single(None),
    };
    if compression == Compression::None {
        batch.records = LegacyRecords::Single(Some(Record::new(offset, timestamp, msg, m.key, m.value)));
        return Ok(batch);
    }
    let value =
        m.value.get(&msg).ok_or(DecodeError::UnexpectedNull { field: "legacy wrapper message value" })?;
    let set = compression.decompress_inner(value, limits, m.magic == 0)?;
    let scan = scan_inner(&set, verify)?;
    // Magic 1 inner offsets are relative to the wrapper's, which is the last inner offset.
    // Every offset here comes off the wire, so the arithmetic is checked: a wrapper offset
    // near i64::MAX with a negative inner offset would otherwise overflow.
    let offset_base = match m.magic {
        1 if offset == 0 => Some(0),
        1 if offset < scan.last_offset => {
            return Err(DecodeError::InvalidValue { field: "legacy wrapper offset", value: offset });
        }
        1 => Some(
            offset
                .checked_sub(scan.last_offset)
                .ok_or(DecodeError::InvalidValue { field: "legacy inner offset", value: scan.last_offset })?,
        ),
        _ => None,
    };
    // The base is not negative here, so the highest inner offset is the only one that can
    // overflow; with it in range, reading the records below cannot.
    if let Some(base) = offset_base {
        absolute(base, scan.max_offset)?;
    }
    batch.base_offset = match offset_base {
        Some(base) => absolute(base, scan.first_offset)?,
        None => scan.first_offset,
    };
    batch.count = scan.count;
    batch.records = LegacyRecords::Wrapped {
        set: set.slice(..scan.end),
        pos: 0,
        left: scan.count,
        offset_base,
        log_append_time,
        verify,
    };
    Ok(batch)
}

/// The absolute offset of inner offset `inner` under a magic 1 wrapper whose inner offset 0 is
/// at `base`.
fn absolute(base: i64, inner: i64) -> Result<i64, DecodeError> {
    base.checked_add(inner).ok_or(DecodeError::InvalidValue { field: "legacy inner offset", value: inner })
}

/// The timestamp type of a top-level message.
fn timestamp_type(magic: i8, attributes: i8) -> TimestampType {
    match magic {
        0 => TimestampType::NotAvailable,
        _ if attributes & 0x08 != 0 => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    }
}

struct InnerScan {
    count: u32,
    first_offset: i64,
    last_offset: i64,
    /// The highest inner offset (inner offsets need not be in order on the wire).
    max_offset: i64,
    /// Where the last whole inner message ends.
    end: usize,
}

/// Walks and validates the inner messages of a decompressed wrapper.
fn scan_inner(set: &Bytes, verify: bool) -> Result<InnerScan, DecodeError> {
    let mut scan = InnerScan { count: 0, first_offset: 0, last_offset: 0, max_offset: i64::MIN, end: 0 };
    while let Some((offset, msg)) = next_inner(set, &mut scan.end)? {
        let m = read_message(&msg, verify)?;
        if m.attributes & 0x07 != 0 {
            return Err(DecodeError::InvalidValue {
                field: "inner legacy message compression",
                value: i64::from(m.attributes & 0x07),
            });
        }
        if scan.count == 0 {
            scan.first_offset = offset;
        }
        scan.last_offset = offset;
        scan.max_offset = scan.max_offset.max(offset);
        scan.count = scan.count.saturating_add(1);
    }
    if scan.count == 0 {
        return Err(DecodeError::InvalidValue { field: "legacy wrapper inner message count", value: 0 });
    }
    Ok(scan)
}

/// The next whole inner entry at `*pos` (its offset and message), or `None` at the end of the
/// set or before a partial entry.
fn next_inner(set: &Bytes, pos: &mut usize) -> Result<Option<(i64, Bytes)>, DecodeError> {
    let Some(head) = set.get(*pos..*pos + LOG_OVERHEAD) else {
        return Ok(None);
    };
    let offset = i64::from_be_bytes(head[..8].try_into().unwrap_or_default());
    let size = i32::from_be_bytes(head[8..12].try_into().unwrap_or_default());
    let remaining = set.len() - *pos - LOG_OVERHEAD;
    match usize::try_from(size) {
        Ok(n) if n >= MIN_MESSAGE_V0 => {
            if n > remaining {
                return Ok(None);
            }
            let start = *pos + LOG_OVERHEAD;
            *pos = start + n;
            Ok(Some((offset, set.slice(start..start + n))))
        }
        _ => Err(DecodeError::InvalidLength { length: size.into(), remaining }),
    }
}

/// The records of a legacy batch.
#[derive(Debug, Clone)]
pub(crate) enum LegacyRecords {
    /// An uncompressed message: its one record, until taken.
    Single(Option<Record>),
    /// The validated inner messages of a wrapper.
    Wrapped {
        set: Bytes,
        pos: usize,
        left: u32,
        /// The absolute offset of inner offset 0 (magic 1), or `None` for absolute offsets.
        offset_base: Option<i64>,
        log_append_time: Option<i64>,
        verify: bool,
    },
}

impl LegacyRecords {
    pub(crate) fn next(&mut self) -> Option<Result<Record, DecodeError>> {
        match self {
            LegacyRecords::Single(record) => record.take().map(Ok),
            LegacyRecords::Wrapped { set, pos, left, offset_base, log_append_time, verify } => {
                let (offset, msg) = match next_inner(set, pos) {
                    Ok(Some(entry)) => entry,
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e)),
                };
                *left = left.saturating_sub(1);
                Some(read_message(&msg, *verify).and_then(|m| {
                    // The wrapper's scan checked every inner offset; checked here all the same.
                    let offset = match *offset_base {
                        Some(base) => absolute(base, offset)?,
                        None => offset,
                    };
                    Ok(Record::new(offset, log_append_time.unwrap_or(m.timestamp), msg, m.key, m.value))
                }))
            }
        }
    }

    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            LegacyRecords::Single(r) => (usize::from(r.is_some()), Some(usize::from(r.is_some()))),
            LegacyRecords::Wrapped { left, .. } => (*left as usize, Some(*left as usize)),
        }
    }
}
