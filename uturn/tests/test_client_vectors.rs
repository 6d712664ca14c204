//! The tests' own TURN client (tests/common/turn.rs) against the RFC 5769
//! test vectors, so that a failure elsewhere points at uturn, not at the
//! client that found it. The vectors' bytes come from `uturn_stun::rfc5769`
//! (data only; none of uturn-stun's code is used here).

mod common;

use std::net::SocketAddr;

use common::turn::{self, Message};
use uturn_stun::rfc5769;

/// §2.4: a request with long-term credentials; our encoder must produce
/// the same bytes, MESSAGE-INTEGRITY included.
#[test]
fn encoder_reproduces_long_term_request() {
    let vector = rfc5769::SAMPLE_REQUEST_LONG_TERM;
    let tid: [u8; 12] = vector[8..20].try_into().unwrap();
    let key = turn::long_term_key(
        rfc5769::LONG_TERM_USERNAME,
        rfc5769::LONG_TERM_REALM,
        rfc5769::LONG_TERM_PASSWORD,
    );
    let encoded = turn::encode(
        turn::BINDING_REQUEST,
        &tid,
        &[
            (turn::ATTR_USERNAME, rfc5769::LONG_TERM_USERNAME.as_bytes()),
            (turn::ATTR_NONCE, rfc5769::LONG_TERM_NONCE.as_bytes()),
            (turn::ATTR_REALM, rfc5769::LONG_TERM_REALM.as_bytes()),
        ],
        Some(&key[..]),
        false,
    );
    assert_eq!(encoded, vector);
}

/// §2.2 and §2.3: the decoder reads XOR-MAPPED-ADDRESS (IPv4 and IPv6) and
/// the FINGERPRINT is the CRC-32 our encoder would write.
#[test]
fn decoder_reads_sample_responses() {
    for (vector, expected) in [
        (rfc5769::SAMPLE_IPV4_RESPONSE, rfc5769::IPV4_MAPPED_ADDRESS),
        (rfc5769::SAMPLE_IPV6_RESPONSE, rfc5769::IPV6_MAPPED_ADDRESS),
    ] {
        let m = Message::parse(vector).expect("vector parses");
        assert_eq!(m.msg_type, turn::BINDING_SUCCESS);
        let expected: SocketAddr = expected.parse().unwrap();
        assert_eq!(m.xor_address(turn::ATTR_XOR_MAPPED_ADDRESS), Some(expected));
        let fp = m.attr(turn::ATTR_FINGERPRINT).expect("FINGERPRINT");
        let crc = crc32fast::hash(&vector[..vector.len() - 8]) ^ 0x5354_554E;
        assert_eq!(fp, crc.to_be_bytes());
        // XOR-address encoding is the inverse of decoding.
        assert_eq!(
            turn::decode_xor_address(&turn::xor_address(expected, &m.tid), &m.tid),
            Some(expected)
        );
    }
}

#[test]
fn decoder_rejects_truncated_and_lying_messages() {
    let vector = rfc5769::SAMPLE_IPV4_RESPONSE;
    for len in 0..vector.len() {
        assert!(
            Message::parse(&vector[..len]).is_none(),
            "prefix of {len} bytes"
        );
    }
    let mut lying = vector.to_vec();
    lying[3] = lying[3].wrapping_add(4);
    assert!(Message::parse(&lying).is_none());
}
