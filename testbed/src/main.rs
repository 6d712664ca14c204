//! `uturn-testbed`: one command that measures uturn (io_uring, epoll) and
//! coTURN in network namespaces and writes a results folder. See the crate
//! docs (src/lib.rs) for the topology and docs/benchmarks.md for results.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

use uturn_testbed::cgroup::{self, CpuBudget, Hierarchy};
use uturn_testbed::crosscheck::{self, UclientShape};
use uturn_testbed::napi::NapiMode;
use uturn_testbed::process::{cleanup_everything, install_signal_cleanup};
use uturn_testbed::relay::{self, RelayBinaries, RelayConfig};
use uturn_testbed::report::{self, Machine, Report};
use uturn_testbed::runner::Testbed;
use uturn_testbed::scenario::{self, Row, Sweep, SweepStop, Timing};
use uturn_testbed::topology::{Topology, DEFAULT_CLIENT_NET, DEFAULT_PEER_NET};
use uturn_testbed::{probe, procfs};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measures TURN relays (uturn, coTURN) in network namespaces"
)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Args)]
struct Opts {
    /// Prefix of the namespaces and veths (PREFIX-relay, PREFIX-rc, ...).
    #[arg(long, global = true, default_value = "ut")]
    ns_prefix: String,
    /// Subnet between clients and relay (relay .1, clients .2).
    #[arg(long, global = true, default_value = DEFAULT_CLIENT_NET)]
    client_net: Ipv4Net,
    /// Subnet between relay and peers (relay .1, peers .2).
    #[arg(long, global = true, default_value = DEFAULT_PEER_NET)]
    peer_net: Ipv4Net,
    /// Relays to measure, comma-separated: uturn-uring, uturn-epoll, coturn, uturn-xdp.
    #[arg(long, global = true, value_delimiter = ',', default_values_t = relay::DEFAULT_RELAYS.iter().map(|s| s.to_string()))]
    relays: Vec<String>,
    /// Short phases and few sweep steps (smoke runs).
    #[arg(long, global = true)]
    quick: bool,
    /// Share of the seed table's sessions to offer (default per row: 0.25, 0.25, 0.1).
    #[arg(long, global = true)]
    scale: Option<f64>,
    /// Share of the seed table's sessions in the turnutils cross-check
    /// (uclient sets allocations up slowly, ~0.1 s each).
    #[arg(long, global = true, default_value_t = 0.1)]
    crosscheck_scale: f64,
    /// Results folder (default results/<UTC timestamp>).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// uturn binary (default: next to this program).
    #[arg(long, global = true)]
    uturn_bin: Option<PathBuf>,
    /// uturn-load binary (default: next to this program).
    #[arg(long, global = true)]
    load_bin: Option<PathBuf>,
    /// coTURN's turnserver.
    #[arg(long, global = true, default_value = "turnserver")]
    turnserver_bin: PathBuf,
    /// CPUs the relay is pinned to.
    #[arg(long, global = true, value_delimiter = ',', default_value = "1")]
    relay_cpus: Vec<usize>,
    /// CPUs the load generator is pinned to.
    #[arg(long, global = true, value_delimiter = ',', default_value = "0")]
    load_cpus: Vec<usize>,
    /// Profile the relay with `perf record -g` over each measured window
    /// (adds perf's own overhead to the figures; use for diagnosis).
    #[arg(long, global = true)]
    perf: bool,
    /// Relay threads (uturn --threads, coTURN --relay-threads); default: one per relay CPU.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// CPU budget of every relay during the sweep, in cores (a cgroup CFS
    /// quota on the relay and all its threads), so the sweep finds the
    /// relay's limit before the generator's; `none` sweeps unlimited
    /// relays. Default: 0.15.
    #[arg(long, global = true, value_parser = parse_cpu_limit)]
    relay_cpu_limit: Option<CpuLimit>,
    /// Which relays run with threaded NAPI on all four veth ends: the
    /// kernel's receive and XDP work then runs in `napi/IFACE-N` threads,
    /// counted exactly and, on the relay side, pinned with the relay and
    /// charged to its budget cgroup (`all`: the same for every relay;
    /// `xdp`: uturn-xdp only). Off by default: the threads wake for every
    /// packet or two at these rates, and that wake-up cost (large in a VM)
    /// dominates what they measure (docs/benchmarks.md, "Third round"), so
    /// the default keeps the kernel's ordinary softirq path, as a NIC has.
    #[arg(long, global = true, value_enum, default_value = "off")]
    threaded_napi: NapiMode,
    /// uturn-load's sessions all send in the same instant of each period
    /// (`--aligned`: the bursts turnutils_uclient makes) instead of evenly
    /// spread phases; to compare uturn-load with the cross-check's client.
    #[arg(long, global = true)]
    aligned_load: bool,
}

