//! A sans-IO WebRTC peer, for tests and the load generator (the relay does
//! not use it): it offers like Chromium, then does ICE as a controlling
//! full agent, DTLS as the client, and sends (publisher) or receives
//! (viewer) SRTP.
//!
//! Like the rest of uturn-media it has no sockets and no clock: the caller
//! moves datagrams and passes `Instant`s.
//!
//! ```text
//!  Client::new(now, config) ─► offer() ─► (WHIP/WHEP POST) ─► accept_answer(now, answer)
//!  loop:
//!    handle_datagram(now, from, datagram)   from the server
//!    handle_timeout(now)                    at poll_timeout()
//!    send_rtp / send_pli / send_nack        once DtlsConnected
//!    poll_transmit(buf) → (destination, len) to send; poll_event() → ClientEvent
//! ```
//!
//! What it speaks, and where it is specified:
//!
//! - SDP offer (RFC 8829 §5.2) shaped like Chromium's: BUNDLE (RFC 8843),
//!   rtcp-mux (RFC 8858), rtcp-rsize (RFC 5506), mid, `setup:actpass`
//!   (RFC 8842), sha-256 fingerprint (RFC 8122), Opus 111, VP8 96 + RTX 97
//!   (RFC 4588), extmaps mid/abs-send-time/transport-cc, rtcp-fb nack, nack
//!   pli, ccm fir, transport-cc. A publisher is `sendonly` with `a=ssrc`
//!   lines, a viewer `recvonly`. See `sdp`.
//! - ICE (RFC 8445 §7.2): Binding requests with USE-CANDIDATE every 50 ms
//!   until one succeeds, then consent checks every 5 s (RFC 7675). See `ice`.
//! - DTLS-SRTP (RFC 5764) through `uturn_dtls`, as the DTLS client
//!   (the server answers `setup:passive`).
//! - SRTP (RFC 3711, RFC 7714) through `uturn_srtp`; RTP (RFC 3550) with
//!   one-byte header extensions (RFC 8285); RTCP: SR or RR with SDES every
//!   second, PLI (RFC 4585 §6.3.1), generic NACK (§6.2.1), in reduced size
//!   (RFC 5506) when alone.
//!
//! Once warm, sending or receiving a packet allocates nothing: datagrams
//! live in recycled buffers, events are `Copy`-sized.

mod ice;
mod packet;
mod sdp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Event as DtlsEvent};
use uturn_ice::Credentials;
use uturn_rtp::keyframe::{is_keyframe, VideoCodec};
use uturn_rtp::rtcp::{self, Packet as RtcpPacket};
use uturn_rtp::rtp::RtpPacket;
use uturn_rtp::stats::{ntp_from, ReceiverStats, SenderStats};
use uturn_sdp::{CodecName, MediaKind};
use uturn_srtp::{Profile, Role, SrtpContext};
use uturn_stun::{classify, Message, PacketKind, TransactionId};

use crate::signal::Kind;
use ice::IceState;
use packet::RtpHeader;
use sdp::{LocalTrack, RemoteDescription, RemoteMedia};

pub use packet::vp8_payload;

/// The largest datagram the client builds; RTP payloads must leave room
/// for the header, extensions and SRTP tag.
pub const MAX_DATAGRAM: usize = 1500;

/// How often a connected client sends its RTCP report (SR or RR + SDES).
/// RFC 3550 §6.2 would allow less often; one second keeps the relay's
/// statistics moving in short tests.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Bound on queued datagrams and on unpolled events.
const MAX_QUEUED: usize = 4096;

/// Transaction ids of recent checks kept to match late answers.
const RECENT_CHECKS: usize = 8;

/// A fixed NTP epoch for the peer's sender reports: the client has no wall
/// clock, and only differences between SR timestamps matter to receivers
/// (RFC 3550 §6.4.1 LSR/DLSR). 2023-11-14T22:13:20Z.
const NTP_BASE: Duration = Duration::from_secs(1_700_000_000);

