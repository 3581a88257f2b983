//! The partition consumer on a real 3-node cluster: log truncation after an unclean leader
//! election is detected (KIP-320), as the consumer's `auto.offset.reset` says.
//!
//! How the truncation is made: a topic with two replicas (node 1 leads, node 2 follows) and
//! `min.insync.replicas=1`; node 2 is frozen until it leaves the ISR, records are written with
//! acks=1 to node 1 alone and read by the consumer, node 1 is killed, node 2 resumed and made
//! leader by an unclean election: its log ends where node 1's first records ended, so the
//! records the consumer read last are gone. New records are written at those offsets.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use klamm::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, ElectionType, ErrorKind, NewTopic,
    Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer, NextOffset};
use klamm_tests::{unique_topic, Cluster};

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(3))
}

async fn write(producer: &Producer, topic: &str, prefix: &str, count: usize) {
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).partition(0);
        deliveries.push(producer.send(record).await.expect("queued"));
    }
    for d in deliveries {
        d.await.expect("acknowledged by the leader");
    }
}

/// Polls until `count` records arrived (panics after `within`).
async fn read(consumer: &mut Consumer, count: usize, within: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "read {} of {count} records in {within:?}", got.len());
        // A retriable error reports a stall (a partition without a leader for longer than
        // `klamm.stall.timeout.ms`) while the consumer keeps retrying: polling on is the answer.
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => got.extend(records),
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => panic!("error while reading: {e}"),
        }
    }
    got
}

fn value(r: &ConsumerRecord) -> String {
    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
}

