//! Sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 5764), on dimpl.
//!
//! A WebRTC session keys its SRTP with a DTLS handshake run over the ICE
//! pair (RFC 5764): each side proves it holds the certificate whose
//! fingerprint its SDP announced (RFC 8122), the `use_srtp` extension picks
//! the SRTP protection profile (RFC 5764 §4.1.1–4.1.2), and both sides
//! export the same keying material with the label `EXTRACTOR-dtls_srtp`
//! (RFC 5764 §4.2), split into the four master keys and salts by
//! [`uturn_srtp::DtlsSrtpKeys::from_exporter`].
//!
//! uturn's relay is always the DTLS server: its answers say
//! `a=setup:passive` (RFC 8842 §5.3), so the browser, the offerer with
//! `actpass`, becomes the client. The client role exists for tests and the
//! load generator.
//!
//! | item            | what                                                     | RFC sections                         |
//! |-----------------|----------------------------------------------------------|--------------------------------------|
//! | [`Certificate`] | self-signed ECDSA P-256 certificate, SHA-256 fingerprint | RFC 8122 §5; RFC 8827 §6.5           |
//! | [`Endpoint`]    | one association: handshake, fingerprint check, export    | RFC 6347; RFC 5764 §4.1–4.2; RFC 8842 |
//! | [`DtlsConfig`]  | SRTP profiles in preference order, MTU                   | RFC 5764 §4.1.1                      |
//! | [`DtlsContext`] | a `DtlsConfig` validated once, shared by endpoints       |                                      |
//!
//! # Why dimpl
//!
//! dimpl is a sans-IO DTLS 1.2 implementation in Rust (the DTLS of str0m):
//! it takes datagrams and `Instant`s and gives back datagrams, timers and
//! the exported SRTP keying material, which is exactly the shape of uturn's
//! control plane, with no `unsafe` and no library-owned wall clock, so the
//! tests below run on a fake clock. The `openssl` crate would need memory
//! BIOs and OpenSSL's own DTLS timers. uturn vendors dimpl 0.9.0 with one
//! patch that lets the configuration choose the SRTP profiles and their
//! order (`vendor/dimpl/UTURN-PATCH.md`): upstream always prefers
//! AES-256-GCM, which `uturn-srtp` does not implement.
//!
//! # Driving an [`Endpoint`]
//!
//! ```text
//!  new(now, role, cert, remote_fingerprint, config)   client: the ClientHello is queued
//!  (or with_context(.., &DtlsContext))
//!  handle_datagram(now, dtls_record)  ─┐
//!  handle_timeout(now)                 ├─► then drain: poll_transmit → send
//!  close()                            ─┘               poll_event    → Connected{profile, keys} | Failed | Closed
//!                                                      poll_timeout  → when to call handle_timeout
//! ```
//!
//! A failed endpoint (fingerprint mismatch, no common profile, timeout,
//! protocol error) reports [`Event::Failed`] once, sends nothing more and
//! ignores all further input: the owner drops it.
//!
//! # Tests
//!
//! `tests/handshake.rs` runs two endpoints back to back on a fake clock
//! (profiles and preference orders, fingerprint mismatch either way, lost
//! flights, the deadline, close_notify, garbage); `tests/openssl_interop.rs`
//! runs an endpoint against OpenSSL's `s_client` and `s_server` over
//! loopback UDP and compares the exported keys with OpenSSL's.
#![forbid(unsafe_code)]

mod certificate;
mod context;
mod endpoint;
mod error;

pub use certificate::Certificate;
pub use context::DtlsContext;
pub use endpoint::{DtlsConfig, Endpoint, Event, HANDSHAKE_TIMEOUT};
pub use error::Error;
