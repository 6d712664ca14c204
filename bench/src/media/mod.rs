//! `uturn-media-load`: the fan-out load generator of the media relay
//! (docs/media.md; the project's issue 5 benchmark).
//!
//! It publishes `streams` streams over WHIP and plays each with `viewers`
//! viewers over WHEP against a running uturn, every peer a
//! [`uturn_media::client::Client`] on its own UDP socket (ICE, DTLS-SRTP,
//! SRTP: the same wire as a browser's). Publishers send paced VP8 and Opus
//! RTP (a key frame every `keyframe_interval`); viewers authenticate and
//! count what arrives. Over a measured window after a warm-up it reads the
//! relay's CPU time (utime + stime of `relay_pid`, `/proc/PID/stat`) and
//! reports it per packet delivered to a viewer: the fan-out cost "decrypt
//! once, encrypt per viewer, send" that the issue's target (≤ 2 µs) is
//! about.
//!
//! One thread drives every peer with poll(2): the rates this needs (some
//! ten thousand packets per second in total) are far below what one core
//! of SRTP does. The generator's own CPU is reported too, so a run shows
//! whether it kept up.
//!
//! Set-up (`setup_secs`) is the time to connect every peer: the WHIP/WHEP
//! POSTs run on [`SIGNALLING_IN_FLIGHT`] threads, each with its own HTTP
//! connection, while the driving thread runs ICE and DTLS for every peer
//! whose answer is in. One request at a time, each session would wait for
//! its own HTTP round trip (40 ms on loopback when the server's response
//! leaves in two TCP segments: Nagle's algorithm holds the second until
//! the delayed ACK of the first), and the number would measure that wait
//! instead of the relay.
//!
//! With `tun` set, the peers are not sockets but addresses behind a TUN
//! device ([`tun`]): the relay's datagrams to viewers then leave its core
//! the way they would leave through a NIC, instead of also running the
//! viewers' receive path there as loopback does.

mod signal;
pub mod tun;

