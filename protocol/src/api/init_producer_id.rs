//! InitProducerId (key 22): obtains a producer id and epoch for an idempotent or
//! transactional producer.
//!
//! Versions:
//! - v0: the transactional id (or null) and the transaction timeout.
//! - v1: same layout; brokers respond before throttling on quota violation.
//! - v2: first flexible version.
//! - v3: the request adds the current `producer_id` and `producer_epoch`, so that a producer
//!   can resume after INVALID_PRODUCER_EPOCH (KIP-360).
//! - v4: same layout; may return PRODUCER_FENCED.
//! - v5: same layout; may return TRANSACTION_ABORTABLE (KIP-890).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Asks for a producer id and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InitProducerIdRequest {
    /// The transactional id, or None for a producer that is not transactional.
    pub transactional_id: Option<String>,
    /// How long an idle transaction may stay open before it is aborted, in milliseconds.
    pub transaction_timeout_ms: i32,
    /// The producer's current id, or -1 (v3+).
    pub producer_id: i64,
    /// The producer's current epoch, or -1 (v3+).
    pub producer_epoch: i16,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for InitProducerIdRequest {
    fn default() -> Self {
        Self {
            transactional_id: None,
            transaction_timeout_ms: 0,
            producer_id: -1,
            producer_epoch: -1,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for InitProducerIdRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.nullable_string(self.transactional_id.as_deref(), flexible)?;
        w.i32(self.transaction_timeout_ms);
        if version >= 3 {
            w.i64(self.producer_id);
            w.i16(self.producer_epoch);
        } else {
            if self.producer_id != -1 {
                w.unavailable("producer_id", version)?;
            }
            if self.producer_epoch != -1 {
                w.unavailable("producer_epoch", version)?;
            }
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for InitProducerIdRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            transactional_id: r.nullable_string(flexible)?,
            transaction_timeout_ms: r.i32()?,
            ..Self::default()
        };
        if version >= 3 {
            out.producer_id = r.i64()?;
            out.producer_epoch = r.i16()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for InitProducerIdRequest {
    const API_KEY: ApiKey = ApiKey::INIT_PRODUCER_ID;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for InitProducerIdRequest {
    type Response = InitProducerIdResponse;
}

/// The producer id and epoch the producer is to use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InitProducerIdResponse {
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// The error code, or 0.
    pub error_code: i16,
    /// The producer id, -1 on error.
    pub producer_id: i64,
    /// The epoch of the producer id.
    pub producer_epoch: i16,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for InitProducerIdResponse {
    fn default() -> Self {
        Self {
            throttle_time_ms: 0,
            error_code: 0,
            producer_id: -1,
            producer_epoch: 0,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for InitProducerIdResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        if version >= 2 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for InitProducerIdResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            unknown_tagged_fields: if version >= 2 {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Message for InitProducerIdResponse {
    const API_KEY: ApiKey = ApiKey::INIT_PRODUCER_ID;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for InitProducerIdResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<InitProducerIdRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<InitProducerIdResponse>();
    }

    #[test]
    fn request_v0_and_v4_by_hand() {
        // An idempotent (non-transactional) producer at v0.
        let req = InitProducerIdRequest { transaction_timeout_ms: 60_000, ..Default::default() };
        let expected: &[u8] = &[0xff, 0xff, 0, 0, 0xea, 0x60];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(InitProducerIdRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);

        // A transactional producer resuming with its current id and epoch at v4.
        let req = InitProducerIdRequest {
            transactional_id: Some("tx".into()),
            transaction_timeout_ms: 60_000,
            producer_id: 7,
            producer_epoch: 2,
            ..Default::default()
        };
        let expected: &[u8] = &[
            3, b't', b'x', // compact string
            0, 0, 0xea, 0x60, // 60000
            0, 0, 0, 0, 0, 0, 0, 7, // producer_id
            0, 2, // producer_epoch
            0, // tags
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 4).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(InitProducerIdRequest::decode_body(Bytes::from_static(expected), 4).unwrap(), req);
    }

    #[test]
    fn response_v1_by_hand() {
        let resp = InitProducerIdResponse {
            throttle_time_ms: 0,
            error_code: 0,
            producer_id: 0x0102,
            producer_epoch: 0,
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(InitProducerIdResponse::decode_body(Bytes::from_static(expected), 1).unwrap(), resp);
    }

    #[test]
    fn producer_id_is_not_available_before_v3() {
        let req = InitProducerIdRequest { producer_id: 7, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 2).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "producer_id", version: 2 });
        let req = InitProducerIdRequest { producer_epoch: 0, ..Default::default() };
        let err = req.encode_body(&mut BytesMut::new(), 2).unwrap_err();
        assert_eq!(err, EncodeError::FieldNotAvailable { field: "producer_epoch", version: 2 });
    }
}
