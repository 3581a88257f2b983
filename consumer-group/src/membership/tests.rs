//! The membership state machine played through joins, rebalances, coordinator moves, fenced
//! and unknown members, poll timeouts and fatal errors, with a fake clock and scripted
//! coordinator answers.

use std::time::{Duration, Instant};

use klamm::ErrorKind;
use klamm_protocol::api::join_group::JoinGroupResponseMember;
use klamm_protocol::Message as _;

use super::*;
use crate::assignor::{CooperativeSticky, Range};

const GROUP: &str = "g";

fn config(assignors: Vec<Arc<dyn Assignor>>) -> MembershipConfig {
    MembershipConfig {
        group_id: GROUP.to_string(),
        group_instance_id: None,
        session_timeout: Duration::from_secs(45),
        max_poll_interval: Duration::from_secs(300),
        heartbeat_interval: Duration::from_secs(3),
        retry_backoff: Duration::from_millis(100),
        assignors,
        rack: None,
    }
}

fn sticky() -> MembershipConfig {
    config(vec![Arc::new(CooperativeSticky)])
}

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn tps(topic: &str, ps: &[i32]) -> Vec<TopicPartition> {
    ps.iter().map(|&p| tp(topic, p)).collect()
}

fn assignment_bytes(partitions: &[TopicPartition]) -> Bytes {
    ConsumerProtocolAssignment { assigned_partitions: to_wire(partitions), ..Default::default() }
        .to_bytes(0)
        .unwrap()
}

fn join_ok(member: &str, leader: &str, generation: i32, protocol: &str) -> JoinGroupResponse {
    JoinGroupResponse {
        generation_id: generation,
        protocol_name: Some(protocol.to_string()),
        leader: leader.to_string(),
        member_id: member.to_string(),
        ..Default::default()
    }
}

fn sync_ok(partitions: &[TopicPartition]) -> SyncGroupResponse {
    SyncGroupResponse { assignment: assignment_bytes(partitions), ..Default::default() }
}

fn error_code(code: ErrorCode) -> Error {
    Error::from(ErrorKind::Broker(code))
}

fn timeout() -> Error {
    Error::from(ErrorKind::Timeout)
}

/// A membership with a clock, and helpers that expect the next action.
struct Harness {
    m: Membership,
    now: Instant,
}

impl Harness {
    fn new(config: MembershipConfig) -> Self {
        let now = Instant::now();
        Harness { m: Membership::new(config, now), now }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.m.handle_timeout(self.now);
    }

    fn action(&mut self) -> Option<Action> {
        self.m.poll_action(self.now)
    }

    fn expect_find(&mut self) {
        assert_eq!(self.action(), Some(Action::FindCoordinator));
    }

    fn expect_join(&mut self) -> JoinGroupRequest {
        match self.action() {
            Some(Action::Join(r)) => r,
            other => panic!("expected JoinGroup, got {other:?} in {:?}", self.m),
        }
    }

    fn expect_sync(&mut self) -> SyncGroupRequest {
        match self.action() {
            Some(Action::Sync(r)) => r,
            other => panic!("expected SyncGroup, got {other:?}"),
        }
    }

    fn expect_fetch_metadata(&mut self) -> Vec<String> {
        match self.action() {
            Some(Action::FetchMetadata(topics)) => topics,
            other => panic!("expected FetchMetadata, got {other:?}"),
        }
    }

    fn expect_heartbeat(&mut self) -> HeartbeatRequest {
        match self.action() {
            Some(Action::Heartbeat(r)) => r,
            other => panic!("expected Heartbeat, got {other:?}"),
        }
    }

    fn events(&mut self) -> Vec<GroupEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    /// Subscribe, find the coordinator, join as a follower and get `partitions`.
    fn join_follower(&mut self, member: &str, generation: i32, partitions: &[TopicPartition]) {
        self.m.subscribe(["t".to_string()], self.now);
        self.expect_find();
        self.m.handle_coordinator(self.now, Ok(1));
        self.expect_join();
        self.m.handle_join(self.now, Ok(join_ok(member, "leader", generation, "cooperative-sticky")));
        self.expect_sync();
        self.m.handle_sync(self.now, Ok(sync_ok(partitions)));
        assert_eq!(self.m.state(), MemberState::Stable);
        assert_eq!(self.events(), vec![GroupEvent::Assigned(partitions.to_vec())]);
    }
}

