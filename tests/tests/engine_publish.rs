//! `EventPublisher` against Kafka: events published with the standard headers, producer
//! settings from `KAFKA_PRODUCER_*` variables and the metrics layer, read back with librdkafka.

use std::time::Duration;

use klamm_engine::{EngineConfig, EventPublisher, PublishLogging, PublishMetrics, Published};
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

/// A publisher configured through the seeds' variables: a `conversation-id` header on what it
/// publishes, and events the broker refuses (larger than the topic's `max.message.bytes`) on
/// `KAFKA_PRODUCER_DLQ_TOPIC`, waiting (the error comes back) and with `KAFKA_PRODUCER_ASYNC`
/// (publish returns at once, the failure reaches the dead-letter topic and the metrics).
#[test]
fn conversation_ids_and_the_publish_dead_letter_topic() {
    let broker = Broker::shared_kafka();
    let brokers = broker.bootstrap();
    let ok_topic = unique_topic("engine-publish-ok");
    let small_topic = unique_topic("engine-publish-small");
    let dlq = unique_topic("engine-publish-dlq");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let seeds = |asynchronous: &'static str| {
        EngineConfig::from_vars([
            ("KAFKA_BROKERS", brokers.as_str()),
            ("KAFKA_PRODUCER_DLQ_TOPIC", dlq.as_str()),
            ("KAFKA_PRODUCER_ASYNC", asynchronous),
            ("KAFKA_PRODUCER_REQUIRE_ACKS", "-1"),
            ("KAFKA_PRODUCER_MAX_ATTEMPTS", "3"),
            ("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"),
        ])
        .unwrap()
    };
    // Incompressible, and four times the small topic's limit.
    let big: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let metrics = PublishMetrics::default();
    let (ok_id, failed_ids) = rt.block_on(async {
        let admin = klamm::Admin::connect(klamm::ClientConfig::new(&brokers)).await.unwrap();
        let topics = [
            klamm::NewTopic::new(&ok_topic, 1, 1),
            klamm::NewTopic::new(&small_topic, 1, 1).config("max.message.bytes", "1024"),
            klamm::NewTopic::new(&dlq, 1, 1),
        ];
        for (name, created) in admin.create_topics(&topics).await {
            created.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for t in [&ok_topic, &small_topic, &dlq] {
            admin.wait_for_topic(t, Duration::from_secs(30)).await.unwrap();
        }

        let waiting =
            EventPublisher::from_config(&seeds("false"), "chat-service").unwrap().layer(PublishLogging);
        let ok =
            waiting.event(&ok_topic, "message-sent").key("ws-1").conversation_id("conv-1").build().unwrap();
        let ok_id = ok.event_id.clone();
        let published = waiting.publish(ok).await.unwrap();
        assert!(published.metadata().is_some(), "{published:?}");

        let refused = waiting
            .event(&small_topic, "message-sent")
            .key("ws-2")
            .conversation_id("conv-2")
            .value(big.clone())
            .build()
            .unwrap();
        let refused_id = refused.event_id.clone();
        let e = waiting.publish(refused).await.expect_err("larger than max.message.bytes");
        assert!(!e.is_retriable(), "{e}");
        assert!(waiting.close(Duration::from_secs(10)).await);

        let queued = EventPublisher::from_config(&seeds("true"), "chat-service")
            .unwrap()
            .layer(PublishLogging)
            .layer(metrics.clone());
        let late = queued
            .event(&small_topic, "message-sent")
            .key("ws-3")
            .conversation_id("conv-3")
            .value(big.clone())
            .build()
            .unwrap();
        let late_id = late.event_id.clone();
        let published = queued.publish(late).await.unwrap();
        assert_eq!(published, Published::Queued);
        assert!(queued.close(Duration::from_secs(30)).await);
        (ok_id, [refused_id, late_id])
    });
    assert_eq!(metrics.snapshot(), (0, 1));
    assert_eq!(metrics.dead_lettered(), (1, 0));

    let header = |r: &klamm_tests::PeerRecord, name: &str| {
        let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
        String::from_utf8(v.unwrap_or_else(|| panic!("no {name} header: {r:?}"))).unwrap()
    };
    let read = Peer::rdkafka().consume(&brokers, &ok_topic, 1, &ConsumeOptions::default());
    assert_eq!(read.len(), 1);
    assert_eq!(header(&read[0], "conversation-id"), "conv-1");
    assert_eq!(header(&read[0], "event-id"), ok_id);
    assert_eq!(header(&read[0], "correlation-id"), ok_id);

    let dead = Peer::rdkafka().consume(&brokers, &dlq, 2, &ConsumeOptions::default());
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (i, r) in dead.iter().enumerate() {
        assert_eq!(header(r, "event-id"), failed_ids[i]);
        assert_eq!(header(r, "conversation-id"), format!("conv-{}", i + 2));
        assert_eq!(header(r, "event-type"), "message-sent");
        assert_eq!(header(r, "source"), "chat-service");
        assert_eq!(header(r, "original-topic"), small_topic);
        assert_eq!(header(r, "error-class"), "permanent");
        assert!(header(r, "error").contains("TOO_LARGE"), "{}", header(r, "error"));
        assert!(header(r, "timestamp").ends_with('Z'));
        assert_eq!(r.key.as_deref(), Some(format!("ws-{}", i + 2).as_bytes()));
        assert_eq!(r.value.as_deref(), Some(&big[..]));
    }
}
