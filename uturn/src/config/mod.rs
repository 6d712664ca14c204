//! The relay's configuration: one [`Config`] filled by the command line
//! (clap) and by a TOML file (serde), then checked and turned into
//! [`Settings`] (in `settings.rs`), from which the control plane's
//! `ServerConfig` and the dataplane's `Config` are built.
//!
//! Precedence: `--config FILE` is read first; every flag given on the command
//! line then wins over the file's value. A repeatable flag given on the command
//! line replaces the file's whole list (it does not append), so an operator can
//! always see from one place what is in effect. TOML keys are the long flag
//! names (`listen = ["0.0.0.0:3478"]`, `user = ["alice:secret"]`); unknown keys
//! are an error so a typo never silently falls back to a default.
//!
//! `--external-ip PUBLIC[/PRIVATE]` has coTURN's meaning: the relay binds its
//! relay sockets to PRIVATE (or to `--relay-ip` when PRIVATE is omitted) and
//! advertises PUBLIC in XOR-RELAYED-ADDRESS (RFC 8656 §7.3), for a host behind a
//! 1:1 NAT.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;
use uturn_dataplane::BackendChoice;

mod settings;
#[cfg(test)]
mod tests;

use settings::resolve_relay_ips;
pub use settings::{host_ips, primary_ipv4, Settings};

/// The relay's version, as shown in `--version`, SOFTWARE and metrics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Listener used when neither the command line nor the file names one
/// (3478: the port registered for STUN and TURN over UDP).
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3478);
const DEFAULT_REALM: &str = "uturn";
/// The dynamic port range (RFC 8656 §7.2 recommends relay ports from 49152–65535).
const DEFAULT_MIN_PORT: u16 = 49152;
const DEFAULT_MAX_PORT: u16 = 65535;
/// RFC 8656 §7.2: the server's maximum allocation lifetime, 3600 s by default.
const DEFAULT_MAX_LIFETIME_SECS: u64 = 3600;
const DEFAULT_NONCE_LIFETIME_SECS: u64 = 3600;
/// RFC 8656 §12: a channel binding lasts 10 minutes.
const DEFAULT_CHANNEL_LIFETIME_SECS: u64 = 600;
/// A day, the TTL commonly used for TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2).
const DEFAULT_REST_TTL_SECS: u64 = 86400;
/// `--batch-wait-us`: 1 ms cut the relay's wake-ups per packet 5–10× and
/// its CPU per packet 1.4–2× in the testbed (docs/operations.md), for at
/// most 1 ms added per hop, which media jitter buffers (tens of ms) absorb.
const DEFAULT_BATCH_WAIT_US: u32 = 1000;
/// Past 10 ms the added latency would matter to media.
const MAX_BATCH_WAIT_US: u32 = 10_000;
/// `--max-media-sessions`: publishers and viewers on the whole relay.
const DEFAULT_MAX_MEDIA_SESSIONS: usize = 1000;
/// `--srtp-profile` when none is given: GCM first (an AEAD, cheaper per
/// packet here, docs/benchmarks.md), CM-HMAC for peers without it.
const DEFAULT_SRTP_PROFILES: [SrtpProfile; 2] =
    [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmSha1_80];

