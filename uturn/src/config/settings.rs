//! The checked configuration ([`Settings`]) and what is built from it: the
//! control plane's [`ServerConfig`], the dataplane's [`DataplaneConfig`], the
//! TURN URIs the credential API hands out (RFC 7065), and the relay's own
//! addresses, which the peer filter keeps clients from reaching (relaying
//! into the relay host itself is one of RFC 8656 §21's security concerns).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use uturn_dataplane::{BackendChoice, Config as DataplaneConfig};
use uturn_turn::{Credentials, CredentialsConfig, PeerFilter, ServerConfig};

use super::{ConfigError, ExternalIp};

/// RFC 8656 §7.2: the default allocation lifetime, 600 s.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8656 §9: permissions last 300 s.
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Responses remembered per worker for retransmitted requests (RFC 8489 §6.3.1).
const TRANSACTION_CACHE_SIZE: usize = 4096;
/// An address in TEST-NET-1 (RFC 5737): `connect()`ing a UDP socket to it asks
/// the kernel for the route (and so the source address) without sending anything.
const ROUTE_PROBE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 9);

/// Relay addresses: where relay sockets bind, and what is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayIps {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub external_ipv4: Option<Ipv4Addr>,
    pub external_ipv6: Option<Ipv6Addr>,
    /// The IPv4 relay address is the 127.0.0.1 fallback (no route found).
    pub fallback: bool,
}

impl RelayIps {
    /// The address advertised for relays of `ip`'s family, if that family is relayed.
    pub fn advertised(&self, ipv4: bool) -> Option<IpAddr> {
        if ipv4 {
            self.external_ipv4.or(self.ipv4).map(IpAddr::V4)
        } else {
            self.external_ipv6.or(self.ipv6).map(IpAddr::V6)
        }
    }
}

pub(super) fn resolve_relay_ips(
    relay_ips: Vec<IpAddr>,
    external_ips: Vec<ExternalIp>,
    first_listener: SocketAddr,
    primary_ipv4: impl FnOnce() -> Option<Ipv4Addr>,
) -> Result<RelayIps, ConfigError> {
    let mut out = RelayIps::default();
    for ip in relay_ips {
        if ip.is_unspecified() {
            return Err(ConfigError::UnspecifiedRelayIp(ip));
        }
        match ip {
            IpAddr::V4(v4) if out.ipv4.replace(v4).is_some() => {
                return Err(ConfigError::TwoRelayIps("IPv4"))
            }
            IpAddr::V6(v6) if out.ipv6.replace(v6).is_some() => {
                return Err(ConfigError::TwoRelayIps("IPv6"))
            }
            _ => {}
        }
    }
    let explicit_relay = out.ipv4.is_some() || out.ipv6.is_some();

    // A PRIVATE part names the relay IP of its family; it must agree with
    // --relay-ip when both are given.
    let mut externals: [Option<ExternalIp>; 2] = [None, None];
    for ext in external_ips {
        let (slot, family) = if ext.public.is_ipv4() {
            (0, "IPv4")
        } else {
            (1, "IPv6")
        };
        if externals[slot].replace(ext).is_some() {
            return Err(ConfigError::TwoExternalIps(family));
        }
        let Some(private) = ext.private else { continue };
        let relay = match private {
            IpAddr::V4(v4) => IpAddr::V4(*out.ipv4.get_or_insert(v4)),
            IpAddr::V6(v6) => IpAddr::V6(*out.ipv6.get_or_insert(v6)),
        };
        if relay != private {
            return Err(ConfigError::ExternalPrivateNotRelay {
                public: ext.public,
                private,
                relay,
                family,
            });
        }
    }

    // No --relay-ip: derive one, for the first listener's family if it is a
    // specific address (the operator chose that interface), else IPv4.
    if !explicit_relay {
        match first_listener.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => {
                out.ipv4.get_or_insert(v4);
            }
            IpAddr::V6(v6) if !v6.is_unspecified() => {
                out.ipv6.get_or_insert(v6);
            }
            _ if out.ipv4.is_none() => match primary_ipv4() {
                Some(v4) => out.ipv4 = Some(v4),
                None => {
                    out.ipv4 = Some(Ipv4Addr::LOCALHOST);
                    out.fallback = true;
                }
            },
            _ => {}
        }
    }

    for ext in externals.into_iter().flatten() {
        match ext.public {
            IpAddr::V4(v4) => {
                if out.ipv4.is_none() {
                    return Err(ConfigError::ExternalWithoutRelay(ext.public, "IPv4"));
                }
                out.external_ipv4 = Some(v4);
            }
            IpAddr::V6(v6) => {
                if out.ipv6.is_none() {
                    return Err(ConfigError::ExternalWithoutRelay(ext.public, "IPv6"));
                }
                out.external_ipv6 = Some(v6);
            }
        }
    }
    Ok(out)
}

