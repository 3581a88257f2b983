//! The runtime: [`Engine`] and its [`EngineBuilder`]. It joins the group, hands each assigned
//! partition's records to a task of its own (one message at a time per partition, partitions
//! concurrently), retries and dead-letters failures, keeps the workspaces of its partitions,
//! and commits an offset only once everything before it was handled or dead-lettered and the
//! workspaces it changed were saved.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use klamm::protocol::ErrorCode;
use klamm::{
    Admin, Client, ConsumerRecord, Error, ErrorKind, NewTopic, Offset, OffsetSpec, Producer, TopicPartition,
};
use klamm_group::{GroupConsumer, NextOffset, RebalanceHandle, RebalanceListener};
use tokio::sync::{mpsc, watch, OwnedMutexGuard};
use tokio::task::JoinHandle;

use crate::config::EngineConfig;
use crate::dlq::{dead_letter_record, retry_backoff};
use crate::handler::{catch_panic, BoxHandler, ErrorClass, Handler, HandlerContext, HandlerError, Message};
use crate::health::{EngineHealth, EnginePhase, GroupView, Health};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::workspace::{partition_of, FileStorage, Workspace, WorkspaceStorage};

/// Records queued for one partition task beyond which its partition is paused.
const MAX_QUEUED: usize = 2000;
/// How long one poll waits; also how quickly a shutdown request is noticed.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Consecutive poll failures after which the engine stops.
const MAX_POLL_FAILURES: u32 = 100;

/// Builds an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    config: Option<EngineConfig>,
    handler: Option<BoxHandler>,
    storage: Option<Arc<dyn WorkspaceStorage>>,
}

impl EngineBuilder {
    /// The settings (default: [`EngineConfig::default`]).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The handler of every message (a [`Router`](crate::Router) to route by topic). Required.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(BoxHandler::new(handler));
        self
    }

    /// Where workspaces are kept (default: [`FileStorage`] in the config's `state_dir`).
    pub fn storage(mut self, storage: impl WorkspaceStorage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Checks the settings and makes the engine (no connection yet).
    pub fn build(self) -> Result<Engine, Error> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let handler = self
            .handler
            .ok_or_else(|| Error::with_message(ErrorKind::Config, "engine: no handler was given"))?;
        let storage = match self.storage {
            Some(s) => s,
            None => Arc::new(
                FileStorage::new(&config.state_dir)
                    .map_err(|e| Error::with_message(ErrorKind::Config, format!("KAFKA_STATE_DIR: {e}")))?,
            ),
        };
        Ok(Engine {
            config,
            handler,
            storage,
            metrics: Arc::new(Metrics::default()),
            health: Arc::new(Health::default()),
        })
    }
}

/// A read handle on an engine's metrics, usable while it runs.
#[derive(Debug, Clone)]
pub struct EngineMetrics(Arc<Metrics>);

impl EngineMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.0.snapshot()
    }
}

/// The workspace engine. See the crate docs.
pub struct Engine {
    config: EngineConfig,
    handler: BoxHandler,
    storage: Arc<dyn WorkspaceStorage>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A loaded workspace and whether it changed since it was saved.
struct Slot {
    ws: Workspace,
    dirty: bool,
}

type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// What the engine knows of a source topic, from the last metadata it read (at startup and
/// at each assignment).
#[derive(Debug, Clone)]
struct TopicInfo {
    partitions: NonZeroU32,
    /// The topic id (hyphenated hex); `None` when the broker gave none.
    id: Option<String>,
}

/// What the partition tasks and the rebalance listener share.
struct Shared {
    config: EngineConfig,
    handler: BoxHandler,
    storage: Arc<dyn WorkspaceStorage>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    producer: Producer,
    admin: Admin,
    topics: Mutex<HashMap<String, TopicInfo>>,
    workspaces: Mutex<HashMap<String, SlotRef>>,
    workers: Mutex<HashMap<TopicPartition, Worker>>,
    progress: mpsc::UnboundedSender<(TopicPartition, i64)>,
}

/// No offset saved yet, in [`Worker::saved`].
const NOTHING_SAVED: i64 = i64::MIN;

/// One partition's task.
struct Worker {
    records: mpsc::UnboundedSender<Vec<ConsumerRecord>>,
    queued: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    /// The offset the task saved up to ([`NOTHING_SAVED`] if none), for when it has to be
    /// abandoned without returning.
    saved: Arc<AtomicI64>,
    task: JoinHandle<Option<i64>>,
}

/// Why a partition task stopped handling a message before it was done.
enum Halt {
    /// Told to abort (shutdown or revocation deadline, or the partition was lost): nothing
    /// after its last saved offset counts.
    Aborted,
    /// The partition is stopped (a workspace could not be loaded): this message and the
    /// ones after it are not handled.
    Stopped,
}

/// How long partition tasks told to abort get to reach an await point and end, before they
/// are abandoned.
const ABORT_GRACE: Duration = Duration::from_millis(200);

impl Shared {
    fn primary(&self) -> &str {
        &self.config.topics[0]
    }

