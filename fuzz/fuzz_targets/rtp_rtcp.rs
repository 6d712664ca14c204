//! Any bytes through uturn-rtp's per-packet code, as the media engine runs
//! it on decrypted packets: the RTP view, the per-viewer `rewrite` (with an
//! extension-id map taken from the input), `write_rtx`, the packet cache,
//! receiver statistics, keyframe detection for every codec, and
//! `parse_compound` iterated to its end with every packet's inner lists,
//! and the transport-wide feedback view (`TransportFeedback`) with its
//! packet and arrival iterators.
//!
//! Checked: nothing panics; a rewritten packet or an RTX packet parses
//! and keeps what it must keep (sequence number, timestamp, marker,
//! payload, the mapped extension elements); an RTCP packet that parses
//! writes back to the same values with our writers.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use uturn_rtp::cache::PacketCache;
use uturn_rtp::keyframe::{is_keyframe, VideoCodec};
use uturn_rtp::rtcp::{self, Packet, SenderInfo};
use uturn_rtp::rtp::{self, ExtIdMap, Rewrite, RtpPacket};
use uturn_rtp::stats::ReceiverStats;

/// Room for the largest rewrite of a datagram: the two-byte form adds at
/// most one octet per element, and an element takes at least one.
const MAX_OUT: usize = 2 * 65536 + 64;

fn check_rtp(packet: &[u8], map: &ExtIdMap) {
    let Ok(view) = RtpPacket::new_checked(packet) else {
        return;
    };
    assert_eq!(
        view.header_len() + view.payload().len() + view.padding_len(),
        packet.len()
    );
    let _ = (view.marker(), view.timestamp(), view.csrcs().count());
    for id in 0..=u8::MAX {
        let _ = view.extension(id);
    }
    for codec in [
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::Other,
    ] {
        let key = is_keyframe(codec, view.payload());
        assert!(!(codec == VideoCodec::Other && key));
    }

    let mut out = vec![0u8; packet.len() * 2 + 64];
    let spec = Rewrite {
        ssrc: 0x0bad_cafe,
        payload_type: 101,
        ext_ids: map.clone(),
    };
    match rtp::rewrite(packet, &mut out, &spec) {
        Ok(len) => {
            let new = RtpPacket::new_checked(&out[..len]).expect("a rewritten packet parses");
            assert_eq!(new.ssrc(), spec.ssrc);
            assert_eq!(new.payload_type(), spec.payload_type);
            assert_eq!(new.sequence_number(), view.sequence_number());
            assert_eq!(new.timestamp(), view.timestamp());
            assert_eq!(new.marker(), view.marker());
            assert_eq!(new.payload(), view.payload());
            assert!(new.csrcs().eq(view.csrcs()));
            let expected: Vec<(u8, &[u8])> = view
                .extensions()
                .filter_map(|(id, value)| map.get(id).map(|to| (to, value)))
                .collect();
            let got: Vec<(u8, &[u8])> = new.extensions().collect();
            assert_eq!(got, expected, "extension elements after the rewrite");
        }
        Err(e) => panic!("rewrite of a valid packet into a big buffer failed: {e}"),
    }

    let mut rtx = vec![0u8; packet.len() + 2];
    let len = rtp::write_rtx(packet, &mut rtx, 0x5555_aaaa, 97, 7)
        .expect("RTX of a valid packet into a big enough buffer");
    let rtx_view = RtpPacket::new_checked(&rtx[..len]).expect("an RTX packet parses");
    assert_eq!(rtx_view.sequence_number(), 7);
    assert_eq!(rtx_view.ssrc(), 0x5555_aaaa);
    let (osn, payload) = rtx_view.payload().split_at(2);
    assert_eq!(osn, view.sequence_number().to_be_bytes());
    assert_eq!(payload, view.payload());

    let mut copy = packet.to_vec();
    rtp::set_sequence_number(&mut copy, 0xfffe).expect("valid packet");
    assert_eq!(
        RtpPacket::new_checked(&copy).map(|p| p.sequence_number()),
        Ok(0xfffe)
    );

    let mut cache = PacketCache::new(8, 1500);
    let stored = cache.insert(view.sequence_number(), packet);
    assert_eq!(stored, packet.len() <= 1500);
    if stored {
        assert_eq!(cache.get(view.sequence_number()), Some(packet));
    }
    assert_eq!(cache.get(view.sequence_number().wrapping_add(1)), None);

    let mut stats = ReceiverStats::new(90_000);
    let start = Instant::now();
    for (i, seq) in [0u16, 1, 0x8000, 0xffff, 3].iter().enumerate() {
        let at = start + Duration::from_millis(20 * i as u64);
        let _ = stats.on_packet(
            view.sequence_number().wrapping_add(*seq),
            view.timestamp().wrapping_add(i as u32 * 1800),
            at,
        );
    }
    let _ = stats.report_block(view.ssrc(), 0, 0);
}

