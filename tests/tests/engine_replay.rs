//! Restart cost bounded by what was not committed: 1,000 workspaces, one of them idle since the
//! start of its partition, 200,000 later events with poison ones among them. The engine is
//! killed with SIGKILL after it committed part of them; the next run resumes each partition at
//! its committed offset (the file store's checkpoint covers it) instead of at the idle
//! workspace's stored offset, so it reads only the uncommitted tail, and no poison event is
//! dead-lettered twice; every workspace applies each of its events exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use klamm_tests::{unique_topic, Broker, Partitioner, Peer, PeerRecord, ProduceOptions};

mod engine_common;

use engine_common::{
    create_topic, engine_events, last_metric, read_topic, runtime, states, temp_dir, total_events,
    EngineEvent, EngineProcess,
};

const PARTITIONS: i32 = 4;
const BUSY: usize = 999;
const EVENTS: usize = 200_000;
/// Every this many events, one is poison (dead-lettered).
const POISON_EVERY: usize = 20_000;

/// Waits until the workspaces under `state` applied at least `at_least` events, checking
/// every quarter of a second (a scan reads a thousand files).
fn wait_for(engine: &mut EngineProcess, state: &Path, at_least: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let n = total_events(state);
        if n >= at_least {
            return n;
        }
        engine.assert_running();
        assert!(Instant::now() < deadline, "only {n} of {at_least} events applied:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_restart_replays_only_the_uncommitted_tail_whatever_the_workspaces_ages() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-replay");
    let group = unique_topic("engine-replay-group");
    let dir = temp_dir("engine-replay");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, PARTITIONS));
    // The idle workspace's only event comes first: offset 0 of its partition.
    let event = |ws: &str, kind: &str| {
        let value = serde_json::json!({"workspace_id": ws, "type": kind}).to_string();
        PeerRecord::new(ws, value)
    };
    let mut records = vec![event("idle", "add")];
    let mut expected: BTreeMap<String, u64> = BTreeMap::from([("idle".to_string(), 1)]);
    let mut poison = Vec::new();
    for i in 0..EVENTS {
        let ws = format!("ws-{}", i % BUSY);
        if i % POISON_EVERY == POISON_EVERY / 2 {
            poison.push(records.len());
            records.push(event(&ws, "poison"));
        } else {
            *expected.entry(ws.clone()).or_default() += 1;
            records.push(event(&ws, "add"));
        }
    }
    // librdkafka writes the 200,000 events in a few seconds, placed by murmur2 of the key as
    // the engine expects; idempotence keeps them in order.
    let options =
        ProduceOptions { partitioner: Partitioner::Murmur2, idempotent: true, ..Default::default() };
    let placed: Vec<(i32, i64)> = Peer::rdkafka()
        .produce(&brokers, &topic, &options, &records)
        .into_iter()
        .map(|d| (d.partition, d.offset))
        .collect();
    let idle = placed[0];
    assert_eq!(idle.1, 0, "the idle workspace's event is its partition's first");
    let poison_at: Vec<(i32, i64)> = poison.iter().map(|i| placed[*i]).collect();
    let total = placed.len() as u64;
    let applicable: u64 = expected.values().sum();
    // Large batches: a batch saves each workspace it touched once, whatever its length. A
    // short session: the second run's member does not wait long for the killed one's to end.
    let batches =
        [("KAFKA_CONSUMER_MAX_POLL_RECORDS", "10000"), ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000")];

    // First run: killed once a good part is applied and every partition recorded a
    // checkpoint (which comes right before its first commit).
    let mut first = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("first.log"), &batches);
    wait_for(&mut first, &state, applicable / 4, Duration::from_secs(60));
    let checkpoints = state.join(".checkpoints");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&checkpoints).map_or(0, |d| d.count()) < PARTITIONS as usize {
        first.assert_running();
        assert!(Instant::now() < deadline, "no checkpoint of every partition:\n{}", first.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let first_log = first.kill();
    let at_kill = total_events(&state);
    assert!(at_kill < applicable, "the kill came too late:\n{first_log}");
    let dead_first = first_log.lines().filter(|l| l.contains("dead-lettered")).count();
    assert!(dead_first > 0, "no poison event was reached before the kill:\n{first_log}");

    // Second run: resumes each partition at its committed offset.
    let mut second = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("second.log"), &batches);
    wait_for(&mut second, &state, applicable, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let second_log = second.stop(Duration::from_secs(30));

    let events = engine_events(&second_log);
    let resumed: BTreeMap<i32, i64> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Resume { partition, offset } => Some((*partition, *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resumed.len(),
        PARTITIONS as usize,
        "every partition resumes where the store's saves end:\n{second_log}"
    );
    assert!(!events.iter().any(|e| matches!(e, EngineEvent::Seek { .. })), "{second_log}");
    assert!(resumed[&idle.0] > 1, "the idle workspace's partition resumed past it");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &placed {
        let e = ends.entry(*p).or_default();
        *e = (*e).max(o + 1);
    }
    let tail: u64 = ends.iter().map(|(p, end)| (end - resumed[p]) as u64).sum();
    let read: u64 = ["processed", "replayed", "dead_lettered", "skipped"]
        .iter()
        .map(|m| last_metric(&second_log, m).unwrap_or_else(|| panic!("no {m} metric:\n{second_log}")))
        .sum();
    let replayed = last_metric(&second_log, "replayed").unwrap();
    // Poison events the first run dead-lettered but was killed before it saved their
    // workspaces: the second run finds them on the dead-letter topic and passes over them.
    let found_written = second_log.lines().filter(|l| l.contains("not written again")).count();
    println!(
        "killed at {at_kill} of {applicable} applied; tail {tail} of {total}; second run read {read}, replayed {replayed}, found {found_written} already dead-lettered"
    );
    assert_eq!(read, tail, "the second run read exactly the tail it resumed at");
    // What the first run applied is either before the tail or replayed (passed over) in it.
    assert!(at_kill <= total - tail + replayed, "{at_kill} applied, {} before the tail", total - tail);
    // Replayed: what was saved but not yet checkpointed when the kill came, a few batches.
    assert!(replayed < total / 4, "replayed {replayed}");

    // Each event applied exactly once across both runs.
    let found = states(&state);
    assert_eq!(found.len(), expected.len());
    for (id, want) in &expected {
        assert_eq!(found[id]["events"].as_u64(), Some(*want), "{id}: {}", found[id]);
    }
    // Each poison event dead-lettered once.
    let dlq = rt.block_on(read_topic(&brokers, &format!("{topic}.dlq")));
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for r in &dlq {
        let header = |name: &str| {
            let v = r.headers.iter().find(|h| &*h.key == name.as_bytes()).and_then(|h| h.value.clone());
            String::from_utf8(v.unwrap().to_vec()).unwrap().parse::<i64>().unwrap()
        };
        *seen.entry((header("original-partition") as i32, header("original-offset"))).or_default() += 1;
    }
    let want: BTreeMap<(i32, i64), usize> = poison_at.iter().map(|p| (*p, 1)).collect();
    assert_eq!(seen, want, "each poison event is on the dead-letter topic once");
    let _ = std::fs::remove_dir_all(&dir);
}
