//! Metadata (key 3): the brokers of the cluster and the partitions, leaders and replicas of
//! topics.
//!
//! Versions:
//! - v0: a list of topics, where an empty list means every topic.
//! - v1: `topics` may be null, meaning every topic; an empty list now means none. The response
//!   adds the broker `rack`, `controller_id` and `is_internal`.
//! - v2: the response adds `cluster_id`.
//! - v3: the response adds `throttle_time_ms`.
//! - v4: the request adds `allow_auto_topic_creation`.
//! - v5: the response adds `offline_replicas`.
//! - v6: same layout; responses are sent before throttling.
//! - v7: the response adds the partition `leader_epoch`.
//! - v8: the request adds `include_cluster_authorized_operations` and
//!   `include_topic_authorized_operations`; the response the matching bit fields.
//! - v9: first flexible version.
//! - v10: topic ids in request and response; the request topic name may be null (brokers did
//!   not implement lookup by id before v12).
//! - v11: `include_cluster_authorized_operations` and `cluster_authorized_operations` are gone
//!   (see DescribeCluster, KIP-700).
//! - v12: topics may be looked up by id; the response topic name may be null.
//!
//! `topics: None` asks for every topic; version 0 cannot carry a null list, so there every
//! topic is asked for with `Some(vec![])`.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::{ApiKey, Uuid};

const FIRST_FLEXIBLE: i16 = 9;

