//! The demo behind `scripts/demo`: the workspace engine end to end against a local Apache Kafka,
//! with a takeover by an engine on another "host" that has none of the first one's files.
//!
//! 1. Start Kafka on a free 127.0.0.1 port, create the `workspace-events` topic (3 partitions)
//!    and produce demo events keyed by workspace id: plain events for six workspaces, a poison
//!    event, a value that is not JSON and a flaky event.
//! 2. Run 1 ("host A"): the `workspace-engine` example with the Kafka-backed workspace store
//!    (`KAFKA_STATE_STORE=kafka`: each saved workspace goes to the compacted changelog topic
//!    `<group>-workspaces-changelog`) and a per-event delay; kill it with SIGKILL part way.
//! 3. Run 2 ("host B"): the same example in the same group, with a new, empty state directory.
//!    It restores the workspaces from the changelog and applies the rest: every workspace's
//!    `events` (read from the changelog, as a tool would) equals the number of its events, so
//!    none was applied twice or skipped, and the dead-letter topic holds the poison and
//!    non-JSON events.
//! 4. Before stopping run 2, read its `/metrics` over HTTP (the example serves it; here on a
//!    free port) and show what it reports: events per outcome, lag and committed offset per
//!    partition, rebalances, restore and handler times, the clients' counters.
//!
//! Exits non-zero when any of those checks fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use klamm::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Offset, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use klamm_tests::{example_binary, http_get, metric_value, Broker, ConsumeOptions, Peer};

const TOPIC: &str = "workspace-events";
const DLQ: &str = "workspace-events.dlq";
const GROUP: &str = "workspace-engine-demo";
const WORKSPACES: [&str; 6] = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
const EVENTS_PER_WORKSPACE: usize = 40;
const DELAY_MS: &str = "20";

