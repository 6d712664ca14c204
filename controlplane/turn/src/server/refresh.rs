//! Refresh (RFC 8656 §8.2): extend an allocation, or delete it with
//! LIFETIME 0.
//!
//! The granted lifetime follows the same rule as for Allocate (§7.2): the
//! requested one capped at the maximum, and the default when it is absent or
//! smaller. A REQUESTED-ADDRESS-FAMILY the allocation does not have is 443;
//! see the server module docs for how dual-stack allocations are refreshed.

use std::time::Instant;

use tracing::debug;
use uturn_stun::attribute::{Attribute, AttributeType};
use uturn_stun::message::Message;

use super::allocate::{find, ip_family};
use super::authenticate::Authenticated;
use super::response::{Reply, RequestError};
use super::Server;
use crate::FiveTuple;

impl Server {
    pub(super) fn refresh(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Authenticated,
        reply: &Reply,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        let id = self.allocation_of(from, &auth.username)?;
        let requested = match find(msg, AttributeType::LIFETIME)? {
            Some(Attribute::Lifetime(secs)) => Some(secs),
            _ => None,
        };
        let family = match find(msg, AttributeType::REQUESTED_ADDRESS_FAMILY)? {
            Some(Attribute::RequestedAddressFamily(family)) => Some(ip_family(family)),
            _ => None,
        };
        let config = std::sync::Arc::clone(&self.config);
        let software = config.software.as_deref();
        if requested == Some(0) {
            if let Some(family) = family {
                let allocation = self
                    .allocations
                    .get(&id)
                    .ok_or(RequestError::AllocationMismatch)?;
                if allocation.relay(family).is_none() {
                    return Err(RequestError::PeerAddressFamilyMismatch);
                }
            }
            self.delete_allocation(id, "deleted by refresh");
            return Ok(reply.success(software, &[Attribute::Lifetime(0)]));
        }

        let lifetime = self.granted_lifetime(requested);
        let allocation = self
            .allocations
            .get_mut(&id)
            .ok_or(RequestError::AllocationMismatch)?;
        if let Some(family) = family {
            if allocation.relay(family).is_none() {
                return Err(RequestError::PeerAddressFamilyMismatch);
            }
        }
        allocation.expires = now + lifetime;
        // A shorter lifetime than before needs an earlier timer entry.
        self.schedule(id);
        debug!(allocation = id.0, client = %from.client, lifetime = lifetime.as_secs(), "allocation refreshed");
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        Ok(reply.success(software, &[Attribute::Lifetime(secs)]))
    }
}
