//! The soak: a 3-node cluster under random faults while an idempotent producer writes keyed
//! records and a consumer group of Klamm, librdkafka and Java members reads and commits them.
//! Figures, not anecdotes: [`run`] returns a [`SoakReport`] of what was acknowledged, lost,
//! duplicated, reordered and re-delivered, and the longest stalls; [`SoakReport::check`] holds
//! it to the promises of an idempotent producer and an at-least-once group.
//!
//! Faults, one at a time, every 10-30 s (chosen by a seeded generator, so a run can be
//! repeated): SIGKILL of a node (restarted 5-15 s later), SIGTERM of a node (controlled
//! shutdown, restarted at once), SIGSTOP of a node for longer than the request timeout, and
//! the proxy in front of a node cutting every connection. After each fault the soak waits
//! (bounded) until the topic's replicas are back in sync, so that faults do not pile up beyond
//! what the cluster can survive (two of three replicas are needed to write).
//!
//! Each record is keyed `k<key>` with the value `<key>:<n>`, `n` counting per key from 0, so
//! that the log alone tells duplicates and per-key order. The producer is Klamm
//! ([`SoakProducer::Klamm`]) or librdkafka through the peer's `produce-stream` command
//! ([`SoakProducer::Rdkafka`]), the same scenario for both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use klamm::{Producer, ProducerConfig, ProducerRecord};

use crate::cluster::Cluster;
use crate::example::{GroupMember, MemberKind};
use crate::peer::{ConsumeOptions, Peer, PeerKind};
use crate::unique_topic;

/// Which client writes the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoakProducer {
    /// Klamm's idempotent producer, in this process.
    Klamm,
    /// librdkafka's idempotent producer (the peer's `produce-stream`).
    Rdkafka,
}

impl SoakProducer {
    /// `"klamm"` or `"rdkafka"`.
    pub fn name(self) -> &'static str {
        match self {
            SoakProducer::Klamm => "klamm",
            SoakProducer::Rdkafka => "rdkafka",
        }
    }
}

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long records are written while faults happen.
    pub duration: Duration,
    /// The producer.
    pub producer: SoakProducer,
    /// Seeds the choice and timing of faults.
    pub seed: u64,
    /// Records per second.
    pub rate: u32,
    /// Distinct keys.
    pub keys: u32,
    /// Partitions of the topic.
    pub partitions: i32,
    /// The producer's `request.timeout.ms`; a stalled node stays frozen longer than this.
    pub request_timeout: Duration,
    /// The producer's `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// Shortest and longest pause between faults.
    pub fault_every: (Duration, Duration),
    /// Random faults, or a fixed sequence.
    pub plan: FaultPlan,
}

/// Which faults a soak makes.
#[derive(Debug, Clone, Default)]
pub enum FaultPlan {
    /// Random faults (kill -9, SIGTERM, SIGSTOP, cut connections) on random nodes, every
    /// `fault_every`, for `duration`.
    #[default]
    Random,
    /// These faults in order, `fault_every`'s shortest pause apart; the run then writes on
    /// for the shortest pause once more and ends (`duration` is ignored).
    Script(Vec<Fault>),
}

/// A fault of a scripted soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 the group's coordinator, restart it after 10 s.
    KillCoordinator,
    /// Start one more Klamm member, and kill -9 the coordinator while the group rebalances
    /// for it (restarted after 10 s).
    KillCoordinatorDuringJoin,
    /// kill -9 the leader of most partitions, restart it after 10 s.
    KillLeader,
    /// SIGTERM every node in turn, each restarted before the next.
    RollingRestart,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(120),
            producer: SoakProducer::Klamm,
            seed: 1,
            rate: 400,
            keys: 64,
            partitions: 6,
            request_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(120),
            fault_every: (Duration::from_secs(10), Duration::from_secs(30)),
            plan: FaultPlan::Random,
        }
    }
}