    fn topic_info(&self, topic: &str) -> Option<TopicInfo> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).get(topic).cloned()
    }

    fn partitions_of(&self, topic: &str) -> NonZeroU32 {
        self.topic_info(topic).map_or(NonZeroU32::MIN, |t| t.partitions)
    }

    /// The partition of the primary topic workspace `id` lives on now.
    fn home_of(&self, id: &str) -> i32 {
        partition_of(id, self.partitions_of(self.primary()))
    }

    /// Reads the source topics' partition counts and ids again (partitions may have been
    /// added, or a topic deleted and made again, which is what brings a rebalance).
    async fn refresh_topics(&self) {
        let names: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        for (name, described) in self.admin.describe_topics(&names).await {
            match described {
                Ok(meta) => {
                    let Some(partitions) = NonZeroU32::new(meta.partition_count()) else { continue };
                    let id = (!meta.id.is_zero()).then(|| meta.id.to_string());
                    let info = TopicInfo { partitions, id };
                    let old = self
                        .topics
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), info.clone());
                    if let Some(old) = old.filter(|o| o.partitions != info.partitions || o.id != info.id) {
                        tracing::info!(
                            topic = %name, partitions = info.partitions.get(), was = old.partitions.get(),
                            id = ?info.id, was_id = ?old.id, "source topic changed"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "cannot read the topic's metadata; using what was known")
                }
            }
        }
    }

    /// Brings a workspace in line with the topics as they are now: places offsets of the
    /// older form, drops offsets recorded for an earlier topic of the same name (its id
    /// differs), and sets its partition. Returns whether it changed.
    fn adopt(&self, ws: &mut Workspace) -> bool {
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
    fn slot(&self, id: &str) -> Result<SlotRef, String> {
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
    fn stop_partition(&self, tp: &TopicPartition, reason: &str) {
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

    fn start_worker(self: &Arc<Self>, tp: TopicPartition) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if workers.contains_key(&tp) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (abort, abort_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let queued = Arc::new(AtomicUsize::new(0));
        let saved = Arc::new(AtomicI64::new(NOTHING_SAVED));
        let span =
            tracing::info_span!("klamm.engine.partition", topic = &*tp.topic, partition = tp.partition);
        let task = tokio::spawn(tracing::Instrument::instrument(
            run_partition(
                Arc::clone(self),
                tp.clone(),
                rx,
                stop_rx,
                abort_rx,
                Arc::clone(&queued),
                Arc::clone(&saved),
            ),
            span,
        ));
        workers.insert(tp, Worker { records: tx, queued, stop, abort, saved, task });
    }

    /// When a shutdown or revocation that starts now has to have stopped its partition tasks:
    /// `shutdown_timeout` less what is kept for saving, committing and leaving afterwards
    /// (a quarter of it, at most 5 s).
    fn drain_deadline(&self, started: Instant) -> Instant {
        let timeout = self.config.shutdown_timeout;
        started + timeout - (timeout / 4).min(Duration::from_secs(5))
    }

    /// Stops the tasks of `partitions`, all at once, and returns the offset each saved up to.
    /// Each finishes the message it is on (at once, with `abort`) until `deadline`; then it is
    /// told to abort, which cancels a handler that is still running (that message is not
    /// committed), and a task that does not end within [`ABORT_GRACE`] is abandoned at its
    /// last saved offset. Records queued behind the current message are dropped uncommitted:
    /// whoever owns the partition next reads them again.
    async fn stop_workers(
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

    /// Saves and drops the workspaces whose partition no longer has a task. A workspace that is
    /// locked is in use by a task still running (which saves it) or by one that was left
    /// behind (which holds it for good): it is passed over, never waited for.
    fn unload_unowned(&self) {
        let owned: HashSet<i32> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().map(|tp| tp.partition).collect();
        let slots: Vec<(String, SlotRef)> = {
            let map = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
        };
        for (id, slot) in slots {
            let Ok(mut s) = slot.try_lock() else { continue };
            if owned.contains(&s.ws.partition) {
                continue;
            }
            if s.dirty {
                match off_the_runtime(|| self.storage.save(&s.ws)) {
                    Ok(()) => s.dirty = false,
                    Err(e) => {
                        tracing::error!(workspace = %id, error = %e, "cannot save workspace");
                        self.health.error(format_args!("cannot save workspace {id}: {e}"));
                    }
                }
            }
            self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }

    /// Loads the stored workspaces of `partitions` and seeks each partition with a committed
    /// offset to the smallest stored next offset of the loaded workspaces on it, when that is
    /// below the committed offset.
    /// A partition one of whose workspaces cannot be loaded is stopped.
    async fn on_assigned(self: &Arc<Self>, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        let names: Vec<String> =
            partitions.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
        tracing::info!(partitions = ?names, "partitions assigned");
        for tp in partitions {
            self.health.clear_stopped(tp);
        }
        self.refresh_topics().await;
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
        let committed = match handle.committed(partitions).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets");
                HashMap::new()
            }
        };
        for tp in partitions {
            if self.health.is_stopped(tp) {
                continue;
            }
            let mut stored: Option<i64> = None;
            let mut range: Option<(Option<i64>, Option<i64>)> = None;
            for slot in &loaded {
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
            let Some(s) = stored else { continue };
            let (earliest, latest) = range.unwrap_or((None, None));
            let Some(c) = committed.get(tp).cloned().flatten().map(|n| n.offset()) else {
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
                    if let Err(e) = handle.seek(tp, Offset::At(o)) {
                        tracing::warn!(topic = &*tp.topic, partition = tp.partition, error = %e, "seek failed");
                    }
                }
                None => tracing::warn!(
                    topic = &*tp.topic, partition = tp.partition, stored = s, ?earliest, ?latest,
                    "stored offset is outside the log; starting from the committed offset or the reset policy"
                ),
            }
        }
        for tp in partitions {
            self.start_worker(tp.clone());
        }
    }

    /// The partition's first and end offsets, when they can be looked up.
    async fn log_range(&self, tp: &TopicPartition) -> (Option<i64>, Option<i64>) {
        let asked = [
            (&*tp.topic, tp.partition, OffsetSpec::Earliest),
            (&*tp.topic, tp.partition, OffsetSpec::Latest),
        ];
        let listed = self.admin.list_offsets(&asked).await;
        let get = |i: usize| listed.get(i).and_then(|(_, r)| r.as_ref().ok()).map(|l| l.offset);
        (get(0), get(1))
    }

    async fn on_revoked(&self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition], lost: bool) {
        let started = Instant::now();
        let names: Vec<String> =
            partitions.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
        if lost {
            tracing::warn!(partitions = ?names, "partitions lost");
        } else {
            tracing::info!(partitions = ?names, "partitions revoked");
        }
        let done = self.stop_workers(partitions, lost, self.drain_deadline(started)).await;
        let end = started + self.config.shutdown_timeout;
        self.unload_unowned();
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

/// Locks `slot`, waiting no later than `deadline`: a workspace is locked while a partition
/// task applies an event to it, and a handler that hangs must not hold up a rebalance.
async fn lock_until(slot: &SlotRef, deadline: Instant) -> Option<tokio::sync::MutexGuard<'_, Slot>> {
    match tokio::time::timeout_at(deadline.into(), slot.lock()).await {
        Ok(guard) => Some(guard),
        Err(_) => {
            tracing::warn!("workspace held by a handler that does not return; passed over");
            None
        }
    }
}

/// Adds what an ended partition task saved up to.
fn collect_ended(
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

/// The group's rebalance listener: forwards to [`Shared`].
struct Listener(Arc<Shared>);

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

/// Runs a storage call (file reads, writes and fsyncs) without holding up the other tasks of
/// the worker thread: on a multi-threaded runtime the thread hands its tasks to the others
/// while `f` blocks. On a current-thread runtime there is no other thread to hand them to, so
/// `f` just runs.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Saves the dirty workspaces among `touched`; `true` when all were saved.
fn save_touched(shared: &Shared, touched: &mut Vec<SlotRef>) -> bool {
    let mut ok = true;
    touched.retain(|slot| {
        let Ok(mut s) = slot.try_lock() else { return true };
        if !s.dirty {
            return false;
        }
        match off_the_runtime(|| shared.storage.save(&s.ws)) {
            Ok(()) => {
                s.dirty = false;
                false
            }
            Err(e) => {
                tracing::error!(workspace = %s.ws.workspace_id, error = %e, "cannot save workspace; not committing past it");
                shared.health.error(format_args!("cannot save workspace {}: {e}", s.ws.workspace_id));
                ok = false;
                true
            }
        }
    });
    ok && touched.is_empty()
}

/// One partition's task: handles its records in order, saves the workspaces a batch changed,
/// then reports the offset after the batch for commit. Once `stop` is set it finishes the
/// message it is on and handles no more; once the partition is stopped (see
/// [`Shared::stop_partition`]) it drops what it is given. Returns the offset saved up to.
async fn run_partition(
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
                Err(Halt::Stopped) => break,
                Err(Halt::Aborted) => {
                    aborted = true;
                    break;
                }
            }
        }
        queued.fetch_sub(n, Ordering::Relaxed);
        if save_touched(&shared, &mut touched) && handled != saved {
            saved = handled;
            if let Some(next) = saved {
                saved_cell.store(next, Ordering::Release);
                let _ = shared.progress.send((tp.clone(), next));
            }
        }
        if aborted {
            break;
        }
    }
    if save_touched(&shared, &mut touched) {
        saved = handled;
    }
    saved
}

