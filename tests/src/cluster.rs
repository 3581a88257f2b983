//! A real Apache Kafka cluster on 127.0.0.1: [`Cluster::start`] runs `n` KRaft nodes (3 by
//! default), each one broker and controller at once (combined mode, static voters), and gives
//! the test per-node control: SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart on the same data.
//!
//! Each node is started the way [`Broker`](crate::Broker) starts a single Kafka: under the same
//! `sh` supervisor, so that no node outlives the test process, and from a copy of the storage
//! directory formatted once per cache (only `node.id` and the log directory id are rewritten
//! per node). A node keeps its ports and directory across restarts; the cluster's directory is
//! removed when the [`Cluster`] is dropped, and by a small janitor process when the test
//! process dies without dropping it.
//!
//! Nodes are named by their Kafka node id, 1 to `n`, which is what Metadata responses call
//! them: `cluster.kill(cluster.leader(topic, 0)?)` kills a partition's leader.
//!
//! The settings are those of a small production cluster (replication factor 3, min ISR 2,
//! internal topics replicated 3 with min ISR 2), with timeouts shortened so that failures are
//! noticed in seconds; [`ClusterBuilder`] documents each one.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use klamm_protocol::api::create_topics::{CreatableTopic, CreateTopicsRequest};
use klamm_protocol::api::describe_cluster::DescribeClusterRequest;
use klamm_protocol::api::metadata::{MetadataRequest, MetadataRequestTopic, MetadataResponse};

use crate::broker::{
    copy_dir, kafka_jvm_options_with_heap, kafka_storage_template, tail, write_kafka_node, KafkaNode,
    LOG_FILE, SUPERVISOR,
};
use crate::install::Component;
use crate::negotiated::api_versions_request;
use crate::ports::free_port;
use crate::proxy::FaultProxy;
use crate::raw_connection::RawConnection;
use crate::Error;

/// How long a node (or the whole cluster) may take to come up, unless
/// `KLAMM_BROKER_START_TIMEOUT_SECS` says otherwise.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);

/// How long [`Cluster::terminate`] waits for a controlled shutdown before it kills the node.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The maximum heap of each node. Three nodes must fit next to the test, the peers and a
/// compiler on a 24 GiB machine; a test cluster holds little data, and 384 MiB leaves room for
/// the producer's in-flight batches and lz4 buffers.
const NODE_HEAP: &str = "-Xmx384m";

/// Settings for a cluster to start; [`Cluster::start`] starts one with the defaults.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    partitions: u32,
    config: Vec<(String, String)>,
    proxied: Vec<i32>,
    start_timeout: Duration,
}