/// What a soak measured.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// The producer.
    pub producer: &'static str,
    /// How long records were written.
    pub duration: Duration,
    /// The faults, with when each started (from the start of the run).
    pub faults: Vec<(Duration, String)>,
    /// Records sent.
    pub sent: usize,
    /// Records acknowledged.
    pub acked: usize,
    /// Records that failed, with the earliest failure's time after its send.
    pub failed: usize,
    /// The shortest time from a failed record's send to its failure (the promise: never
    /// before `delivery.timeout.ms`).
    pub earliest_failure: Option<Duration>,
    /// The failures grouped by their error's text (its first 160 characters), most frequent
    /// first, with how many and the first and last failure's time from the start of the run.
    pub failure_kinds: Vec<(String, usize, Duration, Duration)>,
    /// Failed records per partition (the partition their key hashes to is not known here, so
    /// per key): key, count.
    pub failures_by_key: Vec<(u32, usize)>,
    /// Records whose outcome never came.
    pub unresolved: usize,
    /// Records in the log (read back with librdkafka).
    pub in_log: usize,
    /// Acknowledged records missing from the log.
    pub missing: usize,
    /// Acknowledged records that are in the log, but not at the partition and offset their
    /// acknowledgement named (the producer reported a wrong position).
    pub misplaced: usize,
    /// Records in the log more than once.
    pub duplicated: usize,
    /// Records of a key that are in the log after a later record of the same key.
    pub reordered: usize,
    /// Acknowledged records that no group member printed.
    pub group_missing: usize,
    /// Records printed by the group more than once (re-deliveries after faults and
    /// rebalances: at-least-once allows them).
    pub redelivered: usize,
    /// How many members the group had (for bounds on re-deliveries).
    pub members: usize,
    /// Acknowledged records that Klamm's partition consumer (assigned every partition, in
    /// this process, from the start) did not read.
    pub partition_consumer_missing: usize,
    /// Records Klamm's partition consumer read more than once.
    pub partition_consumer_repeated: usize,
    /// Up to ten acknowledged records that the group or the partition consumer never read:
    /// what was acknowledged, where the log holds it, and who missed it, for the run's notes.
    pub unread: Vec<String>,
    /// The longest time without an acknowledgement while records waited for one.
    pub longest_produce_stall: Duration,
    /// The longest time without a record reaching any group member while acknowledged records
    /// waited to be read.
    pub longest_consume_stall: Duration,
}

