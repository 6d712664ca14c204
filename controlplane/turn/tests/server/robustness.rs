//! Robustness: bounded outputs, and long runs of corrupted or random
//! (but correctly signed) requests that must neither panic nor leak ports,
//! quota or relay sockets. Seeds are fixed so a failure reproduces.

use uturn_stun::attribute::{Attribute, AttributeType, PROTOCOL_UDP};
use uturn_stun::message::{Class, Method};
use uturn_stun::MessageBuilder;

use uturn_turn::RuleChange;

use crate::harness::*;

#[test]
fn undrained_outputs_are_bounded() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let bytes = client.build(Method::BINDING, random_tid(), &[]);
    // A driver that never drains: the server stops queueing, and counts.
    for _ in 0..5000 {
        h.server.handle_datagram(h.now, client.five_tuple, &bytes);
    }
    let mut queued = 0;
    while h.server.poll_transmit().is_some() {
        queued += 1;
    }
    assert!((1..=1024).contains(&queued), "{queued} transmits queued");
    assert_eq!(h.server.stats().dropped, 5000 - queued);
    // Drained, it answers again.
    assert!(client.send(&mut h, &bytes).is_some());
}

#[test]
fn mutated_requests_never_panic_and_never_leak() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7572_6e21);
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.mode.fingerprint = true;
    client.allocate(&mut h, &[]).assert_success();
    let valid: Vec<Vec<u8>> = vec![
        client.build(
            Method::ALLOCATE,
            random_tid(),
            &[Attribute::RequestedTransport(17), Attribute::EvenPort(true)],
        ),
        client.build(Method::REFRESH, random_tid(), &[Attribute::Lifetime(1200)]),
        client.build(
            Method::CREATE_PERMISSION,
            random_tid(),
            &[Attribute::XorPeerAddress(peer(1, 1))],
        ),
        client.build(
            Method::CHANNEL_BIND,
            random_tid(),
            &[
                Attribute::ChannelNumber(0x4000),
                Attribute::XorPeerAddress(peer(1, 1)),
            ],
        ),
        client.build(Method::BINDING, random_tid(), &[]),
    ];
    for round in 0..20_000 {
        let mut bytes = valid[round % valid.len()].clone();
        match rng.gen_range(0..4) {
            0 => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => bytes.truncate(rng.gen_range(0..bytes.len())),
            2 => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            _ => {
                // Swap two 4-byte aligned words: moves TLV headers around.
                let words = bytes.len() / 4;
                let (a, b) = (rng.gen_range(0..words), rng.gen_range(0..words));
                for k in 0..4 {
                    bytes.swap(a * 4 + k, b * 4 + k);
                }
            }
        }
        // A different source now and then, so 5-tuple state varies too.
        let from = five_tuple(1 + (round % 3) as u8);
        h.datagram(from, &bytes);
    }
    // Whatever happened, shutting down returns every port and quota unit.
    h.server.shutdown();
    h.drain();
    assert!(h.open_relays.is_empty());
    assert_eq!(h.shared.quota.total(), 0);
    assert_eq!(h.shared.ports.in_use(uturn_turn::IpFamily::V4), 0);
}

