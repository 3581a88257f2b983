//! What the partition tasks and the rebalance listener share: the loaded workspaces, what is
//! known of the source topics, and the partitions that are stopped.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use klamm::{Admin, Producer, TopicPartition};
use tokio::sync::mpsc;

use super::worker::*;
use crate::config::EngineConfig;
use crate::handler::BoxHandler;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::workspace::{partition_of, Workspace, WorkspaceStorage};

/// A loaded workspace and whether it changed since it was saved.
pub(super) struct Slot {
    pub(super) ws: Workspace,
    pub(super) dirty: bool,
}

pub(super) type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// What the engine knows of a source topic, from the last metadata it read (at startup and
/// at each assignment).
#[derive(Debug, Clone)]
pub(super) struct TopicInfo {
    pub(super) partitions: NonZeroU32,
    /// The topic id (hyphenated hex); `None` when the broker gave none.
    pub(super) id: Option<String>,
}

/// What the partition tasks and the rebalance listener share.
pub(super) struct Shared {
    pub(super) config: EngineConfig,
    pub(super) handler: BoxHandler,
    pub(super) storage: Arc<dyn WorkspaceStorage>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    pub(super) producer: Producer,
    pub(super) admin: Admin,
    pub(super) topics: Mutex<HashMap<String, TopicInfo>>,
    pub(super) workspaces: Mutex<HashMap<String, SlotRef>>,
    pub(super) workers: Mutex<HashMap<TopicPartition, Worker>>,
    /// (partition, next offset) each time a partition task saved its progress; [`REVOKED`]
    /// instead of an offset once a partition was revoked or lost (after its last progress).
    pub(super) progress: mpsc::UnboundedSender<(TopicPartition, i64)>,
    /// Exactly-once mode's transactions; `None` otherwise.
    pub(super) eos: Option<super::eos::Transactions>,
}

/// Sent as the offset on [`Shared::progress`] when a partition was revoked or lost: what it
/// reported before is not to be committed any more.
pub(super) const REVOKED: i64 = -1;

impl Shared {
    pub(super) fn primary(&self) -> &str {
        &self.config.topics[0]
    }

    pub(super) fn topic_info(&self, topic: &str) -> Option<TopicInfo> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).get(topic).cloned()
    }

    pub(super) fn partitions_of(&self, topic: &str) -> NonZeroU32 {
        self.topic_info(topic).map_or(NonZeroU32::MIN, |t| t.partitions)
    }

    /// The partition of the primary topic workspace `id` lives on now.
    pub(super) fn home_of(&self, id: &str) -> i32 {
        partition_of(id, self.partitions_of(self.primary()))
    }

    /// Brings a workspace in line with the topics as they are now: places offsets of the
    /// older form, drops offsets recorded for an earlier topic of the same name (its id
    /// differs), and sets its partition. Returns whether it changed.
    pub(super) fn adopt(&self, ws: &mut Workspace) -> bool {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let id = ws.workspace_id.clone();
        let mut changed = ws.place_legacy_offsets(self.primary(), |t| {
            topics.get(t).map(|info| partition_of(&id, info.partitions))
        });
        let stale: Vec<(String, i32)> = ws
            .offsets()
            .iter()
            .filter(|o| {
                let now = topics.get(&o.topic).and_then(|t| t.id.as_deref());
                matches!((o.topic_id.as_deref(), now), (Some(then), Some(now)) if then != now)
            })
            .map(|o| (o.topic.clone(), o.partition))
            .collect();
        for (topic, partition) in stale {
            if let Some(o) = ws.forget_offset(&topic, partition) {
                tracing::warn!(
                    workspace = %id, topic = %topic, partition, offset = o.offset, topic_id = ?o.topic_id,
                    "stored offset belongs to a deleted topic of the same name; dropped"
                );
                changed = true;
            }
        }
        let home = self.home_of(&id);
        if ws.partition != home {
            tracing::info!(workspace = %id, partition = home, was = ws.partition, "workspace moved partition (partitions were added)");
            ws.partition = home;
            changed = true;
        }
        changed
    }

    /// The loaded slot of workspace `id`, loading or making it if needed. A workspace that
    /// cannot be loaded is an error: starting it empty would overwrite what is stored.
    pub(super) fn slot(&self, id: &str) -> Result<SlotRef, String> {
        if let Some(s) = self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(Arc::clone(s));
        }
        let mut ws = match off_the_runtime(|| self.storage.load(id)) {
            Ok(Some(ws)) => ws,
            Ok(None) => Workspace::new(id, self.home_of(id)),
            Err(e) => {
                tracing::error!(workspace = id, error = %e, "cannot load workspace");
                return Err(format!("cannot load workspace {id:?}: {e}"));
            }
        };
        let dirty = self.adopt(&mut ws);
        let slot = Arc::new(tokio::sync::Mutex::new(Slot { ws, dirty }));
        let mut map = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(map.entry(id.to_string()).or_insert(slot)))
    }

    /// Stops partition `tp`: it handles nothing more and commits nothing past where it is,
    /// and the health snapshot shows why.
    pub(super) fn stop_partition(&self, tp: &TopicPartition, reason: &str) {
        if !self.health.is_stopped(tp) {
            tracing::error!(
                topic = &*tp.topic,
                partition = tp.partition,
                reason,
                "partition stopped: nothing more is handled or committed on it until it is assigned again"
            );
        }
        self.health
            .stop_partition(tp, format_args!("partition {}-{} stopped: {reason}", tp.topic, tp.partition));
    }

    /// Saves and drops the workspaces whose partition no longer has a task. A workspace that is
    /// locked is in use by a task still running (which saves it) or by one that was left
    /// behind (which holds it for good): it is passed over, never waited for.
    pub(super) async fn unload_unowned(&self) {
        let owned: HashSet<i32> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().map(|tp| tp.partition).collect();
        let slots: Vec<(String, SlotRef)> = {
            let map = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
        };
        let mut unowned = Vec::new();
        for (id, slot) in slots {
            let Ok(s) = slot.try_lock_owned() else { continue };
            if owned.contains(&s.ws.partition) {
                continue;
            }
            unowned.push((id, s));
        }
        let dirty: Vec<&Workspace> = unowned.iter().filter(|(_, s)| s.dirty).map(|(_, s)| &s.ws).collect();
        if !dirty.is_empty() {
            let n = dirty.len();
            if let Err(e) = self.storage.save_all(&dirty).await {
                tracing::error!(workspaces = n, error = %e, "cannot save workspaces");
                self.health.error(format_args!("cannot save {n} workspaces: {e}"));
            }
        }
        let mut map = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        for (id, _) in &unowned {
            map.remove(id);
        }
    }
}

/// Locks `slot`, waiting no later than `deadline`: a workspace is locked while a partition
/// task applies an event to it, and a handler that hangs must not hold up a rebalance.
pub(super) async fn lock_until(
    slot: &SlotRef,
    deadline: Instant,
) -> Option<tokio::sync::MutexGuard<'_, Slot>> {
    match tokio::time::timeout_at(deadline.into(), slot.lock()).await {
        Ok(guard) => Some(guard),
        Err(_) => {
            tracing::warn!("workspace held by a handler that does not return; passed over");
            None
        }
    }
}

/// Runs a blocking storage call off the runtime's queue (see [`blocking`]).
pub(super) use crate::workspace::blocking as off_the_runtime;
