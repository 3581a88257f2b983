//! Arbitrary bytes as a response frame of any API at any version: decoding must give a value or
//! a typed error, never a panic. A value that decodes must also encode again (strictly: decoding
//! never produces a value its version cannot carry) and decode from its new bytes.
//!
//! Input: byte 0 picks the API (an index into `IMPLEMENTED`), byte 1 the version within its
//! range; the rest is the frame after its size prefix (header, then body).
#![no_main]

use bytes::Bytes;
use klamm_protocol::api::any::{encode_response_frame, IMPLEMENTED};
use klamm_protocol::decode_response_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [pick, version_pick, frame @ ..] = data else { return };
    let (key, min, max) = IMPLEMENTED[usize::from(*pick) % IMPLEMENTED.len()];
    let version = min + i16::from(*version_pick) % (max - min + 1);
    if let Ok((header, body)) = decode_response_frame(key, version, Bytes::copy_from_slice(frame)) {
        let again = encode_response_frame(version, &header, &body)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: a decoded response does not encode: {e}"));
        decode_response_frame(key, version, again.freeze())
            .unwrap_or_else(|e| panic!("{key:?} v{version}: a re-encoded response does not decode: {e}"));
    }
});
