//! The engine's health, read as a [`HealthSnapshot`] through an [`EngineHealth`] handle: the
//! brokers it is connected to, where its group member stands, the partitions it owns and
//! their lag, and the last operational error. A service serves it from its liveness and
//! readiness probes ([`HealthSnapshot::is_live`], [`HealthSnapshot::is_ready`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klamm::{Client, TopicPartition};
use klamm_group::membership::MemberState;

use crate::dlq::rfc3339_utc;
use crate::metrics::Metrics;

/// How long the engine's poll loop may go without a turn before [`HealthSnapshot::is_live`]
/// says it is stuck. The loop turns every 100 ms when nothing blocks it; a commit or a
/// rebalance can hold it for up to the client's request timeouts, which this is well above.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(180);

/// Where an engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePhase {
    /// [`Engine::run`](crate::Engine::run) has not been called yet.
    Idle,
    /// Checking the source topics, making the dead-letter topic, joining the group.
    Starting,
    /// Polling and handling messages.
    Running,
    /// Shutdown requested: finishing in-flight messages, saving, committing, leaving.
    ShuttingDown,
    /// [`Engine::run`](crate::Engine::run) has returned (cleanly or with an error).
    Stopped,
}

impl EnginePhase {
    /// The phase as a lower-case word (`idle`, `starting`, `running`, `shutting-down`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            EnginePhase::Idle => "idle",
            EnginePhase::Starting => "starting",
            EnginePhase::Running => "running",
            EnginePhase::ShuttingDown => "shutting-down",
            EnginePhase::Stopped => "stopped",
        }
    }
}

/// The last operational error the engine met (a failed poll, commit, dead-letter write,
/// workspace load or save, or the error [`Engine::run`](crate::Engine::run) stopped with).
/// Handler failures are not operational errors: they are counted in the metrics and end on
/// the dead-letter topic or in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// What went wrong, as the error displays.
    pub message: String,
    /// When, as wall-clock time.
    pub at: SystemTime,
}

impl LastError {
    /// [`LastError::at`] in RFC 3339 (UTC, milliseconds).
    pub fn at_rfc3339(&self) -> String {
        let ms = self.at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        rfc3339_utc(ms)
    }
}

/// The engine's health at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Where the engine is in its life.
    pub phase: EnginePhase,
    /// Node ids of the brokers with an open connection (from the group member's, the
    /// dead-letter producer's and the admin client's connections), ascending.
    pub connected_brokers: Vec<i32>,
    /// Where the group member stands; `None` before it was made.
    pub member_state: Option<MemberState>,
    /// The member's generation (-1 when not in one).
    pub generation: i32,
    /// The member id the coordinator gave (empty before the first join).
    pub member_id: String,
    /// The partitions the member owns, sorted.
    pub assigned: Vec<TopicPartition>,
    /// Per assigned (topic, partition), records behind the high watermark: after the last
    /// handled message when there is one, else after the fetch position. Missing until known.
    pub lag: BTreeMap<(String, i32), i64>,
    /// The last operational error, if any.
    pub last_error: Option<LastError>,
    /// Partitions the engine stopped handling because going on could lose stored state (a
    /// workspace that cannot be loaded), by (topic, partition), with the reason. Nothing is
    /// handled or committed on them past the point where they stopped until they are assigned
    /// again (after a rebalance or a restart), so fix the cause and restart. The other
    /// partitions go on.
    pub stopped_partitions: BTreeMap<(String, i32), String>,
    /// Partitions of the current assignment whose restore is under way: their workspaces are
    /// being loaded and their positions set, so they do not consume yet. Empty between
    /// rebalances.
    pub restoring_partitions: BTreeSet<(String, i32)>,
    /// How long ago the poll loop last turned; `None` when it has not turned yet.
    pub since_last_poll: Option<Duration>,
}

impl HealthSnapshot {
    /// Liveness: `false` only when restarting the process is the remedy, that is when the
    /// engine has stopped (its `run` returned) or its poll loop has not turned for
    /// [`STALL_TIMEOUT`]. An engine that cannot reach its brokers is still live: the client
    /// reconnects by itself.
    pub fn is_live(&self) -> bool {
        match self.phase {
            EnginePhase::Stopped => false,
            EnginePhase::Running => self.since_last_poll.is_none_or(|d| d < STALL_TIMEOUT),
            EnginePhase::Idle | EnginePhase::Starting | EnginePhase::ShuttingDown => true,
        }
    }

