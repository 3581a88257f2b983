//! DescribeTransactions (key 65): the state of transactional ids as their transaction
//! coordinator holds it: state, producer id and epoch, timeout, start time and the partitions
//! of the open transaction (KIP-664). Sent to each id's coordinator (FindCoordinator with key
//! type 1).
//!
//! Versions:
//! - v0: a list of transactional ids; flexible from the start.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Describes transactional ids coordinated by the receiving broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeTransactionsRequest {
    /// The transactional ids; an empty list describes nothing.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub transactional_ids: Vec<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for DescribeTransactionsRequest {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string_array(&self.transactional_ids, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeTransactionsRequest {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            transactional_ids: r.array(true, "transactional_ids", |r| r.string(true, "transactional_ids"))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeTransactionsRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_TRANSACTIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for DescribeTransactionsRequest {
    type Response = DescribeTransactionsResponse;
}

/// The state of each transactional id asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeTransactionsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One entry per transactional id.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub transaction_states: Vec<DescribedTransaction>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribedTransaction {
    /// The error code (NOT_COORDINATOR, TRANSACTIONAL_ID_NOT_FOUND, ...), or 0.
    pub error_code: i16,
    /// The transactional id.
    pub transactional_id: String,
    /// The state: `Empty`, `Ongoing`, `PrepareCommit`, `PrepareAbort`, `CompleteCommit`,
    /// `CompleteAbort`, `Dead` or `PrepareEpochFence`.
    pub transaction_state: String,
    /// The transaction timeout in milliseconds.
    pub transaction_timeout_ms: i32,
    /// When the open transaction started, in milliseconds since the epoch (-1 when none is).
    pub transaction_start_time_ms: i64,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The partitions in the transaction, per topic (while it commits or aborts, only those
    /// still without a marker).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<TransactionTopic>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The partitions of one topic in a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TransactionTopic {
    /// The topic name.
    pub topic: String,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for TransactionTopic {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.topic, true)?;
        w.i32_array(&self.partitions, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for TransactionTopic {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topic: r.string(true, "topic")?,
            partitions: r.array(true, "partitions", Reader::i32)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribedTransaction {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i16(self.error_code);
        w.string(&self.transactional_id, true)?;
        w.string(&self.transaction_state, true)?;
        w.i32(self.transaction_timeout_ms);
        w.i64(self.transaction_start_time_ms);
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.array(&self.topics, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribedTransaction {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            error_code: r.i16()?,
            transactional_id: r.string(true, "transactional_id")?,
            transaction_state: r.string(true, "transaction_state")?,
            transaction_timeout_ms: r.i32()?,
            transaction_start_time_ms: r.i64()?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            topics: r.array(true, "topics", |r| TransactionTopic::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeTransactionsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.array(&self.transaction_states, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeTransactionsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            transaction_states: r
                .array(true, "transaction_states", |r| DescribedTransaction::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeTransactionsResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_TRANSACTIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for DescribeTransactionsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeTransactionsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeTransactionsResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        let req = DescribeTransactionsRequest { transactional_ids: vec!["tx".into()], ..Default::default() };
        let expected: &[u8] = &[2, 3, b't', b'x', 0];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeTransactionsRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = DescribeTransactionsResponse {
            transaction_states: vec![DescribedTransaction {
                transactional_id: "tx".into(),
                transaction_state: "Ongoing".into(),
                transaction_timeout_ms: 60_000,
                transaction_start_time_ms: 1,
                producer_id: 3,
                producer_epoch: 1,
                topics: vec![TransactionTopic {
                    topic: "t".into(),
                    partitions: vec![0],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,                                     // throttle_time_ms
            2,                                              // transaction_states: 1
            0, 0,                                           //   error_code
            3, b't', b'x',                                  //   transactional_id
            8, b'O', b'n', b'g', b'o', b'i', b'n', b'g',    //   transaction_state
            0, 0, 0xea, 0x60,                               //   transaction_timeout_ms
            0, 0, 0, 0, 0, 0, 0, 1,                         //   transaction_start_time_ms
            0, 0, 0, 0, 0, 0, 0, 3,                         //   producer_id
            0, 1,                                           //   producer_epoch
            2, 2, b't', 2, 0, 0, 0, 0, 0,                   //   topics: "t" [0], tags
            0,                                              //   tagged fields
            0,                                              // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(DescribeTransactionsResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
        for cut in 0..expected.len() {
            let short = Bytes::copy_from_slice(&expected[..cut]);
            assert!(DescribeTransactionsResponse::decode_body(short, 0).is_err(), "{cut}");
        }
    }
}
