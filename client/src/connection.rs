//! One connection to one broker: the TCP socket (wrapped in TLS when `security.protocol` says
//! so), ApiVersions negotiation, and pipelined requests matched to their responses by
//! correlation id.
//!
//! A [`Connection`] is a cheap handle. One tokio task owns the socket and runs two halves:
//!
//! - the writer takes encoded requests from a bounded channel (back-pressure when the broker is
//!   slow), records each in the in-flight map *before* writing it (so its response can never
//!   arrive first), and writes whatever is queued in one go;
//! - the reader reads size-prefixed frames into one reusable buffer (refusing size prefixes above
//!   [`ConnectionConfig::max_frame`] before reading them) and hands each frame to the request
//!   with its correlation id.
//!
//! The two halves run concurrently inside the task: a writer blocked on a full socket never
//! stops the reader, so a broker that answers while we are still writing cannot deadlock us.
//!
//! Invariants:
//! - When the socket dies (EOF, IO error, an undecodable frame, [`Connection::close`]), the task
//!   records one cause, fails every in-flight request with it and stops; later sends fail fast
//!   with [`ErrorKind::Closed`]. The outcome of requests that were in flight is unknown.
//! - The number of requests in flight is bounded by [`ConnectionConfig::max_in_flight`]: each
//!   holds a semaphore permit until its response arrives, its caller gives up (timeout), or the
//!   connection dies. A response that arrives after its caller timed out is discarded.
//! - Dropping the last handle closes the channel; the task sees it and stops without blocking
//!   the dropper.
//!
//! Requests without a response (Produce with acks=0) are answered locally once written.
//!
//! With `SASL_PLAINTEXT` or `SASL_SSL`, the connection authenticates right after ApiVersions
//! (the `sasl` module runs the exchange and schedules re-authentication); while it
//! re-authenticates, new requests wait behind a gate that it holds.
//!
//! Transport: a plaintext connection splits its `TcpStream` into owned halves (no lock between
//! reader and writer); a TLS connection splits the tokio-rustls stream with `tokio::io::split`
//! (the two halves share the TLS session behind a lock). The halves are generic, so the
//! plaintext path pays nothing for TLS. The TLS handshake runs within the connect timeout;
//! the certificates are set up in [`crate::tls`].
//!
//! Not here: reconnects (the [`Client`](crate::Client) makes a new connection).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use klamm_protocol::api::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use klamm_protocol::header::DEFAULT_MAX_FRAME;
use klamm_protocol::{decode_response, encode_request, frame_len, ApiKey, ErrorCode, Message, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedRwLockWriteGuard, OwnedSemaphorePermit, RwLock, Semaphore};
use tracing::Instrument;

use crate::error::{Error, ErrorKind};
use crate::sasl::SaslConfig;
use crate::security::SecurityProtocol;
use crate::tls::{self, TlsConfig, TlsFailure};

/// Settings of one broker connection.
///
/// Start from [`ConnectionConfig::default`] and change the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// The client id sent in every request header. Default: `"klamm"`.
    pub client_id: Option<String>,
    /// How long resolving the address and opening the TCP connection may take. Default: 10 s.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response, queueing included. Default: 30 s.
    pub request_timeout: Duration,
    /// The largest response frame accepted; a larger size prefix closes the connection.
    /// Default: [`DEFAULT_MAX_FRAME`] (100 MiB).
    pub max_frame: usize,
    /// How many requests may be in flight at once; more wait for a slot. Default: 1024.
    pub max_in_flight: usize,
    /// Whether to set TCP_NODELAY. Default: true.
    pub tcp_nodelay: bool,
    /// TCP keepalive idle time, or `None` to leave keepalive off. Default: 60 s.
    pub tcp_keepalive: Option<Duration>,
    /// SO_SNDBUF in bytes, or `None` for the OS default. Default: `None`.
    pub send_buffer_size: Option<u32>,
    /// SO_RCVBUF in bytes, or `None` for the OS default. Default: `None`.
    pub recv_buffer_size: Option<u32>,
    /// Whether connections use TLS and SASL (`security.protocol`). Default: plaintext.
    pub security_protocol: SecurityProtocol,
    /// How connections authenticate when `security_protocol` uses SASL (`sasl.*`).
    pub sasl: SaslConfig,
    /// Certificates and checks of TLS connections (`ssl.*`); used when `security_protocol`
    /// is SSL or SASL_SSL. Default: the system's roots, host names verified.
    pub tls: TlsConfig,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: Some("klamm".to_owned()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 1024,
            tcp_nodelay: true,
            tcp_keepalive: Some(Duration::from_secs(60)),
            send_buffer_size: None,
            recv_buffer_size: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl: SaslConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl ConnectionConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::with_source(ErrorKind::Config, None, ConfigError(what.to_owned())));
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        if self.max_frame < 8 {
            return bad("max_frame must be at least 8 bytes");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("timeouts must be longer than zero");
        }
        if self.security_protocol.uses_sasl() {
            self.sasl.validate()?;
        }
        if self.security_protocol.uses_tls() {
            // Reads the certificates and keys now, so a bad file fails the constructor.
            self.tls.client_config()?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConfigError(String);

/// The ApiVersions version this crate asks for first.
const API_VERSIONS_MAX: i16 = <ApiVersionsRequest as Message>::MAX_VERSION;

/// A connection to one broker, with the API versions negotiated on connect.
///
/// Cloning is cheap; all clones share the socket and pipeline their requests over it. The
/// connection closes when [`close`](Connection::close) is called, when the socket dies, or when
/// the last clone is dropped.
///
/// ```no_run
/// use klamm::{Connection, ConnectionConfig};
/// use klamm_protocol::api::metadata::MetadataRequest;
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let conn = Connection::connect("127.0.0.1:9092", ConnectionConfig::default()).await?;
/// let metadata = conn.send(&MetadataRequest::default()).await?;
/// println!("{} brokers", metadata.brokers.len());
/// conn.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Handle>,
}

