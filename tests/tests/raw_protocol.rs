//! klamm-protocol speaks the admin and discovery APIs with live brokers, Apache Kafka and tansu,
//! request by request on a raw connection:
//!
//! - ApiVersions: the broker's answer at the highest common version decodes, lists every API a
//!   client needs with a version both sides implement, and agrees with the v0 answer.
//! - CreateTopics: a new topic with 3 partitions is created with the asked layout (and an id
//!   from v7); creating it again answers TOPIC_ALREADY_EXISTS (36) in that topic's result.
//! - Metadata: for every topic and for one topic, at the highest common version and at v9 and
//!   v1, the answer names the broker at its advertised address, the topic with its 3
//!   partitions, each led by that broker, and (where the version has them) the same cluster id,
//!   controller and topic id at every version.
//!
//! Versions are negotiated as a client does: the highest version of each API that both the
//! broker's ApiVersions answer and klamm-protocol's `Message::MAX_VERSION` allow.

use klamm_protocol::api::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use klamm_protocol::api::create_topics::CreateTopicsRequest;
use klamm_protocol::api::fetch::FetchRequest;
use klamm_protocol::api::find_coordinator::FindCoordinatorRequest;
use klamm_protocol::api::heartbeat::HeartbeatRequest;
use klamm_protocol::api::init_producer_id::InitProducerIdRequest;
use klamm_protocol::api::join_group::JoinGroupRequest;
use klamm_protocol::api::list_offsets::ListOffsetsRequest;
use klamm_protocol::api::metadata::{MetadataRequest, MetadataResponse};
use klamm_protocol::api::offset_commit::OffsetCommitRequest;
use klamm_protocol::api::offset_fetch::OffsetFetchRequest;
use klamm_protocol::api::produce::ProduceRequest;
use klamm_protocol::api::sync_group::SyncGroupRequest;
use klamm_protocol::{ApiKey, ErrorCode, Message, Uuid};
use klamm_tests::{
    api_versions_request, unique_topic, ApiVersionTable, Broker, BrokerKind, NegotiatedConnection,
};

/// The APIs a producing, consuming, group-joining client needs, each with the highest common
/// version as negotiated from `table`; panics naming any API without one.
fn client_api_versions(table: &ApiVersionTable) -> Vec<(ApiKey, i16)> {
    vec![
        (ApiKey::API_VERSIONS, table.version::<ApiVersionsRequest>()),
        (ApiKey::METADATA, table.version::<MetadataRequest>()),
        (ApiKey::CREATE_TOPICS, table.version::<CreateTopicsRequest>()),
        (ApiKey::PRODUCE, table.version::<ProduceRequest>()),
        (ApiKey::FETCH, table.version::<FetchRequest>()),
        (ApiKey::LIST_OFFSETS, table.version::<ListOffsetsRequest>()),
        (ApiKey::FIND_COORDINATOR, table.version::<FindCoordinatorRequest>()),
        (ApiKey::JOIN_GROUP, table.version::<JoinGroupRequest>()),
        (ApiKey::SYNC_GROUP, table.version::<SyncGroupRequest>()),
        (ApiKey::HEARTBEAT, table.version::<HeartbeatRequest>()),
        (ApiKey::OFFSET_COMMIT, table.version::<OffsetCommitRequest>()),
        (ApiKey::OFFSET_FETCH, table.version::<OffsetFetchRequest>()),
        (ApiKey::INIT_PRODUCER_ID, table.version::<InitProducerIdRequest>()),
    ]
}

