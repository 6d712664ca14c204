//! Per-packet STUN work for the dataplane: Send indications in, Data
//! indications out (RFC 8656 §11.2–§11.4).
//!
//! These functions run once per relayed datagram, so they do exactly what
//! forwarding needs and nothing more: one pass over the attributes, no
//! allocation, no attribute decoded beyond XOR-PEER-ADDRESS and DATA.
//! Everything else about the Send indication (the allocation, the
//! permission for the peer's IP) is the caller's table lookup.

use std::net::SocketAddr;

use crate::attribute::{
    address_len, decode_xor_address, write_address, xor_address, AttributeType,
};
use crate::message::{
    check_header, message_type, next_tlv, padded_len, Class, Method, Stage, TransactionId,
    ATTRIBUTE_HEADER_LEN, HEADER_LEN, MAGIC_COOKIE, MAX_MESSAGE_LEN,
};
use crate::Error;

/// Message type of a Send indication (0x0016).
const SEND_INDICATION: u16 = message_type(Class::Indication, Method::SEND);

/// Message type of a Data indication (0x0017).
const DATA_INDICATION: u16 = message_type(Class::Indication, Method::DATA);

/// Checks a Send indication and returns its peer address and data.
///
/// The message must be a well-formed STUN Send indication (RFC 8489 §5)
/// with XOR-PEER-ADDRESS and DATA; when either repeats, the first counts.
/// An unknown comprehension-required attribute makes the indication one
/// the server must discard (RFC 8489 §7.3.2), and so does DONT-FRAGMENT:
/// the dataplane does not set the DF bit per datagram, and RFC 8656 §11.2
/// (RFC 5766 §10.2) says a server that cannot must treat DONT-FRAGMENT as
/// an unknown comprehension-required attribute. The attributes that count
/// are those [`crate::Message::attributes`] yields (nothing after
/// FINGERPRINT, little after MESSAGE-INTEGRITY). FINGERPRINT itself is not
/// checked: it only helps demultiplexing, which the first byte already did.
pub fn parse_send_indication(datagram: &[u8]) -> Result<(SocketAddr, &[u8]), Error> {
    let typ = check_header(datagram)?;
    if typ != SEND_INDICATION {
        return Err(Error::UnexpectedMessageType(typ));
    }
    let mut peer = None;
    let mut data = None;
    let mut stage = Stage::Open;
    let mut pos = HEADER_LEN;
    // The whole message is walked, so that exactly what `Message::parse`
    // accepts is accepted here, and the same attributes count.
    while let Some((raw, next)) = next_tlv(datagram, pos)? {
        pos = next;
        if !stage.admit(raw.typ) {
            continue;
        }
        match raw.typ {
            AttributeType::XOR_PEER_ADDRESS if peer.is_none() => peer = Some(raw.value),
            AttributeType::DATA if data.is_none() => data = Some(raw.value),
            AttributeType::DONT_FRAGMENT => {
                return Err(Error::UnknownComprehensionRequired(raw.typ))
            }
            t if t.is_comprehension_required() && !t.is_known() => {
                return Err(Error::UnknownComprehensionRequired(t));
            }
            _ => {}
        }
    }
    let peer = peer.ok_or(Error::MissingAttribute(AttributeType::XOR_PEER_ADDRESS))?;
    let data = data.ok_or(Error::MissingAttribute(AttributeType::DATA))?;
    let tid = transaction_id(datagram);
    let peer = decode_xor_address(AttributeType::XOR_PEER_ADDRESS, peer, &tid)?;
    Ok((peer, data))
}

/// Length of the Data indication [`write_data_indication`] writes for a
/// peer address and `data_len` bytes of data.
pub const fn data_indication_len(peer: SocketAddr, data_len: usize) -> usize {
    HEADER_LEN
        + ATTRIBUTE_HEADER_LEN
        + address_len(&peer)
        + ATTRIBUTE_HEADER_LEN
        + padded_len(data_len)
}

