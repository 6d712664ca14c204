//! The SDP text format: a session description as typed lines (RFC 8866 §5),
//! parsed from text and written back.
//!
//! This layer knows the grammar of every line type and keeps every
//! attribute, known or not, in order, so a description survives a round
//! trip. The WebRTC meaning of attributes lives in [`crate::attributes`].
//!
//! Parsing is bounded: input over [`MAX_SDP_LEN`] is refused before any
//! work, and every error names the line and field that is wrong, in words
//! fit for an HTTP 400 body.

use std::fmt;

/// The largest SDP accepted. Browser offers are 3–10 KiB; a limit keeps a
/// WHIP endpoint from parsing megabytes for an attacker.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Why a description (or one of its attributes) cannot be used.
///
/// `Display` is a sentence meant for the body of an HTTP 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is longer than [`MAX_SDP_LEN`].
    #[error("SDP is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Input length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first line is not `v=0` (RFC 8866 §5.1).
    #[error("SDP must start with the line v=0")]
    MissingVersion,
    /// A mandatory session-level line is absent.
    #[error("SDP has no {0}= line")]
    MissingLine(char),
    /// A line is not `<type>=<value>` with a lowercase letter type.
    #[error("line {line}: not an SDP line (expected <letter>=<value>)")]
    NotALine {
        /// 1-based line number.
        line: usize,
    },
    /// A line type that may not appear where it does.
    #[error("line {line}: {kind}= is not allowed here")]
    Misplaced {
        /// 1-based line number.
        line: usize,
        /// The line type.
        kind: char,
    },
    /// A line or attribute whose value breaks its grammar.
    #[error("line {line}: bad {what}: {reason}")]
    Field {
        /// 1-based line number (0 for an attribute built in code).
        line: usize,
        /// Which line or attribute, e.g. `m=` or `a=fingerprint`.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn field(line: usize, what: &'static str, reason: &'static str) -> Self {
        Self::Field { line, what, reason }
    }
}

/// `o=` (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The user name, `-` when there is none.
    pub username: String,
    /// Numeric session id (kept as text: browsers send 19-digit values and
    /// the grammar allows more than `u64`).
    pub session_id: String,
    /// Session version, incremented on each change.
    pub session_version: String,
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Unicast address of the originator.
    pub address: String,
}

/// `c=` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Connection address (with any `/ttl/count` suffix, kept as written).
    pub address: String,
}

impl Connection {
    /// `IN IP4 0.0.0.0`, the placeholder JSEP uses (RFC 8829 §5.2.1).
    pub fn unspecified() -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: "0.0.0.0".into(),
        }
    }
}

/// `t=` with its `r=` lines (RFC 8866 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds), 0 for unbounded.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for unbounded.
    pub stop: u64,
    /// `r=` values, kept as text.
    pub repeats: Vec<String>,
}

/// One `a=` line (RFC 8866 §5.13): `a=name` or `a=name:value`.
///
/// Equality compares name and value only, not the source line.
#[derive(Debug, Clone, Eq)]
pub struct Attribute {
    /// The attribute name, e.g. `rtpmap`.
    pub name: String,
    /// Everything after the first `:`, if there was one.
    pub value: Option<String>,
    /// 1-based line of the input it came from; 0 when built in code. Used
    /// for error messages only; not part of equality.
    pub line: usize,
}

impl PartialEq for Attribute {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl Attribute {
    /// A property attribute (`a=name`).
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.into(),
            value: None,
            line: 0,
        }
    }

    /// A value attribute (`a=name:value`).
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
            line: 0,
        }
    }

    /// The value, or "" for a property attribute.
    pub fn value_str(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// `m=` line fields (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `video`, `application`, ...
    pub media: String,
    /// Transport port; 0 marks a rejected or bundle-only section.
    pub port: u16,
    /// Optional `/<number of ports>`.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `UDP/TLS/RTP/SAVPF`.
    pub proto: String,
    /// Media formats: RTP payload types for RTP, names otherwise.
    pub formats: Vec<String>,
}

/// One media description: an `m=` line and the lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The `m=` line.
    pub line: MediaLine,
    /// `i=`.
    pub info: Option<String>,
    /// `c=` lines.
    pub connections: Vec<Connection>,
    /// `b=` lines, as written after `b=`.
    pub bandwidths: Vec<String>,
    /// `k=` (obsolete; kept for round trip).
    pub key: Option<String>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// A media description with no lines under its `m=` line.
    pub fn new(line: MediaLine) -> Self {
        Self {
            line,
            info: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }
}

