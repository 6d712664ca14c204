//! The measured window: what is sampled at its start and end, and the
//! figures derived from the two samples (CPU % of one core, CPU-µs per
//! relayed packet, the kernel's softirq share).
//!
//! CPU times come from `/proc` in clock ticks; everything here is plain
//! arithmetic on two [`Sample`]s so it is tested without a running relay.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bpfstats::{self, BpfWindow, ProgStats};
use crate::cgroup::{CpuCgroup, Throttling};
use crate::napi::{NapiThreads, NapiTimes};
use crate::procfs::{self, ProcError, ProcessTimes, SoftirqTimes};

/// One snapshot taken on `@window-start` or `@window-end`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub relay: ProcessTimes,
    pub generator: Option<ProcessTimes>,
    pub softirq: SoftirqTimes,
    /// The relay's CPU-budget cgroup counters, when it runs under a budget.
    pub throttling: Option<Throttling>,
    /// Run-time counters of the relay's BPF programs (XDP runs).
    pub bpf: Option<BTreeMap<u32, ProgStats>>,
    /// CPU time of the NAPI threads (threaded-NAPI runs).
    pub napi: Option<NapiTimes>,
}

impl Sample {
    /// Reads the relay's and (if given) the generator's CPU times and the
    /// system's softirq counters now.
    pub fn take(relay_pid: u32, generator_pid: Option<u32>) -> Result<Sample, ProcError> {
        let at = Instant::now();
        Ok(Sample {
            at,
            relay: procfs::read_pid_stat(relay_pid)?,
            generator: generator_pid.map(procfs::read_pid_stat).transpose()?,
            softirq: procfs::read_softirq()?,
            throttling: None,
            bpf: None,
            napi: None,
        })
    }

    /// Adds the budget cgroup's throttling counters (if it can be read).
    pub fn with_cgroup(mut self, cgroup: Option<&CpuCgroup>) -> Sample {
        self.throttling = cgroup.and_then(|c| {
            c.throttling()
                .map_err(|e| tracing::warn!(error = %e, "cgroup cpu.stat"))
                .ok()
        });
        self
    }

    /// Adds the CPU time of the run's NAPI threads, if it has them.
    pub fn with_napi(mut self, threads: Option<&NapiThreads>) -> Sample {
        self.napi = threads.map(NapiThreads::runtime);
        self
    }

    /// Adds the BPF run-time counters of the programs `relay_pid` holds.
    pub fn with_bpf(mut self, relay_pid: u32) -> Sample {
        self.bpf = Some(bpfstats::read_process(relay_pid));
        self
    }
}

/// CPU use over a window, in seconds of CPU and of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowCpu {
    pub wall_secs: f64,
    /// utime+stime of the relay process (all threads).
    pub relay_cpu_secs: f64,
    /// softirq time of all CPUs (the kernel's network processing).
    pub softirq_all_secs: f64,
    /// softirq time of the CPUs the relay was pinned to.
    pub softirq_relay_cpus_secs: f64,
    /// Busy time of the relay's CPUs from anything (the relay, softirq,
    /// other processes): shows when others competed for the relay's core.
    pub relay_cpus_busy_secs: f64,
    /// utime+stime of the load generator, if it was sampled.
    pub generator_cpu_secs: Option<f64>,
    /// Busy time of the generator's CPUs from anything (the generator, the
    /// softirq work of its sockets, other processes).
    pub load_cpus_busy_secs: f64,
    /// Periods of the relay's CPU budget, and how many were throttled.
    pub throttling: Option<Throttling>,
    /// Run time of the relay's BPF programs (XDP runs).
    pub bpf: Option<BpfWindow>,
    /// CPU time of the relay side's NAPI threads (threaded-NAPI runs):
    /// the kernel's receive work for the relay, all of XDP's forwarding.
    pub relay_napi_secs: Option<f64>,
    /// CPU time of the far ends' NAPI threads: the generator's receive work.
    pub far_napi_secs: Option<f64>,
    /// How often the relay side's NAPI threads were put on a CPU.
    pub relay_napi_slices: Option<u64>,
}

