//! Refresh (RFC 8656 §8) and every lifetime: allocation, permission,
//! channel, channel-number reuse hold, shutdown.

use std::net::SocketAddr;

use uturn_stun::attribute::{AddressFamily, Attribute};
use uturn_stun::message::Method;
use uturn_turn::{AllocationId, IpFamily, RuleChange};

use crate::harness::*;

/// An allocation for alice on client `n`; returns its id and relay.
fn allocated(h: &mut Harness, n: u8) -> (Client, AllocationId, SocketAddr) {
    let mut client = Client::alice(n);
    client.allocate(h, &[]).assert_success();
    let (id, relay) = h
        .take_rules()
        .iter()
        .find_map(|r| match r {
            RuleChange::AddAllocation {
                allocation, relays, ..
            } => Some((*allocation, relays[0])),
            _ => None,
        })
        .unwrap();
    (client, id, relay)
}

#[test]
fn allocation_expires_with_its_relay_port_and_quota() {
    let mut h = Harness::new(config());
    let (_, id, relay) = allocated(&mut h, 1);
    // First the Allocate response leaves the transaction cache.
    assert_eq!(h.server.poll_timeout(), Some(h.start + s(40)));
    h.advance(s(40));
    assert_eq!(h.server.poll_timeout(), Some(h.start + s(600)));
    h.advance(s(559));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert_eq!(
        h.take_rules(),
        vec![
            RuleChange::RemoveAllocation { allocation: id },
            RuleChange::CloseRelay { relay }
        ]
    );
    assert_eq!(h.server.stats().allocations, 0);
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 0);
    assert_eq!(h.shared.quota.total(), 0);
    assert!(h.open_relays.is_empty());
}

#[test]
fn refresh_extends_and_shortens() {
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    h.advance(s(500));
    let r = client.refresh(&mut h, Some(1800));
    r.assert_success();
    r.assert_signed_for(&client);
    assert_eq!(r.lifetime(), Some(1800));
    // Would have expired at 600 s without the refresh.
    h.advance(s(1799));
    assert!(h.take_rules().is_empty());
    // Shorten to the default (less than what is left): expires 600 s from now.
    let r = client.refresh(&mut h, None);
    assert_eq!(r.lifetime(), Some(600));
    h.advance(s(599));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert!(h
        .take_rules()
        .contains(&RuleChange::RemoveAllocation { allocation: id }));
    // After expiry: 437.
    client.refresh(&mut h, None).assert_error(437);
}

#[test]
fn refresh_lifetime_rules_match_allocate() {
    let mut h = Harness::new(config());
    let (mut client, _, _) = allocated(&mut h, 1);
    assert_eq!(client.refresh(&mut h, Some(10)).lifetime(), Some(600));
    assert_eq!(client.refresh(&mut h, Some(7200)).lifetime(), Some(3600));
}

#[test]
fn refresh_zero_deletes_and_retransmission_gets_same_success() {
    let mut h = Harness::new(config());
    let (client, id, relay) = allocated(&mut h, 1);
    let tid = random_tid();
    let r = client.request_once(&mut h, Method::REFRESH, tid, &[Attribute::Lifetime(0)]);
    r.assert_success();
    assert_eq!(r.lifetime(), Some(0));
    assert_eq!(
        h.take_rules(),
        vec![
            RuleChange::RemoveAllocation { allocation: id },
            RuleChange::CloseRelay { relay }
        ]
    );
    // The retransmission is answered from the cache: success again, not 437.
    let again = client.request_once(&mut h, Method::REFRESH, tid, &[Attribute::Lifetime(0)]);
    assert_eq!(again, r);
    assert!(h.take_rules().is_empty());
    // A new Refresh: 437.
    client
        .request_once(&mut h, Method::REFRESH, random_tid(), &[])
        .assert_error(437);
}

#[test]
fn refresh_retransmission_is_not_reexecuted() {
    let mut h = Harness::new(config());
    let (client, id, _) = allocated(&mut h, 1);
    h.advance(s(100));
    let tid = random_tid();
    let first = client.request_once(&mut h, Method::REFRESH, tid, &[Attribute::Lifetime(600)]);
    first.assert_success();
    // Retransmitted 30 s later: if it ran again the expiry would move to 730 s.
    h.advance(s(30));
    assert_eq!(
        client.request_once(&mut h, Method::REFRESH, tid, &[Attribute::Lifetime(600)]),
        first
    );
    h.advance(s(570));
    assert!(h
        .take_rules()
        .contains(&RuleChange::RemoveAllocation { allocation: id }));
}

