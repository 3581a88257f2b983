//! AlterUserScramCredentials (key 51): creates, changes or deletes users' SCRAM credentials
//! (KIP-554). The client salts and hashes the password itself; the password never travels.
//!
//! Versions:
//! - v0: deletions (user, mechanism) and upsertions (user, mechanism, iterations, salt, salted
//!   password); flexible from the start.
//!
//! Mechanisms are numbered as Kafka's `ScramMechanism`: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Changes SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterUserScramCredentialsRequest {
    /// The credentials to remove.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub deletions: Vec<ScramCredentialDeletion>,
    /// The credentials to create or replace.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub upsertions: Vec<ScramCredentialUpsertion>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One credential to remove.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ScramCredentialDeletion {
    /// The user name.
    pub name: String,
    /// The mechanism (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// One credential to create or replace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ScramCredentialUpsertion {
    /// The user name.
    pub name: String,
    /// The mechanism (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    /// The PBKDF2 iteration count.
    pub iterations: i32,
    /// A random salt made by the client.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub salt: Bytes,
    /// The salted password: PBKDF2 with the mechanism's HMAC over the password.
    #[cfg_attr(test, proptest(strategy = "crate::testing::bytes()"))]
    pub salted_password: Bytes,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for ScramCredentialDeletion {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i8(self.mechanism);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ScramCredentialDeletion {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            mechanism: r.i8()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for ScramCredentialUpsertion {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, true)?;
        w.i8(self.mechanism);
        w.i32(self.iterations);
        w.bytes(&self.salt, true)?;
        w.bytes(&self.salted_password, true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ScramCredentialUpsertion {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(true, "name")?,
            mechanism: r.i8()?,
            iterations: r.i32()?,
            salt: r.bytes(true, "salt")?,
            salted_password: r.bytes(true, "salted_password")?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for AlterUserScramCredentialsRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.array(&self.deletions, true, |w, d| d.encode(w, version))?;
        w.array(&self.upsertions, true, |w, u| u.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for AlterUserScramCredentialsRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            deletions: r.array(true, "deletions", |r| ScramCredentialDeletion::decode(r, version))?,
            upsertions: r.array(true, "upsertions", |r| ScramCredentialUpsertion::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for AlterUserScramCredentialsRequest {
    const API_KEY: ApiKey = ApiKey::ALTER_USER_SCRAM_CREDENTIALS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Request for AlterUserScramCredentialsRequest {
    type Response = AlterUserScramCredentialsResponse;
}

/// One result per affected user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterUserScramCredentialsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The results, one per user.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub results: Vec<AlterUserScramCredentialsResult>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

/// The outcome for one user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AlterUserScramCredentialsResult {
    /// The user name.
    pub user: String,
    /// The error code, or 0.
    pub error_code: i16,
    /// The error message, or None.
    pub error_message: Option<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for AlterUserScramCredentialsResult {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.user, true)?;
        w.i16(self.error_code);
        w.nullable_string(self.error_message.as_deref(), true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for AlterUserScramCredentialsResult {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            user: r.string(true, "user")?,
            error_code: r.i16()?,
            error_message: r.nullable_string(true)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for AlterUserScramCredentialsResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i32(self.throttle_time_ms);
        w.array(&self.results, true, |w, r| r.encode(w, version))?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for AlterUserScramCredentialsResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            throttle_time_ms: r.i32()?,
            results: r.array(true, "results", |r| AlterUserScramCredentialsResult::decode(r, version))?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for AlterUserScramCredentialsResponse {
    const API_KEY: ApiKey = ApiKey::ALTER_USER_SCRAM_CREDENTIALS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = Some(0);
}

impl Response for AlterUserScramCredentialsResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::BytesMut;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<AlterUserScramCredentialsRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<AlterUserScramCredentialsResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        let req = AlterUserScramCredentialsRequest {
            deletions: vec![ScramCredentialDeletion { name: "a".into(), mechanism: 2, ..Default::default() }],
            upsertions: vec![ScramCredentialUpsertion {
                name: "b".into(),
                mechanism: 1,
                iterations: 4096,
                salt: Bytes::from_static(b"s"),
                salted_password: Bytes::from_static(b"pw"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            2, // one deletion
            2, b'a', 2, 0, // name, mechanism, tags
            2, // one upsertion
            2, b'b', 1, 0, 0, 0x10, 0, // name, mechanism, 4096
            2, b's', 3, b'p', b'w', 0, // salt, salted password, tags
            0, // tags
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(
            AlterUserScramCredentialsRequest::decode_body(Bytes::from_static(expected), 0).unwrap(),
            req
        );
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = AlterUserScramCredentialsResponse {
            throttle_time_ms: 0,
            results: vec![AlterUserScramCredentialsResult {
                user: "u".into(),
                error_code: 96, // UNACCEPTABLE_CREDENTIAL
                error_message: Some("no".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 2, 2, b'u', 0, 96, 3, b'n', b'o', 0, 0];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(
            AlterUserScramCredentialsResponse::decode_body(Bytes::from_static(expected), 0).unwrap(),
            resp
        );
        // A count beyond the bytes that follow is refused before anything is allocated.
        assert!(AlterUserScramCredentialsResponse::decode_body(Bytes::from_static(&[0, 0, 0, 0, 0x7f]), 0)
            .is_err());
    }
}
