//! `klamm::Error`: what went wrong in the client, and whether trying again can help.
//!
//! The public [`Error`] is an opaque handle over an [`ErrorKind`] (h2's approach), so new kinds
//! can be added without breaking users. It is cheap to clone: a dead connection hands the same
//! cause to every request that was waiting on it.

use std::fmt;
use std::sync::Arc;

use klamm_protocol::{ApiKey, DecodeError, EncodeError, ErrorCode};

use crate::tls::TlsFailure;

/// An error of the Klamm client.
///
/// Use [`Error::kind`] to see what went wrong and [`Error::is_retriable`] to decide whether the
/// same request may succeed later (on this or a new connection).
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    /// The broker the error concerns, when there is one.
    broker: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading from or writing to the socket failed.
    Io,
    /// The TCP connection to a broker could not be made (refused, unreachable, timed out).
    Connect {
        /// The address as it was given.
        addr: String,
    },
    /// A request got no response within its timeout. Its outcome is unknown.
    Timeout,
    /// The connection is gone. Requests that were in flight may or may not have been handled by
    /// the broker: their outcome is unknown.
    Closed,
    /// A response or frame could not be decoded. The connection is closed after it, and the
    /// outcome of requests that were in flight is unknown.
    Decode(DecodeError),
    /// A request could not be encoded at the negotiated version.
    Encode(EncodeError),
    /// The broker implements no version of the API that this crate implements.
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The broker's range, or `None` if it does not list the API at all.
        broker_range: Option<(i16, i16)>,
    },
    /// The broker answered with an error code.
    Broker(ErrorCode),
    /// The cluster metadata names a node (as a partition's leader or a coordinator) that it
    /// does not list among its brokers: the view is stale or a broker just left or joined.
    /// Nothing was sent; retriable once the metadata is refreshed.
    UnknownNode {
        /// The node id.
        node: i32,
    },
    /// A record is larger than the producer may send (`max.request.size`) or buffer
    /// (`buffer.memory`). The broker's own limit comes back as `Broker(MESSAGE_TOO_LARGE)`.
    RecordTooLarge {
        /// The record's size in bytes, as the producer counts it.
        size: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// The partition's log was truncated below the consumer's position (KIP-320: after an
    /// unclean leader election the new leader lacks records that were read). Returned when
    /// `auto.offset.reset` is none; otherwise the consumer resumes at `diverging_offset` and
    /// logs a warning. Seek to go on.
    LogTruncation {
        /// Where the consumer was.
        position: i64,
        /// The first offset at which the leader's log differs from what was read.
        diverging_offset: i64,
    },
    /// SASL authentication failed: a wrong password or unknown user, a mechanism the broker
    /// does not enable on the listener, a SASL client on a listener without SASL, a server
    /// whose SCRAM signature does not match. The explanation (the broker's message, when it
    /// sent one) is the error's source. Not retriable: the same credentials fail again.
    Authentication,
    /// A TLS connection could not be set up: the broker's certificate is not trusted or does
    /// not match its host, the broker refused the client's certificate, the two sides do not
    /// agree on TLS at all (one of them is plaintext), or a certificate or key cannot be used.
    /// Not retriable (except [`TlsFailure::HandshakeInterrupted`]): the certificates or the
    /// settings must change. The message says exactly what the TLS library reported.
    Tls(TlsFailure),
    /// A transactional producer's transaction failed; the error's source says why. What the
    /// application must do depends on the [`TransactionFailure`]: abort the transaction and go
    /// on, or drop the producer.
    Transaction(TransactionFailure),
    /// The configuration is invalid.
    Config,
    /// The API was used in a way it does not allow.
    User,
}