/// A whole session description (RFC 8866 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`.
    pub name: String,
    /// `i=`.
    pub info: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<String>,
    /// `t=` lines (at least one).
    pub timings: Vec<Timing>,
    /// `z=`.
    pub zone: Option<String>,
    /// `k=`.
    pub key: Option<String>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
    /// Media descriptions in order.
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Parses SDP text. Accepts CRLF or bare LF line ends (RFC 8866 §5 asks
    /// parsers to accept LF) and enforces the line order of §5 loosely: `v=`
    /// first, `o=`, `s=`, `t=` present once at session level, media-only
    /// line types only under an `m=`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_SDP_LEN {
            return Err(Error::TooLarge {
                len: text.len(),
                max: MAX_SDP_LEN,
            });
        }
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.is_empty());

        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(Error::MissingVersion),
        }

        let mut origin = None;
        let mut name = None;
        let mut sd = SessionDescription {
            origin: Origin {
                username: String::new(),
                session_id: String::new(),
                session_version: String::new(),
                net_type: String::new(),
                addr_type: String::new(),
                address: String::new(),
            },
            name: String::new(),
            info: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: Vec::new(),
            zone: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };

        for (n, raw) in lines {
            let (kind, value) = split_line(n, raw)?;
            if let Some(media) = sd.media.last_mut() {
                match kind {
                    'm' => sd.media.push(Media::new(MediaLine::parse(value, n)?)),
                    'i' if media.info.is_none() => media.info = Some(value.into()),
                    'c' => media.connections.push(parse_connection(n, value)?),
                    'b' => media.bandwidths.push(value.into()),
                    'k' if media.key.is_none() => media.key = Some(value.into()),
                    'a' => media.attributes.push(parse_attribute(n, value)),
                    _ => return Err(Error::Misplaced { line: n, kind }),
                }
                continue;
            }
            match kind {
                'o' if origin.is_none() => origin = Some(parse_origin(n, value)?),
                's' if name.is_none() => name = Some(value.to_owned()),
                'i' if sd.info.is_none() => sd.info = Some(value.into()),
                'u' if sd.uri.is_none() => sd.uri = Some(value.into()),
                'e' => sd.emails.push(value.into()),
                'p' => sd.phones.push(value.into()),
                'c' if sd.connection.is_none() => sd.connection = Some(parse_connection(n, value)?),
                'b' => sd.bandwidths.push(value.into()),
                't' => sd.timings.push(parse_timing(n, value)?),
                'r' => match sd.timings.last_mut() {
                    Some(t) => t.repeats.push(value.into()),
                    None => return Err(Error::Misplaced { line: n, kind }),
                },
                'z' if sd.zone.is_none() => sd.zone = Some(value.into()),
                'k' if sd.key.is_none() => sd.key = Some(value.into()),
                'a' => sd.attributes.push(parse_attribute(n, value)),
                'm' => {
                    // The session part is complete: check it before media.
                    if origin.is_none() {
                        return Err(Error::MissingLine('o'));
                    }
                    if name.is_none() {
                        return Err(Error::MissingLine('s'));
                    }
                    if sd.timings.is_empty() {
                        return Err(Error::MissingLine('t'));
                    }
                    sd.media.push(Media::new(MediaLine::parse(value, n)?));
                }
                _ => return Err(Error::Misplaced { line: n, kind }),
            }
        }

        sd.origin = origin.ok_or(Error::MissingLine('o'))?;
        sd.name = name.ok_or(Error::MissingLine('s'))?;
        if sd.timings.is_empty() {
            return Err(Error::MissingLine('t'));
        }
        Ok(sd)
    }

    /// Session-level attributes named `name`.
    pub fn attributes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    /// The first session-level attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

impl Media {
    /// This section's attributes named `name`.
    pub fn attributes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    /// This section's first attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Whether the section has the attribute `name` (value or not).
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

/// Splits `x=value`; the type is one lowercase letter (RFC 8866 §5).
fn split_line(n: usize, raw: &str) -> Result<(char, &str), Error> {
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (Some(kind), Some('=')) if kind.is_ascii_lowercase() => Ok((kind, chars.as_str())),
        _ => Err(Error::NotALine { line: n }),
    }
}

