//! The ICE-lite agent of one session: answers connectivity checks, follows
//! nominations, and ends the session when consent runs out.
//!
//! Implements the lite side of RFC 8445: §7.3 (answering Binding requests
//! with short-term credentials, RFC 8489 §9.1.3), §7.3.1.1 (role conflicts:
//! a lite agent is always controlled, RFC 8445 §6.1.1), §7.3.1.3
//! (peer-reflexive remote candidates), §7.3.1.5 and §8.2 (nomination by
//! USE-CANDIDATE), and consent freshness as RFC 7675 §5.1 times it (30 s).
//!
//! A lite agent sends no checks of its own, so it cannot run RFC 7675's
//! consent checks. It takes the full agent's instead: every authenticated
//! Binding request that arrives on the selected pair (browsers send one
//! about every 5 s, RFC 7675 §5.1) proves the peer still wants the media;
//! 30 s without one ends the session ([`Event::ConsentLost`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, trace};
use uturn_stun::attribute::UnknownAttributes;
use uturn_stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId};

use crate::credentials::Credentials;

/// How long a session lives without an authenticated check on its
/// selected pair (RFC 7675 §5.1: consent expires after 30 s). Before a
/// pair is selected, the same time counts from the agent's creation: ICE
/// must have nominated a pair by then.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Remote candidates remembered per session (signalled plus peer-reflexive).
/// Checks from further addresses are still answered and can be nominated;
/// they are just not listed.
pub const MAX_REMOTE_CANDIDATES: usize = 32;

/// Answers queued and not yet drained by [`IceLite::poll_transmit`]. A
/// caller that drains after every input needs one; past this many the
/// oldest is dropped (and counted), so a flood cannot grow the queue.
const MAX_PENDING_TRANSMITS: usize = 16;

/// Unknown attribute types listed in one 420 answer.
const MAX_UNKNOWN_LISTED: usize = 8;

/// A candidate pair, as seen from uturn: the listener a check arrived on
/// and the peer's address it came from. Always UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    /// uturn's listener (the local candidate's base).
    pub local: SocketAddr,
    /// The peer's transport address (the remote candidate).
    pub remote: SocketAddr,
}

/// A datagram to send: its bytes are in the buffer given to
/// [`IceLite::poll_transmit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The listener to send from.
    pub source: SocketAddr,
    /// Where to send.
    pub destination: SocketAddr,
    /// Length of the datagram (the whole buffer).
    pub len: usize,
}

/// What the agent tells its owner, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The first nomination: media goes to and comes from this pair.
    /// Immediately followed by [`Event::Connected`].
    Selected(Pair),
    /// ICE is done: a pair is valid and nominated (RFC 8445 §8.2). DTLS
    /// may start on the selected pair.
    Connected,
    /// The controlling agent nominated another pair (network change,
    /// renomination): media moves to `selected`.
    SelectedChanged {
        /// The pair media used until now.
        previous: Pair,
        /// The pair media uses from now on.
        selected: Pair,
    },
    /// No authenticated check for [`CONSENT_TIMEOUT`] (RFC 7675 §5.1).
    /// Followed by [`Event::Closed`].
    ConsentLost,
    /// The agent is dead: it answers nothing more. Always the last event,
    /// whatever the reason; the owner frees the session on it.
    Closed,
}

/// Where the agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a nomination.
    Checking,
    /// A pair is selected.
    Connected,
    /// Consent lost or closed by the owner.
    Closed,
}

/// How the agent learned of a remote candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateOrigin {
    /// From the SDP or a trickled candidate ([`IceLite::add_remote_candidate`]).
    Signalled,
    /// From the source address of a check (RFC 8445 §7.3.1.3).
    PeerReflexive,
}

/// A remote candidate the agent knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// Its transport address.
    pub address: SocketAddr,
    /// Its priority (PRIORITY of the check, for a peer-reflexive one).
    pub priority: u32,
    /// How it was learned.
    pub origin: CandidateOrigin,
}

/// Counters for metrics: one per answer and per silent drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Binding requests received while alive.
    pub requests: u64,
    /// Requests answered with a success.
    pub successes: u64,
    /// Requests answered 400.
    pub bad_requests: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Requests answered 420.
    pub unknown_attributes: u64,
    /// Requests answered 487.
    pub role_conflicts: u64,
    /// Datagrams dropped without an answer (not STUN, not a Binding
    /// request, bad FINGERPRINT, agent closed).
    pub discarded: u64,
    /// Answers dropped because the owner did not drain `poll_transmit`.
    pub transmits_dropped: u64,
}

