//! The router on a fake clock: a test publisher protects with the keys the
//! router unprotects with, and each test viewer unprotects with the keys
//! the router protects its copy with, so every assertion is on what a real
//! peer would decrypt.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use uturn_rtp::keyframe::VideoCodec;
use uturn_rtp::rtcp::{self, Packet, ReportBlock, SenderInfo};
use uturn_rtp::rtp::RtpPacket;
use uturn_rtp::stats::ntp_from;
use uturn_sdp::MediaKind;
use uturn_srtp::{DtlsSrtpKeys, MasterKeys, Profile, SrtpContext};

use super::*;

const AUDIO_SSRC: u32 = 0x1111_0001;
const VIDEO_SSRC: u32 = 0x1111_0002;
const PUB_RTX_SSRC: u32 = 0x1111_0003;
const RTCP_SSRC: u32 = 0x0000_5eed;
const OPUS: u8 = 111;
const VP8: u8 = 96;
const PUB_RTX: u8 = 97;

const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const UNKNOWN_EXT: &str = "urn:example:not-negotiated-by-viewers";

/// 1 700 000 000 s after the UNIX epoch, at the test's t0.
const UNIX_T0: u64 = 1_700_000_000;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const LISTENER: u16 = 3478;
const PUBLISHER: u16 = 5000;

fn keys(profile: Profile, seed: u8) -> MasterKeys {
    let salt = vec![seed ^ 0x5a; profile.salt_len()];
    MasterKeys::new(profile, &[seed; 16], &salt).expect("lengths match the profile")
}

fn ext(uri: &str, id: u8) -> (String, u8) {
    (uri.to_owned(), id)
}

fn track(kind: MediaKind, mid: &str, pt: u8, ssrc: Option<u32>) -> TrackMap {
    let video = kind == MediaKind::Video;
    TrackMap {
        kind,
        mid: mid.to_owned(),
        payload_type: pt,
        rtx_payload_type: None,
        ssrc,
        rtx_ssrc: None,
        clock_rate: if video { 90_000 } else { 48_000 },
        codec: if video {
            VideoCodec::Vp8
        } else {
            VideoCodec::Other
        },
        extensions: Vec::new(),
        nack: video,
        pli: video,
        fir: video,
    }
}

/// The publisher's m-sections: Opus and VP8 + RTX, SSRCs announced when
/// `announced`.
fn publisher_tracks(announced: bool) -> Vec<TrackMap> {
    let mut audio = track(MediaKind::Audio, "0", OPUS, announced.then_some(AUDIO_SSRC));
    audio.extensions = vec![ext(MID_URI, 1), ext(ABS_SEND_TIME, 2), ext(TWCC, 3)];
    let mut video = track(MediaKind::Video, "1", VP8, announced.then_some(VIDEO_SSRC));
    video.rtx_payload_type = Some(PUB_RTX);
    video.rtx_ssrc = announced.then_some(PUB_RTX_SSRC);
    video.extensions = vec![
        ext(MID_URI, 1),
        ext(ABS_SEND_TIME, 2),
        ext(TWCC, 3),
        ext(UNKNOWN_EXT, 4),
    ];
    vec![audio, video]
}

/// `tracks` as a publisher that did not negotiate transport-cc.
fn without_twcc(mut tracks: Vec<TrackMap>) -> Vec<TrackMap> {
    for t in &mut tracks {
        t.extensions.retain(|(uri, _)| uri != TWCC);
    }
    tracks
}

/// A viewer's m-sections; `base` picks its SSRCs (`base + 1` audio, `+ 2`
/// video, `+ 3` video RTX).
struct ViewerShape {
    audio_pt: u8,
    video_pt: u8,
    rtx_pt: Option<u8>,
    mids: (&'static str, &'static str),
    audio_ext: Vec<(String, u8)>,
    video_ext: Vec<(String, u8)>,
}

fn viewer_tracks(base: u32, shape: &ViewerShape) -> Vec<TrackMap> {
    let mut audio = track(
        MediaKind::Audio,
        shape.mids.0,
        shape.audio_pt,
        Some(base + 1),
    );
    audio.extensions = shape.audio_ext.clone();
    let mut video = track(
        MediaKind::Video,
        shape.mids.1,
        shape.video_pt,
        Some(base + 2),
    );
    video.extensions = shape.video_ext.clone();
    video.rtx_payload_type = shape.rtx_pt;
    video.rtx_ssrc = shape.rtx_pt.map(|_| base + 3);
    vec![audio, video]
}

/// Same numbering as the publisher, with RTX.
fn shape_same() -> ViewerShape {
    ViewerShape {
        audio_pt: OPUS,
        video_pt: VP8,
        rtx_pt: Some(PUB_RTX),
        mids: ("0", "1"),
        audio_ext: vec![ext(MID_URI, 1), ext(ABS_SEND_TIME, 2), ext(TWCC, 3)],
        video_ext: vec![ext(MID_URI, 1), ext(ABS_SEND_TIME, 2), ext(TWCC, 3)],
    }
}

/// Other payload types, other ids, other mids, RTX on other PTs.
fn shape_renumbered() -> ViewerShape {
    ViewerShape {
        audio_pt: 109,
        video_pt: 100,
        rtx_pt: Some(101),
        mids: ("a", "v"),
        audio_ext: vec![ext(ABS_SEND_TIME, 5), ext(TWCC, 7), ext(MID_URI, 9)],
        video_ext: vec![ext(TWCC, 12), ext(ABS_SEND_TIME, 5), ext(MID_URI, 9)],
    }
}

/// No RTX, only transport-cc.
fn shape_no_rtx() -> ViewerShape {
    ViewerShape {
        audio_pt: 110,
        video_pt: 98,
        rtx_pt: None,
        mids: ("0", "1"),
        audio_ext: vec![ext(TWCC, 14)],
        video_ext: vec![ext(TWCC, 14)],
    }
}