#[test]
fn refresh_family_mismatch_is_443() {
    let mut h = Harness::new(config());
    let (mut client, _, _) = allocated(&mut h, 1);
    let v6 = Attribute::RequestedAddressFamily(AddressFamily::V6);
    client
        .request(&mut h, Method::REFRESH, &[v6])
        .assert_error(443);
    client
        .request(&mut h, Method::REFRESH, &[v6, Attribute::Lifetime(0)])
        .assert_error(443);
    // The matching family is fine.
    let v4 = Attribute::RequestedAddressFamily(AddressFamily::V4);
    client
        .request(&mut h, Method::REFRESH, &[v4])
        .assert_success();
    assert_eq!(h.server.stats().allocations, 1);
}

#[test]
fn other_user_on_the_allocation_is_441() {
    let mut h = Harness::new(config());
    let (alice, _, _) = allocated(&mut h, 1);
    // bob, from alice's 5-tuple.
    let mut bob = Client::new(1, "bob", "bob-pw");
    bob.nonce = alice.nonce.clone();
    let r = bob.refresh(&mut h, Some(0));
    r.assert_error(441);
    r.assert_signed_for(&bob);
    bob.create_permission(&mut h, &[peer(1, 1)])
        .assert_error(441);
    bob.channel_bind(&mut h, 0x4000, peer(1, 1))
        .assert_error(441);
    assert_eq!(h.server.stats().allocations, 1);
}

#[test]
fn permission_expires_after_300_s_unless_reinstalled() {
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    client
        .create_permission(&mut h, &[peer(1, 1000), peer(2, 1000)])
        .assert_success();
    let added: Vec<_> = h.take_rules();
    assert_eq!(added.len(), 2);
    assert_eq!(h.server.stats().permissions, 2);
    h.advance(s(200));
    // Re-installing peer 1 refreshes it; no new rule.
    client
        .create_permission(&mut h, &[peer(1, 2000)])
        .assert_success();
    assert!(h.take_rules().is_empty());
    h.advance(s(100));
    assert_eq!(
        h.take_rules(),
        vec![RuleChange::RemovePermission {
            allocation: id,
            peer: peer(2, 0).ip()
        }]
    );
    h.advance(s(199));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert_eq!(
        h.take_rules(),
        vec![RuleChange::RemovePermission {
            allocation: id,
            peer: peer(1, 0).ip()
        }]
    );
    assert_eq!(h.server.stats().permissions, 0);
}

#[test]
fn channel_expires_after_600_s_and_refreshes_its_permission() {
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    client.refresh(&mut h, Some(3600)).assert_success();
    let p = peer(1, 7000);
    client.channel_bind(&mut h, 0x4001, p).assert_success();
    assert_eq!(
        h.take_rules(),
        vec![
            RuleChange::AddPermission {
                allocation: id,
                peer: p.ip()
            },
            RuleChange::AddChannel {
                allocation: id,
                channel: 0x4001,
                peer: p
            },
        ]
    );
    // Re-binding at 250 s refreshes both (no new rules); without it the
    // permission would end at 300 s.
    h.advance(s(250));
    client.channel_bind(&mut h, 0x4001, p).assert_success();
    assert!(h.take_rules().is_empty());
    h.advance(s(299));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert_eq!(
        h.take_rules(),
        vec![RuleChange::RemovePermission {
            allocation: id,
            peer: p.ip()
        }]
    );
    // The channel lives 600 s from its last refresh (250 s).
    h.advance(s(299));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert_eq!(
        h.take_rules(),
        vec![RuleChange::RemoveChannel {
            allocation: id,
            channel: 0x4001,
            peer: p
        }]
    );
    assert_eq!(h.server.stats().channels, 0);
}

