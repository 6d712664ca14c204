//! The media sessions' registry: signalling (WHIP, RFC 9725; WHEP) and the
//! directory the workers share (docs/media.md, "Where a media packet goes").
//!
//! One `Registry` per process, `Arc`-shared by the HTTP thread (through
//! [`Signalling`](crate::Signalling), implemented in `registry/signalling.rs`)
//! and every worker's [`MediaEngine`](crate::MediaEngine). It holds,
//! behind one mutex:
//!
//! - every session, from its POST until it ends: unclaimed (negotiated,
//!   waiting for its first authenticated ICE check) or claimed by its home
//!   worker;
//! - local ICE ufrag → session (RFC 8445 §7.2.2: the first half of a
//!   check's USERNAME names the session);
//! - stream → publisher, its negotiated media, the SSRCs viewers get, its
//!   viewers and the worker running its fan-out;
//! - remote address → session (for a datagram that SO_REUSEPORT hashed to
//!   a worker other than the session's home).
//!
//! and, outside the mutex, one mailbox per worker ([`crate::mailbox`]),
//! each with the waker of its worker ([`Registry::set_waker`]): posting to
//! an empty mailbox wakes the worker, so an idle worker handles a command
//! at once rather than at its next timer.
//! The lock is taken per signalling request, per claim and per session
//! event, never per media packet: a worker keeps its own maps of what is
//! homed on it.
//!
//! An unclaimed session is dropped 30 s after its POST ([`CLAIM_TIMEOUT`]);
//! the workers call [`Registry::collect_garbage`] about once a second and
//! every POST does too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info};
use uturn_ice::Credentials;
use uturn_sdp::{MediaKind, NegotiatedMedia};
use uturn_stun::Message;

use crate::mailbox::{Command, Mailbox, SessionId};
use crate::negotiate::StreamSsrcs;
use crate::router::ViewerSpec;
use crate::signal::Kind;

mod signalling;

/// How long a session may wait for its first authenticated ICE check
/// after its POST (docs/media.md "Lifetimes"; the same 30 s as consent,
/// RFC 7675 §5.1).
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// Default session limit ([`RegistryConfig::max_sessions`]).
pub const DEFAULT_MAX_SESSIONS: usize = 1000;

/// Remote addresses remembered per session: a bound in case an engine
/// registers more than it forgets (it keeps fewer itself).
const MAX_REMOTES_PER_SESSION: usize = 16;

/// What the registry and the engines need to know about the relay.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Host candidates to announce: the listener addresses with
    /// `--external-ip` applied (the dataplane computes them).
    pub candidates: Vec<SocketAddr>,
    /// SRTP profiles offered in DTLS `use_srtp`, most preferred first.
    pub srtp_profiles: Vec<uturn_srtp::Profile>,
    /// Dataplane workers: one mailbox each, engines numbered `0..workers`.
    pub workers: usize,
    /// Sessions (publishers and viewers) at most; POSTs past it get 503.
    pub max_sessions: usize,
    /// Our DTLS certificate (its fingerprint goes into every answer).
    pub certificate: uturn_dtls::Certificate,
    /// A reading of both clocks at one moment, to turn an `Instant` into
    /// NTP time for sender reports (the engine owns no clock).
    pub unix_epoch: (Instant, SystemTime),
}

impl RegistryConfig {
    /// A configuration with the defaults: the DTLS default SRTP profiles
    /// (AES-128-GCM, then AES-128-CM-HMAC-SHA1-80) and
    /// [`DEFAULT_MAX_SESSIONS`]; `unix_epoch` is read from the clocks now.
    pub fn new(
        candidates: Vec<SocketAddr>,
        workers: usize,
        certificate: uturn_dtls::Certificate,
    ) -> RegistryConfig {
        RegistryConfig {
            candidates,
            srtp_profiles: uturn_dtls::DtlsConfig::default().profiles,
            workers,
            max_sessions: DEFAULT_MAX_SESSIONS,
            certificate,
            unix_epoch: (Instant::now(), SystemTime::now()),
        }
    }
}

