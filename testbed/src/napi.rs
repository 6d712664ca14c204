//! Threaded NAPI (`--threaded-napi`): the veths' receive processing runs in
//! one kernel thread per NAPI instance, `napi/IFACE-ID`, instead of in
//! softirq on whichever CPU raised it, so the kernel's share of relaying is
//! a thread's CPU time, counted exactly, pinned where we choose and
//! placeable in the relay's CPU-budget cgroup.
//!
//! Why: this kernel has no `CONFIG_IRQ_TIME_ACCOUNTING`, so `/proc/stat`'s
//! softirq is tick-sampled and was seen to undercount (docs/benchmarks.md);
//! and on veth, without NAPI, a sender's `sendmsg` runs the receiver's
//! stack (and the XDP program on the receiving veth) inline in its own
//! softirq, on the generator's core. With NAPI on every veth end (GRO on,
//! or an XDP program attached: drivers/net/veth.c) a send only queues the
//! frame in the receiver's ring and wakes its NAPI; with
//! `/sys/class/net/IFACE/threaded` = 1 (kernel docs:
//! `Documentation/ABI/testing/sysfs-class-net`, "threaded") that NAPI poll,
//! XDP program and redirect included, runs in the kthread.
//!
//! Which threads count for whom:
//! - **relay side** (`<p>-rc`, `<p>-rp`, in the relay namespace): the
//!   receive path of the relay's sockets, and for uturn-xdp all of its
//!   forwarding (program, `bpf_redirect`, the enqueue into the far end's
//!   ring). Pinned to the relay's CPUs, and inside the relay's budget
//!   cgroup when it has one (charged to it; not capped by it on Linux
//!   6.18+, see [`crate::cgroup::CpuCgroup::adopt`]).
//! - **far side** (`<p>-cr`, `<p>-pr`): the receive path of the load
//!   generator's sockets; pinned to the generator's CPUs, so it is never
//!   charged to the relay's core.
//!
//! CPU time is `sum_exec_runtime` from `/proc/PID/schedstat` (ns, the
//! scheduler's own account, not sampled per tick; proc(5)).

use std::path::Path;

use serde::Serialize;

use crate::process::run_checked;

/// Errors from finding, pinning or sampling NAPI threads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NapiError {
    #[error("no NAPI thread for {0} (is NAPI on, i.e. GRO or an XDP program, and threaded = 1?)")]
    NoThread(String),
    #[error("{0}")]
    Command(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected format in {0}")]
    Format(String),
}

/// Which relays run with threaded NAPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum NapiMode {
    /// Every relay: the same kernel path and accounting for all (default).
    All,
    /// Only relays that forward in XDP (`uturn-xdp`).
    Xdp,
    /// None: the veths deliver through the backlog, in the sender's softirq.
    Off,
}

impl NapiMode {
    /// Whether a relay (`forwards_in_xdp`: it relays in the kernel) runs
    /// with threaded NAPI in this mode.
    pub fn applies(self, forwards_in_xdp: bool) -> bool {
        match self {
            NapiMode::All => true,
            NapiMode::Xdp => forwards_in_xdp,
            NapiMode::Off => false,
        }
    }
}

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags field (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// One NAPI kernel thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NapiThread {
    pub pid: u32,
    pub iface: String,
    pub napi_id: u32,
}

/// Splits a NAPI thread name `napi/IFACE-ID` (net/core/dev.c names them so;
/// kernels since 5.17 show a kthread's full name in `/proc/PID/comm`, longer
/// than the 15 characters of a task's own comm). An interface name may
/// itself hold `-`, so the id is after the last one.
pub fn parse_thread_name(comm: &str) -> Option<(&str, u32)> {
    let rest = comm.trim_end().strip_prefix("napi/")?;
    let (iface, id) = rest.rsplit_once('-')?;
    if iface.is_empty() {
        return None;
    }
    Some((iface, id.parse().ok()?))
}

/// The flags field (9) of `/proc/PID/stat`, counted after the last `)` as
/// in [`crate::procfs::parse_pid_stat`].
pub fn parse_stat_flags(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(9 - 3)?.parse().ok()
}

/// `sum_exec_runtime` (ns) and the number of times the task ran on a CPU
/// (its wake-ups, for a thread that sleeps between polls) from
/// `/proc/PID/schedstat`: "runtime wait slices".
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let runtime = fields.next()?.parse().ok()?;
    let slices = fields.nth(1)?.parse().ok()?;
    Some((runtime, slices))
}

/// The NAPI kernel threads of `ifaces` now, found by name among `/proc`'s
/// kernel threads. Interface names are unique per namespace only; the
/// testbed's carry its prefix, which no other user of the machine shares.
pub fn find_threads(ifaces: &[String]) -> Vec<NapiThread> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let Some((iface, napi_id)) = parse_thread_name(&comm) else {
            continue;
        };
        if !ifaces.iter().any(|i| i == iface) || !is_kernel_thread(&dir) {
            continue;
        }
        out.push(NapiThread {
            pid,
            iface: iface.to_owned(),
            napi_id,
        });
    }
    out.sort_by_key(|t| t.pid);
    out
}

fn is_kernel_thread(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|s| parse_stat_flags(&s))
        .is_some_and(|f| f & PF_KTHREAD != 0)
}

/// Whether `pid` is a kernel thread (a cgroup must hand these back to its
/// parent before it can be removed: they ignore SIGKILL).
pub fn pid_is_kernel_thread(pid: u32) -> bool {
    is_kernel_thread(Path::new(&format!("/proc/{pid}")))
}

