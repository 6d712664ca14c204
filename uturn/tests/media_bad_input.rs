//! Bad input against the media relay of the real `uturn` binary (issue 5,
//! "Bad input"): a publisher and a good viewer are flowing, then
//!
//! - a viewer whose DTLS certificate is not the one its SDP announced,
//! - DTLS garbage and truncated records, from a stranger and from the
//!   publisher's own address,
//! - SRTP with bad authentication tags and replayed SRTP, sent from the
//!   publisher's address (copies of a real datagram it sent),
//! - malformed STUN that names a media session's ufrag,
//! - malformed SDP offers over HTTP,
//!
//! and each is rejected (the bad viewer never connects and gets no media;
//! no forged or replayed packet reaches a viewer; STUN gets no success;
//! each SDP gets a 400 that says why), counted in `uturn_media_*` on
//! `--metrics`, and afterwards the relay is alive and the good viewer gets
//! every packet the publisher sends.
//!
//! The viewers are `uturn_media::client::Client`s over real UDP sockets.
//! The publisher is built here from uturn's own ICE (STUN), DTLS and SRTP
//! pieces, so the test holds its SRTP context and writes the packets it
//! corrupts; its offer is a `Client`'s (Chromium-shaped), with its ICE
//! credentials and certificate.

mod common;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::http::{request, HttpResponse};
use common::{binding, metric_sum, Auth, Server, ServerOptions};
use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Event};
use uturn_media::client::{vp8_payload, Client, ClientConfig, ClientEvent};
use uturn_srtp::{Role, SrtpContext};
use uturn_stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

/// How long any one phase may take before the test fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(20);
/// Video packets per measured phase.
const BURST: usize = 40;
/// VP8 RTP clock ticks per packet (a 30 fps frame).
const TICKS_PER_PACKET: u32 = 3000;
const STREAM: &str = "bad-input";

// ---------------------------------------------------------------------------
// HTTP (WHIP/WHEP POST) over a plain TcpStream.

/// A POST with `content_type` and `body`.
fn post(api: SocketAddr, path: &str, content_type: &str, body: &str) -> HttpResponse {
    request(
        api,
        "POST",
        path,
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
}

fn post_sdp(api: SocketAddr, path: &str, offer: &str) -> HttpResponse {
    post(api, path, "application/sdp", offer)
}

// ---------------------------------------------------------------------------
// SDP helpers: the few values the hand-made publisher needs.

/// The value after `prefix` on the first line that starts with it.
fn sdp_value<'a>(sdp: &'a str, prefix: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix(prefix))
}

/// The m-section of `kind` (`audio`/`video`): its lines, `m=` line first.
fn section<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    let mut lines = sdp.lines().map(str::trim_end);
    let mut out = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with(&format!("m={kind} ")) {
            out.push(line);
            break;
        }
    }
    for line in lines {
        if line.starts_with("m=") {
            break;
        }
        out.push(line);
    }
    out
}

/// `a=fingerprint:sha-256 AB:CD:...` as 32 bytes.
fn fingerprint_of(sdp: &str) -> [u8; 32] {
    let value = sdp_value(sdp, "a=fingerprint:sha-256 ").expect("a sha-256 fingerprint");
    let bytes: Vec<u8> = value
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex fingerprint"))
        .collect();
    bytes.try_into().expect("32 fingerprint octets")
}

fn fingerprint_text(fingerprint: &[u8; 32]) -> String {
    fingerprint
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The first `a=candidate` address of an answer.
fn candidate_of(sdp: &str) -> SocketAddr {
    let value = sdp_value(sdp, "a=candidate:").expect("a candidate");
    let fields: Vec<&str> = value.split_whitespace().collect();
    format!("{}:{}", fields[4], fields[5])
        .parse()
        .expect("candidate address")
}

// ---------------------------------------------------------------------------
// The publisher: ICE (controlling, nominating), DTLS client, SRTP sender.

/// Our side of a connectivity check (RFC 8445 §7.1.1, §7.2.2).
fn connectivity_check(username: &str, key: Option<&str>, tid: TransactionId) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, Class::Request, Method::BINDING, tid);
    b.add(&Attribute::Username(username)).expect("fits");
    b.add(&Attribute::Priority(1_853_824_767)).expect("fits");
    b.add(&Attribute::IceControlling(0x0123_4567_89ab_cdef))
        .expect("fits");
    b.add(&Attribute::UseCandidate).expect("fits");
    if let Some(key) = key {
        b.message_integrity(key.as_bytes()).expect("fits");
    }
    b.fingerprint().expect("fits");
    b.finish();
    out
}

