//! Allocate (RFC 8656 §7): relayed addresses, families, ports, quotas,
//! relay binding and retransmissions.

use std::net::{IpAddr, SocketAddr};

use uturn_stun::attribute::{AddressFamily, Attribute, AttributeType};
use uturn_stun::message::Method;
use uturn_turn::{AllocationId, IpFamily, RuleChange};

use crate::harness::*;

fn allocation_of(rules: &[RuleChange]) -> (AllocationId, Vec<SocketAddr>) {
    rules
        .iter()
        .find_map(|r| match r {
            RuleChange::AddAllocation {
                allocation, relays, ..
            } => Some((*allocation, relays.clone())),
            _ => None,
        })
        .expect("no AddAllocation")
}

#[test]
fn allocate_opens_relay_then_adds_allocation_then_answers() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    let r = client.allocate(&mut h, &[]);
    r.assert_success();
    let rules = h.take_rules();
    let relay = match &rules[..] {
        [RuleChange::OpenRelay {
            relay,
            dont_fragment: false,
        }, RuleChange::AddAllocation {
            client: five,
            relays,
            ..
        }] => {
            assert_eq!(*five, client.five_tuple);
            assert_eq!(relays, &vec![*relay]);
            *relay
        }
        other => panic!("unexpected rules {other:?}"),
    };
    assert_eq!(relay.ip(), IpAddr::V4(RELAY_V4));
    assert!((49152..=49999).contains(&relay.port()));
    assert_eq!(r.relayed(), vec![relay]);
    assert_eq!(r.lifetime(), Some(600));
    assert_eq!(r.mapped(), Some(client.five_tuple.client));
    assert_eq!(r.token(), None);
    let stats = h.server.stats();
    assert_eq!(stats.allocations, 1);
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 1);
    assert_eq!(h.shared.quota.of_user("alice"), 1);
}

#[test]
fn external_address_is_advertised_but_relay_binds_locally() {
    let mut config = config();
    config.external_ipv4 = Some("192.0.2.200".parse().unwrap());
    let mut h = Harness::new(config);
    let r = Client::alice(1).allocate(&mut h, &[]);
    let (_, relays) = allocation_of(&h.take_rules());
    assert_eq!(relays[0].ip(), IpAddr::V4(RELAY_V4));
    assert_eq!(
        r.relayed(),
        vec![SocketAddr::new(
            "192.0.2.200".parse().unwrap(),
            relays[0].port()
        )]
    );
}

#[test]
fn retransmitted_allocate_gets_the_same_bytes_not_437() {
    let mut h = Harness::new(config());
    let tid = random_tid();
    let attrs = [Attribute::RequestedTransport(17)];
    let mut c2 = Client::alice(2);
    let challenge = c2.request_once(&mut h, Method::ALLOCATE, random_tid(), &attrs);
    c2.nonce = challenge.nonce();
    let first = c2.request_once(&mut h, Method::ALLOCATE, tid, &attrs);
    first.assert_success();
    assert_eq!(h.take_rules().len(), 2);
    h.advance(s(5));
    let again = c2.request_once(&mut h, Method::ALLOCATE, tid, &attrs);
    assert_eq!(again, first, "retransmission must get the same bytes");
    assert!(
        h.take_rules().is_empty(),
        "a retransmission must not re-execute"
    );
    assert_eq!(h.server.stats().allocations, 1);
    assert_eq!(h.server.stats().retransmissions, 1);

    // A new transaction on the same 5-tuple is 437.
    let r = c2.request_once(&mut h, Method::ALLOCATE, random_tid(), &attrs);
    r.assert_error(437);
    r.assert_signed_for(&c2);

    // Once the cache entry is gone (40 s), the retransmission is a new request: 437.
    h.advance(s(40));
    c2.request_once(&mut h, Method::ALLOCATE, tid, &attrs)
        .assert_error(437);
}