/// An RTP packet with one-byte header extensions (RFC 8285 §4.2).
fn rtp_packet(
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    exts: &[(u8, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if !exts.is_empty() {
        p[0] |= 0x10;
        let mut block = Vec::new();
        for (id, value) in exts {
            block.push(id << 4 | (value.len() as u8 - 1));
            block.extend_from_slice(value);
        }
        while block.len() % 4 != 0 {
            block.push(0);
        }
        p.extend_from_slice(&[0xbe, 0xde]);
        p.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&block);
    }
    p.extend_from_slice(payload);
    p
}

/// A VP8 payload (RFC 7741 §4.2 descriptor with S = 1, PID 0, then the
/// frame tag whose P bit says key or delta, §4.3) of `len` octets.
fn vp8(keyframe: bool, len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![0x10];
    if keyframe {
        // Frame tag (P = 0, show_frame), start code, 640x480.
        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    } else {
        p.extend_from_slice(&[0x11, 0x02, 0x00]);
    }
    p.resize(len, fill);
    p
}

/// One viewer as the test sees it: the keys to decrypt what it is sent.
struct TestViewer {
    id: u64,
    rx: SrtpContext,
}

struct Harness {
    t0: Instant,
    router: StreamRouter,
    /// Protects what the publisher sends.
    publisher_tx: SrtpContext,
    /// Unprotects what the router sends the publisher.
    publisher_rx: SrtpContext,
    viewers: Vec<TestViewer>,
}

/// What one peer received, decrypted.
#[derive(Default)]
struct Received {
    rtp: Vec<Vec<u8>>,
    rtcp: Vec<Vec<u8>>,
}

impl Harness {
    fn new(tracks: Vec<TrackMap>) -> Harness {
        let t0 = Instant::now();
        let keys = DtlsSrtpKeys {
            local: keys(Profile::AeadAes128Gcm, 1),
            remote: keys(Profile::AeadAes128Gcm, 2),
        };
        let spec = PublisherSpec {
            local: addr(LISTENER),
            remote: addr(PUBLISHER),
            keys: keys.clone(),
            tracks,
            rtcp_ssrc: RTCP_SSRC,
        };
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(UNIX_T0);
        Harness {
            t0,
            router: StreamRouter::new(t0, spec, (t0, epoch)),
            publisher_tx: SrtpContext::new(&keys.remote),
            publisher_rx: SrtpContext::new(&keys.local),
            viewers: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn attach(&mut self, ms: u64, id: u64, profile: Profile, shape: &ViewerShape) {
        let key = keys(profile, 10 + id as u8);
        let spec = ViewerSpec {
            id,
            local: addr(LISTENER),
            remote: addr(10_000 + id as u16),
            keys: key.clone(),
            tracks: viewer_tracks(id as u32 * 0x1000, shape),
            cname: format!("viewer-{id}"),
        };
        self.router.attach_viewer(self.at(ms), spec);
        self.viewers.push(TestViewer {
            id,
            rx: SrtpContext::new(&key),
        });
    }

    /// The publisher sends `packet` (plain RTP or RTCP) at `ms`.
    fn publish(&mut self, ms: u64, packet: &[u8]) -> Result<(), RouterError> {
        let datagram = self.protect(packet);
        self.router
            .handle_publisher_datagram(self.at(ms), &datagram)
    }

    fn protect(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + 32, 0);
        let n = if (192..=223).contains(&packet[1]) {
            self.publisher_tx.protect_rtcp(&mut buf, packet.len())
        } else {
            self.publisher_tx.protect_rtp(&mut buf, packet.len())
        }
        .expect("test packets protect");
        buf.truncate(n);
        buf
    }

    /// Every queued datagram, by destination.
    fn drain(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = self.router.poll_transmit() {
            assert_eq!(t.source, addr(LISTENER));
            out.push((t.destination, t.contents.to_vec()));
        }
        out
    }

    /// Drains and decrypts everything: the publisher's and each viewer's.
    fn deliver(&mut self) -> (Received, Vec<Received>) {
        let mut publisher = Received::default();
        let mut viewers: Vec<Received> = self.viewers.iter().map(|_| Received::default()).collect();
        for (dst, mut datagram) in self.drain() {
            let (ctx, received) = if dst == addr(PUBLISHER) {
                (&mut self.publisher_rx, &mut publisher)
            } else {
                let i = self
                    .viewers
                    .iter()
                    .position(|v| addr(10_000 + v.id as u16) == dst)
                    .expect("sent to a known peer");
                (&mut self.viewers[i].rx, &mut viewers[i])
            };
            if (192..=223).contains(&datagram[1]) {
                let n = ctx.unprotect_rtcp(&mut datagram).expect("RTCP decrypts");
                datagram.truncate(n);
                received.rtcp.push(datagram);
            } else {
                let n = ctx.unprotect_rtp(&mut datagram).expect("RTP decrypts");
                datagram.truncate(n);
                received.rtp.push(datagram);
            }
        }
        (publisher, viewers)
    }
}

/// Keyframe requests in decrypted RTCP: (is FIR, media SSRC, FIR seq).
fn keyframe_requests(rtcp: &[Vec<u8>]) -> Vec<(bool, u32, u8)> {
    let mut out = Vec::new();
    for compound in rtcp {
        for packet in rtcp::parse_compound(compound) {
            match packet.expect("our RTCP parses") {
                Packet::Pli {
                    sender_ssrc,
                    media_ssrc,
                } => {
                    assert_eq!(sender_ssrc, RTCP_SSRC);
                    out.push((false, media_ssrc, 0));
                }
                Packet::Fir {
                    sender_ssrc,
                    entries,
                } => {
                    assert_eq!(sender_ssrc, RTCP_SSRC);
                    for e in entries {
                        out.push((true, e.ssrc, e.seq_nr));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn sender_reports(rtcp: &[Vec<u8>]) -> Vec<SenderInfo> {
    let mut out = Vec::new();
    for compound in rtcp {
        let mut packets = rtcp::parse_compound(compound);
        let Some(Ok(Packet::SenderReport(sr))) = packets.next() else {
            continue;
        };
        // RFC 3550 §6.1: the SDES with our CNAME follows in the compound.
        assert!(matches!(packets.next(), Some(Ok(Packet::Sdes(_)))));
        out.push(sr.info());
    }
    out
}

fn receiver_reports(rtcp: &[Vec<u8>]) -> Vec<ReportBlock> {
    let mut out = Vec::new();
    for compound in rtcp {
        for packet in rtcp::parse_compound(compound) {
            if let Ok(Packet::ReceiverReport(rr)) = packet {
                assert_eq!(rr.ssrc(), RTCP_SSRC);
                out.extend(rr.reports());
            }
        }
    }
    out
}

fn audio(seq: u16, ts: u32) -> Vec<u8> {
    let exts: [(u8, &[u8]); 3] = [(1, b"0"), (2, &[1, 2, 3]), (3, &[0, 7])];
    rtp_packet(OPUS, seq, ts, AUDIO_SSRC, &exts, &[0xa5; 80])
}

fn video(seq: u16, ts: u32, keyframe: bool) -> Vec<u8> {
    let exts: [(u8, &[u8]); 4] = [(1, b"1"), (2, &[4, 5, 6]), (3, &[0, 8]), (4, &[9])];
    rtp_packet(
        VP8,
        seq,
        ts,
        VIDEO_SSRC,
        &exts,
        &vp8(keyframe, 1000, seq as u8),
    )
}

/// A viewer's id, audio and video payload types, then per extension id the
/// value its audio and its video packets carry (`None`: absent).
type Expectation = (u64, u8, u8, ExtValues, ExtValues);
type ExtValues = &'static [(u8, Option<&'static [u8]>)];

#[test]
fn fans_out_to_three_viewers_with_their_numbering_and_profiles() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.attach(0, 2, Profile::Aes128CmSha1_80, &shape_renumbered());
    h.attach(0, 3, Profile::AeadAes128Gcm, &shape_no_rtx());
    let _ = h.deliver();

    let a = audio(7, 4800);
    let v = video(100, 90_000, true);
    h.publish(10, &a).unwrap();
    h.publish(11, &v).unwrap();
    let datagrams = h.drain();
    assert_eq!(datagrams.len(), 6);
    // Each copy is the plaintext plus that viewer's tag: the profiles differ.
    for (dst, d) in &datagrams {
        let id = u64::from(dst.port() - 10_000);
        let tag = if id == 2 { 10 } else { 16 };
        let plain = RtpPacket::new_checked(d).unwrap().header_len();
        assert!(d.len() > plain + tag);
    }
    for (dst, d) in datagrams {
        h.router.transmits.push(addr(LISTENER), dst, d);
    }
    let (_, viewers) = h.deliver();

    let expectations: [Expectation; 3] = [
        (
            1,
            OPUS,
            VP8,
            &[(1, Some(b"0")), (2, Some(&[1, 2, 3])), (3, Some(&[0, 7]))],
            &[
                (1, Some(b"1")),
                (2, Some(&[4, 5, 6])),
                (3, Some(&[0, 8])),
                (4, None),
            ],
        ),
        (
            2,
            109,
            100,
            // The mids differ: sdes:mid is dropped, not mislabelled.
            &[
                (5, Some(&[1, 2, 3])),
                (7, Some(&[0, 7])),
                (9, None),
                (1, None),
            ],
            &[
                (5, Some(&[4, 5, 6])),
                (12, Some(&[0, 8])),
                (9, None),
                (4, None),
            ],
        ),
        (
            3,
            110,
            98,
            &[(14, Some(&[0, 7])), (1, None), (2, None)],
            &[(14, Some(&[0, 8])), (1, None), (2, None), (4, None)],
        ),
    ];
    for ((id, apt, vpt, aext, vext), received) in expectations.iter().zip(&viewers) {
        let base = *id as u32 * 0x1000;
        assert_eq!(received.rtp.len(), 2, "viewer {id}");
        let ra = RtpPacket::new_checked(&received.rtp[0]).unwrap();
        let rv = RtpPacket::new_checked(&received.rtp[1]).unwrap();
        let (oa, ov) = (
            RtpPacket::new_checked(&a).unwrap(),
            RtpPacket::new_checked(&v).unwrap(),
        );
        assert_eq!((ra.ssrc(), ra.payload_type()), (base + 1, *apt));
        assert_eq!((rv.ssrc(), rv.payload_type()), (base + 2, *vpt));
        for (got, orig) in [(&ra, &oa), (&rv, &ov)] {
            assert_eq!(got.payload(), orig.payload());
            assert_eq!(got.sequence_number(), orig.sequence_number());
            assert_eq!(got.timestamp(), orig.timestamp());
            assert_eq!(got.marker(), orig.marker());
        }
        for (id_, value) in aext.iter() {
            assert_eq!(ra.extension(*id_), *value, "viewer {id} audio ext {id_}");
        }
        for (id_, value) in vext.iter() {
            assert_eq!(rv.extension(*id_), *value, "viewer {id} video ext {id_}");
        }
    }
    let stats = h.router.stats();
    assert_eq!((stats.rtp_in, stats.rtp_out), (2, 6));
}

#[test]
fn video_waits_for_a_keyframe_audio_does_not() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.publish(10, &video(50, 1000, false)).unwrap();
    h.publish(11, &audio(1, 480)).unwrap();
    let (_, v) = h.deliver();
    assert_eq!(v[0].rtp.len(), 1);
    assert_eq!(
        RtpPacket::new_checked(&v[0].rtp[0]).unwrap().payload_type(),
        OPUS
    );
    assert_eq!(h.router.stats().waiting_for_keyframe, 1);

    h.publish(40, &video(51, 4000, true)).unwrap();
    h.publish(70, &video(52, 7000, false)).unwrap();
    let (_, v) = h.deliver();
    let seqs: Vec<u16> = v[0]
        .rtp
        .iter()
        .map(|p| RtpPacket::new_checked(p).unwrap().sequence_number())
        .collect();
    assert_eq!(seqs, [51, 52]);

    // A second viewer joining now waits for the next keyframe on its own.
    h.attach(80, 2, Profile::AeadAes128Gcm, &shape_same());
    h.publish(100, &video(53, 10_000, false)).unwrap();
    let (_, v) = h.deliver();
    assert_eq!((v[0].rtp.len(), v[1].rtp.len()), (1, 0));
}

#[test]
fn attaching_a_viewer_asks_the_publisher_for_a_keyframe() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    let (publisher, _) = h.deliver();
    assert_eq!(keyframe_requests(&publisher.rtcp), [(false, VIDEO_SSRC, 0)]);
    assert_eq!(h.router.stats().keyframe_requests, 1);
}

#[test]
fn keyframe_requests_are_rate_limited_and_coalesced() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    assert_eq!(keyframe_requests(&h.deliver().0.rtcp).len(), 1);

    h.router.handle_feedback(h.at(100), 1, Feedback::Pli);
    h.router.handle_feedback(h.at(200), 1, Feedback::Fir);
    h.attach(300, 2, Profile::AeadAes128Gcm, &shape_same());
    h.router.handle_timeout(h.at(400));
    assert!(keyframe_requests(&h.deliver().0.rtcp).is_empty());
    assert_eq!(h.router.poll_timeout(), Some(h.at(500)));

    // The three folded into one, sent when the interval is over.
    h.router.handle_timeout(h.at(500));
    assert_eq!(
        keyframe_requests(&h.deliver().0.rtcp),
        [(false, VIDEO_SSRC, 0)]
    );
    h.router.handle_timeout(h.at(900));
    assert!(keyframe_requests(&h.deliver().0.rtcp).is_empty());

    h.router.handle_feedback(h.at(1001), 2, Feedback::Pli);
    assert_eq!(keyframe_requests(&h.deliver().0.rtcp).len(), 1);
    let stats = h.router.stats();
    assert_eq!(stats.keyframe_requests, 3);
    assert_eq!(stats.keyframe_requests_coalesced, 2);
}

#[test]
fn a_viewer_still_waiting_for_a_keyframe_asks_again() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    assert_eq!(keyframe_requests(&h.deliver().0.rtcp).len(), 1);
    h.publish(600, &video(1, 0, false)).unwrap();
    assert!(keyframe_requests(&h.deliver().0.rtcp).is_empty());
    // The keyframe never came: the next delta frame after a second retries.
    h.publish(1000, &video(2, 0, false)).unwrap();
    assert_eq!(keyframe_requests(&h.deliver().0.rtcp).len(), 1);
    h.publish(1100, &video(3, 0, true)).unwrap();
    h.publish(2500, &video(4, 0, false)).unwrap();
    let (publisher, viewers) = h.deliver();
    assert!(keyframe_requests(&publisher.rtcp).is_empty());
    assert_eq!(viewers[0].rtp.len(), 2);
}

#[test]
fn fir_when_the_publisher_negotiated_only_ccm_fir() {
    let mut tracks = publisher_tracks(true);
    tracks[1].pli = false;
    let mut h = Harness::new(tracks);
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.router.handle_feedback(h.at(600), 1, Feedback::Pli);
    // RFC 5104 §4.3.1.2: a new request, a new command sequence number.
    assert_eq!(
        keyframe_requests(&h.deliver().0.rtcp),
        [(true, VIDEO_SSRC, 0), (true, VIDEO_SSRC, 1)]
    );
}

#[test]
fn an_unannounced_video_ssrc_is_learned_and_then_asked_for_a_keyframe() {
    // Without transport-cc, whose feedback timer would come first.
    let mut h = Harness::new(without_twcc(publisher_tracks(false)));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    assert!(keyframe_requests(&h.deliver().0.rtcp).is_empty());
    h.publish(10, &video(1, 0, false)).unwrap();
    let due = h.router.poll_timeout().expect("a timer");
    h.router.handle_timeout(due);
    assert_eq!(
        keyframe_requests(&h.deliver().0.rtcp),
        [(false, VIDEO_SSRC, 0)]
    );
}

#[test]
fn a_track_takes_the_ssrc_the_publisher_really_sends() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    let mut p = video(1, 0, true);
    p[8..12].copy_from_slice(&0x7777_7777u32.to_be_bytes());
    h.publish(10, &p).unwrap();
    // Once the track has its SSRC, another one of the same payload type is unknown.
    let mut other = audio(2, 0);
    other[8..12].copy_from_slice(&0x8888_8888u32.to_be_bytes());
    h.publish(11, &audio(1, 0)).unwrap();
    assert!(matches!(
        h.publish(12, &other),
        Err(RouterError::UnknownSsrc(0x8888_8888))
    ));
    let (_, v) = h.deliver();
    assert_eq!(v[0].rtp.len(), 2);
    assert_eq!(h.router.stats().unknown_ssrc, 1);
}