impl SoakReport {
    /// The report as lines of text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let faults: Vec<String> =
            self.faults.iter().map(|(t, f)| format!("{:>6.1}s {f}", t.as_secs_f64())).collect();
        out.push_str(&format!("soak: producer {}, {:.0?} of writing\n", self.producer, self.duration));
        out.push_str(&format!("faults ({}):\n  {}\n", self.faults.len(), faults.join("\n  ")));
        out.push_str(&format!(
            "sent {} | acknowledged {} | failed {} (earliest failure {:?} after its send) | no outcome {}\n",
            self.sent, self.acked, self.failed, self.earliest_failure, self.unresolved
        ));
        for (error, count, first, last) in &self.failure_kinds {
            out.push_str(&format!(
                "  {count} failed between {:.1}s and {:.1}s: {error}\n",
                first.as_secs_f64(),
                last.as_secs_f64()
            ));
        }
        if !self.failures_by_key.is_empty() {
            let keys: Vec<String> = self.failures_by_key.iter().map(|(k, n)| format!("k{k}:{n}")).collect();
            out.push_str(&format!("  failed per key: {}\n", keys.join(" ")));
        }
        out.push_str(&format!(
            "log: {} records | acknowledged but missing {} | acknowledged at another offset {} | duplicated {} | out of order per key {}\n",
            self.in_log, self.missing, self.misplaced, self.duplicated, self.reordered
        ));
        out.push_str(&format!(
            "group of {}: acknowledged but never read {} | re-delivered {}\n",
            self.members, self.group_missing, self.redelivered
        ));
        out.push_str(&format!(
            "partition consumer: acknowledged but never read {} | read twice {}\n",
            self.partition_consumer_missing, self.partition_consumer_repeated
        ));
        for line in &self.unread {
            out.push_str(&format!("  never read: {line}\n"));
        }
        out.push_str(&format!(
            "longest stall: produce {:.1?} | consume {:.1?}\n",
            self.longest_produce_stall, self.longest_consume_stall
        ));
        out
    }

    /// Holds the figures to the promises: nothing acknowledged is lost, nothing is written
    /// twice, per-key order holds, no record fails before `delivery_timeout`, every send gets
    /// an outcome, and the group reads every acknowledged record at least once.
    pub fn check(&self, delivery_timeout: Duration) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.missing > 0 {
            problems.push(format!("{} acknowledged records are missing from the log", self.missing));
        }
        if self.misplaced > 0 {
            problems.push(format!(
                "{} records were acknowledged at a partition and offset that hold another record",
                self.misplaced
            ));
        }
        if self.duplicated > 0 {
            problems.push(format!("{} records are in the log more than once", self.duplicated));
        }
        if self.reordered > 0 {
            problems.push(format!("{} records are out of order for their key", self.reordered));
        }
        if self.unresolved > 0 {
            problems.push(format!("{} records got no outcome", self.unresolved));
        }
        // A record's timeout counts from its batch's creation, which may precede the record's
        // own send by the time its batch stayed open (linger, or a backed-up partition).
        let slack = Duration::from_secs(1);
        if let Some(earliest) = self.earliest_failure.filter(|e| *e + slack < delivery_timeout) {
            problems.push(format!("a record failed {earliest:?} after its send, before delivery.timeout.ms"));
        }
        if self.partition_consumer_missing > 0 || self.partition_consumer_repeated > 0 {
            problems.push(format!(
                "the partition consumer missed {} acknowledged records and read {} twice",
                self.partition_consumer_missing, self.partition_consumer_repeated
            ));
        }
        if self.group_missing > 0 {
            problems.push(format!("the group never read {} acknowledged records", self.group_missing));
        }
        if self.acked == 0 {
            problems.push("nothing was acknowledged".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// One record's fate at the producer.
#[derive(Debug, Clone)]
struct Outcome {
    key: u32,
    seq: u64,
    sent: Duration,
    done: Duration,
    /// Partition and offset, or the error.
    result: Result<(i32, i64), String>,
}

/// Runs a soak and returns its figures. Panics when the test bed itself fails (a node that
/// does not come back, a peer that cannot start).
pub fn run(options: &SoakOptions) -> SoakReport {
    let mut rng = Rng(options.seed.max(1));
    let cluster =
        Cluster::builder().nodes(3).proxy(1).proxy(2).proxy(3).start().unwrap_or_else(|e| panic!("{e}"));
    let topic = unique_topic("soak");
    cluster.create_topic(&topic, options.partitions);
    let bootstrap = cluster.bootstrap();
    let group = format!("{topic}-group");

    // The group: two Klamm members, one librdkafka, one Java; each commits every 200 records.
    let members: Vec<(MemberKind, &str)> = vec![
        (MemberKind::Klamm, "klamm-1"),
        (MemberKind::Klamm, "klamm-2"),
        (MemberKind::Rdkafka, "rdkafka-1"),
        (MemberKind::Java, "java-1"),
    ];
    let start_member = |kind: MemberKind, name: &str| {
        let session = "session.timeout.ms=10000";
        GroupMember::start_kind(
            kind,
            name,
            &bootstrap,
            &topic,
            &group,
            &["--commit-every", &COMMIT_EVERY.to_string(), "--property", session],
        )
    };
    let mut members: Vec<GroupMember> =
        members.into_iter().map(|(kind, name)| start_member(kind, name)).collect();

    let reader = PartitionReader::start(&bootstrap, &topic, options.partitions);
    let started = Instant::now();
    let writer = match options.producer {
        SoakProducer::Klamm => Writer::klamm(&bootstrap, &topic, options, started),
        SoakProducer::Rdkafka => Writer::rdkafka(&bootstrap, &topic, options),
    };

    // Faults until the time is up (or the script ends).
    let mut faults = Vec::new();
    let mut script = match &options.plan {
        FaultPlan::Random => None,
        FaultPlan::Script(faults) => Some(faults.iter().copied()),
    };
    loop {
        let (low, high) = options.fault_every;
        let what = if let Some(script) = &mut script {
            std::thread::sleep(low);
            let Some(fault) = script.next() else { break };
            scripted_fault(fault, &cluster, &topic, &group, &mut members, &start_member)
        } else {
            let pause = low + Duration::from_millis(rng.below((high - low).as_millis() as u64 + 1));
            if started.elapsed() + pause >= options.duration {
                std::thread::sleep(options.duration.saturating_sub(started.elapsed()));
                break;
            }
            std::thread::sleep(pause);
            revive_dead_nodes(&cluster, &mut faults, started);
            random_fault(&mut rng, &cluster, options)
        };
        let at = started.elapsed();
        eprintln!("soak: {:>6.1}s {what}", at.as_secs_f64());
        faults.push((at, what));
        revive_dead_nodes(&cluster, &mut faults, started);
        if let Err(e) = cluster.wait_for_isr(&topic, Duration::from_secs(60)) {
            eprintln!("soak: replicas not back in sync after the fault: {e}");
        }
    }
    let duration = started.elapsed();
    let (outcomes, sent) = writer.finish(options.delivery_timeout + Duration::from_secs(30));
    let unresolved = sent.saturating_sub(outcomes.len());

    // The group reads on until it has every acknowledged record (or two minutes pass).
    let acked: HashMap<(i32, i64), (u32, u64)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|&(p, off)| ((p, off), (o.key, o.seq))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen: HashSet<(i32, i64)> = members.iter().flat_map(|m| m.log().records.into_iter()).collect();
        if acked.keys().all(|k| seen.contains(k)) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let member_count = members.len();
    let logs: Vec<_> = members.into_iter().map(|m| m.stop(Duration::from_secs(60))).collect();
    let read_by_consumer = reader.finish(&acked, Duration::from_secs(60));

    // The log, read back by librdkafka.
    let options_read = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..Default::default() };
    let log = Peer::rdkafka().consume(&bootstrap, &topic, sent + 1_000_000, &options_read);

    let mut report = SoakReport {
        producer: options.producer.name(),
        duration,
        faults,
        sent,
        acked: acked.len(),
        members: member_count,
        ..SoakReport::default()
    };
    let failures: Vec<Duration> =
        outcomes.iter().filter(|o| o.result.is_err()).map(|o| o.done.saturating_sub(o.sent)).collect();
    report.failed = failures.len();
    report.earliest_failure = failures.into_iter().min();
    let mut kinds: HashMap<String, (usize, Duration, Duration)> = HashMap::new();
    let mut by_key: BTreeMap<u32, usize> = BTreeMap::new();
    for o in &outcomes {
        if let Err(e) = &o.result {
            let text: String = e.chars().take(160).collect();
            let entry = kinds.entry(text).or_insert((0, o.done, o.done));
            entry.0 += 1;
            entry.1 = entry.1.min(o.done);
            entry.2 = entry.2.max(o.done);
            *by_key.entry(o.key).or_default() += 1;
        }
    }
    let mut kinds: Vec<_> = kinds.into_iter().map(|(e, (n, first, last))| (e, n, first, last)).collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    kinds.truncate(5);
    report.failure_kinds = kinds;
    report.failures_by_key = by_key.into_iter().collect();
    report.unresolved = unresolved;

    // Per key: every (key, seq) once, in seq order along the log.
    let mut copies: HashMap<(u32, u64), usize> = HashMap::new();
    let mut placed: HashMap<(u32, u64), (i32, i64)> = HashMap::new();
    let mut by_key: BTreeMap<u32, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for r in &log {
        let Some((key, seq)) = r.value.as_deref().and_then(parse_value) else { continue };
        *copies.entry((key, seq)).or_default() += 1;
        placed.insert((key, seq), (r.partition.unwrap_or(-1), r.offset.unwrap_or(-1)));
        by_key.entry(key).or_default().push((r.partition.unwrap_or(-1), r.offset.unwrap_or(-1), seq));
    }
    report.in_log = log.len();
    report.duplicated = copies.values().map(|n| n - 1).sum();
    for records in by_key.values_mut() {
        records.sort();
        let mut highest = None;
        for &(_, _, seq) in records.iter() {
            if highest.is_some_and(|h| seq < h) {
                report.reordered += 1;
            }
            highest = highest.max(Some(seq));
        }
    }
    report.missing =
        outcomes.iter().filter(|o| o.result.is_ok() && !copies.contains_key(&(o.key, o.seq))).count();
    report.misplaced = outcomes
        .iter()
        .filter(|o| match (&o.result, placed.get(&(o.key, o.seq))) {
            (Ok(acked_at), Some(in_log)) => acked_at != in_log,
            _ => false,
        })
        .count();

    // The group: coverage, re-deliveries, stalls.
    let mut printed: HashMap<(i32, i64), usize> = HashMap::new();
    let mut arrivals: Vec<Instant> = Vec::new();
    for l in &logs {
        for r in &l.records {
            *printed.entry(*r).or_default() += 1;
        }
        arrivals.extend(l.record_times.iter().copied());
    }
    report.group_missing = acked.keys().filter(|k| !printed.contains_key(k)).count();
    let mut read_once: HashMap<(i32, i64), usize> = HashMap::new();
    for r in read_by_consumer {
        *read_once.entry(r).or_default() += 1;
    }
    report.partition_consumer_missing = acked.keys().filter(|k| !read_once.contains_key(k)).count();
    report.partition_consumer_repeated = read_once.values().map(|n| n - 1).sum();
    report.unread = outcomes
        .iter()
        .filter_map(|o| {
            let at = *o.result.as_ref().ok()?;
            let (group, partition_consumer) = (printed.contains_key(&at), read_once.contains_key(&at));
            if group && partition_consumer {
                return None;
            }
            let who = match (group, partition_consumer) {
                (false, false) => "the group and the partition consumer",
                (false, true) => "the group",
                _ => "the partition consumer",
            };
            Some(format!(
                "k{}:{} acknowledged at {}:{} after {:.1}s (sent at {:.1}s), in the log at {:?}, missed by {who}",
                o.key,
                o.seq,
                at.0,
                at.1,
                o.done.as_secs_f64(),
                o.sent.as_secs_f64(),
                placed.get(&(o.key, o.seq)),
            ))
        })
        .take(10)
        .collect();
    report.redelivered = printed.values().map(|n| n - 1).sum();
    report.longest_produce_stall = longest_gap(outcomes.iter().filter(|o| o.result.is_ok()).map(|o| o.done));
    arrivals.sort();
    report.longest_consume_stall = longest_gap(arrivals.iter().map(|t| t.saturating_duration_since(started)));
    report
}

/// How often each group member commits (records).
pub(crate) const COMMIT_EVERY: usize = 200;

/// Restarts every node that died on its own (not by a fault we chose), after printing why
/// from its log: a finding about the test bed or the broker, recorded among the faults.
fn revive_dead_nodes(cluster: &Cluster, faults: &mut Vec<(Duration, String)>, started: Instant) {
    for node in cluster.node_ids() {
        if !cluster.is_running(node) {
            eprintln!(
                "soak: node {node} exited on its own; the end of its log:\n{}",
                cluster.log_tail(node, 40)
            );
            cluster.restart(node);
            let at = started.elapsed();
            eprintln!("soak: {:>6.1}s node {node} exited on its own, restarted", at.as_secs_f64());
            faults.push((at, format!("node {node} exited on its own, restarted")));
        }
    }
}

/// One random fault on a random node; returns what it did.
fn random_fault(rng: &mut Rng, cluster: &Cluster, options: &SoakOptions) -> String {
    let node = 1 + rng.below(3) as i32;
    match rng.below(4) {
        0 => {
            cluster.kill(node);
            let down = Duration::from_secs(5 + rng.below(11));
            std::thread::sleep(down);
            cluster.restart(node);
            format!("kill -9 node {node}, restarted after {down:?}")
        }
        1 => {
            let took = cluster.terminate(node);
            cluster.restart(node);
            format!("SIGTERM node {node} (controlled shutdown in {took:.1?}), restarted")
        }
        2 => {
            let frozen = options.request_timeout + Duration::from_secs(5);
            cluster.pause(node);
            std::thread::sleep(frozen);
            cluster.resume(node);
            format!("SIGSTOP node {node} for {frozen:?}, then SIGCONT")
        }
        _ => {
            let cut = cluster.proxy(node).map_or(0, |p| p.cut_all());
            format!("proxy of node {node} cut {cut} connections")
        }
    }
}

/// Performs one scripted fault; returns what it did.
fn scripted_fault(
    fault: Fault,
    cluster: &Cluster,
    topic: &str,
    group: &str,
    members: &mut Vec<GroupMember>,
    start_member: &dyn Fn(MemberKind, &str) -> GroupMember,
) -> String {
    let down = Duration::from_secs(10);
    match fault {
        Fault::KillCoordinator => {
            let node = coordinator(cluster, group);
            cluster.kill(node);
            std::thread::sleep(down);
            cluster.restart(node);
            format!("kill -9 the coordinator (node {node}) during commits, restarted after {down:?}")
        }
        Fault::KillCoordinatorDuringJoin => {
            let node = coordinator(cluster, group);
            let name = format!("klamm-{}", members.len() + 1);
            members.push(start_member(MemberKind::Klamm, &name));
            // The JoinGroup of the new member starts a rebalance; the coordinator dies in it.
            std::thread::sleep(Duration::from_millis(1_500));
            cluster.kill(node);
            std::thread::sleep(down);
            cluster.restart(node);
            format!("{name} joined; kill -9 the coordinator (node {node}) during the rebalance, restarted after {down:?}")
        }
        Fault::KillLeader => {
            let node = cluster.busiest_leader(topic).unwrap_or(1);
            cluster.kill(node);
            std::thread::sleep(down);
            cluster.restart(node);
            format!("kill -9 the leader of most partitions (node {node}), restarted after {down:?}")
        }
        Fault::RollingRestart => {
            let mut steps = Vec::new();
            for node in cluster.node_ids() {
                let took = cluster.terminate(node);
                cluster.restart(node);
                if let Err(e) = cluster.wait_for_isr(topic, Duration::from_secs(60)) {
                    eprintln!("soak: replicas not back in sync after restarting node {node}: {e}");
                }
                steps.push(format!("node {node} stopped in {took:.1?}"));
            }
            format!("rolling SIGTERM restart: {}", steps.join(", "))
        }
    }
}

/// The node coordinating `group` (asked with FindCoordinator through the admin client).
fn coordinator(cluster: &Cluster, group: &str) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let admin = klamm::Admin::connect(klamm::ClientConfig::new(&cluster.bootstrap()))
            .await
            .expect("an admin client");
        let described = admin.describe_consumer_groups(&[group]).await;
        described
            .into_iter()
            .find_map(|(_, d)| d.ok().map(|d| d.coordinator))
            .unwrap_or_else(|| panic!("no coordinator found for {group}"))
    })
}

