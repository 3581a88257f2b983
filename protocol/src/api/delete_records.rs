//! DeleteRecords (key 21): moves the log start offset of partitions forward, deleting the
//! records before it.
//!
//! Versions:
//! - v0: per-partition deletion offsets and a timeout; the response has each partition's new
//!   low watermark.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Deletes the records before an offset in each partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsRequest {
    /// The topics to delete records from.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<DeleteRecordsTopic>,
    /// How long to wait for the deletion, in milliseconds.
    pub timeout_ms: i32,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions of one topic to delete records from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsTopic {
    /// The topic name.
    pub name: String,
    /// The partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<DeleteRecordsPartition>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition to delete records from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsPartition {
    /// The partition index.
    pub partition_index: i32,
    /// Records before this offset are deleted (-1 for the high watermark).
    pub offset: i64,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DeleteRecordsPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i64(self.offset);
        if version >= 2 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            offset: r.i64()?,
            unknown_tagged_fields: if version >= 2 {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for DeleteRecordsTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            partitions: r.array(flexible, "partitions", |r| DeleteRecordsPartition::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DeleteRecordsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        w.i32(self.timeout_ms);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            topics: r.array(flexible, "topics", |r| DeleteRecordsTopic::decode(r, version))?,
            timeout_ms: r.i32()?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteRecordsRequest {
    const API_KEY: ApiKey = ApiKey::DELETE_RECORDS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for DeleteRecordsRequest {
    type Response = DeleteRecordsResponse;
}

/// The result of deleting records in each partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<DeleteRecordsTopicResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsTopicResult {
    /// The topic name.
    pub name: String,
    /// One result per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<DeleteRecordsPartitionResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteRecordsPartitionResult {
    /// The partition index.
    pub partition_index: i32,
    /// The partition's low watermark after the deletion.
    pub low_watermark: i64,
    /// The error code, or 0.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DeleteRecordsPartitionResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i64(self.low_watermark);
        w.i16(self.error_code);
        if version >= 2 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsPartitionResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            low_watermark: r.i64()?,
            error_code: r.i16()?,
            unknown_tagged_fields: if version >= 2 {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for DeleteRecordsTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| DeleteRecordsPartitionResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DeleteRecordsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.throttle_time_ms);
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteRecordsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            topics: r.array(flexible, "topics", |r| DeleteRecordsTopicResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteRecordsResponse {
    const API_KEY: ApiKey = ApiKey::DELETE_RECORDS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for DeleteRecordsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DeleteRecordsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DeleteRecordsResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        let req = DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: "t".into(),
                partitions: vec![DeleteRecordsPartition {
                    partition_index: 2,
                    offset: 10,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 1, // one topic
            0, 1, b't', // name
            0, 0, 0, 1, // one partition
            0, 0, 0, 2, // partition_index
            0, 0, 0, 0, 0, 0, 0, 10, // offset
            0, 0, 0x75, 0x30, // timeout_ms 30000
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DeleteRecordsRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn response_v2_by_hand() {
        let resp = DeleteRecordsResponse {
            throttle_time_ms: 0,
            topics: vec![DeleteRecordsTopicResult {
                name: "t".into(),
                partitions: vec![DeleteRecordsPartitionResult {
                    partition_index: 0,
                    low_watermark: 10,
                    error_code: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 0, // throttle_time_ms
            2, // one topic
            2, b't', // name
            2,    // one partition
            0, 0, 0, 0, // partition_index
            0, 0, 0, 0, 0, 0, 0, 10, // low_watermark
            0, 0, // error_code
            0, // partition tags
            0, // topic tags
            0, // response tags
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DeleteRecordsResponse::decode_body(Bytes::from_static(expected), 2).unwrap(), resp);
    }
}
