//! [`GroupConfig`]: a group member's settings, typed and by Kafka property name.
//!
//! The group owns membership and commit settings; every other property goes to the embedded
//! [`ConsumerConfig`] (and from there to the client), so one `key=value` list configures all.

use std::sync::Arc;
use std::time::Duration;

use klamm::{ConsumerConfig, Error, ErrorKind};

use crate::assignor::{self, Assignor, CooperativeSticky};

/// Settings of a [`GroupConsumer`](crate::GroupConsumer).
///
/// ```
/// use std::time::Duration;
/// use klamm_group::GroupConfig;
///
/// let config = GroupConfig::new("127.0.0.1:9092", "billing")
///     .session_timeout(Duration::from_secs(30))
///     .assignors_by_name(["cooperative-sticky", "range"])?;
///
/// let same = GroupConfig::from_properties([
///     ("bootstrap.servers", "127.0.0.1:9092"),
///     ("group.id", "billing"),
///     ("session.timeout.ms", "30000"),
///     ("partition.assignment.strategy", "cooperative-sticky,range"),
///     ("auto.offset.reset", "earliest"), // a consumer setting, passed on
/// ])?;
/// assert_eq!(same.session_timeout, config.session_timeout);
/// assert_eq!(same.assignor_names(), ["cooperative-sticky", "range"]);
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct GroupConfig {
    /// Fetching and client settings.
    pub consumer: ConsumerConfig,
    /// `group.id`. Required.
    pub group_id: String,
    /// `group.instance.id`: makes the member static (KIP-345): a restart within the session
    /// timeout with the same id causes no rebalance. Default: none.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`. Default: 45 s (the Java default).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`. Default: 3 s.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest the application may go between polls before the
    /// member leaves the group; also the rebalance timeout. Default: 5 min.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy`, most preferred first. Default: cooperative-sticky.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// `enable.auto.commit`. Default: **false** (unlike the Java client): commit what you
    /// processed, when you processed it.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`, when auto-commit is on. Default: 5 s.
    pub auto_commit_interval: Duration,
    /// `default.api.timeout.ms`: the bound of a synchronous commit or committed-offsets lookup
    /// with its retries. Default: 60 s.
    pub api_timeout: Duration,
    /// `client.rack`, sent in the subscription. Default: none.
    pub client_rack: Option<String>,
    /// `group.protocol`: the classic protocol (JoinGroup/SyncGroup, assignment by the group's
    /// leader) or the KIP-848 `consumer` protocol (ConsumerGroupHeartbeat, assignment by the
    /// broker). Default: classic.
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor of the `consumer` protocol
    /// (`uniform` or `range` on Apache Kafka). Default: none, the broker's default.
    pub remote_assignor: Option<String>,
}

/// The group membership protocol (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup, SyncGroup and Heartbeat; a member of the group (its leader) assigns the
    /// partitions with the assignors of `partition.assignment.strategy`.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat; the broker assigns (`group.remote.assignor`) and
    /// moves partitions member by member, without stopping the group. Apache Kafka 4.0+.
    Consumer,
}

impl GroupProtocol {
    /// The property value: `classic` or `consumer`.
    pub fn name(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

impl std::str::FromStr for GroupProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            _ => Err(config_error(format!("group.protocol: {s:?} is not classic or consumer"))),
        }
    }
}

impl std::fmt::Debug for GroupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConfig")
            .field("consumer", &self.consumer)
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("assignors", &self.assignor_names())
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("auto_commit_interval", &self.auto_commit_interval)
            .field("group_protocol", &self.group_protocol)
            .field("remote_assignor", &self.remote_assignor)
            .finish()
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            consumer: ConsumerConfig::default(),
            group_id: String::new(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            assignors: vec![Arc::new(CooperativeSticky)],
            enable_auto_commit: false,
            auto_commit_interval: Duration::from_secs(5),
            api_timeout: Duration::from_secs(60),
            client_rack: None,
            group_protocol: GroupProtocol::Classic,
            remote_assignor: None,
        }
    }
}

impl GroupConfig {
    /// A member of `group_id`, bootstrapping from `bootstrap_servers` (`host:port,...`).
    pub fn new(bootstrap_servers: &str, group_id: &str) -> Self {
        Self {
            consumer: ConsumerConfig::new(bootstrap_servers),
            group_id: group_id.to_string(),
            ..Self::default()
        }
    }