    /// Readiness: the engine is running, is a stable member of its group (it has its
    /// assignment, which may be empty when the group has more members than partitions), every
    /// assigned partition is restored (its workspaces loaded, its position set, its task
    /// consuming) and it has an open connection to at least one broker. `false` while it
    /// starts, rebalances, restores an assignment, shuts down or is cut off from the cluster.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why [`HealthSnapshot::is_ready`] is `false`, in a few words (`None` when ready). The
    /// first reason found, in this order: not live, not running, partitions restoring, not a
    /// stable member, no broker connection.
    pub fn not_ready_because(&self) -> Option<String> {
        if !self.is_live() {
            return Some(match self.phase {
                EnginePhase::Stopped => "the engine has stopped".to_string(),
                _ => "the poll loop is stuck".to_string(),
            });
        }
        if self.phase != EnginePhase::Running {
            return Some(format!("the engine is {}", self.phase.as_str()));
        }
        // Restoring first: while an assignment is restored the poll that brought it has not
        // returned, so the member state last seen is still the one before it.
        if !self.restoring_partitions.is_empty() {
            let names: Vec<String> =
                self.restoring_partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            return Some(format!("restoring partitions {}", names.join(", ")));
        }
        match self.member_state {
            Some(MemberState::Stable) => {}
            Some(state) => return Some(format!("the group member is {state:?}, not stable")),
            None => return Some("the group member is not made yet".to_string()),
        }
        if self.connected_brokers.is_empty() {
            return Some("no broker connection".to_string());
        }
        None
    }
}

/// What the run loop reports about the group member.
#[derive(Debug, Clone)]
pub(crate) struct GroupView {
    pub(crate) state: MemberState,
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) assigned: Vec<TopicPartition>,
    /// Fetch lag of the assigned partitions, for those with no handled message yet.
    pub(crate) fetch_lag: BTreeMap<(String, i32), i64>,
}

/// Health state shared by the engine's tasks and its [`EngineHealth`] handles.
#[derive(Debug)]
pub(crate) struct Health {
    inner: Mutex<HealthInner>,
}

#[derive(Debug)]
struct HealthInner {
    phase: EnginePhase,
    /// The engine's clients, each with its role (`admin`, `producer`, `consumer`).
    clients: Vec<(&'static str, Client)>,
    group: Option<GroupView>,
    last_poll: Option<Instant>,
    last_error: Option<LastError>,
    stopped: BTreeMap<(String, i32), String>,
    restoring: BTreeSet<(String, i32)>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            inner: Mutex::new(HealthInner {
                phase: EnginePhase::Idle,
                clients: Vec::new(),
                group: None,
                last_poll: None,
                last_error: None,
                stopped: BTreeMap::new(),
                restoring: BTreeSet::new(),
            }),
        }
    }
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, HealthInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_phase(&self, phase: EnginePhase) {
        self.lock().phase = phase;
    }

    /// Adds a client whose connections count as the engine's; `role` names it in the metrics.
    pub(crate) fn add_client(&self, role: &'static str, client: Client) {
        self.lock().clients.push((role, client));
    }

    /// The counters of each of the engine's clients, with its role, in the order they were
    /// added.
    pub(crate) fn client_stats(&self) -> Vec<(&'static str, klamm::ClientStats)> {
        let clients = self.lock().clients.clone();
        clients.iter().map(|(role, c)| (*role, c.stats())).collect()
    }

    /// The poll loop turned; `group` is where the member stands now.
    pub(crate) fn polled(&self, group: GroupView) {
        let mut h = self.lock();
        h.last_poll = Some(Instant::now());
        h.group = Some(group);
    }

    /// Records an operational error.
    pub(crate) fn error(&self, error: impl std::fmt::Display) {
        self.lock().last_error = Some(LastError { message: error.to_string(), at: SystemTime::now() });
    }

    /// Stops partition `tp` for `reason` (also the last error). The first reason is kept.
    pub(crate) fn stop_partition(&self, tp: &TopicPartition, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        let mut h = self.lock();
        h.last_error = Some(LastError { message: reason.clone(), at: SystemTime::now() });
        h.stopped.entry((tp.topic.to_string(), tp.partition)).or_insert(reason);
    }

    /// Whether partition `tp` is stopped.
    pub(crate) fn is_stopped(&self, tp: &TopicPartition) -> bool {
        // Called per message: compare in place rather than build a key (the map is empty
        // but for a failure).
        self.lock().stopped.keys().any(|(t, p)| *p == tp.partition && **t == *tp.topic)
    }

    /// Marks `partitions` as restoring: the engine is not ready until [`Health::end_restore`]
    /// is called for them. The hook of whatever restores an assignment (today `on_assigned`,
    /// which loads the workspaces and seeks; a store that reads its state back from Kafka
    /// calls it around that read too).
    pub(crate) fn begin_restore(&self, partitions: &[TopicPartition]) {
        let mut h = self.lock();
        h.restoring.extend(partitions.iter().map(|tp| (tp.topic.to_string(), tp.partition)));
    }

    /// Marks `partitions` as restored (or no longer assigned): they count as consuming.
    pub(crate) fn end_restore(&self, partitions: &[TopicPartition]) {
        let mut h = self.lock();
        for tp in partitions {
            h.restoring.remove(&(tp.topic.to_string(), tp.partition));
        }
    }

    /// Forgets that `tp` was stopped (it was revoked: its next assignment tries again).
    pub(crate) fn clear_stopped(&self, tp: &TopicPartition) {
        self.lock().stopped.remove(&(tp.topic.to_string(), tp.partition));
    }

    fn snapshot(&self, metrics: &Metrics) -> HealthSnapshot {
        let (phase, clients, group, last_poll, last_error, stopped_partitions, restoring_partitions) = {
            let h = self.lock();
            (
                h.phase,
                h.clients.clone(),
                h.group.clone(),
                h.last_poll,
                h.last_error.clone(),
                h.stopped.clone(),
                h.restoring.clone(),
            )
        };
        let mut connected_brokers: Vec<i32> =
            clients.iter().flat_map(|(_, c)| c.connected_brokers()).collect();
        connected_brokers.sort_unstable();
        connected_brokers.dedup();
        let handled_lag = metrics.snapshot().lag;
        let (member_state, generation, member_id, mut assigned, lag) = match group {
            Some(g) => {
                let mut lag = g.fetch_lag;
                for tp in &g.assigned {
                    let key = (tp.topic.to_string(), tp.partition);
                    if let Some(l) = handled_lag.get(&key) {
                        lag.insert(key, *l);
                    }
                }
                (Some(g.state), g.generation, g.member_id, g.assigned, lag)
            }
            None => (None, -1, String::new(), Vec::new(), BTreeMap::new()),
        };
        assigned.sort();
        HealthSnapshot {
            phase,
            connected_brokers,
            member_state,
            generation,
            member_id,
            assigned,
            lag,
            last_error,
            stopped_partitions,
            restoring_partitions,
            since_last_poll: last_poll.map(|t| t.elapsed()),
        }
    }
}

