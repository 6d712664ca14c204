//! Readers for the few `/proc` files the testbed samples (proc(5)):
//! `/proc/PID/stat` (CPU time of a process, all its threads summed),
//! `/proc/PID/status` (peak resident set, `VmHWM`), `/proc/stat` (per-CPU
//! softirq time) and `/proc/self/status` (effective UID, for the root check).
//!
//! Parsers take the file's text so they are tested from fixture strings;
//! the `read_*` functions only add the file read.

use std::path::Path;

/// Errors from reading or parsing a `/proc` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected format in {what}")]
    Format { what: &'static str },
}

/// CPU time of one process in clock ticks (`USER_HZ`), from `/proc/PID/stat`.
///
/// The kernel sums the times of every thread of the process into the
/// process's own line, so one read covers a multi-threaded relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessTimes {
    pub utime: u64,
    pub stime: u64,
}

impl ProcessTimes {
    pub fn total(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`: after it come field 3 (state) onwards, utime is field 14
/// and stime field 15 (proc(5)).
pub fn parse_pid_stat(text: &str) -> Result<ProcessTimes, ProcError> {
    const WHAT: &str = "/proc/PID/stat";
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or(ProcError::Format { what: WHAT })?;
    // Index 0 here is field 3, so field N is index N - 3.
    let mut fields = after.split_whitespace();
    let utime = fields.nth(14 - 3);
    let stime = fields.next();
    match (
        utime.and_then(|v| v.parse().ok()),
        stime.and_then(|v| v.parse().ok()),
    ) {
        (Some(utime), Some(stime)) => Ok(ProcessTimes { utime, stime }),
        _ => Err(ProcError::Format { what: WHAT }),
    }
}

/// Peak resident set size (`VmHWM`) in KiB from `/proc/PID/status`.
/// It is the high-water mark over the process's whole life, which is why the
/// testbed starts a fresh relay for every measured run.
pub fn parse_vm_hwm_kib(text: &str) -> Result<u64, ProcError> {
    kib_field(text, "VmHWM:").ok_or(ProcError::Format {
        what: "/proc/PID/status VmHWM",
    })
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Effective UID from `/proc/self/status` (`Uid: real effective saved fs`).
pub fn parse_effective_uid(text: &str) -> Result<u32, ProcError> {
    text.lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l["Uid:".len()..].split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or(ProcError::Format {
            what: "/proc/self/status Uid",
        })
}

/// Softirq ticks from `/proc/stat`: the sum over all CPUs (the `cpu` line)
/// and one entry per CPU (`cpuN` lines), indexed by CPU number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SoftirqTimes {
    pub all: u64,
    pub per_cpu: Vec<u64>,
    /// Busy ticks per CPU: every state but idle and iowait, so whatever ran
    /// there (the relay, softirq, and any other process) is counted.
    pub busy_per_cpu: Vec<u64>,
}

impl SoftirqTimes {
    /// Ticks of the listed CPUs (missing CPUs count as zero).
    pub fn of_cpus(&self, cpus: &[usize]) -> u64 {
        cpus.iter()
            .map(|&c| self.per_cpu.get(c).copied().unwrap_or(0))
            .sum()
    }

    /// Busy ticks of the listed CPUs.
    pub fn busy_of_cpus(&self, cpus: &[usize]) -> u64 {
        cpus.iter()
            .map(|&c| self.busy_per_cpu.get(c).copied().unwrap_or(0))
            .sum()
    }
}

/// Parses `/proc/stat`: each `cpu` line is `user nice system idle iowait irq
/// softirq steal guest guest_nice`, so softirq is the 7th number.
pub fn parse_proc_stat_softirq(text: &str) -> Result<SoftirqTimes, ProcError> {
    const WHAT: &str = "/proc/stat";
    let mut out = SoftirqTimes::default();
    let mut saw_total = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(rest) = label.strip_prefix("cpu") else {
            continue;
        };
        let values: Vec<u64> = fields.map(|v| v.parse().unwrap_or(0)).collect();
        let softirq = *values.get(6).ok_or(ProcError::Format { what: WHAT })?;
        // guest and guest_nice (8th, 9th) are already inside user and nice.
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        let busy = total.saturating_sub(idle);
        if rest.is_empty() {
            out.all = softirq;
            saw_total = true;
        } else {
            let cpu: usize = rest.parse().map_err(|_| ProcError::Format { what: WHAT })?;
            if out.per_cpu.len() <= cpu {
                out.per_cpu.resize(cpu + 1, 0);
                out.busy_per_cpu.resize(cpu + 1, 0);
            }
            out.per_cpu[cpu] = softirq;
            out.busy_per_cpu[cpu] = busy;
        }
    }
    if saw_total {
        Ok(out)
    } else {
        Err(ProcError::Format { what: WHAT })
    }
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.display().to_string(),
        source,
    })
}