#[test]
fn requested_transport_must_be_udp() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client
        .request(&mut h, Method::ALLOCATE, &[])
        .assert_error(400);
    client
        .request(
            &mut h,
            Method::ALLOCATE,
            &[Attribute::RequestedTransport(6)],
        )
        .assert_error(442);
    // Malformed value (3 bytes) is 400.
    let mut out = Vec::new();
    let tid = random_tid();
    {
        let mut b = uturn_stun::MessageBuilder::new(
            &mut out,
            uturn_stun::Class::Request,
            Method::ALLOCATE,
            tid,
        );
        b.add_raw(AttributeType::REQUESTED_TRANSPORT, &[17, 0, 0])
            .unwrap();
        b.add(&Attribute::Username("alice")).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(client.nonce.as_deref().unwrap()))
            .unwrap();
        b.message_integrity(&client.key()).unwrap();
        b.finish();
    }
    client.send(&mut h, &out).unwrap().assert_error(400);
    assert!(h.take_rules().is_empty());
    assert_eq!(h.shared.quota.total(), 0);
}

#[test]
fn dont_fragment_reaches_open_relay() {
    let mut h = Harness::new(config());
    Client::alice(1)
        .allocate(&mut h, &[Attribute::DontFragment])
        .assert_success();
    assert!(matches!(
        h.take_rules()[0],
        RuleChange::OpenRelay {
            dont_fragment: true,
            ..
        }
    ));
}

#[test]
fn requested_address_family() {
    // IPv6 without an IPv6 relay address: 440.
    let mut h = Harness::new(config());
    let v6 = Attribute::RequestedAddressFamily(AddressFamily::V6);
    Client::alice(1).allocate(&mut h, &[v6]).assert_error(440);
    assert_eq!(h.shared.quota.total(), 0);

    // With one: an IPv6 relay.
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let r = Client::alice(1).allocate(&mut h, &[v6]);
    r.assert_success();
    let relayed = r.relayed();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].ip(), IpAddr::V6(RELAY_V6));
    // IPv4 explicitly.
    let r = Client::alice(2).allocate(
        &mut h,
        &[Attribute::RequestedAddressFamily(AddressFamily::V4)],
    );
    assert_eq!(r.relayed()[0].ip(), IpAddr::V4(RELAY_V4));

    // No IPv4 relay at all: the default family is refused.
    let mut config = self::config();
    config.relay_ipv4 = None;
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    Client::alice(1).allocate(&mut h, &[]).assert_error(440);
}

#[test]
fn additional_address_family_dual_stack() {
    let aaf = Attribute::AdditionalAddressFamily(AddressFamily::V6);
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let r = Client::alice(1).allocate(&mut h, &[aaf]);
    r.assert_success();
    let relayed = r.relayed();
    assert_eq!(relayed.len(), 2);
    assert_eq!(relayed[0].ip(), IpAddr::V4(RELAY_V4));
    assert_eq!(relayed[1].ip(), IpAddr::V6(RELAY_V6));
    assert!(!r.has(AttributeType::ADDRESS_ERROR_CODE));
    let rules = h.take_rules();
    assert_eq!(opened(&rules).len(), 2);
    let (_, relays) = allocation_of(&rules);
    assert_eq!(relays, relayed);

    // Without IPv6: IPv4 only, and ADDRESS-ERROR-CODE 440 for IPv6.
    let mut h = Harness::new(self::config());
    let r = Client::alice(1).allocate(&mut h, &[aaf]);
    r.assert_success();
    assert_eq!(r.relayed().len(), 1);
    match r.attr(AttributeType::ADDRESS_ERROR_CODE) {
        Some(Attribute::AddressErrorCode {
            family: AddressFamily::V6,
            code: 440,
            ..
        }) => {}
        other => panic!("no ADDRESS-ERROR-CODE 440: {other:?}"),
    }

    // Together with REQUESTED-ADDRESS-FAMILY: 400. IPv4 as the additional family: 400.
    let raf = Attribute::RequestedAddressFamily(AddressFamily::V4);
    Client::alice(2)
        .allocate(&mut h, &[raf, aaf])
        .assert_error(400);
    Client::alice(3)
        .allocate(
            &mut h,
            &[Attribute::AdditionalAddressFamily(AddressFamily::V4)],
        )
        .assert_error(400);
}

