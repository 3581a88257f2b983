//! Reading a partition's record data: the batches in it and the batch-level fields.
//!
//! Record data (the `records` field of Fetch and Produce) is a sequence of entries, each
//! starting with `baseOffset` (int64) and a length (int32) of what follows; the magic byte at
//! offset 16 of an entry says whether it is a record batch (magic 2, see
//! <https://kafka.apache.org/documentation/#recordbatch>) or a legacy message (magic 0 or 1,
//! see [`legacy`](super::legacy)).
//!
//! The magic 2 header, after `baseOffset` and `batchLength`: `partitionLeaderEpoch` (int32),
//! `magic` (int8), `crc` (uint32, CRC-32C of everything from the attributes to the end),
//! `attributes` (int16: compression in bits 0-2, timestamp type bit 3, transactional bit 4,
//! control bit 5, delete horizon bit 6), `lastOffsetDelta` (int32), `baseTimestamp` (int64),
//! `maxTimestamp` (int64), `producerId` (int64), `producerEpoch` (int16), `baseSequence`
//! (int32), the record count (int32), then the records, compressed as a whole when the
//! attributes say so.
//!
//! A broker may cut the last batch of a fetch response short; that partial tail ends the
//! iteration quietly, as Kafka's own readers do. A length that cannot be valid, an unknown
//! magic or a checksum mismatch is an error, after which the iterator stops.

use bytes::Bytes;

