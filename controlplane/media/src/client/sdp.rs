//! The test peer's side of the offer/answer (RFC 8829 §5.2 offer, §5.10
//! applying an answer), shaped like what Chromium sends to a WHIP/WHEP
//! server: one BUNDLE transport (RFC 8843) with rtcp-mux (RFC 8858),
//! `a=setup:actpass` (RFC 8842 §5), a sha-256 fingerprint (RFC 8122), Opus
//! and VP8 (+ RTX, RFC 4588) with Chromium's payload types, extmap ids and
//! rtcp-fb lines.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use uturn_sdp::answer::{EXT_ABS_SEND_TIME, EXT_MID, EXT_TRANSPORT_CC};
use uturn_sdp::{CodecName, Direction, MediaKind, SessionDescription, Setup};

use super::ClientError;

/// Chromium's payload types and extension ids (from a real offer, see
/// controlplane/sdp/tests/fixtures/chromium-whip-offer.sdp).
pub(super) const OPUS_PT: u8 = 111;
pub(super) const VP8_PT: u8 = 96;
pub(super) const VP8_RTX_PT: u8 = 97;
const EXT_ID_ABS_SEND_TIME: u8 = 2;
const EXT_ID_TRANSPORT_CC: u8 = 3;
const EXT_ID_MID: u8 = 4;

/// What goes into the offer besides the media choice.
pub(super) struct OfferParams<'a> {
    pub session_id: u64,
    pub ufrag: &'a str,
    pub pwd: &'a str,
    pub fingerprint: [u8; 32],
    pub publisher: bool,
    pub audio: Option<LocalTrack>,
    pub video: Option<LocalTrack>,
    pub rtx: bool,
    pub cname: &'a str,
    pub stream_id: &'a str,
}

/// Our SSRCs for one m-section (a publisher announces them).
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalTrack {
    pub ssrc: u32,
    pub rtx_ssrc: u32,
}

/// The offer text. Audio is mid "0" and video the next, as Chromium
/// numbers its transceivers.
pub(super) fn offer(p: &OfferParams<'_>) -> String {
    let mut mids = Vec::new();
    if p.audio.is_some() {
        mids.push((MediaKind::Audio, mids.len().to_string()));
    }
    if p.video.is_some() {
        mids.push((MediaKind::Video, mids.len().to_string()));
    }
    let mut s = String::with_capacity(4096);
    // `write!` into a String cannot fail; the results are ignored.
    let _ = write!(
        s,
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        p.session_id
    );
    s.push_str("a=group:BUNDLE");
    for (_, mid) in &mids {
        let _ = write!(s, " {mid}");
    }
    s.push_str("\r\na=extmap-allow-mixed\r\n");
    let _ = write!(s, "a=msid-semantic: WMS {}\r\n", p.stream_id);
    for (kind, mid) in &mids {
        let track = match kind {
            MediaKind::Audio => p.audio,
            _ => p.video,
        };
        let formats = match kind {
            MediaKind::Audio => OPUS_PT.to_string(),
            _ if p.rtx => format!("{VP8_PT} {VP8_RTX_PT}"),
            _ => VP8_PT.to_string(),
        };
        let _ = write!(
            s,
            "m={} 9 UDP/TLS/RTP/SAVPF {formats}\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:{}\r\n\
             a=ice-pwd:{}\r\n\
             a=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {}\r\n\
             a=setup:actpass\r\n\
             a=mid:{mid}\r\n",
            kind.as_str(),
            p.ufrag,
            p.pwd,
            hex_colons(&p.fingerprint),
        );
        let _ = write!(
            s,
            "a=extmap:{EXT_ID_ABS_SEND_TIME} {EXT_ABS_SEND_TIME}\r\n\
             a=extmap:{EXT_ID_TRANSPORT_CC} {EXT_TRANSPORT_CC}\r\n\
             a=extmap:{EXT_ID_MID} {EXT_MID}\r\n"
        );
        s.push_str(if p.publisher {
            "a=sendonly\r\n"
        } else {
            "a=recvonly\r\n"
        });
        let track_id = format!("{}-{}", p.stream_id, kind.as_str());
        if p.publisher {
            let _ = write!(s, "a=msid:{} {track_id}\r\n", p.stream_id);
        }
        s.push_str("a=rtcp-mux\r\na=rtcp-rsize\r\n");
        match kind {
            MediaKind::Audio => {
                let _ = write!(
                    s,
                    "a=rtpmap:{OPUS_PT} opus/48000/2\r\n\
                     a=rtcp-fb:{OPUS_PT} transport-cc\r\n\
                     a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1\r\n"
                );
            }
            _ => {
                let _ = write!(s, "a=rtpmap:{VP8_PT} VP8/90000\r\n");
                for fb in ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"] {
                    let _ = write!(s, "a=rtcp-fb:{VP8_PT} {fb}\r\n");
                }
                if p.rtx {
                    let _ = write!(
                        s,
                        "a=rtpmap:{VP8_RTX_PT} rtx/90000\r\na=fmtp:{VP8_RTX_PT} apt={VP8_PT}\r\n"
                    );
                }
            }
        }
        if let (true, Some(t)) = (p.publisher, track) {
            let video_rtx = p.rtx && *kind == MediaKind::Video;
            if video_rtx {
                let _ = write!(s, "a=ssrc-group:FID {} {}\r\n", t.ssrc, t.rtx_ssrc);
            }
            let mut ssrcs = vec![t.ssrc];
            if video_rtx {
                ssrcs.push(t.rtx_ssrc);
            }
            for ssrc in ssrcs {
                let _ = write!(
                    s,
                    "a=ssrc:{ssrc} cname:{}\r\na=ssrc:{ssrc} msid:{} {track_id}\r\n",
                    p.cname, p.stream_id
                );
            }
        }
    }
    s
}

