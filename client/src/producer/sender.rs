//! The sender task: turns queued batches into Produce requests and responses into outcomes.
//!
//! One task per producer runs [`run`]. Each round it takes the accumulator lock once to plan
//! (close lingered batches, expire old ones, rewind partitions, pick the batches to send), then
//! compresses closed batches and hands Produce requests to one *sink* task per broker outside
//! the lock. A sink writes its broker's requests in order, pipelined on one connection (so the
//! broker sees a partition's batches in sequence order), and reports each outcome on a channel;
//! the sender applies outcomes under the lock.
//!
//! Limits: per partition at most `max_in_flight` batches, all to one broker (with idempotence,
//! one until the partition's first acknowledgement; see the accumulator's docs); per broker at
//! most `max_in_flight` requests; per request at most one batch per partition and about
//! `max.request.size` bytes.
//!
//! Errors, per partition (the Java client's classification):
//! - connection lost, timeout, retriable broker codes: the partition rewinds and resends the
//!   same batches with the same sequence numbers after `retry.backoff.ms` (growing), until
//!   `delivery.timeout.ms`; leader errors and connection errors also drop the topic's
//!   metadata so the next round routes to the new leader. A request that never reached a
//!   broker (no connection, or the leader is not in the metadata yet) is retried the same way;
//!   the batches it carried are known not to be written;
//! - OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that follows one that failed: a rewind too;
//!   for the partition's first unacknowledged batch, or UNKNOWN_PRODUCER_ID: the broker holds
//!   a gap or lost our state, so that partition moves to a new epoch (sequences restart at 0)
//!   and resends;
//! - DUPLICATE_SEQUENCE_NUMBER: the batch was written before; success;
//! - MESSAGE_TOO_LARGE for a batch of several records: the batch is split in two halves that
//!   keep its sequence numbers, and each is sent on its own (again split if need be);
//! - anything else fails the batch's records.
//!
//! Epochs are per partition (see the accumulator's docs): one partition's trouble never fails
//! or re-stamps another partition's batches, and a batch whose outcome is unknown keeps its
//! sequence numbers until it is acknowledged or expires.
//!
//! The sender drains partitions starting one further each round (as the Java client rotates
//! its drain index), so that under load the first partitions do not take every request slot.
//!
//! Each sink reports its requests' outcomes in the order it sent them, whichever connection
//! they went out on. A request that timed out abandons its connection at once (as the Java
//! client disconnects): every request behind it fails with it, so no later batch of a partition
//! succeeds once an earlier one failed, and nothing sent after it can overtake its retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm_protocol::api::init_producer_id::InitProducerIdRequest;
use klamm_protocol::api::produce::{PartitionProduceData, ProduceRequest, ProduceResponse, TopicProduceData};
use klamm_protocol::ErrorCode;
use tokio::sync::mpsc;

use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};

use super::accumulator::{close_open, Accumulator, Batch, BatchAck, Part, Payload, Stamp, ToSeal};
use super::{lock, Shared};
use crate::client::{topic_error, ConnectionKind};
use crate::config::backoff;
use crate::error::{Error, ErrorKind};
use crate::stats::Counters;

/// One batch inside a request.
struct Sent {
    topic: Arc<str>,
    partition: i32,
    id: u64,
}

/// What a request task reports.
enum Event {
    Response {
        node: i32,
        sent: Vec<Sent>,
        /// Whether the request may have reached the broker. `false` when it failed before
        /// anything was written to a connection (no connection, no common version).
        reached: bool,
        result: Result<Option<ProduceResponse>, Error>,
    },
    /// A metadata refresh for these topics finished.
    Metadata(Vec<Arc<str>>),
    /// An AddPartitionsToTxn finished: partitions may be ready to send.
    PartitionsAdded,
}

/// The sender loop; returns when the producer is closed and everything is delivered, or
/// [`abandon`] stopped it.
pub(super) async fn run(shared: Arc<Shared>) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut sender = Sender {
        shared: Arc::clone(&shared),
        events: events_tx,
        broker_requests: HashMap::new(),
        sinks: HashMap::new(),
        refreshing: HashSet::new(),
        init_attempts: 0,
        init_retry_at: None,
        init_running: false,
        drain_start: 0,
        produce_cap: i16::MAX,
    };
    loop {
        let wake_at = match sender.round() {
            Some(at) => at,
            None => return,
        };
        let sleep = tokio::time::sleep_until(wake_at.into());
        tokio::select! {
            _ = shared.wake.notified() => {}
            event = events.recv() => {
                if let Some(event) = event {
                    sender.handle(event);
                }
                while let Ok(event) = events.try_recv() {
                    sender.handle(event);
                }
            }
            _ = sleep => {}
        }
    }
}

