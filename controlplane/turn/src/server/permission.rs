//! CreatePermission (RFC 8656 §10.2) and ChannelBind (§12.2): the requests
//! that let peers in.
//!
//! CreatePermission is all-or-nothing: every XOR-PEER-ADDRESS must have the
//! allocation's family (443) and pass the peer filter (403) before any
//! permission is installed. A permission lasts `permission_lifetime` (300 s)
//! from its last install; `AddPermission` is emitted only when it is new.
//!
//! ChannelBind checks the number against the configured range (RFC 5766's
//! 0x4000–0x7FFE, or RFC 8656's 0x4000–0x4FFF when strict), the peer's family
//! (443) and the filter with the peer's port (403), and that neither the
//! number nor the peer is bound, or was bound in the last 5 minutes, to
//! something else (400; see [`CHANNEL_REUSE_HOLD`](super::CHANNEL_REUSE_HOLD)
//! for the hold). It installs or refreshes the channel (600 s) and the
//! permission for the peer's IP (300 s).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tracing::debug;
use uturn_stun::attribute::{Attribute, AttributeType};
use uturn_stun::channel_data::{is_channel_rfc5766, is_channel_rfc8656};
use uturn_stun::message::Message;

use super::allocate::find;
use super::authenticate::Authenticated;
use super::response::{Reply, RequestError};
use super::Server;
use crate::allocation::{MAX_CHANNELS, MAX_PERMISSIONS};
use crate::{AllocationId, FiveTuple, RuleChange};

impl Server {
    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Authenticated,
        reply: &Reply,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        let id = self.allocation_of(from, &auth.username)?;
        let tid = msg.transaction_id();
        let mut peers: Vec<IpAddr> = Vec::new();
        for raw in msg
            .attributes()
            .filter(|raw| raw.typ == AttributeType::XOR_PEER_ADDRESS)
        {
            match Attribute::decode(raw, &tid) {
                Ok(Attribute::XorPeerAddress(addr)) => {
                    if !peers.contains(&addr.ip()) {
                        peers.push(addr.ip());
                    }
                }
                _ => return Err(RequestError::BadRequest("malformed XOR-PEER-ADDRESS")),
            }
            if peers.len() > MAX_PERMISSIONS {
                return Err(RequestError::InsufficientCapacity("too many permissions"));
            }
        }
        if peers.is_empty() {
            return Err(RequestError::BadRequest("no XOR-PEER-ADDRESS"));
        }

        let allocation = self
            .allocations
            .get(&id)
            .ok_or(RequestError::AllocationMismatch)?;
        for &peer in &peers {
            if !allocation.serves(peer) {
                return Err(RequestError::PeerAddressFamilyMismatch);
            }
            if let Err(denied) = self.config.peer_filter.check_ip(peer) {
                debug!(client = %from.client, %peer, reason = denied.reason(), "permission refused by peer filter");
                return Err(RequestError::Forbidden(denied.reason()));
            }
        }
        let new = peers
            .iter()
            .filter(|&&peer| allocation.permission(peer).is_none())
            .count();
        if allocation.permissions.len() + new > MAX_PERMISSIONS {
            return Err(RequestError::InsufficientCapacity("too many permissions"));
        }

        let expires = now + self.config.permission_lifetime;
        for peer in peers {
            self.install_permission(id, peer, expires);
        }
        self.schedule(id);
        Ok(reply.success(self.config.software.as_deref(), &[]))
    }

    pub(super) fn channel_bind(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Authenticated,
        reply: &Reply,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        let id = self.allocation_of(from, &auth.username)?;
        let number = match find(msg, AttributeType::CHANNEL_NUMBER)? {
            Some(Attribute::ChannelNumber(number)) => number,
            _ => return Err(RequestError::BadRequest("no CHANNEL-NUMBER")),
        };
        let peer: SocketAddr = match find(msg, AttributeType::XOR_PEER_ADDRESS)? {
            Some(Attribute::XorPeerAddress(peer)) => peer,
            _ => return Err(RequestError::BadRequest("no XOR-PEER-ADDRESS")),
        };
        let in_range = if self.config.strict_channel_range {
            is_channel_rfc8656(number)
        } else {
            is_channel_rfc5766(number)
        };
        if !in_range {
            return Err(RequestError::BadRequest("channel number out of range"));
        }

        let allocation = self
            .allocations
            .get(&id)
            .ok_or(RequestError::AllocationMismatch)?;
        if !allocation.serves(peer.ip()) {
            return Err(RequestError::PeerAddressFamilyMismatch);
        }
        if let Err(denied) = self.config.peer_filter.check_addr(peer) {
            debug!(client = %from.client, %peer, reason = denied.reason(), "channel refused by peer filter");
            return Err(RequestError::Forbidden(denied.reason()));
        }
        if let Err(conflict) = allocation.check_channel(number, peer, now) {
            debug!(client = %from.client, channel = number, %peer, ?conflict, "channel bind conflict");
            return Err(RequestError::BadRequest(
                "channel number or peer bound elsewhere",
            ));
        }
        let new_channel = allocation.channel(number).is_none();
        if new_channel && allocation.channels.len() >= MAX_CHANNELS {
            return Err(RequestError::InsufficientCapacity("too many channels"));
        }
        if allocation.permission(peer.ip()).is_none()
            && allocation.permissions.len() >= MAX_PERMISSIONS
        {
            return Err(RequestError::InsufficientCapacity("too many permissions"));
        }

        // The permission first: the dataplane then has it when the channel arrives.
        self.install_permission(id, peer.ip(), now + self.config.permission_lifetime);
        let expires = now + self.config.channel_lifetime;
        let allocation = self
            .allocations
            .get_mut(&id)
            .ok_or(RequestError::AllocationMismatch)?;
        if allocation.bind_channel(number, peer, expires) {
            self.stats.channels += 1;
            debug!(allocation = id.0, channel = number, %peer, "channel bound");
            self.emit(RuleChange::AddChannel {
                allocation: id,
                channel: number,
                peer,
            });
        }
        self.schedule(id);
        Ok(reply.success(self.config.software.as_deref(), &[]))
    }

    /// Installs or refreshes a permission; a new one gets its rule. The
    /// caller reschedules the allocation's timer.
    fn install_permission(&mut self, id: AllocationId, peer: IpAddr, expires: Instant) {
        let Some(allocation) = self.allocations.get_mut(&id) else {
            return;
        };
        if allocation.install_permission(peer, expires) {
            self.stats.permissions += 1;
            debug!(allocation = id.0, %peer, "permission installed");
            self.emit(RuleChange::AddPermission {
                allocation: id,
                peer,
            });
        }
    }
}
