//! The peers and the brokers work: each peer produces a few records with headers to each
//! broker, and both peers read them back unchanged. If this fails, no interop test can pass.

use klamm_tests::{
    unique_topic, Broker, BrokerKind, ConsumeOptions, Peer, PeerKind, PeerRecord, ProduceOptions,
};

fn records() -> Vec<PeerRecord> {
    // Old, fixed timestamps on purpose: the test brokers keep records forever.
    vec![
        PeerRecord::new("key-0", "value-0")
            .header("trace", "abc")
            .header("empty", Vec::new())
            .timestamp(1_600_000_000_000),
        PeerRecord::new("key-1", vec![0u8, 1, 2, 255]).header("trace", "def").timestamp(1_600_000_000_001),
        PeerRecord {
            key: None,
            value: None,
            headers: vec![("null-value".into(), None)],
            ..PeerRecord::default()
        }
        .timestamp(1_600_000_000_002),
    ]
}

fn round_trip(broker_kind: BrokerKind, producer: PeerKind) {
    let broker = Broker::shared(broker_kind);
    let topic = unique_topic(&format!("smoke-{}", producer.name()));
    let producer = Peer::new(producer);
    // One partition keeps the order of the records.
    producer.create_topic(&broker.bootstrap(), &topic, 1);
    let sent = records();
    let deliveries = producer.produce(&broker.bootstrap(), &topic, &ProduceOptions::default(), &sent);
    let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, [0, 1, 2], "{} on {}: {deliveries:?}", producer.name(), broker_kind.name());

    for consumer in [Peer::rdkafka(), Peer::java()] {
        let got = consumer.consume(&broker.bootstrap(), &topic, sent.len(), &ConsumeOptions::default());
        let context = format!("{} -> {} on {}", producer.name(), consumer.name(), broker_kind.name());
        assert_eq!(got.len(), sent.len(), "{context}: {got:?}");
        for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
            assert_eq!(g.content(), s.content(), "{context}: record {i}");
            assert_eq!(g.offset, Some(i as i64), "{context}: record {i}");
            assert_eq!(g.partition, Some(0), "{context}: record {i}");
            assert_eq!(g.timestamp, s.timestamp, "{context}: record {i}");
            assert_eq!(g.timestamp_type.as_deref(), Some("CreateTime"), "{context}: record {i}");
        }
    }
}

#[test]
fn rdkafka_round_trip_on_kafka() {
    round_trip(BrokerKind::Kafka, PeerKind::Rdkafka);
}

#[test]
fn java_round_trip_on_kafka() {
    round_trip(BrokerKind::Kafka, PeerKind::Java);
}

#[test]
fn rdkafka_round_trip_on_tansu() {
    round_trip(BrokerKind::Tansu, PeerKind::Rdkafka);
}

#[test]
fn java_round_trip_on_tansu() {
    round_trip(BrokerKind::Tansu, PeerKind::Java);
}

/// `Peer::with_properties` reaches the clients the peer makes: a security protocol no client
/// knows makes the peer fail, naming the property.
fn properties_reach_the_clients(kind: PeerKind) {
    let broker = Broker::shared_kafka();
    let topic = unique_topic(&format!("props-{}", kind.name()));
    Peer::new(kind).create_topic(&broker.bootstrap(), &topic, 1);
    let peer = Peer::new(kind).with_properties([("security.protocol", "NO_SUCH_PROTOCOL")]);
    let e = peer
        .try_consume(&broker.bootstrap(), &topic, 1, &ConsumeOptions::default())
        .expect_err("an unknown security protocol must fail");
    assert!(e.to_string().contains("security.protocol"), "{} peer: {e}", kind.name());
    // Without the bad property the same peer reads the (empty) topic fine.
    let fine = Peer::new(kind).try_consume(
        &broker.bootstrap(),
        &topic,
        1,
        &ConsumeOptions { idle_timeout: std::time::Duration::from_millis(500), ..ConsumeOptions::default() },
    );
    assert!(fine.is_ok(), "{} peer: {fine:?}", kind.name());
}

#[test]
fn rdkafka_peer_takes_client_properties() {
    properties_reach_the_clients(PeerKind::Rdkafka);
}

#[test]
fn java_peer_takes_client_properties() {
    properties_reach_the_clients(PeerKind::Java);
}
