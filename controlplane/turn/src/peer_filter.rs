//! Which peers a client may reach through the relay: deny by default.
//!
//! A TURN relay sends datagrams wherever its clients ask, from inside the
//! operator's network. Without a filter any authenticated client can reach
//! the relay host's loopback services, the cloud metadata service at
//! 169.254.169.254, or the private network behind the relay (RFC 8656 §21
//! discusses the risks; coTURN needed CVE-2020-26262 and other fixes for
//! exactly these holes). RFC 8656 lets the server refuse such peers with 403
//! (Forbidden). The checks here run for CreatePermission
//! ([`PeerFilter::check_ip`]) and ChannelBind / Send ([`PeerFilter::check_addr`]).
//!
//! # Default-denied ranges
//!
//! IPv4: 0.0.0.0/8 ("this network", and 0.0.0.0 reaches the local host),
//! 127.0.0.0/8, the RFC 1918 ranges 10/8, 172.16/12 and 192.168/16, the
//! RFC 6598 shared space 100.64.0.0/10, link-local 169.254/16, multicast
//! 224.0.0.0/4 and reserved 240.0.0.0/4 (which holds the limited broadcast
//! address 255.255.255.255).
//!
//! IPv6: `::/128`, `::1/128`, link-local `fe80::/10`, deprecated site-local
//! `fec0::/10`, unique local `fc00::/7`, multicast `ff00::/8`, and Teredo
//! `2001::/32` (RFC 4380: its addresses embed an obfuscated IPv4 address and
//! a relay would hand the packet to a Teredo relay; denied outright rather
//! than decoded).
//!
//! # IPv4 hidden in IPv6
//!
//! An IPv6 address that carries an IPv4 address is judged as that IPv4
//! address too, so `::ffff:127.0.0.1` is no way around the loopback rule:
//! IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96` (RFC 2765
//! SIIT), IPv4-compatible `::/96` (so `::1` is also `0.0.0.1`, denied either
//! way), 6to4 `2002::/16` (the 32 bits after `2002:`, RFC 3056), and NAT64
//! `64:ff9b::/96` (RFC 6052) and `64:ff9b:1::/48` (RFC 8215; the last 32 bits,
//! as with a /96 translator prefix inside it — operators whose translator
//! uses a shorter prefix inside `64:ff9b:1::/48` should `--deny-peer` it). A
//! peer is denied when the address itself or its embedded IPv4 address is.
//!
//! # Operator lists
//!
//! `--allow-peer CIDR` and `--deny-peer CIDR`: among the explicit entries that
//! contain the peer, the most specific wins and deny wins a tie; when no
//! explicit entry contains it, the default ranges above decide; anything
//! else is allowed. Specificity compares IPv4 and IPv6 entries on one scale:
//! an IPv4 entry counts as its length plus 96, its length as an IPv4-mapped
//! IPv6 prefix. An IPv4 entry applies to the IPv4 address embedded in an
//! IPv6 peer (`--allow-peer 127.0.0.0/8` allows `::ffff:127.0.0.1` too). An
//! IPv6 entry applies to a peer with an embedded IPv4 address only when it
//! lies inside the translation prefix (`::ffff:127.0.0.0/104` does,
//! `::/0` does not): otherwise `--allow-peer ::/0`, meant for "the IPv6
//! internet", would silently open every IPv4 loopback and private address.
//! Plain IPv4 peers are judged as their IPv4-mapped form under IPv6 entries.
//!
//! # The relay's own addresses
//!
//! - The exact listener socket addresses are always denied, whatever the
//!   operator lists say: a relayed datagram arriving at our own STUN port
//!   comes from a relay address, so a client could make the relay talk to
//!   itself (loops) or forge STUN traffic "from" the relay. A listener bound
//!   to a wildcard address is reachable through every own, loopback and
//!   unspecified address, so its port is denied on all of them.
//! - On the relay's own IPs (listener IPs, relay IPs, external IPs),
//!   [`PeerFilter::check_addr`] allows only ports inside the relay port range:
//!   two clients of the same relay talking through two allocations
//!   (relay-to-relay) is legitimate and common, while any other port on the
//!   relay host (SSH, metrics, an admin API) is not a peer. Like the
//!   listener rule, this holds whatever the operator lists say: they describe
//!   networks, not the relay host's own services. The one exception is an own
//!   *loopback* IP that the operator explicitly allowed (`--allow-peer
//!   127.0.0.0/8`, a single-host test set-up): loopback is denied by default,
//!   so allowing it is already an explicit opt-in to the host's services, and
//!   any other 127.x address would reach them anyway. Its listener ports stay
//!   denied.
//! - [`PeerFilter::check_ip`] (CreatePermission carries no port) treats an own
//!   IP like any other address: it is allowed unless the rules above deny it,
//!   since the port check happens when the client binds a channel or sends.
//! - Port 0 is never a valid destination and is denied by `check_addr`.
//!
//! # Cost
//!
//! `check_addr` runs per Send indication, so nothing allocates: the default
//! ranges are constants, operator entries are pre-sorted (most specific
//! first, deny before allow) and split by family at construction, and each
//! check is a few mask-and-compare loops over short arrays.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

