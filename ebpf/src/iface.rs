//! What attaching to an interface needs besides the attach itself: removing
//! a stale program a crashed uturn left behind, and IPv4 forwarding, without
//! which `bpf_fib_lookup` refuses to route (`BPF_FIB_LKUP_RET_FWD_DISABLED`).
//!
//! Both are control-path chores done once per interface at start-up, with
//! iproute2's `ip` and the sysctl files; nothing here runs per packet.

use std::path::PathBuf;
use std::process::Command;

use crate::PROGRAM_NAME;

/// An interface whose IPv4 forwarding we turned on.
#[derive(Debug)]
pub(crate) struct Forwarding {
    path: PathBuf,
    iface: String,
}

/// Warns about a veth (see docs/xdp.md, Limits) and detaches a `uturn_xdp`
/// program attached through netlink (it outlives
/// the process that attached it, unlike a BPF link). Another program, or a
/// uturn attached with a link (alive, since links die with their process),
/// is left alone: the kernel refuses to replace it and the attach fails.
pub(crate) fn detach_stale(iface: &str) {
    let Ok(out) = Command::new("ip")
        .args(["-d", "link", "show", "dev", iface])
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // `ip -d link` prints the link kind on its own line ("    veth ...").
    if text.lines().any(|l| l.trim_start().starts_with("veth")) {
        tracing::warn!(
            iface,
            "veth: frames XDP sends back or redirects reach the far end only if an XDP \
             program (e.g. uturn_pass) runs there; see docs/xdp.md"
        );
    }
    // `ip -d link` prints e.g. "prog/xdp id 42 name uturn_xdp tag ... jited".
    let stale = text
        .lines()
        .filter(|l| l.contains("prog/xdp"))
        .any(|l| l.split_whitespace().skip_while(|w| *w != "name").nth(1) == Some(PROGRAM_NAME));
    if !stale {
        return;
    }
    for mode in ["xdp", "xdpgeneric", "xdpdrv"] {
        let _ = Command::new("ip")
            .args(["link", "set", "dev", iface, mode, "off"])
            .output();
    }
    tracing::warn!(
        iface,
        "detached a stale {PROGRAM_NAME} left by an earlier uturn"
    );
}

/// Turns on `net.ipv4.conf.IFACE.forwarding` if it is off. Returns what to
/// restore at detach.
pub(crate) fn enable_forwarding(iface: &str) -> Option<Forwarding> {
    let path = PathBuf::from(format!("/proc/sys/net/ipv4/conf/{iface}/forwarding"));
    let current = std::fs::read_to_string(&path).ok()?;
    if current.trim() != "0" {
        return None;
    }
    match std::fs::write(&path, "1") {
        Ok(()) => {
            tracing::info!(
                iface,
                "enabled IPv4 forwarding on the interface (bpf_fib_lookup needs it; restored at exit)"
            );
            Some(Forwarding {
                path,
                iface: iface.to_owned(),
            })
        }
        Err(e) => {
            tracing::warn!(iface, error = %e, "IPv4 forwarding is off and cannot be enabled: channel traffic stays in userspace");
            None
        }
    }
}

pub(crate) fn restore_forwarding(f: Forwarding) {
    if let Err(e) = std::fs::write(&f.path, "0") {
        tracing::warn!(iface = %f.iface, error = %e, "cannot restore IPv4 forwarding");
    }
}
