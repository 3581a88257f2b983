//! ConsumerGroupDescribe (key 69): describes groups of the KIP-848 consumer group protocol,
//! with each member's subscription, current assignment and target assignment.
//!
//! Versions:
//! - v0: the only version, flexible. The request names the groups and whether to include the
//!   authorized operations; the response describes each group and its members.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

/// Asks for the description of consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerGroupDescribeRequest {
    /// The groups to describe.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub group_ids: Vec<String>,
    /// Whether to include the operations the caller may perform on each group.
    pub include_authorized_operations: bool,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ConsumerGroupDescribeRequest {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string_array(&self.group_ids, true)?;
        w.bool(self.include_authorized_operations);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ConsumerGroupDescribeRequest {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            group_ids: r.array(true, "group_ids", |r| r.string(true, "group_ids"))?,
            include_authorized_operations: r.bool()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for ConsumerGroupDescribeRequest {
    const API_KEY: ApiKey = ApiKey::CONSUMER_GROUP_DESCRIBE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for ConsumerGroupDescribeRequest {
    type Response = ConsumerGroupDescribeResponse;
}

/// The description of each group asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerGroupDescribeResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One entry per group.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<DescribedGroup>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One described group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribedGroup {
    /// The error describing this group, or 0.
    pub error_code: i16,
    /// The error message, or null.
    pub error_message: Option<String>,
    /// The group id.
    pub group_id: String,
    /// The group state, or the empty string.
    pub group_state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The assignment epoch.
    pub assignment_epoch: i32,
    /// The assignor the group uses.
    pub assignor_name: String,
    /// The members.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub members: Vec<Member>,
    /// Bit field of the operations the caller may perform; `i32::MIN` when not asked for.
    pub authorized_operations: i32,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for DescribedGroup {
    fn default() -> Self {
        Self {
            error_code: 0,
            error_message: None,
            group_id: String::new(),
            group_state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor_name: String::new(),
            members: Vec::new(),
            authorized_operations: i32::MIN,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Member {
    /// The member id.
    pub member_id: String,
    /// The static instance id, or null.
    pub instance_id: Option<String>,
    /// The rack id, or null.
    pub rack_id: Option<String>,
    /// The member's current epoch.
    pub member_epoch: i32,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The subscribed topic names.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub subscribed_topic_names: Vec<String>,
    /// The subscribed topic regex, or null.
    pub subscribed_topic_regex: Option<String>,
    /// The member's current assignment.
    pub assignment: Assignment,
    /// The member's target assignment.
    pub target_assignment: Assignment,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// Partitions of one topic, by id and name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicPartitions {
    /// The topic id.
    pub topic_id: Uuid,
    /// The topic name.
    pub topic_name: String,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// A set of assigned partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Assignment {
    /// The assigned partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topic_partitions: Vec<TopicPartitions>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for TopicPartitions {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.uuid(&self.topic_id);
        w.string(&self.topic_name, true)?;
        w.i32_array(&self.partitions, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for TopicPartitions {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topic_id: r.uuid()?,
            topic_name: r.string(true, "topic_name")?,
            partitions: r.array(true, "partitions", |r| r.i32())?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
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

impl Encode for Member {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.member_id, true)?;
        w.nullable_string(self.instance_id.as_deref(), true)?;
        w.nullable_string(self.rack_id.as_deref(), true)?;
        w.i32(self.member_epoch);
        w.string(&self.client_id, true)?;
        w.string(&self.client_host, true)?;
        w.string_array(&self.subscribed_topic_names, true)?;
        w.nullable_string(self.subscribed_topic_regex.as_deref(), true)?;
        self.assignment.encode(w, version)?;
        self.target_assignment.encode(w, version)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for Member {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            member_id: r.string(true, "member_id")?,
            instance_id: r.nullable_string(true)?,
            rack_id: r.nullable_string(true)?,
            member_epoch: r.i32()?,
            client_id: r.string(true, "client_id")?,
            client_host: r.string(true, "client_host")?,
            subscribed_topic_names: r
                .array(true, "subscribed_topic_names", |r| r.string(true, "subscribed_topic_names"))?,
            subscribed_topic_regex: r.nullable_string(true)?,
            assignment: Assignment::decode(r, version)?,
            target_assignment: Assignment::decode(r, version)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribedGroup {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.string(&self.group_id, true)?;
        w.string(&self.group_state, true)?;
        w.i32(self.group_epoch);
        w.i32(self.assignment_epoch);
        w.string(&self.assignor_name, true)?;
        w.array(&self.members, true, |w, m| m.encode(w, version))?;
        w.i32(self.authorized_operations);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribedGroup {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            group_id: r.string(true, "group_id")?,
            group_state: r.string(true, "group_state")?,
            group_epoch: r.i32()?,
            assignment_epoch: r.i32()?,
            assignor_name: r.string(true, "assignor_name")?,
            members: r.array(true, "members", |r| Member::decode(r, version))?,
            authorized_operations: r.i32()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ConsumerGroupDescribeResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.array(&self.groups, true, |w, g| g.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ConsumerGroupDescribeResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            groups: r.array(true, "groups", |r| DescribedGroup::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for ConsumerGroupDescribeResponse {
    const API_KEY: ApiKey = ApiKey::CONSUMER_GROUP_DESCRIBE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for ConsumerGroupDescribeResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ConsumerGroupDescribeRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ConsumerGroupDescribeResponse>();
    }

    #[test]
    fn v0_request_by_hand() {
        let req = ConsumerGroupDescribeRequest {
            group_ids: vec!["g1".into(), "g2".into()],
            include_authorized_operations: true,
            ..Default::default()
        };
        let expected: &[u8] = &[3, 3, b'g', b'1', 3, b'g', b'2', 1, 0];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(ConsumerGroupDescribeRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn v0_response_by_hand() {
        let member = Member {
            member_id: "m".into(),
            member_epoch: 3,
            client_id: "c".into(),
            client_host: "/h".into(),
            subscribed_topic_names: vec!["t".into()],
            assignment: Assignment {
                topic_partitions: vec![TopicPartitions {
                    topic_id: Uuid::from_bytes([1; 16]),
                    topic_name: "t".into(),
                    partitions: vec![4],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let resp = ConsumerGroupDescribeResponse {
            throttle_time_ms: 0,
            groups: vec![DescribedGroup {
                group_id: "g".into(),
                group_state: "Stable".into(),
                group_epoch: 3,
                assignment_epoch: 3,
                assignor_name: "uniform".into(),
                members: vec![member],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut expected: Vec<u8> = vec![0, 0, 0, 0, 2]; // throttle, one group
        expected.extend_from_slice(&[0, 0, 0]); // error_code 0, error_message null
        expected.extend_from_slice(&[2, b'g']);
        expected.extend_from_slice(b"\x07Stable");
        expected.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 3]); // group and assignment epochs
        expected.extend_from_slice(b"\x08uniform");
        expected.push(2); // one member
        expected.extend_from_slice(&[2, b'm', 0, 0, 0, 0, 0, 3]); // id, instance null, rack null, epoch
        expected.extend_from_slice(&[2, b'c', 3, b'/', b'h']); // client id and host
        expected.extend_from_slice(&[2, 2, b't', 0]); // subscribed ["t"], regex null
        expected.push(2); // assignment: one topic
        expected.extend_from_slice(&[1; 16]);
        expected.extend_from_slice(&[2, b't', 2, 0, 0, 0, 4, 0]); // name, partitions [4], tags
        expected.push(0); // assignment tags
        expected.extend_from_slice(&[1, 0]); // target assignment: empty, tags
        expected.push(0); // member tags
        expected.extend_from_slice(&[0x80, 0, 0, 0]); // authorized_operations default
        expected.extend_from_slice(&[0, 0]); // group tags, response tags
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(ConsumerGroupDescribeResponse::decode_body(Bytes::from(expected), 0).unwrap(), resp);
    }
}
