//! Malformed-packet injection: tens of thousands of bogus datagrams from many
//! source ports at uturn's listener (random bytes, truncated and lying STUN
//! headers, bad cookies, overrunning attributes, unknown
//! comprehension-required attributes, bad ChannelData, empty and ~64 KiB
//! datagrams), generated from a fixed seed so a failure replays exactly.
//!
//! Afterwards the relay must still be running, answer a Binding, relay for
//! an allocation set up before the flood, not have grown its memory with the
//! garbage, and have counted the drops. RFC 8489 §6.3.1 (420 with
//! UNKNOWN-ATTRIBUTES) is checked on its own.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::turn::{self, Client, TurnError};
use common::{Auth, Flavor, Server, ServerOptions};

/// Flood size and shape.
const FLOOD_PACKETS: usize = 40_000;
const WARMUP_PACKETS: usize = 4_000;
const SOURCE_SOCKETS: usize = 64;
/// 3x the 2 x 512 provided buffers of two io_uring workers.
const HUGE_WARMUP_PACKETS: usize = 3 * 2 * 512;
/// Packets per burst before yielding briefly, so the relay actually gets to
/// parse most of them instead of the kernel dropping them at its socket.
const BURST: usize = 64;
/// Memory may not grow with bogus packets; this allows for allocator noise.
const RSS_SLACK_KIB: u64 = 16 * 1024;

const CHANNEL: u16 = 0x4001;
/// An attribute type in the comprehension-required range (RFC 8489 §14:
/// 0x0000-0x7FFF) that no specification assigns.
const UNKNOWN_REQUIRED_ATTR: u16 = 0x7F31;

/// xorshift64* (Vigna 2016): deterministic, tiny, good enough for garbage.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn tid(&mut self) -> [u8; 12] {
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.next().to_be_bytes());
        tid[8..].copy_from_slice(&(self.next() as u32).to_be_bytes());
        tid
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A STUN header with the given type and body length field.
fn header(rng: &mut Rng, msg_type: u16, len: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend_from_slice(&msg_type.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&turn::MAGIC_COOKIE.to_be_bytes());
    h.extend(rng.bytes(12));
    h
}

/// Request and indication types the relay knows, for "almost valid" garbage.
const TYPES: [u16; 8] = [
    turn::BINDING_REQUEST,
    turn::ALLOCATE_REQUEST,
    turn::REFRESH_REQUEST,
    turn::CREATE_PERMISSION_REQUEST,
    turn::CHANNEL_BIND_REQUEST,
    turn::SEND_INDICATION,
    0x0011, // Binding indication
    turn::ALLOCATE_SUCCESS,
];

/// One bogus datagram. `bound_channel` is the channel the test allocation
/// uses: ChannelData on it is only ever sent with a length that overruns
/// the datagram, which RFC 8656 §12.5 says to discard.
fn bogus(rng: &mut Rng, bound_channel: u16) -> Vec<u8> {
    let mut pkt = bogus_any(rng, bound_channel);
    // Random bytes could, by chance, form valid ChannelData for the bound
    // channel, which the relay would rightly forward: move those off it.
    if let [hi, lo, l1, l2, rest @ ..] = pkt.as_mut_slice() {
        let claimed = usize::from(u16::from_be_bytes([*l1, *l2]));
        if u16::from_be_bytes([*hi, *lo]) == bound_channel && claimed <= rest.len() {
            *lo ^= 0x80;
        }
    }
    pkt
}

