//! `klamm::Producer` against Apache Kafka (and tansu where it can): every codec and acks level
//! read back by librdkafka, ordering and content checks, unknown topics, oversized records,
//! and an idempotent produce through a proxy that keeps cutting connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm::protocol::compression::Compression;
use klamm::protocol::ErrorCode;
use klamm::{Acks, ErrorKind, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{unique_topic, Broker, BrokerKind, ConsumeOptions, NegotiatedConnection, Peer, PeerRecord};

mod producer_common;

use producer_common::{check_read_back, produce_all};

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
        if acks != Acks::None {
            // The broker's offsets follow send order per partition: if the read-back below
            // disagrees, the reader is at fault, not the producer.
            let mut last: HashMap<i32, (usize, i64)> = HashMap::new();
            for (i, (p, offset)) in delivered.iter().enumerate() {
                if let Some((j, before)) = last.insert(*p, (i, *offset)) {
                    assert!(
                        before < *offset,
                        "{codec:?}: record {i} at offset {offset} after record {j} at {before}"
                    );
                }
            }
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

/// A topic whose `max.message.bytes` is far below the producer's `batch.size`: Kafka refuses
/// the full batches with MESSAGE_TOO_LARGE, and the producer splits them (keeping their
/// sequence numbers) until each part fits. Every record arrives once, in order, read back by
/// librdkafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_the_topic_allows_are_split() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("split");
    let admin = klamm::Admin::connect(klamm::ClientConfig::new(&broker.bootstrap())).await.unwrap();
    let created =
        admin.create_topics(&[klamm::NewTopic::new(&topic, 2, 1).config("max.message.bytes", "2048")]).await;
    created.into_iter().for_each(|(name, r)| {
        r.unwrap_or_else(|e| panic!("create {name}: {e}"));
    });
    NegotiatedConnection::connect(broker.addr()).wait_for_leaders(&topic, 2);
    let config = ProducerConfig::new(&broker.bootstrap())
        .batch_size(64 << 10)
        .linger(Duration::from_millis(100))
        .compression(Compression::None);
    let producer = Producer::new(config).unwrap();
    let count = 3_000;
    let delivered = produce_all(&producer, &topic, count).await;
    assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
    // Offsets follow send order in each partition, with no gaps: nothing written twice.
    let mut next: HashMap<i32, i64> = HashMap::new();
    for (i, (p, offset)) in delivered.iter().enumerate() {
        let want = next.entry(*p).or_insert(0);
        assert_eq!(*offset, *want, "record {i} in partition {p}");
        *want += 1;
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
        .args(["--property", "linger.ms=1", "--property", "client.id=produce-example"])
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

    // --property: an unknown name or a bad value is refused with the name; a property given
    // after a flag wins over it (acks=0 cannot carry idempotence, which is then refused).
    for (property, named) in [("no.such.property=1", "no.such.property"), ("linger.ms=soon", "linger.ms")] {
        let bad = Command::new(env!("CARGO"))
            .args(["run", "-q", "-p", "klamm", "--example", "produce", "--", "--brokers", "127.0.0.1:1"])
            .args(["--topic", &topic, "--property", property])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{property}: {bad:?}");
        assert!(String::from_utf8_lossy(&bad.stderr).contains(named), "{property}: {bad:?}");
    }
    let overridden = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "klamm", "--example", "produce", "--", "--brokers", "127.0.0.1:1"])
        .args(["--topic", &topic, "--acks", "all", "--property", "acks=0"])
        .args(["--property", "enable.idempotence=true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!overridden.status.success(), "{overridden:?}");
    let stderr = String::from_utf8_lossy(&overridden.stderr);
    assert!(stderr.contains("acks"), "the property's acks=0 replaced --acks all: {stderr}");
}
