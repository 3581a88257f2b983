//! The producer: records in, acknowledged offsets out.
//!
//! - [`Producer::send`] picks the partition ([`partitioner`](crate::partitioner)), waits for
//!   buffer memory and topic metadata (both bounded by `max.block.ms`), appends the record to
//!   its partition's open batch ([`accumulator`]) and returns a [`DeliveryFuture`].
//! - One sender task per producer ([`sender`]) closes batches when full or after `linger.ms`,
//!   groups them by leader into Produce requests, and handles responses: acknowledgements,
//!   retries (with the ordering rules in the accumulator's docs), epoch bumps, timeouts.
//!
//! Idempotence (on by default, as in the Java client): the sender gets a producer id with
//! InitProducerId; each batch carries the id, epoch and per-partition sequence numbers, so the
//! broker drops duplicates of retried batches and refuses gaps.
//!
//! Dropping the last [`Producer`] handle does not block and does not lose records: the sender
//! delivers what is queued (within `delivery.timeout.ms`) and then stops. Call
//! [`Producer::close`] to wait for that with a timeout.

mod accumulator;
mod config;
mod sender;
mod transaction;

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use klamm_protocol::records::Header;
use klamm_protocol::ErrorCode;
use tokio::sync::{Notify, Semaphore};

use self::accumulator::{Accumulator, BatchResult, BatchSettings, NewRecord, Target};
pub use self::config::{Acks, ProducerConfig};
pub use self::transaction::{ConsumerGroupMetadata, TransactionOffset};
use crate::client::{topic_error, Client};
use crate::consumer::ConsumerRecord;
use crate::error::{Error, ErrorKind};
use crate::metadata::TopicMetadata;
use crate::partitioner::partition_for_key;

/// Compresses a closed batch and puts its bytes in its place in the queue; wakes the sender.
fn seal(shared: &Shared, to_seal: accumulator::ToSeal) {
    let (topic, p, id, sealed, stamp) = to_seal.seal();
    let failed = lock(&shared.state).install(&topic, p, id, sealed, stamp);
    if let Some(batch) = failed {
        shared.memory.add_permits(batch.memory);
    }
    shared.wake.notify_one();
}

/// `max.block.ms` from the start of a `send`, reading the clock only when `send` has to wait
/// (most calls never do, and a clock read per record shows in profiles).
struct Deadline {
    start: std::sync::OnceLock<Instant>,
    max_block: Duration,
}

impl Deadline {
    fn new(max_block: Duration) -> Self {
        Self { start: std::sync::OnceLock::new(), max_block }
    }

    /// When waiting must end: `max.block.ms` after the first call.
    fn at(&self) -> Instant {
        *self.start.get_or_init(Instant::now) + self.max_block
    }
}

/// A topic name as [`ProducerRecord::new`] takes it: from a `&str` or `String` (which
/// allocates), or from an `Arc<str>` / `&Arc<str>` (which only counts a reference, the way to
/// send many records to one topic without an allocation each).
///
/// ```
/// use std::sync::Arc;
/// use klamm::ProducerRecord;
///
/// let orders: Arc<str> = Arc::from("orders");
/// let record = ProducerRecord::new(&orders, "no allocation for the name");
/// assert!(Arc::ptr_eq(&record.topic, &orders));
/// ```
#[derive(Debug, Clone)]
pub struct TopicName(pub Arc<str>);

impl From<&str> for TopicName {
    fn from(name: &str) -> Self {
        TopicName(Arc::from(name))
    }
}

impl From<&String> for TopicName {
    fn from(name: &String) -> Self {
        TopicName(Arc::from(name.as_str()))
    }
}

impl From<String> for TopicName {
    fn from(name: String) -> Self {
        TopicName(Arc::from(name))
    }
}

impl From<Arc<str>> for TopicName {
    fn from(name: Arc<str>) -> Self {
        TopicName(name)
    }
}

impl From<&Arc<str>> for TopicName {
    fn from(name: &Arc<str>) -> Self {
        TopicName(Arc::clone(name))
    }
}

