//! The XDP fast path relays channel traffic in the kernel: real clients
//! (coTURN's `turnutils_uclient`, aioice) relay through uturn started with
//! `--xdp veth-r`, the peer gets every datagram intact (the receiving
//! kernel verifies the rewritten UDP checksums and drops bad ones, so loss
//! would show), and the XDP counters account for the relayed packets.
//!
//! Topology (as in the issue's contract), made fresh per test:
//!
//! ```text
//!  netns h8r<N>                          netns h8c<N>
//!  veth-r 10.77.0.1/24  <--- veth --->   veth-c 10.77.0.2 (clients), 10.77.0.3 (peers), GRO on
//!  uturn --xdp veth-r
//! ```
//!
//! Client and peer sit behind the same interface, so the program answers
//! with XDP_TX; veth delivers such frames only to a far end that runs XDP
//! (GRO alone did not do it on kernel 6.18), so `veth-c` gets the
//! pass-everything program `uturn_ebpf::PASS_PROGRAM`. Its checksum offload
//! is off, as a real NIC's peer would send complete checksums: with it on,
//! the kernel hands over partial checksums, which the program sends up to
//! userspace (tested below). Needs root (namespaces, BPF): CI runs as root.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{client_asset, require_python_module, require_tool, Background};

const RELAY_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const PEER_IP: &str = "10.77.0.3";
const LISTEN_PORT: u16 = 3478;
const METRICS_PORT: u16 = 9478;

/// The tests share the 10.77.0.0/24 addresses in their own namespaces, but
/// run one at a time so a failure is easy to read and CPU stays free.
static SERIAL: Mutex<()> = Mutex::new(());

fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("run id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the XDP tests need root (network namespaces and BPF); CI runs as root"
    );
}

/// A relay namespace and a client/peer namespace joined by a veth pair;
/// deleted on drop (which also removes the veth pair and any XDP program).
struct Netns {
    relay: String,
    client: String,
}

impl Netns {
    fn new() -> Netns {
        Netns::with_client_checksum_offload(false)
    }

