//! AlterConfigs (key 33): replaces the whole config set of topics, brokers or broker loggers
//! (configs not listed revert to their defaults; see IncrementalAlterConfigs for per-key edits).
//!
//! Versions:
//! - v0: resources with the configs to set and `validate_only`.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Sets the configs of some resources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterConfigsRequest {
    /// The resources to change.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub resources: Vec<AlterConfigsResource>,
    /// Only validate the request, change nothing.
    pub validate_only: bool,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One resource and its new configs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterConfigsResource {
    /// The resource type (2 topic, 4 broker, 8 broker logger).
    pub resource_type: i8,
    /// The resource name.
    pub resource_name: String,
    /// The configs to set.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub configs: Vec<AlterableConfig>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One config to set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterableConfig {
    /// The config name.
    pub name: String,
    /// The value to set.
    pub value: Option<String>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AlterableConfig {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.name, flexible)?;
        w.nullable_string(self.value.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AlterableConfig {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            value: r.nullable_string(flexible)?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for AlterConfigsResource {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i8(self.resource_type);
        w.string(&self.resource_name, flexible)?;
        w.array(&self.configs, flexible, |w, c| c.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AlterConfigsResource {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            resource_type: r.i8()?,
            resource_name: r.string(flexible, "resource_name")?,
            configs: r.array(flexible, "configs", |r| AlterableConfig::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for AlterConfigsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.array(&self.resources, flexible, |w, r| r.encode(w, version))?;
        w.bool(self.validate_only);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AlterConfigsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            resources: r.array(flexible, "resources", |r| AlterConfigsResource::decode(r, version))?,
            validate_only: r.bool()?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for AlterConfigsRequest {
    const API_KEY: ApiKey = ApiKey::ALTER_CONFIGS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for AlterConfigsRequest {
    type Response = AlterConfigsResponse;
}

/// The result of changing each resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterConfigsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per resource.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub responses: Vec<AlterConfigsResourceResponse>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterConfigsResourceResponse {
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// The resource type.
    pub resource_type: i8,
    /// The resource name.
    pub resource_name: String,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AlterConfigsResourceResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), flexible)?;
        w.i8(self.resource_type);
        w.string(&self.resource_name, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AlterConfigsResourceResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            error_code: r.i16()?,
            error_message: r.nullable_string(flexible)?,
            resource_type: r.i8()?,
            resource_name: r.string(flexible, "resource_name")?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for AlterConfigsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.throttle_time_ms);
        w.array(&self.responses, flexible, |w, r| r.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AlterConfigsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            responses: r
                .array(flexible, "responses", |r| AlterConfigsResourceResponse::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for AlterConfigsResponse {
    const API_KEY: ApiKey = ApiKey::ALTER_CONFIGS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for AlterConfigsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<AlterConfigsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<AlterConfigsResponse>();
    }

    #[test]
    fn request_v2_by_hand() {
        let req = AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: 2,
                resource_name: "t".into(),
                configs: vec![AlterableConfig { name: "k".into(), value: None, ..Default::default() }],
                ..Default::default()
            }],
            validate_only: false,
            ..Default::default()
        };
        let expected: &[u8] = &[
            2, // one resource
            2, // resource_type
            2, b't', // resource_name
            2,    // one config
            2, b'k', 0, 0, // name, null value, tags
            0, // resource tags
            0, // validate_only
            0, // tags
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(AlterConfigsRequest::decode_body(Bytes::from_static(expected), 2).unwrap(), req);
    }

    #[test]
    fn response_v1_by_hand() {
        let resp = AlterConfigsResponse {
            throttle_time_ms: 10,
            responses: vec![AlterConfigsResourceResponse {
                error_code: 40, // INVALID_CONFIG
                error_message: Some("e".into()),
                resource_type: 4,
                resource_name: "1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 10, 0, 0, 0, 1, 0, 40, 0, 1, b'e', 4, 0, 1, b'1'];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(AlterConfigsResponse::decode_body(Bytes::from_static(expected), 1).unwrap(), resp);
    }
}
