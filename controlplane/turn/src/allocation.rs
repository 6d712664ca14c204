//! What the server remembers about one allocation (RFC 8656 §2.2, §5):
//! its relayed transport addresses, permissions (§9) and channel bindings
//! (§12), each with its time-to-expiry.
//!
//! Plain data with small lookups; [`Server`](crate::Server) decides when
//! things are created, refreshed and expired. Permissions and channels live
//! in short vectors, the first of each in place: a client talks to a
//! handful of peers, a linear scan of a few entries is faster than hashing,
//! and the state of an allocation stays small (see
//! `tests::allocation_state_fits_in_1_kib` and docs/memory.md). The number
//! of entries is capped so one allocation cannot grow without bound.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use smallvec::SmallVec;

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
    /// Relayed transport addresses (local bind addresses), by family. Kept
    /// without the IPv6 flow label and scope (a relay address never has
    /// them): 8 and 20 bytes instead of 32 each.
    relay_v4: Option<SocketAddrV4>,
    relay_v6: Option<(Ipv6Addr, u16)>,
    /// When the allocation expires.
    pub(crate) expires: Instant,
    /// The deadline of its one live timer entry (see `timer.rs`): never
    /// later than [`Allocation::next_deadline`]. When a new, earlier
    /// deadline appears (a permission, a shortening Refresh) a new entry is
    /// pushed and the old one becomes stale.
    pub(crate) scheduled: Instant,
    /// The first permission and channel are kept in place (most
    /// allocations have one of each); more grow one entry at a time
    /// (`push_exact`), where `Vec`'s first growth to 4 would triple them.
    pub(crate) permissions: SmallVec<[Permission; 1]>,
    pub(crate) channels: SmallVec<[ChannelBinding; 1]>,
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
    /// A new allocation with no permissions or channels yet.
    pub(crate) fn new(
        five_tuple: FiveTuple,
        username: Box<str>,
        relays: impl IntoIterator<Item = SocketAddr>,
        expires: Instant,
    ) -> Self {
        let mut allocation = Allocation {
            five_tuple,
            username,
            relay_v4: None,
            relay_v6: None,
            expires,
            scheduled: expires,
            permissions: SmallVec::new(),
            channels: SmallVec::new(),
            held: Vec::new(),
        };
        for relay in relays {
            match relay {
                SocketAddr::V4(v4) => allocation.relay_v4 = Some(v4),
                SocketAddr::V6(v6) => allocation.relay_v6 = Some((*v6.ip(), v6.port())),
            }
        }
        allocation
    }

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
            IpFamily::V4 => self.relay_v4.map(SocketAddr::V4),
            IpFamily::V6 => self
                .relay_v6
                .map(|(ip, port)| SocketAddr::new(IpAddr::V6(ip), port)),
        }
    }

    /// All relayed addresses (one or two).
    pub(crate) fn relays(&self) -> impl Iterator<Item = SocketAddr> {
        self.relay(IpFamily::V4)
            .into_iter()
            .chain(self.relay(IpFamily::V6))
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
                push_exact(&mut self.permissions, Permission { peer, expires });
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
                push_exact(
                    &mut self.channels,
                    ChannelBinding {
                        number,
                        peer,
                        expires,
                    },
                );
                true
            }
        }
    }
}

/// Pushes `item`, growing `v` by exactly one slot when it is full. The
/// vectors of an allocation are short and capped (`MAX_PERMISSIONS`,
/// `MAX_CHANNELS`) and change on the control path only, so the extra
/// reallocations cost nothing that matters, while `Vec::push`'s doubling
/// (4 slots at first) would leave most of the memory of a typical
/// one-permission, one-channel allocation unused.
pub(crate) fn push_exact<V: Exact>(v: &mut V, item: V::Item) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(item);
}

/// The vectors `push_exact` works on.
pub(crate) trait Exact {
    type Item;
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn reserve_exact(&mut self, additional: usize);
    fn push(&mut self, item: Self::Item);
}

