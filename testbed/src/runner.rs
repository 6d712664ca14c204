//! One measured run: a fresh relay in the relay namespace, pinned to its
//! CPUs; `uturn-load` started from the root namespace (it opens its sockets
//! in the clients' and peers' namespaces itself); CPU sampled on the
//! generator's window markers; peak RSS read before the relay is stopped.
//!
//! A fresh relay per run keeps `VmHWM` (a lifetime high-water mark) and the
//! relay's caches from carrying over between runs.
//!
//! With a CPU budget ([`Testbed::relay_cpu_limit`]) the relay runs in its own
//! cgroup ([`crate::cgroup`]), created before it starts and removed after it
//! stops. For relays that forward in XDP the BPF run-time statistics are on
//! during the run ([`crate::bpfstats`]) and the program's run time over the
//! window is part of the result.

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bpfstats::StatsSwitch;
use crate::cgroup::{self, CgroupError, CpuBudget, CpuCgroup, Hierarchy};
use crate::load::{self, LoadError, LoadShape, LoadSummary, LoadTarget, Marker};
use crate::measure::{CpuFigures, Sample, WindowCpu};
use crate::napi::{NapiError, NapiMode, NapiThreads};
use crate::process::{wrapped_argv, Proc};
use crate::procfs::{self, ProcError};
use crate::profile::{self, Profile};
use crate::relay::{RelayBinaries, RelayConfig, RelayParams};
use crate::topology::Topology;

pub const REALM: &str = "test";
pub const USER: &str = "load";
pub const PASSWORD: &str = "secret";
pub const LISTEN_PORT: u16 = 3478;

/// Errors of one run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{name} did not answer STUN Binding on {addr} within {secs} s; its log:\n{log}")]
    RelayNotReady {
        name: String,
        addr: SocketAddr,
        secs: u64,
        log: String,
    },
    #[error("{name} exited during the run ({status}); its log:\n{log}")]
    RelayDied {
        name: String,
        status: String,
        log: String,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("sampling /proc: {0}")]
    Proc(#[from] ProcError),
    #[error("uturn-load ran past its time limit ({0} s) and was killed")]
    LoadTimeout(u64),
    #[error("relay CPU budget: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("threaded NAPI: {0}")]
    Napi(#[from] NapiError),
}

/// The fixed parts of every run: topology, binaries, CPUs, output folder.
#[derive(Debug, Clone)]
pub struct Testbed {
    pub topology: Topology,
    pub relay_bins: RelayBinaries,
    pub load_bin: PathBuf,
    /// This program, run inside the clients' namespace as the STUN probe.
    pub self_exe: PathBuf,
    pub relay_cpus: Vec<usize>,
    pub load_cpus: Vec<usize>,
    pub relay_threads: usize,
    pub load_threads: usize,
    /// Raw files (generator JSON, relay and generator logs) go here.
    pub raw_dir: PathBuf,
    /// Profile the relay with `perf record` over each window.
    pub perf: bool,
    /// CPU budget of the relay (cores), enforced with a cgroup; `None`
    /// runs it unlimited on its pinned CPUs.
    pub relay_cpu_limit: Option<CpuBudget>,
    /// Which relays run with threaded NAPI ([`crate::napi`]): their
    /// relay-side NAPI threads are pinned to the relay's CPUs, put into its
    /// budget cgroup and counted with it.
    pub threaded_napi: NapiMode,
    /// The generator's sessions all send in the same instant of each period
    /// (`uturn-load --aligned`, turnutils_uclient's bursts) instead of
    /// evenly spread.
    pub aligned_load: bool,
}

/// The relay under test: its process and, under a CPU budget, its cgroup.
/// Fields drop in order, so the process is stopped before its group goes.
#[derive(Debug)]
pub struct Relay {
    proc: Proc,
    cgroup: Option<CpuCgroup>,
    napi: Option<NapiThreads>,
}

impl Relay {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The budget cgroup the relay runs in, if any.
    pub fn cgroup(&self) -> Option<&CpuCgroup> {
        self.cgroup.as_ref()
    }

    /// The NAPI threads of the run (threaded-NAPI runs): the relay side's
    /// pinned with the relay and in its cgroup, the far side's with the
    /// generator.
    pub fn napi(&self) -> Option<&NapiThreads> {
        self.napi.as_ref()
    }

    /// `Some(status)` once the relay has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.exited()
    }

    /// Stops the relay (SIGTERM, SIGKILL after `grace`), then removes its
    /// cgroup.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let status = self.proc.stop(grace);
        self.cgroup = None;
        status
    }
}