async fn sleep_or_abort(d: Duration, abort: &watch::Receiver<bool>) -> Result<(), Halt> {
    let mut abort = abort.clone();
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        _ = abort.wait_for(|a| *a) => Err(Halt::Aborted),
    }
}

/// Handles one record: skips it if its workspace has applied it, runs the handler with
/// retries, dead-letters what cannot be handled. Returns the offset after it.
async fn process(
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
    let mut attempt = 0u32;
    loop {
        let mut ctx = HandlerContext::new(attempt, guard.as_ref().map(|g| g.ws.clone()));
        let mut aborted = abort.clone();
        // A handler that does not return is cancelled when the task is told to abort.
        let result = tokio::select! {
            r = catch_panic(shared.handler.handle(&msg, &mut ctx)) => r,
            _ = aborted.wait_for(|a| *a) => return Err(Halt::Aborted),
        };
        let error = match result {
            Ok(()) => {
                if let (Some(g), Some(slot)) = (guard.as_mut(), &slot) {
                    // The handler owns the data; the id, partition and offsets are the engine's.
                    if let Some(ws) = ctx.into_workspace() {
                        g.ws.data = ws.data;
                    }
                    let topic_id = shared.topic_info(&msg.topic).and_then(|t| t.id);
                    g.ws.set_next_offset(&msg.topic, topic_id.as_deref(), msg.partition, next);
                    g.dirty = true;
                    if !touched.iter().any(|t| Arc::ptr_eq(t, slot)) {
                        touched.push(Arc::clone(slot));
                    }
                }
                Metrics::add(&metrics.processed);
                return Ok(next);
            }
            Err(e) => e,
        };
        Metrics::add(&metrics.failed);
        match error.class() {
            ErrorClass::Business => {
                tracing::info!(offset = msg.offset, error = %error, "business error; skipped");
                Metrics::add(&metrics.skipped);
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
                drop(guard.take());
                dead_letter(shared, &msg, &error, class, attempt, abort).await?;
                return Ok(next);
            }
        }
    }
}

