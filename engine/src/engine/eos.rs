//! Exactly-once mode: one transactional producer for the engine, through which the handlers'
//! events, the workspace changelog writes and the dead-letter writes go, and one transaction
//! per commit interval that also commits the input offsets.
//!
//! A commit takes the transaction gate exclusively: the partition tasks hold it (shared) while
//! they handle a message, so the commit falls between two messages of every partition. It then
//! saves the workspaces the transaction changed (their changelog records join the
//! transaction), sends the offset after the last message each partition dealt with, with the
//! group member's metadata (so that the group coordinator refuses them from a member that was
//! fenced, KIP-447), commits, and begins the next transaction.
//!
//! When a transaction fails in a way it can recover from (abortable), the engine aborts it and
//! rewinds: every partition task is stopped, every loaded workspace dropped, the changelog of
//! the owned partitions is read again (read_committed: only what committed transactions wrote)
//! and every owned partition goes back to its committed offset, as if it had been revoked and
//! assigned again. A fenced or fatal error stops the engine.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use klamm::{ConsumerGroupMetadata, Error, ErrorKind, Offset, OffsetReset, Producer, TopicPartition};
use klamm_group::{GroupConsumer, NextOffset};
use tokio::sync::OwnedMutexGuard;

use super::rebalance::Listener;
use super::shared::*;
use super::worker::NOTHING_SAVED;
use crate::metrics::Metrics;
use crate::workspace::Workspace;

/// How often a commit whose outcome is unknown (the coordinator did not answer in time) is
/// tried again before the engine gives up.
const COMMIT_ATTEMPTS: u32 = 3;

/// The exactly-once state the partition tasks and the runtime share.
pub(super) struct Transactions {
    /// The engine's transactional producer (also [`Shared::producer`] and the changelog's).
    pub(super) producer: Producer,
    /// Held shared by a partition task while it handles a message, exclusively while a
    /// transaction commits.
    pub(super) gate: Arc<tokio::sync::RwLock<()>>,
    /// Why the open transaction cannot commit (a write into it failed, or a message was left
    /// part way), when it cannot.
    poisoned: Mutex<Option<String>>,
    /// Set when the open transaction was aborted (or lost) outside the poll loop: the
    /// partitions still owned have to go back to their committed offsets.
    rewind: AtomicBool,
    /// The input offsets the last committed transactions committed, per partition.
    committed: Mutex<HashMap<TopicPartition, i64>>,
    /// The error that ended the exactly-once mode (fenced or fatal), once there is one.
    fatal: Mutex<Option<Error>>,
}

/// A commit under way: the gate held, the changed workspaces saved (and still locked), the
/// offsets to send.
pub(super) struct Prepared {
    gate: tokio::sync::OwnedRwLockWriteGuard<()>,
    dirty: Vec<OwnedMutexGuard<Slot>>,
    offsets: HashMap<TopicPartition, i64>,
}

/// What a commit did.
pub(super) enum Committed {
    /// Nothing was handled since the last commit.
    Nothing,
    /// The transaction committed these input offsets.
    Offsets(usize),
}

impl Transactions {
    pub(super) fn new(producer: Producer) -> Self {
        Transactions {
            producer,
            gate: Arc::new(tokio::sync::RwLock::new(())),
            poisoned: Mutex::new(None),
            rewind: AtomicBool::new(false),
            committed: Mutex::new(HashMap::new()),
            fatal: Mutex::new(None),
        }
    }

    /// Marks the open transaction as one that has to be aborted.
    pub(super) fn poison(&self, why: &str) {
        let mut p = self.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none() {
            tracing::warn!(reason = why, "the open transaction will be aborted");
            *p = Some(why.to_string());
        }
    }

    pub(super) fn is_poisoned(&self) -> bool {
        self.poisoned.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub(super) fn poisoned_why(&self) -> Option<String> {
        self.poisoned.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn request_rewind(&self) {
        self.rewind.store(true, Ordering::Release);
    }

    pub(super) fn take_rewind(&self) -> bool {
        self.rewind.swap(false, Ordering::AcqRel)
    }

    /// The error that ended the exactly-once mode, if one did.
    pub(super) fn fatal(&self) -> Option<Error> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_fatal(&self, e: &Error) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(e.clone());
        }
    }

    /// Forgets what was committed for `partitions` (revoked or lost): whoever owns them next
    /// goes on from there.
    pub(super) fn forget(&self, partitions: &[TopicPartition]) {
        let mut c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        for tp in partitions {
            c.remove(tp);
        }
    }

    /// Remembers the offsets the group has committed for `partitions`, as read at assignment.
    pub(super) fn remember(&self, committed: &HashMap<TopicPartition, Option<NextOffset>>) {
        let mut c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        for (tp, next) in committed {
            match next {
                Some(n) => c.insert(tp.clone(), n.offset()),
                None => c.remove(tp),
            };
        }
    }
}