/// `--relay-cpu-limit`: a number of cores, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CpuLimit {
    Cores(f64),
    Unlimited,
}

fn parse_cpu_limit(s: &str) -> Result<CpuLimit, String> {
    if s == "none" {
        return Ok(CpuLimit::Unlimited);
    }
    let cores: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is neither a number of cores nor `none`"))?;
    CpuBudget::new(cores)
        .map(|_| CpuLimit::Cores(cores))
        .map_err(|e| e.to_string())
}

impl Opts {
    /// The sweep's CPU budget (the default when the flag is absent).
    fn sweep_budget(&self) -> Option<CpuBudget> {
        match self
            .relay_cpu_limit
            .unwrap_or(CpuLimit::Cores(scenario::DEFAULT_SWEEP_CPU_LIMIT))
        {
            CpuLimit::Cores(c) => CpuBudget::new(c).ok(),
            CpuLimit::Unlimited => None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The whole comparison: seed rows, sweep and cross-check for each relay.
    Compare {
        /// Skip the turnutils cross-check.
        #[arg(long)]
        no_crosscheck: bool,
        /// Skip the sweep.
        #[arg(long)]
        no_sweep: bool,
    },
    /// One seed row (1, 2 or 3) for each relay.
    Row { number: u8 },
    /// Raise the offered rate until loss > 0.1 %, for each relay.
    Sweep,
    /// The seed rows driven by turnutils_uclient/turnutils_peer.
    Crosscheck {
        /// Rows to cross-check, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3])]
        rows: Vec<u8>,
    },
    /// Build the topology and leave it up (for manual poking).
    Up,
    /// Tear the topology down (and kill what runs in it).
    Down,
    /// Internal: STUN Binding (or plain echo) probe, run inside a namespace.
    #[command(hide = true)]
    Probe {
        addr: SocketAddr,
        #[arg(long, default_value_t = 500)]
        timeout_ms: u64,
        #[arg(long)]
        echo: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Probe {
        addr,
        timeout_ms,
        echo,
    } = cli.command
    {
        let timeout = Duration::from_millis(timeout_ms);
        let ok = if echo {
            probe::echo_answered(addr, timeout)
        } else {
            probe::binding_answered(addr, timeout)
        };
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match procfs::effective_uid() {
        Ok(0) => {}
        Ok(uid) => {
            eprintln!(
                "uturn-testbed needs root (it creates network namespaces and veths); running as uid {uid}. \
                 Run it with sudo."
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("uturn-testbed: cannot tell whether it runs as root: {e}");
            return ExitCode::from(2);
        }
    }
    install_signal_cleanup();
    // The release profile aborts on panic, so drop guards would not run:
    // clean up from the hook instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        cleanup_everything();
    }));
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("uturn-testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when some measurement failed.
fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let o = &cli.opts;
    // Far ends are prepared per run, for uturn-xdp only (Testbed::run).
    let topology = Topology::new(&o.ns_prefix, o.client_net, o.peer_net)?.with_far_end_xdp(false);
    match cli.command {
        Cmd::Up => {
            let guard = topology.up()?;
            std::mem::forget(guard);
            println!(
                "up: {} (listener {}:3478), {} ({}), {} ({})",
                topology.relay_ns(),
                topology.relay_client_ip(),
                topology.clients_ns(),
                topology.client_ip(),
                topology.peers_ns(),
                topology.peer_ip()
            );
            return Ok(true);
        }
        Cmd::Down => {
            topology.down();
            return Ok(true);
        }
        _ => {}
    }

    let configs: Vec<&'static RelayConfig> = o
        .relays
        .iter()
        .map(|n| relay::config(n).ok_or_else(|| format!("unknown relay {n:?}")))
        .collect::<Result<_, _>>()?;
    let here = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let uturn_bin = o.uturn_bin.clone().unwrap_or_else(|| here.join("uturn"));
    let load_bin = o
        .load_bin
        .clone()
        .unwrap_or_else(|| here.join("uturn-load"));
    let needs_load = !matches!(cli.command, Cmd::Crosscheck { .. });
    for (bin, what) in [(&uturn_bin, "uturn"), (&load_bin, "uturn-load")] {
        if (what == "uturn" || needs_load) && !bin.is_file() {
            return Err(format!(
                "{what} not found at {} (build with `cargo build --release --workspace`, or pass --{}-bin)",
                bin.display(),
                if what == "uturn" { "uturn" } else { "load" }
            )
            .into());
        }
    }
    let started = SystemTime::now();
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(timestamp(started, true)));
    std::fs::create_dir_all(out.join("raw"))?;

    let tb = Testbed {
        topology: topology.clone(),
        relay_bins: RelayBinaries {
            uturn: uturn_bin.clone(),
            turnserver: o.turnserver_bin.clone(),
        },
        load_bin,
        self_exe: std::env::current_exe()?,
        relay_cpus: o.relay_cpus.clone(),
        load_cpus: o.load_cpus.clone(),
        relay_threads: o.threads.unwrap_or(o.relay_cpus.len()).max(1),
        load_threads: o.load_cpus.len().max(1),
        raw_dir: out.join("raw"),
        perf: o.perf,
        relay_cpu_limit: None,
        threaded_napi: o.threaded_napi,
        aligned_load: o.aligned_load,
    };
    let sweeping = matches!(
        cli.command,
        Cmd::Sweep
            | Cmd::Compare {
                no_sweep: false,
                ..
            }
    );
    let sweep_budget = o.sweep_budget();
    if sweeping && sweep_budget.is_some() {
        // Fail before any measurement when the budget cannot be enforced,
        // and take away groups a killed run left behind.
        let hierarchy = Hierarchy::detect()?;
        cgroup::remove_stale(&hierarchy, &o.ns_prefix);
        tracing::info!(
            version = ?hierarchy.version,
            root = %hierarchy.root.display(),
            cores = sweep_budget.map(|b| b.cores),
            "sweep relays get a CPU budget"
        );
    }
    let sweep_tb = Testbed {
        relay_cpu_limit: sweep_budget,
        ..tb.clone()
    };
    let mut rep = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_utc: timestamp(started, false),
        machine: Machine::describe(
            &uturn_bin.display().to_string(),
            &o.turnserver_bin.display().to_string(),
        ),
        relay_cpus: o
            .relay_cpus
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        load_cpus: o
            .load_cpus
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        relay_threads: tb.relay_threads,
        threaded_napi: Some(o.threaded_napi),
        relays: o.relays.clone(),
        sweep_cpu_limit: if sweeping {
            sweep_budget.map(|b| b.cores)
        } else {
            None
        },
        ..Default::default()
    };

    let _guard = topology.up()?;
    match cli.command {
        Cmd::Compare {
            no_crosscheck,
            no_sweep,
        } => {
            run_rows(&tb, &configs, &scenario::ROWS, o, &mut rep);
            if !no_sweep {
                run_sweeps(&sweep_tb, &configs, o.quick, &mut rep);
            }
            if !no_crosscheck {
                run_crosscheck(&tb, &configs, &scenario::ROWS, o, &mut rep);
            }
        }
        Cmd::Row { number } => {
            let row = scenario::row(number).ok_or("rows are 1, 2 and 3")?;
            run_rows(&tb, &configs, &[row], o, &mut rep);
        }
        Cmd::Sweep => run_sweeps(&sweep_tb, &configs, o.quick, &mut rep),
        Cmd::Crosscheck { rows } => {
            let rows: Vec<Row> = rows.iter().filter_map(|&n| scenario::row(n)).collect();
            run_crosscheck(&tb, &configs, &rows, o, &mut rep);
        }
        Cmd::Up | Cmd::Down | Cmd::Probe { .. } => {}
    }

    std::fs::write(out.join("results.md"), report::markdown(&rep))?;
    std::fs::write(out.join("cpu.svg"), report::svg(&report::plot_series(&rep)))?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&rep)?)?;
    println!("results in {}", out.display());
    Ok(rep.failures.is_empty())
}