struct Publisher {
    socket: UdpSocket,
    server: SocketAddr,
    /// `server-ufrag:our-ufrag`.
    username: String,
    server_ufrag: String,
    server_pwd: String,
    server_fingerprint: [u8; 32],
    certificate: Certificate,
    check_tid: TransactionId,
    checks: u64,
    next_check: Instant,
    ice_done: bool,
    dtls: Option<Endpoint>,
    srtp: Option<SrtpContext>,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    /// The SRTP datagrams sent, by sequence number.
    sent: BTreeMap<u16, Vec<u8>>,
    buf: Vec<u8>,
}

impl Publisher {
    /// POSTs a Chromium-shaped publisher offer to `/whip/{stream}`.
    fn publish(api: SocketAddr, stream: &str) -> Publisher {
        let now = Instant::now();
        let certificate = Certificate::generate().expect("certificate");
        let shape = Client::with_certificate(now, ClientConfig::publisher(), certificate.clone());
        let offer = shape.offer();
        let response = post_sdp(api, &format!("/whip/{stream}"), &offer);
        assert_eq!(response.status, 201, "WHIP POST: {response:?}");
        let answer = response.body;

        // The offer announced our video SSRC (a=ssrc, first in the section).
        let video_offer = section(&offer, "video");
        let ssrc = video_offer
            .iter()
            .find_map(|l| l.strip_prefix("a=ssrc:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("a=ssrc in the offer's video section");
        // The answer's video m-line names the payload type it accepted.
        let video_answer = section(&answer, "video");
        let payload_type = video_answer
            .first()
            .and_then(|m| m.split_whitespace().nth(3)?.parse().ok())
            .expect("an accepted video m-section");
        let server_ufrag = sdp_value(&answer, "a=ice-ufrag:").expect("ice-ufrag");
        let server_pwd = sdp_value(&answer, "a=ice-pwd:").expect("ice-pwd");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        Publisher {
            socket,
            server: candidate_of(&answer),
            username: format!("{server_ufrag}:{}", shape.credentials().ufrag()),
            server_ufrag: server_ufrag.to_owned(),
            server_pwd: server_pwd.to_owned(),
            server_fingerprint: fingerprint_of(&answer),
            certificate,
            check_tid: TransactionId([0; 12]),
            checks: 0,
            next_check: now,
            ice_done: false,
            dtls: None,
            srtp: None,
            ssrc,
            payload_type,
            seq: 1000,
            timestamp: 90_000,
            sent: BTreeMap::new(),
            buf: Vec::with_capacity(1500),
        }
    }

    fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.server).expect("send");
    }

