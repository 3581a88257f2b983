//! DescribeConfigs (key 32): reads the configs of topics, brokers and broker loggers.
//!
//! Versions:
//! - v0: resources with optional key lists; the response has each config's value, read-only,
//!   is-default and sensitive flags.
//! - v1: the request adds `include_synonyms`; the response replaces `is_default` with
//!   `config_source` and adds the synonyms.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: the request adds `include_documentation`; the response adds each config's type and
//!   documentation (KIP-569).
//! - v4: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks for the configs of some resources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsRequest {
    /// The resources to describe.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub resources: Vec<DescribeConfigsResource>,
    /// Whether to include each config's synonyms (v1+).
    pub include_synonyms: bool,
    /// Whether to include each config's documentation (v3+).
    pub include_documentation: bool,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One resource to describe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsResource {
    /// The resource type (2 topic, 4 broker, 8 broker logger).
    pub resource_type: i8,
    /// The resource name.
    pub resource_name: String,
    /// The config keys to describe, or None for all of them.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub configuration_keys: Option<Vec<String>>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeConfigsResource {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.i8(self.resource_type);
        w.string(&self.resource_name, flexible)?;
        w.nullable_array(self.configuration_keys.as_deref(), flexible, |w, k| w.string(k, flexible))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsResource {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            resource_type: r.i8()?,
            resource_name: r.string(flexible, "resource_name")?,
            configuration_keys: r.nullable_array(flexible, |r| r.string(flexible, "configuration_keys"))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribeConfigsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.array(&self.resources, flexible, |w, r| r.encode(w, version))?;
        if version >= 1 {
            w.bool(self.include_synonyms);
        } else if self.include_synonyms {
            w.unavailable("include_synonyms", version)?;
        }
        if version >= 3 {
            w.bool(self.include_documentation);
        } else if self.include_documentation {
            w.unavailable("include_documentation", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            resources: r.array(flexible, "resources", |r| DescribeConfigsResource::decode(r, version))?,
            ..Self::default()
        };
        if version >= 1 {
            out.include_synonyms = r.bool()?;
        }
        if version >= 3 {
            out.include_documentation = r.bool()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DescribeConfigsRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_CONFIGS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Request for DescribeConfigsRequest {
    type Response = DescribeConfigsResponse;
}

/// The configs of each resource asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per resource.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results: Vec<DescribeConfigsResult>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The configs of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsResult {
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// The resource type.
    pub resource_type: i8,
    /// The resource name.
    pub resource_name: String,
    /// The resource's configs.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub configs: Vec<DescribeConfigsResourceResult>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsResourceResult {
    /// The config name.
    pub name: String,
    /// The config value (None for sensitive configs).
    pub value: Option<String>,
    /// Whether the config is read-only.
    pub read_only: bool,
    /// Whether the config is not set, so its default applies (v0 only).
    pub is_default: bool,
    /// Where the value comes from, -1 if unknown (v1+, ignorable). A v0 response carries
    /// `is_default` instead.
    pub config_source: i8,
    /// Whether the config is sensitive.
    pub is_sensitive: bool,
    /// The config's synonyms, in order of precedence (v1+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub synonyms: Vec<DescribeConfigsSynonym>,
    /// The config's data type, 0 if unknown (v3+, ignorable).
    pub config_type: i8,
    /// The config's documentation (v3+, ignorable).
    pub documentation: Option<String>,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for DescribeConfigsResourceResult {
    fn default() -> Self {
        Self {
            name: String::new(),
            value: None,
            read_only: false,
            is_default: false,
            config_source: -1,
            is_sensitive: false,
            synonyms: Vec::new(),
            config_type: 0,
            documentation: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// A synonym of a config: another key or level that sets the same value (v1+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeConfigsSynonym {
    /// The synonym name.
    pub name: String,
    /// The synonym value.
    pub value: Option<String>,
    /// Where the synonym's value comes from.
    pub source: i8,
    /// Tagged fields this crate does not know (v4+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeConfigsSynonym {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.name, flexible)?;
        w.nullable_string(self.value.as_deref(), flexible)?;
        w.i8(self.source);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsSynonym {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            value: r.nullable_string(flexible)?,
            source: r.i8()?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribeConfigsResourceResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.string(&self.name, flexible)?;
        w.nullable_string(self.value.as_deref(), flexible)?;
        w.bool(self.read_only);
        if version == 0 {
            w.bool(self.is_default);
        } else if self.is_default {
            w.unavailable("is_default", version)?;
        }
        // config_source, synonyms, config_type and documentation are ignorable: dropped
        // silently before they exist.
        if version >= 1 {
            w.i8(self.config_source);
        }
        w.bool(self.is_sensitive);
        if version >= 1 {
            w.array(&self.synonyms, flexible, |w, s| s.encode(w, version))?;
        }
        if version >= 3 {
            w.i8(self.config_type);
            w.nullable_string(self.documentation.as_deref(), flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsResourceResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            value: r.nullable_string(flexible)?,
            read_only: r.bool()?,
            ..Self::default()
        };
        if version == 0 {
            out.is_default = r.bool()?;
        }
        if version >= 1 {
            out.config_source = r.i8()?;
        }
        out.is_sensitive = r.bool()?;
        if version >= 1 {
            out.synonyms = r.array(flexible, "synonyms", |r| DescribeConfigsSynonym::decode(r, version))?;
        }
        if version >= 3 {
            out.config_type = r.i8()?;
            out.documentation = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribeConfigsResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), flexible)?;
        w.i8(self.resource_type);
        w.string(&self.resource_name, flexible)?;
        w.array(&self.configs, flexible, |w, c| c.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            error_code: r.i16()?,
            error_message: r.nullable_string(flexible)?,
            resource_type: r.i8()?,
            resource_name: r.string(flexible, "resource_name")?,
            configs: r.array(flexible, "configs", |r| DescribeConfigsResourceResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for DescribeConfigsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 4;
        w.i32(self.throttle_time_ms);
        w.array(&self.results, flexible, |w, r| r.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for DescribeConfigsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 4;
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            results: r.array(flexible, "results", |r| DescribeConfigsResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for DescribeConfigsResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_CONFIGS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(4);
}

impl Response for DescribeConfigsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeConfigsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeConfigsResponse>();
    }

    #[test]
    fn request_v3_by_hand() {
        let req = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: 2,
                resource_name: "t".into(),
                configuration_keys: None,
                ..Default::default()
            }],
            include_synonyms: true,
            include_documentation: false,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 1, // one resource
            2, // resource_type topic
            0, 1, b't', // resource_name
            0xff, 0xff, 0xff, 0xff, // null configuration_keys: all of them
            1,    // include_synonyms
            0,    // include_documentation
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeConfigsRequest::decode_body(Bytes::from_static(expected), 3).unwrap(), req);
    }

    #[test]
    fn response_v0_and_v4_by_hand() {
        let config = |is_default, config_source, synonyms| DescribeConfigsResourceResult {
            name: "k".into(),
            value: Some("v".into()),
            read_only: false,
            is_default,
            config_source,
            is_sensitive: false,
            synonyms,
            config_type: 0,
            documentation: None,
            ..Default::default()
        };
        let response = |c| DescribeConfigsResponse {
            throttle_time_ms: 0,
            results: vec![DescribeConfigsResult {
                error_code: 0,
                error_message: None,
                resource_type: 2,
                resource_name: "t".into(),
                configs: vec![c],
                ..Default::default()
            }],
            ..Default::default()
        };

        let v0 = response(config(true, -1, vec![]));
        let expected_v0: &[u8] = &[
            0, 0, 0, 0, // throttle_time_ms
            0, 0, 0, 1, // one result
            0, 0, // error_code
            0xff, 0xff, // null error_message
            2,    // resource_type
            0, 1, b't', // resource_name
            0, 0, 0, 1, // one config
            0, 1, b'k', // name
            0, 1, b'v', // value
            0,    // read_only
            1,    // is_default
            0,    // is_sensitive
        ];
        let mut buf = BytesMut::new();
        v0.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected_v0);
        assert_eq!(DescribeConfigsResponse::decode_body(Bytes::from_static(expected_v0), 0).unwrap(), v0);

        let synonym =
            DescribeConfigsSynonym { name: "s".into(), value: None, source: 5, ..Default::default() };
        let v4 = response(config(false, 5, vec![synonym]));
        let expected_v4: &[u8] = &[
            0, 0, 0, 0, // throttle_time_ms
            2, // one result
            0, 0, // error_code
            0, // null error_message
            2, // resource_type
            2, b't', // resource_name
            2,    // one config
            2, b'k', // name
            2, b'v', // value
            0,    // read_only
            5,    // config_source: default config
            0,    // is_sensitive
            2,    // one synonym
            2, b's', 0, 5, 0, // name, null value, source, tags
            0, // config_type
            0, // null documentation
            0, // config tags
            0, // result tags
            0, // response tags
        ];
        let mut buf = BytesMut::new();
        v4.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected_v4);
        assert_eq!(DescribeConfigsResponse::decode_body(Bytes::from_static(expected_v4), 4).unwrap(), v4);
    }

    #[test]
    fn fields_not_available_at_old_versions() {
        let req = DescribeConfigsRequest { include_synonyms: true, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "include_synonyms", version: 0 });

        let req = DescribeConfigsRequest { include_documentation: true, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 2).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "include_documentation", version: 2 });

        let resp = DescribeConfigsResponse {
            results: vec![DescribeConfigsResult {
                configs: vec![DescribeConfigsResourceResult { is_default: true, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = resp.encode_body(&mut BytesMut::new(), 1).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "is_default", version: 1 });
    }
}
