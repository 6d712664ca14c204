//! Answer generation for a media server (RFC 8829 §5.3 "Generating an
//! Answer", RFC 3264 §6), the subset WHIP (RFC 9725) and WHEP need.
//!
//! The server is ICE-lite (RFC 8445 §2.5; `a=ice-lite`, host candidates
//! only, all of them in the answer, so `a=end-of-candidates`), always the
//! DTLS server (`a=setup:passive`, RFC 8842 §5), runs every accepted
//! m-section over one transport (BUNDLE, RFC 8843; RTCP multiplexed,
//! RFC 8858) and forwards media without transcoding, so it picks exactly
//! **one** codec per m-section (plus its RTX): what a publisher sends must
//! be what every viewer can take, and one payload type per stream keeps the
//! forwarding rules simple.
//!
//! What is refused, and how:
//!
//! - Whole-offer problems (malformed SDP, no ICE credentials, no sha-256
//!   fingerprint, a `setup:passive` offer, no `rtcp-mux`, several
//!   m-sections without BUNDLE, nothing acceptable) are a
//!   [`NegotiationError`], which maps to an HTTP status with
//!   [`NegotiationError::http_status`] and explains itself in `Display`.
//! - A single m-section we cannot serve (a data channel `m=application` —
//!   not supported yet —, a non-DTLS-SRTP profile, no common codec while
//!   other sections work, a section the offerer already disabled, one
//!   outside the BUNDLE group) is rejected in the answer with port 0
//!   (RFC 8829 §5.3.1, RFC 3264 §6), removed from the BUNDLE group, and
//!   reported as [`MediaOutcome::Rejected`] with the reason.
//!
//! Direction is the offer's reversed and limited by the [`Role`]: a WHIP
//! publisher's `sendonly` becomes our `recvonly`; a WHEP viewer's `recvonly`
//! becomes our `sendonly` with the SSRC/msid of an [`OutgoingTrack`] from the
//! config; anything else becomes `inactive`.

mod build;
mod config;

use crate::attributes::{Direction, Extmap, Fingerprint, MediaKind, Msid, Setup};
use crate::candidate::Candidate;
use crate::codec::{Codec, CodecName};
use crate::session::{Error, Media, SessionDescription};

pub use config::{
    AnswerConfig, OutgoingTrack, Role, SupportedCodec, DTLS_SRTP_PROFILE, EXT_ABS_SEND_TIME,
    EXT_MID, EXT_TRANSPORT_CC, SUPPORTED_FEEDBACK,
};

/// Why an offer cannot be answered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The SDP does not parse, or an attribute we need is malformed.
    #[error("malformed SDP: {0}")]
    Malformed(#[from] Error),
    /// An m-section has no `a=mid` (JSEP always sends one; BUNDLE needs it).
    #[error("m-section {index} has no a=mid")]
    MissingMid {
        /// 0-based m-section index.
        index: usize,
    },
    /// Two m-sections share a mid (RFC 5888 §4).
    #[error("mid {0:?} is used by more than one m-section")]
    DuplicateMid(String),
    /// No `a=ice-ufrag`/`a=ice-pwd`, or ones that break RFC 8839 §5.4.
    #[error("mid {mid}: {reason}")]
    IceCredentials {
        /// The m-section.
        mid: String,
        /// What is missing or wrong.
        reason: &'static str,
    },
    /// No `a=fingerprint` (RFC 8122), or none with sha-256.
    #[error("mid {mid}: {reason}")]
    Fingerprint {
        /// The m-section.
        mid: String,
        /// What is missing or wrong.
        reason: &'static str,
    },
    /// The offer's `a=setup` leaves us no passive (DTLS server) role.
    #[error("mid {mid}: a=setup:{} cannot be answered; offer a=setup:actpass (the server is the DTLS server, setup:passive)", .setup.as_str())]
    Setup {
        /// The m-section.
        mid: String,
        /// What the offer said.
        setup: Setup,
    },
    /// An m-section without `a=rtcp-mux` (we have one port per session).
    #[error("mid {0}: a=rtcp-mux is required")]
    RtcpMuxRequired(String),
    /// Several m-sections to accept but no BUNDLE group (we have one
    /// transport per session).
    #[error("the offer has several m-sections but no a=group:BUNDLE; BUNDLE is required")]
    BundleRequired,
    /// Every m-section had to be rejected.
    #[error("nothing in the offer can be accepted: {0}")]
    NothingAcceptable(String),
}

