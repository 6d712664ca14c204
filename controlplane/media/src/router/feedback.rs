//! Viewers' RTCP feedback at the stream's home: keyframe requests to the
//! publisher (PLI, RFC 4585 §6.3.1; FIR, RFC 5104 §4.3.1) at most one per
//! [`KEYFRAME_REQUEST_INTERVAL`], and NACKs (RFC 4585 §6.2.1) answered
//! from the packet cache, as RTX (RFC 4588 §4) where the viewer negotiated
//! it, within the viewer's [`RtxBudget`].
//!
//! The feedback message follows an empty RR so the packet is a valid
//! compound (RFC 4585 §3.1) without RFC 5506's reduced size.

use std::time::Instant;

use tracing::debug;
use uturn_rtp::rtcp;
use uturn_rtp::rtp;
use uturn_sdp::MediaKind;

use super::{
    protect_and_queue, report, Feedback, StreamRouter, CACHE_PACKETS, KEYFRAME_REQUEST_INTERVAL,
    KEYFRAME_RETRY_INTERVAL, TAILROOM,
};

/// Most NACKed sequence numbers answered from one feedback message: a
/// viewer cannot ask for more than the cache holds.
const MAX_NACKS_PER_FEEDBACK: usize = CACHE_PACKETS;

/// Octets of retransmission a viewer may have saved up: about 2 s of a
/// 1 Mbit/s video, or a third of what the packet cache holds.
const RTX_BUDGET_MAX: usize = 256 * 1024;
/// What a new viewer starts with: enough for the losses of its first
/// frames.
const RTX_BUDGET_START: usize = 64 * 1024;

/// How much a viewer may have retransmitted, in octets. Without a limit a
/// viewer could NACK the whole cache over and over, and the relay would
/// spend its CPU (an SRTP protect per packet) and its uplink on it.
/// libwebrtc's RTP sender limits retransmissions the same way, with a
/// rate limiter set to its bandwidth estimate over a 1 s window; uturn
/// has no estimate towards viewers, so a viewer earns half of the octets
/// of the cached (video) track sent to it: retransmissions can add at
/// most half of the stream's rate, whatever the viewer asks. Counted in
/// place, no clock needed (sans-IO).
#[derive(Debug)]
pub(super) struct RtxBudget {
    octets: usize,
}

impl Default for RtxBudget {
    fn default() -> Self {
        Self {
            octets: RTX_BUDGET_START,
        }
    }
}

impl RtxBudget {
    /// A video packet of `len` octets went to the viewer.
    pub(super) fn earn(&mut self, len: usize) {
        self.octets = self.octets.saturating_add(len / 2).min(RTX_BUDGET_MAX);
    }

    /// Takes `len` octets if the budget has them.
    fn spend(&mut self, len: usize) -> bool {
        match self.octets.checked_sub(len) {
            Some(left) => {
                self.octets = left;
                true
            }
            None => false,
        }
    }
}

/// The keyframe request rate limit: one now, the rest folded into one
/// pending request sent when the interval is over (so a late joiner's
/// request is delayed, never lost).
#[derive(Debug, Default)]
pub(super) struct KeyframeLimiter {
    last: Option<Instant>,
    pending: bool,
    /// RFC 5104 §4.3.1.1: FIR's command sequence number, one per new request.
    fir_seq: u8,
}

/// Writes an empty RR from `sender_ssrc` then a PLI, or a FIR with `fir_seq`,
/// for `media_ssrc`.
fn keyframe_request(
    dst: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    fir: bool,
    fir_seq: u8,
) -> Result<usize, uturn_rtp::Error> {
    let rr = rtcp::write_rr(dst, sender_ssrc, &[])?;
    let rest = dst.get_mut(rr..).ok_or(uturn_rtp::Error::BufferTooSmall)?;
    let feedback = if fir {
        rtcp::write_fir(rest, sender_ssrc, media_ssrc, fir_seq)?
    } else {
        rtcp::write_pli(rest, sender_ssrc, media_ssrc)?
    };
    Ok(rr + feedback)
}

impl StreamRouter {
    /// Feedback from viewer `viewer`: keyframe requests go to the
    /// publisher (rate-limited), NACKs are answered from the cache.
    ///
    /// Feedback from a viewer that is not (or no longer) attached is
    /// ignored: it may still be in a mailbox after a detach.
    pub fn handle_feedback(&mut self, now: Instant, viewer: u64, feedback: Feedback) {
        if !self.viewers.iter().any(|v| v.id == viewer) {
            return;
        }
        match feedback {
            Feedback::Pli | Feedback::Fir => self.request_keyframe(now),
            Feedback::Nack(lost) => {
                self.stats.nacks_received += 1;
                self.answer_nack(viewer, &lost);
            }
        }
    }

