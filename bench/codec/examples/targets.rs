//! The codec targets, each measured as the best of many alternating runs, so both sides see the
//! same machine: on a shared machine the minimum is steadier than criterion's mean, which
//! `cargo bench` reports with the full picture.
//!
//! - Uncompressed decode of a 1 MiB batch of 1 KiB records against one CRC-32C pass over it
//!   (target: at least 0.6x the pass's throughput).
//! - Decode and encode of 8192 records of 100 bytes against kafka-protocol (target: at least
//!   2x its records per second).
//!
//! `cargo run --release --example targets`

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};

const TS: i64 = 1_700_000_000_000;
const RUNS: usize = 1000;

/// The best time of `f` over `RUNS` runs, interleaved with the others by the caller.
fn time(best: &mut u128, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    *best = (*best).min(t.elapsed().as_nanos());
}

fn records(count: usize, len: usize) -> (Vec<Bytes>, Vec<Bytes>) {
    let mut seed = 42u64;
    let keys = (0..count).map(|i| Bytes::from(format!("key-{i:012}"))).collect();
    let values = (0..count)
        .map(|_| {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b'a' + (seed >> 60) as u8
                })
                .collect();
            Bytes::from(v)
        })
        .collect();
    (keys, values)
}

fn klamm_encode(keys: &[Bytes], values: &[Bytes]) -> BytesMut {
    let mut b =
        RecordBatchBuilder::with_buffer(BytesMut::with_capacity(values.len() * (values[0].len() + 40)));
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        b.push(TS + i as i64, Some(k), Some(v)).unwrap();
    }
    b.finish().unwrap()
}

fn klamm_decode(data: &Bytes) -> usize {
    let mut n = 0;
    for batch in RecordBatches::new(data.clone()) {
        for record in batch.unwrap().records().unwrap() {
            n += record.unwrap().value().map_or(0, <[u8]>::len);
        }
    }
    n
}

fn main() {
    let (keys, values) = records(1024, 1024);
    let data = klamm_encode(&keys, &values).freeze();
    let (mut crc, mut decode) = (u128::MAX, u128::MAX);
    for _ in 0..RUNS * 3 {
        time(&mut crc, || {
            black_box(crc32c::crc32c(black_box(&data)));
        });
        time(&mut decode, || {
            black_box(klamm_decode(black_box(&data)));
        });
    }
    println!(
        "1 KiB records, uncompressed decode: crc32c pass {} µs, klamm {} µs: {:.2}x the pass's throughput",
        crc / 1000,
        decode / 1000,
        crc as f64 / decode as f64
    );

    let (keys, values) = records(8192, 100);
    let data = klamm_encode(&keys, &values).freeze();
    let kp: Vec<KpRecord> = keys
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (k, v))| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: TS + i as i64,
            key: Some(k.clone()),
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect();
    let options = RecordEncodeOptions { version: 2, compression: KpCompression::None };
    let [mut enc, mut enc_kp, mut dec, mut dec_kp] = [u128::MAX; 4];
    for _ in 0..RUNS {
        time(&mut enc, || {
            black_box(klamm_encode(black_box(&keys), black_box(&values)));
        });
        time(&mut enc_kp, || {
            let mut buf = BytesMut::with_capacity(data.len());
            RecordBatchEncoder::encode(&mut buf, black_box(&kp), &options).unwrap();
            black_box(buf);
        });
        time(&mut dec, || {
            black_box(klamm_decode(black_box(&data)));
        });
        time(&mut dec_kp, || {
            let sets = RecordBatchDecoder::decode_all(&mut black_box(&data).clone()).unwrap();
            black_box(
                sets.iter()
                    .flat_map(|s| &s.records)
                    .map(|r| r.value.as_ref().map_or(0, Bytes::len))
                    .sum::<usize>(),
            );
        });
    }
    let per_sec = |ns: u128| 8192.0 / (ns as f64 / 1e9) / 1e6;
    println!(
        "8192 records of 100 bytes, encode: klamm {:.1} M/s, kafka-protocol {:.1} M/s: {:.2}x",
        per_sec(enc),
        per_sec(enc_kp),
        enc_kp as f64 / enc as f64
    );
    println!(
        "8192 records of 100 bytes, decode: klamm {:.1} M/s, kafka-protocol {:.1} M/s: {:.2}x",
        per_sec(dec),
        per_sec(dec_kp),
        dec_kp as f64 / dec as f64
    );
}
