//! Arbitrary bytes into the lz4 decompressor: the result must be `Ok` or a typed error,
//! never a panic, and the output never larger than the limits allow (checked here).
#![no_main]

use klamm_protocol::compression::{Compression, DecompressionLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecompressionLimits::default();
    if let Ok(out) = Compression::Lz4.decompress(data, &limits) {
        assert!(out.len() <= limits.output_limit(data.len()));
    }
});
