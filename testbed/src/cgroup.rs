//! A CPU budget for the relay under test: a cgroup with a CFS bandwidth
//! limit (`--relay-cpu-limit CORES`), so that every relay gets the same
//! fraction of a core and a sweep finds the *relay's* highest zero-loss
//! packet rate before it finds the load generator's.
//!
//! Why a budget: on a 2-core machine the generator's core saturates before
//! any relay's does (docs/benchmarks.md), so an unlimited sweep measures the
//! generator. With the relay held to e.g. a quarter of a core, its limit
//! drops well below the generator's and becomes visible.
//!
//! Both cgroup interfaces are supported (kernel docs:
//! `Documentation/admin-guide/cgroup-v2.rst` "cpu.max",
//! `Documentation/scheduler/sched-bwc.rst` for v1's `cpu.cfs_quota_us` /
//! `cpu.cfs_period_us`): v2 when the `cpu` controller is available in the
//! cgroup2 hierarchy (enabled for children through the root's
//! `cgroup.subtree_control`), else v1's `cpu` hierarchy. The relay is put
//! into the group *before* it starts ([`CpuCgroup::wrap_argv`]: a shell
//! writes its own PID to `cgroup.procs`, then execs the relay), so every
//! thread and helper process it creates inherits the limit.
//!
//! The group is removed when the [`CpuCgroup`] is dropped, by the signal
//! cleanup of [`crate::process`] if the testbed is interrupted, and as a
//! leftover of a killed run by [`remove_stale`] at the next start.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use serde::Serialize;

/// Where cgroup file systems are mounted on Linux.
pub const MOUNTS: &str = "/proc/self/mounts";

/// The CFS period of the budget. Short, because the relay runs its quota
/// and then waits out the rest of the period while its sockets queue: at
/// 5 ms a quarter-core relay stalls at most 3.75 ms, which default socket
/// buffers absorb at the rates it can sustain, so loss comes from the CPU
/// budget rather than from the period's length. (1 ms is the kernel's
/// minimum, sched-bwc.rst.)
pub const PERIOD_US: u64 = 5_000;

/// The kernel's bounds (sched-bwc.rst): quota ≥ 1 ms, period ≤ 1 s.
const MIN_QUOTA_US: u64 = 1_000;
const MAX_PERIOD_US: u64 = 1_000_000;

/// Errors from setting up or reading a cgroup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    #[error("no cgroup hierarchy with the cpu controller (neither cgroup2 with `cpu` in cgroup.controllers nor a v1 `cpu` mount)")]
    NoCpuController,
    #[error("CPU limit {0} is not a positive number of cores")]
    BadLimit(f64),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected format in {0}")]
    Format(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which cgroup interface a group lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    V1,
    V2,
}

/// The hierarchy new groups are created in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub version: Version,
    /// Mount point of the hierarchy (the root group's directory).
    pub root: PathBuf,
}

/// The cgroup2 mount and the v1 `cpu` mount listed in a mounts table
/// (`/proc/self/mounts` format: device, mount point, type, options, ...).
pub fn parse_mounts(mounts: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let mut v2 = None;
    let mut v1_cpu = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(&point), Some(&fstype), Some(&opts)) =
            (fields.get(1), fields.get(2), fields.get(3))
        else {
            continue;
        };
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(point)),
            "cgroup" if v1_cpu.is_none() && opts.split(',').any(|o| o == "cpu") => {
                v1_cpu = Some(PathBuf::from(point));
            }
            _ => {}
        }
    }
    (v2, v1_cpu)
}

impl Hierarchy {
    /// Picks v2 when its root offers the `cpu` controller, else v1's `cpu`
    /// mount. `read` reads a file (injected so the choice is tested without
    /// a cgroup file system).
    pub fn choose(
        mounts: &str,
        read: impl Fn(&Path) -> Option<String>,
    ) -> Result<Hierarchy, CgroupError> {
        let (v2, v1) = parse_mounts(mounts);
        if let Some(root) = v2 {
            let controllers = read(&root.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "cpu") {
                return Ok(Hierarchy {
                    version: Version::V2,
                    root,
                });
            }
        }
        v1.map(|root| Hierarchy {
            version: Version::V1,
            root,
        })
        .ok_or(CgroupError::NoCpuController)
    }