fn row_scale(row: &Row, o: &Opts) -> f64 {
    o.scale.unwrap_or(row.default_scale)
}

fn run_rows(tb: &Testbed, configs: &[&RelayConfig], rows: &[Row], o: &Opts, rep: &mut Report) {
    for row in rows {
        let scale = row_scale(row, o);
        let shape = row.shape(scale, Timing::rows(o.quick));
        for config in configs {
            let label = format!("row{}", row.number);
            match tb.run(config, &label, &shape, scale) {
                Ok(r) => {
                    tracing::info!(
                        relay = config.name,
                        label,
                        cpu_pct = r.headline_pct(),
                        us_per_pkt = r.headline_us_per_pkt(),
                        loss = r.summary.loss_ratio,
                        "row done"
                    );
                    rep.rows.push(r);
                }
                Err(e) => {
                    tracing::error!(relay = config.name, label, error = %e, "row failed");
                    rep.failures.push(format!("{label} {}: {e}", config.name));
                }
            }
        }
    }
}

fn run_sweeps(tb: &Testbed, configs: &[&RelayConfig], quick: bool, rep: &mut Report) {
    let timing = Timing::sweep(quick);
    for config in configs {
        let mut sweep = Sweep {
            relay: config.name.into(),
            steps: Vec::new(),
            stop: SweepStop::StepsExhausted,
        };
        for sessions in scenario::sweep_sessions(quick) {
            let shape = scenario::sweep_shape(sessions, timing);
            match tb.run(config, &format!("sweep{sessions}"), &shape, 1.0) {
                Ok(r) => {
                    let stop = scenario::sweep_next(&r, tb.relay_cpus.len());
                    tracing::info!(
                        relay = config.name,
                        sessions,
                        relayed_pps = r.relayed_pps(),
                        cpu_pct = r.figures.relay_pct,
                        budget_used_pct = r.figures.budget_used_pct,
                        loss = r.summary.loss_ratio,
                        generator_bound = r.generator_saturated,
                        "sweep step"
                    );
                    sweep.steps.push(r);
                    if let Some(stop) = stop {
                        sweep.stop = stop;
                        break;
                    }
                }
                Err(e) => {
                    rep.failures
                        .push(format!("sweep{sessions} {}: {e}", config.name));
                    sweep.stop = SweepStop::Failed(e.to_string());
                    break;
                }
            }
        }
        rep.sweeps.push(sweep);
    }
}