#[test]
fn a_new_member_retries_with_the_member_id_the_broker_requires() {
    let mut h = Harness::new(sticky());
    assert_eq!(h.action(), None, "nothing to do before subscribing");
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    assert_eq!(h.action(), None, "one lookup at a time");
    h.m.handle_coordinator(h.now, Ok(7));
    assert_eq!(h.m.coordinator(), Some(7));

    let first = h.expect_join();
    assert_eq!(first.member_id, "");
    assert_eq!(first.protocol_type, "consumer");
    assert_eq!(first.rebalance_timeout_ms, 300_000);
    assert_eq!(first.session_timeout_ms, 45_000);
    let required = JoinGroupResponse {
        error_code: ErrorCode::MEMBER_ID_REQUIRED.code(),
        member_id: "m-1".to_string(),
        ..Default::default()
    };
    h.m.handle_join(h.now, Ok(required));
    let second = h.expect_join();
    assert_eq!(second.member_id, "m-1");

    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 1, "cooperative-sticky")));
    let sync = h.expect_sync();
    assert_eq!((sync.generation_id, sync.member_id.as_str()), (1, "m-1"));
    assert!(sync.assignments.is_empty(), "followers send no assignments");
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0, 1]))));
    assert_eq!(h.events(), vec![GroupEvent::Assigned(tps("t", &[0, 1]))]);
    assert_eq!(h.m.assignment().len(), 2);

    // Heartbeats every interval, one at a time.
    assert_eq!(h.action(), None);
    h.advance(Duration::from_secs(3));
    let hb = h.expect_heartbeat();
    assert_eq!((hb.generation_id, hb.member_id.as_str()), (1, "m-1"));
    assert_eq!(h.action(), None);
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse::default()));
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_secs(3)));
}

#[test]
fn the_subscription_carries_topics_owned_partitions_and_generation() {
    let mut h = Harness::new(config(vec![Arc::new(CooperativeSticky), Arc::new(Range)]));
    // [cooperative-sticky, range]: the group may pick range, so the member is eager.
    assert_eq!(h.m.rebalance_protocol(), RebalanceProtocol::Eager);
    let mut h2 = Harness::new(sticky());
    h2.join_follower("m-1", 4, &tps("t", &[2]));
    h2.m.handle_heartbeat(h2.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    let join = h2.expect_join();
    assert_eq!(join.protocols.len(), 1);
    assert_eq!(join.protocols[0].name, "cooperative-sticky");
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.topics, ["t"]);
    assert_eq!(sub.generation_id, 4);
    assert_eq!(sub.owned_partitions, to_wire(&tps("t", &[2])));
    assert_eq!(sub.user_data.as_deref(), Some(&[0, 0, 0, 4][..]));

    h.m.subscribe(["b".to_string(), "a".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    let join = h.expect_join();
    let names: Vec<&str> = join.protocols.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cooperative-sticky", "range"], "in order of preference");
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[1].metadata.clone()).unwrap();
    assert_eq!(sub.topics, ["a", "b"]);
    assert_eq!(sub.generation_id, -1);
    assert!(sub.user_data.is_none(), "range has no user data");
}

#[test]
fn the_leader_assigns_with_the_groups_assignor() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    let subscription = |topics: &[&str]| {
        ConsumerProtocolSubscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
        .to_bytes(1)
        .unwrap()
    };
    let mut response = join_ok("a", "a", 1, "cooperative-sticky");
    response.members = vec![
        JoinGroupResponseMember {
            member_id: "a".into(),
            metadata: subscription(&["t"]),
            ..Default::default()
        },
        JoinGroupResponseMember {
            member_id: "b".into(),
            metadata: subscription(&["t", "u"]),
            ..Default::default()
        },
        // A member whose metadata cannot be read is left out rather than failing the group.
        JoinGroupResponseMember {
            member_id: "c".into(),
            metadata: Bytes::from_static(b"\xff"),
            ..Default::default()
        },
    ];
    h.m.handle_join(h.now, Ok(response));
    assert_eq!(h.m.state(), MemberState::Assigning);
    assert_eq!(h.action(), Some(Action::FetchMetadata(vec!["t".to_string(), "u".to_string()])));
    h.m.handle_metadata(h.now, Ok(BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 2)])));
    let sync = h.expect_sync();
    let mut got = BTreeMap::new();
    for a in &sync.assignments {
        let decoded = ConsumerProtocolAssignment::from_bytes(a.assignment.clone()).unwrap();
        got.insert(a.member_id.clone(), from_wire(&decoded.assigned_partitions).len());
    }
    assert_eq!(got, BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 3)]));
}