/// Writes the Produce requests for one broker in the order the sender made them, each as soon
/// as the previous one is on the socket (pipelined, never reordered), and reports each outcome
/// in that same order.
///
/// Reporting in order matters when the connection changes under a partition's batches: a
/// batch that failed on a connection that was cut must be reported before a later batch of
/// its partition that succeeded on the next connection. Otherwise the sender would take the
/// success first and send more batches behind the failed one, until more of them were written
/// than the broker remembers for de-duplication; the failed batch, resent then, would be
/// refused as out of order, though it is in the log.
async fn sink(
    client: crate::Client,
    node: i32,
    acks_zero: bool,
    mut requests: mpsc::UnboundedReceiver<(ProduceRequest, Vec<Sent>, i16)>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (outcomes, mut in_order) = mpsc::unbounded_channel::<SinkOutcome>();
    tokio::spawn(async move {
        while let Some(outcome) = in_order.recv().await {
            let event = match outcome {
                SinkOutcome::Known(event) => event,
                SinkOutcome::Pending(pending, sent) => {
                    let conn = pending.connection().clone();
                    let result = pending.response().await;
                    if let Err(e) = &result {
                        if matches!(e.kind(), ErrorKind::Timeout) {
                            // Every request behind this one on the connection fails with it,
                            // now (as the Java client disconnects on a request timeout): none
                            // may succeed once this one failed. Nothing sent after it
                            // overtakes its retry either.
                            conn.abandon(e.clone());
                        }
                    }
                    Event::Response { node, sent, reached: true, result: result.map(Some) }
                }
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    while let Some((request, sent, cap)) = requests.recv().await {
        // Set once the request is handed to a connection: from then on its outcome may be
        // unknown.
        let mut reached = false;
        let submitted = async {
            let conn = client.connection(node, ConnectionKind::Produce).await?;
            let version = conn.version_for::<ProduceRequest>()?.min(cap);
            if version < 3 {
                return Err(Error::new(ErrorKind::UnsupportedVersion {
                    api_key: klamm_protocol::ApiKey::PRODUCE,
                    broker_range: conn.broker_versions(klamm_protocol::ApiKey::PRODUCE),
                }));
            }
            reached = true;
            if acks_zero {
                conn.send_without_response(version, &request).await?;
                return Ok(None);
            }
            conn.submit(version, &request).await.map(Some)
        }
        .await;
        let outcome = match submitted {
            Ok(Some(pending)) => SinkOutcome::Pending(pending, sent),
            Ok(None) => SinkOutcome::Known(Event::Response { node, sent, reached: true, result: Ok(None) }),
            Err(e) => SinkOutcome::Known(Event::Response { node, sent, reached, result: Err(e) }),
        };
        // The reporter stops only when the sender is gone.
        let _ = outcomes.send(outcome);
    }
}

/// A request's outcome as the sink hands it to its reporter, in the order of the requests.
enum SinkOutcome {
    /// Submitted: the response (or its failure) is still to come.
    Pending(crate::connection::PendingResponse<ProduceRequest>, Vec<Sent>),
    /// Known already (never submitted, or no response expected).
    Known(Event),
}

/// Fails every queued record with `error` and stops the sender.
pub(super) fn abandon(shared: &Shared, error: Error) {
    let mut state = lock(&shared.state);
    state.stopped = true;
    let mut memory = 0;
    for topic in state.topics.values_mut() {
        for queue in &mut topic.partitions {
            for batch in queue.open.take().into_iter().chain(queue.queue.drain(..)) {
                memory += batch.memory;
                batch.result.complete(Err(error.clone()));
            }
            queue.sent = 0;
            queue.in_flight = 0;
        }
    }
    drop(state);
    shared.memory.add_permits(memory);
    shared.wake.notify_one();
}

/// Fails every batch that is not in flight with `error` (an aborted transaction's records), so
/// that only what is in flight remains to be waited for.
pub(super) fn discard_unsent(shared: &Shared, error: Error) {
    let memory = discard_unsent_locked(&mut lock(&shared.state), &error);
    shared.memory.add_permits(memory);
    shared.wake.notify_one();
}

/// [`discard_unsent`] under the lock; returns the buffer memory the batches held.
fn discard_unsent_locked(state: &mut super::accumulator::Accumulator, error: &Error) -> usize {
    let mut memory = 0;
    for topic in state.topics.values_mut() {
        for queue in &mut topic.partitions {
            if let Some(batch) = queue.open.take() {
                memory += batch.memory;
                batch.result.complete(Err(error.clone()));
            }
            for index in (0..queue.queue.len()).rev() {
                if !queue.queue[index].in_flight {
                    let batch = queue.remove(index).expect("in range");
                    memory += batch.memory;
                    batch.result.complete(Err(error.clone()));
                }
            }
            queue.rewind = false;
        }
    }
    memory
}

struct Sender {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    /// Requests in flight per broker.
    broker_requests: HashMap<i32, usize>,
    /// The request queue of each broker's sink task.
    sinks: HashMap<i32, mpsc::UnboundedSender<(ProduceRequest, Vec<Sent>, i16)>>,
    /// Topics with a metadata refresh under way.
    refreshing: HashSet<Arc<str>>,
    init_attempts: u32,
    init_retry_at: Option<Instant>,
    init_running: bool,
    /// Where the next round starts draining, among the partitions that have batches to send.
    drain_start: usize,
    /// The highest Produce version to send: 11 under transactions version 1, where v12 would
    /// ask the broker to add partitions implicitly.
    produce_cap: i16,
}

/// A request being put together for one broker.
#[derive(Default)]
struct Draft {
    topics: Vec<TopicProduceData>,
    sent: Vec<Sent>,
    bytes: usize,
}

impl Sender {
    /// One planning round. Returns when to run again at the latest, or `None` to stop.
    fn round(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let stats = shared.client.counters();
        let idempotent = config.idempotent();
        let transactional = config.transactional();
        let mut wake_at = now + Duration::from_secs(1);
        // Partitions that wait to join the transaction (v1), and a batch failure that fails it.
        let mut to_add: Vec<(Arc<str>, i32)> = Vec::new();
        let mut add_now: Option<Vec<(Arc<str>, i32)>> = None;
        let mut txn_failure: Option<Error> = None;
        let mut to_seal: Vec<ToSeal> = Vec::new();
        let mut drafts: HashMap<i32, Vec<Draft>> = HashMap::new();
        let mut missing: Vec<Arc<str>> = Vec::new();
        let mut released = 0usize;
        let metadata = shared.client.metadata();
        {
            let mut state = lock(&shared.state);
            if state.stopped {
                return None;
            }
            let nothing_in_flight = self.broker_requests.values().all(|&n| n == 0);
            if state.closing && state.is_empty() && nothing_in_flight {
                return None;
            }
            // The producer id: fetched before anything is sent (by `init_transactions` for a
            // transactional producer, which also moves it to new epochs: never the sender).
            if idempotent && !transactional && state.producer.is_none() {
                self.start_init(now, &mut wake_at);
            }
            if idempotent && !transactional && move_epochs(&mut state, stats, &mut released) {
                // The epoch cannot grow any further: a new producer id is needed.
                state.producer = None;
                self.start_init(now, &mut wake_at);
            }
            // A failed transaction sends nothing more: what is not in flight fails with the
            // transaction's error at once (so that a commit does not wait for it), as the
            // Java client aborts its undrained batches.
            let failed = state.txn.as_ref().and_then(|t| match &t.phase {
                super::transaction::Phase::Fatal(e) => Some(e.clone()),
                _ => t.error.clone(),
            });
            if let Some(e) = failed {
                released += discard_unsent_locked(&mut state, &e);
            }
            let producer = state.producer;
            let can_send = !idempotent || producer.is_some();
            // Under transactions version 1 only partitions added to the transaction are sent.
            let txn_added = state
                .txn
                .as_ref()
                .and_then(|t| (t.version == super::transaction::TxnVersion::V1).then(|| t.added.clone()));
            self.produce_cap = if txn_added.is_some() { 11 } else { i16::MAX };
            let linger_over = state.flushing > 0 || state.closing;
            // Partitions with batches to send, with their leaders; drained below in an order
            // that starts one further each round.
            let mut ready: Vec<(Arc<str>, usize, i32)> = Vec::new();
            for topic in state.topics.values_mut() {
                let name = Arc::clone(&topic.name);
                let meta = metadata.topic(&name);
                for (p, queue) in topic.partitions.iter_mut().enumerate() {
                    let partition = p as i32;
                    // Close the open batch once it lingered long enough, if it can go out now.
                    // While the partition waits (for its requests in flight, a leader, a retry,
                    // a new epoch), records keep joining the open batch up to `batch.size`, as
                    // they do in the Java client: sealing a small batch at every linger while
                    // the partition cannot send builds a queue of small batches, each request
                    // takes at most one of them, and a partition whose records come faster
                    // than one small batch per round trip falls behind for good, its backlog
                    // expiring at `delivery.timeout.ms`. A batch open for the whole delivery
                    // timeout is closed anyway, so that it expires.
                    if let Some(open) = &queue.open {
                        let due = open.created + config.linger;
                        let stale = open.created + config.delivery_timeout;
                        let leader_requests = meta
                            .and_then(|m| m.partition(partition))
                            .map(|p| p.leader)
                            .filter(|l| *l >= 0)
                            .map(|l| self.broker_requests.get(&l).copied().unwrap_or(0));
                        let can_go = can_send
                            && open_batch_can_go(queue, idempotent, config.max_in_flight, leader_requests);
                        if (linger_over || due <= now) && (can_go || stale <= now) {
                            if let Some(seal) = close_open(queue, &name, partition, producer) {
                                topic.sticky.on_new_batch(partition);
                                to_seal.push(seal);
                            }
                        } else if due > now {
                            wake_at = wake_at.min(due);
                        } else {
                            // Held back: an answer or a metadata refresh wakes the sender.
                            wake_at = wake_at.min(stale);
                        }
                    }
                    // Expire batches that waited too long (only when none is in flight, so
                    // no outcome is pending for them).
                    if queue.in_flight == 0 {
                        while let Some(front) = queue.queue.front() {
                            if front.created + config.delivery_timeout > now
                                || matches!(front.payload, Payload::Sealing)
                            {
                                break;
                            }
                            let batch = queue.remove(0).expect("front exists");
                            if batch.written {
                                released += complete_written(batch, stats);
                                continue;
                            }
                            queue.dropped(&batch);
                            released += batch.memory;
                            let error = expired(&name, &batch, config.delivery_timeout);
                            Counters::add(&stats.records_failed, u64::from(batch.records));
                            if transactional && txn_failure.is_none() {
                                txn_failure = Some(error.clone());
                            }
                            batch.result.complete(Err(error));
                        }
                    }
                    if let Some(front) = queue.queue.front() {
                        wake_at = wake_at.min(front.created + config.delivery_timeout);
                        warn_if_stalled(
                            queue,
                            &name,
                            partition,
                            meta.map(|m| &**m),
                            now,
                            config.delivery_timeout,
                        );
                    }
                    if queue.rewind && queue.in_flight == 0 {
                        match queue.retry_at {
                            Some(at) if at > now => wake_at = wake_at.min(at),
                            _ => {
                                queue.rewind = false;
                                queue.sent = 0;
                            }
                        }
                    }
                    if !can_send || queue.rewind || queue.needs_bump || queue.sent >= queue.queue.len() {
                        continue;
                    }
                    if let Some(added) = &txn_added {
                        if !added.contains(&(Arc::clone(&name), partition)) {
                            to_add.push((Arc::clone(&name), partition));
                            continue;
                        }
                    }
                    let Some(leader) =
                        meta.and_then(|m| m.partition(partition)).map(|p| p.leader).filter(|l| *l >= 0)
                    else {
                        if !missing.contains(&name) {
                            missing.push(Arc::clone(&name));
                        }
                        continue;
                    };
                    if queue.in_flight > 0 && queue.in_flight_node != leader {
                        continue;
                    }
                    ready.push((Arc::clone(&name), p, leader));
                }
            }
            let count = ready.len();
            if count > 0 {
                let start = self.drain_start % count;
                self.drain_start = self.drain_start.wrapping_add(1);
                for (name, p, leader) in ready.iter().cycle().skip(start).take(count) {
                    let Some(queue) = state.topics.get_mut(name).and_then(|t| t.partitions.get_mut(*p))
                    else {
                        continue;
                    };
                    self.drain(queue, name, *p as i32, *leader, producer, &mut drafts);
                }
            }
            if let Some(txn) = state.txn.as_mut() {
                if let Some(e) = txn_failure.take() {
                    txn.fail(&e);
                }
                if drafts.values().flatten().any(|d| !d.sent.is_empty()) {
                    txn.touched = true;
                }
                // One AddPartitionsToTxn at a time (it retries by itself); partitions that
                // come up meanwhile go in the next.
                if !to_add.is_empty() && !txn.adding && txn.error.is_none() {
                    txn.adding = true;
                    txn.touched = true;
                    add_now = Some(std::mem::take(&mut to_add));
                }
            }
        }
        if released > 0 {
            self.shared.memory.add_permits(released);
        }
        for seal in to_seal {
            let (topic, partition, id, sealed, stamp) = seal.seal();
            if let Some(batch) = lock(&self.shared.state).install(&topic, partition, id, sealed, stamp) {
                self.shared.memory.add_permits(batch.memory);
            }
            // Sealed batches can go out at once.
            wake_at = now;
        }
        for topic in missing {
            self.refresh(topic);
        }
        if let Some(partitions) = add_now {
            let events = self.events.clone();
            super::transaction::start_add(&self.shared, partitions, move || {
                let _ = events.send(Event::PartitionsAdded);
            });
        }
        for (node, drafts) in drafts {
            for draft in drafts.into_iter().filter(|d| !d.sent.is_empty()) {
                self.dispatch(node, draft);
            }
        }
        Some(wake_at)
    }

    /// Puts the partition's next batches into requests for `leader`, up to the limits: per
    /// partition `max_in_flight` (one until the partition's first acknowledgement under its
    /// epoch), per broker `max_in_flight` requests, per request `max.request.size`.
    fn drain(
        &self,
        queue: &mut super::accumulator::PartitionQueue,
        name: &Arc<str>,
        partition: i32,
        leader: i32,
        producer: Option<(i64, i16)>,
        drafts: &mut HashMap<i32, Vec<Draft>>,
    ) {
        let config = &self.shared.config;
        let idempotent = config.idempotent();
        let max_in_flight = config.max_in_flight;
        let limit = if idempotent && !queue.confirmed { 1 } else { max_in_flight };
        let mut request = 0;
        while queue.sent < queue.queue.len() && queue.in_flight < limit {
            let in_use = self.broker_requests.get(&leader).copied().unwrap_or(0);
            let drafts = drafts.entry(leader).or_default();
            if request >= drafts.len() {
                if in_use + drafts.len() >= max_in_flight {
                    break;
                }
                drafts.push(Draft::default());
            }
            let index = queue.sent;
            let records = queue.queue[index].records;
            if idempotent && queue.queue[index].stamp.is_none() {
                let stamp = queue.assign_stamp(producer, records);
                if stamp.is_none() {
                    break;
                }
                queue.queue[index].stamp = stamp;
            }
            let batch = &mut queue.queue[index];
            let Some(bytes) = batch.wire_bytes() else { break };
            let draft = &mut drafts[request];
            if draft.bytes > 0 && draft.bytes + bytes.len() > config.max_request_size {
                // This request is full; the batch goes in the next one.
                request += 1;
                continue;
            }
            batch.in_flight = true;
            batch.attempts += 1;
            draft.bytes += bytes.len();
            add_batch(draft, name, partition, batch.id, bytes);
            queue.sent += 1;
            queue.in_flight += 1;
            queue.in_flight_node = leader;
            request += 1;
        }
    }

    /// Starts InitProducerId in the background unless it runs or is backing off.
    fn start_init(&mut self, now: Instant, wake_at: &mut Instant) {
        if self.init_running {
            return;
        }
        if let Some(at) = self.init_retry_at.filter(|at| *at > now) {
            *wake_at = (*wake_at).min(at);
            return;
        }
        self.init_running = true;
        let shared = Arc::clone(&self.shared);
        let events = self.events.clone();
        tokio::spawn(async move {
            let request = InitProducerIdRequest {
                transactional_id: None,
                transaction_timeout_ms: i32::MAX,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            };
            let result = shared.client.send_any(&request).await.and_then(|r| {
                let code = ErrorCode(r.error_code);
                if code.is_err() {
                    return Err(Error::new(ErrorKind::Broker(code)));
                }
                Ok((r.producer_id, r.producer_epoch))
            });
            match result {
                Ok((id, epoch)) => {
                    tracing::debug!(producer_id = id, epoch, "got a producer id");
                    lock(&shared.state).producer = Some((id, epoch));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "InitProducerId failed");
                    fail_waiting_if_fatal(&shared, &e);
                }
            }
            // Reported as a metadata event: the sender only needs to run a round.
            let _ = events.send(Event::Metadata(Vec::new()));
        });
    }

    /// Refreshes a topic's metadata in the background (once at a time per topic).
    fn refresh(&mut self, topic: Arc<str>) {
        if !self.refreshing.insert(Arc::clone(&topic)) {
            return;
        }
        let client = self.shared.client.clone();
        let events = self.events.clone();
        let pause = self.shared.config.client.retry_backoff;
        tokio::spawn(async move {
            client.invalidate_topic(&topic);
            if let Err(e) = client.topic(&topic).await {
                tracing::debug!(%topic, error = %e, "metadata refresh failed");
                tokio::time::sleep(pause).await;
            }
            let _ = events.send(Event::Metadata(vec![topic]));
        });
    }

    /// Hands one Produce request to the sink of `node`, starting the sink if needed.
    fn dispatch(&mut self, node: i32, draft: Draft) {
        *self.broker_requests.entry(node).or_default() += 1;
        let config = &self.shared.config;
        let request = ProduceRequest {
            transactional_id: config.transactional_id.clone(),
            acks: config.acks.wire(),
            timeout_ms: i32::try_from(config.client.connection.request_timeout.as_millis())
                .unwrap_or(i32::MAX),
            topic_data: draft.topics,
            ..Default::default()
        };
        let sink = self.sinks.entry(node).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let acks_zero = config.acks == super::Acks::None;
            let span = tracing::debug_span!("klamm.produce.sink", node);
            let task = sink(self.shared.client.clone(), node, acks_zero, rx, self.events.clone());
            tokio::spawn(tracing::Instrument::instrument(task, span));
            tx
        });
        // The sink stops only when this sender is dropped.
        let _ = sink.send((request, draft.sent, self.produce_cap));
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Metadata(topics) => {
                if topics.is_empty() {
                    self.init_running = false;
                    if lock(&self.shared.state).producer.is_none() {
                        let config = &self.shared.config.client;
                        let wait =
                            backoff(config.retry_backoff, config.retry_backoff_max, self.init_attempts);
                        self.init_attempts += 1;
                        self.init_retry_at = Some(Instant::now() + wait);
                    } else {
                        self.init_attempts = 0;
                    }
                }
                for topic in topics {
                    self.refreshing.remove(&topic);
                }
            }
            Event::PartitionsAdded => {}
            Event::Response { node, sent, reached, result } => {
                if let Some(n) = self.broker_requests.get_mut(&node) {
                    *n = n.saturating_sub(1);
                }
                let stats = self.shared.client.counters();
                Counters::add(&stats.produce_requests, 1);
                if result.is_err() {
                    Counters::add(&stats.produce_request_errors, 1);
                }
                self.apply(sent, reached, result);
            }
        }
    }

    /// Applies a Produce outcome to the batches it carried. `reached`: whether the request
    /// may have reached the broker.
    fn apply(&mut self, sent: Vec<Sent>, reached: bool, result: Result<Option<ProduceResponse>, Error>) {
        let config = &self.shared.config;
        let stats = self.shared.client.counters();
        let mut released = 0usize;
        let mut invalidate: Vec<Arc<str>> = Vec::new();
        let mut splits: Vec<(Arc<str>, i32, u64)> = Vec::new();
        let transactional = config.transactional();
        let mut txn_failure: Option<Error> = None;
        let mut state = lock(&self.shared.state);
        let mut responses: HashMap<(&str, i32), PartitionAnswer> = HashMap::new();
        if let Ok(Some(response)) = &result {
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    responses.insert(
                        (topic.name.as_str(), p.index),
                        PartitionAnswer {
                            code: ErrorCode(p.error_code),
                            base_offset: p.base_offset,
                            log_append_time: p.log_append_time_ms,
                            log_start_offset: p.log_start_offset,
                            message: p.error_message.clone(),
                        },
                    );
                }
            }
        }
        for s in &sent {
            let Some(queue) =
                state.topics.get_mut(&*s.topic).and_then(|t| t.partitions.get_mut(s.partition as usize))
            else {
                continue;
            };
            let Some(index) = queue.position(s.id) else { continue };
            queue.queue[index].in_flight = false;
            queue.in_flight -= 1;
            let records = queue.queue[index].records;
            let outcome = match &result {
                Ok(None) => Outcome::Done(BatchAck { base_offset: -1, log_append_time: -1 }),
                Ok(Some(_)) => match responses.get(&(&*s.topic, s.partition)) {
                    Some(answer) => {
                        if matches!(
                            answer.code,
                            ErrorCode::REQUEST_TIMED_OUT | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                        ) {
                            // The leader appended it, but not enough replicas confirmed in time.
                            queue.queue[index].maybe_written = true;
                        }
                        classify(answer, index, records, &s.topic)
                    }
                    None => {
                        Outcome::Retry(Error::new(ErrorKind::Broker(ErrorCode::UNKNOWN_SERVER_ERROR)), false)
                    }
                },
                // Never written to a connection: the batch is known not to be written.
                Err(e) if !reached && e.is_retriable() => Outcome::Retry(e.clone(), true),
                Err(e) if e.is_retriable() => {
                    // No answer: the broker may have written it.
                    queue.queue[index].maybe_written = true;
                    Outcome::Retry(e.clone(), true)
                }
                Err(e) => {
                    if reached {
                        queue.queue[index].maybe_written = true;
                    }
                    Outcome::Fail(e.clone())
                }
            };
            let batch = &mut queue.queue[index];
            let outcome = match outcome {
                Outcome::Retry(e, _) | Outcome::Bump(e, _) if batch.attempts > config.retries => {
                    Outcome::Fail(e)
                }
                // A transactional producer never moves to a new epoch on its own: the
                // transaction fails, and aborting it gets the new epoch from the coordinator.
                Outcome::Bump(e, _) if transactional => Outcome::Fail(e),
                other => other,
            };
            // The broker wrote it (a later batch was acknowledged): an out-of-order answer
            // only means its sequence numbers left the broker's de-duplication window, and
            // sending it again under a new epoch would write it twice.
            let outcome = match outcome {
                Outcome::Bump(e, _) | Outcome::Fail(e) if batch.written => {
                    tracing::debug!(topic = %s.topic, partition = s.partition, error = %e, "a batch the broker wrote (a later one was acknowledged) completes without its offset");
                    Outcome::Done(BatchAck { base_offset: -1, log_append_time: -1 })
                }
                other => other,
            };
            let bump = matches!(outcome, Outcome::Bump(..));
            match outcome {
                Outcome::Done(ack) => {
                    // The broker takes a producer's sequence numbers in order: the batches
                    // before this one under the same producer id and epoch were written.
                    if let Some(stamp) = queue.queue[index].stamp {
                        for earlier in queue.queue.iter_mut().take(index) {
                            if earlier
                                .stamp
                                .is_some_and(|e| e.producer_id == stamp.producer_id && e.epoch == stamp.epoch)
                            {
                                earlier.written = true;
                            }
                        }
                    }
                    let batch = queue.remove(index).expect("present");
                    Counters::add(&stats.batches_sent, 1);
                    Counters::add(&stats.records_sent, u64::from(batch.records));
                    Counters::add(&stats.bytes_sent, batch.size() as u64);
                    queue.confirmed |= batch.stamp.is_some();
                    released += batch.memory;
                    batch.result.complete(Ok(ack));
                }
                Outcome::Retry(e, stale_metadata) | Outcome::Bump(e, stale_metadata) => {
                    if bump {
                        // Moves to a new epoch once nothing of it is in flight (next rounds).
                        tracing::info!(topic = %s.topic, partition = s.partition, error = %e, "the broker holds no batch of this partition beyond the last acknowledged one: moving it to a new producer epoch");
                        queue.needs_bump = true;
                    }
                    tracing::debug!(topic = %s.topic, partition = s.partition, error = %e, "retrying a batch");
                    let attempt = batch.attempts;
                    Counters::add(&stats.batch_retries, 1);
                    batch.last_error = Some(e);
                    queue.rewind = true;
                    let c = &config.client;
                    queue.retry_at = Some(
                        Instant::now()
                            + backoff(c.retry_backoff, c.retry_backoff_max, attempt.saturating_sub(1)),
                    );
                    if stale_metadata && !invalidate.contains(&s.topic) {
                        invalidate.push(Arc::clone(&s.topic));
                    }
                }
                Outcome::Split(e) => {
                    tracing::debug!(topic = %s.topic, partition = s.partition, records, error = %e, "splitting a batch the broker found too large");
                    batch.last_error = Some(e);
                    queue.rewind = true;
                    queue.retry_at = None;
                    splits.push((Arc::clone(&s.topic), s.partition, s.id));
                }
                Outcome::Fail(e) => {
                    let batch = queue.remove(index).expect("present");
                    Counters::add(&stats.records_failed, u64::from(batch.records));
                    queue.dropped(&batch);
                    released += batch.memory;
                    tracing::debug!(topic = %s.topic, partition = s.partition, error = %e, "a batch failed");
                    if transactional && txn_failure.is_none() {
                        txn_failure = Some(super::transaction::transaction_error_of(&e));
                    }
                    batch.result.complete(Err(e));
                }
            }
        }
        if let (Some(txn), Some(e)) = (state.txn.as_mut(), txn_failure) {
            txn.fail(&e);
        }
        drop(state);
        if released > 0 {
            self.shared.memory.add_permits(released);
        }
        for topic in invalidate {
            self.shared.client.invalidate_topic(&topic);
        }
        for (topic, partition, id) in splits {
            split(&self.shared, &topic, partition, id);
        }
    }
}

