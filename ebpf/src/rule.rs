//! The map records shared with the C program (xdp/uturn.c), as byte arrays
//! with the exact layout of its structs, and the Rust forms they encode.
//!
//! Both families use 16-byte addresses; IPv4 is stored IPv4-mapped
//! (`::ffff:a.b.c.d`). Ports and channel numbers are in network byte order,
//! as the program compares them against packet bytes without converting.
//!
//! ```text
//! client_key  (40 bytes): client_addr[16] listener_addr[16] client_port listener_port channel pad
//! relay_tuple (36 bytes): peer_addr[16]   relay_addr[16]    peer_port   relay_port
//! rule_stats  (40 bytes, per CPU): packets[2] bytes[2] last_seen_ns   (u64, host order)
//! ```
//!
//! `to_peer: client_key → relay_tuple`, `to_client: relay_tuple → client_key`,
//! `rule_stats: client_key → rule_stats`.

use std::net::{IpAddr, SocketAddr};

/// Size of `struct client_key`.
pub(crate) const CLIENT_KEY_LEN: usize = 40;
/// Size of `struct relay_tuple`.
pub(crate) const RELAY_TUPLE_LEN: usize = 36;
/// `struct rule_stats` as u64 words: packets[2], bytes[2], last_seen_ns.
pub(crate) const STATS_WORDS: usize = 5;

pub(crate) type ClientKey = [u8; CLIENT_KEY_LEN];
pub(crate) type RelayTuple = [u8; RELAY_TUPLE_LEN];
pub(crate) type Stats = [u64; STATS_WORDS];

/// One offloaded channel binding (RFC 8656 §12): both directions of it.
///
/// `listener` is the server side of the allocation's 5-tuple (where the
/// client sends, and the source of what it receives); `relay` is the
/// allocation's relay address of the peer's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelRule {
    pub client: SocketAddr,
    pub listener: SocketAddr,
    pub channel: u16,
    pub peer: SocketAddr,
    pub relay: SocketAddr,
}

/// Why a channel binding cannot be handled in XDP (userspace relays it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotOffloadable {
    /// The program rewrites headers in place; it does not translate between
    /// IPv4 and IPv6 (RFC 8656 §7.2 lets a client over IPv4 relay to IPv6).
    #[error("client and peer are of different address families")]
    MixedFamilies,
    /// A wildcard listener: the program would not know the source address of
    /// the packets it sends to the client.
    #[error("the listener address is unspecified")]
    WildcardListener,
}

impl ChannelRule {
    /// Checks that the program can serve this binding.
    pub fn check(&self) -> Result<(), NotOffloadable> {
        let v4 = self.client.is_ipv4();
        if self.listener.is_ipv4() != v4 || self.peer.is_ipv4() != v4 || self.relay.is_ipv4() != v4
        {
            return Err(NotOffloadable::MixedFamilies);
        }
        if self.listener.ip().is_unspecified() || self.relay.ip().is_unspecified() {
            return Err(NotOffloadable::WildcardListener);
        }
        Ok(())
    }

    /// The client side key (`struct client_key`).
    pub(crate) fn client_key(&self) -> ClientKey {
        let mut k = [0u8; CLIENT_KEY_LEN];
        k[0..16].copy_from_slice(&mapped(self.client.ip()));
        k[16..32].copy_from_slice(&mapped(self.listener.ip()));
        k[32..34].copy_from_slice(&self.client.port().to_be_bytes());
        k[34..36].copy_from_slice(&self.listener.port().to_be_bytes());
        k[36..38].copy_from_slice(&self.channel.to_be_bytes());
        k
    }

    /// The peer side key (`struct relay_tuple`).
    pub(crate) fn relay_tuple(&self) -> RelayTuple {
        let mut t = [0u8; RELAY_TUPLE_LEN];
        t[0..16].copy_from_slice(&mapped(self.peer.ip()));
        t[16..32].copy_from_slice(&mapped(self.relay.ip()));
        t[32..34].copy_from_slice(&self.peer.port().to_be_bytes());
        t[34..36].copy_from_slice(&self.relay.port().to_be_bytes());
        t
    }
}

/// 16-byte form of an address: IPv6 as is, IPv4 mapped.
fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Inverse of [`mapped`], for reading maps back (tests, diagnostics).
#[cfg(test)]
fn unmapped(bytes: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// Packets and bytes in one direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub packets: u64,
    /// Application payload bytes (the ChannelData payload), as the userspace
    /// counters count them.
    pub bytes: u64,
}