/// A record to send.
///
/// ```
/// use klamm::ProducerRecord;
///
/// let record = ProducerRecord::new("orders", "order-17 shipped")
///     .key("order-17")
///     .header("source", "warehouse-3")
///     .null_header("replayed");
/// assert_eq!(record.partition, None);
/// assert_eq!(record.headers[1].value, None);
/// ```
///
/// A consumed record converts into one with the same topic, key, value, headers (null
/// values included) and timestamp, so forwarding it elsewhere is one line:
///
/// ```no_run
/// # async fn forward(producer: &klamm::Producer, record: &klamm::ConsumerRecord) -> Result<(), klamm::Error> {
/// use klamm::ProducerRecord;
///
/// producer.send(ProducerRecord::from(record).to_topic("orders-copy")).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProducerRecord {
    /// The topic. An `Arc<str>`: a producer that sends many records to one topic can make
    /// the name once and clone it per record without allocating.
    pub topic: Arc<str>,
    /// The partition; `None` lets the partitioner choose (by key, or sticky without one).
    pub partition: Option<i32>,
    /// The key (`None` is a null key).
    pub key: Option<Bytes>,
    /// The value (`None` is a null value, a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in order; a header value may be null. The same [`Header`] type as
    /// [`ConsumerRecord::headers`](crate::ConsumerRecord::headers).
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` stamps the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and no key. `topic` may be a `&str`, a `String` or (cheapest
    /// when sending many records) an `Arc<str>` made once; see [`TopicName`].
    pub fn new(topic: impl Into<TopicName>, value: impl Into<Bytes>) -> Self {
        Self { topic: topic.into().0, value: Some(value.into()), ..Self::default() }
    }

    /// A record with a null value.
    pub fn tombstone(topic: impl Into<TopicName>) -> Self {
        Self { topic: topic.into().0, ..Self::default() }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the topic (to send a converted [`ConsumerRecord`] elsewhere, say).
    pub fn to_topic(mut self, topic: impl Into<TopicName>) -> Self {
        self.topic = topic.into().0;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Adds a header with a null value.
    pub fn null_header(mut self, name: impl Into<Bytes>) -> Self {
        self.headers.push(Header::null(name));
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// The bytes this record takes in the buffer (and roughly on the wire).
    fn size(&self) -> usize {
        let blob = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len) + 5;
        let headers: usize = self.headers.iter().map(|h| h.key.len() + 5 + blob(&h.value)).sum();
        // Length, attributes, timestamp and offset deltas, header count: at most 21 bytes.
        21 + blob(&self.key) + blob(&self.value) + headers
    }
}

impl From<&ConsumerRecord> for ProducerRecord {
    /// The same topic, key, value and headers (cheap: [`Bytes`] clones share the fetched
    /// data), and the record's timestamp when it has one. The partition is left to the
    /// partitioner, which puts equal keys together again.
    fn from(record: &ConsumerRecord) -> Self {
        Self {
            topic: Arc::clone(&record.topic),
            partition: None,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
            timestamp: Some(record.timestamp).filter(|t| *t >= 0),
        }
    }
}

impl From<ConsumerRecord> for ProducerRecord {
    /// As `From<&ConsumerRecord>`, without the clones.
    fn from(record: ConsumerRecord) -> Self {
        Self {
            topic: record.topic,
            partition: None,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: Some(record.timestamp).filter(|t| *t >= 0),
        }
    }
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: i32,
    /// The offset, or -1 when the broker does not say (acks=0).
    pub offset: i64,
    /// The record's timestamp: the broker's append time on LogAppendTime topics, else the
    /// create time that was sent.
    pub timestamp: i64,
}

/// Resolves when the broker acknowledged the record (or it failed for good).
///
/// Dropping it does not cancel the record.
#[derive(Debug)]
#[must_use = "a delivery future does nothing unless awaited, but the record is sent anyway"]
pub struct DeliveryFuture {
    batch: Arc<BatchResult>,
    index: u32,
    partition: i32,
    timestamp: i64,
    waker_slot: Option<usize>,
}

impl DeliveryFuture {
    /// The partition the record was put in.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if this.batch.poll(cx, &mut this.waker_slot).is_pending() {
                return Poll::Pending;
            }
            // A batch split in two: follow the record to the half that holds it.
            if let Some((part, index)) = this.batch.part_of(this.index) {
                this.batch = part;
                this.index = index;
                this.waker_slot = None;
                continue;
            }
            let (partition, index, timestamp) = (this.partition, this.index, this.timestamp);
            return match this.batch.outcome() {
                Some(Ok(ack)) => Poll::Ready(Ok(RecordMetadata {
                    partition,
                    offset: if ack.base_offset < 0 { -1 } else { ack.base_offset + i64::from(index) },
                    timestamp: if ack.log_append_time >= 0 { ack.log_append_time } else { timestamp },
                })),
                Some(Err(e)) => Poll::Ready(Err(e.clone())),
                None => Poll::Pending,
            };
        }
    }
}

/// A Kafka producer.
///
/// Cloning is cheap; clones share the batches and the sender task.
///
/// ```no_run
/// use klamm::{Producer, ProducerConfig, ProducerRecord};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
/// let delivery = producer.send(ProducerRecord::new("orders", "hello").key("k1")).await?;
/// let written = delivery.await?;
/// println!("partition {} offset {}", written.partition, written.offset);
/// producer.close(std::time::Duration::from_secs(10)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Dropped with the last `Producer` clone: tells the sender no more records will come.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.wake.notify_one();
    }
}

/// What `send`, `flush`, `close` and the sender task share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    pub(crate) state: Mutex<Accumulator>,
    /// Wakes the sender: a new batch, a full batch, a flush, close.
    pub(crate) wake: Notify,
    /// Buffer memory in bytes, as semaphore permits.
    pub(crate) memory: Semaphore,
    pub(crate) settings: BatchSettings,
    pub(crate) closed: AtomicBool,
    /// Serialises the transaction calls (init, send offsets, commit, abort).
    pub(crate) txn_calls: tokio::sync::Mutex<()>,
}

impl Producer {
    /// A producer with its own [`Client`]. Does not touch the network: metadata and the
    /// producer id are fetched when the first record is sent.
    ///
    /// Fails only on an invalid configuration. Must be called inside a tokio runtime.
    pub fn new(config: ProducerConfig) -> Result<Producer, Error> {
        let client = Client::new(config.client.clone())?;
        Producer::with_client(client, config)
    }

    /// A producer over an existing client (its `config.client` is ignored).
    pub fn with_client(client: Client, config: ProducerConfig) -> Result<Producer, Error> {
        config.validate()?;
        let settings = BatchSettings {
            batch_size: config.batch_size,
            compression: config.compression,
            level: config.compression_level,
            transactional: config.transactional(),
        };
        let accumulator = Accumulator {
            txn: config.transactional().then(transaction::TxnProgress::default),
            ..Accumulator::default()
        };
        let shared = Arc::new(Shared {
            client,
            memory: Semaphore::new(config.buffer_memory),
            config,
            state: Mutex::new(accumulator),
            wake: Notify::new(),
            settings,
            closed: AtomicBool::new(false),
            txn_calls: tokio::sync::Mutex::new(()),
        });
        let span = tracing::debug_span!("klamm.producer");
        tokio::spawn(tracing::Instrument::instrument(sender::run(Arc::clone(&shared)), span));
        Ok(Producer { handle: Arc::new(Handle { shared }) })
    }

