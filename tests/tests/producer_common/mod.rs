//! Records, sending and read-back checks shared by the producer test files.
// Each test file that includes this module uses only some of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use klamm::{Producer, ProducerRecord};
use klamm_tests::{ConsumeOptions, Peer, PeerRecord};

pub const BASE_TS: i64 = 1_700_000_000_000;

pub fn record(topic: &str, i: usize) -> ProducerRecord {
    let mut r = ProducerRecord::new(topic, format!("value-{i}-{}", "x".repeat(i % 50)))
        .key(format!("key-{}", i % 997))
        .timestamp(BASE_TS + i as i64);
    if i.is_multiple_of(3) {
        r = r.header("n", i.to_string()).header("empty", "");
    }
    r
}

pub fn expected(i: usize) -> PeerRecord {
    let mut p = PeerRecord::new(format!("key-{}", i % 997), format!("value-{i}-{}", "x".repeat(i % 50)))
        .timestamp(BASE_TS + i as i64);
    if i.is_multiple_of(3) {
        p = p.header("n", i.to_string()).header("empty", "");
    }
    p
}

/// Sends `count` records, then awaits their deliveries; returns partition and offset per record.
pub async fn produce_all(producer: &Producer, topic: &str, count: usize) -> Vec<(i32, i64)> {
    produce_all_from(producer, topic, 0..count).await
}

/// Sends records `range`, then awaits their deliveries.
pub async fn produce_all_from(
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
pub fn check_read_back(brokers: &str, topic: &str, count: usize) {
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
