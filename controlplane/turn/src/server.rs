//! The TURN server state machine (RFC 8656 §§5–12) and STUN Binding (RFC 8489 §3.5).
//!
//! TODO(helper H2): implement. The public signatures below are the contract
//! with the dataplane and the binary; keep them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Credentials, FiveTuple, PeerFilter, PortPool, RuleChange, TimeProvider, Transmit};

/// Everything the operator configures about TURN behaviour.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// REALM sent in 401 responses and used in long-term keys.
    pub realm: String,
    /// SOFTWARE attribute in responses; `None` sends none.
    pub software: Option<String>,
    /// Local IPv4 address relay sockets bind to; `None`: no IPv4 relaying (440).
    pub relay_ipv4: Option<Ipv4Addr>,
    /// Local IPv6 address relay sockets bind to; `None`: no IPv6 relaying (440).
    pub relay_ipv6: Option<Ipv6Addr>,
    /// Public address advertised in XOR-RELAYED-ADDRESS instead of
    /// `relay_ipv4` (1:1 NAT, `--external-ip PUBLIC[/PRIVATE]`).
    pub external_ipv4: Option<Ipv4Addr>,
    /// As `external_ipv4`, for IPv6.
    pub external_ipv6: Option<Ipv6Addr>,
    /// Listener addresses: never reachable as peers.
    pub listeners: Vec<SocketAddr>,
    /// Allocation lifetime when the client asks for none (RFC 8656 §7.2: 600 s).
    pub default_lifetime: Duration,
    /// Upper bound on a requested lifetime (RFC 8656 §7.2: 3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime (RFC 8656 §9: 300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (RFC 8656 §12: 600 s).
    pub channel_lifetime: Duration,
    /// How long a NONCE stays valid before 438 Stale Nonce.
    pub nonce_lifetime: Duration,
    /// Only accept RFC 8656's channel range 0x4000–0x4FFF (default: RFC 5766's 0x4000–0x7FFE).
    pub strict_channel_range: bool,
    /// Allocations per username (0: unlimited) — 486 past it.
    pub user_quota: u32,
    /// Allocations on the whole relay (0: unlimited) — 486 past it.
    pub total_quota: u32,
    /// Responses kept for retransmitted requests, per server instance.
    pub transaction_cache_size: usize,
    /// Static users and REST secrets.
    pub credentials: Credentials,
    /// Which peers may be reached.
    pub peer_filter: PeerFilter,
    /// Relay port range, inclusive.
    pub min_port: u16,
    /// Relay port range, inclusive.
    pub max_port: u16,
}

/// State shared by every worker's [`Server`]: touched only on the control
/// path (allocation creation and deletion), never per relayed packet.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Relay ports, reserved across all workers.
    pub ports: Arc<PortPool>,
}

impl Shared {
    /// Creates the shared state for a relay run with `config`.
    pub fn new(config: &ServerConfig) -> Self {
        let _ = config;
        todo!()
    }
}

/// Counters the control plane keeps; the binary exports them as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub allocations: u64,
    pub permissions: u64,
    pub channels: u64,
    pub auth_failures: u64,
}

/// One worker's TURN server.
#[derive(Debug)]
pub struct Server {}

impl Server {
    pub fn new(config: Arc<ServerConfig>, shared: Shared, time: Arc<dyn TimeProvider>) -> Self {
        let _ = (config, shared, time);
        todo!()
    }

    /// A datagram from a client arrived on a listener: STUN requests and
    /// indications, and ChannelData/Send the dataplane did not forward itself.
    pub fn handle_datagram(&mut self, now: Instant, from: FiveTuple, datagram: &[u8]) {
        let _ = (now, from, datagram);
        todo!()
    }

    /// The answer to [`RuleChange::OpenRelay`].
    pub fn handle_relay_bound(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        result: Result<(), std::io::Error>,
    ) {
        let _ = (now, relay, result);
        todo!()
    }

    /// Time passed: expire allocations, permissions, channels, reservations
    /// and cached transactions.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// Ends every allocation (clean shutdown): emits their removal.
    pub fn shutdown(&mut self) {
        todo!()
    }

    pub fn poll_rule_change(&mut self) -> Option<RuleChange> {
        todo!()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        todo!()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    pub fn stats(&self) -> Stats {
        todo!()
    }
}
