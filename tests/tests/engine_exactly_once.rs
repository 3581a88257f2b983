//! The engine's exactly-once mode against Kafka: the `workspace-engine` example with
//! `KAFKA_ENGINE_EXACTLY_ONCE=true` and the Kafka store publishes one event per input event
//! (`HandlerContext::publish`) and is killed with SIGKILL part way, twice, then restarted and
//! left to finish. Read with read_committed (Klamm's consumer and librdkafka's), the published
//! topic holds each input event exactly once, the dead-letter topic each poison event exactly
//! once, and the workspaces in the changelog topic applied each input event exactly once,
//! though the killed runs left aborted writes behind.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use klamm::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetSpec,
    ProducerRecord, TopicPartition,
};
use klamm_tests::{http_get, metric_value, unique_topic, Broker, ConsumeOptions, Isolation, Peer};

mod engine_common;

use engine_common::{create_topic, produce, runtime, temp_dir, wait_for_split, EngineProcess};

const PARTITIONS: i32 = 4;
const WORKSPACES: usize = 12;
const EVENTS: usize = 1_200;

/// Every record of `topic` up to its end offsets now, read with `isolation`: done once each
/// partition's position reaches its end (past the transaction markers, which are never handed
/// out).
async fn read_all(brokers: &str, topic: &str, isolation: IsolationLevel) -> Vec<ConsumerRecord> {
    let admin = Admin::connect(ClientConfig::new(brokers)).await.unwrap();
    let asked: Vec<(&str, i32, OffsetSpec)> =
        (0..PARTITIONS).map(|p| (topic, p, OffsetSpec::Latest)).collect();
    let ends: Vec<(TopicPartition, i64)> = admin
        .list_offsets(&asked)
        .await
        .into_iter()
        .map(|((_, p), r)| (TopicPartition::new(topic, p), r.unwrap().offset))
        .collect();
    let mut consumer = Consumer::new(ConsumerConfig::new(brokers).isolation_level(isolation)).unwrap();
    consumer.assign(ends.iter().map(|(tp, _)| tp.clone()));
    for (tp, _) in &ends {
        consumer.seek(tp, Offset::Beginning).unwrap();
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.iter().all(|(tp, end)| *end == 0 || consumer.position(tp).is_some_and(|p| p >= *end)) {
        let at: Vec<_> = ends.iter().map(|(tp, e)| (tp.partition, consumer.position(tp), *e)).collect();
        assert!(Instant::now() < deadline, "{topic} ({isolation:?}): positions and ends {at:?}");
        out.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    consumer.close(Duration::from_secs(5)).await.ok();
    out
}

/// The sum of `topic`'s end offsets (records written, aborted ones and markers included).
/// What `topic` holds: offsets written in all (records and transaction markers), and how many
/// of them belong to transactions still open (the high watermarks less the last stable
/// offsets).
async fn written(brokers: &str, topic: &str) -> (i64, i64) {
    let admin = Admin::connect(ClientConfig::new(brokers)).await.unwrap();
    let asked: Vec<(&str, i32, OffsetSpec)> =
        (0..PARTITIONS).map(|p| (topic, p, OffsetSpec::Latest)).collect();
    let sum = |listed: klamm::PartitionResults<klamm::ListedOffset>| -> i64 {
        listed.into_iter().map(|(_, r)| r.unwrap().offset).sum()
    };
    let high = sum(admin.list_offsets(&asked).await);
    let stable = sum(admin.list_offsets_isolated(&asked, IsolationLevel::ReadCommitted).await);
    (high, high - stable)
}

/// The `seq` of each published event, with how often it was read.
fn published_seqs(records: &[ConsumerRecord]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        *seen.entry(v["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

/// Every 100th event is a poison event, which the example's handler fails permanently: it is
/// dead-lettered (in the transaction), and neither published nor applied.
fn is_poison(seq: usize) -> bool {
    seq % 100 == 99
}

/// The seqs of the events that are published and applied.
fn applied() -> impl Iterator<Item = usize> {
    (0..EVENTS).filter(|i| !is_poison(*i))
}

/// Topics and events of one test: the input with [`EVENTS`] events over [`WORKSPACES`]
/// workspaces (each with its `seq`), the published topic, the group and its changelog.
struct Setup {
    brokers: String,
    input: String,
    output: String,
    group: String,
    changelog: String,
    /// The end offset of each input partition once every event is in.
    input_ends: HashMap<i32, i64>,
    dir: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new(broker: &Broker, name: &str) -> Setup {
        let brokers = broker.bootstrap();
        let input = unique_topic(&format!("{name}-in"));
        let output = unique_topic(&format!("{name}-out"));
        let group = unique_topic(&format!("{name}-group"));
        let changelog = format!("{group}-workspaces-changelog");
        let dir = temp_dir(name);
        let rt = runtime();
        rt.block_on(create_topic(&brokers, &input, PARTITIONS));
        rt.block_on(create_topic(&brokers, &output, PARTITIONS));
        let records: Vec<ProducerRecord> = (0..EVENTS)
            .map(|i| {
                let ws = format!("ws-{}", i % WORKSPACES);
                let kind = if is_poison(i) { "poison" } else { "add" };
                let value = serde_json::json!({"workspace_id": ws, "type": kind, "seq": i}).to_string();
                ProducerRecord::new(input.as_str(), value).key(ws)
            })
            .collect();
        let placed = rt.block_on(produce(&brokers, records));
        let mut input_ends: HashMap<i32, i64> = HashMap::new();
        for (p, o) in &placed {
            let e = input_ends.entry(*p).or_insert(0);
            *e = (*e).max(o + 1);
        }
        Setup { brokers, input, output, group, changelog, input_ends, dir, rt }
    }

    /// The example's variables: exactly-once, the Kafka store, one published event per input.
    fn env<'a>(&'a self, transactional_id: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("KAFKA_STATE_STORE", "kafka"),
            ("KAFKA_ENGINE_EXACTLY_ONCE", "true"),
            ("WORKSPACE_ENGINE_PUBLISH_TOPIC", self.output.as_str()),
            ("WORKSPACE_ENGINE_DELAY_MS", "15"),
            ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"),
        ];
        if let Some(id) = transactional_id {
            env.push(("KAFKA_ENGINE_TRANSACTIONAL_ID", id));
        }
        env
    }

    fn start(&self, log: &str, env: &[(&str, &str)]) -> EngineProcess {
        EngineProcess::start(
            &self.brokers,
            &self.input,
            &self.group,
            &self.dir.join("state"),
            self.dir.join(log),
            env,
        )
    }

    /// Waits until `engine` has written at least `records` offsets to the output (records,
    /// aborted ones included, and transaction markers).
    fn wait_written(&self, engine: &mut EngineProcess, records: i64) {
        self.wait_output(engine, records, false)
    }

    /// Waits until `engine` has written at least `records` offsets to the output and a
    /// transaction of it holds some not yet committed, so that a kill or a stop now leaves
    /// writes for the coordinator to abort.
    fn wait_written_in_open_transaction(&self, engine: &mut EngineProcess, records: i64) {
        self.wait_output(engine, records, true)
    }

    fn wait_output(&self, engine: &mut EngineProcess, records: i64, open_transaction: bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (high, open) = self.rt.block_on(written(&self.brokers, &self.output));
            if high >= records && (open > 0 || !open_transaction) {
                return;
            }
            engine.assert_running();
            assert!(
                Instant::now() < deadline,
                "{records} records never written (open transaction wanted: {open_transaction}):\n{}",
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `engine`'s `/metrics` show the input committed to its end on every
    /// partition; returns that scrape.
    fn wait_all_committed(&self, engine: &mut EngineProcess) -> String {
        let addr = engine.http_addr(Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            engine.assert_running();
            if let Ok(answer) = http_get(addr, "/metrics", Duration::from_secs(5)) {
                let done = self.input_ends.iter().all(|(p, end)| {
                    let series = format!(
                        "klamm_engine_committed_offset{{topic=\"{}\",partition=\"{p}\"}}",
                        self.input
                    );
                    metric_value(&answer.body, &series) == Some(*end as f64)
                });
                if done {
                    return answer.body;
                }
            }
            assert!(Instant::now() < deadline, "the input was not committed to its end:\n{}", engine.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Checks, with Klamm's and librdkafka's read_committed consumers, that the published topic
    /// holds each input event exactly once and that each workspace in the changelog applied
    /// each of its input events exactly once.
    fn assert_exactly_once(&self) {
        let (rt, brokers, output, changelog) = (&self.rt, &self.brokers, &self.output, &self.changelog);
        // The published topic, read_committed: each input event exactly once.
        let read = rt.block_on(read_all(brokers, output, IsolationLevel::ReadCommitted));
        let seqs = published_seqs(&read);
        let missing: Vec<usize> = applied().filter(|s| !seqs.contains_key(&(*s as u64))).collect();
        let twice: Vec<(&u64, &usize)> = seqs.iter().filter(|(_, n)| **n != 1).collect();
        assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, more than once {twice:?}");
        assert_eq!(read.len(), applied().count());
        for r in &read {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            assert_eq!(r.key.as_deref(), v["workspace_id"].as_str().map(str::as_bytes), "{v}");
        }

        // librdkafka's read_committed consumer reads the same.
        let options = ConsumeOptions {
            idle_timeout: Duration::from_secs(5),
            isolation: Some(Isolation::ReadCommitted),
            ..ConsumeOptions::default()
        };
        let peer = Peer::rdkafka().consume(brokers, output, applied().count() + 1, &options);
        let mut peer_seqs: Vec<u64> = peer
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                v["seq"].as_u64().unwrap()
            })
            .collect();
        peer_seqs.sort_unstable();
        assert_eq!(peer_seqs, applied().map(|i| i as u64).collect::<Vec<_>>(), "librdkafka read_committed");

        // The dead-letter topic, read_committed: each poison event exactly once.
        let dead =
            rt.block_on(read_all(brokers, &format!("{}.dlq", self.input), IsolationLevel::ReadCommitted));
        let mut dead_seqs: Vec<u64> = dead
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                v["seq"].as_u64().unwrap()
            })
            .collect();
        dead_seqs.sort_unstable();
        let poison: Vec<u64> = (0..EVENTS).filter(|i| is_poison(*i)).map(|i| i as u64).collect();
        assert_eq!(dead_seqs, poison, "dead-lettered");

        // The workspaces, as the changelog's committed records hold them: each applied each of its
        // input events exactly once.
        let mut last: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for r in rt.block_on(read_all(brokers, changelog, IsolationLevel::ReadCommitted)) {
            let id = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            match &r.value {
                Some(v) => {
                    last.insert(id, serde_json::from_slice(v).unwrap());
                }
                None => {
                    last.remove(&id);
                }
            }
        }
        assert_eq!(last.len(), WORKSPACES);
        for (id, ws) in &last {
            let w: usize = id.trim_start_matches("ws-").parse().unwrap();
            let want: Vec<u64> = applied().filter(|i| i % WORKSPACES == w).map(|i| i as u64).collect();
            let mut got: Vec<u64> =
                ws["seqs"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{id} applied these inputs");
            assert_eq!(ws["events"].as_u64(), Some(want.len() as u64), "{id}");
        }
    }
}

#[test]
fn killed_engines_publish_and_apply_each_event_exactly_once() {
    let broker = Broker::shared_kafka();
    let setup = Setup::new(broker, "engine-eos");
    let (rt, brokers, output) = (&setup.rt, &setup.brokers, &setup.output);
    let env = setup.env(None);

    // Two runs killed part way, each once it has written more to the published topic.
    let mut logs = Vec::new();
    for run in 1..=2i64 {
        let mut engine = setup.start(&format!("run-{run}.log"), &env);
        setup.wait_written_in_open_transaction(&mut engine, run * EVENTS as i64 / 4);
        logs.push(engine.kill());
    }
    for (i, log) in logs.iter().enumerate() {
        assert!(log.contains("exactly-once: transactions initialised"), "run {}:\n{log}", i + 1);
    }
    let committed_before =
        published_seqs(&rt.block_on(read_all(brokers, output, IsolationLevel::ReadCommitted)));
    assert!(committed_before.len() < EVENTS, "the kills came too late: {} published", committed_before.len());
    let twice: Vec<(&u64, &usize)> = committed_before.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "published more than once after the kills: {twice:?}");

    // A third run finishes: its committed offsets reach the end of every input partition.
    let mut engine = setup.start("run-3.log", &env);
    let metrics = setup.wait_all_committed(&mut engine);
    let committed_txns = metric_value(&metrics, r#"klamm_engine_transactions_total{outcome="committed"}"#);
    assert!(committed_txns.is_some_and(|n| n >= 1.0), "{metrics}");
    let log = engine.stop(Duration::from_secs(30));
    assert!(log.contains("final transaction committed"), "{log}");

    setup.assert_exactly_once();
    // read_uncommitted shows what the killed runs wrote and never committed.
    let everything = rt.block_on(read_all(brokers, output, IsolationLevel::ReadUncommitted));
    println!("published: {} committed, {} written in all", applied().count(), everything.len());
    assert!(everything.len() > applied().count(), "the kills left no aborted writes: {}", everything.len());
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// Two engines in one group, each with a transactional.id of its own: the second joining makes
/// the first commit its open transaction before it gives partitions up; then the first is
/// killed and the second takes its partitions over (once the dead one's transaction timed out)
/// and finishes: still each event exactly once.
#[test]
fn a_group_member_takes_over_a_killed_one_exactly_once() {
    let broker = Broker::shared_kafka();
    let setup = Setup::new(broker, "engine-eos-group");
    let a_id = format!("{}-a", setup.group);
    let b_id = format!("{}-b", setup.group);
    let (a_env, b_env) = (setup.env(Some(&a_id)), setup.env(Some(&b_id)));
    let mut a = setup.start("a.log", &a_env);
    setup.wait_written(&mut a, 100);
    let mut b = setup.start("b.log", &b_env);
    wait_for_split(&mut a, &mut b, PARTITIONS, Duration::from_secs(60));
    // The revocation commits a's open transaction; when a commit of a's was already under way
    // as the new generation formed, the coordinator refuses that one and a aborts and rewinds
    // instead (the race Kafka Streams meets as a migrated task). Either way nothing is lost.
    let a_log = a.log();
    assert!(
        a_log.contains("transaction committed before revocation")
            || a_log.contains("aborting the transaction"),
        "{a_log}"
    );
    let so_far = setup.rt.block_on(written(&setup.brokers, &setup.output)).0;
    setup.wait_written_in_open_transaction(&mut a, so_far + 150);
    let a_log = a.kill();
    let metrics = setup.wait_all_committed(&mut b);
    println!(
        "revocation: {}",
        if a_log.contains("transaction committed before revocation") { "committed" } else { "aborted" }
    );
    let b_log = b.stop(Duration::from_secs(30));
    assert!(metrics.contains("klamm_engine_transactions_total"), "{metrics}");
    assert!(a_log.contains("exactly-once: transactions initialised"), "{a_log}");
    assert!(b_log.contains("final transaction committed"), "{b_log}");
    setup.assert_exactly_once();
    let _ = std::fs::remove_dir_all(&setup.dir);
}

fn signal(engine: &EngineProcess, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &engine.child.id().to_string()])
        .status();
    assert!(status.unwrap().success(), "kill -{name}");
}

/// A member paused (SIGSTOP) past its session timeout is a zombie: the other member takes its
/// partitions over. When it wakes up its open transaction cannot commit (the group coordinator
/// refuses offsets of a generation that is gone, KIP-447, or the member learns it lost its
/// partitions): it aborts and rewinds, and nothing it did as a zombie becomes visible.
#[test]
fn a_paused_member_aborts_what_it_did_as_a_zombie() {
    let broker = Broker::shared_kafka();
    let setup = Setup::new(broker, "engine-eos-zombie");
    let a_id = format!("{}-a", setup.group);
    let b_id = format!("{}-b", setup.group);
    let (a_env, b_env) = (setup.env(Some(&a_id)), setup.env(Some(&b_id)));
    let mut a = setup.start("a.log", &a_env);
    let a_addr = a.http_addr(Duration::from_secs(30));
    setup.wait_written(&mut a, 100);
    let mut b = setup.start("b.log", &b_env);
    wait_for_split(&mut a, &mut b, PARTITIONS, Duration::from_secs(60));
    let so_far = setup.rt.block_on(written(&setup.brokers, &setup.output)).0;
    setup.wait_written_in_open_transaction(&mut a, so_far + 60);
    // Past the session timeout (6 s), within the transaction timeout (10 s): the group moves
    // a's partitions while its transaction is still open.
    signal(&a, "STOP");
    std::thread::sleep(Duration::from_secs(8));
    signal(&a, "CONT");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a.log().contains("aborting the transaction") {
        a.assert_running();
        assert!(Instant::now() < deadline, "a never aborted:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = http_get(a_addr, "/metrics", Duration::from_secs(5)).unwrap().body;
    let aborted = metric_value(&text, r#"klamm_engine_transactions_total{outcome="aborted"}"#);
    assert!(aborted.is_some_and(|n| n >= 1.0), "{text}");
    a.stop(Duration::from_secs(30));
    setup.wait_all_committed(&mut b);
    let b_log = b.stop(Duration::from_secs(30));
    assert!(b_log.contains("final transaction committed"), "{b_log}");
    setup.assert_exactly_once();
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// A second instance started with the same transactional.id fences the first: the first's
/// next transactional call fails as fenced and it stops with the error (the health snapshot's
/// last error, logged at shutdown), while the second goes on and finishes exactly once.
#[test]
fn an_instance_fenced_by_its_transactional_id_stops() {
    let broker = Broker::shared_kafka();
    let setup = Setup::new(broker, "engine-eos-fenced");
    let id = format!("{}-same", setup.group);
    let env = setup.env(Some(&id));
    let mut a = setup.start("a.log", &env);
    setup.wait_written(&mut a, 100);
    let mut b = setup.start("b.log", &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        b.assert_running();
        assert!(Instant::now() < deadline, "a was not fenced:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let a_log = a.log();
    assert!(!status.success(), "a exited with {status}:\n{a_log}");
    assert!(a_log.contains("workspace-engine failed"), "{a_log}");
    assert!(a_log.to_ascii_lowercase().contains("fenced"), "{a_log}");
    setup.wait_all_committed(&mut b);
    b.stop(Duration::from_secs(30));
    setup.assert_exactly_once();
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// Without exactly-once (and with the file store), `ctx.publish` sends each handler's events
/// through the engine's producer once the handler returned `Ok`: every applied event is
/// published, read back by a read_uncommitted consumer.
#[test]
fn without_exactly_once_handlers_publish_through_the_engine() {
    let broker = Broker::shared_kafka();
    let setup = Setup::new(broker, "engine-publish-ctx");
    let env = [
        ("WORKSPACE_ENGINE_PUBLISH_TOPIC", setup.output.as_str()),
        ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"),
    ];
    let mut engine = setup.start("engine.log", &env);
    setup.wait_written(&mut engine, applied().count() as i64);
    let log = engine.stop(Duration::from_secs(30));
    assert!(!log.contains("exactly-once"), "{log}");
    let read = setup.rt.block_on(read_all(&setup.brokers, &setup.output, IsolationLevel::ReadUncommitted));
    let seqs = published_seqs(&read);
    let want: Vec<u64> = applied().map(|i| i as u64).collect();
    assert_eq!(seqs.keys().copied().collect::<Vec<_>>(), want);
    assert!(seqs.values().all(|n| *n == 1), "no crash, no replay: {seqs:?}");
    for r in &read {
        let source = r.headers.iter().find(|h| &*h.key == b"source").and_then(|h| h.value.clone());
        assert_eq!(source.as_deref(), Some(setup.group.as_bytes()), "the source header is the group id");
    }
    let _ = std::fs::remove_dir_all(&setup.dir);
}