/// The host's primary IPv4 address: the source address the kernel would pick
/// for a route to the outside. `connect()` on a UDP socket only looks the
/// route up; nothing is sent.
pub fn primary_ipv4() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(ROUTE_PROBE).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    }
}

/// Every local unicast address of the host, from procfs (Linux): IPv4 from
/// the `/32 host LOCAL` entries of `/proc/net/fib_trie`, IPv6 from
/// `/proc/net/if_inet6`. Unreadable files give nothing (e.g. no IPv6).
pub fn host_ips() -> Vec<IpAddr> {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let mut ips = parse_fib_trie(&read("/proc/net/fib_trie"));
    for ip in parse_if_inet6(&read("/proc/net/if_inet6")) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// In `fib_trie`, a leaf line `|-- A.B.C.D` is followed by its routes; the
/// address is local when one of them is `/32 host LOCAL`.
pub(super) fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            leaf = addr.parse().ok();
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(ip) = leaf.map(IpAddr::V4) {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
    }
    ips
}

/// `if_inet6` lines start with the address as 32 hex digits.
pub(super) fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            let bits = u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)?;
            Some(IpAddr::V6(Ipv6Addr::from(bits)))
        })
        .collect()
}

/// A checked configuration with every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub relay: RelayIps,
    pub realm: String,
    pub min_port: u16,
    pub max_port: u16,
    pub users: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub allow_peer: Vec<IpNet>,
    pub deny_peer: Vec<IpNet>,
    pub threads: usize,
    pub backend: BackendChoice,
    /// `--batch-wait-us`: see `uturn_dataplane::Config::batch_wait`.
    pub batch_wait: Duration,
    pub api: Option<SocketAddr>,
    /// `--whip-token`: the bearer token WHIP/WHEP requests need, if any.
    pub whip_token: Option<String>,
    /// `--srtp-profile`, in preference order, never empty.
    pub srtp_profiles: Vec<uturn_srtp::Profile>,
    pub max_media_sessions: usize,
    pub metrics: Option<SocketAddr>,
    pub software: Option<String>,
    pub user_quota: u32,
    pub total_quota: u32,
    pub strict_channels: bool,
    pub max_lifetime: Duration,
    pub nonce_lifetime: Duration,
    pub rest_ttl: Duration,
    pub pin: bool,
    /// The host's own addresses, for wildcard listeners (see [`host_ips`]);
    /// empty unless the caller fills it in.
    pub host_ips: Vec<IpAddr>,
    /// Interfaces to attach the XDP fast path to (`--xdp`); empty: none.
    pub xdp: Vec<String>,
    pub xdp_mode: uturn_ebpf::Mode,
    /// RFC 8656 §12's 10 minutes unless a test shortens it.
    pub channel_lifetime: Duration,
}

impl Settings {
    /// Some listener is bound to `0.0.0.0` or `::`: it answers on every
    /// address of the host, so all of them are the relay's own.
    pub fn has_wildcard_listener(&self) -> bool {
        self.listen.iter().any(|l| l.ip().is_unspecified())
    }

    /// No static user and no REST secret: only Binding can succeed.
    pub fn has_credentials(&self) -> bool {
        !self.users.is_empty() || !self.secrets.is_empty()
    }

