//! Telling the user what keeps a group member from making progress, as the partition
//! consumer does for its partitions (see `klamm`'s consumer docs) and after the same rules:
//! a WARN log at once (at most one per cause every [`WARN_EVERY`]), then a retriable error
//! from `poll` once the cause has lasted a bounded time, again after each further bound.
//!
//! - The group is not stable (no coordinator found, a join or sync that does not complete):
//!   warned at once when the brokers cannot be reached, else after half the bound; an error
//!   after `klamm.stall.timeout.ms` (30 s), of the kind of the last failed group request (a
//!   connect error naming the address), or [`ErrorKind::Timeout`] when none failed.
//! - A subscribed topic does not exist: warned at once (the coordinator task looks the
//!   subscribed topics up after each subscribe, then every 5 s while one is missing); an
//!   UNKNOWN_TOPIC_OR_PARTITION error naming it after `topic.metadata.propagation.max.ms`
//!   (30 s, librdkafka's property and default).
//! - A subscribed topic the member may not see (TOPIC_AUTHORIZATION_FAILED, an invalid
//!   name): its non-retriable error at once, as the Java client throws a
//!   TopicAuthorizationException from `poll`, again after each `klamm.stall.timeout.ms`.
//! - Assigned partitions that cannot be read are the partition consumer's, whose warnings
//!   and errors come through `poll` as they are.
//!
//! A zero bound turns the errors off, leaving the warnings.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm::{Error, ErrorCode, ErrorKind};

use crate::coordinator::GroupShared;
use crate::membership::MemberState;

/// The least time between two warnings about the same cause.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The member's stall state, kept by the [`GroupConsumer`](crate::GroupConsumer).
#[derive(Default)]
pub(crate) struct GroupStall {
    /// Since when the member, subscribed, has not been stable.
    unstable_since: Option<Instant>,
    /// When the next "not stable" error is due.
    unstable_due: Option<Instant>,
    /// When the next error about each missing topic is due.
    missing_due: HashMap<String, Instant>,
    /// When the next error about each refused topic is due.
    refused_due: HashMap<String, Instant>,
    /// When each cause was last warned about.
    warned: HashMap<String, Instant>,
}

impl GroupStall {
    /// Looks at the member now: warns as due, and returns the error `poll` should return.
    pub(crate) fn check(&mut self, shared: &GroupShared, now: Instant) -> Option<Error> {
        let config = &shared.config;
        let (state, subscribed) = {
            let m = shared.membership();
            (m.state(), m.has_subscription())
        };
        // A pattern that matches no topic yet leaves the subscription empty: nothing to join,
        // and nothing wrong (the Java client waits quietly too).
        let bound = config.consumer.stall_timeout;
        let mut report = None;
        let waiting =
            subscribed && !matches!(state, MemberState::Stable | MemberState::Leaving | MemberState::Left);
        if !waiting {
            self.unstable_since = None;
            self.unstable_due = None;
        } else {
            let since = *self.unstable_since.get_or_insert(now);
            if self.unstable_due.is_none() && !bound.is_zero() {
                self.unstable_due = Some(since + bound);
            }
            let problem = shared.problem.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let waited = now.saturating_duration_since(since);
            let unreachable = problem.as_ref().is_some_and(|p| matches!(p.kind(), ErrorKind::Connect { .. }));
            let servers = config.consumer.client.bootstrap_servers.join(",");
            let why = match &problem {
                Some(p) if unreachable => {
                    format!("no connection to the brokers (bootstrap.servers is {servers}): {p}")
                }
                Some(p) => format!("last failure: {p}"),
                None => "no request failed; the group has not completed a rebalance".to_owned(),
            };
            // The error shows its kind (a connect error names the address) before this.
            let detail =
                problem.as_ref().and_then(|p| std::error::Error::source(p)).map(|s| format!(": {s}"));
            let why_for_error = match &problem {
                Some(p) if p.is_retriable() && unreachable => {
                    format!(
                        "no connection to the brokers (bootstrap.servers is {servers}){}",
                        detail.unwrap_or_default()
                    )
                }
                Some(p) if p.is_retriable() => {
                    format!("the last group request failed{}", detail.unwrap_or_default())
                }
                _ => why.clone(),
            };
            if (unreachable || waited >= bound / 2) && self.may_warn("unstable", now) {
                tracing::warn!(
                    group = %config.group_id,
                    "group {:?} not joined for {waited:.0?} (state {state:?}): {why}; retrying",
                    config.group_id
                );
            }
            if self.unstable_due.is_some_and(|due| due <= now) {
                self.unstable_due = Some(now + bound);
                let kind = match &problem {
                    Some(p) if p.is_retriable() => p.kind().clone(),
                    _ => ErrorKind::Timeout,
                };
                report = Some(Error::with_message(
                    kind,
                    format!(
                        "group {:?} not joined for {waited:.0?} (state {state:?}): {why_for_error}; the member \
                         keeps retrying",
                        config.group_id
                    ),
                ));
            }
        }

        // A subscribed topic the member may not see (not authorized, an invalid name): reported
        // at once, as the Java client throws its TopicAuthorizationException from poll, then
        // again after each bound while it lasts.
        let refused: Vec<(String, Error)> = shared
            .refused_topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, e)| (t.clone(), e.clone()))
            .collect();
        self.refused_due.retain(|t, _| refused.iter().any(|(r, _)| r == t));
        for (topic, e) in refused {
            if report.is_some() || self.refused_due.get(&topic).is_some_and(|due| now < *due) {
                continue;
            }
            let again = if bound.is_zero() { WARN_EVERY } else { bound };
            self.refused_due.insert(topic.clone(), now + again);
            tracing::warn!(group = %config.group_id, topic = %topic, error = %e, "cannot use subscribed topic {topic:?}");
            report = Some(e);
        }

        let missing: Vec<(String, Instant)> = shared
            .missing_topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, since)| (t.clone(), *since))
            .collect();
        self.missing_due.retain(|t, _| missing.iter().any(|(m, _)| m == t));
        let bound = config.consumer.topic_metadata_propagation_max;
        for (topic, since) in missing {
            let why = format!(
                "subscribed topic {topic:?} does not exist (allow.auto.create.topics is {})",
                config.consumer.client.allow_auto_create_topics
            );
            if self.may_warn(&format!("missing {topic}"), now) {
                tracing::warn!(group = %config.group_id, topic = %topic, "{why}; looking again");
            }
            if bound.is_zero() || report.is_some() {
                continue;
            }
            let due = self.missing_due.entry(topic.clone()).or_insert(since + bound);
            if *due <= now {
                *due = now + bound;
                report = Some(Error::with_message(
                    ErrorKind::Broker(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                    format!("{why}, for {:.0?}", now.saturating_duration_since(since)),
                ));
            }
        }
        report
    }

    /// When [`GroupStall::check`] may have something new to say.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.unstable_due.into_iter().chain(self.missing_due.values().copied()).min()
    }

    fn may_warn(&mut self, key: &str, now: Instant) -> bool {
        if self.warned.get(key).is_some_and(|at| now < *at + WARN_EVERY) {
            return false;
        }
        self.warned.insert(key.to_owned(), now);
        true
    }
}
