//! A proxy that lowers the versions a broker announces to those `klamm-protocol` implements, so
//! that a third-party client talking through it negotiates only versions the codec can read.
//!
//! Clients send each API at the highest version both they and the broker implement. A broker
//! newer than the codec (Apache Kafka 4.1 offers Metadata v13, Produce v13 and Fetch v18) would
//! lead them to versions the codec does not decode, and fixtures recorded at those versions
//! could not be checked. The [`VersionCap`] hook rewrites the body of every ApiVersions answer:
//! each API the codec implements gets `max_version = min(broker's max, codec's max)`; APIs the
//! codec does not implement, and every other byte, pass unchanged. [`VersionCapProxy`] is a
//! [`FaultProxy`] with that hook.
//!
//! For fixtures it sits in front of a [`RecordingProxy`](crate::RecordingProxy), with the
//! broker advertising this proxy's port: client -> `VersionCapProxy` -> `RecordingProxy` ->
//! broker. The recording then holds the broker's own, unmodified ApiVersions answers and the
//! client's requests at versions the codec implements.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use klamm_protocol::api::any::IMPLEMENTED;
use klamm_protocol::api::api_versions::ApiVersionsResponse;
use klamm_protocol::{encode_response, ApiKey, Message};

use crate::proxy::{FaultProxy, FrameHook};

/// Lowers every API's `max_version` in `response` to the highest version `klamm-protocol`
/// implements; APIs it does not implement are left as they are.
pub fn cap_api_versions(response: &mut ApiVersionsResponse) {
    for api in &mut response.api_keys {
        if let Some((_, _, codec_max)) = IMPLEMENTED.iter().find(|(key, _, _)| key.0 == api.api_key) {
            api.max_version = api.max_version.min(*codec_max);
        }
    }
}

/// A [`FrameHook`] that caps the versions in every ApiVersions answer with
/// [`cap_api_versions`]; every other frame passes unchanged. Give it to
/// [`FaultProxy::bind_with`] to cap on a fault proxy.
#[derive(Debug, Default)]
pub struct VersionCap {
    /// (connection, correlation id) -> version of the ApiVersions requests awaiting an answer.
    pending: Mutex<HashMap<(usize, i32), i16>>,
}

impl VersionCap {
    /// A cap with nothing pending.
    pub fn new() -> Arc<VersionCap> {
        Arc::default()
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<(usize, i32), i16>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FrameHook for VersionCap {
    fn request(&self, connection: usize, frame: &Bytes) {
        if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::API_VERSIONS.0 {
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            self.pending().insert((connection, correlation_id), version);
        }
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        let correlation_id =
            (frame.len() >= 4).then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
        let version = correlation_id.and_then(|id| self.pending().remove(&(connection, id)));
        match version.and_then(|v| capped(&frame, v)) {
            Some(rewritten) => rewritten.freeze().slice(4..),
            None => frame,
        }
    }

    fn closed(&self, connection: usize) {
        self.pending().retain(|(c, _), _| *c != connection);
    }
}

/// The proxy, on a 127.0.0.1 port: a [`FaultProxy`] with a [`VersionCap`]. Dropping it closes
/// the listener and every connection.
#[derive(Debug)]
pub struct VersionCapProxy {
    proxy: FaultProxy,
}

impl VersionCapProxy {
    /// Listens on a free 127.0.0.1 port; forwards nothing until [`forward_to`](Self::forward_to)
    /// (clients that connect before wait). Binding first lets a broker be started that
    /// advertises this port.
    pub fn bind() -> io::Result<Self> {
        Ok(Self { proxy: FaultProxy::bind_with(vec![VersionCap::new() as Arc<dyn FrameHook>])? })
    }

    /// Forwards accepted connections to `upstream` from now on.
    pub fn forward_to(&self, upstream: SocketAddr) {
        self.proxy.forward_to(upstream);
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.proxy.port()
    }

    /// `127.0.0.1:port`, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.proxy.bootstrap()
    }

    /// The proxy underneath, for its faults and counters.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }
}

/// The ApiVersions answer `frame` (after its size prefix) with capped versions, as a whole frame
/// with its size prefix; `None` (forward it unchanged) when it does not decode or is an error.
fn capped(frame: &[u8], version: i16) -> Option<BytesMut> {
    let correlation_id = i32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    // ApiVersions answers always use response header v0: the body follows the correlation id.
    let mut response = ApiVersionsResponse::decode_body(Bytes::copy_from_slice(&frame[4..]), version).ok()?;
    if response.error_code != 0 {
        return None;
    }
    cap_api_versions(&mut response);
    let mut out = BytesMut::new();
    encode_response(&mut out, correlation_id, version, &response).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_protocol::api::api_versions::ApiVersion;
    use klamm_protocol::api::produce::ProduceRequest;

    #[test]
    fn caps_only_what_the_codec_implements() {
        let api = |api_key: i16, max_version: i16| ApiVersion {
            api_key,
            min_version: 0,
            max_version,
            ..Default::default()
        };
        let mut response = ApiVersionsResponse {
            api_keys: vec![api(ApiKey::PRODUCE.0, 99), api(ApiKey::METADATA.0, 1), api(9999, 99)],
            ..Default::default()
        };
        cap_api_versions(&mut response);
        let maxima: Vec<i16> = response.api_keys.iter().map(|a| a.max_version).collect();
        assert_eq!(maxima, [ProduceRequest::MAX_VERSION, 1, 99]);
    }

    #[test]
    fn the_hook_rewrites_only_answers_to_api_versions_requests() {
        let mut body = BytesMut::new();
        let response = ApiVersionsResponse {
            api_keys: vec![ApiVersion {
                api_key: ApiKey::PRODUCE.0,
                min_version: 0,
                max_version: 99,
                ..Default::default()
            }],
            ..Default::default()
        };
        encode_response(&mut body, 7, 3, &response).unwrap();
        let answer = body.freeze().slice(4..);
        let cap = VersionCap::default();
        // The same bytes answering a Metadata request, or on another connection, pass as they are.
        cap.request(0, &Bytes::from_static(&[0, 3, 0, 12, 0, 0, 0, 7]));
        assert_eq!(cap.response(0, answer.clone()), answer);
        cap.request(0, &Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 7]));
        assert_eq!(cap.response(1, answer.clone()), answer);
        let rewritten = cap.response(0, answer.clone());
        assert_ne!(rewritten, answer);
        let (_, back) = klamm_protocol::decode_response::<ApiVersionsResponse>(rewritten, 3).unwrap();
        assert_eq!(back.api_keys[0].max_version, ProduceRequest::MAX_VERSION);
        // Answered once: a repeat of the correlation id is not an ApiVersions answer any more.
        assert_eq!(cap.response(0, answer.clone()), answer);
    }
}
