//! Writing a record batch (magic 2): records go straight into one buffer behind a header that
//! is filled in when the batch is finished.
//!
//! The layout is the one [`batch`](super::batch) reads
//! (<https://kafka.apache.org/documentation/#recordbatch>). The builder reserves the 61-byte
//! header, appends each record in its final encoding (its length is computed first, so no
//! record is built twice or copied), and on [`RecordBatchBuilder::finish`] compresses the
//! records section if asked (the compressor reads the records where they were written and
//! writes into the batch buffer), then writes the count, `lastOffsetDelta`, the timestamps,
//! `batchLength` and the CRC-32C. As in Kafka's producer, the first record's timestamp is the
//! base timestamp and offsets are deltas from the base offset (0 for a producer; the broker
//! assigns the real one).

use bytes::{BufMut, BytesMut};

use crate::codec::{varint_len, varlong_len, Writer};
use crate::compression::Compression;
use crate::error::EncodeError;
use crate::records::batch::{
    ATTRIBUTES_OFFSET, CONTROL_BIT, CRC_OFFSET, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::records::{
    BATCH_HEADER_LEN, LOG_OVERHEAD, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE, NO_TIMESTAMP,
};

/// Builds one record batch.
///
/// ```
/// # #[cfg(feature = "gzip")] {
/// use klamm_protocol::compression::Compression;
/// use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};
///
/// let mut batch = RecordBatchBuilder::new()
///     .producer(4000, 0, 17)
///     .compression(Compression::Gzip);
/// batch.push(1_700_000_000_000, Some(&b"k1"[..]), Some(&b"v1"[..])).unwrap();
/// batch.push_with_headers(1_700_000_000_005, None, Some(&b"v2"[..]), [("h", Some("x"))]).unwrap();
/// let data = batch.finish().unwrap().freeze();
///
/// let batch = RecordBatches::new(data).next().unwrap().unwrap();
/// assert_eq!((batch.record_count(), batch.last_sequence()), (2, 18));
/// assert_eq!(batch.max_timestamp(), 1_700_000_000_005);
/// # }
/// ```
#[derive(Debug)]
pub struct RecordBatchBuilder {
    buf: BytesMut,
    /// Where this batch starts in `buf`.
    start: usize,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    compression: Compression,
    level: Option<i32>,
    log_append_time: Option<i64>,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    count: i32,
    last_offset_delta: i32,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    /// An empty batch in a new buffer: base offset 0, no producer id, create time, no
    /// compression.
    pub fn new() -> Self {
        Self::with_buffer(BytesMut::new())
    }

    /// An empty batch appended to `buf` after what it already holds (so several batches can
    /// share one buffer); [`RecordBatchBuilder::finish`] returns the whole buffer.
    pub fn with_buffer(mut buf: BytesMut) -> Self {
        let start = buf.len();
        buf.put_bytes(0, BATCH_HEADER_LEN);
        Self {
            buf,
            start,
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            compression: Compression::None,
            level: None,
            log_append_time: None,
            base_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
            count: 0,
            last_offset_delta: -1,
        }
    }

    /// Sets the base offset (0 by default; producers leave it, brokers assign offsets).
    pub fn base_offset(mut self, offset: i64) -> Self {
        self.base_offset = offset;
        self
    }

    /// Sets the partition leader epoch (`-1` by default, what producers send).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the idempotent producer's id, epoch and the sequence number of the first record.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch (see [`end_transaction_batch`](super::end_transaction_batch)).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Compresses the records with `codec` when the batch is finished.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// The compression level (the codec's default when `None`); see
    /// [`Compression::compress_with_level`].
    pub fn compression_level(mut self, level: Option<i32>) -> Self {
        self.level = level;
        self
    }

    /// Marks the batch as log-append time with this time as its max timestamp, which every
    /// record then reads as its timestamp (what a broker does under
    /// `message.timestamp.type=LogAppendTime`).
    pub fn log_append_time(mut self, time: i64) -> Self {
        self.log_append_time = Some(time);
        self
    }

    /// How many records were pushed.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size of the batch so far, uncompressed, header included.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends a record without headers at the next offset.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), EncodeError> {
        self.push_with_headers(timestamp, key, value, std::iter::empty::<(&[u8], Option<&[u8]>)>())
    }

    /// Appends a record at the next offset. `headers` yields `(key, value)` pairs and is walked
    /// twice (to size the record, then to write it), so it must be cloneable, as a slice or
    /// array iterator, or a `map` over one, is.
    pub fn push_with_headers<H, K, V>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<(), EncodeError>
    where
        H: IntoIterator<Item = (K, Option<V>)>,
        H::IntoIter: Clone,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let delta = self
            .last_offset_delta
            .checked_add(1)
            .ok_or(EncodeError::InvalidValue { field: "offset delta", reason: "the batch is full" })?;
        self.push_at(delta, timestamp, key, value, headers)
    }

    /// Appends a record at `base_offset + offset_delta`. Deltas must increase from record to
    /// record; gaps are allowed (compacted data has them).
    pub fn push_at<H, K, V>(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<(), EncodeError>
    where
        H: IntoIterator<Item = (K, Option<V>)>,
        H::IntoIter: Clone,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if offset_delta <= self.last_offset_delta {
            return Err(EncodeError::InvalidValue {
                field: "offset delta",
                reason: "offsets in a batch must increase",
            });
        }
        if self.count == i32::MAX {
            return Err(EncodeError::InvalidValue { field: "record count", reason: "the batch is full" });
        }
        let headers = headers.into_iter();
        let mut header_count = 0usize;
        let mut header_size = 0usize;
        for (k, v) in headers.clone() {
            header_size += blob_size(Some(k.as_ref()), "header key")?;
            header_size += blob_size(v.as_ref().map(AsRef::as_ref), "header value")?;
            header_count += 1;
        }
        let header_count = i32::try_from(header_count)
            .map_err(|_| EncodeError::TooLong { what: "headers", length: header_count })?;
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(base_timestamp);
        let body = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + blob_size(key, "key")?
            + blob_size(value, "value")?
            + varint_len(header_count)
            + header_size;
        let body_len =
            i32::try_from(body).map_err(|_| EncodeError::TooLong { what: "record", length: body })?;

        let before = self.buf.len();
        self.buf.reserve(varint_len(body_len) + body);
        let mut w = Writer::new(&mut self.buf);
        w.varint(body_len);
        w.i8(0); // attributes
        w.varlong(timestamp_delta);
        w.varint(offset_delta);
        put_blob(&mut w, key);
        put_blob(&mut w, value);
        w.varint(header_count);
        for (k, v) in headers {
            put_blob(&mut w, Some(k.as_ref()));
            put_blob(&mut w, v.as_ref().map(AsRef::as_ref));
        }
        if self.buf.len() - before != varint_len(body_len) + body {
            self.buf.truncate(before);
            return Err(EncodeError::InvalidValue {
                field: "record headers",
                reason: "the headers iterator yielded different headers when walked again",
            });
        }
        self.count += 1;
        self.last_offset_delta = offset_delta;
        self.max_timestamp = if self.count == 1 { timestamp } else { self.max_timestamp.max(timestamp) };
        Ok(())
    }

    /// Finishes the batch: compresses the records if asked, fills in the header and the
    /// CRC-32C, and returns the buffer (with whatever it held before the batch).
    pub fn finish(self) -> Result<BytesMut, EncodeError> {
        let Self { mut buf, start, .. } = self;
        let records_at = start + BATCH_HEADER_LEN;
        let mut attributes = i16::from(self.compression.id());
        if self.count > 0 && self.compression != Compression::None {
            // The compressor reads the records in place and writes behind the header.
            let records = buf.split_off(records_at);
            self.compression.compress_with_level(&records, self.level, &mut buf)?;
        } else {
            attributes = 0;
        }
        if self.log_append_time.is_some() {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        let size = buf.len() - start;
        let batch_length = i32::try_from(size - LOG_OVERHEAD)
            .map_err(|_| EncodeError::TooLong { what: "record batch", length: size })?;
        let max_timestamp = self.log_append_time.unwrap_or(self.max_timestamp);
        let last_offset_delta = self.last_offset_delta.max(0);

        let h = &mut buf[start..records_at];
        h[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[16] = 2;
        h[ATTRIBUTES_OFFSET..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp.unwrap_or(NO_TIMESTAMP).to_be_bytes());
        h[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&buf[start + ATTRIBUTES_OFFSET..]);
        buf[start + CRC_OFFSET..start + ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        Ok(buf)
    }
}

/// Rewrites the producer id, epoch and base sequence of a finished magic-2 batch in place and
/// recomputes its CRC-32C. A producer needs this when it re-sequences batches it already built
/// (after bumping its epoch), without encoding or compressing the records again.
///
/// Fails, leaving `batch` unchanged, when it is not one whole magic-2 batch.
pub fn set_producer_state(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), crate::error::DecodeError> {
    use crate::error::DecodeError;
    if batch.len() < BATCH_HEADER_LEN {
        return Err(DecodeError::UnexpectedEnd { needed: BATCH_HEADER_LEN, remaining: batch.len() });
    }
    let length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]);
    if usize::try_from(length).ok().and_then(|l| l.checked_add(LOG_OVERHEAD)) != Some(batch.len()) {
        return Err(DecodeError::InvalidValue { field: "batch_length", value: i64::from(length) });
    }
    if batch[crate::records::MAGIC_OFFSET] != 2 {
        return Err(DecodeError::InvalidValue { field: "magic", value: i64::from(batch[16] as i8) });
    }
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The encoded size of a varint-length byte string.
#[inline]
fn blob_size(b: Option<&[u8]>, what: &'static str) -> Result<usize, EncodeError> {
    match b {
        None => Ok(1),
        Some(b) => {
            let n = i32::try_from(b.len()).map_err(|_| EncodeError::TooLong { what, length: b.len() })?;
            Ok(varint_len(n) + b.len())
        }
    }
}

/// Writes a varint-length byte string (`-1` for null); its length was checked by [`blob_size`].
#[inline]
fn put_blob(w: &mut Writer<'_>, b: Option<&[u8]>) {
    match b {
        None => w.varint(-1),
        Some(b) => {
            w.varint(b.len() as i32);
            w.raw(b);
        }
    }
}