impl NegotiationError {
    /// The HTTP status a WHIP/WHEP endpoint answers with. Every variant is
    /// a problem with the offer the client sent: 400 Bad Request (RFC 9725;
    /// 415 for a wrong Content-Type is the HTTP layer's business).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Malformed(_)
            | Self::MissingMid { .. }
            | Self::DuplicateMid(_)
            | Self::IceCredentials { .. }
            | Self::Fingerprint { .. }
            | Self::Setup { .. }
            | Self::RtcpMuxRequired(_)
            | Self::BundleRequired
            | Self::NothingAcceptable(_) => 400,
        }
    }
}

/// The result of negotiating one m-section.
// A handful exist per session, built once: boxing the large variant would
// buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutcome {
    /// Accepted, bundled.
    Accepted(NegotiatedMedia),
    /// Rejected with port 0.
    Rejected {
        /// The m-section's mid.
        mid: String,
        /// Its kind.
        kind: MediaKind,
        /// Why, for logs.
        reason: &'static str,
    },
}

/// What was agreed for one accepted m-section: what the dataplane needs to
/// build forwarding and rewriting rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// The mid (also in the RTP `sdes:mid` extension).
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Our direction.
    pub direction: Direction,
    /// The one codec, with only the feedback both sides agreed on.
    pub codec: Codec,
    /// The RTX payload type for it, if negotiated.
    pub rtx_payload_type: Option<u8>,
    /// Header extensions agreed (the offer's ids).
    pub extmaps: Vec<Extmap>,
    /// Reduced-size RTCP (RFC 5506) agreed.
    pub rtcp_rsize: bool,
    /// The offerer's media SSRC, if it announced one.
    pub remote_ssrc: Option<u32>,
    /// The offerer's RTX SSRC (`ssrc-group:FID`), if announced.
    pub remote_rtx_ssrc: Option<u32>,
    /// The offerer's msid.
    pub remote_msid: Option<Msid>,
    /// What we send on it (Send role).
    pub local_track: Option<OutgoingTrack>,
}

/// A negotiated answer: the SDP to return and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP (`to_string()` gives the text with CRLF).
    pub sdp: SessionDescription,
    /// One outcome per offered m-section, in order.
    pub media: Vec<MediaOutcome>,
    /// The offerer's ICE ufrag (of the BUNDLE transport).
    pub remote_ice_ufrag: String,
    /// The offerer's ICE password.
    pub remote_ice_pwd: String,
    /// The offerer's DTLS certificate SHA-256 (to verify in the handshake).
    pub remote_fingerprint: [u8; 32],
    /// The offerer's candidates on the BUNDLE transport.
    pub remote_candidates: Vec<Candidate>,
    /// The offerer supports trickle ICE (`a=ice-options:trickle`), so more
    /// candidates may come by PATCH (RFC 8840).
    pub remote_trickle: bool,
}

/// Parses `offer` and answers it. See the module docs for the rules.
pub fn answer_text(offer: &str, config: &AnswerConfig) -> Result<Answer, NegotiationError> {
    answer(&SessionDescription::parse(offer)?, config)
}