    /// Checks every 50 ms until one succeeds, then every second (consent).
    fn pump(&mut self, now: Instant) {
        if now >= self.next_check {
            self.checks += 1;
            let mut tid = [0x5a; 12];
            tid[..8].copy_from_slice(&self.checks.to_be_bytes());
            self.check_tid = TransactionId(tid);
            let check = connectivity_check(&self.username, Some(&self.server_pwd), self.check_tid);
            self.send(&check);
            let period = if self.ice_done { 1000 } else { 50 };
            self.next_check = now + Duration::from_millis(period);
        }
        let mut datagram = [0u8; 2048];
        loop {
            let (len, from) = match self.socket.recv_from(&mut datagram) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("publisher recv: {e}"),
            };
            assert_eq!(from, self.server, "only the relay talks to the publisher");
            let d = &datagram[..len];
            match d.first() {
                Some(0..=3) => self.on_stun(now, d),
                Some(20..=63) => {
                    if let Some(dtls) = self.dtls.as_mut() {
                        let _ = dtls.handle_datagram(now, d);
                    }
                }
                // SRTCP from the relay (receiver reports, PLI): not needed here.
                _ => {}
            }
        }
        if let Some(dtls) = self.dtls.as_mut() {
            if dtls.poll_timeout().is_some_and(|t| t <= now) {
                dtls.handle_timeout(now);
            }
            while let Some(len) = dtls.poll_transmit(&mut self.buf) {
                self.socket
                    .send_to(&self.buf[..len], self.server)
                    .expect("send");
            }
            while let Some(event) = dtls.poll_event() {
                match event {
                    Event::Connected { keys, .. } => {
                        self.srtp = Some(SrtpContext::new(&keys.local));
                    }
                    other => panic!("publisher DTLS: {other:?}"),
                }
            }
        }
    }

    fn on_stun(&mut self, now: Instant, d: &[u8]) {
        let msg = Message::parse(d).expect("the relay sends valid STUN");
        if msg.transaction_id() != self.check_tid {
            return;
        }
        assert_eq!(msg.class(), Class::Success, "our check was refused");
        msg.check_integrity(self.server_pwd.as_bytes())
            .expect("the relay signs its answer with its password");
        if !self.ice_done {
            self.ice_done = true;
            // ICE-lite server, controlling client: DTLS starts now, we are
            // the DTLS client (the answer said setup:passive).
            self.dtls = Some(
                Endpoint::new(
                    now,
                    Role::Client,
                    &self.certificate,
                    self.server_fingerprint,
                    &DtlsConfig::default(),
                )
                .expect("DTLS client"),
            );
        }
    }

    fn connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// Sends one VP8 packet (a keyframe or not); returns its sequence number.
    fn send_video(&mut self, keyframe: bool) -> u16 {
        let (seq, packet) = self.protect_video(keyframe);
        self.send(&packet);
        seq
    }

    /// The next VP8 packet, SRTP-protected and recorded but not sent.
    fn protect_video(&mut self, keyframe: bool) -> (u16, Vec<u8>) {
        let srtp = self.srtp.as_mut().expect("publisher connected");
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(TICKS_PER_PACKET);
        let mut packet = vec![0x80, 0x80 | self.payload_type];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(&vp8_payload(keyframe, 300));
        let len = packet.len();
        packet.resize(len + 16, 0);
        let len = srtp.protect_rtp(&mut packet, len).expect("protect");
        packet.truncate(len);
        self.sent.insert(seq, packet.clone());
        (seq, packet)
    }
}

// ---------------------------------------------------------------------------
// Viewers: `uturn_media::client::Client` over a UDP socket.

struct Viewer {
    client: Client,
    socket: UdpSocket,
    events: Vec<ClientEvent>,
    buf: Vec<u8>,
}

impl Viewer {
    /// POSTs the client's offer (or `edit` of it) to `/whep/{stream}`.
    fn play(api: SocketAddr, stream: &str, edit: impl FnOnce(String) -> String) -> Viewer {
        let now = Instant::now();
        let mut client = Client::new(now, ClientConfig::viewer()).expect("client");
        let offer = edit(client.offer());
        let response = post_sdp(api, &format!("/whep/{stream}"), &offer);
        assert_eq!(response.status, 201, "WHEP POST: {response:?}");
        client
            .accept_answer(now, &response.body)
            .expect("the answer is usable");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        Viewer {
            client,
            socket,
            events: Vec::new(),
            buf: Vec::with_capacity(1500),
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some((to, len)) = self.client.poll_transmit(&mut self.buf) {
            self.socket.send_to(&self.buf[..len], to).expect("send");
        }
        let mut datagram = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut datagram) {
                Ok((len, from)) => self.client.handle_datagram(now, from, &datagram[..len]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("viewer recv: {e}"),
            }
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        while let Some((to, len)) = self.client.poll_transmit(&mut self.buf) {
            self.socket.send_to(&self.buf[..len], to).expect("send");
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push(event);
        }
    }

    fn dtls_connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ClientEvent::DtlsConnected { .. }))
    }

    /// How many times each video sequence number arrived (RTX excluded).
    fn received(&self) -> BTreeMap<u16, usize> {
        let mut seen = BTreeMap::new();
        for e in &self.events {
            if let ClientEvent::Rtp {
                sequence_number,
                rtx: false,
                ..
            } = e
            {
                *seen.entry(*sequence_number).or_insert(0) += 1;
            }
        }
        seen
    }

    fn rtp_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Rtp { .. }))
            .count()
    }
}

// ---------------------------------------------------------------------------

/// Everyone on the wire, moved by one thread.
struct Wire {
    publisher: Publisher,
    viewers: Vec<Viewer>,
}

impl Wire {
    fn pump(&mut self) {
        let now = Instant::now();
        self.publisher.pump(now);
        for v in &mut self.viewers {
            v.pump(now);
        }
    }

