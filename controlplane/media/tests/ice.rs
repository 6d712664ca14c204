//! ICE-lite at the engine: claiming sessions with the first authenticated
//! check, routing checks by ufrag, the mailbox path between workers, ICE
//! restart, and what is left to TURN (RFC 8445 §7.3, RFC 7675; docs/media.md
//! "Where a media packet goes").

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{check, ice_credentials, is_success, listener, registry, CHROMIUM_WHIP_OFFER};
use uturn_media::{Kind, MediaEngine, PatchOutcome, Signalling};

const CLIENT_UFRAG: &str = "UXL3";

fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], port))
}

/// Every datagram the engine wants to send: (destination, bytes).
fn drain(engine: &mut MediaEngine) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = engine.poll_transmit() {
        assert_eq!(t.source, listener());
        out.push((t.destination, t.contents.to_vec()));
    }
    out
}

#[test]
fn the_first_authenticated_check_claims_the_session_and_is_answered() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);

    let c = check(&ufrag, CLIENT_UFRAG, &pwd, false, 1);
    assert!(e.handle_datagram(now, listener(), remote(5000), &c));
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, remote(5000));
    assert!(is_success(&out[0].1, 1, &pwd));
    let stats = e.stats();
    assert_eq!(stats.sessions, 1);
    assert_eq!(stats.sessions_started, 1);
    assert_eq!(stats.ice_checks, 1);

    // The next check goes straight to the session's agent.
    let c = check(&ufrag, CLIENT_UFRAG, &pwd, true, 2);
    assert!(e.handle_datagram(now, listener(), remote(5000), &c));
    let out = drain(&mut e);
    assert!(is_success(&out[0].1, 2, &pwd));
    assert_eq!(e.stats().ice_checks, 2);
}

#[test]
fn stun_that_is_not_a_media_check_is_left_to_turn() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let now = Instant::now();
    r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    // An unknown ufrag.
    let c = check("nope", CLIENT_UFRAG, "0123456789012345678901", true, 1);
    assert!(!e.handle_datagram(now, listener(), remote(5000), &c));
    // A Binding request without USERNAME (plain STUN).
    let plain = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    assert!(!e.handle_datagram(now, listener(), remote(5000), &plain));
    // Broken STUN and ChannelData.
    assert!(!e.handle_datagram(now, listener(), remote(5000), &[0x00, 0x01, 0xff]));
    assert!(!e.handle_datagram(now, listener(), remote(5000), &[0x40, 0x00, 0x00, 0x00]));
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stats().sessions, 0);
}

#[test]
fn a_check_with_the_wrong_password_claims_nothing() {
    let r = registry(2, 10);
    let mut e0 = MediaEngine::new(0, r.clone());
    let mut e1 = MediaEngine::new(1, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);

    let forged = check(&ufrag, CLIENT_UFRAG, "wrongwrongwrongwrongwrong", true, 1);
    assert!(e0.handle_datagram(now, listener(), remote(5000), &forged));
    assert!(drain(&mut e0).is_empty());
    assert_eq!(e0.stats().ice_rejected, 1);
    assert_eq!(e0.stats().sessions, 0);

    // The genuine check, on another worker, claims it there.
    let c = check(&ufrag, CLIENT_UFRAG, &pwd, true, 2);
    assert!(e1.handle_datagram(now, listener(), remote(5001), &c));
    assert!(is_success(&drain(&mut e1)[0].1, 2, &pwd));
    assert_eq!(e1.stats().sessions, 1);
    assert_eq!(e0.stats().sessions, 0);
}

#[test]
fn checks_that_reach_another_worker_are_answered_by_the_home() {
    let r = registry(2, 10);
    let mut e0 = MediaEngine::new(0, r.clone());
    let mut e1 = MediaEngine::new(1, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);

    assert!(e0.handle_datagram(
        now,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, false, 1)
    ));
    drain(&mut e0);
    // Another candidate of the browser hashes to worker 1.
    assert!(!e0.has_mail());
    assert!(e1.handle_datagram(
        now,
        listener(),
        remote(6000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, false, 2)
    ));
    assert!(drain(&mut e1).is_empty());
    assert_eq!(e1.stats().forwarded_out, 1);
    assert_eq!(e1.stats().sessions, 0);
    assert!(e0.has_mail());
    e0.handle_timeout(now);
    assert!(!e0.has_mail());
    let out = drain(&mut e0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, remote(6000));
    assert!(is_success(&out[0].1, 2, &pwd));
    assert_eq!(e0.stats().forwarded_in, 1);
}

