//! Noise-resistant timing of SRTP protect/unprotect of a 1200-octet packet:
//! many chunks of 1000 operations, reporting the fastest chunk's mean. On a
//! machine shared with other builds the minimum is what the code costs;
//! criterion's `benches/srtp.rs` gives the full distribution.
//!
//! `cargo run --release -p uturn-srtp --example srtp_min_time`

use std::hint::black_box;
use std::time::Instant;

use uturn_srtp::{Backend, MasterKeys, Profile, RustCrypto, SrtpContext};

const PACKET_LEN: usize = 1200;
const CHUNK: usize = 1000;
const CHUNKS: usize = 300;

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; PACKET_LEN + 16];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p
}

fn run<B: Backend>(profile: Profile, name: &str) {
    let master = MasterKeys::new(profile, &[0x11; 16], &vec![0x22; profile.salt_len()])
        .expect("lengths from the profile");
    let mut tx = SrtpContext::<B>::with_backend(&master);
    let mut buf = packet(0);
    let mut seq = 0u16;
    let mut best_protect = f64::MAX;
    for _ in 0..CHUNKS {
        let start = Instant::now();
        for _ in 0..CHUNK {
            seq = seq.wrapping_add(1);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(
                tx.protect_rtp(black_box(&mut buf), PACKET_LEN)
                    .expect("room for the tag"),
            );
        }
        best_protect = best_protect.min(start.elapsed().as_nanos() as f64 / CHUNK as f64);
    }

    let mut best_unprotect = f64::MAX;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    for _ in 0..CHUNKS / 3 {
        let mut tx = SrtpContext::<B>::with_backend(&master);
        let mut rx = SrtpContext::<B>::with_backend(&master);
        batch.clear();
        for seq in 0..CHUNK as u16 {
            let mut buf = packet(seq);
            let len = tx
                .protect_rtp(&mut buf, PACKET_LEN)
                .expect("room for the tag");
            buf.truncate(len);
            batch.push(buf);
        }
        let start = Instant::now();
        for buf in &mut batch {
            black_box(rx.unprotect_rtp(black_box(buf)).expect("genuine packet"));
        }
        best_unprotect = best_unprotect.min(start.elapsed().as_nanos() as f64 / CHUNK as f64);
    }
    println!(
        "{:<11} {name:<8} protect {best_protect:7.1} ns   unprotect {best_unprotect:7.1} ns",
        B::NAME
    );
}

fn main() {
    for (name, profile) in [
        ("gcm", Profile::AeadAes128Gcm),
        ("cm_hmac", Profile::Aes128CmSha1_80),
    ] {
        run::<RustCrypto>(profile, name);
        #[cfg(feature = "aws-lc")]
        run::<uturn_srtp::AwsLc>(profile, name);
        #[cfg(feature = "aws-lc")]
        run::<uturn_srtp::BestOf>(profile, name);
    }
}
