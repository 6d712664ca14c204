//! The WebRTC subset of SDP as typed values: what JSEP (RFC 8829) offers
//! from browsers carry and what a WHIP/WHEP media server must understand.
//!
//! | attribute | RFC |
//! |---|---|
//! | `group:BUNDLE`, `mid` | RFC 8843, RFC 5888 |
//! | `sendrecv`/`sendonly`/`recvonly`/`inactive` | RFC 8866 §6.7 |
//! | `ice-ufrag`, `ice-pwd`, `ice-options`, `ice-lite`, `candidate`, `end-of-candidates` | RFC 8839 §5 |
//! | `fingerprint` | RFC 8122 §5 |
//! | `setup` | RFC 4145 §4, RFC 8842 |
//! | `rtcp-mux`, `rtcp-rsize` | RFC 8858, RFC 5506 |
//! | `extmap` | RFC 8285 §8 |
//! | `ssrc`, `ssrc-group` | RFC 5576 §4 |
//! | `msid`, `msid-semantic` | RFC 8830 §2 (and Chromium's legacy `msid-semantic`) |
//!
//! Payload formats (`rtpmap`, `fmtp`, `rtcp-fb`) are in [`crate::codec`].
//!
//! The values stay as text in [`crate::session`]; the accessors here parse
//! them on demand and report a line-numbered [`Error`] when one is broken.
//! Transport attributes (`ice-*`, `fingerprint`, `setup`) may sit at session
//! or media level; the media level wins, as RFC 8839 §5.4 and RFC 8122 §5
//! say.

use std::fmt;

use crate::candidate::Candidate;
use crate::session::{Attribute, Error, Media, SessionDescription};

/// What an m-section carries (RFC 8866 §5.14 `<media>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `application` (data channels).
    Application,
    /// Anything else (`text`, `message`, ...).
    Other,
}

impl MediaKind {
    /// The `<media>` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Application => "application",
            Self::Other => "other",
        }
    }
}

/// Media direction (RFC 8866 §6.7; RFC 3264 §6 for how an answer flips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (the default when none is given).
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The same stream seen from the other end: what the offerer sends, the
    /// answerer receives.
    pub fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    /// Whether this end sends.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether this end receives.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

/// DTLS role negotiation (RFC 4145 §4 values; RFC 8842 §5 for DTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `active`: this end starts the DTLS handshake.
    Active,
    /// `passive`: this end waits for the handshake.
    Passive,
    /// `actpass`: either; offers must use this (RFC 8842 §5).
    ActPass,
    /// `holdconn`.
    HoldConn,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::ActPass => "actpass",
            Self::HoldConn => "holdconn",
        }
    }
}

/// A certificate fingerprint (RFC 8122 §5): hash function name and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function, lowercase (`sha-256`).
    pub algorithm: String,
    /// The digest bytes.
    pub bytes: Vec<u8>,
}

impl Fingerprint {
    /// A SHA-256 fingerprint.
    pub fn sha256(digest: [u8; 32]) -> Self {
        Self {
            algorithm: "sha-256".into(),
            bytes: digest.to_vec(),
        }
    }

    /// The SHA-256 digest, if this is one.
    pub fn as_sha256(&self) -> Option<[u8; 32]> {
        if self.algorithm != "sha-256" {
            return None;
        }
        self.bytes.as_slice().try_into().ok()
    }

    /// Parses `<hash-func> <XX:XX:...>`.
    pub fn parse(value: &str, line: usize) -> Result<Self, Error> {
        let err = |reason| Error::field(line, "a=fingerprint", reason);
        let (algorithm, hex) = value
            .trim()
            .split_once(' ')
            .ok_or(err("expected <hash function> <hex>"))?;
        let algorithm = algorithm.to_ascii_lowercase();
        if algorithm.is_empty() {
            return Err(err("no hash function"));
        }
        // SHA-512 is the longest digest in the RFC 8122 registry.
        if hex.len() > 64 * 3 {
            return Err(err("digest longer than 64 bytes"));
        }
        let bytes = hex
            .split(':')
            .map(|pair| match pair.as_bytes() {
                [hi, lo] => Some((hex_digit(*hi)? << 4) | hex_digit(*lo)?),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(err("digest is not colon-separated pairs of hex digits"))?;
        if algorithm == "sha-256" && bytes.len() != 32 {
            return Err(err("a sha-256 digest is 32 bytes"));
        }
        Ok(Self { algorithm, bytes })
    }
}

pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.algorithm)?;
        for (i, b) in self.bytes.iter().enumerate() {
            let sep = if i == 0 { ' ' } else { ':' };
            write!(f, "{sep}{b:02X}")?;
        }
        Ok(())
    }
}