/// What the answer says about one m-section we offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteMedia {
    pub kind: MediaKind,
    pub mid: String,
    pub payload_type: u8,
    pub rtx_payload_type: Option<u8>,
    pub clock_rate: u32,
    pub codec: CodecName,
    pub ext_mid: Option<u8>,
    pub ext_abs_send_time: Option<u8>,
    pub ext_transport_cc: Option<u8>,
    /// The server's SSRCs (a viewer's answer announces them).
    pub ssrc: Option<u32>,
    pub rtx_ssrc: Option<u32>,
}

/// The parts of the answer the peer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteDescription {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprint: [u8; 32],
    /// The server is DTLS server unless it answered `setup:active`.
    pub server_is_dtls_client: bool,
    pub address: SocketAddr,
    pub media: Vec<RemoteMedia>,
}

/// Reads the answer: transport (first accepted m-section, BUNDLE), and per
/// accepted m-section the chosen codec, RTX, extension ids and SSRCs.
pub(super) fn parse_answer(text: &str) -> Result<RemoteDescription, ClientError> {
    let sdp = SessionDescription::parse(text).map_err(|e| ClientError::Answer(e.to_string()))?;
    let bad = |what: &str| ClientError::Answer(what.to_owned());
    let transport = sdp
        .media
        .iter()
        .find(|m| m.line.port != 0)
        .ok_or_else(|| bad("every m-section was rejected"))?;
    let ufrag = sdp
        .ice_ufrag(transport)
        .ok_or_else(|| bad("no a=ice-ufrag"))?;
    let pwd = sdp.ice_pwd(transport).ok_or_else(|| bad("no a=ice-pwd"))?;
    let fingerprint = sdp
        .fingerprints(transport)
        .map_err(|e| ClientError::Answer(e.to_string()))?
        .iter()
        .find_map(|f| f.as_sha256())
        .ok_or_else(|| bad("no sha-256 fingerprint"))?;
    let setup = sdp
        .setup(transport)
        .map_err(|e| ClientError::Answer(e.to_string()))?;
    let server_is_dtls_client = match setup {
        Some(Setup::Passive) | None => false,
        Some(Setup::Active) => true,
        Some(_) => return Err(bad("an answer must say setup:active or setup:passive")),
    };
    let address = sdp
        .media
        .iter()
        .filter(|m| m.line.port != 0)
        .flat_map(|m| m.candidates().unwrap_or_default())
        .filter(|c| c.is_udp())
        .find_map(|c| Some(SocketAddr::new(c.address.parse::<IpAddr>().ok()?, c.port)))
        .ok_or_else(|| bad("no UDP candidate with an IP address"))?;

    let mut media = Vec::new();
    for m in sdp.media.iter().filter(|m| m.line.port != 0) {
        let kind = m.kind();
        if !matches!(kind, MediaKind::Audio | MediaKind::Video)
            || m.direction() == Direction::Inactive
        {
            continue;
        }
        let mid = m.mid().ok_or_else(|| bad("an m-section without a=mid"))?;
        let codecs = m.codecs().map_err(|e| ClientError::Answer(e.to_string()))?;
        let main = codecs
            .iter()
            .find(|c| c.name != CodecName::Rtx)
            .ok_or_else(|| bad("an m-section without a codec"))?;
        let rtx = codecs
            .iter()
            .find(|c| c.name == CodecName::Rtx && c.apt() == Some(main.payload_type))
            .map(|c| c.payload_type);
        let extmaps = m
            .extmaps()
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        let ext = |uri: &str| extmaps.iter().find(|e| e.uri == uri).map(|e| e.id);
        let ssrcs = m.ssrcs().map_err(|e| ClientError::Answer(e.to_string()))?;
        let groups = m
            .ssrc_groups()
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        let fid = groups.iter().find(|g| g.semantics == "FID");
        let ssrc = fid
            .and_then(|g| g.ssrcs.first().copied())
            .or_else(|| ssrcs.first().map(|a| a.ssrc));
        let rtx_ssrc = fid.and_then(|g| g.ssrcs.get(1).copied());
        media.push(RemoteMedia {
            kind,
            mid: mid.to_owned(),
            payload_type: main.payload_type,
            rtx_payload_type: rtx,
            clock_rate: main.clock_rate,
            codec: main.name,
            ext_mid: ext(EXT_MID),
            ext_abs_send_time: ext(EXT_ABS_SEND_TIME),
            ext_transport_cc: ext(EXT_TRANSPORT_CC),
            ssrc,
            rtx_ssrc,
        });
    }
    Ok(RemoteDescription {
        ufrag: ufrag.to_owned(),
        pwd: pwd.to_owned(),
        fingerprint,
        server_is_dtls_client,
        address,
        media,
    })
}

/// `AB:CD:…`, the fingerprint notation of RFC 8122 §5.
fn hex_colons(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}