/// What XDP forwarded for one rule, or for all of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleCounters {
    pub to_peer: Flow,
    pub to_client: Flow,
    /// Latest `CLOCK_MONOTONIC` nanoseconds (the kernel's `bpf_ktime_get_ns`)
    /// at which XDP forwarded a packet of the rule; 0 if never.
    pub last_seen_ns: u64,
}

impl RuleCounters {
    /// Adds one CPU's `struct rule_stats`.
    pub(crate) fn add_cpu(&mut self, s: &Stats) {
        let [p_peer, p_client, b_peer, b_client, seen] = *s;
        self.to_peer.packets = self.to_peer.packets.wrapping_add(p_peer);
        self.to_client.packets = self.to_client.packets.wrapping_add(p_client);
        self.to_peer.bytes = self.to_peer.bytes.wrapping_add(b_peer);
        self.to_client.bytes = self.to_client.bytes.wrapping_add(b_client);
        self.last_seen_ns = self.last_seen_ns.max(seen);
    }

    /// Adds another total (a rule's, into the sum of all).
    pub fn add(&mut self, other: &RuleCounters) {
        self.add_cpu(&[
            other.to_peer.packets,
            other.to_client.packets,
            other.to_peer.bytes,
            other.to_client.bytes,
            other.last_seen_ns,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ChannelRule {
        ChannelRule {
            client: "10.77.0.2:40000".parse().unwrap(),
            listener: "10.77.0.1:3478".parse().unwrap(),
            channel: 0x4001,
            peer: "10.77.0.3:5000".parse().unwrap(),
            relay: "10.77.0.1:50002".parse().unwrap(),
        }
    }

    #[test]
    fn client_key_layout_matches_the_c_struct() {
        let k = rule().client_key();
        let expected: [u8; CLIENT_KEY_LEN] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2, // client_addr
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1, // listener_addr
            0x9c, 0x40, // client_port 40000
            0x0d, 0x96, // listener_port 3478
            0x40, 0x01, // channel
            0, 0, // pad
        ];
        assert_eq!(k, expected);
    }

    #[test]
    fn relay_tuple_layout_matches_the_c_struct() {
        let t = rule().relay_tuple();
        assert_eq!(unmapped(t[0..16].try_into().unwrap()), rule().peer.ip());
        assert_eq!(unmapped(t[16..32].try_into().unwrap()), rule().relay.ip());
        assert_eq!(&t[32..34], &5000u16.to_be_bytes());
        assert_eq!(&t[34..36], &50002u16.to_be_bytes());
    }

    #[test]
    fn ipv6_addresses_are_stored_as_is() {
        let r = ChannelRule {
            client: "[fd00::2]:1".parse().unwrap(),
            listener: "[fd00::1]:3478".parse().unwrap(),
            channel: 0x4fff,
            peer: "[fd00::3]:2".parse().unwrap(),
            relay: "[fd00::1]:50000".parse().unwrap(),
        };
        assert_eq!(r.check(), Ok(()));
        let k = r.client_key();
        assert_eq!(unmapped(k[0..16].try_into().unwrap()), r.client.ip());
        assert_eq!(&k[36..38], &[0x4f, 0xff]);
    }

    #[test]
    fn mixed_families_and_wildcards_are_not_offloaded() {
        let mut r = rule();
        r.peer = "[fd00::3]:2".parse().unwrap();
        assert_eq!(r.check(), Err(NotOffloadable::MixedFamilies));
        let mut r = rule();
        r.listener = "0.0.0.0:3478".parse().unwrap();
        assert_eq!(r.check(), Err(NotOffloadable::WildcardListener));
        assert_eq!(rule().check(), Ok(()));
    }

    #[test]
    fn counters_sum_cpus_and_keep_the_latest_time() {
        let mut c = RuleCounters::default();
        c.add_cpu(&[1, 2, 100, 200, 7]);
        c.add_cpu(&[3, 0, 300, 0, 5]);
        assert_eq!(
            c.to_peer,
            Flow {
                packets: 4,
                bytes: 400
            }
        );
        assert_eq!(
            c.to_client,
            Flow {
                packets: 2,
                bytes: 200
            }
        );
        assert_eq!(c.last_seen_ns, 7);
    }
}
