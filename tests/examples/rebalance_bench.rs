//! How long a consumer group takes to consume every partition again after a member joins and
//! after a member is killed, for Klamm, the Java client and librdkafka, with the classic
//! protocol (cooperative-sticky) and the KIP-848 `consumer` protocol, in one run on one
//! Apache Kafka broker. Prints a markdown table (docs/benchmarks.md).
//!
//! ```text
//! cargo run -p klamm-tests --release --example rebalance-bench -- \
//!     [--members 3,6,12] [--clients klamm,java,rdkafka] [--protocols classic,consumer] \
//!     [--partitions 48] [--runs 3]
//! ```
//!
//! With several runs, the table gives each figure's median and every run's, the scenarios of
//! one run all done before the next run starts (so slow phases of a loaded machine spread
//! over all clients).
//!
//! Each scenario: a fresh group of N-1 members of one client over a topic whose every
//! partition gets a record every 20 ms; once they own every partition exactly once, member N
//! starts (**join**), and once the N own every partition and each partition has delivered a
//! record to its owner since, one of the first members is killed with SIGKILL (**kill**).
//! Each time is measured from the start of the member (or the kill) until every partition is
//! owned exactly once by the members and has delivered a record to its owner since that
//! moment. A join also counts the new process's start-up (a JVM, a Python interpreter), so the
//! table gives it from the first revocation by an existing member too (the first sign that the
//! group reacts). Members are the test harness's `GroupMember` processes (the `group-consume`
//! example and the peers' `group-member`), with commits every 1000 records; the session
//! timeout is 10 s and heartbeats come every 500 ms for both protocols (member properties for
//! classic, the test broker's `group.consumer.*` settings for `consumer`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::{Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{unique_topic, Broker, GroupMember, MemberKind};

