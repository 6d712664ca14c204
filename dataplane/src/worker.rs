//! One worker thread: its backend, its forwarding table, its fast path and
//! its own control-plane [`Server`], driven in the call order `uturn_turn`
//! documents (input, then rule changes, then transmits, then timeout).
//!
//! Each loop turn:
//!
//! 1. [`Backend::poll`] for at most `min(next timer, 100 ms)` (at once if
//!    mail is waiting), or until the worker is woken; each datagram
//!    goes through [`FastPath::handle`]. The few that need the control plane
//!    (STUN requests) are copied aside: `poll` holds the backend, and an
//!    `OpenRelay` rule needs the backend to register the new socket.
//! 2. Each set-aside datagram goes to [`Server::handle_datagram`], then the
//!    server is drained: rule changes are applied to the table, and mirrored
//!    into the XDP fast path when one is attached (`offload`) (`OpenRelay` is
//!    bound and answered with `handle_relay_bound` at once, `CloseRelay`
//!    closes the socket), then transmits are queued from the listener whose
//!    address is their source.
//! 3. Timers that are due run ([`Server::handle_timeout`]), drained the same way.
//! 4. [`Backend::flush`] submits everything queued; the server's stats are
//!    copied into this worker's [`Counters`]; the stop flag is checked.
//!
//! With the media relay on (`Config::media`), the worker also runs a
//! [`MediaEngine`] (docs/media.md): DTLS and RTP/RTCP from a listener go to
//! it straight from the receive callback (no copy), and its datagrams are
//! sent when the receive batch ends (or every `MEDIA_GROUP` of them),
//! grouped by destination: a viewer's share of a publisher's burst (a
//! video frame) then leaves as one UDP GSO send. STUN goes to it first in step 2
//! (it takes the ICE checks for its ufrags and declines the rest, which go
//! to the TURN server), and its timers and mailbox (commands from the HTTP
//! thread and from other workers) run in step 3.
//!
//! Mail does not wait for step 1's timeout: the worker registers a
//! [`Wakeup`] (an eventfd) with its backend and hands it to the media
//! registry as its mailbox's [`Waker`]; a command posted to an empty
//! mailbox signals it, `poll` returns (after the datagrams already there)
//! with the eventfd drained, and step 3 handles the mail in that same turn.
//! Mail posted after the wait was computed but before the worker sleeps
//! leaves the eventfd readable, so that sleep returns at once; the
//! mailbox's docs (`uturn_media::mailbox`) give the whole ordering
//! argument. Without media (TURN only) no wake-up is registered.
//!
//! Work per turn is bounded: `poll` hands over one batch, so a flood of
//! datagrams cannot keep timers (expiry of permissions, channels and
//! allocations) from running.
//!
//! Sending ChannelData or a Send indication before the server's answer to the
//! ChannelBind or CreatePermission that allows it is a protocol error (RFC
//! 8656 §12.6, §9.1); so reordering within one batch (rules are applied after
//! the batch's fast-path datagrams) changes nothing a correct client sees.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uturn_media::{MediaEngine, Registry};
use uturn_turn::{FiveTuple, PeerFilter, RuleChange, Server};

use crate::fastpath::{FastPath, Verdict};
use crate::io::{self, Backend, Sender, Wakeup};
use crate::metrics::Counters;
use crate::offload::Offload;
use crate::table::Table;
use crate::{BackendChoice, Error, ServerFactory};

/// Media datagrams queued during a receive batch before they are sent
/// (grouped by destination) without waiting for the batch's end: bounds
/// the buffers a batch holds (about 1.5 MB) far below the media queue's
/// bound (`uturn_media::transmit::MAX_QUEUED`).
const MEDIA_GROUP: usize = 1024;

/// Longest wait in `poll`: how late the stop flag may be noticed. Mail
/// does not wait for it (the worker is woken).
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Everything a worker thread starts from.
pub(crate) struct Spec {
    pub index: usize,
    /// CPU to pin to, if pinning.
    pub cpu: Option<usize>,
    pub listen: Vec<SocketAddr>,
    /// `Uring` or `Epoll` (already resolved from `Auto`).
    pub backend: BackendChoice,
    pub servers: ServerFactory,
    pub peer_filter: Arc<PeerFilter>,
    pub xdp: Option<Arc<uturn_ebpf::XdpFastPath>>,
    /// See [`crate::Config::batch_wait`].
    pub batch_wait: Duration,
    /// The media relay's registry, when media is on.
    pub media: Option<Arc<Registry>>,
    pub counters: Arc<[Counters]>,
    pub stop: Arc<AtomicBool>,
}