    /// Every address of the relay itself, which peers must not be able to
    /// reach through it except on relay ports (see `PeerFilter::with_own`).
    pub fn own_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        let listeners = self
            .listen
            .iter()
            .map(|l| l.ip())
            .filter(|ip| !ip.is_unspecified());
        let relays = [
            self.relay.ipv4.map(IpAddr::V4),
            self.relay.ipv6.map(IpAddr::V6),
            self.relay.external_ipv4.map(IpAddr::V4),
            self.relay.external_ipv6.map(IpAddr::V6),
        ];
        let hosts = self.host_ips.iter().copied();
        for ip in listeners.chain(relays.into_iter().flatten()).chain(hosts) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }

    /// The control plane's configuration.
    pub fn server_config(&self) -> ServerConfig {
        let credentials = Credentials::new(
            &CredentialsConfig {
                users: self.users.clone(),
                secrets: self.secrets.clone(),
            },
            &self.realm,
        );
        let peer_filter = PeerFilter::new(self.allow_peer.clone(), self.deny_peer.clone())
            .with_own(
                self.own_ips(),
                self.listen.clone(),
                self.min_port..=self.max_port,
            );
        ServerConfig {
            realm: self.realm.clone(),
            software: self.software.clone(),
            relay_ipv4: self.relay.ipv4,
            relay_ipv6: self.relay.ipv6,
            external_ipv4: self.relay.external_ipv4,
            external_ipv6: self.relay.external_ipv6,
            listeners: self.listen.clone(),
            default_lifetime: DEFAULT_LIFETIME.min(self.max_lifetime),
            max_lifetime: self.max_lifetime,
            permission_lifetime: PERMISSION_LIFETIME,
            channel_lifetime: self.channel_lifetime,
            nonce_lifetime: self.nonce_lifetime,
            strict_channel_range: self.strict_channels,
            user_quota: self.user_quota,
            total_quota: self.total_quota,
            transaction_cache_size: TRANSACTION_CACHE_SIZE,
            credentials,
            peer_filter,
            min_port: self.min_port,
            max_port: self.max_port,
        }
    }

    /// The dataplane's configuration; `peer_filter` is the one in the
    /// [`ServerConfig`], so the fast path and the control plane agree.
    pub fn dataplane_config(
        &self,
        peer_filter: Arc<PeerFilter>,
        xdp: Option<Arc<uturn_ebpf::XdpFastPath>>,
    ) -> DataplaneConfig {
        DataplaneConfig {
            listen: self.listen.clone(),
            threads: self.threads,
            pin: self.pin,
            backend: self.backend,
            peer_filter,
            xdp,
            batch_wait: self.batch_wait,
            media: None,
        }
    }

    /// The media relay's ICE host candidates (RFC 8445 §5.1.1.1): every
    /// listener, with `--external-ip` applied. A wildcard listener stands for
    /// the relay IP of its family (the address the operator chose to
    /// advertise), as it does for TURN URIs.
    pub fn media_candidates(&self) -> Vec<SocketAddr> {
        let listeners: Vec<SocketAddr> = self
            .listen
            .iter()
            .filter_map(|l| match l.ip() {
                ip if !ip.is_unspecified() => Some(*l),
                IpAddr::V4(_) => self
                    .relay
                    .ipv4
                    .map(|ip| SocketAddr::new(IpAddr::V4(ip), l.port())),
                IpAddr::V6(_) => self
                    .relay
                    .ipv6
                    .map(|ip| SocketAddr::new(IpAddr::V6(ip), l.port())),
            })
            .collect();
        // `--external-ip PUBLIC[/PRIVATE]` maps the relay IP of its family
        // (PRIVATE, when given, is that relay IP: see `resolve_relay_ips`).
        let external: Vec<uturn_ice::ExternalIp> = [
            self.relay
                .external_ipv4
                .zip(self.relay.ipv4)
                .map(|(public, private)| (IpAddr::V4(public), IpAddr::V4(private))),
            self.relay
                .external_ipv6
                .zip(self.relay.ipv6)
                .map(|(public, private)| (IpAddr::V6(public), IpAddr::V6(private))),
        ]
        .into_iter()
        .flatten()
        .map(|(public, private)| uturn_ice::ExternalIp {
            public,
            private: Some(private),
        })
        .collect();
        uturn_ice::candidates(&listeners, &external)
            .into_iter()
            .map(|c| c.address)
            .collect()
    }

    /// TURN URIs (RFC 7065) clients should use, one per listener: the
    /// advertised address of the listener's family for wildcard listeners and
    /// whenever an external IP is set (a 1:1 NAT hides the private one).
    pub fn turn_uris(&self) -> Vec<String> {
        let mut uris = Vec::new();
        for listener in &self.listen {
            let ip = listener.ip();
            let external = if ip.is_ipv4() {
                self.relay.external_ipv4.map(IpAddr::V4)
            } else {
                self.relay.external_ipv6.map(IpAddr::V6)
            };
            let host = match external {
                Some(ext) => Some(ext),
                None if ip.is_unspecified() => self.relay.advertised(ip.is_ipv4()),
                None => Some(ip),
            };
            let Some(host) = host else { continue };
            let uri = format!(
                "turn:{}?transport=udp",
                SocketAddr::new(host, listener.port())
            );
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        uris
    }
}
