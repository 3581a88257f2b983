//! The task that runs a `consumer` protocol member's
//! [`ConsumerMembership`](crate::consumer_membership::ConsumerMembership): it sends the
//! heartbeats the machine asks for to the group coordinator, looks up the coordinator and the
//! names of assigned topic ids, and feeds the outcomes back.
//!
//! One task per `GroupConsumer` with `group.protocol=consumer`, sharing the machine with the
//! consumer behind the same mutex as the classic driver ([`coordinator`](crate::coordinator)),
//! held only for the machine's own steps. A ConsumerGroupHeartbeat is answered at once (the
//! coordinator never holds it the way it holds a JoinGroup), so the request timeout bounds it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::protocol::api::consumer_group_heartbeat::ConsumerGroupHeartbeatRequest;
use klamm::protocol::{ApiKey, Uuid};
use klamm::{Error, ErrorKind};
use tracing::Instrument;

use crate::consumer_membership::{ConsumerAction, ConsumerMembership};
use crate::coordinator::{coordinator_connection, GroupShared};
use crate::membership::MemberState;

impl GroupShared {
    /// Runs `f` on the `consumer` protocol machine; `None` for a classic member.
    pub(crate) fn consumer<T>(&self, f: impl FnOnce(&mut ConsumerMembership) -> T) -> Option<T> {
        self.membership().consumer().map(f)
    }
}

/// Runs until the member has left (or failed) and has nothing more to send.
pub(crate) async fn run(shared: Arc<GroupShared>) {
    let span = tracing::info_span!("klamm.group", group = %shared.config.group_id, protocol = "consumer");
    drive(&shared).instrument(span).await;
    shared.stopped.store(true, Ordering::Release);
    shared.done.notify_waiters();
    shared.events.notify_one();
}

async fn drive(shared: &Arc<GroupShared>) {
    loop {
        let now = Instant::now();
        let step = shared.consumer(|m| {
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

async fn perform(shared: &Arc<GroupShared>, action: ConsumerAction) {
    let timeout = shared.config.consumer.client.connection.request_timeout;
    match action {
        ConsumerAction::FindCoordinator => {
            let result = within(timeout, shared.client.group_coordinator(&shared.config.group_id)).await;
            if let Ok(node) = &result {
                tracing::debug!(node, "found the group coordinator");
            }
            shared.consumer(|m| m.handle_coordinator(Instant::now(), result));
        }
        ConsumerAction::Heartbeat(request) => {
            let result = within(timeout, heartbeat(shared, request)).await;
            shared.consumer(|m| m.handle_heartbeat(Instant::now(), result));
        }
        ConsumerAction::ResolveTopics(ids) => {
            let result = within(timeout, topic_names(shared, &ids)).await;
            shared.consumer(|m| m.handle_topic_names(Instant::now(), result));
        }
    }
    shared.events.notify_one();
}

/// Sends one heartbeat at the highest version both sides have.
pub(crate) async fn heartbeat(
    shared: &GroupShared,
    mut request: ConsumerGroupHeartbeatRequest,
) -> Result<klamm::protocol::api::consumer_group_heartbeat::ConsumerGroupHeartbeatResponse, Error> {
    let conn = coordinator_connection(shared).await?;
    let version = conn.version_for::<ConsumerGroupHeartbeatRequest>()?;
    if version == 0 {
        // Before KIP-1082 (v1) the coordinator makes the member id: a member joins without.
        if request.member_epoch == 0 {
            request.member_id.clear();
        }
        if request.subscribed_topic_regex.is_some() {
            // A broker-side regex needs v1.
            return Err(Error::with_message(
                ErrorKind::UnsupportedVersion {
                    api_key: ApiKey::CONSUMER_GROUP_HEARTBEAT,
                    broker_range: conn.broker_versions(ApiKey::CONSUMER_GROUP_HEARTBEAT),
                },
                "a pattern subscription needs ConsumerGroupHeartbeat v1 (Apache Kafka 4.0+)",
            ));
        }
    }
    conn.send_at(version, &request).await
}

/// The names of topic ids, from the cached metadata or, for those it lacks, from a fresh
/// listing of every topic (the ids may name topics the member does not know by name, as a
/// pattern subscription's).
async fn topic_names(shared: &GroupShared, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>, Error> {
    let find = |snapshot: &klamm::ClusterMetadata| -> BTreeMap<Uuid, String> {
        snapshot.topics().filter(|t| ids.contains(&t.id)).map(|t| (t.id, t.name.clone())).collect()
    };
    let cached = find(&shared.client.metadata());
    if cached.len() == ids.len() {
        return Ok(cached);
    }
    let fresh = shared.client.refresh_all_metadata().await?;
    Ok(find(&fresh))
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| Err(Error::from(ErrorKind::Timeout)))
}

/// A member id for KIP-1082: random, made once per member (the coordinator keys the member by
/// it for the member's whole life, across rejoins). Unique, not secret.
pub(crate) fn new_member_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    Uuid::from_bytes(bytes).to_string()
}
