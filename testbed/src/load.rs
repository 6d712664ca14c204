//! Driving `uturn-load` (bench/src/bin/uturn-load.rs): its command line and
//! its JSON summary, as fixed by the load generator's contract.
//!
//! The generator prints `@window-start` and `@window-end` on stdout exactly
//! when its measured window begins and ends; [`read_markers`] calls back on
//! each so the testbed samples the relay's CPU at those instants.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The per-run load: how many sessions and what each one sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadShape {
    pub sessions: u32,
    /// UDP payload bytes of each original (and echo).
    pub payload: u32,
    /// One-way bitrate of each session, kbit/s.
    pub kbps: u32,
    pub duration_secs: u32,
    pub warmup_secs: u32,
    pub ramp_up_secs: u32,
}

impl LoadShape {
    /// Packets per second one session sends one way.
    pub fn pps_per_session(&self) -> f64 {
        f64::from(self.kbps) * 1000.0 / (f64::from(self.payload) * 8.0)
    }

    /// Packets per second the relay is offered: originals one way plus
    /// their echoes the other way.
    pub fn offered_relayed_pps(&self) -> f64 {
        2.0 * f64::from(self.sessions) * self.pps_per_session()
    }
}

/// Where and how the generator runs.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    pub binary: PathBuf,
    pub server: SocketAddr,
    pub realm: String,
    pub user: String,
    pub password: String,
    pub client_ip: Ipv4Addr,
    pub client_netns: String,
    pub peer_ip: Ipv4Addr,
    pub peer_netns: String,
    pub threads: usize,
    /// CPU list for `--cpus` (e.g. `0`).
    pub cpus: String,
    pub json: PathBuf,
    /// `--aligned`: every session sends in the same instant of its period.
    pub aligned: bool,
}

/// `uturn-load`'s command line for `shape` against `target`.
pub fn load_argv(target: &LoadTarget, shape: &LoadShape) -> Vec<String> {
    let mut argv = vec![target.binary.display().to_string()];
    let mut flag = |k: &str, v: String| argv.extend([k.to_string(), v]);
    flag("--server", target.server.to_string());
    flag("--realm", target.realm.clone());
    flag("--user", format!("{}:{}", target.user, target.password));
    flag("--sessions", shape.sessions.to_string());
    flag("--payload", shape.payload.to_string());
    flag("--kbps", shape.kbps.to_string());
    flag("--duration", shape.duration_secs.to_string());
    flag("--warmup", shape.warmup_secs.to_string());
    flag("--ramp-up", shape.ramp_up_secs.to_string());
    flag("--pattern", "peer-echo".to_string());
    flag("--mode", "channel".to_string());
    flag("--client-ip", target.client_ip.to_string());
    flag("--client-netns", target.client_netns.clone());
    flag("--peer-ip", target.peer_ip.to_string());
    flag("--peer-netns", target.peer_netns.clone());
    flag("--threads", target.threads.to_string());
    flag("--cpus", target.cpus.clone());
    flag("--json", target.json.display().to_string());
    if target.aligned {
        argv.push("--aligned".to_string());
    }
    argv.push("--no-progress".to_string());
    argv
}

/// RTT percentiles in µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rtt {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The generator's JSON summary (counts cover the measured window only).
/// Fields the testbed does not use are kept in `other` for the raw files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadSummary {
    pub sessions_requested: u64,
    pub sessions_established: u64,
    pub allocation_failures: u64,
    pub offered_pps_one_way: f64,
    pub window_secs: f64,
    pub sent_peer_to_client: u64,
    pub recv_at_client: u64,
    pub sent_client_to_peer: u64,
    pub recv_at_peer: u64,
    pub relayed_packets: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub rtt_us: Rtt,
    pub jitter_us: f64,
    pub setup_failures_by_code: BTreeMap<String, u64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Share of late originals above which the generator is taken to have
/// fallen behind its schedule (it counts an original as late at 1 ms,
/// bench/src/load/worker.rs).
pub const LATE_SHARE_LIMIT: f64 = 0.01;

