//! The TURN server state machine (RFC 8656 §§5–12 over UDP) and STUN
//! Binding (RFC 8489 §3.5), sans-IO.
//!
//! [`Server`] takes datagrams (`handle_datagram`), relay-bind answers
//! (`handle_relay_bound`) and the passing of time (`handle_timeout`), and
//! queues what it decided: responses ([`Transmit`]) and forwarding-rule
//! changes ([`RuleChange`]) for the dataplane. The crate docs give the call
//! order.
//!
//! How a request is processed, in RFC order:
//!
//! 1. A response already sent for this (5-tuple, transaction ID) is sent
//!    again unchanged (RFC 8489 §6.3.1; `transaction.rs`).
//! 2. A FINGERPRINT that does not match: not STUN, dropped (§7.3).
//! 3. Unknown comprehension-required attributes: 420 (§7.3.1).
//! 4. Binding: answered without authentication.
//! 5. Everything else: the long-term credential checks of §9.2.4
//!    (`authenticate.rs`), then the method: Allocate (`allocate.rs`, RFC
//!    8656 §7), Refresh (`refresh.rs`, §8), CreatePermission and
//!    ChannelBind (`permission.rs`, §10, §12.2).
//!
//! Responses to authenticated requests are signed with the request's key
//! and remembered for retransmissions; the 401/438 challenges are neither.
//! Indications, responses and ChannelData never get an answer; Send
//! indications and ChannelData are the dataplane's to forward, and if one
//! reaches this point anyway it is dropped.
//!
//! Lifetimes are measured with the `Instant`s the caller passes in. Each
//! deadline (allocation, permission, channel, channel-number hold,
//! reservation, pending relay bind) sits in one heap (`timer.rs`); when it
//! comes due the matching `Remove*`/`CloseRelay` rules are emitted.
//!
//! Simplification: a dual-stack allocation has one lifetime for both
//! relayed addresses, so a Refresh with REQUESTED-ADDRESS-FAMILY refreshes
//! (or with LIFETIME 0 deletes) the whole allocation, after checking the
//! family is one of its own (else 443). Removing one family alone would need
//! a rule change the dataplane contract does not have.

mod allocate;
mod authenticate;
mod permission;
mod refresh;
mod response;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use tracing::{debug, trace, warn};
use uturn_stun::attribute::{Attribute, AttributeType, PasswordAlgorithms};
use uturn_stun::message::{Class, Message, Method};

use self::allocate::PendingAllocation;
use self::response::Reply;
pub use self::response::RequestError;
use crate::allocation::{family_of, push_exact, Allocation, ChannelHold};
use crate::nonce::{NonceKey, SecurityFeatures};
use crate::ports::{IpFamily, ReservationToken};
use crate::timer::Timers;
use crate::transaction::TransactionCache;
use crate::{
    AllocationId, Credentials, FiveTuple, PeerFilter, PortPool, QuotaLedger, RuleChange,
    TimeProvider, Transmit,
};

/// How long the port after an EVEN-PORT (R bit) allocation stays reserved
/// (RFC 8656 §7.2: "approximately 30 seconds").
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// How long after a channel binding expires its number and peer stay
/// unavailable for binding to anything else.
///
/// RFC 8656 §12 puts this 5-minute wait on the client: after a binding
/// expires, it must not bind that number to another peer, or that peer to
/// another number, for 5 minutes, so ChannelData still in flight for the old
/// binding cannot reach a new peer. The server enforces the same hold (400)
/// so the race cannot happen even with a client that does not wait.
pub const CHANNEL_REUSE_HOLD: Duration = Duration::from_secs(300);
/// How long an Allocate waits for `handle_relay_bound` before giving up
/// with 508 (the driver answers synchronously; this only guards against a
/// driver bug leaking ports and quota).
pub const RELAY_BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// Relay ports tried for one relayed address before answering 508.
pub const MAX_BIND_ATTEMPTS: u8 = 10;

