//! The three-namespace topology the relay is measured in:
//!
//! ```text
//!  <p>-clients            <p>-relay                          <p>-peers
//!  <p>-cr 10.77.1.2 ── veth ── <p>-rc 10.77.1.1   <p>-rp 10.77.2.1 ── veth ── <p>-pr 10.77.2.2
//!  default via .1.1           ip_forward=1                       default via .2.1
//! ```
//!
//! Clients reach the relay's listener on the client-side address; relayed
//! traffic leaves from the peer-side address; clients and peers can reach
//! each other only by being routed through the relay namespace. Both veth
//! pairs have MTU 1500, as on an Ethernet path.
//!
//! For uturn's XDP fast path (`--xdp`, docs/xdp.md) the far ends `<p>-cr`
//! and `<p>-pr` are prepared as that document's "Limits" asks: veth hands a
//! frame sent with XDP_TX or redirected into it to the far end only when the
//! far end runs NAPI, which an attached XDP program guarantees
//! (drivers/net/veth.c; on kernel 6.18 GRO alone was not enough), so they run
//! `uturn_ebpf::PASS_PROGRAM` (passes every frame); and their transmit
//! checksum offload is off, so the generator's datagrams carry complete UDP
//! checksums that the relay's program can update instead of partial ones it
//! must pass up. [`Topology::up`] does this for every relay, not only
//! `uturn-xdp` (whose [`crate::relay::RelayConfig::far_end_xdp`] says it
//! needs it), because the topology is built once per invocation. It is not
//! neutral for the others: in row-1 runs uturn-uring lost 4.6-7.7 % towards
//! the peers in 2 of 5 runs with it (0 of 4 without); our guess at the
//! cause is that the far end then receives through veth's 256-frame NAPI
//! ring instead of the backlog, which bursts of sends can overflow. [`Topology::prepare_far_ends`] / [`Topology::clear_far_ends`]
//! let a runner limit it to XDP runs; [`Topology::with_far_end_xdp`] turns
//! it off in `up`.
//!
//! The commands are built as data ([`Topology::up_commands`]) so they are
//! tested without root; [`Topology::up`] runs them and returns a guard that
//! deletes the namespaces (and with them the veths) when dropped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::process::{self, run_checked};

/// Errors from building or tearing down the topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    #[error(
        "namespace prefix {0:?}: use 1-8 characters a-z, 0-9 (interface names are limited to 15)"
    )]
    BadPrefix(String),
    #[error("subnet {0} has no room for .1 and .2 hosts")]
    BadSubnet(Ipv4Net),
    #[error("{0}")]
    Command(String),
    #[error("writing the XDP pass program to {path}: {error}")]
    PassProgram {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Names and addresses of one topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub client_net: Ipv4Net,
    pub peer_net: Ipv4Net,
    /// Prepare the far veth ends for XDP (pass program, no checksum
    /// offload); see the module docs. On by default.
    pub far_end_xdp: bool,
}

pub const DEFAULT_CLIENT_NET: &str = "10.77.1.0/24";
pub const DEFAULT_PEER_NET: &str = "10.77.2.0/24";
pub const MTU: u16 = 1500;

impl Topology {
    pub fn new(
        prefix: &str,
        client_net: Ipv4Net,
        peer_net: Ipv4Net,
    ) -> Result<Self, TopologyError> {
        let ok_prefix = !prefix.is_empty()
            && prefix.len() <= 8
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok_prefix {
            return Err(TopologyError::BadPrefix(prefix.to_owned()));
        }
        for net in [client_net, peer_net] {
            if net.prefix_len() > 30 {
                return Err(TopologyError::BadSubnet(net));
            }
        }
        Ok(Topology {
            prefix: prefix.to_owned(),
            client_net: client_net.trunc(),
            peer_net: peer_net.trunc(),
            far_end_xdp: true,
        })
    }

    /// The same topology with the far-end XDP preparation on or off.
    pub fn with_far_end_xdp(mut self, on: bool) -> Self {
        self.far_end_xdp = on;
        self
    }

