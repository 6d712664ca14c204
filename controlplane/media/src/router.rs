//! The fan-out of one stream at its home worker (docs/media.md, "Where a
//! media packet goes" step 4 and "RTCP").
//!
//! A [`StreamRouter`] owns every SRTP context the fan-out touches: the
//! publisher's two directions and each viewer's outbound one, so each
//! context is used by one thread only (the stream's home worker) and the
//! media path takes no lock. It is sans-IO like the rest of the crate:
//!
//! ```text
//! handle_publisher_datagram(now, srtp|srtcp)  ─┐
//! attach_viewer / detach_viewer / feedback     ├─> poll_transmit()* -> poll_timeout()
//! handle_timeout(now)                         ─┘
//! ```
//!
//! Per publisher RTP packet: SRTP unprotect once into a scratch buffer (RFC
//! 3711 §3.3, RFC 7714 §8), store video in a 512-packet cache, then per
//! viewer rewrite SSRC / payload type / RFC 8285 extension ids
//! ([`uturn_rtp::rtp::rewrite`]) into a pooled transmit buffer and protect it
//! with the viewer's context. Sequence numbers and timestamps are the
//! publisher's, so a viewer's NACK names the publisher's sequence numbers
//! and is answered straight from the cache (RFC 4585 §6.2.1, as RTX per RFC
//! 4588 §4 when the viewer negotiated it).
//!
//! A viewer's audio flows at once, its video from the first keyframe after
//! it attached; attaching asks the publisher for one, and a viewer still
//! waiting after [`KEYFRAME_RETRY_INTERVAL`] asks again. The publisher's
//! own RTX and padding-only packets are not forwarded.
//!
//! - `feedback`: viewers' feedback: keyframe requests (PLI, RFC 4585
//!   §6.3.1, or FIR, RFC 5104 §4.3.1, when the publisher negotiated only
//!   `ccm fir`) at most one per [`KEYFRAME_REQUEST_INTERVAL`], NACKs
//!   answered from the cache.
//! - `report`: a sender report per viewer track about every second (RFC
//!   3550 §6.4.1) whose NTP/RTP pair follows the publisher's own SRs, a
//!   receiver report to the publisher about every second (RFC 3550 §6.4.2,
//!   A.3, A.8). Reports go at a fixed period, not RFC 3550 §6.3's
//!   randomised one: there is one sender per session and the bandwidth is
//!   a rounding error next to the media.
//! - `twcc`: transport-wide congestion control feedback to the publisher
//!   (draft-holmer-rmcat-transport-wide-cc-extensions-01) every
//!   [`FEEDBACK_INTERVAL`] while its packets arrive, when it negotiated
//!   transport-cc, so that its bandwidth estimate can grow.
//!
//! Nothing allocates per packet once the transmit pool is warm, and no
//! input makes it panic: every rejected packet is counted in
//! [`RouterStats`]. Not done: simulcast (one SSRC per track), RTX rate
//! limits (a viewer can NACK at most the 512 cached packets per message),
//! congestion control towards viewers (their transport-cc feedback is
//! ignored).

mod feedback;
mod report;
#[cfg(test)]
mod tests;
mod twcc;

pub use twcc::FEEDBACK_INTERVAL;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, trace};
use uturn_rtp::cache::PacketCache;
use uturn_rtp::keyframe::{self, VideoCodec};
use uturn_rtp::rtcp::{self, Packet};
use uturn_rtp::rtp::{self, ExtIdMap, Rewrite, RtpPacket};
use uturn_rtp::stats::{ReceiverStats, SenderStats};
use uturn_sdp::MediaKind;
use uturn_srtp::{DtlsSrtpKeys, MasterKeys, SrtpContext};

use crate::transmit::{Transmit, TransmitQueue};

