//! SRTP protect/unprotect of a 1200-octet RTP packet on both crypto
//! backends and both profiles. Issue 5's targets: protect ≤ 300 ns (GCM),
//! ≤ 900 ns (AES-CM + HMAC-SHA1-80).
//!
//! `cargo bench -p uturn-srtp` (README.md records the results).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uturn_srtp::{Backend, MasterKeys, Profile, RustCrypto, SrtpContext};

/// RTP packet length, header included.
const PACKET_LEN: usize = 1200;
/// Packets protected up front for each timed unprotect batch.
const BATCH: u64 = 512;

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; PACKET_LEN];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn master(profile: Profile) -> MasterKeys {
    MasterKeys::new(profile, &[0x11; 16], &vec![0x22; profile.salt_len()]).unwrap()
}

fn bench_backend<B: Backend>(c: &mut Criterion) {
    for (name, profile) in [
        ("gcm", Profile::AeadAes128Gcm),
        ("cm_hmac", Profile::Aes128CmSha1_80),
    ] {
        let mut group = c.benchmark_group(B::NAME);
        group.throughput(Throughput::Bytes(PACKET_LEN as u64));

        group.bench_function(format!("protect_1200_{name}"), |b| {
            let mut tx = SrtpContext::<B>::with_backend(&master(profile));
            let mut buf = packet(0);
            buf.resize(PACKET_LEN + 16, 0);
            let mut seq = 0u16;
            b.iter(|| {
                // Protect the same buffer again under the next sequence
                // number: the timing is the same as for fresh plaintext.
                seq = seq.wrapping_add(1);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                black_box(tx.protect_rtp(black_box(&mut buf), PACKET_LEN).unwrap())
            });
        });

        group.bench_function(format!("unprotect_1200_{name}"), |b| {
            // Each packet can be unprotected once (replay window), so
            // protect a batch untimed, then time unprotecting it.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = BATCH.min(iters - done);
                    let mut tx = SrtpContext::<B>::with_backend(&master(profile));
                    let mut rx = SrtpContext::<B>::with_backend(&master(profile));
                    let mut batch: Vec<Vec<u8>> = (0..n as u16)
                        .map(|seq| {
                            let mut buf = packet(seq);
                            buf.resize(PACKET_LEN + 16, 0);
                            let len = tx.protect_rtp(&mut buf, PACKET_LEN).unwrap();
                            buf.truncate(len);
                            buf
                        })
                        .collect();
                    let start = Instant::now();
                    for buf in &mut batch {
                        black_box(rx.unprotect_rtp(black_box(buf)).unwrap());
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            });
        });
        group.finish();
    }
}

/// The two halves of AES-CM + HMAC-SHA1, to see which backend is faster at
/// which (the packet path above is what counts).
fn bench_primitives<B: Backend>(c: &mut Criterion) {
    let mut group = c.benchmark_group(B::NAME);
    let ctr = B::ctr_new(&[0x11; 16]);
    let mac = B::mac_new(&[0x33; 20]);
    let mut data = packet(1);
    group.bench_function("aes_ctr_1188", |b| {
        b.iter(|| B::ctr_apply(&ctr, &[0x44; 16], black_box(&mut data[12..])).unwrap());
    });
    group.bench_function("hmac_sha1_1204", |b| {
        b.iter(|| black_box(B::mac_compute(&mac, black_box(&data), &[0, 0, 0, 1])));
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_primitives::<RustCrypto>(c);
    #[cfg(feature = "aws-lc")]
    bench_primitives::<uturn_srtp::AwsLc>(c);
    bench_backend::<RustCrypto>(c);
    #[cfg(feature = "aws-lc")]
    bench_backend::<uturn_srtp::AwsLc>(c);
    #[cfg(feature = "aws-lc")]
    bench_backend::<uturn_srtp::BestOf>(c);
}

criterion_group!(srtp, benches);
criterion_main!(srtp);
