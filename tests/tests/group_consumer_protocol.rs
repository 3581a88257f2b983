//! The KIP-848 `consumer` group protocol (`group.protocol=consumer`) against Apache Kafka:
//! Klamm members (the `group-consume` example, as processes) joining, leaving and being
//! killed, with every partition owned by exactly one member after each step, partitions that
//! stay never revoked, and every record read; a mixed group with the Java client and
//! librdkafka; static members; a broker-side pattern subscription; commits carrying the member
//! epoch; an online upgrade of a classic group and back; and a clear error from a broker
//! without the protocol (tansu).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use klamm::{
    Admin, Client, ClientConfig, ErrorKind, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer, GroupProtocol, NextOffset};
use klamm_tests::{
    assert_not_revoked, kept, unique_topic, wait_for_exact_cover, Broker, GroupMember, MemberKind, MemberLog,
};

/// How long a group may take to settle after a join or a leave.
const SETTLE: Duration = Duration::from_secs(40);

/// Flags of a Klamm member of the `consumer` protocol: nothing but the protocol (the broker
/// sets the session timeout and heartbeat interval), commits every 100 records.
const KLAMM: &[&str] = &[
    "--commit-every",
    "100",
    "--property",
    "group.protocol=consumer",
    "--property",
    "fetch.max.wait.ms=100",
];

async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let client = Client::new(ClientConfig::new(&broker.bootstrap())).unwrap();
    let admin = Admin::new(client.clone());
    for (name, result) in admin.create_topics(&[NewTopic::new(topic, partitions, 1)]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    client.close().await;
}

async fn produce(broker: &Broker, topic: &str, count: usize) {
    let producer = Producer::new(ProducerConfig::new(&broker.bootstrap())).unwrap();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("value-{i}")).key(format!("key-{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await;
}

fn setup(partitions: i32, records: usize) -> (&'static Broker, String, String) {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("kip848");
    let group = unique_topic("g");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        create_topic(broker, &topic, partitions).await;
        produce(broker, &topic, records).await;
    });
    (broker, topic, group)
}

/// An in-process member of the `consumer` protocol.
fn consumer_config(broker: &Broker, group: &str) -> GroupConfig {
    GroupConfig::new(&broker.bootstrap(), group)
        .group_protocol(GroupProtocol::Consumer)
        .consumer(|c| c.auto_offset_reset(OffsetReset::Earliest).fetch_max_wait(Duration::from_millis(100)))
}

