//! The consumer protocol's own structures: what a classic-protocol consumer puts in the
//! metadata bytes of JoinGroup (its [`ConsumerProtocolSubscription`]) and what the leader hands
//! out in the assignment bytes of SyncGroup (a [`ConsumerProtocolAssignment`] per member).
//!
//! These are not requests and have no API key. Each is serialized as an `int16` version followed
//! by that version's fields, with no header and never in a flexible encoding. Other members
//! (Java, librdkafka, ...) may be newer than this crate: as Kafka does, a version newer than the
//! newest we know is read with the newest layout and whatever follows it is ignored, so new
//! versions may only append fields. [`ConsumerProtocolSubscription::from_bytes`] and
//! [`ConsumerProtocolAssignment::from_bytes`] do this; a version below 0 is refused.
//!
//! Subscription versions:
//! - v0: subscribed topics and user data.
//! - v1: adds the partitions the member owns (cooperative rebalancing).
//! - v2: adds the generation id of those partitions, to spot stale ownership.
//! - v3: adds the member's rack id (rack-aware assignment).
//!
//! Assignment versions:
//! - v0: assigned partitions and user data.
//! - v1 to v3: same layout; bumped alongside the subscription.
//!
//! The two specs define identical `TopicPartition` structures, so this module defines
//! [`TopicPartition`] once for both.

use bytes::{Bytes, BytesMut};

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode};
use crate::tagged::TaggedFields;

/// A member's subscription, carried in its JoinGroup protocol metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerProtocolSubscription {
    /// The subscribed topics.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<String>,
    /// Opaque data for the assignor, or null.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_bytes()"))]
    pub user_data: Option<Bytes>,
    /// The partitions the member owns (v1+, ignorable).
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions belong to, -1 if unknown (v2+, ignorable).
    pub generation_id: i32,
    /// The member's rack, or null (v3+, ignorable).
    pub rack_id: Option<String>,
    /// Unused: these structures are never flexible, so this is always empty.
    pub unknown_tagged_fields: TaggedFields,
}

impl Default for ConsumerProtocolSubscription {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
            unknown_tagged_fields: TaggedFields::default(),
        }
    }
}

/// Partitions of one topic, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition indexes.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<i32>,
    /// Unused: these structures are never flexible, so this is always empty.
    pub unknown_tagged_fields: TaggedFields,
}

/// What the group leader assigned to one member, carried in SyncGroup's assignment bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsumerProtocolAssignment {
    /// The assigned partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub assigned_partitions: Vec<TopicPartition>,
    /// Opaque data from the assignor, or null.
    #[cfg_attr(test, proptest(strategy = "crate::testing::opt_bytes()"))]
    pub user_data: Option<Bytes>,
    /// Unused: these structures are never flexible, so this is always empty.
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for TopicPartition {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.string(&self.topic, false)?;
        w.i32_array(&self.partitions, false)
    }
}

impl Decode for TopicPartition {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            topic: r.string(false, "topic")?,
            partitions: r.array(false, "partitions", |r| r.i32())?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

/// Writes the version prefix and the body, after checking the version is one we know.
fn to_bytes<T: Encode>(value: &T, version: i16, max: i16, what: &'static str) -> Result<Bytes, EncodeError> {
    if !(0..=max).contains(&version) {
        return Err(EncodeError::InvalidValue { field: what, reason: "unknown version" });
    }
    let mut buf = BytesMut::new();
    let mut w = Writer::new(&mut buf);
    w.i16(version);
    value.encode(&mut w, version)?;
    Ok(buf.freeze())
}

/// Reads the version prefix and the body. A version newer than `max` is read with the `max`
/// layout. Bytes after the body are ignored at every version, as the Java client and
/// librdkafka ignore them: a member that appends data must not break the group.
fn from_bytes<T: Decode>(buf: Bytes, max: i16, what: &'static str) -> Result<T, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if version < 0 {
        return Err(DecodeError::InvalidValue { field: what, value: i64::from(version) });
    }
    T::decode(&mut r, version.min(max))
}

impl ConsumerProtocolSubscription {
    /// The oldest version.
    pub const MIN_VERSION: i16 = 0;
    /// The newest version this crate knows.
    pub const MAX_VERSION: i16 = 3;

