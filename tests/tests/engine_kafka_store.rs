//! The Kafka-backed workspace store on a 3-node cluster: two `workspace-engine` processes in
//! one group with `KAFKA_STATE_STORE=kafka` and separate, empty state directories; one is killed
//! with SIGKILL part way and the other takes its partitions over, restoring their workspaces
//! from the changelog topic (`<group>-workspaces-changelog`, read here as tools read it): every
//! workspace applies each of its events exactly once across both. Then a third engine that
//! never ran takes everything over and goes on from the same state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use klamm::{Admin, ClientConfig, NewTopic, ProducerRecord};
use klamm_tests::{unique_topic, Cluster};

mod engine_common;

use engine_common::{
    engine_events, owned, produce, read_topic, runtime, temp_dir, wait_for_split, EngineProcess,
};

const PARTITIONS: i32 = 4;
const WORKSPACES: usize = 24;
const EVENTS: usize = 1_200;

/// The events each workspace's last changelog record says it applied (tombstones delete).
fn changelog_events(rt: &tokio::runtime::Runtime, brokers: &str, changelog: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rt.block_on(read_topic(brokers, changelog)) {
        let id = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
        match &r.value {
            Some(v) => {
                let ws: serde_json::Value = serde_json::from_slice(v).unwrap();
                assert_eq!(ws["workspace_id"].as_str(), Some(id.as_str()));
                let home = klamm::partitioner::partition_for_key(
                    id.as_bytes(),
                    std::num::NonZeroU32::new(PARTITIONS as u32).unwrap(),
                );
                assert_eq!(r.partition, home, "{id}'s record is on its input partition");
                assert_eq!(ws["partition"].as_i64(), Some(i64::from(home)));
                out.insert(id, ws["events"].as_u64().unwrap_or(0));
            }
            None => {
                out.remove(&id);
            }
        }
    }
    out
}