impl WindowCpu {
    /// Differences between two samples, converted from `hz` ticks/second.
    pub fn between(
        start: &Sample,
        end: &Sample,
        hz: u64,
        relay_cpus: &[usize],
        load_cpus: &[usize],
    ) -> WindowCpu {
        let hz = hz.max(1) as f64;
        let ticks = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz;
        WindowCpu {
            wall_secs: end.at.saturating_duration_since(start.at).as_secs_f64(),
            relay_cpu_secs: ticks(start.relay.total(), end.relay.total()),
            softirq_all_secs: ticks(start.softirq.all, end.softirq.all),
            softirq_relay_cpus_secs: ticks(
                start.softirq.of_cpus(relay_cpus),
                end.softirq.of_cpus(relay_cpus),
            ),
            relay_cpus_busy_secs: ticks(
                start.softirq.busy_of_cpus(relay_cpus),
                end.softirq.busy_of_cpus(relay_cpus),
            ),
            generator_cpu_secs: match (start.generator, end.generator) {
                (Some(a), Some(b)) => Some(ticks(a.total(), b.total())),
                _ => None,
            },
            load_cpus_busy_secs: ticks(
                start.softirq.busy_of_cpus(load_cpus),
                end.softirq.busy_of_cpus(load_cpus),
            ),
            throttling: match (start.throttling, end.throttling) {
                (Some(a), Some(b)) => Some(Throttling {
                    periods: b.periods.saturating_sub(a.periods),
                    throttled: b.throttled.saturating_sub(a.throttled),
                }),
                _ => None,
            },
            bpf: match (&start.bpf, &end.bpf) {
                (Some(a), Some(b)) => Some(BpfWindow::between(a, b)),
                _ => None,
            },
            relay_napi_secs: napi_secs(start.napi, end.napi, |t| t.relay_ns),
            far_napi_secs: napi_secs(start.napi, end.napi, |t| t.far_ns),
            relay_napi_slices: match (start.napi, end.napi) {
                (Some(a), Some(b)) => Some(b.relay_slices.saturating_sub(a.relay_slices)),
                _ => None,
            },
        }
    }

    /// For a window measured by other means (e.g. a whole external run).
    pub fn from_parts(wall: Duration, relay_cpu_secs: f64) -> WindowCpu {
        WindowCpu {
            wall_secs: wall.as_secs_f64(),
            relay_cpu_secs,
            softirq_all_secs: 0.0,
            softirq_relay_cpus_secs: 0.0,
            relay_cpus_busy_secs: 0.0,
            generator_cpu_secs: None,
            load_cpus_busy_secs: 0.0,
            throttling: None,
            bpf: None,
            relay_napi_secs: None,
            far_napi_secs: None,
            relay_napi_slices: None,
        }
    }
}

fn napi_secs(
    start: Option<NapiTimes>,
    end: Option<NapiTimes>,
    side: impl Fn(&NapiTimes) -> u64,
) -> Option<f64> {
    match (start, end) {
        (Some(a), Some(b)) => Some(side(&b).saturating_sub(side(&a)) as f64 / 1e9),
        _ => None,
    }
}

/// The derived figures the report shows for one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuFigures {
    /// Relay CPU as % of one core (100 = one core busy for the whole window).
    pub relay_pct: f64,
    /// Relay CPU-µs per relayed packet.
    pub relay_us_per_pkt: f64,
    /// System-wide softirq as % of one core.
    pub softirq_pct: f64,
    /// (relay + system-wide softirq) CPU-µs per relayed packet: the honest
    /// figure when the kernel does part of the relaying (XDP).
    pub relay_softirq_us_per_pkt: f64,
    /// Load generator CPU as % of the cores it was given.
    pub generator_pct: Option<f64>,
    /// Time the relay's CPUs spent on anything but the relay and softirq,
    /// % of one core: other processes competing with the relay.
    pub other_on_relay_cpus_pct: f64,
    /// Busy time of the generator's CPUs, % of those cores.
    pub load_cpus_busy_pct: f64,
    /// The relay's CPU budget in cores (`--relay-cpu-limit`), if it had one.
    pub budget_cores: Option<f64>,
    /// Relay CPU as % of its budget.
    pub budget_used_pct: Option<f64>,
    /// Share of the budget's periods in which the relay was throttled, %.
    pub throttled_pct: Option<f64>,
    /// Mean run time of one XDP program invocation, ns.
    pub bpf_ns_per_run: Option<f64>,
    /// XDP program run time per relayed packet, µs.
    pub bpf_us_per_pkt: Option<f64>,
    /// The relay side's NAPI threads as % of one core (threaded NAPI).
    pub relay_napi_pct: Option<f64>,
    /// (relay process + relay-side NAPI threads) CPU-µs per relayed packet:
    /// the relay's whole cost, kernel forwarding included, measured exactly.
    pub relay_napi_us_per_pkt: Option<f64>,
    /// The far ends' NAPI threads (the generator's receive work), % of one core.
    pub far_napi_pct: Option<f64>,
    /// Relayed packets per time a relay-side NAPI thread ran: how well the
    /// threads batch (near 1, each packet pays a wake-up and two context
    /// switches).
    pub relay_napi_pkts_per_slice: Option<f64>,
}

