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

    /// Index into [`Counters::drops`] (the position in [`DropReason::ALL`]).
    pub fn index(self) -> usize {
        match self {
            DropReason::Unrecognized => 0,
            DropReason::NoChannel => 1,
            DropReason::NoPermission => 2,
            DropReason::PeerDenied => 3,
            DropReason::Malformed => 4,
            DropReason::SendError => 5,
        }
    }
}

/// Which way a relayed datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → peer.
    ToPeer,
    /// Peer → client.
    ToClient,
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
    /// The media engine's counters (`uturn_media::MediaStats`, field by
    /// field in declaration order), copied once per worker loop.
    media: [AtomicU64; MEDIA_FIELDS],
}

/// Number of fields in `uturn_media::MediaStats`.
const MEDIA_FIELDS: usize = 32;

impl Counters {
    /// Counts one dropped datagram.
    pub fn drop(&self, reason: DropReason) {
        bump(&self.drops[reason.index()], 1);
    }

    /// Counts one relayed datagram carrying `bytes` of application data.
    pub fn forwarded(&self, direction: Direction, bytes: usize) {
        let (packets, total) = match direction {
            Direction::ToPeer => (&self.to_peer_packets, &self.to_peer_bytes),
            Direction::ToClient => (&self.to_client_packets, &self.to_client_bytes),
        };
        bump(packets, 1);
        bump(total, bytes as u64);
    }

    /// Copies the control plane's gauges (once per worker loop).
    pub fn set_stats(&self, stats: &uturn_turn::Stats) {
        self.allocations.store(stats.allocations, Ordering::Relaxed);
        self.permissions.store(stats.permissions, Ordering::Relaxed);
        self.channels.store(stats.channels, Ordering::Relaxed);
        self.auth_failures
            .store(stats.auth_failures, Ordering::Relaxed);
    }

    /// Sets [`DropReason::SendError`] from the backend's own count (datagrams
    /// the kernel refused or the send queue could not take).
    pub fn set_send_errors(&self, total: u64) {
        self.drops[DropReason::SendError.index()].store(total, Ordering::Relaxed);
    }

    /// Copies the media engine's counters (once per worker loop).
    pub fn set_media(&self, s: &uturn_media::MediaStats) {
        let values: [u64; MEDIA_FIELDS] = [
            s.sessions,
            s.sessions_started,
            s.sessions_ended,
            s.streams,
            s.viewers,
            s.ice_checks,
            s.ice_rejected,
            s.consent_lost,
            s.dtls_connected,
            s.dtls_failures,
            s.rtp_in,
            s.rtcp_in,
            s.bytes_in,
            s.rtp_out,
            s.rtcp_out,
            s.bytes_out,
            s.srtp_auth_failures,
            s.srtp_replays,
            s.malformed,
            s.unknown_ssrc,
            s.keyframe_requests,
            s.nacks_received,
            s.nacks_answered,
            s.sr_sent,
            s.rr_sent,
            s.unexpected_media,
            s.unknown_source,
            s.forwarded_out,
            s.forwarded_in,
            s.transmits_dropped,
            s.twcc_feedback_sent,
            s.nacks_over_budget,
        ];
        for (slot, value) in self.media.iter().zip(values) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    /// The media engine's counters as last copied (all zero without media).
    pub fn media(&self) -> uturn_media::MediaStats {
        let v: [u64; MEDIA_FIELDS] =
            std::array::from_fn(|i| self.media.get(i).map_or(0, |c| c.load(Ordering::Relaxed)));
        uturn_media::MediaStats {
            sessions: v[0],
            sessions_started: v[1],
            sessions_ended: v[2],
            streams: v[3],
            viewers: v[4],
            ice_checks: v[5],
            ice_rejected: v[6],
            consent_lost: v[7],
            dtls_connected: v[8],
            dtls_failures: v[9],
            rtp_in: v[10],
            rtcp_in: v[11],
            bytes_in: v[12],
            rtp_out: v[13],
            rtcp_out: v[14],
            bytes_out: v[15],
            srtp_auth_failures: v[16],
            srtp_replays: v[17],
            malformed: v[18],
            unknown_ssrc: v[19],
            keyframe_requests: v[20],
            nacks_received: v[21],
            nacks_answered: v[22],
            sr_sent: v[23],
            rr_sent: v[24],
            unexpected_media: v[25],
            unknown_source: v[26],
            forwarded_out: v[27],
            forwarded_in: v[28],
            transmits_dropped: v[29],
            twcc_feedback_sent: v[30],
            nacks_over_budget: v[31],
        }
    }

    /// Total drops over all reasons.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }
}

/// Adds `n` to a counter that only its own worker writes. A plain load and
/// store (no locked read-modify-write) is enough with one writer, and keeps
/// the per-packet cost to two ordinary memory operations; readers may see a
/// slightly old value, never a torn one.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_counters_round_trip_field_by_field() {
        let counters = Counters::default();
        assert_eq!(counters.media(), uturn_media::MediaStats::default());
        // Distinct values so a swapped pair of fields would show.
        let s = uturn_media::MediaStats {
            sessions: 1,
            viewers: 5,
            rtp_in: 1000,
            rtp_out: 4000,
            bytes_out: 123_456,
            srtp_auth_failures: 7,
            transmits_dropped: 9,
            twcc_feedback_sent: 13,
            nacks_over_budget: 11,
            ..Default::default()
        };
        counters.set_media(&s);
        assert_eq!(counters.media(), s);
    }
}