#[test]
fn random_signed_requests_never_panic_and_never_leak() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5475_726e);
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    config.min_port = 49152;
    config.max_port = 49171;
    config.user_quota = 6;
    let mut h = Harness::new(config);
    let mut clients: Vec<Client> = (1..=4).map(Client::alice).collect();
    for c in &mut clients {
        c.request(&mut h, Method::BINDING, &[]);
        c.nonce = c
            .request_once(&mut h, Method::REFRESH, random_tid(), &[])
            .nonce();
    }
    let types = [
        AttributeType::REQUESTED_TRANSPORT,
        AttributeType::LIFETIME,
        AttributeType::XOR_PEER_ADDRESS,
        AttributeType::CHANNEL_NUMBER,
        AttributeType::EVEN_PORT,
        AttributeType::RESERVATION_TOKEN,
        AttributeType::REQUESTED_ADDRESS_FAMILY,
        AttributeType::ADDITIONAL_ADDRESS_FAMILY,
        AttributeType::DONT_FRAGMENT,
    ];
    let methods = [
        Method::ALLOCATE,
        Method::REFRESH,
        Method::CREATE_PERMISSION,
        Method::CHANNEL_BIND,
    ];
    let mut successes = 0;
    for _ in 0..5000 {
        let pick = rng.gen_range(0..clients.len());
        let c = clients[pick].clone();
        let c = &c;
        let method = methods[rng.gen_range(0..methods.len())];
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, method, random_tid());
        if method == Method::ALLOCATE && rng.gen_bool(0.7) {
            b.add(&Attribute::RequestedTransport(PROTOCOL_UDP)).unwrap();
        }
        for _ in 0..rng.gen_range(0..5) {
            let typ = types[rng.gen_range(0..types.len())];
            // Mostly well-formed lengths, with values that are often plausible.
            let len = match typ {
                AttributeType::XOR_PEER_ADDRESS => [8, 20, 7][rng.gen_range(0..3)],
                AttributeType::RESERVATION_TOKEN => [8, 4][rng.gen_range(0..2)],
                AttributeType::EVEN_PORT => [1, 2][rng.gen_range(0..2)],
                AttributeType::DONT_FRAGMENT => [0, 4][rng.gen_range(0..2)],
                _ => [4, 3][rng.gen_range(0..2)],
            };
            let mut value: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if typ == AttributeType::XOR_PEER_ADDRESS && len >= 2 {
                value[1] = [1, 2][rng.gen_range(0..2)];
            }
            if typ == AttributeType::CHANNEL_NUMBER && len == 4 {
                value[0] = 0x40 | (value[0] & 0x0f);
            }
            if matches!(
                typ,
                AttributeType::REQUESTED_ADDRESS_FAMILY | AttributeType::ADDITIONAL_ADDRESS_FAMILY
            ) && len == 4
            {
                value[0] = [1, 2, 3][rng.gen_range(0..3)];
            }
            if typ == AttributeType::LIFETIME && len == 4 && rng.gen_bool(0.3) {
                value = vec![0; 4];
            }
            b.add_raw(typ, &value).unwrap();
        }
        b.add(&Attribute::Username("alice")).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(c.nonce.as_deref().unwrap()))
            .unwrap();
        b.message_integrity(&c.key()).unwrap();
        b.finish();
        if rng.gen_bool(0.05) {
            h.fail_binds = rng.gen_range(0..12);
        }
        if let Some(r) = c.send(&mut h, &out) {
            if r.is_success() {
                successes += 1;
            }
            if r.code() == Some(438) {
                // Time moved past the nonce's life: unsigned, with a new
                // one. Every client fetches a fresh nonce.
                assert!(r.nonce().is_some());
                for c in clients.iter_mut() {
                    c.nonce = None;
                    c.nonce = c
                        .request_once(&mut h, Method::REFRESH, random_tid(), &[])
                        .nonce();
                }
            } else {
                // Every other answer to an authenticated request is signed.
                assert_ne!(r.code(), Some(401), "{r:?}");
                r.assert_signed_for(c);
            }
        }
        h.fail_binds = 0;
        if rng.gen_bool(0.02) {
            h.advance(s(rng.gen_range(0..700)));
        }
    }
    assert!(
        successes > 100,
        "only {successes} successes: the generator is too weak"
    );
    let stats = h.server.stats();
    assert!(stats.allocations <= 4);
    assert_eq!(u64::from(h.shared.quota.total()), stats.allocations);
    h.server.shutdown();
    h.drain();
    assert!(h.open_relays.is_empty());
    assert_eq!(h.shared.quota.total(), 0);
    assert_eq!(h.shared.ports.in_use(uturn_turn::IpFamily::V4), 0);
    assert_eq!(h.shared.ports.in_use(uturn_turn::IpFamily::V6), 0);
    assert_eq!(h.shared.ports.reservations(), 0);
}

#[test]
fn mass_expiry_is_spread_over_bounded_timeout_calls() {
    let mut config = config();
    config.min_port = 40000;
    config.max_port = 41999;
    let mut h = Harness::new(config);
    let mut client = Client::alice(1);
    // 1500 allocations from one IP, different ports, all expiring together.
    for n in 0..1500u16 {
        client.five_tuple.client.set_port(20000 + n);
        client.nonce = None;
        let r = client.request_once(&mut h, Method::ALLOCATE, random_tid(), &[]);
        client.nonce = r.nonce();
        client.allocate(&mut h, &[]).assert_success();
    }
    h.take_rules();
    assert_eq!(h.server.stats().allocations, 1500);

    // One call at the deadline handles at most 1024 deadlines; the server
    // asks to be called again at once for the rest.
    h.now += s(600);
    h.server.handle_timeout(h.now);
    h.drain();
    let first = h
        .take_rules()
        .iter()
        .filter(|r| matches!(r, RuleChange::RemoveAllocation { .. }))
        .count();
    assert!(first > 0 && first < 1500, "{first} removed in one call");
    assert!(h.server.poll_timeout().is_some_and(|t| t <= h.now));
    h.server.handle_timeout(h.now);
    h.drain();
    let second = h
        .take_rules()
        .iter()
        .filter(|r| matches!(r, RuleChange::RemoveAllocation { .. }))
        .count();
    assert_eq!(first + second, 1500);
    assert_eq!(h.server.stats().allocations, 0);
    assert!(h.open_relays.is_empty());
}
