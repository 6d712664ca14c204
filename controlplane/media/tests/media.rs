//! The media path end to end, on a fake clock and without sockets:
//! `uturn_media::client::Client` publishers and viewers, one or two
//! `MediaEngine`s (publisher on worker 0, viewers on worker 1 exercises the
//! mailbox). ICE, DTLS, SRTP fan-out, RTCP feedback, lifetimes.

mod common;

use std::time::Duration;

use common::net::{Net, Rtp, Verdict, TICK};
use common::{listener, registry};
use uturn_media::client::{ClientConfig, ClientEvent};
use uturn_media::{Kind, Signalling};
use uturn_sdp::{MediaKind, SessionDescription};
use uturn_stun::{Attribute, Class, MessageBuilder, Method, TransactionId};

/// The SSRCs a viewer's answer announces: (audio, video, video RTX).
fn answer_ssrcs(answer: &str) -> (Option<u32>, Option<u32>, Option<u32>) {
    let sdp = SessionDescription::parse(answer).unwrap();
    let mut out = (None, None, None);
    for m in &sdp.media {
        let ssrcs = m.ssrcs().unwrap();
        match m.kind() {
            MediaKind::Audio => out.0 = ssrcs.first().map(|s| s.ssrc),
            MediaKind::Video => {
                let fid = m
                    .ssrc_groups()
                    .unwrap()
                    .into_iter()
                    .find(|g| g.semantics == "FID");
                match fid {
                    Some(g) => {
                        out.1 = g.ssrcs.first().copied();
                        out.2 = g.ssrcs.get(1).copied();
                    }
                    None => out.1 = ssrcs.first().map(|s| s.ssrc),
                }
            }
            _ => {}
        }
    }
    out
}

/// A publisher on worker 0 and `viewers` viewers on `viewer_worker`, all connected.
fn stream(workers: usize, viewer_worker: usize, viewers: usize) -> Net {
    let mut net = Net::new(registry(workers, 100), workers);
    net.publish("cam", ClientConfig::publisher(), 0);
    for _ in 0..viewers {
        net.play("cam", ClientConfig::viewer(), viewer_worker);
    }
    net.connect_all();
    net
}

/// Sends a keyframe, then `frames` delta frames, one per step.
fn stream_frames(net: &mut Net, frames: usize) {
    net.send_frame(0, true, 1000, true);
    net.step();
    for i in 0..frames {
        net.send_frame(0, false, 500 + i, true);
        net.step();
    }
    net.run_for(TICK * 5);
}

fn fan_out_reaches_every_viewer(workers: usize, viewer_worker: usize) {
    let mut net = stream(workers, viewer_worker, 3);
    stream_frames(&mut net, 10);
    for v in 1..=3 {
        let (audio, video, _) = answer_ssrcs(&net.peers[v].created.answer);
        let rtp = net.peers[v].rtp();
        let video_rtp: Vec<&Rtp> = rtp.iter().filter(|p| p.video && !p.rtx).collect();
        let audio_rtp: Vec<&Rtp> = rtp.iter().filter(|p| !p.video).collect();
        assert_eq!(video_rtp.len(), 11, "viewer {v}: {rtp:?}");
        assert_eq!(audio_rtp.len(), 11, "viewer {v}");
        // The first video packet is the keyframe, payloads intact.
        assert!(video_rtp[0].keyframe);
        assert_eq!(video_rtp[0].payload_len, 1000);
        for (i, p) in video_rtp.iter().skip(1).enumerate() {
            assert_eq!(p.payload_len, 500 + i);
            assert!(!p.keyframe);
        }
        for p in &video_rtp {
            assert_eq!(Some(p.ssrc), video);
            assert_eq!(p.payload_type, 96);
        }
        for p in &audio_rtp {
            assert_eq!(Some(p.ssrc), audio);
            assert_eq!(p.payload_type, 111);
            assert_eq!(p.payload_len, 80);
        }
        // Sequence numbers are the publisher's, consecutive.
        for w in video_rtp.windows(2) {
            assert_eq!(w[1].sequence_number, w[0].sequence_number.wrapping_add(1));
        }
    }
    assert_eq!(net.total(|s| s.rtp_in), 22);
    assert_eq!(net.total(|s| s.rtp_out), 66);
    assert_eq!(net.total(|s| s.sessions), 4);
    assert_eq!(net.total(|s| s.viewers), 3);
    assert_eq!(net.total(|s| s.streams), 1);
    assert_eq!(net.total(|s| s.srtp_auth_failures), 0);
}

