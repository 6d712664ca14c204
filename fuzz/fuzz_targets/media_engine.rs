//! A `uturn_media::MediaEngine` (one or two workers sharing a `Registry`)
//! with one signalled publisher and one viewer, both real
//! `uturn_media::client::Client`s, and the fuzzer as the network and the
//! attacker: it moves the clients' datagrams (so ICE, DTLS and SRTP really
//! come up), corrupts and replays them, injects arbitrary datagrams and
//! connectivity checks with a session's real ufrag from the peers' and
//! from a stranger's address, sends media and feedback, trickles, deletes,
//! closes, moves the clock, and shuts the engines down.
//!
//! Checked: nothing panics; every datagram an engine sends leaves a
//! listener for an address that sent it something; after `shutdown` no
//! session is left on an engine.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use uturn_dtls::Certificate;
use uturn_media::client::{vp8_payload, Client, ClientConfig};
use uturn_media::{Created, Kind, MediaEngine, Registry, RegistryConfig, Signalling};
use uturn_sdp::MediaKind;
use uturn_srtp::Profile;
use uturn_stun::{Attribute, Class, MessageBuilder, Method, TransactionId};

const MAX_STEPS: usize = 64;
const STREAM: &str = "fuzz";

fn certificate() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| Certificate::generate().expect("certificate generation"))
}

fn listener() -> SocketAddr {
    ([192, 0, 2, 10], 3478).into()
}

fn stranger() -> SocketAddr {
    ([203, 0, 113, 66], 5000).into()
}

/// Reads operands from the fuzz input; zeros once it runs out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

struct Peer {
    client: Client,
    kind: Kind,
    addr: SocketAddr,
    worker: usize,
    created: Created,
    /// The server's ufrag (from the answer).
    server_ufrag: String,
    last_sent: Option<Vec<u8>>,
}

struct World {
    registry: Arc<Registry>,
    engines: Vec<MediaEngine>,
    peers: Vec<Peer>,
    now: Instant,
    /// Every address that sent an engine something: the only ones an
    /// engine may answer.
    senders: HashSet<SocketAddr>,
    buf: Vec<u8>,
}

fn ufrag_of(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
        .unwrap_or_default()
}

impl World {
    fn new(two_workers: bool, viewer_profiles: Vec<Profile>) -> World {
        let workers = if two_workers { 2 } else { 1 };
        let registry = Registry::new(RegistryConfig {
            candidates: vec![listener()],
            srtp_profiles: Vec::new(),
            workers,
            max_sessions: 8,
            certificate: certificate().clone(),
            unix_epoch: (Instant::now(), SystemTime::now()),
        });
        let engines = (0..workers)
            .map(|w| MediaEngine::new(w, registry.clone()))
            .collect();
        let mut world = World {
            registry,
            engines,
            peers: Vec::new(),
            now: Instant::now(),
            senders: HashSet::new(),
            buf: Vec::new(),
        };
        world.join(Kind::Publisher, ClientConfig::publisher(), 0);
        let mut viewer = ClientConfig::viewer();
        if !viewer_profiles.is_empty() {
            viewer.profiles = viewer_profiles;
        }
        world.join(Kind::Viewer, viewer, workers - 1);
        world
    }

    fn join(&mut self, kind: Kind, config: ClientConfig, worker: usize) {
        let mut client = Client::with_certificate(self.now, config, certificate().clone());
        let offer = client.offer();
        let created = match kind {
            Kind::Publisher => self.registry.publish(self.now, STREAM, &offer),
            Kind::Viewer => self.registry.play(self.now, STREAM, &offer),
        }
        .expect("our client's offer is answered");
        client
            .accept_answer(self.now, &created.answer)
            .expect("our answer is accepted");
        let port = 40000 + self.peers.len() as u16;
        self.peers.push(Peer {
            client,
            kind,
            addr: ([198, 51, 100, 1], port).into(),
            worker,
            server_ufrag: ufrag_of(&created.answer),
            created,
            last_sent: None,
        });
    }

    fn deliver(&mut self, worker: usize, from: SocketAddr, datagram: &[u8]) {
        self.senders.insert(from);
        let _ = self.engines[worker].handle_datagram(self.now, listener(), from, datagram);
        self.drain_engines();
    }

