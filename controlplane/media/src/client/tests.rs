//! The client against the relay's real building blocks, wired by hand on a
//! fake clock: `uturn_sdp::answer` answers its offer, `uturn_ice::IceLite`
//! answers its checks, a `uturn_dtls` server endpoint does the handshake,
//! `uturn_srtp` contexts open and seal its media.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Event as DtlsEvent};
use uturn_ice::{Credentials, Event as IceEvent, IceLite, Pair};
use uturn_rtp::rtcp::{self, Packet as RtcpPacket};
use uturn_rtp::rtp::{self as rtpmod, RtpPacket};
use uturn_sdp::answer::OutgoingTrack;
use uturn_sdp::{answer_text, AnswerConfig, CodecName, MediaKind, MediaOutcome, Role as SdpRole};
use uturn_srtp::{Profile, Role, SrtpContext};
use uturn_stun::{classify, PacketKind};

use super::*;

const GCM: Profile = Profile::AeadAes128Gcm;
const CM: Profile = Profile::Aes128CmSha1_80;
const VIEW_VIDEO_SSRC: u32 = 0x1111_2222;
const VIEW_RTX_SSRC: u32 = 0x3333_4444;
const VIEW_AUDIO_SSRC: u32 = 0x5555_6666;

fn server_addr() -> SocketAddr {
    "192.0.2.1:3478".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "198.51.100.7:50000".parse().unwrap()
}

/// The server side of one session, as the media engine holds it.
struct Server {
    ice: IceLite,
    cert: Certificate,
    profiles: Vec<Profile>,
    remote_fingerprint: [u8; 32],
    dtls: Option<Endpoint>,
    tx: Option<SrtpContext>,
    rx: Option<SrtpContext>,
    ice_events: Vec<IceEvent>,
    dtls_events: Vec<DtlsEvent>,
    /// Decrypted RTP and RTCP from the client.
    rtp: Vec<Vec<u8>>,
    rtcp: Vec<Vec<u8>>,
    out: Vec<Vec<u8>>,
    /// Drop the ICE answers (to starve the client's consent).
    mute_ice: bool,
}

impl Server {
    fn handle(&mut self, now: Instant, datagram: &[u8]) {
        let pair = Pair {
            local: server_addr(),
            remote: client_addr(),
        };
        match classify(datagram) {
            PacketKind::Stun => {
                let _ = self.ice.handle_datagram(now, pair, datagram);
                let mut buf = Vec::new();
                while let Some(t) = self.ice.poll_transmit(&mut buf) {
                    assert_eq!(t.destination, client_addr());
                    if !self.mute_ice {
                        self.out.push(buf.clone());
                    }
                }
                while let Some(e) = self.ice.poll_event() {
                    if e == IceEvent::Connected && self.dtls.is_none() {
                        let config = DtlsConfig {
                            profiles: self.profiles.clone(),
                            ..DtlsConfig::default()
                        };
                        self.dtls = Some(
                            Endpoint::new(
                                now,
                                Role::Server,
                                &self.cert,
                                self.remote_fingerprint,
                                &config,
                            )
                            .unwrap(),
                        );
                    }
                    self.ice_events.push(e);
                }
            }
            PacketKind::Dtls => {
                if let Some(dtls) = self.dtls.as_mut() {
                    let _ = dtls.handle_datagram(now, datagram);
                }
                self.drain_dtls();
            }
            PacketKind::Rtp => {
                let mut buf = datagram.to_vec();
                if matches!(datagram.get(1), Some(192..=223)) {
                    let n = self.rx.as_mut().unwrap().unprotect_rtcp(&mut buf).unwrap();
                    buf.truncate(n);
                    self.rtcp.push(buf);
                } else {
                    let n = self.rx.as_mut().unwrap().unprotect_rtp(&mut buf).unwrap();
                    buf.truncate(n);
                    self.rtp.push(buf);
                }
            }
            other => panic!("the client sent {other:?}"),
        }
    }