    /// The hierarchy of this machine.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let mounts = std::fs::read_to_string(MOUNTS).map_err(io_err(Path::new(MOUNTS)))?;
        Hierarchy::choose(&mounts, |p| std::fs::read_to_string(p).ok())
    }

    /// The directory of the group called `name`.
    pub fn group_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A CPU budget: `cores` of CPU time per wall-clock second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuBudget {
    pub cores: f64,
    pub period_us: u64,
}

impl CpuBudget {
    /// A budget of `cores` (at least 0.001: the kernel's longest period is
    /// 1 s and its shortest quota 1 ms). The period is [`PERIOD_US`], or
    /// longer where the quota would otherwise fall under 1 ms.
    pub fn new(cores: f64) -> Result<CpuBudget, CgroupError> {
        if !(cores.is_finite() && cores >= 0.001) {
            return Err(CgroupError::BadLimit(cores));
        }
        let period_us = (MIN_QUOTA_US as f64 / cores).ceil() as u64;
        Ok(CpuBudget {
            cores,
            period_us: period_us.clamp(PERIOD_US, MAX_PERIOD_US),
        })
    }

    /// CPU time allowed per period, µs.
    pub fn quota_us(&self) -> u64 {
        ((self.cores * self.period_us as f64).round() as u64).max(MIN_QUOTA_US)
    }

    /// The files that set the budget, with their contents, for `version`.
    pub fn files(&self, version: Version) -> Vec<(&'static str, String)> {
        match version {
            // v1 checks the quota against the period, so the period goes first.
            Version::V1 => vec![
                ("cpu.cfs_period_us", self.period_us.to_string()),
                ("cpu.cfs_quota_us", self.quota_us().to_string()),
            ],
            Version::V2 => vec![("cpu.max", format!("{} {}", self.quota_us(), self.period_us))],
        }
    }
}

/// Throttling counters of a group (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// Periods in which the group had runnable work.
    pub periods: u64,
    /// Of those, periods in which it used up its quota and was stopped.
    pub throttled: u64,
}

/// Parses `cpu.stat` (v1 and v2 both have `nr_periods` and `nr_throttled`).
pub fn parse_cpu_stat(text: &str) -> Option<Throttling> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    Some(Throttling {
        periods: field("nr_periods")?,
        throttled: field("nr_throttled")?,
    })
}

/// Name of a testbed group: `uturn-testbed-PREFIX-NAME`.
pub fn group_name(prefix: &str, name: &str) -> String {
    format!("uturn-testbed-{prefix}-{name}")
}

/// A cgroup with a CPU budget, removed on drop.
#[derive(Debug)]
pub struct CpuCgroup {
    dir: PathBuf,
    version: Version,
    budget: CpuBudget,
}

impl CpuCgroup {
    /// Creates the group `name` in `hierarchy` (replacing a leftover of the
    /// same name) and sets its budget.
    pub fn create(
        hierarchy: &Hierarchy,
        name: &str,
        budget: CpuBudget,
    ) -> Result<CpuCgroup, CgroupError> {
        let dir = hierarchy.group_dir(name);
        if dir.exists() {
            remove_dir(&dir);
        }
        if hierarchy.version == Version::V2 {
            enable_cpu_controller(&hierarchy.root)?;
        }
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        crate::process::register_cgroup(&dir);
        // From here on, drop removes the directory even if a write fails.
        let group = CpuCgroup {
            dir,
            version: hierarchy.version,
            budget,
        };
        group.write_budget()?;
        Ok(group)
    }

