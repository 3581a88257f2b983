//! The harness's one TCP proxy: [`FaultProxy`] forwards Kafka frames between clients and a
//! broker, lets [`FrameHook`]s see (and rewrite) each frame, and breaks the traffic on command.
//!
//! Each accepted client connection gets its own upstream connection and two threads, one per
//! direction. A thread reads the 4-byte size prefixed frames off its socket and forwards each one
//! whole once it is complete; a stream that cannot be Kafka framing (a negative or huge size) is
//! forwarded byte for byte from then on. [`RecordingProxy`](crate::RecordingProxy) and
//! [`VersionCapProxy`](crate::VersionCapProxy) are a `FaultProxy` with a hook; any proxy can also
//! inject faults:
//!
//! - [`cut_all`](FaultProxy::cut_all) closes every client and upstream connection at once, in the
//!   middle of whatever was passing; [`cut_every`](FaultProxy::cut_every) does that periodically
//!   from a background thread until stopped.
//! - [`cut_at_frame`](FaultProxy::cut_at_frame) cuts at a chosen frame: before it (a response
//!   the broker sent is lost), inside it (the peer gets half a frame) or after it.
//! - [`stall`](FaultProxy::stall) holds broker-to-client bytes for a while with the sockets
//!   open, so that requests time out and pile up.
//! - [`refuse`](FaultProxy::refuse) accepts new connections and closes them at once;
//!   [`stop_listening`](FaultProxy::stop_listening) closes the listening socket so that connects
//!   fail with "connection refused", and [`resume_listening`](FaultProxy::resume_listening) binds
//!   the same port again.
//! - Counters: connections accepted and refused, connections cut, frames forwarded.
//!
//! Kafka clients connect to the addresses a Metadata response advertises, not only to their
//! bootstrap address. To keep every connection on the proxy, the broker must advertise the
//! proxy's port ([`BrokerBuilder::advertised_port`]): [`FaultProxy::in_front_of`] and
//! [`FaultProxy::start_broker`] do that.
//!
//! # A broker that is down at start, then comes up on the same address
//!
//! Bind the proxy first: its address is the broker's address for the client. Until the broker
//! runs, the proxy refuses; then the broker starts advertising the proxy's port and the proxy
//! forwards to it.
//!
//! ```no_run
//! use klamm_tests::{Broker, BrokerKind, FaultProxy};
//!
//! let proxy = FaultProxy::bind().unwrap();
//! proxy.refuse(true); // or proxy.stop_listening(), for "connection refused"
//! let bootstrap = proxy.bootstrap(); // give this to the client now; it cannot get in
//! // ... the client fails, with a clear error in bounded time ...
//! let _broker = proxy.start_broker(Broker::builder(BrokerKind::Kafka)).unwrap();
//! proxy.refuse(false);
//! // ... the client, still using `bootstrap`, now reaches the broker ...
//! ```
//!
//! Connections accepted while the proxy has no upstream yet (and does not refuse) wait until
//! [`forward_to`](FaultProxy::forward_to) names one, as a client would wait in a listen backlog.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use klamm_protocol::frame_len;
use klamm_protocol::header::DEFAULT_MAX_FRAME;

use crate::broker::{Broker, BrokerBuilder};
use crate::Error;

/// How long the accept thread sleeps when no connection is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// How long the proxy waits for the upstream connection to open.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sees the frames passing through a [`FaultProxy`]. Frames are given without their 4-byte
/// size prefix. Hooks run on the proxy's threads, both directions of a connection at once, so
/// state kept per connection must be keyed by the connection number.
pub trait FrameHook: Send + Sync {
    /// A request frame from client connection `connection` (numbered from 0 in accept order),
    /// before any of it is forwarded to the broker.
    fn request(&self, connection: usize, frame: &Bytes) {
        let _ = (connection, frame);
    }

    /// A response frame for client connection `connection`, before it is forwarded; returns the
    /// frame to forward instead (the same one to leave it as it is). A response the proxy
    /// withholds (see [`CutPoint::Before`]) is not shown.
    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        let _ = connection;
        frame
    }

    /// Both directions of connection `connection` have ended.
    fn closed(&self, connection: usize) {
        let _ = connection;
    }
}

