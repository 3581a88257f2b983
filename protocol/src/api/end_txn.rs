//! EndTxn (key 26): asks the transaction coordinator to commit or abort the producer's open
//! transaction, which it does by writing a marker to every partition in it.
//!
//! Definitions: `protocol/specs/EndTxnRequest.json`, `protocol/specs/EndTxnResponse.json`.
//!
//! Versions:
//! - v0: the transactional id, producer id and epoch, and whether to commit.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: same layout; may return PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH.
//! - v3: first flexible version.
//! - v4: same layout; may return TRANSACTION_ABORTABLE (KIP-890).
//! - v5: transactions version 2 (KIP-890): the response adds the producer id and the new epoch
//!   the coordinator bumped to when it ended the transaction.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

const FIRST_FLEXIBLE: i16 = 3;

/// Commits or aborts a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EndTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// True to commit, false to abort.
    pub committed: bool,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for EndTxnRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.string(&self.transactional_id, flexible)?;
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.bool(self.committed);
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for EndTxnRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        Ok(Self {
            transactional_id: r.string(flexible, "transactional_id")?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            committed: r.bool()?,
            unknown_tagged_fields: if flexible {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for EndTxnRequest {
    const API_KEY: ApiKey = ApiKey::END_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for EndTxnRequest {
    type Response = EndTxnResponse;
}

/// The outcome of an [`EndTxnRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EndTxnResponse {
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// The error code, or 0.
    pub error_code: i16,
    /// The producer id, -1 if not given (v5+, ignorable).
    pub producer_id: i64,
    /// The epoch the producer is to use from now on, -1 if not given (v5+, ignorable).
    pub producer_epoch: i16,
    /// Tagged fields this crate does not know (v3+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for EndTxnResponse {
    fn default() -> Self {
        Self {
            throttle_time_ms: 0,
            error_code: 0,
            producer_id: -1,
            producer_epoch: -1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for EndTxnResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        // The new id and epoch are ignorable: dropped silently before v5.
        if version >= 5 {
            w.i64(self.producer_id);
            w.i16(self.producer_epoch);
        }
        if version >= FIRST_FLEXIBLE {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for EndTxnResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self { throttle_time_ms: r.i32()?, error_code: r.i16()?, ..Self::default() };
        if version >= 5 {
            out.producer_id = r.i64()?;
            out.producer_epoch = r.i16()?;
        }
        if version >= FIRST_FLEXIBLE {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for EndTxnResponse {
    const API_KEY: ApiKey = ApiKey::END_TXN;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for EndTxnResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<EndTxnRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<EndTxnResponse>();
    }

    #[test]
    fn request_v0_and_v3_by_hand() {
        let req = EndTxnRequest {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: 1,
            committed: true,
            ..Default::default()
        };
        let v0: &[u8] = &[0, 2, b't', b'x', 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 1];
        let v3: &[u8] = &[3, b't', b'x', 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 1, 0];
        for (version, expected) in [(0, v0), (3, v3)] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            assert_eq!(EndTxnRequest::decode_body(Bytes::from_static(expected), version).unwrap(), req);
        }
    }

    #[test]
    fn response_v5_carries_the_bumped_epoch() {
        let resp = EndTxnResponse { producer_id: 9, producer_epoch: 4, ..Default::default() };
        let v5: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 4, 0];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 5).unwrap();
        assert_eq!(&buf[..], v5);
        assert_eq!(EndTxnResponse::decode_body(Bytes::from_static(v5), 5).unwrap(), resp);
        // Before v5 the epoch is not sent: the response decodes with -1 for both.
        let v4: &[u8] = &[0, 0, 0, 0, 0, 0, 0];
        let old = EndTxnResponse::decode_body(Bytes::from_static(v4), 4).unwrap();
        assert_eq!((old.producer_id, old.producer_epoch), (-1, -1));
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        let req = EndTxnRequest { transactional_id: "t".into(), ..Default::default() };
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 5).unwrap();
        for cut in 0..buf.len() {
            assert!(
                EndTxnRequest::decode_body(buf.clone().freeze().slice(..cut), 5).is_err(),
                "cut at {cut}"
            );
        }
    }
}