struct Handle {
    addr: SocketAddr,
    client_id: Option<String>,
    request_timeout: Duration,
    tx: mpsc::Sender<Command>,
    in_flight: Arc<Semaphore>,
    next_correlation_id: AtomicI32,
    state: Arc<State>,
    /// The broker's range per API key, set once negotiation is done.
    versions: OnceLock<HashMap<i16, (i16, i16)>>,
    /// With SASL: requests take it shared until they are queued; re-authentication takes it
    /// exclusively, so that nothing but its own requests is written meanwhile (KIP-368).
    gate: Option<Arc<RwLock<()>>>,
}

/// What the connection task and the handles share.
struct State {
    /// Why the connection stopped; set once, by the task before it fails in-flight requests,
    /// or by [`Connection::abandon`]. Set only while `waiting` is locked, so that no request is
    /// taken in once it is set.
    cause: OnceLock<Error>,
    /// The requests written whose responses are awaited, by correlation id.
    waiting: InFlight,
}

enum Command {
    Request(Outgoing),
    Close(oneshot::Sender<()>),
}

struct Outgoing {
    correlation_id: i32,
    frame: BytesMut,
    waiter: Waiter,
    /// The broker sends no response (Produce with acks=0): the waiter is answered with an empty
    /// frame once the request is written, and no correlation id is kept for it.
    no_response: bool,
}

/// One request in flight: where its response goes, and its slot.
struct Waiter {
    reply: oneshot::Sender<Result<Bytes, Error>>,
    _permit: OwnedSemaphorePermit,
}

type InFlight = Mutex<HashMap<i32, Waiter>>;

impl Connection {
    /// Connects to `addr` (`host:port`), sets the socket options of `config` and negotiates API
    /// versions with ApiVersions.
    ///
    /// Fails with [`ErrorKind::Connect`] when no address of `addr` accepts a connection within
    /// [`ConnectionConfig::connect_timeout`].
    ///
    /// With SASL (`security_protocol` SASL_PLAINTEXT), it then authenticates as
    /// [`ConnectionConfig::sasl`] says, before it returns, and re-authenticates for as long as
    /// it lives when the broker bounds the session. Fails with [`ErrorKind::Authentication`]
    /// when the broker refuses.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection, Error> {
        config.validate()?;
        let stream = open(addr, &config).await?;
        let peer = stream.peer_addr().map_err(|e| connect_error(addr, e))?;
        let span = tracing::info_span!("klamm.connection", broker = %peer);
        let transport = if config.security_protocol.uses_tls() {
            Transport::Tls(Box::new(handshake(addr, stream, &config).instrument(span.clone()).await?))
        } else {
            Transport::Plain(stream)
        };
        let (tx, rx) = mpsc::channel(config.max_in_flight);
        let state = Arc::new(State { cause: OnceLock::new(), waiting: Mutex::new(HashMap::new()) });
        let task = Task { rx, state: Arc::clone(&state), max_frame: config.max_frame, addr: peer };
        tokio::spawn(run(transport, task).instrument(span.clone()));
        let conn = Connection {
            inner: Arc::new(Handle {
                addr: peer,
                client_id: config.client_id,
                request_timeout: config.request_timeout,
                tx,
                in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
                next_correlation_id: AtomicI32::new(0),
                state,
                versions: OnceLock::new(),
                gate: config.security_protocol.uses_sasl().then(|| Arc::new(RwLock::new(()))),
            }),
        };
        let versions = conn.negotiate().instrument(span.clone()).await?;
        // Only this function sets the versions, once.
        let _ = conn.inner.versions.set(versions);
        if config.security_protocol.uses_sasl() {
            if let Some(lifetime) = crate::sasl::authenticate(&conn, &config.sasl).instrument(span).await? {
                crate::sasl::schedule_reauthentication(&conn, config.sasl, lifetime);
            }
        }
        Ok(conn)
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The broker's version range of `api_key`, if it implements the API.
    pub fn broker_versions(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        self.inner.versions.get().and_then(|v| v.get(&api_key.0).copied())
    }

    /// The highest version of `R` that both this crate and the broker implement.
    pub fn version_for<R: Request>(&self) -> Result<i16, Error> {
        let broker_range = self.broker_versions(R::API_KEY);
        let unsupported = || {
            Error::at(ErrorKind::UnsupportedVersion { api_key: R::API_KEY, broker_range }, self.inner.addr)
        };
        let (min, max) = broker_range.ok_or_else(unsupported)?;
        let high = max.min(R::MAX_VERSION);
        if high < min.max(R::MIN_VERSION) {
            return Err(unsupported());
        }
        Ok(high)
    }

    /// Whether the connection has stopped (its socket is gone or it was closed).
    pub fn is_closed(&self) -> bool {
        self.inner.state.cause.get().is_some() || self.inner.tx.is_closed()
    }