/// Writes `msg` to the dead-letter topic, retrying until the write is acknowledged (or the
/// task is aborted: then it is not counted as handled and nothing past it is committed).
async fn dead_letter(
    shared: &Shared,
    msg: &Message,
    error: &HandlerError,
    class: ErrorClass,
    retries: u32,
    abort: &watch::Receiver<bool>,
) -> Result<(), Halt> {
    let record = dead_letter_record(&shared.config.dlq_topic, msg, &error.to_string(), class, retries);
    let mut attempt = 0u32;
    loop {
        let written = match shared.producer.send(record.clone()).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        match written {
            Ok(meta) => {
                tracing::info!(
                    topic = &*msg.topic, partition = msg.partition, offset = msg.offset,
                    dlq = %shared.config.dlq_topic, dlq_partition = meta.partition, dlq_offset = meta.offset,
                    class = class.as_str(), retries, error = %error, "dead-lettered"
                );
                Metrics::add(&shared.metrics.dead_lettered);
                return Ok(());
            }
            Err(e) => {
                let wait =
                    retry_backoff(shared.config.retry_backoff, shared.config.retry_backoff_max, attempt);
                tracing::warn!(offset = msg.offset, error = %e, ?wait, "dead-letter write failed; retrying");
                shared
                    .health
                    .error(format_args!("dead-letter write to {} failed: {e}", shared.config.dlq_topic));
                sleep_or_abort(wait, abort).await?;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A handle on the metrics, to read them while [`Engine::run`] runs.
    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics(Arc::clone(&self.metrics))
    }

    /// A handle on the engine's health (connected brokers, group state, assigned partitions,
    /// lag, last error), to serve from liveness and readiness probes while [`Engine::run`]
    /// runs.
    pub fn health(&self) -> EngineHealth {
        EngineHealth { health: Arc::clone(&self.health), metrics: Arc::clone(&self.metrics) }
    }

    /// Runs until `shutdown` completes, then stops fetching, lets the partition tasks finish
    /// what they were given, saves the workspaces, commits and leaves the group.
    ///
    /// Fails at startup when a source topic does not exist or the dead-letter topic cannot be
    /// made, and later when the group member cannot go on.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let health = Arc::clone(&self.health);
        health.set_phase(EnginePhase::Starting);
        let outcome = self.run_inner(shutdown).await;
        if let Err(e) = &outcome {
            health.error(e);
        }
        health.set_phase(EnginePhase::Stopped);
        outcome
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let config = self.config;
        let group_config = config.group_config()?;
        let admin = Admin::new(Client::new(group_config.consumer.client.clone())?);
        self.health.add_client(admin.client().clone());
        let mut topics = HashMap::new();
        for topic in &config.topics {
            let meta = admin
                .wait_for_topic(topic, group_config.api_timeout)
                .await
                .map_err(|e| Error::with_message(ErrorKind::Config, format!("source topic {topic}: {e}")))?;
            let partitions = NonZeroU32::new(meta.partition_count()).unwrap_or(NonZeroU32::MIN);
            let id = (!meta.id.is_zero()).then(|| meta.id.to_string());
            topics.insert(topic.clone(), TopicInfo { partitions, id });
        }
        ensure_dlq(&admin, &config, topics[&config.topics[0]].partitions).await?;
        let producer = Producer::new(config.producer_config()?)?;
        self.health.add_client(producer.client().clone());
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config: config.clone(),
            handler: self.handler,
            storage: self.storage,
            metrics: Arc::clone(&self.metrics),
            health: Arc::clone(&self.health),
            producer: producer.clone(),
            admin,
            topics: Mutex::new(topics),
            workspaces: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            progress: progress_tx,
        });
        let mut consumer = GroupConsumer::with_listener(group_config, Listener(Arc::clone(&shared)))?;
        shared.health.add_client(consumer.client().clone());
        consumer.subscribe(config.topics.iter().cloned());
        shared.health.set_phase(EnginePhase::Running);
        tracing::info!(topics = ?config.topics, group = %config.group_id, dlq = %config.dlq_topic, "engine started");

        let mut shutdown = pin!(shutdown);
        let mut paused: HashSet<TopicPartition> = HashSet::new();
        let mut failures = 0u32;
        let mut next_log = Instant::now() + config.metrics_interval;
        let mut outcome = Ok(());
        loop {
            let stop = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
            if stop {
                tracing::info!("shutdown requested: no more fetching");
                break;
            }
            match consumer.poll(POLL_TIMEOUT).await {
                Ok(records) => {
                    failures = 0;
                    dispatch(&shared, records);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "poll failed");
                    shared.health.error(format_args!("poll failed: {e}"));
                    if failures >= MAX_POLL_FAILURES {
                        outcome = Err(e);
                        break;
                    }
                    tokio::time::sleep(POLL_TIMEOUT).await;
                }
            }
            flow_control(&shared, &mut consumer, &mut paused);
            commit_progress(&shared, &consumer, &mut progress_rx).await;
            shared.health.polled(group_view(&consumer));
            if Instant::now() >= next_log {
                next_log = Instant::now() + config.metrics_interval;
                log_metrics(&shared.metrics.snapshot());
            }
        }

        // Shutdown: finish in-flight messages, save, commit, leave; all of it within
        // `shutdown_timeout`, however long a handler takes.
        let started = Instant::now();
        let end = started + config.shutdown_timeout;
        shared.health.set_phase(EnginePhase::ShuttingDown);
        let assigned = consumer.assignment();
        let all: Vec<TopicPartition> =
            shared.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        let done = shared.stop_workers(&all, false, shared.drain_deadline(started)).await;
        shared.unload_unowned();
        while progress_rx.try_recv().is_ok() {}
        let finals: Vec<(TopicPartition, NextOffset)> = done
            .into_iter()
            .filter(|(tp, _)| assigned.contains(tp))
            .map(|(tp, n)| (tp, NextOffset::new(n)))
            .collect();
        if !finals.is_empty() {
            match tokio::time::timeout_at(end.into(), consumer.commit(finals)).await {
                Ok(Ok(())) => tracing::info!("final offsets committed"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "final commit failed");
                    shared.health.error(format_args!("final commit failed: {e}"));
                }
                Err(_) => {
                    tracing::warn!("final commit timed out");
                    shared.health.error("final commit timed out");
                }
            }
        }
        if let Err(e) = consumer.close(end.saturating_duration_since(Instant::now())).await {
            tracing::warn!(error = %e, "leaving the group failed");
            shared.health.error(format_args!("leaving the group failed: {e}"));
        }
        producer.close(end.saturating_duration_since(Instant::now())).await;
        log_metrics(&shared.metrics.snapshot());
        tracing::info!("shutdown complete");
        outcome
    }
}

