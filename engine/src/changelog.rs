//! [`KafkaStorage`]: workspaces kept in a compacted changelog topic, so that any member of the
//! group, on any host, can take a partition over with no shared disk (as Kafka Streams keeps
//! its state stores).
//!
//! The topic, `<group id>-workspaces-changelog` ([`changelog_topic`]), has the primary input
//! topic's partition count and `cleanup.policy=compact`; the engine creates it when missing.
//! Each record's key is a workspace id and its value the workspace's JSON document, the same
//! one [`FileStorage`](crate::FileStorage) writes (compact rather than indented); a null value
//! deletes the workspace. A workspace's record goes to the partition of the input partition it
//! lives on, named explicitly, so a changelog partition follows its input partition around the
//! group. This layout is a stable interface: tools read it.
//!
//! Saves are produced with `acks=all` and idempotence, a batch at a time, and the engine
//! commits an input offset only after every save below it was acknowledged. So once the store
//! has read a changelog partition from its start to the end offset it had when the partition
//! was assigned ([`WorkspaceStorage::restore`]), it holds every save the group committed past:
//! it is authoritative ([`SavedThrough::Everything`]) and the engine replays only the
//! uncommitted tail.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::ErrorCode;
use klamm::{
    Acks, Admin, Consumer, ConsumerConfig, Error, ErrorKind, NewTopic, Offset, OffsetReset, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

use crate::workspace::{SavedThrough, StorageError, StorageFuture, Workspace, WorkspaceStorage};

/// The changelog topic of consumer group `group_id`: `<group id>-workspaces-changelog`.
pub fn changelog_topic(group_id: &str) -> String {
    format!("{group_id}-workspaces-changelog")
}

/// The longest a restore may go without reaching the end offsets it reads to.
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// Workspaces in a compacted changelog topic (see the module docs), with the workspaces of the
/// restored partitions held in memory.
///
/// Made by the engine when `state_store` is [`StateStore::Kafka`](crate::StateStore::Kafka)
/// (`KAFKA_STATE_STORE=kafka`): it creates the topic and its own idempotent `acks=all`
/// producer. [`WorkspaceStorage::save`] blocks on the acknowledgement and needs a
/// multi-threaded Tokio runtime; the engine itself saves with
/// [`WorkspaceStorage::save_all`].
pub struct KafkaStorage {
    topic: Arc<str>,
    primary: String,
    producer: Producer,
    admin: Admin,
    consumer: ConsumerConfig,
    state: Mutex<Restored>,
}

impl std::fmt::Debug for KafkaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStorage").field("topic", &self.topic).finish_non_exhaustive()
    }
}

/// What the store holds: each workspace with the changelog partition it was read from or
/// written to, and the partitions restored.
#[derive(Default)]
struct Restored {
    workspaces: HashMap<String, (i32, Workspace)>,
    partitions: HashSet<i32>,
}

/// The last value of each key of a changelog read, in order: a later record replaces an
/// earlier one, a null value (tombstone) deletes the key.
#[derive(Debug, Default)]
pub(crate) struct LastValues {
    values: HashMap<String, (i32, i64, Bytes)>,
}

impl LastValues {
    /// Takes in the record at `offset` of `partition`. A record without a key or whose key is
    /// not UTF-8 is no workspace's: an error.
    pub(crate) fn add(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<Bytes>,
    ) -> Result<(), String> {
        let key = key.ok_or_else(|| format!("record at {partition}/{offset} has no key"))?;
        let id = std::str::from_utf8(key)
            .map_err(|_| format!("record at {partition}/{offset}: key is not UTF-8"))?;
        match value {
            Some(v) => {
                self.values.insert(id.to_string(), (partition, offset, v));
            }
            None => {
                self.values.remove(id);
            }
        }
        Ok(())
    }