#[test]
fn a_leader_without_the_groups_assignor_fails_clearly() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("a", "a", 1, "roundrobin")));
    assert_eq!(h.action(), Some(Action::FetchMetadata(vec![])));
    h.m.handle_metadata(h.now, Ok(BTreeMap::new()));
    match h.events().as_slice() {
        [GroupEvent::Fatal(e)] => assert_eq!(e.code, ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.m.state(), MemberState::Left);
}

#[test]
fn cooperative_rebalance_revokes_only_what_moves_then_rejoins() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0, 1, 2, 3]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::REBALANCE_IN_PROGRESS.code(), ..Default::default() }),
    );
    assert!(h.events().is_empty(), "cooperative: nothing revoked before the new assignment");
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.owned_partitions, to_wire(&tps("t", &[0, 1, 2, 3])));
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0, 1]))));
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[2, 3]))]);
    // Still the member's until the application is done with them; heartbeats go on.
    assert_eq!(h.m.assignment().len(), 4);
    assert_eq!(h.action(), None);
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse::default()));
    h.m.revocation_done(h.now, &tps("t", &[2, 3]));
    assert_eq!(h.m.assignment().iter().cloned().collect::<Vec<_>>(), tps("t", &[0, 1]));
    // The second rebalance, so that the revoked partitions reach their new owner.
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.owned_partitions, to_wire(&tps("t", &[0, 1])));
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 3, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0, 1]))));
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![])], "kept partitions are not assigned again");
}

#[test]
fn eager_members_revoke_everything_before_joining() {
    let mut h = Harness::new(config(vec![Arc::new(Range)]));
    h.join_follower("m-1", 1, &tps("t", &[0, 1]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::REBALANCE_IN_PROGRESS.code(), ..Default::default() }),
    );
    assert_eq!(h.action(), None, "no JoinGroup before the revocation");
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0, 1]))]);
    assert_eq!(h.action(), None);
    h.m.revocation_done(h.now, &tps("t", &[0, 1]));
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert!(sub.owned_partitions.is_empty());
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "range")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[1]))));
    assert_eq!(h.events(), vec![GroupEvent::Assigned(tps("t", &[1]))]);
}

#[test]
fn illegal_generation_loses_the_partitions_and_keeps_the_member_id() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::ILLEGAL_GENERATION.code(), ..Default::default() }),
    );
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0]))]);
    assert!(h.m.assignment().is_empty());
    let join = h.expect_join();
    assert_eq!(join.member_id, "m-1");
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert!(sub.owned_partitions.is_empty());
    assert_eq!(sub.generation_id, -1);
}

#[test]
fn unknown_member_id_in_sync_forgets_the_member_id() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    let fenced = SyncGroupResponse { error_code: ErrorCode::UNKNOWN_MEMBER_ID.code(), ..Default::default() };
    h.m.handle_sync(h.now, Ok(fenced));
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0]))]);
    assert_eq!(h.expect_join().member_id, "");
}

#[test]
fn a_coordinator_move_finds_the_new_one_and_keeps_the_generation() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 5, &tps("t", &[0]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::NOT_COORDINATOR.code(), ..Default::default() }),
    );
    assert_eq!(h.m.coordinator(), None);
    h.expect_find();
    h.m.handle_coordinator(h.now, Err(timeout()));
    assert_eq!(h.action(), None, "the lookup is retried after the backoff");
    h.advance(Duration::from_millis(100));
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(2));
    h.advance(Duration::from_secs(3));
    let hb = h.expect_heartbeat();
    assert_eq!(hb.generation_id, 5);
    assert!(h.events().is_empty(), "no partitions lost for a coordinator move");
    assert_eq!(h.m.state(), MemberState::Stable);
}

#[test]
fn heartbeats_that_do_not_get_through_for_a_session_look_up_the_coordinator() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Err(timeout()));
    assert_eq!(h.m.coordinator(), None, "a failed heartbeat drops the connection to the coordinator");
    h.advance(Duration::from_millis(100));
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    assert_eq!(h.m.state(), MemberState::Stable);
}