/// A partition's answer in a Produce response.
struct PartitionAnswer {
    code: ErrorCode,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    message: Option<String>,
}

enum Outcome {
    Done(BatchAck),
    /// Resend later with the same sequence numbers; `true` when the topic's metadata may be
    /// stale.
    Retry(Error, bool),
    /// Resend once the partition moved to a new epoch.
    Bump(Error, bool),
    /// Too large for the broker: split in two and resend both halves.
    Split(Error),
    Fail(Error),
}

/// What to do with a batch of `records` records, given its partition's answer. `index` is the
/// batch's place in its queue: an out-of-order error for a batch behind another
/// unacknowledged one only means that one failed first.
fn classify(answer: &PartitionAnswer, index: usize, records: u32, topic: &str) -> Outcome {
    let code = answer.code;
    let error = || match answer.message.as_deref() {
        Some(m) if !m.is_empty() => {
            Error::with_source(ErrorKind::Broker(code), None, BrokerMessage(topic.to_owned(), m.to_owned()))
        }
        _ => topic_error(topic, code),
    };
    match code {
        ErrorCode::NONE => Outcome::Done(BatchAck {
            base_offset: answer.base_offset,
            log_append_time: answer.log_append_time,
        }),
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
            Outcome::Done(BatchAck { base_offset: -1, log_append_time: -1 })
        }
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER if index > 0 => Outcome::Retry(error(), false),
        // Without the log start offset the broker could not say whether it lost our state
        // (the partition may be moving): ask again, as the Java client does.
        ErrorCode::UNKNOWN_PRODUCER_ID if answer.log_start_offset < 0 => Outcome::Retry(error(), true),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
        | ErrorCode::UNKNOWN_PRODUCER_ID
        | ErrorCode::INVALID_PRODUCER_EPOCH => Outcome::Bump(error(), false),
        ErrorCode::MESSAGE_TOO_LARGE if records > 1 => Outcome::Split(error()),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::KAFKA_STORAGE_ERROR
        | ErrorCode::FENCED_LEADER_EPOCH => Outcome::Retry(error(), true),
        c if c.is_retriable() => Outcome::Retry(error(), false),
        _ => Outcome::Fail(error()),
    }
}

