//! Fetch (key 1): reads record data from partitions, for consumers and follower replicas.
//!
//! Versions:
//! - v0: topics and partitions with a fetch offset and byte limit; the response carries the
//!   high watermark and the record data per partition.
//! - v1: the response adds `throttle_time_ms`.
//! - v2: same layout; message format v1 may be returned.
//! - v3: the request adds `max_bytes`; partitions are served in request order.
//! - v4: the request adds `isolation_level`; the response adds `last_stable_offset` and
//!   `aborted_transactions`; message format v2 may be returned.
//! - v5: the request and response add `log_start_offset`.
//! - v6: same layout; KAFKA_STORAGE_ERROR may be returned.
//! - v7: incremental fetch sessions (KIP-227): the request adds `session_id`, `session_epoch`
//!   and `forgotten_topics_data`, the response adds `error_code` and `session_id`.
//! - v8: same layout; responses are sent before throttling.
//! - v9: the request adds `current_leader_epoch` (KIP-320).
//! - v10: same layout; records may be compressed with zstd (KIP-110).
//! - v11: the request adds `rack_id`, the response adds `preferred_read_replica` (KIP-392).
//! - v12: first flexible version. The request adds `last_fetched_epoch` and the tagged
//!   `cluster_id`; the response adds the tagged `diverging_epoch`, `current_leader` and
//!   `snapshot_id` per partition.
//! - v13: topic ids replace topic names (KIP-516).
//! - v14: same layout; OFFSET_MOVED_TO_TIERED_STORAGE may be returned (KIP-405).
//! - v15: the request moves `replica_id` into the tagged `replica_state` (KIP-903).
//! - v16: the response adds the tagged `node_endpoints` (KIP-951).
//! - v17: the request adds the tagged `replica_directory_id` per partition (KIP-853).
//!
//! Record data is carried as raw bytes, zero-copy slices of the response frame: the record
//! batch module decodes it.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

const FIRST_FLEXIBLE: i16 = 12;

