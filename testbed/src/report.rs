//! The results folder: `results.md` (machine, command, scale factors, the
//! comparison tables) and `cpu.svg` (relay CPU against offered relayed
//! packet rate, one line per relay), both written by hand — the SVG needs
//! only lines, ticks and a legend, not a plotting library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::crosscheck::CrossResult;
use crate::runner::RunResult;
use crate::scenario::{Sweep, SweepStop};

/// The machine the numbers were measured on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub uturn_version: String,
    pub coturn_version: String,
}

impl Machine {
    /// Reads /proc and asks the relays for their versions.
    pub fn describe(uturn_bin: &str, turnserver_bin: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or("unknown").to_owned(),
            cores: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            uturn_version: version_of(uturn_bin, "--version"),
            coturn_version: version_of(turnserver_bin, "--version"),
        }
    }
}

pub fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
}

fn version_of(bin: &str, flag: &str) -> String {
    Command::new(bin)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub command: String,
    pub started_utc: String,
    pub machine: Machine,
    pub relay_cpus: String,
    pub load_cpus: String,
    pub relay_threads: usize,
    pub relays: Vec<String>,
    pub rows: Vec<RunResult>,
    pub sweeps: Vec<Sweep>,
    pub crosscheck: Vec<CrossResult>,
    pub failures: Vec<String>,
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "–".into()
    }
}

