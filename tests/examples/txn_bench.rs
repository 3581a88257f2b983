//! Transactional throughput, Klamm beside librdkafka and the Java client in one run on one
//! Apache Kafka broker. Prints markdown tables (docs/benchmarks.md).
//!
//! ```text
//! cargo run -p klamm-tests --release --example txn-bench -- \
//!     [--records 100000] [--copy-records 100000] [--clients klamm,rdkafka,java] [--runs 3]
//! ```
//!
//! - **produce**: `--records` (100,000) keyless records with 100-byte values into a fresh topic of 4
//!   partitions, in transactions of 1,000 and of 10,000 records (linger 5 ms for all three
//!   clients, their other producer settings at their defaults); timed from the first
//!   `begin_transaction` to the last commit. Klamm runs in this process; the peers run their
//!   `txn-produce` command.
//! - **copy**: the exactly-once copy loop over an input of `--copy-records` keyed records with
//!   100-byte values (4 partitions) into a fresh output topic, in a fresh group, committing every
//!   1,000 records: Klamm's `transactional-copy` example, the peers' `copy` command (the same
//!   loop); timed from the first record read to the last commit, so the group join is left out.
//!
//! Each run does every (workload, client) once, starting with the next client each run; the
//! table gives the median of the runs and every run's figure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use klamm::{Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use klamm_tests::{unique_topic, Broker, BrokerKind, Copier, Peer, PeerKind};