/// `a=extmap` (RFC 8285 §8): `<id>[/<direction>] <uri> [<attributes>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    /// Extension id: 1-14 fit the one-byte header, up to 255 the two-byte one.
    pub id: u8,
    /// Optional direction.
    pub direction: Option<Direction>,
    /// Extension URI.
    pub uri: String,
    /// Extension attributes, if any.
    pub attributes: Option<String>,
}

impl Extmap {
    /// Parses the attribute value.
    pub fn parse(value: &str, line: usize) -> Result<Self, Error> {
        let err = |reason| Error::field(line, "a=extmap", reason);
        let (head, rest) = value.split_once(' ').ok_or(err("expected <id> <uri>"))?;
        let (id, direction) = match head.split_once('/') {
            Some((id, dir)) => (
                id,
                Some(Direction::from_name(dir).ok_or(err("unknown direction"))?),
            ),
            None => (head, None),
        };
        let id = id
            .parse::<u8>()
            .ok()
            .filter(|id| *id >= 1)
            .ok_or(err("id is not 1-255"))?;
        let (uri, attributes) = match rest.split_once(' ') {
            Some((u, a)) => (u, Some(a.to_owned())),
            None => (rest, None),
        };
        if uri.is_empty() {
            return Err(err("no URI"));
        }
        Ok(Self {
            id,
            direction,
            uri: uri.into(),
            attributes,
        })
    }
}

impl fmt::Display for Extmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(d) = self.direction {
            write!(f, "/{}", d.as_str())?;
        }
        write!(f, " {}", self.uri)?;
        if let Some(a) = &self.attributes {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// `a=ssrc` (RFC 5576 §4.1): `<ssrc> <attribute>[:<value>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcAttribute {
    /// The SSRC.
    pub ssrc: u32,
    /// `cname`, `msid`, ...
    pub name: String,
    /// The value after `:`.
    pub value: Option<String>,
}

/// `a=ssrc-group` (RFC 5576 §4.2), e.g. `FID <media> <rtx>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// `FID`, `SIM`, `FEC-FR`, ...
    pub semantics: String,
    /// The SSRCs in order.
    pub ssrcs: Vec<u32>,
}

/// `a=msid` (RFC 8830 §2): stream id and optional track id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// The MediaStream id (`-` for none).
    pub stream: String,
    /// The track id.
    pub track: Option<String>,
}

/// `a=group` (RFC 5888 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `BUNDLE`, `LS`, ...
    pub semantics: String,
    /// The identification tags (mids).
    pub mids: Vec<String>,
}

/// `a=msid-semantic` (Chromium's session-level `WMS` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsidSemantic {
    /// `WMS`.
    pub semantic: String,
    /// Stream ids (may be empty).
    pub ids: Vec<String>,
}

impl Media {
    /// The `<media>` of the m= line.
    pub fn kind(&self) -> MediaKind {
        match self.line.media.as_str() {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "application" => MediaKind::Application,
            _ => MediaKind::Other,
        }
    }

    /// `a=mid`.
    pub fn mid(&self) -> Option<&str> {
        self.attribute("mid").and_then(|a| a.value.as_deref())
    }

    /// The direction attribute; `sendrecv` when absent (RFC 8866 §6.7).
    /// The last one wins if several are present.
    pub fn direction(&self) -> Direction {
        self.attributes
            .iter()
            .rev()
            .filter(|a| a.value.is_none())
            .find_map(|a| Direction::from_name(&a.name))
            .unwrap_or(Direction::SendRecv)
    }

    /// `a=rtcp-mux` (RFC 8858).
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// `a=rtcp-rsize` (RFC 5506).
    pub fn rtcp_rsize(&self) -> bool {
        self.has_attribute("rtcp-rsize")
    }

    /// `a=end-of-candidates` (RFC 8840).
    pub fn end_of_candidates(&self) -> bool {
        self.has_attribute("end-of-candidates")
    }

    /// `a=candidate` lines.
    pub fn candidates(&self) -> Result<Vec<Candidate>, Error> {
        self.attributes_named("candidate")
            .map(|a| Candidate::parse(a.value_str(), a.line))
            .collect()
    }

    /// `a=extmap` lines.
    pub fn extmaps(&self) -> Result<Vec<Extmap>, Error> {
        self.attributes_named("extmap")
            .map(|a| Extmap::parse(a.value_str(), a.line))
            .collect()
    }