/// The demo's outcome: `Err` carries what went wrong.
type Step<T> = Result<T, String>;

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nDEMO FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Step<()> {
    let t0 = Instant::now();
    println!("==> Starting Apache Kafka (KRaft, single node) on a free 127.0.0.1 port...");
    let broker = Broker::kafka();
    let brokers = broker.bootstrap();
    println!("    up at {brokers} after {:.1} s", t0.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (expected, bad) = rt.block_on(prepare(&brokers))?;

    println!("\n==> Building the workspace-engine example...");
    let binary = example_binary("klamm-engine", "workspace-engine");
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let host_a = dir.path().join("host-a");
    let host_b = dir.path().join("host-b");
    let total: u64 = expected.values().sum();
    let changelog = format!("{GROUP}-workspaces-changelog");

    println!(
        "\n==> Run 1 on \"host A\": the engine applies events ({DELAY_MS} ms each) and keeps its workspaces \
         in Kafka (KAFKA_STATE_STORE=kafka, topic {changelog}); we kill it part way with SIGKILL"
    );
    let mut first = EngineRun::start(&binary, &brokers, &host_a, dir.path().join("run1.log"))?;
    let at = total / 3;
    first.wait_until(&rt, &brokers, &changelog, |n| n >= at, Duration::from_secs(90))?;
    let after_first = applied(&rt, &brokers, &changelog)?;
    println!("    {after_first} events applied and saved to the changelog so far; sending SIGKILL");
    let log = first.kill();
    print_log(&log);
    if after_first >= total {
        return Err(format!("run 1 applied all {total} events before it was killed; nothing to take over"));
    }
    println!("\n    The changelog after run 1 (each workspace's last record):");
    print_states(&rt, &brokers, &changelog);

    println!(
        "\n==> Run 2 on \"host B\": a second engine in the same group, with an empty state directory; \
         it restores the workspaces from the changelog and takes every partition over"
    );
    let mut second = EngineRun::start(&binary, &brokers, &host_b, dir.path().join("run2.log"))?;
    second.wait_until(&rt, &brokers, &changelog, |n| n >= total, Duration::from_secs(120))?;
    // Give anything that would be applied twice time to show up.
    std::thread::sleep(Duration::from_secs(2));
    let metrics = second.metrics()?;
    let log = second.stop(Duration::from_secs(60))?;
    print_log(&log);
    if !log.contains("changelog restored") {
        return Err("run 2 did not restore the workspaces from the changelog".into());
    }
    if !log.contains("resuming at the ") {
        return Err("run 2 did not resume from where run 1 had committed".into());
    }
    println!("\n    The changelog after run 2:");
    print_states(&rt, &brokers, &changelog);

    println!("\n==> Checking");
    let found = states(&rt, &brokers, &changelog)?;
    let mut ok = true;
    for (id, want) in &expected {
        let got = found.get(id).and_then(|v| v["events"].as_u64());
        let fine = got == Some(*want);
        ok &= fine;
        println!(
            "    {id:<9} events {:>3}, expected {want:>3}  {}",
            got.map_or("-".into(), |g| g.to_string()),
            if fine { "ok" } else { "WRONG" }
        );
    }
    if !ok {
        return Err("some workspace did not apply each of its events exactly once".into());
    }
    println!("    every event applied exactly once across the two engines, though the first was killed");

    let options = ConsumeOptions { idle_timeout: Duration::from_secs(10), ..ConsumeOptions::default() };
    let dead = Peer::rdkafka().consume(&brokers, DLQ, bad.len(), &options);
    println!("    dead-letter topic {DLQ} (read with librdkafka):");
    for r in &dead {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_deref())
                .map_or(String::new(), |v| String::from_utf8_lossy(v).into_owned())
        };
        println!(
            "      {} offset {} ({}): {}",
            header("original-topic"),
            header("original-offset"),
            header("error-class"),
            header("error")
        );
    }
    for (what, offset) in &bad {
        let there = dead.iter().any(|r| {
            r.headers
                .iter()
                .any(|(k, v)| k == "original-offset" && v.as_deref() == Some(offset.to_string().as_bytes()))
        });
        if !there {
            return Err(format!("the {what} event (offset {offset}) is not on the dead-letter topic"));
        }
    }
    if dead.len() != bad.len() {
        return Err(format!("{} dead-letter records, expected {}", dead.len(), bad.len()));
    }

    println!("\n==> What run 2's /metrics reported before it was stopped (Prometheus text, abridged)");
    print_metrics(&metrics);
    let ready = metric_value(&metrics, "klamm_engine_ready");
    if ready != Some(1.0) {
        return Err(format!("run 2 was not ready at the end (klamm_engine_ready {ready:?})"));
    }
    for p in 0..3 {
        let series = format!("klamm_engine_partition_lag{{topic=\"{TOPIC}\",partition=\"{p}\"}}");
        let lag = metric_value(&metrics, &series);
        if lag != Some(0.0) {
            return Err(format!("{series} is {lag:?} at the end, expected 0"));
        }
    }
    println!("    ready, and no partition lags behind");
    drop(broker);
    println!("\n==> Demo OK in {:.1} s; broker stopped", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Creates the topic and produces the demo events. Returns each workspace's number of events
/// the engine must apply, and the (kind, offset) of the events it must dead-letter (both are
/// acme's, so they share a partition and their offsets tell them apart).
async fn prepare(brokers: &str) -> Step<(BTreeMap<String, u64>, Vec<(&'static str, i64)>)> {
    let admin = Admin::connect(ClientConfig::new(brokers)).await.map_err(|e| format!("admin: {e}"))?;
    let created = admin.create_topics(&[NewTopic::new(TOPIC, 3, 1)]).await;
    if let Some((_, Err(e))) = created.first() {
        return Err(format!("create topic {TOPIC}: {e}"));
    }
    admin.wait_for_topic(TOPIC, Duration::from_secs(30)).await.map_err(|e| format!("{TOPIC}: {e}"))?;
    println!("    created topic {TOPIC} with 3 partitions");

    let mut records = Vec::new();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let event = |ws: &str, kind: &str, seq: usize| {
        let value = serde_json::json!({"workspace_id": ws, "type": kind, "seq": seq}).to_string();
        ProducerRecord::new(TOPIC, value).key(ws.to_string())
    };
    for seq in 0..EVENTS_PER_WORKSPACE {
        for ws in WORKSPACES {
            records.push((None, event(ws, "add", seq)));
            *expected.entry(ws.to_string()).or_default() += 1;
        }
        if seq == 5 {
            records.push((Some("poison"), event("acme", "poison", seq)));
            records.push((Some("non-JSON"), ProducerRecord::new(TOPIC, "this is not JSON").key("acme")));
            records.push((None, event("globex", "flaky", seq)));
            *expected.entry("globex".to_string()).or_default() += 1;
        }
    }
    let producer = Producer::new(ProducerConfig::new(brokers)).map_err(|e| format!("producer: {e}"))?;
    let mut deliveries = Vec::new();
    for (bad, r) in records {
        deliveries.push((bad, producer.send(r).await.map_err(|e| format!("send: {e}"))?));
    }
    let mut bad = Vec::new();
    let n = deliveries.len();
    for (kind, d) in deliveries {
        let meta = d.await.map_err(|e| format!("delivery: {e}"))?;
        if let Some(kind) = kind {
            bad.push((kind, meta.offset));
        }
    }
    producer.close(Duration::from_secs(10)).await;
    println!(
        "    produced {n} events keyed by workspace id: {EVENTS_PER_WORKSPACE} for each of {}, \
         plus a poison event and a non-JSON value (both for acme) and a flaky event (globex)",
        WORKSPACES.join(", ")
    );
    Ok((expected, bad))
}

/// A running `workspace-engine` process with its log in a file.
struct EngineRun {
    child: Child,
    log: PathBuf,
}

impl EngineRun {
    fn start(binary: &Path, brokers: &str, state: &Path, log: PathBuf) -> Step<Self> {
        let file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(binary)
            .env("KAFKA_BROKERS", brokers)
            .env("KAFKA_TOPIC", TOPIC)
            .env("KAFKA_GROUP_ID", GROUP)
            .env("KAFKA_STATE_DIR", state)
            .env("KAFKA_STATE_STORE", "kafka")
            // The first run is killed: a short session lets the group notice it within seconds.
            .env("KAFKA_CONSUMER_SESSION_TIMEOUT", "6s")
            .env("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "1s")
            .env("KAFKA_RETRY_BACKOFF_MS", "50")
            .env("KAFKA_CONSUMER_MAX_POLL_RECORDS", "20")
            .env("WORKSPACE_ENGINE_DELAY_MS", DELAY_MS)
            // A free port for /healthz, /readyz and /metrics (the example's default is 9464).
            .env("KAFKA_ENGINE_HTTP_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        println!("    started workspace-engine (pid {})", child.id());
        Ok(EngineRun { child, log })
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the events applied, by the changelog, satisfy `done`.
    fn wait_until(
        &mut self,
        rt: &tokio::runtime::Runtime,
        brokers: &str,
        changelog: &str,
        done: impl Fn(u64) -> bool,
        within: Duration,
    ) -> Step<()> {
        let deadline = Instant::now() + within;
        loop {
            if done(applied(rt, brokers, changelog)?) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the engine exited early ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("the engine made too little progress:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: the process ends at once, saving and committing nothing more. Returns the log.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }

    /// The engine's `/metrics`, read over HTTP at the address it logged.
    fn metrics(&self) -> Step<String> {
        let log = self.log();
        let addr = log
            .lines()
            .find_map(|l| {
                let rest = &l[l.find("http endpoint listening")?..];
                rest[rest.find(" addr=")? + 6..]
                    .split_whitespace()
                    .next()?
                    .parse::<std::net::SocketAddr>()
                    .ok()
            })
            .ok_or_else(|| format!("the engine logged no http endpoint:\n{log}"))?;
        let answer =
            http_get(addr, "/metrics", Duration::from_secs(5)).map_err(|e| format!("GET /metrics: {e}"))?;
        if answer.status != 200 {
            return Err(format!("GET /metrics answered {}: {}", answer.status, answer.body));
        }
        Ok(answer.body)
    }

    /// SIGTERM, then waits for a clean exit; returns the log.
    fn stop(mut self, within: Duration) -> Step<String> {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            return Err("cannot send SIGTERM".into());
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    return Err(format!("the engine exited with {status}:\n{}", self.log()));
                }
                return Ok(self.log());
            }
            if Instant::now() > deadline {
                return Err(format!("the engine did not stop within {within:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EngineRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints the engine's log lines that tell the story (assignment, workspaces, seeks, DLQ,
/// shutdown), without timestamps and span noise.
fn print_log(log: &str) {
    const TOLD: [&str; 12] = [
        "partitions assigned",
        "changelog restored",
        "workspace store restored",
        "loaded workspace",
        "resuming at the ",
        "seek to stored offset",
        "dead-lettered",
        "transient error; retrying",
        "shutdown requested",
        "final offsets committed",
        "dead-letter topic created",
        "shutdown complete",
    ];
    println!("    engine log:");
    for line in log.lines() {
        if let Some(what) = TOLD.iter().find(|t| line.contains(*t)) {
            let start = line.find(what).unwrap_or(0);
            println!("      | {}", &line[start..]);
        }
    }
}

/// Prints the series of a `/metrics` text worth reading in a demo: the engine's (without the
/// histograms' buckets) and the clients' record counters.
fn print_metrics(text: &str) {
    const SHOWN: [&str; 6] = [
        "klamm_engine_",
        "klamm_producer_records_sent_total",
        "klamm_producer_bytes_sent_total",
        "klamm_consumer_records_fetched_total",
        "klamm_consumer_fetch_requests_total",
        "klamm_client_connections_opened_total",
    ];
    for line in text.lines() {
        if line.starts_with('#') || line.contains("_bucket{") || !SHOWN.iter().any(|s| line.starts_with(s)) {
            continue;
        }
        println!("      {line}");
    }
}

/// Events applied, over every workspace in the changelog.
fn applied(rt: &tokio::runtime::Runtime, brokers: &str, changelog: &str) -> Step<u64> {
    Ok(states(rt, brokers, changelog)?.values().map(|v| v["events"].as_u64().unwrap_or(0)).sum())
}

/// Each workspace's document, as the last record of its key in the changelog topic says
/// (read from the beginning to the end offsets it has now, as any tool can). Empty while the
/// topic does not exist yet.
fn states(
    rt: &tokio::runtime::Runtime,
    brokers: &str,
    changelog: &str,
) -> Step<BTreeMap<String, serde_json::Value>> {
    rt.block_on(read_changelog(brokers, changelog))
}

async fn read_changelog(brokers: &str, changelog: &str) -> Step<BTreeMap<String, serde_json::Value>> {
    let admin = Admin::connect(ClientConfig::new(brokers)).await.map_err(|e| format!("admin: {e}"))?;
    let asked: Vec<(&str, i32, OffsetSpec)> = (0..3).map(|p| (changelog, p, OffsetSpec::Latest)).collect();
    let mut ends = BTreeMap::new();
    for ((_, p), end) in admin.list_offsets(&asked).await {
        match end {
            Ok(end) => {
                ends.insert(p, end.offset);
            }
            // Not created yet: the engine creates it when it starts.
            Err(e)
                if e.kind()
                    == &klamm::ErrorKind::Broker(klamm::protocol::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) =>
            {
                return Ok(BTreeMap::new());
            }
            Err(e) => return Err(format!("end offsets of {changelog}: {e}")),
        }
    }
    let mut consumer = Consumer::new(ConsumerConfig::new(brokers)).map_err(|e| format!("consumer: {e}"))?;
    let tps: Vec<TopicPartition> = ends.keys().map(|p| TopicPartition::new(changelog, *p)).collect();
    consumer.assign(tps.clone());
    for tp in &tps {
        consumer.seek(tp, Offset::Beginning).map_err(|e| format!("seek: {e}"))?;
    }
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ends.iter().any(|(p, end)| next.get(p).copied().unwrap_or(0) < *end) {
        if Instant::now() > deadline {
            return Err(format!("{changelog}: could not read up to {ends:?} in 30 s"));
        }
        for r in consumer.poll(Duration::from_millis(200)).await.map_err(|e| format!("poll: {e}"))? {
            next.insert(r.partition, r.offset + 1);
            let Some(key) = r.key.as_deref() else { continue };
            let id = String::from_utf8_lossy(key).into_owned();
            match &r.value {
                Some(v) => {
                    let doc = serde_json::from_slice(v).map_err(|e| format!("{changelog} {id}: {e}"))?;
                    out.insert(id, doc);
                }
                None => {
                    out.remove(&id);
                }
            }
        }
    }
    consumer.close(Duration::from_secs(5)).await.ok();
    Ok(out)
}

fn print_states(rt: &tokio::runtime::Runtime, brokers: &str, changelog: &str) {
    match states(rt, brokers, changelog) {
        Ok(s) => {
            for (id, v) in s {
                println!("      {id:<9} {v}");
            }
        }
        Err(e) => println!("      cannot read: {e}"),
    }
}
