//! The task that runs a member's [`Membership`]: it performs the requests the state machine
//! asks for, against the group coordinator, and feeds back their outcomes.
//!
//! One task per [`GroupConsumer`](crate::GroupConsumer). The machine sits behind a mutex
//! shared with the consumer, which drains its events in `poll` and reports polls and finished
//! revocations; the mutex is only held for the machine's own (non-blocking) steps, never
//! across a request. Requests run one at a time: the machine never needs two at once (a
//! heartbeat is only due in the stable state, when no join or sync is pending). A JoinGroup
//! can be held by the coordinator for the whole rebalance timeout, so it is abandoned as soon
//! as the member starts leaving.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use klamm::protocol::api::leave_group::LeaveGroupRequest;
use klamm::{Client, ConnectionKind, Error, ErrorCode, ErrorKind};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::config::GroupConfig;
use crate::member::Member;
use crate::membership::{leave_request_at, Action, MemberState, Membership};
use crate::offsets::CommitOrder;

/// What the consumer and the coordinator task share.
pub(crate) struct GroupShared {
    pub(crate) client: Client,
    pub(crate) config: GroupConfig,
    pub(crate) membership: Mutex<Member>,
    /// Wakes the task: the machine may have something to do.
    pub(crate) wake: Notify,
    /// Wakes the consumer: the machine has an event.
    pub(crate) events: Notify,
    /// Set when the task has stopped.
    pub(crate) stopped: AtomicBool,
    /// Signalled when the task stops.
    pub(crate) done: Notify,
    /// The pattern of a pattern subscription: the task subscribes to the topics matching it,
    /// checking again every `metadata.max.age.ms`.
    pub(crate) pattern: Mutex<Option<regex::Regex>>,
    /// Keeps commits of one partition from landing out of order.
    pub(crate) commit_order: CommitOrder,
    /// The error of the last group request that failed, cleared by one that succeeds: why
    /// the member is not stable, for [`GroupStall`](crate::stall::GroupStall).
    pub(crate) problem: Mutex<Option<Error>>,
    /// Subscribed topics that do not exist, with when they were first found missing.
    pub(crate) missing_topics: Mutex<BTreeMap<String, Instant>>,
    /// Subscribed topics whose lookup failed for good (TOPIC_AUTHORIZATION_FAILED, say), with
    /// the error.
    pub(crate) refused_topics: Mutex<BTreeMap<String, Error>>,
}

impl GroupShared {
    pub(crate) fn membership(&self) -> MutexGuard<'_, Member> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the classic machine; `None` for a `consumer` protocol member (whose
    /// driver is [`consumer_driver`](crate::consumer_driver)).
    pub(crate) fn classic<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> Option<T> {
        self.membership().classic().map(f)
    }
}

/// Runs until the member has left (or failed) and has nothing more to send.
pub(crate) async fn run(shared: Arc<GroupShared>) {
    let span = tracing::info_span!("klamm.group", group = %shared.config.group_id);
    drive(&shared).instrument(span).await;
    shared.stopped.store(true, Ordering::Release);
    shared.done.notify_waiters();
    shared.events.notify_one();
}