    /// `a=msid`.
    pub fn msid(&self) -> Result<Option<Msid>, Error> {
        let Some(a) = self.attribute("msid") else {
            return Ok(None);
        };
        let mut f = a.value_str().split(' ').filter(|s| !s.is_empty());
        let stream = f
            .next()
            .ok_or(Error::field(a.line, "a=msid", "no stream id"))?;
        Ok(Some(Msid {
            stream: stream.into(),
            track: f.next().map(str::to_owned),
        }))
    }

    /// `a=ssrc` lines.
    pub fn ssrcs(&self) -> Result<Vec<SsrcAttribute>, Error> {
        self.attributes_named("ssrc")
            .map(|a| {
                let err = |reason| Error::field(a.line, "a=ssrc", reason);
                let (ssrc, attr) = a
                    .value_str()
                    .split_once(' ')
                    .ok_or(err("expected <ssrc> <attribute>"))?;
                let ssrc = ssrc
                    .parse()
                    .map_err(|_| err("ssrc is not a 32-bit number"))?;
                let (name, value) = match attr.split_once(':') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (attr, None),
                };
                Ok(SsrcAttribute {
                    ssrc,
                    name: name.into(),
                    value,
                })
            })
            .collect()
    }

    /// `a=ssrc-group` lines.
    pub fn ssrc_groups(&self) -> Result<Vec<SsrcGroup>, Error> {
        self.attributes_named("ssrc-group")
            .map(|a| {
                let err = |reason| Error::field(a.line, "a=ssrc-group", reason);
                let mut f = a.value_str().split(' ');
                let semantics = f.next().filter(|s| !s.is_empty()).ok_or(err("empty"))?;
                let ssrcs = f
                    .map(|s| s.parse::<u32>())
                    .collect::<Result<Vec<u32>, _>>()
                    .map_err(|_| err("ssrc is not a 32-bit number"))?;
                Ok(SsrcGroup {
                    semantics: semantics.into(),
                    ssrcs,
                })
            })
            .collect()
    }
}

impl SessionDescription {
    /// The attribute `name` of `media`, falling back to session level.
    fn transport_attribute<'a>(&'a self, media: &'a Media, name: &str) -> Option<&'a Attribute> {
        media.attribute(name).or_else(|| self.attribute(name))
    }

    /// `a=ice-ufrag` for `media` (media level, else session level).
    pub fn ice_ufrag<'a>(&'a self, media: &'a Media) -> Option<&'a str> {
        self.transport_attribute(media, "ice-ufrag")
            .and_then(|a| a.value.as_deref())
    }

    /// `a=ice-pwd` for `media` (media level, else session level).
    pub fn ice_pwd<'a>(&'a self, media: &'a Media) -> Option<&'a str> {
        self.transport_attribute(media, "ice-pwd")
            .and_then(|a| a.value.as_deref())
    }

