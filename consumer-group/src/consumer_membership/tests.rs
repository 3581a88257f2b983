//! The `consumer` protocol membership played through joins, reconciliations (revoke first,
//! then assign, then acknowledge), fencing, coordinator moves, leaving, missed polls and
//! fatal errors, with a fake clock and scripted coordinator answers.

use klamm::ErrorKind;
use klamm_protocol::api::consumer_group_heartbeat::Assignment;
use klamm_protocol::ApiKey;

use super::*;

const GROUP: &str = "g";
const MEMBER: &str = "m-1";
const T: Uuid = Uuid::from_bytes([1; 16]);
const U: Uuid = Uuid::from_bytes([2; 16]);

fn config() -> ConsumerMembershipConfig {
    ConsumerMembershipConfig {
        group_id: GROUP.to_string(),
        member_id: MEMBER.to_string(),
        group_instance_id: None,
        rack: None,
        max_poll_interval: Duration::from_secs(300),
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(3),
        retry_backoff: Duration::from_millis(100),
        remote_assignor: Some("uniform".to_string()),
    }
}

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn tps(topic: &str, ps: &[i32]) -> Vec<TopicPartition> {
    ps.iter().map(|&p| tp(topic, p)).collect()
}

fn wire(list: &[(Uuid, &[i32])]) -> Vec<TopicPartitions> {
    list.iter()
        .map(|(id, ps)| TopicPartitions { topic_id: *id, partitions: ps.to_vec(), ..Default::default() })
        .collect()
}

fn answer(epoch: i32, assignment: Option<&[(Uuid, &[i32])]>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse {
        member_id: Some(MEMBER.to_string()),
        member_epoch: epoch,
        heartbeat_interval_ms: 1000,
        assignment: assignment.map(|a| Assignment { topic_partitions: wire(a), ..Default::default() }),
        ..Default::default()
    }
}

fn error_answer(code: ErrorCode) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse { error_code: code.0, member_epoch: -1, ..Default::default() }
}

struct Harness {
    m: ConsumerMembership,
    now: Instant,
}

impl Harness {
    fn new(config: ConsumerMembershipConfig) -> Self {
        let now = Instant::now();
        Harness { m: ConsumerMembership::new(config, now), now }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.m.handle_timeout(self.now);
    }

    fn action(&mut self) -> Option<ConsumerAction> {
        self.m.poll_action(self.now)
    }

    fn expect_heartbeat(&mut self) -> ConsumerGroupHeartbeatRequest {
        match self.action() {
            Some(ConsumerAction::Heartbeat(r)) => r,
            other => panic!("expected a heartbeat, got {other:?} in {:?}", self.m.state()),
        }
    }

    fn events(&mut self) -> Vec<GroupEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    fn names(&mut self, names: &[(Uuid, &str)]) {
        let map = names.iter().map(|(id, n)| (*id, n.to_string())).collect();
        self.m.handle_topic_names(self.now, Ok(map));
    }

    /// Subscribes to `t` and joins; the coordinator answers the join with epoch 1 and
    /// `partitions` of `t`, whose name the member then resolves.
    fn joined(config: ConsumerMembershipConfig, partitions: &[i32]) -> Harness {
        let mut h = Harness::new(config);
        h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
        assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
        h.m.handle_coordinator(h.now, Ok(1));
        let join = h.expect_heartbeat();
        assert_eq!(join.member_epoch, JOIN_EPOCH);
        h.m.handle_heartbeat(h.now, Ok(answer(1, Some(&[(T, partitions)]))));
        assert_eq!(h.action(), Some(ConsumerAction::ResolveTopics(vec![T])));
        h.names(&[(T, "t")]);
        assert_eq!(h.events(), vec![GroupEvent::Assigned(tps("t", partitions))]);
        let ack = h.expect_heartbeat();
        assert_eq!(ack.topic_partitions, Some(wire(&[(T, partitions)])));
        h.m.handle_heartbeat(h.now, Ok(answer(1, None)));
        h
    }
}

