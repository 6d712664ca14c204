//! The media engine of one dataplane worker (docs/media.md, "Where a media
//! packet goes"): the sessions homed on the worker, their ICE-lite agents
//! (RFC 8445 §2.5, RFC 7675), DTLS servers (RFC 5764 §4) and the fan-out of
//! the streams whose publisher is homed here.
//!
//! Routing a datagram (already sorted by RFC 7983's first byte):
//!
//! - STUN: a Binding request whose USERNAME starts with a ufrag homed here
//!   goes to that session's agent; an unknown ufrag is claimed from the
//!   [`Registry`] (first authenticated check), forwarded to its home's
//!   mailbox (homed elsewhere), or left to TURN (not a media ufrag).
//! - DTLS, RTP/RTCP: by remote address (the selected pair's); an address
//!   homed on another worker is forwarded to its mailbox; an unknown one is
//!   dropped and counted.
//!
//! Per session, the life is: claimed → ICE selects a pair → DTLS handshake
//! on it → `Connected` with the SRTP keys → publisher: a
//! [`StreamRouter`] for its stream here; viewer: attached to the stream's
//! router, wherever it runs → ended by DELETE, consent loss, DTLS
//! close_notify or failure, its publisher's end, or shutdown.
//!
//! Sans-IO like the rest of the crate: no socket, no clock, no thread.
//!
//! | file                   | what                                                          |
//! |------------------------|---------------------------------------------------------------|
//! | `engine.rs`            | [`MediaEngine`]: the public calls, timers, collecting output  |
//! | `engine/input.rs`      | routing datagrams and mailbox commands                        |
//! | `engine/lifecycle.rs`  | a session's life: claim, ICE, DTLS, media start, end          |
//! | `engine/stats.rs`      | [`MediaStats`]                                                |

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;
use uturn_dtls::{DtlsConfig, DtlsContext};

use crate::mailbox::{Command, SessionId};
use crate::registry::Registry;
use crate::router::{RouterStats, StreamRouter};
use crate::session::Session;
use crate::transmit::{Transmit, TransmitQueue};

mod input;
mod lifecycle;
mod stats;

pub use stats::MediaStats;

use input::MAX_DATAGRAM;
use stats::add_router_stats;

/// How often a worker asks the registry to drop unclaimed sessions.
const GC_INTERVAL: Duration = Duration::from_secs(1);

/// The media engine of one dataplane worker.
#[derive(Debug)]
pub struct MediaEngine {
    worker: usize,
    registry: Arc<Registry>,
    /// Every DTLS server of this worker is made from this one validated
    /// configuration (the same for all workers, [`DtlsContext::shared`]):
    /// building dimpl's configuration runs a crypto self-test that costs
    /// more than the rest of a handshake. An unusable configuration (no
    /// SRTP profile dimpl implements) fails each session's DTLS start.
    dtls: Result<DtlsContext, uturn_dtls::Error>,
    sessions: HashMap<SessionId, Session>,
    by_ufrag: HashMap<String, SessionId>,
    by_remote: HashMap<SocketAddr, SessionId>,
    /// Remote addresses homed on other workers, and until when to trust it.
    foreign: HashMap<SocketAddr, (usize, Instant)>,
    /// The fan-out of each stream whose publisher is homed here, by
    /// publisher session.
    routers: HashMap<SessionId, RouterSlot>,
    /// Routers that got input since their datagrams were last collected.
    pending: Vec<SessionId>,
    /// Every session's and router's next deadline, so that neither
    /// `poll_timeout` nor `handle_timeout` walks every session. Entries
    /// whose deadline is no longer the owner's `armed` one are stale and
    /// skipped (at worst an early wake-up).
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Counters of routers that ended.
    retired: RouterStats,
    transmits: TransmitQueue,
    /// Commands taken from the mailbox, reused.
    mail: Vec<Command>,
    /// Timers that fired, reused.
    due: Vec<Timer>,
    /// Registry look-ups for unknown remote addresses in the current
    /// second, and when that second started.
    lookups: (u32, Option<Instant>),
    /// SRTCP from viewers is decrypted here.
    scratch: Vec<u8>,
    next_gc: Option<Instant>,
    stats: MediaStats,
}