    /// Sends `request` at the highest version both sides implement and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, Error> {
        let version = self.version_for::<R>()?;
        self.send_at(version, request).await
    }

    /// Sends `request` at `version` and waits for its response.
    ///
    /// The version is not checked against the broker's range; a version this crate does not
    /// implement is an [`ErrorKind::Encode`] error.
    pub async fn send_at<R: Request>(&self, version: i16, request: &R) -> Result<R::Response, Error> {
        let (correlation_id, frame) = self.exchange(version, request, false).await?;
        let (header, body) = decode_response::<R::Response>(frame, version)
            .map_err(|e| Error::at(ErrorKind::Decode(e), self.inner.addr))?;
        check_correlation(correlation_id, header.correlation_id, self.inner.addr)?;
        Ok(body)
    }

    /// Sends `request` at the highest version both sides implement and waits up to `timeout`
    /// for its response instead of the connection's request timeout: for requests the broker
    /// holds on purpose, such as JoinGroup, which waits for the whole group.
    pub async fn send_with_timeout<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        let version = self.version_for::<R>()?;
        let deadline = tokio::time::Instant::now() + timeout;
        let (correlation_id, response) = self.submit_raw(version, request, false, deadline).await?;
        let frame = self.wait_raw(correlation_id, response, deadline).await?;
        let (header, body) = decode_response::<R::Response>(frame, version)
            .map_err(|e| Error::at(ErrorKind::Decode(e), self.inner.addr))?;
        check_correlation(correlation_id, header.correlation_id, self.inner.addr)?;
        Ok(body)
    }

    /// Sends a request that the broker does not answer (Produce with `acks=0`) at `version`, and
    /// returns once it has been written to the socket.
    ///
    /// Success says nothing about what the broker did with it.
    pub async fn send_without_response<R: Request>(&self, version: i16, request: &R) -> Result<(), Error> {
        self.exchange(version, request, true).await.map(|_| ())
    }

    /// Closes the connection: requests in flight fail with [`ErrorKind::Closed`], and so do
    /// later ones. Returns once the connection task has stopped.
    pub async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.inner.tx.send(Command::Close(done)).await.is_ok() {
            // An error means the task stopped for another reason; either way it is gone.
            let _ = stopped.await;
        }
    }

    /// Gives the connection up at once because of `cause` (say, a request that timed out):
    /// every request in flight fails with it now, before this returns, and no response read
    /// later is handed to anyone; the connection then stops in the background. Unlike
    /// [`close`](Self::close), nothing that arrives meanwhile can complete a request sent
    /// before the cause: a caller that must not see a later request succeed after an earlier
    /// one failed (the producer, which resends in order) relies on that.
    pub(crate) fn abandon(&self, cause: Error) {
        let waiters: Vec<Waiter> = {
            let mut waiting = lock(&self.inner.state.waiting);
            if self.inner.state.cause.set(cause).is_err() {
                // Already stopped or abandoned: its waiters were failed then.
                return;
            }
            waiting.drain().map(|(_, w)| w).collect()
        };
        let cause = self.inner.state.cause.get();
        for waiter in waiters {
            let _ = waiter.reply.send(Err(closed_by(self.inner.addr, cause)));
        }
        let tx = self.inner.tx.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let (done, _) = oneshot::channel();
                let _ = tx.send(Command::Close(done)).await;
            });
        }
    }

    /// Encodes and sends one request, returning its correlation id and response frame.
    async fn exchange<R: Request>(
        &self,
        version: i16,
        request: &R,
        no_response: bool,
    ) -> Result<(i32, Bytes), Error> {
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        let (correlation_id, response) = self.submit_raw(version, request, no_response, deadline).await?;
        let frame = self.wait_raw(correlation_id, response, deadline).await?;
        Ok((correlation_id, frame))
    }

    /// Queues `request` on the socket and returns without waiting for the response: requests
    /// submitted one after another from one task are written in that order. Await the
    /// returned [`PendingResponse`] for the answer; the request timeout counts from this call.
    pub async fn submit<R: Request>(&self, version: i16, request: &R) -> Result<PendingResponse<R>, Error> {
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        let (correlation_id, response) = self.submit_raw(version, request, false, deadline).await?;
        Ok(PendingResponse {
            conn: self.clone(),
            version,
            correlation_id,
            response,
            deadline,
            _request: PhantomData,
        })
    }

    /// Sends a SaslHandshake or SaslAuthenticate request past the gate (the authentication
    /// holds it, or nothing else is sent yet) and waits for its response.
    pub(crate) async fn send_authentication<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, Error> {
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        let (correlation_id, response) = self.queue(version, request, false, deadline, false).await?;
        let frame = self.wait_raw(correlation_id, response, deadline).await?;
        let (header, body) = decode_response::<R::Response>(frame, version)
            .map_err(|e| Error::at(ErrorKind::Decode(e), self.inner.addr))?;
        check_correlation(correlation_id, header.correlation_id, self.inner.addr)?;
        Ok(body)
    }

    /// Holds back new requests until the guard is dropped (once those being queued are
    /// written). `None` without SASL.
    pub(crate) async fn pause_requests(&self) -> Option<OwnedRwLockWriteGuard<()>> {
        match &self.inner.gate {
            Some(gate) => Some(Arc::clone(gate).write_owned().await),
            None => None,
        }
    }

    /// A reference that does not keep the connection open.
    pub(crate) fn downgrade(&self) -> WeakConnection {
        WeakConnection(Arc::downgrade(&self.inner))
    }

    /// Encodes the request, takes an in-flight slot and hands the frame to the writer.
    async fn submit_raw<R: Request>(
        &self,
        version: i16,
        request: &R,
        no_response: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes, Error>>), Error> {
        self.queue(version, request, no_response, deadline, true).await
    }

    /// [`submit_raw`](Self::submit_raw), passing the gate only when `gated`.
    async fn queue<R: Request>(
        &self,
        version: i16,
        request: &R,
        no_response: bool,
        deadline: tokio::time::Instant,
        gated: bool,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes, Error>>), Error> {
        let inner = &self.inner;
        if let Some(cause) = inner.state.cause.get() {
            return Err(closed_by(inner.addr, Some(cause)));
        }
        let correlation_id = inner.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("request", api_key = R::API_KEY.0, version, correlation_id);
        let mut frame = BytesMut::new();
        encode_request(&mut frame, correlation_id, inner.client_id.as_deref(), version, request)
            .map_err(|e| Error::at(ErrorKind::Encode(e), inner.addr))?;
        let queue = async {
            // The gate before the slot: a request waiting at the gate must not hold a slot that
            // the re-authentication needs.
            let _gate = match &inner.gate {
                Some(gate) if gated => Some(gate.read().await),
                _ => None,
            };
            let permit = Arc::clone(&inner.in_flight).acquire_owned().await.map_err(|_| self.closed())?;
            let (reply, response) = oneshot::channel();
            let waiter = Waiter { reply, _permit: permit };
            let out = Outgoing { correlation_id, frame, waiter, no_response };
            inner.tx.send(Command::Request(out)).await.map_err(|_| self.closed())?;
            Ok::<_, Error>(response)
        };
        match tokio::time::timeout_at(deadline, queue).instrument(span).await {
            Ok(result) => Ok((correlation_id, result?)),
            Err(_) => {
                tracing::debug!(correlation_id, "request timed out before it was sent");
                Err(Error::at(ErrorKind::Timeout, inner.addr))
            }
        }
    }

    /// Waits for the response of a submitted request until `deadline`.
    async fn wait_raw(
        &self,
        correlation_id: i32,
        response: oneshot::Receiver<Result<Bytes, Error>>,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, Error> {
        // A dropped sender means the task stopped: report its cause.
        match tokio::time::timeout_at(deadline, response).await {
            Ok(result) => result.map_err(|_| self.closed())?,
            Err(_) => {
                tracing::debug!(correlation_id, "request timed out");
                Err(Error::at(ErrorKind::Timeout, self.inner.addr))
            }
        }
    }

    fn closed(&self) -> Error {
        closed_by(self.inner.addr, self.inner.state.cause.get())
    }

    /// The first exchange on a plaintext connection to a TLS listener fails in one of two
    /// ways: the broker answers with a TLS alert, whose first bytes read as an absurd frame
    /// size, or it closes the connection. Either way the error should say so.
    fn explain_first_failure(&self, e: Error) -> Error {
        let cause = self.inner.state.cause.get().unwrap_or(&e);
        let tls_alert = matches!(cause.kind(), ErrorKind::Decode(klamm_protocol::DecodeError::FrameTooLarge { size, .. })
            if looks_like_tls_record(*size));
        if tls_alert {
            return tls::tls_error(
                TlsFailure::BrokerExpectsTls,
                format!("broker {} answered ApiVersions with a TLS record", self.inner.addr),
            );
        }
        e
    }

    /// ApiVersions at our highest version; on UNSUPPORTED_VERSION the broker answers in v0
    /// layout with its own ApiVersions range, and we retry at the highest common version.
    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>, Error> {
        let request = ApiVersionsRequest {
            client_software_name: "klamm".to_owned(),
            client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        };
        let mut version = API_VERSIONS_MAX;
        // At most two rounds: the second uses a version the broker said it has.
        for _ in 0..2 {
            let (correlation_id, frame) =
                self.exchange(version, &request, false).await.map_err(|e| self.explain_first_failure(e))?;
            let response = decode_api_versions(frame, version, self.inner.addr)?;
            check_correlation(correlation_id, response.0, self.inner.addr)?;
            let response = response.1;
            let code = ErrorCode(response.error_code);
            if code == ErrorCode::UNSUPPORTED_VERSION {
                let theirs = response.api_keys.iter().find(|k| k.api_key == ApiKey::API_VERSIONS.0);
                let next = theirs.map_or(0, |k| k.max_version.min(API_VERSIONS_MAX));
                if next >= version {
                    break;
                }
                tracing::debug!(version, next, "broker does not support our ApiVersions version");
                version = next.max(0);
                continue;
            }
            if code.is_err() {
                return Err(Error::at(ErrorKind::Broker(code), self.inner.addr));
            }
            tracing::debug!(version, apis = response.api_keys.len(), "negotiated API versions");
            return Ok(response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect());
        }
        Err(Error::at(
            ErrorKind::UnsupportedVersion { api_key: ApiKey::API_VERSIONS, broker_range: None },
            self.inner.addr,
        ))
    }
}