#[test]
fn joins_with_epoch_zero_and_everything_then_heartbeats_only_changes() {
    let mut h = Harness::new(ConsumerMembershipConfig { rack: Some("r1".into()), ..config() });
    assert_eq!(h.action(), None, "nothing before a subscription");
    h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
    assert_eq!(h.m.state(), MemberState::WaitingToJoin);
    assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
    h.m.handle_coordinator(h.now, Ok(7));
    let join = h.expect_heartbeat();
    assert_eq!(h.m.state(), MemberState::Joining);
    assert_eq!(join.group_id, GROUP);
    assert_eq!(join.member_id, MEMBER, "the client generates its member id");
    assert_eq!(join.member_epoch, 0);
    assert_eq!(join.subscribed_topic_names, Some(vec!["t".to_string()]));
    assert_eq!(join.subscribed_topic_regex, None);
    assert_eq!(join.server_assignor.as_deref(), Some("uniform"));
    assert_eq!(join.rack_id.as_deref(), Some("r1"));
    assert_eq!(join.rebalance_timeout_ms, 300_000);
    assert_eq!(join.topic_partitions, Some(vec![]), "owns nothing yet, and says so");
    assert_eq!(h.action(), None, "one heartbeat at a time");

    // Joined with nothing assigned yet: the application hears an empty assignment once.
    h.m.handle_heartbeat(h.now, Ok(answer(1, Some(&[]))));
    assert_eq!(h.m.state(), MemberState::Stable);
    assert_eq!(h.m.member_epoch(), 1);
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![])]);

    // The broker's interval (1 s), not the configured 3 s; unchanged fields are null.
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_secs(1)));
    assert_eq!(h.action(), None);
    h.advance(Duration::from_secs(1));
    let beat = h.expect_heartbeat();
    assert_eq!(beat.member_epoch, 1);
    assert_eq!(beat.subscribed_topic_names, None);
    assert_eq!(beat.topic_partitions, None);
    assert_eq!(beat.rebalance_timeout_ms, -1);
    assert_eq!(beat.server_assignor, None);
}

#[test]
fn assignment_by_topic_id_is_resolved_then_acknowledged_at_once() {
    let mut h = Harness::joined(config(), &[0, 1]);
    assert_eq!(h.m.assignment().cloned().collect::<Vec<_>>(), tps("t", &[0, 1]));
    assert_eq!(h.m.member_epoch(), 1);
    // A second topic comes in: its name is looked up before anything is assigned.
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[(T, &[0, 1]), (U, &[3])]))));
    assert!(h.events().is_empty(), "nothing before the name is known");
    assert_eq!(h.action(), Some(ConsumerAction::ResolveTopics(vec![U])));
    h.names(&[(U, "u")]);
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![tp("u", 3)])]);
    let ack = h.expect_heartbeat();
    assert_eq!(ack.member_epoch, 2);
    assert_eq!(ack.topic_partitions, Some(wire(&[(T, &[0, 1]), (U, &[3])])));
}

#[test]
fn revokes_first_then_assigns_then_acknowledges() {
    let mut h = Harness::joined(config(), &[0, 1, 2]);
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    // The target drops 0 and 2 and adds 3.
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[(T, &[1, 3])]))));
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0, 2]))]);
    // Until the application is done, the member owns them (its commits go through) and
    // acknowledges nothing.
    assert!(h.m.check_commit(1, MEMBER, &tps("t", &[0, 2])).is_ok());
    assert_eq!(h.action(), None);
    h.advance(Duration::from_secs(1));
    let beat = h.expect_heartbeat();
    assert_eq!(beat.topic_partitions, None, "a plain heartbeat meanwhile: still owns 0, 1, 2");
    h.m.handle_heartbeat(h.now, Ok(answer(2, None)));
    assert!(h.events().is_empty());

    h.m.revocation_done(h.now, &tps("t", &[0, 2]));
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![tp("t", 3)])]);
    let ack = h.expect_heartbeat();
    assert_eq!(ack.topic_partitions, Some(wire(&[(T, &[1, 3])])));
    assert_eq!(
        h.m.check_commit(1, MEMBER, &[tp("t", 0)]),
        Err(CommitRefused::NotOwned(tp("t", 0))),
        "a revoked partition's commits are refused"
    );
    h.m.handle_heartbeat(h.now, Ok(answer(3, None)));
    assert!(h.m.check_commit(1, MEMBER, &[tp("t", 3)]).is_ok(), "an older epoch of the same stay");
}

