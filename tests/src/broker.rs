//! Real brokers on 127.0.0.1: Apache Kafka (KRaft, one node that is broker and controller) as
//! the reference, and tansu as a second implementation.
//!
//! Each broker gets a fresh directory for its configuration, data and log, and free ports. It is
//! ready once it answers an ApiVersions request, which is also when Kafka's client listener
//! opens (the broker starts its acceptors last).
//!
//! A broker must not outlive the tests, even when the test process is killed or when it sits in
//! a `static` (Rust never drops statics). So the broker runs under a small `sh` supervisor whose
//! stdin is a pipe from the test process: the supervisor kills the broker, and removes its
//! directory, when that pipe closes - which happens when the [`Broker`] is dropped and when the
//! test process dies for any reason, since the kernel closes its descriptors.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use klamm_protocol::api::api_versions::ApiVersionsRequest;

use crate::install::{self, Component};
use crate::ports::free_port;
use crate::raw_connection::RawConnection;
use crate::Error;

/// Which broker implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Apache Kafka from Maven Central, KRaft mode.
    Kafka,
    /// tansu from crates.io, in-memory storage.
    Tansu,
}

impl BrokerKind {
    /// `"kafka"` or `"tansu"`.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::Tansu => "tansu",
        }
    }
}

/// How long a broker may take to answer its first ApiVersions, unless
/// `KLAMM_BROKER_START_TIMEOUT_SECS` says otherwise. Kafka starts in 5-20 s on two busy cores.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

/// The cluster id every test Kafka cluster is formatted with (base64 of "klamm-test-clstr").
pub(crate) const KAFKA_CLUSTER_ID: &str = "a2xhbW0tdGVzdC1jbHN0cg";

/// The broker's output (stdout, stderr) in its directory.
pub(crate) const LOG_FILE: &str = "broker.log";

/// Settings for a broker to start. [`Broker::kafka`] and [`Broker::tansu`] start one with the
/// defaults.
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    kind: BrokerKind,
    partitions: u32,
    advertised_port: Option<u16>,
    config: Vec<(String, String)>,
    listeners: Vec<(String, String)>,
    start_timeout: Duration,
    features: Vec<String>,
}

