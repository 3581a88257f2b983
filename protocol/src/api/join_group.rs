//! JoinGroup (key 11): join (or rejoin) a classic consumer group.
//!
//! Versions:
//! - v0: group, session timeout, member id, protocol type and the supported protocols.
//! - v1: the request adds `rebalance_timeout_ms`.
//! - v2: the response adds `throttle_time_ms`.
//! - v3: same layout; brokers respond before throttling on quota violation.
//! - v4: same layout; a new member must rejoin with the member id the broker assigned
//!   (MEMBER_ID_REQUIRED, KIP-394).
//! - v5: the request and the response members add `group_instance_id` (static membership,
//!   KIP-345).
//! - v6: first flexible version.
//! - v7: the response adds `protocol_type` and `protocol_name` becomes nullable (KIP-559).
//! - v8: the request adds `reason` (KIP-800).
//! - v9: the response adds `skip_assignment`.
//!
//! Protocol metadata is carried as raw bytes; the consumer protocol module gives it meaning.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Joins a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct JoinGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The coordinator drops the member when no heartbeat arrives within this many ms.
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for members to rejoin during a rebalance, in ms; -1
    /// by default (v1+, ignorable).
    pub rebalance_timeout_ms: i32,
    /// The member id the coordinator assigned, empty on the first join.
    pub member_id: String,
    /// The static member id given by the user, if any (v5+).
    pub group_instance_id: Option<String>,
    /// The class of protocols the member implements (e.g. "consumer").
    pub protocol_type: String,
    /// The protocols the member supports, in order of preference.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub protocols: Vec<JoinGroupRequestProtocol>,
    /// Why the member (re-)joins (v8+, ignorable).
    pub reason: Option<String>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for JoinGroupRequest {
    fn default() -> Self {
        Self {
            group_id: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: -1,
            member_id: String::new(),
            group_instance_id: None,
            protocol_type: String::new(),
            protocols: Vec::new(),
            reason: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// A protocol a joining member supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct JoinGroupRequestProtocol {
    /// The protocol name (e.g. an assignor name).
    pub name: String,
    /// The member's metadata for this protocol.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub metadata: Bytes,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for JoinGroupRequestProtocol {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.string(&self.name, flexible)?;
        w.bytes(&self.metadata, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for JoinGroupRequestProtocol {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        Ok(Self {
            name: r.string(flexible, "name")?,
            metadata: r.bytes(flexible, "metadata")?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for JoinGroupRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.string(&self.group_id, flexible)?;
        w.i32(self.session_timeout_ms);
        if version >= 1 {
            w.i32(self.rebalance_timeout_ms);
        }
        w.string(&self.member_id, flexible)?;
        if version >= 5 {
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        } else if self.group_instance_id.is_some() {
            w.unavailable("group_instance_id", version)?;
        }
        w.string(&self.protocol_type, flexible)?;
        w.array(&self.protocols, flexible, |w, p| p.encode(w, version))?;
        // The reason is ignorable: dropped silently before v8.
        if version >= 8 {
            w.nullable_string(self.reason.as_deref(), flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for JoinGroupRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self {
            group_id: r.string(flexible, "group_id")?,
            session_timeout_ms: r.i32()?,
            ..Self::default()
        };
        if version >= 1 {
            out.rebalance_timeout_ms = r.i32()?;
        }
        out.member_id = r.string(flexible, "member_id")?;
        if version >= 5 {
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        out.protocol_type = r.string(flexible, "protocol_type")?;
        out.protocols = r.array(flexible, "protocols", |r| JoinGroupRequestProtocol::decode(r, version))?;
        if version >= 8 {
            out.reason = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for JoinGroupRequest {
    const API_KEY: ApiKey = ApiKey::JOIN_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(6);
}

impl Request for JoinGroupRequest {
    type Response = JoinGroupResponse;
}

/// The outcome of a join: the generation, the chosen protocol and, for the leader, the members.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct JoinGroupResponse {
    /// Throttle time in milliseconds (v2+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// The generation of the group; -1 by default.
    pub generation_id: i32,
    /// The group's protocol type (v7+, ignorable).
    pub protocol_type: Option<String>,
    /// The protocol the coordinator chose (null allowed from v7).
    pub protocol_name: Option<String>,
    /// The member id of the group leader.
    pub leader: String,
    /// Whether the leader must skip computing the assignment (v9+).
    pub skip_assignment: bool,
    /// The member id the coordinator assigned to this member.
    pub member_id: String,
    /// The group members; only the leader receives them.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub members: Vec<JoinGroupResponseMember>,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for JoinGroupResponse {
    fn default() -> Self {
        Self {
            throttle_time_ms: 0,
            error_code: 0,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: String::new(),
            members: Vec::new(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// A group member as the leader sees it in a [`JoinGroupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct JoinGroupResponseMember {
    /// The member id.
    pub member_id: String,
    /// The member's static id, if any (v5+, ignorable).
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub metadata: Bytes,
    /// Tagged fields this crate does not know (v6+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for JoinGroupResponseMember {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        w.string(&self.member_id, flexible)?;
        if version >= 5 {
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        }
        w.bytes(&self.metadata, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for JoinGroupResponseMember {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self { member_id: r.string(flexible, "member_id")?, ..Self::default() };
        if version >= 5 {
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        out.metadata = r.bytes(flexible, "metadata")?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for JoinGroupResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 6;
        if version >= 2 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        w.i32(self.generation_id);
        // The protocol type is ignorable: dropped silently before v7.
        if version >= 7 {
            w.nullable_string(self.protocol_type.as_deref(), flexible)?;
        }
        w.string_field(self.protocol_name.as_deref(), version >= 7, flexible, "protocol_name", version)?;
        w.string(&self.leader, flexible)?;
        if version >= 9 {
            w.bool(self.skip_assignment);
        } else if self.skip_assignment {
            w.unavailable("skip_assignment", version)?;
        }
        w.string(&self.member_id, flexible)?;
        w.array(&self.members, flexible, |w, m| m.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for JoinGroupResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 6;
        let mut out = Self::default();
        if version >= 2 {
            out.throttle_time_ms = r.i32()?;
        }
        out.error_code = r.i16()?;
        out.generation_id = r.i32()?;
        if version >= 7 {
            out.protocol_type = r.nullable_string(flexible)?;
        }
        out.protocol_name = r.string_field(version >= 7, flexible, "protocol_name")?;
        out.leader = r.string(flexible, "leader")?;
        if version >= 9 {
            out.skip_assignment = r.bool()?;
        }
        out.member_id = r.string(flexible, "member_id")?;
        out.members = r.array(flexible, "members", |r| JoinGroupResponseMember::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for JoinGroupResponse {
    const API_KEY: ApiKey = ApiKey::JOIN_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    const FIRST_FLEXIBLE: Option<i16> = Some(6);
}

impl Response for JoinGroupResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::BytesMut;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<JoinGroupRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<JoinGroupResponse>();
    }

    #[test]
    fn v5_request_by_hand() {
        let req = JoinGroupRequest {
            group_id: "g".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 300,
            member_id: String::new(),
            group_instance_id: Some("i".into()),
            protocol_type: "consumer".into(),
            protocols: vec![JoinGroupRequestProtocol {
                name: "range".into(),
                metadata: Bytes::from_static(&[9, 8]),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 1, b'g',                 // group_id
            0, 0, 0x27, 0x10,           // session_timeout_ms 10000
            0, 0, 0x01, 0x2c,           // rebalance_timeout_ms 300
            0, 0,                       // member_id ""
            0, 1, b'i',                 // group_instance_id
            0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', // protocol_type
            0, 0, 0, 1,                 // protocols: 1
            0, 5, b'r', b'a', b'n', b'g', b'e', // name
            0, 0, 0, 2, 9, 8,           //   metadata
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(JoinGroupRequest::decode_body(Bytes::from_static(expected), 5).unwrap(), req);
    }

    #[test]
    fn v9_response_by_hand() {
        let resp = JoinGroupResponse {
            throttle_time_ms: 0,
            error_code: 0,
            generation_id: 1,
            protocol_type: Some("c".into()),
            protocol_name: None,
            leader: "l".into(),
            skip_assignment: true,
            member_id: "m".into(),
            members: vec![JoinGroupResponseMember {
                member_id: "l".into(),
                group_instance_id: None,
                metadata: Bytes::from_static(&[7]),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,     // throttle_time_ms
            0, 0,           // error_code
            0, 0, 0, 1,     // generation_id
            2, b'c',        // protocol_type
            0,              // protocol_name: null
            2, b'l',        // leader
            1,              // skip_assignment
            2, b'm',        // member_id
            2,              // members: 1
            2, b'l',        //   member_id
            0,              //   group_instance_id: null
            2, 7,           //   metadata
            0,              //   tagged fields
            0,              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 9).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(JoinGroupResponse::decode_body(Bytes::from_static(expected), 9).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = JoinGroupRequest { group_instance_id: Some("i".into()), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 4),
            Err(EncodeError::FieldNotAvailable { field: "group_instance_id", version: 4 })
        );
        let resp = JoinGroupResponse {
            skip_assignment: true,
            protocol_name: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 8),
            Err(EncodeError::FieldNotAvailable { field: "skip_assignment", version: 8 })
        );
        // Before v7 the protocol name may not be null.
        let resp = JoinGroupResponse::default();
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 6),
            Err(EncodeError::NullNotAllowed { field: "protocol_name", version: 6 })
        );
    }
}
