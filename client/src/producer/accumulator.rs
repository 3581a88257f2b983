//! How records become batches, and the per-partition queues the sender drains.
//!
//! One [`Accumulator`] per producer, behind one mutex held only for short, non-blocking steps
//! (appending a record, moving batches between states, handling a response). Compression runs
//! outside the lock: a batch that is closed gets its place in the queue first (as
//! [`Payload::Sealing`]) and its bytes after, so queue order is the order records were sent
//! even while several batches compress at once.
//!
//! A partition's queue, front to back:
//!
//! ```text
//!   [ sent: in flight or failed and waiting to be resent ][ closed, not sent ]   open batch
//!   \________________ `sent` batches ____________________/
//! ```
//!
//! Ordering invariants (what keeps idempotent retries free of duplicates and reordering):
//! - At most `max_in_flight` (≤ 5, the broker's per-producer de-duplication window) batches of
//!   a partition are in flight, all to the same broker, on one connection, so they are
//!   processed in order.
//! - A batch that fails with a retriable error is not resent on its own: the partition
//!   *rewinds* once nothing of it is in flight, and resends from the front with the same
//!   sequence numbers. Batches the broker had written come back as duplicates (success with
//!   their original offsets); the rest are written in order.
//! - Until the broker has acknowledged one batch of a partition under the current producer id
//!   and epoch, only one batch of that partition is in flight. A broker that holds no sequence
//!   state for the producer takes any sequence number as the first; had a later batch been
//!   pipelined behind one that failed (say, while a new topic's leader is still starting), it
//!   would be written ahead of it.
//! - Sequence numbers are assigned in queue order, once per producer epoch. When the epoch is
//!   bumped (after a batch was dropped or the broker lost our state), every partition starts
//!   again at 0 and queued batches are re-stamped in order before they are sent.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use klamm_protocol::records::{set_producer_state, RecordBatchBuilder};
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::metadata::TopicMetadata;
use crate::partitioner::StickyPartitioner;

/// Producer id, epoch and base sequence written into a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) base_sequence: i32,
}

/// What the broker said about a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAck {
    /// The first record's offset, or -1 when unknown (acks=0, or a duplicate of an old batch).
    pub(crate) base_offset: i64,
    /// The broker's append time for topics with LogAppendTime, else -1.
    pub(crate) log_append_time: i64,
}

/// The outcome of one batch, shared by the delivery futures of its records.
#[derive(Debug, Default)]
pub(crate) struct BatchResult {
    outcome: std::sync::OnceLock<Result<BatchAck, Error>>,
    wakers: Mutex<Vec<Waker>>,
}