/// Why a peer was refused, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer denied: {reason}")]
pub struct Denied {
    /// A short, fixed description (usable as a metric label).
    pub reason: &'static str,
}

impl Denied {
    const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// The reason.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

const EXPLICIT_DENY: Denied = Denied::new("denied by --deny-peer");
const LISTENER: Denied = Denied::new("relay listener address");
const OWN_PORT: Denied = Denied::new("relay's own address outside the relay port range");
const PORT_ZERO: Denied = Denied::new("port 0");

/// Default-denied IPv4 ranges: (network, prefix length, reason).
const DEFAULT_V4: [(u32, u8, &str); 9] = [
    (0x0000_0000, 8, "this network (0.0.0.0/8)"),
    (0x7f00_0000, 8, "loopback"),
    (0x0a00_0000, 8, "private (RFC 1918)"),
    (0xac10_0000, 12, "private (RFC 1918)"),
    (0xc0a8_0000, 16, "private (RFC 1918)"),
    (0x6440_0000, 10, "shared address space (RFC 6598)"),
    (0xa9fe_0000, 16, "link-local"),
    (0xe000_0000, 4, "multicast"),
    (0xf000_0000, 4, "reserved or broadcast (240.0.0.0/4)"),
];

/// Default-denied IPv6 ranges: (network, prefix length, reason).
const DEFAULT_V6: [(u128, u8, &str); 7] = [
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (0xfe80 << 112, 10, "link-local"),
    (0xfec0 << 112, 10, "site-local"),
    (0xfc00 << 112, 7, "unique local (RFC 4193)"),
    (0xff00 << 112, 8, "multicast"),
    (0x2001_0000 << 96, 32, "Teredo (RFC 4380)"),
];

const fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

const fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// The IPv4-mapped IPv6 form of an IPv4 address, as a number.
const fn mapped(v4: u32) -> u128 {
    0xffff_0000_0000 | v4 as u128
}

/// A peer address as the filter sees it.
#[derive(Clone, Copy, Debug)]
struct View {
    /// The IPv6 address; IPv4 peers as their IPv4-mapped form.
    v6: u128,
    /// The embedded IPv4 address, if any (the address itself for IPv4 peers).
    v4: Option<u32>,
    /// Length of the translation prefix `v4` was found under (96 for mapped
    /// and plain IPv4, 16 for 6to4, ...); 0 without `v4`.
    prefix_len: u8,
}

impl View {
    fn of(ip: IpAddr) -> Self {
        let v6 = match ip {
            IpAddr::V4(ip) => mapped(u32::from(ip)),
            IpAddr::V6(ip) => u128::from(ip),
        };
        // The translation prefixes are disjoint, so at most one applies.
        // Truncating casts below take the low bits on purpose.
        let (v4, prefix_len) = if v6 >> 32 == 0xffff {
            // IPv4-mapped ::ffff:0:0/96 (and plain IPv4).
            (Some(v6 as u32), 96)
        } else if v6 >> 32 == 0xffff_0000 {
            // IPv4-translated ::ffff:0:0:0/96 (RFC 2765).
            (Some(v6 as u32), 96)
        } else if v6 >> 32 == 0 {
            // IPv4-compatible ::/96 (deprecated by RFC 4291 §2.5.5.1).
            (Some(v6 as u32), 96)
        } else if v6 >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
            // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
            (Some(v6 as u32), 96)
        } else if v6 >> 80 == 0x0064_ff9b_0001 {
            // NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215).
            (Some(v6 as u32), 48)
        } else if v6 >> 112 == 0x2002 {
            // 6to4 2002::/16 (RFC 3056 §2): the IPv4 address is bits 16..48.
            (Some((v6 >> 80) as u32), 16)
        } else {
            (None, 0)
        };
        Self { v6, v4, prefix_len }
    }