/// Whether a partition's open batch, once closed, would go out in this round: nothing queued
/// before it, no retry or epoch change pending, room for one more request in flight on the
/// partition and on its leader (`leader_requests`: the leader's requests in flight, `None`
/// without a leader).
fn open_batch_can_go(
    queue: &super::accumulator::PartitionQueue,
    idempotent: bool,
    max_in_flight: usize,
    leader_requests: Option<usize>,
) -> bool {
    let limit = if idempotent && !queue.confirmed { 1 } else { max_in_flight };
    !queue.rewind
        && !queue.needs_bump
        && queue.sent >= queue.queue.len()
        && queue.in_flight < limit
        && leader_requests.is_some_and(|n| n < max_in_flight)
}

/// Moves every partition that waits for a new epoch, and has nothing in flight, to one: the
/// producer's newest epoch when the partition is on an older one, else the newest bumped by
/// one (once per round; the partitions that move in the same round share it). Returns `true`
/// when the epoch cannot grow any more, so that a new producer id must be fetched first.
///
/// Batches known to be written ([`Batch::written`]) are not moved: they complete as written
/// (their buffer memory is added to `released`).
fn move_epochs(state: &mut Accumulator, stats: &Counters, released: &mut usize) -> bool {
    let Some(mut newest) = state.producer else { return false };
    for topic in state.topics.values_mut() {
        for (p, queue) in topic.partitions.iter_mut().enumerate() {
            if !queue.needs_bump || queue.in_flight > 0 {
                continue;
            }
            if queue.needs_newer_than(newest) {
                if newest.1 == i16::MAX {
                    state.producer = Some(newest);
                    return true;
                }
                newest = (newest.0, newest.1 + 1);
                tracing::debug!(producer_id = newest.0, epoch = newest.1, "bumping the producer epoch");
            }
            tracing::debug!(topic = %topic.name, partition = p, epoch = newest.1, "a partition moves to a new producer epoch");
            for batch in queue.move_to(newest) {
                tracing::debug!(topic = %topic.name, partition = p, "a batch the broker wrote (a later one was acknowledged) completes without its offset");
                *released += complete_written(batch, stats);
            }
        }
    }
    state.producer = Some(newest);
    false
}