#[test]
fn publisher_and_three_viewers_on_one_worker() {
    fan_out_reaches_every_viewer(1, 0);
}

#[test]
fn viewers_on_another_worker_get_the_media_through_the_mailbox() {
    fan_out_reaches_every_viewer(2, 1);
}

#[test]
fn both_srtp_profiles() {
    use uturn_srtp::Profile;
    let mut net = Net::new(registry(2, 100), 2);
    let only = |kind: Kind, p: Profile| ClientConfig {
        profiles: vec![p],
        ..if kind == Kind::Publisher {
            ClientConfig::publisher()
        } else {
            ClientConfig::viewer()
        }
    };
    net.publish("cam", only(Kind::Publisher, Profile::Aes128CmSha1_80), 0);
    net.play("cam", only(Kind::Viewer, Profile::AeadAes128Gcm), 1);
    net.play("cam", only(Kind::Viewer, Profile::Aes128CmSha1_80), 0);
    net.connect_all();
    let profiles: Vec<Profile> = net
        .peers
        .iter()
        .map(|p| {
            p.events
                .iter()
                .find_map(|e| match e {
                    ClientEvent::DtlsConnected { profile } => Some(*profile),
                    _ => None,
                })
                .unwrap()
        })
        .collect();
    assert_eq!(
        profiles,
        [
            Profile::Aes128CmSha1_80,
            Profile::AeadAes128Gcm,
            Profile::Aes128CmSha1_80
        ]
    );
    stream_frames(&mut net, 3);
    for v in 1..=2 {
        let rtp = net.peers[v].rtp();
        assert_eq!(rtp.iter().filter(|p| p.video).count(), 4, "viewer {v}");
        assert_eq!(rtp.iter().filter(|p| !p.video).count(), 4, "viewer {v}");
    }
}

#[test]
fn a_late_viewer_triggers_a_keyframe_request_and_starts_at_a_keyframe() {
    for (workers, viewer_worker) in [(1, 0), (2, 1)] {
        let mut net = stream(workers, viewer_worker, 0);
        stream_frames(&mut net, 5);
        // Let the join-time keyframe requests' rate limit pass.
        net.run_for(Duration::from_secs(1));
        let pli_before = net.peers[0].rtcp().pli;
        let late = net.play("cam", ClientConfig::viewer(), viewer_worker);
        net.connect_all();
        net.run_for(TICK * 10);
        assert!(
            net.peers[0].rtcp().pli > pli_before,
            "no keyframe request after the late viewer joined"
        );
        // Delta frames: the late viewer gets audio but no video yet.
        for i in 0..3 {
            net.send_frame(0, false, 300 + i, true);
            net.step();
        }
        net.run_for(TICK * 3);
        let rtp = net.peers[late].rtp();
        assert!(rtp.iter().all(|p| !p.video), "video before a keyframe");
        assert!(rtp.iter().any(|p| !p.video), "audio flows at once");
        // The publisher answers with a keyframe: video starts with it.
        net.send_frame(0, true, 1100, false);
        net.step();
        net.send_frame(0, false, 400, false);
        net.run_for(TICK * 3);
        let video: Vec<Rtp> = net.peers[late]
            .rtp()
            .into_iter()
            .filter(|p| p.video)
            .collect();
        assert_eq!(video.len(), 2, "{video:?}");
        assert!(video[0].keyframe);
        assert_eq!(video[0].payload_len, 1100);
    }
}