/// Command-line flags and TOML file keys: the same struct is filled by both.
///
/// Every field is optional here so that "not given" can be told apart from a
/// value equal to the default; [`Config::resolve`] applies the defaults.
#[derive(Debug, Default, Clone, PartialEq, Parser, Deserialize)]
#[command(
    name = "uturn",
    version,
    about = "uturn: a TURN/STUN relay (RFC 8656 over UDP, RFC 8489)",
    long_about = "uturn: a TURN/STUN relay (RFC 8656 over UDP, RFC 8489).\n\n\
                  Every flag can also be set in the --config TOML file under its long name \
                  (e.g. `listen = [\"0.0.0.0:3478\"]`); flags given here win over the file."
)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// TOML file to read first; flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// UDP address to listen on for STUN/TURN (repeatable) [default: 0.0.0.0:3478].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<Vec<SocketAddr>>,

    /// Local address relay sockets bind to and that is advertised in
    /// XOR-RELAYED-ADDRESS (repeatable: at most one IPv4 and one IPv6)
    /// [default: the first listener's IP if specific, else the host's primary IPv4].
    #[arg(long, value_name = "IP")]
    pub relay_ip: Option<Vec<IpAddr>>,

    /// Public address to advertise for relays bound to PRIVATE, or to the
    /// relay IP when PRIVATE is omitted (1:1 NAT; repeatable, one per family).
    #[arg(long, value_name = "PUBLIC[/PRIVATE]")]
    pub external_ip: Option<Vec<ExternalIp>>,

    /// REALM of the long-term credential mechanism [default: uturn].
    #[arg(long)]
    pub realm: Option<String>,

    /// Lowest relay port [default: 49152].
    #[arg(long, value_name = "PORT")]
    pub min_port: Option<u16>,

    /// Highest relay port [default: 65535].
    #[arg(long, value_name = "PORT")]
    pub max_port: Option<u16>,

    /// Static user (repeatable).
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub user: Option<Vec<UserSpec>>,

    /// TURN REST API shared secret (repeatable; all validate, the first one
    /// signs credentials issued by --api).
    #[arg(long, value_name = "SECRET")]
    pub auth_secret: Option<Vec<String>>,

    /// Peer range to allow although denied by default (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub allow_peer: Option<Vec<IpNet>>,

    /// Peer range to deny (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub deny_peer: Option<Vec<IpNet>>,

    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// I/O backend [default: auto].
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,

    /// Microseconds a worker woken by a datagram may wait for more before
    /// handling them: fewer wake-ups per packet under load for at most this
    /// much added latency per hop; 0 wakes for every datagram
    /// [default: 1000, at most 10000].
    #[arg(long, value_name = "US")]
    pub batch_wait_us: Option<u32>,

    /// HTTP address of the credential API (POST /?service=turn&username=NAME)
    /// and of the media relay: WHIP at /whip/NAME, WHEP at /whep/NAME, the
    /// demo page at /.
    #[arg(long, value_name = "ADDR:PORT")]
    pub api: Option<SocketAddr>,

    /// Bearer token that WHIP/WHEP requests on --api must carry
    /// (`Authorization: Bearer TOKEN`) [default: none, anyone may publish].
    #[arg(long, value_name = "TOKEN")]
    pub whip_token: Option<String>,

    /// SRTP protection profile offered in DTLS use_srtp, in preference
    /// order (repeatable) [default: aead-aes128-gcm, then aes128-cm-sha1-80].
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub srtp_profile: Option<Vec<SrtpProfile>>,

    /// Media sessions (WHIP publishers and WHEP viewers) on the whole relay;
    /// past it a POST is answered 503 [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_media_sessions: Option<usize>,

    /// HTTP address serving Prometheus metrics at /metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Log level; RUST_LOG overrides it [default: info].
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevel>,

    /// SOFTWARE attribute sent in responses [default: uturn/<version>].
    #[arg(long, value_name = "TEXT")]
    pub software: Option<String>,

    /// Send no SOFTWARE attribute.
    #[arg(long)]
    pub no_software: bool,

    /// Allocations per username, 0 for no limit [default: 0].
    #[arg(long, value_name = "N")]
    pub user_quota: Option<u32>,

    /// Allocations on the whole relay, 0 for no limit [default: 0].
    #[arg(long, value_name = "N")]
    pub total_quota: Option<u32>,

    /// Accept only RFC 8656's channel numbers 0x4000–0x4FFF (default: RFC 5766's 0x4000–0x7FFE).
    #[arg(long)]
    pub strict_channels: bool,

    /// Longest allocation lifetime a client may ask for, in seconds [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    pub max_lifetime: Option<u64>,

    /// How long a NONCE is valid, in seconds [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    pub nonce_lifetime: Option<u64>,

    /// Lifetime of credentials issued by --api, in seconds [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    pub rest_ttl: Option<u64>,

    /// Do not pin worker threads to CPUs.
    #[arg(long)]
    pub no_pin: bool,

    /// Attach the XDP fast path to this interface (repeatable): channel
    /// traffic arriving there is relayed in the kernel (docs/xdp.md). If
    /// the program cannot be attached, one line is logged and uturn relays
    /// in userspace.
    #[arg(long, value_name = "IFACE")]
    pub xdp: Option<Vec<String>>,

    /// Where the XDP program runs [default: native].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpMode>,

    /// Channel binding lifetime in seconds [default: 600, RFC 8656 §12].
    /// Only for tests that need channels to expire quickly.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub channel_lifetime: Option<u64>,
}

/// `--xdp-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (needs driver support; veth has it).
    Native,
    /// In the kernel's generic receive path, for any driver (slower).
    Generic,
}

