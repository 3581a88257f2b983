//! The consumer group admin operations: [`Admin::list_consumer_groups`] (ListGroups to every
//! broker, merged) and [`Admin::describe_consumer_groups`] (FindCoordinator, then DescribeGroups
//! to each coordinator).
//!
//! DescribeGroups describes classic-protocol groups. Members of groups whose protocol type is
//! `consumer` carry a [`ConsumerProtocolSubscription`] and a [`ConsumerProtocolAssignment`] in
//! their metadata and assignment bytes; those are decoded here, and bytes that do not decode
//! fail that group with [`ErrorKind::Decode`](crate::ErrorKind::Decode).
//!
//! Coordinator errors (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
//! COORDINATOR_LOAD_IN_PROGRESS) and lost connections send the group back to FindCoordinator,
//! at most [`COORDINATOR_ATTEMPTS`] times and never past the operation timeout.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use klamm_protocol::api::consumer_protocol::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use klamm_protocol::api::describe_groups::{DescribeGroupsRequest, DescribedGroup};
use klamm_protocol::api::list_groups::ListGroupsRequest;
use tracing::Instrument;

use crate::admin::{broker_error, Admin};
use crate::client::{ConnectionKind, CoordinatorKey};
use crate::error::{Error, ErrorKind};

/// How many times a group of [`Admin::describe_consumer_groups`] is tried.
pub const COORDINATOR_ATTEMPTS: u32 = 5;

/// The protocol type of groups formed by Kafka consumers.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// One group as [`Admin::list_consumer_groups`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// The protocol type: `consumer`, or empty for a group that only has committed offsets.
    pub protocol_type: String,
    /// The group state (`Stable`, `Empty`, ...), from brokers with ListGroups v4+.
    pub state: Option<String>,
    /// The group type (`classic`, `consumer`), from brokers with ListGroups v5+.
    pub group_type: Option<String>,
    /// The node id of the broker coordinating it.
    pub coordinator: i32,
}

/// A consumer group as [`Admin::describe_consumer_groups`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The state: `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, or `Dead`
    /// (which is also what a broker says about a group it does not know).
    pub state: String,
    /// The protocol type (`consumer` for Kafka consumers; empty for a group without members).
    pub protocol_type: String,
    /// The protocol the group chose: for consumers, the assignor (`range`, `cooperative-sticky`).
    pub protocol: String,
    /// The node id of the coordinator.
    pub coordinator: i32,
    /// The members.
    pub members: Vec<MemberDescription>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static membership id (`group.instance.id`), if any (DescribeGroups v4+).
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The host it joined from.
    pub client_host: String,
    /// Its subscription, decoded when the protocol type is `consumer` and the group is stable.
    pub subscription: Option<ConsumerProtocolSubscription>,
    /// Its assignment, decoded when the protocol type is `consumer` and it has one.
    pub assignment: Option<ConsumerProtocolAssignment>,
    /// The raw metadata bytes, for groups of other protocol types.
    pub metadata: Bytes,
    /// The raw assignment bytes, for groups of other protocol types.
    pub assignment_bytes: Bytes,
}

impl MemberDescription {
    /// The partitions assigned to the member, as `(topic, partition)`, sorted.
    pub fn assigned_partitions(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .assignment
            .iter()
            .flat_map(|a| &a.assigned_partitions)
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.clone(), *p)))
            .collect();
        out.sort();
        out
    }
}

impl Admin {
    /// Lists the consumer groups of the cluster: asks every broker for the groups it
    /// coordinates and merges the answers, sorted by group id. Includes groups of protocol
    /// type `consumer` and groups with only committed offsets (empty protocol type), as the
    /// Java admin does.
    ///
    /// Fails when a broker cannot be asked (after retries), since the list would be missing
    /// that broker's groups.
    ///
    /// ```no_run
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// for group in admin.list_consumer_groups().await? {
    ///     println!("{} ({:?})", group.group_id, group.state);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_consumer_groups(&self) -> Result<Vec<GroupListing>, Error> {
        let span = tracing::debug_span!("klamm.admin.list_consumer_groups");
        async {
            let deadline = Instant::now() + self.timeout;
            let answers = self
                .ask_every_broker(deadline, |node| async move {
                    let response = self
                        .client
                        .send_to(node, ConnectionKind::Control, &ListGroupsRequest::default())
                        .await?;
                    match broker_error(response.error_code, &format!("ListGroups on broker {node}"), None) {
                        Some(e) => Err(e),
                        None => Ok(response),
                    }
                })
                .await?;
            let mut groups = BTreeMap::new();
            for (node, response) in answers {
                for g in response.groups {
                    if g.protocol_type != CONSUMER_PROTOCOL_TYPE && !g.protocol_type.is_empty() {
                        continue;
                    }
                    let listing = GroupListing {
                        state: Some(g.group_state).filter(|s| !s.is_empty()),
                        group_type: Some(g.group_type).filter(|s| !s.is_empty()),
                        group_id: g.group_id,
                        protocol_type: g.protocol_type,
                        coordinator: node,
                    };
                    groups.insert(listing.group_id.clone(), listing);
                }
            }
            Ok(groups.into_values().collect())
        }
        .instrument(span)
        .await
    }

    /// Describes groups: state, chosen protocol, members with their subscriptions and
    /// assignments. One result per group in the order given.
    ///
    /// ```no_run
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// let described = admin.describe_consumer_groups(&["billing"]).await;
    /// let group = described[0].1.as_ref().map_err(Clone::clone)?;
    /// for member in &group.members {
    ///     println!("{} owns {:?}", member.client_id, member.assigned_partitions());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> Vec<(String, Result<GroupDescription, Error>)> {
        let span = tracing::debug_span!("klamm.admin.describe_consumer_groups", groups = groups.len());
        async {
            let deadline = Instant::now() + self.timeout;
            self.by_coordinator(CoordinatorKey::Group, groups, "group", deadline, |node, ids| async move {
                let request = DescribeGroupsRequest { groups: ids, ..Default::default() };
                let response = self.client.send_to(node, ConnectionKind::Control, &request).await?;
                Ok(response
                    .groups
                    .into_iter()
                    .map(|described| (described.group_id.clone(), group_description(described, node)))
                    .collect())
            })
            .await
        }
        .instrument(span)
        .await
    }
}