#[test]
fn viewer_pli_reaches_the_publisher_rate_limited() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 2);
    net.run_for(Duration::from_secs(1));
    let before = net.peers[0].rtcp().pli;
    // Five PLIs from two viewers within 50 ms.
    for i in 0..5 {
        net.peers[1 + i % 2].client.send_pli().unwrap();
        net.step();
    }
    net.run_for(TICK * 5);
    let burst = net.peers[0].rtcp().pli - before;
    assert_eq!(burst, 1, "the first request goes at once, the rest wait");
    // The rest are folded into one request when 500 ms are up.
    net.run_for(Duration::from_millis(600));
    assert_eq!(net.peers[0].rtcp().pli - before, 2);
    // And nothing more without new requests.
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.peers[0].rtcp().pli - before, 2);
    assert!(net.total(|s| s.keyframe_requests) >= 2);
}

#[test]
fn nack_is_answered_with_rtx_or_the_packet_again() {
    let mut net = Net::new(registry(2, 100), 2);
    net.publish("cam", ClientConfig::publisher(), 0);
    let with_rtx = net.play("cam", ClientConfig::viewer(), 1);
    let without_rtx = net.play(
        "cam",
        ClientConfig {
            rtx: false,
            ..ClientConfig::viewer()
        },
        0,
    );
    net.connect_all();
    let (_, _, video_rtx) = answer_ssrcs(&net.peers[with_rtx].created.answer);
    let (_, _, none) = answer_ssrcs(&net.peers[without_rtx].created.answer);
    assert!(video_rtx.is_some());
    assert!(none.is_none());

    // The link to both viewers loses the 3rd and 5th video packets (the
    // SRTP header is in the clear: payload type and sequence number)
    // until the NACKs go out.
    let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u16>::new()));
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u16>::new()));
    {
        let (lost, seen) = (lost.clone(), seen.clone());
        net.set_down_filter(move |_, d| {
            let video = is_srtp(d) && d.get(1).is_some_and(|b| b & 0x7f == 96);
            let Some(seq) = d.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                return true;
            };
            if !video {
                return true;
            }
            let mut seen = seen.borrow_mut();
            if !seen.contains(&seq) {
                seen.push(seq);
            }
            let index = seen.iter().position(|s| *s == seq).unwrap_or(0);
            if index == 2 || index == 4 {
                let mut lost = lost.borrow_mut();
                if !lost.contains(&seq) {
                    lost.push(seq);
                }
                return false;
            }
            true
        });
    }
    stream_frames(&mut net, 5);
    let lost_seqs: Vec<u16> = lost.borrow().clone();
    assert_eq!(lost_seqs.len(), 2);
    for v in [with_rtx, without_rtx] {
        let got: Vec<u16> = net.peers[v]
            .rtp()
            .iter()
            .filter(|p| p.video)
            .map(|p| p.sequence_number)
            .collect();
        assert_eq!(got.len(), 4, "viewer {v} lost two of six");
        net.peers[v].client.send_nack(&lost_seqs).unwrap();
        // A sequence number never sent is ignored.
        net.peers[v]
            .client
            .send_nack(&[lost_seqs[0].wrapping_sub(1000)])
            .unwrap();
    }
    net.set_down_filter(|_, _| true);
    net.run_for(TICK * 5);

    let rtx: Vec<Rtp> = net.peers[with_rtx]
        .rtp()
        .into_iter()
        .filter(|p| p.rtx)
        .collect();
    assert_eq!(rtx.len(), 2, "{rtx:?}");
    for p in &rtx {
        assert_eq!(Some(p.ssrc), video_rtx);
        assert_eq!(p.payload_type, 97);
        assert!(p.video);
    }
    // RFC 4588: its own sequence space, consecutive.
    assert_eq!(
        rtx[1].sequence_number,
        rtx[0].sequence_number.wrapping_add(1)
    );

    let again: Vec<Rtp> = net.peers[without_rtx].rtp();
    assert!(again.iter().all(|p| !p.rtx));
    for seq in &lost_seqs {
        let copies = again
            .iter()
            .filter(|p| p.video && p.sequence_number == *seq)
            .count();
        assert_eq!(copies, 1, "seq {seq} retransmitted as is");
    }
    assert_eq!(net.total(|s| s.nacks_answered), 4);
    assert!(net.total(|s| s.nacks_received) >= 2);
}

