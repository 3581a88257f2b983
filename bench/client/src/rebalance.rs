//! `client-bench rebalance`: how long a consumer group takes to absorb a second member.
//!
//! Against Apache Kafka (tansu's group coordinator mishandles concurrent rebalances), for each
//! client (klamm's `GroupConsumer`, librdkafka's `BaseConsumer`) and run:
//!
//! 1. A topic of 24 partitions gets a steady trickle of records from a klamm producer in the
//!    background (about 2,400 records/s, spread over every partition), so a member that owns a
//!    partition sees records from it within a few milliseconds.
//! 2. Member 1 joins a fresh group (cooperative-sticky) and consumes until it owns all 24
//!    partitions and records flow.
//! 3. The clock starts; member 2 subscribes. Both are polled in turn, 5 ms at a time, in this
//!    process.
//! 4. The clock stops when the two members own disjoint sets covering all 24 partitions, 12
//!    each, and each has received a record since it got its final assignment.
//!
//! Both clients run with the same settings: `session.timeout.ms=10000`,
//! `heartbeat.interval.ms=500` (member 1 learns of the rebalance from a heartbeat, so this
//! bounds the time for both), `auto.offset.reset=latest`, no commits. Median of `--runs`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::{
    Admin, ClientConfig as KlammClientConfig, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use klamm_group::{GroupConfig, GroupConsumer};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

use crate::worker::BoxError;

const PARTITIONS: i32 = 24;
const SESSION_MS: u64 = 10_000;
const HEARTBEAT_MS: u64 = 500;
const GIVE_UP: Duration = Duration::from_secs(60);

/// One member, whichever client it is.
trait Member {
    /// Polls for up to `wait`; returns the partitions of the records received.
    fn poll(&mut self, wait: Duration) -> impl std::future::Future<Output = Result<Vec<i32>, BoxError>>;
    /// The partitions it owns now.
    fn owned(&self) -> BTreeSet<i32>;
}

struct KlammMember(GroupConsumer);

impl Member for KlammMember {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<i32>, BoxError> {
        Ok(self.0.poll(wait).await?.iter().map(|r| r.partition).collect())
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.0.assignment().iter().map(|tp| tp.partition).collect()
    }
}

struct RdkafkaMember(BaseConsumer);

impl Member for RdkafkaMember {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<i32>, BoxError> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        let mut first = true;
        loop {
            let left =
                if first { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
            first = false;
            match self.0.poll(left) {
                Some(Ok(m)) => out.push(m.partition()),
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(out),
            }
            if out.len() >= 500 {
                return Ok(out);
            }
        }
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.0.assignment().map(|a| a.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default()
    }
}

fn klamm_member(brokers: &str, group: &str, topic: &str) -> Result<KlammMember, BoxError> {
    let config = GroupConfig::new(brokers, group)
        .session_timeout(Duration::from_millis(SESSION_MS))
        .heartbeat_interval(Duration::from_millis(HEARTBEAT_MS))
        .assignors_by_name(["cooperative-sticky"])?
        .consumer(|c| c.auto_offset_reset(OffsetReset::Latest).fetch_max_wait(Duration::from_millis(100)));
    let mut consumer = GroupConsumer::new(config)?;
    consumer.subscribe([topic]);
    Ok(KlammMember(consumer))
}

fn rdkafka_member(brokers: &str, group: &str, topic: &str) -> Result<RdkafkaMember, BoxError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", SESSION_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_MS.to_string())
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(RdkafkaMember(consumer))
}

/// Polls `member` until it owns all partitions and receives records.
async fn settle_alone<M: Member>(member: &mut M) -> Result<(), BoxError> {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let got = member.poll(Duration::from_millis(20)).await?;
        if member.owned().len() == PARTITIONS as usize && !got.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("member 1 owns {:?} after {GIVE_UP:?}", member.owned()).into());
        }
    }
}

/// From member 2's subscription to both consuming their final halves; in seconds.
async fn measure<M: Member>(
    mut one: M,
    make_two: impl FnOnce() -> Result<M, BoxError>,
) -> Result<f64, BoxError> {
    settle_alone(&mut one).await?;
    let start = Instant::now();
    let mut two = make_two()?;
    let deadline = start + GIVE_UP;
    // When each member last changed its assignment, and whether it got a record since.
    let (mut owned1, mut owned2) = (one.owned(), two.owned());
    let (mut fresh1, mut fresh2) = (false, false);
    loop {
        let got1 = one.poll(Duration::from_millis(5)).await?;
        let got2 = two.poll(Duration::from_millis(5)).await?;
        let (now1, now2) = (one.owned(), two.owned());
        if now1 != owned1 {
            owned1 = now1;
            fresh1 = false;
        }
        if now2 != owned2 {
            owned2 = now2;
            fresh2 = false;
        }
        fresh1 |= got1.iter().any(|p| owned1.contains(p));
        fresh2 |= got2.iter().any(|p| owned2.contains(p));
        let split = owned1.len() == 12
            && owned2.len() == 12
            && owned1.is_disjoint(&owned2)
            && owned1.len() + owned2.len() == PARTITIONS as usize;
        if split && fresh1 && fresh2 {
            return Ok(start.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err(format!("no even split after {GIVE_UP:?}: {owned1:?} / {owned2:?}").into());
        }
    }
}

/// The whole benchmark: prints a markdown table.
pub async fn run(brokers: &str, runs: usize) -> Result<(), BoxError> {
    let topic = format!("rebalance-{}", std::process::id());
    let admin = Admin::connect(KlammClientConfig::new(brokers)).await?;
    for (name, result) in admin.create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)]).await {
        result.map_err(|e| format!("creating {name}: {e}"))?;
    }
    // The trickle: 24 records every 10 ms, one per partition.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = Producer::new(ProducerConfig::new(brokers).linger(Duration::ZERO))?;
    let trickle = {
        let (stop, producer, topic) = (Arc::clone(&stop), producer.clone(), topic.clone());
        tokio::spawn(async move {
            let topic: Arc<str> = Arc::from(topic.as_str());
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for p in 0..PARTITIONS {
                    let record = ProducerRecord::new(&topic, format!("tick-{n}")).partition(p);
                    if let Ok(d) = producer.send(record).await {
                        drop(d);
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut times: Vec<(String, Vec<f64>)> =
        vec![("klamm".into(), Vec::new()), ("rdkafka".into(), Vec::new())];
    for run in 0..runs {
        for pick in [run % 2, 1 - run % 2] {
            let group = format!("rebalance-{}-{run}-{pick}", std::process::id());
            let seconds = if pick == 0 {
                let one = klamm_member(brokers, &group, &topic)?;
                measure(one, || klamm_member(brokers, &group, &topic)).await?
            } else {
                let one = rdkafka_member(brokers, &group, &topic)?;
                measure(one, || rdkafka_member(brokers, &group, &topic)).await?
            };
            eprintln!("run {run}: {} {seconds:.3} s", times[pick].0);
            times[pick].1.push(seconds);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = trickle.await;
    producer.close(Duration::from_secs(10)).await;

    println!("Second member joining a cooperative-sticky group of one, 24 partitions, Apache Kafka;");
    println!(
        "session.timeout.ms={SESSION_MS}, heartbeat.interval.ms={HEARTBEAT_MS}; median of {runs} runs.\n"
    );
    println!("| client | median s | runs (s) |");
    println!("| --- | --- | --- |");
    for (client, mut values) in times {
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let all: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        println!("| {client} | {median:.3} | {} |", all.join(", "));
    }
    Ok(())
}
