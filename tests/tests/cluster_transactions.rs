//! Exactly-once copying on a real 3-node cluster (replication factor 3, min ISR 2): the
//! `transactional-copy` example of `klamm-group` copies a 6-partition topic of 20,000 keyed
//! records while it is killed with SIGKILL three times at random points (no commit, no leave:
//! each restart with the same `transactional.id` fences and aborts what the killed one had
//! open) and, with a fourth copier running, the node that coordinates its transactions is
//! killed while a transaction is open and restarted.
//!
//! Then librdkafka's and the Java client's read_committed consumers read the output, and every
//! input (partition, offset) must be there exactly once, by its `source-offset` header, with
//! its key and value, and nothing else. A read_uncommitted reader may see more (the copies in
//! the killed copiers' aborted transactions): that is not asserted, only printed, but it must
//! see every input record too.

use std::time::{Duration, Instant};

use klamm::{Admin, Client, ClientConfig, OffsetSpec, Producer, ProducerRecord, TransactionState};
use klamm_tests::{
    copy_defects, reliable_producer_config, unique_topic, Cluster, ConsumeOptions, Copier, Isolation, Peer,
};

const PARTITIONS: i32 = 6;
const RECORDS: usize = 20_000;

/// A random number below `n`.
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    u64::from_le_bytes(bytes) % n.max(1)
}

/// The records written to `topic` so far (aborted copies and transaction markers included):
/// the sum of its partitions' end offsets.
async fn written(admin: &Admin, topic: &str) -> i64 {
    let asked: Vec<(&str, i32, OffsetSpec)> =
        (0..PARTITIONS).map(|p| (topic, p, OffsetSpec::Latest)).collect();
    admin.list_offsets(&asked).await.into_iter().filter_map(|(_, r)| r.ok()).map(|o| o.offset).sum()
}

/// Waits until the output holds `target` records, while the copier runs; panics with its
/// stderr if it stops.
async fn wait_for_output(admin: &Admin, output: &str, target: i64, copier: &mut Copier) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = written(admin, output).await;
        if now >= target {
            return now;
        }
        assert!(copier.is_running(), "the copier stopped before the output held {target} records");
        assert!(Instant::now() < deadline, "the output holds {now} records after 90 s, not {target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn copier_killed_and_coordinator_killed_copies_exactly_once() {
    let started = Instant::now();
    let cluster = Cluster::start(3);
    eprintln!("cluster of 3 up in {:.1?}", started.elapsed());
    let bootstrap = cluster.bootstrap();
    let (input, output) = (unique_topic("copy-in"), unique_topic("copy-out"));
    cluster.create_topic(&input, PARTITIONS);
    cluster.create_topic(&output, PARTITIONS);
    cluster.wait_for_isr(&output, Duration::from_secs(30)).expect("the output's replicas in sync");
    let (group, id) = (unique_topic("copy-group"), unique_topic("copy-id"));
    let flags = [
        "--commit-every",
        "100",
        "--timeout-ms",
        "10000",
        "--property",
        "session.timeout.ms=6000",
        "--property",
        "heartbeat.interval.ms=1000",
        "--property",
        "transaction.timeout.ms=20000",
    ];
    let start = |name: &str| Copier::start(name, &bootstrap, &input, &output, &group, &id, &flags);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let producer = Producer::new(reliable_producer_config(
            &bootstrap,
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        .unwrap();
        let mut deliveries = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let record = ProducerRecord::new(input.as_str(), format!("value-{i}")).key(format!("key-{}", i % 997));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        producer.close(Duration::from_secs(10)).await;
        let admin = Admin::new(Client::new(ClientConfig::new(&bootstrap)).unwrap());

        // Three copiers killed at random points of the copy.
        let mut progress = 0;
        for kill in 1..=3 {
            let mut copier = start(&format!("copier-{kill}"));
            let target = progress + 1500 + random_below(1500) as i64;
            progress = wait_for_output(&admin, &output, target, &mut copier).await;
            copier.kill();
            eprintln!("copier {kill} killed with {progress} records in the output, at {:.1?}", started.elapsed());
        }

        // A fourth, whose transaction coordinator is killed while a transaction is open.
        let mut copier = start("copier-4");
        progress = wait_for_output(&admin, &output, progress + 1500, &mut copier).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let coordinator = loop {
            let described = admin.describe_transactions(&[id.as_str()]).await;
            if let Some((_, Ok(t))) = described.first() {
                if t.state == TransactionState::Ongoing || t.state == TransactionState::PrepareCommit {
                    break t.coordinator;
                }
            }
            assert!(Instant::now() < deadline, "no open transaction of {id} seen: {described:?}");
        };
        cluster.kill(coordinator);
        eprintln!(
            "coordinator {coordinator} killed in a transaction with {progress} records in the output, at {:.1?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(copier.is_running(), "the copier survives its coordinator's death");
        let took = cluster.restart(coordinator);
        eprintln!("coordinator {coordinator} back after {took:.1?}");

        let exit = tokio::task::spawn_blocking(move || copier.wait(Duration::from_secs(120))).await.unwrap();
        assert!(exit.status.success(), "the last copier failed: {}", exit.stderr);
        eprintln!("last copier: {}; stderr:\n{}", exit.stdout.trim(), exit.stderr.trim());
        admin.client().close().await;
    });
    eprintln!("copy done at {:.1?}", started.elapsed());

    let quick = |isolation| ConsumeOptions {
        idle_timeout: Duration::from_secs(5),
        isolation: Some(isolation),
        ..ConsumeOptions::default()
    };
    let sources = Peer::rdkafka().consume(&bootstrap, &input, RECORDS, &quick(Isolation::ReadUncommitted));
    assert_eq!(sources.len(), RECORDS, "the input as librdkafka reads it");
    for peer in [Peer::rdkafka(), Peer::java()] {
        let copies = peer.consume(&bootstrap, &output, RECORDS + 1, &quick(Isolation::ReadCommitted));
        let defects = copy_defects(&sources, &copies);
        assert!(defects.is_empty(), "{} read_committed reads a wrong copy: {defects:?}", peer.name());
        eprintln!("{} read_committed: {} records, an exact copy", peer.name(), copies.len());
    }
    // Aborted copies are visible here; each input record is there at least once.
    let everything =
        Peer::rdkafka().consume(&bootstrap, &output, 4 * RECORDS, &quick(Isolation::ReadUncommitted));
    let missing: Vec<String> =
        copy_defects(&sources, &everything).into_iter().filter(|d| d.contains("missing")).collect();
    assert!(missing.is_empty(), "read_uncommitted: {missing:?}");
    eprintln!(
        "rdkafka read_uncommitted: {} records ({} copies of aborted transactions); done at {:.1?}",
        everything.len(),
        everything.len() - RECORDS,
        started.elapsed()
    );
}
