//! SRTP and SRTCP for uturn's dataplane: RFC 3711 (AES-CM + HMAC-SHA1) and
//! RFC 7714 (AEAD AES-128-GCM), protect and unprotect in place.
//!
//! # Design
//!
//! Sans-IO and allocation-free per packet: an [`SrtpContext`] holds the
//! session keys of one direction of a DTLS-SRTP association and, per SSRC,
//! the rollover counter, the replay window and the SRTCP index. Packets are
//! processed in the caller's buffer:
//!
//! ```text
//! protect_rtp(buf, len)   buf = [ RTP header | payload | room for tag ]
//!                      -> buf = [ RTP header | encrypted payload | tag ], returns len + tag
//! unprotect_rtp(buf)      buf = the received datagram, returns the plaintext length
//! protect_rtcp / unprotect_rtcp: the same with the SRTCP E flag and index
//! ```
//!
//! - [`keys`]: master keys, the DTLS-SRTP exporter split (RFC 5764 §4.2),
//!   session key derivation with the AES-CM PRF (RFC 3711 §4.3, kdr = 0).
//! - [`packet`]: checked views of RTP (CSRCs, header extension) and RTCP
//!   headers.
//! - [`replay`]: ROC estimation (RFC 3711 §3.3.1, Appendix A) and the
//!   128-packet replay window (§3.3.2).
//! - [`backend`]: AES-CTR, HMAC-SHA1 and AES-GCM behind one trait, on
//!   RustCrypto or aws-lc-rs.
//! - `context`: [`SrtpContext`], the transforms of both profiles.
//!
//! Profiles: `SRTP_AEAD_AES_128_GCM`, `SRTP_AES128_CM_HMAC_SHA1_80`, and
//! `SRTP_AES128_CM_HMAC_SHA1_32` (only the RTP tag length differs).
//!
//! Errors are [`Error`] values, never panics, whatever the input: the
//! caller counts `Error::Auth` and `Error::Replay`. A failed packet leaves
//! the context exactly as it was.
//!
//! # Backends and numbers
//!
//! The default backend is chosen by the criterion benchmarks in
//! `benches/srtp.rs`; README.md records the numbers. Not done: MKI, key
//! derivation rates other than zero, AES-256 profiles, encrypted header
//! extensions (RFC 6904).
#![forbid(unsafe_code)]

pub mod backend;
mod context;
mod error;
pub mod keys;
pub mod packet;
mod profile;
pub mod replay;

#[cfg(feature = "aws-lc")]
pub use backend::{AwsLc, BestOf};
pub use backend::{Backend, DefaultBackend, RustCrypto};
pub use context::{SrtpContext, MAX_STREAMS};
pub use error::Error;
pub use keys::{DtlsSrtpKeys, MasterKeys, Role, SessionKeys};
pub use profile::Profile;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
