//! DTLS-SRTP handshakes between two in-memory endpoints on a fake clock:
//! profile negotiation, fingerprint checks, loss, timeouts, close_notify
//! and hostile input.

use std::time::{Duration, Instant};

use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Error, Event, HANDSHAKE_TIMEOUT};
use uturn_srtp::{Profile, Role, SrtpContext};

const GCM: Profile = Profile::AeadAes128Gcm;
const CM: Profile = Profile::Aes128CmSha1_80;

/// A client and a server wired back to back; `now` only moves when a test
/// moves it.
struct Pair {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Datagrams each side sent, in order.
    client_sent: usize,
    server_sent: usize,
}

impl Pair {
    fn new(client_profiles: &[Profile], server_profiles: &[Profile]) -> Pair {
        let client_cert = Certificate::generate().unwrap();
        let server_cert = Certificate::generate().unwrap();
        Pair::with_fingerprints(
            client_profiles,
            server_profiles,
            &client_cert,
            &server_cert,
            server_cert.fingerprint(),
            client_cert.fingerprint(),
        )
    }

    fn with_fingerprints(
        client_profiles: &[Profile],
        server_profiles: &[Profile],
        client_cert: &Certificate,
        server_cert: &Certificate,
        client_expects: [u8; 32],
        server_expects: [u8; 32],
    ) -> Pair {
        let now = Instant::now();
        let config = |profiles: &[Profile]| DtlsConfig {
            profiles: profiles.to_vec(),
            ..DtlsConfig::default()
        };
        let client = Endpoint::new(
            now,
            Role::Client,
            client_cert,
            client_expects,
            &config(client_profiles),
        )
        .unwrap();
        let server = Endpoint::new(
            now,
            Role::Server,
            server_cert,
            server_expects,
            &config(server_profiles),
        )
        .unwrap();
        Pair {
            now,
            client,
            server,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_sent: 0,
            server_sent: 0,
        }
    }

