//! TxnOffsetCommit (key 28): a transactional producer commits a consumer group's offsets as
//! part of its transaction; they become visible when the transaction commits and are dropped if
//! it aborts.
//!
//! Definitions: `protocol/specs/TxnOffsetCommitRequest.json`,
//! `protocol/specs/TxnOffsetCommitResponse.json`.
//!
//! Versions:
//! - v0: the transactional id, group id, producer id and epoch, then per topic and partition
//!   the offset and its metadata.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: the request adds the committed leader epoch of each partition.
//! - v3: first flexible version; the request adds the group's generation, member id and group
//!   instance id, so that the group coordinator fences zombie members (KIP-447).
//! - v4: same layout; may return TRANSACTION_ABORTABLE (KIP-890).
//! - v5: transactions version 2 (KIP-890): the group is added to the transaction implicitly,
//!   without AddOffsetsToTxn.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 3;

/// Commits offsets for a group inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The consumer group.
    pub group_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// The group generation (classic protocol) or member epoch (consumer protocol) of the
    /// member whose offsets these are, -1 if unknown (v3+).
    pub generation_id: i32,
    /// The member id the group coordinator assigned, "" if unknown (v3+).
    pub member_id: String,
    /// The static member id given by the user, if any (v3+).
    pub group_instance_id: Option<String>,
    /// The topics to commit offsets for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<TxnOffsetCommitRequestTopic>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for TxnOffsetCommitRequest {
    fn default() -> Self {
        Self {
            transactional_id: String::new(),
            group_id: String::new(),
            producer_id: 0,
            producer_epoch: 0,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: Vec::new(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One topic of a [`TxnOffsetCommitRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitRequestTopic {
    /// The topic name.
    pub name: String,
    /// The partitions to commit.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<TxnOffsetCommitRequestPartition>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of a [`TxnOffsetCommitRequestTopic`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitRequestPartition {
    /// The partition index.
    pub partition_index: i32,
    /// The offset to commit: the next offset to consume.
    pub committed_offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown (v2+, ignorable).
    pub committed_leader_epoch: i32,
    /// Metadata the client wants to store with the offset.
    pub committed_metadata: Option<String>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for TxnOffsetCommitRequestPartition {
    fn default() -> Self {
        Self {
            partition_index: 0,
            committed_offset: 0,
            committed_leader_epoch: -1,
            committed_metadata: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for TxnOffsetCommitRequestPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition_index);
        w.i64(self.committed_offset);
        // Ignorable: dropped silently before v2.
        if version >= 2 {
            w.i32(self.committed_leader_epoch);
        }
        w.nullable_string(self.committed_metadata.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TxnOffsetCommitRequestPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { partition_index: r.i32()?, committed_offset: r.i64()?, ..Self::default() };
        if version >= 2 {
            out.committed_leader_epoch = r.i32()?;
        }
        out.committed_metadata = r.nullable_string(flexible)?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for TxnOffsetCommitRequestTopic {
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

impl Decode for TxnOffsetCommitRequestTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| TxnOffsetCommitRequestPartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for TxnOffsetCommitRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.transactional_id, flexible)?;
        w.string(&self.group_id, flexible)?;
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        if version >= 3 {
            w.i32(self.generation_id);
            w.string(&self.member_id, flexible)?;
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        } else {
            // Not ignorable: an older broker could not fence a zombie member.
            if self.generation_id != -1 {
                w.unavailable("generation_id", version)?;
            }
            if !self.member_id.is_empty() {
                w.unavailable("member_id", version)?;
            }
            if self.group_instance_id.is_some() {
                w.unavailable("group_instance_id", version)?;
            }
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TxnOffsetCommitRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self {
            transactional_id: r.string(flexible, "transactional_id")?,
            group_id: r.string(flexible, "group_id")?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            ..Self::default()
        };
        if version >= 3 {
            out.generation_id = r.i32()?;
            out.member_id = r.string(flexible, "member_id")?;
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        out.topics = r.array(flexible, "topics", |r| TxnOffsetCommitRequestTopic::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for TxnOffsetCommitRequest {
    const API_KEY: ApiKey = ApiKey::TXN_OFFSET_COMMIT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for TxnOffsetCommitRequest {
    type Response = TxnOffsetCommitResponse;
}

/// The result of a transactional offset commit, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitResponse {
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// The results per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<TxnOffsetCommitResponseTopic>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic of a [`TxnOffsetCommitResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitResponseTopic {
    /// The topic name.
    pub name: String,
    /// The results per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<TxnOffsetCommitResponsePartition>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of a [`TxnOffsetCommitResponseTopic`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TxnOffsetCommitResponsePartition {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for TxnOffsetCommitResponsePartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i16(self.error_code);
        if version >= FIRST_FLEXIBLE {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TxnOffsetCommitResponsePartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            unknown_tagged_fields: if version >= FIRST_FLEXIBLE {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for TxnOffsetCommitResponseTopic {
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

impl Decode for TxnOffsetCommitResponseTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| TxnOffsetCommitResponsePartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for TxnOffsetCommitResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.throttle_time_ms);
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TxnOffsetCommitResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            throttle_time_ms: r.i32()?,
            topics: r.array(flexible, "topics", |r| TxnOffsetCommitResponseTopic::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for TxnOffsetCommitResponse {
    const API_KEY: ApiKey = ApiKey::TXN_OFFSET_COMMIT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for TxnOffsetCommitResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<TxnOffsetCommitRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<TxnOffsetCommitResponse>();
    }

    fn request() -> TxnOffsetCommitRequest {
        TxnOffsetCommitRequest {
            transactional_id: "t".into(),
            group_id: "g".into(),
            producer_id: 1,
            producer_epoch: 2,
            generation_id: 3,
            member_id: "m".into(),
            group_instance_id: None,
            topics: vec![TxnOffsetCommitRequestTopic {
                name: "a".into(),
                partitions: vec![TxnOffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: 10,
                    committed_leader_epoch: 4,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn request_v3_by_hand() {
        let expected: &[u8] = &[
            2, b't', 2, b'g', // transactional id, group id
            0, 0, 0, 0, 0, 0, 0, 1, 0, 2, // producer id, epoch
            0, 0, 0, 3, 2, b'm', 0, // generation, member id, no instance id
            2, 2, b'a', // one topic "a"
            2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 4, 1, 0, // one partition
            0, 0, // topic tags, request tags
        ];
        let mut buf = BytesMut::new();
        request().encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(TxnOffsetCommitRequest::decode_body(Bytes::from_static(expected), 3).unwrap(), request());
    }

    #[test]
    fn group_metadata_is_not_available_before_v3() {
        let err = request().encode_body(&mut BytesMut::new(), 2).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "generation_id", version: 2 });
        let bare = TxnOffsetCommitRequest { generation_id: -1, member_id: String::new(), ..request() };
        let mut buf = BytesMut::new();
        bare.encode_body(&mut buf, 2).unwrap();
        assert_eq!(TxnOffsetCommitRequest::decode_body(buf.freeze(), 2).unwrap(), bare);
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        let mut buf = BytesMut::new();
        request().encode_body(&mut buf, 5).unwrap();
        for cut in 0..buf.len() {
            assert!(
                TxnOffsetCommitRequest::decode_body(buf.clone().freeze().slice(..cut), 5).is_err(),
                "cut at {cut}"
            );
        }
    }
}
