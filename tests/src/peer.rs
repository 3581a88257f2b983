//! Third-party clients as test peers: librdkafka (through the confluent-kafka Python package)
//! and Apache Kafka's Java client.
//!
//! Both peers are small programs with the same command line (`tests/peers/rdkafka_peer.py`,
//! `tests/peers/java`), which this module runs: records go in and come out as JSON lines whose
//! byte strings are hex. [`PeerRecord`] is one such line on the Rust side.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::install::{self, Component};
use crate::Error;

/// Which client library a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// librdkafka, via confluent-kafka (Python).
    Rdkafka,
    /// Apache Kafka's `kafka-clients` (Java).
    Java,
}

impl PeerKind {
    /// `"rdkafka"` or `"java"`: also the directory name fixtures are saved under.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Rdkafka => "rdkafka",
            PeerKind::Java => "java",
        }
    }
}

/// Compression codec for [`Peer::produce`]: the codec's own type, whose names are the clients'
/// `compression.type` values.
pub use klamm_protocol::compression::Compression;

/// `acks` for [`Peer::produce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Wait for all in-sync replicas.
    #[default]
    All,
    /// Wait for the leader.
    Leader,
    /// Do not wait; offsets come back as -1.
    None,
}

impl Acks {
    fn arg(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// Where a peer puts records that have no explicit partition, for [`Peer::produce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// The client's own default. For records with a key, the Java client hashes the key with
    /// murmur2 while librdkafka's `consistent_random` hashes it with CRC32.
    #[default]
    ClientDefault,
    /// Records with a key (an empty key included) go to `murmur2(key) & 0x7fffffff` modulo the
    /// partition count, in both peers: librdkafka's `murmur2_random` partitioner, the Java
    /// client's built-in partitioner with `partitioner.ignore.keys=false`. Records without a key
    /// still go where the client likes (librdkafka: a random partition, Java: sticky).
    Murmur2,
}

impl Partitioner {
    fn arg(self) -> &'static str {
        match self {
            Partitioner::ClientDefault => "default",
            Partitioner::Murmur2 => "murmur2",
        }
    }
}

/// How a transactional [`Peer::produce`] ends its one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    /// Commit: read_committed consumers see the records.
    Commit,
    /// Abort: the records occupy offsets, but read_committed consumers skip them.
    Abort,
}

impl Transaction {
    fn arg(self) -> &'static str {
        match self {
            Transaction::Commit => "commit",
            Transaction::Abort => "abort",
        }
    }
}

/// How a peer produces.
#[derive(Debug, Clone, Default)]
pub struct ProduceOptions {
    /// Batch compression.
    pub compression: Compression,
    /// Idempotent producer (off by default in both peers).
    pub idempotent: bool,
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// The partitioner for records without an explicit partition.
    pub partitioner: Partitioner,
    /// Produce every record in one transaction that ends this way (needs `acks` all).
    pub transaction: Option<Transaction>,
}

/// How a peer consumes.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stop when nothing arrived for this long.
    pub idle_timeout: Duration,
    /// Start at the beginning of every partition (the default here); `false` starts at the end
    /// as of the peer's start.
    pub from_beginning: bool,
    /// Consume as a member of this group (subscribe, commit offsets) instead of assigning every
    /// partition without a group. The librdkafka peer only.
    pub group: Option<String>,
    /// Which records of transactions to read; `None` keeps the peer's default (librdkafka:
    /// read_committed; Java: read_uncommitted).
    pub isolation: Option<Isolation>,
}

/// A consumer's `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and of no transaction).
    ReadCommitted,
    /// Every record, aborted transactions' included.
    ReadUncommitted,
}

impl Isolation {
    fn arg(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(10), from_beginning: true, group: None, isolation: None }
    }
}

/// A record as the peers read and print it. Fields that only one direction uses are optional:
/// `offset` and `timestamp_type` are set on consumed records; `partition` and `timestamp` may be
/// left to the producer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The partition (chosen by the producer's partitioner when `None`).
    #[serde(default)]
    pub partition: Option<i32>,
    /// The offset (consumed records only).
    #[serde(default, skip_serializing)]
    pub offset: Option<i64>,
    /// The key; `None` is a null key.
    #[serde(default, with = "hex_bytes")]
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a null value (a tombstone).
    #[serde(default, with = "hex_bytes")]
    pub value: Option<Vec<u8>>,
    /// Headers in order; a header value may be null.
    #[serde(default, with = "hex_headers")]
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch (the producer stamps the current time when `None`).
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// `CreateTime` or `LogAppendTime` (consumed records only).
    #[serde(default, skip_serializing)]
    pub timestamp_type: Option<String>,
}

