//! Byte-level tests of RTCP parsing and writing. Expected bytes are worked
//! out by hand from the layouts of RFC 3550 §6.4.1 (SR, report block),
//! §6.4.2 (RR), §6.5 (SDES), §6.6 (BYE), RFC 4585 §6.1 / §6.2.1 / §6.3.1
//! (feedback header, NACK, PLI) and RFC 5104 §4.3.1 (FIR); the comment on
//! each line names the fields.

use super::*;

const SENDER: u32 = 0x1111_1111;

/// An SR with one report block followed by an SDES CNAME "abc": a compound
/// as RFC 3550 §6.1 requires it (report first, CNAME included).
const SR_SDES: [u8; 68] = [
    0x81, 0xc8, 0x00, 0x0c, // V=2 P=0 RC=1, PT=200 SR, length 12 words (52 octets)
    0x11, 0x11, 0x11, 0x11, // sender SSRC
    0x83, 0xaa, 0x7e, 0x81, // NTP seconds (1900 epoch): 1970-01-01T00:00:01
    0x80, 0x00, 0x00, 0x00, // NTP fraction: 0.5 s
    0x00, 0x00, 0x10, 0x00, // RTP timestamp 4096
    0x00, 0x00, 0x00, 0x10, // packet count 16
    0x00, 0x00, 0x04, 0x00, // octet count 1024
    0x22, 0x22, 0x22, 0x22, // block: SSRC
    0x40, 0xff, 0xff,
    0xfe, // fraction lost 64/256, cumulative lost -2 (24-bit two's complement)
    0x00, 0x01, 0x00, 0x05, // extended highest sequence number: 1 cycle, seq 5
    0x00, 0x00, 0x00, 0x20, // jitter 32
    0x7e, 0x81, 0x80, 0x00, // LSR: middle 32 bits of the NTP timestamp above
    0x00, 0x01, 0x80, 0x00, // DLSR: 1.5 s in 1/65536 s
    0x81, 0xca, 0x00, 0x03, // V=2 SC=1, PT=202 SDES, length 3 words
    0x11, 0x11, 0x11, 0x11, // chunk SSRC
    0x01, 0x03, b'a', b'b', // CNAME item, length 3, text ...
    b'c', 0x00, 0x00, 0x00, // ... text, END (null) and padding to the word
];

fn sr_info() -> SenderInfo {
    SenderInfo {
        ssrc: SENDER,
        ntp: 0x83aa_7e81_8000_0000,
        rtp_timestamp: 4096,
        packet_count: 16,
        octet_count: 1024,
    }
}

fn sr_block() -> ReportBlock {
    ReportBlock {
        ssrc: 0x2222_2222,
        fraction_lost: 64,
        cumulative_lost: -2,
        highest_seq: 0x0001_0005,
        jitter: 32,
        lsr: 0x7e81_8000,
        dlsr: 0x0001_8000,
    }
}

fn collect(buf: &[u8]) -> Vec<Result<Packet<'_>, Error>> {
    parse_compound(buf).collect()
}

#[test]
fn parses_sr_and_sdes_compound() {
    let packets = collect(&SR_SDES);
    assert_eq!(packets.len(), 2);
    let Ok(Packet::SenderReport(sr)) = &packets[0] else {
        panic!("not an SR: {:?}", packets[0]);
    };
    assert_eq!(sr.ssrc(), SENDER);
    assert_eq!(sr.ntp(), 0x83aa_7e81_8000_0000);
    assert_eq!(sr.rtp_timestamp(), 4096);
    assert_eq!(sr.packet_count(), 16);
    assert_eq!(sr.octet_count(), 1024);
    assert_eq!(sr.info(), sr_info());
    assert_eq!(sr.reports().collect::<Vec<_>>(), vec![sr_block()]);
    assert_eq!(sr.reports().len(), 1);
    let Ok(Packet::Sdes(sdes)) = &packets[1] else {
        panic!("not SDES: {:?}", packets[1]);
    };
    assert_eq!(*sdes, &SR_SDES[52..]);
}

#[test]
fn writes_sr_and_sdes_byte_exact() {
    let mut buf = [0u8; 128];
    let sr_len = write_sr(&mut buf, &sr_info(), &[sr_block()]).unwrap();
    assert_eq!(sr_len, 52);
    let sdes_len = write_sdes_cname(&mut buf[sr_len..], SENDER, "abc").unwrap();
    assert_eq!(sdes_len, 16);
    assert_eq!(&buf[..sr_len + sdes_len], &SR_SDES);
}