/// What a worker gets when it claims a session: everything negotiated.
#[derive(Debug, Clone)]
pub(crate) struct SessionSetup {
    pub id: SessionId,
    pub kind: Kind,
    pub stream: String,
    pub local: Credentials,
    pub remote: Credentials,
    pub remote_candidates: Vec<(SocketAddr, u32)>,
    pub remote_fingerprint: [u8; 32],
    /// The accepted m-sections, from our side.
    pub media: Vec<NegotiatedMedia>,
    /// When it was POSTed.
    pub created: Instant,
    /// RTCP CNAME of what we send (viewers).
    pub cname: String,
}

/// The answer to a worker's [`Registry::claim`].
#[derive(Debug)]
pub(crate) enum Claim {
    /// Now homed on the caller.
    Claimed(Box<SessionSetup>),
    /// Homed on this worker already.
    Elsewhere(usize),
    /// The ufrag is a session's but the check's MESSAGE-INTEGRITY is not
    /// keyed with its password: dropped.
    Unauthenticated,
    /// Not a media session's ufrag: TURN's business.
    Unknown,
}

/// The answer to [`Registry::attach_viewer`].
#[derive(Debug)]
pub(crate) enum Attach {
    /// The stream's fan-out runs on the caller: attach it there.
    Local {
        publisher: SessionId,
        spec: Box<ViewerSpec>,
    },
    /// Mailed to the fan-out's home.
    Mailed { publisher: SessionId, home: usize },
    /// The publisher is not connected yet: held until it is.
    Held,
    /// The stream or the viewer is gone.
    Gone,
}

/// Sessions, streams, ufrags and the workers' mailboxes.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    fingerprint: [u8; 32],
    state: Mutex<State>,
    mailboxes: Vec<Mailbox>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Entry>,
    ufrags: HashMap<String, SessionId>,
    streams: HashMap<String, Stream>,
    remotes: HashMap<SocketAddr, SessionId>,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    stream: String,
    /// The URL id (`Created::session`).
    key: String,
    etag: String,
    /// Our current ICE ufrag and the peer's (an ICE restart changes both).
    ufrag: String,
    remote_ufrag: String,
    /// The mid and kind of one bundled m-section (for restart fragments).
    mid: (String, MediaKind),
    created: Instant,
    home: Home,
    remotes: Vec<SocketAddr>,
}

#[derive(Debug)]
enum Home {
    Unclaimed(Box<SessionSetup>),
    Claimed(usize),
}

#[derive(Debug)]
struct Stream {
    publisher: SessionId,
    /// The publisher's accepted m-sections (WHEP answers use its codecs).
    media: Vec<NegotiatedMedia>,
    ssrcs: StreamSsrcs,
    viewers: Vec<SessionId>,
    /// The worker running the fan-out, once the publisher's DTLS is up.
    router: Option<usize>,
    /// Viewers connected before the fan-out was up.
    held: Vec<(SessionId, Box<ViewerSpec>)>,
}

