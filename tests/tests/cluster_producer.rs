//! The idempotent producer against a real 3-node cluster while brokers fail.
//!
//! Each test writes keyed records continuously (acks=all, idempotence, lz4, 6 partitions,
//! `delivery.timeout.ms` 120 s, `request.timeout.ms` 10 s) while one group of faults happens:
//! the leader of most partitions killed and restarted; two of three nodes killed for 20 s; a
//! rolling SIGTERM restart; the active controller killed; a leader frozen (SIGSTOP) for longer
//! than the request timeout; a preferred-leader election. Then librdkafka and the Java client
//! each read the topic back, and the test checks what a user of an idempotent producer is
//! promised:
//!
//! - every acknowledged record is in the log exactly once, at the partition and offset its
//!   acknowledgement named;
//! - per key, records are in the order they were sent (each value carries the key's sequence
//!   number);
//! - a record that was not acknowledged failed with an error, and no earlier than
//!   `delivery.timeout.ms` after it was sent (every fault here is retriable and shorter than
//!   that, so none should fail at all);
//! - every send got an answer.
//!
//! The figures (acked, failed, lost, duplicated, reordered, longest stall without an
//! acknowledgement) are printed for each test. The tests share one cluster and run one at a
//! time; each leaves the cluster whole for the next.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use klamm::protocol::ErrorCode;
use klamm::{Admin, ClientConfig, ElectionType, Error, Producer, ProducerRecord, RecordMetadata};
use klamm_tests::{reliable_producer_config, unique_topic, Cluster, ConsumeOptions, Peer, PeerRecord};
use tokio::task::JoinSet;

/// Partitions of each test's topic.
const PARTITIONS: i32 = 6;
/// Distinct keys, spread over the partitions by the default partitioner.
const KEYS: usize = 48;
/// Records sent per second (paced; a blocked `send` pauses the pace).
const RATE: u32 = 300;
/// The producer's `delivery.timeout.ms`.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// The producer's `request.timeout.ms`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let cluster = Cluster::start(3);
        eprintln!("cluster of 3 up in {:.1?}", started.elapsed());
        cluster
    })
}

/// One test at a time: each one's faults would break the others'.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What became of one record.
#[derive(Debug)]
struct Outcome {
    key: usize,
    seq: u64,
    /// The partition the producer chose (None when `send` itself failed).
    partition: Option<i32>,
    /// From the start of the run.
    sent: Duration,
    /// When the delivery future resolved (or `send` failed), from the start of the run.
    done: Duration,
    result: Result<RecordMetadata, Error>,
}

/// A producer writing in the background until stopped.
struct Writer {
    runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Outcome>, usize)>,
    topic: String,
    started: Instant,
}

impl Writer {
    fn start(cluster: &Cluster, topic: &str) -> Writer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut config = reliable_producer_config(&cluster.bootstrap(), DELIVERY_TIMEOUT, REQUEST_TIMEOUT);
        config.set("client.id", "cluster-producer").expect("client.id");
        let producer = runtime.block_on(async { Producer::new(config) }).expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let task = runtime.spawn(produce(producer, topic.into(), stop.clone(), started));
        Writer { runtime, stop, task, topic: topic.to_owned(), started }
    }

    /// How far into the run we are, for the fault timeline.
    fn at(&self) -> Duration {
        self.started.elapsed()
    }

    /// Keeps writing for `d`.
    fn keep_writing(&self, d: Duration) {
        std::thread::sleep(d);
    }

    /// Stops sending, waits for every outstanding record's outcome (bounded by the delivery
    /// timeout), and returns the outcomes and how many records never got one.
    fn finish(self) -> (Vec<Outcome>, usize, Duration) {
        self.stop.store(true, Ordering::Release);
        let (outcomes, unresolved) = self.runtime.block_on(self.task).expect("the producing task");
        let elapsed = self.started.elapsed();
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        (outcomes, unresolved, elapsed)
    }
}

