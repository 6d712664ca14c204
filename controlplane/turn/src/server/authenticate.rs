//! The long-term credential mechanism, server side (RFC 8489 §9.2.4).
//!
//! The checks run in the RFC's order:
//!
//! 1. No MESSAGE-INTEGRITY(-SHA256): 401 with REALM, NONCE and
//!    PASSWORD-ALGORITHMS — the challenge every client expects first.
//! 2. Missing USERNAME/USERHASH, REALM or NONCE: 400.
//! 3. Bid-down protection: when the NONCE starts with the `obMatJos2`
//!    cookie announcing password algorithms, either neither
//!    PASSWORD-ALGORITHMS nor PASSWORD-ALGORITHM is present (MD5 is used),
//!    or both are, PASSWORD-ALGORITHMS equals the list we sent and
//!    PASSWORD-ALGORITHM is in it; anything else is 400. Because our nonces
//!    are stateless, "the list we sent" is the one list we always send.
//! 4. Unknown user (or USERHASH), wrong realm, expired REST credential: 401.
//! 5. The integrity check with the key PASSWORD-ALGORITHM selects (each
//!    configured key is tried: a REST username validates under any current
//!    secret): 401 on mismatch. MESSAGE-INTEGRITY-SHA256 is checked when
//!    present, MESSAGE-INTEGRITY otherwise.
//! 6. The NONCE: expired → 438 with a fresh one; not ours or not for this
//!    client address → 401 with a fresh one.
//!
//! No check keeps any state: a flood of unauthenticated requests costs CPU
//! (one HMAC per nonce issued) but no memory.

use std::net::SocketAddr;

use uturn_stun::attribute::{Attribute, AttributeType, PasswordAlgorithmId, PasswordAlgorithms};
use uturn_stun::message::Message;

use super::response::{Integrity, KeyBytes, MacKind, RequestError};
use crate::auth::{AuthError, LongTermKey};
use crate::nonce::{self, NonceError, NonceKey, SecurityFeatures};
use crate::ServerConfig;

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The USERNAME, or the name its USERHASH stands for.
    pub(crate) username: String,
    pub(crate) integrity: Integrity,
}

/// A request that did not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthFailure {
    pub(crate) error: RequestError,
    /// Answer with REALM, a fresh NONCE and PASSWORD-ALGORITHMS.
    pub(crate) challenge: bool,
    /// Counts in `Stats::auth_failures` (the first, expected 401 and the
    /// routine 438 do not).
    pub(crate) counted: bool,
}

impl AuthFailure {
    fn challenge(reason: &'static str, counted: bool) -> Self {
        AuthFailure {
            error: RequestError::Unauthenticated(reason),
            challenge: true,
            counted,
        }
    }

