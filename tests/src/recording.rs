//! Recording the Kafka frames that pass through a proxy, to capture fixtures from real clients
//! and to see exactly what a client sent.
//!
//! [`Recorder`] is a [`FrameHook`]: a request frame's header gives its API key, version and
//! correlation id; a response frame starts with the correlation id, which pairs it with its
//! request on the same connection. [`RecordingProxy`] is a [`FaultProxy`] with a recorder.
//!
//! A frame is recorded before any of it is forwarded, so by the time a client has seen a
//! response, the request and the response are both in [`Recorder::frames`]. A response the
//! proxy withholds (a fault) is not recorded: the recording is what the client saw.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use klamm_protocol::ApiKey;

use crate::broker::{Broker, BrokerBuilder};
use crate::proxy::{FaultProxy, FrameHook};
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records every request frame and pairs it with its response. Give it to
/// [`FaultProxy::bind_with`] to record on a fault proxy.
#[derive(Debug, Default)]
pub struct Recorder {
    frames: Mutex<Vec<RecordedFrame>>,
    // Frames before this index were cleared. They stay in `frames` because pending responses
    // refer to frames by index.
    cleared: AtomicUsize,
    /// (connection, correlation id) -> index in `frames` of the requests awaiting an answer.
    pending: Mutex<HashMap<(usize, i32), usize>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Arc<Recorder> {
        Arc::default()
    }

    /// Every request that got a response, in the order the requests arrived.
    pub fn frames(&self) -> Vec<RecordedFrame> {
        self.all_frames().into_iter().filter(|f| f.response.is_some()).collect()
    }

    /// Every request, answered or not, in arrival order.
    pub fn all_frames(&self) -> Vec<RecordedFrame> {
        let frames = lock(&self.frames);
        frames[self.cleared.load(Ordering::SeqCst).min(frames.len())..].to_vec()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        let frames = lock(&self.frames);
        self.cleared.store(frames.len(), Ordering::SeqCst);
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

impl FrameHook for Recorder {
    fn request(&self, connection: usize, frame: &Bytes) {
        if frame.len() < 8 {
            return;
        }
        let api_key = ApiKey(i16::from_be_bytes([frame[0], frame[1]]));
        let api_version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let mut frames = lock(&self.frames);
        lock(&self.pending).insert((connection, correlation_id), frames.len());
        frames.push(RecordedFrame {
            connection,
            api_key,
            api_version,
            correlation_id,
            request: frame.clone(),
            response: None,
        });
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        if frame.len() >= 4 {
            let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let index = lock(&self.pending).remove(&(connection, correlation_id));
            if let Some(index) = index {
                if let Some(f) = lock(&self.frames).get_mut(index) {
                    f.response = Some(frame.clone());
                }
            }
        }
        frame
    }

    fn closed(&self, connection: usize) {
        lock(&self.pending).retain(|(c, _), _| *c != connection);
    }
}

/// A recording proxy on a 127.0.0.1 port: a [`FaultProxy`] with a [`Recorder`]. Dropping it
/// closes the listener and every connection.
#[derive(Debug)]
pub struct RecordingProxy {
    proxy: FaultProxy,
    recorder: Arc<Recorder>,
}

impl RecordingProxy {
    /// Listens on a free 127.0.0.1 port but forwards nothing until
    /// [`forward_to`](Self::forward_to); clients that connect before wait.
    pub fn bind() -> io::Result<RecordingProxy> {
        let recorder = Recorder::new();
        let proxy = FaultProxy::bind_with(vec![Arc::clone(&recorder) as Arc<dyn FrameHook>])?;
        Ok(RecordingProxy { proxy, recorder })
    }

    /// A proxy forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<RecordingProxy> {
        let proxy = Self::bind()?;
        proxy.forward_to(upstream);
        Ok(proxy)
    }

    /// Starts a broker from `builder` that advertises this proxy, with the proxy in front of
    /// it: clients given [`bootstrap`](Self::bootstrap) stay on the proxy for every connection.
    pub fn in_front_of(builder: BrokerBuilder) -> Result<(RecordingProxy, Broker), Error> {
        let proxy = Self::bind()?;
        let broker = proxy.proxy.start_broker(builder)?;
        Ok((proxy, broker))
    }

    /// Forwards accepted connections to `upstream` from now on.
    pub fn forward_to(&self, upstream: SocketAddr) {
        self.proxy.forward_to(upstream);
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.proxy.port()
    }

    /// `127.0.0.1:port` of the proxy, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.proxy.bootstrap()
    }

    /// The proxy underneath, for its faults and counters.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    /// The recorder.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Every request that got a response, in the order the requests arrived.
    pub fn frames(&self) -> Vec<RecordedFrame> {
        self.recorder.frames()
    }

    /// Every request, answered or not, in arrival order.
    pub fn all_frames(&self) -> Vec<RecordedFrame> {
        self.recorder.all_frames()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.recorder.clear();
    }

    /// See [`Recorder::save_fixtures`].
    pub fn save_fixtures(&self, dir: &Path, peer: &str) -> io::Result<Vec<PathBuf>> {
        self.recorder.save_fixtures(dir, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_paired_per_connection() {
        let recorder = Recorder::default();
        // ApiVersions v3 id 7 and Metadata v12 id 8 on connection 0, Metadata id 7 on connection 1.
        recorder.request(0, &Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 7, 0xaa]));
        recorder.request(0, &Bytes::from_static(&[0, 3, 0, 12, 0, 0, 0, 8, 0xbb, 0xcc]));
        recorder.request(1, &Bytes::from_static(&[0, 3, 0, 12, 0, 0, 0, 7]));
        // The responses come back in another order; the hook forwards them unchanged.
        let back = recorder.response(0, Bytes::from_static(&[0, 0, 0, 8, 1]));
        assert_eq!(&back[..], &[0, 0, 0, 8, 1]);
        recorder.response(1, Bytes::from_static(&[0, 0, 0, 7, 3]));
        recorder.response(0, Bytes::from_static(&[0, 0, 0, 7, 2]));

        let frames = recorder.frames();
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].api_key, frames[0].api_version, frames[0].correlation_id), (ApiKey(18), 3, 7));
        assert_eq!(&frames[0].request[..], &[0, 18, 0, 3, 0, 0, 0, 7, 0xaa]);
        assert_eq!(frames[0].response.as_deref(), Some(&[0, 0, 0, 7, 2][..]));
        assert_eq!(frames[1].api_key, ApiKey(3));
        assert_eq!(frames[1].response.as_deref(), Some(&[0, 0, 0, 8, 1][..]));
        assert_eq!((frames[2].connection, frames[2].response.as_deref()), (1, Some(&[0, 0, 0, 7, 3][..])));
    }

    #[test]
    fn short_or_unknown_frames_record_nothing_and_clear_forgets() {
        let recorder = Recorder::default();
        recorder.request(0, &Bytes::from_static(&[0, 18, 0]));
        recorder.response(0, Bytes::from_static(&[0, 0, 0, 9, 1]));
        assert!(recorder.all_frames().is_empty());
        recorder.request(0, &Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 1]));
        assert_eq!(recorder.all_frames().len(), 1);
        assert!(recorder.frames().is_empty(), "not answered yet");
        recorder.clear();
        assert!(recorder.all_frames().is_empty());
        recorder.closed(0);
        recorder.response(0, Bytes::from_static(&[0, 0, 0, 1]));
        assert!(recorder.frames().is_empty(), "the connection was closed");
    }
}
