//! Request and response headers, and the size-prefixed frames that carry them.
//!
//! Request header v0: api key, api version, correlation id (only ControlledShutdown v0 used it).
//! v1 adds the client id (a classic nullable string even in flexible versions, so that any
//! broker can read the header of an ApiVersions request); v2 adds a tagged-field section.
//! Response header v0: correlation id; v1 adds a tagged-field section. ApiVersions responses
//! always use v0 (see [`Response::header_version`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// The largest frame a [`Reader`] accepts by default: 100 MiB, as the Java client's
/// `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// The header in front of every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API of the body.
    pub api_key: ApiKey,
    /// The body's version.
    pub api_version: i16,
    /// Echoed in the response header; matches responses to requests.
    pub correlation_id: i32,
    /// The client id (v1+).
    pub client_id: Option<String>,
    /// Unknown tagged fields (v2+).
    pub unknown_tagged_fields: TaggedFields,
}

impl RequestHeader {
    /// Writes the header in `header_version` (0, 1 or 2).
    pub fn encode(&self, w: &mut Writer<'_>, header_version: i16) -> Result<(), EncodeError> {
        w.i16(self.api_key.0);
        w.i16(self.api_version);
        w.i32(self.correlation_id);
        if header_version >= 1 {
            // Always the classic encoding, even in flexible versions.
            w.nullable_string(self.client_id.as_deref(), false)?;
        }
        if header_version >= 2 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }

    /// Reads a header in `header_version`.
    pub fn decode(r: &mut Reader, header_version: i16) -> Result<Self, DecodeError> {
        let api_key = ApiKey(r.i16()?);
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let client_id = if header_version >= 1 { r.nullable_string(false)? } else { None };
        let unknown_tagged_fields =
            if header_version >= 2 { r.unknown_tagged_fields()? } else { TaggedFields::default() };
        Ok(Self { api_key, api_version, correlation_id, client_id, unknown_tagged_fields })
    }
}

/// The header in front of every response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
    /// Unknown tagged fields (v1+).
    pub unknown_tagged_fields: TaggedFields,
}

impl ResponseHeader {
    /// Writes the header in `header_version` (0 or 1).
    pub fn encode(&self, w: &mut Writer<'_>, header_version: i16) -> Result<(), EncodeError> {
        w.i32(self.correlation_id);
        if header_version >= 1 {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }

    /// Reads a header in `header_version`.
    pub fn decode(r: &mut Reader, header_version: i16) -> Result<Self, DecodeError> {
        let correlation_id = r.i32()?;
        let unknown_tagged_fields =
            if header_version >= 1 { r.unknown_tagged_fields()? } else { TaggedFields::default() };
        Ok(Self { correlation_id, unknown_tagged_fields })
    }
}

/// Appends a complete request frame (size prefix, header, body) to `buf`.
///
/// The header's `api_key` and `api_version` are taken from `R` and `version`.
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    body: &R,
) -> Result<(), EncodeError> {
    if !R::supports(version) {
        return Err(EncodeError::UnsupportedVersion { api_key: R::API_KEY.0, version });
    }
    let start = buf.len();
    buf.put_i32(0);
    let header = RequestHeader {
        api_key: R::API_KEY,
        api_version: version,
        correlation_id,
        client_id: client_id.map(str::to_owned),
        unknown_tagged_fields: TaggedFields::default(),
    };
    let mut w = Writer::new(buf);
    header.encode(&mut w, R::header_version(version))?;
    body.encode(&mut w, version)?;
    patch_size(buf, start)
}

/// Appends a complete response frame (size prefix, header, body) to `buf`: the broker's side,
/// for tests and fakes.
pub fn encode_response<R: Response>(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<(), EncodeError> {
    if !R::supports(version) {
        return Err(EncodeError::UnsupportedVersion { api_key: R::API_KEY.0, version });
    }
    let start = buf.len();
    buf.put_i32(0);
    let mut w = Writer::new(buf);
    let header = ResponseHeader { correlation_id, unknown_tagged_fields: TaggedFields::default() };
    header.encode(&mut w, R::header_version(version))?;
    body.encode(&mut w, version)?;
    patch_size(buf, start)
}

fn patch_size(buf: &mut BytesMut, start: usize) -> Result<(), EncodeError> {
    let size = buf.len() - start - 4;
    let size = i32::try_from(size).map_err(|_| EncodeError::TooLong { what: "frame", length: size })?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Decodes a response frame's contents (after the size prefix) as `R` at `version`.
pub fn decode_response<R: Response>(frame: Bytes, version: i16) -> Result<(ResponseHeader, R), DecodeError> {
    if !R::supports(version) {
        return Err(DecodeError::UnsupportedVersion { api_key: R::API_KEY.0, version });
    }
    let mut r = Reader::new(frame);
    let header = ResponseHeader::decode(&mut r, R::header_version(version))?;
    let body = R::decode(&mut r, version)?;
    r.finish("response")?;
    Ok((header, body))
}

/// Reads the size prefix at the start of `buf` and, if the whole frame is there, returns its
/// length (not counting the prefix). `Ok(None)` means more bytes are needed. A negative size or
/// one above `max_frame` is an error: the connection cannot be trusted after it.
pub fn frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let size_u = usize::try_from(size)
        .map_err(|_| DecodeError::InvalidLength { length: i64::from(size), remaining: buf.len() - 4 })?;
    if size_u > max_frame {
        return Err(DecodeError::FrameTooLarge { size: size_u as u64, max: max_frame as u64 });
    }
    Ok(if buf.len() - 4 >= size_u { Some(size_u) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v2_keeps_classic_client_id() {
        let h = RequestHeader {
            api_key: ApiKey::METADATA,
            api_version: 12,
            correlation_id: 7,
            client_id: Some("klamm".into()),
            unknown_tagged_fields: TaggedFields::default(),
        };
        let mut b = BytesMut::new();
        h.encode(&mut Writer::new(&mut b), 2).unwrap();
        assert_eq!(&b[..], &[0, 3, 0, 12, 0, 0, 0, 7, 0, 5, b'k', b'l', b'a', b'm', b'm', 0]);
        let back = RequestHeader::decode(&mut Reader::new(b.freeze()), 2).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn frame_len_checks_limits() {
        assert_eq!(frame_len(&[0, 0], 100), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0, 2, 1], 100), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0, 2, 1, 2], 100), Ok(Some(2)));
        assert!(matches!(frame_len(&[0xff, 0xff, 0xff, 0xff], 100), Err(DecodeError::InvalidLength { .. })));
        assert!(matches!(frame_len(&[0, 0, 1, 0], 100), Err(DecodeError::FrameTooLarge { .. })));
    }
}