/// A DescribeGroups entry as a description, decoding consumer subscriptions and assignments.
fn group_description(group: DescribedGroup, coordinator: i32) -> Result<GroupDescription, Error> {
    if let Some(e) = broker_error(group.error_code, &format!("group {:?}", group.group_id), None) {
        return Err(e);
    }
    let consumer = group.protocol_type == CONSUMER_PROTOCOL_TYPE;
    let mut members = Vec::with_capacity(group.members.len());
    for m in group.members {
        let decode_error =
            |e| Error::with_source(ErrorKind::Decode(e), None, MemberBytes(m.member_id.clone()));
        let subscription = if consumer && !m.member_metadata.is_empty() {
            Some(ConsumerProtocolSubscription::from_bytes(m.member_metadata.clone()).map_err(decode_error)?)
        } else {
            None
        };
        let assignment = if consumer && !m.member_assignment.is_empty() {
            Some(ConsumerProtocolAssignment::from_bytes(m.member_assignment.clone()).map_err(decode_error)?)
        } else {
            None
        };
        members.push(MemberDescription {
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            subscription,
            assignment,
            metadata: m.member_metadata,
            assignment_bytes: m.member_assignment,
        });
    }
    Ok(GroupDescription {
        group_id: group.group_id,
        state: group.group_state,
        protocol_type: group.protocol_type,
        protocol: group.protocol_data,
        coordinator,
        members,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("the consumer protocol bytes of member {0:?}")]
struct MemberBytes(String);

#[cfg(test)]
mod tests {
    use klamm_protocol::api::consumer_protocol::TopicPartition;
    use klamm_protocol::api::describe_groups::DescribedGroupMember;

    use super::*;

    fn member(metadata: Bytes, assignment: Bytes) -> DescribedGroupMember {
        DescribedGroupMember {
            member_id: "m-1".into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            member_metadata: metadata,
            member_assignment: assignment,
            ..Default::default()
        }
    }

    #[test]
    fn consumer_members_are_decoded() {
        let subscription = ConsumerProtocolSubscription { topics: vec!["t".into()], ..Default::default() };
        let assignment = ConsumerProtocolAssignment {
            assigned_partitions: vec![TopicPartition {
                topic: "t".into(),
                partitions: vec![1, 0],
                ..Default::default()
            }],
            ..Default::default()
        };
        let group = DescribedGroup {
            group_id: "g".into(),
            group_state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol_data: "range".into(),
            members: vec![member(subscription.to_bytes(1).unwrap(), assignment.to_bytes(0).unwrap())],
            ..Default::default()
        };
        let described = group_description(group, 3).unwrap();
        assert_eq!(described.coordinator, 3);
        assert_eq!(described.protocol, "range");
        let m = &described.members[0];
        assert_eq!(m.subscription.as_ref().unwrap().topics, ["t"]);
        assert_eq!(m.assigned_partitions(), [("t".to_owned(), 0), ("t".to_owned(), 1)]);
    }

    #[test]
    fn bad_member_bytes_fail_the_group_and_other_protocols_stay_raw() {
        let group = DescribedGroup {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            members: vec![member(Bytes::from_static(&[0]), Bytes::new())],
            ..Default::default()
        };
        let e = group_description(group, 1).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Decode(_)), "{e:?}");
        assert!(e.to_string().contains("m-1"), "{e}");

        let group = DescribedGroup {
            group_id: "g".into(),
            protocol_type: "connect".into(),
            members: vec![member(Bytes::from_static(&[0]), Bytes::from_static(&[1, 2]))],
            ..Default::default()
        };
        let described = group_description(group, 1).unwrap();
        assert!(described.members[0].assignment.is_none());
        assert_eq!(&described.members[0].assignment_bytes[..], [1, 2]);

        let group = DescribedGroup { error_code: 16, group_id: "g".into(), ..Default::default() };
        assert!(group_description(group, 1).unwrap_err().is_retriable());
    }
}