/// Classifies a transactional call's error: `Ok` when the transaction can be aborted and the
/// engine rewound, `Err` when the engine has to stop.
fn abortable(e: Error) -> Result<String, Error> {
    if e.is_abortable() {
        Ok(e.to_string())
    } else {
        Err(e)
    }
}

impl Shared {
    fn transactions(&self) -> Result<&Transactions, Error> {
        self.eos.as_ref().ok_or_else(|| Error::with_message(ErrorKind::User, "not in exactly-once mode"))
    }

    /// Commits the open transaction and begins the next one: waits (until `deadline`) for
    /// every partition task to be between two messages, saves the workspaces the transaction
    /// changed, sends the offset after the last message of each partition (the running tasks'
    /// and `stopped`, those of tasks stopped for a revocation or a shutdown) with `metadata`,
    /// and commits. With `owned`, offsets of other partitions are left out (a task of a
    /// partition the member lost and has not been told yet). `Ok(Err(why))` when the
    /// transaction has to be aborted (it was not, yet); `Err` when the engine has to stop.
    pub(super) async fn commit_transaction(
        &self,
        metadata: ConsumerGroupMetadata,
        stopped: &[(TopicPartition, i64)],
        owned: Option<&HashSet<TopicPartition>>,
        deadline: Instant,
    ) -> Result<Result<Committed, String>, Error> {
        match self.prepare_commit(stopped, owned, deadline).await? {
            Ok(Some(prepared)) => self.finish_commit(prepared, Some(metadata)).await,
            Ok(None) => Ok(Ok(Committed::Nothing)),
            Err(why) => Ok(Err(why)),
        }
    }

    /// The first half of [`Shared::commit_transaction`]: takes the gate, gathers the offsets
    /// and saves the changed workspaces. `Ok(None)`: nothing to commit (or a handler held the
    /// gate past `deadline`).
    pub(super) async fn prepare_commit(
        &self,
        stopped: &[(TopicPartition, i64)],
        owned: Option<&HashSet<TopicPartition>>,
        deadline: Instant,
    ) -> Result<Result<Option<Prepared>, String>, Error> {
        let eos = self.transactions()?;
        if let Some(e) = eos.fatal() {
            return Err(e);
        }
        let Ok(gate) = tokio::time::timeout_at(deadline.into(), Arc::clone(&eos.gate).write_owned()).await
        else {
            tracing::warn!("a handler held the commit back past its deadline; committing later");
            return Ok(Ok(None));
        };
        if let Some(why) = eos.poisoned_why() {
            return Ok(Err(why));
        }
        let mut offsets: HashMap<TopicPartition, i64> = HashMap::new();
        {
            let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            for (tp, w) in workers.iter() {
                let h = w.handled.load(Ordering::Acquire);
                if h != NOTHING_SAVED {
                    offsets.insert(tp.clone(), h);
                }
            }
        }
        for (tp, next) in stopped {
            let e = offsets.entry(tp.clone()).or_insert(*next);
            *e = (*e).max(*next);
        }
        if let Some(owned) = owned {
            offsets.retain(|tp, _| owned.contains(tp));
        }
        {
            let committed = eos.committed.lock().unwrap_or_else(|e| e.into_inner());
            offsets.retain(|tp, next| committed.get(tp) != Some(next));
        }
        let slots: Vec<SlotRef> =
            self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut dirty: Vec<OwnedMutexGuard<Slot>> = Vec::new();
        for slot in slots {
            match slot.try_lock_owned() {
                Ok(g) if g.dirty => dirty.push(g),
                Ok(_) => {}
                Err(_) => {
                    // Only a task that was left behind holds a workspace now.
                    return Ok(Err("a workspace is held by a handler that does not return".into()));
                }
            }
        }
        if offsets.is_empty() && dirty.is_empty() {
            return Ok(Ok(None));
        }
        if !dirty.is_empty() {
            let list: Vec<&Workspace> = dirty.iter().map(|g| &g.ws).collect();
            if let Err(e) = self.storage.save_all(&list).await {
                return Ok(Err(format!("cannot save {} workspaces: {e}", list.len())));
            }
        }
        Ok(Ok(Some(Prepared { gate, dirty, offsets })))
    }