/// Video packets kept for retransmission (docs/media.md: the last 512).
pub const CACHE_PACKETS: usize = 512;
/// Largest datagram the router takes from the publisher. Larger ones are
/// not RTP a browser sends (it keeps below the path MTU) and are rejected.
pub const MAX_DATAGRAM: usize = 1500;
/// At most one keyframe request to the publisher per this interval.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// A viewer still waiting for a keyframe this long after the last request
/// asks again: the request or the keyframe may have been lost.
pub const KEYFRAME_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Period of the sender reports to viewers and receiver reports to the
/// publisher: RFC 3550 §6.2 lets the 5 s minimum shrink to 360 s divided
/// by the session bandwidth in kbit/s, well under a second for video, and
/// browsers report about once a second too.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Room left after a rewritten packet: the SRTP tag (16 octets at most),
/// RTX's two-octet OSN, and the two-byte extension form growing a header.
const TAILROOM: usize = 64;
/// The `sdes:mid` header extension (RFC 8843): its value is the
/// publisher's mid, which a viewer's BUNDLE demultiplexer would take for
/// one of its own.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// One negotiated m-section, from one side's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackMap {
    /// Audio or video.
    pub kind: MediaKind,
    /// This side's mid.
    pub mid: String,
    /// The codec's payload type on this side.
    pub payload_type: u8,
    /// The RTX payload type, when RTX was negotiated (RFC 4588 §8).
    pub rtx_payload_type: Option<u8>,
    /// Publisher: its SSRC if its SDP announced it (else learned from the
    /// first packet of `payload_type`); viewer: the SSRC we send with.
    pub ssrc: Option<u32>,
    /// Publisher: its RTX SSRC if announced; viewer: the RTX SSRC we send with.
    pub rtx_ssrc: Option<u32>,
    /// The codec's RTP clock rate.
    pub clock_rate: u32,
    /// The video codec, for keyframe detection.
    pub codec: VideoCodec,
    /// Header extensions as negotiated on this side: (URI, id).
    pub extensions: Vec<(String, u8)>,
    /// `a=rtcp-fb:* nack` negotiated on this side.
    pub nack: bool,
    /// `a=rtcp-fb:* nack pli` negotiated on this side.
    pub pli: bool,
    /// `a=rtcp-fb:* ccm fir` negotiated on this side.
    pub fir: bool,
}

/// The publisher's session, as its home worker knows it once DTLS is up.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    /// The listener the publisher's packets arrive on (we answer from it).
    pub local: SocketAddr,
    /// The publisher's address.
    pub remote: SocketAddr,
    /// `local` protects our RTCP to the publisher, `remote` unprotects its media.
    pub keys: DtlsSrtpKeys,
    /// The publisher's m-sections.
    pub tracks: Vec<TrackMap>,
    /// Our sender SSRC in RRs and keyframe requests.
    pub rtcp_ssrc: u32,
}

/// A viewer to attach to a stream.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    /// The viewer session's id (unique within the registry).
    pub id: u64,
    /// The listener the viewer's packets arrive on (we send from it).
    pub local: SocketAddr,
    /// The viewer's address.
    pub remote: SocketAddr,
    /// Outbound: what we protect the viewer's media and reports with.
    pub keys: MasterKeys,
    /// The viewer's m-sections, with the SSRCs we send with.
    pub tracks: Vec<TrackMap>,
    /// Our CNAME in the viewer's SDES (RFC 3550 §6.5.1).
    pub cname: String,
}

/// RTCP feedback a viewer sent, already decrypted by its home worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Picture loss indication (RFC 4585 §6.3.1).
    Pli,
    /// Full intra request (RFC 5104 §4.3.1).
    Fir,
    /// Generic NACK (RFC 4585 §6.2.1): the lost sequence numbers of the video.
    Nack(Vec<u16>),
}

