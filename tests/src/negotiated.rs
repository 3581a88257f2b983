//! A [`RawConnection`] that negotiates versions the way a client does: it asks the broker for
//! its ApiVersions and sends each request at the highest version both the broker and
//! `klamm-protocol` implement.
//!
//! Raw-protocol tests use it to speak to a broker at the newest common versions without
//! hard-coding them, and can still send any other version with [`NegotiatedConnection::send_at`].
//! A few helpers that several tests need (create a topic, wait for its leaders) live here too.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use klamm_protocol::api::api_versions::{ApiVersion, ApiVersionsRequest, ApiVersionsResponse};
use klamm_protocol::api::create_topics::{CreatableTopic, CreateTopicsRequest, CreateTopicsResponse};
use klamm_protocol::api::list_offsets::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use klamm_protocol::api::metadata::{MetadataRequest, MetadataRequestTopic, MetadataResponse};
use klamm_protocol::{ApiKey, Message, Request};

use crate::raw_connection::RawConnection;

/// The version of ApiVersions that asks for the broker's versions: flexible (so the broker
/// learns the client's name) and understood by every broker since Kafka 2.4 and by tansu.
const QUERY_VERSION: i16 = 3;

/// The API versions a broker announced, and the highest common version of each API.
#[derive(Debug, Clone)]
pub struct ApiVersionTable {
    apis: Vec<ApiVersion>,
}

impl ApiVersionTable {
    /// The table of an ApiVersions answer.
    pub fn new(response: &ApiVersionsResponse) -> Self {
        Self { apis: response.api_keys.clone() }
    }

    /// The broker's version range of `key`, if it lists the API.
    pub fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.apis.iter().find(|a| a.api_key == key.0).map(|a| (a.min_version, a.max_version))
    }

    /// The highest version of `M`'s API that both the broker and `klamm-protocol` implement, if
    /// the ranges overlap.
    pub fn highest_common<M: Message>(&self) -> Option<i16> {
        let (min, max) = self.broker_range(M::API_KEY)?;
        let highest = max.min(M::MAX_VERSION);
        (highest >= min.max(M::MIN_VERSION)).then_some(highest)
    }

    /// Like [`highest_common`](Self::highest_common); panics, naming the API and both ranges,
    /// when there is no common version.
    pub fn version<M: Message>(&self) -> i16 {
        self.highest_common::<M>().unwrap_or_else(|| {
            panic!(
                "no common version of {}: broker {:?}, klamm-protocol {}..={}",
                M::API_KEY.name().unwrap_or("?"),
                self.broker_range(M::API_KEY),
                M::MIN_VERSION,
                M::MAX_VERSION
            )
        })
    }

    /// Whether the broker can answer `M`'s API at `version`.
    pub fn broker_supports<M: Message>(&self, version: i16) -> bool {
        self.broker_range(M::API_KEY).is_some_and(|(min, max)| (min..=max).contains(&version))
    }
}

/// A raw connection with the broker's API versions.
#[derive(Debug)]
pub struct NegotiatedConnection {
    conn: RawConnection,
    versions: ApiVersionTable,
}

