//! Short soaks on a real 3-node cluster (the long ones are `scripts/soak`): an idempotent Klamm
//! producer writes keyed records while a consumer group of two Klamm members, one librdkafka
//! and one Java member reads and commits, and Klamm's partition consumer reads every
//! partition. The figures are printed; the checks are those of [`SoakReport::check`] plus a
//! bound on re-deliveries.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use klamm_tests::{run_soak, Fault, FaultPlan, SoakOptions, SoakReport};

/// One soak at a time: each runs a cluster of three, and two at once on a small machine make
/// node restarts slow enough to blur what is measured.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each fault may hand a member's partitions to another member at most a couple of times,
/// and each hand-over re-delivers at most what the member read since its last commit (every
/// 200 records).
fn assert_redeliveries_bounded(report: &SoakReport) {
    let bound = (report.faults.len() + 1) * report.members * 200 * 2;
    assert!(
        report.redelivered <= bound,
        "{} re-deliveries, more than the uncommitted windows allow ({bound})",
        report.redelivered
    );
}

/// The consumers keep reading through the coordinator killed while the group rebalances (a
/// member joining) and while members commit, the leader of most partitions killed, and a
/// rolling restart; every acknowledged record is read at least once.
#[test]
fn consumers_read_through_coordinator_and_leader_kills_and_a_rolling_restart() {
    let _serial = serial();
    let options = SoakOptions {
        plan: FaultPlan::Script(vec![
            Fault::KillCoordinatorDuringJoin,
            Fault::KillCoordinator,
            Fault::KillLeader,
            Fault::RollingRestart,
        ]),
        fault_every: (Duration::from_secs(8), Duration::from_secs(8)),
        rate: 300,
        ..SoakOptions::default()
    };
    let report = run_soak(&options);
    println!("{}", report.render());
    if let Err(problems) = report.check(options.delivery_timeout) {
        panic!("{problems}\n{}", report.render());
    }
    assert_redeliveries_bounded(&report);
}

/// Two minutes of random faults (kill -9, SIGTERM, SIGSTOP past the request timeout, cut
/// connections), as `scripts/soak --minutes 2` runs them.
#[test]
fn two_minutes_of_random_faults() {
    let _serial = serial();
    let options = SoakOptions { duration: Duration::from_secs(120), seed: 7, ..SoakOptions::default() };
    let report = run_soak(&options);
    println!("{}", report.render());
    if let Err(problems) = report.check(options.delivery_timeout) {
        panic!("{problems}\n{}", report.render());
    }
    assert_redeliveries_bounded(&report);
}
