//! Any bytes through SRTP/SRTCP unprotect on every profile with fixed
//! keys (what an attacker who knows no key can send), then the same bytes
//! as plaintext through protect and unprotect.
//!
//! Checked: nothing panics; nothing the fuzzer makes up authenticates
//! (80-bit and GCM tags); what we protect unprotects to the same bytes
//! once, is a replay the second time, and fails with any octet flipped;
//! the RustCrypto and aws-lc backends write the same SRTP bytes; a stream
//! of packets protected and unprotected in order (sequence numbers from
//! the input, wrapping and jumping) is accepted or refused as a replay,
//! never mis-decrypted, so both sides agree on every rollover counter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uturn_srtp::{AwsLc, Backend, Error, MasterKeys, Profile, RustCrypto, SrtpContext};

const PROFILES: [Profile; 3] = [
    Profile::AeadAes128Gcm,
    Profile::Aes128CmSha1_80,
    Profile::Aes128CmSha1_32,
];
const KEY: [u8; 16] = *b"uturn-fuzz-key16";
const SALT: [u8; 14] = *b"fuzz-salt-14oc";
/// Room after a packet for the largest tag plus the SRTCP index.
const TAILROOM: usize = 32;

fn master(profile: Profile) -> MasterKeys {
    // Valid lengths for every profile: a failure here is a bug.
    MasterKeys::new(profile, &KEY, &SALT[..profile.salt_len()]).expect("fixed key lengths")
}

fn context<B: Backend>(profile: Profile) -> SrtpContext<B> {
    SrtpContext::with_backend(&master(profile))
}

/// Made-up bytes never authenticate; the context stays usable.
fn unprotect_garbage(profile: Profile, data: &[u8]) {
    let mut rx = SrtpContext::new(&master(profile));
    let strong = profile != Profile::Aes128CmSha1_32;
    let mut buf = data.to_vec();
    let rtp = rx.unprotect_rtp(&mut buf);
    assert!(!(strong && rtp.is_ok()), "forged SRTP accepted");
    let mut buf = data.to_vec();
    let rtcp = rx.unprotect_rtcp(&mut buf);
    assert!(!(strong && rtcp.is_ok()), "forged SRTCP accepted");
}

/// `plain` protected as SRTP (or SRTCP) by a fresh context on backend `B`.
fn seal<B: Backend>(profile: Profile, plain: &[u8], rtcp: bool) -> Result<Vec<u8>, Error> {
    let mut tx = context::<B>(profile);
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + TAILROOM, 0);
    let len = if rtcp {
        tx.protect_rtcp(&mut buf, plain.len())?
    } else {
        tx.protect_rtp(&mut buf, plain.len())?
    };
    buf.truncate(len);
    Ok(buf)
}

/// Protects `plain` with both backends (same bytes), then checks
/// unprotect: once fine, twice a replay, flipped a failure.
fn roundtrip(profile: Profile, plain: &[u8], flip: usize, rtcp: bool) {
    let sealed = seal::<RustCrypto>(profile, plain, rtcp);
    let other = seal::<AwsLc>(profile, plain, rtcp);
    assert_eq!(
        sealed, other,
        "the backends disagree ({profile:?}, rtcp {rtcp})"
    );
    let Ok(sealed) = sealed else {
        return;
    };

    let mut rx = SrtpContext::new(&master(profile));
    let mut unprotect = |bytes: &[u8]| {
        let mut buf = bytes.to_vec();
        let result = if rtcp {
            rx.unprotect_rtcp(&mut buf)
        } else {
            rx.unprotect_rtp(&mut buf)
        };
        result.map(|len| buf[..len].to_vec())
    };
    let mut flipped = sealed.clone();
    let at = flip % flipped.len();
    flipped[at] ^= 1 << (flip / flipped.len() % 8);
    assert!(
        unprotect(&flipped).is_err(),
        "a flipped octet {at} authenticated"
    );
    assert_eq!(unprotect(&sealed).as_deref(), Ok(plain), "roundtrip");
    assert_eq!(unprotect(&sealed), Err(Error::Replay), "second copy");
}

/// Packets with the input's sequence numbers, protected and received in
/// order through one pair of contexts.
fn stream(profile: Profile, script: &[u8]) {
    let mut tx = SrtpContext::new(&master(profile));
    let mut rx = SrtpContext::new(&master(profile));
    let mut buf = [0u8; 12 + 4 + TAILROOM];
    for step in script.chunks_exact(3).take(256) {
        let seq = u16::from_be_bytes([step[0], step[1]]);
        let ssrc = u32::from(step[2] & 0x03);
        let plain = {
            let mut p = [0u8; 16];
            p[0] = 0x80;
            p[1] = 96;
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            p[12..16].copy_from_slice(&[step[2]; 4]);
            p
        };
        buf[..16].copy_from_slice(&plain);
        let Ok(len) = tx.protect_rtp(&mut buf, 16) else {
            continue;
        };
        let mut received = buf[..len].to_vec();
        match rx.unprotect_rtp(&mut received) {
            Ok(n) => assert_eq!(&received[..n], &plain, "seq {seq} decrypted wrong"),
            Err(Error::Replay) => {}
            Err(e) => panic!("seq {seq} ssrc {ssrc}: {e} (the ROCs diverged)"),
        }
        if step[2] & 0x80 != 0 {
            let rr = [0x80, 201, 0, 1, 0, 0, 0, step[2] & 0x03];
            let mut rtcp = [0u8; 8 + TAILROOM];
            rtcp[..8].copy_from_slice(&rr);
            let len = tx.protect_rtcp(&mut rtcp, 8).expect("an RR protects");
            let mut received = rtcp[..len].to_vec();
            let n = rx
                .unprotect_rtcp(&mut received)
                .expect("a fresh SRTCP index");
            assert_eq!(&received[..n], &rr);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let flip = data
        .first()
        .map_or(0, |&b| usize::from(b) * 31 + data.len());
    for profile in PROFILES {
        unprotect_garbage(profile, data);
        roundtrip(profile, data, flip, false);
        roundtrip(profile, data, flip, true);
        stream(profile, data);
    }
});
