//! What every message type implements: versioned encode and decode, and for requests the API
//! key, the version range and the response type.

use bytes::{Bytes, BytesMut};

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::ApiKey;

/// A structure that can be written at a protocol version.
pub trait Encode {
    /// Writes `self` as `version` lays it out.
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError>;
}

/// A structure that can be read at a protocol version.
pub trait Decode: Sized {
    /// Reads a value as `version` lays it out.
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError>;
}

/// A top-level request or response body.
pub trait Message: Encode + Decode + Default + Clone + PartialEq + std::fmt::Debug {
    /// The API this message belongs to.
    const API_KEY: ApiKey;
    /// The oldest version this crate implements.
    const MIN_VERSION: i16;
    /// The newest version this crate implements.
    const MAX_VERSION: i16;
    /// The first flexible version (compact encodings, tagged fields), if any.
    const FIRST_FLEXIBLE: Option<i16>;

    /// Whether `version` uses the flexible encoding.
    #[inline]
    fn is_flexible(version: i16) -> bool {
        matches!(Self::FIRST_FLEXIBLE, Some(f) if version >= f)
    }

    /// Whether this crate implements `version`.
    #[inline]
    fn supports(version: i16) -> bool {
        (Self::MIN_VERSION..=Self::MAX_VERSION).contains(&version)
    }

    /// Encodes the body (no header, no size prefix) at `version`, appending to `buf`.
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        if !Self::supports(version) {
            return Err(EncodeError::UnsupportedVersion { api_key: Self::API_KEY.0, version });
        }
        self.encode(&mut Writer::new(buf), version)
    }

    /// Decodes a complete body at `version`; bytes left over are an error.
    fn decode_body(body: Bytes, version: i16) -> Result<Self, DecodeError> {
        if !Self::supports(version) {
            return Err(DecodeError::UnsupportedVersion { api_key: Self::API_KEY.0, version });
        }
        let mut r = Reader::new(body);
        let msg = Self::decode(&mut r, version)?;
        r.finish("message body")?;
        Ok(msg)
    }
}

/// A request body. Its header version follows from whether the version is flexible.
pub trait Request: Message {
    /// The response this request is answered with.
    type Response: Response;

    /// The request header version this request uses at `version` (1, or 2 when flexible).
    fn header_version(version: i16) -> i16 {
        if Self::is_flexible(version) {
            2
        } else {
            1
        }
    }
}

/// A response body.
pub trait Response: Message {
    /// The response header version this response uses at `version`: 1 when flexible, else 0.
    /// ApiVersions responses always use 0 so that a client that does not yet know the broker's
    /// versions can parse them.
    fn header_version(version: i16) -> i16 {
        if Self::API_KEY != ApiKey::API_VERSIONS && Self::is_flexible(version) {
            1
        } else {
            0
        }
    }
}
