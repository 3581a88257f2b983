//! The transactional producer against Apache Kafka 4.1, on transactions version 2 (KIP-890,
//! the 4.1 default: the shared broker) and version 1 (a broker formatted with
//! `transaction.version=1`): committed records are visible to read_committed consumers and
//! aborted ones are not (to Klamm's, librdkafka's and the Java client's consumers, while
//! read_uncommitted consumers see both); offsets sent to a transaction are committed for the
//! group only when it commits; a second producer with the same `transactional.id` fences the
//! first, whose open transaction writes nothing; and librdkafka's and Java's transactions read
//! back through Klamm's read_committed consumer.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use klamm::{
    Consumer, ConsumerConfig, ConsumerGroupMetadata, ConsumerRecord, IsolationLevel, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer, GroupProtocol};
use klamm_tests::{
    create_topic, unique_topic, Broker, BrokerKind, ConsumeOptions, Isolation, Peer, PeerRecord,
    ProduceOptions, Transaction,
};

/// A broker on transactions version 1, started once for the tests that need it.
fn v1_broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        Broker::builder(BrokerKind::Kafka)
            .feature("transaction.version=1")
            .start()
            .unwrap_or_else(|e| panic!("Kafka on transaction.version=1: {e}"))
    })
}

/// The broker of a transaction version: 2 is the 4.1 default (the shared broker).
fn broker(version: u8) -> &'static Broker {
    match version {
        1 => v1_broker(),
        _ => Broker::shared_kafka(),
    }
}

fn transactional(broker: &Broker, id: &str) -> Producer {
    let config = ProducerConfig::new(&broker.bootstrap())
        .transactional_id(id)
        .transaction_timeout(Duration::from_secs(30))
        .linger(Duration::from_millis(2));
    Producer::new(config).unwrap()
}