    /// The second half of [`Shared::commit_transaction`]: sends the offsets with `metadata`
    /// and commits, then begins the next transaction. Without `metadata` (a rebalance began
    /// while the commit was prepared) it commits nothing: the saves stay in the open
    /// transaction, and the workspaces stay marked changed for the next commit.
    pub(super) async fn finish_commit(
        &self,
        prepared: Prepared,
        metadata: Option<ConsumerGroupMetadata>,
    ) -> Result<Result<Committed, String>, Error> {
        let eos = self.transactions()?;
        let Prepared { gate, dirty, offsets } = prepared;
        if !offsets.is_empty() {
            let Some(metadata) = metadata else {
                tracing::debug!("a rebalance began; the transaction commits later");
                return Ok(Ok(Committed::Nothing));
            };
            let sent: Vec<(TopicPartition, i64)> = offsets.iter().map(|(tp, n)| (tp.clone(), *n)).collect();
            if let Err(e) = eos.producer.send_offsets_to_transaction(sent, &metadata).await {
                return abortable(e).map(Err);
            }
        }
        let mut attempt = 1;
        loop {
            match eos.producer.commit_transaction().await {
                Ok(()) => break,
                Err(e) if e.is_retriable() && attempt < COMMIT_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "transaction commit did not finish; trying again");
                    attempt += 1;
                }
                Err(e) => {
                    if e.is_retriable() {
                        eos.set_fatal(&e);
                        return Err(e);
                    }
                    let why = abortable(e).inspect_err(|e| eos.set_fatal(e))?;
                    return Ok(Err(why));
                }
            }
        }
        Metrics::add(&self.metrics.transactions_committed);
        for mut g in dirty {
            g.dirty = false;
        }
        {
            let mut committed = eos.committed.lock().unwrap_or_else(|e| e.into_inner());
            for (tp, next) in &offsets {
                committed.insert(tp.clone(), *next);
                self.metrics.set_committed(&tp.topic, tp.partition, *next);
            }
        }
        tracing::debug!(partitions = offsets.len(), "transaction committed");
        self.begin_transaction()?;
        drop(gate);
        Ok(Ok(Committed::Offsets(offsets.len())))
    }

    /// Begins the next transaction; a failure to is fatal.
    pub(super) fn begin_transaction(&self) -> Result<(), Error> {
        let eos = self.transactions()?;
        eos.producer.begin_transaction().inspect_err(|e| eos.set_fatal(e))
    }

    /// Aborts the open transaction (`why` it has to be), stops every partition task and
    /// drops every loaded workspace (they hold what the aborted transaction wrote), and begins
    /// the next transaction; all of it while holding the gate, so that no task handles a
    /// message between the abort and its stop (that message would go into the next
    /// transaction and be handled again after the rewind). The partitions' positions are then
    /// ahead of what is committed: [`Shared::rewind`] follows, before the next records are
    /// handed out (it is requested here). An error when the abort failed: the engine stops.
    pub(super) async fn abort_transaction(&self, why: &str) -> Result<(), Error> {
        let eos = self.transactions()?;
        tracing::warn!(reason = why, "aborting the transaction");
        self.health.error(format_args!("transaction aborted: {why}"));
        let wait = self.config.shutdown_timeout;
        let Ok(gate) = tokio::time::timeout(wait, Arc::clone(&eos.gate).write_owned()).await else {
            let e = Error::with_message(
                ErrorKind::Timeout,
                format!("cannot abort the transaction: a handler has not returned within {wait:?}"),
            );
            eos.set_fatal(&e);
            return Err(e);
        };
        if let Err(e) = eos.producer.abort_transaction().await {
            eos.set_fatal(&e);
            return Err(e);
        }
        Metrics::add(&self.metrics.transactions_aborted);
        *eos.poisoned.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let all: Vec<TopicPartition> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        // Each task is between two messages (the gate is held): told to abort, it ends at once.
        self.stop_workers(&all, true, Instant::now() + Duration::from_secs(1)).await;
        self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).clear();
        eos.request_rewind();
        self.begin_transaction()?;
        drop(gate);
        Ok(())
    }

    /// After an abort: moves each owned partition back to its committed offset
    /// (`auto.offset.reset` where none is committed), reads the changelog of the owned
    /// partitions again (read_committed: what committed transactions wrote), and starts them as
    /// on an assignment. Tasks started since the abort (an assignment in the same poll) are
    /// stopped first: they were given nothing yet.
    pub(super) async fn rewind(
        self: &Arc<Self>,
        consumer: &mut GroupConsumer<Listener>,
    ) -> Result<(), Error> {
        let all: Vec<TopicPartition> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        self.stop_workers(&all, true, Instant::now() + Duration::from_secs(1)).await;
        self.workspaces.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let assigned = consumer.assignment();
        let names: Vec<String> = assigned.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
        tracing::info!(partitions = ?names, "rewinding to the last committed transaction");
        let committed = consumer.committed(&assigned).await?;
        let reset = match self.config.group_config()?.consumer.auto_offset_reset {
            OffsetReset::Latest => Offset::End,
            _ => Offset::Beginning,
        };
        for tp in &assigned {
            let to = match committed.get(tp).cloned().flatten() {
                Some(n) => Offset::At(n.offset()),
                None => reset,
            };
            if let Err(e) = consumer.seek(tp, to) {
                tracing::warn!(topic = &*tp.topic, partition = tp.partition, error = %e, "seek failed");
            }
        }
        let loaded = self.prepare_assignment(&assigned).await;
        let mut seek = |tp: &TopicPartition, o: Offset| consumer.seek(tp, o);
        self.position_assignment(&assigned, &committed, &loaded, &mut seek).await;
        for tp in &assigned {
            self.start_worker(tp.clone());
        }
        self.health.end_restore(&assigned);
        Ok(())
    }
}
