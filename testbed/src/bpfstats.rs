//! The XDP program's own cost, from the kernel's BPF run-time statistics:
//! with `kernel.bpf_stats_enabled=1` the kernel adds each program's run
//! time and run count (`run_time_ns`, `run_cnt`), which `bpftool prog show`
//! prints and which `/proc/PID/fdinfo/FD` shows for every program file
//! descriptor a process holds (kernel/bpf/syscall.c, `bpf_prog_show_fdinfo`).
//!
//! Why: the softirq time of the window is system-wide, so for uturn-xdp it
//! also holds the load generator's own receive processing; the program's
//! run time is the part that is certainly the relay's. The counters are
//! read from the relay process's own program descriptors, so no tool is
//! needed; a program the relay holds only through a BPF link (whose fdinfo
//! names the program but has no counters) is looked up with `bpftool` when
//! it is installed, and otherwise left out (the report then says n/a).
//!
//! Turning the statistics on costs two clock reads per program run, so it
//! is done only for the runs that measure an XDP relay, and the previous
//! setting is restored afterwards ([`StatsSwitch`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

/// The sysctl that turns BPF run-time statistics on.
pub const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Run-time counters of one program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProgStats {
    pub id: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// What a BPF file descriptor's fdinfo says: a program with its counters,
/// or a link naming the program it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdInfo {
    Prog(ProgStats),
    Link { prog_id: u32 },
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Parses `/proc/PID/fdinfo/FD` of a BPF program or link descriptor.
pub fn parse_fdinfo(text: &str) -> Option<FdInfo> {
    let id = u32::try_from(field(text, "prog_id")?).ok()?;
    if text.lines().any(|l| l.starts_with("link_type:")) {
        return Some(FdInfo::Link { prog_id: id });
    }
    Some(FdInfo::Prog(ProgStats {
        id,
        run_time_ns: field(text, "run_time_ns")?,
        run_cnt: field(text, "run_cnt")?,
    }))
}

/// Parses `bpftool -j prog show id N`: one JSON object with `id`,
/// `run_time_ns` and `run_cnt` (the last two only while statistics are on).
pub fn parse_bpftool_json(text: &str) -> Option<ProgStats> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let v = if let Some(list) = v.as_array() {
        list.first()?.clone()
    } else {
        v
    };
    Some(ProgStats {
        id: u32::try_from(v.get("id")?.as_u64()?).ok()?,
        run_time_ns: v.get("run_time_ns").and_then(|x| x.as_u64()).unwrap_or(0),
        run_cnt: v.get("run_cnt").and_then(|x| x.as_u64()).unwrap_or(0),
    })
}

/// Counters of every BPF program `pid` holds, by program id.
pub fn read_process(pid: u32) -> BTreeMap<u32, ProgStats> {
    let mut progs = BTreeMap::new();
    let mut linked = Vec::new();
    let fd_dir = format!("/proc/{pid}/fd");
    let Ok(entries) = std::fs::read_dir(&fd_dir) else {
        return progs;
    };
    for entry in entries.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if !(target.contains("bpf-prog") || target.contains("bpf_link")) {
            continue;
        }
        let info = Path::new(&format!("/proc/{pid}/fdinfo")).join(entry.file_name());
        match std::fs::read_to_string(info)
            .ok()
            .as_deref()
            .and_then(parse_fdinfo)
        {
            Some(FdInfo::Prog(p)) => {
                progs.insert(p.id, p);
            }
            Some(FdInfo::Link { prog_id }) => linked.push(prog_id),
            None => {}
        }
    }
    for id in linked {
        if let std::collections::btree_map::Entry::Vacant(e) = progs.entry(id) {
            if let Some(p) = bpftool_prog(id) {
                e.insert(p);
            }
        }
    }
    progs
}

/// `bpftool -j prog show id ID`, if bpftool is installed.
fn bpftool_prog(id: u32) -> Option<ProgStats> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show", "id", &id.to_string()])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    parse_bpftool_json(&String::from_utf8_lossy(&out.stdout))
}

