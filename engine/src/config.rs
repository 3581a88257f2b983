//! [`EngineConfig`]: the engine's settings, from code or from `KAFKA_*` environment variables.
//!
//! Engine settings have variables of their own (`KAFKA_BROKERS`, `KAFKA_TOPIC`, ...). Kafka
//! client properties go through two prefixes: `KAFKA_CONSUMER_<PROP>` and
//! `KAFKA_PRODUCER_<PROP>`, where `<PROP>` is the property name upper-cased with `.` turned into
//! `_` (`KAFKA_PRODUCER_LINGER_MS=5` sets the producer's `linger.ms`). A bad value is a
//! [`ErrorKind::Config`] error naming the variable, before any connection is made; so is an
//! unknown property under a prefix, with a "did you mean" hint (`KAFKA_PRODUCER_LINGER`: did
//! you mean `KAFKA_PRODUCER_LINGER_MS`?). A `KAFKA_*` variable the engine does not read but
//! that is close to one it does (`KAFKA_BROKER`) gets a WARN log with the hint; it is not an
//! error, since other tools read `KAFKA_*` variables too (`KAFKA_HOME`, `KAFKA_OPTS`,
//! `KAFKA_BROKER_ID` in a broker's container).
//!
//! Security settings apply to every client the engine makes (the group consumer, the
//! dead-letter producer, the event publisher), so they have variables without a role prefix:
//! `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_<PROP>` and `KAFKA_SASL_<PROP>` set
//! `security.protocol`, `ssl.<prop>` and `sasl.<prop>` the same way
//! (`KAFKA_SSL_CA_LOCATION=/etc/kafka/ca.pem` sets `ssl.ca.location`). The same property set
//! differently through `KAFKA_CONSUMER_*` or `KAFKA_PRODUCER_*` is an error naming both
//! variables.
//!
//! The services that move onto the engine carry variables of their own, named after the
//! settings of the Go client they used (segmentio/kafka-go): [`SEED_VARIABLES`]. Those with a
//! `KAFKA_CONSUMER_` or `KAFKA_PRODUCER_` prefix (`KAFKA_CONSUMER_SESSION_TIMEOUT=10s`) are
//! recognised before the generic pass-through, which keeps working beside them
//! (`KAFKA_CONSUMER_SESSION_TIMEOUT_MS=10000`). Their durations are Go-style or bare
//! milliseconds ([`parse_duration`](crate::parse_duration)), their sizes `10MB`, `1MiB` or
//! bare bytes ([`parse_size`](crate::parse_size)). Two variables that set the same property or
//! setting to different values (a seed name and the generic one, `KAFKA_GROUP` and
//! `KAFKA_GROUP_ID`, ...) are an error naming both; the same value twice is fine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use klamm::{Error, ErrorKind, OffsetReset, ProducerConfig};
use klamm_group::{GroupConfig, GroupProtocol};

use crate::units::{parse_duration, parse_size};

/// Prefix of the variables that set consumer (and group) properties.
pub const CONSUMER_PREFIX: &str = "KAFKA_CONSUMER_";
/// Prefix of the variables that set producer properties (the dead-letter producer).
pub const PRODUCER_PREFIX: &str = "KAFKA_PRODUCER_";
/// The variables (a name, or a prefix ending in `_`) of security properties, which apply to
/// the consumer and the producer alike: `security.protocol`, `ssl.*` and `sasl.*`.
pub const SECURITY_VARIABLES: [&str; 3] = ["KAFKA_SECURITY_PROTOCOL", "KAFKA_SSL_", "KAFKA_SASL_"];

/// The engine's own variables (those that set properties have the prefixes above).
pub const VARIABLES: &[&str] = &[
    "KAFKA_BROKERS",
    "KAFKA_TOPIC",
    "KAFKA_GROUP_ID",
    "KAFKA_DLQ_TOPIC",
    "KAFKA_MAX_RETRIES",
    "KAFKA_RETRY_BACKOFF_MS",
    "KAFKA_SHUTDOWN_TIMEOUT_MS",
    "KAFKA_STATE_DIR",
    "KAFKA_GROUP_PROTOCOL",
    "KAFKA_ENGINE_HTTP_ADDR",
    "KAFKA_STATE_STORE",
    "KAFKA_ENGINE_EXACTLY_ONCE",
    "KAFKA_ENGINE_TRANSACTIONAL_ID",
];

/// The variables of the services that move onto the engine, named after segmentio/kafka-go's
/// settings; each is an alias of a Kafka property or of an engine setting (see
/// `docs/engine.md` for the table). Those under the two prefixes are recognised before the
/// generic `KAFKA_CONSUMER_<PROP>` / `KAFKA_PRODUCER_<PROP>` pass-through.
pub const SEED_VARIABLES: &[&str] = &[
    "KAFKA_PRODUCER_MAX_ATTEMPTS",
    "KAFKA_PRODUCER_BATCH_TIMEOUT",
    "KAFKA_PRODUCER_REQUIRE_ACKS",
    "KAFKA_PRODUCER_COMPRESSION",
    "KAFKA_PRODUCER_ASYNC",
    "KAFKA_PRODUCER_DLQ_TOPIC",
    "KAFKA_CONSUMER_START_OFFSET",
    "KAFKA_CONSUMER_MIN_BYTES",
    "KAFKA_CONSUMER_MAX_BYTES",
    "KAFKA_CONSUMER_MAX_WAIT",
    "KAFKA_CONSUMER_COMMIT_INTERVAL",
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL",
    "KAFKA_CONSUMER_SESSION_TIMEOUT",
    "KAFKA_CONSUMER_REBALANCE_TIMEOUT",
    "KAFKA_CONSUMER_DLQ_TOPIC",
    "KAFKA_CONSUMER_MAX_RETRIES",
    "KAFKA_GROUP",
    "KAFKA_TOPICS",
    "KAFKA_AUTO_COMMIT",
    "KAFKA_START_FROM_BEGINNING",
];

/// The longest commit interval accepted (a day): a longer one leaves nothing committed for
/// longer than any group keeps its offsets.
pub const MAX_COMMIT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Where the engine keeps workspaces when no store of the application's is given
/// (`KAFKA_STATE_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateStore {
    /// One file per workspace in `state_dir` ([`FileStorage`](crate::FileStorage)), for one
    /// host (`file`, the default).
    #[default]
    File,
    /// A compacted changelog topic, `<group id>-workspaces-changelog`
    /// ([`KafkaStorage`](crate::KafkaStorage)), restored on assignment: several replicas,
    /// no shared disk (`kafka`).
    Kafka,
}

impl StateStore {
    /// The name `KAFKA_STATE_STORE` takes (`file`, `kafka`).
    pub fn name(self) -> &'static str {
        match self {
            StateStore::File => "file",
            StateStore::Kafka => "kafka",
        }
    }
}

impl std::str::FromStr for StateStore {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(StateStore::File),
            "kafka" => Ok(StateStore::Kafka),
            _ => Err(format!("{s:?} is neither file nor kafka")),
        }
    }
}

