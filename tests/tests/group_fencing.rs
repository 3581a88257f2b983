//! Group defects seen from outside, against Apache Kafka: a member the group dropped while it
//! was cut off must lose its partitions (and not commit over their new owner), a `subscribe`
//! during a cooperative revocation must leave no partition owned but unfetched, a static
//! member's `on_revoked` must be able to commit when it closes, and an older commit retried
//! after a newer one must not overwrite it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use klamm::{
    Admin, Client, ClientConfig, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use klamm_group::membership::MemberState;
use klamm_group::{GroupConfig, GroupConsumer, NextOffset, RebalanceHandle, RebalanceListener};
use klamm_protocol::api::offset_commit::OffsetCommitResponse;
use klamm_protocol::{decode_response, encode_response, ApiKey, ErrorCode};
use klamm_tests::{unique_topic, Broker, BrokerKind, FaultProxy, FrameHook};
use tokio::time::Instant;

/// What a member's listener heard, in order.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Assigned(Vec<TopicPartition>),
    /// With the outcome of the commit the listener made, when it made one.
    Revoked(Vec<TopicPartition>, Option<Result<(), String>>),
    Lost(Vec<TopicPartition>),
}

/// A listener that records every call and, if asked, commits what was consumed of the
/// partitions it gives up.
#[derive(Clone, Default)]
struct Recorder {
    heard: Arc<Mutex<Vec<Heard>>>,
    commit_on_revoke: bool,
}

impl Recorder {
    fn committing() -> Self {
        Recorder { commit_on_revoke: true, ..Default::default() }
    }

    fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }

    fn push(&self, h: Heard) {
        self.heard.lock().unwrap().push(h);
    }
}

impl RebalanceListener for Recorder {
    async fn on_assigned(&mut self, _: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        self.push(Heard::Assigned(partitions.to_vec()));
    }

    async fn on_revoked(&mut self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        let commit = if self.commit_on_revoke {
            Some(handle.commit_consumed(partitions).await.map_err(|e| e.to_string()))
        } else {
            None
        };
        self.push(Heard::Revoked(partitions.to_vec(), commit));
    }

    async fn on_lost(&mut self, _: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        self.push(Heard::Lost(partitions.to_vec()));
    }
}

/// Replays what a listener heard and checks that every revoked or lost partition was the
/// member's at that point (assigned, and not given up since).
fn check_ownership(heard: &[Heard]) {
    let mut owned: BTreeSet<TopicPartition> = BTreeSet::new();
    for (i, h) in heard.iter().enumerate() {
        match h {
            Heard::Assigned(ps) => owned.extend(ps.iter().cloned()),
            Heard::Revoked(ps, _) | Heard::Lost(ps) => {
                for tp in ps {
                    assert!(
                        owned.remove(tp),
                        "event {i} gives up {tp}, which the member did not own: {heard:?}"
                    );
                }
            }
        }
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let client = Client::new(ClientConfig::new(bootstrap)).unwrap();
    let admin = Admin::new(client.clone());
    for (name, result) in admin.create_topics(&[NewTopic::new(topic, partitions, 1)]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    client.close().await;
}

/// Writes records `range` (values `v<i>`) to every partition of `topic`.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, range: std::ops::Range<usize>) {
    let producer = Producer::new(ProducerConfig::new(bootstrap)).unwrap();
    let mut deliveries = Vec::new();
    for p in 0..partitions {
        for i in range.clone() {
            deliveries
                .push(producer.send(ProducerRecord::new(topic, format!("v{i}")).partition(p)).await.unwrap());
        }
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await;
}

fn tps(topic: &str, partitions: i32) -> Vec<TopicPartition> {
    (0..partitions).map(|p| TopicPartition::new(topic, p)).collect()
}

/// Settings for members that notice each other quickly.
fn quick(bootstrap: &str, group: &str) -> GroupConfig {
    GroupConfig::new(bootstrap, group)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(300))
        .max_poll_interval(Duration::from_secs(60))
        .consumer(|c| c.auto_offset_reset(OffsetReset::Earliest).fetch_max_wait(Duration::from_millis(100)))
}

/// Polls `member` until `done` holds of the highest offset read per partition, or panics
/// after `within`.
async fn read_until<L: RebalanceListener>(
    member: &mut GroupConsumer<L>,
    read: &mut HashMap<TopicPartition, i64>,
    within: Duration,
    what: &str,
    done: impl Fn(&HashMap<TopicPartition, i64>, &GroupConsumer<L>) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(read, member) {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}; read {read:?}");
        for r in member.poll(Duration::from_millis(200)).await.unwrap() {
            let e = read.entry(r.topic_partition()).or_insert(r.offset);
            *e = (*e).max(r.offset);
        }
    }
}

