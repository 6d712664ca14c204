//! One worker's forwarding table: the rules its control plane installed
//! ([`RuleChange`]), kept in the shape the hot path asks for them.
//!
//! The table answers three questions per datagram, each with at most two hash
//! look-ups and no allocation:
//!
//! - ChannelData from a client (RFC 8656 §12.6): which relay socket and peer
//!   does (listener, client, channel) go to? ([`Table::channel_to_peer`])
//! - Send indication from a client (RFC 8656 §11.2): does the client have an
//!   allocation, a permission for the peer's IP (§9), and a relay socket of
//!   the peer's family? ([`Table::send_to_peer`])
//! - A datagram from a peer on a relay socket (RFC 8656 §11.3, §12.7): is the
//!   peer permitted, and is a channel bound to it? ([`Table::peer_to_client`])
//!
//! Lifetimes are not kept here: the control plane emits the `Remove*` rules
//! when permissions, channels and allocations expire, so nothing here reads a
//! clock. ChannelData from the client is forwarded on the channel binding
//! alone, as RFC 8656 §12.6 says; the permission is checked for datagrams
//! coming back from the peer (§11.3).
//!
//! Hashing: client and peer addresses are chosen by whoever sends to us, so the
//! maps keyed by them use foldhash keyed with a per-table seed from the OS
//! random source. A fast keyed hash keeps look-ups at a few nanoseconds while
//! an attacker who cannot learn the seed cannot precompute colliding keys
//! (HashDoS). Permissions are few per allocation, so they live in a small
//! vector scanned linearly; an allocation with more than
//! [`INLINE_PERMISSIONS`] of them spills into a keyed set so a client that
//! installs thousands of permissions cannot make every look-up slow. Channels
//! towards the client are found the same way (scan up to
//! [`INLINE_CHANNELS`], then a keyed map).
//!
//! Memory: the table holds one entry per allocation in `slots`, `by_id` and
//! `by_client`, one per relay socket in `relay_ids` and `relays`, and one per
//! channel in `channels_out`; the per-allocation vectors grow one entry at a
//! time. See docs/memory.md for the sizes and how they are measured.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use smallvec::SmallVec;
use uturn_turn::{AllocationId, FiveTuple, RuleChange};

use crate::io::SocketId;

/// Permissions kept in an allocation's vector before they spill into the
/// table-wide set. Linear search over this many IPs is as fast as one hash.
pub const INLINE_PERMISSIONS: usize = 8;
/// Channels scanned in an allocation's vector for a peer's datagram before
/// they spill into the table-wide `(relay, peer)` map.
pub const INLINE_CHANNELS: usize = 8;

type Keyed = SeedableRandomState;
type Map<K, V> = HashMap<K, V, Keyed>;
type Set<K> = HashSet<K, Keyed>;

/// Where a client's datagram goes: out of `relay`, to `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToPeer {
    /// The relay socket (of the peer's address family).
    pub relay: SocketId,
    /// The peer's transport address.
    pub peer: SocketAddr,
}

/// Where a peer's datagram goes: out of `listener`, to `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToClient {
    /// The listener socket of the allocation's 5-tuple.
    pub listener: SocketId,
    /// The client's transport address.
    pub client: SocketAddr,
    /// The channel bound to the peer, if any: ChannelData; else a Data indication.
    pub channel: Option<u16>,
}

/// Why a Send indication cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefused {
    /// The 5-tuple has no allocation.
    NoAllocation,
    /// No permission for the peer's IP (RFC 8656 §9).
    NoPermission,
    /// The allocation has no relay socket of the peer's family (RFC 8656 §11.2).
    FamilyMismatch,
}

/// Why a peer's datagram cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefused {
    /// The socket is not a relay socket of a live allocation.
    NoAllocation,
    /// The peer's IP has no permission (RFC 8656 §11.3: silently discarded).
    NoPermission,
}

/// What kind of socket a datagram arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRole {
    /// A listener: the datagram comes from a client.
    Listener,
    /// A relay socket: the datagram comes from a peer.
    Relay,
    /// Neither (already closed, or never known).
    Unknown,
}

