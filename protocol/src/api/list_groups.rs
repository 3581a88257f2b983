//! ListGroups (key 16): the groups a broker coordinates.
//!
//! Versions:
//! - v0: no request fields; the response lists group ids and protocol types.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: first flexible version.
//! - v4: the request adds `states_filter`, the response each group's state (KIP-518).
//! - v5: the request adds `types_filter`, the response each group's type (KIP-848).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Lists groups, optionally filtered by state and type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListGroupsRequest {
    /// Only groups in these states; empty for all (v4+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub states_filter: Vec<String>,
    /// Only groups of these types; empty for all (v5+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub types_filter: Vec<String>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ListGroupsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        if version >= 4 {
            w.string_array(&self.states_filter, flexible)?;
        } else if !self.states_filter.is_empty() {
            w.unavailable("states_filter", version)?;
        }
        if version >= 5 {
            w.string_array(&self.types_filter, flexible)?;
        } else if !self.types_filter.is_empty() {
            w.unavailable("types_filter", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListGroupsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self::default();
        if version >= 4 {
            out.states_filter =
                r.array(flexible, "states_filter", |r| r.string(flexible, "states_filter"))?;
        }
        if version >= 5 {
            out.types_filter = r.array(flexible, "types_filter", |r| r.string(flexible, "types_filter"))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ListGroupsRequest {
    const API_KEY: ApiKey = ApiKey::LIST_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Request for ListGroupsRequest {
    type Response = ListGroupsResponse;
}

/// The groups the broker coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListGroupsResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// One entry per group.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub groups: Vec<ListedGroup>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One group of a [`ListGroupsResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListedGroup {
    /// The group id.
    pub group_id: String,
    /// The group's protocol type (empty for simple groups).
    pub protocol_type: String,
    /// The group state (v4+, ignorable).
    pub group_state: String,
    /// The group type, e.g. "classic" or "consumer" (v5+, ignorable).
    pub group_type: String,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ListedGroup {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        w.string(&self.group_id, flexible)?;
        w.string(&self.protocol_type, flexible)?;
        // State and type are ignorable: dropped silently at versions without them.
        if version >= 4 {
            w.string(&self.group_state, flexible)?;
        }
        if version >= 5 {
            w.string(&self.group_type, flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListedGroup {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self {
            group_id: r.string(flexible, "group_id")?,
            protocol_type: r.string(flexible, "protocol_type")?,
            ..Self::default()
        };
        if version >= 4 {
            out.group_state = r.string(flexible, "group_state")?;
        }
        if version >= 5 {
            out.group_type = r.string(flexible, "group_type")?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for ListGroupsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        w.array(&self.groups, flexible, |w, g| g.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ListGroupsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.error_code = r.i16()?;
        out.groups = r.array(flexible, "groups", |r| ListedGroup::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ListGroupsResponse {
    const API_KEY: ApiKey = ApiKey::LIST_GROUPS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Response for ListGroupsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ListGroupsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ListGroupsResponse>();
    }

    #[test]
    fn requests_by_hand() {
        // v0 has no fields at all.
        let mut buf = BytesMut::new();
        ListGroupsRequest::default().encode_body(&mut buf, 0).unwrap();
        assert!(buf.is_empty());
        assert_eq!(ListGroupsRequest::decode_body(Bytes::new(), 0).unwrap(), ListGroupsRequest::default());

        let req = ListGroupsRequest {
            states_filter: vec!["Stable".into()],
            types_filter: vec![],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, 7, b'S', b't', b'a', b'b', b'l', b'e', // states_filter
            1,                                        // types_filter: empty
            0,                                        // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(ListGroupsRequest::decode_body(Bytes::from_static(expected), 5).unwrap(), req);
    }

    #[test]
    fn v1_response_by_hand() {
        let resp = ListGroupsResponse {
            throttle_time_ms: 3,
            error_code: 0,
            groups: vec![ListedGroup {
                group_id: "g".into(),
                protocol_type: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 3,     // throttle_time_ms
            0, 0,           // error_code
            0, 0, 0, 1,     // groups: 1
            0, 1, b'g',     //   group_id
            0, 1, b'c',     //   protocol_type
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(ListGroupsResponse::decode_body(Bytes::from_static(expected), 1).unwrap(), resp);
    }

    #[test]
    fn unavailable_filters_are_refused() {
        let req = ListGroupsRequest { states_filter: vec!["Stable".into()], ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 3),
            Err(EncodeError::FieldNotAvailable { field: "states_filter", version: 3 })
        );
        let req = ListGroupsRequest { types_filter: vec!["consumer".into()], ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 4),
            Err(EncodeError::FieldNotAvailable { field: "types_filter", version: 4 })
        );
        // The response's state and type are ignorable.
        let resp = ListGroupsResponse {
            groups: vec![ListedGroup { group_state: "Stable".into(), ..Default::default() }],
            ..Default::default()
        };
        assert!(resp.encode_body(&mut BytesMut::new(), 3).is_ok());
    }
}
