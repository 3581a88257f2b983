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
//! - Sequence numbers are assigned in queue order, per partition, under the producer id and
//!   epoch the partition uses ([`PartitionQueue::producer`]). Epochs are per partition, as the
//!   broker keeps producer state per partition: a partition moves to a new epoch (and back to
//!   sequence 0, re-stamping its queued batches in order) only when the broker told us that the
//!   batches it holds were not written: OUT_OF_ORDER_SEQUENCE_NUMBER for its first batch,
//!   UNKNOWN_PRODUCER_ID, or a sequenced batch that failed for good without ever having been
//!   written. A batch whose outcome is unknown is never re-stamped: it is resent with the same
//!   sequence numbers (the broker de-duplicates) until it is acknowledged or
//!   `delivery.timeout.ms` passes. When such a batch expires, the partition keeps its epoch and
//!   sends what follows; if the expired batch was not written after all, the broker answers
//!   OUT_OF_ORDER_SEQUENCE_NUMBER for the next one, and the partition moves on then. So no
//!   partition's trouble touches another's batches, and no batch is ever written twice.
//! - The broker remembers a producer's last five batches per partition for de-duplication.
//!   Outcomes reach the queue in the order the batches were sent (the sender reports them so),
//!   so a partition never gets more than `max_in_flight` batches past one whose outcome is
//!   unknown. Should a later batch be acknowledged while an earlier one under the same epoch
//!   is unresolved anyway, the earlier one is marked written (the broker takes sequence numbers
//!   only in order): it then completes as written whatever its own answer says, and is never
//!   re-stamped, expired or failed.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use klamm_protocol::records::{set_producer_state, Header, RecordBatchBuilder};
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
///
/// A batch the broker found too large is split in two; its result then points to the results
/// of the two halves ([`BatchResult::part_of`]) instead of holding an outcome.
#[derive(Debug, Default)]
pub(crate) struct BatchResult {
    outcome: std::sync::OnceLock<Result<BatchAck, Error>>,
    /// Set instead of `outcome` when the batch was split.
    parts: std::sync::OnceLock<Vec<Part>>,
    wakers: Mutex<Vec<Waker>>,
}

/// One half of a split batch: its first record's index in the batch it came from, its record
/// count and its result.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) first: u32,
    pub(crate) records: u32,
    pub(crate) result: Arc<BatchResult>,
}

impl BatchResult {
    /// Sets the outcome (the first call wins) and wakes every waiting future.
    pub(crate) fn complete(&self, outcome: Result<BatchAck, Error>) {
        if self.parts.get().is_none() {
            let _ = self.outcome.set(outcome);
        }
        self.wake();
    }

    /// Hands the batch's records over to the results of the batches it was split into.
    pub(crate) fn split_into(&self, parts: Vec<Part>) {
        if self.outcome.get().is_none() {
            let _ = self.parts.set(parts);
        }
        self.wake();
    }

    fn wake(&self) {
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers {
            waker.wake();
        }
    }

    /// The outcome, once settled (`None` also after a split: see [`BatchResult::part_of`]).
    pub(crate) fn outcome(&self) -> Option<&Result<BatchAck, Error>> {
        self.outcome.get()
    }

    /// After a split: the result that now holds record `index`, and the record's index there.
    pub(crate) fn part_of(&self, index: u32) -> Option<(Arc<BatchResult>, u32)> {
        let parts = self.parts.get()?;
        let part = parts.iter().rev().find(|p| p.first <= index).or(parts.first())?;
        Some((Arc::clone(&part.result), index.saturating_sub(part.first)))
    }

    /// The parts the batch was split into, if it was.
    pub(crate) fn parts(&self) -> Option<&[Part]> {
        self.parts.get().map(Vec::as_slice)
    }

    /// How many of the batch's `records` records have no outcome yet, following splits.
    pub(crate) fn pending(&self, records: u32) -> usize {
        if self.outcome.get().is_some() {
            return 0;
        }
        match self.parts.get() {
            Some(parts) => parts.iter().map(|p| p.result.pending(p.records)).sum(),
            None => records as usize,
        }
    }

