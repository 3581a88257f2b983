//! The `workspace-engine` example as a child process, its state files, and topic set-up shared
//! by the engine test files.
// Each test file that includes this module uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use klamm::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{example_binary, unique_topic};

/// A running `workspace-engine` with its stderr in a file.
pub struct EngineProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl EngineProcess {
    pub fn start(
        brokers: &str,
        topic: &str,
        group: &str,
        state: &Path,
        log: PathBuf,
        extra: &[(&str, &str)],
    ) -> Self {
        let file = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(example_binary("klamm-engine", "workspace-engine"));
        cmd.env("KAFKA_BROKERS", brokers)
            .env("KAFKA_TOPIC", topic)
            .env("KAFKA_GROUP_ID", group)
            .env("KAFKA_STATE_DIR", state)
            .env("KAFKA_RETRY_BACKOFF_MS", "20")
            .env("KAFKA_CONSUMER_MAX_POLL_RECORDS", "20")
            // Engines run side by side: each gets a free port for its HTTP endpoint.
            .env("KAFKA_ENGINE_HTTP_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        EngineProcess { child: cmd.spawn().unwrap(), log }
    }

    /// Starts the example with exactly these `KAFKA_*` variables (and `RUST_LOG=info`), none
    /// of the engine's own added: for services that bring variables of their own.
    pub fn start_with(log: PathBuf, vars: &[(&str, &str)]) -> Self {
        let file = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(example_binary("klamm-engine", "workspace-engine"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KAFKA_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
        // The example serves HTTP on a fixed port by default; tests run side by side.
        cmd.env("KAFKA_ENGINE_HTTP_ADDR", "127.0.0.1:0");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        EngineProcess { child: cmd.spawn().unwrap(), log }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self, within: Duration) -> String {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(status.success(), "engine exited with {status}:\n{log}");
                return log;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("engine did not stop within {within:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address of the engine's HTTP endpoint, from its log, waiting up to `within` for
    /// it to be logged.
    pub fn http_addr(&mut self, within: Duration) -> std::net::SocketAddr {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if let Some(addr) = log
                .lines()
                .find_map(|l| field(l, "http endpoint listening", "addr").and_then(|a| a.parse().ok()))
            {
                return addr;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "no http endpoint logged:
{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("engine exited early with {status}:\n{}", self.log());
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every workspace state file, by workspace id.
pub fn states(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        out.insert(v["workspace_id"].as_str().unwrap().to_string(), v);
    }
    out
}

/// A stored workspace's next offset on `partition` of `topic` (its `offsets` list).
pub fn stored_offset(state: &serde_json::Value, topic: &str, partition: i32) -> Option<i64> {
    state["offsets"].as_array()?.iter().find_map(|o| {
        (o["topic"] == topic && o["partition"].as_i64() == Some(i64::from(partition)))
            .then(|| o["offset"].as_i64())
            .flatten()
    })
}

/// Every (topic, partition, offset) a stored workspace holds.
pub fn stored_offsets(state: &serde_json::Value) -> Vec<(String, i32, i64)> {
    state["offsets"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|o| {
                    let topic = o["topic"].as_str().unwrap().to_string();
                    (topic, o["partition"].as_i64().unwrap() as i32, o["offset"].as_i64().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn total_events(dir: &Path) -> u64 {
    states(dir).values().map(|v| v["events"].as_u64().unwrap_or(0)).sum()
}

pub fn wait_for_events(engine: &mut EngineProcess, dir: &Path, at_least: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let n = total_events(dir);
        if n >= at_least {
            return n;
        }
        engine.assert_running();
        assert!(Instant::now() < deadline, "only {n} of {at_least} events applied:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin = Admin::connect(ClientConfig::new(brokers)).await.unwrap();
    let created = admin.create_topics(&[NewTopic::new(topic, partitions, 1)]).await;
    created[0].1.as_ref().unwrap();
    admin.wait_for_topic(topic, Duration::from_secs(30)).await.unwrap();
}

/// Sends `records` in order and returns each one's (partition, offset).
pub async fn produce(brokers: &str, records: Vec<ProducerRecord>) -> Vec<(i32, i64)> {
    let producer = Producer::new(ProducerConfig::new(brokers)).unwrap();
    let mut deliveries = Vec::new();
    for r in records {
        deliveries.push(producer.send(r).await.unwrap());
    }
    let mut out = Vec::new();
    for d in deliveries {
        let m = d.await.unwrap();
        out.push((m.partition, m.offset));
    }
    producer.close(Duration::from_secs(10)).await;
    out
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_topic(name));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of field `name` in an engine log line, after its message `message` (span fields
/// before the message are skipped).
pub fn field<'a>(line: &'a str, message: &str, name: &str) -> Option<&'a str> {
    let rest = &line[line.find(message)? + message.len()..];
    let at = rest.find(&format!(" {name}="))? + name.len() + 2;
    let value = &rest[at..];
    let end = if value.starts_with('[') {
        value.find(']').map_or(value.len(), |e| e + 1)
    } else {
        value.find(' ').unwrap_or(value.len())
    };
    Some(value[..end].trim_matches('"'))
}

/// The partition numbers of a `partitions assigned|revoked|lost partitions=["t-0", ...]` line.
pub fn partitions_of(line: &str, message: &str) -> Vec<i32> {
    let Some(list) = field(line, message, "partitions") else { return Vec::new() };
    list.trim_matches(['[', ']'])
        .split(", ")
        .filter_map(|tp| tp.trim_matches('"').rsplit('-').next()?.parse().ok())
        .collect()
}

/// One engine event of interest, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// Partitions newly assigned.
    Assigned(Vec<i32>),
    /// Partitions revoked or lost.
    Revoked(Vec<i32>),
    /// A stored workspace loaded for an assigned partition.
    Loaded { workspace: String, partition: i32, offset: i64 },
    /// A partition sought to its workspaces' smallest stored offset.
    Seek { partition: i32, stored: i64 },
    /// A partition resumed at its committed offset or, further on, at the store's
    /// saved-through checkpoint: the store holds every save below `offset`.
    Resume { partition: i32, offset: i64 },
}

/// The assignment, workspace, seek and resume events of an engine log.
pub fn engine_events(log: &str) -> Vec<EngineEvent> {
    let mut out = Vec::new();
    for line in log.lines() {
        let num = |message: &str, name: &str| field(line, message, name).and_then(|v| v.parse::<i64>().ok());
        if line.contains("partitions assigned") {
            out.push(EngineEvent::Assigned(partitions_of(line, "partitions assigned")));
        } else if line.contains("partitions revoked") {
            out.push(EngineEvent::Revoked(partitions_of(line, "partitions revoked")));
        } else if line.contains("partitions lost") {
            out.push(EngineEvent::Revoked(partitions_of(line, "partitions lost")));
        } else if line.contains("loaded workspace ") {
            let m = "loaded workspace";
            if let (Some(w), Some(p), Some(o)) =
                (field(line, m, "workspace"), num(m, "partition"), num(m, "offset"))
            {
                out.push(EngineEvent::Loaded { workspace: w.to_string(), partition: p as i32, offset: o });
            }
        } else if line.contains("seek to stored offset") {
            let m = "seek to stored offset";
            if let (Some(p), Some(s)) = (num(m, "partition"), num(m, "stored")) {
                out.push(EngineEvent::Seek { partition: p as i32, stored: s });
            }
        } else if line.contains("resuming at the ") {
            let m = "resuming at the ";
            if let (Some(p), Some(o)) = (num(m, "partition"), num(m, "offset")) {
                out.push(EngineEvent::Resume { partition: p as i32, offset: o });
            }
        }
    }
    out
}

/// The partitions an engine owns at the end of its log.
/// Waits (up to `within`) until engines `a` and `b` share partitions `0..partitions` between
/// them, as their logs say: each owns some, none owns one the other does. Returns what each
/// owns. Fails if either engine exits meanwhile.
pub fn wait_for_split(
    a: &mut EngineProcess,
    b: &mut EngineProcess,
    partitions: i32,
    within: Duration,
) -> (std::collections::BTreeSet<i32>, std::collections::BTreeSet<i32>) {
    let all: std::collections::BTreeSet<i32> = (0..partitions).collect();
    let deadline = Instant::now() + within;
    loop {
        a.assert_running();
        b.assert_running();
        let (oa, ob) = (owned(&engine_events(&a.log())), owned(&engine_events(&b.log())));
        if !oa.is_empty()
            && !ob.is_empty()
            && oa.is_disjoint(&ob)
            && oa.union(&ob).copied().eq(all.iter().copied())
        {
            return (oa, ob);
        }
        assert!(Instant::now() < deadline, "no split:\n{}\n---\n{}", a.log(), b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn owned(events: &[EngineEvent]) -> std::collections::BTreeSet<i32> {
    let mut owned = std::collections::BTreeSet::new();
    for e in events {
        match e {
            EngineEvent::Assigned(p) => owned.extend(p),
            EngineEvent::Revoked(p) => p.iter().for_each(|p| {
                owned.remove(p);
            }),
            _ => {}
        }
    }
    owned
}

/// Checks that every workspace an engine loaded belongs to the partitions of the assignment it
/// was loaded for, and lives on the partition its id hashes to.
pub fn assert_loads_only_its_workspaces(log: &str, partitions: std::num::NonZeroU32) {
    let mut current: Vec<i32> = Vec::new();
    for e in engine_events(log) {
        match e {
            EngineEvent::Assigned(p) => current = p,
            EngineEvent::Loaded { workspace, partition, .. } => {
                assert!(
                    current.contains(&partition),
                    "{workspace} on {partition} loaded for {current:?}:\n{log}"
                );
                let home = klamm::partitioner::partition_for_key(workspace.as_bytes(), partitions);
                assert_eq!(partition, home, "{workspace}");
            }
            _ => {}
        }
    }
}

/// Every record of `topic`, from the beginning to the end offsets it has now.
pub async fn read_topic(brokers: &str, topic: &str) -> Vec<klamm::ConsumerRecord> {
    use klamm::{Consumer, ConsumerConfig, Offset, OffsetSpec, TopicPartition};
    let admin = Admin::connect(ClientConfig::new(brokers)).await.unwrap();
    let meta = admin.wait_for_topic(topic, Duration::from_secs(30)).await.unwrap();
    let partitions: Vec<i32> = (0..meta.partition_count() as i32).collect();
    let asked: Vec<(&str, i32, OffsetSpec)> =
        partitions.iter().map(|p| (topic, *p, OffsetSpec::Latest)).collect();
    let ends: BTreeMap<i32, i64> =
        admin.list_offsets(&asked).await.into_iter().map(|((_, p), r)| (p, r.unwrap().offset)).collect();
    let mut consumer = Consumer::new(ConsumerConfig::new(brokers)).unwrap();
    let tps: Vec<TopicPartition> = partitions.iter().map(|p| TopicPartition::new(topic, *p)).collect();
    consumer.assign(tps.clone());
    for tp in &tps {
        consumer.seek(tp, Offset::Beginning).unwrap();
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |out: &Vec<klamm::ConsumerRecord>| {
        ends.iter().all(|(p, end)| *end == 0 || out.iter().any(|r| r.partition == *p && r.offset + 1 >= *end))
    };
    while !done(&out) {
        assert!(Instant::now() < deadline, "{topic}: read {} records, ends {ends:?}", out.len());
        out.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    consumer.close(Duration::from_secs(5)).await.ok();
    out
}

/// A counter of the last `metrics` line of an engine log (`processed`, `replayed`, ...).
pub fn last_metric(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find(|l| l.contains(" metrics processed="))?
        .split(' ')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}