#[test]
fn consent_expiry_ends_a_session_and_frees_it() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 2);
    assert_eq!(net.registry.session_count(), 3);
    // Viewer 1 goes silent: no more consent checks.
    net.peers[1].silent = true;
    net.run_for(Duration::from_secs(31));
    assert_eq!(net.registry.session_count(), 2);
    assert_eq!(net.registry.streams()[0].viewers, 1);
    assert_eq!(net.total(|s| s.consent_lost), 1);
    assert_eq!(net.total(|s| s.sessions), 2);
    assert_eq!(net.total(|s| s.viewers), 1);
    // The other viewer still gets media.
    let before = net.peers[2].rtp().len();
    stream_frames(&mut net, 1);
    assert!(net.peers[2].rtp().len() > before);
    // Everyone goes silent: all freed.
    for p in &mut net.peers {
        p.silent = true;
    }
    net.run_for(Duration::from_secs(31));
    assert_eq!(net.registry.session_count(), 0);
    assert!(net.registry.streams().is_empty());
    assert_eq!(net.total(|s| s.sessions), 0);
    assert_eq!(net.total(|s| s.streams), 0);
}

#[test]
fn deleting_a_viewer_closes_it_and_spares_the_others() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 2);
    let session = net.peers[1].created.session.clone();
    net.registry
        .delete(net.now, Kind::Viewer, "cam", &session)
        .unwrap();
    net.run_for(TICK * 5);
    assert!(net.peers[1].closed(), "the viewer saw close_notify");
    assert!(!net.peers[2].closed());
    assert_eq!(net.total(|s| s.viewers), 1);
    assert_eq!(net.registry.session_count(), 2);
    let (one, two) = (net.peers[1].rtp().len(), net.peers[2].rtp().len());
    stream_frames(&mut net, 2);
    assert_eq!(net.peers[1].rtp().len(), one);
    assert!(net.peers[2].rtp().len() > two);
}

#[test]
fn deleting_the_publisher_ends_every_viewer() {
    for (workers, viewer_worker) in [(1, 0), (2, 1)] {
        let mut net = stream(workers, viewer_worker, 3);
        stream_frames(&mut net, 2);
        let session = net.peers[0].created.session.clone();
        net.registry
            .delete(net.now, Kind::Publisher, "cam", &session)
            .unwrap();
        net.run_for(TICK * 5);
        for p in &net.peers {
            assert!(p.closed(), "{:?} not closed: {:?}", p.kind, p.events);
        }
        assert_eq!(net.registry.session_count(), 0);
        assert!(net.registry.streams().is_empty());
        assert_eq!(net.total(|s| s.sessions), 0);
        assert_eq!(net.total(|s| s.streams), 0);
    }
}

#[test]
fn a_publisher_closing_dtls_ends_the_stream() {
    let mut net = stream(2, 1, 1);
    stream_frames(&mut net, 1);
    net.peers[0].client.close();
    net.run_for(TICK * 5);
    assert!(net.peers[1].closed());
    assert_eq!(net.registry.session_count(), 0);
    assert_eq!(net.total(|s| s.sessions), 0);
}

/// RFC 5761 §4: SRTP (not SRTCP) from a client.
fn is_srtp(d: &[u8]) -> bool {
    matches!(d.first(), Some(0x80..=0xbf)) && !matches!(d.get(1), Some(192..=223))
}

fn is_srtcp(d: &[u8]) -> bool {
    matches!(d.first(), Some(0x80..=0xbf)) && matches!(d.get(1), Some(192..=223))
}

