//! Behaviour tests of [`SrtpContext`] on both backends: RFC and libsrtp
//! vectors through the full packet path, round trips, ROC wrap, replay,
//! tampering and truncation.

use crate::backend::Backend;
use crate::keys::{DtlsSrtpKeys, MasterKeys, Role, SessionKeys};
use crate::test_util::unhex;
use crate::{Error, Profile, RustCrypto, SrtpContext, MAX_STREAMS};

/// RFC 7714 §16/§17 give session keys directly: key 000102..0f, salt
/// "Quid pro quo", for SRTP and SRTCP alike.
fn rfc7714_context<B: Backend>() -> SrtpContext<B> {
    let mut keys = SessionKeys {
        cipher: unhex("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .unwrap(),
        salt: [0; 14],
        auth: [0; 20],
    };
    keys.salt[..12].copy_from_slice(&unhex("517569642070726f2071756f"));
    SrtpContext::from_session_keys(Profile::AeadAes128Gcm, &keys, &keys)
}

const RFC7714_RTP: &str = "8040f17b8041f8d35501a0b2\
    47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
const RFC7714_SRTP: &str = "8040f17b8041f8d35501a0b2\
    f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833\
    899d7f27beb16a9152cf765ee4390cce";
const RFC7714_RTCP: &str = "81c8000d4d617273\
    4e5450314e545032525450200000042a0000e9304c756e61\
    deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/// §17.1: header | ciphertext | tag | E=1, index 0x5d4.
const RFC7714_SRTCP: &str = "81c8000d4d617273\
    63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275b\
    c84aa45896cf4d2fc5abf87245d9eade\
    800005d4";
/// §17.3: tagged only (E=0): packet | tag | E=0, index 0x5d4.
const RFC7714_SRTCP_TAG_ONLY: &str = "81c8000d4d617273\
    4e5450314e545032525450200000042a0000e9304c756e61\
    deadbeefdeadbeefdeadbeefdeadbeefdeadbeef\
    841dd9683dd78ec92ae58790125f62b3\
    000005d4";

fn protect<B: Backend>(ctx: &mut SrtpContext<B>, packet: &[u8]) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + 16, 0);
    let n = ctx.protect_rtp(&mut buf, packet.len()).unwrap();
    buf.truncate(n);
    buf
}

fn protect_rtcp<B: Backend>(ctx: &mut SrtpContext<B>, packet: &[u8]) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + 20, 0);
    let n = ctx.protect_rtcp(&mut buf, packet.len()).unwrap();
    buf.truncate(n);
    buf
}

fn unprotect<B: Backend>(ctx: &mut SrtpContext<B>, packet: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = packet.to_vec();
    let n = ctx.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect_rtcp<B: Backend>(ctx: &mut SrtpContext<B>, packet: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = packet.to_vec();
    let n = ctx.unprotect_rtcp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend(seq.to_be_bytes());
    p.extend(0x1234_5678u32.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| i as u8));
    p
}

/// A sender report from `ssrc` with a bit of body.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend(ssrc.to_be_bytes());
    p.extend([0x5a; 20]);
    p
}

fn pair<B: Backend>(profile: Profile) -> (SrtpContext<B>, SrtpContext<B>) {
    let salt = vec![0x3c; profile.salt_len()];
    let master = MasterKeys::new(profile, &[0xa5; 16], &salt).unwrap();
    (
        SrtpContext::with_backend(&master),
        SrtpContext::with_backend(&master),
    )
}