fn wait_for_changelog(
    rt: &tokio::runtime::Runtime,
    brokers: &str,
    changelog: &str,
    engine: &mut EngineProcess,
    want: &BTreeMap<String, u64>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let got = changelog_events(rt, brokers, changelog);
        if &got == want {
            return;
        }
        engine.assert_running();
        assert!(Instant::now() < deadline, "changelog holds {got:?}, want {want:?}:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn engines_without_shared_disk_take_over_from_the_changelog() {
    let cluster = Cluster::start(3);
    let brokers = cluster.bootstrap();
    let topic = unique_topic("engine-kstore");
    let group = unique_topic("engine-kstore-group");
    let changelog = format!("{group}-workspaces-changelog");
    let dir = temp_dir("engine-kstore");
    let rt = runtime();
    rt.block_on(async {
        let admin = Admin::connect(ClientConfig::new(&brokers)).await.unwrap();
        admin.create_topics(&[NewTopic::new(&topic, PARTITIONS, 3)]).await[0].1.as_ref().unwrap();
        admin.wait_for_topic(&topic, Duration::from_secs(30)).await.unwrap();
    });
    let event = |i: usize| {
        let ws = format!("ws-{}", i % WORKSPACES);
        let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
        ProducerRecord::new(topic.as_str(), value).key(ws)
    };
    rt.block_on(produce(&brokers, (0..EVENTS).map(event).collect()));
    let mut want: BTreeMap<String, u64> =
        (0..WORKSPACES).map(|w| (format!("ws-{w}"), (EVENTS / WORKSPACES) as u64)).collect();
    let env = [
        ("KAFKA_STATE_STORE", "kafka"),
        ("WORKSPACE_ENGINE_DELAY_MS", "10"),
        ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"),
    ];

    // Two engines, each with an empty state directory of its own.
    let mut a = EngineProcess::start(&brokers, &topic, &group, &dir.join("a"), dir.join("a.log"), &env);
    let mut b = EngineProcess::start(&brokers, &topic, &group, &dir.join("b"), dir.join("b.log"), &env);
    let (a_owned, _) = wait_for_split(&mut a, &mut b, PARTITIONS, Duration::from_secs(60));
    // Part way: some workspaces saved to the changelog, most events still to come.
    std::thread::sleep(Duration::from_secs(2));
    let a_log = a.kill();
    let before = changelog_events(&rt, &brokers, &changelog);
    assert!(before.values().sum::<u64>() < EVENTS as u64, "the kill came too late:\n{a_log}");

    // b takes a's partitions over, restores them from the changelog and finishes.
    wait_for_changelog(&rt, &brokers, &changelog, &mut b, &want, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let b_log = b.stop(Duration::from_secs(30));
    assert!(b_log.contains("changelog restored"), "{b_log}");
    let takeover = engine_events(&b_log).iter().any(
        |e| matches!(e, engine_common::EngineEvent::Assigned(p) if p.iter().any(|p| a_owned.contains(p))),
    );
    assert!(takeover, "b never took over {a_owned:?}:\n{b_log}");
    assert_eq!(changelog_events(&rt, &brokers, &changelog), want, "each event applied exactly once");
    assert!(std::fs::read_dir(dir.join("b")).map_or(0, |d| d.count()) == 0, "nothing on b's disk");

    // A third engine that never ran restores everything and goes on from the same state.
    let mut c = EngineProcess::start(&brokers, &topic, &group, &dir.join("c"), dir.join("c.log"), &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(&engine_events(&c.log())).len() < PARTITIONS as usize {
        c.assert_running();
        assert!(Instant::now() < deadline, "c was not assigned everything:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    rt.block_on(produce(&brokers, (EVENTS..EVENTS + WORKSPACES).map(event).collect()));
    for n in want.values_mut() {
        *n += 1;
    }
    wait_for_changelog(&rt, &brokers, &changelog, &mut c, &want, Duration::from_secs(60));
    let c_log = c.stop(Duration::from_secs(30));
    let restored: usize = c_log
        .lines()
        .filter(|l| l.contains("changelog restored"))
        .filter_map(|l| engine_common::field(l, "changelog restored", "workspaces")?.parse::<usize>().ok())
        .sum();
    assert_eq!(restored, WORKSPACES, "{c_log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Restore time: 10,000 workspaces of 1 KiB in the changelog, restored by an engine that
/// starts with none. Run by hand (`cargo test -p klamm-tests --release --test
/// engine_kafka_store -- --ignored --nocapture`); the figure is in docs/benchmarks.md.
#[test]
#[ignore]
fn restore_time_of_ten_thousand_workspaces_of_one_kib() {
    const COUNT: usize = 10_000;
    let broker = klamm_tests::Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-restore");
    let group = unique_topic("engine-restore-group");
    let changelog = format!("{group}-workspaces-changelog");
    let dir = temp_dir("engine-restore");
    let rt = runtime();
    rt.block_on(engine_common::create_topic(&brokers, &topic, PARTITIONS));
    let n = std::num::NonZeroU32::new(PARTITIONS as u32).unwrap();
    let records: Vec<ProducerRecord> = (0..COUNT)
        .map(|i| {
            let id = format!("ws-{i}");
            let partition = klamm::partitioner::partition_for_key(id.as_bytes(), n);
            let mut doc =
                serde_json::json!({"workspace_id": id, "partition": partition, "offsets": [], "events": 1});
            let pad = 1024 - doc.to_string().len() - 10;
            doc["pad"] = "x".repeat(pad).into();
            ProducerRecord::new(changelog.as_str(), doc.to_string()).key(id).partition(partition)
        })
        .collect();
    rt.block_on(async {
        let admin = Admin::connect(ClientConfig::new(&brokers)).await.unwrap();
        let new = NewTopic::new(&changelog, PARTITIONS, 1).config("cleanup.policy", "compact");
        admin.create_topics(&[new]).await[0].1.as_ref().unwrap();
        admin.wait_for_topic(&changelog, Duration::from_secs(30)).await.unwrap();
    });
    rt.block_on(produce(&brokers, records));
    let env = [("KAFKA_STATE_STORE", "kafka"), ("RUST_LOG", "info")];
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &dir.join("s"), dir.join("e.log"), &env);
    let deadline = Instant::now() + Duration::from_secs(120);
    let line = loop {
        engine.assert_running();
        if let Some(l) = engine.log().lines().find(|l| l.contains("workspace store restored")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no restore:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = engine.stop(Duration::from_secs(30));
    let restored: usize = log
        .lines()
        .filter_map(|l| engine_common::field(l, "changelog restored", "workspaces")?.parse::<usize>().ok())
        .sum();
    assert_eq!(restored, COUNT, "{log}");
    let ms = engine_common::field(&line, "workspace store restored", "elapsed_ms").unwrap();
    println!("restored {COUNT} workspaces of 1 KiB ({} MiB) in {ms} ms", COUNT / 1024);
    let _ = std::fs::remove_dir_all(&dir);
}
