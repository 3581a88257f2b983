//! AddOffsetsToTxn (key 25): adds a consumer group's offsets to a transaction (transactions
//! version 1), so that the coordinator writes the group's commit marker with the transaction's.
//! Under transactions version 2 (KIP-890) a producer sends TxnOffsetCommit straight away.
//!
//! Definitions: `protocol/specs/AddOffsetsToTxnRequest.json`,
//! `protocol/specs/AddOffsetsToTxnResponse.json`.
//!
//! Versions:
//! - v0: the transactional id, producer id and epoch, and the group id.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: same layout; may return PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH.
//! - v3: first flexible version.
//! - v4: same layout; may return TRANSACTION_ABORTABLE (KIP-890).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 3;

/// Adds a group's offsets to a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddOffsetsToTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// The consumer group whose offsets the transaction will commit.
    pub group_id: String,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AddOffsetsToTxnRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.transactional_id, flexible)?;
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.string(&self.group_id, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddOffsetsToTxnRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            transactional_id: r.string(flexible, "transactional_id")?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            group_id: r.string(flexible, "group_id")?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for AddOffsetsToTxnRequest {
    const API_KEY: ApiKey = ApiKey::ADD_OFFSETS_TO_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for AddOffsetsToTxnRequest {
    type Response = AddOffsetsToTxnResponse;
}

/// The outcome of an [`AddOffsetsToTxnRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AddOffsetsToTxnResponse {
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// The error code, or 0.
    pub error_code: i16,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AddOffsetsToTxnResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        if version >= FIRST_FLEXIBLE {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AddOffsetsToTxnResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            unknown_tagged_fields: if version >= FIRST_FLEXIBLE {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for AddOffsetsToTxnResponse {
    const API_KEY: ApiKey = ApiKey::ADD_OFFSETS_TO_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for AddOffsetsToTxnResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<AddOffsetsToTxnRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<AddOffsetsToTxnResponse>();
    }

    #[test]
    fn request_v2_and_v4_by_hand() {
        let req = AddOffsetsToTxnRequest {
            transactional_id: "t".into(),
            producer_id: 3,
            producer_epoch: 0,
            group_id: "g".into(),
            ..Default::default()
        };
        let v2: &[u8] = &[0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, b'g'];
        let v4: &[u8] = &[2, b't', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 2, b'g', 0];
        for (version, expected) in [(2, v2), (4, v4)] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            assert_eq!(
                AddOffsetsToTxnRequest::decode_body(Bytes::from_static(expected), version).unwrap(),
                req
            );
        }
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        let resp = AddOffsetsToTxnResponse { error_code: 51, ..Default::default() };
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 4).unwrap();
        for cut in 0..buf.len() {
            assert!(
                AddOffsetsToTxnResponse::decode_body(buf.clone().freeze().slice(..cut), 4).is_err(),
                "cut at {cut}"
            );
        }
    }
}
