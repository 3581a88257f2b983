//! The admin operations that must reach each partition's leader: ListOffsets
//! ([`Admin::list_offsets`]) and DeleteRecords ([`Admin::delete_records`]).
//!
//! Both go through one routine: look up each partition's leader in the client's metadata
//! cache, group the partitions by leader, send one request per leader (all leaders at once),
//! and retry the partitions that failed with a retriable error (NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH, a lost connection, ...) after dropping their
//! topic from the cache, so the next round asks a broker where the leader is now. A partition
//! is tried at most [`LEADER_ATTEMPTS`] times and never past the operation timeout; after
//! that its last error is its result. A partition named twice in one call goes out in separate
//! requests, since brokers refuse a request that names a partition twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Instant;

use klamm_protocol::api::delete_records::{DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic};
use klamm_protocol::api::list_offsets::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::admin::{broker_error, missing, timed_out, user_error, Admin};
use crate::client::ConnectionKind;
use crate::connection::Connection;
use crate::consumer::IsolationLevel;
use crate::error::Error;

/// How many times a partition of a leader-routed operation is tried.
pub const LEADER_ATTEMPTS: u32 = 5;

/// Results of an operation on several partitions: one entry per `(topic, partition)` asked
/// about, in the order asked.
pub type PartitionResults<T> = Vec<((String, i32), Result<T, Error>)>;

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The first offset still in the log (the log start offset).
    Earliest,
    /// The offset the next record will get (the high watermark).
    Latest,
    /// The offset of the record with the largest timestamp (ListOffsets v7+, Kafka 3.0+).
    MaxTimestamp,
    /// The first offset whose record timestamp is at or after this many milliseconds since
    /// the epoch. When no record is that late, the offset is -1.
    Timestamp(i64),
}

impl OffsetSpec {
    /// The timestamp field of ListOffsets that asks for this.
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }

    /// The oldest ListOffsets version that can ask for this.
    fn min_version(self) -> i16 {
        match self {
            OffsetSpec::MaxTimestamp => 7,
            _ => 0,
        }
    }
}

/// One partition's answer to [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedOffset {
    /// The offset, or -1 when [`OffsetSpec::Timestamp`] is later than every record.
    pub offset: i64,
    /// The timestamp of the record at `offset`, for [`OffsetSpec::Timestamp`] and
    /// [`OffsetSpec::MaxTimestamp`] (`None` for earliest and latest, and before ListOffsets v1).
    pub timestamp: Option<i64>,
    /// The leader epoch of that record or of the partition (ListOffsets v4+).
    pub leader_epoch: Option<i32>,
}

/// One partition of a leader-routed operation, with its argument.
#[derive(Debug, Clone)]
pub(crate) struct Item<A> {
    /// Position in the caller's list.
    pub(crate) index: usize,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The leader epoch the metadata cache has (-1 if unknown), for fencing.
    pub(crate) leader_epoch: i32,
    pub(crate) arg: A,
}

/// A request's outcome per item, by index; items it does not mention get an error.
pub(crate) type Outcomes<T> = Vec<(usize, Result<T, Error>)>;

