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
//! - connection lost, timeout, retriable broker codes: the partition rewinds and resends after
//!   `retry.backoff.ms` (growing), until `delivery.timeout.ms`; leader errors and connection
//!   errors also drop the topic's metadata so the next round routes to the new leader;
//! - OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that follows one that failed: a rewind too;
//!   for the first unacknowledged batch, or UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_EPOCH: the
//!   broker lost our state, so the epoch is bumped (sequences restart at 0) and batches resent;
//! - DUPLICATE_SEQUENCE_NUMBER: the batch was written before; success;
//! - anything else fails the batch's records; if the batch had sequence numbers the epoch is
//!   bumped, because later batches would otherwise leave a gap the broker refuses.
//!
//! At an epoch bump, a batch whose last send got no answer (timeout, lost connection) is
//! failed, not resent: the broker may hold it, and under the new epoch it could not recognise
//! a resend, which would write the records twice. Resends under the same epoch are safe (the
//! broker answers DUPLICATE_SEQUENCE_NUMBER for what it has).
//!
//! A request that timed out closes its connection (as the Java client does), so that nothing
//! sent after it can overtake its retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm_protocol::api::init_producer_id::InitProducerIdRequest;
use klamm_protocol::api::produce::{PartitionProduceData, ProduceRequest, ProduceResponse, TopicProduceData};
use klamm_protocol::ErrorCode;
use tokio::sync::mpsc;

