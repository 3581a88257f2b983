//! API keys: the number in every request header that names the request type.

use std::fmt;

/// An API key. A newtype rather than an enum so that keys this crate does not know (from newer
/// brokers) can still be carried and printed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey(pub i16);

impl ApiKey {
    /// Produce (key 0).
    pub const PRODUCE: ApiKey = ApiKey(0);
    /// Fetch (key 1).
    pub const FETCH: ApiKey = ApiKey(1);
    /// ListOffsets (key 2).
    pub const LIST_OFFSETS: ApiKey = ApiKey(2);
    /// Metadata (key 3).
    pub const METADATA: ApiKey = ApiKey(3);
    /// LeaderAndIsr (key 4).
    pub const LEADER_AND_ISR: ApiKey = ApiKey(4);
    /// StopReplica (key 5).
    pub const STOP_REPLICA: ApiKey = ApiKey(5);
    /// UpdateMetadata (key 6).
    pub const UPDATE_METADATA: ApiKey = ApiKey(6);
    /// ControlledShutdown (key 7).
    pub const CONTROLLED_SHUTDOWN: ApiKey = ApiKey(7);
    /// OffsetCommit (key 8).
    pub const OFFSET_COMMIT: ApiKey = ApiKey(8);
    /// OffsetFetch (key 9).
    pub const OFFSET_FETCH: ApiKey = ApiKey(9);
    /// FindCoordinator (key 10).
    pub const FIND_COORDINATOR: ApiKey = ApiKey(10);
    /// JoinGroup (key 11).
    pub const JOIN_GROUP: ApiKey = ApiKey(11);
    /// Heartbeat (key 12).
    pub const HEARTBEAT: ApiKey = ApiKey(12);
    /// LeaveGroup (key 13).
    pub const LEAVE_GROUP: ApiKey = ApiKey(13);
    /// SyncGroup (key 14).
    pub const SYNC_GROUP: ApiKey = ApiKey(14);
    /// DescribeGroups (key 15).
    pub const DESCRIBE_GROUPS: ApiKey = ApiKey(15);
    /// ListGroups (key 16).
    pub const LIST_GROUPS: ApiKey = ApiKey(16);
    /// SaslHandshake (key 17).
    pub const SASL_HANDSHAKE: ApiKey = ApiKey(17);
    /// ApiVersions (key 18).
    pub const API_VERSIONS: ApiKey = ApiKey(18);
    /// CreateTopics (key 19).
    pub const CREATE_TOPICS: ApiKey = ApiKey(19);
    /// DeleteTopics (key 20).
    pub const DELETE_TOPICS: ApiKey = ApiKey(20);
    /// DeleteRecords (key 21).
    pub const DELETE_RECORDS: ApiKey = ApiKey(21);
    /// InitProducerId (key 22).
    pub const INIT_PRODUCER_ID: ApiKey = ApiKey(22);
    /// OffsetForLeaderEpoch (key 23).
    pub const OFFSET_FOR_LEADER_EPOCH: ApiKey = ApiKey(23);
    /// AddPartitionsToTxn (key 24).
    pub const ADD_PARTITIONS_TO_TXN: ApiKey = ApiKey(24);
    /// AddOffsetsToTxn (key 25).
    pub const ADD_OFFSETS_TO_TXN: ApiKey = ApiKey(25);
    /// EndTxn (key 26).
    pub const END_TXN: ApiKey = ApiKey(26);
    /// WriteTxnMarkers (key 27).
    pub const WRITE_TXN_MARKERS: ApiKey = ApiKey(27);
    /// TxnOffsetCommit (key 28).
    pub const TXN_OFFSET_COMMIT: ApiKey = ApiKey(28);
    /// DescribeAcls (key 29).
    pub const DESCRIBE_ACLS: ApiKey = ApiKey(29);
    /// CreateAcls (key 30).
    pub const CREATE_ACLS: ApiKey = ApiKey(30);
    /// DeleteAcls (key 31).
    pub const DELETE_ACLS: ApiKey = ApiKey(31);
    /// DescribeConfigs (key 32).
    pub const DESCRIBE_CONFIGS: ApiKey = ApiKey(32);
    /// AlterConfigs (key 33).
    pub const ALTER_CONFIGS: ApiKey = ApiKey(33);
    /// AlterReplicaLogDirs (key 34).
    pub const ALTER_REPLICA_LOG_DIRS: ApiKey = ApiKey(34);
    /// DescribeLogDirs (key 35).
    pub const DESCRIBE_LOG_DIRS: ApiKey = ApiKey(35);
    /// SaslAuthenticate (key 36).
    pub const SASL_AUTHENTICATE: ApiKey = ApiKey(36);
    /// CreatePartitions (key 37).
    pub const CREATE_PARTITIONS: ApiKey = ApiKey(37);
    /// CreateDelegationToken (key 38).
    pub const CREATE_DELEGATION_TOKEN: ApiKey = ApiKey(38);
    /// RenewDelegationToken (key 39).
    pub const RENEW_DELEGATION_TOKEN: ApiKey = ApiKey(39);
    /// ExpireDelegationToken (key 40).
    pub const EXPIRE_DELEGATION_TOKEN: ApiKey = ApiKey(40);
    /// DescribeDelegationToken (key 41).
    pub const DESCRIBE_DELEGATION_TOKEN: ApiKey = ApiKey(41);
    /// DeleteGroups (key 42).
    pub const DELETE_GROUPS: ApiKey = ApiKey(42);
    /// ElectLeaders (key 43).
    pub const ELECT_LEADERS: ApiKey = ApiKey(43);
    /// IncrementalAlterConfigs (key 44).
    pub const INCREMENTAL_ALTER_CONFIGS: ApiKey = ApiKey(44);
    /// AlterPartitionReassignments (key 45).
    pub const ALTER_PARTITION_REASSIGNMENTS: ApiKey = ApiKey(45);
    /// ListPartitionReassignments (key 46).
    pub const LIST_PARTITION_REASSIGNMENTS: ApiKey = ApiKey(46);
    /// OffsetDelete (key 47).
    pub const OFFSET_DELETE: ApiKey = ApiKey(47);
    /// DescribeClientQuotas (key 48).
    pub const DESCRIBE_CLIENT_QUOTAS: ApiKey = ApiKey(48);
    /// AlterClientQuotas (key 49).
    pub const ALTER_CLIENT_QUOTAS: ApiKey = ApiKey(49);
    /// DescribeUserScramCredentials (key 50).
    pub const DESCRIBE_USER_SCRAM_CREDENTIALS: ApiKey = ApiKey(50);
    /// AlterUserScramCredentials (key 51).
    pub const ALTER_USER_SCRAM_CREDENTIALS: ApiKey = ApiKey(51);
    /// Vote (key 52).
    pub const VOTE: ApiKey = ApiKey(52);
    /// BeginQuorumEpoch (key 53).
    pub const BEGIN_QUORUM_EPOCH: ApiKey = ApiKey(53);
    /// EndQuorumEpoch (key 54).
    pub const END_QUORUM_EPOCH: ApiKey = ApiKey(54);
    /// DescribeQuorum (key 55).
    pub const DESCRIBE_QUORUM: ApiKey = ApiKey(55);
    /// AlterPartition (key 56).
    pub const ALTER_PARTITION: ApiKey = ApiKey(56);
    /// UpdateFeatures (key 57).
    pub const UPDATE_FEATURES: ApiKey = ApiKey(57);
    /// Envelope (key 58).
    pub const ENVELOPE: ApiKey = ApiKey(58);
    /// FetchSnapshot (key 59).
    pub const FETCH_SNAPSHOT: ApiKey = ApiKey(59);
    /// DescribeCluster (key 60).
    pub const DESCRIBE_CLUSTER: ApiKey = ApiKey(60);
    /// DescribeProducers (key 61).
    pub const DESCRIBE_PRODUCERS: ApiKey = ApiKey(61);
    /// BrokerRegistration (key 62).
    pub const BROKER_REGISTRATION: ApiKey = ApiKey(62);
    /// BrokerHeartbeat (key 63).
    pub const BROKER_HEARTBEAT: ApiKey = ApiKey(63);
    /// UnregisterBroker (key 64).
    pub const UNREGISTER_BROKER: ApiKey = ApiKey(64);
    /// DescribeTransactions (key 65).
    pub const DESCRIBE_TRANSACTIONS: ApiKey = ApiKey(65);
    /// ListTransactions (key 66).
    pub const LIST_TRANSACTIONS: ApiKey = ApiKey(66);
    /// AllocateProducerIds (key 67).
    pub const ALLOCATE_PRODUCER_IDS: ApiKey = ApiKey(67);
    /// ConsumerGroupHeartbeat (key 68).
    pub const CONSUMER_GROUP_HEARTBEAT: ApiKey = ApiKey(68);
    /// ConsumerGroupDescribe (key 69).
    pub const CONSUMER_GROUP_DESCRIBE: ApiKey = ApiKey(69);
    /// ControllerRegistration (key 70).
    pub const CONTROLLER_REGISTRATION: ApiKey = ApiKey(70);
    /// GetTelemetrySubscriptions (key 71).
    pub const GET_TELEMETRY_SUBSCRIPTIONS: ApiKey = ApiKey(71);
    /// PushTelemetry (key 72).
    pub const PUSH_TELEMETRY: ApiKey = ApiKey(72);
    /// AssignReplicasToDirs (key 73).
    pub const ASSIGN_REPLICAS_TO_DIRS: ApiKey = ApiKey(73);
    /// ListClientMetricsResources (key 74).
    pub const LIST_CLIENT_METRICS_RESOURCES: ApiKey = ApiKey(74);
    /// DescribeTopicPartitions (key 75).
    pub const DESCRIBE_TOPIC_PARTITIONS: ApiKey = ApiKey(75);
    /// ShareGroupHeartbeat (key 76).
    pub const SHARE_GROUP_HEARTBEAT: ApiKey = ApiKey(76);
    /// ShareGroupDescribe (key 77).
    pub const SHARE_GROUP_DESCRIBE: ApiKey = ApiKey(77);
    /// ShareFetch (key 78).
    pub const SHARE_FETCH: ApiKey = ApiKey(78);
    /// ShareAcknowledge (key 79).
    pub const SHARE_ACKNOWLEDGE: ApiKey = ApiKey(79);
    /// AddRaftVoter (key 80).
    pub const ADD_RAFT_VOTER: ApiKey = ApiKey(80);
    /// RemoveRaftVoter (key 81).
    pub const REMOVE_RAFT_VOTER: ApiKey = ApiKey(81);
    /// UpdateRaftVoter (key 82).
    pub const UPDATE_RAFT_VOTER: ApiKey = ApiKey(82);
    /// InitializeShareGroupState (key 83).
    pub const INITIALIZE_SHARE_GROUP_STATE: ApiKey = ApiKey(83);
    /// ReadShareGroupState (key 84).
    pub const READ_SHARE_GROUP_STATE: ApiKey = ApiKey(84);
    /// WriteShareGroupState (key 85).
    pub const WRITE_SHARE_GROUP_STATE: ApiKey = ApiKey(85);
    /// DeleteShareGroupState (key 86).
    pub const DELETE_SHARE_GROUP_STATE: ApiKey = ApiKey(86);
    /// ReadShareGroupStateSummary (key 87).
    pub const READ_SHARE_GROUP_STATE_SUMMARY: ApiKey = ApiKey(87);