#[test]
fn a_session_whose_ice_never_completes_ends_30_s_after_its_post() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let t0 = Instant::now();
    let created = r.publish(t0, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    // Checked but never nominated.
    let t1 = t0 + Duration::from_secs(5);
    assert!(e.handle_datagram(
        t1,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, false, 1)
    ));
    drain(&mut e);
    let deadline = e.poll_timeout().unwrap();
    assert!(deadline <= t0 + Duration::from_secs(30));
    e.handle_timeout(t0 + Duration::from_secs(29));
    assert_eq!(e.stats().sessions, 1);
    e.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(e.stats().sessions, 0);
    assert_eq!(e.stats().sessions_ended, 1);
    assert_eq!(r.session_count(), 0);
    assert!(r.streams().is_empty());
    // Its ufrag is TURN's again.
    let late = check(&ufrag, CLIENT_UFRAG, &pwd, true, 2);
    assert!(!e.handle_datagram(
        t0 + Duration::from_secs(31),
        listener(),
        remote(5000),
        &late
    ));
}

#[test]
fn delete_of_a_claimed_session_reaches_its_home() {
    let r = registry(2, 10);
    let mut e1 = MediaEngine::new(1, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    assert!(e1.handle_datagram(
        now,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, true, 1)
    ));
    drain(&mut e1);
    assert_eq!(e1.stats().sessions, 1);
    r.delete(now, Kind::Publisher, "cam", &created.session)
        .unwrap();
    assert_eq!(r.session_count(), 0);
    assert!(e1.has_mail());
    e1.handle_timeout(now);
    assert_eq!(e1.stats().sessions, 0);
    assert_eq!(e1.stats().sessions_ended, 1);
}

#[test]
fn ice_restart_moves_the_session_to_its_new_ufrag() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    assert!(e.handle_datagram(
        now,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, true, 1)
    ));
    drain(&mut e);

    let frag = "a=ice-ufrag:NEWU\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let out = r
        .patch(
            now,
            Kind::Publisher,
            "cam",
            &created.session,
            Some(&created.etag),
            frag,
        )
        .unwrap();
    let PatchOutcome::Restarted { fragment, .. } = out else {
        panic!("no restart: {out:?}");
    };
    let f = uturn_sdp::TrickleFragment::parse(&fragment).unwrap();
    let (new_ufrag, new_pwd) = (f.ice_ufrag.unwrap(), f.ice_pwd.unwrap());
    // The check with the new credentials may arrive before the worker read
    // its mail: it still gets there, in order.
    let c = check(&new_ufrag, "NEWU", &new_pwd, true, 2);
    assert!(e.handle_datagram(now, listener(), remote(5000), &c));
    e.handle_timeout(now);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert!(is_success(&out[0].1, 2, &new_pwd));
    // The old ufrag is gone: TURN's.
    let old = check(&ufrag, CLIENT_UFRAG, &pwd, true, 3);
    assert!(!e.handle_datagram(now, listener(), remote(5000), &old));
    assert_eq!(e.stats().sessions, 1);
}

#[test]
fn dtls_and_rtp_from_unknown_addresses_are_dropped_and_counted() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r);
    let now = Instant::now();
    let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert!(e.handle_datagram(now, listener(), remote(5000), &dtls));
    assert!(e.handle_datagram(now, listener(), remote(5000), &rtp));
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stats().unknown_source, 2);
}

