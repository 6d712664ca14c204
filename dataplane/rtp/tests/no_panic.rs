//! Property tests: many random, truncated and mutated buffers (seeded RNG,
//! so a failure reproduces) through every parser and writer. Each either
//! succeeds with output that re-parses consistently or returns an error;
//! none panics (debug builds also trap arithmetic overflow here).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uturn_rtp::cache::PacketCache;
use uturn_rtp::keyframe::{is_keyframe, VideoCodec};
use uturn_rtp::rtcp::{self, parse_compound, Packet, ReportBlock, SenderInfo};
use uturn_rtp::rtp::{self, ExtIdMap, Rewrite, RtpPacket};
use uturn_rtp::stats::ReceiverStats;

const ROUNDS: usize = 20_000;

/// A valid packet with CSRCs, a one- or two-byte extension block and padding, to mutate.
fn valid_rtp(rng: &mut StdRng) -> Vec<u8> {
    let csrcs = rng.gen_range(0..3u8);
    let two_byte = rng.gen_bool(0.5);
    let padded = rng.gen_bool(0.3);
    let mut buf = vec![
        0x80 | 0x10 | csrcs | if padded { 0x20 } else { 0 },
        rng.gen(),
    ];
    buf.extend_from_slice(&rng.gen::<[u8; 10]>());
    for _ in 0..csrcs {
        buf.extend_from_slice(&rng.gen::<[u8; 4]>());
    }
    let mut elements = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        if two_byte {
            let len = rng.gen_range(0..20u8);
            elements.extend_from_slice(&[rng.gen_range(1..=255), len]);
            elements.extend((0..len).map(|_| rng.gen::<u8>()));
        } else {
            let len = rng.gen_range(1..=16u8);
            elements.push(rng.gen_range(1..=14u8) << 4 | (len - 1));
            elements.extend((0..len).map(|_| rng.gen::<u8>()));
        }
    }
    while elements.len() % 4 != 0 {
        elements.push(0);
    }
    let profile: u16 = if two_byte { 0x1000 } else { 0xbede };
    buf.extend_from_slice(&profile.to_be_bytes());
    buf.extend_from_slice(&((elements.len() / 4) as u16).to_be_bytes());
    buf.extend_from_slice(&elements);
    buf.extend((0..rng.gen_range(0..1200)).map(|_| rng.gen::<u8>()));
    if padded {
        let pad = rng.gen_range(1..=8u8);
        buf.extend(std::iter::repeat_n(0, usize::from(pad - 1)));
        buf.push(pad);
    }
    buf
}

fn random_map(rng: &mut StdRng) -> ExtIdMap {
    let mut map = if rng.gen_bool(0.3) {
        ExtIdMap::identity()
    } else {
        ExtIdMap::new()
    };
    for _ in 0..rng.gen_range(0..6) {
        map.map(rng.gen_range(0..16), rng.gen());
    }
    map
}

/// Random bytes, valid packets cut short, or valid packets with bytes flipped.
fn candidate(rng: &mut StdRng, valid: impl Fn(&mut StdRng) -> Vec<u8>) -> Vec<u8> {
    match rng.gen_range(0..3) {
        0 => {
            let len = rng.gen_range(0..64);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(first) = buf.first_mut() {
                // Mostly version 2 so the parsers get past the first check.
                *first = (*first & 0x3f) | if rng.gen_bool(0.9) { 0x80 } else { 0 };
            }
            buf
        }
        1 => {
            let mut buf = valid(rng);
            let cut = rng.gen_range(0..=buf.len());
            buf.truncate(cut);
            buf
        }
        _ => {
            let mut buf = valid(rng);
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..buf.len());
                buf[at] = rng.gen();
            }
            buf
        }
    }
}

fn check_rtp_view(buf: &[u8]) {
    let Ok(packet) = RtpPacket::new_checked(buf) else {
        return;
    };
    assert!(packet.header_len() + packet.padding_len() <= buf.len());
    assert_eq!(
        packet.header_len() + packet.payload().len() + packet.padding_len(),
        buf.len()
    );
    assert_eq!(packet.csrcs().count(), packet.csrc_count());
    for (id, value) in packet.extensions() {
        assert_ne!(id, 0);
        assert!(value.len() <= 255);
    }
}

