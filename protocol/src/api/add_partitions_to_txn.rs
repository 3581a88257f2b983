//! AddPartitionsToTxn (key 24): adds partitions to a producer's open transaction before it
//! writes to them (transactions version 1). Under transactions version 2 (KIP-890) a Produce
//! request adds its partitions implicitly and clients no longer send this.
//!
//! Definitions: `protocol/specs/AddPartitionsToTxnRequest.json`,
//! `protocol/specs/AddPartitionsToTxnResponse.json`.
//!
//! Versions:
//! - v0: one transaction (id, producer id and epoch) and its partitions per topic; the response
//!   gives an error code per partition.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: same layout; may return PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH.
//! - v3: first flexible version. The last version a client sends.
//! - v4: brokers only (KIP-890): a batch of transactions, each with `verify_only`, instead of
//!   the single transaction; the response adds a top-level error code and answers per
//!   transaction.
//! - v5: same layout; may return TRANSACTION_ABORTABLE.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 3;
/// The first version that batches transactions.
const FIRST_BATCHED: i16 = 4;

/// Adds partitions to one transaction (v0-3) or to several (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnRequest {
    /// The transactions (v4+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub transactions: Vec<AddPartitionsToTxnTransaction>,
    /// The transactional id (v0-3).
    pub transactional_id: String,
    /// The producer id (v0-3).
    pub producer_id: i64,
    /// The producer's current epoch (v0-3).
    pub producer_epoch: i16,
    /// The partitions to add, per topic (v0-3).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<AddPartitionsToTxnTopic>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One transaction of an [`AddPartitionsToTxnRequest`] (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// Only check that the partitions are in the transaction, do not add them.
    pub verify_only: bool,
    /// The partitions, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<AddPartitionsToTxnTopic>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions of one topic to add to a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnTopic {
    /// The topic name.
    pub name: String,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AddPartitionsToTxnTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.i32_array(&self.partitions, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            partitions: r.array(flexible, "partitions", Reader::i32)?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for AddPartitionsToTxnTransaction {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        // Only ever encoded at v4+, which is flexible.
        w.string(&self.transactional_id, true)?;
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.bool(self.verify_only);
        w.array(&self.topics, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnTransaction {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            transactional_id: r.string(true, "transactional_id")?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            verify_only: r.bool()?,
            topics: r.array(true, "topics", |r| AddPartitionsToTxnTopic::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for AddPartitionsToTxnRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        if version >= FIRST_BATCHED {
            w.array(&self.transactions, flexible, |w, t| t.encode(w, version))?;
            if !self.transactional_id.is_empty() {
                w.unavailable("transactional_id", version)?;
            }
            if self.producer_id != 0 {
                w.unavailable("producer_id", version)?;
            }
            if self.producer_epoch != 0 {
                w.unavailable("producer_epoch", version)?;
            }
            if !self.topics.is_empty() {
                w.unavailable("topics", version)?;
            }
        } else {
            if !self.transactions.is_empty() {
                w.unavailable("transactions", version)?;
            }
            w.string(&self.transactional_id, flexible)?;
            w.i64(self.producer_id);
            w.i16(self.producer_epoch);
            w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= FIRST_BATCHED {
            out.transactions =
                r.array(flexible, "transactions", |r| AddPartitionsToTxnTransaction::decode(r, version))?;
        } else {
            out.transactional_id = r.string(flexible, "transactional_id")?;
            out.producer_id = r.i64()?;
            out.producer_epoch = r.i16()?;
            out.topics = r.array(flexible, "topics", |r| AddPartitionsToTxnTopic::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for AddPartitionsToTxnRequest {
    const API_KEY: ApiKey = ApiKey::ADD_PARTITIONS_TO_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for AddPartitionsToTxnRequest {
    type Response = AddPartitionsToTxnResponse;
}

/// The result of adding partitions, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnResponse {
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// The top-level error code, or 0 (v4+, ignorable).
    pub error_code: i16,
    /// The results per transaction (v4+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results_by_transaction: Vec<AddPartitionsToTxnResult>,
    /// The results per topic of the one transaction (v0-3).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results_by_topic: Vec<AddPartitionsToTxnTopicResult>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results of one transaction (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnResult {
    /// The transactional id.
    pub transactional_id: String,
    /// The results per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topic_results: Vec<AddPartitionsToTxnTopicResult>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The results of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnTopicResult {
    /// The topic name.
    pub name: String,
    /// The results per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results_by_partition: Vec<AddPartitionsToTxnPartitionResult>,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddPartitionsToTxnPartitionResult {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, 0 on success.
    pub partition_error_code: i16,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AddPartitionsToTxnPartitionResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i16(self.partition_error_code);
        if version >= FIRST_FLEXIBLE {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnPartitionResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            partition_error_code: r.i16()?,
            unknown_tagged_fields: if version >= FIRST_FLEXIBLE {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for AddPartitionsToTxnTopicResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.name, flexible)?;
        w.array(&self.results_by_partition, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnTopicResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            name: r.string(flexible, "name")?,
            results_by_partition: r.array(flexible, "results_by_partition", |r| {
                AddPartitionsToTxnPartitionResult::decode(r, version)
            })?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for AddPartitionsToTxnResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        // Only ever encoded at v4+, which is flexible.
        w.string(&self.transactional_id, true)?;
        w.array(&self.topic_results, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            transactional_id: r.string(true, "transactional_id")?,
            topic_results: r
                .array(true, "topic_results", |r| AddPartitionsToTxnTopicResult::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for AddPartitionsToTxnResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.throttle_time_ms);
        if version >= FIRST_BATCHED {
            w.i16(self.error_code);
            w.array(&self.results_by_transaction, flexible, |w, t| t.encode(w, version))?;
            if !self.results_by_topic.is_empty() {
                w.unavailable("results_by_topic", version)?;
            }
        } else {
            // The top-level error code is ignorable: dropped silently before v4.
            if !self.results_by_transaction.is_empty() {
                w.unavailable("results_by_transaction", version)?;
            }
            w.array(&self.results_by_topic, flexible, |w, t| t.encode(w, version))?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddPartitionsToTxnResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { throttle_time_ms: r.i32()?, ..Self::default() };
        if version >= FIRST_BATCHED {
            out.error_code = r.i16()?;
            out.results_by_transaction = r.array(flexible, "results_by_transaction", |r| {
                AddPartitionsToTxnResult::decode(r, version)
            })?;
        } else {
            out.results_by_topic =
                r.array(flexible, "results_by_topic", |r| AddPartitionsToTxnTopicResult::decode(r, version))?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for AddPartitionsToTxnResponse {
    const API_KEY: ApiKey = ApiKey::ADD_PARTITIONS_TO_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for AddPartitionsToTxnResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<AddPartitionsToTxnRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<AddPartitionsToTxnResponse>();
    }

    fn topic() -> AddPartitionsToTxnTopic {
        AddPartitionsToTxnTopic { name: "a".into(), partitions: vec![0, 1], ..Default::default() }
    }

    #[test]
    fn request_v2_and_v4_by_hand() {
        let v2 = AddPartitionsToTxnRequest {
            transactional_id: "t".into(),
            producer_id: 1,
            producer_epoch: 2,
            topics: vec![topic()],
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, // transaction
            0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, // topic a: 0, 1
        ];
        let mut buf = BytesMut::new();
        v2.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(AddPartitionsToTxnRequest::decode_body(Bytes::from_static(expected), 2).unwrap(), v2);

        let v4 = AddPartitionsToTxnRequest {
            transactions: vec![AddPartitionsToTxnTransaction {
                transactional_id: "t".into(),
                producer_id: 1,
                producer_epoch: 2,
                verify_only: true,
                topics: vec![topic()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            2, 2, b't', 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 1, // one transaction, verify only
            2, 2, b'a', 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, // topic a: 0, 1
            0, 0, // transaction tags, request tags
        ];
        let mut buf = BytesMut::new();
        v4.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(AddPartitionsToTxnRequest::decode_body(Bytes::from_static(expected), 4).unwrap(), v4);

        let err = v2.encode_body(&mut BytesMut::new(), 4).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "transactional_id", version: 4 });
        let err = v4.encode_body(&mut BytesMut::new(), 3).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "transactions", version: 3 });
    }

    #[test]
    fn response_v3_by_hand() {
        let resp = AddPartitionsToTxnResponse {
            results_by_topic: vec![AddPartitionsToTxnTopicResult {
                name: "a".into(),
                results_by_partition: vec![AddPartitionsToTxnPartitionResult {
                    partition_index: 1,
                    partition_error_code: 51,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 2, 2, b'a', 2, 0, 0, 0, 1, 0, 51, 0, 0, 0];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 3).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(AddPartitionsToTxnResponse::decode_body(Bytes::from_static(expected), 3).unwrap(), resp);
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        let req = AddPartitionsToTxnRequest {
            transactional_id: "t".into(),
            topics: vec![topic()],
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 3).unwrap();
        for cut in 0..buf.len() {
            assert!(
                AddPartitionsToTxnRequest::decode_body(buf.clone().freeze().slice(..cut), 3).is_err(),
                "cut at {cut}"
            );
        }
    }
}