#[test]
fn a_member_that_does_not_poll_in_time_leaves_and_rejoins_on_the_next_poll() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0, 1]));
    // Heartbeats alone do not keep the member in: only polls do.
    for _ in 0..100 {
        h.advance(Duration::from_secs(3));
        if h.m.state() != MemberState::Stable {
            break;
        }
        h.expect_heartbeat();
        h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse::default()));
    }
    assert_eq!(h.m.state(), MemberState::Unjoined);
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1]))]);
    match h.action() {
        Some(Action::Leave(r)) => assert_eq!(r.members[0].member_id, "m-1"),
        other => panic!("expected LeaveGroup, got {other:?}"),
    }
    h.m.handle_leave(h.now, Ok(LeaveGroupResponse::default()));
    assert_eq!(h.m.state(), MemberState::Unjoined, "that leave does not end the member");
    assert_eq!(h.action(), None, "stays out until the application polls");
    h.m.poll(h.now);
    assert_eq!(h.expect_join().member_id, "");
}

#[test]
fn a_static_member_neither_leaves_on_poll_timeout_nor_on_close() {
    let mut cfg = sticky();
    cfg.group_instance_id = Some("instance-1".to_string());
    let mut h = Harness::new(cfg);
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.now += Duration::from_secs(301);
    h.m.handle_timeout(h.now);
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0]))]);
    assert_eq!(h.action(), None, "no LeaveGroup for a static member");
    h.m.poll(h.now);
    let join = h.expect_join();
    assert_eq!(join.group_instance_id.as_deref(), Some("instance-1"));
    h.m.handle_join(h.now, Ok(join_ok("m-2", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0]))));
    h.events();
    h.m.leave(h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0]))]);
    // Still in its generation while the revocation handler runs, so that it can commit.
    assert_eq!(h.m.state(), MemberState::Leaving);
    assert_eq!((h.m.generation(), h.m.member_id()), (2, "m-2"));
    assert_eq!(h.m.check_commit(2, "m-2", &tps("t", &[0])), Ok(()));
    assert_eq!(h.action(), None, "no LeaveGroup for a static member");
    h.m.revocation_done(h.now, &tps("t", &[0]));
    assert_eq!(h.m.state(), MemberState::Left);
    assert_eq!(h.m.check_commit(2, "m-2", &tps("t", &[0])), Err(CommitRefused::NotInGeneration));
    assert_eq!(h.action(), None);
    assert_eq!(h.m.poll_timeout(), None);
}

/// A static member's `on_revoked` runs during close and commits: the commit must go out in
/// the member's generation (it used to find the generation already reset and fail).
#[test]
fn a_static_member_can_commit_in_its_revocation_on_close() {
    let mut cfg = sticky();
    cfg.group_instance_id = Some("instance-1".to_string());
    let mut h = Harness::new(cfg);
    h.join_follower("m-1", 3, &tps("t", &[0, 1]));
    h.m.leave(h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0, 1]))]);
    assert_eq!(h.m.generation(), 3);
    assert_eq!(h.m.check_commit(3, "m-1", &tps("t", &[0, 1])), Ok(()));
    // A commit answered UNKNOWN_MEMBER_ID meanwhile: the partitions are lost, the member ends.
    h.m.handle_commit_error(h.now, 3, "m-1", ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1]))]);
    h.m.revocation_done(h.now, &tps("t", &[0, 1]));
    assert_eq!(h.action(), None);
    assert_eq!(h.m.state(), MemberState::Left);
}

