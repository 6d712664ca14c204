//! Transport-wide congestion control feedback to the publisher
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): what lets a
//! browser's send-side bandwidth estimation grow past its start bitrate.
//!
//! When the publisher negotiated the transport-wide sequence number header
//! extension and `a=rtcp-fb:* transport-cc` (session.rs lists the extension
//! in a publisher track only when both were), every SRTP-authenticated RTP
//! packet it sends (audio, video, its RTX and padding probes: the estimator
//! counts them all) has its transport-wide sequence number and arrival
//! time recorded in a fixed window. Every [`FEEDBACK_INTERVAL`] while
//! packets arrive, and at once when the pending run reaches
//! [`EARLY_FLUSH`] packets, the run goes to the publisher as
//! transport-cc feedback (RTPFB FMT 15, [`uturn_rtp::rtcp::twcc`]) behind
//! an empty RR, SRTCP-protected like the receiver reports.
//!
//! Bounds: at most [`WINDOW`] arrivals are pending. A packet whose number
//! was already reported (it arrived after the feedback that called it
//! lost) or that lies [`WINDOW`] or more ahead of the run's start is not
//! kept in the run: the late one is dropped (the publisher already counted
//! it lost), the far one first sends the pending run and then starts a new
//! run at its own number. Reordering within the window is reported as it
//! happened: each number gets its own arrival time, so a late packet has a
//! negative delta.
//!
//! Not done: the relay runs no bandwidth estimation of its own towards
//! viewers, and the transport-cc feedback viewers send is ignored.

use std::time::{Duration, Instant};

use tracing::debug;
use uturn_rtp::rtcp::{self, twcc, FeedbackHeader};
use uturn_sdp::answer::EXT_TRANSPORT_CC;
use uturn_sdp::MediaKind;

use super::{InTrack, StreamRouter, TAILROOM};

/// How often feedback goes out while packets arrive: libwebrtc's receive
/// side sends every 100 ms by default (`RemoteEstimatorProxy`,
/// modules/remote_bitrate_estimator/remote_estimator_proxy.cc, whose send
/// interval is 100 ms unless adapted between 50 and 250 ms to the rate).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// Arrivals pending at most: a number this many or more ahead of the
/// run's start is too far out of order. A run goes out at [`EARLY_FLUSH`]
/// anyway (about 3 800 packets/s at the interval, far above a browser's
/// send rate), so the rest is room for packets that jump ahead; 16 octets
/// an entry, 16 KiB per stream.
pub const WINDOW: usize = 1024;
/// A run this long goes out at once rather than at the next interval: it
/// always fits one message of [`MAX_FEEDBACK`] octets (the empty RR, 20
/// fixed octets, 2 octets per 7 statuses and 2 per large delta in the
/// worst case: 8 + 20 + 2 × 55 + 2 × 384 = 906).
pub const EARLY_FLUSH: usize = 384;
/// Largest feedback compound (empty RR + transport-cc) before SRTCP adds
/// its index and tag: one datagram on any path. A longer run is split
/// into several messages.
pub const MAX_FEEDBACK: usize = 1000;

/// The arrivals of the publisher's transport-wide sequence numbers that
/// have not been reported yet.
#[derive(Debug)]
pub(super) struct Recorder {
    /// The publisher's id for the extension.
    ext_id: u8,
    /// Arrival times are microseconds since this.
    epoch: Instant,
    /// Extended (unwrapped) sequence number of `arrivals[0]`, from the
    /// first packet on.
    base: Option<i64>,
    /// The newest extended sequence number, to unwrap the next one.
    last: i64,
    /// Arrival time of `base + i`, `None` not (yet) received.
    arrivals: Box<[Option<u64>]>,
    /// Entries in use: the highest received offset + 1.
    len: usize,
    /// When the pending run goes out.
    due: Option<Instant>,
    /// The next message's feedback packet count (draft §3.1).
    feedback_count: u8,
}

/// What recording one arrival asks the router to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Kept; nothing to send yet.
    Kept,
    /// Kept, and the run is long enough to send now.
    Flush,
    /// Already reported (or a duplicate): dropped.
    Late,
}

impl Recorder {
    /// A recorder when the publisher negotiated transport-cc: one of its
    /// tracks lists the extension (BUNDLE gives it one id on the whole
    /// transport, RFC 8285 §6, RFC 8843 §9.1).
    pub fn new(now: Instant, tracks: &[InTrack]) -> Option<Recorder> {
        let ext_id = tracks.iter().find_map(|t| {
            t.map
                .extensions
                .iter()
                .find(|(uri, _)| uri == EXT_TRANSPORT_CC)
                .map(|(_, id)| *id)
        })?;
        Some(Recorder {
            ext_id,
            epoch: now,
            base: None,
            last: 0,
            arrivals: vec![None; WINDOW].into_boxed_slice(),
            len: 0,
            due: None,
            feedback_count: 0,
        })
    }

    /// The transport-wide sequence number of a decrypted RTP packet, if it
    /// carries one.
    pub fn sequence_of(&self, packet: &uturn_rtp::rtp::RtpPacket<'_>) -> Option<u16> {
        let value: [u8; 2] = packet.extension(self.ext_id)?.try_into().ok()?;
        Some(u16::from_be_bytes(value))
    }

