//! The KIP-848 `consumer` group protocol on a 3-node Apache Kafka cluster: the group
//! coordinator is killed while the group reconciles (a member has revoked partitions for a
//! newcomer that has not got them yet). The members find the new coordinator, which loaded the
//! group from `__consumer_offsets`, send it their whole state, and the group settles with every
//! partition owned by exactly one member, no partition ever owned by two, and every record
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use klamm::{Acks, Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{unique_topic, wait_for_exact_cover, Cluster, GroupMember};

const P: i32 = 6;
const RECORDS: usize = 1200;

const FLAGS: &[&str] =
    &["--commit-every", "50", "--property", "group.protocol=consumer", "--property", "fetch.max.wait.ms=100"];

/// Panics if a partition is owned by two of `members` now.
fn assert_exclusive(members: &[&GroupMember]) {
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for m in members {
        for tp in m.log().owned {
            if let Some(other) = owners.insert(tp.clone(), m.name().to_string()) {
                panic!("{tp} owned by {other} and {} at once", m.name());
            }
        }
    }
}

/// Waits, checking exclusivity all along, until `members` cover the topic exactly.
fn settle(members: &[&GroupMember], topic: &str, within: Duration) -> Vec<Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        assert_exclusive(members);
        let owned: usize = members.iter().map(|m| m.log().owned.len()).sum();
        // Balanced to within one: a member with fewer still waits for partitions being revoked.
        let counts: Vec<usize> = members.iter().map(|m| m.log().owned.len()).collect();
        let balanced = counts.iter().max().zip(counts.iter().min()).is_some_and(|(max, min)| max - min <= 1);
        if owned == P as usize && balanced && counts.iter().all(|c| *c > 0) {
            return wait_for_exact_cover(members, topic, P, Duration::ZERO);
        }
        if Instant::now() > deadline {
            return wait_for_exact_cover(members, topic, P, Duration::ZERO);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_coordinator_is_killed_during_a_reconciliation() {
    let cluster = Cluster::start(3);
    let topic = unique_topic("kip848-cluster");
    let group = unique_topic("g");
    cluster.create_topic(&topic, P);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let producer = Producer::new(ProducerConfig::new(&cluster.bootstrap()).acks(Acks::All)).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..RECORDS {
            let record = ProducerRecord::new(topic.as_str(), format!("v-{i}")).key(format!("k-{i}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        producer.close(Duration::from_secs(10)).await;
    });

    let brokers = cluster.bootstrap();
    let a = GroupMember::start("a", &brokers, &topic, &group, FLAGS);
    settle(&[&a], &topic, Duration::from_secs(60));
    let coordinator = rt.block_on(async {
        let client = Client::new(ClientConfig::new(&cluster.bootstrap())).unwrap();
        let node = client.group_coordinator(&group).await.unwrap();
        client.close().await;
        node
    });
    let mark = a.log().rebalances.len();

    // b joins; as soon as a has revoked what b is to get, the coordinator dies.
    let b = GroupMember::start("b", &brokers, &topic, &group, FLAGS);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a.log().rebalances.iter().skip(mark).any(|l| l.starts_with("revoked")) {
        assert_exclusive(&[&a, &b]);
        assert!(Instant::now() < deadline, "a revoked nothing for b: {:?}", a.log().rebalances);
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.kill(coordinator);
    let killed = Instant::now();
    let two = settle(&[&a, &b], &topic, Duration::from_secs(90));
    assert_eq!((two[0].len(), two[1].len()), (3, 3), "{two:?}");
    eprintln!("settled {:?} after the coordinator was killed", killed.elapsed());

    // Every record read by someone, the coordinator still down.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read: BTreeSet<(i32, i64)> = a.log().records.into_iter().chain(b.log().records).collect();
        if read.len() == RECORDS {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of {RECORDS} records read", read.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    a.stop(Duration::from_secs(30));
    b.stop(Duration::from_secs(30));
    cluster.restart(coordinator);
}
