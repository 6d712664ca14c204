//! Stateless NONCEs for long-term authentication (RFC 8489 §9.2).
//!
//! The server keeps no per-client nonce state: a nonce carries its own expiry
//! and a MAC, under a key only the relay knows, over that expiry and the
//! client's transport address. Any worker holding the same [`NonceKey`] can
//! check a nonce any other worker issued, and a flood of unauthenticated
//! requests costs no memory.
//!
//! Layout (61 printable ASCII characters; RFC 8489 §14.10 allows up to 128):
//!
//! ```text
//! obMatJos2 FFFF EEEEEEEEEEEEEEEE MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM
//! │         │    │                └ hex(HMAC-SHA256(key, cookie ‖ features ‖ expiry ‖ client)[..16])
//! │         │    └ hex(expiry, u64 big-endian Unix seconds)
//! │         └ STUN Security Feature set, 24 bits as 4 base64 characters (RFC 8489 §9.2)
//! └ the "nonce cookie" of RFC 8489 §9.2
//! ```
//!
//! The MAC covers the cookie and the feature bits too: the feature set is
//! what RFC 8489 §9.2.4's bid-down protection relies on, so a man in the
//! middle that clears a bit gets a nonce that no longer checks.
//!
//! Feature bits are numbered from the least significant end (bit 0 is the
//! rightmost of the 24), as RFC 8489 erratum 6290 corrects the prose of §18.1;
//! the nonce in the RFC's own Appendix B.1, `obMatJos2AAAC…`, has bit 1
//! (username anonymity) set this way.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// The "nonce cookie" announcing a STUN Security Feature set (RFC 8489 §9.2).
pub const NONCE_COOKIE: &[u8; 9] = b"obMatJos2";

/// Length of the encoded feature set that follows the cookie (24 bits in base64).
const FEATURES_LEN: usize = 4;
const PREFIX_LEN: usize = NONCE_COOKIE.len() + FEATURES_LEN;
const EXPIRY_HEX_LEN: usize = 16;
/// HMAC-SHA256 truncated to 128 bits: forging needs 2^128 guesses, and each
/// guess costs the attacker a round trip.
const TAG_LEN: usize = 16;
/// Length of every nonce [`NonceKey::issue`] produces.
pub const NONCE_LEN: usize = PREFIX_LEN + EXPIRY_HEX_LEN + 2 * TAG_LEN;

/// Why a NONCE was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Ours and for this client, but past its expiry: 438 Stale Nonce, so the
    /// client retries at once with the fresh nonce in the answer.
    #[error("stale nonce")]
    Stale,
    /// Not a nonce this relay issued to this client address: 401 with a
    /// fresh nonce.
    #[error("invalid nonce")]
    Invalid,
}

/// The STUN Security Feature set (RFC 8489 §9.2, registry in §18.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecurityFeatures(u32);

impl SecurityFeatures {
    /// No feature.
    pub const NONE: Self = Self(0);
    /// Bit 0, "Password algorithms": the server supports PASSWORD-ALGORITHMS
    /// negotiation (RFC 8489 §9.2.4 bid-down protection applies).
    pub const PASSWORD_ALGORITHMS: Self = Self(1 << 0);
    /// Bit 1, "Username anonymity": the client must send USERHASH instead of
    /// USERNAME (RFC 8489 §9.2.5).
    pub const USERNAME_ANONYMITY: Self = Self(1 << 1);

    /// The feature set is 24 bits wide.
    const MASK: u32 = 0x00ff_ffff;

