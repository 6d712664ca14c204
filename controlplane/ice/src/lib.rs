//! Sans-IO ICE-lite agent for uturn's WebRTC sessions (RFC 8445 §2.5,
//! RFC 7675 consent freshness).
//!
//! uturn is a server with public addresses, so it runs ICE-lite (RFC 8445
//! §2.5): it gathers only host candidates, sends no checks, is always the
//! controlled agent, and answers the browser's connectivity checks on the
//! same UDP ports that serve TURN. The browser, a full agent, checks
//! pairs and nominates one with USE-CANDIDATE; media flows on that pair.
//!
//! Like quinn-proto and str0m, this crate is deterministic: no sockets, no
//! threads, no clock. Time comes in as `now: Instant` arguments; datagrams
//! come in with their 5-tuple and leave as [`Transmit`]s written into the
//! caller's buffer.
//!
//! | module          | what                                                      | RFC sections                          |
//! |-----------------|-----------------------------------------------------------|---------------------------------------|
//! | [`agent`]       | [`IceLite`]: answering checks, nomination, consent        | RFC 8445 §7.3, §8.2; RFC 7675 §5.1    |
//! | [`credentials`] | [`Credentials`]: ice-ufrag / ice-pwd, random generation   | RFC 8445 §5.3; RFC 8839 §5.4          |
//! | [`candidate`]   | host [`Candidate`]s and their `a=candidate` lines         | RFC 8445 §5.1; RFC 8839 §5.1          |
//! | [`demux`]       | [`ufrag_of`]: which session a check is addressed to       | RFC 8445 §7.2.2; RFC 7983             |
//!
//! How the listener drives it (per session one [`IceLite`], found through
//! a `HashMap<String, SessionId>` keyed by the local ufrag):
//!
//! ```text
//!  datagram ──classify (RFC 7983)──► STUN ──Message::parse──► ufrag_of ──► map hit? ──► IceLite::handle_message
//!                    │                                                        │ no            │
//!                    └─► DTLS / RTP: by 5-tuple                               ▼               ▼
//!                                                                        TURN server   poll_transmit → send
//!                                                                                      poll_event   → Selected/Connected/…
//!                                                                                      poll_timeout → timer → handle_timeout
//! ```
//!
//! The agent's events, in order over a session's life: `Selected(pair)`
//! and `Connected` on the first nomination, `SelectedChanged` on each later
//! one, then `ConsentLost` (if the peer went silent for 30 s) and finally
//! always `Closed`, after which the owner frees the session and drops its
//! forwarding rules.

#![forbid(unsafe_code)]

pub mod agent;
pub mod candidate;
pub mod credentials;
pub mod demux;

pub use agent::{
    CandidateOrigin, CheckError, Event, IceLite, Pair, RemoteCandidate, State, Stats, Transmit,
    CONSENT_TIMEOUT,
};
pub use candidate::{candidates, Candidate, ExternalIp};
pub use credentials::{Credentials, CredentialsError};
pub use demux::ufrag_of;