    /// Defaults changed by Kafka-style properties; see [`GroupConfig::set`].
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        let mut config = Self::default();
        for (key, value) in properties {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one setting by its Kafka property name: `group.id`, `group.instance.id`,
    /// `session.timeout.ms`, `heartbeat.interval.ms`, `max.poll.interval.ms`,
    /// `partition.assignment.strategy` (names, or the Java class names of the three built-in
    /// assignors), `enable.auto.commit`, `auto.commit.interval.ms`, `default.api.timeout.ms`,
    /// `client.rack`, `group.protocol` (`classic` or `consumer`), `group.remote.assignor`.
    /// Every other name goes to [`ConsumerConfig::set`].
    ///
    /// With `group.protocol=consumer`, the broker owns the session timeout, the heartbeat
    /// interval and the assignor: `session.timeout.ms`, `heartbeat.interval.ms` and
    /// `partition.assignment.strategy` are accepted and not used.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "group.id" => self.group_id = value.trim().to_string(),
            "group.instance.id" => {
                let v = value.trim();
                self.group_instance_id = (!v.is_empty()).then(|| v.to_string());
            }
            "session.timeout.ms" => self.session_timeout = ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = ms(key, value)?,
            "partition.assignment.strategy" => {
                let names: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                self.assignors = assignors_by_name(&names)?;
            }
            "enable.auto.commit" => {
                self.enable_auto_commit = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(config_error(format!("{key}: {value:?} is not true or false"))),
                }
            }
            "auto.commit.interval.ms" => self.auto_commit_interval = ms(key, value)?,
            "default.api.timeout.ms" => self.api_timeout = ms(key, value)?,
            "client.rack" => {
                let v = value.trim();
                self.client_rack = (!v.is_empty()).then(|| v.to_string());
            }
            "group.protocol" => self.group_protocol = value.parse()?,
            "group.remote.assignor" => {
                let v = value.trim();
                self.remote_assignor = (!v.is_empty()).then(|| v.to_string());
            }
            _ => {
                return self.consumer.set(key, value).map_err(|e| match klamm::UnknownProperty::of(&e) {
                    Some(u) => klamm::unknown_property(u.name(), Self::property_names()),
                    None => e,
                })
            }
        }
        Ok(())
    }

    /// The property names [`GroupConfig::set`] knows, the consumer's and the client's included
    /// (for "did you mean" hints).
    pub fn property_names() -> Vec<&'static str> {
        let own = [
            "group.id",
            "group.instance.id",
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "max.poll.interval.ms",
            "partition.assignment.strategy",
            "enable.auto.commit",
            "auto.commit.interval.ms",
            "default.api.timeout.ms",
            "client.rack",
            "group.protocol",
            "group.remote.assignor",
        ];
        own.into_iter().chain(ConsumerConfig::property_names()).collect()
    }

    /// Sets the static member id (`group.instance.id`).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Sets the assignors, most preferred first.
    pub fn assignors(mut self, assignors: Vec<Arc<dyn Assignor>>) -> Self {
        self.assignors = assignors;
        self
    }

    /// Sets the assignors by name (`cooperative-sticky`, `range`, `roundrobin`).
    pub fn assignors_by_name<S: AsRef<str>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, Error> {
        let names: Vec<S> = names.into_iter().collect();
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        self.assignors = assignors_by_name(&names)?;
        Ok(self)
    }

    /// Sets `group.protocol`.
    pub fn group_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.group_protocol = protocol;
        self
    }

    /// Sets `group.remote.assignor` (`consumer` protocol only).
    pub fn remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.remote_assignor = Some(name.into());
        self
    }

    /// Turns auto-commit on (every `interval`, and before partitions are revoked).
    pub fn auto_commit(mut self, interval: Duration) -> Self {
        self.enable_auto_commit = true;
        self.auto_commit_interval = interval;
        self
    }

    /// Changes the consumer settings.
    pub fn consumer(mut self, f: impl FnOnce(ConsumerConfig) -> ConsumerConfig) -> Self {
        self.consumer = f(self.consumer);
        self
    }

    /// The assignors' protocol names, in order.
    pub fn assignor_names(&self) -> Vec<&'static str> {
        self.assignors.iter().map(|a| a.name()).collect()
    }

    /// Checks the settings; the error names the offending property.
    pub fn validate(&self) -> Result<(), Error> {
        if self.group_id.is_empty() {
            return Err(config_error("group.id: required, and must not be empty".to_string()));
        }
        if self.assignors.is_empty() {
            return Err(config_error("partition.assignment.strategy: at least one assignor".to_string()));
        }
        if self.session_timeout.is_zero() {
            return Err(config_error("session.timeout.ms: must be positive".to_string()));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return Err(config_error(format!(
                "heartbeat.interval.ms: {:?} must be positive and below session.timeout.ms ({:?})",
                self.heartbeat_interval, self.session_timeout
            )));
        }
        if self.max_poll_interval < Duration::from_millis(1) {
            return Err(config_error("max.poll.interval.ms: must be positive".to_string()));
        }
        if self.enable_auto_commit && self.auto_commit_interval.is_zero() {
            return Err(config_error("auto.commit.interval.ms: must be positive".to_string()));
        }
        self.consumer.validate()
    }
}

