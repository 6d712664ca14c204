//! Sans-IO TURN server (RFC 8656, over UDP) with STUN Binding (RFC 8489).
//!
//! This crate is uturn's control plane for TURN. It owns no socket, reads no
//! clock and starts no thread: the dataplane feeds it datagrams with the
//! 5-tuple they arrived on and the current [`Instant`], and drains what it
//! decided. Wall-clock time, needed only for nonce and REST-credential expiry,
//! comes in through [`TimeProvider`].
//!
//! # Call order
//!
//! After every input (`handle_*`), drain the outputs until each returns `None`:
//!
//! 1. [`Server::poll_rule_change`]: forwarding-rule changes for the dataplane.
//!    [`RuleChange::OpenRelay`] must be answered, before the next input, with
//!    [`Server::handle_relay_bound`] (the driver binds the socket synchronously).
//! 2. [`Server::poll_transmit`]: datagrams to send from a listener.
//! 3. [`Server::poll_timeout`]: when to call [`Server::handle_timeout`] next.
//!
//! # What the dataplane forwards without asking
//!
//! The control plane decides; the dataplane forwards. ChannelData and Send
//! indications from clients, and datagrams from peers, are forwarded by the
//! dataplane from the rules installed here ([`RuleChange`]): an allocation,
//! its permissions (per peer IP) and its channels. Lifetimes stay here: when a
//! permission, channel or allocation expires, the matching `Remove*` rule is
//! emitted, so the dataplane never looks at a clock on the hot path.
//!
//! ```text
//!   client ──STUN──▶ dataplane ──handle_datagram──▶ Server ──poll_transmit──▶ client
//!                       ▲                             │
//!                       └──────── poll_rule_change ───┘
//!   client ──ChannelData/Send──▶ dataplane table ──UDP──▶ peer (no control plane)
//! ```
//!
//! # Workers
//!
//! Each dataplane worker owns one [`Server`] and feeds it only its own
//! clients. What must agree across workers is in [`Shared`], behind locks
//! taken only when an allocation is created or deleted: the relay
//! [`PortPool`] (relay addresses are unique relay-wide), the
//! [`QuotaLedger`] (486 counts every worker's allocations) and the
//! [`nonce::NonceKey`] (a nonce issued by one worker checks on another).
//!
//! # Modules
//!
//! | module          | what                                             | RFC sections                       |
//! |-----------------|--------------------------------------------------|------------------------------------|
//! | [`server`]      | the state machine: requests, lifetimes, outputs  | RFC 8656 §5–§12, RFC 8489 §6.3, §9.2.4 |
//! | [`auth`]        | static users and TURN REST credentials           | RFC 8489 §9.2, draft-uberti-behave-turn-rest |
//! | [`nonce`]       | stateless nonces with the security-feature cookie| RFC 8489 §9.2                      |
//! | [`peer_filter`] | which peers may be reached (deny by default)     | RFC 8656 §21                       |
//! | [`ports`]       | random relay ports, EVEN-PORT, reservations      | RFC 8656 §7.2                      |
//! | [`quota`]       | per-user and relay-wide allocation counts        | RFC 8656 §7.2 (486)                |
//! | [`time`]        | injected Unix time                               |                                    |

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
#[cfg(doc)]
use std::time::Instant;

mod allocation;
pub mod auth;
pub mod nonce;
pub mod peer_filter;
pub mod ports;
pub mod quota;
pub mod server;
pub mod time;
mod timer;
mod transaction;

pub use auth::{Credentials, CredentialsConfig};
pub use peer_filter::PeerFilter;
pub use ports::{IpFamily, PortPool, ReservationToken};
pub use quota::QuotaLedger;
pub use server::{RequestError, Server, ServerConfig, Shared, Stats};
pub use time::{SystemTimeProvider, TimeProvider};

/// A UDP 5-tuple as seen by the relay: the client's address and the local
/// listener address the datagram arrived on (RFC 8656 §2, "5-tuple").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// The client's transport address (source of its datagrams).
    pub client: SocketAddr,
    /// The relay's listener address (destination of the client's datagrams).
    pub server: SocketAddr,
}

/// Identifies one allocation for its whole life. Unique per [`Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub u64);

/// A datagram the control plane wants sent from one of the relay's listeners.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The listener address to send from (the 5-tuple's `server`).
    pub source: SocketAddr,
    /// Where to send.
    pub destination: SocketAddr,
    /// The whole UDP payload.
    pub contents: Vec<u8>,
}

/// A change to the dataplane's forwarding rules.
///
/// The dataplane applies these in order. Relay sockets are named by their
/// local address, which is unique across the whole relay (the [`PortPool`]
/// is shared by all workers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleChange {
    /// Bind a UDP socket on `relay`. Answer with [`Server::handle_relay_bound`]
    /// before the next input.
    OpenRelay {
        relay: SocketAddr,
        /// Set DF / IPV6_DONTFRAG on the socket (DONT-FRAGMENT, RFC 8656 §7.2).
        dont_fragment: bool,
    },
    /// Close a relay socket opened with `OpenRelay` (allocation gone, or a
    /// reservation expired, or the bind answer arrived too late).
    CloseRelay { relay: SocketAddr },
    /// An allocation is live: ChannelData/Send from `client` may now be
    /// forwarded from `relays` once permissions allow it, and datagrams
    /// arriving on `relays` from permitted peers go back to `client`.
    /// `relays` holds one address per granted family (one or two).
    AddAllocation {
        allocation: AllocationId,
        client: FiveTuple,
        relays: Vec<SocketAddr>,
    },
    /// The allocation is gone with everything under it (its permissions and
    /// channels need no separate removal). `CloseRelay` follows for each relay.
    RemoveAllocation { allocation: AllocationId },
    /// Peers with this IP may exchange datagrams through the allocation.
    AddPermission {
        allocation: AllocationId,
        peer: IpAddr,
    },
    /// The permission expired (RFC 8656 §9).
    RemovePermission {
        allocation: AllocationId,
        peer: IpAddr,
    },
    /// `channel` is bound to `peer` on this allocation (RFC 8656 §12).
    AddChannel {
        allocation: AllocationId,
        channel: u16,
        peer: SocketAddr,
    },
    /// The channel binding expired.
    RemoveChannel {
        allocation: AllocationId,
        channel: u16,
        peer: SocketAddr,
    },
}