fn pct(ratio: f64) -> String {
    format!("{:.3} %", 100.0 * ratio)
}

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(md, "# uturn vs coTURN: relay CPU per relayed packet\n");
    let _ = writeln!(
        md,
        "Measured {} with:\n\n```sh\n{}\n```\n",
        r.started_utc, r.command
    );
    let _ = writeln!(
        md,
        "**Machine:** {} × {}, Linux {}.  ",
        m.cores, m.cpu_model, m.kernel
    );
    let _ = writeln!(
        md,
        "**Relays:** uturn `{}`; coTURN `{}`.  ",
        m.uturn_version, m.coturn_version
    );
    let _ = writeln!(
        md,
        "**Pinning:** relay on CPU {} ({} thread(s)), load generator on CPU {}.\n",
        r.relay_cpus, r.relay_threads, r.load_cpus
    );
    let _ = writeln!(
        md,
        "CPU % is utime+stime of the relay process over the measured window (100 % = one core); \
         CPU-µs/pkt divides it by the packets that crossed the relay in the window (originals + echoes). \
         softirq is the kernel's softirq time on all CPUs over the same window (it includes the generator's \
         share of network processing); +softirq µs/pkt adds it to the relay's. RSS is the relay's peak \
         resident set (VmHWM) of a fresh process per run. \"Others on relay CPU\" is the time the relay's \
         CPU spent on anything else (other processes): when it is large, the relay competed for its core.\n"
    );

    if !r.rows.is_empty() {
        let _ = writeln!(md, "## Seed rows\n");
        let _ = writeln!(
            md,
            "| row | relay | load | offered pps | relayed pps | CPU % | CPU-µs/pkt | +softirq µs/pkt | softirq % | loss | RTT p99 µs | peak RSS MiB | generator CPU % | others on relay CPU % |"
        );
        let _ = writeln!(
            md,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for x in &r.rows {
            let gen = x.figures.generator_pct.map_or("–".into(), |g| num(g, 0))
                + if x.generator_saturated {
                    " ⚠ saturated"
                } else {
                    ""
                };
            let _ = writeln!(
                md,
                "| {} | {} | scaled ×{}: {} sessions × {} kbps × {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.label,
                x.relay,
                x.scale,
                x.shape.sessions,
                x.shape.kbps,
                x.shape.payload,
                num(x.offered_relayed_pps, 0),
                num(x.relayed_pps(), 0),
                num(x.headline_pct(), 1),
                num(x.headline_us_per_pkt(), 2),
                num(x.figures.relay_softirq_us_per_pkt, 2),
                num(x.figures.softirq_pct, 1),
                pct(x.summary.loss_ratio),
                num(x.summary.rtt_us.p99, 0),
                num(x.peak_rss_kib as f64 / 1024.0, 1),
                gen,
                num(x.figures.other_on_relay_cpus_pct, 1)
            );
        }
        md.push('\n');
        ratios(&mut md, &r.rows);
    }

    let profiled: Vec<&RunResult> = r.rows.iter().filter(|x| x.profile.is_some()).collect();
    if !profiled.is_empty() {
        let _ = writeln!(
            md,
            "## Where the relay's time goes (perf, measured window)\n"
        );
        let _ = writeln!(md, "| row | relay | kernel % | user % | largest shares |");
        let _ = writeln!(md, "|---|---|---:|---:|---|");
        for x in profiled {
            if let Some(p) = &x.profile {
                let top: Vec<String> = p
                    .by_dso
                    .iter()
                    .take(3)
                    .map(|(d, v)| format!("{} {}", escape_cell(d), num(*v, 1)))
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    x.label,
                    x.relay,
                    num(p.kernel_pct, 1),
                    num(p.user_pct, 1),
                    top.join(", ")
                );
            }
        }
        md.push('\n');
    }

    if !r.sweeps.is_empty() {
        let _ = writeln!(md, "## Sweep: highest packet rate at ≤ 0.1 % loss\n");
        let _ = writeln!(
            md,
            "Sessions of 50 kbps × 150 B are added step by step until the relay loses more than 0.1 % \
             or the generator's core saturates.\n"
        );
        let _ = writeln!(
            md,
            "| relay | max relayed pps at ≤ 0.1 % loss | CPU % there | steps | ended because |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---|");
        for s in &r.sweeps {
            let best = s.max_ok_relayed_pps();
            let cpu_there = best
                .and_then(|b| s.steps.iter().find(|x| x.relayed_pps() == b))
                .map_or("–".into(), |x| num(x.headline_pct(), 1));
            let why = match &s.stop {
                SweepStop::RelayLoss => "relay loss > 0.1 % (the relay's limit)".to_string(),
                SweepStop::LossRelayNotSaturated => {
                    "loss > 0.1 % with the relay's core not saturated: the generator side of this machine \
                     is the limit, the relay's is higher"
                        .to_string()
                }
                SweepStop::GeneratorSaturated => {
                    "generator saturated: the relay's limit is higher than shown".to_string()
                }
                SweepStop::StepsExhausted => {
                    "all steps passed: the relay's limit is higher than shown".to_string()
                }
                SweepStop::Failed(e) => {
                    format!("a step failed: {}", e.lines().next().unwrap_or(""))
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                s.relay,
                best.map_or("–".into(), |b| num(b, 0)),
                cpu_there,
                s.steps.len(),
                why
            );
        }
        md.push('\n');
        let _ = writeln!(md, "![relay CPU against offered packet rate](cpu.svg)\n");
    }

    if !r.crosscheck.is_empty() {
        let _ = writeln!(
            md,
            "## Cross-check with coTURN's turnutils_uclient / turnutils_peer\n"
        );
        let _ = writeln!(
            md,
            "The same rows driven by coTURN's own test client (client → peer → echo), with fewer \
             sessions (uclient sets allocations up slowly). The window is uclient's transmit phase, \
             found from its once-a-second progress lines (⚑ marks runs where the whole run had to be \
             used). uclient sends every client's message in the same tick, in bursts, where uturn-load \
             spreads sessions evenly: compare the ratios between relays more than absolute values.\n"
        );
        let _ = writeln!(md, "| row | relay | clients × interval × bytes | relayed pkts in window | lost | relay CPU % | CPU-µs/pkt | uclient CPU % |");
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|");
        for c in &r.crosscheck {
            let _ = writeln!(
                md,
                "| {} | {}{} | {} × {} ms × {} B | {} | {} | {} | {} | {} |",
                c.label,
                c.relay,
                if c.window_is_transmit_phase {
                    ""
                } else {
                    " ⚑"
                },
                c.clients,
                c.interval_ms,
                c.payload,
                c.relayed_packets(),
                c.stats.lost,
                num(c.figures.relay_pct, 1),
                num(c.figures.relay_us_per_pkt, 2),
                c.figures.generator_pct.map_or("–".into(), |g| num(g, 0)),
            );
        }
        md.push('\n');
    }

    if !r.failures.is_empty() {
        let _ = writeln!(md, "## Runs that failed\n");
        for f in &r.failures {
            let _ = writeln!(md, "- {}", f.lines().next().unwrap_or(""));
        }
        md.push('\n');
    }
    md
}