/// The group's committed offsets of `partitions`, read by a member that does not join.
async fn committed(bootstrap: &str, group: &str, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
    let reader = GroupConsumer::new(GroupConfig::new(bootstrap, group)).unwrap();
    let got = reader.committed(partitions).await.unwrap();
    reader.close(Duration::from_secs(5)).await.unwrap();
    partitions.iter().map(|tp| got.get(tp).cloned().flatten().map(|n| n.offset())).collect()
}

/// The broker's INTERNAL listener, which advertises itself: a client that bootstraps there
/// stays off the proxy that the CLIENT listener advertises.
fn internal_bootstrap(broker: &Broker) -> String {
    let props = std::fs::read_to_string(broker.dir().join("server.properties")).unwrap();
    let listeners = props.lines().find_map(|l| l.strip_prefix("listeners=")).expect("listeners line");
    let internal =
        listeners.split(',').find_map(|l| l.strip_prefix("INTERNAL://")).expect("INTERNAL listener");
    internal.to_string()
}

async fn proxied_kafka(hooks: Vec<Arc<dyn FrameHook>>) -> (FaultProxy, Broker) {
    tokio::task::spawn_blocking(move || {
        let proxy = FaultProxy::bind_with(hooks).unwrap();
        let broker = proxy.start_broker(Broker::builder(BrokerKind::Kafka)).unwrap();
        (proxy, broker)
    })
    .await
    .unwrap()
}

