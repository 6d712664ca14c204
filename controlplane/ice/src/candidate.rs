//! Host candidates for the SDP answer (RFC 8445 §5.1.1.1, §5.1.1.3,
//! §5.1.2; RFC 8839 §5.1 for the `a=candidate` syntax).
//!
//! An ICE-lite agent gathers only host candidates (RFC 8445 §5.2): here,
//! uturn's UDP listeners, which media shares with TURN. Behind a 1:1 NAT
//! (`--external-ip PUBLIC[/PRIVATE]`) the candidate carries the public
//! address, as a host candidate: the NAT forwards it unchanged to the
//! listener, so to the peer it behaves like one (RFC 8445 §5.1.1.1 allows
//! this for addresses the agent knows are mapped 1:1).

use core::fmt;
use std::net::{IpAddr, SocketAddr};

/// Type preference of host candidates (RFC 8445 §5.1.2.2: 126).
pub const HOST_TYPE_PREFERENCE: u32 = 126;

/// Our single component: RTP and RTCP are multiplexed (RFC 8843 BUNDLE,
/// RFC 5761 rtcp-mux), so there is only component 1.
pub const COMPONENT_RTP: u16 = 1;

/// Highest local preference (RFC 8445 §5.1.2.1: 0–65535).
const MAX_LOCAL_PREFERENCE: u32 = 65_535;

/// One `--external-ip PUBLIC[/PRIVATE]` entry: datagrams to `public`
/// reach the host on `private` (on any address of its family when
/// `private` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalIp {
    /// The address peers send to.
    pub public: IpAddr,
    /// The local address the NAT forwards to, if pinned.
    pub private: Option<IpAddr>,
}

/// A host candidate, written as the value of an SDP `a=candidate`
/// attribute by its `Display` (`candidate:1 1 udp 2130706431 203.0.113.9 3478 typ host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Foundation (RFC 8445 §5.1.1.3): equal for candidates of the same
    /// type and base IP, so one number per advertised IP.
    pub foundation: u32,
    /// Component ID (always [`COMPONENT_RTP`]).
    pub component: u16,
    /// Priority (RFC 8445 §5.1.2.1).
    pub priority: u32,
    /// The address advertised to the peer.
    pub address: SocketAddr,
    /// The listener this candidate stands for (where checks arrive).
    pub base: SocketAddr,
}

