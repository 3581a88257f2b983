//! Classic group membership as a state machine with no IO (FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup).
//!
//! [`Membership`] never touches a socket or a clock. Its driver asks it what to do next
//! ([`Membership::poll_action`]), performs that (a request to the coordinator, a metadata
//! lookup) and hands the outcome back (`handle_*`), passing the current time in every call;
//! it sleeps until [`Membership::poll_timeout`] and then calls
//! [`Membership::handle_timeout`]. What the application must hear comes out of
//! [`Membership::poll_event`]: partitions assigned, partitions to revoke (acknowledged with
//! [`Membership::revocation_done`]), partitions lost, or a fatal error. So a unit test plays a
//! whole rebalance, a coordinator move or a session expiry in microseconds with a fake clock.
//!
//! ```text
//!                 subscribe / rejoin needed
//!   Unjoined ───────────────────────────────> WaitingToJoin ──(eager: revoke all first)──┐
//!      ^                                           │  coordinator known, backoff over     │
//!      │ poll timeout (left)                       v                                      │
//!      │                                        Joining ──JoinGroup ok, leader──> Assigning (metadata)
//!      │                                           │ follower                        │
//!      │                                           v                                 v
//!      │                                        Syncing <────────────── SyncGroup with assignments
//!      │                                           │ ok
//!      │                                           v
//!      └─────────────────────────────────────── Stable ──heartbeat REBALANCE_IN_PROGRESS,
//!                                                  │      cooperative revocation done──> WaitingToJoin
//!                                                  └── leave() ──> Leaving ──> Left
//! ```
//!
//! Errors follow the Java client: MEMBER_ID_REQUIRED rejoins with the id the broker gave;
//! UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION, in answer to JoinGroup, SyncGroup, Heartbeat or
//! OffsetCommit ([`Membership::handle_commit_error`]), lose the partitions (the group moved on
//! without us) and rejoin owning nothing, the first also forgetting the member id;
//! [`Membership::check_commit`] keeps commits to the generation they were made in and to the
//! partitions the member owns; NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE and lost connections look the coordinator up again;
//! REBALANCE_IN_PROGRESS rejoins; FENCED_INSTANCE_ID, authorization and configuration errors
//! are fatal. A member that is not polled within `max.poll.interval.ms` leaves the group (a
//! static member just stops, so that it can come back within the session timeout without a
//! rebalance) and loses its partitions.
//!
//! The events are the same ones a KIP-848 (`consumer` protocol) member would produce, so a
//! second machine for ConsumerGroupHeartbeat can sit behind the same driver and API.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::Error;
use klamm_protocol::api::consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicPartition as WireTopicPartition,
};
use klamm_protocol::api::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use klamm_protocol::api::join_group::{JoinGroupRequest, JoinGroupRequestProtocol, JoinGroupResponse};
use klamm_protocol::api::leave_group::{LeaveGroupRequest, LeaveGroupResponse, MemberIdentity};
use klamm_protocol::api::sync_group::{SyncGroupRequest, SyncGroupRequestAssignment, SyncGroupResponse};
use klamm_protocol::ErrorCode;

use crate::assignor::{Assignor, MemberSubscription, RebalanceProtocol, TopicPartition};

/// The protocol type of consumer groups in JoinGroup and SyncGroup.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The subscription version Klamm sends: v3 (owned partitions, generation, rack), which Kafka
/// 2.x+ brokers relay untouched and current Java and librdkafka members read.
const SUBSCRIPTION_VERSION: i16 = 3;

/// Settings of one member.
#[derive(Clone)]
pub struct MembershipConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: set for a static member.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: how long the coordinator waits for a heartbeat before it drops
    /// the member.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: the longest the application may go without polling; also the
    /// rebalance timeout the member gives the coordinator.
    pub max_poll_interval: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `retry.backoff.ms`: the wait before retrying after an error.
    pub retry_backoff: Duration,
    /// The assignors this member supports, most preferred first.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// `client.rack`.
    pub rack: Option<String>,
}

impl fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("session_timeout", &self.session_timeout)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("assignors", &self.assignors.iter().map(|a| a.name()).collect::<Vec<_>>())
            .finish()
    }
}

impl MembershipConfig {
    /// The rebalance protocol this member follows: cooperative only when every assignor it
    /// lists supports it (as in the Java client), since the group may pick any of them.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.assignors.iter().map(|a| a.protocol()).min().unwrap_or(RebalanceProtocol::Eager)
    }
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Find the group's coordinator; answer with [`Membership::handle_coordinator`].
    FindCoordinator,
    /// Send to the coordinator; answer with [`Membership::handle_join`]. The coordinator
    /// holds the answer until the group has gathered (up to the rebalance timeout,
    /// `max.poll.interval.ms`), so the request's timeout must be longer than that.
    Join(JoinGroupRequest),
    /// Look up the partition counts of these topics (the member leads this generation);
    /// answer with [`Membership::handle_metadata`].
    FetchMetadata(Vec<String>),
    /// Send to the coordinator; answer with [`Membership::handle_sync`].
    Sync(SyncGroupRequest),
    /// Send to the coordinator; answer with [`Membership::handle_heartbeat`].
    Heartbeat(HeartbeatRequest),
    /// Send to the coordinator, shaped for the version sent with [`leave_request_at`];
    /// answer with [`Membership::handle_leave`].
    Leave(LeaveGroupRequest),
}

