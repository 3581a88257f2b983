//! Round trips of 100k records per compression codec on Apache Kafka, in every direction that
//! involves klamm: klamm's idempotent producer read back by klamm's consumer, librdkafka and the
//! Java client, and the idempotent librdkafka and Java producers read by klamm's consumer.
//!
//! Every reader must see every record exactly once, with the key, value, headers and timestamp
//! that were sent, at the partition and offset the producer reported, and each partition in the
//! order its records were sent. The records cover null and empty keys, null and empty values,
//! values from a few bytes to several KiB (noise and runs, so every codec has work to do),
//! headers with empty and null values, repeated and non-ASCII header names, and explicit
//! timestamps that go back and forth within a batch.
//!
//! One test per codec and producer (`gzip::librdkafka_to_klamm`, ...), all on the binary's
//! shared broker, one 4-partition topic each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::compression::Compression;
use klamm::protocol::records::TimestampType;
use klamm::{Acks, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer, ProducerConfig};
use klamm::{Header, ProducerRecord, TopicPartition};
use klamm_tests::{unique_topic, Broker, ConsumeOptions, NegotiatedConnection, Peer, PeerRecord};
use klamm_tests::{Acks as PeerAcks, ProduceOptions};

/// Records per round trip.
const COUNT: usize = 100_000;
/// Partitions of each topic.
const PARTITIONS: i32 = 4;
/// The earliest timestamp the records carry (November 2023).
const T0: i64 = 1_700_000_000_000;
/// A reader gives up when nothing arrived for this long.
const IDLE: Duration = Duration::from_secs(20);

/// Runs blocking harness code (peers, raw connections) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

/// A cheap deterministic byte source (xorshift64), seeded per record.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Record `i` of a round trip. The partition is left to the producer's partitioner.
fn record(i: usize) -> PeerRecord {
    let mut noise = Noise((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let key = match i % 11 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("key-{}", i % 1009).into_bytes()),
    };
    let value = match i % 29 {
        0 => None,
        1 => Some(Vec::new()),
        _ => {
            // Mostly up to 200 bytes, one record in 500 a few KiB.
            let len = if i % 500 == 7 { 2_000 + (noise.next() % 6_000) } else { noise.next() % 200 } as usize;
            let mut v = format!("{i}:").into_bytes();
            while v.len() < len {
                let x = noise.next();
                if x.is_multiple_of(3) {
                    // A run: what compresses.
                    v.extend(std::iter::repeat_n(b'a' + (x >> 8) as u8 % 26, 1 + (x >> 16) as usize % 24));
                } else {
                    v.extend_from_slice(&x.to_le_bytes());
                }
            }
            v.truncate(len.max(format!("{i}:").len()));
            Some(v)
        }
    };
    let mut r = PeerRecord { key, value, ..PeerRecord::default() };
    if i.is_multiple_of(3) {
        r = r.header("n", i.to_string()).header("empty", "");
    }
    if i.is_multiple_of(5) {
        r.headers.push(("null".to_owned(), None));
    }
    if i.is_multiple_of(17) {
        r = r.header("dup", "1").header("dup", [0u8, 0xff]).header("schlüssel-κλειδί", "v");
    }
    // Out of order within a batch: the batch's timestamp deltas go negative.
    r.timestamp(T0 + (i as i64 * 7_919) % 900_000)
}

fn producer_record(topic: &str, r: &PeerRecord) -> ProducerRecord {
    let mut p = ProducerRecord::tombstone(topic);
    p.key = r.key.clone().map(Bytes::from);
    p.value = r.value.clone().map(Bytes::from);
    p.headers =
        r.headers.iter().map(|(k, v)| Header::with_value(k.clone(), v.clone().map(Bytes::from))).collect();
    p.timestamp = r.timestamp;
    p
}

/// A record klamm's consumer read, as the peers print theirs.
fn as_peer(r: &ConsumerRecord) -> PeerRecord {
    PeerRecord {
        partition: Some(r.partition),
        offset: Some(r.offset),
        key: r.key.as_ref().map(|b| b.to_vec()),
        value: r.value.as_ref().map(|b| b.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|h| {
                let name = String::from_utf8(h.key.to_vec()).expect("header names are UTF-8");
                (name, h.value.as_ref().map(|v| v.to_vec()))
            })
            .collect(),
        timestamp: Some(r.timestamp),
        timestamp_type: Some(
            match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
                TimestampType::NotAvailable => "NoTimestampType",
            }
            .to_owned(),
        ),
    }
}

/// What a producer wrote: the records in send order, and the send index at each (partition,
/// offset) it reported.
struct Written {
    sent: Vec<PeerRecord>,
    at: HashMap<(i32, i64), usize>,
}