    /// The client the producer sends through.
    pub fn client(&self) -> &Client {
        &self.handle.shared.client
    }

    /// The counters of this producer's client ([`Client::stats`]): records, bytes and batches
    /// the brokers acknowledged, retries, failed records, Produce requests and connections.
    /// With a client shared with consumers ([`Producer::with_client`]) their counters are in
    /// it too.
    pub fn stats(&self) -> crate::ClientStats {
        self.handle.shared.client.stats()
    }

    /// Queues `record` and returns a future of its acknowledgement.
    ///
    /// Waits while the buffer is full or the topic's metadata is not known yet, at most
    /// `max.block.ms`; then fails with [`ErrorKind::Timeout`] (or the topic's error, such as
    /// UNKNOWN_TOPIC_OR_PARTITION). A record larger than `max.request.size` fails at once with
    /// [`ErrorKind::RecordTooLarge`]. With idempotence (the default), records sent one after
    /// another to the same partition are written in that order, retries included. Without it, a
    /// batch that is retried can land after batches sent behind it, and with `acks=0` a batch
    /// the broker refuses is lost unnoticed, as in the Java client.
    ///
    /// Cancel safety: cancel safe. Dropped before it resolves, the record was not queued (and
    /// its buffer memory is given back); resolved, the record is queued and is sent whether or
    /// not the [`DeliveryFuture`] is awaited or dropped.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let shared = &self.handle.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let size = record.size();
        let max = shared.config.max_request_size;
        if size > max {
            return Err(Error::new(ErrorKind::RecordTooLarge { size, max }));
        }
        // `max.block.ms` counts from here; the clock is only read when something must wait.
        let deadline = Deadline::new(shared.config.max_block);
        let idempotent = shared.config.idempotent();
        let meta = self.topic_metadata(&record.topic, &deadline).await?;
        let partitions = NonZeroU32::new(meta.partition_count())
            .ok_or_else(|| topic_error(&record.topic, ErrorCode::LEADER_NOT_AVAILABLE))?;
        // Given back if this future is dropped or fails before the record is queued.
        let reserved = self.reserve(size, &deadline).await?;
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let new = NewRecord {
            timestamp,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
            memory: size,
        };
        let appended = loop {
            // `None`: no producer id yet. Batches get their sequence numbers when they close, in
            // queue order; the first records wait for the producer id so that their batches take
            // that path too. Checked under the append lock, so the hot path takes no extra lock.
            let attempt = 'locked: {
                let mut state = lock(&shared.state);
                if let Some(txn) = &state.txn {
                    if let Err(e) = txn.check_send() {
                        drop(state);
                        return Err(e);
                    }
                }
                if idempotent && state.producer.is_none() {
                    break 'locked None;
                }
                let target = match (record.partition, &record.key) {
                    (Some(p), _) => {
                        if u32::try_from(p).map_or(true, |p| p >= partitions.get()) {
                            drop(state);
                            return Err(Error::with_source(
                                ErrorKind::User,
                                None,
                                BadPartition(p, partitions.get()),
                            ));
                        }
                        Target::Partition(p)
                    }
                    (None, Some(key)) => Target::Partition(partition_for_key(key, partitions)),
                    (None, None) => Target::Sticky(&meta, partitions),
                };
                match state.append(&record.topic, target, &new, &shared.settings) {
                    Ok(appended) => Some(appended),
                    Err(e) => {
                        drop(state);
                        return Err(e);
                    }
                }
            };
            match attempt {
                Some(appended) => break appended,
                None => self.wait_for_producer_id(deadline.at()).await?,
            }
        };
        // The batch holds the memory now and gives it back when it is done.
        reserved.keep();
        let partition = appended.partition;
        if let Some(to_seal) = appended.closed {
            // Compressing a full batch takes a while: it runs in a task of its own (on another
            // worker of a multi-threaded runtime) while this caller goes on appending. The
            // batch already holds its place in the queue, so order is kept.
            let shared = Arc::clone(shared);
            tokio::spawn(async move { seal(&shared, to_seal) });
        } else if appended.new_batch {
            shared.wake.notify_one();
        }
        Ok(DeliveryFuture {
            batch: appended.result,
            index: appended.index,
            partition,
            timestamp,
            waker_slot: None,
        })
    }

    /// Sends every queued record now (ignoring `linger.ms`) and waits until each record sent
    /// before this call is acknowledged or failed, at most `timeout`.
    ///
    /// Returns how many of those records are still pending (0 when all are done).
    ///
    /// Cancel safety: cancel safe; dropping it only stops the waiting (the records are sent
    /// anyway).
    pub async fn flush(&self, timeout: Duration) -> usize {
        flush(&self.handle.shared, timeout).await
    }

    /// Stops accepting records, delivers what is queued within `timeout`, and fails what is
    /// left with [`ErrorKind::User`] ("closed"). Returns how many records were left. Later
    /// sends fail. The client's connections are closed when the producer had its own client.
    ///
    /// Cancel safety: the producer is closed for new records from the first poll of the
    /// future on; dropping it before it resolves leaves queued records to be sent (or failed
    /// at `delivery.timeout.ms`) in the background, and the connections open.
    pub async fn close(&self, timeout: Duration) -> usize {
        let shared = &self.handle.shared;
        shared.closed.store(true, Ordering::Release);
        lock(&shared.state).closing = true;
        let left = flush(shared, timeout).await;
        sender::abandon(shared, closed_error());
        left
    }

    /// Prepares a transactional producer (`transactional.id` set): finds its transaction
    /// coordinator, gets its producer id and epoch, which fences every older producer with the
    /// same `transactional.id` (their open transaction is aborted, their next call fails as
    /// fenced), and picks the transaction version (2, KIP-890, where the cluster has finalized
    /// `transaction.version` 2; else 1). Call it once, before the first
    /// [`begin_transaction`](Producer::begin_transaction).
    ///
    /// Fails with [`ErrorKind::Timeout`] (or a retriable error) when the coordinator could not
    /// be reached within `max.block.ms` (calling it again is safe), with a fatal
    /// [`ErrorKind::Transaction`] error when the producer may not use its `transactional.id`,
    /// and with [`ErrorKind::User`] for a producer without `transactional.id` or a second call.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use klamm::{Producer, ProducerConfig, ProducerRecord};
    ///
    /// # async fn example() -> Result<(), klamm::Error> {
    /// let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092").transactional_id("orders-copy-0"))?;
    /// producer.init_transactions().await?;
    /// producer.begin_transaction()?;
    /// producer.send(ProducerRecord::new("orders-copy", "o-1")).await?;
    /// producer.send(ProducerRecord::new("orders-copy", "o-2")).await?;
    /// match producer.commit_transaction().await {
    ///     Ok(()) => {}
    ///     Err(e) if e.is_abortable() => producer.abort_transaction().await?,
    ///     Err(e) => return Err(e), // fenced or fatal: this producer is done
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn init_transactions(&self) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let _one = shared.txn_calls.lock().await;
        tracing::Instrument::instrument(transaction::init(shared), txn_span(shared, "init")).await
    }

    /// Opens a transaction: the records sent from now until
    /// [`commit_transaction`](Producer::commit_transaction) become visible to `read_committed`
    /// consumers together, or (on [`abort_transaction`](Producer::abort_transaction)) never.
    /// Local: it sends nothing.
    ///
    /// Fails with [`ErrorKind::User`] before `init_transactions` or while a transaction is
    /// open, and with the fatal error of a fenced producer.
    pub fn begin_transaction(&self) -> Result<(), Error> {
        transaction::with_txn(&self.handle.shared, transaction::TxnProgress::begin)
    }

    /// Adds a consumer group's offsets to the open transaction: they are committed for the
    /// group when the transaction commits, and dropped if it aborts (exactly-once
    /// consume-process-produce). Each offset is a [`TransactionOffset`] (the next offset to
    /// consume), or a `(topic, partition, offset)` or `(TopicPartition, offset)` tuple.
    /// `group` is the consuming member's [`ConsumerGroupMetadata`]: the group coordinator
    /// refuses the offsets of a member that is no longer in the generation (KIP-447), which
    /// makes the transaction abortable.
    ///
    /// ```no_run
    /// use klamm::{ConsumerGroupMetadata, Producer};
    ///
    /// # async fn example(producer: &Producer, group: ConsumerGroupMetadata) -> Result<(), klamm::Error> {
    /// producer.send_offsets_to_transaction([("orders", 0, 1042), ("orders", 1, 977)], &group).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Errors: abortable ones (the member was fenced, the group is not authorised, retries ran
    /// out after `max.block.ms`) leave the transaction to be aborted; fatal ones end the producer.
    pub async fn send_offsets_to_transaction<O: Into<TransactionOffset>>(
        &self,
        offsets: impl IntoIterator<Item = O>,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let offsets = offsets.into_iter().map(Into::into).collect();
        let _one = shared.txn_calls.lock().await;
        let span = txn_span(shared, "send_offsets");
        tracing::Instrument::instrument(transaction::send_offsets(shared, offsets, group), span).await
    }

    /// Commits the open transaction: sends every queued record and waits for all of them (at
    /// most `delivery.timeout.ms`), then asks the coordinator to commit (retrying while it is
    /// busy or moving, at most `max.block.ms`).
    ///
    /// Errors: [`Error::is_abortable`] (a record of the transaction failed, records were still
    /// unacknowledged at `delivery.timeout.ms`): call
    /// [`abort_transaction`](Producer::abort_transaction) and begin again;
    /// [`Error::is_fatal`] (fenced by a newer producer with the same `transactional.id`, or
    /// not authorised): nothing of the transaction becomes visible; drop the producer.
    pub async fn commit_transaction(&self) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let _one = shared.txn_calls.lock().await;
        tracing::Instrument::instrument(transaction::end(shared, true), txn_span(shared, "commit")).await
    }

    /// Aborts the open transaction: records not sent yet are dropped (their delivery futures
    /// fail with an abortable error), those in flight are waited for, and the coordinator
    /// writes abort markers, so `read_committed` consumers never see any of them. Works after
    /// an abortable error too; fails only with a fatal error (or [`ErrorKind::User`] when no
    /// transaction is open).
    pub async fn abort_transaction(&self) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let _one = shared.txn_calls.lock().await;
        tracing::Instrument::instrument(transaction::end(shared, false), txn_span(shared, "abort")).await
    }

    /// The transaction version in use (1 or 2, KIP-890) once `init_transactions` succeeded;
    /// `None` before, and for a producer without `transactional.id`.
    pub fn transaction_version(&self) -> Option<u8> {
        let state = lock(&self.handle.shared.state);
        let txn = state.txn.as_ref()?;
        match txn.phase {
            transaction::Phase::Uninitialized => None,
            _ => Some(match txn.version {
                transaction::TxnVersion::V1 => 1,
                transaction::TxnVersion::V2 => 2,
            }),
        }
    }

    /// Metadata of `topic`, waiting (until `deadline`) while it is unknown or has no
    /// partitions yet.
    async fn topic_metadata(&self, topic: &str, deadline: &Deadline) -> Result<Arc<TopicMetadata>, Error> {
        let client = &self.handle.shared.client;
        if topic.is_empty() {
            return Err(Error::with_source(ErrorKind::User, None, EmptyTopic));
        }
        if let Some(meta) = client.metadata().topic(topic) {
            return Ok(Arc::clone(meta));
        }
        let deadline = deadline.at();
        let config = &self.handle.shared.config;
        let mut attempt = 0;
        // Why the attempts so far failed: when `max.block.ms` cuts an attempt short, this says
        // what kept the metadata away (an unreachable broker, say), not just that time ran out.
        let mut last_error: Option<Error> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(left, client.topic(topic)).await {
                Ok(result) => result,
                Err(_) => {
                    let cause = last_error.unwrap_or_else(|| Error::new(ErrorKind::Timeout));
                    return Err(blocked_error(topic, cause, config.max_block));
                }
            };
            let error = match result {
                Ok(meta) if meta.partition_count() > 0 => return Ok(meta),
                Ok(_) => {
                    client.invalidate_topic(topic);
                    topic_error(topic, ErrorCode::LEADER_NOT_AVAILABLE)
                }
                Err(e) if e.is_user_error() || e.is_authentication_error() => return Err(e),
                Err(e) => e,
            };
            let wait =
                crate::config::backoff(config.client.retry_backoff, config.client.retry_backoff_max, attempt);
            attempt += 1;
            if Instant::now() + wait >= deadline {
                return Err(blocked_error(topic, error, config.max_block));
            }
            last_error = Some(error);
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until the sender has a producer id (idempotence), at most until `deadline`.
    async fn wait_for_producer_id(&self, deadline: Instant) -> Result<(), Error> {
        let shared = &self.handle.shared;
        loop {
            {
                let state = lock(&shared.state);
                if state.producer.is_some() {
                    return Ok(());
                }
                if state.stopped {
                    return Err(closed_error());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::with_source(
                    ErrorKind::Timeout,
                    None,
                    NoProducerId(shared.config.max_block),
                ));
            }
            shared.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Takes `size` bytes of buffer memory, waiting until `deadline`. Cancel safe: dropped
    /// while waiting, it holds nothing; the memory it returns goes back unless kept.
    async fn reserve(&self, size: usize, deadline: &Deadline) -> Result<Reserved<'_>, Error> {
        let memory = &self.handle.shared.memory;
        let permits = size as u32;
        if let Ok(permit) = memory.try_acquire_many(permits) {
            return Ok(Reserved(Some(permit)));
        }
        let deadline = deadline.at();
        match tokio::time::timeout_at(deadline.into(), memory.acquire_many(permits)).await {
            Ok(Ok(permit)) => Ok(Reserved(Some(permit))),
            Ok(Err(_)) => Err(closed_error()),
            Err(_) => Err(Error::with_source(
                ErrorKind::Timeout,
                None,
                BufferFull(self.handle.shared.config.max_block),
            )),
        }
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("client", &self.handle.shared.client).finish()
    }
}

/// Buffer memory taken for one record: released when dropped, unless the record was queued
/// ([`Reserved::keep`]), whose batch then gives it back when it is done.
struct Reserved<'a>(Option<tokio::sync::SemaphorePermit<'a>>);

