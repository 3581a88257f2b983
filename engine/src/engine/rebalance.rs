//! Assignment and revocation: loading the workspaces of assigned partitions and seeking to
//! where they resume, stopping and committing revoked ones.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::{Offset, TopicPartition};
use klamm_group::{NextOffset, RebalanceHandle, RebalanceListener};

use super::shared::*;
use crate::metrics::Metrics;
use crate::workspace::{partition_of, SavedThrough};

impl Shared {
    /// Restores the store's copy of `partitions` ([`WorkspaceStorage::restore`]), loads their
    /// stored workspaces, and decides where each partition with a committed offset resumes:
    /// at the committed offset when the store holds every save below it (its
    /// [`SavedThrough`] reaches it), so that a restart replays only the uncommitted tail;
    /// otherwise at the smallest stored next offset of the loaded workspaces on it, when that
    /// is below the committed offset (a store that may be stale catches up). Either way a
    /// workspace passes over the events below its own stored offset.
    /// A partition one of whose workspaces cannot be loaded is stopped.
    ///
    /// [`WorkspaceStorage::restore`]: crate::WorkspaceStorage::restore
    pub(super) async fn on_assigned(
        self: &Arc<Self>,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) {
        let names: Vec<String> =
            partitions.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
        tracing::info!(partitions = ?names, "partitions assigned");
        // Not ready until every partition of the assignment is restored (`end_restore` below).
        let restore_started = Instant::now();
        let loaded = self.prepare_assignment(partitions).await;
        let committed = match handle.committed(partitions).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets");
                HashMap::new()
            }
        };
        let mut seek = |tp: &TopicPartition, o: Offset| handle.seek(tp, o);
        self.position_assignment(partitions, &committed, &loaded, &mut seek).await;
        for tp in partitions {
            self.start_worker(tp.clone());
        }
        self.health.end_restore(partitions);
        if !partitions.is_empty() {
            Metrics::add(&self.metrics.assignments);
            self.metrics.restore_time.observe(restore_started.elapsed());
        }
    }

    /// The first half of an assignment (or of an exactly-once rewind): marks `partitions`
    /// restoring, restores the store's copy of them, and loads their stored workspaces.
    pub(super) async fn prepare_assignment(self: &Arc<Self>, partitions: &[TopicPartition]) -> Vec<SlotRef> {
        self.health.begin_restore(partitions);
        for tp in partitions {
            self.health.clear_stopped(tp);
        }
        self.refresh_topics().await;
        self.restore(partitions).await;
        // Workspaces already loaded (for partitions kept) follow the topics as they are now.
        let kept: Vec<SlotRef> =
            self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        // A workspace is locked only while an event is applied to it; one held longer is held
        // by a handler that hangs, which must not hold up the rebalance.
        let wait_until = Instant::now() + Duration::from_secs(1).min(self.config.shutdown_timeout);
        for slot in kept {
            let Some(mut s) = lock_until(&slot, wait_until).await else { continue };
            if self.adopt(&mut s.ws) {
                s.dirty = true;
            }
        }
        let ids = match off_the_runtime(|| self.storage.discover()) {
            Ok(ids) => ids,
            Err(e) => {
                for tp in partitions {
                    self.stop_partition(tp, &format!("cannot list stored workspaces: {e}"));
                }
                Vec::new()
            }
        };
        let mut loaded: Vec<SlotRef> = Vec::new();
        for id in &ids {
            let home: Vec<&TopicPartition> = partitions
                .iter()
                .filter(|tp| partition_of(id, self.partitions_of(&tp.topic)) == tp.partition)
                .collect();
            if home.is_empty() {
                continue;
            }
            let slot = match self.slot(id) {
                Ok(slot) => slot,
                Err(e) => {
                    for tp in home {
                        self.stop_partition(tp, &e);
                    }
                    continue;
                }
            };
            {
                let Some(s) = lock_until(&slot, wait_until).await else { continue };
                let offsets: Vec<String> =
                    s.ws.offsets()
                        .iter()
                        .map(|o| format!("{}-{}={}", o.topic, o.partition, o.offset))
                        .collect();
                let offset = s.ws.next_offset(self.primary(), s.ws.partition).unwrap_or(0);
                tracing::info!(workspace = %id, partition = s.ws.partition, offset, offsets = ?offsets, "loaded workspace");
            }
            loaded.push(slot);
        }
        tracing::info!(workspaces = loaded.len(), "workspaces loaded");
        loaded
    }

    /// The second half of an assignment: decides, from the `committed` offsets and the
    /// `loaded` workspaces, where each of `partitions` resumes, and moves it there with `seek`.
    pub(super) async fn position_assignment(
        &self,
        partitions: &[TopicPartition],
        committed: &HashMap<TopicPartition, Option<NextOffset>>,
        loaded: &[SlotRef],
        seek: &mut (dyn FnMut(&TopicPartition, Offset) -> Result<(), klamm::Error> + Send),
    ) {
        let wait_until = Instant::now() + Duration::from_secs(1).min(self.config.shutdown_timeout);
        if let Some(eos) = &self.eos {
            eos.remember(committed);
        }
        for (tp, next) in committed {
            if let Some(next) = next {
                self.metrics.set_committed(&tp.topic, tp.partition, next.offset());
            }
        }
        for tp in partitions {
            if self.health.is_stopped(tp) {
                continue;
            }
            let mut stored: Option<i64> = None;
            let mut range: Option<(Option<i64>, Option<i64>)> = None;
            for slot in loaded {
                let Some(mut s) = lock_until(slot, wait_until).await else { continue };
                let Some(next) = s.ws.next_offset(&tp.topic, tp.partition) else { continue };
                let (earliest, latest) = match range {
                    Some(r) => r,
                    None => *range.insert(self.log_range(tp).await),
                };
                if latest.is_some_and(|l| next > l) {
                    // Past the end of the log: the offset was recorded in a log that is gone
                    // (the topic was made again, or the partition truncated). The events there
                    // now are new to the workspace.
                    tracing::warn!(
                        workspace = %s.ws.workspace_id, topic = &*tp.topic, partition = tp.partition,
                        stored = next, ?earliest, ?latest,
                        "stored offset is past the end of the log; dropped (the workspace applies the partition's events from the committed offset)"
                    );
                    s.ws.forget_offset(&tp.topic, tp.partition);
                    s.dirty = true;
                    continue;
                }
                stored = Some(stored.map_or(next, |m| m.min(next)));
            }
            let committed_at = committed.get(tp).cloned().flatten().map(|n| n.offset());
            if let Some(through) = self.saved_through(tp, committed_at.unwrap_or(0)) {
                // The store holds every save below the committed offset: only the uncommitted
                // tail is read again. When its checkpoint is further on (saved, then killed
                // before the commit), not even that: everything below it is in the store.
                let ahead = match &through {
                    SavedThrough::Checkpoint(cp) if committed_at.is_none_or(|c| cp.offset > c) => {
                        let (earliest, latest) = match range {
                            Some(r) => r,
                            None => *range.insert(self.log_range(tp).await),
                        };
                        let o = cp.offset;
                        (earliest.is_none_or(|e| o >= e) && latest.is_none_or(|l| o <= l)).then_some(o)
                    }
                    _ => None,
                };
                let (at, what) = match (ahead, committed_at) {
                    (Some(o), _) => {
                        (o, "resuming at the saved-through checkpoint (the store holds every save below it)")
                    }
                    (None, Some(c)) => {
                        (c, "resuming at the committed offset (the store holds every save below it)")
                    }
                    (None, None) => (-1, ""),
                };
                if at >= 0 {
                    tracing::info!(
                        topic = &*tp.topic,
                        partition = tp.partition,
                        offset = at,
                        committed = ?committed_at,
                        saved_through = ?through,
                        stored = ?stored,
                        "{what}"
                    );
                    if ahead.is_some() {
                        if let Err(e) = seek(tp, Offset::At(at)) {
                            tracing::warn!(topic = &*tp.topic, partition = tp.partition, error = %e, "seek failed");
                        }
                    }
                    continue;
                }
            }
            let Some(s) = stored else { continue };
            let (earliest, latest) = range.unwrap_or((None, None));
            let Some(c) = committed_at else {
                // Nothing committed (a new group, or its offsets expired): start where
                // `auto.offset.reset` says. Jumping to the stored offsets would skip the events
                // of workspaces that have no stored file.
                tracing::info!(
                    topic = &*tp.topic,
                    partition = tp.partition,
                    stored = s,
                    "nothing committed; starting from the reset policy (workspaces skip what they applied)"
                );
                continue;
            };
            let in_log = |o: i64| earliest.is_none_or(|e| o >= e) && latest.is_none_or(|l| o <= l);
            let target = [c.min(s), s].into_iter().find(|&o| in_log(o));
            match target {
                Some(o) => {
                    tracing::info!(
                        topic = &*tp.topic,
                        partition = tp.partition,
                        offset = o,
                        stored = s,
                        committed = c,
                        "seek to stored offset"
                    );
                    if let Err(e) = seek(tp, Offset::At(o)) {
                        tracing::warn!(topic = &*tp.topic, partition = tp.partition, error = %e, "seek failed");
                    }
                }
                None => tracing::warn!(
                    topic = &*tp.topic, partition = tp.partition, stored = s, ?earliest, ?latest,
                    "stored offset is outside the log; starting from the committed offset or the reset policy"
                ),
            }
        }
    }

    /// Has the store bring its copy of the primary topic's `partitions` up to date. A failure
    /// stops them.
    async fn restore(&self, partitions: &[TopicPartition]) {
        let primary: Vec<&TopicPartition> =
            partitions.iter().filter(|tp| *tp.topic == *self.primary()).collect();
        if primary.is_empty() {
            return;
        }
        let mut numbers: Vec<i32> = primary.iter().map(|tp| tp.partition).collect();
        numbers.sort_unstable();
        // Marked restoring in the health snapshot by `on_assigned` (begin_restore) until the
        // whole assignment is restored.
        let started = Instant::now();
        match self.storage.restore(&numbers).await {
            Ok(()) => tracing::info!(
                partitions = ?numbers,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "workspace store restored"
            ),
            Err(e) => {
                for tp in &primary {
                    self.stop_partition(tp, &format!("cannot restore the workspace store: {e}"));
                }
            }
        }
    }

    /// What the store vouches for on `tp`, when it covers the committed offset `committed`:
    /// then replaying from `committed` misses no save. `None` when it does not (or cannot
    /// tell).
    fn saved_through(&self, tp: &TopicPartition, committed: i64) -> Option<SavedThrough> {
        let now_id = self.topic_info(&tp.topic).and_then(|t| t.id);
        match off_the_runtime(|| self.storage.saved_through(&tp.topic, tp.partition)) {
            Ok(through) => through.covers(committed, now_id.as_deref()).then_some(through),
            Err(e) => {
                tracing::warn!(topic = &*tp.topic, partition = tp.partition, error = %e, "cannot read the saved-through checkpoint; replaying from the workspaces' offsets");
                None
            }
        }
    }

    pub(super) async fn on_revoked(
        &self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
        lost: bool,
    ) {
        let started = Instant::now();
        let names: Vec<String> =
            partitions.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
        if lost {
            tracing::warn!(partitions = ?names, "partitions lost");
        } else {
            tracing::info!(partitions = ?names, "partitions revoked");
        }
        if !partitions.is_empty() {
            Metrics::add(if lost { &self.metrics.losses } else { &self.metrics.revocations });
        }
        self.health.end_restore(partitions);
        if self.eos.is_some() {
            return self.revoked_in_transactions(handle, partitions, lost, started).await;
        }
        let done = self.stop_workers(partitions, lost, self.drain_deadline(started)).await;
        // Their tasks have stopped: progress they reported earlier is committed below, or not
        // at all (lost), never by the poll loop after the partitions came back.
        for tp in partitions {
            let _ = self.progress.send((tp.clone(), REVOKED));
        }
        let end = started + self.config.shutdown_timeout;
        self.unload_unowned().await;
        for tp in partitions {
            self.metrics.forget(&tp.topic, tp.partition);
            self.health.clear_stopped(tp);
        }
        if !lost && !done.is_empty() {
            let offsets = done.into_iter().map(|(tp, n)| (tp, NextOffset::new(n)));
            match tokio::time::timeout_at(end.into(), handle.commit(offsets)).await {
                Ok(Ok(())) => tracing::info!("committed before revocation"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "commit before revocation failed");
                    self.health.error(format_args!("commit before revocation failed: {e}"));
                }
                Err(_) => {
                    tracing::warn!("commit before revocation timed out");
                    self.health.error("commit before revocation timed out");
                }
            }
        }
    }
}