const PROFILES: [Profile; 3] = [
    Profile::AeadAes128Gcm,
    Profile::Aes128CmSha1_80,
    Profile::Aes128CmSha1_32,
];

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod rust_crypto {
            $(#[test] fn $name() { super::$name::<crate::RustCrypto>(); })*
        }
        #[cfg(feature = "aws-lc")]
        mod aws_lc {
            $(#[test] fn $name() { super::$name::<crate::AwsLc>(); })*
        }
        #[cfg(feature = "aws-lc")]
        mod best_of {
            $(#[test] fn $name() { super::$name::<crate::BestOf>(); })*
        }
    };
}

on_both_backends!(
    rfc7714_16_1_rtp_protect_and_unprotect,
    rfc7714_17_1_rtcp_protect_and_unprotect,
    rfc7714_17_3_rtcp_tag_only_unprotects,
    libsrtp_cm_sha1_80_rtp_and_rtcp_vectors,
    round_trips_every_profile,
    roc_wraps_and_late_packet_uses_previous_roc,
    replay_window_on_rtp,
    replay_window_on_rtcp,
    tampered_packets_are_rejected_without_state_change,
    forged_packet_does_not_advance_the_roc,
    truncated_and_garbage_inputs_error,
    buffer_and_stream_limits,
);

fn rfc7714_16_1_rtp_protect_and_unprotect<B: Backend>() {
    let mut tx = rfc7714_context::<B>();
    assert_eq!(protect(&mut tx, &unhex(RFC7714_RTP)), unhex(RFC7714_SRTP));
    let mut rx = rfc7714_context::<B>();
    assert_eq!(
        unprotect(&mut rx, &unhex(RFC7714_SRTP)),
        Ok(unhex(RFC7714_RTP))
    );
    assert_eq!(rx.rtp_index(0x5501a0b2), Some(0xf17b));
}

fn rfc7714_17_1_rtcp_protect_and_unprotect<B: Backend>() {
    let mut tx = rfc7714_context::<B>();
    let plain = unhex(RFC7714_RTCP);
    // Our sender starts at SRTCP index 0; the vector uses 0x5d4.
    for _ in 0..0x5d4 {
        protect_rtcp(&mut tx, &plain);
    }
    assert_eq!(protect_rtcp(&mut tx, &plain), unhex(RFC7714_SRTCP));
    let mut rx = rfc7714_context::<B>();
    assert_eq!(unprotect_rtcp(&mut rx, &unhex(RFC7714_SRTCP)), Ok(plain));
    // And it is now a replay.
    assert_eq!(
        unprotect_rtcp(&mut rx, &unhex(RFC7714_SRTCP)),
        Err(Error::Replay)
    );
}

fn rfc7714_17_3_rtcp_tag_only_unprotects<B: Backend>() {
    let mut rx = rfc7714_context::<B>();
    let mut forged = unhex(RFC7714_SRTCP_TAG_ONLY);
    forged[10] ^= 0x80;
    assert_eq!(unprotect_rtcp(&mut rx, &forged), Err(Error::Auth));
    assert_eq!(
        unprotect_rtcp(&mut rx, &unhex(RFC7714_SRTCP_TAG_ONLY)),
        Ok(unhex(RFC7714_RTCP))
    );
}

/// libsrtp's reference packets (test/srtp_driver.c `srtp_validate`), with
/// the RFC 3711 B.3 master key and salt, SSRC 0xcafebabe. Its SRTCP index
/// starts at 1 because libsrtp increments before use.
fn libsrtp_cm_sha1_80_rtp_and_rtcp_vectors<B: Backend>() {
    let master = MasterKeys::new(
        Profile::Aes128CmSha1_80,
        &unhex("e1f97a0d3e018be0d64fa32c06de4139"),
        &unhex("0ec675ad498afeebb6960b3aabe6"),
    )
    .unwrap();
    let plain = unhex("800f1234decafbadcafebabe abababababababababababababababab");
    let srtp =
        unhex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut tx = SrtpContext::<B>::with_backend(&master);
    assert_eq!(protect(&mut tx, &plain), srtp);
    let mut rx = SrtpContext::<B>::with_backend(&master);
    assert_eq!(unprotect(&mut rx, &srtp), Ok(plain));

    let rtcp_plain = unhex("81c8000bcafebabe abababababababababababababababab");
    let srtcp =
        unhex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
    let first = protect_rtcp(&mut tx, &rtcp_plain);
    assert_eq!(&first[first.len() - 14..first.len() - 10], &[0x80, 0, 0, 0]);
    assert_eq!(protect_rtcp(&mut tx, &rtcp_plain), srtcp);
    assert_eq!(unprotect_rtcp(&mut rx, &srtcp), Ok(rtcp_plain.clone()));
    // Index 0 is still inside the window and unseen: accepted.
    assert_eq!(unprotect_rtcp(&mut rx, &first), Ok(rtcp_plain));
}

fn round_trips_every_profile<B: Backend>() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair::<B>(profile);
        // Plain, with CSRCs + extension, and with an empty payload.
        let mut with_ext =
            unhex("9260000700000000deadbeef 11111111 22222222 bede0002 0102030405060708");
        with_ext.extend([0x77; 100]);
        let plain_ssrc = 0xfeed;
        for packet in [rtp(1, plain_ssrc, 1200), with_ext, rtp(2, plain_ssrc, 0)] {
            let srtp = protect(&mut tx, &packet);
            assert_eq!(srtp.len(), packet.len() + profile.rtp_tag_len());
            if packet.len() > 40 {
                assert_ne!(
                    &srtp[packet.len() - 20..packet.len()],
                    &packet[packet.len() - 20..]
                );
            }
            assert_eq!(unprotect(&mut rx, &srtp), Ok(packet), "{profile:?}");
        }
        for _ in 0..3 {
            let packet = rtcp(0xbeef);
            let srtcp = protect_rtcp(&mut tx, &packet);
            assert_eq!(srtcp.len(), packet.len() + profile.rtcp_overhead());
            assert_eq!(unprotect_rtcp(&mut rx, &srtcp), Ok(packet), "{profile:?}");
        }
    }
}

