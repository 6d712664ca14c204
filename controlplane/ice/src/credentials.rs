//! ICE username fragments and passwords (RFC 8445 §5.3, RFC 8839 §5.4).
//!
//! Each side of a session picks a ufrag and a password and sends them in
//! its SDP (`a=ice-ufrag`, `a=ice-pwd`). Connectivity checks are
//! authenticated with STUN's short-term credential mechanism (RFC 8489
//! §9.1): USERNAME is `receiver-ufrag ":" sender-ufrag`, and
//! MESSAGE-INTEGRITY is keyed with the receiver's password.
//!
//! RFC 8445 §5.3 asks for at least 24 bits of randomness in the ufrag and
//! 128 in the password; RFC 8839 §5.4 limits both to `ice-char`s (ALPHA /
//! DIGIT / "+" / "/"), the ufrag to 4–256 characters and the password to
//! 22–256. Each ice-char carries 6 bits.

use core::fmt;

use rand::Rng;

/// The 64 `ice-char`s (RFC 8839 §5.4).
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Length of a generated ufrag: 8 × 6 = 48 random bits, twice the minimum
/// of RFC 8445 §5.3, so that the listener's ufrag → session map of a busy
/// relay is very unlikely to see two sessions draw the same one.
pub const GENERATED_UFRAG_LEN: usize = 8;

/// Length of a generated password: 24 × 6 = 144 random bits (RFC 8445 §5.3
/// asks for at least 128).
pub const GENERATED_PWD_LEN: usize = 24;

/// Shortest ufrag allowed (RFC 8839 §5.4).
pub const MIN_UFRAG_LEN: usize = 4;

/// Shortest password allowed (RFC 8839 §5.4).
pub const MIN_PWD_LEN: usize = 22;

/// Longest ufrag or password allowed (RFC 8839 §5.4). Two ufrags and a
/// colon then fit USERNAME's 513 bytes (RFC 8489 §14.3).
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// Why a ufrag or password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The ufrag is not 4–256 ice-chars.
    #[error("ice-ufrag must be 4 to 256 ice-chars (ALPHA / DIGIT / + / /)")]
    BadUfrag,
    /// The password is not 22–256 ice-chars.
    #[error("ice-pwd must be 22 to 256 ice-chars (ALPHA / DIGIT / + / /)")]
    BadPwd,
}

/// One side's ICE credentials: `a=ice-ufrag` and `a=ice-pwd`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    ufrag: String,
    pwd: String,
}

impl Credentials {
    /// Checks credentials received in SDP (or configured).
    pub fn new(ufrag: &str, pwd: &str) -> Result<Credentials, CredentialsError> {
        if !is_ice_string(ufrag, MIN_UFRAG_LEN) {
            return Err(CredentialsError::BadUfrag);
        }
        if !is_ice_string(pwd, MIN_PWD_LEN) {
            return Err(CredentialsError::BadPwd);
        }
        Ok(Credentials {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }

    /// Fresh local credentials from the thread's CSPRNG (ChaCha, seeded
    /// from the OS).
    pub fn random() -> Credentials {
        Credentials::random_from(&mut rand::thread_rng())
    }

    /// Fresh local credentials drawn from `rng`, which must be a
    /// cryptographically secure generator outside tests: the password is
    /// the only secret of the session.
    pub fn random_from<R: Rng + ?Sized>(rng: &mut R) -> Credentials {
        Credentials {
            ufrag: random_ice_string(rng, GENERATED_UFRAG_LEN),
            pwd: random_ice_string(rng, GENERATED_PWD_LEN),
        }
    }

    /// The username fragment (`a=ice-ufrag`).
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The password (`a=ice-pwd`).
    pub fn pwd(&self) -> &str {
        &self.pwd
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password keys every check of the session: keep it out of logs.
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}

fn is_ice_string(s: &str, min: usize) -> bool {
    (min..=MAX_CREDENTIAL_LEN).contains(&s.len()) && s.bytes().all(|b| ICE_CHARS.contains(&b))
}

fn random_ice_string<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| {
            // 64 characters: an index below 64 is uniform and in bounds.
            let i = rng.gen_range(0..ICE_CHARS.len());
            char::from(ICE_CHARS[i])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn generated_credentials_are_valid_and_long_enough() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let c = Credentials::random_from(&mut rng);
            // 6 bits per ice-char: ≥ 24 bits of ufrag, ≥ 128 of password (RFC 8445 §5.3).
            assert!(c.ufrag().len() * 6 >= 24);
            assert!(c.pwd().len() * 6 >= 128);
            assert_eq!(Credentials::new(c.ufrag(), c.pwd()), Ok(c.clone()));
        }
    }

    #[test]
    fn generated_credentials_differ() {
        let mut rng = StdRng::seed_from_u64(1);
        let ufrags: HashSet<_> = (0..1000)
            .map(|_| Credentials::random_from(&mut rng).ufrag)
            .collect();
        assert_eq!(ufrags.len(), 1000);
        let a = Credentials::random();
        let b = Credentials::random();
        assert_ne!(a.pwd(), b.pwd());
    }

    #[test]
    fn every_ice_char_gets_drawn() {
        let mut rng = StdRng::seed_from_u64(3);
        let seen: HashSet<u8> = (0..200)
            .flat_map(|_| Credentials::random_from(&mut rng).pwd.into_bytes())
            .collect();
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn received_credentials_are_checked() {
        let pwd = "asd88fgpdd777uzjYhagZg";
        assert!(Credentials::new("8hhY", pwd).is_ok());
        assert_eq!(
            Credentials::new("8hh", pwd),
            Err(CredentialsError::BadUfrag)
        );
        assert_eq!(
            Credentials::new("8hh:Y", pwd),
            Err(CredentialsError::BadUfrag)
        );
        assert_eq!(
            Credentials::new(&"u".repeat(257), pwd),
            Err(CredentialsError::BadUfrag)
        );
        assert!(Credentials::new(&"u".repeat(256), pwd).is_ok());
        assert_eq!(
            Credentials::new("8hhY", &pwd[1..]),
            Err(CredentialsError::BadPwd)
        );
        assert_eq!(
            Credentials::new("8hhY", "asd88fgpdd777uzjYhagZ\u{e9}"),
            Err(CredentialsError::BadPwd)
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("abcd", "0123456789012345678901").unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("abcd"));
        assert!(!shown.contains("0123456789"));
    }
}
