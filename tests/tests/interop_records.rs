//! Record batches travel between klamm-protocol and the two reference clients through real
//! brokers (Apache Kafka and tansu), for every compression codec, with keys, values and headers
//! that may be null, explicit timestamps, and values of several KiB:
//!
//! - klamm -> peers: one [`RecordBatchBuilder`] batch per codec, sent with a raw Produce
//!   (acks=-1) to the partition leader, lands at the expected base offset; librdkafka and the
//!   Java client then consume the partition and see exactly those records, in order, with
//!   their offsets and create timestamps. ListOffsets then finds the partition's earliest
//!   offset, and on Kafka its latest offset, the offsets of given timestamps and of the largest
//!   timestamp (tansu's high watermark and lookups by time are known to be wrong).
//! - peers -> klamm: librdkafka and the Java client produce idempotently with each codec (one
//!   partition per codec); a raw Fetch at the highest common version (by topic id from v13)
//!   returns batches that klamm's `RecordBatches` decodes, checksums verified, into exactly the
//!   records sent, at the offsets the peer reported, in batches compressed with the asked
//!   codec and stamped with the idempotent producer's id, epoch and gapless sequence numbers.

use std::collections::BTreeMap;
use std::time::Instant;

use klamm_protocol::api::fetch::{FetchPartition, FetchRequest, FetchTopic};
use klamm_protocol::api::list_offsets::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use klamm_protocol::api::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use klamm_protocol::records::{RecordBatch, TimestampType};
use klamm_protocol::ErrorCode;
use klamm_tests::{
    build_batch, fetch_all, leader_address, records_of, unique_topic, Broker, BrokerKind, Compression,
    ConsumeOptions, Delivery, Fetched, NegotiatedConnection, Peer, PeerKind, PeerRecord, ProduceOptions,
};

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 12] = [
    "kafka",
    "klamm",
    "batch",
    "record",
    "offset",
    "partition",
    "leader",
    "replica",
    "fetch",
    "produce",
    "zstd",
    "lz4",
];

/// `count` records for the test named by `seed`, with timestamps from `base_ts` on: mostly
/// short, some of 2-9 KiB of compressible text; some null keys, null values and null header
/// values; some without headers. Timestamps rise by 3 ms per record, except that every 13th
/// record steps back (negative deltas in the batch) when `monotonic` is false.
fn sample_records(seed: u64, count: usize, base_ts: i64, monotonic: bool) -> Vec<PeerRecord> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..count)
        .map(|i| {
            let key = (i % 17 != 3).then(|| format!("key-{seed}-{i}").into_bytes());
            let value = if i % 23 == 5 {
                None
            } else if i % 40 == 7 {
                let target = 2048 + rng.below(7 * 1024) as usize;
                let mut text = String::with_capacity(target + 16);
                while text.len() < target {
                    text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                    text.push(' ');
                }
                Some(text.into_bytes())
            } else {
                let mut v = format!("value-{i}-").into_bytes();
                v.extend((0..rng.below(24)).map(|_| rng.next() as u8));
                Some(v)
            };
            let mut headers = Vec::new();
            if i % 5 != 0 {
                headers.push(("index".to_owned(), Some(i.to_string().into_bytes())));
                if i % 3 == 0 {
                    headers.push(("null-value".to_owned(), None));
                }
                if i % 7 == 1 {
                    headers.push(("binary".to_owned(), Some(vec![0, 255, 1, 254])));
                    headers.push(("index".to_owned(), Some(Vec::new())));
                }
            }
            let step_back = !monotonic && i % 13 == 12;
            let timestamp = base_ts + 3 * i as i64 - if step_back { 1000 } else { 0 };
            PeerRecord { key, value, headers, timestamp: Some(timestamp), ..PeerRecord::default() }
        })
        .collect()
}

