//! SASL authentication of broker connections (KIP-43, with KIP-152's framing): PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER, and re-authentication (KIP-368).
//!
//! Right after ApiVersions, [`Connection::connect`] hands the connection to [`authenticate`]:
//! a SaslHandshake v1 names the mechanism (the broker answers with the ones it enables), then
//! SaslAuthenticate requests carry the mechanism's messages until it is done. Each mechanism is
//! a small sans-IO state machine (server message in, client message out) in its own file with
//! its own tests; this module only drives it.
//!
//! When the broker gives the session a lifetime (`connections.max.reauth.ms` on the broker, or
//! a token's expiry), [`schedule_reauthentication`] re-authenticates the same connection at
//! 85-95% of it, as the Java client does. Meanwhile new requests wait behind the connection's
//! gate; requests already in flight get their responses as usual (they are matched by
//! correlation id), so nothing is lost or failed.
//!
//! Secrets are held in [`Secret`], whose `Debug` shows nothing, and no error or log line quotes
//! one.

mod jaas;
mod oauthbearer;
mod plain;
pub(crate) mod scram;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use klamm_protocol::api::sasl_authenticate::SaslAuthenticateRequest;
use klamm_protocol::api::sasl_handshake::SaslHandshakeRequest;
use klamm_protocol::ErrorCode;
use tracing::Instrument;

pub(crate) use oauthbearer::TokenSource;
pub use oauthbearer::{OAuthBearerToken, TokenFuture, TokenProvider, UnsecuredJwt};

use crate::config::{config_error, parse_bool};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind};

/// A password, token or other secret: its `Debug` and `Display` print `<redacted>`.
///
/// ```
/// use klamm::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "<redacted>");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the code that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

/// A SASL mechanism (`sasl.mechanism`).
///
/// ```
/// use klamm::SaslMechanism;
///
/// let m: SaslMechanism = "SCRAM-SHA-512".parse()?;
/// assert_eq!(m, SaslMechanism::ScramSha512);
/// assert_eq!(m.to_string(), "SCRAM-SHA-512");
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// User name and password in the clear (RFC 4616): use it over TLS only. The default.
    #[default]
    Plain,
    /// Salted challenge-response with SHA-256 (RFC 7677): the password never crosses the wire.
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
    /// A bearer token from a [`TokenProvider`] (RFC 7628, KIP-255).
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's name, as the broker knows it.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            "GSSAPI" => Err(config_error(
                "sasl.mechanism: GSSAPI (Kerberos) is not supported; use PLAIN, SCRAM-SHA-256, \
                 SCRAM-SHA-512 or OAUTHBEARER"
                    .to_owned(),
            )),
            _ => Err(config_error(format!(
                "sasl.mechanism: {s:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"
            ))),
        }
    }
}

/// How connections authenticate when `security.protocol` is `SASL_PLAINTEXT` or `SASL_SSL`.
///
/// Usually set through [`ClientConfig`](crate::ClientConfig): its `sasl_*` methods, or the
/// properties `sasl.mechanism`, `sasl.username`, `sasl.password`, `sasl.jaas.config`,
/// `sasl.oauthbearer.config`.
///
/// ```
/// use klamm::{SaslConfig, SaslMechanism};
///
/// let sasl = SaslConfig::scram(SaslMechanism::ScramSha256, "alice", "s3cret");
/// assert!(!format!("{sasl:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct SaslConfig {
    /// The mechanism. Default: PLAIN.
    pub mechanism: SaslMechanism,
    /// The user name (PLAIN, SCRAM).
    pub username: Option<String>,
    /// The password (PLAIN, SCRAM).
    pub password: Option<Secret>,
    /// Where OAUTHBEARER tokens come from. Without one, OAUTHBEARER uses unsecured JWTs from
    /// [`SaslConfig::unsecured_jwt`].
    token_source: Option<TokenSource>,
    /// librdkafka's `sasl.oauthbearer.config` (or the Java client's `unsecuredLogin*` JAAS
    /// options): unsigned tokens for Kafka's unsecured validator, for local use.
    pub unsecured_jwt: Option<UnsecuredJwt>,
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token_provider", &self.token_source.as_ref().map(|_| "<set>"))
            .field("unsecured_jwt", &self.unsecured_jwt)
            .finish()
    }
}