    fn is_loopback(&self) -> bool {
        self.v6 == 1 || self.v4.is_some_and(|v4| v4 >> 24 == 127)
    }

    fn is_unspecified(&self) -> bool {
        self.v6 == 0 || self.v4 == Some(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug)]
struct Rule<T> {
    net: T,
    mask: T,
    len: u8,
    action: Action,
}

/// A listener address, precomputed.
#[derive(Clone, Copy, Debug)]
struct Listener {
    /// The listener IP as a [`View`] would show it.
    v6: u128,
    port: u16,
    wildcard: bool,
    loopback: bool,
}

/// The peer filter. Cheap to clone; shared configuration for every worker.
#[derive(Debug, Clone)]
pub struct PeerFilter {
    /// Sorted most specific first, deny before allow at equal length.
    v4_rules: Vec<Rule<u32>>,
    /// Same order.
    v6_rules: Vec<Rule<u128>>,
    /// The relay's own IPs, in [`View::v6`] form.
    own: Vec<u128>,
    listeners: Vec<Listener>,
    /// Relay ports, inclusive; empty when `first > last`.
    relay_ports: (u16, u16),
}

impl Default for PeerFilter {
    /// The default ranges only, no operator entries, no own addresses.
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

impl PeerFilter {
    /// A filter with the operator's `--allow-peer` and `--deny-peer` entries
    /// on top of the default-denied ranges. Host bits in an entry are ignored
    /// (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        let mut v4_rules = Vec::new();
        let mut v6_rules = Vec::new();
        let entries = allow
            .into_iter()
            .map(|net| (net, Action::Allow))
            .chain(deny.into_iter().map(|net| (net, Action::Deny)));
        for (net, action) in entries {
            match net.trunc() {
                IpNet::V4(net) => v4_rules.push(Rule {
                    net: u32::from(net.network()),
                    mask: mask32(net.prefix_len()),
                    len: net.prefix_len(),
                    action,
                }),
                IpNet::V6(net) => v6_rules.push(Rule {
                    net: u128::from(net.network()),
                    mask: mask128(net.prefix_len()),
                    len: net.prefix_len(),
                    action,
                }),
            }
        }
        // Longest first; at equal length Deny sorts before Allow, so the
        // first match in each list is that list's verdict.
        v4_rules.sort_by_key(|r| (std::cmp::Reverse(r.len), r.action == Action::Allow));
        v6_rules.sort_by_key(|r| (std::cmp::Reverse(r.len), r.action == Action::Allow));
        Self {
            v4_rules,
            v6_rules,
            own: Vec::new(),
            listeners: Vec::new(),
            relay_ports: (1, 0),
        }
    }

    /// Adds the relay's own addresses: `own_ips` (relay and external IPs; the
    /// listener IPs are added from `listeners`), the listener socket
    /// addresses, and the relay port range. See the module docs for the rules.
    pub fn with_own(
        mut self,
        own_ips: Vec<IpAddr>,
        listeners: Vec<SocketAddr>,
        relay_ports: RangeInclusive<u16>,
    ) -> Self {
        let listener_ips = listeners.iter().map(SocketAddr::ip);
        for ip in own_ips.into_iter().chain(listener_ips) {
            let view = View::of(ip);
            // A wildcard is not an address one can send to (and 0.0.0.0 is
            // denied anyway); wildcard listeners are handled below.
            if !view.is_unspecified() && !self.own.contains(&view.v6) {
                self.own.push(view.v6);
            }
        }
        for addr in listeners {
            let view = View::of(addr.ip());
            self.listeners.push(Listener {
                v6: view.v6,
                port: addr.port(),
                wildcard: view.is_unspecified(),
                loopback: view.is_loopback(),
            });
        }
        self.relay_ports = (*relay_ports.start(), *relay_ports.end());
        self
    }

