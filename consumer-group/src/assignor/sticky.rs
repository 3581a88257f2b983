//! `cooperative-sticky`: a balanced assignment that moves as few partitions as it can, handed
//! out cooperatively.
//!
//! The rules, shared with the Java client's `CooperativeStickyAssignor` and librdkafka's
//! `cooperative-sticky` (the algorithm below is ours; the outcome obeys the same rules):
//!
//! 1. **Ownership.** Each member reports the partitions it owns and the generation it got them
//!    in. A partition claimed by several members stays with the claim of the highest
//!    generation; two claims at the same highest generation cancel out (that member set is
//!    inconsistent, so neither keeps it). A claim on a partition that no longer exists, or of
//!    a topic the member no longer subscribes to, is void.
//! 2. **Balance.** When every member subscribes to the same topics, each gets `⌊P/N⌋` or
//!    `⌈P/N⌉` partitions. Otherwise no partition could move from one member to another member
//!    that subscribes to its topic and has at least two fewer partitions.
//! 3. **Stickiness.** Members keep what they own, up to their share; only the excess moves.
//! 4. **Cooperation.** A partition that moves from one member to another is left out of this
//!    round's assignment: its owner sees it missing, revokes it and rejoins, and the next
//!    rebalance (where nobody owns it) gives it to its new member. So no partition is ever
//!    owned by two members at once, and members keep consuming what stays theirs. With equal
//!    subscriptions that second rebalance settles the group; with unequal ones the leader
//!    recomputes greedily and may still move a partition in it, settling one round later.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use super::{
    empty_assignment, member_order, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
    TopicPartition,
};

/// The `cooperative-sticky` assignor (cooperative; the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeSticky;

impl Assignor for CooperativeSticky {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    /// The generation as a 4-byte big-endian integer, as the Java client writes it. Members
    /// that send subscription v2 or later also carry it in the subscription itself, which is
    /// what newer leaders read.
    fn user_data(&self, generation: Option<i32>) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&generation.unwrap_or(-1).to_be_bytes()))
    }

    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[MemberSubscription]) -> GroupAssignment {
        let problem = Problem::new(partitions, members);
        let mut plan = problem.target();
        problem.withhold_transfers(&mut plan);
        problem.into_assignment(members, plan)
    }
}

/// The generation in a cooperative-sticky user data blob (4 bytes, big-endian), if it is one:
/// how members that send a subscription older than v2 report it.
pub(crate) fn generation_from_user_data(user_data: &[u8]) -> Option<i32> {
    <[u8; 4]>::try_from(user_data).ok().map(i32::from_be_bytes)
}

/// The assignment problem with partitions numbered densely: topic `t`'s partition `p` is
/// `first[t] + p`, topics sorted by name.
struct Problem<'a> {
    members: &'a [MemberSubscription],
    /// Member indexes in member order.
    order: Vec<usize>,
    /// `rank[member]`: its position in `order`, the tie-break everywhere.
    rank: Vec<usize>,
    topics: Vec<(Arc<str>, u32)>,
    first: Vec<usize>,
    total: usize,
    /// Per topic: the members subscribed to it, in member order.
    takers: Vec<Vec<usize>>,
    /// Per member: the topics it subscribes to that exist.
    member_topics: Vec<Vec<usize>>,
    /// Per partition: the member whose ownership claim stands.
    owner: Vec<Option<usize>>,
    /// Per partition: every member that claims it, valid or not.
    claimed_by: Vec<Vec<usize>>,
}

