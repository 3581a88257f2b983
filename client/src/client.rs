//! The [`Client`]: the cluster as a whole. It owns the metadata cache and one pool of broker
//! connections, and is what the producer, the partition consumer, admin and consumer groups
//! build on.
//!
//! Connections are kept per broker *and per [`ConnectionKind`]*: produce, fetch, group and
//! control traffic never share a socket, so a JoinGroup that the coordinator holds for minutes
//! or a fetch that waits for data cannot delay a produce or a metadata request behind it.
//!
//! Reconnects: a broker whose connect attempt failed is not tried again before a backoff that
//! doubles per failure (`reconnect.backoff.ms` up to `reconnect.backoff.max.ms`, ±20% jitter);
//! a connection that was up and died is re-opened at once. Callers asking for the same broker
//! while a connect is under way wait for that one attempt instead of opening their own.
//!
//! Metadata: lookups come from the cached [`ClusterMetadata`] snapshot. A topic is fetched when
//! first used, again when a caller reports it stale ([`Client::invalidate_topic`], after
//! NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION or a newer leader epoch), and every
//! `metadata.max.age.ms` by a background task. Concurrent refreshes are coalesced: a caller
//! that waited while another refresh ran uses that answer if it covers its topic.
//!
//! Dropping: the client holds no task that keeps it alive. The refresh task holds a weak
//! reference and stops when the last `Client` is gone; connections close when their last handle
//! is dropped. Nothing in a drop blocks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;

use klamm_protocol::api::find_coordinator::FindCoordinatorRequest;
use klamm_protocol::api::metadata::{MetadataRequest, MetadataRequestTopic};
use klamm_protocol::{ErrorCode, Request};
use tracing::Instrument;

use crate::admin::{broker_error, missing};
use crate::config::{backoff, ClientConfig};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind};
use crate::metadata::{ClusterMetadata, TopicMetadata, TopicOutcome};
use crate::stats::{ClientStats, Counters};

/// What a connection is used for. Each kind gets its own connection to each broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionKind {
    /// Metadata, admin and offset lookups.
    Control,
    /// Produce requests.
    Produce,
    /// Fetch requests.
    Fetch,
    /// Consumer group requests to a coordinator (JoinGroup may block for a long time).
    Group,
}

/// Which kind of coordinator a FindCoordinator request looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorKey {
    /// The coordinator of a consumer group (key type 0).
    Group,
    /// The transaction coordinator of a transactional id (key type 1, FindCoordinator v1+).
    Transaction,
}

impl CoordinatorKey {
    /// The `key_type` of FindCoordinator.
    fn wire(self) -> i8 {
        match self {
            CoordinatorKey::Group => 0,
            CoordinatorKey::Transaction => 1,
        }
    }

    /// How errors name the coordinator of `key`.
    fn what(self, key: &str) -> String {
        match self {
            CoordinatorKey::Group => format!("the coordinator of group {key:?}"),
            CoordinatorKey::Transaction => format!("the transaction coordinator of {key:?}"),
        }
    }
}

/// A handle on a Kafka cluster: metadata cache and broker connections.
///
/// Cloning is cheap; clones share everything. Create one with [`Client::connect`] (which checks
/// that a bootstrap broker answers) or [`Client::new`] (which does not touch the network).
///
/// ```no_run
/// use klamm::{Client, ClientConfig};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let client = Client::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// let topic = client.topic("orders").await?;
/// for p in &topic.partitions {
///     println!("partition {} led by broker {}", p.partition, p.leader);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    metadata: RwLock<Arc<ClusterMetadata>>,
    /// Serializes Metadata requests so that concurrent callers share one answer.
    refresh: tokio::sync::Mutex<()>,
    slots: Mutex<HashMap<(i32, ConnectionKind), Arc<Slot>>>,
    /// Where the next "any broker" choice starts, so load spreads over brokers.
    rotate: AtomicUsize,
    timer_started: AtomicBool,
    closed: AtomicBool,
    /// What this client and the producers and consumers over it did ([`Client::stats`]).
    stats: Counters,
}