impl ClusterBuilder {
    /// Defaults: 3 nodes, 3 partitions per auto-created topic, no proxies.
    ///
    /// Broker settings, besides the listeners and directories:
    ///
    /// | Setting | Value | Why |
    /// |---|---|---|
    /// | `default.replication.factor` | 3 (the node count if smaller) | every partition on every node |
    /// | `min.insync.replicas` | 2 (1 for a single node) | acks=all survives one node down, fails with two |
    /// | `offsets.topic.replication.factor`, `transaction.state.log.replication.factor`, `share.coordinator.state.topic.replication.factor` | as `default.replication.factor` | internal topics as safe as the data |
    /// | `transaction.state.log.min.isr`, `share.coordinator.state.topic.min.isr` | as `min.insync.replicas` | |
    /// | `offsets.topic.num.partitions`, `transaction.state.log.num.partitions` | 5 | the default 50 makes first use slow |
    /// | `replica.lag.time.max.ms` | 5000 (default 30000) | a dead or stopped follower leaves the ISR in 5 s, so acks=all writes resume soon |
    /// | `broker.heartbeat.interval.ms` | 500 (default 2000) | with the next one, how fast the controller notices a dead broker |
    /// | `broker.session.timeout.ms` | 3000 (default 9000) | a broker without heartbeats for 3 s is fenced and loses its leaderships |
    /// | `controller.quorum.fetch.timeout.ms` | 2000 (the default) | a controller that hears nothing from the active one for 2 s starts an election |
    /// | `controller.quorum.election.timeout.ms` | 1000 (the default) | |
    /// | `auto.leader.rebalance.enable` | false (default true, every 300 s) | leadership moves only when a test makes it move (by a failure or [`Admin::elect_leaders`](klamm::Admin::elect_leaders)), never in the middle of a measurement |
    /// | `unclean.leader.election.enable` | false (the default) | no acknowledged record is ever truncated by the cluster on its own |
    /// | `num.network.threads`, `num.io.threads` | 2, 2 (defaults 3, 8) | fewer threads per JVM on two cores |
    /// | `group.initial.rebalance.delay.ms` | 0 | groups form at once |
    /// | `log.retention.ms` | -1 | records with old fixed timestamps stay |
    ///
    /// JVM: `-Xmx384m`, serial GC, client compiler only (replaced by `KLAMM_KAFKA_JVM_OPTS`).
    pub fn new() -> Self {
        let start_timeout = std::env::var("KLAMM_BROKER_START_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_START_TIMEOUT, Duration::from_secs);
        Self { nodes: 3, partitions: 3, config: Vec::new(), proxied: Vec::new(), start_timeout }
    }

    /// How many nodes (each broker and controller). At least 1.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Partitions of auto-created topics (`num.partitions`).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// An extra broker property for every node; later values override the defaults.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Puts a [`FaultProxy`] in front of node `node`'s client listener: the node advertises the
    /// proxy's port, so clients reach it only through the proxy ([`Cluster::proxy`]). The
    /// brokers' own traffic (replication, controller) does not go through it.
    pub fn proxy(mut self, node: i32) -> Self {
        if !self.proxied.contains(&node) {
            self.proxied.push(node);
        }
        self
    }

    /// How long to wait for the cluster (and later for each restarted node).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts every node and waits until each answers on its client listener and sees all the
    /// others registered. When that fails, the error carries the tail of each node's log.
    pub fn start(&self) -> Result<Cluster, Error> {
        // A port picked as free can be taken before a node binds it; start over then.
        let mut last = None;
        for _ in 0..3 {
            match self.try_start() {
                Ok(cluster) => return Ok(cluster),
                Err((e, in_use)) if in_use => last = Some(e),
                Err((e, _)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| "cluster start failed".into()))
    }

    fn try_start(&self) -> Result<Cluster, (Error, bool)> {
        let other = |e: Error| (e, false);
        let install = Component::Kafka.dir().map_err(other)?;
        let template = kafka_storage_template(&install).map_err(other)?;
        let root =
            tempfile::Builder::new().prefix("klamm-cluster-").tempdir().map_err(|e| other(e.into()))?.keep();
        let keep_dir = std::env::var_os("KLAMM_KEEP_BROKER_DIRS").is_some_and(|v| !v.is_empty() && v != "0");
        let janitor = Janitor::start(&root, !keep_dir).map_err(|e| other(e.into()))?;
        let mut cluster = Cluster {
            root,
            nodes: Vec::new(),
            proxies: BTreeMap::new(),
            start_timeout: self.start_timeout,
            keep_dir,
            janitor: Some(janitor),
        };
        let result = self.prepare(&mut cluster, &template);
        if let Err(e) = result {
            return Err(other(e));
        }
        for id in cluster.node_ids() {
            if let Err(e) = cluster.node(id).spawn() {
                return Err(other(e));
            }
        }
        let deadline = Instant::now() + self.start_timeout;
        match cluster.wait_until_all_ready(deadline) {
            Ok(()) => Ok(cluster),
            Err(e) => {
                let mut msg = format!("the Kafka cluster did not come up: {e}");
                let mut in_use = false;
                for id in cluster.node_ids() {
                    let tail = cluster.log_tail(id, 25);
                    in_use |= tail.contains("Address already in use");
                    msg.push_str(&format!("\n--- last lines of node {id}'s log ---\n{tail}"));
                }
                Err((msg.into(), in_use))
            }
        }
    }

    /// Picks the ports, binds the proxies, writes each node's directory and configuration.
    fn prepare(&self, cluster: &mut Cluster, template: &Path) -> Result<(), Error> {
        let n = self.nodes;
        let ids: Vec<i32> = (1..=n as i32).collect();
        let mut ports = Vec::new();
        for _ in &ids {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        for &id in &self.proxied {
            if !ids.contains(&id) {
                return Err(format!("cannot proxy node {id}: the cluster has nodes 1 to {n}").into());
            }
            cluster.proxies.insert(id, FaultProxy::bind()?);
        }
        let voters = ids
            .iter()
            .zip(&ports)
            .map(|(id, (_, _, controller))| format!("{id}@127.0.0.1:{controller}"))
            .collect::<Vec<_>>()
            .join(",");
        let replication = n.min(3);
        let min_isr = if n >= 3 { 2 } else { 1 };
        for (&id, &(client, internal, controller)) in ids.iter().zip(&ports) {
            let dir = cluster.root.join(format!("node-{id}"));
            fs::create_dir_all(&dir)?;
            let data = dir.join("data");
            copy_dir(template, &data)?;
            personalize_meta_properties(&data.join("meta.properties"), id)?;
            let advertised = cluster.proxies.get(&id).map_or(client, FaultProxy::port);
            if let Some(proxy) = cluster.proxies.get(&id) {
                proxy.forward_to((Ipv4Addr::LOCALHOST, client).into());
            }
            let node = KafkaNode {
                id,
                voters: &voters,
                client_port: client,
                advertised_port: advertised,
                internal_port: internal,
                controller_port: controller,
                data: &data,
                partitions: self.partitions,
                replication,
                min_isr,
                extra_listeners: &[],
            };
            // The shared settings, then the cluster's own: fast failure detection (see
            // `ClusterBuilder::new`).
            let mut props = node.properties();
            props.extend([
                ("replica.lag.time.max.ms", "5000".into()),
                ("broker.heartbeat.interval.ms", "500".into()),
                ("broker.session.timeout.ms", "3000".into()),
                ("controller.quorum.fetch.timeout.ms", "2000".into()),
                ("controller.quorum.election.timeout.ms", "1000".into()),
                ("auto.leader.rebalance.enable", "false".into()),
                ("unclean.leader.election.enable", "false".into()),
                ("num.network.threads", "2".into()),
                ("num.io.threads", "2".into()),
            ]);
            let header = format!("# Written by klamm-tests for node {id} of a test cluster.\n");
            let command = write_kafka_node(
                &dir,
                &props,
                &self.config,
                &header,
                &kafka_jvm_options_with_heap(NODE_HEAP),
            )?;
            cluster.nodes.push(Mutex::new(Node {
                id,
                dir,
                client_port: client,
                controller_port: controller,
                advertised_port: advertised,
                command,
                process: None,
                paused: false,
            }));
        }
        Ok(())
    }
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The template's `meta.properties` names node 1 and one log directory id; each node needs
/// its own id, and a directory id no other node has (the controller refuses a broker that
/// registers a directory another broker owns).
fn personalize_meta_properties(path: &Path, id: i32) -> Result<(), Error> {
    let text = fs::read_to_string(path)?;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("node.id=") {
            out.push_str(&format!("node.id={id}\n"));
        } else if line.starts_with("directory.id=") {
            out.push_str(&format!("directory.id={}\n", random_kafka_uuid()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    fs::write(path, out)?;
    Ok(())
}

/// A random UUID as Kafka writes one: 16 bytes in URL-safe base64 without padding.
fn random_kafka_uuid() -> String {
    let mut bytes = Vec::with_capacity(16);
    while bytes.len() < 16 {
        // Each RandomState is seeded from the OS's randomness (and a per-thread counter).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        bytes.extend_from_slice(&h.finish().to_le_bytes());
    }
    // Clear the top bit so the id is never one of Kafka's reserved small values' negatives.
    bytes[0] &= 0x7f;
    bytes[0] |= 0x10;
    base64_url(&bytes[..16])
}

fn base64_url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// One node: its fixed ports and directory, and the process when it runs.
#[derive(Debug)]
struct Node {
    id: i32,
    dir: PathBuf,
    client_port: u16,
    controller_port: u16,
    advertised_port: u16,
    command: Vec<String>,
    process: Option<Process>,
    paused: bool,
}

/// A running node: the supervisor, and the pipe whose closing kills the node.
#[derive(Debug)]
struct Process {
    supervisor: Child,
    lifeline: Option<ChildStdin>,
}

impl Node {
    fn pid_file(&self) -> PathBuf {
        self.dir.join("broker.pid")
    }

    fn client_addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.client_port).into()
    }

    fn controller_addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.controller_port).into()
    }

    /// Starts the node's process under the supervisor (the directory is never removed by it:
    /// a restart needs the data). Output is appended to `broker.log`.
    fn spawn(&mut self) -> Result<(), Error> {
        if self.is_running() {
            return Err(format!("node {} is already running", self.id).into());
        }
        let pid_file = self.pid_file();
        let _ = fs::remove_file(&pid_file);
        let _ = fs::remove_file(pid_file.with_extension("pid.exit"));
        let log = OpenOptions::new().create(true).append(true).open(self.dir.join(LOG_FILE))?;
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("klamm-node-supervisor")
            .arg(&pid_file)
            .arg("")
            .args(&self.command)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let lifeline = supervisor.stdin.take();
        self.process = Some(Process { supervisor, lifeline });
        self.paused = false;
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        match &mut self.process {
            Some(p) => matches!(p.supervisor.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The JVM's pid, once the supervisor has written it.
    fn pid(&self) -> Result<String, Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(pid) = fs::read_to_string(self.pid_file()) {
                let pid = pid.trim().to_owned();
                if !pid.is_empty() {
                    return Ok(pid);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("node {} has no pid file", self.id).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) -> Result<(), Error> {
        let pid = self.pid()?;
        let status = Command::new("kill").arg(format!("-{signal}")).arg(&pid).status()?;
        if !status.success() {
            return Err(format!("kill -{signal} {pid} (node {}) failed: {status}", self.id).into());
        }
        Ok(())
    }

    /// Waits until the process has exited, up to `timeout`; true if it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(p) = &mut self.process else { return true };
        loop {
            if !matches!(p.supervisor.try_wait(), Ok(None)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forgets the exited process; closing the lifeline lets the supervisor's watcher end.
    fn reap(&mut self) {
        if let Some(mut p) = self.process.take() {
            drop(p.lifeline.take());
            let _ = p.supervisor.wait();
        }
        self.paused = false;
    }

    fn kill(&mut self) -> Result<(), Error> {
        if !self.is_running() {
            self.reap();
            return Ok(());
        }
        self.signal("KILL")?;
        if !self.wait_exit(Duration::from_secs(30)) {
            return Err(format!("node {} did not die of SIGKILL within 30 s", self.id).into());
        }
        self.reap();
        Ok(())
    }

    fn terminate(&mut self, timeout: Duration) -> Result<Duration, Error> {
        let started = Instant::now();
        if !self.is_running() {
            self.reap();
            return Ok(Duration::ZERO);
        }
        if self.paused {
            self.signal("CONT")?;
            self.paused = false;
        }
        self.signal("TERM")?;
        if !self.wait_exit(timeout) {
            let _ = self.signal("KILL");
            self.wait_exit(Duration::from_secs(30));
            self.reap();
            return Err(
                format!("node {} did not shut down within {timeout:?} of SIGTERM; killed", self.id).into()
            );
        }
        self.reap();
        Ok(started.elapsed())
    }

    /// Whether the node answers ApiVersions on its client listener and its Metadata lists
    /// `expect_brokers` brokers (itself among them).
    fn probe(&self, expect_brokers: usize) -> Result<(), Error> {
        let mut conn = RawConnection::connect_timeout(self.client_addr(), Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let response = conn.try_send(3, &api_versions_request())?;
        if response.error_code != 0 {
            return Err(format!("ApiVersions error code {}", response.error_code).into());
        }
        let metadata =
            conn.try_send(12, &MetadataRequest { topics: Some(Vec::new()), ..Default::default() })?;
        let ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
        if !ids.contains(&self.id) || ids.len() < expect_brokers {
            return Err(format!("node {} sees brokers {ids:?}", self.id).into());
        }
        Ok(())
    }
}

/// Removes the cluster's directory when the test process dies without dropping the
/// [`Cluster`]: a `sh` whose stdin is a pipe from the test process waits for the pipe to close,
/// gives the node supervisors a moment to kill their nodes, and removes the directory.
#[derive(Debug)]
struct Janitor {
    child: Child,
    lifeline: Option<ChildStdin>,
}

impl Janitor {
    fn start(root: &Path, remove: bool) -> io::Result<Janitor> {
        let script = r#"cat >/dev/null; [ -z "$1" ] || { sleep 2; rm -rf "$1"; }"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("klamm-cluster-janitor")
            .arg(if remove { root.as_os_str() } else { "".as_ref() })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let lifeline = child.stdin.take();
        Ok(Janitor { child, lifeline })
    }
}

/// A running Kafka cluster. Dropping it kills every node and removes the cluster's directory
/// (kept when `KLAMM_KEEP_BROKER_DIRS=1`).
///
/// Per-node control is by node id (1 to `n`). Every call is safe from any thread; calls on one
/// node are serialized.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    nodes: Vec<Mutex<Node>>,
    proxies: BTreeMap<i32, FaultProxy>,
    start_timeout: Duration,
    keep_dir: bool,
    janitor: Option<Janitor>,
}

/// One partition as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition.
    pub partition: i32,
    /// The leader's node id, -1 when the partition has none.
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

impl Cluster {
    /// Starts `nodes` nodes with the defaults; panics with the reason (and the logs' tails) if
    /// the cluster does not come up.
    pub fn start(nodes: usize) -> Cluster {
        ClusterBuilder::new().nodes(nodes).start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Settings for a cluster.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::new()
    }

    /// The node ids, 1 to `n`.
    pub fn node_ids(&self) -> Vec<i32> {
        (1..=self.nodes.len() as i32).collect()
    }

    fn node(&self, id: i32) -> MutexGuard<'_, Node> {
        let index = usize::try_from(id - 1).ok().filter(|i| *i < self.nodes.len());
        let Some(index) = index else {
            panic!("the cluster has nodes 1 to {}, not {id}", self.nodes.len());
        };
        self.nodes[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every node's advertised client address, comma-separated, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.node_ids().iter().map(|id| self.advertised_addr(*id).to_string()).collect::<Vec<_>>().join(",")
    }

    /// The address clients are told to use for `node`: its proxy's when it has one.
    pub fn advertised_addr(&self, node: i32) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.node(node).advertised_port).into()
    }

    /// The address `node`'s client listener binds (behind its proxy, if it has one).
    pub fn addr(&self, node: i32) -> SocketAddr {
        self.node(node).client_addr()
    }

    /// The address of `node`'s controller listener.
    pub fn controller_addr(&self, node: i32) -> SocketAddr {
        self.node(node).controller_addr()
    }

    /// The proxy in front of `node`, when the builder asked for one.
    pub fn proxy(&self, node: i32) -> Option<&FaultProxy> {
        self.proxies.get(&node)
    }

    /// `node`'s directory: `server.properties`, `data/` and `broker.log`.
    pub fn dir(&self, node: i32) -> PathBuf {
        self.node(node).dir.clone()
    }

    /// The last `lines` lines of `node`'s output (all its runs, appended).
    pub fn log_tail(&self, node: i32, lines: usize) -> String {
        let path = self.node(node).dir.join(LOG_FILE);
        tail(&path, lines).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Whether `node`'s process runs (paused counts as running).
    pub fn is_running(&self, node: i32) -> bool {
        self.node(node).is_running()
    }

    /// The nodes whose process runs.
    pub fn running(&self) -> Vec<i32> {
        self.node_ids().into_iter().filter(|id| self.is_running(*id)).collect()
    }

    /// Kills `node` with SIGKILL (no controlled shutdown, nothing flushed) and waits until it
    /// is gone.
    pub fn kill(&self, node: i32) {
        self.node(node).kill().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops `node` with SIGTERM (a controlled shutdown: the controller moves its leaderships
    /// first) and waits until it exits; returns how long that took. A node that does not stop
    /// within 60 s is killed and the call panics.
    pub fn terminate(&self, node: i32) -> Duration {
        self.node(node).terminate(TERMINATE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Freezes `node` with SIGSTOP: its sockets stay open, nothing answers, its heartbeats stop.
    pub fn pause(&self, node: i32) {
        let mut n = self.node(node);
        n.signal("STOP").unwrap_or_else(|e| panic!("{e}"));
        n.paused = true;
    }

    /// Lets a paused `node` go on (SIGCONT).
    pub fn resume(&self, node: i32) {
        let mut n = self.node(node);
        n.signal("CONT").unwrap_or_else(|e| panic!("{e}"));
        n.paused = false;
    }

    /// Starts a stopped `node` again on the same ports and data, and waits until it answers
    /// and sees every running, unpaused node registered (it has rejoined the cluster, but may not be in
    /// every ISR yet: see [`Cluster::wait_for_isr`]). Panics with its log if it does not come
    /// back within the start timeout. Returns how long it took.
    pub fn restart(&self, node: i32) -> Duration {
        let started = Instant::now();
        self.node(node).spawn().unwrap_or_else(|e| panic!("restarting node {node}: {e}"));
        let deadline = Instant::now() + self.start_timeout;
        if let Err(e) = self.wait_until_ready(node, deadline) {
            panic!(
                "node {node} did not come back: {e}\n--- last lines of its log ---\n{}",
                self.log_tail(node, 40)
            );
        }
        started.elapsed()
    }

    /// Whether `node` is paused ([`Cluster::pause`] without a [`Cluster::resume`] yet).
    pub fn is_paused(&self, node: i32) -> bool {
        let mut n = self.node(node);
        n.is_running() && n.paused
    }

    /// Brings the whole cluster back after a test's faults: resumes paused nodes, restarts
    /// stopped ones, and waits until each answers. Returns the nodes it had to act on.
    pub fn heal(&self) -> Vec<i32> {
        let mut acted = Vec::new();
        for id in self.node_ids() {
            if self.is_paused(id) {
                self.resume(id);
                acted.push(id);
            } else if !self.is_running(id) {
                self.node(id).reap();
                acted.push(id);
                self.restart(id);
            }
        }
        acted
    }

    /// Kills `node` if it runs (SIGKILL), then [`restart`](Self::restart)s it.
    pub fn kill_and_restart(&self, node: i32) -> Duration {
        self.kill(node);
        self.restart(node)
    }

    fn wait_until_all_ready(&self, deadline: Instant) -> Result<(), Error> {
        for id in self.node_ids() {
            self.wait_until_ready(id, deadline)?;
        }
        Ok(())
    }

    /// Waits until `node` answers and sees at least as many brokers as run (unpaused) now.
    fn wait_until_ready(&self, node: i32, deadline: Instant) -> Result<(), Error> {
        loop {
            // A paused node stops heartbeating and drops out of the registered brokers.
            let expect = self.running().into_iter().filter(|id| !self.is_paused(*id)).count();
            let result = {
                let mut n = self.node(node);
                if !n.is_running() {
                    let status = n.process.as_mut().and_then(|p| p.supervisor.try_wait().ok().flatten());
                    return Err(format!("node {node} exited ({status:?})").into());
                }
                n.probe(expect)
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("node {node} not ready in time (last: {e})").into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Metadata for `topics` (every topic when `None`) from the first running node that
    /// answers, asked on its client listener directly (never through a proxy).
    pub fn metadata(&self, topics: Option<&[&str]>) -> Result<MetadataResponse, Error> {
        let mut last: Option<Error> = None;
        for id in self.node_ids() {
            let (addr, paused) = {
                let mut n = self.node(id);
                if !n.is_running() {
                    continue;
                }
                (n.client_addr(), n.paused)
            };
            if paused {
                continue;
            }
            let attempt = || -> Result<MetadataResponse, Error> {
                let mut conn = RawConnection::connect_timeout(addr, Duration::from_secs(2))?;
                conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                let topics = topics.map(|names| {
                    names
                        .iter()
                        .map(|t| MetadataRequestTopic { name: Some((*t).to_owned()), ..Default::default() })
                        .collect()
                });
                Ok(conn.try_send(12, &MetadataRequest { topics, ..Default::default() })?)
            };
            match attempt() {
                Ok(m) => return Ok(m),
                Err(e) => last = Some(format!("node {id}: {e}").into()),
            }
        }
        Err(last.unwrap_or_else(|| "no node is running".into()))
    }

    /// Creates `topic` with `partitions` partitions and the cluster's default replication
    /// factor (CreateTopics v7 to a running node), then waits until every partition has all
    /// its replicas in sync. Panics if that fails within 60 s.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Vec<PartitionState> {
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: topic.to_owned(),
                num_partitions: partitions,
                replication_factor: -1,
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        let addr = self
            .node_ids()
            .into_iter()
            .find(|id| {
                let mut n = self.node(*id);
                n.is_running() && !n.paused
            })
            .map(|id| self.addr(id))
            .unwrap_or_else(|| panic!("no running node to create {topic} on"));
        let mut conn = RawConnection::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        let response = conn.send(7, &request);
        let result = response.topics.iter().find(|t| t.name == topic);
        let result =
            result.unwrap_or_else(|| panic!("CreateTopics answered nothing for {topic}: {response:?}"));
        assert_eq!(result.error_code, 0, "creating {topic}: {:?}", result.error_message);
        self.wait_for_isr(topic, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every partition of `topic` as a running node sees it, by partition.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionState>, Error> {
        let metadata = self.metadata(Some(&[topic]))?;
        let t = metadata
            .topics
            .into_iter()
            .find(|t| t.name.as_deref() == Some(topic))
            .ok_or_else(|| format!("metadata does not mention {topic}"))?;
        if t.error_code != 0 {
            return Err(format!("metadata for {topic}: error code {}", t.error_code).into());
        }
        let mut out: Vec<PartitionState> = t
            .partitions
            .into_iter()
            .map(|p| PartitionState {
                partition: p.partition_index,
                leader: p.leader_id,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes,
                isr: p.isr_nodes,
            })
            .collect();
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }

    /// The leader of `topic`-`partition`, if it has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let partitions = self.partitions(topic).ok()?;
        partitions.iter().find(|p| p.partition == partition).map(|p| p.leader).filter(|l| *l >= 0)
    }

    /// The node that leads the most partitions of `topic` (the lowest id on a tie).
    pub fn busiest_leader(&self, topic: &str) -> Option<i32> {
        let partitions = self.partitions(topic).ok()?;
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for p in partitions.iter().filter(|p| p.leader >= 0) {
            *counts.entry(p.leader).or_default() += 1;
        }
        counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(id, _)| id)
    }

    /// Waits until every partition of `topic` has a leader and all its replicas in the ISR.
    pub fn wait_for_isr(&self, topic: &str, timeout: Duration) -> Result<Vec<PartitionState>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.partitions(topic) {
                Ok(ps)
                    if !ps.is_empty()
                        && ps.iter().all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len()) =>
                {
                    return Ok(ps)
                }
                Ok(ps) => format!("{ps:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!("{topic} not fully in sync within {timeout:?}: {last}").into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The active controller (the KRaft quorum's leader), as the running nodes' controller
    /// listeners report it. Metadata's `controller_id` cannot tell: in KRaft it names a random
    /// broker. DescribeCluster sent to a controller listener with endpoint type 2
    /// (controllers, KIP-919) answers with the quorum leader. `None` while no leader is known.
    pub fn active_controller(&self) -> Option<i32> {
        let request = DescribeClusterRequest { endpoint_type: 2, ..Default::default() };
        let mut votes: BTreeMap<i32, usize> = BTreeMap::new();
        for id in self.node_ids() {
            let (addr, usable) = {
                let mut n = self.node(id);
                let usable = n.is_running() && !n.paused;
                (n.controller_addr(), usable)
            };
            if !usable {
                continue;
            }
            let answer = (|| -> Result<i32, Error> {
                let mut conn = RawConnection::connect_timeout(addr, Duration::from_secs(2))?;
                conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                let r = conn.try_send(1, &request)?;
                if r.error_code != 0 {
                    return Err(format!("DescribeCluster error {}", r.error_code).into());
                }
                Ok(r.controller_id)
            })();
            if let Ok(leader) = answer {
                if leader >= 0 {
                    *votes.entry(leader).or_default() += 1;
                }
            }
        }
        votes.into_iter().max_by_key(|(_, n)| *n).map(|(id, _)| id)
    }

    /// Waits until a running node is the active controller, and returns it.
    pub fn wait_for_active_controller(&self, timeout: Duration) -> Result<i32, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self.active_controller() {
                if self.is_running(id) {
                    return Ok(id);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no active controller within {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            let mut n = node.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = &mut n.process {
                // Closing the pipe tells the supervisor to kill the node.
                drop(p.lifeline.take());
            }
        }
        for node in &self.nodes {
            let mut n = node.lock().unwrap_or_else(|e| e.into_inner());
            if !n.wait_exit(Duration::from_secs(10)) {
                let _ = n.signal("KILL");
                n.wait_exit(Duration::from_secs(10));
            }
            n.reap();
        }
        if let Some(mut janitor) = self.janitor.take() {
            // The janitor is for a test process that dies; here the directory is removed
            // below, without its pause.
            let _ = janitor.child.kill();
            let _ = janitor.child.wait();
            drop(janitor.lifeline.take());
        }
        if self.keep_dir {
            eprintln!("klamm-tests: kept the cluster directory {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuids_are_22_url_safe_characters() {
        let a = random_kafka_uuid();
        let b = random_kafka_uuid();
        assert_eq!(a.len(), 22, "{a}");
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
        assert_eq!(base64_url(b"\xff\xff\xff\x00"), "____AA");
    }
}