struct Args {
    records: u64,
    copy_records: u64,
    clients: Vec<String>,
    runs: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        records: 100_000,
        copy_records: 100_000,
        clients: vec!["klamm".into(), "rdkafka".into(), "java".into()],
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag} takes a number"));
        match flag.as_str() {
            "--records" => args.records = number(&value)?,
            "--copy-records" => args.copy_records = number(&value)?,
            "--runs" => args.runs = number(&value)?.max(1) as usize,
            "--clients" => {
                args.clients =
                    value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                if let Some(bad) =
                    args.clients.iter().find(|c| !["klamm", "rdkafka", "java"].contains(&c.as_str()))
                {
                    return Err(format!("--clients: unknown client {bad:?}"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

const VALUE: [u8; 100] = [b'x'; 100];

async fn create(admin: &Admin, topic: &str) {
    for (name, result) in admin.create_topics(&[NewTopic::new(topic, 4, 1)]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    admin.wait_for_topic(topic, Duration::from_secs(30)).await.unwrap();
}

/// Klamm's transactional produce: seconds from the first begin to the last commit.
async fn klamm_produce(bootstrap: &str, topic: &str, records: u64, per_transaction: u64) -> f64 {
    let config = ProducerConfig::new(bootstrap)
        .transactional_id(unique_topic("klamm-bench"))
        .linger(Duration::from_millis(5));
    let producer = Producer::new(config).unwrap();
    producer.init_transactions().await.unwrap();
    let topic: std::sync::Arc<str> = topic.into();
    let started = Instant::now();
    let mut sent = 0;
    while sent < records {
        producer.begin_transaction().unwrap();
        let end = records.min(sent + per_transaction);
        while sent < end {
            // A failed record fails the commit; the delivery future is not needed.
            drop(producer.send(ProducerRecord::new(topic.clone(), &VALUE[..])).await.unwrap());
            sent += 1;
        }
        producer.commit_transaction().await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    producer.close(Duration::from_secs(10)).await;
    took
}

fn peer_kind(client: &str) -> PeerKind {
    if client == "java" {
        PeerKind::Java
    } else {
        PeerKind::Rdkafka
    }
}

fn seconds(v: &serde_json::Value) -> f64 {
    v["seconds"].as_f64().unwrap_or_else(|| panic!("no seconds in {v}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.0}k", r / 1e3)
    }
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("txn-bench: {e}");
        std::process::exit(2)
    });
    let broker = Broker::builder(BrokerKind::Kafka).start().expect("a Kafka broker");
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admin = runtime.block_on(async { Admin::new(Client::new(ClientConfig::new(&bootstrap)).unwrap()) });

    // The copy's input, written once.
    let input = unique_topic("copy-in");
    runtime.block_on(async {
        create(&admin, &input).await;
        let producer =
            Producer::new(ProducerConfig::new(&bootstrap).linger(Duration::from_millis(5))).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..args.copy_records {
            let record = ProducerRecord::new(input.as_str(), &VALUE[..]).key(format!("key-{}", i % 1000));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        producer.close(Duration::from_secs(10)).await;
    });

    // (workload, client) -> records per second of each run.
    let mut results: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let workloads =
        ["produce, 1,000 a transaction", "produce, 10,000 a transaction", "copy, commit every 1,000"];
    for run in 0..args.runs {
        let mut clients = args.clients.clone();
        let shift = run % clients.len().max(1);
        clients.rotate_left(shift);
        for (w, workload) in workloads.iter().enumerate() {
            for client in &clients {
                let (records, took) = match w {
                    0 | 1 => {
                        let per = if w == 0 { 1000 } else { 10_000 };
                        let topic = unique_topic("txn-bench");
                        runtime.block_on(create(&admin, &topic));
                        let took = if client == "klamm" {
                            runtime.block_on(klamm_produce(&bootstrap, &topic, args.records, per))
                        } else {
                            let (n, per) = (args.records.to_string(), per.to_string());
                            let out = Peer::new(peer_kind(client))
                                .run_for_json(&[
                                    "txn-produce",
                                    "--brokers",
                                    &bootstrap,
                                    "--topic",
                                    &topic,
                                    "--count",
                                    &n,
                                    "--per-transaction",
                                    &per,
                                ])
                                .unwrap_or_else(|e| panic!("{client}: {e}"));
                            seconds(&out)
                        };
                        (args.records, took)
                    }
                    _ => {
                        let output = unique_topic("copy-out");
                        runtime.block_on(create(&admin, &output));
                        let (group, id) = (unique_topic("copy-group"), unique_topic("copy-id"));
                        let n = args.copy_records.to_string();
                        let took = if client == "klamm" {
                            let flags = ["--count", &n, "--commit-every", "1000", "--timeout-ms", "10000"];
                            let exit =
                                Copier::start("bench", &bootstrap, &input, &output, &group, &id, &flags)
                                    .wait(Duration::from_secs(600));
                            assert!(exit.status.success(), "klamm copy: {}", exit.stderr);
                            assert_eq!(
                                exit.summary().map(|s| s.0),
                                Some(args.copy_records),
                                "{}",
                                exit.stdout
                            );
                            exit.seconds().expect("seconds in the summary")
                        } else {
                            let out = Peer::new(peer_kind(client))
                                .run_for_json(&[
                                    "copy",
                                    "--brokers",
                                    &bootstrap,
                                    "--topic",
                                    &input,
                                    "--output",
                                    &output,
                                    "--group",
                                    &group,
                                    "--transactional-id",
                                    &id,
                                    "--count",
                                    &n,
                                    "--commit-every",
                                    "1000",
                                ])
                                .unwrap_or_else(|e| panic!("{client}: {e}"));
                            assert_eq!(out["records"].as_u64(), Some(args.copy_records), "{client}: {out}");
                            seconds(&out)
                        };
                        (args.copy_records, took)
                    }
                };
                let per_second = records as f64 / took;
                eprintln!(
                    "run {} {workload} {client}: {} records/s ({took:.2} s)",
                    run + 1,
                    rate(per_second)
                );
                results.entry((workload.to_string(), client.clone())).or_default().push(per_second);
            }
        }
    }

    println!("| workload | client | records/s (median) | runs |");
    println!("| --- | --- | --- | --- |");
    for workload in workloads {
        for client in &args.clients {
            let Some(runs) = results.get(&(workload.to_string(), client.clone())) else { continue };
            let each: Vec<String> = runs.iter().map(|r| rate(*r)).collect();
            println!("| {workload} | {client} | **{}** | {} |", rate(median(runs.clone())), each.join(", "));
        }
    }
}
