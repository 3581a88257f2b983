//! Two workspace engines in one group against Kafka: each loads only the workspaces of its
//! partitions, and when one stops the other takes its partitions over from the workspaces'
//! stored offsets (or from the committed offset, which the shared store's checkpoint covers), with every event applied exactly once in the end; with either group
//! protocol (`KAFKA_GROUP_PROTOCOL`).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use klamm::ProducerRecord;
use klamm_tests::{unique_topic, Broker};

mod engine_common;

use engine_common::{
    assert_loads_only_its_workspaces, create_topic, engine_events, owned, produce, runtime, states,
    stored_offset, temp_dir, total_events, wait_for_events, wait_for_split, EngineEvent, EngineProcess,
};

const PARTITIONS: i32 = 4;

#[test]
fn two_engines_split_the_workspaces_and_one_takes_over_when_the_other_stops() {
    split_and_take_over("classic");
}

/// The same with the KIP-848 `consumer` group protocol (`KAFKA_GROUP_PROTOCOL=consumer`).
#[test]
fn two_engines_split_and_take_over_with_the_consumer_group_protocol() {
    split_and_take_over("consumer");
}

fn split_and_take_over(protocol: &str) {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-pair");
    let group = unique_topic("engine-pair-group");
    let dir = temp_dir("engine-pair");
    let state = dir.join("state");
    const WORKSPACES: usize = 16;
    const EVENTS: usize = 800;
    let n = NonZeroU32::new(PARTITIONS as u32).unwrap();
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, PARTITIONS));
    let records: Vec<ProducerRecord> = (0..EVENTS)
        .map(|i| {
            let ws = format!("ws-{}", i % WORKSPACES);
            let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
            ProducerRecord::new(topic.as_str(), value).key(ws)
        })
        .collect();
    rt.block_on(produce(&brokers, records));
    let slow = [("WORKSPACE_ENGINE_DELAY_MS", "60"), ("KAFKA_GROUP_PROTOCOL", protocol)];

    // A first run leaves stored workspaces behind.
    let mut seed = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("seed.log"), &slow);
    wait_for_events(&mut seed, &state, 100, Duration::from_secs(90));
    seed.stop(Duration::from_secs(60));
    assert!(total_events(&state) < EVENTS as u64);

    // Two engines share the partitions.
    let mut a = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("a.log"), &slow);
    let mut b = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("b.log"), &slow);
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let (a_owned, b_owned) = wait_for_split(&mut a, &mut b, PARTITIONS, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert!(total_events(&state) < EVENTS as u64 - 100, "too little left to take over");
    let a_log = a.stop(Duration::from_secs(60));
    let at_stop = states(&state);
    assert_loads_only_its_workspaces(&a_log, n);
    let loaded_a: BTreeSet<String> = engine_events(&a_log)
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Loaded { workspace, .. } => Some(workspace),
            _ => None,
        })
        .collect();
    assert!(!loaded_a.is_empty(), "{a_log}");

    // b takes a's partitions over, from the offsets a stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(&engine_events(&b.log())) != all {
        b.assert_running();
        assert!(Instant::now() < deadline, "b did not take over {a_owned:?}:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_events(&mut b, &state, EVENTS as u64, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let b_log = b.stop(Duration::from_secs(60));
    assert_loads_only_its_workspaces(&b_log, n);
    let events = engine_events(&b_log);
    let takeover = events
        .iter()
        .position(|e| matches!(e, EngineEvent::Assigned(p) if p.iter().any(|p| a_owned.contains(p))))
        .unwrap_or_else(|| panic!("b was never assigned {a_owned:?} (it had {b_owned:?}):\n{b_log}"));
    let mut smallest: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &events[takeover..] {
        match e {
            EngineEvent::Loaded { workspace, partition, offset } if a_owned.contains(partition) => {
                let stored = stored_offset(&at_stop[workspace], &topic, *partition).unwrap();
                // What a saved when it stopped (b may have applied more since we read it).
                assert!(*offset <= stored && *offset > 0, "{workspace}: loaded {offset}, stored {stored}");
                let s = smallest.entry(*partition).or_insert(*offset);
                *s = (*s).min(*offset);
            }
            EngineEvent::Seek { partition, stored } if a_owned.contains(partition) => {
                assert_eq!(Some(stored), smallest.get(partition), "partition {partition}:\n{b_log}");
            }
            _ => {}
        }
    }
    for p in &a_owned {
        if at_stop.values().any(|v| v["partition"].as_i64() == Some(i64::from(*p))) {
            assert!(smallest.contains_key(p), "b loaded no workspace of {p}:\n{b_log}");
            assert!(
                events[takeover..]
                    .iter()
                    .any(|e| matches!(e, EngineEvent::Seek { partition, .. } | EngineEvent::Resume { partition, .. } if partition == p)),
                "b did not seek {p} nor resume it at the committed offset:\n{b_log}"
            );
        }
    }

    let found = states(&state);
    assert_eq!(found.len(), WORKSPACES);
    for (id, s) in &found {
        assert_eq!(s["events"].as_u64(), Some((EVENTS / WORKSPACES) as u64), "{id}: {s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