/// Hands each partition's records to its task, in order.
fn dispatch(shared: &Arc<Shared>, records: Vec<ConsumerRecord>) {
    if records.is_empty() {
        return;
    }
    let mut by_partition: BTreeMap<(Arc<str>, i32), Vec<ConsumerRecord>> = BTreeMap::new();
    for r in records {
        by_partition.entry((Arc::clone(&r.topic), r.partition)).or_default().push(r);
    }
    for ((topic, partition), batch) in by_partition {
        let tp = TopicPartition { topic, partition };
        shared.start_worker(tp.clone());
        let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = workers.get(&tp) {
            w.queued.fetch_add(batch.len(), Ordering::Relaxed);
            if w.records.send(batch).is_err() {
                tracing::error!(topic = &*tp.topic, partition = tp.partition, "partition task is gone");
            }
        }
    }
}

/// Pauses partitions whose task has too much queued, resumes them once it caught up. A
/// stopped partition is paused and stays so: there is no point fetching what it drops.
fn flow_control<L: RebalanceListener>(
    shared: &Shared,
    consumer: &mut GroupConsumer<L>,
    paused: &mut HashSet<TopicPartition>,
) {
    let assigned: HashSet<TopicPartition> = consumer.assignment().into_iter().collect();
    paused.retain(|tp| assigned.contains(tp));
    let (mut pause, mut resume) = (Vec::new(), Vec::new());
    {
        let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (tp, w) in workers.iter() {
            let q = w.queued.load(Ordering::Relaxed);
            let stopped = shared.health.is_stopped(tp);
            if (q > MAX_QUEUED || stopped) && assigned.contains(tp) && !paused.contains(tp) {
                pause.push(tp.clone());
            } else if q <= MAX_QUEUED / 2 && paused.contains(tp) && !stopped {
                resume.push(tp.clone());
            }
        }
    }
    if !pause.is_empty() {
        consumer.pause(pause.iter());
        paused.extend(pause);
    }
    if !resume.is_empty() {
        consumer.resume(resume.iter());
        for tp in &resume {
            paused.remove(tp);
        }
    }
}