/// Checks the producer's reports: one partition and offset per record, none twice, and offsets
/// growing in send order within each partition (the producer kept the order).
fn written(ctx: &str, sent: Vec<PeerRecord>, deliveries: &[(i32, i64)]) -> Written {
    assert_eq!(deliveries.len(), sent.len(), "{ctx}: deliveries");
    let mut at = HashMap::with_capacity(sent.len());
    let mut last: HashMap<i32, (usize, i64)> = HashMap::new();
    for (i, &(p, offset)) in deliveries.iter().enumerate() {
        assert!((0..PARTITIONS).contains(&p) && offset >= 0, "{ctx}: record {i} delivered to {p}/{offset}");
        if let Some((j, before)) = last.insert(p, (i, offset)) {
            assert!(
                before < offset,
                "{ctx}: record {i} written at {p}/{offset}, after record {j} at {before}"
            );
        }
        if let Some(j) = at.insert((p, offset), i) {
            panic!("{ctx}: records {j} and {i} both reported at {p}/{offset}");
        }
    }
    Written { sent, at }
}

/// Checks what a reader got against what was written: each record once, identical, at the
/// partition and offset the producer reported, each partition in send order.
fn check_read(ctx: &str, written: &Written, got: &[PeerRecord]) {
    let mut seen = vec![false; written.sent.len()];
    let mut last: HashMap<i32, (i64, usize)> = HashMap::new();
    for r in got {
        let (p, offset) = (r.partition.expect("a partition"), r.offset.expect("an offset"));
        let Some(&i) = written.at.get(&(p, offset)) else {
            panic!("{ctx}: read a record at {p}/{offset}, where none was written: {r:?}");
        };
        assert!(!seen[i], "{ctx}: record {i} read twice");
        seen[i] = true;
        let want = &written.sent[i];
        assert_eq!(r.content(), want.content(), "{ctx}: record {i} at {p}/{offset}");
        assert_eq!(r.timestamp, want.timestamp, "{ctx}: timestamp of record {i} at {p}/{offset}");
        assert_eq!(r.timestamp_type.as_deref(), Some("CreateTime"), "{ctx}: record {i}");
        if let Some((o, j)) = last.insert(p, (offset, i)) {
            assert!(
                o < offset && j < i,
                "{ctx}: partition {p}: record {i} at {offset} read after record {j} at {o}"
            );
        }
    }
    let read = seen.iter().filter(|s| **s).count();
    if read != written.sent.len() {
        let missing = seen.iter().position(|s| !s);
        panic!("{ctx}: read {read} of {} records; the first one missing is {missing:?}", written.sent.len());
    }
}

/// A new topic with [`PARTITIONS`] partitions on `broker`.
async fn new_topic(broker: &'static Broker, prefix: &str) -> String {
    let topic = unique_topic(prefix);
    let (addr, t) = (broker.addr(), topic.clone());
    blocking(move || NegotiatedConnection::connect(addr).create_topic(&t, PARTITIONS)).await;
    topic
}