/// Everything measured in one run; also written to `raw/*.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub relay: String,
    pub label: String,
    pub shape: LoadShape,
    /// Share of the seed's sessions this run offered (1.0 for sweep steps).
    pub scale: f64,
    pub offered_relayed_pps: f64,
    pub counts_softirq: bool,
    /// Ran with threaded NAPI; its relay-side NAPI threads are in
    /// `napi_threads` and their CPU in the figures.
    pub threaded_napi: bool,
    pub napi_threads: Option<NapiThreads>,
    pub summary: LoadSummary,
    pub window: WindowCpu,
    pub figures: CpuFigures,
    pub peak_rss_kib: u64,
    /// The generator may have limited this run: its process saturated its
    /// cores, or it fell behind its own schedule
    /// ([`CpuFigures::generator_cpu_saturated`], [`LoadSummary::fell_behind`]).
    pub generator_saturated: bool,
    /// Kernel/user split of the relay's time (with `--perf`).
    pub profile: Option<Profile>,
}

impl RunResult {
    /// The relay process's CPU-µs per relayed packet.
    pub fn process_us_per_pkt(&self) -> f64 {
        self.figures.relay_us_per_pkt
    }

    /// The relay process's plus the system's softirq CPU-µs per relayed
    /// packet (the softirq includes the generator's own receive work).
    pub fn with_softirq_us_per_pkt(&self) -> f64 {
        self.figures.relay_softirq_us_per_pkt
    }

    /// The relay process's plus its relay-side NAPI threads' CPU-µs per
    /// relayed packet (threaded-NAPI runs).
    pub fn with_napi_us_per_pkt(&self) -> Option<f64> {
        self.figures.relay_napi_us_per_pkt
    }

    /// Packets per second that crossed the relay in the window.
    pub fn relayed_pps(&self) -> f64 {
        let secs = if self.summary.window_secs > 0.0 {
            self.summary.window_secs
        } else {
            self.window.wall_secs
        };
        if secs > 0.0 {
            self.summary.relayed_packets as f64 / secs
        } else {
            0.0
        }
    }

    /// CPU % of one core that the report shows: the relay's own, plus its
    /// relay-side NAPI threads when it ran with threaded NAPI (exact), else
    /// plus the kernel's tick-sampled softirq for configurations where the
    /// kernel relays.
    pub fn headline_pct(&self) -> f64 {
        if let Some(napi) = self.figures.relay_napi_pct {
            self.figures.relay_pct + napi
        } else if self.counts_softirq {
            self.figures.relay_pct + self.figures.softirq_pct
        } else {
            self.figures.relay_pct
        }
    }

    /// CPU-µs per relayed packet that the report shows (see `headline_pct`).
    pub fn headline_us_per_pkt(&self) -> f64 {
        if let Some(us) = self.figures.relay_napi_us_per_pkt {
            us
        } else if self.counts_softirq {
            self.figures.relay_softirq_us_per_pkt
        } else {
            self.figures.relay_us_per_pkt
        }
    }
}

pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Testbed {
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((self.topology.relay_client_ip(), LISTEN_PORT))
    }

    pub fn relay_params(&self) -> RelayParams {
        RelayParams {
            listen: self.listen_addr(),
            relay_ip: self.topology.relay_peer_ip(),
            peer_net: self.topology.peer_net,
            realm: REALM.into(),
            user: USER.into(),
            password: PASSWORD.into(),
            threads: self.relay_threads,
            interfaces: vec![
                self.topology.relay_client_if(),
                self.topology.relay_peer_if(),
            ],
            scratch: self.raw_dir.clone(),
        }
    }

    /// Whether `config` runs with threaded NAPI here.
    pub fn threaded_napi_for(&self, config: &RelayConfig) -> bool {
        self.threaded_napi.applies(config.far_end_xdp)
    }

    /// Sets the veths up for `config`: the far ends get the XDP pass
    /// program only for the relay that forwards in XDP (with it attached
    /// the far end receives through veth's XDP ring, which measurably
    /// dropped uturn-uring's bursts, docs/benchmarks.md), and NAPI is
    /// threaded on all four ends or on none ([`Testbed::threaded_napi`]).
    pub fn prepare(&self, config: &RelayConfig) -> Result<(), RunError> {
        let far_ends = if config.far_end_xdp {
            self.topology.prepare_far_ends()
        } else {
            self.topology.clear_far_ends()
        };
        far_ends
            .and_then(|()| {
                self.topology
                    .set_threaded_napi(self.threaded_napi_for(config))
            })
            .map_err(|e| std::io::Error::other(e.to_string()).into())
    }

    /// Finds the run's NAPI threads and places them: the relay side's on
    /// the relay's CPUs and in its cgroup, the far side's on the
    /// generator's CPUs.
    fn place_napi(&self, cgroup: Option<&CpuCgroup>) -> Result<NapiThreads, RunError> {
        let threads =
            NapiThreads::discover(&self.topology.relay_ifaces(), &self.topology.far_ifaces())?;
        threads.pin(&cpu_list(&self.relay_cpus), &cpu_list(&self.load_cpus))?;
        if let Some(group) = cgroup {
            for t in &threads.relay_side {
                group.adopt(t.pid)?;
            }
        }
        tracing::debug!(?threads, "NAPI threads placed");
        Ok(threads)
    }

    /// Starts `config`'s relay in the relay namespace (in a budget cgroup
    /// when [`Testbed::relay_cpu_limit`] is set) and waits until it answers
    /// STUN from the clients' namespace.
    pub fn start_relay(&self, config: &RelayConfig, log: &Path) -> Result<Relay, RunError> {
        let mut argv = wrapped_argv(
            Some(&self.topology.relay_ns()),
            Some(&cpu_list(&self.relay_cpus)),
            &(config.build)(&self.relay_params(), &self.relay_bins),
        );
        let cgroup = match self.relay_cpu_limit {
            Some(budget) => {
                let group = CpuCgroup::create(
                    &Hierarchy::detect()?,
                    &cgroup::group_name(&self.topology.prefix, config.name),
                    budget,
                )?;
                // Outermost: `ip netns exec` remounts /sys, hiding the cgroup
                // file system, so the group is joined before it runs. The
                // wrappers all exec, so the relay keeps the PID that joined,
                // and it joins before its first thread exists.
                argv = group.wrap_argv(&argv);
                Some(group)
            }
            None => None,
        };
        let file = File::create(log)?;
        let mut relay = Relay {
            proc: Proc::spawn(
                config.name,
                &argv,
                Stdio::from(file.try_clone()?),
                Stdio::from(file),
            )?,
            cgroup,
            napi: None,
        };
        let addr = self.listen_addr();
        let limit = Duration::from_secs(15);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = relay.exited() {
                return Err(RunError::RelayDied {
                    name: config.name.into(),
                    status: status.to_string(),
                    log: std::fs::read_to_string(log).unwrap_or_default(),
                });
            }
            if self.probe_from_clients(addr, false) {
                // Placed once the relay runs: attaching its XDP program is
                // what creates the NAPI of a veth without GRO.
                if self.threaded_napi_for(config) {
                    relay.napi = Some(self.place_napi(relay.cgroup())?);
                }
                return Ok(relay);
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(RunError::RelayNotReady {
            name: config.name.into(),
            addr,
            secs: limit.as_secs(),
            log: std::fs::read_to_string(log).unwrap_or_default(),
        })
    }

    /// Runs this program's `probe` inside the clients' namespace (`echo`:
    /// expect a plain echo instead of a STUN answer).
    pub fn probe_from_clients(&self, addr: SocketAddr, echo: bool) -> bool {
        self.probe_from(&self.topology.clients_ns(), addr, echo)
    }

    pub fn probe_from(&self, ns: &str, addr: SocketAddr, echo: bool) -> bool {
        let mut argv = vec![
            self.self_exe.display().to_string(),
            "probe".into(),
            addr.to_string(),
            "--timeout-ms".into(),
            "500".into(),
        ];
        if echo {
            argv.push("--echo".into());
        }
        crate::process::run_checked(&wrapped_argv(Some(ns), None, &argv)).is_ok()
    }

    /// One measured run of `shape` through a fresh `config` relay.
    pub fn run(
        &self,
        config: &RelayConfig,
        label: &str,
        shape: &LoadShape,
        scale: f64,
    ) -> Result<RunResult, RunError> {
        std::fs::create_dir_all(&self.raw_dir)?;
        self.prepare(config)?;
        let stem = format!("{label}-{}", config.name);
        let relay_log = self.raw_dir.join(format!("{stem}.relay.log"));
        // XDP work never reaches the process: count the program's own run
        // time (statistics on only for these runs; they cost two clock
        // reads per program run).
        let _bpf_stats = if config.counts_softirq {
            StatsSwitch::on()
        } else {
            None
        };
        let mut relay = self.start_relay(config, &relay_log)?;
        tracing::info!(relay = config.name, label, sessions = shape.sessions, "run");

        let json = self.raw_dir.join(format!("{stem}.load.json"));
        let _ = std::fs::remove_file(&json);
        let target = LoadTarget {
            binary: self.load_bin.clone(),
            server: self.listen_addr(),
            realm: REALM.into(),
            user: USER.into(),
            password: PASSWORD.into(),
            client_ip: self.topology.client_ip(),
            client_netns: self.topology.clients_ns(),
            peer_ip: self.topology.peer_ip(),
            peer_netns: self.topology.peers_ns(),
            threads: self.load_threads,
            cpus: cpu_list(&self.load_cpus),
            json: json.clone(),
            aligned: self.aligned_load,
        };
        let argv = wrapped_argv(None, Some(&target.cpus), &load::load_argv(&target, shape));
        let load_log = self.raw_dir.join(format!("{stem}.load.log"));
        let mut gen = Proc::spawn(
            "uturn-load",
            &argv,
            Stdio::piped(),
            Stdio::from(File::create(&load_log)?),
        )?;
        let limit = time_limit(shape);
        let done = Arc::new(AtomicBool::new(false));
        let timed_out = watchdog(gen.pid(), limit, done.clone());

        let stdout = gen
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let (relay_pid, gen_pid) = (relay.pid(), gen.pid());
        let take = |relay: &Relay| {
            Sample::take(relay_pid, Some(gen_pid)).map(|s| {
                let s = s.with_cgroup(relay.cgroup()).with_napi(relay.napi());
                if config.counts_softirq {
                    s.with_bpf(relay_pid)
                } else {
                    s
                }
            })
        };
        let mut start: Option<Result<Sample, ProcError>> = None;
        let mut end: Option<Result<Sample, ProcError>> = None;
        let perf_data = self.raw_dir.join(format!("{stem}.perf.data"));
        let mut perf: Option<Proc> = None;
        let tail = load::read_markers(BufReader::new(stdout), |m| match m {
            Marker::WindowStart => {
                start = Some(take(&relay));
                if self.perf {
                    perf = Proc::spawn(
                        "perf",
                        &profile::record_argv(relay_pid, &perf_data),
                        Stdio::null(),
                        Stdio::null(),
                    )
                    .map_err(|e| tracing::warn!(error = %e, "perf record"))
                    .ok();
                }
            }
            Marker::WindowEnd => {
                end = Some(take(&relay));
                // perf writes its data file when interrupted.
                if let Some(mut p) = perf.take() {
                    p.stop(Duration::from_secs(20));
                }
            }
        });
        let status = gen.wait_for(Duration::from_secs(30));
        done.store(true, Ordering::Relaxed);
        if timed_out.load(Ordering::Relaxed) {
            return Err(RunError::LoadTimeout(limit.as_secs()));
        }
        if let Some(s) = relay.exited() {
            return Err(RunError::RelayDied {
                name: config.name.into(),
                status: s.to_string(),
                log: std::fs::read_to_string(&relay_log).unwrap_or_default(),
            });
        }
        let peak_rss_kib = procfs::read_vm_hwm_kib(relay_pid)?;
        let napi_threads = relay.napi().cloned();
        relay.stop(Duration::from_secs(5));

        let summary = load::parse_summary(&json, &tail).map_err(|e| match e {
            LoadError::NoSummary { .. } => LoadError::NoSummary {
                status: status.map_or("none".into(), |s| s.to_string()),
                stderr: std::fs::read_to_string(&load_log).unwrap_or_default(),
            },
            e => e,
        })?;
        let start = start.ok_or(LoadError::NoMarker("@window-start"))??;
        let end = end.ok_or(LoadError::NoMarker("@window-end"))??;
        let window = WindowCpu::between(
            &start,
            &end,
            procfs::clock_ticks_per_sec(),
            &self.relay_cpus,
            &self.load_cpus,
        );
        let figures = CpuFigures::derive(
            &window,
            summary.relayed_packets,
            self.load_cpus.len(),
            self.relay_cpu_limit.map(|b| b.cores),
        );
        let result = RunResult {
            relay: config.name.into(),
            label: label.into(),
            shape: shape.clone(),
            scale,
            offered_relayed_pps: shape.offered_relayed_pps(),
            counts_softirq: config.counts_softirq,
            threaded_napi: napi_threads.is_some(),
            napi_threads,
            generator_saturated: figures.generator_cpu_saturated() || summary.fell_behind(),
            profile: if self.perf {
                profile::summarise(&perf_data)
            } else {
                None
            },
            summary,
            window,
            figures,
            peak_rss_kib,
        };
        std::fs::write(
            self.raw_dir.join(format!("{stem}.json")),
            serde_json::to_string_pretty(&result).map_err(std::io::Error::other)?,
        )?;
        Ok(result)
    }
}