impl Shared {
    /// Exactly-once mode's revocation: the partition tasks finish the message they are on,
    /// then the open transaction commits (the Java client commits in `onPartitionsRevoked`
    /// too) with what they did, and their workspaces are dropped. Lost partitions cannot
    /// commit any more (another member may own them): the transaction is aborted, and the
    /// partitions still owned are rewound to their committed offsets by the poll loop.
    async fn revoked_in_transactions(
        &self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
        lost: bool,
        started: Instant,
    ) {
        let Some(eos) = &self.eos else { return };
        let done = self.stop_workers(partitions, lost, self.drain_deadline(started)).await;
        let end = started + self.config.shutdown_timeout;
        // The generation the partitions are revoked in: its offsets are still this member's.
        let metadata = handle.group_metadata();
        let abort = if lost {
            Some("partitions lost".to_string())
        } else {
            match self.commit_transaction(metadata, &done, None, end).await {
                Ok(Ok(committed)) => {
                    if let super::eos::Committed::Offsets(n) = committed {
                        tracing::info!(partitions = n, "transaction committed before revocation");
                    }
                    None
                }
                Ok(Err(why)) => Some(why),
                Err(e) => {
                    tracing::error!(error = %e, "transaction commit before revocation failed; the engine stops");
                    self.health.error(format_args!("transaction commit before revocation failed: {e}"));
                    None
                }
            }
        };
        if let Some(why) = abort {
            match self.abort_transaction(&why).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "transaction abort failed; the engine stops");
                    self.health.error(format_args!("transaction abort failed: {e}"));
                }
            }
        }
        self.drop_unowned();
        eos.forget(partitions);
        for tp in partitions {
            self.metrics.forget(&tp.topic, tp.partition);
            self.health.clear_stopped(tp);
        }
    }

    /// Drops, unsaved, the workspaces whose partition no longer has a task (exactly-once
    /// mode: what they hold was committed, or aborted). One that is locked is passed over.
    fn drop_unowned(&self) {
        let owned: std::collections::HashSet<i32> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().map(|tp| tp.partition).collect();
        let mut map = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        // A workspace that is locked is in use by a task of a partition still owned.
        map.retain(|_, slot| slot.try_lock().map_or(true, |s| owned.contains(&s.ws.partition)));
    }
}

/// The group's rebalance listener: forwards to [`Shared`].
pub(super) struct Listener(pub(super) Arc<Shared>);

impl RebalanceListener for Listener {
    fn on_assigned(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        self.0.on_assigned(handle, partitions)
    }

    fn on_revoked(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        self.0.on_revoked(handle, partitions, false)
    }

    fn on_lost(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        self.0.on_revoked(handle, partitions, true)
    }
}