#[test]
fn fenced_member_loses_its_partitions_and_rejoins_with_epoch_zero() {
    for code in [ErrorCode::FENCED_MEMBER_EPOCH, ErrorCode::UNKNOWN_MEMBER_ID] {
        let mut h = Harness::joined(config(), &[0, 1]);
        h.advance(Duration::from_secs(1));
        let _ = h.expect_heartbeat();
        h.m.handle_heartbeat(h.now, Ok(error_answer(code)));
        assert_eq!(h.events(), vec![GroupEvent::Lost(tps("t", &[0, 1]))], "{code}");
        assert_eq!(h.m.member_epoch(), 0);
        assert_eq!(h.m.check_commit(1, MEMBER, &[]), Err(CommitRefused::NotInGeneration));
        let rejoin = h.expect_heartbeat();
        assert_eq!(rejoin.member_epoch, 0, "{code}");
        assert_eq!(rejoin.member_id, MEMBER);
        assert_eq!(rejoin.subscribed_topic_names, Some(vec!["t".to_string()]));
        assert_eq!(rejoin.topic_partitions, Some(vec![]));
        // Back in at epoch 5: a commit made in the earlier stay (epoch 1) stays refused.
        h.m.handle_heartbeat(h.now, Ok(answer(5, Some(&[(T, &[0])]))));
        assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![tp("t", 0)])]);
        assert_eq!(
            h.m.check_commit(1, MEMBER, &[tp("t", 0)]),
            Err(CommitRefused::GenerationChanged { from: 1, to: 5 })
        );
        assert!(h.m.check_commit(5, MEMBER, &[tp("t", 0)]).is_ok());
    }
}

#[test]
fn a_commit_answered_fenced_loses_the_partitions() {
    let mut h = Harness::joined(config(), &[0]);
    // An answer about an earlier stay changes nothing.
    h.m.handle_commit_error(h.now, 0, MEMBER, ErrorCode::FENCED_MEMBER_EPOCH);
    assert!(h.events().is_empty());
    h.m.handle_commit_error(h.now, 1, MEMBER, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.events(), vec![GroupEvent::Lost(vec![tp("t", 0)])]);
    assert_eq!(h.expect_heartbeat().member_epoch, 0);
}

#[test]
fn coordinator_moves_and_lost_connections_find_it_again_and_resend_everything() {
    let mut h = Harness::joined(config(), &[0]);
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(error_answer(ErrorCode::NOT_COORDINATOR)));
    assert!(h.events().is_empty(), "the partitions stay");
    assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
    h.m.handle_coordinator(h.now, Ok(2));
    assert_eq!(h.m.coordinator(), Some(2));
    h.advance(Duration::from_secs(1));
    let full = h.expect_heartbeat();
    assert_eq!(full.member_epoch, 1);
    assert_eq!(full.subscribed_topic_names, Some(vec!["t".to_string()]));
    assert_eq!(full.topic_partitions, Some(wire(&[(T, &[0])])));
    assert_eq!(full.rebalance_timeout_ms, 300_000);

    h.m.handle_heartbeat(h.now, Err(Error::from(ErrorKind::Closed)));
    assert!(h.events().is_empty());
    assert_eq!(h.action(), None, "after the backoff");
    h.advance(Duration::from_millis(100));
    assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
}

#[test]
fn dynamic_member_revokes_then_leaves_with_epoch_minus_one() {
    let mut h = Harness::joined(config(), &[0, 1]);
    h.m.leave(h.now);
    assert_eq!(h.m.state(), MemberState::Leaving);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(tps("t", &[0, 1]))]);
    assert!(h.m.check_commit(1, MEMBER, &tps("t", &[0, 1])).is_ok(), "commits in on_revoked go through");
    assert_eq!(h.action(), None, "not before the revocation is done");
    h.m.revocation_done(h.now, &tps("t", &[0, 1]));
    let leave = h.expect_heartbeat();
    assert_eq!(leave.member_epoch, LEAVE_EPOCH);
    assert_eq!(leave.member_id, MEMBER);
    h.m.handle_heartbeat(h.now, Ok(answer(-1, None)));
    assert_eq!(h.m.state(), MemberState::Left);
    assert_eq!(h.action(), None);
}

