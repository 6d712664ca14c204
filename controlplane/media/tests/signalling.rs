//! WHIP/WHEP signalling against the registry: answers, and every error
//! status the HTTP layer maps (RFC 9725 §4.2–§4.3; docs/media.md
//! "Signalling").

mod common;

use std::time::{Duration, Instant};

use common::{registry, CHROMIUM_WHEP_OFFER, CHROMIUM_WHIP_OFFER};
use uturn_media::{Kind, PatchOutcome, SignalError, Signalling};
use uturn_sdp::{SessionDescription, TrickleFragment};

fn ssrcs_of(answer: &str) -> Vec<u32> {
    let sdp = SessionDescription::parse(answer).unwrap();
    let mut all = Vec::new();
    for m in &sdp.media {
        for s in m.ssrcs().unwrap() {
            if !all.contains(&s.ssrc) {
                all.push(s.ssrc);
            }
        }
    }
    all
}

#[test]
fn publish_answers_as_ice_lite_dtls_passive_with_our_candidate() {
    let r = registry(1, 10);
    let created = r
        .publish(Instant::now(), "cam", CHROMIUM_WHIP_OFFER)
        .unwrap();
    assert!(!created.session.is_empty());
    assert!(created.session.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(created.etag.starts_with('"') && created.etag.ends_with('"'));
    let a = &created.answer;
    assert!(a.contains("a=ice-lite"));
    assert!(a.contains("a=setup:passive"));
    assert!(a.contains("192.0.2.10 3478 typ host"));
    assert!(a.contains("a=recvonly"));
    // Our certificate's fingerprint is in the answer.
    let fp = r.config().certificate.fingerprint();
    let hex = format!("{:02X}:{:02X}", fp[0], fp[1]);
    assert!(a.contains(&format!("a=fingerprint:sha-256 {hex}")));
    let streams = r.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].name, "cam");
    assert_eq!(streams[0].viewers, 0);
    assert_eq!(r.session_count(), 1);
}

#[test]
fn second_publisher_is_409() {
    let r = registry(1, 10);
    r.publish(Instant::now(), "cam", CHROMIUM_WHIP_OFFER)
        .unwrap();
    let err = r
        .publish(Instant::now(), "cam", CHROMIUM_WHIP_OFFER)
        .unwrap_err();
    assert_eq!(err, SignalError::Busy("cam".into()));
    assert_eq!(err.http_status(), 409);
    // Another name is fine.
    r.publish(Instant::now(), "cam2", CHROMIUM_WHIP_OFFER)
        .unwrap();
}

#[test]
fn viewer_of_a_stream_nobody_publishes_is_404() {
    let r = registry(1, 10);
    let err = r
        .play(Instant::now(), "nobody", CHROMIUM_WHEP_OFFER)
        .unwrap_err();
    assert_eq!(err.http_status(), 404);
    assert_eq!(r.session_count(), 0);
}

