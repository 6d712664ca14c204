//! RTP payload formats as offered: `a=rtpmap` (RFC 8866 §6.6), `a=fmtp`
//! (§6.15) and `a=rtcp-fb` (RFC 4585 §4.2) gathered per payload type into
//! a [`Codec`], with the format parameters WebRTC negotiates: H.264
//! `packetization-mode` and `profile-level-id` (RFC 6184 §8.1), VP9
//! `profile-id`, RTX `apt` (RFC 4588 §8.6).

use crate::attributes::hex_digit;
use crate::session::{Attribute, Error, Media};

/// Codec families the server knows by name (matched case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// Opus (RFC 7587).
    Opus,
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// AV1.
    Av1,
    /// Retransmission (RFC 4588).
    Rtx,
    /// Redundant coding (RFC 2198).
    Red,
    /// ULP FEC (RFC 5109).
    Ulpfec,
    /// Anything else (G722, PCMU, telephone-event, ...).
    Other,
}

impl CodecName {
    fn from_encoding(name: &str) -> Self {
        const NAMES: [(&str, CodecName); 8] = [
            ("opus", CodecName::Opus),
            ("VP8", CodecName::Vp8),
            ("VP9", CodecName::Vp9),
            ("H264", CodecName::H264),
            ("AV1", CodecName::Av1),
            ("rtx", CodecName::Rtx),
            ("red", CodecName::Red),
            ("ulpfec", CodecName::Ulpfec),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(Self::Other, |(_, c)| *c)
    }
}

/// `a=rtcp-fb` (RFC 4585 §4.2): `<pt|*> <type> [<parameter>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFeedback {
    /// The payload type, `None` for `*` (all).
    pub payload_type: Option<u8>,
    /// `nack`, `ccm`, `transport-cc`, `goog-remb`, ...
    pub typ: String,
    /// `pli` for `nack pli`, `fir` for `ccm fir`.
    pub parameter: Option<String>,
}

impl RtcpFeedback {
    /// Parses the attribute value.
    pub fn parse(value: &str, line: usize) -> Result<Self, Error> {
        let err = |reason| Error::field(line, "a=rtcp-fb", reason);
        let mut f = value.split(' ').filter(|s| !s.is_empty());
        let pt = f.next().ok_or(err("empty"))?;
        let payload_type = match pt {
            "*" => None,
            pt => Some(parse_pt(pt).ok_or(err("payload type is not 0-127 or *"))?),
        };
        let typ = f.next().ok_or(err("no feedback type"))?.to_owned();
        let rest: Vec<&str> = f.collect();
        let parameter = (!rest.is_empty()).then(|| rest.join(" "));
        Ok(Self {
            payload_type,
            typ,
            parameter,
        })
    }

    /// The value without the payload type, e.g. `nack pli`.
    pub fn feedback(&self) -> String {
        match &self.parameter {
            Some(p) => format!("{} {p}", self.typ),
            None => self.typ.clone(),
        }
    }
}

fn parse_pt(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// One RTP payload format: `rtpmap` + `fmtp` + `rtcp-fb` for one payload
/// type, gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type.
    pub payload_type: u8,
    /// The family, from the encoding name.
    pub name: CodecName,
    /// Encoding name as written (`opus`, `VP8`, `H264`, `rtx`).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels (`/2` for Opus), if given.
    pub channels: Option<u16>,
    /// The `fmtp` parameters, as written.
    pub fmtp: Option<String>,
    /// Feedback for this payload type (including `*` entries).
    pub feedback: Vec<RtcpFeedback>,
}

impl Codec {
    /// One `key=value` of the fmtp line (`;`-separated, keys compared
    /// case-insensitively).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .as_deref()?
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    }

    /// H.264 packetization-mode (RFC 6184 §8.1; 0 when absent).
    pub fn packetization_mode(&self) -> Option<u8> {
        match self.fmtp_param("packetization-mode") {
            None => Some(0),
            Some(v) => v.parse().ok(),
        }
    }

    /// H.264 profile-level-id as 3 bytes (profile_idc, profile-iop,
    /// level_idc). RFC 6184 §8.1: absent means `42000A`. `None` if malformed.
    pub fn profile_level_id(&self) -> Option<[u8; 3]> {
        let v = self.fmtp_param("profile-level-id").unwrap_or("42000A");
        let b = v.as_bytes();
        if b.len() != 6 {
            return None;
        }
        let byte = |i: usize| Some((hex_digit(*b.get(i)?)? << 4) | hex_digit(*b.get(i + 1)?)?);
        Some([byte(0)?, byte(2)?, byte(4)?])
    }

    /// VP9 profile-id (0 when absent).
    pub fn vp9_profile_id(&self) -> Option<u8> {
        match self.fmtp_param("profile-id") {
            None => Some(0),
            Some(v) => v.parse().ok(),
        }
    }

    /// RTX: the associated payload type (`apt=`, RFC 4588 §8.6).
    pub fn apt(&self) -> Option<u8> {
        self.fmtp_param("apt").and_then(parse_pt)
    }

    /// Whether this payload type has the feedback `typ [parameter]`.
    pub fn has_feedback(&self, typ: &str, parameter: Option<&str>) -> bool {
        self.feedback
            .iter()
            .any(|f| f.typ == typ && f.parameter.as_deref() == parameter)
    }
}