/// A member whose JoinGroup is answered UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION was dropped
/// by the group, which gave its partitions away meanwhile: they are lost (the application
/// stops fetching them), the member claims nothing in its next subscription, and a commit for
/// them is refused. It used to keep them, fetch them, and claim them in its next join.
#[test]
fn a_join_answered_fenced_loses_the_partitions() {
    for code in [ErrorCode::UNKNOWN_MEMBER_ID, ErrorCode::ILLEGAL_GENERATION] {
        let mut h = Harness::new(sticky());
        h.join_follower("m-1", 4, &tps("t", &[0, 1]));
        h.advance(Duration::from_secs(3));
        h.expect_heartbeat();
        h.m.handle_heartbeat(
            h.now,
            Ok(HeartbeatResponse {
                error_code: ErrorCode::REBALANCE_IN_PROGRESS.code(),
                ..Default::default()
            }),
        );
        h.expect_join();
        assert!(h.events().is_empty(), "cooperative: the partitions are kept while rejoining");
        h.m.handle_join(h.now, Ok(JoinGroupResponse { error_code: code.code(), ..Default::default() }));
        assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1]))], "{code}");
        assert!(h.m.assignment().is_empty(), "{code}");
        assert_eq!(h.m.generation(), -1, "{code}");
        assert_eq!(
            h.m.check_commit(4, "m-1", &tps("t", &[0])),
            Err(CommitRefused::NotInGeneration),
            "{code}"
        );
        let join = h.expect_join();
        let forget = code == ErrorCode::UNKNOWN_MEMBER_ID;
        assert_eq!(join.member_id, if forget { "" } else { "m-1" }, "{code}");
        let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
        assert!(sub.owned_partitions.is_empty(), "{code}: claims nothing");
        assert_eq!(sub.generation_id, -1, "{code}");
        // In the next generation the member owns what it is given, and only that.
        h.m.handle_join(h.now, Ok(join_ok("m-2", "leader", 6, "cooperative-sticky")));
        h.expect_sync();
        assert_eq!(
            h.m.check_commit(6, "m-2", &tps("t", &[1])),
            Err(CommitRefused::NotInGeneration),
            "{code}: not between JoinGroup and SyncGroup"
        );
        h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[1]))));
        assert_eq!(h.events(), vec![GroupEvent::Assigned(tps("t", &[1]))], "{code}");
        assert_eq!(h.m.check_commit(6, "m-2", &tps("t", &[1])), Ok(()), "{code}");
        assert_eq!(
            h.m.check_commit(6, "m-2", &tps("t", &[0, 1])),
            Err(CommitRefused::NotOwned(tp("t", 0))),
            "{code}: the lost partition is someone else's"
        );
        assert_eq!(
            h.m.check_commit(4, "m-1", &tps("t", &[1])),
            Err(CommitRefused::GenerationChanged { from: 4, to: 6 }),
            "{code}: a commit made in the old generation never lands in the new one"
        );
    }
}

/// A commit answered UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION fences the member as a heartbeat
/// would (the Java client resets its generation and rejoins); answers about an older
/// generation are ignored; REBALANCE_IN_PROGRESS makes it rejoin.
#[test]
fn a_commit_answered_fenced_loses_the_partitions() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 2, &tps("t", &[0, 1]));
    h.m.handle_commit_error(h.now, 1, "m-1", ErrorCode::UNKNOWN_MEMBER_ID);
    assert!(h.events().is_empty(), "an answer about an older generation changes nothing");
    assert_eq!(h.m.state(), MemberState::Stable);
    h.m.handle_commit_error(h.now, 2, "m-1", ErrorCode::REBALANCE_IN_PROGRESS);
    assert!(h.events().is_empty());
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.owned_partitions, to_wire(&tps("t", &[0, 1])), "a rebalance alone loses nothing");
    h.m.handle_commit_error(h.now, 2, "m-1", ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1]))]);
    assert_eq!(h.m.generation(), -1);
    // The JoinGroup in flight was made for the old member id; its answer is not awaited.
    let join = h.expect_join();
    assert_eq!(join.member_id, "");

    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 2, &tps("t", &[0]));
    h.m.handle_commit_error(h.now, 2, "m-1", ErrorCode::ILLEGAL_GENERATION);
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0]))]);
    assert_eq!(h.expect_join().member_id, "m-1");

    // A static member fenced by another instance with its id cannot go on.
    let mut cfg = sticky();
    cfg.group_instance_id = Some("instance-1".to_string());
    let mut h = Harness::new(cfg);
    h.join_follower("m-1", 2, &tps("t", &[0]));
    h.m.handle_commit_error(h.now, 2, "m-1", ErrorCode::FENCED_INSTANCE_ID);
    let events = h.events();
    assert_eq!(events[0], GroupEvent::Lost(tps("t", &[0])));
    assert!(
        matches!(&events[1], GroupEvent::Fatal(e) if e.code == ErrorCode::FENCED_INSTANCE_ID && e.during == "OffsetCommit")
    );
    assert_eq!(h.m.state(), MemberState::Left);
}