impl Candidate {
    /// The whole SDP line, `a=candidate:…`, without line ending.
    pub fn sdp_line(&self) -> String {
        format!("a={self}")
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 8839 §5.1: connection-address is the bare IP (no brackets
        // for IPv6), then the port.
        write!(
            f,
            "candidate:{} {} udp {} {} {} typ host",
            self.foundation,
            self.component,
            self.priority,
            self.address.ip(),
            self.address.port()
        )
    }
}

/// The priority formula of RFC 8445 §5.1.2.1:
/// `2^24 × type preference + 2^8 × local preference + (256 − component ID)`.
pub const fn priority(type_preference: u32, local_preference: u32, component: u16) -> u32 {
    // Each term is in range for valid inputs (type ≤ 126, local ≤ 65535,
    // component 1–256); the masks and the clamp keep a bad input from
    // spilling into the next field.
    let component = if component == 0 {
        1
    } else if component > 256 {
        256
    } else {
        component as u32
    };
    ((type_preference & 0x7f) << 24) | ((local_preference & 0xffff) << 8) | (256 - component)
}

/// Host candidates for `listeners`, with `external` 1:1 NAT mappings
/// applied.
///
/// A listener whose IP has a mapping (or whose family has one without a
/// pinned private address, or which is a wildcard with a mapping for its
/// family) is advertised with the public IP. A wildcard listener
/// (`0.0.0.0`, `::`) without a mapping is skipped: it has no address a
/// peer could reach; the caller passes the concrete addresses instead.
/// Duplicates (two listeners that map to the same public address) are
/// advertised once. Candidates earlier in the list get a higher local
/// preference, so that every candidate has its own priority (RFC 8445
/// §5.1.2.1); the foundation is one number per advertised IP.
pub fn candidates(listeners: &[SocketAddr], external: &[ExternalIp]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    for &base in listeners {
        let Some(ip) = advertised_ip(base.ip(), external) else {
            continue;
        };
        let address = SocketAddr::new(ip, base.port());
        if out.iter().any(|c| c.address == address) {
            continue;
        }
        let index = match ips.iter().position(|known| *known == ip) {
            Some(i) => i,
            None => {
                ips.push(ip);
                ips.len() - 1
            }
        };
        // Past 65535 candidates every further one shares the lowest preference.
        let local_preference =
            MAX_LOCAL_PREFERENCE.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
        out.push(Candidate {
            foundation: u32::try_from(index + 1).unwrap_or(u32::MAX),
            component: COMPONENT_RTP,
            priority: priority(HOST_TYPE_PREFERENCE, local_preference, COMPONENT_RTP),
            address,
            base,
        });
    }
    out
}

fn advertised_ip(local: IpAddr, external: &[ExternalIp]) -> Option<IpAddr> {
    let same_family = |a: &IpAddr, b: &IpAddr| a.is_ipv4() == b.is_ipv4();
    let mapping = external.iter().find(|e| {
        same_family(&e.public, &local)
            && match e.private {
                Some(private) => private == local || local.is_unspecified(),
                None => true,
            }
    });
    match mapping {
        Some(e) => Some(e.public),
        None if local.is_unspecified() => None,
        None => Some(local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn priority_follows_rfc8445_formula() {
        // 126 × 2^24 + 65535 × 2^8 + 255: what browsers put on their first host candidate.
        assert_eq!(priority(126, 65_535, 1), 2_130_706_431);
        assert_eq!(priority(126, 65_534, 1), 2_130_706_175);
        assert_eq!(priority(0, 0, 256), 0);
        assert_eq!(priority(110, 1, 2), (110 << 24) + 256 + 254);
    }

    #[test]
    fn single_listener_is_one_host_candidate() {
        let c = candidates(&[addr("192.0.2.10:3478")], &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].to_string(),
            "candidate:1 1 udp 2130706431 192.0.2.10 3478 typ host"
        );
        assert_eq!(
            c[0].sdp_line(),
            "a=candidate:1 1 udp 2130706431 192.0.2.10 3478 typ host"
        );
        assert_eq!(c[0].base, addr("192.0.2.10:3478"));
    }

    #[test]
    fn external_ip_replaces_the_private_address() {
        let nat = [ExternalIp {
            public: "203.0.113.9".parse().unwrap(),
            private: Some("10.0.0.5".parse().unwrap()),
        }];
        let c = candidates(&[addr("10.0.0.5:3478"), addr("0.0.0.0:3479")], &nat);
        let lines: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "candidate:1 1 udp 2130706431 203.0.113.9 3478 typ host",
                "candidate:1 1 udp 2130706175 203.0.113.9 3479 typ host",
            ]
        );
        assert_eq!(c[1].base, addr("0.0.0.0:3479"));
        // A listener on another private address is not behind that mapping.
        let c = candidates(&[addr("10.0.0.6:3478")], &nat);
        assert_eq!(c[0].address, addr("10.0.0.6:3478"));
    }

    #[test]
    fn external_ip_without_private_maps_its_family_only() {
        let nat = [ExternalIp {
            public: "203.0.113.9".parse().unwrap(),
            private: None,
        }];
        let c = candidates(&[addr("10.0.0.5:3478"), addr("[2001:db8::5]:3478")], &nat);
        assert_eq!(c[0].address, addr("203.0.113.9:3478"));
        assert_eq!(c[1].address, addr("[2001:db8::5]:3478"));
        assert_eq!(
            c[1].to_string(),
            "candidate:2 1 udp 2130706175 2001:db8::5 3478 typ host"
        );
    }

    #[test]
    fn wildcard_without_mapping_is_skipped_and_duplicates_merge() {
        let nat = [ExternalIp {
            public: "203.0.113.9".parse().unwrap(),
            private: None,
        }];
        let c = candidates(
            &[
                addr("[::]:3478"),
                addr("10.0.0.5:3478"),
                addr("10.0.0.6:3478"),
            ],
            &nat,
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].address, addr("203.0.113.9:3478"));
        assert!(candidates(&[addr("0.0.0.0:3478")], &[]).is_empty());
    }

    #[test]
    fn each_ip_gets_its_own_foundation_and_each_candidate_its_own_priority() {
        let c = candidates(
            &[
                addr("192.0.2.1:3478"),
                addr("192.0.2.2:3478"),
                addr("192.0.2.1:5349"),
            ],
            &[],
        );
        let f: Vec<(u32, u32)> = c.iter().map(|c| (c.foundation, c.priority)).collect();
        assert_eq!(
            f,
            vec![
                (1, priority(126, 65_535, 1)),
                (2, priority(126, 65_534, 1)),
                (1, priority(126, 65_533, 1)),
            ]
        );
    }
}