#[test]
fn nack_is_answered_with_rtx_when_the_viewer_negotiated_it() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.attach(0, 2, Profile::Aes128CmSha1_80, &shape_renumbered());
    let originals = [
        video(100, 0, true),
        video(101, 0, false),
        video(102, 0, false),
    ];
    for p in &originals {
        h.publish(10, p).unwrap();
    }
    let _ = h.drain(); // "lost" on the way to the viewers

    h.router
        .handle_feedback(h.at(20), 2, Feedback::Nack(vec![101, 102, 7]));
    let (_, v) = h.deliver();
    assert!(v[0].rtp.is_empty());
    assert_eq!(v[1].rtp.len(), 2);
    let first = RtpPacket::new_checked(&v[1].rtp[0]).unwrap();
    let second = RtpPacket::new_checked(&v[1].rtp[1]).unwrap();
    for (rtx, original) in [(&first, &originals[1]), (&second, &originals[2])] {
        let original = RtpPacket::new_checked(original).unwrap();
        assert_eq!((rtx.ssrc(), rtx.payload_type()), (0x2003, 101));
        // RFC 4588 §4: the original sequence number, then the payload.
        let (osn, payload) = rtx.payload().split_at(2);
        assert_eq!(osn, original.sequence_number().to_be_bytes());
        assert_eq!(payload, original.payload());
        assert_eq!(rtx.timestamp(), original.timestamp());
        // Extension ids as the viewer numbers them.
        assert_eq!(rtx.extension(5), Some(&[4u8, 5, 6][..]));
    }
    assert_eq!(
        second.sequence_number(),
        first.sequence_number().wrapping_add(1)
    );
    let stats = h.router.stats();
    assert_eq!((stats.nacks_received, stats.retransmits), (1, 2));
    assert_eq!(stats.retransmit_misses, 1);
}