/// A loss makes a revocation whose event was not taken yet moot: the application hears of
/// the partitions once, as lost, and a late acknowledgement of an older revocation does not
/// touch a newer one.
#[test]
fn a_loss_replaces_a_revocation_not_yet_taken() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0, 1, 2]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0]))));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::ILLEGAL_GENERATION.code(), ..Default::default() }),
    );
    assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1, 2]))]);
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 3, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[2]))));
    assert_eq!(h.events(), vec![GroupEvent::Assigned(tps("t", &[2]))]);
    h.m.revocation_done(h.now, &tps("t", &[1, 2]));
    assert_eq!(h.m.assignment().iter().cloned().collect::<Vec<_>>(), tps("t", &[2]));
}

#[test]
fn a_dynamic_member_leaves_after_its_revocation() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.m.leave(h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0]))]);
    assert_eq!(h.action(), None, "LeaveGroup waits for the application to commit");
    h.m.revocation_done(h.now, &tps("t", &[0]));
    match h.action() {
        Some(Action::Leave(r)) => {
            assert_eq!(r.group_id, GROUP);
            assert_eq!(r.members[0].member_id, "m-1");
        }
        other => panic!("expected LeaveGroup, got {other:?}"),
    }
    h.m.handle_leave(h.now, Err(timeout()));
    assert_eq!(h.m.state(), MemberState::Left);
    assert_eq!(h.action(), None);
    assert_eq!(h.m.poll_timeout(), None);
}

/// Bytes of `request` encoded at `version`, or why not.
fn leave_bytes(request: &LeaveGroupRequest, version: i16) -> Result<bytes::BytesMut, String> {
    let mut buf = bytes::BytesMut::new();
    request.encode_body(&mut buf, version).map(|()| buf).map_err(|e| e.to_string())
}

#[test]
fn the_leave_request_encodes_at_every_version_with_the_member_in_place() {
    for poll_timeout in [false, true] {
        let mut h = Harness::new(sticky());
        h.join_follower("m-1", 1, &tps("t", &[0]));
        if poll_timeout {
            h.now += Duration::from_secs(301);
            h.m.handle_timeout(h.now);
        } else {
            h.m.leave(h.now);
            h.events();
            h.m.revocation_done(h.now, &tps("t", &[0]));
        }
        let Some(Action::Leave(request)) = h.action() else { panic!("expected LeaveGroup") };
        for version in LeaveGroupRequest::MIN_VERSION..=LeaveGroupRequest::MAX_VERSION {
            let shaped = leave_request_at(&request, version);
            let bytes = leave_bytes(&shaped, version)
                .unwrap_or_else(|e| panic!("LeaveGroup v{version} (poll timeout: {poll_timeout}): {e}"));
            let back = LeaveGroupRequest::decode_body(bytes.freeze(), version).unwrap();
            assert_eq!(back.group_id, GROUP);
            if version <= 2 {
                assert_eq!((back.member_id.as_str(), back.members.len()), ("m-1", 0), "v{version}");
            } else {
                assert_eq!(back.member_id, "", "v{version}");
                assert_eq!(back.members.len(), 1, "v{version}");
                assert_eq!(back.members[0].member_id, "m-1", "v{version}");
            }
        }
    }
}

#[test]
fn fenced_instance_id_is_fatal() {
    let mut cfg = sticky();
    cfg.group_instance_id = Some("instance-1".to_string());
    let mut h = Harness::new(cfg);
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(
        h.now,
        Ok(HeartbeatResponse { error_code: ErrorCode::FENCED_INSTANCE_ID.code(), ..Default::default() }),
    );
    let events = h.events();
    assert_eq!(events[0], GroupEvent::Lost(tps("t", &[0])));
    match &events[1] {
        GroupEvent::Fatal(e) => {
            assert_eq!(e.code, ErrorCode::FENCED_INSTANCE_ID);
            assert!(e.to_string().contains("Heartbeat"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.m.state(), MemberState::Left);
    assert_eq!(h.action(), None);
}

#[test]
fn join_errors_are_retried_as_the_java_client_does() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    // Coordinator still loading: retried after the backoff.
    let loading = JoinGroupResponse {
        error_code: ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code(),
        ..Default::default()
    };
    h.m.handle_join(h.now, Ok(loading));
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    // Some other retriable error: backoff.
    let other =
        JoinGroupResponse { error_code: ErrorCode::UNKNOWN_SERVER_ERROR.code(), ..Default::default() };
    h.m.handle_join(h.now, Ok(other));
    assert_eq!(h.action(), None);
    h.advance(Duration::from_millis(100));
    h.expect_join();
    // A lost connection: look the coordinator up again, then join.
    h.m.handle_join(h.now, Err(timeout()));
    assert_eq!(h.action(), None);
    h.advance(Duration::from_millis(100));
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(3));
    h.expect_join();
    // Misconfiguration is fatal.
    let bad =
        JoinGroupResponse { error_code: ErrorCode::INVALID_SESSION_TIMEOUT.code(), ..Default::default() };
    h.m.handle_join(h.now, Ok(bad));
    assert!(
        matches!(h.events().as_slice(), [GroupEvent::Fatal(e)] if e.code == ErrorCode::INVALID_SESSION_TIMEOUT)
    );
    // Answers that come late (to a request of an earlier state) are ignored.
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0]))));
    assert!(h.events().is_empty());
}