#[test]
fn bad_tags_replays_and_dtls_garbage_are_counted_and_harm_no_one() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 1);
    let base_rtp = net.peers[2].rtp().len();
    let mut recorded: Option<Vec<u8>> = None;
    let mut replays = 0;
    let mut turn = 0u32;
    net.set_filter(move |peer, d| {
        match peer {
            // The publisher: each SRTP packet preceded by a copy with a
            // broken tag; the first one recorded and replayed later.
            0 if is_srtp(d) => match &recorded {
                None => {
                    recorded = Some(d.to_vec());
                    let mut bad = d.to_vec();
                    if let Some(last) = bad.last_mut() {
                        *last ^= 0x01;
                    }
                    Verdict::InjectBefore(bad)
                }
                Some(old) if replays < 3 => {
                    replays += 1;
                    Verdict::InjectBefore(old.clone())
                }
                Some(_) => Verdict::Pass,
            },
            // Viewer 1: before each of its SRTCP compounds, in turn: the
            // compound with a broken tag; a DTLS record that claims more
            // than the datagram holds; one well framed but undecryptable
            // (DTLS drops it silently, RFC 6347 §4.1.2.1).
            1 if is_srtcp(d) => {
                turn += 1;
                match turn % 3 {
                    1 => {
                        let mut bad = d.to_vec();
                        if let Some(b) = bad.get_mut(12) {
                            *b ^= 0x80;
                        }
                        Verdict::InjectBefore(bad)
                    }
                    2 => Verdict::InjectBefore(vec![
                        22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0, 1,
                    ]),
                    _ => Verdict::InjectBefore(vec![
                        23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 3, 1, 2, 3,
                    ]),
                }
            }
            _ => Verdict::Pass,
        }
    });
    stream_frames(&mut net, 5);
    net.run_for(Duration::from_secs(2));
    net.clear_filter();
    // The publisher's home: one bad tag, three replays.
    let (home, viewers) = (net.engines[0].stats(), net.engines[1].stats());
    assert_eq!(home.srtp_auth_failures, 1, "{home:?}");
    assert_eq!(home.srtp_replays, 3, "{home:?}");
    // The viewers' home: viewer 1's tampered SRTCP and DTLS garbage.
    assert!(viewers.srtp_auth_failures >= 1, "{viewers:?}");
    assert!(viewers.malformed >= 1, "{viewers:?}");
    // Every genuine packet still reached both viewers.
    for v in 1..=2 {
        let got = net.peers[v].rtp();
        assert_eq!(got.iter().filter(|p| p.video).count(), 8, "viewer {v}");
    }
    assert!(net.peers[2].rtp().len() > base_rtp);
    // Nobody was disconnected.
    assert!(net.peers.iter().all(|p| !p.closed()));
    assert_eq!(net.total(|s| s.sessions), 3);
    // Feedback still works for the viewer that got garbage.
    let before = net.peers[0].rtcp().pli;
    net.run_for(Duration::from_secs(1));
    net.peers[1].client.send_pli().unwrap();
    net.run_for(TICK * 5);
    assert!(net.peers[0].rtcp().pli > before);
}

#[test]
fn viewer_rtp_is_dropped() {
    let mut net = stream(1, 0, 1);
    let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
    let viewer = net.peers[1].addr;
    let now = net.now;
    assert!(net.engines[0].handle_datagram(now, common::listener(), viewer, &rtp));
    assert_eq!(net.engines[0].stats().unexpected_media, 1);
    assert_eq!(net.total(|s| s.sessions), 2);
}

#[test]
fn shutdown_closes_every_session() {
    let mut net = stream(2, 1, 2);
    let now = net.now;
    for e in &mut net.engines {
        e.shutdown(now);
    }
    net.run_for(TICK * 3);
    assert!(net.peers.iter().all(|p| p.closed()));
    assert_eq!(net.registry.session_count(), 0);
}