/// Output bounds: the caller drains after every input, so these are only
/// reached if it does not. Past them new requests are dropped (transmits)
/// or expiry work waits (rule changes), so neither queue grows unbounded
/// and no rule change is ever lost.
const MAX_QUEUED_TRANSMITS: usize = 1024;
const MAX_QUEUED_RULE_CHANGES: usize = 4096;
/// Deadlines handled per `handle_timeout` call (bounded work per input).
const MAX_EXPIRIES_PER_CALL: usize = 1024;
/// Allocations waiting for their relay socket at once.
const MAX_PENDING_ALLOCATIONS: usize = 64;

/// Everything the operator configures about TURN behaviour.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// REALM sent in 401 responses and used in long-term keys.
    pub realm: String,
    /// SOFTWARE attribute in responses; `None` sends none.
    pub software: Option<String>,
    /// Local IPv4 address relay sockets bind to; `None`: no IPv4 relaying (440).
    pub relay_ipv4: Option<Ipv4Addr>,
    /// Local IPv6 address relay sockets bind to; `None`: no IPv6 relaying (440).
    pub relay_ipv6: Option<Ipv6Addr>,
    /// Public address advertised in XOR-RELAYED-ADDRESS instead of
    /// `relay_ipv4` (1:1 NAT, `--external-ip PUBLIC[/PRIVATE]`).
    pub external_ipv4: Option<Ipv4Addr>,
    /// As `external_ipv4`, for IPv6.
    pub external_ipv6: Option<Ipv6Addr>,
    /// Listener addresses: never reachable as peers.
    pub listeners: Vec<SocketAddr>,
    /// Allocation lifetime when the client asks for none (RFC 8656 §7.2: 600 s).
    pub default_lifetime: Duration,
    /// Upper bound on a requested lifetime (RFC 8656 §7.2: 3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime (RFC 8656 §9: 300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (RFC 8656 §12: 600 s).
    pub channel_lifetime: Duration,
    /// How long a NONCE stays valid before 438 Stale Nonce.
    pub nonce_lifetime: Duration,
    /// Only accept RFC 8656's channel range 0x4000–0x4FFF (default: RFC 5766's 0x4000–0x7FFE).
    pub strict_channel_range: bool,
    /// Allocations per username (0: unlimited) — 486 past it.
    pub user_quota: u32,
    /// Allocations on the whole relay (0: unlimited) — 486 past it.
    pub total_quota: u32,
    /// Responses kept for retransmitted requests, per server instance.
    pub transaction_cache_size: usize,
    /// Static users and REST secrets.
    pub credentials: Credentials,
    /// Which peers may be reached.
    pub peer_filter: PeerFilter,
    /// Relay port range, inclusive.
    pub min_port: u16,
    /// Relay port range, inclusive.
    pub max_port: u16,
}

impl ServerConfig {
    /// A configuration with the RFC's lifetimes (allocation 600 s default,
    /// 3600 s max; permission 300 s; channel 600 s), a 1-hour nonce, no
    /// quotas, no relay address (set `relay_ipv4`/`relay_ipv6`), the IANA
    /// dynamic port range and a 10 000-entry transaction cache.
    pub fn new(
        realm: impl Into<String>,
        credentials: Credentials,
        peer_filter: PeerFilter,
    ) -> Self {
        ServerConfig {
            realm: realm.into(),
            software: None,
            relay_ipv4: None,
            relay_ipv6: None,
            external_ipv4: None,
            external_ipv6: None,
            listeners: Vec::new(),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(3600),
            strict_channel_range: false,
            user_quota: 0,
            total_quota: 0,
            transaction_cache_size: 10_000,
            credentials,
            peer_filter,
            min_port: 49152,
            max_port: 65535,
        }
    }
}

/// State shared by every worker's [`Server`]: touched only on the control
/// path (allocation creation and deletion, nonce issue and check), never
/// per relayed packet.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Relay ports, reserved across all workers.
    pub ports: Arc<PortPool>,
    /// Live allocations per user and in total, for 486.
    pub quota: Arc<QuotaLedger>,
    /// The key nonces are issued and checked with: a client may reach
    /// another worker (another listener) with a nonce this one issued.
    pub nonce_key: Arc<NonceKey>,
}

