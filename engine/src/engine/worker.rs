//! The partition tasks: each handles its partition's records in order, one at a time, saves
//! the workspaces a batch changed and reports the offset after it for commit.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klamm::{ConsumerRecord, TopicPartition};
use tokio::sync::{mpsc, watch, OwnedMutexGuard};
use tokio::task::JoinHandle;

use super::dead_letter::*;
use super::shared::*;
use crate::dlq::retry_backoff;
use crate::handler::{catch_panic, ErrorClass, Handler, HandlerContext, HandlerError, Message};
use crate::metrics::Metrics;
use crate::publish::OutgoingEvent;
use crate::workspace::{blocking, DeadLettering, StoredOffset, Workspace};

/// No offset saved yet, in [`Worker::saved`].
pub(super) const NOTHING_SAVED: i64 = i64::MIN;

/// One partition's task.
pub(super) struct Worker {
    pub(super) records: mpsc::UnboundedSender<Vec<ConsumerRecord>>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) abort: watch::Sender<bool>,
    /// The offset the task saved up to ([`NOTHING_SAVED`] if none), for when it has to be
    /// abandoned without returning.
    pub(super) saved: Arc<AtomicI64>,
    /// Exactly-once mode: the offset after the last message the task dealt with
    /// ([`NOTHING_SAVED`] if none), which the next transaction commits.
    pub(super) handled: Arc<AtomicI64>,
    pub(super) task: JoinHandle<Option<i64>>,
}

/// Why a partition task stopped handling a message before it was done.
pub(super) enum Halt {
    /// Told to abort (shutdown or revocation deadline, or the partition was lost): nothing
    /// after its last saved offset counts.
    Aborted,
    /// The partition is stopped (a workspace could not be loaded): this message and the
    /// ones after it are not handled.
    Stopped,
    /// Exactly-once mode: a write of the open transaction failed, or a message was left part
    /// way; the transaction is aborted and this message and the ones after it are read again
    /// after the rewind.
    Rewind,
}

/// How long partition tasks told to abort get to reach an await point and end, before they
/// are abandoned.
pub(super) const ABORT_GRACE: Duration = Duration::from_millis(200);

impl Shared {
    pub(super) fn start_worker(self: &Arc<Self>, tp: TopicPartition) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if workers.contains_key(&tp) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (abort, abort_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let queued = Arc::new(AtomicUsize::new(0));
        let saved = Arc::new(AtomicI64::new(NOTHING_SAVED));
        let handled = Arc::new(AtomicI64::new(NOTHING_SAVED));
        let span =
            tracing::info_span!("klamm.engine.partition", topic = &*tp.topic, partition = tp.partition);
        let run = {
            let (shared, partition) = (Arc::clone(self), tp.clone());
            let (queued, saved, handled) = (Arc::clone(&queued), Arc::clone(&saved), Arc::clone(&handled));
            let exactly_once = self.eos.is_some();
            async move {
                if exactly_once {
                    run_partition_in_transactions(shared, partition, rx, stop_rx, abort_rx, queued, handled)
                        .await
                } else {
                    run_partition(shared, partition, rx, stop_rx, abort_rx, queued, saved).await
                }
            }
        };
        let task = tokio::spawn(tracing::Instrument::instrument(run, span));
        workers.insert(tp, Worker { records: tx, queued, stop, abort, saved, handled, task });
    }

    /// When a shutdown or revocation that starts now has to have stopped its partition tasks:
    /// `shutdown_timeout` less what is kept for saving, committing and leaving afterwards
    /// (a quarter of it, at most 5 s).
    pub(super) fn drain_deadline(&self, started: Instant) -> Instant {
        let timeout = self.config.shutdown_timeout;
        started + timeout - (timeout / 4).min(Duration::from_secs(5))
    }