#[test]
fn parses_reduced_size_single_feedback() {
    // RFC 5506 §3: a packet may be a lone feedback message, no report first.
    let pli = [
        0x81, 0xce, 0x00, 0x02, // V=2 FMT=1 PLI, PT=206 PSFB, length 2
        0x00, 0x00, 0x00, 0x01, // sender SSRC 1
        0x00, 0x00, 0x00, 0x02, // media source SSRC 2
    ];
    let packets = collect(&pli);
    assert!(matches!(
        packets[..],
        [Ok(Packet::Pli {
            sender_ssrc: 1,
            media_ssrc: 2
        })]
    ));
    let mut out = [0u8; 12];
    assert_eq!(write_pli(&mut out, 1, 2), Ok(12));
    assert_eq!(out, pli);
}

#[test]
fn parses_and_writes_receiver_reports() {
    let block = ReportBlock {
        ssrc: 3,
        fraction_lost: 0,
        cumulative_lost: 0x7f_ffff,
        highest_seq: 100,
        jitter: 0,
        lsr: 0,
        dlsr: 0,
    };
    let mut buf = [0u8; 64];
    let len = write_rr(&mut buf, 9, &[block, sr_block()]).unwrap();
    assert_eq!(len, 56);
    assert_eq!(&buf[..8], &[0x82, 0xc9, 0x00, 0x0d, 0, 0, 0, 9]); // RC=2, PT=201, 13 words, SSRC 9
    assert_eq!(&buf[8..16], &[0, 0, 0, 3, 0x00, 0x7f, 0xff, 0xff]); // SSRC 3, lost max positive
    let packets = collect(&buf[..len]);
    let Ok(Packet::ReceiverReport(rr)) = &packets[0] else {
        panic!("not an RR: {:?}", packets[0]);
    };
    assert_eq!(rr.ssrc(), 9);
    assert_eq!(rr.reports().collect::<Vec<_>>(), vec![block, sr_block()]);

    // An empty RR is 8 octets (RFC 3550 §6.4.2, RC=0).
    assert_eq!(write_rr(&mut buf, 9, &[]), Ok(8));
    assert_eq!(&buf[..8], &[0x80, 0xc9, 0x00, 0x01, 0, 0, 0, 9]);
}

#[test]
fn cumulative_lost_is_clamped_to_24_bits() {
    let mut block = sr_block();
    let mut buf = [0u8; 64];
    for (lost, wire) in [
        (0x0100_0000, [0x7f, 0xff, 0xff]),
        (-0x0100_0000, [0x80, 0x00, 0x00]),
        (-1, [0xff, 0xff, 0xff]),
    ] {
        block.cumulative_lost = lost;
        write_rr(&mut buf, 1, &[block]).unwrap();
        assert_eq!(&buf[13..16], &wire, "lost {lost}");
    }
    let Some(Ok(Packet::ReceiverReport(rr))) = parse_compound(&buf[..32]).next() else {
        panic!("not an RR");
    };
    assert_eq!(rr.reports().next().unwrap().cumulative_lost, -1);
}

#[test]
fn parses_nack_lost_list() {
    let nack = [
        0x81, 0xcd, 0x00, 0x04, // FMT=1 generic NACK, PT=205 RTPFB, length 4
        0x00, 0x00, 0x00, 0x01, // sender SSRC
        0x00, 0x00, 0x00, 0x02, // media source SSRC
        0xff, 0xff, 0x00, 0x01, // PID 65535, BLP bit 0: 65535 and 0 (wraps)
        0x00, 0x10, 0x80, 0x00, // PID 16, BLP bit 15: 16 and 32
    ];
    let packets = collect(&nack);
    let Ok(Packet::Nack(parsed)) = &packets[0] else {
        panic!("not a NACK: {:?}", packets[0]);
    };
    assert_eq!(parsed.sender_ssrc(), 1);
    assert_eq!(parsed.media_ssrc(), 2);
    assert_eq!(parsed.lost().collect::<Vec<_>>(), vec![65535, 0, 16, 32]);
    assert_eq!(
        parsed.pairs().collect::<Vec<_>>(),
        vec![(0xffff, 1), (16, 0x8000)]
    );
}

