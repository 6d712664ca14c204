//! The counters of one worker's media engine, for metrics.

use crate::router::RouterStats;

/// Counters of one worker's media engine, for metrics. The fan-out's
/// counters include routers that have ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Sessions homed on this worker now.
    pub sessions: u64,
    /// Sessions claimed by this worker so far.
    pub sessions_started: u64,
    /// Sessions ended on this worker so far.
    pub sessions_ended: u64,
    /// Streams whose fan-out runs here now.
    pub streams: u64,
    /// Viewers attached to those streams now.
    pub viewers: u64,
    /// Connectivity checks handled by an agent here.
    pub ice_checks: u64,
    /// Checks for a known ufrag that did not authenticate (or were refused
    /// by the agent: 400/401/420/487).
    pub ice_rejected: u64,
    /// Sessions ended because consent expired (RFC 7675).
    pub consent_lost: u64,
    /// DTLS handshakes completed.
    pub dtls_connected: u64,
    /// DTLS associations that failed (fingerprint, profile, timeout, protocol).
    pub dtls_failures: u64,
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTCP compounds received (publishers and viewers).
    pub rtcp_in: u64,
    /// Octets of SRTP/SRTCP received.
    pub bytes_in: u64,
    /// RTP packets sent to viewers (including retransmissions).
    pub rtp_out: u64,
    /// RTCP compounds sent.
    pub rtcp_out: u64,
    /// Octets of SRTP/SRTCP sent.
    pub bytes_out: u64,
    /// SRTP/SRTCP packets whose authentication tag did not verify.
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP packets refused by the replay window.
    pub srtp_replays: u64,
    /// Packets that did not parse (after decryption, or DTLS garbage).
    pub malformed: u64,
    /// Publisher RTP whose SSRC matches no negotiated track.
    pub unknown_ssrc: u64,
    /// Keyframe requests (PLI/FIR) sent to publishers.
    pub keyframe_requests: u64,
    /// NACKs received from viewers.
    pub nacks_received: u64,
    /// Packets retransmitted in answer to NACKs.
    pub nacks_answered: u64,
    /// NACKed packets not retransmitted: the viewer's retransmission
    /// budget was spent (docs/media.md "RTCP").
    pub nacks_over_budget: u64,
    /// Sender reports sent to viewers.
    pub sr_sent: u64,
    /// Receiver reports sent to publishers.
    pub rr_sent: u64,
    /// Transport-wide congestion control feedback messages sent to
    /// publishers (docs/media.md "Transport-wide congestion feedback").
    pub twcc_feedback_sent: u64,
    /// RTP from viewers (they are recvonly), or SRTP before DTLS finished:
    /// dropped.
    pub unexpected_media: u64,
    /// DTLS/RTP from an address no session here or elsewhere has.
    pub unknown_source: u64,
    /// Datagrams handed to another worker's mailbox.
    pub forwarded_out: u64,
    /// Datagrams received through this worker's mailbox.
    pub forwarded_in: u64,
    /// Datagrams dropped because a transmit queue was full.
    pub transmits_dropped: u64,
}

/// Adds `b`'s counters to `a`.
pub(super) fn add_router_stats(a: &mut RouterStats, b: &RouterStats) {
    a.rtp_in += b.rtp_in;
    a.bytes_in += b.bytes_in;
    a.rtcp_in += b.rtcp_in;
    a.rtp_out += b.rtp_out;
    a.rtcp_out += b.rtcp_out;
    a.bytes_out += b.bytes_out;
    a.srtp_auth_failures += b.srtp_auth_failures;
    a.srtp_replays += b.srtp_replays;
    a.malformed += b.malformed;
    a.unknown_ssrc += b.unknown_ssrc;
    a.keyframe_requests += b.keyframe_requests;
    a.nacks_received += b.nacks_received;
    a.retransmits += b.retransmits;
    a.retransmits_over_budget += b.retransmits_over_budget;
    a.sr_sent += b.sr_sent;
    a.rr_sent += b.rr_sent;
    a.twcc_feedback_sent += b.twcc_feedback_sent;
    a.twcc_late_arrivals += b.twcc_late_arrivals;
    a.transmits_dropped += b.transmits_dropped;
}