/// What kind of peer to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Publisher (WHIP, sends) or viewer (WHEP, receives).
    pub kind: Kind,
    /// Offer an Opus m-section.
    pub audio: bool,
    /// Offer a VP8 m-section.
    pub video: bool,
    /// Offer RTX for VP8.
    pub rtx: bool,
    /// SRTP profiles offered in DTLS `use_srtp`, preference order.
    pub profiles: Vec<Profile>,
}

impl ClientConfig {
    /// A publisher of audio and video with RTX and both profiles.
    pub fn publisher() -> ClientConfig {
        ClientConfig {
            kind: Kind::Publisher,
            audio: true,
            video: true,
            rtx: true,
            profiles: DtlsConfig::default().profiles,
        }
    }

    /// A viewer of audio and video with RTX and both profiles.
    pub fn viewer() -> ClientConfig {
        ClientConfig {
            kind: Kind::Viewer,
            ..ClientConfig::publisher()
        }
    }
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connectivity check succeeded; DTLS starts.
    IceConnected,
    /// DTLS finished: SRTP flows with this profile.
    DtlsConnected {
        /// The negotiated SRTP profile.
        profile: Profile,
    },
    /// An RTP packet arrived and authenticated.
    Rtp {
        /// Which m-section it belongs to (by payload type).
        kind: MediaKind,
        /// Its SSRC.
        ssrc: u32,
        /// Its payload type.
        payload_type: u8,
        /// Its sequence number (for RTX, of the RTX stream).
        sequence_number: u16,
        /// Payload length, padding excluded.
        payload_len: usize,
        /// The payload starts a VP8 key frame (for RTX, after the OSN).
        keyframe: bool,
        /// It came with the RTX payload type (RFC 4588).
        rtx: bool,
    },
    /// An SRTCP compound arrived and authenticated; what it held.
    Rtcp {
        /// Picture Loss Indications.
        pli: u32,
        /// Full Intra Request packets.
        fir: u32,
        /// Generic NACK packets.
        nack: u32,
        /// Sender reports.
        sr: u32,
        /// Receiver reports.
        rr: u32,
    },
    /// The DTLS handshake or association failed.
    DtlsFailed(uturn_dtls::Error),
    /// No answer to consent checks for 30 s (RFC 7675 §5.1).
    ConsentLost,
    /// The server closed DTLS (close_notify).
    Closed,
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The answer could not be used.
    #[error("unusable SDP answer: {0}")]
    Answer(String),
    /// `accept_answer` has not been called.
    #[error("no answer applied yet")]
    NoAnswer,
    /// DTLS is not connected (yet, or any more).
    #[error("not connected")]
    NotConnected,
    /// Only a publisher sends media.
    #[error("only a publisher sends media")]
    NotPublisher,
    /// Only a viewer sends feedback about received media.
    #[error("only a viewer sends PLI or NACK")]
    NotViewer,
    /// That kind of media was not negotiated.
    #[error("no negotiated {0:?} m-section")]
    NoMedia(MediaKind),
    /// The packet does not fit [`MAX_DATAGRAM`].
    #[error("packet does not fit in a datagram")]
    PacketTooLarge,
    /// DTLS (or certificate generation) failed.
    #[error(transparent)]
    Dtls(#[from] uturn_dtls::Error),
    /// SRTP protect failed.
    #[error(transparent)]
    Srtp(#[from] uturn_srtp::Error),
    /// Writing an RTCP packet failed.
    #[error(transparent)]
    Rtp(#[from] uturn_rtp::Error),
    /// Writing a STUN message failed.
    #[error(transparent)]
    Stun(#[from] uturn_stun::Error),
}

/// Counters for the load generator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received and authenticated.
    pub rtp_received: u64,
    /// RTP payload bytes received.
    pub rtp_received_bytes: u64,
    /// SRTCP compounds sent.
    pub rtcp_sent: u64,
    /// SRTCP compounds received and authenticated.
    pub rtcp_received: u64,
    /// SRTP/SRTCP packets that failed to authenticate or were replays.
    pub srtp_errors: u64,
    /// Datagrams ignored (wrong source, unknown kind, malformed).
    pub ignored: u64,
    /// Queued datagrams dropped because nobody polled them.
    pub transmits_dropped: u64,
    /// Events dropped because nobody polled them.
    pub events_dropped: u64,
}

/// Outgoing datagrams in recycled buffers.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl Outbox {
    /// An empty buffer with `MAX_DATAGRAM` zeroed bytes to write into.
    fn buffer(&mut self) -> Vec<u8> {
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MAX_DATAGRAM));
        buf.clear();
        buf.resize(MAX_DATAGRAM, 0);
        buf
    }