/// The longest gap between consecutive times (sorted first).
fn longest_gap(times: impl Iterator<Item = Duration>) -> Duration {
    let mut times: Vec<Duration> = times.collect();
    times.sort();
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// `"<key>:<seq>"`.
fn parse_value(value: &[u8]) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (key, seq) = text.split_once(':')?;
    Some((key.parse().ok()?, seq.parse().ok()?))
}

/// A small deterministic generator (xorshift), so that a seed repeats a run's faults.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 {
            0
        } else {
            self.0 % n
        }
    }
}

/// Klamm's partition consumer, assigned every partition from the beginning, reading in a
/// thread of its own for the whole run.
struct PartitionReader {
    stop: Arc<AtomicBool>,
    read: Arc<Mutex<Vec<(i32, i64)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl PartitionReader {
    fn start(bootstrap: &str, topic: &str, partitions: i32) -> PartitionReader {
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&read));
        let config = klamm::ConsumerConfig::new(bootstrap).auto_offset_reset(klamm::OffsetReset::Earliest);
        let topic: Arc<str> = Arc::from(topic);
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let mut consumer = klamm::Consumer::new(config).expect("a consumer");
                consumer.assign((0..partitions).map(|p| klamm::TopicPartition::new(Arc::clone(&topic), p)));
                while !flag.load(Ordering::Acquire) {
                    match consumer.poll(Duration::from_millis(200)).await {
                        Ok(records) => {
                            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                            sink.extend(records.iter().map(|r| (r.partition, r.offset)));
                        }
                        Err(e) => eprintln!("soak: the partition consumer: {e}"),
                    }
                }
                let _ = consumer.close(Duration::from_secs(5)).await;
            });
        });
        PartitionReader { stop, read, thread }
    }

    /// Reads on until it has every record of `acked` (at most `within`), then stops and
    /// returns what it read.
    fn finish(self, acked: &HashMap<(i32, i64), (u32, u64)>, within: Duration) -> Vec<(i32, i64)> {
        let deadline = Instant::now() + within;
        loop {
            let done = {
                let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
                let seen: HashSet<&(i32, i64)> = read.iter().collect();
                acked.keys().all(|k| seen.contains(k))
            };
            if done || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.clone()
    }
}