fn parse_origin(n: usize, value: &str) -> Result<Origin, Error> {
    let f: Vec<&str> = value.split(' ').collect();
    let [username, session_id, session_version, net_type, addr_type, address] = f[..] else {
        return Err(Error::field(n, "o=", "expected 6 space-separated fields"));
    };
    if session_id.is_empty() || !session_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::field(n, "o=", "session id is not a number"));
    }
    if session_version.is_empty() || !session_version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::field(n, "o=", "session version is not a number"));
    }
    Ok(Origin {
        username: username.into(),
        session_id: session_id.into(),
        session_version: session_version.into(),
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_connection(n: usize, value: &str) -> Result<Connection, Error> {
    let f: Vec<&str> = value.split(' ').collect();
    let [net_type, addr_type, address] = f[..] else {
        return Err(Error::field(n, "c=", "expected 3 space-separated fields"));
    };
    if net_type.is_empty() || addr_type.is_empty() || address.is_empty() {
        return Err(Error::field(n, "c=", "empty field"));
    }
    Ok(Connection {
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_timing(n: usize, value: &str) -> Result<Timing, Error> {
    let (start, stop) =
        value
            .split_once(' ')
            .ok_or(Error::field(n, "t=", "expected <start> <stop>"))?;
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| Error::field(n, "t=", "time is not a number"))
    };
    Ok(Timing {
        start: number(start)?,
        stop: number(stop)?,
        repeats: Vec::new(),
    })
}

impl MediaLine {
    /// Parses the value of an `m=` line; `n` is the line number for errors.
    pub fn parse(value: &str, n: usize) -> Result<MediaLine, Error> {
        let mut f = value.split(' ');
        let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
            return Err(Error::field(
                n,
                "m=",
                "expected <media> <port> <proto> <fmt> ...",
            ));
        };
        if media.is_empty() || proto.is_empty() {
            return Err(Error::field(n, "m=", "empty media or protocol"));
        }
        let (port, port_count) = match port.split_once('/') {
            Some((p, c)) => (p, Some(c)),
            None => (port, None),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| Error::field(n, "m=", "port is not a number from 0 to 65535"))?;
        let port_count = port_count
            .map(|c| c.parse::<u16>())
            .transpose()
            .map_err(|_| Error::field(n, "m=", "port count is not a number"))?;
        let formats: Vec<String> = f.map(str::to_owned).collect();
        if formats.is_empty() || formats.iter().any(String::is_empty) {
            return Err(Error::field(n, "m=", "no media formats"));
        }
        Ok(MediaLine {
            media: media.into(),
            port,
            port_count,
            proto: proto.into(),
            formats,
        })
    }
}

fn parse_attribute(n: usize, value: &str) -> Attribute {
    let (name, value) = match value.split_once(':') {
        Some((name, v)) => (name, Some(v.to_owned())),
        None => (value, None),
    };
    Attribute {
        name: name.into(),
        value,
        line: n,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for MediaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.media, self.port)?;
        if let Some(c) = self.port_count {
            write!(f, "/{c}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={}\r\n", self.line)?;
        if let Some(i) = &self.info {
            write!(f, "i={i}\r\n")?;
        }
        for c in &self.connections {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

/// Serialises in RFC 8866 §5 order with CRLF line ends.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.name)?;
        if let Some(i) = &self.info {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.zone {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtcp-mux\r\n";

    #[test]
    fn parses_and_writes_back_byte_for_byte() {
        let sd = SessionDescription::parse(MINIMAL).unwrap();
        assert_eq!(sd.origin.session_id, "1");
        assert_eq!(sd.media.len(), 1);
        assert_eq!(sd.media[0].line.formats, ["111"]);
        assert_eq!(sd.media[0].attribute("mid").unwrap().value_str(), "0");
        assert!(sd.media[0].has_attribute("rtcp-mux"));
        assert_eq!(sd.to_string(), MINIMAL);
    }

    #[test]
    fn accepts_bare_lf() {
        let lf = MINIMAL.replace("\r\n", "\n");
        assert_eq!(SessionDescription::parse(&lf).unwrap().to_string(), MINIMAL);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            SessionDescription::parse("o=- 1 1 IN IP4 0.0.0.0\r\n"),
            Err(Error::MissingVersion)
        );
        assert_eq!(
            SessionDescription::parse("v=0\r\ns=-\r\nt=0 0\r\n"),
            Err(Error::MissingLine('o'))
        );
        let bad_m = MINIMAL.replace("m=audio 9", "m=audio 99999");
        let err = SessionDescription::parse(&bad_m).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Field {
                    line: 6,
                    what: "m=",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("line 6: bad m=: port"), "{err}");
        let no_fmt = MINIMAL.replace("SAVPF 111", "SAVPF");
        assert!(matches!(
            SessionDescription::parse(&no_fmt),
            Err(Error::Field { what: "m=", .. })
        ));
        let garbage = MINIMAL.replace("s=-", "s-");
        assert_eq!(
            SessionDescription::parse(&garbage),
            Err(Error::NotALine { line: 3 })
        );
        let misplaced = MINIMAL.replace("a=rtcp-mux", "t=0 0");
        assert_eq!(
            SessionDescription::parse(&misplaced),
            Err(Error::Misplaced { line: 9, kind: 't' })
        );
    }

    #[test]
    fn bounds_the_input() {
        let mut huge = MINIMAL.to_owned();
        while huge.len() <= MAX_SDP_LEN {
            huge.push_str("a=x-padding:0123456789abcdef0123456789abcdef\r\n");
        }
        assert!(matches!(
            SessionDescription::parse(&huge),
            Err(Error::TooLarge { .. })
        ));
    }
}
