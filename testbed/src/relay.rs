//! The relays the testbed can measure, as one table of configurations:
//! a name, how its command line is built, and whether the kernel's softirq
//! time is part of its CPU figure (it must be for XDP, where the kernel
//! relays packets without the relay process seeing them).
//!
//! Every configuration gets the same listener, relay IP, realm, static user,
//! allowed peer range and thread count, so the comparison differs only in
//! the relay.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// What every relay under test is configured with.
#[derive(Debug, Clone)]
pub struct RelayParams {
    pub listen: SocketAddr,
    pub relay_ip: Ipv4Addr,
    pub peer_net: Ipv4Net,
    pub realm: String,
    pub user: String,
    pub password: String,
    pub threads: usize,
    /// The relay namespace's veths (for configurations that attach to them).
    pub interfaces: Vec<String>,
    /// Where files the relay needs (pid file) may be written.
    pub scratch: PathBuf,
}

/// Paths of the relay programs.
#[derive(Debug, Clone)]
pub struct RelayBinaries {
    pub uturn: PathBuf,
    pub turnserver: PathBuf,
}

/// One row of the configuration table.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    pub name: &'static str,
    /// The system's softirq time of the window is added to the relay's own
    /// CPU time in this configuration's headline figure.
    pub counts_softirq: bool,
    /// Needs the far veth ends prepared for XDP (`Topology::prepare_far_ends`).
    pub far_end_xdp: bool,
    pub build: fn(&RelayParams, &RelayBinaries) -> Vec<String>,
}

/// Port of uturn-xdp's metrics endpoint, on the listener's address in the
/// relay namespace: `uturn_xdp_packets_total` there shows whether the
/// traffic took the kernel path (the load generator cannot tell).
pub const METRICS_PORT: u16 = 9464;

/// Where uturn-xdp serves `/metrics` (inside the relay namespace).
pub fn metrics_addr(p: &RelayParams) -> SocketAddr {
    SocketAddr::new(p.listen.ip(), METRICS_PORT)
}

/// Every known configuration. `uturn-xdp` is uturn (io_uring) with its XDP
/// fast path attached to both of the relay namespace's veths (client →
/// peer is a redirect between them, peer → client the other way), serving
/// metrics so the XDP counters can be read. The topology prepares the far
/// veth ends for it (`topology` module docs).
pub const CONFIGS: &[RelayConfig] = &[
    RelayConfig {
        name: "uturn-uring",
        counts_softirq: false,
        far_end_xdp: false,
        build: |p, b| uturn_argv(p, b, "uring"),
    },
    RelayConfig {
        name: "uturn-epoll",
        counts_softirq: false,
        far_end_xdp: false,
        build: |p, b| uturn_argv(p, b, "epoll"),
    },
    RelayConfig {
        name: "coturn",
        counts_softirq: false,
        far_end_xdp: false,
        build: coturn_argv,
    },
    RelayConfig {
        name: "uturn-xdp",
        counts_softirq: true,
        far_end_xdp: true,
        build: |p, b| {
            let mut argv = uturn_argv(p, b, "uring");
            for i in &p.interfaces {
                argv.extend(["--xdp".to_string(), i.clone()]);
            }
            // An idle HTTP listener thread: no cost on the packet path.
            argv.extend(["--metrics".to_string(), metrics_addr(p).to_string()]);
            argv
        },
    },
];

/// The default comparison.
pub const DEFAULT_RELAYS: &[&str] = &["uturn-uring", "uturn-epoll", "coturn"];

/// Looks up a configuration by name.
pub fn config(name: &str) -> Option<&'static RelayConfig> {
    CONFIGS.iter().find(|c| c.name == name)
}

fn uturn_argv(p: &RelayParams, b: &RelayBinaries, backend: &str) -> Vec<String> {
    let mut argv = vec![b.uturn.display().to_string()];
    let mut flag = |k: &str, v: String| argv.extend([k.to_string(), v]);
    flag("--listen", p.listen.to_string());
    flag("--relay-ip", p.relay_ip.to_string());
    flag("--realm", p.realm.clone());
    flag("--user", format!("{}:{}", p.user, p.password));
    flag("--allow-peer", p.peer_net.to_string());
    flag("--threads", p.threads.to_string());
    flag("--backend", backend.to_string());
    flag("--log-level", "warn".to_string());
    // The testbed pins the relay with taskset; uturn's own pinning (worker
    // i on CPU i) would move it off the CPUs it was given.
    argv.push("--no-pin".to_string());
    argv
}

