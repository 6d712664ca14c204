//! Trickle ICE SDP fragments (RFC 8840 §9, media type
//! `application/trickle-ice-sdpfrag`): the body of a WHIP/WHEP PATCH
//! (RFC 9725 §4.3) that carries candidates gathered after the offer.
//!
//! ```text
//! a=ice-ufrag:EsAw
//! a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
//! m=audio 9 UDP/TLS/RTP/SAVPF 0
//! a=mid:0
//! a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host
//! a=end-of-candidates
//! ```
//!
//! The ufrag/pwd may sit at fragment level or under an m= line; they tell
//! which ICE generation the candidates belong to (an ICE restart changes
//! them, RFC 8840). Only `a=` and `m=` lines are allowed; unknown
//! attributes are ignored (RFC 8866 §5.13).

use std::fmt;

use crate::candidate::Candidate;
use crate::session::{Error, MediaLine, MAX_SDP_LEN};

/// A parsed sdpfrag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrickleFragment {
    /// Fragment-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Fragment-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// `a=ice-options` tokens.
    pub ice_options: Vec<String>,
    /// Fragment-level `a=end-of-candidates` (all m-sections are done).
    pub end_of_candidates: bool,
    /// The m= sections in order.
    pub media: Vec<FragmentMedia>,
}

/// One m= section of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentMedia {
    /// The m= line (its port and formats carry no meaning here).
    pub line: MediaLine,
    /// `a=mid`: which m-section of the session the candidates are for.
    pub mid: Option<String>,
    /// Media-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Media-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// New remote candidates.
    pub candidates: Vec<Candidate>,
    /// `a=end-of-candidates` for this m-section.
    pub end_of_candidates: bool,
}

impl TrickleFragment {
    /// Parses a fragment (CRLF or LF line ends, at most [`MAX_SDP_LEN`]).
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_SDP_LEN {
            return Err(Error::TooLarge {
                len: text.len(),
                max: MAX_SDP_LEN,
            });
        }
        let mut frag = TrickleFragment::default();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            if let Some(value) = line.strip_prefix("m=") {
                let line = MediaLine::parse(value, n)?;
                frag.media.push(FragmentMedia {
                    line,
                    mid: None,
                    ice_ufrag: None,
                    ice_pwd: None,
                    candidates: Vec::new(),
                    end_of_candidates: false,
                });
                continue;
            }
            let Some(attr) = line.strip_prefix("a=") else {
                return match line.as_bytes() {
                    [kind, b'=', ..] if kind.is_ascii_lowercase() => Err(Error::Misplaced {
                        line: n,
                        kind: char::from(*kind),
                    }),
                    _ => Err(Error::NotALine { line: n }),
                };
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            match (name, frag.media.last_mut()) {
                ("ice-ufrag", None) => frag.ice_ufrag = Some(value.into()),
                ("ice-ufrag", Some(m)) => m.ice_ufrag = Some(value.into()),
                ("ice-pwd", None) => frag.ice_pwd = Some(value.into()),
                ("ice-pwd", Some(m)) => m.ice_pwd = Some(value.into()),
                ("ice-options", _) => {
                    frag.ice_options = value
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                ("end-of-candidates", None) => frag.end_of_candidates = true,
                ("end-of-candidates", Some(m)) => m.end_of_candidates = true,
                ("mid", Some(m)) => m.mid = Some(value.into()),
                ("candidate", Some(m)) => m.candidates.push(Candidate::parse(value, n)?),
                ("candidate" | "mid", None) => {
                    return Err(Error::field(
                        n,
                        "a=candidate",
                        "must follow an m= line with its a=mid",
                    ))
                }
                _ => {}
            }
        }
        Ok(frag)
    }

    /// The ufrag that applies to `media` (media level, else fragment level).
    pub fn ice_ufrag_for<'a>(&'a self, media: &'a FragmentMedia) -> Option<&'a str> {
        media.ice_ufrag.as_deref().or(self.ice_ufrag.as_deref())
    }

    /// Every candidate with the mid it is for.
    pub fn candidates(&self) -> impl Iterator<Item = (Option<&str>, &Candidate)> {
        self.media
            .iter()
            .flat_map(|m| m.candidates.iter().map(move |c| (m.mid.as_deref(), c)))
    }

