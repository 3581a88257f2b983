//! CreatePartitions (key 37): raises the partition count of existing topics.
//!
//! Versions:
//! - v0: per topic the new partition count and optional replica assignments; a timeout and
//!   `validate_only`.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: first flexible version.
//! - v3: same layout; may return THROTTLING_QUOTA_EXCEEDED (KIP-599).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Adds partitions to topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatePartitionsRequest {
    /// The topics to add partitions to.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<CreatePartitionsTopic>,
    /// How long to wait for the partitions to be created, in milliseconds.
    pub timeout_ms: i32,
    /// Only validate the request, change nothing.
    pub validate_only: bool,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic to add partitions to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatePartitionsTopic {
    /// The topic name.
    pub name: String,
    /// The new partition count.
    pub count: i32,
    /// The replicas of each new partition, or None for automatic assignment.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub assignments: Option<Vec<CreatePartitionsAssignment>>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The replicas of one new partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatePartitionsAssignment {
    /// The brokers to place the partition on.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub broker_ids: Vec<i32>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for CreatePartitionsAssignment {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32_array(&self.broker_ids, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatePartitionsAssignment {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self { broker_ids: r.array(flexible, "broker_ids", Reader::i32)?, ..Self::default() };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreatePartitionsTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.name, flexible)?;
        w.i32(self.count);
        w.nullable_array(self.assignments.as_deref(), flexible, |w, a| a.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatePartitionsTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            count: r.i32()?,
            assignments: r.nullable_array(flexible, |r| CreatePartitionsAssignment::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreatePartitionsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        w.i32(self.timeout_ms);
        w.bool(self.validate_only);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatePartitionsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            topics: r.array(flexible, "topics", |r| CreatePartitionsTopic::decode(r, version))?,
            timeout_ms: r.i32()?,
            validate_only: r.bool()?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for CreatePartitionsRequest {
    const API_KEY: ApiKey = ApiKey::CREATE_PARTITIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for CreatePartitionsRequest {
    type Response = CreatePartitionsResponse;
}

/// The result of adding partitions to each topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatePartitionsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results: Vec<CreatePartitionsTopicResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatePartitionsTopicResult {
    /// The topic name.
    pub name: String,
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for CreatePartitionsTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.name, flexible)?;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatePartitionsTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            name: r.string(flexible, "name")?,
            error_code: r.i16()?,
            error_message: r.nullable_string(flexible)?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for CreatePartitionsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.throttle_time_ms);
        w.array(&self.results, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for CreatePartitionsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            throttle_time_ms: r.i32()?,
            results: r.array(flexible, "results", |r| CreatePartitionsTopicResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for CreatePartitionsResponse {
    const API_KEY: ApiKey = ApiKey::CREATE_PARTITIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for CreatePartitionsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<CreatePartitionsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<CreatePartitionsResponse>();
    }

    #[test]
    fn request_v1_and_v3_by_hand() {
        let req = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: "t".into(),
                count: 4,
                assignments: Some(vec![CreatePartitionsAssignment {
                    broker_ids: vec![1, 2],
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            timeout_ms: 100,
            validate_only: true,
            ..Default::default()
        };
        let v1: &[u8] = &[
            0, 0, 0, 1, // one topic
            0, 1, b't', // name
            0, 0, 0, 4, // count
            0, 0, 0, 1, // one assignment
            0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, // broker_ids [1, 2]
            0, 0, 0, 100, // timeout_ms
            1,   // validate_only
        ];
        let v3: &[u8] = &[
            2, // one topic
            2, b't', // name
            0, 0, 0, 4, // count
            2, // one assignment
            3, 0, 0, 0, 1, 0, 0, 0, 2, // broker_ids [1, 2]
            0, // assignment tags
            0, // topic tags
            0, 0, 0, 100, // timeout_ms
            1,   // validate_only
            0,   // tags
        ];
        for (version, expected) in [(1, v1), (3, v3)] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            let decoded =
                CreatePartitionsRequest::decode_body(Bytes::copy_from_slice(expected), version).unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = CreatePartitionsResponse {
            throttle_time_ms: 0,
            results: vec![CreatePartitionsTopicResult {
                name: "t".into(),
                error_code: 37, // INVALID_PARTITIONS
                error_message: Some("x".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 37, 0, 1, b'x'];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(CreatePartitionsResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
    }
}
