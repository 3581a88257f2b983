//! OffsetCommit (key 8): store the consumed offsets of a group's partitions.
//!
//! Versions:
//! - v0: group id, then per topic and partition the offset and its metadata.
//! - v1: the request adds the generation (or member epoch), the member id and a per-partition
//!   commit timestamp.
//! - v2: the request adds the retention time and drops the commit timestamp.
//! - v3: the response adds `throttle_time_ms`.
//! - v4: same layout; brokers respond before throttling on quota violation.
//! - v5: the request drops the retention time (now a broker setting).
//! - v6: the request adds the committed leader epoch of each partition.
//! - v7: the request adds `group_instance_id` (static membership, KIP-345).
//! - v8: first flexible version.
//! - v9: same layout; usable with the consumer group protocol of KIP-848.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Commits offsets for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitRequest {
    /// The group id.
    pub group_id: String,
    /// The group generation (classic protocol) or member epoch (consumer protocol); -1 by
    /// default (v1+, ignorable).
    pub generation_id_or_member_epoch: i32,
    /// The member id the coordinator assigned (v1+, ignorable).
    pub member_id: String,
    /// The static member id given by the user, if any (v7+).
    pub group_instance_id: Option<String>,
    /// How long to keep the offsets in ms, -1 for the broker default (v2-4, ignorable).
    pub retention_time_ms: i64,
    /// The topics to commit offsets for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetCommitRequestTopic>,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetCommitRequest {
    fn default() -> Self {
        Self {
            group_id: String::new(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics: Vec::new(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One topic of an [`OffsetCommitRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitRequestTopic {
    /// The topic name.
    pub name: String,
    /// The partitions to commit.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetCommitRequestPartition>,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of an [`OffsetCommitRequestTopic`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitRequestPartition {
    /// The partition index.
    pub partition_index: i32,
    /// The offset to commit.
    pub committed_offset: i64,
    /// The leader epoch of the partition, -1 if unknown (v6+, ignorable).
    pub committed_leader_epoch: i32,
    /// The commit timestamp, -1 by default (v1 only).
    pub commit_timestamp: i64,
    /// Metadata the client wants to store with the offset.
    pub committed_metadata: Option<String>,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetCommitRequestPartition {
    fn default() -> Self {
        Self {
            partition_index: 0,
            committed_offset: 0,
            committed_leader_epoch: -1,
            commit_timestamp: -1,
            committed_metadata: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for OffsetCommitRequestPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 8;
        w.i32(self.partition_index);
        w.i64(self.committed_offset);
        if version >= 6 {
            w.i32(self.committed_leader_epoch);
        }
        if version == 1 {
            w.i64(self.commit_timestamp);
        } else if self.commit_timestamp != -1 {
            w.unavailable("commit_timestamp", version)?;
        }
        w.nullable_string(self.committed_metadata.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitRequestPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 8;
        let mut out = Self { partition_index: r.i32()?, committed_offset: r.i64()?, ..Self::default() };
        if version >= 6 {
            out.committed_leader_epoch = r.i32()?;
        }
        if version == 1 {
            out.commit_timestamp = r.i64()?;
        }
        out.committed_metadata = r.nullable_string(flexible)?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for OffsetCommitRequestTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 8;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitRequestTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 8;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| OffsetCommitRequestPartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for OffsetCommitRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 8;
        w.string(&self.group_id, flexible)?;
        // The generation and member id are ignorable: dropped silently at v0.
        if version >= 1 {
            w.i32(self.generation_id_or_member_epoch);
            w.string(&self.member_id, flexible)?;
        }
        if version >= 7 {
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        } else if self.group_instance_id.is_some() {
            w.unavailable("group_instance_id", version)?;
        }
        if (2..=4).contains(&version) {
            w.i64(self.retention_time_ms);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 8;
        let mut out = Self { group_id: r.string(flexible, "group_id")?, ..Self::default() };
        if version >= 1 {
            out.generation_id_or_member_epoch = r.i32()?;
            out.member_id = r.string(flexible, "member_id")?;
        }
        if version >= 7 {
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        if (2..=4).contains(&version) {
            out.retention_time_ms = r.i64()?;
        }
        out.topics = r.array(flexible, "topics", |r| OffsetCommitRequestTopic::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetCommitRequest {
    const API_KEY: ApiKey = ApiKey::OFFSET_COMMIT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(8);
}

impl Request for OffsetCommitRequest {
    type Response = OffsetCommitResponse;
}

/// The result of an offset commit, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitResponse {
    /// Throttle time in milliseconds (v3+, ignorable).
    pub throttle_time_ms: i32,
    /// The results per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetCommitResponseTopic>,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic of an [`OffsetCommitResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitResponseTopic {
    /// The topic name.
    pub name: String,
    /// The results per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetCommitResponsePartition>,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of an [`OffsetCommitResponseTopic`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetCommitResponsePartition {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v8+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for OffsetCommitResponsePartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i16(self.error_code);
        if version >= 8 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitResponsePartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            unknown_tagged_fields: if version >= 8 {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for OffsetCommitResponseTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 8;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitResponseTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 8;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| OffsetCommitResponsePartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for OffsetCommitResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 8;
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetCommitResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 8;
        let mut out = Self::default();
        if version >= 3 {
            out.throttle_time_ms = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| OffsetCommitResponseTopic::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetCommitResponse {
    const API_KEY: ApiKey = ApiKey::OFFSET_COMMIT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(8);
}

impl Response for OffsetCommitResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<OffsetCommitRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<OffsetCommitResponse>();
    }

    #[test]
    fn v1_request_by_hand() {
        let req = OffsetCommitRequest {
            group_id: "g".into(),
            generation_id_or_member_epoch: 3,
            member_id: "m".into(),
            topics: vec![OffsetCommitRequestTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: 2,
                    committed_offset: 100,
                    commit_timestamp: 7,
                    committed_metadata: None,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 1, b'g',             // group_id
            0, 0, 0, 3,             // generation_id_or_member_epoch
            0, 1, b'm',             // member_id
            0, 0, 0, 1,             // topics: 1
            0, 1, b't',             //   name
            0, 0, 0, 1,             //   partitions: 1
            0, 0, 0, 2,             //     partition_index
            0, 0, 0, 0, 0, 0, 0, 100, // committed_offset
            0, 0, 0, 0, 0, 0, 0, 7, //     commit_timestamp
            0xff, 0xff,             //     committed_metadata: null
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetCommitRequest::decode_body(Bytes::from_static(expected), 1).unwrap(), req);
    }

    #[test]
    fn v8_response_by_hand() {
        let resp = OffsetCommitResponse {
            throttle_time_ms: 5,
            topics: vec![OffsetCommitResponseTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitResponsePartition {
                    partition_index: 1,
                    error_code: 25,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 5,     // throttle_time_ms
            2,              // topics: 1 (compact)
            2, b't',        //   name
            2,              //   partitions: 1
            0, 0, 0, 1,     //     partition_index
            0, 25,          //     error_code
            0,              //     tagged fields
            0,              //   tagged fields
            0,              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 8).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetCommitResponse::decode_body(Bytes::from_static(expected), 8).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = OffsetCommitRequest { group_instance_id: Some("i".into()), ..Default::default() };
        let mut buf = BytesMut::new();
        assert_eq!(
            req.encode_body(&mut buf, 6),
            Err(EncodeError::FieldNotAvailable { field: "group_instance_id", version: 6 })
        );
        let req = OffsetCommitRequest {
            topics: vec![OffsetCommitRequestTopic {
                partitions: vec![OffsetCommitRequestPartition { commit_timestamp: 1, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "commit_timestamp", version: 2 })
        );
        assert!(req.encode_body(&mut BytesMut::new(), 1).is_ok());
        // Ignorable fields are dropped silently.
        let req =
            OffsetCommitRequest { retention_time_ms: 1000, member_id: "m".into(), ..Default::default() };
        assert!(req.encode_body(&mut BytesMut::new(), 0).is_ok());
    }
}
