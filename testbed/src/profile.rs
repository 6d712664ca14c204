//! Optional profile of the relay over the measured window (`--perf`):
//! `perf record -g -p PID` runs from `@window-start` to `@window-end`, and
//! `perf report --sort dso` splits the relay's samples between the kernel
//! and user space — the question when uturn misses its target is whether
//! the time goes into uturn's code or into the kernel's UDP path.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

/// Where the relay's samples went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    /// Share of samples in the kernel (`[kernel.kallsyms]`), %.
    pub kernel_pct: f64,
    /// Share of samples in user space (the relay and its libraries), %.
    pub user_pct: f64,
    /// Shares by DSO, largest first.
    pub by_dso: Vec<(String, f64)>,
}

/// Parses `perf report --stdio --sort dso` lines: `    61.30%  [kernel.kallsyms]`.
pub fn parse_dso_report(text: &str) -> Profile {
    let mut p = Profile::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((pct, dso)) = line.split_once('%') else {
            continue;
        };
        let Ok(pct) = pct.trim().parse::<f64>() else {
            continue;
        };
        let dso = dso.trim().to_owned();
        if dso.is_empty() {
            continue;
        }
        if dso.starts_with("[kernel") {
            p.kernel_pct += pct;
        } else {
            p.user_pct += pct;
        }
        p.by_dso.push((dso, pct));
    }
    p.by_dso.sort_by(|a, b| b.1.total_cmp(&a.1));
    p
}

/// `perf record` argv for the relay process.
pub fn record_argv(pid: u32, data: &Path) -> Vec<String> {
    vec![
        "perf".into(),
        "record".into(),
        "-q".into(),
        "-g".into(),
        "-p".into(),
        pid.to_string(),
        "-o".into(),
        data.display().to_string(),
    ]
}

/// Summarises a recorded profile: writes the top symbols next to the data
/// (`.txt`) and returns the kernel/user split.
pub fn summarise(data: &Path) -> Option<Profile> {
    let report = |sort: &str| {
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                sort,
                "-g",
                "none",
                "-i",
            ])
            .arg(data)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if let Some(symbols) = report("dso,sym") {
        let top: String = symbols
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .take(40)
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = std::fs::write(data.with_extension("txt"), top);
    }
    report("dso").map(|t| parse_dso_report(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dso_report_splits_kernel_and_user() {
        let text = "# Samples: 4K of event 'cpu-clock'\n#\n# Overhead  Shared Object\n\
                    # ........  .................\n#\n\
                    \x20   61.25%  [kernel.kallsyms]\n\
                    \x20   30.50%  uturn\n\
                    \x20    8.25%  libc.so.6\n\n";
        let p = parse_dso_report(text);
        assert!((p.kernel_pct - 61.25).abs() < 1e-9);
        assert!((p.user_pct - 38.75).abs() < 1e-9);
        assert_eq!(p.by_dso[0].0, "[kernel.kallsyms]");
        assert_eq!(p.by_dso.len(), 3);
    }

    #[test]
    fn record_argv_attaches_to_the_pid() {
        let a = record_argv(42, Path::new("/o/x.perf.data")).join(" ");
        assert_eq!(a, "perf record -q -g -p 42 -o /o/x.perf.data");
    }
}