    fn write_budget(&self) -> Result<(), CgroupError> {
        for (file, value) in self.budget.files(self.version) {
            let path = self.dir.join(file);
            std::fs::write(&path, &value).map_err(io_err(&path))?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn budget(&self) -> CpuBudget {
        self.budget
    }

    /// The file a process writes its PID to in order to join.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// `argv` run inside the group from its first instruction: `sh` writes
    /// its own PID into `cgroup.procs`, then execs `argv` (same PID, so
    /// everything the program starts inherits the group).
    pub fn wrap_argv(&self, argv: &[String]) -> Vec<String> {
        let mut out = vec![
            "sh".to_string(),
            "-c".to_string(),
            r#"echo $$ > "$0" && exec "$@""#.to_string(),
            self.procs_file().display().to_string(),
        ];
        out.extend_from_slice(argv);
        out
    }

    /// Moves a running task (a NAPI kernel thread, [`crate::napi`]) into
    /// the group, so its CPU time is charged to the budget. Charged, not
    /// capped: since Linux 6.18 CFS bandwidth control throttles a task
    /// only on its way back to user space, which a kernel thread never
    /// takes, so it keeps running while its group is throttled (the
    /// group's processes pay for it). Kernel threads ignore SIGKILL, so
    /// removing the group hands them back to the root group first
    /// ([`remove_dir`]).
    pub fn adopt(&self, pid: u32) -> Result<(), CgroupError> {
        let path = self.procs_file();
        std::fs::write(&path, pid.to_string()).map_err(io_err(&path))
    }

    /// PIDs in the group now.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.procs_file())
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group's throttling counters now.
    pub fn throttling(&self) -> Result<Throttling, CgroupError> {
        let path = self.dir.join("cpu.stat");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        parse_cpu_stat(&text).ok_or(CgroupError::Format(path))
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        remove_dir(&self.dir);
        crate::process::unregister_cgroup(&self.dir);
    }
}

/// v2 only: a group's budget takes effect only when the parent hands the
/// `cpu` controller down to its children.
fn enable_cpu_controller(root: &Path) -> Result<(), CgroupError> {
    let control = root.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).map_err(io_err(&control))?;
    if enabled.split_whitespace().any(|c| c == "cpu") {
        return Ok(());
    }
    std::fs::write(&control, "+cpu").map_err(io_err(&control))
}

/// Removes a group directory: hands kernel threads it adopted (NAPI
/// threads) back to the hierarchy's root group, kills what else still runs
/// in it (a relay the testbed lost track of), then retries `rmdir` while
/// the kernel finishes tearing the killed tasks down. Best effort; a
/// failure is logged.
pub(crate) fn remove_dir(dir: &Path) {
    let root_procs = dir.parent().map(|p| p.join("cgroup.procs"));
    for attempt in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let kthread = pid.parse().is_ok_and(crate::napi::pid_is_kernel_thread);
            if let (true, Some(root)) = (kthread, &root_procs) {
                if let Err(e) = std::fs::write(root, pid) {
                    tracing::warn!(pid, error = %e, "cannot move a kernel thread out of the budget cgroup");
                }
                continue;
            }
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 49 => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Removes groups of earlier runs with this namespace prefix (a run killed
/// with SIGKILL cannot clean up after itself).
pub fn remove_stale(hierarchy: &Hierarchy, prefix: &str) {
    let start = group_name(prefix, "");
    let Ok(entries) = std::fs::read_dir(&hierarchy.root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&start) {
            tracing::info!(dir = %entry.path().display(), "removing a leftover cgroup");
            remove_dir(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // This machine's layout: v1 controllers, cgroup2 without `cpu`.
    const HYBRID: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";
    const PURE_V2: &str = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n";

    #[test]
    fn mounts_name_the_v2_and_v1_cpu_hierarchies() {
        let (v2, v1) = parse_mounts(HYBRID);
        assert_eq!(v2.unwrap(), Path::new("/sys/fs/cgroup/unified"));
        // cpuacct is not cpu.
        assert_eq!(v1.unwrap(), Path::new("/sys/fs/cgroup/cpu"));
        let combined = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n";
        assert_eq!(
            parse_mounts(combined).1.unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(parse_mounts("garbage\n\n"), (None, None));
    }

    #[test]
    fn v2_is_chosen_only_when_it_offers_cpu() {
        let without = |_: &Path| Some("hugetlb\n".to_string());
        let with = |_: &Path| Some("cpuset cpu io memory pids\n".to_string());
        let h = Hierarchy::choose(HYBRID, without).unwrap();
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.root, Path::new("/sys/fs/cgroup/cpu"));
        let h = Hierarchy::choose(HYBRID, with).unwrap();
        assert_eq!(h.version, Version::V2);
        assert_eq!(h.root, Path::new("/sys/fs/cgroup/unified"));
        let h = Hierarchy::choose(PURE_V2, with).unwrap();
        assert_eq!(
            h.group_dir("g"),
            Path::new("/sys/fs/cgroup").join("g").as_path()
        );
        assert!(matches!(
            Hierarchy::choose(PURE_V2, without),
            Err(CgroupError::NoCpuController)
        ));
    }

    #[test]
    fn budget_becomes_quota_per_period_in_either_interface() {
        let b = CpuBudget::new(0.25).unwrap();
        assert_eq!(b.period_us, PERIOD_US);
        assert_eq!(b.quota_us(), 1_250);
        assert_eq!(
            b.files(Version::V1),
            [
                ("cpu.cfs_period_us", "5000".to_string()),
                ("cpu.cfs_quota_us", "1250".to_string())
            ]
        );
        assert_eq!(b.files(Version::V2), [("cpu.max", "1250 5000".to_string())]);
        // More than one core is allowed (a multi-threaded relay).
        assert_eq!(CpuBudget::new(2.0).unwrap().quota_us(), 10_000);
        // The kernel refuses quotas under 1 ms: small budgets get a longer
        // period instead.
        let small = CpuBudget::new(0.1).unwrap();
        assert_eq!((small.quota_us(), small.period_us), (1_000, 10_000));
        let tiny = CpuBudget::new(0.001).unwrap();
        assert_eq!((tiny.quota_us(), tiny.period_us), (1_000, 1_000_000));
        for bad in [0.0, 0.0005, -1.0, f64::NAN, f64::INFINITY] {
            assert!(CpuBudget::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_stat_gives_periods_and_throttled_periods() {
        let v1 = "nr_periods 120\nnr_throttled 30\nthrottled_time 999\nnr_bursts 0\n";
        let v2 = "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 7\nnr_throttled 1\nthrottled_usec 4\n";
        assert_eq!(
            parse_cpu_stat(v1),
            Some(Throttling {
                periods: 120,
                throttled: 30
            })
        );
        assert_eq!(
            parse_cpu_stat(v2),
            Some(Throttling {
                periods: 7,
                throttled: 1
            })
        );
        assert_eq!(parse_cpu_stat("usage_usec 5\n"), None);
    }

    #[test]
    fn a_group_in_a_plain_directory_gets_its_files_and_is_removed_on_drop() {
        // A plain directory stands in for the hierarchy: create() writes
        // the budget files the kernel would have made, drop removes them
        // with the directory only if empty, so empty it as the kernel would.
        let root = std::env::temp_dir().join(format!("uturn-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let h = Hierarchy {
            version: Version::V1,
            root: root.clone(),
        };
        let name = group_name("t", "relay");
        assert_eq!(name, "uturn-testbed-t-relay");
        let g = CpuCgroup::create(&h, &name, CpuBudget::new(0.5).unwrap()).unwrap();
        assert_eq!(g.dir(), root.join(&name));
        let read = |f: &str| std::fs::read_to_string(g.dir().join(f)).unwrap();
        assert_eq!(read("cpu.cfs_period_us"), "5000");
        assert_eq!(read("cpu.cfs_quota_us"), "2500");
        let argv = g.wrap_argv(&["/bin/relay".into(), "--x".into()]);
        assert_eq!(argv[..3], ["sh", "-c", r#"echo $$ > "$0" && exec "$@""#]);
        assert_eq!(argv[3], g.procs_file().display().to_string());
        assert_eq!(argv[4..], ["/bin/relay", "--x"]);
        assert!(g.pids().is_empty());
        for f in ["cpu.cfs_period_us", "cpu.cfs_quota_us"] {
            std::fs::remove_file(g.dir().join(f)).unwrap();
        }
        let dir = g.dir().to_path_buf();
        drop(g);
        assert!(!dir.exists());
        // Stale groups of the prefix go, others stay.
        std::fs::create_dir(root.join(group_name("t", "old"))).unwrap();
        std::fs::create_dir(root.join(group_name("u", "keep"))).unwrap();
        remove_stale(&h, "t");
        assert!(!root.join(group_name("t", "old")).exists());
        assert!(root.join(group_name("u", "keep")).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