fn roc_wraps_and_late_packet_uses_previous_roc<B: Backend>() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair::<B>(profile);
        let ssrc = 42;
        let protected: Vec<(u16, Vec<u8>)> = (65530u16..=65535)
            .chain(0..5)
            .map(|seq| (seq, protect(&mut tx, &rtp(seq, ssrc, 50))))
            .collect();
        assert_eq!(tx.rtp_index(ssrc), Some((1 << 16) | 4));
        // Deliver all but 65534, which arrives after the wrap.
        for (seq, srtp) in protected.iter().filter(|(s, _)| *s != 65534) {
            assert_eq!(unprotect(&mut rx, srtp), Ok(rtp(*seq, ssrc, 50)));
        }
        assert_eq!(rx.rtp_index(ssrc), Some((1 << 16) | 4));
        let late = &protected.iter().find(|(s, _)| *s == 65534).unwrap().1;
        assert_eq!(unprotect(&mut rx, late), Ok(rtp(65534, ssrc, 50)));
        assert_eq!(unprotect(&mut rx, late), Err(Error::Replay));
        assert_eq!(rx.rtp_index(ssrc), Some((1 << 16) | 4));
    }
}

fn replay_window_on_rtp<B: Backend>() {
    let (mut tx, mut rx) = pair::<B>(Profile::AeadAes128Gcm);
    let packets: Vec<Vec<u8>> = (0..300u16)
        .map(|s| protect(&mut tx, &rtp(s, 7, 20)))
        .collect();
    // In order up to 10, then 200 (skipping), then out of order inside the
    // window, then too old.
    for p in &packets[..=10] {
        unprotect(&mut rx, p).unwrap();
    }
    assert_eq!(unprotect(&mut rx, &packets[10]), Err(Error::Replay));
    unprotect(&mut rx, &packets[200]).unwrap();
    assert_eq!(unprotect(&mut rx, &packets[150]), Ok(rtp(150, 7, 20)));
    assert_eq!(unprotect(&mut rx, &packets[73]), Ok(rtp(73, 7, 20)));
    assert_eq!(unprotect(&mut rx, &packets[73]), Err(Error::Replay));
    // 200 - 128 = 72 is out of the window.
    assert_eq!(unprotect(&mut rx, &packets[72]), Err(Error::Replay));
    assert_eq!(unprotect(&mut rx, &packets[11]), Err(Error::Replay));
    assert_eq!(unprotect(&mut rx, &packets[299]), Ok(rtp(299, 7, 20)));
}