#[test]
fn nack_without_rtx_resends_the_packet() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 3, Profile::AeadAes128Gcm, &shape_no_rtx());
    h.publish(10, &video(200, 0, true)).unwrap();
    let delivered = h.deliver().1;
    assert_eq!(delivered[0].rtp.len(), 1);
    let original = video(201, 0, false);
    h.publish(11, &original).unwrap();
    let _ = h.drain(); // lost

    h.router
        .handle_feedback(h.at(20), 3, Feedback::Nack(vec![201]));
    let (_, v) = h.deliver();
    assert_eq!(v[0].rtp.len(), 1);
    let again = RtpPacket::new_checked(&v[0].rtp[0]).unwrap();
    let original = RtpPacket::new_checked(&original).unwrap();
    assert_eq!((again.ssrc(), again.payload_type()), (0x3002, 98));
    assert_eq!(again.sequence_number(), 201);
    assert_eq!(again.payload(), original.payload());
    assert_eq!(h.router.stats().retransmits, 1);
}

/// Datagrams in the router's queue for viewer `id` (drained: the viewer
/// never sees them, as if they were lost on the way).
fn sent_to(h: &mut Harness, id: u64) -> usize {
    let viewer = addr(10_000 + id as u16);
    h.drain().iter().filter(|(to, _)| *to == viewer).count()
}