#[test]
fn even_port_and_reservation_token() {
    let mut h = Harness::new(config());
    // EVEN-PORT without R: an even port, no token.
    let r = Client::alice(1).allocate(&mut h, &[Attribute::EvenPort(false)]);
    assert_eq!(r.relayed()[0].port() % 2, 0);
    assert_eq!(r.token(), None);

    // With R: an even port, and a token for port + 1.
    let r = Client::alice(2).allocate(&mut h, &[Attribute::EvenPort(true)]);
    r.assert_success();
    let port = r.relayed()[0].port();
    assert_eq!(port % 2, 0);
    let token = r.token().expect("RESERVATION-TOKEN");
    assert_eq!(h.shared.ports.reservations(), 1);

    // Token with EVEN-PORT or REQUESTED-ADDRESS-FAMILY: 400, token kept.
    let t = Attribute::ReservationToken(&token);
    Client::alice(3)
        .allocate(&mut h, &[t, Attribute::EvenPort(false)])
        .assert_error(400);
    Client::alice(3)
        .allocate(
            &mut h,
            &[t, Attribute::RequestedAddressFamily(AddressFamily::V4)],
        )
        .assert_error(400);
    assert_eq!(h.shared.ports.reservations(), 1);

    // Claimed from another worker: the reserved port.
    let mut other = h.sibling();
    let r = Client::alice(3).allocate(&mut other, &[t]);
    r.assert_success();
    assert_eq!(r.relayed()[0].port(), port + 1);
    assert_eq!(h.shared.ports.reservations(), 0);

    // Used up, or never issued: 508.
    Client::alice(4).allocate(&mut h, &[t]).assert_error(508);
    Client::alice(5)
        .allocate(&mut h, &[Attribute::ReservationToken(&[9; 8])])
        .assert_error(508);
    assert_eq!(h.shared.quota.total(), 3);
}

#[test]
fn reservation_expires_after_30_seconds() {
    let mut h = Harness::new(config());
    let r = Client::alice(1).allocate(&mut h, &[Attribute::EvenPort(true)]);
    let token = r.token().unwrap();
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 2);
    h.advance(s(29));
    assert_eq!(h.shared.ports.reservations(), 1);
    h.advance(s(1));
    assert_eq!(h.shared.ports.reservations(), 0);
    assert_eq!(
        h.shared.ports.in_use(IpFamily::V4),
        1,
        "the reserved port goes back to the pool"
    );
    Client::alice(2)
        .allocate(&mut h, &[Attribute::ReservationToken(&token)])
        .assert_error(508);
}

#[test]
fn lifetime_is_capped_and_never_below_default() {
    let mut h = Harness::new(config());
    let cases = [
        (30, 600),
        (599, 600),
        (2000, 2000),
        (3600, 3600),
        (100_000, 3600),
        (u32::MAX, 3600),
    ];
    for (n, (asked, granted)) in cases.into_iter().enumerate() {
        let r = Client::alice(n as u8 + 1).allocate(&mut h, &[Attribute::Lifetime(asked)]);
        assert_eq!(r.lifetime(), Some(granted), "asked {asked}");
    }
}