/// Every record of `topic` (partitions 0..`partitions`) that a consumer at `level` reads
/// until nothing more arrives for a moment, as values.
async fn read_all(broker: &Broker, topic: &str, partitions: i32, level: IsolationLevel) -> Vec<String> {
    let config = ConsumerConfig::new(&broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(level)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(config).unwrap();
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut got: Vec<ConsumerRecord> = Vec::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(1500) {
        let batch = consumer.poll(Duration::from_millis(200)).await.unwrap();
        if !batch.is_empty() {
            quiet_since = Instant::now();
        }
        got.extend(batch);
    }
    consumer.close(Duration::from_secs(5)).await.unwrap();
    let mut values: Vec<String> =
        got.iter().map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap()).collect();
    values.sort();
    values
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Sends `values` (keyed, so they spread over the partitions) in the open transaction and
/// returns their delivery results.
async fn send_all(
    producer: &Producer,
    topic: &str,
    values: &[String],
) -> Vec<Result<klamm::RecordMetadata, klamm::Error>> {
    let mut deliveries = Vec::new();
    for v in values {
        deliveries.push(producer.send(ProducerRecord::new(topic, v.clone()).key(v.clone())).await.unwrap());
    }
    let mut out = Vec::new();
    for d in deliveries {
        out.push(d.await);
    }
    out
}

async fn commit_and_abort(version: u8) {
    let broker = broker(version);
    let topic = unique_topic(&format!("txn-v{version}"));
    create_topic(broker, &topic, 3).await;
    let producer = transactional(broker, &unique_topic("txn-id"));
    producer.init_transactions().await.unwrap();
    assert_eq!(producer.transaction_version(), Some(version));

    let aborted = values("aborted", 6);
    producer.begin_transaction().unwrap();
    for r in send_all(&producer, &topic, &aborted).await {
        r.unwrap();
    }
    producer.abort_transaction().await.unwrap();

    let committed = values("committed", 6);
    producer.begin_transaction().unwrap();
    let sent = send_all(&producer, &topic, &committed).await;
    producer.commit_transaction().await.unwrap();
    for r in sent {
        r.unwrap();
    }
    // A transaction with nothing in it commits too.
    producer.begin_transaction().unwrap();
    producer.commit_transaction().await.unwrap();
    // And a third after an empty one.
    let more = values("more", 3);
    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &more).await;
    producer.commit_transaction().await.unwrap();

    let visible = sorted(committed.iter().chain(&more).cloned().collect());
    assert_eq!(read_all(broker, &topic, 3, IsolationLevel::ReadCommitted).await, visible);
    let all = sorted(aborted.iter().chain(&committed).chain(&more).cloned().collect());
    assert_eq!(read_all(broker, &topic, 3, IsolationLevel::ReadUncommitted).await, all);
    producer.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_commit_is_visible_abort_is_not() {
    commit_and_abort(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_commit_is_visible_abort_is_not() {
    commit_and_abort(1).await;
}

/// The offsets `group` committed for partition 0 of `topic`, as librdkafka reads them.
async fn committed_offset(broker: &Broker, group: &str, topic: &str) -> Option<i64> {
    let (bootstrap, group, topic) = (broker.bootstrap(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let offsets = Peer::rdkafka().committed(&bootstrap, &group, &topic);
        offsets.iter().find(|o| o.partition == 0).and_then(|o| o.offset)
    })
    .await
    .unwrap()
}

async fn offsets_follow_the_transaction(version: u8) {
    let broker = broker(version);
    let topic = unique_topic(&format!("txn-offsets-v{version}"));
    let output = unique_topic(&format!("txn-offsets-out-v{version}"));
    create_topic(broker, &topic, 1).await;
    create_topic(broker, &output, 1).await;
    let group = unique_topic("txn-group");
    let metadata = ConsumerGroupMetadata::new(group.as_str());
    let producer = transactional(broker, &unique_topic("txn-offsets-id"));
    producer.init_transactions().await.unwrap();

    producer.begin_transaction().unwrap();
    send_all(&producer, &output, &values("a", 2)).await;
    producer.send_offsets_to_transaction([(topic.as_str(), 0, 5)], &metadata).await.unwrap();
    producer.abort_transaction().await.unwrap();
    assert_eq!(committed_offset(broker, &group, &topic).await, None, "aborted offsets are not committed");

    producer.begin_transaction().unwrap();
    send_all(&producer, &output, &values("c", 2)).await;
    producer.send_offsets_to_transaction([(topic.as_str(), 0, 7)], &metadata).await.unwrap();
    producer.commit_transaction().await.unwrap();
    assert_eq!(committed_offset(broker, &group, &topic).await, Some(7));
    producer.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_offsets_commit_only_with_the_transaction() {
    offsets_follow_the_transaction(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_offsets_commit_only_with_the_transaction() {
    offsets_follow_the_transaction(1).await;
}

async fn zombie_is_fenced(version: u8) {
    let broker = broker(version);
    let topic = unique_topic(&format!("txn-zombie-v{version}"));
    create_topic(broker, &topic, 2).await;
    let id = unique_topic("txn-zombie-id");
    let zombie = transactional(broker, &id);
    zombie.init_transactions().await.unwrap();
    zombie.begin_transaction().unwrap();
    send_all(&zombie, &topic, &values("zombie", 4)).await;

    // The new instance fences the old one and aborts its open transaction.
    let fresh = transactional(broker, &id);
    fresh.init_transactions().await.unwrap();

    let late = zombie.send(ProducerRecord::new(topic.as_str(), "zombie-late").key("zombie-late")).await;
    let commit = match late {
        Ok(_) => zombie.commit_transaction().await,
        Err(e) => Err(e),
    };
    let e = commit.expect_err("the fenced producer's commit must fail");
    assert!(e.is_fatal(), "a fenced producer's call must fail as fatal: {e}");
    assert!(e.is_fenced(), "{e}");
    let again = zombie.begin_transaction();
    assert!(again.is_err_and(|e| e.is_fatal()), "the fenced producer stays fenced");

    fresh.begin_transaction().unwrap();
    let good = values("fresh", 3);
    send_all(&fresh, &topic, &good).await;
    fresh.commit_transaction().await.unwrap();
    assert_eq!(read_all(broker, &topic, 2, IsolationLevel::ReadCommitted).await, good);
    fresh.close(Duration::from_secs(5)).await;
    zombie.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_zombie_is_fenced_and_writes_nothing() {
    zombie_is_fenced(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_zombie_is_fenced_and_writes_nothing() {
    zombie_is_fenced(1).await;
}

/// Klamm's aborted transaction is invisible to librdkafka's and the Java client's
/// read_committed consumers and visible to their read_uncommitted ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_read_klamm_transactions() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("txn-peers-read");
    create_topic(broker, &topic, 2).await;
    let producer = transactional(broker, &unique_topic("txn-peers-id"));
    producer.init_transactions().await.unwrap();
    let (aborted, committed) = (values("aborted", 4), values("committed", 4));
    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &aborted).await;
    producer.abort_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &committed).await;
    producer.commit_transaction().await.unwrap();
    producer.close(Duration::from_secs(5)).await;

    let all = sorted(aborted.iter().chain(&committed).cloned().collect());
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    let (want_committed, want_all) = (committed.clone(), all.clone());
    tokio::task::spawn_blocking(move || {
        for peer in [Peer::rdkafka(), Peer::java()] {
            for (isolation, want) in
                [(Isolation::ReadCommitted, &want_committed), (Isolation::ReadUncommitted, &want_all)]
            {
                let options = ConsumeOptions {
                    idle_timeout: Duration::from_secs(3),
                    isolation: Some(isolation),
                    ..ConsumeOptions::default()
                };
                let got = peer.consume(&bootstrap, &t, 100, &options);
                let got = sorted(
                    got.iter().map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()).collect(),
                );
                assert_eq!(&got, want, "{} {isolation:?}", peer.name());
            }
        }
    })
    .await
    .unwrap();
}

/// librdkafka's and Java's transactions, committed and aborted, read through Klamm's
/// read_committed consumer: exactly the committed records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klamm_reads_peer_transactions() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("txn-peers-write");
    create_topic(broker, &topic, 1).await;
    let make = |tag: &str| -> Vec<PeerRecord> {
        (0..3).map(|i| PeerRecord::new(format!("{tag}{i}"), format!("{tag}-{i}")).partition(0)).collect()
    };
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    let want = tokio::task::spawn_blocking(move || {
        let mut want = Vec::new();
        for peer in [Peer::rdkafka(), Peer::java()] {
            let txn = |end| ProduceOptions { transaction: Some(end), ..Default::default() };
            let (aborted, committed) =
                (make(&format!("{}-aborted", peer.name())), make(&format!("{}-committed", peer.name())));
            peer.produce(&bootstrap, &t, &txn(Transaction::Abort), &aborted);
            peer.produce(&bootstrap, &t, &txn(Transaction::Commit), &committed);
            want.extend(committed.iter().map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()));
        }
        sorted(want)
    })
    .await
    .unwrap();
    assert_eq!(read_all(broker, &topic, 1, IsolationLevel::ReadCommitted).await, want);
    assert_eq!(read_all(broker, &topic, 1, IsolationLevel::ReadUncommitted).await.len(), 12);
}

/// Exactly-once consume-process-produce: a group member reads, a transactional producer writes
/// the results and commits the member's offsets with its group metadata; offsets sent with a
/// generation the member is not in are refused (KIP-447) and only abort remains.
async fn consume_process_produce(version: u8, protocol: GroupProtocol) {
    let broker = broker(version);
    let input = unique_topic(&format!("txn-eos-in-v{version}"));
    let output = unique_topic(&format!("txn-eos-out-v{version}"));
    create_topic(broker, &input, 2).await;
    create_topic(broker, &output, 2).await;
    klamm_tests::produce_keyed(broker, &input, 20).await;
    let group = unique_topic("txn-eos-group");
    let config = GroupConfig::new(&broker.bootstrap(), &group)
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(500))
        .group_protocol(protocol)
        .consumer(|c| c.auto_offset_reset(OffsetReset::Earliest).fetch_max_wait(Duration::from_millis(100)));
    let mut consumer = GroupConsumer::new(config).unwrap();
    consumer.subscribe([input.as_str()]);
    let mut got: Vec<ConsumerRecord> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 20 && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(got.len(), 20, "the member read the input");
    let metadata = consumer.group_metadata();
    assert_eq!(metadata.group_id, group);
    assert!(metadata.generation_id >= 1 && !metadata.member_id.is_empty(), "{metadata:?}");

    let mut next: Vec<(String, i32, i64)> = Vec::new();
    for r in &got {
        match next.iter_mut().find(|(_, p, _)| *p == r.partition) {
            Some(entry) => entry.2 = entry.2.max(r.offset + 1),
            None => next.push((r.topic.to_string(), r.partition, r.offset + 1)),
        }
    }
    let producer = transactional(broker, &unique_topic("txn-eos-id"));
    producer.init_transactions().await.unwrap();

    // A zombie's offsets: a generation the member is not in.
    producer.begin_transaction().unwrap();
    let stale = metadata.clone().generation_id(metadata.generation_id + 5);
    let e = producer.send_offsets_to_transaction(next.clone(), &stale).await.unwrap_err();
    assert!(e.is_abortable(), "{e}");
    assert!(producer.commit_transaction().await.unwrap_err().is_abortable());
    producer.abort_transaction().await.unwrap();

    producer.begin_transaction().unwrap();
    let results: Vec<String> =
        got.iter().map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).to_uppercase()).collect();
    send_all(&producer, &output, &results).await;
    // What the member handed out, with each record's leader epoch: the same offsets.
    let offsets = consumer.transaction_offsets();
    let mut found: Vec<(String, i32, i64)> =
        offsets.iter().map(|o| (o.partition.topic.to_string(), o.partition.partition, o.offset)).collect();
    found.sort();
    next.sort();
    assert_eq!(found, next);
    producer.send_offsets_to_transaction(offsets, &consumer.group_metadata()).await.unwrap();
    producer.commit_transaction().await.unwrap();
    consumer.close(Duration::from_secs(5)).await.unwrap();

    assert_eq!(read_all(broker, &output, 2, IsolationLevel::ReadCommitted).await, sorted(results));
    let (bootstrap, g, t) = (broker.bootstrap(), group.clone(), input.clone());
    let committed =
        tokio::task::spawn_blocking(move || Peer::rdkafka().committed(&bootstrap, &g, &t)).await.unwrap();
    let total: i64 = committed.iter().filter_map(|o| o.offset).sum();
    assert_eq!(total, 20, "the group's offsets are those of the committed transaction: {committed:?}");
    producer.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_consume_process_produce_with_group_metadata() {
    consume_process_produce(2, GroupProtocol::Classic).await;
}

/// The same with the consumer group protocol (KIP-848): the generation is the member epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_consume_process_produce_with_the_consumer_protocol() {
    consume_process_produce(2, GroupProtocol::Consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_consume_process_produce_with_group_metadata() {
    consume_process_produce(1, GroupProtocol::Classic).await;
}

/// A record the broker refuses (larger than the topic's `max.message.bytes`) makes the
/// transaction abortable: the commit fails at once with an abortable error and writes nothing,
/// the abort succeeds, and the next transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_record_makes_the_transaction_abortable() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("txn-abortable");
    let client = klamm::Client::new(klamm::ClientConfig::new(&broker.bootstrap())).unwrap();
    let admin = klamm::Admin::new(client.clone());
    let small = klamm::NewTopic::new(topic.as_str(), 1, 1).config("max.message.bytes", "2000");
    for (name, result) in admin.create_topics(&[small]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    client.close().await;
    let producer = transactional(broker, &unique_topic("txn-abortable-id"));
    producer.init_transactions().await.unwrap();

    producer.begin_transaction().unwrap();
    let fine = producer.send(ProducerRecord::new(topic.as_str(), "fine")).await.unwrap();
    let big = producer.send(ProducerRecord::new(topic.as_str(), vec![b'x'; 10_000])).await.unwrap();
    assert!(big.await.is_err(), "the broker refuses the large record");
    let _ = fine.await;
    let started = Instant::now();
    let e = producer.commit_transaction().await.unwrap_err();
    assert!(e.is_abortable() && !e.is_fatal(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "the commit failed at once");
    let later = producer.send(ProducerRecord::new(topic.as_str(), "later")).await;
    assert!(later.is_err_and(|e| e.is_abortable()), "nothing more is sent in a failed transaction");
    producer.abort_transaction().await.unwrap();

    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &values("next", 2)).await;
    producer.commit_transaction().await.unwrap();
    assert_eq!(read_all(broker, &topic, 1, IsolationLevel::ReadCommitted).await, values("next", 2));
    producer.close(Duration::from_secs(5)).await;
}

/// The `transactional-copy` example on one broker: a first run copies what the input holds
/// in transactions of at most `--commit-every` records and stops when idle; a second run,
/// with `--count`, resumes from the offsets the first one committed and copies only the new
/// records. librdkafka's and Java's read_committed consumers read each input record in the
/// output exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_copy_copies_once_and_resumes() {
    let broker = Broker::shared_kafka();
    let (input, output) = (unique_topic("txn-copy-in"), unique_topic("txn-copy-out"));
    create_topic(broker, &input, 3).await;
    create_topic(broker, &output, 3).await;
    klamm_tests::produce_keyed(broker, &input, 1500).await;
    let (group, id) = (unique_topic("txn-copy-group"), unique_topic("txn-copy-id"));
    let bootstrap = broker.bootstrap();
    let run = |extra: &'static [&'static str]| {
        let (bootstrap, input, output, group, id) =
            (bootstrap.clone(), input.clone(), output.clone(), group.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let mut flags = vec!["--commit-every", "200", "--timeout-ms", "3000"];
            // Routed: the first to the consumer only, the second to the producer only.
            flags.extend(["--property", "session.timeout.ms=10000", "--property", "producer.linger.ms=5"]);
            flags.extend_from_slice(extra);
            let exit = klamm_tests::Copier::start("copy", &bootstrap, &input, &output, &group, &id, &flags)
                .wait(Duration::from_secs(90));
            assert!(exit.status.success(), "the copier failed: {}", exit.stderr);
            exit.summary().unwrap_or_else(|| panic!("no summary line: {}", exit.stdout))
        })
    };
    let (copied, committed, aborted) = run(&[]).await.unwrap();
    assert_eq!((copied, aborted), (1500, 0));
    assert!(committed >= 8, "at most 200 records a transaction: {committed} transactions");

    klamm_tests::produce_keyed(broker, &input, 300).await;
    let (copied, _, aborted) = run(&["--count", "300"]).await.unwrap();
    assert_eq!((copied, aborted), (300, 0), "the second run copies only the new records");

    let (bootstrap, input, output) = (broker.bootstrap(), input.clone(), output.clone());
    tokio::task::spawn_blocking(move || {
        let quick = |isolation| ConsumeOptions {
            idle_timeout: Duration::from_secs(3),
            isolation: Some(isolation),
            ..ConsumeOptions::default()
        };
        let sources = Peer::rdkafka().consume(&bootstrap, &input, 1800, &quick(Isolation::ReadUncommitted));
        assert_eq!(sources.len(), 1800);
        for peer in [Peer::rdkafka(), Peer::java()] {
            let copies = peer.consume(&bootstrap, &output, 1801, &quick(Isolation::ReadCommitted));
            let defects = klamm_tests::copy_defects(&sources, &copies);
            assert!(defects.is_empty(), "{} read_committed: {defects:?}", peer.name());
        }
    })
    .await
    .unwrap();
}