/// A read handle on an engine's health, usable while it runs (and after).
#[derive(Debug, Clone)]
pub struct EngineHealth {
    pub(crate) health: Arc<Health>,
    pub(crate) metrics: Arc<Metrics>,
}

impl EngineHealth {
    /// The health now. Cheap: takes no lock a request holds and makes no request.
    pub fn snapshot(&self) -> HealthSnapshot {
        self.health.snapshot(&self.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }

    fn handle() -> EngineHealth {
        EngineHealth { health: Arc::new(Health::default()), metrics: Arc::new(Metrics::default()) }
    }

    fn stable(assigned: Vec<TopicPartition>) -> GroupView {
        GroupView {
            state: MemberState::Stable,
            generation: 4,
            member_id: "m-1".into(),
            assigned,
            fetch_lag: BTreeMap::from([(("t".to_string(), 0), 7), (("t".to_string(), 1), 3)]),
        }
    }

    #[test]
    fn a_new_engine_is_live_but_not_ready() {
        let s = handle().snapshot();
        assert_eq!(s.phase, EnginePhase::Idle);
        assert_eq!(s.member_state, None);
        assert_eq!(s.generation, -1);
        assert!(s.assigned.is_empty() && s.lag.is_empty() && s.last_error.is_none());
        assert!(s.stopped_partitions.is_empty());
        assert!(s.is_live());
        assert!(!s.is_ready());
    }

    #[test]
    fn handled_lag_wins_over_fetch_lag_and_only_for_assigned_partitions() {
        let h = handle();
        h.health.set_phase(EnginePhase::Running);
        h.metrics.set_lag("t", 1, 1);
        h.metrics.set_lag("other", 0, 50);
        h.health.polled(stable(vec![tp("t", 1), tp("t", 0)]));
        let s = h.snapshot();
        assert_eq!(s.assigned, vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(s.lag, BTreeMap::from([(("t".to_string(), 0), 7), (("t".to_string(), 1), 1)]));
        assert_eq!((s.generation, s.member_id.as_str()), (4, "m-1"));
        assert!(s.since_last_poll.is_some_and(|d| d < STALL_TIMEOUT));
        // No broker connection: live, not ready.
        assert!(s.is_live());
        assert!(!s.is_ready());
        let ready = HealthSnapshot { connected_brokers: vec![1], ..s.clone() };
        assert!(ready.is_ready());
    }

    #[test]
    fn readiness_needs_a_stable_running_member() {
        let h = handle();
        h.health.set_phase(EnginePhase::Running);
        h.health.polled(stable(Vec::new()));
        let s = HealthSnapshot { connected_brokers: vec![0], ..h.snapshot() };
        assert!(s.is_ready(), "a stable member with no partitions is ready");
        let rebalancing = HealthSnapshot { member_state: Some(MemberState::Joining), ..s.clone() };
        assert!(rebalancing.is_live() && !rebalancing.is_ready());
        let stopping = HealthSnapshot { phase: EnginePhase::ShuttingDown, ..s.clone() };
        assert!(stopping.is_live() && !stopping.is_ready());
        let stopped = HealthSnapshot { phase: EnginePhase::Stopped, ..s.clone() };
        assert!(!stopped.is_live() && !stopped.is_ready());
        let stuck = HealthSnapshot { since_last_poll: Some(STALL_TIMEOUT), ..s.clone() };
        assert!(!stuck.is_live() && !stuck.is_ready());
    }

    #[test]
    fn an_assignment_being_restored_is_not_ready_until_every_partition_is_restored() {
        let h = handle();
        h.health.set_phase(EnginePhase::Running);
        h.health.polled(stable(vec![tp("t", 0), tp("t", 1)]));
        let ready = |s: HealthSnapshot| HealthSnapshot { connected_brokers: vec![0], ..s };
        assert!(ready(h.snapshot()).is_ready());
        h.health.begin_restore(&[tp("t", 0), tp("t", 1)]);
        let s = ready(h.snapshot());
        assert!(s.is_live() && !s.is_ready());
        assert_eq!(s.not_ready_because().as_deref(), Some("restoring partitions t-0, t-1"));
        h.health.end_restore(&[tp("t", 0)]);
        let s = ready(h.snapshot());
        assert_eq!(s.restoring_partitions, BTreeSet::from([("t".to_string(), 1)]));
        assert!(!s.is_ready());
        h.health.end_restore(&[tp("t", 1)]);
        assert!(ready(h.snapshot()).is_ready());
        assert_eq!(ready(h.snapshot()).not_ready_because(), None);
    }

    #[test]
    fn not_ready_says_why() {
        let h = handle();
        assert_eq!(h.snapshot().not_ready_because().as_deref(), Some("the engine is idle"));
        h.health.set_phase(EnginePhase::Running);
        assert_eq!(h.snapshot().not_ready_because().as_deref(), Some("the group member is not made yet"));
        h.health.polled(GroupView { state: MemberState::Joining, ..stable(Vec::new()) });
        assert_eq!(
            h.snapshot().not_ready_because().as_deref(),
            Some("the group member is Joining, not stable")
        );
        h.health.polled(stable(Vec::new()));
        assert_eq!(h.snapshot().not_ready_because().as_deref(), Some("no broker connection"));
        h.health.set_phase(EnginePhase::Stopped);
        assert_eq!(h.snapshot().not_ready_because().as_deref(), Some("the engine has stopped"));
    }

    #[test]
    fn the_last_error_is_kept_with_its_time() {
        let h = handle();
        h.health.error("first");
        h.health.error("commit failed: REBALANCE_IN_PROGRESS");
        let e = h.snapshot().last_error.unwrap();
        assert_eq!(e.message, "commit failed: REBALANCE_IN_PROGRESS");
        assert!(e.at.elapsed().unwrap_or_default() < Duration::from_secs(60));
        let stamp = e.at_rfc3339();
        assert!(stamp.ends_with('Z') && stamp.len() == "2026-01-01T00:00:00.000Z".len(), "{stamp}");
    }

    #[test]
    fn a_stopped_partition_is_shown_with_its_first_reason_until_cleared() {
        let h = handle();
        h.health.stop_partition(&tp("t", 2), "cannot load workspace w");
        h.health.stop_partition(&tp("t", 2), "later");
        assert!(h.health.is_stopped(&tp("t", 2)));
        assert!(!h.health.is_stopped(&tp("t", 1)));
        let s = h.snapshot();
        assert_eq!(
            s.stopped_partitions,
            BTreeMap::from([(("t".to_string(), 2), "cannot load workspace w".to_string())])
        );
        assert_eq!(s.last_error.map(|e| e.message).as_deref(), Some("later"));
        h.health.clear_stopped(&tp("t", 2));
        assert!(h.snapshot().stopped_partitions.is_empty());
    }
}