    /// Queues a datagram; past [`MAX_QUEUED`] the oldest is dropped, so a
    /// caller that stops polling cannot grow memory without bound.
    fn push(&mut self, buf: Vec<u8>) -> bool {
        let mut dropped = false;
        if self.queue.len() >= MAX_QUEUED {
            if let Some(old) = self.queue.pop_front() {
                self.spare.push(old);
                dropped = true;
            }
        }
        self.queue.push_back(buf);
        dropped
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.spare.push(buf);
    }
}

/// Events not yet polled; past [`MAX_QUEUED`] the oldest is dropped (a
/// load generator may read only [`ClientStats`]).
#[derive(Debug, Default)]
struct Events {
    queue: VecDeque<ClientEvent>,
    dropped: u64,
}

impl Events {
    fn push(&mut self, event: ClientEvent) {
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(event);
    }
}

/// Per kind: what we send (publisher) and what we measure (viewer).
#[derive(Debug)]
struct Stream {
    local: LocalTrack,
    seq: u16,
    timestamp_base: u32,
    sent: SenderStats,
    /// The SSRC received on this m-section and its statistics.
    received: Option<(u32, ReceiverStats)>,
}

/// A WebRTC peer; see the module docs.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    start: Instant,
    /// The latest `now` seen, for calls that take none.
    now: Instant,
    credentials: Credentials,
    certificate: Certificate,
    tie_breaker: u64,
    session_id: u64,
    cname: String,
    stream_id: String,
    /// Our RTCP SSRC as a viewer (RFC 3550 §6.4.2 "SSRC of sender").
    receiver_ssrc: u32,
    /// Index 0 audio, 1 video.
    streams: [Stream; 2],
    transport_seq: u16,
    fir_seq: u8,
    remote: Option<RemoteDescription>,
    /// `server-ufrag:our-ufrag` (RFC 8445 §7.2.2).
    username: String,
    ice: IceState,
    recent_checks: [TransactionId; RECENT_CHECKS],
    check_count: usize,
    dtls: Option<Endpoint>,
    tx: Option<SrtpContext>,
    rx: Option<SrtpContext>,
    profile: Option<Profile>,
    closed: bool,
    next_report: Option<Instant>,
    outbox: Outbox,
    events: Events,
    /// Incoming datagrams are unprotected in a copy here.
    scratch: Vec<u8>,
    stats: ClientStats,
}

impl Client {
    /// A new peer with its own ICE credentials, certificate and SSRCs.
    pub fn new(now: Instant, config: ClientConfig) -> Result<Client, ClientError> {
        let certificate = Certificate::generate()?;
        Ok(Client::with_certificate(now, config, certificate))
    }

    /// Like [`Client::new`] with a given certificate: generating one per
    /// peer costs a key pair, which a load generator can share.
    pub fn with_certificate(
        now: Instant,
        config: ClientConfig,
        certificate: Certificate,
    ) -> Client {
        let mut rng = rand::thread_rng();
        let stream = |rng: &mut rand::rngs::ThreadRng| Stream {
            local: LocalTrack {
                ssrc: rng.gen(),
                rtx_ssrc: rng.gen(),
            },
            seq: rng.gen(),
            timestamp_base: rng.gen(),
            sent: SenderStats::new(),
            received: None,
        };
        let streams = [stream(&mut rng), stream(&mut rng)];
        let token: u64 = rng.gen();
        Client {
            start: now,
            now,
            credentials: Credentials::random(),
            certificate,
            tie_breaker: rng.gen(),
            session_id: rng.gen::<u64>() >> 1,
            cname: format!("c{token:016x}"),
            stream_id: format!("s{token:016x}"),
            receiver_ssrc: rng.gen(),
            streams,
            transport_seq: rng.gen(),
            fir_seq: 0,
            remote: None,
            username: String::new(),
            ice: IceState::Idle,
            recent_checks: [TransactionId::default(); RECENT_CHECKS],
            check_count: 0,
            dtls: None,
            tx: None,
            rx: None,
            profile: None,
            closed: false,
            next_report: None,
            outbox: Outbox::default(),
            events: Events::default(),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            stats: ClientStats::default(),
            config,
        }
    }