/// coTURN 4.6 (`man turnserver`): `-n` reads no config file (so
/// /etc/turnserver.conf cannot change the run), only UDP listeners, the
/// long-term credential mechanism with one static user, the same number of
/// relay threads, no quotas or bandwidth caps, and no logging.
fn coturn_argv(p: &RelayParams, b: &RelayBinaries) -> Vec<String> {
    let mut argv = vec![b.turnserver.display().to_string()];
    argv.extend(
        [
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",
            "--no-tcp-relay",
            "--no-rfc5780",
            "--no-stdout-log",
            "--simple-log",
            "--lt-cred-mech",
        ]
        .map(String::from),
    );
    let mut flag = |k: &str, v: String| argv.extend([k.to_string(), v]);
    flag("--log-file", "/dev/null".to_string());
    flag("--listening-ip", p.listen.ip().to_string());
    flag("--listening-port", p.listen.port().to_string());
    flag("--relay-ip", p.relay_ip.to_string());
    flag("--realm", p.realm.clone());
    flag("--user", format!("{}:{}", p.user, p.password));
    flag("--relay-threads", p.threads.to_string());
    // coTURN takes peer ranges as FIRST-LAST.
    flag(
        "--allowed-peer-ip",
        format!("{}-{}", p.peer_net.network(), p.peer_net.broadcast()),
    );
    flag("--user-quota", "0".to_string());
    flag("--total-quota", "0".to_string());
    flag("--max-bps", "0".to_string());
    flag(
        "--pidfile",
        p.scratch.join("turnserver.pid").display().to_string(),
    );
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RelayParams {
        RelayParams {
            listen: "10.77.1.1:3478".parse().unwrap(),
            relay_ip: Ipv4Addr::new(10, 77, 2, 1),
            peer_net: "10.77.2.0/24".parse().unwrap(),
            realm: "test".into(),
            user: "load".into(),
            password: "secret".into(),
            threads: 1,
            interfaces: vec!["t-rc".into(), "t-rp".into()],
            scratch: "/tmp/x".into(),
        }
    }

    fn bins() -> RelayBinaries {
        RelayBinaries {
            uturn: "/b/uturn".into(),
            turnserver: "turnserver".into(),
        }
    }

    fn argv(name: &str) -> String {
        (config(name).unwrap().build)(&params(), &bins()).join(" ")
    }

    #[test]
    fn uturn_backends_get_the_same_flags_but_the_backend() {
        let uring = argv("uturn-uring");
        assert!(uring.starts_with("/b/uturn --listen 10.77.1.1:3478 --relay-ip 10.77.2.1"));
        for f in [
            "--realm test",
            "--user load:secret",
            "--allow-peer 10.77.2.0/24",
            "--threads 1",
            "--backend uring",
            "--log-level warn",
            "--no-pin",
        ] {
            assert!(uring.contains(f), "{f} missing in {uring}");
        }
        assert_eq!(
            argv("uturn-epoll"),
            uring.replace("--backend uring", "--backend epoll")
        );
    }

    #[test]
    fn coturn_gets_same_auth_threads_peers_and_no_logging() {
        let c = argv("coturn");
        assert!(c.starts_with("turnserver -n "));
        for f in [
            "--listening-ip 10.77.1.1",
            "--listening-port 3478",
            "--relay-ip 10.77.2.1",
            "--lt-cred-mech",
            "--user load:secret",
            "--realm test",
            "--relay-threads 1",
            "--allowed-peer-ip 10.77.2.0-10.77.2.255",
            "--user-quota 0",
            "--total-quota 0",
            "--max-bps 0",
            "--no-stdout-log",
            "--log-file /dev/null",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--pidfile /tmp/x/turnserver.pid",
        ] {
            assert!(c.contains(f), "{f} missing in {c}");
        }
    }

    #[test]
    fn xdp_hook_attaches_to_the_relay_veths_and_counts_softirq() {
        let x = config("uturn-xdp").unwrap();
        assert!(x.counts_softirq && x.far_end_xdp);
        let xdp = argv("uturn-xdp");
        assert!(
            xdp.ends_with("--xdp t-rc --xdp t-rp --metrics 10.77.1.1:9464"),
            "{xdp}"
        );
        // Otherwise the same relay as uturn-uring.
        assert!(xdp.starts_with(&argv("uturn-uring")), "{xdp}");
        assert_eq!(metrics_addr(&params()).to_string(), "10.77.1.1:9464");
        for name in DEFAULT_RELAYS {
            assert!(!config(name).unwrap().counts_softirq);
            assert!(!config(name).unwrap().far_end_xdp);
        }
        assert!(config("nginx").is_none());
    }
}