#[test]
fn a_viewer_connected_before_its_publisher_waits_for_it() {
    let mut net = Net::new(registry(2, 100), 2);
    let p = net.publish("cam", ClientConfig::publisher(), 0);
    let v = net.play("cam", ClientConfig::viewer(), 1);
    net.peers[p].silent = true;
    let ok = net.run_until(500, |n| n.peers[v].dtls_connected());
    assert!(ok, "the viewer connects on its own");
    net.run_for(TICK * 5);
    assert_eq!(net.total(|s| s.streams), 0);
    net.peers[p].silent = false;
    net.connect_all();
    assert_eq!(net.total(|s| s.viewers), 1);
    stream_frames(&mut net, 2);
    let video = net.peers[v].rtp().iter().filter(|r| r.video).count();
    assert_eq!(video, 3);
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A datagram of 0–300 octets whose first octet falls in each of RFC
    /// 7983's ranges in turn (STUN, DTLS, RTP/RTCP), sometimes shaped like
    /// a header of its kind.
    fn datagram(&mut self, i: usize) -> Vec<u8> {
        let len = (self.next() % 300) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        if let Some(first) = d.first_mut() {
            *first = match i % 3 {
                0 => *first & 0x03,
                1 => 20 + *first % 44,
                _ => 128 + *first % 64,
            };
        }
        if i.is_multiple_of(6) && d.len() >= 8 {
            // STUN magic cookie.
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        if i % 6 == 1 && d.len() >= 3 {
            d[1..3].copy_from_slice(&[0xfe, 0xfd]);
        }
        d
    }
}

#[test]
fn garbage_from_anywhere_never_panics_and_strangers_harm_no_one() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 1);
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let now = net.now;
    for i in 0..20_000 {
        let d = noise.datagram(i);
        let from = std::net::SocketAddr::from(([203, 0, 113, (i % 250) as u8], 1000 + i as u16));
        net.engines[i % 2].handle_datagram(now, common::listener(), from, &d);
        while net.engines[i % 2].poll_transmit().is_some() {}
    }
    assert!(net.total(|s| s.unknown_source) > 0);
    assert_eq!(net.total(|s| s.sessions), 3);
    let before = net.peers[1].rtp().len();
    stream_frames(&mut net, 2);
    assert_eq!(net.peers[1].rtp().len(), before + 6);
    assert!(net.peers.iter().all(|p| !p.closed()));

    // Garbage from the sessions' own addresses may end their sessions
    // (it could be a DTLS alert), but never panics.
    let addrs: Vec<_> = net.peers.iter().map(|p| (p.addr, p.worker)).collect();
    for i in 0..20_000 {
        let (from, worker) = addrs[i % addrs.len()];
        let d = noise.datagram(i);
        net.engines[worker].handle_datagram(now, common::listener(), from, &d);
        while net.engines[worker].poll_transmit().is_some() {}
    }
    net.run_for(Duration::from_secs(1));
}

