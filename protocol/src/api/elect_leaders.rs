//! ElectLeaders (key 43): asks the controller to elect a leader for partitions, either the
//! preferred replica (the first of the replica list) or, when no in-sync replica is left, any
//! live replica (an unclean election, which may lose acknowledged records).
//!
//! Versions:
//! - v0: the partitions per topic (null for every partition) and a timeout; the election is
//!   always of the preferred replica. The response has a result per partition.
//! - v1: the request gains `election_type` (0 preferred, 1 unclean; KIP-460) and the response
//!   a top-level error code.
//! - v2: first flexible version.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// [`ElectLeadersRequest::election_type`]: elect the preferred replica.
pub const ELECTION_PREFERRED: i8 = 0;

/// [`ElectLeadersRequest::election_type`]: elect the first live replica when the partition has
/// no in-sync replica (v1+).
pub const ELECTION_UNCLEAN: i8 = 1;

/// Elects leaders for partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ElectLeadersRequest {
    /// [`ELECTION_PREFERRED`] or [`ELECTION_UNCLEAN`] (v1+; v0 can only ask for preferred).
    pub election_type: i8,
    /// The partitions per topic, or None for every partition of the cluster.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub topic_partitions: Option<Vec<ElectLeadersTopic>>,
    /// How long the broker may wait for the elections, in milliseconds (default 60000).
    pub timeout_ms: i32,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ElectLeadersRequest {
    fn default() -> Self {
        Self {
            election_type: ELECTION_PREFERRED,
            topic_partitions: None,
            timeout_ms: 60_000,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// The partitions of one topic to elect leaders for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ElectLeadersTopic {
    /// The topic name.
    pub topic: String,
    /// The partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ElectLeadersTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.topic, flexible)?;
        w.i32_array(&self.partitions, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ElectLeadersTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            topic: r.string(flexible, "topic")?,
            partitions: r.array(flexible, "partitions", Reader::i32)?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for ElectLeadersRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        if version >= 1 {
            w.i8(self.election_type);
        } else if self.election_type != ELECTION_PREFERRED {
            // v0 elects the preferred replica only; asking it for another kind is a misuse.
            w.unavailable("election_type", version)?;
        }
        w.nullable_array(self.topic_partitions.as_deref(), flexible, |w, t| t.encode(w, version))?;
        w.i32(self.timeout_ms);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ElectLeadersRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let election_type = if version >= 1 { r.i8()? } else { ELECTION_PREFERRED };
        let mut out = Self {
            election_type,
            topic_partitions: r.nullable_array(flexible, |r| ElectLeadersTopic::decode(r, version))?,
            timeout_ms: r.i32()?,
            unknown_tagged_fields: TaggedFields::default(),
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ElectLeadersRequest {
    const API_KEY: ApiKey = ApiKey::ELECT_LEADERS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for ElectLeadersRequest {
    type Response = ElectLeadersResponse;
}

/// The result of the elections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ElectLeadersResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// An error for the whole request, or 0 (v1+).
    pub error_code: i16,
    /// One entry per topic; empty when the request was for every partition and the client may
    /// not see them.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub replica_election_results: Vec<ElectLeadersTopicResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ElectLeadersTopicResult {
    /// The topic name.
    pub topic: String,
    /// One result per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_result: Vec<ElectLeadersPartitionResult>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ElectLeadersPartitionResult {
    /// The partition.
    pub partition_id: i32,
    /// The error code, or 0. ELECTION_NOT_NEEDED (84) when the wanted replica already leads.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ElectLeadersPartitionResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.partition_id);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ElectLeadersPartitionResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            partition_id: r.i32()?,
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

impl Encode for ElectLeadersTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.string(&self.topic, flexible)?;
        w.array(&self.partition_result, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ElectLeadersTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            topic: r.string(flexible, "topic")?,
            partition_result: r
                .array(flexible, "partition_result", |r| ElectLeadersPartitionResult::decode(r, version))?,
            ..Self::default()
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for ElectLeadersResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i32(self.throttle_time_ms);
        if version >= 1 {
            w.i16(self.error_code);
        } else if self.error_code != 0 {
            // Not ignorable in the definition: v0 has no place for it.
            w.unavailable("error_code", version)?;
        }
        w.array(&self.replica_election_results, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ElectLeadersResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let throttle_time_ms = r.i32()?;
        let error_code = if version >= 1 { r.i16()? } else { 0 };
        let mut out = Self {
            throttle_time_ms,
            error_code,
            replica_election_results: r.array(flexible, "replica_election_results", |r| {
                ElectLeadersTopicResult::decode(r, version)
            })?,
            unknown_tagged_fields: TaggedFields::default(),
        };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for ElectLeadersResponse {
    const API_KEY: ApiKey = ApiKey::ELECT_LEADERS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for ElectLeadersResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ElectLeadersRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ElectLeadersResponse>();
    }

    fn request() -> ElectLeadersRequest {
        ElectLeadersRequest {
            election_type: ELECTION_UNCLEAN,
            topic_partitions: Some(vec![ElectLeadersTopic {
                topic: "t".into(),
                partitions: vec![0, 2],
                ..Default::default()
            }]),
            timeout_ms: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn request_v1_and_v2_by_hand() {
        let v1: &[u8] = &[
            1, // election_type: unclean
            0, 0, 0, 1, // one topic
            0, 1, b't', // topic
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, // partitions [0, 2]
            0, 0, 3, 0xe8, // timeout_ms 1000
        ];
        let v2: &[u8] = &[
            1, // election_type
            2, // one topic (compact: n + 1)
            2, b't', // topic
            3, 0, 0, 0, 0, 0, 0, 0, 2, // partitions [0, 2]
            0, // topic tags
            0, 0, 3, 0xe8, // timeout_ms
            0,    // tags
        ];
        for (version, expected) in [(1, v1), (2, v2)] {
            let mut buf = BytesMut::new();
            request().encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            let decoded =
                ElectLeadersRequest::decode_body(Bytes::copy_from_slice(expected), version).unwrap();
            assert_eq!(decoded, request());
        }
    }

    #[test]
    fn v0_is_preferred_only_and_null_means_every_partition() {
        let err = request().encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "election_type", version: 0 });

        let all = ElectLeadersRequest::default();
        let mut buf = BytesMut::new();
        all.encode_body(&mut buf, 0).unwrap();
        // A null array, then the default timeout of 60000 ms.
        assert_eq!(&buf[..], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0xea, 0x60]);
        assert_eq!(ElectLeadersRequest::decode_body(buf.freeze(), 0).unwrap(), all);
        let mut buf = BytesMut::new();
        all.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 0, 0xea, 0x60, 0]);
    }

    #[test]
    fn response_v0_and_v2_by_hand() {
        let resp = ElectLeadersResponse {
            throttle_time_ms: 0,
            error_code: 0,
            replica_election_results: vec![ElectLeadersTopicResult {
                topic: "t".into(),
                partition_result: vec![ElectLeadersPartitionResult {
                    partition_id: 1,
                    error_code: 84, // ELECTION_NOT_NEEDED
                    error_message: Some("x".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let v0: &[u8] = &[
            0, 0, 0, 0, // throttle
            0, 0, 0, 1, // one topic
            0, 1, b't', // topic
            0, 0, 0, 1, // one partition
            0, 0, 0, 1, // partition_id
            0, 84, // error_code
            0, 1, b'x', // error_message
        ];
        let v2: &[u8] = &[
            0, 0, 0, 0, // throttle
            0, 0, // error_code
            2, // one topic
            2, b't', // topic
            2,    // one partition
            0, 0, 0, 1, // partition_id
            0, 84, // error_code
            2, b'x', // error_message
            0,    // partition tags
            0,    // topic tags
            0,    // tags
        ];
        for (version, expected) in [(0, v0), (2, v2)] {
            let mut buf = BytesMut::new();
            resp.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            assert_eq!(
                ElectLeadersResponse::decode_body(Bytes::copy_from_slice(expected), version).unwrap(),
                resp
            );
        }
        let top_level = ElectLeadersResponse { error_code: 29, ..Default::default() };
        let err = top_level.encode_body(&mut BytesMut::new(), 0).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "error_code", version: 0 });
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        let mut buf = BytesMut::new();
        request().encode_body(&mut buf, 2).unwrap();
        for cut in 0..buf.len() {
            assert!(
                ElectLeadersRequest::decode_body(buf.clone().freeze().slice(..cut), 2).is_err(),
                "cut at {cut}"
            );
        }
    }
}