fn bogus_any(rng: &mut Rng, bound_channel: u16) -> Vec<u8> {
    match rng.below(24) {
        // Random bytes of random length.
        0..=3 => {
            let len = 1 + rng.below(1400);
            rng.bytes(len)
        }
        // Empty datagram.
        4 => Vec::new(),
        // Truncated STUN header.
        5 | 6 => {
            let typ = TYPES[rng.below(TYPES.len())];
            let mut h = header(rng, typ, 0);
            h.truncate(1 + rng.below(19));
            h
        }
        // Lying length: the header's length disagrees with the body.
        7 | 8 => {
            let typ = TYPES[rng.below(TYPES.len())];
            let body = rng.below(200) & !3;
            let mut lie = rng.below(0x10000) as u16 & !3;
            if usize::from(lie) == body {
                lie = lie.wrapping_add(4);
            }
            let mut m = header(rng, typ, lie);
            m.extend(rng.bytes(body));
            m
        }
        // Bad magic cookie on an otherwise fine Binding request.
        9 => {
            let mut m = header(rng, turn::BINDING_REQUEST, 0);
            let cookie = (rng.next() as u32) | 1; // never the real, even cookie
            m[4..8].copy_from_slice(&cookie.to_be_bytes());
            m
        }
        // An attribute whose length runs past the end of the message.
        10 | 11 => {
            let typ = TYPES[rng.below(TYPES.len())];
            let attr_type =
                [0x0006u16, 0x0012, 0x0013, 0x0014, 0x0015, 0x0008, 0x8028][rng.below(7)];
            let len = rng.below(16) & !3;
            let value = rng.bytes(len);
            let mut m = header(rng, typ, (4 + value.len()) as u16);
            m.extend_from_slice(&attr_type.to_be_bytes());
            let claimed = value.len() as u16 + 4 + rng.below(1000) as u16;
            m.extend_from_slice(&claimed.to_be_bytes());
            m.extend(value);
            m
        }
        // Unknown comprehension-required attribute in a well-formed Binding
        // or Allocate request (answered with 420 or 401, not relayed).
        12 | 13 => {
            let typ = [turn::BINDING_REQUEST, turn::ALLOCATE_REQUEST][rng.below(2)];
            let value = rng.bytes(4);
            let tid = rng.tid();
            turn::encode(
                typ,
                &tid,
                &[(UNKNOWN_REQUIRED_ATTR, &value)],
                None,
                rng.below(2) == 0,
            )
        }
        // Well-framed STUN with garbage attribute values: bad addresses,
        // wrong-size MESSAGE-INTEGRITY, bogus CHANNEL-NUMBER, and so on.
        14..=16 => {
            let typ = TYPES[rng.below(TYPES.len())];
            let tid = rng.tid();
            let attr_types = [
                turn::ATTR_USERNAME,
                turn::ATTR_MESSAGE_INTEGRITY,
                turn::ATTR_CHANNEL_NUMBER,
                turn::ATTR_LIFETIME,
                turn::ATTR_XOR_PEER_ADDRESS,
                turn::ATTR_DATA,
                turn::ATTR_REALM,
                turn::ATTR_NONCE,
                turn::ATTR_REQUESTED_TRANSPORT,
                turn::ATTR_FINGERPRINT,
                0x001C, // MESSAGE-INTEGRITY-SHA256
                0x001E, // USERHASH
                0x0017, // REQUESTED-ADDRESS-FAMILY
                0x0018, // EVEN-PORT
                0x0022, // RESERVATION-TOKEN
            ];
            let count = 1 + rng.below(6);
            let values: Vec<(u16, Vec<u8>)> = (0..count)
                .map(|_| {
                    let t = attr_types[rng.below(attr_types.len())];
                    let len = rng.below(40);
                    (t, rng.bytes(len))
                })
                .collect();
            let attrs: Vec<(u16, &[u8])> = values.iter().map(|(t, v)| (*t, v.as_slice())).collect();
            turn::encode(typ, &tid, &attrs, None, false)
        }
        // ChannelData whose length field overruns the datagram.
        17..=19 => {
            let channel = if rng.below(4) == 0 {
                bound_channel
            } else {
                0x4000 + rng.below(0x4000) as u16
            };
            let len = rng.below(200);
            let payload = rng.bytes(len);
            let claimed = payload.len() as u16 + 1 + rng.below(2000) as u16;
            let mut m = Vec::with_capacity(4 + payload.len());
            m.extend_from_slice(&channel.to_be_bytes());
            m.extend_from_slice(&claimed.to_be_bytes());
            m.extend(payload);
            m
        }
        // Short ChannelData: 1-3 bytes, not even a header.
        20 => {
            let len = 1 + rng.below(3);
            let mut m = rng.bytes(len);
            m[0] = 0x40 | (m[0] & 0x3F);
            m
        }
        // Valid-looking Send indication from a source with no allocation.
        21 => {
            let tid = rng.tid();
            let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let len = rng.below(100);
            let payload = rng.bytes(len);
            turn::encode(
                turn::SEND_INDICATION,
                &tid,
                &[
                    (turn::ATTR_XOR_PEER_ADDRESS, &turn::xor_address(peer, &tid)),
                    (turn::ATTR_DATA, &payload),
                ],
                None,
                false,
            )
        }
        // Huge datagrams (~64 KiB), now and then: STUN-, ChannelData- or
        // anything-looking.
        _ => {
            if rng.below(40) != 0 {
                let len = 1 + rng.below(300);
                return rng.bytes(len);
            }
            let len = 60_000 + rng.below(65_507 - 60_000);
            let mut m = rng.bytes(len);
            match rng.below(3) {
                0 => m[0] &= 0x3F,
                1 => m[0] = 0x40 | (m[0] & 0x3F),
                _ => {}
            }
            m
        }
    }
}