    fn worker_of(&self, addr: SocketAddr) -> usize {
        self.peers
            .iter()
            .find(|p| p.addr == addr)
            .map_or(0, |p| p.worker)
    }

    /// Mail and due timers, then every engine's transmits to the peers.
    fn drain_engines(&mut self) {
        let now = self.now;
        for engine in &mut self.engines {
            if engine.has_mail() || engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
            }
        }
        for e in 0..self.engines.len() {
            while let Some(t) = self.engines[e].poll_transmit() {
                assert_eq!(t.source, listener(), "sent from a non-listener");
                assert!(
                    self.senders.contains(&t.destination),
                    "sent to {} that never sent anything",
                    t.destination
                );
                if let Some(peer) = self.peers.iter_mut().find(|p| p.addr == t.destination) {
                    peer.client.handle_datagram(now, listener(), t.contents);
                }
            }
        }
    }

    /// Moves the clients' queued datagrams to the engines and back, a few rounds.
    fn pump(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut moved = false;
            for i in 0..self.peers.len() {
                while let Some((dest, len)) = self.peers[i].client.poll_transmit(&mut self.buf) {
                    if dest != listener() {
                        continue;
                    }
                    moved = true;
                    let datagram = self.buf[..len].to_vec();
                    let (addr, worker) = (self.peers[i].addr, self.peers[i].worker);
                    self.peers[i].last_sent = Some(datagram.clone());
                    self.deliver(worker, addr, &datagram);
                }
            }
            self.drain_engines();
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        for peer in &mut self.peers {
            if peer.client.poll_timeout().is_some_and(|t| t <= now) {
                peer.client.handle_timeout(now);
            }
        }
        self.drain_engines();
    }

    /// A connectivity check for `peer`'s session built from the script:
    /// right or wrong key, nominating or not, with fuzzed PRIORITY and tie-breaker.
    fn check(&mut self, s: &mut Script<'_>) {
        let peer = &self.peers[usize::from(s.byte()) % self.peers.len()];
        let flags = s.byte();
        let username = format!(
            "{}:{}",
            peer.server_ufrag,
            peer.client.credentials().ufrag()
        );
        let pwd = self
            .registry_pwd(peer)
            .unwrap_or_else(|| "wrong-password-wrong-password".to_owned());
        let mut out = Vec::new();
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&[s.byte(); 12]);
        let mut b = MessageBuilder::new(
            &mut out,
            Class::Request,
            Method::BINDING,
            TransactionId(tid),
        );
        let priority = u32::from_be_bytes([s.byte(), s.byte(), s.byte(), s.byte()]);
        let ok = b.add(&Attribute::Username(&username)).is_ok()
            && (flags & 0x01 == 0 || b.add(&Attribute::Priority(priority)).is_ok())
            && (flags & 0x02 == 0
                || b.add(&Attribute::IceControlling(u64::from(priority)))
                    .is_ok())
            && (flags & 0x04 == 0 || b.add(&Attribute::IceControlled(7)).is_ok())
            && (flags & 0x08 == 0 || b.add(&Attribute::UseCandidate).is_ok());
        if !ok {
            return;
        }
        if flags & 0x10 == 0 {
            let key = if flags & 0x20 == 0 {
                pwd
            } else {
                "x".repeat(22)
            };
            if b.message_integrity(key.as_bytes()).is_err() {
                return;
            }
        }
        if flags & 0x40 == 0 && b.fingerprint().is_err() {
            return;
        }
        b.finish();
        let from = if flags & 0x80 == 0 {
            peer.addr
        } else {
            stranger()
        };
        let worker = self.worker_of(from);
        self.deliver(worker, from, &out);
    }

    /// The server's ICE password for `peer` (its answer's).
    fn registry_pwd(&self, peer: &Peer) -> Option<String> {
        peer.created
            .answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-pwd:"))
            .map(|p| p.trim().to_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script(data);
    let flags = s.byte();
    let profiles = match flags & 0x06 {
        0x02 => vec![Profile::Aes128CmSha1_80],
        0x04 => vec![Profile::AeadAes128Gcm],
        _ => Vec::new(),
    };
    let mut w = World::new(flags & 0x01 != 0, profiles);
    // Most inputs should reach SRTP: start with ICE and DTLS done unless
    // the input asks to fuzz the handshake itself.
    if flags & 0x08 == 0 {
        for _ in 0..8 {
            w.pump(8);
            w.advance(Duration::from_millis(50));
        }
        // Nothing hostile happened yet: both honest peers are up.
        for peer in &w.peers {
            assert!(
                peer.client.is_connected(),
                "{:?} did not connect",
                peer.kind
            );
        }
    }

    for _ in 0..MAX_STEPS {
        if s.0.is_empty() {
            break;
        }
        let op = s.byte();
        let p = usize::from(op >> 7);
        match op % 12 {
            0 => w.pump(8),
            1 => {
                let from = match s.byte() % 3 {
                    0 => w.peers[0].addr,
                    1 => w.peers[1].addr,
                    _ => stranger(),
                };
                let len = usize::from(s.byte()) * 4;
                let datagram = s.bytes(len).to_vec();
                let worker = w.worker_of(from);
                w.deliver(worker, from, &datagram);
            }
            2 => {
                if let Some(mut d) = w.peers[p].last_sent.clone() {
                    let at = usize::from(s.byte()) * 8 + usize::from(s.byte());
                    let n = d.len().max(1);
                    if let Some(octet) = d.get_mut(at % n) {
                        *octet ^= s.byte().max(1);
                    }
                    let (addr, worker) = (w.peers[p].addr, w.peers[p].worker);
                    w.deliver(worker, addr, &d);
                }
            }
            3 => {
                if let Some(d) = w.peers[p].last_sent.clone() {
                    let (addr, worker) = (w.peers[p].addr, w.peers[p].worker);
                    w.deliver(worker, addr, &d);
                }
            }
            4 => w.advance(Duration::from_millis(u64::from(s.byte()) * 100)),
            5 => {
                let arg = s.byte();
                let kind = if arg & 1 == 0 {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
                let payload = vp8_payload(arg & 2 != 0, 20 + usize::from(s.byte()) * 4);
                let now = w.now;
                let _ = w.peers[0]
                    .client
                    .send_rtp(now, kind, &payload, arg & 4 != 0);
                w.pump(2);
            }
            6 => {
                let viewer = &mut w.peers[1].client;
                let _ = match s.byte() % 3 {
                    0 => viewer.send_pli(),
                    1 => viewer.send_fir(),
                    _ => {
                        let base = u16::from_be_bytes([s.byte(), s.byte()]);
                        let lost: Vec<u16> = s
                            .bytes(8)
                            .iter()
                            .map(|&d| base.wrapping_add(u16::from(d)))
                            .collect();
                        if lost.is_empty() {
                            Ok(())
                        } else {
                            viewer.send_nack(&lost)
                        }
                    }
                };
                w.pump(2);
            }
            7 => w.check(&mut s),
            8 => {
                let peer = &w.peers[p];
                let _ = w
                    .registry
                    .delete(w.now, peer.kind, STREAM, &peer.created.session);
                w.drain_engines();
            }
            9 => {
                let len = usize::from(s.byte());
                let fragment = String::from_utf8_lossy(s.bytes(len)).into_owned();
                let peer = &w.peers[p];
                let if_match = (op & 0x40 != 0).then_some(peer.created.etag.as_str());
                let _ = w.registry.patch(
                    w.now,
                    peer.kind,
                    STREAM,
                    &peer.created.session,
                    if_match,
                    &fragment,
                );
                w.drain_engines();
            }
            10 => {
                w.peers[p].client.close();
                w.pump(2);
            }
            _ => w.advance(Duration::from_secs(u64::from(s.byte() % 40))),
        }
    }

    let now = w.now;
    for engine in &mut w.engines {
        engine.shutdown(now);
    }
    w.drain_engines();
    for engine in &w.engines {
        assert_eq!(engine.stats().sessions, 0, "a session outlived shutdown");
    }
    // The fuzzer only ever forges towards the engines: what the engines
    // send the peers is theirs, so it always authenticates and is never a
    // replay at the peer.
    for peer in &w.peers {
        assert_eq!(
            peer.client.stats().srtp_errors,
            0,
            "{:?} got SRTP it could not authenticate or had seen",
            peer.kind
        );
    }
});
