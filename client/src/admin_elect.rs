//! Leader elections on demand: [`Admin::elect_leaders`] (ElectLeaders, key 43).
//!
//! A preferred election gives each partition back to its preferred replica (the first of its
//! replica list), e.g. after a restarted broker has caught up and leadership should spread
//! again; an unclean election makes any live replica the leader of a partition that has no
//! in-sync replica left, accepting that records the old leader acknowledged may be lost.
//!
//! The request goes to any broker, which forwards it to the active controller (KRaft). A
//! failure of the whole request that may pass (connection lost, NOT_CONTROLLER, a timeout) is
//! retried with backoff until the admin's timeout; errors about one partition are that
//! partition's result and are not retried.

use std::collections::HashMap;
use std::time::Instant;

use klamm_protocol::api::elect_leaders::{
    ElectLeadersRequest, ElectLeadersTopic, ELECTION_PREFERRED, ELECTION_UNCLEAN,
};
use tracing::Instrument;

use crate::admin::{broker_error, missing, user_error, Admin};
use crate::admin_offsets::PartitionResults;
use crate::client::ConnectionKind;
use crate::error::Error;

/// Which leader [`Admin::elect_leaders`] elects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionType {
    /// The preferred replica (the first of the partition's replicas), if it is in sync. A
    /// partition it already leads fails with ELECTION_NOT_NEEDED; one whose preferred replica
    /// is down or out of sync with PREFERRED_LEADER_NOT_AVAILABLE.
    Preferred,
    /// Any live replica, but only for a partition without an in-sync replica to lead it (one
    /// with a leader fails with ELECTION_NOT_NEEDED). Records the lost leader acknowledged and
    /// the new one never got are truncated away: use it to recover availability, knowingly.
    /// Needs ElectLeaders v1 (Kafka 2.4+).
    Unclean,
}

impl ElectionType {
    fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => ELECTION_PREFERRED,
            ElectionType::Unclean => ELECTION_UNCLEAN,
        }
    }
}

impl Admin {
    /// Elects leaders: for the `(topic, partition)`s given, or, with `None`, for every
    /// partition of the cluster that needs one.
    ///
    /// Returns one result per partition: in the order given (a partition the broker did not
    /// mention gets an error), or, with `None`, for each partition the controller reports. A
    /// partition whose election happened is `Ok(())`. Typical errors of one partition:
    /// ELECTION_NOT_NEEDED (it already has the leader asked for; often not a failure for the
    /// caller), PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
    /// UNKNOWN_TOPIC_OR_PARTITION; see [`Error::code`]. An error of the whole request (after
    /// retries, or a top-level error such as CLUSTER_AUTHORIZATION_FAILED) is every
    /// partition's result; with `None` it is the one result, keyed by an empty topic and
    /// partition -1.
    ///
    /// ```no_run
    /// use klamm::protocol::ErrorCode;
    /// use klamm::ElectionType;
    ///
    /// # async fn example(admin: klamm::Admin) {
    /// let results = admin.elect_leaders(ElectionType::Preferred, Some(&[("orders", 0), ("orders", 1)])).await;
    /// for ((topic, partition), result) in results {
    ///     match result {
    ///         Ok(()) => println!("{topic}-{partition}: preferred replica elected"),
    ///         Err(e) if e.code() == Some(ErrorCode::ELECTION_NOT_NEEDED) => {}
    ///         Err(e) => eprintln!("{topic}-{partition}: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(&str, i32)]>,
    ) -> PartitionResults<()> {
        let span = tracing::debug_span!(
            "klamm.admin.elect_leaders",
            election = ?election,
            partitions = partitions.map_or(-1, |p| p.len() as i64)
        );
        async {
            if partitions.is_some_and(<[_]>::is_empty) {
                return Vec::new();
            }
            let deadline = Instant::now() + self.timeout;
            let request_timeout = self.client.config().connection.request_timeout;
            let topic_partitions = partitions.map(group_by_topic);
            let sent = self
                .retrying(deadline, || {
                    let topic_partitions = topic_partitions.clone();
                    async move {
                        let conn = self.client.any_connection(ConnectionKind::Control).await?;
                        let version = conn.version_for::<ElectLeadersRequest>()?;
                        if election == ElectionType::Unclean && version < 1 {
                            return Err(user_error("unclean elections need ElectLeaders v1 (Kafka 2.4+)"));
                        }
                        let left = deadline.saturating_duration_since(Instant::now()).min(request_timeout);
                        let request = ElectLeadersRequest {
                            election_type: election.wire(),
                            topic_partitions,
                            timeout_ms: left.as_millis().min(i32::MAX as u128) as i32,
                            ..Default::default()
                        };
                        let response = conn.send_at(version, &request).await?;
                        // A top-level error (v1+) is the whole request's: retried if it may pass.
                        if let Some(e) = broker_error(response.error_code, "the election request", None) {
                            return Err(e);
                        }
                        Ok(response.replica_election_results)
                    }
                })
                .await;
            let reported = match sent {
                Ok(reported) => reported,
                Err(e) => {
                    return match partitions {
                        Some(asked) => {
                            asked.iter().map(|(t, p)| (((*t).to_owned(), *p), Err(e.clone()))).collect()
                        }
                        None => vec![((String::new(), -1), Err(e))],
                    };
                }
            };
            let mut results: Vec<((String, i32), Result<(), Error>)> = Vec::new();
            for topic in reported {
                for p in topic.partition_result {
                    let what = format!("partition {}-{}", topic.topic, p.partition_id);
                    let result = match broker_error(p.error_code, &what, p.error_message) {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                    results.push(((topic.topic.clone(), p.partition_id), result));
                }
            }
            let Some(asked) = partitions else { return results };
            // A partition named twice by the caller went out once; both entries get its answer.
            let by_partition: HashMap<(String, i32), Result<(), Error>> = results.into_iter().collect();
            asked
                .iter()
                .map(|(t, p)| {
                    let key = ((*t).to_owned(), *p);
                    let result = by_partition
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| Err(missing(&format!("partition {t}-{p}"))));
                    (key, result)
                })
                .collect()
        }
        .instrument(span)
        .await
    }
}

/// The request's topic list: each topic once, its partitions in the order given, without
/// repeats (the controller refuses a partition named twice).
fn group_by_topic(partitions: &[(&str, i32)]) -> Vec<ElectLeadersTopic> {
    let mut topics: Vec<ElectLeadersTopic> = Vec::new();
    for (topic, partition) in partitions {
        let entry = match topics.iter_mut().position(|t| t.topic == *topic) {
            Some(i) => &mut topics[i],
            None => {
                topics.push(ElectLeadersTopic { topic: (*topic).to_owned(), ..Default::default() });
                topics.last_mut().expect("just pushed")
            }
        };
        if !entry.partitions.contains(partition) {
            entry.partitions.push(*partition);
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_grouped_by_topic_once_each() {
        let topics = group_by_topic(&[("a", 1), ("b", 0), ("a", 0), ("a", 1)]);
        assert_eq!(topics.len(), 2);
        assert_eq!((topics[0].topic.as_str(), topics[0].partitions.clone()), ("a", vec![1, 0]));
        assert_eq!((topics[1].topic.as_str(), topics[1].partitions.clone()), ("b", vec![0]));
    }

    #[test]
    fn election_types_on_the_wire() {
        assert_eq!(ElectionType::Preferred.wire(), 0);
        assert_eq!(ElectionType::Unclean.wire(), 1);
    }
}