/// Which way frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to broker.
    Requests,
    /// Broker to client.
    Responses,
}

/// Where [`FaultProxy::cut_at_frame`] cuts, relative to the frame that triggers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// The frame is not forwarded at all: a request never reaches the broker, a response the
    /// broker sent never reaches the client.
    Before,
    /// The size prefix and the first half of the frame are forwarded, then the cut: the peer
    /// is left with a partial frame.
    Inside,
    /// The whole frame is forwarded, then the cut: a request reached the broker, but its
    /// response cannot come back.
    After,
}

/// A cut armed by [`FaultProxy::cut_at_frame`]: fires on the `remaining`-th frame.
#[derive(Debug, Clone, Copy)]
struct Trigger {
    direction: Option<Direction>,
    remaining: u64,
    point: CutPoint,
}

/// One client connection: its sockets (clones, to shut them down from outside) and the flag
/// its threads watch.
struct Conn {
    client: TcpStream,
    upstream: Option<TcpStream>,
    cut: Arc<AtomicBool>,
}

impl Conn {
    fn shut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(upstream) = &self.upstream {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

struct Shared {
    addr: SocketAddr,
    hooks: Vec<Arc<dyn FrameHook>>,
    listener: Mutex<Option<TcpListener>>,
    upstream: Mutex<Option<SocketAddr>>,
    /// Signalled when the upstream is set, a connection is cut or the proxy stops.
    wake: Condvar,
    stopped: AtomicBool,
    refusing: AtomicBool,
    conns: Mutex<HashMap<usize, Conn>>,
    stall_until: Mutex<Option<Instant>>,
    trigger: Mutex<Option<Trigger>>,
    accepted: AtomicUsize,
    refused: AtomicU64,
    cuts: AtomicU64,
    requests: AtomicU64,
    responses: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP proxy on a 127.0.0.1 port in front of one broker, with fault injection. Dropping it
/// closes the listener and every connection (which does not count as cuts).
///
/// Faults, all callable from the test while traffic flows: [`cut_all`](Self::cut_all),
/// [`cut_every`](Self::cut_every), [`cut_at_frame`](Self::cut_at_frame),
/// [`cut_after_frames`](Self::cut_after_frames), [`stall`](Self::stall),
/// [`refuse`](Self::refuse), [`stop_listening`](Self::stop_listening).
///
/// A broker that is down at start and comes up on a known address: [`bind`](Self::bind) the
/// proxy, [`refuse`](Self::refuse)`(true)`, give the client [`bootstrap`](Self::bootstrap);
/// later [`start_broker`](Self::start_broker) (the broker advertises the proxy's port) and
/// `refuse(false)`.
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.upstream())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port. Connections are accepted at once but forwarded only
    /// once [`forward_to`](Self::forward_to) names the broker.
    pub fn bind() -> io::Result<FaultProxy> {
        Self::bind_with(Vec::new())
    }

    /// Like [`bind`](Self::bind), with `hooks` called for every frame, in order (for responses,
    /// each hook gets what the previous one returned).
    pub fn bind_with(hooks: Vec<Arc<dyn FrameHook>>) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            hooks,
            listener: Mutex::new(Some(listener)),
            upstream: Mutex::new(None),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            stall_until: Mutex::new(None),
            trigger: Mutex::new(None),
            accepted: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            responses: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let accept_thread =
            thread::Builder::new().name("proxy-accept".into()).spawn(move || accept_loop(&s))?;
        Ok(FaultProxy { shared, accept_thread: Some(accept_thread) })
    }