/// Why a datagram was not accepted as a connectivity check. Each variant
/// says in one place which STUN answer, if any, it got
/// ([`CheckError::error_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Not a well-formed STUN message. Dropped.
    #[error("not a STUN message: {0}")]
    Malformed(uturn_stun::Error),
    /// A STUN message but not a Binding request (a keepalive indication,
    /// a stray response). Dropped.
    #[error("not a Binding request")]
    NotBindingRequest,
    /// FINGERPRINT present but wrong: RFC 8489 §7.3 drops it silently (it
    /// may be another protocol's packet).
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    /// The agent is closed. Dropped.
    #[error("agent closed")]
    Closed,
    /// No FINGERPRINT, which every check carries (RFC 8445 §7). 400.
    #[error("no FINGERPRINT")]
    MissingFingerprint,
    /// No USERNAME or no MESSAGE-INTEGRITY (RFC 8489 §9.1.3). 400.
    #[error("no USERNAME or no MESSAGE-INTEGRITY")]
    MissingCredentials,
    /// USERNAME is not `local-ufrag:remote-ufrag` (RFC 8445 §7.3). 401.
    #[error("USERNAME is not this session's")]
    WrongUsername,
    /// MESSAGE-INTEGRITY does not match the local password. 401.
    #[error("MESSAGE-INTEGRITY does not match")]
    IntegrityMismatch,
    /// Unknown comprehension-required attributes (RFC 8489 §7.3.1). 420.
    #[error("unknown comprehension-required attribute")]
    UnknownAttributes,
    /// PRIORITY missing (RFC 8445 §7.1.1) or an ICE attribute malformed. 400.
    #[error("bad ICE attributes: {0}")]
    BadIceAttributes(&'static str),
    /// ICE-CONTROLLED from a peer that is controlled too; a lite agent
    /// stays controlled (RFC 8445 §7.3.1.1). 487.
    #[error("role conflict: the peer is controlled too")]
    RoleConflict,
}

impl CheckError {
    /// The STUN error code answered, or `None` when dropped silently.
    pub const fn error_code(&self) -> Option<u16> {
        match self {
            CheckError::Malformed(_)
            | CheckError::NotBindingRequest
            | CheckError::BadFingerprint
            | CheckError::Closed => None,
            CheckError::MissingFingerprint
            | CheckError::MissingCredentials
            | CheckError::BadIceAttributes(_) => Some(400),
            CheckError::WrongUsername | CheckError::IntegrityMismatch => Some(401),
            CheckError::UnknownAttributes => Some(420),
            CheckError::RoleConflict => Some(487),
        }
    }

    /// Whether the request passed authentication, so that the answer
    /// carries MESSAGE-INTEGRITY (RFC 8489 §9.1.3: only then).
    const fn authenticated(&self) -> bool {
        matches!(
            self,
            CheckError::UnknownAttributes
                | CheckError::BadIceAttributes(_)
                | CheckError::RoleConflict
        )
    }
}

/// The ICE-lite agent of one session. Sans-IO: no sockets, no clock.
///
/// Call order: feed input with [`handle_datagram`](Self::handle_datagram) /
/// [`handle_message`](Self::handle_message) or
/// [`handle_timeout`](Self::handle_timeout), then drain
/// [`poll_transmit`](Self::poll_transmit) until `None`, then
/// [`poll_event`](Self::poll_event) until `None`, then re-arm the timer
/// with [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct IceLite {
    local: Credentials,
    remote: Credentials,
    state: State,
    selected: Option<Pair>,
    /// When consent was last given: the agent's creation until a pair is
    /// selected, then the last authenticated check on the selected pair.
    consent: Instant,
    remote_candidates: Vec<RemoteCandidate>,
    pending: VecDeque<Pending>,
    events: VecDeque<Event>,
    stats: Stats,
}

/// An answer waiting for `poll_transmit`: everything needed to write it,
/// but not its bytes, which are written straight into the caller's buffer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    pair: Pair,
    tid: TransactionId,
    answer: Answer,
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Success,
    Error {
        code: u16,
        authenticated: bool,
        unknown: [AttributeType; MAX_UNKNOWN_LISTED],
        unknown_len: usize,
    },
}

impl IceLite {
    /// A new agent, created at `now` with the session's local credentials
    /// (usually [`Credentials::random`]) and the remote ones from the offer.
    pub fn new(now: Instant, local: Credentials, remote: Credentials) -> IceLite {
        IceLite {
            local,
            remote,
            state: State::Checking,
            selected: None,
            consent: now,
            remote_candidates: Vec::with_capacity(MAX_REMOTE_CANDIDATES),
            pending: VecDeque::with_capacity(MAX_PENDING_TRANSMITS),
            events: VecDeque::with_capacity(8),
            stats: Stats::default(),
        }
    }

