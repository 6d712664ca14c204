//! As root, on a real topology of our own (prefix `t6b…`): threaded NAPI
//! on all four veth ends gives each end a `napi/IFACE-N` kernel thread that
//! the testbed finds, pins (relay side to the relay's CPUs, far side to the
//! generator's), puts into a CPU-budget cgroup and hands back to the root
//! group when the cgroup goes; traffic through the relay namespace shows up
//! as CPU time (and runs) of the relay side's threads; switching it off
//! removes them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_gone, cpus, require_root};
use uturn_testbed::cgroup::{self, CpuBudget, CpuCgroup, Hierarchy};
use uturn_testbed::napi::{self, NapiThreads};
use uturn_testbed::runner::cpu_list;
use uturn_testbed::topology::Topology;

fn affinity(pid: u32) -> String {
    let out = Command::new("taskset")
        .args(["-c", "-p", &pid.to_string()])
        .output()
        .expect("taskset");
    // "pid N's current affinity list: 1"
    String::from_utf8_lossy(&out.stdout)
        .rsplit(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[test]
fn napi_threads_are_found_pinned_budgeted_and_counted() {
    require_root();
    let prefix = format!("t6b{}", std::process::id() % 10_000);
    let topology = Topology::new(
        &prefix,
        "10.116.11.0/24".parse().unwrap(),
        "10.116.12.0/24".parse().unwrap(),
    )
    .unwrap()
    .with_far_end_xdp(false);
    let (relay_cpus, load_cpus) = cpus();
    {
        let _guard = topology.up().expect("topology up");
        // Without NAPI (no GRO, no XDP) veth has no NAPI threads.
        assert!(napi::find_threads(&topology.relay_ifaces()).is_empty());
        assert!(NapiThreads::discover(&topology.relay_ifaces(), &[]).is_err());

        topology.set_threaded_napi(true).expect("threaded NAPI on");
        let threads = NapiThreads::discover(&topology.relay_ifaces(), &topology.far_ifaces())
            .expect("a NAPI thread per veth end");
        for (side, ifaces) in [
            (&threads.relay_side, topology.relay_ifaces()),
            (&threads.far_side, topology.far_ifaces()),
        ] {
            for iface in ifaces {
                assert_eq!(
                    side.iter().filter(|t| t.iface == iface).count(),
                    1,
                    "{threads:?}"
                );
            }
        }
        for t in threads.relay_side.iter().chain(&threads.far_side) {
            assert!(napi::pid_is_kernel_thread(t.pid), "{t:?}");
        }
        // Idempotent: switching it on again keeps the same threads.
        topology.set_threaded_napi(true).unwrap();
        assert_eq!(
            NapiThreads::discover(&topology.relay_ifaces(), &topology.far_ifaces()).unwrap(),
            threads
        );

        threads
            .pin(&cpu_list(&relay_cpus), &cpu_list(&load_cpus))
            .expect("pin");
        for t in &threads.relay_side {
            assert_eq!(affinity(t.pid), cpu_list(&relay_cpus), "{t:?}");
        }
        for t in &threads.far_side {
            assert_eq!(affinity(t.pid), cpu_list(&load_cpus), "{t:?}");
        }

        // Into a budget cgroup and out again when it is removed: kernel
        // threads ignore SIGKILL, so without the hand-back the group could
        // never be removed.
        let hierarchy = Hierarchy::detect().expect("cpu cgroup hierarchy");
        let group = CpuCgroup::create(
            &hierarchy,
            &cgroup::group_name(&prefix, "napi"),
            CpuBudget::new(0.5).unwrap(),
        )
        .expect("cgroup");
        for t in &threads.relay_side {
            group.adopt(t.pid).expect("adopt a NAPI thread");
        }
        let mut members = group.pids();
        members.sort_unstable();
        let mut expected: Vec<u32> = threads.relay_side.iter().map(|t| t.pid).collect();
        expected.sort_unstable();
        assert_eq!(members, expected);
        let dir = group.dir().to_path_buf();
        drop(group);
        assert!(!dir.exists(), "{} left behind", dir.display());
        for t in &threads.relay_side {
            // Still alive (not killed), back in the root group.
            assert!(napi::pid_is_kernel_thread(t.pid), "{t:?}");
            let root = std::fs::read_to_string(hierarchy.root.join("cgroup.procs")).unwrap();
            assert!(
                root.split_whitespace().any(|p| p == t.pid.to_string()),
                "{t:?} not in the root group"
            );
        }

        // Traffic routed through the relay namespace is received by the
        // relay side's NAPI threads: their CPU time grows.
        let before = threads.runtime();
        // UDP to a closed port of the peer, sent from the clients'
        // namespace (bash's /dev/udp); each datagram crosses the relay
        // namespace, each ICMP answer crosses it back.
        let send = format!(
            "for i in $(seq 300); do echo datagram > /dev/udp/{}/9; done",
            topology.peer_ip()
        );
        let sent = Command::new("ip")
            .args(["netns", "exec", &topology.clients_ns(), "bash", "-c", &send])
            .output()
            .expect("bash");
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        let after = threads.runtime();
        assert!(after.relay_ns > before.relay_ns, "{before:?} {after:?}");
        assert!(
            after.relay_slices > before.relay_slices,
            "{before:?} {after:?}"
        );
        assert!(after.far_ns > before.far_ns, "{before:?} {after:?}");

        // Off: NAPI (and its threads) go away with GRO.
        topology
            .set_threaded_napi(false)
            .expect("threaded NAPI off");
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            napi::find_threads(&topology.relay_ifaces()).is_empty()
        });
        assert!(gone, "{:?}", napi::find_threads(&topology.relay_ifaces()));
    }
    assert_gone(&topology);
}