/// Waits until `check` holds for partition 0's (leader, isr), up to `within`.
fn wait_for_partition(cluster: &Cluster, topic: &str, within: Duration, check: impl Fn(i32, &[i32]) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(ps) = cluster.partitions(topic) {
            if let Some(p) = ps.iter().find(|p| p.partition == 0) {
                if check(p.leader, &p.isr) {
                    return;
                }
                assert!(Instant::now() < deadline, "{topic}-0 did not get there within {within:?}: {p:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_truncated_by_an_unclean_election_is_detected() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("truncated");
    let tp = TopicPartition::new(topic.as_str(), 0);
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    let created = admin
        .create_topics(&[NewTopic::with_defaults(&topic)
            .assignment(0, vec![1, 2])
            .config("min.insync.replicas", "1")])
        .await;
    for (name, result) in created {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    wait_for_partition(cluster, &topic, Duration::from_secs(30), |leader, isr| leader == 1 && isr.len() == 2);

    let producer = Producer::new(
        ProducerConfig::new(&bootstrap)
            .acks(Acks::Leader)
            .enable_idempotence(false)
            .linger(Duration::ZERO)
            .with_client(|c| c.metadata_max_age(Duration::from_secs(1))),
    )
    .unwrap();
    let config = ConsumerConfig::with_client_config(
        ClientConfig::new(&bootstrap).metadata_max_age(Duration::from_secs(1)),
    )
    .auto_offset_reset(OffsetReset::Earliest);
    let mut consumer = Consumer::new(config).unwrap();
    consumer.assign([tp.clone()]);

    // 100 records on both replicas, read.
    write(&producer, &topic, "a", 100).await;
    let first = read(&mut consumer, 100, Duration::from_secs(30)).await;
    assert_eq!(first.last().map(|r| r.offset), Some(99));

    // The follower freezes and leaves the ISR; 100 more records reach the leader alone, read.
    cluster.pause(2);
    wait_for_partition(cluster, &topic, Duration::from_secs(30), |_, isr| isr == [1]);
    write(&producer, &topic, "b", 100).await;
    let second = read(&mut consumer, 100, Duration::from_secs(30)).await;
    assert_eq!(second.last().map(|r| r.offset), Some(199));
    let old_epoch = second.last().and_then(|r| r.leader_epoch).expect("records carry their leader epoch");

    // A group commits offset 200 (with the leader epoch of record 199, as the commit carries it).
    let group = unique_topic("truncated-group");
    let group_config = || {
        GroupConfig::new(&bootstrap, &group)
            .session_timeout(Duration::from_secs(10))
            .heartbeat_interval(Duration::from_millis(500))
            .consumer(|c| {
                c.auto_offset_reset(OffsetReset::Earliest).fetch_max_wait(Duration::from_millis(100))
            })
    };
    let mut member = GroupConsumer::new(group_config()).unwrap();
    member.subscribe([topic.as_str()]);
    let mut consumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.len() < 200 {
        assert!(Instant::now() < deadline, "the group read {} of 200 records", consumed.len());
        match member.poll(Duration::from_millis(200)).await {
            Ok(records) => consumed.extend(records),
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => panic!("error while reading: {e}"),
        }
    }
    let last = consumed.last().unwrap();
    member.commit([(tp.clone(), NextOffset::after(last))]).await.unwrap();
    member.close(Duration::from_secs(10)).await.unwrap();

    // The leader dies; the stale follower becomes leader by an unclean election.
    cluster.kill(1);
    cluster.resume(2);
    // Node 2 must be unfenced (heartbeating again) before the controller can elect it.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let leader = cluster.leader(&topic, 0);
        if leader == Some(2) {
            break;
        }
        let results = admin.elect_leaders(ElectionType::Unclean, Some(&[(topic.as_str(), 0)])).await;
        let outcome = results.into_iter().next().map(|(_, r)| r);
        assert!(
            Instant::now() < deadline,
            "node 2 not elected within 90 s: leader {leader:?}, last election answer {outcome:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // New records at the offsets the lost ones had.
    write(&producer, &topic, "c", 50).await;

    // The consumer was at 200: it must notice that the log now diverges at 100, read the new
    // records from there, and neither read the old ones again nor skip the new ones.
    let third = read(&mut consumer, 50, Duration::from_secs(60)).await;
    let offsets: Vec<i64> = third.iter().map(|r| r.offset).collect();
    let values: Vec<String> = third.iter().map(value).collect();
    assert_eq!(offsets, (100..150).collect::<Vec<_>>(), "values {values:?}");
    assert_eq!(values, (0..50).map(|i| format!("c-{i}")).collect::<Vec<_>>());

    // A new member of the group resumes from the committed offset and its leader epoch: it too
    // finds where the logs diverge, instead of starting over at the beginning (the reset
    // policy, for an offset past the end of the log) and reading the lost range's old records.
    let mut member = GroupConsumer::new(group_config()).unwrap();
    member.subscribe([topic.as_str()]);
    let mut resumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while resumed.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "the group read {} of 50 records after the truncation",
            resumed.len()
        );
        match member.poll(Duration::from_millis(200)).await {
            Ok(records) => resumed.extend(records),
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => panic!("error while reading: {e}"),
        }
    }
    let offsets: Vec<i64> = resumed.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (100..150).collect::<Vec<_>>(),
        "values {:?}",
        resumed.iter().map(value).collect::<Vec<_>>()
    );
    member.close(Duration::from_secs(10)).await.unwrap();

    // Without a reset policy, the truncation is the user's to handle: a typed error.
    let strict = ConsumerConfig::new(&bootstrap).auto_offset_reset(OffsetReset::None);
    let mut strict = Consumer::new(strict).unwrap();
    strict.assign([tp.clone()]);
    strict.seek_with_leader_epoch(&tp, Offset::At(200), Some(old_epoch)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        match strict.poll(Duration::from_millis(500)).await {
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => break e,
            Ok(records) => {
                assert!(
                    records.is_empty(),
                    "read past a truncation: {:?}",
                    records.iter().map(value).collect::<Vec<_>>()
                );
                assert!(Instant::now() < deadline, "no truncation error within 30 s");
            }
        }
    };
    assert_eq!(error.kind(), &ErrorKind::LogTruncation { position: 200, diverging_offset: 100 }, "{error}");

    producer.close(Duration::from_secs(5)).await;
    cluster.heal();
}
