//! Random line mutations of the Chromium fixtures never panic the parser,
//! the typed accessors, answer generation or the trickle parser: each input
//! either works or gives an error. Deterministic (a fixed-seed xorshift), so
//! a failure reproduces; the failing input is printed.

use uturn_sdp::{
    answer, AnswerConfig, MediaKind, OutgoingTrack, Role, SessionDescription, TrickleFragment,
};

const FIXTURES: [&str; 2] = [
    include_str!("fixtures/chromium-whip-offer.sdp"),
    include_str!("fixtures/chromium-whep-offer.sdp"),
];

/// Marsaglia's xorshift64: enough randomness for mutations, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const NASTY: [&str; 14] = [
    "",
    ":",
    " ",
    "=",
    "a=",
    "m=",
    "99999999999999999999",
    "-1",
    "é",
    "\u{0}",
    "*",
    "/",
    "a=candidate:",
    "a=ssrc-group:FID",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(rng.below(lines.len()), l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Truncate at a char boundary.
                let cut: Vec<usize> = lines[i].char_indices().map(|(k, _)| k).collect();
                if !cut.is_empty() {
                    let k = cut[rng.below(cut.len())];
                    lines[i].truncate(k);
                }
            }
            4 => {
                // Insert a nasty token at a char boundary.
                let at: Vec<usize> = lines[i]
                    .char_indices()
                    .map(|(k, _)| k)
                    .chain([lines[i].len()])
                    .collect();
                let k = at[rng.below(at.len())];
                lines[i].insert_str(k, NASTY[rng.below(NASTY.len())]);
            }
            5 => {
                // Replace one space-separated field.
                let mut f: Vec<String> = lines[i].split(' ').map(str::to_owned).collect();
                let j = rng.below(f.len());
                f[j] = NASTY[rng.below(NASTY.len())].to_owned();
                lines[i] = f.join(" ");
            }
            _ => {
                // Splice in a line from elsewhere with a different prefix.
                let j = rng.below(lines.len());
                let tail: String = lines[j].chars().skip(2).collect();
                lines[i] = format!(
                    "{}{}",
                    ["a=", "m=", "c=", "o=", "t=", "v="][rng.below(6)],
                    tail
                );
            }
        }
    }
    lines.join(if rng.below(2) == 0 { "\r\n" } else { "\n" })
}

/// Runs everything over the input; returns whether an answer came out.
fn exercise(text: &str) -> bool {
    let _ = TrickleFragment::parse(text);
    let Ok(sd) = SessionDescription::parse(text) else {
        return false;
    };
    // Whatever parses writes back to something that parses the same.
    let reparsed = SessionDescription::parse(&sd.to_string());
    assert!(reparsed.as_ref() == Ok(&sd), "round trip changed {text:?}");
    let _ = sd.bundle();
    let _ = sd.msid_semantic();
    for m in &sd.media {
        let _ = (
            m.kind(),
            m.mid(),
            m.direction(),
            m.rtcp_mux(),
            m.rtcp_rsize(),
        );
        let _ = (sd.ice_ufrag(m), sd.ice_pwd(m), sd.ice_options(m).count());
        let _ = (sd.fingerprints(m), sd.setup(m), m.candidates(), m.extmaps());
        let _ = (m.ssrcs(), m.ssrc_groups(), m.msid());
        if let Ok(codecs) = m.codecs() {
            for c in codecs {
                let _ = (
                    c.packetization_mode(),
                    c.profile_level_id(),
                    c.vp9_profile_id(),
                    c.apt(),
                );
            }
        }
    }
    let mut ok = false;
    for role in [Role::Receive, Role::Send] {
        let mut c = AnswerConfig::new(role, "ufrag", "0123456789012345678901", [7; 32], vec![]);
        c.tracks = vec![OutgoingTrack {
            kind: MediaKind::Video,
            track_id: "v".into(),
            ssrc: 1,
            rtx_ssrc: Some(2),
        }];
        match answer(&sd, &c) {
            Ok(a) => {
                ok = true;
                // Our answers always parse back.
                let text = a.sdp.to_string();
                assert!(SessionDescription::parse(&text).is_ok(), "{text}");
            }
            Err(e) => assert_eq!(e.http_status(), 400),
        }
    }
    ok
}

#[test]
fn random_line_mutations_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut answered = 0;
    for round in 0..4000 {
        let base = FIXTURES[round % 2];
        let text = mutate(&mut rng, base);
        let result = std::panic::catch_unwind(|| exercise(&text));
        match result {
            Ok(true) => answered += 1,
            Ok(false) => {}
            Err(_) => panic!("round {round} panicked on:\n{text:?}"),
        }
    }
    // The mutations are small: many inputs must still negotiate, or the
    // test would only be exercising the first error path.
    assert!(
        answered > 500,
        "only {answered} mutated offers were answered"
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                const ALPHABET: &[u8] = b"v=0\r\nmoa:csti 9/ ";
                ALPHABET[rng.below(ALPHABET.len())]
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        exercise(&text);
    }
}