/// Whose deadline a timer-heap entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Session(SessionId),
    Router(SessionId),
}

#[derive(Debug)]
struct RouterSlot {
    router: StreamRouter,
    /// The deadline of its entry in the timer heap.
    armed: Option<Instant>,
    /// Whether it is in `MediaEngine::pending` (it got input since its
    /// datagrams were last collected).
    active: bool,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DELETE, or its stream's publisher ended.
    Ended,
    /// The ICE agent closed (consent lost).
    Ice,
    /// The peer sent close_notify.
    PeerClosed,
    /// DTLS failed.
    DtlsFailed,
    /// The stream went away before the viewer could join.
    NoStream,
    /// The worker is shutting down.
    Shutdown,
}

impl MediaEngine {
    /// The engine of worker `worker` (`0..registry.config().workers`).
    pub fn new(worker: usize, registry: Arc<Registry>) -> MediaEngine {
        if worker >= registry.config().workers.max(1) {
            // Its mailbox does not exist: nothing can reach it from other
            // threads (DELETE, viewers homed elsewhere).
            warn!(
                worker,
                workers = registry.config().workers,
                "media engine outside the registry's worker range"
            );
        }
        let mut config = DtlsConfig::default();
        if !registry.config().srtp_profiles.is_empty() {
            config.profiles = registry.config().srtp_profiles.clone();
        }
        let dtls = DtlsContext::shared(&config);
        if let Err(e) = &dtls {
            warn!(worker, error = %e, "media sessions cannot start DTLS");
        }
        MediaEngine {
            worker,
            registry,
            dtls,
            sessions: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_remote: HashMap::new(),
            foreign: HashMap::new(),
            routers: HashMap::new(),
            pending: Vec::new(),
            timers: BinaryHeap::new(),
            retired: RouterStats::default(),
            transmits: TransmitQueue::default(),
            mail: Vec::new(),
            due: Vec::new(),
            lookups: (0, None),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            next_gc: None,
            stats: MediaStats::default(),
        }
    }

