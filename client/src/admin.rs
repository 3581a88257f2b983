//! [`Admin`]: cluster administration over a [`Client`]. This file owns the handle itself, the
//! topic operations (CreateTopics, DeleteTopics, CreatePartitions, topic descriptions through
//! Metadata) and DescribeCluster; `admin_offsets.rs` owns the operations routed to partition
//! leaders (ListOffsets, DeleteRecords), `admin_groups.rs` the consumer group ones,
//! `admin_elect.rs` leader elections (ElectLeaders) and `admin_transactions.rs` the transaction
//! listings and descriptions (ListTransactions, DescribeTransactions, DescribeProducers).
//!
//! Where requests go: in KRaft any broker forwards CreateTopics, DeleteTopics and
//! CreatePartitions to the active controller, so they go to any broker ([`Client::send_any`]'s
//! choice), as the Java admin sends them to its "least loaded node".
//!
//! Errors come at two levels, both as [`Error`] (whose [`Error::is_retriable`] tells whether
//! trying again may help):
//! - a failure of a whole request (connection lost, timeout, NOT_CONTROLLER) is retried with
//!   backoff (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`) until the operation
//!   timeout ([`Admin::timeout`]) passes; if it still fails, every item of the call gets it;
//! - an error about one topic (TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, ...) is that
//!   topic's result and never hides the others. It is not retried, except NOT_CONTROLLER and
//!   THROTTLING_QUOTA_EXCEEDED, which the Java admin retries too: the controller moved, or the
//!   quota frees up.
//!
//! Every operation runs in a `tracing` span named `klamm.admin.<operation>`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use klamm_protocol::api::create_partitions::{CreatePartitionsRequest, CreatePartitionsTopic};
use klamm_protocol::api::create_topics::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use klamm_protocol::api::delete_topics::{DeleteTopicState, DeleteTopicsRequest};
use klamm_protocol::api::describe_cluster::DescribeClusterRequest;
use klamm_protocol::api::metadata::{MetadataRequest, MetadataRequestTopic, MetadataResponseTopic};
use klamm_protocol::{ApiKey, ErrorCode, Uuid};
use tracing::Instrument;

use crate::admin_groups::COORDINATOR_ATTEMPTS;
use crate::client::{Client, ConnectionKind, CoordinatorKey};
use crate::config::{backoff, ClientConfig};
use crate::error::{Error, ErrorKind};
use crate::metadata::{BrokerMetadata, PartitionMetadata, TopicMetadata};

/// How long an operation may take, retries included, unless [`Admin::timeout`] says otherwise
/// (the Java admin's `default.api.timeout.ms`).
pub const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Results of an operation on several topics: one entry per topic, in the order asked.
pub type TopicResults<T> = Vec<(String, Result<T, Error>)>;

/// Administration of a Kafka cluster: topics, partitions, offsets, consumer groups.
///
/// An `Admin` is a thin handle over a [`Client`] and shares its connections and metadata;
/// cloning it is cheap.
///
/// ```no_run
/// use klamm::{Admin, ClientConfig, NewTopic};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// let topics = [NewTopic::new("orders", 6, 3).config("retention.ms", "86400000")];
/// for (name, result) in admin.create_topics(&topics).await {
///     match result {
///         Ok(created) => println!("{name}: created with id {}", created.topic_id),
///         Err(e) => println!("{name}: {e} (retriable: {})", e.is_retriable()),
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Admin {
    pub(crate) client: Client,
    pub(crate) timeout: Duration,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// The partition count; `None` for the broker's `num.partitions` (CreateTopics v4+).
    pub partitions: Option<i32>,
    /// The replication factor; `None` for the broker's `default.replication.factor` (v4+).
    pub replication_factor: Option<i16>,
    /// Explicit replicas per partition (partition index, broker ids). When set, `partitions`
    /// and `replication_factor` must be `None`.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with this many partitions and replicas.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }

    /// A topic with the broker's default partition count and replication factor (needs a
    /// broker with CreateTopics v4, Kafka 2.4 or newer).
    pub fn with_defaults(name: impl Into<String>) -> Self {
        Self { partitions: None, replication_factor: None, ..Self::new(name, 0, 0) }
    }

    /// Places partition `partition` on `brokers` (the first is the preferred leader). Clears
    /// the partition count and replication factor, which come from the assignments then.
    pub fn assignment(mut self, partition: i32, brokers: Vec<i32>) -> Self {
        self.partitions = None;
        self.replication_factor = None;
        self.assignments.push((partition, brokers));
        self
    }

    /// Sets a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// How [`Admin::create_topics_with`] creates topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateTopicsOptions {
    /// Only check that the topics could be created; create nothing (CreateTopics v1+).
    pub validate_only: bool,
    /// After a topic is created, wait until metadata shows it with a leader for every
    /// partition (see [`Admin::wait_for_topic`]). The Java admin does not wait.
    pub wait_for_leaders: bool,
}