    /// May a client get a permission for `ip` (CreatePermission)?
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        self.check_view(&View::of(ip))
    }

    /// May a client send to `addr` (ChannelBind, Send)? Runs per packet.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), Denied> {
        let view = View::of(addr.ip());
        let port = addr.port();
        if port == 0 {
            return Err(PORT_ZERO);
        }
        if self.hits_listener(&view, port) {
            return Err(LISTENER);
        }
        self.check_view(&view)?;
        // An own loopback IP that passed `check_view` was explicitly allowed
        // (loopback is default-denied): every other 127.x address reaches the
        // same host services anyway, so a port rule on it would protect
        // nothing and only break single-host set-ups.
        if self.is_own(&view)
            && !view.is_loopback()
            && !(self.relay_ports.0 <= port && port <= self.relay_ports.1)
        {
            return Err(OWN_PORT);
        }
        Ok(())
    }

    /// The operator entries, then the default ranges.
    fn check_view(&self, view: &View) -> Result<(), Denied> {
        match self.explicit(view) {
            Some(Action::Allow) => return Ok(()),
            Some(Action::Deny) => return Err(EXPLICIT_DENY),
            None => {}
        }
        for &(net, len, reason) in &DEFAULT_V6 {
            if view.v6 & mask128(len) == net {
                return Err(Denied::new(reason));
            }
        }
        if let Some(v4) = view.v4 {
            for &(net, len, reason) in &DEFAULT_V4 {
                if v4 & mask32(len) == net {
                    return Err(Denied::new(reason));
                }
            }
        }
        Ok(())
    }

    /// The verdict of the most specific operator entry containing the peer.
    fn explicit(&self, view: &View) -> Option<Action> {
        // IPv6 entries shorter than the translation prefix say nothing about
        // an embedded IPv4 address (see the module docs).
        let v6 = self
            .v6_rules
            .iter()
            .find(|r| r.len >= view.prefix_len && view.v6 & r.mask == r.net)
            .map(|r| (u16::from(r.len), r.action));
        let v4 = view.v4.and_then(|v4| {
            self.v4_rules
                .iter()
                .find(|r| v4 & r.mask == r.net)
                .map(|r| (u16::from(r.len) + 96, r.action))
        });
        match (v6, v4) {
            (None, None) => None,
            (Some((_, action)), None) | (None, Some((_, action))) => Some(action),
            (Some((len6, a6)), Some((len4, a4))) => Some(if len6 > len4 {
                a6
            } else if len4 > len6 {
                a4
            } else if a6 == Action::Deny || a4 == Action::Deny {
                Action::Deny
            } else {
                Action::Allow
            }),
        }
    }

    fn is_own(&self, view: &View) -> bool {
        self.own
            .iter()
            .any(|&own| own == view.v6 || view.v4.is_some_and(|v4| mapped(v4) == own))
    }

    fn hits_listener(&self, view: &View, port: u16) -> bool {
        self.listeners.iter().any(|l| {
            l.port == port
                && (l.v6 == view.v6
                    || view.v4.is_some_and(|v4| mapped(v4) == l.v6)
                    || (l.wildcard
                        && (view.is_loopback() || view.is_unspecified() || self.is_own(view)))
                    // Sending to 0.0.0.0 or :: reaches the local host.
                    || (l.loopback && view.is_unspecified()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Every IPv6 encoding of an IPv4 address the filter must see through.
    /// Teredo is last: it is denied whatever it carries.
    fn encodings(v4: Ipv4Addr) -> [(&'static str, IpAddr); 8] {
        let v = u32::from(v4);
        let w = u128::from(v);
        let v6 = |n: u128| IpAddr::V6(Ipv6Addr::from(n));
        [
            ("plain", IpAddr::V4(v4)),
            ("mapped", IpAddr::V6(v4.to_ipv6_mapped())),
            ("translated", v6(0xffff_0000_0000_0000 | w)),
            ("compatible", IpAddr::V6(v4.to_ipv6_compatible())),
            ("6to4", v6((0x2002 << 112) | (w << 80) | 1)),
            ("nat64", v6((0x0064_ff9b << 96) | w)),
            ("nat64-local", v6((0x0064_ff9b_0001 << 80) | w)),
            // RFC 4380 §4: server IPv4 in bits 32..64, client IPv4 obfuscated
            // (inverted) in the last 32 bits.
            (
                "teredo",
                v6((0x2001_0000 << 96) | (w << 64) | u128::from(!v)),
            ),
        ]
    }

    const DENIED_V4: &[&str] = &[
        "0.0.0.0",
        "0.1.2.3",
        "0.255.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.254",
        "255.255.255.255",
    ];

    const ALLOWED_V4: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "1.0.0.0",
        "9.255.255.255",
        "11.0.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "223.255.255.255",
        "203.0.113.9",
    ];

    #[test]
    fn default_ipv4_table_in_every_encoding() {
        let filter = PeerFilter::default();
        for s in DENIED_V4.iter().chain(ALLOWED_V4) {
            let v4: Ipv4Addr = s.parse().unwrap();
            let denied = DENIED_V4.contains(s);
            for (name, addr) in encodings(v4) {
                let expect_denied = denied || name == "teredo";
                let got = filter.check_ip(addr);
                assert_eq!(
                    got.is_err(),
                    expect_denied,
                    "{s} as {name} ({addr}): {got:?}"
                );
                let got = filter.check_addr(SocketAddr::new(addr, 50000));
                assert_eq!(
                    got.is_err(),
                    expect_denied,
                    "{s} as {name} ({addr}) :50000: {got:?}"
                );
            }
        }
    }

    #[test]
    fn default_ipv6_table() {
        let filter = PeerFilter::default();
        let denied = [
            "::",
            "::1",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "feff:ffff::1",
            "fc00::1",
            "fdff:ffff::1",
            "ff02::1",
            "ff0e::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        let allowed = [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2000::1",
            "fbff:ffff::1",
            "fe7f::1",
            "2003::1",
            // 6to4 and NAT64 of public addresses.
            "2002:0808:0808::1",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::8.8.8.8",
        ];
        for s in denied {
            assert!(filter.check_ip(ip(s)).is_err(), "{s} should be denied");
        }
        for s in allowed {
            assert_eq!(filter.check_ip(ip(s)), Ok(()), "{s} should be allowed");
        }
    }

    #[test]
    fn reasons_name_the_range() {
        let filter = PeerFilter::default();
        assert_eq!(
            filter.check_ip(ip("127.0.0.1")).unwrap_err().reason,
            "loopback"
        );
        assert_eq!(
            filter.check_ip(ip("::ffff:127.0.0.1")).unwrap_err().reason,
            "loopback"
        );
        assert_eq!(filter.check_ip(ip("::1")).unwrap_err().reason(), "loopback");
        assert_eq!(
            filter.check_ip(ip("169.254.169.254")).unwrap_err().reason,
            "link-local"
        );
        assert_eq!(
            filter.check_ip(ip("2001::1")).unwrap_err().reason,
            "Teredo (RFC 4380)"
        );
        let err = filter.check_ip(ip("10.0.0.1")).unwrap_err();
        assert_eq!(err.to_string(), "peer denied: private (RFC 1918)");
    }

    #[test]
    fn explicit_allow_opens_a_default_range_in_every_encoding() {
        let filter = PeerFilter::new(vec![net("127.0.0.0/8")], vec![]);
        for (name, addr) in encodings("127.0.0.1".parse().unwrap()) {
            let expect_denied = name == "teredo";
            assert_eq!(
                filter.check_ip(addr).is_err(),
                expect_denied,
                "{name} ({addr})"
            );
        }
        // Other defaults stay.
        assert!(filter.check_ip(ip("10.0.0.1")).is_err());
        assert!(
            filter.check_ip(ip("::1")).is_err(),
            "::1 is IPv6 loopback, not 127/8"
        );
    }

    #[test]
    fn explicit_deny_closes_a_public_address_in_every_encoding() {
        let filter = PeerFilter::new(vec![], vec![net("8.8.8.0/24")]);
        for (name, addr) in encodings("8.8.8.8".parse().unwrap()) {
            // Teredo is denied by the default list: it is not decoded.
            let expected = if name == "teredo" {
                Denied::new("Teredo (RFC 4380)")
            } else {
                EXPLICIT_DENY
            };
            assert_eq!(filter.check_ip(addr), Err(expected), "{name} ({addr})");
        }
        assert_eq!(filter.check_ip(ip("8.8.4.4")), Ok(()));
    }

    #[test]
    fn longest_prefix_wins_and_deny_wins_ties() {
        let filter = PeerFilter::new(
            vec![net("10.0.0.0/8"), net("10.1.2.0/24"), net("192.168.1.0/24")],
            vec![net("10.1.0.0/16"), net("192.168.1.0/24")],
        );
        assert_eq!(filter.check_ip(ip("10.0.0.1")), Ok(()));
        assert_eq!(filter.check_ip(ip("10.1.0.1")), Err(EXPLICIT_DENY));
        assert_eq!(
            filter.check_ip(ip("10.1.2.3")),
            Ok(()),
            "/24 allow beats /16 deny"
        );
        assert_eq!(filter.check_ip(ip("::ffff:10.1.2.3")), Ok(()));
        assert_eq!(
            filter.check_ip(ip("192.168.1.1")),
            Err(EXPLICIT_DENY),
            "tie: deny"
        );
        assert_eq!(
            filter.check_ip(ip("192.168.2.1")).unwrap_err().reason,
            "private (RFC 1918)"
        );
        // Order of the operator's lists does not matter.
        let reversed = PeerFilter::new(
            vec![net("192.168.1.0/24"), net("10.1.2.0/24"), net("10.0.0.0/8")],
            vec![net("192.168.1.0/24"), net("10.1.0.0/16")],
        );
        for s in ["10.0.0.1", "10.1.0.1", "10.1.2.3", "192.168.1.1"] {
            assert_eq!(filter.check_ip(ip(s)), reversed.check_ip(ip(s)), "{s}");
        }
    }

    #[test]
    fn ipv4_and_ipv6_entries_compare_on_one_scale() {
        // ::ffff:10.0.0.0/104 is 10.0.0.0/8: a tie, so deny.
        let tie = PeerFilter::new(vec![net("::ffff:10.0.0.0/104")], vec![net("10.0.0.0/8")]);
        assert_eq!(tie.check_ip(ip("10.0.0.1")), Err(EXPLICIT_DENY));
        assert_eq!(tie.check_ip(ip("::ffff:10.0.0.1")), Err(EXPLICIT_DENY));

        // A mapped IPv6 entry alone opens the IPv4 range, both spellings.
        let mapped = PeerFilter::new(vec![net("::ffff:127.0.0.0/104")], vec![]);
        assert_eq!(mapped.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(mapped.check_ip(ip("::ffff:127.0.0.1")), Ok(()));
        // ... but not through another encoding's prefix.
        assert!(mapped.check_ip(ip("64:ff9b::127.0.0.1")).is_err());

        // A longer IPv4 deny beats it.
        let longer = PeerFilter::new(vec![net("::ffff:127.0.0.0/104")], vec![net("127.0.0.1/32")]);
        assert_eq!(longer.check_ip(ip("::ffff:127.0.0.1")), Err(EXPLICIT_DENY));
        assert_eq!(longer.check_ip(ip("127.0.0.2")), Ok(()));
    }

    #[test]
    fn broad_ipv6_allow_does_not_open_embedded_ipv4() {
        let filter = PeerFilter::new(vec![net("::/0")], vec![]);
        // The IPv6 internet, including ranges denied by default, is opened...
        assert_eq!(filter.check_ip(ip("fc00::1")), Ok(()));
        assert_eq!(filter.check_ip(ip("2606:4700::1")), Ok(()));
        // ... but IPv4 addresses in any spelling stay under the IPv4 rules.
        for (name, addr) in encodings("127.0.0.1".parse().unwrap()) {
            if name == "teredo" {
                continue; // Not decoded: ::/0 contains it and says allow.
            }
            assert!(filter.check_ip(addr).is_err(), "{name} ({addr})");
        }
        assert_eq!(filter.check_ip(ip("8.8.8.8")), Ok(()));

        // An entry inside the translation prefix does apply.
        let sixto4 = PeerFilter::new(vec![net("2002:7f00::/24")], vec![]);
        assert_eq!(sixto4.check_ip(ip("2002:7f00:1::1")), Ok(()));
        assert!(sixto4.check_ip(ip("2002:0a00:1::1")).is_err());
    }

    #[test]
    fn explicit_ipv6_entries() {
        let filter = PeerFilter::new(
            vec![net("fe80::/10"), net("fd00:1::/32")],
            vec![net("2001:db8::/32"), net("fd00:1:2::/48")],
        );
        assert_eq!(filter.check_ip(ip("fe80::1")), Ok(()));
        assert_eq!(filter.check_ip(ip("fd00:1::1")), Ok(()));
        assert_eq!(filter.check_ip(ip("fd00:1:2::1")), Err(EXPLICIT_DENY));
        assert!(filter.check_ip(ip("fd00:2::1")).is_err());
        assert_eq!(filter.check_ip(ip("2001:db8::1")), Err(EXPLICIT_DENY));
        assert_eq!(filter.check_ip(ip("2001:db9::1")), Ok(()));
    }

    #[test]
    fn host_bits_in_entries_are_ignored() {
        let filter = PeerFilter::new(vec![net("10.1.2.3/8")], vec![net("2001:db8::1/32")]);
        assert_eq!(filter.check_ip(ip("10.200.0.1")), Ok(()));
        assert_eq!(filter.check_ip(ip("2001:db8:ffff::1")), Err(EXPLICIT_DENY));
    }

    fn relay() -> PeerFilter {
        PeerFilter::new(vec![net("203.0.113.0/24")], vec![]).with_own(
            vec![
                ip("203.0.113.10"),
                ip("198.51.100.20"),
                ip("10.0.0.5"),
                ip("2001:db8::20"),
            ],
            vec![sock("203.0.113.10:3478"), sock("[2001:db8::10]:3478")],
            49152..=65535,
        )
    }

    #[test]
    fn listener_is_always_denied() {
        let filter = relay();
        for s in [
            "203.0.113.10:3478",
            "[::ffff:203.0.113.10]:3478",
            "[2002:cb00:710a::1]:3478",
            "[64:ff9b::203.0.113.10]:3478",
            "[2001:db8::10]:3478",
        ] {
            assert_eq!(filter.check_addr(sock(s)), Err(LISTENER), "{s}");
        }
        // Even with the operator explicitly allowing the listener's network.
        assert_eq!(filter.check_ip(ip("203.0.113.10")), Ok(()));
    }

    #[test]
    fn own_ips_allow_relay_ports_only() {
        let filter = relay();
        // Relay-to-relay on our own public addresses: allowed.
        for s in [
            "203.0.113.10:49152",
            "203.0.113.10:65535",
            "198.51.100.20:50000",
            "[::ffff:198.51.100.20]:50000",
            "[2001:db8::20]:50000",
            "[2001:db8::10]:50000",
        ] {
            assert_eq!(filter.check_addr(sock(s)), Ok(()), "{s}");
        }
        // Other ports on the relay host: denied, in every spelling.
        for s in [
            "203.0.113.10:22",
            "203.0.113.10:49151",
            "198.51.100.20:3478",
            "[::ffff:198.51.100.20]:22",
            "[2002:c633:6414::]:22",
            "[2001:db8::20]:9090",
            "[2001:db8::10]:443",
        ] {
            assert_eq!(filter.check_addr(sock(s)), Err(OWN_PORT), "{s}");
        }
        // CreatePermission has no port: own public IPs are fine.
        assert_eq!(filter.check_ip(ip("198.51.100.20")), Ok(()));
        assert_eq!(filter.check_ip(ip("2001:db8::20")), Ok(()));
        // A private own IP is still denied by the default list.
        assert!(filter.check_ip(ip("10.0.0.5")).is_err());
        assert!(filter.check_addr(sock("10.0.0.5:50000")).is_err());
        // Someone else in the allowed network, any port.
        assert_eq!(filter.check_addr(sock("203.0.113.11:3478")), Ok(()));
        assert_eq!(filter.check_addr(sock("203.0.113.11:22")), Ok(()));
    }

    #[test]
    fn wildcard_listener_port_is_denied_on_every_local_address() {
        let filter = PeerFilter::new(vec![net("127.0.0.0/8"), net("0.0.0.0/8")], vec![]).with_own(
            vec![ip("198.51.100.20")],
            vec![sock("0.0.0.0:3478")],
            50000..=50010,
        );
        for s in [
            "198.51.100.20:3478",
            "127.0.0.1:3478",
            "127.1.2.3:3478",
            "[::ffff:127.0.0.1]:3478",
            "0.0.0.0:3478",
        ] {
            assert_eq!(filter.check_addr(sock(s)), Err(LISTENER), "{s}");
        }
        // The explicit allow still opens loopback on other ports.
        assert_eq!(filter.check_addr(sock("127.0.0.1:8080")), Ok(()));
        // A remote host's port 3478 is not ours.
        assert_eq!(filter.check_addr(sock("8.8.8.8:3478")), Ok(()));
        // The wildcard itself is not an own IP.
        assert_eq!(filter.check_addr(sock("198.51.100.20:50005")), Ok(()));
        assert_eq!(
            filter.check_addr(sock("198.51.100.20:50011")),
            Err(OWN_PORT)
        );
    }

    #[test]
    fn loopback_listener_is_reachable_through_unspecified() {
        let filter = PeerFilter::new(vec![net("0.0.0.0/8"), net("127.0.0.0/8")], vec![]).with_own(
            vec![],
            vec![sock("127.0.0.1:3478")],
            50000..=50010,
        );
        assert_eq!(filter.check_addr(sock("0.0.0.0:3478")), Err(LISTENER));
        assert_eq!(filter.check_addr(sock("127.0.0.1:3478")), Err(LISTENER));
        assert_eq!(filter.check_addr(sock("127.0.0.1:50000")), Ok(()));
        // An explicitly allowed own loopback IP is not held to relay ports
        // (a single-host set-up: peers live on 127.0.0.1 too).
        assert_eq!(filter.check_addr(sock("127.0.0.1:50011")), Ok(()));
        assert_eq!(filter.check_addr(sock("127.0.0.1:3479")), Ok(()));
        // Without the explicit allow, loopback stays denied outright.
        let strict = PeerFilter::new(vec![], vec![]).with_own(
            vec![],
            vec![sock("127.0.0.1:3478")],
            50000..=50010,
        );
        assert!(strict.check_addr(sock("127.0.0.1:50000")).is_err());
    }

    #[test]
    fn port_zero_is_denied() {
        let filter = PeerFilter::default();
        assert_eq!(filter.check_addr(sock("8.8.8.8:0")), Err(PORT_ZERO));
        assert_eq!(filter.check_addr(sock("8.8.8.8:1")), Ok(()));
    }

    /// Whatever the IPv4 address and the IPv4 entries, every decoded
    /// encoding gets the plain address's verdict (Teredo is always denied).
    #[test]
    fn encodings_agree_with_plain_ipv4() {
        use rand::{Rng as _, SeedableRng as _};
        let filters = [
            PeerFilter::default(),
            PeerFilter::new(
                vec![net("10.0.0.0/9"), net("127.0.0.0/8"), net("100.64.0.0/10")],
                vec![net("8.0.0.0/7"), net("10.64.0.0/10"), net("203.0.113.0/24")],
            ),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(8656);
        for _ in 0..20_000 {
            let v4 = Ipv4Addr::from(rng.gen::<u32>());
            for filter in &filters {
                let plain = filter.check_ip(IpAddr::V4(v4)).is_ok();
                for (name, addr) in encodings(v4) {
                    let expected = plain && name != "teredo";
                    assert_eq!(filter.check_ip(addr).is_ok(), expected, "{v4} as {name}");
                }
            }
        }
    }

    #[test]
    fn view_decodes_each_encoding() {
        let v4 = u32::from(Ipv4Addr::new(192, 0, 2, 33));
        for (name, addr) in encodings(Ipv4Addr::new(192, 0, 2, 33)) {
            let view = View::of(addr);
            if name == "teredo" {
                assert_eq!(view.v4, None, "{name}");
            } else {
                assert_eq!(view.v4, Some(v4), "{name} ({addr})");
            }
        }
        assert_eq!(View::of(ip("2606:4700::1")).v4, None);
        assert_eq!(View::of(ip("::1")).v4, Some(1));
    }
}
