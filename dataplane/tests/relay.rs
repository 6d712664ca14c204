//! The dataplane relaying for real: a `Dataplane` with real `uturn_turn`
//! servers on loopback, a TURN client written with `uturn_stun::builder` over
//! a std `UdpSocket`, and a peer socket. Every behaviour runs on both
//! backends (io_uring is skipped, loudly, where the kernel refuses it).
//!
//! Peers live on 127.0.0.2, not the relay's own IP (127.0.0.1), so the
//! filter's rules for the relay's own addresses (`PeerFilter::with_own`)
//! only come into the one test that is about them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uturn_dataplane::{
    io, BackendChoice, Config, Counters, Dataplane, DropReason, Error, ServerFactory,
};
use uturn_stun::integrity::long_term_key_md5;
use uturn_stun::{
    AddressFamily, Attribute, AttributeType, ChannelData, Class, Message, MessageBuilder, Method,
    TransactionId,
};
use uturn_turn::{
    Credentials, CredentialsConfig, PeerFilter, Server, ServerConfig, Shared, SystemTimeProvider,
};

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const REALM: &str = "uturn.test";
/// How long a test waits for a datagram before failing (not a timing
/// assertion: loopback delivers in microseconds; this only turns a lost
/// datagram into a failure instead of a hang).
const WAIT: Duration = Duration::from_secs(3);

/// Each dataplane gets its own relay port range so tests running in
/// parallel never compete for ports. Kept below the kernel's ephemeral range
/// (32768+), where the test's own sockets land.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(20_000);

fn peer_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
}