    /// Stops the tasks of `partitions`, all at once, and returns the offset each saved up to.
    /// Each finishes the message it is on (at once, with `abort`) until `deadline`; then it is
    /// told to abort, which cancels a handler that is still running (that message is not
    /// committed), and a task that does not end within [`ABORT_GRACE`] is abandoned at its
    /// last saved offset. Records queued behind the current message are dropped uncommitted:
    /// whoever owns the partition next reads them again.
    pub(super) async fn stop_workers(
        &self,
        partitions: &[TopicPartition],
        abort: bool,
        deadline: Instant,
    ) -> Vec<(TopicPartition, i64)> {
        let taken: Vec<(TopicPartition, Worker)> = {
            let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            partitions.iter().filter_map(|tp| workers.remove(tp).map(|w| (tp.clone(), w))).collect()
        };
        let mut running = Vec::with_capacity(taken.len());
        for (tp, w) in taken {
            let _ = w.stop.send(true);
            if abort {
                let _ = w.abort.send(true);
            }
            drop(w.records);
            running.push((tp, w.abort, w.saved, w.task));
        }
        let mut done = Vec::new();
        let mut late = Vec::new();
        for (tp, abort, saved, mut task) in running {
            match tokio::time::timeout_at(deadline.into(), &mut task).await {
                Ok(ended) => collect_ended(&tp, ended, &mut done),
                Err(_) => late.push((tp, abort, saved, task)),
            }
        }
        for (tp, abort, _, _) in &late {
            tracing::warn!(
                topic = &*tp.topic,
                partition = tp.partition,
                "in-flight message did not finish in time; abandoning it uncommitted"
            );
            let _ = abort.send(true);
        }
        let grace = tokio::time::Instant::now() + ABORT_GRACE;
        for (tp, _, saved, mut task) in late {
            match tokio::time::timeout_at(grace, &mut task).await {
                Ok(ended) => collect_ended(&tp, ended, &mut done),
                Err(_) => {
                    // Blocked without an await point: it cannot be cancelled, only left behind.
                    task.abort();
                    let s = saved.load(Ordering::Acquire);
                    tracing::error!(
                        topic = &*tp.topic,
                        partition = tp.partition,
                        saved = (s != NOTHING_SAVED).then_some(s),
                        "partition task does not stop (a handler blocks its thread); left behind"
                    );
                    if s != NOTHING_SAVED {
                        done.push((tp, s));
                    }
                }
            }
        }
        done
    }
}

/// Adds what an ended partition task saved up to.
pub(super) fn collect_ended(
    tp: &TopicPartition,
    ended: Result<Option<i64>, tokio::task::JoinError>,
    done: &mut Vec<(TopicPartition, i64)>,
) {
    match ended {
        Ok(Some(next)) => done.push((tp.clone(), next)),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(topic = &*tp.topic, partition = tp.partition, error = %e, "partition task failed")
        }
    }
}

/// Saves the dirty workspaces among `touched`, all in one [`WorkspaceStorage::save_all`]
/// (every write sent, then every write awaited); `true` when all were saved.
///
/// [`WorkspaceStorage::save_all`]: crate::WorkspaceStorage::save_all
pub(super) async fn save_touched(shared: &Shared, touched: &mut Vec<SlotRef>) -> bool {
    let mut saving: Vec<(SlotRef, OwnedMutexGuard<Slot>)> = Vec::new();
    let mut busy = false;
    touched.retain(|slot| match Arc::clone(slot).try_lock_owned() {
        Ok(guard) if guard.dirty => {
            saving.push((Arc::clone(slot), guard));
            true
        }
        Ok(_) => false,
        Err(_) => {
            busy = true;
            true
        }
    });
    if saving.is_empty() {
        return !busy;
    }
    let outcome = {
        let list: Vec<&Workspace> = saving.iter().map(|(_, g)| &g.ws).collect();
        shared.storage.save_all(&list).await
    };
    match outcome {
        Ok(()) => {
            for (slot, mut guard) in saving {
                guard.dirty = false;
                touched.retain(|t| !Arc::ptr_eq(t, &slot));
            }
            !busy
        }
        Err(e) => {
            let ids: Vec<&str> = saving.iter().map(|(_, g)| g.ws.workspace_id.as_str()).take(5).collect();
            tracing::error!(workspaces = saving.len(), first = ?ids, error = %e, "cannot save workspaces; not committing past them");
            shared.health.error(format_args!("cannot save {} workspaces ({ids:?}...): {e}", saving.len()));
            false
        }
    }
}

/// Records in the store that every save caused by `tp` below `next` is done, before `next` is
/// reported for commit. A failure is logged and otherwise ignored: a checkpoint behind the
/// committed offset only makes the next assignment replay more (see
/// [`SavedThrough`](crate::SavedThrough)).
pub(super) fn record_checkpoint(shared: &Shared, tp: &TopicPartition, next: i64) {
    let checkpoint = StoredOffset {
        topic: tp.topic.to_string(),
        topic_id: shared.topic_info(&tp.topic).and_then(|t| t.id),
        partition: tp.partition,
        offset: next,
    };
    if let Err(e) = blocking(|| shared.storage.record_saved_through(&checkpoint)) {
        tracing::warn!(offset = next, error = %e, "cannot record the saved-through checkpoint; the next assignment replays from the workspaces' offsets");
        shared.health.error(format_args!("cannot record checkpoint of {}-{}: {e}", tp.topic, tp.partition));
    }
}

