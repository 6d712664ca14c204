//! Shared pieces of the media engine tests: a registry on a fake clock,
//! real Chromium offers (uturn-sdp's fixtures).
#![allow(dead_code)]

pub mod net;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use uturn_media::{Registry, RegistryConfig};

/// A WHIP offer Chromium made (audio Opus + video VP8/H.264 ..., sendonly).
pub const CHROMIUM_WHIP_OFFER: &str =
    include_str!("../../../sdp/tests/fixtures/chromium-whip-offer.sdp");
/// A WHEP offer Chromium made (recvonly audio and video).
pub const CHROMIUM_WHEP_OFFER: &str =
    include_str!("../../../sdp/tests/fixtures/chromium-whep-offer.sdp");

/// The relay's one listener in these tests.
pub fn listener() -> SocketAddr {
    "192.0.2.10:3478".parse().unwrap()
}

/// A registry for `workers` workers with at most `max_sessions` sessions.
pub fn registry(workers: usize, max_sessions: usize) -> Arc<Registry> {
    registry_with(workers, max_sessions, Vec::new())
}

/// The same with these SRTP profiles offered in DTLS (empty: the default).
pub fn registry_with(
    workers: usize,
    max_sessions: usize,
    srtp_profiles: Vec<uturn_srtp::Profile>,
) -> Arc<Registry> {
    Registry::new(RegistryConfig {
        candidates: vec![listener()],
        srtp_profiles,
        workers,
        max_sessions,
        certificate: uturn_dtls::Certificate::generate().expect("certificate"),
        unix_epoch: (Instant::now(), SystemTime::now()),
    })
}

use uturn_stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

/// The ICE credentials of an SDP (the first m-section's).
pub fn ice_credentials(sdp: &str) -> (String, String) {
    let sdp = uturn_sdp::SessionDescription::parse(sdp).unwrap();
    let m = &sdp.media[0];
    (
        sdp.ice_ufrag(m).unwrap().to_owned(),
        sdp.ice_pwd(m).unwrap().to_owned(),
    )
}

/// A connectivity check as a controlling full agent sends it (RFC 8445
/// §7.1): USERNAME `server:client`, PRIORITY, ICE-CONTROLLING, maybe
/// USE-CANDIDATE, MESSAGE-INTEGRITY keyed with `key`, FINGERPRINT.
pub fn check(
    server_ufrag: &str,
    client_ufrag: &str,
    key: &str,
    nominate: bool,
    tid: u8,
) -> Vec<u8> {
    let mut out = Vec::new();
    let username = format!("{server_ufrag}:{client_ufrag}");
    let mut b = MessageBuilder::new(
        &mut out,
        Class::Request,
        Method::BINDING,
        TransactionId([tid; 12]),
    );
    b.add(&Attribute::Username(&username)).unwrap();
    b.add(&Attribute::Priority(1_853_824_767)).unwrap();
    b.add(&Attribute::IceControlling(0x1234_5678_9abc_def0))
        .unwrap();
    if nominate {
        b.add(&Attribute::UseCandidate).unwrap();
    }
    b.message_integrity(key.as_bytes()).unwrap();
    b.fingerprint().unwrap();
    b.finish();
    out
}

/// Whether `datagram` is a Binding success for transaction `tid`, signed
/// with `key`.
pub fn is_success(datagram: &[u8], tid: u8, key: &str) -> bool {
    let Ok(msg) = Message::parse(datagram) else {
        return false;
    };
    msg.class() == Class::Success
        && msg.method() == Method::BINDING
        && msg.transaction_id() == TransactionId([tid; 12])
        && msg.check_integrity(key.as_bytes()).is_ok()
}
