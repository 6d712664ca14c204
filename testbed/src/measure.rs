//! The measured window: what is sampled at its start and end, and the
//! figures derived from the two samples (CPU % of one core, CPU-µs per
//! relayed packet, the kernel's softirq share).
//!
//! CPU times come from `/proc` in clock ticks; everything here is plain
//! arithmetic on two [`Sample`]s so it is tested without a running relay.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::procfs::{self, ProcError, ProcessTimes, SoftirqTimes};

/// One snapshot taken on `@window-start` or `@window-end`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub relay: ProcessTimes,
    pub generator: Option<ProcessTimes>,
    pub softirq: SoftirqTimes,
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
        })
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
}

impl WindowCpu {
    /// Differences between two samples, converted from `hz` ticks/second.
    pub fn between(start: &Sample, end: &Sample, hz: u64, relay_cpus: &[usize]) -> WindowCpu {
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
        }
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
}

impl CpuFigures {
    /// `generator_cores` is how many cores the generator may use.
    pub fn derive(w: &WindowCpu, relayed_packets: u64, generator_cores: usize) -> CpuFigures {
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
        }
    }
}

/// Above this share of its cores the generator may have limited the offered
/// load, so the row is flagged rather than trusted.
pub const GENERATOR_SATURATED_PCT: f64 = 85.0;

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
        }
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
        let w = WindowCpu::between(&a, &b, 100, &[1]);
        assert!((w.wall_secs - 10.0).abs() < 1e-9);
        assert!((w.relay_cpu_secs - 5.0).abs() < 1e-9);
        assert!((w.softirq_all_secs - 1.0).abs() < 1e-9);
        assert!((w.softirq_relay_cpus_secs - 0.8).abs() < 1e-9);
        // Busy on CPU 1: 200 -> 1000 ticks = 8 s, of which relay 5 s and
        // softirq 0.8 s: 2.2 s of other work = 22 %.
        assert!((w.relay_cpus_busy_secs - 8.0).abs() < 1e-9);

        let f = CpuFigures::derive(&w, 1_000_000, 1);
        assert!((f.relay_pct - 50.0).abs() < 1e-9);
        assert!((f.relay_us_per_pkt - 5.0).abs() < 1e-9);
        assert!((f.softirq_pct - 10.0).abs() < 1e-9);
        assert!((f.relay_softirq_us_per_pkt - 6.0).abs() < 1e-9);
        assert!((f.other_on_relay_cpus_pct - 22.0).abs() < 1e-9);
        let g = f.generator_pct.unwrap();
        assert!((g - 90.0).abs() < 1e-9);
        assert!(g > GENERATOR_SATURATED_PCT);
    }

    #[test]
    fn no_packets_gives_nan_not_infinity() {
        let w = WindowCpu::from_parts(Duration::from_secs(1), 0.5);
        let f = CpuFigures::derive(&w, 0, 1);
        assert!(f.relay_us_per_pkt.is_nan());
        assert!((f.relay_pct - 50.0).abs() < 1e-9);
        assert!(f.generator_pct.is_none());
    }

    #[test]
    fn counters_going_backwards_saturate_at_zero() {
        let t0 = Instant::now();
        let a = sample(t0, (10, 10), 0, (5, vec![5]));
        let b = sample(t0 + Duration::from_secs(1), (5, 5), 0, (1, vec![1]));
        let w = WindowCpu::between(&a, &b, 100, &[0]);
        assert_eq!(w.relay_cpu_secs, 0.0);
        assert_eq!(w.softirq_all_secs, 0.0);
    }
}
