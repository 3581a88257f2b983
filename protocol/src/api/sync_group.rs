//! SyncGroup (key 14): the leader hands out assignments; every member receives its own.
//!
//! Versions:
//! - v0: group id, generation, member id and the leader's assignments.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: the request adds `group_instance_id` (static membership, KIP-345).
//! - v4: first flexible version.
//! - v5: request and response add `protocol_type` and `protocol_name` (KIP-559).
//!
//! Assignments are carried as raw bytes; the consumer protocol module gives them meaning.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Synchronises a member with its group after a join; the leader sends the assignments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SyncGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The generation the member belongs to.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static member id given by the user, if any (v3+).
    pub group_instance_id: Option<String>,
    /// The group's protocol type (v5+, ignorable).
    pub protocol_type: Option<String>,
    /// The group's chosen protocol (v5+, ignorable).
    pub protocol_name: Option<String>,
    /// The assignment of every member; sent by the leader only.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub assignments: Vec<SyncGroupRequestAssignment>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One member's assignment in a [`SyncGroupRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SyncGroupRequestAssignment {
    /// The member id.
    pub member_id: String,
    /// The member's assignment.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub assignment: Bytes,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SyncGroupRequestAssignment {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.member_id, flexible)?;
        w.bytes(&self.assignment, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for SyncGroupRequestAssignment {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        Ok(Self {
            member_id: r.string(flexible, "member_id")?,
            assignment: r.bytes(flexible, "assignment")?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for SyncGroupRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.group_id, flexible)?;
        w.i32(self.generation_id);
        w.string(&self.member_id, flexible)?;
        if version >= 3 {
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        } else if self.group_instance_id.is_some() {
            w.unavailable("group_instance_id", version)?;
        }
        // Protocol type and name are ignorable: dropped silently before v5.
        if version >= 5 {
            w.nullable_string(self.protocol_type.as_deref(), flexible)?;
            w.nullable_string(self.protocol_name.as_deref(), flexible)?;
        }
        w.array(&self.assignments, flexible, |w, a| a.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for SyncGroupRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            group_id: r.string(flexible, "group_id")?,
            generation_id: r.i32()?,
            member_id: r.string(flexible, "member_id")?,
            ..Self::default()
        };
        if version >= 3 {
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        if version >= 5 {
            out.protocol_type = r.nullable_string(flexible)?;
            out.protocol_name = r.nullable_string(flexible)?;
        }
        out.assignments =
            r.array(flexible, "assignments", |r| SyncGroupRequestAssignment::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for SyncGroupRequest {
    const API_KEY: ApiKey = ApiKey::SYNC_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Request for SyncGroupRequest {
    type Response = SyncGroupResponse;
}

/// The member's own assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SyncGroupResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// The group's protocol type (v5+, ignorable).
    pub protocol_type: Option<String>,
    /// The group's chosen protocol (v5+, ignorable).
    pub protocol_name: Option<String>,
    /// The member's assignment.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub assignment: Bytes,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SyncGroupResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        if version >= 5 {
            w.nullable_string(self.protocol_type.as_deref(), flexible)?;
            w.nullable_string(self.protocol_name.as_deref(), flexible)?;
        }
        w.bytes(&self.assignment, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for SyncGroupResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.error_code = r.i16()?;
        if version >= 5 {
            out.protocol_type = r.nullable_string(flexible)?;
            out.protocol_name = r.nullable_string(flexible)?;
        }
        out.assignment = r.bytes(flexible, "assignment")?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for SyncGroupResponse {
    const API_KEY: ApiKey = ApiKey::SYNC_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Response for SyncGroupResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::BytesMut;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<SyncGroupRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<SyncGroupResponse>();
    }

    #[test]
    fn v3_request_by_hand() {
        let req = SyncGroupRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
            assignments: vec![SyncGroupRequestAssignment {
                member_id: "m".into(),
                assignment: Bytes::from_static(&[1, 2, 3]),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 1, b'g',         // group_id
            0, 0, 0, 1,         // generation_id
            0, 1, b'm',         // member_id
            0, 1, b'i',         // group_instance_id
            0, 0, 0, 1,         // assignments: 1
            0, 1, b'm',         //   member_id
            0, 0, 0, 3, 1, 2, 3, // assignment
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(SyncGroupRequest::decode_body(Bytes::from_static(expected), 3).unwrap(), req);
    }

    #[test]
    fn v5_response_by_hand() {
        let resp = SyncGroupResponse {
            throttle_time_ms: 0,
            error_code: 0,
            protocol_type: Some("c".into()),
            protocol_name: Some("r".into()),
            assignment: Bytes::from_static(&[5]),
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,     // throttle_time_ms
            0, 0,           // error_code
            2, b'c',        // protocol_type
            2, b'r',        // protocol_name
            2, 5,           // assignment (compact bytes)
            0,              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(SyncGroupResponse::decode_body(Bytes::from_static(expected), 5).unwrap(), resp);
    }

    #[test]
    fn group_instance_id_is_refused_before_v3() {
        let req = SyncGroupRequest { group_instance_id: Some("i".into()), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "group_instance_id", version: 2 })
        );
        // The protocol type and name are ignorable.
        let req = SyncGroupRequest { protocol_name: Some("r".into()), ..Default::default() };
        assert!(req.encode_body(&mut BytesMut::new(), 4).is_ok());
    }
}