#[test]
fn per_user_quota_is_486() {
    let mut config = config();
    config.user_quota = 2;
    let mut h = Harness::new(config);
    Client::alice(1).allocate(&mut h, &[]).assert_success();
    Client::alice(2).allocate(&mut h, &[]).assert_success();
    let mut third = Client::alice(3);
    let r = third.allocate(&mut h, &[]);
    r.assert_error(486);
    r.assert_signed_for(&third);
    // Another user is not affected.
    Client::new(4, "bob", "bob-pw")
        .allocate(&mut h, &[])
        .assert_success();
    // Freed quota can be used again.
    Client::alice(1).refresh(&mut h, Some(0)).assert_success();
    third.allocate(&mut h, &[]).assert_success();
}

#[test]
fn total_quota_is_shared_across_workers() {
    let mut config = config();
    config.total_quota = 2;
    let mut a = Harness::new(config);
    let mut b = a.sibling();
    Client::alice(1).allocate(&mut a, &[]).assert_success();
    Client::new(2, "bob", "bob-pw")
        .allocate(&mut b, &[])
        .assert_success();
    Client::alice(3).allocate(&mut a, &[]).assert_error(486);
    Client::new(4, "bob", "bob-pw")
        .allocate(&mut b, &[])
        .assert_error(486);
    // An expiry on one worker frees quota for the other.
    a.advance(s(600));
    assert_eq!(a.shared.quota.total(), 1);
    Client::new(4, "bob", "bob-pw")
        .allocate(&mut b, &[])
        .assert_success();
    // Ports are shared too: two allocations, two distinct ports.
    assert_eq!(a.shared.ports.in_use(IpFamily::V4), 2);
}

#[test]
fn no_free_port_is_508() {
    let mut config = config();
    config.min_port = 50000;
    config.max_port = 50000;
    let mut h = Harness::new(config);
    Client::alice(1).allocate(&mut h, &[]).assert_success();
    let mut second = Client::alice(2);
    let r = second.allocate(&mut h, &[]);
    r.assert_error(508);
    r.assert_signed_for(&second);
    // Nothing leaked: quota back to one.
    assert_eq!(h.shared.quota.total(), 1);
    // An even port does not exist in {50000}? It does: 50000 is even. A pair does not.
    Client::alice(3)
        .allocate(&mut h, &[Attribute::EvenPort(true)])
        .assert_error(508);
}

#[test]
fn failed_bind_is_retried_on_another_port() {
    let mut h = Harness::new(config());
    h.fail_binds = 3;
    let r = Client::alice(1).allocate(&mut h, &[]);
    r.assert_success();
    assert_eq!(h.bind_attempts.len(), 4);
    let distinct: std::collections::HashSet<_> = h.bind_attempts.iter().collect();
    assert_eq!(distinct.len(), 4, "a failed port is not tried again");
    assert_eq!(r.relayed(), vec![h.bind_attempts[3]]);
    // Failed ports went back to the pool; only the bound one is in use.
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 1);
}

#[test]
fn bind_failing_everywhere_is_508_and_releases_everything() {
    let mut h = Harness::new(config());
    h.fail_binds = u32::MAX;
    let mut client = Client::alice(1);
    let r = client.allocate(&mut h, &[]);
    r.assert_error(508);
    r.assert_signed_for(&client);
    assert_eq!(h.bind_attempts.len(), 10);
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 0);
    assert_eq!(h.shared.quota.total(), 0);
    assert!(h
        .take_rules()
        .iter()
        .all(|r| matches!(r, RuleChange::OpenRelay { .. })));
    assert_eq!(h.server.stats().allocations, 0);
    // The 508 is cached like any authenticated answer; a new request works
    // once binds succeed again.
    h.fail_binds = 0;
    client.allocate(&mut h, &[]).assert_success();
}