#[test]
fn static_member_joins_with_its_instance_id_and_leaves_with_epoch_minus_two() {
    let config = ConsumerMembershipConfig { group_instance_id: Some("pod-1".into()), ..config() };
    let mut h = Harness::new(config.clone());
    h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
    let _ = h.action();
    h.m.handle_coordinator(h.now, Ok(1));
    assert_eq!(h.expect_heartbeat().instance_id.as_deref(), Some("pod-1"));

    let mut h = Harness::joined(config, &[0]);
    h.m.leave(h.now);
    let _ = h.events();
    h.m.revocation_done(h.now, &[tp("t", 0)]);
    let leave = h.expect_heartbeat();
    assert_eq!(leave.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(leave.instance_id.as_deref(), Some("pod-1"));
    h.m.handle_heartbeat(h.now, Err(Error::from(ErrorKind::Timeout)));
    assert_eq!(h.m.state(), MemberState::Left, "gone either way");
}

#[test]
fn leaving_while_the_join_is_in_flight_still_sends_the_leave() {
    let mut h = Harness::new(config());
    h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
    let _ = h.action();
    h.m.handle_coordinator(h.now, Ok(1));
    let _ = h.expect_heartbeat();
    h.m.leave(h.now);
    assert_eq!(h.action(), None, "the join is still in flight");
    h.m.handle_heartbeat(h.now, Ok(answer(1, Some(&[(T, &[0])]))));
    assert!(h.events().is_empty(), "nothing assigned to a member on its way out");
    assert_eq!(h.expect_heartbeat().member_epoch, LEAVE_EPOCH);
}

#[test]
fn a_broker_without_the_protocol_is_a_fatal_error_that_names_classic() {
    let unsupported = [
        Err(Error::from(ErrorKind::UnsupportedVersion { api_key: ApiKey(68), broker_range: None })),
        Ok(error_answer(ErrorCode::UNSUPPORTED_VERSION)),
    ];
    for result in unsupported {
        let mut h = Harness::new(config());
        h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
        let _ = h.action();
        h.m.handle_coordinator(h.now, Ok(1));
        let _ = h.expect_heartbeat();
        h.m.handle_heartbeat(h.now, result);
        let events = h.events();
        let [GroupEvent::Fatal(e)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(e.code, ErrorCode::UNSUPPORTED_VERSION);
        assert!(e.to_string().contains("group.protocol=classic"), "{e}");
        assert_eq!(h.m.state(), MemberState::Left);
        assert_eq!(h.action(), None, "and nothing more is sent");
    }
}

#[test]
fn configuration_errors_are_fatal() {
    for code in [
        ErrorCode::GROUP_MAX_SIZE_REACHED,
        ErrorCode::UNSUPPORTED_ASSIGNOR,
        ErrorCode::INVALID_REGULAR_EXPRESSION,
        ErrorCode::GROUP_AUTHORIZATION_FAILED,
        ErrorCode::FENCED_INSTANCE_ID,
    ] {
        let mut h = Harness::joined(config(), &[0]);
        h.advance(Duration::from_secs(1));
        let _ = h.expect_heartbeat();
        h.m.handle_heartbeat(h.now, Ok(error_answer(code)));
        let events = h.events();
        assert_eq!(events[0], GroupEvent::Lost(vec![tp("t", 0)]), "{code}");
        assert!(matches!(&events[1], GroupEvent::Fatal(e) if e.code == code), "{code}: {events:?}");
    }
}

#[test]
fn unreleased_instance_id_is_retried_for_a_session_then_fatal() {
    let config = ConsumerMembershipConfig { group_instance_id: Some("pod-1".into()), ..config() };
    let mut h = Harness::new(config);
    h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
    let _ = h.action();
    h.m.handle_coordinator(h.now, Ok(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(error_answer(ErrorCode::UNRELEASED_INSTANCE_ID)));
    assert!(h.events().is_empty());
    assert_eq!(h.action(), None, "retried after a pause");
    h.advance(Duration::from_millis(500));
    assert_eq!(h.expect_heartbeat().member_epoch, 0);
    h.advance(Duration::from_secs(45));
    h.m.handle_heartbeat(h.now, Ok(error_answer(ErrorCode::UNRELEASED_INSTANCE_ID)));
    assert!(
        matches!(h.events().as_slice(), [GroupEvent::Fatal(e)] if e.code == ErrorCode::UNRELEASED_INSTANCE_ID)
    );
}

#[test]
fn a_missed_poll_interval_loses_everything_leaves_and_rejoins_on_the_next_poll() {
    let mut h = Harness::joined(
        ConsumerMembershipConfig { max_poll_interval: Duration::from_secs(10), ..config() },
        &[0],
    );
    for _ in 0..9 {
        h.advance(Duration::from_secs(1));
        if let Some(ConsumerAction::Heartbeat(_)) = h.action() {
            h.m.handle_heartbeat(h.now, Ok(answer(1, None)));
        }
    }
    assert_eq!(h.m.state(), MemberState::Stable);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.m.state(), MemberState::Unjoined);
    assert_eq!(h.events(), vec![GroupEvent::Lost(vec![tp("t", 0)])]);
    assert_eq!(h.expect_heartbeat().member_epoch, LEAVE_EPOCH);
    h.m.handle_heartbeat(h.now, Ok(answer(-1, None)));
    assert_eq!(h.action(), None);
    h.m.poll(h.now);
    let rejoin = h.expect_heartbeat();
    assert_eq!(rejoin.member_epoch, 0);
}

#[test]
fn a_new_subscription_goes_out_at_once_and_a_pattern_as_a_regex() {
    let mut h = Harness::joined(config(), &[0]);
    h.m.subscribe(Subscription::Pattern("orders-.*".into()), h.now);
    let beat = h.expect_heartbeat();
    assert_eq!(beat.subscribed_topic_regex.as_deref(), Some("orders-.*"));
    assert_eq!(beat.subscribed_topic_names, None);
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[]))));
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("t", 0)])]);
    h.m.revocation_done(h.now, &[tp("t", 0)]);
    assert_eq!(h.events(), vec![], "nothing new to announce");
    assert_eq!(h.expect_heartbeat().topic_partitions, Some(vec![]));
}