/// Member A is cut off from the cluster (behind a proxy) long enough for the group to drop it
/// and give its partitions to B, which reads on and commits. A, still cut off, changes its
/// subscription, so its first request when it gets through is a JoinGroup with its old member
/// id: Kafka answers UNKNOWN_MEMBER_ID. A must treat its partitions as lost (as the Java client
/// does). It used to keep them and claim them in its next join; the group then took them back
/// from it as a revocation, and A's `on_revoked` committed its own, older positions over B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dropped_while_cut_off_loses_its_partitions_and_does_not_commit_over_the_new_owner() {
    const P: i32 = 4;
    let (proxy, broker) = proxied_kafka(Vec::new()).await;
    let direct = internal_bootstrap(&broker);
    let (topic, other, group) = (unique_topic("dropped"), unique_topic("other"), unique_topic("g"));
    create_topic(&direct, &topic, P).await;
    create_topic(&direct, &other, 1).await;
    produce(&direct, &topic, P, 0..20).await;

    let a_heard = Recorder::committing();
    let mut a = GroupConsumer::with_listener(quick(&proxy.bootstrap(), &group), a_heard.clone()).unwrap();
    a.subscribe([topic.clone()]);
    let mut a_read = HashMap::new();
    read_until(&mut a, &mut a_read, Duration::from_secs(60), "A reads 20 records per partition", |r, _| {
        r.len() == P as usize && r.values().all(|&o| o == 19)
    })
    .await;
    assert_eq!(a.assignment().len(), P as usize);

    // A is cut off; B joins directly and, once the group has dropped A, gets everything.
    proxy.refuse(true);
    proxy.cut_all();
    let b_heard = Recorder::committing();
    let mut b = GroupConsumer::with_listener(quick(&direct, &group), b_heard.clone()).unwrap();
    b.subscribe([topic.clone()]);
    produce(&direct, &topic, P, 20..40).await;
    let mut b_read = HashMap::new();
    read_until(
        &mut b,
        &mut b_read,
        Duration::from_secs(60),
        "B reads all 40 records per partition",
        |r, _| r.len() == P as usize && r.values().all(|&o| o == 39),
    )
    .await;
    b.commit_consumed().await.unwrap();
    let all = tps(&topic, P);
    assert_eq!(committed(&direct, &group, &all).await, vec![Some(40); P as usize]);
    let b_generation = b.generation().0;

    // A rejoins (a changed subscription) and gets through: its JoinGroup names a member the
    // group no longer has. A is not polled until it is in a new generation, so that whatever
    // it was told is handled before it could fetch anything.
    a.subscribe([topic.clone(), other.clone()]);
    proxy.refuse(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.state() == MemberState::Stable && a.generation().0 > b_generation) {
        assert!(Instant::now() < deadline, "A never rejoined: {:?} {:?}", a.state(), a.generation());
        b.poll(Duration::from_millis(100)).await.unwrap();
    }
    // Both settle: between them they read every partition, each once.
    let wanted: BTreeSet<TopicPartition> = tps(&topic, P).into_iter().chain(tps(&other, 1)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled_since: Option<Instant> = None;
    loop {
        a.poll(Duration::from_millis(100)).await.unwrap();
        b.poll(Duration::from_millis(100)).await.unwrap();
        let (sa, sb): (BTreeSet<_>, BTreeSet<_>) =
            (a.assignment().into_iter().collect(), b.assignment().into_iter().collect());
        let union: BTreeSet<_> = sa.union(&sb).cloned().collect();
        let stable = a.state() == MemberState::Stable && b.state() == MemberState::Stable;
        if stable && sa.is_disjoint(&sb) && union == wanted {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(2) {
                break;
            }
        } else {
            settled_since = None;
        }
        assert!(Instant::now() < deadline, "the group did not settle: A {sa:?}, B {sb:?}");
    }

    let heard = a_heard.heard();
    check_ownership(&heard);
    assert_eq!(heard[0], Heard::Assigned(all.clone()), "{heard:?}");
    assert_eq!(heard[1], Heard::Lost(all.clone()), "A's partitions were taken while it was away: {heard:?}");
    assert_eq!(
        committed(&direct, &group, &all).await,
        vec![Some(40); P as usize],
        "B's commits stand; A heard {heard:?}"
    );
    // An explicit commit by A of a partition B owns now is refused, not sent: the coordinator
    // would take it (it checks A's generation, not who owns the partition).
    let bs = b.assignment().into_iter().find(|tp| *tp.topic == *topic).expect("B keeps part of the topic");
    let refused = a.commit([(bs.clone(), NextOffset::new(3))]).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::ILLEGAL_GENERATION), "{refused}");
    assert_eq!(committed(&direct, &group, &all).await, vec![Some(40); P as usize]);
    a.close(Duration::from_secs(10)).await.unwrap();
    b.close(Duration::from_secs(10)).await.unwrap();
}