/// Reads `count` records from every partition of `topic` with klamm's consumer, then checks
/// that nothing more follows.
async fn klamm_read(ctx: &str, bootstrap: &str, topic: &str, count: usize) -> Vec<PeerRecord> {
    let config = ConsumerConfig::new(bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign((0..PARTITIONS).map(|p| TopicPartition::new(topic, p)));
    let mut out = Vec::with_capacity(count);
    let mut progress = Instant::now();
    while out.len() < count && progress.elapsed() < IDLE {
        let batch =
            consumer.poll(Duration::from_millis(200)).await.unwrap_or_else(|e| panic!("{ctx}: poll: {e}"));
        if !batch.is_empty() {
            progress = Instant::now();
        }
        out.extend(batch.iter().map(as_peer));
    }
    let extra =
        consumer.poll(Duration::from_millis(300)).await.unwrap_or_else(|e| panic!("{ctx}: poll: {e}"));
    assert!(extra.is_empty(), "{ctx}: {} records beyond the {count} written", extra.len());
    consumer.close(Duration::from_secs(5)).await.expect("close");
    out
}

/// Reads `count` records of `topic` with a peer, from the beginning.
fn peer_read(peer: &Peer, bootstrap: &str, topic: &str, count: usize) -> Vec<PeerRecord> {
    let options = ConsumeOptions { idle_timeout: IDLE, ..Default::default() };
    peer.consume(bootstrap, topic, count, &options)
}

/// klamm produces [`COUNT`] records with `codec`; klamm, librdkafka and the Java client read
/// them back, all at once.
async fn from_klamm(codec: Compression) {
    let started = Instant::now();
    let broker = Broker::shared_kafka();
    let topic = new_topic(broker, &format!("roundtrip-klamm-{}", codec.name())).await;
    let config =
        ProducerConfig::new(&broker.bootstrap()).compression(codec).acks(Acks::All).enable_idempotence(true);
    let producer = Producer::new(config).expect("producer");
    let sent: Vec<PeerRecord> = (0..COUNT).map(record).collect();
    let mut futures = Vec::with_capacity(COUNT);
    for (i, r) in sent.iter().enumerate() {
        let send = producer.send(producer_record(&topic, r)).await;
        futures.push(send.unwrap_or_else(|e| panic!("{}: send {i}: {e}", codec.name())));
    }
    let mut deliveries = Vec::with_capacity(COUNT);
    for (i, f) in futures.into_iter().enumerate() {
        let meta = f.await.unwrap_or_else(|e| panic!("{}: delivery of record {i}: {e}", codec.name()));
        deliveries.push((meta.partition, meta.offset));
    }
    assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
    let produced = started.elapsed();
    let written = written(&format!("klamm producing {}", codec.name()), sent, &deliveries);

    let readers: Vec<_> = [Peer::rdkafka(), Peer::java()]
        .into_iter()
        .map(|peer| {
            let (bootstrap, t) = (broker.bootstrap(), topic.clone());
            tokio::task::spawn_blocking(move || {
                let got = peer_read(&peer, &bootstrap, &t, COUNT);
                (peer.name(), got)
            })
        })
        .collect();
    let ctx = format!("klamm -> klamm, {}", codec.name());
    let got = klamm_read(&ctx, &broker.bootstrap(), &topic, COUNT).await;
    check_read(&ctx, &written, &got);
    drop(got);
    for reader in readers {
        let (name, got) = reader.await.expect("peer reader panicked");
        check_read(&format!("klamm -> {name}, {}", codec.name()), &written, &got);
    }
    eprintln!(
        "{}: klamm produced {COUNT} in {produced:?}; all read back at {:?}",
        codec.name(),
        started.elapsed()
    );
}

/// `peer` produces [`COUNT`] records with `codec`, idempotently; klamm reads them.
async fn from_peer(peer: Peer, codec: Compression) {
    let started = Instant::now();
    let broker = Broker::shared_kafka();
    let ctx = format!("{} -> klamm, {}", peer.name(), codec.name());
    let topic = new_topic(broker, &format!("roundtrip-{}-{}", peer.name(), codec.name())).await;
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    let (sent, deliveries) = blocking(move || {
        let sent: Vec<PeerRecord> = (0..COUNT).map(record).collect();
        let options = ProduceOptions {
            compression: codec,
            idempotent: true,
            acks: PeerAcks::All,
            ..Default::default()
        };
        let deliveries: Vec<(i32, i64)> =
            peer.produce(&bootstrap, &t, &options, &sent).iter().map(|d| (d.partition, d.offset)).collect();
        (sent, deliveries)
    })
    .await;
    let produced = started.elapsed();
    let written = written(&ctx, sent, &deliveries);
    let got = klamm_read(&ctx, &broker.bootstrap(), &topic, COUNT).await;
    check_read(&ctx, &written, &got);
    eprintln!("{ctx}: produced in {produced:?}, read back at {:?}", started.elapsed());
}

/// One module per codec, one test per producer in each: a failure names both.
macro_rules! round_trips {
    ($($module:ident => $codec:expr,)*) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn klamm_to_klamm_librdkafka_and_java() {
                from_klamm($codec).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn librdkafka_to_klamm() {
                from_peer(Peer::rdkafka(), $codec).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn java_to_klamm() {
                from_peer(Peer::java(), $codec).await;
            }
        }
    )*};
}

round_trips! {
    none => Compression::None,
    gzip => Compression::Gzip,
    snappy => Compression::Snappy,
    lz4 => Compression::Lz4,
    zstd => Compression::Zstd,
}

#[test]
fn records_cover_every_shape() {
    let records: Vec<PeerRecord> = (0..COUNT).map(record).collect();
    let has = |f: &dyn Fn(&PeerRecord) -> bool| records.iter().any(f);
    assert!(has(&|r| r.key.is_none()));
    assert!(has(&|r| r.key.as_deref() == Some(&[][..])));
    assert!(has(&|r| r.value.is_none()));
    assert!(has(&|r| r.value.as_deref() == Some(&[][..])));
    assert!(has(&|r| r.value.as_ref().is_some_and(|v| v.len() > 4_000)));
    assert!(has(&|r| r.headers.iter().any(|(_, v)| v.is_none())));
    assert!(has(&|r| r.headers.iter().any(|(_, v)| v.as_deref() == Some(&[][..]))));
    assert!(has(&|r| r.headers.iter().any(|(k, _)| !k.is_ascii())));
    // Timestamps go back within a run of records, and values are not all alike.
    assert!(records.windows(2).any(|w| w[1].timestamp < w[0].timestamp));
    let distinct: std::collections::HashSet<_> = records.iter().filter_map(|r| r.value.as_ref()).collect();
    assert!(distinct.len() > COUNT * 9 / 10, "{} distinct values", distinct.len());
}