/// Answers a parsed offer. See the module docs for the rules.
pub fn answer(
    offer: &SessionDescription,
    config: &AnswerConfig,
) -> Result<Answer, NegotiationError> {
    // Every m-section has a unique mid.
    let mut mids: Vec<&str> = Vec::with_capacity(offer.media.len());
    for (index, m) in offer.media.iter().enumerate() {
        let mid = m.mid().ok_or(NegotiationError::MissingMid { index })?;
        if mids.contains(&mid) {
            return Err(NegotiationError::DuplicateMid(mid.into()));
        }
        mids.push(mid);
    }
    let bundle = offer.bundle();

    // Each m-section on its own; sending sections take the next unused
    // configured track of their kind.
    let mut track_used = vec![false; config.tracks.len()];
    let mut outcomes = Vec::with_capacity(offer.media.len());
    for (m, mid) in offer.media.iter().zip(&mids) {
        let outcome = match negotiate_media(offer, m, mid, bundle.as_deref(), config)? {
            Ok(mut media) => {
                if media.direction.sends() {
                    let free = config
                        .tracks
                        .iter()
                        .zip(track_used.iter_mut())
                        .find(|(t, used)| t.kind == media.kind && !**used);
                    match free {
                        Some((track, used)) => {
                            *used = true;
                            media.local_track = Some(track.clone());
                        }
                        // Nothing of this kind to send: RFC 3264 §6.1
                        // lets the answer narrow the direction.
                        None => media.direction = Direction::Inactive,
                    }
                }
                MediaOutcome::Accepted(media)
            }
            Err(reason) => MediaOutcome::Rejected {
                mid: (*mid).into(),
                kind: m.kind(),
                reason,
            },
        };
        outcomes.push(outcome);
    }

    // Accepted m-sections in BUNDLE group order (m-line order without a
    // group): the first is the answerer-tagged one, whose transport the
    // whole bundle uses (RFC 8843 §7.3).
    let mut accepted: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, MediaOutcome::Accepted(_)))
        .map(|(i, _)| i)
        .collect();
    if let Some(group) = &bundle {
        accepted.sort_by_key(|&i| {
            let mid = mids.get(i).copied().unwrap_or_default();
            group.iter().position(|g| g == mid)
        });
    }
    let Some(&tagged) = accepted.first() else {
        let reasons: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                MediaOutcome::Rejected { mid, kind, reason } => {
                    Some(format!("mid {mid} ({}): {reason}", kind.as_str()))
                }
                MediaOutcome::Accepted(_) => None,
            })
            .collect();
        let reasons = if reasons.is_empty() {
            "the offer has no m-sections".to_owned()
        } else {
            reasons.join("; ")
        };
        return Err(NegotiationError::NothingAcceptable(reasons));
    };
    if accepted.len() > 1 && bundle.is_none() {
        return Err(NegotiationError::BundleRequired);
    }

    let transport = offer
        .media
        .get(tagged)
        .ok_or(NegotiationError::BundleRequired)?;
    let tagged_mid = mids.get(tagged).copied().unwrap_or_default();
    let remote = remote_transport(offer, transport, tagged_mid)?;

    let sdp = build::build_answer_sdp(offer, &outcomes, &mids, &accepted, config);
    Ok(Answer {
        sdp,
        media: outcomes,
        remote_ice_ufrag: remote.ufrag,
        remote_ice_pwd: remote.pwd,
        remote_fingerprint: remote.fingerprint,
        remote_candidates: remote.candidates,
        remote_trickle: offer.ice_options(transport).any(|o| o == "trickle"),
    })
}

struct RemoteTransport {
    ufrag: String,
    pwd: String,
    fingerprint: [u8; 32],
    candidates: Vec<Candidate>,
}

fn remote_transport(
    offer: &SessionDescription,
    m: &Media,
    mid: &str,
) -> Result<RemoteTransport, NegotiationError> {
    let ice = |reason| NegotiationError::IceCredentials {
        mid: mid.into(),
        reason,
    };
    let ufrag = offer.ice_ufrag(m).ok_or(ice("no a=ice-ufrag"))?;
    let pwd = offer.ice_pwd(m).ok_or(ice("no a=ice-pwd"))?;
    // RFC 8839 §5.4: ufrag 4-256 and password 22-256 ice-chars.
    let ice_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    if !(4..=256).contains(&ufrag.len()) || !ice_chars(ufrag) {
        return Err(ice("a=ice-ufrag must be 4 to 256 ice-chars"));
    }
    if !(22..=256).contains(&pwd.len()) || !ice_chars(pwd) {
        return Err(ice("a=ice-pwd must be 22 to 256 ice-chars"));
    }
    let fingerprints = offer.fingerprints(m)?;
    if fingerprints.is_empty() {
        return Err(NegotiationError::Fingerprint {
            mid: mid.into(),
            reason: "no a=fingerprint",
        });
    }
    let fingerprint = fingerprints.iter().find_map(Fingerprint::as_sha256).ok_or(
        NegotiationError::Fingerprint {
            mid: mid.into(),
            reason: "no sha-256 a=fingerprint (the only hash function we check)",
        },
    )?;
    Ok(RemoteTransport {
        ufrag: ufrag.into(),
        pwd: pwd.into(),
        fingerprint,
        candidates: m.candidates()?,
    })
}

