//! Answer generation refuses what a forwarding, ICE-lite, DTLS-passive,
//! BUNDLE-only server cannot do, with a 400 and a message; and rejects single
//! m-sections with port 0 where the rest of the offer still works.

use uturn_sdp::{
    answer_text, AnswerConfig, Direction, MediaKind, MediaOutcome, NegotiationError, Role,
    SessionDescription, SupportedCodec,
};

const WHIP_OFFER: &str = include_str!("fixtures/chromium-whip-offer.sdp");

fn config() -> AnswerConfig {
    AnswerConfig::new(
        Role::Receive,
        "uturnUfrag",
        "uturnPasswordOf24Chars0",
        [1; 32],
        vec!["127.0.0.1:3478".parse().unwrap()],
    )
}

/// The WHIP fixture with every line containing `needle` dropped.
fn without(needle: &str) -> String {
    WHIP_OFFER
        .split_inclusive("\r\n")
        .filter(|l| !l.contains(needle))
        .collect()
}

fn refused(offer: &str) -> NegotiationError {
    let e = answer_text(offer, &config()).expect_err("the offer must be refused");
    assert_eq!(e.http_status(), 400, "{e}");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn no_common_codec_is_refused() {
    let mut c = config();
    c.codecs = vec![SupportedCodec::Vp9 { profile_id: 3 }];
    let e = answer_text(&WHIP_OFFER.replace("opus/48000/2", "opus/48000/1"), &c).unwrap_err();
    assert!(matches!(e, NegotiationError::NothingAcceptable(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("mid 0 (audio): no common codec"), "{msg}");
    assert!(msg.contains("mid 1 (video): no common codec"), "{msg}");
    assert_eq!(e.http_status(), 400);
}

#[test]
fn fingerprint_problems_are_refused() {
    let e = refused(&without("a=fingerprint"));
    assert!(matches!(e, NegotiationError::Fingerprint { .. }), "{e}");
    assert!(e.to_string().contains("no a=fingerprint"), "{e}");

    let sha1 = WHIP_OFFER.replace(
        "a=fingerprint:sha-256 B7:99:5D:44:A1:E5:19:A1:02:E3:FA:42:EA:EF:5C:26:44:BF:98:89:BB:EB:A9:DC:7D:3D:21:FA:2C:5D:13:49",
        "a=fingerprint:sha-1 B7:99:5D:44:A1:E5:19:A1:02:E3:FA:42:EA:EF:5C:26:44:BF:98:89",
    );
    assert_ne!(sha1, WHIP_OFFER);
    let e = refused(&sha1);
    assert!(e.to_string().contains("no sha-256"), "{e}");

    let bad_hex = WHIP_OFFER.replace("sha-256 B7:99", "sha-256 Z7:99");
    let e = refused(&bad_hex);
    assert!(matches!(e, NegotiationError::Malformed(_)), "{e}");
    assert!(e.to_string().contains("line 18: bad a=fingerprint"), "{e}");
}

#[test]
fn missing_ice_credentials_are_refused() {
    let e = refused(&without("a=ice-pwd"));
    assert!(e.to_string().contains("no a=ice-pwd"), "{e}");
    let e = refused(&without("a=ice-ufrag"));
    assert!(e.to_string().contains("no a=ice-ufrag"), "{e}");
    let short = WHIP_OFFER.replace("a=ice-pwd:snFtkxpnven04BrrrNl4KdL6", "a=ice-pwd:short");
    let e = refused(&short);
    assert!(e.to_string().contains("22 to 256"), "{e}");
}

#[test]
fn rtcp_mux_is_required() {
    let e = refused(&without("a=rtcp-mux"));
    assert_eq!(e, NegotiationError::RtcpMuxRequired("0".into()));
    assert_eq!(e.to_string(), "mid 0: a=rtcp-mux is required");
}

#[test]
fn setup_roles() {
    // A passive offer would make us the DTLS client: refused.
    let e = refused(&WHIP_OFFER.replace("a=setup:actpass", "a=setup:passive"));
    assert!(matches!(e, NegotiationError::Setup { .. }), "{e}");
    assert!(e.to_string().contains("offer a=setup:actpass"), "{e}");
    // An active offer leaves us passive, as does actpass.
    let a = answer_text(
        &WHIP_OFFER.replace("a=setup:actpass", "a=setup:active"),
        &config(),
    )
    .unwrap();
    assert!(a.sdp.to_string().contains("a=setup:passive\r\n"));
    let e = refused(&WHIP_OFFER.replace("a=setup:actpass", "a=setup:sideways"));
    assert!(matches!(e, NegotiationError::Malformed(_)), "{e}");
}

#[test]
fn bundle_and_mid_are_required() {
    let e = refused(&without("a=group:BUNDLE"));
    assert_eq!(e, NegotiationError::BundleRequired);
    let e = refused(&without("a=mid:1"));
    assert_eq!(e, NegotiationError::MissingMid { index: 1 });
    let e = refused(&WHIP_OFFER.replace("a=mid:1", "a=mid:0"));
    assert_eq!(e, NegotiationError::DuplicateMid("0".into()));
    // One m-section needs no BUNDLE.
    let audio_only: String =
        WHIP_OFFER[..WHIP_OFFER.find("m=video").unwrap()].replace("a=group:BUNDLE 0 1\r\n", "");
    let a = answer_text(&audio_only, &config()).unwrap();
    assert_eq!(a.media.len(), 1);
    assert!(!a.sdp.to_string().contains("a=group"));
}

#[test]
fn a_section_outside_the_bundle_is_rejected() {
    let a = answer_text(&WHIP_OFFER.replace("BUNDLE 0 1", "BUNDLE 0"), &config()).unwrap();
    assert!(matches!(
        a.media[1],
        MediaOutcome::Rejected {
            reason: "not in the BUNDLE group",
            ..
        }
    ));
}

#[test]
fn inactive_section_is_answered_inactive() {
    let offer = WHIP_OFFER.replacen("a=sendonly", "a=inactive", 1);
    let a = answer_text(&offer, &config()).unwrap();
    let MediaOutcome::Accepted(audio) = &a.media[0] else {
        panic!("inactive audio must stay in the session: {:?}", a.media[0]);
    };
    assert_eq!(audio.direction, Direction::Inactive);
    let sd = SessionDescription::parse(&a.sdp.to_string()).unwrap();
    assert_eq!(sd.media[0].direction(), Direction::Inactive);
    assert_eq!(sd.media[1].direction(), Direction::RecvOnly);
    assert_ne!(sd.media[0].line.port, 0);
}

#[test]
fn disabled_section_stays_disabled() {
    let offer = WHIP_OFFER.replacen("m=audio 51951", "m=audio 0", 1);
    let a = answer_text(&offer, &config()).unwrap();
    assert!(matches!(
        a.media[0],
        MediaOutcome::Rejected {
            kind: MediaKind::Audio,
            ..
        }
    ));
    let sd = SessionDescription::parse(&a.sdp.to_string()).unwrap();
    assert_eq!(sd.media[0].line.port, 0);
    assert_eq!(sd.bundle().unwrap(), ["1"]);
}

/// Data channels are not supported yet: the m=application section is
/// rejected with port 0 and the audio/video still negotiate.
#[test]
fn data_channel_is_rejected_with_port_0() {
    let offer = format!(
        "{}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:UXL3\r\na=ice-pwd:snFtkxpnven04BrrrNl4KdL6\r\na=setup:actpass\r\n\
         a=mid:2\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n",
        WHIP_OFFER.replace("BUNDLE 0 1", "BUNDLE 0 1 2")
    );
    let a = answer_text(&offer, &config()).unwrap();
    assert!(matches!(
        a.media[2],
        MediaOutcome::Rejected {
            kind: MediaKind::Application,
            reason: "data channels are not supported yet",
            ..
        }
    ));
    let text = a.sdp.to_string();
    assert!(
        text.contains(
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"
        ),
        "{text}"
    );
    let sd = SessionDescription::parse(&text).unwrap();
    assert_eq!(sd.bundle().unwrap(), ["0", "1"]);

    // Only a data channel: nothing to accept.
    let dc_only = offer[..offer.find("m=audio").unwrap()].to_owned()
        + &offer[offer.find("m=application").unwrap()..];
    let e = answer_text(&dc_only.replace("BUNDLE 0 1 2", "BUNDLE 2"), &config()).unwrap_err();
    assert!(matches!(e, NegotiationError::NothingAcceptable(_)), "{e}");
    assert!(e.to_string().contains("data channels"), "{e}");
}

#[test]
fn plain_rtp_profile_is_rejected() {
    let offer = WHIP_OFFER.replacen("UDP/TLS/RTP/SAVPF 111", "RTP/AVP 111", 1);
    let a = answer_text(&offer, &config()).unwrap();
    assert!(matches!(a.media[0], MediaOutcome::Rejected { .. }));
}

#[test]
fn malformed_text_maps_to_400() {
    for bad in [
        "",
        "hello",
        "v=1\r\n",
        &WHIP_OFFER.replace("t=0 0", "t=x 0"),
    ] {
        let e = answer_text(bad, &config()).unwrap_err();
        assert!(matches!(e, NegotiationError::Malformed(_)), "{bad:?}: {e}");
        assert_eq!(e.http_status(), 400);
    }
    let e = answer_text(&"v=0\r\n".repeat(20_000), &config()).unwrap_err();
    assert!(
        e.to_string().contains("more than the 65536 accepted"),
        "{e}"
    );
}

#[test]
fn bundle_group_order_picks_the_tagged_section() {
    let a = answer_text(&WHIP_OFFER.replace("BUNDLE 0 1", "BUNDLE 1 0"), &config()).unwrap();
    let sd = SessionDescription::parse(&a.sdp.to_string()).unwrap();
    assert_eq!(sd.bundle().unwrap(), ["1", "0"]);
    // Our candidates sit in the tagged (video) section only.
    assert!(sd.media[0].candidates().unwrap().is_empty());
    assert_eq!(sd.media[1].candidates().unwrap().len(), 1);
    assert!(sd.media[1].end_of_candidates());
}

#[test]
fn whep_viewer_is_held_to_the_publishers_codec() {
    // The publisher negotiated H.264 constrained baseline...
    let mut publish = config();
    publish.codecs = vec![
        SupportedCodec::Opus,
        SupportedCodec::H264_CONSTRAINED_BASELINE,
    ];
    let published = answer_text(WHIP_OFFER, &publish).unwrap();
    let codecs: Vec<SupportedCodec> = published
        .media
        .iter()
        .filter_map(|o| match o {
            MediaOutcome::Accepted(m) => SupportedCodec::from_codec(&m.codec),
            MediaOutcome::Rejected { .. } => None,
        })
        .collect();
    assert_eq!(
        codecs,
        [
            SupportedCodec::Opus,
            SupportedCodec::H264_CONSTRAINED_BASELINE
        ]
    );
    // ...so a viewer gets H.264 even though VP8 comes first in its offer.
    let mut play = config();
    play.role = Role::Send;
    play.codecs = codecs;
    let viewer = include_str!("fixtures/chromium-whep-offer.sdp");
    let a = answer_text(viewer, &play).unwrap();
    let MediaOutcome::Accepted(video) = &a.media[1] else {
        panic!("video rejected: {:?}", a.media[1]);
    };
    assert_eq!(video.codec.profile_level_id(), Some([0x42, 0xe0, 0x1f]));
    assert_eq!(video.codec.packetization_mode(), Some(1));
}

/// Inputs near the size limit built to make naive parsers quadratic: many
/// repeated formats, many rtpmap lines, many m-sections. They are answered
/// (or refused) like any other.
#[test]
fn large_offers_near_the_limit_are_handled() {
    let head = &WHIP_OFFER[..WHIP_OFFER.find("m=audio").unwrap()];
    let video = &WHIP_OFFER[WHIP_OFFER.find("m=video").unwrap()..];
    let video = video.replace("a=mid:1", "a=mid:0");
    let formats = " 96".repeat(6000);
    let mut many_formats = head.replace("BUNDLE 0 1", "BUNDLE 0")
        + &video.replacen(
            "UDP/TLS/RTP/SAVPF 96",
            &format!("UDP/TLS/RTP/SAVPF{formats}"),
            1,
        );
    while many_formats.len() < 60_000 {
        many_formats.push_str("a=rtpmap:120 ulpfec/90000\r\n");
    }
    let a = answer_text(&many_formats, &config()).unwrap();
    let MediaOutcome::Accepted(v) = &a.media[0] else {
        panic!("{:?}", a.media[0]);
    };
    assert_eq!(v.codec.payload_type, 96);

    // Hundreds of m-sections, all bundled.
    let audio: String = WHIP_OFFER
        [WHIP_OFFER.find("m=audio").unwrap()..WHIP_OFFER.find("m=video").unwrap()]
        .split_inclusive("\r\n")
        .filter(|l| {
            !l.starts_with("a=candidate") && !l.starts_with("a=ssrc") && !l.starts_with("a=extmap")
        })
        .collect();
    let mut sections = String::new();
    let mut mids = String::from("BUNDLE");
    for i in 0..300 {
        let s = audio.replace("a=mid:0", &format!("a=mid:{i}"));
        if sections.len() + s.len() > 60_000 {
            break;
        }
        sections.push_str(&s);
        mids.push_str(&format!(" {i}"));
    }
    let offer = head.replace("BUNDLE 0 1", &mids) + &sections;
    let a = answer_text(&offer, &config()).unwrap();
    assert!(a.media.len() > 50);
    assert!(a
        .media
        .iter()
        .all(|o| matches!(o, MediaOutcome::Accepted(_))));
}

#[test]
fn feedback_and_extensions_are_deduplicated_and_consistent() {
    // A wildcard nack next to the per-type one yields one nack line.
    let offer = WHIP_OFFER.replace(
        "a=rtcp-fb:96 goog-remb\r\n",
        "a=rtcp-fb:* nack\r\na=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
    );
    let a = answer_text(&offer, &config()).unwrap();
    let MediaOutcome::Accepted(v) = &a.media[1] else {
        panic!("{:?}", a.media[1]);
    };
    assert_eq!(
        v.codec
            .feedback
            .iter()
            .filter(|f| f.feedback() == "nack")
            .count(),
        1
    );
    // The mid extension stays at the first id the offer gave it.
    let mids: Vec<u8> = v
        .extmaps
        .iter()
        .filter(|e| e.uri == "urn:ietf:params:rtp-hdrext:sdes:mid")
        .map(|e| e.id)
        .collect();
    assert_eq!(mids, [4]);

    // Without the transport-wide-cc extension there is no transport-cc feedback.
    let mut c = config();
    c.header_extensions
        .retain(|u| !u.contains("transport-wide-cc"));
    let a = answer_text(WHIP_OFFER, &c).unwrap();
    let MediaOutcome::Accepted(v) = &a.media[1] else {
        panic!("{:?}", a.media[1]);
    };
    assert_eq!(v.extmaps.len(), 2);
    assert!(!v.codec.has_feedback("transport-cc", None));
    assert!(v.codec.has_feedback("nack", Some("pli")));
    assert!(!a.sdp.to_string().contains("transport-cc"));
}
