//! End to end with a real browser: headless Chromium makes a WHIP and a WHEP
//! offer, and a WHIP offer with a data channel
//! (tests/fixtures/capture.py in `check` mode), we answer it, and
//! Chromium's `setRemoteDescription` must accept the answer and settle on
//! the directions and codec we chose. Skipped (with a message) when
//! chromium, chromedriver or python selenium is not installed
//! (scripts/install-test-deps.sh installs them). About 3 s per offer.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use uturn_sdp::{answer_text, AnswerConfig, MediaKind, OutgoingTrack, Role};

fn browser_available() -> bool {
    let tools = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
    tools.iter().all(|t| Path::new(t).exists())
        && Command::new("python3")
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Runs one offer/answer exchange; returns the `RESULT` JSON line.
fn exchange(kind: &str, config: &AnswerConfig) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capture.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["check", kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut offer = String::new();
    let mut started = false;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("reading the driver") == 0 {
            panic!("the driver ended before printing an offer; got {offer:?}");
        }
        let line = line.trim_end();
        match line {
            "OFFER" => started = true,
            "END" if started => break,
            l if l.starts_with("RESULT ") => panic!("the browser failed to make an offer: {l}"),
            l if started => {
                offer.push_str(l);
                offer.push_str("\r\n");
            }
            _ => {}
        }
    }
    let answer = answer_text(&offer, config).unwrap_or_else(|e| panic!("{e}\n{offer}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{}END", answer.sdp).expect("writing the answer");
    drop(stdin);
    let result = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .expect("the driver prints RESULT");
    let status = child.wait().expect("the driver exits");
    assert!(
        status.success(),
        "Chromium refused the answer: {result}\n{}",
        answer.sdp
    );
    result
}

fn config(role: Role) -> AnswerConfig {
    let mut c = AnswerConfig::new(
        role,
        "uturnUfrag",
        "uturnPasswordOf24Chars0",
        [0x11; 32],
        vec!["127.0.0.1:3478".parse().unwrap()],
    );
    c.tracks = vec![
        OutgoingTrack {
            kind: MediaKind::Audio,
            track_id: "a0".into(),
            ssrc: 5,
            rtx_ssrc: None,
        },
        OutgoingTrack {
            kind: MediaKind::Video,
            track_id: "v0".into(),
            ssrc: 6,
            rtx_ssrc: Some(7),
        },
    ];
    c
}

#[test]
fn chromium_accepts_our_whip_and_whep_answers() {
    if !browser_available() {
        eprintln!("skipped: chromium, chromedriver or python3 selenium missing");
        return;
    }
    let whip = exchange("whip", &config(Role::Receive));
    assert!(whip.contains(r#""accepted": true"#), "{whip}");
    assert!(whip.contains(r#""signalingState": "stable""#), "{whip}");
    // The publisher sends; only our one codec (+ RTX) is left to send with.
    assert_eq!(
        whip.matches(r#""currentDirection": "sendonly""#).count(),
        2,
        "{whip}"
    );
    assert!(whip.contains(r#"["audio/opus/111"]"#), "{whip}");
    assert!(
        whip.contains(r#"["video/VP8/96", "video/rtx/97"]"#),
        "{whip}"
    );

    // A data channel is rejected with port 0 and the browser goes along.
    let dc = exchange("whip-dc", &config(Role::Receive));
    assert!(dc.contains(r#""accepted": true"#), "{dc}");
    assert_eq!(
        dc.matches(r#""currentDirection": "sendonly""#).count(),
        2,
        "{dc}"
    );

    let whep = exchange("whep", &config(Role::Send));
    assert!(whep.contains(r#""accepted": true"#), "{whep}");
    assert_eq!(
        whep.matches(r#""currentDirection": "recvonly""#).count(),
        2,
        "{whep}"
    );
}
