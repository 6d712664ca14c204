//! RTP and RTCP for uturn's media relay: the wire formats and the
//! forwarding primitives the media engine runs per packet and per viewer.
//!
//! # Design
//!
//! Everything works on byte slices the caller owns, after SRTP unprotect
//! and before SRTP protect (`uturn-srtp`): checked views borrow a received
//! packet, writers fill a caller's buffer and return the length. Nothing
//! allocates per packet, nothing reads a clock, and no input can make a
//! function panic: malformed bytes give an [`Error`].
//!
//! ```text
//! publisher RTP ──► rtp::RtpPacket (view) ──► cache::PacketCache (video, for NACKs)
//!                                         ├─► keyframe::is_keyframe
//!                                         ├─► stats::ReceiverStats ──► rtcp::write_rr
//!                                         └─► per viewer: rtp::rewrite ──► SRTP protect ──► send
//! viewer RTCP  ──► rtcp::parse_compound ──► PLI/FIR ──► rtcp::write_pli / write_fir to the publisher
//!                                       └─► NACK ──► cache.get ──► rtp::write_rtx (or the original)
//! ```
//!
//! - [`rtp`]: RTP header (RFC 3550 §5.1), header extensions (RFC 8285 §4.2
//!   one-byte, §4.3 two-byte), the per-viewer rewrite, RTX (RFC 4588 §4).
//! - [`rtcp`]: compound packets (RFC 3550 §6.1, RFC 5506 reduced size),
//!   SR/RR (§6.4), SDES CNAME (§6.5), BYE (§6.6), PLI and generic NACK (RFC
//!   4585 §6.3.1, §6.2.1), FIR (RFC 5104 §4.3.1).
//! - [`cache`]: the preallocated per-stream packet cache answering NACKs.
//! - [`keyframe`]: keyframe detection for VP8 (RFC 7741), VP9 (RFC 9628)
//!   and H.264 (RFC 6184).
//! - [`stats`]: receiver statistics (RFC 3550 A.1, A.3, A.8), sender
//!   counts, NTP timestamps (§4).
#![forbid(unsafe_code)]

pub mod cache;
mod error;
pub mod keyframe;
pub mod rtcp;
pub mod rtp;
pub mod stats;

pub use error::Error;
