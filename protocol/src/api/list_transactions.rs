//! ListTransactions (key 66): the transactional ids a broker coordinates, with their producer
//! id and state, optionally filtered (KIP-664). A listing of the whole cluster asks every
//! broker and merges the answers.
//!
//! Versions:
//! - v0: state and producer id filters; flexible from the start.
//! - v1: the request adds `duration_filter`: only transactions open longer than this (KIP-994).
//! - v2: the request adds `transactional_id_pattern`, a regular expression the ids must match
//!   (KIP-1152).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Lists the transactions the receiving broker coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListTransactionsRequest {
    /// Only transactions in one of these states; empty for all.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub state_filters: Vec<String>,
    /// Only transactions of one of these producer ids; empty for all.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub producer_id_filters: Vec<i64>,
    /// Only transactions running longer than this many milliseconds; negative for all (v1+).
    pub duration_filter: i64,
    /// Only transactional ids matching this regular expression; None or empty for all (v2+).
    pub transactional_id_pattern: Option<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ListTransactionsRequest {
    fn default() -> Self {
        Self {
            state_filters: Vec::new(),
            producer_id_filters: Vec::new(),
            duration_filter: -1,
            transactional_id_pattern: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for ListTransactionsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string_array(&self.state_filters, true)?;
        w.array(&self.producer_id_filters, true, |w, id| {
            w.i64(*id);
            Ok(())
        })?;
        if version >= 1 {
            w.i64(self.duration_filter);
        } else if self.duration_filter != -1 {
            w.unavailable("duration_filter", version)?;
        }
        if version >= 2 {
            w.nullable_string(self.transactional_id_pattern.as_deref(), true)?;
        } else if self.transactional_id_pattern.is_some() {
            w.unavailable("transactional_id_pattern", version)?;
        }
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ListTransactionsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self {
            state_filters: r.array(true, "state_filters", |r| r.string(true, "state_filters"))?,
            producer_id_filters: r.array(true, "producer_id_filters", Reader::i64)?,
            ..Self::default()
        };
        if version >= 1 {
            out.duration_filter = r.i64()?;
        }
        if version >= 2 {
            out.transactional_id_pattern = r.nullable_string(true)?;
        }
        out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        Ok(out)
    }
}

impl Message for ListTransactionsRequest {
    const API_KEY: ApiKey = ApiKey::LIST_TRANSACTIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for ListTransactionsRequest {
    type Response = ListTransactionsResponse;
}

/// The transactions the broker coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListTransactionsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The error code (COORDINATOR_LOAD_IN_PROGRESS, ...), or 0.
    pub error_code: i16,
    /// The state filters of the request the coordinator does not know.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub unknown_state_filters: Vec<String>,
    /// One entry per transactional id.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub transaction_states: Vec<ListedTransaction>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One transactional id of a [`ListTransactionsResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The transaction state (`Ongoing`, `CompleteCommit`, ...).
    pub transaction_state: String,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ListedTransaction {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.transactional_id, true)?;
        w.i64(self.producer_id);
        w.string(&self.transaction_state, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ListedTransaction {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            transactional_id: r.string(true, "transactional_id")?,
            producer_id: r.i64()?,
            transaction_state: r.string(true, "transaction_state")?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ListTransactionsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.string_array(&self.unknown_state_filters, true)?;
        w.array(&self.transaction_states, true, |w, t| t.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ListTransactionsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            unknown_state_filters: r
                .array(true, "unknown_state_filters", |r| r.string(true, "unknown_state_filters"))?,
            transaction_states: r
                .array(true, "transaction_states", |r| ListedTransaction::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for ListTransactionsResponse {
    const API_KEY: ApiKey = ApiKey::LIST_TRANSACTIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for ListTransactionsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<ListTransactionsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<ListTransactionsResponse>();
    }

    #[test]
    fn requests_by_hand() {
        let req = ListTransactionsRequest {
            state_filters: vec!["Ongoing".into()],
            producer_id_filters: vec![5],
            ..Default::default()
        };
        #[rustfmt::skip]
        let v0: &[u8] = &[
            2, 8, b'O', b'n', b'g', b'o', b'i', b'n', b'g', // state_filters
            2, 0, 0, 0, 0, 0, 0, 0, 5,                      // producer_id_filters
            0,                                              // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], v0);
        assert_eq!(ListTransactionsRequest::decode_body(Bytes::from_static(v0), 0).unwrap(), req);

        let req = ListTransactionsRequest {
            duration_filter: 1000,
            transactional_id_pattern: Some("a.*".into()),
            ..Default::default()
        };
        #[rustfmt::skip]
        let v2: &[u8] = &[
            1, 1,                           // empty filters
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,   // duration_filter
            4, b'a', b'.', b'*',            // transactional_id_pattern
            0,                              // tagged fields
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], v2);
        assert_eq!(ListTransactionsRequest::decode_body(Bytes::from_static(v2), 2).unwrap(), req);
        for cut in 0..v2.len() {
            let short = Bytes::copy_from_slice(&v2[..cut]);
            assert!(ListTransactionsRequest::decode_body(short, 2).is_err(), "{cut}");
        }
    }

    #[test]
    fn unavailable_filters_are_refused() {
        let req = ListTransactionsRequest { duration_filter: 0, ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 0),
            Err(EncodeError::FieldNotAvailable { field: "duration_filter", version: 0 })
        );
        let req =
            ListTransactionsRequest { transactional_id_pattern: Some(String::new()), ..Default::default() };
        assert_eq!(
            req.encode_body(&mut BytesMut::new(), 1),
            Err(EncodeError::FieldNotAvailable { field: "transactional_id_pattern", version: 1 })
        );
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = ListTransactionsResponse {
            unknown_state_filters: vec!["Nope".into()],
            transaction_states: vec![ListedTransaction {
                transactional_id: "tx".into(),
                producer_id: 2,
                transaction_state: "Empty".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,                                 // throttle_time_ms
            0, 0,                                       // error_code
            2, 5, b'N', b'o', b'p', b'e',               // unknown_state_filters
            2, 3, b't', b'x',                           // transaction_states: 1, id
            0, 0, 0, 0, 0, 0, 0, 2,                     //   producer_id
            6, b'E', b'm', b'p', b't', b'y', 0,         //   state, tagged fields
            0,                                          // tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(ListTransactionsResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
        for cut in 0..expected.len() {
            let short = Bytes::copy_from_slice(&expected[..cut]);
            assert!(ListTransactionsResponse::decode_body(short, 0).is_err(), "{cut}");
        }
    }
}
