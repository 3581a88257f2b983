//! OffsetDelete (key 47): deletes a group's committed offsets for some partitions (KIP-496).
//!
//! Versions:
//! - v0: the only version; not flexible.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::tagged::TaggedFields;
use crate::ApiKey;

/// Deletes committed offsets of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteRequest {
    /// The group id.
    pub group_id: String,
    /// The topics whose offsets to delete.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetDeleteRequestTopic>,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

/// One topic whose offsets to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteRequestTopic {
    /// The topic name.
    pub name: String,
    /// The partitions.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetDeleteRequestPartition>,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

/// One partition whose offset to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteRequestPartition {
    /// The partition index.
    pub partition_index: i32,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for OffsetDeleteRequestPartition {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        Ok(())
    }
}

impl Decode for OffsetDeleteRequestPartition {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self { partition_index: r.i32()?, unknown_tagged_fields: TaggedFields::default() })
    }
}

impl Encode for OffsetDeleteRequestTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, false)?;
        w.array(&self.partitions, false, |w, p| p.encode(w, version))
    }
}

impl Decode for OffsetDeleteRequestTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(false, "name")?,
            partitions: r.array(false, "partitions", |r| OffsetDeleteRequestPartition::decode(r, version))?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Encode for OffsetDeleteRequest {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.group_id, false)?;
        w.array(&self.topics, false, |w, t| t.encode(w, version))
    }
}

impl Decode for OffsetDeleteRequest {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            group_id: r.string(false, "group_id")?,
            topics: r.array(false, "topics", |r| OffsetDeleteRequestTopic::decode(r, version))?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Message for OffsetDeleteRequest {
    const API_KEY: ApiKey = ApiKey::OFFSET_DELETE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = None;
}

impl Request for OffsetDeleteRequest {
    type Response = OffsetDeleteResponse;
}

/// The result of deleting each offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteResponse {
    /// The top-level error code, or 0.
    pub error_code: i16,
    /// Throttle time in milliseconds (ignorable).
    pub throttle_time_ms: i32,
    /// One result per topic.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub topics: Vec<OffsetDeleteResponseTopic>,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

/// The results for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteResponseTopic {
    /// The topic name.
    pub name: String,
    /// One result per partition.
    #[cfg_attr(test, proptest(strategy = "crate::testing::vec()"))]
    pub partitions: Vec<OffsetDeleteResponsePartition>,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OffsetDeleteResponsePartition {
    /// The partition index.
    pub partition_index: i32,
    /// The error code, or 0.
    pub error_code: i16,
    /// Tagged fields this crate does not know (always empty: no version is flexible).
    pub unknown_tagged_fields: TaggedFields,
}

impl Encode for OffsetDeleteResponsePartition {
    fn encode(&self, w: &mut Writer<'_>, _version: i16) -> Result<(), EncodeError> {
        w.i32(self.partition_index);
        w.i16(self.error_code);
        Ok(())
    }
}

impl Decode for OffsetDeleteResponsePartition {
    fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Encode for OffsetDeleteResponseTopic {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.string(&self.name, false)?;
        w.array(&self.partitions, false, |w, p| p.encode(w, version))
    }
}

impl Decode for OffsetDeleteResponseTopic {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string(false, "name")?,
            partitions: r
                .array(false, "partitions", |r| OffsetDeleteResponsePartition::decode(r, version))?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Encode for OffsetDeleteResponse {
    fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
        w.i16(self.error_code);
        w.i32(self.throttle_time_ms);
        w.array(&self.topics, false, |w, t| t.encode(w, version))
    }
}

impl Decode for OffsetDeleteResponse {
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        Ok(Self {
            error_code: r.i16()?,
            throttle_time_ms: r.i32()?,
            topics: r.array(false, "topics", |r| OffsetDeleteResponseTopic::decode(r, version))?,
            unknown_tagged_fields: TaggedFields::default(),
        })
    }
}

impl Message for OffsetDeleteResponse {
    const API_KEY: ApiKey = ApiKey::OFFSET_DELETE;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    const FIRST_FLEXIBLE: Option<i16> = None;
}

impl Response for OffsetDeleteResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trip_all_versions;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn request_round_trips() {
        round_trip_all_versions::<OffsetDeleteRequest>();
    }

    #[test]
    fn response_round_trips() {
        round_trip_all_versions::<OffsetDeleteResponse>();
    }

    #[test]
    fn request_v0_by_hand() {
        let req = OffsetDeleteRequest {
            group_id: "g".into(),
            topics: vec![OffsetDeleteRequestTopic {
                name: "t".into(),
                partitions: vec![
                    OffsetDeleteRequestPartition { partition_index: 0, ..Default::default() },
                    OffsetDeleteRequestPartition { partition_index: 1, ..Default::default() },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[
            0, 1, b'g', // group_id
            0, 0, 0, 1, // one topic
            0, 1, b't', // name
            0, 0, 0, 2, // two partitions
            0, 0, 0, 0, 0, 0, 0, 1, // indexes 0 and 1
        ];
        let mut buf = BytesMut::new();
        req.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetDeleteRequest::decode_body(Bytes::from_static(expected), 0).unwrap(), req);
    }

    #[test]
    fn response_v0_by_hand() {
        let resp = OffsetDeleteResponse {
            error_code: 0,
            throttle_time_ms: 5,
            topics: vec![OffsetDeleteResponseTopic {
                name: "t".into(),
                partitions: vec![OffsetDeleteResponsePartition {
                    partition_index: 3,
                    error_code: 86, // GROUP_SUBSCRIBED_TO_TOPIC
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected: &[u8] = &[0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 3, 0, 86];
        let mut buf = BytesMut::new();
        resp.encode_body(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], expected);
        assert_eq!(OffsetDeleteResponse::decode_body(Bytes::from_static(expected), 0).unwrap(), resp);
    }
}