    /// Polls until the batch has an outcome or was split. `slot` remembers where this
    /// caller's waker is, so polling again replaces it instead of adding another.
    pub(crate) fn poll(&self, cx: &mut Context<'_>, slot: &mut Option<usize>) -> Poll<()> {
        if self.is_settled() {
            return Poll::Ready(());
        }
        let mut wakers = lock(&self.wakers);
        // Checked again under the lock: `complete` and `split_into` set their value before
        // they take the lock, so either we see it now or they will see our waker.
        if self.is_settled() {
            return Poll::Ready(());
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

    fn is_settled(&self) -> bool {
        self.outcome.get().is_some() || self.parts.get().is_some()
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
    /// A send of this batch ended without an answer (timeout, lost connection), or with an
    /// answer saying the leader appended it without enough replicas: the broker may have
    /// written it. Resent under the same epoch, the broker's de-duplication settles it; it is
    /// never re-stamped under a new epoch while this is so.
    pub(crate) maybe_written: bool,
    /// A later batch of the partition under the same producer id and epoch was acknowledged,
    /// so the broker wrote this one (it takes a producer's sequence numbers only in order),
    /// whatever this batch's own answer turns out to be. Such a batch never fails, expires
    /// or moves to a new epoch: it completes as written, with its offset unknown unless its
    /// own answer gives it.
    pub(crate) written: bool,
}

impl Batch {
    pub(crate) fn size(&self) -> usize {
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
    /// The producer id and epoch of this partition's sequence numbers, once it has stamped a
    /// batch. Partitions move to a new epoch one at a time (see the module docs).
    pub(crate) producer: Option<(i64, i16)>,
    /// The next sequence number to assign under `producer`.
    pub(crate) next_sequence: i32,
    /// A batch with sequence numbers was acknowledged since the producer id or epoch last
    /// changed: the broker now checks our sequences, and batches may be pipelined.
    pub(crate) confirmed: bool,
    /// The broker told us that the sequence numbers of this partition have a gap it will not
    /// accept (or that it lost our state): once nothing is in flight, the partition moves to a
    /// new epoch and re-stamps its queued batches from 0. Nothing is sent meanwhile.
    pub(crate) needs_bump: bool,
    /// When the sender last warned that this partition's oldest batch waits long.
    pub(crate) stall_warned: Option<Instant>,
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

    /// Gives the next batch its sequence numbers under the partition's producer id and epoch
    /// (`latest`, the producer's newest, for a partition that has stamped nothing yet). `None`
    /// while no producer id is known or the partition waits to move to a new epoch.
    pub(crate) fn assign_stamp(&mut self, latest: Option<(i64, i16)>, records: u32) -> Option<Stamp> {
        if self.needs_bump {
            return None;
        }
        let (producer_id, epoch) = match self.producer {
            Some(p) => p,
            None => {
                let p = latest?;
                self.producer = Some(p);
                self.next_sequence = 0;
                p
            }
        };
        let base_sequence = self.next_sequence;
        // Sequences wrap at i32::MAX, as the broker expects.
        self.next_sequence =
            ((i64::from(base_sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
        Some(Stamp { producer_id, epoch, base_sequence })
    }

    /// Moves the partition to `producer` (a newer epoch, or a new producer id): sequence
    /// numbers start again at 0 and every queued batch is re-stamped in queue order. Called only
    /// when nothing of the partition is in flight and the broker said its batches were not
    /// written (see the module docs).
    ///
    /// Returns the batches known to be written ([`Batch::written`]), taken out of the queue:
    /// they complete as written and must never be sent under the new epoch.
    pub(crate) fn move_to(&mut self, producer: (i64, i16)) -> Vec<Batch> {
        let mut written = Vec::new();
        let mut index = 0;
        while index < self.queue.len() {
            if self.queue[index].written {
                written.extend(self.remove(index));
            } else {
                index += 1;
            }
        }
        self.needs_bump = false;
        self.producer = Some(producer);
        self.next_sequence = 0;
        self.confirmed = false;
        self.sent = 0;
        self.rewind = false;
        for i in 0..self.queue.len() {
            let records = self.queue[i].records;
            let stamp = self.assign_stamp(Some(producer), records);
            let batch = &mut self.queue[i];
            batch.stamp = stamp;
            batch.maybe_written = false;
        }
        written
    }

    /// Whether the partition has to move to an epoch newer than `latest` (it already uses
    /// `latest`), rather than to `latest` itself.
    pub(crate) fn needs_newer_than(&self, latest: (i64, i16)) -> bool {
        match self.producer {
            Some((id, epoch)) => id == latest.0 && epoch >= latest.1,
            None => false,
        }
    }

    /// Notes that batch `batch` left the queue for good without being acknowledged (failed
    /// or expired). If the broker cannot have written it, the sequence numbers behind it
    /// would leave a gap, so the partition must move to a new epoch; if it may have been
    /// written, nothing changes: the broker's answer to the next batch tells (see the module
    /// docs).
    pub(crate) fn dropped(&mut self, batch: &Batch) {
        if batch.stamp.is_some() && !batch.maybe_written && !batch.written && self.producer.is_some() {
            self.needs_bump = true;
        }
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
    /// The newest producer id and epoch (idempotence), once known: what a partition that has
    /// not stamped a batch yet starts with. Each partition keeps its own (see the module docs).
    pub(crate) producer: Option<(i64, i16)>,
    /// Callers of `flush` waiting: linger does not apply meanwhile.
    pub(crate) flushing: usize,
    /// No more records will come (close was called or every handle dropped).
    pub(crate) closing: bool,
    /// Set when `close` gave up: the sender stops.
    pub(crate) stopped: bool,
    /// The transaction state of a transactional producer (`None` for the others).
    pub(crate) txn: Option<super::transaction::TxnProgress>,
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
    pub(crate) headers: &'a [Header],
    pub(crate) memory: usize,
}

/// How new batches are built.
pub(crate) struct BatchSettings {
    pub(crate) batch_size: usize,
    pub(crate) compression: klamm_protocol::compression::Compression,
    pub(crate) level: Option<i32>,
    /// Batches are part of transactions (the batch header's transactional bit).
    pub(crate) transactional: bool,
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
        let producer = self.producer;
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
                .compression_level(settings.level)
                .transactional(settings.transactional);
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
                maybe_written: false,
                written: false,
            });
            next_id += 1;
            new_batch = true;
        }
        let batch = queue.open.as_mut().expect("opened above");
        let Payload::Building(builder) = &mut batch.payload else {
            unreachable!("open batches are building")
        };
        let headers = record.headers.iter().map(|h| (&h.key[..], h.value.as_deref()));
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
                queue.dropped(&batch);
                batch.result.complete(Err(e));
                Some(batch)
            }
        }
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
