//! Child processes of the testbed (relay under test, load generator, test
//! peers) and the cleanup that must run however the testbed ends.
//!
//! Every child is started in its own process group, so a Ctrl-C at the
//! terminal reaches only the testbed, which then stops the children itself;
//! and so a child that forks (coTURN's helpers, `ip netns exec`) is stopped
//! with everything it started. What must be undone (process groups,
//! CPU-budget cgroups, namespaces) is recorded in one registry that the drop guards and the
//! SIGINT/SIGTERM handler both drain.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

/// What is still to be cleaned up if the testbed is interrupted.
#[derive(Debug, Default)]
struct Registry {
    process_groups: Vec<u32>,
    namespaces: Vec<String>,
    /// CPU-budget cgroups ([`crate::cgroup`]), removed after the processes.
    cgroups: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    process_groups: Vec::new(),
    namespaces: Vec::new(),
    cgroups: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves only plain vectors behind, which
    // are still consistent, so a poisoned lock is used as is.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn register_namespace(name: &str) {
    registry().namespaces.push(name.to_owned());
}

pub(crate) fn unregister_namespace(name: &str) {
    registry().namespaces.retain(|n| n != name);
}

pub(crate) fn register_cgroup(dir: &Path) {
    registry().cgroups.push(dir.to_path_buf());
}

pub(crate) fn unregister_cgroup(dir: &Path) {
    registry().cgroups.retain(|d| d != dir);
}

/// Installs (once) a handler that, on SIGINT or SIGTERM, kills every
/// registered process group, deletes every registered namespace and exits
/// with 128 + the signal number.
pub fn install_signal_cleanup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ]);
        match signals {
            Ok(mut signals) => {
                thread::spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        eprintln!("uturn-testbed: signal {sig}, cleaning up");
                        cleanup_everything();
                        std::process::exit(128 + sig);
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot install signal handler"),
        }
    });
}

/// Kills all registered process groups, removes all registered cgroups (a
/// group can only go once its processes have) and deletes all registered
/// namespaces.
pub fn cleanup_everything() {
    let (groups, cgroups, namespaces) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.process_groups),
            std::mem::take(&mut r.cgroups),
            std::mem::take(&mut r.namespaces),
        )
    };
    for pgid in groups {
        signal_group(pgid, "KILL");
    }
    for dir in cgroups {
        crate::cgroup::remove_dir(&dir);
    }
    for ns in namespaces {
        crate::topology::delete_namespace(&ns);
    }
}

/// Sends `signal` (a name such as `TERM`) to the process group `pgid`.
/// `kill(1)` is used so this crate needs no `unsafe`.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Builds the argv prefix `ip netns exec NS taskset -c CPUS` for a program
/// run inside a namespace and pinned to CPUs. Both tools `exec` the
/// program, so the child's PID is the program's own PID and `/proc/PID`
/// describes the program.
pub fn wrapped_argv(netns: Option<&str>, cpus: Option<&str>, argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ns) = netns {
        out.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if let Some(cpus) = cpus {
        out.extend(["taskset", "-c", cpus].map(String::from));
    }
    out.extend_from_slice(argv);
    out
}

/// A child process in its own process group, stopped on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `argv` (already wrapped) with the given stdio.
    pub fn spawn(
        name: &str,
        argv: &[String],
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<Proc> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command line"))?;
        tracing::debug!(name, cmd = %argv.join(" "), "spawn");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {program}: {e}")))?;
        registry().process_groups.push(child.id());
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit by itself, for at most `limit`.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; reaps the child.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let pgid = self.child.id();
        let status = match self.exited() {
            Some(s) => Some(s),
            None => {
                signal_group(pgid, "TERM");
                match self.wait_for(grace) {
                    Some(s) => Some(s),
                    None => {
                        signal_group(pgid, "KILL");
                        self.child.wait().ok()
                    }
                }
            }
        };
        // Helpers the program forked may still run in its group.
        signal_group(pgid, "KILL");
        registry().process_groups.retain(|&g| g != pgid);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Runs a short command to completion; error text includes its stderr.
pub fn run_checked(argv: &[String]) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command line")?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_puts_netns_then_taskset_before_the_program() {
        let argv = vec!["/bin/relay".to_string(), "--x".to_string()];
        assert_eq!(
            wrapped_argv(Some("t-relay"), Some("1"), &argv),
            [
                "ip",
                "netns",
                "exec",
                "t-relay",
                "taskset",
                "-c",
                "1",
                "/bin/relay",
                "--x"
            ]
        );
        assert_eq!(wrapped_argv(None, None, &argv), argv);
    }

    #[test]
    fn stop_ends_a_process_group_and_reaps_it() {
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "sleep 30 & sleep 30".to_string(),
        ];
        let mut p = Proc::spawn("sleeper", &argv, Stdio::null(), Stdio::null()).unwrap();
        let pid = p.pid();
        assert!(registry().process_groups.contains(&pid));
        assert!(p.exited().is_none());
        assert!(p.stop(Duration::from_secs(2)).is_some());
        assert!(!registry().process_groups.contains(&pid));
        // Nothing is left in the group (the background sleep included).
        // Killed orphans are reaped by init asynchronously, so poll for it.
        let mut left = Vec::new();
        for _ in 0..100 {
            left = Command::new("pgrep")
                .args(["-g", &pid.to_string()])
                .output()
                .unwrap()
                .stdout;
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            left.is_empty(),
            "left in group: {}",
            String::from_utf8_lossy(&left)
        );
    }

    #[test]
    fn run_checked_reports_failures_with_stderr() {
        let err =
            run_checked(&["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()]).unwrap_err();
        assert!(err.contains("oops"), "{err}");
        assert_eq!(run_checked(&["echo".into(), "hi".into()]).unwrap(), "hi\n");
    }
}