/// Completes a batch known to be written whose own answer did not say where
/// ([`Batch::written`]): its records are in the log, their offsets unknown (-1), as for a
/// duplicate of an old batch. Returns its buffer memory.
fn complete_written(batch: Batch, stats: &Counters) -> usize {
    Counters::add(&stats.batches_sent, 1);
    Counters::add(&stats.records_sent, u64::from(batch.records));
    Counters::add(&stats.bytes_sent, batch.size() as u64);
    batch.result.complete(Ok(BatchAck { base_offset: -1, log_append_time: -1 }));
    batch.memory
}

/// Splits batch `id` of a partition, which the broker refused as too large, into two halves
/// that take its place in the queue with its sequence numbers (the broker wrote none of it)
/// and its creation time (`delivery.timeout.ms` still counts from the first send). The
/// records' delivery futures follow them ([`BatchResult::split_into`]). Decoding and
/// compressing again run outside the lock: the sender is the only one that moves sent batches.
fn split(shared: &Shared, topic: &str, partition: i32, id: u64) {
    let taken = {
        let state = lock(&shared.state);
        state
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .and_then(|q| q.position(id).map(|i| &q.queue[i]))
            .and_then(|b| match &b.payload {
                Payload::Sealed(bytes, _) => Some((bytes.clone(), b.stamp, b.records)),
                _ => None,
            })
    };
    let Some((bytes, stamp, records)) = taken else { return };
    let halves = rebuild_halves(&bytes, stamp, records, &shared.settings);
    let mut state = lock(&shared.state);
    let mut next_id = state.next_batch_id;
    let Some(queue) = state.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize))
    else {
        return;
    };
    let Some(index) = queue.position(id) else { return };
    let halves = match halves {
        Ok(halves) => halves,
        Err(e) => {
            // Cannot happen for a batch this producer built; fail it rather than loop.
            let batch = queue.remove(index).expect("present");
            queue.dropped(&batch);
            shared.memory.add_permits(batch.memory);
            batch.result.complete(Err(e));
            return;
        }
    };
    let original = queue.queue.remove(index).expect("present");
    let mut parts = Vec::with_capacity(halves.len());
    let mut memory_left = original.memory;
    for (i, (bytes, half_stamp, count, first)) in halves.into_iter().enumerate() {
        // Memory is shared out by record count; the last half takes the rest.
        let memory = if i == 1 {
            memory_left
        } else {
            (original.memory as u64 * u64::from(count) / u64::from(records.max(1))) as usize
        };
        memory_left -= memory;
        let result = Arc::new(super::accumulator::BatchResult::default());
        parts.push(Part { first, records: count, result: Arc::clone(&result) });
        let batch = Batch {
            id: next_id,
            payload: Payload::Sealed(bytes, half_stamp),
            records: count,
            memory,
            result,
            created: original.created,
            stamp: half_stamp,
            attempts: original.attempts,
            last_error: original.last_error.clone(),
            in_flight: false,
            maybe_written: false,
            written: false,
        };
        next_id += 1;
        queue.queue.insert(index + i, batch);
    }
    if index < queue.sent {
        // The original counted as sent; both halves do (until the rewind).
        queue.sent += 1;
    }
    state.next_batch_id = next_id;
    drop(state);
    original.result.split_into(parts);
}

