//! Per-worker counters. Each worker writes only its own [`Counters`]
//! (relaxed atomics on its own cache lines); the metrics endpoint sums them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// First byte matches no protocol we serve (RFC 7983).
    Unrecognized,
    /// ChannelData for an unbound channel, or malformed.
    NoChannel,
    /// Send indication or peer datagram without a permission.
    NoPermission,
    /// Send indication to a peer the filter denies.
    PeerDenied,
    /// Malformed Send indication or ChannelData.
    Malformed,
    /// The kernel refused the send.
    SendError,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Unrecognized,
        DropReason::NoChannel,
        DropReason::NoPermission,
        DropReason::PeerDenied,
        DropReason::Malformed,
        DropReason::SendError,
    ];

    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Unrecognized => "unrecognized",
            DropReason::NoChannel => "no_channel",
            DropReason::NoPermission => "no_permission",
            DropReason::PeerDenied => "peer_denied",
            DropReason::Malformed => "malformed",
            DropReason::SendError => "send_error",
        }
    }
}

/// One worker's counters, padded so workers never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    /// Client → peer relayed datagrams and payload bytes.
    pub to_peer_packets: AtomicU64,
    pub to_peer_bytes: AtomicU64,
    /// Peer → client relayed datagrams and payload bytes.
    pub to_client_packets: AtomicU64,
    pub to_client_bytes: AtomicU64,
    /// Drops, indexed like [`DropReason::ALL`].
    pub drops: [AtomicU64; 6],
    /// Control-plane gauges and counters, copied from `Server::stats`.
    pub allocations: AtomicU64,
    pub permissions: AtomicU64,
    pub channels: AtomicU64,
    pub auth_failures: AtomicU64,
}

impl Counters {
    /// Counts one dropped datagram.
    pub fn drop(&self, reason: DropReason) {
        let i = DropReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.drops[i].fetch_add(1, Ordering::Relaxed);
    }
}
