//! Sequences of client datagrams, authenticated requests, clock steps and
//! relay-bind outcomes fed into a `uturn_turn::Server`, played by a fake
//! dataplane the way `docs/architecture.md` says the real one drives it.
//!
//! The input is a script: each step is one opcode byte and its operands.
//! Authenticated requests are built here (USERNAME, REALM, the last NONCE
//! the server sent, MESSAGE-INTEGRITY with the right key), so the fuzzer
//! reaches allocations, permissions and channels instead of stopping at 401.
//!
//! Checked on every output: nothing panics; every transmit is a STUN
//! response that parses, goes to the client that asked, from the listener
//! it asked on, and carries a MESSAGE-INTEGRITY that verifies when it
//! carries one; rule changes only name allocations that are live.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use uturn_stun::attribute::{AddressFamily, Attribute, AttributeType, PROTOCOL_UDP};
use uturn_stun::integrity::long_term_key_md5;
use uturn_stun::{Class, Message, MessageBuilder, Method, TransactionId};
use uturn_turn::{
    AllocationId, Credentials, CredentialsConfig, FiveTuple, PeerFilter, RuleChange, Server,
    ServerConfig, Shared, TimeProvider,
};

const REALM: &str = "example.org";
const USER: &str = "alice";
const PASSWORD: &str = "alice-pw";
const RELAY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const MAX_STEPS: usize = 64;

#[derive(Debug)]
struct FakeTime(AtomicU64);

impl TimeProvider for FakeTime {
    fn unix_now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Reads operands from the fuzz input; zeros once it runs out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

struct Dataplane {
    server: Server,
    time: Arc<FakeTime>,
    now: Instant,
    key: [u8; 16],
    nonces: [Option<String>; 2],
    fail_next_bind: bool,
    open_relays: HashSet<SocketAddr>,
    allocations: HashSet<AllocationId>,
    last_request: Option<(usize, Vec<u8>)>,
    next_tid: u64,
}

fn listener() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(RELAY_V4), 3478)
}

fn five_tuple(client: usize) -> FiveTuple {
    let n = u8::try_from(client).unwrap_or(0);
    FiveTuple {
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + n)),
            40000 + u16::from(n),
        ),
        server: listener(),
    }
}

impl Dataplane {
    fn new() -> Dataplane {
        let credentials = Credentials::new(
            &CredentialsConfig {
                users: vec![(USER.into(), PASSWORD.into())],
                secrets: Vec::new(),
            },
            REALM,
        );
        let filter = PeerFilter::new(Vec::new(), Vec::new()).with_own(
            vec![IpAddr::V4(RELAY_V4)],
            vec![listener()],
            49152..=49200,
        );
        let mut config = ServerConfig::new(REALM, credentials, filter);
        config.relay_ipv4 = Some(RELAY_V4);
        config.listeners = vec![listener()];
        config.min_port = 49152;
        config.max_port = 49200;
        config.transaction_cache_size = 64;
        let shared = Shared::new(&config);
        let time = Arc::new(FakeTime(AtomicU64::new(1_700_000_000)));
        let server = Server::new(Arc::new(config), shared, time.clone());
        Dataplane {
            server,
            time,
            now: Instant::now(),
            key: long_term_key_md5(USER, REALM, PASSWORD),
            nonces: [None, None],
            fail_next_bind: false,
            open_relays: HashSet::new(),
            allocations: HashSet::new(),
            last_request: None,
            next_tid: 0,
        }
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        let mut tid = [0u8; 12];
        tid[4..].copy_from_slice(&self.next_tid.to_be_bytes());
        TransactionId(tid)
    }

    fn send(&mut self, client: usize, datagram: &[u8]) {
        self.server
            .handle_datagram(self.now, five_tuple(client), datagram);
        self.drain();
    }