/// The commit interval of the exactly-once mode when none is set (a zero `commit_interval`):
/// each transaction covers this long of processing, as Kafka Streams' exactly-once default.
pub const EXACTLY_ONCE_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The `transaction.timeout.ms` of the exactly-once mode unless `KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS`
/// sets one: how long the transaction of an instance that died stays open, holding back
/// read_committed readers of what it wrote (its changelog partitions and output), before the
/// coordinator aborts it.
pub const EXACTLY_ONCE_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest shutdown timeout accepted (a day): deadlines are computed from it, and a
/// shutdown that may take longer is not one.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The longest a retry backoff grows to, whatever the base.
pub const DEFAULT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The engine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Bootstrap brokers (`KAFKA_BROKERS`, default `localhost:9092`).
    pub brokers: String,
    /// Source topics (`KAFKA_TOPIC`, comma-separated, default `workspace-events`). The first is
    /// the primary topic: a workspace's `offset` is its position in that topic.
    pub topics: Vec<String>,
    /// Consumer group (`KAFKA_GROUP_ID`, default `workspace-engine`).
    pub group_id: String,
    /// Dead-letter topic (`KAFKA_DLQ_TOPIC`, default `<first topic>.dlq`).
    pub dlq_topic: String,
    /// Retries of a transient failure before the message is dead-lettered
    /// (`KAFKA_MAX_RETRIES`, default 3).
    pub max_retries: u32,
    /// First retry backoff (`KAFKA_RETRY_BACKOFF_MS`, default 100 ms); it doubles on each retry,
    /// with ±20% jitter, up to [`EngineConfig::retry_backoff_max`].
    pub retry_backoff: Duration,
    /// The cap of the retry backoff (default 10 s).
    pub retry_backoff_max: Duration,
    /// Where [`FileStorage`](crate::FileStorage) keeps workspace files (`KAFKA_STATE_DIR`,
    /// default `./state`).
    pub state_dir: PathBuf,
    /// Where workspaces are kept when the builder is given no store (`KAFKA_STATE_STORE`,
    /// `file` or `kafka`; default `file`).
    pub state_store: StateStore,
    /// Consumer and group properties by Kafka name (from `KAFKA_CONSUMER_*`, and
    /// `group.protocol` from `KAFKA_GROUP_PROTOCOL`, `classic` or `consumer`).
    pub consumer_properties: BTreeMap<String, String>,
    /// Producer properties by Kafka name (from `KAFKA_PRODUCER_*`).
    pub producer_properties: BTreeMap<String, String>,
    /// Security properties by Kafka name (`security.protocol`, `ssl.*`, `sasl.*`, from
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_*`, `KAFKA_SASL_*`), applied to the consumer and the
    /// producer before their own properties.
    pub security_properties: BTreeMap<String, String>,
    /// How often the metrics snapshot is logged (default 30 s).
    pub metrics_interval: Duration,
    /// The longest a shutdown or a revocation takes (`KAFKA_SHUTDOWN_TIMEOUT_MS`, default
    /// 30 s). Messages in flight get until a quarter of it (at most 5 s) is left, kept for
    /// saving, committing and leaving the group; a handler still running then is cancelled
    /// and its message is not committed.
    pub shutdown_timeout: Duration,
    /// How often processed offsets are committed (`KAFKA_CONSUMER_COMMIT_INTERVAL`, default 0:
    /// after every poll that saved progress). Offsets are saved with the workspaces as
    /// before; only the commit waits, and revocations and shutdown commit at once whatever
    /// the interval. At most [`MAX_COMMIT_INTERVAL`].
    pub commit_interval: Duration,
    /// Whether [`EventPublisher::from_config`](crate::EventPublisher::from_config) publishers
    /// return without waiting for the broker's acknowledgement (`KAFKA_PRODUCER_ASYNC`,
    /// default false). The engine's own dead-letter writes always wait.
    pub publish_async: bool,
    /// Where [`EventPublisher::from_config`](crate::EventPublisher::from_config) publishers
    /// write events that fail to publish (`KAFKA_PRODUCER_DLQ_TOPIC`, default none).
    pub publish_dlq_topic: Option<String>,
    /// Where the HTTP endpoint (`/healthz`, `/readyz`, `/metrics`) listens
    /// (`KAFKA_ENGINE_HTTP_ADDR`, an IP address and port such as `127.0.0.1:9464` or
    /// `0.0.0.0:9464`; port 0 picks a free one; `off` or unset: no endpoint). Default: none.
    pub http_addr: Option<SocketAddr>,
    /// Exactly-once mode (`KAFKA_ENGINE_EXACTLY_ONCE`, default false): the events handlers
    /// publish ([`HandlerContext::publish`](crate::HandlerContext::publish)), the workspace
    /// changelog writes, the dead-letter writes and the input offsets go into one Kafka
    /// transaction per commit interval, and the input and the changelog are read with
    /// `isolation.level=read_committed`. Needs `state_store` [`StateStore::Kafka`]. See
    /// `docs/engine.md`.
    pub exactly_once: bool,
    /// The `transactional.id` of the exactly-once mode's producer
    /// (`KAFKA_ENGINE_TRANSACTIONAL_ID`). Default: `<group id>-<group.instance.id>` when the
    /// member is static, else `<group id>-<host name>`
    /// ([`EngineConfig::transactional_id_or_default`]). It must be stable across restarts of
    /// one instance (a restart then fences the instance it replaces and aborts its open
    /// transaction at once) and distinct between instances running at the same time.
    pub transactional_id: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            topics: vec!["workspace-events".into()],
            group_id: "workspace-engine".into(),
            dlq_topic: "workspace-events.dlq".into(),
            max_retries: 3,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: DEFAULT_RETRY_BACKOFF_MAX,
            state_dir: PathBuf::from("./state"),
            state_store: StateStore::File,
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            security_properties: BTreeMap::new(),
            metrics_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            commit_interval: Duration::ZERO,
            publish_async: false,
            publish_dlq_topic: None,
            http_addr: None,
            exactly_once: false,
            transactional_id: None,
        }
    }
}

fn bad(var: &str, why: impl std::fmt::Display) -> Error {
    Error::with_message(ErrorKind::Config, format!("{var}: {why}"))
}

/// `linger.ms` -> `<prefix>LINGER_MS`.
fn variable_name(prefix: &str, prop: &str) -> String {
    format!("{prefix}{}", prop.replace('.', "_").to_uppercase())
}

/// `LINGER_MS` -> `linger.ms`.
fn property_name(suffix: &str) -> String {
    suffix.to_ascii_lowercase().replace('_', ".")
}

impl EngineConfig {
    /// Settings from the process environment (see the module docs). Variables that are not
    /// valid Unicode are ignored unless they are `KAFKA_*` ones, which are an error.
    pub fn from_env() -> Result<Self, Error> {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => vars.push((k, v)),
                (Ok(k), Err(_)) if k.starts_with("KAFKA_") => return Err(bad(&k, "not valid UTF-8")),
                _ => {}
            }
        }
        Self::from_vars(vars)
    }

    /// Settings from these variables (name, value), as [`EngineConfig::from_env`] reads the
    /// environment. Empty values count as unset.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_string());
        let mut c = EngineConfig::default();
        if let Some(b) = get("KAFKA_BROKERS") {
            c.brokers = b;
        }
        let topic_list = |var: &str, t: &str| {
            let topics: Vec<String> =
                t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            if topics.is_empty() {
                Err(bad(var, format!("{t:?} names no topic")))
            } else {
                Ok(topics)
            }
        };
        if let Some(topics) = one_of(&vars, "KAFKA_TOPIC", "KAFKA_TOPICS", topic_list)? {
            c.topics = topics;
        }
        c.dlq_topic = format!("{}.dlq", c.topics[0]);
        if let Some(g) = one_of(&vars, "KAFKA_GROUP_ID", "KAFKA_GROUP", |_, v| Ok(v.to_string()))? {
            c.group_id = g;
        }
        if let Some(d) =
            one_of(&vars, "KAFKA_DLQ_TOPIC", "KAFKA_CONSUMER_DLQ_TOPIC", |_, v| Ok(v.to_string()))?
        {
            c.dlq_topic = d;
        }
        let retries = |var: &str, r: &str| {
            r.parse::<u32>().map_err(|_| bad(var, format!("{r:?} is not a whole number")))
        };
        if let Some(r) = one_of(&vars, "KAFKA_MAX_RETRIES", "KAFKA_CONSUMER_MAX_RETRIES", retries)? {
            c.max_retries = r;
        }
        if let Some(b) = get("KAFKA_RETRY_BACKOFF_MS") {
            let ms: u64 = b.parse().map_err(|_| {
                bad("KAFKA_RETRY_BACKOFF_MS", format!("{b:?} is not a number of milliseconds"))
            })?;
            c.retry_backoff = Duration::from_millis(ms);
        }
        if let Some(t) = get("KAFKA_SHUTDOWN_TIMEOUT_MS") {
            let ms: u64 = t.parse().map_err(|_| {
                bad("KAFKA_SHUTDOWN_TIMEOUT_MS", format!("{t:?} is not a number of milliseconds"))
            })?;
            c.shutdown_timeout = Duration::from_millis(ms);
            check_shutdown_timeout(c.shutdown_timeout)
                .map_err(|why| bad("KAFKA_SHUTDOWN_TIMEOUT_MS", why))?;
        }
        if let Some(a) = get("KAFKA_ENGINE_HTTP_ADDR") {
            c.http_addr = match a.as_str() {
                "off" => None,
                _ => Some(a.parse().map_err(|_| {
                    bad(
                        "KAFKA_ENGINE_HTTP_ADDR",
                        format!("{a:?} is not an IP address and port (like 127.0.0.1:9464) or off"),
                    )
                })?),
            };
        }
        if let Some(d) = get("KAFKA_STATE_DIR") {
            c.state_dir = PathBuf::from(d);
        }
        if let Some(s) = get("KAFKA_STATE_STORE") {
            c.state_store = s.parse().map_err(|e| bad("KAFKA_STATE_STORE", e))?;
        }
        if let Some(e) = get("KAFKA_ENGINE_EXACTLY_ONCE") {
            c.exactly_once = seed_bool("KAFKA_ENGINE_EXACTLY_ONCE", &e)?;
        }
        c.transactional_id = get("KAFKA_ENGINE_TRANSACTIONAL_ID");
        if let Some(p) = get("KAFKA_GROUP_PROTOCOL") {
            // `classic` or `consumer` (KIP-848): the group consumer's `group.protocol`.
            let protocol: GroupProtocol = p.parse().map_err(|e| bad("KAFKA_GROUP_PROTOCOL", e))?;
            c.consumer_properties.insert("group.protocol".into(), protocol.name().into());
        }
        if let Some(i) = get("KAFKA_CONSUMER_COMMIT_INTERVAL") {
            c.commit_interval = seed_duration("KAFKA_CONSUMER_COMMIT_INTERVAL", &i)?;
            check_commit_interval(c.commit_interval)
                .map_err(|why| bad("KAFKA_CONSUMER_COMMIT_INTERVAL", format!("{i:?} {why}")))?;
        }
        if let Some(a) = get("KAFKA_AUTO_COMMIT") {
            // The engine always commits what it processed, never what it merely fetched; `false`
            // asks for a commit after every batch, which a commit interval contradicts.
            if !seed_bool("KAFKA_AUTO_COMMIT", &a)? && !c.commit_interval.is_zero() {
                let i = get("KAFKA_CONSUMER_COMMIT_INTERVAL").unwrap_or_default();
                return Err(bad(
                    "KAFKA_AUTO_COMMIT and KAFKA_CONSUMER_COMMIT_INTERVAL",
                    format!("contradict each other ({a:?}: commit after every batch; {i:?}: commit on an interval)"),
                ));
            }
        }
        if let Some(a) = get("KAFKA_PRODUCER_ASYNC") {
            c.publish_async = seed_bool("KAFKA_PRODUCER_ASYNC", &a)?;
        }
        c.publish_dlq_topic = get("KAFKA_PRODUCER_DLQ_TOPIC");
        for (k, v) in &vars {
            if SEED_VARIABLES.contains(&k.as_str()) {
                continue;
            }
            if let Some(suffix) = k.strip_prefix(CONSUMER_PREFIX) {
                c.consumer_properties.insert(property_name(suffix), v.clone());
            } else if let Some(suffix) = k.strip_prefix(PRODUCER_PREFIX) {
                c.producer_properties.insert(property_name(suffix), v.clone());
            } else if SECURITY_VARIABLES.iter().any(|s| k == s || (s.ends_with('_') && k.starts_with(s))) {
                c.security_properties.insert(property_name(&k["KAFKA_".len()..]), v.clone());
            }
        }
        // Seed variables that set properties: checked against every other variable that sets
        // the same property, then set under the property's name, remembering the variable so
        // that a later error (a value out of range) names it.
        let mut consumer_origin = BTreeMap::new();
        let mut producer_origin = BTreeMap::new();
        for seed in SEED_PROPERTIES {
            let Some(raw) = get(seed.variable) else { continue };
            let value = seed.kind.value(seed.variable, &raw)?;
            let (prefix, properties, origin) = if seed.variable.starts_with(PRODUCER_PREFIX) {
                (PRODUCER_PREFIX, &mut c.producer_properties, &mut producer_origin)
            } else {
                (CONSUMER_PREFIX, &mut c.consumer_properties, &mut consumer_origin)
            };
            // (variable, value as given, value as the property's): the other seed variables
            // of the property, then its generic variables under every name it has.
            let same_property = SEED_PROPERTIES
                .iter()
                .filter(|other| other.properties[0] == seed.properties[0] && other.variable != seed.variable)
                .filter_map(|other| {
                    let theirs = get(other.variable)?;
                    let canonical = other.kind.value(other.variable, &theirs).ok();
                    Some((other.variable.to_string(), theirs, canonical))
                });
            let generic = seed.properties.iter().map(|p| variable_name(prefix, p)).filter_map(|var| {
                let theirs = get(&var)?;
                let canonical = seed.kind.normalise(&theirs);
                Some((var, theirs, canonical))
            });
            for (var, theirs, canonical) in same_property.chain(generic) {
                if canonical.as_deref() != Some(value.as_str()) {
                    let both = format!("{} and {var}", seed.variable);
                    return Err(bad(&both, format!("set to different values ({raw:?} and {theirs:?})")));
                }
            }
            properties.insert(seed.properties[0].to_string(), value);
            origin.insert(seed.properties[0].to_string(), seed.variable.to_string());
        }
        // kafka-go refuses a minimum above its maximum (it fetches one partition at a time).
        if let (Some(min), Some(max)) = (get("KAFKA_CONSUMER_MIN_BYTES"), get("KAFKA_CONSUMER_MAX_BYTES")) {
            if parse_size(&min).ok() > parse_size(&max).ok() {
                return Err(bad(
                    "KAFKA_CONSUMER_MIN_BYTES and KAFKA_CONSUMER_MAX_BYTES",
                    format!("the minimum {min:?} is above the maximum {max:?}"),
                ));
            }
        }
        for (variable, meant) in misspelled_variables(vars.keys().map(String::as_str)) {
            tracing::warn!("{variable} is not a variable the engine reads; did you mean {meant}?");
        }
        // Apply the properties now, so that a bad one fails here and names its variable.
        c.validate_named(
            |p| consumer_origin.get(p).cloned().unwrap_or_else(|| variable_name(CONSUMER_PREFIX, p)),
            |p| producer_origin.get(p).cloned().unwrap_or_else(|| variable_name(PRODUCER_PREFIX, p)),
        )?;
        Ok(c)
    }

    /// Checks the settings that do not depend on a broker, the consumer and producer
    /// properties included (as the group member and the producer will check them); an error
    /// names the `KAFKA_CONSUMER_*` or `KAFKA_PRODUCER_*` variable(s) involved.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_named(
            |prop| variable_name(CONSUMER_PREFIX, prop),
            |prop| variable_name(PRODUCER_PREFIX, prop),
        )
    }

    /// [`EngineConfig::validate`], naming a consumer or producer property as `consumer` or
    /// `producer` says.
    fn validate_named(
        &self,
        consumer: impl Fn(&str) -> String,
        producer: impl Fn(&str) -> String,
    ) -> Result<(), Error> {
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(bad("topics", "at least one non-empty topic name is needed"));
        }
        if self.dlq_topic.trim().is_empty() {
            return Err(bad("dlq_topic", "must not be empty"));
        }
        if self.topics.contains(&self.dlq_topic) {
            return Err(bad("dlq_topic", "must not be one of the source topics"));
        }
        if self.group_id.trim().is_empty() {
            return Err(bad("group_id", "must not be empty"));
        }
        if self.publish_dlq_topic.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad("publish_dlq_topic", "must not be empty"));
        }
        check_shutdown_timeout(self.shutdown_timeout).map_err(|why| bad("shutdown_timeout", why))?;
        check_commit_interval(self.commit_interval).map_err(|why| bad("commit_interval", why))?;
        if self.transactional_id.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad("KAFKA_ENGINE_TRANSACTIONAL_ID", "must not be empty"));
        }
        if self.exactly_once {
            if self.state_store != StateStore::Kafka {
                return Err(bad(
                    "KAFKA_ENGINE_EXACTLY_ONCE and KAFKA_STATE_STORE",
                    format!(
                        "exactly-once needs KAFKA_STATE_STORE=kafka (the workspaces are written in the \
                         transaction, and a {} store cannot take a write back when it aborts)",
                        self.state_store.name()
                    ),
                ));
            }
            if let Some(level) = self.consumer_properties.get("isolation.level") {
                if !level.trim().eq_ignore_ascii_case("read_committed") {
                    return Err(bad(
                        &format!("KAFKA_ENGINE_EXACTLY_ONCE and {}", consumer("isolation.level")),
                        format!("exactly-once reads read_committed; {level:?} contradicts it"),
                    ));
                }
            }
            let p = self.producer_config_named(&producer)?;
            if p.transactional_id.is_some() {
                return Err(bad(
                    &producer("transactional.id"),
                    "the engine's producer is transactional in exactly-once mode; set KAFKA_ENGINE_TRANSACTIONAL_ID instead",
                ));
            }
        }
        self.group_config_named(consumer)?;
        self.producer_config_named(producer)?;
        Ok(())
    }

    /// How often the engine commits: `commit_interval`, except that in exactly-once mode a zero
    /// interval means [`EXACTLY_ONCE_COMMIT_INTERVAL`] (a transaction per poll would cost a
    /// round of markers per poll).
    pub fn effective_commit_interval(&self) -> Duration {
        if self.exactly_once && self.commit_interval.is_zero() {
            EXACTLY_ONCE_COMMIT_INTERVAL
        } else {
            self.commit_interval
        }
    }

    /// The exactly-once producer's `transactional.id`: [`EngineConfig::transactional_id`] when
    /// set, else `<group id>-<group.instance.id>` for a static member, else `<group id>-<host
    /// name>` (the host name from `HOSTNAME`, or the kernel's). An error when none of them is
    /// known.
    pub fn transactional_id_or_default(&self) -> Result<String, Error> {
        if let Some(id) = &self.transactional_id {
            return Ok(id.trim().to_string());
        }
        if let Some(instance) =
            self.consumer_properties.get("group.instance.id").filter(|i| !i.trim().is_empty())
        {
            return Ok(format!("{}-{}", self.group_id, instance.trim()));
        }
        match host_name() {
            Some(host) => Ok(format!("{}-{host}", self.group_id)),
            None => Err(bad(
                "KAFKA_ENGINE_TRANSACTIONAL_ID",
                "not set, and neither a group.instance.id nor the host name is known to derive it from",
            )),
        }
    }

    /// The settings of the exactly-once mode's transactional producer: the producer properties,
    /// then the `transactional.id` ([`EngineConfig::transactional_id_or_default`]) and, unless
    /// the properties set one, a `transaction.timeout.ms` of
    /// [`EXACTLY_ONCE_TRANSACTION_TIMEOUT`].
    pub fn transactional_producer_config(&self) -> Result<ProducerConfig, Error> {
        let mut p = self.producer_config()?;
        p.transactional_id = Some(self.transactional_id_or_default()?);
        if !self.producer_properties.contains_key("transaction.timeout.ms") {
            p.transaction_timeout = EXACTLY_ONCE_TRANSACTION_TIMEOUT;
        }
        p.validate().map_err(|e| bad("KAFKA_PRODUCER_*", e))?;
        Ok(p)
    }

    /// The group consumer's settings: the engine's defaults (earliest reset, auto-commit off,
    /// which the engine needs: it commits what it has processed), then the consumer properties.
    pub fn group_config(&self) -> Result<GroupConfig, Error> {
        self.group_config_named(|p| p.to_string())
    }

    /// The dead-letter producer's settings: the producer properties over the client's defaults,
    /// except that topics are not auto-created (`allow.auto.create.topics` false unless set).
    pub fn producer_config(&self) -> Result<ProducerConfig, Error> {
        self.producer_config_named(|p| p.to_string())
    }

    /// Checks that no security property is set differently for one role, then returns the
    /// security properties to apply, each with what to call it.
    fn security_for(
        &self,
        role: &BTreeMap<String, String>,
        name: &impl Fn(&str) -> String,
    ) -> Result<Vec<(&String, &String, String)>, Error> {
        // `name("")` is the role's prefix when names are variables, empty for properties.
        let as_vars = !name("").is_empty();
        let security_name = |k: &str| if as_vars { variable_name("KAFKA_", k) } else { k.to_string() };
        let mut out = Vec::with_capacity(self.security_properties.len());
        for (k, v) in &self.security_properties {
            if let Some(theirs) = role.get(k).filter(|theirs| theirs.trim() != v.trim()) {
                let both = format!("{} and {}", security_name(k), name(k));
                return Err(bad(&both, format!("set to different values ({v:?} and {theirs:?})")));
            }
            out.push((k, v, security_name(k)));
        }
        Ok(out)
    }

    /// [`blame_named`], except that security properties the error names are blamed first.
    fn blame_with_security(
        &self,
        role: &BTreeMap<String, String>,
        error: &Error,
        name: &impl Fn(&str) -> String,
    ) -> String {
        let message = error.to_string();
        let as_vars = !name("").is_empty();
        let named: Vec<String> = self
            .security_properties
            .keys()
            .filter(|k| message.contains(k.as_str()))
            .map(|k| if as_vars { variable_name("KAFKA_", k) } else { k.clone() })
            .collect();
        if named.is_empty() {
            blame_named(role, error, name)
        } else {
            named.join(", ")
        }
    }

    fn group_config_named(&self, name: impl Fn(&str) -> String) -> Result<GroupConfig, Error> {
        let mut g = GroupConfig::new(&self.brokers, &self.group_id)
            .consumer(|c| c.auto_offset_reset(OffsetReset::Earliest));
        for (k, v, called) in self.security_for(&self.consumer_properties, &name)? {
            g.set(k, v).map_err(|e| bad(&called, e))?;
        }
        for (k, v) in &self.consumer_properties {
            g.set(k, v).map_err(|e| property_error(e, k, &name))?;
        }
        if self.exactly_once {
            g.consumer.isolation_level = klamm::IsolationLevel::ReadCommitted;
        }
        if g.enable_auto_commit {
            return Err(bad(&name("enable.auto.commit"), "the engine commits by itself; must be false"));
        }
        g.validate().map_err(|e| bad(&self.blame_with_security(&self.consumer_properties, &e, &name), e))?;
        Ok(g)
    }

    fn producer_config_named(&self, name: impl Fn(&str) -> String) -> Result<ProducerConfig, Error> {
        let mut p = ProducerConfig::new(&self.brokers);
        // The engine makes the dead-letter topic itself, with the source's partition count; a
        // write must not let the broker make it again with its defaults (if it was deleted).
        p.client.allow_auto_create_topics = false;
        for (k, v, called) in self.security_for(&self.producer_properties, &name)? {
            p.set(k, v).map_err(|e| bad(&called, e))?;
        }
        for (k, v) in &self.producer_properties {
            p.set(k, v).map_err(|e| property_error(e, k, &name))?;
        }
        // Checks across properties that only `Producer::new` would make otherwise.
        p.validate().map_err(|e| bad(&self.blame_with_security(&self.producer_properties, &e, &name), e))?;
        Ok(p)
    }
}