impl<'a> Problem<'a> {
    fn new(partitions: &BTreeMap<String, u32>, members: &'a [MemberSubscription]) -> Self {
        let order = member_order(members);
        let mut rank = vec![0; members.len()];
        for (r, &m) in order.iter().enumerate() {
            rank[m] = r;
        }
        let wanted: HashSet<&str> =
            members.iter().flat_map(|m| m.topics.iter().map(String::as_str)).collect();
        let topics: Vec<(Arc<str>, u32)> = partitions
            .iter()
            .filter(|(t, &n)| n > 0 && wanted.contains(t.as_str()))
            .map(|(t, &n)| (Arc::from(t.as_str()), n))
            .collect();
        let mut first = Vec::with_capacity(topics.len());
        let mut total = 0usize;
        for (_, n) in &topics {
            first.push(total);
            total += *n as usize;
        }
        let topic_index = |name: &str| topics.binary_search_by(|(t, _)| (**t).cmp(name)).ok();
        let mut takers = vec![Vec::new(); topics.len()];
        let mut member_topics = vec![Vec::new(); members.len()];
        for &m in &order {
            let mut mine: Vec<usize> = members[m].topics.iter().filter_map(|t| topic_index(t)).collect();
            mine.sort_unstable();
            mine.dedup();
            for &t in &mine {
                takers[t].push(m);
            }
            member_topics[m] = mine;
        }

        // Ownership: the highest generation's claim stands; a tie at the top voids it.
        let mut best: Vec<Option<(i32, usize, bool)>> = vec![None; total];
        let mut claimed_by = vec![Vec::new(); total];
        for (m, member) in members.iter().enumerate() {
            // Members older than subscription v2 report their generation in the user data.
            let from_user_data = member.user_data.as_deref().and_then(generation_from_user_data);
            let generation = member.generation.or(from_user_data).unwrap_or(-1);
            for tp in &member.owned {
                let Some(t) = topic_index(&tp.topic) else { continue };
                let Ok(p) = usize::try_from(tp.partition) else { continue };
                if p >= topics[t].1 as usize {
                    continue;
                }
                let id = first[t] + p;
                if claimed_by[id].contains(&m) {
                    continue;
                }
                claimed_by[id].push(m);
                if member_topics[m].binary_search(&t).is_err() {
                    continue;
                }
                best[id] = match best[id] {
                    None => Some((generation, m, false)),
                    Some((g, _, _)) if generation > g => Some((generation, m, false)),
                    Some((g, holder, _)) if generation == g => Some((g, holder, true)),
                    other => other,
                };
            }
        }
        let owner = best.iter().map(|b| b.and_then(|(_, m, tie)| (!tie).then_some(m))).collect();
        Problem { members, order, rank, topics, first, total, takers, member_topics, owner, claimed_by }
    }

    fn topic_of(&self, id: usize) -> usize {
        self.first.partition_point(|&f| f <= id) - 1
    }

    /// The balanced, sticky assignment, ignoring the cooperative hand-over.
    fn target(&self) -> Vec<Vec<usize>> {
        if self.members.is_empty() {
            return Vec::new();
        }
        let same = self.member_topics.iter().all(|t| *t == self.member_topics[self.order[0]]);
        if same {
            self.equal_subscriptions()
        } else {
            self.general()
        }
    }

    /// Every member subscribes to the same topics: shares of ⌊P/N⌋ and ⌈P/N⌉.
    fn equal_subscriptions(&self) -> Vec<Vec<usize>> {
        let n = self.members.len();
        let mut plan: Vec<Vec<usize>> = vec![Vec::new(); n];
        if self.member_topics[self.order[0]].is_empty() {
            return plan;
        }
        let min = self.total / n;
        let extra = self.total % n;
        // How many members may still hold min + 1.
        let mut big_slots = extra;
        let mut taken = vec![false; self.total];
        let mut owned: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (id, owner) in self.owner.iter().enumerate() {
            if let Some(m) = owner {
                owned[*m].push(id);
            }
        }
        for &m in &self.order {
            let keep = if owned[m].len() > min && big_slots > 0 {
                big_slots -= 1;
                min + 1
            } else {
                owned[m].len().min(min)
            };
            for &id in &owned[m][..keep] {
                taken[id] = true;
                plan[m].push(id);
            }
        }
        let mut free = (0..self.total).filter(|&id| !taken[id]);
        // Up to the minimum, one partition per member per pass so topics spread out.
        loop {
            let mut gave = false;
            for &m in &self.order {
                if plan[m].len() < min {
                    if let Some(id) = free.next() {
                        plan[m].push(id);
                        gave = true;
                    }
                }
            }
            if !gave {
                break;
            }
        }
        // What is left is exactly the unused big slots: one each to members at the minimum.
        for &m in &self.order {
            if plan[m].len() == min && big_slots > 0 {
                if let Some(id) = free.next() {
                    plan[m].push(id);
                    big_slots -= 1;
                }
            }
        }
        debug_assert!(free.next().is_none(), "every partition is placed");
        plan
    }

