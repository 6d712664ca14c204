//! Keeps the XDP fast path's rules ([`uturn_ebpf::XdpFastPath`]) in step with
//! one worker's control plane, from the same [`RuleChange`]s the forwarding
//! table gets.
//!
//! A channel binding (RFC 8656 §12) is offloaded while three things hold: its
//! allocation lives, the channel is bound, and the peer's IP has a permission
//! (§9). The kernel path forwards both directions without asking, so it must
//! stop the moment any of them ends: a `RemoveChannel`, a `RemovePermission`
//! for the peer's IP or a `RemoveAllocation` (expiry, Refresh with LIFETIME 0,
//! shutdown) removes the rule. The userspace table forwards ChannelData from
//! the client on the binding alone (§12.6); the offload is stricter, which
//! only means such packets take the userspace path.
//!
//! Map updates are syscalls; they run here, on the control path, never per
//! packet. A binding the program cannot serve (client and peer of different
//! families, a wildcard listener) stays in userspace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use uturn_ebpf::{ChannelRule, XdpFastPath};
use uturn_turn::{AllocationId, FiveTuple, RuleChange};

/// One worker's view of what is offloaded.
#[derive(Debug)]
pub(crate) struct Offload {
    xdp: Arc<XdpFastPath>,
    allocations: HashMap<AllocationId, Allocation>,
}

#[derive(Debug)]
struct Allocation {
    client: FiveTuple,
    relays: Vec<SocketAddr>,
    permissions: Vec<IpAddr>,
    /// Bound channels and whether each is installed in XDP.
    channels: Vec<(u16, SocketAddr, bool)>,
}

impl Allocation {
    fn rule(&self, channel: u16, peer: SocketAddr) -> Option<ChannelRule> {
        let relay = self
            .relays
            .iter()
            .copied()
            .find(|r| r.is_ipv4() == peer.is_ipv4())?;
        Some(ChannelRule {
            client: self.client.client,
            listener: self.client.server,
            channel,
            peer,
            relay,
        })
    }
}

impl Offload {
    pub(crate) fn new(xdp: Arc<XdpFastPath>) -> Self {
        Self {
            xdp,
            allocations: HashMap::new(),
        }
    }

    /// Follows one rule change (after the table applied it).
    pub(crate) fn apply(&mut self, change: &RuleChange) {
        match change {
            RuleChange::OpenRelay { .. } | RuleChange::CloseRelay { .. } => {}
            RuleChange::AddAllocation {
                allocation,
                client,
                relays,
            } => {
                // A repeated id replaces the old allocation, as in the table.
                self.remove_allocation(*allocation);
                self.allocations.insert(
                    *allocation,
                    Allocation {
                        client: *client,
                        relays: relays.clone(),
                        permissions: Vec::new(),
                        channels: Vec::new(),
                    },
                );
            }
            RuleChange::RemoveAllocation { allocation } => self.remove_allocation(*allocation),
            RuleChange::AddPermission { allocation, peer } => {
                let Some(a) = self.allocations.get_mut(allocation) else {
                    return;
                };
                if !a.permissions.contains(peer) {
                    a.permissions.push(*peer);
                }
                for i in 0..a.channels.len() {
                    if let Some(&(channel, addr, false)) = a.channels.get(i) {
                        if addr.ip() == *peer {
                            let installed = install(&self.xdp, a, channel, addr);
                            if let Some(entry) = a.channels.get_mut(i) {
                                entry.2 = installed;
                            }
                        }
                    }
                }
            }
            RuleChange::RemovePermission { allocation, peer } => {
                let Some(a) = self.allocations.get_mut(allocation) else {
                    return;
                };
                a.permissions.retain(|p| p != peer);
                for i in 0..a.channels.len() {
                    if let Some(&(channel, addr, true)) = a.channels.get(i) {
                        if addr.ip() == *peer {
                            uninstall(&self.xdp, a, channel, addr);
                            if let Some(entry) = a.channels.get_mut(i) {
                                entry.2 = false;
                            }
                        }
                    }
                }
            }
            RuleChange::AddChannel {
                allocation,
                channel,
                peer,
            } => {
                let Some(a) = self.allocations.get_mut(allocation) else {
                    return;
                };
                // A refresh of the same binding keeps the installed rule.
                if a.channels.iter().any(|c| c.0 == *channel && c.1 == *peer) {
                    return;
                }
                // A channel moved to another peer (not allowed by RFC 8656
                // §12.2, but the table tolerates it): drop the old rule.
                if let Some(pos) = a.channels.iter().position(|c| c.0 == *channel) {
                    let (old_channel, old_peer, installed) = a.channels.swap_remove(pos);
                    if installed {
                        uninstall(&self.xdp, a, old_channel, old_peer);
                    }
                }
                let installed =
                    a.permissions.contains(&peer.ip()) && install(&self.xdp, a, *channel, *peer);
                a.channels.push((*channel, *peer, installed));
            }
            RuleChange::RemoveChannel {
                allocation,
                channel,
                peer,
            } => {
                let Some(a) = self.allocations.get_mut(allocation) else {
                    return;
                };
                if let Some(pos) = a
                    .channels
                    .iter()
                    .position(|c| c.0 == *channel && c.1 == *peer)
                {
                    let (channel, peer, installed) = a.channels.swap_remove(pos);
                    if installed {
                        uninstall(&self.xdp, a, channel, peer);
                    }
                }
            }
        }
    }

    /// Removes every rule this worker installed (shutdown, after the
    /// server's own removals, in case any was missed).
    pub(crate) fn clear(&mut self) {
        let ids: Vec<AllocationId> = self.allocations.keys().copied().collect();
        for id in ids {
            self.remove_allocation(id);
        }
    }

    fn remove_allocation(&mut self, id: AllocationId) {
        let Some(a) = self.allocations.remove(&id) else {
            return;
        };
        for &(channel, peer, installed) in &a.channels {
            if installed {
                uninstall(&self.xdp, &a, channel, peer);
            }
        }
    }
}

/// Installs a binding; false when it stays in userspace.
fn install(xdp: &XdpFastPath, a: &Allocation, channel: u16, peer: SocketAddr) -> bool {
    let Some(rule) = a.rule(channel, peer) else {
        return false;
    };
    match xdp.insert(&rule) {
        Ok(()) => {
            tracing::debug!(channel, %peer, "channel offloaded to XDP");
            true
        }
        Err(uturn_ebpf::Error::NotOffloadable(why)) => {
            tracing::debug!(channel, %peer, %why, "channel stays in userspace");
            false
        }
        Err(e) => {
            // A full map, for instance: userspace still relays.
            tracing::warn!(channel, %peer, error = %e, "cannot offload channel to XDP");
            false
        }
    }
}

fn uninstall(xdp: &XdpFastPath, a: &Allocation, channel: u16, peer: SocketAddr) {
    if let Some(rule) = a.rule(channel, peer) {
        if let Some(c) = xdp.remove(&rule) {
            tracing::debug!(
                channel,
                %peer,
                to_peer = c.to_peer.packets,
                to_client = c.to_client.packets,
                "channel rule removed from XDP"
            );
        }
    }
}