/// The `KAFKA_*` variables among `names` that the engine does not read but that are close to
/// one it does (its own, a seed variable, a prefix), each with that one.
pub fn misspelled_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, &'static str)> {
    let prefixes = [CONSUMER_PREFIX.trim_end_matches('_'), PRODUCER_PREFIX.trim_end_matches('_')];
    names
        .into_iter()
        .filter(|k| k.starts_with("KAFKA_") && !VARIABLES.contains(k) && !SEED_VARIABLES.contains(k))
        .filter(|k| !k.starts_with(CONSUMER_PREFIX) && !k.starts_with(PRODUCER_PREFIX))
        .filter(|k| !SECURITY_VARIABLES.iter().any(|s| k == s || (s.ends_with('_') && k.starts_with(s))))
        .filter_map(|k| {
            let known = VARIABLES.iter().chain(SEED_VARIABLES).copied().chain(prefixes);
            Some((k, klamm::suggest(k, known)?))
        })
        .collect()
}

/// A property's error under what to call it (its variable, or its name); an unknown property's
/// hint is given as a variable too, or is a seed variable when one is closer
/// (`KAFKA_CONSUMER_COMMIT_INTERVL`: did you mean `KAFKA_CONSUMER_COMMIT_INTERVAL`?).
fn property_error(e: Error, property: &str, name: &impl Fn(&str) -> String) -> Error {
    let Some(unknown) = klamm::UnknownProperty::of(&e) else { return bad(&name(property), e) };
    let prefix = name("");
    if prefix.is_empty() {
        return bad(&name(property), e);
    }
    let variable = name(property);
    let seeds = SEED_VARIABLES.iter().copied().filter(|s| s.starts_with(&prefix));
    let seed = klamm::suggest(&variable, seeds);
    let meant = unknown.suggestion().map(name);
    let closer_seed = match (&meant, seed) {
        (Some(m), Some(sd)) => klamm::suggest(&variable, [m.as_str(), sd]) == Some(sd),
        (None, Some(_)) => true,
        _ => false,
    };
    match (seed, meant) {
        (Some(sd), _) if closer_seed => {
            bad(&variable, format!("unknown property {:?}; did you mean {sd}?", unknown.name()))
        }
        (_, Some(m)) => bad(&variable, format!("{e} (that is {m})")),
        _ => bad(&variable, e),
    }
}