fn replay_window_on_rtcp<B: Backend>() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair::<B>(profile);
        let packets: Vec<Vec<u8>> = (0..200).map(|_| protect_rtcp(&mut tx, &rtcp(9))).collect();
        unprotect_rtcp(&mut rx, &packets[5]).unwrap();
        unprotect_rtcp(&mut rx, &packets[150]).unwrap();
        assert_eq!(unprotect_rtcp(&mut rx, &packets[150]), Err(Error::Replay));
        assert_eq!(unprotect_rtcp(&mut rx, &packets[5]), Err(Error::Replay));
        assert_eq!(unprotect_rtcp(&mut rx, &packets[100]), Ok(rtcp(9)));
        assert_eq!(unprotect_rtcp(&mut rx, &packets[22]), Err(Error::Replay));
        assert_eq!(unprotect_rtcp(&mut rx, &packets[23]), Ok(rtcp(9)));
    }
}

fn tampered_packets_are_rejected_without_state_change<B: Backend>() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair::<B>(profile);
        unprotect(&mut rx, &protect(&mut tx, &rtp(100, 5, 64))).unwrap();
        let good = protect(&mut tx, &rtp(101, 5, 64));
        // A bit flipped in the header (sequence number, SSRC kept), the
        // payload and the tag.
        for at in [3, 12, 40, good.len() - 1] {
            let mut bad = good.clone();
            // 0x02: seq 101 becomes 103, not the already-seen 100.
            bad[at] ^= 0x02;
            assert_eq!(
                unprotect(&mut rx, &bad),
                Err(Error::Auth),
                "{profile:?} byte {at}"
            );
            assert_eq!(rx.rtp_index(5), Some(100));
        }
        assert_eq!(unprotect(&mut rx, &good), Ok(rtp(101, 5, 64)));

        let good = protect_rtcp(&mut tx, &rtcp(5));
        for at in [4, 9, good.len() - 5, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(
                unprotect_rtcp(&mut rx, &bad).is_err(),
                "{profile:?} byte {at}"
            );
        }
        assert_eq!(unprotect_rtcp(&mut rx, &good), Ok(rtcp(5)));
        // Keys of another context do not verify.
        let (mut other, _) = pair::<B>(profile);
        let mut master_salt = vec![0x3c; profile.salt_len()];
        master_salt[0] ^= 1;
        let mut stranger = SrtpContext::<B>::with_backend(
            &MasterKeys::new(profile, &[0xa5; 16], &master_salt).unwrap(),
        );
        let foreign = protect(&mut stranger, &rtp(102, 5, 64));
        assert_eq!(unprotect(&mut rx, &foreign), Err(Error::Auth));
        let _ = protect(&mut other, &rtp(1, 1, 1));
    }
}

fn forged_packet_does_not_advance_the_roc<B: Backend>() {
    let (mut tx, mut rx) = pair::<B>(Profile::Aes128CmSha1_80);
    unprotect(&mut rx, &protect(&mut tx, &rtp(40_000, 3, 10))).unwrap();
    // A forged packet whose seq would move to ROC 1.
    let mut forged = protect(&mut tx, &rtp(100, 3, 10));
    let n = forged.len();
    forged[n - 1] ^= 0xff;
    assert_eq!(unprotect(&mut rx, &forged), Err(Error::Auth));
    assert_eq!(rx.rtp_index(3), Some(40_000));
    // The genuine next packet still authenticates with ROC 0.
    let next = protect(&mut tx, &rtp(40_001, 3, 10));
    assert_eq!(unprotect(&mut rx, &next), Ok(rtp(40_001, 3, 10)));
    // An unknown SSRC that fails authentication is not remembered.
    let mut stray = protect(&mut tx, &rtp(1, 99, 10));
    stray[13] ^= 1;
    assert_eq!(unprotect(&mut rx, &stray), Err(Error::Auth));
    assert_eq!(rx.rtp_index(99), None);
}