/// `--srtp-profile`: the DTLS-SRTP protection profiles uturn implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum SrtpProfile {
    /// SRTP_AEAD_AES_128_GCM (RFC 7714 §14.2).
    #[value(name = "aead-aes128-gcm")]
    #[serde(rename = "aead-aes128-gcm")]
    AeadAes128Gcm,
    /// SRTP_AES128_CM_HMAC_SHA1_80 (RFC 5764 §4.1.2).
    #[value(name = "aes128-cm-sha1-80")]
    #[serde(rename = "aes128-cm-sha1-80")]
    Aes128CmSha1_80,
}

impl SrtpProfile {
    /// The flag's value for this profile.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AeadAes128Gcm => "aead-aes128-gcm",
            SrtpProfile::Aes128CmSha1_80 => "aes128-cm-sha1-80",
        }
    }

    pub fn profile(self) -> uturn_srtp::Profile {
        match self {
            SrtpProfile::AeadAes128Gcm => uturn_srtp::Profile::AeadAes128Gcm,
            SrtpProfile::Aes128CmSha1_80 => uturn_srtp::Profile::Aes128CmSha1_80,
        }
    }
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring or fail.
    Uring,
    /// epoll with recvmmsg/sendmmsg.
    Epoll,
}

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The directive for `tracing_subscriber::EnvFilter`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `--user NAME:PASSWORD`. The first `:` separates them, so a password may
/// contain `:` but a name may not.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UserSpec {
    pub name: String,
    pub password: String,
}

// Written by hand so that passwords never end up in logs or error messages.
impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl FromStr for UserSpec {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, password) = s.split_once(':').ok_or(ConfigError::UserWithoutColon)?;
        if name.is_empty() {
            return Err(ConfigError::EmptyUserName);
        }
        Ok(UserSpec {
            name: name.to_owned(),
            password: password.to_owned(),
        })
    }
}

impl TryFrom<String> for UserSpec {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// `--external-ip PUBLIC[/PRIVATE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExternalIp {
    /// Advertised in XOR-RELAYED-ADDRESS.
    pub public: IpAddr,
    /// The local address relays bind to; `None`: the relay IP of that family.
    pub private: Option<IpAddr>,
}

impl FromStr for ExternalIp {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadExternalIp(s.to_owned());
        let (public, private) = match s.split_once('/') {
            Some((public, private)) => (public, Some(private)),
            None => (s, None),
        };
        let public: IpAddr = public.parse().map_err(|_| bad())?;
        let private: Option<IpAddr> = private.map(|p| p.parse()).transpose().map_err(|_| bad())?;
        if public.is_unspecified() || private.is_some_and(|p| p.is_unspecified()) {
            return Err(bad());
        }
        if private.is_some_and(|p| p.is_ipv4() != public.is_ipv4()) {
            return Err(ConfigError::ExternalIpFamilies(s.to_owned()));
        }
        Ok(ExternalIp { public, private })
    }
}