/// The producer every reliability test runs: idempotent, `acks=all`, lz4, 5 ms linger, with
/// the given delivery and request timeouts (`max.block.ms` as the delivery timeout).
pub fn reliable_producer_config(
    bootstrap: &str,
    delivery_timeout: Duration,
    request_timeout: Duration,
) -> ProducerConfig {
    ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("compression.type", "lz4"),
        ("linger.ms", "5"),
        ("delivery.timeout.ms", &delivery_timeout.as_millis().to_string()),
        ("request.timeout.ms", &request_timeout.as_millis().to_string()),
        ("max.block.ms", &delivery_timeout.as_millis().to_string()),
    ])
    .expect("producer settings")
}

/// The producer side of a soak: outcomes are collected as they come, so that a record whose
/// outcome never comes is counted, not waited for.
struct Writer {
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    kind: WriterKind,
}

enum WriterKind {
    Klamm {
        runtime: tokio::runtime::Runtime,
        stop: Arc<AtomicBool>,
        sent: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
        producer: Producer,
    },
    Rdkafka {
        child: Child,
        /// How many records the peer said it sent, at its end.
        sent: Arc<Mutex<Option<u64>>>,
        reader: std::thread::JoinHandle<()>,
    },
}

impl Writer {
    fn klamm(bootstrap: &str, topic: &str, options: &SoakOptions, started: Instant) -> Writer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let config = reliable_producer_config(bootstrap, options.delivery_timeout, options.request_timeout);
        let producer = runtime.block_on(async { Producer::new(config) }).expect("a producer");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (topic, rate, keys) = (Arc::<str>::from(topic), options.rate, options.keys);
        let (flag, count, sink, sender) =
            (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&outcomes), producer.clone());
        let task = runtime.spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut seqs = vec![0u64; keys as usize];
            let mut next = tokio::time::Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Acquire) {
                let key = (n % u64::from(keys)) as u32;
                let seq = seqs[key as usize];
                seqs[key as usize] += 1;
                n += 1;
                count.store(n, Ordering::Release);
                let record =
                    ProducerRecord::new(Arc::clone(&topic), format!("{key}:{seq}")).key(format!("k{key}"));
                let at = started.elapsed();
                let sink = Arc::clone(&sink);
                let report = move |result| {
                    let outcome = Outcome { key, seq, sent: at, done: started.elapsed(), result };
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
                };
                match sender.send(record).await {
                    Ok(delivery) => {
                        tokio::spawn(async move {
                            report(
                                delivery.await.map(|m| (m.partition, m.offset)).map_err(|e| e.to_string()),
                            );
                        });
                    }
                    Err(e) => report(Err(e.to_string())),
                }
                next += interval;
                tokio::time::sleep_until(next).await;
                if tokio::time::Instant::now() > next + Duration::from_secs(1) {
                    // A blocked send: keep the pace from here instead of bursting.
                    next = tokio::time::Instant::now();
                }
            }
        });
        Writer { outcomes, kind: WriterKind::Klamm { runtime, stop, sent, task, producer } }
    }

    fn rdkafka(bootstrap: &str, topic: &str, options: &SoakOptions) -> Writer {
        let peer = Peer::new(PeerKind::Rdkafka);
        let rate = options.rate.to_string();
        let keys = options.keys.to_string();
        let duration = (options.duration.as_secs() + 3_600).to_string();
        let flush = (options.delivery_timeout.as_secs() + 30).to_string();
        let delivery = format!("message.timeout.ms={}", options.delivery_timeout.as_millis());
        let request = format!("request.timeout.ms={}", options.request_timeout.as_millis());
        let mut child = peer
            .command(&[
                "produce-stream",
                "--brokers",
                bootstrap,
                "--topic",
                topic,
                "--rate",
                &rate,
                "--keys",
                &keys,
                "--duration-s",
                &duration,
                "--flush-s",
                &flush,
                "--property",
                &delivery,
                "--property",
                &request,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the librdkafka peer starts");
        let stdout = child.stdout.take().expect("piped");
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(None));
        let (sink, end) = (Arc::clone(&outcomes), Arc::clone(&sent));
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if v.get("end").is_some() {
                    *end.lock().unwrap_or_else(|e| e.into_inner()) = v["sent"].as_u64();
                    break;
                }
                let ms = |k: &str| Duration::from_millis(v[k].as_u64().unwrap_or(0));
                let result = match v.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => {
                        Ok((v["partition"].as_i64().unwrap_or(-1) as i32, v["offset"].as_i64().unwrap_or(-1)))
                    }
                };
                let outcome = Outcome {
                    key: v["key"].as_u64().unwrap_or(0) as u32,
                    seq: v["seq"].as_u64().unwrap_or(0),
                    sent: ms("sent_ms"),
                    done: ms("done_ms"),
                    result,
                };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
            }
        });
        Writer { outcomes, kind: WriterKind::Rdkafka { child, sent, reader } }
    }

    /// Stops writing and waits (at most `within`) for every outcome. Returns the outcomes and
    /// how many records were sent.
    fn finish(self, within: Duration) -> (Vec<Outcome>, usize) {
        let Writer { outcomes, kind } = self;
        let sent = match kind {
            WriterKind::Klamm { runtime, stop, sent, task, producer } => {
                stop.store(true, Ordering::Release);
                runtime.block_on(async {
                    let _ = task.await;
                    producer.flush(within).await;
                    // The last delivery reports are being pushed by their tasks.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    producer.close(Duration::from_secs(5)).await;
                });
                runtime.shutdown_timeout(Duration::from_secs(5));
                sent.load(Ordering::Acquire) as usize
            }
            WriterKind::Rdkafka { mut child, sent, reader } => {
                let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let deadline = Instant::now() + within + Duration::from_secs(30);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                let sent = *sent.lock().unwrap_or_else(|e| e.into_inner());
                let sent =
                    sent.unwrap_or_else(|| panic!("the librdkafka producer ended without its summary line"));
                sent as usize
            }
        };
        let outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (outcomes, sent)
    }
}
