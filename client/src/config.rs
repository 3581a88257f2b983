//! Settings shared by everything built on a [`Client`](crate::Client): where the cluster is, how
//! connections behave, how often metadata is refreshed, how reconnects back off.
//!
//! Every setting has a typed method and, where Kafka users expect one, the Kafka property name
//! (`bootstrap.servers`, `request.timeout.ms`, ...), so a `key=value` file written for the Java
//! client or librdkafka carries over. [`ClientConfig::set`] is the one place that maps names to
//! fields; the producer and consumer configs hand it every name they do not own themselves.
//!
//! Property names are matched exactly; an unknown name or a value that does not parse is an
//! [`ErrorKind::Config`] error naming the property. Settings that a reference client has but
//! that change nothing here (`client.dns.lookup`, and any security setting this build cannot
//! honour, such as SASL) are refused rather than silently ignored, so nobody believes a
//! connection is secured when it is not. TLS settings (`ssl.*`) go to [`TlsConfig`].

use std::time::Duration;

use crate::connection::ConnectionConfig;
use crate::error::{Error, ErrorKind};
use crate::sasl::{SaslConfig, SaslMechanism, Secret, TokenProvider};
use crate::security::SecurityProtocol;
use crate::tls::TlsConfig;

/// The environment variable [`ClientConfig::from_env`] reads the bootstrap list from.
pub const BROKERS_ENV: &str = "KAFKA_BROKERS";

/// Settings of a [`Client`](crate::Client).
///
/// ```
/// use std::time::Duration;
/// use klamm::ClientConfig;
///
/// let config = ClientConfig::new("127.0.0.1:9092")
///     .client_id("billing")
///     .metadata_max_age(Duration::from_secs(60));
/// assert_eq!(config.bootstrap_servers, ["127.0.0.1:9092"]);
///
/// // The same from Kafka property names:
/// let same = ClientConfig::from_properties([
///     ("bootstrap.servers", "127.0.0.1:9092"),
///     ("client.id", "billing"),
///     ("metadata.max.age.ms", "60000"),
/// ])?;
/// assert_eq!(same.metadata_max_age, Duration::from_secs(60));
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `host:port` of brokers to ask for the cluster's metadata first (`bootstrap.servers`).
    /// After the first answer the client talks to the brokers that metadata lists, and comes
    /// back to this list only when none of those can be reached.
    pub bootstrap_servers: Vec<String>,
    /// Settings of every broker connection (`client.id`, `request.timeout.ms`,
    /// `socket.connection.setup.timeout.ms`, socket options).
    pub connection: ConnectionConfig,
    /// How old cached metadata may get before it is refreshed even without an error
    /// (`metadata.max.age.ms`). Default: 5 minutes, as the Java client.
    pub metadata_max_age: Duration,
    /// First wait before reconnecting to a broker that failed (`reconnect.backoff.ms`).
    /// Default: 50 ms.
    pub reconnect_backoff: Duration,
    /// Longest wait between reconnects; the wait doubles per failure up to this, with ±20%
    /// jitter (`reconnect.backoff.max.ms`). Default: 1 s.
    pub reconnect_backoff_max: Duration,
    /// First wait before retrying a failed request (`retry.backoff.ms`). Default: 100 ms.
    pub retry_backoff: Duration,
    /// Longest wait between retries of a request (`retry.backoff.max.ms`). Default: 1 s.
    pub retry_backoff_max: Duration,
    /// Whether a Metadata request may create a topic that does not exist yet, where the broker
    /// allows it (`allow.auto.create.topics`). Default: true, as the Java client.
    pub allow_auto_create_topics: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: Vec::new(),
            connection: ConnectionConfig::default(),
            metadata_max_age: Duration::from_secs(300),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            allow_auto_create_topics: true,
        }
    }
}