#[test]
fn rtp_parsers_and_writers_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let mut rewritten = 0;
    for _ in 0..ROUNDS {
        let src = candidate(&mut rng, valid_rtp);
        check_rtp_view(&src);
        let rw = Rewrite {
            ssrc: rng.gen(),
            payload_type: rng.gen_range(0..128),
            ext_ids: random_map(&mut rng),
        };
        let mut dst = vec![0u8; rng.gen_range(0..1500)];
        if let Ok(len) = rtp::rewrite(&src, &mut dst, &rw) {
            rewritten += 1;
            let original = RtpPacket::new_checked(&src).unwrap();
            let out = RtpPacket::new_checked(&dst[..len]).expect("rewrite output parses");
            assert_eq!(out.ssrc(), rw.ssrc);
            assert_eq!(out.payload_type(), rw.payload_type);
            assert_eq!(out.marker(), original.marker());
            assert_eq!(out.sequence_number(), original.sequence_number());
            assert_eq!(out.timestamp(), original.timestamp());
            assert_eq!(out.payload(), original.payload());
            assert_eq!(out.padding_len(), original.padding_len());
            // Every kept element arrives under its new id with its value.
            let kept: Vec<_> = original
                .extensions()
                .filter_map(|(id, value)| rw.ext_ids.get(id).map(|to| (to, value)))
                .collect();
            assert_eq!(out.extensions().collect::<Vec<_>>(), kept);
        }
        let mut rtx = vec![0u8; rng.gen_range(0..1500)];
        if let Ok(len) = rtp::write_rtx(&src, &mut rtx, 1, 97, 2) {
            let original = RtpPacket::new_checked(&src).unwrap();
            let out = RtpPacket::new_checked(&rtx[..len]).expect("RTX output parses");
            assert_eq!(&out.payload()[2..], original.payload());
        }
        let mut patched = src.clone();
        let _ = rtp::set_sequence_number(&mut patched, rng.gen());
    }
    // The generator must reach the success paths, or the checks above prove nothing.
    assert!(
        rewritten > ROUNDS / 10,
        "only {rewritten} rewrites succeeded"
    );
}

fn valid_rtcp(rng: &mut StdRng) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut at = 0;
    let block = ReportBlock {
        ssrc: rng.gen(),
        fraction_lost: rng.gen(),
        cumulative_lost: rng.gen_range(-0x80_0000..0x80_0000),
        highest_seq: rng.gen(),
        jitter: rng.gen(),
        lsr: rng.gen(),
        dlsr: rng.gen(),
    };
    let blocks = vec![block; rng.gen_range(0..4)];
    let info = SenderInfo {
        ssrc: rng.gen(),
        ntp: rng.gen(),
        rtp_timestamp: rng.gen(),
        packet_count: rng.gen(),
        octet_count: rng.gen(),
    };
    at += if rng.gen_bool(0.5) {
        rtcp::write_sr(&mut buf[at..], &info, &blocks).unwrap()
    } else {
        rtcp::write_rr(&mut buf[at..], info.ssrc, &blocks).unwrap()
    };
    at += rtcp::write_sdes_cname(&mut buf[at..], info.ssrc, "cname").unwrap();
    at += rtcp::write_pli(&mut buf[at..], 1, 2).unwrap();
    at += rtcp::write_fir(&mut buf[at..], 1, 2, rng.gen()).unwrap();
    let lost: Vec<u16> = (0..rng.gen_range(1..40)).map(|_| rng.gen()).collect();
    at += rtcp::write_nack(&mut buf[at..], 1, 2, &lost).unwrap();
    at += rtcp::write_bye(&mut buf[at..], &[1]).unwrap();
    buf.truncate(at);
    buf
}

#[test]
fn rtcp_parser_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let mut parsed = 0;
    for _ in 0..ROUNDS {
        let buf = candidate(&mut rng, valid_rtcp);
        let mut count = 0;
        for packet in parse_compound(&buf) {
            count += 1;
            // Each packet takes at least one word, so the walk is bounded.
            assert!(count <= buf.len() / 4 + 1);
            match packet {
                Ok(Packet::SenderReport(sr)) => {
                    let _ = (sr.info(), sr.reports().count());
                }
                Ok(Packet::ReceiverReport(rr)) => {
                    let _ = (rr.ssrc(), rr.reports().count());
                }
                Ok(Packet::Nack(nack)) => {
                    // At most 17 numbers per 4-octet pair.
                    assert!(nack.lost().count() <= 17 * buf.len() / 4);
                }
                Ok(Packet::Fir { entries, .. }) => {
                    let _ = entries.count();
                }
                Ok(_) => {}
                Err(_) => {}
            }
        }
        parsed += usize::from(count > 0);
    }
    assert!(parsed > ROUNDS / 2);
}

#[test]
fn keyframe_detection_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let mut keyframes = 0;
    for _ in 0..ROUNDS {
        let len = rng.gen_range(0..24);
        let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        for codec in [
            VideoCodec::Vp8,
            VideoCodec::Vp9,
            VideoCodec::H264,
            VideoCodec::Other,
        ] {
            keyframes += usize::from(is_keyframe(codec, &payload));
        }
    }
    // Random bytes hit every codec's keyframe pattern now and then.
    assert!(keyframes > 0);
}

#[test]
fn cache_and_stats_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    let mut cache = PacketCache::new(rng.gen_range(0..600), 64);
    let mut stats = ReceiverStats::new(90_000);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let seq: u16 = if rng.gen_bool(0.5) {
            rng.gen()
        } else {
            rng.gen_range(0..40)
        };
        let len = rng.gen_range(0..100);
        let packet: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let stored = cache.insert(seq, &packet);
        match cache.get(seq) {
            Some(got) => assert_eq!(got, &packet[..]),
            None => assert!(!stored),
        }
        let arrival = start + Duration::from_micros(rng.gen_range(0..100_000_000));
        stats.on_packet(seq, rng.gen(), arrival);
        if rng.gen_bool(0.01) {
            let block = stats.report_block(1, rng.gen(), rng.gen());
            assert!((-0x80_0000..0x80_0000).contains(&block.cumulative_lost));
        }
    }
}