impl BrokerBuilder {
    /// Defaults: 3 partitions per auto-created topic, advertises its own port.
    pub fn new(kind: BrokerKind) -> Self {
        let start_timeout = std::env::var("KLAMM_BROKER_START_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_START_TIMEOUT, Duration::from_secs);
        Self {
            kind,
            partitions: 3,
            advertised_port: None,
            config: Vec::new(),
            listeners: Vec::new(),
            start_timeout,
            features: Vec::new(),
        }
    }

    /// Partitions of auto-created topics (Kafka's `num.partitions`).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Tells clients (in Metadata responses) to connect to `127.0.0.1:port` instead of the port
    /// the broker listens on: where a [`FaultProxy`](crate::FaultProxy) (or a proxy built on it)
    /// listens, so that clients keep talking through it after bootstrap.
    pub fn advertised_port(mut self, port: u16) -> Self {
        self.advertised_port = Some(port);
        self
    }

    /// A feature level the Kafka storage is formatted with, as `name=level` (the storage tool's
    /// `--feature`), e.g. `transaction.version=1` for a cluster on transactions version 1.
    /// Such a broker formats its own storage (a JVM start more) instead of copying the shared
    /// template. Kafka only.
    pub fn feature(mut self, feature: &str) -> Self {
        self.features.push(feature.to_owned());
        self
    }

    /// An extra broker property (Kafka's `server.properties`; ignored by tansu). Later values
    /// override the harness defaults.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// An extra client listener named `name` (letters, digits and `_`; not `CLIENT`,
    /// `INTERNAL` or `CONTROLLER`) with Kafka security protocol `security_protocol`
    /// (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`), on a free port of its own; see
    /// [`Broker::listener_addr`]. Kafka only. The plaintext `CLIENT` listener stays: the harness
    /// checks readiness through it and the brokers' own traffic never uses the extra ones.
    ///
    /// Its settings go through [`config`](Self::config) with Kafka's per-listener prefix, the
    /// name in lower case: `listener.name.<name>.ssl.keystore.type`,
    /// `listener.name.<name>.sasl.enabled.mechanisms`,
    /// `listener.name.<name>.plain.sasl.jaas.config`, ...
    pub fn listener(mut self, name: &str, security_protocol: &str) -> Self {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "listener name {name:?}: letters, digits and _ only"
        );
        assert!(
            !["CLIENT", "INTERNAL", "CONTROLLER"].contains(&name.to_ascii_uppercase().as_str()),
            "listener name {name:?} is the harness's own"
        );
        assert!(
            ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&security_protocol),
            "{security_protocol:?} is not a Kafka security protocol"
        );
        self.listeners.push((name.to_ascii_uppercase(), security_protocol.to_owned()));
        self
    }

    /// How long to wait for the broker to answer.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the broker and waits until it answers ApiVersions. When the start fails, the error
    /// carries the tail of the broker's log.
    pub fn start(&self) -> Result<Broker, Error> {
        // A port picked as free can be taken before the broker binds it; try again then.
        let mut last = None;
        for _ in 0..3 {
            match self.try_start() {
                Ok(broker) => return Ok(broker),
                Err(StartError::AddressInUse(e)) => last = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| "broker start failed".into()))
    }

    fn try_start(&self) -> Result<Broker, StartError> {
        let port = free_port()?;
        let advertised_port = self.advertised_port.unwrap_or(port);
        let dir = tempfile::Builder::new().prefix(&format!("klamm-{}-", self.kind.name())).tempdir()?.keep();
        let keep_dir = std::env::var_os("KLAMM_KEEP_BROKER_DIRS").is_some_and(|v| !v.is_empty() && v != "0");
        if self.kind != BrokerKind::Kafka && !self.listeners.is_empty() {
            return Err(StartError::Other("extra listeners are a Kafka-only setting".into()));
        }
        let mut listeners = Vec::with_capacity(self.listeners.len());
        for (name, protocol) in &self.listeners {
            listeners.push(ExtraListener {
                name: name.clone(),
                port: free_port()?,
                protocol: protocol.clone(),
            });
        }
        let command = match self.kind {
            BrokerKind::Kafka => self.kafka_command(&dir, port, advertised_port, &listeners),
            BrokerKind::Tansu => self.tansu_command(port, advertised_port),
        };
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(StartError::Other(e));
            }
        };
        let (supervisor, lifeline) = supervise(&dir, &command, !keep_dir)?;
        let broker = Broker {
            kind: self.kind,
            dir,
            port,
            advertised_port,
            listeners,
            supervisor: Mutex::new(supervisor),
            lifeline: Mutex::new(Some(lifeline)),
            keep_dir,
        };
        match broker.wait_until_ready(self.start_timeout) {
            Ok(()) => Ok(broker),
            Err(e) => {
                let tail = broker.log_tail(40);
                let in_use = tail.contains("Address already in use");
                let msg = format!(
                    "{} broker on 127.0.0.1:{} did not come up: {e}\n--- last lines of {} ---\n{tail}",
                    self.kind.name(),
                    port,
                    broker.dir.join(LOG_FILE).display()
                );
                Err(if in_use { StartError::AddressInUse(msg.into()) } else { StartError::Other(msg.into()) })
            }
        }
    }

    fn kafka_command(
        &self,
        dir: &Path,
        port: u16,
        advertised_port: u16,
        listeners: &[ExtraListener],
    ) -> Result<Vec<String>, Error> {
        let install = Component::Kafka.dir()?;
        let internal_port = free_port()?;
        let controller_port = free_port()?;
        let data = dir.join("data");
        if self.features.is_empty() {
            copy_dir(&kafka_storage_template(&install)?, &data)?;
        } else {
            format_kafka_storage(&install, dir, &data, &self.features)?;
        }

        let voters = format!("1@127.0.0.1:{controller_port}");
        let node = KafkaNode {
            id: 1,
            voters: &voters,
            client_port: port,
            advertised_port,
            internal_port,
            controller_port,
            data: &data,
            partitions: self.partitions,
            replication: 1,
            min_isr: 1,
            extra_listeners: listeners,
        };
        write_kafka_node(
            dir,
            &node.properties(),
            &self.config,
            "# Written by klamm-tests for one test broker.\n",
            &kafka_jvm_options(),
        )
    }

    fn tansu_command(&self, port: u16, advertised_port: u16) -> Result<Vec<String>, Error> {
        let install = Component::Tansu.dir()?;
        let bin = install.join("bin").join("tansu");
        Ok(vec![
            bin.display().to_string(),
            "broker".into(),
            "--cluster-id".into(),
            "klamm-tests".into(),
            "--listener-url".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url".into(),
            format!("tcp://127.0.0.1:{advertised_port}"),
            "--storage-engine".into(),
            "memory://tansu/".into(),
        ])
    }
}

