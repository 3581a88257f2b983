//! `klamm::Client` against real brokers: bootstrap, topic metadata on first use, invalidation,
//! per-kind connections, an unknown topic, and a bootstrap list where nothing listens.

use std::time::{Duration, Instant};

use klamm::protocol::ErrorCode;
use klamm::{Client, ClientConfig, ConnectionKind, ErrorKind};
use klamm_tests::{free_port, unique_topic, Broker, BrokerKind, NegotiatedConnection};

async fn metadata_flow(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let name = kind.name();
    // The first bootstrap entry has nothing behind it: the client must move on to the next.
    let dead = format!("127.0.0.1:{}", free_port().expect("a free port"));
    let config = ClientConfig::new(&format!("{dead},{}", broker.bootstrap())).allow_auto_create_topics(false);
    let client = Client::connect(config).await.unwrap_or_else(|e| panic!("{name}: connect: {e}"));
    let snapshot = client.metadata();
    assert!(!snapshot.brokers.is_empty(), "{name}: no brokers in {snapshot:?}");

    let topic = unique_topic("client-metadata");
    NegotiatedConnection::connect(broker.addr()).create_topic(&topic, 3);
    let meta = client.topic(&topic).await.unwrap_or_else(|e| panic!("{name}: topic: {e}"));
    assert_eq!(meta.partition_count(), 3, "{name}");
    let (leader, _epoch) = client.leader(&topic, 2).await.expect("partition 2 has a leader");
    assert!(snapshot.brokers.contains_key(&leader) || client.metadata().broker(leader).is_some());

    // Cached: the same Arc comes back until invalidated.
    let again = client.topic(&topic).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&meta, &again), "{name}: second lookup was not cached");
    client.invalidate_topic(&topic);
    let fresh = client.topic(&topic).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&meta, &fresh), "{name}: invalidation did not refetch");

    // Connections are per kind.
    let control = client.connection(leader, ConnectionKind::Control).await.unwrap();
    let produce = client.connection(leader, ConnectionKind::Produce).await.unwrap();
    let produce_again = client.connection(leader, ConnectionKind::Produce).await.unwrap();
    assert_eq!(control.addr(), produce.addr());
    assert_eq!(produce.addr(), produce_again.addr());

    let missing = unique_topic("never-created");
    let err = client.topic(&missing).await.expect_err("the topic does not exist");
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{name}: {err}");
    assert!(err.to_string().contains(&missing), "{err}");
    let err = client.leader(&topic, 3).await.expect_err("partition 3 does not exist");
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{name}: {err}");

    client.close().await;
    let err = client.topic(&topic).await.expect_err("closed");
    assert!(err.is_user_error(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_client_metadata() {
    metadata_flow(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_client_metadata() {
    metadata_flow(BrokerKind::Tansu).await;
}

#[tokio::test]
async fn no_reachable_bootstrap_broker_fails_in_bounded_time() {
    let servers: Vec<String> =
        (0..3).map(|_| format!("127.0.0.1:{}", free_port().expect("a free port"))).collect();
    let config = ClientConfig::new(&servers.join(",")).connect_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = Client::connect(config).await.expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(7), "took {:?}", started.elapsed());
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
    assert!(err.is_retriable());
}

#[tokio::test]
async fn invalid_configuration_is_a_config_error() {
    for config in [ClientConfig::new(""), ClientConfig::new("no-port"), ClientConfig::new("host:99999")] {
        let err = Client::new(config).expect_err("invalid");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    }
}