impl Shared {
    /// Creates the shared state for a relay run with `config` (a random nonce key).
    ///
    /// The nonce announces "Username anonymity" (RFC 8489 §9.2.5: the client
    /// must then send USERHASH instead of USERNAME) only when every user is
    /// a static one: a TURN REST username carries its expiry and cannot be
    /// looked up from its hash, so announcing it with REST secrets configured
    /// would lock out conforming clients.
    pub fn new(config: &ServerConfig) -> Self {
        let features = if config.credentials.has_rest_secrets() {
            SecurityFeatures::PASSWORD_ALGORITHMS
        } else {
            NonceKey::DEFAULT_FEATURES
        };
        Shared::with_nonce_key(config, NonceKey::random().with_features(features))
    }

    /// As [`Shared::new`] with a given nonce key (tests; several processes
    /// behind one address).
    pub fn with_nonce_key(config: &ServerConfig, nonce_key: NonceKey) -> Self {
        Shared {
            ports: Arc::new(PortPool::new(config.min_port, config.max_port)),
            quota: Arc::new(QuotaLedger::new(config.user_quota, config.total_quota)),
            nonce_key: Arc::new(nonce_key),
        }
    }
}

/// Counters the control plane keeps; the binary exports them as metrics.
/// `allocations`, `permissions` and `channels` are current values (gauges);
/// the rest count events since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub allocations: u64,
    pub permissions: u64,
    pub channels: u64,
    /// Requests refused for bad credentials (not the first 401 challenge,
    /// nor a 438 for an expired nonce).
    pub auth_failures: u64,
    /// STUN requests handled (retransmissions included).
    pub requests: u64,
    /// Retransmitted requests answered from the transaction cache.
    pub retransmissions: u64,
    /// Error responses sent (401 challenges included).
    pub error_responses: u64,
    /// Datagrams dropped unanswered: unparsable, bad FINGERPRINT,
    /// indications and ChannelData, or outputs not drained.
    pub dropped: u64,
}

/// What a heap deadline belongs to (see `timer.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The allocation's earliest deadline (`Allocation::next_deadline`).
    Allocation(AllocationId),
    Reservation(ReservationToken),
}

/// One worker's TURN server.
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
    shared: Shared,
    time: Arc<dyn TimeProvider>,
    /// Boxed: a hash table is 7/16 to 7/8 full, so each entry costs about
    /// 1.5 times its size; an 8-byte pointer wastes less of that than a
    /// 200-byte `Allocation` would (about 90 bytes less per allocation).
    allocations: HashMap<AllocationId, Box<Allocation>>,
    /// Allocation ids by 5-tuple. Only the id is stored; the 5-tuple is
    /// read from the allocation, which saves a `FiveTuple` (64 bytes) per
    /// allocation over a `HashMap<FiveTuple, AllocationId>`. Invariant:
    /// every id here is in `allocations`.
    by_five_tuple: HashTable<AllocationId>,
    /// Keys the index's hash: 5-tuples are chosen by clients (HashDoS).
    five_tuple_hasher: RandomState,
    /// Allocate requests waiting for `handle_relay_bound` (few; scanned).
    pending: Vec<PendingAllocation>,
    /// Reservations this server made, until they expire (for the timer
    /// rebuild and shutdown).
    reservations: HashMap<ReservationToken, Instant>,
    next_allocation: u64,
    timers: Timers<TimerKey>,
    /// Heap size past which stale entries are shed.
    timers_rebuild_at: usize,
    transactions: TransactionCache,
    transmits: VecDeque<Transmit>,
    rule_changes: VecDeque<RuleChange>,
    stats: Stats,
}

