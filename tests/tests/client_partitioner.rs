//! `klamm::partitioner::partition_for_key` agrees with the reference clients: the same 10,000
//! keys land on the same partitions as with the Java client's default partitioner and
//! librdkafka's `murmur2_random`, on a real Apache Kafka broker.
//!
//! - Each peer produces 10,000 records with distinct keys (empty, text and binary, 0-40 bytes)
//!   and no explicit partition to a 7-partition topic, in one run; every delivery's partition
//!   must be the one klamm computes for the record's key.
//! - An empty key is a key: both peers hash it (to the partition klamm computes) and store it
//!   as an empty key, not a null one.
//! - Control: librdkafka's default partitioner (`consistent_random`, CRC32) does not agree, so
//!   the agreement above is the `--partitioner` option's doing.

use std::collections::HashSet;
use std::num::NonZeroU32;

use klamm::partitioner::partition_for_key;
use klamm_tests::{
    unique_topic, Broker, ConsumeOptions, Partitioner, Peer, PeerKind, PeerRecord, ProduceOptions,
};

const PARTITIONS: u32 = 7;

fn partitions() -> NonZeroU32 {
    NonZeroU32::new(PARTITIONS).expect("non-zero")
}

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

/// `count` distinct keys: the empty key first, then keys of 1-40 bytes, alternately text
/// (`user-<n>` padded with letters, or only letters when shorter) and arbitrary bytes (every
/// byte value, high bit included).
fn distinct_keys(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x6b6c_616d_6d21);
    let mut seen = HashSet::new();
    let mut keys = Vec::with_capacity(count);
    seen.insert(Vec::new());
    keys.push(Vec::new());
    while keys.len() < count {
        let len = 1 + rng.below(40) as usize;
        let key = if keys.len() % 2 == 0 {
            let mut k = format!("user-{}", keys.len()).into_bytes();
            if k.len() > len {
                k.clear();
            }
            while k.len() < len {
                k.push(b'a' + rng.below(26) as u8);
            }
            k
        } else {
            (0..len).map(|_| rng.next() as u8).collect()
        };
        if seen.insert(key.clone()) {
            keys.push(key);
        }
    }
    keys
}

/// Has `peer` produce one record per key, without partitions, to a new topic of [`PARTITIONS`]
/// partitions; returns the partition of each record, in key order.
fn produce_keys(peer: &Peer, partitioner: Partitioner, topic_prefix: &str, keys: &[Vec<u8>]) -> Vec<i32> {
    let broker = Broker::shared_kafka();
    let topic = unique_topic(&format!("{topic_prefix}-{}", peer.name()));
    peer.create_topic(&broker.bootstrap(), &topic, PARTITIONS);
    let records: Vec<PeerRecord> =
        keys.iter().enumerate().map(|(i, k)| PeerRecord::new(k.clone(), i.to_string())).collect();
    let options = ProduceOptions { partitioner, ..ProduceOptions::default() };
    let deliveries = peer.produce(&broker.bootstrap(), &topic, &options, &records);
    deliveries.iter().map(|d| d.partition).collect()
}

fn same_partitions_as(kind: PeerKind) {
    let keys = distinct_keys(10_000);
    let peer = Peer::new(kind);
    let got = produce_keys(&peer, Partitioner::Murmur2, "partitioner", &keys);
    assert_eq!(got.len(), keys.len());
    let mut per_partition = [0usize; PARTITIONS as usize];
    let mut mismatches = Vec::new();
    for (key, &partition) in keys.iter().zip(&got) {
        let expected = partition_for_key(key, partitions());
        if partition != expected {
            mismatches.push(format!(
                "key {} -> {} partition {partition}, klamm {expected}",
                hex::encode(key),
                kind.name()
            ));
        }
        if let Some(n) = usize::try_from(partition).ok().and_then(|p| per_partition.get_mut(p)) {
            *n += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} keys disagree with the {} peer, first ones:\n{}",
        mismatches.len(),
        keys.len(),
        kind.name(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
    // The keys spread over every partition (10,000 over 7: about 1,430 each).
    assert!(per_partition.iter().all(|&n| n > 1_000), "{}: {per_partition:?}", kind.name());
}

#[test]
fn keys_land_where_the_java_client_puts_them() {
    same_partitions_as(PeerKind::Java);
}

#[test]
fn keys_land_where_librdkafka_murmur2_random_puts_them() {
    same_partitions_as(PeerKind::Rdkafka);
}

/// Both peers hash an empty key (several records, all on klamm's partition for it) and keep it
/// an empty key on the wire, which consuming it back shows.
#[test]
fn empty_key_is_hashed_like_any_key() {
    let broker = Broker::shared_kafka();
    let expected = partition_for_key(b"", partitions());
    for peer in [Peer::java(), Peer::rdkafka()] {
        let topic = unique_topic(&format!("partitioner-empty-{}", peer.name()));
        peer.create_topic(&broker.bootstrap(), &topic, PARTITIONS);
        let records: Vec<PeerRecord> =
            (0..30).map(|i| PeerRecord::new(Vec::new(), format!("v{i}"))).collect();
        let options = ProduceOptions { partitioner: Partitioner::Murmur2, ..ProduceOptions::default() };
        let deliveries = peer.produce(&broker.bootstrap(), &topic, &options, &records);
        for (i, d) in deliveries.iter().enumerate() {
            assert_eq!(d.partition, expected, "{}: record {i}", peer.name());
            assert_eq!(d.offset, i as i64, "{}: record {i}", peer.name());
        }
        let got = peer.consume(&broker.bootstrap(), &topic, records.len(), &ConsumeOptions::default());
        assert_eq!(got.len(), records.len(), "{}", peer.name());
        for r in &got {
            assert_eq!(r.partition, Some(expected), "{}: {r:?}", peer.name());
            assert_eq!(r.key.as_deref(), Some(&[][..]), "{}: the key came back null: {r:?}", peer.name());
        }
    }
}

/// librdkafka's own default hashes keys with CRC32: without `--partitioner murmur2` it puts
/// many keys elsewhere, so the agreement test depends on the option reaching the client.
#[test]
fn librdkafka_default_partitioner_differs() {
    let keys = distinct_keys(300);
    let got = produce_keys(&Peer::rdkafka(), Partitioner::ClientDefault, "partitioner-default", &keys);
    let agree = keys.iter().zip(&got).filter(|(k, &p)| p == partition_for_key(k, partitions())).count();
    // Chance agreement is about 1 in 7.
    assert!(agree < keys.len() / 2, "{agree} of {} keys agree with murmur2", keys.len());
}
