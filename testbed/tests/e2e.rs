//! End to end, as root: the topology comes up and goes away without
//! leftovers, and uturn (io_uring) and coTURN each relay every packet of a
//! short run — driven by uturn-load and by coTURN's turnutils_uclient.
//! No CPU figure is asserted: they depend on the machine.
//!
//! Uses the binaries `cargo test --workspace` builds next to this test's
//! `uturn-testbed` (uturn, uturn-load); it builds nothing itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use uturn_testbed::crosscheck::{self, UclientShape};
use uturn_testbed::load::LoadShape;
use uturn_testbed::relay::{self, RelayBinaries};
use uturn_testbed::runner::Testbed;
use uturn_testbed::topology::{existing_namespaces, Topology, TopologyGuard};

fn require_root() {
    let uid = uturn_testbed::procfs::effective_uid().expect("read /proc/self/status");
    assert_eq!(
        uid, 0,
        "the testbed's end-to-end tests need root (network namespaces); run `cargo test` as root"
    );
}

fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uturn-testbed"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

fn require_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build -p uturn -p uturn-bench`)",
        path.display()
    );
    path
}

/// A prefix no other test (or concurrent test run) uses.
fn unique_topology() -> Topology {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix = format!("e{}{n}", std::process::id() % 100_000);
    Topology::new(
        &prefix,
        "10.77.1.0/24".parse().unwrap(),
        "10.77.2.0/24".parse().unwrap(),
    )
    .unwrap()
}

/// Relay and generator on different CPUs where there are two.
fn cpus() -> (Vec<usize>, Vec<usize>) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n >= 2 {
        (vec![1], vec![0])
    } else {
        (vec![0], vec![0])
    }
}

fn testbed(topology: &Topology, raw: &str) -> Testbed {
    let (relay_cpus, load_cpus) = cpus();
    Testbed {
        topology: topology.clone(),
        relay_bins: RelayBinaries {
            uturn: require_bin("uturn"),
            turnserver: "turnserver".into(),
        },
        load_bin: bin_dir().join("uturn-load"),
        self_exe: PathBuf::from(env!("CARGO_BIN_EXE_uturn-testbed")),
        relay_cpus,
        load_cpus,
        relay_threads: 1,
        load_threads: 1,
        perf: false,
        raw_dir: std::env::temp_dir().join(format!("uturn-testbed-e2e-{}-{raw}", topology.prefix)),
    }
}

fn assert_gone(topology: &Topology) {
    let left: Vec<String> = existing_namespaces()
        .into_iter()
        .filter(|n| topology.namespaces().contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn topology_comes_up_with_mtu_1500_and_is_gone_after_drop() {
    require_root();
    let topology = unique_topology();
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
    let topology = unique_topology();
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
    let topology = unique_topology();
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
