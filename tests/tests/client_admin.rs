//! `klamm::Admin` against real brokers: creating topics (one bad topic among good ones),
//! describing and listing them, adding partitions, deleting them; the cluster description;
//! offsets by earliest, latest and timestamp after a peer produced records with known
//! timestamps, and deleting records; listing and describing a group that a librdkafka peer
//! consumes in. Also the client's periodic metadata refresh, observed through partitions added
//! by the admin.

use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klamm::protocol::ErrorCode;
use klamm::{Admin, Client, ClientConfig, CreateTopicsOptions, Error, ErrorKind, NewTopic, OffsetSpec};
use klamm_tests::{unique_topic, Broker, BrokerKind, ConsumeOptions, Peer, PeerRecord, ProduceOptions};

async fn admin_for(kind: BrokerKind) -> Admin {
    let config = ClientConfig::new(&Broker::shared(kind).bootstrap());
    let admin = Admin::connect(config).await.unwrap_or_else(|e| panic!("{}: connect: {e}", kind.name()));
    admin.timeout(Duration::from_secs(30))
}

fn code_of<T: Debug>(result: &Result<T, Error>) -> Option<ErrorCode> {
    result.as_ref().err().and_then(Error::code)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: still not so after {limit:?}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn topics_flow(kind: BrokerKind) {
    let name = kind.name();
    let admin = admin_for(kind).await;
    let good = unique_topic("admin-good");
    let single = unique_topic("admin-single");
    let bad = unique_topic("admin-bad");
    let missing = unique_topic("admin-missing");

    // validate_only checks and creates nothing. tansu ignores validate_only and creates the
    // topic, so it gets a name of its own there.
    let validated = if kind == BrokerKind::Kafka { good.clone() } else { unique_topic("admin-validated") };
    let validate = CreateTopicsOptions::default().validate_only(true);
    let checked = admin.create_topics_with(&[NewTopic::new(&validated, 3, 1)], &validate).await;
    assert!(checked[0].1.is_ok(), "{name}: {checked:?}");
    if kind == BrokerKind::Kafka {
        let described = admin.describe_topics(&[&good]).await;
        assert_eq!(code_of(&described[0].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{described:?}");
    }

    // Bad topics among good ones: each gets its own result.
    let existing = unique_topic("admin-existing");
    let first = admin.create_topics(&[NewTopic::new(&existing, 1, 1)]).await;
    assert!(first[0].1.is_ok(), "{name}: {first:?}");
    let topics = [
        NewTopic::new(&good, 3, 1).config("retention.ms", "3600000"),
        NewTopic::new(&bad, 1, 5),
        NewTopic::new(&existing, 1, 1),
        NewTopic::new(&single, 1, 1),
    ];
    let created =
        admin.create_topics_with(&topics, &CreateTopicsOptions::default().wait_for_leaders(true)).await;
    let names: Vec<&str> = created.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [&good, &bad, &existing, &single], "{name}: results follow the order asked");
    let good_created = created[0].1.as_ref().unwrap_or_else(|e| panic!("{name}: {good}: {e}"));
    if kind == BrokerKind::Kafka {
        assert_eq!(code_of(&created[1].1), Some(ErrorCode::INVALID_REPLICATION_FACTOR), "{created:?}");
        let bad_error = created[1].1.as_ref().unwrap_err();
        assert!(!bad_error.is_retriable() && bad_error.to_string().contains(&bad), "{bad_error}");
    } else {
        // tansu does not check the replication factor against its one broker: it creates the
        // topic with five replicas.
        assert!(created[1].1.is_ok(), "tansu: {created:?}");
    }
    assert_eq!(code_of(&created[2].1), Some(ErrorCode::TOPIC_ALREADY_EXISTS), "{name}: {created:?}");
    assert!(created[2].1.as_ref().unwrap_err().to_string().contains(&existing), "{name}: {created:?}");
    assert!(created[3].1.is_ok(), "{name}: {created:?}");
    assert_eq!(good_created.partitions, Some(3), "{name}: {good_created:?}");
    assert!(!good_created.topic_id.is_zero(), "{name}: {good_created:?}");
    if kind == BrokerKind::Kafka {
        // tansu does not return the resolved configs (CreateTopics v5 `configs` is empty).
        let retention = good_created.configs.iter().find(|(k, _)| k == "retention.ms");
        assert_eq!(retention.and_then(|(_, v)| v.as_deref()), Some("3600000"), "{good_created:?}");
    }

    // Describe and list.
    let described = admin.describe_topics(&[&good, &missing]).await;
    let topic = described[0].1.as_ref().unwrap_or_else(|e| panic!("{name}: describe {good}: {e}"));
    assert_eq!(topic.partition_count(), 3, "{name}: {topic:?}");
    assert_eq!(topic.id, good_created.topic_id, "{name}");
    assert!(!topic.is_internal);
    for p in &topic.partitions {
        assert!(p.has_leader(), "{name}: {p:?}");
        assert_eq!(p.replicas, [p.leader], "{name}: {p:?}");
        assert!(p.isr.contains(&p.leader), "{name}: {p:?}");
    }
    assert_eq!(
        code_of(&described[1].1),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{name}: {described:?}"
    );
    let listed = admin.list_topics().await.unwrap_or_else(|e| panic!("{name}: list: {e}"));
    assert!(listed.iter().any(|t| t.name == good) && listed.iter().any(|t| t.name == single), "{name}");
    assert!(!listed.iter().any(|t| t.name == missing), "{name}");
    if kind == BrokerKind::Kafka {
        assert!(!listed.iter().any(|t| t.name == bad), "{name}");
    }

    // More partitions: one success, one refusal, one unknown topic. tansu does not implement
    // CreatePartitions (its ApiVersions does not list key 37): every topic gets that error.
    let grown = admin.create_partitions(&[(&good, 5), (&single, 1), (&missing, 2)]).await;
    if kind == BrokerKind::Tansu {
        for (topic, result) in &grown {
            let e = result.as_ref().expect_err("tansu has no CreatePartitions");
            assert!(matches!(e.kind(), ErrorKind::UnsupportedVersion { .. }), "tansu: {topic}: {e:?}");
        }
    } else {
        assert!(grown[0].1.is_ok(), "{grown:?}");
        assert_eq!(code_of(&grown[1].1), Some(ErrorCode::INVALID_PARTITIONS), "{grown:?}");
        assert_eq!(code_of(&grown[2].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{grown:?}");
        eventually("five partitions", Duration::from_secs(15), || async {
            match admin.describe_topics(&[&good]).await.remove(0).1 {
                Ok(t) if t.partition_count() == 5 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    // Delete: one known, one unknown.
    let deleted = admin.delete_topics(&[&single, &missing]).await;
    assert!(deleted[0].1.is_ok(), "{name}: {deleted:?}");
    assert_eq!(code_of(&deleted[1].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{name}: {deleted:?}");
    eventually("the deleted topic gone", Duration::from_secs(15), || async {
        match admin.describe_topics(&[&single]).await.remove(0).1 {
            Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let cleanup = admin.delete_topics(&[&good, &existing]).await;
    assert!(cleanup.iter().all(|(_, r)| r.is_ok()), "{name}: {cleanup:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_topics() {
    topics_flow(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_admin_topics() {
    topics_flow(BrokerKind::Tansu).await;
}

async fn cluster_flow(kind: BrokerKind) {
    let name = kind.name();
    let broker = Broker::shared(kind);
    let admin = admin_for(kind).await;
    let cluster = admin.describe_cluster().await.unwrap_or_else(|e| panic!("{name}: describe cluster: {e}"));
    assert!(cluster.cluster_id.as_deref().is_some_and(|id| !id.is_empty()), "{name}: {cluster:?}");
    assert_eq!(cluster.brokers.len(), 1, "{name}: {cluster:?}");
    assert_eq!(cluster.brokers[0].port, broker.advertised_port(), "{name}: {cluster:?}");
    assert_eq!(cluster.controller, Some(cluster.brokers[0].node_id), "{name}: {cluster:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_describe_cluster() {
    cluster_flow(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_admin_describe_cluster() {
    cluster_flow(BrokerKind::Tansu).await;
}

async fn offsets_flow(kind: BrokerKind) {
    let name = kind.name();
    let broker = Broker::shared(kind);
    let admin = admin_for(kind).await;
    let topic = unique_topic("admin-offsets");
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    let created = admin.create_topics_with(&[NewTopic::new(&topic, 2, 1)], &options).await;
    assert!(created[0].1.is_ok(), "{name}: {created:?}");

    // Five records a second apart on partition 0, an hour ago; one on partition 1.
    let base = now_ms() - 3_600_000;
    let mut records: Vec<PeerRecord> = (0..5)
        .map(|i| PeerRecord::new(format!("k{i}"), "v").partition(0).timestamp(base + i * 1000))
        .collect();
    records.push(PeerRecord::new("k", "v").partition(1).timestamp(base + 500));
    let (bootstrap, produce_topic) = (broker.bootstrap(), topic.clone());
    let deliveries = tokio::task::spawn_blocking(move || {
        Peer::rdkafka().produce(&bootstrap, &produce_topic, &ProduceOptions::default(), &records)
    })
    .await
    .expect("the producing thread");
    assert_eq!(deliveries.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 0], "{name}");

    // Earliest of each partition, twice for partition 0 (two requests then), and a partition
    // that does not exist (retried a bounded number of times, then reported).
    let asked = [
        (topic.as_str(), 0, OffsetSpec::Earliest),
        (topic.as_str(), 1, OffsetSpec::Earliest),
        (topic.as_str(), 0, OffsetSpec::Earliest),
        (topic.as_str(), 9, OffsetSpec::Earliest),
    ];
    let listed = admin.list_offsets(&asked).await;
    assert_eq!(listed[0].0, (topic.clone(), 0));
    assert_eq!(listed[0].1.as_ref().map(|o| o.offset).ok(), Some(0), "{name}: {listed:?}");
    assert_eq!(listed[1].1.as_ref().map(|o| o.offset).ok(), Some(0), "{name}: {listed:?}");
    assert_eq!(listed[2].1.as_ref().map(|o| o.offset).ok(), Some(0), "{name}: {listed:?}");
    assert_eq!(code_of(&listed[3].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{name}: {listed:?}");

    if kind == BrokerKind::Tansu {
        // tansu (in-memory storage) answers "latest" with 1 after the five-record batch above
        // and every timestamp lookup with offset 0; it closes the connection on the
        // largest-timestamp lookup (-3) and on DeleteRecords, though it lists DeleteRecords
        // v0-2. What can be checked there: both end with a retriable error, in bounded time.
        let started = Instant::now();
        let max = admin.list_offsets(&[(&topic, 0, OffsetSpec::MaxTimestamp)]).await;
        assert!(max[0].1.as_ref().is_err_and(Error::is_retriable), "tansu: {max:?}");
        let deleted = admin.delete_records(&[(&topic, 0, 3)]).await;
        assert!(deleted[0].1.as_ref().is_err_and(Error::is_retriable), "tansu: {deleted:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "tansu: took {:?}", started.elapsed());
        return;
    }

    let asked = [
        (topic.as_str(), 0, OffsetSpec::Latest),
        (topic.as_str(), 0, OffsetSpec::Timestamp(base + 1500)),
        (topic.as_str(), 0, OffsetSpec::Timestamp(base + 10_000)),
        (topic.as_str(), 1, OffsetSpec::Latest),
        (topic.as_str(), 0, OffsetSpec::MaxTimestamp),
    ];
    let listed = admin.list_offsets(&asked).await;
    let offset = |i: usize| listed[i].1.as_ref().unwrap_or_else(|e| panic!("{:?}: {e}", asked[i])).offset;
    assert_eq!(offset(0), 5, "latest");
    assert_eq!(offset(1), 2, "first record at or after base + 1.5 s");
    assert_eq!(listed[1].1.as_ref().unwrap().timestamp, Some(base + 2000), "{listed:?}");
    assert_eq!(offset(2), -1, "no record that late");
    assert_eq!(offset(3), 1, "latest of partition 1");
    assert_eq!(offset(4), 4, "the largest timestamp");
    assert_eq!(listed[4].1.as_ref().unwrap().timestamp, Some(base + 4000), "{listed:?}");

    // Delete records: the log start moves; past the high watermark is refused.
    let deleted = admin.delete_records(&[(&topic, 0, 3), (&topic, 1, 5)]).await;
    assert_eq!(deleted[0].1.as_ref().ok(), Some(&3), "{deleted:?}");
    assert_eq!(code_of(&deleted[1].1), Some(ErrorCode::OFFSET_OUT_OF_RANGE), "{deleted:?}");
    let after =
        admin.list_offsets(&[(&topic, 0, OffsetSpec::Earliest), (&topic, 0, OffsetSpec::Latest)]).await;
    assert_eq!(after[0].1.as_ref().map(|o| o.offset).ok(), Some(3), "{after:?}");
    assert_eq!(after[1].1.as_ref().map(|o| o.offset).ok(), Some(5), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_offsets() {
    offsets_flow(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_admin_offsets() {
    offsets_flow(BrokerKind::Tansu).await;
}

async fn groups_flow(kind: BrokerKind) {
    let name = kind.name();
    let broker = Broker::shared(kind);
    let admin = admin_for(kind).await;
    let topic = unique_topic("admin-groups");
    let group = unique_topic("admin-group");
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    let created = admin.create_topics_with(&[NewTopic::new(&topic, 2, 1)], &options).await;
    assert!(created[0].1.is_ok(), "{name}: {created:?}");
    let records: Vec<PeerRecord> =
        (0..4).map(|i| PeerRecord::new(format!("k{i}"), "v").partition(i % 2)).collect();
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    tokio::task::spawn_blocking(move || {
        Peer::rdkafka().produce(&bootstrap, &t, &ProduceOptions::default(), &records)
    })
    .await
    .expect("the producing thread");

    // The peer stays in the group until nothing arrived for 20 s (it asks for more records
    // than there are), long enough to see it as a member.
    let consume = ConsumeOptions {
        idle_timeout: Duration::from_secs(20),
        from_beginning: true,
        group: Some(group.clone()),
        ..ConsumeOptions::default()
    };
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    let consumer =
        tokio::task::spawn_blocking(move || Peer::rdkafka().consume(&bootstrap, &t, 100, &consume));

    // tansu reports the member of a stable group but leaves its client id, host, metadata and
    // assignment empty, and the chosen protocol too; those are checked on Kafka only.
    let kafka = kind == BrokerKind::Kafka;
    let described = eventually("a stable group with one member", Duration::from_secs(60), || async {
        match admin.describe_consumer_groups(&[&group]).await.remove(0).1 {
            Ok(g)
                if g.state == "Stable"
                    && g.members.len() == 1
                    && (!kafka || g.members[0].assignment.is_some()) =>
            {
                Ok(g)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(described.group_id, group);
    assert_eq!(described.protocol_type, "consumer", "{name}: {described:?}");
    assert!(!described.members[0].member_id.is_empty(), "{name}: {described:?}");
    if kafka {
        assert!(!described.protocol.is_empty(), "the assignor is named: {described:?}");
        let member = &described.members[0];
        assert_eq!(member.client_id, "klamm-rdkafka-peer", "{member:?}");
        assert_eq!(member.subscription.as_ref().map(|s| s.topics.clone()), Some(vec![topic.clone()]));
        assert_eq!(member.assigned_partitions(), [(topic.clone(), 0), (topic.clone(), 1)], "{member:?}");

        // tansu's ListGroups leaves out groups that have members.
        let listed = admin.list_consumer_groups().await.unwrap_or_else(|e| panic!("list groups: {e}"));
        let listing = listed.iter().find(|g| g.group_id == group).unwrap_or_else(|| panic!("{listed:?}"));
        assert_eq!(listing.protocol_type, "consumer", "{listing:?}");
        assert_eq!(listing.state.as_deref(), Some("Stable"), "{listing:?}");
        assert_eq!(listing.coordinator, described.coordinator);
    }

    let consumed = consumer.await.expect("the consuming thread");
    assert_eq!(consumed.len(), 4, "{name}: {consumed:?}");
    // The member left; the group stays with its committed offsets.
    let after = eventually("an empty group", Duration::from_secs(30), || async {
        match admin.describe_consumer_groups(&[&group]).await.remove(0).1 {
            Ok(g) if g.state == "Empty" => Ok(g),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(after.members.is_empty(), "{name}: {after:?}");
    let listed = admin.list_consumer_groups().await.unwrap_or_else(|e| panic!("{name}: list groups: {e}"));
    assert!(listed.iter().any(|g| g.group_id == group), "{name}: {listed:?}");

    // A group nobody ever used: Kafka calls it dead, tansu empty.
    let unknown = unique_topic("admin-no-group");
    let described = admin.describe_consumer_groups(&[&unknown]).await;
    let dead = described[0].1.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(dead.state, if kafka { "Dead" } else { "Empty" }, "{name}: {dead:?}");
    assert!(dead.members.is_empty(), "{name}: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_groups() {
    groups_flow(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_admin_groups() {
    groups_flow(BrokerKind::Tansu).await;
}

/// With `metadata.max.age.ms` at 1 s, the client's cached topic picks up partitions added by
/// the admin without anyone asking for a refresh.
async fn metadata_timer_flow(kind: BrokerKind) {
    let name = kind.name();
    let config = ClientConfig::new(&Broker::shared(kind).bootstrap())
        .metadata_max_age(Duration::from_secs(1))
        .allow_auto_create_topics(false);
    let client = Client::connect(config).await.unwrap_or_else(|e| panic!("{name}: connect: {e}"));
    let admin = Admin::new(client.clone());
    let topic = unique_topic("admin-timer");
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    let created = admin.create_topics_with(&[NewTopic::new(&topic, 2, 1)], &options).await;
    assert!(created[0].1.is_ok(), "{name}: {created:?}");
    let cached = client.topic(&topic).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(cached.partition_count(), 2, "{name}");

    let grown = admin.create_partitions(&[(&topic, 4)]).await;
    assert!(grown[0].1.is_ok(), "{name}: {grown:?}");
    let started = Instant::now();
    eventually("the cache showing four partitions", Duration::from_secs(15), || async {
        match client.metadata().topic(&topic) {
            Some(t) if t.partition_count() == 4 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("{name}: the timer picked up the new partitions after {:?}", started.elapsed());
}

// Kafka only: tansu has no CreatePartitions, so nothing can change a topic's partition count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_refresh_on_a_timer() {
    metadata_timer_flow(BrokerKind::Kafka).await;
}