/// Half of a split batch: its bytes, stamp, record count, and the index of its first record
/// in the batch it came from.
type Half = (Bytes, Option<Stamp>, u32, u32);

/// The records of a sealed batch rebuilt as two batches: (bytes, stamp, records, index of the
/// first record in the original). The second half's sequence numbers follow the first's.
fn rebuild_halves(
    bytes: &Bytes,
    stamp: Option<Stamp>,
    records: u32,
    settings: &super::accumulator::BatchSettings,
) -> Result<Vec<Half>, Error> {
    let batch = RecordBatches::new(bytes.clone())
        .next()
        .ok_or_else(|| Error::with_message(ErrorKind::User, "a batch to split holds no records"))?
        .map_err(|e| Error::new(ErrorKind::Decode(e)))?;
    let first_count = records / 2;
    let mut halves = Vec::with_capacity(2);
    let mut builder = None;
    let mut first_index = 0u32;
    let mut half_stamp = stamp;
    for (i, record) in batch.records().map_err(|e| Error::new(ErrorKind::Decode(e)))?.enumerate() {
        let record = record.map_err(|e| Error::new(ErrorKind::Decode(e)))?;
        let i = i as u32;
        if i == first_count && i > 0 {
            if let Some(b) = builder.take() {
                halves.push(finish_half(b, half_stamp, i - first_index, first_index)?);
            }
            half_stamp = stamp.map(|s| Stamp {
                base_sequence: ((i64::from(s.base_sequence) + i64::from(i)) % (i64::from(i32::MAX) + 1))
                    as i32,
                ..s
            });
            first_index = i;
        }
        let b = builder.get_or_insert_with(|| {
            // The halves keep the batch's transactional bit: without it a read_committed
            // consumer would take them for records outside any transaction.
            let b = RecordBatchBuilder::new()
                .compression(settings.compression)
                .compression_level(settings.level)
                .transactional(settings.transactional);
            match half_stamp {
                Some(s) => b.producer(s.producer_id, s.epoch, s.base_sequence),
                None => b,
            }
        });
        let headers = record.headers().iter().map(|h| (h.key, h.value));
        b.push_with_headers(record.timestamp(), record.key(), record.value(), headers)
            .map_err(Error::from)?;
    }
    if let Some(b) = builder.take() {
        let count = records - first_index;
        halves.push(finish_half(b, half_stamp, count, first_index)?);
    }
    Ok(halves)
}

fn finish_half(
    builder: RecordBatchBuilder,
    stamp: Option<Stamp>,
    count: u32,
    first: u32,
) -> Result<Half, Error> {
    let bytes = builder.finish().map_err(Error::from)?.freeze();
    Ok((bytes, stamp, count, first))
}

fn add_batch(draft: &mut Draft, topic: &Arc<str>, partition: i32, id: u64, bytes: Bytes) {
    let data = PartitionProduceData { index: partition, records: Some(bytes), ..Default::default() };
    match draft.topics.iter_mut().find(|t| *t.name == **topic) {
        Some(t) => t.partition_data.push(data),
        None => draft.topics.push(TopicProduceData {
            name: topic.to_string(),
            partition_data: vec![data],
            ..Default::default()
        }),
    }
    draft.sent.push(Sent { topic: Arc::clone(topic), partition, id });
}