impl CreateTopicsOptions {
    /// Sets [`CreateTopicsOptions::validate_only`].
    pub fn validate_only(mut self, validate_only: bool) -> Self {
        self.validate_only = validate_only;
        self
    }

    /// Sets [`CreateTopicsOptions::wait_for_leaders`].
    pub fn wait_for_leaders(mut self, wait: bool) -> Self {
        self.wait_for_leaders = wait;
        self
    }
}

/// What the broker reports about a topic it created (or would create, with `validate_only`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTopic {
    /// The topic id (zero before CreateTopics v7).
    pub topic_id: Uuid,
    /// The partition count (CreateTopics v5+).
    pub partitions: Option<i32>,
    /// The replication factor (CreateTopics v5+).
    pub replication_factor: Option<i16>,
    /// The topic's configs with their values as the broker resolved them (CreateTopics v5+;
    /// empty before, and when the broker could not describe them).
    pub configs: Vec<(String, Option<String>)>,
}

/// The cluster as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// The node id the broker names as controller. In KRaft clusters this is a broker chosen
    /// by the broker answering (clients cannot reach the controllers), as in the Java admin.
    pub controller: Option<i32>,
    /// The brokers, by node id.
    pub brokers: Vec<BrokerMetadata>,
}

impl Admin {
    /// An admin over `client`, sharing its connections and metadata cache.
    ///
    /// Operations that look up partition leaders (list offsets, delete records) go through the
    /// client's metadata cache; with the client's `allow.auto.create.topics` on, asking about a
    /// topic that does not exist may create it. [`Admin::connect`] turns that off.
    pub fn new(client: Client) -> Admin {
        Admin { client, timeout: DEFAULT_ADMIN_TIMEOUT }
    }

    /// An admin over a new client for `config`, with automatic topic creation turned off.
    /// Fails when no bootstrap broker answers.
    pub async fn connect(config: ClientConfig) -> Result<Admin, Error> {
        let client = Client::connect(config.allow_auto_create_topics(false)).await?;
        Ok(Admin::new(client))
    }

    /// Sets how long each operation may take, retries included (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates `topics`; see [`Admin::create_topics_with`].
    pub async fn create_topics(&self, topics: &[NewTopic]) -> TopicResults<CreatedTopic> {
        self.create_topics_with(topics, &CreateTopicsOptions::default()).await
    }

    /// Creates `topics`, and returns one result per topic in the order given.
    ///
    /// Typical errors of one topic: TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
    /// INVALID_REPLICATION_FACTOR, INVALID_CONFIG, POLICY_VIOLATION; the broker's own message,
    /// when it sends one, is in the error's text. A topic with default partitions or
    /// replication factor fails with [`ErrorKind::User`] on a broker without CreateTopics v4.
    ///
    /// ```no_run
    /// use klamm::{Admin, CreateTopicsOptions, NewTopic};
    ///
    /// # async fn example(admin: Admin) {
    /// let options = CreateTopicsOptions::default().wait_for_leaders(true);
    /// let results = admin.create_topics_with(&[NewTopic::new("audit", 1, 1)], &options).await;
    /// assert!(results[0].1.is_ok());
    /// # }
    /// ```
    pub async fn create_topics_with(
        &self,
        topics: &[NewTopic],
        options: &CreateTopicsOptions,
    ) -> TopicResults<CreatedTopic> {
        let span = tracing::debug_span!(
            "klamm.admin.create_topics",
            topics = topics.len(),
            validate_only = options.validate_only
        );
        async {
            let deadline = Instant::now() + self.timeout;
            let by_name: HashMap<&str, &NewTopic> = topics.iter().map(|t| (t.name.as_str(), t)).collect();
            let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
            let validate_only = options.validate_only;
            let mut results = self
                .topic_operation(names, |pending, timeout_ms| {
                    let by_name = &by_name;
                    async move {
                        let conn = self.client.any_connection(ConnectionKind::Control).await?;
                        let version = conn.version_for::<CreateTopicsRequest>()?;
                        if validate_only && version < 1 {
                            return Err(user_error("validate_only needs CreateTopics v1 or newer"));
                        }
                        let mut out = Vec::new();
                        let mut request =
                            CreateTopicsRequest { timeout_ms, validate_only, ..Default::default() };
                        for name in pending {
                            let topic = by_name[name.as_str()];
                            match creatable(topic, version) {
                                Ok(t) => request.topics.push(t),
                                Err(e) => out.push((name, Err(e))),
                            }
                        }
                        if request.topics.is_empty() {
                            return Ok(out);
                        }
                        let response = conn.send_at(version, &request).await?;
                        for t in response.topics {
                            let result =
                                match broker_error(t.error_code, &topic_what(&t.name), t.error_message) {
                                    Some(e) => Err(e),
                                    None => Ok(CreatedTopic {
                                        topic_id: t.topic_id,
                                        partitions: Some(t.num_partitions).filter(|n| *n >= 0),
                                        replication_factor: Some(t.replication_factor).filter(|n| *n >= 0),
                                        configs: t
                                            .configs
                                            .unwrap_or_default()
                                            .into_iter()
                                            .map(|c| (c.name, c.value))
                                            .collect(),
                                    }),
                                };
                            out.push((t.name, result));
                        }
                        Ok(out)
                    }
                })
                .await;
            if options.wait_for_leaders && !options.validate_only {
                for (name, result) in &mut results {
                    if result.is_ok() {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if let Err(e) = self.wait_for_topic(name, left).await {
                            *result = Err(e);
                        }
                    }
                }
            }
            results
        }
        .instrument(span)
        .await
    }