fn api_versions(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let mut conn = NegotiatedConnection::connect(broker.addr());
    let version = conn.version::<ApiVersionsRequest>();
    assert!(version >= 3, "{}: ApiVersions negotiated at v{version}", kind.name());
    let newest: ApiVersionsResponse = conn.send(&api_versions_request());
    assert_eq!(newest.error_code, 0, "{} ApiVersions v{version}", kind.name());
    let table = ApiVersionTable::new(&newest);

    let negotiated = client_api_versions(&table);
    eprintln!("{}: negotiated {negotiated:?}", kind.name());
    // Versions old enough to lack what today's clients rely on would mean a broken answer.
    let at_least = |key: ApiKey, min: i16| {
        let v = negotiated.iter().find(|(k, _)| *k == key).unwrap().1;
        assert!(v >= min, "{}: {} negotiated at v{v}, expected v{min}+", kind.name(), key.name().unwrap());
    };
    at_least(ApiKey::METADATA, 9);
    at_least(ApiKey::PRODUCE, 7);
    at_least(ApiKey::FETCH, 11);

    for api in &newest.api_keys {
        assert!(api.min_version >= 0 && api.min_version <= api.max_version, "{}: {api:?}", kind.name());
    }
    let mut keys: Vec<i16> = newest.api_keys.iter().map(|a| a.api_key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), newest.api_keys.len(), "{}: an API is listed twice", kind.name());

    // v0, the layout any client can send first, lists the same APIs with the same ranges.
    let v0 = conn.send_at(0, &ApiVersionsRequest::default());
    assert_eq!(v0.error_code, 0);
    let ranges = |r: &ApiVersionsResponse| {
        let mut v: Vec<(i16, i16, i16)> =
            r.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ranges(&v0), ranges(&newest), "{}: v0 and v{version} disagree", kind.name());
}

#[test]
fn kafka_api_versions() {
    api_versions(BrokerKind::Kafka);
}

#[test]
fn tansu_api_versions() {
    api_versions(BrokerKind::Tansu);
}

fn create_topics(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let mut conn = NegotiatedConnection::connect(broker.addr());
    let version = conn.version::<CreateTopicsRequest>();
    let topic = unique_topic("raw-create");

    let created = conn.create_topic_request(&topic, 3);
    assert_eq!(created.topics.len(), 1, "{}: {created:?}", kind.name());
    let result = &created.topics[0];
    assert_eq!(result.name, topic);
    assert_eq!(result.error_code, 0, "{}: {result:?}", kind.name());
    if version >= 5 {
        assert_eq!((result.num_partitions, result.replication_factor), (3, 1), "{}: {result:?}", kind.name());
    }
    if version >= 7 {
        assert!(!result.topic_id.is_zero(), "{}: no topic id in {result:?}", kind.name());
    }
    let metadata = conn.wait_for_leaders(&topic, 3);
    if version >= 7 && conn.version::<MetadataRequest>() >= 10 {
        assert_eq!(topic_of(&metadata, &topic).topic_id, result.topic_id, "{}", kind.name());
    }

    let again = conn.create_topic_request(&topic, 3);
    let result = again.topics.iter().find(|t| t.name == topic);
    let result = result.unwrap_or_else(|| panic!("{}: no result for {topic}: {again:?}", kind.name()));
    assert_eq!(
        ErrorCode::from(result.error_code),
        ErrorCode::TOPIC_ALREADY_EXISTS,
        "{}: creating {topic} twice: {result:?}",
        kind.name()
    );
    assert_eq!(result.error_code, 36);
}

#[test]
fn kafka_create_topics() {
    create_topics(BrokerKind::Kafka);
}

#[test]
fn tansu_create_topics() {
    create_topics(BrokerKind::Tansu);
}

fn topic_of<'a>(
    metadata: &'a MetadataResponse,
    topic: &str,
) -> &'a klamm_protocol::api::metadata::MetadataResponseTopic {
    let found = metadata.topics.iter().find(|t| t.name.as_deref() == Some(topic));
    found.unwrap_or_else(|| panic!("{topic} missing from {:?}", metadata.topics))
}

/// What every Metadata answer must say about the cluster and `topic` at `version`.
fn check_metadata(kind: BrokerKind, broker: &Broker, version: i16, metadata: &MetadataResponse, topic: &str) {
    let ctx = format!("{} Metadata v{version}", kind.name());
    assert_eq!(metadata.brokers.len(), 1, "{ctx}: {:?}", metadata.brokers);
    let node = &metadata.brokers[0];
    assert_eq!((node.host.as_str(), node.port), ("127.0.0.1", i32::from(broker.advertised_port())), "{ctx}");
    if version >= 1 {
        assert!(node.rack.is_none(), "{ctx}: {node:?}");
    }
    let t = topic_of(metadata, topic);
    assert_eq!(t.error_code, 0, "{ctx}: {t:?}");
    assert!(!t.is_internal, "{ctx}");
    let mut indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2], "{ctx}: {t:?}");
    for p in &t.partitions {
        assert_eq!(p.error_code, 0, "{ctx}: {p:?}");
        assert_eq!(p.leader_id, node.node_id, "{ctx}: {p:?}");
        assert_eq!(p.replica_nodes, [node.node_id], "{ctx}: {p:?}");
        assert_eq!(p.isr_nodes, [node.node_id], "{ctx}: {p:?}");
        if version >= 5 {
            assert!(p.offline_replicas.is_empty(), "{ctx}: {p:?}");
        }
        if version >= 7 {
            assert!(p.leader_epoch >= 0, "{ctx}: {p:?}");
        }
    }
    if version >= 10 {
        assert!(!t.topic_id.is_zero(), "{ctx}: no topic id");
    }
}

