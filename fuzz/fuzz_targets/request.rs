//! Arbitrary bytes as a request frame (the broker's side: fakes and recorders decode them):
//! decoding must give a value or a typed error, never a panic; a value that decodes must encode
//! again and decode from its new bytes. The frame names its own API and version.
#![no_main]

use bytes::Bytes;
use klamm_protocol::api::any::encode_request_frame;
use klamm_protocol::decode_request_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, body)) = decode_request_frame(Bytes::copy_from_slice(data)) {
        let again = encode_request_frame(&header, &body)
            .unwrap_or_else(|e| panic!("{:?}: a decoded request does not encode: {e}", header.api_key));
        decode_request_frame(again.freeze())
            .unwrap_or_else(|e| panic!("{:?}: a re-encoded request does not decode: {e}", header.api_key));
    }
});
