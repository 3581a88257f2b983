//! Partition assignors: how the group leader splits the subscribed partitions among members.
//!
//! In the classic group protocol the broker only relays: every member sends the assignors it
//! supports (by name, in order of preference) with its subscription in JoinGroup, the broker
//! picks one name that every member supports, and the member it elects leader runs that
//! assignor over everyone's subscription and hands the result back in SyncGroup. So a Klamm
//! leader must compute what a Java or librdkafka leader would accept, and the other way
//! round: the names, the subscription layout and the user data are the contract.
//!
//! | name | [`RebalanceProtocol`] | what it does |
//! |---|---|---|
//! | `cooperative-sticky` | cooperative | balanced, keeps partitions where they are; moves happen in two rebalances |
//! | `range` | eager | per topic, consecutive ranges in member order |
//! | `roundrobin` | eager | all partitions dealt out one by one in member order |
//!
//! Member order, as in the Java client: members with a `group.instance.id` first, sorted by
//! it, then the others by member id.
//!
//! ```
//! use std::collections::BTreeMap;
//! use klamm_group::assignor::{Assignor, CooperativeSticky, MemberSubscription};
//!
//! let partitions = BTreeMap::from([("orders".to_string(), 4)]);
//! let members = vec![
//!     MemberSubscription::new("a", ["orders"]),
//!     MemberSubscription::new("b", ["orders"]),
//! ];
//! let plan = CooperativeSticky.assign(&partitions, &members);
//! assert_eq!(plan["a"].len(), 2);
//! assert_eq!(plan["b"].len(), 2);
//! ```

mod range;
mod roundrobin;
mod sticky;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use bytes::Bytes;
pub use klamm::TopicPartition;

pub use self::range::Range;
pub use self::roundrobin::RoundRobin;
pub use self::sticky::CooperativeSticky;

/// How members give up partitions during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RebalanceProtocol {
    /// Every member revokes all its partitions before it rejoins, and gets a fresh set.
    Eager,
    /// Members keep consuming the partitions they keep; a partition that moves is first
    /// revoked by its owner (which then rejoins), and assigned in the following rebalance.
    Cooperative,
}

/// What one member told the group when it joined: its subscription and what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` when it is a static member.
    pub group_instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owned when it joined (subscription v1+; empty for eager members).
    pub owned: Vec<TopicPartition>,
    /// The generation those partitions were assigned in (subscription v2+), when known.
    pub generation: Option<i32>,
    /// Its rack (subscription v3+).
    pub rack: Option<String>,
    /// The assignor's opaque data from the member.
    pub user_data: Option<Bytes>,
}

impl MemberSubscription {
    /// A member subscribing to `topics`, owning nothing.
    pub fn new<T: Into<String>>(member_id: impl Into<String>, topics: impl IntoIterator<Item = T>) -> Self {
        Self {
            member_id: member_id.into(),
            group_instance_id: None,
            topics: topics.into_iter().map(Into::into).collect(),
            owned: Vec::new(),
            generation: None,
            rack: None,
            user_data: None,
        }
    }

    /// Sets the partitions the member owns and the generation they come from.
    pub fn owning(mut self, owned: impl IntoIterator<Item = TopicPartition>, generation: i32) -> Self {
        self.owned = owned.into_iter().collect();
        self.generation = Some(generation);
        self
    }

    /// Sets the member's `group.instance.id`.
    pub fn instance(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
}

/// The leader's answer: every member's partitions, by member id. Every member of the input
/// appears, with an empty list when it gets nothing.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy.
///
/// Implement it for a custom strategy; its [`name`](Assignor::name) is what the group votes
/// on, so every member that lists it must implement the same thing.
pub trait Assignor: fmt::Debug + Send + Sync {
    /// The protocol name members vote on in JoinGroup.
    fn name(&self) -> &'static str;

    /// The rebalance protocol the strategy needs.
    fn protocol(&self) -> RebalanceProtocol;

    /// The user data this member puts in its subscription. `generation` is the generation of
    /// the member's current assignment, or `None` before its first.
    fn user_data(&self, generation: Option<i32>) -> Option<Bytes> {
        let _ = generation;
        None
    }

    /// Splits the partitions of `partitions` (topic name to partition count) among `members`.
    /// Topics a member subscribes to that are missing from `partitions` are skipped.
    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[MemberSubscription]) -> GroupAssignment;
}

/// The built-in assignor called `name`, if there is one.
pub fn by_name(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "cooperative-sticky" => Some(Box::new(CooperativeSticky)),
        "range" => Some(Box::new(Range)),
        "roundrobin" => Some(Box::new(RoundRobin)),
        _ => None,
    }
}

/// Indexes of `members` in the Java client's member order: static members first by
/// `group.instance.id`, then dynamic ones by member id.
fn member_order(members: &[MemberSubscription]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&members[a], &members[b]);
        match (&a.group_instance_id, &b.group_instance_id) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.member_id.cmp(&b.member_id),
        }
    });
    order
}

/// Every member with an empty assignment.
fn empty_assignment(members: &[MemberSubscription]) -> GroupAssignment {
    members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect()
}

/// The topics that some member subscribes to and that exist, sorted, with their counts.
fn subscribed_topics<'a>(
    partitions: &'a BTreeMap<String, u32>,
    members: &[MemberSubscription],
) -> Vec<(&'a str, u32)> {
    let wanted: BTreeSet<&str> = members.iter().flat_map(|m| m.topics.iter().map(String::as_str)).collect();
    partitions
        .iter()
        .filter(|(topic, _)| wanted.contains(topic.as_str()))
        .map(|(topic, &count)| (topic.as_str(), count))
        .collect()
}

/// For each topic, the members subscribed to it (indexes into `members`, in `order`).
fn subscribers<'a>(members: &'a [MemberSubscription], order: &[usize]) -> HashMap<&'a str, Vec<usize>> {
    let mut by_topic: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in order {
        let mut topics: Vec<&str> = members[i].topics.iter().map(String::as_str).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            by_topic.entry(topic).or_default().push(i);
        }
    }
    by_topic
}

#[cfg(test)]
mod tests;
