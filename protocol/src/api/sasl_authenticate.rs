//! SaslAuthenticate (key 36): carries the SASL tokens after a v1 SaslHandshake.
//!
//! Versions:
//! - v0: the client's token; the response carries an error, its message and the server token.
//! - v1: the response adds `session_lifetime_ms` (KIP-368, re-authentication).
//! - v2: first flexible version.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// One SASL token from the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SaslAuthenticateRequest {
    /// The client's SASL token, as the mechanism defines it.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub auth_bytes: Bytes,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SaslAuthenticateRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.bytes(&self.auth_bytes, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for SaslAuthenticateRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self { auth_bytes: r.bytes(flexible, "auth_bytes")?, ..Self::default() };
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for SaslAuthenticateRequest {
    const API_KEY: ApiKey = ApiKey::SASL_AUTHENTICATE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Request for SaslAuthenticateRequest {
    type Response = SaslAuthenticateResponse;
}

/// The broker's SASL token, or why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SaslAuthenticateResponse {
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// The server's SASL token, as the mechanism defines it.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub auth_bytes: Bytes,
    /// Milliseconds after which the client must re-authenticate; 0 for no limit (v1+, ignorable).
    pub session_lifetime_ms: i64,
    /// Tagged fields this crate does not know (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for SaslAuthenticateResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= 2;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), flexible)?;
        w.bytes(&self.auth_bytes, flexible)?;
        // Ignorable: dropped silently before v1.
        if version >= 1 {
            w.i64(self.session_lifetime_ms);
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for SaslAuthenticateResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 2;
        let mut out = Self {
            error_code: r.i16()?,
            error_message: r.nullable_string(flexible)?,
            auth_bytes: r.bytes(flexible, "auth_bytes")?,
            ..Self::default()
        };
        if version >= 1 {
            out.session_lifetime_ms = r.i64()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for SaslAuthenticateResponse {
    const API_KEY: ApiKey = ApiKey::SASL_AUTHENTICATE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE: Option<i16> = Some(2);
}

impl Response for SaslAuthenticateResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::BytesMut;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<SaslAuthenticateRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<SaslAuthenticateResponse>();
    }

    #[test]
    fn request_v0_and_v2_by_hand() {
        let req = SaslAuthenticateRequest { auth_bytes: Bytes::from_static(b"\0u\0p"), ..Default::default() };
        for (version, expected) in [
            (0, &[0, 0, 0, 4, 0, b'u', 0, b'p'][..]),
            // compact bytes: length + 1, then an empty tagged-field section.
            (2, &[5, 0, b'u', 0, b'p', 0][..]),
        ] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, version).unwrap();
            assert_eq!(&buf[..], expected, "v{version}");
            let decoded =
                SaslAuthenticateRequest::decode_body(Bytes::copy_from_slice(expected), version).unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn response_v2_by_hand() {
        let resp = SaslAuthenticateResponse {
            error_code: 0,
            error_message: None,
            auth_bytes: Bytes::from_static(b"ok"),
            session_lifetime_ms: 3_600_000,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, // error_code
            0, // null compact string
            3, b'o', b'k', // compact bytes
            0, 0, 0, 0, 0, 0x36, 0xee, 0x80, // 3 600 000
            0,    // no tagged fields
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 2).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(SaslAuthenticateResponse::decode_body(Bytes::from_static(expected), 2).unwrap(), resp);
    }

    #[test]
    fn session_lifetime_is_dropped_before_v1() {
        let resp = SaslAuthenticateResponse { session_lifetime_ms: 5, ..Default::default() };
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    }
}