    /// Whether gathering is complete for the whole session or for every
    /// m-section listed.
    pub fn is_end_of_candidates(&self) -> bool {
        self.end_of_candidates
            || (!self.media.is_empty() && self.media.iter().all(|m| m.end_of_candidates))
    }
}

/// Writes the fragment back (CRLF).
impl fmt::Display for TrickleFragment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.ice_options.is_empty() {
            write!(f, "a=ice-options:{}\r\n", self.ice_options.join(" "))?;
        }
        if let Some(u) = &self.ice_ufrag {
            write!(f, "a=ice-ufrag:{u}\r\n")?;
        }
        if let Some(p) = &self.ice_pwd {
            write!(f, "a=ice-pwd:{p}\r\n")?;
        }
        if self.end_of_candidates {
            f.write_str("a=end-of-candidates\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={}\r\n", m.line)?;
            if let Some(mid) = &m.mid {
                write!(f, "a=mid:{mid}\r\n")?;
            }
            if let Some(u) = &m.ice_ufrag {
                write!(f, "a=ice-ufrag:{u}\r\n")?;
            }
            if let Some(p) = &m.ice_pwd {
                write!(f, "a=ice-pwd:{p}\r\n")?;
            }
            for c in &m.candidates {
                write!(f, "a=candidate:{c}\r\n")?;
            }
            if m.end_of_candidates {
                f.write_str("a=end-of-candidates\r\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of RFC 9725 §4.3's PATCH example (addresses are ours).
    const PATCH: &str = "a=ice-options:trickle ice2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=ice-ufrag:EsAw\r\n\
        a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
        a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
        a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
        a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn parses_a_whip_patch_body() {
        let f = TrickleFragment::parse(PATCH).unwrap();
        assert_eq!(f.ice_options, ["trickle", "ice2"]);
        assert_eq!(f.media.len(), 1);
        let m = &f.media[0];
        assert_eq!(m.mid.as_deref(), Some("0"));
        assert_eq!(f.ice_ufrag_for(m), Some("EsAw"));
        assert_eq!(m.ice_pwd.as_deref(), Some("bP+XJMM09aR8AiX1jdukzR6Y"));
        assert_eq!(m.candidates.len(), 3);
        assert_eq!(m.candidates[1].port, 61765);
        assert!(f.is_end_of_candidates());
        let all: Vec<_> = f.candidates().map(|(mid, c)| (mid, c.port)).collect();
        assert_eq!(
            all,
            [(Some("0"), 61764), (Some("0"), 61765), (Some("0"), 9)]
        );
        assert_eq!(f.to_string(), PATCH);
    }

    #[test]
    fn session_level_credentials_and_end_of_candidates() {
        let text = "a=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\na=end-of-candidates\n";
        let f = TrickleFragment::parse(text).unwrap();
        assert_eq!(f.ice_ufrag.as_deref(), Some("abcd"));
        assert!(f.media.is_empty());
        assert!(f.is_end_of_candidates());
        assert_eq!(
            TrickleFragment::parse("").unwrap(),
            TrickleFragment::default()
        );
    }

    #[test]
    fn rejects_what_is_not_a_fragment() {
        assert_eq!(
            TrickleFragment::parse("v=0\r\n"),
            Err(Error::Misplaced { line: 1, kind: 'v' })
        );
        assert_eq!(
            TrickleFragment::parse("hello"),
            Err(Error::NotALine { line: 1 })
        );
        assert!(matches!(
            TrickleFragment::parse("a=candidate:1 1 udp 1 1.2.3.4 9 typ host\r\n"),
            Err(Error::Field { line: 1, .. })
        ));
        let bad = PATCH.replace("61765 typ", "61765 type");
        assert!(matches!(
            TrickleFragment::parse(&bad),
            Err(Error::Field {
                line: 7,
                what: "a=candidate",
                ..
            })
        ));
        assert!(matches!(
            TrickleFragment::parse("m=audio x UDP 0\r\n"),
            Err(Error::Field {
                line: 1,
                what: "m=",
                ..
            })
        ));
        assert!(matches!(
            TrickleFragment::parse(&"a=x\r\n".repeat(20_000)),
            Err(Error::TooLarge { .. })
        ));
    }
}