/// Writes a Data indication (RFC 8656 §11.4) carrying XOR-PEER-ADDRESS
/// and DATA into the start of `out`, and returns its length
/// ([`data_indication_len`]). No FINGERPRINT: a relay on a port of its
/// own has nothing else to be told apart from.
pub fn write_data_indication(
    out: &mut [u8],
    tid: &TransactionId,
    peer: SocketAddr,
    data: &[u8],
) -> Result<usize, Error> {
    let total = data_indication_len(peer, data.len());
    if total > MAX_MESSAGE_LEN {
        return Err(Error::MessageTooLong);
    }
    let Some(out) = out.get_mut(..total) else {
        return Err(Error::BufferTooSmall { needed: total });
    };
    // Both casts are in range: `total` is at most MAX_MESSAGE_LEN, checked above.
    let body_len = (total - HEADER_LEN) as u16;
    let data_len = data.len() as u16;
    let addr_len = address_len(&peer);

    // `out` is exactly `total` bytes: the header, the two attribute
    // headers, the address, the data and its padding. Every split and
    // range below is within those parts, so none can panic.
    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[..2].copy_from_slice(&DATA_INDICATION.to_be_bytes());
    header[2..4].copy_from_slice(&body_len.to_be_bytes());
    header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    header[8..].copy_from_slice(&tid.0);

    let (peer_tlv, rest) = rest.split_at_mut(ATTRIBUTE_HEADER_LEN + addr_len);
    peer_tlv[..2].copy_from_slice(&AttributeType::XOR_PEER_ADDRESS.0.to_be_bytes());
    // An address value is 8 or 20 bytes.
    peer_tlv[2..4].copy_from_slice(&(addr_len as u16).to_be_bytes());
    write_address(
        &mut peer_tlv[ATTRIBUTE_HEADER_LEN..],
        &xor_address(peer, tid),
    );

    let (data_head, data_value) = rest.split_at_mut(ATTRIBUTE_HEADER_LEN);
    data_head[..2].copy_from_slice(&AttributeType::DATA.0.to_be_bytes());
    data_head[2..].copy_from_slice(&data_len.to_be_bytes());
    let (value, padding) = data_value.split_at_mut(data.len());
    value.copy_from_slice(data);
    padding.fill(0);
    Ok(total)
}