enum StartError {
    AddressInUse(Error),
    Other(Error),
}

impl<E: Into<Error>> From<E> for StartError {
    fn from(e: E) -> Self {
        StartError::Other(e.into())
    }
}

/// JVM options for the test broker: a small heap, and the client compiler only, which starts
/// the broker in about half the time on two cores (throughput matters little here).
/// `KLAMM_KAFKA_JVM_OPTS` replaces them (split on whitespace).
pub(crate) fn kafka_jvm_options() -> Vec<String> {
    kafka_jvm_options_with_heap("-Xmx512m")
}

/// [`kafka_jvm_options`] with another maximum heap (`-Xmx...`) when `KLAMM_KAFKA_JVM_OPTS` is
/// not set.
pub(crate) fn kafka_jvm_options_with_heap(max_heap: &str) -> Vec<String> {
    match std::env::var("KLAMM_KAFKA_JVM_OPTS") {
        Ok(opts) if !opts.trim().is_empty() => opts.split_whitespace().map(str::to_owned).collect(),
        _ => {
            [max_heap, "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
                .map(str::to_owned)
                .into()
        }
    }
}

/// A client listener besides `CLIENT` (see [`BrokerBuilder::listener`]).
#[derive(Debug, Clone)]
pub(crate) struct ExtraListener {
    /// Upper case, as Kafka spells listener names.
    pub(crate) name: String,
    pub(crate) port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub(crate) protocol: String,
}

/// Where one KRaft node (broker and controller at once) listens and keeps its data: what the
/// single test broker and each node of a test cluster have in common.
pub(crate) struct KafkaNode<'a> {
    pub(crate) id: i32,
    /// `controller.quorum.voters`: `id@host:port,...`.
    pub(crate) voters: &'a str,
    pub(crate) client_port: u16,
    /// What clients are told for the client listener (a proxy's port, or `client_port`).
    pub(crate) advertised_port: u16,
    pub(crate) internal_port: u16,
    pub(crate) controller_port: u16,
    pub(crate) data: &'a Path,
    pub(crate) partitions: u32,
    /// Replication factor of new and internal topics.
    pub(crate) replication: usize,
    /// `min.insync.replicas` of new and internal topics.
    pub(crate) min_isr: usize,
    /// More client listeners, each advertised on its own port.
    pub(crate) extra_listeners: &'a [ExtraListener],
}