/// uturn's CPU-µs per relayed packet as a share of coTURN's, per row.
fn ratios(md: &mut String, rows: &[RunResult]) {
    let mut by_label: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for x in rows {
        by_label
            .entry(&x.label)
            .or_default()
            .insert(&x.relay, x.headline_us_per_pkt());
    }
    let mut lines = Vec::new();
    for (label, relays) in &by_label {
        let Some(&coturn) = relays.get("coturn") else {
            continue;
        };
        for (relay, &v) in relays {
            if *relay != "coturn" && coturn > 0.0 {
                lines.push(format!("| {label} | {relay} | {} |", num(v / coturn, 2)));
            }
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            md,
            "CPU-µs per relayed packet relative to coTURN (target ≤ 0.50):\n"
        );
        let _ = writeln!(md, "| row | relay | ÷ coTURN |\n|---|---|---:|");
        for l in lines {
            let _ = writeln!(md, "{l}");
        }
        md.push('\n');
    }
}

/// One line of the plot: (offered relayed pps, CPU %) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The series of the plot: each sweep's steps, or (without a sweep) each
/// relay's seed rows.
pub fn plot_series(r: &Report) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut add = |name: &str, x: f64, y: f64| {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((x, y)),
            None => out.push(Series {
                name: name.into(),
                points: vec![(x, y)],
            }),
        }
    };
    if r.sweeps.is_empty() {
        for x in &r.rows {
            add(&x.relay, x.offered_relayed_pps, x.headline_pct());
        }
    } else {
        for s in &r.sweeps {
            for x in &s.steps {
                add(&s.relay, x.offered_relayed_pps, x.headline_pct());
            }
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

const COLORS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

/// A "nice" axis maximum (1, 2 or 5 × 10^n) at or above `v`.
pub fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * mag)
}

