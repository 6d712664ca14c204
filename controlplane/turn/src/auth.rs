//! Long-term credentials (RFC 8489 §9.2) for the TURN server.
//!
//! Two kinds of users can authenticate, at the same time:
//!
//! - **Static users** (`--user NAME:PASSWORD`). Their long-term keys (RFC 8489
//!   §9.2.2: MD5 and SHA-256 of `username ":" realm ":" password`) are
//!   computed once, at construction, and the passwords are then dropped. A
//!   USERHASH index (RFC 8489 §14.4: SHA-256 of `username ":" realm`) lets a
//!   client that hides its username (username anonymity) be found.
//! - **TURN REST API ephemeral credentials** (draft-uberti-behave-turn-rest-00
//!   §2.2, as coTURN's `use-auth-secret` implements it): the username is
//!   `EXPIRY_UNIX_SECONDS[:USER]` and the password is
//!   `base64(HMAC-SHA1(secret, username))`, standard base64 with padding. The
//!   web service that hands them out and this relay share only the secret.
//!   Several secrets may be configured so one can be rotated without
//!   invalidating the credentials already handed out with the previous one.
//!
//! Usernames, realm and passwords are used exactly as configured: the
//! OpaqueString preparation of RFC 8265 that RFC 8489 §9.2.2 asks for is not
//! applied (it changes nothing for ASCII, which is what deployments use).
//!
//! Secrets, passwords and keys are never logged, and every `Debug` impl in
//! this module redacts them.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// What the operator configured.
#[derive(Clone, Default)]
pub struct CredentialsConfig {
    /// `(username, password)` pairs (`--user NAME:PASSWORD`).
    pub users: Vec<(String, String)>,
    /// REST API shared secrets (`--auth-secret`); any of them validates.
    pub secrets: Vec<String>,
}

impl fmt::Debug for CredentialsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Usernames are not secret, passwords and secrets are.
        let names: Vec<&str> = self.users.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("CredentialsConfig")
            .field("users", &names)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .finish()
    }
}

/// A long-term key in the two forms RFC 8489 §9.2.2 defines. Which one a
/// request uses depends on the PASSWORD-ALGORITHM it negotiated (MD5 also
/// being the only key RFC 5389 clients know).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LongTermKey {
    /// MD5(username ":" realm ":" password).
    pub md5: [u8; 16],
    /// SHA-256(username ":" realm ":" password).
    pub sha256: [u8; 32],
}

impl LongTermKey {
    /// Derives both keys from a username, realm and password (RFC 8489 §9.2.2).
    pub fn derive(username: &str, realm: &str, password: &str) -> Self {
        let parts = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        let mut md5 = Md5::new();
        let mut sha256 = Sha256::new();
        for part in parts {
            md5.update(part);
            sha256.update(part);
        }
        Self {
            md5: md5.finalize().into(),
            sha256: sha256.finalize().into(),
        }
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LongTermKey(<redacted>)")
    }
}

/// Why no key exists for a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Neither a static user nor a valid REST username (401).
    #[error("unknown user")]
    UnknownUser,
    /// A REST username whose expiry time has passed (401).
    #[error("REST credential expired")]
    Expired,
}

/// Keys derived from [`CredentialsConfig`] for one realm.
#[derive(Clone)]
pub struct Credentials {
    realm: String,
    /// Static users' keys by username.
    users: HashMap<String, LongTermKey>,
    /// USERHASH → username, for static users.
    userhashes: HashMap<[u8; 32], String>,
    /// One HMAC-SHA1 state per REST secret, already keyed: cloning it is
    /// cheaper than keying a fresh one per request.
    secrets: Vec<Hmac<Sha1>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .finish()
    }
}

impl Credentials {
    /// Precomputes every static user's keys and USERHASH for `realm`.
    ///
    /// When a username is configured twice, the last entry wins.
    pub fn new(config: &CredentialsConfig, realm: &str) -> Self {
        let mut users = HashMap::with_capacity(config.users.len());
        let mut userhashes = HashMap::with_capacity(config.users.len());
        for (name, password) in &config.users {
            if users
                .insert(name.clone(), LongTermKey::derive(name, realm, password))
                .is_some()
            {
                tracing::warn!(user = %name, "static user configured twice; the last entry wins");
            }
            userhashes.insert(userhash(name, realm), name.clone());
        }
        let secrets = config.secrets.iter().map(|s| rest_mac(s)).collect();
        Self {
            realm: realm.to_owned(),
            users,
            userhashes,
            secrets,
        }
    }