    fn drain_dtls(&mut self) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        while dtls.poll_transmit(&mut buf).is_some() {
            self.out.push(buf.clone());
        }
        while let Some(e) = dtls.poll_event() {
            if let DtlsEvent::Connected { keys, .. } = &e {
                self.tx = Some(SrtpContext::new(&keys.local));
                self.rx = Some(SrtpContext::new(&keys.remote));
            }
            self.dtls_events.push(e);
        }
    }

    /// Protects `packet` (plain RTP) with the server's outbound context.
    fn protect_rtp(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + 16, 0);
        let n = self
            .tx
            .as_mut()
            .unwrap()
            .protect_rtp(&mut buf, packet.len())
            .unwrap();
        buf.truncate(n);
        buf
    }
}

/// A client and the server pieces answering it.
struct Session {
    now: Instant,
    client: Client,
    server: Server,
    events: Vec<ClientEvent>,
    answer: uturn_sdp::Answer,
}

impl Session {
    fn new(config: ClientConfig, server_profiles: &[Profile]) -> Session {
        let now = Instant::now();
        let client = Client::new(now, config).unwrap();
        let cert = Certificate::generate().unwrap();
        let creds = Credentials::random();
        let publisher = client.config.kind == Kind::Publisher;
        let mut cfg = AnswerConfig::new(
            if publisher {
                SdpRole::Receive
            } else {
                SdpRole::Send
            },
            creds.ufrag(),
            creds.pwd(),
            cert.fingerprint(),
            vec![server_addr()],
        );
        if !publisher {
            cfg.tracks = vec![
                OutgoingTrack {
                    kind: MediaKind::Audio,
                    track_id: "a".into(),
                    ssrc: VIEW_AUDIO_SSRC,
                    rtx_ssrc: None,
                },
                OutgoingTrack {
                    kind: MediaKind::Video,
                    track_id: "v".into(),
                    ssrc: VIEW_VIDEO_SSRC,
                    rtx_ssrc: Some(VIEW_RTX_SSRC),
                },
            ];
        }
        let answer = answer_text(&client.offer(), &cfg).unwrap();
        let remote = Credentials::new(&answer.remote_ice_ufrag, &answer.remote_ice_pwd).unwrap();
        let server = Server {
            ice: IceLite::new(now, creds, remote),
            cert,
            profiles: server_profiles.to_vec(),
            remote_fingerprint: answer.remote_fingerprint,
            dtls: None,
            tx: None,
            rx: None,
            ice_events: Vec::new(),
            dtls_events: Vec::new(),
            rtp: Vec::new(),
            rtcp: Vec::new(),
            out: Vec::new(),
            mute_ice: false,
        };
        let mut session = Session {
            now,
            client,
            server,
            events: Vec::new(),
            answer,
        };
        let text = session.answer.sdp.to_string();
        session.client.accept_answer(now, &text).unwrap();
        session
    }

