//! `klamm::Producer` against Apache Kafka (and tansu where it can): every codec and acks level
//! read back by librdkafka, ordering and content checks, unknown topics, oversized records,
//! and an idempotent produce through a proxy that keeps cutting connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm::protocol::compression::Compression;
use klamm::protocol::ErrorCode;
use klamm::{Acks, ErrorKind, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{
    unique_topic, Broker, BrokerKind, ConsumeOptions, FaultProxy, NegotiatedConnection, Peer, PeerRecord,
};

const BASE_TS: i64 = 1_700_000_000_000;

fn record(topic: &str, i: usize) -> ProducerRecord {
    let mut r = ProducerRecord::new(topic, format!("value-{i}-{}", "x".repeat(i % 50)))
        .key(format!("key-{}", i % 997))
        .timestamp(BASE_TS + i as i64);
    if i.is_multiple_of(3) {
        r = r.header("n", i.to_string()).header("empty", "");
    }
    r
}

fn expected(i: usize) -> PeerRecord {
    let mut p = PeerRecord::new(format!("key-{}", i % 997), format!("value-{i}-{}", "x".repeat(i % 50)))
        .timestamp(BASE_TS + i as i64);
    if i.is_multiple_of(3) {
        p = p.header("n", i.to_string()).header("empty", "");
    }
    p
}

/// Sends `count` records, then awaits their deliveries; returns partition and offset per record.
async fn produce_all(producer: &Producer, topic: &str, count: usize) -> Vec<(i32, i64)> {
    produce_all_from(producer, topic, 0..count).await
}

/// Sends records `range`, then awaits their deliveries.
async fn produce_all_from(
    producer: &Producer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Vec<(i32, i64)> {
    let count = range.len();
    let mut futures = Vec::with_capacity(count);
    for i in range {
        futures.push(producer.send(record(topic, i)).await.unwrap_or_else(|e| panic!("send {i}: {e}")));
    }
    let mut out = Vec::with_capacity(count);
    for (i, f) in futures.into_iter().enumerate() {
        let meta = f.await.unwrap_or_else(|e| panic!("delivery {i}: {e}"));
        out.push((meta.partition, meta.offset));
    }
    out
}

/// Reads the topic back with librdkafka and checks every record's content, and that each
/// partition holds records in the order they were sent, once each.
fn check_read_back(brokers: &str, topic: &str, count: usize) {
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(8), ..Default::default() };
    let got = Peer::rdkafka().consume(brokers, topic, count, &options);
    assert_eq!(got.len(), count, "librdkafka read {} of {count} records", got.len());
    let mut last_index: HashMap<i32, i64> = HashMap::new();
    let mut seen = vec![false; count];
    for r in &got {
        let value = String::from_utf8(r.value.clone().unwrap()).unwrap();
        let i: usize = value.split('-').nth(1).unwrap().parse().unwrap();
        assert!(!seen[i], "record {i} read twice");
        seen[i] = true;
        let want = expected(i);
        assert_eq!(r.content(), want.content(), "record {i}");
        assert_eq!(r.timestamp, want.timestamp, "record {i}");
        let p = r.partition.unwrap();
        let prev = last_index.insert(p, i as i64).unwrap_or(-1);
        assert!(prev < i as i64, "partition {p}: record {i} after {prev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_and_acks_level_reads_back_in_librdkafka() {
    let broker = Broker::shared_kafka();
    for (codec, acks) in [
        (Compression::None, Acks::All),
        (Compression::Gzip, Acks::All),
        (Compression::Snappy, Acks::Leader),
        (Compression::Lz4, Acks::All),
        (Compression::Zstd, Acks::None),
    ] {
        let topic = unique_topic(&format!("produce-{}", codec.name()));
        NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 3);
        let config =
            ProducerConfig::new(&broker.bootstrap()).compression(codec).acks(acks).batch_size(16 * 1024);
        let producer = Producer::new(config).unwrap();
        let count = 5_000;
        let delivered = produce_all(&producer, &topic, count).await;
        // Keyed records go where murmur2 says; offsets grow per partition (unless acks=0).
        let partitions = std::num::NonZeroU32::new(3).unwrap();
        for (i, (p, offset)) in delivered.iter().enumerate() {
            let key = format!("key-{}", i % 997);
            assert_eq!(*p, klamm::partitioner::partition_for_key(key.as_bytes(), partitions));
            assert_eq!(*offset >= 0, acks != Acks::None, "{codec:?} {acks:?}: offset {offset}");
        }
        assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
        eprintln!("checking {codec:?} {acks:?}");
        check_read_back(&broker.bootstrap(), &topic, count);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_accepts_idempotent_lz4_batches() {
    let broker = Broker::shared(BrokerKind::Tansu);
    let topic = unique_topic("produce-tansu");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 2);
    let producer =
        Producer::new(ProducerConfig::new(&broker.bootstrap()).compression(Compression::Lz4)).unwrap();
    let delivered = produce_all(&producer, &topic, 2_000).await;
    assert!(delivered.iter().all(|(_, o)| *o >= 0));
    producer.close(Duration::from_secs(10)).await;
    check_read_back(&broker.bootstrap(), &topic, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_and_oversized_records_are_typed_errors() {
    let broker = Broker::shared_kafka();
    let config = ProducerConfig::new(&broker.bootstrap())
        .max_block(Duration::from_secs(2))
        .with_client(|c| c.allow_auto_create_topics(false));
    let producer = Producer::new(config).unwrap();
    let missing = unique_topic("no-such-topic");
    let started = Instant::now();
    let err = producer.send(ProducerRecord::new(&missing, "v")).await.expect_err("unknown topic");
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    let topic = unique_topic("too-large");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 1);
    let big = vec![7u8; 2 << 20];
    let err =
        producer.send(ProducerRecord::new(&topic, big.clone())).await.expect_err("over max.request.size");
    assert!(matches!(err.kind(), ErrorKind::RecordTooLarge { .. }), "{err:?}");
    assert!(err.is_user_error());

    // Allowed by the producer, refused by the broker (message.max.bytes is about 1 MiB).
    let config = ProducerConfig::new(&broker.bootstrap()).max_request_size(8 << 20).buffer_memory(32 << 20);
    let lenient = Producer::new(config).unwrap();
    let delivery = lenient.send(ProducerRecord::new(&topic, big)).await.expect("queued");
    let err = delivery.await.expect_err("the broker refuses it");
    assert_eq!(err.code(), Some(ErrorCode::MESSAGE_TOO_LARGE), "{err}");
    // The producer goes on working after a failed batch (its sequence numbers were reset).
    let ok = lenient.send(ProducerRecord::new(&topic, "small")).await.unwrap().await;
    assert!(ok.is_ok(), "{ok:?}");

    let err = producer.send(ProducerRecord::new(&topic, "v").partition(5)).await.expect_err("no partition 5");
    assert!(err.is_user_error(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_survives_cut_connections_without_loss_or_duplicates() {
    let (proxy, broker) =
        FaultProxy::in_front_of(Broker::builder(BrokerKind::Kafka)).expect("a broker behind a proxy");
    let topic = unique_topic("produce-faults");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 4);
    let config = ProducerConfig::new(&proxy.bootstrap())
        .compression(Compression::Lz4)
        .batch_size(32 * 1024)
        .with_client(|c| c.request_timeout(Duration::from_secs(3)));
    let producer = Producer::new(config).unwrap();
    let cutter = proxy.cut_every(Duration::from_millis(300));
    let count = 100_000;
    let started = Instant::now();
    let mut delivered = produce_all_from(&producer, &topic, 0..count / 2).await;
    // Responses stop for longer than the request timeout: requests time out, their connection
    // is closed, and the batches are sent again.
    proxy.stall(Duration::from_secs(4));
    delivered.extend(produce_all_from(&producer, &topic, count / 2..count).await);
    let cuts = cutter.stop();
    producer.close(Duration::from_secs(30)).await;
    eprintln!("100k idempotent records with {cuts} connection cuts in {:?}", started.elapsed());
    assert!(cuts >= 2, "the proxy cut only {cuts} times");
    // Offsets per partition are consecutive in send order: nothing lost, nothing duplicated.
    let mut next: HashMap<i32, i64> = HashMap::new();
    for (i, (p, offset)) in delivered.iter().enumerate() {
        if let Some(want) = next.get(p) {
            assert_eq!(offset, want, "record {i} in partition {p}");
        }
        next.insert(*p, offset + 1);
    }
    check_read_back(&broker.bootstrap(), &topic, count);
}

#[test]
fn the_produce_example_sends_stdin_lines() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let broker = Broker::shared_kafka();
    let topic = unique_topic("produce-example");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 2);
    let mut child = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "klamm", "--example", "produce", "--", "--brokers"])
        .args([broker.bootstrap().as_str(), "--topic", &topic, "--compression", "zstd", "--acks", "1"])
        .args(["--key-delimiter", ",", "--header", "origin=example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    child.stdin.take().unwrap().write_all(b"k1,first\nk2,second\nno key here\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("produced 3 records"), "{stdout}");
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(5), ..Default::default() };
    let mut got = Peer::rdkafka().consume(&broker.bootstrap(), &topic, 3, &options);
    got.sort_by(|a, b| a.value.cmp(&b.value));
    let want = [
        PeerRecord::new("k1", "first").header("origin", "example"),
        PeerRecord { key: None, ..PeerRecord::new("", "no key here").header("origin", "example") },
        PeerRecord::new("k2", "second").header("origin", "example"),
    ];
    let got: Vec<_> = got.iter().map(PeerRecord::content).collect();
    let want: Vec<_> = want.iter().map(PeerRecord::content).collect();
    assert_eq!(got, want);

    let bad = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "klamm", "--example", "produce", "--", "--brokers", "127.0.0.1:1"])
        .args(["--topic", &topic, "--compression", "brotli"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("compression.type"), "{bad:?}");
}