/// One (broker, kind) connection and its reconnect state.
#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Connection>,
    /// Failed connect attempts in a row.
    failures: u32,
    /// No new attempt before this.
    retry_at: Option<Instant>,
}

impl Client {
    /// A client for the cluster of `config`, without contacting it: the first request connects.
    ///
    /// Fails only on an invalid configuration. Must be used inside a tokio runtime.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        config.validate()?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
                refresh: tokio::sync::Mutex::new(()),
                slots: Mutex::new(HashMap::new()),
                rotate: AtomicUsize::new(0),
                timer_started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                stats: Counters::default(),
            }),
        })
    }

    /// A client whose bootstrap brokers answered a Metadata request.
    ///
    /// Fails with the last connection error when no bootstrap broker can be reached: each one is
    /// tried once, within `socket.connection.setup.timeout.ms`.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let client = Client::new(config)?;
        client.refresh_metadata(&[]).await?;
        Ok(client)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The node ids of the brokers this client (or a clone) has an open connection to now, in
    /// ascending order and without repeats. Connections to bootstrap servers made before their
    /// node ids were known are not included, nor are connections being opened right now.
    /// Meant for health checks: it takes no lock that a request holds and never waits.
    pub fn connected_brokers(&self) -> Vec<i32> {
        let slots: Vec<(i32, Arc<Slot>)> =
            lock(&self.inner.slots).iter().map(|((node, _), slot)| (*node, Arc::clone(slot))).collect();
        let mut nodes: Vec<i32> = slots
            .into_iter()
            .filter(|(node, _)| *node >= 0)
            .filter(|(_, slot)| {
                slot.state.try_lock().is_ok_and(|state| state.conn.as_ref().is_some_and(|c| !c.is_closed()))
            })
            .map(|(node, _)| node)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Counters of what this client (and its clones, and every producer and consumer over it)
    /// did since it was made: connections, produced and fetched records and bytes, retries,
    /// errors. Cheap: a handful of atomic loads.
    ///
    /// ```no_run
    /// # fn example(client: &klamm::Client) {
    /// let stats = client.stats();
    /// println!("{} connections opened, {} failed", stats.connections_opened, stats.connection_failures);
    /// # }
    /// ```
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// The live counters, for the producer and consumer to add to.
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.stats
    }

    /// The current metadata snapshot (possibly empty before the first request).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&read(&self.inner.metadata))
    }

    /// The metadata of `topic`: from the cache, or from a broker when it is not cached.
    ///
    /// Fails with [`ErrorKind::Broker`] `UNKNOWN_TOPIC_OR_PARTITION` when the topic does not
    /// exist (and was not auto-created), or with the error that kept us from asking.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicMetadata>, Error> {
        self.check_open()?;
        let snapshot = self.metadata();
        if let Some(cached) = snapshot.topic(topic) {
            return Ok(Arc::clone(cached));
        }
        self.refresh_topic_after(topic, snapshot.generation).await
    }

    /// Forgets the cached metadata of `topic`, so the next [`Client::topic`] asks a broker.
    /// Call it after NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH or
    /// any sign that the leaders moved.
    pub fn invalidate_topic(&self, topic: &str) {
        let mut guard = write(&self.inner.metadata);
        if guard.topic(topic).is_some() {
            *guard = Arc::new(guard.without_topic(topic));
        }
    }

    /// Asks a broker for the metadata of `topics` now (an empty slice asks for brokers only)
    /// and returns the new snapshot. Errors of single topics are in the snapshot's absence of
    /// them; use [`Client::topic`] to get a topic's error.
    pub async fn refresh_metadata(&self, topics: &[&str]) -> Result<Arc<ClusterMetadata>, Error> {
        let _serial = self.inner.refresh.lock().await;
        let names = topics.iter().map(|t| (*t).to_owned()).collect();
        self.fetch_metadata(Some(names)).await?;
        Ok(self.metadata())
    }

    /// Asks a broker for the metadata of every topic now and returns the new snapshot (what a
    /// pattern subscription matches against). Every topic it lists is cached from then on.
    pub async fn refresh_all_metadata(&self) -> Result<Arc<ClusterMetadata>, Error> {
        self.check_open()?;
        let _serial = self.inner.refresh.lock().await;
        self.fetch_metadata(None).await?;
        Ok(self.metadata())
    }

    /// The leader of a partition: its node id and leader epoch, from the cache or a refresh.
    ///
    /// Fails with LEADER_NOT_AVAILABLE (retriable) while the partition has no leader, and with
    /// UNKNOWN_TOPIC_OR_PARTITION when the partition does not exist.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, i32), Error> {
        let meta = self.topic(topic).await?;
        let Some(p) = meta.partition(partition) else {
            return Err(topic_error(topic, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
        };
        if !p.has_leader() {
            self.invalidate_topic(topic);
            return Err(topic_error(topic, ErrorCode::LEADER_NOT_AVAILABLE));
        }
        Ok((p.leader, p.leader_epoch))
    }

    /// The connection of `kind` to broker `node_id`, opening it if needed.
    ///
    /// While the broker is in reconnect backoff, this waits for the backoff to pass first.
    pub async fn connection(&self, node_id: i32, kind: ConnectionKind) -> Result<Connection, Error> {
        self.check_open()?;
        let slot = self.slot(node_id, kind);
        let mut state = slot.state.lock().await;
        if let Some(conn) = state.conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        state.conn = None;
        if let Some(at) = state.retry_at {
            tokio::time::sleep_until(at.into()).await;
        }
        let addr = self.address_of(node_id)?;
        let span = tracing::debug_span!("klamm.connect", node_id, %addr, ?kind);
        match Connection::connect(&addr, self.inner.config.connection.clone()).instrument(span).await {
            Ok(conn) => {
                Counters::add(&self.inner.stats.connections_opened, 1);
                state.failures = 0;
                state.retry_at = None;
                state.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                Counters::add(&self.inner.stats.connection_failures, 1);
                let config = &self.inner.config;
                let wait = backoff(config.reconnect_backoff, config.reconnect_backoff_max, state.failures);
                state.failures = state.failures.saturating_add(1);
                state.retry_at = Some(Instant::now() + wait);
                tracing::debug!(node_id, %addr, error = %e, ?wait, "connect failed");
                Err(e)
            }
        }
    }

    /// A connection of `kind` to any reachable broker: known brokers first (starting at a
    /// different one each call), the bootstrap list when none of them can be reached.
    pub async fn any_connection(&self, kind: ConnectionKind) -> Result<Connection, Error> {
        self.check_open()?;
        let snapshot = self.metadata();
        let known: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let bootstrap: Vec<i32> =
            (0..self.inner.config.bootstrap_servers.len()).map(|i| -1 - i as i32).collect();
        let start = self.inner.rotate.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for nodes in [&known, &bootstrap] {
            if nodes.is_empty() {
                continue;
            }
            let order: Vec<i32> = (0..nodes.len()).map(|i| nodes[(start + i) % nodes.len()]).collect();
            // Live connections first, then brokers not in backoff, then the rest (which waits
            // out their backoff).
            for pass in 0..3 {
                for &node in &order {
                    let slot = self.slot(node, kind);
                    let usable = match slot.state.try_lock() {
                        Ok(state) => match pass {
                            0 => state.conn.as_ref().is_some_and(|c| !c.is_closed()),
                            1 => state.retry_at.is_none_or(|at| at <= Instant::now()),
                            _ => true,
                        },
                        // Someone is connecting to it right now: worth waiting for in pass 1.
                        Err(_) => pass >= 1,
                    };
                    if !usable {
                        continue;
                    }
                    match self.connection(node, kind).await {
                        Ok(conn) => return Ok(conn),
                        Err(e) if e.is_user_error() || e.is_authentication_error() => return Err(e),
                        Err(e) => last_error = Some(e),
                    }
                }
                if last_error.is_some() && pass == 1 {
                    // Every broker was tried once in this round; do not wait out backoffs.
                    break;
                }
            }
        }
        Err(last_error.unwrap_or_else(|| crate::config::config_error("no brokers to connect to".to_owned())))
    }

    /// The node id of the broker coordinating consumer group `group` (FindCoordinator), with
    /// its address in the metadata cache so that [`Client::connection`] can reach it.
    ///
    /// Fails with the broker's error (COORDINATOR_NOT_AVAILABLE while the group's partition
    /// of the offsets topic has no leader, GROUP_AUTHORIZATION_FAILED, ...) or a connection
    /// error.
    pub async fn group_coordinator(&self, group: &str) -> Result<i32, Error> {
        let mut found = self.find_group_coordinators(&[group.to_string()]).await;
        match found.pop() {
            Some((_, result)) => result,
            None => Err(missing(&format!("the coordinator of group {group:?}"))),
        }
    }

    /// The coordinator of each group: one batched FindCoordinator where the broker has v4+,
    /// one request per group before. Makes sure the client knows each coordinator's address.
    pub(crate) async fn find_group_coordinators(
        &self,
        groups: &[String],
    ) -> Vec<(String, Result<i32, Error>)> {
        self.find_coordinators(CoordinatorKey::Group, groups).await
    }

    /// The coordinator of each key of `kind`: one batched FindCoordinator where the broker has
    /// v4+, one request per key before. Makes sure the client knows each coordinator's address.
    pub(crate) async fn find_coordinators(
        &self,
        kind: CoordinatorKey,
        keys: &[String],
    ) -> Vec<(String, Result<i32, Error>)> {
        let found = async {
            let conn = self.any_connection(ConnectionKind::Control).await?;
            let version = conn.version_for::<FindCoordinatorRequest>()?;
            if kind != CoordinatorKey::Group && version < 1 {
                return Err(crate::admin::user_error(
                    "finding a transaction coordinator needs FindCoordinator v1 (Kafka 0.11)",
                ));
            }
            let key_type = kind.wire();
            let mut out = Vec::new();
            if version >= 4 {
                let request = FindCoordinatorRequest {
                    coordinator_keys: keys.to_vec(),
                    key_type,
                    ..Default::default()
                };
                let response = conn.send_at(version, &request).await?;
                for c in response.coordinators {
                    let what = kind.what(&c.key);
                    let result = match broker_error(c.error_code, &what, c.error_message) {
                        Some(e) => Err(e),
                        None => Ok(c.node_id),
                    };
                    out.push((c.key, result));
                }
            } else {
                for key in keys {
                    let request = FindCoordinatorRequest { key: key.clone(), key_type, ..Default::default() };
                    let result = match conn.send_at(version, &request).await {
                        Ok(r) => match broker_error(r.error_code, &kind.what(key), r.error_message) {
                            Some(e) => Err(e),
                            None => Ok(r.node_id),
                        },
                        Err(e) => Err(e),
                    };
                    out.push((key.clone(), result));
                }
            }
            Ok::<_, Error>(out)
        }
        .await;
        let mut found: HashMap<String, Result<i32, Error>> = match found {
            Ok(found) => found.into_iter().collect(),
            Err(e) => return keys.iter().map(|k| (k.clone(), Err(e.clone()))).collect(),
        };
        // A coordinator the metadata cache does not list yet (a broker that just joined).
        let unknown = found.values().any(|r| r.as_ref().is_ok_and(|n| self.metadata().broker(*n).is_none()));
        if unknown {
            if let Err(e) = self.refresh_metadata(&[]).await {
                return keys.iter().map(|k| (k.clone(), Err(e.clone()))).collect();
            }
        }
        keys.iter()
            .map(|k| {
                let result = found.remove(k).unwrap_or_else(|| Err(missing(&kind.what(k))));
                (k.clone(), result)
            })
            .collect()
    }

    /// Sends `request` to broker `node_id` on its connection of `kind`.
    pub async fn send_to<R: Request>(
        &self,
        node_id: i32,
        kind: ConnectionKind,
        request: &R,
    ) -> Result<R::Response, Error> {
        self.connection(node_id, kind).await?.send(request).await
    }

    /// Sends `request` to any reachable broker on a control connection.
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response, Error> {
        self.any_connection(ConnectionKind::Control).await?.send(request).await
    }

    /// Closes every connection. Later requests through this client (or its clones) fail with
    /// [`ErrorKind::User`]. Returns once the connection tasks have stopped.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).drain().map(|(_, s)| s).collect();
        for slot in slots {
            let conn = slot.state.lock().await.conn.take();
            if let Some(conn) = conn {
                conn.close().await;
            }
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::with_source(ErrorKind::User, None, ClientClosed));
        }
        Ok(())
    }

    fn slot(&self, node_id: i32, kind: ConnectionKind) -> Arc<Slot> {
        Arc::clone(lock(&self.inner.slots).entry((node_id, kind)).or_default())
    }

    /// `host:port` of a node: from metadata, or a bootstrap entry for the negative ids
    /// `-1 - index` that stand for bootstrap servers before their node ids are known.
    fn address_of(&self, node_id: i32) -> Result<String, Error> {
        if node_id < 0 {
            let index = (-1 - i64::from(node_id)) as usize;
            if let Some(addr) = self.inner.config.bootstrap_servers.get(index) {
                return Ok(addr.clone());
            }
        } else if let Some(broker) = self.metadata().broker(node_id) {
            return Ok(broker.address());
        }
        Err(Error::new(ErrorKind::UnknownNode { node: node_id }))
    }

    /// Fetches `topic` unless a refresh since `seen_generation` already brought it.
    async fn refresh_topic_after(
        &self,
        topic: &str,
        seen_generation: u64,
    ) -> Result<Arc<TopicMetadata>, Error> {
        let _serial = self.inner.refresh.lock().await;
        let snapshot = self.metadata();
        if snapshot.generation != seen_generation {
            if let Some(cached) = snapshot.topic(topic) {
                return Ok(Arc::clone(cached));
            }
        }
        let mut outcomes = self.fetch_metadata(Some(vec![topic.to_owned()])).await?;
        match outcomes.remove(topic) {
            Some(Ok(meta)) => Ok(meta),
            Some(Err(code)) => Err(topic_error(topic, code)),
            None => Err(topic_error(topic, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)),
        }
    }

    /// One Metadata request (`None`: all topics); merges the answer into the cache. The caller
    /// holds the refresh lock.
    async fn fetch_metadata(
        &self,
        topics: Option<Vec<String>>,
    ) -> Result<HashMap<String, TopicOutcome>, Error> {
        self.start_timer();
        let request = MetadataRequest {
            topics: topics.map(|names| {
                names
                    .into_iter()
                    .map(|name| MetadataRequestTopic { name: Some(name), ..Default::default() })
                    .collect()
            }),
            allow_auto_topic_creation: self.inner.config.allow_auto_create_topics,
            ..Default::default()
        };
        let span = tracing::debug_span!("klamm.metadata", topics = request.topics.as_ref().map(Vec::len));
        let response = async {
            let conn = self.any_connection(ConnectionKind::Control).await?;
            conn.send(&request).await
        }
        .instrument(span)
        .await?;
        let mut guard = write(&self.inner.metadata);
        let (next, outcomes) = guard.merge(&response);
        tracing::debug!(
            brokers = next.brokers.len(),
            topics = outcomes.len(),
            generation = next.generation,
            "metadata updated"
        );
        *guard = Arc::new(next);
        Ok(outcomes)
    }

    /// Starts the task that refreshes cached topics every `metadata.max.age.ms`, once.
    fn start_timer(&self) {
        if self.inner.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = self.inner.config.metadata_max_age;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let client = Client { inner };
                if client.inner.closed.load(Ordering::Acquire) {
                    return;
                }
                let topics: Vec<String> = client.metadata().topics().map(|t| t.name.clone()).collect();
                let _serial = client.inner.refresh.lock().await;
                if let Err(e) = client.fetch_metadata(Some(topics)).await {
                    tracing::debug!(error = %e, "periodic metadata refresh failed");
                }
            }
        });
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// A broker error about one topic, naming it.
pub(crate) fn topic_error(topic: &str, code: ErrorCode) -> Error {
    Error::with_source(ErrorKind::Broker(code), None, TopicProblem(topic.to_owned()))
}

#[derive(Debug, thiserror::Error)]
#[error("topic {0:?}")]
struct TopicProblem(String);

#[derive(Debug, thiserror::Error)]
#[error("the client was closed")]
struct ClientClosed;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic cannot leave it half done.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