    /// When [`StreamRouter::send_transport_feedback`] is next due.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Records that `sequence` arrived at `now`; `Err(extended number)`
    /// when it lies outside the window (the caller sends the run and
    /// restarts it there).
    fn record_at(&mut self, now: Instant, sequence: u16) -> Result<Recorded, i64> {
        // RFC 3550 A.1-style unwrapping: the nearest extended number.
        let ext = match self.base {
            None => {
                self.base = Some(i64::from(sequence));
                i64::from(sequence)
            }
            Some(_) => self.last + i64::from(sequence.wrapping_sub(self.last as u16) as i16),
        };
        let base = self.base.unwrap_or(ext);
        let offset = ext - base;
        if offset <= -(WINDOW as i64) {
            // Far behind: the publisher's numbering started over.
            return Err(ext);
        }
        if offset < 0 {
            return Ok(Recorded::Late);
        }
        let Some(slot) = usize::try_from(offset)
            .ok()
            .and_then(|i| self.arrivals.get_mut(i))
        else {
            return Err(ext); // WINDOW or more ahead
        };
        if slot.is_some() {
            return Ok(Recorded::Late); // a duplicate keeps its first arrival
        }
        *slot = Some(micros_since(self.epoch, now));
        self.last = self.last.max(ext);
        self.len = self.len.max(offset as usize + 1);
        self.due.get_or_insert(now + FEEDBACK_INTERVAL);
        Ok(if self.len >= EARLY_FLUSH {
            Recorded::Flush
        } else {
            Recorded::Kept
        })
    }

    /// The pending run starts over at `ext` (after it was sent).
    fn restart_at(&mut self, ext: i64) {
        self.arrivals.fill(None);
        self.len = 0;
        self.base = Some(ext);
        self.last = ext;
    }
}

fn micros_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

impl StreamRouter {
    /// A publisher RTP packet with transport-wide sequence number
    /// `sequence` arrived at `now`.
    pub(super) fn record_transport_sequence(&mut self, now: Instant, sequence: u16) {
        let Some(recorder) = self.twcc.as_mut() else {
            return;
        };
        match recorder.record_at(now, sequence) {
            Ok(Recorded::Kept) => {}
            Ok(Recorded::Late) => self.stats.twcc_late_arrivals += 1,
            Ok(Recorded::Flush) => self.send_transport_feedback(),
            Err(ext) => {
                // Too far from the run: report the run, start again at this
                // one (the numbers in between are never reported).
                self.send_transport_feedback();
                if let Some(recorder) = self.twcc.as_mut() {
                    recorder.restart_at(ext);
                    if recorder.record_at(now, sequence) != Ok(Recorded::Kept) {
                        debug!(sequence, "transport-wide sequence number not kept");
                    }
                }
            }
        }
    }

    /// Sends the pending run (if any) as transport-cc feedback, in as many
    /// messages as it needs; the run then continues after it.
    pub(super) fn send_transport_feedback(&mut self) {
        let Some(mut recorder) = self.twcc.take() else {
            return;
        };
        recorder.due = None;
        let Some(base) = recorder.base else {
            self.twcc = Some(recorder);
            return;
        };
        let media_ssrc = feedback_media_ssrc(&self.tracks);
        let len = recorder.len;
        let mut at = 0usize;
        while at < len {
            let run = recorder.arrivals.get(at..len).unwrap_or_default();
            let header = FeedbackHeader {
                sender_ssrc: self.rtcp_ssrc,
                media_ssrc,
                // Truncating the extended number is the 16-bit wrap.
                base_sequence: (base + at as i64) as u16,
                feedback_count: recorder.feedback_count,
            };
            // SRTCP's index and tag go in the room after MAX_FEEDBACK.
            let mut buf = self.transmits.buffer();
            buf.resize(MAX_FEEDBACK + TAILROOM, 0);
            let built = buf
                .get_mut(..MAX_FEEDBACK)
                .ok_or(uturn_rtp::Error::BufferTooSmall)
                .and_then(|area| {
                    let rr = rtcp::write_rr(area, self.rtcp_ssrc, &[])?;
                    let rest = area.get_mut(rr..).ok_or(uturn_rtp::Error::BufferTooSmall)?;
                    let written = twcc::write_transport_feedback(rest, &header, run)?;
                    Ok((rr + written.len, written.packets))
                });
            let (built, packets) = match built {
                Ok((n, packets)) => (Ok(n), packets),
                // Never expected (the buffer holds any first entry); give
                // up on the rest of the run rather than loop.
                Err(e) => (Err(e), len - at),
            };
            if self.send_rtcp_to_publisher(buf, built) {
                self.stats.twcc_feedback_sent += 1;
            }
            recorder.feedback_count = recorder.feedback_count.wrapping_add(1);
            // The writer reports at least one entry when it succeeds (the
            // first received one sets the reference time, so its delta
            // fits); `max(1)` keeps a broken promise from looping forever.
            at += packets.max(1);
        }
        if len > 0 {
            recorder
                .arrivals
                .get_mut(..len)
                .unwrap_or_default()
                .fill(None);
            recorder.base = Some(base + len as i64);
            recorder.len = 0;
        }
        self.twcc = Some(recorder);
    }
}

/// The media SSRC in our feedback: the publisher's first video SSRC, else
/// its first audio one (libwebrtc ignores the field; it must name one of
/// the sender's streams).
fn feedback_media_ssrc(tracks: &[InTrack]) -> u32 {
    let first = |kind| {
        tracks
            .iter()
            .filter(|t| t.map.kind == kind)
            .find_map(|t| t.ssrc)
    };
    first(MediaKind::Video)
        .or_else(|| first(MediaKind::Audio))
        .unwrap_or(0)
}
