//! The workspace engine's example binary against Kafka: resume after `kill -9` without
//! applying an event twice, and dead-lettering of poison and non-JSON events (read back with
//! librdkafka) while flaky events succeed after two retries.

use std::fs;
use std::num::NonZeroU32;
use std::time::Duration;

use klamm::ProducerRecord;
use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer};

mod engine_common;

use engine_common::{
    create_topic, produce, runtime, states, temp_dir, total_events, wait_for_events, EngineProcess,
};

#[test]
fn engine_resumes_after_kill_without_applying_any_event_twice() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-resume");
    let group = unique_topic("engine-resume-group");
    let dir = temp_dir("engine-resume");
    let state = dir.join("state");
    const WORKSPACES: usize = 12;
    const EVENTS: usize = 600;
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 3));
    let records: Vec<ProducerRecord> = (0..EVENTS)
        .map(|i| {
            let ws = format!("ws-{}", i % WORKSPACES);
            let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
            ProducerRecord::new(topic.as_str(), value).key(ws)
        })
        .collect();
    let placed = rt.block_on(produce(&brokers, records));

    // First run: slow events, killed part way.
    let mut first = EngineProcess::start(
        &brokers,
        &topic,
        &group,
        &state,
        dir.join("first.log"),
        &[("WORKSPACE_ENGINE_DELAY_MS", "5")],
    );
    let applied = wait_for_events(&mut first, &state, (EVENTS / 3) as u64, Duration::from_secs(90));
    let first_log = first.kill();
    let at_kill = total_events(&state);
    assert!(at_kill < EVENTS as u64, "the kill came too late ({applied} applied):\n{first_log}");
    assert!(first_log.contains("partitions assigned"), "{first_log}");

    // Second run: resumes and finishes.
    let mut second = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("second.log"), &[]);
    wait_for_events(&mut second, &state, EVENTS as u64, Duration::from_secs(90));
    // Let anything that would be applied twice show up.
    std::thread::sleep(Duration::from_secs(2));
    let second_log = second.stop(Duration::from_secs(60));
    assert!(second_log.contains("seek to stored offset"), "{second_log}");
    assert!(second_log.contains("shutdown complete"), "{second_log}");

    let found = states(&state);
    assert_eq!(found.len(), WORKSPACES, "{found:?}");
    let seven = NonZeroU32::new(3).unwrap();
    for w in 0..WORKSPACES {
        let id = format!("ws-{w}");
        let s = &found[&id];
        let mine: Vec<&(i32, i64)> =
            placed.iter().enumerate().filter(|(i, _)| i % WORKSPACES == w).map(|(_, p)| p).collect();
        assert_eq!(s["events"].as_u64(), Some(mine.len() as u64), "{id}: {s}");
        let partition = klamm::partitioner::partition_for_key(id.as_bytes(), seven);
        assert_eq!(s["partition"].as_i64(), Some(i64::from(partition)), "{id}");
        assert!(mine.iter().all(|(p, _)| *p == partition));
        let last = mine.iter().map(|(_, o)| *o).max().unwrap();
        assert_eq!(s["offset"].as_i64(), Some(last + 1), "{id}: {s}");
    }
    // Graceful shutdown committed the end of every partition.
    let committed = Peer::rdkafka().committed(&brokers, &group, &topic);
    for c in committed {
        let end = placed.iter().filter(|(p, _)| *p == c.partition).map(|(_, o)| o + 1).max();
        assert_eq!(c.offset, end, "partition {}", c.partition);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn engine_dead_letters_poison_and_non_json_and_retries_flaky() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-dlq");
    let dlq = format!("{topic}.dlq");
    let group = unique_topic("engine-dlq-group");
    let dir = temp_dir("engine-dlq");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 2));
    let event = |ws: &str, kind: &str| {
        let value = serde_json::json!({"workspace_id": ws, "type": kind}).to_string();
        ProducerRecord::new(topic.as_str(), value).key(ws.to_string()).header("trace", format!("{ws}-{kind}"))
    };
    let mut records = Vec::new();
    for ws in ["ws-a", "ws-b"] {
        records.push(event(ws, "add"));
        records.push(event(ws, "poison"));
        records.push(event(ws, "add"));
        records.push(event(ws, "flaky"));
        records.push(event(ws, "add"));
    }
    records
        .push(ProducerRecord::new(topic.as_str(), "this is not json").key("ws-a").header("trace", "garbage"));
    let bad: Vec<usize> = vec![1, 6, 10];
    let placed = rt.block_on(produce(&brokers, records));

    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &[]);
    // 3 adds and a flaky per workspace.
    wait_for_events(&mut engine, &state, 8, Duration::from_secs(90));
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..ConsumeOptions::default() };
    let dead = Peer::rdkafka().consume(&brokers, &dlq, bad.len(), &options);
    std::thread::sleep(Duration::from_secs(1));
    let log = engine.stop(Duration::from_secs(60));

    let found = states(&state);
    assert_eq!(found["ws-a"]["events"].as_u64(), Some(4), "{log}");
    assert_eq!(found["ws-b"]["events"].as_u64(), Some(4), "{log}");
    // Each flaky event failed twice, then succeeded.
    assert_eq!(log.matches("transient error; retrying").count(), 4, "{log}");
    assert_eq!(log.matches("dead-lettered").count(), bad.len(), "{log}");

    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for &i in &bad {
        let (partition, offset) = placed[i];
        let r = dead
            .iter()
            .find(|r| {
                r.headers.iter().any(|(k, v)| {
                    k == "original-offset" && v.as_deref() == Some(offset.to_string().as_bytes())
                }) && r.headers.iter().any(|(k, v)| {
                    k == "original-partition" && v.as_deref() == Some(partition.to_string().as_bytes())
                })
            })
            .unwrap_or_else(|| panic!("event {i} at {partition}/{offset} not dead-lettered: {dead:?}"));
        let header = |name: &str| {
            let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
            String::from_utf8(v.unwrap_or_else(|| panic!("no {name} header: {r:?}"))).unwrap()
        };
        assert_eq!(header("original-topic"), topic);
        assert_eq!(header("error-class"), "permanent");
        assert_eq!(header("retry-count"), "0");
        assert!(!header("error").is_empty());
        let ts = header("timestamp");
        assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        let trace = header("trace");
        if i == 10 {
            assert_eq!(trace, "garbage");
            assert_eq!(r.value.as_deref(), Some(&b"this is not json"[..]));
            assert!(header("error").contains("JSON"), "{}", header("error"));
        } else {
            assert!(trace.ends_with("-poison"), "{trace}");
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            assert_eq!(v["type"], "poison");
        }
        let key = if i == 10 || i == 1 { "ws-a" } else { "ws-b" };
        assert_eq!(r.key.as_deref(), Some(key.as_bytes()));
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A workspace whose stored offset is past the end of the log (say, the topic was deleted and
/// created again): the engine warns and starts the partition from the committed offset or the
/// reset policy instead of seeking past every record, so the partition's other workspaces
/// still get all their events.
#[test]
fn a_stored_offset_outside_the_log_falls_back_with_a_warning() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-stale");
    let group = unique_topic("engine-stale-group");
    let dir = temp_dir("engine-stale");
    let state = dir.join("state");
    fs::create_dir_all(&state).unwrap();
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 1));
    // "stale" was saved against a longer, older log.
    let stale =
        serde_json::json!({"workspace_id": "stale", "partition": 0, "offset": 1_000_000, "events": 7});
    fs::write(state.join("stale.json"), stale.to_string()).unwrap();
    let records: Vec<ProducerRecord> = (0..30)
        .map(|i| {
            let ws = if i % 3 == 0 { "stale" } else { "fresh" };
            let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
            ProducerRecord::new(topic.as_str(), value).key(ws)
        })
        .collect();
    rt.block_on(produce(&brokers, records));

    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while states(&state).get("fresh").and_then(|s| s["events"].as_u64()) != Some(20) {
        engine.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "fresh: {:?}\n{}",
            states(&state).get("fresh"),
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = engine.stop(Duration::from_secs(60));
    assert!(log.contains("stored offset is outside the log"), "{log}");
    assert!(!log.contains("seek to stored offset"), "{log}");
    // The stale workspace keeps its rule: nothing at or below its stored offset is applied.
    assert_eq!(states(&state)["stale"]["events"].as_u64(), Some(7));
}
