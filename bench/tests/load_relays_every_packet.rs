//! `uturn-load` against a real uturn relay on 127.0.0.1: in both traffic
//! patterns and both modes, every session is set up, every original sent
//! in the measured window comes back, and the counts on each leg are equal
//! and match the offered rate exactly.
//!
//! The relay binary is the workspace's `uturn`: found next to this test's
//! target directory (`cargo test --workspace` builds it), else built with
//! `cargo build -p uturn`, or taken from `$UTURN_BIN`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::uturn_binary;
use serde_json::Value;
use uturn_stun::{Class, Message, MessageBuilder, Method, TransactionId};

const REALM: &str = "test";
const USER: &str = "alice:secret";
const SECRET: &str = "rest-secret";
const SESSIONS: u64 = 20;
const PAYLOAD: u64 = 150;
const KBPS: u64 = 50;
const WINDOW_SECS: f64 = 2.0;

/// A uturn relay on 127.0.0.1, killed on drop.
struct Relay {
    child: Child,
    listen: SocketAddr,
}

impl Relay {
    /// `relay_ports`: a range of its own (below Linux's ephemeral ports and
    /// away from the 20000–32499 blocks uturn's own tests use).
    fn start(auth: &[&str], relay_ports: (u16, u16)) -> Relay {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(uturn_binary())
            .args(["--listen", &listen.to_string()])
            .args(["--relay-ip", "127.0.0.1", "--realm", REALM])
            .args(["--allow-peer", "127.0.0.0/8"])
            .args(["--min-port", &relay_ports.0.to_string()])
            .args(["--max-port", &relay_ports.1.to_string()])
            .args(["--threads", "1", "--log-level", "warn"])
            .args(auth)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start uturn");
        let relay = Relay { child, listen };
        relay.wait_ready();
        relay
    }

    /// Sends Binding requests until one is answered.
    fn wait_ready(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut request = Vec::new();
        let tid = TransactionId([7; 12]);
        MessageBuilder::new(&mut request, Class::Request, Method::BINDING, tid).finish();
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            sock.send_to(&request, self.listen).unwrap();
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let msg = Message::parse(&buf[..n]).expect("a STUN answer");
                assert_eq!(msg.transaction_id(), tid);
                return;
            }
        }
        panic!("uturn on {} never answered a Binding request", self.listen);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs uturn-load and returns its summary, checking the stdout contract:
/// the two markers, then the JSON (which `--json` also wrote).
fn load(relay: &Relay, auth: &[&str], pattern: &str, mode: &str) -> Value {
    let json_path = std::env::temp_dir().join(format!(
        "uturn-load-test-{}-{pattern}-{mode}.json",
        std::process::id()
    ));
    let output: Output = Command::new(env!("CARGO_BIN_EXE_uturn-load"))
        .args(["--server", &relay.listen.to_string(), "--realm", REALM])
        .args(auth)
        .args(["--sessions", &SESSIONS.to_string()])
        .args(["--payload", &PAYLOAD.to_string()])
        .args(["--kbps", &KBPS.to_string()])
        .args(["--duration", &WINDOW_SECS.to_string()])
        .args(["--warmup", "0.5", "--ramp-up", "0.5", "--drain", "1"])
        .args(["--pattern", pattern, "--mode", mode])
        .args(["--peer-ip", "127.0.0.1", "--no-progress"])
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("run uturn-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "uturn-load {pattern} {mode} failed: {}\n{stderr}",
        output.status
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("@window-start"), "stdout: {stdout}");
    assert_eq!(lines.next(), Some("@window-end"), "stdout: {stdout}");
    let rest: Vec<&str> = lines.collect();
    let summary: Value = serde_json::from_str(&rest.join("\n")).expect("JSON summary on stdout");
    let written = std::fs::read_to_string(&json_path).expect("--json file");
    let _ = std::fs::remove_file(&json_path);
    assert_eq!(
        serde_json::from_str::<Value>(&written).unwrap(),
        summary,
        "--json holds the same summary"
    );
    summary
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {summary}"))
}