    /// The SDP offer (see the module docs for its shape).
    pub fn offer(&self) -> String {
        let publisher = self.config.kind == Kind::Publisher;
        sdp::offer(&sdp::OfferParams {
            session_id: self.session_id,
            ufrag: self.credentials.ufrag(),
            pwd: self.credentials.pwd(),
            fingerprint: self.certificate.fingerprint(),
            publisher,
            audio: self.config.audio.then_some(self.streams[0].local),
            video: self.config.video.then_some(self.streams[1].local),
            rtx: self.config.rtx,
            cname: &self.cname,
            stream_id: &self.stream_id,
        })
    }

    /// Applies the server's answer (its ICE credentials and candidate, its
    /// fingerprint, the negotiated payload types, extension ids and, for a
    /// viewer, its SSRCs) and sends the first connectivity check.
    pub fn accept_answer(&mut self, now: Instant, answer: &str) -> Result<(), ClientError> {
        let remote = sdp::parse_answer(answer)?;
        if remote.media.is_empty() {
            return Err(ClientError::Answer("no usable m-section".into()));
        }
        self.username = format!("{}:{}", remote.ufrag, self.credentials.ufrag());
        self.remote = Some(remote);
        self.ice = IceState::Checking { next: now };
        self.handle_timeout(now);
        Ok(())
    }

    /// The server's address: the answer's first UDP candidate.
    pub fn server_address(&self) -> Option<SocketAddr> {
        self.remote.as_ref().map(|r| r.address)
    }

    /// The negotiated SRTP profile, once DTLS is up.
    pub fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// Our SSRC for `kind` (what a publisher's offer announces).
    pub fn local_ssrc(&self, kind: MediaKind) -> Option<u32> {
        stream_index(kind).map(|i| self.streams[i].local.ssrc)
    }

