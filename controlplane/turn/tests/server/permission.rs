//! CreatePermission (RFC 8656 §9) and ChannelBind (§11), and the peer
//! filter's 403s.

use std::net::{IpAddr, SocketAddr};

use uturn_stun::attribute::{AddressFamily, Attribute, AttributeType};
use uturn_stun::message::Method;
use uturn_turn::{AllocationId, RuleChange};

use crate::harness::*;

fn allocated(h: &mut Harness, n: u8, extra: &[Attribute<'_>]) -> (Client, AllocationId) {
    let mut client = Client::alice(n);
    client.allocate(h, extra).assert_success();
    let id = h
        .take_rules()
        .iter()
        .find_map(|r| match r {
            RuleChange::AddAllocation { allocation, .. } => Some(*allocation),
            _ => None,
        })
        .unwrap();
    (client, id)
}

fn v6_config() -> uturn_turn::ServerConfig {
    let mut config = config();
    config.relay_ipv6 = Some(RELAY_V6);
    config
}

#[test]
fn create_permission_adds_each_new_peer_once() {
    let mut h = Harness::new(config());
    let (mut client, id) = allocated(&mut h, 1, &[]);
    let r = client.create_permission(&mut h, &[peer(1, 1000), peer(2, 2000), peer(1, 3000)]);
    r.assert_success();
    r.assert_signed_for(&client);
    assert_eq!(
        h.take_rules(),
        vec![
            RuleChange::AddPermission {
                allocation: id,
                peer: peer(1, 0).ip()
            },
            RuleChange::AddPermission {
                allocation: id,
                peer: peer(2, 0).ip()
            },
        ]
    );
    client
        .create_permission(&mut h, &[peer(2, 1)])
        .assert_success();
    assert!(h.take_rules().is_empty());
    assert_eq!(h.server.stats().permissions, 2);
}

#[test]
fn create_permission_errors() {
    let mut h = Harness::new(config());
    // No allocation: 437.
    let mut nobody = Client::alice(9);
    nobody
        .create_permission(&mut h, &[peer(1, 1)])
        .assert_error(437);

    let (mut client, _) = allocated(&mut h, 1, &[]);
    // No XOR-PEER-ADDRESS: 400.
    client
        .request(&mut h, Method::CREATE_PERMISSION, &[])
        .assert_error(400);
    // IPv6 peer on an IPv4 allocation: 443.
    let v6peer: SocketAddr = "[2001:db8:1::1]:5000".parse().unwrap();
    client
        .create_permission(&mut h, &[v6peer])
        .assert_error(443);
    assert!(h.take_rules().is_empty());
}

#[test]
fn create_permission_is_all_or_nothing() {
    let mut h = Harness::new(config());
    let (mut client, _) = allocated(&mut h, 1, &[]);
    let loopback: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let r = client.create_permission(&mut h, &[peer(1, 1), loopback, peer(2, 2)]);
    r.assert_error(403);
    r.assert_signed_for(&client);
    assert!(
        h.take_rules().is_empty(),
        "no permission installed when one peer is refused"
    );
    assert_eq!(h.server.stats().permissions, 0);
}

#[test]
fn peer_filter_403s_including_encoded_bypasses() {
    let mut h = Harness::new(v6_config());
    let (mut v4, _) = allocated(&mut h, 1, &[]);
    for denied in [
        "127.0.0.1:80",
        "10.1.2.3:80",
        "192.168.1.1:80",
        "169.254.169.254:80",
        "0.0.0.0:80",
        "224.0.0.1:80",
    ] {
        let addr: SocketAddr = denied.parse().unwrap();
        v4.create_permission(&mut h, &[addr]).assert_error(403);
        v4.channel_bind(&mut h, 0x4000, addr).assert_error(403);
    }
    // The relay's own listener is never a peer; its relay ports are.
    v4.channel_bind(&mut h, 0x4000, listener())
        .assert_error(403);

    let (mut v6, _) = allocated(
        &mut h,
        2,
        &[Attribute::RequestedAddressFamily(AddressFamily::V6)],
    );
    for denied in [
        "[::1]:80",
        // IPv4-mapped loopback: the classic bypass.
        "[::ffff:127.0.0.1]:80",
        "[::ffff:10.0.0.1]:80",
        // IPv4-compatible, 6to4 and NAT64 encodings of loopback.
        "[::127.0.0.1]:80",
        "[2002:7f00:1::]:80",
        "[64:ff9b::7f00:1]:80",
        "[fe80::1]:80",
        "[fc00::1]:80",
    ] {
        let addr: SocketAddr = denied.parse().unwrap();
        v6.create_permission(&mut h, &[addr]).assert_error(403);
        v6.channel_bind(&mut h, 0x4000, addr).assert_error(403);
    }
    assert!(h.take_rules().is_empty());
    // A public IPv6 peer is fine.
    v6.create_permission(
        &mut h,
        &[SocketAddr::new(
            IpAddr::V6("2001:4860::8888".parse().unwrap()),
            80,
        )],
    )
    .assert_success();
}

#[test]
fn channel_bind_installs_channel_and_permission() {
    let mut h = Harness::new(config());
    let (mut client, id) = allocated(&mut h, 1, &[]);
    let p = peer(1, 5000);
    let r = client.channel_bind(&mut h, 0x4000, p);
    r.assert_success();
    r.assert_signed_for(&client);
    assert_eq!(
        h.take_rules(),
        vec![
            RuleChange::AddPermission {
                allocation: id,
                peer: p.ip()
            },
            RuleChange::AddChannel {
                allocation: id,
                channel: 0x4000,
                peer: p
            },
        ]
    );
    // A second channel to another port of the same IP: the permission exists already.
    let p2 = peer(1, 5001);
    client.channel_bind(&mut h, 0x7FFE, p2).assert_success();
    assert_eq!(
        h.take_rules(),
        vec![RuleChange::AddChannel {
            allocation: id,
            channel: 0x7FFE,
            peer: p2
        }]
    );
    let stats = h.server.stats();
    assert_eq!((stats.channels, stats.permissions), (2, 1));
}

#[test]
fn channel_bind_errors() {
    let mut h = Harness::new(config());
    let mut nobody = Client::alice(9);
    nobody
        .channel_bind(&mut h, 0x4000, peer(1, 1))
        .assert_error(437);

    let (mut client, _) = allocated(&mut h, 1, &[]);
    let p = peer(1, 5000);
    // Out of range (RFC 5766 range by default: 0x4000–0x7FFE).
    for bad in [0x0000, 0x3FFF, 0x7FFF, 0x8000, 0xFFFF] {
        client.channel_bind(&mut h, bad, p).assert_error(400);
    }
    // Missing attributes.
    client
        .request(
            &mut h,
            Method::CHANNEL_BIND,
            &[Attribute::ChannelNumber(0x4000)],
        )
        .assert_error(400);
    client
        .request(
            &mut h,
            Method::CHANNEL_BIND,
            &[Attribute::XorPeerAddress(p)],
        )
        .assert_error(400);
    // Family mismatch.
    client
        .channel_bind(&mut h, 0x4000, "[2001:db8::9]:1".parse().unwrap())
        .assert_error(443);

    client.channel_bind(&mut h, 0x4000, p).assert_success();
    // The number for another peer, the peer on another number: 400.
    client
        .channel_bind(&mut h, 0x4000, peer(2, 5000))
        .assert_error(400);
    client.channel_bind(&mut h, 0x4001, p).assert_error(400);
    // Same pair again: a refresh.
    client.channel_bind(&mut h, 0x4000, p).assert_success();
    assert!(!client
        .channel_bind(&mut h, 0x4001, p)
        .has(AttributeType::MESSAGE_INTEGRITY_SHA256));
}

#[test]
fn strict_channel_range_is_rfc_8656() {
    let mut config = config();
    config.strict_channel_range = true;
    let mut h = Harness::new(config);
    let (mut client, _) = allocated(&mut h, 1, &[]);
    client
        .channel_bind(&mut h, 0x5000, peer(1, 1))
        .assert_error(400);
    client
        .channel_bind(&mut h, 0x4FFF, peer(1, 1))
        .assert_success();
}

#[test]
fn permission_cap_is_508() {
    let mut h = Harness::new(config());
    let (mut client, _) = allocated(&mut h, 1, &[]);
    let peers: Vec<SocketAddr> = (1..=64).map(|n| peer(n, 1)).collect();
    client.create_permission(&mut h, &peers).assert_success();
    client
        .create_permission(&mut h, &[peer(65, 1)])
        .assert_error(508);
    // Refreshing existing ones still works.
    client
        .create_permission(&mut h, &peers[..10])
        .assert_success();
}

#[test]
fn send_indication_and_channel_data_reaching_the_server_are_ignored() {
    let mut h = Harness::new(config());
    let (mut client, _) = allocated(&mut h, 1, &[]);
    client
        .channel_bind(&mut h, 0x4000, peer(1, 1))
        .assert_success();
    h.take_rules();
    let mut data = uturn_stun::channel_data::ChannelData::header(0x4000, 4).to_vec();
    data.extend_from_slice(b"ping");
    assert!(h.datagram(client.five_tuple, &data).is_empty());
    let mut send = Vec::new();
    let mut b = uturn_stun::MessageBuilder::new(
        &mut send,
        uturn_stun::Class::Indication,
        Method::SEND,
        random_tid(),
    );
    b.add(&Attribute::XorPeerAddress(peer(1, 1))).unwrap();
    b.add(&Attribute::Data(b"ping")).unwrap();
    b.finish();
    assert!(h.datagram(client.five_tuple, &send).is_empty());
    assert!(h.take_rules().is_empty());
}
