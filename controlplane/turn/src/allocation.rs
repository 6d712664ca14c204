//! What the server remembers about one allocation (RFC 8656 §2.2, §5):
//! its relayed transport addresses, permissions (§9) and channel bindings
//! (§12), each with its time-to-expiry.
//!
//! Plain data with small lookups; [`Server`](crate::Server) decides when
//! things are created, refreshed and expired. Permissions and channels live
//! in short vectors: a client talks to a handful of peers, a linear scan of
//! a few entries is faster than hashing, and the state of an allocation
//! stays small (see `tests::allocation_state_fits_in_1_kib`). The number of
//! entries is capped so one allocation cannot grow without bound.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::ports::IpFamily;
use crate::FiveTuple;

/// Most permissions one allocation may hold (a DoS bound; real clients use
/// a few). More are refused with 508 (Insufficient Capacity).
pub(crate) const MAX_PERMISSIONS: usize = 64;
/// Most channel bindings one allocation may hold, for the same reason.
pub(crate) const MAX_CHANNELS: usize = 64;

/// One allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) five_tuple: FiveTuple,
    /// The username that created it: later requests must use the same one
    /// (RFC 8656 §5, else 441).
    pub(crate) username: Box<str>,
    /// Relayed transport addresses (local bind addresses), by family.
    pub(crate) relay_v4: Option<SocketAddr>,
    pub(crate) relay_v6: Option<SocketAddr>,
    /// When the allocation expires.
    pub(crate) expires: Instant,
    /// The deadline of its one live timer entry (see `timer.rs`): never
    /// later than [`Allocation::next_deadline`]. When a new, earlier
    /// deadline appears (a permission, a shortening Refresh) a new entry is
    /// pushed and the old one becomes stale.
    pub(crate) scheduled: Instant,
    pub(crate) permissions: Vec<Permission>,
    pub(crate) channels: Vec<ChannelBinding>,
    /// Channels that expired less than 5 minutes ago (RFC 8656 §12).
    pub(crate) held: Vec<ChannelHold>,
}

/// A permission (RFC 8656 §9): peers with this IP may talk to the client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permission {
    pub(crate) peer: IpAddr,
    pub(crate) expires: Instant,
}

/// A channel binding (RFC 8656 §12).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelBinding {
    pub(crate) number: u16,
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

/// An expired channel binding whose number and peer may not be bound to
/// anything else until `until` (5 minutes after expiry; see
/// `server::CHANNEL_REUSE_HOLD`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelHold {
    pub(crate) number: u16,
    pub(crate) peer: SocketAddr,
    pub(crate) until: Instant,
}

/// Why a ChannelBind cannot take this (number, peer) pair (RFC 8656 §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelConflict {
    /// The number is bound (or held) for another peer.
    NumberInUse,
    /// The peer is bound (or held) with another number.
    PeerInUse,
}

impl Allocation {
    /// The earliest moment something in this allocation ends: the
    /// allocation itself, a permission, a channel or a channel hold. The
    /// server keeps one heap entry per allocation at this time rather than
    /// one per permission and channel, which keeps the heap (and the state
    /// per allocation) small; the vectors scanned are short and capped.
    pub(crate) fn next_deadline(&self) -> Instant {
        let permissions = self.permissions.iter().map(|p| p.expires);
        let channels = self.channels.iter().map(|c| c.expires);
        let held = self.held.iter().map(|h| h.until);
        permissions
            .chain(channels)
            .chain(held)
            .fold(self.expires, Instant::min)
    }

    /// The relayed address of `family`, if the allocation has one.
    pub(crate) fn relay(&self, family: IpFamily) -> Option<SocketAddr> {
        match family {
            IpFamily::V4 => self.relay_v4,
            IpFamily::V6 => self.relay_v6,
        }
    }

    /// All relayed addresses (one or two).
    pub(crate) fn relays(&self) -> impl Iterator<Item = SocketAddr> {
        self.relay_v4.into_iter().chain(self.relay_v6)
    }

    /// Whether a peer of this IP's family can be reached (RFC 8656 §10.2,
    /// §12.2: else 443).
    pub(crate) fn serves(&self, peer: IpAddr) -> bool {
        self.relay(family_of(peer)).is_some()
    }

    pub(crate) fn permission(&self, peer: IpAddr) -> Option<&Permission> {
        self.permissions.iter().find(|p| p.peer == peer)
    }

    /// Installs or refreshes the permission for `peer`. Returns true if it
    /// is new. The caller checked the cap.
    pub(crate) fn install_permission(&mut self, peer: IpAddr, expires: Instant) -> bool {
        match self.permissions.iter_mut().find(|p| p.peer == peer) {
            Some(p) => {
                p.expires = p.expires.max(expires);
                false
            }
            None => {
                self.permissions.push(Permission { peer, expires });
                true
            }
        }
    }

    pub(crate) fn channel(&self, number: u16) -> Option<&ChannelBinding> {
        self.channels.iter().find(|c| c.number == number)
    }

    /// Whether `number` may be bound to `peer` now (RFC 8656 §12.2): the
    /// number is not bound to another peer, the peer not to another number,
    /// and neither is held by a binding that expired in the last 5 minutes.
    pub(crate) fn check_channel(
        &self,
        number: u16,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), ChannelConflict> {
        for c in &self.channels {
            if c.number == number && c.peer != peer {
                return Err(ChannelConflict::NumberInUse);
            }
            if c.peer == peer && c.number != number {
                return Err(ChannelConflict::PeerInUse);
            }
        }
        for h in self.held.iter().filter(|h| h.until > now) {
            if h.number == number && h.peer != peer {
                return Err(ChannelConflict::NumberInUse);
            }
            if h.peer == peer && h.number != number {
                return Err(ChannelConflict::PeerInUse);
            }
        }
        Ok(())
    }

