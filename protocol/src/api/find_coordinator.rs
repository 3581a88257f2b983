//! FindCoordinator (key 10): which broker coordinates a group, a transaction or a share group.
//!
//! Versions:
//! - v0: one group key; the response carries the coordinator's node id, host and port.
//! - v1: the request adds `key_type` (group or transaction); the response adds
//!   `throttle_time_ms` and an error message.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: first flexible version.
//! - v4: batching (KIP-699): the request sends `coordinator_keys` instead of `key`, the response
//!   answers with one [`Coordinator`] per key instead of the single-coordinator fields.
//! - v5: same layout; TRANSACTION_ABORTABLE may be returned (KIP-890).
//! - v6: same layout; share group keys (KIP-932).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks which broker coordinates one key (v0-3) or several (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FindCoordinatorRequest {
    /// The coordinator key (v0-3).
    pub key: String,
    /// The key type: 0 group, 1 transaction, 2 share group (v1+).
    pub key_type: i8,
    /// The coordinator keys (v4+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub coordinator_keys: Vec<String>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for FindCoordinatorRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        if version <= 3 {
            w.string(&self.key, flexible)?;
        } else if !self.key.is_empty() {
            w.unavailable("key", version)?;
        }
        if version >= 1 {
            w.i8(self.key_type);
        } else if self.key_type != 0 {
            w.unavailable("key_type", version)?;
        }
        if version >= 4 {
            w.string_array(&self.coordinator_keys, flexible)?;
        } else if !self.coordinator_keys.is_empty() {
            w.unavailable("coordinator_keys", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FindCoordinatorRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self::default();
        if version <= 3 {
            out.key = r.string(flexible, "key")?;
        }
        if version >= 1 {
            out.key_type = r.i8()?;
        }
        if version >= 4 {
            out.coordinator_keys =
                r.array(flexible, "coordinator_keys", |r| r.string(flexible, "coordinator_keys"))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for FindCoordinatorRequest {
    const API_KEY: ApiKey = ApiKey::FIND_COORDINATOR;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Request for FindCoordinatorRequest {
    type Response = FindCoordinatorResponse;
}

/// The coordinator of one key (v0-3) or of each key asked for (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FindCoordinatorResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The error code, 0 on success (v0-3).
    pub error_code: i16,
    /// The error message, if any (v1-3, ignorable).
    pub error_message: Option<String>,
    /// The coordinator's node id (v0-3).
    pub node_id: i32,
    /// The coordinator's host name (v0-3).
    pub host: String,
    /// The coordinator's port (v0-3).
    pub port: i32,
    /// One result per key asked for (v4+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub coordinators: Vec<Coordinator>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The coordinator of one key of a batched [`FindCoordinatorResponse`] (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Coordinator {
    /// The coordinator key.
    pub key: String,
    /// The coordinator's node id.
    pub node_id: i32,
    /// The coordinator's host name.
    pub host: String,
    /// The coordinator's port.
    pub port: i32,
    /// The error code, 0 on success.
    pub error_code: i16,
    /// The error message, if any (ignorable).
    pub error_message: Option<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

// Coordinators exist only from v4, which is flexible.
impl Encode for Coordinator {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.key, true)?;
        w.i32(self.node_id);
        w.string(&self.host, true)?;
        w.i32(self.port);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for Coordinator {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            key: r.string(true, "key")?,
            node_id: r.i32()?,
            host: r.string(true, "host")?,
            port: r.i32()?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for FindCoordinatorResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version <= 3 {
            w.i16(self.error_code);
            // The error message is ignorable: dropped silently at v0.
            if version >= 1 {
                w.nullable_string(self.error_message.as_deref(), flexible)?;
            }
            w.i32(self.node_id);
            w.string(&self.host, flexible)?;
            w.i32(self.port);
            if !self.coordinators.is_empty() {
                w.unavailable("coordinators", version)?;
            }
        } else {
            if self.error_code != 0 {
                w.unavailable("error_code", version)?;
            }
            if self.node_id != 0 {
                w.unavailable("node_id", version)?;
            }
            if !self.host.is_empty() {
                w.unavailable("host", version)?;
            }
            if self.port != 0 {
                w.unavailable("port", version)?;
            }
            w.array(&self.coordinators, flexible, |w, c| c.encode(w, version))?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FindCoordinatorResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        if version <= 3 {
            out.error_code = r.i16()?;
            if version >= 1 {
                out.error_message = r.nullable_string(flexible)?;
            }
            out.node_id = r.i32()?;
            out.host = r.string(flexible, "host")?;
            out.port = r.i32()?;
        } else {
            out.coordinators = r.array(flexible, "coordinators", |r| Coordinator::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for FindCoordinatorResponse {
    const API_KEY: ApiKey = ApiKey::FIND_COORDINATOR;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Response for FindCoordinatorResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<FindCoordinatorRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<FindCoordinatorResponse>();
    }

    #[test]
    fn v1_request_and_response_by_hand() {
        let req = FindCoordinatorRequest { key: "g".into(), key_type: 1, ..Default::default() };
        let expected: &[u8] = &[0, 1, b'g', 1];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(FindCoordinatorRequest::decode_body(Bytes::from_static(expected), 1).unwrap(), req);

        let resp = FindCoordinatorResponse {
            throttle_time_ms: 0,
            error_code: 0,
            error_message: None,
            node_id: 2,
            host: "h".into(),
            port: 9092,
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,         // throttle_time_ms
            0, 0,               // error_code
            0xff, 0xff,         // error_message: null
            0, 0, 0, 2,         // node_id
            0, 1, b'h',         // host
            0, 0, 0x23, 0x84,   // port 9092
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(FindCoordinatorResponse::decode_body(Bytes::from_static(expected), 1).unwrap(), resp);
    }

    #[test]
    fn v4_request_and_response_by_hand() {
        let req =
            FindCoordinatorRequest { coordinator_keys: vec!["a".into(), "b".into()], ..Default::default() };
        let expected: &[u8] = &[0, 3, 2, b'a', 2, b'b', 0];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(FindCoordinatorRequest::decode_body(Bytes::from_static(expected), 4).unwrap(), req);

        let resp = FindCoordinatorResponse {
            throttle_time_ms: 1,
            coordinators: vec![Coordinator {
                key: "a".into(),
                node_id: 3,
                host: "h".into(),
                port: 1,
                error_code: 0,
                error_message: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 1,     // throttle_time_ms
            2,              // coordinators: 1
            2, b'a',        //   key
            0, 0, 0, 3,     //   node_id
            2, b'h',        //   host
            0, 0, 0, 1,     //   port
            0, 0,           //   error_code
            0,              //   error_message: null
            0,              //   tagged fields
            0,              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(FindCoordinatorResponse::decode_body(Bytes::from_static(expected), 4).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = FindCoordinatorRequest { key_type: 1, key: "g".into(), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 0),
            Err(EncodeError::FieldNotAvailable { field: "key_type", version: 0 })
        );
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 4),
            Err(EncodeError::FieldNotAvailable { field: "key", version: 4 })
        );
        let req = FindCoordinatorRequest { coordinator_keys: vec!["g".into()], ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 3),
            Err(EncodeError::FieldNotAvailable { field: "coordinator_keys", version: 3 })
        );
        let resp = FindCoordinatorResponse { node_id: 1, ..Default::default() };
        assert_eq!(
            resp.encode_body(&mut BytesMut::new(), 4),
            Err(EncodeError::FieldNotAvailable { field: "node_id", version: 4 })
        );
    }
}