#[test]
fn nack_floods_are_capped_by_the_viewers_retransmission_budget() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 3, Profile::AeadAes128Gcm, &shape_no_rtx());
    let len = video(300, 0, true).len();
    for i in 0..100u16 {
        h.publish(10, &video(300 + i, 0, i == 0)).unwrap();
    }
    assert_eq!(sent_to(&mut h, 3), 100);
    // The start allowance plus half of what was sent: what one viewer may
    // have retransmitted, whatever it asks.
    let budget = 64 * 1024 + 100 * (len / 2);
    let nack: Vec<u16> = (300..400).collect();
    let mut resent = 0;
    for round in 0..20 {
        h.router
            .handle_feedback(h.at(20 + round), 3, Feedback::Nack(nack.clone()));
        resent += sent_to(&mut h, 3);
    }
    assert_eq!(resent, budget / len, "packets of {len} octets");
    let stats = h.router.stats();
    assert_eq!(stats.retransmits, resent as u64);
    assert_eq!(stats.retransmits_over_budget, 20 * 100 - resent as u64);
    assert_eq!(stats.nacks_received, 20);

    // Forwarding video earns budget again: a real loss is answered, and
    // the viewer decrypts it.
    for i in 0..10u16 {
        h.publish(100, &video(400 + i, 0, false)).unwrap();
    }
    assert_eq!(sent_to(&mut h, 3), 10);
    let before = h.router.stats().retransmits;
    h.router
        .handle_feedback(h.at(200), 3, Feedback::Nack(vec![405, 406]));
    let again = h.deliver().1[0].rtp.clone();
    assert_eq!(again.len(), 2);
    assert_eq!(
        RtpPacket::new_checked(&again[0]).unwrap().sequence_number(),
        405
    );
    assert_eq!(h.router.stats().retransmits, before + 2);
}

#[test]
fn retransmission_budget_is_per_viewer() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_no_rtx());
    h.attach(0, 2, Profile::AeadAes128Gcm, &shape_no_rtx());
    for i in 0..100u16 {
        h.publish(10, &video(500 + i, 0, i == 0)).unwrap();
    }
    let _ = h.drain();
    let nack: Vec<u16> = (500..600).collect();
    // Viewer 1 spends all of its budget...
    for round in 0..20 {
        h.router
            .handle_feedback(h.at(20 + round), 1, Feedback::Nack(nack.clone()));
    }
    let _ = h.drain();
    assert!(h.router.stats().retransmits_over_budget > 0);
    // ...viewer 2's is untouched.
    h.router
        .handle_feedback(h.at(50), 2, Feedback::Nack(vec![510, 511, 512]));
    let (_, v) = h.deliver();
    assert!(v[0].rtp.is_empty());
    assert_eq!(v[1].rtp.len(), 3);
}

#[test]
fn sender_reports_per_viewer_track_follow_the_publishers_clock() {
    // Without transport-cc: only the report and keyframe timers here.
    let mut h = Harness::new(without_twcc(publisher_tracks(true)));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.attach(0, 2, Profile::Aes128CmSha1_80, &shape_renumbered());
    // The publisher's SR at t0: its NTP clock is 5 s behind ours.
    let publisher_ntp = ntp_from(Duration::from_secs(UNIX_T0 - 5));
    let mut sr = vec![0u8; 64];
    let info = SenderInfo {
        ssrc: VIDEO_SSRC,
        ntp: publisher_ntp,
        rtp_timestamp: 900_000,
        packet_count: 1,
        octet_count: 1,
    };
    let n = rtcp::write_sr(&mut sr, &info, &[]).unwrap();
    h.publish(0, &sr[..n]).unwrap();
    let mut octets = 0;
    for i in 0..5u16 {
        let p = video(300 + i, 900_000 + u32::from(i) * 3000, i == 0);
        octets += RtpPacket::new_checked(&p).unwrap().payload().len() as u32;
        h.publish(100 + u64::from(i) * 33, &p).unwrap();
    }
    h.publish(200, &audio(9, 48_000)).unwrap();
    // The second attach's keyframe request, rate-limited to 500 ms.
    assert_eq!(h.router.poll_timeout(), Some(h.at(500)));
    h.router.handle_timeout(h.at(500));
    let _ = h.deliver();
    assert_eq!(h.router.poll_timeout(), Some(h.at(1000)));

    h.router.handle_timeout(h.at(1000));
    let (_, viewers) = h.deliver();
    let ntp = ntp_from(Duration::from_secs(UNIX_T0 + 1));
    for (viewer, base) in viewers.iter().zip([0x1000u32, 0x2000]) {
        let srs = sender_reports(&viewer.rtcp);
        assert_eq!(srs.len(), 2);
        let audio_sr = srs.iter().find(|s| s.ssrc == base + 1).expect("audio SR");
        let video_sr = srs.iter().find(|s| s.ssrc == base + 2).expect("video SR");
        assert_eq!(video_sr.ntp, ntp);
        // One second after the publisher's SR on its own clock.
        assert_eq!(video_sr.rtp_timestamp, 990_000);
        assert_eq!((video_sr.packet_count, video_sr.octet_count), (5, octets));
        // No audio SR from the publisher yet: its last packet, 800 ms ago.
        assert_eq!(audio_sr.ntp, ntp);
        assert_eq!(audio_sr.rtp_timestamp, 48_000 + 48 * 800);
        assert_eq!((audio_sr.packet_count, audio_sr.octet_count), (1, 80));
    }
    assert_eq!(h.router.stats().sr_sent, 4);
}