#[test]
fn unsubscribing_a_topic_revokes_its_partitions_first() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string(), "u".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 1, "cooperative-sticky")));
    h.expect_sync();
    let both = vec![tp("t", 0), tp("u", 0)];
    h.m.handle_sync(h.now, Ok(sync_ok(&both)));
    h.events();
    h.m.subscribe(["t".to_string()], h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("u", 0)])]);
    assert_eq!(h.action(), None);
    h.m.revocation_done(h.now, &[tp("u", 0)]);
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.topics, ["t"]);
    assert_eq!(sub.owned_partitions, to_wire(&[tp("t", 0)]));
}

/// `subscribe` while a cooperative revocation is pending: each revocation is acknowledged on
/// its own, so every partition ends up either owned (and fetched) or given up. The second
/// revocation used to replace the first, whose partitions then stayed owned (claimed in the
/// next join) though the application had stopped fetching them.
#[test]
fn subscribing_during_a_pending_revocation_keeps_both_revocations() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string(), "u".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 1, "cooperative-sticky")));
    h.expect_sync();
    let all = vec![tp("t", 0), tp("t", 1), tp("u", 0)];
    h.m.handle_sync(h.now, Ok(sync_ok(&all)));
    h.events();
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&[tp("t", 0), tp("u", 0)])));
    // t-1 moves away; before the application gets to it, it drops topic u.
    h.m.subscribe(["t".to_string()], h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("t", 1)]), GroupEvent::Revoke(vec![tp("u", 0)])]);
    h.m.revocation_done(h.now, &[tp("t", 1)]);
    assert_eq!(
        h.m.assignment().iter().cloned().collect::<Vec<_>>(),
        vec![tp("t", 0), tp("u", 0)],
        "t-1 is given up, u-0 is still being revoked"
    );
    assert_eq!(h.action(), None, "no join before both revocations are done");
    h.m.revocation_done(h.now, &[tp("u", 0)]);
    assert_eq!(h.m.assignment().iter().cloned().collect::<Vec<_>>(), vec![tp("t", 0)]);
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.topics, ["t"]);
    assert_eq!(sub.owned_partitions, to_wire(&[tp("t", 0)]));
}

/// A `subscribe` that drops a topic while the member is rejoining: the topic's partitions are
/// revoked before the JoinGroup of the new subscription, which does not claim them.
#[test]
fn subscribing_while_rejoining_revokes_dropped_topics_before_joining() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string(), "u".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 1, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&[tp("t", 0), tp("u", 0)])));
    h.events();
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.subscribe(["t".to_string()], h.now);
    assert_eq!(h.action(), None, "the revocation comes first");
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("u", 0)])]);
    h.m.revocation_done(h.now, &[tp("u", 0)]);
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.topics, ["t"]);
    assert_eq!(sub.owned_partitions, to_wire(&[tp("t", 0)]));
}

#[test]
fn rebalance_during_a_pending_revocation_waits_for_it() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0, 1]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0]))));
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[1]))]);
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    assert_eq!(h.action(), None, "the join waits until the revocation is done");
    h.m.revocation_done(h.now, &tps("t", &[1]));
    h.expect_join();
}

#[test]
fn failing_sasl_authentication_is_fatal_at_lookup() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    let refused = Error::with_message(ErrorKind::Authentication, "Invalid username or password");
    h.m.handle_coordinator(h.now, Err(refused));
    assert!(matches!(
        h.events().as_slice(),
        [GroupEvent::Fatal(e)] if e.code == ErrorCode::SASL_AUTHENTICATION_FAILED
            && e.detail.as_deref().is_some_and(|d| d.contains("Invalid username or password"))
    ));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.action(), None, "no retry with the same credentials");
}