    /// Sends each NACKed packet the cache holds to `viewer` again.
    fn answer_nack(&mut self, viewer: u64, lost: &[u16]) {
        let Some(input) = self.cached_track else {
            return;
        };
        let Some(viewer) = self.viewers.iter_mut().find(|v| v.id == viewer) else {
            return;
        };
        let Some(out) = viewer.tracks.iter_mut().find(|t| t.input == input) else {
            return;
        };
        if !out.started {
            // It has received no video yet, so nothing it could miss.
            return;
        }
        for &seq in lost.iter().take(MAX_NACKS_PER_FEEDBACK) {
            let Some(original) = self.cache.get(seq) else {
                self.stats.retransmit_misses += 1;
                continue;
            };
            // Charged as the plaintext packet: RTX's two octets and the
            // tag are the same for every viewer of a profile.
            if !viewer.rtx_budget.spend(original.len()) {
                self.stats.retransmits_over_budget += 1;
                continue;
            }
            // Both `rewrite` and `write_rtx` write every octet they count.
            let mut buf = self.transmits.buffer_with_len(original.len() + TAILROOM);
            let written = match out.rtx {
                Some((rtx_ssrc, rtx_pt)) => {
                    rtp::rewrite(original, &mut self.rtx_scratch, &out.rewrite).and_then(|n| {
                        let seq = out.rtx_seq;
                        out.rtx_seq = seq.wrapping_add(1);
                        rtp::write_rtx(&self.rtx_scratch[..n], &mut buf, rtx_ssrc, rtx_pt, seq)
                    })
                }
                None => rtp::rewrite(original, &mut buf, &out.rewrite),
            };
            match protect_and_queue(
                &mut self.transmits,
                &mut self.stats,
                &mut viewer.srtp,
                (viewer.local, viewer.remote),
                buf,
                written,
            ) {
                Ok(()) => self.stats.retransmits += 1,
                Err(e) => debug!(viewer = viewer.id, seq, error = %e, "cannot retransmit"),
            }
        }
    }

    /// A viewer's video is still waiting for a keyframe: asks again once
    /// the last request is [`KEYFRAME_RETRY_INTERVAL`] old.
    pub(super) fn keyframe_still_missing(&mut self, now: Instant) {
        let last = self.keyframe.last;
        if last.is_some_and(|last| now >= last + KEYFRAME_RETRY_INTERVAL) {
            self.request_keyframe(now);
        }
    }

    /// Asks the publisher for a keyframe now, or once the rate limit allows.
    pub(super) fn request_keyframe(&mut self, now: Instant) {
        match self.keyframe.last {
            Some(last) if now < last + KEYFRAME_REQUEST_INTERVAL => {
                if self.keyframe.pending {
                    self.stats.keyframe_requests_coalesced += 1;
                }
                self.keyframe.pending = true;
            }
            _ => self.send_keyframe_request(now),
        }
    }

    /// Sends a PLI (or FIR) for the first video track whose SSRC we know.
    /// With none known yet the request stays pending: the publisher's
    /// first video frame is a keyframe anyway.
    pub(super) fn send_keyframe_request(&mut self, now: Instant) {
        let Some(track) = self
            .tracks
            .iter()
            .find(|t| t.map.kind == MediaKind::Video && t.ssrc.is_some())
        else {
            self.keyframe.pending = self.tracks.iter().any(|t| t.map.kind == MediaKind::Video);
            return;
        };
        let media_ssrc = track.ssrc.unwrap_or_default();
        let fir = track.map.fir && !track.map.pli;
        let fir_seq = self.keyframe.fir_seq;
        let mut buf = self.transmits.buffer();
        buf.resize(report::MAX_RTCP, 0);
        let built = keyframe_request(&mut buf, self.rtcp_ssrc, media_ssrc, fir, fir_seq);
        self.keyframe.last = Some(now);
        self.keyframe.pending = false;
        if fir {
            self.keyframe.fir_seq = fir_seq.wrapping_add(1);
        }
        if self.send_rtcp_to_publisher(buf, built) {
            self.stats.keyframe_requests += 1;
            debug!(media_ssrc, fir, "keyframe requested");
        }
    }

    pub(super) fn keyframe_due(&self) -> Option<Instant> {
        if !self.keyframe.pending {
            return None;
        }
        // No request went out yet (SSRC unknown): the first video packet
        // teaches it, and the next timer tick sends.
        Some(
            self.keyframe
                .last
                .map_or(self.next_report, |last| last + KEYFRAME_REQUEST_INTERVAL),
        )
    }
}