#[test]
fn writes_nack_packing_pairs() {
    let mut buf = [0u8; 64];
    let len = write_nack(&mut buf, 1, 2, &[100, 101, 103]).unwrap();
    let expected = [
        0x81, 0xcd, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, //
        0x00, 0x64, 0x00, 0x05, // PID 100, BLP bits 0 and 2: 101, 103
    ];
    assert_eq!(&buf[..len], &expected);

    // 1 + 16 still fits the first pair's BLP (bit 15); 18 starts a new pair;
    // the unsorted 5 after it starts another; a repeat of 5 is skipped.
    let len = write_nack(&mut buf, 1, 2, &[1, 17, 18, 5, 5]).unwrap();
    assert_eq!(len, 24);
    assert_eq!(&buf[12..24], &[0, 1, 0x80, 0, 0, 18, 0, 0, 0, 5, 0, 0]);
    let Some(Ok(Packet::Nack(parsed))) = parse_compound(&buf[..len]).next() else {
        panic!("not a NACK");
    };
    assert_eq!(parsed.lost().collect::<Vec<_>>(), vec![1, 17, 18, 5]);

    // Wrapping: 65535 then 0 share a pair.
    let len = write_nack(&mut buf, 1, 2, &[65535, 0]).unwrap();
    assert_eq!(&buf[12..len], &[0xff, 0xff, 0x00, 0x01]);
}

#[test]
fn parses_and_writes_fir() {
    let fir = [
        0x84, 0xce, 0x00, 0x06, // FMT=4 FIR, PT=206 PSFB, length 6
        0x00, 0x00, 0x00, 0x01, // sender SSRC
        0x00, 0x00, 0x00, 0x00, // media source SSRC: 0 (RFC 5104 §4.3.1.2)
        0x00, 0x00, 0x00, 0x0a, 0x05, 0x00, 0x00, 0x00, // entry: SSRC 10, seq nr 5
        0x00, 0x00, 0x00, 0x0b, 0x06, 0x00, 0x00, 0x00, // entry: SSRC 11, seq nr 6
    ];
    let packets = collect(&fir);
    let Ok(Packet::Fir {
        sender_ssrc,
        entries,
    }) = &packets[0]
    else {
        panic!("not a FIR: {:?}", packets[0]);
    };
    assert_eq!(*sender_ssrc, 1);
    assert_eq!(
        entries.clone().collect::<Vec<_>>(),
        vec![
            FirEntry {
                ssrc: 10,
                seq_nr: 5
            },
            FirEntry {
                ssrc: 11,
                seq_nr: 6
            }
        ]
    );
    let mut out = [0u8; 20];
    assert_eq!(write_fir(&mut out, 1, 10, 5), Ok(20));
    // One entry: 5 words, so length 4; the rest as in the first entry above.
    assert_eq!(out[..4], [0x84, 0xce, 0x00, 0x04]);
    assert_eq!(out[4..], fir[4..20]);
}

#[test]
fn writes_bye() {
    let mut buf = [0u8; 16];
    assert_eq!(write_bye(&mut buf, &[7, 8]), Ok(12));
    assert_eq!(
        &buf[..12],
        &[0x82, 0xcb, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 8]
    );
    let packets = collect(&buf[..12]);
    assert!(matches!(packets[..], [Ok(Packet::Bye(b))] if b.len() == 12));
}

#[test]
fn sdes_cname_is_null_terminated_and_word_aligned() {
    let mut buf = [0u8; 300];
    // 1 octet of text: 4 + 2 + 1 + 1 null = 8, already a word boundary.
    assert_eq!(write_sdes_cname(&mut buf, 1, "x"), Ok(12));
    assert_eq!(&buf[..12], &[0x81, 0xca, 0, 2, 0, 0, 0, 1, 1, 1, b'x', 0]);
    // 2 octets: 9 rounds up to 12, so four zero octets follow the text.
    assert_eq!(write_sdes_cname(&mut buf, 1, "xy"), Ok(16));
    assert_eq!(
        &buf[..16],
        &[0x81, 0xca, 0, 3, 0, 0, 0, 1, 1, 2, b'x', b'y', 0, 0, 0, 0]
    );
    let longest = "c".repeat(255);
    assert_eq!(write_sdes_cname(&mut buf, 1, &longest), Ok(4 + 264));
}

