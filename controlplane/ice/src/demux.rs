//! Routing connectivity checks to their session by ICE ufrag.
//!
//! uturn's UDP listeners carry TURN, STUN and WebRTC media on the same
//! ports. The first byte sorts STUN from DTLS and RTP (RFC 7983,
//! [`uturn_stun::demux`]); among STUN messages, a connectivity check is a
//! Binding request whose USERNAME is `receiver-ufrag ":" sender-ufrag`
//! (RFC 8445 §7.2.2). The receiver's part is the ufrag uturn generated for
//! the session, so a `HashMap<ufrag, session>` finds the agent. Anything
//! that is not found there (a plain STUN Binding request, a TURN request)
//! goes to the TURN server as before.

use uturn_stun::{AttributeType, Class, Message, Method};

/// The local ufrag a connectivity check is addressed to: the part of
/// USERNAME before the first `:`.
///
/// `None` for anything but a Binding request, for a USERNAME that is not
/// UTF-8, has no `:` or starts with it. `:` is not an ice-char (RFC 8839
/// §5.4), so the split is unambiguous. Borrows from the datagram; no
/// allocation, so it can run for every STUN datagram a listener receives.
pub fn ufrag_of<'a>(msg: &Message<'a>) -> Option<&'a str> {
    if msg.class() != Class::Request || msg.method() != Method::BINDING {
        return None;
    }
    let raw = msg.attribute(AttributeType::USERNAME)?;
    let username = core::str::from_utf8(raw.value).ok()?;
    match username.split_once(':') {
        Some((local, _)) if !local.is_empty() => Some(local),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use uturn_stun::{rfc5769, Attribute, MessageBuilder, TransactionId};

    use super::*;

    fn message(class: Class, method: Method, username: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, class, method, TransactionId([5; 12]));
        if let Some(u) = username {
            b.add(&Attribute::Username(u)).unwrap();
        }
        b.finish();
        out
    }

    #[test]
    fn rfc5769_request_is_addressed_to_evtj() {
        let msg = Message::parse(rfc5769::SAMPLE_REQUEST).unwrap();
        assert_eq!(ufrag_of(&msg), Some("evtj"));
    }

    #[test]
    fn only_binding_requests_with_a_colon_route() {
        let cases: &[(Class, Method, Option<&str>, Option<&str>)] = &[
            (
                Class::Request,
                Method::BINDING,
                Some("abcd:efgh"),
                Some("abcd"),
            ),
            (Class::Request, Method::BINDING, Some("abcd:"), Some("abcd")),
            (
                Class::Request,
                Method::BINDING,
                Some("ab:cd:ef"),
                Some("ab"),
            ),
            (Class::Request, Method::BINDING, Some(":efgh"), None),
            (Class::Request, Method::BINDING, Some("abcd"), None),
            (Class::Request, Method::BINDING, None, None),
            (Class::Indication, Method::BINDING, Some("abcd:efgh"), None),
            (Class::Success, Method::BINDING, Some("abcd:efgh"), None),
            // A TURN REST username also has a colon: not a check.
            (
                Class::Request,
                Method::ALLOCATE,
                Some("1700000000:alice"),
                None,
            ),
        ];
        for (class, method, username, expected) in cases {
            let bytes = message(*class, *method, *username);
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(
                ufrag_of(&msg),
                *expected,
                "{class:?} {method:?} {username:?}"
            );
        }
    }

    #[test]
    fn username_that_is_not_utf8_does_not_route() {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(
            &mut out,
            Class::Request,
            Method::BINDING,
            TransactionId([1; 12]),
        );
        b.add_raw(AttributeType::USERNAME, &[0xff, b':', b'a'])
            .unwrap();
        b.finish();
        assert_eq!(ufrag_of(&Message::parse(&out).unwrap()), None);
    }
}
