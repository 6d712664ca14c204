//! The command line of `uturn-load` (the contract the testbed drives) and
//! the run configuration it becomes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

use super::client::Credentials;
use super::payload::PROBE_LEN;
use super::LoadError;

/// Which side sends the originals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// The peer sends through the client's allocation; the client echoes
    /// (the seed benchmark).
    PeerEcho,
    /// The client sends to the peer through its allocation; the peer
    /// echoes (coTURN's `turnutils_uclient`).
    ClientEcho,
}

/// How the client's side of the data travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// ChannelData once the channel is bound (RFC 8656 §12).
    Channel,
    /// Send and Data indications (RFC 8656 §11).
    Send,
}

/// Which dataplane I/O backend the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoChoice {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring (its waits have nanosecond timeouts).
    Uring,
    /// epoll with recvmmsg/sendmmsg (millisecond waits plus a short spin).
    Epoll,
}

/// `uturn-load`: a TURN load generator. Each session is one TURN client
/// (allocation, permission, channel) and one peer; originals flow at a fixed
/// rate per session and come back as echoes.
#[derive(Debug, Clone, Parser)]
#[command(name = "uturn-load", version)]
pub struct Args {
    /// The TURN server (UDP).
    #[arg(long)]
    pub server: SocketAddr,
    /// Realm of the credentials (the server's REALM wins once it sends one).
    #[arg(long)]
    pub realm: String,
    /// Static long-term credentials NAME:PASS.
    #[arg(
        long,
        required_unless_present = "auth_secret",
        conflicts_with = "auth_secret"
    )]
    pub user: Option<String>,
    /// TURN REST API shared secret: username `EXPIRY:loadgen`, password
    /// base64(HMAC-SHA1(secret, username)).
    #[arg(long)]
    pub auth_secret: Option<String>,
    /// Number of sessions (TURN client + peer each).
    #[arg(long)]
    pub sessions: usize,
    /// Payload bytes per datagram (the ChannelData payload / DATA value).
    #[arg(long)]
    pub payload: usize,
    /// Rate per session and direction of origin, in kbit/s of payload.
    #[arg(long)]
    pub kbps: u64,
    /// Measured window, seconds.
    #[arg(long)]
    pub duration: f64,
    /// Traffic before the window that is not counted, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Time over which sessions start their flows, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub ramp_up: f64,
    /// Who sends the originals.
    #[arg(long, value_enum, default_value = "peer-echo")]
    pub pattern: Pattern,
    /// Every session sends in the same instant of each period (the bursts
    /// turnutils_uclient makes) instead of evenly spread phases.
    #[arg(long)]
    pub aligned: bool,
    /// ChannelData or Send/Data indications.
    #[arg(long, value_enum, default_value = "channel")]
    pub mode: Mode,
    /// Bind address of the client sockets.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub client_ip: IpAddr,
    /// Network namespace (/var/run/netns/NAME) of the client sockets.
    #[arg(long)]
    pub client_netns: Option<String>,
    /// Bind address of the peer sockets; must be reachable from the relay.
    /// Default: the source address the peer namespace routes to the server
    /// from.
    #[arg(long)]
    pub peer_ip: Option<IpAddr>,
    /// Network namespace of the peer sockets.
    #[arg(long)]
    pub peer_netns: Option<String>,
    /// Worker threads; sessions are split evenly.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPUs to pin the worker threads to, e.g. `0` or `0,1` (worker i gets
    /// the i-th, cycling).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Allocations started per second during setup (whole run).
    #[arg(long, default_value_t = 500.0)]
    pub setup_rate: f64,
    /// Wait for in-flight echoes after the window, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,
    /// No relay: clients and peers exchange plain UDP directly (the server
    /// and credentials are not used). Measures what the generator itself
    /// can drive.
    #[arg(long)]
    pub direct: bool,
    /// I/O backend of the workers.
    #[arg(long, value_enum, default_value = "auto")]
    pub io: IoChoice,
}

/// A checked run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub args: Args,
    pub credentials: Credentials,
    pub warmup: Duration,
    pub ramp_up: Duration,
    pub window: Duration,
    pub drain: Duration,
}

/// How long REST credentials stay valid beyond the run's own length.
const REST_SLACK_SECS: u64 = 24 * 3600;

impl Config {
    pub fn from_args(args: Args) -> Result<Config, LoadError> {
        let invalid = |what: &str| LoadError::Config(what.to_owned());
        if args.sessions == 0 {
            return Err(invalid("--sessions must be at least 1"));
        }
        if args.payload < PROBE_LEN || args.payload > 65_000 {
            return Err(invalid("--payload must be 24..=65000 bytes"));
        }
        if args.kbps == 0 {
            return Err(invalid("--kbps must be positive"));
        }
        if args.threads == 0 || args.threads > args.sessions {
            return Err(invalid("--threads must be 1..=--sessions"));
        }
        if !args.setup_rate.is_finite() || args.setup_rate <= 0.0 {
            return Err(invalid("--setup-rate must be positive"));
        }
        let secs = |v: f64, name: &str| {
            Duration::try_from_secs_f64(v).map_err(|_| invalid(&format!("bad {name}")))
        };
        let window = secs(args.duration, "--duration")?;
        let warmup = secs(args.warmup, "--warmup")?;
        let ramp_up = secs(args.ramp_up, "--ramp-up")?;
        let drain = secs(args.drain, "--drain")?;
        if window.is_zero() {
            return Err(invalid("--duration must be positive"));
        }
        let credentials = match (&args.user, &args.auth_secret) {
            (Some(user), _) => {
                let (name, pass) = user
                    .split_once(':')
                    .ok_or_else(|| invalid("--user must be NAME:PASS"))?;
                Credentials {
                    username: name.to_owned(),
                    password: pass.to_owned(),
                }
            }
            (None, Some(secret)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let run = (warmup + ramp_up + window + drain).as_secs();
                let username =
                    uturn_turn::auth::rest_username(now + run + REST_SLACK_SECS, Some("loadgen"));
                let password = uturn_turn::auth::rest_password(secret, &username);
                Credentials { username, password }
            }
            (None, None) => return Err(invalid("--user or --auth-secret is required")),
        };
        Ok(Config {
            args,
            credentials,
            warmup,
            ramp_up,
            window,
            drain,
        })
    }
}
