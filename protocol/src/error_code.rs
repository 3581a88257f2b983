//! Kafka error codes: every code Apache Kafka defines, with its name, whether Kafka treats it
//! as retriable, and a one-line description.
//!
//! [`ErrorCode`] is a plain `i16` newtype, so a code this crate does not know (one added by a
//! newer broker) is carried through unchanged; it is named "UNKNOWN" and is not retriable.
//!
//! The codes, names and retriable flags are Kafka's own (`Errors` in the Java client; a code is
//! retriable when its exception is a `RetriableException`), up to code 136. The descriptions are
//! short summaries written for this crate.

use std::fmt;

/// An error code as carried in responses.
///
/// Compare with the associated constants (`code == ErrorCode::NOT_COORDINATOR`); use
/// [`ErrorCode::is_retriable`] to decide whether trying again (often after refreshing metadata or
/// finding the coordinator again) can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorCode(pub i16);

/// The doc suffix of a retriable code.
macro_rules! retriable_note {
    (true) => {
        " Retriable."
    };
    (false) => {
        ""
    };
}

/// Declares one constant per code plus the lookup table, from lines of
/// `NAME = code, retriable, "description";`.
macro_rules! error_codes {
    ($($name:ident = $code:literal, $retriable:tt, $desc:literal;)*) => {
        impl ErrorCode {
            $(
                #[doc = concat!("`", stringify!($code), "`: ", $desc, retriable_note!($retriable))]
                pub const $name: ErrorCode = ErrorCode($code);
            )*

            /// Every code Kafka defines, in ascending order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];
        }

        /// Name, retriable flag and description of a known code.
        fn lookup(code: i16) -> Option<(&'static str, bool, &'static str)> {
            match code {
                $($code => Some((stringify!($name), $retriable, $desc)),)*
                _ => None,
            }
        }
    };
}

