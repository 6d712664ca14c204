//! Criterion benchmarks of the per-packet paths of the media relay:
//! `rtp::rewrite` runs once per publisher packet per viewer, the RTCP
//! compound parse once per received RTCP packet.
//!
//! `cargo bench -p uturn-rtp --bench rtp`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uturn_rtp::cache::PacketCache;
use uturn_rtp::keyframe::{is_keyframe, VideoCodec};
use uturn_rtp::rtcp::{self, parse_compound, Packet, ReportBlock, SenderInfo};
use uturn_rtp::rtp::{self, ExtIdMap, Rewrite, RtpPacket};
use uturn_rtp::stats::ReceiverStats;

/// A 1200-octet VP8 packet as Chromium sends it: one-byte extensions
/// abs-send-time (3 octets), transport-cc (2) and mid (1).
fn video_packet() -> Vec<u8> {
    let mut buf = vec![
        0x90, 0x60, 0x12, 0x34, 0x00, 0x01, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, //
        0xbe, 0xde, 0x00, 0x03, // 3 words of elements
        0x22, 0x01, 0x02, 0x03, // id 2 abs-send-time
        0x31, 0x00, 0x07, // id 3 transport-wide-cc
        0x40, b'0', // id 4 mid
        0x00, 0x00, 0x00, // padding
    ];
    buf.extend_from_slice(&[0x10, 0x00, 0x9d]);
    buf.resize(1200, 0xab);
    buf
}

fn compound() -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let block = ReportBlock {
        ssrc: 2,
        fraction_lost: 3,
        cumulative_lost: 4,
        highest_seq: 5,
        jitter: 6,
        lsr: 7,
        dlsr: 8,
    };
    let info = SenderInfo {
        ssrc: 1,
        ntp: 0x83aa_7e81_8000_0000,
        rtp_timestamp: 90_000,
        packet_count: 100,
        octet_count: 120_000,
    };
    let mut at = rtcp::write_sr(&mut buf, &info, &[block]).unwrap();
    at += rtcp::write_sdes_cname(&mut buf[at..], 1, "4TOk42mSjXCkVIa6").unwrap();
    at += rtcp::write_pli(&mut buf[at..], 1, 2).unwrap();
    at += rtcp::write_nack(&mut buf[at..], 1, 2, &[100, 101, 105, 140]).unwrap();
    buf.truncate(at);
    buf
}

fn bench_rtp(c: &mut Criterion) {
    let src = video_packet();
    let mut dst = vec![0u8; 1500];
    let mut group = c.benchmark_group("rtp");
    group.throughput(Throughput::Elements(1));

    // The viewer numbers the extensions differently and did not negotiate mid.
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(2, 3).map(3, 5);
    let renumber = Rewrite {
        ssrc: 0xaabb_ccdd,
        payload_type: 98,
        ext_ids,
    };
    group.bench_function("rewrite_1200_3ext_renumber", |b| {
        b.iter(|| rtp::rewrite(black_box(&src), black_box(&mut dst), black_box(&renumber)).unwrap())
    });
    let identity = Rewrite {
        ssrc: 0xaabb_ccdd,
        payload_type: 96,
        ext_ids: ExtIdMap::identity(),
    };
    group.bench_function("rewrite_1200_3ext_identity", |b| {
        b.iter(|| rtp::rewrite(black_box(&src), black_box(&mut dst), black_box(&identity)).unwrap())
    });
    group.bench_function("copy_1200_baseline", |b| {
        b.iter(|| dst[..1200].copy_from_slice(black_box(&src)))
    });
    group.bench_function("parse_1200_and_read_ext", |b| {
        b.iter(|| {
            let packet = RtpPacket::new_checked(black_box(&src)).unwrap();
            (packet.sequence_number(), packet.extension(4))
        })
    });
    group.bench_function("write_rtx_1200", |b| {
        b.iter(|| rtp::write_rtx(black_box(&src), black_box(&mut dst), 5, 97, 9).unwrap())
    });
    group.bench_function("keyframe_vp8", |b| {
        let payload = RtpPacket::new_checked(&src).unwrap().payload();
        b.iter(|| is_keyframe(VideoCodec::Vp8, black_box(payload)))
    });
    let mut cache = PacketCache::new(512, 1500);
    let mut seq = 0u16;
    group.bench_function("cache_insert_1200", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            cache.insert(seq, black_box(&src))
        })
    });
    let mut stats = ReceiverStats::new(90_000);
    let now = Instant::now();
    let mut seq = 0u16;
    group.bench_function("receiver_stats_on_packet", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            stats.on_packet(seq, u32::from(seq) * 3000, now)
        })
    });
    group.finish();
}

fn bench_rtcp(c: &mut Criterion) {
    let buf = compound();
    let mut group = c.benchmark_group("rtcp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_compound_sr_sdes_pli_nack", |b| {
        b.iter(|| {
            let mut lost = 0usize;
            for packet in parse_compound(black_box(&buf)) {
                match packet.unwrap() {
                    Packet::SenderReport(sr) => lost += sr.reports().count(),
                    Packet::Nack(nack) => lost += nack.lost().count(),
                    _ => lost += 1,
                }
            }
            lost
        })
    });
    let mut out = [0u8; 64];
    group.bench_function("write_nack_4", |b| {
        b.iter(|| {
            rtcp::write_nack(black_box(&mut out), 1, 2, black_box(&[100, 101, 105, 140])).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_rtp, bench_rtcp);
criterion_main!(benches);
