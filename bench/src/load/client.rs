//! One session's TURN client, sans-IO: the control transactions a TURN
//! client runs over UDP (RFC 8656 §7 Allocate, §8 Refresh, §9
//! CreatePermission, §11 ChannelBind), with long-term credentials
//! (RFC 8489 §9.2) and retransmissions (RFC 8489 §6.2.1).
//!
//! The worker feeds it responses ([`TurnClient::handle_response`]) and
//! timeouts ([`TurnClient::handle_timeout`]), and drains
//! [`TurnClient::poll_transmit`] (bytes for the server), [`TurnClient::poll_event`]
//! and [`TurnClient::poll_timeout`], in that order after every input.
//! Time is `u64` nanoseconds on the worker's monotonic clock.
//!
//! One transaction at a time: setup is Allocate → CreatePermission →
//! ChannelBind (channel mode), then the client refreshes on time — the
//! allocation before its LIFETIME runs out, the permission (and channel)
//! every 240 s (permissions last 300 s, RFC 8656 §9; channels 600 s, §12).
//! This is control traffic, so it allocates freely.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use uturn_stun::attribute::PROTOCOL_UDP;
use uturn_stun::integrity::long_term_key_md5;
use uturn_stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId};

/// Initial retransmission timeout (RFC 8489 §6.2.1: 500 ms is the
/// recommended starting RTO when nothing is known about the path).
const RTO_NS: u64 = 500_000_000;
/// Transmissions per request, Rc (RFC 8489 §6.2.1).
const RC: u32 = 7;
/// After the last transmission wait Rm × RTO (RFC 8489 §6.2.1).
const RM: u64 = 16;
/// How often a stale nonce (438) may be answered by a retry in a row.
const STALE_RETRIES: u8 = 3;
/// Permission (and channel) refresh interval: permissions live 300 s
/// (RFC 8656 §9), so 240 s leaves a minute for retransmissions.
const PERMISSION_REFRESH_NS: u64 = 240 * 1_000_000_000;
/// Allocation lifetime assumed when a success lacks LIFETIME (RFC 8656
/// §7.2 default).
const DEFAULT_LIFETIME_S: u32 = 600;

/// Long-term credentials (static, or a TURN REST API pair).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Why a transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// An error response with this STUN error code.
    Code(u16),
    /// No response after every retransmission.
    Timeout,
    /// A response we could not use (no XOR-RELAYED-ADDRESS, bad ERROR-CODE).
    BadResponse,
}

impl Failure {
    /// The key in the summary's `setup_failures_by_code`.
    pub fn key(&self) -> String {
        match self {
            Failure::Code(code) => code.to_string(),
            Failure::Timeout => "timeout".to_owned(),
            Failure::BadResponse => "bad-response".to_owned(),
        }
    }
}

/// What the worker is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Allocation, permission and channel are in place.
    Ready { relayed: SocketAddr },
    /// Setup failed; the session takes no part in the run.
    SetupFailed(Failure),
    /// A refresh failed (the allocation may expire).
    RefreshFailed(Failure),
    /// The allocation was deleted (or the delete failed/timed out).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Allocate,
    CreatePermission,
    ChannelBind,
    /// Refresh with this LIFETIME (0 deletes the allocation).
    Refresh(Option<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Setup,
    Ready,
    Failed,
    Closing,
    Closed,
}

#[derive(Debug)]
struct Transaction {
    op: Op,
    tid: TransactionId,
    bytes: Vec<u8>,
    transmissions: u32,
    rto: u64,
    /// When to retransmit (or give up); meaningful once sent.
    next_at: u64,
    /// Waiting to be handed out by `poll_transmit`.
    unsent: bool,
}

/// One session's TURN client.
#[derive(Debug)]
pub struct TurnClient {
    credentials: Arc<Credentials>,
    peer: SocketAddr,
    channel: Option<u16>,
    state: State,
    /// Realm, nonce and key, once the server challenged us.
    auth: Option<Auth>,
    /// The request in flight and those waiting for it.
    tx: Option<Transaction>,
    queue: VecDeque<Op>,
    stale_retries: u8,
    /// Whether the request in flight carried credentials (a 401 then is final).
    relayed: Option<SocketAddr>,
    allocation_refresh_at: Option<u64>,
    permission_refresh_at: Option<u64>,
    events: VecDeque<Event>,
}

