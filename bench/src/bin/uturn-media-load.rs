//! `uturn-media-load`: WHIP publishers and WHEP viewers against a running
//! uturn, for the media relay's fan-out cost (see `uturn_bench::media`).
//!
//! stdout carries the JSON summary; logs go to stderr.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;
use uturn_bench::media::{self, Config};
use uturn_srtp::Profile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    /// SRTP_AEAD_AES_128_GCM (RFC 7714).
    AeadAes128Gcm,
    /// SRTP_AES128_CM_HMAC_SHA1_80 (RFC 3711).
    Aes128CmSha1_80,
}

/// Publishes and plays streams through uturn's media relay and reports the
/// relay's CPU per packet per viewer.
#[derive(Debug, Parser)]
#[command(name = "uturn-media-load", version)]
struct Args {
    /// uturn's HTTP API (its --api address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Streams, one publisher each.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Viewers per stream.
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// Video packets per second per publisher.
    #[arg(long, default_value_t = 200)]
    video_pps: u32,
    /// Audio packets per second per publisher (0: none).
    #[arg(long, default_value_t = 50)]
    audio_pps: u32,
    /// Video payload bytes (an RTP packet of about 1200 bytes by default).
    #[arg(long, default_value_t = 1150)]
    video_payload: usize,
    /// Audio payload bytes.
    #[arg(long, default_value_t = 100)]
    audio_payload: usize,
    /// Seconds between key frames.
    #[arg(long, default_value_t = 2.0)]
    keyframe_secs: f64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds allowed for every peer to connect.
    #[arg(long, default_value_t = 30.0)]
    setup_timeout: f64,
    /// The relay's PID, for its CPU time.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// SRTP profile the peers offer (repeatable, preference order; default both, GCM first).
    #[arg(long = "profile", value_enum)]
    profiles: Vec<ProfileArg>,
    /// Stream name prefix.
    #[arg(long, default_value = "load")]
    stream_prefix: String,
    /// Local address for the peers' sockets; with --tun, the peers'
    /// IPv4 address on the device's network (not the device's own).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Reach the relay through this TUN device (created, addressed and up
    /// beforehand; needs CAP_NET_ADMIN) instead of a UDP socket per peer:
    /// the relay's datagrams to viewers then leave its core as through a
    /// NIC, without the viewers' receive path that loopback runs on the
    /// sender's core. The relay must listen on the device's address.
    #[arg(long, value_name = "NAME")]
    tun: Option<String>,
    /// Busy-poll the sockets instead of sleeping (a whole core for the
    /// generator; keeps wake-ups of sleeping receivers out of the relay's CPU).
    #[arg(long)]
    spin: bool,
    /// Send video as frames: this many per second, each of video-pps ÷
    /// frame-rate packets back to back, the way a browser's pacer lets a
    /// frame leave (libwebrtc's PacingController sends up to 40 ms of
    /// media at once, kDefaultBurstInterval). Default: packets evenly
    /// spaced.
    #[arg(long)]
    frame_rate: Option<u32>,
}

fn secs(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

fn config(args: Args) -> Result<Config, String> {
    let profiles = if args.profiles.is_empty() {
        vec![Profile::AeadAes128Gcm, Profile::Aes128CmSha1_80]
    } else {
        args.profiles
            .iter()
            .map(|p| match p {
                ProfileArg::AeadAes128Gcm => Profile::AeadAes128Gcm,
                ProfileArg::Aes128CmSha1_80 => Profile::Aes128CmSha1_80,
            })
            .collect()
    };
    Ok(Config {
        api: args.api,
        streams: args.streams,
        viewers: args.viewers,
        video_pps: args.video_pps,
        audio_pps: args.audio_pps,
        video_payload: args.video_payload,
        audio_payload: args.audio_payload,
        keyframe_interval: secs("keyframe-secs", args.keyframe_secs)?,
        warmup: secs("warmup", args.warmup)?,
        duration: secs("duration", args.duration)?,
        setup_timeout: secs("setup-timeout", args.setup_timeout)?,
        relay_pid: args.relay_pid,
        profiles,
        stream_prefix: args.stream_prefix,
        bind: args.bind,
        tun: args.tun,
        spin: args.spin,
        frame_rate: args.frame_rate.filter(|&f| f > 0),
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let config = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uturn-media-load: {e}");
            return ExitCode::from(2);
        }
    };
    match media::run(&config) {
        Ok(summary) => match serde_json::to_string_pretty(&summary) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("uturn-media-load: cannot encode the summary: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("uturn-media-load: {e}");
            ExitCode::FAILURE
        }
    }
}