fn truncated_and_garbage_inputs_error<B: Backend>() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair::<B>(profile);
        let srtp = protect(&mut tx, &rtp(9, 9, 30));
        for cut in 0..srtp.len() {
            assert!(
                unprotect(&mut rx, &srtp[..cut]).is_err(),
                "{profile:?} {cut}"
            );
        }
        let srtcp = protect_rtcp(&mut tx, &rtcp(9));
        for cut in 0..srtcp.len() {
            assert!(
                unprotect_rtcp(&mut rx, &srtcp[..cut]).is_err(),
                "{profile:?} {cut}"
            );
        }
        // The shortest packets that parse but lack a tag: Truncated.
        assert_eq!(unprotect(&mut rx, &rtp(1, 9, 0)), Err(Error::Truncated));
        assert_eq!(
            unprotect_rtcp(&mut rx, &rtcp(9)[..8]),
            Err(Error::Truncated)
        );
        // Deterministic garbage: never a panic, never Ok.
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..400 {
            let mut garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Some(first) = garbage.first_mut() {
                *first = 0x80 | (*first & 0x3f);
            }
            assert!(rx.unprotect_rtp(&mut garbage.clone()).is_err());
            assert!(rx.unprotect_rtcp(&mut garbage).is_err());
        }
        // The genuine packets still go through afterwards.
        assert_eq!(unprotect(&mut rx, &srtp), Ok(rtp(9, 9, 30)));
        assert_eq!(unprotect_rtcp(&mut rx, &srtcp), Ok(rtcp(9)));
    }
}

fn buffer_and_stream_limits<B: Backend>() {
    let (mut tx, mut rx) = pair::<B>(Profile::AeadAes128Gcm);
    let packet = rtp(1, 1, 10);
    let mut tight = packet.clone();
    tight.resize(packet.len() + 15, 0);
    assert_eq!(
        tx.protect_rtp(&mut tight, packet.len()),
        Err(Error::NoTailroom)
    );
    let too_long = tight.len() + 1;
    assert_eq!(tx.protect_rtp(&mut tight, too_long), Err(Error::Truncated));
    let mut tight = rtcp(1);
    let len = tight.len();
    tight.resize(len + 19, 0);
    assert_eq!(tx.protect_rtcp(&mut tight, len), Err(Error::NoTailroom));
    // Nothing was remembered by the failures.
    assert_eq!(tx.rtp_index(1), None);

    for ssrc in 0..MAX_STREAMS as u32 {
        let srtp = protect(&mut tx, &rtp(1, ssrc, 4));
        unprotect(&mut rx, &srtp).unwrap();
    }
    let mut one_more = rtp(1, 1000, 4);
    one_more.resize(one_more.len() + 16, 0);
    assert_eq!(
        tx.protect_rtp(&mut one_more, 16),
        Err(Error::TooManyStreams)
    );
    let (mut tx2, _) = pair::<B>(Profile::AeadAes128Gcm);
    let srtp = protect(&mut tx2, &rtp(1, 1000, 4));
    assert_eq!(unprotect(&mut rx, &srtp), Err(Error::TooManyStreams));
    // Known SSRCs keep working.
    let srtp = protect(&mut tx, &rtp(2, 3, 4));
    assert_eq!(unprotect(&mut rx, &srtp), Ok(rtp(2, 3, 4)));
}