/// Asks for record data from one or more partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchRequest {
    /// The cluster id, if known (v12+, tag 0, ignorable).
    pub cluster_id: Option<String>,
    /// The follower's broker id, or -1 for a consumer (v0-14).
    pub replica_id: i32,
    /// The follower's id and epoch (v15+, tag 1).
    pub replica_state: ReplicaState,
    /// How long to wait for `min_bytes`, in milliseconds.
    pub max_wait_ms: i32,
    /// The minimum number of bytes to accumulate before answering.
    pub min_bytes: i32,
    /// The maximum number of bytes to return (v3+, ignorable).
    pub max_bytes: i32,
    /// 0 for READ_UNCOMMITTED, 1 for READ_COMMITTED (v4+, ignorable).
    pub isolation_level: i8,
    /// The fetch session id (v7+, ignorable).
    pub session_id: i32,
    /// The fetch session epoch (v7+, ignorable).
    pub session_epoch: i32,
    /// The topics to fetch.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<FetchTopic>,
    /// Partitions to remove from an incremental fetch session (v7+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub forgotten_topics_data: Vec<ForgottenTopic>,
    /// The rack of the consumer (v11+, ignorable).
    pub rack_id: String,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for FetchRequest {
    fn default() -> Self {
        Self {
            cluster_id: None,
            replica_id: -1,
            replica_state: ReplicaState::default(),
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: i32::MAX,
            isolation_level: 0,
            session_id: 0,
            session_epoch: -1,
            topics: Vec::new(),
            forgotten_topics_data: Vec::new(),
            rack_id: String::new(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// The identity of a fetching follower (v15+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ReplicaState {
    /// The follower's broker id, or -1 for a consumer.
    pub replica_id: i32,
    /// The follower's broker epoch, or -1.
    pub replica_epoch: i64,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ReplicaState {
    fn default() -> Self {
        Self { replica_id: -1, replica_epoch: -1, unknown_tagged_fields: TaggedFields::default() }
    }
}

/// One topic to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchTopic {
    /// The topic name (v0-12, ignorable).
    pub topic: String,
    /// The topic id (v13+, ignorable).
    pub topic_id: Uuid,
    /// The partitions to fetch.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<FetchPartition>,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchPartition {
    /// The partition index.
    pub partition: i32,
    /// The leader epoch the client knows, for fencing (v9+, ignorable).
    pub current_leader_epoch: i32,
    /// The offset to fetch from.
    pub fetch_offset: i64,
    /// The epoch of the last record fetched, or -1 (v12+).
    pub last_fetched_epoch: i32,
    /// The follower's log start offset, -1 for consumers (v5+, ignorable).
    pub log_start_offset: i64,
    /// The maximum number of bytes to return for this partition.
    pub partition_max_bytes: i32,
    /// The follower's log directory id (v17+, tag 0, ignorable).
    pub replica_directory_id: Uuid,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for FetchPartition {
    fn default() -> Self {
        Self {
            partition: 0,
            current_leader_epoch: -1,
            fetch_offset: 0,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            partition_max_bytes: 0,
            replica_directory_id: Uuid::ZERO,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// Partitions to drop from an incremental fetch session (v7+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ForgottenTopic {
    /// The topic name (v7-12, ignorable).
    pub topic: String,
    /// The topic id (v13+, ignorable).
    pub topic_id: Uuid,
    /// The partition indexes to forget.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for FetchRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        if version <= 14 {
            w.i32(self.replica_id);
        } else if self.replica_id != -1 {
            w.unavailable("replica_id", version)?;
        }
        let replica_state_set = self.replica_state != ReplicaState::default();
        if version < 15 && replica_state_set {
            w.unavailable("replica_state", version)?;
        }
        w.i32(self.max_wait_ms);
        w.i32(self.min_bytes);
        // max_bytes, isolation_level, session_id, session_epoch and rack_id are ignorable.
        if version >= 3 {
            w.i32(self.max_bytes);
        }
        if version >= 4 {
            w.i8(self.isolation_level);
        }
        if version >= 7 {
            w.i32(self.session_id);
            w.i32(self.session_epoch);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if version >= 7 {
            w.array(&self.forgotten_topics_data, flexible, |w, t| t.encode(w, version))?;
        } else if !self.forgotten_topics_data.is_empty() {
            w.unavailable("forgotten_topics_data", version)?;
        }
        if version >= 11 {
            w.string(&self.rack_id, flexible)?;
        }
        if flexible {
            let mut tags = w.tags();
            if let Some(cluster_id) = &self.cluster_id {
                tags.field(0, |w| w.nullable_string(Some(cluster_id), true))?;
            }
            if version >= 15 && replica_state_set {
                tags.field(1, |w| self.replica_state.encode(w, version))?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FetchRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version <= 14 {
            out.replica_id = r.i32()?;
        }
        out.max_wait_ms = r.i32()?;
        out.min_bytes = r.i32()?;
        if version >= 3 {
            out.max_bytes = r.i32()?;
        }
        if version >= 4 {
            out.isolation_level = r.i8()?;
        }
        if version >= 7 {
            out.session_id = r.i32()?;
            out.session_epoch = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| FetchTopic::decode(r, version))?;
        if version >= 7 {
            out.forgotten_topics_data =
                r.array(flexible, "forgotten_topics_data", |r| ForgottenTopic::decode(r, version))?;
        }
        if version >= 11 {
            out.rack_id = r.string(flexible, "rack_id")?;
        }
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 => out.cluster_id = r.nullable_string(true)?,
                    1 if version >= 15 => out.replica_state = ReplicaState::decode(r, version)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

// `ReplicaState` only travels in a tagged field of v15+: always flexible.
impl Encode for ReplicaState {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.replica_id);
        w.i64(self.replica_epoch);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for ReplicaState {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            replica_id: r.i32()?,
            replica_epoch: r.i64()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for FetchTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // The name and the id are both ignorable: each is dropped where the other is used.
        if version <= 12 {
            w.string(&self.topic, flexible)?;
        } else {
            w.uuid(&self.topic_id);
        }
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FetchTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version <= 12 {
            out.topic = r.string(flexible, "topic")?;
        } else {
            out.topic_id = r.uuid()?;
        }
        out.partitions = r.array(flexible, "partitions", |r| FetchPartition::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for FetchPartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition);
        if version >= 9 {
            w.i32(self.current_leader_epoch);
        }
        w.i64(self.fetch_offset);
        if version >= 12 {
            w.i32(self.last_fetched_epoch);
        } else if self.last_fetched_epoch != -1 {
            w.unavailable("last_fetched_epoch", version)?;
        }
        if version >= 5 {
            w.i64(self.log_start_offset);
        }
        w.i32(self.partition_max_bytes);
        if flexible {
            let mut tags = w.tags();
            if version >= 17 && !self.replica_directory_id.is_zero() {
                tags.field(0, |w| {
                    w.uuid(&self.replica_directory_id);
                    Ok(())
                })?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FetchPartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self { partition: r.i32()?, ..Self::default() };
        if version >= 9 {
            out.current_leader_epoch = r.i32()?;
        }
        out.fetch_offset = r.i64()?;
        if version >= 12 {
            out.last_fetched_epoch = r.i32()?;
        }
        if version >= 5 {
            out.log_start_offset = r.i64()?;
        }
        out.partition_max_bytes = r.i32()?;
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 if version >= 17 => out.replica_directory_id = r.uuid()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Encode for ForgottenTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        if version <= 12 {
            w.string(&self.topic, flexible)?;
        } else {
            w.uuid(&self.topic_id);
        }
        w.i32_array(&self.partitions, flexible)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for ForgottenTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version <= 12 {
            out.topic = r.string(flexible, "topic")?;
        } else {
            out.topic_id = r.uuid()?;
        }
        out.partitions = r.array(flexible, "partitions", |r| r.i32())?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for FetchRequest {
    const API_KEY: ApiKey = ApiKey::FETCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 17;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for FetchRequest {
    type Response = FetchResponse;
}

/// The record data and partition state a fetch returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchResponse {
    /// Throttle time in milliseconds (v1+, ignorable).
    pub throttle_time_ms: i32,
    /// The top-level error code (v7+, ignorable).
    pub error_code: i16,
    /// The fetch session id, or 0 outside a session (v7+).
    pub session_id: i32,
    /// The results, per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub responses: Vec<FetchableTopicResponse>,
    /// Endpoints of the current leaders named in NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH
    /// partition errors (v16+, tag 0).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub node_endpoints: Vec<NodeEndpoint>,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchableTopicResponse {
    /// The topic name (v0-12, ignorable).
    pub topic: String,
    /// The topic id (v13+, ignorable).
    pub topic_id: Uuid,
    /// The results, per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<PartitionData>,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartitionData {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, 0 for none.
    pub error_code: i16,
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset (v4+, ignorable).
    pub last_stable_offset: i64,
    /// The log start offset (v5+, ignorable).
    pub log_start_offset: i64,
    /// Where the fetcher's log diverges from the leader's (v12+, tag 0).
    pub diverging_epoch: EpochEndOffset,
    /// The current leader, when this broker is not it (v12+, tag 1).
    pub current_leader: LeaderIdAndEpoch,
    /// The snapshot to fetch when the offset is below the log start (v12+, tag 2).
    pub snapshot_id: SnapshotId,
    /// The aborted transactions in the returned data (v4+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// The replica the consumer should fetch from next, or -1 (v11+).
    pub preferred_read_replica: i32,
    /// The record batches, as raw bytes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_bytes()"))]
    pub records: Option<Bytes>,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for PartitionData {
    fn default() -> Self {
        Self {
            partition_index: 0,
            error_code: 0,
            high_watermark: 0,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: EpochEndOffset::default(),
            current_leader: LeaderIdAndEpoch::default(),
            snapshot_id: SnapshotId::default(),
            aborted_transactions: None,
            preferred_read_replica: -1,
            records: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// The largest epoch and its end offset up to which the logs agree (v12+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EpochEndOffset {
    /// The epoch, or -1.
    pub epoch: i32,
    /// The end offset of that epoch, or -1.
    pub end_offset: i64,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for EpochEndOffset {
    fn default() -> Self {
        Self { epoch: -1, end_offset: -1, unknown_tagged_fields: TaggedFields::default() }
    }
}

/// A partition's leader and its epoch (v12+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct LeaderIdAndEpoch {
    /// The leader's broker id, -1 if unknown.
    pub leader_id: i32,
    /// The leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for LeaderIdAndEpoch {
    fn default() -> Self {
        Self { leader_id: -1, leader_epoch: -1, unknown_tagged_fields: TaggedFields::default() }
    }
}

/// A snapshot's end offset and epoch (v12+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SnapshotId {
    /// The snapshot's end offset, or -1.
    pub end_offset: i64,
    /// The snapshot's epoch, or -1.
    pub epoch: i32,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for SnapshotId {
    fn default() -> Self {
        Self { end_offset: -1, epoch: -1, unknown_tagged_fields: TaggedFields::default() }
    }
}

/// A transaction aborted within the returned data (v4+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AbortedTransaction {
    /// The producer id of the transaction.
    pub producer_id: i64,
    /// The first offset of the transaction.
    pub first_offset: i64,
    /// Tagged fields this crate does not know (v12+).
    pub unknown_tagged_fields: TaggedFields,
}

/// How to reach a broker named as a new leader (v16+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NodeEndpoint {
    /// The broker id.
    pub node_id: i32,
    /// The broker's host name.
    pub host: String,
    /// The broker's port.
    pub port: i32,
    /// The broker's rack, if it has one.
    pub rack: Option<String>,
    /// Tagged fields this crate does not know.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for FetchResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version >= 7 {
            w.i16(self.error_code);
            w.i32(self.session_id);
        } else if self.session_id != 0 {
            w.unavailable("session_id", version)?;
        }
        w.array(&self.responses, flexible, |w, t| t.encode(w, version))?;
        if version < 16 && !self.node_endpoints.is_empty() {
            w.unavailable("node_endpoints", version)?;
        }
        if flexible {
            let mut tags = w.tags();
            if version >= 16 && !self.node_endpoints.is_empty() {
                tags.field(0, |w| w.array(&self.node_endpoints, true, |w, n| n.encode(w, version)))?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FetchResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 1 {
            out.throttle_time_ms = r.i32()?;
        }
        if version >= 7 {
            out.error_code = r.i16()?;
            out.session_id = r.i32()?;
        }
        out.responses = r.array(flexible, "responses", |r| FetchableTopicResponse::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 if version >= 16 => {
                        out.node_endpoints =
                            r.array(true, "node_endpoints", |r| NodeEndpoint::decode(r, version))?
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

impl Encode for FetchableTopicResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // The name and the id are both ignorable: each is dropped where the other is used.
        if version <= 12 {
            w.string(&self.topic, flexible)?;
        } else {
            w.uuid(&self.topic_id);
        }
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for FetchableTopicResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version <= 12 {
            out.topic = r.string(flexible, "topic")?;
        } else {
            out.topic_id = r.uuid()?;
        }
        out.partitions = r.array(flexible, "partitions", |r| PartitionData::decode(r, version))?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for PartitionData {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.partition_index);
        w.i16(self.error_code);
        w.i64(self.high_watermark);
        // last_stable_offset, log_start_offset and aborted_transactions are ignorable.
        if version >= 4 {
            w.i64(self.last_stable_offset);
        }
        if version >= 5 {
            w.i64(self.log_start_offset);
        }
        if version >= 4 {
            w.nullable_array(self.aborted_transactions.as_deref(), flexible, |w, a| a.encode(w, version))?;
        }
        if version >= 11 {
            w.i32(self.preferred_read_replica);
        } else if self.preferred_read_replica != -1 {
            w.unavailable("preferred_read_replica", version)?;
        }
        w.nullable_bytes(self.records.as_deref(), flexible)?;
        let diverging_set = self.diverging_epoch != EpochEndOffset::default();
        let leader_set = self.current_leader != LeaderIdAndEpoch::default();
        let snapshot_set = self.snapshot_id != SnapshotId::default();
        if flexible {
            let mut tags = w.tags();
            if diverging_set {
                tags.field(0, |w| self.diverging_epoch.encode(w, version))?;
            }
            if leader_set {
                tags.field(1, |w| self.current_leader.encode(w, version))?;
            }
            if snapshot_set {
                tags.field(2, |w| self.snapshot_id.encode(w, version))?;
            }
            tags.finish(w, &self.unknown_tagged_fields)?;
        } else {
            if diverging_set {
                w.unavailable("diverging_epoch", version)?;
            }
            if leader_set {
                w.unavailable("current_leader", version)?;
            }
            if snapshot_set {
                w.unavailable("snapshot_id", version)?;
            }
        }
        Ok(())
    }
}

impl Decode for PartitionData {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            high_watermark: r.i64()?,
            ..Self::default()
        };
        if version >= 4 {
            out.last_stable_offset = r.i64()?;
        }
        if version >= 5 {
            out.log_start_offset = r.i64()?;
        }
        if version >= 4 {
            out.aborted_transactions =
                r.nullable_array(flexible, |r| AbortedTransaction::decode(r, version))?;
        }
        if version >= 11 {
            out.preferred_read_replica = r.i32()?;
        }
        // A zero-copy slice of the frame.
        out.records = r.nullable_bytes(flexible)?;
        if flexible {
            out.unknown_tagged_fields = r.tagged_fields(|tag, r| {
                match tag {
                    0 => out.diverging_epoch = EpochEndOffset::decode(r, version)?,
                    1 => out.current_leader = LeaderIdAndEpoch::decode(r, version)?,
                    2 => out.snapshot_id = SnapshotId::decode(r, version)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

// `EpochEndOffset`, `LeaderIdAndEpoch`, `SnapshotId` and `NodeEndpoint` only travel in tagged
// fields of v12+: always flexible.
impl Encode for EpochEndOffset {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.epoch);
        w.i64(self.end_offset);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for EpochEndOffset {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self { epoch: r.i32()?, end_offset: r.i64()?, unknown_tagged_fields: r.unknown_tagged_fields()? })
    }
}

impl Encode for LeaderIdAndEpoch {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.leader_id);
        w.i32(self.leader_epoch);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for LeaderIdAndEpoch {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            leader_id: r.i32()?,
            leader_epoch: r.i32()?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Encode for SnapshotId {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i64(self.end_offset);
        w.i32(self.epoch);
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for SnapshotId {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self { end_offset: r.i64()?, epoch: r.i32()?, unknown_tagged_fields: r.unknown_tagged_fields()? })
    }
}

impl Encode for AbortedTransaction {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i64(self.producer_id);
        w.i64(self.first_offset);
        if version >= FIRST_FLEXIBLE {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for AbortedTransaction {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            unknown_tagged_fields: if version >= FIRST_FLEXIBLE {
                r.unknown_tagged_fields()?
            } else {
                TaggedFields::default()
            },
        })
    }
}

impl Encode for NodeEndpoint {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.node_id);
        w.string(&self.host, true)?;
        w.i32(self.port);
        w.nullable_string(self.rack.as_deref(), true)?;
        w.unknown_tagged_fields(&self.unknown_tagged_fields)
    }
}

impl Decode for NodeEndpoint {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            node_id: r.i32()?,
            host: r.string(true, "host")?,
            port: r.i32()?,
            rack: r.nullable_string(true)?,
            unknown_tagged_fields: r.unknown_tagged_fields()?,
        })
    }
}

impl Message for FetchResponse {
    const API_KEY: ApiKey = ApiKey::FETCH;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 17;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for FetchResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode, round_trip_all_versions};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<FetchRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<FetchResponse>();
    }

    #[test]
    fn v4_request_by_hand() {
        let req = FetchRequest {
            replica_id: -1,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 0x0100_0000,
            isolation_level: 1,
            topics: vec![FetchTopic {
                topic: "t".into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: 42,
                    partition_max_bytes: 0x0010_0000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xff, 0xff, 0xff, 0xff, // replica_id -1
            0, 0, 0x01, 0xf4,       // max_wait_ms 500
            0, 0, 0, 1,             // min_bytes 1
            1, 0, 0, 0,             // max_bytes 16 MiB
            1,                      // isolation_level READ_COMMITTED
            0, 0, 0, 1,             // one topic
            0, 1, b't',             // topic "t"
            0, 0, 0, 1,             // one partition
            0, 0, 0, 0,             // partition 0
            0, 0, 0, 0, 0, 0, 0, 42, // fetch_offset 42
            0, 0x10, 0, 0,          // partition_max_bytes 1 MiB
        ];
        assert_eq!(&encode(&req, 4).unwrap()[..], expected);
        assert_eq!(FetchRequest::decode_body(Bytes::copy_from_slice(expected), 4).unwrap(), req);
    }

    #[test]
    fn v15_request_with_tags_by_hand() {
        let id = Uuid::from_bytes([7; 16]);
        let req = FetchRequest {
            cluster_id: Some("c".into()),
            replica_id: -1,
            replica_state: ReplicaState { replica_id: 2, replica_epoch: 9, ..Default::default() },
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 0,
            session_id: 0,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic_id: id,
                partitions: vec![FetchPartition { partition: 3, ..Default::default() }],
                ..Default::default()
            }],
            forgotten_topics_data: vec![ForgottenTopic {
                topic_id: id,
                partitions: vec![5],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut expected = vec![
            0, 0, 0, 0, // max_wait_ms
            0, 0, 0, 0, // min_bytes
            0, 0, 0, 0, // max_bytes
            0, // isolation_level
            0, 0, 0, 0, // session_id
            0xff, 0xff, 0xff, 0xff, // session_epoch -1
            2,    // one topic
        ];
        expected.extend_from_slice(&[7; 16]); // topic_id
        expected.extend_from_slice(&[
            2, // one partition
            0, 0, 0, 3, // partition
            0xff, 0xff, 0xff, 0xff, // current_leader_epoch -1
            0, 0, 0, 0, 0, 0, 0, 0, // fetch_offset
            0xff, 0xff, 0xff, 0xff, // last_fetched_epoch -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_start_offset -1
            0, 0, 0, 0, // partition_max_bytes
            0, // partition tags
            0, // topic tags
            2, // one forgotten topic
        ]);
        expected.extend_from_slice(&[7; 16]);
        expected.extend_from_slice(&[
            2, 0, 0, 0, 5, // partitions [5]
            0, // forgotten topic tags
            1, // rack_id ""
            2, // two tags
            0, 2, 2, b'c', // tag 0: cluster_id "c"
            1, 13, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, // tag 1: replica_state 2 / 9
        ]);
        assert_eq!(&encode(&req, 15).unwrap()[..], &expected[..]);
        assert_eq!(FetchRequest::decode_body(Bytes::from(expected), 15).unwrap(), req);
    }

    #[test]
    fn v12_response_by_hand() {
        let resp = FetchResponse {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 1,
            responses: vec![FetchableTopicResponse {
                topic: "t".into(),
                partitions: vec![PartitionData {
                    partition_index: 0,
                    error_code: 0,
                    high_watermark: 10,
                    last_stable_offset: 10,
                    log_start_offset: 0,
                    diverging_epoch: EpochEndOffset { epoch: 4, end_offset: 8, ..Default::default() },
                    aborted_transactions: Some(vec![AbortedTransaction {
                        producer_id: 1,
                        first_offset: 2,
                        ..Default::default()
                    }]),
                    preferred_read_replica: -1,
                    records: Some(Bytes::from_static(b"rec")),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,                 // throttle_time_ms
            0, 0,                       // error_code
            0, 0, 0, 1,                 // session_id
            2,                          // one topic
            2, b't',                    // topic "t"
            2,                          // one partition
            0, 0, 0, 0,                 // partition_index
            0, 0,                       // error_code
            0, 0, 0, 0, 0, 0, 0, 10,    // high_watermark
            0, 0, 0, 0, 0, 0, 0, 10,    // last_stable_offset
            0, 0, 0, 0, 0, 0, 0, 0,     // log_start_offset
            2,                          // one aborted transaction
            0, 0, 0, 0, 0, 0, 0, 1,     //   producer_id
            0, 0, 0, 0, 0, 0, 0, 2,     //   first_offset
            0,                          //   its tags
            0xff, 0xff, 0xff, 0xff,     // preferred_read_replica -1
            4, b'r', b'e', b'c',        // records
            1,                          // one tag
            0, 13,                      // tag 0, 13 bytes: diverging_epoch
            0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 0,
            0,                          // topic tags
            0,                          // response tags
        ];
        assert_eq!(&encode(&resp, 12).unwrap()[..], expected);
        let body = Bytes::copy_from_slice(expected);
        let decoded = FetchResponse::decode_body(body.clone(), 12).unwrap();
        assert_eq!(decoded, resp);
        // The records are a slice of the input, not a copy.
        let records = decoded.responses[0].partitions[0].records.as_ref().unwrap();
        assert!(body.as_ptr_range().contains(&records.as_ptr()));
        // Every truncation of the body is an error, not a panic.
        for len in 0..expected.len() {
            assert!(FetchResponse::decode_body(body.slice(..len), 12).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req = FetchRequest { replica_id: 1, ..Default::default() };
        assert_eq!(
            encode(&req, 15),
            Err(EncodeError::FieldNotAvailable { field: "replica_id", version: 15 })
        );
        let req = FetchRequest {
            replica_state: ReplicaState { replica_id: 1, ..Default::default() },
            ..Default::default()
        };
        assert_eq!(
            encode(&req, 14),
            Err(EncodeError::FieldNotAvailable { field: "replica_state", version: 14 })
        );
        let req =
            FetchRequest { forgotten_topics_data: vec![ForgottenTopic::default()], ..Default::default() };
        assert_eq!(
            encode(&req, 6),
            Err(EncodeError::FieldNotAvailable { field: "forgotten_topics_data", version: 6 })
        );
        let resp = FetchResponse {
            responses: vec![FetchableTopicResponse {
                partitions: vec![PartitionData {
                    current_leader: LeaderIdAndEpoch { leader_id: 1, ..Default::default() },
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            encode(&resp, 11),
            Err(EncodeError::FieldNotAvailable { field: "current_leader", version: 11 })
        );
        assert!(encode(&resp, 12).is_ok());
        // Ignorable fields are dropped silently: the topic name at v13, the cluster id at v11.
        let req = FetchRequest {
            cluster_id: Some("c".into()),
            topics: vec![FetchTopic { topic: "t".into(), ..Default::default() }],
            ..Default::default()
        };
        assert!(encode(&req, 11).is_ok());
        assert!(encode(&req, 13).is_ok());
    }
}
