//! DeleteGroups (key 42): deletes empty consumer groups and their committed offsets.
//!
//! Versions:
//! - v0: the group ids.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Deletes groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteGroupsRequest {
    /// The ids of the groups to delete (the protocol calls them `GroupsNames`).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups_names: Vec<String>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DeleteGroupsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string_array(&self.groups_names, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteGroupsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            groups_names: r.array(flexible, "groups_names", |r| r.string(flexible, "groups_names"))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteGroupsRequest {
    const API_KEY: ApiKey = ApiKey::DELETE_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for DeleteGroupsRequest {
    type Response = DeleteGroupsResponse;
}

/// The result of deleting each group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeleteGroupsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per group.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results: Vec<DeletableGroupResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result of deleting one group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeletableGroupResult {
    /// The group id.
    pub group_id: String,
    /// The error code, or 0.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DeletableGroupResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.group_id, flexible)?;
        w.i16(self.error_code);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeletableGroupResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out =
            Self { group_id: r.string(flexible, "group_id")?, error_code: r.i16()?, ..Self::default() };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DeleteGroupsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.throttle_time_ms);
        w.array(&self.results, flexible, |w, g| g.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DeleteGroupsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            results: r.array(flexible, "results", |r| DeletableGroupResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DeleteGroupsResponse {
    const API_KEY: ApiKey = ApiKey::DELETE_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for DeleteGroupsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DeleteGroupsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DeleteGroupsResponse>();
    }

    #[test]
    fn request_v1_and_v2_by_hand() {
        let req = DeleteGroupsRequest { groups_names: vec!["g1".into(), "g2".into()], ..Default::default() };
        let v1: &[u8] = &[0, 0, 0, 2, 0, 2, b'g', b'1', 0, 2, b'g', b'2'];
        let v2: &[u8] = &[3, 3, b'g', b'1', 3, b'g', b'2', 0];
        for (version, expected) in [(1, v1), (2, v2)] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            let decoded =
                DeleteGroupsRequest::decode_body(Bytes::copy_from_slice(expected), version).unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn response_v2_by_hand() {
        let resp = DeleteGroupsResponse {
            throttle_time_ms: 0,
            results: vec![DeletableGroupResult {
                group_id: "g".into(),
                error_code: 68, // NON_EMPTY_GROUP
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 2, 2, b'g', 0, 68, 0, 0];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DeleteGroupsResponse::decode_body(Bytes::from_static(expected), 2).unwrap(), resp);
    }
}