async fn drive(shared: &Arc<GroupShared>) {
    let mut pattern_check = Instant::now();
    let mut last_pattern: Option<String> = None;
    // As the group's leader: the partition counts of the group's topics, checked every
    // `metadata.max.age.ms` against those the assignment used. A change (partitions added, a
    // topic created or deleted) needs a new assignment.
    let mut shape_check = Instant::now() + shared.config.consumer.client.metadata_max_age;
    // Whether the subscribed topics exist: looked up after each subscribe, then every
    // `MISSING_TOPIC_CHECK` while one is missing, else every `metadata.max.age.ms`.
    let mut topic_check = Instant::now();
    let mut checked: BTreeSet<String> = BTreeSet::new();
    loop {
        let subscription = shared.membership().subscribed_topics();
        if subscription != checked || (!subscription.is_empty() && Instant::now() >= topic_check) {
            let any_missing = check_topics(shared, &subscription).await;
            checked = subscription;
            topic_check = Instant::now()
                + if any_missing {
                    MISSING_TOPIC_CHECK
                } else {
                    shared.config.consumer.client.metadata_max_age
                };
        }
        if Instant::now() >= shape_check {
            let view = shared
                .classic(|m| m.leader_view().filter(|_| m.state() == MemberState::Stable).cloned())
                .flatten();
            if let Some((topics, used)) = view {
                if let Ok(now) = partition_counts(shared, &topics).await {
                    if now != used {
                        tracing::info!(?now, ?used, "the group's topics changed; rebalancing");
                        shared.classic(|m| m.request_rejoin(Instant::now()));
                    }
                }
            }
            shape_check = Instant::now() + shared.config.consumer.client.metadata_max_age;
        }
        let pattern = shared.pattern.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if pattern.is_none() {
            last_pattern = None;
        }
        let changed = pattern.as_ref().map(|p| p.as_str()) != last_pattern.as_deref();
        if let Some(pattern) = pattern.filter(|_| changed || Instant::now() >= pattern_check) {
            match_pattern(shared, &pattern).await;
            last_pattern = Some(pattern.as_str().to_string());
            pattern_check = Instant::now() + shared.config.consumer.client.metadata_max_age;
        }
        let now = Instant::now();
        let step = shared.classic(|m| {
            m.handle_timeout(now);
            let action = m.poll_action(now);
            (action, m.poll_timeout(), m.state(), m.has_events())
        });
        let Some((action, next, state, has_events)) = step else { return };
        if has_events {
            shared.events.notify_one();
        }
        match action {
            Some(action) => perform(shared, action).await,
            None if state == MemberState::Left => return,
            None => {
                let wake = shared.wake.notified();
                let has_pattern = shared.pattern.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                let next = if has_pattern {
                    Some(next.map_or(pattern_check, |n| n.min(pattern_check)))
                } else {
                    next
                };
                let next = Some(next.map_or(shape_check, |n| n.min(shape_check)));
                let next = if checked.is_empty() { next } else { next.map(|n| n.min(topic_check)) };
                match next {
                    Some(at) => {
                        let _ = tokio::time::timeout_at(at.into(), wake).await;
                    }
                    None => wake.await,
                }
            }
        }
    }
}

/// How often the subscribed topics are looked up again while one of them is missing.
const MISSING_TOPIC_CHECK: Duration = Duration::from_secs(5);

/// Looks up each subscribed topic, and keeps [`GroupShared::missing_topics`] up to date;
/// returns whether one is missing. A lookup that fails for another reason changes nothing.
async fn check_topics(shared: &GroupShared, topics: &BTreeSet<String>) -> bool {
    let mut missing = Vec::new();
    let mut present = Vec::new();
    let mut refused = BTreeMap::new();
    for topic in topics {
        let timeout = shared.config.consumer.client.connection.request_timeout;
        match within(timeout, shared.client.topic(topic)).await {
            Ok(_) => present.push(topic),
            Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => missing.push(topic),
            Err(e) if !e.is_retriable() => {
                refused.insert(topic.clone(), e);
            }
            Err(e) => tracing::debug!(topic = %topic, error = %e, "cannot look the subscribed topic up"),
        }
    }
    let any_refused = !refused.is_empty();
    let was_refused = {
        let mut known = shared.refused_topics.lock().unwrap_or_else(|e| e.into_inner());
        let was = !known.is_empty();
        *known = refused;
        was
    };
    if any_refused || was_refused {
        shared.events.notify_one();
    }
    let now = Instant::now();
    let mut known = shared.missing_topics.lock().unwrap_or_else(|e| e.into_inner());
    let before = known.len();
    let appeared = known.keys().any(|t| present.contains(&t));
    known.retain(|t, _| topics.contains(t) && !present.contains(&t));
    for topic in missing {
        known.entry(topic.clone()).or_insert(now);
    }
    let any = !known.is_empty();
    let changed = known.len() != before;
    drop(known);
    if appeared {
        // A leader that assigned without the topic assigns again now, rather than at its next
        // check of the topics' shape (`metadata.max.age.ms`).
        shared.classic(|m| {
            if m.leader_view().is_some() && m.state() == MemberState::Stable {
                tracing::info!("a subscribed topic that was missing exists now; rebalancing");
                m.request_rejoin(now);
            }
        });
    }
    if any || changed {
        // The consumer's poll looks at them.
        shared.events.notify_one();
    }
    any || any_refused
}

/// Like [`note`], for a response that carries an error code: a code other than those the
/// protocol answers on its way (MEMBER_ID_REQUIRED on a first join) is the problem then.
fn note_code<T>(shared: &GroupShared, result: &Result<T, Error>, code: impl Fn(&T) -> i16) {
    let code = match result {
        Ok(response) => ErrorCode(code(response)),
        Err(_) => return note(shared, result),
    };
    if code.is_err() && code != ErrorCode::MEMBER_ID_REQUIRED {
        *shared.problem.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Error::from(ErrorKind::Broker(code)));
    } else {
        note(shared, result);
    }
}

/// Keeps the error of a failed request on the way to joining as the member's current problem;
/// one that went through leaves the problem as it was (finding the coordinator again is no
/// progress when its JoinGroup answers fail).
fn note_failure<T>(shared: &GroupShared, result: &Result<T, Error>) {
    if result.is_err() {
        note(shared, result);
    }
}

