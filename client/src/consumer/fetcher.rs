//! The fetch pipeline: one driver task per consumer that plans requests, and the fetch and
//! offset-lookup tasks it starts.
//!
//! The driver loops: it reads the partition states (under the state lock, briefly), looks up
//! each candidate partition's leader (from the client's metadata cache, without the lock),
//! then starts
//! - one ListOffsets task per leader for partitions whose position must be looked up (seek to
//!   beginning, end or a timestamp, `auto.offset.reset`);
//! - one Fetch task per leader that has none in flight, for its partitions that have a position,
//!   are not paused, have no buffered data and are not in backoff. No fetch starts while the
//!   buffered record data is at or above the prefetch limit, and a fetch asks for at most
//!   `min(fetch.max.bytes, limit)`, so the buffer stays below the limit plus one response per
//!   broker (a broker may exceed `max_bytes` by one batch so that consumption progresses).
//!
//! Then it sleeps until woken (a task finished, the consumer drained or seeked) or until the
//! earliest partition backoff ends. The driver owns its tasks in a `JoinSet`: aborting the
//! driver (dropping the consumer) aborts them all without waiting.
//!
//! Errors: NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION and other
//! signs of a moved leader invalidate the topic's metadata and back the partition off; the next
//! plan routes it to the new leader. OFFSET_OUT_OF_RANGE applies `auto.offset.reset`. Other
//! errors go to the user through `poll` and back the partition off.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm_protocol::api::fetch::{FetchPartition, FetchRequest, FetchResponse, FetchTopic};
use klamm_protocol::api::list_offsets::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopic,
};
use klamm_protocol::{ErrorCode, Uuid};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::ConnectionKind;
use crate::consumer::config::{IsolationLevel, OffsetReset};
use crate::consumer::drain::{CompletedFetch, FetchedData};
use crate::consumer::record::{Offset, TopicPartition};
use crate::consumer::state::{Position, Shared, State};
use crate::error::{Error, ErrorKind};
use crate::stats::Counters;

/// The last Fetch version that names topics instead of using topic ids.
const LAST_FETCH_VERSION_WITH_NAMES: i16 = 12;

/// One partition of a request, as it was when the request was built.
struct Planned {
    tp: TopicPartition,
    generation: u64,
    leader_epoch: i32,
    offset: i64,
    /// The leader epoch of the record before `offset`, if known (see
    /// [`PartitionState::last_epoch`](crate::consumer::state::PartitionState::last_epoch)).
    last_epoch: Option<i32>,
}