    /// Serializes as `version` (from 0 to [`Self::MAX_VERSION`]), prefixed with it. Fields the
    /// version does not have are dropped, as the protocol allows for all of them.
    pub fn to_bytes(&self, version: i16) -> Result<Bytes, EncodeError> {
        to_bytes(self, version, Self::MAX_VERSION, "ConsumerProtocolSubscription version")
    }

    /// Reads a version-prefixed subscription. A version newer than [`Self::MAX_VERSION`] is
    /// read with the newest layout and the bytes after it are ignored.
    pub fn from_bytes(buf: Bytes) -> Result<Self, DecodeError> {
        from_bytes(buf, Self::MAX_VERSION, "ConsumerProtocolSubscription version")
    }
}

impl ConsumerProtocolAssignment {
    /// The oldest version.
    pub const MIN_VERSION: i16 = 0;
    /// The newest version this crate knows.
    pub const MAX_VERSION: i16 = 3;

    /// Serializes as `version` (from 0 to [`Self::MAX_VERSION`]), prefixed with it.
    pub fn to_bytes(&self, version: i16) -> Result<Bytes, EncodeError> {
        to_bytes(self, version, Self::MAX_VERSION, "ConsumerProtocolAssignment version")
    }

    /// Reads a version-prefixed assignment. A version newer than [`Self::MAX_VERSION`] is read
    /// with the newest layout and the bytes after it are ignored.
    pub fn from_bytes(buf: Bytes) -> Result<Self, DecodeError> {
        from_bytes(buf, Self::MAX_VERSION, "ConsumerProtocolAssignment version")
    }
}

impl Encode for ConsumerProtocolSubscription {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string_array(&self.topics, false)?;
        w.nullable_bytes(self.user_data.as_deref(), false)?;
        // The later fields are all ignorable: dropped silently by older versions.
        if version >= 1 {
            w.array(&self.owned_partitions, false, |w, tp| tp.encode(w, version))?;
        }
        if version >= 2 {
            w.i32(self.generation_id);
        }
        if version >= 3 {
            w.nullable_string(self.rack_id.as_deref(), false)?;
        }
        Ok(())
    }
}

impl Decode for ConsumerProtocolSubscription {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let mut out = Self {
            topics: r.array(false, "topics", |r| r.string(false, "topics"))?,
            user_data: r.nullable_bytes(false)?,
            ..Self::default()
        };
        if version >= 1 {
            out.owned_partitions =
                r.array(false, "owned_partitions", |r| TopicPartition::decode(r, version))?;
        }
        if version >= 2 {
            out.generation_id = r.i32()?;
        }
        if version >= 3 {
            out.rack_id = r.nullable_string(false)?;
        }
        Ok(out)
    }
}

impl Encode for ConsumerProtocolAssignment {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.array(&self.assigned_partitions, false, |w, tp| tp.encode(w, version))?;
        w.nullable_bytes(self.user_data.as_deref(), false)
    }
}

impl Decode for ConsumerProtocolAssignment {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            assigned_partitions: r
                .array(false, "assigned_partitions", |r| TopicPartition::decode(r, version))?,
            user_data: r.nullable_bytes(false)?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::fmt::Debug;