impl ClientConfig {
    /// Defaults, with the bootstrap list from a comma-separated `host:port` list.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self { bootstrap_servers: split_list(bootstrap_servers), ..Self::default() }
    }

    /// Defaults, with the bootstrap list from the `KAFKA_BROKERS` environment variable.
    ///
    /// Fails with [`ErrorKind::Config`] when the variable is unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        let brokers = std::env::var(BROKERS_ENV).unwrap_or_default();
        let config = Self::new(&brokers);
        if config.bootstrap_servers.is_empty() {
            return Err(config_error(format!("{BROKERS_ENV} is not set or empty")));
        }
        Ok(config)
    }

    /// Defaults changed by Kafka-style properties; see [`ClientConfig::set`].
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        let mut config = Self::default();
        for (key, value) in properties {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one setting by its Kafka property name.
    ///
    /// Known names: `bootstrap.servers` (also `metadata.broker.list`), `client.id`,
    /// `request.timeout.ms`, `socket.connection.setup.timeout.ms`, `metadata.max.age.ms`,
    /// `reconnect.backoff.ms`, `reconnect.backoff.max.ms`, `retry.backoff.ms`,
    /// `retry.backoff.max.ms`, `allow.auto.create.topics`, `send.buffer.bytes`,
    /// `receive.buffer.bytes`, `socket.nagle.disable`, `socket.keepalive.enable`,
    /// `security.protocol`; TLS, as the Java client and librdkafka name it:
    /// `ssl.ca.location`, `ssl.ca.pem`, `ssl.certificate.location`, `ssl.certificate.pem`,
    /// `ssl.key.location`, `ssl.key.pem`, `ssl.key.password`,
    /// `ssl.endpoint.identification.algorithm`, `enable.ssl.certificate.verification`,
    /// `ssl.truststore.type` (PEM only), `ssl.truststore.location`,
    /// `ssl.truststore.certificates`, `ssl.keystore.type` (PEM only), `ssl.keystore.location`,
    /// `ssl.keystore.certificate.chain`, `ssl.keystore.key` (see [`TlsConfig`]); SASL:
    /// `sasl.mechanism` (also `sasl.mechanisms`), `sasl.username`, `sasl.password`,
    /// `sasl.jaas.config`, `sasl.oauthbearer.config`, `enable.sasl.oauthbearer.unsecure.jwt`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let conn = &mut self.connection;
        if conn.tls.set(key, value)? {
            return Ok(());
        }
        if conn.sasl.set(key, value)? {
            return Ok(());
        }
        match key {
            "bootstrap.servers" | "metadata.broker.list" => self.bootstrap_servers = split_list(value),
            "client.id" => conn.client_id = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "request.timeout.ms" => conn.request_timeout = parse_ms(key, value)?,
            "socket.connection.setup.timeout.ms" => conn.connect_timeout = parse_ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = parse_ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = parse_ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value)?,
            "allow.auto.create.topics" => self.allow_auto_create_topics = parse_bool(key, value)?,
            "send.buffer.bytes" | "socket.send.buffer.bytes" => {
                conn.send_buffer_size = parse_buffer_size(key, value)?
            }
            "receive.buffer.bytes" | "socket.receive.buffer.bytes" => {
                conn.recv_buffer_size = parse_buffer_size(key, value)?
            }
            "security.protocol" => conn.security_protocol = value.parse()?,
            "socket.nagle.disable" => conn.tcp_nodelay = parse_bool(key, value)?,
            "socket.keepalive.enable" => {
                conn.tcp_keepalive = parse_bool(key, value)?.then_some(Duration::from_secs(60))
            }
            _ => return Err(crate::suggest::unknown_property(key, Self::property_names().iter().copied())),
        }
        Ok(())
    }

    /// The property names [`ClientConfig::set`] knows (for "did you mean" hints).
    pub fn property_names() -> &'static [&'static str] {
        &[
            "bootstrap.servers",
            "metadata.broker.list",
            "client.id",
            "request.timeout.ms",
            "socket.connection.setup.timeout.ms",
            "metadata.max.age.ms",
            "reconnect.backoff.ms",
            "reconnect.backoff.max.ms",
            "retry.backoff.ms",
            "retry.backoff.max.ms",
            "allow.auto.create.topics",
            "send.buffer.bytes",
            "socket.send.buffer.bytes",
            "receive.buffer.bytes",
            "socket.receive.buffer.bytes",
            "security.protocol",
            "socket.nagle.disable",
            "socket.keepalive.enable",
            "sasl.mechanism",
            "sasl.mechanisms",
            "sasl.username",
            "sasl.password",
            "sasl.jaas.config",
            "sasl.oauthbearer.config",
            "enable.sasl.oauthbearer.unsecure.jwt",
        ]
    }

    /// Sets the client id sent with every request.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.connection.client_id = Some(id.into());
        self
    }

    /// Connects with TLS using `tls`: `security.protocol` becomes SSL (or SASL_SSL when SASL
    /// is on).
    ///
    /// ```
    /// use klamm::{ClientConfig, SecurityProtocol, TlsConfig};
    ///
    /// let config = ClientConfig::new("kafka.example.com:9093").tls(TlsConfig::new());
    /// assert_eq!(config.connection.security_protocol, SecurityProtocol::Ssl);
    /// ```
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.connection.tls = tls;
        self.connection.security_protocol = match self.connection.security_protocol {
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => SecurityProtocol::SaslSsl,
            _ => SecurityProtocol::Ssl,
        };
        self
    }

    /// Sets how long a request may wait for its response.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.connection.request_timeout = timeout;
        self
    }

    /// Sets how long opening one TCP connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection.connect_timeout = timeout;
        self
    }

    /// Sets how old cached metadata may get before a refresh.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets the first and the longest wait between reconnects to a broker.
    pub fn reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_backoff = first;
        self.reconnect_backoff_max = max;
        self
    }

    /// Sets the first and the longest wait between retries of a request.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_backoff_max = max;
        self
    }

    /// Authenticates connections with SASL as `sasl` says; turns `security.protocol` from
    /// PLAINTEXT to SASL_PLAINTEXT (and SSL to SASL_SSL).
    ///
    /// ```
    /// use klamm::{ClientConfig, SaslConfig, SaslMechanism, SecurityProtocol};
    ///
    /// let config = ClientConfig::new("127.0.0.1:9092")
    ///     .sasl(SaslConfig::scram(SaslMechanism::ScramSha512, "alice", "s3cret"));
    /// assert_eq!(config.connection.security_protocol, SecurityProtocol::SaslPlaintext);
    /// config.validate()?;
    /// # Ok::<(), klamm::Error>(())
    /// ```
    pub fn sasl(mut self, sasl: SaslConfig) -> Self {
        let conn = &mut self.connection;
        conn.security_protocol = match conn.security_protocol {
            SecurityProtocol::Plaintext => SecurityProtocol::SaslPlaintext,
            SecurityProtocol::Ssl => SecurityProtocol::SaslSsl,
            other => other,
        };
        conn.sasl = sasl;
        self
    }

    /// SASL PLAIN with this user name and password: [`ClientConfig::sasl`] with
    /// [`SaslConfig::plain`].
    pub fn sasl_plain(self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.sasl(SaslConfig::plain(username, password))
    }

    /// SASL SCRAM (`mechanism` SCRAM-SHA-256 or SCRAM-SHA-512) with this user name and password.
    pub fn sasl_scram(
        self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        self.sasl(SaslConfig::scram(mechanism, username, password))
    }

    /// SASL OAUTHBEARER with tokens from `provider` (see [`TokenProvider`]).
    pub fn sasl_oauthbearer(self, provider: impl TokenProvider) -> Self {
        self.sasl(SaslConfig::oauthbearer(provider))
    }

    /// Sets whether Metadata requests may create missing topics.
    pub fn allow_auto_create_topics(mut self, allow: bool) -> Self {
        self.allow_auto_create_topics = allow;
        self
    }

    /// Checks the settings against each other; every constructor of a client calls this.
    pub fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.is_empty() {
            return Err(config_error("bootstrap.servers is empty".to_owned()));
        }
        for server in &self.bootstrap_servers {
            let port_ok = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
            if !port_ok {
                return Err(config_error(format!("bootstrap.servers: {server:?} is not host:port")));
            }
        }
        // Checked here as well as by the connection, so that the error names the property.
        if self.connection.request_timeout.is_zero() {
            return Err(config_error("request.timeout.ms must be above zero".to_owned()));
        }
        if self.connection.connect_timeout.is_zero() {
            return Err(config_error("socket.connection.setup.timeout.ms must be above zero".to_owned()));
        }
        if self.reconnect_backoff_max < self.reconnect_backoff {
            return Err(config_error("reconnect.backoff.max.ms is below reconnect.backoff.ms".to_owned()));
        }
        if self.retry_backoff_max < self.retry_backoff {
            return Err(config_error("retry.backoff.max.ms is below retry.backoff.ms".to_owned()));
        }
        if self.metadata_max_age.is_zero() {
            return Err(config_error("metadata.max.age.ms must be above zero".to_owned()));
        }
        self.connection.validate()
    }
}

