//! What a new user meets when something is wrong, against the real broker: a partition
//! consumer or a group consumer pointed at an address where no broker listens, or at a topic
//! that does not exist. Each case checks what the user sees (a WARN log at once, naming the
//! address or the topic; then a retriable error from `poll` after the configured bound) and
//! within how long. The `consume` and `group-consume` examples, run as programs, must print a
//! line on stderr naming the address or the topic within 30 s.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use klamm::protocol::api::join_group::JoinGroupResponse;
use klamm::protocol::api::metadata::MetadataResponse;
use klamm::protocol::{decode_response, encode_response, ApiKey};
use klamm::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, Error, ErrorCode, ErrorKind, NewTopic,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer};
use klamm_tests::{
    example_binary, free_port, unique_topic, Broker, BrokerKind, FaultProxy, FrameHook, GroupMember,
};

/// How much later than its bound a report may come on a busy two-core machine.
const SLACK: Duration = Duration::from_secs(5);
/// The stall bound the tests configure (the default, 30 s, is what the examples show).
const BOUND: Duration = Duration::from_secs(4);

/// Every log line of the test process, for assertions on the warnings.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("klamm=warn,klamm_group=warn"))
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .init();
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(buf)?;
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits up to `within` for a WARN line that contains every one of `needles`.
async fn warned(needles: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains("WARN") && needles.iter().all(|n| l.contains(n)))
        {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no WARN line with {needles:?} within {within:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An address on 127.0.0.1 where nothing listens.
fn nowhere() -> String {
    format!("127.0.0.1:{}", free_port().expect("a free port"))
}

/// Polls until `poll` fails; returns the error and how long it took. Records are a failure.
async fn partition_poll_error(consumer: &mut Consumer, within: Duration) -> (Error, Duration) {
    let started = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)).await {
            Err(e) => return (e, started.elapsed()),
            Ok(records) => assert!(records.is_empty(), "records from nowhere: {records:?}"),
        }
        assert!(started.elapsed() < within, "poll returned nothing but empty batches for {within:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_consumer_at_an_address_without_a_broker_warns_then_fails_retriably() {
    logs();
    let addr = nowhere();
    let topic = unique_topic("nowhere");
    let config = ConsumerConfig::new(&addr).stall_timeout(BOUND);
    let mut consumer = Consumer::new(config).unwrap();
    consumer.assign([TopicPartition::new(topic.as_str(), 0)]);

    let started = Instant::now();
    let line = warned(&[&addr, &topic], Duration::from_secs(3)).await;
    eprintln!("warned after {:?}: {line}", started.elapsed());

    let (e, took) = partition_poll_error(&mut consumer, BOUND + SLACK).await;
    eprintln!("poll failed after {took:?}: {e}");
    assert!(took >= BOUND - Duration::from_millis(500), "reported before the bound: {took:?}");
    assert!(e.is_retriable(), "{e:?}");
    assert!(matches!(e.kind(), ErrorKind::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&addr) && text.contains(&format!("{topic}-0")), "{text}");

    // The warning is rate-limited: one per cause every 10 s, not one per retry.
    let text = String::from_utf8_lossy(&logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let warnings = text.lines().filter(|l| l.contains("WARN") && l.contains(&topic)).count();
    assert_eq!(warnings, 1, "{text}");

    // Polling on is what a user does with a retriable error: the report comes again one
    // bound later, not on every poll.
    let (again, took) = partition_poll_error(&mut consumer, BOUND + SLACK).await;
    assert!(took >= BOUND - Duration::from_millis(500), "reported again after {took:?}: {again}");
    consumer.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_consumer_of_a_missing_topic_warns_then_fails_with_unknown_topic() {
    logs();
    let broker = Broker::shared_kafka();
    let topic = unique_topic("missing");
    let mut config = ConsumerConfig::new(&broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .topic_metadata_propagation_max(BOUND);
    config.client = config.client.allow_auto_create_topics(false);
    let mut consumer = Consumer::new(config).unwrap();
    consumer.assign([TopicPartition::new(topic.as_str(), 0)]);

    let started = Instant::now();
    let line = warned(&[&topic, "does not exist"], Duration::from_secs(5)).await;
    eprintln!("warned after {:?}: {line}", started.elapsed());

    let (e, took) = partition_poll_error(&mut consumer, BOUND + SLACK).await;
    eprintln!("poll failed after {took:?}: {e}");
    assert!(e.is_retriable(), "{e:?}");
    assert_eq!(e.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{e:?}");
    assert!(e.to_string().contains(&topic), "{e}");
    consumer.close(Duration::from_secs(5)).await.unwrap();
}

/// A group member that joins within the tests' bounds.
fn group_config(bootstrap: &str, group: &str) -> GroupConfig {
    GroupConfig::new(bootstrap, group)
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(500))
        .consumer(|mut c| {
            c.client = c.client.allow_auto_create_topics(false);
            c.auto_offset_reset(OffsetReset::Earliest)
                .fetch_max_wait(Duration::from_millis(100))
                .stall_timeout(BOUND)
                .topic_metadata_propagation_max(BOUND)
        })
}

/// Polls until `poll` fails; returns the error and how long it took. Records are a failure.
async fn group_poll_error(consumer: &mut GroupConsumer, within: Duration) -> (Error, Duration) {
    let started = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)).await {
            Err(e) => return (e, started.elapsed()),
            Ok(records) => assert!(records.is_empty(), "records from nowhere: {records:?}"),
        }
        assert!(started.elapsed() < within, "poll returned nothing but empty batches for {within:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consumer_at_an_address_without_a_broker_warns_then_fails_retriably() {
    logs();
    let addr = nowhere();
    let group = unique_topic("nowhere-group");
    let mut consumer = GroupConsumer::new(group_config(&addr, &group)).unwrap();
    consumer.subscribe(["orders"]);

    let started = Instant::now();
    // The first poll starts the join; the warning comes from inside it.
    let line = {
        let needles = [addr.as_str(), group.as_str()];
        let polling = async {
            loop {
                let _ = consumer.poll(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            line = warned(&needles, Duration::from_secs(3)) => line,
            () = polling => unreachable!(),
        }
    };
    eprintln!("warned after {:?}: {line}", started.elapsed());

    let (e, took) = group_poll_error(&mut consumer, BOUND + SLACK).await;
    let took = took.max(started.elapsed());
    eprintln!("poll failed after {took:?}: {e}");
    assert!(e.is_retriable(), "{e:?}");
    assert!(matches!(e.kind(), ErrorKind::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&addr) && text.contains(&group), "{text}");
    assert!(took < BOUND + SLACK, "{took:?}");
    let _ = consumer.close(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consumer_of_a_missing_topic_warns_then_fails_then_reads_once_it_exists() {
    logs();
    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("missing-sub");
    let group = unique_topic("missing-sub-group");
    let mut consumer = GroupConsumer::new(group_config(&bootstrap, &group)).unwrap();
    consumer.subscribe([topic.as_str()]);

    let started = Instant::now();
    let line = {
        let needles = [topic.as_str(), "does not exist"];
        let polling = async {
            loop {
                let _ = consumer.poll(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            line = warned(&needles, Duration::from_secs(10)) => line,
            () = polling => unreachable!(),
        }
    };
    eprintln!("warned after {:?}: {line}", started.elapsed());

    let (e, took) = group_poll_error(&mut consumer, BOUND + SLACK).await;
    let took = took.max(started.elapsed());
    eprintln!("poll failed after {took:?}: {e}");
    assert!(e.is_retriable(), "{e:?}");
    assert_eq!(e.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{e:?}");
    assert!(e.to_string().contains(&topic), "{e}");
    assert!(took < Duration::from_secs(10) + BOUND + SLACK, "{took:?}");

    // The topic comes: the member gets its partitions and reads, with no restart.
    let client = Client::new(ClientConfig::new(&bootstrap)).unwrap();
    let created = Admin::new(client.clone()).create_topics(&[NewTopic::new(topic.as_str(), 2, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");
    let producer = Producer::with_client(client.clone(), ProducerConfig::new(&bootstrap)).unwrap();
    producer.send(ProducerRecord::new(topic.as_str(), "hello")).await.unwrap().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        assert!(Instant::now() < deadline, "nothing read within 30 s of the topic's creation");
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) if !records.is_empty() => break records[0].clone(),
            Ok(_) => {}
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
    producer.close(Duration::from_secs(5)).await;
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

/// Runs an example program until a stderr line contains `needle` (or `within` passes);
/// returns the line and when it came. The program is killed after.
fn example_says(
    package: &str,
    name: &str,
    args: &[&str],
    needle: &str,
    within: Duration,
) -> (String, Duration) {
    let binary = example_binary(package, name);
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send((line, started.elapsed())).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        let left = within.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((line, at)) if line.contains(needle) => break Some((line, at)),
            Ok((line, _)) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| {
        panic!("{name} printed no line naming {needle:?} within {within:?}; it printed {seen:#?}")
    })
}

/// What the issue asks of the examples: a line on stderr naming the problem within 30 s.
const EXAMPLE_BOUND: Duration = Duration::from_secs(30);

#[test]
fn the_consume_example_names_an_address_without_a_broker() {
    let addr = nowhere();
    let (line, at) =
        example_says("klamm", "consume", &["--brokers", &addr, "--topic", "orders"], &addr, EXAMPLE_BOUND);
    eprintln!("after {at:?}: {line}");
}

#[test]
fn the_consume_example_names_a_missing_topic() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("example-missing");
    let (line, at) = example_says(
        "klamm",
        "consume",
        &["--brokers", &broker.bootstrap(), "--topic", &topic],
        &topic,
        EXAMPLE_BOUND,
    );
    eprintln!("after {at:?}: {line}");
    assert!(line.contains("UNKNOWN_TOPIC_OR_PARTITION") || line.contains("does not exist"), "{line}");
}

#[test]
fn the_group_consume_example_names_an_address_without_a_broker() {
    let addr = nowhere();
    let group = unique_topic("example-group");
    let args =
        ["--brokers", addr.as_str(), "--topic", "orders", "--group", group.as_str(), "--timeout-ms", "60000"];
    let (line, at) = example_says("klamm-group", "group-consume", &args, &addr, EXAMPLE_BOUND);
    eprintln!("after {at:?}: {line}");
}

#[test]
fn the_group_consume_example_names_a_missing_topic() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("example-missing-sub");
    let group = unique_topic("example-group");
    let bootstrap = broker.bootstrap();
    let args = ["--brokers", bootstrap.as_str(), "--topic", topic.as_str(), "--group", group.as_str()];
    let (line, at) = example_says("klamm-group", "group-consume", &args, &topic, EXAMPLE_BOUND);
    eprintln!("after {at:?}: {line}");
    assert!(line.contains("does not exist"), "{line}");
    // The member created nothing by subscribing (allow.auto.create.topics=false by default).
    let member = GroupMember::start("check", &bootstrap, &topic, &group, &["--timeout-ms", "1000"]);
    drop(member);
}

/// Creates `topic` with `partitions` and writes `count` records spread over them by key.
async fn topic_with_records(bootstrap: &str, topic: &str, partitions: i32, count: usize) {
    let client = Client::new(ClientConfig::new(bootstrap)).unwrap();
    let created = Admin::new(client.clone()).create_topics(&[NewTopic::new(topic, partitions, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");
    let producer = Producer::with_client(client.clone(), ProducerConfig::new(bootstrap)).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("v{i}")).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(5)).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_stream_read_in_chunks_commits_through_a_committer_and_a_dropped_stream_loses_nothing() {
    use futures::StreamExt;
    use std::collections::BTreeMap;

    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("stream-commit");
    let group = unique_topic("stream-commit-group");
    topic_with_records(&bootstrap, &topic, 3, 60).await;
    let mut consumer = GroupConsumer::new(group_config(&bootstrap, &group)).unwrap();
    consumer.subscribe([topic.as_str()]);

    // One record from a stream, then the stream is dropped with the rest of its batch.
    let first = {
        let mut stream = consumer.stream();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let next =
                tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("a record in 30 s");
            match next.expect("the stream goes on") {
                Ok(record) => break record,
                Err(e) if e.is_retriable() => eprintln!("stream: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let mut read: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    read.entry(first.partition).or_default().push(first.offset);

    // The natural loop: chunks from the stream, each committed through a committer.
    let committer = consumer.committer();
    {
        let mut batches = consumer.stream().ready_chunks(25);
        let deadline = Instant::now() + Duration::from_secs(30);
        while read.values().map(Vec::len).sum::<usize>() < 60 {
            let batch = tokio::time::timeout_at(deadline.into(), batches.next())
                .await
                .unwrap_or_else(|_| panic!("read {read:?} in 30 s"))
                .expect("the stream goes on");
            let records: Vec<_> = batch.into_iter().filter_map(Result::ok).collect();
            for r in &records {
                read.entry(r.partition).or_default().push(r.offset);
            }
            committer.commit_records(&records).await.expect("commit");
        }
    }
    // Every record once, in order per partition: nothing the first stream held was lost.
    for (p, offsets) in &read {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {p}");
    }
    assert_eq!(read.len(), 3, "{read:?}");
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(topic.as_str(), p)).collect();
    let committed = consumer.committed(&partitions).await.unwrap();
    for tp in &partitions {
        let ends = read[&tp.partition].len() as i64;
        assert_eq!(committed[tp].as_ref().map(|n| n.offset()), Some(ends), "{tp}: {committed:?}");
    }
    // And the committer's commit_consumed agrees with what the streams yielded.
    committer.commit_consumed().await.unwrap();
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[test]
fn a_misspelled_property_fails_at_once_with_a_hint_in_the_examples() {
    let addr = nowhere();
    let (line, at) = example_says(
        "klamm-group",
        "group-consume",
        &["--brokers", &addr, "--topic", "t", "--group", "g", "--property", "session.timout.ms=10000"],
        "did you mean",
        Duration::from_secs(5),
    );
    assert!(line.contains(r#""session.timout.ms"; did you mean "session.timeout.ms"?"#), "{line}");
    let (line, _) = example_says(
        "klamm",
        "consume",
        &["--brokers", &addr, "--topic", "t", "--property", "fetch.max.wait=100"],
        "did you mean",
        Duration::from_secs(5),
    );
    assert!(line.contains(r#"did you mean "fetch.max.wait.ms"?"#), "{line}");
    eprintln!("after {at:?}: {line}");
}

#[test]
fn the_group_consume_example_reports_an_unreachable_broker_as_an_error_after_the_default_bound() {
    let addr = nowhere();
    let group = unique_topic("example-default-bound");
    let args =
        ["--brokers", addr.as_str(), "--topic", "orders", "--group", group.as_str(), "--timeout-ms", "90000"];
    // The error `poll` returns (which the example prints and goes on) comes after
    // klamm.stall.timeout.ms, 30 s by default, not before.
    let (line, at) = example_says(
        "klamm-group",
        "group-consume",
        &args,
        "keeps retrying",
        Duration::from_secs(30) + SLACK,
    );
    eprintln!("after {at:?}: {line}");
    assert!(at >= Duration::from_secs(29), "reported after {at:?}: {line}");
    assert!(line.starts_with("group-consume: cannot connect to") && line.contains(&addr), "{line}");
}

/// Answers every JoinGroup with COORDINATOR_LOAD_IN_PROGRESS: a coordinator that never lets
/// the member in, while every other request goes through.
#[derive(Default)]
struct RefuseJoins {
    /// (connection, correlation id) -> version of the JoinGroup requests in flight.
    joins: Mutex<std::collections::HashMap<(usize, i32), i16>>,
}

impl FrameHook for RefuseJoins {
    fn request(&self, connection: usize, frame: &Bytes) {
        if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::JOIN_GROUP.0 {
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            self.joins.lock().unwrap().insert((connection, id), version);
        }
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        if frame.len() < 4 {
            return frame;
        }
        let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let Some(version) = self.joins.lock().unwrap().remove(&(connection, id)) else { return frame };
        let (_, mut body) = decode_response::<JoinGroupResponse>(frame, version).unwrap();
        body.error_code = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code();
        let mut out = BytesMut::new();
        encode_response(&mut out, id, version, &body).unwrap();
        out.freeze().slice(4..)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_never_becomes_stable_is_reported_with_the_coordinators_answer() {
    logs();
    let hook = Arc::new(RefuseJoins::default());
    let (proxy, _broker) = tokio::task::spawn_blocking({
        let hook = Arc::clone(&hook) as Arc<dyn FrameHook>;
        move || {
            let proxy = FaultProxy::bind_with(vec![hook]).unwrap();
            let broker = proxy.start_broker(Broker::builder(BrokerKind::Kafka)).unwrap();
            (proxy, broker)
        }
    })
    .await
    .unwrap();
    let bootstrap = proxy.bootstrap();
    let topic = unique_topic("unstable");
    let group = unique_topic("unstable-group");
    let client = Client::new(ClientConfig::new(&bootstrap)).unwrap();
    let created = Admin::new(client.clone()).create_topics(&[NewTopic::new(topic.as_str(), 1, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");
    client.close().await;

    let mut consumer = GroupConsumer::new(group_config(&bootstrap, &group)).unwrap();
    consumer.subscribe([topic.as_str()]);
    let started = Instant::now();
    let (e, took) = group_poll_error(&mut consumer, BOUND + SLACK).await;
    eprintln!("poll failed after {took:?}: {e}");
    assert!(took >= BOUND - Duration::from_millis(500), "{took:?}");
    assert!(e.is_retriable(), "{e:?}");
    assert_eq!(e.code(), Some(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS), "{e:?}");
    assert!(e.to_string().contains(&group) && e.to_string().contains("not joined"), "{e}");
    // Warned before the error, once half the bound had passed.
    let line = warned(&[&group, "COORDINATOR_LOAD_IN_PROGRESS"], Duration::ZERO).await;
    eprintln!("warned: {line}");
    assert!(started.elapsed() < BOUND + SLACK);
    let _ = consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_poll_cancelled_by_select_again_and_again_loses_nothing() {
    use std::collections::BTreeMap;

    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cancelled-polls");
    let group = unique_topic("cancelled-polls-group");
    topic_with_records(&bootstrap, &topic, 3, 300).await;
    let mut consumer =
        GroupConsumer::new(group_config(&bootstrap, &group).consumer(|c| c.max_poll_records(7))).unwrap();
    consumer.subscribe([topic.as_str()]);

    // Every poll races a timer of a few milliseconds: most are dropped part way, during the
    // join, the assignment's offset lookups and the fetches.
    let mut read: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let (mut cancelled, mut completed) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = 1;
    while read.values().map(Vec::len).sum::<usize>() < 300 {
        assert!(
            Instant::now() < deadline,
            "read {:?} in 60 s",
            read.iter().map(|(p, o)| (p, o.len())).collect::<Vec<_>>()
        );
        tokio::select! {
            polled = consumer.poll(Duration::from_secs(10)) => {
                completed += 1;
                match polled {
                    Ok(records) => {
                        for r in records {
                            read.entry(r.partition).or_default().push(r.offset);
                        }
                    }
                    Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
                    Err(e) => panic!("{e}"),
                }
            }
            () = tokio::time::sleep(Duration::from_millis(delay)) => cancelled += 1,
        }
        delay = delay % 9 + 1;
    }
    eprintln!("{cancelled} polls cancelled, {completed} completed");
    assert!(cancelled > 10, "the test cancelled only {cancelled} polls");
    for (p, offsets) in &read {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {p}: every record once, in order");
    }
    assert_eq!(read.len(), 3);
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

/// Answers every Metadata request about `topic` with TOPIC_AUTHORIZATION_FAILED, as a broker
/// whose ACLs deny this client Describe on it does. (The broker's own authorizer would need
/// ACLs made with CreateAcls, which Klamm does not implement yet; the client sees the same
/// answer either way.)
struct DenyTopic {
    topic: String,
    requests: Mutex<std::collections::HashMap<(usize, i32), i16>>,
}

impl FrameHook for DenyTopic {
    fn request(&self, connection: usize, frame: &Bytes) {
        if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::METADATA.0 {
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            self.requests.lock().unwrap().insert((connection, id), version);
        }
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        if frame.len() < 4 {
            return frame;
        }
        let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let Some(version) = self.requests.lock().unwrap().remove(&(connection, id)) else { return frame };
        let (_, mut body) = decode_response::<MetadataResponse>(frame, version).unwrap();
        for t in &mut body.topics {
            if t.name.as_deref() == Some(self.topic.as_str()) {
                t.error_code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
                t.partitions.clear();
            }
        }
        let mut out = BytesMut::new();
        encode_response(&mut out, id, version, &body).unwrap();
        out.freeze().slice(4..)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_client_may_not_see_fails_both_consumers_at_once_and_for_good() {
    logs();
    let topic = unique_topic("denied");
    let hook = Arc::new(DenyTopic { topic: topic.clone(), requests: Mutex::default() });
    let (proxy, broker) = tokio::task::spawn_blocking({
        let hook = Arc::clone(&hook) as Arc<dyn FrameHook>;
        move || {
            let proxy = FaultProxy::bind_with(vec![hook]).unwrap();
            let broker = proxy.start_broker(Broker::builder(BrokerKind::Kafka)).unwrap();
            (proxy, broker)
        }
    })
    .await
    .unwrap();
    // The topic exists (CreateTopics is not refused); Metadata about it is.
    let _broker = broker;
    let client = Client::new(ClientConfig::new(&proxy.bootstrap())).unwrap();
    let created = Admin::new(client.clone()).create_topics(&[NewTopic::new(topic.as_str(), 1, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");
    client.close().await;
    let bootstrap = proxy.bootstrap();

    let mut consumer = Consumer::new(ConsumerConfig::new(&bootstrap).stall_timeout(BOUND)).unwrap();
    consumer.assign([TopicPartition::new(topic.as_str(), 0)]);
    let (e, took) = partition_poll_error(&mut consumer, Duration::from_secs(5)).await;
    eprintln!("partition consumer: failed after {took:?}: {e}");
    assert_eq!(e.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e:?}");
    assert!(!e.is_retriable(), "retrying does not help: {e:?}");
    assert!(e.to_string().contains(&topic), "{e}");
    consumer.close(Duration::from_secs(5)).await.unwrap();

    let group = unique_topic("denied-group");
    let mut member = GroupConsumer::new(group_config(&bootstrap, &group)).unwrap();
    member.subscribe([topic.as_str()]);
    let (e, took) = group_poll_error(&mut member, Duration::from_secs(5)).await;
    eprintln!("group consumer: failed after {took:?}: {e}");
    assert_eq!(e.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e:?}");
    assert!(!e.is_retriable(), "{e:?}");
    assert!(e.to_string().contains(&topic), "{e}");
    warned(&[&topic, "cannot use subscribed topic"], Duration::ZERO).await;
    let _ = member.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_poll_batch_cancelled_by_select_again_and_again_loses_nothing() {
    use std::collections::BTreeMap;

    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cancelled-batches");
    let group = unique_topic("cancelled-batches-group");
    topic_with_records(&bootstrap, &topic, 3, 300).await;
    let mut consumer =
        GroupConsumer::new(group_config(&bootstrap, &group).consumer(|c| c.max_poll_records(7))).unwrap();
    consumer.subscribe([topic.as_str()]);

    // Every poll races a timer of a few milliseconds: most are dropped part way, during the
    // join, the assignment's offset lookups and the fetches.
    let mut read: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let (mut cancelled, mut completed) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = 1;
    while read.values().map(Vec::len).sum::<usize>() < 300 {
        assert!(
            Instant::now() < deadline,
            "read {:?} in 60 s",
            read.iter().map(|(p, o)| (p, o.len())).collect::<Vec<_>>()
        );
        tokio::select! {
            polled = consumer.poll_batch(20, Duration::from_secs(10)) => {
                completed += 1;
                match polled {
                    Ok(records) => {
                        for r in records {
                            read.entry(r.partition).or_default().push(r.offset);
                        }
                    }
                    Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
                    Err(e) => panic!("{e}"),
                }
            }
            () = tokio::time::sleep(Duration::from_millis(delay)) => cancelled += 1,
        }
        delay = delay % 9 + 1;
    }
    eprintln!("{cancelled} polls cancelled, {completed} completed");
    assert!(cancelled > 10, "the test cancelled only {cancelled} polls");
    for (p, offsets) in &read {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {p}: every record once, in order");
    }
    assert_eq!(read.len(), 3);
    consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_consumer_read_as_a_stream_yields_the_stall_report_as_an_item_and_goes_on() {
    use futures::StreamExt;

    logs();
    let addr = nowhere();
    let topic = unique_topic("stream-nowhere");
    let mut consumer = Consumer::new(ConsumerConfig::new(&addr).stall_timeout(BOUND)).unwrap();
    consumer.assign([TopicPartition::new(topic.as_str(), 0)]);
    let started = Instant::now();
    for report in 1..=2 {
        let item =
            tokio::time::timeout(BOUND + SLACK, consumer.next()).await.expect("an item within the bound");
        let e = item.expect("the stream goes on").expect_err("no records from nowhere");
        let took = started.elapsed();
        eprintln!("report {report} after {took:?}: {e}");
        assert!(e.is_retriable() && e.to_string().contains(&addr), "{e}");
        assert!(took >= BOUND * report - Duration::from_millis(500), "report {report} after {took:?}");
    }
    consumer.close(Duration::from_secs(5)).await.unwrap();
}

/// A broker with Kafka's own authorizer (`StandardAuthorizer`, no ACLs, nothing allowed unless
/// granted) and a SASL PLAIN listener where `alice` is an ordinary user; the plaintext
/// listener, which the harness, the controller and the other brokers use, is a super user.
fn authorizing_broker() -> Broker {
    Broker::builder(BrokerKind::Kafka)
        .listener("SASL", "SASL_PLAINTEXT")
        .config("listener.name.sasl.sasl.enabled.mechanisms", "PLAIN")
        .config(
            "listener.name.sasl.plain.sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" user_alice=\"alice-secret\";",
        )
        .config("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
        .config("super.users", "User:ANONYMOUS")
        .config("allow.everyone.if.no.acl.found", "false")
        .start()
        .expect("a Kafka broker with an authorizer")
}

/// The same as [`a_topic_the_client_may_not_see_fails_both_consumers_at_once_and_for_good`],
/// against Kafka's real authorizer: a user without ACLs is refused the topic (and the group),
/// and both consumers say so at once, naming what was refused, as an error retrying cannot fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizer_that_refuses_the_user_fails_both_consumers_at_once_naming_what() {
    logs();
    let broker = tokio::task::spawn_blocking(authorizing_broker).await.unwrap();
    let topic = unique_topic("acl-denied");
    // Made as the super user, over the plaintext listener.
    let client = Client::new(ClientConfig::new(&broker.bootstrap())).unwrap();
    let created = Admin::new(client.clone()).create_topics(&[NewTopic::new(topic.as_str(), 1, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");
    client.close().await;
    let alice = broker.listener_addr("SASL");

    let mut config = ConsumerConfig::new(&alice).stall_timeout(BOUND);
    config.client = config.client.sasl_plain("alice", "alice-secret");
    let mut consumer = Consumer::new(config).unwrap();
    consumer.assign([TopicPartition::new(topic.as_str(), 0)]);
    let (e, took) = partition_poll_error(&mut consumer, Duration::from_secs(10)).await;
    eprintln!("partition consumer: failed after {took:?}: {e}");
    assert_eq!(e.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e:?}");
    assert!(!e.is_retriable(), "retrying does not help: {e:?}");
    assert!(e.to_string().contains(&topic), "{e}");
    assert!(took < BOUND, "the refusal waited for the stall bound: {took:?}");
    consumer.close(Duration::from_secs(5)).await.unwrap();

    // The group member is refused the group or the topic, whichever the broker checks first.
    let group = unique_topic("acl-denied-group");
    let config = group_config(&alice, &group).consumer(|mut c| {
        c.client = c.client.sasl_plain("alice", "alice-secret");
        c
    });
    let mut member = GroupConsumer::new(config).unwrap();
    member.subscribe([topic.as_str()]);
    let (e, took) = group_poll_error(&mut member, Duration::from_secs(10)).await;
    eprintln!("group consumer: failed after {took:?}: {e}");
    assert!(!e.is_retriable(), "{e:?}");
    match e.code() {
        Some(ErrorCode::GROUP_AUTHORIZATION_FAILED) => assert!(e.to_string().contains(&group), "{e}"),
        Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED) => assert!(e.to_string().contains(&topic), "{e}"),
        _ => panic!("not an authorization failure: {e:?}"),
    }
    assert!(took < BOUND, "the refusal waited for the stall bound: {took:?}");
    let _ = member.close(Duration::from_secs(5)).await;
}
