//! Real Chromium offers (captured by tests/fixtures/capture.py): every
//! field WHIP/WHEP need parses to what the browser meant, the text
//! round-trips byte for byte, and the answers say what they should.

use uturn_sdp::{
    answer, Answer, AnswerConfig, CandidateType, CodecName, Direction, MediaKind, MediaOutcome,
    NegotiatedMedia, OutgoingTrack, Role, SessionDescription, Setup, SupportedCodec,
};

const WHIP_OFFER: &str = include_str!("fixtures/chromium-whip-offer.sdp");
const WHEP_OFFER: &str = include_str!("fixtures/chromium-whep-offer.sdp");
const WHIP_DC_OFFER: &str = include_str!("fixtures/chromium-whip-dc-offer.sdp");

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text).expect("the fixture parses")
}

fn config(role: Role) -> AnswerConfig {
    let mut c = AnswerConfig::new(
        role,
        "uturnUfrag",
        "uturnPasswordOf24Chars0",
        [0x5a; 32],
        vec!["127.0.0.1:3478".parse().unwrap()],
    );
    c.session_id = 42;
    c
}

fn accepted(a: &Answer, i: usize) -> &NegotiatedMedia {
    match &a.media[i] {
        MediaOutcome::Accepted(m) => m,
        other => panic!("m-section {i} not accepted: {other:?}"),
    }
}

#[test]
fn fixtures_round_trip_byte_for_byte() {
    for text in [WHIP_OFFER, WHEP_OFFER, WHIP_DC_OFFER] {
        let sd = parse(text);
        assert_eq!(sd.to_string(), text);
        assert_eq!(parse(&sd.to_string()), sd);
    }
}

#[test]
fn whip_offer_fields() {
    let sd = parse(WHIP_OFFER);
    assert_eq!(sd.bundle().unwrap(), ["0", "1"]);
    let ms = sd.msid_semantic().unwrap();
    assert_eq!(ms.semantic, "WMS");
    assert_eq!(ms.ids.len(), 1);
    assert!(!sd.ice_lite());
    assert_eq!(sd.media.len(), 2);

    let (audio, video) = (&sd.media[0], &sd.media[1]);
    assert_eq!(audio.kind(), MediaKind::Audio);
    assert_eq!(video.kind(), MediaKind::Video);
    assert_eq!(audio.mid(), Some("0"));
    assert_eq!(video.mid(), Some("1"));
    for m in [audio, video] {
        assert_eq!(m.direction(), Direction::SendOnly);
        assert!(m.rtcp_mux() && m.rtcp_rsize());
        assert_eq!(m.line.proto, "UDP/TLS/RTP/SAVPF");
        assert_eq!(sd.setup(m).unwrap(), Some(Setup::ActPass));
        let ufrag = sd.ice_ufrag(m).unwrap();
        assert!((4..=256).contains(&ufrag.len()));
        assert!(sd.ice_pwd(m).unwrap().len() >= 22);
        assert_eq!(sd.ice_options(m).collect::<Vec<_>>(), ["trickle"]);
        let fps = sd.fingerprints(m).unwrap();
        assert_eq!(fps.len(), 1);
        assert_eq!(fps[0].algorithm, "sha-256");
        assert!(fps[0].as_sha256().is_some());
        // Both tracks belong to the one stream named in msid-semantic.
        assert_eq!(m.msid().unwrap().unwrap().stream, ms.ids[0]);
    }
    // Same transport for both (max-bundle).
    assert_eq!(sd.ice_ufrag(audio), sd.ice_ufrag(video));
    assert_eq!(
        sd.fingerprints(audio).unwrap(),
        sd.fingerprints(video).unwrap()
    );

    // Candidates gathered before the offer was taken.
    let cands = audio.candidates().unwrap();
    assert!(!cands.is_empty());
    assert!(cands
        .iter()
        .all(|c| c.typ == CandidateType::Host && c.component == 1));
    assert!(cands
        .iter()
        .any(|c| c.is_udp() && c.port == audio.line.port));

    // Audio codecs: Opus 48000/2 first, with its fmtp and transport-cc.
    let ac = audio.codecs().unwrap();
    let opus = &ac[0];
    assert_eq!(
        (opus.name, opus.clock_rate, opus.channels),
        (CodecName::Opus, 48000, Some(2))
    );
    assert_eq!(opus.fmtp_param("useinbandfec"), Some("1"));
    assert!(opus.has_feedback("transport-cc", None));
    assert_eq!(ac.len(), audio.line.formats.len());

    // Video: VP8 with all feedback, its RTX, H.264 pm 0 and 1, VP9.
    let vc = video.codecs().unwrap();
    let vp8 = vc.iter().find(|c| c.name == CodecName::Vp8).unwrap();
    for (t, p) in [
        ("nack", None),
        ("nack", Some("pli")),
        ("ccm", Some("fir")),
        ("transport-cc", None),
    ] {
        assert!(vp8.has_feedback(t, p), "VP8 lacks {t} {p:?}");
    }
    let rtx = vc
        .iter()
        .find(|c| c.name == CodecName::Rtx && c.apt() == Some(vp8.payload_type));
    assert!(rtx.is_some(), "VP8 has no RTX");
    let h264: Vec<_> = vc.iter().filter(|c| c.name == CodecName::H264).collect();
    assert!(h264
        .iter()
        .any(|c| c.packetization_mode() == Some(1)
            && c.profile_level_id() == Some([0x42, 0xe0, 0x1f])));
    assert!(h264.iter().any(|c| c.packetization_mode() == Some(0)));
    assert!(vc
        .iter()
        .any(|c| c.name == CodecName::Vp9 && c.vp9_profile_id() == Some(0)));

    // Header extensions.
    let ext = video.extmaps().unwrap();
    for uri in [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    ] {
        assert!(
            ext.iter().any(|e| e.uri == uri && (1..=14).contains(&e.id)),
            "{uri}"
        );
    }

    // SSRCs: video has a media + RTX pair (FID), each with a cname.
    let groups = video.ssrc_groups().unwrap();
    let fid = groups.iter().find(|g| g.semantics == "FID").unwrap();
    assert_eq!(fid.ssrcs.len(), 2);
    let ssrcs = video.ssrcs().unwrap();
    for s in &fid.ssrcs {
        assert!(ssrcs.iter().any(|a| a.ssrc == *s && a.name == "cname"));
    }
    assert_eq!(audio.ssrcs().unwrap().len(), 2);
}