/// Something the application must hear.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEvent {
    /// These partitions are now the member's (in addition to what it kept).
    Assigned(Vec<TopicPartition>),
    /// Stop consuming these partitions, commit and save what must be saved, then call
    /// [`Membership::revocation_done`]. They are still the member's until then: nobody else
    /// gets them before the member rejoins.
    Revoke(Vec<TopicPartition>),
    /// These partitions were already taken away (the member fell out of the group): stop
    /// consuming them; commits for them will fail.
    Lost(Vec<TopicPartition>),
    /// The member cannot go on (fenced, not authorized, misconfigured).
    Fatal(FatalError),
}

/// Why a member stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group}: {code} in {during}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct FatalError {
    /// The group.
    pub group: String,
    /// The broker's error.
    pub code: ErrorCode,
    /// The request it answered.
    pub during: &'static str,
    /// More about it, when there is more.
    pub detail: Option<String>,
}

/// Why [`Membership::check_commit`] refuses a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRefused {
    /// The member is not in a generation with a known assignment (not joined yet, fenced, or
    /// between JoinGroup and SyncGroup).
    #[error("the member is not in a generation of the group (joining, rebalancing or fenced)")]
    NotInGeneration,
    /// The member's generation (or member id) changed since the commit was made: the
    /// partitions may have moved in between.
    #[error("the member's generation changed from {from} to {to} since the commit was made")]
    GenerationChanged {
        /// The generation the commit was made in.
        from: i32,
        /// The member's generation now.
        to: i32,
    },
    /// The member does not own this partition (any more): another member may.
    #[error("{0} is not assigned to this member")]
    NotOwned(TopicPartition),
}

impl CommitRefused {
    /// The Kafka error a commit refused for this reason fails with, the one the coordinator
    /// would answer: REBALANCE_IN_PROGRESS while (re)joining, ILLEGAL_GENERATION otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            CommitRefused::NotInGeneration => ErrorCode::REBALANCE_IN_PROGRESS,
            CommitRefused::GenerationChanged { .. } | CommitRefused::NotOwned(_) => {
                ErrorCode::ILLEGAL_GENERATION
            }
        }
    }
}

/// Where the member stands in the group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not in the group and not trying to be (no subscription, or left after a poll timeout
    /// until the next poll).
    Unjoined,
    /// Waiting to send JoinGroup (for the coordinator, a backoff, or a revocation).
    WaitingToJoin,
    /// JoinGroup sent.
    Joining,
    /// Leader of the new generation, waiting for topic metadata to assign.
    Assigning,
    /// SyncGroup sent.
    Syncing,
    /// In the group with an assignment, heartbeating.
    Stable,
    /// LeaveGroup being sent.
    Leaving,
    /// Left, or failed: nothing more will happen.
    Left,
}

/// One group member's protocol state. See the module docs.
pub struct Membership {
    config: MembershipConfig,
    protocol: RebalanceProtocol,
    state: MemberState,
    topics: BTreeSet<String>,
    member_id: String,
    generation: i32,
    /// The assignor the group chose in the current generation.
    group_protocol: Option<String>,
    /// The partitions the member owns.
    owned: BTreeSet<TopicPartition>,
    coordinator: Option<i32>,
    coordinator_in_flight: bool,
    coordinator_retry_at: Instant,
    /// When `WaitingToJoin` may send JoinGroup.
    join_at: Instant,
    /// Partitions handed out in `Revoke` events and not acknowledged yet, one entry per
    /// event, oldest first. They stay in `owned` until acknowledged.
    revoking: VecDeque<Vec<TopicPartition>>,
    /// Join once every pending revocation is done.
    rejoin_after_revoke: bool,
    /// The leader's pending work: the members' subscriptions, while `Assigning`.
    leading: Option<Vec<MemberSubscription>>,
    /// As leader of the current generation: the topics the members subscribe to and the
    /// partition counts the assignment was computed from.
    leader_view: Option<(Vec<String>, BTreeMap<String, u32>)>,
    /// The topics the pending assignment asked metadata for.
    leading_topics: Vec<String>,
    heartbeat_at: Instant,
    heartbeat_in_flight: bool,
    last_heartbeat_ok: Instant,
    last_poll: Instant,
    leave_sent: bool,
    actions: VecDeque<Action>,
    events: VecDeque<GroupEvent>,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.config.group_id)
            .field("state", &self.state)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("owned", &self.owned)
            .finish()
    }
}

