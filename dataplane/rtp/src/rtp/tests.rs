//! Byte-level tests of the RTP view and writers. Expected bytes are worked
//! out by hand from the field layouts of RFC 3550 §5.1 / §5.3.1, RFC 8285
//! §4.2 / §4.3 and RFC 4588 §4; each array says which field is which.

use super::*;

/// V=2 X=1 CC=0 | M=1 PT=96 | seq 0x1234 | ts 0xDEADBEEF | SSRC 0x11223344 |
/// one-byte extension block of 2 words: id 1 (2 octets AA BB), id 2 (3
/// octets 01 02 03), one padding octet | payload "hello".
const ONE_BYTE: [u8; 29] = [
    0x90, 0xe0, 0x12, 0x34, // V=2 P=0 X=1 CC=0, M=1 PT=96, sequence number
    0xde, 0xad, 0xbe, 0xef, // timestamp
    0x11, 0x22, 0x33, 0x44, // SSRC
    0xbe, 0xde, 0x00, 0x02, // RFC 8285 §4.2 profile 0xBEDE, length 2 words
    0x11, 0xaa, 0xbb, // id 1, L=1 (2 octets)
    0x22, 0x01, 0x02, 0x03, // id 2, L=2 (3 octets)
    0x00, // padding
    b'h', b'e', b'l', b'l', b'o',
];

/// V=2 X=1 | PT=111 | two-byte block (RFC 8285 §4.3, profile 0x1000):
/// id 1 with 0 octets, id 20 with 2 octets CC DD, then padding to the word.
const TWO_BYTE: [u8; 24] = [
    0x90, 0x6f, 0x00, 0x07, // V=2 X=1, M=0 PT=111, seq 7
    0x00, 0x00, 0x00, 0x10, // timestamp 16
    0xca, 0xfe, 0xba, 0xbe, // SSRC
    0x10, 0x00, 0x00, 0x02, // profile 0x1000 (appbits 0), 2 words
    0x01, 0x00, // id 1, length 0
    0x14, 0x02, 0xcc, 0xdd, // id 20, length 2
    0x00, 0x00, // padding
];

/// V=2 P=1 CC=2 | PT=0 | 2 CSRCs | payload 4 octets | 3 padding octets, the last counting 3.
const CSRC_PADDED: [u8; 27] = [
    0xa2, 0x00, 0xff, 0xff, // V=2 P=1 X=0 CC=2, M=0 PT=0, seq 65535
    0x00, 0x00, 0x00, 0x01, // timestamp
    0x00, 0x00, 0x00, 0x02, // SSRC
    0x00, 0x00, 0x00, 0x0a, // CSRC 10
    0x00, 0x00, 0x00, 0x0b, // CSRC 11
    0x01, 0x02, 0x03, 0x04, // payload
    0x00, 0x00, 0x03, // padding, count 3
];

#[test]
fn parses_fixed_header_and_one_byte_extensions() {
    let packet = RtpPacket::new_checked(&ONE_BYTE).unwrap();
    assert!(packet.marker());
    assert_eq!(packet.payload_type(), 96);
    assert_eq!(packet.sequence_number(), 0x1234);
    assert_eq!(packet.timestamp(), 0xdead_beef);
    assert_eq!(packet.ssrc(), 0x1122_3344);
    assert_eq!(packet.csrc_count(), 0);
    assert_eq!(packet.header_len(), 24);
    assert_eq!(packet.payload(), b"hello");
    assert_eq!(packet.padding_len(), 0);
    assert!(!packet.has_padding());
    assert_eq!(packet.extension_profile(), Some(0xbede));
    assert_eq!(packet.extension(1), Some(&[0xaa, 0xbb][..]));
    assert_eq!(packet.extension(2), Some(&[1, 2, 3][..]));
    assert_eq!(packet.extension(3), None);
    assert_eq!(packet.extension(0), None);
    assert_eq!(packet.extensions().count(), 2);
    assert_eq!(packet.extensions().form(), ExtensionForm::OneByte);
}