/// One partition's task: handles its records in order, saves the workspaces a batch changed,
/// then reports the offset after the batch for commit. Once `stop` is set it finishes the
/// message it is on and handles no more; once the partition is stopped (see
/// [`Shared::stop_partition`]) it drops what it is given. Returns the offset saved up to.
pub(super) async fn run_partition(
    shared: Arc<Shared>,
    tp: TopicPartition,
    mut records: mpsc::UnboundedReceiver<Vec<ConsumerRecord>>,
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    queued: Arc<AtomicUsize>,
    saved_cell: Arc<AtomicI64>,
) -> Option<i64> {
    let mut touched: Vec<SlotRef> = Vec::new();
    let mut saved: Option<i64> = None;
    let mut handled: Option<i64> = None;
    while let Some(batch) = records.recv().await {
        let n = batch.len();
        let mut aborted = false;
        for record in batch {
            if *stop.borrow() {
                aborted = true;
                break;
            }
            if shared.health.is_stopped(&tp) {
                break;
            }
            match process(&shared, &tp, record, &mut touched, &abort).await {
                Ok(next) => handled = Some(next),
                Err(Halt::Stopped | Halt::Rewind) => break,
                Err(Halt::Aborted) => {
                    aborted = true;
                    break;
                }
            }
        }
        queued.fetch_sub(n, Ordering::Relaxed);
        if save_touched(&shared, &mut touched).await && handled != saved {
            saved = handled;
            if let Some(next) = saved {
                record_checkpoint(&shared, &tp, next);
                saved_cell.store(next, Ordering::Release);
                let _ = shared.progress.send((tp.clone(), next));
            }
        }
        if aborted {
            break;
        }
    }
    if save_touched(&shared, &mut touched).await && handled != saved {
        saved = handled;
        if let Some(next) = saved {
            record_checkpoint(&shared, &tp, next);
        }
    }
    saved
}

/// A partition's task in exactly-once mode: handles its records in order, each while holding
/// the transaction gate (shared), so that a commit, which takes it exclusively, falls between
/// two messages. It saves nothing itself: the commit saves the workspaces the transaction
/// changed and commits the offset after the last message dealt with (`handled_cell`). Once the
/// open transaction has failed it drops what it is given until the rewind replaces it. Returns
/// the offset after the last message dealt with.
pub(super) async fn run_partition_in_transactions(
    shared: Arc<Shared>,
    tp: TopicPartition,
    mut records: mpsc::UnboundedReceiver<Vec<ConsumerRecord>>,
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    queued: Arc<AtomicUsize>,
    handled_cell: Arc<AtomicI64>,
) -> Option<i64> {
    let eos = shared.eos.as_ref()?;
    let mut touched: Vec<SlotRef> = Vec::new();
    let mut handled: Option<i64> = None;
    while let Some(batch) = records.recv().await {
        let n = batch.len();
        let mut aborted = false;
        for record in batch {
            if *stop.borrow() {
                aborted = true;
                break;
            }
            if shared.health.is_stopped(&tp) || eos.is_poisoned() {
                break;
            }
            let mut abort_rx = abort.clone();
            let gate = tokio::select! {
                g = Arc::clone(&eos.gate).read_owned() => g,
                _ = abort_rx.wait_for(|a| *a) => {
                    aborted = true;
                    break;
                }
            };
            if eos.is_poisoned() {
                break;
            }
            let outcome = process(&shared, &tp, record, &mut touched, &abort).await;
            match outcome {
                Ok(next) => {
                    handled = Some(next);
                    handled_cell.store(next, Ordering::Release);
                }
                Err(Halt::Stopped) => break,
                Err(Halt::Rewind) => break,
                Err(Halt::Aborted) => {
                    // Events or a dead-letter write of the message may be in the transaction
                    // already: it must not commit without the message.
                    eos.poison("a message was abandoned part way");
                    aborted = true;
                }
            }
            drop(gate);
            if aborted {
                break;
            }
        }
        // The commit saves what the transaction changed.
        touched.clear();
        queued.fetch_sub(n, Ordering::Relaxed);
        if aborted {
            break;
        }
    }
    handled
}

