//! The one error type of `uturn_srtp`.
//!
//! Every variant is something a caller counts or logs; none of them carries
//! packet bytes, so an error never copies attacker-controlled data around.

/// Why a packet could not be protected or unprotected, or a context built.
///
/// On any error the [`SrtpContext`](crate::SrtpContext)'s state (rollover
/// counters, replay windows, SRTCP indices) is unchanged; only the caller's
/// buffer may have been overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet is shorter than its own header, or than header plus tag.
    #[error("packet truncated")]
    Truncated,
    /// Not an RTP/RTCP version 2 packet (RFC 3550 §5.1).
    #[error("not an RTP/RTCP version 2 packet")]
    Version,
    /// The buffer has no room after the packet for the tag (and SRTCP index).
    #[error("no tailroom for the SRTP tag")]
    NoTailroom,
    /// The authentication tag did not verify (RFC 3711 §3.3 step 5, RFC 7714 §9.2).
    #[error("authentication failed")]
    Auth,
    /// The packet index was already received or is older than the replay
    /// window (RFC 3711 §3.3.2).
    #[error("replayed or too old packet")]
    Replay,
    /// A master key or salt of the wrong length for the profile.
    #[error("key or salt length does not match the profile")]
    KeyLength,
    /// The context already tracks its maximum number of SSRCs.
    #[error("too many SSRCs in one SRTP context")]
    TooManyStreams,
    /// The 48-bit SRTP index or the 31-bit SRTCP index would wrap: the
    /// session must be rekeyed (RFC 3711 §9.2).
    #[error("SRTP/SRTCP index exhausted, rekey needed")]
    IndexExhausted,
    /// The crypto backend refused an operation it should not refuse (length
    /// limits far beyond a UDP datagram).
    #[error("crypto backend failure")]
    Crypto,
}