/// Commits the latest saved offset each partition task reported.
async fn commit_progress<L: RebalanceListener>(
    shared: &Shared,
    consumer: &GroupConsumer<L>,
    progress: &mut mpsc::UnboundedReceiver<(TopicPartition, i64)>,
) {
    let mut latest: HashMap<TopicPartition, i64> = HashMap::new();
    while let Ok((tp, next)) = progress.try_recv() {
        let e = latest.entry(tp).or_insert(next);
        *e = (*e).max(next);
    }
    if latest.is_empty() {
        return;
    }
    let assigned: HashSet<TopicPartition> = consumer.assignment().into_iter().collect();
    let offsets: Vec<(TopicPartition, NextOffset)> = latest
        .into_iter()
        .filter(|(tp, _)| assigned.contains(tp))
        .map(|(tp, n)| (tp, NextOffset::new(n)))
        .collect();
    if offsets.is_empty() {
        return;
    }
    if let Err(e) = consumer.commit(offsets).await {
        tracing::warn!(error = %e, "commit failed; the next one covers it");
        shared.health.error(format_args!("commit failed: {e}"));
    }
}

/// Where the group member stands now, for the health snapshot.
fn group_view<L: RebalanceListener>(consumer: &GroupConsumer<L>) -> GroupView {
    let assigned = consumer.assignment();
    let fetch_lag = assigned
        .iter()
        .filter_map(|tp| consumer.lag(tp).map(|l| ((tp.topic.to_string(), tp.partition), l)))
        .collect();
    let (generation, member_id) = consumer.generation();
    GroupView { state: consumer.state(), generation, member_id, assigned, fetch_lag }
}

