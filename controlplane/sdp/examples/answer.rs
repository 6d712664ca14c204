//! Reads an SDP offer on stdin and prints the answer uturn-sdp generates,
//! with a fixed test identity (ufrag, password, fingerprint, a host
//! candidate on 127.0.0.1:3478). `--whep` answers as a WHEP server (we
//! send, with an audio and a video track); the default is WHIP (we
//! receive). Used by tests/fixtures/capture.py to check that Chromium
//! accepts our answers:
//!
//! ```text
//! python3 tests/fixtures/capture.py check whip --answer-cmd 'cargo run -q -p uturn-sdp --example answer'
//! ```

use std::io::Read;
use std::process::ExitCode;

use uturn_sdp::{answer_text, AnswerConfig, MediaKind, OutgoingTrack, Role};

fn main() -> ExitCode {
    let whep = std::env::args().any(|a| a == "--whep");
    let mut offer = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut offer) {
        eprintln!("reading the offer: {e}");
        return ExitCode::FAILURE;
    }
    let config = test_config(whep);
    match answer_text(&offer, &config) {
        Ok(answer) => {
            print!("{}", answer.sdp);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} {e}", e.http_status());
            ExitCode::FAILURE
        }
    }
}

fn test_config(whep: bool) -> AnswerConfig {
    let role = if whep { Role::Send } else { Role::Receive };
    let mut config = AnswerConfig::new(
        role,
        "uturnUfrag",
        "uturnPasswordOf24Chars0",
        [0xab; 32],
        vec!["127.0.0.1:3478".parse().expect("a literal socket address")],
    );
    config.tracks = vec![
        OutgoingTrack {
            kind: MediaKind::Audio,
            track_id: "audio0".into(),
            ssrc: 1111,
            rtx_ssrc: None,
        },
        OutgoingTrack {
            kind: MediaKind::Video,
            track_id: "video0".into(),
            ssrc: 2222,
            rtx_ssrc: Some(3333),
        },
    ];
    config
}