#[test]
fn a_wrong_fingerprint_fails_dtls_and_frees_the_session() {
    let mut net = stream(2, 1, 1);
    stream_frames(&mut net, 1);
    // A second stream whose publisher's SDP names another certificate.
    let other = uturn_dtls::Certificate::generate().unwrap().fingerprint();
    let forged: Vec<String> = other.iter().map(|b| format!("{b:02X}")).collect();
    let forged = format!("a=fingerprint:sha-256 {}", forged.join(":"));
    let liar = net.join_with(
        Kind::Publisher,
        "liar",
        ClientConfig::publisher(),
        1,
        |offer| {
            offer
                .lines()
                .map(|l| {
                    if l.starts_with("a=fingerprint:") {
                        forged.clone()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n"
        },
    );
    net.run_for(Duration::from_secs(2));
    assert!(!net.peers[liar].dtls_connected());
    assert_eq!(net.total(|s| s.dtls_failures), 1);
    assert_eq!(net.registry.streams().len(), 1, "the liar's stream is gone");
    assert_eq!(net.registry.session_count(), 2);
    // The honest stream is untouched.
    let before = net.peers[1].rtp().len();
    stream_frames(&mut net, 1);
    assert_eq!(net.peers[1].rtp().len(), before + 4);
}

#[test]
fn twenty_viewers_across_two_workers() {
    let mut net = Net::new(registry(2, 100), 2);
    net.publish("cam", ClientConfig::publisher(), 1);
    for i in 0..20 {
        net.play("cam", ClientConfig::viewer(), i % 2);
    }
    net.connect_all();
    assert_eq!(net.registry.streams()[0].viewers, 20);
    assert_eq!(net.total(|s| s.viewers), 20);
    stream_frames(&mut net, 4);
    for v in 1..=20 {
        let rtp = net.peers[v].rtp();
        assert_eq!(rtp.iter().filter(|p| p.video).count(), 5, "viewer {v}");
        assert_eq!(rtp.iter().filter(|p| !p.video).count(), 5, "viewer {v}");
    }
    // Sender reports reach every viewer about once a second.
    net.run_for(Duration::from_millis(2100));
    for v in 1..=20 {
        assert!(
            net.peers[v].rtcp().sr >= 2,
            "viewer {v}: {:?}",
            net.peers[v].rtcp()
        );
    }
    // And receiver reports the publisher.
    assert!(net.peers[0].rtcp().rr >= 2);
    assert_eq!(net.undelivered, 0);
}

/// A nominating check (USE-CANDIDATE, RFC 8445 §8.1.1) from peer `p`'s
/// current address: what a browser sends after a network change.
fn nominate_from_current_address(net: &mut Net, p: usize) {
    let answer = SessionDescription::parse(&net.peers[p].created.answer).unwrap();
    let media = answer.media.first().unwrap();
    let server_ufrag = answer.ice_ufrag(media).unwrap().to_owned();
    let server_pwd = answer.ice_pwd(media).unwrap().to_owned();
    let username = format!(
        "{server_ufrag}:{}",
        net.peers[p].client.credentials().ufrag()
    );
    let mut check = Vec::new();
    let mut b = MessageBuilder::new(
        &mut check,
        Class::Request,
        Method::BINDING,
        TransactionId([p as u8 + 1; 12]),
    );
    b.add(&Attribute::Username(&username)).unwrap();
    b.add(&Attribute::Priority(0x6e00_1eff)).unwrap();
    b.add(&Attribute::IceControlling(7)).unwrap();
    b.add(&Attribute::UseCandidate).unwrap();
    b.message_integrity(server_pwd.as_bytes()).unwrap();
    b.fingerprint().unwrap();
    b.finish();
    let (now, addr, worker) = (net.now, net.peers[p].addr, net.peers[p].worker);
    assert!(net.engines[worker].handle_datagram(now, listener(), addr, &check));
}

/// A peer's address changes mid-stream (a network change): its next
/// nominating check moves the session, and media follows it to the new
/// address, for a viewer homed away from the fan-out and for the
/// publisher.
#[test]
fn media_follows_a_renominated_pair() {
    let mut net = stream(2, 1, 2);
    stream_frames(&mut net, 3);
    let before: Vec<usize> = (1..=2).map(|v| net.peers[v].rtp().len()).collect();

    // The publisher and viewer 1 move; viewer 2 stays.
    for p in [0, 1] {
        let port = net.peers[p].addr.port() + 1000;
        net.peers[p].addr.set_port(port);
        nominate_from_current_address(&mut net, p);
    }
    net.run_for(TICK * 5);
    let undelivered = net.undelivered;
    stream_frames(&mut net, 5);
    for v in 1..=2 {
        let got = net.peers[v].rtp().len() - before[v - 1];
        // The keyframe and 5 deltas, audio alongside: 12 packets.
        assert_eq!(got, 12, "viewer {v} after the move");
    }
    assert_eq!(
        net.undelivered, undelivered,
        "media still went to an old address"
    );
}
