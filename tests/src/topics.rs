//! Topics with keyed records on a test broker, for the group tests.

use std::time::Duration;

use klamm::{Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};

use crate::{unique_topic, Broker};

/// Creates `topic` on `broker` with `partitions` partitions and one replica.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let client = Client::new(ClientConfig::new(&broker.bootstrap())).unwrap();
    let admin = Admin::new(client.clone());
    for (name, result) in admin.create_topics(&[NewTopic::new(topic, partitions, 1)]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    client.close().await;
}

/// Writes `count` records to `topic` (`key-{i}`, `value-{i}`) and waits for every
/// acknowledgement.
pub async fn produce_keyed(broker: &Broker, topic: &str, count: usize) {
    let producer = Producer::new(ProducerConfig::new(&broker.bootstrap())).unwrap();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("value-{i}")).key(format!("key-{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await;
}

/// On the shared Kafka broker, a new topic named after `prefix` with `partitions` partitions
/// and `records` keyed records, and a new group id: `(broker, topic, group)`. For blocking
/// test code (it runs a runtime of its own).
pub fn shared_topic_and_group(
    prefix: &str,
    partitions: i32,
    records: usize,
) -> (&'static Broker, String, String) {
    let broker = Broker::shared_kafka();
    let topic = unique_topic(prefix);
    let group = unique_topic("g");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        create_topic(broker, &topic, partitions).await;
        produce_keyed(broker, &topic, records).await;
    });
    (broker, topic, group)
}