async fn produce(
    producer: Producer,
    topic: Arc<str>,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> (Vec<Outcome>, usize) {
    let padding = "x".repeat(64);
    let mut next_seq = [0u64; KEYS];
    let mut outcomes = Vec::new();
    let mut pending = JoinSet::new();
    let per_tick = (RATE / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0usize;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        for _ in 0..per_tick {
            let key = n % KEYS;
            n += 1;
            let seq = next_seq[key];
            next_seq[key] += 1;
            let record = ProducerRecord::new(&topic, format!("{key:02}:{seq:08}:{padding}"))
                .key(format!("key-{key:02}"));
            let sent = started.elapsed();
            match producer.send(record).await {
                Ok(delivery) => {
                    let partition = Some(delivery.partition());
                    pending.spawn(async move {
                        let result = delivery.await;
                        Outcome { key, seq, partition, sent, done: started.elapsed(), result }
                    });
                }
                Err(e) => {
                    let done = started.elapsed();
                    outcomes.push(Outcome { key, seq, partition: None, sent, done, result: Err(e) })
                }
            }
            // Collect finished outcomes as we go, so the set stays small.
            while let Some(done) = pending.try_join_next() {
                outcomes.push(done.expect("delivery task"));
            }
        }
    }
    // Every record has its answer within the delivery timeout; allow some slack past it.
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT + Duration::from_secs(30);
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline, pending.join_next()).await {
            Ok(Some(done)) => outcomes.push(done.expect("delivery task")),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    let unresolved = pending.len();
    pending.abort_all();
    producer.close(Duration::from_secs(10)).await;
    (outcomes, unresolved)
}

/// What one reader found, checked against the outcomes.
#[derive(Debug, Default)]
struct Findings {
    read: usize,
    lost: Vec<(usize, u64)>,
    duplicated: Vec<(usize, u64)>,
    reordered: Vec<String>,
    misplaced: Vec<String>,
    unacked_present: usize,
    foreign: usize,
}

fn parse_value(value: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn examine(records: &[PeerRecord], outcomes: &[Outcome]) -> Findings {
    let mut f = Findings { read: records.len(), ..Default::default() };
    let acked: HashMap<(usize, u64), RecordMetadata> =
        outcomes.iter().filter_map(|o| o.result.as_ref().ok().map(|m| ((o.key, o.seq), *m))).collect();
    let mut seen: HashMap<(usize, u64), usize> = HashMap::new();
    // Per key, the sequence numbers in log order (partition, offset).
    let mut by_key: BTreeMap<usize, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for r in records {
        let Some((key, seq)) = r.value.as_deref().and_then(parse_value) else {
            f.foreign += 1;
            continue;
        };
        let (partition, offset) = (r.partition.unwrap_or(-1), r.offset.unwrap_or(-1));
        *seen.entry((key, seq)).or_default() += 1;
        by_key.entry(key).or_default().push((partition, offset, seq));
        match acked.get(&(key, seq)) {
            Some(m) if (m.partition, m.offset) != (partition, offset) => f.misplaced.push(format!(
                "key {key} seq {seq}: acknowledged at {}/{}, found at {partition}/{offset}",
                m.partition, m.offset
            )),
            Some(_) => {}
            None => f.unacked_present += 1,
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            f.duplicated.push(*id);
        }
    }
    for id in acked.keys() {
        if !seen.contains_key(id) {
            f.lost.push(*id);
        }
    }
    f.lost.sort_unstable();
    f.duplicated.sort_unstable();
    for (key, mut entries) in by_key {
        entries.sort_unstable();
        for pair in entries.windows(2) {
            if pair[1].2 <= pair[0].2 || pair[1].0 != pair[0].0 {
                f.reordered.push(format!(
                    "key {key}: seq {} at {}/{} after seq {} at {}/{}",
                    pair[1].2, pair[1].0, pair[1].1, pair[0].2, pair[0].0, pair[0].1
                ));
            }
        }
    }
    f
}

/// The records that failed with one error: how many, on which partitions, when (from the
/// start of the run) and how long after their send.
struct ErrorSummary {
    count: usize,
    partitions: Vec<i32>,
    first: Duration,
    last: Duration,
    shortest: Duration,
    longest: Duration,
}

impl ErrorSummary {
    fn new() -> Self {
        let (first, last, shortest, longest) = (Duration::MAX, Duration::ZERO, Duration::MAX, Duration::ZERO);
        Self { count: 0, partitions: Vec::new(), first, last, shortest, longest }
    }

    fn add(&mut self, o: &Outcome) {
        let waited = o.done.saturating_sub(o.sent);
        self.count += 1;
        if let Some(p) = o.partition.filter(|p| !self.partitions.contains(p)) {
            self.partitions.push(p);
        }
        self.first = self.first.min(o.done);
        self.last = self.last.max(o.done);
        self.shortest = self.shortest.min(waited);
        self.longest = self.longest.max(waited);
    }
}

/// Reads the topic back with both peers, prints the figures, and checks the promises.
fn verify(
    cluster: &Cluster,
    scenario: &str,
    topic: &str,
    outcomes: Vec<Outcome>,
    unresolved: usize,
    ran: Duration,
) {
    cluster.heal();
    cluster.wait_for_isr(topic, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let acked = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    let early: Vec<&&Outcome> = failed
        .iter()
        .filter(|o| o.done.saturating_sub(o.sent) + Duration::from_millis(500) < DELIVERY_TIMEOUT)
        .collect();
    // Per distinct error: how many, on which partitions, when.
    let mut errors: BTreeMap<String, ErrorSummary> = BTreeMap::new();
    for o in &failed {
        errors.entry(o.result.as_ref().unwrap_err().to_string()).or_insert_with(ErrorSummary::new).add(o);
    }
    // The longest wait between acknowledgements, and the slowest acknowledgement.
    let mut acks: Vec<Duration> = outcomes.iter().filter(|o| o.result.is_ok()).map(|o| o.done).collect();
    acks.sort_unstable();
    let stall = acks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let slowest = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.done.saturating_sub(o.sent))
        .max()
        .unwrap_or_default();

    let sent = outcomes.len() + unresolved;
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(4), ..Default::default() };
    let bootstrap = cluster.bootstrap();
    let count = sent * 2 + 10;
    let (rd, java) = std::thread::scope(|s| {
        let rd = s.spawn(|| Peer::rdkafka().consume(&bootstrap, topic, count, &options));
        let java = s.spawn(|| Peer::java().consume(&bootstrap, topic, count, &options));
        (rd.join().expect("librdkafka reader"), java.join().expect("Java reader"))
    });
    let readers = [("librdkafka", examine(&rd, &outcomes)), ("java", examine(&java, &outcomes))];

    eprintln!(
        "{scenario}: {sent} sent in {ran:.1?}, {acked} acked, {} failed ({} before delivery.timeout.ms), {unresolved} \
         without an answer; longest stall between acks {stall:.1?}, slowest ack {slowest:.1?}",
        failed.len(),
        early.len()
    );
    for (error, ErrorSummary { count: n, partitions, first, last, shortest, longest }) in &errors {
        eprintln!(
            "{scenario}:   {n} x {error}\n{scenario}:     partitions {partitions:?}, at {first:.1?}-{last:.1?} into the \
             run, {shortest:.1?}-{longest:.1?} after their send"
        );
    }
    if let (Some(first), Some(last)) = (
        failed.iter().map(|o| o.done.saturating_sub(o.sent)).min(),
        failed.iter().map(|o| o.done.saturating_sub(o.sent)).max(),
    ) {
        eprintln!("{scenario}:   failures arrived {first:.1?} to {last:.1?} after their send");
    }
    for (reader, f) in &readers {
        eprintln!(
            "{scenario}: {reader} read {}: lost {}, duplicated {}, reordered {}, misplaced {}, unacknowledged but \
             present {}, unparsable {}",
            f.read,
            f.lost.len(),
            f.duplicated.len(),
            f.reordered.len(),
            f.misplaced.len(),
            f.unacked_present,
            f.foreign
        );
        for line in f.reordered.iter().chain(&f.misplaced).take(5) {
            eprintln!("{scenario}:   {line}");
        }
        if !f.lost.is_empty() {
            eprintln!("{scenario}:   lost (key, seq), first ones: {:?}", &f.lost[..f.lost.len().min(10)]);
        }
        if !f.duplicated.is_empty() {
            eprintln!(
                "{scenario}:   duplicated (key, seq), first ones: {:?}",
                &f.duplicated[..f.duplicated.len().min(10)]
            );
        }
    }

    assert!(sent > 0 && acked > 0, "{scenario}: nothing was acknowledged");
    assert_eq!(unresolved, 0, "{scenario}: records without an answer after the delivery timeout");
    assert!(
        early.is_empty(),
        "{scenario}: {} records failed before delivery.timeout.ms: {:?}",
        early.len(),
        errors.iter().map(|(e, v)| (e, v.count)).collect::<Vec<_>>()
    );
    for (reader, f) in &readers {
        assert_eq!(f.foreign, 0, "{scenario}: {reader} read records this test did not write");
        assert!(f.lost.is_empty(), "{scenario}: {reader}: {} acknowledged records lost", f.lost.len());
        assert!(f.duplicated.is_empty(), "{scenario}: {reader}: {} records duplicated", f.duplicated.len());
        assert!(
            f.reordered.is_empty(),
            "{scenario}: {reader}: per-key order broken: {:?}",
            &f.reordered[..1]
        );
        assert!(f.misplaced.is_empty(), "{scenario}: {reader}: {:?}", &f.misplaced[..1]);
    }
    assert_eq!(readers[0].1.read, readers[1].1.read, "{scenario}: the two readers disagree");
    // With no failure, every record was acknowledged and read once.
    if failed.is_empty() {
        assert_eq!(readers[0].1.read, sent, "{scenario}");
    }
}

/// Sets up a topic and a writer on a whole cluster.
fn begin(scenario: &str) -> (&'static Cluster, String, Writer) {
    let cluster = cluster();
    let healed = cluster.heal();
    if !healed.is_empty() {
        eprintln!("{scenario}: brought nodes {healed:?} back first");
    }
    let topic = unique_topic(scenario);
    cluster.create_topic(&topic, PARTITIONS);
    let writer = Writer::start(cluster, &topic);
    writer.keep_writing(Duration::from_secs(3));
    (cluster, topic, writer)
}

fn end(cluster: &Cluster, scenario: &str, writer: Writer) {
    writer.keep_writing(Duration::from_secs(3));
    let topic = writer.topic.clone();
    let (outcomes, unresolved, ran) = writer.finish();
    verify(cluster, scenario, &topic, outcomes, unresolved, ran);
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn leader_of_most_partitions_killed_then_restarted() {
    let _serial = serial();
    let (cluster, topic, writer) = begin("kill-leader");
    let leader = cluster.busiest_leader(&topic).expect("a leader");
    cluster.kill(leader);
    eprintln!("kill-leader: SIGKILLed node {leader} at {:.1?}", writer.at());
    writer.keep_writing(Duration::from_secs(6));
    let took = cluster.restart(leader);
    eprintln!("kill-leader: node {leader} back in {took:.1?}, at {:.1?}", writer.at());
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    end(cluster, "kill-leader", writer);
}

#[test]
fn two_of_three_nodes_down_for_20_seconds() {
    two_of_three_nodes_down("two-down", Duration::from_secs(20));
}

/// As long down again: records sent during the outage wait (the buffer holds them, and
/// `max.block.ms` is the delivery timeout), and nothing fails, since 60 s plus the restart is
/// still within `delivery.timeout.ms`.
#[test]
fn two_of_three_nodes_down_for_60_seconds() {
    two_of_three_nodes_down("two-down-60", Duration::from_secs(60));
}

fn two_of_three_nodes_down(scenario: &str, down: Duration) {
    let _serial = serial();
    let (cluster, topic, writer) = begin(scenario);
    let first = cluster.busiest_leader(&topic).expect("a leader");
    let second = cluster.node_ids().into_iter().find(|id| *id != first).unwrap();
    cluster.kill(first);
    cluster.kill(second);
    eprintln!(
        "{scenario}: SIGKILLed nodes {first} and {second} at {:.1?}; no quorum, no ISR of 2",
        writer.at()
    );
    writer.keep_writing(down);
    let a = cluster.restart(first);
    let b = cluster.restart(second);
    eprintln!("{scenario}: nodes back in {a:.1?} and {b:.1?}, at {:.1?}", writer.at());
    cluster.wait_for_isr(&topic, Duration::from_secs(90)).unwrap();
    end(cluster, scenario, writer);
}

#[test]
fn rolling_sigterm_restart_of_every_node() {
    let _serial = serial();
    let (cluster, topic, writer) = begin("rolling");
    for node in cluster.node_ids() {
        let stopped = cluster.terminate(node);
        let back = cluster.restart(node);
        cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
        eprintln!(
            "rolling: node {node} stopped in {stopped:.1?}, back in {back:.1?}, in sync at {:.1?}",
            writer.at()
        );
    }
    end(cluster, "rolling", writer);
}

#[test]
fn active_controller_killed() {
    let _serial = serial();
    let (cluster, topic, writer) = begin("controller");
    let controller = cluster.wait_for_active_controller(Duration::from_secs(30)).unwrap();
    cluster.kill(controller);
    let started = Instant::now();
    let next = wait_for("a new active controller", Duration::from_secs(30), || {
        cluster.active_controller().filter(|c| *c != controller)
    });
    eprintln!(
        "controller: SIGKILLed node {controller}; node {next} active after {:.1?}, at {:.1?}",
        started.elapsed(),
        writer.at()
    );
    writer.keep_writing(Duration::from_secs(4));
    cluster.restart(controller);
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    end(cluster, "controller", writer);
}

#[test]
fn leader_frozen_longer_than_the_request_timeout() {
    let _serial = serial();
    let (cluster, topic, writer) = begin("sigstop");
    let leader = cluster.busiest_leader(&topic).expect("a leader");
    let frozen = REQUEST_TIMEOUT + Duration::from_secs(5);
    cluster.pause(leader);
    eprintln!("sigstop: SIGSTOPped node {leader} for {frozen:?} at {:.1?}", writer.at());
    writer.keep_writing(frozen);
    cluster.resume(leader);
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    end(cluster, "sigstop", writer);
}

#[test]
fn preferred_leader_election_while_producing() {
    let _serial = serial();
    let (cluster, topic, writer) = begin("elect");
    // A controlled shutdown moves the node's leaderships away; it gets none back alone.
    let node = cluster.busiest_leader(&topic).expect("a leader");
    cluster.terminate(node);
    cluster.restart(node);
    let state = cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    let moved: Vec<i32> = state.iter().filter(|p| p.leader != p.replicas[0]).map(|p| p.partition).collect();
    assert!(!moved.is_empty(), "elect: no leadership moved: {state:?}");
    writer.keep_writing(Duration::from_secs(2));

    let admin =
        writer.runtime.block_on(Admin::connect(ClientConfig::new(&cluster.bootstrap()))).expect("admin");
    let asked: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| (topic.as_str(), p)).collect();
    let elected = writer.runtime.block_on(admin.elect_leaders(ElectionType::Preferred, Some(&asked)));
    for ((_, p), result) in &elected {
        match result {
            Ok(()) => assert!(moved.contains(p), "elect: partition {p} needed no election but had one"),
            Err(e) if e.code() == Some(ErrorCode::ELECTION_NOT_NEEDED) => {
                assert!(!moved.contains(p), "elect: partition {p} was moved yet needed no election")
            }
            Err(e) => panic!("elect: partition {p}: {e}"),
        }
    }
    wait_for("preferred leaders everywhere", Duration::from_secs(15), || {
        let ps = cluster.partitions(&topic).ok()?;
        ps.iter().all(|p| p.leader == p.replicas[0]).then_some(())
    });
    eprintln!("elect: partitions {moved:?} moved back to their preferred leaders while producing");
    end(cluster, "elect", writer);
}