#[derive(Debug)]
struct Allocation {
    id: AllocationId,
    listener: u32,
    client: SocketAddr,
    relay_v4: Option<u32>,
    relay_v6: Option<u32>,
    /// Every permitted peer IP; when `spilled`, also in `Table::permissions`.
    /// The first is kept in place (no pointer to chase, no heap block).
    permissions: SmallVec<[IpAddr; 1]>,
    spilled: bool,
    /// Every bound channel; when `channels_spilled`, also in
    /// `Table::channels_in`. The first is kept in place.
    channels: SmallVec<[(u16, SocketAddr); 1]>,
    channels_spilled: bool,
}

impl Allocation {
    fn relay_for(&self, peer: SocketAddr) -> Option<u32> {
        match peer {
            SocketAddr::V4(_) => self.relay_v4,
            SocketAddr::V6(_) => self.relay_v6,
        }
    }
}

/// A relay socket that is bound, and the allocation using it (if any yet:
/// `OpenRelay` is answered before `AddAllocation` arrives). Its address is
/// the key of `Table::relay_ids`, not repeated here.
#[derive(Debug, Clone, Copy)]
struct RelaySocket {
    slot: Option<u32>,
}

/// The forwarding table of one worker.
#[derive(Debug)]
pub struct Table {
    /// Listener sockets: a handful, scanned linearly.
    listeners: Vec<(SocketAddr, u32)>,
    /// Bound relay sockets by address (control path: rules name relays by address).
    relay_ids: Map<SocketAddr, u32>,
    /// Bound relay sockets by id (hot path: peer datagrams).
    relays: Map<u32, RelaySocket>,
    /// Allocations, indexed by slot; freed slots are reused.
    slots: Vec<Option<Allocation>>,
    free: Vec<u32>,
    by_id: Map<AllocationId, u32>,
    /// (listener, client) → allocation slot.
    by_client: Map<(u32, SocketAddr), u32>,
    /// (listener, client, channel) → where ChannelData goes.
    channels_out: Map<(u32, SocketAddr, u16), (u32, SocketAddr)>,
    /// (relay, peer) → channel bound to that peer, for allocations whose
    /// channels spilled.
    channels_in: Map<(u32, SocketAddr), u16>,
    /// (slot, peer IP) for allocations whose permissions spilled.
    permissions: Set<(u32, IpAddr)>,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty table whose hash maps are keyed with a seed from the OS
    /// random source.
    pub fn new() -> Self {
        Self::with_seed(rand::random())
    }

    /// An empty table keyed with `seed` (tests and benchmarks).
    pub fn with_seed(seed: u64) -> Self {
        let keyed = SeedableRandomState::with_seed(seed, SharedSeed::global_random());
        Self {
            listeners: Vec::new(),
            relay_ids: Map::with_hasher(keyed.clone()),
            relays: Map::with_hasher(keyed.clone()),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: Map::with_hasher(keyed.clone()),
            by_client: Map::with_hasher(keyed.clone()),
            channels_out: Map::with_hasher(keyed.clone()),
            channels_in: Map::with_hasher(keyed.clone()),
            permissions: Set::with_hasher(keyed),
        }
    }

    // ---- sockets (called by the worker) ---------------------------------

    /// Registers a listener socket; allocations name it by address.
    pub fn add_listener(&mut self, addr: SocketAddr, id: SocketId) {
        self.listeners.retain(|(a, _)| *a != addr);
        self.listeners.push((addr, id.0));
    }

