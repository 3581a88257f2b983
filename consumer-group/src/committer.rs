//! [`Committer`]: commits of a [`GroupConsumer`](crate::GroupConsumer)'s offsets from
//! anywhere, while its record stream (or another task) holds the consumer; and
//! [`ConsumedOffsets`], what the consumer handed out per partition, which both share.
//!
//! The consumer's `poll` and `stream` take `&mut self`, as the Java consumer is used from one
//! thread; a commit needs none of the consumer's mutable parts (it goes through the group
//! coordinator, checked against the membership), so a handle with shared ownership of those
//! parts is enough, and the borrow checker has nothing to object to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use klamm::{ConsumerRecord, Error, TopicPartition};

use crate::consumer::CommitFuture;
use crate::coordinator::GroupShared;
use crate::offsets::{self, NextOffset};

/// Per partition, the offset after the last record handed out to the application.
#[derive(Clone, Default)]
pub(crate) struct ConsumedOffsets(Arc<Mutex<HashMap<TopicPartition, NextOffset>>>);

impl ConsumedOffsets {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, NextOffset>> {
        // Every critical section is one map operation.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record was handed out.
    pub(crate) fn handed_out(&self, record: &ConsumerRecord) {
        self.lock().insert(record.topic_partition(), NextOffset::after(record));
    }

    /// The entries of `partitions` (those with one).
    pub(crate) fn of(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, NextOffset)> {
        let map = self.lock();
        partitions.iter().filter_map(|tp| map.get(tp).map(|n| (tp.clone(), n.clone()))).collect()
    }

    /// Every entry, sorted by partition.
    pub(crate) fn all(&self) -> Vec<(TopicPartition, NextOffset)> {
        let mut out: Vec<_> = self.lock().iter().map(|(tp, n)| (tp.clone(), n.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Commits a [`GroupConsumer`](crate::GroupConsumer)'s offsets while something else holds the
/// consumer: its [`stream`](crate::GroupConsumer::stream), another task. Cheap to clone; get
/// one with [`GroupConsumer::committer`](crate::GroupConsumer::committer).
///
/// Commits through a `Committer` are the consumer's own commits: bound to the member's
/// generation, refused for partitions it no longer owns, and ordered per partition with the
/// consumer's other commits. A commit after the consumer was closed fails.
///
/// ```no_run
/// use futures::StreamExt;
/// use klamm_group::{GroupConfig, GroupConsumer};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let mut consumer = GroupConsumer::new(GroupConfig::new("127.0.0.1:9092", "billing"))?;
/// consumer.subscribe(["invoices"]);
/// let committer = consumer.committer();
/// let mut batches = consumer.stream().ready_chunks(500);
/// while let Some(batch) = batches.next().await {
///     let records: Vec<_> = batch.into_iter().collect::<Result<_, _>>()?;
///     for record in &records {
///         println!("{} {:?}", record.offset, record.value);
///     }
///     // Every partition of the batch, each up to its last record.
///     committer.commit_records(&records).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Committer {
    shared: Arc<GroupShared>,
    consumed: ConsumedOffsets,
}

impl Committer {
    pub(crate) fn new(shared: Arc<GroupShared>, consumed: ConsumedOffsets) -> Self {
        Self { shared, consumed }
    }

    /// Commits `offsets`, as [`GroupConsumer::commit`](crate::GroupConsumer::commit).
    ///
    /// Cancel safety: dropping the future may leave the commit sent or not; nothing else is
    /// lost, and a later commit of the same partitions supersedes it.
    pub async fn commit(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, NextOffset)>,
    ) -> Result<(), Error> {
        let offsets: Vec<_> = offsets.into_iter().collect();
        offsets::commit(&self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// Commits, for every partition among `records`, the offset after its last record there
    /// (by offset, whatever their order): what to commit once a batch is processed.
    pub async fn commit_records(&self, records: &[ConsumerRecord]) -> Result<(), Error> {
        self.commit(after_each_partition(records)).await
    }

    /// Commits, for every partition, the offset after the last record handed out (by `poll`,
    /// `poll_batch` or the stream: a stream hands a record out when it yields it), as
    /// [`GroupConsumer::commit_consumed`](crate::GroupConsumer::commit_consumed).
    pub async fn commit_consumed(&self) -> Result<(), Error> {
        self.commit(self.consumed.all()).await
    }

    /// Starts a commit and returns at once, as
    /// [`GroupConsumer::commit_async`](crate::GroupConsumer::commit_async).
    pub fn commit_async(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, NextOffset)>,
    ) -> CommitFuture {
        crate::consumer::commit_async(&self.shared, offsets.into_iter().collect())
    }
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").field("group", &self.shared.config.group_id).finish()
    }
}

/// For each partition among `records`, the offset after its highest record.
pub(crate) fn after_each_partition(records: &[ConsumerRecord]) -> Vec<(TopicPartition, NextOffset)> {
    let mut last: HashMap<TopicPartition, &ConsumerRecord> = HashMap::new();
    for r in records {
        let entry = last.entry(r.topic_partition()).or_insert(r);
        if r.offset > entry.offset {
            *entry = r;
        }
    }
    let mut out: Vec<_> = last.into_iter().map(|(tp, r)| (tp, NextOffset::after(r))).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from(topic),
            partition,
            offset,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            timestamp_type: klamm::TimestampType::CreateTime,
            high_watermark: 100,
            leader_epoch: Some(1),
        }
    }

    #[test]
    fn a_batch_commits_each_partition_after_its_last_record() {
        let batch =
            [record("a", 0, 5), record("b", 1, 9), record("a", 0, 7), record("a", 1, 2), record("a", 0, 6)];
        let offsets: Vec<(String, i64)> =
            after_each_partition(&batch).into_iter().map(|(tp, n)| (tp.to_string(), n.offset())).collect();
        assert_eq!(offsets, [("a-0".to_owned(), 8), ("a-1".to_owned(), 3), ("b-1".to_owned(), 10)]);
        assert!(after_each_partition(&[]).is_empty());
    }
}
