//! Consumer groups shared by Klamm, librdkafka and the Java client, against Apache Kafka.
//!
//! Members are processes with one command line and one output (`GroupMember`): Klamm's
//! `group-consume` example and the peers' `group-member`. The tests check that a mixed group
//! (cooperative-sticky, then range) gives every partition to exactly one member after each join
//! and leave, whichever client leads; that a member killed half way loses only what it read
//! after its last commit; that a static member restarts without a rebalance; and that offsets
//! committed by one client are the ones the others read and start from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use klamm::{
    Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer, NextOffset};
use klamm_tests::{
    assert_not_revoked, kept, unique_topic, wait_for_exact_cover, Broker, GroupMember, MemberKind, MemberLog,
    Peer, PeerKind,
};

/// How long a group may take to settle after a join or a leave.
const SETTLE: Duration = Duration::from_secs(60);

/// The flags every member gets: heartbeats every 500 ms, gone after 10 s, short fetch waits.
fn member_flags(kind: MemberKind, assignor: &str, commit_every: u32, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = vec![
        "--assignor".into(),
        assignor.into(),
        "--commit-every".into(),
        commit_every.to_string(),
        "--property".into(),
        "session.timeout.ms=10000".into(),
        "--property".into(),
        "heartbeat.interval.ms=500".into(),
        "--property".into(),
        format!("{}=100", kind.fetch_wait_property()),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

/// A topic with `partitions` partitions on the shared Kafka broker, a fresh group name and a
/// runtime for the Klamm calls the test makes itself.
struct Setup {
    broker: &'static Broker,
    topic: String,
    group: String,
    partitions: i32,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new(prefix: &str, partitions: i32) -> Setup {
        let broker = Broker::shared_kafka();
        let setup = Setup {
            broker,
            topic: unique_topic(prefix),
            group: unique_topic("g"),
            partitions,
            rt: tokio::runtime::Runtime::new().unwrap(),
        };
        setup.block_on(async {
            let client = Client::new(ClientConfig::new(&broker.bootstrap())).unwrap();
            let admin = Admin::new(client.clone());
            for (name, result) in admin.create_topics(&[NewTopic::new(&setup.topic, partitions, 1)]).await {
                result.unwrap_or_else(|e| panic!("create {name}: {e}"));
            }
            client.close().await;
        });
        setup
    }

    fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn start(&self, kind: MemberKind, name: &str, assignor: &str) -> GroupMember {
        self.start_with(kind, name, &self.group, &member_flags(kind, assignor, 100, &[]))
    }

    fn start_with(&self, kind: MemberKind, name: &str, group: &str, flags: &[String]) -> GroupMember {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        GroupMember::start_kind(kind, name, &self.bootstrap(), &self.topic, group, &flags)
    }

    /// Produces `per_partition` records to every partition with Klamm's producer; returns the
    /// partitions' end offsets after it.
    fn produce(&self, per_partition: usize) -> BTreeMap<i32, i64> {
        self.block_on(async {
            let producer = Producer::new(ProducerConfig::new(&self.bootstrap())).unwrap();
            let mut deliveries = Vec::with_capacity(per_partition * self.partitions as usize);
            for i in 0..per_partition {
                for p in 0..self.partitions {
                    let record = ProducerRecord::new(self.topic.as_str(), format!("value-{p}-{i}"))
                        .key(format!("key-{i}"))
                        .partition(p);
                    deliveries.push(producer.send(record).await.unwrap());
                }
            }
            let mut ends = BTreeMap::new();
            for d in deliveries {
                let meta = d.await.unwrap();
                let end = ends.entry(meta.partition).or_insert(0);
                *end = (*end).max(meta.offset + 1);
            }
            producer.close(Duration::from_secs(30)).await;
            ends
        })
    }

    /// The group's committed offsets as Klamm reads them (without joining), by partition.
    fn committed(&self, group: &str) -> BTreeMap<i32, Option<i64>> {
        self.block_on(async {
            let consumer = GroupConsumer::new(GroupConfig::new(&self.bootstrap(), group)).unwrap();
            let tps: Vec<TopicPartition> =
                (0..self.partitions).map(|p| TopicPartition::new(self.topic.as_str(), p)).collect();
            let got = consumer.committed(&tps).await.unwrap();
            consumer.close(Duration::from_secs(10)).await.unwrap();
            got.into_iter().map(|(tp, next)| (tp.partition, next.as_ref().map(NextOffset::offset))).collect()
        })
    }
}

/// Every (partition, offset) below `ends`.
fn all_records(ends: &BTreeMap<i32, i64>) -> BTreeSet<(i32, i64)> {
    ends.iter().flat_map(|(&p, &end)| (0..end).map(move |o| (p, o))).collect()
}

/// Waits until `cond` holds; panics with `what()` after `within`.
fn wait_until(within: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {}", what());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every member printed the last record (below `ends`) of each partition it owns.
fn wait_each_reads_its_partitions(members: &[&GroupMember], topic: &str, ends: &BTreeMap<i32, i64>) {
    for m in members {
        let owned = m.log().owned;
        assert!(!owned.is_empty(), "{} owns nothing", m.name());
        let last: Vec<(i32, i64)> = owned
            .iter()
            .map(|tp| {
                let p: i32 = tp.strip_prefix(&format!("{topic}-")).unwrap().parse().unwrap();
                (p, ends[&p] - 1)
            })
            .collect();
        wait_until(
            SETTLE,
            || {
                let log = m.log();
                last.iter().all(|r| log.records.contains(r))
            },
            || format!("{} did not read up to {last:?}: {}", m.name(), m.stderr()),
        );
    }
}

/// Checks that the logs together hold every record below `ends`, none of them twice.
fn assert_read_once(logs: &[MemberLog], ends: &BTreeMap<i32, i64>) {
    let mut count: HashMap<(i32, i64), usize> = HashMap::new();
    for log in logs {
        for &r in &log.records {
            *count.entry(r).or_default() += 1;
        }
    }
    let read: BTreeSet<(i32, i64)> = count.keys().copied().collect();
    let expected = all_records(ends);
    let missing: Vec<_> = expected.difference(&read).take(10).collect();
    assert!(missing.is_empty(), "{} records unread, such as {missing:?}", expected.len() - read.len());
    let twice: Vec<_> = count.iter().filter(|(_, &n)| n > 1).map(|(r, _)| *r).take(10).collect();
    assert!(twice.is_empty(), "records read twice although every hand-over committed first: {twice:?}");
}

fn marks(members: &[&GroupMember]) -> Vec<usize> {
    members.iter().map(|m| m.log().rebalances.len()).collect()
}

#[test]
fn mixed_group_cooperative_sticky() {
    const P: i32 = 6;
    const COOP: &str = "cooperative-sticky";
    let t0 = Instant::now();
    let s = Setup::new("mixed-coop", P);
    s.produce(200);
    let mut done: Vec<MemberLog> = Vec::new();

    // Klamm leads, librdkafka and Java join: partitions that stay are never revoked.
    let k = s.start(MemberKind::Klamm, "klamm", COOP);
    let one = wait_for_exact_cover(&[&k], &s.topic, P, SETTLE);
    let m = marks(&[&k]);
    let r = s.start(MemberKind::Rdkafka, "rdkafka", COOP);
    let two = wait_for_exact_cover(&[&k, &r], &s.topic, P, SETTLE);
    assert_eq!((two[0].len(), two[1].len()), (3, 3), "{two:?}");
    assert_not_revoked(&k, m[0], &kept(&one[0], &two[0]));
    let m = marks(&[&k, &r]);
    let j = s.start(MemberKind::Java, "java", COOP);
    let three = wait_for_exact_cover(&[&k, &r, &j], &s.topic, P, SETTLE);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    assert_not_revoked(&k, m[0], &kept(&two[0], &three[0]));
    assert_not_revoked(&r, m[1], &kept(&two[1], &three[1]));

    // All three consume what arrives on their partitions.
    let mut ends = s.produce(50);
    wait_each_reads_its_partitions(&[&k, &r, &j], &s.topic, &ends);

    // The Klamm leader leaves: librdkafka or Java leads now, and nobody loses a partition.
    let m = marks(&[&r, &j]);
    done.push(k.stop(SETTLE));
    let after = wait_for_exact_cover(&[&r, &j], &s.topic, P, SETTLE);
    assert_not_revoked(&r, m[0], &three[1]);
    assert_not_revoked(&j, m[1], &three[2]);

    // A new Klamm member joins a group led by another client.
    let m = marks(&[&r, &j]);
    let k2 = s.start(MemberKind::Klamm, "klamm-2", COOP);
    let three = wait_for_exact_cover(&[&r, &j, &k2], &s.topic, P, SETTLE);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    assert_not_revoked(&r, m[0], &kept(&after[0], &three[0]));
    assert_not_revoked(&j, m[1], &kept(&after[1], &three[1]));

    let m = marks(&[&j, &k2]);
    done.push(r.stop(SETTLE));
    let two = wait_for_exact_cover(&[&j, &k2], &s.topic, P, SETTLE);
    assert_not_revoked(&j, m[0], &three[1]);
    assert_not_revoked(&k2, m[1], &three[2]);

    let m = marks(&[&k2]);
    done.push(j.stop(SETTLE));
    wait_for_exact_cover(&[&k2], &s.topic, P, SETTLE);
    assert_not_revoked(&k2, m[0], &two[1]);

    // The last member reads what was left and what comes now, from where the others committed.
    ends = s.produce(50);
    wait_each_reads_its_partitions(&[&k2], &s.topic, &ends);
    done.push(k2.stop(SETTLE));
    assert_read_once(&done, &ends);
    eprintln!("mixed_group_cooperative_sticky: {:?}", t0.elapsed());
}

#[test]
fn mixed_group_range() {
    const P: i32 = 6;
    const RANGE: &str = "range";
    let t0 = Instant::now();
    let s = Setup::new("mixed-range", P);
    s.produce(200);
    let mut done: Vec<MemberLog> = Vec::new();

    // Java leads this time; every join and leave revokes everything (eager) and must end in an
    // exact cover.
    let j = s.start(MemberKind::Java, "java", RANGE);
    wait_for_exact_cover(&[&j], &s.topic, P, SETTLE);
    let r = s.start(MemberKind::Rdkafka, "rdkafka", RANGE);
    wait_for_exact_cover(&[&j, &r], &s.topic, P, SETTLE);
    let k = s.start(MemberKind::Klamm, "klamm", RANGE);
    let three = wait_for_exact_cover(&[&j, &r, &k], &s.topic, P, SETTLE);
    assert!(three.iter().all(|v| v.len() == 2), "{three:?}");
    let mut ends = s.produce(50);
    wait_each_reads_its_partitions(&[&j, &r, &k], &s.topic, &ends);

    done.push(r.stop(SETTLE));
    wait_for_exact_cover(&[&j, &k], &s.topic, P, SETTLE);
    let r2 = s.start(MemberKind::Rdkafka, "rdkafka-2", RANGE);
    wait_for_exact_cover(&[&j, &k, &r2], &s.topic, P, SETTLE);
    // The Java leader leaves, then Klamm: librdkafka ends alone.
    done.push(j.stop(SETTLE));
    wait_for_exact_cover(&[&k, &r2], &s.topic, P, SETTLE);
    done.push(k.stop(SETTLE));
    wait_for_exact_cover(&[&r2], &s.topic, P, SETTLE);

    ends = s.produce(50);
    wait_each_reads_its_partitions(&[&r2], &s.topic, &ends);
    done.push(r2.stop(SETTLE));
    assert_read_once(&done, &ends);
    eprintln!("mixed_group_range: {:?}", t0.elapsed());
}

#[test]
fn at_least_once_after_kill() {
    const P: i32 = 4;
    const TOTAL: usize = 100_000;
    const COMMIT_EVERY: u32 = 1000;
    let t0 = Instant::now();
    let s = Setup::new("alo", P);
    let ends = s.produce(TOTAL / P as usize);
    assert_eq!(ends.values().sum::<i64>(), TOTAL as i64);
    // Small fetches and polls: the member spends its time reading rather than waiting for its
    // commits, so the kill tends to land between two commits.
    let small = ["--property", "max.partition.fetch.bytes=8192", "--property", "max.poll.records=100"];
    let flags = member_flags(MemberKind::Klamm, "cooperative-sticky", COMMIT_EVERY, &small);

    let first = s.start_with(MemberKind::Klamm, "first", &s.group, &flags);
    first.wait_for_records(TOTAL / 2, Duration::from_secs(120));
    let first = first.kill();
    assert!(first.records.len() < TOTAL, "the first member read everything before the kill");
    // What the group holds now is where a new member starts.
    let committed = s.committed(&s.group);

    let second = s.start_with(MemberKind::Klamm, "second", &s.group, &flags);
    let expected = all_records(&ends);
    wait_until(
        Duration::from_secs(120),
        || {
            let mut read: BTreeSet<(i32, i64)> = first.records.iter().copied().collect();
            read.extend(second.log().records);
            read == expected
        },
        || format!("not every record was read; second member: {}", second.stderr()),
    );
    let second = second.stop(SETTLE);

    let start = |p: i32| committed[&p].unwrap_or(0);
    let first_set: BTreeSet<(i32, i64)> = first.records.iter().copied().collect();
    let second_set: BTreeSet<(i32, i64)> = second.records.iter().copied().collect();
    assert_eq!(first_set.len(), first.records.len(), "the first member printed a record twice");
    assert_eq!(second_set.len(), second.records.len(), "the second member printed a record twice");
    for p in 0..P {
        // The commit never runs ahead of what was printed.
        let printed_end = first.records.iter().filter(|r| r.0 == p).map(|r| r.1 + 1).max().unwrap_or(0);
        assert!(start(p) <= printed_end, "partition {p}: committed {} past printed {printed_end}", start(p));
        // The new member starts exactly at the commit.
        let first_read = second.records.iter().filter(|r| r.0 == p).map(|r| r.1).min();
        if start(p) < ends[&p] {
            assert_eq!(first_read, Some(start(p)), "partition {p}: committed {:?}", committed[&p]);
        } else {
            assert_eq!(first_read, None, "partition {p} was read past its committed end");
        }
    }
    // Re-consumed: exactly what the first member printed after the last commit.
    let again: BTreeSet<(i32, i64)> = first_set.intersection(&second_set).copied().collect();
    let after_commit: BTreeSet<(i32, i64)> =
        first_set.iter().filter(|r| r.1 >= start(r.0)).copied().collect();
    assert_eq!(again, after_commit);
    // The member commits after every 1,000 records it printed (at the end of a poll's batch).
    assert!(again.len() < 2 * COMMIT_EVERY as usize, "{} records re-consumed", again.len());
    eprintln!(
        "at_least_once_after_kill: first read {}, re-consumed {}, committed {committed:?}; {:?}",
        first.records.len(),
        again.len(),
        t0.elapsed()
    );
}

#[test]
fn static_membership_restart_without_rebalance() {
    const P: i32 = 6;
    let t0 = Instant::now();
    let s = Setup::new("static", P);
    s.produce(100);
    let a = s.start_with(MemberKind::Klamm, "a", &s.group, &static_flags("static-a"));
    wait_for_exact_cover(&[&a], &s.topic, P, SETTLE);
    let b = s.start_with(MemberKind::Klamm, "b", &s.group, &static_flags("static-b"));
    let two = wait_for_exact_cover(&[&a, &b], &s.topic, P, SETTLE);
    // Let the group settle: no rebalance line from either for a second.
    let mut m = marks(&[&a, &b]);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = marks(&[&a, &b]);
        if now == m {
            break;
        }
        m = now;
    }

    // The follower restarts, then the leader (the broker hands it its place back without
    // asking it to assign): the other member hears nothing of either.
    let (b, b_took) = restart_static(&s, b, "b-again", "static-b", &a, &two[1]);
    let (a, a_took) = restart_static(&s, a, "a-again", "static-a", &b, &two[0]);
    wait_for_exact_cover(&[&a, &b], &s.topic, P, Duration::ZERO);
    a.stop(SETTLE);
    b.stop(SETTLE);
    eprintln!(
        "static_membership_restart_without_rebalance: restarts took {b_took:?} and {a_took:?}; {:?}",
        t0.elapsed()
    );
}

/// Stops static member `member` (which sends no LeaveGroup) and starts `name` with the same
/// instance id at once, well within the 10 s session timeout. Checks that it gets `owned`
/// back in a single assignment and that `other` sees no rebalance until past the session
/// timeout. Returns the new member and how long it took to get its partitions.
fn restart_static(
    s: &Setup,
    member: GroupMember,
    name: &str,
    instance: &str,
    other: &GroupMember,
    owned: &[String],
) -> (GroupMember, Duration) {
    let other_lines = other.log().rebalances;
    let restart = Instant::now();
    member.stop(SETTLE);
    let again = s.start_with(MemberKind::Klamm, name, &s.group, &static_flags(instance));
    wait_until(
        SETTLE,
        || !again.log().owned.is_empty(),
        || format!("{name} got nothing: {}", again.stderr()),
    );
    let took = restart.elapsed();
    assert_eq!(again.log().owned.into_iter().collect::<Vec<_>>(), owned, "{name} got other partitions");
    std::thread::sleep(Duration::from_secs(12));
    let other_after = other.log().rebalances;
    assert_eq!(
        other_after,
        other_lines,
        "{} rebalanced when static {name} restarted (lines since: {:?})\n{name}: {}",
        other.name(),
        &other_after[other_lines.len().min(other_after.len())..],
        again.stderr()
    );
    let lines = again.log().rebalances;
    assert_eq!(lines.len(), 1, "{name}: {lines:?}\n{}", again.stderr());
    (again, took)
}

fn static_flags(instance: &str) -> Vec<String> {
    let instance = format!("group.instance.id={instance}");
    member_flags(MemberKind::Klamm, "cooperative-sticky", 100, &["--property", &instance])
}

/// Joins `group` with Klamm, commits `offsets` (partition, next offset) and leaves.
fn klamm_commit(s: &Setup, group: &str, offsets: &[(i32, i64)]) {
    s.block_on(async {
        let mut config = GroupConfig::new(&s.bootstrap(), group)
            .session_timeout(Duration::from_secs(10))
            .heartbeat_interval(Duration::from_millis(500));
        config.set("enable.auto.commit", "false").unwrap();
        let mut consumer = GroupConsumer::new(config).unwrap();
        consumer.subscribe([s.topic.as_str()]);
        let deadline = Instant::now() + SETTLE;
        while consumer.assignment().len() < s.partitions as usize {
            assert!(Instant::now() < deadline, "the Klamm member got no assignment");
            // Poll to run the group; records read here are not committed.
            consumer.poll(Duration::from_millis(100)).await.unwrap();
        }
        let offsets =
            offsets.iter().map(|&(p, o)| (TopicPartition::new(s.topic.as_str(), p), NextOffset::new(o)));
        consumer.commit(offsets).await.unwrap();
        consumer.close(Duration::from_secs(30)).await.unwrap();
    });
}

/// The first offset a member printed per partition.
fn first_offsets(log: &MemberLog) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for &(p, o) in &log.records {
        let first = out.entry(p).or_insert(o);
        *first = (*first).min(o);
    }
    out
}

#[test]
fn committed_offsets_interop() {
    const P: i32 = 3;
    const PER: i64 = 10;
    let t0 = Instant::now();
    let s = Setup::new("commit-interop", P);
    let ends = s.produce(PER as usize);
    let kinds = [(MemberKind::Rdkafka, PeerKind::Rdkafka), (MemberKind::Java, PeerKind::Java)];

    // Klamm commits; each peer reads the offsets and starts from them (partition 2 has none:
    // earliest).
    let offsets = [(0, 5), (1, 7)];
    let expected = BTreeMap::from([(0, Some(5)), (1, Some(7)), (2, None)]);
    for (member, peer) in kinds {
        let group = unique_topic(&format!("g-from-klamm-{}", member.name()));
        klamm_commit(&s, &group, &offsets);
        let read: BTreeMap<i32, Option<i64>> = Peer::new(peer)
            .committed(&s.bootstrap(), &group, &s.topic)
            .iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        assert_eq!(read, expected, "{} reads what Klamm committed", member.name());
        let left = (PER - 5) + (PER - 7) + PER;
        let count = left.to_string();
        let flags = member_flags(member, "range", 1000, &["--count", &count]);
        let log = s.start_with(member, member.name(), &group, &flags).wait_for_exit(SETTLE);
        assert_eq!(first_offsets(&log), BTreeMap::from([(0, 5), (1, 7), (2, 0)]), "{} start", member.name());
        assert_eq!(log.records.len() as i64, left);
    }

    // Each peer reads part of the topic and commits on its way out; Klamm reads those offsets and
    // a Klamm member starts exactly there.
    for (member, peer) in kinds {
        let group = unique_topic(&format!("g-to-klamm-{}", member.name()));
        let flags = member_flags(member, "range", 4, &["--count", "12"]);
        let log = s.start_with(member, member.name(), &group, &flags).wait_for_exit(SETTLE);
        assert_eq!(log.records.len(), 12, "{}", member.name());
        let mut printed_end: BTreeMap<i32, Option<i64>> = (0..P).map(|p| (p, None)).collect();
        for &(p, o) in &log.records {
            let end = printed_end.get_mut(&p).unwrap();
            *end = Some(end.map_or(o + 1, |e| e.max(o + 1)));
        }
        let committed = s.committed(&group);
        assert_eq!(committed, printed_end, "Klamm reads what {} committed", member.name());
        // The other peer agrees.
        let other = if peer == PeerKind::Java { Peer::rdkafka() } else { Peer::java() };
        let read: BTreeMap<i32, Option<i64>> = other
            .committed(&s.bootstrap(), &group, &s.topic)
            .iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        assert_eq!(read, committed, "{} reads what {} committed", other.name(), member.name());

        let left = (PER * P as i64 - 12).to_string();
        let flags = member_flags(MemberKind::Klamm, "range", 1000, &["--count", &left]);
        let klamm = s.start_with(MemberKind::Klamm, "klamm", &group, &flags).wait_for_exit(SETTLE);
        let starts: BTreeMap<i32, i64> = committed
            .iter()
            .filter(|(p, c)| c.unwrap_or(0) < ends[p])
            .map(|(&p, c)| (p, c.unwrap_or(0)))
            .collect();
        assert_eq!(first_offsets(&klamm), starts, "Klamm starts where {} committed", member.name());
    }
    eprintln!("committed_offsets_interop: {:?}", t0.elapsed());
}