impl CpuFigures {
    /// `generator_cores` is how many cores the generator may use;
    /// `budget_cores` the relay's CPU budget, if it had one.
    pub fn derive(
        w: &WindowCpu,
        relayed_packets: u64,
        generator_cores: usize,
        budget_cores: Option<f64>,
    ) -> CpuFigures {
        let pct = |secs: f64| {
            if w.wall_secs > 0.0 {
                100.0 * secs / w.wall_secs
            } else {
                0.0
            }
        };
        let per_pkt = |secs: f64| {
            if relayed_packets > 0 {
                secs * 1e6 / relayed_packets as f64
            } else {
                f64::NAN
            }
        };
        CpuFigures {
            relay_pct: pct(w.relay_cpu_secs),
            relay_us_per_pkt: per_pkt(w.relay_cpu_secs),
            softirq_pct: pct(w.softirq_all_secs),
            relay_softirq_us_per_pkt: per_pkt(w.relay_cpu_secs + w.softirq_all_secs),
            generator_pct: w
                .generator_cpu_secs
                .map(|g| pct(g) / generator_cores.max(1) as f64),
            other_on_relay_cpus_pct: pct((w.relay_cpus_busy_secs
                - w.relay_cpu_secs
                - w.softirq_relay_cpus_secs)
                .max(0.0)),
            load_cpus_busy_pct: pct(w.load_cpus_busy_secs) / generator_cores.max(1) as f64,
            budget_cores,
            // With threaded NAPI the relay side's threads are in the budget
            // cgroup too, so the budget covers both.
            budget_used_pct: budget_cores
                .filter(|&c| c > 0.0)
                .map(|c| pct(w.relay_cpu_secs + w.relay_napi_secs.unwrap_or(0.0)) / c),
            throttled_pct: w
                .throttling
                .filter(|t| t.periods > 0)
                .map(|t| 100.0 * t.throttled as f64 / t.periods as f64),
            bpf_ns_per_run: w.bpf.and_then(|b| b.ns_per_run()),
            bpf_us_per_pkt: w.bpf.and_then(|b| b.us_per_packet(relayed_packets)),
            relay_napi_pct: w.relay_napi_secs.map(pct),
            relay_napi_us_per_pkt: w.relay_napi_secs.map(|n| per_pkt(w.relay_cpu_secs + n)),
            far_napi_pct: w.far_napi_secs.map(pct),
            relay_napi_pkts_per_slice: w
                .relay_napi_slices
                .filter(|&n| n > 0)
                .map(|n| relayed_packets as f64 / n as f64),
        }
    }

    /// Whether the generator's process used more than
    /// [`GENERATOR_SATURATED_PCT`] of its cores. (Its own record of late
    /// sends is the other sign, [`crate::load::LoadSummary::fell_behind`];
    /// a busy generator core alone is not, since other processes may be
    /// what keeps it busy while the generator still keeps time.)
    pub fn generator_cpu_saturated(&self) -> bool {
        self.generator_pct
            .is_some_and(|g| g > GENERATOR_SATURATED_PCT)
    }

    /// Whether the relay used (nearly) all the CPU it had: its budget when
    /// it had one, else `relay_cores` whole cores. `relay_pct` is the CPU %
    /// to judge (for XDP runs the budget covers only the process).
    pub fn relay_saturated(&self, relay_pct: f64, relay_cores: usize) -> bool {
        let cores = self.budget_cores.unwrap_or(relay_cores.max(1) as f64);
        relay_pct > RELAY_SATURATED_SHARE * 100.0 * cores
    }
}

/// Above this share of its cores the generator may have limited the offered
/// load, so the row is flagged rather than trusted.
pub const GENERATOR_SATURATED_PCT: f64 = 85.0;