    /// A datagram that arrived on listener `local` from `remote` and that
    /// RFC 7983 classifies as STUN, DTLS or RTP/RTCP. Returns false when it
    /// is not the media engine's (a STUN message that is not an ICE check
    /// for a known media ufrag: the caller gives it to TURN). Never panics
    /// on any input.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        self.next_gc.get_or_insert(now + GC_INTERVAL);
        self.receive(now, local, remote, datagram, false)
    }

    /// Timers (ICE consent, DTLS retransmits, RTCP reports, session GC)
    /// and the worker's mailbox.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut mail = std::mem::take(&mut self.mail);
        self.registry.take_mail(self.worker, &mut mail);
        for command in mail.drain(..) {
            self.handle_command(now, command);
        }
        self.mail = mail;

        if self.next_gc.is_none_or(|t| now >= t) {
            self.registry.collect_garbage(now);
            self.next_gc = Some(now + GC_INTERVAL);
        }

        // Everything due now is taken off the heap first and re-armed
        // after, so a timer that stays due cannot keep this loop going.
        let mut due = std::mem::take(&mut self.due);
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let live = match timer {
                Timer::Session(id) => self.sessions.get(&id).map(|s| s.armed),
                Timer::Router(id) => self.routers.get(&id).map(|r| r.armed),
            };
            if live == Some(Some(at)) {
                due.push(timer);
            }
        }
        for timer in due.drain(..) {
            match timer {
                Timer::Session(id) => {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.armed = None;
                        if s.ice.poll_timeout().is_some_and(|t| now >= t) {
                            s.ice.handle_timeout(now);
                        }
                        if let Some(dtls) = s.dtls.as_mut() {
                            if dtls.poll_timeout().is_some_and(|t| now >= t) {
                                dtls.handle_timeout(now);
                            }
                        }
                        self.drive(now, id);
                    }
                }
                Timer::Router(id) => {
                    if let Some(slot) = self.routers.get_mut(&id) {
                        slot.armed = None;
                        slot.router.handle_timeout(now);
                        touched(&mut self.pending, &mut self.timers, slot, id);
                    }
                }
            }
        }
        self.due = due;
    }

    /// Cheap (one atomic load): whether other threads left commands in
    /// this worker's mailbox; the worker then calls
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn has_mail(&self) -> bool {
        self.registry.has_mail(self.worker)
    }

    /// The next datagram to send; its bytes stay valid until the next call.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        if self.transmits.is_empty() {
            self.collect();
        }
        self.transmits.pop()
    }

    /// Datagrams queued and not yet taken with
    /// [`poll_transmit`](Self::poll_transmit), the routers' included.
    pub fn queued_transmits(&self) -> usize {
        let routers: usize = self
            .pending
            .iter()
            .filter_map(|id| self.routers.get(id))
            .map(|slot| slot.router.queued_transmits())
            .sum();
        self.transmits.len() + routers
    }

    /// Puts the queued datagrams for the same destination next to each
    /// other, each destination's in order, so that the dataplane can send
    /// a viewer's share of a publisher's burst as one UDP GSO send. Call
    /// before draining [`poll_transmit`](Self::poll_transmit) after a
    /// batch of input.
    pub fn group_transmits(&mut self) {
        self.collect();
        self.transmits.group_by_destination();
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.timers.peek().map(|Reverse((at, _))| *at);
        next.into_iter().chain(self.next_gc).min()
    }

    /// Closes every session homed here (DTLS close_notify to each peer,
    /// then drain [`poll_transmit`](Self::poll_transmit)).
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.end(now, id, End::Shutdown);
        }
    }

    /// The counters.
    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats;
        s.sessions = self.sessions.len() as u64;
        s.streams = self.routers.len() as u64;
        let mut r = self.retired;
        for slot in self.routers.values() {
            let live = slot.router.stats();
            s.viewers += slot.router.viewer_ids().count() as u64;
            add_router_stats(&mut r, &live);
        }
        s.rtp_in += r.rtp_in;
        s.rtcp_in += r.rtcp_in;
        s.bytes_in += r.bytes_in;
        s.rtp_out += r.rtp_out;
        s.rtcp_out += r.rtcp_out;
        s.bytes_out += r.bytes_out;
        s.srtp_auth_failures += r.srtp_auth_failures;
        s.srtp_replays += r.srtp_replays;
        s.malformed += r.malformed;
        s.unknown_ssrc += r.unknown_ssrc;
        s.keyframe_requests += r.keyframe_requests;
        s.nacks_received += r.nacks_received;
        s.nacks_answered += r.retransmits;
        s.nacks_over_budget += r.retransmits_over_budget;
        s.sr_sent += r.sr_sent;
        s.rr_sent += r.rr_sent;
        s.twcc_feedback_sent += r.twcc_feedback_sent;
        s.transmits_dropped += r.transmits_dropped + self.transmits.dropped();
        s
    }

    // Output.

    /// Moves the datagrams of every router that got input to the engine's
    /// queue. A copy (a memcpy per datagram): handing out a router's own
    /// buffer from `poll_transmit` would need a borrow that today's borrow
    /// checker refuses in a loop over routers, and scanning every router
    /// per call would cost more than the copy once a worker runs many
    /// streams.
    fn collect(&mut self) {
        while let Some(id) = self.pending.pop() {
            let Some(slot) = self.routers.get_mut(&id) else {
                continue;
            };
            slot.active = false;
            slot.router.move_transmits_into(&mut self.transmits);
        }
    }
}

/// Router `id` (in `slot`) got input: it may have datagrams to collect
/// and a new deadline.
fn touched(
    pending: &mut Vec<SessionId>,
    timers: &mut BinaryHeap<Reverse<(Instant, Timer)>>,
    slot: &mut RouterSlot,
    id: SessionId,
) {
    if !slot.active {
        slot.active = true;
        pending.push(id);
    }
    let at = slot.router.poll_timeout();
    if at != slot.armed {
        slot.armed = at;
        if let Some(at) = at {
            timers.push(Reverse((at, Timer::Router(id))));
        }
    }
}