    /// Deletes `topics`, and returns one result per topic in the order given.
    ///
    /// A topic that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn delete_topics(&self, topics: &[&str]) -> TopicResults<()> {
        let span = tracing::debug_span!("klamm.admin.delete_topics", topics = topics.len());
        let names = topics.iter().map(|t| (*t).to_owned()).collect();
        self.topic_operation(names, |pending, timeout_ms| async move {
            let conn = self.client.any_connection(ConnectionKind::Control).await?;
            let version = conn.version_for::<DeleteTopicsRequest>()?;
            let mut request = DeleteTopicsRequest { timeout_ms, ..Default::default() };
            if version >= 6 {
                request.topics = pending
                    .into_iter()
                    .map(|name| DeleteTopicState { name: Some(name), ..Default::default() })
                    .collect();
            } else {
                request.topic_names = pending;
            }
            let response = conn.send_at(version, &request).await?;
            let out = response
                .responses
                .into_iter()
                .filter_map(|t| {
                    let name = t.name?;
                    let result = match broker_error(t.error_code, &topic_what(&name), t.error_message) {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                    Some((name, result))
                })
                .collect();
            Ok(out)
        })
        .instrument(span)
        .await
    }

    /// Raises the partition count of each topic to the given total, and returns one result per
    /// topic in the order given.
    ///
    /// A total at or below the current count fails with INVALID_PARTITIONS.
    ///
    /// ```no_run
    /// # async fn example(admin: klamm::Admin) {
    /// for (topic, result) in admin.create_partitions(&[("orders", 12)]).await {
    ///     if let Err(e) = result {
    ///         eprintln!("{topic}: {e}");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn create_partitions(&self, topics: &[(&str, i32)]) -> TopicResults<()> {
        let span = tracing::debug_span!("klamm.admin.create_partitions", topics = topics.len());
        let counts: HashMap<&str, i32> = topics.iter().copied().collect();
        let names = topics.iter().map(|(t, _)| (*t).to_owned()).collect();
        self.topic_operation(names, |pending, timeout_ms| {
            let counts = &counts;
            async move {
                let request = CreatePartitionsRequest {
                    topics: pending
                        .into_iter()
                        .map(|name| CreatePartitionsTopic {
                            count: counts[name.as_str()],
                            name,
                            ..Default::default()
                        })
                        .collect(),
                    timeout_ms,
                    validate_only: false,
                    ..Default::default()
                };
                let response = self.client.send_any(&request).await?;
                let out = response
                    .results
                    .into_iter()
                    .map(|t| {
                        let result = match broker_error(t.error_code, &topic_what(&t.name), t.error_message) {
                            Some(e) => Err(e),
                            None => Ok(()),
                        };
                        (t.name, result)
                    })
                    .collect();
                Ok(out)
            }
        })
        .instrument(span)
        .await
    }

    /// Describes `topics`: id, whether internal, and per partition its leader, leader epoch,
    /// replicas, in-sync and offline replicas. One result per topic in the order given; a topic
    /// that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION. Never creates a topic.
    ///
    /// The answer comes straight from a broker; the client's metadata cache is not changed.
    pub async fn describe_topics(&self, topics: &[&str]) -> TopicResults<TopicMetadata> {
        let span = tracing::debug_span!("klamm.admin.describe_topics", topics = topics.len());
        async {
            if topics.is_empty() {
                return Vec::new();
            }
            let names: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
            let deadline = Instant::now() + self.timeout;
            match self.retrying(deadline, || self.metadata(Some(&names))).await {
                Ok(described) => {
                    let described: HashMap<String, Result<TopicMetadata, Error>> =
                        described.into_iter().collect();
                    names
                        .into_iter()
                        .map(|name| {
                            let result = described
                                .get(&name)
                                .cloned()
                                .unwrap_or_else(|| Err(missing(&topic_what(&name))));
                            (name, result)
                        })
                        .collect()
                }
                Err(e) => names.into_iter().map(|name| (name, Err(e.clone()))).collect(),
            }
        }
        .instrument(span)
        .await
    }

    /// Every topic of the cluster (internal ones included, see
    /// [`TopicMetadata::is_internal`]), sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, Error> {
        let span = tracing::debug_span!("klamm.admin.list_topics");
        async {
            let deadline = Instant::now() + self.timeout;
            let described = self.retrying(deadline, || self.metadata(None)).await?;
            let mut topics: Vec<TopicMetadata> = described.into_iter().filter_map(|(_, t)| t.ok()).collect();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(topics)
        }
        .instrument(span)
        .await
    }

    /// Waits until metadata shows `topic` with a leader for every partition, and returns its
    /// description. Useful after [`Admin::create_topics`], which returns once the controller
    /// created the topic, possibly before brokers know of it.
    ///
    /// Fails with [`ErrorKind::Timeout`] (the last error seen as its source) when `timeout`
    /// passes first, or at once with an error that waiting cannot cure.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Result<TopicMetadata, Error> {
        let span = tracing::debug_span!("klamm.admin.wait_for_topic", topic);
        async {
            let deadline = Instant::now() + timeout;
            let names = [topic.to_owned()];
            let mut attempt = 0;
            loop {
                let e = match self.metadata(Some(&names)).await {
                    Ok(mut described) => match described.pop() {
                        Some((_, Ok(t)))
                            if !t.partitions.is_empty()
                                && t.partitions.iter().all(PartitionMetadata::has_leader) =>
                        {
                            return Ok(t);
                        }
                        Some((_, Ok(_))) => leaderless(topic),
                        Some((_, Err(e))) => e,
                        None => missing(&topic_what(topic)),
                    },
                    Err(e) => e,
                };
                if !e.is_retriable() {
                    return Err(e);
                }
                let wait = self.retry_wait(attempt);
                if Instant::now() + wait >= deadline {
                    return Err(timed_out(Some(e)));
                }
                tracing::debug!(topic, error = %e, "topic not ready yet");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
        .instrument(span)
        .await
    }

    /// The cluster id, the controller and the brokers: from DescribeCluster where the broker
    /// implements it (Kafka 2.8+), from Metadata otherwise.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, Error> {
        let span = tracing::debug_span!("klamm.admin.describe_cluster");
        let deadline = Instant::now() + self.timeout;
        self.retrying(deadline, || async {
            let conn = self.client.any_connection(ConnectionKind::Control).await?;
            if conn.broker_versions(ApiKey::DESCRIBE_CLUSTER).is_some() {
                if let Ok(version) = conn.version_for::<DescribeClusterRequest>() {
                    let response = conn.send_at(version, &DescribeClusterRequest::default()).await?;
                    if let Some(e) = broker_error(response.error_code, "the cluster", response.error_message)
                    {
                        return Err(e);
                    }
                    let mut brokers: Vec<BrokerMetadata> = response
                        .brokers
                        .into_iter()
                        .filter_map(|b| {
                            let port = u16::try_from(b.port).ok()?;
                            Some(BrokerMetadata { node_id: b.broker_id, host: b.host, port, rack: b.rack })
                        })
                        .collect();
                    brokers.sort_by_key(|b| b.node_id);
                    return Ok(ClusterDescription {
                        cluster_id: Some(response.cluster_id).filter(|id| !id.is_empty()),
                        controller: Some(response.controller_id).filter(|id| *id >= 0),
                        brokers,
                    });
                }
            }
            let snapshot = self.client.refresh_metadata(&[]).await?;
            Ok(ClusterDescription {
                cluster_id: snapshot.cluster_id.clone(),
                controller: Some(snapshot.controller_id).filter(|id| *id >= 0),
                brokers: snapshot.brokers.values().cloned().collect(),
            })
        })
        .instrument(span)
        .await
    }

    /// One Metadata request to any broker, without topic auto-creation: `None` asks for every
    /// topic. Returns what it said about each topic.
    async fn metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<Vec<(String, Result<TopicMetadata, Error>)>, Error> {
        let conn = self.client.any_connection(ConnectionKind::Control).await?;
        let version = conn.version_for::<MetadataRequest>()?;
        let topics = match topics {
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| MetadataRequestTopic { name: Some(name.clone()), ..Default::default() })
                    .collect(),
            ),
            // Version 0 has no null list; an empty one means every topic there.
            None if version == 0 => Some(Vec::new()),
            None => None,
        };
        let request = MetadataRequest {
            topics,
            // Before v4 the request cannot say; the broker's auto.create.topics.enable decides.
            allow_auto_topic_creation: version < 4,
            ..Default::default()
        };
        let response = conn.send_at(version, &request).await?;
        Ok(response.topics.into_iter().filter_map(describe_topic).collect())
    }

    /// Runs a per-topic operation: `send(pending, timeout_ms)` sends one request for the
    /// pending topics and returns a result per topic it heard about. Whole-request failures
    /// that are retriable are retried until the deadline; so are topics whose error is
    /// NOT_CONTROLLER or THROTTLING_QUOTA_EXCEEDED.
    pub(crate) async fn topic_operation<T, F, Fut>(&self, names: Vec<String>, mut send: F) -> TopicResults<T>
    where
        T: Clone,
        F: FnMut(Vec<String>, i32) -> Fut,
        Fut: Future<Output = Result<Vec<(String, Result<T, Error>)>, Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut done: HashMap<String, Result<T, Error>> = HashMap::new();
        let mut pending: Vec<String> = Vec::new();
        for name in &names {
            if !pending.contains(name) {
                pending.push(name.clone());
            }
        }
        let mut attempt = 0;
        let mut last_error = None;
        while !pending.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                for name in pending.drain(..) {
                    done.insert(name, Err(timed_out(last_error.clone())));
                }
                break;
            }
            let request_timeout = self.client.config().connection.request_timeout;
            let timeout_ms = (deadline - now).min(request_timeout).as_millis().min(i32::MAX as u128) as i32;
            let sent = tokio::time::timeout_at(deadline.into(), send(pending.clone(), timeout_ms)).await;
            let Ok(outcome) = sent else {
                for name in pending.drain(..) {
                    done.insert(name, Err(timed_out(last_error.clone())));
                }
                break;
            };
            match outcome {
                Ok(results) => {
                    let mut heard: HashMap<String, Result<T, Error>> = results.into_iter().collect();
                    let mut retry = Vec::new();
                    for name in pending.drain(..) {
                        match heard.remove(&name) {
                            Some(Err(e)) if retried_per_topic(&e) => {
                                last_error = Some(e);
                                retry.push(name);
                            }
                            Some(result) => {
                                done.insert(name, result);
                            }
                            None => {
                                done.insert(name.clone(), Err(missing(&topic_what(&name))));
                            }
                        }
                    }
                    pending = retry;
                }
                // Timeouts included: the operation's deadline bounds the retries.
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, attempt, "admin request failed; retrying");
                    last_error = Some(e);
                }
                Err(e) => {
                    for name in pending.drain(..) {
                        done.insert(name, Err(e.clone()));
                    }
                }
            }
            if !pending.is_empty() {
                let wait = self.retry_wait(attempt);
                attempt += 1;
                if Instant::now() + wait >= deadline {
                    for name in pending.drain(..) {
                        done.insert(name, Err(timed_out(last_error.clone())));
                    }
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        names
            .into_iter()
            .map(|name| {
                let result = done.get(&name).cloned().unwrap_or_else(|| Err(missing(&topic_what(&name))));
                (name, result)
            })
            .collect()
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not retriable, or the
    /// deadline passes (then fails with [`ErrorKind::Timeout`], the last error as its source).
    pub(crate) async fn retrying<T, F, Fut>(&self, deadline: Instant, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut tries = 0;
        // What failed the attempts so far: the cause to report when the deadline cuts one short.
        let mut last = None;
        loop {
            let e = match tokio::time::timeout_at(deadline.into(), attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => return Err(timed_out(last)),
            };
            if !e.is_retriable() {
                return Err(e);
            }
            let wait = self.retry_wait(tries);
            if Instant::now() + wait >= deadline {
                return Err(timed_out(Some(e)));
            }
            tracing::debug!(error = %e, attempt = tries, "admin request failed; retrying");
            last = Some(e);
            tokio::time::sleep(wait).await;
            tries += 1;
        }
    }

    /// Asks every broker of the cluster with `ask` (each retried as [`Admin::retrying`] does),
    /// for the operations whose answer is spread over all brokers (ListGroups,
    /// ListTransactions). Fails when one broker cannot be asked, since the merged answer would
    /// miss its part.
    pub(crate) async fn ask_every_broker<T, F, Fut>(
        &self,
        deadline: Instant,
        ask: F,
    ) -> Result<Vec<(i32, T)>, Error>
    where
        F: Fn(i32) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let snapshot = self.retrying(deadline, || self.client.refresh_metadata(&[])).await?;
        let mut answers = Vec::with_capacity(snapshot.brokers.len());
        for &node in snapshot.brokers.keys() {
            answers.push((node, self.retrying(deadline, || ask(node)).await?));
        }
        Ok(answers)
    }

    /// Asks each key's coordinator about it: finds the coordinators of `keys` (of `kind`), and
    /// calls `ask(node, keys)` once per coordinator with the keys it holds. `ask` answers per
    /// key; a key it leaves out is missing. Retriable failures (of FindCoordinator, of the
    /// request, or of one key's answer: NOT_COORDINATOR and the like) send the key back to
    /// FindCoordinator, at most [`COORDINATOR_ATTEMPTS`] times and never past `deadline`.
    /// One result per key in the order given; `what` names a key in errors ("group").
    pub(crate) async fn by_coordinator<T, F, Fut>(
        &self,
        kind: CoordinatorKey,
        keys: &[&str],
        what: &str,
        deadline: Instant,
        ask: F,
    ) -> Vec<(String, Result<T, Error>)>
    where
        T: Clone,
        F: Fn(i32, Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(String, Result<T, Error>)>, Error>>,
    {
        let mut done: HashMap<String, Result<T, Error>> = HashMap::new();
        let mut pending: Vec<String> = Vec::new();
        for key in keys {
            if !pending.iter().any(|p| p == key) {
                pending.push((*key).to_owned());
            }
        }
        let mut last_errors: HashMap<String, Error> = HashMap::new();
        let mut fail = |key: String, e: Error, retry: &mut Vec<String>, done: &mut HashMap<_, _>| {
            if e.is_retriable() {
                last_errors.insert(key.clone(), e);
                retry.push(key);
            } else {
                done.insert(key, Err(e));
            }
        };
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let mut retry = Vec::new();
            let left = deadline.saturating_duration_since(Instant::now());
            let found = self.client.find_coordinators(kind, &pending);
            let Ok(found) = tokio::time::timeout(left, found).await else { break };
            let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            for (key, found) in found {
                match found {
                    Ok(node) => by_node.entry(node).or_default().push(key),
                    Err(e) => fail(key, e, &mut retry, &mut done),
                }
            }
            for (node, held) in by_node {
                let left = deadline.saturating_duration_since(Instant::now());
                let answers = match tokio::time::timeout(left, ask(node, held.clone())).await {
                    Ok(Ok(answers)) => answers,
                    Ok(Err(e)) => {
                        for key in held {
                            fail(key, e.clone(), &mut retry, &mut done);
                        }
                        continue;
                    }
                    Err(_) => {
                        retry.extend(held);
                        continue;
                    }
                };
                for (key, answer) in answers {
                    if !held.contains(&key) || done.contains_key(&key) || retry.contains(&key) {
                        continue;
                    }
                    match answer {
                        Ok(value) => {
                            done.insert(key, Ok(value));
                        }
                        Err(e) => fail(key, e, &mut retry, &mut done),
                    }
                }
                for key in held {
                    if !done.contains_key(&key) && !retry.contains(&key) {
                        let e = missing(&format!("{what} {key:?}"));
                        done.insert(key, Err(e));
                    }
                }
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
            let wait = self.retry_wait(attempt - 1);
            if attempt >= COORDINATOR_ATTEMPTS || Instant::now() + wait >= deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        for key in pending {
            let e = match last_errors.remove(&key) {
                Some(e) if Instant::now() < deadline => e,
                last => timed_out(last),
            };
            done.insert(key, Err(e));
        }
        keys.iter()
            .map(|key| {
                let result =
                    done.get(*key).cloned().unwrap_or_else(|| Err(missing(&format!("{what} {key:?}"))));
                ((*key).to_owned(), result)
            })
            .collect()
    }

    /// The wait before retry number `attempt` (from 0).
    pub(crate) fn retry_wait(&self, attempt: u32) -> Duration {
        let config = self.client.config();
        backoff(config.retry_backoff, config.retry_backoff_max, attempt)
    }
}

/// Per-topic errors that the operation retries rather than returns.
fn retried_per_topic(e: &Error) -> bool {
    matches!(e.code(), Some(ErrorCode::NOT_CONTROLLER | ErrorCode::THROTTLING_QUOTA_EXCEEDED))
}

/// The CreateTopics entry of `topic` at `version`, or why that version cannot carry it.
fn creatable(topic: &NewTopic, version: i16) -> Result<CreatableTopic, Error> {
    let explicit = !topic.assignments.is_empty();
    if explicit && (topic.partitions.is_some() || topic.replication_factor.is_some()) {
        return Err(user_error(
            "a topic with replica assignments takes no partition count or replication factor",
        ));
    }
    if !explicit && version < 4 && (topic.partitions.is_none() || topic.replication_factor.is_none()) {
        return Err(user_error("broker defaults for partitions or replication factor need CreateTopics v4"));
    }
    Ok(CreatableTopic {
        name: topic.name.clone(),
        num_partitions: topic.partitions.unwrap_or(-1),
        replication_factor: topic.replication_factor.unwrap_or(-1),
        assignments: topic
            .assignments
            .iter()
            .map(|(partition, brokers)| CreatableReplicaAssignment {
                partition_index: *partition,
                broker_ids: brokers.clone(),
                ..Default::default()
            })
            .collect(),
        configs: topic
            .configs
            .iter()
            .map(|(name, value)| CreatableTopicConfig {
                name: name.clone(),
                value: Some(value.clone()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// A topic of a Metadata response as a description, or its error.
fn describe_topic(topic: MetadataResponseTopic) -> Option<(String, Result<TopicMetadata, Error>)> {
    let name = topic.name?;
    if let Some(e) = broker_error(topic.error_code, &topic_what(&name), None) {
        return Some((name, Err(e)));
    }
    let mut partitions: Vec<PartitionMetadata> = topic
        .partitions
        .into_iter()
        .map(|p| PartitionMetadata {
            partition: p.partition_index,
            leader: p.leader_id,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes,
            isr: p.isr_nodes,
            offline_replicas: p.offline_replicas,
            error: ErrorCode(p.error_code),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    let complete = partitions.iter().enumerate().all(|(i, p)| p.partition == i as i32);
    if !complete {
        let e = Error::with_source(
            ErrorKind::Broker(ErrorCode::UNKNOWN_SERVER_ERROR),
            None,
            AdminProblem::new(&topic_what(&name), "the broker listed partitions with gaps or duplicates"),
        );
        return Some((name, Err(e)));
    }
    let described =
        TopicMetadata { name: name.clone(), id: topic.topic_id, is_internal: topic.is_internal, partitions };
    Some((name, Ok(described)))
}

/// The error of `code` about `what`, with the broker's message; `None` for NONE.
pub(crate) fn broker_error(code: i16, what: &str, message: Option<String>) -> Option<Error> {
    let code = ErrorCode(code);
    if !code.is_err() {
        return None;
    }
    let problem = AdminProblem { what: what.to_owned(), message: message.filter(|m| !m.is_empty()) };
    Some(Error::with_source(ErrorKind::Broker(code), None, problem))
}

/// How errors name a topic.
pub(crate) fn topic_what(topic: &str) -> String {
    format!("topic {topic:?}")
}

/// The broker's answer said nothing about `what`, which it was asked about.
pub(crate) fn missing(what: &str) -> Error {
    Error::with_source(
        ErrorKind::Broker(ErrorCode::UNKNOWN_SERVER_ERROR),
        None,
        AdminProblem::new(what, "the broker's response did not mention it"),
    )
}

/// A topic without a leader for some partition yet (retriable).
fn leaderless(topic: &str) -> Error {
    Error::with_source(
        ErrorKind::Broker(ErrorCode::LEADER_NOT_AVAILABLE),
        None,
        AdminProblem::new(&topic_what(topic), "not every partition has a leader yet"),
    )
}

/// The operation's deadline passed; `last` is the error that kept it from finishing.
pub(crate) fn timed_out(last: Option<Error>) -> Error {
    match last {
        Some(last) => Error::with_source(ErrorKind::Timeout, None, last),
        None => Error::with_source(
            ErrorKind::Timeout,
            None,
            AdminProblem::new("the operation", "deadline passed"),
        ),
    }
}

/// A misuse of the admin API.
pub(crate) fn user_error(why: &str) -> Error {
    Error::with_source(ErrorKind::User, None, AdminProblem::new("the request", why))
}

/// What an admin error is about, and the broker's message when it sent one.
#[derive(Debug)]
pub(crate) struct AdminProblem {
    what: String,
    message: Option<String>,
}

impl AdminProblem {
    pub(crate) fn new(what: &str, message: &str) -> Self {
        Self { what: what.to_owned(), message: Some(message.to_owned()) }
    }
}

impl std::fmt::Display for AdminProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AdminProblem {}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn admin(timeout: Duration) -> Admin {
        let config = ClientConfig::new("127.0.0.1:9")
            .retry_backoff(Duration::from_millis(1), Duration::from_millis(5));
        Admin::new(Client::new(config).unwrap()).timeout(timeout)
    }

    fn broker(code: ErrorCode) -> Error {
        broker_error(code.0, "topic", Some("why".into())).unwrap()
    }

    #[test]
    fn creatable_checks_what_the_version_can_carry() {
        let defaults = NewTopic::with_defaults("t");
        assert!(creatable(&defaults, 3).unwrap_err().is_user_error());
        let t = creatable(&defaults, 4).unwrap();
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
        let assigned = NewTopic::with_defaults("t").assignment(0, vec![1, 2]).config("a", "b");
        let t = creatable(&assigned, 0).unwrap();
        assert_eq!((t.num_partitions, t.assignments[0].broker_ids.clone()), (-1, vec![1, 2]));
        assert_eq!(t.configs[0].value.as_deref(), Some("b"));
        let both = NewTopic { assignments: vec![(0, vec![1])], ..NewTopic::new("t", 1, 1) };
        assert!(creatable(&both, 7).unwrap_err().is_user_error());
    }

    #[tokio::test]
    async fn topic_errors_stay_per_topic_and_not_controller_is_retried() {
        let admin = admin(Duration::from_secs(5));
        let calls = RefCell::new(Vec::new());
        let names = vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "a".to_owned()];
        let results = admin
            .topic_operation(names, |pending, _| {
                calls.borrow_mut().push(pending.clone());
                let round = calls.borrow().len();
                async move {
                    if round == 1 {
                        // The whole request fails first, retriably.
                        return Err(Error::new(ErrorKind::Closed));
                    }
                    let results = pending.into_iter().filter(|n| n != "c").map(|n| {
                        let result = match (n.as_str(), round) {
                            ("a", 2) => Err(broker(ErrorCode::NOT_CONTROLLER)),
                            ("b", _) => Err(broker(ErrorCode::TOPIC_ALREADY_EXISTS)),
                            _ => Ok(round),
                        };
                        (n, result)
                    });
                    Ok(results.collect())
                }
            })
            .await;
        let calls = calls.into_inner();
        assert_eq!(calls, [vec!["a", "b", "c"], vec!["a", "b", "c"], vec!["a"]]);
        assert_eq!(results.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "a"]);
        assert_eq!(results[0].1.as_ref().ok(), Some(&3));
        assert_eq!(results[1].1.as_ref().unwrap_err().code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
        let unmentioned = results[2].1.as_ref().unwrap_err();
        assert!(unmentioned.to_string().contains("did not mention"), "{unmentioned}");
        assert_eq!(results[3].1.as_ref().ok(), Some(&3));
    }

    #[tokio::test]
    async fn retries_end_at_the_deadline_with_the_last_error() {
        let admin = admin(Duration::from_millis(100));
        let results = admin
            .topic_operation(vec!["a".to_owned()], |pending, _| async move {
                Ok::<_, Error>(
                    pending
                        .into_iter()
                        .map(|n| (n, Err::<(), _>(broker(ErrorCode::NOT_CONTROLLER))))
                        .collect(),
                )
            })
            .await;
        let e = results[0].1.as_ref().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout, "{e:?}");
        assert!(e.to_string().contains("NOT_CONTROLLER"), "{e}");

        let results = admin
            .topic_operation(vec!["a".to_owned()], |_, _| async {
                Err::<Vec<(String, Result<(), Error>)>, _>(Error::new(ErrorKind::Config))
            })
            .await;
        assert_eq!(results[0].1.as_ref().unwrap_err().kind(), &ErrorKind::Config, "not retried");
    }

    #[tokio::test]
    async fn a_deadline_that_cuts_an_attempt_reports_the_error_before_it() {
        let admin = admin(Duration::from_millis(200));
        let deadline = Instant::now() + Duration::from_millis(200);
        let calls = RefCell::new(0);
        let e = admin
            .retrying(deadline, || {
                *calls.borrow_mut() += 1;
                let first = *calls.borrow() == 1;
                async move {
                    if first {
                        return Err(Error::at(ErrorKind::Connect { addr: "b:1".into() }, "b:1"));
                    }
                    // The next attempt hangs until the deadline.
                    std::future::pending::<Result<(), Error>>().await
                }
            })
            .await
            .unwrap_err();
        assert_eq!(*calls.borrow(), 2);
        assert_eq!(e.kind(), &ErrorKind::Timeout, "{e:?}");
        assert!(e.to_string().contains("cannot connect to b:1"), "{e}");
        assert!(e.is_retriable());
    }
}
