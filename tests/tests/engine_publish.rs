//! `EventPublisher` against Kafka: events published with the standard headers, producer
//! settings from `KAFKA_PRODUCER_*` variables and the metrics layer, read back with librdkafka.

use std::time::Duration;

use klamm_engine::{EngineConfig, EventPublisher, PublishLogging, PublishMetrics};
use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer};

#[test]
fn published_events_carry_the_standard_headers() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let topic = unique_topic("engine-publish");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = EngineConfig::from_vars([
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_PRODUCER_COMPRESSION_TYPE", "lz4"),
        ("KAFKA_PRODUCER_ACKS", "all"),
    ])
    .unwrap();
    let metrics = PublishMetrics::default();
    let sent = rt.block_on(async {
        let admin = klamm::Admin::connect(klamm::ClientConfig::new(&brokers)).await.unwrap();
        admin.create_topics(&[klamm::NewTopic::new(&topic, 1, 1)]).await[0].1.as_ref().unwrap();
        admin.wait_for_topic(&topic, Duration::from_secs(30)).await.unwrap();
        let publisher = EventPublisher::from_config(&config, "billing-service")
            .unwrap()
            .layer(PublishLogging)
            .layer(metrics.clone());
        let mut sent = Vec::new();
        for i in 0..3 {
            let event = publisher
                .event(&topic, "invoice-paid")
                .key(format!("ws-{i}"))
                .correlation_id(format!("req-{i}"))
                .schema_version("2")
                .json(&serde_json::json!({"workspace_id": format!("ws-{i}"), "amount": i * 10}))
                .unwrap()
                .build()
                .unwrap();
            let id = event.event_id.clone();
            let meta = publisher.publish(event).await.unwrap().metadata().expect("acknowledged");
            sent.push((id, meta.offset));
        }
        publisher.producer().close(Duration::from_secs(10)).await;
        sent
    });
    assert_eq!(metrics.snapshot(), (3, 0));

    let read = Peer::rdkafka().consume(&brokers, &topic, 3, &ConsumeOptions::default());
    assert_eq!(read.len(), 3);
    for (i, r) in read.iter().enumerate() {
        let header = |name: &str| {
            let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
            String::from_utf8(v.unwrap_or_else(|| panic!("no {name} header: {r:?}"))).unwrap()
        };
        assert_eq!(r.offset, Some(sent[i].1));
        assert_eq!(header("event-id"), sent[i].0);
        assert_eq!(header("event-type"), "invoice-paid");
        assert_eq!(header("correlation-id"), format!("req-{i}"));
        assert_eq!(header("source"), "billing-service");
        assert_eq!(header("schema-version"), "2");
        let ts = header("timestamp");
        assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert_eq!(r.key.as_deref(), Some(format!("ws-{i}").as_bytes()));
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v["amount"], i * 10);
    }
    let ids: std::collections::BTreeSet<&String> = sent.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 3);
}