    /// A proxy forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let proxy = Self::bind()?;
        proxy.forward_to(upstream);
        Ok(proxy)
    }

    /// Binds a proxy and starts a broker from `builder` behind it (see
    /// [`start_broker`](Self::start_broker)).
    pub fn in_front_of(builder: BrokerBuilder) -> Result<(FaultProxy, Broker), Error> {
        let proxy = Self::bind()?;
        let broker = proxy.start_broker(builder)?;
        Ok((proxy, broker))
    }

    /// Starts a broker from `builder` that advertises this proxy's port, and forwards to it:
    /// clients given [`bootstrap`](Self::bootstrap) stay on the proxy for every connection.
    pub fn start_broker(&self, builder: BrokerBuilder) -> Result<Broker, Error> {
        let broker = builder.advertised_port(self.port()).start()?;
        self.forward_to(broker.addr());
        Ok(broker)
    }

    /// Forwards connections to `upstream` from now on: the ones waiting for an upstream and
    /// every new one. Connections already forwarded stay where they are.
    pub fn forward_to(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = Some(upstream);
        self.shared.wake.notify_all();
    }

    /// Where connections are forwarded, once set.
    pub fn upstream(&self) -> Option<SocketAddr> {
        *lock(&self.shared.upstream)
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `127.0.0.1:port` of the proxy, for bootstrap lists.
    pub fn bootstrap(&self) -> String {
        self.shared.addr.to_string()
    }

    /// Closes every open client and upstream connection now, wherever their frames are.
    /// Returns how many connections were cut.
    pub fn cut_all(&self) -> usize {
        self.shared.cut_all()
    }

    /// Arms a cut at the `n`-th frame from now travelling in `direction` (counted over all
    /// connections; `n = 1` is the next one), at `point` of that frame. Every connection is cut
    /// then. Replaces a cut armed before; `n = 0` cuts now.
    pub fn cut_at_frame(&self, direction: Direction, n: u64, point: CutPoint) {
        self.shared.arm(Some(direction), n, point);
    }

    /// Arms a cut right after the `n`-th frame from now has been forwarded, counting both
    /// directions. Replaces a cut armed before; `n = 0` cuts now.
    pub fn cut_after_frames(&self, n: u64) {
        self.shared.arm(None, n, CutPoint::After);
    }

    /// Disarms a cut armed by [`cut_at_frame`](Self::cut_at_frame) or
    /// [`cut_after_frames`](Self::cut_after_frames) that has not fired.
    pub fn disarm(&self) {
        *lock(&self.shared.trigger) = None;
    }

    /// Cuts every connection again and again from a background thread, each pause drawn from
    /// `[period / 2, 3 * period / 2)`, until the returned guard is stopped or dropped.
    pub fn cut_every(&self, period: Duration) -> PeriodicCut {
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&self.shared);
        let thread = thread::Builder::new()
            .name("proxy-cutter".into())
            .spawn(move || {
                let mut rng = Jitter::seeded();
                let mut cut = 0;
                loop {
                    match stopped.recv_timeout(rng.around(period)) {
                        Err(mpsc::RecvTimeoutError::Timeout) if !shared.stopped.load(Ordering::SeqCst) => {
                            cut += shared.cut_all();
                        }
                        _ => return cut,
                    }
                }
            })
            .expect("spawning the cutter thread");
        PeriodicCut { stop: Some(stop), thread: Some(thread) }
    }

    /// Holds every broker-to-client byte from now until `duration` has passed, with the
    /// sockets open; requests still flow to the broker. Replaces a stall set before.
    pub fn stall(&self, duration: Duration) {
        *lock(&self.shared.stall_until) = Some(Instant::now() + duration);
    }

    /// Ends a stall now.
    pub fn resume(&self) {
        *lock(&self.shared.stall_until) = None;
    }

    /// While `on`, accepts new connections and closes them at once, unread (a broker that is
    /// down behind a listening address). Open connections are left alone.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::SeqCst);
    }

    /// Closes the listening socket: connects fail with "connection refused" (a broker that is
    /// down). Open connections are left alone; [`cut_all`](Self::cut_all) closes them too.
    pub fn stop_listening(&self) {
        drop(lock(&self.shared.listener).take());
    }

    /// Listens again on the same port after [`stop_listening`](Self::stop_listening). Fails if
    /// something else took the port meanwhile.
    pub fn resume_listening(&self) -> io::Result<()> {
        let mut slot = lock(&self.shared.listener);
        if slot.is_none() {
            let listener = TcpListener::bind(self.shared.addr)?;
            listener.set_nonblocking(true)?;
            *slot = Some(listener);
        }
        Ok(())
    }

    /// Connections accepted and forwarded (or waiting for an upstream), refused ones not
    /// counted.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed at once by [`refuse`](Self::refuse).
    pub fn connections_refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Connections cut so far, by any of the cutting faults.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Request frames forwarded whole to the broker.
    pub fn requests_forwarded(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Response frames forwarded whole to clients.
    pub fn responses_forwarded(&self) -> u64 {
        self.shared.responses.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        drop(lock(&self.shared.listener).take());
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for (_, conn) in lock(&self.shared.conns).drain() {
            conn.shut();
        }
        self.shared.wake.notify_all();
    }
}