/// A owns every partition of `t` and `u`; B joins (for `t`), so part of `t` moves: a
/// cooperative revocation is pending at A when A's application, before polling, drops `u`
/// from its subscription. Both revocations must happen, each once, and every partition of `t`
/// must end up read by someone. The second revocation used to replace the first, whose
/// partitions stayed A's in the group without A fetching them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_during_a_cooperative_revocation_leaves_no_partition_unfetched() {
    const T: i32 = 6;
    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let (t, u, group) = (unique_topic("t"), unique_topic("u"), unique_topic("g"));
    create_topic(&bootstrap, &t, T).await;
    create_topic(&bootstrap, &u, 1).await;
    produce(&bootstrap, &t, T, 0..5).await;
    produce(&bootstrap, &u, 1, 0..5).await;

    let a_heard = Recorder::default();
    let mut a = GroupConsumer::with_listener(quick(&bootstrap, &group), a_heard.clone()).unwrap();
    a.subscribe([t.clone(), u.clone()]);
    let mut read = HashMap::new();
    read_until(&mut a, &mut read, Duration::from_secs(60), "A reads t and u", |r, _| {
        r.len() == T as usize + 1 && r.values().all(|&o| o == 4)
    })
    .await;
    let alone = a.generation().0;

    let b_heard = Recorder::default();
    let mut b = GroupConsumer::with_listener(quick(&bootstrap, &group), b_heard.clone()).unwrap();
    b.subscribe([t.clone()]);
    // A's task takes part in the rebalance without A polling; the revocation waits for A.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.state() == MemberState::Stable && a.generation().0 > alone) {
        assert!(Instant::now() < deadline, "A never synced the new generation");
        b.poll(Duration::from_millis(100)).await.unwrap();
    }
    a.subscribe([t.clone()]);

    // Settle: t split between A and B, nobody on u.
    let all_t: BTreeSet<TopicPartition> = tps(&t, T).into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled_since: Option<Instant> = None;
    loop {
        a.poll(Duration::from_millis(100)).await.unwrap();
        b.poll(Duration::from_millis(100)).await.unwrap();
        let (sa, sb): (BTreeSet<_>, BTreeSet<_>) =
            (a.assignment().into_iter().collect(), b.assignment().into_iter().collect());
        let union: BTreeSet<_> = sa.union(&sb).cloned().collect();
        if !sa.is_empty() && !sb.is_empty() && sa.is_disjoint(&sb) && union == all_t {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(3) {
                break;
            }
        } else {
            settled_since = None;
        }
        assert!(Instant::now() < deadline, "t never split between A and B: A {sa:?}, B {sb:?}");
    }
    let heard = a_heard.heard();
    check_ownership(&heard);
    let revoked: Vec<&Vec<TopicPartition>> =
        heard.iter().filter_map(|h| if let Heard::Revoked(ps, _) = h { Some(ps) } else { None }).collect();
    assert!(
        revoked.first().is_some_and(|ps| !ps.is_empty() && ps.iter().all(|tp| *tp.topic == *t)),
        "the first revocation moves part of t to B: {heard:?}"
    );
    assert!(revoked.iter().any(|ps| ps == &&vec![TopicPartition::new(u.as_str(), 0)]), "{heard:?}");

    // Every partition of t is read by someone: a new record in each reaches A or B.
    produce(&bootstrap, &t, T, 5..6).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fresh: BTreeSet<TopicPartition> = BTreeSet::new();
    while fresh != all_t {
        assert!(Instant::now() < deadline, "partitions nobody reads: {:?}", all_t.difference(&fresh));
        for member_records in
            [a.poll(Duration::from_millis(100)).await, b.poll(Duration::from_millis(100)).await]
        {
            for r in member_records.unwrap() {
                if r.offset == 5 {
                    fresh.insert(r.topic_partition());
                }
            }
        }
    }
    a.close(Duration::from_secs(10)).await.unwrap();
    b.close(Duration::from_secs(10)).await.unwrap();
}

/// A static member's listener commits in `on_revoked` when the member closes. The member
/// sends no LeaveGroup, but it is still in its generation until the listener is done, so the
/// commit goes through. It used to fail: the generation was reset before the listener ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_commits_in_on_revoked_when_it_closes() {
    const P: i32 = 3;
    let broker = Broker::shared_kafka();
    let bootstrap = broker.bootstrap();
    let (topic, group) = (unique_topic("static"), unique_topic("g"));
    create_topic(&bootstrap, &topic, P).await;
    produce(&bootstrap, &topic, P, 0..10).await;

    let heard = Recorder::committing();
    let config = quick(&bootstrap, &group).group_instance_id(unique_topic("instance"));
    let mut member = GroupConsumer::with_listener(config, heard.clone()).unwrap();
    member.subscribe([topic.clone()]);
    let mut read = HashMap::new();
    read_until(&mut member, &mut read, Duration::from_secs(60), "the member reads everything", |r, _| {
        r.len() == P as usize && r.values().all(|&o| o == 9)
    })
    .await;
    member.close(Duration::from_secs(10)).await.unwrap();

    let all = tps(&topic, P);
    assert_eq!(heard.heard().last(), Some(&Heard::Revoked(all.clone(), Some(Ok(())))), "{:?}", heard.heard());
    assert_eq!(committed(&bootstrap, &group, &all).await, vec![Some(10); P as usize]);
    // Each commit carries the leader epoch of the last record consumed (KIP-320), and reading
    // the committed offsets gives it back.
    let reader = GroupConsumer::new(GroupConfig::new(&bootstrap, &group)).unwrap();
    let got = reader.committed(&all).await.unwrap();
    reader.close(Duration::from_secs(5)).await.unwrap();
    for tp in &all {
        let epoch = got.get(tp).cloned().flatten().and_then(|n| n.leader_epoch());
        assert_eq!(epoch, Some(0), "{tp}: the single broker's first leader epoch");
    }
}

