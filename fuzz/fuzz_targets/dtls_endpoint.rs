//! A DTLS server `uturn_dtls::Endpoint` (the relay's side) against a real
//! client endpoint, with the fuzzer as the network in between: it
//! delivers, drops, corrupts, replays and invents datagrams, moves the
//! clock, and closes either side. Certificates are made once per process.
//!
//! Checked: nothing panics; the server connects only to the client whose
//! fingerprint it was given; when both sides connect they agree on the
//! profile and on the keys (each side's local key is the other's remote);
//! a failed server reports it once and then sends nothing and reports
//! nothing more; no datagram exceeds the configured MTU.
#![no_main]

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Event};
use uturn_srtp::{DtlsSrtpKeys, Profile, Role};

const MAX_STEPS: usize = 96;

fn certificates() -> &'static (Certificate, Certificate) {
    static CERTS: OnceLock<(Certificate, Certificate)> = OnceLock::new();
    CERTS.get_or_init(|| {
        let generate = || Certificate::generate().expect("certificate generation");
        (generate(), generate())
    })
}

/// Reads operands from the fuzz input; zeros once it runs out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// One side and what it did.
struct Side {
    endpoint: Endpoint,
    connected: Option<(Profile, DtlsSrtpKeys)>,
    failed: bool,
    mtu: usize,
}

impl Side {
    fn new(
        now: Instant,
        role: Role,
        cert: &Certificate,
        remote: [u8; 32],
        config: &DtlsConfig,
    ) -> Side {
        Side {
            endpoint: Endpoint::new(now, role, cert, remote, config).expect("valid config"),
            connected: None,
            failed: false,
            mtu: config.mtu,
        }
    }

    /// Moves its datagrams to `wire` and checks its events.
    fn drain(&mut self, wire: &mut VecDeque<Vec<u8>>) {
        let mut buf = Vec::new();
        while let Some(len) = self.endpoint.poll_transmit(&mut buf) {
            assert!(!self.failed, "a failed endpoint sent a datagram");
            assert_eq!(len, buf.len());
            assert!(len <= self.mtu, "a {len}-octet datagram over the MTU");
            if wire.len() < 64 {
                wire.push_back(buf.clone());
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            assert!(!self.failed, "an event after Failed: {event:?}");
            match event {
                Event::Connected { profile, keys } => {
                    assert!(self.connected.is_none(), "connected twice");
                    self.connected = Some((profile, keys));
                }
                Event::Failed(_) => self.failed = true,
                Event::Closed => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (server_cert, client_cert) = certificates();
    let mut s = Script(data);
    let flags = s.byte();
    let honest = flags & 0x01 == 0;
    let mut server_config = DtlsConfig::default();
    let mut client_config = DtlsConfig::default();
    // Profile lists from the input: the orders and the empty intersection.
    if flags & 0x02 != 0 {
        server_config.profiles.reverse();
    }
    if flags & 0x04 != 0 {
        client_config.profiles = vec![Profile::Aes128CmSha1_80];
    }
    if flags & 0x08 != 0 {
        server_config.profiles = vec![Profile::AeadAes128Gcm];
    }
    let expected = if honest {
        client_cert.fingerprint()
    } else {
        server_cert.fingerprint()
    };

    let mut now = Instant::now();
    let mut server = Side::new(now, Role::Server, server_cert, expected, &server_config);
    let mut client = Side::new(
        now,
        Role::Client,
        client_cert,
        server_cert.fingerprint(),
        &client_config,
    );
    let (mut up, mut down): (VecDeque<Vec<u8>>, VecDeque<Vec<u8>>) =
        (VecDeque::new(), VecDeque::new());
    let mut last_up: Option<Vec<u8>> = None;
    client.drain(&mut up);
    // Whether the network only ever delivered everything in order, and how
    // often: then an honest handshake with a common profile must finish.
    let (mut clean, mut deliveries) = (true, 0);

    for _ in 0..MAX_STEPS {
        if s.0.is_empty() {
            break;
        }
        let op = s.byte() % 9;
        if op == 7 {
            deliveries += 1;
        } else {
            clean = false;
        }
        match op {
            0 => {
                if let Some(d) = up.pop_front() {
                    let _ = server.endpoint.handle_datagram(now, &d);
                    last_up = Some(d);
                }
            }
            1 => {
                if let Some(mut d) = up.pop_front() {
                    let at = usize::from(s.byte()) * 8 + usize::from(s.byte());
                    let xor = s.byte().max(1);
                    let n = d.len().max(1);
                    if let Some(octet) = d.get_mut(at % n) {
                        *octet ^= xor;
                    }
                    let _ = server.endpoint.handle_datagram(now, &d);
                }
            }
            2 => {
                if let Some(d) = down.pop_front() {
                    let _ = client.endpoint.handle_datagram(now, &d);
                }
            }
            3 => {
                let len = usize::from(s.byte()) * 2;
                let d = s.bytes(len).to_vec();
                let _ = server.endpoint.handle_datagram(now, &d);
            }
            4 => {
                now += Duration::from_millis(u64::from(s.byte()) * 50);
                for side in [&mut server, &mut client] {
                    if side.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                        side.endpoint.handle_timeout(now);
                    }
                }
            }
            5 => {
                up.pop_front();
            }
            6 => {
                if let Some(d) = &last_up {
                    let _ = server.endpoint.handle_datagram(now, d);
                }
            }
            7 => {
                // Everything queued, in order: lets handshakes finish.
                while let Some(d) = up.pop_front() {
                    let _ = server.endpoint.handle_datagram(now, &d);
                    server.drain(&mut down);
                }
                while let Some(d) = down.pop_front() {
                    let _ = client.endpoint.handle_datagram(now, &d);
                    client.drain(&mut up);
                }
            }
            _ => {
                if s.byte() & 1 == 0 {
                    server.endpoint.close();
                } else {
                    client.endpoint.close();
                }
            }
        }
        server.drain(&mut down);
        client.drain(&mut up);
    }

    let common_profile = server_config
        .profiles
        .iter()
        .any(|p| client_config.profiles.contains(p));
    if clean && honest && common_profile && deliveries >= 6 {
        assert!(
            server.connected.is_some() && client.connected.is_some(),
            "a clean honest handshake did not finish"
        );
    }
    if !common_profile {
        assert!(
            server.connected.is_none(),
            "connected without a common profile"
        );
    }
    if server.connected.is_some() {
        assert!(
            honest,
            "the server connected to a client with another fingerprint"
        );
    }
    if let (Some((sp, sk)), Some((cp, ck))) = (&server.connected, &client.connected) {
        assert_eq!(sp, cp, "profiles differ");
        assert_eq!(
            sk.local, ck.remote,
            "server's sending key is not the client's receiving key"
        );
        assert_eq!(
            sk.remote, ck.local,
            "client's sending key is not the server's receiving key"
        );
        assert!(server_config.profiles.contains(sp));
    }
});
