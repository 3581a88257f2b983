//! The workspace engine's example binary against Kafka: resume after `kill -9` without
//! applying an event twice; dead-lettering of poison and non-JSON events (read back with
//! librdkafka) while flaky events succeed after two retries; stored offsets of a deleted topic
//! and files of the older single-offset form; partitions added while the engine runs; a
//! workspace file that cannot be read, at assignment or met while running.

use std::fs;
use std::num::NonZeroU32;
use std::time::Duration;

use klamm::partitioner::partition_for_key as partition_of;
use klamm::ProducerRecord;
use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer};

mod engine_common;

use engine_common::{
    create_topic, engine_events, produce, runtime, states, stored_offset, stored_offsets, temp_dir,
    total_events, wait_for_events, EngineEvent, EngineProcess,
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
    // The store's checkpoint covers the committed offsets: only the uncommitted tail is
    // read again, and what of it was saved is passed over.
    assert!(second_log.contains("resuming at the "), "{second_log}");
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
        assert_eq!(stored_offset(s, &topic, partition), Some(last + 1), "{id}: {s}");
        assert_eq!(stored_offsets(s).len(), 1, "{id}: {s}");
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

/// Workspace files left from an earlier topic of the same name, and files of the older
/// single-offset form, against a topic with 40 events (a new group, so nothing committed):
///
/// - `stale`, older form, offset past the end of the log (the topic was deleted and made
///   again): the offset is dropped with a warning and all of its 10 events are applied;
/// - `renamed`, offset 20 recorded under another topic id (the deleted topic): dropped, all of
///   its 10 events applied, although the offset is inside the new log;
/// - `legacy`, older form, offset 22 inside the log: read as the offset of partition 0, so its
///   events below 22 are skipped as applied and the 5 after applied;
/// - `fresh`, no file: all 10.
///
/// Every file is then written in the per-partition form with the topic's id.
#[test]
fn offsets_of_a_deleted_topic_are_dropped_and_older_files_are_read() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-stale");
    let group = unique_topic("engine-stale-group");
    let dir = temp_dir("engine-stale");
    let state = dir.join("state");
    fs::create_dir_all(&state).unwrap();
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 1));
    let deleted_id = "0b7a5d0e-1111-4222-8333-944445555666";
    let files = [
        (
            "stale",
            serde_json::json!({"workspace_id": "stale", "partition": 0, "offset": 1_000_000, "events": 7}),
        ),
        (
            "renamed",
            serde_json::json!({"workspace_id": "renamed", "partition": 0, "events": 3,
                "offsets": [{"topic": topic, "topic_id": deleted_id, "partition": 0, "offset": 20}]}),
        ),
        (
            "legacy",
            serde_json::json!({"workspace_id": "legacy", "partition": 0, "offset": 22, "events": 100}),
        ),
    ];
    for (id, v) in &files {
        fs::write(state.join(format!("{id}.json")), v.to_string()).unwrap();
    }
    let ids = ["stale", "renamed", "legacy", "fresh"];
    let records: Vec<ProducerRecord> = (0..40)
        .map(|i| {
            let ws = ids[i % 4];
            let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
            ProducerRecord::new(topic.as_str(), value).key(ws)
        })
        .collect();
    let placed = rt.block_on(produce(&brokers, records));
    assert_eq!(placed.last(), Some(&(0, 39)));

    let expected = [("stale", 17), ("renamed", 13), ("legacy", 105), ("fresh", 10)];
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = states(&state);
        let now: Vec<(&str, Option<u64>)> =
            expected.iter().map(|(id, _)| (*id, found.get(*id).and_then(|s| s["events"].as_u64()))).collect();
        if expected.iter().zip(&now).all(|((_, want), (_, got))| *got >= Some(*want)) {
            break;
        }
        engine.assert_running();
        assert!(std::time::Instant::now() < deadline, "{now:?}\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let anything applied twice show up.
    std::thread::sleep(Duration::from_secs(1));
    let log = engine.stop(Duration::from_secs(60));
    assert!(log.contains("stored offset is past the end of the log; dropped"), "{log}");
    assert!(log.contains("stored offset belongs to a deleted topic of the same name; dropped"), "{log}");
    let found = states(&state);
    let topic_id = rt.block_on(async {
        let admin = klamm::Admin::connect(klamm::ClientConfig::new(&brokers)).await.unwrap();
        admin.describe_topics(&[topic.as_str()]).await[0].1.as_ref().unwrap().id.to_string()
    });
    for (id, want) in expected {
        let s = &found[id];
        assert_eq!(s["events"].as_u64(), Some(want), "{id}: {s}\n{log}");
        assert!(s.get("offset").is_none(), "{id}: {s}");
        let last = (0..40).filter(|i| ids[i % 4] == id).max().unwrap();
        assert_eq!(
            s["offsets"],
            serde_json::json!([{"topic": topic, "topic_id": topic_id, "partition": 0, "offset": last + 1}]),
            "{id}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Partitions are added to the topic while the engine runs (3 to 9, as in a reported run where
/// 40 of 60 workspaces came out short): most workspaces' ids then hash to a new partition,
/// whose offsets start at 0, below what they applied on their old one. The group leader sees
/// the new partitions within `metadata.max.age.ms` (1 s here) and the engine takes them on;
/// every event is applied exactly once, and each workspace keeps an offset per partition.
#[test]
fn partitions_added_while_running_lose_no_event() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-grow");
    let group = unique_topic("engine-grow-group");
    let dir = temp_dir("engine-grow");
    let state = dir.join("state");
    const WORKSPACES: usize = 30;
    const PER_PHASE: usize = 8;
    let (before, after) = (NonZeroU32::new(3).unwrap(), NonZeroU32::new(9).unwrap());
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 3));
    let ids: Vec<String> = (0..WORKSPACES).map(|w| format!("ws-{w}")).collect();
    let moved = ids
        .iter()
        .filter(|id| partition_of(id.as_bytes(), before) != partition_of(id.as_bytes(), after))
        .count();
    assert!(moved >= WORKSPACES / 2, "only {moved} workspaces move");
    let phase = |n: usize| -> Vec<ProducerRecord> {
        (0..PER_PHASE * WORKSPACES)
            .map(|i| {
                let ws = &ids[i % WORKSPACES];
                let value =
                    serde_json::json!({"workspace_id": ws, "type": "add", "phase": n, "seq": i}).to_string();
                ProducerRecord::new(topic.as_str(), value).key(ws.clone())
            })
            .collect()
    };
    let first = rt.block_on(produce(&brokers, phase(1)));
    assert!(first.iter().all(|(p, _)| *p < 3));

    let mut engine = EngineProcess::start(
        &brokers,
        &topic,
        &group,
        &state,
        dir.join("engine.log"),
        &[("WORKSPACE_ENGINE_DELAY_MS", "10"), ("KAFKA_CONSUMER_METADATA_MAX_AGE_MS", "1000")],
    );
    // Part way through the first phase, the topic grows and the second phase goes out.
    wait_for_events(&mut engine, &state, (WORKSPACES * 2) as u64, Duration::from_secs(90));
    rt.block_on(async {
        let admin = klamm::Admin::connect(klamm::ClientConfig::new(&brokers)).await.unwrap();
        admin.create_partitions(&[(topic.as_str(), 9)]).await[0].1.as_ref().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let meta = admin.describe_topics(&[topic.as_str()]).await.remove(0).1.unwrap();
            if meta.partition_count() == 9 && meta.partitions.iter().all(|p| p.has_leader()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "partitions not added");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let grown = std::time::Instant::now();
    let second = rt.block_on(produce(&brokers, phase(2)));
    assert!(second.iter().any(|(p, _)| *p >= 3), "the producer did not see the new partitions");
    while !engine_events(&engine.log())
        .iter()
        .any(|e| matches!(e, EngineEvent::Assigned(p) if p.iter().any(|p| *p >= 3)))
    {
        engine.assert_running();
        assert!(grown.elapsed() < Duration::from_secs(60), "new partitions not taken on:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("new partitions taken on {:?} after they were added", grown.elapsed());
    let total = (2 * PER_PHASE * WORKSPACES) as u64;
    let mut waited = 0;
    while total_events(&state) < total && waited < 600 {
        engine.assert_running();
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    // Let anything applied twice show up.
    std::thread::sleep(Duration::from_secs(2));
    let log = engine.stop(Duration::from_secs(60));

    let found = states(&state);
    let short: Vec<String> = ids
        .iter()
        .filter(|id| found.get(*id).and_then(|s| s["events"].as_u64()) != Some((2 * PER_PHASE) as u64))
        .map(|id| format!("{id}={:?}", found.get(id).map(|s| &s["events"])))
        .collect();
    assert!(short.is_empty(), "workspaces without exactly {} events: {short:?}\n{log}", 2 * PER_PHASE);
    assert!(log.contains("source topic changed"), "{log}");
    for (w, id) in ids.iter().enumerate() {
        let s = &found[id];
        assert_eq!(s["partition"].as_i64(), Some(i64::from(partition_of(id.as_bytes(), after))), "{s}");
        // One offset per partition the workspace had events on: after its last event there.
        let mut last: std::collections::BTreeMap<i32, i64> = Default::default();
        for (p, o) in
            first.iter().chain(&second).enumerate().filter(|(i, _)| i % WORKSPACES == w).map(|(_, x)| x)
        {
            let e = last.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        let want: Vec<(String, i32, i64)> = last.iter().map(|(p, o)| (topic.clone(), *p, o + 1)).collect();
        assert_eq!(stored_offsets(s), want, "{id}: {s}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A workspace file that cannot be read (here: not JSON) is never replaced by an empty
/// workspace: the engine stops that workspace's partition, names the file and the partition
/// in its health snapshot, and commits nothing more on that partition; the other partition
/// goes on.
#[test]
fn a_workspace_that_cannot_be_loaded_stops_its_partition_and_is_not_overwritten() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-corrupt");
    let group = unique_topic("engine-corrupt-group");
    let dir = temp_dir("engine-corrupt");
    let state = dir.join("state");
    let two = NonZeroU32::new(2).unwrap();
    let on = |p: i32, skip: usize| {
        (0..).map(|i| format!("ws-{i}")).filter(|id| partition_of(id.as_bytes(), two) == p).nth(skip).unwrap()
    };
    let (bad, same, other) = (on(0, 0), on(0, 1), on(1, 0));
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 2));
    let add = |ws: &str| {
        let value = serde_json::json!({"workspace_id": ws, "type": "add"}).to_string();
        ProducerRecord::new(topic.as_str(), value).key(ws.to_string())
    };
    let committed = || -> std::collections::BTreeMap<i32, Option<i64>> {
        Peer::rdkafka()
            .committed(&brokers, &group, &topic)
            .into_iter()
            .map(|c| (c.partition, c.offset))
            .collect()
    };

    // A first run stores all three workspaces and commits both partitions.
    let mut first: Vec<ProducerRecord> = Vec::new();
    first.extend((0..5).map(|_| add(&same)));
    first.extend((0..3).map(|_| add(&bad)));
    first.extend((0..5).map(|_| add(&other)));
    rt.block_on(produce(&brokers, first));
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("first.log"), &[]);
    wait_for_events(&mut engine, &state, 13, Duration::from_secs(90));
    engine.stop(Duration::from_secs(60));
    assert_eq!(committed(), [(0, Some(8)), (1, Some(5))].into_iter().collect());

    // The bad workspace's file is damaged; more events arrive for all three.
    let bad_file = state.join(format!("{bad}.json"));
    let damaged = b"{\"workspace_id\": \"half-writ".to_vec();
    fs::write(&bad_file, &damaged).unwrap();
    let mut second: Vec<ProducerRecord> = Vec::new();
    second.extend((0..2).map(|_| add(&bad)));
    second.extend((0..3).map(|_| add(&same)));
    second.extend((0..4).map(|_| add(&other)));
    rt.block_on(produce(&brokers, second));
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("second.log"), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while states_lenient(&state).get(&other).copied() != Some(9) {
        engine.assert_running();
        assert!(std::time::Instant::now() < deadline, "{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = engine.stop(Duration::from_secs(60));

    assert_eq!(fs::read(&bad_file).unwrap(), damaged, "the damaged file was overwritten:\n{log}");
    assert_eq!(states_lenient(&state).get(&same).copied(), Some(5), "{log}");
    assert_eq!(committed(), [(0, Some(8)), (1, Some(9))].into_iter().collect(), "{log}");
    let health = log.lines().find(|l| l.contains("health at shutdown")).unwrap_or_else(|| panic!("{log}"));
    let stopped = health.split(" stopped=").nth(1).unwrap_or_else(|| panic!("{health}"));
    assert!(stopped.starts_with(&format!("[\"{topic}-0: ")), "{health}");
    assert!(stopped.contains(&format!("{bad}.json")) && stopped.contains(&bad), "{health}");
    assert!(!stopped.contains(&format!("{topic}-1")), "{health}");
    assert!(log.contains("partition stopped"), "{log}");
    let _ = fs::remove_dir_all(&dir);
}

/// Events per workspace, skipping files that are not valid JSON.
fn states_lenient(dir: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&fs::read(&path).unwrap_or_default()) else {
            continue;
        };
        if let (Some(id), Some(n)) = (v["workspace_id"].as_str(), v["events"].as_u64()) {
            out.insert(id.to_string(), n);
        }
    }
    out
}

/// The same when the damaged file turns up while the engine runs (here: a file holding another
/// workspace's id) and is met at the workspace's first event: the partition stops at that
/// event, so the events before it stay applied and committed and none after it are.
#[test]
fn a_workspace_that_cannot_be_loaded_mid_stream_stops_its_partition_at_that_event() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-latebad");
    let group = unique_topic("engine-latebad-group");
    let dir = temp_dir("engine-latebad");
    let state = dir.join("state");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 1));
    let add = |ws: &str| {
        let value = serde_json::json!({"workspace_id": ws, "type": "add"}).to_string();
        ProducerRecord::new(topic.as_str(), value).key(ws.to_string())
    };
    let committed = || Peer::rdkafka().committed(&brokers, &group, &topic)[0].offset;
    rt.block_on(produce(&brokers, (0..5).map(|_| add("ok")).collect()));
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &[]);
    wait_for_events(&mut engine, &state, 5, Duration::from_secs(90));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while committed() != Some(5) {
        assert!(std::time::Instant::now() < deadline, "{}", engine.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    let late_file = state.join("late.json");
    let foreign =
        br#"{"workspace_id": "someone-else", "partition": 0, "offsets": [], "events": 70}"#.to_vec();
    fs::write(&late_file, &foreign).unwrap();
    let placed =
        rt.block_on(produce(&brokers, vec![add("ok"), add("ok"), add("late"), add("ok"), add("ok")]));
    assert_eq!(placed[2], (0, 7));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !engine.log().contains("partition stopped") || committed() != Some(7) {
        engine.assert_running();
        assert!(std::time::Instant::now() < deadline, "committed {:?}:\n{}", committed(), engine.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = engine.stop(Duration::from_secs(60));
    assert_eq!(fs::read(&late_file).unwrap(), foreign, "{log}");
    assert_eq!(states_lenient(&state).get("ok").copied(), Some(7), "{log}");
    assert_eq!(committed(), Some(7), "{log}");
    let health = log.lines().find(|l| l.contains("health at shutdown")).unwrap_or_else(|| panic!("{log}"));
    let stopped = health.split(" stopped=").nth(1).unwrap_or_else(|| panic!("{health}"));
    assert!(stopped.starts_with(&format!("[\"{topic}-0: ")), "{health}");
    assert!(stopped.contains("late.json") && stopped.contains("someone-else"), "{health}");
    assert!(stopped.contains("at offset 7"), "{health}");
    let _ = fs::remove_dir_all(&dir);
}