/// A [`Connection`] that does not keep the connection open (for its re-authentication task).
pub(crate) struct WeakConnection(Weak<Handle>);

impl WeakConnection {
    /// The connection, while some handle still holds it.
    pub(crate) fn upgrade(&self) -> Option<Connection> {
        self.0.upgrade().map(|inner| Connection { inner })
    }
}

/// A request written (or queued to be written) by [`Connection::submit`], whose response has
/// not been read yet.
#[must_use = "the response is only read when this is awaited"]
pub struct PendingResponse<R: Request> {
    conn: Connection,
    version: i16,
    correlation_id: i32,
    response: oneshot::Receiver<Result<Bytes, Error>>,
    deadline: tokio::time::Instant,
    _request: PhantomData<fn() -> R>,
}

impl<R: Request> PendingResponse<R> {
    /// Waits for the response, at most until the request's timeout.
    pub async fn response(self) -> Result<R::Response, Error> {
        let frame = self.conn.wait_raw(self.correlation_id, self.response, self.deadline).await?;
        let addr = self.conn.inner.addr;
        let (header, body) = decode_response::<R::Response>(frame, self.version)
            .map_err(|e| Error::at(ErrorKind::Decode(e), addr))?;
        check_correlation(self.correlation_id, header.correlation_id, addr)?;
        Ok(body)
    }

