//! The client's view of the cluster: brokers, topics, partition leaders.
//!
//! A [`ClusterMetadata`] is an immutable snapshot. A refresh builds a new snapshot from the old
//! one and a Metadata response ([`ClusterMetadata::merge`]) and swaps it in whole, so readers
//! never see half an update and never hold a lock while they use it.
//!
//! Merge rules (the Java client's, KIP-320):
//! - the broker list is replaced by the response's;
//! - a topic in the response replaces the cached one, except that a partition whose leader
//!   epoch went *down* keeps its cached entry: that answer came from a broker with older
//!   metadata than we already had, and believing it would send requests to a former leader;
//! - a topic the broker reports as UNKNOWN_TOPIC_OR_PARTITION is dropped from the cache;
//! - topics not in the response stay as they were.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Instant;

use klamm_protocol::api::metadata::{MetadataResponse, MetadataResponseTopic};
use klamm_protocol::{ErrorCode, Uuid};

/// One broker as metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// The broker's node id.
    pub node_id: i32,
    /// The host it advertises.
    pub host: String,
    /// The port it advertises.
    pub port: u16,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, or -1 when there is none right now.
    pub leader: i32,
    /// The leader epoch (-1 when the broker does not report one).
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline_replicas: Vec<i32>,
    /// The partition's error, e.g. LEADER_NOT_AVAILABLE during an election.
    pub error: ErrorCode,
}

impl PartitionMetadata {
    /// Whether the partition has a leader that requests can go to.
    pub fn has_leader(&self) -> bool {
        self.leader >= 0
    }
}

/// One topic, its partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic name.
    pub name: String,
    /// The topic id (zero before Metadata v10).
    pub id: Uuid,
    /// Whether the topic is internal (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// Partitions, index `i` at position `i`.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// The partition with this index.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        usize::try_from(partition).ok().and_then(|i| self.partitions.get(i))
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }
}

/// A snapshot of what the client knows about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    /// The cluster id (Metadata v2+).
    pub cluster_id: Option<String>,
    /// The node id the broker names as controller (-1 if unknown).
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerMetadata>,
    /// By name; FxHash since the producer looks a topic up for every record.
    topics: FxHashMap<String, Arc<TopicMetadata>>,
    /// When a broker last answered a Metadata request (`None` before the first answer).
    pub(crate) updated: Option<Instant>,
    /// Bumped by every merge, so a caller can tell whether a refresh happened while it waited.
    pub(crate) generation: u64,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        Self {
            cluster_id: None,
            controller_id: -1,
            brokers: BTreeMap::new(),
            topics: FxHashMap::default(),
            updated: None,
            generation: 0,
        }
    }
}

/// What a Metadata response said about one requested topic.
pub(crate) type TopicOutcome = Result<Arc<TopicMetadata>, ErrorCode>;

impl ClusterMetadata {
    /// The cached topic, if any.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMetadata>> {
        self.topics.get(name)
    }

    /// Every cached topic.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicMetadata>> {
        self.topics.values()
    }

    /// A broker by node id.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerMetadata> {
        self.brokers.get(&node_id)
    }

    /// A new snapshot: this one updated by `response` (see the module doc for the rules), and
    /// the outcome for each topic in the response.
    pub(crate) fn merge(
        &self,
        response: &MetadataResponse,
    ) -> (ClusterMetadata, HashMap<String, TopicOutcome>) {
        let mut next = self.clone();
        next.generation += 1;
        next.updated = Some(Instant::now());
        next.cluster_id = response.cluster_id.clone().or(next.cluster_id);
        next.controller_id = response.controller_id;
        let brokers = response.brokers.iter().filter_map(|b| {
            let port = u16::try_from(b.port).ok()?;
            let broker =
                BrokerMetadata { node_id: b.node_id, host: b.host.clone(), port, rack: b.rack.clone() };
            Some((b.node_id, broker))
        });
        next.brokers = brokers.collect();
        let mut outcomes = HashMap::new();
        for topic in &response.topics {
            let Some(name) = topic.name.clone() else { continue };
            let code = ErrorCode(topic.error_code);
            if code.is_err() {
                if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                    next.topics.remove(&name);
                }
                outcomes.insert(name, Err(code));
                continue;
            }
            let merged = Arc::new(merge_topic(self.topics.get(&name).map(|t| &**t), &name, topic));
            next.topics.insert(name.clone(), Arc::clone(&merged));
            outcomes.insert(name, Ok(merged));
        }
        (next, outcomes)
    }

    /// The snapshot without `topic`, so the next lookup asks a broker.
    pub(crate) fn without_topic(&self, topic: &str) -> ClusterMetadata {
        let mut next = self.clone();
        next.topics.remove(topic);
        next
    }
}