impl Registry {
    /// A registry with no sessions.
    pub fn new(config: RegistryConfig) -> Arc<Registry> {
        let fingerprint = config.certificate.fingerprint();
        let mailboxes = (0..config.workers.max(1))
            .map(|_| Mailbox::default())
            .collect();
        Arc::new(Registry {
            config,
            fingerprint,
            state: Mutex::new(State::default()),
            mailboxes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Sessions now (claimed or not).
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Commands dropped because a worker's mailbox was full.
    pub fn mail_dropped(&self) -> u64 {
        self.mailboxes.iter().map(Mailbox::dropped).sum()
    }

    /// Drops sessions still unclaimed [`CLAIM_TIMEOUT`] after their POST.
    pub fn collect_garbage(&self, now: Instant) {
        let mut state = self.lock();
        self.collect_garbage_locked(&mut state, now);
    }

    /// Sets how to wake worker `worker` when mail reaches its empty
    /// mailbox (the dataplane: a waker that signals the eventfd the
    /// worker's backend watches); `None` removes it (the worker stopped).
    /// Set once when the worker starts; replacing it is allowed. Without
    /// one, mail waits until the worker's next loop turn. If mail is
    /// already waiting, the new waker is woken at once.
    pub fn set_waker(&self, worker: usize, waker: Option<Waker>) {
        if let Some(m) = self.mailboxes.get(worker) {
            m.set_waker(waker);
        }
    }

    // Worker-facing.

    /// Whether `worker` has mail (one atomic load).
    pub(crate) fn has_mail(&self, worker: usize) -> bool {
        self.mailboxes.get(worker).is_some_and(Mailbox::has_mail)
    }

    /// Moves `worker`'s mail to `out`.
    pub(crate) fn take_mail(&self, worker: usize, out: &mut Vec<Command>) {
        if let Some(m) = self.mailboxes.get(worker) {
            m.take(out);
        }
    }

    /// Queues a command for `worker`, waking it if its mailbox was empty;
    /// false if it was dropped.
    pub(crate) fn send(&self, worker: usize, command: Command) -> bool {
        match self.mailboxes.get(worker) {
            Some(m) => m.push(command),
            None => false,
        }
    }

    /// A worker received a check addressed to `ufrag` that is not homed on
    /// it. Claims the session for `worker` if it is unclaimed and the
    /// check authenticates with its password (RFC 8489 §9.1.3).
    pub(crate) fn claim(&self, ufrag: &str, worker: usize, msg: &Message<'_>) -> Claim {
        let mut state = self.lock();
        let Some(&id) = state.ufrags.get(ufrag) else {
            return Claim::Unknown;
        };
        let Some(entry) = state.sessions.get_mut(&id) else {
            return Claim::Unknown;
        };
        let setup = match &entry.home {
            Home::Claimed(home) => return Claim::Elsewhere(*home),
            Home::Unclaimed(setup) => setup,
        };
        if msg.check_integrity(setup.local.pwd().as_bytes()).is_err() {
            return Claim::Unauthenticated;
        }
        let Home::Unclaimed(setup) = std::mem::replace(&mut entry.home, Home::Claimed(worker))
        else {
            return Claim::Unknown;
        };
        debug!(session = id, worker, "media session claimed");
        Claim::Claimed(setup)
    }

    /// The home of the session `remote` belongs to (an address that sent
    /// it a valid check), if claimed.
    pub(crate) fn home_of(&self, remote: SocketAddr) -> Option<usize> {
        let state = self.lock();
        let id = state.remotes.get(&remote)?;
        match state.sessions.get(id)?.home {
            Home::Claimed(w) => Some(w),
            Home::Unclaimed(_) => None,
        }
    }

    /// `remote` sent session `id` a valid check (or ICE selected it):
    /// datagrams from it that reach another worker are forwarded home.
    pub(crate) fn register_remote(&self, id: SessionId, remote: SocketAddr) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(entry) = state.sessions.get_mut(&id) else {
            return;
        };
        if !entry.remotes.contains(&remote) {
            if entry.remotes.len() >= MAX_REMOTES_PER_SESSION {
                let old = entry.remotes.remove(0);
                if state.remotes.get(&old) == Some(&id) {
                    state.remotes.remove(&old);
                }
            }
            entry.remotes.push(remote);
        }
        state.remotes.insert(remote, id);
    }

    /// The engine stopped mapping `remote` to session `id`.
    pub(crate) fn forget_remote(&self, id: SessionId, remote: SocketAddr) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.remotes.get(&remote) == Some(&id) {
            state.remotes.remove(&remote);
        }
        if let Some(entry) = state.sessions.get_mut(&id) {
            entry.remotes.retain(|r| *r != remote);
        }
    }

    /// The publisher `id`'s fan-out is up on `worker`: returns the viewers
    /// that were waiting for it.
    pub(crate) fn publisher_ready(
        &self,
        id: SessionId,
        worker: usize,
    ) -> Vec<(SessionId, Box<ViewerSpec>)> {
        let mut state = self.lock();
        let Some(stream) = state.sessions.get(&id).map(|e| e.stream.clone()) else {
            return Vec::new();
        };
        match state.streams.get_mut(&stream) {
            Some(s) if s.publisher == id => {
                s.router = Some(worker);
                std::mem::take(&mut s.held)
            }
            _ => Vec::new(),
        }
    }

    /// Viewer `viewer`'s DTLS is up on `worker`: add it to its stream's
    /// fan-out, wherever that runs.
    pub(crate) fn attach_viewer(
        &self,
        viewer: SessionId,
        spec: Box<ViewerSpec>,
        worker: usize,
    ) -> Attach {
        let mut state = self.lock();
        let Some(stream) = state.sessions.get(&viewer).map(|e| e.stream.clone()) else {
            return Attach::Gone;
        };
        let Some(s) = state.streams.get_mut(&stream) else {
            return Attach::Gone;
        };
        if !s.viewers.contains(&viewer) {
            return Attach::Gone;
        }
        let publisher = s.publisher;
        match s.router {
            Some(home) if home == worker => Attach::Local { publisher, spec },
            Some(home) => {
                if self.send(home, Command::AttachViewer { publisher, spec }) {
                    Attach::Mailed { publisher, home }
                } else {
                    Attach::Gone
                }
            }
            None => {
                s.held.push((viewer, spec));
                Attach::Held
            }
        }
    }

    /// Where viewer `viewer`'s feedback goes: its stream's publisher and
    /// the worker running the fan-out, once that is up.
    pub(crate) fn upstream_of(&self, viewer: SessionId) -> Option<(SessionId, usize)> {
        let state = self.lock();
        let stream = &state.sessions.get(&viewer)?.stream;
        let s = state.streams.get(stream)?;
        Some((s.publisher, s.router?))
    }

    /// Session `id` ended on its home `worker` (consent lost, DTLS closed
    /// or failed, DELETE, shutdown): forgets it and everything it held. A
    /// publisher's viewers are ended through their homes' mailboxes. Does
    /// nothing for a session already forgotten.
    pub(crate) fn session_ended(&self, id: SessionId, worker: usize) {
        let mut state = self.lock();
        self.remove_session(&mut state, id, Some(worker));
    }

    // Internals.

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave the maps
        // half-updated in a way that matters more than stopping service.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn collect_garbage_locked(&self, state: &mut State, now: Instant) {
        let expired: Vec<SessionId> = state
            .sessions
            .iter()
            .filter(|(_, e)| {
                matches!(e.home, Home::Unclaimed(_))
                    && now.saturating_duration_since(e.created) >= CLAIM_TIMEOUT
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            debug!(session = id, "media session never claimed: dropped");
            self.remove_session(state, id, None);
        }
    }

    /// Forgets session `id`. `caller` is the worker that ended it (it
    /// cleans up its own side itself), `None` for the HTTP thread and GC.
    fn remove_session(&self, state: &mut State, id: SessionId, caller: Option<usize>) {
        let Some(entry) = state.sessions.remove(&id) else {
            return;
        };
        if state.ufrags.get(&entry.ufrag) == Some(&id) {
            state.ufrags.remove(&entry.ufrag);
        }
        for r in &entry.remotes {
            if state.remotes.get(r) == Some(&id) {
                state.remotes.remove(r);
            }
        }
        match entry.kind {
            Kind::Publisher => {
                let ours = state
                    .streams
                    .get(&entry.stream)
                    .is_some_and(|s| s.publisher == id);
                if !ours {
                    return;
                }
                let Some(stream) = state.streams.remove(&entry.stream) else {
                    return;
                };
                info!(stream = %entry.stream, viewers = stream.viewers.len(), "stream ended");
                for viewer in stream.viewers {
                    let home = state.sessions.get(&viewer).map(|e| match e.home {
                        Home::Claimed(w) => Some(w),
                        Home::Unclaimed(_) => None,
                    });
                    if let Some(Some(w)) = home {
                        self.send(w, Command::EndSession(viewer));
                    }
                    self.remove_session(state, viewer, None);
                }
            }
            Kind::Viewer => {
                if let Some(s) = state.streams.get_mut(&entry.stream) {
                    s.viewers.retain(|v| *v != id);
                    s.held.retain(|(v, _)| *v != id);
                    if let Some(home) = s.router.filter(|h| Some(*h) != caller) {
                        let publisher = s.publisher;
                        self.send(
                            home,
                            Command::DetachViewer {
                                publisher,
                                viewer: id,
                            },
                        );
                    }
                }
            }
        }
    }
}
