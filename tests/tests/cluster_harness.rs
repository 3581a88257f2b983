//! The multi-node test bed itself: a 3-node KRaft cluster starts, reports leaders and the active
//! controller, and each per-node control (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart) does what
//! it says, observed through the cluster's own metadata; a proxy in front of one node carries its
//! client traffic across restarts; Klamm's admin elects leaders.

use std::time::{Duration, Instant};

use klamm::protocol::ErrorCode;
use klamm::{Admin, ClientConfig, ElectionType};
use klamm_tests::{api_versions_request, unique_topic, Cluster, RawConnection};

#[test]
fn three_nodes_fail_over_and_rejoin() {
    let started = Instant::now();
    let cluster = Cluster::builder().nodes(3).proxy(3).start().unwrap_or_else(|e| panic!("{e}"));
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

    // SIGTERM (a controlled shutdown) of partition 0's preferred replica: it loses its
    // leadership and, with auto.leader.rebalance.enable=false, does not get it back alone.
    let preferred = cluster.partitions(&topic).unwrap()[0].replicas[0];
    let took = cluster.terminate(preferred);
    eprintln!("node {preferred} terminated in {took:.1?}");
    assert!(!cluster.is_running(preferred));
    cluster.restart(preferred);
    let state = cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    assert_ne!(state[0].leader, preferred, "{state:?}");

    // Preferred election, with Klamm's admin: partition 0 goes back to its preferred replica;
    // a partition already led by its preferred replica needs no election.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = runtime.block_on(Admin::connect(ClientConfig::new(&cluster.bootstrap()))).unwrap();
    let asked = [(topic.as_str(), 0), (topic.as_str(), 1), (topic.as_str(), 0)];
    let elected = runtime.block_on(admin.elect_leaders(ElectionType::Preferred, Some(&asked)));
    eprintln!("preferred election: {elected:?}");
    assert_eq!(elected.len(), 3);
    assert_eq!(elected[0].0, (topic.clone(), 0));
    elected[0].1.as_ref().unwrap_or_else(|e| panic!("partition 0: {e}"));
    assert!(elected[2].1.is_ok(), "the repeated entry gets the same answer: {elected:?}");
    if state[1].leader == state[1].replicas[0] {
        let e = elected[1].1.as_ref().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::ELECTION_NOT_NEEDED), "{elected:?}");
    }
    wait_for(Duration::from_secs(10), || cluster.leader(&topic, 0).filter(|l| *l == preferred));

    // Every partition of the cluster (no list): after another controlled shutdown, partition
    // 0 is among those elected, and nothing fails.
    cluster.terminate(preferred);
    cluster.restart(preferred);
    cluster.wait_for_isr(&topic, Duration::from_secs(60)).unwrap();
    let everything = runtime.block_on(admin.elect_leaders(ElectionType::Preferred, None));
    eprintln!("preferred election for the whole cluster: {everything:?}");
    for ((t, p), result) in &everything {
        assert!(!t.is_empty() && *p >= 0, "the whole request failed: {result:?}");
        if let Err(e) = result {
            assert_eq!(e.code(), Some(ErrorCode::ELECTION_NOT_NEEDED), "{t}-{p}: {e}");
        }
    }
    let p0 = everything.iter().find(|((t, p), _)| *t == topic && *p == 0);
    assert!(matches!(p0, Some((_, Ok(())))), "partition 0 was not elected: {everything:?}");
    wait_for(Duration::from_secs(10), || cluster.leader(&topic, 0).filter(|l| *l == preferred));

    // An unclean election for a partition that has in-sync replicas changes nothing.
    let unclean = runtime.block_on(admin.elect_leaders(ElectionType::Unclean, Some(&[(&topic, 0)])));
    assert_eq!(
        unclean[0].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::ELECTION_NOT_NEEDED),
        "{unclean:?}"
    );
    // A partition that does not exist is that partition's error.
    let missing = runtime.block_on(admin.elect_leaders(ElectionType::Preferred, Some(&[(&topic, 7)])));
    assert_eq!(
        missing[0].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{missing:?}"
    );

    // Node 3 sits behind a FaultProxy: clients are told its port, and reach node 3 through it,
    // also after a restart (the node keeps its port).
    let proxy = cluster.proxy(3).expect("node 3 has a proxy");
    assert_eq!(cluster.advertised_addr(3), proxy.addr());
    assert_ne!(cluster.addr(3), proxy.addr());
    let described = runtime.block_on(admin.describe_cluster()).unwrap();
    let node3 = described.brokers.iter().find(|b| b.node_id == 3).expect("node 3 listed");
    assert_eq!(node3.port, proxy.port(), "{described:?}");
    let before = proxy.connections_accepted();
    cluster.kill_and_restart(3);
    let mut conn = RawConnection::connect(proxy.addr()).unwrap();
    assert_eq!(conn.send(3, &api_versions_request()).error_code, 0);
    assert!(proxy.connections_accepted() > before);
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