/// [`wait_for_exact_cover`], checking on the way, at every sample, that no partition is owned
/// by two members at once (the coordinator hands a partition on only after its owner has
/// revoked it).
fn settle(members: &[&GroupMember], topic: &str, partitions: i32) -> Vec<Vec<String>> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut owners: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
        for m in members {
            for tp in m.log().owned {
                if let Some(other) = owners.insert(tp.clone(), m.name()) {
                    panic!("{tp} owned by {other} and {} at once", m.name());
                }
            }
        }
        let covered = (0..partitions).all(|p| owners.contains_key(&format!("{topic}-{p}")));
        let each = members.iter().all(|m| owners.values().any(|o| *o == m.name()));
        // Both assignors balance to within one partition; a member that owns fewer is still
        // waiting for partitions another member is revoking.
        let counts: Vec<usize> =
            members.iter().map(|m| owners.values().filter(|o| **o == m.name()).count()).collect();
        let balanced = counts.iter().max().zip(counts.iter().min()).is_some_and(|(max, min)| max - min <= 1);
        if (covered && each && balanced && owners.len() == partitions as usize) || Instant::now() > deadline {
            return wait_for_exact_cover(members, topic, partitions, Duration::ZERO);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the records the members read (`logs`, and the members still running) cover
/// offsets 0..count of every partition, `count` in all.
fn wait_all_read(running: &[&GroupMember], done: &[&MemberLog], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut read: BTreeSet<(i32, i64)> = BTreeSet::new();
        for m in running {
            read.extend(m.log().records);
        }
        for log in done {
            read.extend(log.records.iter().copied());
        }
        if read.len() == count {
            return;
        }
        assert!(Instant::now() < deadline, "only {} of {count} records read", read.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn klamm_members_join_leave_and_are_killed() {
    const P: i32 = 6;
    let (broker, topic, group) = setup(P, 3000);
    let brokers = broker.bootstrap();
    let start = |name: &str| GroupMember::start(name, &brokers, &topic, &group, KLAMM);

    let a = start("a");
    let one = settle(&[&a], &topic, P);
    let a_mark = a.log().rebalances.len();

    let b = start("b");
    let two = settle(&[&a, &b], &topic, P);
    assert_eq!((two[0].len(), two[1].len()), (3, 3), "{two:?}");
    assert_not_revoked(&a, a_mark, &kept(&one[0], &two[0]));
    let marks: Vec<usize> = [&a, &b].iter().map(|m| m.log().rebalances.len()).collect();

    let c = start("c");
    let three = settle(&[&a, &b, &c], &topic, P);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    assert_not_revoked(&a, marks[0], &kept(&two[0], &three[0]));
    assert_not_revoked(&b, marks[1], &kept(&two[1], &three[1]));
    let marks: Vec<usize> = [&a, &c].iter().map(|m| m.log().rebalances.len()).collect();

    // b leaves (revokes, commits, leaves with epoch -1): a and c keep theirs and share b's.
    let b_log = b.stop(Duration::from_secs(30));
    let after_leave = settle(&[&a, &c], &topic, P);
    assert_not_revoked(&a, marks[0], &three[0]);
    assert_not_revoked(&c, marks[1], &three[2]);
    assert!(after_leave.iter().all(|v| v.len() == 3), "{after_leave:?}");
    let a_mark = a.log().rebalances.len();

    // c is killed: once the broker's session timeout (10 s here) drops it, a owns everything.
    let c_log = c.kill();
    let alone = settle(&[&a], &topic, P);
    assert_eq!(alone[0].len(), P as usize);
    assert_not_revoked(&a, a_mark, &after_leave[0]);

    wait_all_read(&[&a], &[&b_log, &c_log], 3000);
    a.stop(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_carry_the_member_epoch_and_a_new_member_resumes_there() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("kip848-commit");
    let group = unique_topic("g");
    create_topic(broker, &topic, 1).await;
    produce(broker, &topic, 10).await;
    let mut consumer = GroupConsumer::new(consumer_config(broker, &group)).unwrap();
    consumer.subscribe([topic.as_str()]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(got.len(), 10);
    let (epoch, member_id) = consumer.generation();
    assert!(epoch > 0, "a member epoch, got {epoch}");
    assert!(!member_id.is_empty());
    let tp = TopicPartition::new(topic.as_str(), 0);
    consumer.commit([(tp.clone(), NextOffset::after(&got[4]))]).await.unwrap();
    let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp].as_ref().map(NextOffset::offset), Some(5));
    // A partition the member does not own is refused without a request.
    let other = TopicPartition::new(topic.as_str(), 7);
    let e = consumer.commit([(other, NextOffset::new(1))]).await.unwrap_err();
    assert_eq!(e.code(), Some(klamm::protocol::ErrorCode::ILLEGAL_GENERATION), "{e}");
    consumer.close(Duration::from_secs(10)).await.unwrap();

    let mut again = GroupConsumer::new(consumer_config(broker, &group)).unwrap();
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
async fn the_broker_matches_a_pattern_subscription() {
    let broker = Broker::shared_kafka();
    let stem = unique_topic("kip848-pat");
    let (a, b, other) = (format!("{stem}-a"), format!("{stem}-b"), format!("x{stem}-a"));
    for t in [&a, &b, &other] {
        create_topic(broker, t, 2).await;
    }
    let mut consumer =
        GroupConsumer::new(consumer_config(broker, &unique_topic("g")).remote_assignor("range")).unwrap();
    assert!(consumer.subscribe_pattern("(unclosed").is_err(), "an invalid pattern is refused");
    consumer.subscribe_pattern(&format!("{stem}-.*")).unwrap();
    let topics = |consumer: &GroupConsumer| {
        let assignment = consumer.assignment();
        let names: BTreeSet<String> = assignment.iter().map(|tp| tp.topic.to_string()).collect();
        (names, assignment.len())
    };
    let want = |list: &[&String]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
    let deadline = Instant::now() + Duration::from_secs(30);
    while topics(&consumer) != (want(&[&a, &b]), 4) {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    // A topic created later that matches is added by the broker.
    let c = format!("{stem}-c");
    create_topic(broker, &c, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while topics(&consumer) != (want(&[&a, &b, &c]), 6) {
        assert!(Instant::now() < deadline, "assignment {:?}", consumer.assignment());
        consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_the_protocol_says_to_use_classic() {
    let broker = Broker::shared_tansu();
    let topic = unique_topic("kip848-tansu");
    create_topic(broker, &topic, 1).await;
    let mut consumer = GroupConsumer::new(consumer_config(broker, &unique_topic("g"))).unwrap();
    consumer.subscribe([topic.as_str()]);
    let started = Instant::now();
    let error = loop {
        match consumer.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(records) => assert!(records.is_empty()),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no error within 30 s: a hang");
    };
    assert!(error.to_string().contains("group.protocol=classic"), "{error}");
    assert!(matches!(error.kind(), ErrorKind::Broker(_)), "a typed error, {:?}", error.kind());
    // It stays failed, and closing does not hang.
    assert!(consumer.poll(Duration::from_millis(10)).await.is_err());
    let _ = consumer.close(Duration::from_secs(5)).await;
}

#[test]
fn a_static_member_restarts_without_moving_partitions() {
    const P: i32 = 4;
    let (broker, topic, group) = setup(P, 400);
    let brokers = broker.bootstrap();
    let start = |name: &str| {
        let id = format!("group.instance.id={name}");
        let flags: Vec<&str> = KLAMM.iter().copied().chain(["--property", id.as_str()]).collect();
        GroupMember::start(name, &brokers, &topic, &group, &flags)
    };
    let a = start("a");
    let b = start("b");
    let before = settle(&[&a, &b], &topic, P);
    let a_mark = a.log().rebalances.len();
    // b stops (leaves with epoch -2) and comes back at once: it gets its partitions back and
    // a never gives up any of its own.
    let b_log = b.stop(Duration::from_secs(30));
    let b = start("b");
    let after = settle(&[&a, &b], &topic, P);
    assert_eq!(before, after, "the same partitions after the restart");
    assert_not_revoked(&a, a_mark, &before[0]);
    wait_all_read(&[&a, &b], &[&b_log], 400);
    a.stop(Duration::from_secs(30));
    b.stop(Duration::from_secs(30));
}

/// The flags of a `consumer` protocol member of `kind`.
fn peer_flags(kind: MemberKind) -> Vec<String> {
    vec![
        "--commit-every".into(),
        "100".into(),
        "--property".into(),
        "group.protocol=consumer".into(),
        "--property".into(),
        format!("{}=100", kind.fetch_wait_property()),
    ]
}

#[test]
fn a_mixed_group_with_the_java_client_and_librdkafka() {
    const P: i32 = 6;
    let (broker, topic, group) = setup(P, 3000);
    let brokers = broker.bootstrap();
    let start = |kind: MemberKind, name: &str| {
        let flags = peer_flags(kind);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        GroupMember::start_kind(kind, name, &brokers, &topic, &group, &flags)
    };

    let k = start(MemberKind::Klamm, "klamm");
    let one = settle(&[&k], &topic, P);
    let k_mark = k.log().rebalances.len();

    let j = start(MemberKind::Java, "java");
    let two = settle(&[&k, &j], &topic, P);
    assert_not_revoked(&k, k_mark, &kept(&one[0], &two[0]));
    let marks: Vec<usize> = [&k, &j].iter().map(|m| m.log().rebalances.len()).collect();

    let r = start(MemberKind::Rdkafka, "rdkafka");
    let three = settle(&[&k, &j, &r], &topic, P);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    assert_not_revoked(&k, marks[0], &kept(&two[0], &three[0]));
    assert_not_revoked(&j, marks[1], &kept(&two[1], &three[1]));
    let marks: Vec<usize> = [&k, &r].iter().map(|m| m.log().rebalances.len()).collect();

    // The Java member leaves; Klamm and librdkafka keep theirs and share its partitions.
    let j_log = j.stop(Duration::from_secs(30));
    let after_leave = settle(&[&k, &r], &topic, P);
    assert_not_revoked(&k, marks[0], &three[0]);
    assert_not_revoked(&r, marks[1], &three[2]);
    let k_mark = k.log().rebalances.len();

    // librdkafka is killed: Klamm ends up with everything once the broker drops it.
    let r_log = r.kill();
    settle(&[&k], &topic, P);
    assert_not_revoked(&k, k_mark, &after_leave[0]);
    wait_all_read(&[&k], &[&j_log, &r_log], 3000);
    k.stop(Duration::from_secs(30));
}

/// Flags of a classic member that notices others quickly.
const KLAMM_CLASSIC: &[&str] = &[
    "--commit-every",
    "100",
    "--property",
    "session.timeout.ms=10000",
    "--property",
    "heartbeat.interval.ms=500",
    "--property",
    "fetch.max.wait.ms=100",
];

#[test]
fn a_classic_group_is_upgraded_online_as_members_restart_and_back() {
    const P: i32 = 4;
    let (broker, topic, group) = setup(P, 2000);
    let brokers = broker.bootstrap();
    let start = |name: &str, flags: &[&str]| GroupMember::start(name, &brokers, &topic, &group, flags);
    let mut logs = Vec::new();

    let a = start("a-classic", KLAMM_CLASSIC);
    let b = start("b-classic", KLAMM_CLASSIC);
    settle(&[&a, &b], &topic, P);
    // One at a time, each member restarts with the consumer protocol: the broker converts the
    // group when the first one joins, and the group keeps consuming throughout.
    logs.push(a.stop(Duration::from_secs(30)));
    let a = start("a-consumer", KLAMM);
    settle(&[&a, &b], &topic, P);
    logs.push(b.stop(Duration::from_secs(30)));
    let b = start("b-consumer", KLAMM);
    settle(&[&a, &b], &topic, P);
    // And back: the group returns to classic when its last consumer-protocol member leaves.
    logs.push(a.stop(Duration::from_secs(30)));
    let a = start("a-classic-again", KLAMM_CLASSIC);
    settle(&[&a, &b], &topic, P);
    logs.push(b.stop(Duration::from_secs(30)));
    let b = start("b-classic-again", KLAMM_CLASSIC);
    settle(&[&a, &b], &topic, P);

    let done: Vec<&MemberLog> = logs.iter().collect();
    wait_all_read(&[&a, &b], &done, 2000);
    a.stop(Duration::from_secs(30));
    b.stop(Duration::from_secs(30));
}
