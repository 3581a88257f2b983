//! ConsumerGroupHeartbeat (key 68): the heartbeat of the KIP-848 consumer group protocol. A
//! member joins, stays in and leaves its group with it, and the coordinator answers with the
//! member's epoch and, when it changed, its new assignment.
//!
//! Versions (all flexible):
//! - v0: group, member and epoch; instance id, rack, rebalance timeout, subscribed topic names,
//!   server-side assignor and owned partitions, each null when unchanged since the last
//!   heartbeat. The response carries the member id, epoch, heartbeat interval and an optional
//!   assignment.
//! - v1: the request adds `subscribed_topic_regex` (KIP-848); the response may carry
//!   INVALID_REGULAR_EXPRESSION. The spec marks v1 of the request as unstable.
//!
//! The request's nested `TopicPartitions` and the response's common struct of the same name
//! have the same fields, so this module defines [`TopicPartitions`] once for both.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

/// A member's heartbeat to its group coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerGroupHeartbeatRequest {
    /// The group id.
    pub group_id: String,
    /// The member id the coordinator generated (empty when joining).
    pub member_id: String,
    /// The member epoch: 0 to join, -1 to leave, -2 for a static member that will rejoin.
    pub member_epoch: i32,
    /// The static instance id, or null if not used or unchanged.
    pub instance_id: Option<String>,
    /// The rack of the member, or null if not given or unchanged.
    pub rack_id: Option<String>,
    /// Maximum time for the member to revoke partitions, or -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// The subscribed topic names, or null if unchanged.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub subscribed_topic_names: Option<Vec<String>>,
    /// The subscribed topic regex, or null if unchanged (v1+).
    pub subscribed_topic_regex: Option<String>,
    /// The server-side assignor to use, or null if not used or unchanged.
    pub server_assignor: Option<String>,
    /// The partitions the member owns, or null if unchanged.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub topic_partitions: Option<Vec<TopicPartitions>>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ConsumerGroupHeartbeatRequest {
    fn default() -> Self {
        Self {
            group_id: String::new(),
            member_id: String::new(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: -1,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            topic_partitions: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// Partitions of one topic, by topic id (owned partitions in the request, assigned ones in the
/// response).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicPartitions {
    /// The topic id.
    pub topic_id: Uuid,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for TopicPartitions {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.uuid(&self.topic_id);
        w.i32_array(&self.partitions, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for TopicPartitions {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topic_id: r.uuid()?,
            partitions: r.array(true, "partitions", |r| r.i32())?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ConsumerGroupHeartbeatRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        // Every version is flexible.
        w.string(&self.group_id, true)?;
        w.string(&self.member_id, true)?;
        w.i32(self.member_epoch);
        w.nullable_string(self.instance_id.as_deref(), true)?;
        w.nullable_string(self.rack_id.as_deref(), true)?;
        w.i32(self.rebalance_timeout_ms);
        w.nullable_array(self.subscribed_topic_names.as_deref(), true, |w, t| w.string(t, true))?;
        if version >= 1 {
            w.nullable_string(self.subscribed_topic_regex.as_deref(), true)?;
        } else if self.subscribed_topic_regex.is_some() {
            w.unavailable("subscribed_topic_regex", version)?;
        }
        w.nullable_string(self.server_assignor.as_deref(), true)?;
        w.nullable_array(self.topic_partitions.as_deref(), true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ConsumerGroupHeartbeatRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self {
            group_id: r.string(true, "group_id")?,
            member_id: r.string(true, "member_id")?,
            member_epoch: r.i32()?,
            instance_id: r.nullable_string(true)?,
            rack_id: r.nullable_string(true)?,
            rebalance_timeout_ms: r.i32()?,
            subscribed_topic_names: r.nullable_array(true, |r| r.string(true, "subscribed_topic_names"))?,
            ..Self::default()
        };
        if version >= 1 {
            out.subscribed_topic_regex = r.nullable_string(true)?;
        }
        out.server_assignor = r.nullable_string(true)?;
        out.topic_partitions = r.nullable_array(true, |r| TopicPartitions::decode(r, version))?;
        out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        Ok(out)
    }
}

impl Message for ConsumerGroupHeartbeatRequest {
    const API_KEY: ApiKey = ApiKey::CONSUMER_GROUP_HEARTBEAT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for ConsumerGroupHeartbeatRequest {
    type Response = ConsumerGroupHeartbeatResponse;
}

/// The coordinator's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerGroupHeartbeatResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The top-level error code.
    pub error_code: i16,
    /// The top-level error message, or null.
    pub error_message: Option<String>,
    /// The member id the coordinator generated; given only when the member joins with epoch 0.
    pub member_id: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// The heartbeat interval in milliseconds.
    pub heartbeat_interval_ms: i32,
    /// The member's new assignment, or null if not given.
    pub assignment: Option<Assignment>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions assigned to a member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Assignment {
    /// The partitions the member may use right away.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topic_partitions: Vec<TopicPartitions>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for Assignment {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.array(&self.topic_partitions, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for Assignment {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topic_partitions: r.array(true, "topic_partitions", |r| TopicPartitions::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ConsumerGroupHeartbeatResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.nullable_string(self.member_id.as_deref(), true)?;
        w.i32(self.member_epoch);
        w.i32(self.heartbeat_interval_ms);
        // A nullable struct: one signed byte, -1 for null and 1 when the struct follows.
        match &self.assignment {
            None => w.i8(-1),
            Some(a) => {
                w.i8(1);
                a.encode(w, version)?;
            }
        }
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ConsumerGroupHeartbeatResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            member_id: r.nullable_string(true)?,
            member_epoch: r.i32()?,
            heartbeat_interval_ms: r.i32()?,
            // As Kafka reads it: any negative marker is null.
            assignment: if r.i8()? < 0 { None } else { Some(Assignment::decode(r, version)?) },
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for ConsumerGroupHeartbeatResponse {
    const API_KEY: ApiKey = ApiKey::CONSUMER_GROUP_HEARTBEAT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for ConsumerGroupHeartbeatResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ConsumerGroupHeartbeatRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ConsumerGroupHeartbeatResponse>();
    }

    #[test]
    fn v1_request_by_hand() {
        let req = ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: String::new(),
            member_epoch: 0,
            rebalance_timeout_ms: 300,
            subscribed_topic_names: Some(vec!["t".into()]),
            subscribed_topic_regex: Some("x".into()),
            topic_partitions: Some(vec![]),
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, b'g',             // group_id "g"
            1,                   // member_id ""
            0, 0, 0, 0,          // member_epoch 0
            0,                   // instance_id null
            0,                   // rack_id null
            0, 0, 1, 0x2c,       // rebalance_timeout_ms 300
            2, 2, b't',          // subscribed_topic_names ["t"]
            2, b'x',             // subscribed_topic_regex "x"
            0,                   // server_assignor null
            1,                   // topic_partitions []
            0,                   // no tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        let back = ConsumerGroupHeartbeatRequest::decode_body(Bytes::from_static(expected), 1).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn v0_response_by_hand() {
        let topic = Uuid::from_bytes([7; 16]);
        let resp = ConsumerGroupHeartbeatResponse {
            throttle_time_ms: 0,
            error_code: 0,
            error_message: None,
            member_id: Some("m".into()),
            member_epoch: 5,
            heartbeat_interval_ms: 3000,
            assignment: Some(Assignment {
                topic_partitions: vec![TopicPartitions {
                    topic_id: topic,
                    partitions: vec![0, 2],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut expected = vec![
            0, 0, 0, 0, // throttle_time_ms
            0, 0, // error_code
            0, // error_message null
            2, b'm', // member_id "m"
            0, 0, 0, 5, // member_epoch
            0, 0, 0x0b, 0xb8, // heartbeat_interval_ms 3000
            1,    // assignment present
            2,    // topic_partitions: one entry
        ];
        expected.extend_from_slice(&[7; 16]); // topic_id
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 2]); // partitions [0, 2]
        expected.extend_from_slice(&[0, 0, 0]); // tags of TopicPartitions, Assignment, response
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        let back = ConsumerGroupHeartbeatResponse::decode_body(Bytes::from(expected), 0).unwrap();
        assert_eq!(back, resp);

        // A null assignment is a single -1 byte.
        let null = ConsumerGroupHeartbeatResponse::default();
        let mut buf = BytesMut::new();
        null.encode_body(&mut buf, 0).unwrap();
        assert_eq!(buf[buf.len() - 2..], [0xff, 0]);
    }

    #[test]
    fn regex_needs_v1() {
        let req = ConsumerGroupHeartbeatRequest {
            subscribed_topic_regex: Some("^t.*".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        assert_eq!(
            req.encode_body(&mut buf, 0),
            Err(EncodeError::FieldNotAvailable { field: "subscribed_topic_regex", version: 0 })
        );
        assert!(req.encode_body(&mut BytesMut::new(), 1).is_ok());
    }
}