fn assignors_by_name(names: &[&str]) -> Result<Vec<Arc<dyn Assignor>>, Error> {
    let mut out: Vec<Arc<dyn Assignor>> = Vec::new();
    for name in names {
        // The Java client's class names, so a Java properties file works as it is.
        let short = match *name {
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => "cooperative-sticky",
            "org.apache.kafka.clients.consumer.RangeAssignor" => "range",
            "org.apache.kafka.clients.consumer.RoundRobinAssignor" => "roundrobin",
            other => other,
        };
        let Some(assignor) = assignor::by_name(short) else {
            return Err(config_error(format!(
                "partition.assignment.strategy: unknown assignor {name:?} (cooperative-sticky, range, roundrobin)"
            )));
        };
        out.push(Arc::from(assignor));
    }
    if out.is_empty() {
        return Err(config_error("partition.assignment.strategy: at least one assignor".to_string()));
    }
    Ok(out)
}

fn ms(key: &str, value: &str) -> Result<Duration, Error> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| config_error(format!("{key}: {value:?} is not a number of milliseconds")))
}

pub(crate) fn config_error(why: String) -> Error {
    Error::with_message(ErrorKind::Config, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_known_and_a_typo_gets_a_hint() {
        for name in GroupConfig::property_names() {
            let e = GroupConfig::new("h:1", "g").set(name, "?").err();
            assert!(e.as_ref().and_then(klamm::UnknownProperty::of).is_none(), "{name}: {e:?}");
        }
        for (typo, meant) in [
            ("group.idd", "group.id"),
            ("session.timout.ms", "session.timeout.ms"),
            ("max.poll.record", "max.poll.records"),
            ("bootstrap.server", "bootstrap.servers"),
        ] {
            let e = GroupConfig::new("h:1", "g").set(typo, "1").unwrap_err();
            let hint = klamm::UnknownProperty::of(&e).and_then(|u| u.suggestion());
            assert_eq!(hint, Some(meant), "{e}");
            assert!(e.to_string().contains(&format!("did you mean {meant:?}?")), "{e}");
        }
    }

    #[test]
    fn invalid_values_name_the_property() {
        let cases = [
            ("session.timeout.ms", "soon"),
            ("partition.assignment.strategy", "sticky-ish"),
            ("enable.auto.commit", "yes"),
            ("auto.offset.reset", "middle"),
        ];
        for (key, value) in cases {
            let e = GroupConfig::from_properties([("group.id", "g"), (key, value)]).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Config, "{key}");
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        let e = GroupConfig::new("127.0.0.1:9092", "").validate().unwrap_err();
        assert!(e.to_string().contains("group.id"), "{e}");
        let e =
            GroupConfig::new("127.0.0.1:9092", "g").heartbeat_interval(Duration::from_secs(60)).validate();
        assert!(e.unwrap_err().to_string().contains("heartbeat.interval.ms"));
    }

    #[test]
    fn java_class_names_are_accepted() {
        let c = GroupConfig::from_properties([
            ("group.id", "g"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.RangeAssignor, org.apache.kafka.clients.consumer.RoundRobinAssignor",
            ),
        ])
        .unwrap();
        assert_eq!(c.assignor_names(), ["range", "roundrobin"]);
        assert!(!c.enable_auto_commit, "auto-commit is off unless asked for");
    }

    #[test]
    fn group_protocol_and_remote_assignor_by_property() {
        let c = GroupConfig::from_properties([("group.id", "g")]).unwrap();
        assert_eq!(c.group_protocol, GroupProtocol::Classic, "classic unless asked for");
        let c = GroupConfig::from_properties([
            ("group.id", "g"),
            ("group.protocol", "CONSUMER"),
            ("group.remote.assignor", "range"),
        ])
        .unwrap();
        assert_eq!(c.group_protocol, GroupProtocol::Consumer);
        assert_eq!(c.remote_assignor.as_deref(), Some("range"));
        let e = GroupConfig::from_properties([("group.protocol", "next")]).unwrap_err();
        assert!(e.to_string().contains("group.protocol"), "{e}");
    }
}
