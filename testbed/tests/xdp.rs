//! End to end, as root: the `uturn-xdp` configuration relays a short
//! uturn-load run without loss, and uturn's own metrics show that the
//! packets took the XDP fast path in the kernel, not the userspace relay.
//! That is what the far-end preparation of the topology (pass program,
//! checksum offload off) is for: without it (tried) the generator's
//! datagrams carry partial checksums, the program passes them up, and
//! uturn relays them in userspace without loss, so only the XDP counters
//! tell the difference. The kernel's BPF run-time counters, read from the
//! relay's program descriptors as the testbed does, count every forwarded
//! packet too. With threaded NAPI (the testbed's default) the relay's
//! kernel work runs in the relay-side veths' NAPI threads, and their CPU
//! time over the run is non-zero: that is where uturn-xdp's cost is.
//!
//! Uses the binaries `cargo test --workspace` builds next to this test's
//! `uturn-testbed` (uturn, uturn-load); it builds nothing itself.

mod common;

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_gone, require_bin, require_root, testbed, unique_topology};
use uturn_testbed::bpfstats;
use uturn_testbed::load::{self, LoadShape, LoadTarget};
use uturn_testbed::process::wrapped_argv;
use uturn_testbed::relay;
use uturn_testbed::runner::{cpu_list, PASSWORD, REALM, USER};

