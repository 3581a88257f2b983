//! `klamm::Producer` through a proxy that cuts connections and stalls responses: an idempotent
//! produce of 100k records loses nothing, duplicates nothing and keeps per-partition order.
//! Its own file, so its second broker and load do not run beside the other producer tests.

mod producer_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm::protocol::compression::Compression;
use klamm::{Producer, ProducerConfig};
use klamm_tests::{unique_topic, Broker, BrokerKind, FaultProxy, NegotiatedConnection};
use producer_common::{check_read_back, produce_all_from};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_survives_cut_connections_without_loss_or_duplicates() {
    klamm_tests::log_to_stderr_if_asked();
    let (proxy, broker) =
        FaultProxy::in_front_of(Broker::builder(BrokerKind::Kafka)).expect("a broker behind a proxy");
    let topic = unique_topic("produce-faults");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 4);
    let config = ProducerConfig::new(&proxy.bootstrap())
        .compression(Compression::Lz4)
        .batch_size(32 * 1024)
        .with_client(|c| c.request_timeout(Duration::from_secs(3)));
    let producer = Producer::new(config).unwrap();
    let cutter = proxy.cut_every(Duration::from_millis(300));
    let count = 100_000;
    let started = Instant::now();
    let mut delivered = produce_all_from(&producer, &topic, 0..count / 2).await;
    // Responses stop for longer than the request timeout: requests time out, their connection
    // is closed, and the batches are sent again.
    proxy.stall(Duration::from_secs(4));
    delivered.extend(produce_all_from(&producer, &topic, count / 2..count).await);
    let cuts = cutter.stop();
    producer.close(Duration::from_secs(30)).await;
    eprintln!("100k idempotent records with {cuts} connection cuts in {:?}", started.elapsed());
    assert!(cuts >= 2, "the proxy cut only {cuts} times");
    // Offsets per partition are consecutive in send order: nothing lost, nothing duplicated.
    let mut next: HashMap<i32, i64> = HashMap::new();
    for (i, (p, offset)) in delivered.iter().enumerate() {
        if let Some(want) = next.get(p) {
            assert_eq!(offset, want, "record {i} in partition {p}");
        }
        next.insert(*p, offset + 1);
    }
    check_read_back(&broker.bootstrap(), &topic, count);
}