struct Args {
    members: Vec<usize>,
    clients: Vec<MemberKind>,
    protocols: Vec<String>,
    partitions: i32,
    runs: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        members: vec![3, 6, 12],
        clients: vec![MemberKind::Klamm, MemberKind::Java, MemberKind::Rdkafka],
        protocols: vec!["classic".into(), "consumer".into()],
        partitions: 48,
        runs: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
        match flag.as_str() {
            "--members" => {
                args.members = list()
                    .map(|n| n.parse().map_err(|_| format!("--members: {n}")))
                    .collect::<Result<_, _>>()?
            }
            "--clients" => {
                args.clients = list()
                    .map(|c| match c {
                        "klamm" => Ok(MemberKind::Klamm),
                        "java" => Ok(MemberKind::Java),
                        "rdkafka" => Ok(MemberKind::Rdkafka),
                        other => Err(format!("--clients: unknown {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--protocols" => args.protocols = list().map(str::to_string).collect(),
            "--partitions" => {
                args.partitions = value.parse().map_err(|_| format!("--partitions: {value}"))?
            }
            "--runs" => args.runs = value.parse().map_err(|_| format!("--runs: {value}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.members.iter().any(|&n| n < 2) {
        return Err("--members: at least 2".into());
    }
    Ok(args)
}

fn flags(kind: MemberKind, protocol: &str) -> Vec<String> {
    let mut flags: Vec<String> = vec!["--commit-every".into(), "1000".into()];
    let mut property = |kv: String| {
        flags.push("--property".into());
        flags.push(kv);
    };
    property(format!("{}=100", kind.fetch_wait_property()));
    if protocol == "consumer" {
        property("group.protocol=consumer".into());
    } else {
        property("session.timeout.ms=10000".into());
        property("heartbeat.interval.ms=500".into());
    }
    flags
}

/// Owner of each partition if every partition has exactly one among `members`, each member
/// owning some.
fn exact_cover(members: &[&GroupMember], topic: &str, partitions: i32) -> Option<BTreeMap<i32, usize>> {
    let mut owners: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        let owned = m.log().owned;
        if owned.is_empty() {
            return None;
        }
        for tp in owned {
            let p: i32 = tp.strip_prefix(topic)?.strip_prefix('-')?.parse().ok()?;
            if owners.insert(p, i).is_some() {
                return None;
            }
        }
    }
    (owners.len() == partitions as usize).then_some(owners)
}

/// Waits until `members` cover the topic exactly and every partition has delivered a record
/// to its owner since the cover was first seen; the time that took from `from`, or `None`
/// after two minutes.
fn consumed_again(members: &[&GroupMember], topic: &str, partitions: i32, from: Instant) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut covered: Option<(Instant, BTreeMap<i32, usize>)> = None;
    loop {
        let now = Instant::now();
        match exact_cover(members, topic, partitions) {
            Some(owners) => {
                let since = match &covered {
                    Some((at, before)) if *before == owners => *at,
                    _ => {
                        covered = Some((now, owners.clone()));
                        now
                    }
                };
                let mut last: BTreeMap<i32, Instant> = BTreeMap::new();
                for (i, m) in members.iter().enumerate() {
                    let log = m.log();
                    for (&(p, _), &t) in log.records.iter().zip(&log.record_times) {
                        if owners.get(&p) == Some(&i) && t >= since {
                            last.entry(p).or_insert(t);
                        }
                    }
                }
                if last.len() == partitions as usize {
                    let done = last.values().max().copied().unwrap_or(now);
                    return Some(done.saturating_duration_since(from));
                }
            }
            None => covered = None,
        }
        if now > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first `revoked` line an existing member printed after `marks` (their rebalance line
/// counts before the join), as seen by polling every millisecond until `limit`.
fn first_revocation(members: &[&GroupMember], marks: &[usize], limit: Instant) -> Option<Instant> {
    while Instant::now() < limit {
        for (m, &mark) in members.iter().zip(marks) {
            if m.log().rebalances.iter().skip(mark).any(|l| l.starts_with("revoked")) {
                return Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

struct Row {
    protocol: String,
    client: &'static str,
    members: usize,
    join: Option<Duration>,
    join_from_revoke: Option<Duration>,
    kill: Option<Duration>,
}

fn scenario(
    broker: &Broker,
    protocol: &str,
    kind: MemberKind,
    n: usize,
    partitions: i32,
    topic: &str,
) -> Row {
    let group = unique_topic("bench-g");
    let brokers = broker.bootstrap();
    let flags = flags(kind, protocol);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let start = |i: usize| GroupMember::start_kind(kind, &format!("m{i}"), &brokers, topic, &group, &flags);
    let mut members: Vec<GroupMember> = (0..n - 1).map(start).collect();
    let refs: Vec<&GroupMember> = members.iter().collect();
    let ready = consumed_again(&refs, topic, partitions, Instant::now());
    let mut row = Row {
        protocol: protocol.to_string(),
        client: kind.name(),
        members: n,
        join: None,
        join_from_revoke: None,
        kill: None,
    };
    if ready.is_none() {
        eprintln!("{protocol} {} x{}: the first members never settled", kind.name(), n - 1);
        return row;
    }
    let marks: Vec<usize> = members.iter().map(|m| m.log().rebalances.len()).collect();
    let t0 = Instant::now();
    members.push(start(n - 1));
    let (join, revoked) = std::thread::scope(|s| {
        let refs: Vec<&GroupMember> = members.iter().collect();
        let old: Vec<&GroupMember> = members[..n - 1].iter().collect();
        let marks = &marks;
        let watcher =
            s.spawn(move || first_revocation(&old, marks, Instant::now() + Duration::from_secs(120)));
        let join = consumed_again(&refs, topic, partitions, t0);
        // Stops the watcher at once if nothing was revoked (it then finds its limit passed).
        (join, watcher.join().ok().flatten())
    });
    row.join = join;
    if let (Some(join), Some(r)) = (join, revoked) {
        row.join_from_revoke = Some((t0 + join).saturating_duration_since(r));
    }
    if join.is_some() {
        let victim = members.remove(0);
        let t0 = Instant::now();
        victim.kill();
        let refs: Vec<&GroupMember> = members.iter().collect();
        row.kill = consumed_again(&refs, topic, partitions, t0);
    }
    drop(members);
    row
}

fn fmt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rebalance-bench: {e}");
            std::process::exit(2);
        }
    };
    let broker = Broker::kafka();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_runtime = rt.enter();
    let stop = Arc::new(AtomicBool::new(false));
    let mut rows = Vec::new();
    for _ in 0..args.runs.max(1) {
        for protocol in &args.protocols {
            for &kind in &args.clients {
                for &n in &args.members {
                    // A topic per scenario, with its own trickle of records, so that no group reads
                    // a backlog another one left.
                    let topic = unique_topic("bench");
                    rt.block_on(async {
                        let client = Client::new(ClientConfig::new(&broker.bootstrap())).expect("client");
                        let admin = Admin::new(client.clone());
                        for (name, r) in
                            admin.create_topics(&[NewTopic::new(&topic, args.partitions, 1)]).await
                        {
                            r.unwrap_or_else(|e| panic!("create {name}: {e}"));
                        }
                        client.close().await;
                    });
                    stop.store(false, Ordering::Relaxed);
                    let producer = Producer::new(ProducerConfig::new(&broker.bootstrap())).expect("producer");
                    let trickle = {
                        let (stop, topic, partitions) = (Arc::clone(&stop), topic.clone(), args.partitions);
                        rt.spawn(async move {
                            let mut tick = tokio::time::interval(Duration::from_millis(20));
                            while !stop.load(Ordering::Relaxed) {
                                tick.tick().await;
                                for p in 0..partitions {
                                    let _ = producer
                                        .send(ProducerRecord::new(topic.as_str(), "x").partition(p))
                                        .await;
                                }
                            }
                            producer.close(Duration::from_secs(5)).await;
                        })
                    };
                    let row = scenario(&broker, protocol, kind, n, args.partitions, &topic);
                    eprintln!(
                        "{} {} {}: join {} s (from the first revocation {} s), kill {} s",
                        row.protocol,
                        row.client,
                        row.members,
                        fmt(row.join),
                        fmt(row.join_from_revoke),
                        fmt(row.kill)
                    );
                    stop.store(true, Ordering::Relaxed);
                    let _ = rt.block_on(trickle);
                    rows.push(row);
                }
            }
        }
    }
    // One line per scenario: the median of each figure, then every run's.
    let mut by_scenario: BTreeMap<(String, usize, &'static str), Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_scenario.entry((r.protocol.clone(), r.members, r.client)).or_default().push(r);
    }
    println!("| protocol | members | client | join s | join from first revocation s | kill s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for ((protocol, members, client), runs) in &by_scenario {
        let column = |f: fn(&Row) -> Option<Duration>| {
            let all: Vec<Option<Duration>> = runs.iter().map(|r| f(r)).collect();
            let mut known: Vec<Duration> = all.iter().flatten().copied().collect();
            known.sort();
            let median = (known.len() == all.len()).then(|| known[known.len() / 2]);
            if all.len() == 1 {
                fmt(median)
            } else {
                let each: Vec<String> = all.iter().map(|d| fmt(*d)).collect();
                format!("**{}** ({})", fmt(median), each.join(", "))
            }
        };
        println!(
            "| {protocol} | {members} | {client} | {} | {} | {} |",
            column(|r| r.join),
            column(|r| r.join_from_revoke),
            column(|r| r.kill)
        );
    }
}