/// Asserts that `got` holds `sent`, in order, at offsets from 0 on, with their create
/// timestamps. Values are summarised in messages: some are KiB long.
fn assert_same_records(ctx: &str, sent: &[PeerRecord], got: &[PeerRecord]) {
    assert_eq!(got.len(), sent.len(), "{ctx}: record count");
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        let at = format!("{ctx}: record {i}");
        assert_eq!(g.offset, Some(i as i64), "{at}: offset");
        assert_eq!(g.key, s.key, "{at}: key");
        assert!(
            g.value == s.value,
            "{at}: value differs ({:?} vs {:?} bytes)",
            g.value.as_ref().map(Vec::len),
            s.value.as_ref().map(Vec::len)
        );
        assert_eq!(g.headers, s.headers, "{at}: headers");
        assert_eq!(g.timestamp, s.timestamp, "{at}: timestamp");
        assert_eq!(g.timestamp_type.as_deref(), Some("CreateTime"), "{at}: timestamp type");
    }
}

/// Old, fixed timestamps: the test brokers keep records forever, and a fixed time keeps the
/// batches reproducible.
const BASE_TS: i64 = 1_650_000_000_000;
const RECORDS_PER_BATCH: usize = 250;

fn klamm_batches_read_by_peers(kind: BrokerKind) {
    let started = Instant::now();
    let broker = Broker::shared(kind);
    let mut admin = NegotiatedConnection::connect(broker.addr());
    let topic = unique_topic("klamm-to-peers");
    let metadata = admin.create_topic(&topic, 1);
    let mut leader = NegotiatedConnection::connect(leader_address(&metadata, &topic, 0));
    let produce_version = leader.version::<ProduceRequest>();

    let mut sent = Vec::new();
    for (n, compression) in Compression::ALL.into_iter().enumerate() {
        let records =
            sample_records(n as u64, RECORDS_PER_BATCH, BASE_TS + (n * 10 * RECORDS_PER_BATCH) as i64, false);
        let batch = build_batch(&records, compression);
        let uncompressed: usize = build_batch(&records, Compression::None).len();
        if compression != Compression::None {
            assert!(batch.len() * 2 < uncompressed, "{compression}: {} of {uncompressed} bytes", batch.len());
        }
        let request = ProduceRequest {
            acks: -1,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: topic.clone(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = leader.send(&request);
        let ctx = format!("{} Produce v{produce_version} {compression}", kind.name());
        assert_eq!(response.responses.len(), 1, "{ctx}: {response:?}");
        assert_eq!(response.responses[0].name, topic, "{ctx}");
        let p = &response.responses[0].partition_responses;
        assert_eq!(p.len(), 1, "{ctx}: {p:?}");
        assert_eq!((p[0].index, p[0].error_code), (0, 0), "{ctx}: {p:?}");
        assert_eq!(p[0].base_offset, (n * RECORDS_PER_BATCH) as i64, "{ctx}: base offset");
        assert_eq!(p[0].log_append_time_ms, -1, "{ctx}: the topic uses create time");
        sent.extend(records);
    }

    // Both peers read the partition at the same time.
    std::thread::scope(|s| {
        for peer in [Peer::rdkafka(), Peer::java()] {
            let (topic, sent) = (&topic, &sent);
            s.spawn(move || {
                let got = peer.consume(&broker.bootstrap(), topic, sent.len(), &ConsumeOptions::default());
                assert_same_records(&format!("klamm -> {} on {}", peer.name(), kind.name()), sent, &got);
                assert!(got.iter().all(|r| r.partition == Some(0)));
            });
        }
    });

    // klamm reads its own batches back as the broker stored them, by topic name (v12, the last
    // version with names) and at the highest common version (by id from v13).
    let topic_id = metadata.topics[0].topic_id;
    let expected = BTreeMap::from([(0, sent.len())]);
    let mut versions = vec![12, leader.version::<FetchRequest>()];
    versions.dedup();
    for version in versions {
        let ctx = format!("klamm -> klamm on {}, Fetch v{version}", kind.name());
        let fetched = fetch_all(&mut leader, version, &topic, topic_id, &expected);
        let codecs: Vec<Compression> = fetched[&0].batches.iter().map(RecordBatch::compression).collect();
        assert_eq!(codecs, Compression::ALL, "{ctx}: one batch per codec, as sent");
        assert_same_records(&ctx, &sent, &records_of(&fetched[&0].batches, 0));
    }

    // tansu answers a fetch past the end without OFFSET_OUT_OF_RANGE (known tansu bug).
    if kind == BrokerKind::Kafka {
        let request = FetchRequest {
            topics: vec![FetchTopic {
                topic: topic.clone(),
                topic_id,
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: sent.len() as i64 + 10,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = leader.send(&request);
        let p = &response.responses[0].partitions[0];
        assert_eq!(
            ErrorCode::from(p.error_code),
            ErrorCode::OFFSET_OUT_OF_RANGE,
            "Kafka fetch past the end: {p:?}"
        );
    }

    list_offsets(kind, &mut leader, &topic, &sent);
    eprintln!("klamm -> peers on {}: {:?}", kind.name(), started.elapsed());
}

/// Earliest and latest offsets of the partition holding `sent`, and on Kafka the offsets of
/// some timestamps.
fn list_offsets(kind: BrokerKind, conn: &mut NegotiatedConnection, topic: &str, sent: &[PeerRecord]) {
    let version = conn.version::<ListOffsetsRequest>();
    let mut lookup = |timestamp: i64| {
        let request = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.to_owned(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 0,
                    timestamp,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = conn.send(&request);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "{} ListOffsets v{version} at {timestamp}: {p:?}", kind.name());
        (p.offset, p.timestamp)
    };
    let end = sent.len() as i64;
    assert_eq!(lookup(-2).0, 0, "{}: earliest offset", kind.name());

    // tansu's latest offset is its high watermark, which is wrong after a multi-record batch,
    // and it answers a lookup by time with the first offset of the batch that holds the time
    // (known tansu bugs): the rest runs on Kafka only.
    if kind == BrokerKind::Kafka {
        assert_eq!(lookup(-1).0, end, "Kafka ListOffsets v{version}: latest offset");
        let ts = |i: usize| sent[i].timestamp.unwrap();
        // The first record whose timestamp is at least the target, in offset order.
        let expected =
            |target: i64| sent.iter().position(|r| r.timestamp.unwrap() >= target).map_or(-1, |i| i as i64);
        for i in [0, 1, 100, RECORDS_PER_BATCH + 7, 3 * RECORDS_PER_BATCH + 40, sent.len() - 1] {
            for target in [ts(i), ts(i) + 1] {
                let (offset, found_ts) = lookup(target);
                assert_eq!(offset, expected(target), "Kafka ListOffsets v{version} at {target}");
                if offset >= 0 {
                    assert_eq!(found_ts, ts(offset as usize), "Kafka ListOffsets v{version} at {target}");
                }
            }
        }
        // Past the last timestamp there is no such offset.
        let last = sent.iter().map(|r| r.timestamp.unwrap()).max().unwrap();
        assert_eq!(lookup(last + 1).0, -1, "Kafka ListOffsets v{version} past the end");
        if version >= 7 {
            // -3: the record with the largest timestamp (KIP-734).
            let (offset, found_ts) = lookup(-3);
            let at = sent.iter().rposition(|r| r.timestamp == Some(last)).unwrap();
            assert_eq!((offset, found_ts), (at as i64, last), "Kafka ListOffsets v{version} max timestamp");
        }
    }
}

#[test]
fn kafka_klamm_batches_read_by_peers() {
    klamm_batches_read_by_peers(BrokerKind::Kafka);
}

#[test]
fn tansu_klamm_batches_read_by_peers() {
    klamm_batches_read_by_peers(BrokerKind::Tansu);
}

const RECORDS_PER_PEER_RUN: usize = 60;

fn peer_batches_fetched_raw(kind: BrokerKind, producer: PeerKind) {
    let started = Instant::now();
    let broker = Broker::shared(kind);
    let peer = Peer::new(producer);
    let mut admin = NegotiatedConnection::connect(broker.addr());
    let topic = unique_topic(&format!("{}-to-klamm", peer.name()));
    let partitions = Compression::ALL.len() as i32;
    let metadata = admin.create_topic(&topic, partitions);
    let topic_id = metadata.topics[0].topic_id;

    // One peer run per codec, each to its own partition, all at once.
    let runs: Vec<(i32, Vec<PeerRecord>, Vec<Delivery>)> = std::thread::scope(|s| {
        let handles: Vec<_> = Compression::ALL
            .into_iter()
            .enumerate()
            .map(|(n, compression)| {
                let (peer, topic) = (&peer, &topic);
                s.spawn(move || {
                    let partition = n as i32;
                    let base_ts = BASE_TS + (n * 10 * RECORDS_PER_PEER_RUN) as i64;
                    let records: Vec<PeerRecord> =
                        sample_records(100 + n as u64, RECORDS_PER_PEER_RUN, base_ts, true)
                            .into_iter()
                            .map(|r| r.partition(partition))
                            .collect();
                    let options = ProduceOptions { compression, idempotent: true, ..Default::default() };
                    let deliveries = peer.produce(&broker.bootstrap(), topic, &options, &records);
                    (partition, records, deliveries)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Leaders: one broker, but ask as a client would.
    let mut conn = NegotiatedConnection::connect(leader_address(&metadata, &topic, 0));
    let version = conn.version::<FetchRequest>();
    if version >= 13 {
        assert!(!topic_id.is_zero(), "{}: Metadata gave no topic id for Fetch v{version}", kind.name());
    }
    let expected: BTreeMap<i32, usize> = runs.iter().map(|(p, r, _)| (*p, r.len())).collect();
    let fetched = fetch_all(&mut conn, version, &topic, topic_id, &expected);

    for (partition, sent, deliveries) in &runs {
        let compression = Compression::ALL[*partition as usize];
        let ctx =
            format!("{} -> klamm ({}) on {}, Fetch v{version}", peer.name(), compression.name(), kind.name());
        let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, (0..sent.len() as i64).collect::<Vec<_>>(), "{ctx}: delivered offsets");
        assert!(deliveries.iter().all(|d| d.partition == *partition), "{ctx}: {deliveries:?}");

        let Fetched { batches, high_watermark, log_start_offset } = &fetched[partition];
        let mut got = Vec::new();
        let mut next_sequence = 0;
        let producer_id = batches[0].producer_id();
        assert!(producer_id >= 0, "{ctx}: an idempotent batch without producer id");
        for batch in batches {
            assert_eq!(batch.magic(), 2, "{ctx}");
            assert_eq!(batch.compression(), compression, "{ctx}: batch at {}", batch.base_offset());
            assert_eq!(batch.timestamp_type(), TimestampType::CreateTime, "{ctx}");
            assert!(!batch.is_transactional() && !batch.is_control(), "{ctx}");
            assert_eq!(batch.producer_id(), producer_id, "{ctx}: one producer wrote the partition");
            assert!(batch.producer_epoch() >= 0, "{ctx}: producer epoch {}", batch.producer_epoch());
            // Sequences start at 0 for a new producer id and have no gaps.
            assert_eq!(batch.base_sequence(), next_sequence, "{ctx}: batch at {}", batch.base_offset());
            next_sequence = batch.last_sequence() + 1;
            assert_eq!(
                batch.last_offset() - batch.base_offset(),
                i64::from(batch.last_offset_delta()),
                "{ctx}"
            );
            let records = records_of(std::slice::from_ref(batch), *partition);
            assert_eq!(records.len(), batch.record_count() as usize, "{ctx}");
            let max_ts = records.iter().filter_map(|r| r.timestamp).max().unwrap();
            assert_eq!(batch.max_timestamp(), max_ts, "{ctx}: batch max timestamp");
            got.extend(records);
        }
        assert_same_records(&ctx, sent, &got);

        // tansu reports a wrong high watermark after a multi-record batch (known tansu bug).
        if kind == BrokerKind::Kafka {
            assert_eq!(*high_watermark, sent.len() as i64, "{ctx}: high watermark");
        }
        if version >= 5 {
            assert_eq!(*log_start_offset, 0, "{ctx}: log start offset");
        }
    }
    eprintln!("{} -> klamm on {}: {:?}", peer.name(), kind.name(), started.elapsed());
}

#[test]
fn kafka_rdkafka_batches_fetched_raw() {
    peer_batches_fetched_raw(BrokerKind::Kafka, PeerKind::Rdkafka);
}

#[test]
fn kafka_java_batches_fetched_raw() {
    peer_batches_fetched_raw(BrokerKind::Kafka, PeerKind::Java);
}

#[test]
fn tansu_rdkafka_batches_fetched_raw() {
    peer_batches_fetched_raw(BrokerKind::Tansu, PeerKind::Rdkafka);
}

#[test]
fn tansu_java_batches_fetched_raw() {
    peer_batches_fetched_raw(BrokerKind::Tansu, PeerKind::Java);
}