#[test]
fn dual_stack_ipv6_bind_failure_degrades_to_ipv4_with_address_error_508() {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let aaf = Attribute::AdditionalAddressFamily(AddressFamily::V6);
    let mut client = Client::alice(1);
    let challenge = client.request_once(&mut h, Method::ALLOCATE, random_tid(), &[]);
    client.nonce = challenge.nonce();
    // The IPv4 relay binds; every IPv6 port fails.
    let bytes = client.build(
        Method::ALLOCATE,
        random_tid(),
        &[Attribute::RequestedTransport(17), aaf],
    );
    h.server.handle_datagram(h.now, client.five_tuple, &bytes);
    let mut ipv6_attempts = 0;
    let mut added = None;
    while let Some(rule) = h.server.poll_rule_change() {
        match rule {
            RuleChange::OpenRelay { relay, .. } => {
                let result = if relay.is_ipv4() {
                    Ok(())
                } else {
                    ipv6_attempts += 1;
                    Err(std::io::Error::from(std::io::ErrorKind::AddrInUse))
                };
                h.server.handle_relay_bound(h.now, relay, result);
            }
            RuleChange::AddAllocation { relays, .. } => added = Some(relays),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ipv6_attempts, 10);
    let relays = added.expect("the IPv4 half is allocated");
    assert_eq!(relays.len(), 1);
    assert!(relays[0].is_ipv4());
    let r = Response {
        bytes: h.server.poll_transmit().unwrap().contents,
    };
    r.assert_success();
    assert_eq!(r.relayed().len(), 1);
    match r.attr(AttributeType::ADDRESS_ERROR_CODE) {
        Some(Attribute::AddressErrorCode {
            family: AddressFamily::V6,
            code: 508,
            ..
        }) => {}
        other => panic!("no ADDRESS-ERROR-CODE 508: {other:?}"),
    }
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 1);
    assert_eq!(h.shared.ports.in_use(IpFamily::V6), 0);
}

#[test]
fn dual_stack_without_ipv6_port_is_ipv4_with_address_error_508() {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    config.min_port = 50000;
    config.max_port = 50001;
    let mut h = Harness::new(config);
    let v6 = Attribute::RequestedAddressFamily(AddressFamily::V6);
    Client::alice(1).allocate(&mut h, &[v6]).assert_success();
    Client::alice(2).allocate(&mut h, &[v6]).assert_success();
    // No IPv6 port left; IPv4 ones are.
    let r = Client::alice(3).allocate(
        &mut h,
        &[Attribute::AdditionalAddressFamily(AddressFamily::V6)],
    );
    r.assert_success();
    assert_eq!(r.relayed().len(), 1);
    assert!(matches!(
        r.attr(AttributeType::ADDRESS_ERROR_CODE),
        Some(Attribute::AddressErrorCode {
            family: AddressFamily::V6,
            code: 508,
            ..
        })
    ));
}

