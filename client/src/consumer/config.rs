//! [`ConsumerConfig`]: the partition consumer's settings, typed and by Kafka property name.
//!
//! The consumer owns the fetch and offset-reset settings; every other property name goes to
//! the embedded [`ClientConfig`] (bootstrap servers, timeouts, backoffs), so one `key=value`
//! list configures both.

use std::time::Duration;

use crate::config::{config_error, parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::Error;

/// Where a partition starts when it has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The earliest offset the partition still holds.
    Earliest,
    /// The end of the partition: only records produced from now on (the Java default).
    #[default]
    Latest,
    /// No reset: [`Consumer::poll`](crate::Consumer::poll) returns an OFFSET_OUT_OF_RANGE error
    /// for the partition, which then waits for a seek.
    None,
}

/// Which records a fetch may return (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions (the Java default).
    #[default]
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones), up to the last
    /// stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value: 0 for read_uncommitted, 1 for read_committed.
    pub fn code(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Settings of a [`Consumer`](crate::Consumer).
///
/// ```
/// use std::time::Duration;
/// use klamm::{ConsumerConfig, IsolationLevel, OffsetReset};
///
/// let config = ConsumerConfig::new("127.0.0.1:9092")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .isolation_level(IsolationLevel::ReadCommitted)
///     .fetch_max_wait(Duration::from_millis(100));
///
/// // The same from Kafka property names; names the consumer does not own go to the client.
/// let same = ConsumerConfig::from_properties([
///     ("bootstrap.servers", "127.0.0.1:9092"),
///     ("auto.offset.reset", "earliest"),
///     ("isolation.level", "read_committed"),
///     ("fetch.max.wait.ms", "100"),
/// ])?;
/// assert_eq!(same.auto_offset_reset, config.auto_offset_reset);
/// assert_eq!(same.fetch_max_wait, Duration::from_millis(100));
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The settings of the client the consumer creates (ignored by
    /// [`Consumer::with_client`](crate::Consumer::with_client)).
    pub client: ClientConfig,
    /// Where a partition without a valid position starts (`auto.offset.reset`). Default: latest.
    pub auto_offset_reset: OffsetReset,
    /// Which records fetches return (`isolation.level`). Default: read_uncommitted.
    pub isolation_level: IsolationLevel,
    /// How many bytes a broker should gather before it answers a fetch (`fetch.min.bytes`).
    /// Default: 1.
    pub fetch_min_bytes: i32,
    /// The most a fetch response should carry (`fetch.max.bytes`); a broker still returns one
    /// batch larger than this so that consumption can progress. Default: 50 MiB.
    pub fetch_max_bytes: i32,
    /// The most a fetch response should carry per partition (`max.partition.fetch.bytes`).
    /// Default: 1 MiB.
    pub max_partition_fetch_bytes: i32,
    /// How long a broker may wait for `fetch.min.bytes` (`fetch.max.wait.ms`). Default: 500 ms.
    pub fetch_max_wait: Duration,
    /// The prefetch memory limit: no new fetch starts while the record data fetched but not yet
    /// handed out exceeds this (`queued.max.messages.kbytes`, in KiB as librdkafka, or
    /// `klamm.prefetch.max.bytes`). Default: 64 MiB.
    pub prefetch_max_bytes: usize,
    /// The most records one [`Consumer::poll`](crate::Consumer::poll) returns
    /// (`max.poll.records`). Default: 500.
    pub max_poll_records: usize,
    /// Whether to verify the CRC of every record batch (`check.crcs`). Default: true.
    pub check_crcs: bool,
    /// How long an assigned partition may go unread for a retriable cause (brokers that cannot
    /// be reached, no leader, ...) before [`Consumer::poll`](crate::Consumer::poll) returns a
    /// retriable error that names the partitions and the cause (`klamm.stall.timeout.ms`, our
    /// own property). Warnings are logged before that. Zero: warnings only. Default: 30 s.
    pub stall_timeout: Duration,
    /// How long a topic that does not exist may stay missing before `poll` says so with a
    /// retriable UNKNOWN_TOPIC_OR_PARTITION error (`topic.metadata.propagation.max.ms`, as
    /// librdkafka). Zero: warnings only. Default: 30 s.
    pub topic_metadata_propagation_max: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            auto_offset_reset: OffsetReset::default(),
            isolation_level: IsolationLevel::default(),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            prefetch_max_bytes: 64 * 1024 * 1024,
            max_poll_records: 500,
            check_crcs: true,
            stall_timeout: Duration::from_secs(30),
            topic_metadata_propagation_max: Duration::from_secs(30),
        }
    }
}

