//! The multi-node test bed itself: a 3-node KRaft cluster starts, reports leaders and the active
//! controller, and each per-node control (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart) does what
//! it says, observed through the cluster's own metadata.

use std::time::{Duration, Instant};

use klamm_tests::{unique_topic, Cluster};

#[test]
fn three_nodes_fail_over_and_rejoin() {
    let started = Instant::now();
    let cluster = Cluster::start(3);
    eprintln!("cluster up in {:.1?}: {}", started.elapsed(), cluster.bootstrap());
    let controller = cluster.wait_for_active_controller(Duration::from_secs(30)).unwrap();
    eprintln!("active controller: {controller}");

    let topic = unique_topic("cluster-harness");
    let state = cluster.create_topic(&topic, 3);
    for p in &state {
        assert_eq!(p.replicas.len(), 3, "replication factor 3 by default: {p:?}");
    }
    eprintln!("{state:?}");

    // SIGKILL the leader of partition 0: another replica takes over.
    let leader = cluster.leader(&topic, 0).unwrap();
    let t = Instant::now();
    cluster.kill(leader);
    assert!(!cluster.is_running(leader));
    let new_leader = wait_for(Duration::from_secs(30), || cluster.leader(&topic, 0).filter(|l| *l != leader));
    eprintln!("leader {leader} killed; {new_leader} leads after {:.1?}", t.elapsed());
    let took = cluster.restart(leader);
    eprintln!("node {leader} restarted in {took:.1?}");
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();

    // SIGKILL the active controller: the quorum elects another.
    let controller = cluster.wait_for_active_controller(Duration::from_secs(30)).unwrap();
    cluster.kill(controller);
    let t = Instant::now();
    let next = wait_for(Duration::from_secs(30), || cluster.active_controller().filter(|c| *c != controller));
    eprintln!("controller {controller} killed; {next} active after {:.1?}", t.elapsed());
    cluster.restart(controller);

    // SIGSTOP a node: it drops out of the ISR; after SIGCONT it comes back.
    let paused = cluster.leader(&topic, 0).unwrap();
    cluster.pause(paused);
    let t = Instant::now();
    wait_for(Duration::from_secs(30), || {
        let ps = cluster.partitions(&topic).ok()?;
        ps.iter().all(|p| p.leader != paused && !p.isr.contains(&paused)).then_some(())
    });
    eprintln!("node {paused} paused; out of every ISR after {:.1?}", t.elapsed());
    cluster.resume(paused);
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();

    // SIGTERM: a controlled shutdown.
    let took = cluster.terminate(2);
    eprintln!("node 2 terminated in {took:.1?}");
    assert!(!cluster.is_running(2));
    cluster.restart(2);
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    eprintln!("total {:.1?}", started.elapsed());
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
