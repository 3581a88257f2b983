//! The partition consumer: reads assigned partitions from the positions the user chooses,
//! without a consumer group.
//!
//! Moving parts, one per file:
//! - `config.rs`: [`ConsumerConfig`], typed and by Kafka property name;
//! - `record.rs`: [`ConsumerRecord`], [`TopicPartition`], [`Offset`];
//! - `state.rs`: the state the consumer and its tasks share, and its locking rules;
//! - `fetcher.rs`: the driver task that plans fetches and offset lookups, and those tasks;
//! - `drain.rs`: turning one partition's fetched data into records (transactions, control
//!   batches, positions);
//! - `stall.rs`: telling the user what keeps partitions from being read (warnings, then a
//!   retriable error from `poll`).
//!
//! Concurrency: the [`Consumer`] is used through `&mut self`, by one task at a time, like the
//! Java consumer. It starts one driver task, which starts at most one fetch per broker. Fetched
//! data is queued undecoded; the consumer decodes it while handing out records, so decoding
//! (and decompression) runs in the task that polls, and the background tasks only do I/O.
//! Dropping the consumer aborts the driver and its requests without waiting; [`Consumer::close`]
//! stops them and waits, within a timeout.

mod config;
mod drain;
mod fetcher;
mod record;
mod stall;
mod state;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use record::{ConsumerRecord, Offset, TopicPartition};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use drain::CompletedFetch;
use state::{PartitionState, Position, Shared, State};