/// Keeps a value from splitting a Markdown table cell.
fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG plot of CPU % against offered relayed packets per second.
pub fn svg(series: &[Series]) -> String {
    let (w, h) = (720.0, 440.0);
    let (left, right, top, bottom) = (70.0, 170.0, 30.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all = series.iter().flat_map(|s| s.points.iter());
    let xmax = nice_max(all.clone().map(|p| p.0).fold(0.0, f64::max));
    let ymax = nice_max(all.map(|p| p.1).fold(0.0, f64::max));
    let sx = |x: f64| left + pw * x / xmax;
    let sy = |y: f64| top + ph * (1.0 - y / ymax);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">Relay CPU against offered packet rate</text>"#,
        left + pw / 2.0
    );
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let (x, y) = (sx(f * xmax), sy(f * ymax));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 16.0,
            num(f * xmax, 0)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            num(f * ymax, 0)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">offered relayed packets/s</text>"#,
        left + pw / 2.0,
        h - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">relay CPU, % of one core</text>"#,
        top + ph / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for &(x, y) in &ser.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let ly = top + 20.0 * i as f64 + 10.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + pw + 12.0,
            left + pw + 32.0,
            left + pw + 38.0,
            ly + 4.0,
            escape(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::tests::result_with;

    fn report() -> Report {
        let mut a = result_with(500, 0.0, 40.0, 41_000.0);
        a.label = "row1".into();
        a.profile = Some(crate::profile::Profile {
            kernel_pct: 70.0,
            user_pct: 30.0,
            by_dso: vec![("[kernel.kallsyms]".into(), 70.0), ("uturn".into(), 30.0)],
        });
        let mut b = a.clone();
        b.profile = None;
        b.relay = "coturn".into();
        b.window.relay_cpu_secs = 8.0;
        b.figures = crate::measure::CpuFigures::derive(&b.window, b.summary.relayed_packets, 1);
        let steps = vec![
            result_with(50, 0.0, 10.0, 4_000.0),
            result_with(100, 0.0, 20.0, 8_000.0),
        ];
        Report {
            command: "uturn-testbed compare".into(),
            started_utc: "2026-01-01 00:00:00 UTC".into(),
            machine: Machine {
                cpu_model: "Test CPU".into(),
                cores: 2,
                kernel: "6.1.0".into(),
                uturn_version: "uturn 0.1.0".into(),
                coturn_version: "4.6.1".into(),
            },
            relay_cpus: "1".into(),
            load_cpus: "0".into(),
            relay_threads: 1,
            relays: vec!["uturn-uring".into(), "coturn".into()],
            rows: vec![a, b],
            sweeps: vec![Sweep {
                relay: "uturn-uring".into(),
                steps,
                stop: SweepStop::GeneratorSaturated,
            }],
            crosscheck: vec![],
            failures: vec!["coturn sweep: boom\nsecond-line".into()],
        }
    }

    #[test]
    fn markdown_holds_machine_table_ratio_and_sweep() {
        let md = markdown(&report());
        assert!(md.contains("2 × Test CPU, Linux 6.1.0"));
        assert!(md.contains("uturn-testbed compare"));
        assert!(md.contains("scaled ×1: 500 sessions × 50 kbps × 150 B"));
        // 2 s over 410k packets = 4.88 µs; coTURN 8 s = 19.51 µs; ratio 0.25.
        assert!(md.contains("| row1 | uturn-uring |"));
        assert!(md.contains("| 4.88 |"), "{md}");
        assert!(md.contains("| 19.51 |"), "{md}");
        assert!(md.contains("| row1 | uturn-uring | 0.25 |"), "{md}");
        assert!(md.contains("| uturn-uring | 8000 |"), "{md}");
        assert!(md.contains("generator saturated"));
        assert!(
            md.contains(
                "| row1 | uturn-uring | 70.0 | 30.0 | [kernel.kallsyms] 70.0, uturn 30.0 |"
            ),
            "{md}"
        );
        assert!(md.contains("- coturn sweep: boom"));
        assert!(!md.contains("second-line"));
        // Every table row has as many cells as its header.
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(cells.windows(2).all(|w| w[0] == w[1]), "{table}");
        }
    }

    #[test]
    fn svg_is_well_formed_with_one_line_per_relay() {
        let r = report();
        let series = plot_series(&r);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].points.len(), 2);
        let svg = svg(&series);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">uturn-uring</text>"));
        // Tags balance: every element is either self-closed or closed.
        let opens = svg.matches("<text").count();
        assert_eq!(opens, svg.matches("</text>").count());
        // Without a sweep the rows are plotted, one series per relay.
        let mut rows_only = r.clone();
        rows_only.sweeps.clear();
        let names: Vec<_> = plot_series(&rows_only)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["uturn-uring", "coturn"]);
    }

    #[test]
    fn axes_round_up_to_nice_values() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.3), 2.0);
        assert_eq!(nice_max(37.0), 50.0);
        assert_eq!(nice_max(83_000.0), 100_000.0);
        assert_eq!(escape("a<b>&"), "a&lt;b&gt;&amp;");
    }

    #[test]
    fn cpu_model_is_read_from_cpuinfo() {
        let info = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nprocessor\t: 1\n";
        assert_eq!(cpu_model(info), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(cpu_model(""), None);
    }
}