impl PeerRecord {
    /// A record with this key and value.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self { key: Some(key.into()), value: Some(value.into()), ..Self::default() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), Some(value.into())));
        self
    }

    /// Sends the record to this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the record's timestamp.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Key, value and headers: what a produced record and its consumed copy must share.
    pub fn content(&self) -> (Option<&[u8]>, Option<&[u8]>, &[Header]) {
        (self.key.as_deref(), self.value.as_deref(), &self.headers)
    }
}

/// A record header: name and value (which may be null).
pub type Header = (String, Option<Vec<u8>>);

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    /// Its partition.
    pub partition: i32,
    /// Its offset (-1 with acks=0).
    pub offset: i64,
}

/// A group's committed offset of one partition, as [`Peer::committed`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: i32,
    /// The next offset to consume, `None` when the group committed nothing for the partition.
    pub offset: Option<i64>,
}

/// How long a peer process may run before it is killed, unless `KLAMM_PEER_TIMEOUT_SECS` says
/// otherwise.
const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// A peer client, ready to run.
#[derive(Debug, Clone)]
pub struct Peer {
    kind: PeerKind,
    program: Vec<OsString>,
    /// Client properties every command applies to every client it makes.
    properties: Vec<(String, String)>,
}

impl Peer {
    /// The librdkafka peer; panics (naming the install script) if it is not installed.
    pub fn rdkafka() -> Peer {
        Peer::try_new(PeerKind::Rdkafka).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The Java peer; panics (naming the install script) if it is not installed.
    pub fn java() -> Peer {
        Peer::try_new(PeerKind::Java).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The peer of `kind`; panics if it is not installed.
    pub fn new(kind: PeerKind) -> Peer {
        Peer::try_new(kind).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The peer of `kind`, or why it cannot run.
    pub fn try_new(kind: PeerKind) -> Result<Peer, Error> {
        let program = match kind {
            PeerKind::Rdkafka => {
                let venv = Component::Rdkafka.dir()?;
                vec![
                    venv.join("bin").join("python").into(),
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join("rdkafka_peer.py").into(),
                ]
            }
            PeerKind::Java => {
                let dir = Component::JavaPeer.dir()?;
                let mut p: Vec<OsString> = vec![install::java().into()];
                // Short-lived JVMs: the client compiler and class data sharing start fastest.
                for opt in ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"] {
                    p.push(opt.into());
                }
                p.push("-cp".into());
                p.push(dir.join("lib").join("*").into());
                p.push("dev.klamm.peer.Peer".into());
                p
            }
        };
        Ok(Peer { kind, program, properties: Vec::new() })
    }

    /// This peer with client properties that every command applies to every client it makes
    /// (producer, consumer, admin), after the peer's own defaults: how a peer gets TLS and SASL
    /// settings, say. They reach the peer process in `KLAMM_PEER_PROPERTIES` (a `key=value`
    /// per line), so a value must not contain a line break.
    pub fn with_properties<K: Into<String>, V: Into<String>>(
        mut self,
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Peer {
        for (k, v) in properties {
            let (k, v) = (k.into(), v.into());
            assert!(
                !k.contains(['\n', '=']) && !v.contains('\n'),
                "peer property {k:?}: no line breaks or = in keys"
            );
            self.properties.push((k, v));
        }
        self
    }

    /// Which client this is.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// `"rdkafka"` or `"java"`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Produces `records` to `topic` and returns where each landed, in input order. Panics if
    /// the peer fails.
    pub fn produce(
        &self,
        brokers: &str,
        topic: &str,
        options: &ProduceOptions,
        records: &[PeerRecord],
    ) -> Vec<Delivery> {
        self.try_produce(brokers, topic, options, records).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`produce`](Self::produce), returning the failure instead of panicking.
    pub fn try_produce(
        &self,
        brokers: &str,
        topic: &str,
        options: &ProduceOptions,
        records: &[PeerRecord],
    ) -> Result<Vec<Delivery>, Error> {
        let mut args = vec!["produce", "--brokers", brokers, "--topic", topic];
        args.extend(["--compression", options.compression.name(), "--acks", options.acks.arg()]);
        args.extend(["--partitioner", options.partitioner.arg()]);
        if options.idempotent {
            args.push("--idempotent");
        }
        if let Some(t) = options.transaction {
            args.extend(["--transaction", t.arg()]);
        }
        let mut input = String::new();
        for r in records {
            input.push_str(&serde_json::to_string(r)?);
            input.push('\n');
        }
        let out = self.run(&args, input.into_bytes())?;
        // A peer built before --transaction existed takes it as an unknown option and produces
        // without a transaction; the current one marks each delivery line.
        if options.transaction.is_some()
            && self.kind == PeerKind::Java
            && out.lines().any(|l| !l.trim().is_empty() && !l.contains("\"transaction\""))
        {
            return Err(
                "the installed Java peer predates --transaction: run `scripts/install-test-deps java` \
                        to rebuild it from tests/peers/java"
                    .into(),
            );
        }
        let deliveries: Vec<Delivery> = parse_lines(&out)?;
        if deliveries.len() != records.len() {
            return Err(format!(
                "{} peer reported {} deliveries for {} records",
                self.name(),
                deliveries.len(),
                records.len()
            )
            .into());
        }
        Ok(deliveries)
    }

    /// Reads up to `count` records from every partition of `topic`; returns fewer if nothing
    /// arrives for `options.idle_timeout`. Panics if the peer fails.
    pub fn consume(
        &self,
        brokers: &str,
        topic: &str,
        count: usize,
        options: &ConsumeOptions,
    ) -> Vec<PeerRecord> {
        self.try_consume(brokers, topic, count, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`consume`](Self::consume), returning the failure instead of panicking.
    pub fn try_consume(
        &self,
        brokers: &str,
        topic: &str,
        count: usize,
        options: &ConsumeOptions,
    ) -> Result<Vec<PeerRecord>, Error> {
        let count = count.to_string();
        let idle = options.idle_timeout.as_millis().to_string();
        let mut args = vec!["consume", "--brokers", brokers, "--topic", topic, "--count", &count];
        args.extend(["--timeout-ms", &idle]);
        if options.from_beginning {
            args.push("--from-beginning");
        }
        if let Some(group) = &options.group {
            if self.kind != PeerKind::Rdkafka {
                return Err(format!("the {} peer cannot consume in a group", self.name()).into());
            }
            args.extend(["--group", group]);
        }
        if let Some(isolation) = options.isolation {
            args.extend(["--isolation", isolation.arg()]);
        }
        let out = self.run(&args, Vec::new())?;
        parse_lines(&out)
    }

    /// The offsets `group` has committed for every partition of `topic`, as this client reads
    /// them, by partition. Panics if the peer fails.
    pub fn committed(&self, brokers: &str, group: &str, topic: &str) -> Vec<CommittedOffset> {
        let out = self
            .run(&["committed", "--brokers", brokers, "--topic", topic, "--group", group], Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        parse_lines(&out).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Leaves a hanging transaction behind (librdkafka only): as transactional producer
    /// `transactional_id`, with `transaction_timeout` as its `transaction.timeout.ms`, begins a
    /// transaction, writes `records` to `topic` and exits without committing or aborting.
    /// Returns where each record landed, in input order.
    pub fn hang_transaction(
        &self,
        brokers: &str,
        topic: &str,
        transactional_id: &str,
        transaction_timeout: Duration,
        records: &[PeerRecord],
    ) -> Result<Vec<Delivery>, Error> {
        if self.kind != PeerKind::Rdkafka {
            return Err(format!("the {} peer has no hang-transaction command", self.name()).into());
        }
        let timeout_ms = transaction_timeout.as_millis().to_string();
        let args = [
            "hang-transaction",
            "--brokers",
            brokers,
            "--topic",
            topic,
            "--transactional-id",
            transactional_id,
            "--transaction-timeout-ms",
            &timeout_ms,
        ];
        let mut input = String::new();
        for r in records {
            input.push_str(&serde_json::to_string(r)?);
            input.push('\n');
        }
        let deliveries: Vec<Delivery> = parse_lines(&self.run(&args, input.into_bytes())?)?;
        if deliveries.len() != records.len() {
            return Err(
                format!("{} deliveries reported for {} records", deliveries.len(), records.len()).into()
            );
        }
        Ok(deliveries)
    }

    /// A command that runs the peer with `args` (for long-running peers such as
    /// `group-member`, which the caller follows itself).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program[0]);
        command.args(&self.program[1..]).args(args);
        if !self.properties.is_empty() {
            let lines: Vec<String> = self.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
            command.env("KLAMM_PEER_PROPERTIES", lines.join("\n"));
        }
        command
    }

    /// Runs a command of the peer (such as the benchmarks' `txn-produce` and `copy`) and
    /// returns the JSON object of its last output line.
    pub fn run_for_json(&self, args: &[&str]) -> Result<serde_json::Value, Error> {
        let out = self.run(args, Vec::new())?;
        let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        serde_json::from_str(last)
            .map_err(|e| format!("the {} peer printed {last:?}, not a JSON line: {e}", self.name()).into())
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1). Panics if the peer
    /// fails.
    pub fn create_topic(&self, brokers: &str, topic: &str, partitions: u32) {
        let partitions = partitions.to_string();
        self.run(
            &["create-topic", "--brokers", brokers, "--topic", topic, "--partitions", &partitions],
            Vec::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs the peer with `args`, feeding `stdin`; returns its stdout, or an error with its
    /// stderr when it fails or runs too long.
    fn run(&self, args: &[&str], stdin: Vec<u8>) -> Result<String, Error> {
        let timeout = std::env::var("KLAMM_PEER_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_PEER_TIMEOUT, Duration::from_secs);
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the {} peer ({:?}): {e}", self.name(), self.program[0]))?;
        // Separate threads for the pipes, so that a peer that writes while we write cannot
        // deadlock us.
        let mut input = child.stdin.take().expect("piped");
        let writer = thread::spawn(move || input.write_all(&stdin));
        let mut stdout = child.stdout.take().expect("piped");
        let out_reader = thread::spawn(move || {
            let mut s = Vec::new();
            stdout.read_to_end(&mut s).map(|_| s)
        });
        let mut stderr = child.stderr.take().expect("piped");
        let err_reader = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let _ = writer.join();
        let stdout = out_reader.join().map_err(|_| "stdout reader panicked")??;
        let stderr = err_reader.join().map_err(|_| "stderr reader panicked")?;
        let stderr = String::from_utf8_lossy(&stderr);
        let described = format!("{} peer `{}`", self.name(), args.join(" "));
        match status {
            None => Err(format!("{described} ran longer than {timeout:?}; stderr:\n{stderr}").into()),
            Some(s) if !s.success() => Err(format!("{described} failed ({s}); stderr:\n{stderr}").into()),
            Some(_) => {
                if !stderr.trim().is_empty() && std::env::var_os("KLAMM_PEER_VERBOSE").is_some() {
                    eprintln!("{described} stderr:\n{stderr}");
                }
                Ok(String::from_utf8(stdout)?)
            }
        }
    }
}

fn parse_lines<T: serde::de::DeserializeOwned>(out: &str) -> Result<Vec<T>, Error> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad peer output line {l:?}: {e}").into()))
        .collect()
}

/// `Option<Vec<u8>>` as a hex string or null.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Headers as `[[name, hex|null], ...]`.
mod hex_headers {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    type Headers = Vec<super::Header>;

    pub(super) fn serialize<S: Serializer>(v: &Headers, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for (name, value) in v {
            seq.serialize_element(&(name, value.as_ref().map(hex::encode)))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        Option::<Vec<(String, Option<String>)>>::deserialize(d)?
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let value = value.map(|h| hex::decode(h).map_err(serde::de::Error::custom)).transpose()?;
                Ok((name, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_json_uses_hex_and_nulls() {
        let r = PeerRecord::new("k", "v").header("h", [1u8, 2]).timestamp(5);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"partition":null,"key":"6b","value":"76","headers":[["h","0102"]],"timestamp":5}"#
        );
        let back: PeerRecord = serde_json::from_str(
            r#"{"partition":2,"offset":7,"key":null,"value":"76","headers":[["h",null]],"timestamp":5,"timestamp_type":"CreateTime"}"#,
        )
        .unwrap();
        assert_eq!(back.partition, Some(2));
        assert_eq!(back.offset, Some(7));
        assert_eq!(back.key, None);
        assert_eq!(back.headers, vec![("h".to_owned(), None)]);
        assert_eq!(back.timestamp_type.as_deref(), Some("CreateTime"));
    }
}
