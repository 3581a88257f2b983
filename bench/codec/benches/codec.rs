//! Record batch encode and decode: klamm-protocol against the `kafka-protocol` crate (0.18,
//! `records::RecordBatchEncoder`/`RecordBatchDecoder`) on the same records and the same bytes,
//! with one CRC-32C pass over the batch as the floor (every reader and writer must make it).
//!
//! Data sets:
//! - `1KiB`: 1024 records with a 16-byte key and a 1 KiB value (a 1 MiB batch), uncompressed and
//!   lz4. Throughput is in bytes of the uncompressed batch.
//! - `100B`: 8192 records with a 16-byte key and a 100-byte value. Throughput is in records.
//!
//! Values are JSON-like text with varying numbers, so lz4 has something to do (about 3:1).
//! Both libraries decode the same bytes (written by klamm's encoder; the lz4 frames are the
//! standard format both read). Decoding means reading every record and touching its value.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use klamm_protocol::compression::{Compression, DecompressionLimits};
use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};

const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// The records of one data set, in the form each library takes them.
struct DataSet {
    name: &'static str,
    keys: Vec<Bytes>,
    values: Vec<Bytes>,
    kp_records: Vec<KpRecord>,
}

fn value(i: usize, len: usize, seed: &mut u64) -> Bytes {
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = *seed >> 33;
        write!(
            out,
            r#"{{"id":{i},"user":"u{}","amount":{}.{:02},"tags":["a","b{}"]}}"#,
            n % 10_000,
            n % 997,
            n % 100,
            n % 13
        )
        .unwrap();
    }
    out.truncate(len);
    Bytes::from(out)
}

fn data_set(name: &'static str, count: usize, value_len: usize) -> DataSet {
    let mut seed = 42;
    let keys: Vec<Bytes> = (0..count).map(|i| Bytes::from(format!("key-{i:012}"))).collect();
    let values: Vec<Bytes> = (0..count).map(|i| value(i, value_len, &mut seed)).collect();
    let kp_records = keys
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
            timestamp: BASE_TIMESTAMP + i as i64,
            key: Some(k.clone()),
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect();
    DataSet { name, keys, values, kp_records }
}

fn klamm_encode(d: &DataSet, codec: Compression) -> BytesMut {
    let capacity = d.values.iter().map(|v| v.len() + 40).sum::<usize>() + 64;
    let mut batch = RecordBatchBuilder::with_buffer(BytesMut::with_capacity(capacity)).compression(codec);
    for (i, (k, v)) in d.keys.iter().zip(&d.values).enumerate() {
        batch.push(BASE_TIMESTAMP + i as i64, Some(k), Some(v)).unwrap();
    }
    batch.finish().unwrap()
}

fn kp_encode(d: &DataSet, compression: KpCompression) -> BytesMut {
    let capacity = d.values.iter().map(|v| v.len() + 40).sum::<usize>() + 64;
    let mut buf = BytesMut::with_capacity(capacity);
    let options = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buf, &d.kp_records, &options).unwrap();
    buf
}

/// kafka-protocol with liblz4 at its fast level (0) instead of its default (4, high compression),
/// through its custom-compressor hook.
fn kp_encode_lz4_fast(d: &DataSet) -> BytesMut {
    let capacity = d.values.iter().map(|v| v.len() + 40).sum::<usize>() + 64;
    let mut buf = BytesMut::with_capacity(capacity);
    let options = RecordEncodeOptions { version: 2, compression: KpCompression::Lz4 };
    let fast = |records: &mut BytesMut, out: &mut BytesMut, _: KpCompression| -> anyhow::Result<()> {
        let mut encoder = lz4::EncoderBuilder::new()
            .level(0)
            .block_mode(lz4::BlockMode::Independent)
            .build(bytes::BufMut::writer(out))?;
        encoder.write_all(records)?;
        encoder.finish().1?;
        Ok(())
    };
    RecordBatchEncoder::encode_with_custom_compression(&mut buf, &d.kp_records, &options, Some(fast))
        .unwrap();
    buf
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

fn kp_decode(data: &Bytes) -> usize {
    let mut buf = data.clone();
    let mut n = 0;
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for record in set.records {
            n += record.value.map_or(0, |v| v.len());
        }
    }
    n
}

