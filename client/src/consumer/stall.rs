//! Stall reporting: telling the user what keeps assigned partitions from being read.
//!
//! Retriable failures (a broker that cannot be reached, a topic that does not exist yet, a
//! partition without a leader) are retried inside the consumer, so without this a consumer
//! pointed at the wrong address or topic would return empty polls forever. We follow the Java
//! client and librdkafka:
//! - a WARN log at once for the causes a user is likely to have made (no connection, a topic
//!   that does not exist), and for any other cause once half the limit has passed; at most
//!   one per cause every [`WARN_EVERY`];
//! - after a bounded time an error from `poll`, retriable (the consumer keeps retrying; polling
//!   again is the right answer when the cause is expected to pass), naming the partitions and
//!   the cause, then again after each further period while the stall lasts. The bound is
//!   `topic.metadata.propagation.max.ms` for a topic that does not exist (librdkafka's
//!   property and default, 30 s) and `klamm.stall.timeout.ms` (30 s) for everything else.
//!   A zero bound turns the error off, leaving the warnings.
//!
//! A stall starts at a partition's first failed attempt and ends with its first successful
//! fetch or offset lookup; a report that is no longer true is never delivered, since the
//! reports are made when `poll` asks for them, from the stalls as they are then.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm_protocol::ErrorCode;

use crate::consumer::config::ConsumerConfig;
use crate::consumer::record::TopicPartition;
use crate::error::{Error, ErrorKind};

/// The least time between two warnings about the same cause.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The stalled partitions of one consumer.
#[derive(Default)]
pub(crate) struct Stalls {
    partitions: HashMap<TopicPartition, Stall>,
    /// When each cause (see [`cause_key`]) was last warned about.
    warned: HashMap<String, Instant>,
}

struct Stall {
    since: Instant,
    /// When `poll` reports it next (`None`: never, the bound is zero).
    due: Option<Instant>,
    cause: Error,
}

impl Stalls {
    /// An attempt to read `tp` failed with the retriable `cause`.
    pub(crate) fn note(&mut self, tp: &TopicPartition, cause: &Error, config: &ConsumerConfig, now: Instant) {
        let limit = limit_for(cause, config);
        let stall = self.partitions.entry(tp.clone()).or_insert_with(|| Stall {
            since: now,
            due: (!limit.is_zero()).then(|| now + limit),
            cause: cause.clone(),
        });
        stall.cause = cause.clone();
        let waited = now.saturating_duration_since(stall.since);
        let half = if limit.is_zero() { config.stall_timeout / 2 } else { limit / 2 };
        if !warn_at_once(cause) && waited < half {
            return;
        }
        let key = cause_key(tp, cause);
        if self.warned.get(&key).is_some_and(|at| now < *at + WARN_EVERY) {
            return;
        }
        self.warned.insert(key, now);
        tracing::warn!(partition = %tp, "cannot read {tp}: {}; retrying", describe(cause, config));
    }

    /// `tp` was read (or its position looked up): it is not stalled.
    pub(crate) fn clear(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// When the next report is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.partitions.values().filter_map(|s| s.due).min()
    }

    /// The report for `poll` when some partition has been stalled past its bound: one error
    /// for all of them, of the kind of the first one's cause (so [`Error::is_retriable`] and
    /// [`Error::code`] say what it is). Their next reports are due one bound later.
    pub(crate) fn take_due(&mut self, config: &ConsumerConfig, now: Instant) -> Option<Error> {
        let mut due: Vec<(&TopicPartition, &mut Stall)> =
            self.partitions.iter_mut().filter(|(_, s)| s.due.is_some_and(|d| d <= now)).collect();
        if due.is_empty() {
            return None;
        }
        due.sort_by(|a, b| a.0.cmp(b.0));
        let (first_tp, first) = &due[0];
        let kind = first.cause.kind().clone();
        let broker = first.cause.broker().map(str::to_owned);
        let waited = now.saturating_duration_since(first.since);
        let cause = summarize(first_tp, &first.cause, config);
        let mut names: Vec<String> = vec![first_tp.to_string()];
        for (tp, _) in due.iter().skip(1).take(4) {
            names.push(tp.to_string());
        }
        if due.len() > 5 {
            names.push(format!("and {} more", due.len() - 5));
        }
        for (_, stall) in &mut due {
            let limit = limit_for(&stall.cause, config);
            stall.due = (!limit.is_zero()).then(|| now + limit);
        }
        let report = Stalled { partitions: names.join(", "), waited, cause };
        Some(Error::with_source(kind, broker, report))
    }
}

/// The bound for `cause`: librdkafka's `topic.metadata.propagation.max.ms` for a topic that
/// does not exist, `klamm.stall.timeout.ms` for the rest.
fn limit_for(cause: &Error, config: &ConsumerConfig) -> Duration {
    if is_missing_topic(cause) {
        config.topic_metadata_propagation_max
    } else {
        config.stall_timeout
    }
}

fn is_missing_topic(cause: &Error) -> bool {
    matches!(cause.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION | ErrorCode::UNKNOWN_TOPIC_ID))
}

