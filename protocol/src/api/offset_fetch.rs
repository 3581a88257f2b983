//! OffsetFetch (key 9): read the committed offsets of a group's partitions.
//!
//! Versions:
//! - v0: offsets stored in ZooKeeper.
//! - v1: offsets stored in the `__consumer_offsets` topic; same layout.
//! - v2: the request's topic list may be null (all topics); the response adds a top-level
//!   error code.
//! - v3: the response adds `throttle_time_ms`.
//! - v4: same layout; brokers respond before throttling on quota violation.
//! - v5: the response adds the committed leader epoch of each partition.
//! - v6: first flexible version.
//! - v7: the request adds `require_stable` (KIP-447).
//! - v8: several groups per request (KIP-709): the single-group fields (`group_id`, `topics`,
//!   the top-level `error_code`) give way to `groups` in both request and response.
//! - v9: each request group adds the member id and epoch of the consumer protocol (KIP-848).
//!
//! Both layouts are kept as the definitions lay them out: below v8 fill the single-group fields,
//! from v8 fill `groups`. Encoding a layout's fields at a version of the other layout fails.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks for the committed offsets of one group (v0-7) or several (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchRequest {
    /// The group to fetch offsets for (v0-7).
    pub group_id: String,
    /// The topics to fetch, or null for all topics (v0-7; null allowed from v2).
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub topics: Option<Vec<OffsetFetchRequestTopic>>,
    /// The groups to fetch offsets for (v8+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<OffsetFetchRequestGroup>,
    /// Whether the broker should wait for pending transactional offsets instead of returning
    /// unstable ones (v7+).
    pub require_stable: bool,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic of a single-group [`OffsetFetchRequest`] (v0-7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchRequestTopic {
    /// The topic name.
    pub name: String,
    /// The partitions to fetch offsets for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_indexes: Vec<i32>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One group of a batched [`OffsetFetchRequest`] (v8+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchRequestGroup {
    /// The group id.
    pub group_id: String,
    /// The member id, when using the consumer protocol (v9+, ignorable).
    pub member_id: Option<String>,
    /// The member epoch, when using the consumer protocol; -1 by default (v9+, ignorable).
    pub member_epoch: i32,
    /// The topics to fetch, or null for all topics.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub topics: Option<Vec<OffsetFetchRequestTopics>>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetFetchRequestGroup {
    fn default() -> Self {
        Self {
            group_id: String::new(),
            member_id: None,
            member_epoch: -1,
            topics: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One topic of an [`OffsetFetchRequestGroup`] (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchRequestTopics {
    /// The topic name.
    pub name: String,
    /// The partitions to fetch offsets for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_indexes: Vec<i32>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for OffsetFetchRequestTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.string(&self.name, flexible)?;
        w.i32_array(&self.partition_indexes, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetFetchRequestTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partition_indexes: r.array(flexible, "partition_indexes", |r| r.i32())?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

// The v8+ structures are only ever written in flexible versions.
impl Encode for OffsetFetchRequestTopics {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i32_array(&self.partition_indexes, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for OffsetFetchRequestTopics {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            partition_indexes: r.array(true, "partition_indexes", |r| r.i32())?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for OffsetFetchRequestGroup {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.group_id, true)?;
        // The member id and epoch are ignorable: dropped silently at v8.
        if version >= 9 {
            w.nullable_string(self.member_id.as_deref(), true)?;
            w.i32(self.member_epoch);
        }
        w.nullable_array(self.topics.as_deref(), true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for OffsetFetchRequestGroup {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self { group_id: r.string(true, "group_id")?, ..Self::default() };
        if version >= 9 {
            out.member_id = r.nullable_string(true)?;
            out.member_epoch = r.i32()?;
        }
        out.topics = r.nullable_array(true, |r| OffsetFetchRequestTopics::decode(r, version))?;
        out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        Ok(out)
    }
}

impl Encode for OffsetFetchRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        if version <= 7 {
            w.string(&self.group_id, flexible)?;
            w.array_field(self.topics.as_deref(), version >= 2, flexible, "topics", version, |w, t| {
                t.encode(w, version)
            })?;
            if !self.groups.is_empty() {
                w.unavailable("groups", version)?;
            }
        } else {
            if !self.group_id.is_empty() {
                w.unavailable("group_id", version)?;
            }
            if self.topics.is_some() {
                w.unavailable("topics", version)?;
            }
            w.array(&self.groups, flexible, |w, g| g.encode(w, version))?;
        }
        if version >= 7 {
            w.bool(self.require_stable);
        } else if self.require_stable {
            w.unavailable("require_stable", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetFetchRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self::default();
        if version <= 7 {
            out.group_id = r.string(flexible, "group_id")?;
            out.topics = r.array_field(version >= 2, flexible, "topics", |r| {
                OffsetFetchRequestTopic::decode(r, version)
            })?;
        } else {
            out.groups = r.array(flexible, "groups", |r| OffsetFetchRequestGroup::decode(r, version))?;
        }
        if version >= 7 {
            out.require_stable = r.bool()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetFetchRequest {
    const API_KEY: ApiKey = ApiKey::OFFSET_FETCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(6);
}

impl Request for OffsetFetchRequest {
    type Response = OffsetFetchResponse;
}

/// The committed offsets of one group (v0-7) or several (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponse {
    /// Throttle time in milliseconds (v3+, ignorable).
    pub throttle_time_ms: i32,
    /// The offsets per topic (v0-7).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetFetchResponseTopic>,
    /// The top-level error code, 0 on success (v2-7, ignorable).
    pub error_code: i16,
    /// The offsets per group (v8+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<OffsetFetchResponseGroup>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic of a single-group [`OffsetFetchResponse`] (v0-7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponseTopic {
    /// The topic name.
    pub name: String,
    /// The offsets per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetFetchResponsePartition>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of an [`OffsetFetchResponseTopic`] (v0-7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponsePartition {
    /// The partition index.
    pub partition_index: i32,
    /// The committed offset.
    pub committed_offset: i64,
    /// The leader epoch of the commit, -1 if unknown (v5+, ignorable).
    pub committed_leader_epoch: i32,
    /// The metadata stored with the offset.
    pub metadata: Option<String>,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetFetchResponsePartition {
    fn default() -> Self {
        Self {
            partition_index: 0,
            committed_offset: 0,
            committed_leader_epoch: -1,
            metadata: None,
            error_code: 0,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One group of a batched [`OffsetFetchResponse`] (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponseGroup {
    /// The group id.
    pub group_id: String,
    /// The offsets per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetFetchResponseTopics>,
    /// The group-level error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic of an [`OffsetFetchResponseGroup`] (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponseTopics {
    /// The topic name.
    pub name: String,
    /// The offsets per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetFetchResponsePartitions>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition of an [`OffsetFetchResponseTopics`] (v8+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetFetchResponsePartitions {
    /// The partition index.
    pub partition_index: i32,
    /// The committed offset.
    pub committed_offset: i64,
    /// The leader epoch of the commit, -1 if unknown.
    pub committed_leader_epoch: i32,
    /// The metadata stored with the offset.
    pub metadata: Option<String>,
    /// The partition-level error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for OffsetFetchResponsePartitions {
    fn default() -> Self {
        Self {
            partition_index: 0,
            committed_offset: 0,
            committed_leader_epoch: -1,
            metadata: None,
            error_code: 0,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for OffsetFetchResponsePartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.i32(self.partition_index);
        w.i64(self.committed_offset);
        if version >= 5 {
            w.i32(self.committed_leader_epoch);
        }
        w.nullable_string(self.metadata.as_deref(), flexible)?;
        w.i16(self.error_code);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetFetchResponsePartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self { partition_index: r.i32()?, committed_offset: r.i64()?, ..Self::default() };
        if version >= 5 {
            out.committed_leader_epoch = r.i32()?;
        }
        out.metadata = r.nullable_string(flexible)?;
        out.error_code = r.i16()?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for OffsetFetchResponseTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.string(&self.name, flexible)?;
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetFetchResponseTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r
                .array(flexible, "partitions", |r| OffsetFetchResponsePartition::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

// The v8+ structures are only ever written in flexible versions.
impl Encode for OffsetFetchResponsePartitions {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i64(self.committed_offset);
        w.i32(self.committed_leader_epoch);
        w.nullable_string(self.metadata.as_deref(), true)?;
        w.i16(self.error_code);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for OffsetFetchResponsePartitions {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            committed_offset: r.i64()?,
            committed_leader_epoch: r.i32()?,
            metadata: r.nullable_string(true)?,
            error_code: r.i16()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for OffsetFetchResponseTopics {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.array(&self.partitions, true, |w, p| p.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for OffsetFetchResponseTopics {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            partitions: r.array(true, "partitions", |r| OffsetFetchResponsePartitions::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for OffsetFetchResponseGroup {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.group_id, true)?;
        w.array(&self.topics, true, |w, t| t.encode(w, version))?;
        w.i16(self.error_code);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for OffsetFetchResponseGroup {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            group_id: r.string(true, "group_id")?,
            topics: r.array(true, "topics", |r| OffsetFetchResponseTopics::decode(r, version))?,
            error_code: r.i16()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for OffsetFetchResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
        if version <= 7 {
            w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
            // The top-level error code is ignorable: dropped silently before v2.
            if version >= 2 {
                w.i16(self.error_code);
            }
            if !self.groups.is_empty() {
                w.unavailable("groups", version)?;
            }
        } else {
            if !self.topics.is_empty() {
                w.unavailable("topics", version)?;
            }
            w.array(&self.groups, flexible, |w, g| g.encode(w, version))?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for OffsetFetchResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self::default();
        if version >= 3 {
            out.throttle_time_ms = r.i32()?;
        }
        if version <= 7 {
            out.topics = r.array(flexible, "topics", |r| OffsetFetchResponseTopic::decode(r, version))?;
            if version >= 2 {
                out.error_code = r.i16()?;
            }
        } else {
            out.groups = r.array(flexible, "groups", |r| OffsetFetchResponseGroup::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for OffsetFetchResponse {
    const API_KEY: ApiKey = ApiKey::OFFSET_FETCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(6);
}

impl Response for OffsetFetchResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<OffsetFetchRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<OffsetFetchResponse>();
    }

    #[test]
    fn v2_request_with_null_topics_by_hand() {
        let req = OffsetFetchRequest { group_id: "g".into(), topics: None, ..Default::default() };
        let expected: &[u8] = &[0, 1, b'g', 0xff, 0xff, 0xff, 0xff];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetFetchRequest::decode_body(Bytes::from_static(expected), 2).unwrap(), req);
        // Null is not allowed before v2.
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 1),
            Err(EncodeError::NullNotAllowed { field: "topics", version: 1 })
        );
    }

    #[test]
    fn v9_request_by_hand() {
        let req = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: "g".into(),
                member_id: Some("m".into()),
                member_epoch: 4,
                topics: Some(vec![OffsetFetchRequestTopics {
                    name: "t".into(),
                    partition_indexes: vec![0, 1],
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            require_stable: true,
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2,                  // groups: 1 (compact)
            2, b'g',            //   group_id
            2, b'm',            //   member_id
            0, 0, 0, 4,         //   member_epoch
            2,                  //   topics: 1
            2, b't',            //     name
            3, 0, 0, 0, 0, 0, 0, 0, 1, // partition_indexes [0, 1]
            0,                  //     tagged fields
            0,                  //   tagged fields
            1,                  // require_stable
            0,                  // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 9).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetFetchRequest::decode_body(Bytes::from_static(expected), 9).unwrap(), req);
    }

    #[test]
    fn v5_response_by_hand() {
        let resp = OffsetFetchResponse {
            throttle_time_ms: 0,
            topics: vec![OffsetFetchResponseTopic {
                name: "t".into(),
                partitions: vec![OffsetFetchResponsePartition {
                    partition_index: 0,
                    committed_offset: 42,
                    committed_leader_epoch: 3,
                    metadata: Some(String::new()),
                    error_code: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            error_code: 16,
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,                 // throttle_time_ms
            0, 0, 0, 1,                 // topics: 1
            0, 1, b't',                 //   name
            0, 0, 0, 1,                 //   partitions: 1
            0, 0, 0, 0,                 //     partition_index
            0, 0, 0, 0, 0, 0, 0, 42,    //     committed_offset
            0, 0, 0, 3,                 //     committed_leader_epoch
            0, 0,                       //     metadata: ""
            0, 0,                       //     error_code
            0, 16,                      // error_code
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetFetchResponse::decode_body(Bytes::from_static(expected), 5).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let batched = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup::default()],
            topics: Some(Vec::new()),
            ..Default::default()
        };
        assert_eq!(
            batched.encode_body(&mut BytesMut::new(), 7),
            Err(EncodeError::FieldNotAvailable { field: "groups", version: 7 })
        );
        let single = OffsetFetchRequest { group_id: "g".into(), ..Default::default() };
        assert_eq!(
            single.encode_body(&mut BytesMut::new(), 8),
            Err(EncodeError::FieldNotAvailable { field: "group_id", version: 8 })
        );
        let stable = OffsetFetchRequest { require_stable: true, topics: None, ..Default::default() };
        assert_eq!(
            stable.encode_body(&mut BytesMut::new(), 6),
            Err(EncodeError::FieldNotAvailable { field: "require_stable", version: 6 })
        );
        let resp =
            OffsetFetchResponse { groups: vec![OffsetFetchResponseGroup::default()], ..Default::default() };
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 7),
            Err(EncodeError::FieldNotAvailable { field: "groups", version: 7 })
        );
    }
}