#[test]
fn classifies_other_packets() {
    let compound = [
        0x80, 0xcc, 0x00, 0x02, 0, 0, 0, 1, b'n', b'a', b'm', b'e', // APP (204)
        0x8f, 0xce, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0, // PSFB FMT=15 (REMB)
        0x8f, 0xcd, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0, // RTPFB FMT=15 (transport-cc)
        0x80, 0xcf, 0x00, 0x01, 0, 0, 0, 1, // XR (207)
    ];
    let kinds: Vec<_> = parse_compound(&compound)
        .map(|p| match p {
            Ok(Packet::Other { packet_type, fmt }) => (packet_type, fmt),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec![(204, 0), (206, 15), (205, 15), (207, 0)]);
}

#[test]
fn strips_padding_of_the_last_packet() {
    let rr = [
        0xa0, 0xc9, 0x00, 0x02, // P=1 RC=0, RR, length 2 words
        0x00, 0x00, 0x00, 0x05, // SSRC
        0x00, 0x00, 0x00, 0x04, // 4 octets of padding, the last counting them
    ];
    let packets = collect(&rr);
    let Ok(Packet::ReceiverReport(parsed)) = &packets[0] else {
        panic!("not an RR: {:?}", packets[0]);
    };
    assert_eq!(parsed.ssrc(), 5);
    assert_eq!(parsed.reports().count(), 0);
}

#[test]
fn parse_errors_end_the_walk() {
    let mut with_bad_tail = SR_SDES.to_vec();
    with_bad_tail.extend_from_slice(&[0x81, 0xc9]);
    let packets = collect(&with_bad_tail);
    assert_eq!(packets.len(), 3);
    assert!(packets[0].is_ok() && packets[1].is_ok());
    assert_eq!(packets[2].as_ref().unwrap_err(), &Error::Truncated);

    let cases: &[(&[u8], Error)] = &[
        // Header cut.
        (&[0x81], Error::Truncated),
        // Length says 3 words, 8 octets present.
        (&[0x80, 0xc9, 0x00, 0x02, 0, 0, 0, 1], Error::Truncated),
        // Version 1.
        (&[0x40, 0xc9, 0x00, 0x01, 0, 0, 0, 1], Error::BadVersion),
        // Padding count 0, then larger than the body.
        (
            &[0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0],
            Error::BadPadding,
        ),
        (
            &[0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 9],
            Error::BadPadding,
        ),
        // SR with RC=1 but no block.
        (
            &[
                0x81, 0xc8, 0x00, 0x06, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0,
            ],
            Error::BadLength,
        ),
        // SR without its sender info.
        (&[0x80, 0xc8, 0x00, 0x01, 0, 0, 0, 1], Error::BadLength),
        // RR with RC=1 but no block.
        (&[0x81, 0xc9, 0x00, 0x01, 0, 0, 0, 1], Error::BadLength),
        // PLI without the media SSRC.
        (&[0x81, 0xce, 0x00, 0x01, 0, 0, 0, 1], Error::BadLength),
        // NACK without a pair.
        (
            &[0x81, 0xcd, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2],
            Error::BadLength,
        ),
        // NACK whose padding (1 octet) leaves a partial pair.
        (
            &[0xa1, 0xcd, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 1],
            Error::BadLength,
        ),
        // FIR with half an entry, and with none.
        (
            &[0x84, 0xce, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2],
            Error::BadLength,
        ),
        (
            &[0x84, 0xce, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0],
            Error::BadLength,
        ),
    ];
    for (buf, error) in cases {
        let mut walk = parse_compound(buf);
        assert_eq!(walk.next().unwrap().unwrap_err(), *error, "{buf:02x?}");
        assert!(
            walk.next().is_none(),
            "walk continued after an error: {buf:02x?}"
        );
    }
    assert!(parse_compound(&[]).next().is_none());
}

#[test]
fn writer_errors() {
    let mut small = [0u8; 11];
    assert_eq!(write_pli(&mut small, 1, 2), Err(Error::BufferTooSmall));
    assert_eq!(
        write_fir(&mut [0u8; 19], 1, 2, 0),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        write_nack(&mut small, 1, 2, &[1]),
        Err(Error::BufferTooSmall)
    );
    // Room for the header and one pair, not two.
    assert_eq!(
        write_nack(&mut [0u8; 19], 1, 2, &[1, 100]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(write_nack(&mut [0u8; 64], 1, 2, &[]), Err(Error::EmptyNack));
    assert_eq!(
        write_sr(&mut [0u8; 51], &sr_info(), &[sr_block()]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(write_rr(&mut [0u8; 7], 1, &[]), Err(Error::BufferTooSmall));
    let blocks = [sr_block(); 32];
    let mut big = [0u8; 1024];
    assert_eq!(write_rr(&mut big, 1, &blocks), Err(Error::TooManyReports));
    assert_eq!(
        write_sr(&mut big, &sr_info(), &blocks),
        Err(Error::TooManyReports)
    );
    assert_eq!(write_rr(&mut big, 1, &blocks[..31]), Ok(8 + 31 * 24));
    assert_eq!(
        write_sdes_cname(&mut [0u8; 15], 1, "abc"),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        write_sdes_cname(&mut big, 1, &"c".repeat(256)),
        Err(Error::ItemTooLong)
    );
    assert_eq!(write_bye(&mut big, &[0; 32]), Err(Error::TooManyReports));
    assert_eq!(write_bye(&mut [0u8; 7], &[1]), Err(Error::BufferTooSmall));
}