    /// `a=ice-options` tokens for `media` (media level, else session level).
    pub fn ice_options<'a>(&'a self, media: &'a Media) -> impl Iterator<Item = &'a str> {
        self.transport_attribute(media, "ice-options")
            .map(|a| a.value_str())
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// `a=ice-lite` at session level (RFC 8839 §5.3).
    pub fn ice_lite(&self) -> bool {
        self.attribute("ice-lite").is_some()
    }

    /// `a=fingerprint` lines for `media` (media level if any there, else
    /// session level).
    pub fn fingerprints(&self, media: &Media) -> Result<Vec<Fingerprint>, Error> {
        let attrs: Vec<&Attribute> = if media.has_attribute("fingerprint") {
            media.attributes_named("fingerprint").collect()
        } else {
            self.attributes_named("fingerprint").collect()
        };
        attrs
            .into_iter()
            .map(|a| Fingerprint::parse(a.value_str(), a.line))
            .collect()
    }

    /// `a=setup` for `media` (media level, else session level).
    pub fn setup(&self, media: &Media) -> Result<Option<Setup>, Error> {
        let Some(a) = self.transport_attribute(media, "setup") else {
            return Ok(None);
        };
        match a.value_str() {
            "active" => Ok(Some(Setup::Active)),
            "passive" => Ok(Some(Setup::Passive)),
            "actpass" => Ok(Some(Setup::ActPass)),
            "holdconn" => Ok(Some(Setup::HoldConn)),
            _ => Err(Error::field(
                a.line,
                "a=setup",
                "not active, passive, actpass or holdconn",
            )),
        }
    }

    /// `a=group` lines.
    pub fn groups(&self) -> Vec<Group> {
        self.attributes_named("group")
            .map(|a| {
                let mut f = a.value_str().split(' ').filter(|s| !s.is_empty());
                Group {
                    semantics: f.next().unwrap_or("").into(),
                    mids: f.map(str::to_owned).collect(),
                }
            })
            .collect()
    }

    /// The mids of the first `a=group:BUNDLE` (JSEP offers
    /// carry one group).
    pub fn bundle(&self) -> Option<Vec<String>> {
        self.groups()
            .into_iter()
            .find(|g| g.semantics == "BUNDLE")
            .map(|g| g.mids)
    }

    /// `a=msid-semantic`.
    pub fn msid_semantic(&self) -> Option<MsidSemantic> {
        let a = self.attribute("msid-semantic")?;
        let mut f = a.value_str().split(' ').filter(|s| !s.is_empty());
        Some(MsidSemantic {
            semantic: f.next()?.into(),
            ids: f.map(str::to_owned).collect(),
        })
    }

    /// The media section with `a=mid:<mid>`.
    pub fn media_by_mid(&self, mid: &str) -> Option<&Media> {
        self.media.iter().find(|m| m.mid() == Some(mid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_hex_parses_and_prints() {
        let text = "sha-256 B7:99:5D:44:A1:E5:19:A1:02:E3:FA:42:EA:EF:5C:26:44:BF:98:89:BB:EB:A9:DC:7D:3D:21:FA:2C:5D:13:49";
        let fp = Fingerprint::parse(text, 1).unwrap();
        let digest = fp.as_sha256().unwrap();
        assert_eq!(digest[0], 0xB7);
        assert_eq!(digest[31], 0x49);
        assert_eq!(fp.to_string(), text);
        assert_eq!(Fingerprint::sha256(digest), fp);
        // Upper-case algorithm names are the same function (RFC 8122 §5).
        let upper = Fingerprint::parse(&text.replace("sha-256", "SHA-256"), 1).unwrap();
        assert_eq!(upper, fp);
    }

    #[test]
    fn bad_fingerprints_are_errors() {
        for bad in [
            "",
            "sha-256",
            "sha-256 B7:99",
            "sha-256 G7:99:5D:44:A1:E5:19:A1:02:E3:FA:42:EA:EF:5C:26:44:BF:98:89:BB:EB:A9:DC:7D:3D:21:FA:2C:5D:13:49",
            "sha-256 B799:5D",
            "sha-256 B7::99",
            "sha-1 é7:99",
        ] {
            let e = Fingerprint::parse(bad, 4).unwrap_err();
            assert!(e.to_string().starts_with("line 4: bad a=fingerprint"), "{bad}: {e}");
        }
        let sha1 = Fingerprint::parse("sha-1 00:11:22", 1).unwrap();
        assert_eq!(sha1.as_sha256(), None);
    }

    #[test]
    fn extmap_with_direction_and_attributes() {
        let e = Extmap::parse("3/recvonly urn:x:y attr1", 1).unwrap();
        assert_eq!(e.id, 3);
        assert_eq!(e.direction, Some(Direction::RecvOnly));
        assert_eq!(e.uri, "urn:x:y");
        assert_eq!(e.attributes.as_deref(), Some("attr1"));
        assert_eq!(e.to_string(), "3/recvonly urn:x:y attr1");
        assert!(Extmap::parse("0 urn:x", 1).is_err());
        assert!(Extmap::parse("256 urn:x", 1).is_err());
        assert!(Extmap::parse("1/sideways urn:x", 1).is_err());
        assert!(Extmap::parse("1", 1).is_err());
    }

    fn media(text: &str) -> SessionDescription {
        let sdp = format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{text}");
        SessionDescription::parse(&sdp).unwrap()
    }

    #[test]
    fn transport_attributes_fall_back_to_session_level() {
        let sd = media(
            "a=ice-ufrag:sess\r\na=setup:actpass\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:med1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=setup:active\r\n",
        );
        assert_eq!(sd.ice_ufrag(&sd.media[0]), Some("med1"));
        assert_eq!(sd.ice_ufrag(&sd.media[1]), Some("sess"));
        assert_eq!(sd.setup(&sd.media[0]).unwrap(), Some(Setup::ActPass));
        assert_eq!(sd.setup(&sd.media[1]).unwrap(), Some(Setup::Active));
        assert_eq!(sd.ice_pwd(&sd.media[0]), None);
    }

    #[test]
    fn direction_flips() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        assert!(Direction::SendOnly.sends() && !Direction::SendOnly.receives());
    }
}
