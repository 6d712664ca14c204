//! STUN Binding, message handling before authentication, and the long-term
//! credential mechanism (RFC 8489 §9.2).

use uturn_stun::attribute::{
    Attribute, AttributeType, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms,
    PROTOCOL_UDP,
};
use uturn_stun::message::{Class, Method, TransactionId};
use uturn_stun::MessageBuilder;
use uturn_turn::auth::{rest_password, rest_username};
use uturn_turn::CredentialsConfig;

use crate::harness::*;

#[test]
fn binding_is_answered_without_auth_with_mapped_address() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let tid = random_tid();
    let r = client.request_once(&mut h, Method::BINDING, tid, &[]);
    r.assert_success();
    assert_eq!(r.mapped(), Some(client.five_tuple.client));
    assert!(matches!(
        r.attr(AttributeType::SOFTWARE),
        Some(Attribute::Software("uturn-test"))
    ));
    assert!(!r.has(AttributeType::MESSAGE_INTEGRITY));
    // No FINGERPRINT asked for, none sent.
    assert!(!r.has(AttributeType::FINGERPRINT));

    let mut client = client;
    client.mode.fingerprint = true;
    let r = client.request_once(&mut h, Method::BINDING, random_tid(), &[]);
    r.assert_success();
    r.msg().check_fingerprint().expect("FINGERPRINT in kind");
    // Nothing is cached or allocated for a Binding.
    assert!(h.take_rules().is_empty());
    assert_eq!(h.server.stats().allocations, 0);
}

#[test]
fn binding_without_software_configured_has_none() {
    let mut config = config();
    config.software = None;
    let mut h = Harness::new(config);
    let r = Client::alice(1).request_once(&mut h, Method::BINDING, random_tid(), &[]);
    assert!(!r.has(AttributeType::SOFTWARE));
}

#[test]
fn indications_responses_garbage_and_channel_data_get_no_answer() {
    let mut h = Harness::new(config());
    let c = five_tuple(1);
    let mut out = Vec::new();
    let tid = random_tid();
    MessageBuilder::new(&mut out, Class::Indication, Method::BINDING, tid).finish();
    assert!(
        h.datagram(c, &out).is_empty(),
        "Binding indication answered"
    );

    let mut send = Vec::new();
    let mut b = MessageBuilder::new(&mut send, Class::Indication, Method::SEND, tid);
    b.add(&Attribute::XorPeerAddress(peer(1, 5000))).unwrap();
    b.add(&Attribute::Data(b"hello")).unwrap();
    b.finish();
    assert!(h.datagram(c, &send).is_empty(), "Send indication answered");

    let mut success = Vec::new();
    MessageBuilder::new(&mut success, Class::Success, Method::BINDING, tid).finish();
    assert!(h.datagram(c, &success).is_empty(), "response answered");

    // ChannelData, truncated STUN, a lying length, random bytes.
    assert!(h
        .datagram(c, &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4])
        .is_empty());
    assert!(h.datagram(c, &out[..19]).is_empty());
    let mut lying = out.clone();
    lying[3] = 8;
    assert!(h.datagram(c, &lying).is_empty());
    assert!(h.datagram(c, &[]).is_empty());
    for n in 0..200u8 {
        let junk: Vec<u8> = (0..usize::from(n))
            .map(|i| (i as u8).wrapping_mul(n).wrapping_add(7))
            .collect();
        assert!(h.datagram(c, &junk).is_empty());
    }
    assert!(h.take_rules().is_empty());
    assert!(h.server.stats().dropped >= 6);
}

#[test]
fn bad_fingerprint_is_dropped() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.mode.fingerprint = true;
    let mut bytes = client.build(Method::BINDING, random_tid(), &[]);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(client.send(&mut h, &bytes).is_none());
}