    /// Moves datagrams until both sides are quiet.
    fn pump(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..200 {
            let mut moved = false;
            while let Some((to, n)) = self.client.poll_transmit(&mut buf) {
                assert_eq!(to, server_addr());
                assert_eq!(n, buf.len());
                assert!(n <= MAX_DATAGRAM);
                self.server.handle(self.now, &buf);
                moved = true;
            }
            for d in std::mem::take(&mut self.server.out) {
                self.client.handle_datagram(self.now, server_addr(), &d);
                moved = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("never quiet");
    }

    /// Advances to the client's next timer (or the server's DTLS timer).
    fn tick(&mut self) {
        let next = [
            self.client.poll_timeout(),
            self.server.dtls.as_ref().and_then(Endpoint::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a timer");
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        if let Some(d) = self.server.dtls.as_mut() {
            d.handle_timeout(self.now);
        }
        self.server.drain_dtls();
        self.pump();
    }

    fn connect(&mut self) {
        self.pump();
        for _ in 0..50 {
            if self.client.is_connected() && self.server.tx.is_some() {
                return;
            }
            self.tick();
        }
        panic!(
            "no connection: {:?} / {:?}",
            self.events, self.server.dtls_events
        );
    }
}

fn accepted(answer: &uturn_sdp::Answer, kind: MediaKind) -> &uturn_sdp::NegotiatedMedia {
    answer
        .media
        .iter()
        .find_map(|m| match m {
            MediaOutcome::Accepted(n) if n.kind == kind => Some(n),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{kind:?} not accepted: {:?}", answer.media))
}

#[test]
fn whip_offer_is_accepted() {
    let s = Session::new(ClientConfig::publisher(), &[GCM, CM]);
    let audio = accepted(&s.answer, MediaKind::Audio);
    assert_eq!(audio.codec.name, CodecName::Opus);
    assert_eq!(audio.codec.payload_type, 111);
    assert_eq!(audio.remote_ssrc, s.client.local_ssrc(MediaKind::Audio));
    let video = accepted(&s.answer, MediaKind::Video);
    assert_eq!(video.codec.name, CodecName::Vp8);
    assert_eq!(video.codec.payload_type, 96);
    assert_eq!(video.rtx_payload_type, Some(97));
    assert_eq!(video.remote_ssrc, s.client.local_ssrc(MediaKind::Video));
    assert!(video.remote_rtx_ssrc.is_some());
    assert!(video.rtcp_rsize);
    assert_eq!(video.extmaps.len(), 3, "{:?}", video.extmaps);
    assert_eq!(s.answer.remote_fingerprint, s.client.fingerprint());
    assert_eq!(s.answer.remote_ice_ufrag, s.client.credentials().ufrag());
    assert_eq!(s.client.server_address(), Some(server_addr()));
}

#[test]
fn whep_offer_is_accepted_with_tracks() {
    let s = Session::new(ClientConfig::viewer(), &[GCM, CM]);
    let video = accepted(&s.answer, MediaKind::Video);
    assert_eq!(
        video.local_track.as_ref().map(|t| t.ssrc),
        Some(VIEW_VIDEO_SSRC)
    );
    assert_eq!(
        video.remote_ssrc, None,
        "a recvonly offer announces no SSRC"
    );
    let audio = accepted(&s.answer, MediaKind::Audio);
    assert_eq!(
        audio.local_track.as_ref().map(|t| t.ssrc),
        Some(VIEW_AUDIO_SSRC)
    );
    // The client read the relay's SSRCs from the answer.
    let remote = s.client.remote.as_ref().unwrap();
    let v = remote_media(remote, MediaKind::Video).unwrap();
    assert_eq!(v.ssrc, Some(VIEW_VIDEO_SSRC));
    assert_eq!(v.rtx_ssrc, Some(VIEW_RTX_SSRC));
    assert_eq!(v.rtx_payload_type, Some(97));
}

#[test]
fn audio_only_and_video_only_offers() {
    for (audio, video) in [(true, false), (false, true)] {
        let config = ClientConfig {
            audio,
            video,
            ..ClientConfig::publisher()
        };
        let mut s = Session::new(config, &[GCM]);
        let kinds: Vec<_> = s
            .answer
            .media
            .iter()
            .filter_map(|m| match m {
                MediaOutcome::Accepted(n) => Some(n.kind),
                _ => None,
            })
            .collect();
        assert_eq!(kinds.len(), 1);
        s.connect();
        let other = if audio {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        assert!(matches!(
            s.client.send_rtp(s.now, other, b"x", false),
            Err(ClientError::NoMedia(_))
        ));
    }
}

#[test]
fn ice_then_dtls_connect_with_each_profile() {
    for (client, server, expected) in [
        (vec![GCM, CM], vec![GCM, CM], GCM),
        (vec![GCM, CM], vec![CM, GCM], CM),
        (vec![CM], vec![GCM, CM], CM),
    ] {
        let config = ClientConfig {
            profiles: client,
            ..ClientConfig::publisher()
        };
        let mut s = Session::new(config, &server);
        s.connect();
        assert_eq!(s.events.first(), Some(&ClientEvent::IceConnected));
        assert!(s
            .events
            .contains(&ClientEvent::DtlsConnected { profile: expected }));
        assert!(s.server.ice_events.contains(&IceEvent::Connected));
        assert_eq!(s.client.profile(), Some(expected));
        assert_eq!(
            s.server.ice.selected().map(|p| p.remote),
            Some(client_addr())
        );
    }
}

#[test]
fn checks_repeat_every_50ms_until_answered() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    let start = s.now;
    // Lose everything for a while: the client keeps checking.
    let mut buf = Vec::new();
    let mut checks = 0;
    while s.now < start + Duration::from_millis(200) {
        while s.client.poll_transmit(&mut buf).is_some() {
            checks += 1;
        }
        let next = s.client.poll_timeout().unwrap();
        assert!(next <= s.now + ice::CHECK_INTERVAL);
        s.now = next;
        s.client.handle_timeout(s.now);
    }
    assert!((4..=6).contains(&checks), "{checks} checks in 200 ms");
    assert!(s.events.is_empty());
    s.connect();
    assert!(s.client.is_connected());
}

#[test]
fn publisher_rtp_is_opened_by_the_server() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM, CM]);
    s.connect();
    let key = vp8_payload(true, 900);
    s.client
        .send_rtp(s.now, MediaKind::Video, &key, true)
        .unwrap();
    s.client
        .send_rtp(s.now, MediaKind::Audio, b"opus frame", false)
        .unwrap();
    s.now += Duration::from_millis(20);
    s.client
        .send_rtp(s.now, MediaKind::Video, &vp8_payload(false, 300), false)
        .unwrap();
    s.pump();
    assert_eq!(s.server.rtp.len(), 3);
    let video = accepted(&s.answer, MediaKind::Video).clone();
    let audio = accepted(&s.answer, MediaKind::Audio).clone();
    let p0 = RtpPacket::new_checked(&s.server.rtp[0]).unwrap();
    assert_eq!(p0.payload_type(), 96);
    assert_eq!(Some(p0.ssrc()), video.remote_ssrc);
    assert!(p0.marker());
    assert_eq!(p0.payload(), &key[..]);
    let mid_id = video
        .extmaps
        .iter()
        .find(|e| e.uri.ends_with("sdes:mid"))
        .unwrap()
        .id;
    assert_eq!(p0.extension(mid_id), Some(video.mid.as_bytes()));
    let p1 = RtpPacket::new_checked(&s.server.rtp[1]).unwrap();
    assert_eq!(p1.payload_type(), 111);
    assert_eq!(Some(p1.ssrc()), audio.remote_ssrc);
    assert_eq!(p1.payload(), b"opus frame");
    let p2 = RtpPacket::new_checked(&s.server.rtp[2]).unwrap();
    assert_eq!(p2.sequence_number(), p0.sequence_number().wrapping_add(1));
    // 20 ms at 90 kHz.
    assert_eq!(p2.timestamp().wrapping_sub(p0.timestamp()), 1800);
    assert_eq!(s.client.stats().rtp_sent, 3);
}

#[test]
fn viewer_receives_what_the_server_protects() {
    let mut s = Session::new(ClientConfig::viewer(), &[GCM, CM]);
    s.connect();
    assert!(matches!(
        s.client.send_rtp(s.now, MediaKind::Video, b"x", false),
        Err(ClientError::NotPublisher)
    ));
    // A key frame, an RTX copy of it, an interframe and audio.
    let mut plain = [0u8; 1500];
    let key = vp8_payload(true, 500);
    let n = packet::write_rtp(
        &mut plain,
        &RtpHeader {
            payload_type: 96,
            marker: true,
            sequence_number: 7,
            timestamp: 1000,
            ssrc: VIEW_VIDEO_SSRC,
        },
        &[],
        &key,
    )
    .unwrap();
    let key_packet = plain[..n].to_vec();
    let mut rtx = [0u8; 1500];
    let rtx_len = rtpmod::write_rtx(&key_packet, &mut rtx, VIEW_RTX_SSRC, 97, 1).unwrap();
    let delta = vp8_payload(false, 200);
    let n = packet::write_rtp(
        &mut plain,
        &RtpHeader {
            payload_type: 96,
            marker: false,
            sequence_number: 8,
            timestamp: 4000,
            ssrc: VIEW_VIDEO_SSRC,
        },
        &[],
        &delta,
    )
    .unwrap();
    let delta_packet = plain[..n].to_vec();
    let n = packet::write_rtp(
        &mut plain,
        &RtpHeader {
            payload_type: 111,
            marker: false,
            sequence_number: 1,
            timestamp: 960,
            ssrc: VIEW_AUDIO_SSRC,
        },
        &[],
        b"opus",
    )
    .unwrap();
    let audio_packet = plain[..n].to_vec();
    for p in [
        &key_packet[..],
        &rtx[..rtx_len],
        &delta_packet[..],
        &audio_packet[..],
    ] {
        let d = s.server.protect_rtp(p);
        s.client.handle_datagram(s.now, server_addr(), &d);
    }
    let rtp: Vec<_> = std::iter::from_fn(|| s.client.poll_event())
        .filter(|e| matches!(e, ClientEvent::Rtp { .. }))
        .collect();
    assert_eq!(
        rtp,
        vec![
            ClientEvent::Rtp {
                kind: MediaKind::Video,
                ssrc: VIEW_VIDEO_SSRC,
                payload_type: 96,
                sequence_number: 7,
                payload_len: key.len(),
                keyframe: true,
                rtx: false,
            },
            ClientEvent::Rtp {
                kind: MediaKind::Video,
                ssrc: VIEW_RTX_SSRC,
                payload_type: 97,
                sequence_number: 1,
                payload_len: key.len() + 2,
                keyframe: true,
                rtx: true,
            },
            ClientEvent::Rtp {
                kind: MediaKind::Video,
                ssrc: VIEW_VIDEO_SSRC,
                payload_type: 96,
                sequence_number: 8,
                payload_len: delta.len(),
                keyframe: false,
                rtx: false,
            },
            ClientEvent::Rtp {
                kind: MediaKind::Audio,
                ssrc: VIEW_AUDIO_SSRC,
                payload_type: 111,
                sequence_number: 1,
                payload_len: 4,
                keyframe: false,
                rtx: false,
            },
        ]
    );
    // A replay and a forged packet are counted, not delivered.
    let replay = s.server.protect_rtp(&audio_packet);
    let mut forged = replay.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    s.client.handle_datagram(s.now, server_addr(), &forged);
    s.client.handle_datagram(s.now, server_addr(), &replay);
    assert_eq!(s.client.poll_event(), None);
    assert_eq!(s.client.stats().srtp_errors, 2);
    assert_eq!(s.client.stats().rtp_received, 4);
}

#[test]
fn viewer_feedback_reaches_the_server() {
    let mut s = Session::new(ClientConfig::viewer(), &[CM]);
    s.connect();
    s.client.send_pli().unwrap();
    s.client.send_nack(&[10, 11, 13]).unwrap();
    s.client.send_fir().unwrap();
    s.pump();
    let mut seen = (0, 0, 0);
    for compound in &s.server.rtcp {
        for p in rtcp::parse_compound(compound) {
            match p.unwrap() {
                RtcpPacket::Pli {
                    sender_ssrc,
                    media_ssrc,
                } => {
                    assert_eq!(media_ssrc, VIEW_VIDEO_SSRC);
                    assert_eq!(sender_ssrc, s.client.receiver_ssrc);
                    seen.0 += 1;
                }
                RtcpPacket::Nack(n) => {
                    assert_eq!(n.media_ssrc(), VIEW_VIDEO_SSRC);
                    assert_eq!(n.lost().collect::<Vec<_>>(), vec![10, 11, 13]);
                    seen.1 += 1;
                }
                RtcpPacket::Fir { .. } => seen.2 += 1,
                _ => {}
            }
        }
    }
    assert_eq!(seen, (1, 1, 1));
    // A publisher cannot send feedback.
    let mut p = Session::new(ClientConfig::publisher(), &[GCM]);
    p.connect();
    assert!(matches!(p.client.send_pli(), Err(ClientError::NotViewer)));
}

#[test]
fn server_rtcp_reaches_the_publisher() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    s.connect();
    let video_ssrc = s.client.local_ssrc(MediaKind::Video).unwrap();
    let mut buf = [0u8; 200];
    let mut n = rtcp::write_rr(&mut buf, 1, &[]).unwrap();
    n += rtcp::write_pli(&mut buf[n..], 1, video_ssrc).unwrap();
    n += rtcp::write_nack(&mut buf[n..], 1, video_ssrc, &[5]).unwrap();
    let mut d = buf[..n].to_vec();
    d.resize(n + 30, 0);
    let len = s
        .server
        .tx
        .as_mut()
        .unwrap()
        .protect_rtcp(&mut d, n)
        .unwrap();
    s.client.handle_datagram(s.now, server_addr(), &d[..len]);
    assert_eq!(
        s.client.poll_event(),
        Some(ClientEvent::Rtcp {
            pli: 1,
            fir: 0,
            nack: 1,
            sr: 0,
            rr: 1
        })
    );
}

#[test]
fn reports_and_consent_keep_flowing() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    s.connect();
    s.client
        .send_rtp(s.now, MediaKind::Video, &vp8_payload(true, 100), true)
        .unwrap();
    s.pump();
    let requests_before = s.server.ice.stats().requests;
    let start = s.now;
    while s.now < start + Duration::from_secs(11) {
        s.tick();
    }
    // Two consent checks in 11 s (every 5 s), all answered.
    assert_eq!(s.server.ice.stats().requests - requests_before, 2);
    assert!(s.client.is_connected());
    // About one report a second, each an SR + SDES per sending SSRC.
    let srs = s
        .server
        .rtcp
        .iter()
        .flat_map(|c| rtcp::parse_compound(c).collect::<Vec<_>>())
        .filter(|p| matches!(p, Ok(RtcpPacket::SenderReport(_))))
        .count();
    assert!((20..=24).contains(&srs), "{srs} SRs in 11 s for 2 streams");
    let first = s.server.rtcp.first().unwrap();
    let mut parts = rtcp::parse_compound(first);
    assert!(matches!(
        parts.next(),
        Some(Ok(RtcpPacket::SenderReport(_)))
    ));
    assert!(matches!(parts.next(), Some(Ok(RtcpPacket::Sdes(_)))));
}

#[test]
fn consent_lost_without_answers() {
    let mut s = Session::new(ClientConfig::viewer(), &[GCM]);
    s.connect();
    s.server.mute_ice = true;
    let start = s.now;
    for _ in 0..200 {
        if s.events.contains(&ClientEvent::ConsentLost) {
            break;
        }
        s.tick();
    }
    assert!(s.events.contains(&ClientEvent::ConsentLost));
    assert!(s.now - start <= ice::CONSENT_TIMEOUT);
    assert!(s.now - start >= ice::CONSENT_TIMEOUT - ice::CONSENT_INTERVAL);
    assert!(!s.client.is_connected());
    assert_eq!(s.client.poll_timeout(), None);
}

#[test]
fn close_notify_both_ways() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    s.connect();
    s.client.close();
    s.pump();
    assert!(s.server.dtls_events.contains(&DtlsEvent::Closed));
    assert!(matches!(
        s.client.send_rtp(s.now, MediaKind::Audio, b"x", false),
        Err(ClientError::NotConnected)
    ));

