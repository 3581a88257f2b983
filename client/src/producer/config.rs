//! [`ProducerConfig`]: the producer's settings, by typed method or Kafka property name.
//!
//! Defaults follow the Java client (4.x): idempotence on, `acks=all`, `linger.ms=5`,
//! `delivery.timeout.ms=120000`, `max.block.ms=60000`, at most 5 requests in flight per broker.
//! Two defaults differ on purpose: `batch.size` is 256 KiB (Java: 16 KiB; librdkafka: 1 MB)
//! because per-request cost dominates small batches, and `buffer.memory` is 64 MiB.

use std::time::Duration;

use klamm_protocol::compression::Compression;

use crate::config::{config_error, parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::Error;

/// Which acknowledgement a produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// None: the request is written and forgotten; offsets come back as -1 (`acks=0`).
    None,
    /// The partition leader has written the records (`acks=1`).
    Leader,
    /// Every in-sync replica has them (`acks=all` or `-1`). The default.
    #[default]
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Acks, Error> {
        match s.trim() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(config_error(format!("acks: {s:?} is not 0, 1, all or -1"))),
        }
    }
}

/// Settings of a [`Producer`](crate::Producer).
///
/// ```
/// use std::time::Duration;
/// use klamm::{Acks, ProducerConfig};
/// use klamm::protocol::compression::Compression;
///
/// let config = ProducerConfig::new("127.0.0.1:9092")
///     .compression(Compression::Lz4)
///     .linger(Duration::from_millis(10));
/// assert!(config.idempotent());
///
/// let same = ProducerConfig::from_properties([
///     ("bootstrap.servers", "127.0.0.1:9092"),
///     ("compression.type", "lz4"),
///     ("linger.ms", "10"),
/// ])?;
/// assert_eq!(same.compression, Compression::Lz4);
/// assert_eq!(same.acks, Acks::All);
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Connection and metadata settings.
    pub client: ClientConfig,
    /// `acks`. Default: [`Acks::All`].
    pub acks: Acks,
    /// `enable.idempotence`: `None` means "on unless acks is not all" (the Java client's rule
    /// for an unset value); `Some(true)` with acks other than all is a configuration error.
    pub enable_idempotence: Option<bool>,
    /// `compression.type`. Default: none.
    pub compression: Compression,
    /// `compression.level` (codec-specific; `None` for the codec's default).
    pub compression_level: Option<i32>,
    /// `batch.size`: a partition's batch is sent once it holds this many bytes. Default 256 KiB.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full may wait for more records. Default 5 ms.
    pub linger: Duration,
    /// `buffer.memory`: bytes of records waiting to be acknowledged, across all partitions;
    /// `send` waits (up to `max_block`) when they are used up. Default 64 MiB.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for buffer memory or for a topic's metadata.
    /// Default 60 s.
    pub max_block: Duration,
    /// `delivery.timeout.ms`: how long a record may take from `send` to its acknowledgement,
    /// retries included. Default 120 s.
    pub delivery_timeout: Duration,
    /// `max.request.size`: the largest record (and the most record bytes in one Produce
    /// request). Default 1 MiB.
    pub max_request_size: usize,
    /// `max.in.flight.requests.per.connection`. Default 5; at most 5 with idempotence.
    pub max_in_flight: usize,
    /// `retries`: how many times a batch may be retried (within `delivery_timeout`). Default:
    /// unlimited.
    pub retries: u32,
    /// `transactional.id`: makes the producer transactional (see
    /// [`Producer::init_transactions`](crate::Producer::init_transactions)). Producers that
    /// share it fence each other: only the one that called `init_transactions` last can
    /// write. Default: none.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long a transaction may stay open before the coordinator
    /// aborts it. At most the broker's `transaction.max.timeout.ms` (15 minutes by default).
    /// Default 60 s.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            acks: Acks::All,
            enable_idempotence: None,
            compression: Compression::None,
            compression_level: None,
            batch_size: 256 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 64 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            delivery_timeout: Duration::from_secs(120),
            max_request_size: 1024 * 1024,
            max_in_flight: 5,
            retries: u32::MAX,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Defaults, with the bootstrap list from a comma-separated `host:port` list.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self { client: ClientConfig::new(bootstrap_servers), ..Self::default() }
    }

    /// Defaults, with the bootstrap list from `KAFKA_BROKERS`.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self { client: ClientConfig::from_env()?, ..Self::default() })
    }

    /// Defaults changed by Kafka-style properties; see [`ProducerConfig::set`].
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        let mut config = Self::default();
        for (key, value) in properties {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one setting by its Kafka property name: `acks` (also `request.required.acks`),
    /// `enable.idempotence`, `compression.type` (also `compression.codec`),
    /// `compression.level`, `batch.size`, `linger.ms` (also `queue.buffering.max.ms`),
    /// `buffer.memory`, `max.block.ms`, `delivery.timeout.ms` (also `message.timeout.ms`),
    /// `max.request.size`, `max.in.flight.requests.per.connection`, `retries`,
    /// `transactional.id`, `transaction.timeout.ms`; anything else
    /// goes to [`ClientConfig::set`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "acks" | "request.required.acks" => self.acks = value.parse()?,
            "enable.idempotence" => self.enable_idempotence = Some(parse_bool(key, value)?),
            "compression.type" | "compression.codec" => {
                self.compression = Compression::ALL
                    .iter()
                    .copied()
                    .find(|c| c.name() == value.trim())
                    .ok_or_else(|| config_error(format!("{key}: unknown codec {value:?}")))?;
                if !self.compression.is_enabled() {
                    return Err(config_error(format!("{key}: {value} is not built into this binary")));
                }
            }
            "compression.level" => self.compression_level = Some(parse_num(key, value)?),
            "batch.size" => self.batch_size = parse_num(key, value)?,
            "linger.ms" | "queue.buffering.max.ms" => self.linger = parse_ms(key, value)?,
            "buffer.memory" => self.buffer_memory = parse_num(key, value)?,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            "delivery.timeout.ms" | "message.timeout.ms" => self.delivery_timeout = parse_ms(key, value)?,
            "max.request.size" => self.max_request_size = parse_num(key, value)?,
            "max.in.flight.requests.per.connection" | "max.in.flight" => {
                self.max_in_flight = parse_num(key, value)?
            }
            "retries" => {
                let n: i64 = parse_num(key, value)?;
                self.retries = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            }
            "transactional.id" => {
                let id = value.trim();
                self.transactional_id = (!id.is_empty()).then(|| id.to_owned());
            }
            "transaction.timeout.ms" => self.transaction_timeout = parse_ms(key, value)?,
            _ => self.client.set(key, value).map_err(|e| crate::suggest::widen(e, Self::property_names()))?,
        }
        Ok(())
    }

    /// The property names [`ProducerConfig::set`] knows, the client's included (for "did you
    /// mean" hints).
    pub fn property_names() -> Vec<&'static str> {
        let own = [
            "acks",
            "request.required.acks",
            "enable.idempotence",
            "compression.type",
            "compression.codec",
            "compression.level",
            "batch.size",
            "linger.ms",
            "queue.buffering.max.ms",
            "buffer.memory",
            "max.block.ms",
            "delivery.timeout.ms",
            "message.timeout.ms",
            "max.request.size",
            "max.in.flight.requests.per.connection",
            "max.in.flight",
            "retries",
            "transactional.id",
            "transaction.timeout.ms",
        ];
        own.into_iter().chain(ClientConfig::property_names().iter().copied()).collect()
    }

    /// Sets `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Turns idempotence on or off explicitly.
    pub fn enable_idempotence(mut self, on: bool) -> Self {
        self.enable_idempotence = Some(on);
        self
    }

    /// Sets the batch compression.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Sets the batch size in bytes.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets how long a batch may wait for more records.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets the buffer memory in bytes.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets how long `send` may wait for memory or metadata.
    pub fn max_block(mut self, max_block: Duration) -> Self {
        self.max_block = max_block;
        self
    }

    /// Sets the delivery timeout.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets the largest record and request size.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Makes the producer transactional with this `transactional.id`.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// Sets `transaction.timeout.ms`.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Changes the client settings.
    pub fn with_client(mut self, change: impl FnOnce(ClientConfig) -> ClientConfig) -> Self {
        self.client = change(self.client);
        self
    }

    /// Whether the producer will be idempotent with these settings (a transactional one always
    /// is).
    pub fn idempotent(&self) -> bool {
        let default = self.acks == Acks::All || self.transactional_id.is_some();
        self.enable_idempotence.unwrap_or(default) && self.acks == Acks::All
    }

    /// Whether the producer will be transactional (`transactional.id` is set).
    pub fn transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), Error> {
        self.client.validate()?;
        if self.enable_idempotence == Some(true) && self.acks != Acks::All {
            return Err(config_error("enable.idempotence=true needs acks=all".to_owned()));
        }
        if self.transactional() && !self.idempotent() {
            return Err(config_error(
                "transactional.id needs idempotence: acks=all and enable.idempotence not false".to_owned(),
            ));
        }
        let timeout_ms = self.transaction_timeout.as_millis();
        if self.transactional() && (timeout_ms == 0 || timeout_ms > i32::MAX as u128) {
            return Err(config_error("transaction.timeout.ms must be above 0 and below 2^31".to_owned()));
        }
        if self.idempotent() && self.max_in_flight > 5 {
            return Err(config_error(
                "max.in.flight.requests.per.connection must be at most 5 with idempotence".to_owned(),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(config_error("max.in.flight.requests.per.connection must be at least 1".to_owned()));
        }
        if self.batch_size == 0 || self.max_request_size < 128 || self.buffer_memory < self.max_request_size {
            return Err(config_error(
                "batch.size must be above 0, max.request.size at least 128 and buffer.memory at least max.request.size"
                    .to_owned(),
            ));
        }
        if self.buffer_memory > (u32::MAX as usize) {
            return Err(config_error("buffer.memory must be below 4 GiB".to_owned()));
        }
        if self.delivery_timeout < self.linger + self.client.connection.request_timeout {
            return Err(config_error(
                "delivery.timeout.ms must be at least linger.ms + request.timeout.ms".to_owned(),
            ));
        }
        if !self.compression.is_enabled() {
            return Err(config_error(format!("compression {} is not built in", self.compression.name())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn properties_and_defaults() {
        let c = ProducerConfig::from_properties([
            ("bootstrap.servers", "h:1"),
            ("acks", "1"),
            ("compression.type", "zstd"),
            ("linger.ms", "0"),
            ("retries", "-1"),
            ("client.id", "p"),
        ])
        .unwrap();
        assert_eq!(c.acks, Acks::Leader);
        assert!(!c.idempotent(), "acks=1 turns the default idempotence off");
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(c.linger, Duration::ZERO);
        assert_eq!(c.retries, 0);
        assert_eq!(c.client.connection.client_id.as_deref(), Some("p"));
        c.validate().unwrap();
        assert!(ProducerConfig::new("h:1").idempotent());
    }

    #[test]
    fn invalid_values_are_config_errors() {
        for (k, v) in
            [("acks", "2"), ("compression.type", "brotli"), ("batch.size", "-1"), ("linger.ms", "x")]
        {
            let e = ProducerConfig::from_properties([(k, v)]).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Config, "{k}={v}");
            assert!(e.to_string().contains(k), "{e}");
        }
        let c = ProducerConfig::new("h:1").acks(Acks::Leader).enable_idempotence(true);
        assert!(c.validate().unwrap_err().to_string().contains("idempotence"));
        let mut c = ProducerConfig::new("h:1");
        c.max_in_flight = 6;
        assert!(c.validate().is_err());
    }

    #[test]
    fn transactional_settings() {
        let c = ProducerConfig::from_properties([
            ("bootstrap.servers", "h:1"),
            ("transactional.id", "copy-1"),
            ("transaction.timeout.ms", "30000"),
        ])
        .unwrap();
        assert_eq!(c.transactional_id.as_deref(), Some("copy-1"));
        assert_eq!(c.transaction_timeout, Duration::from_secs(30));
        assert!(c.transactional() && c.idempotent());
        c.validate().unwrap();
        let no_idempotence = c.clone().enable_idempotence(false);
        assert!(no_idempotence.validate().unwrap_err().to_string().contains("transactional.id"));
        let acks_one = c.acks(Acks::Leader);
        assert!(acks_one.validate().is_err());
    }
}
