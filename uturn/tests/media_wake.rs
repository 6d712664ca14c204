//! Mail reaches an idle worker of the real `uturn` binary (the workers'
//! eventfd wake-up, dataplane/src/worker.rs): with two workers and the
//! media relay on, a WHIP publisher and a WHEP viewer (both
//! `uturn_media::client::Client`s over real UDP), then
//!
//! - the viewer attaches and gets the publisher's video (its attach goes
//!   to the fan-out's worker by mail when SO_REUSEPORT put the two on
//!   different workers);
//! - the publisher stops sending, so its worker has nothing to do but its
//!   timers; a DELETE of the publisher over HTTP then reaches that worker
//!   (a mailbox command from the HTTP thread): the publisher gets DTLS
//!   close_notify, and the viewer, ended through its own worker's mailbox,
//!   too.
//!
//! What this proves: the mail path works end to end on both backends with
//! a wake-up registered (an eventfd watched next to the sockets, which a
//! broken registration or a wake that never drains would turn into a
//! stuck or spinning worker). What it cannot prove by itself is the
//! latency: without the wake-up, mail waits for the worker's next loop turn
//! (at most 100 ms, or the media engine's 1 s housekeeping timer), which
//! these generous bounds would not catch; the DELETE → close_notify time is
//! printed for a person to read (about 1 ms with the wake-up; 80–100 ms
//! when it was disabled). The wake itself is tested where it fails
//! deterministically without it: dataplane/src/worker.rs (a worker parked
//! for 60 s whatever its timers say is woken by a DELETE and by a viewer's
//! attach, and the viewer then gets video), dataplane/src/io/tests.rs (a
//! poll with a 20 s timeout, or in a 15 s batch wait, returns on a wake) and
//! controlplane/media/tests/wake.rs (mail is always announced by a wake).

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::http::request;
use common::{Auth, Server, ServerOptions};
use uturn_media::client::{vp8_payload, Client, ClientConfig, ClientEvent};
use uturn_sdp::MediaKind;

/// How long any one phase may take before the test fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(20);
const STREAM: &str = "wake";

/// A `Client` on its own UDP socket.
struct Peer {
    client: Client,
    socket: UdpSocket,
    events: Vec<ClientEvent>,
    buf: Vec<u8>,
    /// The session's Location (for DELETE).
    location: String,
}

impl Peer {
    /// POSTs the client's offer to `path` (`/whip/..` or `/whep/..`).
    fn join(api: SocketAddr, path: &str, config: ClientConfig) -> Peer {
        let now = Instant::now();
        let mut client = Client::new(now, config).expect("client");
        let offer = client.offer();
        let response = request(
            api,
            "POST",
            path,
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        );
        assert_eq!(response.status, 201, "POST {path}: {response:?}");
        let location = response.header("location").expect("Location").to_owned();
        client
            .accept_answer(now, &response.body)
            .expect("the answer is usable");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        Peer {
            client,
            socket,
            events: Vec::new(),
            buf: Vec::with_capacity(1500),
            location,
        }
    }

    fn flush(&mut self) {
        while let Some((to, len)) = self.client.poll_transmit(&mut self.buf) {
            // A refused send (the relay is gone) shows up as a timeout.
            let _ = self.socket.send_to(&self.buf[..len], to);
        }
    }

    fn pump(&mut self, now: Instant) {
        self.flush();
        let mut datagram = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut datagram) {
                Ok((len, from)) => self.client.handle_datagram(now, from, &datagram[..len]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        self.flush();
        while let Some(event) = self.client.poll_event() {
            self.events.push(event);
        }
    }

    fn connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ClientEvent::DtlsConnected { .. }))
    }

    fn closed(&self) -> bool {
        self.events.iter().any(|e| matches!(e, ClientEvent::Closed))
    }

    fn got_rtp(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Rtp { .. }))
    }
}

/// Pumps both peers until `done`; fails with `what` after [`PHASE_TIMEOUT`].
fn until(
    server: &Server,
    peers: &mut [&mut Peer],
    what: &str,
    mut each: impl FnMut(&mut [&mut Peer]),
    mut done: impl FnMut(&[&mut Peer]) -> bool,
) {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while !done(peers) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\n--- relay log ---\n{}",
            server.log()
        );
        each(peers);
        let now = Instant::now();
        for p in peers.iter_mut() {
            p.pump(now);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn mail_reaches_an_idle_worker(backend: &'static str, port_block: u16) {
    let mut opts = ServerOptions::new(Auth::Static, port_block);
    opts.api = true;
    opts.threads = Some(2);
    opts.backend = Some(backend);
    let server = Server::start(&opts);
    let api = server.api.expect("started with --api");

    let mut publisher = Peer::join(api, &format!("/whip/{STREAM}"), ClientConfig::publisher());
    until(
        &server,
        &mut [&mut publisher],
        "the publisher connects",
        |_| {},
        |p| p[0].connected(),
    );

    let mut viewer = Peer::join(api, &format!("/whep/{STREAM}"), ClientConfig::viewer());
    until(
        &server,
        &mut [&mut publisher, &mut viewer],
        "the viewer connects",
        |_| {},
        |p| p[1].connected(),
    );

    // A keyframe every 20 ms until the viewer has video: it is attached.
    let video = MediaKind::Video;
    let mut next_frame = Instant::now();
    until(
        &server,
        &mut [&mut publisher, &mut viewer],
        "the viewer gets video",
        |p| {
            let now = Instant::now();
            if now >= next_frame {
                p[0].client
                    .send_rtp(now, video, &vp8_payload(true, 800), true)
                    .expect("send video");
                next_frame = now + Duration::from_millis(20);
            }
        },
        |p| p[1].got_rtp(),
    );

    // The publisher stops sending; its worker idles on its timers.
    until(
        &server,
        &mut [&mut publisher, &mut viewer],
        "a quiet moment",
        |_| {},
        {
            let quiet_until = Instant::now() + Duration::from_millis(300);
            move |_| Instant::now() >= quiet_until
        },
    );

    let delete = request(api, "DELETE", &publisher.location, &[], b"");
    assert_eq!(delete.status, 200, "DELETE: {delete:?}");
    let deleted = Instant::now();
    let mut publisher_closed = None;
    until(
        &server,
        &mut [&mut publisher, &mut viewer],
        "close_notify to the publisher and the viewer",
        |_| {},
        |p| {
            if publisher_closed.is_none() && p[0].closed() {
                publisher_closed = Some(deleted.elapsed());
            }
            p[0].closed() && p[1].closed()
        },
    );
    eprintln!(
        "{backend}: DELETE → publisher's close_notify in {:?}, the viewer's by {:?}",
        publisher_closed.unwrap_or_default(),
        deleted.elapsed()
    );
}

#[test]
fn mail_reaches_an_idle_worker_uring_backend() {
    mail_reaches_an_idle_worker("uring", 20);
}

#[test]
fn mail_reaches_an_idle_worker_epoll_backend() {
    mail_reaches_an_idle_worker("epoll", 21);
}