/// `Admin::list_offsets_isolated`: while a transaction holds written records, read_committed's
/// latest offset (the last stable offset) stays below the high watermark; once it commits, the
/// two meet past the commit marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_stable_offset_waits_for_an_open_transaction() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("txn-lso");
    create_topic(broker, &topic, 1).await;
    let admin = klamm::Admin::connect(klamm::ClientConfig::new(&broker.bootstrap())).await.unwrap();
    let latest = |isolation: IsolationLevel| {
        let (admin, topic) = (admin.clone(), topic.clone());
        async move {
            let listed = admin
                .list_offsets_isolated(&[(topic.as_str(), 0, klamm::OffsetSpec::Latest)], isolation)
                .await;
            listed[0].1.as_ref().unwrap().offset
        }
    };
    let producer = transactional(broker, &unique_topic("txn-lso-id"));
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    for r in send_all(&producer, &topic, &values("open", 5)).await {
        r.unwrap();
    }
    assert_eq!(latest(IsolationLevel::ReadUncommitted).await, 5);
    assert_eq!(
        latest(IsolationLevel::ReadCommitted).await,
        0,
        "the open transaction's records are not stable"
    );
    producer.commit_transaction().await.unwrap();
    // The commit marker takes offset 5; the coordinator writes it once the commit is decided,
    // which may be after the commit returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (high, stable) =
            (latest(IsolationLevel::ReadUncommitted).await, latest(IsolationLevel::ReadCommitted).await);
        if (high, stable) == (6, 6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "high watermark {high}, last stable offset {stable} after the commit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    producer.close(Duration::from_secs(5)).await;
}