#[test]
fn unknown_comprehension_required_attribute_is_420_before_auth() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, Class::Request, Method::ALLOCATE, random_tid());
    b.add(&Attribute::RequestedTransport(PROTOCOL_UDP)).unwrap();
    b.add_raw(uturn_stun::AttributeType(0x7F01), &[1, 2, 3, 4])
        .unwrap();
    // Unknown but comprehension-optional: ignored.
    b.add_raw(uturn_stun::AttributeType(0xC001), &[1, 2, 3, 4])
        .unwrap();
    b.finish();
    let r = client.send(&mut h, &out).unwrap();
    r.assert_error(420);
    match r.attr(AttributeType::UNKNOWN_ATTRIBUTES) {
        Some(Attribute::UnknownAttributes(list)) => {
            assert_eq!(
                list.iter().collect::<Vec<_>>(),
                vec![uturn_stun::AttributeType(0x7F01)]
            )
        }
        other => panic!("no UNKNOWN-ATTRIBUTES: {other:?}"),
    }
    // Also for Binding.
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, Class::Request, Method::BINDING, random_tid());
    b.add_raw(uturn_stun::AttributeType(0x0031), &[]).unwrap();
    b.finish();
    client.send(&mut h, &out).unwrap().assert_error(420);
    assert_eq!(h.server.stats().auth_failures, 0);
}

#[test]
fn unknown_method_is_400() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let mut out = Vec::new();
    MessageBuilder::new(&mut out, Class::Request, Method(0x0ff), random_tid()).finish();
    client.send(&mut h, &out).unwrap().assert_error(400);
}

#[test]
fn first_request_is_challenged_with_realm_nonce_and_algorithms() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let r = client.request_once(
        &mut h,
        Method::ALLOCATE,
        random_tid(),
        &[Attribute::RequestedTransport(17)],
    );
    r.assert_error(401);
    assert!(matches!(
        r.attr(AttributeType::REALM),
        Some(Attribute::Realm(REALM))
    ));
    let nonce = r.nonce().unwrap();
    assert!(nonce.starts_with("obMatJos2"), "{nonce}");
    match r.attr(AttributeType::PASSWORD_ALGORITHMS) {
        Some(Attribute::PasswordAlgorithms(list)) => {
            assert_eq!(list, PasswordAlgorithms::MD5_AND_SHA256)
        }
        other => panic!("no PASSWORD-ALGORITHMS: {other:?}"),
    }
    assert!(!r.has(AttributeType::MESSAGE_INTEGRITY));
    // The expected first 401 is not a failure, and nothing was allocated or cached.
    assert_eq!(h.server.stats().auth_failures, 0);
    assert!(h.take_rules().is_empty());
}

#[test]
fn unauthenticated_challenges_are_not_cached() {
    let mut h = Harness::new(config());
    let client = Client::alice(1);
    let tid = random_tid();
    let a = client.request_once(
        &mut h,
        Method::ALLOCATE,
        tid,
        &[Attribute::RequestedTransport(17)],
    );
    h.time.set(START_UNIX + 5);
    let b = client.request_once(
        &mut h,
        Method::ALLOCATE,
        tid,
        &[Attribute::RequestedTransport(17)],
    );
    a.assert_error(401);
    b.assert_error(401);
    // Recomputed (a nonce minted later), not replayed from a cache.
    assert_ne!(a.nonce(), b.nonce());
    assert_eq!(h.server.stats().retransmissions, 0);
}

#[test]
fn authenticated_allocate_is_signed_and_fingerprinted() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.mode.fingerprint = true;
    let r = client.allocate(&mut h, &[]);
    r.assert_success();
    r.assert_signed_for(&client);
    r.msg().check_fingerprint().unwrap();
    // SOFTWARE is before the integrity attribute, so it is covered by it.
    assert!(r.has(AttributeType::SOFTWARE));
    // A wrong key does not verify.
    assert!(r.msg().check_integrity(&[0u8; 16]).is_err());
}

#[test]
fn wrong_password_and_unknown_user_are_401_and_counted() {
    let mut h = Harness::new(config());
    let mut client = Client::new(1, "alice", "wrong");
    let r = client.allocate(&mut h, &[]);
    r.assert_error(401);
    // A fresh challenge, unsigned.
    assert!(r.nonce().is_some());
    assert!(r.has(AttributeType::REALM));
    assert!(!r.has(AttributeType::MESSAGE_INTEGRITY));
    assert_eq!(h.server.stats().auth_failures, 1);

    let mut nobody = Client::new(2, "mallory", "x");
    nobody.allocate(&mut h, &[]).assert_error(401);
    assert_eq!(h.server.stats().auth_failures, 2);
    assert!(h.take_rules().is_empty());
}

