//! Any text as a WHIP/WHEP offer through `uturn_sdp::answer::answer_text`
//! in both roles (receive for WHIP, send with our tracks for WHEP), and as
//! an RFC 8840 trickle-ice-sdpfrag through `TrickleFragment::parse`.
//!
//! Checked: nothing panics; a rejected offer is a 400 with a reason to
//! send back; an answer we generate parses and prints the same again (we
//! never send a browser SDP we could not read ourselves); a fragment or a
//! description that parses prints to text that parses to the same value.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use uturn_sdp::answer::{answer_text, AnswerConfig, OutgoingTrack, Role};
use uturn_sdp::{MediaKind, SessionDescription, TrickleFragment};

fn config(role: Role) -> AnswerConfig {
    let candidate: SocketAddr = ([192, 0, 2, 1], 3478).into();
    let mut config = AnswerConfig::new(
        role,
        "fuzzufrag",
        "fuzzpassword0123456789",
        [0x5a; 32],
        vec![candidate],
    );
    if role == Role::Send {
        config.tracks = vec![
            OutgoingTrack {
                kind: MediaKind::Audio,
                track_id: "audio".into(),
                ssrc: 0x1111_1111,
                rtx_ssrc: None,
            },
            OutgoingTrack {
                kind: MediaKind::Video,
                track_id: "video".into(),
                ssrc: 0x2222_2222,
                rtx_ssrc: Some(0x3333_3333),
            },
        ];
    }
    config
}

/// Text that parsed must print to text that parses to the same value.
fn check_description_roundtrip(sdp: &SessionDescription) {
    let printed = sdp.to_string();
    let again = SessionDescription::parse(&printed)
        .unwrap_or_else(|e| panic!("printed SDP does not parse ({e}):\n{printed}"));
    assert_eq!(&again, sdp, "printed SDP parses differently:\n{printed}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(sdp) = SessionDescription::parse(&text) {
        check_description_roundtrip(&sdp);
    }

    for role in [Role::Receive, Role::Send] {
        match answer_text(&text, &config(role)) {
            Ok(answer) => {
                check_description_roundtrip(&answer.sdp);
                assert!(
                    !answer.media.is_empty(),
                    "an answer answers at least one m-section"
                );
            }
            Err(e) => {
                assert_eq!(e.http_status(), 400, "{e}");
                assert!(!e.to_string().is_empty(), "a 400 says why");
            }
        }
    }

    if let Ok(fragment) = TrickleFragment::parse(&text) {
        let _ = fragment.candidates().count();
        let _ = fragment.is_end_of_candidates();
        for media in &fragment.media {
            let _ = fragment.ice_ufrag_for(media);
        }
        let printed = fragment.to_string();
        let again = TrickleFragment::parse(&printed)
            .unwrap_or_else(|e| panic!("printed fragment does not parse ({e}):\n{printed}"));
        assert_eq!(
            again.to_string(),
            printed,
            "fragment printing is not stable"
        );
    }
});
