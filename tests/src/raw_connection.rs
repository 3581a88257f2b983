//! A blocking, one-request-at-a-time connection for tests that speak the protocol by hand.
//!
//! No pipelining, no retries, no version negotiation: the test says which version to send and
//! gets back exactly what the broker answered, decoded with `klamm-protocol`. That makes it the
//! tool for checking the codec against a real broker, replaying recorded frames and probing
//! whether a broker is up.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use klamm_protocol::header::DEFAULT_MAX_FRAME;
use klamm_protocol::{decode_response, encode_request, frame_len, DecodeError, EncodeError, Request};

/// How long a read may block before the request counts as failed, unless changed.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong on a [`RawConnection`].
#[derive(Debug)]
pub enum RawError {
    /// The socket failed or timed out.
    Io(io::Error),
    /// The request could not be encoded at the asked version.
    Encode(EncodeError),
    /// The response did not decode at the request's version.
    Decode(DecodeError),
    /// The response answered another request.
    CorrelationMismatch {
        /// The id the request carried.
        expected: i32,
        /// The id in the response header.
        got: i32,
    },
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::Io(e) => write!(f, "io: {e}"),
            RawError::Encode(e) => write!(f, "encode: {e}"),
            RawError::Decode(e) => write!(f, "decode: {e}"),
            RawError::CorrelationMismatch { expected, got } => {
                write!(f, "response has correlation id {got}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for RawError {}

impl From<io::Error> for RawError {
    fn from(e: io::Error) -> Self {
        RawError::Io(e)
    }
}

/// A plain TCP connection to one broker.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    peer: SocketAddr,
    next_correlation_id: i32,
    client_id: Option<String>,
}

impl RawConnection {
    /// Connects to `addr` (within 10 s) with TCP_NODELAY and the default read timeout.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::connect_timeout(addr, Duration::from_secs(10))
    }

    /// Connects to `addr` within `timeout`.
    pub fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing");
        for peer in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&peer, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(DEFAULT_READ_TIMEOUT))?;
                    stream.set_write_timeout(Some(DEFAULT_READ_TIMEOUT))?;
                    return Ok(Self {
                        stream,
                        peer,
                        next_correlation_id: 1,
                        client_id: Some("klamm-tests".to_owned()),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Changes how long a read may block (`None`: forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Changes the client id sent in request headers (default `klamm-tests`).
    pub fn set_client_id(&mut self, client_id: Option<&str>) {
        self.client_id = client_id.map(str::to_owned);
    }

    /// The broker's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Sends `request` at `version` and returns the decoded response. Panics on any failure,
    /// naming the API, the version and the broker: for tests that expect success.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.try_send(version, request).unwrap_or_else(|e| {
            panic!("{} v{version} to {} failed: {e}", R::API_KEY.name().unwrap_or("request"), self.peer)
        })
    }

    /// Sends `request` at `version` and returns the decoded response.
    pub fn try_send<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response, RawError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut frame = BytesMut::new();
        encode_request(&mut frame, correlation_id, self.client_id.as_deref(), version, request)
            .map_err(RawError::Encode)?;
        self.stream.write_all(&frame)?;
        let response = self.read_frame()?;
        let (header, body) = decode_response::<R::Response>(response, version).map_err(RawError::Decode)?;
        if header.correlation_id != correlation_id {
            return Err(RawError::CorrelationMismatch {
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        Ok(body)
    }

    /// Sends one request frame as given (header and body, without the 4-byte size prefix,
    /// which this adds) and returns the response frame the same way: the contents after the
    /// size prefix, starting with the correlation id. The caller chooses the correlation id.
    /// Recorded fixtures (see [`RecordingProxy`](crate::RecordingProxy)) replay this way.
    pub fn send_raw(&mut self, frame: &[u8]) -> Result<Bytes, RawError> {
        self.write_raw(frame)?;
        self.read_frame()
    }

    /// Sends one request frame (without size prefix) and does not wait: for requests the
    /// broker does not answer, such as Produce with acks=0.
    pub fn write_raw(&mut self, frame: &[u8]) -> Result<(), RawError> {
        let size = i32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than i32::MAX"))?;
        let mut out = Vec::with_capacity(frame.len() + 4);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(frame);
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Reads the next response frame and returns its contents after the size prefix.
    pub fn read_frame(&mut self) -> Result<Bytes, RawError> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix)?;
        // `frame_len` refuses negative and absurd sizes; with only the prefix read it reports
        // "incomplete" for every size but 0.
        let size = match frame_len(&prefix, DEFAULT_MAX_FRAME).map_err(RawError::Decode)? {
            Some(n) => n,
            None => i32::from_be_bytes(prefix) as usize,
        };
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }
}