/// A free UDP port on 127.0.0.1 (every worker binds the same port with
/// SO_REUSEPORT, so port 0 cannot be passed through).
fn free_port() -> u16 {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A running relay and what a client needs to know about it.
struct Relay {
    dataplane: Option<Dataplane>,
    listener: SocketAddr,
}

impl Relay {
    fn counters(&self) -> Arc<[Counters]> {
        self.dataplane.as_ref().unwrap().counters()
    }

    fn total(&self, f: impl Fn(&Counters) -> u64) -> u64 {
        self.counters().iter().map(f).sum()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(dp) = self.dataplane.take() {
            dp.shutdown().unwrap();
        }
    }
}

/// A server configuration for a relay listening on `listener`, with its own
/// relay port range, and the peer filter it uses.
fn configs(listener: SocketAddr) -> (ServerConfig, PeerFilter) {
    let min_port = NEXT_RANGE.fetch_add(200, Ordering::Relaxed);
    let max_port = min_port + 199;
    let allow = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let filter = PeerFilter::new(allow, vec![]).with_own(
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
        vec![listener],
        min_port..=max_port,
    );
    let config = ServerConfig {
        realm: REALM.into(),
        software: None,
        relay_ipv4: Some(Ipv4Addr::LOCALHOST),
        relay_ipv6: None,
        external_ipv4: None,
        external_ipv6: None,
        listeners: vec![listener],
        default_lifetime: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(3600),
        permission_lifetime: Duration::from_secs(300),
        channel_lifetime: Duration::from_secs(600),
        nonce_lifetime: Duration::from_secs(600),
        strict_channel_range: false,
        user_quota: 0,
        total_quota: 0,
        transaction_cache_size: 64,
        credentials: Credentials::new(
            &CredentialsConfig {
                users: vec![(USER.into(), PASSWORD.into())],
                secrets: vec![],
            },
            REALM,
        ),
        peer_filter: filter.clone(),
        min_port,
        max_port,
    };
    (config, filter)
}

/// `None` when the backend cannot run on this kernel (io_uring disabled).
fn start(backend: BackendChoice, threads: usize) -> Option<Relay> {
    start_with(backend, threads, |_| {})
}

/// As [`start`], with the server configuration adjusted by `tweak`.
fn start_with(
    backend: BackendChoice,
    threads: usize,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Option<Relay> {
    let listener = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
    let (mut server_config, filter) = configs(listener);
    tweak(&mut server_config);
    let server_config = Arc::new(server_config);
    let shared = Shared::new(&server_config);
    let servers: ServerFactory = Arc::new(move |_worker| {
        Server::new(
            server_config.clone(),
            shared.clone(),
            Arc::new(SystemTimeProvider),
        )
    });
    let config = Config {
        listen: vec![listener],
        threads,
        // Exercise pinning where there is more than one worker.
        pin: threads > 1,
        backend,
        peer_filter: Arc::new(filter),
        xdp: None,
        batch_wait: Duration::from_micros(100),
        media: None,
    };
    let dataplane = match Dataplane::start(config, servers) {
        Ok(dp) => dp,
        Err(Error::UringUnavailable(e)) if backend == BackendChoice::Uring => {
            eprintln!("SKIPPED: io_uring unavailable here: {e}");
            return None;
        }
        Err(e) => panic!("dataplane did not start: {e}"),
    };
    let expected = match backend {
        BackendChoice::Uring => "io_uring",
        _ => "epoll",
    };
    assert_eq!(dataplane.backend(), expected);
    Some(Relay {
        dataplane: Some(dataplane),
        listener,
    })
}

/// A minimal TURN client (RFC 8656 §§6–12) over a blocking std socket.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    nonce: Option<String>,
    key: [u8; 16],
    next_tid: u8,
}

/// What the client needs from a response.
struct Response {
    class: Class,
    method: Method,
    error_code: Option<u16>,
    xor_mapped: Option<SocketAddr>,
    xor_relayed: Option<SocketAddr>,
    lifetime: Option<u32>,
}

impl Client {
    fn new(relay: &Relay) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Self {
            socket,
            server: relay.listener,
            nonce: None,
            key: long_term_key_md5(USER, REALM, PASSWORD),
            next_tid: 1,
        }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid = self.next_tid.wrapping_add(1);
        let mut id = [0x5a; 12];
        id[0] = self.next_tid;
        id[1..3].copy_from_slice(&self.local().port().to_be_bytes());
        TransactionId(id)
    }

    /// Sends a request (authenticated once a nonce is known) and returns the
    /// response to it, skipping anything else that arrives meanwhile.
    fn request(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Response {
        let tid = self.tid();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        if let Some(nonce) = &self.nonce {
            b.add(&Attribute::Username(USER)).unwrap();
            b.add(&Attribute::Realm(REALM)).unwrap();
            b.add(&Attribute::Nonce(nonce)).unwrap();
            b.message_integrity(&self.key).unwrap();
        }
        b.finish();
        self.socket.send_to(&out, self.server).unwrap();
        let mut buf = [0u8; 2048];
        loop {
            let n = self
                .socket
                .recv(&mut buf)
                .expect("no response from the relay");
            let Ok(msg) = Message::parse(&buf[..n]) else {
                continue;
            };
            if msg.transaction_id() != tid {
                continue;
            }
            let attr = |typ| {
                msg.attribute(typ)
                    .map(|raw| Attribute::decode(raw, &tid).unwrap())
            };
            if let Some(Attribute::Nonce(n)) = attr(AttributeType::NONCE) {
                self.nonce = Some(n.to_owned());
            }
            return Response {
                class: msg.class(),
                method: msg.method(),
                error_code: match attr(AttributeType::ERROR_CODE) {
                    Some(Attribute::ErrorCode { code, .. }) => Some(code),
                    _ => None,
                },
                xor_mapped: match attr(AttributeType::XOR_MAPPED_ADDRESS) {
                    Some(Attribute::XorMappedAddress(a)) => Some(a),
                    _ => None,
                },
                xor_relayed: match attr(AttributeType::XOR_RELAYED_ADDRESS) {
                    Some(Attribute::XorRelayedAddress(a)) => Some(a),
                    _ => None,
                },
                lifetime: match attr(AttributeType::LIFETIME) {
                    Some(Attribute::Lifetime(l)) => Some(l),
                    _ => None,
                },
            };
        }
    }

    fn expect_success(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Response {
        let r = self.request(method, attrs);
        assert_eq!(r.method, method);
        assert_eq!(
            r.class,
            Class::Success,
            "{method:?} failed with {:?}",
            r.error_code
        );
        r
    }

    /// Allocate: the unauthenticated attempt gets 401 with a nonce, the
    /// second succeeds. Returns the relayed address.
    fn allocate(&mut self) -> SocketAddr {
        self.allocate_with(&[])
    }

    /// [`Client::allocate`] with extra attributes in the request.
    fn allocate_with(&mut self, extra: &[Attribute<'_>]) -> SocketAddr {
        let mut attrs = vec![Attribute::RequestedTransport(17)];
        attrs.extend_from_slice(extra);
        let first = self.request(Method::ALLOCATE, &attrs);
        assert_eq!(first.class, Class::Error);
        assert_eq!(first.error_code, Some(401));
        assert!(self.nonce.is_some(), "401 without a NONCE");
        let ok = self.expect_success(Method::ALLOCATE, &attrs);
        assert_eq!(ok.xor_mapped, Some(self.local()));
        ok.xor_relayed.expect("no XOR-RELAYED-ADDRESS")
    }

    fn create_permission(&mut self, peer: SocketAddr) {
        self.expect_success(
            Method::CREATE_PERMISSION,
            &[Attribute::XorPeerAddress(peer)],
        );
    }

    fn channel_bind(&mut self, channel: u16, peer: SocketAddr) {
        self.expect_success(
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(channel),
                Attribute::XorPeerAddress(peer),
            ],
        );
    }

    fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        let tid = self.tid();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Indication, Method::SEND, tid);
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        b.finish();
        self.socket.send_to(&out, self.server).unwrap();
    }

    fn send_channel_data(&self, channel: u16, data: &[u8]) {
        let mut out = ChannelData::header(channel, data.len() as u16).to_vec();
        out.extend_from_slice(data);
        self.socket.send_to(&out, self.server).unwrap();
    }

    /// Next relayed datagram: (peer and data) from a Data indication, or
    /// (channel and data) from ChannelData.
    fn recv_relayed(&self) -> Relayed {
        let mut buf = [0u8; 65536];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("nothing relayed to the client");
        let bytes = &buf[..n];
        if let Ok(frame) = ChannelData::parse(bytes) {
            return Relayed::Channel(frame.channel(), frame.payload().to_vec());
        }
        let msg = Message::parse(bytes).expect("neither ChannelData nor STUN");
        assert_eq!(
            (msg.class(), msg.method()),
            (Class::Indication, Method::DATA)
        );
        let tid = msg.transaction_id();
        let peer = match msg
            .attribute(AttributeType::XOR_PEER_ADDRESS)
            .map(|raw| Attribute::decode(raw, &tid).unwrap())
        {
            Some(Attribute::XorPeerAddress(a)) => a,
            other => panic!("Data indication without XOR-PEER-ADDRESS: {other:?}"),
        };
        let data = msg.attribute(AttributeType::DATA).expect("no DATA").value;
        Relayed::Data(peer, data.to_vec())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Relayed {
    Data(SocketAddr, Vec<u8>),
    Channel(u16, Vec<u8>),
}

/// Waits (bounded by [`WAIT`]) for another thread's work to show.
fn wait_until(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition never became true"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn peer_socket() -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(peer_ip(), 0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv_from(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 65536];
    let (n, from) = socket
        .recv_from(&mut buf)
        .expect("nothing relayed to the peer");
    (buf[..n].to_vec(), from)
}

// ---- behaviours ---------------------------------------------------------------

fn binding_reports_the_mapped_address(backend: BackendChoice) {
    let Some(relay) = start(backend, 1) else {
        return;
    };
    let mut client = Client::new(&relay);
    let r = client.expect_success(Method::BINDING, &[]);
    assert_eq!(r.xor_mapped, Some(client.local()));
}

/// Allocate, permission, Send → peer, peer → Data indication, ChannelBind,
/// ChannelData both ways, then Refresh(0) stops relaying.
fn full_relay_cycle(backend: BackendChoice) {
    let Some(relay) = start(backend, 1) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate();
    assert_eq!(relayed.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));

    let peer = peer_socket();
    let peer_addr = peer.local_addr().unwrap();
    client.create_permission(peer_addr);

    client.send_indication(peer_addr, b"hello peer");
    let (data, from) = recv_from(&peer);
    assert_eq!(data, b"hello peer");
    assert_eq!(from, relayed, "the peer must see the relayed address");

    peer.send_to(b"hello client", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Data(peer_addr, b"hello client".to_vec())
    );

    client.channel_bind(0x4000, peer_addr);
    client.send_channel_data(0x4000, b"over the channel");
    let (data, from) = recv_from(&peer);
    assert_eq!(data, b"over the channel");
    assert_eq!(from, relayed);
    peer.send_to(b"and back", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Channel(0x4000, b"and back".to_vec())
    );

    assert_eq!(
        relay.total(|c| c.to_peer_packets.load(Ordering::Relaxed)),
        2
    );
    assert_eq!(
        relay.total(|c| c.to_client_packets.load(Ordering::Relaxed)),
        2
    );
    assert_eq!(relay.total(|c| c.to_peer_bytes.load(Ordering::Relaxed)), 26);
    assert_eq!(
        relay.total(|c| c.to_client_bytes.load(Ordering::Relaxed)),
        20
    );

    // Refresh with LIFETIME 0 deletes the allocation (RFC 8656 §8).
    let r = client.expect_success(Method::REFRESH, &[Attribute::Lifetime(0)]);
    assert_eq!(r.lifetime, Some(0));
    // The relay socket gets closed, so its port can be bound again. (io_uring
    // closes the descriptor once the kernel has let go of it, on a later
    // loop turn: hence a bounded wait rather than an immediate check.)
    wait_until(|| UdpSocket::bind(relayed).is_ok());
    // And the client's ChannelData goes nowhere: the channel is gone.
    let dropped_before = relay.total(Counters::dropped);
    client.send_channel_data(0x4000, b"into the void");
    // A Binding round trip on the same 5-tuple orders after the ChannelData.
    client.expect_success(Method::BINDING, &[]);
    assert_eq!(relay.total(Counters::dropped), dropped_before + 1);
    assert_eq!(
        relay.total(|c| c.to_peer_packets.load(Ordering::Relaxed)),
        2
    );
}

/// Thousands of datagrams each way over a channel, in windows small enough
/// for loopback socket buffers: none lost, none altered.
fn many_datagrams_without_loss(backend: BackendChoice) {
    let Some(relay) = start(backend, 1) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate();
    let peer = peer_socket();
    let peer_addr = peer.local_addr().unwrap();
    client.create_permission(peer_addr);
    client.channel_bind(0x4001, peer_addr);

    const WINDOW: u32 = 64;
    const TOTAL: u32 = 4096;
    let mut seq = 0u32;
    while seq < TOTAL {
        for i in seq..seq + WINDOW {
            let mut payload = i.to_be_bytes().to_vec();
            payload.resize(100 + (i % 200) as usize, i as u8);
            client.send_channel_data(0x4001, &payload);
        }
        for i in seq..seq + WINDOW {
            let (data, from) = recv_from(&peer);
            assert_eq!(from, relayed);
            assert_eq!(data.len(), 100 + (i % 200) as usize);
            assert_eq!(data[..4], i.to_be_bytes(), "datagram {i} lost or reordered");
            peer.send_to(&data, relayed).unwrap();
        }
        for i in seq..seq + WINDOW {
            match client.recv_relayed() {
                Relayed::Channel(0x4001, data) => assert_eq!(data[..4], i.to_be_bytes()),
                other => panic!("expected ChannelData {i}, got {other:?}"),
            }
        }
        seq += WINDOW;
    }
    assert_eq!(
        relay.total(|c| c.to_peer_packets.load(Ordering::Relaxed)),
        u64::from(TOTAL)
    );
    assert_eq!(
        relay.total(|c| c.to_client_packets.load(Ordering::Relaxed)),
        u64::from(TOTAL)
    );
}

/// Datagrams the rules do not allow are dropped and counted, not relayed.
fn unpermitted_traffic_is_dropped(backend: BackendChoice) {
    let Some(relay) = start(backend, 1) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate();
    let peer = peer_socket();
    let peer_addr = peer.local_addr().unwrap();

    // No permission yet: a Send indication and a peer datagram are dropped.
    client.send_indication(peer_addr, b"too early");
    peer.send_to(b"uninvited", relayed).unwrap();
    // An unbound channel.
    client.send_channel_data(0x4005, b"nobody");
    let drops = |r: DropReason| relay.total(|c| c.drops[r.index()].load(Ordering::Relaxed));
    // The relay socket and the listener are separate queues: wait until the
    // peer's datagram has been dropped before installing the permission.
    wait_until(|| drops(DropReason::NoPermission) == 2);
    client.create_permission(peer_addr);
    peer.send_to(b"now allowed", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Data(peer_addr, b"now allowed".to_vec())
    );
    assert_eq!(drops(DropReason::NoChannel), 1);
    assert_eq!(drops(DropReason::NoPermission), 2);

    // The relay's own IP may get a permission (CreatePermission has no
    // port), but a Send indication to the relay's own listener is refused
    // by the filter on the fast path.
    let own = relay.listener;
    client.create_permission(own);
    client.send_indication(own, b"port scan");
    client.expect_success(Method::BINDING, &[]);
    assert_eq!(drops(DropReason::PeerDenied), 1);
    assert_eq!(
        relay.total(|c| c.to_peer_packets.load(Ordering::Relaxed)),
        0
    );
}

/// The worker runs the server's timers: when a permission expires its
/// removal reaches the table and the peer's datagrams stop being relayed.
fn expired_permission_stops_relaying(backend: BackendChoice) {
    let Some(relay) = start_with(backend, 1, |c| {
        c.permission_lifetime = Duration::from_millis(200);
    }) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate();
    let peer = peer_socket();
    let peer_addr = peer.local_addr().unwrap();
    client.create_permission(peer_addr);
    peer.send_to(b"in time", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Data(peer_addr, b"in time".to_vec())
    );
    let gauge = || relay.total(|c| c.permissions.load(Ordering::Relaxed));
    wait_until(|| gauge() == 1);
    // No refresh: the control plane expires the permission on its own.
    wait_until(|| gauge() == 0);
    let no_permission =
        || relay.total(|c| c.drops[DropReason::NoPermission.index()].load(Ordering::Relaxed));
    peer.send_to(b"too late", relayed).unwrap();
    wait_until(|| no_permission() == 1);
    assert_eq!(
        relay.total(|c| c.to_client_packets.load(Ordering::Relaxed)),
        1
    );
}

/// An IPv4 client with an IPv6 relayed address (RFC 8656 §7.1,
/// REQUESTED-ADDRESS-FAMILY): the worker sends from the IPv6 relay socket
/// and wraps the IPv6 peer's address in Data indications.
fn ipv6_peer_through_an_ipv4_listener(backend: BackendChoice) {
    let Some(relay) = start_with(backend, 1, |c| c.relay_ipv6 = Some(Ipv6Addr::LOCALHOST)) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate_with(&[Attribute::RequestedAddressFamily(AddressFamily::V6)]);
    assert_eq!(relayed.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));

    let peer = UdpSocket::bind("[::1]:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    client.create_permission(peer_addr);
    client.send_indication(peer_addr, b"six");
    assert_eq!(recv_from(&peer), (b"six".to_vec(), relayed));
    peer.send_to(b"four", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Data(peer_addr, b"four".to_vec())
    );

    client.channel_bind(0x4abc, peer_addr);
    client.send_channel_data(0x4abc, b"chan6");
    assert_eq!(recv_from(&peer), (b"chan6".to_vec(), relayed));
    peer.send_to(b"back6", relayed).unwrap();
    assert_eq!(
        client.recv_relayed(),
        Relayed::Channel(0x4abc, b"back6".to_vec())
    );
}

/// Two workers, several clients spread over them by SO_REUSEPORT: each
/// client's allocation lives on the worker its 5-tuple hashes to.
fn two_workers_serve_many_clients(backend: BackendChoice) {
    let Some(relay) = start(backend, 2) else {
        return;
    };
    assert_eq!(relay.counters().len(), 2);
    let peer = peer_socket();
    let peer_addr = peer.local_addr().unwrap();
    let mut clients: Vec<(Client, SocketAddr)> = (0..8)
        .map(|_| {
            let mut c = Client::new(&relay);
            let relayed = c.allocate();
            c.create_permission(peer_addr);
            (c, relayed)
        })
        .collect();
    for (i, (client, relayed)) in clients.iter_mut().enumerate() {
        let channel = 0x4000 + i as u16;
        client.channel_bind(channel, peer_addr);
        let msg = format!("client {i}");
        client.send_channel_data(channel, msg.as_bytes());
        let (data, from) = recv_from(&peer);
        assert_eq!(data, msg.as_bytes());
        assert_eq!(from, *relayed);
        peer.send_to(b"reply", *relayed).unwrap();
        assert_eq!(
            client.recv_relayed(),
            Relayed::Channel(channel, b"reply".to_vec())
        );
    }
    let allocations: Vec<u64> = relay
        .counters()
        .iter()
        .map(|c| c.to_peer_packets.load(Ordering::Relaxed))
        .collect();
    assert_eq!(allocations.iter().sum::<u64>(), 8);
}

/// Shutdown ends every allocation and closes its relay socket.
fn shutdown_closes_relay_sockets(backend: BackendChoice) {
    let Some(mut relay) = start(backend, 1) else {
        return;
    };
    let mut client = Client::new(&relay);
    let relayed = client.allocate();
    relay.dataplane.take().unwrap().shutdown().unwrap();
    // The port is free again.
    UdpSocket::bind(relayed).expect("relay port still bound after shutdown");
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() { super::$name(super::BackendChoice::Uring) })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name(super::BackendChoice::Epoll) })*
        }
    };
}