/// Generous upper bound on a generator run: setup and teardown at the
/// default 500 allocations/s, the phases, the drain, plus a minute.
fn time_limit(shape: &LoadShape) -> Duration {
    let setup = 2 * u64::from(shape.sessions) / 500;
    Duration::from_secs(
        setup + u64::from(shape.ramp_up_secs + shape.warmup_secs + shape.duration_secs) + 60,
    )
}

/// Kills the process group `pgid` if `done` is not set within `limit`.
fn watchdog(pgid: u32, limit: Duration, done: Arc<AtomicBool>) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        if !done.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Relaxed);
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
        }
    });
    fired
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A result with the given sessions, loss, generator CPU and relayed
    /// packet rate (over a 10 s window), for report and sweep tests.
    pub(crate) fn result_with(
        sessions: u32,
        loss: f64,
        gen_pct: f64,
        relayed_pps: f64,
    ) -> RunResult {
        let shape = crate::scenario::sweep_shape(sessions, crate::scenario::Timing::sweep(false));
        let relayed = (relayed_pps * 10.0) as u64;
        let window = WindowCpu {
            wall_secs: 10.0,
            relay_cpu_secs: 2.0,
            softirq_all_secs: 1.0,
            softirq_relay_cpus_secs: 0.5,
            relay_cpus_busy_secs: 3.0,
            generator_cpu_secs: Some(gen_pct / 10.0),
            load_cpus_busy_secs: gen_pct / 10.0,
            throttling: None,
            bpf: None,
            relay_napi_secs: None,
            far_napi_secs: None,
            relay_napi_slices: None,
        };
        let figures = CpuFigures::derive(&window, relayed, 1, None);
        RunResult {
            relay: "uturn-uring".into(),
            label: format!("sweep-{sessions}"),
            offered_relayed_pps: shape.offered_relayed_pps(),
            shape,
            scale: 1.0,
            counts_softirq: false,
            threaded_napi: false,
            napi_threads: None,
            summary: LoadSummary {
                sessions_requested: u64::from(sessions),
                sessions_established: u64::from(sessions),
                window_secs: 10.0,
                relayed_packets: relayed,
                loss_ratio: loss,
                rtt_us: load::Rtt {
                    p99: 250.0,
                    ..Default::default()
                },
                ..Default::default()
            },
            window,
            generator_saturated: figures.generator_cpu_saturated(),
            figures,
            peak_rss_kib: 20480,
            profile: None,
        }
    }

    #[test]
    fn headline_adds_softirq_only_where_the_kernel_relays() {
        let mut r = result_with(100, 0.0, 50.0, 10_000.0);
        // 2 s relay CPU over 10 s, 100k packets.
        assert!((r.headline_pct() - 20.0).abs() < 1e-9);
        assert!((r.headline_us_per_pkt() - 20.0).abs() < 1e-9);
        assert!((r.relayed_pps() - 10_000.0).abs() < 1e-9);
        r.counts_softirq = true;
        assert!((r.headline_pct() - 30.0).abs() < 1e-9);
        assert!((r.headline_us_per_pkt() - 30.0).abs() < 1e-9);
        // With threaded NAPI the exact NAPI thread time replaces softirq:
        // (2 + 0.5) s over 10 s and 100k packets.
        r.window.relay_napi_secs = Some(0.5);
        r.figures = CpuFigures::derive(&r.window, r.summary.relayed_packets, 1, None);
        assert!((r.headline_pct() - 25.0).abs() < 1e-9);
        assert!((r.headline_us_per_pkt() - 25.0).abs() < 1e-9);
        assert_eq!(r.with_napi_us_per_pkt(), Some(r.headline_us_per_pkt()));
    }

    #[test]
    fn time_limit_grows_with_sessions_and_phases() {
        let small = crate::scenario::sweep_shape(10, crate::scenario::Timing::sweep(false));
        let big = crate::scenario::sweep_shape(5000, crate::scenario::Timing::sweep(false));
        assert!(time_limit(&big) > time_limit(&small));
        assert!(time_limit(&small) >= Duration::from_secs(60 + 7));
    }

    #[test]
    fn cpu_lists_are_comma_separated() {
        assert_eq!(cpu_list(&[1]), "1");
        assert_eq!(cpu_list(&[0, 2, 3]), "0,2,3");
    }
}
