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
//! With `group.protocol=consumer` a commit carries the member epoch (OffsetCommit v9+), the
//! current one at each attempt, and STALE_MEMBER_EPOCH is retried with the new epoch while
//! the member owns the partitions; FENCED_MEMBER_EPOCH is like UNKNOWN_MEMBER_ID.
//! Not retried: the member is no longer in the generation (ILLEGAL_GENERATION,
//! UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID): the partitions may belong to
//! someone else now, and committing for them would be wrong. The first two also tell the
//! membership, which loses the partitions and rejoins, as the Java client does.
//!
//! A commit is bound to the generation and member id it was made in, and before every attempt
//! the membership checks that the member is still in that generation and owns each partition
//! (a classic group's coordinator checks only the generation, not who owns a partition). And
//! commits are ordered per partition ([`CommitOrder`]): a newer commit supersedes the pending
//! retries of older ones, so an older offset never lands after a newer one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
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
use crate::membership::CommitRefused;

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

/// The order of commits, shared by every commit of a member.
///
/// Each commit takes a number when it is made, and records it as the latest for each of its
/// partitions. Before each attempt (the first one too, since asynchronous commits run in
/// tasks of their own that may start in any order) a commit leaves out the partitions a newer
/// commit has claimed since: an older offset retried after a newer one was stored would
/// otherwise move the partition's committed offset back. And attempts are queued on the
/// coordinator's connection one at a time, under `send`, in the order they pass that check,
/// so that two commits of one partition reach the coordinator (which handles one connection's
/// requests in order) in the order they were made.
#[derive(Default)]
pub(crate) struct CommitOrder {
    next: AtomicU64,
    latest: Mutex<HashMap<TopicPartition, u64>>,
    send: tokio::sync::Mutex<()>,
}

impl CommitOrder {
    fn latest(&self) -> MutexGuard<'_, HashMap<TopicPartition, u64>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a new commit of `offsets`, the latest for each of its partitions.
    fn claim(&self, offsets: &[(TopicPartition, NextOffset)]) -> u64 {
        let seq = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        let mut latest = self.latest();
        for (tp, _) in offsets {
            latest.insert(tp.clone(), seq);
        }
        seq
    }

    /// The offsets of commit `seq` that no newer commit has claimed.
    fn live(&self, seq: u64, offsets: &[(TopicPartition, NextOffset)]) -> Vec<(TopicPartition, NextOffset)> {
        let latest = self.latest();
        offsets.iter().filter(|(tp, _)| latest.get(tp) == Some(&seq)).cloned().collect()
    }

    /// Commit `seq` is over: forgets the partitions it was the latest for.
    fn finish(&self, seq: u64, offsets: &[(TopicPartition, NextOffset)]) {
        let mut latest = self.latest();
        for (tp, _) in offsets {
            if latest.get(tp) == Some(&seq) {
                latest.remove(tp);
            }
        }
    }
}

/// A commit whose place in the order and whose generation are fixed; run it with
/// [`Commit::run`].
pub(crate) struct Commit {
    seq: u64,
    generation: i32,
    member_id: String,
    offsets: Vec<(TopicPartition, NextOffset)>,
}

impl Commit {
    /// Makes a commit of `offsets` in the member's current generation, ordered after every
    /// commit made before. Fails at once when the member is not in a generation. The
    /// generation and member id are fixed here: a commit never lands in a later generation
    /// than the one it was made in, where its partitions may belong to someone else.
    pub(crate) fn new(
        shared: &GroupShared,
        offsets: Vec<(TopicPartition, NextOffset)>,
    ) -> Result<Commit, Error> {
        let (generation, member_id, in_group) = {
            let m = shared.membership();
            (m.generation(), m.member_id().to_string(), m.in_group())
        };
        if offsets.is_empty() {
            return Ok(Commit { seq: 0, generation, member_id, offsets });
        }
        if !in_group {
            return Err(refused(&CommitRefused::NotInGeneration));
        }
        let seq = shared.commit_order.claim(&offsets);
        Ok(Commit { seq, generation, member_id, offsets })
    }

    /// Sends the commit, retrying within `timeout`. Partitions a newer commit claimed before
    /// an attempt are left out of it (that commit carries a later position, and reports its own
    /// outcome); a commit left with none ends with `Ok` without sending anything.
    pub(crate) async fn run(self, shared: &GroupShared, timeout: Duration) -> Result<(), Error> {
        if self.offsets.is_empty() {
            return Ok(());
        }
        let result = self.attempts(shared, timeout).await;
        shared.commit_order.finish(self.seq, &self.offsets);
        result
    }

