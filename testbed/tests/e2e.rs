//! End to end, as root: the topology comes up and goes away without
//! leftovers, and uturn (io_uring) and coTURN each relay every packet of a
//! short run — driven by uturn-load and by coTURN's turnutils_uclient —
//! also when each runs under a CPU budget (the sweep's cgroup).
//! No CPU figure is asserted: they depend on the machine.
//!
//! Uses the binaries `cargo test --workspace` builds next to this test's
//! `uturn-testbed` (uturn, uturn-load); it builds nothing itself.

mod common;

use common::{assert_gone, require_bin, require_root, testbed, unique_topology};
use uturn_testbed::cgroup::{self, CpuBudget, Hierarchy};
use uturn_testbed::crosscheck::{self, UclientShape};
use uturn_testbed::load::LoadShape;
use uturn_testbed::relay;
use uturn_testbed::topology::{existing_namespaces, TopologyGuard};

#[test]
fn topology_comes_up_with_mtu_1500_and_is_gone_after_drop() {
    require_root();
    let topology = unique_topology('e');
    {
        let guard: TopologyGuard = topology.up().expect("topology up");
        let names = existing_namespaces();
        for ns in topology.namespaces() {
            assert!(names.contains(&ns), "{ns} missing in {names:?}");
        }
        let links = std::process::Command::new("ip")
            .args([
                "-n",
                &topology.relay_ns(),
                "link",
                "show",
                &topology.relay_client_if(),
            ])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(
            links.contains("mtu 1500") && links.contains("UP"),
            "{links}"
        );
        // Building it again over itself first removes the leftovers.
        drop(guard);
        let again = topology.up().expect("topology up twice");
        assert!(topology.any_exists());
        drop(again);
    }
    assert_gone(&topology);
}

#[test]
fn uturn_and_coturn_relay_everything_from_uturn_load() {
    require_root();
    require_bin("uturn-load");
    let topology = unique_topology('e');
    let tb = testbed(&topology, "load");
    let shape = LoadShape {
        sessions: 5,
        payload: 150,
        kbps: 50,
        duration_secs: 3,
        warmup_secs: 1,
        ramp_up_secs: 1,
    };
    {
        let _guard = topology.up().expect("topology up");
        for name in ["uturn-uring", "coturn"] {
            let config = relay::config(name).unwrap();
            let r = tb
                .run(config, "e2e", &shape, 1.0)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = &r.summary;
            let what = format!("{name}: {s:?}");
            assert_eq!(s.sessions_established, 5, "{what}");
            assert_eq!(s.allocation_failures, 0, "{what}");
            assert!(s.sent_peer_to_client > 0, "{what}");
            assert_eq!(s.recv_at_client, s.sent_peer_to_client, "{what}");
            assert_eq!(s.sent_client_to_peer, s.recv_at_client, "{what}");
            assert_eq!(s.recv_at_peer, s.sent_client_to_peer, "{what}");
            assert_eq!(
                s.relayed_packets,
                s.recv_at_client + s.recv_at_peer,
                "{what}"
            );
            assert_eq!(s.lost, 0, "{what}");
            assert!(r.peak_rss_kib > 0, "{what}");
        }
    }
    assert_gone(&topology);
}

#[test]
fn uturn_and_coturn_relay_everything_from_turnutils_uclient() {
    require_root();
    let topology = unique_topology('e');
    let tb = testbed(&topology, "uclient");
    let shape = UclientShape {
        clients: 3,
        payload: 100,
        interval_ms: 20,
        messages: 50,
    };
    {
        let _guard = topology.up().expect("topology up");
        for name in ["uturn-uring", "coturn"] {
            let config = relay::config(name).unwrap();
            let r = crosscheck::run(&tb, config, "e2e", &shape)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let what = format!("{name}: {:?}", r.stats);
            assert_eq!(r.stats.sent, 150, "{what}");
            assert_eq!(r.stats.received, r.stats.sent, "{what}");
            assert_eq!(r.stats.lost, 0, "{what}");
            assert_eq!(r.stats.send_dropped, 0, "{what}");
            // The measured window is a part of the run.
            assert!(r.relayed_packets() <= 300, "{what}");
        }
    }
    assert_gone(&topology);
}

#[test]
fn a_relay_under_a_cpu_budget_runs_inside_its_cgroup_which_is_removed_after() {
    require_root();
    require_bin("uturn-load");
    let topology = unique_topology('e');
    let mut tb = testbed(&topology, "budget");
    tb.relay_cpu_limit = Some(CpuBudget::new(0.5).unwrap());
    let shape = LoadShape {
        sessions: 5,
        payload: 150,
        kbps: 50,
        duration_secs: 2,
        warmup_secs: 1,
        ramp_up_secs: 1,
    };
    let hierarchy = Hierarchy::detect().expect("cgroup hierarchy with cpu");
    {
        let _guard = topology.up().expect("topology up");
        for name in ["uturn-uring", "coturn"] {
            let config = relay::config(name).unwrap();
            let r = tb
                .run(config, "budget", &shape, 1.0)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let what = format!("{name}: {:?} {:?}", r.window, r.figures);
            assert_eq!(r.summary.lost, 0, "{what}");
            assert_eq!(r.figures.budget_cores, Some(0.5), "{what}");
            assert!(r.figures.budget_used_pct.is_some(), "{what}");
            // The group only counts periods in which it had runnable tasks:
            // the relay (through `ip netns exec`, which hides /sys/fs/cgroup
            // inside) ran in it.
            let t = r.window.throttling.expect("cgroup counters sampled");
            assert!(t.periods > 0, "{what}");
            // Threaded NAPI (the default for every relay): the relay's two
            // veths' NAPI threads received its traffic inside the budget.
            let napi = r.napi_threads.as_ref().expect("NAPI threads placed");
            assert_eq!(napi.relay_side.len(), 2, "{what}");
            assert!(r.window.relay_napi_secs.is_some_and(|s| s > 0.0), "{what}");
            let group = hierarchy.group_dir(&cgroup::group_name(&topology.prefix, name));
            assert!(!group.exists(), "{} left behind", group.display());
        }
    }
    assert_gone(&topology);
}
