//! ICE candidates in SDP: the `a=candidate` grammar of RFC 8839 §5.1.
//!
//! ```text
//! candidate:<foundation> <component-id> <transport> <priority>
//!           <connection-address> <port> typ <cand-type>
//!           [raddr <address>] [rport <port>] *(<extension-name> <extension-value>)
//! ```
//!
//! The address may be an IP address or, since browsers hide host addresses
//! behind mDNS, an FQDN such as `1f0c...-.local` (RFC 8839 §5.1 allows
//! FQDNs); [`Candidate::ip`] tells them apart.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::session::Error;

const WHAT: &str = "a=candidate";

/// The candidate type (RFC 8445 §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateType {
    /// `host`.
    Host,
    /// `srflx`.
    ServerReflexive,
    /// `prflx`.
    PeerReflexive,
    /// `relay`.
    Relayed,
    /// Any other token (the grammar allows extensions).
    Other(String),
}

impl CandidateType {
    fn as_str(&self) -> &str {
        match self {
            Self::Host => "host",
            Self::ServerReflexive => "srflx",
            Self::PeerReflexive => "prflx",
            Self::Relayed => "relay",
            Self::Other(s) => s,
        }
    }
}

/// One ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// 1 to 32 ice-chars.
    pub foundation: String,
    /// 1 (RTP) or 2 (RTCP); with rtcp-mux only 1 matters.
    pub component: u16,
    /// `UDP` or `TCP` as written (compared case-insensitively).
    pub transport: String,
    /// Candidate priority.
    pub priority: u32,
    /// IP address or FQDN, as written.
    pub address: String,
    /// Port.
    pub port: u16,
    /// `typ` value.
    pub typ: CandidateType,
    /// `raddr`.
    pub related_address: Option<String>,
    /// `rport`.
    pub related_port: Option<u16>,
    /// Extension attributes (`generation 0`, `tcptype active`, ...), in order.
    pub extensions: Vec<(String, String)>,
}

impl Candidate {
    /// A UDP host candidate for our own address (ICE-lite servers only
    /// have these). Priority per RFC 8445 §5.1.2.1 with type preference 126,
    /// local preference 65535, component 1.
    pub fn host(foundation: &str, addr: SocketAddr) -> Self {
        Self {
            foundation: foundation.into(),
            component: 1,
            transport: "udp".into(),
            priority: (126 << 24) | (65535 << 8) | (256 - 1),
            address: addr.ip().to_string(),
            port: addr.port(),
            typ: CandidateType::Host,
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        }
    }

    /// Parses the value of an `a=candidate` attribute (without `candidate:`).
    /// `line` is used for the error only.
    pub fn parse(value: &str, line: usize) -> Result<Self, Error> {
        let err = |reason| Error::field(line, WHAT, reason);
        let mut f = value.split(' ').filter(|s| !s.is_empty());
        let mut next = |reason| f.next().ok_or(err(reason));
        let foundation = next("no foundation")?;
        if foundation.len() > 32 || !foundation.bytes().all(is_ice_char) {
            return Err(err("foundation is not 1-32 ice-chars"));
        }
        let component = next("no component id")?
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=256).contains(c))
            .ok_or(err("component id is not 1-256"))?;
        let transport = next("no transport")?;
        if !transport
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err("transport is not a token"));
        }
        let priority = next("no priority")?
            .parse::<u32>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or(err("priority is not a number from 1 to 2^32-1"))?;
        let address = next("no address")?;
        if address.parse::<IpAddr>().is_err() && !is_fqdn(address) {
            return Err(err("address is neither an IP address nor a host name"));
        }
        let port = next("no port")?
            .parse::<u16>()
            .map_err(|_| err("port is not a number from 0 to 65535"))?;
        if next("no typ")? != "typ" {
            return Err(err("expected typ after the port"));
        }
        let typ = match next("no candidate type")? {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::ServerReflexive,
            "prflx" => CandidateType::PeerReflexive,
            "relay" => CandidateType::Relayed,
            other => CandidateType::Other(other.into()),
        };
        let mut candidate = Candidate {
            foundation: foundation.into(),
            component,
            transport: transport.into(),
            priority,
            address: address.into(),
            port,
            typ,
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        };
        let rest: Vec<&str> = f.collect();
        let mut pairs = rest.chunks(2);
        for pair in &mut pairs {
            let [name, value] = pair else {
                return Err(err("extension without a value"));
            };
            match *name {
                "raddr" if candidate.related_address.is_none() => {
                    candidate.related_address = Some((*value).into())
                }
                "rport" if candidate.related_port.is_none() => {
                    candidate.related_port = Some(
                        value
                            .parse::<u16>()
                            .map_err(|_| err("rport is not a port number"))?,
                    )
                }
                _ => candidate.extensions.push(((*name).into(), (*value).into())),
            }
        }
        Ok(candidate)
    }

    /// The address if it is an IP address (not an mDNS/FQDN name).
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Whether the transport is UDP.
    pub fn is_udp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("udp")
    }
}

/// ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.1).
fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Writes the attribute value (without `candidate:`).
impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            self.transport,
            self.priority,
            self.address,
            self.port,
            self.typ.as_str()
        )?;
        if let Some(a) = &self.related_address {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.related_port {
            write!(f, " rport {p}")?;
        }
        for (name, value) in &self.extensions {
            write!(f, " {name} {value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chromium_host_and_tcp_candidates() {
        let c = Candidate::parse(
            "2106382470 1 udp 2122194687 192.0.2.2 51951 typ host generation 0 network-id 1",
            3,
        )
        .unwrap();
        assert_eq!(c.foundation, "2106382470");
        assert_eq!(c.component, 1);
        assert!(c.is_udp());
        assert_eq!(c.priority, 2122194687);
        assert_eq!(c.ip(), Some("192.0.2.2".parse().unwrap()));
        assert_eq!(c.port, 51951);
        assert_eq!(c.typ, CandidateType::Host);
        assert_eq!(
            c.extensions,
            [
                ("generation".into(), "0".into()),
                ("network-id".into(), "1".into())
            ]
        );
        let tcp = Candidate::parse(
            "1212206578 1 tcp 1518285567 fd00::2 9 typ host tcptype active generation 0",
            1,
        )
        .unwrap();
        assert!(!tcp.is_udp());
        assert_eq!(tcp.ip(), Some("fd00::2".parse().unwrap()));
    }

    #[test]
    fn parses_srflx_with_related_address_and_mdns_names() {
        let text = "842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0";
        let c = Candidate::parse(text, 1).unwrap();
        assert_eq!(c.typ, CandidateType::ServerReflexive);
        assert_eq!(c.related_address.as_deref(), Some("10.0.0.2"));
        assert_eq!(c.related_port, Some(61665));
        assert_eq!(c.to_string(), text);

        let mdns = Candidate::parse(
            "1 1 udp 2113937151 4d2f1c1e-4b8a-4b8e-9d1f-5a5e1c1e2f3a.local 55555 typ host",
            1,
        )
        .unwrap();
        assert_eq!(mdns.ip(), None);
        assert_eq!(mdns.address, "4d2f1c1e-4b8a-4b8e-9d1f-5a5e1c1e2f3a.local");
    }

    #[test]
    fn host_candidate_round_trips() {
        let c = Candidate::host("1", "127.0.0.1:3478".parse().unwrap());
        assert_eq!(c.priority, 2130706431);
        let text = c.to_string();
        assert_eq!(text, "1 1 udp 2130706431 127.0.0.1 3478 typ host");
        assert_eq!(Candidate::parse(&text, 0).unwrap(), c);
    }

    #[test]
    fn rejects_malformed_candidates() {
        for bad in [
            "",
            "1",
            "1 0 udp 1 1.2.3.4 9 typ host",
            "1 1 udp 0 1.2.3.4 9 typ host",
            "1 1 udp x 1.2.3.4 9 typ host",
            "1 1 udp 1 1.2.3.4 70000 typ host",
            "1 1 udp 1 1.2.3.4 9 type host",
            "1 1 udp 1 1.2.3.4 9 typ",
            "1 1 udp 1 bad_addr! 9 typ host",
            "1 1 udp 1 1.2.3.4 9 typ srflx raddr",
            "1 1 udp 1 1.2.3.4 9 typ srflx rport x",
            "f@o 1 udp 1 1.2.3.4 9 typ host",
        ] {
            let e = Candidate::parse(bad, 7).unwrap_err();
            assert!(
                e.to_string().starts_with("line 7: bad a=candidate"),
                "{bad}: {e}"
            );
        }
    }
}