impl Admin {
    /// Looks up offsets of partitions: earliest, latest, by timestamp or of the largest
    /// timestamp. Each request goes to the partition's leader. One result per entry, in the
    /// order given; reads are READ_UNCOMMITTED.
    ///
    /// ```no_run
    /// use klamm::OffsetSpec;
    ///
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// let asked = [("orders", 0, OffsetSpec::Earliest), ("orders", 0, OffsetSpec::Latest)];
    /// let listed = admin.list_offsets(&asked).await;
    /// let earliest = listed[0].1.as_ref().map_err(Clone::clone)?.offset;
    /// let latest = listed[1].1.as_ref().map_err(Clone::clone)?.offset;
    /// println!("partition 0 holds {} records", latest - earliest);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets(
        &self,
        partitions: &[(&str, i32, OffsetSpec)],
    ) -> PartitionResults<ListedOffset> {
        self.list_offsets_isolated(partitions, IsolationLevel::ReadUncommitted).await
    }

    /// [`Admin::list_offsets`] at an isolation level: under
    /// [`IsolationLevel::ReadCommitted`], [`OffsetSpec::Latest`] is the last stable offset
    /// (below the first record of a transaction still open), which is what a read_committed
    /// consumer can reach; the high watermark minus it is what open transactions hold.
    ///
    /// ```no_run
    /// use klamm::{IsolationLevel, OffsetSpec};
    ///
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// let asked = [("orders", 0, OffsetSpec::Latest)];
    /// let stable = admin.list_offsets_isolated(&asked, IsolationLevel::ReadCommitted).await;
    /// let high = admin.list_offsets(&asked).await;
    /// let open = high[0].1.as_ref().map_err(Clone::clone)?.offset
    ///     - stable[0].1.as_ref().map_err(Clone::clone)?.offset;
    /// println!("{open} offsets of partition 0 belong to open transactions");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets_isolated(
        &self,
        partitions: &[(&str, i32, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> PartitionResults<ListedOffset> {
        let span = tracing::debug_span!("klamm.admin.list_offsets", partitions = partitions.len());
        let items = partitions.iter().map(|(t, p, spec)| ((*t).to_owned(), *p, *spec)).collect();
        self.by_leader(items, move |conn: Connection, batch: Vec<Item<OffsetSpec>>, _timeout_ms| async move {
            let version = conn.version_for::<ListOffsetsRequest>()?;
            let mut outcomes = Vec::new();
            let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
            let mut index = HashMap::new();
            for item in batch {
                if version < item.arg.min_version() {
                    let why = "the largest-timestamp lookup needs ListOffsets v7 (Kafka 3.0)";
                    outcomes.push((item.index, Err(user_error(why))));
                    continue;
                }
                if version < 2 && isolation == IsolationLevel::ReadCommitted {
                    let why = "a read_committed lookup needs ListOffsets v2 (Kafka 0.11)";
                    outcomes.push((item.index, Err(user_error(why))));
                    continue;
                }
                topics.entry(item.topic.clone()).or_default().push(ListOffsetsPartition {
                    partition_index: item.partition,
                    current_leader_epoch: item.leader_epoch,
                    timestamp: item.arg.wire(),
                    ..Default::default()
                });
                index.insert((item.topic, item.partition), item.index);
            }
            if index.is_empty() {
                return Ok(outcomes);
            }
            let request = ListOffsetsRequest {
                replica_id: -1,
                isolation_level: isolation.code(),
                topics: topics
                    .into_iter()
                    .map(|(name, partitions)| ListOffsetsTopic { name, partitions, ..Default::default() })
                    .collect(),
                ..Default::default()
            };
            let response = conn.send_at(version, &request).await?;
            for topic in response.topics {
                for p in topic.partitions {
                    let Some(i) = index.remove(&(topic.name.clone(), p.partition_index)) else { continue };
                    let what = partition_what(&topic.name, p.partition_index);
                    let result = match broker_error(p.error_code, &what, None) {
                        Some(e) => Err(e),
                        None if version == 0 => Ok(ListedOffset {
                            offset: p.old_style_offsets.first().copied().unwrap_or(-1),
                            timestamp: None,
                            leader_epoch: None,
                        }),
                        None => Ok(ListedOffset {
                            offset: p.offset,
                            timestamp: Some(p.timestamp).filter(|t| *t >= 0),
                            leader_epoch: Some(p.leader_epoch).filter(|e| *e >= 0),
                        }),
                    };
                    outcomes.push((i, result));
                }
            }
            Ok(outcomes)
        })
        .instrument(span)
        .await
    }

    /// Deletes the records before `before_offset` in each partition (moves its log start
    /// offset there); -1 deletes up to the high watermark. Each request goes to the partition's
    /// leader. Returns each partition's new log start offset (low watermark), one result per
    /// entry in the order given.
    ///
    /// An offset beyond the high watermark fails with OFFSET_OUT_OF_RANGE.
    pub async fn delete_records(&self, partitions: &[(&str, i32, i64)]) -> PartitionResults<i64> {
        let span = tracing::debug_span!("klamm.admin.delete_records", partitions = partitions.len());
        let items = partitions.iter().map(|(t, p, offset)| ((*t).to_owned(), *p, *offset)).collect();
        self.by_leader(items, |conn: Connection, batch: Vec<Item<i64>>, timeout_ms| async move {
            let mut topics: BTreeMap<String, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            let mut index = HashMap::new();
            for item in batch {
                topics.entry(item.topic.clone()).or_default().push(DeleteRecordsPartition {
                    partition_index: item.partition,
                    offset: item.arg,
                    ..Default::default()
                });
                index.insert((item.topic, item.partition), item.index);
            }
            let request = DeleteRecordsRequest {
                topics: topics
                    .into_iter()
                    .map(|(name, partitions)| DeleteRecordsTopic { name, partitions, ..Default::default() })
                    .collect(),
                timeout_ms,
                ..Default::default()
            };
            let response = conn.send(&request).await?;
            let mut outcomes = Vec::new();
            for topic in response.topics {
                for p in topic.partitions {
                    let Some(i) = index.remove(&(topic.name.clone(), p.partition_index)) else { continue };
                    let what = partition_what(&topic.name, p.partition_index);
                    let result = match broker_error(p.error_code, &what, None) {
                        Some(e) => Err(e),
                        None => Ok(p.low_watermark),
                    };
                    outcomes.push((i, result));
                }
            }
            Ok(outcomes)
        })
        .instrument(span)
        .await
    }

    /// Runs a leader-routed operation (see the module doc). `send(conn, batch, timeout_ms)`
    /// sends one request for `batch`, all led by the broker at the other end of `conn`.
    pub(crate) async fn by_leader<A, T, F, Fut>(
        &self,
        items: Vec<(String, i32, A)>,
        send: F,
    ) -> PartitionResults<T>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        F: Fn(Connection, Vec<Item<A>>, i32) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Outcomes<T>, Error>> + Send + 'static,
    {
        let deadline = Instant::now() + self.timeout;
        let mut results: Vec<Option<Result<T, Error>>> = items.iter().map(|_| None).collect();
        let mut last_errors: HashMap<usize, Error> = HashMap::new();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let mut retry = Vec::new();
            let mut batches: Vec<(i32, Vec<Item<A>>)> = Vec::new();
            for i in pending.drain(..) {
                let (topic, partition, arg) = &items[i];
                match self.client.leader(topic, *partition).await {
                    Ok((leader, leader_epoch)) => {
                        let item = Item {
                            index: i,
                            topic: topic.clone(),
                            partition: *partition,
                            leader_epoch,
                            arg: arg.clone(),
                        };
                        add_to_batches(&mut batches, leader, item);
                    }
                    Err(e) if e.is_retriable() => {
                        self.client.invalidate_topic(topic);
                        last_errors.insert(i, e);
                        retry.push(i);
                    }
                    Err(e) => results[i] = Some(Err(e)),
                }
            }

            let request_timeout = self.client.config().connection.request_timeout;
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout_ms = left.min(request_timeout).as_millis().min(i32::MAX as u128) as i32;
            let mut tasks = JoinSet::new();
            let mut in_task = HashMap::new();
            for (leader, batch) in batches {
                let indices: Vec<usize> = batch.iter().map(|item| item.index).collect();
                let client = self.client.clone();
                let send = send.clone();
                let handle = tasks.spawn(async move {
                    let conn = client.connection(leader, ConnectionKind::Control).await?;
                    send(conn, batch, timeout_ms).await
                });
                in_task.insert(handle.id(), indices);
            }
            loop {
                let joined = match tokio::time::timeout_at(deadline.into(), tasks.join_next_with_id()).await {
                    Ok(Some(joined)) => joined,
                    Ok(None) => break,
                    Err(_) => {
                        tasks.abort_all();
                        for i in in_task.drain().flat_map(|(_, indices)| indices) {
                            results[i] = Some(Err(timed_out(last_errors.remove(&i))));
                        }
                        break;
                    }
                };
                let (id, outcome) = match joined {
                    Ok((id, outcome)) => (id, outcome),
                    // The task panicked or was cancelled: its partitions' outcome is unknown.
                    Err(e) => (e.id(), Err(timed_out(None))),
                };
                let indices = in_task.remove(&id).unwrap_or_default();
                match outcome {
                    Ok(outcomes) => {
                        let mut unanswered: HashSet<usize> = indices.into_iter().collect();
                        for (i, result) in outcomes {
                            if !unanswered.remove(&i) {
                                continue;
                            }
                            match result {
                                Err(e) if e.is_retriable() => {
                                    self.client.invalidate_topic(&items[i].0);
                                    last_errors.insert(i, e);
                                    retry.push(i);
                                }
                                result => results[i] = Some(result),
                            }
                        }
                        for i in unanswered {
                            results[i] = Some(Err(missing(&partition_what(&items[i].0, items[i].1))));
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        for i in indices {
                            self.client.invalidate_topic(&items[i].0);
                            last_errors.insert(i, e.clone());
                            retry.push(i);
                        }
                    }
                    Err(e) => {
                        for i in indices {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                }
            }

            pending = retry;
            if pending.is_empty() {
                break;
            }
            let wait = self.retry_wait(attempt - 1);
            if attempt >= LEADER_ATTEMPTS || Instant::now() + wait >= deadline {
                break;
            }
            tracing::debug!(
                partitions = pending.len(),
                attempt,
                "retrying partitions after a metadata refresh"
            );
            tokio::time::sleep(wait).await;
        }
        for i in pending {
            results[i] = Some(Err(last_errors.remove(&i).unwrap_or_else(|| timed_out(None))));
        }
        items
            .into_iter()
            .zip(results)
            .map(|((topic, partition, _), result)| {
                let result = result.unwrap_or_else(|| Err(missing(&partition_what(&topic, partition))));
                ((topic, partition), result)
            })
            .collect()
    }
}

/// Adds `item` to a batch for `leader` that does not hold its partition yet.
fn add_to_batches<A>(batches: &mut Vec<(i32, Vec<Item<A>>)>, leader: i32, item: Item<A>) {
    let free = batches.iter_mut().find(|(l, batch)| {
        *l == leader && !batch.iter().any(|b| b.topic == item.topic && b.partition == item.partition)
    });
    match free {
        Some((_, batch)) => batch.push(item),
        None => batches.push((leader, vec![item])),
    }
}

/// How errors name a partition.
pub(crate) fn partition_what(topic: &str, partition: i32) -> String {
    format!("partition {partition} of topic {topic:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, topic: &str, partition: i32) -> Item<()> {
        Item { index, topic: topic.to_owned(), partition, leader_epoch: -1, arg: () }
    }

    #[test]
    fn a_partition_named_twice_goes_in_separate_batches() {
        let mut batches = Vec::new();
        add_to_batches(&mut batches, 1, item(0, "t", 0));
        add_to_batches(&mut batches, 1, item(1, "t", 1));
        add_to_batches(&mut batches, 1, item(2, "t", 0));
        add_to_batches(&mut batches, 2, item(3, "t", 0));
        add_to_batches(&mut batches, 1, item(4, "t", 0));
        let shape: Vec<(i32, Vec<usize>)> =
            batches.iter().map(|(l, b)| (*l, b.iter().map(|i| i.index).collect())).collect();
        assert_eq!(shape, [(1, vec![0, 1]), (1, vec![2]), (2, vec![3]), (1, vec![4])]);
    }

    #[test]
    fn offset_specs_on_the_wire() {
        assert_eq!(OffsetSpec::Earliest.wire(), -2);
        assert_eq!(OffsetSpec::Latest.wire(), -1);
        assert_eq!(OffsetSpec::MaxTimestamp.wire(), -3);
        assert_eq!(OffsetSpec::Timestamp(1_700_000_000_000).wire(), 1_700_000_000_000);
        assert_eq!(OffsetSpec::MaxTimestamp.min_version(), 7);
        assert_eq!(OffsetSpec::Timestamp(5).min_version(), 0);
    }
}
