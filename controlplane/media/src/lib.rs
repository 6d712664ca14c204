//! uturn's media relay control plane and router, sans-IO (docs/media.md):
//! WHIP (RFC 9725) publishers and WHEP viewers, ICE-lite (RFC 8445 §2.5,
//! consent per RFC 7675), DTLS-SRTP (RFC 5764), and the fan-out of each
//! publisher's SRTP to its viewers with RTCP feedback (RFC 4585, RFC 4588,
//! RFC 5104) and reports (RFC 3550 §6.4).
//!
//! Like `uturn_turn`, nothing here owns a socket, a thread or a clock:
//! datagrams and `now: Instant` come in, datagrams and timers go out.
//!
//! | item                 | what                                                                 |
//! |----------------------|----------------------------------------------------------------------|
//! | [`signal`]           | the HTTP ↔ media contract: [`Signalling`], [`SignalError`]          |
//! | [`Registry`]         | sessions, streams, ufrags, remote addresses, the workers' mailboxes   |
//! | [`MediaEngine`]      | one per dataplane worker: ICE, DTLS, the fan-out of streams homed here |
//! | [`router`]           | [`router::StreamRouter`]: one stream's SRTP fan-out and RTCP          |
//! | [`mailbox`]          | [`mailbox::Command`]s between threads                                 |
//! | [`transmit`]         | outgoing datagrams in reusable buffers                                |
//! | [`client`]           | a sans-IO WebRTC peer for tests and the load generator                |
//!
//! # How to drive it
//!
//! One [`Registry`] per process ([`Registry::new`] with a
//! [`RegistryConfig`]), shared by the HTTP thread, which calls the
//! [`Signalling`] methods with its clock reading, and by one
//! [`MediaEngine`] per dataplane worker (`MediaEngine::new(worker,
//! registry)`, `worker` in `0..config.workers`). Each worker:
//!
//! ```text
//!  listener datagram ── RFC 7983 ──► STUN / DTLS / RTP-RTCP
//!        │                               │
//!        │           engine.handle_datagram(now, local, remote, d) ── false ──► TURN (not a media check)
//!        │                               │ true
//!        ▼                               ▼
//!  ChannelData ──► TURN         then drain:  engine.poll_transmit()  → send from `source` to `destination`
//!                                            engine.poll_timeout()   → re-arm the worker's timer
//!  timer fired, or engine.has_mail() (one atomic load, checked every loop;
//!  a post to an empty mailbox also wakes the worker through the `Waker`
//!  it gave Registry::set_waker, so an idle worker does not sleep on mail)
//!        └──► engine.handle_timeout(now), then drain as above
//!  shutting down: engine.shutdown(now), then drain poll_transmit (DTLS close_notify)
//! ```
//!
//! Drain `poll_transmit` until `None` after every `handle_*` call: the
//! queues are bounded and drop their oldest datagrams when full.
//!
//! A session is created unclaimed by a POST; the first worker that
//! receives an authenticated connectivity check for it claims it and is its
//! home from then on. Datagrams for it that reach another worker (the
//! browser nominated a pair that SO_REUSEPORT hashes elsewhere) travel
//! through the home's mailbox. A stream's fan-out runs on its publisher's
//! home; a viewer homed elsewhere is attached to it, and sends its RTCP
//! feedback to it, through the mailbox too. The registry's lock is taken
//! per signalling request and per session event, never per media packet.
#![forbid(unsafe_code)]

pub mod client;
mod engine;
pub mod mailbox;
mod negotiate;
pub mod registry;
pub mod router;
mod session;
pub mod signal;
pub mod transmit;

pub use engine::{MediaEngine, MediaStats};
pub use registry::{Registry, RegistryConfig};
pub use signal::{Created, Kind, PatchOutcome, SignalError, Signalling, StreamInfo};
pub use transmit::{Transmit, TransmitQueue};
