//! Micro-benchmarks of the STUN wire code on the per-request and
//! per-packet paths: parsing a Binding request, checking
//! MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) and
//! MESSAGE-INTEGRITY-SHA256 (§14.6), and the dataplane's Send indication
//! fast path (RFC 8656 §11.2).
//!
//! Inputs are the RFC 5769 test vectors where one exists, so the numbers
//! are comparable with other STUN implementations' benchmarks.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uturn_stun::fastpath::parse_send_indication;
use uturn_stun::integrity::{long_term_key_md5, long_term_key_sha256};
use uturn_stun::rfc5769 as vectors;
use uturn_stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId};

/// Message::parse of the RFC 5769 §2.1 request, then reading what a
/// server reads from a Binding request: USERNAME and SOFTWARE decoded, the
/// unknown comprehension-required attributes counted.
fn binding_request_decode(c: &mut Criterion) {
    let bytes = vectors::SAMPLE_REQUEST;
    let mut group = c.benchmark_group("stun");
    group.throughput(Throughput::Elements(1));
    group.bench_function("binding_request_decode", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(bytes)).unwrap();
            let tid = msg.transaction_id();
            let username = msg
                .attribute(AttributeType::USERNAME)
                .map(|raw| Attribute::decode(raw, &tid));
            let software = msg
                .attribute(AttributeType::SOFTWARE)
                .map(|raw| Attribute::decode(raw, &tid));
            let unknown = msg.unknown_comprehension_required().count();
            black_box((msg.class(), msg.method(), username, software, unknown))
        })
    });
    group.finish();
}

/// check_integrity on the RFC 5769 §2.4 request with its long-term key
/// derived once beforehand, as the server caches it per user.
fn message_integrity_check_sha1(c: &mut Criterion) {
    let msg = Message::parse(vectors::SAMPLE_REQUEST_LONG_TERM).unwrap();
    let key = long_term_key_md5(
        vectors::LONG_TERM_USERNAME,
        vectors::LONG_TERM_REALM,
        vectors::LONG_TERM_PASSWORD,
    );
    msg.check_integrity(&key)
        .expect("the RFC 5769 §2.4 vector verifies");
    let mut group = c.benchmark_group("stun");
    group.throughput(Throughput::Elements(1));
    group.bench_function("message_integrity_check_sha1", |b| {
        b.iter(|| black_box(&msg).check_integrity(black_box(&key)).unwrap())
    });
    group.finish();
}

/// check_integrity_sha256 on the RFC 5769 §2.4 request's attributes with
/// a MESSAGE-INTEGRITY-SHA256 instead (RFC 5769 has no SHA-256 vector).
fn message_integrity_check_sha256(c: &mut Criterion) {
    let src = Message::parse(vectors::SAMPLE_REQUEST_LONG_TERM).unwrap();
    let key = long_term_key_sha256(
        vectors::LONG_TERM_USERNAME,
        vectors::LONG_TERM_REALM,
        vectors::LONG_TERM_PASSWORD,
    );
    let mut bytes = Vec::new();
    let mut builder =
        MessageBuilder::new(&mut bytes, src.class(), src.method(), src.transaction_id());
    for raw in src
        .attributes()
        .filter(|raw| raw.typ != AttributeType::MESSAGE_INTEGRITY)
    {
        builder.add_raw(raw.typ, raw.value).unwrap();
    }
    builder.message_integrity_sha256(&key).unwrap();
    builder.finish();
    let msg = Message::parse(&bytes).unwrap();
    msg.check_integrity_sha256(&key)
        .expect("freshly built message verifies");
    let mut group = c.benchmark_group("stun");
    group.throughput(Throughput::Elements(1));
    group.bench_function("message_integrity_check_sha256", |b| {
        b.iter(|| {
            black_box(&msg)
                .check_integrity_sha256(black_box(&key))
                .unwrap()
        })
    });
    group.finish();
}

/// The dataplane's per-packet Send indication parse, with a typical
/// 160-byte audio payload.
fn send_indication_parse(c: &mut Criterion) {
    let peer: SocketAddr = "203.0.113.10:49152".parse().unwrap();
    let payload = [0x5a; 160];
    let mut bytes = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut bytes,
        Class::Indication,
        Method::SEND,
        TransactionId([7; 12]),
    );
    builder.add(&Attribute::XorPeerAddress(peer)).unwrap();
    builder.add(&Attribute::Data(&payload)).unwrap();
    builder.finish();
    assert_eq!(parse_send_indication(&bytes), Ok((peer, &payload[..])));
    let mut group = c.benchmark_group("stun");
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_indication_parse", |b| {
        b.iter(|| black_box(parse_send_indication(black_box(&bytes)).unwrap()))
    });
    group.finish();
}

criterion_group!(
    benches,
    binding_request_decode,
    message_integrity_check_sha1,
    message_integrity_check_sha256,
    send_indication_parse
);
criterion_main!(benches);
