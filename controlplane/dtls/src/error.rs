//! Why a DTLS association failed, or why a datagram was refused.

/// A DTLS error. [`Error::Malformed`] refuses one datagram and
/// [`Error::Closed`] says the association was already over; every other
/// variant ends the association and is reported once as `Event::Failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's certificate does not hash to the fingerprint its SDP
    /// announced (RFC 8122 §5; RFC 8827 §6.5).
    #[error("the peer's certificate does not match the SDP fingerprint")]
    FingerprintMismatch,
    /// The peer offered (or, as a server, chose) no SRTP profile we
    /// allow, or did not negotiate `use_srtp` at all (RFC 5764 §4.1.1).
    #[error("no common SRTP protection profile")]
    NoCommonProfile,
    /// The handshake did not finish within [`crate::HANDSHAKE_TIMEOUT`].
    #[error("DTLS handshake timed out")]
    HandshakeTimeout,
    /// The datagram is not a sequence of well-formed DTLS 1.2 records
    /// (RFC 6347 §4.1). The association is not affected.
    #[error("malformed DTLS datagram")]
    Malformed,
    /// The association was already closed or had failed.
    #[error("the DTLS association is closed")]
    Closed,
    /// A fatal DTLS protocol error reported by dimpl.
    #[error("DTLS protocol error: {0}")]
    Protocol(String),
    /// Generating or using a certificate failed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The configuration cannot work (for example no SRTP profile that
    /// both dimpl and uturn-srtp implement).
    #[error("invalid DTLS configuration: {0}")]
    Config(String),
}