error_codes! {
    UNKNOWN_SERVER_ERROR = -1, false, "The broker hit an unexpected error while handling the request.";
    NONE = 0, false, "No error.";
    OFFSET_OUT_OF_RANGE = 1, false, "The requested offset is outside the range the partition holds.";
    CORRUPT_MESSAGE = 2, true, "A record failed validation: bad checksum, too large, null key on a compacted topic, or otherwise corrupt.";
    UNKNOWN_TOPIC_OR_PARTITION = 3, true, "This broker does not host the topic or partition.";
    INVALID_FETCH_SIZE = 4, false, "The requested fetch size is not valid.";
    LEADER_NOT_AVAILABLE = 5, true, "The partition has no leader right now, typically during a leader election.";
    NOT_LEADER_OR_FOLLOWER = 6, true, "This broker is not the leader of the partition (or, for replica requests, not a replica of it).";
    REQUEST_TIMED_OUT = 7, true, "The request timed out.";
    BROKER_NOT_AVAILABLE = 8, false, "The broker is not available.";
    REPLICA_NOT_AVAILABLE = 9, true, "A replica of the partition is not available.";
    MESSAGE_TOO_LARGE = 10, false, "A record or batch is larger than the broker accepts.";
    STALE_CONTROLLER_EPOCH = 11, false, "The request came from a controller with an outdated epoch.";
    OFFSET_METADATA_TOO_LARGE = 12, false, "The metadata string committed with an offset is too large.";
    NETWORK_EXCEPTION = 13, true, "The connection was lost before the response arrived.";
    COORDINATOR_LOAD_IN_PROGRESS = 14, true, "The coordinator is still loading its state.";
    COORDINATOR_NOT_AVAILABLE = 15, true, "The coordinator is not available.";
    NOT_COORDINATOR = 16, true, "This broker is not the coordinator for the group or transaction.";
    INVALID_TOPIC_EXCEPTION = 17, false, "The topic is not valid for this operation (a bad name, or an internal topic).";
    RECORD_LIST_TOO_LARGE = 18, false, "The record batch in a produce request is larger than a log segment.";
    NOT_ENOUGH_REPLICAS = 19, true, "Too few in-sync replicas to accept the write.";
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20, true, "The write was appended, but fewer in-sync replicas than required acknowledged it.";
    INVALID_REQUIRED_ACKS = 21, false, "The acks value of the produce request is not valid.";
    ILLEGAL_GENERATION = 22, false, "The group generation given is not the current one.";
    INCONSISTENT_GROUP_PROTOCOL = 23, false, "The member's protocol type or protocols do not match the group's.";
    INVALID_GROUP_ID = 24, false, "The group id is empty or not valid.";
    UNKNOWN_MEMBER_ID = 25, false, "The coordinator does not know this member id.";
    INVALID_SESSION_TIMEOUT = 26, false, "The session timeout is outside the range the broker allows.";
    REBALANCE_IN_PROGRESS = 27, false, "The group is rebalancing; the member must rejoin.";
    INVALID_COMMIT_OFFSET_SIZE = 28, false, "The offset commit data is too large.";
    TOPIC_AUTHORIZATION_FAILED = 29, false, "Not authorized to access the topic.";
    GROUP_AUTHORIZATION_FAILED = 30, false, "Not authorized to access the group.";
    CLUSTER_AUTHORIZATION_FAILED = 31, false, "Not authorized for this cluster operation.";
    INVALID_TIMESTAMP = 32, false, "A record timestamp is outside the accepted range.";
    UNSUPPORTED_SASL_MECHANISM = 33, false, "The broker does not offer the requested SASL mechanism.";
    ILLEGAL_SASL_STATE = 34, false, "The request is not valid at this point of the SASL exchange.";
    UNSUPPORTED_VERSION = 35, false, "The broker does not support this API version.";
    TOPIC_ALREADY_EXISTS = 36, false, "A topic with this name already exists.";
    INVALID_PARTITIONS = 37, false, "The number of partitions is not valid.";
    INVALID_REPLICATION_FACTOR = 38, false, "The replication factor is not valid.";
    INVALID_REPLICA_ASSIGNMENT = 39, false, "The replica assignment is not valid.";
    INVALID_CONFIG = 40, false, "The configuration is not valid.";
    NOT_CONTROLLER = 41, true, "This node is not the active controller.";
    INVALID_REQUEST = 42, false, "The request is malformed or not valid for this broker; the broker log says more.";
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43, false, "The topic's message format does not support this request.";
    POLICY_VIOLATION = 44, false, "The request breaks a configured policy.";
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45, false, "The broker received a producer sequence number out of order.";
    DUPLICATE_SEQUENCE_NUMBER = 46, false, "The broker received a duplicate producer sequence number.";
    INVALID_PRODUCER_EPOCH = 47, false, "The producer epoch is outdated: a newer producer took over or the transaction expired.";
    INVALID_TXN_STATE = 48, false, "The transactional operation is not valid in the transaction's current state.";
    INVALID_PRODUCER_ID_MAPPING = 49, false, "The producer id is not the one currently assigned to this transactional id.";
    INVALID_TRANSACTION_TIMEOUT = 50, false, "The transaction timeout is above the broker's maximum.";
    CONCURRENT_TRANSACTIONS = 51, true, "Another operation on the same transaction is still in progress.";
    TRANSACTION_COORDINATOR_FENCED = 52, false, "The transaction coordinator that sent the marker is no longer the current one.";
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53, false, "Not authorized to use the transactional id.";
    SECURITY_DISABLED = 54, false, "Security features are disabled on the broker.";
    OPERATION_NOT_ATTEMPTED = 55, false, "The broker skipped this operation because another one in the batch failed.";
    KAFKA_STORAGE_ERROR = 56, true, "A disk error occurred while accessing the log.";
    LOG_DIR_NOT_FOUND = 57, false, "The requested log directory is not in the broker's configuration.";
    SASL_AUTHENTICATION_FAILED = 58, false, "SASL authentication failed.";
    UNKNOWN_PRODUCER_ID = 59, false, "The broker has no state for this producer id, for example after its records expired.";
    REASSIGNMENT_IN_PROGRESS = 60, false, "A partition reassignment is in progress.";
    DELEGATION_TOKEN_AUTH_DISABLED = 61, false, "Delegation tokens are not enabled.";
    DELEGATION_TOKEN_NOT_FOUND = 62, false, "The delegation token was not found.";
    DELEGATION_TOKEN_OWNER_MISMATCH = 63, false, "The principal is not the owner or a renewer of the delegation token.";
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64, false, "Delegation token requests are not allowed on this kind of connection.";
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65, false, "Not authorized for the delegation token operation.";
    DELEGATION_TOKEN_EXPIRED = 66, false, "The delegation token has expired.";
    INVALID_PRINCIPAL_TYPE = 67, false, "The principal type is not supported.";
    NON_EMPTY_GROUP = 68, false, "The group still has members.";
    GROUP_ID_NOT_FOUND = 69, false, "The group does not exist.";
    FETCH_SESSION_ID_NOT_FOUND = 70, true, "The fetch session id is not known.";
    INVALID_FETCH_SESSION_EPOCH = 71, true, "The fetch session epoch is not valid.";
    LISTENER_NOT_FOUND = 72, true, "The leader has no listener matching the one the metadata request arrived on.";
    TOPIC_DELETION_DISABLED = 73, false, "Topic deletion is disabled.";
    FENCED_LEADER_EPOCH = 74, true, "The leader epoch in the request is older than the broker's.";
    UNKNOWN_LEADER_EPOCH = 75, true, "The leader epoch in the request is newer than the broker's.";
    UNSUPPORTED_COMPRESSION_TYPE = 76, false, "The client does not support the partition's compression type.";
    STALE_BROKER_EPOCH = 77, false, "The broker epoch has changed.";
    OFFSET_NOT_AVAILABLE = 78, true, "The new leader's high watermark has not caught up yet, so offsets cannot be served safely.";
    MEMBER_ID_REQUIRED = 79, false, "The member needs a member id before it can join the group.";
    PREFERRED_LEADER_NOT_AVAILABLE = 80, true, "The preferred leader is not available.";
    GROUP_MAX_SIZE_REACHED = 81, false, "The group has reached its maximum number of members.";
    FENCED_INSTANCE_ID = 82, false, "Another member registered with the same group.instance.id; this static member is fenced.";
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83, true, "No eligible leader is available for the partition.";
    ELECTION_NOT_NEEDED = 84, true, "The partition already has its preferred leader; no election is needed.";
    NO_REASSIGNMENT_IN_PROGRESS = 85, false, "No partition reassignment is in progress.";
    GROUP_SUBSCRIBED_TO_TOPIC = 86, false, "The group's offsets for a topic cannot be deleted while it is subscribed to the topic.";
    INVALID_RECORD = 87, false, "The broker rejected a record that failed its validation.";
    UNSTABLE_OFFSET_COMMIT = 88, true, "Pending transactional offsets must be resolved first.";
    THROTTLING_QUOTA_EXCEEDED = 89, true, "The throttling quota has been exceeded.";
    PRODUCER_FENCED = 90, false, "A newer producer with the same transactional id has fenced this one.";
    RESOURCE_NOT_FOUND = 91, false, "The request refers to a resource that does not exist.";
    DUPLICATE_RESOURCE = 92, false, "The request names the same resource more than once.";
    UNACCEPTABLE_CREDENTIAL = 93, false, "The requested credential does not meet the acceptance criteria.";
    INCONSISTENT_VOTER_SET = 94, false, "The sender or receiver of a voter request is not one of the expected voters.";
    INVALID_UPDATE_VERSION = 95, false, "The update version is not valid.";
    FEATURE_UPDATE_FAILED = 96, false, "The finalized features could not be updated because of a server error.";
    PRINCIPAL_DESERIALIZATION_FAILURE = 97, false, "The principal of a forwarded request could not be deserialized.";
    SNAPSHOT_NOT_FOUND = 98, false, "The requested snapshot does not exist.";
    POSITION_OUT_OF_RANGE = 99, false, "The requested position is outside the snapshot.";
    UNKNOWN_TOPIC_ID = 100, true, "This broker does not host a topic with this id.";
    DUPLICATE_BROKER_REGISTRATION = 101, false, "This broker id is already registered.";
    BROKER_ID_NOT_REGISTERED = 102, false, "This broker id is not registered.";
    INCONSISTENT_TOPIC_ID = 103, true, "The topic id in the request does not match the log's.";
    INCONSISTENT_CLUSTER_ID = 104, false, "The cluster id in the request does not match the server's.";
    TRANSACTIONAL_ID_NOT_FOUND = 105, false, "The transactional id does not exist.";
    FETCH_SESSION_TOPIC_ID_ERROR = 106, true, "The fetch session used topic ids inconsistently.";
    INELIGIBLE_REPLICA = 107, false, "The proposed ISR contains a replica that is not eligible.";
    NEW_LEADER_ELECTED = 108, false, "The partition state was updated, but the leader has changed.";
    OFFSET_MOVED_TO_TIERED_STORAGE = 109, false, "The requested offset has moved to tiered storage.";
    FENCED_MEMBER_EPOCH = 110, false, "The member epoch is fenced; the member must give up its partitions and rejoin.";
    UNRELEASED_INSTANCE_ID = 111, false, "Another member still uses this instance id and must leave first.";
    UNSUPPORTED_ASSIGNOR = 112, false, "The group does not support the assignor or its version range.";
    STALE_MEMBER_EPOCH = 113, false, "The member epoch is stale; retry once the heartbeat returns the current one.";
    MISMATCHED_ENDPOINT_TYPE = 114, false, "The request reached an endpoint of the wrong type.";
    UNSUPPORTED_ENDPOINT_TYPE = 115, false, "This endpoint type is not supported yet.";
    UNKNOWN_CONTROLLER_ID = 116, false, "The controller id is not known.";
    UNKNOWN_SUBSCRIPTION_ID = 117, false, "The telemetry subscription id is unknown or outdated.";
    TELEMETRY_TOO_LARGE = 118, false, "The pushed telemetry exceeds the broker's size limit.";
    INVALID_REGISTRATION = 119, false, "The controller considers the broker registration not valid.";
    TRANSACTION_ABORTABLE = 120, false, "The transaction hit an error; abort it to keep using the transactional id.";
    INVALID_RECORD_STATE = 121, false, "The record's state does not allow this acknowledgement.";
    SHARE_SESSION_NOT_FOUND = 122, true, "The share session was not found.";
    INVALID_SHARE_SESSION_EPOCH = 123, true, "The share session epoch is not valid.";
    FENCED_STATE_EPOCH = 124, false, "The share-group state epoch did not match, so the share coordinator refused the request.";
    INVALID_VOTER_KEY = 125, false, "The voter key does not match the receiving replica.";
    DUPLICATE_VOTER = 126, false, "The voter is already in the voter set.";
    VOTER_NOT_FOUND = 127, false, "The voter is not in the voter set.";
    INVALID_REGULAR_EXPRESSION = 128, false, "The regular expression is not valid.";
    REBOOTSTRAP_REQUIRED = 129, false, "The client's metadata is stale; it should bootstrap again.";
    STREAMS_INVALID_TOPOLOGY = 130, false, "The Streams topology is not valid.";
    STREAMS_INVALID_TOPOLOGY_EPOCH = 131, false, "The Streams topology epoch is not valid.";
    STREAMS_TOPOLOGY_FENCED = 132, false, "The Streams topology epoch is outdated.";
    SHARE_SESSION_LIMIT_REACHED = 133, true, "The broker's limit of share sessions has been reached.";
    GROUP_DELETION_FAILED = 134, false, "The group could not be deleted; the per-group error message says why.";
    STREAMS_TOPOLOGY_DESCRIPTION_UPDATE_FAILED = 135, false, "The broker could not apply the Streams topology description update.";
    CONTROLLER_ID_NOT_REGISTERED = 136, false, "The controller id is not registered.";
}

