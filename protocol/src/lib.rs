//! `klamm-protocol`: the Apache Kafka wire protocol as a sans-IO codec.
//!
//! This crate turns typed messages into bytes and bytes into typed messages. It does no IO,
//! spawns nothing and reads no clock, so the client, tests and fuzzers all drive it the same
//! way. It is written by hand from Apache Kafka's message definitions; nothing is generated.
//!
//! What matters most:
//! - [`api`]: one module per API, each with its request and response types at every version the
//!   message definitions list. A request implements [`Request`] (its [`ApiKey`], version range and
//!   response type).
//! - [`header`]: request/response headers and size-prefixed frames ([`encode_request`],
//!   [`decode_response`], [`frame_len`]).
//! - [`codec`]: the primitive types ([`Reader`], [`Writer`]) the messages are built from.
//! - [`records`]: record data as Fetch and Produce carry it: record batches read
//!   ([`records::RecordBatches`]) and written ([`records::RecordBatchBuilder`]), legacy message
//!   sets read, control records, zero-copy records.
//! - [`compression`]: gzip, snappy, lz4 and zstd as Kafka clients frame them, each behind a cargo
//!   feature, with limits against decompression bombs.
//! - [`ErrorCode`]: every Kafka error code, with its name, whether a retry can help, and what it
//!   means.
//!
//! Decoding takes untrusted input: every length is checked against what remains before it is
//! used, nothing is allocated beyond what the input can justify, and no input makes a decoder
//! panic. Byte strings decode as zero-copy slices of the input [`bytes::Bytes`].
//!
//! ```
//! use bytes::BytesMut;
//! use klamm_protocol::api::api_versions::ApiVersionsRequest;
//! use klamm_protocol::encode_request;
//!
//! let mut frame = BytesMut::new();
//! let req = ApiVersionsRequest {
//!     client_software_name: "klamm".into(),
//!     client_software_version: "0.1.0".into(),
//!     ..Default::default()
//! };
//! encode_request(&mut frame, 1, Some("my-app"), 3, &req).unwrap();
//! assert_eq!(&frame[4..6], &[0, 18]); // the ApiVersions key, after the size prefix
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod api;
mod api_key;
pub mod codec;
pub mod compression;
pub mod error;
mod error_code;
pub mod header;
mod message;
pub mod records;
mod tagged;
mod uuid;

#[cfg(test)]
pub(crate) mod testing;

pub use api::any::{decode_request_frame, decode_response_frame, AnyRequest, AnyResponse};
pub use api_key::ApiKey;
pub use codec::{Reader, Writer};
pub use error::{DecodeError, EncodeError};
pub use error_code::ErrorCode;
pub use header::{
    decode_response, encode_request, encode_response, frame_len, RequestHeader, ResponseHeader,
};
pub use message::{Decode, Encode, Message, Request, Response};
pub use tagged::{RawTaggedField, TaggedFields};
pub use uuid::Uuid;
