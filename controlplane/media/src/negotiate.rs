//! From SDP to session set-up: the [`AnswerConfig`] of a WHIP publisher
//! (RFC 9725) or a WHEP viewer, what the registry keeps of an answer, and
//! the `application/trickle-ice-sdpfrag` of an ICE restart (RFC 8840 §9,
//! RFC 9725 §4.3.2).
//!
//! Control-plane code, run once per POST or PATCH: owned strings are fine.

use std::net::{IpAddr, SocketAddr};

use uturn_sdp::{
    Answer, AnswerConfig, Candidate, FragmentMedia, MediaKind, MediaLine, MediaOutcome,
    NegotiatedMedia, OutgoingTrack, Role, SupportedCodec, TrickleFragment,
};

/// The SSRCs uturn sends a stream's media with to every viewer: chosen at
/// random when the stream is published, one media and one RTX SSRC per
/// kind (RFC 3550 §8.1: random, so that two streams are unlikely to share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamSsrcs {
    pub audio: u32,
    pub audio_rtx: u32,
    pub video: u32,
    pub video_rtx: u32,
}

impl StreamSsrcs {
    /// Four distinct random SSRCs.
    pub fn random() -> StreamSsrcs {
        let mut picked: Vec<u32> = Vec::with_capacity(4);
        while picked.len() < 4 {
            let s: u32 = rand::random();
            // 0 is legal but some stacks treat it as "unset": skip it.
            if s != 0 && !picked.contains(&s) {
                picked.push(s);
            }
        }
        StreamSsrcs {
            audio: picked[0],
            audio_rtx: picked[1],
            video: picked[2],
            video_rtx: picked[3],
        }
    }

    /// The tracks a WHEP answer announces (`a=ssrc`, `a=ssrc-group:FID`).
    pub fn tracks(&self) -> Vec<OutgoingTrack> {
        vec![
            OutgoingTrack {
                kind: MediaKind::Audio,
                track_id: "audio".into(),
                ssrc: self.audio,
                rtx_ssrc: Some(self.audio_rtx),
            },
            OutgoingTrack {
                kind: MediaKind::Video,
                track_id: "video".into(),
                ssrc: self.video,
                rtx_ssrc: Some(self.video_rtx),
            },
        ]
    }
}

/// What the server brings to a publisher's (WHIP) negotiation.
pub(crate) fn publisher_config(
    ufrag: &str,
    pwd: &str,
    fingerprint: [u8; 32],
    candidates: &[SocketAddr],
) -> AnswerConfig {
    let mut config = AnswerConfig::new(Role::Receive, ufrag, pwd, fingerprint, candidates.to_vec());
    config.session_id = session_version_id();
    config
}

/// What the server brings to a viewer's (WHEP) negotiation: exactly the
/// publisher's codec per kind (media is forwarded, not transcoded), and the
/// stream's SSRCs.
pub(crate) fn viewer_config(
    ufrag: &str,
    pwd: &str,
    fingerprint: [u8; 32],
    candidates: &[SocketAddr],
    stream: &str,
    publisher_media: &[NegotiatedMedia],
    ssrcs: &StreamSsrcs,
) -> AnswerConfig {
    let mut config = AnswerConfig::new(Role::Send, ufrag, pwd, fingerprint, candidates.to_vec());
    config.session_id = session_version_id();
    config.codecs = publisher_media
        .iter()
        .filter_map(|m| SupportedCodec::from_codec(&m.codec))
        .collect();
    config.stream_id = stream.into();
    config.cname = format!("uturn-{stream}");
    config.tracks = ssrcs.tracks();
    // Only kinds the publisher sends get a track: an m-section of another
    // kind then finds no track and is answered inactive.
    config
        .tracks
        .retain(|t| publisher_media.iter().any(|m| m.kind == t.kind));
    config
}

/// The accepted m-sections of an answer.
pub(crate) fn accepted_media(answer: &Answer) -> Vec<NegotiatedMedia> {
    answer
        .media
        .iter()
        .filter_map(|o| match o {
            MediaOutcome::Accepted(m) => Some(m.clone()),
            MediaOutcome::Rejected { .. } => None,
        })
        .collect()
}

