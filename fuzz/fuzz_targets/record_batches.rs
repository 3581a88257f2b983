//! Decodes every batch and every record of arbitrary bytes, as a consumer reads a partition's
//! fetched record data. Any input must give batches, records or typed errors; never a panic, a
//! hang, or an allocation the input does not justify.
//!
//! The first byte picks whether checksums are verified: with verification almost every mutated
//! input stops at the CRC, so without it the fuzzer reaches the record and legacy parsers and
//! the decompressors behind them.
#![no_main]

use bytes::Bytes;
use klamm_protocol::records::RecordBatches;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let mut batches = RecordBatches::new(Bytes::copy_from_slice(data)).verify_checksums(mode & 1 == 0);
    for batch in batches.by_ref() {
        let Ok(batch) = batch else { break };
        // Every header accessor, as a consumer would call them.
        let _ = (batch.base_offset(), batch.last_offset(), batch.next_offset(), batch.last_sequence());
        let _ =
            (batch.compression(), batch.timestamp_type(), batch.delete_horizon_ms(), batch.record_count());
        let _ = batch.control_record();
        let Ok(records) = batch.records() else { continue };
        for record in records {
            let Ok(record) = record else { break };
            for header in record.headers().iter() {
                let _ = header.key_str();
            }
            let _ = record.headers().iter_owned().count();
            let _ = (record.offset(), record.timestamp(), record.key_bytes(), record.value_bytes());
        }
    }
    let _ = batches.remaining().len();
});