#[test]
fn receiver_reports_tell_the_publisher_loss_and_jitter() {
    let mut h = Harness::new(publisher_tracks(true));
    let publisher_ntp = ntp_from(Duration::from_secs(UNIX_T0 - 5) + Duration::from_millis(250));
    let mut sr = vec![0u8; 64];
    let info = SenderInfo {
        ssrc: VIDEO_SSRC,
        ntp: publisher_ntp,
        rtp_timestamp: 0,
        packet_count: 0,
        octet_count: 0,
    };
    let n = rtcp::write_sr(&mut sr, &info, &[]).unwrap();
    h.publish(0, &sr[..n]).unwrap();
    // 20 frames 33 ms apart on the RTP clock; arrivals jitter by 0/7 ms;
    // 11..=15 are lost.
    for seq in (1..=10u16).chain(16..=20) {
        let ms = u64::from(seq) * 33 + if seq % 2 == 0 { 7 } else { 0 };
        h.publish(ms, &video(seq, u32::from(seq) * 2970, seq == 1))
            .unwrap();
    }
    let _ = h.deliver();
    h.router.handle_timeout(h.at(1000));
    let (publisher, _) = h.deliver();
    let blocks = receiver_reports(&publisher.rtcp);
    assert_eq!(blocks.len(), 1);
    let block = blocks[0];
    assert_eq!(block.ssrc, VIDEO_SSRC);
    assert_eq!(block.cumulative_lost, 5);
    assert_eq!(block.highest_seq, 20);
    // RFC 3550 A.1 probation: counting starts at the second packet, so
    // 19 expected.
    assert_eq!(u32::from(block.fraction_lost), 5 * 256 / 19);
    assert!(block.jitter > 0);
    assert_eq!(block.lsr, (publisher_ntp >> 16) as u32);
    // One second after the SR arrived, in 1/65536 s.
    assert_eq!(block.dlsr, 65_536);
    assert_eq!(h.router.stats().rr_sent, 1);
}

#[test]
fn publisher_rtx_and_padding_are_not_forwarded() {
    for announced in [true, false] {
        let mut h = Harness::new(publisher_tracks(announced));
        h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
        h.publish(10, &video(1, 0, true)).unwrap();
        // RTX: the publisher's retransmission (or padding) on its RTX stream.
        h.publish(
            11,
            &rtp_packet(PUB_RTX, 500, 0, PUB_RTX_SSRC, &[], &[0, 1, 2, 3]),
        )
        .unwrap();
        // Padding only, on the media SSRC (RFC 3550 §5.1: P bit, last octet the count).
        let mut padding = rtp_packet(VP8, 2, 0, VIDEO_SSRC, &[], &[0, 0, 0, 4]);
        padding[0] |= 0x20;
        h.publish(12, &padding).unwrap();
        let (_, v) = h.deliver();
        assert_eq!(v[0].rtp.len(), 1, "announced: {announced}");
        let stats = h.router.stats();
        assert_eq!((stats.rtx_dropped, stats.padding_dropped), (1, 1));
    }
}

#[test]
fn bad_tags_replays_and_garbage_are_counted_and_dropped() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    let good = h.protect(&audio(1, 0));
    h.router.handle_publisher_datagram(h.at(1), &good).unwrap();
    let replay = h.router.handle_publisher_datagram(h.at(2), &good);
    assert!(matches!(
        replay,
        Err(RouterError::Srtp(uturn_srtp::Error::Replay))
    ));
    let mut forged = h.protect(&audio(2, 0));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let auth = h.router.handle_publisher_datagram(h.at(3), &forged);
    assert!(matches!(
        auth,
        Err(RouterError::Srtp(uturn_srtp::Error::Auth))
    ));
    assert!(h
        .router
        .handle_publisher_datagram(h.at(4), &[0x80])
        .is_err());
    assert!(h
        .router
        .handle_publisher_datagram(h.at(4), &[0x17; 40])
        .is_err());
    assert!(h
        .router
        .handle_publisher_datagram(h.at(4), &[0x80; 3000])
        .is_err());
    let unknown = h.protect(&rtp_packet(50, 1, 0, 0xdead, &[], &[1]));
    assert!(matches!(
        h.router.handle_publisher_datagram(h.at(5), &unknown),
        Err(RouterError::UnknownSsrc(0xdead))
    ));
    // A forged SRTCP packet.
    let mut sr = vec![0u8; 64];
    let n = rtcp::write_rr(&mut sr, AUDIO_SSRC, &[]).unwrap();
    let mut rtcp = h.protect(&sr[..n]);
    rtcp[9] ^= 0x40;
    assert!(h.router.handle_publisher_datagram(h.at(6), &rtcp).is_err());

    let stats = h.router.stats();
    assert_eq!(stats.rtp_in, 2);
    assert_eq!(stats.srtp_replays, 1);
    assert_eq!(stats.srtp_auth_failures, 2);
    assert_eq!(stats.malformed, 3);
    assert_eq!(stats.unknown_ssrc, 1);
    // Only the one good packet reached the viewer.
    let (_, v) = h.deliver();
    assert_eq!(v[0].rtp.len(), 1);
}

#[test]
fn arbitrary_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut h = Harness::new(publisher_tracks(false));
    h.attach(0, 1, Profile::Aes128CmSha1_80, &shape_same());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut rejected = 0;
    for i in 0..5000u64 {
        let len = rng.gen_range(0..1600);
        let mut datagram: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if let Some(first) = datagram.first_mut() {
            *first = 0x80 | (*first & 0x3f);
        }
        if h.router
            .handle_publisher_datagram(h.at(i), &datagram)
            .is_err()
        {
            rejected += 1;
        }
        // Plaintext garbage as feedback too.
        let lost: Vec<u16> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
        h.router.handle_feedback(h.at(i), 1, Feedback::Nack(lost));
    }
    assert_eq!(rejected, 5000);
    let stats = h.router.stats();
    assert_eq!(
        stats.malformed + stats.srtp_auth_failures + stats.srtp_replays + stats.unknown_ssrc,
        5000
    );
}

