//! The test dataplane and the test client.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uturn_stun::attribute::{
    Attribute, AttributeType, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms,
    PROTOCOL_UDP,
};
use uturn_stun::integrity::{long_term_key_md5, long_term_key_sha256, userhash};
use uturn_stun::message::{Class, Message, Method, TransactionId};
use uturn_stun::MessageBuilder;
use uturn_turn::{
    Credentials, CredentialsConfig, FiveTuple, PeerFilter, RuleChange, Server, ServerConfig,
    Shared, TimeProvider, Transmit,
};

pub const REALM: &str = "example.org";
pub const START_UNIX: u64 = 1_700_000_000;
pub const RELAY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const RELAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const SECRET: &str = "rest-secret-1";

pub fn listener() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(RELAY_V4), 3478)
}

pub fn five_tuple(n: u8) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            40000 + u16::from(n),
        ),
        server: listener(),
    }
}

/// A public peer (TEST-NET-3 is not in the default deny list).
pub fn peer(n: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, n)), port)
}

pub fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Unix time the test moves by hand.
#[derive(Debug)]
pub struct FakeTime(AtomicU64);

impl FakeTime {
    pub fn set(&self, unix: u64) {
        self.0.store(unix, Ordering::SeqCst);
    }
}

impl TimeProvider for FakeTime {
    fn unix_now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Static users alice/alice-pw and bob/bob-pw, one REST secret, IPv4
/// relaying on [`RELAY_V4`], ports 49152–49999, SOFTWARE set.
pub fn config() -> ServerConfig {
    config_with(CredentialsConfig {
        users: vec![
            ("alice".into(), "alice-pw".into()),
            ("bob".into(), "bob-pw".into()),
        ],
        secrets: vec![SECRET.into()],
    })
}

pub fn config_with(credentials: CredentialsConfig) -> ServerConfig {
    let credentials = Credentials::new(&credentials, REALM);
    let filter = PeerFilter::new(Vec::new(), Vec::new()).with_own(
        vec![IpAddr::V4(RELAY_V4), IpAddr::V6(RELAY_V6)],
        vec![listener()],
        49152..=49999,
    );
    let mut config = ServerConfig::new(REALM, credentials, filter);
    config.software = Some("uturn-test".into());
    config.relay_ipv4 = Some(RELAY_V4);
    config.listeners = vec![listener()];
    config.min_port = 49152;
    config.max_port = 49999;
    config
}

/// The server plus a fake dataplane.
pub struct Harness {
    pub server: Server,
    pub shared: Shared,
    pub config: Arc<ServerConfig>,
    pub time: Arc<FakeTime>,
    pub start: Instant,
    pub now: Instant,
    /// Every rule change since the last [`Harness::take_rules`].
    pub rules: Vec<RuleChange>,
    /// The next this-many `OpenRelay`s fail to bind.
    pub fail_binds: u32,
    /// Relay sockets currently open (`OpenRelay` succeeded, no `CloseRelay` yet).
    pub open_relays: HashSet<SocketAddr>,
    /// Every `OpenRelay` seen, in order.
    pub bind_attempts: Vec<SocketAddr>,
}

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        let shared = Shared::new(&config);
        Self::with_shared(
            Arc::new(config),
            shared,
            Arc::new(FakeTime(AtomicU64::new(START_UNIX))),
            Instant::now(),
        )
    }

    /// A second server on the same shared state (another worker).
    pub fn sibling(&self) -> Self {
        Self::with_shared(
            Arc::clone(&self.config),
            self.shared.clone(),
            Arc::clone(&self.time),
            self.now,
        )
    }

    pub fn with_shared(
        config: Arc<ServerConfig>,
        shared: Shared,
        time: Arc<FakeTime>,
        start: Instant,
    ) -> Self {
        let server = Server::new(
            Arc::clone(&config),
            shared.clone(),
            time.clone() as Arc<dyn TimeProvider>,
        );
        Harness {
            server,
            shared,
            config,
            time,
            start,
            now: start,
            rules: Vec::new(),
            fail_binds: 0,
            open_relays: HashSet::new(),
            bind_attempts: Vec::new(),
        }
    }

    /// Feeds one datagram and returns what the server sent.
    pub fn datagram(&mut self, from: FiveTuple, bytes: &[u8]) -> Vec<Transmit> {
        self.server.handle_datagram(self.now, from, bytes);
        self.drain()
    }

    /// Drains rule changes (answering `OpenRelay`) and transmits.
    pub fn drain(&mut self) -> Vec<Transmit> {
        while let Some(rule) = self.server.poll_rule_change() {
            match &rule {
                RuleChange::OpenRelay { relay, .. } => {
                    let relay = *relay;
                    self.bind_attempts.push(relay);
                    let result = if self.fail_binds > 0 {
                        self.fail_binds -= 1;
                        Err(std::io::Error::from(std::io::ErrorKind::AddrInUse))
                    } else {
                        assert!(self.open_relays.insert(relay), "{relay} opened twice");
                        Ok(())
                    };
                    self.rules.push(rule);
                    self.server.handle_relay_bound(self.now, relay, result);
                }
                RuleChange::CloseRelay { relay } => {
                    assert!(
                        self.open_relays.remove(relay),
                        "{relay} closed but not open"
                    );
                    self.rules.push(rule);
                }
                _ => self.rules.push(rule),
            }
        }
        let mut out = Vec::new();
        while let Some(t) = self.server.poll_transmit() {
            out.push(t);
        }
        out
    }

    /// Moves both clocks forward by `d`, firing every deadline on the way
    /// at its own time.
    pub fn advance(&mut self, d: Duration) -> Vec<Transmit> {
        let target = self.now + d;
        let mut out = Vec::new();
        while let Some(deadline) = self.server.poll_timeout() {
            if deadline > target {
                break;
            }
            self.set_now(deadline.max(self.now));
            self.server.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.set_now(target);
        self.server.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.time.set(START_UNIX + (now - self.start).as_secs());
    }

    pub fn take_rules(&mut self) -> Vec<RuleChange> {
        std::mem::take(&mut self.rules)
    }
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY.
    pub sha256_mac: bool,
    /// PASSWORD-ALGORITHM SHA-256 (with PASSWORD-ALGORITHMS) instead of MD5.
    pub sha256_key: bool,
    /// Send PASSWORD-ALGORITHMS + PASSWORD-ALGORITHM even for MD5.
    pub send_algorithms: bool,
    /// USERHASH instead of USERNAME.
    pub userhash: bool,
    /// Add FINGERPRINT.
    pub fingerprint: bool,
}