    fn bad_request(reason: &'static str) -> Self {
        AuthFailure {
            error: RequestError::BadRequest(reason),
            challenge: false,
            counted: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

enum User<'a> {
    Name(&'a str),
    Hash(&'a [u8; 32]),
}

/// Runs RFC 8489 §9.2.4 on `msg` from `client`.
pub(crate) fn authenticate(
    msg: &Message<'_>,
    client: SocketAddr,
    config: &ServerConfig,
    nonce_key: &NonceKey,
    now_unix: u64,
) -> Result<Authenticated, AuthFailure> {
    let mac = if msg
        .attribute(AttributeType::MESSAGE_INTEGRITY_SHA256)
        .is_some()
    {
        MacKind::Sha256
    } else if msg.attribute(AttributeType::MESSAGE_INTEGRITY).is_some() {
        MacKind::Sha1
    } else {
        return Err(AuthFailure::challenge("no message integrity", false));
    };

    let tid = msg.transaction_id();
    let decode = |typ| msg.attribute(typ).map(|raw| Attribute::decode(raw, &tid));
    let user = match (
        decode(AttributeType::USERNAME),
        decode(AttributeType::USERHASH),
    ) {
        (Some(Ok(Attribute::Username(name))), _) => User::Name(name),
        (None, Some(Ok(Attribute::Userhash(hash)))) => User::Hash(hash),
        (None, None) => return Err(AuthFailure::bad_request("no USERNAME or USERHASH")),
        _ => return Err(AuthFailure::bad_request("malformed USERNAME or USERHASH")),
    };
    let realm = match decode(AttributeType::REALM) {
        Some(Ok(Attribute::Realm(realm))) => realm,
        None => return Err(AuthFailure::bad_request("no REALM")),
        _ => return Err(AuthFailure::bad_request("malformed REALM")),
    };
    let nonce = match decode(AttributeType::NONCE) {
        Some(Ok(Attribute::Nonce(nonce))) => nonce,
        None => return Err(AuthFailure::bad_request("no NONCE")),
        _ => return Err(AuthFailure::bad_request("malformed NONCE")),
    };
    let algorithm = negotiated_algorithm(msg, nonce).map_err(AuthFailure::bad_request)?;

    if realm != config.realm {
        return Err(AuthFailure::challenge("wrong realm", true));
    }
    let username = match user {
        User::Name(name) => name,
        User::Hash(hash) => config
            .credentials
            .username_for_userhash(hash)
            .ok_or(AuthFailure::challenge("unknown USERHASH", true))?,
    };
    let keys = config
        .credentials
        .keys_for(username, now_unix)
        .map_err(|e| match e {
            AuthError::Expired => AuthFailure::challenge("credential expired", true),
            _ => AuthFailure::challenge("unknown user", true),
        })?;

    let key = keys
        .iter()
        .map(|k| select_key(k, algorithm))
        .find(|key| match mac {
            MacKind::Sha256 => msg.check_integrity_sha256(key.as_slice()).is_ok(),
            MacKind::Sha1 => msg.check_integrity(key.as_slice()).is_ok(),
        })
        .ok_or(AuthFailure::challenge("integrity check failed", true))?;

    match nonce_key.check(nonce.as_bytes(), client, now_unix) {
        Ok(()) => {}
        Err(NonceError::Stale) => {
            return Err(AuthFailure {
                error: RequestError::StaleNonce,
                challenge: true,
                counted: false,
            })
        }
        Err(_) => return Err(AuthFailure::challenge("invalid nonce", true)),
    }
    Ok(Authenticated {
        username: username.to_owned(),
        integrity: Integrity { key, mac },
    })
}

/// Step 3 of the checks above: which password algorithm the request uses.
fn negotiated_algorithm(msg: &Message<'_>, nonce: &str) -> Result<Algorithm, &'static str> {
    let tid = msg.transaction_id();
    let offered = match msg
        .attribute(AttributeType::PASSWORD_ALGORITHMS)
        .map(|raw| Attribute::decode(raw, &tid))
    {
        Some(Ok(Attribute::PasswordAlgorithms(list))) => Some(list),
        None => None,
        _ => return Err("malformed PASSWORD-ALGORITHMS"),
    };
    let chosen = match msg
        .attribute(AttributeType::PASSWORD_ALGORITHM)
        .map(|raw| Attribute::decode(raw, &tid))
    {
        Some(Ok(Attribute::PasswordAlgorithm(alg))) => Some(alg),
        None => None,
        _ => return Err("malformed PASSWORD-ALGORITHM"),
    };
    let protected = nonce::security_features(nonce.as_bytes())
        .is_some_and(|f| f.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
    if !protected {
        // Not a nonce announcing password algorithms (an RFC 5389 client,
        // or not our nonce at all, which the nonce check refuses later).
        return Ok(match chosen {
            Some(alg) if alg.algorithm == PasswordAlgorithmId::SHA256 => Algorithm::Sha256,
            _ => Algorithm::Md5,
        });
    }
    match (offered, chosen) {
        (None, None) => Ok(Algorithm::Md5),
        (Some(offered), Some(chosen)) => {
            if offered != PasswordAlgorithms::MD5_AND_SHA256 {
                return Err("PASSWORD-ALGORITHMS differs from what was offered");
            }
            if !chosen.parameters.is_empty() {
                return Err("PASSWORD-ALGORITHM has parameters");
            }
            match chosen.algorithm {
                PasswordAlgorithmId::MD5 => Ok(Algorithm::Md5),
                PasswordAlgorithmId::SHA256 => Ok(Algorithm::Sha256),
                _ => Err("PASSWORD-ALGORITHM not among those offered"),
            }
        }
        _ => Err("only one of PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM"),
    }
}

fn select_key(key: &LongTermKey, algorithm: Algorithm) -> KeyBytes {
    match algorithm {
        Algorithm::Md5 => KeyBytes::Md5(key.md5),
        Algorithm::Sha256 => KeyBytes::Sha256(key.sha256),
    }
}