    /// The API's name as Apache Kafka spells it, or `None` for a key this crate does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "Produce",
            1 => "Fetch",
            2 => "ListOffsets",
            3 => "Metadata",
            4 => "LeaderAndIsr",
            5 => "StopReplica",
            6 => "UpdateMetadata",
            7 => "ControlledShutdown",
            8 => "OffsetCommit",
            9 => "OffsetFetch",
            10 => "FindCoordinator",
            11 => "JoinGroup",
            12 => "Heartbeat",
            13 => "LeaveGroup",
            14 => "SyncGroup",
            15 => "DescribeGroups",
            16 => "ListGroups",
            17 => "SaslHandshake",
            18 => "ApiVersions",
            19 => "CreateTopics",
            20 => "DeleteTopics",
            21 => "DeleteRecords",
            22 => "InitProducerId",
            23 => "OffsetForLeaderEpoch",
            24 => "AddPartitionsToTxn",
            25 => "AddOffsetsToTxn",
            26 => "EndTxn",
            27 => "WriteTxnMarkers",
            28 => "TxnOffsetCommit",
            29 => "DescribeAcls",
            30 => "CreateAcls",
            31 => "DeleteAcls",
            32 => "DescribeConfigs",
            33 => "AlterConfigs",
            34 => "AlterReplicaLogDirs",
            35 => "DescribeLogDirs",
            36 => "SaslAuthenticate",
            37 => "CreatePartitions",
            38 => "CreateDelegationToken",
            39 => "RenewDelegationToken",
            40 => "ExpireDelegationToken",
            41 => "DescribeDelegationToken",
            42 => "DeleteGroups",
            43 => "ElectLeaders",
            44 => "IncrementalAlterConfigs",
            45 => "AlterPartitionReassignments",
            46 => "ListPartitionReassignments",
            47 => "OffsetDelete",
            48 => "DescribeClientQuotas",
            49 => "AlterClientQuotas",
            50 => "DescribeUserScramCredentials",
            51 => "AlterUserScramCredentials",
            52 => "Vote",
            53 => "BeginQuorumEpoch",
            54 => "EndQuorumEpoch",
            55 => "DescribeQuorum",
            56 => "AlterPartition",
            57 => "UpdateFeatures",
            58 => "Envelope",
            59 => "FetchSnapshot",
            60 => "DescribeCluster",
            61 => "DescribeProducers",
            62 => "BrokerRegistration",
            63 => "BrokerHeartbeat",
            64 => "UnregisterBroker",
            65 => "DescribeTransactions",
            66 => "ListTransactions",
            67 => "AllocateProducerIds",
            68 => "ConsumerGroupHeartbeat",
            69 => "ConsumerGroupDescribe",
            70 => "ControllerRegistration",
            71 => "GetTelemetrySubscriptions",
            72 => "PushTelemetry",
            73 => "AssignReplicasToDirs",
            74 => "ListClientMetricsResources",
            75 => "DescribeTopicPartitions",
            76 => "ShareGroupHeartbeat",
            77 => "ShareGroupDescribe",
            78 => "ShareFetch",
            79 => "ShareAcknowledge",
            80 => "AddRaftVoter",
            81 => "RemoveRaftVoter",
            82 => "UpdateRaftVoter",
            83 => "InitializeShareGroupState",
            84 => "ReadShareGroupState",
            85 => "WriteShareGroupState",
            86 => "DeleteShareGroupState",
            87 => "ReadShareGroupStateSummary",
            _ => return None,
        })
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({})", self.0),
            None => write!(f, "ApiKey({})", self.0),
        }
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
