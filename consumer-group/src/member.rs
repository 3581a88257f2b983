//! [`Member`]: the membership state machine of a `GroupConsumer`, classic or `consumer`
//! protocol (`group.protocol`), behind the calls the consumer and its commits make of either.
//!
//! Each machine has its own driver task ([`coordinator`](crate::coordinator) for the classic
//! protocol, [`consumer_driver`](crate::consumer_driver) for KIP-848), which reaches its own
//! machine through [`Member::classic`] and [`Member::consumer`]. What the application sees,
//! the [`GroupEvent`]s, and the rules of commits are the same for both.

use std::time::Instant;

use klamm::protocol::ErrorCode;

use crate::assignor::TopicPartition;
use crate::consumer_membership::{ConsumerMembership, Subscription};
use crate::membership::{CommitRefused, GroupEvent, MemberState, Membership};

/// One of the two membership machines.
#[derive(Debug)]
pub(crate) enum Member {
    /// JoinGroup / SyncGroup / Heartbeat.
    Classic(Membership),
    /// ConsumerGroupHeartbeat (KIP-848).
    Consumer(ConsumerMembership),
}

impl Member {
    pub(crate) fn classic(&mut self) -> Option<&mut Membership> {
        match self {
            Member::Classic(m) => Some(m),
            Member::Consumer(_) => None,
        }
    }

    pub(crate) fn consumer(&mut self) -> Option<&mut ConsumerMembership> {
        match self {
            Member::Consumer(m) => Some(m),
            Member::Classic(_) => None,
        }
    }

    pub(crate) fn state(&self) -> MemberState {
        match self {
            Member::Classic(m) => m.state(),
            Member::Consumer(m) => m.state(),
        }
    }

    pub(crate) fn member_id(&self) -> &str {
        match self {
            Member::Classic(m) => m.member_id(),
            Member::Consumer(m) => m.member_id(),
        }
    }

    /// The classic generation, or the member epoch: -1 (classic) or 0 (consumer) when not in
    /// the group.
    pub(crate) fn generation(&self) -> i32 {
        match self {
            Member::Classic(m) => m.generation(),
            Member::Consumer(m) => m.member_epoch(),
        }
    }

    /// Whether the member is in a generation (or has a member epoch) to commit in.
    pub(crate) fn in_group(&self) -> bool {
        match self {
            Member::Classic(m) => m.generation() >= 0,
            Member::Consumer(m) => m.member_epoch() > 0,
        }
    }

    /// What a commit made in `generation` carries on the wire: that generation for the classic
    /// protocol, the member's current epoch for the `consumer` protocol (its epoch grows with
    /// every reconciliation while the partitions it keeps stay its own).
    pub(crate) fn commit_generation(&self, generation: i32) -> i32 {
        match self {
            Member::Classic(_) => generation,
            Member::Consumer(m) => m.member_epoch(),
        }
    }

    pub(crate) fn coordinator(&self) -> Option<i32> {
        match self {
            Member::Classic(m) => m.coordinator(),
            Member::Consumer(m) => m.coordinator(),
        }
    }

    pub(crate) fn coordinator_unknown(&mut self, now: Instant) {
        match self {
            Member::Classic(m) => m.coordinator_unknown(now),
            Member::Consumer(m) => m.coordinator_unknown(now),
        }
    }

    pub(crate) fn subscribe(&mut self, topics: Vec<String>, now: Instant) {
        match self {
            Member::Classic(m) => m.subscribe(topics, now),
            Member::Consumer(m) => m.subscribe(Subscription::Topics(topics.into_iter().collect()), now),
        }
    }

    /// The topics subscribed by name (empty for a `consumer` protocol pattern, which the
    /// broker matches).
    pub(crate) fn subscribed_topics(&self) -> std::collections::BTreeSet<String> {
        match self {
            Member::Classic(m) => m.subscription().clone(),
            Member::Consumer(m) => match m.subscription() {
                Subscription::Topics(topics) => topics.clone(),
                Subscription::Pattern(_) => Default::default(),
            },
        }
    }

    /// Whether the member subscribed to anything it can join with.
    pub(crate) fn has_subscription(&self) -> bool {
        match self {
            Member::Classic(m) => !m.subscription().is_empty(),
            Member::Consumer(m) => match m.subscription() {
                Subscription::Topics(topics) => !topics.is_empty(),
                Subscription::Pattern(_) => true,
            },
        }
    }

    pub(crate) fn poll(&mut self, now: Instant) {
        match self {
            Member::Classic(m) => m.poll(now),
            Member::Consumer(m) => m.poll(now),
        }
    }

    /// Whether events wait for [`Member::poll_event`].
    pub(crate) fn has_events(&self) -> bool {
        match self {
            Member::Classic(m) => m.has_events(),
            Member::Consumer(m) => m.has_events(),
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<GroupEvent> {
        match self {
            Member::Classic(m) => m.poll_event(),
            Member::Consumer(m) => m.poll_event(),
        }
    }

    pub(crate) fn revocation_done(&mut self, now: Instant, partitions: &[TopicPartition]) {
        match self {
            Member::Classic(m) => m.revocation_done(now, partitions),
            Member::Consumer(m) => m.revocation_done(now, partitions),
        }
    }

    pub(crate) fn leave(&mut self, now: Instant) {
        match self {
            Member::Classic(m) => m.leave(now),
            Member::Consumer(m) => m.leave(now),
        }
    }

    pub(crate) fn check_commit<'a>(
        &self,
        generation: i32,
        member_id: &str,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<(), CommitRefused> {
        match self {
            Member::Classic(m) => m.check_commit(generation, member_id, partitions),
            Member::Consumer(m) => m.check_commit(generation, member_id, partitions),
        }
    }

    pub(crate) fn handle_commit_error(
        &mut self,
        now: Instant,
        generation: i32,
        member_id: &str,
        code: ErrorCode,
    ) {
        match self {
            Member::Classic(m) => m.handle_commit_error(now, generation, member_id, code),
            Member::Consumer(m) => m.handle_commit_error(now, generation, member_id, code),
        }
    }
}