/// The background cutter of [`FaultProxy::cut_every`]. Dropping it stops the cutting.
#[derive(Debug)]
pub struct PeriodicCut {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<usize>>,
}

impl PeriodicCut {
    /// Stops the cutting and returns how many connections it cut.
    pub fn stop(mut self) -> usize {
        self.finish()
    }

    fn finish(&mut self) -> usize {
        drop(self.stop.take());
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for PeriodicCut {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Pauses that vary, so that periodic cuts land at different points of the traffic.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Jitter(nanos | 1)
    }

    /// A duration in `[period / 2, 3 * period / 2)`.
    fn around(&mut self, period: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let fraction = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        period.mul_f64(0.5 + fraction)
    }
}

impl Shared {
    fn cut_all(&self) -> usize {
        let conns: Vec<Conn> = lock(&self.conns).drain().map(|(_, c)| c).collect();
        // Counted first: a client that sees its connection end also sees the cut counted.
        self.cuts.fetch_add(conns.len() as u64, Ordering::SeqCst);
        for conn in &conns {
            conn.shut();
        }
        self.wake.notify_all();
        conns.len()
    }

    fn arm(&self, direction: Option<Direction>, n: u64, point: CutPoint) {
        if n == 0 {
            *lock(&self.trigger) = None;
            self.cut_all();
        } else {
            *lock(&self.trigger) = Some(Trigger { direction, remaining: n, point });
        }
    }

    /// Counts a frame travelling in `direction` against the armed cut; returns where to cut
    /// if this frame fires it.
    fn fires(&self, direction: Direction) -> Option<CutPoint> {
        let mut trigger = lock(&self.trigger);
        let t = trigger.as_mut()?;
        if t.direction.is_some_and(|d| d != direction) {
            return None;
        }
        t.remaining -= 1;
        if t.remaining > 0 {
            return None;
        }
        trigger.take().map(|t| t.point)
    }