/// Negotiates one m-section. The outer error fails the whole offer; the
/// inner one rejects just this m-section with the reason.
fn negotiate_media(
    offer: &SessionDescription,
    m: &Media,
    mid: &str,
    bundle: Option<&[String]>,
    config: &AnswerConfig,
) -> Result<Result<NegotiatedMedia, &'static str>, NegotiationError> {
    let kind = m.kind();
    match kind {
        MediaKind::Audio | MediaKind::Video => {}
        MediaKind::Application => return Ok(Err("data channels are not supported yet")),
        MediaKind::Other => return Ok(Err("only audio and video are supported")),
    }
    if m.line.proto != DTLS_SRTP_PROFILE {
        return Ok(Err("only UDP/TLS/RTP/SAVPF (DTLS-SRTP) is supported"));
    }
    if m.line.port == 0 && !m.has_attribute("bundle-only") {
        return Ok(Err("the offer disabled this m-section (port 0)"));
    }
    if bundle.is_some_and(|b| !b.iter().any(|x| x == mid)) {
        return Ok(Err("not in the BUNDLE group"));
    }

    // From here on the section is one we would accept: what is missing is
    // an error in the offer, not a reason to drop a section.
    if !m.rtcp_mux() {
        return Err(NegotiationError::RtcpMuxRequired(mid.into()));
    }
    match offer.setup(m)? {
        // RFC 4145 §4: no a=setup means active; we are then passive.
        None | Some(Setup::ActPass) | Some(Setup::Active) => {}
        Some(setup) => {
            return Err(NegotiationError::Setup {
                mid: mid.into(),
                setup,
            })
        }
    }

    let codecs = m.codecs()?;
    let Some(chosen) = config
        .codecs
        .iter()
        .filter(|s| s.kind() == kind)
        .find_map(|s| codecs.iter().find(|c| s.matches(c)))
    else {
        return Ok(Err(match kind {
            MediaKind::Audio => "no common codec (we take Opus 48000/2)",
            _ => "no common codec (we take VP8, H.264 packetization-mode=1, VP9 if enabled)",
        }));
    };
    // Header extensions we support, with the offer's ids; one id per URI
    // and one URI per id (RFC 8285 §6), the first offered wins.
    let mut extmaps: Vec<Extmap> = Vec::new();
    for e in m.extmaps()? {
        let known = config.header_extensions.contains(&e.uri);
        let clash = extmaps.iter().any(|x| x.id == e.id || x.uri == e.uri);
        if known && !clash {
            extmaps.push(Extmap {
                direction: None,
                attributes: None,
                ..e
            });
        }
    }
    let transport_cc = extmaps.iter().any(|e| e.uri == EXT_TRANSPORT_CC);

    // Feedback we do, each once, for our payload type. transport-cc
    // feedback needs the transport-wide sequence number extension.
    let mut codec = chosen.clone();
    let offered_feedback = std::mem::take(&mut codec.feedback);
    for mut f in offered_feedback {
        let supported = SUPPORTED_FEEDBACK
            .iter()
            .any(|(t, p)| f.typ == *t && f.parameter.as_deref() == *p);
        f.payload_type = Some(codec.payload_type);
        if supported && (f.typ != "transport-cc" || transport_cc) && !codec.feedback.contains(&f) {
            codec.feedback.push(f);
        }
    }
    let rtx_payload_type = config
        .rtx
        .then(|| {
            codecs
                .iter()
                .find(|c| c.name == CodecName::Rtx && c.apt() == Some(codec.payload_type))
                .map(|c| c.payload_type)
        })
        .flatten();

    let offered = m.direction();
    let direction = match config.role {
        Role::Receive if offered.sends() => Direction::RecvOnly,
        Role::Send if offered.receives() => Direction::SendOnly,
        _ => Direction::Inactive,
    };

    let ssrcs = m.ssrcs()?;
    let fid = m
        .ssrc_groups()?
        .into_iter()
        .find(|g| g.semantics == "FID" && g.ssrcs.len() == 2);
    let (remote_ssrc, remote_rtx_ssrc) = match fid {
        Some(g) => (g.ssrcs.first().copied(), g.ssrcs.get(1).copied()),
        None => (ssrcs.first().map(|s| s.ssrc), None),
    };

    Ok(Ok(NegotiatedMedia {
        mid: mid.into(),
        kind,
        direction,
        codec,
        rtx_payload_type,
        extmaps,
        rtcp_rsize: m.rtcp_rsize(),
        remote_ssrc,
        remote_rtx_ssrc,
        remote_msid: m.msid()?,
        local_track: None,
    }))
}