impl SaslConfig {
    /// PLAIN with this user name and password.
    pub fn plain(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            mechanism: SaslMechanism::Plain,
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// SCRAM (`mechanism` is one of the SCRAM mechanisms) with this user name and password.
    pub fn scram(mechanism: SaslMechanism, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self { mechanism, ..Self::plain(username, password) }
    }

    /// OAUTHBEARER with tokens from `provider`.
    pub fn oauthbearer(provider: impl TokenProvider) -> Self {
        Self {
            mechanism: SaslMechanism::OAuthBearer,
            token_source: Some(TokenSource::new(Arc::new(provider))),
            ..Self::default()
        }
    }

    /// Sets one `sasl.*` property; returns false when `key` is not one.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        match key {
            "sasl.mechanism" | "sasl.mechanisms" => self.mechanism = value.parse()?,
            "sasl.username" => self.username = Some(value.to_owned()),
            "sasl.password" => self.password = Some(Secret::new(value)),
            "sasl.jaas.config" => self.set_jaas(value)?,
            "sasl.oauthbearer.config" => self.unsecured_jwt = Some(UnsecuredJwt::parse(value)?),
            // librdkafka asks for this before it makes unsecured JWTs; here a
            // sasl.oauthbearer.config is enough, so the flag is only checked for form.
            "enable.sasl.oauthbearer.unsecure.jwt" => {
                parse_bool(key, value)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes the user name and password (PLAIN, SCRAM) or the unsecured JWT claims
    /// (OAUTHBEARER) from a Java `sasl.jaas.config`.
    fn set_jaas(&mut self, value: &str) -> Result<(), Error> {
        let entry = jaas::parse(value)?;
        let class = entry.module.rsplit('.').next().unwrap_or_default();
        match class {
            "PlainLoginModule" | "ScramLoginModule" => {
                let (Some(user), Some(password)) = (entry.option("username"), entry.option("password"))
                else {
                    return Err(config_error(format!(
                        "sasl.jaas.config: {class} needs username and password"
                    )));
                };
                self.username = Some(user.to_owned());
                self.password = Some(Secret::new(password));
            }
            "OAuthBearerLoginModule" => {
                let claim_of = |k: &str| entry.option(&format!("unsecuredLoginStringClaim_{k}"));
                if let Some(principal) = claim_of("sub") {
                    let mut jwt = UnsecuredJwt::new(principal);
                    if let Some(secs) = entry.option("unsecuredLoginLifetimeSeconds") {
                        let secs: u64 = secs.parse().map_err(|_| {
                            config_error(
                                "sasl.jaas.config: unsecuredLoginLifetimeSeconds is not a number".into(),
                            )
                        })?;
                        jwt.lifetime = Duration::from_secs(secs.max(1));
                    }
                    for (k, v) in &entry.options {
                        if let Some(name) = k.strip_prefix("unsecuredLoginExtension_") {
                            jwt.extensions.push((name.to_owned(), v.clone()));
                        }
                    }
                    self.unsecured_jwt = Some(jwt);
                }
            }
            _ => {
                return Err(config_error(format!(
                    "sasl.jaas.config: login module {:?} is not PlainLoginModule, ScramLoginModule or \
                     OAuthBearerLoginModule",
                    entry.module
                )))
            }
        }
        Ok(())
    }

    /// Whether the settings are enough for the mechanism.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self.mechanism {
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                if self.username.as_deref().is_none_or(str::is_empty) || self.password.is_none() {
                    return Err(config_error(format!(
                        "sasl.mechanism {} needs sasl.username and sasl.password (or sasl.jaas.config)",
                        self.mechanism
                    )));
                }
            }
            SaslMechanism::OAuthBearer => {
                if self.token_source.is_none() && self.unsecured_jwt.is_none() {
                    return Err(config_error(
                        "sasl.mechanism OAUTHBEARER needs a token provider (ClientConfig::sasl_oauthbearer) \
                         or, for local use, sasl.oauthbearer.config"
                            .to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What a mechanism wants next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this to the server.
    Respond(Vec<u8>),
    /// The exchange succeeded.
    Done,
}

/// One running exchange.
enum Exchange {
    Plain,
    Scram(scram::Scram),
    OAuthBearer(oauthbearer::OAuthBearer),
}

impl Exchange {
    /// The mechanism's state and its first message.
    async fn start(config: &SaslConfig) -> Result<(Exchange, Vec<u8>), Error> {
        let username = config.username.as_deref().unwrap_or_default();
        let password = config.password.clone().unwrap_or_else(|| Secret::new(""));
        Ok(match config.mechanism {
            SaslMechanism::Plain => (Exchange::Plain, plain::initial_response(username, &password)),
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if config.mechanism == SaslMechanism::ScramSha256 {
                    scram::ScramHash::Sha256
                } else {
                    scram::ScramHash::Sha512
                };
                let s = scram::Scram::new(hash, username, &password)?;
                let first = s.initial_response();
                (Exchange::Scram(s), first)
            }
            SaslMechanism::OAuthBearer => {
                let source = config
                    .token_source
                    .clone()
                    .or_else(|| config.unsecured_jwt.clone().map(|jwt| TokenSource::new(Arc::new(jwt))));
                let Some(source) = source else {
                    return Err(config_error("OAUTHBEARER without a token provider".to_owned()));
                };
                let token = source.token().await?;
                (
                    Exchange::OAuthBearer(oauthbearer::OAuthBearer::new()),
                    oauthbearer::OAuthBearer::initial_response(&token),
                )
            }
        })
    }

    fn step(&mut self, server: &[u8]) -> Result<Step, Error> {
        match self {
            Exchange::Plain => plain::step(server),
            Exchange::Scram(s) => s.step(server),
            Exchange::OAuthBearer(o) => o.step(server),
        }
    }

    /// What the mechanism learnt of the server's reasons, to add to its error.
    fn server_error(&self) -> Option<&str> {
        match self {
            Exchange::OAuthBearer(o) => o.server_error(),
            _ => None,
        }
    }
}

/// An [`ErrorKind::Authentication`] error with this explanation.
pub(crate) fn authentication_error(broker: Option<String>, why: impl Into<String>) -> Error {
    Error::with_source(ErrorKind::Authentication, broker, Why(why.into()))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Why(String);

/// Runs SaslHandshake and the mechanism's SaslAuthenticate exchange on `conn`, which has
/// negotiated its API versions and sends nothing else meanwhile. Returns the session lifetime
/// the broker gave, if any.
pub(crate) async fn authenticate(conn: &Connection, config: &SaslConfig) -> Result<Option<Duration>, Error> {
    let broker = Some(conn.addr().to_string());
    let fail = |why: String| authentication_error(broker.clone(), why);
    let mechanism = config.mechanism;

    // v0 of SaslHandshake means raw SASL frames after it (Kafka before 1.0); only v1 has the
    // SaslAuthenticate framing that this client speaks.
    let handshake_version = conn.version_for::<SaslHandshakeRequest>()?;
    if handshake_version < 1 {
        return Err(fail("the broker only has SaslHandshake v0 (Kafka before 1.0)".to_owned()));
    }
    let handshake = SaslHandshakeRequest { mechanism: mechanism.name().to_owned(), ..Default::default() };
    let response = conn.send_authentication(handshake_version, &handshake).await?;
    match ErrorCode(response.error_code) {
        ErrorCode::NONE => {}
        ErrorCode::UNSUPPORTED_SASL_MECHANISM => {
            return Err(fail(format!(
                "the broker does not enable {mechanism} on this listener; it enables: {}",
                if response.mechanisms.is_empty() {
                    "none".to_owned()
                } else {
                    response.mechanisms.join(", ")
                }
            )))
        }
        ErrorCode::ILLEGAL_SASL_STATE => {
            return Err(fail(
                "the broker did not expect SASL here: is this a PLAINTEXT or SSL listener rather than \
                 SASL_PLAINTEXT or SASL_SSL?"
                    .to_owned(),
            ))
        }
        code => return Err(Error::at(ErrorKind::Broker(code), conn.addr())),
    }

    let version = conn.version_for::<SaslAuthenticateRequest>()?;
    let (mut exchange, mut message) = Exchange::start(config).await.map_err(|e| with_broker(e, conn))?;
    loop {
        let request = SaslAuthenticateRequest { auth_bytes: message.into(), ..Default::default() };
        let response = conn.send_authentication(version, &request).await?;
        let code = ErrorCode(response.error_code);
        if code.is_err() {
            let mut why = match (code, response.error_message.as_deref()) {
                (ErrorCode::SASL_AUTHENTICATION_FAILED, Some(m)) => m.to_owned(),
                (_, Some(m)) => format!("{}: {m}", code.name()),
                (_, None) => format!("{}: {}", code.name(), code.description()),
            };
            if let Some(server) = exchange.server_error() {
                why.push_str(&format!(" (the broker said {server})"));
            }
            return Err(fail(format!("{mechanism}: {why}")));
        }
        match exchange.step(&response.auth_bytes).map_err(|e| with_broker(e, conn))? {
            Step::Respond(next) => message = next,
            Step::Done => {
                let lifetime = u64::try_from(response.session_lifetime_ms).ok().filter(|&ms| ms > 0);
                tracing::debug!(%mechanism, session_lifetime_ms = response.session_lifetime_ms, "authenticated");
                return Ok(lifetime.map(Duration::from_millis));
            }
        }
    }
}

/// `e` (made without knowing the broker) with the connection's broker address.
fn with_broker(e: Error, conn: &Connection) -> Error {
    if e.broker().is_some() {
        return e;
    }
    match e.kind() {
        ErrorKind::Authentication => authentication_error(
            Some(conn.addr().to_string()),
            std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default(),
        ),
        _ => e,
    }
}

/// When to re-authenticate a session of `lifetime`: at a random point between 85% and 95% of
/// it (the Java client's window), so that a client's connections do not all do it at once.
fn reauthentication_delay(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.85 + 0.10 * crate::random::unit())
}

/// Re-authenticates `conn` before each session ends, for as long as the connection lives
/// (KIP-368). The task holds only a weak reference: it never keeps a connection open. If
/// re-authentication fails, the connection is closed (the broker would close it at the end of
/// the session anyway) and the next request reconnects, which authenticates anew.
pub(crate) fn schedule_reauthentication(conn: &Connection, config: SaslConfig, lifetime: Duration) {
    let weak = conn.downgrade();
    let span = tracing::debug_span!("klamm.reauthenticate", broker = %conn.addr());
    tokio::spawn(
        async move {
            let mut lifetime = lifetime;
            loop {
                tokio::time::sleep(reauthentication_delay(lifetime)).await;
                let Some(conn) = weak.upgrade() else { return };
                if conn.is_closed() {
                    return;
                }
                let started = tokio::time::Instant::now();
                let result = {
                    let _paused = conn.pause_requests().await;
                    authenticate(&conn, &config).await
                };
                match result {
                    Ok(Some(next)) => {
                        tracing::debug!(took = ?started.elapsed(), next_lifetime = ?next, "re-authenticated");
                        lifetime = next;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "re-authentication failed; closing the connection");
                        conn.close().await;
                        return;
                    }
                }
            }
        }
        .instrument(span),
    );
}

#[cfg(test)]
mod tests;