    /// Waits while responses are stalled; false if the connection was cut or the proxy stopped
    /// meanwhile.
    fn wait_out_stall(&self, cut: &AtomicBool) -> bool {
        loop {
            if cut.load(Ordering::SeqCst) || self.stopped.load(Ordering::SeqCst) {
                return false;
            }
            let until = *lock(&self.stall_until);
            match until.map(|t| t.saturating_duration_since(Instant::now())) {
                Some(left) if !left.is_zero() => thread::sleep(left.min(Duration::from_millis(10))),
                _ => return true,
            }
        }
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stopped.load(Ordering::SeqCst) {
        let accepted = lock(&shared.listener).as_ref().map(TcpListener::accept);
        match accepted {
            Some(Ok((client, _))) => admit(shared, client),
            Some(Err(_)) | None => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Refuses `client` or registers it and starts its thread.
fn admit(shared: &Arc<Shared>, client: TcpStream) {
    if shared.refusing.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    // Accepted sockets must block whatever the listener does.
    if client.set_nonblocking(false).is_err() {
        return;
    }
    let _ = client.set_nodelay(true);
    let Ok(handle) = client.try_clone() else { return };
    let id = shared.accepted.fetch_add(1, Ordering::SeqCst);
    let cut = Arc::new(AtomicBool::new(false));
    lock(&shared.conns).insert(id, Conn { client: handle, upstream: None, cut: Arc::clone(&cut) });
    let s = Arc::clone(shared);
    let spawned =
        thread::Builder::new().name(format!("proxy-conn-{id}")).spawn(move || serve(&s, id, client, cut));
    if spawned.is_err() {
        if let Some(conn) = lock(&shared.conns).remove(&id) {
            conn.shut();
        }
    }
}

/// One client connection: waits for an upstream, connects to it, then forwards both ways.
fn serve(shared: &Arc<Shared>, id: usize, client: TcpStream, cut: Arc<AtomicBool>) {
    let upstream = {
        let mut slot = lock(&shared.upstream);
        loop {
            if cut.load(Ordering::SeqCst) || shared.stopped.load(Ordering::SeqCst) {
                break None;
            }
            if let Some(addr) = *slot {
                break Some(addr);
            }
            slot = shared
                .wake
                .wait_timeout(slot, Duration::from_millis(100))
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    };
    let server = upstream.and_then(|addr| TcpStream::connect_timeout(&addr, UPSTREAM_CONNECT_TIMEOUT).ok());
    let streams = server.and_then(|server| {
        let _ = server.set_nodelay(true);
        Some((server.try_clone().ok()?, server.try_clone().ok()?, server, client.try_clone().ok()?))
    });
    let registered = streams.and_then(|(handle, server_r, server_w, client_w)| {
        let mut conns = lock(&shared.conns);
        // A cut between accept and now took the entry: the connection is gone.
        let conn = conns.get_mut(&id)?;
        conn.upstream = Some(handle);
        Some((server_r, server_w, client_w))
    });
    let Some((server_r, server_w, client_w)) = registered else {
        if let Some(conn) = lock(&shared.conns).remove(&id) {
            conn.shut();
        }
        let _ = client.shutdown(Shutdown::Both);
        for hook in &shared.hooks {
            hook.closed(id);
        }
        return;
    };
    let live = Arc::new(AtomicUsize::new(2));
    let (s, c, l) = (Arc::clone(shared), Arc::clone(&cut), Arc::clone(&live));
    let responses = thread::Builder::new()
        .name(format!("proxy-resp-{id}"))
        .spawn(move || pump(&s, id, Direction::Responses, server_r, client_w, &c, &l));
    if responses.is_err() {
        live.fetch_sub(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
    }
    pump(shared, id, Direction::Requests, client, server_w, &cut, &live);
}

/// Forwards frames from `from` to `to` until either side closes or the connection is cut.
fn pump(
    shared: &Shared,
    id: usize,
    direction: Direction,
    mut from: TcpStream,
    mut to: TcpStream,
    cut: &AtomicBool,
    live: &AtomicUsize,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut framer = Framer::default();
    'read: loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&chunk[..n]);
        loop {
            match framer.next_frame() {
                Ok(Some(whole)) => {
                    if !forward_frame(shared, id, direction, whole, &mut to, cut) {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(raw) => {
                    let stalled_ok = direction == Direction::Requests || shared.wait_out_stall(cut);
                    if !stalled_ok || to.write_all(&raw).is_err() {
                        break 'read;
                    }
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
    if live.fetch_sub(1, Ordering::SeqCst) == 1 {
        if let Some(conn) = lock(&shared.conns).remove(&id) {
            conn.shut();
        }
        for hook in &shared.hooks {
            hook.closed(id);
        }
    }
}

/// Applies stall, armed cut and hooks to one frame (`whole`: with its size prefix) and forwards
/// it. False when the connection is over.
fn forward_frame(
    shared: &Shared,
    id: usize,
    direction: Direction,
    whole: Bytes,
    to: &mut TcpStream,
    cut: &AtomicBool,
) -> bool {
    if direction == Direction::Responses && !shared.wait_out_stall(cut) {
        return false;
    }
    let point = shared.fires(direction);
    if point == Some(CutPoint::Before) {
        shared.cut_all();
        return false;
    }
    let whole = match direction {
        Direction::Requests => {
            let frame = whole.slice(4..);
            for hook in &shared.hooks {
                hook.request(id, &frame);
            }
            whole
        }
        Direction::Responses if shared.hooks.is_empty() => whole,
        Direction::Responses => {
            let mut frame = whole.slice(4..);
            for hook in &shared.hooks {
                frame = hook.response(id, frame);
            }
            with_prefix(&frame)
        }
    };
    if point == Some(CutPoint::Inside) {
        let half = 4 + (whole.len() - 4) / 2;
        let _ = to.write_all(&whole[..half]);
        shared.cut_all();
        return false;
    }
    let counter = match direction {
        Direction::Requests => &shared.requests,
        Direction::Responses => &shared.responses,
    };
    // Counted first: a peer that has the frame also sees it counted.
    counter.fetch_add(1, Ordering::SeqCst);
    if to.write_all(&whole).is_err() {
        counter.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    if point == Some(CutPoint::After) {
        shared.cut_all();
        return false;
    }
    true
}

/// `frame` behind its 4-byte size prefix.
fn with_prefix(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    out.freeze()
}

/// Splits a byte stream into size-prefixed frames. Once the stream turns out not to be Kafka
/// framing, it hands back the bytes as they come.
#[derive(Default)]
struct Framer {
    buf: BytesMut,
    raw: bool,
}

impl Framer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame with its size prefix, `Ok(None)` if none is complete yet, or
    /// `Err(bytes)`: the stream is not Kafka framing and these bytes are to be forwarded as
    /// they are (as is everything pushed from now on).
    fn next_frame(&mut self) -> Result<Option<Bytes>, Bytes> {
        if self.raw {
            return if self.buf.is_empty() { Ok(None) } else { Err(self.buf.split().freeze()) };
        }
        match frame_len(&self.buf, DEFAULT_MAX_FRAME) {
            Ok(Some(len)) => Ok(Some(self.buf.split_to(4 + len).freeze())),
            Ok(None) => Ok(None),
            Err(_) => {
                self.raw = true;
                Err(self.buf.split().freeze())
            }
        }
    }
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
    fn frames_split_across_reads_come_out_whole() {
        let mut wire = frame(&[1, 2, 3]);
        wire.extend(frame(&[]));
        wire.extend(frame(&[4, 5, 6, 7, 8]));
        let mut framer = Framer::default();
        let mut got = Vec::new();
        for piece in wire.chunks(3) {
            framer.push(piece);
            while let Some(f) = framer.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, [frame(&[1, 2, 3]), frame(&[]), frame(&[4, 5, 6, 7, 8])]);
    }

    #[test]
    fn a_stream_that_is_not_kafka_passes_raw() {
        let mut framer = Framer::default();
        framer.push(&frame(&[9]));
        framer.push(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(framer.next_frame().unwrap().unwrap().to_vec(), frame(&[9]));
        assert_eq!(framer.next_frame().unwrap_err().to_vec(), [0xff, 0xff, 0xff, 0xff, 1]);
        framer.push(&[0, 0, 0, 1, 7]);
        assert_eq!(framer.next_frame().unwrap_err().to_vec(), [0, 0, 0, 1, 7]);
        assert_eq!(framer.next_frame(), Ok(None));
    }

    #[test]
    fn an_armed_cut_fires_on_the_nth_frame_of_its_direction() {
        let proxy = FaultProxy::bind().unwrap();
        proxy.cut_at_frame(Direction::Responses, 2, CutPoint::Inside);
        assert_eq!(proxy.shared.fires(Direction::Requests), None);
        assert_eq!(proxy.shared.fires(Direction::Responses), None);
        assert_eq!(proxy.shared.fires(Direction::Requests), None);
        assert_eq!(proxy.shared.fires(Direction::Responses), Some(CutPoint::Inside));
        assert_eq!(proxy.shared.fires(Direction::Responses), None, "it fires once");
        proxy.cut_after_frames(2);
        assert_eq!(proxy.shared.fires(Direction::Requests), None);
        assert_eq!(proxy.shared.fires(Direction::Responses), Some(CutPoint::After));
    }

    #[test]
    fn jitter_stays_within_half_a_period() {
        let mut jitter = Jitter::seeded();
        let period = Duration::from_millis(100);
        for _ in 0..1000 {
            let d = jitter.around(period);
            assert!(d >= period / 2 && d < period * 3 / 2, "{d:?}");
        }
    }
}
