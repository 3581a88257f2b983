//! ApiVersions (key 18): which versions of each API the broker implements.
//!
//! Versions:
//! - v0: the list of API keys with their min and max versions.
//! - v1: adds `throttle_time_ms` to the response.
//! - v2: same layout; brokers respond before throttling on quota violation.
//! - v3: first flexible version; the request carries the client software name and version
//!   (KIP-511), the response gains tagged fields for supported and finalized features (KIP-584).
//! - v4: same layout; SupportedFeatures.MinVersion may be 0 (KAFKA-17011).
//!
//! The response is always read with response header v0 (see
//! [`Response::header_version`]). When a broker does not
//! support the requested version it answers UNSUPPORTED_VERSION in v0 layout with its own
//! ApiVersions range in `api_keys`.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks a broker which API versions it supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersionsRequest {
    /// The name of the client (v3+, ignorable).
    pub client_software_name: String,
    /// The version of the client (v3+, ignorable).
    pub client_software_version: String,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ApiVersionsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        // Both fields are ignorable: dropped silently before v3.
        if version >= 3 {
            w.string(&self.client_software_name, flexible)?;
            w.string(&self.client_software_version, flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ApiVersionsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self::default();
        if version >= 3 {
            out.client_software_name = r.string(flexible, "client_software_name")?;
            out.client_software_version = r.string(flexible, "client_software_version")?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ApiVersionsRequest {
    const API_KEY: ApiKey = ApiKey::API_VERSIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Request for ApiVersionsRequest {
    type Response = ApiVersionsResponse;
}

/// The broker's answer: its version range for every API it implements.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersionsResponse {
    /// The top-level error code.
    pub error_code: i16,
    /// The APIs supported by the broker.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub api_keys: Vec<ApiVersion>,
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// Features the broker supports (v3+, tag 0, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub supported_features: Vec<SupportedFeatureKey>,
    /// Epoch of the finalized features, -1 if unknown (v3+, tag 1, ignorable).
    pub finalized_features_epoch: i64,
    /// Cluster-wide finalized features (v3+, tag 2, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub finalized_features: Vec<FinalizedFeatureKey>,
    /// Whether a KRaft controller is ready for ZK migration (v3+, tag 3, ignorable).
    pub zk_migration_ready: bool,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ApiVersionsResponse {
    fn default() -> Self {
        Self {
            error_code: 0,
            api_keys: Vec::new(),
            throttle_time_ms: 0,
            supported_features: Vec::new(),
            finalized_features_epoch: -1,
            finalized_features: Vec::new(),
            zk_migration_ready: false,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One API's supported version range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersion {
    /// The API key.
    pub api_key: i16,
    /// The minimum supported version, inclusive.
    pub min_version: i16,
    /// The maximum supported version, inclusive.
    pub max_version: i16,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// A feature the broker supports (v3+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SupportedFeatureKey {
    /// The feature name.
    pub name: String,
    /// The minimum supported version of the feature.
    pub min_version: i16,
    /// The maximum supported version of the feature.
    pub max_version: i16,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// A cluster-wide finalized feature (v3+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FinalizedFeatureKey {
    /// The feature name.
    pub name: String,
    /// The finalized max version level.
    pub max_version_level: i16,
    /// The finalized min version level.
    pub min_version_level: i16,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ApiVersion {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i16(self.api_key);
        w.i16(self.min_version);
        w.i16(self.max_version);
        if version >= 3 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ApiVersion {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            api_key: r.i16()?,
            min_version: r.i16()?,
            max_version: r.i16()?,
            unknown_tagged_fields: if version >= 3 {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

// The two feature structures exist only in tagged fields of v3+, so they are always flexible.
impl Encode for SupportedFeatureKey {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i16(self.min_version);
        w.i16(self.max_version);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for SupportedFeatureKey {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            min_version: r.i16()?,
            max_version: r.i16()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for FinalizedFeatureKey {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i16(self.max_version_level);
        w.i16(self.min_version_level);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for FinalizedFeatureKey {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            max_version_level: r.i16()?,
            min_version_level: r.i16()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ApiVersionsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 3;
        w.i16(self.error_code);
        w.array(&self.api_keys, flexible, |w, k| k.encode(w, version))?;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if flexible {
            // Tagged fields are written only when they differ from their default.
            let mut tags = w.tags();
            if !self.supported_features.is_empty() {
                tags.field(0, |w| w.array(&self.supported_features, true, |w, f| f.encode(w, version)))?;
            }
            if self.finalized_features_epoch != -1 {
                tags.field(1, |w| {
                    w.i64(self.finalized_features_epoch);
                    Ok(())
                })?;
            }
            if !self.finalized_features.is_empty() {
                tags.field(2, |w| w.array(&self.finalized_features, true, |w, f| f.encode(w, version)))?;
            }
            if self.zk_migration_ready {
                tags.field(3, |w| {
                    w.bool(true);
                    Ok(())
                })?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        // Every field after v0 is ignorable: nothing to refuse at older versions.
        Ok(())
    }
}

impl Decode for ApiVersionsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut out = Self { error_code: r.i16()?, ..Self::default() };
        out.api_keys = r.array(flexible, "api_keys", |r| ApiVersion::decode(r, version))?;
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 => {
                        out.supported_features =
                            r.array(true, "supported_features", |r| SupportedFeatureKey::decode(r, version))?
                    }
                    1 => out.finalized_features_epoch = r.i64()?,
                    2 => {
                        out.finalized_features =
                            r.array(true, "finalized_features", |r| FinalizedFeatureKey::decode(r, version))?
                    }
                    3 => out.zk_migration_ready = r.bool()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Message for ApiVersionsResponse {
    const API_KEY: ApiKey = ApiKey::API_VERSIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(3);
}

impl Response for ApiVersionsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::Bytes;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ApiVersionsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ApiVersionsResponse>();
    }

    #[test]
    fn decodes_a_v0_response_by_hand() {
        // error 0, one key (Produce 0..9).
        let body = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9]);
        let resp = ApiVersionsResponse::decode_body(body, 0).unwrap();
        assert_eq!(
            resp.api_keys,
            vec![ApiVersion { api_key: 0, min_version: 0, max_version: 9, ..Default::default() }]
        );
    }

    #[test]
    fn response_header_is_always_v0() {
        assert_eq!(<ApiVersionsResponse as Response>::header_version(4), 0);
        assert_eq!(<ApiVersionsRequest as Request>::header_version(4), 2);
    }
}
