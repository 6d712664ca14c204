//! The cross-check: the same relays, measured with coTURN's own test
//! client and echo peer (`turnutils_uclient`, `turnutils_peer`) instead of
//! uturn-load, so the generator's numbers are confirmed by an independent
//! implementation.
//!
//! uclient's pattern is client → peer → echo (the mirror of the seed's) and
//! it has no window markers: the relay's CPU is sampled over the whole
//! uclient run, allocation setup included.

use std::fs::File;
use std::net::SocketAddr;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::measure::{CpuFigures, Sample, WindowCpu};
use crate::process::{wrapped_argv, Proc};
use crate::procfs;
use crate::relay::RelayConfig;
use crate::runner::{cpu_list, RunError, Testbed, LISTEN_PORT, PASSWORD, USER};

/// UDP port of the echo peer.
pub const PEER_PORT: u16 = 3480;

/// uclient's closing statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UclientStats {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub send_dropped: u64,
}

/// Parses the last statistics lines of a uclient run (coTURN 4.6):
/// `... start_mclient: tot_send_msgs=40, tot_recv_msgs=40` and
/// `... Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)`.
pub fn parse_uclient_stats(out: &str) -> Option<UclientStats> {
    let totals = out
        .lines()
        .rev()
        .find(|l| l.contains("tot_send_msgs=") && l.contains("tot_recv_msgs="))?;
    let lost_line = out
        .lines()
        .rev()
        .find(|l| l.contains("Total lost packets"))?;
    Some(UclientStats {
        sent: number_after(totals, "tot_send_msgs=")?,
        received: number_after(totals, "tot_recv_msgs=")?,
        lost: number_after(lost_line, "Total lost packets ")?,
        send_dropped: number_after(lost_line, "total send dropped ")?,
    })
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.get(line.find(key)? + key.len()..)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// One uclient run's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UclientShape {
    pub clients: u32,
    pub payload: u32,
    /// Gap between one client's messages (uclient's `-z`, whole ms).
    pub interval_ms: u32,
    pub messages: u32,
}

impl UclientShape {
    /// The closest uclient shape to `kbps` × `payload` per session for
    /// about `duration_secs`: uclient paces in whole milliseconds.
    pub fn from_rate(clients: u32, kbps: u32, payload: u32, duration_secs: u32) -> UclientShape {
        let pps = f64::from(kbps) * 1000.0 / (f64::from(payload) * 8.0);
        let interval_ms = ((1000.0 / pps).round() as u32).max(1);
        UclientShape {
            clients,
            payload,
            interval_ms,
            messages: (duration_secs * 1000 / interval_ms).max(1),
        }
    }
}

/// The result of one cross-check run.
#[derive(Debug, Clone, Serialize)]
pub struct CrossResult {
    pub relay: String,
    pub label: String,
    pub clients: u32,
    pub payload: u32,
    pub interval_ms: u32,
    pub messages: u32,
    pub stats: UclientStats,
    pub window: WindowCpu,
    pub figures: CpuFigures,
}

impl CrossResult {
    /// Every message crosses the relay twice: out to the peer, and back.
    pub fn relayed_packets(&self) -> u64 {
        self.stats.sent + self.stats.received
    }
}

/// uclient's command line (before namespace/taskset wrapping).
pub fn uclient_argv(tb: &Testbed, shape: &UclientShape) -> Vec<String> {
    let t = &tb.topology;
    let mut argv: Vec<String> = vec!["turnutils_uclient".into()];
    let mut flag = |k: &str, v: String| argv.extend([k.to_string(), v]);
    flag("-p", LISTEN_PORT.to_string());
    flag("-e", t.peer_ip().to_string());
    flag("-r", PEER_PORT.to_string());
    flag("-n", shape.messages.to_string());
    flag("-l", shape.payload.to_string());
    flag("-m", shape.clients.to_string());
    flag("-z", shape.interval_ms.to_string());
    flag("-u", USER.to_string());
    flag("-w", PASSWORD.to_string());
    flag("-L", t.client_ip().to_string());
    // -c: no RTCP companion allocation, so one allocation per client as in
    // the seed's sessions.
    argv.push("-c".into());
    argv.push(t.relay_client_ip().to_string());
    argv
}

