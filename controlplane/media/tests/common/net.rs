//! A sans-IO network for the engine tests: `uturn_media::client::Client`s
//! (publishers and viewers) and one or more `MediaEngine`s sharing a
//! registry, on a fake clock. Each client's address "hashes" to one worker
//! (as SO_REUSEPORT would); the datagrams move in `step`. A filter can
//! drop or rewrite what a client sends, to play an attacker or a lossy link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uturn_media::client::{Client, ClientConfig, ClientEvent};
use uturn_media::{Created, Kind, MediaEngine, Registry, Signalling};

use super::listener;

/// How far the clock moves per step.
pub const TICK: Duration = Duration::from_millis(10);

/// What a filter decides for one datagram a client sends.
#[derive(Debug)]
pub enum Verdict {
    /// Deliver as is.
    Pass,
    /// Lose it.
    Drop,
    /// Deliver these bytes instead, then the original too.
    InjectBefore(Vec<u8>),
}

/// A client and what the test knows about it.
#[derive(Debug)]
pub struct Peer {
    pub client: Client,
    pub addr: SocketAddr,
    pub worker: usize,
    pub kind: Kind,
    pub stream: String,
    pub created: Created,
    /// Every event it reported so far.
    pub events: Vec<ClientEvent>,
    /// Its datagrams go nowhere (a peer that went silent).
    pub silent: bool,
}

impl Peer {
    pub fn dtls_connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ClientEvent::DtlsConnected { .. }))
    }

    pub fn closed(&self) -> bool {
        self.events.iter().any(|e| matches!(e, ClientEvent::Closed))
    }

    /// The RTP events it received: (kind is video, ssrc, pt, seq, len, keyframe, rtx).
    pub fn rtp(&self) -> Vec<Rtp> {
        self.events
            .iter()
            .filter_map(|e| match *e {
                ClientEvent::Rtp {
                    kind,
                    ssrc,
                    payload_type,
                    sequence_number,
                    payload_len,
                    keyframe,
                    rtx,
                } => Some(Rtp {
                    video: kind == uturn_sdp::MediaKind::Video,
                    ssrc,
                    payload_type,
                    sequence_number,
                    payload_len,
                    keyframe,
                    rtx,
                }),
                _ => None,
            })
            .collect()
    }

    /// Sums of the RTCP events: (pli, fir, nack, sr, rr).
    pub fn rtcp(&self) -> RtcpCounts {
        let mut c = RtcpCounts::default();
        for e in &self.events {
            if let ClientEvent::Rtcp {
                pli,
                fir,
                nack,
                sr,
                rr,
            } = *e
            {
                c.pli += pli as u64;
                c.fir += fir as u64;
                c.nack += nack as u64;
                c.sr += sr as u64;
                c.rr += rr as u64;
            }
        }
        c
    }
}

/// One received RTP packet, as the client reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtp {
    pub video: bool,
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub payload_len: usize,
    pub keyframe: bool,
    pub rtx: bool,
}

/// RTCP a client received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpCounts {
    pub pli: u64,
    pub fir: u64,
    pub nack: u64,
    pub sr: u64,
    pub rr: u64,
}

type Filter = Box<dyn FnMut(usize, &[u8]) -> Verdict>;
type DownFilter = Box<dyn FnMut(usize, &[u8]) -> bool>;

/// Clients, engines, a registry and a clock.
pub struct Net {
    pub registry: Arc<Registry>,
    pub engines: Vec<MediaEngine>,
    pub peers: Vec<Peer>,
    pub now: Instant,
    /// Datagrams engines sent to an address no peer has.
    pub undelivered: usize,
    filter: Option<Filter>,
    down_filter: Option<DownFilter>,
    buf: Vec<u8>,
    next_port: u16,
}

impl Net {
    /// `workers` engines on `registry`.
    pub fn new(registry: Arc<Registry>, workers: usize) -> Net {
        let engines = (0..workers)
            .map(|w| MediaEngine::new(w, registry.clone()))
            .collect();
        Net {
            registry,
            engines,
            peers: Vec::new(),
            now: Instant::now(),
            undelivered: 0,
            filter: None,
            down_filter: None,
            buf: Vec::new(),
            next_port: 40000,
        }
    }