/// Warns (at most every 10 s per partition) when a partition's oldest batch has waited half
/// of `delivery.timeout.ms`: it says what holds the partition back, long before its records
/// fail.
fn warn_if_stalled(
    queue: &mut super::accumulator::PartitionQueue,
    topic: &str,
    partition: i32,
    meta: Option<&crate::metadata::TopicMetadata>,
    now: Instant,
    delivery_timeout: Duration,
) {
    let Some(front) = queue.queue.front() else { return };
    let waited = now.saturating_duration_since(front.created);
    if waited < delivery_timeout / 2 || queue.stall_warned.is_some_and(|t| now < t + Duration::from_secs(10))
    {
        return;
    }
    queue.stall_warned = Some(now);
    let leader = meta.and_then(|m| m.partition(partition)).map(|p| p.leader);
    tracing::warn!(
        topic,
        partition,
        waited_ms = waited.as_millis() as u64,
        queued = queue.queue.len(),
        sent = queue.sent,
        in_flight = queue.in_flight,
        in_flight_node = queue.in_flight_node,
        leader = ?leader,
        rewind = queue.rewind,
        retry_in_ms = ?queue.retry_at.map(|at| at.saturating_duration_since(now).as_millis() as u64),
        needs_bump = queue.needs_bump,
        epoch = ?queue.producer,
        attempts = front.attempts,
        last_error = ?front.last_error.as_ref().map(ToString::to_string),
        "the oldest batch of a partition has waited half of delivery.timeout.ms"
    );
}

fn expired(topic: &str, batch: &Batch, timeout: Duration) -> Error {
    let cause = batch
        .last_error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "no attempt finished".to_owned());
    Error::with_source(
        ErrorKind::Timeout,
        None,
        Expired { topic: topic.to_owned(), records: batch.records, timeout, cause },
    )
}

/// A fatal InitProducerId error (authorization, unsupported) fails everything queued: without a
/// producer id nothing can be sent.
fn fail_waiting_if_fatal(shared: &Shared, error: &Error) {
    if error.is_retriable() {
        return;
    }
    abandon(shared, error.clone());
}

#[derive(Debug, thiserror::Error)]
#[error("{records} records for topic {topic:?} were not acknowledged within delivery.timeout.ms ({timeout:?}); last error: {cause}")]
struct Expired {
    topic: String,
    records: u32,
    timeout: Duration,
    cause: String,
}