/// Reads records from assigned partitions.
///
/// Records come out in offset order per partition, through [`Consumer::poll`] (a batch, with a
/// timeout) or as a [`Stream`](futures_core::Stream) of single records. Errors about one
/// partition (OFFSET_OUT_OF_RANGE under `auto.offset.reset=none`, a corrupt batch, an
/// authorization failure) come out of the same calls, between records; retriable errors
/// (leader moves, broken connections) are handled inside and only logged.
///
/// ```no_run
/// use std::time::Duration;
/// use klamm::{Consumer, ConsumerConfig, Offset, OffsetReset, TopicPartition};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let config = ConsumerConfig::new("127.0.0.1:9092").auto_offset_reset(OffsetReset::Earliest);
/// let mut consumer = Consumer::new(config)?;
/// let orders = TopicPartition::new("orders", 0);
/// consumer.assign([orders.clone()]);
/// consumer.seek(&orders, Offset::Beginning)?;
/// for record in consumer.poll(Duration::from_secs(1)).await? {
///     println!("{} {:?}", record.offset, record.value);
/// }
/// consumer.close(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
    /// The fetch being drained; its partition's position lives here until the drain ends.
    current: Option<CompletedFetch>,
    driver: Option<JoinHandle<()>>,
    /// Whether the client was made by [`Consumer::new`] (and is closed with the consumer).
    owns_client: bool,
    /// The pending wait of the `Stream` implementation.
    waiter: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Consumer {
    /// A consumer with its own [`Client`] for `config.client`. Nothing is assigned yet.
    ///
    /// Fails on an invalid configuration. Must be called inside a tokio runtime.
    pub fn new(config: ConsumerConfig) -> Result<Consumer, Error> {
        config.validate()?;
        let client = Client::new(config.client.clone())?;
        Ok(Self::start(client, config, true))
    }

    /// A consumer over an existing client (`config.client` is ignored); closing the consumer
    /// leaves the client open.
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<Consumer, Error> {
        let mut check = config.clone();
        check.client = client.config().clone();
        check.validate()?;
        Ok(Self::start(client, config, false))
    }

    fn start(client: Client, config: ConsumerConfig, owns_client: bool) -> Consumer {
        let shared = Arc::new(Shared {
            client,
            config,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            wake: Notify::new(),
            closed: Default::default(),
        });
        let driver = tokio::spawn(fetcher::drive(Arc::clone(&shared)));
        Consumer { shared, current: None, driver: Some(driver), owns_client, waiter: None }
    }

    /// The client the consumer uses.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The counters of this consumer's client ([`Client::stats`]): records handed out, bytes
    /// and Fetch requests, failed Fetch requests and connections. With a client shared with a
    /// producer ([`Consumer::with_client`]) its counters are in it too.
    pub fn stats(&self) -> crate::ClientStats {
        self.shared.client.stats()
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// Reads exactly these partitions from now on. Partitions already assigned keep their
    /// position, buffered data and pause state; new ones start where `auto.offset.reset` says
    /// (with `none`, [`Consumer::poll`] reports an error for them until they are seeked).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let wanted: HashSet<TopicPartition> = partitions.into_iter().collect();
        let reset = self.shared.config.auto_offset_reset;
        let mut st = self.shared.lock();
        let dropped: Vec<TopicPartition> =
            st.partitions.keys().filter(|tp| !wanted.contains(*tp)).cloned().collect();
        for tp in &dropped {
            st.discard(tp);
            st.partitions.remove(tp);
            st.stalls.clear(tp);
        }
        if let Some(cur) = self.current.take() {
            let tp = TopicPartition { topic: Arc::clone(&cur.topic), partition: cur.partition };
            if dropped.contains(&tp) {
                st.buffered_bytes -= cur.size;
            } else {
                self.current = Some(cur);
            }
        }
        for tp in wanted {
            if st.partitions.contains_key(&tp) {
                continue;
            }
            let position = match reset {
                OffsetReset::Earliest => Position::Lookup(Offset::Beginning),
                OffsetReset::Latest => Position::Lookup(Offset::End),
                OffsetReset::None => Position::Failed,
            };
            let mut state = PartitionState::new(position);
            // Reported by the next poll unless a seek comes first.
            state.unpositioned = position == Position::Failed;
            if state.unpositioned {
                self.shared.ready.notify_one();
            }
            st.partitions.insert(tp, state);
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = self.shared.lock().partitions.keys().cloned().collect();
        out.sort();
        out
    }

    /// Moves a partition's position; buffered and in-flight data of the partition is dropped.
    /// [`Offset::Beginning`], [`Offset::End`] and [`Offset::Timestamp`] are looked up before the
    /// next fetch. Fails with [`ErrorKind::User`] when the partition is not assigned.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), Error> {
        self.seek_with_leader_epoch(tp, offset, None)
    }

    /// Like [`Consumer::seek`], for an offset whose record before it was written in leader
    /// epoch `leader_epoch` (a committed offset carries it): the first fetch then checks that
    /// the leader's log still holds what was read up to there, and a truncation below the
    /// offset is detected ([`ErrorKind::LogTruncation`], or a warning and a resume where the
    /// logs diverge, as `auto.offset.reset` says) instead of being skipped silently.
    ///
    /// ```no_run
    /// # use klamm::{Consumer, ConsumerConfig, Offset, TopicPartition};
    /// # fn example(consumer: &mut Consumer, tp: TopicPartition) -> Result<(), klamm::Error> {
    /// // Resume from a committed offset 42 that was committed with leader epoch 3.
    /// consumer.seek_with_leader_epoch(&tp, Offset::At(42), Some(3))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn seek_with_leader_epoch(
        &mut self,
        tp: &TopicPartition,
        offset: Offset,
        leader_epoch: Option<i32>,
    ) -> Result<(), Error> {
        let position = match offset {
            Offset::At(o) if o >= 0 => Position::Fetch(o),
            Offset::At(o) => {
                return Err(Error::with_source(
                    ErrorKind::User,
                    None,
                    NoPosition(format!("offset {o} is negative")),
                ))
            }
            other => Position::Lookup(other),
        };
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        if !st.partitions.contains_key(tp) {
            return Err(not_assigned(tp));
        }
        self.drop_current(&mut st, tp);
        st.discard(tp);
        if let Some(p) = st.partitions.get_mut(tp) {
            p.position = position;
            p.unpositioned = false;
            p.last_epoch = match position {
                Position::Fetch(_) => leader_epoch.filter(|e| *e >= 0),
                _ => None,
            };
        }
        drop(st);
        shared.wake.notify_one();
        Ok(())
    }

    /// Stops handing out and fetching records of these partitions until they are resumed.
    /// Their buffered data is dropped; their positions stay. Unassigned partitions are ignored.
    pub fn pause<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        for tp in partitions {
            if !st.partitions.contains_key(tp) {
                continue;
            }
            self.drop_current(&mut st, tp);
            st.discard(tp);
            // A paused partition is not read on purpose: not a stall.
            st.stalls.clear(tp);
            if let Some(p) = st.partitions.get_mut(tp) {
                p.paused = true;
            }
        }
    }

    /// Fetches paused partitions again.
    pub fn resume<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        let mut st = self.shared.lock();
        for tp in partitions {
            if let Some(p) = st.partitions.get_mut(tp) {
                p.paused = false;
            }
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let st = self.shared.lock();
        let mut out: Vec<TopicPartition> =
            st.partitions.iter().filter(|(_, p)| p.paused).map(|(tp, _)| tp.clone()).collect();
        out.sort();
        out
    }

    /// The offset of the next record [`Consumer::poll`] would hand out for `tp`; `None` while
    /// it is being looked up (or unknown after OFFSET_OUT_OF_RANGE with reset `none`, or when
    /// the partition is not assigned).
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        if let Some(cur) =
            self.current.as_ref().filter(|c| *c.topic == *tp.topic && c.partition == tp.partition)
        {
            return Some(cur.position);
        }
        match self.shared.lock().partitions.get(tp)?.position {
            Position::Fetch(o) => Some(o),
            _ => None,
        }
    }

    /// The partition's high watermark as of its last fetch.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared.lock().partitions.get(tp)?.high_watermark
    }

    /// Bytes of record data fetched but not yet handed out (counted per fetch response until it
    /// is drained). New fetches wait while this is at the prefetch limit.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().buffered_bytes
    }

    /// The largest [`Consumer::buffered_bytes`] has been.
    pub fn buffered_bytes_peak(&self) -> usize {
        self.shared.lock().buffered_peak
    }

    /// Up to `max.poll.records` records, waiting up to `timeout` for the first; an empty `Vec`
    /// when none arrived in time. An error about a partition is returned on its own, by the
    /// call after the records before it.
    ///
    /// Stalls: retriable failures (no broker at the address, a topic that does not exist, a
    /// partition without a leader) are retried inside. They are logged as warnings (at once
    /// for a connection or a missing topic) and, once an assigned partition has gone unread
    /// for `klamm.stall.timeout.ms` (30 s) or its topic has been missing for
    /// `topic.metadata.propagation.max.ms` (30 s), returned as one retriable error naming the
    /// partitions and the cause ([`Error::is_retriable`]; an UNKNOWN_TOPIC_OR_PARTITION
    /// [`Error::code`] for a missing topic, a [`ErrorKind::Connect`] naming the address for an
    /// unreachable broker). Polling on is the usual answer (the consumer keeps retrying, and
    /// the error comes again after each further bound while the cause lasts); stopping is
    /// the other. This follows librdkafka and the Java client, which also log such causes
    /// and keep retrying, and report a missing topic as an error after a bound.
    ///
    /// Cancel safety: cancel safe. Records are taken from the buffer only when the call
    /// returns them, so a poll dropped while it waits (in `tokio::select!`, say) loses none.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let max = self.shared.config.max_poll_records;
        loop {
            let mut out = Vec::new();
            while out.len() < max {
                match self.next_buffered() {
                    Some(Ok(r)) => out.push(r),
                    Some(Err(e)) if out.is_empty() => return Err(e),
                    Some(Err(e)) => {
                        self.shared.lock().errors.push_front(e);
                        break;
                    }
                    None => break,
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
            self.check_open()?;
            if tokio::time::timeout_at(deadline, self.shared.ready.notified()).await.is_err() {
                return Ok(out);
            }
        }
    }

    /// Stops fetching, waits for the background tasks to end and (for a consumer made with
    /// [`Consumer::new`]) closes its client, all within `timeout`. Fails with
    /// [`ErrorKind::Timeout`] when that took longer; the tasks are aborted then.
    pub async fn close(mut self, timeout: Duration) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(driver) = self.driver.take() {
            let abort = driver.abort_handle();
            if tokio::time::timeout_at(deadline, driver).await.is_err() {
                abort.abort();
                return Err(Error::new(ErrorKind::Timeout));
            }
        }
        if self.owns_client && tokio::time::timeout_at(deadline, self.shared.client.close()).await.is_err() {
            return Err(Error::new(ErrorKind::Timeout));
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::with_source(
                ErrorKind::User,
                None,
                NoPosition("the consumer is closed".to_owned()),
            ));
        }
        Ok(())
    }

    /// Drops the fetch being drained if it is of `tp`, keeping the position it reached.
    fn drop_current(&mut self, st: &mut State, tp: &TopicPartition) {
        if self.current.as_ref().is_some_and(|c| *c.topic == *tp.topic && c.partition == tp.partition) {
            if let Some(cur) = self.current.take() {
                st.finish_drain(&cur);
            }
        }
    }

    /// The next record or error that is already here, without waiting.
    fn next_buffered(&mut self) -> Option<Result<ConsumerRecord, Error>> {
        loop {
            if let Some(cur) = &mut self.current {
                match cur.next_record() {
                    Some(Ok(record)) => {
                        crate::stats::Counters::add(&self.shared.client.counters().records_fetched, 1);
                        return Some(Ok(record));
                    }
                    Some(Err(e)) => {
                        let cur = self.current.take()?;
                        let tp = TopicPartition { topic: Arc::clone(&cur.topic), partition: cur.partition };
                        let mut st = self.shared.lock();
                        st.finish_drain(&cur);
                        st.back_off(&tp, &self.shared.config);
                        drop(st);
                        self.shared.wake.notify_one();
                        let problem = NoPosition(format!("partition {tp} at offset {}", cur.position));
                        return Some(Err(Error::with_source(ErrorKind::Decode(e), None, problem)));
                    }
                    None => {
                        let cur = self.current.take()?;
                        self.shared.lock().finish_drain(&cur);
                        self.shared.wake.notify_one();
                    }
                }
            }
            let mut st = self.shared.lock();
            if let Some(e) = st.errors.pop_front() {
                return Some(Err(e));
            }
            if let Some(e) = st.stalls.take_due(&self.shared.config, std::time::Instant::now()) {
                return Some(Err(e));
            }
            if let Some((tp, p)) = st.partitions.iter_mut().find(|(_, p)| p.unpositioned) {
                p.unpositioned = false;
                return Some(Err(Error::with_source(
                    ErrorKind::User,
                    None,
                    NoPosition(format!("{tp} has no position and auto.offset.reset is none: seek first")),
                )));
            }
            let next = st.completed.pop_front()?;
            let tp = TopicPartition { topic: Arc::clone(&next.topic), partition: next.partition };
            let current =
                st.partitions.get(&tp).is_some_and(|p| p.generation == next.generation && !p.paused);
            if current {
                self.current = Some(next);
            } else {
                st.buffered_bytes -= next.size;
            }
        }
    }
}

impl futures_core::Stream for Consumer {
    type Item = Result<ConsumerRecord, Error>;

    /// One record or error at a time (errors as [`Consumer::poll`] returns them); ends
    /// (`None`) only once the consumer is closed. Dropping a pending `next()` loses no record.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.next_buffered() {
                this.waiter = None;
                return Poll::Ready(Some(item));
            }
            if this.shared.closed.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            let waiter = this.waiter.get_or_insert_with(|| {
                let shared = Arc::clone(&this.shared);
                Box::pin(async move { shared.ready.notified().await })
            });
            match waiter.as_mut().poll(cx) {
                Poll::Ready(()) => this.waiter = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Consumer {
    /// Aborts the background tasks; never blocks.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        let positions: HashMap<String, Position> =
            st.partitions.iter().map(|(tp, p)| (tp.to_string(), p.position)).collect();
        f.debug_struct("Consumer")
            .field("partitions", &positions)
            .field("buffered_bytes", &st.buffered_bytes)
            .finish()
    }
}

fn not_assigned(tp: &TopicPartition) -> Error {
    Error::with_source(ErrorKind::User, None, NoPosition(format!("{tp} is not assigned")))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoPosition(String);