/// The transport-wide feedback view reports exactly its status count,
/// in consecutive sequence numbers from the base.
fn check_twcc(buf: &[u8]) {
    let Ok(feedback) = rtcp::TransportFeedback::parse(buf) else {
        return;
    };
    let mut count = 0u16;
    let mut expected = feedback.base_sequence();
    for report in feedback.packets() {
        assert_eq!(report.sequence, expected);
        expected = expected.wrapping_add(1);
        count += 1;
    }
    assert_eq!(count, feedback.status_count());
    assert_eq!(feedback.arrivals().count(), usize::from(count));
}

fn check_rtcp(buf: &[u8]) {
    check_twcc(buf);
    let mut scratch = vec![0u8; MAX_OUT];
    for packet in rtcp::parse_compound(buf) {
        let Ok(packet) = packet else {
            break;
        };
        match packet {
            Packet::SenderReport(sr) => {
                let reports: Vec<_> = sr.reports().collect();
                let info = SenderInfo {
                    ssrc: sr.ssrc(),
                    ntp: sr.ntp(),
                    rtp_timestamp: sr.rtp_timestamp(),
                    packet_count: sr.packet_count(),
                    octet_count: sr.octet_count(),
                };
                assert_eq!(info, sr.info());
                let len = rtcp::write_sr(&mut scratch, &info, &reports).expect("SR fits");
                match rtcp::parse_compound(&scratch[..len]).next() {
                    Some(Ok(Packet::SenderReport(again))) => {
                        assert_eq!(again.info(), info);
                        assert!(again.reports().eq(reports.iter().copied()));
                    }
                    other => panic!("a written SR parses as {other:?}"),
                }
            }
            Packet::ReceiverReport(rr) => {
                let reports: Vec<_> = rr.reports().collect();
                let len = rtcp::write_rr(&mut scratch, rr.ssrc(), &reports).expect("RR fits");
                match rtcp::parse_compound(&scratch[..len]).next() {
                    Some(Ok(Packet::ReceiverReport(again))) => {
                        assert_eq!(again.ssrc(), rr.ssrc());
                        assert!(again.reports().eq(reports.iter().copied()));
                    }
                    other => panic!("a written RR parses as {other:?}"),
                }
            }
            Packet::Pli {
                sender_ssrc,
                media_ssrc,
            } => {
                let len = rtcp::write_pli(&mut scratch, sender_ssrc, media_ssrc).expect("fits");
                assert!(matches!(
                    rtcp::parse_compound(&scratch[..len]).next(),
                    Some(Ok(Packet::Pli { sender_ssrc: s, media_ssrc: m }))
                        if s == sender_ssrc && m == media_ssrc
                ));
            }
            Packet::Fir {
                sender_ssrc,
                entries,
            } => {
                for entry in entries {
                    let len = rtcp::write_fir(&mut scratch, sender_ssrc, entry.ssrc, entry.seq_nr)
                        .expect("fits");
                    match rtcp::parse_compound(&scratch[..len]).next() {
                        Some(Ok(Packet::Fir {
                            sender_ssrc: s,
                            mut entries,
                        })) => {
                            assert_eq!(s, sender_ssrc);
                            assert_eq!(entries.next(), Some(entry));
                            assert_eq!(entries.next(), None);
                        }
                        other => panic!("a written FIR parses as {other:?}"),
                    }
                }
            }
            Packet::Nack(nack) => {
                let mut lost: Vec<u16> = nack.lost().collect();
                let _ = nack.pairs().count();
                if lost.is_empty() {
                    continue;
                }
                let len =
                    rtcp::write_nack(&mut scratch, nack.sender_ssrc(), nack.media_ssrc(), &lost)
                        .expect("fits");
                let again = match rtcp::parse_compound(&scratch[..len]).next() {
                    Some(Ok(Packet::Nack(again))) => again,
                    other => panic!("a written NACK parses as {other:?}"),
                };
                assert_eq!(again.sender_ssrc(), nack.sender_ssrc());
                assert_eq!(again.media_ssrc(), nack.media_ssrc());
                let mut relost: Vec<u16> = again.lost().collect();
                lost.sort_unstable();
                lost.dedup();
                relost.sort_unstable();
                relost.dedup();
                assert_eq!(relost, lost, "the NACK's lost set after a rewrite");
            }
            Packet::Sdes(bytes) | Packet::Bye(bytes) => assert!(bytes.len() >= 4),
            Packet::Other { .. } => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first octet says how many (from, to) id pairs follow for the
    // rewrite's extension map; the rest is the packet.
    let (pairs, packet) = match data.split_first() {
        Some((&n, rest)) => {
            let n = usize::from(n % 16).min(rest.len() / 2);
            rest.split_at(2 * n)
        }
        None => (&[][..], data),
    };
    let mut map = ExtIdMap::new();
    for pair in pairs.chunks_exact(2) {
        map.map(pair[0], pair[1]);
    }
    check_rtp(packet, &map);
    check_rtp(packet, &ExtIdMap::identity());
    check_rtcp(packet);
    check_rtcp(data);
});
