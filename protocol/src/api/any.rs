//! Dispatch by API key: decode or encode any request or response this crate implements when
//! the key and version are only known at run time (recorded frames, fuzzing, a fake broker).
//!
//! The list below is the one place that names every implemented API.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::header::{RequestHeader, ResponseHeader};
use crate::message::{Decode, Encode, Message, Request, Response};
use crate::ApiKey;

macro_rules! apis {
    ($($variant:ident => $module:ident :: $req:ident, $resp:ident;)*) => {
        /// Any request body this crate implements.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum AnyRequest {
            $($variant($module::$req),)*
        }

        /// Any response body this crate implements.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum AnyResponse {
            $($variant($module::$resp),)*
        }

        /// Every API key this crate implements, with its supported version range.
        pub const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
            $((<$module::$req as Message>::API_KEY, <$module::$req as Message>::MIN_VERSION, <$module::$req as Message>::MAX_VERSION),)*
        ];

        impl AnyRequest {
            /// The API key of this request.
            pub fn api_key(&self) -> ApiKey {
                match self { $(Self::$variant(_) => <$module::$req as Message>::API_KEY,)* }
            }

            /// Decodes a body of `api_key` at `version`.
            pub fn decode(api_key: ApiKey, r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
                $(if api_key == <$module::$req as Message>::API_KEY {
                    check_version::<$module::$req>(version)?;
                    return Ok(Self::$variant(<$module::$req as Decode>::decode(r, version)?));
                })*
                Err(DecodeError::UnknownApiKey(api_key.0))
            }

            /// Encodes the body at `version`.
            pub fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
                match self { $(Self::$variant(m) => m.encode(w, version),)* }
            }
        }

        impl AnyResponse {
            /// The API key of this response.
            pub fn api_key(&self) -> ApiKey {
                match self { $(Self::$variant(_) => <$module::$resp as Message>::API_KEY,)* }
            }

            /// Decodes a body of `api_key` at `version`.
            pub fn decode(api_key: ApiKey, r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
                $(if api_key == <$module::$resp as Message>::API_KEY {
                    check_version::<$module::$resp>(version)?;
                    return Ok(Self::$variant(<$module::$resp as Decode>::decode(r, version)?));
                })*
                Err(DecodeError::UnknownApiKey(api_key.0))
            }

            /// Encodes the body at `version`.
            pub fn encode(&self, w: &mut Writer<'_>, version: i16) -> Result<(), EncodeError> {
                match self { $(Self::$variant(m) => m.encode(w, version),)* }
            }
        }

        /// The request header version that `api_key` uses at `version`.
        pub fn request_header_version(api_key: ApiKey, version: i16) -> Result<i16, DecodeError> {
            $(if api_key == <$module::$req as Message>::API_KEY {
                return Ok(<$module::$req as Request>::header_version(version));
            })*
            Err(DecodeError::UnknownApiKey(api_key.0))
        }

        /// The response header version that `api_key` uses at `version`.
        pub fn response_header_version(api_key: ApiKey, version: i16) -> Result<i16, DecodeError> {
            $(if api_key == <$module::$resp as Message>::API_KEY {
                return Ok(<$module::$resp as Response>::header_version(version));
            })*
            Err(DecodeError::UnknownApiKey(api_key.0))
        }
    };
}

fn check_version<M: Message>(version: i16) -> Result<(), DecodeError> {
    if M::supports(version) {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion { api_key: M::API_KEY.0, version })
    }
}

apis! {
    Produce => produce::ProduceRequest, ProduceResponse;
    Fetch => fetch::FetchRequest, FetchResponse;
    ListOffsets => list_offsets::ListOffsetsRequest, ListOffsetsResponse;
    Metadata => metadata::MetadataRequest, MetadataResponse;
    OffsetCommit => offset_commit::OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => offset_fetch::OffsetFetchRequest, OffsetFetchResponse;
    FindCoordinator => find_coordinator::FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => join_group::JoinGroupRequest, JoinGroupResponse;
    Heartbeat => heartbeat::HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => leave_group::LeaveGroupRequest, LeaveGroupResponse;
    SyncGroup => sync_group::SyncGroupRequest, SyncGroupResponse;
    DescribeGroups => describe_groups::DescribeGroupsRequest, DescribeGroupsResponse;
    ListGroups => list_groups::ListGroupsRequest, ListGroupsResponse;
    SaslHandshake => sasl_handshake::SaslHandshakeRequest, SaslHandshakeResponse;
    ApiVersions => api_versions::ApiVersionsRequest, ApiVersionsResponse;
    CreateTopics => create_topics::CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => delete_topics::DeleteTopicsRequest, DeleteTopicsResponse;
    DeleteRecords => delete_records::DeleteRecordsRequest, DeleteRecordsResponse;
    InitProducerId => init_producer_id::InitProducerIdRequest, InitProducerIdResponse;
    OffsetForLeaderEpoch => offset_for_leader_epoch::OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse;
    AddPartitionsToTxn => add_partitions_to_txn::AddPartitionsToTxnRequest, AddPartitionsToTxnResponse;
    AddOffsetsToTxn => add_offsets_to_txn::AddOffsetsToTxnRequest, AddOffsetsToTxnResponse;
    EndTxn => end_txn::EndTxnRequest, EndTxnResponse;
    TxnOffsetCommit => txn_offset_commit::TxnOffsetCommitRequest, TxnOffsetCommitResponse;
    DescribeConfigs => describe_configs::DescribeConfigsRequest, DescribeConfigsResponse;
    AlterConfigs => alter_configs::AlterConfigsRequest, AlterConfigsResponse;
    SaslAuthenticate => sasl_authenticate::SaslAuthenticateRequest, SaslAuthenticateResponse;
    CreatePartitions => create_partitions::CreatePartitionsRequest, CreatePartitionsResponse;
    DeleteGroups => delete_groups::DeleteGroupsRequest, DeleteGroupsResponse;
    ElectLeaders => elect_leaders::ElectLeadersRequest, ElectLeadersResponse;
    OffsetDelete => offset_delete::OffsetDeleteRequest, OffsetDeleteResponse;
    DescribeUserScramCredentials => describe_user_scram_credentials::DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse;
    AlterUserScramCredentials => alter_user_scram_credentials::AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse;
    DescribeCluster => describe_cluster::DescribeClusterRequest, DescribeClusterResponse;
    DescribeProducers => describe_producers::DescribeProducersRequest, DescribeProducersResponse;
    DescribeTransactions => describe_transactions::DescribeTransactionsRequest, DescribeTransactionsResponse;
    ListTransactions => list_transactions::ListTransactionsRequest, ListTransactionsResponse;
    ConsumerGroupHeartbeat => consumer_group_heartbeat::ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse;
    ConsumerGroupDescribe => consumer_group_describe::ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse;
}

