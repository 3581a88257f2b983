//! `roundrobin`: every subscribed partition, sorted by topic then partition, dealt to the
//! members in turn (member order, wrapping around); a member not subscribed to a partition's
//! topic is passed over for it. Same result as the Java client's `RoundRobinAssignor` and
//! librdkafka's `roundrobin`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    empty_assignment, member_order, subscribed_topics, Assignor, GroupAssignment, MemberSubscription,
    RebalanceProtocol, TopicPartition,
};

/// The `roundrobin` assignor (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

impl Assignor for RoundRobin {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[MemberSubscription]) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let order = member_order(members);
        if order.is_empty() {
            return out;
        }
        let mut turn = 0usize;
        for (topic, count) in subscribed_topics(partitions, members) {
            let name: Arc<str> = Arc::from(topic);
            for p in 0..count {
                // Some member subscribes to the topic (subscribed_topics), so this ends
                // within one lap.
                while !members[order[turn % order.len()]].topics.iter().any(|t| t == topic) {
                    turn += 1;
                }
                let member = &members[order[turn % order.len()]].member_id;
                out.get_mut(member)
                    .expect("every member is in the map")
                    .push(TopicPartition::new(Arc::clone(&name), p as i32));
                turn += 1;
            }
        }
        out
    }
}