    let mut s = Session::new(ClientConfig::viewer(), &[GCM]);
    s.connect();
    s.server.dtls.as_mut().unwrap().close();
    s.server.drain_dtls();
    s.pump();
    assert_eq!(s.events.last(), Some(&ClientEvent::Closed));
    assert!(!s.client.is_connected());
}

#[test]
fn wrong_server_fingerprint_fails_dtls() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    // The server presents another certificate than its SDP announced.
    s.server.cert = Certificate::generate().unwrap();
    s.pump();
    for _ in 0..20 {
        if !s
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::DtlsFailed(_)))
        {
            s.tick();
        }
    }
    assert!(s.events.contains(&ClientEvent::DtlsFailed(
        uturn_dtls::Error::FingerprintMismatch
    )));
    assert!(!s.client.is_connected());
}

#[test]
fn foreign_and_garbage_datagrams_are_ignored() {
    let mut s = Session::new(ClientConfig::viewer(), &[GCM]);
    s.connect();
    let before = s.client.stats().ignored;
    s.client.handle_datagram(s.now, client_addr(), &[0x80; 40]);
    for junk in [
        &[][..],
        &[0x00, 0x01],
        &[0x17; 30],
        &[0x80, 96, 0, 1],
        &[0x90; 200],
        &[0x45; 12],
    ] {
        s.client.handle_datagram(s.now, server_addr(), junk);
    }
    let stats = s.client.stats();
    assert!(stats.ignored + stats.srtp_errors >= before + 6, "{stats:?}");
    assert!(s.client.is_connected());
    assert!(
        std::iter::from_fn(|| s.client.poll_event()).all(|e| !matches!(e, ClientEvent::Rtp { .. }))
    );
}