impl KafkaNode<'_> {
    /// The node's `server.properties` entries.
    pub(crate) fn properties(&self) -> Vec<(&'static str, String)> {
        let KafkaNode { client_port, advertised_port, internal_port, controller_port, .. } = *self;
        let (replication, min_isr) = (self.replication.to_string(), self.min_isr.to_string());
        let (mut listeners, mut advertised, mut protocols) = (String::new(), String::new(), String::new());
        for l in self.extra_listeners {
            listeners.push_str(&format!(",{}://127.0.0.1:{}", l.name, l.port));
            advertised.push_str(&format!(",{}://127.0.0.1:{}", l.name, l.port));
            protocols.push_str(&format!(",{}:{}", l.name, l.protocol));
        }
        vec![
            ("process.roles", "broker,controller".into()),
            ("node.id", self.id.to_string()),
            ("controller.quorum.voters", self.voters.to_owned()),
            // Clients use CLIENT, which may advertise a proxy's port; the brokers' own traffic
            // (replication, transaction markers) goes over INTERNAL and CONTROLLER, so that it
            // never depends on a proxy.
            (
                "listeners",
                format!(
                    "CLIENT://127.0.0.1:{client_port},INTERNAL://127.0.0.1:{internal_port},\
                     CONTROLLER://127.0.0.1:{controller_port}{listeners}"
                ),
            ),
            (
                "advertised.listeners",
                format!(
                    "CLIENT://127.0.0.1:{advertised_port},INTERNAL://127.0.0.1:{internal_port}{advertised}"
                ),
            ),
            (
                "listener.security.protocol.map",
                format!("CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT{protocols}"),
            ),
            ("controller.listener.names", "CONTROLLER".into()),
            ("inter.broker.listener.name", "INTERNAL".into()),
            ("log.dirs", self.data.display().to_string()),
            ("num.partitions", self.partitions.to_string()),
            ("default.replication.factor", replication.clone()),
            ("min.insync.replicas", min_isr.clone()),
            ("offsets.topic.replication.factor", replication.clone()),
            // Fewer internal partitions than the default 50 start much faster on first use.
            ("offsets.topic.num.partitions", "5".into()),
            ("transaction.state.log.replication.factor", replication.clone()),
            ("transaction.state.log.min.isr", min_isr.clone()),
            ("transaction.state.log.num.partitions", "5".into()),
            ("share.coordinator.state.topic.replication.factor", replication),
            ("share.coordinator.state.topic.min.isr", min_isr),
            ("group.initial.rebalance.delay.ms", "0".into()),
            // `consumer` protocol groups (KIP-848) take their timing from the broker: members
            // noticed gone after 10 s and heartbeating every 500 ms, as the classic tests ask
            // of their members (the defaults, 45 s and 5 s, are also the minimums).
            ("group.consumer.min.session.timeout.ms", "6000".into()),
            ("group.consumer.session.timeout.ms", "10000".into()),
            ("group.consumer.min.heartbeat.interval.ms", "500".into()),
            ("group.consumer.heartbeat.interval.ms", "500".into()),
            // Tests write records with fixed, old timestamps; time-based retention would delete
            // them as soon as it looks.
            ("log.retention.ms", "-1".into()),
        ]
    }
}

/// Writes `server.properties` (`properties`, then `overrides` replacing or adding entries) and
/// the log4j2 settings into `dir`, and returns the command that starts the node.
pub(crate) fn write_kafka_node(
    dir: &Path,
    properties: &[(&str, String)],
    overrides: &[(String, String)],
    header: &str,
    jvm_options: &[String],
) -> Result<Vec<String>, Error> {
    let install = Component::Kafka.dir()?;
    let mut props: Vec<(&str, String)> = properties.to_vec();
    for (k, v) in overrides {
        props.retain(|(key, _)| key != k);
        props.push((k.as_str(), v.clone()));
    }
    let mut text = String::from(header);
    for (k, v) in &props {
        text.push_str(&format!("{k}={v}\n"));
    }
    let server_properties = dir.join("server.properties");
    fs::write(&server_properties, text)?;
    let log4j = dir.join("log4j2.properties");
    fs::write(&log4j, KAFKA_LOG4J)?;
    let mut command = vec![install::java().display().to_string()];
    command.extend(jvm_options.iter().cloned());
    command.push(format!("-Dlog4j2.configurationFile={}", log4j.display()));
    command.push(format!("-Dkafka.logs.dir={}", dir.join("logs").display()));
    command.push("-cp".into());
    command.push(install.join("libs").join("*").display().to_string());
    command.push("kafka.Kafka".into());
    command.push(server_properties.display().to_string());
    Ok(command)
}

/// Warnings and errors only, plus the lines that say how far the start got.
pub(crate) const KAFKA_LOG4J: &str = "\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
";