#[test]
fn missing_username_realm_or_nonce_is_400() {
    let mut h = Harness::new(config());
    let key = Client::alice(2).key();
    let nonce = Client::alice(2)
        .request_once(&mut h, Method::ALLOCATE, random_tid(), &[])
        .nonce()
        .unwrap();
    let c2 = five_tuple(2);
    let cases: [&[Attribute<'_>]; 3] = [
        &[Attribute::Realm(REALM), Attribute::Nonce(&nonce)],
        &[Attribute::Username("alice"), Attribute::Nonce(&nonce)],
        &[Attribute::Username("alice"), Attribute::Realm(REALM)],
    ];
    for attrs in cases {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, Method::ALLOCATE, random_tid());
        b.add(&Attribute::RequestedTransport(17)).unwrap();
        for a in attrs {
            b.add(a).unwrap();
        }
        b.message_integrity(&key).unwrap();
        b.finish();
        let r = h.datagram(c2, &out).pop().unwrap();
        let r = Response { bytes: r.contents };
        r.assert_error(400);
        assert!(!r.has(AttributeType::MESSAGE_INTEGRITY));
    }
}

#[test]
fn stale_nonce_is_438_with_a_fresh_nonce_then_works() {
    let mut config = config();
    config.nonce_lifetime = s(60);
    let mut h = Harness::new(config);
    let mut client = Client::alice(1);
    client.allocate(&mut h, &[]).assert_success();
    let old = client.nonce.clone().unwrap();

    h.advance(s(61));
    let r = client.request_once(&mut h, Method::REFRESH, random_tid(), &[]);
    r.assert_error(438);
    let fresh = r.nonce().unwrap();
    assert_ne!(fresh, old);
    assert!(r.has(AttributeType::REALM));
    assert!(r.has(AttributeType::PASSWORD_ALGORITHMS));
    // Expiry is routine, not an attack.
    assert_eq!(h.server.stats().auth_failures, 0);

    // The dance picks up the new nonce.
    let r = client.refresh(&mut h, None);
    r.assert_success();
    assert_eq!(client.nonce.as_deref(), Some(fresh.as_str()));

    // A stale nonce with a wrong password is 401, not 438 (integrity first).
    h.advance(s(61));
    let mut wrong = client.clone();
    wrong.password = "nope".into();
    wrong
        .request_once(&mut h, Method::REFRESH, random_tid(), &[])
        .assert_error(401);
}

#[test]
fn forged_or_foreign_nonce_is_401() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.allocate(&mut h, &[]).assert_success();
    let nonce = client.nonce.clone().unwrap();

    // The same nonce from another address: not ours to use.
    let mut other = Client::alice(2);
    other.nonce = Some(nonce.clone());
    other
        .request_once(
            &mut h,
            Method::ALLOCATE,
            random_tid(),
            &[Attribute::RequestedTransport(17)],
        )
        .assert_error(401);

    // A tampered nonce.
    let mut forged = nonce.into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    client.nonce = Some(String::from_utf8(forged).unwrap());
    let r = client.request_once(&mut h, Method::REFRESH, random_tid(), &[]);
    r.assert_error(401);
    assert!(r.nonce().is_some());
    assert_eq!(h.server.stats().auth_failures, 2);
}