/// A request frame (after its size prefix) decoded: header and body. Bytes left over are an
/// error.
pub fn decode_request_frame(frame: Bytes) -> Result<(RequestHeader, AnyRequest), DecodeError> {
    let mut r = Reader::new(frame);
    // Key and version come first in every header version; read them, then the whole header.
    let mut peek = r.clone();
    let api_key = ApiKey(peek.i16()?);
    let version = peek.i16()?;
    let header = RequestHeader::decode(&mut r, request_header_version(api_key, version)?)?;
    let body = AnyRequest::decode(api_key, &mut r, version)?;
    r.finish("request")?;
    Ok((header, body))
}

/// A response frame (after its size prefix) to a request of `api_key` at `version`, decoded.
pub fn decode_response_frame(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(ResponseHeader, AnyResponse), DecodeError> {
    let mut r = Reader::new(frame);
    let header = ResponseHeader::decode(&mut r, response_header_version(api_key, version)?)?;
    let body = AnyResponse::decode(api_key, &mut r, version)?;
    r.finish("response")?;
    Ok((header, body))
}

/// Encodes a request frame's contents (no size prefix): the inverse of [`decode_request_frame`].
pub fn encode_request_frame(header: &RequestHeader, body: &AnyRequest) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::new();
    let mut w = Writer::new(&mut buf);
    let hv = request_header_version(header.api_key, header.api_version).map_err(|_| {
        EncodeError::UnsupportedVersion { api_key: header.api_key.0, version: header.api_version }
    })?;
    header.encode(&mut w, hv)?;
    body.encode(&mut w, header.api_version)?;
    Ok(buf)
}

/// Encodes a response frame's contents (no size prefix): the inverse of
/// [`decode_response_frame`].
pub fn encode_response_frame(
    version: i16,
    header: &ResponseHeader,
    body: &AnyResponse,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::new();
    let mut w = Writer::new(&mut buf);
    let hv = response_header_version(body.api_key(), version)
        .map_err(|_| EncodeError::UnsupportedVersion { api_key: body.api_key().0, version })?;
    header.encode(&mut w, hv)?;
    body.encode(&mut w, version)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_api_is_listed_once() {
        let mut keys: Vec<i16> = IMPLEMENTED.iter().map(|(k, _, _)| k.0).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), IMPLEMENTED.len());
        assert_eq!(IMPLEMENTED.len(), 39);
    }

    #[test]
    fn request_frames_round_trip_through_dispatch() {
        let req = api_versions::ApiVersionsRequest {
            client_software_name: "klamm".into(),
            client_software_version: "1".into(),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        crate::encode_request(&mut buf, 42, Some("c"), 3, &req).unwrap();
        let frame = buf.split_off(4).freeze();
        let (header, body) = decode_request_frame(frame.clone()).unwrap();
        assert_eq!(header.correlation_id, 42);
        assert_eq!(body, AnyRequest::ApiVersions(req));
        assert_eq!(encode_request_frame(&header, &body).unwrap().freeze(), frame);
    }

    #[test]
    fn unknown_keys_and_versions_are_typed_errors() {
        let mut r = Reader::new(Bytes::new());
        assert_eq!(AnyRequest::decode(ApiKey(9999), &mut r, 0), Err(DecodeError::UnknownApiKey(9999)));
        assert_eq!(
            AnyResponse::decode(ApiKey::PRODUCE, &mut r, 99),
            Err(DecodeError::UnsupportedVersion { api_key: 0, version: 99 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
        /// Arbitrary bytes, as any API at any version, decode to a value or a typed error.
        #[test]
        fn arbitrary_bytes_never_panic(
            which in 0..IMPLEMENTED.len(),
            version_pick in any::<u8>(),
            data in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let (key, min, max) = IMPLEMENTED[which];
            let version = min + (i16::from(version_pick) % (max - min + 1));
            let bytes = Bytes::from(data);
            let _ = AnyRequest::decode(key, &mut Reader::new(bytes.clone()), version);
            let _ = AnyResponse::decode(key, &mut Reader::new(bytes.clone()), version);
            let _ = decode_response_frame(key, version, bytes.clone());
            let _ = decode_request_frame(bytes);
        }
    }
}