    /// The workspaces, decoded, each with its partition.
    pub(crate) fn decode(self) -> Result<Vec<(i32, Workspace)>, String> {
        let mut out = Vec::with_capacity(self.values.len());
        for (id, (partition, offset, value)) in self.values {
            let ws: Workspace = serde_json::from_slice(&value)
                .map_err(|e| format!("record at {partition}/{offset} is not a valid workspace: {e}"))?;
            if ws.workspace_id != id {
                return Err(format!(
                    "record at {partition}/{offset} has key {id:?} but holds workspace {:?}",
                    ws.workspace_id
                ));
            }
            out.push((partition, ws));
        }
        Ok(out)
    }
}

fn kafka_error(topic: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("changelog topic {topic}: {e}"))
}

impl KafkaStorage {
    /// Opens the changelog of the engine configured by `config`: creates the topic with
    /// `partitions` partitions (those of the primary input topic) unless it exists, and fails
    /// when it exists with fewer. `admin` is the engine's admin client; its client is shared.
    pub async fn open(
        config: &crate::EngineConfig,
        admin: &Admin,
        partitions: NonZeroU32,
    ) -> Result<KafkaStorage, Error> {
        let mut producer_config: ProducerConfig = config.producer_config()?;
        producer_config.acks = Acks::All;
        producer_config.enable_idempotence = Some(true);
        let producer = Producer::new(producer_config)?;
        Self::open_with(config, admin, partitions, producer).await
    }

    /// [`KafkaStorage::open`] writing through `producer`: the engine's transactional producer in
    /// exactly-once mode, whose open transaction the saves then join (and whose commit makes
    /// them visible to the read_committed restore).
    pub(crate) async fn open_with(
        config: &crate::EngineConfig,
        admin: &Admin,
        partitions: NonZeroU32,
        producer: Producer,
    ) -> Result<KafkaStorage, Error> {
        let topic = changelog_topic(&config.group_id);
        ensure_changelog(admin, &topic, &config.topics[0], partitions, config.shutdown_timeout).await?;
        // In exactly-once mode the group config reads read_committed: a restore sees only
        // the saves of committed transactions.
        let mut consumer = config.group_config()?.consumer;
        consumer.auto_offset_reset = OffsetReset::Earliest;
        Ok(KafkaStorage {
            topic: topic.into(),
            primary: config.topics[0].clone(),
            producer,
            admin: admin.clone(),
            consumer,
            state: Mutex::new(Restored::default()),
        })
    }

    /// The changelog topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The store's producer (to close it when the engine stops).
    pub(crate) fn producer(&self) -> &Producer {
        &self.producer
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Restored> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn read_partitions(&self, partitions: &[i32]) -> Result<Vec<(i32, Workspace)>, StorageError> {
        let topic = &*self.topic;
        let mut asked = Vec::with_capacity(partitions.len() * 2);
        for p in partitions {
            asked.push((topic, *p, OffsetSpec::Earliest));
            asked.push((topic, *p, OffsetSpec::Latest));
        }
        let mut bounds: HashMap<i32, (i64, i64)> = HashMap::new();
        for ((_, p), listed) in self.admin.list_offsets(&asked).await {
            let offset = listed.map_err(|e| kafka_error(topic, e))?.offset;
            let b = bounds.entry(p).or_insert((offset, offset));
            b.0 = b.0.min(offset);
            b.1 = b.1.max(offset);
        }
        let to_read: Vec<(TopicPartition, i64, i64)> = bounds
            .into_iter()
            .filter(|(_, (start, end))| end > start)
            .map(|(p, (start, end))| (TopicPartition::new(topic, p), start, end))
            .collect();
        let mut last = LastValues::default();
        if !to_read.is_empty() {
            let mut consumer = Consumer::with_client(self.admin.client().clone(), self.consumer.clone())
                .map_err(|e| kafka_error(topic, e))?;
            consumer.assign(to_read.iter().map(|(tp, _, _)| tp.clone()));
            for (tp, start, _) in &to_read {
                consumer.seek(tp, Offset::At(*start)).map_err(|e| kafka_error(topic, e))?;
            }
            let deadline = Instant::now() + RESTORE_TIMEOUT;
            let done =
                |c: &Consumer| to_read.iter().all(|(tp, _, end)| c.position(tp).is_some_and(|p| p >= *end));
            let mut outcome = Ok(());
            while !done(&consumer) {
                if Instant::now() > deadline {
                    outcome =
                        Err(kafka_error(topic, format!("not read to its end within {RESTORE_TIMEOUT:?}")));
                    break;
                }
                match consumer.poll(Duration::from_millis(200)).await {
                    Ok(records) => {
                        for r in records {
                            let end =
                                to_read.iter().find(|(tp, _, _)| tp.partition == r.partition).map(|t| t.2);
                            // Past the end taken at assignment: saves made since by whoever owns
                            // the partition now are not this restore's business.
                            if end.is_some_and(|e| r.offset >= e) {
                                continue;
                            }
                            if let Err(why) = last.add(r.partition, r.offset, r.key.as_deref(), r.value) {
                                outcome = Err(kafka_error(topic, why));
                            }
                        }
                    }
                    Err(e) => outcome = Err(kafka_error(topic, e)),
                }
                if outcome.is_err() {
                    break;
                }
            }
            let _ = consumer.close(Duration::from_secs(5)).await;
            outcome?;
        }
        last.decode().map_err(|why| kafka_error(topic, why))
    }
}

impl WorkspaceStorage for KafkaStorage {
    fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError> {
        Ok(self.state().workspaces.get(id).map(|(_, ws)| ws.clone()))
    }