/// How a seed variable's value becomes the value of its property.
#[derive(Debug, Clone, Copy)]
enum SeedKind {
    /// A duration (Go-style or bare milliseconds) for a `*.ms` property, rounded up to whole
    /// milliseconds (`500us` is 1 ms, not 0, which would often mean something else).
    Millis,
    /// A size (`10MB`, `1MiB`, bare bytes) for a byte-count property.
    Bytes,
    /// kafka-go's `MaxAttempts` (at least 1): `retries` is one less.
    Attempts,
    /// kafka-go's `RequiredAcks`: -1 (all), 0 (none), 1 (the leader).
    Acks,
    /// A codec name: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    Compression,
    /// kafka-go's `StartOffset`: -2 (`FirstOffset`, earliest) or -1 (`LastOffset`, latest),
    /// where a partition without a committed offset starts.
    StartOffset,
    /// `true` (earliest) or `false` (latest), where a partition without a committed offset
    /// starts.
    FromBeginning,
}

impl SeedKind {
    /// The property's value for the seed variable `var` set to `raw`.
    fn value(self, var: &str, raw: &str) -> Result<String, Error> {
        let raw = raw.trim();
        match self {
            SeedKind::Millis => Ok(millis(seed_duration(var, raw)?)),
            SeedKind::Bytes => parse_size(raw)
                .map(|n| n.to_string())
                .map_err(|e| bad(var, format!("{raw:?} is not a size ({e})"))),
            SeedKind::Attempts => match raw.parse::<u32>() {
                Ok(n) if n >= 1 => Ok((n - 1).to_string()),
                _ => Err(bad(var, format!("{raw:?} is not a number of attempts (1 or more)"))),
            },
            SeedKind::Acks => acks(raw).ok_or_else(|| {
                bad(var, format!("{raw:?} is not -1 (all replicas), 0 (none) or 1 (the leader)"))
            }),
            SeedKind::Compression => Ok(raw.to_ascii_lowercase()),
            SeedKind::StartOffset => match raw.to_ascii_lowercase().as_str() {
                "-2" | "first" | "oldest" | "earliest" => Ok("earliest".into()),
                "-1" | "last" | "newest" | "latest" => Ok("latest".into()),
                _ => Err(bad(var, format!("{raw:?} is not -2 (the oldest offset) or -1 (the newest)"))),
            },
            SeedKind::FromBeginning => {
                Ok(if seed_bool(var, raw)? { "earliest" } else { "latest" }.to_string())
            }
        }
    }