#[test]
fn bad_stream_names_are_400() {
    let r = registry(1, 10);
    let long = "a".repeat(65);
    for name in ["", "a/b", "a b", "é", long.as_str()] {
        let err = r
            .publish(Instant::now(), name, CHROMIUM_WHIP_OFFER)
            .unwrap_err();
        assert_eq!(err, SignalError::BadStreamName(name.into()));
        assert_eq!(err.http_status(), 400);
        let err = r
            .play(Instant::now(), name, CHROMIUM_WHEP_OFFER)
            .unwrap_err();
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn offers_we_cannot_answer_are_400_with_the_reason() {
    let r = registry(1, 10);
    let err = r
        .publish(Instant::now(), "cam", "this is not SDP")
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(matches!(err, SignalError::BadOffer(_)));
    assert!(err.to_string().contains("cannot answer the offer"));
    // No rtcp-mux: refused, and the reason names it.
    let no_mux = CHROMIUM_WHIP_OFFER
        .replace("a=rtcp-mux\r\n", "")
        .replace("a=rtcp-mux\n", "");
    let err = r.publish(Instant::now(), "cam", &no_mux).unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("rtcp-mux"), "{err}");
    // Nothing was kept: the name is still free.
    assert!(r.streams().is_empty());
    assert_eq!(r.session_count(), 0);
    r.publish(Instant::now(), "cam", CHROMIUM_WHIP_OFFER)
        .unwrap();
}

#[test]
fn session_limit_is_503() {
    let r = registry(1, 2);
    let now = Instant::now();
    r.publish(now, "a", CHROMIUM_WHIP_OFFER).unwrap();
    r.play(now, "a", CHROMIUM_WHEP_OFFER).unwrap();
    let err = r.play(now, "a", CHROMIUM_WHEP_OFFER).unwrap_err();
    assert_eq!(err, SignalError::TooManySessions(2));
    assert_eq!(err.http_status(), 503);
    let err = r.publish(now, "b", CHROMIUM_WHIP_OFFER).unwrap_err();
    assert_eq!(err.http_status(), 503);
}

#[test]
fn viewers_get_the_stream_ssrcs_and_the_publishers_codec() {
    let r = registry(1, 10);
    let now = Instant::now();
    r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let v1 = r.play(now, "cam", CHROMIUM_WHEP_OFFER).unwrap();
    let v2 = r.play(now, "cam", CHROMIUM_WHEP_OFFER).unwrap();
    assert_ne!(v1.session, v2.session);
    let s1 = ssrcs_of(&v1.answer);
    // Audio, video and video RTX (Chromium offers no RTX for Opus).
    assert_eq!(s1.len(), 3, "{}", v1.answer);
    assert!(v1.answer.contains("a=ssrc-group:FID"));
    assert_eq!(s1, ssrcs_of(&v2.answer), "one set of SSRCs per stream");
    assert!(v1.answer.contains("a=sendonly"));
    // The publisher chose VP8 (Chromium's first video codec): so do viewers.
    assert!(v1.answer.contains("VP8/90000"));
    assert!(!v1.answer.contains("H264"));
    assert!(v1.answer.contains("opus/48000/2"));
    assert_eq!(r.streams()[0].viewers, 2);
    // A second stream has other SSRCs.
    r.publish(now, "other", CHROMIUM_WHIP_OFFER).unwrap();
    let o = r.play(now, "other", CHROMIUM_WHEP_OFFER).unwrap();
    assert!(ssrcs_of(&o.answer).iter().all(|s| !s1.contains(s)));
}

#[test]
fn patch_trickles_and_checks_if_match() {
    let r = registry(1, 10);
    let now = Instant::now();
    let c = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let frag = "a=ice-ufrag:UXL3\r\na=ice-pwd:snFtkxpnven04BrrrNl4KdL6\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n";
    let out = r
        .patch(now, Kind::Publisher, "cam", &c.session, Some(&c.etag), frag)
        .unwrap();
    assert_eq!(out, PatchOutcome::Trickled);
    let out = r
        .patch(now, Kind::Publisher, "cam", &c.session, None, frag)
        .unwrap();
    assert_eq!(out, PatchOutcome::Trickled);
    let out = r
        .patch(now, Kind::Publisher, "cam", &c.session, Some("*"), frag)
        .unwrap();
    assert_eq!(out, PatchOutcome::Trickled);
    let err = r
        .patch(
            now,
            Kind::Publisher,
            "cam",
            &c.session,
            Some("\"nope\""),
            frag,
        )
        .unwrap_err();
    assert_eq!(err, SignalError::EtagMismatch);
    assert_eq!(err.http_status(), 412);
    let err = r
        .patch(
            now,
            Kind::Publisher,
            "cam",
            &c.session,
            None,
            "x=garbage\r\n",
        )
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    // Wrong kind, wrong stream, unknown session: 404.
    for (kind, stream, session) in [
        (Kind::Viewer, "cam", c.session.as_str()),
        (Kind::Publisher, "other", c.session.as_str()),
        (Kind::Publisher, "cam", "0000"),
    ] {
        let err = r.patch(now, kind, stream, session, None, frag).unwrap_err();
        assert_eq!(err.http_status(), 404);
    }
}

#[test]
fn patch_with_new_credentials_restarts_ice() {
    let r = registry(1, 10);
    let now = Instant::now();
    let c = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let frag = "a=ice-ufrag:NEWU\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let out = r
        .patch(now, Kind::Publisher, "cam", &c.session, Some(&c.etag), frag)
        .unwrap();
    let PatchOutcome::Restarted { fragment, etag } = out else {
        panic!("expected a restart, got {out:?}");
    };
    assert_ne!(etag, c.etag);
    let f = TrickleFragment::parse(&fragment).unwrap();
    let new_ufrag = f.ice_ufrag.clone().unwrap();
    assert!(!c.answer.contains(&format!("a=ice-ufrag:{new_ufrag}\r\n")));
    assert!(f.ice_pwd.is_some());
    assert_eq!(f.candidates().count(), 1);
    // The old entity tag no longer matches.
    let err = r
        .patch(now, Kind::Publisher, "cam", &c.session, Some(&c.etag), frag)
        .unwrap_err();
    assert_eq!(err, SignalError::EtagMismatch);
    // A restart without a password is refused.
    let err = r
        .patch(
            now,
            Kind::Publisher,
            "cam",
            &c.session,
            None,
            "a=ice-ufrag:OTHR\r\n",
        )
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn deleting_a_publisher_ends_its_stream_and_viewers() {
    let r = registry(1, 10);
    let now = Instant::now();
    let p = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let v = r.play(now, "cam", CHROMIUM_WHEP_OFFER).unwrap();
    r.play(now, "cam", CHROMIUM_WHEP_OFFER).unwrap();
    assert_eq!(r.session_count(), 3);
    // Kind and stream must match the Location.
    assert_eq!(
        r.delete(now, Kind::Viewer, "cam", &p.session)
            .unwrap_err()
            .http_status(),
        404
    );
    r.delete(now, Kind::Viewer, "cam", &v.session).unwrap();
    assert_eq!(r.streams()[0].viewers, 1);
    assert_eq!(
        r.delete(now, Kind::Viewer, "cam", &v.session)
            .unwrap_err()
            .http_status(),
        404
    );
    r.delete(now, Kind::Publisher, "cam", &p.session).unwrap();
    assert!(r.streams().is_empty());
    assert_eq!(r.session_count(), 0);
    // The name is free again.
    r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
}

#[test]
fn unclaimed_sessions_are_dropped_after_30_s() {
    let r = registry(1, 10);
    let t0 = Instant::now();
    r.publish(t0, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    r.play(t0 + Duration::from_secs(10), "cam", CHROMIUM_WHEP_OFFER)
        .unwrap();
    r.collect_garbage(t0 + Duration::from_secs(29));
    assert_eq!(r.session_count(), 2);
    // The publisher's 30 s are up: it goes, and its viewer with it.
    r.collect_garbage(t0 + Duration::from_secs(30));
    assert_eq!(r.session_count(), 0);
    assert!(r.streams().is_empty());
    // A POST collects garbage too.
    r.publish(t0 + Duration::from_secs(31), "a", CHROMIUM_WHIP_OFFER)
        .unwrap();
    r.publish(t0 + Duration::from_secs(62), "b", CHROMIUM_WHIP_OFFER)
        .unwrap();
    assert_eq!(r.streams().len(), 1);
}
