//! The engine's HTTP endpoint against Kafka, read over real HTTP while the engine runs:
//! `/healthz`, `/readyz` (503 while the engine starts and while an assignment is restored, 200
//! once it consumes) and `/metrics` in the Prometheus text format (events per outcome, handler
//! latency, retries, dead-lettered events, rebalances, restore time, per-partition lag and
//! committed offsets, the clients' counters), with values checked against what was produced.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use klamm::ProducerRecord;
use klamm_engine::{
    Engine, EngineConfig, FileStorage, Handler, HandlerContext, HandlerError, Message, StorageError,
    Workspace, WorkspaceStorage,
};
use klamm_tests::{http_get, metric_value, unique_topic, Broker, HttpAnswer};

mod engine_common;

use engine_common::{create_topic, produce, runtime, temp_dir, EngineProcess};

const PARTITIONS: i32 = 3;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

fn get(addr: SocketAddr, path: &str) -> HttpAnswer {
    http_get(addr, path, READ_TIMEOUT).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

/// Reads `/metrics` until `done` holds for it, within `within`; returns that text.
fn metrics_until(addr: SocketAddr, within: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let answer = get(addr, "/metrics");
        assert_eq!(answer.status, 200, "{answer:?}");
        if done(&answer.body) {
            return answer.body;
        }
        assert!(Instant::now() < deadline, "{what} not reached:\n{}", answer.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or_else(|| panic!("no {series}:\n{text}"))
}

fn partition_series(name: &str, topic: &str, partition: i32) -> String {
    format!("{name}{{topic=\"{topic}\",partition=\"{partition}\"}}")
}

/// The `workspace-engine` example with its endpoint on a free port: 503 from `/readyz` while
/// it waits for its topic, 200 once it consumes; `/metrics` shows every event it handled,
/// with lag 0 and the committed offsets at the end of each partition once it caught up.
#[test]
fn the_endpoint_answers_probes_and_scrapes_while_the_engine_runs() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-http");
    let group = unique_topic("engine-http-group");
    let dir = temp_dir("engine-http");
    let state = dir.join("state");
    // The topic does not exist yet: the engine waits for it, live but not ready.
    let no_auto_create = [("KAFKA_CONSUMER_ALLOW_AUTO_CREATE_TOPICS", "false")];
    let mut engine =
        EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &no_auto_create);
    let addr = engine.http_addr(Duration::from_secs(30));
    let live = get(addr, "/healthz");
    assert_eq!(live.status, 200, "{live:?}");
    assert!(live.body.contains(r#""live":true"#), "{live:?}");
    let starting = get(addr, "/readyz");
    assert_eq!(starting.status, 503, "{starting:?}");
    assert!(starting.body.contains(r#""ready":false"#), "{starting:?}");
    assert!(starting.body.contains("the engine is starting"), "{starting:?}");
    let first = get(addr, "/metrics");
    assert_eq!(first.status, 200);
    assert_eq!(first.content_type.as_deref(), Some(klamm_engine::METRICS_CONTENT_TYPE));
    assert_eq!(value(&first.body, "klamm_engine_ready"), 0.0);
    assert_eq!(value(&first.body, "klamm_engine_live"), 1.0);
    assert_eq!(value(&first.body, r#"klamm_engine_events_total{outcome="processed"}"#), 0.0);

    // Now the topic and its events: 3 workspaces, a poison event and a flaky one.
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, PARTITIONS));
    let mut records = Vec::new();
    for i in 0..60 {
        let ws = format!("ws-{}", i % 3);
        let value = serde_json::json!({"workspace_id": ws, "type": "add", "seq": i}).to_string();
        records.push(ProducerRecord::new(topic.as_str(), value).key(ws));
    }
    let poison = serde_json::json!({"workspace_id": "ws-0", "type": "poison"}).to_string();
    records.push(ProducerRecord::new(topic.as_str(), poison).key("ws-0"));
    let flaky = serde_json::json!({"workspace_id": "ws-1", "type": "flaky"}).to_string();
    records.push(ProducerRecord::new(topic.as_str(), flaky).key("ws-1"));
    let written = rt.block_on(produce(&brokers, records));
    let total = written.len() as f64;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &written {
        let end = ends.entry(*p).or_insert(0);
        *end = (*end).max(o + 1);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let answer = get(addr, "/readyz");
        if answer.status == 200 {
            break answer;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        engine.assert_running();
        assert!(Instant::now() < deadline, "never ready: {answer:?}\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ready.body.contains(r#""ready":true"#) && ready.body.contains(r#""reason":null"#), "{ready:?}");
    assert!(ready.body.contains(&format!("\"{topic}-0\"")), "{ready:?}");

    // Every good event processed (the flaky one after two retries), the poison dead-lettered,
    // and the engine caught up: lag 0 and each partition committed up to its end.
    let caught_up = |text: &str| {
        metric_value(text, r#"klamm_engine_events_total{outcome="processed"}"#) == Some(total - 1.0)
            && metric_value(text, r#"klamm_engine_events_total{outcome="dead_lettered"}"#) == Some(1.0)
            && ends.iter().all(|(p, end)| {
                metric_value(text, &partition_series("klamm_engine_committed_offset", &topic, *p))
                    == Some(*end as f64)
                    && metric_value(text, &partition_series("klamm_engine_partition_lag", &topic, *p))
                        == Some(0.0)
            })
    };
    let text = metrics_until(addr, Duration::from_secs(30), "every event handled and committed", caught_up);
    assert_eq!(value(&text, r#"klamm_engine_events_total{outcome="retried"}"#), 2.0);
    // Two failed attempts of the flaky event, one of the poison event.
    assert_eq!(value(&text, r#"klamm_engine_events_total{outcome="failed"}"#), 3.0);
    assert_eq!(value(&text, r#"klamm_engine_events_total{outcome="skipped"}"#), 0.0);
    assert_eq!(value(&text, r#"klamm_engine_events_total{outcome="replayed"}"#), 0.0);
    // One observation per handler attempt.
    assert_eq!(value(&text, "klamm_engine_handler_duration_seconds_count"), total - 1.0 + 3.0);
    assert_eq!(value(&text, r#"klamm_engine_handler_duration_seconds_bucket{le="+Inf"}"#), total - 1.0 + 3.0);
    assert!(value(&text, "klamm_engine_handler_duration_seconds_sum") > 0.0, "{text}");
    assert!(value(&text, r#"klamm_engine_rebalances_total{event="assigned"}"#) >= 1.0, "{text}");
    assert_eq!(value(&text, r#"klamm_engine_rebalances_total{event="lost"}"#), 0.0);
    let restores = value(&text, "klamm_engine_restore_duration_seconds_count");
    assert_eq!(restores, value(&text, r#"klamm_engine_rebalances_total{event="assigned"}"#), "{text}");
    assert_eq!(value(&text, "klamm_engine_assigned_partitions"), f64::from(PARTITIONS));
    assert_eq!(value(&text, "klamm_engine_restoring_partitions"), 0.0);
    assert_eq!(value(&text, "klamm_engine_stopped_partitions"), 0.0);
    assert_eq!(value(&text, "klamm_engine_ready"), 1.0);
    assert!(value(&text, "klamm_engine_connected_brokers") >= 1.0);
    // The clients: the dead-letter producer wrote the poison event; the consumer handed out
    // every event at least once and fetched at least their bytes.
    assert_eq!(value(&text, "klamm_producer_records_sent_total"), 1.0, "{text}");
    assert_eq!(value(&text, "klamm_producer_batches_sent_total"), 1.0, "{text}");
    assert!(value(&text, "klamm_producer_bytes_sent_total") > 0.0, "{text}");
    assert_eq!(value(&text, "klamm_producer_records_failed_total"), 0.0, "{text}");
    assert!(value(&text, "klamm_consumer_records_fetched_total") >= total, "{text}");
    assert!(value(&text, "klamm_consumer_bytes_fetched_total") > 0.0, "{text}");
    assert!(value(&text, "klamm_consumer_fetch_requests_total") >= 1.0, "{text}");
    for client in ["admin", "producer", "consumer"] {
        let series = format!("klamm_client_connections_opened_total{{client=\"{client}\"}}");
        assert!(value(&text, &series) >= 1.0, "{series}:\n{text}");
    }

    let log = engine.stop(Duration::from_secs(30));
    assert!(log.contains("http endpoint listening"), "{log}");
    // The endpoint stops with the engine.
    assert!(http_get(addr, "/healthz", READ_TIMEOUT).is_err(), "still answering after the engine stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file store whose listing takes a while, as a store read back over the network does: the
/// restore of an assignment is long enough to be seen from outside.
struct SlowListing {
    files: FileStorage,
    delay: Duration,
}

impl WorkspaceStorage for SlowListing {
    fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError> {
        self.files.load(id)
    }

    fn save(&self, workspace: &Workspace) -> Result<(), StorageError> {
        self.files.save(workspace)
    }

    fn discover(&self) -> Result<Vec<String>, StorageError> {
        std::thread::sleep(self.delay);
        self.files.discover()
    }
}

struct Count;

impl Handler for Count {
    async fn handle(&self, _msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
        let ws = ctx.workspace().ok_or_else(|| HandlerError::permanent("no workspace"))?;
        let n = ws.data.get("events").and_then(|v| v.as_u64()).unwrap_or(0);
        ws.data.insert("events".into(), (n + 1).into());
        Ok(())
    }
}

/// The engine in this process, with the endpoint on port 0: while it restores its assignment
/// `/readyz` answers 503 naming the partitions being restored, then 200; the restore's time
/// is in `/metrics`.
#[test]
fn readiness_waits_until_the_assignment_is_restored() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-http-restore");
    let dir: PathBuf = temp_dir("engine-http-restore");
    let rt = runtime();
    rt.block_on(create_topic(&brokers, &topic, 2));
    let records = (0..10)
        .map(|i| {
            let ws = format!("ws-{i}");
            ProducerRecord::new(topic.as_str(), serde_json::json!({"n": i}).to_string()).key(ws)
        })
        .collect();
    rt.block_on(produce(&brokers, records));
    let config = EngineConfig {
        brokers: brokers.clone(),
        topics: vec![topic.clone()],
        group_id: unique_topic("engine-http-restore-group"),
        dlq_topic: format!("{topic}.dlq"),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        shutdown_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let delay = Duration::from_secs(2);
    let storage = SlowListing { files: FileStorage::new(dir.join("state")).unwrap(), delay };
    let engine = Engine::builder().config(config).handler(Count).storage(storage).build().unwrap();
    let addr = engine.http_addr().expect("the endpoint is on");
    assert_ne!(addr.port(), 0);
    let metrics = engine.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The engine on a runtime of its own, as a service runs it.
    let run = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(engine.run(async {
            let _ = stopped.await;
        }))
    });

    // 503 while restoring (the listing takes 2 s), naming the partitions; then 200.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut restoring: Option<HttpAnswer> = None;
    let mut restoring_gauge = None;
    loop {
        let answer = get(addr, "/readyz");
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        if answer.body.contains("restoring partitions") && restoring.is_none() {
            restoring_gauge = metric_value(&get(addr, "/metrics").body, "klamm_engine_restoring_partitions");
            restoring = Some(answer.clone());
        }
        assert!(!run.is_finished(), "the engine stopped");
        assert!(Instant::now() < deadline, "never ready: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let restoring = restoring.expect("/readyz never said the assignment was being restored");
    for p in 0..2 {
        assert!(restoring.body.contains(&format!("\"{topic}-{p}\"")), "{restoring:?}");
    }
    assert_eq!(restoring_gauge, Some(2.0));
    let text = metrics_until(addr, Duration::from_secs(30), "every event processed", |t| {
        metric_value(t, r#"klamm_engine_events_total{outcome="processed"}"#) == Some(10.0)
    });
    assert_eq!(value(&text, "klamm_engine_restore_duration_seconds_count"), 1.0);
    let restore_time = value(&text, "klamm_engine_restore_duration_seconds_sum");
    assert!(restore_time >= delay.as_secs_f64(), "restore took {restore_time} s:\n{text}");
    assert_eq!(metrics.snapshot().restore_time.count, 1);

    let _ = stop.send(());
    run.join().unwrap().unwrap();
    assert!(http_get(addr, "/readyz", READ_TIMEOUT).is_err(), "still answering after run returned");
    let _ = std::fs::remove_dir_all(&dir);
}
