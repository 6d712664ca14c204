//! Error codes and response encoding.
//!
//! Every reason a request fails is a [`RequestError`], mapped to its STUN
//! error code in one place ([`RequestError::code`]; codes from RFC 8489
//! §14.8 and RFC 8656 §19). [`Reply`] writes a response the way RFC 8489
//! §6.3 and §9.2.4 want it: the method's attributes, SOFTWARE (§14.14) when
//! configured, MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 with the
//! request's key when the request was authenticated, and FINGERPRINT when
//! the request carried one (§7.3: answer in kind).

use uturn_stun::attribute::{Attribute, AttributeType, UnknownAttributes};
use uturn_stun::message::{Class, Method, TransactionId};
use uturn_stun::MessageBuilder;

/// Why a request is refused, one variant per STUN error code we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// 400: missing or malformed attribute, or a combination the RFC forbids.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 401: no or wrong credentials (RFC 8489 §9.2.4).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// 403: the peer filter refuses the peer (RFC 8656 §10.2, §12.2).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 420: comprehension-required attributes we do not know (RFC 8489 §7.3.1).
    #[error("unknown comprehension-required attribute")]
    UnknownAttribute,
    /// 437: Allocate on a 5-tuple that has one, or anything else on one that has none.
    #[error("allocation mismatch")]
    AllocationMismatch,
    /// 438: the nonce expired (RFC 8489 §9.2.4).
    #[error("stale nonce")]
    StaleNonce,
    /// 440: the relay has no address of the requested family (RFC 8656 §7.2).
    #[error("address family not supported")]
    AddressFamilyNotSupported,
    /// 441: a username other than the allocation's (RFC 8656 §5).
    #[error("wrong credentials")]
    WrongCredentials,
    /// 442: REQUESTED-TRANSPORT other than UDP (RFC 8656 §7.2).
    #[error("unsupported transport protocol")]
    UnsupportedTransport,
    /// 443: a peer or family the allocation does not have (RFC 8656 §8.2, §10.2, §12.2).
    #[error("peer address family mismatch")]
    PeerAddressFamilyMismatch,
    /// 486: per-user or relay-wide quota (RFC 8656 §7.2).
    #[error("allocation quota reached")]
    QuotaReached,
    /// 508: no relay port, reservation token unusable, or a table is full.
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(&'static str),
}

impl RequestError {
    /// The STUN error code.
    pub fn code(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::Unauthenticated(_) => 401,
            RequestError::Forbidden(_) => 403,
            RequestError::UnknownAttribute => 420,
            RequestError::AllocationMismatch => 437,
            RequestError::StaleNonce => 438,
            RequestError::AddressFamilyNotSupported => 440,
            RequestError::WrongCredentials => 441,
            RequestError::UnsupportedTransport => 442,
            RequestError::PeerAddressFamilyMismatch => 443,
            RequestError::QuotaReached => 486,
            RequestError::InsufficientCapacity(_) => 508,
        }
    }

    /// The reason phrase the RFCs suggest.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::BadRequest(_) => "Bad Request",
            RequestError::Unauthenticated(_) => "Unauthenticated",
            RequestError::Forbidden(_) => "Forbidden",
            RequestError::UnknownAttribute => "Unknown Attribute",
            RequestError::AllocationMismatch => "Allocation Mismatch",
            RequestError::StaleNonce => "Stale Nonce",
            RequestError::AddressFamilyNotSupported => "Address Family not Supported",
            RequestError::WrongCredentials => "Wrong Credentials",
            RequestError::UnsupportedTransport => "Unsupported Transport Protocol",
            RequestError::PeerAddressFamilyMismatch => "Peer Address Family Mismatch",
            RequestError::QuotaReached => "Allocation Quota Reached",
            RequestError::InsufficientCapacity(_) => "Insufficient Capacity",
        }
    }
}

/// The long-term key a request was authenticated with, in the form its
/// PASSWORD-ALGORITHM selected (RFC 8489 §9.2.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyBytes {
    Md5([u8; 16]),
    Sha256([u8; 32]),
}

impl KeyBytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Md5(k) => k,
            KeyBytes::Sha256(k) => k,
        }
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: never in logs.
        match self {
            KeyBytes::Md5(_) => f.write_str("KeyBytes::Md5(<redacted>)"),
            KeyBytes::Sha256(_) => f.write_str("KeyBytes::Sha256(<redacted>)"),
        }
    }
}

/// Which integrity attribute the request used, so the response uses it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacKind {
    /// MESSAGE-INTEGRITY, HMAC-SHA1 (RFC 8489 §14.5).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    Sha256,
}

/// How to sign responses to an authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Integrity {
    pub(crate) key: KeyBytes,
    pub(crate) mac: MacKind,
}

/// Everything needed to answer one request, kept while an Allocate waits
/// for its relay socket.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) tid: TransactionId,
    pub(crate) method: Method,
    pub(crate) integrity: Option<Integrity>,
    pub(crate) fingerprint: bool,
}

impl Reply {
    /// A success response with `attributes`.
    pub(crate) fn success(
        &self,
        software: Option<&str>,
        attributes: &[Attribute<'_>],
    ) -> Option<Vec<u8>> {
        self.write(Class::Success, software, None, attributes)
    }

    /// An error response for `error`, with `attributes` after ERROR-CODE.
    pub(crate) fn error(
        &self,
        software: Option<&str>,
        error: &RequestError,
        attributes: &[Attribute<'_>],
    ) -> Option<Vec<u8>> {
        self.write(Class::Error, software, Some(error), attributes)
    }

    /// A 420 listing the unknown attributes (RFC 8489 §14.13).
    pub(crate) fn unknown_attributes(
        &self,
        software: Option<&str>,
        unknown: &[AttributeType],
    ) -> Option<Vec<u8>> {
        let list = Attribute::UnknownAttributes(UnknownAttributes::from_list(unknown));
        self.error(software, &RequestError::UnknownAttribute, &[list])
    }

    fn write(
        &self,
        class: Class,
        software: Option<&str>,
        error: Option<&RequestError>,
        attributes: &[Attribute<'_>],
    ) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(160);
        let mut msg = MessageBuilder::new(&mut out, class, self.method, self.tid);
        let written = (|| {
            if let Some(error) = error {
                msg.add(&Attribute::ErrorCode {
                    code: error.code(),
                    reason: error.reason(),
                })?;
            }
            for attribute in attributes {
                msg.add(attribute)?;
            }
            if let Some(software) = software {
                // An over-long configured SOFTWARE is left out rather than
                // costing the response (a failed add changes nothing).
                if let Err(e) = msg.add(&Attribute::Software(software)) {
                    tracing::debug!(error = %e, "SOFTWARE not added");
                }
            }
            match self.integrity {
                Some(Integrity {
                    key,
                    mac: MacKind::Sha1,
                }) => msg.message_integrity(key.as_slice())?,
                Some(Integrity {
                    key,
                    mac: MacKind::Sha256,
                }) => msg.message_integrity_sha256(key.as_slice())?,
                None => {}
            }
            if self.fingerprint {
                msg.fingerprint()?;
            }
            Ok::<(), uturn_stun::Error>(())
        })();
        match written {
            Ok(()) => {
                msg.finish();
                Some(out)
            }
            Err(e) => {
                // Only our own values go in, so this is a bug, not an attack.
                tracing::warn!(error = %e, method = self.method.0, "could not encode a response");
                None
            }
        }
    }
}
