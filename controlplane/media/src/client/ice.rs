//! The test peer's ICE: a controlling full agent with one candidate pair
//! (its socket → the server's host candidate), aggressive nomination, then
//! consent freshness.
//!
//! - Connectivity checks (RFC 8445 §7.2.2, §7.2.5.2): Binding requests
//!   with USERNAME `server-ufrag:our-ufrag`, PRIORITY, ICE-CONTROLLING,
//!   USE-CANDIDATE, MESSAGE-INTEGRITY keyed with the server's password and
//!   FINGERPRINT, every [`CHECK_INTERVAL`] until one succeeds.
//! - Consent (RFC 7675 §5.1): a check every [`CONSENT_INTERVAL`]; without
//!   an authenticated answer for [`CONSENT_TIMEOUT`] the session is over.

use std::time::{Duration, Instant};

use uturn_stun::attribute::Attribute;
use uturn_stun::builder::MessageBuilder;
use uturn_stun::message::{Class, Message, Method, TransactionId};

/// Pace of checks before the first success (Chromium checks a lone pair
/// about this often).
pub(super) const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Consent checks once connected (RFC 7675 §5.1: every 5 s on average).
pub(super) const CONSENT_INTERVAL: Duration = Duration::from_secs(5);
/// Consent expires 30 s after the last answer (RFC 7675 §5.1).
pub(super) const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// PRIORITY of a peer-reflexive candidate as RFC 8445 §5.1.2.1 computes it:
/// type preference 110, local preference 65535, component 1.
const PRFLX_PRIORITY: u32 = (110 << 24) | (65535 << 8) | (256 - 1);

/// Writes one Binding request into `buf` (cleared first); returns its length.
pub(super) fn write_check(
    buf: &mut Vec<u8>,
    tid: TransactionId,
    username: &str,
    server_pwd: &str,
    tie_breaker: u64,
    nominate: bool,
) -> Result<usize, uturn_stun::Error> {
    buf.clear();
    let mut b = MessageBuilder::new(buf, Class::Request, Method::BINDING, tid);
    b.add(&Attribute::Username(username))?;
    b.add(&Attribute::Priority(PRFLX_PRIORITY))?;
    b.add(&Attribute::IceControlling(tie_breaker))?;
    if nominate {
        b.add(&Attribute::UseCandidate)?;
    }
    b.message_integrity(server_pwd.as_bytes())?;
    b.fingerprint()?;
    Ok(b.finish())
}

/// Whether `msg` is the authenticated success answer to our check `tid`.
pub(super) fn is_success_for(msg: &Message<'_>, tid: TransactionId, server_pwd: &str) -> bool {
    msg.class() == Class::Success
        && msg.method() == Method::BINDING
        && msg.transaction_id() == tid
        && msg.check_integrity(server_pwd.as_bytes()).is_ok()
}

/// Where the agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IceState {
    /// No answer applied yet.
    Idle,
    /// Checking; the next check is due at `next`.
    Checking { next: Instant },
    /// A check succeeded; consent check due at `next`, consent lasts
    /// until `expires`.
    Connected { next: Instant, expires: Instant },
    /// Consent lost or closed.
    Done,
}

impl IceState {
    /// When the agent next has something to do.
    pub(super) fn timeout(self) -> Option<Instant> {
        match self {
            IceState::Checking { next } => Some(next),
            IceState::Connected { next, expires } => Some(next.min(expires)),
            IceState::Idle | IceState::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_has_what_an_ice_lite_server_requires() {
        let mut buf = Vec::new();
        let tid = TransactionId([7; 12]);
        let n = write_check(
            &mut buf,
            tid,
            "srv:cli",
            "server-password-0123456",
            42,
            true,
        )
        .unwrap();
        assert_eq!(n, buf.len());
        let msg = Message::parse(&buf).unwrap();
        assert_eq!(msg.class(), Class::Request);
        assert_eq!(msg.method(), Method::BINDING);
        msg.check_fingerprint().unwrap();
        msg.check_integrity(b"server-password-0123456").unwrap();
        assert!(msg.check_integrity(b"another-password-012345").is_err());
        use uturn_stun::attribute::AttributeType;
        for t in [
            AttributeType::USERNAME,
            AttributeType::PRIORITY,
            AttributeType::ICE_CONTROLLING,
            AttributeType::USE_CANDIDATE,
        ] {
            assert!(msg.attribute(t).is_some(), "{t:?}");
        }
        let n = write_check(
            &mut buf,
            tid,
            "srv:cli",
            "server-password-0123456",
            42,
            false,
        )
        .unwrap();
        let msg = Message::parse(&buf[..n]).unwrap();
        assert!(msg.attribute(AttributeType::USE_CANDIDATE).is_none());
    }

    #[test]
    fn prflx_priority_matches_rfc_formula() {
        // 2^24 * 110 + 2^8 * 65535 + (256 - 1)
        assert_eq!(PRFLX_PRIORITY, 1_862_270_975);
    }
}
