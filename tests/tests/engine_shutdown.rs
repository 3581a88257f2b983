//! The workspace engine's shutdown and dead-letter guarantees against Kafka:
//!
//! - SIGTERM part way: the engine saves, then commits what it saved. For each partition the
//!   committed offset equals the largest stored offset of its workspaces (all events apply,
//!   so the last handled event is the last applied one) and no workspace is ahead of it.
//!   The health snapshot the example logs on the signal shows a live, ready, stable member
//!   connected to the broker and owning every partition, with a lag for each.
//! - A dead-letter write that fails (the dead-letter topic was deleted; topics are never
//!   auto-created by the client) is retried: the engine commits nothing past the poison event
//!   and applies nothing after it until the topic exists again; then the record lands on it
//!   and the commit moves to the end.
//! - A handler that never returns (on two partitions at once) does not hold up SIGTERM past
//!   `KAFKA_SHUTDOWN_TIMEOUT_MS`; what was handled before it stays saved and committed, the
//!   hung events are not committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use klamm::{Admin, ClientConfig, ProducerRecord};
use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer};

mod engine_common;

use engine_common::{
    create_topic, field, produce, runtime, states, stored_offset, stored_offsets, temp_dir, total_events,
    wait_for_events, EngineProcess,
};

fn add(topic: &str, ws: &str, seq: usize) -> ProducerRecord {
    let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": seq}).to_string();
    ProducerRecord::new(topic, value).key(ws.to_string())
}

fn committed(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    Peer::rdkafka().committed(brokers, group, topic).into_iter().map(|c| (c.partition, c.offset)).collect()
}