/// The programs' cost over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BpfWindow {
    /// Programs seen at both ends of the window.
    pub programs: usize,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl BpfWindow {
    /// Differences between two readings (programs present in both).
    pub fn between(start: &BTreeMap<u32, ProgStats>, end: &BTreeMap<u32, ProgStats>) -> Self {
        let mut w = BpfWindow::default();
        for (id, a) in start {
            if let Some(b) = end.get(id) {
                w.programs += 1;
                w.run_time_ns += b.run_time_ns.saturating_sub(a.run_time_ns);
                w.run_cnt += b.run_cnt.saturating_sub(a.run_cnt);
            }
        }
        w
    }

    /// Mean run time of one program invocation, ns.
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }

    /// Program run time per relayed packet, µs.
    pub fn us_per_packet(&self, relayed_packets: u64) -> Option<f64> {
        (self.run_cnt > 0 && relayed_packets > 0)
            .then(|| self.run_time_ns as f64 / 1e3 / relayed_packets as f64)
    }
}

/// Turns BPF statistics on while alive and restores the previous setting
/// on drop.
#[derive(Debug)]
pub struct StatsSwitch {
    previous: Option<String>,
}

impl StatsSwitch {
    /// `None` (with a warning) when the sysctl cannot be written.
    pub fn on() -> Option<StatsSwitch> {
        let previous = std::fs::read_to_string(SYSCTL).ok()?;
        if previous.trim() == "1" {
            return Some(StatsSwitch { previous: None });
        }
        match std::fs::write(SYSCTL, "1") {
            Ok(()) => Some(StatsSwitch {
                previous: Some(previous),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot enable BPF run-time statistics");
                None
            }
        }
    }
}

impl Drop for StatsSwitch {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            if let Err(e) = std::fs::write(SYSCTL, previous.trim()) {
                tracing::warn!(error = %e, "cannot restore kernel.bpf_stats_enabled");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kernel 6.x fdinfo of a program and of an XDP link.
    const PROG: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1067\n\
                        prog_type:\t6\nprog_jited:\t1\nprog_tag:\t3b185187f1855c4c\n\
                        memlock:\t4096\nprog_id:\t57\nrun_time_ns:\t123456\nrun_cnt:\t789\n\
                        recursion_misses:\t0\nverified_insns:\t420\n";
    const LINK: &str = "pos:\t0\nflags:\t02000000\nmnt_id:\t16\nino:\t1067\n\
                        link_type:\txdp\nlink_id:\t9\nprog_tag:\t3b185187f1855c4c\n\
                        prog_id:\t57\nifindex:\t4\n";

    #[test]
    fn fdinfo_of_programs_and_links() {
        assert_eq!(
            parse_fdinfo(PROG),
            Some(FdInfo::Prog(ProgStats {
                id: 57,
                run_time_ns: 123_456,
                run_cnt: 789
            }))
        );
        assert_eq!(parse_fdinfo(LINK), Some(FdInfo::Link { prog_id: 57 }));
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn bpftool_json_object_or_list() {
        let one = r#"{"id":57,"type":"xdp","name":"uturn_xdp","run_time_ns":1000,"run_cnt":10}"#;
        let p = parse_bpftool_json(one).unwrap();
        assert_eq!((p.id, p.run_time_ns, p.run_cnt), (57, 1000, 10));
        let list = format!("[{one}]");
        assert_eq!(parse_bpftool_json(&list), Some(p));
        // Statistics off: the fields are absent, counted as zero.
        let off = parse_bpftool_json(r#"{"id":3,"type":"xdp"}"#).unwrap();
        assert_eq!((off.run_time_ns, off.run_cnt), (0, 0));
        assert_eq!(parse_bpftool_json("not json"), None);
    }

    #[test]
    fn window_sums_programs_present_at_both_ends() {
        let prog = |id, t, c| {
            (
                id,
                ProgStats {
                    id,
                    run_time_ns: t,
                    run_cnt: c,
                },
            )
        };
        let start = BTreeMap::from([prog(1, 1_000, 10), prog(2, 0, 0), prog(3, 5, 5)]);
        let end = BTreeMap::from([prog(1, 41_000, 110), prog(2, 20_000, 100), prog(4, 9, 9)]);
        let w = BpfWindow::between(&start, &end);
        assert_eq!(w.programs, 2);
        assert_eq!((w.run_time_ns, w.run_cnt), (60_000, 200));
        assert_eq!(w.ns_per_run(), Some(300.0));
        // 60 µs over 100 relayed packets.
        assert_eq!(w.us_per_packet(100), Some(0.6));
        assert_eq!(w.us_per_packet(0), None);
        assert_eq!(BpfWindow::default().ns_per_run(), None);
    }

    #[test]
    fn a_process_without_bpf_descriptors_has_no_programs() {
        assert!(read_process(std::process::id()).is_empty());
    }
}