    /// The round-trip property of `round_trip_all_versions`, for structures without an API key:
    /// an arbitrary value encoded leniently at each version decodes to a value that encodes
    /// strictly to the same bytes, and `to_bytes`/`from_bytes` agree with it.
    fn round_trip_all<T>(
        max: i16,
        to: fn(&T, i16) -> Result<Bytes, EncodeError>,
        from: fn(Bytes) -> Result<T, DecodeError>,
    ) where
        T: Arbitrary + Encode + Decode + PartialEq + Debug,
    {
        for version in 0..=max {
            let mut runner =
                TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
            runner
                .run(&any::<T>(), |m| {
                    let mut buf = BytesMut::new();
                    m.encode(&mut Writer::lenient(&mut buf), version).unwrap();
                    let first = buf.freeze();
                    let mut r = Reader::new(first.clone());
                    let decoded = T::decode(&mut r, version).unwrap();
                    r.finish("body").unwrap();
                    let prefixed = to(&decoded, version).unwrap();
                    prop_assert_eq!(&prefixed[..2], &version.to_be_bytes()[..]);
                    prop_assert_eq!(&prefixed[2..], &first[..]);
                    prop_assert_eq!(from(prefixed).unwrap(), decoded);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn subscription_round_trips() {
        round_trip_all(
            ConsumerProtocolSubscription::MAX_VERSION,
            ConsumerProtocolSubscription::to_bytes,
            ConsumerProtocolSubscription::from_bytes,
        );
    }

    #[test]
    fn assignment_round_trips() {
        round_trip_all(
            ConsumerProtocolAssignment::MAX_VERSION,
            ConsumerProtocolAssignment::to_bytes,
            ConsumerProtocolAssignment::from_bytes,
        );
    }

    #[test]
    fn v0_subscription_by_hand() {
        let sub = ConsumerProtocolSubscription { topics: vec!["a".into(), "b".into()], ..Default::default() };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0,                   // version 0
            0, 0, 0, 2,             // two topics
            0, 1, b'a',
            0, 1, b'b',
            0xff, 0xff, 0xff, 0xff, // user_data null
        ];
        assert_eq!(&sub.to_bytes(0).unwrap()[..], expected);
        assert_eq!(ConsumerProtocolSubscription::from_bytes(Bytes::from_static(expected)).unwrap(), sub);
    }

    #[test]
    fn v1_assignment_by_hand() {
        let asg = ConsumerProtocolAssignment {
            assigned_partitions: vec![TopicPartition {
                topic: "t".into(),
                partitions: vec![1],
                ..Default::default()
            }],
            user_data: Some(Bytes::from_static(b"u")),
            ..Default::default()
        };
        let expected: &[u8] = &[0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, b'u'];
        assert_eq!(&asg.to_bytes(1).unwrap()[..], expected);
        assert_eq!(ConsumerProtocolAssignment::from_bytes(Bytes::from_static(expected)).unwrap(), asg);
    }

    #[test]
    fn newer_versions_read_with_newest_layout() {
        let sub = ConsumerProtocolSubscription {
            topics: vec!["a".into()],
            owned_partitions: vec![TopicPartition {
                topic: "a".into(),
                partitions: vec![0],
                ..Default::default()
            }],
            generation_id: 7,
            rack_id: Some("r1".into()),
            ..Default::default()
        };
        // A v9 member: the v3 layout followed by fields we do not know.
        let mut future = BytesMut::new();
        future.extend_from_slice(&9i16.to_be_bytes());
        future.extend_from_slice(&sub.to_bytes(3).unwrap()[2..]);
        future.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(ConsumerProtocolSubscription::from_bytes(future.freeze()).unwrap(), sub);

        let asg =
            ConsumerProtocolAssignment { user_data: Some(Bytes::from_static(b"x")), ..Default::default() };
        let mut future = BytesMut::new();
        future.extend_from_slice(&4i16.to_be_bytes());
        future.extend_from_slice(&asg.to_bytes(3).unwrap()[2..]);
        future.extend_from_slice(&[1, 2, 3]);
        assert_eq!(ConsumerProtocolAssignment::from_bytes(future.freeze()).unwrap(), asg);
    }

    #[test]
    fn bad_versions_and_trailing_bytes() {
        let sub = ConsumerProtocolSubscription::default();
        assert!(matches!(sub.to_bytes(4), Err(EncodeError::InvalidValue { .. })));
        assert!(matches!(sub.to_bytes(-1), Err(EncodeError::InvalidValue { .. })));
        // Negative version.
        let neg = Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            ConsumerProtocolSubscription::from_bytes(neg),
            Err(DecodeError::InvalidValue { value: -1, .. })
        ));
        // A known version with bytes left over: ignored, as other clients do.
        let mut extra = BytesMut::from(&sub.to_bytes(3).unwrap()[..]);
        extra.extend_from_slice(&[0]);
        assert_eq!(ConsumerProtocolSubscription::from_bytes(extra.freeze()).unwrap(), sub);
        // Too short for even the version.
        assert!(ConsumerProtocolAssignment::from_bytes(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn old_versions_drop_newer_fields() {
        let sub = ConsumerProtocolSubscription {
            topics: vec!["a".into()],
            generation_id: 3,
            rack_id: Some("r".into()),
            ..Default::default()
        };
        let back = ConsumerProtocolSubscription::from_bytes(sub.to_bytes(1).unwrap()).unwrap();
        assert_eq!(back, ConsumerProtocolSubscription { topics: vec!["a".into()], ..Default::default() });
    }
}