    async fn attempts(&self, shared: &GroupShared, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        loop {
            let outcome = self.attempt(shared).await;
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

    async fn attempt(&self, shared: &GroupShared) -> Result<(), Error> {
        let order = shared.commit_order.send.lock().await;
        let live = shared.commit_order.live(self.seq, &self.offsets);
        if live.is_empty() {
            tracing::debug!(group = %shared.config.group_id, "commit superseded by a newer one; not sent");
            return Ok(());
        }
        let generation = {
            let m = shared.membership();
            m.check_commit(self.generation, &self.member_id, live.iter().map(|(tp, _)| tp))
                .map_err(|r| refused(&r))?;
            m.commit_generation(self.generation)
        };
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, next) in &live {
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
            member_id: self.member_id.clone(),
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
        let conn = coordinator_connection(shared).await?;
        let version = conn.version_for::<OffsetCommitRequest>()?;
        let pending = conn.submit(version, &request).await?;
        // Queued on the socket: later commits may queue behind it now.
        drop(order);
        let response = pending.response().await?;
        for t in response.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    let code = ErrorCode(p.error_code);
                    if matches!(
                        code,
                        ErrorCode::UNKNOWN_MEMBER_ID
                            | ErrorCode::ILLEGAL_GENERATION
                            | ErrorCode::REBALANCE_IN_PROGRESS
                            | ErrorCode::FENCED_INSTANCE_ID
                            | ErrorCode::FENCED_MEMBER_EPOCH
                    ) {
                        shared.membership().handle_commit_error(
                            Instant::now(),
                            self.generation,
                            &self.member_id,
                            code,
                        );
                        shared.wake.notify_one();
                        shared.events.notify_one();
                    }
                    return Err(Error::with_message(
                        ErrorKind::Broker(code),
                        format!("committing {}-{}", t.name, p.partition_index),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Commits `offsets` in the member's current generation (see [`Commit`]).
pub(crate) async fn commit(
    shared: &GroupShared,
    offsets: &[(TopicPartition, NextOffset)],
    timeout: Duration,
) -> Result<(), Error> {
    Commit::new(shared, offsets.to_vec())?.run(shared, timeout).await
}

/// The error of a commit the membership refuses, with the code the coordinator would answer.
fn refused(reason: &CommitRefused) -> Error {
    Error::with_message(ErrorKind::Broker(reason.code()), format!("commit not sent: {reason}"))
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
        // A `consumer` protocol member's epoch moved on while the commit was on its way (a
        // reconciliation): the next attempt carries the current one, if the member still
        // owns the partitions.
        Some(ErrorCode::STALE_MEMBER_EPOCH) => !reading,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(list: &[(&str, i32, i64)]) -> Vec<(TopicPartition, NextOffset)> {
        list.iter().map(|&(t, p, o)| (TopicPartition::new(t, p), NextOffset::new(o))).collect()
    }

    /// An older commit still retrying keeps only the partitions no newer commit has claimed,
    /// whatever order their tasks run in; once the newer one is over, the older one does not
    /// get its partitions back.
    #[test]
    fn a_newer_commit_supersedes_an_older_ones_retries() {
        let order = CommitOrder::default();
        let old = offsets(&[("t", 0, 10), ("t", 1, 10)]);
        let new = offsets(&[("t", 0, 20)]);
        let a = order.claim(&old);
        assert_eq!(order.live(a, &old), old);
        let b = order.claim(&new);
        assert_eq!(order.live(a, &old), offsets(&[("t", 1, 10)]), "t-0 is the newer commit's");
        assert_eq!(order.live(b, &new), new);
        order.finish(b, &new);
        assert_eq!(order.live(a, &old), offsets(&[("t", 1, 10)]), "still not the older one's");
        order.finish(a, &old);
        assert!(order.latest().is_empty(), "nothing kept once every commit is over");
        // A commit whose every partition was claimed again has nothing left to send.
        let c = order.claim(&new);
        let d = order.claim(&new);
        assert!(order.live(c, &new).is_empty());
        assert_eq!(order.live(d, &new), new);
    }
}