    // Getters.

    /// The local credentials (for the SDP answer).
    pub fn local_credentials(&self) -> &Credentials {
        &self.local
    }

    /// The remote credentials (from the SDP offer).
    pub fn remote_credentials(&self) -> &Credentials {
        &self.remote
    }

    /// Where the agent is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// The pair media uses, once one is nominated.
    pub fn selected(&self) -> Option<Pair> {
        self.selected
    }

    /// When the selected pair last got consent (an authenticated check);
    /// `None` before a pair is selected.
    pub fn last_consent(&self) -> Option<Instant> {
        self.selected.map(|_| self.consent)
    }

    /// The remote candidates known so far.
    pub fn remote_candidates(&self) -> &[RemoteCandidate] {
        &self.remote_candidates
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // Inputs.

    /// Records a remote candidate from the SDP or trickle ICE. Not needed
    /// to answer checks (a lite agent answers whatever arrives); it only
    /// makes [`remote_candidates`](Self::remote_candidates) complete.
    pub fn add_remote_candidate(&mut self, address: SocketAddr, priority: u32) {
        if let Some(known) = self
            .remote_candidates
            .iter_mut()
            .find(|c| c.address == address)
        {
            known.origin = CandidateOrigin::Signalled;
            known.priority = priority;
        } else if self.remote_candidates.len() < MAX_REMOTE_CANDIDATES {
            self.remote_candidates.push(RemoteCandidate {
                address,
                priority,
                origin: CandidateOrigin::Signalled,
            });
        }
    }

    /// A datagram that arrived on `pair.local` from `pair.remote`, already
    /// routed to this agent (see [`crate::ufrag_of`]).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        pair: Pair,
        datagram: &[u8],
    ) -> Result<(), CheckError> {
        match Message::parse(datagram) {
            Ok(msg) => self.handle_message(now, pair, &msg),
            Err(e) => {
                self.stats.discarded += 1;
                Err(CheckError::Malformed(e))
            }
        }
    }

    /// A parsed STUN message that arrived on `pair`.
    ///
    /// A Binding request is answered (success or error, queued for
    /// [`poll_transmit`](Self::poll_transmit)); anything else is dropped.
    /// The `Err` says why a request was not a valid check, for logs and
    /// metrics; its answer, if any, is queued all the same.
    pub fn handle_message(
        &mut self,
        now: Instant,
        pair: Pair,
        msg: &Message<'_>,
    ) -> Result<(), CheckError> {
        if self.state == State::Closed {
            self.stats.discarded += 1;
            return Err(CheckError::Closed);
        }
        if msg.class() != Class::Request || msg.method() != Method::BINDING {
            // Binding indications are keepalives (RFC 8445 §11): no answer.
            self.stats.discarded += 1;
            return Err(CheckError::NotBindingRequest);
        }
        self.stats.requests += 1;
        let tid = msg.transaction_id();
        match self.check(msg) {
            Ok(check) => {
                self.stats.successes += 1;
                self.accept(now, pair, check);
                self.queue(pair, tid, Answer::Success);
                Ok(())
            }
            Err(Rejection { error, unknown }) => {
                trace!(remote = %pair.remote, %error, "connectivity check rejected");
                match error.error_code() {
                    None => self.stats.discarded += 1,
                    Some(code) => {
                        match code {
                            400 => self.stats.bad_requests += 1,
                            401 => self.stats.unauthorized += 1,
                            420 => self.stats.unknown_attributes += 1,
                            _ => self.stats.role_conflicts += 1,
                        }
                        let (unknown, unknown_len) = unknown;
                        let answer = Answer::Error {
                            code,
                            authenticated: error.authenticated(),
                            unknown,
                            unknown_len,
                        };
                        self.queue(pair, tid, answer);
                    }
                }
                Err(error)
            }
        }
    }

    /// ICE restart (RFC 8445 §9; WHIP/WHEP PATCH, RFC 9725 §4.3): new
    /// credentials on both sides. Checks with the old USERNAME get 401 from
    /// now on. Media stays on the selected pair, and consent keeps being
    /// counted on it, until the peer nominates a pair with the new
    /// credentials (then [`Event::SelectedChanged`] if it is another pair).
    /// The owner re-keys its ufrag → session map with the new local ufrag.
    pub fn restart(&mut self, local: Credentials, remote: Credentials) {
        debug!(ufrag = local.ufrag(), "ICE restart");
        self.local = local;
        self.remote = remote;
    }