    /// The connection the request went out on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<R: Request> std::fmt::Debug for PendingResponse<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingResponse").field("correlation_id", &self.correlation_id).finish()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.inner.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Reads an ApiVersions response sent for `version`. A broker that does not implement `version`
/// answers UNSUPPORTED_VERSION in the v0 layout, so the error code (right after the v0 response
/// header) decides the layout.
fn decode_api_versions(
    frame: Bytes,
    version: i16,
    addr: SocketAddr,
) -> Result<(i32, ApiVersionsResponse), Error> {
    let code = frame.get(4..6).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let layout = if code == Some(ErrorCode::UNSUPPORTED_VERSION.0) { 0 } else { version };
    let (header, body) = decode_response::<ApiVersionsResponse>(frame, layout)
        .map_err(|e| Error::at(ErrorKind::Decode(e), addr))?;
    Ok((header.correlation_id, body))
}

fn check_correlation(expected: i32, got: i32, addr: SocketAddr) -> Result<(), Error> {
    if expected == got {
        return Ok(());
    }
    // The reader routes by correlation id, so this means a bug, not a broker fault.
    Err(Error::with_source(
        ErrorKind::Decode(klamm_protocol::DecodeError::InvalidValue {
            field: "correlation_id",
            value: i64::from(got),
        }),
        Some(addr.to_string()),
        CorrelationMismatch { expected, got },
    ))
}

#[derive(Debug, thiserror::Error)]
#[error("response carries correlation id {got}, expected {expected}")]
struct CorrelationMismatch {
    expected: i32,
    got: i32,
}

/// Whether a frame size prefix is the start of a TLS record: content type 21 (alert) or 22
/// (handshake), then protocol version 3.x.
fn looks_like_tls_record(size: u64) -> bool {
    let b = size.to_be_bytes();
    size >> 32 == 0 && matches!(b[4], 21 | 22) && b[5] == 3 && b[6] <= 4
}

/// The TLS handshake over `stream`, within the connect timeout; `addr` names the broker as
/// the client was told it (its host is the server name).
async fn handshake(
    addr: &str,
    stream: TcpStream,
    config: &ConnectionConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let connector = tokio_rustls::TlsConnector::from(config.tls.client_config()?);
    let name = tls::server_name(addr)?;
    match tokio::time::timeout(config.connect_timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(tls_io_error(e, addr)),
        Err(_) => Err(connect_error(
            addr,
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the TLS handshake timed out"),
        )),
    }
}

/// An IO error during or after the TLS handshake: a typed TLS error when TLS gave up, a
/// handshake failure when the broker hung up during the handshake, else an IO error.
fn tls_io_error(e: std::io::Error, addr: &str) -> Error {
    if let Some((failure, why)) = tls::classify(&e) {
        return tls::tls_error(failure, format!("broker {addr}: {why}"));
    }
    if matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    ) {
        return tls::tls_error(TlsFailure::HandshakeInterrupted, format!("broker {addr}: {e}"));
    }
    Error::with_source(ErrorKind::Io, Some(addr.to_owned()), e)
}

fn connect_error(addr: &str, e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::Connect { addr: addr.to_owned() }, Some(addr.to_owned()), e)
}

/// Resolves `addr` and connects to the first address that accepts, all within the connect
/// timeout.
async fn open(addr: &str, config: &ConnectionConfig) -> Result<TcpStream, Error> {
    let attempt = async {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolved to no address");
        for candidate in tokio::net::lookup_host(addr).await? {
            match connect_one(candidate, config).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::debug!(%candidate, error = %e, "connect failed");
                    last = e;
                }
            }
        }
        Err(last)
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(connect_error(addr, e)),
        Err(_) => {
            Err(connect_error(addr, std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
        }
    }
}

async fn connect_one(addr: SocketAddr, config: &ConnectionConfig) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    {
        // Buffer sizes before connect, so the window scale is agreed with them in mind.
        let sock = socket2::SockRef::from(&socket);
        if let Some(size) = config.send_buffer_size {
            sock.set_send_buffer_size(size as usize)?;
        }
        if let Some(size) = config.recv_buffer_size {
            sock.set_recv_buffer_size(size as usize)?;
        }
        if let Some(idle) = config.tcp_keepalive {
            sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))?;
        }
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(config.tcp_nodelay)?;
    Ok(stream)
}

/// A connected socket, plaintext or TLS.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// What the connection task owns besides the socket.
struct Task {
    rx: mpsc::Receiver<Command>,
    state: Arc<State>,
    max_frame: usize,
    addr: SocketAddr,
}

/// The connection task: splits the transport and runs its halves.
async fn run(transport: Transport, task: Task) {
    match transport {
        Transport::Plain(stream) => {
            let (rd, wr) = stream.into_split();
            drive(rd, wr, task).await
        }
        Transport::Tls(stream) => {
            let (rd, wr) = tokio::io::split(*stream);
            drive(rd, wr, task).await
        }
    }
}

/// Runs the writer and reader halves until one stops, then fails every request still in
/// flight with the cause.
async fn drive<R, W>(rd: R, wr: W, task: Task)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Task { mut rx, state, max_frame, addr } = task;
    let (cause, close_ack) = tokio::select! {
        stop = write_half(wr, &mut rx, &state, addr) => stop,
        cause = read_half(rd, &state.waiting, max_frame, addr) => (cause, None),
    };
    tracing::debug!(cause = %cause, "connection stopped");
    // Record the cause before failing the waiters, so a caller that sees its reply dropped finds
    // it, and later sends fail fast. (A cause set by `abandon` stays: it came first.)
    let waiters: Vec<Waiter> = {
        let mut waiting = lock(&state.waiting);
        let _ = state.cause.set(cause.clone());
        waiting.drain().map(|(_, w)| w).collect()
    };
    let cause = state.cause.get().cloned().unwrap_or(cause);
    for waiter in waiters {
        let _ = waiter.reply.send(Err(closed_by(addr, Some(&cause))));
    }
    // Requests still queued were never written: fail them too, and refuse new ones.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Command::Request(req) => {
                let _ = req.waiter.reply.send(Err(closed_by(addr, Some(&cause))));
            }
            Command::Close(ack) => {
                let _ = ack.send(());
            }
        }
    }
    if let Some(ack) = close_ack {
        let _ = ack.send(());
    }
}

/// The error a request gets when the connection stopped because of `cause`: the cause itself
/// when it is already `Closed`, a decode error (the stream could not be read) or a TLS failure
/// (retrying cannot help), otherwise `Closed` with the cause as its source.
fn closed_by(addr: SocketAddr, cause: Option<&Error>) -> Error {
    match cause {
        Some(c) if matches!(c.kind(), ErrorKind::Closed | ErrorKind::Decode(_) | ErrorKind::Tls(_)) => {
            c.clone()
        }
        _ => Error::closed(addr, cause.cloned()),
    }
}