fn log_metrics(m: &MetricsSnapshot) {
    let lag: Vec<String> = m.lag.iter().map(|((t, p), l)| format!("{t}-{p}={l}")).collect();
    tracing::info!(
        processed = m.processed, failed = m.failed, retried = m.retried, dead_lettered = m.dead_lettered,
        skipped = m.skipped, replayed = m.replayed, lag = ?lag, "metrics"
    );
}

/// Creates the dead-letter topic with `partitions` partitions unless it exists.
async fn ensure_dlq(admin: &Admin, config: &EngineConfig, partitions: NonZeroU32) -> Result<(), Error> {
    let dlq = &config.dlq_topic;
    let described = admin.describe_topics(&[dlq.as_str()]).await;
    match described.into_iter().next() {
        Some((_, Ok(_))) => return Ok(()),
        Some((_, Err(e))) if e.code() != Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {
            return Err(Error::with_message(ErrorKind::Config, format!("dead-letter topic {dlq}: {e}")));
        }
        _ => {}
    }
    let mut topic = NewTopic::with_defaults(dlq.clone());
    topic.partitions = Some(i32::try_from(partitions.get()).unwrap_or(i32::MAX));
    match admin.create_topics(&[topic]).await.into_iter().next() {
        Some((_, Ok(_))) => {
            tracing::info!(topic = %dlq, partitions = partitions.get(), "dead-letter topic created")
        }
        Some((_, Err(e))) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        Some((_, Err(e))) => {
            return Err(Error::with_message(
                ErrorKind::Config,
                format!("cannot create dead-letter topic {dlq}: {e}"),
            ))
        }
        None => {}
    }
    admin
        .wait_for_topic(dlq, config.shutdown_timeout)
        .await
        .map_err(|e| Error::with_message(ErrorKind::Config, format!("dead-letter topic {dlq}: {e}")))?;
    Ok(())
}