#[test]
fn message_integrity_sha256_with_sha256_key() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.mode = Mode {
        sha256_mac: true,
        sha256_key: true,
        fingerprint: true,
        ..Mode::default()
    };
    let r = client.allocate(&mut h, &[]);
    r.assert_success();
    assert!(r.has(AttributeType::MESSAGE_INTEGRITY_SHA256));
    r.assert_signed_for(&client);
    r.msg().check_fingerprint().unwrap();

    // MESSAGE-INTEGRITY-SHA256 keyed with the MD5 key (PASSWORD-ALGORITHM MD5).
    let mut md5 = Client::alice(2);
    md5.mode = Mode {
        sha256_mac: true,
        send_algorithms: true,
        ..Mode::default()
    };
    let r = md5.allocate(&mut h, &[]);
    r.assert_success();
    r.assert_signed_for(&md5);

    // HMAC-SHA1 keyed with the SHA-256 key.
    let mut mixed = Client::alice(3);
    mixed.mode = Mode {
        sha256_key: true,
        ..Mode::default()
    };
    let r = mixed.allocate(&mut h, &[]);
    r.assert_success();
    r.assert_signed_for(&mixed);

    // Claiming SHA-256 but keying with MD5 fails.
    let mut liar = Client::alice(4);
    liar.allocate(&mut h, &[]).assert_success();
    let key = liar.key();
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, Class::Request, Method::REFRESH, random_tid());
    b.add(&Attribute::Username("alice")).unwrap();
    b.add(&Attribute::Realm(REALM)).unwrap();
    b.add(&Attribute::Nonce(liar.nonce.as_deref().unwrap()))
        .unwrap();
    b.add(&Attribute::PasswordAlgorithms(
        PasswordAlgorithms::MD5_AND_SHA256,
    ))
    .unwrap();
    b.add(&Attribute::PasswordAlgorithm(PasswordAlgorithm {
        algorithm: PasswordAlgorithmId::SHA256,
        parameters: &[],
    }))
    .unwrap();
    b.message_integrity(&key).unwrap();
    b.finish();
    liar.send(&mut h, &out).unwrap().assert_error(401);
}

#[test]
fn bid_down_attempts_are_400() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.allocate(&mut h, &[]).assert_success();
    let nonce = client.nonce.clone().unwrap();
    let key = client.key();
    let md5_only = [PasswordAlgorithm {
        algorithm: PasswordAlgorithmId::MD5,
        parameters: &[],
    }];
    let md5 = Attribute::PasswordAlgorithm(md5_only[0]);
    let cases: Vec<Vec<Attribute<'_>>> = vec![
        // A list other than the one offered (SHA-256 stripped by a MITM).
        vec![
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_list(&md5_only)),
            md5,
        ],
        // The algorithm without the list.
        vec![md5],
        // The list without the algorithm.
        vec![Attribute::PasswordAlgorithms(
            PasswordAlgorithms::MD5_AND_SHA256,
        )],
    ];
    for extra in cases {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, Method::REFRESH, random_tid());
        b.add(&Attribute::Username("alice")).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&nonce)).unwrap();
        for a in &extra {
            b.add(a).unwrap();
        }
        b.message_integrity(&key).unwrap();
        b.finish();
        let r = client.send(&mut h, &out).unwrap();
        r.assert_error(400);
        assert!(!r.has(AttributeType::MESSAGE_INTEGRITY));
    }
    // Both, matching: fine.
    client.mode.send_algorithms = true;
    client.refresh(&mut h, None).assert_success();
}

#[test]
fn userhash_identifies_static_users() {
    let mut h = Harness::new(config());
    let mut client = Client::new(1, "bob", "bob-pw");
    client.mode.userhash = true;
    let r = client.allocate(&mut h, &[]);
    r.assert_success();
    r.assert_signed_for(&client);

    let mut unknown = Client::new(2, "nobody", "x");
    unknown.mode.userhash = true;
    unknown.allocate(&mut h, &[]).assert_error(401);
    assert_eq!(h.server.stats().auth_failures, 1);
}

#[test]
fn wrong_realm_is_401() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    client.allocate(&mut h, &[]).assert_success();
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, Class::Request, Method::REFRESH, random_tid());
    b.add(&Attribute::Username("alice")).unwrap();
    b.add(&Attribute::Realm("evil.example")).unwrap();
    b.add(&Attribute::Nonce(client.nonce.as_deref().unwrap()))
        .unwrap();
    b.message_integrity(&uturn_stun::integrity::long_term_key_md5(
        "alice",
        "evil.example",
        "alice-pw",
    ))
    .unwrap();
    b.finish();
    client.send(&mut h, &out).unwrap().assert_error(401);
}