impl ConsumerConfig {
    /// Defaults, with the bootstrap list from a comma-separated `host:port` list.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self { client: ClientConfig::new(bootstrap_servers), ..Self::default() }
    }

    /// Defaults around an existing client configuration.
    pub fn with_client_config(client: ClientConfig) -> Self {
        Self { client, ..Self::default() }
    }

    /// Defaults changed by Kafka-style properties; see [`ConsumerConfig::set`].
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
    /// The consumer's names: `auto.offset.reset` (`earliest`, `latest`, `none`; also
    /// librdkafka's `smallest`/`beginning` and `largest`/`end`), `isolation.level`
    /// (`read_committed`, `read_uncommitted`), `fetch.min.bytes`, `fetch.max.bytes`,
    /// `max.partition.fetch.bytes`, `fetch.max.wait.ms` (also `fetch.wait.max.ms`),
    /// `queued.max.messages.kbytes`, `klamm.prefetch.max.bytes`, `max.poll.records`,
    /// `check.crcs`, `klamm.stall.timeout.ms`, `topic.metadata.propagation.max.ms`. Every other
    /// name goes to [`ClientConfig::set`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim().to_ascii_lowercase().as_str() {
                    "earliest" | "smallest" | "beginning" => OffsetReset::Earliest,
                    "latest" | "largest" | "end" => OffsetReset::Latest,
                    "none" | "error" => OffsetReset::None,
                    _ => {
                        return Err(config_error(format!("{key}: {value:?} is not earliest, latest or none")))
                    }
                }
            }
            "isolation.level" => {
                self.isolation_level = match value.trim().to_ascii_lowercase().as_str() {
                    "read_committed" => IsolationLevel::ReadCommitted,
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    _ => {
                        return Err(config_error(format!(
                            "{key}: {value:?} is not read_committed or read_uncommitted"
                        )))
                    }
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_positive(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_positive(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_positive(key, value)?,
            "fetch.max.wait.ms" | "fetch.wait.max.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "queued.max.messages.kbytes" => {
                let kib: usize = parse_num(key, value)?;
                self.prefetch_max_bytes = kib.saturating_mul(1024);
            }
            "klamm.prefetch.max.bytes" => self.prefetch_max_bytes = parse_num(key, value)?,
            "max.poll.records" => self.max_poll_records = parse_num(key, value)?,
            "check.crcs" => self.check_crcs = parse_bool(key, value)?,
            "klamm.stall.timeout.ms" => self.stall_timeout = parse_ms(key, value)?,
            "topic.metadata.propagation.max.ms" => {
                self.topic_metadata_propagation_max = parse_ms(key, value)?
            }
            _ => {
                return self
                    .client
                    .set(key, value)
                    .map_err(|e| crate::suggest::widen(e, Self::property_names()))
            }
        }
        Ok(())
    }

    /// The property names [`ConsumerConfig::set`] knows, the client's included (for "did you
    /// mean" hints).
    pub fn property_names() -> Vec<&'static str> {
        let own = [
            "auto.offset.reset",
            "isolation.level",
            "fetch.min.bytes",
            "fetch.max.bytes",
            "max.partition.fetch.bytes",
            "fetch.max.wait.ms",
            "fetch.wait.max.ms",
            "queued.max.messages.kbytes",
            "klamm.prefetch.max.bytes",
            "max.poll.records",
            "check.crcs",
            "klamm.stall.timeout.ms",
            "topic.metadata.propagation.max.ms",
        ];
        own.into_iter().chain(ClientConfig::property_names().iter().copied()).collect()
    }

    /// Sets where a partition without a valid position starts.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets which records fetches return.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// Sets how many bytes a broker should gather before answering a fetch.
    pub fn fetch_min_bytes(mut self, bytes: i32) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }

    /// Sets the most a fetch response should carry.
    pub fn fetch_max_bytes(mut self, bytes: i32) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }

    /// Sets the most a fetch response should carry per partition.
    pub fn max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }

    /// Sets how long a broker may hold a fetch waiting for data.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// Sets the prefetch memory limit in bytes.
    pub fn prefetch_max_bytes(mut self, bytes: usize) -> Self {
        self.prefetch_max_bytes = bytes;
        self
    }

    /// Sets the most records one poll returns.
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }

    /// Sets how long partitions may go unread for a retriable cause before `poll` reports it
    /// (zero: warnings only).
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Sets how long a topic may be missing before `poll` reports it (zero: warnings only).
    pub fn topic_metadata_propagation_max(mut self, timeout: Duration) -> Self {
        self.topic_metadata_propagation_max = timeout;
        self
    }

    /// Checks the settings against each other (and the client's).
    pub fn validate(&self) -> Result<(), Error> {
        if self.fetch_min_bytes < 0 {
            return Err(config_error("fetch.min.bytes must not be negative".to_owned()));
        }
        if self.fetch_max_bytes <= 0 || self.max_partition_fetch_bytes <= 0 {
            return Err(config_error(
                "fetch.max.bytes and max.partition.fetch.bytes must be above zero".to_owned(),
            ));
        }
        if self.prefetch_max_bytes == 0 {
            return Err(config_error("the prefetch limit (queued.max.messages.kbytes) is zero".to_owned()));
        }
        if self.max_poll_records == 0 {
            return Err(config_error("max.poll.records must be above zero".to_owned()));
        }
        if i32::try_from(self.fetch_max_wait.as_millis()).is_err() {
            return Err(config_error("fetch.max.wait.ms does not fit 31 bits".to_owned()));
        }
        self.client.validate()
    }
}