impl Reserved<'_> {
    fn keep(mut self) {
        if let Some(permit) = self.0.take() {
            permit.forget();
        }
    }
}

async fn flush(shared: &Arc<Shared>, timeout: Duration) -> usize {
    // Counted while this call waits, and uncounted when it ends however it ends (a caller
    // may drop the future): linger does not apply while any flush waits.
    struct Flushing<'a>(&'a Shared);
    impl Drop for Flushing<'_> {
        fn drop(&mut self) {
            lock(&self.0.state).flushing -= 1;
        }
    }
    let (waits, _flushing): (Vec<(Arc<BatchResult>, u32)>, Flushing<'_>) = {
        let mut state = lock(&shared.state);
        state.flushing += 1;
        let waits = state
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| p.queue.iter().chain(p.open.iter()))
            .map(|b| (Arc::clone(&b.result), b.records))
            .collect();
        (waits, Flushing(shared))
    };
    shared.wake.notify_one();
    let all = async {
        let mut stack: Vec<Arc<BatchResult>> = waits.iter().map(|(r, _)| Arc::clone(r)).collect();
        stack.reverse();
        while let Some(result) = stack.pop() {
            let mut slot = None;
            std::future::poll_fn(|cx| result.poll(cx, &mut slot)).await;
            if let Some(parts) = result.parts() {
                stack.extend(parts.iter().rev().map(|p| Arc::clone(&p.result)));
            }
        }
    };
    let _ = tokio::time::timeout(timeout, all).await;
    waits.iter().map(|(r, n)| r.pending(*n)).sum()
}

