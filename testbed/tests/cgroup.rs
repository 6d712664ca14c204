//! As root, on this machine's real cgroup file system: a CPU-budget group
//! gets the quota, a program started through its wrapper runs inside it
//! with all its threads (and is throttled when it spins), and the group is
//! gone afterwards — after a normal stop, and when the program is still
//! running when the group is dropped (a run that failed half-way).
//! No CPU figure is asserted, only membership, the written budget, and that
//! the kernel throttled a busy loop at all.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::require_root;
use uturn_testbed::cgroup::{self, CpuBudget, CpuCgroup, Hierarchy, Version};
use uturn_testbed::process::Proc;

fn spin_argv(group: &CpuCgroup) -> Vec<String> {
    // A busy loop in a second thread-like child too: `sh` forks a
    // subshell, which must land in the same group.
    group.wrap_argv(&[
        "sh".into(),
        "-c".into(),
        "(while :; do :; done) & while :; do :; done".into(),
    ])
}

/// Polls until `f` holds (the kernel applies moves and removals
/// asynchronously); bounded, not a timing assertion.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn relay_budget_cgroup_is_set_used_and_removed() {
    require_root();
    let hierarchy = Hierarchy::detect().expect("a cgroup hierarchy with the cpu controller");
    let name = cgroup::group_name(&format!("c{}", std::process::id() % 100_000), "spin");
    let budget = CpuBudget::new(0.1).unwrap();
    let group = CpuCgroup::create(&hierarchy, &name, budget).expect("create the cgroup");
    let dir = group.dir().to_path_buf();
    assert!(dir.is_dir());
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    match hierarchy.version {
        Version::V1 => {
            assert_eq!(read("cpu.cfs_period_us").trim(), "10000");
            assert_eq!(read("cpu.cfs_quota_us").trim(), "1000");
        }
        Version::V2 => assert_eq!(read("cpu.max").trim(), "1000 10000"),
    }

    let mut spin = Proc::spawn("spin", &spin_argv(&group), Stdio::null(), Stdio::null()).unwrap();
    let pid = spin.pid();
    // The wrapper execs the program: same PID, inside the group, and the
    // program's own child joined it too.
    assert!(
        eventually(|| group.pids().contains(&pid) && group.pids().len() >= 2),
        "pids in group: {:?}, spinner {pid}",
        group.pids()
    );
    // Two busy loops on a tenth of a core are throttled in some period.
    assert!(
        eventually(|| group.throttling().is_ok_and(|t| t.throttled > 0)),
        "{:?}",
        group.throttling()
    );
    spin.stop(Duration::from_secs(2));
    drop(group);
    assert!(!dir.exists(), "{} left behind", dir.display());

    // Failure path: the group is dropped while its program still runs
    // (an error between start and stop); drop kills it and still removes
    // the group.
    let group = CpuCgroup::create(&hierarchy, &name, budget).unwrap();
    let dir = group.dir().to_path_buf();
    let spin = Proc::spawn("spin", &spin_argv(&group), Stdio::null(), Stdio::null()).unwrap();
    assert!(eventually(|| !group.pids().is_empty()));
    drop(group);
    assert!(!dir.exists(), "{} left behind", dir.display());
    drop(spin);

    // A leftover of a killed run is removed by the next start.
    std::fs::create_dir(hierarchy.group_dir(&name)).unwrap();
    cgroup::remove_stale(&hierarchy, &format!("c{}", std::process::id() % 100_000));
    assert!(!hierarchy.group_dir(&name).exists());
}