use super::accumulator::{close_open, Accumulator, Batch, BatchAck, ToSeal};
use super::{lock, Shared};
use crate::client::{topic_error, ConnectionKind};
use crate::config::backoff;
use crate::error::{Error, ErrorKind};

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
        result: Result<Option<ProduceResponse>, Error>,
    },
    /// A metadata refresh for these topics finished.
    Metadata(Vec<Arc<str>>),
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
/// as the previous one is on the socket (pipelined, never reordered), and reports each outcome.
async fn sink(
    client: crate::Client,
    node: i32,
    acks_zero: bool,
    mut requests: mpsc::UnboundedReceiver<(ProduceRequest, Vec<Sent>)>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some((request, sent)) = requests.recv().await {
        let submitted = async {
            let conn = client.connection(node, ConnectionKind::Produce).await?;
            let version = conn.version_for::<ProduceRequest>()?;
            if version < 3 {
                return Err(Error::new(ErrorKind::UnsupportedVersion {
                    api_key: klamm_protocol::ApiKey::PRODUCE,
                    broker_range: conn.broker_versions(klamm_protocol::ApiKey::PRODUCE),
                }));
            }
            if acks_zero {
                conn.send_without_response(version, &request).await?;
                return Ok(None);
            }
            conn.submit(version, &request).await.map(Some)
        }
        .await;
        match submitted {
            Ok(Some(pending)) => {
                let events = events.clone();
                tokio::spawn(async move {
                    let conn = pending.connection().clone();
                    let result = pending.response().await;
                    if let Err(e) = &result {
                        if matches!(e.kind(), ErrorKind::Timeout) {
                            // Nothing sent after this request may overtake its retry.
                            conn.close().await;
                        }
                    }
                    let _ = events.send(Event::Response { node, sent, result: result.map(Some) });
                });
            }
            Ok(None) => {
                let _ = events.send(Event::Response { node, sent, result: Ok(None) });
            }
            Err(e) => {
                let _ = events.send(Event::Response { node, sent, result: Err(e) });
            }
        }
    }
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

struct Sender {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    /// Requests in flight per broker.
    broker_requests: HashMap<i32, usize>,
    /// The request queue of each broker's sink task.
    sinks: HashMap<i32, mpsc::UnboundedSender<(ProduceRequest, Vec<Sent>)>>,
    /// Topics with a metadata refresh under way.
    refreshing: HashSet<Arc<str>>,
    init_attempts: u32,
    init_retry_at: Option<Instant>,
    init_running: bool,
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
        let idempotent = config.idempotent();
        let max_in_flight = config.max_in_flight;
        let mut wake_at = now + Duration::from_secs(1);
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
            // The producer id: fetched before anything is sent; the epoch bumped once nothing
            // is in flight.
            if idempotent && state.producer.is_none() {
                self.start_init(now, &mut wake_at);
            }
            if idempotent && state.bump_epoch && nothing_in_flight {
                if let Some((id, epoch)) = state.producer {
                    if epoch < i16::MAX {
                        tracing::debug!(producer_id = id, epoch = epoch + 1, "bumping the producer epoch");
                        let unresolved = state.bump(id, epoch + 1);
                        fail_unresolved(&self.shared, unresolved);
                    } else {
                        state.producer = None;
                        self.start_init(now, &mut wake_at);
                    }
                }
            }
            let producer = state.producer.filter(|_| !state.bump_epoch);
            let can_send = !idempotent || producer.is_some();
            let linger_over = state.flushing > 0 || state.closing;
            let Accumulator { topics, bump_epoch, .. } = &mut *state;
            for topic in topics.values_mut() {
                let name = Arc::clone(&topic.name);
                let meta = metadata.topic(&name);
                for (p, queue) in topic.partitions.iter_mut().enumerate() {
                    let partition = p as i32;
                    // Close the open batch once it lingered long enough.
                    if let Some(open) = &queue.open {
                        let due = open.created + config.linger;
                        if linger_over || due <= now {
                            if let Some(seal) = close_open(queue, &name, partition, producer) {
                                topic.sticky.on_new_batch(partition);
                                to_seal.push(seal);
                            }
                        } else {
                            wake_at = wake_at.min(due);
                        }
                    }
                    // Expire batches that waited too long (only when none is in flight, so
                    // no outcome is pending for them).
                    if queue.in_flight == 0 {
                        while let Some(front) = queue.queue.front() {
                            if front.created + config.delivery_timeout > now
                                || matches!(front.payload, super::accumulator::Payload::Sealing)
                            {
                                break;
                            }
                            let batch = queue.remove(0).expect("front exists");
                            if batch.stamp.is_some() {
                                *bump_epoch = true;
                            }
                            released += batch.memory;
                            batch.result.complete(Err(expired(&name, &batch, config.delivery_timeout)));
                        }
                    }
                    if let Some(front) = queue.queue.front() {
                        wake_at = wake_at.min(front.created + config.delivery_timeout);
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
                    if !can_send || queue.rewind || queue.sent >= queue.queue.len() || *bump_epoch {
                        continue;
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
                    // Queue batches for this broker, one per request, up to the limits.
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
                        add_batch(draft, &name, partition, batch.id, bytes);
                        queue.sent += 1;
                        queue.in_flight += 1;
                        queue.in_flight_node = leader;
                        request += 1;
                    }
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
        for (node, drafts) in drafts {
            for draft in drafts.into_iter().filter(|d| !d.sent.is_empty()) {
                self.dispatch(node, draft);
            }
        }
        Some(wake_at)
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
                    let unresolved = lock(&shared.state).bump(id, epoch);
                    fail_unresolved(&shared, unresolved);
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
            transactional_id: None,
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
        let _ = sink.send((request, draft.sent));
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
            Event::Response { node, sent, result } => {
                if let Some(n) = self.broker_requests.get_mut(&node) {
                    *n = n.saturating_sub(1);
                }
                self.apply(sent, result);
            }
        }
    }

    /// Applies a Produce outcome to the batches it carried.
    fn apply(&mut self, sent: Vec<Sent>, result: Result<Option<ProduceResponse>, Error>) {
        let config = &self.shared.config;
        let mut released = 0usize;
        let mut invalidate: Vec<Arc<str>> = Vec::new();
        let mut bump_epoch = false;
        let mut state = lock(&self.shared.state);
        let mut responses: HashMap<(&str, i32), PartitionAnswer> = HashMap::new();
        if let Ok(Some(response)) = &result {
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    responses.insert(
                        (topic.name.as_str(), p.index),
                        (
                            ErrorCode(p.error_code),
                            p.base_offset,
                            p.log_append_time_ms,
                            p.error_message.clone(),
                        ),
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
            let outcome = match &result {
                Ok(None) => Outcome::Done(BatchAck { base_offset: -1, log_append_time: -1 }),
                Ok(Some(_)) => match responses.get(&(&*s.topic, s.partition)) {
                    Some((code, base_offset, append_time, message)) => {
                        classify(*code, *base_offset, *append_time, message.as_deref(), index, &s.topic)
                    }
                    None => {
                        Outcome::Retry(Error::new(ErrorKind::Broker(ErrorCode::UNKNOWN_SERVER_ERROR)), false)
                    }
                },
                Err(e) if e.is_retriable() => {
                    // No answer: the broker may have written it.
                    queue.queue[index].unresolved = true;
                    Outcome::Retry(e.clone(), true)
                }
                Err(e) => Outcome::Fail(e.clone()),
            };
            let batch = &mut queue.queue[index];
            let outcome = match outcome {
                Outcome::Retry(e, _) | Outcome::Bump(e, _) if batch.attempts > config.retries => {
                    Outcome::Fail(e)
                }
                other => other,
            };
            bump_epoch |= matches!(outcome, Outcome::Bump(..));
            match outcome {
                Outcome::Done(ack) => {
                    let batch = queue.remove(index).expect("present");
                    queue.confirmed |= batch.stamp.is_some();
                    released += batch.memory;
                    batch.result.complete(Ok(ack));
                }
                Outcome::Retry(e, stale_metadata) | Outcome::Bump(e, stale_metadata) => {
                    tracing::debug!(topic = %s.topic, partition = s.partition, error = %e, "retrying a batch");
                    let attempt = batch.attempts;
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
                Outcome::Fail(e) => {
                    let batch = queue.remove(index).expect("present");
                    bump_epoch |= batch.stamp.is_some();
                    released += batch.memory;
                    tracing::debug!(topic = %s.topic, partition = s.partition, error = %e, "a batch failed");
                    batch.result.complete(Err(e));
                }
            }
        }
        if bump_epoch {
            state.bump_epoch = true;
        }
        drop(state);
        if released > 0 {
            self.shared.memory.add_permits(released);
        }
        for topic in invalidate {
            self.shared.client.invalidate_topic(&topic);
        }
    }
}

/// Fails the batches an epoch bump took out of their queues (see [`Accumulator::bump`]).
fn fail_unresolved(shared: &Shared, batches: Vec<super::accumulator::Batch>) {
    for batch in batches {
        tracing::warn!(records = batch.records, "failing a batch whose outcome is unknown at an epoch bump");
        shared.memory.add_permits(batch.memory);
        batch.result.complete(Err(Error::with_message(
            ErrorKind::Timeout,
            "no answer came for this batch, so the broker may have written it; the producer epoch \
             had to be bumped since, and a resend could write it twice, so it was not resent",
        )));
    }
}

/// A partition's answer in a Produce response: code, base offset, append time, message.
type PartitionAnswer = (ErrorCode, i64, i64, Option<String>);

enum Outcome {
    Done(BatchAck),
    /// Resend later; `true` when the topic's metadata may be stale.
    Retry(Error, bool),
    /// Resend under a bumped epoch.
    Bump(Error, bool),
    Fail(Error),
}

/// What to do with a batch, given its partition's error code. `index` is the batch's place in
/// its queue: an out-of-order error for a batch behind another unacknowledged one only means
/// that one failed first.
fn classify(
    code: ErrorCode,
    base_offset: i64,
    append_time: i64,
    message: Option<&str>,
    index: usize,
    topic: &str,
) -> Outcome {
    let error = || {
        let e = topic_error(topic, code);
        match message {
            Some(m) if !m.is_empty() => Error::with_source(
                ErrorKind::Broker(code),
                None,
                BrokerMessage(topic.to_owned(), m.to_owned()),
            ),
            _ => e,
        }
    };
    match code {
        ErrorCode::NONE => Outcome::Done(BatchAck { base_offset, log_append_time: append_time }),
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
            Outcome::Done(BatchAck { base_offset: -1, log_append_time: -1 })
        }
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER if index > 0 => Outcome::Retry(error(), false),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
        | ErrorCode::UNKNOWN_PRODUCER_ID
        | ErrorCode::INVALID_PRODUCER_EPOCH => Outcome::Bump(error(), false),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::KAFKA_STORAGE_ERROR
        | ErrorCode::FENCED_LEADER_EPOCH => Outcome::Retry(error(), true),
        c if c.is_retriable() => Outcome::Retry(error(), false),
        _ => Outcome::Fail(error()),
    }
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

    #[test]
    fn classification_follows_the_java_client() {
        let t = "t";
        assert!(matches!(
            classify(ErrorCode::NONE, 5, -1, None, 0, t),
            Outcome::Done(BatchAck { base_offset: 5, .. })
        ));
        assert!(matches!(
            classify(ErrorCode::DUPLICATE_SEQUENCE_NUMBER, -1, -1, None, 0, t),
            Outcome::Done(_)
        ));
        assert!(matches!(
            classify(ErrorCode::NOT_LEADER_OR_FOLLOWER, -1, -1, None, 0, t),
            Outcome::Retry(_, true)
        ));
        assert!(matches!(
            classify(ErrorCode::NOT_ENOUGH_REPLICAS, -1, -1, None, 0, t),
            Outcome::Retry(_, false)
        ));
        assert!(matches!(
            classify(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1, None, 2, t),
            Outcome::Retry(..)
        ));
        assert!(matches!(
            classify(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1, None, 0, t),
            Outcome::Bump(..)
        ));
        assert!(matches!(classify(ErrorCode::UNKNOWN_PRODUCER_ID, -1, -1, None, 0, t), Outcome::Bump(..)));
        let Outcome::Fail(e) = classify(ErrorCode::MESSAGE_TOO_LARGE, -1, -1, Some("too big"), 0, t) else {
            panic!("MESSAGE_TOO_LARGE is final")
        };
        assert_eq!(e.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));
        assert!(e.to_string().contains("too big"), "{e}");
    }
}