/// Every session up, no loss, equal counts on every leg, and as many
/// originals as the rate allows in the window.
fn check(summary: &Value, pattern: &str, mode: &str) {
    let what = format!("{pattern}/{mode}: {summary:#}");
    assert_eq!(count(summary, "sessions_requested"), SESSIONS, "{what}");
    assert_eq!(count(summary, "sessions_established"), SESSIONS, "{what}");
    assert_eq!(count(summary, "allocation_failures"), 0, "{what}");
    assert_eq!(summary["pattern"], pattern, "{what}");
    assert_eq!(summary["mode"], mode, "{what}");
    assert_eq!(count(summary, "lost"), 0, "{what}");
    assert_eq!(summary["loss_ratio"].as_f64(), Some(0.0), "{what}");
    let sent = count(summary, "sent_peer_to_client");
    for key in ["recv_at_client", "sent_client_to_peer", "recv_at_peer"] {
        assert_eq!(count(summary, key), sent, "{key}: {what}");
    }
    assert_eq!(count(summary, "relayed_packets"), 2 * sent, "{what}");
    // 150 B at 50 kbps is one datagram per 24 ms: each session sends
    // ⌊2 s / 24 ms⌋ or that + 1 (83 or 84) in the window, depending on
    // its phase; the phases are evenly spread, so the total is
    // 20 × 83.33 = 1666.7 within one.
    let per_session = WINDOW_SECS * 1e9 / (PAYLOAD as f64 * 8e6 / KBPS as f64);
    let exact = SESSIONS as f64 * per_session;
    assert!(
        (sent as f64 - exact).abs() <= 1.0,
        "{sent} originals, expected {exact}: {what}"
    );
    let offered = summary["offered_pps_one_way"].as_f64().unwrap();
    assert!((offered - SESSIONS as f64 * per_session / WINDOW_SECS).abs() < 1e-6);
    assert_eq!(summary["window_secs"].as_f64(), Some(WINDOW_SECS), "{what}");
    let rtt = &summary["rtt_us"];
    assert!(
        count(rtt, "p50") > 0 && count(rtt, "p50") <= count(rtt, "p99"),
        "{what}"
    );
    assert!(count(rtt, "p999") <= count(rtt, "max"), "{what}");
    assert!(summary["jitter_us"].as_f64().is_some(), "{what}");
    assert_eq!(
        summary["setup_failures_by_code"],
        serde_json::json!({}),
        "{what}"
    );
    assert_eq!(count(summary, "generator_send_dropped"), 0, "{what}");
    assert_eq!(count(summary, "teardown_unanswered"), 0, "{what}");
}

#[test]
fn every_packet_comes_back_in_both_patterns_and_modes() {
    let relay = Relay::start(&["--user", USER], (16000, 16499));
    for pattern in ["peer-echo", "client-echo"] {
        for mode in ["channel", "send"] {
            let summary = load(&relay, &["--user", USER], pattern, mode);
            check(&summary, pattern, mode);
        }
    }
}

#[test]
fn rest_credentials_work_and_wrong_ones_are_counted_as_401() {
    let relay = Relay::start(&["--auth-secret", SECRET], (16500, 16999));
    let summary = load(&relay, &["--auth-secret", SECRET], "client-echo", "channel");
    check(&summary, "client-echo", "channel");

    // A wrong password: every allocation fails with 401, the run still
    // ends with a summary (failures are counted, not fatal).
    let summary = load(&relay, &["--user", "alice:wrong"], "peer-echo", "channel");
    assert_eq!(count(&summary, "sessions_established"), 0, "{summary}");
    assert_eq!(
        count(&summary, "allocation_failures"),
        SESSIONS,
        "{summary}"
    );
    assert_eq!(
        summary["setup_failures_by_code"],
        serde_json::json!({ "401": SESSIONS })
    );
    assert_eq!(count(&summary, "sent_peer_to_client"), 0);
}
