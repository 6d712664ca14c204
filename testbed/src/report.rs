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
use crate::scenario::{relay_at_limit, step_bound, StepBound, Sweep, SweepStop, SWEEP_LOSS_LIMIT};

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
    /// Which relays ran with threaded NAPI (`--threaded-napi`).
    pub threaded_napi: Option<crate::napi::NapiMode>,
    pub relays: Vec<String>,
    /// The CPU budget (cores) every relay had in the sweep, if any.
    pub sweep_cpu_limit: Option<f64>,
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

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |v| num(v, decimals))
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
        "**Pinning:** relay on CPU {} ({} thread(s)), load generator on CPU {}.  ",
        r.relay_cpus, r.relay_threads, r.load_cpus
    );
    if let Some(mode) = r.threaded_napi {
        let which = match mode {
            crate::napi::NapiMode::All => "every relay",
            crate::napi::NapiMode::Xdp => "uturn-xdp only",
            crate::napi::NapiMode::Off => "no relay",
        };
        let _ = writeln!(
            md,
            "**Threaded NAPI:** {which} (`--threaded-napi`): GRO on and `threaded` = 1 on all four \
             veth ends; the relay side's `napi/IFACE-N` threads pinned to the relay's CPU (and in its \
             budget cgroup in the sweep), the far ends' to the generator's.  "
        );
    }
    match r.sweep_cpu_limit {
        Some(c) => {
            let _ = writeln!(
                md,
                "**Sweep CPU budget:** every relay ran its sweep in a cgroup limited to {c} core(s) \
                 (CFS quota per {} µs period, the process and all its threads); seed rows and the \
                 cross-check ran without a budget.\n",
                crate::cgroup::CpuBudget::new(c).map_or(crate::cgroup::PERIOD_US, |b| b.period_us)
            );
        }
        None => {
            let _ = writeln!(md, "**Sweep CPU budget:** none (relays unlimited).\n");
        }
    }
    let _ = writeln!(
        md,
        "**process** is utime+stime of the relay process over the measured window (CPU %: 100 % = one \
         core; µs/pkt: divided by the packets that crossed the relay in the window, originals + echoes). \
         **relay-side NAPI** (threaded-NAPI runs) is the CPU time (sum_exec_runtime) of the NAPI \
         kernel threads of the relay namespace's two veths, pinned to the relay's CPU and, in the sweep, \
         inside its budget cgroup: the kernel's receive work for the relay, and for uturn-xdp all of its \
         forwarding (XDP program, redirect); **process + relay-side NAPI** is the relay's whole cost, \
         measured exactly. The far ends' NAPI threads (the generator's receive work) run on the \
         generator's CPU and are shown apart. **tick-sampled softirq** is `/proc/stat`'s system-wide \
         softirq over the window: sampled per timer tick on this kernel (no IRQ time accounting), it \
         undercounts, and it also holds the generator's receive work; kept for comparison with earlier \
         runs. **XDP ns/run** is \
         the XDP program's own mean run time per invocation from the kernel's BPF statistics \
         (`kernel.bpf_stats_enabled`), and its run time per relayed packet. RSS is the relay's peak \
         resident set (VmHWM) of a fresh process per run. \"Others on relay CPU\" is the time the \
         relay's CPU spent on anything else (other processes): when it is large, the relay competed \
         for its core.\n"
    );

    if !r.rows.is_empty() {
        let _ = writeln!(md, "## Seed rows\n");
        let _ = writeln!(
            md,
            "| row | relay | load | offered pps | relayed pps | process CPU % | process µs/pkt | relay-side NAPI CPU % | process + relay-side NAPI µs/pkt | pkts per relay-side NAPI run | far-end NAPI CPU % | process + tick-sampled softirq µs/pkt | tick-sampled softirq % | XDP ns/run (µs/pkt) | loss | RTT p99 µs | peak RSS MiB | generator CPU % | others on relay CPU % |"
        );
        let _ = writeln!(
            md,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for x in &r.rows {
            let _ = writeln!(
                md,
                "| {} | {} | scaled ×{}: {} sessions × {} kbps × {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.label,
                x.relay,
                x.scale,
                x.shape.sessions,
                x.shape.kbps,
                x.shape.payload,
                num(x.offered_relayed_pps, 0),
                num(x.relayed_pps(), 0),
                num(x.figures.relay_pct, 1),
                num(x.process_us_per_pkt(), 2),
                opt(x.figures.relay_napi_pct, 1),
                opt(x.with_napi_us_per_pkt(), 2),
                opt(x.figures.relay_napi_pkts_per_slice, 1),
                opt(x.figures.far_napi_pct, 1),
                num(x.with_softirq_us_per_pkt(), 2),
                num(x.figures.softirq_pct, 1),
                xdp_cell(x),
                pct(x.summary.loss_ratio),
                num(x.summary.rtt_us.p99, 0),
                num(x.peak_rss_kib as f64 / 1024.0, 1),
                generator_cell(x),
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
        sweeps(&mut md, r);
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
        let _ = writeln!(md, "| row | relay | clients × interval × bytes | relayed pkts in window | lost | process CPU % | process µs/pkt | process + softirq µs/pkt | XDP ns/run (µs/pkt) | uclient CPU % |");
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for c in &r.crosscheck {
            let _ = writeln!(
                md,
                "| {} | {}{} | {} × {} ms × {} B | {} | {} | {} | {} | {} | {} | {} |",
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
                num(c.figures.relay_softirq_us_per_pkt, 2),
                bpf_cell(
                    &c.figures,
                    crate::relay::config(&c.relay).is_some_and(|r| r.counts_softirq),
                ),
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

/// The XDP program's cost of a run: `ns/run (µs/pkt)`, or `–`.
fn xdp_cell(x: &RunResult) -> String {
    bpf_cell(&x.figures, x.counts_softirq)
}

/// `ns/run (µs/pkt)` of the BPF figures; `n/a` where they were expected
/// (`xdp`) but could not be read.
fn bpf_cell(f: &crate::measure::CpuFigures, xdp: bool) -> String {
    match (f.bpf_ns_per_run, f.bpf_us_per_pkt) {
        (Some(ns), Some(us)) => format!("{} ({})", num(ns, 0), num(us, 3)),
        (Some(ns), None) => num(ns, 0),
        _ if xdp => "n/a".into(),
        _ => "–".into(),
    }
}

/// Generator CPU %, flagged when the generator was the limit.
fn generator_cell(x: &RunResult) -> String {
    x.figures.generator_pct.map_or("–".into(), |g| num(g, 0))
        + if x.generator_saturated {
            " ⚠ generator-bound"
        } else {
            ""
        }
}

/// The sweep section: one summary line per relay, then every step with
/// what bound it.
fn sweeps(md: &mut String, r: &Report) {
    let _ = writeln!(md, "## Sweep: highest packet rate at ≤ 0.1 % loss\n");
    let _ = writeln!(
        md,
        "Sessions of 50 kbps × 150 B are added step by step until the relay loses more than 0.1 % \
         or the generator saturates. A step is **generator-bound** when the generator's process used \
         more than {:.0} % of its cores, or more than {:.0} % of its originals went out over 1 ms late \
         (or it dropped sends): such a step, and its loss, say nothing about the relay, and a maximum \
         reached there is only a lower bound (\"≥\"). Only a sweep that ended with the relay at its \
         CPU limit and losing packets shows the relay's own limit. \"generator cores busy\" counts \
         everything on the generator's cores (other processes too).\n",
        crate::measure::GENERATOR_SATURATED_PCT,
        100.0 * crate::load::LATE_SHARE_LIMIT
    );
    let _ = writeln!(
        md,
        "| relay | CPU budget (cores) | max relayed pps at ≤ 0.1 % loss | process (+ relay-side NAPI) CPU % there | steps | ended because |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    let relay_cores = r.relay_cpus.split(',').count();
    for s in &r.sweeps {
        let best = s.max_ok_relayed_pps();
        let cpu_there = best
            .and_then(|b| s.steps.iter().find(|x| x.relayed_pps() == b))
            .map_or("–".into(), |x| {
                let napi = x.figures.relay_napi_pct;
                num(x.figures.relay_pct + napi.unwrap_or(0.0), 1)
                    + if napi.is_some() { " (with NAPI)" } else { "" }
            });
        let budget = s
            .steps
            .first()
            .and_then(|x| x.figures.budget_cores)
            .map_or("none".into(), |c| c.to_string());
        let max = match best {
            None => "–".to_string(),
            Some(b) if s.found_relay_limit() => format!("**{}**", num(b, 0)),
            Some(b) if s.stop == SweepStop::GeneratorSaturated => {
                format!("≥ {} (generator-bound)", num(b, 0))
            }
            Some(b) => format!("≥ {}", num(b, 0)),
        };
        let why = match &s.stop {
            SweepStop::RelayLoss => {
                "relay loss > 0.1 % at its CPU limit: the relay's limit".to_string()
            }
            SweepStop::LossRelayNotSaturated => {
                "loss > 0.1 % with the relay below its CPU limit and the generator not saturated: \
                 not a CPU limit (socket buffers, or bursts of other work)"
                    .to_string()
            }
            SweepStop::GeneratorSaturated => {
                let last = s.steps.last();
                let lossy = last.is_some_and(|x| x.summary.loss_ratio > SWEEP_LOSS_LIMIT);
                let relay_full = last.is_some_and(|x| relay_at_limit(x, relay_cores));
                if lossy && relay_full {
                    "the last step lost > 0.1 % with the relay at its CPU limit, but it was \
                     generator-bound too: probably the relay's limit, not proven"
                        .to_string()
                } else {
                    "generator-bound: the relay's limit is at least the rate shown".to_string()
                }
            }
            SweepStop::StepsExhausted => {
                "all steps passed: the relay's limit is at least the rate shown".to_string()
            }
            SweepStop::Failed(e) => {
                format!("a step failed: {}", e.lines().next().unwrap_or(""))
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.relay,
            budget,
            max,
            cpu_there,
            s.steps.len(),
            why
        );
    }
    md.push('\n');
    for s in &r.sweeps {
        let over = s
            .steps
            .iter()
            .filter_map(|x| x.figures.budget_used_pct)
            .fold(f64::NAN, f64::max);
        if over > BUDGET_OVERRUN_PCT {
            let _ = writeln!(
                md,
                "⚠ {}: the budget did not hold, its group used up to {} % of its quota: since \
                 Linux 6.18 CFS bandwidth control throttles a task only when it returns to user space, \
                 so the NAPI kernel threads in the group are charged but never stopped \
                 (docs/benchmarks.md); its sweep had more CPU than its budget.\n",
                s.relay,
                num(over, 0)
            );
        }
    }
    let _ = writeln!(md, "![relay CPU against offered packet rate](cpu.svg)\n");

    let _ = writeln!(md, "### Every sweep step\n");
    let _ = writeln!(
        md,
        "| relay | sessions | offered pps | relayed pps | loss | process CPU % | relay-side NAPI CPU % | % of budget | throttled periods % | process µs/pkt | process + relay-side NAPI µs/pkt | generator CPU % | far-end NAPI CPU % | generator cores busy % | bound |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for s in &r.sweeps {
        for x in &s.steps {
            let bound = match step_bound(x, relay_cores) {
                StepBound::Generator => "⚠ generator-bound",
                StepBound::Relay => "relay at its CPU limit",
                StepBound::Neither => "",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.relay,
                x.shape.sessions,
                num(x.offered_relayed_pps, 0),
                num(x.relayed_pps(), 0),
                pct(x.summary.loss_ratio),
                num(x.figures.relay_pct, 1),
                opt(x.figures.relay_napi_pct, 1),
                x.figures.budget_used_pct.map_or("–".into(), |v| num(v, 0)),
                x.figures.throttled_pct.map_or("–".into(), |v| num(v, 0)),
                num(x.process_us_per_pkt(), 2),
                opt(x.with_napi_us_per_pkt(), 2),
                x.figures.generator_pct.map_or("–".into(), |g| num(g, 0)),
                opt(x.figures.far_napi_pct, 1),
                num(x.figures.load_cpus_busy_pct, 0),
                bound
            );
        }
    }
    md.push('\n');
}

/// Above this share of its quota a budgeted relay is reported as having
/// overrun its budget (short overruns of a period are normal).
const BUDGET_OVERRUN_PCT: f64 = 110.0;

/// Each relay's CPU per relayed packet as a share of coTURN's, per row.
/// With threaded NAPI: the relay's process + relay-side NAPI threads
/// against coTURN's process alone (issue 4's measure for uturn-xdp, which
/// charges uturn-xdp its kernel work and coTURN not) and against coTURN's
/// process + its own relay-side NAPI threads (like for like). Then the
/// process alone, and the older tick-sampled softirq figures.
fn ratios(md: &mut String, rows: &[RunResult]) {
    let mut by_label: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
    for x in rows {
        by_label.entry(&x.label).or_default().push(x);
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => num(a / b, 2),
        _ => "–".into(),
    };
    let mut lines = Vec::new();
    for (label, relays) in &by_label {
        let Some(coturn) = relays.iter().find(|x| x.relay == "coturn") else {
            continue;
        };
        let cp = Some(coturn.process_us_per_pkt());
        let cs = Some(coturn.with_softirq_us_per_pkt());
        let cn = coturn.with_napi_us_per_pkt();
        for x in relays.iter().filter(|x| x.relay != "coturn") {
            let napi = x.with_napi_us_per_pkt();
            let softirq = Some(x.with_softirq_us_per_pkt());
            lines.push(format!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                x.relay,
                ratio(napi, cp),
                ratio(napi, cn),
                ratio(Some(x.process_us_per_pkt()), cp),
                ratio(softirq, cs),
                if x.counts_softirq {
                    ratio(softirq, cp)
                } else {
                    "–".into()
                },
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            md,
            "CPU per relayed packet relative to coTURN. Targets: uturn's process ≤ 0.50 × coTURN's \
             process (issue 3); uturn-xdp's CPU including its kernel work ≤ 0.10 × coTURN's CPU \
             (issue 4). With threaded NAPI that is (process + relay-side NAPI) ÷ coTURN process (first \
             column: charges uturn-xdp its kernel work, coTURN not) and, like for like, ÷ (coTURN \
             process + coTURN's relay-side NAPI) when coTURN ran with threaded NAPI too. The last two \
             columns are the older, tick-sampled softirq measures (they undercount on this kernel).\n"
        );
        let _ = writeln!(
            md,
            "| row | relay | (process + relay-side NAPI) ÷ coTURN process | like-for-like: (process + relay-side NAPI) ÷ (coTURN process + relay-side NAPI) | process ÷ coTURN process | (process + tick-sampled softirq) ÷ (coTURN process + softirq) | XDP, literal: (process + tick-sampled softirq) ÷ coTURN process |\n|---|---|---:|---:|---:|---:|---:|"
        );
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
        // Both ran with threaded NAPI: coTURN's receive path took 1 s in
        // its relay-side NAPI threads.
        b.window.relay_napi_secs = Some(1.0);
        b.figures =
            crate::measure::CpuFigures::derive(&b.window, b.summary.relayed_packets, 1, None);
        // uturn-xdp: 0.1 s of process time, the same 1 s of softirq, and
        // 41 ms of XDP program time over 205 000 runs.
        let mut x = a.clone();
        x.profile = None;
        x.relay = "uturn-xdp".into();
        x.counts_softirq = true;
        x.window.relay_cpu_secs = 0.1;
        x.window.relay_napi_secs = Some(0.3);
        x.window.far_napi_secs = Some(0.5);
        x.window.bpf = Some(crate::bpfstats::BpfWindow {
            programs: 1,
            run_time_ns: 41_000_000,
            run_cnt: 205_000,
        });
        x.figures =
            crate::measure::CpuFigures::derive(&x.window, x.summary.relayed_packets, 1, None);
        let mut steps = vec![
            result_with(50, 0.0, 10.0, 4_000.0),
            result_with(100, 0.0, 20.0, 8_000.0),
            result_with(150, 0.0, 95.0, 12_000.0),
        ];
        for s in &mut steps {
            s.figures.budget_cores = Some(0.25);
            s.figures.budget_used_pct = Some(80.0);
        }
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
            threaded_napi: Some(crate::napi::NapiMode::All),
            relays: vec!["uturn-uring".into(), "coturn".into()],
            sweep_cpu_limit: Some(0.25),
            rows: vec![a, b, x],
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
        // uturn-uring ran without NAPI threads here: no NAPI ratios.
        // Process ratio 0.25; softirq like-for-like (2 + 1) / (8 + 1) =
        // 0.33; the literal softirq measure only for uturn-xdp.
        assert!(
            md.contains("| row1 | uturn-uring | – | – | 0.25 | 0.33 | – |"),
            "{md}"
        );
        // uturn-xdp: (0.1 + 0.3 NAPI) s / 410k = 0.98 µs; ÷ coTURN process
        // 19.51 = 0.05, ÷ coTURN process + NAPI (9 s / 410k = 21.95) = 0.04.
        // 0.24 µs process alone; (0.1 + 1) s / 410k = 2.68 µs with
        // softirq: 2.68 / 19.51 = 0.14 literal, 2.68 / 21.95 = 0.12.
        assert!(
            md.contains("| row1 | uturn-xdp | 0.05 | 0.04 | 0.01 | 0.12 | 0.14 |"),
            "{md}"
        );
        // Process µs, NAPI 3 % of a core, process + NAPI, far ends 5 %,
        // then the softirq figure.
        assert!(
            md.contains("| 0.24 | 3.0 | 0.98 | – | 5.0 | 2.68 |"),
            "{md}"
        );
        assert!(md.contains("| 19.51 | 10.0 | 21.95 | – | – |"), "{md}");
        // 41 ms / 205k runs = 200 ns; / 410k packets = 0.100 µs.
        assert!(md.contains("| 200 (0.100) |"), "{md}");
        assert!(md.contains("cgroup limited to 0.25 core(s)"), "{md}");
        assert!(md.contains("**Threaded NAPI:** every relay"), "{md}");
        // The sweep ended generator-bound: its maximum is a lower bound, and
        // the generator-bound step is marked.
        assert!(
            md.contains("| uturn-uring | 0.25 | ≥ 12000 (generator-bound) |"),
            "{md}"
        );
        assert!(md.contains("generator-bound: the relay's limit is at least the rate shown"));
        assert!(md.contains("| ⚠ generator-bound |"), "{md}");
        // A last step that lost with the relay at its budget but the
        // generator bound too is "probably", never a found limit.
        let mut r = report();
        if let Some(last) = r.sweeps[0].steps.last_mut() {
            last.summary.loss_ratio = 0.05;
            last.figures.relay_pct = 24.0;
        }
        let md2 = markdown(&r);
        assert!(
            md2.contains("probably the relay's limit, not proven"),
            "{md2}"
        );
        assert!(md2.contains("≥ 8000 (generator-bound)"), "{md2}");
        assert!(!md.contains("the budget did not hold"), "{md}");
        if let Some(last) = r.sweeps[0].steps.last_mut() {
            last.figures.budget_used_pct = Some(180.0);
        }
        assert!(
            markdown(&r)
                .contains("⚠ uturn-uring: the budget did not hold, its group used up to 180 %"),
            "{md2}"
        );
        assert_eq!(md.matches("| ⚠ generator-bound |").count(), 1, "{md}");
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
        assert_eq!(series[0].points.len(), 3);
        let svg = svg(&series);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
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
        assert_eq!(names, ["uturn-uring", "coturn", "uturn-xdp"]);
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