impl TryFrom<String> for ExternalIp {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("a user must be given as NAME:PASSWORD (no ':' found)")]
    UserWithoutColon,
    #[error("a user name must not be empty")]
    EmptyUserName,
    #[error("user {0:?} is given twice")]
    DuplicateUser(String),
    #[error("invalid external IP {0:?}: expected PUBLIC or PUBLIC/PRIVATE, specific IP addresses")]
    BadExternalIp(String),
    #[error("external IP {0:?}: PUBLIC and PRIVATE must be of the same address family")]
    ExternalIpFamilies(String),
    #[error("at most one {0} external IP may be given")]
    TwoExternalIps(&'static str),
    #[error("external IP {public}/{private}: PRIVATE must be the {family} relay IP ({relay})")]
    ExternalPrivateNotRelay {
        public: IpAddr,
        private: IpAddr,
        relay: IpAddr,
        family: &'static str,
    },
    #[error("external IP {0} has no {1} relay IP to map to: add --relay-ip or PUBLIC/PRIVATE")]
    ExternalWithoutRelay(IpAddr, &'static str),
    #[error("at most one {0} relay IP may be given")]
    TwoRelayIps(&'static str),
    #[error("relay IP must be a specific address, not {0}")]
    UnspecifiedRelayIp(IpAddr),
    #[error("no listener: give at least one --listen ADDR:PORT")]
    NoListener,
    #[error("listener {0} needs a port other than 0")]
    ListenerPortZero(SocketAddr),
    #[error("listener {0} is given twice")]
    DuplicateListener(SocketAddr),
    #[error("--min-port {min} is greater than --max-port {max}")]
    PortRange { min: u16, max: u16 },
    #[error("--min-port must be at least 1")]
    MinPortZero,
    #[error("--threads must be at least 1")]
    ZeroThreads,
    #[error("--batch-wait-us must be at most {MAX_BATCH_WAIT_US}")]
    BatchWaitTooLong,
    #[error("--{0} must be at least 1 second")]
    ZeroSeconds(&'static str),
    #[error("--realm must not be empty")]
    EmptyRealm,
    #[error("--whip-token must be 1 or more of A-Z a-z 0-9 - . _ ~ + / followed by any '=' (RFC 6750 §2.1)")]
    BadWhipToken,
    #[error("--srtp-profile {0} is given twice")]
    DuplicateSrtpProfile(&'static str),
    #[error("--max-media-sessions must be at least 1")]
    ZeroMediaSessions,
}

impl Config {
    /// Reads `self.config` (if any) and merges it under the command line.
    pub fn load(self) -> Result<Config, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let file = Config::from_toml(&text, &path)?;
        Ok(self.over(file))
    }

    /// Parses a TOML file's text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// `self` (the command line) over `file`: every value given in `self` wins,
    /// lists included (a list on the command line replaces the file's list).
    pub fn over(self, file: Config) -> Config {
        Config {
            config: self.config.or(file.config),
            listen: self.listen.or(file.listen),
            relay_ip: self.relay_ip.or(file.relay_ip),
            external_ip: self.external_ip.or(file.external_ip),
            realm: self.realm.or(file.realm),
            min_port: self.min_port.or(file.min_port),
            max_port: self.max_port.or(file.max_port),
            user: self.user.or(file.user),
            auth_secret: self.auth_secret.or(file.auth_secret),
            allow_peer: self.allow_peer.or(file.allow_peer),
            deny_peer: self.deny_peer.or(file.deny_peer),
            threads: self.threads.or(file.threads),
            backend: self.backend.or(file.backend),
            batch_wait_us: self.batch_wait_us.or(file.batch_wait_us),
            api: self.api.or(file.api),
            whip_token: self.whip_token.or(file.whip_token),
            srtp_profile: self.srtp_profile.or(file.srtp_profile),
            max_media_sessions: self.max_media_sessions.or(file.max_media_sessions),
            metrics: self.metrics.or(file.metrics),
            log_level: self.log_level.or(file.log_level),
            software: self.software.or(file.software),
            // A switch can only be turned on by either side: a flag has no
            // "off" form on the command line.
            no_software: self.no_software || file.no_software,
            user_quota: self.user_quota.or(file.user_quota),
            total_quota: self.total_quota.or(file.total_quota),
            strict_channels: self.strict_channels || file.strict_channels,
            max_lifetime: self.max_lifetime.or(file.max_lifetime),
            nonce_lifetime: self.nonce_lifetime.or(file.nonce_lifetime),
            rest_ttl: self.rest_ttl.or(file.rest_ttl),
            no_pin: self.no_pin || file.no_pin,
            xdp: self.xdp.or(file.xdp),
            xdp_mode: self.xdp_mode.or(file.xdp_mode),
            channel_lifetime: self.channel_lifetime.or(file.channel_lifetime),
        }
    }

    /// The effective log level.
    pub fn log_level(&self) -> LogLevel {
        self.log_level.unwrap_or(LogLevel::Info)
    }

    /// Checks everything and applies defaults. `primary_ipv4` finds the host's
    /// primary IPv4 address; it is only called when no relay IP can be derived
    /// from the flags (tests pass a fixed answer).
    pub fn resolve(
        self,
        primary_ipv4: impl FnOnce() -> Option<Ipv4Addr>,
    ) -> Result<Settings, ConfigError> {
        let listen = self.listen.unwrap_or_else(|| vec![DEFAULT_LISTEN]);
        let Some(first_listener) = listen.first().copied() else {
            return Err(ConfigError::NoListener);
        };
        let mut seen = HashSet::new();
        for addr in &listen {
            if addr.port() == 0 {
                return Err(ConfigError::ListenerPortZero(*addr));
            }
            if !seen.insert(*addr) {
                return Err(ConfigError::DuplicateListener(*addr));
            }
        }

        let min_port = self.min_port.unwrap_or(DEFAULT_MIN_PORT);
        let max_port = self.max_port.unwrap_or(DEFAULT_MAX_PORT);
        if min_port == 0 {
            return Err(ConfigError::MinPortZero);
        }
        if min_port > max_port {
            return Err(ConfigError::PortRange {
                min: min_port,
                max: max_port,
            });
        }

        let realm = self.realm.unwrap_or_else(|| DEFAULT_REALM.to_owned());
        if realm.is_empty() {
            return Err(ConfigError::EmptyRealm);
        }

        let relay = resolve_relay_ips(
            self.relay_ip.unwrap_or_default(),
            self.external_ip.unwrap_or_default(),
            first_listener,
            primary_ipv4,
        )?;

        let users = self.user.unwrap_or_default();
        let mut names = HashSet::new();
        for user in &users {
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::DuplicateUser(user.name.clone()));
            }
        }
        let secrets = self.auth_secret.unwrap_or_default();

        let batch_wait_us = self.batch_wait_us.unwrap_or(DEFAULT_BATCH_WAIT_US);
        if batch_wait_us > MAX_BATCH_WAIT_US {
            return Err(ConfigError::BatchWaitTooLong);
        }
        let threads = match self.threads {
            Some(0) => return Err(ConfigError::ZeroThreads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let seconds = |value: Option<u64>, default: u64, flag: &'static str| match value {
            Some(0) => Err(ConfigError::ZeroSeconds(flag)),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(Duration::from_secs(default)),
        };
        let max_lifetime = seconds(self.max_lifetime, DEFAULT_MAX_LIFETIME_SECS, "max-lifetime")?;
        let nonce_lifetime = seconds(
            self.nonce_lifetime,
            DEFAULT_NONCE_LIFETIME_SECS,
            "nonce-lifetime",
        )?;
        let rest_ttl = seconds(self.rest_ttl, DEFAULT_REST_TTL_SECS, "rest-ttl")?;
        let channel_lifetime = seconds(
            self.channel_lifetime,
            DEFAULT_CHANNEL_LIFETIME_SECS,
            "channel-lifetime",
        )?;

        if self
            .whip_token
            .as_deref()
            .is_some_and(|t| !valid_bearer_token(t))
        {
            return Err(ConfigError::BadWhipToken);
        }
        let srtp_profiles = self
            .srtp_profile
            .unwrap_or_else(|| DEFAULT_SRTP_PROFILES.to_vec());
        for (i, profile) in srtp_profiles.iter().enumerate() {
            if srtp_profiles[..i].contains(profile) {
                return Err(ConfigError::DuplicateSrtpProfile(profile.name()));
            }
        }
        let max_media_sessions = match self.max_media_sessions {
            Some(0) => return Err(ConfigError::ZeroMediaSessions),
            Some(n) => n,
            None => DEFAULT_MAX_MEDIA_SESSIONS,
        };

        let software = if self.no_software {
            None
        } else {
            Some(self.software.unwrap_or_else(|| format!("uturn/{VERSION}")))
        };

        Ok(Settings {
            listen,
            relay,
            realm,
            min_port,
            max_port,
            users: users.into_iter().map(|u| (u.name, u.password)).collect(),
            secrets,
            allow_peer: self.allow_peer.unwrap_or_default(),
            deny_peer: self.deny_peer.unwrap_or_default(),
            threads,
            backend: match self.backend.unwrap_or(Backend::Auto) {
                Backend::Auto => BackendChoice::Auto,
                Backend::Uring => BackendChoice::Uring,
                Backend::Epoll => BackendChoice::Epoll,
            },
            batch_wait: Duration::from_micros(u64::from(batch_wait_us)),
            api: self.api,
            whip_token: self.whip_token,
            srtp_profiles: srtp_profiles
                .into_iter()
                .map(SrtpProfile::profile)
                .collect(),
            max_media_sessions,
            metrics: self.metrics,
            software,
            user_quota: self.user_quota.unwrap_or(0),
            total_quota: self.total_quota.unwrap_or(0),
            strict_channels: self.strict_channels,
            max_lifetime,
            nonce_lifetime,
            rest_ttl,
            pin: !self.no_pin,
            host_ips: Vec::new(),
            xdp: self.xdp.unwrap_or_default(),
            xdp_mode: match self.xdp_mode.unwrap_or(XdpMode::Native) {
                XdpMode::Native => uturn_ebpf::Mode::Native,
                XdpMode::Generic => uturn_ebpf::Mode::Generic,
            },
            channel_lifetime,
        })
    }
}

/// RFC 6750 §2.1's `b64token`: what may follow `Bearer ` in Authorization.
fn valid_bearer_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}