impl ErrorCode {
    /// The numeric code.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Whether this is [`ErrorCode::NONE`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Whether this is any code other than [`ErrorCode::NONE`], known or not.
    pub const fn is_err(self) -> bool {
        self.0 != 0
    }

    /// Whether Kafka defines this code.
    pub fn is_known(self) -> bool {
        lookup(self.0).is_some()
    }

    /// Kafka's name for the code (`"NOT_LEADER_OR_FOLLOWER"`), or `"UNKNOWN"` for a code this
    /// crate does not know.
    pub fn name(self) -> &'static str {
        lookup(self.0).map_or("UNKNOWN", |(name, _, _)| name)
    }

    /// Whether Kafka classes the error as retriable: the same request may succeed later, often
    /// after refreshing metadata or looking up the coordinator again. False for unknown codes.
    pub fn is_retriable(self) -> bool {
        lookup(self.0).is_some_and(|(_, retriable, _)| retriable)
    }

    /// A one-line description of the error.
    pub fn description(self) -> &'static str {
        lookup(self.0).map_or("An error code this crate does not know.", |(_, _, desc)| desc)
    }
}

impl From<i16> for ErrorCode {
    fn from(code: i16) -> Self {
        ErrorCode(code)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Display for ErrorCode {
    /// `NAME (code): description`, e.g. `NOT_COORDINATOR (16): This broker is not ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name(), self.0, self.description())
    }
}

impl std::error::Error for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn spot_checks() {
        let cases = [
            (6, "NOT_LEADER_OR_FOLLOWER", true),
            (15, "COORDINATOR_NOT_AVAILABLE", true),
            (25, "UNKNOWN_MEMBER_ID", false),
            (45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false),
            (59, "UNKNOWN_PRODUCER_ID", false),
            (-1, "UNKNOWN_SERVER_ERROR", false),
            (0, "NONE", false),
            (3, "UNKNOWN_TOPIC_OR_PARTITION", true),
            (99, "POSITION_OUT_OF_RANGE", false),
            (133, "SHARE_SESSION_LIMIT_REACHED", true),
            (136, "CONTROLLER_ID_NOT_REGISTERED", false),
        ];
        for (code, name, retriable) in cases {
            let e = ErrorCode(code);
            assert_eq!(e.name(), name, "code {code}");
            assert_eq!(e.is_retriable(), retriable, "{name}");
        }
        assert_eq!(ErrorCode::NOT_LEADER_OR_FOLLOWER, ErrorCode(6));
        assert_eq!(ErrorCode::UNKNOWN_PRODUCER_ID.code(), 59);
    }