/// Starts worker `spec.index`. `ready` is told once, when the listeners are
/// bound (or why they could not be), and dropped right after, so `start`
/// sees a worker that panicked before reporting as a closed channel.
pub(crate) fn spawn(
    spec: Spec,
    ready: mpsc::Sender<Result<(), Error>>,
) -> std::io::Result<JoinHandle<Result<(), Error>>> {
    std::thread::Builder::new()
        .name(format!("uturn-worker-{}", spec.index))
        .spawn(move || run(spec, ready))
}

fn run(spec: Spec, ready: mpsc::Sender<Result<(), Error>>) -> Result<(), Error> {
    let span = tracing::info_span!("worker", index = spec.index);
    let _entered = span.enter();
    if let Some(cpu) = spec.cpu {
        if let Err(e) = pin_to_cpu(cpu) {
            tracing::warn!(cpu, error = %e, "cannot pin worker");
        }
    }
    let opened = Worker::open(&spec);
    // The receiver is gone only if `start` already gave up.
    let mut worker = match opened {
        Ok(worker) => {
            let _ = ready.send(Ok(()));
            worker
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    drop(ready);
    // `start` makes one `Counters` per worker; `get` only avoids indexing.
    let Some(counters) = spec.counters.get(spec.index) else {
        return Ok(());
    };
    while !spec.stop.load(Ordering::Relaxed) {
        worker.turn(counters);
    }
    worker.shutdown();
    if let Some(registry) = spec.media.as_ref() {
        // Nobody drains this eventfd any more.
        registry.set_waker(spec.index, None);
    }
    Ok(())
}

/// A slow-path datagram copied out of the receive buffer. The buffers are
/// kept across turns, so the slow path allocates only while it grows.
struct SlowDatagram {
    from: FiveTuple,
    data: Vec<u8>,
}

struct Worker {
    backend: Box<dyn Backend>,
    table: Table,
    fast: FastPath,
    server: Server,
    /// Mirrors the table's channel rules into XDP, when attached.
    offload: Option<Offload>,
    /// The WebRTC media relay's engine for this worker, when media is on.
    media: Option<MediaEngine>,
    slow: Vec<SlowDatagram>,
    slow_len: usize,
    /// Test knob: without mail, wait this long in `poll` whatever the
    /// timers say, so that only a datagram or a wake can end the wait.
    #[cfg(test)]
    park: Option<Duration>,
}

impl Worker {
    fn open(spec: &Spec) -> Result<Self, Error> {
        let mut backend = io::open(spec.backend)?;
        let mut table = Table::new();
        for &addr in &spec.listen {
            let socket = io::bind_listener(addr).map_err(|source| Error::Bind { addr, source })?;
            let local = socket
                .local_addr()
                .map_err(|source| Error::Bind { addr, source })?;
            let id = backend
                .add_socket(socket)
                .map_err(|source| Error::Bind { addr, source })?;
            table.add_listener(local, id);
        }
        let batching = backend.set_batch_wait(spec.batch_wait);
        if !batching && !spec.batch_wait.is_zero() {
            tracing::debug!(
                backend = backend.name(),
                "batch wait unsupported here: one wake-up per datagram"
            );
        }
        if let Some(registry) = spec.media.as_ref() {
            match watch_wake(&mut *backend) {
                Ok(wakeup) => registry.set_waker(spec.index, Some(Waker::from(wakeup))),
                Err(e) => tracing::warn!(
                    error = %e,
                    "no wake-up eventfd: media mail waits up to {MAX_WAIT:?}"
                ),
            }
        }
        let server = (spec.servers)(spec.index);
        tracing::debug!(backend = backend.name(), ?spec.batch_wait, batching, "worker ready");
        Ok(Self {
            backend,
            table,
            fast: FastPath::new(spec.peer_filter.clone()).with_media(spec.media.is_some()),
            server,
            offload: spec.xdp.clone().map(Offload::new),
            media: spec
                .media
                .clone()
                .map(|registry| MediaEngine::new(spec.index, registry)),
            slow: Vec::new(),
            slow_len: 0,
            #[cfg(test)]
            park: None,
        })
    }

    /// One loop turn (see the module docs).
    fn turn(&mut self, counters: &Counters) {
        let now = Instant::now();
        let mail = self.media.as_ref().is_some_and(MediaEngine::has_mail);
        let next_timer = match self.media.as_ref() {
            _ if mail => Some(now),
            Some(media) => earliest(self.server.poll_timeout(), media.poll_timeout()),
            None => self.server.poll_timeout(),
        };
        let wait = next_timer.map_or(MAX_WAIT, |at| {
            at.saturating_duration_since(now).min(MAX_WAIT)
        });
        #[cfg(test)]
        let wait = match self.park {
            Some(park) if !mail => park,
            _ => wait,
        };

        let Self {
            backend,
            table,
            fast,
            slow,
            slow_len,
            media,
            ..
        } = self;
        let polled = backend.poll(wait, &mut |meta, data, sender| {
            let verdict = fast.handle(table, counters, meta, data, sender);
            if verdict == Verdict::Media {
                if let Some(media) = media.as_mut() {
                    // Per datagram: RTCP statistics (jitter, DLSR) need the
                    // arrival time, not the start of a batch wait.
                    media.handle_datagram(Instant::now(), meta.local, meta.source, data);
                    // The fan-out's datagrams wait for the end of the batch
                    // (or for MEDIA_GROUP of them), grouped by destination:
                    // a viewer's share of a publisher's burst then leaves as
                    // one GSO send instead of one send per packet.
                    if media.queued_transmits() >= MEDIA_GROUP {
                        media.group_transmits();
                        send_media(media, table, sender);
                    }
                }
            } else if verdict == Verdict::SlowPath {
                let from = FiveTuple {
                    client: meta.source,
                    server: meta.local,
                };
                match slow.get_mut(*slow_len) {
                    Some(entry) => {
                        entry.from = from;
                        entry.data.clear();
                        entry.data.extend_from_slice(data);
                    }
                    None => slow.push(SlowDatagram {
                        from,
                        data: data.to_vec(),
                    }),
                }
                *slow_len += 1;
            }
        });
        if let Err(e) = polled {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "poll failed");
                // Do not spin on a persistent failure; timers still run below.
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        if let Some(media) = self.media.as_mut() {
            media.group_transmits();
            drain_media(media, &self.table, &mut *self.backend);
        }

        let now = Instant::now();
        for i in 0..self.slow_len {
            if let Some(d) = self.slow.get(i) {
                if let Some(media) = self.media.as_mut() {
                    if media.handle_datagram(now, d.from.server, d.from.client, &d.data) {
                        drain_media(media, &self.table, &mut *self.backend);
                        continue;
                    }
                }
                self.server.handle_datagram(now, d.from, &d.data);
                drain(
                    &mut self.server,
                    &mut self.table,
                    self.offload.as_mut(),
                    &mut *self.backend,
                    now,
                );
            }
        }
        self.slow_len = 0;

        if self.server.poll_timeout().is_some_and(|at| at <= now) {
            self.server.handle_timeout(now);
            drain(
                &mut self.server,
                &mut self.table,
                self.offload.as_mut(),
                &mut *self.backend,
                now,
            );
        }

        if let Some(media) = self.media.as_mut() {
            if media.has_mail() || media.poll_timeout().is_some_and(|at| at <= now) {
                media.handle_timeout(now);
                drain_media(media, &self.table, &mut *self.backend);
            }
        }

        if let Err(e) = self.backend.flush() {
            tracing::warn!(error = %e, "flush failed");
        }
        counters.set_stats(&self.server.stats());
        if let Some(media) = self.media.as_ref() {
            counters.set_media(&media.stats());
        }
        let io = self.backend.stats();
        counters.set_send_errors(io.send_errors.saturating_add(io.send_dropped));
    }

    /// Ends every allocation (closing its relay sockets) and sends what is left.
    fn shutdown(&mut self) {
        let now = Instant::now();
        if let Some(media) = self.media.as_mut() {
            media.shutdown(now);
            drain_media(media, &self.table, &mut *self.backend);
        }
        self.server.shutdown();
        drain(
            &mut self.server,
            &mut self.table,
            self.offload.as_mut(),
            &mut *self.backend,
            now,
        );
        // Relay sockets reserved but never used by an allocation, if the
        // server did not close them itself.
        let leftover: Vec<_> = self.table.relay_sockets().collect();
        for (addr, _) in leftover {
            if let Some(id) = self.table.apply(&RuleChange::CloseRelay { relay: addr }) {
                self.backend.remove_socket(id);
            }
        }
        if let Some(offload) = self.offload.as_mut() {
            offload.clear();
        }
        if let Err(e) = self.backend.flush() {
            tracing::debug!(error = %e, "flush on shutdown failed");
        }
    }
}

/// A new wake-up, watched by `backend`.
fn watch_wake(backend: &mut dyn Backend) -> std::io::Result<Arc<Wakeup>> {
    let wakeup = Wakeup::new()?;
    backend.watch_wake(wakeup.clone())?;
    Ok(wakeup)
}

/// Drains the server after an input: rule changes first (applied to the
/// table; `OpenRelay` bound and answered right away), then transmits.
fn drain(
    server: &mut Server,
    table: &mut Table,
    mut offload: Option<&mut Offload>,
    backend: &mut dyn Backend,
    now: Instant,
) {
    while let Some(change) = server.poll_rule_change() {
        match change {
            RuleChange::OpenRelay {
                relay,
                dont_fragment,
            } => {
                let bound = io::bind_relay(relay, dont_fragment)
                    .and_then(|socket| backend.add_socket(socket));
                match bound {
                    Ok(id) => {
                        table.add_relay(relay, id);
                        server.handle_relay_bound(now, relay, Ok(()));
                    }
                    Err(e) => {
                        // The control plane retries on another port and
                        // answers 508 (logged there) only when all fail, so a
                        // port some other socket holds is routine, not a warning.
                        tracing::debug!(%relay, error = %e, "cannot bind relay socket");
                        server.handle_relay_bound(now, relay, Err(e));
                    }
                }
            }
            change => {
                if let Some(id) = table.apply(&change) {
                    backend.remove_socket(id);
                }
                if let Some(offload) = offload.as_deref_mut() {
                    offload.apply(&change);
                }
            }
        }
    }
    let mut sender = backend.sender();
    while let Some(transmit) = server.poll_transmit() {
        match table.listener(transmit.source) {
            Some(id) => sender.send(id, transmit.destination, &[&transmit.contents]),
            None => {
                tracing::warn!(source = %transmit.source, "transmit from an unknown listener");
            }
        }
    }
}

/// Queues the media engine's datagrams, each from the listener whose
/// address is its source.
fn drain_media(media: &mut MediaEngine, table: &Table, backend: &mut dyn Backend) {
    send_media(media, table, &mut backend.sender());
}

/// Queues every datagram the media engine has on `sender` (one from an
/// address that is no listener is logged and dropped).
fn send_media(media: &mut MediaEngine, table: &Table, sender: &mut Sender<'_>) {
    while let Some(t) = media.poll_transmit() {
        match table.listener(t.source) {
            Some(id) => sender.send(id, t.destination, &[t.contents]),
            None => tracing::warn!(source = %t.source, "media transmit from an unknown listener"),
        }
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Pins the calling thread to `cpu` (`sched_setaffinity(2)`).
#[allow(unsafe_code)]
fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is the
    // empty set (what CPU_ZERO produces).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET writes
    // inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe
    // `set`, which lives across the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    //! The worker loop with the media relay on: mail posted to a worker
    //! asleep in `poll` is handled at once, on both backends. The worker is
    //! "parked" (a test knob): without mail it waits 60 s whatever its
    //! timers say, so that only a datagram or a wake can end its wait, and
    //! a worker that is not woken fails the tests instead of being saved
    //! by its next timer.

    use std::net::{IpAddr, Ipv4Addr, UdpSocket};

    use uturn_media::client::{vp8_payload, Client, ClientConfig, ClientEvent};
    use uturn_media::{Kind, MediaEngine, RegistryConfig, Signalling};
    use uturn_sdp::MediaKind;
    use uturn_turn::{Credentials, CredentialsConfig, ServerConfig, Shared, SystemTimeProvider};

    use super::*;

    /// How long the parked worker would sleep without a wake.
    const PARK: Duration = Duration::from_secs(60);
    /// "Returned because of the wake": far below [`PARK`], far above any
    /// scheduling delay.
    const PROMPT: Duration = Duration::from_secs(10);
    /// Loop turns allowed for a phase (each waits at most `MAX_WAIT`).
    const MAX_TURNS: usize = 400;

    fn free_port() -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    }

    /// A TURN server configuration for `listener` (the worker needs one;
    /// no TURN traffic is sent).
    fn turn_config(listener: SocketAddr, filter: &PeerFilter) -> ServerConfig {
        ServerConfig {
            realm: "wake".into(),
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
            transaction_cache_size: 16,
            credentials: Credentials::new(
                &CredentialsConfig {
                    users: vec![("u".into(), "p".into())],
                    secrets: vec![],
                },
                "wake",
            ),
            peer_filter: filter.clone(),
            min_port: 49152,
            max_port: 49160,
        }
    }

    /// A publisher's `Client` on a UDP socket of its own.
    struct Peer {
        client: Client,
        socket: UdpSocket,
        events: Vec<ClientEvent>,
        buf: Vec<u8>,
    }

    impl Peer {
        fn pump(&mut self) {
            let now = Instant::now();
            let mut datagram = [0u8; 2048];
            while let Ok((len, from)) = self.socket.recv_from(&mut datagram) {
                self.client.handle_datagram(now, from, &datagram[..len]);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
            while let Some((to, len)) = self.client.poll_transmit(&mut self.buf) {
                let _ = self.socket.send_to(&self.buf[..len], to);
            }
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
        }

        fn saw(&self, f: impl Fn(&ClientEvent) -> bool) -> bool {
            self.events.iter().any(f)
        }
    }

    /// Turns the worker and pumps the peer until `done` (bounded).
    fn run_until(
        worker: &mut Worker,
        counters: &Counters,
        peer: &mut Peer,
        done: impl Fn(&Peer) -> bool,
    ) -> bool {
        for _ in 0..MAX_TURNS {
            peer.pump();
            if done(peer) {
                return true;
            }
            worker.turn(counters);
        }
        false
    }

    /// A worker `0` of a two-worker media registry, and a publisher of
    /// `cam` connected to it (ICE and DTLS with the worker's engine).
    struct Setup {
        worker: Worker,
        counters: Counters,
        registry: Arc<Registry>,
        listener: SocketAddr,
        publisher: Peer,
        session: String,
    }

    fn setup(backend: BackendChoice) -> Setup {
        let listener = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
        let filter = Arc::new(PeerFilter::new(vec![], vec![]));
        let config = Arc::new(turn_config(listener, &filter));
        let shared = Shared::new(&config);
        let certificate = uturn_dtls::Certificate::generate().unwrap();
        let registry = Registry::new(RegistryConfig::new(vec![listener], 2, certificate));
        let spec = Spec {
            index: 0,
            cpu: None,
            listen: vec![listener],
            backend,
            servers: Arc::new(move |_| {
                Server::new(config.clone(), shared.clone(), Arc::new(SystemTimeProvider))
            }),
            peer_filter: filter,
            xdp: None,
            batch_wait: Duration::from_millis(1),
            media: Some(registry.clone()),
            counters: Arc::from(vec![Counters::default()]),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut worker = Worker::open(&spec).unwrap();
        let counters = Counters::default();

        // A publisher connects (ICE and DTLS with the worker's engine).
        let now = Instant::now();
        let mut client = Client::new(now, ClientConfig::publisher()).unwrap();
        let created = registry.publish(now, "cam", &client.offer()).unwrap();
        client.accept_answer(now, &created.answer).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut peer = Peer {
            client,
            socket,
            events: Vec::new(),
            buf: Vec::new(),
        };
        let connected = run_until(&mut worker, &counters, &mut peer, |p| {
            p.saw(|e| matches!(e, ClientEvent::DtlsConnected { .. }))
        });
        assert!(
            connected,
            "the publisher did not connect: {:?}",
            peer.events
        );
        Setup {
            worker,
            counters,
            registry,
            listener,
            publisher: peer,
            session: created.session,
        }
    }

    fn delete_wakes_a_parked_worker(backend: BackendChoice) {
        let Setup {
            mut worker,
            counters,
            registry,
            publisher: mut peer,
            session,
            ..
        } = setup(backend);

        // The worker sleeps with nothing to do and no timer to end its
        // wait; the HTTP thread DELETEs the session meanwhile: its mail
        // must wake the worker, which ends the session in that same turn.
        worker.park = Some(PARK);
        let http = {
            let registry = registry.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                registry
                    .delete(Instant::now(), Kind::Publisher, "cam", &session)
                    .unwrap();
            })
        };
        let start = Instant::now();
        worker.turn(&counters);
        let took = start.elapsed();
        http.join().unwrap();
        assert!(took < PROMPT, "the mail did not wake the worker: {took:?}");
        assert!(
            !worker.media.as_ref().unwrap().has_mail(),
            "the mail was not handled in the turn it woke"
        );
        worker.park = None;

        // The session's end reached the peer (DTLS close_notify).
        let closed = run_until(&mut worker, &counters, &mut peer, |p| {
            p.saw(|e| matches!(e, ClientEvent::Closed))
        });
        assert!(closed, "no close_notify: {:?}", peer.events);
        assert_eq!(registry.session_count(), 0);
        worker.shutdown();
    }

    /// A WHEP viewer homed on worker 1 (a sans-IO engine the test drives on
    /// another thread; its datagrams to the viewer go straight to the
    /// viewer's client) attaches to the stream whose fan-out runs on the
    /// parked worker 0: the attach is mail, and it must wake worker 0. The
    /// viewer then gets video from worker 0 over real UDP.
    fn attach_wakes_a_parked_worker(backend: BackendChoice) {
        let Setup {
            mut worker,
            counters,
            registry,
            listener,
            mut publisher,
            ..
        } = setup(backend);

        // The viewer's POST, then its ICE and DTLS with engine 1.
        let now = Instant::now();
        let mut client = Client::new(now, ClientConfig::viewer()).unwrap();
        let created = registry.play(now, "cam", &client.offer()).unwrap();
        client.accept_answer(now, &created.answer).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut engine = MediaEngine::new(1, registry.clone());
        let worker_one = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let deadline = Instant::now() + PROMPT;
            let mut events = Vec::new();
            while !events
                .iter()
                .any(|e| matches!(e, ClientEvent::DtlsConnected { .. }))
            {
                assert!(Instant::now() < deadline, "the viewer did not connect");
                let now = Instant::now();
                while let Some((_, len)) = client.poll_transmit(&mut buf) {
                    engine.handle_datagram(now, listener, addr, &buf[..len]);
                }
                if engine.has_mail() || engine.poll_timeout().is_some_and(|t| t <= now) {
                    engine.handle_timeout(now);
                }
                while let Some(t) = engine.poll_transmit() {
                    client.handle_datagram(now, listener, t.contents);
                }
                if client.poll_timeout().is_some_and(|t| t <= now) {
                    client.handle_timeout(now);
                }
                events.extend(std::iter::from_fn(|| client.poll_event()));
                std::thread::sleep(Duration::from_millis(1));
            }
            // Engine 1 mailed the attach to worker 0 as DTLS came up. Its
            // last flight (the viewer's PLI, say) goes with it.
            let now = Instant::now();
            while let Some((_, len)) = client.poll_transmit(&mut buf) {
                engine.handle_datagram(now, listener, addr, &buf[..len]);
            }
            (client, events)
        });

        // Meanwhile worker 0 is parked: only the attach's wake (or a stray
        // datagram, after which it parks again) can end each wait.
        worker.park = Some(PARK);
        let start = Instant::now();
        while worker.media.as_ref().unwrap().stats().viewers == 0 {
            assert!(
                start.elapsed() < PROMPT,
                "the attach did not wake the worker"
            );
            worker.turn(&counters);
        }
        let (client, events) = worker_one.join().unwrap();
        worker.park = None;

        // Video reaches the viewer, from worker 0's listener.
        let mut viewer = Peer {
            client,
            socket,
            events,
            buf: Vec::new(),
        };
        let mut got_video = false;
        for _ in 0..MAX_TURNS {
            publisher
                .client
                .send_rtp(
                    Instant::now(),
                    MediaKind::Video,
                    &vp8_payload(true, 500),
                    true,
                )
                .unwrap();
            publisher.pump();
            worker.turn(&counters);
            viewer.pump();
            if viewer.saw(|e| {
                matches!(
                    e,
                    ClientEvent::Rtp {
                        kind: MediaKind::Video,
                        ..
                    }
                )
            }) {
                got_video = true;
                break;
            }
        }
        assert!(
            got_video,
            "no video reached the viewer: {:?}",
            viewer.events
        );
        worker.shutdown();
    }

    #[test]
    fn delete_wakes_a_parked_worker_epoll() {
        delete_wakes_a_parked_worker(BackendChoice::Epoll);
    }

    #[test]
    fn delete_wakes_a_parked_worker_io_uring() {
        if io::uring_available().is_err() {
            return; // io_uring forbidden here; io/tests.rs says so
        }
        delete_wakes_a_parked_worker(BackendChoice::Uring);
    }

    #[test]
    fn attach_wakes_a_parked_worker_epoll() {
        attach_wakes_a_parked_worker(BackendChoice::Epoll);
    }

    #[test]
    fn attach_wakes_a_parked_worker_io_uring() {
        if io::uring_available().is_err() {
            return; // io_uring forbidden here; io/tests.rs says so
        }
        attach_wakes_a_parked_worker(BackendChoice::Uring);
    }
}