/// The driver task: runs until the consumer is closed (or the task is aborted).
pub(crate) async fn drive(shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    loop {
        if shared.closed.load(Ordering::Acquire) {
            tasks.shutdown().await;
            return;
        }
        let next_retry = plan(&shared, &mut tasks).await;
        // A stall report falling due wakes the consumer, whose poll makes it.
        let stall_due = shared.lock().stalls.next_due();
        if stall_due.is_some_and(|at| at <= Instant::now()) {
            shared.ready.notify_one();
        }
        let stall_due = stall_due.filter(|at| *at > Instant::now());
        let next = match (next_retry, stall_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = next.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = shared.wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// One planning round; returns when the earliest partition backoff ends.
async fn plan(shared: &Arc<Shared>, tasks: &mut JoinSet<()>) -> Option<Instant> {
    let now = Instant::now();
    let mut next_retry: Option<Instant> = None;
    let mut lookups = Vec::new();
    let mut fetches = Vec::new();
    let room = {
        let st = shared.lock();
        for (tp, p) in &st.partitions {
            if p.in_flight {
                continue;
            }
            if let Some(at) = p.retry_at.filter(|at| *at > now) {
                next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                continue;
            }
            match p.position {
                Position::Lookup(target) => lookups.push((tp.clone(), p.generation, target)),
                Position::Fetch(offset) if !p.paused && !p.buffered => {
                    fetches.push((tp.clone(), p.generation, offset, p.last_epoch))
                }
                _ => {}
            }
        }
        st.buffered_bytes < shared.config.prefetch_max_bytes
    };
    if !room {
        fetches.clear();
    }
    if lookups.is_empty() && fetches.is_empty() {
        return next_retry;
    }

    // Leaders, from the metadata cache (a refresh when a topic was invalidated).
    let mut lookup_by_leader: BTreeMap<i32, Vec<(Planned, Offset)>> = BTreeMap::new();
    let mut fetch_by_leader: BTreeMap<i32, Vec<Planned>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (tp, generation, target) in lookups {
        match shared.client.leader(&tp.topic, tp.partition).await {
            Ok((node, leader_epoch)) => {
                let planned = Planned { tp, generation, leader_epoch, offset: -1, last_epoch: None };
                lookup_by_leader.entry(node).or_default().push((planned, target));
            }
            Err(e) => failed.push((tp, e)),
        }
    }
    for (tp, generation, offset, last_epoch) in fetches {
        match shared.client.leader(&tp.topic, tp.partition).await {
            Ok((node, leader_epoch)) => fetch_by_leader.entry(node).or_default().push(Planned {
                tp,
                generation,
                leader_epoch,
                offset,
                last_epoch,
            }),
            Err(e) => failed.push((tp, e)),
        }
    }

    let mut st = shared.lock();
    for (tp, e) in failed {
        tracing::debug!(%tp, error = %e, "no leader for partition");
        if e.is_retriable() {
            st.stalls.note(&tp, &e, &shared.config, now);
        } else {
            st.errors.push_back(e);
            shared.ready.notify_one();
        }
        st.back_off(&tp, &shared.config);
        if let Some(at) = st.partitions.get(&tp).and_then(|p| p.retry_at) {
            next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
        }
    }
    for (node, parts) in lookup_by_leader {
        let parts = claim(&mut st, parts, |(p, _)| p);
        if !parts.is_empty() {
            tasks.spawn(list_offsets(Arc::clone(shared), node, parts));
        }
    }
    for (node, parts) in fetch_by_leader {
        if st.busy_brokers.contains(&node) {
            continue;
        }
        let parts = claim(&mut st, parts, |p| p);
        if !parts.is_empty() {
            st.busy_brokers.insert(node);
            tasks.spawn(fetch(Arc::clone(shared), node, parts));
        }
    }
    next_retry
}

/// Keeps the planned partitions whose state did not change while leaders were looked up, and
/// marks them in flight.
fn claim<T>(st: &mut State, parts: Vec<T>, planned: impl Fn(&T) -> &Planned) -> Vec<T> {
    parts
        .into_iter()
        .filter(|item| {
            let p = planned(item);
            match st.partitions.get_mut(&p.tp) {
                Some(state) if state.generation == p.generation && !state.in_flight => {
                    state.in_flight = true;
                    true
                }
                _ => false,
            }
        })
        .collect()
}

/// Whether `code` means our idea of the partition's leader is out of date.
fn is_leader_error(code: ErrorCode) -> bool {
    [
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        ErrorCode::FENCED_LEADER_EPOCH,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::LEADER_NOT_AVAILABLE,
        ErrorCode::REPLICA_NOT_AVAILABLE,
        ErrorCode::KAFKA_STORAGE_ERROR,
        ErrorCode::UNKNOWN_TOPIC_ID,
        ErrorCode::INCONSISTENT_TOPIC_ID,
        ErrorCode::OFFSET_NOT_AVAILABLE,
    ]
    .contains(&code)
}

/// A broker error about one partition, naming it.
fn partition_error(code: ErrorCode, broker: Option<String>, tp: &TopicPartition, offset: i64) -> Error {
    Error::with_source(
        ErrorKind::Broker(code),
        broker,
        PartitionProblem(format!("partition {tp} at offset {offset}")),
    )
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PartitionProblem(String);

/// Handles an error that hit a whole request: every partition backs off; a non-retriable error
/// also goes to the user.
fn request_failed(shared: &Shared, st: &mut State, tps: &[&TopicPartition], e: Error) {
    tracing::debug!(error = %e, partitions = tps.len(), "request failed");
    let now = Instant::now();
    for tp in tps {
        if matches!(e.kind(), ErrorKind::Connect { .. } | ErrorKind::Closed | ErrorKind::Io) {
            shared.client.invalidate_topic(&tp.topic);
        }
        st.back_off(tp, &shared.config);
        if e.is_retriable() {
            st.stalls.note(tp, &e, &shared.config, now);
        }
    }
    if !e.is_retriable() {
        st.errors.push_back(e);
        shared.ready.notify_one();
    }
}

/// One Fetch request to broker `node` for `parts`, and what its response means.
async fn fetch(shared: Arc<Shared>, node: i32, parts: Vec<Planned>) {
    let span = tracing::debug_span!("klamm.fetch", node, partitions = parts.len());
    let config = &shared.config;
    let read_committed = config.isolation_level == IsolationLevel::ReadCommitted;
    let result = async {
        let conn = shared.client.connection(node, ConnectionKind::Fetch).await?;
        let mut version = conn.version_for::<FetchRequest>()?;
        let metadata = shared.client.metadata();
        let mut ids: HashMap<&str, Uuid> = HashMap::new();
        for p in &parts {
            let id = metadata.topic(&p.tp.topic).map_or(Uuid::ZERO, |t| t.id);
            ids.insert(&p.tp.topic, id);
        }
        if ids.values().any(Uuid::is_zero) {
            version = version.min(LAST_FETCH_VERSION_WITH_NAMES);
        }
        let mut topics: Vec<FetchTopic> = Vec::new();
        for p in &parts {
            let partition = FetchPartition {
                partition: p.tp.partition,
                current_leader_epoch: p.leader_epoch,
                fetch_offset: p.offset,
                // From v12 the leader checks that its log still holds what was read up to
                // here, and answers with a diverging epoch if not (KIP-320).
                last_fetched_epoch: match p.last_epoch {
                    Some(epoch) if version >= FIRST_FETCH_VERSION_WITH_LAST_EPOCH => epoch,
                    _ => -1,
                },
                partition_max_bytes: config.max_partition_fetch_bytes,
                ..FetchPartition::default()
            };
            match topics.iter_mut().find(|t| t.topic == *p.tp.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(FetchTopic {
                    topic: p.tp.topic.to_string(),
                    topic_id: ids[&*p.tp.topic],
                    partitions: vec![partition],
                    ..FetchTopic::default()
                }),
            }
        }
        let limit = i32::try_from(config.prefetch_max_bytes).unwrap_or(i32::MAX);
        let request = FetchRequest {
            max_wait_ms: i32::try_from(config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: config.fetch_min_bytes,
            max_bytes: config.fetch_max_bytes.min(limit),
            isolation_level: config.isolation_level.code(),
            topics,
            ..FetchRequest::default()
        };
        let response = conn.send_at(version, &request).await?;
        Ok::<_, Error>((response, conn.addr().to_string()))
    }
    .instrument(span.clone())
    .await;

    let _entered = span.enter();
    let stats = shared.client.counters();
    Counters::add(&stats.fetch_requests, 1);
    let failed = match &result {
        Ok((response, _)) => ErrorCode(response.error_code).is_err(),
        Err(_) => true,
    };
    if failed {
        Counters::add(&stats.fetch_request_errors, 1);
    }
    let mut st = shared.lock();
    st.busy_brokers.remove(&node);
    for p in &parts {
        if let Some(state) = st.partitions.get_mut(&p.tp) {
            state.in_flight = false;
        }
    }
    let (response, broker) = match result {
        Ok(r) => r,
        Err(e) => {
            let tps: Vec<&TopicPartition> = parts.iter().map(|p| &p.tp).collect();
            request_failed(&shared, &mut st, &tps, e);
            drop(st);
            shared.wake.notify_one();
            return;
        }
    };
    let FetchResponse { error_code, responses, .. } = response;
    if ErrorCode(error_code).is_err() {
        let tps: Vec<&TopicPartition> = parts.iter().map(|p| &p.tp).collect();
        let e = Error::at(ErrorKind::Broker(ErrorCode(error_code)), &broker);
        request_failed(&shared, &mut st, &tps, e);
        drop(st);
        shared.wake.notify_one();
        return;
    }
    let metadata = shared.client.metadata();
    let mut delivered = false;
    for topic in responses {
        let name: &str = if topic.topic.is_empty() {
            match metadata.topics().find(|t| t.id == topic.topic_id) {
                Some(t) => &t.name,
                None => continue,
            }
        } else {
            &topic.topic
        };
        for data in topic.partitions {
            let Some(planned) =
                parts.iter().find(|p| *p.tp.topic == *name && p.tp.partition == data.partition_index)
            else {
                continue;
            };
            let tp = &planned.tp;
            let Some(state) = st.partitions.get_mut(tp) else { continue };
            if state.generation != planned.generation || state.position != Position::Fetch(planned.offset) {
                continue;
            }
            let code = ErrorCode(data.error_code);
            let diverging = &data.diverging_epoch;
            if code.is_ok() && diverging.epoch >= 0 && diverging.end_offset >= 0 {
                // The leader's log diverged from what was read: records up to the position
                // were truncated (an unclean leader election, say).
                state.high_watermark = Some(data.high_watermark);
                state.failures = 0;
                match truncation(
                    diverging.epoch,
                    diverging.end_offset,
                    planned.offset,
                    config.auto_offset_reset,
                ) {
                    Truncation::Resume { offset, epoch } => {
                        tracing::warn!(
                            %tp,
                            position = planned.offset,
                            diverging_offset = offset,
                            diverging_epoch = epoch,
                            "log truncation detected: the leader no longer holds records this consumer \
                             read; resuming at the first offset where the logs diverge"
                        );
                        state.position = Position::Fetch(offset);
                        state.last_epoch = Some(epoch);
                    }
                    Truncation::Fail(e) => {
                        tracing::warn!(%tp, error = %e, "log truncation detected");
                        state.position = Position::Failed;
                        st.errors.push_back(e.on_partition(tp));
                        delivered = true;
                    }
                }
                continue;
            }
            if code.is_ok() {
                state.high_watermark = Some(data.high_watermark);
                state.failures = 0;
                st.stalls.clear(tp);
                let Some(state) = st.partitions.get_mut(tp) else { continue };
                let records = data.records.unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                state.buffered = true;
                Counters::add(&stats.bytes_fetched, records.len() as u64);
                tracing::trace!(%tp, offset = planned.offset, bytes = records.len(), "fetched");
                let fetched = FetchedData {
                    records,
                    high_watermark: data.high_watermark,
                    last_stable_offset: data.last_stable_offset,
                    aborted: data
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.producer_id, a.first_offset))
                        .collect(),
                };
                let completed = CompletedFetch::new(
                    Arc::clone(&tp.topic),
                    tp.partition,
                    planned.generation,
                    planned.offset,
                    read_committed,
                    config.check_crcs,
                    fetched,
                );
                st.push_completed(completed);
                delivered = true;
            } else if code == ErrorCode::OFFSET_OUT_OF_RANGE {
                tracing::debug!(%tp, offset = planned.offset, policy = ?config.auto_offset_reset, "offset out of range");
                match config.auto_offset_reset {
                    OffsetReset::Earliest => state.position = Position::Lookup(Offset::Beginning),
                    OffsetReset::Latest => state.position = Position::Lookup(Offset::End),
                    OffsetReset::None => {
                        state.position = Position::Failed;
                        let e = partition_error(code, Some(broker.clone()), tp, planned.offset);
                        st.errors.push_back(e);
                        delivered = true;
                    }
                }
            } else if is_leader_error(code) || code == ErrorCode::UNKNOWN_LEADER_EPOCH {
                tracing::debug!(%tp, error = code.name(), "leader changed or not ready");
                if code != ErrorCode::UNKNOWN_LEADER_EPOCH {
                    shared.client.invalidate_topic(&tp.topic);
                }
                st.back_off(tp, config);
                let cause = partition_error(code, Some(broker.clone()), tp, planned.offset);
                st.stalls.note(tp, &cause, config, Instant::now());
            } else {
                let e = partition_error(code, Some(broker.clone()), tp, planned.offset);
                st.errors.push_back(e);
                st.back_off(tp, config);
                delivered = true;
            }
        }
    }
    drop(st);
    if delivered {
        shared.ready.notify_one();
    }
    shared.wake.notify_one();
}

/// The first Fetch version with `last_fetched_epoch` in the request and `diverging_epoch` in
/// the response.
const FIRST_FETCH_VERSION_WITH_LAST_EPOCH: i16 = 12;

/// What to do when the leader says its log diverges at `end_offset` (the end of `epoch`, the
/// last epoch both logs share) while the position is at `position`.
#[derive(Debug)]
enum Truncation {
    /// Read on from `offset`, the first offset where the logs differ.
    Resume { offset: i64, epoch: i32 },
    /// `auto.offset.reset` is none: the user decides (the position stays failed until a seek).
    Fail(TruncationError),
}

/// Follows the Java client: with a reset policy the consumer goes back to where the logs
/// diverge (so it never skips a record the new leader has there) and logs a warning; without
/// one it stops the partition with an error.
fn truncation(epoch: i32, end_offset: i64, position: i64, reset: OffsetReset) -> Truncation {
    let offset = end_offset.min(position);
    match reset {
        OffsetReset::None => Truncation::Fail(TruncationError { position, diverging_offset: offset, epoch }),
        _ => Truncation::Resume { offset, epoch },
    }
}

/// The log was truncated below the consumer's position.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "log truncation: the position was {position}, but the leader's log diverges from what was read \
     at offset {diverging_offset} (end of leader epoch {epoch}); records from there were lost; seek to \
     resume (auto.offset.reset is none)"
)]
struct TruncationError {
    position: i64,
    diverging_offset: i64,
    epoch: i32,
}

impl TruncationError {
    fn on_partition(&self, tp: &TopicPartition) -> Error {
        Error::with_source(
            ErrorKind::LogTruncation { position: self.position, diverging_offset: self.diverging_offset },
            None,
            PartitionProblem(format!("partition {tp}: {self}")),
        )
    }
}

/// One ListOffsets request to broker `node`, resolving the positions of `parts`.
async fn list_offsets(shared: Arc<Shared>, node: i32, parts: Vec<(Planned, Offset)>) {
    let span = tracing::debug_span!("klamm.list_offsets", node, partitions = parts.len());
    let config = &shared.config;
    let mut request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: config.isolation_level.code(),
        ..ListOffsetsRequest::default()
    };
    for (p, target) in &parts {
        let timestamp = match target {
            Offset::Beginning => -2,
            Offset::End => -1,
            Offset::Timestamp(ts) => *ts,
            Offset::At(o) => *o,
        };
        let partition = ListOffsetsPartition {
            partition_index: p.tp.partition,
            current_leader_epoch: p.leader_epoch,
            timestamp,
            ..ListOffsetsPartition::default()
        };
        match request.topics.iter_mut().find(|t| t.name == *p.tp.topic) {
            Some(t) => t.partitions.push(partition),
            None => request.topics.push(ListOffsetsTopic {
                name: p.tp.topic.to_string(),
                partitions: vec![partition],
                ..ListOffsetsTopic::default()
            }),
        }
    }
    let result = async {
        let conn = shared.client.connection(node, ConnectionKind::Control).await?;
        let response = conn.send(&request).await?;
        Ok::<_, Error>((response, conn.addr().to_string()))
    }
    .instrument(span)
    .await;

    let mut st = shared.lock();
    for (p, _) in &parts {
        if let Some(state) = st.partitions.get_mut(&p.tp) {
            state.in_flight = false;
        }
    }
    let (response, broker): (ListOffsetsResponse, String) = match result {
        Ok(r) => r,
        Err(e) => {
            let tps: Vec<&TopicPartition> = parts.iter().map(|(p, _)| &p.tp).collect();
            request_failed(&shared, &mut st, &tps, e);
            drop(st);
            shared.wake.notify_one();
            return;
        }
    };
    let mut delivered = false;
    for topic in &response.topics {
        for r in &topic.partitions {
            let Some((planned, target)) =
                parts.iter().find(|(p, _)| *p.tp.topic == *topic.name && p.tp.partition == r.partition_index)
            else {
                continue;
            };
            let tp = &planned.tp;
            let Some(state) = st.partitions.get_mut(tp) else { continue };
            if state.generation != planned.generation || state.position != Position::Lookup(*target) {
                continue;
            }
            let code = ErrorCode(r.error_code);
            if code.is_ok() {
                st.stalls.clear(tp);
                let Some(state) = st.partitions.get_mut(tp) else { continue };
                // v0 answers in `old_style_offsets`.
                let offset =
                    if r.offset >= 0 { r.offset } else { r.old_style_offsets.first().copied().unwrap_or(-1) };
                state.failures = 0;
                state.position = match (offset, target) {
                    (0.., _) => Position::Fetch(offset),
                    // No record at or after the timestamp: the end.
                    (_, Offset::Timestamp(_)) => Position::Lookup(Offset::End),
                    _ => {
                        let e =
                            partition_error(ErrorCode::OFFSET_NOT_AVAILABLE, Some(broker.clone()), tp, -1);
                        st.back_off(tp, config);
                        tracing::debug!(%tp, error = %e, "no offset in ListOffsets answer");
                        continue;
                    }
                };
                tracing::debug!(%tp, ?target, offset, "position looked up");
            } else if is_leader_error(code) || code == ErrorCode::UNKNOWN_LEADER_EPOCH {
                if code != ErrorCode::UNKNOWN_LEADER_EPOCH {
                    shared.client.invalidate_topic(&tp.topic);
                }
                st.back_off(tp, config);
                st.stalls.note(
                    tp,
                    &partition_error(code, Some(broker.clone()), tp, -1),
                    config,
                    Instant::now(),
                );
            } else {
                let e = partition_error(code, Some(broker.clone()), tp, -1);
                st.errors.push_back(e);
                st.back_off(tp, config);
                delivered = true;
            }
        }
    }
    drop(st);
    if delivered {
        shared.ready.notify_one();
    }
    shared.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncation_resumes_where_the_logs_diverge_or_fails_without_a_reset_policy() {
        for reset in [OffsetReset::Earliest, OffsetReset::Latest] {
            match truncation(4, 120, 150, reset) {
                Truncation::Resume { offset, epoch } => assert_eq!((offset, epoch), (120, 4)),
                other => panic!("{other:?}"),
            }
        }
        // Never forward of the position.
        assert!(matches!(
            truncation(4, 900, 150, OffsetReset::Earliest),
            Truncation::Resume { offset: 150, .. }
        ));
        let Truncation::Fail(e) = truncation(4, 120, 150, OffsetReset::None) else {
            panic!("no reset policy")
        };
        let tp = TopicPartition { topic: Arc::from("t"), partition: 2 };
        let e = e.on_partition(&tp);
        assert_eq!(e.kind(), &ErrorKind::LogTruncation { position: 150, diverging_offset: 120 });
        assert!(!e.is_retriable());
        let text = e.to_string();
        assert!(text.contains("t-2") || text.contains("t/2") || text.contains("partition"), "{text}");
        assert!(text.contains("120") && text.contains("150"), "{text}");
    }
}