use crate::codec::Reader;
use crate::compression::{Compression, DecompressionLimits};
use crate::error::DecodeError;
use crate::records::control::ControlRecord;
use crate::records::legacy::{self, LegacyBatch, MIN_MESSAGE_V0, MIN_MESSAGE_V1};
use crate::records::record::{RecordBase, Records, MIN_RECORD_SIZE};
use crate::records::{
    TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_OFFSET, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Attribute bits of a magic 2 batch.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// Where the CRC-32C of a magic 2 batch starts (the attributes) and where it is stored.
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;

/// Iterator over the batches of a partition's record data.
///
/// ```
/// use bytes::Bytes;
/// use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};
///
/// let mut batch = RecordBatchBuilder::new().base_offset(42);
/// batch.push(1_700_000_000_000, Some(&b"key"[..]), Some(&b"value"[..])).unwrap();
/// let data: Bytes = batch.finish().unwrap().freeze();
///
/// for batch in RecordBatches::new(data) {
///     let batch = batch.unwrap();
///     for record in batch.records().unwrap() {
///         let record = record.unwrap();
///         assert_eq!(record.offset(), 42);
///         assert_eq!(record.value(), Some(&b"value"[..]));
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatches {
    data: Bytes,
    limits: DecompressionLimits,
    verify_checksums: bool,
    done: bool,
}

impl RecordBatches {
    /// Reads the batches of `data`, with the default [`DecompressionLimits`].
    pub fn new(data: Bytes) -> Self {
        Self { data, limits: DecompressionLimits::default(), verify_checksums: true, done: false }
    }

    /// Uses `limits` for every decompression of these batches.
    pub fn with_limits(mut self, limits: DecompressionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether to verify batch and message checksums (on by default, like Kafka's
    /// `check.crcs`).
    pub fn verify_checksums(mut self, verify: bool) -> Self {
        self.verify_checksums = verify;
        self
    }

    /// The bytes not yet consumed. After the iterator has ended without an error, this is the
    /// partial batch the data ended with (empty if it ended on a batch boundary): a consumer
    /// that got no batch at all but a non-empty tail must fetch with a larger size.
    pub fn remaining(&self) -> &Bytes {
        &self.data
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        let data = &self.data;
        let Some(head) = data.first_chunk::<{ MAGIC_OFFSET + 1 }>() else {
            if let Some(len) = data.get(8..12) {
                // Enough to see the length but not the magic: refuse lengths no entry has.
                let length = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                check_length(length, MIN_MESSAGE_V0, data.len())?;
            }
            return Ok(None);
        };
        let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let magic = head[MAGIC_OFFSET] as i8;
        let min = match magic {
            0 => MIN_MESSAGE_V0,
            1 => MIN_MESSAGE_V1,
            2 => BATCH_HEADER_LEN - LOG_OVERHEAD,
            _ => return Err(DecodeError::InvalidValue { field: "record batch magic", value: magic.into() }),
        };
        let size = check_length(length, min, data.len())?;
        if data.len() < size {
            return Ok(None);
        }
        let entry = self.data.split_to(size);
        if magic == 2 {
            RecordBatch::read_v2(entry, self.limits, self.verify_checksums).map(Some)
        } else {
            let legacy = legacy::read_entry(&entry, &self.limits, self.verify_checksums)?;
            Ok(Some(RecordBatch::from_legacy(legacy, size, self.limits)))
        }
    }
}

/// Checks an entry's length field against the smallest valid entry; returns the entry size.
fn check_length(length: i32, min: usize, available: usize) -> Result<usize, DecodeError> {
    match usize::try_from(length) {
        Ok(len) if len >= min => Ok(len + LOG_OVERHEAD),
        _ => Err(DecodeError::InvalidLength {
            length: length.into(),
            remaining: available.saturating_sub(LOG_OVERHEAD),
        }),
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One record batch (or one legacy message or wrapper), with its header fields decoded and its
/// records read on demand.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    base_offset: i64,
    last_offset: i64,
    partition_leader_epoch: i32,
    magic: i8,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    last_offset_delta: i32,
    record_count: u32,
    size: usize,
    compression: Compression,
    timestamp_type: TimestampType,
    body: Body,
    limits: DecompressionLimits,
}

#[derive(Debug, Clone)]
enum Body {
    /// The records section as it is on the wire (compressed or not).
    V2(Bytes),
    Legacy(legacy::LegacyRecords),
}

impl RecordBatch {
    fn read_v2(entry: Bytes, limits: DecompressionLimits, verify: bool) -> Result<Self, DecodeError> {
        // The caller checked the length, so the header is all there.
        let mut h = Reader::new(entry.slice(..BATCH_HEADER_LEN.min(entry.len())));
        let base_offset = h.i64()?;
        let _batch_length = h.i32()?;
        let partition_leader_epoch = h.i32()?;
        let _magic = h.i8()?;
        let stored_crc = h.u32()?;
        let attributes = h.i16()?;
        let last_offset_delta = h.i32()?;
        let base_timestamp = h.i64()?;
        let max_timestamp = h.i64()?;
        let producer_id = h.i64()?;
        let producer_epoch = h.i16()?;
        let base_sequence = h.i32()?;
        let count = h.i32()?;
        if verify {
            let computed = crc32c::crc32c(&entry[ATTRIBUTES_OFFSET..]);
            if stored_crc != computed {
                return Err(DecodeError::ChecksumMismatch {
                    what: "record batch CRC-32C",
                    stored: stored_crc,
                    computed,
                });
            }
        }
        let codec = (attributes & COMPRESSION_MASK) as u8;
        let compression = Compression::from_id(codec)
            .ok_or(DecodeError::InvalidValue { field: "record batch compression", value: codec.into() })?;
        let record_count = u32::try_from(count).map_err(|_| DecodeError::InvalidValue {
            field: "record batch record count",
            value: count.into(),
        })?;
        Ok(Self {
            base_offset,
            last_offset: base_offset.wrapping_add(last_offset_delta.into()),
            partition_leader_epoch,
            magic: 2,
            attributes,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            last_offset_delta,
            record_count,
            size: entry.len(),
            compression,
            timestamp_type: if attributes & TIMESTAMP_TYPE_BIT != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            body: Body::V2(entry.slice(BATCH_HEADER_LEN..)),
            limits,
        })
    }

    fn from_legacy(l: LegacyBatch, size: usize, limits: DecompressionLimits) -> Self {
        Self {
            base_offset: l.base_offset,
            last_offset: l.last_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            magic: l.magic,
            attributes: l.attributes.into(),
            base_timestamp: l.timestamp,
            max_timestamp: l.timestamp,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            last_offset_delta: l.last_offset.wrapping_sub(l.base_offset) as i32,
            record_count: l.count,
            size,
            compression: l.compression,
            timestamp_type: l.timestamp_type,
            body: Body::Legacy(l.records),
            limits,
        }
    }

    /// The offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The offset of the last record, as the header says (`baseOffset + lastOffsetDelta`).
    /// Compaction may have removed records, so there may be no record at this offset, but
    /// the next batch starts after it.
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// The offset after this batch: where a consumer continues.
    pub fn next_offset(&self) -> i64 {
        self.last_offset.wrapping_add(1)
    }

    /// `lastOffsetDelta` (for legacy entries, last minus base offset).
    pub fn last_offset_delta(&self) -> i32 {
        self.last_offset_delta
    }

    /// The leader epoch of the partition when the batch was appended (`-1` if unknown, and for
    /// legacy entries).
    pub fn partition_leader_epoch(&self) -> i32 {
        self.partition_leader_epoch
    }

    /// The message format version: 2 for record batches, 0 or 1 for legacy entries.
    pub fn magic(&self) -> i8 {
        self.magic
    }

    /// The raw attributes (the legacy attribute byte for magic 0 and 1).
    pub fn attributes(&self) -> i16 {
        self.attributes
    }

    /// The codec the records are compressed with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Which time the record timestamps are.
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.magic >= 2 && self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers) rather than data.
    pub fn is_control(&self) -> bool {
        self.magic >= 2 && self.attributes & CONTROL_BIT != 0
    }

    /// The time after which the log cleaner may remove the batch's tombstones and markers,
    /// when it has set one (KIP-534). The base timestamp field then holds it, and record
    /// timestamps remain relative to that field.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.magic >= 2 && self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    /// The `baseTimestamp` field: the first record's timestamp (or the delete horizon); for
    /// legacy entries their timestamp.
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp
    }

    /// The largest record timestamp, or the log-append time under
    /// [`TimestampType::LogAppendTime`].
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The producer id (`-1` when the producer is neither idempotent nor transactional).
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// The producer epoch (`-1` when none).
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// The sequence number of the first record (`-1` when none).
    pub fn base_sequence(&self) -> i32 {
        self.base_sequence
    }

    /// The sequence number of the last record (`-1` when none); sequences wrap from
    /// `i32::MAX` to 0.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// How many records the batch holds, as its header says.
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// The size of the batch on the wire, header included.
    pub fn size_in_bytes(&self) -> usize {
        self.size
    }

    /// The records, decompressing them first when the batch is compressed (each call
    /// decompresses again). A compressed batch whose codec is not built in gives
    /// [`DecodeError::CompressionNotEnabled`]; the header fields above stay usable, so a
    /// consumer can still step over it.
    pub fn records(&self) -> Result<Records, DecodeError> {
        match &self.body {
            Body::Legacy(records) => Ok(Records::legacy(records.clone())),
            Body::V2(_) if self.record_count == 0 => Ok(Records::empty()),
            Body::V2(raw) => {
                let data = match self.compression {
                    Compression::None => raw.clone(),
                    codec => codec.decompress(raw, &self.limits)?,
                };
                if self.record_count as usize > data.len() / MIN_RECORD_SIZE {
                    return Err(DecodeError::InvalidLength {
                        length: self.record_count.into(),
                        remaining: data.len(),
                    });
                }
                let base = RecordBase {
                    base_offset: self.base_offset,
                    base_timestamp: self.base_timestamp,
                    log_append_time: (self.timestamp_type == TimestampType::LogAppendTime)
                        .then_some(self.max_timestamp),
                };
                Ok(Records::v2(data, self.record_count, base))
            }
        }
    }

    /// For a control batch, its control record (the key of its first record): a transaction
    /// commit or abort marker, or a KRaft-internal record. `None` for data batches.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, DecodeError> {
        if !self.is_control() {
            return Ok(None);
        }
        let record = self
            .records()?
            .next()
            .ok_or(DecodeError::InvalidValue { field: "control batch record count", value: 0 })??;
        let key = record.key().ok_or(DecodeError::UnexpectedNull { field: "control record key" })?;
        ControlRecord::parse(key).map(Some)
    }
}

/// Kafka's sequence arithmetic: `base + delta`, wrapping from `i32::MAX` to 0; `-1` stays.
pub(crate) fn increment_sequence(base: i32, delta: i32) -> i32 {
    if base < 0 {
        return NO_SEQUENCE;
    }
    // As Java's int arithmetic: a negative delta from the wire wraps rather than overflows.
    if base > i32::MAX.wrapping_sub(delta) {
        delta.wrapping_sub(i32::MAX - base).wrapping_sub(1)
    } else {
        base.wrapping_add(delta)
    }
}