impl Server {
    pub fn new(config: Arc<ServerConfig>, shared: Shared, time: Arc<dyn TimeProvider>) -> Self {
        let transactions = TransactionCache::new(config.transaction_cache_size);
        Server {
            config,
            shared,
            time,
            allocations: HashMap::new(),
            by_five_tuple: HashTable::new(),
            five_tuple_hasher: RandomState::new(),
            pending: Vec::new(),
            reservations: HashMap::new(),
            next_allocation: 1,
            timers: Timers::new(),
            timers_rebuild_at: 1024,
            transactions,
            transmits: VecDeque::new(),
            rule_changes: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// A datagram from a client arrived on a listener: STUN requests and
    /// indications, and ChannelData/Send the dataplane did not forward itself.
    pub fn handle_datagram(&mut self, now: Instant, from: FiveTuple, datagram: &[u8]) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS
            || self.rule_changes.len() >= MAX_QUEUED_RULE_CHANGES
        {
            // Debug, not warn: this fires per datagram while it lasts.
            debug!("outputs not drained: datagram dropped");
            self.stats.dropped += 1;
            return;
        }
        let msg = match Message::parse(datagram) {
            Ok(msg) => msg,
            Err(e) => {
                // ChannelData, garbage, or a broken STUN message: without a
                // trusted transaction ID there is nothing to answer.
                trace!(client = %from.client, error = %e, "not a STUN message, dropped");
                self.stats.dropped += 1;
                return;
            }
        };
        match msg.class() {
            Class::Request => self.handle_request(now, from, &msg),
            _ => {
                // Indications (Binding keepalives, Send the dataplane did not
                // take) and stray responses get no answer (RFC 8489 §6.3.2).
                trace!(client = %from.client, method = msg.method().0, "indication or response ignored");
                self.stats.dropped += 1;
            }
        }
        self.shed_stale_timers();
    }

    /// The answer to [`RuleChange::OpenRelay`].
    pub fn handle_relay_bound(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        result: Result<(), std::io::Error>,
    ) {
        self.relay_bound(now, relay, result);
        self.shed_stale_timers();
    }

    /// Time passed: expire allocations, permissions, channels, reservations
    /// and cached transactions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.expire(now);
        // Few (bounded), and usually none: scanned rather than kept in the heap.
        while let Some(index) = self.pending.iter().position(|p| p.deadline <= now) {
            warn!("relay bind not answered in time");
            let pending = self.pending.swap_remove(index);
            self.fail_pending(
                now,
                pending,
                RequestError::InsufficientCapacity("relay bind timed out"),
            );
        }
        let mut budget = MAX_EXPIRIES_PER_CALL;
        while budget > 0 && self.rule_changes.len() < MAX_QUEUED_RULE_CHANGES {
            let Some((at, key)) = self.timers.pop_due(now) else {
                break;
            };
            budget -= 1;
            self.on_timer(now, at, key);
        }
        self.shed_stale_timers();
    }

    /// Ends every allocation (clean shutdown): emits their removal.
    pub fn shutdown(&mut self) {
        let ids: Vec<AllocationId> = self.allocations.keys().copied().collect();
        for id in ids {
            self.delete_allocation(id, "shutdown");
        }
        for pending in std::mem::take(&mut self.pending) {
            self.abandon_pending(pending);
        }
        for (token, _) in self.reservations.drain() {
            self.shared.ports.cancel_reservation(token);
        }
        self.timers.rebuild([]);
        self.transactions = TransactionCache::new(self.config.transaction_cache_size);
    }