/// Sends `count` bogus datagrams round-robin from `sources`.
fn flood(server: SocketAddr, sources: &[UdpSocket], seed: u64, count: usize) {
    let mut rng = Rng(seed);
    for i in 0..count {
        let pkt = bogus(&mut rng, CHANNEL);
        // A full socket buffer (ENOBUFS/EAGAIN) is the flood working; the
        // relay's behaviour is what is under test, not our send rate.
        let _ = sources[i % sources.len()].send_to(&pkt, server);
        if i % BURST == BURST - 1 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sends enough ~64 KiB datagrams that every receive buffer of every worker
/// has held one (several times the io_uring ring size per worker).
fn fill_receive_buffers(server: SocketAddr, sources: &[UdpSocket]) {
    let mut rng = Rng(0x5EED_00FF);
    let mut huge = rng.bytes(65_000);
    // 0xFF starts no STUN, ChannelData, DTLS or RTP packet (RFC 7983):
    // never anything the relay could forward, whatever the seed.
    huge[0] = 0xFF;
    for i in 0..HUGE_WARMUP_PACKETS {
        let _ = sources[i % sources.len()].send_to(&huge, server);
        // Big datagrams fill a socket buffer fast: pace them more gently.
        if i % 8 == 7 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A Binding request from a fresh socket gets its success response.
fn assert_binding_answered(server: &mut Server, when: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // The relay may still be working through the flood's backlog: retry.
    let answered = (0..20).any(|_| common::binding(&sock, server.listen).is_some());
    assert!(
        answered,
        "no Binding response {when} (alive: {}); log:\n{}",
        server.is_alive(),
        server.log()
    );
}

/// One round trip client → relay → peer → relay → client over the channel.
fn assert_relays(
    client: &Client,
    peer: &UdpSocket,
    relayed: SocketAddr,
    tag: &str,
    log: &dyn Fn() -> String,
) {
    let out = format!("to peer {tag}").into_bytes();
    let back = format!("from peer {tag}").into_bytes();
    let mut buf = vec![0u8; 2048];
    // Retransmit like an application would: the relay may be busy with the
    // flood backlog and drop under load, but must relay eventually.
    let mut got_out = false;
    for _ in 0..10 {
        client.send_channel(CHANNEL, &out);
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            assert_eq!(from, relayed, "peer saw a source other than the relay");
            assert_eq!(&buf[..n], &out[..], "payload altered on the way out");
            got_out = true;
            break;
        }
    }
    assert!(
        got_out,
        "ChannelData not relayed to the peer {tag}; log:\n{}",
        log()
    );
    let mut got_back = false;
    for _ in 0..10 {
        peer.send_to(&back, relayed).unwrap();
        if let Some((channel, _, data)) = client.recv_data(Duration::from_millis(500)) {
            assert_eq!(channel, CHANNEL, "reply arrived on the wrong channel");
            assert_eq!(data, back, "payload altered on the way back");
            got_back = true;
            break;
        }
    }
    assert!(
        got_back,
        "peer datagram not relayed back {tag}; log:\n{}",
        log()
    );
}

fn dropped_total(server: &Server) -> f64 {
    common::metric_sum(&server.metrics_text(), "uturn_dropped_packets_total")
}

#[test]
fn malformed_flood_uring_backend() {
    malformed_flood_keeps_relay_up_relaying_and_memory_flat("uring", 9);
}

#[test]
fn malformed_flood_epoll_backend() {
    malformed_flood_keeps_relay_up_relaying_and_memory_flat("epoll", 11);
}

fn malformed_flood_keeps_relay_up_relaying_and_memory_flat(backend: &'static str, port_block: u16) {
    let mut opts = ServerOptions::new(Auth::Static, port_block);
    opts.metrics = true;
    // Two workers: SO_REUSEPORT spreads the sources over both.
    opts.threads = Some(2);
    opts.backend = Some(backend);
    let mut server = Server::start(&opts);
    let log = || server.log();

    // An allocation with a channel to a peer, set up before the flood.
    let peer = UdpSocket::bind((common::PEER_IP, 0)).unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut client = Client::new(server.listen, common::USER, common::PASSWORD);
    let relayed = client
        .allocate()
        .unwrap_or_else(|e| panic!("allocate: {e:?}\n{}", log()));
    client
        .channel_bind(CHANNEL, peer_addr)
        .unwrap_or_else(|e| panic!("channel bind: {e:?}\n{}", log()));
    assert_relays(&client, &peer, relayed, "before the flood", &log);

    // Many source ports; the allocation's own 5-tuple sends garbage too.
    let mut sources: Vec<UdpSocket> = (0..SOURCE_SOCKETS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sources.push(client.sock.try_clone().unwrap());

    // Warm up, then take the baseline: first-touch allocations, thread
    // stacks, and the receive buffers. io_uring's provided buffers are
    // 64 KiB+ each and only become resident where the kernel wrote, so a
    // huge datagram through each of them makes their memory count now, not
    // in the middle of the measured flood (dataplane/src/io/uring.rs).
    flood(server.listen, &sources, 0x5EED_0001, WARMUP_PACKETS);
    fill_receive_buffers(server.listen, &sources);
    assert_binding_answered(&mut server, "after the warm-up");
    let rss_before = server.rss_kib();
    let dropped_before = (server.flavor == Flavor::Uturn).then(|| dropped_total(&server));

    flood(server.listen, &sources, 0x5EED_0002, FLOOD_PACKETS);

    assert!(
        server.is_alive(),
        "the relay died in the flood; log:\n{}",
        server.log()
    );
    assert_binding_answered(&mut server, "after the flood");
    // Nothing of the flood may have reached the peer (overrunning
    // ChannelData on the bound channel must be discarded, not truncated).
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    if let Ok((n, from)) = peer.recv_from(&mut buf) {
        panic!("the peer received {n} bytes from {from} during the flood");
    }
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Error responses to the garbage sent from the client's socket are
    // still queued there; `recv_data` skips them.
    let log = || server.log();
    assert_relays(&client, &peer, relayed, "after the flood", &log);

    let rss_after = server.rss_kib();
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {FLOOD_PACKETS} bogus packets"
    );
    let dropped_after = (server.flavor == Flavor::Uturn).then(|| dropped_total(&server));
    if let (Some(before), Some(after)) = (dropped_before, dropped_after) {
        // Most of the flood is unanswerable garbage; allow for datagrams the
        // kernel dropped at a full socket buffer before uturn saw them.
        assert!(
            after - before >= (FLOOD_PACKETS / 10) as f64,
            "only {} drops counted for {FLOOD_PACKETS} bogus packets:\n{}",
            after - before,
            server.metrics_text()
        );
    }
    if server.flavor == Flavor::Uturn {
        let metrics = server.metrics_text();
        // Garbage created nothing: the one allocation is the test's own.
        let allocations = common::metric_sum(&metrics, "uturn_allocations");
        assert_eq!(allocations, 1.0, "allocations after the flood:\n{metrics}");
        // Two round trips (before and after): at least 2 packets each way.
        let relayed = common::metric_sum(&metrics, "uturn_relayed_packets_total");
        assert!(relayed >= 4.0, "relayed packets not counted:\n{metrics}");
    }
    assert!(
        !server.log().contains("panicked"),
        "a thread panicked:\n{}",
        server.log()
    );
    eprintln!(
        "{backend}: RSS {rss_before} KiB -> {rss_after} KiB; \
         dropped {dropped_before:?} -> {dropped_after:?}"
    );
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let server = Server::start(&ServerOptions::new(Auth::Static, 10));
    let log = || server.log();

    // Binding: no authentication involved, so straight to 420 (RFC 8489
    // §6.3.1), listing the attribute in UNKNOWN-ATTRIBUTES.
    let client = Client::new(server.listen, common::USER, common::PASSWORD);
    let resp = client.transact(&|tid| {
        turn::encode(
            turn::BINDING_REQUEST,
            tid,
            &[(UNKNOWN_REQUIRED_ATTR, &[1, 2, 3, 4]), (0x8123, &[0; 4])],
            None,
            true,
        )
    });
    match resp {
        Err(TurnError::Error(420, m)) => {
            assert_eq!(m.msg_type, turn::BINDING_ERROR);
            // Only the comprehension-required one is listed; 0x8123 is
            // comprehension-optional and may be ignored.
            assert_eq!(m.unknown_attributes(), vec![UNKNOWN_REQUIRED_ATTR], "{m:?}");
        }
        other => panic!(
            "Binding with an unknown required attribute: {other:?}\n{}",
            log()
        ),
    }

    // Allocate, authenticated (the client answers a 401 with credentials):
    // whether the server checks attributes before or after authenticating,
    // the final answer must be 420.
    let mut client = Client::new(server.listen, common::USER, common::PASSWORD);
    let resp = client.request(
        turn::ALLOCATE_REQUEST,
        &[
            (turn::ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]),
            (UNKNOWN_REQUIRED_ATTR, vec![9, 9, 9, 9]),
        ],
    );
    match resp {
        Err(TurnError::Error(420, m)) => {
            assert_eq!(m.msg_type, turn::ALLOCATE_ERROR);
            assert_eq!(m.unknown_attributes(), vec![UNKNOWN_REQUIRED_ATTR], "{m:?}");
        }
        other => panic!(
            "Allocate with an unknown required attribute: {other:?}\n{}",
            log()
        ),
    }

    // And the same client can still allocate without it.
    client
        .allocate()
        .unwrap_or_else(|e| panic!("allocate after the 420: {e:?}\n{}", log()));
}

#[test]
fn flood_generator_is_deterministic_and_covers_every_kind() {
    let mut a = Rng(0x5EED_0002);
    let mut b = Rng(0x5EED_0002);
    let mut empty = 0;
    let mut huge = 0;
    let mut channel_data = 0;
    let mut stun = 0;
    for _ in 0..FLOOD_PACKETS {
        let (pa, pb) = (bogus(&mut a, CHANNEL), bogus(&mut b, CHANNEL));
        assert_eq!(pa, pb);
        match pa.first() {
            None => empty += 1,
            Some(0x40..=0x7F) => channel_data += 1,
            Some(0x00..=0x03) => stun += 1,
            _ => {}
        }
        if pa.len() >= 60_000 {
            huge += 1;
        }
    }
    assert!(
        empty > 100 && huge > 5 && channel_data > 1000 && stun > 10_000,
        "empty {empty} huge {huge} channel data {channel_data} stun {stun}"
    );
}
