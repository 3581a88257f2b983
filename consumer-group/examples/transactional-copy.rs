//! Copies a topic to another exactly once: reads `--input` as a member of `--group`, writes
//! each record's key and value to `--output` with a `source-offset` header (the input
//! partition and offset, as ASCII `partition:offset`), and commits the input offsets in the
//! same transaction as the copies. A read_committed reader of the output sees every input
//! record once, however often the copier is killed and restarted with the same
//! `--transactional-id`.
//!
//! ```text
//! cargo run -p klamm-group --release --example transactional-copy -- --brokers B --input T1 \
//!     --output T2 --group G --transactional-id ID [--commit-every N] [--count N] \
//!     [--timeout-ms MS] [--property key=value]...
//! ```
//!
//! A transaction holds at most `--commit-every` records (default 1000), and is committed
//! sooner when a poll returns nothing: records never wait in an open transaction for more to
//! arrive. Stops after `--count` records were copied and committed, or when nothing arrived for
//! MS milliseconds (default 10000), or on SIGINT/SIGTERM; then commits what it copied, leaves
//! the group and prints a summary on stdout:
//! `copied <records> committed <transactions> aborted <transactions> seconds <S>`, where S is
//! the time from the first record read to the last commit (0 when nothing was copied).
//!
//! `--property` sets a Kafka property of the group consumer and of the transactional producer.
//! A name with the prefix `consumer.` or `producer.` goes to that one only, without the prefix
//! (`producer.linger.ms=5`); a name without a prefix goes to each of the two that knows it
//! (`session.timeout.ms` to the consumer, `transaction.timeout.ms` to the producer,
//! `security.protocol` to both), and is an error when neither does. The flags win over it,
//! and `isolation.level=read_committed` and `enable.auto.commit=false` always hold for the
//! consumer: the input's aborted records are not copied, and offsets are committed only by
//! transactions. Partitions with no committed offset start at the beginning.
//!
//! Failures, as the transactional API sorts them: an abortable error (a record refused, the
//! group coordinator refusing the offsets because the member left the generation) aborts the
//! transaction and rewinds its partitions to where it began, the last committed offsets, so
//! its records are copied again. Before partitions are revoked the open transaction is
//! committed (and aborted if that fails); when they are lost it is aborted. A fenced producer
//! (another copier took over the `--transactional-id`) or a fatal error ends the program with
//! status 1 and a message; status 2 is a usage error. Warnings of the clients go to stderr
//! (`RUST_LOG`, default `warn`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::{
    ConsumerGroupMetadata, ConsumerRecord, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition, TransactionOffset,
};
use klamm_group::{GroupConfig, GroupConsumer, RebalanceHandle, RebalanceListener};
use tokio::sync::Mutex;

/// How long one poll waits before the open transaction is committed for want of records.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How often a commit whose outcome is unknown (the coordinator unreachable within
/// `max.block.ms`) is tried again before the copier gives up.
const COMMIT_ATTEMPTS: u32 = 5;

struct Args {
    brokers: String,
    input: String,
    output: String,
    group: String,
    transactional_id: String,
    commit_every: u64,
    count: Option<u64>,
    idle: Duration,
    properties: Vec<(String, String)>,
}

const USAGE: &str = "usage: transactional-copy --brokers B --input T1 --output T2 --group G \
                     --transactional-id ID [--commit-every N] [--count N] [--timeout-ms MS] \
                     [--property [consumer.|producer.]key=value]...";