#[test]
fn a_new_path_moves_the_flow() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    let _ = h.drain();
    assert!(h.router.set_viewer_path(1, addr(LISTENER), addr(20_001)));
    assert!(!h.router.set_viewer_path(9, addr(LISTENER), addr(20_009)));
    h.router.set_publisher_path(addr(LISTENER), addr(25_000));
    h.publish(10, &audio(1, 0)).unwrap();
    h.router.handle_feedback(h.at(600), 1, Feedback::Pli);
    let destinations: Vec<SocketAddr> = h.drain().into_iter().map(|(d, _)| d).collect();
    assert_eq!(destinations, [addr(20_001), addr(25_000)]);
}

#[test]
fn detach_stops_the_flow() {
    let mut h = Harness::new(publisher_tracks(true));
    h.attach(0, 1, Profile::AeadAes128Gcm, &shape_same());
    h.attach(0, 2, Profile::Aes128CmSha1_80, &shape_renumbered());
    h.publish(10, &audio(1, 0)).unwrap();
    let (_, v) = h.deliver();
    assert_eq!((v[0].rtp.len(), v[1].rtp.len()), (1, 1));

    h.router.detach_viewer(1);
    assert_eq!(h.router.viewer_ids().collect::<Vec<_>>(), [2]);
    h.publish(20, &audio(2, 960)).unwrap();
    h.router.handle_timeout(h.at(1500));
    let (_, v) = h.deliver();
    assert!(v[0].rtp.is_empty() && v[0].rtcp.is_empty());
    assert_eq!(v[1].rtp.len(), 1);
    // Feedback from a detached viewer is ignored.
    h.router
        .handle_feedback(h.at(1600), 1, Feedback::Nack(vec![1]));
    h.router.handle_feedback(h.at(2100), 1, Feedback::Pli);
    assert!(h.drain().is_empty());
}

/// The transport-cc feedback in decrypted RTCP from the router: each
/// compound is an empty RR from our SSRC, then the feedback.
fn transport_feedback(rtcp: &[Vec<u8>]) -> Vec<rtcp::TransportFeedback<'_>> {
    let mut out = Vec::new();
    for compound in rtcp {
        let mut packets = rtcp::parse_compound(compound);
        let Some(Ok(Packet::ReceiverReport(rr))) = packets.next() else {
            continue;
        };
        if !matches!(
            packets.next(),
            Some(Ok(Packet::Other {
                packet_type: rtcp::packet_type::RTPFB,
                fmt: rtcp::fmt::TRANSPORT_CC
            }))
        ) {
            continue;
        }
        assert_eq!((rr.ssrc(), rr.reports().count()), (RTCP_SSRC, 0));
        // The RR is 8 octets (no report blocks); the feedback is the rest.
        out.push(rtcp::TransportFeedback::parse(&compound[8..]).expect("our feedback parses"));
    }
    out
}

/// An audio packet carrying transport-wide sequence number `tseq` (id 3).
fn audio_tw(seq: u16, tseq: u16) -> Vec<u8> {
    let tseq = tseq.to_be_bytes();
    let exts: [(u8, &[u8]); 2] = [(1, b"0"), (3, &tseq)];
    rtp_packet(
        OPUS,
        seq,
        u32::from(seq) * 960,
        AUDIO_SSRC,
        &exts,
        &[0xa5; 80],
    )
}

/// A video packet carrying transport-wide sequence number `tseq` (id 3).
fn video_tw(seq: u16, tseq: u16) -> Vec<u8> {
    let tseq = tseq.to_be_bytes();
    let exts: [(u8, &[u8]); 2] = [(1, b"1"), (3, &tseq)];
    rtp_packet(VP8, seq, 0, VIDEO_SSRC, &exts, &vp8(seq == 0, 300, 1))
}

/// A padding-only probe on the publisher's RTX SSRC (RFC 3550 §5.1 P
/// bit: the last octet counts the padding), with transport-wide `tseq`.
fn probe_tw(seq: u16, tseq: u16) -> Vec<u8> {
    let tseq = tseq.to_be_bytes();
    let mut p = rtp_packet(PUB_RTX, seq, 0, PUB_RTX_SSRC, &[(3, &tseq)], &[0, 0, 0, 4]);
    p[0] |= 0x20;
    p
}

#[test]
fn transport_cc_feedback_reports_arrivals_losses_and_reordering() {
    let mut h = Harness::new(publisher_tracks(true));
    // Transport-wide numbers across the wrap, all kinds of packets: 0
    // arrives after 1 (reordered), 2 never arrives.
    h.publish(10, &audio_tw(1, 65_534)).unwrap();
    h.publish(12, &video_tw(0, 65_535)).unwrap();
    h.publish(15, &video_tw(1, 1)).unwrap();
    h.publish(20, &audio_tw(2, 0)).unwrap();
    h.publish(30, &probe_tw(50, 3)).unwrap();
    h.publish(31, &video_tw(2, 4)).unwrap();
    // Due 100 ms after the first arrival; nothing before.
    assert_eq!(h.router.poll_timeout(), Some(h.at(110)));
    h.router.handle_timeout(h.at(109));
    assert!(transport_feedback(&h.deliver().0.rtcp).is_empty());
    h.router.handle_timeout(h.at(110));
    let (publisher, _) = h.deliver();
    let feedback = transport_feedback(&publisher.rtcp);
    assert_eq!(feedback.len(), 1);
    let f = &feedback[0];
    assert_eq!((f.sender_ssrc(), f.media_ssrc()), (RTCP_SSRC, VIDEO_SSRC));
    assert_eq!((f.base_sequence(), f.status_count()), (65_534, 7));
    assert_eq!(f.feedback_count(), 0);
    // Arrivals (ms since the router started) 10, 12, 20, 15, -, 30, 31:
    // reference time 0, deltas in 250 µs ticks 40, 8, 32, -20, lost, 60, 4.
    assert_eq!(f.reference_time(), 0);
    let packets: Vec<(u16, Option<i16>)> = f.packets().map(|p| (p.sequence, p.delta)).collect();
    assert_eq!(
        packets,
        [
            (65_534, Some(40)),
            (65_535, Some(8)),
            (0, Some(32)),
            (1, Some(-20)),
            (2, None),
            (3, Some(60)),
            (4, Some(4)),
        ]
    );
    assert_eq!(h.router.stats().twcc_feedback_sent, 1);

    // No packets, no feedback timer (the next one is the 1 s report).
    assert_eq!(h.router.poll_timeout(), Some(h.at(1000)));
    // 2 arrives after the feedback called it lost: not reported again.
    h.publish(150, &audio_tw(3, 2)).unwrap();
    assert_eq!(h.router.poll_timeout(), Some(h.at(1000)));
    assert_eq!(h.router.stats().twcc_late_arrivals, 1);

    // The run continues at 5 with the next message.
    h.publish(200, &audio_tw(4, 5)).unwrap();
    assert_eq!(h.router.poll_timeout(), Some(h.at(300)));
    h.router.handle_timeout(h.at(300));
    let (publisher, _) = h.deliver();
    let feedback = transport_feedback(&publisher.rtcp);
    assert_eq!(feedback.len(), 1);
    let f = &feedback[0];
    assert_eq!(
        (f.base_sequence(), f.status_count(), f.feedback_count()),
        (5, 1, 1)
    );
    // 200 ms = 3 × 64 ms + 8 ms: delta 32 ticks.
    assert_eq!(f.reference_time(), 3);
    assert_eq!(f.packets().next().and_then(|p| p.delta), Some(32));
    assert_eq!(h.router.stats().twcc_feedback_sent, 2);
}

