//! `uturn-media-load` against a real uturn with its media relay: two
//! streams, three viewers each, both SRTP profiles. Every viewer connects,
//! the packets the publishers send in the window reach every viewer
//! (authenticated), the new viewers' keyframe requests reach the
//! publishers, and the relay's CPU is measured. No CPU number is asserted.
//! The same through a TUN device (`--tun`), which needs root.

mod common;

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::uturn_binary;
use uturn_bench::media::{self, Config};
use uturn_srtp::Profile;

/// uturn with `--api`, killed on drop.
struct Relay {
    child: Child,
    api: String,
}

impl Relay {
    fn start() -> Relay {
        Relay::start_on("127.0.0.1".parse().expect("an IP"))
    }

    /// uturn listening (TURN, ICE-lite media) on `ip`, API on loopback.
    ///
    /// The ports are found free by binding port 0 and are then released,
    /// so a parallel test can take one before this uturn binds it; this
    /// uturn then exits, while the API port may answer for the other test's
    /// relay. So a relay counts as started only if, once its API answers,
    /// the process is still running; otherwise it is tried again on fresh
    /// ports.
    fn start_on(ip: IpAddr) -> Relay {
        for _ in 0..5 {
            if let Some(relay) = Relay::try_start_on(ip) {
                return relay;
            }
        }
        panic!("uturn did not start on free ports in five attempts");
    }

