//! Any datagram through `Message::parse`, every attribute through
//! `Attribute::decode`, and the integrity and fingerprint checks. Nothing
//! may panic; whatever parses and decodes must also re-encode and parse back
//! to the same attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uturn_stun::{Attribute, Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let tid = msg.transaction_id();
    let _ = (msg.class(), msg.method());
    let _ = msg.unknown_comprehension_required().count();
    let _ = msg.check_integrity(b"fuzz-key");
    let _ = msg.check_integrity_sha256(b"fuzz-key");
    let _ = msg.check_fingerprint();

    let mut decoded = Vec::new();
    for raw in msg.all_attributes() {
        match Attribute::decode(raw, &tid) {
            Ok(attr) => decoded.push(attr),
            Err(_) => return,
        }
    }
    let mut out = Vec::new();
    let mut builder = MessageBuilder::new(&mut out, msg.class(), msg.method(), tid);
    for attr in &decoded {
        builder.add(attr).expect("a decoded attribute re-encodes");
    }
    builder.finish();
    let again = Message::parse(&out).expect("a built message parses");
    let redecoded: Vec<_> = again
        .all_attributes()
        .map(|raw| Attribute::decode(raw, &tid).expect("re-decodes"))
        .collect();
    assert_eq!(decoded, redecoded);
});