fn lock(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashMap<i32, Waiter>> {
    // A panic while holding this lock cannot leave the map inconsistent (inserts and removes
    // are single operations), so a poisoned lock is still usable.
    in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes queued requests. Returns why it stopped, and the close acknowledgement if
/// [`Connection::close`] stopped it.
async fn write_half<W: AsyncWrite + Unpin>(
    mut wr: W,
    rx: &mut mpsc::Receiver<Command>,
    state: &State,
    addr: SocketAddr,
) -> (Error, Option<oneshot::Sender<()>>) {
    let in_flight = &state.waiting;
    let mut out = BytesMut::new();
    let mut written = Vec::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = sweep.tick() => {
                // Callers that timed out dropped their receivers; free their slots.
                lock(in_flight).retain(|_, w| !w.reply.is_closed());
                continue;
            }
        };
        let mut next = first;
        // Take everything already queued and write it with one call.
        loop {
            match next {
                None => return (Error::closed(addr, None), None),
                Some(Command::Close(ack)) => return (Error::closed(addr, None), Some(ack)),
                Some(Command::Request(req)) => {
                    // Checked under the lock `abandon` sets the cause under: once the
                    // connection is abandoned, nothing more is written.
                    let mut waiting = lock(in_flight);
                    if let Some(cause) = state.cause.get() {
                        let _ = req.waiter.reply.send(Err(closed_by(addr, Some(cause))));
                    } else if !req.waiter.reply.is_closed() {
                        out.extend_from_slice(&req.frame);
                        if req.no_response {
                            written.push(req.waiter);
                        } else {
                            waiting.insert(req.correlation_id, req.waiter);
                        }
                    }
                }
            }
            match rx.try_recv() {
                Ok(cmd) => next = Some(cmd),
                Err(_) => break,
            }
            if out.len() >= 1 << 20 {
                break;
            }
        }
        // A TLS stream may keep encrypted bytes buffered until flushed; a TCP flush is a no-op.
        let written_out = async {
            wr.write_all(&out).await?;
            wr.flush().await
        };
        if let Err(e) = written_out.await {
            return (stream_error(e, addr), None);
        }
        out.clear();
        for waiter in written.drain(..) {
            let _ = waiter.reply.send(Ok(Bytes::new()));
        }
    }
}

/// Reads response frames and hands each to its waiter. Returns why it stopped.
async fn read_half<R: AsyncRead + Unpin>(
    mut rd: R,
    in_flight: &InFlight,
    max_frame: usize,
    addr: SocketAddr,
) -> Error {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Hand out every complete frame in the buffer.
        loop {
            let len = match frame_len(&buf, max_frame) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return Error::at(ErrorKind::Decode(e), addr),
            };
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            let Some(correlation_id) = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            else {
                return Error::at(
                    ErrorKind::Decode(klamm_protocol::DecodeError::UnexpectedEnd {
                        needed: 4,
                        remaining: len,
                    }),
                    addr,
                );
            };
            match lock(in_flight).remove(&correlation_id) {
                Some(waiter) => {
                    let _ = waiter.reply.send(Ok(frame));
                }
                None => tracing::debug!(correlation_id, "discarding a response nobody waits for"),
            }
        }
        // Reserve room for the rest of the frame being read (bounded by `max_frame`, checked
        // above), and at least a read's worth.
        let pending = match buf.get(..4) {
            Some(p) => usize::try_from(i32::from_be_bytes([p[0], p[1], p[2], p[3]])).unwrap_or(0) + 4,
            None => 0,
        };
        let want = pending.saturating_sub(buf.len()).max(8 * 1024);
        buf.reserve(want);
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                let eof = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                );
                return Error::with_source(ErrorKind::Io, Some(addr.to_string()), eof);
            }
            Ok(_) => {}
            Err(e) => return stream_error(e, addr),
        }
    }
}

/// A read or write error after the handshake: a TLS failure (an alert, such as the broker
/// refusing the client certificate under TLS 1.3) keeps its type, anything else is IO.
fn stream_error(e: std::io::Error, addr: SocketAddr) -> Error {
    match tls::classify(&e) {
        Some((failure, why)) => tls::tls_error(failure, format!("broker {addr}: {why}")),
        None => Error::with_source(ErrorKind::Io, Some(addr.to_string()), e),
    }
}

#[cfg(test)]
mod tests {
    //! A scripted fake broker on a 127.0.0.1 listener: each test plays the broker's side frame
    //! by frame.

    use klamm_protocol::api::api_versions::ApiVersion;
    use klamm_protocol::api::metadata::{MetadataRequest, MetadataRequestTopic, MetadataResponse};
    use klamm_protocol::{decode_request_frame, encode_response, AnyRequest, DecodeError, Response};
    use tokio::net::TcpListener;

    use super::*;

    struct Received {
        version: i16,
        correlation_id: i32,
        body: AnyRequest,
    }

