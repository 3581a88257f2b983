//! Produce (key 0): writes record batches to partition leaders.
//!
//! Versions:
//! - v0: acks, timeout and the record data per topic partition; the response gives a base
//!   offset per partition.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: the response adds `log_append_time_ms`.
//! - v3: the request adds `transactional_id`; record format v2 (record batches) is allowed.
//! - v4: same layout; KAFKA_STORAGE_ERROR may be returned.
//! - v5: the response adds `log_start_offset`.
//! - v6: same layout.
//! - v7: same layout; records may be compressed with zstd (KIP-110).
//! - v8: the response adds `record_errors` and `error_message` (KIP-467).
//! - v9: first flexible version.
//! - v10: the response adds the tagged fields `current_leader` and `node_endpoints` (KIP-951).
//! - v11: same layout; TRANSACTION_ABORTABLE may be returned (KIP-890).
//! - v12: same layout; a transactional producer that sends it under transactions version 2
//!   (KIP-890) has its partitions added to the transaction implicitly.
//!
//! The record data is carried as raw bytes, zero-copy: the record batch module encodes and
//! decodes it. A request with `acks = 0` gets no response from the broker.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 9;

/// Writes records to one or more partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProduceRequest {
    /// The transactional id, or None when the producer is not transactional (v3+).
    pub transactional_id: Option<String>,
    /// Acknowledgments required: 0 none, 1 the leader only, -1 the full ISR.
    pub acks: i16,
    /// How long to wait for the acknowledgments, in milliseconds.
    pub timeout_ms: i32,
    /// The data to write, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topic_data: Vec<TopicProduceData>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The data to write to one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicProduceData {
    /// The topic name.
    pub name: String,
    /// The data to write, per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_data: Vec<PartitionProduceData>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The data to write to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartitionProduceData {
    /// The partition index.
    pub index: i32,
    /// The encoded record batches, as raw bytes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_bytes()"))]
    pub records: Option<Bytes>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ProduceRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        if version >= 3 {
            w.nullable_string(self.transactional_id.as_deref(), flexible)?;
        } else if self.transactional_id.is_some() {
            w.unavailable("transactional_id", version)?;
        }
        w.i16(self.acks);
        w.i32(self.timeout_ms);
        w.array(&self.topic_data, flexible, |w, t| t.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ProduceRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 3 {
            out.transactional_id = r.nullable_string(flexible)?;
        }
        out.acks = r.i16()?;
        out.timeout_ms = r.i32()?;
        out.topic_data = r.array(flexible, "topic_data", |r| TopicProduceData::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for TopicProduceData {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.array(&self.partition_data, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TopicProduceData {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partition_data: r
                .array(flexible, "partition_data", |r| PartitionProduceData::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for PartitionProduceData {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.index);
        w.nullable_bytes(self.records.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for PartitionProduceData {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            index: r.i32()?,
            // A zero-copy slice of the frame.
            records: r.nullable_bytes(flexible)?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for ProduceRequest {
    const API_KEY: ApiKey = ApiKey::PRODUCE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for ProduceRequest {
    type Response = ProduceResponse;
}

/// The result of a produce request, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProduceResponse {
    /// The results, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub responses: Vec<TopicProduceResponse>,
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// Endpoints of the current leaders named in NOT_LEADER_OR_FOLLOWER partition errors
    /// (v10+, tag 0).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub node_endpoints: Vec<NodeEndpoint>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicProduceResponse {
    /// The topic name.
    pub name: String,
    /// The results, per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_responses: Vec<PartitionProduceResponse>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartitionProduceResponse {
    /// The partition index.
    pub index: i32,
    /// The error code, 0 for none.
    pub error_code: i16,
    /// The offset given to the first record written.
    pub base_offset: i64,
    /// The broker's append time when the topic uses LogAppendTime, else -1 (v2+, ignorable).
    pub log_append_time_ms: i64,
    /// The partition's log start offset (v5+, ignorable).
    pub log_start_offset: i64,
    /// The records that made the broker drop the batch (v8+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
    /// A message summarising why the batch was dropped (v8+, ignorable).
    pub error_message: Option<String>,
    /// The current leader, when this broker is not it (v10+, tag 0).
    pub current_leader: LeaderIdAndEpoch,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for PartitionProduceResponse {
    fn default() -> Self {
        Self {
            index: 0,
            error_code: 0,
            base_offset: 0,
            log_append_time_ms: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
            error_message: None,
            current_leader: LeaderIdAndEpoch::default(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One record that made the broker drop its batch (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct BatchIndexAndErrorMessage {
    /// The index of the record within its batch.
    pub batch_index: i32,
    /// Why that record was refused.
    pub batch_index_error_message: Option<String>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

// `LeaderIdAndEpoch` and `NodeEndpoint` are the same structures in Produce (v10+) and Fetch
// responses, always flexible: one definition serves both.
pub use super::fetch::{LeaderIdAndEpoch, NodeEndpoint};

impl Encode for ProduceResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.array(&self.responses, flexible, |w, t| t.encode(w, version))?;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version < 10 && !self.node_endpoints.is_empty() {
            w.unavailable("node_endpoints", version)?;
        }
        if flexible {
            let mut tags = w.tags();
            if version >= 10 && !self.node_endpoints.is_empty() {
                tags.field(0, |w| w.array(&self.node_endpoints, true, |w, n| n.encode(w, version)))?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ProduceResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self {
            responses: r.array(flexible, "responses", |r| TopicProduceResponse::decode(r, version))?,
            ..Self::default()
        };
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 if version >= 10 => {
                        out.node_endpoints =
                            r.array(true, "node_endpoints", |r| NodeEndpoint::decode(r, version))?
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Encode for TopicProduceResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.array(&self.partition_responses, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for TopicProduceResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partition_responses: r
                .array(flexible, "partition_responses", |r| PartitionProduceResponse::decode(r, version))?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for PartitionProduceResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.index);
        w.i16(self.error_code);
        w.i64(self.base_offset);
        // The fields below up to `error_message` are ignorable: dropped silently when too old.
        if version >= 2 {
            w.i64(self.log_append_time_ms);
        }
        if version >= 5 {
            w.i64(self.log_start_offset);
        }
        if version >= 8 {
            w.array(&self.record_errors, flexible, |w, e| e.encode(w, version))?;
            w.nullable_string(self.error_message.as_deref(), flexible)?;
        }
        let leader_set = self.current_leader != LeaderIdAndEpoch::default();
        if version < 10 && leader_set {
            w.unavailable("current_leader", version)?;
        }
        if flexible {
            let mut tags = w.tags();
            if version >= 10 && leader_set {
                tags.field(0, |w| self.current_leader.encode(w, version))?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for PartitionProduceResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out =
            Self { index: r.i32()?, error_code: r.i16()?, base_offset: r.i64()?, ..Self::default() };
        if version >= 2 {
            out.log_append_time_ms = r.i64()?;
        }
        if version >= 5 {
            out.log_start_offset = r.i64()?;
        }
        if version >= 8 {
            out.record_errors =
                r.array(flexible, "record_errors", |r| BatchIndexAndErrorMessage::decode(r, version))?;
            out.error_message = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 if version >= 10 => out.current_leader = LeaderIdAndEpoch::decode(r, version)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Encode for BatchIndexAndErrorMessage {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.batch_index);
        w.nullable_string(self.batch_index_error_message.as_deref(), flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for BatchIndexAndErrorMessage {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            batch_index: r.i32()?,
            batch_index_error_message: r.nullable_string(flexible)?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for ProduceResponse {
    const API_KEY: ApiKey = ApiKey::PRODUCE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for ProduceResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode, round_trip_all_versions};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ProduceRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ProduceResponse>();
    }

    #[test]
    fn v3_request_by_hand() {
        let req = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 1000,
            topic_data: vec![TopicProduceData {
                name: "t".into(),
                partition_data: vec![PartitionProduceData {
                    index: 2,
                    records: Some(Bytes::from_static(b"abc")),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xff, 0xff,             // transactional_id: null
            0xff, 0xff,             // acks: -1
            0, 0, 0x03, 0xe8,       // timeout_ms: 1000
            0, 0, 0, 1,             // one topic
            0, 1, b't',             // name "t"
            0, 0, 0, 1,             // one partition
            0, 0, 0, 2,             // index 2
            0, 0, 0, 3, b'a', b'b', b'c', // records
        ];
        let bytes = encode(&req, 3).unwrap();
        assert_eq!(&bytes[..], expected);
        let body = Bytes::copy_from_slice(expected);
        let decoded = ProduceRequest::decode_body(body.clone(), 3).unwrap();
        assert_eq!(decoded, req);
        // The records are a slice of the input, not a copy.
        let records = decoded.topic_data[0].partition_data[0].records.as_ref().unwrap();
        assert!(body.as_ptr_range().contains(&records.as_ptr()));
    }

    #[test]
    fn v9_request_by_hand() {
        let req = ProduceRequest {
            transactional_id: Some("tx".into()),
            acks: 1,
            timeout_ms: 5,
            topic_data: vec![TopicProduceData {
                name: "t".into(),
                partition_data: vec![PartitionProduceData { index: 0, records: None, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            3, b't', b'x',          // transactional_id: compact "tx"
            0, 1,                   // acks: 1
            0, 0, 0, 5,             // timeout_ms
            2,                      // one topic (compact)
            2, b't',                // name "t"
            2,                      // one partition
            0, 0, 0, 0,             // index 0
            0,                      // records: null
            0,                      // partition tags
            0,                      // topic tags
            0,                      // request tags
        ];
        assert_eq!(&encode(&req, 9).unwrap()[..], expected);
        assert_eq!(ProduceRequest::decode_body(Bytes::copy_from_slice(expected), 9).unwrap(), req);
    }

    #[test]
    fn v10_response_by_hand() {
        let resp = ProduceResponse {
            responses: vec![TopicProduceResponse {
                name: "t".into(),
                partition_responses: vec![PartitionProduceResponse {
                    index: 1,
                    error_code: 6,
                    base_offset: -1,
                    current_leader: LeaderIdAndEpoch { leader_id: 3, leader_epoch: 7, ..Default::default() },
                    ..Default::default()
                }],
                ..Default::default()
            }],
            throttle_time_ms: 0,
            node_endpoints: vec![NodeEndpoint {
                node_id: 3,
                host: "h".into(),
                port: 9092,
                rack: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2,                                  // one topic
            2, b't',                            // name
            2,                                  // one partition
            0, 0, 0, 1,                         // index
            0, 6,                               // error_code NOT_LEADER_OR_FOLLOWER
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // base_offset -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_append_time_ms -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_start_offset -1
            1,                                  // record_errors: empty
            0,                                  // error_message: null
            1, 0, 9,                            // one tag: 0, 9 bytes
            0, 0, 0, 3, 0, 0, 0, 7, 0,          //   current_leader 3 / 7, no tags
            0,                                  // topic tags
            0, 0, 0, 0,                         // throttle_time_ms
            1, 0, 13,                           // one tag: 0, 13 bytes
            2, 0, 0, 0, 3, 2, b'h', 0, 0, 0x23, 0x84, 0, 0, // node_endpoints
        ];
        assert_eq!(&encode(&resp, 10).unwrap()[..], expected);
        assert_eq!(ProduceResponse::decode_body(Bytes::copy_from_slice(expected), 10).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = ProduceRequest { transactional_id: Some("tx".into()), ..Default::default() };
        assert_eq!(
            encode(&req, 2),
            Err(EncodeError::FieldNotAvailable { field: "transactional_id", version: 2 })
        );
        let resp = ProduceResponse { node_endpoints: vec![NodeEndpoint::default()], ..Default::default() };
        assert_eq!(
            encode(&resp, 9),
            Err(EncodeError::FieldNotAvailable { field: "node_endpoints", version: 9 })
        );
        // Ignorable fields are dropped silently.
        let resp = ProduceResponse { throttle_time_ms: 5, ..Default::default() };
        assert!(encode(&resp, 0).is_ok());
    }
}