/// The span of one transaction call.
fn txn_span(shared: &Shared, call: &'static str) -> tracing::Span {
    let id = shared.config.transactional_id.as_deref().unwrap_or_default();
    tracing::debug_span!("klamm.transaction", call, transactional_id = id)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn closed_error() -> Error {
    Error::with_source(ErrorKind::User, None, ProducerClosed)
}

/// `send` waited `max.block.ms` for a topic: the error says why it gave up.
fn blocked_error(topic: &str, cause: Error, max_block: Duration) -> Error {
    match cause.kind() {
        ErrorKind::Broker(_) => cause,
        _ => Error::with_source(
            ErrorKind::Timeout,
            None,
            MetadataWait { topic: topic.to_owned(), max_block, cause },
        ),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections leave the accumulator consistent at every step that can panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
#[error("the producer was closed")]
struct ProducerClosed;

#[derive(Debug, thiserror::Error)]
#[error("the topic name is empty")]
struct EmptyTopic;

#[derive(Debug, thiserror::Error)]
#[error("partition {0} does not exist: the topic has {1} partitions")]
struct BadPartition(i32, u32);

#[derive(Debug, thiserror::Error)]
#[error("no producer id from InitProducerId within max.block.ms ({0:?})")]
struct NoProducerId(Duration);

#[derive(Debug, thiserror::Error)]
#[error("no buffer memory became free within max.block.ms ({0:?})")]
struct BufferFull(Duration);

#[derive(Debug, thiserror::Error)]
#[error("no metadata for topic {topic:?} within max.block.ms ({max_block:?}): {cause}")]
struct MetadataWait {
    topic: String,
    max_block: Duration,
    cause: Error,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::BytesMut;
    use klamm_protocol::api::api_versions::{ApiVersion, ApiVersionsResponse};
    use klamm_protocol::api::init_producer_id::InitProducerIdResponse;
    use klamm_protocol::api::metadata::{
        MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use klamm_protocol::api::produce::{PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
    use klamm_protocol::{decode_request_frame, encode_response, AnyRequest, ApiKey, Response};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn a_consumed_record_converts_with_its_headers_and_null_values() {
        let consumed = ConsumerRecord {
            topic: Arc::from("in"),
            partition: 3,
            offset: 9,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![Header::new("a", "1"), Header::null("b"), Header::new("a", "")],
            timestamp: 1_700_000_000_000,
            timestamp_type: klamm_protocol::records::TimestampType::CreateTime,
            high_watermark: 10,
            leader_epoch: Some(2),
        };
        let out = ProducerRecord::from(&consumed).to_topic("out");
        assert_eq!(&*out.topic, "out");
        assert_eq!(out.partition, None);
        assert_eq!(out.key, consumed.key);
        assert_eq!(out.value, None);
        assert_eq!(out.headers, consumed.headers);
        assert_eq!(out.timestamp, Some(1_700_000_000_000));
        let old = ConsumerRecord { timestamp: -1, ..consumed };
        assert_eq!(ProducerRecord::from(old).timestamp, None);
    }

    use super::*;

    /// A broker address that closes its first connection at once and then accepts connections
    /// without ever answering.
    async fn closes_then_hangs() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut first = true;
            while let Ok((socket, _)) = listener.accept().await {
                if !std::mem::take(&mut first) {
                    held.push(socket);
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_send_cut_short_by_max_block_says_why_the_metadata_did_not_come() {
        let addr = closes_then_hangs().await;
        let config = ProducerConfig::new(&addr).max_block(Duration::from_millis(600)).with_client(|c| {
            c.retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
                .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(5))
        });
        let producer = Producer::new(config).unwrap();
        let started = Instant::now();
        let e = producer.send(ProducerRecord::new("t", "v")).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(e.kind(), &ErrorKind::Timeout, "{e:?}");
        assert!(e.is_retriable());
        // The second attempt hangs until max.block.ms; the first one's failure is the cause.
        let text = e.to_string();
        assert!(text.contains("max.block.ms") && text.contains(&addr), "{text}");
    }

    /// One partition of a fake broker, judged as Kafka judges idempotent batches.
    #[derive(Default)]
    struct FakePartition {
        /// The producer's epoch and next expected sequence, once a batch of it was written.
        producer: Option<(i16, i32)>,
        /// The last five batches written: epoch, base sequence, base offset (for duplicates).
        recent: Vec<(i16, i32, i64)>,
        log_end: i64,
        produces: usize,
        /// How many Metadata requests were answered.
        metadata_requests: usize,
    }

    impl FakePartition {
        /// Appends a batch with this epoch, base sequence and record count, or refuses it.
        fn append(&mut self, epoch: i16, sequence: i32, records: i32) -> (ErrorCode, i64) {
            if let Some(&(_, _, base)) = self.recent.iter().find(|(e, s, _)| *e == epoch && *s == sequence) {
                return (ErrorCode::DUPLICATE_SEQUENCE_NUMBER, base);
            }
            let accepted = match self.producer {
                // Kafka holds no state for a producer it has not seen on the partition, and takes
                // any sequence as its first.
                None => true,
                Some((e, next)) if e == epoch => sequence == next,
                Some((e, _)) => epoch > e && sequence == 0,
            };
            if !accepted {
                return (ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
            }
            self.producer = Some((epoch, sequence + records));
            let base = self.log_end;
            self.log_end += i64::from(records);
            self.recent.push((epoch, sequence, base));
            if self.recent.len() > 5 {
                self.recent.remove(0);
            }
            (ErrorCode::NONE, base)
        }
    }

    async fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await.ok()?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).await.ok()?;
        Some(Bytes::from(frame))
    }

    async fn respond<R: Response>(stream: &mut TcpStream, correlation_id: i32, version: i16, body: &R) {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, correlation_id, version, body).expect("encodable");
        stream.write_all(&buf).await.expect("write");
    }

    /// A broker (node 0) with topic `t` of one partition, which it leads. Like a Kafka broker
    /// right after the topic was created, it answers the first Produce with
    /// NOT_LEADER_OR_FOLLOWER, after a pause in which a client can pipeline more.
    async fn new_topic_broker() -> (String, Arc<Mutex<FakePartition>>) {
        scripted_broker(Arc::new(|log: &mut FakePartition, n, epoch, sequence, count| {
            if n == 1 {
                Reply::After(Duration::from_millis(200), ErrorCode::NOT_LEADER_OR_FOLLOWER, -1)
            } else {
                let (code, base) = log.append(epoch, sequence, count);
                Reply::Now(code, base)
            }
        }))
        .await
    }

    /// How the fake broker answers a Produce.
    enum Reply {
        /// This code and base offset, at once.
        Now(ErrorCode, i64),
        /// This code and base offset, after a pause.
        After(Duration, ErrorCode, i64),
        /// No answer: the connection is closed.
        Close,
    }

    /// Decides the answer to the `n`th Produce (from 1) with this epoch, base sequence and
    /// record count; may append to the partition's log.
    type Script = Arc<dyn Fn(&mut FakePartition, usize, i16, i32, i32) -> Reply + Send + Sync>;

    /// Which node the `n`th Metadata answer (from 1) names as the partition's leader (the fake
    /// broker is node 0 and lists only itself).
    type LeaderScript = Arc<dyn Fn(usize) -> i32 + Send + Sync>;

    /// A broker (node 0) with topic `t` of one partition, which it leads, answering Produce
    /// requests as `script` says.
    async fn scripted_broker(script: Script) -> (String, Arc<Mutex<FakePartition>>) {
        scripted_cluster(script, Arc::new(|_| 0)).await
    }

    /// Like [`scripted_broker`], with Metadata answers naming the leader `leaders` says.
    async fn scripted_cluster(script: Script, leaders: LeaderScript) -> (String, Arc<Mutex<FakePartition>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let partition = Arc::new(Mutex::new(FakePartition::default()));
        let log = Arc::clone(&partition);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(
                    stream,
                    addr.port(),
                    Arc::clone(&log),
                    Arc::clone(&script),
                    Arc::clone(&leaders),
                ));
            }
        });
        (addr.to_string(), partition)
    }

    async fn serve(
        mut stream: TcpStream,
        port: u16,
        log: Arc<Mutex<FakePartition>>,
        script: Script,
        leaders: LeaderScript,
    ) {
        let wanted = [ApiKey::API_VERSIONS, ApiKey::METADATA, ApiKey::INIT_PRODUCER_ID, ApiKey::PRODUCE];
        while let Some(frame) = read_frame(&mut stream).await {
            let (header, body) = decode_request_frame(frame).expect("a valid request");
            let (id, version) = (header.correlation_id, header.api_version);
            match body {
                AnyRequest::ApiVersions(_) => {
                    let api_keys = klamm_protocol::api::any::IMPLEMENTED
                        .iter()
                        .filter(|(key, _, _)| wanted.contains(key))
                        .map(|&(key, min, max)| ApiVersion {
                            api_key: key.0,
                            min_version: min,
                            max_version: max,
                            ..Default::default()
                        })
                        .collect();
                    respond(
                        &mut stream,
                        id,
                        version,
                        &ApiVersionsResponse { api_keys, ..Default::default() },
                    )
                    .await;
                }
                AnyRequest::Metadata(_) => {
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.metadata_requests += 1;
                        log.metadata_requests
                    };
                    let partition = MetadataResponsePartition {
                        partition_index: 0,
                        leader_id: leaders(n),
                        replica_nodes: vec![0],
                        isr_nodes: vec![0],
                        ..Default::default()
                    };
                    let body = MetadataResponse {
                        brokers: vec![MetadataResponseBroker {
                            node_id: 0,
                            host: "127.0.0.1".into(),
                            port: i32::from(port),
                            ..Default::default()
                        }],
                        controller_id: 0,
                        topics: vec![MetadataResponseTopic {
                            name: Some("t".into()),
                            partitions: vec![partition],
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    respond(&mut stream, id, version, &body).await;
                }
                AnyRequest::InitProducerId(_) => {
                    let body =
                        InitProducerIdResponse { producer_id: 7, producer_epoch: 0, ..Default::default() };
                    respond(&mut stream, id, version, &body).await;
                }
                AnyRequest::Produce(request) => {
                    let records = request.topic_data[0].partition_data[0].records.clone().expect("records");
                    // Producer epoch, base sequence and record count from the batch header.
                    let epoch = i16::from_be_bytes([records[51], records[52]]);
                    let sequence = i32::from_be_bytes(records[53..57].try_into().unwrap());
                    let count = i32::from_be_bytes(records[57..61].try_into().unwrap());
                    let reply = {
                        let mut log = log.lock().unwrap();
                        log.produces += 1;
                        let n = log.produces;
                        script(&mut log, n, epoch, sequence, count)
                    };
                    let (code, base_offset) = match reply {
                        Reply::Now(code, base) => (code, base),
                        Reply::After(pause, code, base) => {
                            tokio::time::sleep(pause).await;
                            (code, base)
                        }
                        Reply::Close => return,
                    };
                    let partition = PartitionProduceResponse {
                        index: 0,
                        error_code: code.0,
                        base_offset,
                        ..Default::default()
                    };
                    let body = ProduceResponse {
                        responses: vec![TopicProduceResponse {
                            name: "t".into(),
                            partition_responses: vec![partition],
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    respond(&mut stream, id, version, &body).await;
                }
                other => panic!("unexpected request {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn batches_behind_a_first_one_that_failed_are_not_written_ahead_of_it() {
        let (addr, partition) = new_topic_broker().await;
        let config = ProducerConfig::new(&addr).batch_size(1024).with_client(|c| {
            c.retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
                .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(20))
        });
        let producer = Producer::new(config).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..2_000 {
            let record = ProducerRecord::new("t", format!("value {i}")).partition(0);
            deliveries.push(producer.send(record).await.unwrap());
        }
        let mut offsets = Vec::new();
        for d in deliveries {
            offsets.push(d.await.unwrap().offset);
        }
        assert_eq!(producer.close(Duration::from_secs(5)).await, 0);
        // Every record where it was sent: the first batch failed, was resent, and went first.
        let misplaced: HashMap<usize, i64> =
            offsets.iter().enumerate().filter(|(i, o)| **o != *i as i64).map(|(i, o)| (i, *o)).collect();
        assert!(
            misplaced.is_empty(),
            "{} records out of place, e.g. {:?}",
            misplaced.len(),
            misplaced.iter().next()
        );
        assert_eq!(partition.lock().unwrap().log_end, 2_000);
    }

    /// A batch written by the broker whose answer never came, while the cluster metadata named
    /// a leader that it did not list among its brokers (as it can while brokers restart): the
    /// batch must be retried (not failed: its outcome is unknown, and a failure used to bump
    /// the epoch and fail every batch of unknown outcome), with its sequence numbers, so the
    /// broker recognises it and it is written once.
    #[tokio::test]
    async fn a_batch_without_an_answer_survives_a_leader_missing_from_the_metadata() {
        let (addr, partition) = scripted_cluster(
            Arc::new(|log: &mut FakePartition, n, epoch, sequence, count| {
                let (code, base) = log.append(epoch, sequence, count);
                // Written, but the answer is lost with the connection.
                if n == 1 {
                    Reply::Close
                } else {
                    Reply::Now(code, base)
                }
            }),
            // After the first answers, the metadata names node 5 (not listed) for a while.
            Arc::new(|n| if (2..=4).contains(&n) { 5 } else { 0 }),
        )
        .await;
        let config = ProducerConfig::new(&addr).linger(Duration::ZERO).with_client(|c| {
            c.retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
                .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(20))
        });
        let producer = Producer::new(config).unwrap();
        let first = producer.send(ProducerRecord::new("t", "written once").partition(0)).await.unwrap();
        let first = first.await.expect("retried until the broker recognised it");
        let second = producer.send(ProducerRecord::new("t", "after it").partition(0)).await.unwrap();
        assert_eq!(second.await.expect("delivered").offset, 1);
        assert_eq!(producer.close(Duration::from_secs(5)).await, 0);
        let log = partition.lock().unwrap();
        assert!(log.metadata_requests >= 3, "the metadata named the missing leader");
        assert_eq!(log.log_end, 2, "the first record was written once, not twice");
        assert!(first.offset == 0 || first.offset == -1, "{first:?}");
    }

    /// A batch the broker refuses as too large (MESSAGE_TOO_LARGE) is split until each part
    /// fits; every record is written once, in order, with its own offset.
    #[tokio::test]
    async fn a_batch_too_large_for_the_broker_is_split() {
        let (addr, partition) =
            scripted_broker(Arc::new(|log: &mut FakePartition, _, epoch, sequence, count| {
                if count > 3 {
                    return Reply::Now(ErrorCode::MESSAGE_TOO_LARGE, -1);
                }
                let (code, base) = log.append(epoch, sequence, count);
                Reply::Now(code, base)
            }))
            .await;
        let config = ProducerConfig::new(&addr).linger(Duration::from_millis(50)).with_client(|c| {
            c.retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
                .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(20))
        });
        let producer = Producer::new(config).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..20 {
            let record = ProducerRecord::new("t", format!("value {i}")).partition(0);
            deliveries.push(producer.send(record).await.unwrap());
        }
        assert_eq!(producer.flush(Duration::from_secs(5)).await, 0, "flush follows the split parts");
        let mut offsets = Vec::new();
        for d in deliveries {
            offsets.push(d.await.expect("every record fits once split").offset);
        }
        assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
        assert_eq!(partition.lock().unwrap().log_end, 20);
        assert_eq!(producer.close(Duration::from_secs(5)).await, 0);
    }

    /// Dropping a `send` that waits for buffer memory, or a `flush` part way, leaks nothing:
    /// the memory comes back and linger applies again.
    #[tokio::test]
    async fn dropped_sends_and_flushes_leave_nothing_behind() {
        let (addr, _partition) =
            scripted_broker(Arc::new(|log: &mut FakePartition, _, epoch, sequence, count| {
                let (code, base) = log.append(epoch, sequence, count);
                Reply::After(Duration::from_millis(300), code, base)
            }))
            .await;
        let config = ProducerConfig::new(&addr)
            .buffer_memory(4096)
            .max_request_size(2048)
            .max_block(Duration::from_secs(10))
            .linger(Duration::from_secs(60));
        let producer = Producer::new(config).unwrap();
        let value = vec![7u8; 1500];
        let first = producer.send(ProducerRecord::new("t", value.clone()).partition(0)).await.unwrap();
        let second = producer.send(ProducerRecord::new("t", value.clone()).partition(0)).await.unwrap();
        let available = producer.handle.shared.memory.available_permits();
        // The third cannot get memory: cancelled while it waits.
        let third = tokio::time::timeout(
            Duration::from_millis(50),
            producer.send(ProducerRecord::new("t", value.clone()).partition(0)),
        )
        .await;
        assert!(third.is_err(), "the buffer is full");
        assert_eq!(producer.handle.shared.memory.available_permits(), available);
        // A flush dropped part way: linger must apply again afterwards.
        let _ =
            tokio::time::timeout(Duration::from_millis(10), producer.flush(Duration::from_secs(10))).await;
        assert_eq!(lock(&producer.handle.shared.state).flushing, 0);
        assert_eq!(producer.flush(Duration::from_secs(5)).await, 0);
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(producer.handle.shared.memory.available_permits(), 4096);
    }
}
