//! DescribeCluster (key 60): the cluster id, controller and brokers (or controllers), for admin
//! clients (KIP-700).
//!
//! Versions:
//! - v0: first version, flexible from the start.
//! - v1: both request and response add `endpoint_type`, so a client can describe the
//!   controllers instead of the brokers; MISMATCHED_ENDPOINT_TYPE and UNSUPPORTED_ENDPOINT_TYPE
//!   may be returned (KIP-919).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks for the cluster's id, controller and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeClusterRequest {
    /// Whether to include the operations the client may perform on the cluster.
    pub include_cluster_authorized_operations: bool,
    /// Which nodes to describe: 1 brokers (the default), 2 controllers (v1+).
    pub endpoint_type: i8,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for DescribeClusterRequest {
    fn default() -> Self {
        Self {
            include_cluster_authorized_operations: false,
            endpoint_type: 1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for DescribeClusterRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.bool(self.include_cluster_authorized_operations);
        if version >= 1 {
            w.i8(self.endpoint_type);
        } else if self.endpoint_type != 1 {
            w.unavailable("endpoint_type", version)?;
        }
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeClusterRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self { include_cluster_authorized_operations: r.bool()?, ..Self::default() };
        if version >= 1 {
            out.endpoint_type = r.i8()?;
        }
        out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        Ok(out)
    }
}

impl Message for DescribeClusterRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_CLUSTER;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for DescribeClusterRequest {
    type Response = DescribeClusterResponse;
}

/// The cluster's id, controller and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeClusterResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The top-level error code, or 0.
    pub error_code: i16,
    /// The top-level error message, or None.
    pub error_message: Option<String>,
    /// Which nodes were described: 1 brokers (the default), 2 controllers (v1+).
    pub endpoint_type: i8,
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's id, or -1.
    pub controller_id: i32,
    /// The nodes described.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub brokers: Vec<DescribeClusterBroker>,
    /// A bit field of the operations the client may perform on the cluster, `i32::MIN` when
    /// not asked for.
    pub cluster_authorized_operations: i32,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for DescribeClusterResponse {
    fn default() -> Self {
        Self {
            throttle_time_ms: 0,
            error_code: 0,
            error_message: None,
            endpoint_type: 1,
            cluster_id: String::new(),
            controller_id: -1,
            brokers: Vec::new(),
            cluster_authorized_operations: i32::MIN,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeClusterBroker {
    /// The node id.
    pub broker_id: i32,
    /// The host name.
    pub host: String,
    /// The port.
    pub port: i32,
    /// The rack, or None.
    pub rack: Option<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeClusterBroker {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.broker_id);
        w.string(&self.host, true)?;
        w.i32(self.port);
        w.nullable_string(self.rack.as_deref(), true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeClusterBroker {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            broker_id: r.i32()?,
            host: r.string(true, "host")?,
            port: r.i32()?,
            rack: r.nullable_string(true)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeClusterResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        if version >= 1 {
            w.i8(self.endpoint_type);
        } else if self.endpoint_type != 1 {
            w.unavailable("endpoint_type", version)?;
        }
        w.string(&self.cluster_id, true)?;
        w.i32(self.controller_id);
        w.array(&self.brokers, true, |w, b| b.encode(w, version))?;
        w.i32(self.cluster_authorized_operations);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeClusterResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            ..Self::default()
        };
        if version >= 1 {
            out.endpoint_type = r.i8()?;
        }
        out.cluster_id = r.string(true, "cluster_id")?;
        out.controller_id = r.i32()?;
        out.brokers = r.array(true, "brokers", |r| DescribeClusterBroker::decode(r, version))?;
        out.cluster_authorized_operations = r.i32()?;
        out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        Ok(out)
    }
}

impl Message for DescribeClusterResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_CLUSTER;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for DescribeClusterResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeClusterRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeClusterResponse>();
    }

    #[test]
    fn request_v0_and_v1_by_hand() {
        let req =
            DescribeClusterRequest { include_cluster_authorized_operations: true, ..Default::default() };
        for (version, expected) in [(0, &[1, 0][..]), (1, &[1, 1, 0][..])] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            let decoded =
                DescribeClusterRequest::decode_body(Bytes::copy_from_slice(expected), version).unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn response_v1_by_hand() {
        let resp = DescribeClusterResponse {
            throttle_time_ms: 0,
            error_code: 0,
            error_message: None,
            endpoint_type: 2,
            cluster_id: "c".into(),
            controller_id: 1,
            brokers: vec![DescribeClusterBroker {
                broker_id: 1,
                host: "h".into(),
                port: 9093,
                rack: None,
                ..Default::default()
            }],
            cluster_authorized_operations: i32::MIN,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 0, // throttle_time_ms
            0, 0, // error_code
            0, // null error_message
            2, // endpoint_type: controllers
            2, b'c', // cluster_id
            0, 0, 0, 1, // controller_id
            2, // one broker
            0, 0, 0, 1, // broker_id
            2, b'h', // host
            0, 0, 0x23, 0x85, // port 9093
            0,    // null rack
            0,    // broker tags
            0x80, 0, 0, 0, // cluster_authorized_operations: not asked for
            0, // tags
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeClusterResponse::decode_body(Bytes::from_static(expected), 1).unwrap(), resp);
    }

    #[test]
    fn endpoint_type_is_not_available_in_v0() {
        let req = DescribeClusterRequest { endpoint_type: 2, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "endpoint_type", version: 0 });
        let resp = DescribeClusterResponse { endpoint_type: 2, ..Default::default() };
        let err = resp.encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "endpoint_type", version: 0 });
        // The default brokers endpoint is fine in v0.
        DescribeClusterRequest::default().encode_body(&mut BytesMut::new(), 0).unwrap();
    }
}