/// A TURN client that does the 401 → authenticated dance.
#[derive(Debug, Clone)]
pub struct Client {
    pub five_tuple: FiveTuple,
    pub username: String,
    pub password: String,
    pub nonce: Option<String>,
    pub mode: Mode,
}

impl Client {
    pub fn new(n: u8, username: &str, password: &str) -> Self {
        Client {
            five_tuple: five_tuple(n),
            username: username.into(),
            password: password.into(),
            nonce: None,
            mode: Mode::default(),
        }
    }

    pub fn alice(n: u8) -> Self {
        Client::new(n, "alice", "alice-pw")
    }

    /// The long-term key the server should sign responses with.
    pub fn key(&self) -> Vec<u8> {
        if self.mode.sha256_key {
            long_term_key_sha256(&self.username, REALM, &self.password).to_vec()
        } else {
            long_term_key_md5(&self.username, REALM, &self.password).to_vec()
        }
    }

    /// A request with `attrs`, authenticated once a nonce is known.
    pub fn build(&self, method: Method, tid: TransactionId, attrs: &[Attribute<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        if let Some(nonce) = &self.nonce {
            let hash = userhash(&self.username, REALM);
            if self.mode.userhash {
                b.add(&Attribute::Userhash(&hash)).unwrap();
            } else {
                b.add(&Attribute::Username(&self.username)).unwrap();
            }
            b.add(&Attribute::Realm(REALM)).unwrap();
            b.add(&Attribute::Nonce(nonce)).unwrap();
            if self.mode.sha256_key || self.mode.send_algorithms {
                let algorithm = if self.mode.sha256_key {
                    PasswordAlgorithmId::SHA256
                } else {
                    PasswordAlgorithmId::MD5
                };
                b.add(&Attribute::PasswordAlgorithms(
                    PasswordAlgorithms::MD5_AND_SHA256,
                ))
                .unwrap();
                b.add(&Attribute::PasswordAlgorithm(PasswordAlgorithm {
                    algorithm,
                    parameters: &[],
                }))
                .unwrap();
            }
            if self.mode.sha256_mac {
                b.message_integrity_sha256(&self.key()).unwrap();
            } else {
                b.message_integrity(&self.key()).unwrap();
            }
        }
        if self.mode.fingerprint {
            b.fingerprint().unwrap();
        }
        b.finish();
        out
    }

    /// Sends raw bytes; the one response, if any.
    pub fn send(&self, h: &mut Harness, bytes: &[u8]) -> Option<Response> {
        let mut out = h.datagram(self.five_tuple, bytes);
        assert!(out.len() <= 1, "more than one response: {out:?}");
        let t = out.pop()?;
        assert_eq!(t.source, self.five_tuple.server);
        assert_eq!(t.destination, self.five_tuple.client);
        Some(Response { bytes: t.contents })
    }

    /// One request, with the 401/438 dance: a challenge updates the nonce
    /// and the request is sent again (once) with a new transaction ID.
    pub fn request(
        &mut self,
        h: &mut Harness,
        method: Method,
        attrs: &[Attribute<'_>],
    ) -> Response {
        let response = self.request_once(h, method, random_tid(), attrs);
        match response.code() {
            Some(401) if self.nonce.is_none() => {}
            Some(438) => {}
            _ => return response,
        }
        self.nonce = Some(response.nonce().expect("challenge without NONCE"));
        self.request_once(h, method, random_tid(), attrs)
    }

    pub fn request_once(
        &self,
        h: &mut Harness,
        method: Method,
        tid: TransactionId,
        attrs: &[Attribute<'_>],
    ) -> Response {
        let bytes = self.build(method, tid, attrs);
        let response = self.send(h, &bytes).expect("no response");
        assert_eq!(response.msg().transaction_id(), tid);
        assert_eq!(response.msg().method(), method);
        response
    }

    pub fn allocate(&mut self, h: &mut Harness, extra: &[Attribute<'_>]) -> Response {
        let mut attrs = vec![Attribute::RequestedTransport(PROTOCOL_UDP)];
        attrs.extend_from_slice(extra);
        self.request(h, Method::ALLOCATE, &attrs)
    }

    pub fn refresh(&mut self, h: &mut Harness, lifetime: Option<u32>) -> Response {
        let attrs: Vec<Attribute<'_>> = lifetime.map(Attribute::Lifetime).into_iter().collect();
        self.request(h, Method::REFRESH, &attrs)
    }

    pub fn create_permission(&mut self, h: &mut Harness, peers: &[SocketAddr]) -> Response {
        let attrs: Vec<Attribute<'_>> = peers
            .iter()
            .map(|p| Attribute::XorPeerAddress(*p))
            .collect();
        self.request(h, Method::CREATE_PERMISSION, &attrs)
    }

    pub fn channel_bind(&mut self, h: &mut Harness, number: u16, peer: SocketAddr) -> Response {
        self.request(
            h,
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(number),
                Attribute::XorPeerAddress(peer),
            ],
        )
    }
}

pub fn random_tid() -> TransactionId {
    TransactionId(rand::random())
}

/// A response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn msg(&self) -> Message<'_> {
        Message::parse(&self.bytes).expect("server sent an unparsable message")
    }

    pub fn is_success(&self) -> bool {
        self.msg().class() == Class::Success
    }

    pub fn attr(&self, typ: AttributeType) -> Option<Attribute<'_>> {
        let msg = self.msg();
        let tid = msg.transaction_id();
        msg.attribute(typ)
            .map(|raw| Attribute::decode(raw, &tid).expect("server sent a malformed attribute"))
    }

