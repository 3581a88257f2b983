//! Committed offsets: reading them (OffsetFetch) and writing them (OffsetCommit) at the group
//! coordinator, with the retries the Java client makes.
//!
//! What is committed is always the **next offset to consume** ([`NextOffset`]): after
//! processing the record at offset 41, commit 42. The type makes that the only thing one can
//! write, so the classic off-by-one (committing 41 and reading record 41 again after a
//! restart) cannot happen by accident.
//!
//! Retried until the timeout: a lost connection, a coordinator that moved or is loading
//! (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), a request
//! timeout, and, when reading, UNSTABLE_OFFSET_COMMIT (a transaction's commit is pending).
//! Not retried: the member is no longer in the generation (ILLEGAL_GENERATION,
//! UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID): the partitions may belong to
//! someone else now, and committing for them would be wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::protocol::api::offset_commit::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use klamm::protocol::api::offset_fetch::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use klamm::protocol::ErrorCode;
use klamm::{ConsumerRecord, Error, ErrorKind, TopicPartition};

use crate::coordinator::{coordinator_connection, GroupShared};

/// The offset of the next record to consume in a partition: what a commit stores.
///
/// ```
/// use klamm_group::NextOffset;
///
/// // Processed everything up to and including offset 41: the next one to read is 42.
/// let next = NextOffset::new(42);
/// assert_eq!(next.offset(), 42);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextOffset {
    offset: i64,
    leader_epoch: Option<i32>,
    metadata: Option<String>,
}

impl NextOffset {
    /// The next record to consume is at `offset`.
    pub fn new(offset: i64) -> Self {
        Self { offset, leader_epoch: None, metadata: None }
    }

    /// The record after `record`: commit this once `record` is processed. Keeps the
    /// record's leader epoch, so a consumer that resumes from it can detect log truncation.
    pub fn after(record: &ConsumerRecord) -> Self {
        Self { offset: record.offset + 1, leader_epoch: record.leader_epoch, metadata: None }
    }

    /// Attaches a metadata string, stored with the offset.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }

    /// The offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The leader epoch of the record before it, when known.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.leader_epoch
    }

    /// The metadata string stored with it.
    pub fn metadata(&self) -> Option<&str> {
        self.metadata.as_deref()
    }
}