    async fn read_request(stream: &mut TcpStream) -> Option<Received> {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await.ok()?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).await.ok()?;
        let (header, body) = decode_request_frame(Bytes::from(frame)).expect("a valid request");
        Some(Received { version: header.api_version, correlation_id: header.correlation_id, body })
    }

    async fn respond<R: Response>(stream: &mut TcpStream, correlation_id: i32, version: i16, body: &R) {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, correlation_id, version, body).expect("encodable");
        stream.write_all(&buf).await.expect("write");
    }

    fn api_versions(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse {
            api_keys: ranges
                .iter()
                .map(|&(key, min, max)| ApiVersion {
                    api_key: key.0,
                    min_version: min,
                    max_version: max,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Accepts one client and answers its ApiVersions v4 with ApiVersions 0..=4, Metadata 0..=12.
    async fn accept(listener: &TcpListener) -> TcpStream {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let req = read_request(&mut stream).await.expect("ApiVersions");
        assert_eq!(req.version, 4);
        match &req.body {
            AnyRequest::ApiVersions(r) => {
                assert_eq!(r.client_software_name, "klamm");
                assert!(!r.client_software_version.is_empty());
            }
            other => panic!("expected ApiVersions, got {other:?}"),
        }
        let body = api_versions(&[(ApiKey::API_VERSIONS, 0, 4), (ApiKey::METADATA, 0, 12)]);
        respond(&mut stream, req.correlation_id, 4, &body).await;
        stream
    }

    async fn listener() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        (listener, addr)
    }

    fn metadata_for(topic: &str) -> MetadataRequest {
        MetadataRequest {
            topics: Some(vec![MetadataRequestTopic { name: Some(topic.into()), ..Default::default() }]),
            ..Default::default()
        }
    }

    fn topic_of(req: &Received) -> String {
        match &req.body {
            AnyRequest::Metadata(m) => m.topics.as_ref().and_then(|t| t[0].name.clone()).expect("a topic"),
            other => panic!("expected Metadata, got {other:?}"),
        }
    }

    /// Answers a Metadata request with the topic it asked for as the cluster id.
    async fn answer_metadata(stream: &mut TcpStream, req: &Received) {
        let body = MetadataResponse { cluster_id: Some(topic_of(req)), ..Default::default() };
        respond(stream, req.correlation_id, req.version, &body).await;
    }

    #[tokio::test]
    async fn pipelined_responses_out_of_order_reach_their_requests() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            let mut received = Vec::new();
            for _ in 0..20 {
                received.push(read_request(&mut stream).await.expect("request"));
            }
            // All twenty were in flight at once; answer them last first.
            for req in received.iter().rev() {
                answer_metadata(&mut stream, req).await;
            }
            stream
        });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        assert_eq!(conn.version_for::<MetadataRequest>().expect("metadata"), 12);
        let calls = (0..20).map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let topic = format!("topic-{i}");
                let response = conn.send(&metadata_for(&topic)).await.expect("response");
                assert_eq!(response.cluster_id.as_deref(), Some(topic.as_str()));
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.expect("no panic");
        }
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn no_more_than_max_in_flight_requests_are_written() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            let first = read_request(&mut stream).await.expect("first");
            let second = read_request(&mut stream).await.expect("second");
            // The third waits for a slot, so nothing more arrives until we answer.
            let mut byte = [0u8; 1];
            let early = tokio::time::timeout(Duration::from_millis(200), stream.peek(&mut byte)).await;
            assert!(early.is_err(), "a third request was written while two were in flight");
            answer_metadata(&mut stream, &first).await;
            answer_metadata(&mut stream, &second).await;
            let third = read_request(&mut stream).await.expect("third");
            answer_metadata(&mut stream, &third).await;
            stream
        });
        let config = ConnectionConfig { max_in_flight: 2, ..Default::default() };
        let conn = Connection::connect(&addr, config).await.expect("connect");
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let conn = conn.clone();
                tokio::spawn(async move { conn.send(&metadata_for(&format!("t{i}"))).await })
            })
            .collect();
        for call in calls {
            call.await.expect("no panic").expect("answered");
        }
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn a_request_times_out_and_its_late_response_is_discarded() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            let late = read_request(&mut stream).await.expect("first");
            let next = read_request(&mut stream).await.expect("second");
            answer_metadata(&mut stream, &late).await;
            answer_metadata(&mut stream, &next).await;
            stream
        });
        let config = ConnectionConfig { request_timeout: Duration::from_millis(200), ..Default::default() };
        let conn = Connection::connect(&addr, config).await.expect("connect");
        let err = conn.send(&metadata_for("late")).await.expect_err("times out");
        assert_eq!(err.kind(), &ErrorKind::Timeout);
        assert!(err.is_retriable());
        let response = conn.send(&metadata_for("next")).await.expect("the connection still works");
        assert_eq!(response.cluster_id.as_deref(), Some("next"));
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn a_dropped_socket_fails_every_request_in_flight_with_closed() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            for _ in 0..5 {
                read_request(&mut stream).await.expect("request");
            }
            // Gone without answering.
        });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        let calls: Vec<_> = (0..5)
            .map(|i| {
                let conn = conn.clone();
                tokio::spawn(async move { conn.send(&metadata_for(&format!("t{i}"))).await })
            })
            .collect();
        for call in calls {
            let err = call.await.expect("no panic").expect_err("the socket died");
            assert_eq!(err.kind(), &ErrorKind::Closed, "{err}");
            assert!(err.is_retriable());
        }
        broker.await.expect("broker");
        assert!(conn.is_closed());
        let started = tokio::time::Instant::now();
        let err = conn.send(&metadata_for("after")).await.expect_err("closed");
        assert_eq!(err.kind(), &ErrorKind::Closed);
        assert!(started.elapsed() < Duration::from_secs(1), "fails fast");
    }

    #[tokio::test]
    async fn an_oversized_frame_prefix_is_a_decode_error() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            read_request(&mut stream).await.expect("request");
            stream.write_all(&100_000_000i32.to_be_bytes()).await.expect("write");
            stream
        });
        let config = ConnectionConfig { max_frame: 64 * 1024, ..Default::default() };
        let conn = Connection::connect(&addr, config).await.expect("connect");
        let err = conn.send(&metadata_for("t")).await.expect_err("frame too large");
        assert!(matches!(err.kind(), ErrorKind::Decode(DecodeError::FrameTooLarge { .. })), "{err:?}");
        assert!(!err.is_retriable());
        let err = conn.send(&metadata_for("t")).await.expect_err("closed");
        assert!(matches!(err.kind(), ErrorKind::Decode(_) | ErrorKind::Closed), "{err:?}");
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn unsupported_api_versions_version_falls_back_to_the_brokers_range() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let first = read_request(&mut stream).await.expect("ApiVersions");
            assert_eq!(first.version, 4);
            // An old broker: UNSUPPORTED_VERSION in v0 layout, with its ApiVersions range.
            let mut refusal = api_versions(&[(ApiKey::API_VERSIONS, 0, 2)]);
            refusal.error_code = ErrorCode::UNSUPPORTED_VERSION.0;
            respond(&mut stream, first.correlation_id, 0, &refusal).await;
            let second = read_request(&mut stream).await.expect("ApiVersions again");
            assert_eq!(second.version, 2);
            let body = api_versions(&[(ApiKey::API_VERSIONS, 0, 2), (ApiKey::METADATA, 0, 9)]);
            respond(&mut stream, second.correlation_id, 2, &body).await;
            stream
        });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        assert_eq!(conn.broker_versions(ApiKey::API_VERSIONS), Some((0, 2)));
        assert_eq!(conn.version_for::<MetadataRequest>().expect("metadata"), 9);
        let err = conn.version_for::<klamm_protocol::api::produce::ProduceRequest>().expect_err("not listed");
        assert_eq!(
            err.kind(),
            &ErrorKind::UnsupportedVersion { api_key: ApiKey::PRODUCE, broker_range: None }
        );
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn dropping_the_last_handle_closes_the_socket() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            let mut byte = [0u8; 1];
            // EOF once the client is gone.
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await
        });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        let clone = conn.clone();
        drop(conn);
        drop(clone);
        let read = broker.await.expect("broker").expect("closed in time");
        assert_eq!(read.expect("read"), 0);
    }

    #[tokio::test]
    async fn abandon_fails_every_request_in_flight_and_no_later_answer_completes_one() {
        let (listener, addr) = listener().await;
        let (got_both, both) = oneshot::channel();
        let (answer, answer_now) = oneshot::channel::<()>();
        let broker = tokio::spawn(async move {
            let mut stream = accept(&listener).await;
            let first = read_request(&mut stream).await.expect("first");
            let second = read_request(&mut stream).await.expect("second");
            let _ = got_both.send(());
            // Both answers arrive after the client gave the connection up.
            let _ = answer_now.await;
            answer_metadata(&mut stream, &first).await;
            answer_metadata(&mut stream, &second).await;
            stream
        });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        let first = conn.submit(12, &metadata_for("a")).await.expect("submit");
        let second = conn.submit(12, &metadata_for("b")).await.expect("submit");
        both.await.expect("the broker read both");
        conn.abandon(Error::at(ErrorKind::Timeout, conn.inner.addr));
        assert!(conn.is_closed());
        let _ = answer.send(());
        for pending in [first, second] {
            let err = pending.response().await.expect_err("abandoned");
            assert_eq!(err.kind(), &ErrorKind::Closed, "{err:?}");
            assert!(err.is_retriable());
        }
        let err = conn.send(&metadata_for("c")).await.expect_err("abandoned");
        assert_eq!(err.kind(), &ErrorKind::Closed, "later requests fail fast: {err:?}");
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn close_fails_later_requests() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move { accept(&listener).await });
        let conn = Connection::connect(&addr, ConnectionConfig::default()).await.expect("connect");
        conn.close().await;
        assert!(conn.is_closed());
        let err = conn.send(&metadata_for("t")).await.expect_err("closed");
        assert_eq!(err.kind(), &ErrorKind::Closed);
        drop(broker.await.expect("broker"));
    }

    #[test]
    fn tls_records_are_told_from_frame_sizes() {
        // An alert (21) and a handshake record (22) of TLS 1.2, read as a frame size.
        assert!(looks_like_tls_record(u64::from(u32::from_be_bytes([21, 3, 3, 0]))));
        assert!(looks_like_tls_record(u64::from(u32::from_be_bytes([22, 3, 1, 2]))));
        assert!(!looks_like_tls_record(u64::from(u32::from_be_bytes([0, 0, 1, 0]))));
        assert!(!looks_like_tls_record(u64::from(u32::from_be_bytes([23, 3, 3, 0]))));
        assert!(!looks_like_tls_record(u64::MAX));
    }

    #[tokio::test]
    async fn a_tls_alert_in_answer_to_api_versions_says_the_broker_wants_tls() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            read_request(&mut stream).await.expect("ApiVersions");
            // What a TLS listener sends to a client that does not speak TLS: a fatal alert.
            stream.write_all(&[21, 3, 3, 0, 2, 2, 10]).await.expect("write");
            stream
        });
        let err = Connection::connect(&addr, ConnectionConfig::default()).await.expect_err("a TLS listener");
        assert_eq!(err.kind(), &ErrorKind::Tls(TlsFailure::BrokerExpectsTls), "{err}");
        assert!(err.to_string().contains("security.protocol=SSL"), "{err}");
        drop(broker.await.expect("broker"));
    }

    #[tokio::test]
    async fn a_tls_client_on_a_listener_that_hangs_up_gets_a_handshake_error() {
        let (listener, addr) = listener().await;
        let broker = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            // A plaintext Kafka listener reads the ClientHello's first bytes as an absurd size
            // and closes the connection.
            let mut head = [0u8; 4];
            stream.read_exact(&mut head).await.expect("ClientHello");
            assert_eq!(head[0], 22, "a TLS handshake record");
        });
        let config = ConnectionConfig {
            security_protocol: SecurityProtocol::Ssl,
            tls: TlsConfig::new().verify_certificate(false),
            ..Default::default()
        };
        let err = Connection::connect(&addr, config).await.expect_err("not a TLS listener");
        assert_eq!(err.kind(), &ErrorKind::Tls(TlsFailure::HandshakeInterrupted), "{err}");
        assert!(err.to_string().contains("plaintext listener"), "{err}");
        assert!(err.is_retriable() && !err.is_user_error(), "a broker going away looks the same");
        broker.await.expect("broker");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let (listener, addr) = listener().await;
        drop(listener);
        let err = Connection::connect(&addr, ConnectionConfig::default()).await.expect_err("refused");
        assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
        assert!(err.is_retriable());
    }
}
