//! A proxy that lowers the versions a broker announces to those `klamm-protocol` implements, so
//! that a third-party client talking through it negotiates only versions the codec can read.
//!
//! Clients send each API at the highest version both they and the broker implement. A broker
//! newer than the codec (Apache Kafka 4.1 offers Metadata v13, Produce v13 and Fetch v18) would
//! lead them to versions the codec does not decode, and fixtures recorded at those versions
//! could not be checked. This proxy rewrites the body of every ApiVersions answer: each API the
//! codec implements gets `max_version = min(broker's max, codec's max)`; APIs the codec does
//! not implement, and every other byte, pass unchanged.
//!
//! For fixtures it sits in front of a [`RecordingProxy`](crate::RecordingProxy), with the
//! broker advertising this proxy's port: client -> `VersionCapProxy` -> `RecordingProxy` ->
//! broker. The recording then holds the broker's own, unmodified ApiVersions answers and the
//! client's requests at versions the codec implements.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::{Bytes, BytesMut};
use klamm_protocol::api::any::IMPLEMENTED;
use klamm_protocol::api::api_versions::ApiVersionsResponse;
use klamm_protocol::header::DEFAULT_MAX_FRAME;
use klamm_protocol::{encode_response, frame_len, ApiKey, Message};

/// Lowers every API's `max_version` in `response` to the highest version `klamm-protocol`
/// implements; APIs it does not implement are left as they are.
pub fn cap_api_versions(response: &mut ApiVersionsResponse) {
    for api in &mut response.api_keys {
        if let Some((_, _, codec_max)) = IMPLEMENTED.iter().find(|(key, _, _)| key.0 == api.api_key) {
            api.max_version = api.max_version.min(*codec_max);
        }
    }
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

/// The proxy, on a 127.0.0.1 port. Dropping it closes the listener and every connection.
pub struct VersionCapProxy {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for VersionCapProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionCapProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl VersionCapProxy {
    /// Listens on a free 127.0.0.1 port; forwards nothing until [`forward_to`](Self::forward_to)
    /// (clients that connect before wait in the backlog). Binding first lets a broker be started
    /// that advertises this port.
    pub fn bind() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        Ok(Self { listener: Some(listener), addr, shared: Arc::default(), accept_thread: None })
    }

    /// Starts forwarding accepted connections to `upstream`. Only the first call has an effect.
    pub fn forward_to(&mut self, upstream: SocketAddr) {
        let Some(listener) = self.listener.take() else { return };
        let shared = Arc::clone(&self.shared);
        self.accept_thread = Some(thread::spawn(move || accept_loop(listener, upstream, shared)));
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port`, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for VersionCapProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if self.accept_thread.is_some() {
            // Wakes the accept loop so that it sees the flag.
            let _ = TcpStream::connect(self.addr);
        }
        for s in self.shared.streams.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// Correlation id -> version of the ApiVersions requests awaiting their answer, per connection.
type Pending = Arc<Mutex<HashMap<i32, i16>>>;

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
        let (Ok(client2), Ok(server2), Ok(client3), Ok(server3)) = clones else { continue };
        shared.streams.lock().unwrap_or_else(|e| e.into_inner()).extend([client3, server3]);
        let pending = Pending::default();
        let p = Arc::clone(&pending);
        thread::spawn(move || requests(client, server2, p));
        thread::spawn(move || responses(server, client2, pending));
    }
}

/// Client to broker: bytes pass unchanged; the correlation ids of ApiVersions requests are noted
/// before the bytes that complete them are forwarded, so no answer can overtake its note.
fn requests(mut from: TcpStream, mut to: TcpStream, pending: Pending) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut buf: Vec<u8> = Vec::new();
    let mut framed = true;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if framed {
            buf.extend_from_slice(&chunk[..n]);
            framed = take_frames(&mut buf, |frame| {
                if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::API_VERSIONS.0 {
                    let version = i16::from_be_bytes([frame[2], frame[3]]);
                    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                    pending.lock().unwrap_or_else(|e| e.into_inner()).insert(correlation_id, version);
                }
            });
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Broker to client, frame by frame: ApiVersions answers are capped, everything else passes
/// unchanged. Once the stream cannot be Kafka framing, bytes pass as they come.
fn responses(mut from: TcpStream, mut to: TcpStream, pending: Pending) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut buf: Vec<u8> = Vec::new();
    let mut framed = true;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = if framed {
            buf.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            framed = take_frames(&mut buf, |frame| {
                let correlation_id =
                    (frame.len() >= 4).then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
                let version = correlation_id
                    .and_then(|id| pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id));
                match version.and_then(|v| capped(frame, v)) {
                    Some(rewritten) => out.extend_from_slice(&rewritten),
                    None => {
                        out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
                        out.extend_from_slice(frame);
                    }
                }
            });
            if !framed {
                // What is left is forwarded raw from now on.
                out.append(&mut buf);
            }
            out
        } else {
            chunk[..n].to_vec()
        };
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
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

/// Calls `f` with every complete frame (after its size prefix) at the front of `buf` and
/// removes them. Returns false if the data cannot be Kafka framing.
fn take_frames(buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) -> bool {
    let mut start = 0;
    let framed = loop {
        match frame_len(&buf[start..], DEFAULT_MAX_FRAME) {
            Ok(Some(len)) => {
                f(&buf[start + 4..start + 4 + len]);
                start += 4 + len;
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    buf.drain(..start);
    framed
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
    fn rewrites_an_answer_and_keeps_partial_frames() {
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
        let mut buf = body.to_vec();
        buf.extend_from_slice(&[0, 0, 0, 9, 1]);
        let mut frames = Vec::new();
        assert!(take_frames(&mut buf, |f| frames.push(f.to_vec())));
        assert_eq!(buf, [0, 0, 0, 9, 1], "the partial frame stays");
        let rewritten = capped(&frames[0], 3).unwrap();
        let (_, back) =
            klamm_protocol::decode_response::<ApiVersionsResponse>(rewritten.freeze().slice(4..), 3).unwrap();
        assert_eq!(back.api_keys[0].max_version, ProduceRequest::MAX_VERSION);
    }
}