    fn save(&self, workspace: &Workspace) -> Result<(), StorageError> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(self.save_all(&[workspace])))
            }
            _ => Err(StorageError::Other(
                "the Kafka store saves one workspace only from a multi-threaded Tokio runtime; use save_all"
                    .into(),
            )),
        }
    }

    fn discover(&self) -> Result<Vec<String>, StorageError> {
        let mut ids: Vec<String> = self.state().workspaces.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    fn saved_through(&self, topic: &str, partition: i32) -> Result<SavedThrough, StorageError> {
        let restored = topic == self.primary && self.state().partitions.contains(&partition);
        Ok(if restored { SavedThrough::Everything } else { SavedThrough::Unknown })
    }

    fn restore<'a>(&'a self, partitions: &'a [i32]) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let read = self.read_partitions(partitions).await;
            let mut state = self.state();
            // What was held of these partitions is stale, read or not.
            state.workspaces.retain(|_, (p, _)| !partitions.contains(p));
            for p in partitions {
                state.partitions.remove(p);
            }
            let read = read?;
            tracing::info!(topic = &*self.topic, partitions = ?partitions, workspaces = read.len(), "changelog restored");
            for (p, ws) in read {
                state.workspaces.insert(ws.workspace_id.clone(), (p, ws));
            }
            state.partitions.extend(partitions.iter().copied());
            Ok(())
        })
    }

    fn save_all<'a>(&'a self, workspaces: &'a [&'a Workspace]) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let topic = &*self.topic;
            // Send every write, then wait for every acknowledgement.
            let mut deliveries = Vec::with_capacity(workspaces.len());
            for ws in workspaces {
                let value = serde_json::to_vec(ws)
                    .map_err(|e| StorageError::Other(format!("cannot encode workspace: {e}")))?;
                let record = ProducerRecord::new(Arc::clone(&self.topic), value)
                    .key(ws.workspace_id.clone())
                    .partition(ws.partition);
                deliveries.push(self.producer.send(record).await.map_err(|e| kafka_error(topic, e))?);
            }
            for d in deliveries {
                d.await.map_err(|e| kafka_error(topic, e))?;
            }
            let mut state = self.state();
            for ws in workspaces {
                state.workspaces.insert(ws.workspace_id.clone(), (ws.partition, (*ws).clone()));
            }
            Ok(())
        })
    }
}

