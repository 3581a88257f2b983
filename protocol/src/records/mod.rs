//! Record data: record batches (magic 2) read and written, legacy message sets (magic 0 and
//! 1) read, control records, and the record view all of them share.
//!
//! Implements <https://kafka.apache.org/documentation/#recordbatch> (and the message set
//! formats before it) as Apache Kafka's `DefaultRecordBatch`, `DefaultRecord`, `LegacyRecord`
//! and `AbstractLegacyRecordBatch` define them.
//!
//! - Reading: [`RecordBatches`] walks a partition's record data (the `records` bytes of a
//!   Fetch response or Produce request) and yields each [`RecordBatch`] with its header
//!   fields; [`RecordBatch::records`] yields its [`Record`]s. Checksums are verified; a batch
//!   cut short at the end of the data ends the iteration quietly; compressed records are
//!   decompressed once, under [`DecompressionLimits`], into one buffer. Keys, values and
//!   headers are zero-copy [`bytes::Bytes`] slices, and reading allocates nothing per record.
//! - Writing: [`RecordBatchBuilder`] appends records straight into a buffer and fills in the
//!   header, compression and CRC when finished. [`end_transaction_batch`] writes transaction
//!   markers.
//!
//! Untrusted input never makes a reader panic, allocate beyond what the input (and the
//! decompression limits) justify, or overflow: offsets and timestamps are the base plus the
//! delta in wrapping arithmetic, as Kafka computes them.
//!
//! ```
//! # #[cfg(feature = "lz4")] {
//! use klamm_protocol::compression::Compression;
//! use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};
//!
//! let mut builder = RecordBatchBuilder::new().compression(Compression::Lz4);
//! for i in 0..3u8 {
//!     builder.push(1_700_000_000_000 + i64::from(i), None, Some(&[i][..])).unwrap();
//! }
//! let data = builder.finish().unwrap().freeze();
//!
//! let mut values = Vec::new();
//! for batch in RecordBatches::new(data) {
//!     for record in batch.unwrap().records().unwrap() {
//!         values.push(record.unwrap().value().unwrap()[0]);
//!     }
//! }
//! assert_eq!(values, [0, 1, 2]);
//! # }
//! ```

mod batch;
mod builder;
mod control;
mod legacy;
mod record;

#[cfg(test)]
mod tests;

pub use crate::compression::{Compression, DecompressionLimits};
pub use batch::{RecordBatch, RecordBatches};
pub use builder::{set_producer_state, RecordBatchBuilder};
pub use control::{end_transaction_batch, ControlRecord, ControlRecordType, EndTransactionMarker};
pub use record::{Header, HeaderRef, HeadersIter, Record, RecordHeaders, Records};

/// `producerId` of a producer that is neither idempotent nor transactional.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` when there is no producer id.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` when there is no producer id.
pub const NO_SEQUENCE: i32 = -1;
/// A timestamp that is not there.
pub const NO_TIMESTAMP: i64 = -1;
/// `partitionLeaderEpoch` when unknown (what producers write).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// The offset and length fields before every batch or legacy message.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Where the magic byte is, in batches and legacy messages alike.
pub(crate) const MAGIC_OFFSET: usize = 16;
/// The size of a magic 2 batch header, up to and including the record count.
pub(crate) const BATCH_HEADER_LEN: usize = 61;

/// Which time a record's timestamp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Magic 0 data has no timestamps.
    NotAvailable,
    /// The time the producer created the record.
    CreateTime,
    /// The time the broker appended the batch (the batch's max timestamp).
    LogAppendTime,
}