impl Membership {
    /// A member that has not joined yet.
    pub fn new(config: MembershipConfig, now: Instant) -> Self {
        Membership {
            protocol: config.rebalance_protocol(),
            config,
            state: MemberState::Unjoined,
            topics: BTreeSet::new(),
            member_id: String::new(),
            generation: -1,
            group_protocol: None,
            owned: BTreeSet::new(),
            coordinator: None,
            coordinator_in_flight: false,
            coordinator_retry_at: now,
            join_at: now,
            revoking: VecDeque::new(),
            rejoin_after_revoke: false,
            leading: None,
            leader_view: None,
            leading_topics: Vec::new(),
            heartbeat_at: now,
            heartbeat_in_flight: false,
            last_heartbeat_ok: now,
            last_poll: now,
            leave_sent: false,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Where the member stands.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// The member id the coordinator gave (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The current generation, -1 when not in one.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The coordinator's node id, when known.
    pub fn coordinator(&self) -> Option<i32> {
        self.coordinator
    }

    /// The coordinator stopped answering (a lost connection, NOT_COORDINATOR in a commit):
    /// look it up again. The generation stands.
    pub fn coordinator_unknown(&mut self, now: Instant) {
        if self.coordinator.is_some() {
            self.coordinator_lost(now);
        }
    }

    /// The partitions the member owns now.
    pub fn assignment(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    /// The assignor the group chose in this generation.
    pub fn group_protocol(&self) -> Option<&str> {
        self.group_protocol.as_deref()
    }

    /// The rebalance protocol this member follows.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// Subscribes to `topics` (replacing the previous subscription) and joins, or rejoins
    /// when the topics changed.
    pub fn subscribe(&mut self, topics: impl IntoIterator<Item = String>, now: Instant) {
        let topics: BTreeSet<String> = topics.into_iter().collect();
        if topics == self.topics && self.state != MemberState::Unjoined {
            return;
        }
        self.topics = topics;
        self.last_poll = now;
        match self.state {
            MemberState::Leaving | MemberState::Left => {}
            MemberState::Stable => {
                // Partitions of topics no longer subscribed go first (cooperative); the eager
                // protocol revokes everything when it rejoins anyway. Partitions already being
                // revoked stay in their own revocation: this one comes after it, and each is
                // acknowledged on its own, so neither is lost track of.
                let dropped: Vec<TopicPartition> = self
                    .owned
                    .iter()
                    .filter(|tp| !self.topics.contains(&*tp.topic) && !self.is_revoking(tp))
                    .cloned()
                    .collect();
                if self.protocol == RebalanceProtocol::Cooperative && !dropped.is_empty() {
                    self.start_revoke(dropped, true);
                } else {
                    self.rejoin(now, Duration::ZERO);
                }
            }
            _ => self.rejoin(now, Duration::ZERO),
        }
    }

    /// When this member leads the current generation: the topics the group subscribes to
    /// and the partition counts its assignment used. The driver compares them with fresh
    /// metadata and calls [`Membership::request_rejoin`] when they differ (partitions added,
    /// a subscribed topic created or deleted), as the Java client's leader does.
    pub fn leader_view(&self) -> Option<&(Vec<String>, BTreeMap<String, u32>)> {
        self.leader_view.as_ref()
    }

    /// The topics the member subscribes to.
    pub fn subscription(&self) -> &BTreeSet<String> {
        &self.topics
    }

    /// Asks for a rebalance (the subscribed topics changed shape, say a partition was added):
    /// a stable member rejoins now. Ignored in any other state (a rebalance is on its way).
    pub fn request_rejoin(&mut self, now: Instant) {
        if self.state == MemberState::Stable && self.revoking.is_empty() {
            self.rejoin(now, Duration::ZERO);
        }
    }

    /// The application polled: resets the `max.poll.interval.ms` clock, and rejoins a member
    /// that left after missing it.
    pub fn poll(&mut self, now: Instant) {
        self.last_poll = now;
        if self.state == MemberState::Unjoined && !self.topics.is_empty() {
            self.rejoin(now, Duration::ZERO);
        }
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        if let Some(action) = self.actions.pop_front() {
            return Some(action);
        }
        match self.state {
            MemberState::Unjoined | MemberState::Left | MemberState::Assigning => None,
            MemberState::Leaving => {
                // The application commits in its revocation handler: leave after that.
                if self.leave_sent || !self.revoking.is_empty() {
                    return None;
                }
                if self.config.group_instance_id.is_some() {
                    self.finish_leaving(now);
                    return None;
                }
                self.leave_sent = true;
                Some(Action::Leave(self.leave_request()))
            }
            _ if self.coordinator.is_none() => self.find_coordinator(now),
            MemberState::WaitingToJoin => {
                if now < self.join_at || !self.revoking.is_empty() {
                    return None;
                }
                if self.protocol == RebalanceProtocol::Eager && !self.owned.is_empty() {
                    // Eager: give everything back before joining.
                    let all = self.owned.iter().cloned().collect();
                    self.start_revoke(all, true);
                    return None;
                }
                // Cooperative: partitions of topics no longer subscribed are given up before
                // joining (as the Java client's onJoinPrepare does), so the subscription never
                // claims them; a `subscribe` in the middle of a rebalance lands here.
                let dropped: Vec<TopicPartition> =
                    self.owned.iter().filter(|tp| !self.topics.contains(&*tp.topic)).cloned().collect();
                if !dropped.is_empty() {
                    self.start_revoke(dropped, true);
                    return None;
                }
                self.state = MemberState::Joining;
                Some(Action::Join(self.join_request()))
            }
            MemberState::Stable => {
                if self.heartbeat_in_flight || now < self.heartbeat_at {
                    return None;
                }
                self.heartbeat_in_flight = true;
                Some(Action::Heartbeat(HeartbeatRequest {
                    group_id: self.config.group_id.clone(),
                    generation_id: self.generation,
                    member_id: self.member_id.clone(),
                    group_instance_id: self.config.group_instance_id.clone(),
                    ..Default::default()
                }))
            }
            MemberState::Joining | MemberState::Syncing => None,
        }
    }

    /// Whether events are waiting for [`Membership::poll_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// When [`Membership::handle_timeout`] must be called next (a heartbeat, a retry, the
    /// poll interval), if anything is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.state {
            MemberState::Unjoined | MemberState::Left | MemberState::Leaving => return None,
            // Nothing else can happen before the coordinator is known.
            _ if self.coordinator.is_none() && !self.coordinator_in_flight => at(self.coordinator_retry_at),
            _ if self.coordinator.is_none() => {}
            MemberState::WaitingToJoin if self.revoking.is_empty() => at(self.join_at),
            MemberState::Stable if !self.heartbeat_in_flight => at(self.heartbeat_at),
            _ => {}
        }
        if self.generation >= 0 {
            at(self.last_poll + self.config.max_poll_interval);
        }
        next
    }

    /// Time passed: checks the poll interval. (Heartbeats and retries come out of
    /// [`Membership::poll_action`] once due.)
    pub fn handle_timeout(&mut self, now: Instant) {
        let joined =
            matches!(self.state, MemberState::Stable | MemberState::Syncing | MemberState::Assigning);
        if joined && now >= self.last_poll + self.config.max_poll_interval {
            self.poll_interval_expired();
        }
        if self.state == MemberState::Stable
            && self.coordinator.is_some()
            && now >= self.last_heartbeat_ok + self.config.session_timeout
        {
            // No heartbeat got through for a whole session: the coordinator is likely gone
            // (or moved). Find it again; the generation stands until a response says not.
            self.coordinator_lost(now);
        }
    }

    /// The outcome of [`Action::FindCoordinator`]: the coordinator's node id.
    pub fn handle_coordinator(&mut self, now: Instant, result: Result<i32, Error>) {
        self.coordinator_in_flight = false;
        match result {
            Ok(node) => {
                self.coordinator = Some(node);
                self.last_heartbeat_ok = now;
            }
            Err(e) => {
                if let Some(code) = e.code().filter(|c| is_fatal(*c)) {
                    self.fail(code, "FindCoordinator", Some(e.to_string()));
                    return;
                }
                // The same credentials fail again: stop rather than retry forever.
                if e.is_authentication_error() {
                    self.fail(ErrorCode::SASL_AUTHENTICATION_FAILED, "FindCoordinator", Some(e.to_string()));
                    return;
                }
                self.coordinator_retry_at = now + self.config.retry_backoff;
            }
        }
    }

    /// The outcome of [`Action::Join`].
    pub fn handle_join(&mut self, now: Instant, result: Result<JoinGroupResponse, Error>) {
        if self.state != MemberState::Joining {
            return;
        }
        let response = match result {
            Ok(r) => r,
            Err(e) => return self.request_failed(now, &e, true),
        };
        let code = ErrorCode(response.error_code);
        match code {
            ErrorCode::NONE => {}
            ErrorCode::MEMBER_ID_REQUIRED => {
                self.member_id = response.member_id;
                return self.rejoin(now, Duration::ZERO);
            }
            // The group moved on without the member: what it owned went to others meanwhile,
            // so it is lost (as in the Java client, whose reset generation makes the next join
            // call onPartitionsLost), and the member rejoins owning nothing. Keeping the
            // partitions would keep fetching them, claim them in the next subscription and let
            // a revocation handler commit over their new owner.
            code @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION) => {
                return self.fenced(now, code == ErrorCode::UNKNOWN_MEMBER_ID);
            }
            ErrorCode::REBALANCE_IN_PROGRESS => return self.rejoin(now, Duration::ZERO),
            c if is_coordinator_error(c) => {
                self.coordinator_lost(now);
                return self.rejoin(now, Duration::ZERO);
            }
            c if is_fatal(c) => return self.fail(c, "JoinGroup", None),
            _ => return self.rejoin(now, self.config.retry_backoff),
        }
        self.member_id = response.member_id;
        self.generation = response.generation_id;
        self.leader_view = None;
        self.group_protocol = response.protocol_name;
        if response.leader == self.member_id && !response.skip_assignment {
            let members = response
                .members
                .into_iter()
                .filter_map(|m| decode_member(m.member_id, m.group_instance_id, m.metadata))
                .collect::<Vec<_>>();
            let mut topics: BTreeSet<String> = BTreeSet::new();
            for m in &members {
                topics.extend(m.topics.iter().cloned());
            }
            self.leading = Some(members);
            self.state = MemberState::Assigning;
            self.leading_topics = topics.into_iter().collect();
            self.actions.push_back(Action::FetchMetadata(self.leading_topics.clone()));
        } else {
            self.send_sync(Vec::new());
        }
    }