fn is_unreachable(cause: &Error) -> bool {
    matches!(cause.kind(), ErrorKind::Connect { .. } | ErrorKind::Io | ErrorKind::Closed | ErrorKind::Timeout)
}

/// Causes a user is likely to have made: warned about at the first failure.
fn warn_at_once(cause: &Error) -> bool {
    is_missing_topic(cause) || matches!(cause.kind(), ErrorKind::Connect { .. })
}

/// What the rate limit counts as one cause: a missing topic per topic, connection trouble
/// per broker, anything else per partition and kind.
fn cause_key(tp: &TopicPartition, cause: &Error) -> String {
    if is_missing_topic(cause) {
        format!("missing {}", tp.topic)
    } else if is_unreachable(cause) {
        format!("unreachable {}", cause.broker().unwrap_or("?"))
    } else {
        format!("{tp} {:?}", cause.kind())
    }
}

/// The cause in a user's terms: which topic is missing, which addresses cannot be reached.
fn describe(cause: &Error, config: &ConsumerConfig) -> String {
    if is_missing_topic(cause) {
        format!(
            "the topic does not exist (or not yet; allow.auto.create.topics is {}): {cause}",
            config.client.allow_auto_create_topics
        )
    } else if is_unreachable(cause) {
        format!(
            "no connection to the broker (bootstrap.servers is {}): {cause}",
            config.client.bootstrap_servers.join(",")
        )
    } else {
        cause.to_string()
    }
}

/// The cause for the report, which shows the cause's kind (and broker) already: what it
/// means to the user, and the cause's own source (such as the OS's "connection refused").
fn summarize(tp: &TopicPartition, cause: &Error, config: &ConsumerConfig) -> String {
    let detail = std::error::Error::source(cause).map(|s| format!(": {s}")).unwrap_or_default();
    if is_missing_topic(cause) {
        format!(
            "topic {:?} does not exist (or not yet; allow.auto.create.topics is {})",
            tp.topic, config.client.allow_auto_create_topics
        )
    } else if is_unreachable(cause) {
        format!(
            "no connection to the broker (bootstrap.servers is {}){detail}",
            config.client.bootstrap_servers.join(",")
        )
    } else {
        format!("the last attempt failed{detail}")
    }
}

/// The report `poll` returns.
#[derive(Debug, thiserror::Error)]
#[error("no progress on {partitions} for {waited:.0?}: {cause}; the consumer keeps retrying")]
struct Stalled {
    partitions: String,
    waited: Duration,
    cause: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::topic_error;

    fn config() -> ConsumerConfig {
        let mut c = ConsumerConfig::new("127.0.0.1:1");
        c.stall_timeout = Duration::from_secs(30);
        c.topic_metadata_propagation_max = Duration::from_secs(10);
        c
    }

    #[test]
    fn a_missing_topic_is_reported_after_the_propagation_bound_then_every_bound() {
        let config = config();
        let mut stalls = Stalls::default();
        let t0 = Instant::now();
        let tp = TopicPartition::new("no-such-topic", 0);
        let cause = topic_error("no-such-topic", ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        stalls.note(&tp, &cause, &config, t0);
        assert_eq!(stalls.next_due(), Some(t0 + Duration::from_secs(10)));
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(9)).is_none());
        let e = stalls.take_due(&config, t0 + Duration::from_secs(10)).expect("due");
        assert!(e.is_retriable(), "{e}");
        assert_eq!(e.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
        let text = e.to_string();
        assert!(text.contains("no-such-topic-0") && text.contains("does not exist"), "{text}");
        // Not again before another bound.
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(15)).is_none());
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(20)).is_some());
        // Read at last: nothing more to report.
        stalls.clear(&tp);
        assert_eq!(stalls.next_due(), None);
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(99)).is_none());
    }

    #[test]
    fn unreachable_brokers_are_named_and_many_partitions_make_one_report() {
        let config = config();
        let mut stalls = Stalls::default();
        let t0 = Instant::now();
        let cause = Error::at(ErrorKind::Connect { addr: "127.0.0.1:1".into() }, "127.0.0.1:1");
        for p in 0..8 {
            stalls.note(&TopicPartition::new("t", p), &cause, &config, t0);
        }
        let e = stalls.take_due(&config, t0 + Duration::from_secs(30)).expect("due");
        assert!(e.is_retriable());
        assert!(matches!(e.kind(), ErrorKind::Connect { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("127.0.0.1:1") && text.contains("t-0") && text.contains("3 more"), "{text}");
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(31)).is_none());
    }

    #[test]
    fn a_zero_bound_only_warns() {
        let mut config = config();
        config.stall_timeout = Duration::ZERO;
        let mut stalls = Stalls::default();
        let t0 = Instant::now();
        let cause = Error::new(ErrorKind::Broker(ErrorCode::LEADER_NOT_AVAILABLE));
        stalls.note(&TopicPartition::new("t", 0), &cause, &config, t0);
        assert_eq!(stalls.next_due(), None);
        assert!(stalls.take_due(&config, t0 + Duration::from_secs(3600)).is_none());
    }
}