use std::net::{IpAddr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;
use uturn_media::client::{vp8_payload, Client, ClientConfig, ClientEvent};
use uturn_media::Kind;
use uturn_sdp::MediaKind;
use uturn_srtp::Profile;

use signal::{Reply, Request, Signalling};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of uturn's HTTP API (`http://127.0.0.1:8080`).
    pub api: String,
    /// Streams (one publisher each).
    pub streams: usize,
    /// Viewers per stream.
    pub viewers: usize,
    /// Video packets per second per publisher.
    pub video_pps: u32,
    /// Audio packets per second per publisher (0: no audio sent).
    pub audio_pps: u32,
    /// Video payload bytes.
    pub video_payload: usize,
    /// Audio payload bytes.
    pub audio_payload: usize,
    /// A key frame this often.
    pub keyframe_interval: Duration,
    /// Not measured, after every peer is connected.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Time allowed for all peers to connect.
    pub setup_timeout: Duration,
    /// The relay's process, for its CPU time.
    pub relay_pid: Option<u32>,
    /// SRTP profiles the peers offer (preference order).
    pub profiles: Vec<Profile>,
    /// Stream names are `{prefix}{index}`.
    pub stream_prefix: String,
    /// Address the peers' sockets bind to; with `tun`, the peers' address
    /// on the TUN device's network (IPv4).
    pub bind: IpAddr,
    /// A TUN device to reach the relay through instead of UDP sockets
    /// (see [`tun`]); the relay must listen on the device's address.
    pub tun: Option<String>,
    /// Never sleep: poll the sockets without a timeout. Costs the
    /// generator a whole core, but a sleeping receiver makes the relay's
    /// every send also wake it (on loopback the sender runs the
    /// receiver's network stack), which would be counted as relay CPU.
    pub spin: bool,
    /// Video in frames of `video_pps / frame_rate` packets sent back to
    /// back, `frame_rate` times a second (a browser's pacer bursts a frame);
    /// `None`: packets evenly spaced.
    pub frame_rate: Option<u32>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub streams: usize,
    pub viewers_per_stream: usize,
    /// The SRTP profile the first publisher negotiated.
    pub profile: String,
    /// From the start until every peer is connected (DTLS up), the
    /// publishers first: signalling, ICE and DTLS of every session.
    pub setup_secs: f64,
    pub window_secs: f64,
    /// RTP packets the publishers sent in the window.
    pub published: u64,
    /// RTP packets viewers received and authenticated in the window.
    pub delivered: u64,
    /// `delivered / (published × viewers)`: 1.0 when nothing was lost
    /// (up to packets in flight at the window's edges).
    pub delivery_ratio: f64,
    /// SRTP packets viewers could not authenticate (whole run).
    pub viewer_srtp_errors: u64,
    /// Keyframe requests (PLI/FIR) publishers received (whole run).
    pub keyframe_requests: u64,
    /// Relay CPU seconds (utime + stime) in the window.
    pub relay_cpu_secs: Option<f64>,
    /// Relay CPU as % of one core.
    pub relay_cpu_percent: Option<f64>,
    /// Relay CPU-µs per packet delivered to a viewer.
    pub relay_us_per_packet_per_viewer: Option<f64>,
    /// This generator's CPU as % of one core in the window.
    pub generator_cpu_percent: f64,
    /// With a TUN device: datagrams that reached the generator inside the
    /// relay's UDP GSO sends, left whole by the device's segmentation
    /// offload (whole run).
    pub tun_gso_datagrams: Option<u64>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("signalling {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("client: {0}")]
    Client(#[from] uturn_media::client::ClientError),
    #[error("{connected} of {total} peers connected within the set-up timeout")]
    Setup { connected: usize, total: usize },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("TUN device: {0}")]
    Tun(std::io::Error),
}

/// First port of the peers behind a TUN device: peer `i` is
/// `bind:(TUN_PORT_BASE + i)`.
const TUN_PORT_BASE: u16 = 20_000;

/// How the peers reach the relay.
enum Net {
    /// A UDP socket per peer.
    Sockets {
        /// The `poll(2)` set, one entry per peer, reused by every pump.
        fds: Vec<libc::pollfd>,
    },
    /// One TUN device for all; peers are told apart by port.
    Tun {
        device: tun::Tun,
        /// Where packets are built before they are written.
        scratch: Vec<u8>,
        /// Where packets are read: a GSO packet is up to 64 KiB, plus the
        /// vnet header.
        read: Vec<u8>,
        /// Datagrams that arrived inside UDP GSO packets.
        gso_datagrams: u64,
    },
}

/// A peer's end of [`Net`].
enum Link {
    Socket(UdpSocket),
    Tun(SocketAddrV4),
}

/// One peer: its client, its socket, and its Location for the DELETE.
struct Peer {
    kind: Kind,
    client: Client,
    link: Link,
    /// The session's URL path, from the answer's Location (empty until the
    /// answer is in).
    location: String,
    connected: bool,
    /// PLI/FIR a publisher received.
    keyframe_requests: u64,
    /// RTP packets a viewer received while counting was on.
    counted: u64,
}

/// Runs the load; see the module docs.
pub fn run(config: &Config) -> Result<Summary, Error> {
    if config.streams == 0 || config.video_pps == 0 || config.profiles.is_empty() {
        return Err(Error::Config(
            "streams, the video rate and the profile list must be non-zero".into(),
        ));
    }
    // Every publisher and every viewer.
    let total = config
        .streams
        .saturating_mul(config.viewers.saturating_add(1));
    let mut net = match &config.tun {
        None => Net::Sockets { fds: Vec::new() },
        Some(name) => {
            if !matches!(config.bind, IpAddr::V4(ip) if !ip.is_loopback())
                || total > usize::from(u16::MAX - TUN_PORT_BASE)
            {
                return Err(Error::Config(format!(
                    "with a TUN device, --bind must be a non-loopback IPv4 address on its \
                     network and there can be at most {} peers",
                    u16::MAX - TUN_PORT_BASE
                )));
            }
            let device = tun::Tun::open(name).map_err(Error::Tun)?;
            if !device.segmentation_offload() {
                tracing::warn!("this kernel's TUN has no UDP segmentation offload (Linux < 6.2)");
            }
            Net::Tun {
                device,
                scratch: Vec::with_capacity(2048),
                read: vec![0; 65_600],
                gso_datagrams: 0,
            }
        }
    };
    let started = Instant::now();
    let mut peers: Vec<Peer> = Vec::new();
    let mut buf = Vec::with_capacity(2048);
    let signalling = Signalling::start(SIGNALLING_IN_FLIGHT.min(total))?;

    // Publishers first: a WHEP POST needs the stream to exist.
    for stream in 0..config.streams {
        add_peer(
            &mut peers,
            &net,
            &signalling,
            config,
            Kind::Publisher,
            stream,
        )?;
    }
    connect(&mut peers, &mut net, &signalling, config, started, &mut buf)?;
    for stream in 0..config.streams {
        for _ in 0..config.viewers {
            add_peer(&mut peers, &net, &signalling, config, Kind::Viewer, stream)?;
        }
    }
    connect(&mut peers, &mut net, &signalling, config, started, &mut buf)?;
    let setup_secs = started.elapsed().as_secs_f64();
    let profile = peers
        .first()
        .and_then(|p| p.client.profile())
        .map_or_else(|| "unknown".to_owned(), |p| format!("{p:?}"));

    let measured = publish(config, &mut peers, &mut net, &mut buf)?;

    let viewer_srtp_errors = peers
        .iter()
        .filter(|p| p.kind == Kind::Viewer)
        .map(|p| p.client.stats().srtp_errors)
        .sum();
    let keyframe_requests = peers.iter().map(|p| p.keyframe_requests).sum();
    let delivered: u64 = peers.iter().map(|p| p.counted).sum();
    close_all(&signalling, config, &mut peers, &mut net, &mut buf);

    let window_secs = config.duration.as_secs_f64();
    let expected = measured.published * config.viewers as u64;
    Ok(Summary {
        streams: config.streams,
        viewers_per_stream: config.viewers,
        profile,
        setup_secs,
        window_secs,
        published: measured.published,
        delivered,
        delivery_ratio: if expected == 0 {
            0.0
        } else {
            delivered as f64 / expected as f64
        },
        viewer_srtp_errors,
        keyframe_requests,
        relay_cpu_secs: measured.relay_cpu,
        relay_cpu_percent: measured.relay_cpu.map(|c| 100.0 * c / window_secs),
        relay_us_per_packet_per_viewer: measured
            .relay_cpu
            .filter(|_| delivered > 0)
            .map(|c| c * 1e6 / delivered as f64),
        generator_cpu_percent: 100.0 * measured.own_cpu / window_secs,
        tun_gso_datagrams: match net {
            Net::Tun { gso_datagrams, .. } => Some(gso_datagrams),
            Net::Sockets { .. } => None,
        },
    })
}

/// What the publishing phase measured.
struct Measured {
    published: u64,
    relay_cpu: Option<f64>,
    own_cpu: f64,
}

/// Paced publishing: a warm-up, then the measured window, in which viewers
/// count what they receive.
fn publish(
    config: &Config,
    peers: &mut [Peer],
    net: &mut Net,
    buf: &mut Vec<u8>,
) -> Result<Measured, Error> {
    let video_key = vp8_payload(true, config.video_payload);
    let video_delta = vp8_payload(false, config.video_payload);
    let audio = vec![0x55u8; config.audio_payload];
    // Evenly spaced packets, or frames of `per_frame` packets at once.
    let (video_period, per_frame) = match config.frame_rate {
        Some(fps) => (
            Duration::from_secs(1) / fps,
            (config.video_pps / fps).max(1),
        ),
        None => (Duration::from_secs(1) / config.video_pps, 1),
    };
    let audio_period = (config.audio_pps > 0).then(|| Duration::from_secs(1) / config.audio_pps);
    let key_every = (config.keyframe_interval.as_secs_f64() * f64::from(config.video_pps))
        .round()
        .max(1.0) as u64;
    let begin = Instant::now();
    let window_start = begin + config.warmup;
    let window_end = window_start + config.duration;
    // Streams start spread over one video period, so their packets do not
    // all leave at once.
    let offset = |i: usize| video_period.mul_f64(i as f64 / config.streams as f64);
    let mut next_video: Vec<Instant> = (0..config.streams).map(|i| begin + offset(i)).collect();
    let mut next_audio = next_video.clone();
    let mut sent_video = vec![0u64; config.streams];
    let mut counting = false;
    let mut published = 0u64;
    let (mut relay_start, mut own_start) = (None, 0.0);
    loop {
        let now = Instant::now();
        if !counting && now >= window_start {
            counting = true;
            relay_start = config.relay_pid.and_then(process_cpu_secs);
            own_start = own_cpu_secs();
        }
        if now >= window_end {
            let relay_cpu = match (relay_start, config.relay_pid.and_then(process_cpu_secs)) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            };
            return Ok(Measured {
                published,
                relay_cpu,
                own_cpu: own_cpu_secs() - own_start,
            });
        }
        // Publishers are the first `streams` peers.
        for (stream, peer) in peers.iter_mut().take(config.streams).enumerate() {
            while next_video[stream] <= now {
                for _ in 0..per_frame {
                    let n = sent_video[stream];
                    let payload = if n.is_multiple_of(key_every) {
                        &video_key
                    } else {
                        &video_delta
                    };
                    peer.client.send_rtp(now, MediaKind::Video, payload, true)?;
                    sent_video[stream] += 1;
                    published += u64::from(counting);
                }
                next_video[stream] += video_period;
            }
            if let Some(period) = audio_period {
                while next_audio[stream] <= now {
                    peer.client.send_rtp(now, MediaKind::Audio, &audio, true)?;
                    next_audio[stream] += period;
                    published += u64::from(counting);
                }
            }
        }
        let mut deadline = window_end;
        for &t in next_video.iter() {
            deadline = deadline.min(t);
        }
        if audio_period.is_some() {
            for &t in next_audio.iter() {
                deadline = deadline.min(t);
            }
        }
        if !counting {
            deadline = deadline.min(window_start);
        }
        if config.spin {
            pump(peers, net, Instant::now(), buf, counting)?;
        } else {
            pump(peers, net, deadline, buf, counting)?;
        }
    }
}