    /// The listener socket bound to `addr` (where a `Transmit` leaves from).
    pub fn listener(&self, addr: SocketAddr) -> Option<SocketId> {
        self.listeners
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, id)| SocketId(*id))
    }

    /// Registers a relay socket bound for `RuleChange::OpenRelay`.
    pub fn add_relay(&mut self, addr: SocketAddr, id: SocketId) {
        if let Some(old) = self.relay_ids.insert(addr, id.0) {
            // A relay address is bound once at a time; a second bind means the
            // first socket is gone. Forget it so its id cannot be reached.
            self.relays.remove(&old);
        }
        self.relays.insert(id.0, RelaySocket { slot: None });
    }

    /// Whether `id` is one of the listeners (a handful: a linear scan).
    #[inline]
    pub fn is_listener(&self, id: SocketId) -> bool {
        self.listeners.iter().any(|(_, l)| *l == id.0)
    }

    /// What kind of socket `id` is.
    pub fn role(&self, id: SocketId) -> SocketRole {
        if self.is_listener(id) {
            SocketRole::Listener
        } else if self.relays.contains_key(&id.0) {
            SocketRole::Relay
        } else {
            SocketRole::Unknown
        }
    }

    // ---- rule changes ----------------------------------------------------

    /// Applies one rule change. Returns the relay socket to close for
    /// `CloseRelay`. `OpenRelay` changes nothing here: the worker binds the
    /// socket and calls [`Table::add_relay`].
    pub fn apply(&mut self, change: &RuleChange) -> Option<SocketId> {
        match change {
            RuleChange::OpenRelay { .. } => None,
            RuleChange::CloseRelay { relay } => self.close_relay(*relay),
            RuleChange::AddAllocation {
                allocation,
                client,
                relays,
            } => {
                self.add_allocation(*allocation, *client, relays);
                None
            }
            RuleChange::RemoveAllocation { allocation } => {
                self.remove_allocation(*allocation);
                None
            }
            RuleChange::AddPermission { allocation, peer } => {
                self.add_permission(*allocation, *peer);
                None
            }
            RuleChange::RemovePermission { allocation, peer } => {
                self.remove_permission(*allocation, *peer);
                None
            }
            RuleChange::AddChannel {
                allocation,
                channel,
                peer,
            } => {
                self.add_channel(*allocation, *channel, *peer);
                None
            }
            RuleChange::RemoveChannel {
                allocation,
                channel,
                peer,
            } => {
                self.remove_channel(*allocation, *channel, *peer);
                None
            }
        }
    }

    fn add_allocation(&mut self, id: AllocationId, five: FiveTuple, relays: &[SocketAddr]) {
        if self.by_id.contains_key(&id) {
            self.remove_allocation(id);
        }
        let Some(listener) = self.listener(five.server).map(|l| l.0) else {
            tracing::warn!(listener = %five.server, "allocation on an unknown listener; not forwarded");
            return;
        };
        if let Some(old) = self.by_client.get(&(listener, five.client)).copied() {
            // One allocation per 5-tuple (RFC 8656 §5): a new one replaces a
            // stale one whose removal we have not seen.
            if let Some(old_id) = self.slot(old).map(|a| a.id) {
                self.remove_allocation(old_id);
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    tracing::error!("forwarding table full");
                    return;
                };
                self.slots.push(None);
                slot
            }
        };
        let mut allocation = Allocation {
            id,
            listener,
            client: five.client,
            relay_v4: None,
            relay_v6: None,
            permissions: SmallVec::new(),
            spilled: false,
            channels: SmallVec::new(),
            channels_spilled: false,
        };
        for relay in relays {
            let Some(&socket) = self.relay_ids.get(relay) else {
                tracing::warn!(%relay, "allocation names a relay socket that is not bound");
                continue;
            };
            if let Some(r) = self.relays.get_mut(&socket) {
                r.slot = Some(slot);
            }
            match relay {
                SocketAddr::V4(_) => allocation.relay_v4 = Some(socket),
                SocketAddr::V6(_) => allocation.relay_v6 = Some(socket),
            }
        }
        self.by_client.insert((listener, five.client), slot);
        self.by_id.insert(id, slot);
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(allocation);
        }
    }

    fn remove_allocation(&mut self, id: AllocationId) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.by_client
            .remove(&(allocation.listener, allocation.client));
        for (channel, peer) in &allocation.channels {
            self.channels_out
                .remove(&(allocation.listener, allocation.client, *channel));
            if allocation.channels_spilled {
                if let Some(relay) = allocation.relay_for(*peer) {
                    self.channels_in.remove(&(relay, *peer));
                }
            }
        }
        if allocation.spilled {
            for ip in &allocation.permissions {
                self.permissions.remove(&(slot, *ip));
            }
        }
        for relay in [allocation.relay_v4, allocation.relay_v6]
            .into_iter()
            .flatten()
        {
            if let Some(r) = self.relays.get_mut(&relay) {
                if r.slot == Some(slot) {
                    r.slot = None;
                }
            }
        }
    }

    fn close_relay(&mut self, addr: SocketAddr) -> Option<SocketId> {
        let id = self.relay_ids.remove(&addr)?;
        let relay = self.relays.remove(&id);
        // Normally the allocation is already gone (RemoveAllocation comes
        // first). If not, detach the socket so nothing is sent from a closed id.
        if let Some(slot) = relay.and_then(|r| r.slot) {
            if let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
                let (listener, client) = (allocation.listener, allocation.client);
                let v4 = addr.is_ipv4();
                allocation.channels.retain(|(channel, peer)| {
                    if peer.is_ipv4() != v4 {
                        return true;
                    }
                    self.channels_out.remove(&(listener, client, *channel));
                    self.channels_in.remove(&(id, *peer));
                    false
                });
                if v4 {
                    allocation.relay_v4 = None;
                } else {
                    allocation.relay_v6 = None;
                }
            }
        }
        Some(SocketId(id))
    }

    fn add_permission(&mut self, id: AllocationId, peer: IpAddr) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if allocation.permissions.contains(&peer) {
            return;
        }
        push_exact(&mut allocation.permissions, peer);
        if allocation.spilled {
            self.permissions.insert((slot, peer));
        } else if allocation.permissions.len() > INLINE_PERMISSIONS {
            allocation.spilled = true;
            for ip in &allocation.permissions {
                self.permissions.insert((slot, *ip));
            }
        }
    }

    fn remove_permission(&mut self, id: AllocationId, peer: IpAddr) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(i) = allocation.permissions.iter().position(|ip| *ip == peer) {
            allocation.permissions.swap_remove(i);
            if allocation.spilled {
                self.permissions.remove(&(slot, peer));
            }
        }
    }

    fn add_channel(&mut self, id: AllocationId, channel: u16, peer: SocketAddr) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        // A refresh of the same binding is a no-op; a changed binding (which
        // the control plane refuses, RFC 8656 §12.2) replaces the old one.
        let old = self
            .slot(slot)
            .and_then(|a| a.channels.iter().find(|(c, _)| *c == channel).copied());
        match old {
            Some((_, old_peer)) if old_peer == peer => return,
            Some((_, old_peer)) => self.remove_channel(id, channel, old_peer),
            None => {}
        }
        let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(relay) = allocation.relay_for(peer) else {
            tracing::debug!(
                channel,
                "channel to a peer of a family the allocation lacks"
            );
            return;
        };
        push_exact(&mut allocation.channels, (channel, peer));
        self.channels_out.insert(
            (allocation.listener, allocation.client, channel),
            (relay, peer),
        );
        if allocation.channels_spilled {
            self.channels_in.insert((relay, peer), channel);
        } else if allocation.channels.len() > INLINE_CHANNELS {
            allocation.channels_spilled = true;
            for (channel, peer) in &allocation.channels {
                if let Some(relay) = allocation.relay_for(*peer) {
                    self.channels_in.insert((relay, *peer), *channel);
                }
            }
        }
    }

    fn remove_channel(&mut self, id: AllocationId, channel: u16, peer: SocketAddr) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        let Some(allocation) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(i) = allocation
            .channels
            .iter()
            .position(|(c, p)| *c == channel && *p == peer)
        else {
            return;
        };
        allocation.channels.swap_remove(i);
        self.channels_out
            .remove(&(allocation.listener, allocation.client, channel));
        if !allocation.channels_spilled {
            return;
        }
        if let Some(relay) = allocation.relay_for(peer) {
            if self.channels_in.get(&(relay, peer)) == Some(&channel) {
                self.channels_in.remove(&(relay, peer));
            }
        }
    }

    fn slot(&self, slot: u32) -> Option<&Allocation> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn permitted(&self, slot: u32, allocation: &Allocation, ip: IpAddr) -> bool {
        if allocation.spilled {
            self.permissions.contains(&(slot, ip))
        } else {
            allocation.permissions.contains(&ip)
        }
    }

    // ---- hot-path look-ups -----------------------------------------------

    /// ChannelData from `client` on `listener` for `channel` (RFC 8656 §12.6).
    #[inline]
    pub fn channel_to_peer(
        &self,
        listener: SocketId,
        client: SocketAddr,
        channel: u16,
    ) -> Option<ToPeer> {
        self.channels_out
            .get(&(listener.0, client, channel))
            .map(|&(relay, peer)| ToPeer {
                relay: SocketId(relay),
                peer,
            })
    }

    /// A Send indication from `client` on `listener` to `peer` (RFC 8656 §11.2).
    #[inline]
    pub fn send_to_peer(
        &self,
        listener: SocketId,
        client: SocketAddr,
        peer: SocketAddr,
    ) -> Result<ToPeer, SendRefused> {
        let slot = *self
            .by_client
            .get(&(listener.0, client))
            .ok_or(SendRefused::NoAllocation)?;
        let allocation = self.slot(slot).ok_or(SendRefused::NoAllocation)?;
        let relay = allocation
            .relay_for(peer)
            .ok_or(SendRefused::FamilyMismatch)?;
        if !self.permitted(slot, allocation, peer.ip()) {
            return Err(SendRefused::NoPermission);
        }
        Ok(ToPeer {
            relay: SocketId(relay),
            peer,
        })
    }

    /// A datagram from `peer` on relay socket `relay` (RFC 8656 §11.3, §12.7).
    #[inline]
    pub fn peer_to_client(
        &self,
        relay: SocketId,
        peer: SocketAddr,
    ) -> Result<ToClient, PeerRefused> {
        let slot = self
            .relays
            .get(&relay.0)
            .and_then(|r| r.slot)
            .ok_or(PeerRefused::NoAllocation)?;
        let allocation = self.slot(slot).ok_or(PeerRefused::NoAllocation)?;
        if !self.permitted(slot, allocation, peer.ip()) {
            return Err(PeerRefused::NoPermission);
        }
        // A few channels are scanned (no hashing, and the vector is one
        // cache line for the usual one or two); many are looked up.
        let channel = if allocation.channels_spilled {
            self.channels_in.get(&(relay.0, peer)).copied()
        } else {
            allocation
                .channels
                .iter()
                .find(|(_, p)| *p == peer)
                .map(|(c, _)| *c)
        };
        Ok(ToClient {
            listener: SocketId(allocation.listener),
            client: allocation.client,
            channel,
        })
    }

    // ---- sizes, for tests and logs ----------------------------------------

    /// Live allocations.
    pub fn allocations(&self) -> usize {
        self.by_id.len()
    }

    /// Live channel bindings.
    pub fn channels(&self) -> usize {
        self.channels_out.len()
    }

    /// Bound relay sockets.
    pub fn relays(&self) -> usize {
        self.relays.len()
    }

    /// Relay sockets still open, with their addresses (closed on shutdown).
    pub fn relay_sockets(&self) -> impl Iterator<Item = (SocketAddr, SocketId)> + '_ {
        self.relay_ids
            .iter()
            .map(|(addr, id)| (*addr, SocketId(*id)))
    }
}