    /// Pumps until `done`; fails with `what` after [`PHASE_TIMEOUT`].
    fn until(&mut self, server: &Server, what: &str, mut done: impl FnMut(&Wire) -> bool) {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\n--- relay log ---\n{}",
                server.log()
            );
            self.pump();
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Pumps for `d` whatever happens.
    fn for_a_while(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.pump();
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends a keyframe every 20 ms until the good viewer (index 0) gets
    /// video: its video starts at a keyframe once it is attached.
    fn warm_up(&mut self, server: &Server) {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while self.viewers[0].rtp_count() == 0 {
            assert!(
                Instant::now() < deadline,
                "no video reached the good viewer\n--- relay log ---\n{}",
                server.log()
            );
            self.publisher.send_video(true);
            self.for_a_while(Duration::from_millis(20));
        }
    }

    /// Sends [`BURST`] video packets (a keyframe first) paced by the pump;
    /// waits until the good viewer (index 0) has each exactly once and
    /// returns their sequence numbers.
    fn burst(&mut self, server: &Server) -> Vec<u16> {
        let mut seqs = Vec::with_capacity(BURST);
        for i in 0..BURST {
            seqs.push(self.publisher.send_video(i == 0));
            for _ in 0..2 {
                self.pump();
                thread::sleep(Duration::from_millis(1));
            }
        }
        self.until(server, "the good viewer receives the burst", |w| {
            let got = w.viewers[0].received();
            seqs.iter().all(|s| got.contains_key(s))
        });
        let got = self.viewers[0].received();
        for s in &seqs {
            assert_eq!(got.get(s), Some(&1), "seq {s} arrived more than once");
        }
        seqs
    }
}

/// A `uturn_media_*` series from `--metrics`, summed over its label sets.
/// Counters carry OpenMetrics' `_total` suffix; gauges do not.
fn media_metric(server: &Server, name: &str) -> f64 {
    metric_sum(&server.metrics_text(), name)
}

/// `uturn_media_dropped_packets_total{reason="..."}`.
fn dropped(server: &Server, reason: &str) -> f64 {
    server
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("uturn_media_dropped_packets_total{"))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A STUN Binding request naming `username` with `tail` appended as raw
/// attribute bytes, the header's length covering them (or not).
fn raw_stun(username: &str, tail: &[u8], honest_length: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(
        &mut out,
        Class::Request,
        Method::BINDING,
        TransactionId([0x42; 12]),
    );
    b.add(&Attribute::Username(username)).expect("fits");
    b.finish();
    out.extend_from_slice(tail);
    let body = out.len() - 20 + if honest_length { 0 } else { 64 };
    out[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    out
}

#[test]
fn bad_media_input_uring_backend() {
    bad_media_input_is_rejected_counted_and_harmless("uring", 22);
}

#[test]
fn bad_media_input_epoll_backend() {
    bad_media_input_is_rejected_counted_and_harmless("epoll", 23);
}

fn bad_media_input_is_rejected_counted_and_harmless(backend: &'static str, port_block: u16) {
    let mut opts = ServerOptions::new(Auth::Static, port_block);
    opts.api = true;
    opts.metrics = true;
    opts.threads = Some(2);
    opts.backend = Some(backend);
    let server = Server::start(&opts);
    let api = server.api.expect("started with --api");

    // --- A publisher and a good viewer, flowing.
    let publisher = Publisher::publish(api, STREAM);
    let good = Viewer::play(api, STREAM, |offer| offer);
    let mut wire = Wire {
        publisher,
        viewers: vec![good],
    };
    wire.until(&server, "the publisher's DTLS", |w| w.publisher.connected());
    wire.until(&server, "the good viewer's DTLS", |w| {
        w.viewers[0].dtls_connected()
    });
    // The viewer's video starts at a keyframe once it is attached:
    // keyframes until the first one arrives, then every packet counts.
    wire.warm_up(&server);
    wire.burst(&server);
    // The workers publish their engines' counters once per loop: poll.
    wire.until(&server, "uturn_media_sessions_started counts both", |_| {
        media_metric(&server, "uturn_media_sessions_started_total") >= 2.0
    });

    // --- A viewer whose certificate is not the one its SDP names.
    let impostor_fp = Certificate::generate().expect("certificate").fingerprint();
    let bad = Viewer::play(api, STREAM, |offer| {
        let real = sdp_value(&offer, "a=fingerprint:sha-256 ")
            .expect("fingerprint")
            .to_owned();
        offer.replace(&real, &fingerprint_text(&impostor_fp))
    });
    wire.viewers.push(bad);
    let dtls_failures = media_metric(&server, "uturn_media_dtls_failures_total");
    // Its ICE works (its ICE credentials are right); its DTLS must not:
    // the relay fails the association when the certificate arrives.
    wire.until(&server, "uturn_media_dtls_failures counts it", |_| {
        media_metric(&server, "uturn_media_dtls_failures_total") > dtls_failures
    });
    wire.for_a_while(Duration::from_millis(200));
    assert!(
        !wire.viewers[1].dtls_connected(),
        "a viewer with the wrong certificate connected"
    );

    // --- DTLS garbage and truncated records.
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = wire.publisher.server;
    let malformed_before = dropped(&server, "malformed");
    let unknown_before = dropped(&server, "unknown_source");
    let truncated = [
        22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1, 2, 3,
    ];
    let mut garbage_handshake = vec![22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 64];
    garbage_handshake.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    let mut garbage_appdata = vec![23u8, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 48];
    garbage_appdata.extend((0..48u8).map(|i| i.wrapping_mul(91)));
    let bogus_type = [63u8; 40];
    for d in [
        &truncated[..],
        &garbage_handshake,
        &garbage_appdata,
        &bogus_type,
    ] {
        stranger.send_to(d, target).expect("send");
        // The publisher's own address: its association must survive.
        wire.publisher.send(d);
    }
    // The publisher's pump panics on any DTLS failure or close it sees.
    wire.for_a_while(Duration::from_millis(200));
    assert!(wire.publisher.connected());
    // The two that are not DTLS record framing, from the publisher; all
    // four from the stranger, whose address no session has.
    wire.until(&server, "DTLS garbage counted", |_| {
        dropped(&server, "malformed") >= malformed_before + 2.0
            && dropped(&server, "unknown_source") >= unknown_before + 4.0
    });

    // --- SRTP with bad tags, and replays, from the publisher's address.
    let seqs = wire.burst(&server);
    let (auth_before, replay_before) = (
        dropped(&server, "srtp_auth"),
        dropped(&server, "srtp_replay"),
    );
    // A new packet arrives forged first (its tag, its payload): those fail
    // authentication and must not move the replay window, so the real one,
    // sent after them, still gets through, once. Then replays of it and of
    // an older packet still inside the window, and a forgery of a sequence
    // number never sent.
    let (fresh, original) = wire.publisher.protect_video(false);
    let mut bad_tag = original.clone();
    *bad_tag.last_mut().expect("a tag") ^= 0x01;
    let mut bad_payload = original.clone();
    bad_payload[20] ^= 0x80;
    let mut forged_new_seq = original.clone();
    forged_new_seq[2..4].copy_from_slice(&fresh.wrapping_add(100).to_be_bytes());
    let older = wire.publisher.sent[&seqs[5]].clone();
    for d in [
        &bad_tag,
        &bad_payload,
        &original,
        &original,
        &forged_new_seq,
        &original,
        &older,
    ] {
        wire.publisher.send(d);
    }
    // Forged SRTCP from the good viewer's address (a receiver report with
    // an SRTCP index no real one has used yet and a made-up tag), and SRTP
    // from a stranger, whose address no session has.
    let mut forged_rtcp = vec![0x81, 201, 0, 7, 1, 2, 3, 4];
    forged_rtcp.extend((0..24u8).map(|i| i.wrapping_mul(13)));
    forged_rtcp.extend_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
    forged_rtcp.extend_from_slice(&[0xab; 16]);
    wire.viewers[0]
        .socket
        .send_to(&forged_rtcp, target)
        .expect("send");
    stranger.send_to(&original, target).expect("send");
    stranger.send_to(&forged_rtcp, target).expect("send");
    wire.until(&server, "the real packet after its forgeries", |w| {
        w.viewers[0].received().contains_key(&fresh)
    });
    wire.for_a_while(Duration::from_millis(300));
    let got = wire.viewers[0].received();
    for s in seqs.iter().chain([&fresh]) {
        assert_eq!(got.get(s), Some(&1), "seq {s}: a replay reached the viewer");
    }
    assert!(
        !got.contains_key(&fresh.wrapping_add(100)),
        "a forged packet reached the viewer"
    );
    // RFC 3711 §3.3: the replay check comes first, so forgeries of a fresh
    // index count as authentication failures (three from the publisher,
    // one from the viewer) and copies of received ones as replays (three).
    let counts = || {
        (
            dropped(&server, "srtp_auth"),
            dropped(&server, "srtp_replay"),
        )
    };
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let (auth, replay) = counts();
        if auth >= auth_before + 4.0 && replay >= replay_before + 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SRTP failures not counted: auth {auth_before} -> {auth}, replay {replay_before} -> {replay}"
        );
        wire.for_a_while(Duration::from_millis(50));
    }