    fn try_start_on(ip: IpAddr) -> Option<Relay> {
        let udp = UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr());
        let tcp = TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr());
        let (udp, tcp) = (udp.expect("free UDP port"), tcp.expect("free TCP port"));
        let mut child = Command::new(uturn_binary())
            .args(["--listen", &udp.to_string(), "--relay-ip", &ip.to_string()])
            .args(["--realm", "test", "--user", "alice:secret"])
            .args(["--api", &tcp.to_string(), "--threads", "2"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start uturn");
        let exited = |child: &mut Child| child.try_wait().expect("uturn's status").is_some();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(tcp).is_err() {
            if exited(&mut child) {
                return None;
            }
            assert!(Instant::now() < deadline, "uturn's API never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
        // A uturn that lost a port race exits as soon as it tries to bind
        // (measured: 0.13 s after the start in a debug build, the API being
        // bound last); give it well over that to show.
        std::thread::sleep(Duration::from_millis(500));
        if exited(&mut child) {
            return None;
        }
        Some(Relay {
            child,
            api: format!("http://{tcp}"),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(relay: &Relay, profile: Profile, prefix: &str) -> Config {
    Config {
        api: relay.api.clone(),
        streams: 2,
        viewers: 3,
        video_pps: 100,
        audio_pps: 50,
        video_payload: 1150,
        audio_payload: 100,
        keyframe_interval: Duration::from_secs(1),
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(30),
        relay_pid: Some(relay.child.id()),
        profiles: vec![profile],
        stream_prefix: prefix.to_owned(),
        bind: "127.0.0.1".parse().expect("an IP"),
        tun: None,
        spin: false,
        frame_rate: None,
    }
}

/// Every viewer got the packets the publishers sent in the window (those
/// in flight at the window's edges may fall either side), each
/// authenticated.
fn assert_delivered(summary: &media::Summary) {
    assert!(
        summary.delivery_ratio > 0.97 && summary.delivery_ratio < 1.03,
        "viewers lost packets: {summary:?}"
    );
    assert_eq!(summary.viewer_srtp_errors, 0, "{summary:?}");
}

#[test]
fn every_viewer_gets_every_packet_with_both_profiles() {
    let relay = Relay::start();
    for (profile, name) in [
        (Profile::AeadAes128Gcm, "gcm"),
        (Profile::Aes128CmSha1_80, "cm"),
    ] {
        let summary = media::run(&config(&relay, profile, name)).expect("the load runs");
        assert_eq!(summary.profile, format!("{profile:?}"), "{summary:?}");
        // 150 packets per second per stream for 2 s, two streams.
        assert!(
            (560..=640).contains(&summary.published),
            "paced publishing is off: {summary:?}"
        );
        assert_delivered(&summary);
        assert!(summary.keyframe_requests >= 2, "{summary:?}");
        assert!(summary.relay_cpu_secs.is_some(), "{summary:?}");
    }
}

/// Video in frames of 10 packets sent back to back (`--frame-rate`): the
/// relay groups each viewer's share of a burst (one GSO send) and every
/// viewer still gets every packet, authenticated, in an order SRTP's
/// replay window accepts.
#[test]
fn frames_sent_as_bursts_reach_every_viewer() {
    let relay = Relay::start();
    let config = Config {
        frame_rate: Some(10),
        ..config(&relay, Profile::AeadAes128Gcm, "burst")
    };
    let summary = media::run(&config).expect("the load runs");
    // 10 frames of 10 video packets and 50 audio packets per second per
    // stream for 2 s, two streams.
    assert!(
        (540..=660).contains(&summary.published),
        "paced publishing is off: {summary:?}"
    );
    assert_delivered(&summary);
}

/// A TUN device for one test: created, addressed `10.231.N.1/24` and up;
/// deleted on drop.
struct TunDevice {
    name: String,
    host: IpAddr,
    peers: IpAddr,
}

impl TunDevice {
    fn new() -> TunDevice {
        let out = Command::new("id").arg("-u").output().expect("run id");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "this test creates a TUN device: run the suite as root (README)"
        );
        let n = std::process::id() % 250;
        let name = format!("utml{n}");
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("run ip");
            assert!(status.success(), "ip {args:?} failed");
        };
        let _ = Command::new("ip")
            .args(["link", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["tuntap", "add", "dev", &name, "mode", "tun"]);
        let device = TunDevice {
            host: format!("10.231.{n}.1").parse().expect("an IP"),
            peers: format!("10.231.{n}.2").parse().expect("an IP"),
            name,
        };
        ip(&[
            "addr",
            "add",
            &format!("{}/24", device.host),
            "dev",
            &device.name,
        ]);
        ip(&["link", "set", &device.name, "txqueuelen", "10000", "up"]);
        device
    }
}

impl Drop for TunDevice {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

/// The peers behind a TUN device (`--tun`): ICE, DTLS and SRTP work through
/// hand-built IPv4/UDP packets, the relay's GSO sends of a frame's burst
/// cross the device whole (segmentation offload) and are split by the
/// generator, and every viewer gets every packet.
#[test]
fn peers_behind_a_tun_device_get_every_packet() {
    let device = TunDevice::new();
    let relay = Relay::start_on(device.host);
    let config = Config {
        tun: Some(device.name.clone()),
        bind: device.peers,
        frame_rate: Some(10),
        ..config(&relay, Profile::AeadAes128Gcm, "tun")
    };
    let summary = media::run(&config).expect("the load runs");
    assert!(
        (540..=660).contains(&summary.published),
        "paced publishing is off: {summary:?}"
    );
    // Frames of 10 packets to each of 6 viewers: most of them in GSO sends.
    assert!(
        summary.tun_gso_datagrams.is_some_and(|n| n >= 1000),
        "no UDP GSO packets crossed the device: {summary:?}"
    );
    assert_delivered(&summary);
    assert!(summary.keyframe_requests >= 2, "{summary:?}");
}

/// A TUN run needs an IPv4, non-loopback peer address: a clear error, not
/// a run that cannot connect.
#[test]
fn tun_with_a_loopback_bind_is_a_configuration_error() {
    let relay = Relay::start();
    let config = Config {
        tun: Some("utml-none".into()),
        ..config(&relay, Profile::AeadAes128Gcm, "tunbad")
    };
    match media::run(&config) {
        Err(media::Error::Config(message)) => assert!(message.contains("--bind"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