fn parse_args() -> Result<Args, String> {
    let (mut brokers, mut input, mut output, mut group, mut transactional_id) =
        (None, None, None, None, None);
    let mut commit_every = 1000;
    let mut count = None;
    let mut idle = Duration::from_secs(10);
    let mut properties = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String, what: &str| v.parse::<u64>().map_err(|_| format!("{what} takes a number"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--input" => input = Some(value()?),
            "--output" => output = Some(value()?),
            "--group" => group = Some(value()?),
            "--transactional-id" => transactional_id = Some(value()?),
            "--commit-every" => commit_every = number(value()?, "--commit-every")?.max(1),
            "--count" => count = Some(number(value()?, "--count")?),
            "--timeout-ms" => idle = Duration::from_millis(number(value()?, "--timeout-ms")?),
            "--property" => {
                let kv = value()?;
                let (k, v) =
                    kv.split_once('=').ok_or_else(|| format!("--property takes key=value, not {kv:?}"))?;
                properties.push((k.trim().to_string(), v.to_string()));
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or("missing --brokers")?,
        input: input.ok_or("missing --input")?,
        output: output.ok_or("missing --output")?,
        group: group.ok_or("missing --group")?,
        transactional_id: transactional_id.ok_or("missing --transactional-id")?,
        commit_every,
        count,
        idle,
        properties,
    })
}

/// The consumer's and the producer's configurations, `--property` routed as the module doc says.
fn configs(args: &Args) -> Result<(GroupConfig, ProducerConfig), klamm::Error> {
    let mut group = GroupConfig::new(&args.brokers, &args.group).consumer(|mut c| {
        c.client = c.client.allow_auto_create_topics(false);
        c.auto_offset_reset(OffsetReset::Earliest)
    });
    let mut producer = ProducerConfig::new(&args.brokers);
    let (group_names, producer_names) = (GroupConfig::property_names(), ProducerConfig::property_names());
    for (key, value) in &args.properties {
        if let Some(key) = key.strip_prefix("consumer.") {
            group.set(key, value)?;
        } else if let Some(key) = key.strip_prefix("producer.") {
            producer.set(key, value)?;
        } else {
            let (to_group, to_producer) =
                (group_names.contains(&key.as_str()), producer_names.contains(&key.as_str()));
            if to_producer {
                producer.set(key, value)?;
            }
            // Unknown to both: the consumer's error names the property and a near miss.
            if to_group || !to_producer {
                group.set(key, value)?;
            }
        }
    }
    group.set("isolation.level", "read_committed")?;
    group.set("enable.auto.commit", "false")?;
    let producer = producer.transactional_id(args.transactional_id.as_str());
    Ok((group, producer))
}

/// What the open transaction holds of one input partition.
#[derive(Debug, Clone, Copy)]
struct Copied {
    /// The offset of its first record in the transaction: where the partition was after the
    /// last committed transaction, and where an abort rewinds it to.
    first: i64,
    /// The offset after its last record in the transaction: what the transaction commits.
    next: i64,
    /// The leader epoch of that last record.
    leader_epoch: Option<i32>,
}

/// The transactional producer and its open transaction, shared by the copy loop and the
/// rebalance listener (which runs inside the loop's `poll`, so they never wait on each other).
struct Copier {
    producer: Producer,
    output: Arc<str>,
    open: bool,
    partitions: BTreeMap<TopicPartition, Copied>,
    /// Records in the open transaction.
    pending: u64,
    /// Records in committed transactions.
    copied: u64,
    committed: u64,
    aborted: u64,
    /// A fenced or fatal error the listener met; the loop ends with it.
    failure: Option<klamm::Error>,
    /// When the first record was copied, and when the last transaction committed.
    first: Option<Instant>,
    last_commit: Option<Instant>,
}

/// How a transaction ended, when it did not commit.
enum Ended {
    /// Aborted: these partitions go back to these offsets, to copy their records again.
    Aborted(Vec<(TopicPartition, i64)>),
    /// Fenced or fatal: the copier stops.
    Failed(klamm::Error),
}

impl Copier {
    /// Copies one record into the transaction, opening one if none is.
    async fn copy(&mut self, record: &ConsumerRecord) -> Result<(), klamm::Error> {
        if !self.open {
            self.producer.begin_transaction()?;
            self.open = true;
        }
        self.first.get_or_insert_with(Instant::now);
        let mut copy = ProducerRecord::tombstone(Arc::clone(&self.output));
        copy.key = record.key.clone();
        copy.value = record.value.clone();
        let copy = copy.header("source-offset", format!("{}:{}", record.partition, record.offset));
        // The delivery future is not needed: a record that fails makes the commit fail.
        drop(self.producer.send(copy).await?);
        let tp = record.topic_partition();
        let entry = self.partitions.entry(tp).or_insert(Copied {
            first: record.offset,
            next: record.offset + 1,
            leader_epoch: record.leader_epoch,
        });
        entry.next = record.offset + 1;
        entry.leader_epoch = record.leader_epoch;
        self.pending += 1;
        Ok(())
    }

    /// Commits the open transaction with the next offsets of its partitions, or aborts it.
    async fn commit(&mut self, metadata: &ConsumerGroupMetadata) -> Result<(), Ended> {
        if !self.open {
            return Ok(());
        }
        let offsets: Vec<TransactionOffset> = self
            .partitions
            .iter()
            .map(|(tp, c)| TransactionOffset::new(tp.clone(), c.next).leader_epoch(c.leader_epoch))
            .collect();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let result = async {
                if attempt == 1 {
                    self.producer.send_offsets_to_transaction(offsets.clone(), metadata).await?;
                }
                self.producer.commit_transaction().await
            }
            .await;
            match result {
                // The outcome is unknown: the same commit again (an abort could fail now).
                Err(e) if e.is_retriable() && attempt < COMMIT_ATTEMPTS => {
                    eprintln!("transactional-copy: commit attempt {attempt} failed, trying again: {e}");
                }
                other => break other,
            }
        };
        match result {
            Ok(()) => {
                self.copied += self.pending;
                self.committed += 1;
                self.last_commit = Some(Instant::now());
                self.clear();
                Ok(())
            }
            Err(e) if e.is_abortable() => {
                eprintln!("transactional-copy: aborting a transaction of {} records: {e}", self.pending);
                Err(self.abort().await)
            }
            Err(e) => Err(Ended::Failed(e)),
        }
    }

    /// Aborts the open transaction; its partitions are to be rewound.
    async fn abort(&mut self) -> Ended {
        if let Err(e) = self.producer.abort_transaction().await {
            return Ended::Failed(e);
        }
        self.aborted += 1;
        let rewind = self.partitions.iter().map(|(tp, c)| (tp.clone(), c.first)).collect();
        self.clear();
        Ended::Aborted(rewind)
    }

    fn clear(&mut self) {
        self.open = false;
        self.partitions.clear();
        self.pending = 0;
    }
}

