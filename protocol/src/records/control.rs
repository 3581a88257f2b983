//! Control records: the transaction markers a transaction coordinator writes into each
//! partition of a transaction (KIP-98), and the KRaft-internal records of metadata logs.
//!
//! A control record lives in a batch with the control attribute bit set. Its key is
//! `version` (int16, 0) and `type` (int16: 0 ABORT, 1 COMMIT, other values for KRaft); the
//! value of an ABORT or COMMIT marker is `version` (int16, 0) and `coordinatorEpoch` (int32).
//! See `ControlRecordType` and `EndTransactionMarker` in Apache Kafka. A consumer reading
//! `read_committed` uses the markers to drop aborted records and never shows control records
//! to the application.

use bytes::BytesMut;

use crate::error::{DecodeError, EncodeError};
use crate::records::builder::RecordBatchBuilder;

/// What a control record marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The producer's transaction was aborted: drop its records (type 0).
    Abort,
    /// The producer's transaction was committed (type 1).
    Commit,
    /// Another type, used by KRaft metadata logs (leader change, snapshot markers, voters).
    Other(i16),
}

impl ControlRecordType {
    /// The type code in the record key.
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(code) => code,
        }
    }

    /// The type with this code.
    pub fn from_code(code: i16) -> Self {
        match code {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }
    }
}

/// The key of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// The key version (0 today).
    pub version: i16,
    /// What the record marks.
    pub kind: ControlRecordType,
}

impl ControlRecord {
    /// The size of an encoded key.
    pub const KEY_LEN: usize = 4;

    /// A version 0 key of this type.
    pub fn new(kind: ControlRecordType) -> Self {
        Self { version: 0, kind }
    }

    /// Reads a control record key. Bytes after the type (a future version's fields) are
    /// ignored; a negative version is invalid.
    pub fn parse(key: &[u8]) -> Result<Self, DecodeError> {
        let Some(&[v0, v1, t0, t1]) = key.first_chunk::<4>() else {
            return Err(DecodeError::UnexpectedEnd { needed: Self::KEY_LEN, remaining: key.len() });
        };
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(DecodeError::InvalidValue { field: "control record version", value: version.into() });
        }
        Ok(Self { version, kind: ControlRecordType::from_code(i16::from_be_bytes([t0, t1])) })
    }

    /// The encoded key.
    pub fn to_key(&self) -> [u8; 4] {
        let [v0, v1] = self.version.to_be_bytes();
        let [t0, t1] = self.kind.code().to_be_bytes();
        [v0, v1, t0, t1]
    }
}

/// The value of an ABORT or COMMIT control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTransactionMarker {
    /// The value version (0 today).
    pub version: i16,
    /// The epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// The size of an encoded version 0 value.
    pub const VALUE_LEN: usize = 6;

    /// Reads a marker value (bytes after the coordinator epoch are ignored).
    pub fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        let Some(&[v0, v1, e0, e1, e2, e3]) = value.first_chunk::<6>() else {
            return Err(DecodeError::UnexpectedEnd { needed: Self::VALUE_LEN, remaining: value.len() });
        };
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(DecodeError::InvalidValue {
                field: "end transaction marker version",
                value: version.into(),
            });
        }
        Ok(Self { version, coordinator_epoch: i32::from_be_bytes([e0, e1, e2, e3]) })
    }

    /// The encoded value.
    pub fn to_value(&self) -> [u8; 6] {
        let [v0, v1] = self.version.to_be_bytes();
        let [e0, e1, e2, e3] = self.coordinator_epoch.to_be_bytes();
        [v0, v1, e0, e1, e2, e3]
    }
}

/// Encodes the batch a transaction coordinator writes to end a transaction: one transactional
/// control record, COMMIT or ABORT, at `base_offset`. Clients never write these; tests and
/// fake brokers do.
///
/// ```
/// use klamm_protocol::records::{end_transaction_batch, ControlRecordType, RecordBatches};
///
/// let data = end_transaction_batch(ControlRecordType::Commit, 7, 1000, 3, 5, 1_700_000_000_000).unwrap();
/// let batch = RecordBatches::new(data.freeze()).next().unwrap().unwrap();
/// assert!(batch.is_control() && batch.is_transactional());
/// assert_eq!(batch.control_record().unwrap().unwrap().kind, ControlRecordType::Commit);
/// ```
pub fn end_transaction_batch(
    kind: ControlRecordType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    base_offset: i64,
    timestamp: i64,
) -> Result<BytesMut, EncodeError> {
    let mut batch = RecordBatchBuilder::new()
        .base_offset(base_offset)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true);
    let key = ControlRecord::new(kind).to_key();
    let value = EndTransactionMarker { version: 0, coordinator_epoch }.to_value();
    batch.push(timestamp, Some(&key), Some(&value))?;
    batch.finish()
}
