//! The recording proxy sees a real client's traffic: requests and responses paired, the client
//! kept on the proxy after bootstrap, and fixtures written that decode with `klamm-protocol`.

use klamm_protocol::api::api_versions::ApiVersionsResponse;
use klamm_protocol::{ApiKey, Message};
use klamm_tests::{
    unique_topic, Broker, BrokerKind, ConsumeOptions, Peer, PeerRecord, ProduceOptions, RecordingProxy,
};

#[test]
fn records_a_peer_session_through_the_proxy() {
    let (proxy, _broker) = RecordingProxy::in_front_of(Broker::builder(BrokerKind::Kafka)).unwrap();
    let peer = Peer::rdkafka();
    let topic = unique_topic("proxy");
    peer.create_topic(&proxy.bootstrap(), &topic, 1);
    let sent = [PeerRecord::new("k", "v").header("h", "x")];
    peer.produce(&proxy.bootstrap(), &topic, &ProduceOptions::default(), &sent);
    let got = peer.consume(&proxy.bootstrap(), &topic, 1, &ConsumeOptions::default());
    assert_eq!(got.len(), 1);

    let frames = proxy.frames();
    let keys: Vec<ApiKey> = frames.iter().map(|f| f.api_key).collect();
    // Produce and Fetch go to the partition leader at its advertised address: seeing them here
    // proves the client never left the proxy.
    for key in [ApiKey::API_VERSIONS, ApiKey::METADATA, ApiKey::CREATE_TOPICS, ApiKey::PRODUCE, ApiKey::FETCH]
    {
        assert!(keys.contains(&key), "no {} recorded; saw {keys:?}", key.name().unwrap());
    }

    // Each ApiVersions response decodes at its request's version (header v0: the correlation
    // id, then the body).
    for f in frames.iter().filter(|f| f.api_key == ApiKey::API_VERSIONS) {
        let response = f.response.clone().unwrap();
        assert_eq!(&response[..4], &f.correlation_id.to_be_bytes());
        let body = ApiVersionsResponse::decode_body(response.slice(4..), f.api_version).unwrap();
        assert_eq!(body.error_code, 0);
        assert!(body.api_keys.iter().any(|k| k.api_key == ApiKey::PRODUCE.0));
    }

    let dir = tempfile::tempdir().unwrap();
    let written = proxy.save_fixtures(dir.path(), peer.name()).unwrap();
    let api_versions = frames.iter().find(|f| f.api_key == ApiKey::API_VERSIONS).unwrap();
    let stem = format!("ApiVersions-v{}", api_versions.api_version);
    let request = dir.path().join("rdkafka").join(format!("{stem}-request.bin"));
    let response = dir.path().join("rdkafka").join(format!("{stem}-response.bin"));
    assert!(written.contains(&request) && written.contains(&response), "{written:?}");
    assert_eq!(std::fs::read(&request).unwrap(), api_versions.request);
}

#[test]
fn replays_a_recorded_request_on_a_raw_connection() {
    let broker = Broker::shared_kafka();
    let proxy = RecordingProxy::start(broker.addr()).unwrap();
    // A RawConnection through the proxy: one ApiVersions v3.
    let mut conn = klamm_tests::RawConnection::connect(proxy.bootstrap()).unwrap();
    let request = klamm_protocol::api::api_versions::ApiVersionsRequest {
        client_software_name: "klamm-tests".into(),
        client_software_version: "1".into(),
        ..Default::default()
    };
    conn.send(3, &request);
    let frames = proxy.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].api_key, frames[0].api_version), (ApiKey::API_VERSIONS, 3));

    // The recorded request, replayed straight to the broker, gets an equivalent answer.
    let replayed = broker.connect().send_raw(&frames[0].request).unwrap();
    assert_eq!(replayed[..4], frames[0].response.as_ref().unwrap()[..4]);
    let body = ApiVersionsResponse::decode_body(replayed.slice(4..), 3).unwrap();
    assert_eq!(body.error_code, 0);
}
