//! Long-term credential keys (RFC 8489 §9.2.2) and USERHASH (§14.4).
//!
//! The HMAC key of the long-term mechanism is a hash of
//! `username ":" OpaqueString(realm) ":" OpaqueString(password)`: MD5 for
//! password algorithm MD5 (and when no algorithm is negotiated), SHA-256 for
//! password algorithm SHA-256 (RFC 8489 §18.5.1).
//!
//! **Preparation.** RFC 8489 processes the realm and password with the
//! OpaqueString profile of PRECIS (RFC 8265; RFC 5389 used SASLprep) and the
//! username with UsernameCasePreserved. This crate does not implement
//! PRECIS: every input is taken as already prepared UTF-8 and hashed as
//! given. For ASCII credentials without control characters — what uturn
//! issues — preparation changes nothing. An operator who configures
//! non-ASCII credentials must enter them in their prepared (NFC) form.

use md5::{Digest, Md5};
use sha2::Sha256;

/// Length of an MD5 long-term key.
pub const KEY_MD5_LEN: usize = 16;

/// Length of a SHA-256 long-term key.
pub const KEY_SHA256_LEN: usize = 32;

/// MD5(username ":" realm ":" password), the key of MESSAGE-INTEGRITY
/// under the long-term mechanism (RFC 8489 §9.2.2). Inputs are taken as
/// already prepared (see the module docs).
pub fn long_term_key_md5(username: &str, realm: &str, password: &str) -> [u8; KEY_MD5_LEN] {
    let mut h = Md5::new();
    feed_credentials(&mut h, username, realm, password);
    h.finalize().into()
}

/// SHA-256(username ":" realm ":" password), the key when PASSWORD-ALGORITHM
/// is SHA-256 (RFC 8489 §9.2.2, §18.5.1.2). Inputs are taken as already
/// prepared (see the module docs).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; KEY_SHA256_LEN] {
    let mut h = Sha256::new();
    feed_credentials(&mut h, username, realm, password);
    h.finalize().into()
}

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.finalize().into()
}

fn feed_credentials(h: &mut impl Digest, username: &str, realm: &str, password: &str) {
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc5769 as v;

    #[test]
    fn md5_key_of_rfc5769_long_term_vector() {
        // The key RFC 5769 §2.4 implies: MD5 of the UTF-8 bytes of
        // "<username>:example.org:TheMatrIX". Checked against the vector's
        // MESSAGE-INTEGRITY in message.rs; here against an independent hash.
        let key = long_term_key_md5(
            v::LONG_TERM_USERNAME,
            v::LONG_TERM_REALM,
            v::LONG_TERM_PASSWORD,
        );
        let joined = format!(
            "{}:{}:{}",
            v::LONG_TERM_USERNAME,
            v::LONG_TERM_REALM,
            v::LONG_TERM_PASSWORD
        );
        let expected: [u8; 16] = Md5::digest(joined.as_bytes()).into();
        assert_eq!(key, expected);
    }

    #[test]
    fn md5_key_known_value() {
        // MD5("user:realm:pass") computed with coreutils' md5sum.
        let key = long_term_key_md5("user", "realm", "pass");
        assert_eq!(hex(&key), "8493fbc53ba582fb4c044c456bdc40eb");
    }

    #[test]
    fn sha256_key_known_value() {
        // SHA-256("user:realm:pass") computed with coreutils' sha256sum.
        let key = long_term_key_sha256("user", "realm", "pass");
        assert_eq!(hex(&key), SHA256_USER_REALM_PASS);
    }

    #[test]
    fn keys_depend_on_every_part() {
        let base = long_term_key_sha256("a", "b", "c");
        assert_ne!(base, long_term_key_sha256("a", "b", "d"));
        assert_ne!(base, long_term_key_sha256("a", "x", "c"));
        assert_ne!(base, long_term_key_sha256("x", "b", "c"));
        assert_ne!(
            long_term_key_md5("a", "b", "c"),
            long_term_key_md5("a", "b", "C")
        );
    }

    #[test]
    fn userhash_is_sha256_of_username_and_realm() {
        let expected: [u8; 32] = Sha256::digest(b"user:realm").into();
        assert_eq!(userhash("user", "realm"), expected);
    }

    const SHA256_USER_REALM_PASS: &str =
        "07e934117abd40836e7c6329b54731b2b2d2a5f9a71f544922d75e0730d8251b";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