/// Peer `index`'s end of the network: its own socket, or its address
/// behind the TUN device.
fn link(config: &Config, net: &Net, index: usize) -> Result<Link, Error> {
    match (net, config.bind) {
        (Net::Tun { .. }, IpAddr::V4(ip)) => {
            let port = u16::try_from(index)
                .ok()
                .and_then(|i| TUN_PORT_BASE.checked_add(i))
                .ok_or_else(|| Error::Config("too many peers for one TUN address".into()))?;
            Ok(Link::Tun(SocketAddrV4::new(ip, port)))
        }
        (Net::Tun { .. }, IpAddr::V6(_)) => Err(Error::Config(
            "a TUN device needs an IPv4 --bind address".into(),
        )),
        (Net::Sockets { .. }, bind) => {
            let socket = UdpSocket::bind(SocketAddr::new(bind, 0))?;
            socket.set_nonblocking(true)?;
            Ok(Link::Socket(socket))
        }
    }
}

/// WHIP/WHEP requests in flight at once during set-up, each on its own
/// HTTP connection (module docs: one at a time, set-up would measure HTTP
/// round trips). Far fewer than the sessions of a run, so the relay's
/// HTTP server does not need a thread per session.
pub const SIGNALLING_IN_FLIGHT: usize = 16;