#[test]
fn bad_answers_are_refused() {
    let mut c = Client::new(Instant::now(), ClientConfig::publisher()).unwrap();
    for answer in ["", "v=0\r\n", "not sdp at all"] {
        assert!(matches!(
            c.accept_answer(Instant::now(), answer),
            Err(ClientError::Answer(_))
        ));
    }
    assert_eq!(c.server_address(), None);
    let mut buf = Vec::new();
    assert_eq!(c.poll_transmit(&mut buf), None);
    assert!(matches!(c.send_pli(), Err(ClientError::NotViewer)));
}

#[test]
fn steady_state_reuses_buffers() {
    // Not an allocation counter (the crate forbids the unsafe a counting
    // allocator needs), but the pool must stop growing once warm.
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    s.connect();
    let payload = vp8_payload(false, 1000);
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    for _ in 0..3 {
        s.client
            .send_rtp(s.now, MediaKind::Video, &payload, false)
            .unwrap();
        while s.client.poll_transmit(&mut buf).is_some() {}
    }
    let spare = s.client.outbox.spare.len();
    let cap = buf.capacity();
    for _ in 0..100 {
        s.client
            .send_rtp(s.now, MediaKind::Video, &payload, false)
            .unwrap();
        while s.client.poll_transmit(&mut buf).is_some() {}
    }
    assert_eq!(s.client.outbox.spare.len(), spare);
    assert_eq!(buf.capacity(), cap);
    assert!(s
        .client
        .outbox
        .spare
        .iter()
        .all(|b| b.capacity() >= MAX_DATAGRAM));
}

#[test]
fn unpolled_queues_stay_bounded() {
    let mut s = Session::new(ClientConfig::publisher(), &[GCM]);
    s.connect();
    let payload = vp8_payload(false, 100);
    for _ in 0..MAX_QUEUED + 10 {
        s.client
            .send_rtp(s.now, MediaKind::Video, &payload, false)
            .unwrap();
    }
    assert_eq!(s.client.outbox.queue.len(), MAX_QUEUED);
    assert_eq!(s.client.stats().transmits_dropped, 10);
    // The newest packets are the ones kept.
    let mut buf = Vec::new();
    let mut last = None;
    while s.client.poll_transmit(&mut buf).is_some() {
        let n = s.server.rx.as_mut().unwrap().unprotect_rtp(&mut buf);
        if let Ok(n) = n {
            last = Some(RtpPacket::new_checked(&buf[..n]).unwrap().sequence_number());
        }
    }
    assert_eq!(last, Some(s.client.streams[1].seq.wrapping_sub(1)));
}