/// Ends the open transaction before partitions move: committed before a revocation (the
/// member is still in the generation that read them), aborted when they were lost.
struct Listener(Arc<Mutex<Copier>>);

impl Listener {
    async fn settle(&mut self, handle: &mut RebalanceHandle<'_>, moving: &[TopicPartition], commit: bool) {
        let mut copier = self.0.lock().await;
        let ended = if commit {
            match copier.commit(&handle.group_metadata()).await {
                Ok(()) => return,
                Err(ended) => ended,
            }
        } else if copier.open {
            eprintln!(
                "transactional-copy: partitions lost, aborting a transaction of {} records",
                copier.pending
            );
            copier.abort().await
        } else {
            return;
        };
        match ended {
            Ended::Aborted(rewind) => {
                // The partitions that stay are read again from the transaction's start; the
                // others' next owner starts from their committed offsets.
                for (tp, offset) in rewind.iter().filter(|(tp, _)| !moving.contains(tp)) {
                    if let Err(e) = handle.seek(tp, Offset::At(*offset)) {
                        copier.failure.get_or_insert(e);
                    }
                }
            }
            Ended::Failed(e) => {
                copier.failure.get_or_insert(e);
            }
        }
    }
}

impl RebalanceListener for Listener {
    async fn on_revoked(&mut self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        self.settle(handle, partitions, true).await;
    }

    async fn on_lost(&mut self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        self.settle(handle, partitions, false).await;
    }
}

/// Seeks the partitions of an aborted transaction back to its start, and those of `unsent`
/// (records handed out and not copied) back to their first such record; partitions no longer
/// assigned are left to their next owner.
fn rewind(
    consumer: &mut GroupConsumer<Listener>,
    aborted: Vec<(TopicPartition, i64)>,
    unsent: &[ConsumerRecord],
) -> Result<(), klamm::Error> {
    let mut to: BTreeMap<TopicPartition, i64> = aborted.into_iter().collect();
    for r in unsent {
        let offset = to.entry(r.topic_partition()).or_insert(r.offset);
        *offset = (*offset).min(r.offset);
    }
    let assigned = consumer.assignment();
    for (tp, offset) in to.into_iter().filter(|(tp, _)| assigned.contains(tp)) {
        consumer.seek(&tp, Offset::At(offset))?;
    }
    Ok(())
}

