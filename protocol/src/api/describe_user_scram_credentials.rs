//! DescribeUserScramCredentials (key 50): which SCRAM mechanisms each user has credentials
//! for, with their iteration counts (KIP-554). Never the salts or salted passwords.
//!
//! Versions:
//! - v0: the users (null for all); flexible from the start.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Describes users' SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeUserScramCredentialsRequest {
    /// The users to describe; `None` (or empty) for every user.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub users: Option<Vec<UserName>>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One user to describe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UserName {
    /// The user name.
    pub name: String,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for UserName {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for UserName {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self { name: r.string(true, "name")?, unknown_tagged_fields: r.unknown_tagged_fields()? })
    }
}

impl Encode for DescribeUserScramCredentialsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.nullable_array(self.users.as_deref(), true, |w, u| u.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeUserScramCredentialsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            users: r.nullable_array(true, |r| UserName::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeUserScramCredentialsRequest {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_USER_SCRAM_CREDENTIALS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for DescribeUserScramCredentialsRequest {
    type Response = DescribeUserScramCredentialsResponse;
}

/// Each user's SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeUserScramCredentialsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The request's error code (authorization, say), or 0.
    pub error_code: i16,
    /// The request's error message, or None.
    pub error_message: Option<String>,
    /// One result per user.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results: Vec<DescribeUserScramCredentialsResult>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One user's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DescribeUserScramCredentialsResult {
    /// The user name.
    pub user: String,
    /// The user's error code (RESOURCE_NOT_FOUND for a user without credentials), or 0.
    pub error_code: i16,
    /// The user's error message, or None.
    pub error_message: Option<String>,
    /// One entry per mechanism the user has a credential for.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub credential_infos: Vec<CredentialInfo>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// A mechanism a user has a credential for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CredentialInfo {
    /// The mechanism (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    /// The iteration count of the credential.
    pub iterations: i32,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for CredentialInfo {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i8(self.mechanism);
        w.i32(self.iterations);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for CredentialInfo {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            mechanism: r.i8()?,
            iterations: r.i32()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeUserScramCredentialsResult {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.user, true)?;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.array(&self.credential_infos, true, |w, c| c.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeUserScramCredentialsResult {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            user: r.string(true, "user")?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            credential_infos: r.array(true, "credential_infos", |r| CredentialInfo::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for DescribeUserScramCredentialsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.array(&self.results, true, |w, r| r.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for DescribeUserScramCredentialsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            results: r.array(true, "results", |r| DescribeUserScramCredentialsResult::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for DescribeUserScramCredentialsResponse {
    const API_KEY: ApiKey = ApiKey::DESCRIBE_USER_SCRAM_CREDENTIALS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for DescribeUserScramCredentialsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<DescribeUserScramCredentialsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<DescribeUserScramCredentialsResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        for (req, expected) in [
            (DescribeUserScramCredentialsRequest::default(), &[0u8, 0][..]),
            (
                DescribeUserScramCredentialsRequest {
                    users: Some(vec![UserName { name: "al".into(), ..Default::default() }]),
                    ..Default::default()
                },
                &[2, 3, b'a', b'l', 0, 0][..],
            ),
        ] {
            let mut buf = BytesMut::new();
            req.encode_body(&mut buf, 0).unwrap();
            assert_eq!(&buf[..], expected);
            let decoded =
                DescribeUserScramCredentialsRequest::decode_body(Bytes::copy_from_slice(expected), 0)
                    .unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = DescribeUserScramCredentialsResponse {
            results: vec![DescribeUserScramCredentialsResult {
                user: "u".into(),
                credential_infos: vec![CredentialInfo {
                    mechanism: 2,
                    iterations: 8192,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 0, 0, 0, // throttle
            0, 0, 0, // error code, null message
            2, 2, b'u', 0, 0, 0, // user, error code, null message
            2, 2, 0, 0, 0x20, 0, 0, // SCRAM-SHA-512, 8192 iterations, tags
            0, 0, // tags
        ];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(
            DescribeUserScramCredentialsResponse::decode_body(Bytes::from_static(expected), 0).unwrap(),
            resp
        );
        for cut in 0..expected.len() {
            let short = Bytes::copy_from_slice(&expected[..cut]);
            assert!(DescribeUserScramCredentialsResponse::decode_body(short, 0).is_err(), "{cut}");
        }
    }
}