/// Creates the changelog topic (compacted, `partitions` partitions, replicated on up to three
/// brokers) unless it exists; one with fewer partitions than the input topic `input` is an
/// error, since some workspaces would have no partition to go to.
async fn ensure_changelog(
    admin: &Admin,
    topic: &str,
    input: &str,
    partitions: NonZeroU32,
    timeout: Duration,
) -> Result<(), Error> {
    let bad = |why: String| {
        Error::with_message(ErrorKind::Config, format!("workspace changelog topic {topic}: {why}"))
    };
    match admin.describe_topics(&[topic]).await.into_iter().next() {
        Some((_, Ok(meta))) => {
            if meta.partition_count() < partitions.get() {
                return Err(bad(format!(
                    "it has {} partitions, fewer than the {} of input topic {input}; add partitions to it \
                     (kafka-topics --alter --partitions {})",
                    meta.partition_count(),
                    partitions,
                    partitions
                )));
            }
            return Ok(());
        }
        Some((_, Err(e))) if e.code() != Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {
            return Err(bad(e.to_string()))
        }
        _ => {}
    }
    let brokers = admin.describe_cluster().await.map(|c| c.brokers.len()).unwrap_or(1);
    let replicas = brokers.clamp(1, 3) as i16;
    let new = NewTopic::new(topic, i32::try_from(partitions.get()).unwrap_or(i32::MAX), replicas)
        .config("cleanup.policy", "compact");
    match admin.create_topics(&[new]).await.into_iter().next() {
        Some((_, Ok(_))) => tracing::info!(
            topic,
            partitions = partitions.get(),
            replicas,
            "workspace changelog topic created"
        ),
        Some((_, Err(e))) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        Some((_, Err(e))) => return Err(bad(format!("cannot create it: {e}"))),
        None => {}
    }
    admin.wait_for_topic(topic, timeout).await.map_err(|e| bad(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, events: u64) -> Option<Bytes> {
        let mut ws = Workspace::new(id, 0);
        ws.data.insert("events".into(), events.into());
        Some(serde_json::to_vec(&ws).unwrap().into())
    }

    #[test]
    fn the_last_value_of_each_key_wins_and_a_tombstone_deletes() {
        let mut last = LastValues::default();
        last.add(0, 0, Some(b"a"), doc("a", 1)).unwrap();
        last.add(0, 1, Some(b"b"), doc("b", 1)).unwrap();
        last.add(0, 2, Some(b"a"), doc("a", 2)).unwrap();
        last.add(0, 3, Some(b"b"), None).unwrap();
        last.add(0, 4, Some(b"c"), None).unwrap();
        last.add(1, 0, Some(b"c"), doc("c", 5)).unwrap();
        last.add(0, 5, Some(b"b"), doc("b", 9)).unwrap();
        last.add(0, 6, Some(b"d"), doc("d", 1)).unwrap();
        last.add(0, 7, Some(b"d"), None).unwrap();
        let mut got: Vec<(i32, String, u64)> = last
            .decode()
            .unwrap()
            .into_iter()
            .map(|(p, ws)| (p, ws.workspace_id.clone(), ws.data["events"].as_u64().unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, [(0, "a".into(), 2), (0, "b".into(), 9), (1, "c".into(), 5)]);
    }

    #[test]
    fn records_that_are_no_workspace_are_errors() {
        let mut last = LastValues::default();
        assert!(last.add(0, 0, None, doc("a", 1)).is_err());
        assert!(last.add(0, 1, Some(&[0xff]), doc("a", 1)).is_err());
        let mut last = LastValues::default();
        last.add(0, 2, Some(b"a"), Some(Bytes::from_static(b"{"))).unwrap();
        assert!(last.decode().unwrap_err().contains("0/2"));
        let mut last = LastValues::default();
        last.add(0, 3, Some(b"a"), doc("other", 1)).unwrap();
        assert!(last.decode().unwrap_err().contains("holds workspace"));
    }

    #[test]
    fn the_topic_is_named_after_the_group() {
        assert_eq!(changelog_topic("billing"), "billing-workspaces-changelog");
    }
}