fn merge_topic(old: Option<&TopicMetadata>, name: &str, topic: &MetadataResponseTopic) -> TopicMetadata {
    let mut partitions: Vec<PartitionMetadata> = topic
        .partitions
        .iter()
        .map(|p| PartitionMetadata {
            partition: p.partition_index,
            leader: p.leader_id,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.clone(),
            isr: p.isr_nodes.clone(),
            offline_replicas: p.offline_replicas.clone(),
            error: ErrorCode(p.error_code),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    // A partition list with gaps cannot be indexed by partition number; keep the prefix that
    // is complete (a broker never sends gaps, this guards against a broken one).
    let complete = partitions.iter().enumerate().take_while(|(i, p)| p.partition == *i as i32).count();
    partitions.truncate(complete);
    if let Some(old) = old.filter(|old| old.id == topic.topic_id || topic.topic_id.is_zero()) {
        for p in &mut partitions {
            if let Some(cached) = old.partition(p.partition) {
                if p.leader_epoch >= 0 && cached.leader_epoch > p.leader_epoch {
                    *p = cached.clone();
                }
            }
        }
    }
    TopicMetadata { name: name.to_owned(), id: topic.topic_id, is_internal: topic.is_internal, partitions }
}

#[cfg(test)]
mod tests {
    use klamm_protocol::api::metadata::{MetadataResponseBroker, MetadataResponsePartition};

    use super::*;

    fn response(leader: i32, epoch: i32, code: ErrorCode) -> MetadataResponse {
        MetadataResponse {
            brokers: vec![MetadataResponseBroker {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                ..Default::default()
            }],
            controller_id: 1,
            topics: vec![MetadataResponseTopic {
                error_code: code.0,
                name: Some("t".into()),
                partitions: (0..2)
                    .rev()
                    .map(|i| MetadataResponsePartition {
                        partition_index: i,
                        leader_id: leader,
                        leader_epoch: epoch,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn merge_sorts_partitions_and_keeps_newer_epochs() {
        let empty = ClusterMetadata::default();
        let (first, outcomes) = empty.merge(&response(1, 5, ErrorCode::NONE));
        let topic = outcomes["t"].as_ref().unwrap();
        assert_eq!(topic.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(first.broker(1).unwrap().address(), "127.0.0.1:9092");
        assert_eq!(first.generation, 1);

        // A stale answer (older epoch) does not move the leader back.
        let (second, _) = first.merge(&response(2, 4, ErrorCode::NONE));
        assert_eq!(second.topic("t").unwrap().partition(0).unwrap().leader, 1);
        // A newer one does.
        let (third, _) = second.merge(&response(2, 6, ErrorCode::NONE));
        assert_eq!(third.topic("t").unwrap().partition(1).unwrap().leader, 2);

        // An unknown topic leaves the cache.
        let (fourth, outcomes) = third.merge(&response(2, 6, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
        assert_eq!(outcomes["t"], Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
        assert!(fourth.topic("t").is_none());
    }

    #[test]
    fn gaps_and_bad_ports_are_dropped() {
        let mut r = response(1, 0, ErrorCode::NONE);
        r.topics[0].partitions.retain(|p| p.partition_index == 1);
        r.brokers[0].port = -1;
        let (snapshot, _) = ClusterMetadata::default().merge(&r);
        assert!(snapshot.topic("t").unwrap().partitions.is_empty());
        assert!(snapshot.brokers.is_empty());
        let ipv6 = BrokerMetadata { node_id: 0, host: "::1".into(), port: 1, rack: None };
        assert_eq!(ipv6.address(), "[::1]:1");
    }
}
