//! The `workspace-engine` example configured only through the variables the services moving
//! onto the engine already carry (segmentio/kafka-go's names: `KAFKA_TOPICS`, `KAFKA_GROUP`,
//! `KAFKA_CONSUMER_COMMIT_INTERVAL=1s`, ...), against Kafka:
//!
//! - it runs: it applies every event, dead-letters the poison one to
//!   `KAFKA_CONSUMER_DLQ_TOPIC`, and with a commit interval of 1 s the group's committed
//!   offsets reach the end of each partition while it runs;
//! - the interval is honoured: with `KAFKA_CONSUMER_COMMIT_INTERVAL=1h` nothing is committed
//!   while it runs, and everything at shutdown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use klamm::ProducerRecord;
use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer};

mod engine_common;

use engine_common::{
    create_topic, field, produce, runtime, temp_dir, total_events, wait_for_events, EngineProcess,
};

const PARTITIONS: i32 = 3;

fn event(topic: &str, ws: &str, kind: &str) -> ProducerRecord {
    let value = serde_json::json!({"workspace_id": ws, "type": kind}).to_string();
    ProducerRecord::new(topic, value).key(ws.to_string())
}

fn committed(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    Peer::rdkafka().committed(brokers, group, topic).into_iter().map(|c| (c.partition, c.offset)).collect()
}

/// The offset after the last record of each partition, from what `produce` returned.
fn ends(sent: &[(i32, i64)]) -> BTreeMap<i32, Option<i64>> {
    let mut out: BTreeMap<i32, Option<i64>> = (0..PARTITIONS).map(|p| (p, None)).collect();
    for (p, o) in sent {
        let e = out.entry(*p).or_insert(None);
        *e = Some(e.map_or(o + 1, |e| e.max(o + 1)));
    }
    out
}

/// Every seed variable, with `commit_interval` for `KAFKA_CONSUMER_COMMIT_INTERVAL`.
fn seed_vars<'a>(
    brokers: &'a str,
    topic: &'a str,
    group: &'a str,
    dlq: &'a str,
    state: &'a str,
    commit_interval: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("KAFKA_BROKERS", brokers),
        ("KAFKA_TOPICS", topic),
        ("KAFKA_GROUP", group),
        ("KAFKA_STATE_DIR", state),
        ("KAFKA_AUTO_COMMIT", "true"),
        ("KAFKA_START_FROM_BEGINNING", "true"),
        ("KAFKA_CONSUMER_START_OFFSET", "-2"),
        ("KAFKA_CONSUMER_MIN_BYTES", "1"),
        ("KAFKA_CONSUMER_MAX_BYTES", "1MiB"),
        ("KAFKA_CONSUMER_MAX_WAIT", "100ms"),
        ("KAFKA_CONSUMER_COMMIT_INTERVAL", commit_interval),
        ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "1s"),
        ("KAFKA_CONSUMER_SESSION_TIMEOUT", "10s"),
        ("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "30s"),
        ("KAFKA_CONSUMER_DLQ_TOPIC", dlq),
        ("KAFKA_CONSUMER_MAX_RETRIES", "3"),
        ("KAFKA_PRODUCER_MAX_ATTEMPTS", "5"),
        ("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"),
        ("KAFKA_PRODUCER_REQUIRE_ACKS", "-1"),
        ("KAFKA_PRODUCER_COMPRESSION", "lz4"),
        ("KAFKA_PRODUCER_ASYNC", "false"),
        ("KAFKA_PRODUCER_DLQ_TOPIC", "publish-failures"),
    ]
}

#[test]
fn the_example_runs_on_the_seeds_variables_alone() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-seeds");
    let group = unique_topic("engine-seeds-group");
    let dlq = format!("{topic}.failed");
    let dir = temp_dir("engine-seeds");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, PARTITIONS));
    let mut records: Vec<ProducerRecord> =
        (0..30).map(|i| event(&topic, &format!("ws-{}", i % 6), "add")).collect();
    records.push(event(&topic, "ws-poison", "poison"));
    let sent = rt.block_on(produce(&brokers, records));
    let poison_at = *sent.last().unwrap();

    let state_dir = state.to_string_lossy().into_owned();
    let vars = seed_vars(&brokers, &topic, &group, &dlq, &state_dir, "1s");
    let mut engine = EngineProcess::start_with(dir.join("engine.log"), &vars);
    wait_for_events(&mut engine, &state, 30, Duration::from_secs(90));

    // With a commit interval of a second, the commits catch up with what was applied (and
    // dead-lettered) while the engine runs.
    let expected = ends(&sent);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = committed(&brokers, &group, &topic);
        if now == expected {
            break;
        }
        engine.assert_running();
        assert!(Instant::now() < deadline, "committed {now:?}, expected {expected:?}:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = engine.stop(Duration::from_secs(60));
    assert_eq!(total_events(&state), 30);

    let started = log.lines().find(|l| l.contains("engine started")).unwrap_or_else(|| panic!("{log}"));
    assert_eq!(field(started, "engine started", "commit_interval"), Some("1s"), "{started}");
    assert_eq!(field(started, "engine started", "group"), Some(group.as_str()), "{started}");
    assert_eq!(field(started, "engine started", "dlq"), Some(dlq.as_str()), "{started}");
    assert!(!log.contains("is not a variable the engine reads"), "{log}");

    // The poison event is on the dead-letter topic that KAFKA_CONSUMER_DLQ_TOPIC named.
    let dead = Peer::rdkafka().consume(&brokers, &dlq, 1, &ConsumeOptions::default());
    assert_eq!(dead.len(), 1);
    let header = |name: &str| {
        let v = dead[0].headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
        String::from_utf8(v.unwrap_or_else(|| panic!("no {name} header: {:?}", dead[0]))).unwrap()
    };
    assert_eq!(header("original-topic"), topic);
    assert_eq!(header("original-partition"), poison_at.0.to_string());
    assert_eq!(header("original-offset"), poison_at.1.to_string());
    assert_eq!(header("error-class"), "permanent");
    assert_eq!(dead[0].key.as_deref(), Some(&b"ws-poison"[..]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_long_commit_interval_defers_commits_to_shutdown() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-seeds-1h");
    let group = unique_topic("engine-seeds-1h-group");
    let dlq = format!("{topic}.failed");
    let dir = temp_dir("engine-seeds-1h");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, PARTITIONS));
    let records = (0..12).map(|i| event(&topic, &format!("ws-{}", i % 4), "add")).collect();
    let sent = rt.block_on(produce(&brokers, records));

    let state_dir = state.to_string_lossy().into_owned();
    let vars = seed_vars(&brokers, &topic, &group, &dlq, &state_dir, "1h");
    let mut engine = EngineProcess::start_with(dir.join("engine.log"), &vars);
    wait_for_events(&mut engine, &state, 12, Duration::from_secs(90));
    // Every event is applied and saved; an engine committing after each poll would have
    // committed by now. This one waits for its interval.
    std::thread::sleep(Duration::from_secs(3));
    let running = committed(&brokers, &group, &topic);
    assert!(running.values().all(Option::is_none), "committed before the interval: {running:?}");
    engine.assert_running();
    let log = engine.stop(Duration::from_secs(60));
    assert!(log.contains("final offsets committed"), "{log}");
    assert_eq!(committed(&brokers, &group, &topic), ends(&sent), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