/// The value of one sample line `series value` of a Prometheus scrape.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn output(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn uturn_xdp_relays_everything_through_the_kernel_path() {
    require_root();
    let load_bin = require_bin("uturn-load");
    assert!(
        uturn_ebpf::PASS_PROGRAM.is_some(),
        "built without clang: no XDP programs to test"
    );
    let topology = unique_topology('x');
    let tb = testbed(&topology, "xdp");
    std::fs::create_dir_all(&tb.raw_dir).unwrap();
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
        for (ns, ifname) in topology.far_ends() {
            let link = output(&["ip", "-n", &ns, "link", "show", "dev", &ifname]);
            assert!(link.contains("xdp"), "no XDP program on {ifname}: {link}");
            let features = output(&["ip", "netns", "exec", &ns, "ethtool", "-k", &ifname]);
            assert!(
                features.contains("tx-checksumming: off"),
                "{ifname}: {features}"
            );
        }

        let config = relay::config("uturn-xdp").unwrap();
        // The program's own run-time counters, as the testbed reads them.
        let stats = bpfstats::StatsSwitch::on();
        assert!(stats.is_some(), "cannot enable kernel.bpf_stats_enabled");
        tb.prepare(config).expect("far ends and threaded NAPI");
        let relay_log = tb.raw_dir.join("uturn-xdp.relay.log");
        let mut relay = tb
            .start_relay(config, &relay_log)
            .unwrap_or_else(|e| panic!("uturn-xdp: {e}"));

        let napi = relay.napi().cloned().expect("threaded NAPI threads placed");
        let napi_before = napi.runtime();
        let json = tb.raw_dir.join("uturn-xdp.load.json");
        let _ = std::fs::remove_file(&json);
        let target = LoadTarget {
            binary: load_bin,
            server: tb.listen_addr(),
            realm: REALM.into(),
            user: USER.into(),
            password: PASSWORD.into(),
            client_ip: topology.client_ip(),
            client_netns: topology.clients_ns(),
            peer_ip: topology.peer_ip(),
            peer_netns: topology.peers_ns(),
            threads: 1,
            cpus: cpu_list(&tb.load_cpus),
            json: json.clone(),
            aligned: false,
        };
        let argv = wrapped_argv(None, None, &load::load_argv(&target, &shape));
        let gen = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stderr(File::create(tb.raw_dir.join("uturn-xdp.load.log")).unwrap())
            .output()
            .expect("run uturn-load");
        let stdout = String::from_utf8_lossy(&gen.stdout);
        let summary = load::parse_summary(&json, &stdout).expect("generator summary");

        let metrics_url = format!("http://{}/metrics", relay::metrics_addr(&tb.relay_params()));
        let metrics = output(&[
            "ip",
            "netns",
            "exec",
            &topology.relay_ns(),
            "curl",
            "-sf",
            "--max-time",
            "10",
            &metrics_url,
        ]);
        let programs = bpfstats::read_process(relay.pid());
        let napi_after = napi.runtime();
        let alive = relay.exited().is_none();
        relay.stop(Duration::from_secs(5));
        drop(stats);
        let log = std::fs::read_to_string(&relay_log).unwrap_or_default();
        assert!(alive, "uturn-xdp exited during the run:\n{log}");

        let what = format!("{summary:?}\nrelay log:\n{log}\nmetrics:\n{metrics}");
        assert!(gen.status.success(), "uturn-load failed: {what}");
        assert_eq!(summary.sessions_established, 5, "{what}");
        assert!(summary.sent_peer_to_client > 0, "{what}");
        assert_eq!(
            summary.recv_at_client, summary.sent_peer_to_client,
            "{what}"
        );
        assert_eq!(summary.recv_at_peer, summary.sent_client_to_peer, "{what}");
        assert_eq!(
            summary.sent_client_to_peer, summary.recv_at_client,
            "{what}"
        );
        assert_eq!(summary.lost, 0, "{what}");

        assert!(!log.contains("XDP fast path unavailable"), "{what}");
        for iface in [topology.relay_client_if(), topology.relay_peer_if()] {
            let series = format!("uturn_xdp_attached{{iface=\"{iface}\"}}");
            assert_eq!(sample(&metrics, &series), 1, "{what}");
        }
        let xdp_to_peer = sample(&metrics, "uturn_xdp_packets_total{direction=\"to_peer\"}");
        let xdp_to_client = sample(&metrics, "uturn_xdp_packets_total{direction=\"to_client\"}");
        let user_to_peer = sample(
            &metrics,
            "uturn_relayed_packets_total{direction=\"to_peer\"}",
        );
        let user_to_client = sample(
            &metrics,
            "uturn_relayed_packets_total{direction=\"to_client\"}",
        );
        // The counters cover the whole run (warm-up and drain too), the
        // generator's only its window: every packet of the window, each
        // way, went through XDP.
        assert!(xdp_to_peer >= summary.recv_at_peer, "{what}");
        assert!(xdp_to_client >= summary.recv_at_client, "{what}");
        // The userspace relay saw at most the odd first packet towards a
        // neighbour the kernel had not resolved yet, never the stream.
        assert!(
            (user_to_peer + user_to_client) * 20 < xdp_to_peer + xdp_to_client,
            "{what}"
        );

        // The relay's XDP program ran once for every packet it forwarded
        // (and for the control traffic it passed up), and took time.
        let runs: u64 = programs.values().map(|p| p.run_cnt).sum();
        let run_ns: u64 = programs.values().map(|p| p.run_time_ns).sum();
        assert!(
            !programs.is_empty(),
            "no BPF program fds in the relay: {what}"
        );
        assert!(runs >= xdp_to_peer + xdp_to_client, "{programs:?} {what}");
        assert!(run_ns > 0, "{programs:?}");

        // The XDP forwarding ran in the relay side's NAPI threads, which
        // took CPU time, and so did the far ends' (the generator's
        // receive path).
        assert_eq!(napi.relay_side.len(), 2, "{napi:?}");
        assert!(
            napi_after.relay_ns > napi_before.relay_ns,
            "{napi_before:?} {napi_after:?}"
        );
        assert!(
            napi_after.far_ns > napi_before.far_ns,
            "{napi_before:?} {napi_after:?}"
        );

        // Other relays can be measured without the preparation.
        topology.clear_far_ends().expect("clear far ends");
        for (ns, ifname) in topology.far_ends() {
            let link = output(&["ip", "-n", &ns, "link", "show", "dev", &ifname]);
            assert!(!link.contains("xdp"), "XDP left on {ifname}: {link}");
            let features = output(&["ip", "netns", "exec", &ns, "ethtool", "-k", &ifname]);
            assert!(
                features.contains("tx-checksumming: on"),
                "{ifname}: {features}"
            );
        }
    }
    assert_gone(&topology);
}