    /// The value of a generic variable of the same property in the form [`SeedKind::value`]
    /// gives, to compare them; `None` when it cannot be read (then they differ).
    fn normalise(self, raw: &str) -> Option<String> {
        let raw = raw.trim();
        match self {
            SeedKind::Millis => parse_duration(raw).ok().map(millis),
            SeedKind::Bytes => parse_size(raw).ok().map(|n| n.to_string()),
            SeedKind::Attempts => raw.parse::<i64>().ok().map(|n| n.max(0).to_string()),
            SeedKind::Acks => acks(raw),
            SeedKind::Compression => Some(raw.to_ascii_lowercase()),
            SeedKind::StartOffset | SeedKind::FromBeginning => match raw.to_ascii_lowercase().as_str() {
                "earliest" | "smallest" | "beginning" => Some("earliest".into()),
                "latest" | "largest" | "end" => Some("latest".into()),
                other => Some(other.to_string()),
            },
        }
    }
}

/// A seed variable that sets a Kafka property.
struct SeedProperty {
    variable: &'static str,
    /// The property it sets, then the property's other names (whose variables set it too).
    properties: &'static [&'static str],
    kind: SeedKind,
}

const SEED_PROPERTIES: &[SeedProperty] = &[
    SeedProperty {
        variable: "KAFKA_PRODUCER_MAX_ATTEMPTS",
        properties: &["retries"],
        kind: SeedKind::Attempts,
    },
    SeedProperty {
        variable: "KAFKA_PRODUCER_BATCH_TIMEOUT",
        properties: &["linger.ms", "queue.buffering.max.ms"],
        kind: SeedKind::Millis,
    },
    SeedProperty {
        variable: "KAFKA_PRODUCER_REQUIRE_ACKS",
        properties: &["acks", "request.required.acks"],
        kind: SeedKind::Acks,
    },
    SeedProperty {
        variable: "KAFKA_PRODUCER_COMPRESSION",
        properties: &["compression.type", "compression.codec"],
        kind: SeedKind::Compression,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_START_OFFSET",
        properties: &["auto.offset.reset"],
        kind: SeedKind::StartOffset,
    },
    SeedProperty {
        variable: "KAFKA_START_FROM_BEGINNING",
        properties: &["auto.offset.reset"],
        kind: SeedKind::FromBeginning,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_MIN_BYTES",
        properties: &["fetch.min.bytes"],
        kind: SeedKind::Bytes,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_MAX_BYTES",
        properties: &["max.partition.fetch.bytes"],
        kind: SeedKind::Bytes,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_MAX_WAIT",
        properties: &["fetch.max.wait.ms", "fetch.wait.max.ms"],
        kind: SeedKind::Millis,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_HEARTBEAT_INTERVAL",
        properties: &["heartbeat.interval.ms"],
        kind: SeedKind::Millis,
    },
    SeedProperty {
        variable: "KAFKA_CONSUMER_SESSION_TIMEOUT",
        properties: &["session.timeout.ms"],
        kind: SeedKind::Millis,
    },
    // kafka-go sends RebalanceTimeout as JoinGroup's rebalance timeout, which is what
    // `max.poll.interval.ms` is sent as.
    SeedProperty {
        variable: "KAFKA_CONSUMER_REBALANCE_TIMEOUT",
        properties: &["max.poll.interval.ms"],
        kind: SeedKind::Millis,
    },
];

/// `acks` as the producer property writes it, from kafka-go's numbers or Kafka's names.
fn acks(raw: &str) -> Option<String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "-1" | "all" => Some("all".into()),
        "0" | "none" => Some("0".into()),
        "1" | "one" | "leader" => Some("1".into()),
        _ => None,
    }
}

/// Whole milliseconds, rounded up.
fn millis(d: Duration) -> String {
    d.as_nanos().div_ceil(1_000_000).to_string()
}

/// The host name: `HOSTNAME`, else the kernel's (Linux), when either is known.
fn host_name() -> Option<String> {
    let valid = |h: String| Some(h.trim().to_string()).filter(|h| !h.is_empty());
    std::env::var("HOSTNAME")
        .ok()
        .and_then(valid)
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().and_then(valid))
}

/// A seed variable's duration.
fn seed_duration(var: &str, raw: &str) -> Result<Duration, Error> {
    parse_duration(raw)
        .map_err(|e| bad(var, format!("{raw:?} is not a duration like 10ms, 1s or 1m30s ({e})")))
}

/// A seed variable's boolean, as Go's `strconv.ParseBool` reads one.
fn seed_bool(var: &str, raw: &str) -> Result<bool, Error> {
    match raw.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad(var, format!("{raw:?} is not true or false"))),
    }
}

/// The value of whichever of `var` (the engine's) and `alias` (a seed's) is set, read by
/// `parse`; both set to values that read differently is an error naming both.
fn one_of<T: PartialEq>(
    vars: &BTreeMap<String, String>,
    var: &str,
    alias: &str,
    parse: impl Fn(&str, &str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let read = |name: &str| vars.get(name).map(|v| (v.trim(), parse(name, v.trim())));
    match (read(var), read(alias)) {
        (None, None) => Ok(None),
        (Some((_, v)), None) | (None, Some((_, v))) => v.map(Some),
        (Some((a, x)), Some((b, y))) => {
            let (x, y) = (x?, y?);
            if x == y {
                Ok(Some(x))
            } else {
                Err(bad(&format!("{var} and {alias}"), format!("set to different values ({a:?} and {b:?})")))
            }
        }
    }
}

fn check_commit_interval(interval: Duration) -> Result<(), String> {
    if interval > MAX_COMMIT_INTERVAL {
        Err(format!("is too long: must be at most {} ms", MAX_COMMIT_INTERVAL.as_millis()))
    } else {
        Ok(())
    }
}

fn check_shutdown_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() {
        Err("must be above 0".into())
    } else if timeout > MAX_SHUTDOWN_TIMEOUT {
        Err(format!("must be at most {} ms", MAX_SHUTDOWN_TIMEOUT.as_millis()))
    } else {
        Ok(())
    }
}