/// Runs uclient through a fresh `config` relay and measures it.
pub fn run(
    tb: &Testbed,
    config: &RelayConfig,
    label: &str,
    shape: &UclientShape,
) -> Result<CrossResult, RunError> {
    std::fs::create_dir_all(&tb.raw_dir)?;
    let stem = format!("crosscheck-{label}-{}", config.name);
    let mut relay = tb.start_relay(config, &tb.raw_dir.join(format!("{stem}.relay.log")))?;
    let t = &tb.topology;
    let load_cpus = cpu_list(&tb.load_cpus);

    let peer_argv = [
        "turnutils_peer".to_string(),
        "-L".into(),
        t.peer_ip().to_string(),
        "-p".into(),
        PEER_PORT.to_string(),
    ];
    let peer_log = File::create(tb.raw_dir.join(format!("{stem}.peer.log")))?;
    let mut peer = Proc::spawn(
        "turnutils_peer",
        &wrapped_argv(Some(&t.peers_ns()), Some(&load_cpus), &peer_argv),
        Stdio::from(peer_log.try_clone()?),
        Stdio::from(peer_log),
    )?;
    let peer_addr = SocketAddr::from((t.peer_ip(), PEER_PORT));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tb.probe_from(&t.peers_ns(), peer_addr, true) {
        if Instant::now() > deadline || peer.exited().is_some() {
            return Err(std::io::Error::other("turnutils_peer does not echo").into());
        }
    }

    let log_path = tb.raw_dir.join(format!("{stem}.uclient.log"));
    let log = File::create(&log_path)?;
    let argv = wrapped_argv(
        Some(&t.clients_ns()),
        Some(&load_cpus),
        &uclient_argv(tb, shape),
    );
    let mut uclient = Proc::spawn(
        "turnutils_uclient",
        &argv,
        Stdio::from(log.try_clone()?),
        Stdio::from(log),
    )?;
    let start = Sample::take(relay.pid(), Some(uclient.pid()))?;
    let limit = Duration::from_millis(u64::from(shape.messages) * u64::from(shape.interval_ms))
        + Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    // uclient's own CPU can only be read while it runs: keep the last
    // reading before it exits.
    let mut last_gen = start.generator;
    loop {
        if let Ok(t) = procfs::read_pid_stat(uclient.pid()) {
            last_gen = Some(t);
        }
        if uclient.exited().is_some() {
            break;
        }
        if Instant::now() > deadline {
            uclient.stop(Duration::from_secs(1));
            return Err(RunError::LoadTimeout(limit.as_secs()));
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut end = Sample::take(relay.pid(), None)?;
    end.generator = last_gen;
    relay.stop(Duration::from_secs(5));
    peer.stop(Duration::from_secs(1));

    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stats = parse_uclient_stats(&out).ok_or_else(|| {
        std::io::Error::other(format!(
            "no statistics in uclient output:\n{}",
            out.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        ))
    })?;
    let window = WindowCpu::between(&start, &end, procfs::clock_ticks_per_sec(), &tb.relay_cpus);
    let result = CrossResult {
        relay: config.name.into(),
        label: label.into(),
        clients: shape.clients,
        payload: shape.payload,
        interval_ms: shape.interval_ms,
        messages: shape.messages,
        stats,
        figures: CpuFigures::derive(&window, stats.sent + stats.received, tb.load_cpus.len()),
        window,
    };
    std::fs::write(
        tb.raw_dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&result).map_err(std::io::Error::other)?,
    )?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uclient_statistics_are_read_from_its_last_lines() {
        // Shape of coTURN 4.6.1's uclient output.
        let out = "\
3: : start_mclient: msz=2, tot_send_msgs=20, tot_recv_msgs=20, tot_send_bytes ~ 2000, tot_recv_bytes ~ 2000
4: : start_mclient: tot_send_msgs=40, tot_recv_msgs=39
4: : Total transmit time is 4
4: : Total lost packets 1 (2.500000%), total send dropped 3 (0.000000%)
";
        let s = parse_uclient_stats(out).unwrap();
        assert_eq!(
            s,
            UclientStats {
                sent: 40,
                received: 39,
                lost: 1,
                send_dropped: 3
            }
        );
        assert!(parse_uclient_stats("0: : ERROR: Cannot complete Allocation").is_none());
    }

    #[test]
    fn shapes_follow_the_seed_rates_in_whole_milliseconds() {
        // 50 kbps of 150 B = 41.7 pps: every 24 ms.
        let a = UclientShape::from_rate(500, 50, 150, 10);
        assert_eq!((a.interval_ms, a.messages), (24, 416));
        // 1500 kbps of 1200 B = 156 pps: every 6 ms (6.4 rounded).
        let b = UclientShape::from_rate(100, 1500, 1200, 10);
        assert_eq!((b.interval_ms, b.messages), (6, 1666));
    }
}