/// Sends the events a handler published with its message: in exactly-once mode into the open
/// transaction (its commit waits for them; a failed send fails the transaction), otherwise
/// waiting for each acknowledgement.
async fn publish_events(shared: &Shared, events: Vec<OutgoingEvent>) -> Result<(), klamm::Error> {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        deliveries.push(shared.producer.send(event.record).await?);
    }
    if shared.eos.is_none() {
        for d in deliveries {
            d.await?;
        }
    }
    Ok(())
}

/// Records in the workspace that `msg` is dealt with (applied, skipped after a business error,
/// or dead-lettered), so that a replay passes over it; the workspace is saved with the batch.
fn dealt_with(shared: &Shared, msg: &Message, g: &mut Slot, slot: &SlotRef, touched: &mut Vec<SlotRef>) {
    let topic_id = shared.topic_info(&msg.topic).and_then(|t| t.id);
    g.ws.set_next_offset(&msg.topic, topic_id.as_deref(), msg.partition, msg.offset + 1);
    g.dirty = true;
    if !touched.iter().any(|t| Arc::ptr_eq(t, slot)) {
        touched.push(Arc::clone(slot));
    }
}

/// At-least-once mode: records in the workspace, and saves it, that the dead-letter write of
/// `msg` begins, so that a run killed after the write and before the workspace's next save
/// does not write it again (see [`written_by_an_earlier_run`]). In exactly-once mode the write
/// is in the transaction with the workspace's changelog record, and nothing is needed.
async fn record_dead_lettering(shared: &Shared, msg: &Message, g: &mut Slot) {
    if shared.eos.is_some() {
        return;
    }
    let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    g.ws.set_dead_lettering(Some(DeadLettering {
        topic: msg.topic.to_string(),
        partition: msg.partition,
        offset: msg.offset,
        at,
    }));
    if let Err(e) = shared.storage.save_all(&[&g.ws]).await {
        tracing::warn!(
            offset = msg.offset, workspace = %g.ws.workspace_id, error = %e,
            "cannot save the workspace before its event's dead-letter write; if the engine dies before the next save, the event is dead-lettered again"
        );
    }
}

/// Whether the workspace was saved with the dead-letter write of `msg` begun (by a run killed
/// before it could record the write done) and the dead-letter topic holds it: then the event
/// is dealt with. Otherwise the mark is dropped and the event is handled again (written again
/// if it fails again, marked anew); so it is too when the topic cannot be searched.
async fn written_by_an_earlier_run(
    shared: &Shared,
    msg: &Message,
    g: &mut Slot,
    abort: &watch::Receiver<bool>,
) -> Result<bool, Halt> {
    let Some(mark) = g.ws.dead_lettering() else { return Ok(false) };
    if shared.eos.is_some()
        || mark.topic != *msg.topic
        || mark.partition != msg.partition
        || mark.offset != msg.offset
    {
        return Ok(false);
    }
    let mut aborted = abort.clone();
    let found = tokio::select! {
        found = already_dead_lettered(shared, msg, mark.at) => found,
        _ = aborted.wait_for(|a| *a) => return Err(Halt::Aborted),
    };
    match found {
        Ok(true) => {
            tracing::info!(
                offset = msg.offset, workspace = %g.ws.workspace_id,
                "already on the dead-letter topic (an earlier run wrote it); not written again"
            );
            Ok(true)
        }
        Ok(false) => {
            g.ws.set_dead_lettering(None);
            Ok(false)
        }
        Err(e) => {
            tracing::warn!(
                offset = msg.offset, workspace = %g.ws.workspace_id, error = %e,
                "cannot search the dead-letter topic for an earlier run's write; the event is handled again"
            );
            g.ws.set_dead_lettering(None);
            Ok(false)
        }
    }
}

pub(super) async fn sleep_or_abort(d: Duration, abort: &watch::Receiver<bool>) -> Result<(), Halt> {
    let mut abort = abort.clone();
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        _ = abort.wait_for(|a| *a) => Err(Halt::Aborted),
    }
}