fn parse_positive(key: &str, value: &str) -> Result<i32, Error> {
    let n: i32 = parse_num(key, value)?;
    if n < 0 {
        return Err(config_error(format!("{key}: {value:?} is negative")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn every_listed_name_is_known_and_a_typo_gets_a_hint() {
        for name in ConsumerConfig::property_names() {
            let e = ConsumerConfig::default().set(name, "?").err();
            assert!(e.as_ref().and_then(crate::UnknownProperty::of).is_none(), "{name}: {e:?}");
        }
        for name in crate::ProducerConfig::property_names() {
            let e = crate::ProducerConfig::default().set(name, "?").err();
            assert!(e.as_ref().and_then(crate::UnknownProperty::of).is_none(), "{name}: {e:?}");
        }
        for (typo, meant) in
            [("max.poll.record", "max.poll.records"), ("bootstrap_servers", "bootstrap.servers")]
        {
            let e = ConsumerConfig::default().set(typo, "1").unwrap_err();
            assert_eq!(crate::UnknownProperty::of(&e).and_then(|u| u.suggestion()), Some(meant), "{e}");
        }
        let e = crate::ProducerConfig::default().set("linger.msec", "1").unwrap_err();
        assert!(e.to_string().contains(r#"did you mean "linger.ms"?"#), "{e}");
    }

    #[test]
    fn properties_map_to_fields_and_fall_through_to_the_client() {
        let config = ConsumerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("auto.offset.reset", "smallest"),
            ("isolation.level", "READ_COMMITTED"),
            ("fetch.min.bytes", "10"),
            ("fetch.max.bytes", "1000"),
            ("max.partition.fetch.bytes", "100"),
            ("fetch.wait.max.ms", "42"),
            ("queued.max.messages.kbytes", "2"),
            ("max.poll.records", "7"),
            ("check.crcs", "false"),
            ("klamm.stall.timeout.ms", "5000"),
            ("topic.metadata.propagation.max.ms", "0"),
            ("client.id", "c"),
        ])
        .unwrap();
        assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(config.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(config.fetch_min_bytes, 10);
        assert_eq!(config.fetch_max_bytes, 1000);
        assert_eq!(config.max_partition_fetch_bytes, 100);
        assert_eq!(config.fetch_max_wait, Duration::from_millis(42));
        assert_eq!(config.prefetch_max_bytes, 2048);
        assert_eq!(config.max_poll_records, 7);
        assert!(!config.check_crcs);
        assert_eq!(config.stall_timeout, Duration::from_secs(5));
        assert_eq!(config.topic_metadata_propagation_max, Duration::ZERO);
        assert_eq!(config.client.bootstrap_servers, ["a:1"]);
        assert_eq!(config.client.connection.client_id.as_deref(), Some("c"));
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_property() {
        for (key, value) in [
            ("auto.offset.reset", "sometimes"),
            ("isolation.level", "serializable"),
            ("fetch.max.bytes", "-1"),
            ("fetch.max.wait.ms", "x"),
            ("group.id", "g"),
        ] {
            let e = ConsumerConfig::from_properties([(key, value)]).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Config);
            assert!(e.to_string().contains(key), "{e}");
        }
        let zero = ConsumerConfig::new("a:1").prefetch_max_bytes(0);
        assert!(zero.validate().is_err());
    }
}
