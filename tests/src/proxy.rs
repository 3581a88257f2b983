//! A TCP proxy that records the Kafka frames passing through it, to capture fixtures from real
//! clients and to see exactly what a client sent.
//!
//! Bytes are forwarded unchanged in both directions. Alongside, the proxy splits each direction
//! into size-prefixed frames: a request frame's header gives its API key, version and
//! correlation id; a response frame starts with the correlation id, which pairs it with its
//! request on the same connection.
//!
//! Kafka clients connect to the addresses a Metadata response advertises, not only to their
//! bootstrap address. To keep them on the proxy, start the broker advertising the proxy's port
//! ([`BrokerBuilder::advertised_port`]); [`RecordingProxy::in_front_of`] does both.
//!
//! A frame is recorded before its last bytes are forwarded, so by the time a client has seen a
//! response, the request and the response are both in [`RecordingProxy::frames`].

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use klamm_protocol::ApiKey;

use crate::broker::{Broker, BrokerBuilder};
use crate::Error;

/// One request seen by the proxy, with its response when the broker sent one.
#[derive(Debug, Clone)]
pub struct RecordedFrame {
    /// Which client connection (numbered from 0 in accept order).
    pub connection: usize,
    /// The request's API.
    pub api_key: ApiKey,
    /// The request's version.
    pub api_version: i16,
    /// The request's correlation id.
    pub correlation_id: i32,
    /// The request frame after its size prefix: header and body.
    pub request: Bytes,
    /// The response frame after its size prefix, if one came (Produce with acks=0 gets none).
    pub response: Option<Bytes>,
}

impl RecordedFrame {
    /// The API's name, or `ApiKey<n>` for keys `klamm-protocol` does not know.
    pub fn api_name(&self) -> String {
        self.api_key.name().map_or_else(|| format!("ApiKey{}", self.api_key.0), str::to_owned)
    }
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    frames: Mutex<Vec<RecordedFrame>>,
    // Frames before this index were cleared. They stay in `frames` because pending responses
    // refer to frames by index.
    cleared: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
    connections: AtomicUsize,
}

/// A recording proxy on a 127.0.0.1 port. Dropping it closes the listener and every connection.
pub struct RecordingProxy {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RecordingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RecordingProxy {
    /// Listens on a free 127.0.0.1 port but forwards nothing until
    /// [`forward_to`](Self::forward_to); clients that connect before wait in the backlog.
    pub fn bind() -> io::Result<RecordingProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        Ok(RecordingProxy { listener: Some(listener), addr, shared: Arc::default(), accept_thread: None })
    }