#[test]
fn not_being_authorized_for_the_group_is_fatal_at_lookup() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Err(error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED)));
    assert!(matches!(
        h.events().as_slice(),
        [GroupEvent::Fatal(e)] if e.code == ErrorCode::GROUP_AUTHORIZATION_FAILED && e.during == "FindCoordinator"
    ));
    assert_eq!(h.action(), None);
    // A retriable lookup error is retried instead.
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Err(error_code(ErrorCode::COORDINATOR_NOT_AVAILABLE)));
    assert!(h.events().is_empty());
    h.advance(Duration::from_millis(100));
    h.expect_find();
}

#[test]
fn leaving_during_an_unfinished_revocation_revokes_everything_once() {
    let mut h = Harness::new(sticky());
    h.join_follower("m-1", 1, &tps("t", &[0, 1, 2]));
    h.advance(Duration::from_secs(3));
    h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(HeartbeatResponse { error_code: 27, ..Default::default() }));
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("m-1", "leader", 2, "cooperative-sticky")));
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0]))));
    // The Revoke([1, 2]) event is taken but its handler never finishes (say, cancelled).
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[1, 2]))]);
    h.m.leave(h.now);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0, 1, 2]))]);
    assert_eq!(h.action(), None);
    h.m.revocation_done(h.now, &tps("t", &[0, 1, 2]));
    assert!(matches!(h.action(), Some(Action::Leave(_))));
    assert!(h.m.assignment().is_empty());
}

#[test]
fn a_requested_rejoin_only_moves_a_stable_member() {
    let mut h = Harness::new(sticky());
    h.m.request_rejoin(h.now);
    assert_eq!(h.m.state(), MemberState::Unjoined);
    h.join_follower("m-1", 1, &tps("t", &[0]));
    h.m.request_rejoin(h.now);
    let join = h.expect_join();
    let sub = ConsumerProtocolSubscription::from_bytes(join.protocols[0].metadata.clone()).unwrap();
    assert_eq!(sub.owned_partitions, to_wire(&tps("t", &[0])), "cooperative: keeps its partitions meanwhile");
    assert!(h.events().is_empty());
}

/// A driver sleeps until `poll_timeout`: while the coordinator is unknown and its lookup
/// waits out a backoff, that must be the backoff's end, not a join that is already due (which
/// would make the driver spin).
#[test]
fn the_timeout_is_the_lookup_backoff_while_the_coordinator_is_unknown() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    assert_eq!(h.m.poll_timeout(), None, "nothing to wake for while the lookup is in flight");
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    h.m.handle_join(h.now, Err(timeout()));
    assert_eq!(h.action(), None);
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_millis(100)));
    h.advance(Duration::from_millis(100));
    h.expect_find();
}

#[test]
fn the_leader_remembers_the_counts_its_assignment_used() {
    let mut h = Harness::new(sticky());
    h.m.subscribe(["t".to_string()], h.now);
    h.expect_find();
    h.m.handle_coordinator(h.now, Ok(1));
    h.expect_join();
    let mut response = join_ok("a", "a", 1, "cooperative-sticky");
    let sub =
        ConsumerProtocolSubscription { topics: vec!["t".into()], ..Default::default() }.to_bytes(3).unwrap();
    response.members =
        vec![JoinGroupResponseMember { member_id: "a".into(), metadata: sub, ..Default::default() }];
    h.m.handle_join(h.now, Ok(response));
    assert_eq!(h.m.leader_view(), None, "not before the assignment");
    h.expect_fetch_metadata();
    h.m.handle_metadata(h.now, Ok(BTreeMap::from([("t".to_string(), 2)])));
    let view = h.m.leader_view().cloned().unwrap();
    assert_eq!(view, (vec!["t".to_string()], BTreeMap::from([("t".to_string(), 2)])));
    // A follower in the next generation has none.
    h.m.request_rejoin(h.now);
    h.expect_sync();
    h.m.handle_sync(h.now, Ok(sync_ok(&tps("t", &[0, 1]))));
    h.m.request_rejoin(h.now);
    h.expect_join();
    h.m.handle_join(h.now, Ok(join_ok("a", "b", 2, "cooperative-sticky")));
    assert_eq!(h.m.leader_view(), None);
}
