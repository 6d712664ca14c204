//! The `uturn` binary: reads the configuration (flags over a TOML file),
//! builds one TURN control plane per dataplane worker and, with `--api`, the
//! media relay's registry (WHIP/WHEP, docs/media.md), starts the dataplane,
//! the HTTP API (credentials, WHIP/WHEP, the demo page) and the metrics
//! endpoint, and runs until SIGTERM or SIGINT, when it ends every allocation
//! and media session and exits 0.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a usage or configuration error
//! (clap's convention), 1 when the relay cannot start or stop cleanly.

#![forbid(unsafe_code)]

mod api;
mod config;
mod metrics;
mod whip;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;
use uturn_dataplane::{Dataplane, ServerFactory};
use uturn_media::{Registry, RegistryConfig, Signalling};
use uturn_turn::{Server, Shared, SystemTimeProvider, TimeProvider};

use crate::api::{CredentialApi, Handler, HttpServer};
use crate::config::{Config, LogLevel, Settings};
use crate::metrics::MetricsEndpoint;
use crate::whip::WhipApi;

/// Failures after the configuration was accepted.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot create the DTLS certificate: {0}")]
    Certificate(uturn_dtls::Error),
    #[error("cannot start the dataplane: {0}")]
    Dataplane(#[from] uturn_dataplane::Error),
    #[error(transparent)]
    Http(#[from] api::ApiError),
}

fn main() -> ExitCode {
    // Exits with 2 on a usage error, 0 for --help/--version.
    let cli = Config::parse();
    let config = match cli.load() {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    init_tracing(config.log_level());
    let mut settings = match config.resolve(config::primary_ipv4) {
        Ok(settings) => settings,
        Err(e) => return usage_error(&e),
    };
    if settings.has_wildcard_listener() {
        settings.host_ips = config::host_ips();
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uturn: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("uturn: {e}");
    ExitCode::from(2)
}

/// Logs to stderr at `level`; `RUST_LOG`, when set and valid, overrides it.
fn init_tracing(level: LogLevel) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in journald or files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(settings: Settings) -> Result<(), StartError> {
    if settings.relay.fallback {
        tracing::warn!(
            "no route to find the host's primary IPv4 address: relaying on 127.0.0.1; set --relay-ip"
        );
    }
    if !settings.has_credentials() {
        tracing::warn!("no --user or --auth-secret configured: only STUN Binding will succeed");
    }

    // Registered before anything starts so that a signal during start-up is
    // handled as a clean shutdown too. A second signal while shutting down
    // exits at once (status 1), for an operator who does not want to wait.
    let shutting_down = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, shutting_down.clone())
            .map_err(StartError::Signals)?;
    }
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(StartError::Signals)?;

    let time: Arc<dyn TimeProvider> = Arc::new(SystemTimeProvider);
    let server_config = Arc::new(settings.server_config());
    let shared = Shared::new(&server_config);
    let factory: ServerFactory = {
        let server_config = server_config.clone();
        let time = time.clone();
        Arc::new(move |_worker| Server::new(server_config.clone(), shared.clone(), time.clone()))
    };
    let media = media_registry(&settings)?;
    let xdp = attach_xdp(&settings);
    let mut dataplane_config =
        settings.dataplane_config(Arc::new(server_config.peer_filter.clone()), xdp.clone());
    dataplane_config.media = media.clone();
    let dataplane = Dataplane::start(dataplane_config, factory)?;

    let http = match start_http(&settings, &dataplane, xdp.clone(), time, media) {
        Ok(http) => http,
        Err(e) => {
            if let Err(e) = dataplane.shutdown() {
                tracing::error!(error = %e, "dataplane shutdown failed");
            }
            return Err(e);
        }
    };

    let listeners: Vec<String> = settings.listen.iter().map(ToString::to_string).collect();
    let relay_ips: Vec<String> = [
        settings.relay.ipv4.map(|ip| ip.to_string()),
        settings.relay.ipv6.map(|ip| ip.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    tracing::info!(
        listen = %listeners.join(","),
        relay_ip = %relay_ips.join(","),
        backend = dataplane.backend(),
        threads = settings.threads,
        "uturn {} started",
        config::VERSION
    );

    let signal = match signals.forever().next() {
        Some(SIGINT) => "SIGINT",
        _ => "SIGTERM",
    };
    shutting_down.store(true, Ordering::SeqCst);
    tracing::info!(signal, "shutting down");

    for server in http {
        server.stop();
    }
    let stopped = dataplane.shutdown();
    // After the workers removed their rules; also on a failed shutdown.
    if let Some(xdp) = &xdp {
        xdp.detach();
    }
    stopped?;
    tracing::info!("stopped");
    Ok(())
}

/// The media relay's registry, shared by the WHIP/WHEP routes and every
/// worker's media engine. Only with `--api`: without signalling no media
/// session can exist, and a TURN-only relay runs no media engine at all.
fn media_registry(settings: &Settings) -> Result<Option<Arc<Registry>>, StartError> {
    if settings.api.is_none() {
        return Ok(None);
    }
    let candidates = settings.media_candidates();
    if candidates.is_empty() {
        tracing::warn!(
            "no listener has an address to announce as an ICE candidate: \
             WHIP/WHEP sessions cannot connect; set --relay-ip"
        );
    }
    let certificate = uturn_dtls::Certificate::generate().map_err(StartError::Certificate)?;
    let announced: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    tracing::info!(candidates = %announced.join(","), "media relay enabled (WHIP/WHEP on --api)");
    Ok(Some(Registry::new(RegistryConfig {
        candidates,
        srtp_profiles: settings.srtp_profiles.clone(),
        workers: settings.threads,
        max_sessions: settings.max_media_sessions,
        certificate,
        unix_epoch: (Instant::now(), SystemTime::now()),
    })))
}

/// Loads and attaches the XDP fast path for `--xdp`. Any failure is one
/// log line, and uturn relays everything through its userspace path.
fn attach_xdp(settings: &Settings) -> Option<Arc<uturn_ebpf::XdpFastPath>> {
    if settings.xdp.is_empty() {
        return None;
    }
    let interfaces = settings.xdp.join(",");
    let mode = settings.xdp_mode.as_str();
    match uturn_ebpf::XdpFastPath::attach(&settings.xdp, settings.xdp_mode) {
        Ok(xdp) => {
            tracing::info!(interfaces, mode, "XDP fast path attached");
            Some(Arc::new(xdp))
        }
        Err(e) => {
            tracing::error!(
                interfaces,
                mode,
                error = %e,
                "XDP fast path unavailable; relaying in userspace"
            );
            None
        }
    }
}

/// Starts the API and metrics listeners; one listener serves both when they
/// are given the same address.
fn start_http(
    settings: &Settings,
    dataplane: &Dataplane,
    xdp: Option<Arc<uturn_ebpf::XdpFastPath>>,
    time: Arc<dyn TimeProvider>,
    media: Option<Arc<Registry>>,
) -> Result<Vec<HttpServer>, StartError> {
    let mut sites: Vec<(std::net::SocketAddr, Vec<Arc<dyn Handler>>)> = Vec::new();
    if let Some(addr) = settings.api {
        let api = CredentialApi::new(
            settings.secrets.first().cloned(),
            settings.rest_ttl,
            settings.turn_uris(),
            time,
        );
        let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
        // First: it takes `GET /` (the demo page) and leaves `POST /` to
        // the credential API.
        if let Some(registry) = media {
            let signalling: Arc<dyn Signalling> = registry;
            handlers.push(Arc::new(WhipApi::new(
                signalling,
                settings.whip_token.clone(),
            )));
        }
        handlers.push(Arc::new(api));
        sites.push((addr, handlers));
    }
    if let Some(addr) = settings.metrics {
        let endpoint: Arc<dyn Handler> = Arc::new(MetricsEndpoint::new(
            dataplane.counters(),
            dataplane.backend(),
            xdp,
        ));
        match sites.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, handlers)) => handlers.insert(0, endpoint),
            None => sites.push((addr, vec![endpoint])),
        }
    }
    let mut servers = Vec::new();
    for (addr, handlers) in sites {
        match HttpServer::spawn(addr, handlers) {
            Ok(server) => {
                tracing::info!(addr = %server.addr(), "HTTP listening");
                servers.push(server);
            }
            Err(e) => {
                for server in servers {
                    server.stop();
                }
                return Err(e.into());
            }
        }
    }
    Ok(servers)
}
