//! The one error type of the crate: every way an RTP or RTCP buffer can be
//! rejected, and every way a writer can refuse its input.

/// Why a packet was rejected or could not be written.
///
/// Parsers return these for any malformed input; nothing in this crate
/// panics on bytes from the network. The media engine counts them as
/// "malformed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the header, a length field or a list says it should.
    #[error("packet truncated")]
    Truncated,
    /// The version field is not 2 (RFC 3550 §5.1, §6.4.1).
    #[error("RTP/RTCP version is not 2")]
    BadVersion,
    /// The padding count is zero or larger than the packet (RFC 3550 §5.1, §6.4.1).
    #[error("bad padding length")]
    BadPadding,
    /// An RTCP packet's length field or report count does not fit the packet
    /// (RFC 3550 §6.4), or a feedback message is shorter than its format needs
    /// (RFC 4585 §6.1).
    #[error("bad RTCP length")]
    BadLength,
    /// The destination buffer cannot hold the packet being written.
    #[error("destination buffer too small")]
    BufferTooSmall,
    /// More report blocks than the 5-bit count field can say (31, RFC 3550 §6.4.1).
    #[error("too many report blocks")]
    TooManyReports,
    /// A generic NACK needs at least one lost packet (RFC 4585 §6.2.1).
    #[error("empty NACK list")]
    EmptyNack,
    /// An SDES item is at most 255 octets (RFC 3550 §6.5).
    #[error("SDES item longer than 255 octets")]
    ItemTooLong,
    /// The rewritten header-extension block would be longer than its 16-bit
    /// length field allows (RFC 3550 §5.3.1).
    #[error("header extension too long")]
    ExtensionTooLong,
}
