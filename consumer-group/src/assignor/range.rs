//! `range`: per topic, the partitions in consecutive ranges, one range per subscribed member
//! in member order; the first `partitions % members` members get one more. The Java client's
//! `RangeAssignor` and librdkafka's `range` compute the same thing (racks aside), so a group
//! led by any of them gives a member the same partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    empty_assignment, member_order, subscribed_topics, subscribers, Assignor, GroupAssignment,
    MemberSubscription, RebalanceProtocol, TopicPartition,
};

/// The `range` assignor (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range;

impl Assignor for Range {
    fn name(&self) -> &'static str {
        "range"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[MemberSubscription]) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let order = member_order(members);
        let by_topic = subscribers(members, &order);
        for (topic, count) in subscribed_topics(partitions, members) {
            let Some(takers) = by_topic.get(topic) else { continue };
            let name: Arc<str> = Arc::from(topic);
            let (each, extra) = (count as usize / takers.len(), count as usize % takers.len());
            let mut next = 0usize;
            for (rank, &member) in takers.iter().enumerate() {
                let len = each + usize::from(rank < extra);
                let list = out.get_mut(&members[member].member_id).expect("every member is in the map");
                list.extend((next..next + len).map(|p| TopicPartition::new(Arc::clone(&name), p as i32)));
                next += len;
            }
        }
        out
    }
}