impl LoadSummary {
    fn other_u64(&self, key: &str) -> u64 {
        self.other.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    /// Whether the generator could not keep its own schedule: more than
    /// [`LATE_SHARE_LIMIT`] of its originals went out late, or it dropped
    /// sends. Then the offered load was not what was asked for and the run
    /// says nothing about the relay's limit.
    pub fn fell_behind(&self) -> bool {
        let originals = self.sent_peer_to_client.max(self.sent_client_to_peer);
        let late = self.other_u64("generator_late_sends");
        self.other_u64("generator_send_dropped") > 0
            || (originals > 0 && late as f64 > LATE_SHARE_LIMIT * originals as f64)
    }
}

/// Errors from a generator run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("uturn-load printed no JSON summary (exit {status}); stderr:\n{stderr}")]
    NoSummary { status: String, stderr: String },
    #[error("uturn-load's summary is not valid JSON: {0}")]
    BadSummary(#[from] serde_json::Error),
    #[error("uturn-load never printed {0}")]
    NoMarker(&'static str),
}

/// Parses the summary: the JSON file if it was written, else the text the
/// generator printed after `@window-end`.
pub fn parse_summary(json_file: &Path, stdout_tail: &str) -> Result<LoadSummary, LoadError> {
    let text = std::fs::read_to_string(json_file).unwrap_or_else(|_| stdout_tail.to_owned());
    let start = text.find('{').ok_or(LoadError::NoSummary {
        status: "?".into(),
        stderr: String::new(),
    })?;
    Ok(serde_json::from_str(&text[start..])?)
}

/// A marker line of the generator's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    WindowStart,
    WindowEnd,
}

/// Reads the generator's stdout to its end, calling `on_marker` on each
/// marker line; returns the other lines (the JSON summary among them).
pub fn read_markers(out: impl BufRead, mut on_marker: impl FnMut(Marker)) -> String {
    let mut rest = String::new();
    for line in out.lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "@window-start" => on_marker(Marker::WindowStart),
            "@window-end" => on_marker(Marker::WindowEnd),
            _ => {
                rest.push_str(&line);
                rest.push('\n');
            }
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> LoadTarget {
        LoadTarget {
            binary: "/b/uturn-load".into(),
            server: "10.77.1.1:3478".parse().unwrap(),
            realm: "test".into(),
            user: "load".into(),
            password: "secret".into(),
            client_ip: Ipv4Addr::new(10, 77, 1, 2),
            client_netns: "h7-clients".into(),
            peer_ip: Ipv4Addr::new(10, 77, 2, 2),
            peer_netns: "h7-peers".into(),
            threads: 1,
            cpus: "0".into(),
            json: "/o/raw/x.json".into(),
            aligned: false,
        }
    }

    fn shape() -> LoadShape {
        LoadShape {
            sessions: 500,
            payload: 150,
            kbps: 50,
            duration_secs: 10,
            warmup_secs: 2,
            ramp_up_secs: 1,
        }
    }

    #[test]
    fn offered_rate_counts_both_directions() {
        let s = shape();
        // 50 kbit/s of 150-byte payloads = 41.67 packets/s.
        assert!((s.pps_per_session() - 50_000.0 / 1200.0).abs() < 1e-9);
        assert!((s.offered_relayed_pps() - 2.0 * 500.0 * 50_000.0 / 1200.0).abs() < 1e-6);
    }

    #[test]
    fn argv_follows_the_generator_contract() {
        let a = load_argv(&target(), &shape()).join(" ");
        for f in [
            "--server 10.77.1.1:3478",
            "--realm test",
            "--user load:secret",
            "--sessions 500",
            "--payload 150",
            "--kbps 50",
            "--duration 10",
            "--warmup 2",
            "--ramp-up 1",
            "--pattern peer-echo",
            "--mode channel",
            "--client-ip 10.77.1.2",
            "--client-netns h7-clients",
            "--peer-ip 10.77.2.2",
            "--peer-netns h7-peers",
            "--threads 1",
            "--cpus 0",
            "--json /o/raw/x.json",
            "--no-progress",
        ] {
            assert!(a.contains(f), "{f} missing in {a}");
        }
        assert!(a.starts_with("/b/uturn-load "));
    }

    #[test]
    fn markers_are_reported_in_order_and_the_rest_kept() {
        let out = "setting up\n@window-start\n@window-end\n{\n  \"lost\": 0\n}\n";
        let mut seen = Vec::new();
        let rest = read_markers(out.as_bytes(), |m| seen.push(m));
        assert_eq!(seen, [Marker::WindowStart, Marker::WindowEnd]);
        assert!(rest.contains("setting up") && rest.contains("\"lost\": 0"));
        assert!(!rest.contains("@window"));
    }

    #[test]
    fn summary_parses_from_stdout_when_no_file() {
        let json = r#"log line
{"sessions_requested": 5, "sessions_established": 5, "allocation_failures": 0,
 "allocation_setup_per_sec": 480.5, "pattern": "peer-echo", "mode": "channel",
 "payload": 150, "kbps": 50, "offered_pps_one_way": 208.3, "window_secs": 3.0,
 "sent_peer_to_client": 625, "recv_at_client": 625, "sent_client_to_peer": 625,
 "recv_at_peer": 625, "relayed_packets": 1250, "lost": 0, "loss_ratio": 0.0,
 "rtt_us": {"p50": 80, "p99": 210, "p999": 400, "max": 901},
 "jitter_us": 12.5, "setup_failures_by_code": {"401": 0}}"#;
        let s = parse_summary(Path::new("/nonexistent/x.json"), json).unwrap();
        assert_eq!(s.sessions_established, 5);
        assert_eq!(s.relayed_packets, 1250);
        assert_eq!(s.recv_at_peer, 625);
        assert_eq!(s.rtt_us.p99, 210.0);
        assert_eq!(s.other["pattern"], "peer-echo");
        assert_eq!(s.setup_failures_by_code["401"], 0);
        assert!(!s.fell_behind());
        let mut late = s.clone();
        late.other
            .insert("generator_late_sends".into(), serde_json::json!(7));
        // 7 of 625 originals late: more than 1 %.
        assert!(late.fell_behind());
        late.other
            .insert("generator_late_sends".into(), serde_json::json!(6));
        assert!(!late.fell_behind());
        late.other
            .insert("generator_send_dropped".into(), serde_json::json!(1));
        assert!(late.fell_behind());
        assert!(parse_summary(Path::new("/nonexistent"), "no json").is_err());
        assert!(parse_summary(Path::new("/nonexistent"), "{ broken").is_err());
    }
}