#[test]
fn rest_credentials_expire_and_work_with_static_users() {
    let mut h = Harness::new(config());
    let username = rest_username(START_UNIX + 100, Some("carol"));
    let password = rest_password(SECRET, &username);
    let mut rest = Client::new(1, &username, &password);
    let r = rest.allocate(&mut h, &[]);
    r.assert_success();
    r.assert_signed_for(&rest);
    // A static user at the same time.
    Client::alice(2).allocate(&mut h, &[]).assert_success();

    // Past its expiry the REST username is refused, even with a valid nonce.
    h.advance(s(100));
    let r = rest.refresh(&mut h, None);
    r.assert_error(401);
    assert_eq!(h.server.stats().auth_failures, 1);

    // A REST password made with an unknown secret never worked.
    let username = rest_username(START_UNIX + 10_000, None);
    let mut forged = Client::new(3, &username, &rest_password("not-the-secret", &username));
    forged.allocate(&mut h, &[]).assert_error(401);
}

#[test]
fn secret_rotation_accepts_old_and_new_secret() {
    let username = rest_username(START_UNIX + 3600, Some("dave"));
    let credentials = |secrets: Vec<&str>| CredentialsConfig {
        users: vec![],
        secrets: secrets.into_iter().map(String::from).collect(),
    };
    // During rotation both secrets are configured: credentials minted with either work.
    let mut h = Harness::new(config_with(credentials(vec!["new-secret", "old-secret"])));
    let mut old = Client::new(1, &username, &rest_password("old-secret", &username));
    old.allocate(&mut h, &[]).assert_success();
    let mut new = Client::new(2, &username, &rest_password("new-secret", &username));
    new.allocate(&mut h, &[]).assert_success();

    // After rotation the old secret no longer validates.
    let mut h = Harness::new(config_with(credentials(vec!["new-secret"])));
    let mut old = Client::new(1, &username, &rest_password("old-secret", &username));
    old.allocate(&mut h, &[]).assert_error(401);
    let mut new = Client::new(2, &username, &rest_password("new-secret", &username));
    new.allocate(&mut h, &[]).assert_success();
}

#[test]
fn nonce_from_one_worker_is_valid_on_another() {
    let mut a = Harness::new(config());
    let mut b = a.sibling();
    let mut client = Client::alice(1);
    client.allocate(&mut a, &[]).assert_success();
    // Same client address, other worker, no new challenge needed.
    let mut c = client.clone();
    c.five_tuple.server = "198.51.100.1:3479".parse().unwrap();
    let r = c.request_once(
        &mut b,
        Method::ALLOCATE,
        random_tid(),
        &[Attribute::RequestedTransport(17)],
    );
    r.assert_success();
}

#[test]
fn authenticated_errors_are_signed() {
    let mut h = Harness::new(config());
    let mut client = Client::alice(1);
    // Refresh without an allocation: 437, signed with alice's key.
    let r = client.refresh(&mut h, None);
    r.assert_error(437);
    r.assert_signed_for(&client);
    let _ = TransactionId([0; 12]);
}

/// With REST secrets configured the nonce must not demand USERHASH (RFC 8489
/// §9.2.5): a REST username cannot be found from its hash. With static users
/// only, username anonymity is announced.
#[test]
fn username_anonymity_is_announced_only_without_rest_secrets() {
    use uturn_turn::nonce::{security_features, SecurityFeatures};
    use uturn_turn::Shared;

    let client = five_tuple(1).client;
    let with_rest = Shared::new(&config());
    let nonce = with_rest.nonce_key.issue(client, START_UNIX, s(60));
    let features = security_features(nonce.as_bytes()).expect("cookie present");
    assert!(features.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
    assert!(!features.contains(SecurityFeatures::USERNAME_ANONYMITY));

    let static_only = Shared::new(&config_with(CredentialsConfig {
        users: vec![("alice".into(), "alice-pw".into())],
        secrets: vec![],
    }));
    let nonce = static_only.nonce_key.issue(client, START_UNIX, s(60));
    let features = security_features(nonce.as_bytes()).expect("cookie present");
    assert!(features.contains(SecurityFeatures::USERNAME_ANONYMITY));
}