    /// Decides the fate of every datagram a client sends: `f(peer index, bytes)`.
    pub fn set_filter(&mut self, f: impl FnMut(usize, &[u8]) -> Verdict + 'static) {
        self.filter = Some(Box::new(f));
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Decides which datagrams from the engines reach peers:
    /// `f(peer index, bytes)` is false to lose one.
    pub fn set_down_filter(&mut self, f: impl FnMut(usize, &[u8]) -> bool + 'static) {
        self.down_filter = Some(Box::new(f));
    }

    /// A WHIP publisher of `stream` whose datagrams reach `worker`.
    pub fn publish(&mut self, stream: &str, config: ClientConfig, worker: usize) -> usize {
        self.join(Kind::Publisher, stream, config, worker)
    }

    /// A WHEP viewer of `stream` whose datagrams reach `worker`.
    pub fn play(&mut self, stream: &str, config: ClientConfig, worker: usize) -> usize {
        self.join(Kind::Viewer, stream, config, worker)
    }

    fn join(&mut self, kind: Kind, stream: &str, config: ClientConfig, worker: usize) -> usize {
        self.join_with(kind, stream, config, worker, |offer| offer)
    }

    /// A peer whose offer is passed through `edit` before the POST.
    pub fn join_with(
        &mut self,
        kind: Kind,
        stream: &str,
        config: ClientConfig,
        worker: usize,
        edit: impl FnOnce(String) -> String,
    ) -> usize {
        let mut client = Client::new(self.now, config).expect("client");
        let offer = edit(client.offer());
        let created = match kind {
            Kind::Publisher => self.registry.publish(self.now, stream, &offer),
            Kind::Viewer => self.registry.play(self.now, stream, &offer),
        }
        .expect("POST");
        client
            .accept_answer(self.now, &created.answer)
            .expect("answer accepted");
        assert_eq!(client.server_address(), Some(listener()));
        let port = self.next_port;
        self.next_port += 1;
        self.peers.push(Peer {
            client,
            addr: SocketAddr::from(([198, 51, 100, 1], port)),
            worker,
            kind,
            stream: stream.into(),
            created,
            events: Vec::new(),
            silent: false,
        });
        self.peers.len() - 1
    }

    /// Moves every queued datagram once in each direction, fires due
    /// timers, then advances the clock by [`TICK`].
    pub fn step(&mut self) {
        let now = self.now;
        // Clients → engines.
        for i in 0..self.peers.len() {
            while let Some((dest, len)) = self.peers[i].client.poll_transmit(&mut self.buf) {
                let datagram = self.buf[..len].to_vec();
                if self.peers[i].silent || dest != listener() {
                    continue;
                }
                let verdict = match self.filter.as_mut() {
                    Some(f) => f(i, &datagram),
                    None => Verdict::Pass,
                };
                let (addr, worker) = (self.peers[i].addr, self.peers[i].worker);
                match verdict {
                    Verdict::Drop => continue,
                    Verdict::InjectBefore(bytes) => {
                        self.engines[worker].handle_datagram(now, listener(), addr, &bytes);
                    }
                    Verdict::Pass => {}
                }
                let ours = self.engines[worker].handle_datagram(now, listener(), addr, &datagram);
                assert!(ours, "a client datagram was left to TURN");
            }
        }
        // Engines: mail and timers, then engines → clients.
        for e in 0..self.engines.len() {
            let engine = &mut self.engines[e];
            if engine.has_mail() || engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
            }
        }
        for e in 0..self.engines.len() {
            while let Some(t) = self.engines[e].poll_transmit() {
                assert_eq!(t.source, listener());
                match self.peers.iter().position(|p| p.addr == t.destination) {
                    Some(i) => {
                        let pass = match self.down_filter.as_mut() {
                            Some(f) => f(i, t.contents),
                            None => true,
                        };
                        if pass {
                            self.peers[i]
                                .client
                                .handle_datagram(now, t.source, t.contents);
                        }
                    }
                    None => self.undelivered += 1,
                }
            }
        }
        // Client timers and events.
        for p in &mut self.peers {
            if p.client.poll_timeout().is_some_and(|t| t <= now) {
                p.client.handle_timeout(now);
            }
            while let Some(ev) = p.client.poll_event() {
                p.events.push(ev);
            }
        }
        self.now += TICK;
    }

    /// Steps until `done` holds (checked after each step), at most `max` steps.
    pub fn run_until(&mut self, max: usize, mut done: impl FnMut(&Net) -> bool) -> bool {
        for _ in 0..max {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// Steps for `d` of fake time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until every peer finished DTLS (panics after 10 s of fake time).
    pub fn connect_all(&mut self) {
        let ok = self.run_until(1000, |n| n.peers.iter().all(Peer::dtls_connected));
        assert!(
            ok,
            "not every peer connected: {:?}",
            self.peers
                .iter()
                .map(|p| p.events.clone())
                .collect::<Vec<_>>()
        );
        // Let attach commands and keyframe requests settle.
        self.run_for(TICK * 5);
    }

    /// The sum of every engine's stats field `f`.
    pub fn total(&self, f: impl Fn(&uturn_media::MediaStats) -> u64) -> u64 {
        self.engines.iter().map(|e| f(&e.stats())).sum()
    }

    /// The publisher `p` sends one frame of each kind it has: a VP8 frame
    /// (keyframe or not) of `len` octets and an Opus packet.
    pub fn send_frame(&mut self, p: usize, keyframe: bool, len: usize, audio: bool) {
        let now = self.now;
        let payload = uturn_media::client::vp8_payload(keyframe, len);
        let client = &mut self.peers[p].client;
        client
            .send_rtp(now, uturn_sdp::MediaKind::Video, &payload, true)
            .expect("send video");
        if audio {
            client
                .send_rtp(now, uturn_sdp::MediaKind::Audio, &[0xfc; 80], false)
                .expect("send audio");
        }
    }
}