fn metadata(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let mut conn = NegotiatedConnection::connect(broker.addr());
    let topic = unique_topic("raw-metadata");
    conn.create_topic(&topic, 3);

    let highest = conn.version::<MetadataRequest>();
    let mut versions = vec![highest, 9, 1];
    versions.dedup();
    // What must not change from version to version.
    let mut cluster_ids = Vec::new();
    let mut controllers = Vec::new();
    let mut topic_ids: Vec<Uuid> = Vec::new();
    for version in versions {
        assert!(
            conn.versions().broker_supports::<MetadataRequest>(version),
            "{} lacks Metadata v{version}",
            kind.name()
        );
        let all = conn.metadata_at(version, None);
        check_metadata(kind, broker, version, &all, &topic);
        let one = conn.metadata_at(version, Some(&[&topic]));
        check_metadata(kind, broker, version, &one, &topic);
        assert_eq!(
            one.topics.len(),
            1,
            "{} Metadata v{version} for one topic: {:?}",
            kind.name(),
            one.topics
        );
        assert_eq!(all.brokers, one.brokers);
        assert!(all.topics.len() >= one.topics.len());

        for r in [&all, &one] {
            if version >= 1 {
                controllers.push(r.controller_id);
            }
            if version >= 2 {
                cluster_ids.push(r.cluster_id.clone());
            }
            if version >= 10 {
                topic_ids.push(topic_of(r, &topic).topic_id);
            }
        }
    }
    cluster_ids.dedup();
    controllers.dedup();
    topic_ids.dedup();
    assert_eq!(controllers.len(), 1, "{}: controller ids {controllers:?}", kind.name());
    assert_eq!(cluster_ids.len(), 1, "{}: cluster ids {cluster_ids:?}", kind.name());
    assert!(cluster_ids[0].as_ref().is_some_and(|id| !id.is_empty()), "{}: {cluster_ids:?}", kind.name());
    if kind == BrokerKind::Kafka {
        // The harness formats every Kafka cluster with this id.
        assert_eq!(cluster_ids[0].as_deref(), Some("a2xhbW0tdGVzdC1jbHN0cg"));
    }
    assert!(topic_ids.len() <= 1, "{}: topic ids {topic_ids:?}", kind.name());

    // A topic that does not exist, with auto-creation off, is named with its error.
    let missing = unique_topic("raw-missing");
    let answer = conn.metadata(Some(&[&missing]));
    let t = topic_of(&answer, &missing);
    assert_eq!(
        ErrorCode::from(t.error_code),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        "{}: {t:?}",
        kind.name()
    );
    assert!(t.partitions.is_empty(), "{}: {t:?}", kind.name());
}

#[test]
fn kafka_metadata_old_and_new_versions() {
    metadata(BrokerKind::Kafka);
}

#[test]
fn tansu_metadata_old_and_new_versions() {
    metadata(BrokerKind::Tansu);
}

#[test]
fn negotiation_caps_at_the_codec() {
    // The table never offers a version the codec lacks, even when the broker has newer ones.
    let response = ApiVersionsResponse {
        api_keys: vec![klamm_protocol::api::api_versions::ApiVersion {
            api_key: ApiKey::METADATA.0,
            min_version: 0,
            max_version: 99,
            ..Default::default()
        }],
        ..Default::default()
    };
    let table = ApiVersionTable::new(&response);
    assert_eq!(table.highest_common::<MetadataRequest>(), Some(MetadataRequest::MAX_VERSION));
    assert_eq!(table.highest_common::<ProduceRequest>(), None);
}