#[test]
fn graceful_shutdown_saves_then_commits_what_was_saved() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-term");
    let group = unique_topic("engine-term-group");
    let dir = temp_dir("engine-term");
    let state = dir.join("state");
    const WORKSPACES: usize = 9;
    const EVENTS: usize = 450;
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 3));
    let records = (0..EVENTS).map(|i| add(&topic, &format!("ws-{}", i % WORKSPACES), i)).collect();
    rt.block_on(produce(&brokers, records));

    let mut engine = EngineProcess::start(
        &brokers,
        &topic,
        &group,
        &state,
        dir.join("engine.log"),
        &[("WORKSPACE_ENGINE_DELAY_MS", "20")],
    );
    wait_for_events(&mut engine, &state, 60, Duration::from_secs(90));
    let log = engine.stop(Duration::from_secs(60));
    assert!(log.contains("final offsets committed"), "{log}");
    let health = log.lines().find(|l| l.contains("health at shutdown")).unwrap_or_else(|| panic!("{log}"));
    let get =
        |name: &str| field(health, "health at shutdown", name).unwrap_or_else(|| panic!("{name}: {health}"));
    assert_eq!(get("live"), "true", "{health}");
    assert_eq!(get("ready"), "true", "{health}");
    assert_eq!(get("phase"), "running", "{health}");
    assert_eq!(get("member_state"), "Some(Stable)", "{health}");
    assert!(get("generation").parse::<i32>().unwrap() >= 1, "{health}");
    assert_ne!(get("connected_brokers"), "[]", "{health}");
    for p in 0..3 {
        let tp = format!("\"{topic}-{p}\"");
        assert!(get("assigned").contains(&tp), "{health}");
        assert!(get("lag").contains(&format!("\"{topic}-{p}=")), "{health}");
    }
    let found = states(&state);
    let applied: u64 = found.values().map(|v| v["events"].as_u64().unwrap()).sum();
    assert!(applied < EVENTS as u64, "stopped too late: {applied}");

    let committed = committed(&brokers, &group, &topic);
    let mut newest: BTreeMap<i32, i64> = BTreeMap::new();
    for s in found.values() {
        let p = s["partition"].as_i64().unwrap() as i32;
        assert_eq!(stored_offsets(s).len(), 1, "{s}");
        let o = stored_offset(s, &topic, p).unwrap_or_else(|| panic!("no offset on {p}: {s}"));
        let c = committed.get(&p).copied().flatten();
        assert!(c.is_some_and(|c| c >= o), "{s} is ahead of the commit {c:?}:\n{log}");
        let n = newest.entry(p).or_insert(o);
        *n = (*n).max(o);
    }
    for (p, o) in &newest {
        assert_eq!(committed[p], Some(*o), "partition {p}: committed vs newest saved workspace:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_dead_letter_write_is_retried_and_nothing_is_committed_past_it() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-dlqfail");
    let dlq = format!("{topic}.dlq");
    let group = unique_topic("engine-dlqfail-group");
    let dir = temp_dir("engine-dlqfail");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 1));
    rt.block_on(produce(&brokers, (0..5).map(|i| add(&topic, "ws-a", i)).collect()));

    let mut engine = EngineProcess::start(
        &brokers,
        &topic,
        &group,
        &state,
        dir.join("engine.log"),
        &[
            ("KAFKA_PRODUCER_DELIVERY_TIMEOUT_MS", "3000"),
            ("KAFKA_PRODUCER_REQUEST_TIMEOUT_MS", "1500"),
            ("KAFKA_PRODUCER_MAX_BLOCK_MS", "1000"),
        ],
    );
    wait_for_events(&mut engine, &state, 5, Duration::from_secs(90));
    assert!(engine.log().contains("dead-letter topic created"), "{}", engine.log());

    // The dead-letter topic goes away; then a poison event and more after it arrive.
    rt.block_on(async {
        let admin = Admin::connect(ClientConfig::new(&brokers)).await.unwrap();
        admin.delete_topics(&[dlq.as_str()]).await[0].1.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin.describe_topics(&[dlq.as_str()]).await[0].1.is_ok() {
            assert!(Instant::now() < deadline, "{dlq} not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let poison = serde_json::json!({"workspace_id": "ws-a", "type": "poison"}).to_string();
    let mut more = vec![ProducerRecord::new(topic.as_str(), poison).key("ws-a")];
    more.extend((6..9).map(|i| add(&topic, "ws-a", i)));
    let placed = rt.block_on(produce(&brokers, more));
    let poison_offset = placed[0].1;
    assert_eq!(poison_offset, 5);

    // While the write fails: retried, nothing past the poison event applied or committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.log().matches("dead-letter write failed; retrying").count() < 2 {
        engine.assert_running();
        assert!(Instant::now() < deadline, "no failing dead-letter write:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(total_events(&state), 5, "{}", engine.log());
    assert_eq!(committed(&brokers, &group, &topic)[&0], Some(poison_offset), "{}", engine.log());
    assert!(!engine.log().contains("dead-lettered "), "{}", engine.log());

    // The topic is back: the record lands, the engine moves on and commits the end.
    rt.block_on(create_topic(&brokers, &dlq, 1));
    wait_for_events(&mut engine, &state, 8, Duration::from_secs(90));
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..ConsumeOptions::default() };
    let dead = Peer::rdkafka().consume(&brokers, &dlq, 1, &options);
    let log = engine.stop(Duration::from_secs(60));
    assert_eq!(dead.len(), 1, "{dead:?}\n{log}");
    let offset = dead[0].headers.iter().find(|(k, _)| k == "original-offset").and_then(|(_, v)| v.clone());
    assert_eq!(offset.as_deref(), Some(poison_offset.to_string().as_bytes()));
    assert_eq!(log.matches("dead-lettered ").count(), 1, "{log}");
    assert_eq!(committed(&brokers, &group, &topic)[&0], Some(9), "{log}");
    assert_eq!(states(&state)["ws-a"]["events"].as_u64(), Some(8));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A handler that never returns does not hold up a shutdown: with
/// `KAFKA_SHUTDOWN_TIMEOUT_MS=4000` and a hung event on each of two partitions, SIGTERM ends
/// the process within the timeout (plus slack for the process itself), not once per
/// partition and not never. What was handled before the hung events is saved and committed;
/// the hung events and what follows them are not.
#[test]
fn a_hung_handler_does_not_hold_up_shutdown_past_the_timeout() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let (topic, group, dir, state) = hung_topic(&brokers, "engine-hang");
    let mut engine = EngineProcess::start(
        &brokers,
        &topic,
        &group,
        &state,
        dir.join("engine.log"),
        &[("KAFKA_SHUTDOWN_TIMEOUT_MS", "4000")],
    );
    // Both partitions reach their hung event (the events before it are handled, but saved
    // only with the rest of their batch, so not yet).
    let deadline = Instant::now() + Duration::from_secs(90);
    while engine.log().matches(" hanging").count() < 2 {
        engine.assert_running();
        assert!(Instant::now() < deadline, "{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = Instant::now();
    let log = engine.stop(Duration::from_secs(30));
    let took = asked.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_millis(4000 + 2500), "shutdown took {took:?}:\n{log}");
    assert_eq!(log.matches("in-flight message did not finish in time").count(), 2, "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    assert_eq!(total_events(&state), 10, "{log}");
    assert_eq!(
        committed(&brokers, &group, &topic),
        [(0, Some(5)), (1, Some(5))].into_iter().collect(),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A topic with two partitions, each holding 5 adds, a `hang` event (offset 5) and 3 adds, for
/// a workspace of its own; with a group name, a test directory and its state directory.
fn hung_topic(brokers: &str, name: &str) -> (String, String, std::path::PathBuf, std::path::PathBuf) {
    let topic = unique_topic(name);
    let group = unique_topic(&format!("{name}-group"));
    let dir = temp_dir(name);
    let state = dir.join("state");
    let two = std::num::NonZeroU32::new(2).unwrap();
    let on = |p: i32| {
        (0..)
            .map(|i| format!("ws-{i}"))
            .find(|id| klamm::partitioner::partition_for_key(id.as_bytes(), two) == p)
            .unwrap()
    };
    let rt = runtime();
    rt.block_on(create_topic(brokers, &topic, 2));
    let mut records = Vec::new();
    for ws in [on(0), on(1)] {
        records.extend((0..5).map(|i| add(&topic, &ws, i)));
        let hang = serde_json::json!({"workspace_id": ws, "type": "hang"}).to_string();
        records.push(ProducerRecord::new(topic.as_str(), hang).key(ws.clone()));
        records.extend((6..9).map(|i| add(&topic, &ws, i)));
    }
    let placed = rt.block_on(produce(brokers, records));
    assert_eq!(placed[5], (0, 5));
    assert_eq!(placed[14], (1, 5));
    (topic, group, dir, state)
}

/// A revocation is bounded the same way: an engine hung on both its partitions gives one up
/// to a second engine within `KAFKA_SHUTDOWN_TIMEOUT_MS`, having saved and committed what it
/// handled before the hung event there; the second engine starts that partition at the hung
/// event.
#[test]
fn a_hung_handler_does_not_hold_up_a_revocation() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let (topic, group, dir, state) = hung_topic(&brokers, "engine-hang-revoke");
    let timeout = [("KAFKA_SHUTDOWN_TIMEOUT_MS", "4000")];
    let mut a = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("a.log"), &timeout);
    let deadline = Instant::now() + Duration::from_secs(90);
    while a.log().matches(" hanging").count() < 2 {
        a.assert_running();
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(committed(&brokers, &group, &topic).values().all(Option::is_none));

    // A second member joins: one partition moves to it, out of a's hung hands.
    let mut b = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("b.log"), &timeout);
    let joined = Instant::now();
    while !b.log().contains(" hanging") {
        a.assert_running();
        b.assert_running();
        assert!(
            joined.elapsed() < Duration::from_secs(40),
            "b never got a partition:\n{}\n---\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("b reached the hung event {:?} after it started", joined.elapsed());
    let a_log = a.log();
    assert!(a_log.contains("partitions revoked"), "{a_log}");
    assert_eq!(a_log.matches("in-flight message did not finish in time").count(), 1, "{a_log}");
    assert!(a_log.contains("committed before revocation"), "{a_log}");
    let moved = committed(&brokers, &group, &topic);
    assert_eq!(moved.values().filter(|c| **c == Some(5)).count(), 1, "{moved:?}\n{a_log}");
    assert_eq!(total_events(&state), 5, "{a_log}");

    let a_log = a.stop(Duration::from_secs(30));
    let b_log = b.stop(Duration::from_secs(30));
    assert!(b_log.contains("in-flight message did not finish in time"), "{b_log}");
    assert_eq!(
        committed(&brokers, &group, &topic),
        [(0, Some(5)), (1, Some(5))].into_iter().collect(),
        "{a_log}"
    );
    assert_eq!(total_events(&state), 10, "{a_log}\n---\n{b_log}");
    let _ = std::fs::remove_dir_all(&dir);
}