    /// Binds or refreshes `number` → `peer` (checked with `check_channel`).
    /// Returns true if the binding is new.
    pub(crate) fn bind_channel(&mut self, number: u16, peer: SocketAddr, expires: Instant) -> bool {
        match self.channels.iter_mut().find(|c| c.number == number) {
            Some(c) => {
                c.expires = c.expires.max(expires);
                false
            }
            None => {
                // A re-bind of a held pair ends its hold: the binding is live again.
                self.held.retain(|h| h.number != number);
                self.channels.push(ChannelBinding {
                    number,
                    peer,
                    expires,
                });
                true
            }
        }
    }
}

/// The relay family an IP address belongs to.
pub(crate) fn family_of(ip: IpAddr) -> IpFamily {
    match ip {
        IpAddr::V4(_) => IpFamily::V4,
        IpAddr::V6(_) => IpFamily::V6,
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;
    use std::time::Duration;

    use super::*;
    use crate::AllocationId;

    fn allocation(now: Instant) -> Allocation {
        Allocation {
            five_tuple: FiveTuple {
                client: "192.0.2.1:5000".parse().unwrap(),
                server: "198.51.100.1:3478".parse().unwrap(),
            },
            username: "alice".into(),
            relay_v4: Some("198.51.100.1:50000".parse().unwrap()),
            relay_v6: None,
            expires: now + Duration::from_secs(600),
            scheduled: now + Duration::from_secs(600),
            permissions: Vec::new(),
            channels: Vec::new(),
            held: Vec::new(),
        }
    }

    #[test]
    fn channel_conflicts() {
        let now = Instant::now();
        let mut a = allocation(now);
        let p1: SocketAddr = "203.0.113.1:1000".parse().unwrap();
        let p2: SocketAddr = "203.0.113.2:1000".parse().unwrap();
        let later = now + Duration::from_secs(600);
        assert_eq!(a.check_channel(0x4000, p1, now), Ok(()));
        assert!(a.bind_channel(0x4000, p1, later));
        assert!(!a.bind_channel(0x4000, p1, later));
        assert_eq!(a.check_channel(0x4000, p1, now), Ok(()));
        assert_eq!(
            a.check_channel(0x4000, p2, now),
            Err(ChannelConflict::NumberInUse)
        );
        assert_eq!(
            a.check_channel(0x4001, p1, now),
            Err(ChannelConflict::PeerInUse)
        );
        assert_eq!(a.check_channel(0x4001, p2, now), Ok(()));

        // Expired and held: same rules until the hold ends.
        a.channels.clear();
        a.held.push(ChannelHold {
            number: 0x4000,
            peer: p1,
            until: now + Duration::from_secs(300),
        });
        assert_eq!(
            a.check_channel(0x4000, p2, now),
            Err(ChannelConflict::NumberInUse)
        );
        assert_eq!(
            a.check_channel(0x4001, p1, now),
            Err(ChannelConflict::PeerInUse)
        );
        assert_eq!(a.check_channel(0x4000, p1, now), Ok(()));
        assert_eq!(
            a.check_channel(0x4000, p2, now + Duration::from_secs(300)),
            Ok(())
        );
    }

    #[test]
    fn permission_install_and_refresh() {
        let now = Instant::now();
        let mut a = allocation(now);
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(a.install_permission(ip, now + Duration::from_secs(300)));
        assert!(!a.install_permission(ip, now + Duration::from_secs(400)));
        assert_eq!(
            a.permission(ip).unwrap().expires,
            now + Duration::from_secs(400)
        );
        assert!(a.serves(ip));
        assert_eq!(a.next_deadline(), now + Duration::from_secs(400));
        a.channels.push(ChannelBinding {
            number: 0x4000,
            peer: "203.0.113.1:9".parse().unwrap(),
            expires: now + Duration::from_secs(100),
        });
        assert_eq!(a.next_deadline(), now + Duration::from_secs(100));
        assert!(!a.serves("2001:db8::1".parse().unwrap()));
    }

    /// The state kept per allocation, excluding sockets: the struct, its
    /// username, its entries in the server's two maps (with hashbrown's
    /// control byte and 7/8 maximum load), its heap entry, and its
    /// permissions and channels, for a busy WebRTC allocation (4
    /// permissions, 4 channels, 2 channels held) — must stay within 1 KiB.
    /// Measured at the time of writing: 936 bytes (x86_64).
    #[test]
    fn allocation_state_fits_in_1_kib() {
        use crate::server::TimerKey;
        // hashbrown: one control byte per bucket, buckets at most 7/8 full.
        let map_entry = (size_of::<(AllocationId, Allocation)>() + 1) * 8 / 7;
        let index_entry = (size_of::<(FiveTuple, AllocationId)>() + 1) * 8 / 7;
        let timer_entry = size_of::<(Instant, TimerKey)>();
        // "alice@example.org"-sized names; the allocator rounds up.
        let username = 32;
        let permissions = 4 * size_of::<Permission>();
        let channels = 4 * size_of::<ChannelBinding>();
        let held = 2 * size_of::<ChannelHold>();
        let total =
            map_entry + index_entry + timer_entry + username + permissions + channels + held;
        eprintln!(
            "allocation {} B, permission {} B, channel {} B, hold {} B, timer entry {} B: total {total} B",
            size_of::<Allocation>(),
            size_of::<Permission>(),
            size_of::<ChannelBinding>(),
            size_of::<ChannelHold>(),
            timer_entry
        );
        assert!(total <= 1024, "per-allocation state is {total} bytes");
    }
}