fn check_same_records(d: &DataSet, data: &Bytes) {
    let expected: usize = d.values.iter().map(Bytes::len).sum();
    assert_eq!(klamm_decode(data), expected, "{}: klamm", d.name);
    assert_eq!(kp_decode(data), expected, "{}: kafka-protocol", d.name);
}

fn bench_uncompressed(c: &mut Criterion, d: &DataSet, per_record: bool) {
    let data = klamm_encode(d, Compression::None).freeze();
    check_same_records(d, &data);
    let throughput = if per_record {
        Throughput::Elements(d.values.len() as u64)
    } else {
        Throughput::Bytes(data.len() as u64)
    };

    let mut g = c.benchmark_group(format!("decode/{}/none", d.name));
    g.throughput(throughput.clone());
    g.bench_function("crc32c-pass", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    g.bench_function("klamm", |b| b.iter(|| klamm_decode(black_box(&data))));
    g.bench_function("kafka-protocol", |b| b.iter(|| kp_decode(black_box(&data))));
    g.finish();

    let mut g = c.benchmark_group(format!("encode/{}/none", d.name));
    g.throughput(throughput);
    g.bench_function("crc32c-pass", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    g.bench_function("klamm", |b| b.iter(|| klamm_encode(black_box(d), Compression::None)));
    g.bench_function("kafka-protocol", |b| b.iter(|| kp_encode(black_box(d), KpCompression::None)));
    g.finish();
}

fn bench_lz4(c: &mut Criterion, d: &DataSet, per_record: bool) {
    let plain = klamm_encode(d, Compression::None).freeze();
    let data = klamm_encode(d, Compression::Lz4).freeze();
    check_same_records(d, &data);
    check_same_records(d, &kp_encode(d, KpCompression::Lz4).freeze());
    let throughput = if per_record {
        Throughput::Elements(d.values.len() as u64)
    } else {
        Throughput::Bytes(plain.len() as u64)
    };
    // The records sections: the floor of each direction is the codec alone.
    let records_plain = plain.slice(61..);
    let records_lz4 = data.slice(61..);
    let limits = DecompressionLimits::default();

    let mut g = c.benchmark_group(format!("decode/{}/lz4", d.name));
    g.throughput(throughput.clone());
    g.bench_function("lz4-decompress-only", |b| {
        b.iter(|| Compression::Lz4.decompress(black_box(&records_lz4), &limits).unwrap())
    });
    g.bench_function("klamm", |b| b.iter(|| klamm_decode(black_box(&data))));
    g.bench_function("kafka-protocol", |b| b.iter(|| kp_decode(black_box(&data))));
    g.finish();

    let mut g = c.benchmark_group(format!("encode/{}/lz4", d.name));
    g.throughput(throughput);
    g.bench_function("lz4-compress-only", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(records_plain.len());
            Compression::Lz4.compress(black_box(&records_plain), &mut out).unwrap();
            out
        })
    });
    g.bench_function("klamm", |b| b.iter(|| klamm_encode(black_box(d), Compression::Lz4)));
    g.bench_function(BenchmarkId::new("kafka-protocol", "level-4-default"), |b| {
        b.iter(|| kp_encode(black_box(d), KpCompression::Lz4))
    });
    g.bench_function(BenchmarkId::new("kafka-protocol", "level-0-fast"), |b| {
        b.iter(|| kp_encode_lz4_fast(black_box(d)))
    });
    g.finish();

    println!(
        "{}: batch {} bytes uncompressed, lz4 klamm {} bytes, kafka-protocol default {} / fast {} bytes",
        d.name,
        plain.len(),
        data.len(),
        kp_encode(d, KpCompression::Lz4).len(),
        kp_encode_lz4_fast(d).len()
    );
}

fn codec(c: &mut Criterion) {
    let large = data_set("1KiB", 1024, 1024);
    let small = data_set("100B", 8192, 100);
    bench_uncompressed(c, &large, false);
    bench_lz4(c, &large, false);
    bench_uncompressed(c, &small, true);
    bench_lz4(c, &small, true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