on_both_backends!(
    binding_reports_the_mapped_address,
    full_relay_cycle,
    many_datagrams_without_loss,
    unpermitted_traffic_is_dropped,
    expired_permission_stops_relaying,
    ipv6_peer_through_an_ipv4_listener,
    two_workers_serve_many_clients,
    shutdown_closes_relay_sockets,
);

#[test]
fn forcing_io_uring_where_it_is_missing_fails_cleanly() {
    // Probed on a thread of its own, as `Dataplane::start` does (see there).
    if std::thread::spawn(io::uring_available)
        .join()
        .unwrap()
        .is_ok()
    {
        eprintln!("SKIPPED: io_uring is available here");
        return;
    }
    let config = Config {
        listen: vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            free_port(),
        )],
        threads: 1,
        pin: false,
        backend: BackendChoice::Uring,
        peer_filter: Arc::new(PeerFilter::new(vec![], vec![])),
        xdp: None,
        batch_wait: Duration::ZERO,
        media: None,
    };
    let servers: ServerFactory = Arc::new(|_| -> Server { unreachable!("no worker may start") });
    assert!(matches!(
        Dataplane::start(config, servers),
        Err(Error::UringUnavailable(_))
    ));
}

#[test]
fn a_listener_that_cannot_be_bound_is_an_error() {
    // Taken without SO_REUSEPORT, so the workers' bind fails.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = Config {
        listen: vec![addr],
        threads: 1,
        pin: false,
        backend: BackendChoice::Epoll,
        peer_filter: Arc::new(PeerFilter::new(vec![], vec![])),
        xdp: None,
        batch_wait: Duration::ZERO,
        media: None,
    };
    let servers: ServerFactory =
        Arc::new(|_| -> Server { unreachable!("no server before the listeners") });
    match Dataplane::start(config, servers) {
        Err(Error::Bind { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn a_worker_that_panics_at_start_is_an_error() {
    let listener = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
    let (server_config, filter) = configs(listener);
    let server_config = Arc::new(server_config);
    let shared = Shared::new(&server_config);
    // Worker 0 starts and keeps running; worker 1 dies before reporting.
    // `start` must neither hang nor return a half-started dataplane.
    let servers: ServerFactory = Arc::new(move |worker| {
        assert_ne!(worker, 1, "worker 1 fails on purpose");
        Server::new(
            server_config.clone(),
            shared.clone(),
            Arc::new(SystemTimeProvider),
        )
    });
    let config = Config {
        listen: vec![listener],
        threads: 2,
        pin: false,
        backend: BackendChoice::Epoll,
        peer_filter: Arc::new(filter),
        xdp: None,
        batch_wait: Duration::ZERO,
        media: None,
    };
    match Dataplane::start(config, servers) {
        Err(Error::WorkerPanicked(1)) => {}
        other => panic!("expected worker 1 to be reported, got {other:?}"),
    }
}
