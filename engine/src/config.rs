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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use klamm::{Error, ErrorKind, OffsetReset, ProducerConfig};
use klamm_group::{GroupConfig, GroupProtocol};

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
    "KAFKA_STATE_STORE",
];

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

/// The variables to blame for `error`, a check across several properties: those of the set
/// `properties` the message names, else all of them, else every variable of `prefix`.
fn blame(prefix: &str, properties: &BTreeMap<String, String>, error: &Error) -> String {
    let message = error.to_string();
    let named: Vec<String> = properties
        .keys()
        .filter(|k| message.contains(k.as_str()))
        .map(|k| variable_name(prefix, k))
        .collect();
    if !named.is_empty() {
        named.join(", ")
    } else if !properties.is_empty() {
        properties.keys().map(|k| variable_name(prefix, k)).collect::<Vec<_>>().join(", ")
    } else {
        format!("{prefix}*")
    }
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
        if let Some(t) = get("KAFKA_TOPIC") {
            let topics: Vec<String> =
                t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            if topics.is_empty() {
                return Err(bad("KAFKA_TOPIC", "no topic named"));
            }
            c.topics = topics;
        }
        c.dlq_topic = format!("{}.dlq", c.topics[0]);
        if let Some(g) = get("KAFKA_GROUP_ID") {
            c.group_id = g;
        }
        if let Some(d) = get("KAFKA_DLQ_TOPIC") {
            c.dlq_topic = d;
        }
        if let Some(r) = get("KAFKA_MAX_RETRIES") {
            c.max_retries =
                r.parse().map_err(|_| bad("KAFKA_MAX_RETRIES", format!("{r:?} is not a whole number")))?;
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
        if let Some(d) = get("KAFKA_STATE_DIR") {
            c.state_dir = PathBuf::from(d);
        }
        if let Some(s) = get("KAFKA_STATE_STORE") {
            c.state_store = s.parse().map_err(|e| bad("KAFKA_STATE_STORE", e))?;
        }
        if let Some(p) = get("KAFKA_GROUP_PROTOCOL") {
            // `classic` or `consumer` (KIP-848): the group consumer's `group.protocol`.
            let protocol: GroupProtocol = p.parse().map_err(|e| bad("KAFKA_GROUP_PROTOCOL", e))?;
            c.consumer_properties.insert("group.protocol".into(), protocol.name().into());
        }
        for (k, v) in &vars {
            if let Some(suffix) = k.strip_prefix(CONSUMER_PREFIX) {
                c.consumer_properties.insert(property_name(suffix), v.clone());
            } else if let Some(suffix) = k.strip_prefix(PRODUCER_PREFIX) {
                c.producer_properties.insert(property_name(suffix), v.clone());
            } else if SECURITY_VARIABLES.iter().any(|s| k == s || (s.ends_with('_') && k.starts_with(s))) {
                c.security_properties.insert(property_name(&k["KAFKA_".len()..]), v.clone());
            }
        }
        for (variable, meant) in misspelled_variables(vars.keys().map(String::as_str)) {
            tracing::warn!("{variable} is not a variable the engine reads; did you mean {meant}?");
        }
        // Apply the properties now, so that a bad one fails here and names its variable.
        c.validate()?;
        Ok(c)
    }

    /// Checks the settings that do not depend on a broker, the consumer and producer
    /// properties included (as the group member and the producer will check them); an error
    /// names the `KAFKA_CONSUMER_*` or `KAFKA_PRODUCER_*` variable(s) involved.
    pub fn validate(&self) -> Result<(), Error> {
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
        check_shutdown_timeout(self.shutdown_timeout).map_err(|why| bad("shutdown_timeout", why))?;
        self.group_config_named(|prop| variable_name(CONSUMER_PREFIX, prop))?;
        self.producer_config_named(|prop| variable_name(PRODUCER_PREFIX, prop))?;
        Ok(())
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
/// one it does, each with that one.
pub fn misspelled_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, &'static str)> {
    let prefixes = [CONSUMER_PREFIX.trim_end_matches('_'), PRODUCER_PREFIX.trim_end_matches('_')];
    names
        .into_iter()
        .filter(|k| k.starts_with("KAFKA_") && !VARIABLES.contains(k))
        .filter(|k| !k.starts_with(CONSUMER_PREFIX) && !k.starts_with(PRODUCER_PREFIX))
        .filter(|k| !SECURITY_VARIABLES.iter().any(|s| k == s || (s.ends_with('_') && k.starts_with(s))))
        .filter_map(|k| Some((k, klamm::suggest(k, VARIABLES.iter().copied().chain(prefixes))?)))
        .collect()
}

/// A property's error under what to call it (its variable, or its name); an unknown property's
/// hint is given as a variable too.
fn property_error(e: Error, property: &str, name: &impl Fn(&str) -> String) -> Error {
    let hint = klamm::UnknownProperty::of(&e).and_then(klamm::UnknownProperty::suggestion);
    match hint {
        Some(meant) if !name("").is_empty() => bad(&name(property), format!("{e} (that is {})", name(meant))),
        _ => bad(&name(property), e),
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

/// [`blame`] with `name` turning a property into what to call it: the variables under their
/// prefix, or the property names themselves (from code).
fn blame_named(
    properties: &BTreeMap<String, String>,
    error: &Error,
    name: &impl Fn(&str) -> String,
) -> String {
    // `name("")` is the prefix alone when names are variables, empty when they are properties.
    let prefix = name("");
    if prefix.is_empty() {
        let b = blame("", properties, error);
        if b == "*" {
            "properties".to_string()
        } else {
            b
        }
    } else {
        blame(&prefix, properties, error)
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
        assert_eq!(
            misspelled_variables(names),
            [("KAFKA_BROKER", "KAFKA_BROKERS"), ("KAFKA_TOPICS", "KAFKA_TOPIC")]
        );
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
}