    pub fn relay_ns(&self) -> String {
        format!("{}-relay", self.prefix)
    }
    pub fn clients_ns(&self) -> String {
        format!("{}-clients", self.prefix)
    }
    pub fn peers_ns(&self) -> String {
        format!("{}-peers", self.prefix)
    }
    pub fn namespaces(&self) -> [String; 3] {
        [self.relay_ns(), self.clients_ns(), self.peers_ns()]
    }
    /// The relay's veth towards the clients.
    pub fn relay_client_if(&self) -> String {
        format!("{}-rc", self.prefix)
    }
    /// The relay's veth towards the peers.
    pub fn relay_peer_if(&self) -> String {
        format!("{}-rp", self.prefix)
    }
    /// The clients' veth towards the relay (far end of `relay_client_if`).
    pub fn clients_if(&self) -> String {
        format!("{}-cr", self.prefix)
    }
    /// The peers' veth towards the relay (far end of `relay_peer_if`).
    pub fn peers_if(&self) -> String {
        format!("{}-pr", self.prefix)
    }
    /// The far ends of both veth pairs with their namespaces.
    pub fn far_ends(&self) -> [(String, String); 2] {
        [
            (self.clients_ns(), self.clients_if()),
            (self.peers_ns(), self.peers_if()),
        ]
    }

    /// The relay's address on the client side: where it listens.
    pub fn relay_client_ip(&self) -> Ipv4Addr {
        host(self.client_net, 1)
    }
    /// The relay's address on the peer side: its relay IP.
    pub fn relay_peer_ip(&self) -> Ipv4Addr {
        host(self.peer_net, 1)
    }
    pub fn client_ip(&self) -> Ipv4Addr {
        host(self.client_net, 2)
    }
    pub fn peer_ip(&self) -> Ipv4Addr {
        host(self.peer_net, 2)
    }

