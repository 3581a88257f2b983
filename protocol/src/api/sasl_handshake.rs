//! SaslHandshake (key 17): the client names the SASL mechanism it wants to use.
//!
//! Versions:
//! - v0: the mechanism; the SASL tokens that follow travel as raw frames outside the protocol.
//! - v1: same layout; the tokens that follow travel in SaslAuthenticate requests instead.
//!
//! No version is flexible, and the version cannot easily be bumped (KAFKA-9577).

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Names the SASL mechanism the client chose.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SaslHandshakeRequest {
    /// The SASL mechanism, e.g. `PLAIN` or `SCRAM-SHA-256`.
    pub mechanism: String,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SaslHandshakeRequest {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.mechanism, false)
    }
}

impl Decode for SaslHandshakeRequest {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self { mechanism: r.string(false, "mechanism")?, unknown_tagged_fields: TaggedFields::default() })
    }
}

impl Message for SaslHandshakeRequest {
    const API_KEY: ApiKey = ApiKey::SASL_HANDSHAKE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = None;
}

impl Request for SaslHandshakeRequest {
    type Response = SaslHandshakeResponse;
}

/// The broker's answer: whether the mechanism is accepted, and which ones it enables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SaslHandshakeResponse {
    /// The error code, or 0.
    pub error_code: i16,
    /// The mechanisms the broker enables.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub mechanisms: Vec<String>,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SaslHandshakeResponse {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i16(self.error_code);
        w.string_array(&self.mechanisms, false)
    }
}

impl Decode for SaslHandshakeResponse {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            error_code: r.i16()?,
            mechanisms: r.array(false, "mechanisms", |r| r.string(false, "mechanisms"))?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Message for SaslHandshakeResponse {
    const API_KEY: ApiKey = ApiKey::SASL_HANDSHAKE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE: Option<i16> = None;
}

impl Response for SaslHandshakeResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<SaslHandshakeRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<SaslHandshakeResponse>();
    }

    #[test]
    fn request_v1_by_hand() {
        let req = SaslHandshakeRequest { mechanism: "PLAIN".into(), ..Default::default() };
        let expected: &[u8] = &[0, 5, b'P', b'L', b'A', b'I', b'N'];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(SaslHandshakeRequest::decode_body(Bytes::from_static(expected), 1).unwrap(), req);
    }

    #[test]
    fn response_v1_by_hand() {
        let resp = SaslHandshakeResponse {
            error_code: 33, // UNSUPPORTED_SASL_MECHANISM
            mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-512".into()],
            ..Default::default()
        };
        let mut expected = vec![0, 33, 0, 0, 0, 2, 0, 5];
        expected.extend_from_slice(b"PLAIN");
        expected.extend_from_slice(&[0, 13]);
        expected.extend_from_slice(b"SCRAM-SHA-512");
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 1).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(SaslHandshakeResponse::decode_body(Bytes::from(expected), 1).unwrap(), resp);
    }
}
