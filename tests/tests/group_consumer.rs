//! `klamm_group::GroupConsumer` against Apache Kafka: Klamm members (the `group-consume`
//! example, as processes) joining, leaving and being killed in one group, with every partition
//! owned by exactly one member after each step and, with cooperative-sticky, partitions that
//! stay never revoked; commits as the next offset to consume, read back by a new member.

use std::time::{Duration, Instant};

use klamm::{Admin, Client, ClientConfig, OffsetReset, TopicPartition};
use klamm_group::{GroupConfig, GroupConsumer, NextOffset};
use klamm_tests::{
    assert_not_revoked, create_topic, kept, produce_keyed, shared_topic_and_group, unique_topic,
    wait_for_exact_cover, Broker, GroupMember,
};

/// Flags for members that notice each other quickly: heartbeats every 500 ms, a member gone
/// after 10 s.
const FAST: &[&str] = &[
    "--commit-every",
    "100",
    "--property",
    "session.timeout.ms=10000",
    "--property",
    "heartbeat.interval.ms=500",
    "--property",
    "fetch.max.wait.ms=100",
];

async fn produce(broker: &Broker, topic: &str, count: usize) {
    produce_keyed(broker, topic, count).await;
}

fn setup(partitions: i32, records: usize) -> (&'static Broker, String, String) {
    shared_topic_and_group("group", partitions, records)
}

/// A group member's settings for these tests: a member noticed gone after 10 s, heartbeats
/// every 500 ms, new partitions read from the beginning, fetches answered within 100 ms.
fn quick(broker: &Broker, group: &str) -> GroupConfig {
    GroupConfig::new(&broker.bootstrap(), group)
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(500))
        .consumer(|c| c.auto_offset_reset(OffsetReset::Earliest).fetch_max_wait(Duration::from_millis(100)))
}