/// Adds peer number `peers.len()`: its client and link, and its WHIP/WHEP
/// POST handed to `signalling` (the answer is applied by [`connect`]).
fn add_peer(
    peers: &mut Vec<Peer>,
    net: &Net,
    signalling: &Signalling,
    config: &Config,
    kind: Kind,
    stream: usize,
) -> Result<(), Error> {
    let link = link(config, net, peers.len())?;
    let client_config = ClientConfig {
        kind,
        profiles: config.profiles.clone(),
        audio: true,
        video: true,
        rtx: true,
    };
    let client = Client::new(Instant::now(), client_config)?;
    let path = match kind {
        Kind::Publisher => "whip",
        Kind::Viewer => "whep",
    };
    let url = format!(
        "{}/{path}/{}{stream}",
        config.api.trim_end_matches('/'),
        config.stream_prefix
    );
    signalling.send(Request::Offer {
        peer: peers.len(),
        url,
        sdp: client.offer(),
    })?;
    peers.push(Peer {
        kind,
        client,
        link,
        location: String::new(),
        connected: false,
        keyframe_requests: 0,
        counted: 0,
    });
    Ok(())
}

/// Applies every answer that came in: Location kept, SDP given to the
/// client (which then starts ICE). Returns how many were applied.
fn apply_answers(peers: &mut [Peer], signalling: &Signalling) -> Result<usize, Error> {
    let mut applied = 0;
    while let Some(reply) = signalling.try_reply() {
        let Reply::Answer { peer, result } = reply else {
            continue;
        };
        let (location, sdp) = result?;
        let peer = peers
            .get_mut(peer)
            .ok_or_else(|| Error::Config(format!("an answer for unknown peer {peer}")))?;
        peer.location = location;
        peer.client.accept_answer(Instant::now(), &sdp)?;
        applied += 1;
    }
    Ok(applied)
}