fn run_crosscheck(
    tb: &Testbed,
    configs: &[&RelayConfig],
    rows: &[Row],
    o: &Opts,
    rep: &mut Report,
) {
    let duration = Timing::rows(o.quick).duration_secs;
    for row in rows {
        let clients = row.scaled_sessions(o.crosscheck_scale);
        let shape = UclientShape::from_rate(clients, row.kbps, row.payload, duration);
        for config in configs {
            let label = format!("row{}", row.number);
            match crosscheck::run(tb, config, &label, &shape) {
                Ok(r) => rep.crosscheck.push(r),
                Err(e) => {
                    tracing::error!(relay = config.name, label, error = %e, "cross-check failed");
                    rep.failures
                        .push(format!("crosscheck {label} {}: {e}", config.name));
                }
            }
        }
    }
}

/// UTC time as `YYYYMMDD-HHMMSS` (file names) or `YYYY-MM-DD HH:MM:SS UTC`.
fn timestamp(t: SystemTime, compact: bool) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let (hh, mm, ss) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    if compact {
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
    }
}

/// Gregorian date of a day count since 1970-01-01 (the proleptic calendar
/// in 400-year eras of 146 097 days, with years starting in March so the
/// leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(timestamp(t, true), "20000229-010203");
        assert_eq!(timestamp(t, false), "2000-02-29 01:02:03 UTC");
    }

    #[test]
    fn cli_parses_the_documented_commands() {
        let c = Cli::try_parse_from([
            "uturn-testbed",
            "compare",
            "--quick",
            "--relays",
            "coturn,uturn-epoll",
        ])
        .unwrap();
        assert!(c.opts.quick);
        assert_eq!(c.opts.relays, ["coturn", "uturn-epoll"]);
        let c = Cli::try_parse_from(["uturn-testbed", "--ns-prefix", "h7", "row", "3"]).unwrap();
        assert!(matches!(c.command, Cmd::Row { number: 3 }));
        assert_eq!(c.opts.ns_prefix, "h7");
        assert_eq!(c.opts.relays, relay::DEFAULT_RELAYS);
        assert_eq!(c.opts.relay_cpus, [1]);
        assert!(Cli::try_parse_from(["uturn-testbed", "sweep", "--relay-cpus", "1,2"]).is_ok());
        // The sweep's CPU budget: 0.15 core unless told otherwise.
        let c = Cli::try_parse_from(["uturn-testbed", "compare"]).unwrap();
        assert_eq!(c.opts.sweep_budget().map(|b| b.cores), Some(0.15));
        let c =
            Cli::try_parse_from(["uturn-testbed", "sweep", "--relay-cpu-limit", "0.5"]).unwrap();
        assert_eq!(c.opts.sweep_budget().map(|b| b.cores), Some(0.5));
        let c =
            Cli::try_parse_from(["uturn-testbed", "sweep", "--relay-cpu-limit", "none"]).unwrap();
        assert_eq!(c.opts.sweep_budget(), None);
        for bad in ["0", "-1", "lots"] {
            assert!(
                Cli::try_parse_from(["uturn-testbed", "sweep", "--relay-cpu-limit", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["uturn-testbed", "crosscheck", "--rows", "1"]).is_ok());
        assert!(Cli::try_parse_from(["uturn-testbed", "up"]).is_ok());
        assert!(Cli::try_parse_from(["uturn-testbed", "bogus"]).is_err());
    }
}