/// The exponential backoff with jitter that reconnects and retries use: `first * 2^attempt`,
/// capped at `max`, then scaled by a random factor in [0.8, 1.2) (the Java client's jitter).
pub(crate) fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    let base = first.saturating_mul(1u32 << attempt.min(20)).min(max);
    let jitter = 0.8 + 0.4 * crate::random::unit();
    base.mul_f64(jitter)
}

/// A [`ErrorKind::Config`] error with this explanation.
pub(crate) fn config_error(why: String) -> Error {
    Error::with_source(ErrorKind::Config, None, ConfigProblem(why))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConfigProblem(String);

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Parses a millisecond count into a duration (negative values are refused).
pub(crate) fn parse_ms(key: &str, value: &str) -> Result<Duration, Error> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| config_error(format!("{key}: {value:?} is not a number of milliseconds")))
}

/// Parses `true`/`false` (case-insensitive).
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(config_error(format!("{key}: {value:?} is not true or false"))),
    }
}

/// Parses a non-negative integer that fits `T`.
pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error> {
    value.trim().parse::<T>().map_err(|_| config_error(format!("{key}: {value:?} is not a valid number")))
}

/// A socket buffer size, where -1 means the OS default (Kafka's convention).
fn parse_buffer_size(key: &str, value: &str) -> Result<Option<u32>, Error> {
    let n: i64 = parse_num(key, value)?;
    match n {
        -1 => Ok(None),
        0.. if n <= i64::from(u32::MAX) => Ok(Some(n as u32)),
        _ => Err(config_error(format!("{key}: {value:?} is not -1 or a size in bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_map_to_fields() {
        let config = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1, b:2,"),
            ("client.id", "me"),
            ("request.timeout.ms", "1500"),
            ("reconnect.backoff.max.ms", "2000"),
            ("send.buffer.bytes", "-1"),
            ("receive.buffer.bytes", "65536"),
            ("allow.auto.create.topics", "FALSE"),
        ])
        .unwrap();
        assert_eq!(config.bootstrap_servers, ["a:1", "b:2"]);
        assert_eq!(config.connection.client_id.as_deref(), Some("me"));
        assert_eq!(config.connection.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.reconnect_backoff_max, Duration::from_secs(2));
        assert_eq!(config.connection.send_buffer_size, None);
        assert_eq!(config.connection.recv_buffer_size, Some(65536));
        assert!(!config.allow_auto_create_topics);
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_property() {
        for (key, value) in [
            ("request.timeout.ms", "soon"),
            ("request.timeout.ms", "-5"),
            ("allow.auto.create.topics", "yes"),
            ("security.protocol", "TLS"),
            ("send.buffer.bytes", "-2"),
            ("ssl.endpoint.identification.algorithm", "dns"),
            ("enable.ssl.certificate.verification", "maybe"),
        ] {
            let e = ClientConfig::from_properties([(key, value)]).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Config);
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn validate_refuses_inconsistent_settings() {
        assert!(ClientConfig::default().validate().is_err());
        for bad in ["localhost", "localhost:0", "host:notaport", ":9092"] {
            let e = ClientConfig::new(bad).validate().unwrap_err();
            assert!(e.to_string().contains("bootstrap.servers") && e.to_string().contains(bad), "{e}");
        }
        for key in ["request.timeout.ms", "socket.connection.setup.timeout.ms"] {
            let mut config = ClientConfig::new("h:1");
            config.set(key, "0").unwrap();
            assert!(config.validate().unwrap_err().to_string().contains(key), "{key}");
        }
        assert!(ClientConfig::new("[::1]:9092").validate().is_ok());
        let e = ClientConfig::new("h:1").reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert!(e.validate().unwrap_err().to_string().contains("reconnect"));
    }

    #[test]
    fn tls_properties_of_both_reference_clients_set_the_same_config() {
        let librdkafka = ClientConfig::from_properties([
            ("security.protocol", "ssl"),
            ("ssl.ca.location", "/ca.pem"),
            ("ssl.certificate.location", "/client.pem"),
            ("ssl.key.location", "/client.key"),
            ("ssl.key.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "none"),
        ])
        .unwrap();
        let java = ClientConfig::from_properties([
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.certificate.location", "/client.pem"),
            ("ssl.key.location", "/client.key"),
            ("ssl.key.password", "secret"),
            ("ssl.endpoint.identification.algorithm", ""),
        ])
        .unwrap();
        let typed = TlsConfig::new()
            .ca_file("/ca.pem")
            .client_certificate_files("/client.pem", "/client.key")
            .key_password("secret")
            .verify_hostname(false);
        assert_eq!(librdkafka.connection.tls, typed);
        assert_eq!(java.connection.tls, typed);
        assert_eq!(java.connection.security_protocol, SecurityProtocol::Ssl);
        // The password never shows in Debug output.
        assert!(!format!("{java:?}").contains("secret"), "{java:?}");
        let inline =
            ClientConfig::from_properties([("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----x")]).unwrap();
        assert!(!format!("{inline:?}").contains("BEGIN"), "{inline:?}");
    }

    #[test]
    fn java_key_stores_other_than_pem_are_refused_with_what_to_use() {
        for (key, value) in [("ssl.truststore.type", "JKS"), ("ssl.keystore.type", "PKCS12")] {
            let config = ClientConfig::from_properties([
                ("bootstrap.servers", "h:1"),
                ("security.protocol", "SSL"),
                ("ssl.ca.location", "/nonexistent/ca.pem"),
                (key, value),
            ])
            .unwrap();
            let e = config.validate().unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Tls(crate::TlsFailure::Unsupported));
            assert!(e.to_string().contains(key) && e.to_string().contains("PEM"), "{e}");
        }
        // A Java store without a type is JKS to the Java client, and so refused here; a store
        // password has no place with PEM.
        for (key, value, named) in [
            ("ssl.truststore.location", "/ca.jks", "ssl.truststore.type=JKS"),
            ("ssl.keystore.location", "/client.jks", "ssl.keystore.type=JKS"),
            ("ssl.truststore.password", "changeit", "ssl.truststore.password"),
        ] {
            let mut config = ClientConfig::new("h:1");
            config.set("security.protocol", "SSL").unwrap();
            config.set(key, value).unwrap();
            if key == "ssl.truststore.password" {
                config.set("ssl.truststore.type", "PEM").unwrap();
            }
            let e = config.validate().unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Tls(crate::TlsFailure::Unsupported), "{e}");
            assert!(e.to_string().contains(named), "{e}");
            assert!(!e.to_string().contains("changeit"), "{e}");
        }
    }

    #[test]
    fn unreadable_or_mismatched_tls_files_are_tls_errors_naming_the_file() {
        let config = ClientConfig::new("h:1").tls(TlsConfig::new().ca_file("/nonexistent/ca.pem"));
        let e = config.validate().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Tls(crate::TlsFailure::BadCertificateOrKey));
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let config = ClientConfig::new("h:1").tls(TlsConfig::new().ca_pem("not a certificate"));
        let e = config.validate().unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let mut config = ClientConfig::new("h:1");
        config.set("security.protocol", "SSL").unwrap();
        config.set("ssl.certificate.location", "/client.pem").unwrap();
        let e = config.validate().unwrap_err();
        assert!(e.to_string().contains("without its key"), "{e}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 0..40 {
            let wait = backoff(first, max, attempt);
            let base = first.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(wait >= base.mul_f64(0.8) && wait < base.mul_f64(1.2), "{attempt}: {wait:?}");
        }
    }
}
