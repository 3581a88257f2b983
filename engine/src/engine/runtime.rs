//! The consume loop of [`Engine::run`]: polls the group, hands records to the partition tasks,
//! pauses partitions that fall behind, commits what was saved, and shuts down in order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use klamm::{Admin, Client, ConsumerRecord, Error, ErrorKind, Producer, TopicPartition};
use klamm_group::{GroupConsumer, NextOffset, RebalanceListener};
use tokio::sync::mpsc;

use super::eos::{Committed, Transactions};
use super::rebalance::*;
use super::shared::*;
use super::topics::*;
use super::Engine;
use crate::changelog::KafkaStorage;
use crate::health::{EnginePhase, GroupView};
use crate::metrics::MetricsSnapshot;
use crate::workspace::WorkspaceStorage;

/// Records queued for one partition task beyond which its partition is paused.
pub(super) const MAX_QUEUED: usize = 2000;

/// How long one poll waits; also how quickly a shutdown request is noticed.
pub(super) const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Consecutive poll failures after which the engine stops.
pub(super) const MAX_POLL_FAILURES: u32 = 100;

impl Engine {
    /// Runs until `shutdown` completes, then stops fetching, lets the partition tasks finish
    /// what they were given, saves the workspaces, commits and leaves the group.
    ///
    /// Fails at startup when a source topic does not exist or the dead-letter topic cannot be
    /// made, and later when the group member cannot go on.
    ///
    /// With the HTTP endpoint on ([`Engine::http_addr`]) it answers from the start of `run`
    /// (`/readyz` says 503 until the engine is ready) until `run` returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let health = Arc::clone(&self.health);
        health.set_phase(EnginePhase::Starting);
        let server = match self.http.take() {
            Some(endpoint) => Some(endpoint.serve(self.health())?),
            None => None,
        };
        let outcome = self.run_inner(shutdown).await;
        if let Err(e) = &outcome {
            health.error(e);
        }
        health.set_phase(EnginePhase::Stopped);
        if let Some(server) = server {
            server.stop().await;
        }
        outcome
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let config = self.config;
        let group_config = config.group_config()?;
        let admin = Admin::new(Client::new(group_config.consumer.client.clone())?);
        self.health.add_client("admin", admin.client().clone());
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
        let primary_partitions = topics[&config.topics[0]].partitions;
        ensure_dlq(&admin, &config, primary_partitions).await?;
        // Exactly-once: one transactional producer for everything the engine writes. Its
        // initialisation fences an earlier instance with the same transactional.id and aborts
        // that one's open transaction, before anything is restored (read_committed).
        let transactional = match config.exactly_once {
            true => {
                let producer_config = config.transactional_producer_config()?;
                let id = producer_config.transactional_id.clone().unwrap_or_default();
                let p = Producer::new(producer_config)?;
                p.init_transactions().await?;
                p.begin_transaction()?;
                tracing::info!(transactional_id = %id, "exactly-once: transactions initialised");
                Some(p)
            }
            false => None,
        };
        let (storage, changelog) = match self.storage {
            Some(s) => (s, None),
            None => {
                let (store, own) = match &transactional {
                    Some(p) => {
                        (KafkaStorage::open_with(&config, &admin, primary_partitions, p.clone()).await?, None)
                    }
                    None => {
                        let store = KafkaStorage::open(&config, &admin, primary_partitions).await?;
                        self.health.add_client("changelog", store.producer().client().clone());
                        let producer = store.producer().clone();
                        (store, Some(producer))
                    }
                };
                tracing::info!(topic = store.topic(), "workspaces kept in the changelog topic");
                (Arc::new(store) as Arc<dyn WorkspaceStorage>, own)
            }
        };
        let producer = match &transactional {
            Some(p) => p.clone(),
            None => Producer::new(config.producer_config()?)?,
        };
        self.health.add_client("producer", producer.client().clone());
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config: config.clone(),
            handler: self.handler,
            storage,
            metrics: Arc::clone(&self.metrics),
            health: Arc::clone(&self.health),
            producer: producer.clone(),
            admin,
            topics: Mutex::new(topics),
            workspaces: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            progress: progress_tx,
            eos: transactional.map(Transactions::new),
        });
        let mut consumer = GroupConsumer::with_listener(group_config, Listener(Arc::clone(&shared)))?;
        shared.health.add_client("consumer", consumer.client().clone());
        consumer.subscribe(config.topics.iter().cloned());
        shared.health.set_phase(EnginePhase::Running);
        tracing::info!(
            topics = ?config.topics, group = %config.group_id, dlq = %config.dlq_topic,
            commit_interval = ?config.effective_commit_interval(), exactly_once = config.exactly_once,
            "engine started"
        );

        let mut shutdown = pin!(shutdown);
        let mut paused: HashSet<TopicPartition> = HashSet::new();
        let mut failures = 0u32;
        let mut next_log = Instant::now() + config.metrics_interval;
        let interval = config.effective_commit_interval();
        let mut commits = Commits { pending: HashMap::new(), next: Instant::now() + interval };
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
                    if shared.eos.as_ref().is_some_and(|eos| eos.take_rewind()) {
                        // The listener aborted the transaction: these records come from
                        // positions the rewind moves back from, and are fetched again.
                        if let Err(e) = shared.rewind(&mut consumer).await {
                            tracing::error!(error = %e, "exactly-once: cannot rewind; stopping");
                            outcome = Err(e);
                            break;
                        }
                    } else {
                        dispatch(&shared, records);
                    }
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
            if shared.eos.is_some() {
                if let Err(e) = transaction_step(&shared, &mut consumer, &mut commits).await {
                    tracing::error!(error = %e, "exactly-once: the transactions cannot go on; stopping");
                    outcome = Err(e);
                    break;
                }
            } else {
                commit_progress(&shared, &consumer, &mut progress_rx, &mut commits).await;
            }
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
        if shared.eos.is_some() {
            let done: Vec<(TopicPartition, i64)> =
                done.into_iter().filter(|(tp, _)| assigned.contains(tp)).collect();
            final_transaction(&shared, &consumer, &done, end).await;
        } else {
            shared.unload_unowned().await;
            while progress_rx.try_recv().is_ok() {}
            final_commit(&shared, &consumer, done, &assigned, end).await;
        }
        if let Err(e) = consumer.close(end.saturating_duration_since(Instant::now())).await {
            tracing::warn!(error = %e, "leaving the group failed");
            shared.health.error(format_args!("leaving the group failed: {e}"));
        }
        producer.close(end.saturating_duration_since(Instant::now())).await;
        if let Some(changelog) = changelog {
            changelog.close(end.saturating_duration_since(Instant::now())).await;
        }
        log_metrics(&shared.metrics.snapshot());
        tracing::info!("shutdown complete");
        outcome
    }
}

