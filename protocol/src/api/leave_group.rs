//! LeaveGroup (key 13): members leave a classic group.
//!
//! Versions:
//! - v0: group id and the one leaving member id.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: batching (KIP-345): the request lists leaving `members` (member id and static id)
//!   instead of one `member_id`; the response adds a result per member.
//! - v4: first flexible version.
//! - v5: each leaving member adds a `reason` (KIP-800).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Removes one member (v0-2) or several (v3+) from a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct LeaveGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The member that leaves (v0-2).
    pub member_id: String,
    /// The members that leave (v3+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub members: Vec<MemberIdentity>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One leaving member of a [`LeaveGroupRequest`] (v3+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MemberIdentity {
    /// The member id.
    pub member_id: String,
    /// The member's static id, if any.
    pub group_instance_id: Option<String>,
    /// Why the member leaves (v5+, ignorable).
    pub reason: Option<String>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for MemberIdentity {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.member_id, flexible)?;
        w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        // The reason is ignorable: dropped silently before v5.
        if version >= 5 {
            w.nullable_string(self.reason.as_deref(), flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MemberIdentity {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            member_id: r.string(flexible, "member_id")?,
            group_instance_id: r.nullable_string(flexible)?,
            ..Self::default()
        };
        if version >= 5 {
            out.reason = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for LeaveGroupRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.group_id, flexible)?;
        if version <= 2 {
            w.string(&self.member_id, flexible)?;
            if !self.members.is_empty() {
                w.unavailable("members", version)?;
            }
        } else {
            if !self.member_id.is_empty() {
                w.unavailable("member_id", version)?;
            }
            w.array(&self.members, flexible, |w, m| m.encode(w, version))?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for LeaveGroupRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self { group_id: r.string(flexible, "group_id")?, ..Self::default() };
        if version <= 2 {
            out.member_id = r.string(flexible, "member_id")?;
        } else {
            out.members = r.array(flexible, "members", |r| MemberIdentity::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for LeaveGroupRequest {
    const API_KEY: ApiKey = ApiKey::LEAVE_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Request for LeaveGroupRequest {
    type Response = LeaveGroupResponse;
}

/// The result of leaving, overall and (v3+) per member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct LeaveGroupResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// The result per leaving member (v3+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub members: Vec<MemberResponse>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one leaving member of a [`LeaveGroupResponse`] (v3+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MemberResponse {
    /// The member id.
    pub member_id: String,
    /// The member's static id, if any.
    pub group_instance_id: Option<String>,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for MemberResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.member_id, flexible)?;
        w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        w.i16(self.error_code);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MemberResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        Ok(Self {
            member_id: r.string(flexible, "member_id")?,
            group_instance_id: r.nullable_string(flexible)?,
            error_code: r.i16()?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for LeaveGroupResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        if version >= 3 {
            w.array(&self.members, flexible, |w, m| m.encode(w, version))?;
        } else if !self.members.is_empty() {
            w.unavailable("members", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for LeaveGroupResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.error_code = r.i16()?;
        if version >= 3 {
            out.members = r.array(flexible, "members", |r| MemberResponse::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for LeaveGroupResponse {
    const API_KEY: ApiKey = ApiKey::LEAVE_GROUP;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Response for LeaveGroupResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<LeaveGroupRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<LeaveGroupResponse>();
    }

    #[test]
    fn v0_request_by_hand() {
        let req = LeaveGroupRequest { group_id: "g".into(), member_id: "m".into(), ..Default::default() };
        let expected: &[u8] = &[0, 1, b'g', 0, 1, b'm'];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(LeaveGroupRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn v5_request_and_v3_response_by_hand() {
        let req = LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![MemberIdentity {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                reason: Some("r".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, b'g',    // group_id
            2,          // members: 1
            2, b'm',    //   member_id
            2, b'i',    //   group_instance_id
            2, b'r',    //   reason
            0,          //   tagged fields
            0,          // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(LeaveGroupRequest::decode_body(Bytes::from_static(expected), 5).unwrap(), req);

        let resp = LeaveGroupResponse {
            throttle_time_ms: 0,
            error_code: 0,
            members: vec![MemberResponse {
                member_id: "m".into(),
                group_instance_id: None,
                error_code: 25,
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,     // throttle_time_ms
            0, 0,           // error_code
            0, 0, 0, 1,     // members: 1
            0, 1, b'm',     //   member_id
            0xff, 0xff,     //   group_instance_id: null
            0, 25,          //   error_code
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(LeaveGroupResponse::decode_body(Bytes::from_static(expected), 3).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = LeaveGroupRequest { members: vec![MemberIdentity::default()], ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "members", version: 2 })
        );
        let req = LeaveGroupRequest { member_id: "m".into(), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 3),
            Err(EncodeError::FieldNotAvailable { field: "member_id", version: 3 })
        );
        let resp = LeaveGroupResponse { members: vec![MemberResponse::default()], ..Default::default() };
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "members", version: 2 })
        );
    }
}