/// Handles one record: skips it if its workspace has applied it, runs the handler with
/// retries, dead-letters what cannot be handled. Returns the offset after it.
pub(super) async fn process(
    shared: &Shared,
    tp: &TopicPartition,
    record: ConsumerRecord,
    touched: &mut Vec<SlotRef>,
    abort: &watch::Receiver<bool>,
) -> Result<i64, Halt> {
    let metrics = &shared.metrics;
    let msg = Message::new(record);
    let next = msg.offset + 1;
    metrics.set_lag(&msg.topic, msg.partition, msg.high_watermark - next);
    let slot = match msg.workspace_id().map(|id| shared.slot(id)) {
        Some(Ok(slot)) => Some(slot),
        Some(Err(e)) => {
            shared.stop_partition(tp, &format!("{e} (at offset {})", msg.offset));
            return Err(Halt::Stopped);
        }
        None => None,
    };
    let mut guard: Option<OwnedMutexGuard<Slot>> = match &slot {
        Some(s) => Some(Arc::clone(s).lock_owned().await),
        None => None,
    };
    if let Some(g) = &guard {
        if g.ws.next_offset(&msg.topic, msg.partition).is_some_and(|n| msg.offset < n) {
            tracing::debug!(offset = msg.offset, workspace = %g.ws.workspace_id, "already applied; skipped");
            Metrics::add(&metrics.replayed);
            return Ok(next);
        }
    }
    if let (Some(g), Some(slot)) = (guard.as_mut(), &slot) {
        if written_by_an_earlier_run(shared, &msg, g, abort).await? {
            g.ws.set_dead_lettering(None);
            dealt_with(shared, &msg, g, slot, touched);
            Metrics::add(&metrics.replayed);
            return Ok(next);
        }
    }
    let mut attempt = 0u32;
    loop {
        let mut ctx = HandlerContext::new(attempt, guard.as_ref().map(|g| g.ws.clone()))
            .with_source(&shared.config.group_id);
        let mut aborted = abort.clone();
        // A handler that does not return is cancelled when the task is told to abort.
        let started = Instant::now();
        let result = tokio::select! {
            r = catch_panic(shared.handler.handle(&msg, &mut ctx)) => r,
            _ = aborted.wait_for(|a| *a) => return Err(Halt::Aborted),
        };
        metrics.handler_latency.observe(started.elapsed());
        let error = match result {
            Ok(()) => {
                let (ws, events) = ctx.into_parts();
                let published = if events.is_empty() {
                    Ok(())
                } else {
                    let mut aborted = abort.clone();
                    tokio::select! {
                        r = publish_events(shared, events) => r,
                        _ = aborted.wait_for(|a| *a) => return Err(Halt::Aborted),
                    }
                };
                match published {
                    Ok(()) => {
                        if let (Some(g), Some(slot)) = (guard.as_mut(), &slot) {
                            // The handler owns the data; the id, partition and offsets are the
                            // engine's.
                            if let Some(ws) = ws {
                                g.ws.data = ws.data;
                            }
                            dealt_with(shared, &msg, g, slot, touched);
                        }
                        Metrics::add(&metrics.processed);
                        return Ok(next);
                    }
                    Err(e) => {
                        if let Some(eos) = &shared.eos {
                            tracing::warn!(offset = msg.offset, error = %e, "publishing into the transaction failed");
                            eos.poison(&format!(
                                "publishing the events of offset {} failed: {e}",
                                msg.offset
                            ));
                            return Err(Halt::Rewind);
                        }
                        HandlerError::transient("publishing the handler's events failed").with_source(e)
                    }
                }
            }
            Err(e) => e,
        };
        Metrics::add(&metrics.failed);
        match error.class() {
            ErrorClass::Business => {
                tracing::info!(offset = msg.offset, error = %error, "business error; skipped");
                Metrics::add(&metrics.skipped);
                if let (Some(g), Some(slot)) = (guard.as_mut(), &slot) {
                    dealt_with(shared, &msg, g, slot, touched);
                }
                return Ok(next);
            }
            ErrorClass::Transient if attempt < shared.config.max_retries => {
                let wait =
                    retry_backoff(shared.config.retry_backoff, shared.config.retry_backoff_max, attempt);
                tracing::warn!(offset = msg.offset, attempt, ?wait, error = %error, "transient error; retrying");
                Metrics::add(&metrics.retried);
                sleep_or_abort(wait, abort).await?;
                attempt += 1;
            }
            class => {
                if let Some(g) = guard.as_mut() {
                    record_dead_lettering(shared, &msg, g).await;
                }
                drop(guard.take());
                dead_letter(shared, &msg, &error, class, attempt, abort).await?;
                // The workspace is done with the event too: a replay must not dead-letter it
                // again.
                if let Some(slot) = &slot {
                    let mut g = Arc::clone(slot).lock_owned().await;
                    g.ws.set_dead_lettering(None);
                    dealt_with(shared, &msg, &mut g, slot, touched);
                }
                return Ok(next);
            }
        }
    }
}
