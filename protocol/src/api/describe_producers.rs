//! DescribeProducers (key 61): the producers a partition leader holds state for, with their
//! last sequence and the start offset of any transaction they have open (KIP-664). Sent to each
//! partition's leader; with it an operator finds the producer behind a hanging transaction.
//!
//! Versions:
//! - v0: the partitions per topic; flexible from the start.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks a leader for the active producers of some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeProducersRequest {
    /// The partitions per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<DescribeProducersTopic>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions of one topic to describe the producers of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeProducersTopic {
    /// The topic name.
    pub name: String,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partition_indexes: Vec<i32>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeProducersTopic {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i32_array(&self.partition_indexes, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeProducersTopic {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            partition_indexes: r.array(true, "partition_indexes", Reader::i32)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeProducersRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.array(&self.topics, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeProducersRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topics: r.array(true, "topics", |r| DescribeProducersTopic::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeProducersRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_PRODUCERS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for DescribeProducersRequest {
    type Response = DescribeProducersResponse;
}

/// The active producers of each partition asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeProducersResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One entry per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<DescribeProducersTopicResponse>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions of one topic in a [`DescribeProducersResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeProducersTopicResponse {
    /// The topic name.
    pub name: String,
    /// One entry per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<DescribeProducersPartitionResponse>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition's producers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeProducersPartitionResponse {
    /// The partition index.
    pub partition_index: i32,
    /// The partition's error code (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, ...), or 0.
    pub error_code: i16,
    /// The partition's error message, or None.
    pub error_message: Option<String>,
    /// The producers the leader holds state for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub active_producers: Vec<ProducerState>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// What a partition leader knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch (an int32 on the wire here, unlike elsewhere).
    pub producer_epoch: i32,
    /// The last sequence number written by the producer, or -1.
    pub last_sequence: i32,
    /// The timestamp of its last write in milliseconds, or -1.
    pub last_timestamp: i64,
    /// The epoch of the transaction coordinator that last wrote a marker for it, or -1.
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction in this partition, or -1.
    pub current_txn_start_offset: i64,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ProducerState {
    fn default() -> Self {
        Self {
            producer_id: 0,
            producer_epoch: 0,
            last_sequence: -1,
            last_timestamp: -1,
            coordinator_epoch: 0,
            current_txn_start_offset: -1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for ProducerState {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i64(self.producer_id);
        w.i32(self.producer_epoch);
        w.i32(self.last_sequence);
        w.i64(self.last_timestamp);
        w.i32(self.coordinator_epoch);
        w.i64(self.current_txn_start_offset);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ProducerState {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            producer_id: r.i64()?,
            producer_epoch: r.i32()?,
            last_sequence: r.i32()?,
            last_timestamp: r.i64()?,
            coordinator_epoch: r.i32()?,
            current_txn_start_offset: r.i64()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeProducersPartitionResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.array(&self.active_producers, true, |w, p| p.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeProducersPartitionResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            active_producers: r.array(true, "active_producers", |r| ProducerState::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeProducersTopicResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.array(&self.partitions, true, |w, p| p.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeProducersTopicResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            partitions: r
                .array(true, "partitions", |r| DescribeProducersPartitionResponse::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeProducersResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.array(&self.topics, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeProducersResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            topics: r.array(true, "topics", |r| DescribeProducersTopicResponse::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeProducersResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_PRODUCERS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for DescribeProducersResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeProducersRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeProducersResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        let req = DescribeProducersRequest {
            topics: vec![DescribeProducersTopic {
                name: "t".into(),
                partition_indexes: vec![0, 2],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2,                      // topics: 1
            2, b't',                //   name
            3, 0, 0, 0, 0, 0, 0, 0, 2, //   partition_indexes: [0, 2]
            0,                      //   tagged fields
            0,                      // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeProducersRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = DescribeProducersResponse {
            topics: vec![DescribeProducersTopicResponse {
                name: "t".into(),
                partitions: vec![DescribeProducersPartitionResponse {
                    partition_index: 1,
                    active_producers: vec![ProducerState {
                        producer_id: 7,
                        producer_epoch: 2,
                        last_sequence: 4,
                        last_timestamp: 9,
                        coordinator_epoch: -1,
                        current_txn_start_offset: 5,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,                 // throttle_time_ms
            2, 2, b't',                 // topics: 1, name
            2, 0, 0, 0, 1, 0, 0, 0,     //   partitions: 1, index 1, error 0, null message
            2,                          //     active_producers: 1
            0, 0, 0, 0, 0, 0, 0, 7,     //       producer_id
            0, 0, 0, 2,                 //       producer_epoch (int32)
            0, 0, 0, 4,                 //       last_sequence
            0, 0, 0, 0, 0, 0, 0, 9,     //       last_timestamp
            0xff, 0xff, 0xff, 0xff,     //       coordinator_epoch
            0, 0, 0, 0, 0, 0, 0, 5,     //       current_txn_start_offset
            0, 0, 0, 0,                 // tagged fields: producer, partition, topic, response
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeProducersResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
        for cut in 0..expected.len() {
            let short = Bytes::copy_from_slice(&expected[..cut]);
            assert!(DescribeProducersResponse::decode_body(short, 0).is_err(), "{cut}");
        }
    }
}