    // --- Malformed STUN naming the publisher's media ufrag, from a stranger.
    let rejected_before = media_metric(&server, "uturn_media_ice_rejected_total");
    let username = format!("{}:intruder", wire.publisher.server_ufrag);
    let wrong_key = connectivity_check(
        &username,
        Some("not-the-password-at-all"),
        TransactionId([1; 12]),
    );
    let no_key = connectivity_check(&username, None, TransactionId([2; 12]));
    let mut bad_fingerprint = connectivity_check(
        &username,
        Some(&wire.publisher.server_pwd.clone()),
        TransactionId([3; 12]),
    );
    *bad_fingerprint.last_mut().expect("fingerprint") ^= 0xff;
    let stun_datagrams = [
        wrong_key,
        no_key,
        bad_fingerprint,
        raw_stun(&username, &[0x00, 0x08, 0x00, 0x14, 1, 2, 3], true),
        raw_stun(&username, &[], false),
        raw_stun(&username, &[0xc0, 0x57, 0x00, 0xff], true),
    ];
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    for d in &stun_datagrams {
        stranger.send_to(d, target).expect("send");
        let mut answer = [0u8; 1500];
        while let Ok((len, _)) = stranger.recv_from(&mut answer) {
            if let Ok(msg) = Message::parse(&answer[..len]) {
                assert_ne!(
                    msg.class(),
                    Class::Success,
                    "a malformed check with a media ufrag succeeded"
                );
            }
        }
        wire.pump();
    }
    wire.until(&server, "the bad checks counted", |_| {
        media_metric(&server, "uturn_media_ice_rejected_total") > rejected_before
    });

