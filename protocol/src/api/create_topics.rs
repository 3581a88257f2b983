//! CreateTopics (key 19): creates topics with a partition count and replication factor or an
//! explicit replica assignment, and optional topic configs.
//!
//! Versions:
//! - v0: topics with partitions, replication factor, assignments and configs; a timeout.
//! - v1: the request adds `validate_only`; the response adds a per-topic error message.
//! - v2: the response adds `throttle_time_ms`.
//! - v3: same layout; brokers respond before throttling on quota violation.
//! - v4: same layout; partitions and replication factor may be -1 without assignments
//!   (KIP-464).
//! - v5: first flexible version; the response returns the topic's partition count,
//!   replication factor and configs, or a tagged config error (KIP-525).
//! - v6: same layout; may return THROTTLING_QUOTA_EXCEEDED (KIP-599).
//! - v7: the response adds the new topic's id.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

/// Creates topics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreateTopicsRequest {
    /// The topics to create.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<CreatableTopic>,
    /// How long to wait for the creation, in milliseconds (default 60000).
    pub timeout_ms: i32,
    /// Only check that the topics could be created, create nothing (v1+).
    pub validate_only: bool,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for CreateTopicsRequest {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            timeout_ms: 60000,
            validate_only: false,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopic {
    /// The topic name.
    pub name: String,
    /// The number of partitions, or -1 with manual assignments or for the broker default.
    pub num_partitions: i32,
    /// The replication factor, or -1 with manual assignments or for the broker default.
    pub replication_factor: i16,
    /// The manual replica assignment, or empty for automatic assignment.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub assignments: Vec<CreatableReplicaAssignment>,
    /// Topic configs to set.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub configs: Vec<CreatableTopicConfig>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The replicas of one partition of a topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableReplicaAssignment {
    /// The partition index.
    pub partition_index: i32,
    /// The brokers to place the partition on.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub broker_ids: Vec<i32>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One config to set on a topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicConfig {
    /// The config name.
    pub name: String,
    /// The config value.
    pub value: Option<String>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for CreatableReplicaAssignment {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.i32(self.partition_index);
        w.i32_array(&self.broker_ids, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatableReplicaAssignment {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            partition_index: r.i32()?,
            broker_ids: r.array(flexible, "broker_ids", Reader::i32)?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreatableTopicConfig {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.string(&self.name, flexible)?;
        w.nullable_string(self.value.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatableTopicConfig {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            value: r.nullable_string(flexible)?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreatableTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.string(&self.name, flexible)?;
        w.i32(self.num_partitions);
        w.i16(self.replication_factor);
        w.array(&self.assignments, flexible, |w, a| a.encode(w, version))?;
        w.array(&self.configs, flexible, |w, c| c.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatableTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            num_partitions: r.i32()?,
            replication_factor: r.i16()?,
            assignments: r
                .array(flexible, "assignments", |r| CreatableReplicaAssignment::decode(r, version))?,
            configs: r.array(flexible, "configs", |r| CreatableTopicConfig::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreateTopicsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        w.i32(self.timeout_ms);
        if version >= 1 {
            w.bool(self.validate_only);
        } else if self.validate_only {
            w.unavailable("validate_only", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreateTopicsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            topics: r.array(flexible, "topics", |r| CreatableTopic::decode(r, version))?,
            timeout_ms: r.i32()?,
            ..Self::default()
        };
        if version >= 1 {
            out.validate_only = r.bool()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for CreateTopicsRequest {
    const API_KEY: ApiKey = ApiKey::CREATE_TOPICS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 7;
    const FIRST_FLEXIBLE: Option<i16> = Some(5);
}

impl Request for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
}

/// The result of creating each topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreateTopicsResponse {
    /// Throttle time in milliseconds (v2+, ignorable).
    pub throttle_time_ms: i32,
    /// One result per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<CreatableTopicResult>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result of creating one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicResult {
    /// The topic name.
    pub name: String,
    /// The new topic's id (v7+, ignorable).
    pub topic_id: Uuid,
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None (v1+, ignorable).
    pub error_message: Option<String>,
    /// Why the configs are not returned, or 0 (v5+, tag 0, ignorable).
    pub topic_config_error_code: i16,
    /// The topic's partition count, -1 if unknown (v5+, ignorable).
    pub num_partitions: i32,
    /// The topic's replication factor, -1 if unknown (v5+, ignorable).
    pub replication_factor: i16,
    /// The topic's configs (v5+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub configs: Option<Vec<CreatableTopicConfigs>>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for CreatableTopicResult {
    fn default() -> Self {
        Self {
            name: String::new(),
            topic_id: Uuid::default(),
            error_code: 0,
            error_message: None,
            topic_config_error_code: 0,
            num_partitions: -1,
            replication_factor: -1,
            configs: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One config of a created topic (v5+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicConfigs {
    /// The config name.
    pub name: String,
    /// The config value.
    pub value: Option<String>,
    /// Whether the config is read-only.
    pub read_only: bool,
    /// Where the value comes from, -1 if unknown (ignorable).
    pub config_source: i8,
    /// Whether the config is sensitive.
    pub is_sensitive: bool,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for CreatableTopicConfigs {
    fn default() -> Self {
        Self {
            name: String::new(),
            value: None,
            read_only: false,
            config_source: -1,
            is_sensitive: false,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

// Configs exist only from v5, which is flexible, so they are always written compact.
impl Encode for CreatableTopicConfigs {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.nullable_string(self.value.as_deref(), true)?;
        w.bool(self.read_only);
        w.i8(self.config_source);
        w.bool(self.is_sensitive);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for CreatableTopicConfigs {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            value: r.nullable_string(true)?,
            read_only: r.bool()?,
            config_source: r.i8()?,
            is_sensitive: r.bool()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for CreatableTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.string(&self.name, flexible)?;
        // topic_id, error_message and the v5 fields are ignorable: dropped silently before.
        if version >= 7 {
            w.uuid(&self.topic_id);
        }
        w.i16(self.error_code);
        if version >= 1 {
            w.nullable_string(self.error_message.as_deref(), flexible)?;
        }
        if version >= 5 {
            w.i32(self.num_partitions);
            w.i16(self.replication_factor);
            w.nullable_array(self.configs.as_deref(), flexible, |w, c| c.encode(w, version))?;
        }
        if flexible {
            let mut tags = w.tags();
            if self.topic_config_error_code != 0 {
                tags.field(0, |w| {
                    w.i16(self.topic_config_error_code);
                    Ok(())
                })?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatableTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self { name: r.string(flexible, "name")?, ..Self::default() };
        if version >= 7 {
            out.topic_id = r.uuid()?;
        }
        out.error_code = r.i16()?;
        if version >= 1 {
            out.error_message = r.nullable_string(flexible)?;
        }
        if version >= 5 {
            out.num_partitions = r.i32()?;
            out.replication_factor = r.i16()?;
            out.configs = r.nullable_array(flexible, |r| CreatableTopicConfigs::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 => out.topic_config_error_code = r.i16()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Encode for CreateTopicsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
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

impl Decode for CreateTopicsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self::default();
        if version >= 2 {
            out.throttle_time_ms = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| CreatableTopicResult::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for CreateTopicsResponse {
    const API_KEY: ApiKey = ApiKey::CREATE_TOPICS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 7;
    const FIRST_FLEXIBLE: Option<i16> = Some(5);
}

impl Response for CreateTopicsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<CreateTopicsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<CreateTopicsResponse>();
    }

    #[test]
    fn request_v1_by_hand() {
        let req = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "t".into(),
                num_partitions: 3,
                replication_factor: 2,
                assignments: vec![],
                configs: vec![CreatableTopicConfig {
                    name: "a".into(),
                    value: Some("b".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms: 1000,
            validate_only: true,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 1, // one topic
            0, 1, b't', // name
            0, 0, 0, 3, // num_partitions
            0, 2, // replication_factor
            0, 0, 0, 0, // no assignments
            0, 0, 0, 1, 0, 1, b'a', 0, 1, b'b', // one config a=b
            0, 0, 0x03, 0xe8, // timeout_ms 1000
            1,    // validate_only
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(CreateTopicsRequest::decode_body(Bytes::from_static(expected), 1).unwrap(), req);
    }

    #[test]
    fn response_v7_by_hand() {
        let id = Uuid::from_bytes([7; 16]);
        let resp = CreateTopicsResponse {
            throttle_time_ms: 0,
            topics: vec![CreatableTopicResult {
                name: "t".into(),
                topic_id: id,
                error_code: 0,
                error_message: None,
                topic_config_error_code: 29, // TOPIC_AUTHORIZATION_FAILED, in tag 0
                num_partitions: 1,
                replication_factor: 1,
                configs: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut expected = vec![0, 0, 0, 0, 2, 2, b't'];
        expected.extend_from_slice(&[7; 16]);
        expected.extend_from_slice(&[
            0, 0, // error_code
            0, // null error_message
            0, 0, 0, 1, // num_partitions
            0, 1, // replication_factor
            0, // null configs
            1, 0, 2, 0, 29, // one tagged field: tag 0, size 2, value 29
            0,  // response tagged fields
        ]);
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 7).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(CreateTopicsResponse::decode_body(Bytes::from(expected), 7).unwrap(), resp);
    }

    #[test]
    fn validate_only_is_not_available_in_v0() {
        let req = CreateTopicsRequest { validate_only: true, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "validate_only", version: 0 });
        // Without it, v0 encodes.
        CreateTopicsRequest::default().encode_body(&mut BytesMut::new(), 0).unwrap();
    }
}