    fn with_client_checksum_offload(offload: bool) -> Netns {
        require_root();
        require_tool("ip");
        require_tool("ethtool");
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            relay: format!("h8r{n}"),
            client: format!("h8c{n}"),
        };
        let (r, c) = (ns.relay.as_str(), ns.client.as_str());
        sh(&["ip", "netns", "add", r]);
        sh(&["ip", "netns", "add", c]);
        sh(&[
            "ip", "link", "add", "veth-r", "netns", r, "type", "veth", "peer", "name", "veth-c",
            "netns", c,
        ]);
        sh(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "veth-r",
        ]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            "10.77.0.2/24",
            "dev",
            "veth-c",
        ]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            "10.77.0.3/24",
            "dev",
            "veth-c",
        ]);
        sh(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            "veth-r",
            "nodad",
        ]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            "fd77::2/64",
            "dev",
            "veth-c",
            "nodad",
        ]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            "fd77::3/64",
            "dev",
            "veth-c",
            "nodad",
        ]);
        // bpf_fib_lookup needs forwarding on the ingress interface; uturn
        // turns on IPv4's itself, IPv6's is the operator's (docs/xdp.md).
        sh(&[
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv6.conf.veth-r.forwarding=1",
        ]);
        for (ns_name, dev) in [(r, "veth-r"), (c, "veth-c"), (r, "lo"), (c, "lo")] {
            sh(&["ip", "-n", ns_name, "link", "set", dev, "up"]);
        }
        // NAPI on the receiving end, so XDP_TX frames arrive (drivers/net/veth.c).
        sh(&[
            "ip", "netns", "exec", c, "ethtool", "-K", "veth-c", "gro", "on",
        ]);
        let pass = common::scratch_dir().join("uturn-pass.bpf.o");
        std::fs::write(&pass, uturn_ebpf::PASS_PROGRAM.expect("built with clang"))
            .expect("write the pass program");
        let pass = pass.to_string_lossy().into_owned();
        sh(&[
            "ip", "-n", c, "link", "set", "dev", "veth-c", "xdpdrv", "obj", &pass, "sec", "xdp",
        ]);
        let tx = if offload { "on" } else { "off" };
        sh(&[
            "ip", "netns", "exec", c, "ethtool", "-K", "veth-c", "tx", tx,
        ]);
        ns
    }

    /// A command run inside namespace `ns`.
    fn cmd(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    fn in_relay(&self, program: &str) -> Command {
        Netns::cmd(&self.relay, program)
    }

    fn in_client(&self, program: &str) -> Command {
        Netns::cmd(&self.client, program)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.relay, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// uturn inside the relay namespace, with the contract's flags.
struct Relay {
    process: Background,
    metrics_ns: String,
}

impl Relay {
    fn start(ns: &Netns, xdp_iface: &str, extra: &[&str]) -> Relay {
        let mut cmd = ns.in_relay(env!("CARGO_BIN_EXE_uturn"));
        cmd.args(["--listen", &format!("{RELAY_IP}:{LISTEN_PORT}")])
            .args(["--relay-ip", RELAY_IP, "--realm", "test"])
            .args(["--user", "alice:secret", "--allow-peer", "10.77.0.0/24"])
            .args(["--xdp", xdp_iface])
            .args(["--metrics", &format!("{RELAY_IP}:{METRICS_PORT}")])
            .args(["--threads", "2", "--log-level", "debug"])
            .args(extra);
        let mut relay = Relay {
            process: Background::spawn(&mut cmd, "uturn"),
            metrics_ns: ns.relay.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !relay.log().contains("started") {
            assert!(relay.process.is_alive(), "uturn exited:\n{}", relay.log());
            assert!(
                Instant::now() < deadline,
                "uturn never started:\n{}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    fn log(&self) -> String {
        self.process.log()
    }

    fn metrics(&self) -> String {
        let out = common::run(
            Netns::cmd(&self.metrics_ns, "curl")
                .args(["-sf", &format!("http://{RELAY_IP}:{METRICS_PORT}/metrics")]),
            Duration::from_secs(10),
        );
        assert!(out.success(), "metrics scrape failed: {out}");
        out.stdout
    }

    fn metric(&self, series: &str) -> u64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

/// Starts coTURN's echo peer on PEER_IP inside the client namespace.
fn echo_peer(ns: &Netns, port: u16) -> Background {
    echo_peer_at(ns, PEER_IP, port)
}

fn echo_peer_at(ns: &Netns, ip: &str, port: u16) -> Background {
    require_tool("turnutils_peer");
    let peer = Background::spawn(
        ns.in_client("turnutils_peer")
            .args(["-L", ip, "-p", &port.to_string()]),
        "turnutils_peer",
    );
    // turnutils_peer binds at once; give it a moment before traffic.
    std::thread::sleep(Duration::from_millis(300));
    peer
}

/// Runs `turnutils_uclient` in the client namespace; returns (sent, received, lost).
fn uclient(ns: &Netns, peer_port: u16, messages: u32, extra: &[&str]) -> (u64, u64, u64, String) {
    uclient_at(
        ns,
        [CLIENT_IP, PEER_IP, RELAY_IP],
        peer_port,
        messages,
        extra,
    )
}

/// `uclient` with the (client, peer, relay) addresses given.
fn uclient_at(
    ns: &Netns,
    [client, peer, relay]: [&str; 3],
    peer_port: u16,
    messages: u32,
    extra: &[&str],
) -> (u64, u64, u64, String) {
    require_tool("turnutils_uclient");
    let out = common::run(
        ns.in_client("turnutils_uclient")
            .args(["-p", &LISTEN_PORT.to_string()])
            .args(["-e", peer, "-r", &peer_port.to_string()])
            .args(["-n", &messages.to_string(), "-l", "200", "-m", "2"])
            .args(["-L", client, "-u", "alice", "-w", "secret"])
            .args(extra)
            .arg(relay),
        Duration::from_secs(90),
    );
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(out.success(), "turnutils_uclient failed:\n{out}");
    let number = |line_key: &str, key: &str| -> u64 {
        all.lines()
            .rev()
            .find(|l| l.contains(line_key))
            .and_then(|l| {
                let rest = &l[l.find(key)? + key.len()..];
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {key} in uclient output:\n{all}"))
    };
    let sent = number("tot_send_msgs=", "tot_send_msgs=");
    let received = number("tot_recv_msgs=", "tot_recv_msgs=");
    let lost = number("Total lost packets", "Total lost packets ");
    (sent, received, lost, all)
}

#[test]
fn uclient_channels_are_relayed_in_xdp_without_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let relay = Relay::start(&ns, "veth-r", &[]);
    assert!(
        relay.log().contains("XDP fast path attached"),
        "{}",
        relay.log()
    );
    assert_eq!(relay.metric("uturn_xdp_attached{iface=\"veth-r\"}"), 1);
    let _peer = echo_peer(&ns, 3480);

    // Channels are uclient's default (no -s).
    let (sent, received, lost, out) = uclient(&ns, 3480, 40, &[]);
    let context = || format!("{out}\n--- relay ---\n{}", relay.log());
    assert!(sent > 0, "{}", context());
    assert_eq!(lost, 0, "{}", context());
    assert_eq!(sent, received, "{}", context());

    // Every echoed message went client→peer and peer→client. The channel
    // binding is only installed after the ChannelBind answer, so the first
    // datagrams of a client may have gone through userspace; the bulk must
    // be XDP's, and XDP plus userspace must account for all of them.
    let xdp_to_peer = relay.metric("uturn_xdp_packets_total{direction=\"to_peer\"}");
    let xdp_to_client = relay.metric("uturn_xdp_packets_total{direction=\"to_client\"}");
    let user_to_peer = relay.metric("uturn_relayed_packets_total{direction=\"to_peer\"}");
    let user_to_client = relay.metric("uturn_relayed_packets_total{direction=\"to_client\"}");
    assert!(
        xdp_to_peer >= sent / 2,
        "to_peer xdp {xdp_to_peer} of {sent}\n{}",
        context()
    );
    assert!(
        xdp_to_client >= sent / 2,
        "to_client xdp {xdp_to_client} of {sent}\n{}",
        context()
    );
    assert!(xdp_to_peer + user_to_peer >= sent, "{}", context());
    assert!(xdp_to_client + user_to_client >= received, "{}", context());
    assert!(relay.metric("uturn_xdp_bytes_total{direction=\"to_peer\"}") >= xdp_to_peer * 200);
}

#[test]
fn ipv6_channels_are_relayed_in_xdp_without_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let v6 = [
        "--listen",
        "[fd77::1]:3478",
        "--relay-ip",
        "fd77::1",
        "--allow-peer",
        "fd77::/64",
    ];
    let relay = Relay::start(&ns, "veth-r", &v6);
    let _peer = echo_peer_at(&ns, "fd77::3", 3480);
    let (sent, received, lost, out) =
        uclient_at(&ns, ["fd77::2", "fd77::3", "fd77::1"], 3480, 40, &[]);
    let context = || format!("{out}\n--- relay ---\n{}", relay.log());
    assert!(sent > 0, "{}", context());
    assert_eq!(lost, 0, "{}", context());
    assert_eq!(sent, received, "{}", context());
    // IPv6 requires the UDP checksum (RFC 8200 §8.1); the client's kernel
    // verified every rewritten one, or the datagram would have been lost.
    let xdp_to_peer = relay.metric("uturn_xdp_packets_total{direction=\"to_peer\"}");
    let xdp_to_client = relay.metric("uturn_xdp_packets_total{direction=\"to_client\"}");
    assert!(xdp_to_peer >= sent / 2, "{}", context());
    assert!(xdp_to_client >= sent / 2, "{}", context());
}

#[test]
fn the_program_is_detached_on_shutdown_and_after_a_crash() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let attached = || {
        let out = ns
            .in_relay("ip")
            .args(["link", "show", "dev", "veth-r"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    let forwarding = || {
        let out = ns
            .in_relay("sysctl")
            .args(["-n", "net.ipv4.conf.veth-r.forwarding"])
            .output()
            .expect("sysctl");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(forwarding(), "0");
    let start = || {
        let log = common::scratch_dir().join(format!("uturn-detach-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child = ns
            .in_relay(env!("CARGO_BIN_EXE_uturn"))
            .args(["--listen", &format!("{RELAY_IP}:{LISTEN_PORT}")])
            .args([
                "--relay-ip",
                RELAY_IP,
                "--user",
                "alice:secret",
                "--xdp",
                "veth-r",
            ])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start uturn");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(Instant::now() < deadline, "uturn never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        (child, log)
    };

    // A clean shutdown detaches and restores what uturn changed.
    let (mut child, log) = start();
    assert!(attached());
    assert_eq!(
        forwarding(),
        "1",
        "uturn enables IPv4 forwarding for bpf_fib_lookup"
    );
    sh(&["kill", "-TERM", &child.id().to_string()]);
    let status = child.wait().expect("wait");
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{log}");
    assert!(!attached(), "still attached after shutdown:\n{log}");
    assert_eq!(forwarding(), "0");

    // A crash closes the BPF link's file descriptor: the kernel detaches.
    let (mut child, _) = start();
    assert!(attached());
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(!attached(), "a killed uturn left its program attached");
}

#[test]
fn send_indications_stay_in_userspace() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let relay = Relay::start(&ns, "veth-r", &[]);
    let _peer = echo_peer(&ns, 3480);
    let (sent, received, lost, out) = uclient(&ns, 3480, 20, &["-s"]);
    let context = || format!("{out}\n--- relay ---\n{}", relay.log());
    assert_eq!(lost, 0, "{}", context());
    assert_eq!(sent, received, "{}", context());
    assert_eq!(
        relay.metric("uturn_xdp_packets_total{direction=\"to_peer\"}"),
        0,
        "{}",
        context()
    );
    assert!(
        relay.metric("uturn_relayed_packets_total{direction=\"to_peer\"}") >= sent,
        "{}",
        context()
    );
}

#[test]
fn aioice_client_is_relayed_in_xdp() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_python_module("aioice");
    let ns = Netns::new();
    let relay = Relay::start(&ns, "veth-r", &[]);
    let count = 25u64;
    let out = common::run(
        ns.in_client("python3")
            .arg(client_asset("aioice_turn.py"))
            .args(["--server", &format!("{RELAY_IP}:{LISTEN_PORT}")])
            .args(["--username", "alice", "--password", "secret"])
            .args([
                "--peer-ip",
                PEER_IP,
                "--count",
                &count.to_string(),
                "--size",
                "300",
            ]),
        Duration::from_secs(60),
    );
    let context = || format!("{out}\n--- relay ---\n{}", relay.log());
    assert!(out.success(), "aioice client failed:\n{}", context());
    let result: serde_json::Value = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT line is JSON"))
        .unwrap_or_else(|| panic!("no RESULT line:\n{}", context()));
    assert_eq!(result["echoed"].as_u64(), Some(count), "{}", context());
    let xdp = relay.metric("uturn_xdp_packets_total{direction=\"to_peer\"}")
        + relay.metric("uturn_xdp_packets_total{direction=\"to_client\"}");
    assert!(xdp > 0, "no packet went through XDP\n{}", context());
}

#[test]
fn a_missing_interface_is_one_log_line_and_userspace_still_relays() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let relay = Relay::start(&ns, "nonexistent0", &[]);
    let log = relay.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("XDP fast path unavailable"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("nonexistent0"), "{log}");
    let _peer = echo_peer(&ns, 3480);
    let (sent, received, lost, out) = uclient(&ns, 3480, 20, &[]);
    assert_eq!(lost, 0, "{out}\n{}", relay.log());
    assert_eq!(sent, received, "{out}\n{}", relay.log());
    assert!(relay.metric("uturn_relayed_packets_total{direction=\"to_peer\"}") >= sent);
    assert_eq!(relay.metric("uturn_xdp_rules"), 0);
}

#[test]
fn partial_checksums_from_offloading_senders_go_to_userspace() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // veth-c offloads checksums: its frames carry only the pseudo-header sum.
    let ns = Netns::with_client_checksum_offload(true);
    let relay = Relay::start(&ns, "veth-r", &[]);
    let _peer = echo_peer(&ns, 3480);
    let (sent, received, lost, out) = uclient(&ns, 3480, 20, &[]);
    let context = || format!("{out}\n--- relay ---\n{}", relay.log());
    assert_eq!(lost, 0, "{}", context());
    assert_eq!(sent, received, "{}", context());
    assert!(
        relay.metric("uturn_xdp_passed_packets_total{reason=\"checksum\"}") > 0,
        "{}",
        context()
    );
    assert_eq!(
        relay.metric("uturn_xdp_packets_total{direction=\"to_peer\"}"),
        0,
        "{}",
        context()
    );
}

// ---- Scenarios run inside the client namespace ---------------------------
//
// The test's own TURN client (tests/common/turn.rs) must run inside the
// client namespace. The test binary re-runs itself there (`ip netns exec`)
// with only the `in_client_namespace` helper selected; the helper reads the
// scenario from the environment and asserts everything itself.

const SCENARIO_ENV: &str = "UTURN_XDP_SCENARIO";

fn run_scenario(ns: &Netns, relay: &Relay, scenario: &str) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = common::run(
        Netns::cmd(&ns.client, &exe.to_string_lossy())
            .args(["--exact", "in_client_namespace", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(SCENARIO_ENV, scenario),
        Duration::from_secs(60),
    );
    assert!(
        out.success() && out.stdout.contains("1 passed"),
        "scenario {scenario} failed:\n{out}\n--- relay ---\n{}",
        relay.log()
    );
}

/// Scrapes one series from inside the client namespace.
fn scrape(series: &str) -> u64 {
    let addr: SocketAddr = format!("{RELAY_IP}:{METRICS_PORT}").parse().unwrap();
    let (status, text) = common::http_request(addr, "GET", "/metrics");
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Polls a series until it equals `want` (the relay's timers run on their
/// own clock); fails after 15 s.
fn wait_for(series: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = scrape(series);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client with one channel (0x4000) bound to a fresh peer socket.
fn bound_client() -> (common::turn::Client, UdpSocket, SocketAddr) {
    let server: SocketAddr = format!("{RELAY_IP}:{LISTEN_PORT}").parse().unwrap();
    let mut client = common::turn::Client::new(server, "alice", "secret");
    client.sock = UdpSocket::bind((CLIENT_IP, 0)).expect("bind client");
    client
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let peer = UdpSocket::bind((PEER_IP, 0)).expect("bind peer");
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let relayed = client.allocate().expect("allocate");
    client
        .channel_bind(0x4000, peer_addr)
        .expect("channel bind");
    (client, peer, relayed)
}

/// The peer receives exactly `want` from the relayed address.
fn peer_receives(peer: &UdpSocket, relayed: SocketAddr, want: &[u8]) {
    let mut buf = [0u8; 2048];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("the peer receives the datagram");
    assert_eq!(from, relayed);
    assert_eq!(&buf[..n], want);
}

/// A full round trip through channel 0x4000: client → peer → client.
fn round_trip(
    client: &common::turn::Client,
    peer: &UdpSocket,
    relayed: SocketAddr,
    payload: &[u8],
) {
    client.send_channel(0x4000, payload);
    peer_receives(peer, relayed, payload);
    peer.send_to(payload, relayed).expect("peer answers");
    let (channel, _, data) = client
        .recv_data(Duration::from_secs(2))
        .expect("the answer comes back as ChannelData");
    assert_eq!(channel, 0x4000);
    assert_eq!(data, payload);
}

fn xdp_packets() -> u64 {
    scrape("uturn_xdp_packets_total{direction=\"to_peer\"}")
        + scrape("uturn_xdp_packets_total{direction=\"to_client\"}")
}

#[test]
#[ignore = "run by the other tests inside the client namespace"]
fn in_client_namespace() {
    let scenario =
        std::env::var(SCENARIO_ENV).expect("only the XDP tests run this, inside their namespace");
    match scenario.as_str() {
        "padded_then_refresh_zero" => {
            let (mut client, peer, relayed) = bound_client();
            wait_for("uturn_xdp_rules", 1);
            // The relay has not talked to the peer yet: its first datagram
            // finds no neighbour entry and goes up to userspace (the stack
            // resolves the MAC). From then on, everything is XDP's.
            let before = scrape("uturn_xdp_passed_packets_total{reason=\"no_neighbour\"}");
            round_trip(&client, &peer, relayed, b"warm-up");
            assert!(
                xdp_packets() + scrape("uturn_xdp_passed_packets_total{reason=\"no_neighbour\"}")
                    - before
                    >= 2
            );
            // Odd and even sizes: the checksum update must hold for both.
            for size in [1usize, 2, 3, 100, 1001] {
                let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
                let before = xdp_packets();
                round_trip(&client, &peer, relayed, &payload);
                assert_eq!(xdp_packets(), before + 2, "both directions in XDP");
            }

            // Padded ChannelData (RFC 8656 §12.5 allows padding to 4 bytes):
            // the length does not match the UDP payload, so userspace relays it.
            let passed = scrape("uturn_xdp_passed_packets_total{reason=\"length\"}");
            let mut padded = common::turn::channel_data(0x4000, b"hello");
            padded.extend_from_slice(&[0, 0, 0]);
            client.sock.send_to(&padded, client.server).unwrap();
            peer_receives(&peer, relayed, b"hello");
            assert_eq!(
                scrape("uturn_xdp_passed_packets_total{reason=\"length\"}"),
                passed + 1
            );

            // Refresh with LIFETIME 0 ends the allocation: the rule goes.
            client.delete().expect("refresh 0");
            wait_for("uturn_xdp_rules", 0);
            client.send_channel(0x4000, b"after delete");
            let mut buf = [0u8; 64];
            assert!(
                peer.recv_from(&mut buf).is_err(),
                "nothing is relayed once the allocation is gone"
            );
        }
        "channel_expiry" => {
            let (client, peer, relayed) = bound_client();
            wait_for("uturn_xdp_rules", 1);
            round_trip(&client, &peer, relayed, b"while bound");
            // The relay runs with --channel-lifetime 2 and the test never
            // refreshes the binding: the control plane's expiry removes it.
            wait_for("uturn_xdp_rules", 0);
            client.send_channel(0x4000, b"after expiry");
            let mut buf = [0u8; 64];
            assert!(
                peer.recv_from(&mut buf).is_err(),
                "an expired channel relays nothing"
            );
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn padded_channel_data_goes_to_userspace_and_refresh_zero_removes_rules() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let relay = Relay::start(&ns, "veth-r", &[]);
    run_scenario(&ns, &relay, "padded_then_refresh_zero");
}

#[test]
fn expired_channels_leave_xdp() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new();
    let relay = Relay::start(&ns, "veth-r", &["--channel-lifetime", "2"]);
    run_scenario(&ns, &relay, "channel_expiry");
}
