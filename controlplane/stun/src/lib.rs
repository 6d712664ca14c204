//! STUN and TURN wire formats as typed views over byte slices.
//!
//! This crate is the only place in uturn that knows how STUN (RFC 8489) and
//! TURN (RFC 8656) messages look on the wire. It has no I/O, reads no clock
//! and allocates nothing on the per-packet paths: every parser borrows the
//! datagram it was given, every writer appends to or fills a buffer the
//! caller owns.
//!
//! | module           | what                                                  | RFC sections                          |
//! |------------------|-------------------------------------------------------|---------------------------------------|
//! | [`message`]      | checked [`Message`] view, class/method, integrity     | RFC 8489 §5, §6, §14.5–§14.7          |
//! | [`attribute`]    | attribute types and the decoded [`Attribute`] enum    | RFC 8489 §14, RFC 8656 §18, RFC 8445 §16.1 |
//! | [`builder`]      | [`MessageBuilder`] writing into a caller's `Vec<u8>`  | RFC 8489 §5, §14                      |
//! | [`integrity`]    | long-term credential keys                             | RFC 8489 §9.2.2, §14.4                |
//! | [`channel_data`] | ChannelData framing                                   | RFC 8656 §12.4, RFC 5766 §11.4        |
//! | [`demux`]        | first-byte classification of a datagram               | RFC 7983 §7 (and its update, 7983bis) |
//! | [`fastpath`]     | Send/Data indications for the dataplane               | RFC 8656 §11.2, §11.3                 |
//! | [`rfc5769`]      | the RFC 5769 test vectors, for tests and benchmarks   | RFC 5769 §2                           |
//!
//! Untrusted input flows through two steps, like smoltcp's `new_checked`:
//! [`Message::parse`] checks the framing once (header, magic cookie, length,
//! every attribute TLV in bounds), then [`Attribute::decode`] checks one
//! attribute's value when the caller asks for it. Nothing from the network
//! can make this crate panic; every malformed input is an [`Error`].

#![forbid(unsafe_code)]

pub mod attribute;
pub mod builder;
pub mod channel_data;
pub mod demux;
pub mod fastpath;
pub mod integrity;
pub mod message;
pub mod rfc5769;

pub use attribute::{AddressFamily, Attribute, AttributeType, RawAttribute};
pub use builder::MessageBuilder;
pub use channel_data::ChannelData;
pub use demux::{classify, PacketKind};
pub use message::{Class, Message, Method, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// Everything that can be wrong with a STUN message, an attribute or a
/// ChannelData frame, and everything that can stop one from being written.
///
/// The variants say what was wrong, not what to answer; the TURN server maps
/// them to STUN error codes (mostly 400 Bad Request, 420 for
/// [`Error::UnknownComprehensionRequired`], 401 for
/// [`Error::IntegrityMismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than a header (STUN: 20, ChannelData: 4) or than a fixed field needs.
    #[error("truncated packet")]
    Truncated,
    /// The two most significant bits of a STUN message are not zero (RFC 8489 §5).
    #[error("not a STUN message (first two bits are not zero)")]
    NotStun,
    /// The magic cookie is not 0x2112A442 (RFC 8489 §5).
    #[error("bad magic cookie")]
    BadMagicCookie,
    /// The header's message length is not a multiple of 4 or does not match the datagram.
    #[error("message length does not match the datagram")]
    BadLength,
    /// An attribute's value (with its padding) runs past the end of the message.
    #[error("attribute {0} overruns the message")]
    AttributeOverrun(AttributeType),
    /// An attribute's value does not have the form its RFC gives it.
    #[error("invalid {typ} attribute: {reason}")]
    InvalidAttribute {
        /// Which attribute.
        typ: AttributeType,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An attribute the message needs is missing.
    #[error("missing attribute {0}")]
    MissingAttribute(AttributeType),
    /// A comprehension-required attribute (0x0000–0x7FFF) this crate does not understand.
    #[error("unknown comprehension-required attribute {0}")]
    UnknownComprehensionRequired(AttributeType),
    /// The message is valid STUN but not the class/method the caller expected.
    #[error("unexpected message type 0x{0:04x}")]
    UnexpectedMessageType(u16),
    /// MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 does not match the key.
    #[error("message integrity check failed")]
    IntegrityMismatch,
    /// FINGERPRINT does not match the message.
    #[error("fingerprint check failed")]
    FingerprintMismatch,
    /// The message would exceed the 16-bit length field.
    #[error("message too long")]
    MessageTooLong,
    /// The output buffer cannot hold what is to be written.
    #[error("output buffer too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
    },
    /// A channel number outside 0x4000–0x7FFF (RFC 8656 §12).
    #[error("invalid channel number 0x{0:04x}")]
    InvalidChannelNumber(u16),
    /// More bytes follow a ChannelData payload than its padding allows.
    #[error("trailing bytes after the ChannelData payload")]
    TrailingBytes,
    /// A value given to a writer is out of the range the RFC allows.
    #[error("value out of range: {0}")]
    InvalidValue(&'static str),
}