    /// The set from its 24-bit value; higher bits are ignored.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & Self::MASK)
    }

    /// The 24-bit value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every feature of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The 4 base64 characters (standard alphabet) of the 24 bits, big-endian.
    fn encode(self) -> [u8; FEATURES_LEN] {
        let mut out = [0; FEATURES_LEN];
        for (i, c) in out.iter_mut().enumerate() {
            let sextet = (self.0 >> (18 - 6 * i)) & 0x3f;
            // `sextet` < 64 by the mask, so the index is in range.
            *c = BASE64_ALPHABET[sextet as usize];
        }
        out
    }

    fn decode(chars: &[u8]) -> Option<Self> {
        if chars.len() != FEATURES_LEN {
            return None;
        }
        let mut bits = 0u32;
        for &c in chars {
            bits = (bits << 6) | u32::from(base64_value(c)?);
        }
        Some(Self(bits))
    }
}

impl fmt::Debug for SecurityFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        if self.contains(Self::PASSWORD_ALGORITHMS) {
            set.entry(&"PasswordAlgorithms");
        }
        if self.contains(Self::USERNAME_ANONYMITY) {
            set.entry(&"UsernameAnonymity");
        }
        let unassigned = self.0 & !(Self::PASSWORD_ALGORITHMS.0 | Self::USERNAME_ANONYMITY.0);
        if unassigned != 0 {
            set.entry(&format_args!("{unassigned:#08x}"));
        }
        set.finish()
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Whether `nonce` starts with the nonce cookie and a well-formed feature
/// set (RFC 8489 §9.2), whoever issued it.
pub fn has_security_features_cookie(nonce: &[u8]) -> bool {
    security_features(nonce).is_some()
}

/// The STUN Security Feature set announced by `nonce`, or `None` when it does
/// not start with the nonce cookie (RFC 8489 §9.2). This parses only; whether
/// the nonce is authentic is [`NonceKey::check`]'s job.
pub fn security_features(nonce: &[u8]) -> Option<SecurityFeatures> {
    let rest = nonce.strip_prefix(NONCE_COOKIE.as_slice())?;
    SecurityFeatures::decode(rest.get(..FEATURES_LEN)?)
}

/// The key nonces are authenticated with, and the feature set they announce.
///
/// Shared by every worker (see `Shared`), so a nonce issued by one worker
/// checks on any other; a key made with [`NonceKey::random`] invalidates all
/// nonces of a previous run, which costs clients one extra 401 round trip.
#[derive(Clone)]
pub struct NonceKey {
    /// Keyed once; cloned per use (cheaper than re-keying).
    mac: Hmac<Sha256>,
    features: SecurityFeatures,
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceKey")
            .field("key", &"<redacted>")
            .field("features", &self.features)
            .finish()
    }
}