/// Reads the group's committed offsets of `partitions`; `None` where nothing is committed.
pub(crate) async fn committed(
    shared: &GroupShared,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, Option<NextOffset>>, Error> {
    let deadline = Instant::now() + timeout;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let mut attempt = 0u32;
    loop {
        let outcome = async {
            let conn = coordinator_connection(shared).await?;
            let version = conn.version_for::<OffsetFetchRequest>()?;
            let group = shared.config.group_id.clone();
            let request = if version >= 8 {
                let topics = by_topic
                    .iter()
                    .map(|(name, ps)| OffsetFetchRequestTopics {
                        name: name.to_string(),
                        partition_indexes: ps.clone(),
                        ..Default::default()
                    })
                    .collect();
                OffsetFetchRequest {
                    groups: vec![OffsetFetchRequestGroup {
                        group_id: group,
                        topics: Some(topics),
                        ..Default::default()
                    }],
                    require_stable: true,
                    ..Default::default()
                }
            } else {
                let topics = by_topic
                    .iter()
                    .map(|(name, ps)| OffsetFetchRequestTopic {
                        name: name.to_string(),
                        partition_indexes: ps.clone(),
                        ..Default::default()
                    })
                    .collect();
                OffsetFetchRequest {
                    group_id: group,
                    topics: Some(topics),
                    require_stable: version >= 7,
                    ..Default::default()
                }
            };
            let response = conn.send_at(version, &request).await?;
            // Flatten the two layouts into (topic, partition, offset, epoch, metadata, error).
            let mut rows = Vec::new();
            let mut top_error = ErrorCode(response.error_code);
            for t in response.topics {
                for p in t.partitions {
                    rows.push((
                        t.name.clone(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata,
                        p.error_code,
                    ));
                }
            }
            for g in response.groups {
                if g.error_code != 0 {
                    top_error = ErrorCode(g.error_code);
                }
                for t in g.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.clone(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            }
            if top_error.is_err() {
                return Err(Error::from(ErrorKind::Broker(top_error)));
            }
            let mut out = HashMap::new();
            for (topic, partition, offset, epoch, metadata, code) in rows {
                if code != 0 {
                    return Err(Error::with_message(
                        ErrorKind::Broker(ErrorCode(code)),
                        format!("committed offset of {topic}-{partition}"),
                    ));
                }
                let tp = TopicPartition::new(Arc::<str>::from(topic.as_str()), partition);
                let next = (offset >= 0).then(|| NextOffset {
                    offset,
                    leader_epoch: (epoch >= 0).then_some(epoch),
                    metadata: metadata.filter(|m| !m.is_empty()),
                });
                out.insert(tp, next);
            }
            for tp in partitions {
                out.entry(tp.clone()).or_insert(None);
            }
            Ok(out)
        }
        .await;
        match outcome {
            Ok(out) => return Ok(out),
            Err(e) if retriable(&e, true) && Instant::now() < deadline => {
                forget_coordinator(shared, &e);
                sleep_backoff(shared, attempt, deadline).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Commits `offsets` in the member's current generation.
pub(crate) async fn commit(
    shared: &GroupShared,
    offsets: &[(TopicPartition, NextOffset)],
    timeout: Duration,
) -> Result<(), Error> {
    if offsets.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let mut attempt = 0u32;
    loop {
        let (generation, member_id) = {
            let m = shared.membership();
            (m.generation(), m.member_id().to_string())
        };
        if generation < 0 {
            return Err(Error::with_message(
                ErrorKind::Broker(ErrorCode::REBALANCE_IN_PROGRESS),
                "the member is not in a generation of the group (joining or rebalancing): nothing was committed",
            ));
        }
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, next) in offsets {
            by_topic.entry(&tp.topic).or_default().push(OffsetCommitRequestPartition {
                partition_index: tp.partition,
                committed_offset: next.offset,
                committed_leader_epoch: next.leader_epoch.unwrap_or(-1),
                committed_metadata: next.metadata.clone(),
                ..Default::default()
            });
        }
        let request = OffsetCommitRequest {
            group_id: shared.config.group_id.clone(),
            generation_id_or_member_epoch: generation,
            member_id,
            group_instance_id: shared.config.group_instance_id.clone(),
            topics: by_topic
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let outcome = async {
            let response = coordinator_connection(shared).await?.send(&request).await?;
            for t in response.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(Error::with_message(
                            ErrorKind::Broker(ErrorCode(p.error_code)),
                            format!("committing {}-{}", t.name, p.partition_index),
                        ));
                    }
                }
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if retriable(&e, false) && Instant::now() < deadline => {
                forget_coordinator(shared, &e);
                sleep_backoff(shared, attempt, deadline).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a commit or lookup error is worth retrying.
fn retriable(e: &Error, reading: bool) -> bool {
    match e.code() {
        Some(
            ErrorCode::NOT_COORDINATOR
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::REQUEST_TIMED_OUT,
        ) => true,
        Some(ErrorCode::UNSTABLE_OFFSET_COMMIT) => reading,
        Some(_) => false,
        None => e.is_retriable(),
    }
}

/// After a coordinator error or a lost connection, look the coordinator up again.
fn forget_coordinator(shared: &GroupShared, e: &Error) {
    let moved = matches!(e.code(), Some(ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE))
        || e.code().is_none();
    if moved {
        shared.membership().coordinator_unknown(Instant::now());
        shared.wake.notify_one();
    }
}

async fn sleep_backoff(shared: &GroupShared, attempt: u32, deadline: Instant) {
    let first = shared.config.consumer.client.retry_backoff;
    let max = shared.config.consumer.client.retry_backoff_max;
    let wait = first.saturating_mul(1u32 << attempt.min(10)).min(max);
    let until = (Instant::now() + wait).min(deadline);
    tokio::time::sleep_until(until.into()).await;
}