/// What to blame for `error`, a check across several `properties`, each called as `name`
/// says (its variable, or its name from code): those the message names, else all of them,
/// else every variable of the prefix (or "properties").
fn blame_named(
    properties: &BTreeMap<String, String>,
    error: &Error,
    name: &impl Fn(&str) -> String,
) -> String {
    let message = error.to_string();
    let named: Vec<String> =
        properties.keys().filter(|k| message.contains(k.as_str())).map(|k| name(k)).collect();
    if !named.is_empty() {
        named.join(", ")
    } else if !properties.is_empty() {
        properties.keys().map(|k| name(k)).collect::<Vec<_>>().join(", ")
    } else {
        // `name("")` is the prefix alone when names are variables, empty when they are properties.
        let prefix = name("");
        if prefix.is_empty() {
            "properties".to_string()
        } else {
            format!("{prefix}*")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Result<EngineConfig, Error> {
        EngineConfig::from_vars(list.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn misspelled_variables_and_properties_get_a_hint() {
        let names = ["KAFKA_BROKER", "KAFKA_TOPICS", "KAFKA_HOME", "KAFKA_OPTS", "KAFKA_BROKERS", "PATH"];
        assert_eq!(misspelled_variables(names), [("KAFKA_BROKER", "KAFKA_BROKERS")]);
        // A warning, not an error: other tools have KAFKA_* variables of their own.
        vars(&[("KAFKA_BROKER", "h:1"), ("KAFKA_BROKER_ID", "1")]).unwrap();
        let e = vars(&[("KAFKA_CONSUMER_FETCH_MAX_WAIT", "5")]).unwrap_err().to_string();
        assert!(e.contains(r#"did you mean "fetch.max.wait.ms"?"#), "{e}");
        assert!(e.contains("KAFKA_CONSUMER_FETCH_MAX_WAIT_MS"), "{e}");
        let e = vars(&[("KAFKA_PRODUCER_LINGER", "5")]).unwrap_err().to_string();
        assert!(e.contains("KAFKA_PRODUCER_LINGER_MS"), "{e}");
        // Other tools' variables are theirs.
        vars(&[("KAFKA_HOME", "/opt/kafka"), ("KAFKA_OPTS", "-Xmx1g"), ("KAFKA_HEAP_OPTS", "-Xmx1g")])
            .unwrap();
    }

    #[test]
    fn defaults() {
        let c = vars(&[]).unwrap();
        assert_eq!(c.brokers, "localhost:9092");
        assert_eq!(c.topics, vec!["workspace-events".to_string()]);
        assert_eq!(c.group_id, "workspace-engine");
        assert_eq!(c.dlq_topic, "workspace-events.dlq");
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.state_dir, PathBuf::from("./state"));
        assert!(!c.group_config().unwrap().enable_auto_commit);
        assert_eq!(c, EngineConfig::default());
    }

    #[test]
    fn every_variable_is_read() {
        let c = vars(&[
            ("KAFKA_BROKERS", "127.0.0.1:1234"),
            ("KAFKA_TOPIC", "a, b,,c"),
            ("KAFKA_GROUP_ID", "g"),
            ("KAFKA_MAX_RETRIES", "7"),
            ("KAFKA_RETRY_BACKOFF_MS", "250"),
            ("KAFKA_STATE_DIR", "/tmp/x"),
            ("KAFKA_SHUTDOWN_TIMEOUT_MS", "4000"),
            ("KAFKA_PRODUCER_LINGER_MS", "5"),
            ("KAFKA_CONSUMER_MAX_POLL_RECORDS", "10"),
            ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(c.topics, ["a", "b", "c"]);
        assert_eq!(c.dlq_topic, "a.dlq");
        assert_eq!(c.group_id, "g");
        assert_eq!(c.max_retries, 7);
        assert_eq!(c.retry_backoff, Duration::from_millis(250));
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(4));
        assert_eq!(c.producer_properties.get("linger.ms").map(String::as_str), Some("5"));
        assert_eq!(c.producer_config().unwrap().linger, Duration::from_millis(5));
        assert!(!c.producer_config().unwrap().client.allow_auto_create_topics);
        let g = c.group_config().unwrap();
        assert_eq!(g.consumer.max_poll_records, 10);
        assert_eq!(g.session_timeout, Duration::from_secs(6));
        let c = vars(&[("KAFKA_TOPIC", "a"), ("KAFKA_DLQ_TOPIC", "dead")]).unwrap();
        assert_eq!(c.dlq_topic, "dead");
        assert_eq!(c.group_config().unwrap().group_protocol, GroupProtocol::Classic);
        let c = vars(&[("KAFKA_GROUP_PROTOCOL", "consumer")]).unwrap();
        assert_eq!(c.group_config().unwrap().group_protocol, GroupProtocol::Consumer);
        let c = vars(&[("KAFKA_ENGINE_HTTP_ADDR", "127.0.0.1:9464")]).unwrap();
        assert_eq!(c.http_addr, Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        let c = vars(&[("KAFKA_ENGINE_HTTP_ADDR", "[::]:0")]).unwrap();
        assert_eq!(c.http_addr.map(|a| a.port()), Some(0));
        assert_eq!(vars(&[("KAFKA_ENGINE_HTTP_ADDR", "off")]).unwrap().http_addr, None);
        assert_eq!(vars(&[]).unwrap().http_addr, None);
        assert_eq!(c.state_store, StateStore::File);
        let c = vars(&[("KAFKA_STATE_STORE", "Kafka")]).unwrap();
        assert_eq!(c.state_store, StateStore::Kafka);
        let e = vars(&[("KAFKA_STATE_STORE", "disk")]).unwrap_err().to_string();
        assert!(e.contains("KAFKA_STATE_STORE") && e.contains("disk"), "{e}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("KAFKA_MAX_RETRIES", "three"),
            ("KAFKA_MAX_RETRIES", "-1"),
            ("KAFKA_GROUP_PROTOCOL", "newest"),
            ("KAFKA_RETRY_BACKOFF_MS", "1s"),
            ("KAFKA_SHUTDOWN_TIMEOUT_MS", "0"),
            ("KAFKA_SHUTDOWN_TIMEOUT_MS", "soon"),
            ("KAFKA_SHUTDOWN_TIMEOUT_MS", "18446744073709551615"),
            ("KAFKA_TOPIC", " , "),
            ("KAFKA_PRODUCER_LINGER_MS", "soon"),
            ("KAFKA_PRODUCER_NO_SUCH_THING", "1"),
            ("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "sideways"),
            ("KAFKA_CONSUMER_ENABLE_AUTO_COMMIT", "true"),
            ("KAFKA_PRODUCER_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION", "0"),
            ("KAFKA_PRODUCER_BATCH_SIZE", "0"),
            ("KAFKA_ENGINE_HTTP_ADDR", "localhost"),
            ("KAFKA_ENGINE_HTTP_ADDR", "9464"),
        ] {
            let e = vars(&[(var, value)]).expect_err(var);
            assert_eq!(e.kind(), &ErrorKind::Config, "{var}");
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
    }

    #[test]
    fn security_variables_reach_the_consumer_and_the_producer() {
        let c = vars(&[
            ("KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.pem"),
            ("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "none"),
            // The same value through a role variable is no conflict.
            ("KAFKA_CONSUMER_SSL_CA_LOCATION", "/etc/kafka/ca.pem"),
            // So that no CA file is read here.
            ("KAFKA_CONSUMER_ENABLE_SSL_CERTIFICATE_VERIFICATION", "false"),
            ("KAFKA_PRODUCER_ENABLE_SSL_CERTIFICATE_VERIFICATION", "false"),
        ])
        .unwrap();
        assert_eq!(c.security_properties.get("security.protocol").map(String::as_str), Some("SSL"));
        assert_eq!(
            c.security_properties.get("ssl.endpoint.identification.algorithm").map(String::as_str),
            Some("none")
        );
        let expected = klamm::TlsConfig::new()
            .ca_file("/etc/kafka/ca.pem")
            .verify_hostname(false)
            .verify_certificate(false);
        let producer = c.producer_config().unwrap().client;
        let consumer = c.group_config().unwrap().consumer.client;
        for client in [producer, consumer] {
            assert_eq!(client.connection.security_protocol, klamm::SecurityProtocol::Ssl);
            assert_eq!(client.connection.tls, expected);
        }
        // A bad value names its variable.
        let e = vars(&[("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "dns")]).unwrap_err();
        assert!(e.to_string().contains("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"), "{e}");
        let e = vars(&[("KAFKA_SSL_NO_SUCH_THING", "1")]).unwrap_err();
        assert!(e.to_string().contains("KAFKA_SSL_NO_SUCH_THING"), "{e}");
        // Checks made when the client is built name the security variable too.
        let e = vars(&[("KAFKA_SECURITY_PROTOCOL", "SSL"), ("KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem")])
            .unwrap_err();
        assert!(e.to_string().contains("KAFKA_SSL_CA_LOCATION"), "{e}");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_security_property_set_differently_for_a_role_names_both_variables() {
        for role in ["KAFKA_CONSUMER_SSL_CA_LOCATION", "KAFKA_PRODUCER_SSL_CA_LOCATION"] {
            let e = vars(&[("KAFKA_SSL_CA_LOCATION", "/a.pem"), (role, "/b.pem")]).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Config);
            let m = e.to_string();
            assert!(m.contains("KAFKA_SSL_CA_LOCATION") && m.contains(role), "{m}");
        }
        // From code the properties are named.
        let mut c = EngineConfig::default();
        c.security_properties.insert("security.protocol".into(), "SSL".into());
        c.producer_properties.insert("security.protocol".into(), "PLAINTEXT".into());
        let m = c.producer_config().unwrap_err().to_string();
        assert!(m.contains("security.protocol and security.protocol"), "{m}");
    }

    #[test]
    fn a_shutdown_timeout_set_in_code_is_checked() {
        for bad in [Duration::ZERO, MAX_SHUTDOWN_TIMEOUT + Duration::from_millis(1), Duration::MAX] {
            let c = EngineConfig { shutdown_timeout: bad, ..EngineConfig::default() };
            let e = c.validate().expect_err("out of range");
            assert!(e.to_string().contains("shutdown_timeout"), "{e}");
        }
        let c = EngineConfig { shutdown_timeout: MAX_SHUTDOWN_TIMEOUT, ..EngineConfig::default() };
        c.validate().unwrap();
    }

    #[test]
    fn checks_across_producer_properties_name_the_variables_involved() {
        let e = vars(&[
            ("KAFKA_PRODUCER_ENABLE_IDEMPOTENCE", "true"),
            ("KAFKA_PRODUCER_ACKS", "1"),
            ("KAFKA_PRODUCER_LINGER_MS", "5"),
        ])
        .expect_err("idempotence without acks=all");
        assert_eq!(e.kind(), &ErrorKind::Config);
        let m = e.to_string();
        assert!(m.contains("KAFKA_PRODUCER_ENABLE_IDEMPOTENCE") && m.contains("KAFKA_PRODUCER_ACKS"), "{m}");
        assert!(!m.contains("KAFKA_PRODUCER_LINGER_MS"), "{m}");
        // The same settings made in code fail in validate (and so in build), naming the variables.
        let mut c = EngineConfig::default();
        c.producer_properties.insert("enable.idempotence".into(), "true".into());
        c.producer_properties.insert("acks".into(), "1".into());
        let m = c.validate().expect_err("validate").to_string();
        assert!(m.contains("KAFKA_PRODUCER_ACKS"), "{m}");
        assert!(c.producer_config().expect_err("producer_config").to_string().contains("acks"));
    }

    #[test]
    fn seed_variables_are_read_and_mapped() {
        let c = vars(&[
            ("KAFKA_BROKERS", "127.0.0.1:1234"),
            ("KAFKA_TOPICS", "orders, invoices"),
            ("KAFKA_GROUP", "billing"),
            ("KAFKA_AUTO_COMMIT", "true"),
            ("KAFKA_START_FROM_BEGINNING", "false"),
            ("KAFKA_PRODUCER_MAX_ATTEMPTS", "5"),
            ("KAFKA_PRODUCER_BATCH_TIMEOUT", "10ms"),
            ("KAFKA_PRODUCER_REQUIRE_ACKS", "1"),
            ("KAFKA_PRODUCER_COMPRESSION", "LZ4"),
            ("KAFKA_PRODUCER_ASYNC", "true"),
            ("KAFKA_PRODUCER_DLQ_TOPIC", "publish.dlq"),
            ("KAFKA_CONSUMER_START_OFFSET", "-1"),
            ("KAFKA_CONSUMER_MIN_BYTES", "10KB"),
            ("KAFKA_CONSUMER_MAX_BYTES", "1MiB"),
            ("KAFKA_CONSUMER_MAX_WAIT", "250ms"),
            ("KAFKA_CONSUMER_COMMIT_INTERVAL", "1s"),
            ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "3s"),
            ("KAFKA_CONSUMER_SESSION_TIMEOUT", "30s"),
            ("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "1m30s"),
            ("KAFKA_CONSUMER_DLQ_TOPIC", "orders.failed"),
            ("KAFKA_CONSUMER_MAX_RETRIES", "7"),
        ])
        .unwrap();
        assert_eq!(c.topics, ["orders", "invoices"]);
        assert_eq!(c.group_id, "billing");
        assert_eq!(c.dlq_topic, "orders.failed");
        assert_eq!(c.max_retries, 7);
        assert_eq!(c.commit_interval, Duration::from_secs(1));
        assert!(c.publish_async);
        assert_eq!(c.publish_dlq_topic.as_deref(), Some("publish.dlq"));
        let p = c.producer_config().unwrap();
        assert_eq!(p.retries, 4);
        assert_eq!(p.linger, Duration::from_millis(10));
        assert_eq!(p.acks, klamm::Acks::Leader);
        assert_eq!(p.compression, klamm::protocol::compression::Compression::Lz4);
        let g = c.group_config().unwrap();
        assert_eq!(g.consumer.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(g.consumer.fetch_min_bytes, 10_000);
        assert_eq!(g.consumer.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(g.consumer.fetch_max_wait, Duration::from_millis(250));
        assert_eq!(g.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(g.session_timeout, Duration::from_secs(30));
        assert_eq!(g.max_poll_interval, Duration::from_secs(90));
        assert!(!g.enable_auto_commit);
        // The seed names are not left behind as unknown properties.
        assert!(!c.consumer_properties.contains_key("commit.interval"), "{:?}", c.consumer_properties);
        assert!(!c.producer_properties.contains_key("async"), "{:?}", c.producer_properties);
    }

    #[test]
    fn each_seed_alias_alone() {
        let ms = Duration::from_millis;
        // One variable at a time, each with what it changes.
        let c = vars(&[("KAFKA_CONSUMER_COMMIT_INTERVAL", "1s")]).unwrap();
        assert_eq!(c.commit_interval, ms(1000));
        let c = vars(&[("KAFKA_CONSUMER_COMMIT_INTERVAL", "0")]).unwrap();
        assert_eq!(c.commit_interval, Duration::ZERO);
        let c = vars(&[("KAFKA_PRODUCER_BATCH_TIMEOUT", "500us")]).unwrap();
        assert_eq!(c.producer_config().unwrap().linger, ms(1), "rounded up, not down to 0");
        let c = vars(&[("KAFKA_PRODUCER_BATCH_TIMEOUT", "250")]).unwrap();
        assert_eq!(c.producer_config().unwrap().linger, ms(250), "a bare number is milliseconds");
        let c = vars(&[("KAFKA_PRODUCER_MAX_ATTEMPTS", "1")]).unwrap();
        assert_eq!(c.producer_config().unwrap().retries, 0);
        for (acks, expected) in
            [("-1", klamm::Acks::All), ("0", klamm::Acks::None), ("1", klamm::Acks::Leader)]
        {
            let c = vars(&[("KAFKA_PRODUCER_REQUIRE_ACKS", acks)]).unwrap();
            assert_eq!(c.producer_config().unwrap().acks, expected, "{acks}");
        }
        for (offset, expected) in [("-2", OffsetReset::Earliest), ("-1", OffsetReset::Latest)] {
            let c = vars(&[("KAFKA_CONSUMER_START_OFFSET", offset)]).unwrap();
            assert_eq!(c.group_config().unwrap().consumer.auto_offset_reset, expected, "{offset}");
        }
        for (from_beginning, expected) in [("true", OffsetReset::Earliest), ("false", OffsetReset::Latest)] {
            let c = vars(&[("KAFKA_START_FROM_BEGINNING", from_beginning)]).unwrap();
            assert_eq!(c.group_config().unwrap().consumer.auto_offset_reset, expected);
        }
        let c = vars(&[("KAFKA_CONSUMER_MIN_BYTES", "1"), ("KAFKA_CONSUMER_MAX_BYTES", "10MB")]).unwrap();
        let g = c.group_config().unwrap();
        assert_eq!((g.consumer.fetch_min_bytes, g.consumer.max_partition_fetch_bytes), (1, 10_000_000));
        let c = vars(&[("KAFKA_AUTO_COMMIT", "false")]).unwrap();
        assert_eq!(c.commit_interval, Duration::ZERO);
        let c = vars(&[("KAFKA_PRODUCER_ASYNC", "0")]).unwrap();
        assert!(!c.publish_async);
        let c = vars(&[("KAFKA_TOPICS", "a")]).unwrap();
        assert_eq!((c.topics.as_slice(), c.dlq_topic.as_str()), (&["a".to_string()][..], "a.dlq"));
    }

    #[test]
    fn seed_aliases_and_generic_variables_agree_or_name_each_other() {
        // The same value through both: fine.
        for pair in [
            [("KAFKA_CONSUMER_SESSION_TIMEOUT", "10s"), ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "10000")],
            [("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"), ("KAFKA_PRODUCER_LINGER_MS", "5")],
            [("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"), ("KAFKA_PRODUCER_QUEUE_BUFFERING_MAX_MS", "5")],
            [("KAFKA_PRODUCER_REQUIRE_ACKS", "-1"), ("KAFKA_PRODUCER_ACKS", "all")],
            [("KAFKA_PRODUCER_MAX_ATTEMPTS", "3"), ("KAFKA_PRODUCER_RETRIES", "2")],
            [("KAFKA_PRODUCER_COMPRESSION", "gzip"), ("KAFKA_PRODUCER_COMPRESSION_TYPE", "GZIP")],
            [("KAFKA_CONSUMER_START_OFFSET", "-2"), ("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "earliest")],
            [("KAFKA_CONSUMER_START_OFFSET", "-2"), ("KAFKA_START_FROM_BEGINNING", "true")],
            [("KAFKA_CONSUMER_MIN_BYTES", "1KB"), ("KAFKA_CONSUMER_FETCH_MIN_BYTES", "1000")],
            [("KAFKA_CONSUMER_MAX_BYTES", "1MiB"), ("KAFKA_CONSUMER_MAX_PARTITION_FETCH_BYTES", "1048576")],
            [("KAFKA_CONSUMER_MAX_WAIT", "1s"), ("KAFKA_CONSUMER_FETCH_MAX_WAIT_MS", "1000")],
            [("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "3s"), ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "3000")],
            [("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "1m"), ("KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS", "60000")],
            [("KAFKA_GROUP", "g"), ("KAFKA_GROUP_ID", "g")],
            [("KAFKA_TOPICS", "a,b"), ("KAFKA_TOPIC", "a, b")],
            [("KAFKA_CONSUMER_DLQ_TOPIC", "d"), ("KAFKA_DLQ_TOPIC", "d")],
            [("KAFKA_CONSUMER_MAX_RETRIES", "4"), ("KAFKA_MAX_RETRIES", "04")],
        ] {
            vars(&pair).unwrap_or_else(|e| panic!("{pair:?}: {e}"));
        }
        // Different values: an error naming both.
        for pair in [
            [("KAFKA_CONSUMER_SESSION_TIMEOUT", "10s"), ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000")],
            [("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"), ("KAFKA_PRODUCER_LINGER_MS", "50")],
            [("KAFKA_PRODUCER_BATCH_TIMEOUT", "5ms"), ("KAFKA_PRODUCER_QUEUE_BUFFERING_MAX_MS", "6")],
            [("KAFKA_PRODUCER_REQUIRE_ACKS", "1"), ("KAFKA_PRODUCER_ACKS", "all")],
            [("KAFKA_PRODUCER_REQUIRE_ACKS", "0"), ("KAFKA_PRODUCER_REQUEST_REQUIRED_ACKS", "1")],
            [("KAFKA_PRODUCER_MAX_ATTEMPTS", "3"), ("KAFKA_PRODUCER_RETRIES", "3")],
            [("KAFKA_PRODUCER_COMPRESSION", "gzip"), ("KAFKA_PRODUCER_COMPRESSION_TYPE", "lz4")],
            [("KAFKA_CONSUMER_START_OFFSET", "-1"), ("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "earliest")],
            [("KAFKA_CONSUMER_START_OFFSET", "-1"), ("KAFKA_START_FROM_BEGINNING", "true")],
            [("KAFKA_START_FROM_BEGINNING", "false"), ("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "earliest")],
            [("KAFKA_CONSUMER_MIN_BYTES", "1KB"), ("KAFKA_CONSUMER_FETCH_MIN_BYTES", "1024")],
            [("KAFKA_CONSUMER_MAX_BYTES", "1MB"), ("KAFKA_CONSUMER_MAX_PARTITION_FETCH_BYTES", "1048576")],
            [("KAFKA_CONSUMER_MAX_WAIT", "1s"), ("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS", "500")],
            [("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "3s"), ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "1000")],
            [("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "1m"), ("KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS", "300000")],
            [("KAFKA_GROUP", "g"), ("KAFKA_GROUP_ID", "h")],
            [("KAFKA_TOPICS", "a,b"), ("KAFKA_TOPIC", "b,a")],
            [("KAFKA_CONSUMER_DLQ_TOPIC", "d"), ("KAFKA_DLQ_TOPIC", "e")],
            [("KAFKA_CONSUMER_MAX_RETRIES", "4"), ("KAFKA_MAX_RETRIES", "5")],
            [("KAFKA_AUTO_COMMIT", "false"), ("KAFKA_CONSUMER_COMMIT_INTERVAL", "1s")],
            [("KAFKA_CONSUMER_MIN_BYTES", "2MB"), ("KAFKA_CONSUMER_MAX_BYTES", "1MiB")],
        ] {
            let e = vars(&pair).expect_err(&format!("{pair:?}"));
            assert_eq!(e.kind(), &ErrorKind::Config);
            let m = e.to_string();
            assert!(m.contains(pair[0].0) && m.contains(pair[1].0), "{pair:?}: {m}");
        }
    }

    #[test]
    fn bad_seed_values_name_their_variable_and_value() {
        for (var, value) in [
            ("KAFKA_PRODUCER_MAX_ATTEMPTS", "0"),
            ("KAFKA_PRODUCER_MAX_ATTEMPTS", "many"),
            ("KAFKA_PRODUCER_BATCH_TIMEOUT", "10 parsecs"),
            ("KAFKA_PRODUCER_BATCH_TIMEOUT", "-1s"),
            ("KAFKA_PRODUCER_REQUIRE_ACKS", "2"),
            ("KAFKA_PRODUCER_COMPRESSION", "brotli"),
            ("KAFKA_PRODUCER_ASYNC", "maybe"),
            ("KAFKA_CONSUMER_START_OFFSET", "0"),
            ("KAFKA_CONSUMER_MIN_BYTES", "lots"),
            ("KAFKA_CONSUMER_MAX_BYTES", "0"),
            ("KAFKA_CONSUMER_MAX_BYTES", "10XB"),
            ("KAFKA_CONSUMER_MAX_BYTES", "1TB"),
            ("KAFKA_CONSUMER_MAX_WAIT", "1d"),
            ("KAFKA_CONSUMER_COMMIT_INTERVAL", "soon"),
            ("KAFKA_CONSUMER_COMMIT_INTERVAL", "25h"),
            ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL", "1s5"),
            ("KAFKA_CONSUMER_SESSION_TIMEOUT", "forever"),
            ("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "0"),
            ("KAFKA_CONSUMER_MAX_RETRIES", "-1"),
            ("KAFKA_TOPICS", " , "),
            ("KAFKA_AUTO_COMMIT", "yes please"),
            ("KAFKA_START_FROM_BEGINNING", "sometimes"),
        ] {
            let e = vars(&[(var, value)]).expect_err(&format!("{var}={value}"));
            assert_eq!(e.kind(), &ErrorKind::Config, "{var}");
            let m = e.to_string();
            assert!(m.contains(var), "{var}={value}: {m}");
            // Out-of-range values are reported by the property's own check, in its terms.
            let range_check = matches!(
                (var, value),
                ("KAFKA_CONSUMER_MAX_BYTES", "1TB" | "0") | ("KAFKA_CONSUMER_REBALANCE_TIMEOUT", "0")
            );
            if !range_check {
                assert!(m.contains(value.trim()), "{var}={value}: {m}");
            }
        }
    }

    #[test]
    fn misspelled_seed_names_get_a_hint() {
        let names =
            ["KAFKA_GRUOP", "KAFKA_TOPICSS", "KAFKA_AUTO_COMIT", "KAFKA_START_FROM_BEGINING", "KAFKA_GROUP"];
        assert_eq!(
            misspelled_variables(names),
            [
                ("KAFKA_GRUOP", "KAFKA_GROUP"),
                ("KAFKA_TOPICSS", "KAFKA_TOPICS"),
                ("KAFKA_AUTO_COMIT", "KAFKA_AUTO_COMMIT"),
                ("KAFKA_START_FROM_BEGINING", "KAFKA_START_FROM_BEGINNING"),
            ]
        );
        // Under a prefix, a name close to a seed variable is an unknown property with that hint.
        let e = vars(&[("KAFKA_CONSUMER_COMMIT_INTERVL", "1s")]).unwrap_err().to_string();
        assert!(e.contains("did you mean KAFKA_CONSUMER_COMMIT_INTERVAL?"), "{e}");
        let e = vars(&[("KAFKA_PRODUCER_MAX_ATTEMPT", "3")]).unwrap_err().to_string();
        assert!(e.contains("did you mean KAFKA_PRODUCER_MAX_ATTEMPTS?"), "{e}");
        // A closer property keeps its own hint.
        let e = vars(&[("KAFKA_CONSUMER_SESSION_TIMEOUT_M", "5")]).unwrap_err().to_string();
        assert!(e.contains("KAFKA_CONSUMER_SESSION_TIMEOUT_MS"), "{e}");
    }

    #[test]
    fn commit_interval_and_publish_topic_set_in_code_are_checked() {
        let c = EngineConfig {
            commit_interval: MAX_COMMIT_INTERVAL + Duration::from_secs(1),
            ..EngineConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("commit_interval"));
        let c = EngineConfig { publish_dlq_topic: Some(" ".into()), ..EngineConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("publish_dlq_topic"));
        let c = EngineConfig { commit_interval: MAX_COMMIT_INTERVAL, ..EngineConfig::default() };
        c.validate().unwrap();
    }

    #[test]
    fn exactly_once_needs_the_kafka_store_and_reads_committed() {
        let e = vars(&[("KAFKA_ENGINE_EXACTLY_ONCE", "true")]).unwrap_err().to_string();
        assert!(e.contains("KAFKA_ENGINE_EXACTLY_ONCE and KAFKA_STATE_STORE"), "{e}");
        let e = vars(&[("KAFKA_ENGINE_EXACTLY_ONCE", "maybe"), ("KAFKA_STATE_STORE", "kafka")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("KAFKA_ENGINE_EXACTLY_ONCE"), "{e}");
        let c = vars(&[("KAFKA_ENGINE_EXACTLY_ONCE", "true"), ("KAFKA_STATE_STORE", "kafka")]).unwrap();
        assert!(c.exactly_once);
        assert_eq!(c.group_config().unwrap().consumer.isolation_level, klamm::IsolationLevel::ReadCommitted);
        assert_eq!(c.effective_commit_interval(), EXACTLY_ONCE_COMMIT_INTERVAL);
        let e = vars(&[
            ("KAFKA_ENGINE_EXACTLY_ONCE", "true"),
            ("KAFKA_STATE_STORE", "kafka"),
            ("KAFKA_CONSUMER_ISOLATION_LEVEL", "read_uncommitted"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("KAFKA_CONSUMER_ISOLATION_LEVEL"), "{e}");
        let e = vars(&[
            ("KAFKA_ENGINE_EXACTLY_ONCE", "true"),
            ("KAFKA_STATE_STORE", "kafka"),
            ("KAFKA_PRODUCER_TRANSACTIONAL_ID", "mine"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("KAFKA_PRODUCER_TRANSACTIONAL_ID") && e.contains("KAFKA_ENGINE_TRANSACTIONAL_ID"),
            "{e}"
        );
        // Without the mode nothing changes: read_uncommitted, the interval as set.
        let c = vars(&[("KAFKA_STATE_STORE", "kafka")]).unwrap();
        assert!(!c.exactly_once);
        assert_eq!(
            c.group_config().unwrap().consumer.isolation_level,
            klamm::IsolationLevel::ReadUncommitted
        );
        assert_eq!(c.effective_commit_interval(), Duration::ZERO);
    }

    #[test]
    fn the_transactional_id_is_set_or_derived_from_the_instance() {
        let base = [
            ("KAFKA_ENGINE_EXACTLY_ONCE", "true"),
            ("KAFKA_STATE_STORE", "kafka"),
            ("KAFKA_GROUP_ID", "billing"),
        ];
        let mut set = base.to_vec();
        set.push(("KAFKA_ENGINE_TRANSACTIONAL_ID", "billing-7"));
        let c = vars(&set).unwrap();
        let p = c.transactional_producer_config().unwrap();
        assert_eq!(p.transactional_id.as_deref(), Some("billing-7"));
        assert_eq!(p.transaction_timeout, EXACTLY_ONCE_TRANSACTION_TIMEOUT);
        let mut static_member = base.to_vec();
        static_member.push(("KAFKA_CONSUMER_GROUP_INSTANCE_ID", "pod-2"));
        static_member.push(("KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS", "30000"));
        let c = vars(&static_member).unwrap();
        let p = c.transactional_producer_config().unwrap();
        assert_eq!(p.transactional_id.as_deref(), Some("billing-pod-2"));
        assert_eq!(p.transaction_timeout, Duration::from_secs(30));
        let c = vars(&base).unwrap();
        if let Some(host) = host_name() {
            assert_eq!(c.transactional_id_or_default().unwrap(), format!("billing-{host}"));
        }
        let c = EngineConfig { transactional_id: Some(" ".into()), ..EngineConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("KAFKA_ENGINE_TRANSACTIONAL_ID"));
    }
}