    /// The realm the keys were derived for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Whether TURN REST secrets are configured. USERHASH cannot name a REST
    /// user (the hash cannot be reversed into an expiry), so a server that
    /// accepts REST credentials may prefer not to advertise username
    /// anonymity in its nonces.
    pub fn has_rest_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Every key `username` may be using, at Unix time `now_unix`.
    ///
    /// One key for a static user; one per configured secret for a REST
    /// username whose expiry is still in the future. A name that is both is
    /// tried both ways (static key first).
    pub fn keys_for(&self, username: &str, now_unix: u64) -> Result<Vec<LongTermKey>, AuthError> {
        let mut keys = Vec::new();
        if let Some(key) = self.users.get(username) {
            keys.push(*key);
        }
        let mut expired = false;
        if !self.secrets.is_empty() {
            if let Some(expiry) = rest_expiry(username) {
                if expiry > now_unix {
                    keys.reserve(self.secrets.len());
                    for mac in &self.secrets {
                        let password = rest_password_with(mac.clone(), username);
                        keys.push(LongTermKey::derive(username, &self.realm, &password));
                    }
                } else {
                    expired = true;
                }
            }
        }
        match (keys.is_empty(), expired) {
            (false, _) => Ok(keys),
            (true, true) => Err(AuthError::Expired),
            (true, false) => Err(AuthError::UnknownUser),
        }
    }

    /// The static user whose USERHASH (RFC 8489 §14.4) is `userhash`.
    pub fn username_for_userhash(&self, userhash: &[u8; 32]) -> Option<&str> {
        self.userhashes.get(userhash).map(String::as_str)
    }
}

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(username.as_bytes());
    hash.update(b":");
    hash.update(realm.as_bytes());
    hash.finalize().into()
}

/// The TURN REST password for `username`: base64(HMAC-SHA1(secret, username)),
/// standard alphabet with padding (draft-uberti-behave-turn-rest-00 §2.2).
pub fn rest_password(secret: &str, username: &str) -> String {
    rest_password_with(rest_mac(secret), username)
}

/// A TURN REST username: `EXPIRY` or `EXPIRY:USER`
/// (draft-uberti-behave-turn-rest-00 §2.2).
pub fn rest_username(expiry_unix: u64, user: Option<&str>) -> String {
    match user {
        Some(user) => format!("{expiry_unix}:{user}"),
        None => expiry_unix.to_string(),
    }
}

fn rest_mac(secret: &str) -> Hmac<Sha1> {
    // HMAC takes keys of any length (RFC 2104 §2), so this cannot fail.
    <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap()
}