    /// Our ICE credentials (the offer's ufrag and pwd).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Our certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.certificate.fingerprint()
    }

    /// Whether DTLS is connected and the client not closed.
    pub fn is_connected(&self) -> bool {
        self.tx.is_some() && !self.closed
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            events_dropped: self.events.dropped,
            ..self.stats
        }
    }

    /// A datagram from `from`. Anything not from the server, or not STUN,
    /// DTLS or SRTP, is ignored (and counted).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.now = self.now.max(now);
        if self.closed || self.server_address() != Some(from) {
            self.stats.ignored += 1;
            return;
        }
        match classify(datagram) {
            PacketKind::Stun => self.on_stun(now, datagram),
            PacketKind::Dtls => {
                if let Some(dtls) = self.dtls.as_mut() {
                    // Refused datagrams change nothing; failures come as events.
                    let _ = dtls.handle_datagram(now, datagram);
                    self.drain_dtls(now);
                } else {
                    self.stats.ignored += 1;
                }
            }
            PacketKind::Rtp => self.on_srtp(now, datagram),
            _ => self.stats.ignored += 1,
        }
    }

    /// Timers: checks and consent, DTLS retransmissions, RTCP reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.closed {
            return;
        }
        match self.ice {
            IceState::Checking { next } if now >= next => {
                self.send_check(true);
                self.ice = IceState::Checking {
                    next: now + ice::CHECK_INTERVAL,
                };
            }
            IceState::Connected { expires, .. } if now >= expires => {
                self.ice = IceState::Done;
                self.events.push(ClientEvent::ConsentLost);
                self.shut();
                return;
            }
            IceState::Connected { next, expires } if now >= next => {
                self.send_check(false);
                self.ice = IceState::Connected {
                    next: now + ice::CONSENT_INTERVAL,
                    expires,
                };
            }
            _ => {}
        }
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.handle_timeout(now);
            self.drain_dtls(now);
        }
        if self.next_report.is_some_and(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            if let Err(e) = self.send_report(now) {
                tracing::debug!(error = %e, "client RTCP report not sent");
            }
        }
    }

    /// The next datagram: `buf` is cleared and then holds it. Returns the
    /// destination and the length.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<(SocketAddr, usize)> {
        let destination = self.server_address()?;
        let datagram = self.outbox.queue.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&datagram);
        self.outbox.recycle(datagram);
        Some((destination, buf.len()))
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.ice.timeout(),
            self.dtls.as_ref().and_then(Endpoint::poll_timeout),
            self.next_report,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.queue.pop_front()
    }

    /// Publisher: sends one RTP packet of `kind` with the negotiated
    /// payload type, our SSRC, the next sequence number, a timestamp from
    /// `now`, and the mid, abs-send-time and transport-cc extensions where
    /// negotiated; SRTP-protected and queued.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        kind: MediaKind,
        payload: &[u8],
        marker: bool,
    ) -> Result<(), ClientError> {
        if self.config.kind != Kind::Publisher {
            return Err(ClientError::NotPublisher);
        }
        let remote = self.remote.as_ref().ok_or(ClientError::NoAnswer)?;
        let (Some(tx), false) = (self.tx.as_mut(), self.closed) else {
            return Err(ClientError::NotConnected);
        };
        let media = remote_media(remote, kind)?;
        let index = stream_index(kind).ok_or(ClientError::NoMedia(kind))?;
        let stream = &mut self.streams[index];
        let elapsed = now.saturating_duration_since(self.start);
        let ticks = elapsed.as_micros() * u128::from(media.clock_rate) / 1_000_000;
        // RTP timestamps wrap (RFC 3550 §5.1): truncation is the point.
        let timestamp = stream.timestamp_base.wrapping_add(ticks as u32);
        let header = RtpHeader {
            payload_type: media.payload_type,
            marker,
            sequence_number: stream.seq,
            timestamp,
            ssrc: stream.local.ssrc,
        };
        let abs = packet::abs_send_time(elapsed);
        let twcc = self.transport_seq.to_be_bytes();
        let mut extensions: [packet::Extension<'_>; 3] = [(0, &[]); 3];
        let mut n_ext = 0;
        for (id, data) in [
            (media.ext_mid, media.mid.as_bytes()),
            (media.ext_abs_send_time, &abs[..]),
            (media.ext_transport_cc, &twcc[..]),
        ] {
            if let (Some(id), Some(slot)) = (id, extensions.get_mut(n_ext)) {
                *slot = (id, data);
                n_ext += 1;
            }
        }
        let mut buf = self.outbox.buffer();
        let tag = tx.profile().rtp_tag_len();
        let room = MAX_DATAGRAM - tag;
        let result = buf
            .get_mut(..room)
            .ok_or(ClientError::PacketTooLarge)
            .and_then(|b| packet::write_rtp(b, &header, &extensions[..n_ext], payload))
            .and_then(|len| Ok(tx.protect_rtp(&mut buf, len)?));
        match result {
            Ok(len) => {
                buf.truncate(len);
                if self.outbox.push(buf) {
                    self.stats.transmits_dropped += 1;
                }
                stream.seq = stream.seq.wrapping_add(1);
                stream.sent.on_packet(payload.len());
                self.transport_seq = self.transport_seq.wrapping_add(1);
                self.stats.rtp_sent += 1;
                Ok(())
            }
            Err(e) => {
                self.outbox.recycle(buf);
                Err(e)
            }
        }
    }

    /// Viewer: asks for a key frame of the video (PLI, RFC 4585 §6.3.1).
    pub fn send_pli(&mut self) -> Result<(), ClientError> {
        let media_ssrc = self.viewer_video_ssrc()?;
        let sender = self.receiver_ssrc;
        self.send_rtcp(|dst| Ok(rtcp::write_pli(dst, sender, media_ssrc)?))
    }

    /// Viewer: asks for a key frame with FIR (RFC 5104 §4.3.1).
    pub fn send_fir(&mut self) -> Result<(), ClientError> {
        let media_ssrc = self.viewer_video_ssrc()?;
        let sender = self.receiver_ssrc;
        let seq = self.fir_seq;
        self.send_rtcp(|dst| Ok(rtcp::write_fir(dst, sender, media_ssrc, seq)?))?;
        self.fir_seq = self.fir_seq.wrapping_add(1);
        Ok(())
    }

    /// Viewer: reports `lost` video sequence numbers (generic NACK,
    /// RFC 4585 §6.2.1).
    pub fn send_nack(&mut self, lost: &[u16]) -> Result<(), ClientError> {
        let media_ssrc = self.viewer_video_ssrc()?;
        let sender = self.receiver_ssrc;
        self.send_rtcp(|dst| Ok(rtcp::write_nack(dst, sender, media_ssrc, lost)?))
    }

    /// Closes DTLS (close_notify queued) and stops all timers.
    pub fn close(&mut self) {
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.close();
        }
        self.drain_dtls(self.now);
        self.shut();
    }

    fn viewer_video_ssrc(&self) -> Result<u32, ClientError> {
        if self.config.kind != Kind::Viewer {
            return Err(ClientError::NotViewer);
        }
        let remote = self.remote.as_ref().ok_or(ClientError::NoAnswer)?;
        let media = remote_media(remote, MediaKind::Video)?;
        // A WHEP answer announces the relay's SSRC; without one, 0 still
        // names "the" video stream of this single-stream session.
        Ok(media.ssrc.unwrap_or(0))
    }

    /// Writes one RTCP compound with `write`, protects and queues it.
    fn send_rtcp(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<usize, ClientError>,
    ) -> Result<(), ClientError> {
        let (Some(tx), false) = (self.tx.as_mut(), self.closed) else {
            return Err(ClientError::NotConnected);
        };
        let mut buf = self.outbox.buffer();
        let room = MAX_DATAGRAM - tx.profile().rtcp_overhead();
        let result = buf
            .get_mut(..room)
            .ok_or(ClientError::PacketTooLarge)
            .and_then(write)
            .and_then(|len| Ok(tx.protect_rtcp(&mut buf, len)?));
        match result {
            Ok(len) => {
                buf.truncate(len);
                if self.outbox.push(buf) {
                    self.stats.transmits_dropped += 1;
                }
                self.stats.rtcp_sent += 1;
                Ok(())
            }
            Err(e) => {
                self.outbox.recycle(buf);
                Err(e)
            }
        }
    }

    /// The periodic report: a publisher's SR per sending SSRC, a viewer's
    /// RR with a block per received SSRC, each with SDES CNAME (RFC 3550
    /// §6.1: a compound starts with SR or RR and carries CNAME).
    fn send_report(&mut self, now: Instant) -> Result<(), ClientError> {
        let elapsed = now.saturating_duration_since(self.start);
        let ntp = ntp_from(NTP_BASE + elapsed);
        let cname = std::mem::take(&mut self.cname);
        let publisher = self.config.kind == Kind::Publisher;
        let receiver_ssrc = self.receiver_ssrc;
        let mut result = Ok(());
        for index in 0..self.streams.len() {
            let Some(remote) = self.remote.as_ref() else {
                break;
            };
            let Some(kind) = [MediaKind::Audio, MediaKind::Video].get(index).copied() else {
                break;
            };
            let Ok(media) = remote_media(remote, kind) else {
                continue;
            };
            let clock_rate = media.clock_rate;
            let stream = &mut self.streams[index];
            let (ssrc, block) = if publisher {
                let ticks = elapsed.as_micros() * u128::from(clock_rate) / 1_000_000;
                let rtp_ts = stream.timestamp_base.wrapping_add(ticks as u32);
                let info = stream.sent.sender_info(stream.local.ssrc, ntp, rtp_ts);
                (stream.local.ssrc, Err(info))
            } else {
                let Some((ssrc, stats)) = stream.received.as_mut() else {
                    continue;
                };
                (receiver_ssrc, Ok(stats.report_block(*ssrc, 0, 0)))
            };
            let r = self.send_rtcp(|dst| {
                let n = match block {
                    Err(info) => rtcp::write_sr(dst, &info, &[])?,
                    Ok(block) => rtcp::write_rr(dst, ssrc, &[block])?,
                };
                let rest = dst.get_mut(n..).ok_or(ClientError::PacketTooLarge)?;
                Ok(n + rtcp::write_sdes_cname(rest, ssrc, &cname)?)
            });
            if r.is_err() {
                result = r;
            }
        }
        self.cname = cname;
        result
    }

    fn send_check(&mut self, nominate: bool) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        let tid = TransactionId(rand::random());
        let slot = self.check_count % RECENT_CHECKS;
        self.check_count += 1;
        if let Some(s) = self.recent_checks.get_mut(slot) {
            *s = tid;
        }
        let mut buf = self.outbox.buffer();
        match ice::write_check(
            &mut buf,
            tid,
            &self.username,
            &remote.pwd,
            self.tie_breaker,
            nominate,
        ) {
            Ok(_) => {
                if self.outbox.push(buf) {
                    self.stats.transmits_dropped += 1;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "client check not written");
                self.outbox.recycle(buf);
            }
        }
    }

    fn on_stun(&mut self, now: Instant, datagram: &[u8]) {
        let (Some(remote), Ok(msg)) = (self.remote.as_ref(), Message::parse(datagram)) else {
            self.stats.ignored += 1;
            return;
        };
        let ours = self
            .recent_checks
            .iter()
            .take(self.check_count)
            .any(|tid| ice::is_success_for(&msg, *tid, &remote.pwd));
        if !ours {
            self.stats.ignored += 1;
            return;
        }
        let expires = now + ice::CONSENT_TIMEOUT;
        match self.ice {
            IceState::Checking { .. } => {
                self.ice = IceState::Connected {
                    next: now + ice::CONSENT_INTERVAL,
                    expires,
                };
                self.events.push(ClientEvent::IceConnected);
                self.start_dtls(now);
            }
            IceState::Connected { next, .. } => self.ice = IceState::Connected { next, expires },
            IceState::Idle | IceState::Done => {}
        }
    }

    fn start_dtls(&mut self, now: Instant) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        let role = if remote.server_is_dtls_client {
            Role::Server
        } else {
            Role::Client
        };
        let config = DtlsConfig {
            profiles: self.config.profiles.clone(),
            ..DtlsConfig::default()
        };
        match Endpoint::new(now, role, &self.certificate, remote.fingerprint, &config) {
            Ok(dtls) => {
                self.dtls = Some(dtls);
                self.drain_dtls(now);
            }
            Err(e) => {
                self.events.push(ClientEvent::DtlsFailed(e));
                self.shut();
            }
        }
    }

    fn drain_dtls(&mut self, now: Instant) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        loop {
            let mut buf = self.outbox.buffer();
            if dtls.poll_transmit(&mut buf).is_some() {
                if self.outbox.push(buf) {
                    self.stats.transmits_dropped += 1;
                }
            } else {
                self.outbox.recycle(buf);
                break;
            }
        }
        let mut ended = false;
        while let Some(event) = dtls.poll_event() {
            match event {
                DtlsEvent::Connected { profile, keys } => {
                    self.tx = Some(SrtpContext::new(&keys.local));
                    self.rx = Some(SrtpContext::new(&keys.remote));
                    self.profile = Some(profile);
                    self.next_report = Some(now + REPORT_INTERVAL);
                    self.events.push(ClientEvent::DtlsConnected { profile });
                }
                DtlsEvent::Failed(e) => {
                    self.events.push(ClientEvent::DtlsFailed(e));
                    ended = true;
                }
                DtlsEvent::Closed => {
                    self.events.push(ClientEvent::Closed);
                    ended = true;
                }
            }
        }
        if ended {
            self.shut();
        }
    }

    /// Stops everything without sending anything more.
    fn shut(&mut self) {
        self.closed = true;
        self.ice = IceState::Done;
        self.next_report = None;
    }

    fn on_srtp(&mut self, now: Instant, datagram: &[u8]) {
        let Some(rx) = self.rx.as_mut() else {
            self.stats.ignored += 1;
            return;
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(datagram);
        // RFC 5761 §4: with rtcp-mux, packet types 192-223 are RTCP.
        let is_rtcp = matches!(datagram.get(1), Some(192..=223));
        if is_rtcp {
            let Ok(len) = rx.unprotect_rtcp(&mut self.scratch) else {
                self.stats.srtp_errors += 1;
                return;
            };
            let (mut pli, mut fir, mut nack, mut sr, mut rr) = (0, 0, 0, 0, 0);
            for packet in rtcp::parse_compound(self.scratch.get(..len).unwrap_or_default()) {
                match packet {
                    Ok(RtcpPacket::Pli { .. }) => pli += 1,
                    Ok(RtcpPacket::Fir { .. }) => fir += 1,
                    Ok(RtcpPacket::Nack(_)) => nack += 1,
                    Ok(RtcpPacket::SenderReport(_)) => sr += 1,
                    Ok(RtcpPacket::ReceiverReport(_)) => rr += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            self.stats.rtcp_received += 1;
            self.events.push(ClientEvent::Rtcp {
                pli,
                fir,
                nack,
                sr,
                rr,
            });
            return;
        }
        let Ok(len) = rx.unprotect_rtp(&mut self.scratch) else {
            self.stats.srtp_errors += 1;
            return;
        };
        let (Some(remote), Ok(packet)) = (
            self.remote.as_ref(),
            RtpPacket::new_checked(self.scratch.get(..len).unwrap_or_default()),
        ) else {
            self.stats.ignored += 1;
            return;
        };
        let pt = packet.payload_type();
        let Some((media, rtx)) = remote.media.iter().find_map(|m| {
            if m.payload_type == pt {
                Some((m, false))
            } else if m.rtx_payload_type == Some(pt) {
                Some((m, true))
            } else {
                None
            }
        }) else {
            self.stats.ignored += 1;
            return;
        };
        let payload = packet.payload();
        // RTX payloads start with the original sequence number (RFC 4588 §4).
        let media_payload = if rtx {
            payload.get(2..).unwrap_or_default()
        } else {
            payload
        };
        let keyframe =
            media.kind == MediaKind::Video && is_keyframe(video_codec(media.codec), media_payload);
        if let (false, Some(i)) = (rtx, stream_index(media.kind)) {
            let stream = &mut self.streams[i];
            let ssrc = packet.ssrc();
            match stream.received.as_mut() {
                Some((s, stats)) if *s == ssrc => {
                    stats.on_packet(packet.sequence_number(), packet.timestamp(), now);
                }
                _ => {
                    let mut stats = ReceiverStats::new(media.clock_rate);
                    stats.on_packet(packet.sequence_number(), packet.timestamp(), now);
                    stream.received = Some((ssrc, stats));
                }
            }
        }
        self.stats.rtp_received += 1;
        self.stats.rtp_received_bytes += payload.len() as u64;
        self.events.push(ClientEvent::Rtp {
            kind: media.kind,
            ssrc: packet.ssrc(),
            payload_type: pt,
            sequence_number: packet.sequence_number(),
            payload_len: payload.len(),
            keyframe,
            rtx,
        });
    }
}

fn stream_index(kind: MediaKind) -> Option<usize> {
    match kind {
        MediaKind::Audio => Some(0),
        MediaKind::Video => Some(1),
        _ => None,
    }
}

fn remote_media(remote: &RemoteDescription, kind: MediaKind) -> Result<&RemoteMedia, ClientError> {
    remote
        .media
        .iter()
        .find(|m| m.kind == kind)
        .ok_or(ClientError::NoMedia(kind))
}

fn video_codec(codec: CodecName) -> VideoCodec {
    match codec {
        CodecName::Vp8 => VideoCodec::Vp8,
        CodecName::Vp9 => VideoCodec::Vp9,
        CodecName::H264 => VideoCodec::H264,
        _ => VideoCodec::Other,
    }
}

#[cfg(test)]
mod tests;