    /// Moves datagrams both ways until neither side has anything to send;
    /// `drop` decides per (from_client, index) whether a datagram is lost.
    fn exchange(&mut self, mut drop: impl FnMut(bool, usize) -> bool) {
        let mut buf = Vec::new();
        for _ in 0..100 {
            let mut moved = false;
            while let Some(n) = self.client.poll_transmit(&mut buf) {
                assert_eq!(n, buf.len());
                assert!(n <= 1200, "datagram of {n} bytes exceeds the MTU");
                moved = true;
                self.client_sent += 1;
                if !drop(true, self.client_sent - 1) {
                    let _ = self.server.handle_datagram(self.now, &buf);
                }
            }
            while let Some(n) = self.server.poll_transmit(&mut buf) {
                assert!(n <= 1200, "datagram of {n} bytes exceeds the MTU");
                moved = true;
                self.server_sent += 1;
                if !drop(false, self.server_sent - 1) {
                    let _ = self.client.handle_datagram(self.now, &buf);
                }
            }
            self.collect_events();
            if !moved {
                return;
            }
        }
        panic!("the endpoints never went quiet");
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Advances the clock to the earlier timer and fires both.
    fn tick(&mut self) -> bool {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.collect_events();
        true
    }
}

fn connected(events: &[Event]) -> Option<(Profile, uturn_srtp::DtlsSrtpKeys)> {
    events.iter().find_map(|e| match e {
        Event::Connected { profile, keys } => Some((*profile, keys.clone())),
        _ => None,
    })
}

fn failures(events: &[Event]) -> Vec<Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Handshake, then check both sides agree on the profile and on the keys,
/// and that SRTP protected with one side's keys opens with the other's.
fn handshake_negotiates(client: &[Profile], server: &[Profile], expected: Profile) {
    let mut pair = Pair::new(client, server);
    pair.exchange(|_, _| false);
    assert!(
        pair.client.is_connected(),
        "client: {:?}",
        pair.client_events
    );
    assert!(
        pair.server.is_connected(),
        "server: {:?}",
        pair.server_events
    );
    let (cp, ck) = connected(&pair.client_events).unwrap();
    let (sp, sk) = connected(&pair.server_events).unwrap();
    assert_eq!(cp, expected);
    assert_eq!(sp, expected);
    assert_eq!(ck.local, sk.remote);
    assert_eq!(ck.remote, sk.local);
    assert_ne!(
        ck.local, ck.remote,
        "the two directions have their own keys"
    );
    assert_eq!(pair.client.profile(), Some(expected));

    // An RTP packet the client protects opens with the server's remote keys.
    let mut tx = SrtpContext::new(&ck.local);
    let mut rx = SrtpContext::new(&sk.remote);
    let mut packet = vec![0x80, 96, 0, 1, 0, 0, 0, 10, 0x12, 0x34, 0x56, 0x78];
    packet.extend_from_slice(b"media payload");
    let plain = packet.clone();
    let len = packet.len();
    packet.resize(len + 16, 0);
    let protected = tx.protect_rtp(&mut packet, len).unwrap();
    packet.truncate(protected);
    assert_ne!(&packet[12..len], &plain[12..]);
    let opened = rx.unprotect_rtp(&mut packet).unwrap();
    assert_eq!(&packet[..opened], &plain[..]);
}

#[test]
fn handshake_gcm_preferred_by_both() {
    handshake_negotiates(&[GCM, CM], &[GCM, CM], GCM);
}

#[test]
fn handshake_cm_preferred_by_both() {
    handshake_negotiates(&[CM, GCM], &[CM, GCM], CM);
}

#[test]
fn server_preference_wins_over_client_order() {
    // RFC 5764 §4.1.1: the server chooses from the client's list.
    handshake_negotiates(&[GCM, CM], &[CM, GCM], CM);
    handshake_negotiates(&[CM, GCM], &[GCM, CM], GCM);
}

#[test]
fn single_profile_each() {
    handshake_negotiates(&[GCM], &[GCM, CM], GCM);
    handshake_negotiates(&[CM], &[GCM, CM], CM);
    handshake_negotiates(&[GCM, CM], &[CM], CM);
}

#[test]
fn no_common_profile_fails_both_sides() {
    let mut pair = Pair::new(&[GCM], &[CM]);
    pair.exchange(|_, _| false);
    assert!(!pair.client.is_connected());
    assert!(!pair.server.is_connected());
    assert!(connected(&pair.server_events).is_none());
    assert_eq!(failures(&pair.server_events), vec![Error::NoCommonProfile]);
    // The server answered without use_srtp, so the client refuses too
    // (unless it already saw the server give up first).
    assert!(connected(&pair.client_events).is_none());
}

#[test]
fn server_refuses_client_with_wrong_fingerprint() {
    let client_cert = Certificate::generate().unwrap();
    let server_cert = Certificate::generate().unwrap();
    let mut wrong = client_cert.fingerprint();
    wrong[0] ^= 1;
    let mut pair = Pair::with_fingerprints(
        &[GCM, CM],
        &[GCM, CM],
        &client_cert,
        &server_cert,
        server_cert.fingerprint(),
        wrong,
    );
    pair.exchange(|_, _| false);
    assert_eq!(
        failures(&pair.server_events),
        vec![Error::FingerprintMismatch]
    );
    assert!(connected(&pair.server_events).is_none());
    assert!(!pair.server.is_connected());
    // The client never gets the server's Finished.
    assert!(connected(&pair.client_events).is_none());
    // Nothing more leaves the server, even when its timers would fire.
    let mut buf = Vec::new();
    assert_eq!(pair.server.poll_timeout(), None);
    pair.server
        .handle_timeout(pair.now + Duration::from_secs(5));
    assert_eq!(pair.server.poll_transmit(&mut buf), None);
    assert_eq!(pair.server.poll_event(), None, "failure is reported once");
    // And further input is refused.
    assert_eq!(
        pair.server
            .handle_datagram(pair.now, &[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Error::Closed)
    );
}

#[test]
fn client_refuses_server_with_wrong_fingerprint() {
    let client_cert = Certificate::generate().unwrap();
    let server_cert = Certificate::generate().unwrap();
    let mut pair = Pair::with_fingerprints(
        &[GCM, CM],
        &[GCM, CM],
        &client_cert,
        &server_cert,
        client_cert.fingerprint(), // not the server's
        client_cert.fingerprint(),
    );
    let server_sent_before_failure = {
        pair.exchange(|_, _| false);
        pair.server_sent
    };
    assert_eq!(
        failures(&pair.client_events),
        vec![Error::FingerprintMismatch]
    );
    assert!(!pair.client.is_connected());
    assert!(connected(&pair.client_events).is_none());
    // The client stopped after the server's first flight with the
    // certificate, so the server never completes.
    assert!(!pair.server.is_connected());
    assert!(server_sent_before_failure > 0);
    let mut buf = Vec::new();
    assert_eq!(pair.client.poll_transmit(&mut buf), None);
}

#[test]
fn lost_flights_are_retransmitted() {
    let mut pair = Pair::new(&[GCM, CM], &[GCM, CM]);
    // Lose the client's first datagram and the server's first two.
    pair.exchange(|from_client, i| if from_client { i == 0 } else { i < 2 });
    for _ in 0..20 {
        if pair.client.is_connected() && pair.server.is_connected() {
            break;
        }
        assert!(pair.tick(), "no timer while the handshake is pending");
        pair.exchange(|from_client, i| if from_client { i == 0 } else { i < 2 });
    }
    assert!(pair.client.is_connected(), "{:?}", pair.client_events);
    assert!(pair.server.is_connected(), "{:?}", pair.server_events);
    let (_, ck) = connected(&pair.client_events).unwrap();
    let (_, sk) = connected(&pair.server_events).unwrap();
    assert_eq!(ck.local, sk.remote);
    assert!(
        pair.client_sent > 3,
        "the client retransmitted ({} datagrams)",
        pair.client_sent
    );
}

#[test]
fn silent_peer_times_out() {
    let mut pair = Pair::new(&[GCM], &[GCM]);
    let start = pair.now;
    // The client talks into the void; the server hears nothing.
    let mut buf = Vec::new();
    let mut sent = 0;
    let mut failed_at = None;
    for _ in 0..100 {
        while pair.client.poll_transmit(&mut buf).is_some() {
            sent += 1;
        }
        pair.collect_events();
        if !failures(&pair.client_events).is_empty() && failed_at.is_none() {
            failed_at = Some(pair.now);
        }
        if !pair.tick() {
            break;
        }
    }
    assert!(sent >= 3, "ClientHello retransmitted, sent {sent}");
    assert_eq!(failures(&pair.client_events), vec![Error::HandshakeTimeout]);
    assert_eq!(failures(&pair.server_events), vec![Error::HandshakeTimeout]);
    let failed_at = failed_at.unwrap();
    assert!(
        failed_at - start <= HANDSHAKE_TIMEOUT,
        "{:?}",
        failed_at - start
    );
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.server.poll_timeout(), None);
}

#[test]
fn server_deadline_is_exact() {
    let pair = Pair::new(&[GCM], &[GCM]);
    let mut server = pair.server;
    assert_eq!(server.poll_timeout(), Some(pair.now + HANDSHAKE_TIMEOUT));
    server.handle_timeout(pair.now + HANDSHAKE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(server.poll_event(), None);
    server.handle_timeout(pair.now + HANDSHAKE_TIMEOUT);
    assert_eq!(
        server.poll_event(),
        Some(Event::Failed(Error::HandshakeTimeout))
    );
    assert_eq!(server.poll_event(), None);
}

#[test]
fn close_notify_reaches_the_peer() {
    for closer_is_client in [true, false] {
        let mut pair = Pair::new(&[GCM, CM], &[GCM, CM]);
        pair.exchange(|_, _| false);
        assert!(pair.client.is_connected() && pair.server.is_connected());
        if closer_is_client {
            pair.client.close();
            assert!(!pair.client.is_connected());
        } else {
            pair.server.close();
        }
        pair.exchange(|_, _| false);
        let (closer, other) = if closer_is_client {
            (&pair.client_events, &pair.server_events)
        } else {
            (&pair.server_events, &pair.client_events)
        };
        assert_eq!(other.last(), Some(&Event::Closed), "{other:?}");
        assert!(
            !closer.contains(&Event::Closed),
            "only the peer's alert is Closed"
        );
        assert!(!pair.client.is_connected());
        assert!(!pair.server.is_connected());
    }
}

#[test]
fn garbage_is_refused_and_harmless() {
    let mut pair = Pair::new(&[GCM, CM], &[GCM, CM]);
    let now = pair.now;
    let junk: [&[u8]; 6] = [
        &[],
        &[0x16],
        &[0xFF; 64],
        &[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3],
        &[128, 0, 0, 0],
        &[0x14, 0xFE, 0xFD],
    ];
    for j in junk {
        assert_eq!(pair.server.handle_datagram(now, j), Err(Error::Malformed));
        assert_eq!(pair.client.handle_datagram(now, j), Err(Error::Malformed));
    }
    // Well-framed records with nonsense inside are dropped by dimpl.
    let mut framed = vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
    framed.extend((0..40u8).map(|i| i.wrapping_mul(37)));
    let _ = pair.server.handle_datagram(now, &framed);
    // Truncated copies of every real handshake datagram, both ways.
    let mut buf = Vec::new();
    let mut flights = Vec::new();
    while pair.client.poll_transmit(&mut buf).is_some() {
        flights.push(buf.clone());
    }
    for d in &flights {
        for cut in [1, 5, 13, 14, d.len() / 2, d.len() - 1] {
            let _ = pair.server.handle_datagram(now, &d[..cut.min(d.len())]);
        }
        pair.server.handle_datagram(now, d).unwrap();
    }
    // The handshake still completes afterwards.
    pair.exchange(|_, _| false);
    for _ in 0..10 {
        if pair.client.is_connected() && pair.server.is_connected() {
            break;
        }
        pair.tick();
        pair.exchange(|_, _| false);
    }
    assert!(pair.client.is_connected(), "{:?}", pair.client_events);
    assert!(pair.server.is_connected(), "{:?}", pair.server_events);
}

#[test]
fn random_datagrams_never_panic() {
    // A cheap deterministic generator (xorshift) instead of a fuzzer run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut pair = Pair::new(&[GCM, CM], &[GCM, CM]);
    let now = pair.now;
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 13 && next() % 2 == 0 {
            // Make the framing plausible so the bytes reach dimpl.
            d[0] = 20 + (next() % 4) as u8;
            d[1] = 0xFE;
            d[2] = 0xFD;
            let body = (len - 13) as u16;
            d[11..13].copy_from_slice(&body.to_be_bytes());
        }
        let _ = pair.server.handle_datagram(now, &d);
    }
    // Whatever happened, the server is in a consistent state.
    pair.collect_events();
    assert!(pair.server_events.len() <= 1, "{:?}", pair.server_events);
}

#[test]
fn plaintext_fatal_alert_during_handshake_fails_once() {
    // An epoch-0 fatal alert (handshake_failure, RFC 5246 §7.2) is how a
    // peer gives up before keys exist; the association fails, once.
    let mut pair = Pair::new(&[GCM], &[GCM]);
    let alert = [21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 2, 40];
    let r = pair.client.handle_datagram(pair.now, &alert);
    assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
    pair.collect_events();
    assert_eq!(failures(&pair.client_events).len(), 1);
    assert_eq!(
        pair.client.handle_datagram(pair.now, &alert),
        Err(Error::Closed)
    );
    pair.collect_events();
    assert_eq!(failures(&pair.client_events).len(), 1);
}

#[test]
fn plaintext_alert_after_the_handshake_is_ignored() {
    // Once keys are in use, an unauthenticated epoch-0 record (an
    // off-path attacker spoofing the peer's address) must not end the
    // association (RFC 6347 §4.1.2.7: invalid records are discarded).
    let mut pair = Pair::new(&[GCM], &[GCM]);
    pair.exchange(|_, _| false);
    assert!(pair.server.is_connected());
    let alert = [21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 99, 0, 2, 2, 40];
    let close = [21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 100, 0, 2, 1, 0];
    for d in [&alert[..], &close[..]] {
        let _ = pair.server.handle_datagram(pair.now, d);
        let _ = pair.client.handle_datagram(pair.now, d);
    }
    pair.collect_events();
    assert!(pair.server.is_connected(), "{:?}", pair.server_events);
    assert!(pair.client.is_connected(), "{:?}", pair.client_events);
    assert_eq!(failures(&pair.server_events), vec![]);
    assert!(!pair.server_events.contains(&Event::Closed));
}
