//! Heartbeat (key 12): a classic group member tells the coordinator it is alive.
//!
//! Versions:
//! - v0: group id, generation and member id; the response is an error code.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: the request adds `group_instance_id` (static membership, KIP-345).
//! - v4: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// A member's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HeartbeatRequest {
    /// The group id.
    pub group_id: String,
    /// The generation the member belongs to.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static member id given by the user, if any (v3+).
    pub group_instance_id: Option<String>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for HeartbeatRequest {
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
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for HeartbeatRequest {
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
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for HeartbeatRequest {
    const API_KEY: ApiKey = ApiKey::HEARTBEAT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Request for HeartbeatRequest {
    type Response = HeartbeatResponse;
}

/// The coordinator's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HeartbeatResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success (REBALANCE_IN_PROGRESS asks the member to rejoin).
    pub error_code: i16,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for HeartbeatResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        if version >= 4 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for HeartbeatResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        out.error_code = r.i16()?;
        if version >= 4 {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for HeartbeatResponse {
    const API_KEY: ApiKey = ApiKey::HEARTBEAT;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Response for HeartbeatResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<HeartbeatRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<HeartbeatResponse>();
    }

    #[test]
    fn v4_request_and_v0_response_by_hand() {
        let req = HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 2,
            member_id: "m".into(),
            group_instance_id: None,
            ..Default::default()
        };
        // Compact strings, a null compact string, then an empty tagged-field section.
        let expected: &[u8] = &[2, b'g', 0, 0, 0, 2, 2, b'm', 0, 0];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(HeartbeatRequest::decode_body(Bytes::from_static(expected), 4).unwrap(), req);

        let resp = HeartbeatResponse { error_code: 27, ..Default::default() };
        let expected: &[u8] = &[0, 27];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(HeartbeatResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
    }

    #[test]
    fn group_instance_id_is_refused_before_v3() {
        let req = HeartbeatRequest { group_instance_id: Some("i".into()), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 2),
            Err(EncodeError::FieldNotAvailable { field: "group_instance_id", version: 2 })
        );
        assert!(req.encode_body(&mut BytesMut::new(), 3).is_ok());
    }
}
