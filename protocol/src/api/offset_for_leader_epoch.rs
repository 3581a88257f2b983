//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, used to detect log
//! truncation after a leader change (KIP-101, KIP-320).
//!
//! Versions:
//! - v0: topics and partitions with the epoch to look up; the response gives its end offset.
//! - v1: the response adds `leader_epoch`.
//! - v2: the request adds `current_leader_epoch` (fencing), the response `throttle_time_ms`.
//! - v3: the request adds `replica_id` (-2 is a debug consumer, -1 a normal consumer).
//! - v4: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 4;

/// Asks for the end offsets of leader epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetForLeaderEpochRequest {
    /// The requesting follower's broker id, -1 for a consumer, -2 for a debug consumer (v3+,
    /// ignorable).
    pub replica_id: i32,
    /// The topics to look up.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetForLeaderTopic>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetForLeaderEpochRequest {
    fn default() -> Self {
        Self { replica_id: -2, topics: Vec::new(), unknown_tagged_fields: TaggedFields::default() }
    }
}

/// One topic to look up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetForLeaderTopic {
    /// The topic name.
    pub topic: String,
    /// The partitions to look up.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetForLeaderPartition>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetForLeaderPartition {
    /// The partition index.
    pub partition: i32,
    /// The leader epoch the client knows, for fencing (v2+, ignorable).
    pub current_leader_epoch: i32,
    /// The epoch whose end offset is wanted.
    pub leader_epoch: i32,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetForLeaderPartition {
    fn default() -> Self {
        Self {
            partition: 0,
            current_leader_epoch: -1,
            leader_epoch: 0,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for OffsetForLeaderEpochRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // Ignorable: dropped silently before v3.
        if version >= 3 {
            w.i32(self.replica_id);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetForLeaderEpochRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 3 {
            out.replica_id = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| OffsetForLeaderTopic::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for OffsetForLeaderTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.topic, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetForLeaderTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            topic: r.string(flexible, "topic")?,
            partitions: r.array(flexible, "partitions", |r| OffsetForLeaderPartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for OffsetForLeaderPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition);
        // Ignorable: dropped silently before v2.
        if version >= 2 {
            w.i32(self.current_leader_epoch);
        }
        w.i32(self.leader_epoch);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetForLeaderPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { partition: r.i32()?, ..Self::default() };
        if version >= 2 {
            out.current_leader_epoch = r.i32()?;
        }
        out.leader_epoch = r.i32()?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetForLeaderEpochRequest {
    const API_KEY: ApiKey = ApiKey::OFFSET_FOR_LEADER_EPOCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for OffsetForLeaderEpochRequest {
    type Response = OffsetForLeaderEpochResponse;
}

/// The end offsets found, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetForLeaderEpochResponse {
    /// Throttle time in milliseconds (v2+, ignorable).
    pub throttle_time_ms: i32,
    /// The results, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetForLeaderTopicResult>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetForLeaderTopicResult {
    /// The topic name.
    pub topic: String,
    /// The results, per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<EpochEndOffset>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EpochEndOffset {
    /// The error code, 0 for none.
    pub error_code: i16,
    /// The partition index.
    pub partition: i32,
    /// The epoch found: the requested one or the largest below it, or -1 (v1+, ignorable).
    pub leader_epoch: i32,
    /// The end offset of that epoch, or -1.
    pub end_offset: i64,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for EpochEndOffset {
    fn default() -> Self {
        Self {
            error_code: 0,
            partition: 0,
            leader_epoch: -1,
            end_offset: -1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for OffsetForLeaderEpochResponse {
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

impl Decode for OffsetForLeaderEpochResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 2 {
            out.throttle_time_ms = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| OffsetForLeaderTopicResult::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for OffsetForLeaderTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.topic, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetForLeaderTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            topic: r.string(flexible, "topic")?,
            partitions: r.array(flexible, "partitions", |r| EpochEndOffset::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for EpochEndOffset {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i16(self.error_code);
        w.i32(self.partition);
        // Ignorable: dropped silently in v0.
        if version >= 1 {
            w.i32(self.leader_epoch);
        }
        w.i64(self.end_offset);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for EpochEndOffset {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { error_code: r.i16()?, partition: r.i32()?, ..Self::default() };
        if version >= 1 {
            out.leader_epoch = r.i32()?;
        }
        out.end_offset = r.i64()?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetForLeaderEpochResponse {
    const API_KEY: ApiKey = ApiKey::OFFSET_FOR_LEADER_EPOCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for OffsetForLeaderEpochResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode, round_trip_all_versions};
    use bytes::Bytes;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<OffsetForLeaderEpochRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<OffsetForLeaderEpochResponse>();
    }

    #[test]
    fn v4_request_by_hand() {
        let req = OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![OffsetForLeaderTopic {
                topic: "t".into(),
                partitions: vec![OffsetForLeaderPartition {
                    partition: 2,
                    current_leader_epoch: 6,
                    leader_epoch: 5,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xff, 0xff, 0xff, 0xff, // replica_id -1
            2,                      // one topic
            2, b't',                // topic
            2,                      // one partition
            0, 0, 0, 2,             // partition
            0, 0, 0, 6,             // current_leader_epoch
            0, 0, 0, 5,             // leader_epoch
            0,                      // partition tags
            0,                      // topic tags
            0,                      // request tags
        ];
        assert_eq!(&encode(&req, 4).unwrap()[..], expected);
        assert_eq!(
            OffsetForLeaderEpochRequest::decode_body(Bytes::copy_from_slice(expected), 4).unwrap(),
            req
        );
    }

    #[test]
    fn v0_response_by_hand() {
        let resp = OffsetForLeaderEpochResponse {
            topics: vec![OffsetForLeaderTopicResult {
                topic: "t".into(),
                partitions: vec![EpochEndOffset {
                    error_code: 0,
                    partition: 1,
                    end_offset: 77,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 1,             // one topic
            0, 1, b't',             // topic
            0, 0, 0, 1,             // one partition
            0, 0,                   // error_code
            0, 0, 0, 1,             // partition
            0, 0, 0, 0, 0, 0, 0, 77, // end_offset
        ];
        assert_eq!(&encode(&resp, 0).unwrap()[..], expected);
        assert_eq!(
            OffsetForLeaderEpochResponse::decode_body(Bytes::copy_from_slice(expected), 0).unwrap(),
            resp
        );
    }

    #[test]
    fn ignorable_fields_are_dropped() {
        // Every field this API added after v0 is ignorable, so there is no field to refuse.
        let req = OffsetForLeaderEpochRequest {
            replica_id: 3,
            topics: vec![OffsetForLeaderTopic {
                partitions: vec![OffsetForLeaderPartition { current_leader_epoch: 4, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(encode(&req, 0).is_ok());
        let decoded = OffsetForLeaderEpochRequest::decode_body(encode(&req, 0).unwrap(), 0).unwrap();
        assert_eq!(decoded.replica_id, -2);
        assert_eq!(decoded.topics[0].partitions[0].current_leader_epoch, -1);
    }
}