/// Remote candidates we can use: UDP with an IP address (an mDNS or other
/// host name would need a resolver; the peer's checks reveal its address
/// anyway, RFC 8445 §7.3.1.3).
pub(crate) fn udp_candidates<'a>(
    candidates: impl IntoIterator<Item = &'a Candidate>,
) -> Vec<(SocketAddr, u32)> {
    candidates
        .into_iter()
        .filter(|c| c.transport.eq_ignore_ascii_case("udp") && c.component == 1)
        .filter_map(|c| {
            let ip: IpAddr = c.address.parse().ok()?;
            Some((SocketAddr::new(ip, c.port), c.priority))
        })
        .collect()
}

/// Our new credentials and candidates after an ICE restart, as the
/// `application/trickle-ice-sdpfrag` body of the PATCH's 200 (RFC 9725
/// §4.3.2): ufrag and pwd, then one m-section of the bundle (its mid and
/// kind; port and format carry no meaning in a fragment) with every
/// host candidate and `a=end-of-candidates` (an ICE-lite server has all
/// its candidates at once).
pub(crate) fn restart_fragment(
    ufrag: &str,
    pwd: &str,
    (mid, kind): (&str, MediaKind),
    candidates: &[SocketAddr],
) -> String {
    let fragment = TrickleFragment {
        ice_ufrag: Some(ufrag.into()),
        ice_pwd: Some(pwd.into()),
        ice_options: Vec::new(),
        end_of_candidates: false,
        media: vec![FragmentMedia {
            line: MediaLine {
                media: kind.as_str().into(),
                port: 9,
                port_count: None,
                proto: uturn_sdp::answer::DTLS_SRTP_PROFILE.into(),
                formats: vec!["0".into()],
            },
            mid: Some(mid.into()),
            ice_ufrag: None,
            ice_pwd: None,
            candidates: candidates
                .iter()
                .enumerate()
                .map(|(i, a)| Candidate::host(&(i + 1).to_string(), *a))
                .collect(),
            end_of_candidates: true,
        }],
    };
    fragment.to_string()
}

/// A random `o=` session id: RFC 8866 §5.2 suggests an NTP timestamp or a
/// random number; 62 bits keep it a positive signed 64-bit value, which
/// some parsers expect.
fn session_version_id() -> u64 {
    rand::random::<u64>() >> 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ssrcs_are_distinct_and_nonzero() {
        for _ in 0..100 {
            let s = StreamSsrcs::random();
            let all = [s.audio, s.audio_rtx, s.video, s.video_rtx];
            assert!(all.iter().all(|&x| x != 0));
            for (i, a) in all.iter().enumerate() {
                assert!(!all[i + 1..].contains(a));
            }
        }
    }

    #[test]
    fn restart_fragment_parses_back() {
        let cands = ["192.0.2.1:3478".parse().unwrap()];
        let text = restart_fragment(
            "abcd",
            "0123456789abcdefghijkl",
            ("1", MediaKind::Video),
            &cands,
        );
        assert!(text.contains("m=video 9 "));
        assert!(text.contains("a=mid:1\r\n"));
        let f = TrickleFragment::parse(&text).unwrap();
        assert_eq!(f.ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.ice_pwd.as_deref(), Some("0123456789abcdefghijkl"));
        let got = udp_candidates(f.candidates().map(|(_, c)| c));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, cands[0]);
        assert!(f.is_end_of_candidates());
    }

    #[test]
    fn only_udp_ip_candidates_are_kept() {
        let frag = "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
            a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n\
            a=candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\r\n\
            a=candidate:3 1 udp 2122260223 abcd.local 61765 typ host\r\n\
            a=candidate:4 2 udp 2122260222 192.0.2.1 61766 typ host\r\n";
        let f = TrickleFragment::parse(frag).unwrap();
        let got = udp_candidates(f.candidates().map(|(_, c)| c));
        assert_eq!(got, [("192.0.2.1:61764".parse().unwrap(), 2122260223)]);
    }
}
