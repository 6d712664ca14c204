//! Any datagram through the dataplane's `parse_send_indication`. Whatever
//! it accepts, the general parser must accept too and read the same peer
//! and data from; and the Data indication written for it must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uturn_stun::fastpath::{data_indication_len, parse_send_indication, write_data_indication};
use uturn_stun::{Attribute, AttributeType, Class, Message, Method};

fuzz_target!(|data: &[u8]| {
    let Ok((peer, payload)) = parse_send_indication(data) else {
        return;
    };
    let msg = Message::parse(data).expect("the fast path accepted it");
    let tid = msg.transaction_id();
    assert_eq!(
        (msg.class(), msg.method()),
        (Class::Indication, Method::SEND)
    );
    assert_eq!(msg.unknown_comprehension_required().count(), 0);
    let raw_peer = msg
        .attribute(AttributeType::XOR_PEER_ADDRESS)
        .expect("has a peer");
    assert_eq!(
        Attribute::decode(raw_peer, &tid),
        Ok(Attribute::XorPeerAddress(peer))
    );
    assert_eq!(
        msg.attribute(AttributeType::DATA).map(|raw| raw.value),
        Some(payload)
    );

    let mut out = vec![0u8; data_indication_len(peer, payload.len())];
    match write_data_indication(&mut out, &tid, peer, payload) {
        Ok(n) => {
            let back = Message::parse(&out[..n]).expect("a written Data indication parses");
            assert_eq!(
                (back.class(), back.method()),
                (Class::Indication, Method::DATA)
            );
            assert_eq!(
                back.attribute(AttributeType::DATA).map(|raw| raw.value),
                Some(payload)
            );
        }
        // A Send indication near the size limit can carry data whose Data
        // indication (with a longer peer address) would not fit.
        Err(uturn_stun::Error::MessageTooLong) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
});