    /// The outcome of [`Action::FetchMetadata`]: partition counts by topic (topics that do
    /// not exist left out). Runs the group's assignor and sends the assignments.
    pub fn handle_metadata(&mut self, now: Instant, result: Result<BTreeMap<String, u32>, Error>) {
        if self.state != MemberState::Assigning {
            return;
        }
        let Some(members) = self.leading.take() else { return };
        let counts = match result {
            Ok(counts) => counts,
            Err(_) => return self.rejoin(now, self.config.retry_backoff),
        };
        let chosen = self
            .group_protocol
            .as_deref()
            .and_then(|name| self.config.assignors.iter().find(|a| a.name() == name).cloned());
        let Some(assignor) = chosen else {
            let detail =
                format!("the group chose {:?}, which this member does not offer", self.group_protocol);
            return self.fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, "JoinGroup", Some(detail));
        };
        let plan = assignor.assign(&counts, &members);
        self.leader_view = Some((std::mem::take(&mut self.leading_topics), counts));
        let mut assignments = Vec::with_capacity(plan.len());
        for (member_id, partitions) in plan {
            let body = ConsumerProtocolAssignment {
                assigned_partitions: to_wire(&partitions),
                user_data: None,
                ..Default::default()
            };
            // Version 0 of the assignment has the layout every version shares, and every
            // client reads it. It cannot fail: the version is known.
            let bytes = body.to_bytes(0).unwrap_or_default();
            assignments.push(SyncGroupRequestAssignment {
                member_id,
                assignment: bytes,
                ..Default::default()
            });
        }
        self.send_sync(assignments);
    }

    /// The outcome of [`Action::Sync`].
    pub fn handle_sync(&mut self, now: Instant, result: Result<SyncGroupResponse, Error>) {
        if self.state != MemberState::Syncing {
            return;
        }
        let response = match result {
            Ok(r) => r,
            Err(e) => return self.request_failed(now, &e, true),
        };
        match ErrorCode(response.error_code) {
            ErrorCode::NONE => {}
            ErrorCode::REBALANCE_IN_PROGRESS => return self.rejoin(now, Duration::ZERO),
            code @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION) => {
                return self.fenced(now, code == ErrorCode::UNKNOWN_MEMBER_ID);
            }
            c if is_coordinator_error(c) => {
                self.coordinator_lost(now);
                return self.rejoin(now, Duration::ZERO);
            }
            c if is_fatal(c) => return self.fail(c, "SyncGroup", None),
            _ => return self.rejoin(now, self.config.retry_backoff),
        }
        let assigned: BTreeSet<TopicPartition> = if response.assignment.is_empty() {
            BTreeSet::new()
        } else {
            match ConsumerProtocolAssignment::from_bytes(response.assignment) {
                Ok(a) => from_wire(&a.assigned_partitions),
                Err(e) => {
                    let detail = format!("unreadable assignment from the leader: {e}");
                    tracing::warn!(group = %self.config.group_id, "{detail}; rejoining");
                    return self.rejoin(now, self.config.retry_backoff);
                }
            }
        };
        self.state = MemberState::Stable;
        self.heartbeat_at = now + self.config.heartbeat_interval;
        self.last_heartbeat_ok = now;
        let revoked: Vec<TopicPartition> = self.owned.difference(&assigned).cloned().collect();
        let added: Vec<TopicPartition> = assigned.difference(&self.owned).cloned().collect();
        tracing::info!(
            group = %self.config.group_id,
            generation = self.generation,
            member = %self.member_id,
            assigned = added.len(),
            revoked = revoked.len(),
            "joined the group"
        );
        self.owned.extend(added.iter().cloned());
        if !added.is_empty() || revoked.is_empty() {
            self.events.push_back(GroupEvent::Assigned(added));
        }
        if !revoked.is_empty() {
            // Cooperative: give these up, then rejoin so that their new owners get them.
            self.start_revoke(revoked, true);
        }
    }

    /// The outcome of [`Action::Heartbeat`].
    pub fn handle_heartbeat(&mut self, now: Instant, result: Result<HeartbeatResponse, Error>) {
        self.heartbeat_in_flight = false;
        if self.state != MemberState::Stable {
            return;
        }
        self.heartbeat_at = now + self.config.heartbeat_interval;
        let response = match result {
            Ok(r) => r,
            Err(e) => return self.request_failed(now, &e, false),
        };
        match ErrorCode(response.error_code) {
            ErrorCode::NONE => self.last_heartbeat_ok = now,
            ErrorCode::REBALANCE_IN_PROGRESS => {
                self.last_heartbeat_ok = now;
                if self.revoking.is_empty() {
                    self.rejoin(now, Duration::ZERO);
                }
            }
            code @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION) => {
                self.fenced(now, code == ErrorCode::UNKNOWN_MEMBER_ID)
            }
            c if is_coordinator_error(c) => self.coordinator_lost(now),
            c if is_fatal(c) => self.fail(c, "Heartbeat", None),
            _ => self.heartbeat_at = now + self.config.retry_backoff,
        }
    }

    /// The application finished with `partitions`, those of a [`GroupEvent::Revoke`] it took:
    /// they are no longer the member's. An acknowledgement that matches no pending revocation
    /// (one made moot by a loss or by leaving) changes nothing.
    pub fn revocation_done(&mut self, now: Instant, partitions: &[TopicPartition]) {
        let Some(i) = self.revoking.iter().position(|r| r.as_slice() == partitions) else { return };
        let revoked = self.revoking.remove(i).unwrap_or_default();
        for tp in &revoked {
            self.owned.remove(tp);
        }
        if !self.revoking.is_empty() {
            return;
        }
        if self.state == MemberState::Leaving && self.config.group_instance_id.is_some() {
            // A static member sends no LeaveGroup: it is done once its revocation is.
            return self.finish_leaving(now);
        }
        if std::mem::take(&mut self.rejoin_after_revoke)
            && matches!(self.state, MemberState::Stable | MemberState::WaitingToJoin)
        {
            self.rejoin(now, Duration::ZERO);
        }
    }

    /// Whether `tp` is in a revocation the application has not acknowledged yet.
    fn is_revoking(&self, tp: &TopicPartition) -> bool {
        self.revoking.iter().any(|r| r.contains(tp))
    }

    /// Whether a commit made in `generation` as `member_id` may be sent now for `partitions`:
    /// the member is still in that generation under that id, and owns every one of them
    /// (partitions being revoked included, until the revocation is acknowledged). Commits
    /// carry only the generation and member id, and the coordinator of a classic group does
    /// not check which member owns a partition: a commit sent for a partition the member lost
    /// would overwrite the new owner's progress. `Err` says why not.
    pub fn check_commit<'a>(
        &self,
        generation: i32,
        member_id: &str,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<(), CommitRefused> {
        // Between JoinGroup and SyncGroup the generation is new but the assignment is not
        // known yet (the coordinator refuses commits then, too).
        let settled = matches!(
            self.state,
            MemberState::Stable | MemberState::WaitingToJoin | MemberState::Joining | MemberState::Leaving
        );
        if self.generation < 0 || !settled {
            return Err(CommitRefused::NotInGeneration);
        }
        if generation != self.generation || member_id != self.member_id {
            return Err(CommitRefused::GenerationChanged { from: generation, to: self.generation });
        }
        for tp in partitions {
            if !self.owned.contains(tp) {
                return Err(CommitRefused::NotOwned(tp.clone()));
            }
        }
        Ok(())
    }

    /// An OffsetCommit sent in `generation` as `member_id` was answered with `code`. Like the
    /// Java client: UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION mean the group moved on without
    /// the member (its partitions are lost, and it rejoins, forgetting its member id after the
    /// first), unless the member has joined another generation meanwhile (the answer is then
    /// about the old one); REBALANCE_IN_PROGRESS makes a stable member rejoin;
    /// FENCED_INSTANCE_ID is fatal.
    pub fn handle_commit_error(&mut self, now: Instant, generation: i32, member_id: &str, code: ErrorCode) {
        let same = generation == self.generation && member_id == self.member_id && self.generation >= 0;
        match code {
            ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION if same => {
                if matches!(self.state, MemberState::Leaving | MemberState::Left) {
                    // Leaving anyway: nothing to rejoin, but the partitions are gone.
                    self.lose_all();
                    return;
                }
                tracing::warn!(group = %self.config.group_id, %code, generation, "a commit found the member fenced");
                self.fenced(now, code == ErrorCode::UNKNOWN_MEMBER_ID);
            }
            ErrorCode::REBALANCE_IN_PROGRESS if same => self.request_rejoin(now),
            // Another instance with the same group.instance.id took the member's place.
            ErrorCode::FENCED_INSTANCE_ID if same => self.fail(code, "OffsetCommit", None),
            _ => {}
        }
    }

    /// Leaves the group: the owned partitions are revoked first (a [`GroupEvent::Revoke`] to
    /// acknowledge), then LeaveGroup is sent. A static member does not send LeaveGroup (its
    /// place is kept for the session timeout, so a restart causes no rebalance); it stays in
    /// its generation, [`MemberState::Leaving`], until the revocation is acknowledged, so that
    /// the application can still commit.
    pub fn leave(&mut self, now: Instant) {
        if matches!(self.state, MemberState::Leaving | MemberState::Left) {
            return;
        }
        // Everything the member owns is revoked once, in one event: a revocation still
        // pending (its handler interrupted, or its event not yet taken) is folded into it.
        self.events.retain(|e| !matches!(e, GroupEvent::Revoke(_)));
        self.revoking.clear();
        let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        if !owned.is_empty() {
            self.events.push_back(GroupEvent::Revoke(owned.clone()));
            self.revoking.push_back(owned);
        }
        self.rejoin_after_revoke = false;
        if self.config.group_instance_id.is_some() {
            // A static member sends no LeaveGroup, but it stays in its generation until its
            // revocation is done, so that the handler can still commit (as the Java client
            // calls onPartitionsRevoked before it stops).
            if self.generation >= 0 && !self.member_id.is_empty() && !self.revoking.is_empty() {
                self.state = MemberState::Leaving;
            } else {
                self.finish_leaving(now);
            }
            return;
        }
        let in_group = !self.member_id.is_empty() && self.coordinator.is_some();
        if in_group {
            self.state = MemberState::Leaving;
            self.leave_sent = false;
        } else {
            self.finish_leaving(now);
        }
    }

    /// The outcome of [`Action::Leave`]. Errors change nothing: the member is gone either
    /// way (the coordinator drops it after the session timeout).
    pub fn handle_leave(&mut self, now: Instant, result: Result<LeaveGroupResponse, Error>) {
        if let Err(e) = &result {
            tracing::debug!(group = %self.config.group_id, error = %e, "LeaveGroup failed");
        }
        // A LeaveGroup sent after a missed poll interval does not end the member: it rejoins
        // on the next poll.
        if self.state == MemberState::Leaving {
            self.finish_leaving(now);
        }
    }

    fn finish_leaving(&mut self, _now: Instant) {
        self.state = MemberState::Left;
        self.generation = -1;
        self.member_id.clear();
    }

    fn find_coordinator(&mut self, now: Instant) -> Option<Action> {
        if self.coordinator_in_flight || now < self.coordinator_retry_at {
            return None;
        }
        self.coordinator_in_flight = true;
        Some(Action::FindCoordinator)
    }

    fn join_request(&self) -> JoinGroupRequest {
        let owned = self.owned.iter().cloned().collect::<Vec<_>>();
        let generation = (self.generation >= 0).then_some(self.generation);
        let protocols = self
            .config
            .assignors
            .iter()
            .map(|assignor| {
                let subscription = ConsumerProtocolSubscription {
                    topics: self.topics.iter().cloned().collect(),
                    user_data: assignor.user_data(generation),
                    owned_partitions: if self.protocol == RebalanceProtocol::Cooperative {
                        to_wire(&owned)
                    } else {
                        Vec::new()
                    },
                    generation_id: self.generation,
                    rack_id: self.config.rack.clone(),
                    ..Default::default()
                };
                JoinGroupRequestProtocol {
                    name: assignor.name().to_string(),
                    metadata: subscription.to_bytes(SUBSCRIPTION_VERSION).unwrap_or_default(),
                    ..Default::default()
                }
            })
            .collect();
        JoinGroupRequest {
            group_id: self.config.group_id.clone(),
            session_timeout_ms: millis(self.config.session_timeout),
            rebalance_timeout_ms: millis(self.config.max_poll_interval),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocols,
            ..Default::default()
        }
    }

    fn send_sync(&mut self, assignments: Vec<SyncGroupRequestAssignment>) {
        self.state = MemberState::Syncing;
        self.actions.push_back(Action::Sync(SyncGroupRequest {
            group_id: self.config.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: self.group_protocol.clone(),
            assignments,
            ..Default::default()
        }));
    }

    /// In the layout of v3+ (the member in `members`); [`leave_request_at`] gives older ones.
    fn leave_request(&self) -> LeaveGroupRequest {
        LeaveGroupRequest {
            group_id: self.config.group_id.clone(),
            members: vec![MemberIdentity {
                member_id: self.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
                reason: Some("the consumer is closing".to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Hands `partitions` to the application to revoke; `rejoin` once it is done.
    fn start_revoke(&mut self, partitions: Vec<TopicPartition>, rejoin: bool) {
        self.events.push_back(GroupEvent::Revoke(partitions.clone()));
        self.revoking.push_back(partitions);
        self.rejoin_after_revoke |= rejoin;
    }

    /// Goes (back) to `WaitingToJoin`, sending JoinGroup after `delay`.
    fn rejoin(&mut self, now: Instant, delay: Duration) {
        if matches!(self.state, MemberState::Leaving | MemberState::Left) {
            return;
        }
        self.state = MemberState::WaitingToJoin;
        self.join_at = now + delay;
        self.leading = None;
        self.heartbeat_in_flight = false;
    }

    /// The group moved on without this member: its partitions are lost.
    fn fenced(&mut self, now: Instant, forget_member_id: bool) {
        self.lose_all();
        self.generation = -1;
        if forget_member_id {
            self.member_id.clear();
        }
        self.rejoin(now, Duration::ZERO);
    }

    fn lose_all(&mut self) {
        // A pending revocation is moot: the partitions are gone. Its event, if not taken yet,
        // is dropped, so the application hears of the partitions once, as lost (their
        // revocation handler would commit, which can no longer succeed).
        self.revoking.clear();
        self.events.retain(|e| !matches!(e, GroupEvent::Revoke(_)));
        self.rejoin_after_revoke = false;
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if !lost.is_empty() {
            tracing::warn!(group = %self.config.group_id, partitions = lost.len(), "partitions lost");
            self.events.push_back(GroupEvent::Lost(lost));
        }
    }

    fn poll_interval_expired(&mut self) {
        tracing::warn!(
            group = %self.config.group_id,
            max_poll_interval = ?self.config.max_poll_interval,
            "the application did not poll in time; leaving the group"
        );
        self.lose_all();
        if self.config.group_instance_id.is_none() && !self.member_id.is_empty() {
            self.actions.push_back(Action::Leave(self.leave_request()));
            self.member_id.clear();
        }
        self.generation = -1;
        self.state = MemberState::Unjoined;
    }

    fn coordinator_lost(&mut self, now: Instant) {
        self.coordinator = None;
        self.coordinator_retry_at = now;
        self.heartbeat_in_flight = false;
    }

    /// A request failed without a response (connection lost, timeout).
    fn request_failed(&mut self, now: Instant, error: &Error, rejoin: bool) {
        tracing::debug!(group = %self.config.group_id, error = %error, "group request failed");
        self.coordinator_lost(now);
        self.coordinator_retry_at = now + self.config.retry_backoff;
        if rejoin {
            self.rejoin(now, Duration::ZERO);
        }
    }

    fn fail(&mut self, code: ErrorCode, during: &'static str, detail: Option<String>) {
        self.lose_all();
        self.state = MemberState::Left;
        self.events.push_back(GroupEvent::Fatal(FatalError {
            group: self.config.group_id.clone(),
            code,
            during,
            detail,
        }));
    }
}

/// Errors after which the member cannot go on.
fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::INVALID_SESSION_TIMEOUT
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::INVALID_GROUP_ID
            | ErrorCode::UNSUPPORTED_VERSION
    )
}

/// Errors that mean the coordinator moved or is not ready.
fn is_coordinator_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NOT_COORDINATOR
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
    )
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// A member's subscription from its JoinGroup metadata; `None` (and a warning) when it cannot
/// be read, so one odd member does not stop the group.
/// The LeaveGroup `request` of an [`Action::Leave`] (which names the member in `members`) in
/// the layout of `version`: up to v2 the one member goes in `member_id` instead, its static id
/// and reason dropped. Each layout is refused at the other versions, so a driver must send
/// what this returns for the version it negotiated.
pub fn leave_request_at(request: &LeaveGroupRequest, version: i16) -> LeaveGroupRequest {
    let mut out = request.clone();
    if version <= 2 {
        out.member_id = out.members.first().map(|m| m.member_id.clone()).unwrap_or_default();
        out.members.clear();
    }
    out
}

fn decode_member(member_id: String, instance: Option<String>, metadata: Bytes) -> Option<MemberSubscription> {
    match ConsumerProtocolSubscription::from_bytes(metadata) {
        Ok(s) => Some(MemberSubscription {
            member_id,
            group_instance_id: instance,
            topics: s.topics,
            owned: from_wire(&s.owned_partitions).into_iter().collect(),
            generation: (s.generation_id >= 0).then_some(s.generation_id),
            rack: s.rack_id,
            user_data: s.user_data,
        }),
        Err(e) => {
            tracing::warn!(member = %member_id, error = %e, "unreadable subscription; leaving the member out");
            None
        }
    }
}

/// Partitions grouped by topic, as the consumer protocol carries them.
fn to_wire(partitions: &[TopicPartition]) -> Vec<WireTopicPartition> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| WireTopicPartition {
            topic: topic.to_string(),
            partitions,
            ..Default::default()
        })
        .collect()
}

fn from_wire(list: &[WireTopicPartition]) -> BTreeSet<TopicPartition> {
    let mut out = BTreeSet::new();
    for t in list {
        let topic: Arc<str> = Arc::from(t.topic.as_str());
        out.extend(t.partitions.iter().map(|&p| TopicPartition::new(Arc::clone(&topic), p)));
    }
    out
}

#[cfg(test)]
mod tests;
