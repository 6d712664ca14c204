//! The reports the router generates: sender reports to viewers (RFC 3550
//! §6.4.1) regenerated from the publisher's, and receiver reports to the
//! publisher (RFC 3550 §6.4.2, A.3, A.8).
//!
//! Each leaves as a compound of the SR or RR then an SDES CNAME (RFC 3550
//! §6.1).

use std::time::Instant;

use tracing::debug;
// A publisher with more SSRCs than an RR has blocks for (31, RFC 3550
// §6.4.2) gets the first ones reported.
use uturn_rtp::rtcp::report::MAX_REPORTS;
use uturn_rtp::rtcp::{self, ReportBlock};
use uturn_rtp::stats;

use super::{SendError, StreamRouter};

/// Buffer size for a compound we build: an SR or RR with a block per
/// track plus an SDES CNAME is far below it.
pub(super) const MAX_RTCP: usize = 1200;
/// Our CNAME in the reports to the publisher (RFC 3550 §6.5.1: it only has
/// to be stable within the session, there is no other source of ours).
const PUBLISHER_CNAME: &str = "uturn";

/// `first` written at the start of `dst`, then an SDES CNAME for `ssrc`.
fn with_cname(
    dst: &mut [u8],
    first: Result<usize, uturn_rtp::Error>,
    ssrc: u32,
    cname: &str,
) -> Result<usize, uturn_rtp::Error> {
    let n = first?;
    let rest = dst.get_mut(n..).ok_or(uturn_rtp::Error::BufferTooSmall)?;
    Ok(n + rtcp::write_sdes_cname(rest, ssrc, cname)?)
}

impl StreamRouter {
    /// One RR to the publisher with a block per SSRC it sent us (RFC 3550
    /// A.3 loss, A.8 jitter; LSR/DLSR from its last SR, §6.4.1).
    pub(super) fn send_receiver_report(&mut self, now: Instant) {
        let mut blocks = [ReportBlock::default(); MAX_REPORTS];
        let mut count = 0;
        for track in &mut self.tracks {
            let (Some(ssrc), Some(receiver)) = (track.ssrc, track.receiver.as_mut()) else {
                continue;
            };
            let Some(slot) = blocks.get_mut(count) else {
                break;
            };
            // LSR and DLSR (RFC 3550 §6.4.1): zero before the first SR.
            let (lsr, dlsr) = track.last_sr.map_or((0, 0), |sr| {
                let delay = now.saturating_duration_since(sr.arrival);
                (stats::ntp_short(sr.ntp), stats::dlsr_from(delay))
            });
            *slot = receiver.report_block(ssrc, lsr, dlsr);
            count += 1;
        }
        if count == 0 {
            // Nothing received yet: nothing to report.
            return;
        }
        let mut buf = self.transmits.buffer();
        buf.resize(MAX_RTCP, 0);
        let rr = rtcp::write_rr(&mut buf, self.rtcp_ssrc, &blocks[..count]);
        let built = with_cname(&mut buf, rr, self.rtcp_ssrc, PUBLISHER_CNAME);
        if self.send_rtcp_to_publisher(buf, built) {
            self.stats.rr_sent += 1;
        }
    }

    /// An SR + SDES CNAME compound for each of viewer `index`'s tracks that
    /// has sent media and whose RTP clock we can place.
    pub(super) fn send_sender_reports(&mut self, now: Instant, index: usize) {
        let ntp = self.ntp(now);
        let Some(viewer) = self.viewers.get(index) else {
            return;
        };
        for t in 0..viewer.tracks.len() {
            let track = &self.viewers[index].tracks[t];
            if track.sender.packet_count() == 0 {
                continue;
            }
            let Some(rtp_timestamp) = self.rtp_timestamp_at(track.input, now, ntp) else {
                continue;
            };
            let info = track
                .sender
                .sender_info(track.rewrite.ssrc, ntp, rtp_timestamp);
            let mut buf = self.transmits.buffer();
            buf.resize(MAX_RTCP, 0);
            let viewer = &mut self.viewers[index];
            let sr = rtcp::write_sr(&mut buf, &info, &[]);
            let sent = with_cname(&mut buf, sr, info.ssrc, &viewer.cname)
                .map_err(SendError::Rtp)
                .and_then(|n| {
                    viewer
                        .srtp
                        .protect_rtcp(&mut buf, n)
                        .map_err(SendError::Srtp)
                });
            match sent {
                Ok(n) => {
                    buf.truncate(n);
                    self.stats.sr_sent += 1;
                    self.stats.rtcp_out += 1;
                    self.stats.bytes_out += n as u64;
                    self.transmits.push(viewer.local, viewer.remote, buf);
                }
                Err(e) => {
                    self.transmits.recycle(buf);
                    self.stats.send_failures += 1;
                    debug!(viewer = viewer.id, error = %e, "cannot send SR");
                }
            }
        }
    }

    /// The publisher track `input`'s RTP timestamp at `now` (our NTP time
    /// `ntp`): extrapolated from its last SR through the NTP offset fixed
    /// at the first SR, or from its newest packet before any SR.
    fn rtp_timestamp_at(&self, input: usize, now: Instant, ntp: u64) -> Option<u32> {
        let track = self.tracks.get(input)?;
        let clock_rate = i128::from(track.map.clock_rate);
        if let (Some(sr), Some(offset)) = (track.last_sr, self.ntp_offset) {
            // The publisher's NTP time now, minus the SR's: 32.32 fixed point.
            let elapsed = i128::from(ntp) - offset - i128::from(sr.ntp);
            let ticks = (elapsed * clock_rate) >> 32;
            // Truncating to 32 bits is the RTP timestamp's own wrap.
            return Some(sr.rtp_timestamp.wrapping_add(ticks as u32));
        }
        let (timestamp, arrival) = track.last_packet?;
        let elapsed = now.saturating_duration_since(arrival).as_nanos() as i128;
        let ticks = elapsed * clock_rate / 1_000_000_000;
        Some(timestamp.wrapping_add(ticks as u32))
    }
}