impl Media {
    /// The RTP payload formats of the m= line with their `rtpmap`, `fmtp`
    /// and `rtcp-fb`, in the m= line's (preference) order. Formats without
    /// an `rtpmap` (static payload types) are left out: none of them is a
    /// codec this server forwards.
    pub fn codecs(&self) -> Result<Vec<Codec>, Error> {
        // One pass over the attributes into per-payload-type slots, so the
        // work stays linear however many formats and lines an offer has.
        let mut rtpmaps: [Option<&Attribute>; 128] = [None; 128];
        let mut fmtps: [Option<&str>; 128] = [None; 128];
        let mut feedback = Vec::new();
        for a in &self.attributes {
            let slot = |v: &str| {
                v.split_once(' ')
                    .and_then(|(pt, _)| parse_pt(pt))
                    .map(usize::from)
            };
            match a.name.as_str() {
                "rtpmap" => {
                    if let Some(s) = slot(a.value_str()).and_then(|i| rtpmaps.get_mut(i)) {
                        s.get_or_insert(a);
                    }
                }
                "fmtp" => {
                    if let Some(s) = slot(a.value_str()).and_then(|i| fmtps.get_mut(i)) {
                        if let Some((_, params)) = a.value_str().split_once(' ') {
                            s.get_or_insert(params);
                        }
                    }
                }
                "rtcp-fb" => feedback.push(RtcpFeedback::parse(a.value_str(), a.line)?),
                _ => {}
            }
        }

        let mut codecs = Vec::new();
        let mut seen = [false; 128];
        for pt in self.line.formats.iter().filter_map(|f| parse_pt(f)) {
            let i = usize::from(pt);
            let (Some(map), Some(seen)) = (rtpmaps.get(i).copied().flatten(), seen.get_mut(i))
            else {
                continue;
            };
            if std::mem::replace(seen, true) {
                continue;
            }
            let err = |reason| Error::field(map.line, "a=rtpmap", reason);
            let (_, spec) = map
                .value_str()
                .split_once(' ')
                .ok_or(err("expected <pt> <encoding>/<clock rate>"))?;
            let mut parts = spec.trim().split('/');
            let encoding = parts
                .next()
                .filter(|e| !e.is_empty())
                .ok_or(err("no encoding"))?;
            let clock_rate = parts
                .next()
                .and_then(|c| c.parse::<u32>().ok())
                .ok_or(err("clock rate is not a number"))?;
            let channels = parts
                .next()
                .map(|c| {
                    c.parse::<u16>()
                        .map_err(|_| err("channels is not a number"))
                })
                .transpose()?;
            codecs.push(Codec {
                payload_type: pt,
                name: CodecName::from_encoding(encoding),
                encoding: encoding.into(),
                clock_rate,
                channels,
                fmtp: fmtps.get(i).copied().flatten().map(str::to_owned),
                feedback: feedback
                    .iter()
                    .filter(|f| f.payload_type.is_none() || f.payload_type == Some(pt))
                    .cloned()
                    .collect(),
            });
        }
        Ok(codecs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionDescription;

    fn media(text: &str) -> SessionDescription {
        let sdp = format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{text}");
        SessionDescription::parse(&sdp).unwrap()
    }

    #[test]
    fn rtcp_fb_parses_wildcard_and_parameter() {
        let f = RtcpFeedback::parse("* ccm fir", 1).unwrap();
        assert_eq!(f.payload_type, None);
        assert_eq!(f.feedback(), "ccm fir");
        let f = RtcpFeedback::parse("96 nack", 1).unwrap();
        assert_eq!(f.payload_type, Some(96));
        assert_eq!(f.parameter, None);
        assert!(RtcpFeedback::parse("128 nack", 1).is_err());
        assert!(RtcpFeedback::parse("96", 1).is_err());
    }

    #[test]
    fn codecs_gather_rtpmap_fmtp_and_feedback_in_format_order() {
        let sd = media(
            "m=video 9 UDP/TLS/RTP/SAVPF 97 96 96 0 x\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
             a=rtcp-fb:* nack\r\na=rtcp-fb:96 ccm fir\r\n",
        );
        let codecs = sd.media[0].codecs().unwrap();
        // Duplicates and formats without rtpmap (0, x) are left out.
        let pts: Vec<u8> = codecs.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, [97, 96]);
        assert_eq!(codecs[0].apt(), Some(96));
        assert!(codecs[0].has_feedback("nack", None));
        assert!(!codecs[0].has_feedback("ccm", Some("fir")));
        assert!(codecs[1].has_feedback("ccm", Some("fir")));
        assert_eq!(codecs[1].fmtp, None);
    }

    #[test]
    fn broken_rtpmap_is_an_error_with_its_line() {
        let sd = media("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/fast\r\n");
        let e = sd.media[0].codecs().unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 6: bad a=rtpmap: clock rate is not a number"
        );
    }

    #[test]
    fn h264_parameters() {
        let sd = media(
            "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=rtpmap:102 H264/90000\r\n\
             a=fmtp:102 level-asymmetry-allowed=1; packetization-mode=1;profile-level-id=42e01f\r\n\
             a=rtpmap:103 H264/90000\r\n",
        );
        let c = sd.media[0].codecs().unwrap();
        assert_eq!(c[0].packetization_mode(), Some(1));
        assert_eq!(c[0].profile_level_id(), Some([0x42, 0xe0, 0x1f]));
        // RFC 6184 §8.1 defaults: packetization-mode 0, profile-level-id 42000A.
        assert_eq!(c[1].packetization_mode(), Some(0));
        assert_eq!(c[1].profile_level_id(), Some([0x42, 0x00, 0x0a]));
    }
}