#[test]
fn the_workers_collect_unclaimed_sessions() {
    let r = registry(2, 10);
    let mut e = MediaEngine::new(1, r.clone());
    let t0 = Instant::now();
    r.publish(t0, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    e.handle_timeout(t0);
    let next = e.poll_timeout().expect("a GC timer");
    assert!(next <= t0 + Duration::from_secs(1));
    e.handle_timeout(t0 + Duration::from_secs(29));
    assert_eq!(r.session_count(), 1);
    e.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(r.session_count(), 0);
    assert!(r.streams().is_empty());
}

#[test]
fn dtls_may_start_on_a_checked_pair_before_the_nomination() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    let cert = uturn_dtls::Certificate::generate().unwrap();
    let mut client = uturn_dtls::Endpoint::new(
        now,
        uturn_srtp::Role::Client,
        &cert,
        r.config().certificate.fingerprint(),
        &uturn_dtls::DtlsConfig::default(),
    )
    .unwrap();
    let mut hello = Vec::new();
    let len = client.poll_transmit(&mut hello).expect("ClientHello");
    hello.truncate(len);

    // From an address that never sent a valid check: dropped.
    assert!(e.handle_datagram(now, listener(), remote(7000), &hello));
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stats().unknown_source, 1);

    // A valid check without USE-CANDIDATE, then the ClientHello: answered.
    let c = check(&ufrag, CLIENT_UFRAG, &pwd, false, 1);
    assert!(e.handle_datagram(now, listener(), remote(5000), &c));
    drain(&mut e);
    assert!(e.handle_datagram(now, listener(), remote(5000), &hello));
    let out = drain(&mut e);
    assert!(!out.is_empty(), "no server flight");
    for (to, d) in &out {
        assert_eq!(*to, remote(5000));
        assert_eq!(d.first(), Some(&22), "a DTLS handshake record");
    }
}

#[test]
fn checks_from_many_candidates_never_unmap_the_selected_pair() {
    let r = registry(1, 10);
    let mut e = MediaEngine::new(0, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    assert!(e.handle_datagram(
        now,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, true, 1)
    ));
    for port in 5001..5021 {
        let c = check(&ufrag, CLIENT_UFRAG, &pwd, false, (port % 200) as u8);
        assert!(e.handle_datagram(now, listener(), remote(port), &c));
    }
    drain(&mut e);
    let cert = uturn_dtls::Certificate::generate().unwrap();
    let mut client = uturn_dtls::Endpoint::new(
        now,
        uturn_srtp::Role::Client,
        &cert,
        r.config().certificate.fingerprint(),
        &uturn_dtls::DtlsConfig::default(),
    )
    .unwrap();
    let mut hello = Vec::new();
    let len = client.poll_transmit(&mut hello).expect("ClientHello");
    hello.truncate(len);
    assert!(e.handle_datagram(now, listener(), remote(5000), &hello));
    let out = drain(&mut e);
    assert!(!out.is_empty());
    assert!(out.iter().all(|(to, _)| *to == remote(5000)));
    assert_eq!(e.stats().unknown_source, 0);
}

#[test]
fn dtls_from_a_pair_that_hashes_elsewhere_reaches_the_home() {
    let r = registry(2, 10);
    let mut e0 = MediaEngine::new(0, r.clone());
    let mut e1 = MediaEngine::new(1, r.clone());
    let now = Instant::now();
    let created = r.publish(now, "cam", CHROMIUM_WHIP_OFFER).unwrap();
    let (ufrag, pwd) = ice_credentials(&created.answer);
    // Claimed by worker 0 through candidate A...
    assert!(e0.handle_datagram(
        now,
        listener(),
        remote(5000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, false, 1)
    ));
    drain(&mut e0);
    // ...nominated through candidate B, which hashes to worker 1.
    assert!(e1.handle_datagram(
        now,
        listener(),
        remote(6000),
        &check(&ufrag, CLIENT_UFRAG, &pwd, true, 2)
    ));
    e0.handle_timeout(now);
    let out = drain(&mut e0);
    assert!(is_success(&out[0].1, 2, &pwd));
    assert_eq!(out[0].0, remote(6000));

    // The peer's DTLS on pair B lands on worker 1 too.
    let cert = uturn_dtls::Certificate::generate().unwrap();
    let mut client = uturn_dtls::Endpoint::new(
        now,
        uturn_srtp::Role::Client,
        &cert,
        r.config().certificate.fingerprint(),
        &uturn_dtls::DtlsConfig::default(),
    )
    .unwrap();
    let mut hello = Vec::new();
    let len = client.poll_transmit(&mut hello).expect("ClientHello");
    hello.truncate(len);
    assert!(e1.handle_datagram(now, listener(), remote(6000), &hello));
    assert!(drain(&mut e1).is_empty());
    assert_eq!(e1.stats().forwarded_out, 2);
    assert!(e0.has_mail());
    e0.handle_timeout(now);
    let out = drain(&mut e0);
    assert!(!out.is_empty(), "no server flight");
    assert!(out.iter().all(|(to, d)| *to == remote(6000) && d[0] == 22));
    assert_eq!(e0.stats().forwarded_in, 2);
}