/// The transaction ID of a datagram `check_header` accepted.
fn transaction_id(datagram: &[u8]) -> TransactionId {
    let mut tid = [0u8; 12];
    if let Some(src) = datagram.get(8..HEADER_LEN) {
        tid.copy_from_slice(src);
    }
    TransactionId(tid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::Attribute;
    use crate::builder::MessageBuilder;
    use crate::message::Message;

    const TID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

    fn send_indication(attrs: &[Attribute<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Indication, Method::SEND, TID);
        for a in attrs {
            b.add(a).unwrap();
        }
        b.finish();
        out
    }

    #[test]
    fn parses_a_send_indication() {
        for peer in ["203.0.113.5:5000", "[2001:db8::5]:5000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let bytes =
                send_indication(&[Attribute::XorPeerAddress(peer), Attribute::Data(b"payload")]);
            assert_eq!(parse_send_indication(&bytes), Ok((peer, &b"payload"[..])));
        }
    }

    #[test]
    fn attribute_order_and_optional_extras_do_not_matter() {
        let peer: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Indication, Method::SEND, TID);
        b.add(&Attribute::Data(b"x")).unwrap();
        b.add(&Attribute::Software("client")).unwrap();
        b.add_raw(AttributeType(0xC001), b"optional, unknown")
            .unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.fingerprint().unwrap();
        b.finish();
        assert_eq!(parse_send_indication(&out), Ok((peer, &b"x"[..])));
    }

    #[test]
    fn missing_attributes_are_errors() {
        let peer: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let bytes = send_indication(&[Attribute::Data(b"x")]);
        assert_eq!(
            parse_send_indication(&bytes),
            Err(Error::MissingAttribute(AttributeType::XOR_PEER_ADDRESS))
        );
        let bytes = send_indication(&[Attribute::XorPeerAddress(peer)]);
        assert_eq!(
            parse_send_indication(&bytes),
            Err(Error::MissingAttribute(AttributeType::DATA))
        );
    }

    #[test]
    fn unknown_comprehension_required_and_dont_fragment_are_errors() {
        let peer: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Indication, Method::SEND, TID);
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(b"x")).unwrap();
        b.add_raw(AttributeType(0x0042), b"").unwrap();
        b.finish();
        assert_eq!(
            parse_send_indication(&out),
            Err(Error::UnknownComprehensionRequired(AttributeType(0x0042)))
        );
        let bytes = send_indication(&[
            Attribute::XorPeerAddress(peer),
            Attribute::DontFragment,
            Attribute::Data(b"x"),
        ]);
        assert_eq!(
            parse_send_indication(&bytes),
            Err(Error::UnknownComprehensionRequired(
                AttributeType::DONT_FRAGMENT
            ))
        );
    }

    #[test]
    fn other_messages_are_refused() {
        assert_eq!(
            parse_send_indication(crate::rfc5769::SAMPLE_REQUEST),
            Err(Error::UnexpectedMessageType(0x0001))
        );
        let mut out = Vec::new();
        let peer: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let n = data_indication_len(peer, 1);
        out.resize(n, 0);
        write_data_indication(&mut out, &TID, peer, b"x").unwrap();
        assert_eq!(
            parse_send_indication(&out),
            Err(Error::UnexpectedMessageType(0x0017))
        );
        assert_eq!(parse_send_indication(&[0; 4]), Err(Error::Truncated));
    }

    #[test]
    fn malformed_peer_address_is_an_error() {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Indication, Method::SEND, TID);
        b.add_raw(AttributeType::XOR_PEER_ADDRESS, &[0, 1, 0, 0, 1])
            .unwrap();
        b.add(&Attribute::Data(b"x")).unwrap();
        b.finish();
        assert!(matches!(
            parse_send_indication(&out),
            Err(Error::InvalidAttribute { .. })
        ));
    }

    #[test]
    fn writes_a_data_indication_that_parses_back() {
        for (peer, data) in [
            ("203.0.113.5:5000", &b"abc"[..]),
            ("[2001:db8::5]:65535", &b""[..]),
            ("192.0.2.1:1", &[0xffu8; 1200][..]),
        ] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut out = vec![0xEE; 1400];
            let n = write_data_indication(&mut out, &TID, peer, data).unwrap();
            assert_eq!(n, data_indication_len(peer, data.len()));
            let msg = Message::parse(&out[..n]).unwrap();
            assert_eq!(
                (msg.class(), msg.method()),
                (Class::Indication, Method::DATA)
            );
            assert_eq!(msg.transaction_id(), TID);
            let attrs: Vec<_> = msg
                .attributes()
                .map(|r| Attribute::decode(r, &TID).unwrap())
                .collect();
            assert_eq!(
                attrs,
                vec![Attribute::XorPeerAddress(peer), Attribute::Data(data)]
            );
            // The padding is zeroed, not left over from the buffer.
            assert!(out[HEADER_LEN + 8 + address_len(&peer) + data.len()..n]
                .iter()
                .all(|b| *b == 0));
            assert_eq!(out[n], 0xEE);
        }
    }

    #[test]
    fn data_indication_matches_the_builder() {
        let peer: SocketAddr = "[2001:db8::77]:4242".parse().unwrap();
        let mut expected = Vec::new();
        let mut b = MessageBuilder::new(&mut expected, Class::Indication, Method::DATA, TID);
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(b"hello")).unwrap();
        b.finish();
        let mut out = [0u8; 128];
        let n = write_data_indication(&mut out, &TID, peer, b"hello").unwrap();
        assert_eq!(&out[..n], &expected[..]);
    }

    #[test]
    fn small_buffer_and_huge_data_are_errors() {
        let peer: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let mut out = [0u8; 40];
        let needed = data_indication_len(peer, 20);
        assert_eq!(needed, 20 + 12 + 4 + 20);
        assert_eq!(
            write_data_indication(&mut out, &TID, peer, &[0; 20]),
            Err(Error::BufferTooSmall { needed })
        );
        let big = vec![0u8; 70_000];
        let mut out = vec![0u8; 80_000];
        assert_eq!(
            write_data_indication(&mut out, &TID, peer, &big),
            Err(Error::MessageTooLong)
        );
    }
}