#[test]
fn primary_bind_failure_in_dual_stack_closes_the_bound_ipv6_relay() {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let mut client = Client::alice(1);
    let challenge = client.request_once(&mut h, Method::ALLOCATE, random_tid(), &[]);
    client.nonce = challenge.nonce();
    let aaf = Attribute::AdditionalAddressFamily(AddressFamily::V6);
    let bytes = client.build(
        Method::ALLOCATE,
        random_tid(),
        &[Attribute::RequestedTransport(17), aaf],
    );
    h.server.handle_datagram(h.now, client.five_tuple, &bytes);
    // Answer IPv6 first (bound), then fail IPv4 on every attempt.
    let mut opens = Vec::new();
    while let Some(rule) = h.server.poll_rule_change() {
        match rule {
            RuleChange::OpenRelay { relay, .. } => opens.push(relay),
            other => panic!("unexpected {other:?}"),
        }
    }
    let v6 = *opens.iter().find(|r| r.is_ipv6()).unwrap();
    let mut v4 = *opens.iter().find(|r| r.is_ipv4()).unwrap();
    h.server.handle_relay_bound(h.now, v6, Ok(()));
    let mut closes = Vec::new();
    let mut v4_attempts = 0;
    loop {
        v4_attempts += 1;
        h.server.handle_relay_bound(
            h.now,
            v4,
            Err(std::io::Error::from(std::io::ErrorKind::AddrInUse)),
        );
        match h.server.poll_rule_change() {
            Some(RuleChange::OpenRelay { relay, .. }) => v4 = relay,
            Some(RuleChange::CloseRelay { relay }) => {
                closes.push(relay);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(v4_attempts, 10);
    assert_eq!(closes, vec![v6]);
    let r = Response {
        bytes: h.server.poll_transmit().unwrap().contents,
    };
    r.assert_error(508);
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 0);
    assert_eq!(h.shared.ports.in_use(IpFamily::V6), 0);
    assert_eq!(h.shared.quota.total(), 0);
}

#[test]
fn even_port_with_r_and_additional_family_is_400() {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let aaf = Attribute::AdditionalAddressFamily(AddressFamily::V6);
    Client::alice(1)
        .allocate(&mut h, &[Attribute::EvenPort(true), aaf])
        .assert_error(400);
    // Without R: fine, both ports even.
    let r = Client::alice(2).allocate(&mut h, &[Attribute::EvenPort(false), aaf]);
    r.assert_success();
    assert!(r.relayed().iter().all(|a| a.port() % 2 == 0));
    // A token with ADDITIONAL-ADDRESS-FAMILY: 400.
    Client::alice(3)
        .allocate(&mut h, &[Attribute::ReservationToken(&[1; 8]), aaf])
        .assert_error(400);
}

#[test]
fn late_bind_answer_is_closed() {
    let mut h = Harness::new(config());
    let relay: SocketAddr = "198.51.100.1:49200".parse().unwrap();
    h.server.handle_relay_bound(h.now, relay, Ok(()));
    assert_eq!(
        h.server.poll_rule_change(),
        Some(RuleChange::CloseRelay { relay })
    );
    h.server.handle_relay_bound(
        h.now,
        relay,
        Err(std::io::Error::from(std::io::ErrorKind::AddrInUse)),
    );
    assert_eq!(h.server.poll_rule_change(), None);
}

#[test]
fn unanswered_bind_times_out_with_508() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    let challenge = client.request_once(&mut h, Method::ALLOCATE, random_tid(), &[]);
    client.nonce = challenge.nonce();
    let bytes = client.build(
        Method::ALLOCATE,
        random_tid(),
        &[Attribute::RequestedTransport(17)],
    );
    h.server.handle_datagram(h.now, client.five_tuple, &bytes);
    let relay = match h.server.poll_rule_change() {
        Some(RuleChange::OpenRelay { relay, .. }) => relay,
        other => panic!("{other:?}"),
    };
    // The driver never answers (a bug); after the timeout the port and quota come back.
    assert!(h.server.poll_timeout().is_some());
    h.now += s(5);
    h.server.handle_timeout(h.now);
    let t = h.server.poll_transmit().unwrap();
    Response { bytes: t.contents }.assert_error(508);
    assert_eq!(h.shared.quota.total(), 0);
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 0);
    // A late success is closed.
    h.server.handle_relay_bound(h.now, relay, Ok(()));
    assert_eq!(
        h.server.poll_rule_change(),
        Some(RuleChange::CloseRelay { relay })
    );
}

#[test]
fn ids_are_unique() {
    let mut h = Harness::new(config());
    let mut ids = std::collections::HashSet::new();
    for n in 1..=20 {
        Client::alice(n).allocate(&mut h, &[]).assert_success();
        let (id, _) = allocation_of(&h.take_rules());
        assert!(ids.insert(id));
    }
}

#[test]
fn duplicate_bind_answer_does_not_close_a_relay_in_use() {
    let mut h = Harness::new(config());
    Client::alice(1).allocate(&mut h, &[]).assert_success();
    let relay = opened(&h.take_rules())[0];
    h.server.handle_relay_bound(h.now, relay, Ok(()));
    assert_eq!(h.server.poll_rule_change(), None);
}