impl NonceKey {
    /// Features announced unless [`NonceKey::with_features`] says otherwise:
    /// password algorithms and username anonymity (USERHASH) are supported.
    pub const DEFAULT_FEATURES: SecurityFeatures =
        SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY);

    /// A key from the operating system's random source.
    pub fn random() -> Self {
        let mut key = [0; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::from_bytes(key)
    }

    /// A key from fixed bytes (tests; several processes sharing one key).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            // HMAC takes keys of any length (RFC 2104 §2), so this cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap(),
            features: Self::DEFAULT_FEATURES,
        }
    }

    /// The same key announcing `features` instead. A server that accepts TURN
    /// REST credentials may clear [`SecurityFeatures::USERNAME_ANONYMITY`]:
    /// RFC 8489 §9.2.5 makes clients that see it send USERHASH, which cannot
    /// name a REST user.
    pub fn with_features(mut self, features: SecurityFeatures) -> Self {
        self.features = features;
        self
    }

    /// The feature set this key's nonces announce.
    pub fn features(&self) -> SecurityFeatures {
        self.features
    }

    /// A nonce for `client`, valid until `now_unix + lifetime` (whole seconds).
    pub fn issue(&self, client: SocketAddr, now_unix: u64, lifetime: Duration) -> String {
        let expiry = now_unix.saturating_add(lifetime.as_secs());
        let mut prefix = [0; PREFIX_LEN];
        prefix[..NONCE_COOKIE.len()].copy_from_slice(NONCE_COOKIE);
        prefix[NONCE_COOKIE.len()..].copy_from_slice(&self.features.encode());

        let tag = self.tag(&prefix, expiry, client);
        let mut nonce = String::with_capacity(NONCE_LEN);
        // The prefix is ASCII: the cookie, then base64 characters.
        nonce.extend(prefix.iter().map(|&b| char::from(b)));
        push_hex(&mut nonce, &expiry.to_be_bytes());
        push_hex(&mut nonce, &tag[..TAG_LEN]);
        nonce
    }

    /// Checks a NONCE received from `client` at Unix time `now_unix`.
    ///
    /// Anything malformed, issued under another key or for another client
    /// address is [`NonceError::Invalid`]; an authentic nonce whose expiry
    /// has come is [`NonceError::Stale`].
    pub fn check(&self, nonce: &[u8], client: SocketAddr, now_unix: u64) -> Result<(), NonceError> {
        if nonce.len() != NONCE_LEN {
            return Err(NonceError::Invalid);
        }
        let (prefix, rest) = nonce.split_at(PREFIX_LEN);
        let (expiry_hex, tag_hex) = rest.split_at(EXPIRY_HEX_LEN);
        security_features(prefix).ok_or(NonceError::Invalid)?;
        let mut expiry = [0; 8];
        decode_hex(expiry_hex, &mut expiry).ok_or(NonceError::Invalid)?;
        let expiry = u64::from_be_bytes(expiry);
        let mut tag = [0; TAG_LEN];
        decode_hex(tag_hex, &mut tag).ok_or(NonceError::Invalid)?;

        let mut mac = self.mac.clone();
        feed(&mut mac, prefix, expiry, client);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&tag)
            .map_err(|_| NonceError::Invalid)?;

        if now_unix >= expiry {
            return Err(NonceError::Stale);
        }
        Ok(())
    }

    fn tag(&self, prefix: &[u8], expiry: u64, client: SocketAddr) -> [u8; 32] {
        let mut mac = self.mac.clone();
        feed(&mut mac, prefix, expiry, client);
        mac.finalize().into_bytes().into()
    }
}