    /// Members subscribe to different topics: keep what is owned, place the rest on the
    /// least loaded member that can take it, then move partitions from fuller to emptier
    /// members while that narrows a gap of two or more.
    fn general(&self) -> Vec<Vec<usize>> {
        let n = self.members.len();
        let mut plan: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut unowned = Vec::new();
        for id in 0..self.total {
            match self.owner[id] {
                Some(m) => plan[m].push(id),
                None => unowned.push(id),
            }
        }
        let reach: Vec<usize> = self
            .member_topics
            .iter()
            .map(|topics| topics.iter().map(|&t| self.topics[t].1 as usize).sum())
            .collect();
        // Partitions with the fewest possible members first: they have the least choice.
        unowned.sort_by_key(|&id| (self.takers[self.topic_of(id)].len(), id));
        for id in unowned {
            let takers = &self.takers[self.topic_of(id)];
            // Ties go to the member with the fewest partitions it could take at all: the
            // others have more ways to be filled later.
            if let Some(&m) = takers.iter().min_by_key(|&&m| (plan[m].len(), reach[m], self.rank[m])) {
                plan[m].push(id);
            }
        }
        while let Some((from, index, to)) = self.find_move(&plan) {
            let id = plan[from].swap_remove(index);
            plan[to].push(id);
        }
        plan
    }

    /// A partition that can go from a member to one with at least two fewer partitions.
    /// Partitions placed in this round move before any that a member owned (so a second
    /// round after a cooperative hand-over does not move owned partitions again); within
    /// that, the fullest members give first.
    fn find_move(&self, plan: &[Vec<usize>]) -> Option<(usize, usize, usize)> {
        let mut fullest: Vec<usize> = self.order.clone();
        fullest.sort_by_key(|&m| (std::cmp::Reverse(plan[m].len()), self.rank[m]));
        for owned_pass in [false, true] {
            for &from in &fullest {
                let size = plan[from].len();
                if size < 2 {
                    break;
                }
                for (index, &id) in plan[from].iter().enumerate() {
                    if (self.owner[id] == Some(from)) != owned_pass {
                        continue;
                    }
                    let takers = &self.takers[self.topic_of(id)];
                    let best = takers.iter().copied().min_by_key(|&m| (plan[m].len(), self.rank[m]));
                    if let Some(to) = best {
                        if plan[to].len() + 2 <= size {
                            return Some((from, index, to));
                        }
                    }
                }
            }
        }
        None
    }

    /// Leaves out of this round every partition that changes hands while some member still
    /// claims it: the claimant revokes it first (it is not in its new assignment), and a later
    /// rebalance hands it over. A member keeps, without a pause, what it owns by a standing
    /// claim; a stale claim by another member (older generation) is that member's to drop.
    fn withhold_transfers(&self, plan: &mut [Vec<usize>]) {
        for (m, ids) in plan.iter_mut().enumerate() {
            ids.retain(|&id| self.owner[id] == Some(m) || self.claimed_by[id].is_empty());
        }
    }

    fn into_assignment(self, members: &[MemberSubscription], plan: Vec<Vec<usize>>) -> GroupAssignment {
        let mut out = empty_assignment(members);
        for (m, mut ids) in plan.into_iter().enumerate() {
            ids.sort_unstable();
            let list = out.get_mut(&members[m].member_id).expect("every member is in the map");
            list.extend(ids.into_iter().map(|id| {
                let t = self.topic_of(id);
                TopicPartition::new(Arc::clone(&self.topics[t].0), (id - self.first[t]) as i32)
            }));
        }
        out
    }
}