    #[test]
    fn retriable_codes_are_exactly_kafkas() {
        let retriable: Vec<i16> = ErrorCode::ALL.iter().filter(|e| e.is_retriable()).map(|e| e.0).collect();
        assert_eq!(
            retriable,
            [
                2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 41, 51, 56, 70, 71, 72, 74, 75, 78, 80, 83, 84, 88,
                89, 100, 103, 106, 122, 123, 133
            ]
        );
    }

    #[test]
    fn every_code_is_defined_once_with_a_distinct_name() {
        // Kafka's codes run without gaps from -1.
        let codes: Vec<i16> = ErrorCode::ALL.iter().map(|e| e.0).collect();
        assert_eq!(codes, (-1..=136).collect::<Vec<i16>>());
        let names: HashSet<&str> = ErrorCode::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(!names.contains("UNKNOWN"));
        for e in ErrorCode::ALL {
            assert!(e.is_known());
            assert!(e.description().ends_with('.'), "{}", e.name());
        }
    }

    #[test]
    fn unknown_codes_survive() {
        for code in [-2, 137, 1000, i16::MAX, i16::MIN] {
            let e = ErrorCode::from(code);
            assert_eq!(i16::from(e), code);
            assert_eq!(e.name(), "UNKNOWN");
            assert!(!e.is_retriable());
            assert!(!e.is_known());
            assert!(e.is_err());
        }
    }

    #[test]
    fn ok_err_and_display() {
        assert!(ErrorCode::NONE.is_ok());
        assert!(!ErrorCode::NONE.is_err());
        assert!(ErrorCode::default().is_ok());
        assert!(ErrorCode::UNKNOWN_SERVER_ERROR.is_err());
        let shown = ErrorCode::NOT_LEADER_OR_FOLLOWER.to_string();
        assert!(shown.starts_with("NOT_LEADER_OR_FOLLOWER (6): "), "{shown}");
        assert!(ErrorCode(-1).to_string().starts_with("UNKNOWN_SERVER_ERROR (-1): "));
        assert!(ErrorCode(500).to_string().starts_with("UNKNOWN (500): "));
        let boxed: Box<dyn std::error::Error> = Box::new(ErrorCode::NOT_COORDINATOR);
        assert!(boxed.to_string().contains("NOT_COORDINATOR"));
    }
}