#[derive(Debug, Clone)]
struct Auth {
    realm: String,
    nonce: String,
    key: [u8; 16],
}

impl TurnClient {
    /// A client that will relay to `peer`, binding `channel` when given
    /// (channel mode) or using Send indications otherwise.
    pub fn new(credentials: Arc<Credentials>, peer: SocketAddr, channel: Option<u16>) -> Self {
        TurnClient {
            credentials,
            peer,
            channel,
            state: State::Idle,
            auth: None,
            tx: None,
            queue: VecDeque::with_capacity(4),
            stale_retries: 0,
            relayed: None,
            allocation_refresh_at: None,
            permission_refresh_at: None,
            events: VecDeque::with_capacity(2),
        }
    }

    /// The peer this client relays to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The relayed transport address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// Whether the session is set up (and not closing).
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether nothing more will happen (failed or closed).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Failed | State::Closed)
    }

    /// Starts the setup: Allocate, CreatePermission, ChannelBind.
    pub fn start(&mut self, now: u64) {
        if self.state != State::Idle {
            return;
        }
        self.state = State::Setup;
        self.queue.push_back(Op::Allocate);
        self.queue.push_back(Op::CreatePermission);
        if self.channel.is_some() {
            self.queue.push_back(Op::ChannelBind);
        }
        self.next_transaction(now);
    }

    /// Deletes the allocation (Refresh with LIFETIME 0, RFC 8656 §8).
    /// A client that never got one is closed at once.
    pub fn close(&mut self, now: u64) {
        match self.state {
            State::Ready | State::Setup if self.relayed.is_some() => {
                self.state = State::Closing;
                self.tx = None;
                self.queue.clear();
                self.queue.push_back(Op::Refresh(Some(0)));
                self.next_transaction(now);
            }
            State::Closing | State::Closed | State::Failed => {}
            _ => {
                self.state = State::Closed;
                self.tx = None;
                self.queue.clear();
                self.events.push_back(Event::Closed);
            }
        }
    }

    /// Bytes to send to the server, if a request is due.
    pub fn poll_transmit(&mut self, now: u64) -> Option<&[u8]> {
        let tx = self.tx.as_mut()?;
        if !tx.unsent {
            return None;
        }
        tx.unsent = false;
        tx.transmissions += 1;
        // After the last transmission, wait Rm × the initial RTO before
        // giving up; otherwise the RTO doubles each time.
        tx.next_at = if tx.transmissions >= RC {
            now + RM * RTO_NS
        } else {
            now + tx.rto
        };
        tx.rto = tx.rto.saturating_mul(2);
        Some(&tx.bytes)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`TurnClient::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let tx = self.tx.as_ref().filter(|t| !t.unsent).map(|t| t.next_at);
        let refresh = if self.state == State::Ready && self.tx.is_none() {
            min_opt(self.allocation_refresh_at, self.permission_refresh_at)
        } else {
            None
        };
        min_opt(tx, refresh)
    }

    /// Retransmits, gives up, or starts the refreshes that are due.
    pub fn handle_timeout(&mut self, now: u64) {
        if let Some(tx) = &mut self.tx {
            if !tx.unsent && now >= tx.next_at {
                if tx.transmissions >= RC {
                    self.fail(now, Failure::Timeout);
                } else {
                    tx.unsent = true;
                }
            }
            return;
        }
        if self.state != State::Ready {
            return;
        }
        if self.allocation_refresh_at.is_some_and(|t| now >= t) {
            self.allocation_refresh_at = None;
            self.queue.push_back(Op::Refresh(None));
        }
        if self.permission_refresh_at.is_some_and(|t| now >= t) {
            self.permission_refresh_at = None;
            self.queue.push_back(Op::CreatePermission);
            if self.channel.is_some() {
                self.queue.push_back(Op::ChannelBind);
            }
        }
        self.next_transaction(now);
    }

    /// Whether `datagram` (a STUN message from the server) answers the
    /// request in flight.
    pub fn is_response(&self, msg: &Message<'_>) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.tid == msg.transaction_id())
            && matches!(msg.class(), Class::Success | Class::Error)
    }

    /// Handles a response from the server; anything that does not answer
    /// the request in flight is ignored.
    pub fn handle_response(&mut self, now: u64, msg: &Message<'_>) {
        if !self.is_response(msg) {
            return;
        }
        let Some(op) = self.tx.as_ref().map(|t| t.op) else {
            return;
        };
        match msg.class() {
            Class::Success => {
                // Responses to authenticated requests must carry a valid
                // MESSAGE-INTEGRITY (RFC 8489 §9.2.5); a forged one is
                // ignored and the retransmission goes on.
                if let Some(auth) = &self.auth {
                    if msg.check_integrity(&auth.key).is_err() {
                        tracing::debug!("response with bad MESSAGE-INTEGRITY ignored");
                        return;
                    }
                }
                self.on_success(now, op, msg);
            }
            Class::Error => self.on_error(now, op, msg),
            _ => {}
        }
    }

    fn on_success(&mut self, now: u64, op: Op, msg: &Message<'_>) {
        self.stale_retries = 0;
        let tid = msg.transaction_id();
        let lifetime =
            msg.attribute(AttributeType::LIFETIME).and_then(|raw| {
                match Attribute::decode(raw, &tid) {
                    Ok(Attribute::Lifetime(s)) => Some(s),
                    _ => None,
                }
            });
        match op {
            Op::Allocate => {
                let relayed = msg
                    .attribute(AttributeType::XOR_RELAYED_ADDRESS)
                    .and_then(|raw| match Attribute::decode(raw, &tid) {
                        Ok(Attribute::XorRelayedAddress(a)) => Some(a),
                        _ => None,
                    });
                let Some(relayed) = relayed else {
                    self.fail(now, Failure::BadResponse);
                    return;
                };
                self.relayed = Some(relayed);
                self.schedule_allocation_refresh(now, lifetime);
            }
            Op::Refresh(Some(0)) => {
                self.tx = None;
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
                return;
            }
            Op::Refresh(_) => self.schedule_allocation_refresh(now, lifetime),
            Op::CreatePermission | Op::ChannelBind => {
                self.permission_refresh_at = Some(now + PERMISSION_REFRESH_NS);
            }
        }
        self.tx = None;
        if let (true, State::Setup, Some(relayed)) =
            (self.queue.is_empty(), self.state, self.relayed)
        {
            self.state = State::Ready;
            self.events.push_back(Event::Ready { relayed });
        }
        self.next_transaction(now);
    }

    fn on_error(&mut self, now: u64, op: Op, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let text = |typ| {
            msg.attribute(typ)
                .and_then(|raw| match Attribute::decode(raw, &tid) {
                    Ok(Attribute::Realm(s)) | Ok(Attribute::Nonce(s)) => Some(s.to_owned()),
                    _ => None,
                })
        };
        let code =
            msg.attribute(AttributeType::ERROR_CODE).and_then(|raw| {
                match Attribute::decode(raw, &tid) {
                    Ok(Attribute::ErrorCode { code, .. }) => Some(code),
                    _ => None,
                }
            });
        let Some(code) = code else {
            self.fail(now, Failure::BadResponse);
            return;
        };
        let nonce = text(AttributeType::NONCE);
        match code {
            // The challenge (RFC 8489 §9.2.3): answer once with credentials.
            401 if self.auth.is_none() => {
                let (Some(realm), Some(nonce)) = (text(AttributeType::REALM), nonce) else {
                    self.fail(now, Failure::BadResponse);
                    return;
                };
                let c = &self.credentials;
                let key = long_term_key_md5(&c.username, &realm, &c.password);
                self.auth = Some(Auth { realm, nonce, key });
                self.retry(now, op);
            }
            // Stale nonce (RFC 8489 §9.2.5): retry with the new one.
            438 if self.stale_retries < STALE_RETRIES => {
                let (Some(auth), Some(nonce)) = (&mut self.auth, nonce) else {
                    self.fail(now, Failure::Code(code));
                    return;
                };
                auth.nonce = nonce;
                self.stale_retries += 1;
                self.retry(now, op);
            }
            // Deleting an allocation the server no longer has is success.
            437 if op == Op::Refresh(Some(0)) => {
                self.tx = None;
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
            }
            _ => self.fail(now, Failure::Code(code)),
        }
    }

    fn schedule_allocation_refresh(&mut self, now: u64, lifetime: Option<u32>) {
        let granted = lifetime.unwrap_or(DEFAULT_LIFETIME_S);
        tracing::debug!(lifetime = granted, "allocation lifetime granted");
        let lifetime = u64::from(granted) * 1_000_000_000;
        // A minute before expiry for long lifetimes, half-way for short ones.
        let after = lifetime.saturating_sub(60_000_000_000).max(lifetime / 2);
        self.allocation_refresh_at = Some(now + after);
    }

    fn fail(&mut self, now: u64, failure: Failure) {
        self.tx = None;
        match self.state {
            State::Setup => {
                self.queue.clear();
                self.state = State::Failed;
                self.events.push_back(Event::SetupFailed(failure));
            }
            State::Closing => {
                self.queue.clear();
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
            }
            _ => {
                self.events.push_back(Event::RefreshFailed(failure));
                self.next_transaction(now);
            }
        }
    }

    /// Sends `op` again as a new transaction (after a 401 or 438).
    fn retry(&mut self, now: u64, op: Op) {
        self.tx = None;
        self.queue.push_front(op);
        self.next_transaction(now);
    }

    fn next_transaction(&mut self, _now: u64) {
        if self.tx.is_some() {
            return;
        }
        let Some(op) = self.queue.pop_front() else {
            return;
        };
        let tid = TransactionId(rand::random());
        let mut bytes = Vec::with_capacity(160);
        if let Err(e) = self.build(op, tid, &mut bytes) {
            // Only an over-long username or realm can get here.
            tracing::warn!(error = %e, "cannot build TURN request");
            self.queue.push_front(op);
            self.fail(_now, Failure::BadResponse);
            return;
        }
        self.tx = Some(Transaction {
            op,
            tid,
            bytes,
            transmissions: 0,
            rto: RTO_NS,
            next_at: 0,
            unsent: true,
        });
    }

    fn build(
        &self,
        op: Op,
        tid: TransactionId,
        out: &mut Vec<u8>,
    ) -> Result<(), uturn_stun::Error> {
        let method = match op {
            Op::Allocate => Method::ALLOCATE,
            Op::CreatePermission => Method::CREATE_PERMISSION,
            Op::ChannelBind => Method::CHANNEL_BIND,
            Op::Refresh(_) => Method::REFRESH,
        };
        let mut b = MessageBuilder::new(out, Class::Request, method, tid);
        match op {
            Op::Allocate => b.add(&Attribute::RequestedTransport(PROTOCOL_UDP))?,
            Op::CreatePermission => b.add(&Attribute::XorPeerAddress(self.peer))?,
            Op::ChannelBind => {
                // Set in channel mode, the only mode that queues ChannelBind.
                let channel = self.channel.unwrap_or(0x4000);
                b.add(&Attribute::ChannelNumber(channel))?;
                b.add(&Attribute::XorPeerAddress(self.peer))?;
            }
            Op::Refresh(lifetime) => {
                if let Some(l) = lifetime {
                    b.add(&Attribute::Lifetime(l))?;
                }
            }
        }
        if let Some(auth) = &self.auth {
            b.add(&Attribute::Username(&self.credentials.username))?;
            b.add(&Attribute::Realm(&auth.realm))?;
            b.add(&Attribute::Nonce(&auth.nonce))?;
            b.message_integrity(&auth.key)?;
        }
        b.fingerprint()?;
        b.finish();
        Ok(())
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn client(channel: Option<u16>) -> TurnClient {
        let creds = Arc::new(Credentials {
            username: "alice".into(),
            password: "secret".into(),
        });
        TurnClient::new(creds, "192.0.2.7:4000".parse().unwrap(), channel)
    }

    /// The request the client sent last, parsed: (method, tid, bytes).
    fn sent(c: &mut TurnClient, now: u64) -> (Method, TransactionId, Vec<u8>) {
        let bytes = c.poll_transmit(now).expect("a request").to_vec();
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.class(), Class::Request);
        msg.check_fingerprint().unwrap();
        (msg.method(), msg.transaction_id(), bytes)
    }

    fn response(
        method: Method,
        tid: TransactionId,
        attrs: &[Attribute<'_>],
        key: Option<&[u8]>,
    ) -> Vec<u8> {
        let class = if attrs
            .iter()
            .any(|a| matches!(a, Attribute::ErrorCode { .. }))
        {
            Class::Error
        } else {
            Class::Success
        };
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, class, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        if let Some(k) = key {
            b.message_integrity(k).unwrap();
        }
        b.finish();
        out
    }

    fn feed(c: &mut TurnClient, now: u64, bytes: &[u8]) {
        c.handle_response(now, &Message::parse(bytes).unwrap());
    }

    #[test]
    fn setup_answers_the_challenge_then_permits_and_binds() {
        let mut c = client(Some(0x4001));
        c.start(0);
        let (m, tid, bytes) = sent(&mut c, 0);
        assert_eq!(m, Method::ALLOCATE);
        // The first Allocate carries no credentials.
        let first = Message::parse(&bytes).unwrap();
        assert!(first.attribute(AttributeType::USERNAME).is_none());
        let challenge = response(
            m,
            tid,
            &[
                Attribute::ErrorCode {
                    code: 401,
                    reason: "Unauthorized",
                },
                Attribute::Realm("test"),
                Attribute::Nonce("n0nce"),
            ],
            None,
        );
        feed(&mut c, 1, &challenge);
        let key = long_term_key_md5("alice", "test", "secret");
        let (m, tid2, bytes) = sent(&mut c, 1);
        assert_eq!(m, Method::ALLOCATE);
        assert_ne!(tid2, tid, "the retry is a new transaction");
        let retry = Message::parse(&bytes).unwrap();
        retry.check_integrity(&key).unwrap();
        assert_eq!(
            retry.attribute(AttributeType::NONCE).unwrap().value,
            b"n0nce"
        );
        let relayed: SocketAddr = "198.51.100.1:50000".parse().unwrap();
        // A success without valid integrity is ignored...
        let forged = response(m, tid2, &[Attribute::XorRelayedAddress(relayed)], None);
        feed(&mut c, 2, &forged);
        assert_eq!(c.relayed(), None);
        // ...a real one is taken.
        let ok = response(
            m,
            tid2,
            &[
                Attribute::XorRelayedAddress(relayed),
                Attribute::Lifetime(600),
            ],
            Some(&key),
        );
        feed(&mut c, 2, &ok);
        assert_eq!(c.relayed(), Some(relayed));
        let (m, tid3, bytes) = sent(&mut c, 2);
        assert_eq!(m, Method::CREATE_PERMISSION);
        let perm = Message::parse(&bytes).unwrap();
        let raw = perm.attribute(AttributeType::XOR_PEER_ADDRESS).unwrap();
        assert_eq!(
            Attribute::decode(raw, &tid3).unwrap(),
            Attribute::XorPeerAddress("192.0.2.7:4000".parse().unwrap())
        );
        feed(&mut c, 3, &response(m, tid3, &[], Some(&key)));
        let (m, tid4, bytes) = sent(&mut c, 3);
        assert_eq!(m, Method::CHANNEL_BIND);
        let bind = Message::parse(&bytes).unwrap();
        let raw = bind.attribute(AttributeType::CHANNEL_NUMBER).unwrap();
        assert_eq!(
            Attribute::decode(raw, &tid4).unwrap(),
            Attribute::ChannelNumber(0x4001)
        );
        assert_eq!(c.poll_event(), None);
        feed(&mut c, 4, &response(m, tid4, &[], Some(&key)));
        assert_eq!(c.poll_event(), Some(Event::Ready { relayed }));
        assert!(c.is_ready());
        // Refreshes: the permission and channel at +240 s, the allocation
        // a minute before its 600 s run out.
        assert_eq!(c.poll_timeout(), Some(4 + 240 * S));
        c.handle_timeout(4 + 240 * S);
        let (m, ..) = sent(&mut c, 4 + 240 * S);
        assert_eq!(m, Method::CREATE_PERMISSION);
    }

    #[test]
    fn retransmissions_follow_rfc8489_timers_then_time_out() {
        // RFC 8489 §6.2.1: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s,
        // failure at 39.5 s (Rc = 7, Rm = 16, RTO 500 ms).
        let mut c = client(None);
        c.start(0);
        let ms = 1_000_000u64;
        let mut sends = Vec::new();
        let mut now = 0;
        loop {
            if c.poll_transmit(now).is_some() {
                sends.push(now / ms);
            }
            if let Some(ev) = c.poll_event() {
                assert_eq!(ev, Event::SetupFailed(Failure::Timeout));
                break;
            }
            now = c.poll_timeout().expect("a timer while the request is out");
            c.handle_timeout(now);
        }
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now / ms, 39_500);
        assert!(c.is_done());
    }

    #[test]
    fn errors_fail_setup_with_their_code_and_stale_nonces_are_retried() {
        let mut c = client(None);
        c.start(0);
        let (m, tid, _) = sent(&mut c, 0);
        let challenge = [
            Attribute::ErrorCode {
                code: 401,
                reason: "Unauthorized",
            },
            Attribute::Realm("test"),
            Attribute::Nonce("a"),
        ];
        feed(&mut c, 0, &response(m, tid, &challenge, None));
        let (m, tid, _) = sent(&mut c, 0);
        let stale = [
            Attribute::ErrorCode {
                code: 438,
                reason: "Stale Nonce",
            },
            Attribute::Realm("test"),
            Attribute::Nonce("b"),
        ];
        feed(&mut c, 0, &response(m, tid, &stale, None));
        let (m, tid, bytes) = sent(&mut c, 0);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.attribute(AttributeType::NONCE).unwrap().value, b"b");
        // A second 401 with credentials is final.
        feed(&mut c, 0, &response(m, tid, &challenge, None));
        assert_eq!(c.poll_event(), Some(Event::SetupFailed(Failure::Code(401))));
        assert!(c.is_done());

        let mut c = client(None);
        c.start(0);
        let (m, tid, _) = sent(&mut c, 0);
        let quota = [Attribute::ErrorCode {
            code: 486,
            reason: "Allocation Quota Reached",
        }];
        // A response to another transaction is ignored.
        feed(
            &mut c,
            0,
            &response(m, TransactionId([9; 12]), &quota, None),
        );
        assert_eq!(c.poll_event(), None);
        feed(&mut c, 0, &response(m, tid, &quota, None));
        assert_eq!(c.poll_event(), Some(Event::SetupFailed(Failure::Code(486))));
        assert_eq!(Failure::Code(486).key(), "486");
        assert_eq!(Failure::Timeout.key(), "timeout");
    }

    #[test]
    fn close_deletes_the_allocation() {
        let mut c = client(None);
        c.start(0);
        let (m, tid, _) = sent(&mut c, 0);
        let relayed: SocketAddr = "198.51.100.1:50000".parse().unwrap();
        feed(
            &mut c,
            0,
            &response(m, tid, &[Attribute::XorRelayedAddress(relayed)], None),
        );
        let (m, tid, _) = sent(&mut c, 0);
        feed(&mut c, 0, &response(m, tid, &[], None));
        assert_eq!(c.poll_event(), Some(Event::Ready { relayed }));
        c.close(5);
        let (m, tid, bytes) = sent(&mut c, 5);
        assert_eq!(m, Method::REFRESH);
        let msg = Message::parse(&bytes).unwrap();
        let raw = msg.attribute(AttributeType::LIFETIME).unwrap();
        assert_eq!(
            Attribute::decode(raw, &tid).unwrap(),
            Attribute::Lifetime(0)
        );
        feed(
            &mut c,
            6,
            &response(m, tid, &[Attribute::Lifetime(0)], None),
        );
        assert_eq!(c.poll_event(), Some(Event::Closed));
        assert!(c.is_done());
    }
}