/// Formatting Kafka's storage costs a JVM start. Its output (meta.properties and the bootstrap
/// metadata checkpoint) names no ports when the controller quorum is given as static voters, so
/// one formatted directory serves every test broker: it is made once per cache and copied.
pub(crate) fn kafka_storage_template(install: &Path) -> Result<PathBuf, Error> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| make_kafka_storage_template(install).map_err(|e| e.to_string()))
        .clone()
        .map_err(Into::into)
}

fn make_kafka_storage_template(install: &Path) -> Result<PathBuf, Error> {
    let target = install.join("storage-template");
    let complete =
        |dir: &Path| dir.join("meta.properties").is_file() && dir.join("bootstrap.checkpoint").is_file();
    if complete(&target) {
        return Ok(target);
    }
    let work = tempfile::Builder::new().prefix("storage-template-").tempdir_in(install)?;
    let data = work.path().join("data");
    format_kafka_storage(install, work.path(), &data, &[])?;
    // Another test process may have won the race; its template is as good as ours.
    if fs::rename(&data, &target).is_err() && !complete(&target) {
        return Err(format!("could not move the Kafka storage template to {}", target.display()).into());
    }
    Ok(target)
}

/// Formats Kafka storage into `data` (with `features`, each `name=level`), using `work` for
/// the tool's files.
fn format_kafka_storage(install: &Path, work: &Path, data: &Path, features: &[String]) -> Result<(), Error> {
    let complete =
        |dir: &Path| dir.join("meta.properties").is_file() && dir.join("bootstrap.checkpoint").is_file();
    let props = work.join("format.properties");
    // Only what `format` reads; the ports are placeholders that end up nowhere.
    fs::write(
        &props,
        format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9\n\
             listeners=CLIENT://127.0.0.1:9,CONTROLLER://127.0.0.1:10\ncontroller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=CLIENT\nlog.dirs={}\n",
            data.display()
        ),
    )?;
    let log4j = work.join("format-log4j2.properties");
    fs::write(&log4j, KAFKA_LOG4J)?;
    let mut command = Command::new(install::java());
    command
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(install.join("libs").join("*"))
        .args(["kafka.tools.StorageTool", "format", "-t", KAFKA_CLUSTER_ID, "-c"])
        .arg(&props);
    for feature in features {
        command.args(["--feature", feature]);
    }
    let out = command.stdin(Stdio::null()).output()?;
    if !out.status.success() || !complete(data) {
        return Err(format!(
            "formatting Kafka storage failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// Runs the broker under the supervisor, which kills it when its stdin (the returned pipe) closes
/// and, if asked, then removes `dir`. Arguments: the pid file, the directory to remove (or
/// empty), the broker command.
pub(crate) const SUPERVISOR: &str = r#"
pidfile=$1; cleanup=$2; shift 2
# Background jobs of a non-interactive shell read /dev/null unless told otherwise, so keep the
# pipe on fd 3 for the watcher below.
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
echo "$child" >"$pidfile"
(
    cat <&3 >/dev/null
    [ -e "$pidfile.exit" ] || kill -KILL "$child" 2>/dev/null
    while kill -0 "$child" 2>/dev/null; do sleep 0.05; done
    [ -z "$cleanup" ] || rm -rf "$cleanup"
) &
wait "$child"
status=$?
echo "$status" >"$pidfile.exit"
exit "$status"
"#;

fn supervise(dir: &Path, command: &[String], remove_dir: bool) -> io::Result<(Child, ChildStdin)> {
    let log = File::create(dir.join(LOG_FILE))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("klamm-broker-supervisor")
        .arg(dir.join("broker.pid"))
        .arg(if remove_dir { dir.as_os_str() } else { "".as_ref() })
        .args(command)
        .current_dir(dir)
        // tansu reads its settings from these too; a stray one must not change the test broker.
        .env_remove("CLUSTER_ID")
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env_remove("STORAGE_ENGINE")
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let lifeline = child.stdin.take().expect("stdin is piped");
    Ok((child, lifeline))
}

/// A running broker. Dropping it kills the broker and removes its directory (kept when
/// `KLAMM_KEEP_BROKER_DIRS=1`).
#[derive(Debug)]
pub struct Broker {
    kind: BrokerKind,
    dir: PathBuf,
    port: u16,
    advertised_port: u16,
    listeners: Vec<ExtraListener>,
    supervisor: Mutex<Child>,
    lifeline: Mutex<Option<ChildStdin>>,
    keep_dir: bool,
}

impl Broker {
    /// Starts an Apache Kafka broker with the defaults; panics with the reason (and the log's
    /// tail) if it does not come up.
    pub fn kafka() -> Broker {
        BrokerBuilder::new(BrokerKind::Kafka).start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a tansu broker with the defaults; panics if it does not come up.
    pub fn tansu() -> Broker {
        BrokerBuilder::new(BrokerKind::Tansu).start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Settings for a broker of `kind`.
    pub fn builder(kind: BrokerKind) -> BrokerBuilder {
        BrokerBuilder::new(kind)
    }

    /// A broker of `kind` with the defaults; panics if it does not come up.
    pub fn start(kind: BrokerKind) -> Broker {
        BrokerBuilder::new(kind).start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// One Apache Kafka broker shared by all tests of this test binary, started on first use
    /// and killed when the process exits. Tests sharing it should use their own topics
    /// ([`unique_topic`](crate::unique_topic)).
    pub fn shared_kafka() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(Broker::kafka)
    }

    /// One tansu broker shared by all tests of this test binary.
    pub fn shared_tansu() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(Broker::tansu)
    }

    /// The shared broker of `kind`.
    pub fn shared(kind: BrokerKind) -> &'static Broker {
        match kind {
            BrokerKind::Kafka => Broker::shared_kafka(),
            BrokerKind::Tansu => Broker::shared_tansu(),
        }
    }

    /// Which implementation this is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// `127.0.0.1:port` of the broker's client listener, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:port` of the extra listener `name` (see [`BrokerBuilder::listener`]; the
    /// name in any case). Panics when the broker has no such listener.
    pub fn listener_addr(&self, name: &str) -> String {
        let l = self
            .listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("the broker has no listener named {name:?}"));
        format!("127.0.0.1:{}", l.port)
    }

    /// The client listener's address.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// The port clients are told to connect to (differs from [`addr`](Self::addr) when the
    /// broker advertises a proxy).
    pub fn advertised_port(&self) -> u16 {
        self.advertised_port
    }

    /// The broker's directory: configuration, data (Kafka) and `broker.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new [`RawConnection`] to the broker; panics if it cannot connect.
    pub fn connect(&self) -> RawConnection {
        RawConnection::connect(self.addr())
            .unwrap_or_else(|e| panic!("connecting to {} broker at {}: {e}", self.kind.name(), self.addr()))
    }

    /// The last `lines` lines of the broker's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join(LOG_FILE), lines).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Whether the broker process is still running.
    pub fn is_running(&self) -> bool {
        matches!(self.supervisor.lock().unwrap_or_else(|e| e.into_inner()).try_wait(), Ok(None))
    }

    fn wait_until_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.supervisor.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
                return Err(format!("the broker exited ({status})").into());
            }
            match self.probe() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("no ApiVersions answer within {timeout:?} (last: {e})").into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn probe(&self) -> Result<(), Error> {
        let mut conn = RawConnection::connect_timeout(self.addr(), Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        // Kafka answers INVALID_REQUEST to a v3+ request without a valid software name/version.
        let request = ApiVersionsRequest {
            client_software_name: "klamm-tests".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let response = conn.try_send(3, &request)?;
        if response.error_code != 0 {
            return Err(format!("ApiVersions error code {}", response.error_code).into());
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Closing the pipe tells the supervisor to kill the broker.
        drop(self.lifeline.lock().unwrap_or_else(|e| e.into_inner()).take());
        let supervisor = self.supervisor.get_mut().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(supervisor.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(supervisor.try_wait(), Ok(None)) {
            if let Ok(pid) = fs::read_to_string(self.dir.join("broker.pid")) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
            let _ = supervisor.kill();
            let _ = supervisor.wait();
        }
        if self.keep_dir {
            eprintln!("klamm-tests: kept {} broker directory {}", self.kind.name(), self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}