/// The shutdown's commit of the offsets the stopped partition tasks saved up to (`done`).
async fn final_commit<L: RebalanceListener>(
    shared: &Shared,
    consumer: &GroupConsumer<L>,
    done: Vec<(TopicPartition, i64)>,
    assigned: &[TopicPartition],
    end: Instant,
) {
    let finals: Vec<(TopicPartition, NextOffset)> = done
        .into_iter()
        .filter(|(tp, _)| assigned.contains(tp))
        .map(|(tp, n)| (tp, NextOffset::new(n)))
        .collect();
    if !finals.is_empty() {
        let committed: Vec<(TopicPartition, i64)> =
            finals.iter().map(|(tp, n)| (tp.clone(), n.offset())).collect();
        match tokio::time::timeout_at(end.into(), consumer.commit(finals)).await {
            Ok(Ok(())) => {
                for (tp, next) in committed {
                    shared.metrics.set_committed(&tp.topic, tp.partition, next);
                }
                tracing::info!("final offsets committed")
            }
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
}

/// Exactly-once mode, each turn of the poll loop: stops on a fatal transaction error, and
/// once the commit interval has passed (or at once when the open transaction failed) commits
/// it, or aborts it and rewinds.
async fn transaction_step(
    shared: &Arc<Shared>,
    consumer: &mut GroupConsumer<Listener>,
    commits: &mut Commits,
) -> Result<(), Error> {
    let Some(eos) = &shared.eos else { return Ok(()) };
    if let Some(e) = eos.fatal() {
        return Err(e);
    }
    if let Some(why) = eos.poisoned_why() {
        shared.abort_transaction(&why).await?;
        eos.take_rewind();
        return shared.rewind(consumer).await;
    }
    if Instant::now() < commits.next {
        return Ok(());
    }
    // Not while a rebalance is under way or its outcome is not applied yet: the tasks may
    // work on partitions that are no longer this member's. The next poll applies it (the
    // listener commits or aborts what it concerns), and the commit follows.
    if consumer.settled_group_metadata().is_none() {
        return Ok(());
    }
    commits.next = Instant::now() + shared.config.effective_commit_interval();
    let deadline = Instant::now() + shared.config.shutdown_timeout;
    let owned: HashSet<TopicPartition> = consumer.assignment().into_iter().collect();
    let committed = match shared.prepare_commit(&[], Some(&owned), deadline).await? {
        // Read again after the wait for the gate and the saves: a rebalance may have begun.
        Ok(Some(prepared)) => shared.finish_commit(prepared, consumer.settled_group_metadata()).await?,
        Ok(None) => Ok(Committed::Nothing),
        Err(why) => Err(why),
    };
    match committed {
        Ok(_) => Ok(()),
        Err(why) => {
            shared.abort_transaction(&why).await?;
            eos.take_rewind();
            shared.rewind(consumer).await
        }
    }
}

/// Exactly-once mode's shutdown: commits the open transaction with what the stopped partition
/// tasks did (`done`), or aborts it when it failed, then drops the workspaces.
async fn final_transaction(
    shared: &Shared,
    consumer: &GroupConsumer<Listener>,
    done: &[(TopicPartition, i64)],
    end: Instant,
) {
    let abort = if let Some(e) = shared.eos.as_ref().and_then(|eos| eos.fatal()) {
        tracing::warn!(error = %e, "no final transaction: the producer cannot go on");
        None
    } else if consumer.settled_group_metadata().is_some() {
        let owned: HashSet<TopicPartition> = consumer.assignment().into_iter().collect();
        let committed = match shared.prepare_commit(done, Some(&owned), end).await {
            Ok(Ok(Some(prepared))) => {
                let metadata = consumer.settled_group_metadata();
                let rebalancing = metadata.is_none();
                match shared.finish_commit(prepared, metadata).await {
                    Ok(Ok(_)) if rebalancing => Ok(Err("shutting down during a rebalance".to_string())),
                    other => other,
                }
            }
            Ok(Ok(None)) => Ok(Ok(Committed::Nothing)),
            Ok(Err(why)) => Ok(Err(why)),
            Err(e) => Err(e),
        };
        match committed {
            Ok(Ok(_)) => {
                tracing::info!("final transaction committed");
                None
            }
            Ok(Err(why)) => Some(why),
            Err(e) => {
                tracing::warn!(error = %e, "final transaction commit failed");
                shared.health.error(format_args!("final transaction commit failed: {e}"));
                None
            }
        }
    } else {
        // A rebalance is under way: what the tasks did may be another member's to commit.
        Some("shutting down during a rebalance".to_string())
    };
    if let Some(why) = abort {
        if let Err(e) = shared.abort_transaction(&why).await {
            tracing::warn!(error = %e, "final transaction abort failed");
        }
    }
    shared.workspaces.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Hands each partition's records to its task, in order.
pub(super) fn dispatch(shared: &Arc<Shared>, records: Vec<ConsumerRecord>) {
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
pub(super) fn flow_control<L: RebalanceListener>(
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

/// Saved offsets waiting for their commit, and when the next commit is due.
pub(super) struct Commits {
    /// The latest saved next offset of each partition since the last commit.
    pub(super) pending: HashMap<TopicPartition, i64>,
    /// When the next commit is due: at once with a zero `commit_interval`.
    pub(super) next: Instant,
}

/// Gathers the saved offsets the partition tasks reported and, once `commit_interval` has
/// passed since the last commit, commits the latest of each. An offset of a partition revoked
/// since it was reported is dropped: its revocation committed it, and a commit of it after
/// the partition came back would move the group's offset back.
pub(super) async fn commit_progress<L: RebalanceListener>(
    shared: &Shared,
    consumer: &GroupConsumer<L>,
    progress: &mut mpsc::UnboundedReceiver<(TopicPartition, i64)>,
    commits: &mut Commits,
) {
    while let Ok((tp, next)) = progress.try_recv() {
        if next == REVOKED {
            commits.pending.remove(&tp);
            continue;
        }
        let e = commits.pending.entry(tp).or_insert(next);
        *e = (*e).max(next);
    }
    if commits.pending.is_empty() || Instant::now() < commits.next {
        return;
    }
    commits.next = Instant::now() + shared.config.commit_interval;
    let assigned: HashSet<TopicPartition> = consumer.assignment().into_iter().collect();
    let offsets: Vec<(TopicPartition, i64)> =
        commits.pending.drain().filter(|(tp, _)| assigned.contains(tp)).collect();
    if offsets.is_empty() {
        return;
    }
    let to_commit = offsets.iter().map(|(tp, n)| (tp.clone(), NextOffset::new(*n)));
    match consumer.commit(to_commit.collect::<Vec<_>>()).await {
        Ok(()) => {
            tracing::debug!(partitions = offsets.len(), "offsets committed");
            for (tp, next) in offsets {
                shared.metrics.set_committed(&tp.topic, tp.partition, next);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "commit failed; the next one covers it");
            shared.health.error(format_args!("commit failed: {e}"));
            // Kept for the next commit, unless newer progress came meanwhile.
            for (tp, n) in offsets {
                let e = commits.pending.entry(tp).or_insert(n);
                *e = (*e).max(n);
            }
        }
    }
}

/// Where the group member stands now, for the health snapshot.
pub(super) fn group_view<L: RebalanceListener>(consumer: &GroupConsumer<L>) -> GroupView {
    let assigned = consumer.assignment();
    let fetch_lag = assigned
        .iter()
        .filter_map(|tp| consumer.lag(tp).map(|l| ((tp.topic.to_string(), tp.partition), l)))
        .collect();
    let (generation, member_id) = consumer.generation();
    GroupView { state: consumer.state(), generation, member_id, assigned, fetch_lag }
}

pub(super) fn log_metrics(m: &MetricsSnapshot) {
    let lag: Vec<String> = m.lag.iter().map(|((t, p), l)| format!("{t}-{p}={l}")).collect();
    tracing::info!(
        processed = m.processed, failed = m.failed, retried = m.retried, dead_lettered = m.dead_lettered,
        skipped = m.skipped, replayed = m.replayed, lag = ?lag, "metrics"
    );
}