#[test]
fn three_members_join_one_leaves_one_is_killed_cooperatively() {
    const P: i32 = 6;
    let (broker, topic, group) = setup(P, 3000);
    let brokers = broker.bootstrap();
    let start = |name: &str| GroupMember::start(name, &brokers, &topic, &group, FAST);
    let wait = Duration::from_secs(60);

    let a = start("a");
    let one = wait_for_exact_cover(&[&a], &topic, P, wait);
    let a_mark = a.log().rebalances.len();

    let b = start("b");
    let two = wait_for_exact_cover(&[&a, &b], &topic, P, wait);
    assert_eq!((two[0].len(), two[1].len()), (3, 3), "{two:?}");
    assert_not_revoked(&a, a_mark, &kept(&one[0], &two[0]));
    let marks: Vec<usize> = [&a, &b].iter().map(|m| m.log().rebalances.len()).collect();

    let c = start("c");
    let three = wait_for_exact_cover(&[&a, &b, &c], &topic, P, wait);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    assert_not_revoked(&a, marks[0], &kept(&two[0], &three[0]));
    assert_not_revoked(&b, marks[1], &kept(&two[1], &three[1]));
    let marks: Vec<usize> = [&a, &c].iter().map(|m| m.log().rebalances.len()).collect();

    // b leaves (SIGTERM: commit, revoke, LeaveGroup): a and c keep theirs and share b's.
    let b_log = b.stop(Duration::from_secs(30));
    let after_leave = wait_for_exact_cover(&[&a, &c], &topic, P, wait);
    assert_not_revoked(&a, marks[0], &three[0]);
    assert_not_revoked(&c, marks[1], &three[2]);
    assert!(after_leave.iter().all(|v| v.len() == 3), "{after_leave:?}");
    let a_mark = a.log().rebalances.len();

    // c is killed: after its session times out, a owns everything, without revoking its own.
    let c_log = c.kill();
    let alone = wait_for_exact_cover(&[&a], &topic, P, Duration::from_secs(40));
    assert_eq!(alone[0].len(), P as usize);
    assert_not_revoked(&a, a_mark, &after_leave[0]);

    // Every record was read by someone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut read: Vec<(i32, i64)> = a.log().records;
        read.extend(b_log.records.iter().copied());
        read.extend(c_log.records.iter().copied());
        read.sort_unstable();
        read.dedup();
        if read.len() == 3000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of 3000 records read", read.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    a.stop(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_are_the_next_offset_to_consume() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("group-commit");
    let group = unique_topic("g");
    create_topic(broker, &topic, 1).await;
    produce(broker, &topic, 10).await;
    let config = || quick(broker, &group);
    let mut consumer = GroupConsumer::new(config()).unwrap();
    consumer.subscribe([topic.as_str()]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(got.len(), 10);
    let tp = TopicPartition::new(topic.as_str(), 0);
    consumer.commit([(tp.clone(), NextOffset::after(&got[4]))]).await.unwrap();
    let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp].as_ref().map(NextOffset::offset), Some(5));
    consumer.close(Duration::from_secs(10)).await.unwrap();

    // A new member of the group starts at the committed offset.
    let mut again = GroupConsumer::new(config()).unwrap();
    again.subscribe([topic.as_str()]);
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.is_empty() && Instant::now() < deadline {
        first = again.poll(Duration::from_millis(200)).await.unwrap();
    }
    assert_eq!(first.first().map(|r| r.offset), Some(5));
    again.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_subscription_follows_matching_topics() {
    let broker = Broker::shared_kafka();
    let stem = unique_topic("pat");
    let (a, b, other) = (format!("{stem}-a"), format!("{stem}-b"), format!("x{stem}-a"));
    for t in [&a, &b, &other] {
        create_topic(broker, t, 2).await;
    }
    let config = quick(broker, &unique_topic("g")).consumer(|mut c| {
        c.client.metadata_max_age = Duration::from_secs(1);
        c
    });
    let mut consumer = GroupConsumer::new(config).unwrap();
    assert!(consumer.subscribe_pattern("(unclosed").is_err(), "an invalid pattern is refused");
    consumer.subscribe_pattern(&format!("{stem}-.*")).unwrap();
    let wait_for = |consumer: &GroupConsumer, want: &[&String]| {
        let mut names: Vec<String> = consumer.assignment().iter().map(|tp| tp.topic.to_string()).collect();
        names.sort();
        names.dedup();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        names == want && consumer.assignment().len() == want.len() * 2
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wait_for(&consumer, &[&a, &b]) {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    // A topic created later that matches joins the subscription.
    let c = format!("{stem}-c");
    create_topic(broker, &c, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wait_for(&consumer, &[&a, &b, &c]) {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_batches_streams_and_a_drop_that_does_not_block() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("group-auto");
    let group = unique_topic("g");
    create_topic(broker, &topic, 2).await;
    produce(broker, &topic, 500).await;
    let config = || quick(broker, &group).auto_commit(Duration::from_millis(200));
    let mut consumer = GroupConsumer::new(config()).unwrap();
    consumer.subscribe([topic.as_str()]);
    // Batches of at most 64, nothing lost or repeated between them.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 300 && Instant::now() < deadline {
        let batch = consumer.poll_batch(64, Duration::from_millis(300)).await.unwrap();
        assert!(batch.len() <= 64, "{}", batch.len());
        for r in &batch {
            assert!(seen.insert((r.partition, r.offset)), "{}-{} twice", r.partition, r.offset);
        }
    }
    // The rest as a stream.
    {
        use std::future::poll_fn;
        use std::pin::Pin;
        let mut stream = consumer.stream();
        while seen.len() < 500 {
            let next = tokio::time::timeout(
                Duration::from_secs(20),
                poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)),
            )
            .await
            .expect("a record within 20 s");
            let r = next.expect("stream ended").expect("record");
            assert!(seen.insert((r.partition, r.offset)), "{}-{} twice", r.partition, r.offset);
        }
    }
    // Auto-commit catches up with what was handed out.
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic.as_str(), p)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
        let committed = consumer.committed(&tps).await.unwrap();
        let total: i64 = committed.values().map(|c| c.as_ref().map_or(0, NextOffset::offset)).sum();
        if total == 500 {
            break;
        }
        assert!(Instant::now() < deadline, "auto-commit reached {total} of 500");
    }
    let started = Instant::now();
    drop(consumer);
    assert!(started.elapsed() < Duration::from_millis(200), "drop took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_are_assigned_after_a_rebalance() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("group-grow");
    create_topic(broker, &topic, 2).await;
    let config = quick(broker, &unique_topic("g")).consumer(|mut c| {
        c.client.metadata_max_age = Duration::from_secs(1);
        c
    });
    let mut consumer = GroupConsumer::new(config).unwrap();
    consumer.subscribe([topic.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().len() < 2 {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    let client = Client::new(ClientConfig::new(&broker.bootstrap())).unwrap();
    for (t, result) in Admin::new(client.clone()).create_partitions(&[(topic.as_str(), 4)]).await {
        result.unwrap_or_else(|e| panic!("grow {t}: {e}"));
    }
    client.close().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().len() < 4 {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

/// Records a member's rebalance calls.
#[derive(Clone, Default)]
struct Calls(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl klamm_group::RebalanceListener for Calls {
    async fn on_assigned(&mut self, _: &mut klamm_group::RebalanceHandle<'_>, ps: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("assigned {}", ps.len()));
    }

    async fn on_revoked(&mut self, _: &mut klamm_group::RebalanceHandle<'_>, ps: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("revoked {}", ps.len()));
    }

    async fn on_lost(&mut self, _: &mut klamm_group::RebalanceHandle<'_>, ps: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("lost {}", ps.len()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_leaves_and_its_partitions_move() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("group-slow");
    let group = unique_topic("g");
    create_topic(broker, &topic, 4).await;
    let config = || {
        quick(broker, &group)
            .heartbeat_interval(Duration::from_millis(300))
            .max_poll_interval(Duration::from_secs(3))
    };
    let slow_calls = Calls::default();
    let mut slow = GroupConsumer::with_listener(config(), slow_calls.clone()).unwrap();
    slow.subscribe([topic.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.assignment().len() < 4 {
        assert!(Instant::now() < deadline);
        slow.poll(Duration::from_millis(100)).await.unwrap();
    }
    // The busy member stops polling; the other one keeps polling and ends up with everything.
    let mut busy_peer = GroupConsumer::new(config()).unwrap();
    busy_peer.subscribe([topic.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while busy_peer.assignment().len() < 4 {
        assert!(Instant::now() < deadline, "the polling member has {:?}", busy_peer.assignment());
        busy_peer.poll(Duration::from_millis(100)).await.unwrap();
    }
    // Back to polling: the slow member hears it lost its partitions, then rejoins and gets a share.
    let deadline = Instant::now() + Duration::from_secs(40);
    while slow.assignment().len() != 2 || busy_peer.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "{:?} / {:?}", slow.assignment(), busy_peer.assignment());
        slow.poll(Duration::from_millis(50)).await.unwrap();
        busy_peer.poll(Duration::from_millis(50)).await.unwrap();
    }
    let calls = slow_calls.0.lock().unwrap().clone();
    assert!(calls.contains(&"lost 4".to_string()), "{calls:?}");
    slow.close(Duration::from_secs(10)).await.unwrap();
    busy_peer.close(Duration::from_secs(10)).await.unwrap();
}