impl BatchResult {
    /// Sets the outcome (the first call wins) and wakes every waiting future.
    pub(crate) fn complete(&self, outcome: Result<BatchAck, Error>) {
        let _ = self.outcome.set(outcome);
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn outcome(&self) -> Option<&Result<BatchAck, Error>> {
        self.outcome.get()
    }

    /// Polls for the outcome. `slot` remembers where this caller's waker is, so polling again
    /// replaces it instead of adding another.
    pub(crate) fn poll(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<usize>,
    ) -> Poll<&Result<BatchAck, Error>> {
        if let Some(outcome) = self.outcome.get() {
            return Poll::Ready(outcome);
        }
        let mut wakers = lock(&self.wakers);
        // Checked again under the lock: `complete` sets the outcome before it takes the lock,
        // so either we see the outcome now or it will see our waker.
        if let Some(outcome) = self.outcome.get() {
            return Poll::Ready(outcome);
        }
        match *slot {
            Some(i) if i < wakers.len() => wakers[i].clone_from(cx.waker()),
            _ => {
                *slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// A batch's bytes as it moves from open to sent.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Receiving records.
    Building(RecordBatchBuilder),
    /// Closed; being compressed outside the lock.
    Sealing,
    /// Ready to send, with the stamp its header carries.
    Sealed(Bytes, Option<Stamp>),
}

#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) id: u64,
    pub(crate) payload: Payload,
    pub(crate) records: u32,
    /// Buffer-memory permits to give back when the batch is done.
    pub(crate) memory: usize,
    pub(crate) result: Arc<BatchResult>,
    pub(crate) created: Instant,
    /// The stamp the batch must carry when sent (`None` without idempotence, or before the
    /// producer id is known).
    pub(crate) stamp: Option<Stamp>,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<Error>,
    pub(crate) in_flight: bool,
    /// A send of this batch ended without an answer (timeout, lost connection): the broker may
    /// have written it. Resent under the same epoch, the broker's de-duplication settles it;
    /// under a bumped epoch nothing could, so an epoch bump fails such a batch instead.
    pub(crate) unresolved: bool,
}

impl Batch {
    fn size(&self) -> usize {
        match &self.payload {
            Payload::Building(b) => b.size_in_bytes(),
            Payload::Sealed(bytes, _) => bytes.len(),
            Payload::Sealing => 0,
        }
    }

    /// The bytes to send, re-stamped first if the batch's stamp changed since it was sealed.
    pub(crate) fn wire_bytes(&mut self) -> Option<Bytes> {
        let Payload::Sealed(bytes, written) = &mut self.payload else { return None };
        if self.stamp.is_some() && *written != self.stamp {
            let stamp = self.stamp?;
            let mut copy = BytesMut::from(&bytes[..]);
            // The builder wrote a whole magic-2 batch, so this cannot fail.
            if set_producer_state(&mut copy, stamp.producer_id, stamp.epoch, stamp.base_sequence).is_ok() {
                *bytes = copy.freeze();
                *written = Some(stamp);
            }
        }
        Some(bytes.clone())
    }
}

/// One partition's batches.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    pub(crate) open: Option<Batch>,
    pub(crate) queue: VecDeque<Batch>,
    /// How many batches at the front have been sent (in flight, or failed awaiting a rewind).
    pub(crate) sent: usize,
    pub(crate) in_flight: usize,
    /// The broker the in-flight batches went to.
    pub(crate) in_flight_node: i32,
    /// A sent batch failed retriably: resend from the front once nothing is in flight.
    pub(crate) rewind: bool,
    pub(crate) retry_at: Option<Instant>,
    /// The next sequence number to assign in the current epoch.
    pub(crate) next_sequence: i32,
    /// A batch with sequence numbers was acknowledged since the producer id or epoch last
    /// changed: the broker now checks our sequences, and batches may be pipelined.
    pub(crate) confirmed: bool,
}

impl PartitionQueue {
    pub(crate) fn is_idle(&self) -> bool {
        self.open.is_none() && self.queue.is_empty()
    }

    /// The position of batch `id` in the queue.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.queue.iter().position(|b| b.id == id)
    }

    /// Removes the batch at `index`, keeping `sent` and `in_flight` consistent.
    pub(crate) fn remove(&mut self, index: usize) -> Option<Batch> {
        let batch = self.queue.remove(index)?;
        if index < self.sent {
            self.sent -= 1;
        }
        if batch.in_flight {
            self.in_flight -= 1;
        }
        Some(batch)
    }

    /// Gives the next batch its sequence numbers, if the producer id is known.
    pub(crate) fn assign_stamp(&mut self, producer: Option<(i64, i16)>, records: u32) -> Option<Stamp> {
        let (producer_id, epoch) = producer?;
        let base_sequence = self.next_sequence;
        // Sequences wrap at i32::MAX, as the broker expects.
        self.next_sequence =
            ((i64::from(base_sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
        Some(Stamp { producer_id, epoch, base_sequence })
    }
}

/// One topic's partitions and its sticky partitioner.
#[derive(Debug)]
pub(crate) struct TopicQueues {
    pub(crate) name: Arc<str>,
    pub(crate) partitions: Vec<PartitionQueue>,
    pub(crate) sticky: StickyPartitioner,
}

impl TopicQueues {
    pub(crate) fn partition_mut(&mut self, partition: i32) -> &mut PartitionQueue {
        let index = partition as usize;
        if self.partitions.len() <= index {
            self.partitions.resize_with(index + 1, PartitionQueue::default);
        }
        &mut self.partitions[index]
    }
}

/// Every queue of a producer, plus producer-wide state the sender and `send` share.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    pub(crate) topics: FxHashMap<Arc<str>, TopicQueues>,
    pub(crate) next_batch_id: u64,
    /// The producer id and epoch in use (idempotence), once known.
    pub(crate) producer: Option<(i64, i16)>,
    /// A batch with sequence numbers was dropped, or the broker lost our state: bump the epoch
    /// once nothing is in flight.
    pub(crate) bump_epoch: bool,
    /// Callers of `flush` waiting: linger does not apply meanwhile.
    pub(crate) flushing: usize,
    /// No more records will come (close was called or every handle dropped).
    pub(crate) closing: bool,
    /// Set when `close` gave up: the sender stops.
    pub(crate) stopped: bool,
}

/// Where `append` put a record.
pub(crate) struct Appended {
    pub(crate) result: Arc<BatchResult>,
    pub(crate) index: u32,
    /// The partition the record went to.
    pub(crate) partition: i32,
    /// A batch was closed by this append: its builder, to be sealed by the caller.
    pub(crate) closed: Option<ToSeal>,
    /// The partition has a new open batch: the sender must learn of its linger deadline.
    pub(crate) new_batch: bool,
}

/// Where `append` puts a record.
pub(crate) enum Target<'a> {
    /// This partition.
    Partition(i32),
    /// The topic's sticky partition (records without a key), among `partitions`.
    Sticky(&'a TopicMetadata, NonZeroU32),
}

/// What a record brings to `append`.
pub(crate) struct NewRecord<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [(String, Option<Bytes>)],
    pub(crate) memory: usize,
}

/// How new batches are built.
pub(crate) struct BatchSettings {
    pub(crate) batch_size: usize,
    pub(crate) compression: klamm_protocol::compression::Compression,
    pub(crate) level: Option<i32>,
}

impl Accumulator {
    /// The topic's queues, created on first use.
    pub(crate) fn topic_mut(&mut self, name: &str) -> &mut TopicQueues {
        if !self.topics.contains_key(name) {
            let name: Arc<str> = Arc::from(name);
            let queues = TopicQueues {
                name: Arc::clone(&name),
                partitions: Vec::new(),
                sticky: StickyPartitioner::new(),
            };
            self.topics.insert(name, queues);
        }
        self.topics.get_mut(name).expect("inserted above")
    }

    /// Appends a record to the open batch of a partition, closing that batch first when the
    /// record would take it past `batch_size`, and after when the record filled it.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        target: Target<'_>,
        record: &NewRecord<'_>,
        settings: &BatchSettings,
    ) -> Result<Appended, Error> {
        let producer = self.producer.filter(|_| !self.bump_epoch);
        let mut next_id = self.next_batch_id;
        let topic_queues = self.topic_mut(topic);
        let partition = match target {
            Target::Partition(p) => p,
            Target::Sticky(meta, partitions) => match topic_queues.sticky.current(partitions) {
                Some(p) => p,
                // The partitions with a leader are only collected when a new sticky partition
                // must be chosen, not for every record.
                None => {
                    let available: Vec<i32> =
                        meta.partitions.iter().filter(|p| p.has_leader()).map(|p| p.partition).collect();
                    topic_queues.sticky.partition(partitions, &available)
                }
            },
        };
        let name = Arc::clone(&topic_queues.name);
        let queue = topic_queues.partition_mut(partition);
        let mut closed = None;
        let full = queue
            .open
            .as_ref()
            .is_some_and(|b| b.records > 0 && b.size() + record.memory > settings.batch_size);
        if full {
            closed = close_open(queue, &name, partition, producer);
        }
        let mut new_batch = false;
        if queue.open.is_none() {
            let capacity = settings.batch_size.min(1 << 20) + 128;
            let builder = RecordBatchBuilder::with_buffer(BytesMut::with_capacity(capacity))
                .compression(settings.compression)
                .compression_level(settings.level);
            queue.open = Some(Batch {
                id: next_id,
                payload: Payload::Building(builder),
                records: 0,
                memory: 0,
                result: Arc::new(BatchResult::default()),
                created: Instant::now(),
                stamp: None,
                attempts: 0,
                last_error: None,
                in_flight: false,
                unresolved: false,
            });
            next_id += 1;
            new_batch = true;
        }
        let batch = queue.open.as_mut().expect("opened above");
        let Payload::Building(builder) = &mut batch.payload else {
            unreachable!("open batches are building")
        };
        let headers = record.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref()));
        builder.push_with_headers(record.timestamp, record.key, record.value, headers)?;
        let index = batch.records;
        batch.records += 1;
        batch.memory += record.memory;
        let result = Arc::clone(&batch.result);
        let filled = batch.size() >= settings.batch_size;
        if filled && closed.is_none() {
            closed = close_open(queue, &name, partition, producer);
        }
        if closed.is_some() {
            topic_queues.sticky.on_new_batch(partition);
        }
        self.next_batch_id = next_id;
        Ok(Appended { result, index, partition, closed, new_batch })
    }

    /// Puts the compressed bytes of a batch that [`close_open`] handed out into its place.
    pub(crate) fn install(
        &mut self,
        topic: &str,
        partition: i32,
        id: u64,
        sealed: Result<Bytes, Error>,
        stamp: Option<Stamp>,
    ) -> Option<Batch> {
        let queue = self.topics.get_mut(topic)?.partitions.get_mut(partition as usize)?;
        let index = queue.position(id)?;
        match sealed {
            Ok(bytes) => {
                queue.queue[index].payload = Payload::Sealed(bytes, stamp);
                None
            }
            // Encoding failed (only a codec error can do that): the batch fails alone.
            Err(e) => {
                let batch = queue.remove(index)?;
                if batch.stamp.is_some() {
                    self.bump_epoch = true;
                }
                batch.result.complete(Err(e));
                Some(batch)
            }
        }
    }

    /// Bumps the producer epoch: every partition starts again at sequence 0, and queued
    /// batches get new stamps in queue order. Called only when nothing is in flight.
    ///
    /// Returns the batches that leave the queue instead: those whose earlier send ended
    /// without an answer. The broker may hold them already, and under the new epoch it could
    /// not tell a resend from a new batch, so resending them could write them twice (the Java
    /// client fails such batches too). The caller fails them and releases their memory.
    pub(crate) fn bump(&mut self, producer_id: i64, epoch: i16) -> Vec<Batch> {
        self.producer = Some((producer_id, epoch));
        self.bump_epoch = false;
        let mut unresolved = Vec::new();
        for topic in self.topics.values_mut() {
            for queue in &mut topic.partitions {
                let mut i = 0;
                while i < queue.queue.len() {
                    if queue.queue[i].unresolved && !queue.queue[i].in_flight {
                        unresolved.extend(queue.remove(i));
                    } else {
                        i += 1;
                    }
                }
                queue.next_sequence = 0;
                queue.confirmed = false;
                queue.sent = 0;
                queue.rewind = false;
                for i in 0..queue.queue.len() {
                    let records = queue.queue[i].records;
                    let stamp = queue.assign_stamp(Some((producer_id, epoch)), records);
                    queue.queue[i].stamp = stamp;
                }
            }
        }
        unresolved
    }

    /// Whether nothing is queued or open anywhere.
    pub(crate) fn is_empty(&self) -> bool {
        self.topics.values().all(|t| t.partitions.iter().all(PartitionQueue::is_idle))
    }
}

