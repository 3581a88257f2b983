//! DeleteTopics (key 20): deletes topics by name or, from v6, by topic id.
//!
//! Versions:
//! - v0: topic names and a timeout.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: same layout; TOPIC_DELETION_DISABLED may be returned.
//! - v4: first flexible version.
//! - v5: the response adds a per-topic error message; may return THROTTLING_QUOTA_EXCEEDED
//!   (KIP-599).
//! - v6: the request names topics by name or id in `topics` instead of `topic_names`; the
//!   response adds topic ids and its names become nullable.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

/// Deletes topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteTopicsRequest {
    /// The topics to delete, by name or id (v6+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<DeleteTopicState>,
    /// The names of the topics to delete (v0-5, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topic_names: Vec<String>,
    /// How long to wait for the deletions, in milliseconds.
    pub timeout_ms: i32,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic to delete, by name or by id (v6+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteTopicState {
    /// The topic name, or None when deleting by id.
    pub name: Option<String>,
    /// The topic id, or zero when deleting by name.
    pub topic_id: Uuid,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

// DeleteTopicState exists only from v6, which is flexible, so it is always written compact.
impl Encode for DeleteTopicState {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.nullable_string(self.name.as_deref(), true)?;
        w.uuid(&self.topic_id);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DeleteTopicState {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.nullable_string(true)?,
            topic_id: r.uuid()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DeleteTopicsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        if version >= 6 {
            w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        } else if !self.topics.is_empty() {
            w.unavailable("topics", version)?;
        }
        // Ignorable: dropped silently from v6.
        if version <= 5 {
            w.string_array(&self.topic_names, flexible)?;
        }
        w.i32(self.timeout_ms);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteTopicsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self::default();
        if version >= 6 {
            out.topics = r.array(flexible, "topics", |r| DeleteTopicState::decode(r, version))?;
        }
        if version <= 5 {
            out.topic_names = r.array(flexible, "topic_names", |r| r.string(flexible, "topic_names"))?;
        }
        out.timeout_ms = r.i32()?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteTopicsRequest {
    const API_KEY: ApiKey = ApiKey::DELETE_TOPICS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Request for DeleteTopicsRequest {
    type Response = DeleteTopicsResponse;
}

/// The result of deleting each topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteTopicsResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// One result per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub responses: Vec<DeletableTopicResult>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result of deleting one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeletableTopicResult {
    /// The topic name (null allowed from v6, when the topic was named by id).
    pub name: Option<String>,
    /// The topic id (v6+, ignorable).
    pub topic_id: Uuid,
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None (v5+, ignorable).
    pub error_message: Option<String>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DeletableTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string_field(self.name.as_deref(), version >= 6, flexible, "name", version)?;
        // topic_id and error_message are ignorable: dropped silently before they exist.
        if version >= 6 {
            w.uuid(&self.topic_id);
        }
        w.i16(self.error_code);
        if version >= 5 {
            w.nullable_string(self.error_message.as_deref(), flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeletableTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self { name: r.string_field(version >= 6, flexible, "name")?, ..Self::default() };
        if version >= 6 {
            out.topic_id = r.uuid()?;
        }
        out.error_code = r.i16()?;
        if version >= 5 {
            out.error_message = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DeleteTopicsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        // Ignorable: dropped silently in v0.
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.array(&self.responses, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteTopicsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.responses = r.array(flexible, "responses", |r| DeletableTopicResult::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteTopicsResponse {
    const API_KEY: ApiKey = ApiKey::DELETE_TOPICS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Response for DeleteTopicsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DeleteTopicsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DeleteTopicsResponse>();
    }

    #[test]
    fn request_v3_and_v6_by_hand() {
        let v3 =
            DeleteTopicsRequest { topic_names: vec!["ab".into()], timeout_ms: 500, ..Default::default() };
        let expected_v3: &[u8] = &[0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0x01, 0xf4];
        let mut buf = BytesMut::new();
        v3.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected_v3);
        assert_eq!(DeleteTopicsRequest::decode_body(Bytes::from_static(expected_v3), 3).unwrap(), v3);

        let id = Uuid::from_bytes([1; 16]);
        let v6 = DeleteTopicsRequest {
            topics: vec![DeleteTopicState { name: None, topic_id: id, ..Default::default() }],
            timeout_ms: 500,
            ..Default::default()
        };
        let mut expected_v6 = vec![2, 0]; // one topic, null name
        expected_v6.extend_from_slice(&[1; 16]);
        expected_v6.extend_from_slice(&[0, 0, 0, 0x01, 0xf4, 0]); // topic tags, timeout, tags
        let mut buf = BytesMut::new();
        v6.encode_body(&mut buf, 6).unwrap();
        assert_eq!(&buf[..], &expected_v6[..]);
        assert_eq!(DeleteTopicsRequest::decode_body(Bytes::from(expected_v6), 6).unwrap(), v6);
    }

    #[test]
    fn response_v5_by_hand() {
        let resp = DeleteTopicsResponse {
            throttle_time_ms: 1,
            responses: vec![DeletableTopicResult {
                name: Some("t".into()),
                error_code: 3, // UNKNOWN_TOPIC_OR_PARTITION
                error_message: Some("no".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 1, // throttle_time_ms
            2, // one result
            2, b't', // name
            0, 3, // error_code
            3, b'n', b'o', // error_message
            0,    // result tags
            0,    // response tags
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DeleteTopicsResponse::decode_body(Bytes::from_static(expected), 5).unwrap(), resp);
    }

    #[test]
    fn topics_are_not_available_before_v6() {
        let req = DeleteTopicsRequest { topics: vec![DeleteTopicState::default()], ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 5).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "topics", version: 5 });
    }

    #[test]
    fn null_name_is_refused_before_v6() {
        let resp =
            DeleteTopicsResponse { responses: vec![DeletableTopicResult::default()], ..Default::default() };
        let err = resp.encode_body(&mut BytesMut::new(), 5).unwrap_err();
        assert_eq!(err, EncodeError::NullNotAllowed { field: "name", version: 5 });
    }
}