    /// The timer set by [`poll_timeout`](Self::poll_timeout) fired (or any
    /// later time): ends the session if consent ran out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Closed && now >= self.consent_deadline() {
            debug!(selected = ?self.selected, "ICE consent lost");
            self.events.push_back(Event::ConsentLost);
            self.close();
        }
    }

    /// Ends the session now (WHIP/WHEP DELETE, shutdown): queued answers
    /// are dropped and [`Event::Closed`] follows.
    pub fn close(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.pending.clear();
        self.events.push_back(Event::Closed);
    }

    // Outputs.

    /// The next answer to send: `buf` is cleared and then holds exactly
    /// the datagram. Reusing one buffer means no allocation once it is warm.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        while let Some(p) = self.pending.pop_front() {
            buf.clear();
            match self.encode(&p, buf) {
                Ok(len) => {
                    return Some(Transmit {
                        source: p.pair.local,
                        destination: p.pair.remote,
                        len,
                    })
                }
                // Cannot happen with the values written here; should it,
                // the answer is skipped rather than sent half-written.
                Err(e) => debug!(error = %e, "could not encode a Binding answer"),
            }
        }
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout); `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then(|| self.consent_deadline())
    }

    // Internals.

    fn consent_deadline(&self) -> Instant {
        self.consent + CONSENT_TIMEOUT
    }

    /// The checks of RFC 8489 §7.3 and §9.1.3 and RFC 8445 §7.3, in the
    /// order that decides the answer: framing (FINGERPRINT), then
    /// authentication (400/401, answered without MESSAGE-INTEGRITY), then
    /// everything else (420/400/487, answered with it).
    fn check(&self, msg: &Message<'_>) -> Result<Check, Rejection> {
        match msg.check_fingerprint() {
            Ok(()) => {}
            Err(uturn_stun::Error::MissingAttribute(_)) => {
                return Err(CheckError::MissingFingerprint.into())
            }
            Err(_) => return Err(CheckError::BadFingerprint.into()),
        }
        let (Some(username), Some(_)) = (
            msg.attribute(AttributeType::USERNAME),
            msg.attribute(AttributeType::MESSAGE_INTEGRITY),
        ) else {
            return Err(CheckError::MissingCredentials.into());
        };
        if !self.is_our_username(username.value) {
            return Err(CheckError::WrongUsername.into());
        }
        if msg.check_integrity(self.local.pwd().as_bytes()).is_err() {
            return Err(CheckError::IntegrityMismatch.into());
        }

        let mut unknown = [AttributeType(0); MAX_UNKNOWN_LISTED];
        let mut unknown_len = 0;
        for (slot, typ) in unknown.iter_mut().zip(msg.unknown_comprehension_required()) {
            *slot = typ;
            unknown_len += 1;
        }
        if unknown_len > 0 {
            return Err(Rejection {
                error: CheckError::UnknownAttributes,
                unknown: (unknown, unknown_len),
            });
        }

        let tid = msg.transaction_id();
        let decode = |typ| {
            msg.attribute(typ)
                .map(|raw| Attribute::decode(raw, &tid))
                .transpose()
        };
        let bad = |what| Rejection::from(CheckError::BadIceAttributes(what));
        let priority = match decode(AttributeType::PRIORITY) {
            Ok(Some(Attribute::Priority(p))) => p,
            Ok(_) => return Err(bad("no PRIORITY")),
            Err(_) => return Err(bad("malformed PRIORITY")),
        };
        let use_candidate = match decode(AttributeType::USE_CANDIDATE) {
            Ok(found) => found.is_some(),
            Err(_) => return Err(bad("malformed USE-CANDIDATE")),
        };
        if decode(AttributeType::ICE_CONTROLLING).is_err() {
            return Err(bad("malformed ICE-CONTROLLING"));
        }
        match decode(AttributeType::ICE_CONTROLLED) {
            Err(_) => return Err(bad("malformed ICE-CONTROLLED")),
            // The peer thinks it is controlled, as we are. A full agent
            // facing a lite one must be controlling (RFC 8445 §6.1.1), and
            // a lite agent cannot take that role, so whatever the
            // tie-breakers the answer is 487 and the peer switches
            // (RFC 8445 §7.3.1.1).
            Ok(Some(_)) => return Err(CheckError::RoleConflict.into()),
            Ok(None) => {}
        }
        Ok(Check {
            priority,
            use_candidate,
        })
    }

    /// USERNAME must be exactly `local-ufrag ":" remote-ufrag`. RFC 8445
    /// §7.3 only requires the first part; checking the second too refuses
    /// checks meant for a previous offer of the same peer.
    fn is_our_username(&self, username: &[u8]) -> bool {
        let local = self.local.ufrag().as_bytes();
        let remote = self.remote.ufrag().as_bytes();
        username.len() == local.len() + 1 + remote.len()
            && username.starts_with(local)
            && username.get(local.len()) == Some(&b':')
            && username.ends_with(remote)
    }

    /// A valid check arrived on `pair`: learn the peer's address, refresh
    /// consent, follow a nomination.
    fn accept(&mut self, now: Instant, pair: Pair, check: Check) {
        if self.remote_candidates.len() < MAX_REMOTE_CANDIDATES
            && !self
                .remote_candidates
                .iter()
                .any(|c| c.address == pair.remote)
        {
            // RFC 8445 §7.3.1.3: an address not signalled is a
            // peer-reflexive candidate with the check's PRIORITY.
            self.remote_candidates.push(RemoteCandidate {
                address: pair.remote,
                priority: check.priority,
                origin: CandidateOrigin::PeerReflexive,
            });
        }
        if self.selected == Some(pair) {
            self.consent = now;
            return;
        }
        if !check.use_candidate {
            return;
        }
        // The pair is valid (we are answering it with a success) and the
        // controlling agent nominates it. With several nominations the
        // latest wins: that is how browsers move media after a network
        // change or renominate (RFC 8445 §8.1.1 leaves the choice to the
        // controlling agent).
        self.consent = now;
        match self.selected.replace(pair) {
            None => {
                debug!(remote = %pair.remote, local = %pair.local, "ICE pair selected");
                self.state = State::Connected;
                self.events.push_back(Event::Selected(pair));
                self.events.push_back(Event::Connected);
            }
            Some(previous) => {
                debug!(remote = %pair.remote, local = %pair.local, "ICE selected pair changed");
                self.events.push_back(Event::SelectedChanged {
                    previous,
                    selected: pair,
                });
            }
        }
    }

    fn queue(&mut self, pair: Pair, tid: TransactionId, answer: Answer) {
        if self.pending.len() >= MAX_PENDING_TRANSMITS {
            self.pending.pop_front();
            self.stats.transmits_dropped += 1;
        }
        self.pending.push_back(Pending { pair, tid, answer });
    }

    /// Writes the answer: a success carries XOR-MAPPED-ADDRESS (RFC 8445
    /// §7.3: the peer learns its reflexive address from it); every answer
    /// to an authenticated request carries MESSAGE-INTEGRITY with the local
    /// password (RFC 8489 §9.1.3), and every answer FINGERPRINT (RFC 8445 §7).
    fn encode(&self, p: &Pending, buf: &mut Vec<u8>) -> Result<usize, uturn_stun::Error> {
        let (class, authenticated) = match p.answer {
            Answer::Success => (Class::Success, true),
            Answer::Error { authenticated, .. } => (Class::Error, authenticated),
        };
        let mut b = MessageBuilder::new(buf, class, Method::BINDING, p.tid);
        match &p.answer {
            Answer::Success => b.add(&Attribute::XorMappedAddress(p.pair.remote))?,
            Answer::Error {
                code,
                unknown,
                unknown_len,
                ..
            } => {
                b.add(&Attribute::ErrorCode {
                    code: *code,
                    reason: reason_phrase(*code),
                })?;
                if let Some(list) = unknown.get(..*unknown_len).filter(|l| !l.is_empty()) {
                    b.add(&Attribute::UnknownAttributes(UnknownAttributes::from_list(
                        list,
                    )))?;
                }
            }
        }
        if authenticated {
            b.message_integrity(self.local.pwd().as_bytes())?;
        }
        b.fingerprint()?;
        Ok(b.finish())
    }
}

/// What a valid check says.
#[derive(Debug, Clone, Copy)]
struct Check {
    priority: u32,
    use_candidate: bool,
}

/// A failed check and, for a 420, the unknown types to list.
#[derive(Debug, Clone, Copy)]
struct Rejection {
    error: CheckError,
    unknown: ([AttributeType; MAX_UNKNOWN_LISTED], usize),
}

impl From<CheckError> for Rejection {
    fn from(error: CheckError) -> Rejection {
        Rejection {
            error,
            unknown: ([AttributeType(0); MAX_UNKNOWN_LISTED], 0),
        }
    }
}

/// Reason phrases of RFC 8489 §14.8 and RFC 8445 §16.2.
const fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        420 => "Unknown Attribute",
        487 => "Role Conflict",
        _ => "",
    }
}