/// A closed batch to compress outside the lock, then hand to [`Accumulator::install`].
#[derive(Debug)]
pub(crate) struct ToSeal {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) id: u64,
    pub(crate) builder: RecordBatchBuilder,
    /// The stamp written by the builder.
    pub(crate) stamp: Option<Stamp>,
}

impl ToSeal {
    /// Compresses and finishes the batch (the expensive part, done without the lock).
    pub(crate) fn seal(self) -> (Arc<str>, i32, u64, Result<Bytes, Error>, Option<Stamp>) {
        let sealed = self.builder.finish().map(BytesMut::freeze).map_err(Error::from);
        (self.topic, self.partition, self.id, sealed, self.stamp)
    }
}

/// Moves the open batch of `queue` to the back of its queue as `Sealing`, with its stamp
/// assigned, and returns its builder for the caller to finish outside the lock.
pub(crate) fn close_open(
    queue: &mut PartitionQueue,
    topic: &Arc<str>,
    partition: i32,
    producer: Option<(i64, i16)>,
) -> Option<ToSeal> {
    let mut batch = queue.open.take()?;
    let Payload::Building(builder) = std::mem::replace(&mut batch.payload, Payload::Sealing) else {
        unreachable!("open batches are building")
    };
    batch.stamp = queue.assign_stamp(producer, batch.records);
    let builder = match batch.stamp {
        Some(s) => builder.producer(s.producer_id, s.epoch, s.base_sequence),
        None => builder,
    };
    let (id, stamp) = (batch.id, batch.stamp);
    queue.queue.push_back(batch);
    Some(ToSeal { topic: Arc::clone(topic), partition, id, builder, stamp })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
