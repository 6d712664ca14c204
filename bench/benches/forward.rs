//! The dataplane's per-datagram forwarding decision (`FastPath::decide`):
//! header parse plus table look-ups, without the send syscall.
//!
//! The table holds 10 000 allocations, each with a permission and a channel,
//! so look-ups hit maps of realistic size. Datagrams are taken round-robin
//! from 1 024 different clients/peers spread over the table, so the numbers
//! include the cache misses a busy relay sees rather than one hot entry.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uturn_dataplane::fastpath::{Decision, FastPath};
use uturn_dataplane::io::SocketId;
use uturn_dataplane::table::Table;
use uturn_stun::{Attribute, ChannelData, Class, MessageBuilder, Method, TransactionId};
use uturn_turn::{AllocationId, FiveTuple, PeerFilter, RuleChange};

const ALLOCATIONS: u32 = 10_000;
const SAMPLES: u32 = 1_024;
const PAYLOAD: usize = 160; // an Opus/RTP-sized datagram
const CHANNEL: u16 = 0x4000;
const LISTENER: SocketId = SocketId(0);

fn listener_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 3478)
}

fn client(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(100, a, b, c)),
        40_000 + (i % 20_000) as u16,
    )
}

fn relay(i: u32) -> (SocketAddr, SocketId) {
    let addr = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (i / 40_000) as u8)),
        20_000 + (i % 40_000) as u16,
    );
    (addr, SocketId(1 + i))
}

/// Peers in TEST-NET-3 (not in the filter's default-denied ranges).
fn peer(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8)),
        10_000 + (i % 50_000) as u16,
    )
}

fn table() -> Table {
    let mut t = Table::with_seed(0x5eed);
    t.add_listener(listener_addr(), LISTENER);
    for i in 0..ALLOCATIONS {
        let (relay_addr, relay_id) = relay(i);
        t.add_relay(relay_addr, relay_id);
        let allocation = AllocationId(u64::from(i));
        let rules = [
            RuleChange::AddAllocation {
                allocation,
                client: FiveTuple {
                    client: client(i),
                    server: listener_addr(),
                },
                relays: vec![relay_addr],
            },
            RuleChange::AddPermission {
                allocation,
                peer: peer(i).ip(),
            },
            RuleChange::AddChannel {
                allocation,
                channel: CHANNEL,
                peer: peer(i),
            },
        ];
        for rule in &rules {
            t.apply(rule);
        }
    }
    assert_eq!(t.allocations(), ALLOCATIONS as usize);
    assert_eq!(t.channels(), ALLOCATIONS as usize);
    t
}

/// Indices of the allocations the benchmark sends through, spread over the table.
fn samples() -> impl Iterator<Item = u32> {
    (0..SAMPLES).map(|k| k.wrapping_mul(7_919) % ALLOCATIONS)
}

fn fast_path() -> FastPath {
    FastPath::with_seed(Arc::new(PeerFilter::new(vec![], vec![])), 1)
}

fn expect_forward(d: &Decision<'_>) {
    assert!(matches!(d, Decision::Forward(_)), "{d:?}");
}

fn forward(c: &mut Criterion) {
    let table = table();
    let mut fp = fast_path();
    let payload = [0xabu8; PAYLOAD];

    // Client → peer, ChannelData.
    let channel_data: Vec<(SocketAddr, Vec<u8>)> = samples()
        .map(|i| {
            let mut frame = ChannelData::header(CHANNEL, PAYLOAD as u16).to_vec();
            frame.extend_from_slice(&payload);
            (client(i), frame)
        })
        .collect();
    // Client → peer, Send indication.
    let send: Vec<(SocketAddr, Vec<u8>)> = samples()
        .map(|i| {
            let mut out = Vec::new();
            let mut b = MessageBuilder::new(
                &mut out,
                Class::Indication,
                Method::SEND,
                TransactionId([i as u8; 12]),
            );
            b.add(&Attribute::XorPeerAddress(peer(i))).unwrap();
            b.add(&Attribute::Data(&payload)).unwrap();
            b.finish();
            (client(i), out)
        })
        .collect();
    // Peer → client: from the channel's peer (ChannelData) and from another
    // port of a permitted peer (Data indication).
    let from_channel_peer: Vec<(SocketId, SocketAddr)> =
        samples().map(|i| (relay(i).1, peer(i))).collect();
    let from_other_port: Vec<(SocketId, SocketAddr)> = samples()
        .map(|i| {
            let p = peer(i);
            (
                relay(i).1,
                SocketAddr::new(p.ip(), p.port().wrapping_add(1)),
            )
        })
        .collect();

    for (src, frame) in &channel_data {
        expect_forward(&fp.decide(&table, LISTENER, *src, frame));
    }
    for (src, msg) in &send {
        expect_forward(&fp.decide(&table, LISTENER, *src, msg));
    }

    let mut group = c.benchmark_group("fastpath");
    group.throughput(Throughput::Elements(1));

    let mut k = 0usize;
    group.bench_function("forward_decision_channel_data", |b| {
        b.iter(|| {
            let (src, frame) = &channel_data[k % channel_data.len()];
            k = k.wrapping_add(1);
            black_box(fp.decide(&table, LISTENER, black_box(*src), black_box(frame)));
        })
    });
    group.bench_function("forward_decision_send_indication", |b| {
        b.iter(|| {
            let (src, msg) = &send[k % send.len()];
            k = k.wrapping_add(1);
            black_box(fp.decide(&table, LISTENER, black_box(*src), black_box(msg)));
        })
    });
    group.bench_function("forward_decision_peer_to_client", |b| {
        b.iter(|| {
            let (relay, src) = from_channel_peer[k % from_channel_peer.len()];
            k = k.wrapping_add(1);
            black_box(fp.decide(&table, relay, black_box(src), black_box(&payload)));
        })
    });
    group.bench_function("forward_decision_peer_to_client_data_indication", |b| {
        b.iter(|| {
            let (relay, src) = from_other_port[k % from_other_port.len()];
            k = k.wrapping_add(1);
            black_box(fp.decide(&table, relay, black_box(src), black_box(&payload)));
        })
    });
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
