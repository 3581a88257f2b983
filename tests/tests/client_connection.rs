//! `klamm::Connection` against real brokers (Apache Kafka and tansu): connect and negotiate
//! versions, pipeline many requests on one socket, and fail fast where nothing listens.

use std::time::{Duration, Instant};

use klamm::protocol::api::metadata::MetadataRequest;
use klamm::protocol::ApiKey;
use klamm::{Connection, ConnectionConfig, ErrorKind};
use klamm_tests::{free_port, Broker, BrokerKind};

async fn connect_and_pipeline(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let conn = Connection::connect(&broker.bootstrap(), ConnectionConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", kind.name()));

    let metadata = conn.version_for::<MetadataRequest>().expect("a common Metadata version");
    assert!(metadata >= 1, "{}: Metadata v{metadata}", kind.name());
    let (min, max) = conn.broker_versions(ApiKey::API_VERSIONS).expect("ApiVersions is listed");
    assert!(min <= max && max >= 3, "{}: ApiVersions {min}..={max}", kind.name());

    // 200 requests in flight on one socket, all answered and each matched to its caller.
    let request = MetadataRequest { topics: Some(Vec::new()), ..Default::default() };
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let conn = conn.clone();
            let request = request.clone();
            tokio::spawn(async move { conn.send(&request).await })
        })
        .collect();
    for call in calls {
        let response = call.await.expect("no panic").unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        assert!(!response.brokers.is_empty(), "{}: {response:?}", kind.name());
    }
    conn.close().await;
    assert!(conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connection_negotiates_and_pipelines() {
    connect_and_pipeline(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_connection_negotiates_and_pipelines() {
    connect_and_pipeline(BrokerKind::Tansu).await;
}

#[tokio::test]
async fn nothing_listening_fails_with_a_connect_error_in_bounded_time() {
    let port = free_port().expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut config = ConnectionConfig::default();
    config.connect_timeout = Duration::from_secs(3);
    let started = Instant::now();
    let err = Connection::connect(&addr, config).await.expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
    assert!(err.is_retriable());
    assert!(err.to_string().contains(&addr), "{err}");
}