/// Counters of one stream's fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Publisher RTP packets that authenticated.
    pub rtp_in: u64,
    /// Their octets, as received (SRTP).
    pub bytes_in: u64,
    /// Publisher SRTCP packets that authenticated.
    pub rtcp_in: u64,
    /// RTP packets sent to viewers (retransmissions included).
    pub rtp_out: u64,
    /// RTCP packets sent (reports, keyframe requests).
    pub rtcp_out: u64,
    /// Octets sent, RTP and RTCP.
    pub bytes_out: u64,
    /// Publisher packets whose SRTP/SRTCP tag did not verify.
    pub srtp_auth_failures: u64,
    /// Publisher packets rejected by the replay window.
    pub srtp_replays: u64,
    /// Publisher datagrams that are not RTP/RTCP, or too long, or whose
    /// decrypted contents do not parse.
    pub malformed: u64,
    /// Publisher RTP packets of an SSRC and payload type no track has.
    pub unknown_ssrc: u64,
    /// The publisher's own RTX packets, not forwarded.
    pub rtx_dropped: u64,
    /// Padding-only packets (bandwidth probes), not forwarded.
    pub padding_dropped: u64,
    /// Video packets not sent to a viewer still waiting for a keyframe.
    pub waiting_for_keyframe: u64,
    /// Keyframe requests (PLI or FIR) sent to the publisher.
    pub keyframe_requests: u64,
    /// Keyframe requests folded into a pending one by the rate limit.
    pub keyframe_requests_coalesced: u64,
    /// NACK feedback messages received from viewers.
    pub nacks_received: u64,
    /// NACKed packets sent again (as RTX or as the original).
    pub retransmits: u64,
    /// NACKed sequence numbers the cache no longer (or never) had.
    pub retransmit_misses: u64,
    /// NACKed packets not sent again because the viewer's retransmission
    /// budget was spent (see `feedback::RtxBudget`).
    pub retransmits_over_budget: u64,
    /// Sender reports sent to viewers.
    pub sr_sent: u64,
    /// Receiver reports sent to the publisher.
    pub rr_sent: u64,
    /// Transport-wide congestion control feedback messages sent to the
    /// publisher (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    pub twcc_feedback_sent: u64,
    /// Transport-wide sequence numbers that arrived after the feedback
    /// reporting them lost had gone out, or twice: not reported again.
    pub twcc_late_arrivals: u64,
    /// Packets we failed to rewrite, build or protect (a bug or an
    /// exhausted SRTP index, never expected).
    pub send_failures: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub transmits_dropped: u64,
}