/// Asks for the metadata of some or all topics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataRequest {
    /// The topics to describe; None for every topic (null allowed in v1+).
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_vec()"))]
    pub topics: Option<Vec<MetadataRequestTopic>>,
    /// Whether the broker may create requested topics that do not exist (v4+).
    pub allow_auto_topic_creation: bool,
    /// Whether to return the cluster's authorized operations (v8-10).
    pub include_cluster_authorized_operations: bool,
    /// Whether to return each topic's authorized operations (v8+).
    pub include_topic_authorized_operations: bool,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for MetadataRequest {
    fn default() -> Self {
        Self {
            topics: None,
            allow_auto_topic_creation: true,
            include_cluster_authorized_operations: false,
            include_topic_authorized_operations: false,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One topic to describe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataRequestTopic {
    /// The topic id (v10+, ignorable).
    pub topic_id: Uuid,
    /// The topic name (null allowed in v10+).
    pub name: Option<String>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for MetadataRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.array_field(self.topics.as_deref(), version >= 1, flexible, "topics", version, |w, t| {
            t.encode(w, version)
        })?;
        if version >= 4 {
            w.bool(self.allow_auto_topic_creation);
        } else if !self.allow_auto_topic_creation {
            w.unavailable("allow_auto_topic_creation", version)?;
        }
        if (8..=10).contains(&version) {
            w.bool(self.include_cluster_authorized_operations);
        } else if self.include_cluster_authorized_operations {
            w.unavailable("include_cluster_authorized_operations", version)?;
        }
        if version >= 8 {
            w.bool(self.include_topic_authorized_operations);
        } else if self.include_topic_authorized_operations {
            w.unavailable("include_topic_authorized_operations", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self {
            topics: r.array_field(version >= 1, flexible, "topics", |r| {
                MetadataRequestTopic::decode(r, version)
            })?,
            ..Self::default()
        };
        if version >= 4 {
            out.allow_auto_topic_creation = r.bool()?;
        }
        if (8..=10).contains(&version) {
            out.include_cluster_authorized_operations = r.bool()?;
        }
        if version >= 8 {
            out.include_topic_authorized_operations = r.bool()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for MetadataRequestTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // Ignorable: dropped silently before v10.
        if version >= 10 {
            w.uuid(&self.topic_id);
        }
        w.string_field(self.name.as_deref(), version >= 10, flexible, "name", version)?;
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataRequestTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 10 {
            out.topic_id = r.uuid()?;
        }
        out.name = r.string_field(version >= 10, flexible, "name")?;
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for MetadataRequest {
    const API_KEY: ApiKey = ApiKey::METADATA;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Request for MetadataRequest {
    type Response = MetadataResponse;
}

/// The cluster's brokers and the requested topics' partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataResponse {
    /// Throttle time in milliseconds (v3+, ignorable).
    pub throttle_time_ms: i32,
    /// The brokers of the cluster.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub brokers: Vec<MetadataResponseBroker>,
    /// The cluster id (v2+, ignorable).
    pub cluster_id: Option<String>,
    /// The controller's broker id, or -1 (v1+, ignorable).
    pub controller_id: i32,
    /// The topics.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<MetadataResponseTopic>,
    /// Bit field of the operations the client may perform on the cluster (v8-10).
    pub cluster_authorized_operations: i32,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for MetadataResponse {
    fn default() -> Self {
        Self {
            throttle_time_ms: 0,
            brokers: Vec::new(),
            cluster_id: None,
            controller_id: -1,
            topics: Vec::new(),
            cluster_authorized_operations: i32::MIN,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataResponseBroker {
    /// The broker id.
    pub node_id: i32,
    /// The broker's host name.
    pub host: String,
    /// The broker's port.
    pub port: i32,
    /// The broker's rack, if it has one (v1+, ignorable).
    pub rack: Option<String>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataResponseTopic {
    /// The topic's error code, 0 for none.
    pub error_code: i16,
    /// The topic name; null for an unknown topic asked for by id (null allowed in v12+).
    pub name: Option<String>,
    /// The topic id; zero for an unknown topic asked for by name (v10+, ignorable).
    pub topic_id: Uuid,
    /// Whether the topic is internal (v1+, ignorable).
    pub is_internal: bool,
    /// The topic's partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<MetadataResponsePartition>,
    /// Bit field of the operations the client may perform on the topic (v8+).
    pub topic_authorized_operations: i32,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for MetadataResponseTopic {
    fn default() -> Self {
        Self {
            error_code: 0,
            name: None,
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: Vec::new(),
            topic_authorized_operations: i32::MIN,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// One partition's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataResponsePartition {
    /// The partition's error code, 0 for none.
    pub error_code: i16,
    /// The partition index.
    pub partition_index: i32,
    /// The leader's broker id.
    pub leader_id: i32,
    /// The leader epoch, or -1 (v7+, ignorable).
    pub leader_epoch: i32,
    /// All brokers holding a replica.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub replica_nodes: Vec<i32>,
    /// The brokers in sync with the leader.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub isr_nodes: Vec<i32>,
    /// The brokers whose replica is offline (v5+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub offline_replicas: Vec<i32>,
    /// Tagged fields this crate does not know (v9+).
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for MetadataResponsePartition {
    fn default() -> Self {
        Self {
            error_code: 0,
            partition_index: 0,
            leader_id: 0,
            leader_epoch: -1,
            replica_nodes: Vec::new(),
            isr_nodes: Vec::new(),
            offline_replicas: Vec::new(),
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

impl Encode for MetadataResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        // throttle_time_ms, cluster_id and controller_id are ignorable.
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
        w.array(&self.brokers, flexible, |w, b| b.encode(w, version))?;
        if version >= 2 {
            w.nullable_string(self.cluster_id.as_deref(), flexible)?;
        }
        if version >= 1 {
            w.i32(self.controller_id);
        }
        w.array(&self.topics, flexible, |w, t| t.encode(w, version))?;
        if (8..=10).contains(&version) {
            w.i32(self.cluster_authorized_operations);
        } else if self.cluster_authorized_operations != i32::MIN {
            w.unavailable("cluster_authorized_operations", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self::default();
        if version >= 3 {
            out.throttle_time_ms = r.i32()?;
        }
        out.brokers = r.array(flexible, "brokers", |r| MetadataResponseBroker::decode(r, version))?;
        if version >= 2 {
            out.cluster_id = r.nullable_string(flexible)?;
        }
        if version >= 1 {
            out.controller_id = r.i32()?;
        }
        out.topics = r.array(flexible, "topics", |r| MetadataResponseTopic::decode(r, version))?;
        if (8..=10).contains(&version) {
            out.cluster_authorized_operations = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for MetadataResponseBroker {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i32(self.node_id);
        w.string(&self.host, flexible)?;
        w.i32(self.port);
        // Ignorable: dropped silently in v0.
        if version >= 1 {
            w.nullable_string(self.rack.as_deref(), flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataResponseBroker {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out =
            Self { node_id: r.i32()?, host: r.string(flexible, "host")?, port: r.i32()?, ..Self::default() };
        if version >= 1 {
            out.rack = r.nullable_string(flexible)?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for MetadataResponseTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i16(self.error_code);
        w.string_field(self.name.as_deref(), version >= 12, flexible, "name", version)?;
        // topic_id and is_internal are ignorable.
        if version >= 10 {
            w.uuid(&self.topic_id);
        }
        if version >= 1 {
            w.bool(self.is_internal);
        }
        w.array(&self.partitions, flexible, |w, p| p.encode(w, version))?;
        if version >= 8 {
            w.i32(self.topic_authorized_operations);
        } else if self.topic_authorized_operations != i32::MIN {
            w.unavailable("topic_authorized_operations", version)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataResponseTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out = Self {
            error_code: r.i16()?,
            name: r.string_field(version >= 12, flexible, "name")?,
            ..Self::default()
        };
        if version >= 10 {
            out.topic_id = r.uuid()?;
        }
        if version >= 1 {
            out.is_internal = r.bool()?;
        }
        out.partitions =
            r.array(flexible, "partitions", |r| MetadataResponsePartition::decode(r, version))?;
        if version >= 8 {
            out.topic_authorized_operations = r.i32()?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Encode for MetadataResponsePartition {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        w.i16(self.error_code);
        w.i32(self.partition_index);
        w.i32(self.leader_id);
        // leader_epoch and offline_replicas are ignorable.
        if version >= 7 {
            w.i32(self.leader_epoch);
        }
        w.i32_array(&self.replica_nodes, flexible)?;
        w.i32_array(&self.isr_nodes, flexible)?;
        if version >= 5 {
            w.i32_array(&self.offline_replicas, flexible)?;
        }
        if flexible {
            w.unknown_tagged_fields(&self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

impl Decode for MetadataResponsePartition {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut out =
            Self { error_code: r.i16()?, partition_index: r.i32()?, leader_id: r.i32()?, ..Self::default() };
        if version >= 7 {
            out.leader_epoch = r.i32()?;
        }
        out.replica_nodes = r.array(flexible, "replica_nodes", |r| r.i32())?;
        out.isr_nodes = r.array(flexible, "isr_nodes", |r| r.i32())?;
        if version >= 5 {
            out.offline_replicas = r.array(flexible, "offline_replicas", |r| r.i32())?;
        }
        if flexible {
            out.unknown_tagged_fields = r.unknown_tagged_fields()?;
        }
        Ok(out)
    }
}

impl Message for MetadataResponse {
    const API_KEY: ApiKey = ApiKey::METADATA;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    const FIRST_FLEXIBLE: Option<i16> = Some(FIRST_FLEXIBLE);
}

impl Response for MetadataResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode, round_trip_all_versions};
    use bytes::Bytes;

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<MetadataRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<MetadataResponse>();
    }

    #[test]
    fn requests_by_hand() {
        // v0: an empty list means every topic.
        let all_v0 = MetadataRequest { topics: Some(vec![]), ..Default::default() };
        assert_eq!(&encode(&all_v0, 0).unwrap()[..], &[0, 0, 0, 0]);
        assert_eq!(MetadataRequest::decode_body(Bytes::from_static(&[0, 0, 0, 0]), 0).unwrap(), all_v0);
        // v0 cannot carry null.
        assert_eq!(
            encode(&MetadataRequest::default(), 0),
            Err(EncodeError::NullNotAllowed { field: "topics", version: 0 })
        );
        // v4: null means every topic.
        let all_v4 = MetadataRequest::default();
        let bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(&encode(&all_v4, 4).unwrap()[..], bytes);
        assert_eq!(MetadataRequest::decode_body(Bytes::from_static(bytes), 4).unwrap(), all_v4);

        // v10: one topic by name with a zero id, flexible.
        let req = MetadataRequest {
            topics: Some(vec![MetadataRequestTopic { name: Some("t".into()), ..Default::default() }]),
            allow_auto_topic_creation: false,
            include_cluster_authorized_operations: true,
            include_topic_authorized_operations: false,
            ..Default::default()
        };
        let mut expected = vec![2]; // one topic
        expected.extend_from_slice(&[0; 16]); // topic_id
        expected.extend_from_slice(&[
            2, b't', // name
            0,    // topic tags
            0,    // allow_auto_topic_creation
            1,    // include_cluster_authorized_operations
            0,    // include_topic_authorized_operations
            0,    // request tags
        ]);
        assert_eq!(&encode(&req, 10).unwrap()[..], &expected[..]);
        assert_eq!(MetadataRequest::decode_body(Bytes::from(expected), 10).unwrap(), req);
    }

    #[test]
    fn v1_response_by_hand() {
        let resp = MetadataResponse {
            brokers: vec![MetadataResponseBroker {
                node_id: 1,
                host: "h".into(),
                port: 9092,
                rack: None,
                ..Default::default()
            }],
            controller_id: 1,
            topics: vec![MetadataResponseTopic {
                error_code: 0,
                name: Some("t".into()),
                is_internal: true,
                partitions: vec![MetadataResponsePartition {
                    error_code: 0,
                    partition_index: 0,
                    leader_id: 1,
                    replica_nodes: vec![1, 2],
                    isr_nodes: vec![1],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 1,             // one broker
            0, 0, 0, 1,             // node_id
            0, 1, b'h',             // host
            0, 0, 0x23, 0x84,       // port 9092
            0xff, 0xff,             // rack: null
            0, 0, 0, 1,             // controller_id
            0, 0, 0, 1,             // one topic
            0, 0,                   // error_code
            0, 1, b't',             // name
            1,                      // is_internal
            0, 0, 0, 1,             // one partition
            0, 0,                   // error_code
            0, 0, 0, 0,             // partition_index
            0, 0, 0, 1,             // leader_id
            0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, // replica_nodes [1, 2]
            0, 0, 0, 1, 0, 0, 0, 1, // isr_nodes [1]
        ];
        assert_eq!(&encode(&resp, 1).unwrap()[..], expected);
        assert_eq!(MetadataResponse::decode_body(Bytes::copy_from_slice(expected), 1).unwrap(), resp);
    }

    #[test]
    fn unavailable_fields_are_refused() {
        let req =
            MetadataRequest { topics: Some(vec![]), allow_auto_topic_creation: false, ..Default::default() };
        assert_eq!(
            encode(&req, 3),
            Err(EncodeError::FieldNotAvailable { field: "allow_auto_topic_creation", version: 3 })
        );
        let req = MetadataRequest { include_cluster_authorized_operations: true, ..Default::default() };
        assert_eq!(
            encode(&req, 11),
            Err(EncodeError::FieldNotAvailable {
                field: "include_cluster_authorized_operations",
                version: 11
            })
        );
        let resp = MetadataResponse { cluster_authorized_operations: 0, ..Default::default() };
        assert_eq!(
            encode(&resp, 11),
            Err(EncodeError::FieldNotAvailable { field: "cluster_authorized_operations", version: 11 })
        );
        // A null topic name needs v12 in responses.
        let resp = MetadataResponse { topics: vec![MetadataResponseTopic::default()], ..Default::default() };
        assert_eq!(encode(&resp, 11), Err(EncodeError::NullNotAllowed { field: "name", version: 11 }));
        assert!(encode(&resp, 12).is_ok());
    }
}
