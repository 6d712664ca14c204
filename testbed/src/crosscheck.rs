//! The cross-check: the same relays, measured with coTURN's own test
//! client and echo peer (`turnutils_uclient`, `turnutils_peer`) instead of
//! uturn-load, so the generator's numbers are confirmed by an independent
//! implementation.
//!
//! uclient's pattern is client → peer → echo (the mirror of the seed's). It
//! has no window markers, but it prints its running totals once a second
//! (`start_mclient: msz=N, tot_send_msgs=S, tot_recv_msgs=R, ...`): the
//! testbed samples the relay's CPU as each such line appears, and the window
//! runs from the first line with traffic to the last line whose totals still
//! grew, so allocation setup and uclient's closing wait are left out.

use std::fs::File;
use std::net::SocketAddr;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bpfstats::StatsSwitch;
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

/// Running totals (sent, received) of a uclient progress line.
pub fn parse_progress(line: &str) -> Option<(u64, u64)> {
    if !line.contains("start_mclient: msz=") {
        return None;
    }
    Some((
        number_after(line, "tot_send_msgs=")?,
        number_after(line, "tot_recv_msgs=")?,
    ))
}

/// A CPU sample taken when a progress line appeared.
#[derive(Debug, Clone)]
struct Tick {
    sample: Sample,
    sent: u64,
    received: u64,
}

/// The window over the ticks: from the first tick with traffic to the last
/// tick whose totals grew. `None` with fewer than two such ticks.
fn window_ticks(ticks: &[Tick]) -> Option<(&Tick, &Tick)> {
    let first = ticks.iter().position(|t| t.sent > 0)?;
    let mut last = first;
    for i in first + 1..ticks.len() {
        let (prev, cur) = (&ticks[i - 1], &ticks[i]);
        if cur.sent + cur.received > prev.sent + prev.received {
            last = i;
        }
    }
    (last > first).then(|| (&ticks[first], &ticks[last]))
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
    /// Messages sent + received within the window.
    pub window_relayed: u64,
    /// Whether the window is the transmit phase (from progress lines) or,
    /// failing that, the whole uclient run.
    pub window_is_transmit_phase: bool,
    pub window: WindowCpu,
    pub figures: CpuFigures,
}

impl CrossResult {
    /// Packets that crossed the relay in the window: every message crosses
    /// it twice, out to the peer and back.
    pub fn relayed_packets(&self) -> u64 {
        self.window_relayed
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
    // As in `Testbed::run`: the XDP program's own run time, for XDP relays.
    let _bpf_stats = if config.counts_softirq {
        StatsSwitch::on()
    } else {
        None
    };
    tb.prepare(config)?;
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
        + Duration::from_secs(300);
    let deadline = Instant::now() + limit;
    // uclient's own CPU can only be read while it runs: keep the last
    // reading before it exits.
    let mut last_gen = start.generator;
    let mut ticks: Vec<Tick> = Vec::new();
    let mut seen = 0usize;
    loop {
        if let Ok(t) = procfs::read_pid_stat(uclient.pid()) {
            last_gen = Some(t);
        }
        // Sample on each new complete progress line.
        let text = std::fs::read(&log_path).unwrap_or_default();
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete > seen {
            let new = String::from_utf8_lossy(text.get(seen..complete).unwrap_or(&[])).into_owned();
            seen = complete;
            for (sent, received) in new.lines().filter_map(parse_progress) {
                let sample = Sample::take(relay.pid(), Some(uclient.pid()));
                let sample = if config.counts_softirq {
                    sample.map(|s| s.with_bpf(relay.pid()))
                } else {
                    sample
                };
                if let Ok(sample) = sample {
                    ticks.push(Tick {
                        sample,
                        sent,
                        received,
                    });
                }
            }
        }
        if uclient.exited().is_some() {
            break;
        }
        if Instant::now() > deadline {
            uclient.stop(Duration::from_secs(1));
            return Err(RunError::LoadTimeout(limit.as_secs()));
        }
        // Short, so a progress line's totals and the CPU sample taken when
        // it is seen are at most 10 ms apart.
        thread::sleep(Duration::from_millis(10));
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
    let hz = procfs::clock_ticks_per_sec();
    let (window, window_relayed, transmit_phase) = match window_ticks(&ticks) {
        Some((a, b)) => (
            WindowCpu::between(&a.sample, &b.sample, hz, &tb.relay_cpus, &tb.load_cpus),
            (b.sent + b.received) - (a.sent + a.received),
            true,
        ),
        None => (
            WindowCpu::between(&start, &end, hz, &tb.relay_cpus, &tb.load_cpus),
            stats.sent + stats.received,
            false,
        ),
    };
    let result = CrossResult {
        relay: config.name.into(),
        label: label.into(),
        clients: shape.clients,
        payload: shape.payload,
        interval_ms: shape.interval_ms,
        messages: shape.messages,
        stats,
        window_relayed,
        window_is_transmit_phase: transmit_phase,
        figures: CpuFigures::derive(
            &window,
            window_relayed,
            tb.load_cpus.len(),
            tb.relay_cpu_limit.map(|b| b.cores),
        ),
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
    fn progress_lines_give_running_totals() {
        let l = "65: : start_mclient: msz=500, tot_send_msgs=2080, tot_recv_msgs=2075, tot_send_bytes ~ 312000";
        assert_eq!(parse_progress(l), Some((2080, 2075)));
        // The closing total has no msz= and is not a progress line.
        assert_eq!(
            parse_progress("4: : start_mclient: tot_send_msgs=40, tot_recv_msgs=39"),
            None
        );
    }

    #[test]
    fn window_spans_the_ticks_where_totals_grow() {
        let sample = Sample {
            at: Instant::now(),
            relay: Default::default(),
            generator: None,
            softirq: Default::default(),
            throttling: None,
            bpf: None,
            napi: None,
        };
        let tick = |sent, received| Tick {
            sample: sample.clone(),
            sent,
            received,
        };
        let ticks = [
            tick(0, 0),
            tick(0, 0),
            tick(100, 90),
            tick(300, 295),
            tick(500, 500),
            tick(500, 500),
        ];
        let (a, b) = window_ticks(&ticks).unwrap();
        assert_eq!((a.sent, b.sent, b.received), (100, 500, 500));
        assert!(window_ticks(&[tick(0, 0), tick(10, 10)]).is_none());
        assert!(window_ticks(&[]).is_none());
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