/// `SrtpContext::new` (the default backend) talks to both backends.
#[test]
fn default_backend_interoperates() {
    let master = MasterKeys::new(Profile::AeadAes128Gcm, &[1; 16], &[2; 12]).unwrap();
    let mut tx = SrtpContext::new(&master);
    let mut rx = SrtpContext::<RustCrypto>::with_backend(&master);
    let srtp = protect(&mut tx, &rtp(8, 8, 100));
    assert_eq!(unprotect(&mut rx, &srtp), Ok(rtp(8, 8, 100)));
    assert!(format!("{tx:?}").contains("AeadAes128Gcm"));
}

#[test]
fn dtls_exporter_keys_pair_up() {
    let material: Vec<u8> = (0..60u8).collect();
    let client =
        DtlsSrtpKeys::from_exporter(Profile::Aes128CmSha1_80, Role::Client, &material).unwrap();
    let server =
        DtlsSrtpKeys::from_exporter(Profile::Aes128CmSha1_80, Role::Server, &material).unwrap();
    let mut client_tx = SrtpContext::<RustCrypto>::with_backend(&client.local);
    let mut server_rx = SrtpContext::<RustCrypto>::with_backend(&server.remote);
    let mut server_tx = SrtpContext::<RustCrypto>::with_backend(&server.local);
    let srtp = protect(&mut client_tx, &rtp(5, 5, 5));
    assert_eq!(unprotect(&mut server_rx, &srtp), Ok(rtp(5, 5, 5)));
    // The server's own sending keys are different keys.
    let mut server_self = SrtpContext::<RustCrypto>::with_backend(&server.local);
    assert_eq!(unprotect(&mut server_self, &srtp), Err(Error::Auth));
    let _ = protect(&mut server_tx, &rtp(5, 5, 5));
}

/// Both backends produce the same bytes, so either can talk to the other.
#[cfg(feature = "aws-lc")]
#[test]
fn backends_agree() {
    for profile in PROFILES {
        let (mut a, _) = pair::<RustCrypto>(profile);
        let (mut b, _) = pair::<crate::AwsLc>(profile);
        for seq in [0u16, 1, 65535, 0] {
            let packet = rtp(seq, 77, 333);
            assert_eq!(protect(&mut a, &packet), protect(&mut b, &packet));
        }
        assert_eq!(
            protect_rtcp(&mut a, &rtcp(77)),
            protect_rtcp(&mut b, &rtcp(77))
        );
    }
}

/// SRTCP with E = 0 on AES-CM (RFC 3711 §3.4): authenticated, not
/// encrypted. We never send it, but a peer may; the tag is built here by
/// hand from the derived SRTCP session keys.
#[test]
fn cm_srtcp_without_encryption_unprotects() {
    use hmac::{Hmac, Mac};

    let profile = Profile::Aes128CmSha1_80;
    let master = MasterKeys::new(profile, &[0x42; 16], &[0x24; 14]).unwrap();
    let keys = SessionKeys::derive(&master, true);
    let plain = rtcp(0x0bad_cafe);
    let mut packet = plain.clone();
    packet.extend(7u32.to_be_bytes()); // E = 0, index 7
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&keys.auth).unwrap();
    mac.update(&packet);
    packet.extend(&mac.finalize().into_bytes()[..10]);

    let mut rx = SrtpContext::<RustCrypto>::with_backend(&master);
    assert_eq!(unprotect_rtcp(&mut rx, &packet), Ok(plain));
    assert_eq!(unprotect_rtcp(&mut rx, &packet), Err(Error::Replay));
    // Setting E without encrypting breaks the tag.
    let mut flagged = packet.clone();
    let at = flagged.len() - 14;
    flagged[at] |= 0x80;
    let mut rx = SrtpContext::<RustCrypto>::with_backend(&master);
    assert_eq!(unprotect_rtcp(&mut rx, &flagged), Err(Error::Auth));
}