/// Why a publisher datagram was rejected. Every one is also counted in
/// [`RouterStats`]; the error is for the caller's trace logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// SRTP/SRTCP unprotect failed (bad tag, replay, truncated).
    #[error("SRTP: {0}")]
    Srtp(#[from] uturn_srtp::Error),
    /// The decrypted packet does not parse.
    #[error("malformed RTP/RTCP: {0}")]
    Malformed(#[from] uturn_rtp::Error),
    /// RTP whose SSRC and payload type match no publisher track.
    #[error("unknown SSRC {0:#010x}")]
    UnknownSsrc(u32),
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {0} octets is too long")]
    TooLong(usize),
    /// Not RTP or RTCP version 2 (RFC 7983's first-byte range 128–191).
    #[error("not an RTP or RTCP packet")]
    NotRtp,
}

/// The last sender report of one publisher SSRC (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy)]
struct LastSr {
    ntp: u64,
    rtp_timestamp: u32,
    arrival: Instant,
}

/// One of the publisher's m-sections and what we learned about it.
#[derive(Debug)]
struct InTrack {
    map: TrackMap,
    ssrc: Option<u32>,
    rtx_ssrc: Option<u32>,
    /// RFC 3550 A.1/A.3/A.8 state, from the first packet on.
    receiver: Option<ReceiverStats>,
    last_sr: Option<LastSr>,
    /// Timestamp and arrival of the newest packet, to extrapolate the RTP
    /// clock before the first SR.
    last_packet: Option<(u32, Instant)>,
}

/// One of a viewer's tracks, bound to the publisher track it carries.
#[derive(Debug)]
struct OutTrack {
    /// Index of the publisher's track.
    input: usize,
    kind: MediaKind,
    rewrite: Rewrite,
    /// The viewer's RTX SSRC and payload type, when it negotiated RTX.
    rtx: Option<(u32, u8)>,
    /// Next RTX sequence number (RFC 4588 §4: its own sequence space).
    rtx_seq: u16,
    /// Whether packets flow: audio at once, video from a keyframe on.
    started: bool,
    sender: SenderStats,
}

#[derive(Debug)]
struct Viewer {
    id: u64,
    local: SocketAddr,
    remote: SocketAddr,
    srtp: SrtpContext,
    tracks: Vec<OutTrack>,
    cname: String,
    next_report: Instant,
    rtx_budget: feedback::RtxBudget,
}

/// The fan-out of one stream: the publisher, its viewers, the packet
/// cache, and the RTCP they exchange with uturn.
#[derive(Debug)]
pub struct StreamRouter {
    local: SocketAddr,
    remote: SocketAddr,
    /// Unprotects the publisher's SRTP/SRTCP.
    inbound: SrtpContext,
    /// Protects our SRTCP to the publisher.
    outbound: SrtpContext,
    rtcp_ssrc: u32,
    tracks: Vec<InTrack>,
    /// The track whose packets the cache holds and NACKs refer to: the
    /// first video track (a NACK in [`Feedback`] carries no SSRC).
    cached_track: Option<usize>,
    cache: PacketCache,
    /// Our NTP clock minus the publisher's, in NTP units, fixed at the
    /// publisher's first SR so every track keeps the publisher's relative
    /// NTP/RTP mapping (what lip sync needs).
    ntp_offset: Option<i128>,
    viewers: Vec<Viewer>,
    keyframe: feedback::KeyframeLimiter,
    next_report: Instant,
    /// Transport-wide arrivals to report, when the publisher negotiated
    /// transport-cc.
    twcc: Option<twcc::Recorder>,
    unix_epoch: (Instant, SystemTime),
    /// The publisher's packet, decrypted in place.
    scratch: Box<[u8]>,
    /// A cached packet rewritten for a viewer before it is wrapped as RTX.
    rtx_scratch: Box<[u8]>,
    transmits: TransmitQueue,
    stats: RouterStats,
}

impl StreamRouter {
    /// A router for `publisher`'s stream. `unix_epoch` pairs an `Instant`
    /// with the wall clock at the same moment, for SR NTP timestamps.
    pub fn new(
        now: Instant,
        publisher: PublisherSpec,
        unix_epoch: (Instant, SystemTime),
    ) -> StreamRouter {
        let tracks: Vec<InTrack> = publisher
            .tracks
            .into_iter()
            .map(|map| InTrack {
                ssrc: map.ssrc,
                rtx_ssrc: map.rtx_ssrc,
                map,
                receiver: None,
                last_sr: None,
                last_packet: None,
            })
            .collect();
        let cached_track = tracks.iter().position(|t| t.map.kind == MediaKind::Video);
        let twcc = twcc::Recorder::new(now, &tracks);
        StreamRouter {
            local: publisher.local,
            remote: publisher.remote,
            inbound: SrtpContext::new(&publisher.keys.remote),
            outbound: SrtpContext::new(&publisher.keys.local),
            rtcp_ssrc: publisher.rtcp_ssrc,
            tracks,
            cached_track,
            cache: PacketCache::new(CACHE_PACKETS, MAX_DATAGRAM),
            ntp_offset: None,
            viewers: Vec::new(),
            keyframe: feedback::KeyframeLimiter::default(),
            next_report: now + REPORT_INTERVAL,
            twcc,
            unix_epoch,
            scratch: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            rtx_scratch: vec![0; MAX_DATAGRAM + TAILROOM].into_boxed_slice(),
            transmits: TransmitQueue::default(),
            stats: RouterStats::default(),
        }
    }

    /// An SRTP or SRTCP datagram from the publisher (told apart by RFC 5761
    /// §4: RTCP packet types 192–223 in the second octet).
    pub fn handle_publisher_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(), RouterError> {
        let result = self.publisher_datagram(now, datagram);
        if let Err(e) = &result {
            let counter = match e {
                RouterError::Srtp(uturn_srtp::Error::Auth) => &mut self.stats.srtp_auth_failures,
                RouterError::Srtp(uturn_srtp::Error::Replay) => &mut self.stats.srtp_replays,
                RouterError::UnknownSsrc(_) => &mut self.stats.unknown_ssrc,
                _ => &mut self.stats.malformed,
            };
            *counter += 1;
            trace!(error = %e, "publisher datagram rejected");
        }
        result
    }

    fn publisher_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), RouterError> {
        let len = datagram.len();
        let buf = self
            .scratch
            .get_mut(..len)
            .ok_or(RouterError::TooLong(len))?;
        let (first, second) = match datagram {
            [first, second, ..] => (*first, *second),
            _ => return Err(RouterError::NotRtp),
        };
        if first >> 6 != 2 {
            return Err(RouterError::NotRtp);
        }
        buf.copy_from_slice(datagram);
        if (192..=223).contains(&second) {
            let plain = self.inbound.unprotect_rtcp(buf)?;
            self.stats.rtcp_in += 1;
            self.publisher_rtcp(now, plain)
        } else {
            let plain = self.inbound.unprotect_rtp(buf)?;
            self.stats.rtp_in += 1;
            self.stats.bytes_in += len as u64;
            self.publisher_rtp(now, plain)
        }
    }

    /// Fans the decrypted packet in `scratch[..len]` out.
    fn publisher_rtp(&mut self, now: Instant, len: usize) -> Result<(), RouterError> {
        let packet = RtpPacket::new_checked(&self.scratch[..len])?;
        let (ssrc, pt) = (packet.ssrc(), packet.payload_type());
        let (seq, timestamp) = (packet.sequence_number(), packet.timestamp());
        let payload = packet.header_len()..packet.header_len() + packet.payload().len();
        // Every authenticated packet counts for the publisher's bandwidth
        // estimate, its RTX and padding probes too.
        let transport_sequence = self.twcc.as_ref().and_then(|r| r.sequence_of(&packet));
        if let Some(sequence) = transport_sequence {
            self.record_transport_sequence(now, sequence);
        }
        let Some(input) = self.classify(ssrc, pt) else {
            return Err(RouterError::UnknownSsrc(ssrc));
        };
        let Some(input) = input else {
            // The publisher's RTX stream: its retransmissions answer our
            // NACKs, which we never send, and its padding probes bandwidth
            // towards us, not towards the viewers.
            self.stats.rtx_dropped += 1;
            return Ok(());
        };
        let Some(track) = self.tracks.get_mut(input) else {
            return Ok(()); // classify returns indices of `tracks`
        };
        track
            .receiver
            .get_or_insert_with(|| ReceiverStats::new(track.map.clock_rate))
            .on_packet(seq, timestamp, now);
        track.last_packet = Some((timestamp, now));
        if payload.is_empty() {
            // Padding only (a bandwidth probe on the media SSRC).
            self.stats.padding_dropped += 1;
            return Ok(());
        }
        let plain = &self.scratch[..len];
        let payload = plain.get(payload).unwrap_or_default();
        let video = track.map.kind == MediaKind::Video;
        let keyframe = video && keyframe::is_keyframe(track.map.codec, payload);
        let cached = self.cached_track == Some(input);
        if cached {
            self.cache.insert(seq, plain);
        }

        let mut waiting = false;
        for viewer in &mut self.viewers {
            let Some(out) = viewer.tracks.iter_mut().find(|t| t.input == input) else {
                continue;
            };
            if !out.started {
                if video && !keyframe {
                    self.stats.waiting_for_keyframe += 1;
                    waiting = true;
                    continue;
                }
                out.started = true;
            }
            // `rewrite` writes every octet it counts in `written`, and only
            // those are protected and sent.
            let mut buf = self.transmits.buffer_with_len(len + TAILROOM);
            let written = rtp::rewrite(plain, &mut buf, &out.rewrite);
            match protect_and_queue(
                &mut self.transmits,
                &mut self.stats,
                &mut viewer.srtp,
                (viewer.local, viewer.remote),
                buf,
                written,
            ) {
                Ok(()) => {
                    out.sender.on_packet(payload.len());
                    if cached {
                        viewer.rtx_budget.earn(len);
                    }
                }
                Err(e) => debug!(viewer = viewer.id, error = %e, "cannot forward to viewer"),
            }
        }
        if waiting {
            self.keyframe_still_missing(now);
        }
        Ok(())
    }

    /// Which track an RTP packet belongs to: `Some(Some(i))` track `i`,
    /// `Some(None)` the publisher's RTX of some track, `None` no track.
    /// SSRCs the SDP did not announce are learned from the payload type.
    fn classify(&mut self, ssrc: u32, pt: u8) -> Option<Option<usize>> {
        if let Some(i) = self.tracks.iter().position(|t| t.ssrc == Some(ssrc)) {
            return Some(Some(i));
        }
        if self.tracks.iter().any(|t| t.rtx_ssrc == Some(ssrc)) {
            return Some(None);
        }
        if let Some(t) = self
            .tracks
            .iter_mut()
            .find(|t| t.map.rtx_payload_type == Some(pt))
        {
            t.rtx_ssrc.get_or_insert(ssrc);
            return Some(None);
        }
        // A track that has received nothing yet takes the first SSRC of its
        // payload type, even over the SSRC its SDP announced: what the
        // publisher sends is the truth.
        let i = self
            .tracks
            .iter()
            .position(|t| t.receiver.is_none() && t.map.payload_type == pt)?;
        debug!(ssrc, pt, mid = %self.tracks[i].map.mid, "learned publisher SSRC");
        self.tracks[i].ssrc = Some(ssrc);
        Some(Some(i))
    }

    /// The publisher's decrypted compound RTCP in `scratch[..len]`: only
    /// its sender reports matter to us (for RR LSR/DLSR and to regenerate
    /// viewers' SRs); its receiver reports and feedback are about media we
    /// never send it.
    fn publisher_rtcp(&mut self, now: Instant, len: usize) -> Result<(), RouterError> {
        let our_ntp = self.ntp(now);
        for packet in rtcp::parse_compound(&self.scratch[..len]) {
            if let Packet::SenderReport(sr) = packet? {
                let Some(track) = self.tracks.iter_mut().find(|t| t.ssrc == Some(sr.ssrc())) else {
                    continue;
                };
                let ntp = sr.ntp();
                track.last_sr = Some(LastSr {
                    ntp,
                    rtp_timestamp: sr.rtp_timestamp(),
                    arrival: now,
                });
                self.ntp_offset
                    .get_or_insert(i128::from(our_ntp) - i128::from(ntp));
            }
        }
        Ok(())
    }

    /// Adds (or replaces) a viewer. Audio flows to it at once, video from
    /// the next keyframe, which this asks the publisher for.
    pub fn attach_viewer(&mut self, now: Instant, viewer: ViewerSpec) {
        self.detach_viewer(viewer.id);
        let mut used = vec![false; self.tracks.len()];
        let mut tracks = Vec::with_capacity(viewer.tracks.len());
        for map in &viewer.tracks {
            // Pair each viewer m-section with the first unused publisher
            // track of its kind: the WHEP answer mirrors the publisher's.
            let Some(input) = self
                .tracks
                .iter()
                .enumerate()
                .position(|(i, t)| !used[i] && t.map.kind == map.kind)
            else {
                continue;
            };
            let Some(ssrc) = map.ssrc else {
                debug!(viewer = viewer.id, mid = %map.mid, "viewer track without SSRC");
                continue;
            };
            used[input] = true;
            let publisher = &self.tracks[input].map;
            tracks.push(OutTrack {
                input,
                kind: map.kind,
                rewrite: Rewrite {
                    ssrc,
                    payload_type: map.payload_type,
                    ext_ids: ext_id_map(publisher, map),
                },
                rtx: map.rtx_ssrc.zip(map.rtx_payload_type),
                rtx_seq: rand::random(),
                started: map.kind != MediaKind::Video,
                sender: SenderStats::default(),
            });
        }
        debug!(viewer = viewer.id, tracks = tracks.len(), "viewer attached");
        let wants_video = tracks.iter().any(|t| t.kind == MediaKind::Video);
        self.viewers.push(Viewer {
            id: viewer.id,
            local: viewer.local,
            remote: viewer.remote,
            srtp: SrtpContext::new(&viewer.keys),
            tracks,
            cname: viewer.cname,
            next_report: now + REPORT_INTERVAL,
            rtx_budget: feedback::RtxBudget::default(),
        });
        if wants_video {
            self.request_keyframe(now);
        }
    }

    /// Stops sending to a viewer; unknown ids are ignored.
    pub fn detach_viewer(&mut self, id: u64) {
        if let Some(i) = self.viewers.iter().position(|v| v.id == id) {
            self.viewers.swap_remove(i);
            debug!(viewer = id, "viewer detached");
        }
    }

    /// The publisher's selected ICE candidate pair changed: our RTCP to it
    /// goes on the new path.
    pub fn set_publisher_path(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.local = local;
        self.remote = remote;
    }

    /// Viewer `id`'s selected candidate pair changed: its media goes on the
    /// new path. Whether the viewer is attached here.
    pub fn set_viewer_path(&mut self, id: u64, local: SocketAddr, remote: SocketAddr) -> bool {
        let Some(viewer) = self.viewers.iter_mut().find(|v| v.id == id) else {
            return false;
        };
        viewer.local = local;
        viewer.remote = remote;
        true
    }

    /// Protects the compound RTCP in `buf[..built?]` for the publisher and
    /// queues it; whether it went out.
    fn send_rtcp_to_publisher(
        &mut self,
        mut buf: Vec<u8>,
        built: Result<usize, uturn_rtp::Error>,
    ) -> bool {
        let sent = built.map_err(SendError::Rtp).and_then(|n| {
            self.outbound
                .protect_rtcp(&mut buf, n)
                .map_err(SendError::Srtp)
        });
        match sent {
            Ok(n) => {
                buf.truncate(n);
                self.stats.rtcp_out += 1;
                self.stats.bytes_out += n as u64;
                self.transmits.push(self.local, self.remote, buf);
                true
            }
            Err(e) => {
                self.transmits.recycle(buf);
                self.stats.send_failures += 1;
                debug!(error = %e, "cannot send RTCP to the publisher");
                false
            }
        }
    }

    /// Timers: the pending keyframe request, transport-cc feedback,
    /// reports to the publisher and to each viewer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.transport_feedback_due().is_some_and(|at| now >= at) {
            self.send_transport_feedback();
        }
        if let Some(at) = self.keyframe_due() {
            if now >= at {
                self.send_keyframe_request(now);
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.send_receiver_report(now);
        }
        for i in 0..self.viewers.len() {
            if now >= self.viewers[i].next_report {
                self.viewers[i].next_report = now + REPORT_INTERVAL;
                self.send_sender_reports(now, i);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let viewers = self.viewers.iter().map(|v| v.next_report);
        let earliest = viewers
            .chain(self.keyframe_due())
            .chain(self.transport_feedback_due())
            .min();
        Some(earliest.map_or(self.next_report, |t| t.min(self.next_report)))
    }

    fn transport_feedback_due(&self) -> Option<Instant> {
        self.twcc.as_ref().and_then(twcc::Recorder::due)
    }

    /// Datagrams queued and not yet moved out.
    pub fn queued_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// Moves every datagram the router queued to `out`, buffers and all
    /// (no copy): how the engine collects its routers' output.
    pub fn move_transmits_into(&mut self, out: &mut TransmitQueue) {
        self.transmits.move_into(out);
    }

    /// The next datagram to send; its bytes stay valid until the next call.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.transmits.pop()
    }

    /// The attached viewers.
    pub fn viewer_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.viewers.iter().map(|v| v.id)
    }

    /// The counters.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            transmits_dropped: self.transmits.dropped(),
            ..self.stats
        }
    }

    /// Our NTP time (RFC 3550 §4) at `now`, from the wall clock pairing.
    fn ntp(&self, now: Instant) -> u64 {
        let (epoch_instant, epoch_wall) = self.unix_epoch;
        let since_unix = epoch_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            + now.saturating_duration_since(epoch_instant);
        uturn_rtp::stats::ntp_from(since_unix)
    }
}