#[test]
fn no_transport_cc_feedback_when_not_negotiated() {
    let mut h = Harness::new(without_twcc(publisher_tracks(true)));
    for i in 0..20u16 {
        h.publish(10 + u64::from(i), &audio_tw(i, i)).unwrap();
    }
    // The only timer is the receiver report's.
    assert_eq!(h.router.poll_timeout(), Some(h.at(1000)));
    h.router.handle_timeout(h.at(1000));
    let (publisher, _) = h.deliver();
    assert_eq!(receiver_reports(&publisher.rtcp).len(), 1);
    assert!(transport_feedback(&publisher.rtcp).is_empty());
    assert_eq!(h.router.stats().twcc_feedback_sent, 0);
}

#[test]
fn a_long_run_goes_out_at_once_and_a_far_jump_starts_a_new_run() {
    let mut h = Harness::new(publisher_tracks(true));
    let early = super::twcc::EARLY_FLUSH as u16;
    for i in 0..early {
        h.publish(10, &audio_tw(i, 1000 + i)).unwrap();
    }
    // Sent with the packet that made the run long enough, before any timer.
    let (publisher, _) = h.deliver();
    let feedback = transport_feedback(&publisher.rtcp);
    assert_eq!(feedback.len(), 1);
    assert_eq!(
        (feedback[0].base_sequence(), feedback[0].status_count()),
        (1000, early)
    );
    assert!(publisher.rtcp[0].len() <= super::twcc::MAX_FEEDBACK);
    assert_eq!(h.router.poll_timeout(), Some(h.at(1000)));

    // A number far ahead of the window sends the pending run and starts a
    // new one there.
    let next = 1000 + early;
    h.publish(20, &audio_tw(early, next)).unwrap();
    let far = next + super::twcc::WINDOW as u16 + 10;
    h.publish(21, &audio_tw(early + 1, far)).unwrap();
    h.publish(22, &audio_tw(early + 2, far + 1)).unwrap();
    let feedback_now = h.deliver().0;
    let feedback = transport_feedback(&feedback_now.rtcp);
    assert_eq!(feedback.len(), 1);
    assert_eq!(
        (feedback[0].base_sequence(), feedback[0].status_count()),
        (next, 1)
    );
    assert_eq!(h.router.poll_timeout(), Some(h.at(121)));
    h.router.handle_timeout(h.at(121));
    let (publisher, _) = h.deliver();
    let feedback = transport_feedback(&publisher.rtcp);
    assert_eq!(feedback.len(), 1);
    assert_eq!(
        (feedback[0].base_sequence(), feedback[0].status_count()),
        (far, 2)
    );
    assert_eq!(feedback[0].feedback_count(), 2);
    assert_eq!(h.router.stats().twcc_feedback_sent, 3);

    // Two arrivals 9 s apart (the timer was not served in between): a
    // delta beyond 16 bits, so the run goes out as two messages.
    h.publish(200, &audio_tw(early + 3, far + 2)).unwrap();
    h.publish(9_200, &audio_tw(early + 4, far + 3)).unwrap();
    h.router.handle_timeout(h.at(9_200));
    let (publisher, _) = h.deliver();
    let feedback = transport_feedback(&publisher.rtcp);
    let runs: Vec<(u16, u16)> = feedback
        .iter()
        .map(|f| (f.base_sequence(), f.status_count()))
        .collect();
    assert_eq!(runs, [(far + 2, 1), (far + 3, 1)]);
    // 9.2 s = 143 × 64 ms + 48 ms: the second message's own reference time.
    assert_eq!(feedback[1].reference_time(), 143);
    assert_eq!(
        feedback[1].packets().next().and_then(|p| p.delta),
        Some(192)
    );
    assert_eq!(h.router.stats().twcc_feedback_sent, 5);
}

/// Random transport-wide numbers (wraps, jumps, duplicates, reordering)
/// at random times: every feedback parses, names numbers the publisher
/// sent, and no run outgrows the window.
#[test]
fn random_transport_sequences_give_well_formed_feedback() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(0x7cc);
    let mut h = Harness::new(publisher_tracks(true));
    let mut tseq: u16 = rng.gen();
    let mut sent = std::collections::HashSet::new();
    let mut ms = 0u64;
    for i in 0..5_000u16 {
        ms += rng.gen_range(0..5);
        tseq = match rng.gen_range(0..100) {
            0 => rng.gen(),
            1..=5 => tseq.wrapping_sub(rng.gen_range(0..40)),
            _ => tseq.wrapping_add(1),
        };
        sent.insert(tseq);
        h.publish(ms, &audio_tw(i, tseq)).unwrap();
        if rng.gen_range(0..20) == 0 {
            h.router.handle_timeout(h.at(ms));
        }
        let (publisher, _) = h.deliver();
        for f in transport_feedback(&publisher.rtcp) {
            assert!(usize::from(f.status_count()) <= super::twcc::WINDOW);
            for p in f.packets().filter(|p| p.delta.is_some()) {
                assert!(sent.contains(&p.sequence), "{} never sent", p.sequence);
            }
        }
    }
    assert!(h.router.stats().twcc_feedback_sent > 10);
}
