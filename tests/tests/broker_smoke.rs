//! The brokers start, answer ApiVersions at old and new versions through `klamm-protocol`, and
//! list the APIs every client needs.

use klamm_protocol::api::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use klamm_protocol::ApiKey;
use klamm_tests::{Broker, BrokerKind};

fn request() -> ApiVersionsRequest {
    ApiVersionsRequest {
        client_software_name: "klamm-tests".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn assert_lists_core_apis(kind: BrokerKind, version: i16, response: &ApiVersionsResponse) {
    assert_eq!(response.error_code, 0, "{} ApiVersions v{version}: error code", kind.name());
    for key in [ApiKey::PRODUCE, ApiKey::FETCH, ApiKey::METADATA, ApiKey::API_VERSIONS] {
        let listed = response.api_keys.iter().find(|k| k.api_key == key.0);
        let listed = listed.unwrap_or_else(|| {
            panic!(
                "{} ApiVersions v{version} does not list {}: {:?}",
                kind.name(),
                key.name().unwrap(),
                response.api_keys
            )
        });
        assert!(listed.min_version <= listed.max_version, "{listed:?}");
    }
}

fn api_versions_old_and_new(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let mut conn = broker.connect();
    // v0: the layout every broker understands; v3+: flexible, with the client's name.
    let v0 = conn.send(0, &request());
    assert_lists_core_apis(kind, 0, &v0);
    let v3 = conn.send(3, &request());
    assert_lists_core_apis(kind, 3, &v3);
    assert_eq!(v0.api_keys.len(), v3.api_keys.len(), "v0 and v3 list the same APIs");

    // The highest version both sides implement must work too.
    let theirs = v3.api_keys.iter().find(|k| k.api_key == ApiKey::API_VERSIONS.0).unwrap();
    let highest = theirs.max_version.min(4);
    let newest = conn.send(highest, &request());
    assert_lists_core_apis(kind, highest, &newest);
}

#[test]
fn kafka_answers_api_versions_v0_and_v3() {
    api_versions_old_and_new(BrokerKind::Kafka);
}

#[test]
fn tansu_answers_api_versions_v0_and_v3() {
    api_versions_old_and_new(BrokerKind::Tansu);
}

#[test]
fn kafka_answers_a_raw_frame() {
    // Header v2 (flexible ApiVersions v3): key 18, version 3, correlation id 77, client id
    // "raw", no tags; body: compact strings "t" and "1", no tags.
    let frame = [0, 18, 0, 3, 0, 0, 0, 77, 0, 3, b'r', b'a', b'w', 0, 2, b't', 2, b'1', 0];
    let response = Broker::shared_kafka().connect().send_raw(&frame).unwrap();
    assert_eq!(&response[..4], &77i32.to_be_bytes(), "correlation id echoed");
    // ApiVersions responses use header v0, so the body follows the correlation id directly.
    let body = klamm_protocol::Message::decode_body(response.slice(4..), 3);
    let body: ApiVersionsResponse = body.unwrap();
    assert_lists_core_apis(BrokerKind::Kafka, 3, &body);
}

#[test]
fn kafka_extra_listeners_advertise_their_own_port() {
    use klamm_protocol::api::metadata::MetadataRequest;
    use klamm_tests::BrokerBuilder;

    let broker = BrokerBuilder::new(BrokerKind::Kafka)
        .listener("EXTRA", "PLAINTEXT")
        .listener("second", "PLAINTEXT")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for name in ["extra", "SECOND"] {
        let addr = broker.listener_addr(name);
        assert_ne!(addr, broker.bootstrap(), "{name} has a port of its own");
        let metadata = rt.block_on(async {
            let conn = klamm::Connection::connect(&addr, klamm::ConnectionConfig::default()).await.unwrap();
            conn.send(&MetadataRequest::default()).await.unwrap()
        });
        // A broker answers Metadata with the endpoints of the listener the request came in on.
        let ports: Vec<String> = metadata.brokers.iter().map(|b| format!("{}:{}", b.host, b.port)).collect();
        assert_eq!(ports, [addr], "listener {name}");
    }
}