/// Commits the open transaction; on an abort, rewinds; fenced or fatal is the error.
async fn commit(consumer: &mut GroupConsumer<Listener>, copier: &Mutex<Copier>) -> Result<(), klamm::Error> {
    let metadata = consumer.group_metadata();
    let ended = copier.lock().await.commit(&metadata).await;
    match ended {
        Ok(()) => Ok(()),
        Err(Ended::Aborted(partitions)) => rewind(consumer, partitions, &[]),
        Err(Ended::Failed(e)) => Err(e),
    }
}

/// Copies a batch of records, committing every `commit_every`. After an abort the rest of the
/// batch is not copied: its partitions are rewound with those of the transaction.
async fn copy_batch(
    consumer: &mut GroupConsumer<Listener>,
    copier: &Mutex<Copier>,
    records: &[ConsumerRecord],
    args: &Args,
) -> Result<(), klamm::Error> {
    for (i, record) in records.iter().enumerate() {
        let mut c = copier.lock().await;
        if args.count.is_some_and(|n| c.copied + c.pending >= n) {
            break;
        }
        let ended = match c.copy(record).await {
            Ok(()) if c.pending >= args.commit_every => c.commit(&consumer.group_metadata()).await.err(),
            Ok(()) => None,
            Err(e) if e.is_abortable() => {
                eprintln!("transactional-copy: aborting a transaction of {} records: {e}", c.pending);
                Some(c.abort().await)
            }
            Err(e) => return Err(e),
        };
        drop(c);
        match ended {
            None => {}
            Some(Ended::Failed(e)) => return Err(e),
            Some(Ended::Aborted(partitions)) => return rewind(consumer, partitions, &records[i..]),
        }
    }
    Ok(())
}

/// What a run did: records copied, transactions committed and aborted, and the time from the
/// first record to the last commit.
struct Summary {
    copied: u64,
    committed: u64,
    aborted: u64,
    took: Duration,
}

async fn run(args: Args) -> Result<Summary, klamm::Error> {
    let (group_config, producer_config) = configs(&args)?;
    let producer = Producer::new(producer_config)?;
    // Before reading any offset: fences an older copier with this id and finishes its open
    // transaction, so the offsets read next are those of its last committed transaction.
    producer.init_transactions().await?;
    let copier = Arc::new(Mutex::new(Copier {
        producer: producer.clone(),
        output: Arc::from(args.output.as_str()),
        open: false,
        partitions: BTreeMap::new(),
        pending: 0,
        copied: 0,
        committed: 0,
        aborted: 0,
        failure: None,
        first: None,
        last_commit: None,
    }));
    let mut consumer = GroupConsumer::with_listener(group_config, Listener(Arc::clone(&copier)))?;
    consumer.subscribe([args.input.as_str()]);
    let mut last_progress = Instant::now();
    let mut stop = Box::pin(shutdown_signal());
    let result = async {
        loop {
            let done = {
                let c = copier.lock().await;
                c.copied + c.pending
            };
            if args.count.is_some_and(|n| done >= n) {
                break;
            }
            let left = args.idle.saturating_sub(last_progress.elapsed());
            if left.is_zero() {
                break;
            }
            let records = tokio::select! {
                records = consumer.poll(left.min(POLL_WAIT)) => match records {
                    Ok(records) => records,
                    // The member retries by itself; this says what keeps it from progress.
                    Err(e) if e.is_retriable() => {
                        eprintln!("transactional-copy: {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                () = &mut stop => break,
            };
            if let Some(e) = copier.lock().await.failure.take() {
                return Err(e);
            }
            if records.is_empty() {
                // Nothing more for now: what the transaction holds is committed.
                commit(&mut consumer, &copier).await?;
                continue;
            }
            last_progress = Instant::now();
            copy_batch(&mut consumer, &copier, &records, &args).await?;
        }
        commit(&mut consumer, &copier).await
    }
    .await;
    let close = consumer.close(Duration::from_secs(30)).await;
    producer.close(Duration::from_secs(30)).await;
    result?;
    close?;
    let c = copier.lock().await;
    let took = match (c.first, c.last_commit) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    };
    Ok(Summary { copied: c.copied, committed: c.committed, aborted: c.aborted, took })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if e.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("transactional-copy: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("transactional-copy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(Summary { copied, committed, aborted, took }) => {
            println!(
                "copied {copied} committed {committed} aborted {aborted} seconds {:.3}",
                took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let what = if e.is_fenced() {
                "fenced: another copier took over the transactional id"
            } else {
                "failed"
            };
            eprintln!("transactional-copy: {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
