//! ListOffsets (key 2): finds the offset of a partition for a timestamp, or its earliest or
//! latest offset (timestamps -2 and -1, and the other special values later versions add).
//!
//! Versions:
//! - v0: any number of offsets before a timestamp (`max_num_offsets`), returned in
//!   `old_style_offsets`.
//! - v1: a single offset per partition: the response adds `timestamp` and `offset`, and
//!   `max_num_offsets` / `old_style_offsets` are gone.
//! - v2: the request adds `isolation_level`, the response `throttle_time_ms`.
//! - v3: same layout; responses are sent before throttling.
//! - v4: the request adds `current_leader_epoch` (fencing), the response `leader_epoch`.
//! - v5: same layout; OFFSET_NOT_AVAILABLE may be returned.
//! - v6: first flexible version.
//! - v7: same layout; timestamp -3 asks for the offset of the largest timestamp (KIP-734).
//! - v8: same layout; timestamp -4 asks for the local log start offset (KIP-405).
//! - v9: same layout; timestamp -5 asks for the last tiered offset (KIP-1005).
//! - v10: the request adds `timeout_ms` for remote-storage lookups (KIP-1075).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 6;

/// Asks for offsets by timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsRequest {
    /// The requesting broker's id, or -1 for a consumer.
    pub replica_id: i32,
    /// 0 for READ_UNCOMMITTED, 1 for READ_COMMITTED (v2+).
    pub isolation_level: i8,
    /// The topics to look up.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<ListOffsetsTopic>,
    /// How long a lookup in remote storage may take, in milliseconds (v10+, ignorable).
    pub timeout_ms: i32,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic to look up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsTopic {
    /// The topic name.
    pub name: String,
    /// The partitions to look up.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<ListOffsetsPartition>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsPartition {
    /// The partition index.
    pub partition_index: i32,
    /// The leader epoch the client knows, for fencing (v4+, ignorable).
    pub current_leader_epoch: i32,
    /// The timestamp to look up, or a special value (-1 latest, -2 earliest, ...).
    pub timestamp: i64,
    /// How many offsets to return (v0 only).
    pub max_num_offsets: i32,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ListOffsetsPartition {
    fn default() -> Self {
        Self {
            partition_index: 0,
            current_leader_epoch: -1,
            timestamp: 0,
            max_num_offsets: 1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for ListOffsetsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.replica_id);
        if version >= 2 {
            w.i8(self.isolation_level);
        } else if self.isolation_level != 0 {
            w.unavailable("isolation_level", version)?;
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        // Ignorable: dropped silently before v10.
        if version >= 10 {
            w.i32(self.timeout_ms);
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { replica_id: r.i32()?, ..Self::default() };
        if version >= 2 {
            out.isolation_level = r.i8()?;
        }
        out.topics = r.array(flexible, "topics", |r| ListOffsetsTopic::decode(r, version))?;
        if version >= 10 {
            out.timeout_ms = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for ListOffsetsTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r.array(flexible, "partitions", |r| ListOffsetsPartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for ListOffsetsPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition_index);
        if version >= 4 {
            w.i32(self.current_leader_epoch);
        }
        w.i64(self.timestamp);
        if version == 0 {
            w.i32(self.max_num_offsets);
        } else if self.max_num_offsets != 1 {
            w.unavailable("max_num_offsets", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { partition_index: r.i32()?, ..Self::default() };
        if version >= 4 {
            out.current_leader_epoch = r.i32()?;
        }
        out.timestamp = r.i64()?;
        if version == 0 {
            out.max_num_offsets = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ListOffsetsRequest {
    const API_KEY: ApiKey = ApiKey::LIST_OFFSETS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 10;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for ListOffsetsRequest {
    type Response = ListOffsetsResponse;
}

/// The offsets found, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsResponse {
    /// Throttle time in milliseconds (v2+, ignorable).
    pub throttle_time_ms: i32,
    /// The results, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<ListOffsetsTopicResponse>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsTopicResponse {
    /// The topic name.
    pub name: String,
    /// The results, per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<ListOffsetsPartitionResponse>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsPartitionResponse {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, 0 for none.
    pub error_code: i16,
    /// The offsets found (v0 only).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub old_style_offsets: Vec<i64>,
    /// The timestamp of the offset found, or -1 (v1+).
    pub timestamp: i64,
    /// The offset found, or -1 (v1+).
    pub offset: i64,
    /// The leader epoch of the offset found, or -1 (v4+).
    pub leader_epoch: i32,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ListOffsetsPartitionResponse {
    fn default() -> Self {
        Self {
            partition_index: 0,
            error_code: 0,
            old_style_offsets: Vec::new(),
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for ListOffsetsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // Ignorable: dropped silently before v2.
        if version >= 2 {
            w.i32(self.throttle_time_ms);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 2 {
            out.throttle_time_ms = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| ListOffsetsTopicResponse::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for ListOffsetsTopicResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsTopicResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| ListOffsetsPartitionResponse::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for ListOffsetsPartitionResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition_index);
        w.i16(self.error_code);
        if version == 0 {
            w.array(&self.old_style_offsets, flexible, |w, o| {
                w.i64(*o);
                Ok(())
            })?;
        } else if !self.old_style_offsets.is_empty() {
            w.unavailable("old_style_offsets", version)?;
        }
        if version >= 1 {
            w.i64(self.timestamp);
            w.i64(self.offset);
        } else {
            if self.timestamp != -1 {
                w.unavailable("timestamp", version)?;
            }
            if self.offset != -1 {
                w.unavailable("offset", version)?;
            }
        }
        if version >= 4 {
            w.i32(self.leader_epoch);
        } else if self.leader_epoch != -1 {
            w.unavailable("leader_epoch", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListOffsetsPartitionResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { partition_index: r.i32()?, error_code: r.i16()?, ..Self::default() };
        if version == 0 {
            out.old_style_offsets = r.array(flexible, "old_style_offsets", |r| r.i64())?;
        }
        if version >= 1 {
            out.timestamp = r.i64()?;
            out.offset = r.i64()?;
        }
        if version >= 4 {
            out.leader_epoch = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ListOffsetsResponse {
    const API_KEY: ApiKey = ApiKey::LIST_OFFSETS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 10;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for ListOffsetsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode, round_trip_all_versions};
    use bytes::Bytes;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ListOffsetsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ListOffsetsResponse>();
    }

    #[test]
    fn v0_request_by_hand() {
        let req = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: "t".into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 1,
                    timestamp: -2,
                    max_num_offsets: 3,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xff, 0xff, 0xff, 0xff,     // replica_id -1
            0, 0, 0, 1,                 // one topic
            0, 1, b't',                 // name
            0, 0, 0, 1,                 // one partition
            0, 0, 0, 1,                 // partition_index
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // timestamp -2 (earliest)
            0, 0, 0, 3,                 // max_num_offsets
        ];
        assert_eq!(&encode(&req, 0).unwrap()[..], expected);
        assert_eq!(ListOffsetsRequest::decode_body(Bytes::copy_from_slice(expected), 0).unwrap(), req);
    }

    #[test]
    fn v6_response_by_hand() {
        let resp = ListOffsetsResponse {
            throttle_time_ms: 1,
            topics: vec![ListOffsetsTopicResponse {
                name: "t".into(),
                partitions: vec![ListOffsetsPartitionResponse {
                    partition_index: 0,
                    error_code: 0,
                    timestamp: -1,
                    offset: 300,
                    leader_epoch: 5,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 1,                 // throttle_time_ms
            2,                          // one topic
            2, b't',                    // name
            2,                          // one partition
            0, 0, 0, 0,                 // partition_index
            0, 0,                       // error_code
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // timestamp -1
            0, 0, 0, 0, 0, 0, 0x01, 0x2c, // offset 300
            0, 0, 0, 5,                 // leader_epoch
            0,                          // partition tags
            0,                          // topic tags
            0,                          // response tags
        ];
        assert_eq!(&encode(&resp, 6).unwrap()[..], expected);
        assert_eq!(ListOffsetsResponse::decode_body(Bytes::copy_from_slice(expected), 6).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = ListOffsetsRequest { isolation_level: 1, ..Default::default() };
        assert_eq!(
            encode(&req, 1),
            Err(EncodeError::FieldNotAvailable { field: "isolation_level", version: 1 })
        );
        let req = ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                partitions: vec![ListOffsetsPartition { max_num_offsets: 5, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            encode(&req, 1),
            Err(EncodeError::FieldNotAvailable { field: "max_num_offsets", version: 1 })
        );
        let resp = ListOffsetsResponse {
            topics: vec![ListOffsetsTopicResponse {
                partitions: vec![ListOffsetsPartitionResponse { offset: 7, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(encode(&resp, 0), Err(EncodeError::FieldNotAvailable { field: "offset", version: 0 }));
        // Ignorable fields are dropped silently.
        let req = ListOffsetsRequest { timeout_ms: 100, ..Default::default() };
        assert!(encode(&req, 9).is_ok());
    }
}
