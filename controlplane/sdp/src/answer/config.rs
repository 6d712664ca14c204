//! What the server brings to an SDP negotiation: its role, identity (ICE,
//! DTLS fingerprint, host candidates), codecs, header extensions and, for
//! WHEP, the tracks it sends. The supported set: Opus (mandatory for WebRTC,
//! RFC 7874), VP8 and H.264 (both mandatory, RFC 7742), VP9 optional.

use std::net::SocketAddr;

use crate::attributes::MediaKind;
use crate::codec::{Codec, CodecName};

/// The RTP profile WebRTC uses: SRTP keyed by DTLS, with feedback (RFC 8827).
pub const DTLS_SRTP_PROFILE: &str = "UDP/TLS/RTP/SAVPF";

/// `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 8843).
pub const EXT_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// Absolute send time (webrtc.org experiment, used by Chromium's REMB).
pub const EXT_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
/// Transport-wide sequence numbers for transport-cc feedback.
pub const EXT_TRANSPORT_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The RTCP feedback we answer (type, parameter): NACK (RFC 4585), PLI
/// (RFC 4585), FIR (RFC 5104), transport-cc.
pub const SUPPORTED_FEEDBACK: [(&str, Option<&str>); 4] = [
    ("nack", None),
    ("nack", Some("pli")),
    ("ccm", Some("fir")),
    ("transport-cc", None),
];

/// What the server does with media in this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// WHIP: the client publishes, we receive.
    Receive,
    /// WHEP: the client plays, we send.
    Send,
}

/// A codec the server accepts, in [`AnswerConfig::codecs`] preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportedCodec {
    /// Opus 48000/2 (RFC 7587 §7).
    Opus,
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 with this `profile-id`.
    Vp9 {
        /// 0 unless the offer says otherwise.
        profile_id: u8,
    },
    /// H.264 with packetization-mode=1 (RFC 6184 §6.3, non-interleaved)
    /// and this profile (the first two bytes of profile-level-id: profile_idc
    /// and profile-iop; the level is whatever the offer says and is echoed).
    H264 {
        /// profile_idc, e.g. 0x42 baseline, 0x4d main, 0x64 high.
        profile_idc: u8,
        /// profile-iop (constraint flags), e.g. 0xe0 for constrained baseline.
        profile_iop: u8,
    },
}

impl SupportedCodec {
    /// Constrained baseline H.264, the profile every WebRTC browser does.
    pub const H264_CONSTRAINED_BASELINE: Self = Self::H264 {
        profile_idc: 0x42,
        profile_iop: 0xe0,
    };

    /// The entry that accepts exactly `codec` (same family and profile).
    /// WHEP uses it to require from a viewer the codec its publisher
    /// negotiated, since media is forwarded, not transcoded. `None` for a
    /// codec we do not forward.
    pub fn from_codec(codec: &Codec) -> Option<Self> {
        let supported = match codec.name {
            CodecName::Opus => Self::Opus,
            CodecName::Vp8 => Self::Vp8,
            CodecName::Vp9 => Self::Vp9 {
                profile_id: codec.vp9_profile_id()?,
            },
            CodecName::H264 => {
                let [profile_idc, profile_iop, _level] = codec.profile_level_id()?;
                Self::H264 {
                    profile_idc,
                    profile_iop,
                }
            }
            _ => return None,
        };
        supported.matches(codec).then_some(supported)
    }

    pub(super) fn kind(self) -> MediaKind {
        match self {
            Self::Opus => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    pub(super) fn matches(self, c: &Codec) -> bool {
        match self {
            Self::Opus => {
                c.name == CodecName::Opus && c.clock_rate == 48000 && c.channels == Some(2)
            }
            Self::Vp8 => c.name == CodecName::Vp8 && c.clock_rate == 90000,
            Self::Vp9 { profile_id } => {
                c.name == CodecName::Vp9
                    && c.clock_rate == 90000
                    && c.vp9_profile_id() == Some(profile_id)
            }
            Self::H264 {
                profile_idc,
                profile_iop,
            } => {
                c.name == CodecName::H264
                    && c.clock_rate == 90000
                    && c.packetization_mode() == Some(1)
                    && c.profile_level_id()
                        .is_some_and(|p| p[0] == profile_idc && p[1] == profile_iop)
            }
        }
    }
}

/// A stream the server sends to a WHEP viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingTrack {
    /// Audio or video: the track goes to the first sending m-section of
    /// this kind that has no track yet.
    pub kind: MediaKind,
    /// msid track id.
    pub track_id: String,
    /// Our SSRC for the media.
    pub ssrc: u32,
    /// Our SSRC for RTX, announced as `ssrc-group:FID` when RTX is
    /// negotiated.
    pub rtx_ssrc: Option<u32>,
}

/// What the server brings to the negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerConfig {
    /// WHIP (receive) or WHEP (send).
    pub role: Role,
    /// `o=` session id (the caller picks it at random: this crate has no
    /// randomness).
    pub session_id: u64,
    /// Our ICE ufrag (RFC 8839 §5.4: 4-256 ice-chars).
    pub ice_ufrag: String,
    /// Our ICE password (22-256 ice-chars).
    pub ice_pwd: String,
    /// SHA-256 of our DTLS certificate.
    pub fingerprint: [u8; 32],
    /// Our host candidates (UDP); the first is the default address in `c=`
    /// and the m= port.
    pub candidates: Vec<SocketAddr>,
    /// Accepted codecs, most preferred first. For WHEP, give the
    /// publisher's codecs ([`SupportedCodec::from_codec`]): viewers get
    /// what is forwarded.
    pub codecs: Vec<SupportedCodec>,
    /// Accept RTX (RFC 4588) for the chosen codec when offered.
    pub rtx: bool,
    /// Header extension URIs we accept (offered ids are kept).
    pub header_extensions: Vec<String>,
    /// msid stream id of what we send (Send role).
    pub stream_id: String,
    /// RTCP CNAME of what we send (Send role).
    pub cname: String,
    /// What we send (Send role).
    pub tracks: Vec<OutgoingTrack>,
}

impl AnswerConfig {
    /// A config with the default media support: Opus; VP8, then H.264
    /// (packetization-mode 1) constrained baseline, baseline and main; RTX;
    /// the mid, abs-send-time and transport-cc header extensions. VP9 is
    /// off by default; push [`SupportedCodec::Vp9`] to enable it.
    pub fn new(
        role: Role,
        ice_ufrag: &str,
        ice_pwd: &str,
        fingerprint: [u8; 32],
        candidates: Vec<SocketAddr>,
    ) -> Self {
        Self {
            role,
            session_id: 1,
            ice_ufrag: ice_ufrag.into(),
            ice_pwd: ice_pwd.into(),
            fingerprint,
            candidates,
            codecs: vec![
                SupportedCodec::Opus,
                SupportedCodec::Vp8,
                SupportedCodec::H264_CONSTRAINED_BASELINE,
                SupportedCodec::H264 {
                    profile_idc: 0x42,
                    profile_iop: 0x00,
                },
                SupportedCodec::H264 {
                    profile_idc: 0x4d,
                    profile_iop: 0x00,
                },
            ],
            rtx: true,
            header_extensions: [EXT_MID, EXT_ABS_SEND_TIME, EXT_TRANSPORT_CC]
                .map(String::from)
                .to_vec(),
            stream_id: "uturn".into(),
            cname: "uturn".into(),
            tracks: Vec::new(),
        }
    }
}