    /// Every command that builds the topology, in order.
    pub fn up_commands(&self) -> Vec<Vec<String>> {
        let (relay, clients, peers) = (self.relay_ns(), self.clients_ns(), self.peers_ns());
        let cidr = |ip: Ipv4Addr, net: Ipv4Net| format!("{ip}/{}", net.prefix_len());
        let mtu = MTU.to_string();
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let mut push = |words: &[&str]| cmds.push(words.iter().map(|w| w.to_string()).collect());
        for ns in [&relay, &clients, &peers] {
            push(&["ip", "netns", "add", ns]);
        }
        for (relay_if, other_if, other_ns) in [
            (self.relay_client_if(), self.clients_if(), &clients),
            (self.relay_peer_if(), self.peers_if(), &peers),
        ] {
            push(&[
                "ip", "link", "add", &relay_if, "netns", &relay, "mtu", &mtu, "type", "veth",
                "peer", "name", &other_if, "netns", other_ns, "mtu", &mtu,
            ]);
        }
        let sides = [
            (
                &relay,
                self.relay_client_if(),
                cidr(self.relay_client_ip(), self.client_net),
            ),
            (
                &relay,
                self.relay_peer_if(),
                cidr(self.relay_peer_ip(), self.peer_net),
            ),
            (
                &clients,
                self.clients_if(),
                cidr(self.client_ip(), self.client_net),
            ),
            (&peers, self.peers_if(), cidr(self.peer_ip(), self.peer_net)),
        ];
        for (ns, ifname, addr) in &sides {
            push(&["ip", "-n", ns, "addr", "add", addr, "dev", ifname]);
            push(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
        for ns in [&relay, &clients, &peers] {
            push(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        push(&[
            "ip",
            "netns",
            "exec",
            &relay,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let via_client = self.relay_client_ip().to_string();
        let via_peer = self.relay_peer_ip().to_string();
        push(&[
            "ip",
            "-n",
            &clients,
            "route",
            "add",
            "default",
            "via",
            &via_client,
        ]);
        push(&[
            "ip", "-n", &peers, "route", "add", "default", "via", &via_peer,
        ]);
        cmds
    }

    /// The commands that prepare the far veth ends for XDP, with the pass
    /// program's object file at `pass_object` (see the module docs).
    pub fn far_end_commands(&self, pass_object: &Path) -> Vec<Vec<String>> {
        let object = pass_object.display().to_string();
        let mut cmds = Vec::new();
        for (ns, ifname) in self.far_ends() {
            cmds.push(
                [
                    "ip", "-n", &ns, "link", "set", "dev", &ifname, "xdpdrv", "obj", &object,
                    "sec", "xdp",
                ]
                .map(String::from)
                .to_vec(),
            );
            cmds.push(
                [
                    "ip", "netns", "exec", &ns, "ethtool", "-K", &ifname, "tx", "off",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        cmds
    }

    /// Attaches the pass program to the far ends and turns their checksum
    /// offload off. The object file is only needed while `ip` loads it.
    /// [`Topology::up`] calls it when `far_end_xdp` is set; a runner that
    /// wants it only around XDP runs calls this and [`Topology::clear_far_ends`].
    /// Idempotent: `ip link set ... xdpdrv obj` refuses to replace a
    /// program, so whatever an earlier run attached is removed first.
    pub fn prepare_far_ends(&self) -> Result<(), TopologyError> {
        self.clear_far_ends()?;
        let Some(object) = uturn_ebpf::PASS_PROGRAM else {
            // Without clang uturn has no XDP program either: uturn-xdp then
            // relays in userspace and needs nothing on the far ends.
            tracing::warn!("built without the XDP programs (no clang): far ends left as they are");
            return Ok(());
        };
        let path = std::env::temp_dir().join(format!("uturn-testbed-{}-pass.bpf.o", self.prefix));
        std::fs::write(&path, object).map_err(|error| TopologyError::PassProgram {
            path: path.clone(),
            error,
        })?;
        let result = self
            .far_end_commands(&path)
            .iter()
            .try_for_each(|cmd| run_checked(cmd).map(drop).map_err(TopologyError::Command));
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Undoes [`Topology::prepare_far_ends`]: with an XDP program attached
    /// the far end receives through veth's NAPI ring (256 frames) instead of
    /// the backlog, which a relay sending in bursts can overflow.
    pub fn clear_far_ends(&self) -> Result<(), TopologyError> {
        for (ns, ifname) in self.far_ends() {
            for cmd in [
                vec![
                    "ip", "-n", &ns, "link", "set", "dev", &ifname, "xdpdrv", "off",
                ],
                vec![
                    "ip", "netns", "exec", &ns, "ethtool", "-K", &ifname, "tx", "on",
                ],
            ] {
                let cmd: Vec<String> = cmd.into_iter().map(String::from).collect();
                run_checked(&cmd).map_err(TopologyError::Command)?;
            }
        }
        Ok(())
    }

    /// The relay namespace's veths with their namespace.
    pub fn relay_ends(&self) -> [(String, String); 2] {
        [
            (self.relay_ns(), self.relay_client_if()),
            (self.relay_ns(), self.relay_peer_if()),
        ]
    }

    /// The commands that switch threaded NAPI (`crate::napi`) on or off on
    /// all four veth ends. NAPI itself is turned on with GRO, which veth
    /// takes as the request to receive through NAPI even without an XDP
    /// program (drivers/net/veth.c); `threaded` then moves each NAPI poll
    /// into its own kernel thread. TSO goes off too: veth hands a frame to
    /// the receiver's NAPI only if the *sender* has no TSO (or for GRO
    /// forwarding features we do not want), else it takes the backlog in
    /// the sender's softirq (`veth_skb_is_eligible_for_gro`); TSO is
    /// TCP-only, so the UDP load loses nothing. Off undoes threads and GRO
    /// in reverse order and leaves TSO off: the kernel refuses it while the
    /// peer has an XDP program, and without NAPI it changes nothing.
    pub fn threaded_napi_commands(&self, on: bool) -> Vec<Vec<String>> {
        let (offloads, threaded): (&[&str], _) = if on {
            (&["gro", "on", "tso", "off"], "1")
        } else {
            (&["gro", "off"], "0")
        };
        let mut cmds = Vec::new();
        for (ns, ifname) in self.relay_ends().into_iter().chain(self.far_ends()) {
            let mut gro_cmd: Vec<String> = ["ip", "netns", "exec", &ns, "ethtool", "-K", &ifname]
                .map(String::from)
                .to_vec();
            gro_cmd.extend(offloads.iter().map(|w| w.to_string()));
            // `ip netns exec` mounts the namespace's own /sys, where the
            // interface is visible. The kernel refuses the write on a
            // device without NAPI (EOPNOTSUPP): switching off, that means
            // there is nothing threaded, so it is not an error.
            let write = format!("echo {threaded} > /sys/class/net/{ifname}/threaded");
            let threaded_cmd: Vec<String> = [
                "ip".to_string(),
                "netns".into(),
                "exec".into(),
                ns.clone(),
                "sh".into(),
                "-c".into(),
                if on {
                    write
                } else {
                    format!("{write} 2>/dev/null || true")
                },
            ]
            .to_vec();
            if on {
                cmds.extend([gro_cmd, threaded_cmd]);
            } else {
                cmds.extend([threaded_cmd, gro_cmd]);
            }
        }
        cmds
    }

    /// Runs [`Topology::threaded_napi_commands`]. Idempotent.
    pub fn set_threaded_napi(&self, on: bool) -> Result<(), TopologyError> {
        self.threaded_napi_commands(on)
            .iter()
            .try_for_each(|cmd| run_checked(cmd).map(drop).map_err(TopologyError::Command))
    }

    /// The relay namespace's veth names (their NAPI threads are the relay's).
    pub fn relay_ifaces(&self) -> Vec<String> {
        vec![self.relay_client_if(), self.relay_peer_if()]
    }

    /// The far ends' veth names (their NAPI threads are the generator's).
    pub fn far_ifaces(&self) -> Vec<String> {
        vec![self.clients_if(), self.peers_if()]
    }

    /// Removes leftovers of an earlier run with the same prefix, then
    /// builds the topology. The returned guard tears it down on drop.
    pub fn up(&self) -> Result<TopologyGuard, TopologyError> {
        self.down();
        for ns in self.namespaces() {
            process::register_namespace(&ns);
        }
        // From here the guard owns the namespaces, so a failing step below
        // still tears down what was built.
        let guard = TopologyGuard {
            topology: self.clone(),
        };
        for cmd in self.up_commands() {
            run_checked(&cmd).map_err(TopologyError::Command)?;
        }
        if self.far_end_xdp {
            self.prepare_far_ends()?;
        }
        tracing::info!(prefix = %self.prefix, far_end_xdp = self.far_end_xdp, "topology up");
        Ok(guard)
    }

    /// Deletes the namespaces (killing whatever still runs in them first).
    /// Deleting a namespace deletes the veth ends in it, and with them their
    /// peers. Idempotent.
    pub fn down(&self) {
        for ns in self.namespaces() {
            delete_namespace(&ns);
            process::unregister_namespace(&ns);
        }
    }

    /// Whether any namespace of this topology exists.
    pub fn any_exists(&self) -> bool {
        let names = existing_namespaces();
        self.namespaces().iter().any(|n| names.contains(n))
    }
}

/// The `n`th host address of `net`.
fn host(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

/// Names of existing network namespaces (`ip netns list`).
pub fn existing_namespaces() -> Vec<String> {
    run_checked(&["ip".into(), "netns".into(), "list".into()])
        .map(|out| parse_netns_list(&out))
        .unwrap_or_default()
}

/// `ip netns list` prints `NAME` or `NAME (id: N)` per line.
pub fn parse_netns_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Kills the processes left in `ns` and deletes it, if it exists.
pub(crate) fn delete_namespace(ns: &str) {
    if !existing_namespaces().iter().any(|n| n == ns) {
        return;
    }
    if let Ok(pids) = run_checked(&["ip".into(), "netns".into(), "pids".into(), ns.into()]) {
        for pid in pids.split_whitespace() {
            let _ = run_checked(&["kill".into(), "-KILL".into(), pid.into()]);
        }
    }
    if let Err(e) = run_checked(&["ip".into(), "netns".into(), "del".into(), ns.into()]) {
        tracing::warn!(ns, error = %e, "cannot delete namespace");
    }
}

/// Deletes the topology's namespaces when dropped.
#[derive(Debug)]
pub struct TopologyGuard {
    topology: Topology,
}

impl TopologyGuard {
    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

impl Drop for TopologyGuard {
    fn drop(&mut self) {
        self.topology.down();
        tracing::info!(prefix = %self.topology.prefix, "topology down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(prefix: &str) -> Topology {
        Topology::new(
            prefix,
            "10.77.1.0/24".parse().unwrap(),
            "10.77.2.0/24".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn names_and_addresses_follow_the_prefix_and_subnets() {
        let t = topo("h7");
        assert_eq!(t.namespaces(), ["h7-relay", "h7-clients", "h7-peers"]);
        assert_eq!(t.relay_client_ip(), Ipv4Addr::new(10, 77, 1, 1));
        assert_eq!(t.relay_peer_ip(), Ipv4Addr::new(10, 77, 2, 1));
        assert_eq!(t.client_ip(), Ipv4Addr::new(10, 77, 1, 2));
        assert_eq!(t.peer_ip(), Ipv4Addr::new(10, 77, 2, 2));
        let other = Topology::new(
            "x",
            "10.9.8.77/24".parse().unwrap(),
            "10.9.9.0/25".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(other.relay_client_ip(), Ipv4Addr::new(10, 9, 8, 1));
        assert_eq!(other.peer_ip(), Ipv4Addr::new(10, 9, 9, 2));
    }

    #[test]
    fn bad_prefixes_and_subnets_are_rejected() {
        let net: Ipv4Net = "10.77.1.0/24".parse().unwrap();
        for p in ["", "UPPER", "has-dash", "waytoolong1"] {
            assert!(Topology::new(p, net, net).is_err(), "{p:?}");
        }
        assert!(Topology::new("ok", "10.0.0.0/31".parse().unwrap(), net).is_err());
    }

    #[test]
    fn up_commands_build_three_namespaces_two_veths_and_routes() {
        let t = topo("h7");
        let cmds: Vec<String> = t.up_commands().iter().map(|c| c.join(" ")).collect();
        let has = |s: &str| cmds.iter().any(|c| c == s);
        assert!(has("ip netns add h7-relay"));
        assert!(has("ip netns add h7-clients"));
        assert!(has("ip netns add h7-peers"));
        assert!(has(
            "ip link add h7-rc netns h7-relay mtu 1500 type veth peer name h7-cr netns h7-clients mtu 1500"
        ));
        assert!(has(
            "ip link add h7-rp netns h7-relay mtu 1500 type veth peer name h7-pr netns h7-peers mtu 1500"
        ));
        assert!(has("ip -n h7-relay addr add 10.77.1.1/24 dev h7-rc"));
        assert!(has("ip -n h7-relay addr add 10.77.2.1/24 dev h7-rp"));
        assert!(has("ip -n h7-clients addr add 10.77.1.2/24 dev h7-cr"));
        assert!(has("ip -n h7-peers addr add 10.77.2.2/24 dev h7-pr"));
        assert!(has(
            "ip netns exec h7-relay sysctl -qw net.ipv4.ip_forward=1"
        ));
        assert!(has("ip -n h7-clients route add default via 10.77.1.1"));
        assert!(has("ip -n h7-peers route add default via 10.77.2.1"));
        for ns in t.namespaces() {
            assert!(has(&format!("ip -n {ns} link set lo up")));
        }
        // Namespaces exist before anything is put into them; routes come
        // after the addresses they go via.
        let pos = |s: &str| cmds.iter().position(|c| c == s).unwrap();
        assert!(
            pos("ip netns add h7-peers") < pos("ip -n h7-peers addr add 10.77.2.2/24 dev h7-pr")
        );
        assert!(
            pos("ip -n h7-peers link set h7-pr up")
                < pos("ip -n h7-peers route add default via 10.77.2.1")
        );
        // Interface names fit IFNAMSIZ with the longest allowed prefix.
        let long = topo("abcdefgh");
        assert!(long.relay_client_if().len() <= 15);
    }

    #[test]
    fn far_ends_get_the_pass_program_and_no_checksum_offload() {
        let t = topo("h14");
        assert!(t.far_end_xdp);
        assert!(!t.clone().with_far_end_xdp(false).far_end_xdp);
        let cmds: Vec<String> = t
            .far_end_commands(Path::new("/tmp/p.o"))
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                "ip -n h14-clients link set dev h14-cr xdpdrv obj /tmp/p.o sec xdp",
                "ip netns exec h14-clients ethtool -K h14-cr tx off",
                "ip -n h14-peers link set dev h14-pr xdpdrv obj /tmp/p.o sec xdp",
                "ip netns exec h14-peers ethtool -K h14-pr tx off",
            ]
        );
        // The relay's own veths are uturn's to attach to, never touched here.
        assert!(!cmds
            .iter()
            .any(|c| c.contains("h14-rc") || c.contains("h14-rp")));
    }

    #[test]
    fn threaded_napi_turns_on_gro_then_threads_on_all_four_ends() {
        let t = topo("t6b");
        let on: Vec<String> = t
            .threaded_napi_commands(true)
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(on.len(), 8);
        for (ns, ifname) in t.relay_ends().into_iter().chain(t.far_ends()) {
            let gro = format!("ip netns exec {ns} ethtool -K {ifname} gro on tso off");
            let thr = format!("ip netns exec {ns} sh -c echo 1 > /sys/class/net/{ifname}/threaded");
            let pos = |s: &str| on.iter().position(|c| c == s).unwrap();
            assert!(pos(&gro) < pos(&thr), "{on:?}");
        }
        let off: Vec<String> = t
            .threaded_napi_commands(false)
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            off[..2],
            [
                "ip netns exec t6b-relay sh -c echo 0 > /sys/class/net/t6b-rc/threaded 2>/dev/null || true",
                "ip netns exec t6b-relay ethtool -K t6b-rc gro off",
            ]
        );
        assert_eq!(t.relay_ifaces(), ["t6b-rc", "t6b-rp"]);
        assert_eq!(t.far_ifaces(), ["t6b-cr", "t6b-pr"]);
    }

    #[test]
    fn netns_list_output_is_parsed_with_or_without_ids() {
        let out = "h7-peers (id: 2)\nh7-clients (id: 1)\nother\n";
        assert_eq!(parse_netns_list(out), ["h7-peers", "h7-clients", "other"]);
    }
}