    pub fn has(&self, typ: AttributeType) -> bool {
        self.msg().attribute(typ).is_some()
    }

    pub fn code(&self) -> Option<u16> {
        match self.attr(AttributeType::ERROR_CODE)? {
            Attribute::ErrorCode { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn nonce(&self) -> Option<String> {
        match self.attr(AttributeType::NONCE)? {
            Attribute::Nonce(n) => Some(n.to_owned()),
            _ => None,
        }
    }

    pub fn lifetime(&self) -> Option<u32> {
        match self.attr(AttributeType::LIFETIME)? {
            Attribute::Lifetime(l) => Some(l),
            _ => None,
        }
    }

    pub fn mapped(&self) -> Option<SocketAddr> {
        match self.attr(AttributeType::XOR_MAPPED_ADDRESS)? {
            Attribute::XorMappedAddress(a) => Some(a),
            _ => None,
        }
    }

    pub fn relayed(&self) -> Vec<SocketAddr> {
        let msg = self.msg();
        let tid = msg.transaction_id();
        msg.attributes()
            .filter(|raw| raw.typ == AttributeType::XOR_RELAYED_ADDRESS)
            .map(|raw| match Attribute::decode(raw, &tid) {
                Ok(Attribute::XorRelayedAddress(a)) => a,
                other => panic!("bad XOR-RELAYED-ADDRESS: {other:?}"),
            })
            .collect()
    }

    pub fn token(&self) -> Option<[u8; 8]> {
        match self.attr(AttributeType::RESERVATION_TOKEN)? {
            Attribute::ReservationToken(t) => Some(*t),
            _ => None,
        }
    }

    /// Asserts the response is signed with `client`'s key the way its
    /// request was.
    pub fn assert_signed_for(&self, client: &Client) {
        let msg = self.msg();
        if client.mode.sha256_mac {
            assert!(
                !self.has(AttributeType::MESSAGE_INTEGRITY),
                "MESSAGE-INTEGRITY next to -SHA256"
            );
            msg.check_integrity_sha256(&client.key())
                .expect("MESSAGE-INTEGRITY-SHA256");
        } else {
            msg.check_integrity(&client.key())
                .expect("MESSAGE-INTEGRITY");
        }
    }

    pub fn assert_error(&self, code: u16) {
        assert_eq!(
            self.msg().class(),
            Class::Error,
            "expected error {code}, got {:?}",
            self.msg()
        );
        assert_eq!(self.code(), Some(code));
    }

    pub fn assert_success(&self) {
        assert!(
            self.is_success(),
            "expected success, got error {:?}",
            self.code()
        );
    }
}

pub fn opened(rules: &[RuleChange]) -> Vec<SocketAddr> {
    rules
        .iter()
        .filter_map(|r| match r {
            RuleChange::OpenRelay { relay, .. } => Some(*relay),
            _ => None,
        })
        .collect()
}