    /// Plays the dataplane: answers every OpenRelay at once, checks every output.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(change) = self.server.poll_rule_change() {
                progressed = true;
                self.apply(change);
            }
            while let Some(transmit) = self.server.poll_transmit() {
                progressed = true;
                self.check_transmit(&transmit.destination, &transmit.source, &transmit.contents);
            }
            if !progressed {
                break;
            }
        }
        let _ = self.server.poll_timeout();
    }

    fn apply(&mut self, change: RuleChange) {
        match change {
            RuleChange::OpenRelay { relay, .. } => {
                let result = if std::mem::take(&mut self.fail_next_bind) {
                    Err(std::io::Error::other("fuzz: bind fails"))
                } else {
                    assert!(self.open_relays.insert(relay), "relay {relay} opened twice");
                    Ok(())
                };
                self.server.handle_relay_bound(self.now, relay, result);
            }
            RuleChange::CloseRelay { relay } => {
                self.open_relays.remove(&relay);
            }
            RuleChange::AddAllocation {
                allocation, relays, ..
            } => {
                assert!(!relays.is_empty());
                assert!(
                    self.allocations.insert(allocation),
                    "allocation added twice"
                );
            }
            RuleChange::RemoveAllocation { allocation } => {
                assert!(
                    self.allocations.remove(&allocation),
                    "unknown allocation removed"
                );
            }
            RuleChange::AddPermission { allocation, .. }
            | RuleChange::RemovePermission { allocation, .. }
            | RuleChange::AddChannel { allocation, .. }
            | RuleChange::RemoveChannel { allocation, .. } => {
                assert!(
                    self.allocations.contains(&allocation),
                    "rule for a dead allocation"
                );
            }
        }
    }

    fn check_transmit(&mut self, destination: &SocketAddr, source: &SocketAddr, contents: &[u8]) {
        let client = (0..2)
            .find(|c| five_tuple(*c).client == *destination)
            .expect("sent to a client");
        assert_eq!(*source, listener());
        let msg = Message::parse(contents).expect("the server sends valid STUN");
        assert!(
            matches!(msg.class(), Class::Success | Class::Error),
            "only responses"
        );
        if msg.attribute(AttributeType::MESSAGE_INTEGRITY).is_some() {
            msg.check_integrity(&self.key)
                .expect("responses are signed with the request's key");
        }
        if let Some(raw) = msg.attribute(AttributeType::NONCE) {
            if let Ok(Attribute::Nonce(nonce)) = Attribute::decode(raw, &msg.transaction_id()) {
                self.nonces[client] = Some(nonce.to_owned());
            }
        }
    }

    fn authenticated_request(&mut self, client: usize, s: &mut Script<'_>, sign: bool) {
        let method = match s.byte() % 5 {
            0 => Method::ALLOCATE,
            1 => Method::REFRESH,
            2 => Method::CREATE_PERMISSION,
            3 => Method::CHANNEL_BIND,
            _ => Method::BINDING,
        };
        let flags = s.byte();
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, s.byte())), s.u16());
        let lifetime = u32::from(s.u16());
        let channel = 0x4000 | (s.u16() & 0x3fff);
        let tid = self.tid();
        let nonce = self.nonces[client].clone();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, method, tid);
        let mut add = |a: Attribute<'_>| b.add(&a).expect("fits");
        if method == Method::ALLOCATE && flags & 0x01 == 0 {
            add(Attribute::RequestedTransport(PROTOCOL_UDP));
        }
        if flags & 0x02 != 0 {
            add(Attribute::Lifetime(lifetime));
        }
        if flags & 0x04 != 0 || matches!(method, Method::CREATE_PERMISSION | Method::CHANNEL_BIND) {
            add(Attribute::XorPeerAddress(peer));
        }
        if flags & 0x08 != 0 || method == Method::CHANNEL_BIND {
            add(Attribute::ChannelNumber(channel));
        }
        if flags & 0x10 != 0 {
            add(Attribute::EvenPort(flags & 0x80 != 0));
        }
        if flags & 0x20 != 0 {
            add(Attribute::RequestedAddressFamily(if flags & 0x80 != 0 {
                AddressFamily::V6
            } else {
                AddressFamily::V4
            }));
        }
        if flags & 0x40 != 0 {
            add(Attribute::DontFragment);
        }
        if sign {
            add(Attribute::Username(USER));
            add(Attribute::Realm(REALM));
            if let Some(nonce) = &nonce {
                add(Attribute::Nonce(nonce));
            }
            let wrong = [0u8; 16];
            let key = if flags & 0x80 != 0 && flags & 0x01 != 0 {
                &wrong
            } else {
                &self.key
            };
            b.message_integrity(key).expect("fits");
        }
        b.finish();
        self.last_request = Some((client, out.clone()));
        self.send(client, &out);
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.time.0.fetch_add(secs, Ordering::SeqCst);
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut dp = Dataplane::new();
    let mut s = Script(data);
    for _ in 0..MAX_STEPS {
        if s.0.is_empty() {
            break;
        }
        let op = s.byte();
        let client = usize::from(op >> 7);
        match op % 6 {
            0 => {
                let len = usize::from(s.byte());
                let datagram = s.bytes(len).to_vec();
                dp.send(client, &datagram);
            }
            1 => dp.authenticated_request(client, &mut s, true),
            2 => dp.authenticated_request(client, &mut s, false),
            3 => {
                let secs = u64::from(s.byte()) * 8;
                dp.advance(secs);
            }
            4 => {
                if let Some((c, bytes)) = dp.last_request.clone() {
                    dp.send(c, &bytes);
                }
            }
            _ => dp.fail_next_bind = !dp.fail_next_bind,
        }
    }
    dp.server.shutdown();
    dp.drain();
});