#[derive(Debug, thiserror::Error)]
#[error("topic {0:?}: {1}")]
struct BrokerMessage(String, String);

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: ErrorCode) -> PartitionAnswer {
        PartitionAnswer { code, base_offset: -1, log_append_time: -1, log_start_offset: 0, message: None }
    }

    #[test]
    fn classification_follows_the_java_client() {
        let t = "t";
        let ok = PartitionAnswer { base_offset: 5, ..answer(ErrorCode::NONE) };
        assert!(matches!(classify(&ok, 0, 1, t), Outcome::Done(BatchAck { base_offset: 5, .. })));
        assert!(matches!(classify(&answer(ErrorCode::DUPLICATE_SEQUENCE_NUMBER), 0, 1, t), Outcome::Done(_)));
        assert!(matches!(
            classify(&answer(ErrorCode::NOT_LEADER_OR_FOLLOWER), 0, 1, t),
            Outcome::Retry(_, true)
        ));
        assert!(matches!(
            classify(&answer(ErrorCode::NOT_ENOUGH_REPLICAS), 0, 1, t),
            Outcome::Retry(_, false)
        ));
        // The leader may hold these: resent with the same sequence numbers, never re-stamped.
        assert!(matches!(
            classify(&answer(ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND), 0, 1, t),
            Outcome::Retry(_, false)
        ));
        assert!(matches!(classify(&answer(ErrorCode::REQUEST_TIMED_OUT), 0, 1, t), Outcome::Retry(_, false)));
        assert!(matches!(
            classify(&answer(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER), 2, 1, t),
            Outcome::Retry(..)
        ));
        assert!(matches!(
            classify(&answer(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER), 0, 1, t),
            Outcome::Bump(..)
        ));
        assert!(matches!(classify(&answer(ErrorCode::UNKNOWN_PRODUCER_ID), 0, 1, t), Outcome::Bump(..)));
        // Without a log start offset the broker could not tell: asked again.
        let unsure = PartitionAnswer { log_start_offset: -1, ..answer(ErrorCode::UNKNOWN_PRODUCER_ID) };
        assert!(matches!(classify(&unsure, 0, 1, t), Outcome::Retry(..)));
        // Too large: split while it holds several records, final for one.
        assert!(matches!(classify(&answer(ErrorCode::MESSAGE_TOO_LARGE), 0, 2, t), Outcome::Split(_)));
        let big = PartitionAnswer { message: Some("too big".into()), ..answer(ErrorCode::MESSAGE_TOO_LARGE) };
        let Outcome::Fail(e) = classify(&big, 0, 1, t) else {
            panic!("MESSAGE_TOO_LARGE is final for one record")
        };
        assert_eq!(e.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));
        assert!(e.to_string().contains("too big"), "{e}");
    }

    #[test]
    fn an_open_batch_waits_while_its_partition_cannot_send() {
        use super::super::accumulator::{Accumulator, BatchSettings, NewRecord, Target};
        let settings = BatchSettings {
            transactional: false,
            batch_size: 1 << 20,
            compression: klamm_protocol::compression::Compression::None,
            level: None,
        };
        let mut state = Accumulator::default();
        let record = NewRecord { timestamp: 0, key: None, value: Some(&b"v"[..]), headers: &[], memory: 10 };
        state.append("t", Target::Partition(0), &record, &settings).unwrap();
        let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
        queue.confirmed = true;
        assert!(open_batch_can_go(queue, true, 5, Some(0)), "an idle partition sends at linger");
        assert!(!open_batch_can_go(queue, true, 5, None), "no leader: wait");
        assert!(!open_batch_can_go(queue, true, 5, Some(5)), "the leader has no room: wait");
        queue.in_flight = 5;
        assert!(!open_batch_can_go(queue, true, 5, Some(1)), "the partition has no room: wait");
        queue.in_flight = 1;
        assert!(open_batch_can_go(queue, true, 5, Some(1)));
        queue.confirmed = false;
        assert!(!open_batch_can_go(queue, true, 5, Some(1)), "one at a time until confirmed");
        assert!(open_batch_can_go(queue, false, 5, Some(1)), "not idempotent: up to the limit");
        queue.confirmed = true;
        queue.rewind = true;
        assert!(!open_batch_can_go(queue, true, 5, Some(1)), "a retry is pending: wait");
        queue.rewind = false;
        queue.needs_bump = true;
        assert!(!open_batch_can_go(queue, true, 5, Some(1)), "a new epoch is pending: wait");
        queue.needs_bump = false;
        // A sealed batch waiting to be sent goes first; the open one keeps filling meanwhile.
        let closed = super::super::accumulator::close_open(queue, &Arc::from("t"), 0, None);
        assert!(closed.is_some());
        state.append("t", Target::Partition(0), &record, &settings).unwrap();
        let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
        assert!(!open_batch_can_go(queue, true, 5, Some(1)));
        queue.sent = 1;
        assert!(open_batch_can_go(queue, true, 5, Some(1)));
    }

    #[test]
    fn an_aborted_transaction_keeps_only_its_batches_in_flight() {
        use super::super::accumulator::{Accumulator, BatchSettings, NewRecord, Target};
        let settings = BatchSettings {
            transactional: true,
            batch_size: 64,
            compression: klamm_protocol::compression::Compression::None,
            level: None,
        };
        let mut state = Accumulator::default();
        let value = [7u8; 80];
        let mut results = Vec::new();
        for _ in 0..3 {
            let record =
                NewRecord { timestamp: 0, key: None, value: Some(&value[..]), headers: &[], memory: 100 };
            let appended = state.append("t", Target::Partition(0), &record, &settings).unwrap();
            results.push(appended.result);
        }
        // A last record stays in the open batch.
        let roomy = BatchSettings { batch_size: 1 << 20, ..settings };
        let small = NewRecord { timestamp: 0, key: None, value: Some(&b"x"[..]), headers: &[], memory: 10 };
        results.push(state.append("t", Target::Partition(0), &small, &roomy).unwrap().result);
        {
            let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
            assert_eq!(queue.queue.len(), 3, "each large record filled a batch");
            assert!(queue.open.is_some());
            queue.queue[0].in_flight = true;
            queue.in_flight = 1;
            queue.sent = 1;
        }
        let error = Error::with_message(ErrorKind::User, "aborted");
        let memory = discard_unsent_locked(&mut state, &error);
        assert_eq!(memory, 210);
        let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
        assert_eq!((queue.queue.len(), queue.sent, queue.in_flight), (1, 1, 1));
        assert!(queue.open.is_none());
        assert!(results[0].outcome().is_none(), "the batch in flight waits for its answer");
        for r in &results[1..] {
            assert!(matches!(r.outcome(), Some(Err(_))), "unsent batches fail");
        }
    }

    #[test]
    fn a_batch_known_written_never_moves_to_a_new_epoch() {
        use super::super::accumulator::{Accumulator, BatchSettings, NewRecord, Target};
        let settings = BatchSettings {
            transactional: false,
            batch_size: 64,
            compression: klamm_protocol::compression::Compression::None,
            level: None,
        };
        let mut state = Accumulator { producer: Some((9, 0)), ..Accumulator::default() };
        let value = [7u8; 80];
        let mut results = Vec::new();
        for _ in 0..3 {
            let record =
                NewRecord { timestamp: 0, key: None, value: Some(&value[..]), headers: &[], memory: 100 };
            results.push(state.append("t", Target::Partition(0), &record, &settings).unwrap().result);
        }
        {
            let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
            assert_eq!(queue.queue.len(), 3);
            for i in 0..3 {
                let records = queue.queue[i].records;
                queue.queue[i].stamp = queue.assign_stamp(Some((9, 0)), records);
            }
            // The first is in the log (a later one was acknowledged); the second's outcome is
            // unknown; the broker asks for a new epoch.
            queue.queue[0].written = true;
            queue.queue[1].maybe_written = true;
            queue.needs_bump = true;
        }
        let stats = Counters::default();
        let mut released = 0;
        assert!(!move_epochs(&mut state, &stats, &mut released));
        assert_eq!(released, 100, "the written batch left the queue");
        assert!(matches!(results[0].outcome(), Some(Ok(BatchAck { base_offset: -1, .. }))));
        let queue = state.topics.get_mut("t").unwrap().partition_mut(0);
        assert_eq!(queue.queue.len(), 2);
        let stamps: Vec<_> = queue.queue.iter().map(|b| b.stamp.unwrap()).collect();
        assert_eq!(stamps[0], Stamp { producer_id: 9, epoch: 1, base_sequence: 0 });
        assert_eq!(stamps[1].base_sequence, 1, "re-stamped in order under the new epoch");
        assert!(results[1].outcome().is_none() && results[2].outcome().is_none());
        // A written batch that is dropped (expired) leaves no gap: no new epoch is needed.
        queue.queue[0].written = true;
        let batch = queue.remove(0).unwrap();
        queue.dropped(&batch);
        assert!(!queue.needs_bump);
    }

    #[test]
    fn a_split_keeps_every_record_and_its_sequence_numbers() {
        let settings = super::super::accumulator::BatchSettings {
            transactional: true,
            batch_size: 1 << 20,
            compression: klamm_protocol::compression::Compression::Lz4,
            level: None,
        };
        let stamp = Stamp { producer_id: 7, epoch: 3, base_sequence: i32::MAX - 1 };
        let mut builder = RecordBatchBuilder::new().compression(settings.compression).producer(
            stamp.producer_id,
            stamp.epoch,
            stamp.base_sequence,
        );
        for i in 0..5u8 {
            let headers = [(&b"h"[..], if i % 2 == 0 { None } else { Some(&[i][..]) })];
            builder
                .push_with_headers(1_000 + i64::from(i), Some(&[i][..]), Some(&[i, i][..]), headers)
                .unwrap();
        }
        let bytes = builder.finish().unwrap().freeze();
        let halves = rebuild_halves(&bytes, Some(stamp), 5, &settings).unwrap();
        assert_eq!(halves.len(), 2);
        let (first, second) = (&halves[0], &halves[1]);
        assert_eq!((first.2, first.3), (2, 0));
        assert_eq!((second.2, second.3), (3, 2));
        assert_eq!(first.1, Some(stamp));
        // Sequences wrap at i32::MAX as the broker expects.
        assert_eq!(second.1.unwrap().base_sequence, 0);
        let mut seen = Vec::new();
        for (bytes, stamp, count, _) in &halves {
            let batch = RecordBatches::new(bytes.clone()).next().unwrap().unwrap();
            assert_eq!(batch.record_count(), *count);
            assert_eq!(batch.base_sequence(), stamp.unwrap().base_sequence);
            assert_eq!(batch.producer_epoch(), 3);
            assert!(batch.is_transactional(), "a transaction's batch stays one when split");
            for r in batch.records().unwrap() {
                let r = r.unwrap();
                let h: Vec<_> = r.headers().iter().map(|h| h.value.map(<[u8]>::to_vec)).collect();
                seen.push((r.timestamp(), r.key().unwrap().to_vec(), r.value().unwrap().to_vec(), h));
            }
        }
        let expected: Vec<_> = (0..5u8)
            .map(|i| {
                (
                    1_000 + i64::from(i),
                    vec![i],
                    vec![i, i],
                    vec![if i % 2 == 0 { None } else { Some(vec![i]) }],
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