fn rest_password_with(mut mac: Hmac<Sha1>, username: &str) -> String {
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The expiry of a REST username, `None` when `username` is not one.
///
/// Only plain ASCII digits count: `u64::from_str` would also take a leading
/// `+`, which no REST service emits.
fn rest_expiry(username: &str) -> Option<u64> {
    let expiry = username
        .split_once(':')
        .map_or(username, |(expiry, _)| expiry);
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overflow (more than 20 digits) is not a timestamp either.
    expiry.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "example.org";

    fn config(users: &[(&str, &str)], secrets: &[&str]) -> CredentialsConfig {
        CredentialsConfig {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 5769 §2.4 "Sample Request with Long-Term Authentication": its
    /// MESSAGE-INTEGRITY must verify under our MD5 key for username
    /// "マトリックス", realm "example.org", password "TheMatrIX" (the RFC
    /// gives the password after SASLprep).
    #[test]
    fn rfc5769_long_term_key_verifies_sample_request() {
        const REQUEST: [u8; 116] = [
            0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
            0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e, // header
            0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3,
            0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, // USERNAME
            0x00, 0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34,
            0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79,
            0x36, 0x34, 0x73, 0x41, // NONCE
            0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
            0x67, 0x00, // REALM
            0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8,
            0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66, // MESSAGE-INTEGRITY
        ];
        let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let creds = Credentials::new(&config(&[(username, "TheMatrIX")], &[]), REALM);
        let keys = creds.keys_for(username, 0).unwrap();
        assert_eq!(keys.len(), 1);

        // MESSAGE-INTEGRITY is last and there is no FINGERPRINT, so the HMAC
        // covers every byte before the attribute, header length as sent.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&keys[0].md5).unwrap();
        mac.update(&REQUEST[..92]);
        assert_eq!(mac.finalize().into_bytes().as_slice(), &REQUEST[96..]);

        // A wrong password gives a key that does not verify.
        let wrong = Credentials::new(&config(&[(username, "TheMatrix")], &[]), REALM);
        let key = wrong.keys_for(username, 0).unwrap()[0];
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key.md5).unwrap();
        mac.update(&REQUEST[..92]);
        assert_ne!(mac.finalize().into_bytes().as_slice(), &REQUEST[96..]);
    }

    /// RFC 8489 Appendix B.1 as corrected by erratum 6268 (the printed
    /// vector is wrong): the request with PASSWORD-ALGORITHM SHA-256, whose
    /// MESSAGE-INTEGRITY-SHA256 must verify under our SHA-256 key.
    #[test]
    fn rfc8489_sha256_key_verifies_sample_request() {
        const REQUEST: [u8; 164] = [
            0x00, 0x01, 0x00, 0x90, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
            0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e, // header
            0x00, 0x1e, 0x00, 0x20, 0x4a, 0x3c, 0xf3, 0x8f, 0xef, 0x69, 0x92, 0xbd, 0xa9, 0x52,
            0xc6, 0x78, 0x04, 0x17, 0xda, 0x0f, 0x24, 0x81, 0x94, 0x15, 0x56, 0x9e, 0x60, 0xb2,
            0x05, 0xc4, 0x6e, 0x41, 0x40, 0x7f, 0x17, 0x04, // USERHASH
            0x00, 0x15, 0x00, 0x29, 0x6f, 0x62, 0x4d, 0x61, 0x74, 0x4a, 0x6f, 0x73, 0x32, 0x41,
            0x41, 0x41, 0x43, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64,
            0x36, 0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36,
            0x34, 0x73, 0x41, 0x00, 0x00, 0x00, // NONCE
            0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
            0x67, 0x00, // REALM
            0x00, 0x1d, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, // PASSWORD-ALGORITHM: SHA-256
            0x00, 0x1c, 0x00, 0x20, 0xb5, 0xc7, 0xbf, 0x00, 0x5b, 0x6c, 0x52, 0xa2, 0x1c, 0x51,
            0xc5, 0xe8, 0x92, 0xf8, 0x19, 0x24, 0x13, 0x62, 0x96, 0xcb, 0x92, 0x7c, 0x43, 0x14,
            0x93, 0x09, 0x27, 0x8c, 0xc6, 0x51, 0x8e, 0x65, // MESSAGE-INTEGRITY-SHA256
        ];
        let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let creds = Credentials::new(&config(&[(username, "TheMatrIX")], &[]), REALM);

        // The client sent USERHASH: find the user by it first.
        let userhash: [u8; 32] = REQUEST[24..56].try_into().unwrap();
        assert_eq!(creds.username_for_userhash(&userhash), Some(username));
        let key = creds.keys_for(username, 0).unwrap()[0];

        let mac = |key: &[u8]| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            mac.update(&REQUEST[..128]);
            mac.finalize().into_bytes()
        };
        assert_eq!(mac(&key.sha256).as_slice(), &REQUEST[132..]);
        // The MD5 key is not the one this request was signed with.
        assert_ne!(mac(&key.md5).as_slice(), &REQUEST[132..]);
    }

    /// RFC 8489 Appendix B.1: the USERHASH of "マトリックス" in "example.org".
    #[test]
    fn rfc8489_userhash_vector() {
        let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let expected: [u8; 32] = [
            0x4a, 0x3c, 0xf3, 0x8f, 0xef, 0x69, 0x92, 0xbd, 0xa9, 0x52, 0xc6, 0x78, 0x04, 0x17,
            0xda, 0x0f, 0x24, 0x81, 0x94, 0x15, 0x56, 0x9e, 0x60, 0xb2, 0x05, 0xc4, 0x6e, 0x41,
            0x40, 0x7f, 0x17, 0x04,
        ];
        assert_eq!(userhash(username, REALM), expected);

        let creds = Credentials::new(
            &config(&[(username, "TheMatrIX"), ("bob", "x")], &[]),
            REALM,
        );
        assert_eq!(creds.username_for_userhash(&expected), Some(username));
        assert_eq!(
            creds.username_for_userhash(&userhash("bob", REALM)),
            Some("bob")
        );
        assert_eq!(
            creds.username_for_userhash(&userhash("bob", "other.org")),
            None
        );
        assert_eq!(creds.username_for_userhash(&[0; 32]), None);
    }

    /// Both key forms of RFC 8489 §9.2.2 (expected values from Python's
    /// hashlib over "alice:example.org:s3cret").
    #[test]
    fn static_user_keys() {
        let creds = Credentials::new(&config(&[("alice", "s3cret")], &[]), REALM);
        let keys = creds.keys_for("alice", 1_700_000_000).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].md5.to_vec(),
            hex("8b83b40c22906c0c67a3c5bcc491bc14")
        );
        assert_eq!(
            keys[0].sha256.to_vec(),
            hex("f22052fea8541d9a84dc48aa41b20e65023c376e463bc39e716fac6e0f0f7a5f")
        );
        assert_eq!(creds.keys_for("mallory", 0), Err(AuthError::UnknownUser));
        assert_eq!(creds.keys_for("", 0), Err(AuthError::UnknownUser));
    }

    /// HMAC-SHA1 with key "key" over "The quick brown fox jumps over the lazy
    /// dog" is de7c9b85…1c9db4d9 (the example on Wikipedia's HMAC page);
    /// the password is its standard base64 with padding, as coTURN expects.
    #[test]
    fn rest_password_is_base64_hmac_sha1() {
        assert_eq!(
            rest_password("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
    }

    #[test]
    fn rest_username_format() {
        assert_eq!(rest_username(1_700_000_000, None), "1700000000");
        assert_eq!(
            rest_username(1_700_000_000, Some("alice")),
            "1700000000:alice"
        );
        // A user part with colons stays whole: only the first colon splits.
        assert_eq!(rest_expiry(&rest_username(42, Some("a:b"))), Some(42));
    }

    #[test]
    fn rest_credentials_validate_until_expiry() {
        let creds = Credentials::new(&config(&[], &["topsecret"]), REALM);
        let now = 1_700_000_000;
        for user in [None, Some("alice")] {
            let username = rest_username(now + 60, user);
            let password = rest_password("topsecret", &username);
            let keys = creds.keys_for(&username, now).unwrap();
            assert_eq!(keys, vec![LongTermKey::derive(&username, REALM, &password)]);

            // Expiry is exclusive: at the expiry second the credential is dead.
            assert_eq!(creds.keys_for(&username, now + 60), Err(AuthError::Expired));
            assert_eq!(creds.keys_for(&username, now + 61), Err(AuthError::Expired));
            assert!(creds.keys_for(&username, now + 59).is_ok());
        }
    }

    #[test]
    fn rest_password_from_wrong_secret_does_not_match() {
        let creds = Credentials::new(&config(&[], &["topsecret"]), REALM);
        let username = rest_username(2_000_000_000, Some("alice"));
        let forged = LongTermKey::derive(&username, REALM, &rest_password("guess", &username));
        let keys = creds.keys_for(&username, 0).unwrap();
        assert!(!keys.contains(&forged));
    }

    #[test]
    fn secret_rotation_yields_one_key_per_secret() {
        let creds = Credentials::new(&config(&[], &["old", "new"]), REALM);
        let username = rest_username(2_000_000_000, Some("alice"));
        let keys = creds.keys_for(&username, 0).unwrap();
        assert_eq!(keys.len(), 2);
        for secret in ["old", "new"] {
            let key = LongTermKey::derive(&username, REALM, &rest_password(secret, &username));
            assert!(keys.contains(&key), "key for secret {secret} missing");
        }
    }

    #[test]
    fn non_numeric_expiry_is_not_a_rest_username() {
        let creds = Credentials::new(&config(&[], &["s"]), REALM);
        for name in [
            "alice",
            "12a4:bob",
            "+1999999999",
            ":alice",
            "",
            "99999999999999999999999",
        ] {
            assert_eq!(
                creds.keys_for(name, 0),
                Err(AuthError::UnknownUser),
                "{name:?}"
            );
        }
    }

    #[test]
    fn rest_username_without_secrets_is_unknown() {
        let creds = Credentials::new(&config(&[("alice", "pw")], &[]), REALM);
        assert!(!creds.has_rest_secrets());
        assert_eq!(
            creds.keys_for("2000000000:alice", 0),
            Err(AuthError::UnknownUser)
        );
    }

    #[test]
    fn static_users_and_rest_secrets_together() {
        // "2000000000" is both a static user and a valid REST username.
        let creds = Credentials::new(
            &config(
                &[("alice", "pw"), ("2000000000", "static-pw")],
                &["s1", "s2"],
            ),
            REALM,
        );
        assert!(creds.has_rest_secrets());
        assert_eq!(
            creds.keys_for("alice", 0).unwrap(),
            vec![LongTermKey::derive("alice", REALM, "pw")]
        );

        let both = creds.keys_for("2000000000", 0).unwrap();
        assert_eq!(both.len(), 3);
        assert_eq!(
            both[0],
            LongTermKey::derive("2000000000", REALM, "static-pw")
        );
        assert!(both.contains(&LongTermKey::derive(
            "2000000000",
            REALM,
            &rest_password("s2", "2000000000")
        )));

        // Once expired as a REST name, the static key alone remains.
        let late = creds.keys_for("2000000000", 2_000_000_000).unwrap();
        assert_eq!(
            late,
            vec![LongTermKey::derive("2000000000", REALM, "static-pw")]
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = config(&[("alice", "hunter2")], &["topsecret"]);
        let creds = Credentials::new(&config, REALM);
        let key = creds.keys_for("alice", 0).unwrap()[0];
        let printed = format!("{config:?} {creds:?} {key:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("alice"), "{printed}");
        let md5_hex: String = key.md5.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!printed.contains(&md5_hex));
        assert!(!printed.contains(&format!("{:?}", key.md5)));
    }
}