/// How bad a transaction's failure is (the Java client's split between abortable and fatal
/// errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionFailure {
    /// The transaction cannot commit (a record failed, a partition or the group's offsets could
    /// not be added, the group coordinator refused the offsets), but the producer is fine: call
    /// `abort_transaction` and begin a new one.
    Abortable,
    /// Another producer with the same `transactional.id` took over (it called
    /// `init_transactions` later), or the broker found this producer's epoch old. The producer
    /// can do nothing more and must be dropped; whatever it sent in its open transaction is
    /// aborted by the coordinator.
    Fenced,
    /// The producer cannot go on (not authorised for its `transactional.id`, the broker lacks
    /// transactions, the coordinator says the transaction is in a state it cannot be in). Drop
    /// the producer.
    Fatal,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self { inner: Arc::new(Inner { kind, broker: None, source: None }) }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        broker: Option<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self { inner: Arc::new(Inner { kind, broker, source: Some(Arc::new(source)) }) }
    }

    pub(crate) fn at(kind: ErrorKind, broker: impl fmt::Display) -> Self {
        Self { inner: Arc::new(Inner { kind, broker: Some(broker.to_string()), source: None }) }
    }

    /// `Closed`, with the connection's fatal error (if there was one) as its source.
    pub(crate) fn closed(broker: impl fmt::Display, cause: Option<Error>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind: ErrorKind::Closed,
                broker: Some(broker.to_string()),
                source: cause.map(|c| Arc::new(c) as Arc<dyn std::error::Error + Send + Sync>),
            }),
        }
    }

    /// An error of `kind` explained by `message` (shown after the kind), for crates built on
    /// this one that report their own problems in the same terms: an invalid setting
    /// ([`ErrorKind::Config`]), a misuse ([`ErrorKind::User`]), a broker error with context.
    ///
    /// ```
    /// use klamm::{Error, ErrorKind};
    ///
    /// let e = Error::with_message(ErrorKind::Config, "group.id: must not be empty");
    /// assert!(e.is_user_error());
    /// assert!(e.to_string().contains("group.id"));
    /// ```
    pub fn with_message(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::with_source(kind, None, Message(message.into()))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The broker address the error concerns, if any.
    pub fn broker(&self) -> Option<&str> {
        self.inner.broker.as_deref()
    }

    /// The Kafka error code, if the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self.inner.kind {
            ErrorKind::Broker(code) => Some(code),
            _ => None,
        }
    }

    /// Whether the same request may succeed if tried again: connection failures, timeouts, a
    /// closed connection and the error codes Kafka classes as retriable. A request whose outcome
    /// is unknown (`Timeout`, `Closed`) may have taken effect; only retry it if doing it twice is
    /// harmless (or idempotent on the broker).
    pub fn is_retriable(&self) -> bool {
        match &self.inner.kind {
            ErrorKind::Io
            | ErrorKind::Connect { .. }
            | ErrorKind::Timeout
            | ErrorKind::Closed
            | ErrorKind::UnknownNode { .. }
            | ErrorKind::Tls(TlsFailure::HandshakeInterrupted) => true,
            ErrorKind::Broker(code) => code.is_retriable(),
            _ => false,
        }
    }

    /// Whether the error means the open transaction must be aborted, after which the producer
    /// can begin a new one ([`TransactionFailure::Abortable`]).
    ///
    /// ```
    /// use klamm::{Error, ErrorKind, TransactionFailure};
    ///
    /// let e = Error::with_message(ErrorKind::Transaction(TransactionFailure::Abortable), "a record failed");
    /// assert!(e.is_abortable() && !e.is_fatal());
    /// ```
    pub fn is_abortable(&self) -> bool {
        self.inner.kind == ErrorKind::Transaction(TransactionFailure::Abortable)
    }

    /// Whether the transactional producer is done ([`TransactionFailure::Fenced`] or
    /// [`TransactionFailure::Fatal`]): every later call fails the same way; drop it.
    ///
    /// ```
    /// use klamm::{Error, ErrorKind, TransactionFailure};
    ///
    /// let e = Error::with_message(ErrorKind::Transaction(TransactionFailure::Fenced), "fenced");
    /// assert!(e.is_fatal() && e.is_fenced() && !e.is_abortable() && !e.is_retriable());
    /// ```
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Transaction(TransactionFailure::Fenced | TransactionFailure::Fatal)
        )
    }

    /// Whether another producer with the same `transactional.id` fenced this one.
    pub fn is_fenced(&self) -> bool {
        self.inner.kind == ErrorKind::Transaction(TransactionFailure::Fenced)
    }

    /// Whether authentication failed ([`ErrorKind::Authentication`], or the broker's
    /// SASL_AUTHENTICATION_FAILED): the credentials or the mechanism must change before a retry
    /// can succeed.
    ///
    /// ```
    /// use klamm::{Error, ErrorKind};
    ///
    /// let e = Error::with_message(ErrorKind::Authentication, "Invalid username or password");
    /// assert!(e.is_authentication_error());
    /// assert!(!e.is_retriable());
    /// ```
    pub fn is_authentication_error(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Authentication => true,
            ErrorKind::Broker(code) => code == ErrorCode::SASL_AUTHENTICATION_FAILED,
            _ => false,
        }
    }

    /// Whether the error is a misuse of the API or an invalid configuration. TLS failures
    /// ([`ErrorKind::Tls`]) count, except a handshake the broker hung up on: certificates that
    /// are not trusted, do not match or do not load are settings to fix, so the client stops
    /// at them instead of trying other brokers or retrying until a timeout.
    pub fn is_user_error(&self) -> bool {
        match &self.inner.kind {
            ErrorKind::User | ErrorKind::Config | ErrorKind::RecordTooLarge { .. } => true,
            ErrorKind::Tls(failure) => *failure != TlsFailure::HandshakeInterrupted,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.kind {
            ErrorKind::Io => f.write_str("I/O error")?,
            ErrorKind::Connect { addr } => write!(f, "cannot connect to {addr}")?,
            ErrorKind::Timeout => f.write_str("request timed out")?,
            ErrorKind::UnknownNode { node } => {
                write!(f, "node {node} is not among the brokers in the cluster metadata")?
            }
            ErrorKind::Closed => f.write_str("connection closed")?,
            ErrorKind::Decode(e) => write!(f, "cannot decode a response: {e}")?,
            ErrorKind::Encode(e) => write!(f, "cannot encode a request: {e}")?,
            ErrorKind::UnsupportedVersion { api_key, broker_range } => {
                let name = api_key.name().unwrap_or("unknown API");
                match broker_range {
                    Some((min, max)) => write!(
                        f,
                        "no common version of {name} (key {}): the broker has {min}..={max}",
                        api_key.0
                    )?,
                    None => write!(f, "the broker does not implement {name} (key {})", api_key.0)?,
                }
            }
            ErrorKind::Broker(code) => {
                write!(f, "broker error {} ({}): {}", code.name(), code.0, code.description())?
            }
            ErrorKind::RecordTooLarge { size, max } => {
                write!(f, "the record is {size} bytes, more than the limit of {max} bytes")?
            }
            ErrorKind::LogTruncation { position, diverging_offset } => write!(
                f,
                "log truncated below the position {position} (the logs diverge at {diverging_offset})"
            )?,
            ErrorKind::Authentication => f.write_str("authentication failed")?,
            ErrorKind::Tls(failure @ TlsFailure::HandshakeInterrupted) => write!(f, "TLS: {failure}")?,
            ErrorKind::Tls(failure) => {
                write!(f, "TLS: {failure}; retrying will not help until the certificates or settings change")?
            }
            ErrorKind::Transaction(TransactionFailure::Abortable) => {
                f.write_str("the transaction cannot commit and must be aborted")?
            }
            ErrorKind::Transaction(TransactionFailure::Fenced) => {
                f.write_str("the transactional producer was fenced by a newer one with its transactional.id")?
            }
            ErrorKind::Transaction(TransactionFailure::Fatal) => {
                f.write_str("the transactional producer cannot go on")?
            }
            ErrorKind::Config => f.write_str("invalid configuration")?,
            ErrorKind::User => f.write_str("invalid use of the API")?,
        }
        if let Some(broker) = &self.inner.broker {
            if !matches!(self.inner.kind, ErrorKind::Connect { .. }) {
                write!(f, " (broker {broker})")?;
            }
        }
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(broker) = &self.inner.broker {
            d.field("broker", broker);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

/// The explanation attached by [`Error::with_message`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// An error of `kind` with no broker address and no source: what a layer built on this
/// crate (consumer groups, say) reports in the same terms.
///
/// ```
/// use klamm::{Error, ErrorKind};
/// use klamm::protocol::ErrorCode;
///
/// let e = Error::from(ErrorKind::Broker(ErrorCode::NOT_COORDINATOR));
/// assert_eq!(e.code(), Some(ErrorCode::NOT_COORDINATOR));
/// assert!(e.is_retriable());
/// let fenced = Error::from(ErrorKind::Broker(ErrorCode::FENCED_INSTANCE_ID));
/// assert!(!fenced.is_retriable());
/// ```
impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::new(ErrorKind::Decode(e))
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::new(ErrorKind::Encode(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_kinds() {
        assert!(Error::new(ErrorKind::Timeout).is_retriable());
        assert!(Error::closed("b:9092", None).is_retriable());
        assert!(Error::new(ErrorKind::Broker(ErrorCode::NOT_LEADER_OR_FOLLOWER)).is_retriable());
        assert!(!Error::new(ErrorKind::Broker(ErrorCode(87))).is_retriable());
        assert!(!Error::new(ErrorKind::Config).is_retriable());
        assert!(Error::new(ErrorKind::User).is_user_error());
        let tls = Error::new(ErrorKind::Tls(TlsFailure::UntrustedCertificate));
        assert!(!tls.is_retriable() && tls.is_user_error());
    }

    #[test]
    fn tls_errors_say_what_failed_and_that_retrying_does_not_help() {
        let e = Error::with_message(ErrorKind::Tls(TlsFailure::HostnameMismatch), "invalid peer certificate");
        let text = e.to_string();
        assert!(text.contains("does not name the host") && text.contains("retrying will not help"), "{text}");
        assert!(text.contains("invalid peer certificate"), "{text}");
    }

    #[test]
    fn display_names_the_cause() {
        let cause = Error::new(ErrorKind::Decode(DecodeError::FrameTooLarge { size: 9, max: 1 }));
        let e = Error::closed("127.0.0.1:9092", Some(cause));
        let text = e.to_string();
        assert!(text.contains("connection closed"), "{text}");
        assert!(text.contains("127.0.0.1:9092"), "{text}");
        assert!(text.contains("exceeds"), "{text}");
        let e = Error::new(ErrorKind::UnsupportedVersion {
            api_key: ApiKey::METADATA,
            broker_range: Some((13, 13)),
        });
        assert!(e.to_string().contains("13..=13"), "{e}");
    }
}