/// Fails the first OffsetCommit response it sees with COORDINATOR_LOAD_IN_PROGRESS (the
/// broker has stored the offsets; the client is told to retry).
#[derive(Default)]
struct FailFirstCommit {
    pending: Mutex<Option<(usize, i32, i16)>>,
    done: AtomicBool,
}

impl FrameHook for FailFirstCommit {
    fn request(&self, connection: usize, frame: &Bytes) {
        if frame.len() < 8 || i16::from_be_bytes([frame[0], frame[1]]) != ApiKey::OFFSET_COMMIT.0 {
            return;
        }
        let mut pending = self.pending.lock().unwrap();
        if pending.is_none() && !self.done.load(Ordering::SeqCst) {
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            *pending = Some((connection, correlation_id, version));
        }
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        let mut pending = self.pending.lock().unwrap();
        let Some((c, id, version)) = *pending else { return frame };
        if c != connection
            || frame.len() < 4
            || i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) != id
        {
            return frame;
        }
        *pending = None;
        let (_, mut body) = decode_response::<OffsetCommitResponse>(frame.clone(), version).unwrap();
        for t in &mut body.topics {
            for p in &mut t.partitions {
                p.error_code = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code();
            }
        }
        let mut out = BytesMut::new();
        encode_response(&mut out, id, version, &body).unwrap();
        self.done.store(true, Ordering::SeqCst);
        out.freeze().slice(4..)
    }
}

/// An asynchronous commit of offset 5 is stored, but its answer says "retry" (rewritten by
/// the proxy); before its retry, a commit of offset 10 succeeds. The retry must not move the
/// committed offset back to 5. It used to: every commit retried on its own for up to
/// `default.api.timeout.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_commit_retried_after_a_newer_one_does_not_overwrite_it() {
    let hook = Arc::new(FailFirstCommit::default());
    let (proxy, broker) = proxied_kafka(vec![hook.clone() as Arc<dyn FrameHook>]).await;
    let direct = internal_bootstrap(&broker);
    let (topic, group) = (unique_topic("order"), unique_topic("g"));
    create_topic(&direct, &topic, 1).await;
    produce(&direct, &topic, 1, 0..10).await;

    let mut config = quick(&proxy.bootstrap(), &group);
    config.set("retry.backoff.ms", "2000").unwrap();
    config.set("retry.backoff.max.ms", "2000").unwrap();
    let mut member = GroupConsumer::new(config).unwrap();
    member.subscribe([topic.clone()]);
    let mut read = HashMap::new();
    read_until(&mut member, &mut read, Duration::from_secs(60), "the member reads 10 records", |r, _| {
        r.values().any(|&o| o == 9)
    })
    .await;

    let tp = TopicPartition::new(topic.as_str(), 0);
    let older = member.commit_async([(tp.clone(), NextOffset::new(5))]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hook.done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the first commit never got its answer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    member.commit([(tp.clone(), NextOffset::new(10))]).await.unwrap();
    assert_eq!(committed(&direct, &group, std::slice::from_ref(&tp)).await, vec![Some(10)]);
    // The older commit's retry is due 2 s after its failure; it ends without overwriting.
    let outcome = tokio::time::timeout(Duration::from_secs(30), older).await.expect("the older commit ends");
    assert!(outcome.is_ok(), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed(&direct, &group, std::slice::from_ref(&tp)).await, vec![Some(10)]);
    member.close(Duration::from_secs(10)).await.unwrap();
}