    pub fn poll_rule_change(&mut self) -> Option<RuleChange> {
        self.rule_changes.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.iter().map(|p| p.deadline);
        [self.timers.next(), self.transactions.next_expiry()]
            .into_iter()
            .flatten()
            .chain(pending)
            .min()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn handle_request(&mut self, now: Instant, from: FiveTuple, msg: &Message<'_>) {
        self.stats.requests += 1;
        let tid = msg.transaction_id();
        if let Some(response) = self.transactions.get(&(from, tid.0), now) {
            let response = response.to_vec();
            debug!(client = %from.client, method = msg.method().0, "retransmission answered from cache");
            self.stats.retransmissions += 1;
            self.send(from, response);
            return;
        }
        let fingerprint = msg.attribute(AttributeType::FINGERPRINT).is_some();
        if fingerprint && msg.check_fingerprint().is_err() {
            // RFC 8489 §7.3: a bad FINGERPRINT means "not STUN".
            trace!(client = %from.client, "bad FINGERPRINT, dropped");
            self.stats.dropped += 1;
            return;
        }
        let config = Arc::clone(&self.config);
        let software = config.software.as_deref();
        let mut reply = Reply {
            tid,
            method: msg.method(),
            integrity: None,
            fingerprint,
        };

        // RFC 8489 §7.3.1: unknown comprehension-required attributes are
        // refused before anything else, authentication included. At most
        // 32 are listed; one is enough for the client to know.
        let unknown: Vec<AttributeType> = msg.unknown_comprehension_required().take(32).collect();
        if !unknown.is_empty() {
            debug!(client = %from.client, method = msg.method().0, ?unknown, "420 unknown attributes");
            self.stats.error_responses += 1;
            if let Some(bytes) = reply.unknown_attributes(software, &unknown) {
                self.send(from, bytes);
            }
            return;
        }

        match msg.method() {
            Method::BINDING => {
                trace!(client = %from.client, "binding request");
                if let Some(bytes) =
                    reply.success(software, &[Attribute::XorMappedAddress(from.client)])
                {
                    self.send(from, bytes);
                }
                return;
            }
            Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND => {}
            other => {
                debug!(client = %from.client, method = other.0, "400 unknown method");
                self.stats.error_responses += 1;
                if let Some(bytes) =
                    reply.error(software, &RequestError::BadRequest("unknown method"), &[])
                {
                    self.send(from, bytes);
                }
                return;
            }
        }

        let now_unix = self.time.unix_now();
        let auth = match authenticate::authenticate(
            msg,
            from.client,
            &config,
            &self.shared.nonce_key,
            now_unix,
        ) {
            Ok(auth) => auth,
            Err(failure) => {
                self.refuse_unauthenticated(from, msg, &reply, failure, now_unix);
                return;
            }
        };
        reply.integrity = Some(auth.integrity);
        debug!(client = %from.client, user = %auth.username, method = msg.method().0, "request");

        let result = match msg.method() {
            Method::ALLOCATE => self.allocate(now, from, msg, auth, reply.clone()),
            Method::REFRESH => self.refresh(now, from, msg, &auth, &reply),
            Method::CREATE_PERMISSION => self.create_permission(now, from, msg, &auth, &reply),
            _ => self.channel_bind(now, from, msg, &auth, &reply),
        };
        match result {
            Ok(Some(bytes)) => self.respond(now, from, tid.0, bytes),
            // An Allocate waiting for its relay socket.
            Ok(None) => {}
            Err(error) => {
                debug!(
                    client = %from.client, method = msg.method().0, code = error.code(), %error,
                    "request refused"
                );
                self.stats.error_responses += 1;
                if let Some(bytes) = reply.error(software, &error, &[]) {
                    self.respond(now, from, tid.0, bytes);
                }
            }
        }
    }

    /// Answers a request that failed authentication: a challenge (REALM, a
    /// fresh NONCE, PASSWORD-ALGORITHMS) or a plain 400, never signed and
    /// never cached, so unauthenticated sources leave no state behind.
    fn refuse_unauthenticated(
        &mut self,
        from: FiveTuple,
        msg: &Message<'_>,
        reply: &Reply,
        failure: authenticate::AuthFailure,
        now_unix: u64,
    ) {
        if failure.counted {
            self.stats.auth_failures += 1;
        }
        self.stats.error_responses += 1;
        debug!(
            client = %from.client, method = msg.method().0, code = failure.error.code(),
            error = %failure.error, "authentication refused"
        );
        let config = Arc::clone(&self.config);
        let software = config.software.as_deref();
        let bytes = if failure.challenge {
            let nonce = self
                .shared
                .nonce_key
                .issue(from.client, now_unix, config.nonce_lifetime);
            let challenge = [
                Attribute::Realm(&config.realm),
                Attribute::Nonce(&nonce),
                Attribute::PasswordAlgorithms(PasswordAlgorithms::MD5_AND_SHA256),
            ];
            reply.error(software, &failure.error, &challenge)
        } else {
            reply.error(software, &failure.error, &[])
        };
        if let Some(bytes) = bytes {
            self.send(from, bytes);
        }
    }

    /// Sends the response to an authenticated request and remembers it for
    /// retransmissions.
    fn respond(&mut self, now: Instant, to: FiveTuple, tid: [u8; 12], response: Vec<u8>) {
        self.transactions.insert((to, tid), &response, now);
        self.send(to, response);
    }

    fn send(&mut self, to: FiveTuple, contents: Vec<u8>) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            debug!("transmit queue full: response dropped");
            self.stats.dropped += 1;
            return;
        }
        self.transmits.push_back(Transmit {
            source: to.server,
            destination: to.client,
            contents,
        });
    }

    fn emit(&mut self, change: RuleChange) {
        self.rule_changes.push_back(change);
    }

    /// The allocation on `from`, checked to belong to `username` (RFC 8656
    /// §5: every request on an allocation uses the same credentials).
    fn allocation_of(&self, from: FiveTuple, username: &str) -> Result<AllocationId, RequestError> {
        let id = self
            .allocation_on(&from)
            .ok_or(RequestError::AllocationMismatch)?;
        let allocation = self
            .allocations
            .get(&id)
            .ok_or(RequestError::AllocationMismatch)?;
        if &*allocation.username != username {
            return Err(RequestError::WrongCredentials);
        }
        Ok(id)
    }

    /// The allocation on `five_tuple`, if any.
    fn allocation_on(&self, five_tuple: &FiveTuple) -> Option<AllocationId> {
        let hash = self.five_tuple_hasher.hash_one(five_tuple);
        self.by_five_tuple
            .find(hash, |id| {
                self.allocations
                    .get(id)
                    .is_some_and(|a| a.five_tuple == *five_tuple)
            })
            .copied()
    }

    /// Adds `allocation` under `id`, indexed by its 5-tuple (which has no
    /// allocation yet: `allocate` checked).
    fn insert_allocation(&mut self, id: AllocationId, allocation: Allocation) {
        let hash = self.five_tuple_hasher.hash_one(allocation.five_tuple);
        self.allocations.insert(id, Box::new(allocation));
        let (allocations, hasher) = (&self.allocations, &self.five_tuple_hasher);
        self.by_five_tuple.insert_unique(hash, id, |id| {
            // Every indexed id is in `allocations`; 0 is never used.
            allocations
                .get(id)
                .map_or(0, |a| hasher.hash_one(a.five_tuple))
        });
    }

    /// Lifetime granted for a requested one (RFC 8656 §7.2, §8.2): the
    /// request capped at the maximum, and never below the default.
    fn granted_lifetime(&self, requested: Option<u32>) -> Duration {
        let default = self.config.default_lifetime;
        match requested {
            None => default,
            Some(secs) => Duration::from_secs(u64::from(secs))
                .min(self.config.max_lifetime)
                .max(default),
        }
    }

    /// The local address relay sockets of `family` bind to.
    fn relay_ip(&self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => self.config.relay_ipv4.map(IpAddr::V4),
            IpFamily::V6 => self.config.relay_ipv6.map(IpAddr::V6),
        }
    }

    /// The address clients and peers see for a relay socket (1:1 NAT).
    fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        let ip = match relay.ip() {
            IpAddr::V4(ip) => IpAddr::V4(self.config.external_ipv4.unwrap_or(ip)),
            IpAddr::V6(ip) => IpAddr::V6(self.config.external_ipv6.unwrap_or(ip)),
        };
        SocketAddr::new(ip, relay.port())
    }

    fn on_timer(&mut self, now: Instant, at: Instant, key: TimerKey) {
        match key {
            TimerKey::Allocation(id) => self.on_allocation_timer(now, at, id),
            TimerKey::Reservation(token) => {
                if self.reservations.remove(&token).is_some()
                    && self.shared.ports.expire_reservation(token, now)
                {
                    debug!("port reservation expired");
                }
            }
        }
    }

    /// Ends what is due in allocation `id`: the allocation itself, or its
    /// permissions, channels (which then start their reuse hold) and holds.
    fn on_allocation_timer(&mut self, now: Instant, at: Instant, id: AllocationId) {
        let Some(allocation) = self.allocations.get_mut(&id) else {
            return;
        };
        if at != allocation.scheduled {
            // Superseded by an earlier entry.
            return;
        }
        if allocation.expires <= now {
            self.delete_allocation(id, "expired");
            return;
        }
        let mut i = 0;
        while let Some(permission) = allocation.permissions.get(i).copied() {
            if permission.expires > now {
                i += 1;
                continue;
            }
            allocation.permissions.swap_remove(i);
            self.stats.permissions = self.stats.permissions.saturating_sub(1);
            debug!(allocation = id.0, peer = %permission.peer, "permission expired");
            self.rule_changes.push_back(RuleChange::RemovePermission {
                allocation: id,
                peer: permission.peer,
            });
        }
        let mut i = 0;
        while let Some(channel) = allocation.channels.get(i).copied() {
            if channel.expires > now {
                i += 1;
                continue;
            }
            allocation.channels.swap_remove(i);
            let until = channel.expires + CHANNEL_REUSE_HOLD;
            push_exact(
                &mut allocation.held,
                ChannelHold {
                    number: channel.number,
                    peer: channel.peer,
                    until,
                },
            );
            self.stats.channels = self.stats.channels.saturating_sub(1);
            debug!(allocation = id.0, channel = channel.number, peer = %channel.peer, "channel binding expired");
            self.rule_changes.push_back(RuleChange::RemoveChannel {
                allocation: id,
                channel: channel.number,
                peer: channel.peer,
            });
        }
        allocation.held.retain(|h| h.until > now);
        allocation.scheduled = allocation.next_deadline();
        self.timers
            .push(allocation.scheduled, TimerKey::Allocation(id));
    }

    /// After something in allocation `id` got a deadline: make sure its
    /// heap entry is not later than the earliest one.
    fn schedule(&mut self, id: AllocationId) {
        let Some(allocation) = self.allocations.get_mut(&id) else {
            return;
        };
        let next = allocation.next_deadline();
        if next < allocation.scheduled {
            allocation.scheduled = next;
            self.timers.push(next, TimerKey::Allocation(id));
        }
    }

    /// Removes an allocation with everything under it, and gives back its
    /// ports and quota.
    fn delete_allocation(&mut self, id: AllocationId, why: &'static str) {
        let Some(allocation) = self.allocations.remove(&id) else {
            return;
        };
        let hash = self.five_tuple_hasher.hash_one(allocation.five_tuple);
        if let Ok(entry) = self.by_five_tuple.find_entry(hash, |x| *x == id) {
            entry.remove();
        }
        self.emit(RuleChange::RemoveAllocation { allocation: id });
        for relay in allocation.relays() {
            self.emit(RuleChange::CloseRelay { relay });
            self.shared
                .ports
                .release(family_of(relay.ip()), relay.port());
        }
        self.shared.quota.release(&allocation.username);
        self.stats.allocations = self.stats.allocations.saturating_sub(1);
        self.stats.permissions = self
            .stats
            .permissions
            .saturating_sub(allocation.permissions.len() as u64);
        self.stats.channels = self
            .stats
            .channels
            .saturating_sub(allocation.channels.len() as u64);
        debug!(allocation = id.0, client = %allocation.five_tuple.client, why, "allocation removed");
    }

    /// Refreshes and deletions leave stale heap entries behind; when they
    /// outnumber the live deadlines, rebuild the heap from the live ones.
    fn shed_stale_timers(&mut self) {
        if self.timers.len() <= self.timers_rebuild_at {
            return;
        }
        let mut live = Vec::new();
        for (id, allocation) in &mut self.allocations {
            allocation.scheduled = allocation.next_deadline();
            live.push((allocation.scheduled, TimerKey::Allocation(*id)));
        }
        live.extend(
            self.reservations
                .iter()
                .map(|(token, at)| (*at, TimerKey::Reservation(*token))),
        );
        debug!(
            before = self.timers.len(),
            after = live.len(),
            "timer heap rebuilt"
        );
        self.timers_rebuild_at = 2 * live.len() + 1024;
        self.timers.rebuild(live);
    }
}