/// The publisher's extension ids as the viewer numbers the same URIs; the
/// rest are dropped. `sdes:mid` is kept only when both mids are equal: a
/// BUNDLE receiver maps packets to m-sections by MID first (RFC 8843
/// §9.2), so the publisher's value would misroute or drop them, where
/// without it the viewer routes by the SSRC its SDP announced.
fn ext_id_map(publisher: &TrackMap, viewer: &TrackMap) -> ExtIdMap {
    let mut map = ExtIdMap::new();
    for (uri, from) in &publisher.extensions {
        if uri == MID_URI && publisher.mid != viewer.mid {
            continue;
        }
        if let Some((_, to)) = viewer.extensions.iter().find(|(u, _)| u == uri) {
            map.map(*from, *to);
        }
    }
    map
}

/// The last step of every RTP packet to a viewer: `written` bytes of
/// rewritten RTP in `buf` are SRTP-protected with the viewer's context and
/// queued to it (counted in `rtp_out`, `bytes_out`), or, on failure, the
/// buffer goes back to the pool and `send_failures` counts it.
fn protect_and_queue(
    transmits: &mut TransmitQueue,
    stats: &mut RouterStats,
    srtp: &mut SrtpContext,
    (local, remote): (SocketAddr, SocketAddr),
    mut buf: Vec<u8>,
    written: Result<usize, uturn_rtp::Error>,
) -> Result<(), SendError> {
    let sent = written
        .map_err(SendError::Rtp)
        .and_then(|n| srtp.protect_rtp(&mut buf, n).map_err(SendError::Srtp));
    match sent {
        Ok(n) => {
            buf.truncate(n);
            stats.rtp_out += 1;
            stats.bytes_out += n as u64;
            transmits.push(local, remote, buf);
            Ok(())
        }
        Err(e) => {
            transmits.recycle(buf);
            stats.send_failures += 1;
            Err(e)
        }
    }
}

/// A failure to produce a packet for sending (never expected; counted).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("RTP: {0}")]
    Rtp(uturn_rtp::Error),
    #[error("SRTP: {0}")]
    Srtp(uturn_srtp::Error),
}