#[test]
fn parses_two_byte_extensions() {
    let packet = RtpPacket::new_checked(&TWO_BYTE).unwrap();
    assert!(!packet.marker());
    assert_eq!(packet.payload_type(), 111);
    assert_eq!(packet.sequence_number(), 7);
    assert_eq!(packet.header_len(), 24);
    assert!(packet.payload().is_empty());
    assert_eq!(packet.extension(1), Some(&[][..]));
    assert_eq!(packet.extension(20), Some(&[0xcc, 0xdd][..]));
    let all: Vec<_> = packet.extensions().collect();
    assert_eq!(all, vec![(1, &[][..]), (20, &[0xcc, 0xdd][..])]);
    assert_eq!(packet.extensions().form(), ExtensionForm::TwoByte);
}

#[test]
fn two_byte_profile_accepts_any_appbits() {
    // RFC 8285 §4.3: the low 4 bits of 0x100x are application bits.
    let mut buf = TWO_BYTE;
    buf[13] = 0x0f;
    let packet = RtpPacket::new_checked(&buf).unwrap();
    assert_eq!(packet.extension(20), Some(&[0xcc, 0xdd][..]));
}

#[test]
fn parses_csrcs_and_padding() {
    let packet = RtpPacket::new_checked(&CSRC_PADDED).unwrap();
    assert_eq!(packet.csrc_count(), 2);
    assert_eq!(packet.csrcs().collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(packet.header_len(), 20);
    assert_eq!(packet.padding_len(), 3);
    assert!(packet.has_padding());
    assert_eq!(packet.payload(), &[1, 2, 3, 4]);
    assert_eq!(packet.body(), &[1, 2, 3, 4, 0, 0, 3]);
    assert_eq!(packet.sequence_number(), 0xffff);
    assert_eq!(packet.extension_profile(), None);
    assert_eq!(packet.extensions().count(), 0);
}

#[test]
fn rejects_malformed_headers() {
    assert_eq!(RtpPacket::new_checked(&[]).unwrap_err(), Error::Truncated);
    assert_eq!(
        RtpPacket::new_checked(&ONE_BYTE[..11]).unwrap_err(),
        Error::Truncated
    );

    let mut version_1 = ONE_BYTE;
    version_1[0] = 0x50;
    assert_eq!(
        RtpPacket::new_checked(&version_1).unwrap_err(),
        Error::BadVersion
    );

    // CC=2 needs 20 octets of header.
    assert_eq!(
        RtpPacket::new_checked(&CSRC_PADDED[..19]).unwrap_err(),
        Error::Truncated
    );
    // X set but the block header is cut, then the block data is cut.
    assert_eq!(
        RtpPacket::new_checked(&ONE_BYTE[..14]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        RtpPacket::new_checked(&ONE_BYTE[..23]).unwrap_err(),
        Error::Truncated
    );

    // Padding count 0 (it counts itself, RFC 3550 §5.1) and larger than the body.
    let mut zero_pad = CSRC_PADDED;
    zero_pad[26] = 0;
    assert_eq!(
        RtpPacket::new_checked(&zero_pad).unwrap_err(),
        Error::BadPadding
    );
    let mut big_pad = CSRC_PADDED;
    big_pad[26] = 8;
    assert_eq!(
        RtpPacket::new_checked(&big_pad).unwrap_err(),
        Error::BadPadding
    );
    // Exactly the whole body is padding: valid, empty payload.
    let mut all_pad = CSRC_PADDED;
    all_pad[26] = 7;
    assert!(RtpPacket::new_checked(&all_pad)
        .unwrap()
        .payload()
        .is_empty());
}

#[test]
fn one_byte_id_15_stops_the_block() {
    // RFC 8285 §4.2: id 15 ends processing; elements after it are not seen.
    let mut buf = ONE_BYTE;
    buf[19] = 0xf2;
    let packet = RtpPacket::new_checked(&buf).unwrap();
    assert_eq!(packet.extension(1), Some(&[0xaa, 0xbb][..]));
    assert_eq!(packet.extension(2), None);
    assert_eq!(packet.extensions().count(), 1);
}

#[test]
fn overrunning_element_ends_iteration() {
    // id 2 claims 16 octets (L=15) but the block has 4 left.
    let mut buf = ONE_BYTE;
    buf[19] = 0x2f;
    let packet = RtpPacket::new_checked(&buf).unwrap();
    assert_eq!(
        packet.extensions().collect::<Vec<_>>(),
        vec![(1, &[0xaa, 0xbb][..])]
    );
    // Two-byte element whose length octet is missing.
    let ext = Extensions::new(0x1000, &[0x05]);
    assert_eq!(ext.count(), 0);
}

#[test]
fn one_byte_id_0_is_a_padding_octet_whatever_its_length() {
    // RFC 8285 §4.2 reserves id 0 for padding: 0x05 is skipped as one octet,
    // not as an element of 6 octets.
    let ext = Extensions::new(0xbede, &[0x05, 0x10, 0xaa, 0x00]);
    assert_eq!(ext.collect::<Vec<_>>(), vec![(1, &[0xaa][..])]);
}

#[test]
fn unknown_profile_has_no_elements() {
    let mut buf = ONE_BYTE;
    buf[12] = 0x12;
    buf[13] = 0x34;
    let packet = RtpPacket::new_checked(&buf).unwrap();
    assert_eq!(packet.extension_profile(), Some(0x1234));
    assert_eq!(packet.extension(1), None);
    assert_eq!(packet.payload(), b"hello");
}

#[test]
fn ext_id_map() {
    let mut map = ExtIdMap::new();
    assert_eq!(map.get(1), None);
    map.map(1, 3).map(2, 0).map(0, 9);
    assert_eq!(map.get(1), Some(3));
    assert_eq!(map.get(2), None);
    assert_eq!(map.get(0), None);
    let identity = ExtIdMap::identity();
    assert_eq!(identity.get(0), None);
    assert_eq!(identity.get(14), Some(14));
    assert_eq!(identity.get(255), Some(255));
    assert_eq!(format!("{map:?}"), "{1: 3}");
}

fn rewrite_to(src: &[u8], rw: &Rewrite) -> Result<Vec<u8>, Error> {
    let mut dst = [0u8; 1500];
    let len = rewrite(src, &mut dst, rw)?;
    Ok(dst[..len].to_vec())
}

#[test]
fn rewrite_with_identity_map_changes_only_ssrc_and_pt() {
    let rw = Rewrite {
        ssrc: 0xaabb_ccdd,
        payload_type: 100,
        ext_ids: ExtIdMap::identity(),
    };
    let out = rewrite_to(&ONE_BYTE, &rw).unwrap();
    let mut expected = ONE_BYTE;
    expected[1] = 0x80 | 100; // marker kept, PT 100
    expected[8..12].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
    // The block is re-laid: the same two elements, the padding octet at the end.
    assert_eq!(out, expected);
}

#[test]
fn rewrite_renumbers_and_drops_extensions() {
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(1, 3);
    let rw = Rewrite {
        ssrc: 5,
        payload_type: 96,
        ext_ids,
    };
    let out = rewrite_to(&ONE_BYTE, &rw).unwrap();
    let expected = [
        0x90, 0xe0, 0x12, 0x34, // X still set, M=1 PT=96, seq kept
        0xde, 0xad, 0xbe, 0xef, // timestamp kept
        0x00, 0x00, 0x00, 0x05, // new SSRC
        0xbe, 0xde, 0x00, 0x01, // one word of elements
        0x31, 0xaa, 0xbb, 0x00, // id 3 L=1, value, one zero of padding
        b'h', b'e', b'l', b'l', b'o',
    ];
    assert_eq!(out, expected);
}

#[test]
fn rewrite_switches_to_two_byte_form_when_an_id_needs_it() {
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(2, 20);
    let rw = Rewrite {
        ssrc: 1,
        payload_type: 96,
        ext_ids,
    };
    let out = rewrite_to(&ONE_BYTE, &rw).unwrap();
    let expected = [
        0x90, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x01, //
        0x10, 0x00, 0x00, 0x02, // two-byte profile, 2 words
        0x14, 0x03, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, // id 20 length 3, value, padding
        b'h', b'e', b'l', b'l', b'o',
    ];
    assert_eq!(out, expected);
}

#[test]
fn rewrite_two_byte_input_becomes_one_byte_when_it_fits() {
    // Drop the empty id-1 element (cannot be one-byte); id 20 -> 4 fits one-byte.
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(20, 4);
    let rw = Rewrite {
        ssrc: 0xcafe_babe,
        payload_type: 111,
        ext_ids,
    };
    let out = rewrite_to(&TWO_BYTE, &rw).unwrap();
    let expected = [
        0x90, 0x6f, 0x00, 0x07, 0x00, 0x00, 0x00, 0x10, 0xca, 0xfe, 0xba, 0xbe, //
        0xbe, 0xde, 0x00, 0x01, // one-byte profile, 1 word
        0x41, 0xcc, 0xdd, 0x00, // id 4 L=1, value, padding
    ];
    assert_eq!(out, expected);

    // Keeping the empty element forces the two-byte form.
    let rw = Rewrite {
        ext_ids: ExtIdMap::identity(),
        ..rw
    };
    assert_eq!(rewrite_to(&TWO_BYTE, &rw).unwrap(), TWO_BYTE);
}

#[test]
fn rewrite_without_kept_extensions_clears_x() {
    let rw = Rewrite {
        ssrc: 9,
        payload_type: 97,
        ext_ids: ExtIdMap::new(),
    };
    let out = rewrite_to(&ONE_BYTE, &rw).unwrap();
    let expected = [
        0x80, 0xe1, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x09, //
        b'h', b'e', b'l', b'l', b'o',
    ];
    assert_eq!(out, expected);

    // A block whose profile is not RFC 8285's is dropped too.
    let mut other_profile = ONE_BYTE;
    other_profile[12..14].copy_from_slice(&[0x12, 0x34]);
    let rw = Rewrite {
        ext_ids: ExtIdMap::identity(),
        ..rw
    };
    assert_eq!(rewrite_to(&other_profile, &rw).unwrap(), expected);
}

#[test]
fn rewrite_keeps_csrcs_and_padding() {
    let rw = Rewrite {
        ssrc: 0x0102_0304,
        payload_type: 8,
        ext_ids: ExtIdMap::identity(),
    };
    let out = rewrite_to(&CSRC_PADDED, &rw).unwrap();
    let mut expected = CSRC_PADDED;
    expected[1] = 8;
    expected[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(out, expected);
    let parsed = RtpPacket::new_checked(&out).unwrap();
    assert_eq!(parsed.payload(), &[1, 2, 3, 4]);
    assert_eq!(parsed.csrcs().collect::<Vec<_>>(), vec![10, 11]);
}

#[test]
fn rewrite_errors() {
    let rw = Rewrite {
        ssrc: 1,
        payload_type: 96,
        ext_ids: ExtIdMap::identity(),
    };
    let mut small = [0u8; 28];
    assert_eq!(
        rewrite(&ONE_BYTE, &mut small, &rw),
        Err(Error::BufferTooSmall)
    );
    let mut exact = [0u8; 29];
    assert_eq!(rewrite(&ONE_BYTE, &mut exact, &rw), Ok(29));
    let mut dst = [0u8; 64];
    assert_eq!(
        rewrite(&ONE_BYTE[..5], &mut dst, &rw),
        Err(Error::Truncated)
    );
    assert_eq!(rewrite(&[0u8; 12], &mut dst, &rw), Err(Error::BadVersion));
}

#[test]
fn rewrite_refuses_a_block_past_its_length_field() {
    // The largest one-byte block (65535 words) of 1-octet elements with id 1;
    // mapped to id 15 they need the two-byte form, 3 octets instead of 2
    // each, which no 16-bit word count can describe.
    let mut src = vec![
        0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff,
    ];
    src.extend(std::iter::repeat_n([0x10, 0xaa], 65535 * 2).flatten());
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(1, 15);
    let rw = Rewrite {
        ssrc: 1,
        payload_type: 96,
        ext_ids,
    };
    let mut dst = vec![0u8; 600_000];
    assert_eq!(rewrite(&src, &mut dst, &rw), Err(Error::ExtensionTooLong));
    // Under its own id the block still fits the one-byte form.
    let rw = Rewrite {
        ext_ids: ExtIdMap::identity(),
        ..rw
    };
    assert_eq!(rewrite(&src, &mut dst, &rw), Ok(src.len()));
}

#[test]
fn rewrite_round_trips_through_the_view() {
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(1, 14).map(2, 200);
    let rw = Rewrite {
        ssrc: 0xfeed_f00d,
        payload_type: 45,
        ext_ids,
    };
    let out = rewrite_to(&ONE_BYTE, &rw).unwrap();
    let original = RtpPacket::new_checked(&ONE_BYTE).unwrap();
    let parsed = RtpPacket::new_checked(&out).unwrap();
    assert_eq!(parsed.ssrc(), 0xfeed_f00d);
    assert_eq!(parsed.payload_type(), 45);
    assert_eq!(parsed.marker(), original.marker());
    assert_eq!(parsed.sequence_number(), original.sequence_number());
    assert_eq!(parsed.timestamp(), original.timestamp());
    assert_eq!(parsed.payload(), original.payload());
    assert_eq!(parsed.extension(14), original.extension(1));
    assert_eq!(parsed.extension(200), original.extension(2));
    assert_eq!(parsed.extension(1), None);
}

#[test]
fn set_sequence_number_patches_in_place() {
    let mut buf = ONE_BYTE;
    set_sequence_number(&mut buf, 0xbeef).unwrap();
    assert_eq!(&buf[2..4], &[0xbe, 0xef]);
    assert_eq!(&buf[..2], &ONE_BYTE[..2]);
    assert_eq!(&buf[4..], &ONE_BYTE[4..]);
    assert_eq!(
        set_sequence_number(&mut [0x80; 11], 1),
        Err(Error::Truncated)
    );
    assert_eq!(
        set_sequence_number(&mut [0x40; 12], 1),
        Err(Error::BadVersion)
    );
}

#[test]
fn write_rtx_prepends_the_original_sequence_number() {
    let mut dst = [0u8; 64];
    let len = write_rtx(&ONE_BYTE, &mut dst, 0x0a0b_0c0d, 97, 0x0001).unwrap();
    let expected = [
        0x90, 0xe1, 0x00, 0x01, // M kept, PT 97, RTX sequence number 1
        0xde, 0xad, 0xbe, 0xef, // original timestamp (RFC 4588 §4)
        0x0a, 0x0b, 0x0c, 0x0d, // RTX SSRC
        0xbe, 0xde, 0x00, 0x02, 0x11, 0xaa, 0xbb, 0x22, 0x01, 0x02, 0x03,
        0x00, // extensions as sent
        0x12, 0x34, // OSN: the original sequence number
        b'h', b'e', b'l', b'l', b'o',
    ];
    assert_eq!(&dst[..len], &expected);
}

#[test]
fn write_rtx_drops_padding() {
    let mut dst = [0u8; 64];
    let len = write_rtx(&CSRC_PADDED, &mut dst, 7, 98, 300).unwrap();
    let expected = [
        0x82, 0x62, 0x01, 0x2c, // P cleared, CC=2, PT 98, seq 300
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, // timestamp, RTX SSRC
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x0b, // CSRCs
        0xff, 0xff, // OSN 65535
        0x01, 0x02, 0x03, 0x04, // payload, no padding
    ];
    assert_eq!(&dst[..len], &expected);
    let parsed = RtpPacket::new_checked(&dst[..len]).unwrap();
    assert_eq!(parsed.payload(), &[0xff, 0xff, 1, 2, 3, 4]);
}

#[test]
fn write_rtx_errors() {
    let mut small = [0u8; 30];
    assert_eq!(
        write_rtx(&ONE_BYTE, &mut small, 1, 97, 1),
        Err(Error::BufferTooSmall)
    );
    let mut exact = [0u8; 31];
    assert_eq!(write_rtx(&ONE_BYTE, &mut exact, 1, 97, 1), Ok(31));
    assert_eq!(
        write_rtx(&[0x80; 4], &mut exact, 1, 97, 1),
        Err(Error::Truncated)
    );
}