pub fn read_pid_stat(pid: u32) -> Result<ProcessTimes, ProcError> {
    parse_pid_stat(&read(Path::new(&format!("/proc/{pid}/stat")))?)
}

pub fn read_vm_hwm_kib(pid: u32) -> Result<u64, ProcError> {
    parse_vm_hwm_kib(&read(Path::new(&format!("/proc/{pid}/status")))?)
}

pub fn read_softirq() -> Result<SoftirqTimes, ProcError> {
    parse_proc_stat_softirq(&read(Path::new("/proc/stat"))?)
}

pub fn effective_uid() -> Result<u32, ProcError> {
    parse_effective_uid(&read(Path::new("/proc/self/status"))?)
}

/// Clock ticks per second of the times above (`USER_HZ`). Asked from
/// `getconf` so no `unsafe` sysconf call is needed; Linux fixes USER_HZ at
/// 100 on every common architecture, the fallback.
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line (fields after stime trimmed), with a hostile comm.
    const STAT: &str = "4242 (uturn (w) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        731 256 0 0 20 0 3 0 98765 123456789 2345 18446744073709551615";

    #[test]
    fn pid_stat_counts_fields_after_the_last_paren() {
        let t = parse_pid_stat(STAT).unwrap();
        assert_eq!(
            t,
            ProcessTimes {
                utime: 731,
                stime: 256
            }
        );
        assert_eq!(t.total(), 987);
    }

    #[test]
    fn pid_stat_rejects_truncated_lines() {
        assert!(parse_pid_stat("1 (x) S 1 2 3").is_err());
        assert!(parse_pid_stat("no parens at all").is_err());
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status =
            "Name:\tturnserver\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status).unwrap(), 51234);
        assert!(parse_vm_hwm_kib("Name:\tx\n").is_err());
    }

    #[test]
    fn effective_uid_is_the_second_uid() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_effective_uid(status).unwrap(), 0);
        assert!(parse_effective_uid("Name:\tx\n").is_err());
    }

    #[test]
    fn proc_stat_softirq_total_and_per_cpu() {
        let stat = "cpu  100 0 50 9000 3 0 77 0 0 0\n\
                    cpu0 60 0 30 4500 2 0 20 0 0 0\n\
                    cpu1 40 0 20 4500 1 0 57 0 0 0\n\
                    intr 12345 0 0\n\
                    softirq 999 1 2 3\n";
        let s = parse_proc_stat_softirq(stat).unwrap();
        assert_eq!(s.all, 77);
        assert_eq!(s.per_cpu, vec![20, 57]);
        assert_eq!(s.of_cpus(&[1]), 57);
        assert_eq!(s.of_cpus(&[0, 1, 7]), 77);
        // cpu1: 40 user + 20 system + 57 softirq busy; idle and iowait not.
        assert_eq!(s.busy_per_cpu, vec![110, 117]);
        assert_eq!(s.busy_of_cpus(&[1]), 117);
    }

    #[test]
    fn proc_stat_without_total_is_an_error() {
        assert!(parse_proc_stat_softirq("intr 1 2 3\n").is_err());
        assert!(parse_proc_stat_softirq("cpu 1 2 3\n").is_err());
    }

    #[test]
    fn live_proc_files_parse() {
        // The parsers must accept this machine's real files too.
        let me = std::process::id();
        assert!(read_pid_stat(me).is_ok());
        assert!(read_vm_hwm_kib(me).unwrap() > 0);
        let s = read_softirq().unwrap();
        assert!(!s.per_cpu.is_empty());
        assert!(clock_ticks_per_sec() > 0);
    }
}