/// A relay using more than this share of its cores (or budget) is taken to
/// be at its limit.
pub const RELAY_SATURATED_SHARE: f64 = 0.85;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, relay: (u64, u64), gen: u64, softirq: (u64, Vec<u64>)) -> Sample {
        Sample {
            at,
            relay: ProcessTimes {
                utime: relay.0,
                stime: relay.1,
            },
            generator: Some(ProcessTimes {
                utime: gen,
                stime: 0,
            }),
            softirq: SoftirqTimes {
                all: softirq.0,
                busy_per_cpu: softirq.1.iter().map(|v| v * 10).collect(),
                per_cpu: softirq.1,
            },
            throttling: None,
            bpf: None,
            napi: None,
        }
    }

    #[test]
    fn napi_threads_add_to_the_process_and_fill_the_budget() {
        let t0 = Instant::now();
        let mut a = sample(t0, (0, 0), 0, (0, vec![0, 0]));
        let mut b = sample(t0 + Duration::from_secs(10), (50, 50), 0, (0, vec![0, 0]));
        a.napi = Some(NapiTimes {
            relay_ns: 5_000_000_000,
            relay_slices: 10,
            far_ns: 1,
        });
        b.napi = Some(NapiTimes {
            relay_ns: 5_500_000_000, // +0.5 s
            relay_slices: 50_010,    // +50 000 runs
            far_ns: 2_000_000_001,   // +2 s
        });
        let w = WindowCpu::between(&a, &b, 100, &[1], &[0]);
        assert!((w.relay_napi_secs.unwrap() - 0.5).abs() < 1e-9);
        assert!((w.far_napi_secs.unwrap() - 2.0).abs() < 1e-9);
        let f = CpuFigures::derive(&w, 100_000, 1, Some(0.25));
        // 1 s process + 0.5 s NAPI over 100k packets = 15 µs.
        assert!((f.relay_us_per_pkt - 10.0).abs() < 1e-9);
        assert!((f.relay_napi_us_per_pkt.unwrap() - 15.0).abs() < 1e-9);
        assert!((f.relay_napi_pct.unwrap() - 5.0).abs() < 1e-9);
        assert!((f.far_napi_pct.unwrap() - 20.0).abs() < 1e-9);
        assert!((f.relay_napi_pkts_per_slice.unwrap() - 2.0).abs() < 1e-9);
        // 15 % of a core on a quarter-core budget.
        assert!((f.budget_used_pct.unwrap() - 60.0).abs() < 1e-9);
        // Without NAPI samples there are no NAPI figures.
        a.napi = None;
        let w = WindowCpu::between(&a, &b, 100, &[1], &[0]);
        let f = CpuFigures::derive(&w, 100_000, 1, Some(0.25));
        assert_eq!(f.relay_napi_us_per_pkt, None);
        assert!((f.budget_used_pct.unwrap() - 40.0).abs() < 1e-9);
    }

    #[test]
    fn window_and_figures_from_two_samples() {
        let t0 = Instant::now();
        let a = sample(t0, (100, 50), 10, (30, vec![10, 20]));
        let b = sample(
            t0 + Duration::from_secs(10),
            (400, 250), // +300 user, +200 system = 500 ticks = 5 s
            910,        // 9 s
            (130, vec![30, 100]),
        );
        let w = WindowCpu::between(&a, &b, 100, &[1], &[0]);
        assert!((w.wall_secs - 10.0).abs() < 1e-9);
        assert!((w.relay_cpu_secs - 5.0).abs() < 1e-9);
        assert!((w.softirq_all_secs - 1.0).abs() < 1e-9);
        assert!((w.softirq_relay_cpus_secs - 0.8).abs() < 1e-9);
        // Busy on CPU 1: 200 -> 1000 ticks = 8 s, of which relay 5 s and
        // softirq 0.8 s: 2.2 s of other work = 22 %.
        assert!((w.relay_cpus_busy_secs - 8.0).abs() < 1e-9);

        let f = CpuFigures::derive(&w, 1_000_000, 1, None);
        assert!((f.relay_pct - 50.0).abs() < 1e-9);
        assert!((f.relay_us_per_pkt - 5.0).abs() < 1e-9);
        assert!((f.softirq_pct - 10.0).abs() < 1e-9);
        assert!((f.relay_softirq_us_per_pkt - 6.0).abs() < 1e-9);
        assert!((f.other_on_relay_cpus_pct - 22.0).abs() < 1e-9);
        let g = f.generator_pct.unwrap();
        assert!((g - 90.0).abs() < 1e-9);
        assert!(g > GENERATOR_SATURATED_PCT);
        assert!(f.generator_cpu_saturated());
        // CPU 0 busy 100 -> 300 ticks: 2 s of 10 s.
        assert!((w.load_cpus_busy_secs - 2.0).abs() < 1e-9);
        assert!((f.load_cpus_busy_pct - 20.0).abs() < 1e-9);
        // No budget, no cgroup, no BPF: those figures are absent.
        assert_eq!(f.budget_used_pct, None);
        assert_eq!(f.throttled_pct, None);
        assert_eq!(f.bpf_ns_per_run, None);
    }

    #[test]
    fn budget_throttling_and_bpf_figures() {
        let t0 = Instant::now();
        let mut a = sample(t0, (0, 0), 0, (0, vec![0, 0]));
        let mut b = sample(
            t0 + Duration::from_secs(10),
            (150, 50),        // 2 s of relay CPU
            100,              // 1 s: the generator is not busy
            (0, vec![95, 0]), // CPU 0 busy 950 ticks
        );
        a.throttling = Some(Throttling {
            periods: 100,
            throttled: 10,
        });
        b.throttling = Some(Throttling {
            periods: 2100,
            throttled: 1010,
        });
        let prog = |t, c| {
            BTreeMap::from([(
                7,
                ProgStats {
                    id: 7,
                    run_time_ns: t,
                    run_cnt: c,
                },
            )])
        };
        a.bpf = Some(prog(1_000, 10));
        b.bpf = Some(prog(2_001_000, 10_010));
        let w = WindowCpu::between(&a, &b, 100, &[1], &[0]);
        assert_eq!(
            w.throttling,
            Some(Throttling {
                periods: 2000,
                throttled: 1000
            })
        );
        let f = CpuFigures::derive(&w, 10_000, 1, Some(0.25));
        // 20 % of a core on a 0.25-core budget: 80 % of it.
        assert!((f.budget_used_pct.unwrap() - 80.0).abs() < 1e-9);
        assert!((f.throttled_pct.unwrap() - 50.0).abs() < 1e-9);
        // 2 ms over 10 000 runs and 10 000 packets.
        assert!((f.bpf_ns_per_run.unwrap() - 200.0).abs() < 1e-9);
        assert!((f.bpf_us_per_pkt.unwrap() - 0.2).abs() < 1e-9);
        // The generator's process is idle but its core is 95 % busy (other
        // processes): that alone does not make the generator the limit.
        assert!((f.generator_pct.unwrap() - 10.0).abs() < 1e-9);
        assert!((f.load_cpus_busy_pct - 95.0).abs() < 1e-9);
        assert!(!f.generator_cpu_saturated());
        // 20 % of a core is saturated on a quarter core, not on a whole one.
        assert!(!f.relay_saturated(20.0, 1));
        assert!(f.relay_saturated(22.0, 1));
        let unlimited = CpuFigures::derive(&w, 10_000, 1, None);
        assert!(!unlimited.relay_saturated(22.0, 1));
        assert!(unlimited.relay_saturated(86.0, 1));
        assert!(!unlimited.relay_saturated(86.0, 2));
    }

    #[test]
    fn no_packets_gives_nan_not_infinity() {
        let w = WindowCpu::from_parts(Duration::from_secs(1), 0.5);
        let f = CpuFigures::derive(&w, 0, 1, None);
        assert!(f.relay_us_per_pkt.is_nan());
        assert!((f.relay_pct - 50.0).abs() < 1e-9);
        assert!(f.generator_pct.is_none());
    }

    #[test]
    fn counters_going_backwards_saturate_at_zero() {
        let t0 = Instant::now();
        let a = sample(t0, (10, 10), 0, (5, vec![5]));
        let b = sample(t0 + Duration::from_secs(1), (5, 5), 0, (1, vec![1]));
        let w = WindowCpu::between(&a, &b, 100, &[0], &[0]);
        assert_eq!(w.relay_cpu_secs, 0.0);
        assert_eq!(w.softirq_all_secs, 0.0);
    }
}