/// The ApiVersions request the harness sends: a client software name and version, which
/// Kafka requires from v3 on.
pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest {
        client_software_name: "klamm-tests".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

impl NegotiatedConnection {
    /// Connects to `addr` and asks for its API versions; panics if either fails.
    pub fn connect(addr: impl ToSocketAddrs + std::fmt::Debug) -> Self {
        let conn = RawConnection::connect(&addr).unwrap_or_else(|e| panic!("connecting to {addr:?}: {e}"));
        Self::negotiate(conn)
    }

    /// Asks the broker on `conn` for its API versions; panics if it does not answer them.
    pub fn negotiate(mut conn: RawConnection) -> Self {
        let response = conn.send(QUERY_VERSION, &api_versions_request());
        assert_eq!(
            response.error_code,
            0,
            "ApiVersions v{QUERY_VERSION} to {}: error code",
            conn.peer_addr()
        );
        Self { conn, versions: ApiVersionTable::new(&response) }
    }

    /// The broker's versions.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// The highest common version of `R`'s API (panics if there is none).
    pub fn version<R: Message>(&self) -> i16 {
        self.versions.version::<R>()
    }

    /// The underlying connection, to send frames by hand.
    pub fn raw(&mut self) -> &mut RawConnection {
        &mut self.conn
    }

    /// Sends `request` at the highest common version; panics on failure.
    pub fn send<R: Request>(&mut self, request: &R) -> R::Response {
        let version = self.version::<R>();
        self.conn.send(version, request)
    }

    /// Sends `request` at `version`; panics on failure.
    pub fn send_at<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.conn.send(version, request)
    }

    /// Metadata for `topics` (every topic when `None`) at the highest common version, without
    /// creating topics.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> MetadataResponse {
        let version = self.version::<MetadataRequest>();
        self.metadata_at(version, topics)
    }

    /// Metadata for `topics` (every topic when `None`) at `version`. Versions before 4 cannot
    /// turn auto-creation off: there a missing topic may be created.
    pub fn metadata_at(&mut self, version: i16, topics: Option<&[&str]>) -> MetadataResponse {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic { name: Some((*n).to_owned()), ..Default::default() })
                .collect()
        });
        // v0 has no null list: an empty one means every topic there.
        let topics = if version == 0 { Some(topics.unwrap_or_default()) } else { topics };
        let request =
            MetadataRequest { topics, allow_auto_topic_creation: version < 4, ..Default::default() };
        self.send_at(version, &request)
    }

    /// Sends CreateTopics for one topic with `partitions` partitions and replication factor 1,
    /// at the highest common version, and returns the answer as is.
    pub fn create_topic_request(&mut self, name: &str, partitions: i32) -> CreateTopicsResponse {
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.to_owned(),
                num_partitions: partitions,
                replication_factor: 1,
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        self.send(&request)
    }

    /// Creates `name` with `partitions` partitions and waits until Metadata shows a leader for
    /// each; panics if the broker refuses or the leaders do not appear within 30 s.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> MetadataResponse {
        let response = self.create_topic_request(name, partitions);
        let result = response.topics.iter().find(|t| t.name == name);
        let result =
            result.unwrap_or_else(|| panic!("CreateTopics answered no result for {name}: {response:?}"));
        assert_eq!(result.error_code, 0, "creating {name}: {:?}", result.error_message);
        self.wait_for_leaders(name, partitions)
    }

    /// Polls Metadata until `name` has `partitions` partitions, each with a leader, then
    /// ListOffsets until this broker (the leader of a single-node cluster) serves every one of
    /// them: a leader that Metadata lists may still refuse requests for a moment
    /// (NOT_LEADER_OR_FOLLOWER), and a test that writes then may see retries reorder or drop
    /// non-idempotent batches. Returns the Metadata answer.
    pub fn wait_for_leaders(&mut self, name: &str, partitions: i32) -> MetadataResponse {
        let deadline = Instant::now() + Duration::from_secs(30);
        let metadata = loop {
            let metadata = self.metadata(Some(&[name]));
            let ready = metadata.topics.iter().any(|t| {
                t.name.as_deref() == Some(name)
                    && t.error_code == 0
                    && t.partitions.len() == partitions as usize
                    && t.partitions.iter().all(|p| p.error_code == 0 && p.leader_id >= 0)
            });
            if ready {
                break metadata;
            }
            assert!(Instant::now() < deadline, "{name} has no leaders after 30 s: {metadata:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let request = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: name.to_owned(),
                partitions: (0..partitions)
                    .map(|p| ListOffsetsPartition {
                        partition_index: p,
                        current_leader_epoch: -1,
                        timestamp: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        loop {
            let response = self.send(&request);
            let errors: Vec<(i32, i16)> = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code)))
                .filter(|(_, code)| *code != 0)
                .collect();
            if errors.is_empty() {
                return metadata;
            }
            assert!(Instant::now() < deadline, "{name}: partitions not served after 30 s: {errors:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `host:port` of the leader of `topic`'s `partition`, as `metadata` advertises it; panics if
/// the metadata does not name one.
pub fn leader_address(metadata: &MetadataResponse, topic: &str, partition: i32) -> String {
    let t = metadata.topics.iter().find(|t| t.name.as_deref() == Some(topic));
    let t = t.unwrap_or_else(|| panic!("no metadata for {topic}: {metadata:?}"));
    let p = t.partitions.iter().find(|p| p.partition_index == partition);
    let p = p.unwrap_or_else(|| panic!("no metadata for {topic}-{partition}: {t:?}"));
    let b = metadata.brokers.iter().find(|b| b.node_id == p.leader_id);
    let b = b.unwrap_or_else(|| {
        panic!("leader {} of {topic}-{partition} is not among {:?}", p.leader_id, metadata.brokers)
    });
    format!("{}:{}", b.host, b.port)
}