/// Pushes `item`, growing `v` by exactly one slot when it is full: rule
/// changes are control-path work, and doubling would leave most of the
/// memory of an allocation with a few permissions or channels unused.
fn push_exact<A: smallvec::Array>(v: &mut SmallVec<A>, item: A::Item) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: SocketId = SocketId(1);
    const RELAY4: SocketId = SocketId(10);
    const RELAY6: SocketId = SocketId(11);
    const A: AllocationId = AllocationId(7);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn listener_addr() -> SocketAddr {
        addr("127.0.0.1:3478")
    }

    fn client() -> SocketAddr {
        addr("192.0.2.1:5000")
    }

    fn relay4() -> SocketAddr {
        addr("127.0.0.1:50000")
    }

    fn relay6() -> SocketAddr {
        addr("[::1]:50000")
    }

    fn five(client: SocketAddr) -> FiveTuple {
        FiveTuple {
            client,
            server: listener_addr(),
        }
    }

    /// A table with one listener, two bound relay sockets and allocation `A`
    /// using both.
    fn table() -> Table {
        let mut t = Table::with_seed(1);
        t.add_listener(listener_addr(), LISTENER);
        t.add_relay(relay4(), RELAY4);
        t.add_relay(relay6(), RELAY6);
        t.apply(&RuleChange::AddAllocation {
            allocation: A,
            client: five(client()),
            relays: vec![relay4(), relay6()],
        });
        t
    }

    fn permit(t: &mut Table, ip: &str) {
        t.apply(&RuleChange::AddPermission {
            allocation: A,
            peer: ip.parse().unwrap(),
        });
    }

    fn bind(t: &mut Table, channel: u16, peer: &str) {
        t.apply(&RuleChange::AddChannel {
            allocation: A,
            channel,
            peer: addr(peer),
        });
    }

    #[test]
    fn roles() {
        let t = table();
        assert_eq!(t.role(LISTENER), SocketRole::Listener);
        assert_eq!(t.role(RELAY4), SocketRole::Relay);
        assert_eq!(t.role(SocketId(99)), SocketRole::Unknown);
        assert_eq!(t.listener(listener_addr()), Some(LISTENER));
        assert_eq!(t.listener(addr("127.0.0.1:1")), None);
    }

    #[test]
    fn send_needs_allocation_and_permission() {
        let mut t = table();
        let peer = addr("198.51.100.9:4000");
        assert_eq!(
            t.send_to_peer(LISTENER, addr("192.0.2.2:5000"), peer),
            Err(SendRefused::NoAllocation)
        );
        assert_eq!(
            t.send_to_peer(LISTENER, client(), peer),
            Err(SendRefused::NoPermission)
        );
        permit(&mut t, "198.51.100.9");
        assert_eq!(
            t.send_to_peer(LISTENER, client(), peer),
            Ok(ToPeer {
                relay: RELAY4,
                peer
            })
        );
        // The permission is per IP: any port of the peer (RFC 8656 §9).
        let other_port = addr("198.51.100.9:9");
        assert!(t.send_to_peer(LISTENER, client(), other_port).is_ok());
        // Same client address on another listener is another 5-tuple.
        assert_eq!(
            t.send_to_peer(SocketId(2), client(), peer),
            Err(SendRefused::NoAllocation)
        );
    }

    #[test]
    fn relay_follows_peer_family() {
        let mut t = table();
        permit(&mut t, "2001:db8::5");
        let peer = addr("[2001:db8::5]:4000");
        assert_eq!(
            t.send_to_peer(LISTENER, client(), peer),
            Ok(ToPeer {
                relay: RELAY6,
                peer
            })
        );

        let mut v4_only = Table::with_seed(2);
        v4_only.add_listener(listener_addr(), LISTENER);
        v4_only.add_relay(relay4(), RELAY4);
        v4_only.apply(&RuleChange::AddAllocation {
            allocation: A,
            client: five(client()),
            relays: vec![relay4()],
        });
        permit(&mut v4_only, "2001:db8::5");
        assert_eq!(
            v4_only.send_to_peer(LISTENER, client(), peer),
            Err(SendRefused::FamilyMismatch)
        );
    }

    #[test]
    fn channel_both_ways() {
        let mut t = table();
        let peer = addr("198.51.100.9:4000");
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        assert_eq!(
            t.channel_to_peer(LISTENER, client(), 0x4001),
            Some(ToPeer {
                relay: RELAY4,
                peer
            })
        );
        assert_eq!(t.channel_to_peer(LISTENER, client(), 0x4002), None);
        // Back from the peer: only with a permission (RFC 8656 §11.3).
        assert_eq!(
            t.peer_to_client(RELAY4, peer),
            Err(PeerRefused::NoPermission)
        );
        permit(&mut t, "198.51.100.9");
        assert_eq!(
            t.peer_to_client(RELAY4, peer),
            Ok(ToClient {
                listener: LISTENER,
                client: client(),
                channel: Some(0x4001)
            })
        );
        // Another port of the same IP has the permission but no channel.
        assert_eq!(
            t.peer_to_client(RELAY4, addr("198.51.100.9:4001")),
            Ok(ToClient {
                listener: LISTENER,
                client: client(),
                channel: None
            })
        );
        t.apply(&RuleChange::RemoveChannel {
            allocation: A,
            channel: 0x4001,
            peer,
        });
        assert_eq!(t.channel_to_peer(LISTENER, client(), 0x4001), None);
        assert_eq!(t.peer_to_client(RELAY4, peer).map(|c| c.channel), Ok(None));
        assert_eq!(t.channels(), 0);
    }

    #[test]
    fn rebinding_a_channel_replaces_the_old_peer() {
        let mut t = table();
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        bind(&mut t, 0x4001, "198.51.100.10:4000");
        assert_eq!(
            t.channel_to_peer(LISTENER, client(), 0x4001)
                .map(|p| p.peer),
            Some(addr("198.51.100.10:4000"))
        );
        permit(&mut t, "198.51.100.9");
        assert_eq!(
            t.peer_to_client(RELAY4, addr("198.51.100.9:4000"))
                .map(|c| c.channel),
            Ok(None)
        );
        assert_eq!(t.channels(), 1);
    }

    #[test]
    fn removing_a_permission() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        t.apply(&RuleChange::RemovePermission {
            allocation: A,
            peer: "198.51.100.9".parse().unwrap(),
        });
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.9:1")),
            Err(SendRefused::NoPermission)
        );
    }

    #[test]
    fn many_channels_spill_and_stay_exact() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        let peer = |i: u16| addr(&format!("198.51.100.9:{}", 1000 + i));
        let inbound = |t: &Table, i: u16| t.peer_to_client(RELAY4, peer(i)).map(|c| c.channel);
        for i in 0..INLINE_CHANNELS as u16 {
            bind(&mut t, 0x4000 + i, &peer(i).to_string());
        }
        // Up to INLINE_CHANNELS: scanned in place, nothing in the map.
        assert!(t.channels_in.is_empty());
        assert_eq!(inbound(&t, 3), Ok(Some(0x4003)));
        for i in INLINE_CHANNELS as u16..40 {
            bind(&mut t, 0x4000 + i, &peer(i).to_string());
        }
        assert_eq!(t.channels_in.len(), 40);
        for i in 0..40 {
            assert_eq!(inbound(&t, i), Ok(Some(0x4000 + i)), "{i}");
        }
        assert_eq!(inbound(&t, 40), Ok(None));
        t.apply(&RuleChange::RemoveChannel {
            allocation: A,
            channel: 0x4003,
            peer: peer(3),
        });
        assert_eq!(inbound(&t, 3), Ok(None));
        assert_eq!(t.channels_in.len(), 39);
        t.apply(&RuleChange::RemoveAllocation { allocation: A });
        assert!(t.channels_in.is_empty());
        assert_eq!(t.channels(), 0);
    }

    /// Bytes per entry of a hashbrown map: entry plus control byte, times
    /// 3/2 (a table is 7/16 to 7/8 full, about 2/3 on average).
    fn map_bytes<T>() -> usize {
        (std::mem::size_of::<T>() + 1) * 3 / 2
    }

    /// The forwarding table's state per allocation, in the shape of the
    /// end-to-end benchmark (`bench/scripts/memory-per-allocation.sh`): one
    /// relay socket, one permission, one channel. Counted: the entries in
    /// `relay_ids`, `relays`, `by_id`, `by_client` and `channels_out`, the
    /// slot (a doubling vector, 3/4 full on average), which holds the one
    /// permission and one channel in place. The I/O backend's socket slot and the
    /// control plane's state are counted elsewhere (docs/memory.md); the
    /// table's share of the 1 KiB budget is 480 bytes.
    #[test]
    fn forwarding_state_fits_in_its_share() {
        use std::mem::size_of;
        let mut t = Table::with_seed(1);
        t.add_listener(listener_addr(), LISTENER);
        t.add_relay(relay4(), RELAY4);
        t.apply(&RuleChange::AddAllocation {
            allocation: A,
            client: five(client()),
            relays: vec![relay4()],
        });
        permit(&mut t, "198.51.100.9");
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        let a = t.slot(t.by_id[&A]).unwrap();
        // One of each: kept in the slot, no heap block.
        assert!(!a.permissions.spilled() && !a.channels.spilled());
        assert!(t.channels_in.is_empty() && t.permissions.is_empty());
        let relay_ids = map_bytes::<(SocketAddr, u32)>();
        let relays = map_bytes::<(u32, RelaySocket)>();
        let slot = size_of::<Option<Allocation>>() * 4 / 3;
        let by_id = map_bytes::<(AllocationId, u32)>();
        let by_client = map_bytes::<((u32, SocketAddr), u32)>();
        let channels_out = map_bytes::<((u32, SocketAddr, u16), (u32, SocketAddr))>();
        let total = relay_ids + relays + slot + by_id + by_client + channels_out;
        eprintln!(
            "table per allocation: relay_ids {relay_ids} B, relays {relays} B, slot {slot} B, \
             by_id {by_id} B, by_client {by_client} B, channels_out {channels_out} B: \
             total {total} B"
        );
        assert!(
            total <= 480,
            "forwarding state per allocation is {total} bytes"
        );
    }

    /// Rule changes grow the per-allocation vectors one entry at a time:
    /// a typical allocation keeps no unused slots.
    #[test]
    fn vectors_hold_no_spare_slots() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        let slot = t.by_id[&A];
        let a = t.slot(slot).unwrap();
        assert!(!a.permissions.spilled() && !a.channels.spilled());
        bind(&mut t, 0x4002, "198.51.100.9:4001");
        let a = t.slot(slot).unwrap();
        assert_eq!(a.channels.capacity(), 2);
    }

    #[test]
    fn many_permissions_spill_and_stay_exact() {
        let mut t = table();
        for i in 0..40u8 {
            permit(&mut t, &format!("198.51.100.{i}"));
        }
        for i in 0..40u8 {
            let peer = addr(&format!("198.51.100.{i}:1"));
            assert!(t.send_to_peer(LISTENER, client(), peer).is_ok(), "{i}");
        }
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.41:1")),
            Err(SendRefused::NoPermission)
        );
        t.apply(&RuleChange::RemovePermission {
            allocation: A,
            peer: "198.51.100.3".parse().unwrap(),
        });
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.3:1")),
            Err(SendRefused::NoPermission)
        );
        t.apply(&RuleChange::RemoveAllocation { allocation: A });
        assert!(t.permissions.is_empty());
    }

    #[test]
    fn removing_an_allocation_removes_everything_under_it() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        bind(&mut t, 0x4002, "[2001:db8::5]:4000");
        assert_eq!(t.channels(), 2);
        t.apply(&RuleChange::RemoveAllocation { allocation: A });
        assert_eq!(t.allocations(), 0);
        assert_eq!(t.channels(), 0);
        assert!(t.channels_in.is_empty());
        assert_eq!(t.channel_to_peer(LISTENER, client(), 0x4001), None);
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.9:4000")),
            Err(SendRefused::NoAllocation)
        );
        assert_eq!(
            t.peer_to_client(RELAY4, addr("198.51.100.9:4000")),
            Err(PeerRefused::NoAllocation)
        );
        // The relay sockets stay until CloseRelay.
        assert_eq!(t.relays(), 2);
        assert_eq!(
            t.apply(&RuleChange::CloseRelay { relay: relay4() }),
            Some(RELAY4)
        );
        assert_eq!(
            t.apply(&RuleChange::CloseRelay { relay: relay6() }),
            Some(RELAY6)
        );
        assert_eq!(t.apply(&RuleChange::CloseRelay { relay: relay6() }), None);
        assert_eq!(t.relays(), 0);
        assert_eq!(t.role(RELAY4), SocketRole::Unknown);
    }

    #[test]
    fn a_reused_slot_inherits_nothing() {
        let mut t = table();
        for i in 0..20u8 {
            permit(&mut t, &format!("198.51.100.{i}"));
        }
        bind(&mut t, 0x4001, "198.51.100.1:4000");
        t.apply(&RuleChange::RemoveAllocation { allocation: A });
        let b = AllocationId(8);
        let other = addr("192.0.2.2:6000");
        t.apply(&RuleChange::AddAllocation {
            allocation: b,
            client: five(other),
            relays: vec![relay4()],
        });
        assert_eq!(
            t.send_to_peer(LISTENER, other, addr("198.51.100.1:4000")),
            Err(SendRefused::NoPermission)
        );
        assert_eq!(
            t.peer_to_client(RELAY4, addr("198.51.100.1:4000")),
            Err(PeerRefused::NoPermission)
        );
        assert_eq!(t.channel_to_peer(LISTENER, other, 0x4001), None);
    }

    #[test]
    fn closing_a_relay_under_a_live_allocation_detaches_it() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        bind(&mut t, 0x4001, "198.51.100.9:4000");
        assert_eq!(
            t.apply(&RuleChange::CloseRelay { relay: relay4() }),
            Some(RELAY4)
        );
        assert_eq!(t.channel_to_peer(LISTENER, client(), 0x4001), None);
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.9:4000")),
            Err(SendRefused::FamilyMismatch)
        );
    }

    #[test]
    fn rules_for_unknown_allocations_are_ignored() {
        let mut t = table();
        let ghost = AllocationId(99);
        t.apply(&RuleChange::AddPermission {
            allocation: ghost,
            peer: "198.51.100.9".parse().unwrap(),
        });
        t.apply(&RuleChange::AddChannel {
            allocation: ghost,
            channel: 0x4001,
            peer: addr("198.51.100.9:1"),
        });
        t.apply(&RuleChange::RemoveAllocation { allocation: ghost });
        assert_eq!(t.allocations(), 1);
        assert_eq!(t.channels(), 0);
    }

    #[test]
    fn a_new_allocation_on_the_same_five_tuple_replaces_the_old() {
        let mut t = table();
        permit(&mut t, "198.51.100.9");
        t.apply(&RuleChange::AddAllocation {
            allocation: AllocationId(8),
            client: five(client()),
            relays: vec![relay4()],
        });
        assert_eq!(t.allocations(), 1);
        assert_eq!(
            t.send_to_peer(LISTENER, client(), addr("198.51.100.9:1")),
            Err(SendRefused::NoPermission)
        );
    }
}