/// The MAC input: prefix ‖ expiry ‖ family ‖ IP ‖ port. The family byte keeps
/// an IPv4 address apart from an IPv6 one sharing its bytes; IPv4-mapped
/// IPv6 addresses count as IPv4 so a dual-stack socket's view matches.
fn feed(mac: &mut Hmac<Sha256>, prefix: &[u8], expiry: u64, client: SocketAddr) {
    mac.update(prefix);
    mac.update(&expiry.to_be_bytes());
    match client.ip().to_canonical() {
        IpAddr::V4(ip) => {
            mac.update(&[4]);
            mac.update(&ip.octets());
        }
        IpAddr::V6(ip) => {
            mac.update(&[6]);
            mac.update(&ip.octets());
        }
    }
    mac.update(&client.port().to_be_bytes());
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Lowercase hex only, so that each nonce has exactly one spelling.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        // `chunks_exact(2)` yields slices of exactly two bytes.
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const LIFETIME: Duration = Duration::from_secs(600);

    fn key() -> NonceKey {
        NonceKey::from_bytes([7; 32])
    }

    fn client() -> SocketAddr {
        "198.51.100.7:40000".parse().unwrap()
    }

    #[test]
    fn issued_nonce_checks_until_expiry() {
        let key = key();
        let nonce = key.issue(client(), NOW, LIFETIME);
        assert_eq!(key.check(nonce.as_bytes(), client(), NOW), Ok(()));
        assert_eq!(key.check(nonce.as_bytes(), client(), NOW + 599), Ok(()));
        assert_eq!(
            key.check(nonce.as_bytes(), client(), NOW + 600),
            Err(NonceError::Stale)
        );
        assert_eq!(
            key.check(nonce.as_bytes(), client(), u64::MAX),
            Err(NonceError::Stale)
        );
    }

    #[test]
    fn format_is_cookie_features_expiry_tag() {
        let nonce = key().issue(client(), NOW, LIFETIME);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonce.len() < 128);
        assert!(nonce.bytes().all(|b| b.is_ascii_graphic()), "{nonce}");
        // Bits 0 and 1 set: 0x000003 is "AAAD" in base64.
        assert!(nonce.starts_with("obMatJos2AAAD"), "{nonce}");
        assert_eq!(&nonce[13..29], format!("{:016x}", NOW + 600));
        assert!(has_security_features_cookie(nonce.as_bytes()));
        assert_eq!(
            security_features(nonce.as_bytes()),
            Some(SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY))
        );
    }

    /// RFC 8489 Appendix B.1's nonce announces username anonymity only
    /// (bit 1, counted from the right per erratum 6290).
    #[test]
    fn rfc8489_sample_nonce_features() {
        let nonce = b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA";
        assert!(has_security_features_cookie(nonce));
        let features = security_features(nonce).unwrap();
        assert_eq!(features, SecurityFeatures::USERNAME_ANONYMITY);
        assert!(!features.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
        // And RFC 5769's nonce has no cookie at all.
        assert!(!has_security_features_cookie(
            b"f//499k954d6OL34oL9FSTvy64sA"
        ));
        assert_eq!(key().check(nonce, client(), NOW), Err(NonceError::Invalid));
    }

    #[test]
    fn cookie_parsing_rejects_truncation_and_bad_characters() {
        assert!(!has_security_features_cookie(b""));
        assert!(!has_security_features_cookie(b"obMatJos2"));
        assert!(!has_security_features_cookie(b"obMatJos2AAA"));
        assert!(!has_security_features_cookie(b"obMatJos2AA=A"));
        assert!(!has_security_features_cookie(b"obMatJos3AAAD"));
        assert!(has_security_features_cookie(b"obMatJos2////"));
        assert_eq!(
            security_features(b"obMatJos2////").map(SecurityFeatures::bits),
            Some(0x00ff_ffff)
        );
        assert_eq!(
            security_features(b"obMatJos2gAAA").map(SecurityFeatures::bits),
            Some(0x0080_0000)
        );
    }

    #[test]
    fn with_features_changes_the_announced_set() {
        let key = key().with_features(SecurityFeatures::PASSWORD_ALGORITHMS);
        assert_eq!(key.features(), SecurityFeatures::PASSWORD_ALGORITHMS);
        let nonce = key.issue(client(), NOW, LIFETIME);
        assert!(nonce.starts_with("obMatJos2AAAB"), "{nonce}");
        assert_eq!(key.check(nonce.as_bytes(), client(), NOW), Ok(()));
        let none = NonceKey::from_bytes([7; 32]).with_features(SecurityFeatures::NONE);
        assert!(none
            .issue(client(), NOW, LIFETIME)
            .starts_with("obMatJos2AAAA"));
    }

    #[test]
    fn nonce_for_another_client_is_invalid() {
        let key = key();
        let nonce = key.issue(client(), NOW, LIFETIME);
        for other in [
            "198.51.100.7:40001",
            "198.51.100.8:40000",
            "[2001:db8::7]:40000",
            // The same 4 bytes in an IPv6 address that is not IPv4-mapped.
            "[::c633:6407]:40000",
        ] {
            let other: SocketAddr = other.parse().unwrap();
            assert_eq!(
                key.check(nonce.as_bytes(), other, NOW),
                Err(NonceError::Invalid),
                "{other}"
            );
        }
        // An IPv4-mapped view of the same client is the same client.
        let mapped: SocketAddr = "[::ffff:198.51.100.7]:40000".parse().unwrap();
        assert_eq!(key.check(nonce.as_bytes(), mapped, NOW), Ok(()));
    }

    #[test]
    fn ipv6_client() {
        let key = key();
        let client: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let nonce = key.issue(client, NOW, LIFETIME);
        assert_eq!(key.check(nonce.as_bytes(), client, NOW), Ok(()));
    }

    #[test]
    fn nonce_under_another_key_is_invalid() {
        let nonce = key().issue(client(), NOW, LIFETIME);
        let other = NonceKey::from_bytes([8; 32]);
        assert_eq!(
            other.check(nonce.as_bytes(), client(), NOW),
            Err(NonceError::Invalid)
        );
        // Even when stale: a stale verdict needs an authentic MAC.
        assert_eq!(
            other.check(nonce.as_bytes(), client(), NOW + 601),
            Err(NonceError::Invalid)
        );
    }

    #[test]
    fn random_keys_differ_and_from_bytes_is_deterministic() {
        let a = NonceKey::random().issue(client(), NOW, LIFETIME);
        let b = NonceKey::random().issue(client(), NOW, LIFETIME);
        assert_ne!(a, b);
        assert_eq!(
            key().issue(client(), NOW, LIFETIME),
            key().issue(client(), NOW, LIFETIME)
        );
    }

    #[test]
    fn every_tampered_character_is_invalid() {
        let key = key();
        let nonce = key.issue(client(), NOW, LIFETIME).into_bytes();
        for i in 0..nonce.len() {
            for replacement in [b'0', b'f', b'A', b'/', b'g', 0xff] {
                if nonce[i] == replacement {
                    continue;
                }
                let mut tampered = nonce.clone();
                tampered[i] = replacement;
                assert_eq!(
                    key.check(&tampered, client(), NOW),
                    Err(NonceError::Invalid),
                    "position {i} set to {replacement:#x}"
                );
            }
        }
    }

    /// Clearing a feature bit (a bid-down attempt, RFC 8489 §9.2.4) or pushing
    /// the expiry later both break the MAC.
    #[test]
    fn bid_down_and_extension_are_invalid() {
        let key = key();
        let nonce = key.issue(client(), NOW, LIFETIME);
        let bid_down = nonce.replacen("obMatJos2AAAD", "obMatJos2AAAA", 1);
        assert_eq!(
            key.check(bid_down.as_bytes(), client(), NOW),
            Err(NonceError::Invalid)
        );

        let later = format!("{:016x}", NOW + 6000);
        let mut extended = nonce.clone();
        extended.replace_range(13..29, &later);
        assert_eq!(
            key.check(extended.as_bytes(), client(), NOW + 700),
            Err(NonceError::Invalid)
        );
    }

    #[test]
    fn malformed_nonces_are_invalid() {
        let key = key();
        let nonce = key.issue(client(), NOW, LIFETIME);
        let upper = format!("{}{}", &nonce[..13], nonce[13..].to_uppercase());
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"obMatJos2".to_vec(),
            nonce.as_bytes()[..NONCE_LEN - 1].to_vec(),
            format!("{nonce}0").into_bytes(),
            vec![0xff; NONCE_LEN],
            vec![b'a'; NONCE_LEN],
            upper.into_bytes(),
        ];
        for case in cases {
            assert_eq!(
                key.check(&case, client(), NOW),
                Err(NonceError::Invalid),
                "{case:?}"
            );
        }
    }

    #[test]
    fn huge_lifetime_saturates() {
        let key = key();
        let nonce = key.issue(client(), NOW, Duration::MAX);
        assert!(nonce.contains("ffffffffffffffff"));
        assert_eq!(key.check(nonce.as_bytes(), client(), u64::MAX - 1), Ok(()));
    }

    #[test]
    fn debug_redacts_the_key() {
        let printed = format!("{:?}", NonceKey::from_bytes([0xab; 32]));
        assert!(printed.contains("redacted"), "{printed}");
        assert!(!printed.contains("171"), "{printed}"); // 0xab in decimal
        assert!(!printed.to_lowercase().contains("abab"), "{printed}");
    }
}