/// CPU time of one thread so far (ns), and how often it ran.
pub fn read_runtime(pid: u32) -> Result<(u64, u64), NapiError> {
    let path = format!("/proc/{pid}/schedstat");
    let text = std::fs::read_to_string(&path).map_err(|source| NapiError::Read {
        path: path.clone(),
        source,
    })?;
    parse_schedstat(&text).ok_or(NapiError::Format(path))
}

/// `taskset` pins one thread (NAPI kthreads are not bound to a CPU by the
/// kernel, so their affinity can be set like any task's).
pub fn pin_argv(pid: u32, cpus: &str) -> Vec<String> {
    ["taskset", "-p", "-c", cpus, &pid.to_string()]
        .map(String::from)
        .to_vec()
}

/// The NAPI threads of one run, on both sides of the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NapiThreads {
    pub relay_side: Vec<NapiThread>,
    pub far_side: Vec<NapiThread>,
}

impl NapiThreads {
    /// Finds the threads of the relay's and the far ends' interfaces;
    /// every interface must have at least one.
    pub fn discover(relay_ifaces: &[String], far_ifaces: &[String]) -> Result<Self, NapiError> {
        let relay_side = find_threads(relay_ifaces);
        let far_side = find_threads(far_ifaces);
        for iface in relay_ifaces.iter().chain(far_ifaces) {
            if !relay_side
                .iter()
                .chain(&far_side)
                .any(|t| &t.iface == iface)
            {
                return Err(NapiError::NoThread(iface.clone()));
            }
        }
        Ok(NapiThreads {
            relay_side,
            far_side,
        })
    }

    /// Pins the relay side to `relay_cpus` and the far side to `load_cpus`
    /// (comma-separated CPU lists).
    pub fn pin(&self, relay_cpus: &str, load_cpus: &str) -> Result<(), NapiError> {
        let sides = [(&self.relay_side, relay_cpus), (&self.far_side, load_cpus)];
        for (threads, cpus) in sides {
            for t in threads {
                run_checked(&pin_argv(t.pid, cpus)).map_err(NapiError::Command)?;
            }
        }
        Ok(())
    }

    /// CPU time so far of each side's threads, summed. A thread that is
    /// gone (its NAPI was deleted) counts as zero and is logged.
    pub fn runtime(&self) -> NapiTimes {
        let sum = |threads: &[NapiThread]| -> (u64, u64) {
            threads
                .iter()
                .map(|t| {
                    read_runtime(t.pid)
                        .map_err(|e| tracing::warn!(pid = t.pid, iface = %t.iface, error = %e, "NAPI thread"))
                        .unwrap_or((0, 0))
                })
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        let (relay_ns, relay_slices) = sum(&self.relay_side);
        NapiTimes {
            relay_ns,
            relay_slices,
            far_ns: sum(&self.far_side).0,
        }
    }
}

/// Summed CPU time of the NAPI threads of each side, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NapiTimes {
    pub relay_ns: u64,
    /// Times the relay side's threads were put on a CPU (≈ wake-ups).
    pub relay_slices: u64,
    pub far_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_give_interface_and_napi_id() {
        assert_eq!(
            parse_thread_name("napi/t6-rc-8195\n"),
            Some(("t6-rc", 8195))
        );
        // Longer than a task comm's 15 characters: kthreads show it whole.
        assert_eq!(
            parse_thread_name("napi/abcdefgh-rp-723"),
            Some(("abcdefgh-rp", 723))
        );
        for bad in [
            "napi/-7",
            "napi/eth0",
            "napi/eth0-x",
            "ksoftirqd/0",
            "kworker/1:0-napi/x-1",
        ] {
            assert_eq!(parse_thread_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn stat_flags_and_schedstat_are_parsed() {
        // A kthread's stat as read on this machine, comm with spaces and ')'.
        let stat = "32599 (napi/a b)-723) S 2 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 5 0 0";
        let flags = parse_stat_flags(stat).unwrap();
        assert_eq!(flags, 2_129_984);
        assert_ne!(flags & PF_KTHREAD, 0);
        let user = "1 (sh) S 0 1 1 0 -1 4194560 0 0";
        assert_eq!(parse_stat_flags(user).unwrap() & PF_KTHREAD, 0);
        assert_eq!(parse_stat_flags("garbage"), None);
        assert_eq!(parse_schedstat("5638 1618 2\n"), Some((5638, 2)));
        assert_eq!(parse_schedstat("5638"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn modes_choose_relays_and_pinning_uses_taskset() {
        assert!(NapiMode::All.applies(false) && NapiMode::All.applies(true));
        assert!(!NapiMode::Xdp.applies(false) && NapiMode::Xdp.applies(true));
        assert!(!NapiMode::Off.applies(true));
        assert_eq!(pin_argv(42, "0,1").join(" "), "taskset -p -c 0,1 42");
    }

    #[test]
    fn this_process_is_no_kernel_thread_and_has_a_runtime() {
        let me = std::process::id();
        assert!(!pid_is_kernel_thread(me));
        assert!(read_runtime(me).is_ok());
        assert!(find_threads(&["no-such-iface-x".into()]).is_empty());
        assert!(matches!(
            NapiThreads::discover(&["no-such-iface-x".into()], &[]),
            Err(NapiError::NoThread(_))
        ));
    }
}