#[test]
fn whep_offer_fields() {
    let sd = parse(WHEP_OFFER);
    assert_eq!(sd.bundle().unwrap(), ["0", "1"]);
    assert!(sd.msid_semantic().unwrap().ids.is_empty());
    for m in &sd.media {
        assert_eq!(m.direction(), Direction::RecvOnly);
        assert!(m.ssrcs().unwrap().is_empty());
        assert_eq!(m.msid().unwrap(), None);
        assert!(m.rtcp_mux());
    }
}

#[test]
fn whip_answer_receives_one_codec_per_section() {
    let offer = parse(WHIP_OFFER);
    let a = answer(&offer, &config(Role::Receive)).unwrap();
    let audio = accepted(&a, 0);
    let video = accepted(&a, 1);
    assert_eq!(audio.direction, Direction::RecvOnly);
    assert_eq!(video.direction, Direction::RecvOnly);
    assert_eq!(audio.codec.name, CodecName::Opus);
    assert_eq!(audio.rtx_payload_type, None);
    assert_eq!(video.codec.name, CodecName::Vp8);
    assert_eq!(video.rtx_payload_type, Some(97));
    // goog-remb is not ours; the four we do stay.
    assert_eq!(video.codec.feedback.len(), 4);
    assert!(!video.codec.has_feedback("goog-remb", None));
    assert_eq!(video.extmaps.len(), 3);
    // The publisher's SSRCs are what the dataplane will see.
    let fid = offer.media[1].ssrc_groups().unwrap()[0].ssrcs.clone();
    assert_eq!(video.remote_ssrc, Some(fid[0]));
    assert_eq!(video.remote_rtx_ssrc, Some(fid[1]));
    assert!(audio.remote_ssrc.is_some());
    assert_eq!(
        a.remote_fingerprint.to_vec(),
        offer.fingerprints(&offer.media[0]).unwrap()[0].bytes
    );
    assert_eq!(
        Some(a.remote_ice_ufrag.as_str()),
        offer.ice_ufrag(&offer.media[0])
    );
    assert!(a.remote_trickle);
    assert!(!a.remote_candidates.is_empty());

    // The SDP text says the same, and parses back.
    let text = a.sdp.to_string();
    assert!(text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'));
    let sd = parse(&text);
    assert!(sd.ice_lite());
    assert_eq!(sd.origin.session_id, "42");
    assert_eq!(sd.bundle().unwrap(), ["0", "1"]);
    for (m, mid) in sd.media.iter().zip(["0", "1"]) {
        assert_eq!(m.mid(), Some(mid));
        assert_eq!(m.line.port, 3478);
        assert_eq!(m.direction(), Direction::RecvOnly);
        assert_eq!(sd.setup(m).unwrap(), Some(Setup::Passive));
        assert!(m.rtcp_mux());
        assert_eq!(sd.ice_ufrag(m), Some("uturnUfrag"));
        assert_eq!(sd.fingerprints(m).unwrap()[0].as_sha256(), Some([0x5a; 32]));
        assert!(m.ssrcs().unwrap().is_empty());
    }
    // Candidates once, in the tagged section, complete.
    let cands = sd.media[0].candidates().unwrap();
    assert_eq!(cands.len(), 1);
    assert_eq!(cands[0].ip(), Some("127.0.0.1".parse().unwrap()));
    assert!(sd.media[0].end_of_candidates());
    assert!(sd.media[1].candidates().unwrap().is_empty());
    assert_eq!(sd.media[1].line.formats, ["96", "97"]);
    assert_eq!(sd.media[1].codecs().unwrap()[1].apt(), Some(96));
}

#[test]
fn whep_answer_sends_our_tracks() {
    let mut c = config(Role::Send);
    c.stream_id = "live".into();
    c.cname = "relay".into();
    c.tracks = vec![
        OutgoingTrack {
            kind: MediaKind::Video,
            track_id: "v".into(),
            ssrc: 20,
            rtx_ssrc: Some(21),
        },
        OutgoingTrack {
            kind: MediaKind::Audio,
            track_id: "a".into(),
            ssrc: 10,
            rtx_ssrc: None,
        },
    ];
    let a = answer(&parse(WHEP_OFFER), &c).unwrap();
    assert_eq!(accepted(&a, 0).direction, Direction::SendOnly);
    assert_eq!(accepted(&a, 0).local_track.as_ref().unwrap().ssrc, 10);
    assert_eq!(accepted(&a, 1).local_track.as_ref().unwrap().ssrc, 20);
    let sd = parse(&a.sdp.to_string());
    assert_eq!(sd.msid_semantic().unwrap().ids, ["live"]);
    let video = &sd.media[1];
    assert_eq!(video.direction(), Direction::SendOnly);
    assert_eq!(video.msid().unwrap().unwrap().track.as_deref(), Some("v"));
    assert_eq!(video.ssrc_groups().unwrap()[0].ssrcs, [20, 21]);
    let ssrcs = video.ssrcs().unwrap();
    assert!(ssrcs
        .iter()
        .any(|s| s.ssrc == 21 && s.name == "cname" && s.value.as_deref() == Some("relay")));
    assert_eq!(sd.media[0].ssrcs().unwrap()[0].ssrc, 10);
    assert!(sd.media[0].ssrc_groups().unwrap().is_empty());

    // No track of a kind: that section is answered inactive.
    c.tracks.retain(|t| t.kind == MediaKind::Video);
    let a = answer(&parse(WHEP_OFFER), &c).unwrap();
    assert_eq!(accepted(&a, 0).direction, Direction::Inactive);
    assert_eq!(accepted(&a, 0).local_track, None);
}

#[test]
fn codec_preference_follows_the_config() {
    let offer = parse(WHIP_OFFER);
    let mut c = config(Role::Receive);
    c.codecs = vec![
        SupportedCodec::Opus,
        SupportedCodec::H264_CONSTRAINED_BASELINE,
    ];
    let a = answer(&offer, &c).unwrap();
    let v = accepted(&a, 1);
    assert_eq!(v.codec.name, CodecName::H264);
    assert_eq!(v.codec.packetization_mode(), Some(1));
    assert_eq!(v.codec.profile_level_id(), Some([0x42, 0xe0, 0x1f]));
    // The offered fmtp is echoed, and the RTX is the one with apt = its pt.
    assert_eq!(v.codec.fmtp_param("profile-level-id"), Some("42e01f"));
    let rtx = v.rtx_payload_type.unwrap();
    let offered_rtx = offer.media[1].codecs().unwrap();
    assert!(offered_rtx
        .iter()
        .any(|x| x.payload_type == rtx && x.apt() == Some(v.codec.payload_type)));

    c.codecs = vec![SupportedCodec::Opus, SupportedCodec::Vp9 { profile_id: 2 }];
    let v = answer(&offer, &c).unwrap();
    let v = accepted(&v, 1);
    assert_eq!(v.codec.name, CodecName::Vp9);
    assert_eq!(v.codec.vp9_profile_id(), Some(2));

    c.rtx = false;
    let a = answer(&offer, &c).unwrap();
    assert_eq!(accepted(&a, 1).rtx_payload_type, None);
}

#[test]
fn no_common_video_codec_rejects_only_video() {
    let mut c = config(Role::Receive);
    c.codecs = vec![SupportedCodec::Opus];
    let a = answer(&parse(WHIP_OFFER), &c).unwrap();
    assert!(matches!(
        a.media[1],
        MediaOutcome::Rejected {
            kind: MediaKind::Video,
            ..
        }
    ));
    let sd = parse(&a.sdp.to_string());
    assert_eq!(sd.media[1].line.port, 0);
    assert_eq!(sd.media[1].mid(), Some("1"));
    assert_eq!(sd.bundle().unwrap(), ["0"]);
}

#[test]
fn data_channel_section_is_rejected_with_port_0() {
    let offer = parse(WHIP_DC_OFFER);
    let dc = &offer.media[2];
    assert_eq!(dc.kind(), MediaKind::Application);
    assert_eq!(dc.line.proto, "UDP/DTLS/SCTP");
    assert_eq!(dc.line.formats, ["webrtc-datachannel"]);
    assert!(dc.attribute("sctp-port").is_some());
    assert_eq!(offer.bundle().unwrap(), ["0", "1", "2"]);

    let a = answer(&offer, &config(Role::Receive)).unwrap();
    assert!(matches!(
        a.media[2],
        MediaOutcome::Rejected {
            kind: MediaKind::Application,
            ..
        }
    ));
    let sd = parse(&a.sdp.to_string());
    assert_eq!(sd.bundle().unwrap(), ["0", "1"]);
    assert_eq!(sd.media[2].line.port, 0);
    assert_eq!(sd.media[2].mid(), Some("2"));
    assert_eq!(accepted(&a, 1).direction, Direction::RecvOnly);
}
