//! DescribeGroups (key 15): the state, protocol and members of classic groups.
//!
//! Versions:
//! - v0: a list of group ids; per group its state, protocol and members.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: the request adds `include_authorized_operations`; each group in the response adds
//!   `authorized_operations` (KIP-430).
//! - v4: each member in the response adds `group_instance_id` (KIP-345).
//! - v5: first flexible version.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Describes groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeGroupsRequest {
    /// The group ids to describe.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<String>,
    /// Whether to return the operations the caller may perform on each group (v3+).
    pub include_authorized_operations: bool,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeGroupsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.string_array(&self.groups, flexible)?;
        if version >= 3 {
            w.bool(self.include_authorized_operations);
        } else if self.include_authorized_operations {
            w.unavailable("include_authorized_operations", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeGroupsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            groups: r.array(flexible, "groups", |r| r.string(flexible, "groups"))?,
            ..Self::default()
        };
        if version >= 3 {
            out.include_authorized_operations = r.bool()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DescribeGroupsRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(5);
}

impl Request for DescribeGroupsRequest {
    type Response = DescribeGroupsResponse;
}

/// The description of each group asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeGroupsResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// One description per group.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<DescribedGroup>,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One group of a [`DescribeGroupsResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribedGroup {
    /// The error code, 0 on success.
    pub error_code: i16,
    /// The group id.
    pub group_id: String,
    /// The group state (e.g. "Stable"), or empty.
    pub group_state: String,
    /// The protocol type, or empty.
    pub protocol_type: String,
    /// The chosen protocol (filled in when the group is stable), or empty.
    pub protocol_data: String,
    /// The members (empty when the group is dead).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub members: Vec<DescribedGroupMember>,
    /// Bit field of the operations the caller may perform on the group; `i32::MIN` when not
    /// requested (v3+).
    pub authorized_operations: i32,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for DescribedGroup {
    fn default() -> Self {
        Self {
            error_code: 0,
            group_id: String::new(),
            group_state: String::new(),
            protocol_type: String::new(),
            protocol_data: String::new(),
            members: Vec::new(),
            authorized_operations: i32::MIN,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One member of a [`DescribedGroup`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribedGroupMember {
    /// The member id.
    pub member_id: String,
    /// The member's static id, if any (v4+, ignorable).
    pub group_instance_id: Option<String>,
    /// The client id of the member's last join.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The member's metadata for the chosen protocol (filled in when the group is stable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub member_metadata: Bytes,
    /// The member's current assignment (filled in when the group is stable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub member_assignment: Bytes,
    /// Tagged fields this crate does not know (v5+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribedGroupMember {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.string(&self.member_id, flexible)?;
        // The static id is ignorable: dropped silently before v4.
        if version >= 4 {
            w.nullable_string(self.group_instance_id.as_deref(), flexible)?;
        }
        w.string(&self.client_id, flexible)?;
        w.string(&self.client_host, flexible)?;
        w.bytes(&self.member_metadata, flexible)?;
        w.bytes(&self.member_assignment, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribedGroupMember {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self { member_id: r.string(flexible, "member_id")?, ..Self::default() };
        if version >= 4 {
            out.group_instance_id = r.nullable_string(flexible)?;
        }
        out.client_id = r.string(flexible, "client_id")?;
        out.client_host = r.string(flexible, "client_host")?;
        out.member_metadata = r.bytes(flexible, "member_metadata")?;
        out.member_assignment = r.bytes(flexible, "member_assignment")?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribedGroup {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        w.i16(self.error_code);
        w.string(&self.group_id, flexible)?;
        w.string(&self.group_state, flexible)?;
        w.string(&self.protocol_type, flexible)?;
        w.string(&self.protocol_data, flexible)?;
        w.array(&self.members, flexible, |w, m| m.encode(w, version))?;
        if version >= 3 {
            w.i32(self.authorized_operations);
        } else if self.authorized_operations != i32::MIN {
            w.unavailable("authorized_operations", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribedGroup {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self {
            error_code: r.i16()?,
            group_id: r.string(flexible, "group_id")?,
            group_state: r.string(flexible, "group_state")?,
            protocol_type: r.string(flexible, "protocol_type")?,
            protocol_data: r.string(flexible, "protocol_data")?,
            members: r.array(flexible, "members", |r| DescribedGroupMember::decode(r, version))?,
            ..Self::default()
        };
        if version >= 3 {
            out.authorized_operations = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribeGroupsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 5;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.array(&self.groups, flexible, |w, g| g.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeGroupsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 5;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.groups = r.array(flexible, "groups", |r| DescribedGroup::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DescribeGroupsResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(5);
}

impl Response for DescribeGroupsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::BytesMut;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeGroupsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeGroupsResponse>();
    }

    #[test]
    fn v3_request_by_hand() {
        let req = DescribeGroupsRequest {
            groups: vec!["a".into(), "b".into()],
            include_authorized_operations: true,
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 2, 0, 1, b'a', 0, 1, b'b', 1];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeGroupsRequest::decode_body(Bytes::from_static(expected), 3).unwrap(), req);
    }

    #[test]
    fn v5_response_by_hand() {
        let resp = DescribeGroupsResponse {
            throttle_time_ms: 0,
            groups: vec![DescribedGroup {
                error_code: 0,
                group_id: "g".into(),
                group_state: "S".into(),
                protocol_type: "c".into(),
                protocol_data: "r".into(),
                members: vec![DescribedGroupMember {
                    member_id: "m".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "h".into(),
                    member_metadata: Bytes::from_static(&[1]),
                    member_assignment: Bytes::new(),
                    ..Default::default()
                }],
                authorized_operations: 8,
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,     // throttle_time_ms
            2,              // groups: 1
            0, 0,           //   error_code
            2, b'g',        //   group_id
            2, b'S',        //   group_state
            2, b'c',        //   protocol_type
            2, b'r',        //   protocol_data
            2,              //   members: 1
            2, b'm',        //     member_id
            0,              //     group_instance_id: null
            2, b'c',        //     client_id
            2, b'h',        //     client_host
            2, 1,           //     member_metadata
            1,              //     member_assignment: empty
            0,              //     tagged fields
            0, 0, 0, 8,     //   authorized_operations
            0,              //   tagged fields
            0,              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeGroupsResponse::decode_body(Bytes::from_static(expected), 5).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = DescribeGroupsRequest { include_authorized_operations: true, ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "include_authorized_operations", version: 2 })
        );
        let resp = DescribeGroupsResponse {
            groups: vec![DescribedGroup { authorized_operations: 0, ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "authorized_operations", version: 2 })
        );
        // The default (not requested) is fine at every version.
        let resp = DescribeGroupsResponse { groups: vec![DescribedGroup::default()], ..Default::default() };
        assert!(resp.encode_body(&mut BytesMut::new(), 0).is_ok());
    }
}