/// Drives every peer until all have their answer and are connected (DTLS
/// up), applying answers as they come in.
fn connect(
    peers: &mut [Peer],
    net: &mut Net,
    signalling: &Signalling,
    config: &Config,
    started: Instant,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut unanswered = peers.iter().filter(|p| p.location.is_empty()).count();
    loop {
        unanswered = unanswered.saturating_sub(apply_answers(peers, signalling)?);
        let connected = peers.iter().filter(|p| p.connected).count();
        if connected == peers.len() {
            return Ok(());
        }
        if started.elapsed() > config.setup_timeout {
            return Err(Error::Setup {
                connected,
                total: peers.len(),
            });
        }
        // Answers arrive on a channel poll(2) cannot wait for: look again
        // soon while some are due. Datagrams end the wait at once either way.
        let wait = if unanswered > 0 {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        pump(peers, net, Instant::now() + wait, buf, false)?;
    }
}

/// Sends what the clients queued, waits for datagrams until `deadline`
/// (or the earliest client timer), hands them over, runs timers and reads
/// events.
fn pump(
    peers: &mut [Peer],
    net: &mut Net,
    deadline: Instant,
    buf: &mut Vec<u8>,
    counting: bool,
) -> Result<(), Error> {
    flush(peers, net, buf);
    let now = Instant::now();
    let mut wake = deadline;
    for peer in peers.iter() {
        if let Some(t) = peer.client.poll_timeout() {
            wake = wake.min(t);
        }
    }
    let timeout_ms = wake
        .saturating_duration_since(now)
        .as_micros()
        .div_ceil(1000);
    let timeout_ms = timeout_ms.min(i32::MAX as u128) as i32;
    match net {
        Net::Sockets { fds } => receive_sockets(peers, fds, timeout_ms)?,
        Net::Tun {
            device,
            read,
            gso_datagrams,
            ..
        } => receive_tun(peers, device, read, gso_datagrams, timeout_ms)?,
    }
    let now = Instant::now();
    for peer in peers.iter_mut() {
        if peer.client.poll_timeout().is_some_and(|t| t <= now) {
            peer.client.handle_timeout(now);
        }
        while let Some(event) = peer.client.poll_event() {
            match event {
                ClientEvent::DtlsConnected { .. } => peer.connected = true,
                ClientEvent::Rtp { rtx: false, .. } if counting => peer.counted += 1,
                ClientEvent::Rtcp { pli, fir, .. } => {
                    peer.keyframe_requests += u64::from(pli) + u64::from(fir)
                }
                ClientEvent::DtlsFailed(e) => {
                    tracing::warn!(location = %peer.location, error = %e, "DTLS failed");
                }
                ClientEvent::ConsentLost | ClientEvent::Closed => {
                    tracing::warn!(location = %peer.location, ?event, "session ended");
                    peer.connected = false;
                }
                _ => {}
            }
        }
    }
    flush(peers, net, buf);
    Ok(())
}

/// Waits up to `timeout_ms` for any peer's socket, then hands every
/// waiting datagram to its peer.
fn receive_sockets(
    peers: &mut [Peer],
    fds: &mut Vec<libc::pollfd>,
    timeout_ms: i32,
) -> Result<(), Error> {
    fds.clear();
    fds.extend(peers.iter().map(|p| libc::pollfd {
        fd: match &p.link {
            Link::Socket(s) => s.as_raw_fd(),
            Link::Tun(_) => -1, // poll(2) skips negative descriptors
        },
        events: libc::POLLIN,
        revents: 0,
    }));
    wait_readable(fds, timeout_ms)?;
    let mut datagram = [0u8; 2048];
    for (peer, fd) in peers.iter_mut().zip(fds.iter()) {
        let Link::Socket(socket) = &peer.link else {
            continue;
        };
        if fd.revents & libc::POLLIN != 0 {
            loop {
                match socket.recv_from(&mut datagram) {
                    Ok((len, from)) => {
                        let data = datagram.get(..len).unwrap_or_default();
                        peer.client.handle_datagram(Instant::now(), from, data);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Packets read from the TUN device per [`receive_tun`], so that a flood
/// cannot hold up the publishers' pacing.
const TUN_READ_BUDGET: usize = 4096;

/// Waits up to `timeout_ms` for the TUN device, then hands each waiting
/// datagram to the peer whose port it is addressed to (a GSO packet is
/// split first). Anything else (IPv6 neighbour discovery, other hosts) is
/// ignored.
fn receive_tun(
    peers: &mut [Peer],
    device: &mut tun::Tun,
    read: &mut [u8],
    gso_datagrams: &mut u64,
    timeout_ms: i32,
) -> Result<(), Error> {
    let mut fds = [libc::pollfd {
        fd: device.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    wait_readable(&mut fds, timeout_ms)?;
    for _ in 0..TUN_READ_BUDGET {
        let Some(len) = device.recv(read).map_err(Error::Tun)? else {
            break;
        };
        let mut count = 0u64;
        for udp in tun::datagrams(read.get(..len).unwrap_or_default()) {
            count += 1;
            let index = udp.destination.port().checked_sub(TUN_PORT_BASE);
            let peer = index.and_then(|i| peers.get_mut(usize::from(i)));
            if let Some(peer) = peer {
                if matches!(peer.link, Link::Tun(addr) if addr == udp.destination) {
                    let from = SocketAddr::V4(udp.source);
                    peer.client
                        .handle_datagram(Instant::now(), from, udp.payload);
                }
            }
        }
        if count > 1 {
            *gso_datagrams += count;
        }
    }
    Ok(())
}

/// Sends every queued datagram of every client.
fn flush(peers: &mut [Peer], net: &mut Net, buf: &mut Vec<u8>) {
    for peer in peers.iter_mut() {
        while let Some((to, len)) = peer.client.poll_transmit(buf) {
            let Some(data) = buf.get(..len) else { continue };
            // A full socket buffer or device queue loses this datagram like
            // a network would; the delivery ratio shows it.
            match (&peer.link, &mut *net, to) {
                (Link::Socket(socket), _, _) => {
                    let _ = socket.send_to(data, to);
                }
                (
                    Link::Tun(from),
                    Net::Tun {
                        device, scratch, ..
                    },
                    SocketAddr::V4(to),
                ) => {
                    if let Err(e) = device.send(*from, to, data, scratch) {
                        tracing::debug!(error = %e, "TUN write");
                    }
                }
                (Link::Tun(_), _, _) => {
                    tracing::debug!(%to, "no route for this datagram behind the TUN device");
                }
            }
        }
    }
}

/// poll(2) on the peers' sockets.
#[allow(unsafe_code)]
fn wait_readable(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<()> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()`
    // pollfd structs for the duration of the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Ends every session: DELETE (all viewers, then the publishers, each
/// group [`SIGNALLING_IN_FLIGHT`] at a time), DTLS close_notify sent.
fn close_all(
    signalling: &Signalling,
    config: &Config,
    peers: &mut [Peer],
    net: &mut Net,
    buf: &mut Vec<u8>,
) {
    let base = config.api.trim_end_matches('/');
    // Viewers first: a publisher's DELETE also ends its viewers, whose own
    // DELETE would then find nothing.
    for kind in [Kind::Viewer, Kind::Publisher] {
        let mut sent = 0usize;
        for peer in peers.iter_mut().filter(|p| p.kind == kind) {
            peer.client.close();
            if peer.location.is_empty() {
                continue;
            }
            let url = format!("{base}{}", peer.location);
            match signalling.send(Request::Delete { url }) {
                Ok(()) => sent += 1,
                Err(e) => tracing::warn!(error = %e, "DELETE not sent"),
            }
        }
        for _ in 0..sent {
            match signalling.reply() {
                Some(Reply::Deleted {
                    url,
                    result: Err(e),
                }) => {
                    tracing::warn!(%url, error = %e, "DELETE failed");
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    flush(peers, net, buf);
}

/// utime + stime of a process, in seconds (`/proc/PID/stat` fields 14
/// and 15, in clock ticks; proc(5)).
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_secs_from_stat(&stat)
}

/// Parses utime + stime out of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// after its closing parenthesis.
pub fn cpu_secs_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': field 3 is the state, so utime (14) is the 12th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn own_cpu_secs() -> f64 {
    process_cpu_secs(std::process::id()).unwrap_or(0.0)
}

#[allow(unsafe_code)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_after_the_command_name() {
        // A command name with spaces and a ')' inside, then fields 3..17.
        let line = "4242 (uturn worker) 1) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0";
        let secs = cpu_secs_from_stat(line).expect("parses");
        assert!((secs - 400.0 / clock_ticks()).abs() < 1e-9, "{secs}");
        assert_eq!(cpu_secs_from_stat("garbage"), None);
        assert_eq!(cpu_secs_from_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_process_has_cpu_time() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(own_cpu_secs() > 0.0);
    }
}