#[test]
fn a_topic_the_cluster_does_not_know_is_left_out_and_looked_up_again() {
    let mut h = Harness::joined(config(), &[0]);
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[(U, &[0])]))));
    assert_eq!(h.action(), Some(ConsumerAction::ResolveTopics(vec![U])));
    h.names(&[]);
    // The revocation does not wait for a name that may never come.
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("t", 0)])]);
    h.m.revocation_done(h.now, &[tp("t", 0)]);
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(answer(2, None)));
    h.advance(Duration::from_millis(100));
    assert_eq!(h.action(), Some(ConsumerAction::ResolveTopics(vec![U])));
    h.names(&[(U, "u")]);
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![tp("u", 0)])]);
}

#[test]
fn a_new_target_during_a_revocation_is_reconciled_after_it() {
    let mut h = Harness::joined(config(), &[0, 1, 2]);
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[(T, &[1, 2])]))));
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("t", 0)])]);
    // The coordinator changes its mind while the application still revokes 0.
    h.advance(Duration::from_secs(1));
    let _ = h.expect_heartbeat();
    h.m.handle_heartbeat(h.now, Ok(answer(2, Some(&[(T, &[2, 3])]))));
    assert!(h.events().is_empty(), "one revocation at a time");
    h.m.revocation_done(h.now, &[tp("t", 0)]);
    assert_eq!(h.events(), vec![GroupEvent::Revoke(vec![tp("t", 1)])], "then what the new target drops");
    assert_eq!(h.action(), None, "no acknowledgement before the revocations are done");
    h.m.revocation_done(h.now, &[tp("t", 1)]);
    assert_eq!(h.events(), vec![GroupEvent::Assigned(vec![tp("t", 3)])]);
    assert_eq!(h.expect_heartbeat().topic_partitions, Some(wire(&[(T, &[2, 3])])));
}

#[test]
fn a_fatal_coordinator_lookup_ends_the_member_and_others_are_retried() {
    let mut h = Harness::new(config());
    h.m.subscribe(Subscription::Topics(["t".to_string()].into()), h.now);
    assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
    h.m.handle_coordinator(h.now, Err(Error::from(ErrorKind::Broker(ErrorCode::COORDINATOR_NOT_AVAILABLE))));
    assert_eq!(h.action(), None, "after the backoff");
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_millis(100)));
    h.advance(Duration::from_millis(100));
    assert_eq!(h.action(), Some(ConsumerAction::FindCoordinator));
    h.m.handle_coordinator(h.now, Err(Error::from(ErrorKind::Broker(ErrorCode::GROUP_AUTHORIZATION_FAILED))));
    assert!(
        matches!(h.events().as_slice(), [GroupEvent::Fatal(e)] if e.code == ErrorCode::GROUP_AUTHORIZATION_FAILED)
    );
    assert_eq!(h.m.state(), MemberState::Left);
}

#[test]
fn a_member_dropped_in_the_group_leaves_at_once_without_revoking() {
    let mut h = Harness::joined(
        ConsumerMembershipConfig { group_instance_id: Some("pod-1".into()), ..config() },
        &[0],
    );
    let leave = h.m.leave_request_now().expect("in the group");
    assert_eq!(leave.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(h.m.state(), MemberState::Left);
    assert!(h.events().is_empty());
    assert_eq!(h.m.leave_request_now(), None, "once");
}