    // --- Malformed SDP over HTTP: 400 with a reason, for WHIP and WHEP.
    let shape = Client::new(Instant::now(), ClientConfig::publisher())
        .expect("client")
        .offer();
    let without = |prefix: &str| -> String {
        shape
            .lines()
            .filter(|l| !l.starts_with(prefix))
            .map(|l| format!("{l}\r\n"))
            .collect()
    };
    let bad_offers = [
        ("not SDP", "this is not an offer".to_owned()),
        ("truncated", shape[..shape.len() / 3].to_owned()),
        ("no fingerprint", without("a=fingerprint")),
        ("no rtcp-mux", without("a=rtcp-mux")),
        ("no ICE ufrag", without("a=ice-ufrag")),
        ("no mid", without("a=mid")),
        (
            "setup:passive",
            shape.replace("a=setup:actpass", "a=setup:passive"),
        ),
        (
            "binary",
            String::from_utf8_lossy(&[0xff, 0xfe, 0, 1, 2]).into_owned(),
        ),
    ];
    for (what, offer) in &bad_offers {
        for path in ["/whip/sdp-victim".to_owned(), format!("/whep/{STREAM}")] {
            let response = post_sdp(api, &path, offer);
            assert_eq!(response.status, 400, "{what} to {path}: {response:?}");
            assert!(
                response.body.trim().len() > 10,
                "{what} to {path}: the 400 does not say why: {response:?}"
            );
            assert!(
                response.header("location").is_none(),
                "{what}: a session was created"
            );
        }
    }

    // --- Afterwards: the relay is alive, the good viewer gets every packet,
    // the impostor got nothing.
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    probe
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    assert!(
        binding(&probe, server.listen).is_some(),
        "the relay stopped answering STUN\n{}",
        server.log()
    );
    wire.burst(&server);
    wire.burst(&server);
    assert!(!wire.viewers[1].dtls_connected());
    assert_eq!(wire.viewers[1].rtp_count(), 0, "the impostor got media");
    // The impostor's session ended; the good viewer's did not.
    wire.until(&server, "one viewer attached", |_| {
        media_metric(&server, "uturn_media_viewers") == 1.0
    });
    assert_eq!(media_metric(&server, "uturn_media_streams"), 1.0);
}