#[test]
fn expired_channel_number_and_peer_are_held_for_5_minutes() {
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    client.refresh(&mut h, Some(3600)).assert_success();
    let (p, q) = (peer(1, 7000), peer(2, 7000));
    client.channel_bind(&mut h, 0x4001, p).assert_success();
    h.advance(s(600));
    assert!(h.take_rules().contains(&RuleChange::RemoveChannel {
        allocation: id,
        channel: 0x4001,
        peer: p
    }));

    // During the hold: the number for another peer, or the peer on another number, is 400.
    client.channel_bind(&mut h, 0x4001, q).assert_error(400);
    client.channel_bind(&mut h, 0x4002, p).assert_error(400);
    h.advance(s(299));
    client.channel_bind(&mut h, 0x4001, q).assert_error(400);
    // After 5 minutes both are free.
    h.advance(s(1));
    client.channel_bind(&mut h, 0x4001, q).assert_success();
    client.channel_bind(&mut h, 0x4002, p).assert_success();
}

#[test]
fn expired_channel_may_be_rebound_to_the_same_peer_during_the_hold() {
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    client.refresh(&mut h, Some(3600)).assert_success();
    let p = peer(1, 7000);
    client.channel_bind(&mut h, 0x4001, p).assert_success();
    h.advance(s(700));
    h.take_rules();
    client.channel_bind(&mut h, 0x4001, p).assert_success();
    assert!(h.take_rules().contains(&RuleChange::AddChannel {
        allocation: id,
        channel: 0x4001,
        peer: p
    }));
}

#[test]
fn poll_timeout_tracks_the_earliest_deadline() {
    let mut h = Harness::new(config());
    assert_eq!(h.server.poll_timeout(), None);
    let (mut client, _, _) = allocated(&mut h, 1);
    // Allocation at 600 s, and the Allocate response cached for 40 s.
    assert_eq!(h.server.poll_timeout(), Some(h.start + s(40)));
    h.advance(s(40));
    assert_eq!(h.server.poll_timeout(), Some(h.start + s(600)));
    client
        .create_permission(&mut h, &[peer(1, 1)])
        .assert_success();
    assert_eq!(h.server.poll_timeout(), Some(h.now + s(40)));
    h.advance(s(40));
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.start + s(80) - s(40) + s(300))
    );
}

#[test]
fn shutdown_removes_everything() {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    let mut h = Harness::new(config);
    let (mut a, id_a, _) = allocated(&mut h, 1);
    a.create_permission(&mut h, &[peer(1, 1)]).assert_success();
    let mut dual = Client::alice(2);
    dual.allocate(
        &mut h,
        &[Attribute::AdditionalAddressFamily(AddressFamily::V6)],
    )
    .assert_success();
    let mut reserving = Client::alice(3);
    reserving
        .allocate(&mut h, &[Attribute::EvenPort(true)])
        .assert_success();
    h.take_rules();
    assert_eq!(h.open_relays.len(), 4);

    h.server.shutdown();
    h.drain();
    let rules = h.take_rules();
    let removed = rules
        .iter()
        .filter(|r| matches!(r, RuleChange::RemoveAllocation { .. }))
        .count();
    let closed = rules
        .iter()
        .filter(|r| matches!(r, RuleChange::CloseRelay { .. }))
        .count();
    assert_eq!(removed, 3);
    assert_eq!(closed, 4);
    assert!(rules.contains(&RuleChange::RemoveAllocation { allocation: id_a }));
    assert!(h.open_relays.is_empty());
    assert_eq!(h.shared.ports.in_use(IpFamily::V4), 0);
    assert_eq!(h.shared.ports.in_use(IpFamily::V6), 0);
    assert_eq!(h.shared.quota.total(), 0);
    assert_eq!(h.server.poll_timeout(), None);
    assert_eq!(h.server.stats().allocations, 0);
    assert_eq!(h.server.stats().permissions, 0);
}

#[test]
fn deadlines_survive_many_lifetime_changes() {
    // Alternating long and short lifetimes leaves stale heap entries, which
    // the server sheds by rebuilding its heap past a threshold; expiry must
    // still happen exactly on time.
    let mut h = Harness::new(config());
    let (mut client, id, _) = allocated(&mut h, 1);
    for i in 0..3000 {
        let lifetime = if i % 2 == 0 { 3600 } else { 600 };
        client.refresh(&mut h, Some(lifetime)).assert_success();
    }
    h.advance(s(599));
    assert!(h.take_rules().is_empty());
    h.advance(s(1));
    assert!(h
        .take_rules()
        .contains(&RuleChange::RemoveAllocation { allocation: id }));
}