    /// A proxy forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<RecordingProxy> {
        let mut proxy = Self::bind()?;
        proxy.forward_to(upstream)?;
        Ok(proxy)
    }

    /// Starts a broker from `builder` that advertises this proxy, with the proxy in front of
    /// it: clients given [`bootstrap`](Self::bootstrap) stay on the proxy for every connection.
    pub fn in_front_of(builder: BrokerBuilder) -> Result<(RecordingProxy, Broker), Error> {
        let mut proxy = Self::bind()?;
        let broker = builder.advertised_port(proxy.port()).start()?;
        proxy.forward_to(broker.addr())?;
        Ok((proxy, broker))
    }

    /// Starts forwarding accepted connections to `upstream`. Only the first call has an effect.
    pub fn forward_to(&mut self, upstream: SocketAddr) -> io::Result<()> {
        let Some(listener) = self.listener.take() else { return Ok(()) };
        let shared = Arc::clone(&self.shared);
        self.accept_thread = Some(thread::spawn(move || accept_loop(listener, upstream, shared)));
        Ok(())
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port` of the proxy, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Every request that got a response, in the order the requests arrived.
    pub fn frames(&self) -> Vec<RecordedFrame> {
        self.all_frames().into_iter().filter(|f| f.response.is_some()).collect()
    }

    /// Every request, answered or not, in arrival order.
    pub fn all_frames(&self) -> Vec<RecordedFrame> {
        let frames = self.shared.frames.lock().unwrap_or_else(|e| e.into_inner());
        frames[self.shared.cleared.load(Ordering::SeqCst).min(frames.len())..].to_vec()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        let frames = self.shared.frames.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.cleared.store(frames.len(), Ordering::SeqCst);
    }

    /// Writes the first answered request of each (API, version) as fixture files
    /// `<dir>/<peer>/<ApiName>-v<version>-request.bin` and `...-response.bin`, each holding the
    /// frame after its size prefix. Returns the files written.
    pub fn save_fixtures(&self, dir: &Path, peer: &str) -> io::Result<Vec<PathBuf>> {
        let out = dir.join(peer);
        fs::create_dir_all(&out)?;
        let mut seen = BTreeSet::new();
        let mut written = Vec::new();
        for frame in self.frames() {
            if !seen.insert((frame.api_key, frame.api_version)) {
                continue;
            }
            let stem = format!("{}-v{}", frame.api_name(), frame.api_version);
            let request = out.join(format!("{stem}-request.bin"));
            fs::write(&request, &frame.request)?;
            let response = out.join(format!("{stem}-response.bin"));
            fs::write(&response, frame.response.as_deref().unwrap_or_default())?;
            written.extend([request, response]);
        }
        Ok(written)
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        if self.accept_thread.is_some() {
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
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { continue };
        {
            let mut streams = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
            if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                streams.extend([a, b]);
            }
        }
        // Correlation id -> index in `frames`, for this connection.
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let (sh, p) = (Arc::clone(&shared), Arc::clone(&pending));
        thread::spawn(move || pump(client, s2, Direction::Requests, id, sh, p));
        let sh = Arc::clone(&shared);
        thread::spawn(move || pump(server, c2, Direction::Responses, id, sh, pending));
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Requests,
    Responses,
}

/// Copies `from` to `to` until either side closes, recording each complete frame before
/// forwarding the bytes that complete it.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    direction: Direction,
    connection: usize,
    shared: Arc<Shared>,
    pending: Arc<Mutex<HashMap<i32, usize>>>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut framing_ok = true;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if framing_ok {
            partial.extend_from_slice(&chunk[..n]);
            framing_ok = record_frames(&mut partial, direction, connection, &shared, &pending);
            if !framing_ok {
                partial = Vec::new();
            }
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Takes every complete frame off the front of `buf` and records it. Returns false when the
/// stream cannot be Kafka framing (a negative or huge size); the proxy then only forwards.
fn record_frames(
    buf: &mut Vec<u8>,
    direction: Direction,
    connection: usize,
    shared: &Shared,
    pending: &Mutex<HashMap<i32, usize>>,
) -> bool {
    const MAX_FRAME: usize = klamm_protocol::header::DEFAULT_MAX_FRAME;
    let mut start = 0;
    loop {
        let len = match klamm_protocol::frame_len(&buf[start..], MAX_FRAME) {
            Ok(Some(len)) => len,
            Ok(None) => break,
            Err(_) => return false,
        };
        let frame = Bytes::copy_from_slice(&buf[start + 4..start + 4 + len]);
        start += 4 + len;
        match direction {
            Direction::Requests => {
                if frame.len() < 8 {
                    continue;
                }
                let api_key = ApiKey(i16::from_be_bytes([frame[0], frame[1]]));
                let api_version = i16::from_be_bytes([frame[2], frame[3]]);
                let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let mut frames = shared.frames.lock().unwrap_or_else(|e| e.into_inner());
                pending.lock().unwrap_or_else(|e| e.into_inner()).insert(correlation_id, frames.len());
                frames.push(RecordedFrame {
                    connection,
                    api_key,
                    api_version,
                    correlation_id,
                    request: frame,
                    response: None,
                });
            }
            Direction::Responses => {
                if frame.len() < 4 {
                    continue;
                }
                let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                let index = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&correlation_id);
                if let Some(index) = index {
                    let mut frames = shared.frames.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(f) = frames.get_mut(index) {
                        f.response = Some(frame);
                    }
                }
            }
        }
    }
    buf.drain(..start);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(contents: &[u8]) -> Vec<u8> {
        let mut out = (contents.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(contents);
        out
    }

    #[test]
    fn frames_split_across_reads_are_recorded_and_paired() {
        let shared = Shared::default();
        let pending = Mutex::new(HashMap::new());
        // Two requests (ApiVersions v3 id 7, Metadata v12 id 8) arriving in awkward pieces.
        let mut wire = frame(&[0, 18, 0, 3, 0, 0, 0, 7, 0xaa]);
        wire.extend(frame(&[0, 3, 0, 12, 0, 0, 0, 8, 0xbb, 0xcc]));
        let mut buf = Vec::new();
        for piece in wire.chunks(3) {
            buf.extend_from_slice(piece);
            assert!(record_frames(&mut buf, Direction::Requests, 0, &shared, &pending));
        }
        assert!(buf.is_empty());
        // The responses come back in the other order.
        let mut buf = frame(&[0, 0, 0, 8, 1]);
        buf.extend(frame(&[0, 0, 0, 7, 2]));
        assert!(record_frames(&mut buf, Direction::Responses, 0, &shared, &pending));

        let frames = shared.frames.lock().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].api_key, frames[0].api_version, frames[0].correlation_id), (ApiKey(18), 3, 7));
        assert_eq!(&frames[0].request[..], &[0, 18, 0, 3, 0, 0, 0, 7, 0xaa]);
        assert_eq!(frames[0].response.as_deref(), Some(&[0, 0, 0, 7, 2][..]));
        assert_eq!(frames[1].api_key, ApiKey(3));
        assert_eq!(frames[1].response.as_deref(), Some(&[0, 0, 0, 8, 1][..]));
    }

    #[test]
    fn a_stream_that_is_not_kafka_stops_the_recording() {
        let shared = Shared::default();
        let pending = Mutex::new(HashMap::new());
        let mut buf = vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(!record_frames(&mut buf, Direction::Requests, 0, &shared, &pending));
        assert!(shared.frames.lock().unwrap().is_empty());
    }
}