/// Keeps the error of a failed join or sync as the member's current problem; one that went
/// through clears it.
fn note<T>(shared: &GroupShared, result: &Result<T, Error>) {
    let mut problem = shared.problem.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(_) => *problem = None,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::Connect { .. }) {
                tracing::debug!(error = %e, "no connection for a group request");
            }
            *problem = Some(e.clone());
        }
    }
}

async fn perform(shared: &Arc<GroupShared>, action: Action) {
    let group = &shared.config.group_id;
    match action {
        Action::FindCoordinator => {
            let result = within(
                shared.config.consumer.client.connection.request_timeout,
                shared.client.group_coordinator(group),
            )
            .await;
            if let Ok(node) = &result {
                tracing::debug!(node, "found the group coordinator");
            }
            note_failure(shared, &result);
            shared.classic(|m| m.handle_coordinator(Instant::now(), result));
        }
        Action::Join(request) => {
            // The coordinator answers once the group has gathered: up to the rebalance
            // timeout, plus a margin for the answer itself.
            let timeout = shared.config.max_poll_interval + Duration::from_secs(5);
            let join = async {
                let conn = coordinator_connection(shared).await?;
                conn.send_with_timeout(&request, timeout).await
            };
            tokio::select! {
                result = join => {
                    note_code(shared, &result, |r| r.error_code);
                    shared.classic(|m| m.handle_join(Instant::now(), result));
                }
                () = leaving(shared) => {
                    tracing::debug!("abandoning JoinGroup: the member is leaving");
                }
            }
        }
        Action::FetchMetadata(topics) => {
            let result = partition_counts(shared, &topics).await;
            note_failure(shared, &result);
            shared.classic(|m| m.handle_metadata(Instant::now(), result));
        }
        Action::Sync(request) => {
            let result = async { coordinator_connection(shared).await?.send(&request).await }.await;
            note_code(shared, &result, |r| r.error_code);
            shared.classic(|m| m.handle_sync(Instant::now(), result));
        }
        Action::Heartbeat(request) => {
            let result = async { coordinator_connection(shared).await?.send(&request).await }.await;
            shared.classic(|m| m.handle_heartbeat(Instant::now(), result));
        }
        Action::Leave(request) => {
            let result = async {
                let conn = coordinator_connection(shared).await?;
                let version = conn.version_for::<LeaveGroupRequest>()?;
                conn.send_at(version, &leave_request_at(&request, version)).await
            }
            .await;
            shared.classic(|m| m.handle_leave(Instant::now(), result));
        }
    }
    shared.events.notify_one();
}

/// Subscribes to the topics that match `pattern` now (internal topics never match).
async fn match_pattern(shared: &GroupShared, pattern: &regex::Regex) {
    let snapshot = match within(
        shared.config.consumer.client.connection.request_timeout,
        shared.client.refresh_all_metadata(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list topics for the pattern subscription");
            return;
        }
    };
    let topics: Vec<String> = snapshot
        .topics()
        .filter(|t| !t.is_internal && pattern.is_match(&t.name))
        .map(|t| t.name.clone())
        .collect();
    tracing::debug!(?topics, "pattern subscription matched");
    shared.classic(|m| m.subscribe(topics, Instant::now()));
}

/// Resolves once the member has started leaving (checked whenever the task is woken).
async fn leaving(shared: &GroupShared) {
    loop {
        let woken = shared.wake.notified();
        if matches!(shared.membership().state(), MemberState::Leaving | MemberState::Left) {
            return;
        }
        woken.await;
    }
}

/// The group connection to the current coordinator.
pub(crate) async fn coordinator_connection(shared: &GroupShared) -> Result<klamm::Connection, Error> {
    let node = shared.membership().coordinator();
    let node = match node {
        Some(node) => node,
        None => shared.client.group_coordinator(&shared.config.group_id).await?,
    };
    shared.client.connection(node, ConnectionKind::Group).await
}

/// Partition counts of `topics` for the leader's assignment; topics that do not exist are
/// left out (their subscribers get nothing of them).
async fn partition_counts(shared: &GroupShared, topics: &[String]) -> Result<BTreeMap<String, u32>, Error> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let snapshot = within(
        shared.config.consumer.client.connection.request_timeout,
        shared.client.refresh_metadata(&names),
    )
    .await?;
    let mut out = BTreeMap::new();
    for topic in topics {
        if let Some(meta) = snapshot.topic(topic) {
            let count = meta.partition_count();
            if count > 0 {
                out.insert(topic.clone(), count);
            }
        }
    }
    Ok(out)
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| Err(Error::from(ErrorKind::Timeout)))
}