impl<T> Exact for Vec<T> {
    type Item = T;
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn reserve_exact(&mut self, additional: usize) {
        Vec::reserve_exact(self, additional);
    }
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
}

impl<A: smallvec::Array> Exact for SmallVec<A> {
    type Item = A::Item;
    fn len(&self) -> usize {
        SmallVec::len(self)
    }
    fn capacity(&self) -> usize {
        SmallVec::capacity(self)
    }
    fn reserve_exact(&mut self, additional: usize) {
        SmallVec::reserve_exact(self, additional);
    }
    fn push(&mut self, item: A::Item) {
        SmallVec::push(self, item);
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
        Allocation::new(
            FiveTuple {
                client: "192.0.2.1:5000".parse().unwrap(),
                server: "198.51.100.1:3478".parse().unwrap(),
            },
            "alice".into(),
            ["198.51.100.1:50000".parse().unwrap()],
            now + Duration::from_secs(600),
        )
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

    /// glibc malloc's block for `n` requested bytes (x86_64: an 8-byte
    /// header, 16-byte granularity, 32 bytes at least).
    fn heap_block(n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (n + 8).div_ceil(16).max(2) * 16
        }
    }

    /// Bytes per entry of a hashbrown map: the entry plus one control byte,
    /// times 3/2 because a table is between 7/16 and 7/8 full (it doubles
    /// at 7/8), about 2/3 on average.
    fn map_bytes<T>() -> usize {
        (size_of::<T>() + 1) * 3 / 2
    }

    /// The control plane's state per allocation, in the shape the
    /// end-to-end benchmark (`bench/scripts/memory-per-allocation.sh`)
    /// creates: one permission and one channel. Counted: the boxed
    /// `Allocation` and its entry in `Server::allocations`, its id in the 5-tuple index
    /// `Server::by_five_tuple`, its timer heap entry (a doubling vector,
    /// 3/4 full on average), and its username. The one permission and
    /// one channel live inside the `Allocation` (no heap block of their own).
    ///
    /// Not counted here: the relay socket (kernel memory), the dataplane's
    /// forwarding table (its own test, `table::tests::
    /// forwarding_state_fits_in_its_share`), the shared port pool and quota
    /// ledger, and responses in the retransmission cache (gone after 40 s).
    /// The control plane's share of the 1 KiB budget is 448 bytes (the
    /// table's is 480, the I/O backend's socket slot about 64); the
    /// benchmark measures the sum. docs/memory.md has the breakdown.
    #[test]
    fn allocation_state_fits_in_1_kib() {
        use crate::server::TimerKey;
        // `Server::allocations` holds it boxed.
        let map_entry =
            map_bytes::<(AllocationId, Box<Allocation>)>() + heap_block(size_of::<Allocation>());
        // The 5-tuple index holds only the id (a `HashTable`).
        let index_entry = map_bytes::<AllocationId>();
        let timer_entry = size_of::<(Instant, TimerKey)>() * 4 / 3;
        // "alice@example.org"-sized names.
        let username = heap_block(17);
        let mut a = allocation(Instant::now());
        let later = Instant::now() + Duration::from_secs(300);
        a.install_permission("203.0.113.1".parse().unwrap(), later);
        a.bind_channel(0x4000, "203.0.113.1:9".parse().unwrap(), later);
        // Both in place: no heap block.
        assert!(!a.permissions.spilled() && !a.channels.spilled());
        assert_eq!((a.permissions.len(), a.channels.len()), (1, 1));
        let (permissions, channels) = (0, 0);
        let total = map_entry + index_entry + timer_entry + username + permissions + channels;
        eprintln!(
            "control plane per allocation: allocation entry {map_entry} B ({} B struct), \
             5-tuple index {index_entry} B, timer {timer_entry} B, username {username} B, \
             permission and channel heap {} B: total {total} B",
            size_of::<Allocation>(),
            permissions + channels,
        );
        assert!(
            total <= 448,
            "control-plane state per allocation is {total} bytes"
        );
    }
}
