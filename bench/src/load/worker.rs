//! One worker thread: its share of the sessions, their sockets, one I/O
//! backend, and the phases of the run (setup, ramp-up and warm-up,
//! measured window, drain, teardown).
//!
//! I/O goes through the dataplane's backends (`uturn_dataplane::io`):
//! batched receives (io_uring multishot or epoll + `recvmmsg`) and batched
//! sends (`sendmmsg` or one io_uring submission, GSO-coalesced per socket
//! and destination). Each session has its own client socket (its own
//! 5-tuple, so its own allocation); the worker's peers share one socket,
//! demultiplexed by source address (the session's relayed address).
//!
//! Waiting: everything due is sent as one batch, then the worker waits for
//! the next deadline *while receiving* (echo RTTs must not include a
//! sleep). io_uring's wait takes a nanosecond timeout, so it is precise on
//! its own. epoll's timeout has millisecond resolution, so the epoll path
//! waits in whole milliseconds until less than 2 ms remain and then spins
//! with zero-timeout polls (still receiving) up to the deadline: exact
//! deadlines at the price of up to ~2 ms of busy polling per wait.
//!
//! Per packet nothing is allocated: probes are written into one scratch
//! payload, headers are precomputed per session (ChannelData header, Send
//! indication prefix), and the send queue copies the parts once.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use uturn_dataplane::io::{self, Backend, RecvMeta, Sender, SocketId};
use uturn_dataplane::BackendChoice;
use uturn_stun::channel_data::ChannelData;
use uturn_stun::{AttributeType, Class, Message, Method, PacketKind};

use super::client::{Credentials, Event, TurnClient};
use super::config::{Config, IoChoice, Mode, Pattern};
use super::framing::Framing;
use super::pacing::{Pacer, Period, Phases};
use super::payload::{self, Probe};
use super::stats::{Echo, Jitter, LossTracker, RttHistogram};
use super::{sys, LoadError};

/// The one channel number every session binds (each has its own
/// allocation, so they need not differ).
const CHANNEL: u16 = 0x4000;
/// How often control timers (retransmissions, refreshes) are checked
/// during setup (RTO is 500 ms: 10 ms is precise enough) and while traffic
/// flows (refreshes are minutes apart).
const SETUP_TICK_NS: u64 = 10_000_000;
const CONTROL_TICK_NS: u64 = 50_000_000;
/// How often a worker publishes its counters for the progress bar.
const PROGRESS_TICK_NS: u64 = 100_000_000;
/// Longest teardown wait for the Refresh(0) answers.
const TEARDOWN_NS: u64 = 5_000_000_000;
/// Receive polls in a row while datagrams keep arriving and nothing is due.
const RECV_ROUNDS: usize = 8;
/// An original this late counts as late (the generator fell behind).
pub const LATE_NS: u64 = 1_000_000;
/// epoll waits in whole ms until this much is left, then spins.
const SPIN_NS: u64 = 2_000_000;

/// Times of the run's phases (ns on the run clock), fixed once every worker
/// finished its setup.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub ramp_start: u64,
    pub window_start: u64,
    pub window_end: u64,
    pub drain_end: u64,
}

/// Live counters of one worker, for the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// What every worker shares (read-only but for the progress atomics).
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub credentials: Arc<Credentials>,
    pub period: Period,
    pub phases: Phases,
    /// The run clock's origin.
    pub base: Instant,
    pub timeline: OnceLock<Timeline>,
    /// Workers that finished setup (or failed): the timeline is fixed once
    /// all did.
    pub setup_finished: AtomicUsize,
    pub progress: Vec<Progress>,
}

impl Shared {
    pub fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counts of the measured window (see the summary's fields).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub sent_peer_to_client: u64,
    pub recv_at_client: u64,
    pub sent_client_to_peer: u64,
    pub recv_at_peer: u64,
    /// Echoes of one original seen more than once.
    pub duplicates: u64,
    /// Datagrams that were neither probes nor responses we expected.
    pub foreign: u64,
    /// Originals sent more than [`LATE_NS`] after their deadline: the
    /// generator could not keep up.
    pub late_sends: u64,
    /// Largest lateness of an original (ns).
    pub max_late_ns: u64,
}

/// What a worker hands back.
#[derive(Debug, Default)]
pub struct WorkerReport {
    pub counters: Counters,
    pub rtt: RttHistogram,
    pub lost: u64,
    pub jitter_sum_ns: f64,
    pub jitter_sessions: u64,
    pub established: u64,
    pub setup_failures: BTreeMap<String, u64>,
    pub refresh_failures: u64,
    pub teardown_unanswered: u64,
    pub setup_first_ns: Option<u64>,
    pub setup_last_ns: Option<u64>,
    pub io: io::IoStats,
    pub backend: &'static str,
}

struct Session {
    /// Index in the whole run (the probe's session id).
    id: u32,
    socket: SocketId,
    client: TurnClient,
    relayed: Option<SocketAddr>,
    /// How its client frames data for the relay (set once it is ready).
    framing: Option<Framing>,
    /// Next sequence number of an original.
    seq: u64,
    loss: LossTracker,
    jitter: Jitter,
}

/// Everything the receive path touches (the backend is borrowed apart).
struct Engine<'s> {
    shared: &'s Shared,
    pattern: Pattern,
    mode: Mode,
    server: SocketAddr,
    /// `--direct`: no TURN, plain UDP between client and peer sockets.
    direct: bool,
    peer_addr: SocketAddr,
    peer_socket: SocketId,
    sessions: Vec<Session>,
    by_socket: HashMap<SocketId, u32>,
    by_relayed: HashMap<SocketAddr, u32>,
    /// Session slot per pacer slot.
    pacer_slots: Vec<u32>,
    /// Sessions whose setup ended (ready or failed).
    settled: usize,
    counters: Counters,
    rtt: RttHistogram,
    scratch: Vec<u8>,
    report: WorkerReport,
}

/// Runs worker `index` to the end of the run.
pub fn run(index: usize, shared: &Shared) -> Result<WorkerReport, LoadError> {
    // Counts this worker as finished with setup however it leaves setup
    // (also on an error), so the run never waits for a dead worker.
    let setup_guard = SetupGuard(&shared.setup_finished);
    let args = &shared.config.args;
    if let Some(cpus) = &args.cpus {
        if let Some(cpu) = cpus.get(index % cpus.len().max(1)) {
            sys::pin_to_cpu(*cpu).map_err(|e| LoadError::Io("pin thread", e))?;
        }
    }
    let choice = match args.io {
        IoChoice::Auto => BackendChoice::Auto,
        IoChoice::Uring => BackendChoice::Uring,
        IoChoice::Epoll => BackendChoice::Epoll,
    };
    let mut backend = io::open(choice).map_err(|e| LoadError::Backend(e.to_string()))?;
    let precise_wait = backend.name() == "io_uring";

    // Sockets: clients in the client namespace, the peer in the peer's.
    let ids: Vec<u32> = (index..args.sessions)
        .step_by(args.threads)
        .map(|g| g as u32)
        .collect();
    let mut client_sockets = Vec::with_capacity(ids.len());
    {
        let _ns = sys::enter_netns(args.client_netns.as_deref())
            .map_err(|e| LoadError::Io("enter client netns", e))?;
        // The default wildcard is IPv4's; an IPv6 server needs IPv6's.
        let client_ip = match (args.client_ip, args.server) {
            (IpAddr::V4(ip), SocketAddr::V6(_)) if ip.is_unspecified() => {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            }
            (ip, _) => ip,
        };
        for _ in &ids {
            let s = io::bind_relay(SocketAddr::new(client_ip, 0), false)
                .map_err(|e| LoadError::Io("bind client socket", e))?;
            client_sockets.push(s);
        }
    }
    let (peer_sock, peer_addr) = {
        let _ns = sys::enter_netns(args.peer_netns.as_deref())
            .map_err(|e| LoadError::Io("enter peer netns", e))?;
        let ip = match args.peer_ip {
            Some(ip) => ip,
            None => route_source(shared.config.args.server)?,
        };
        let s = io::bind_relay(SocketAddr::new(ip, 0), false)
            .map_err(|e| LoadError::Io("bind peer socket", e))?;
        let addr = s
            .local_addr()
            .map_err(|e| LoadError::Io("peer address", e))?;
        (s, addr)
    };
    let peer_socket = backend
        .add_socket(peer_sock)
        .map_err(|e| LoadError::Io("add peer socket", e))?;
    let mut sessions = Vec::with_capacity(ids.len());
    let mut by_socket = HashMap::with_capacity(ids.len());
    let channel = (args.mode == Mode::Channel).then_some(CHANNEL);
    for (slot, (id, sock)) in ids.iter().zip(client_sockets).enumerate() {
        // In direct mode the peer talks to the client socket itself, as if
        // it were the relayed address.
        let direct_addr = match sock.local_addr() {
            Ok(a) if args.direct => Some(SocketAddr::new(peer_addr.ip(), a.port())),
            _ => None,
        };
        let socket = backend
            .add_socket(sock)
            .map_err(|e| LoadError::Io("add client socket", e))?;
        by_socket.insert(socket, slot as u32);
        sessions.push(Session {
            id: *id,
            socket,
            client: TurnClient::new(shared.credentials.clone(), peer_addr, channel),
            relayed: direct_addr,
            framing: None,
            seq: 0,
            loss: LossTracker::default(),
            jitter: Jitter::default(),
        });
    }
    let mut scratch = vec![0u8; args.payload];
    payload::fill(&mut scratch);
    let mut engine = Engine {
        shared,
        pattern: args.pattern,
        mode: args.mode,
        server: args.server,
        direct: args.direct,
        peer_addr,
        peer_socket,
        by_relayed: HashMap::with_capacity(sessions.len()),
        sessions,
        by_socket,
        pacer_slots: Vec::new(),
        settled: 0,
        counters: Counters::default(),
        rtt: RttHistogram::new(),
        scratch,
        report: WorkerReport {
            backend: backend.name(),
            ..WorkerReport::default()
        },
    };
    engine.setup(backend.as_mut(), index)?;
    drop(setup_guard);
    // The main thread fixes the timeline a moment after the last worker
    // finished setup; nothing is due meanwhile (refreshes are minutes away).
    let timeline = loop {
        if let Some(t) = shared.timeline.get() {
            break *t;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    engine.traffic(backend.as_mut(), index, timeline, precise_wait)?;
    engine.teardown(backend.as_mut())?;
    let mut report = engine.finish();
    report.io = backend.stats();
    Ok(report)
}

struct SetupGuard<'a>(&'a AtomicUsize);

impl Drop for SetupGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// The source address the kernel would use towards `server` (connecting a
/// UDP socket sends nothing).
fn route_source(server: SocketAddr) -> Result<IpAddr, LoadError> {
    let any = if server.is_ipv4() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    };
    let s = UdpSocket::bind(any).map_err(|e| LoadError::Io("route probe", e))?;
    s.connect(server)
        .map_err(|e| LoadError::Io("route to server", e))?;
    Ok(s.local_addr()
        .map_err(|e| LoadError::Io("route probe", e))?
        .ip())
}

impl Engine<'_> {
    /// Allocates, permits and binds every session, `setup_rate` per second
    /// across the run: session g starts g / rate after this worker's setup
    /// began (workers hold interleaved sessions, so together they keep the
    /// rate).
    fn setup(&mut self, backend: &mut dyn Backend, index: usize) -> Result<(), LoadError> {
        if self.direct {
            for (slot, s) in self.sessions.iter().enumerate() {
                if let Some(addr) = s.relayed {
                    self.by_relayed.insert(addr, slot as u32);
                    self.report.established += 1;
                }
            }
            return Ok(());
        }
        let rate = self.shared.config.args.setup_rate;
        let origin = self.shared.now();
        let start_at = |id: u32| origin + (f64::from(id) * 1e9 / rate) as u64;
        let mut next_start = 0usize;
        let mut next_control = 0u64;
        loop {
            let now = self.shared.now();
            let mut sender = backend.sender();
            while let Some(s) = self.sessions.get_mut(next_start) {
                if start_at(s.id) > now {
                    break;
                }
                s.client.start(now);
                self.report.setup_first_ns.get_or_insert(now);
                self.drive_client(next_start as u32, now, &mut sender);
                next_start += 1;
            }
            // Responses are handled as they arrive (`on_recv`); only the
            // timers need a scan, and a coarse one is enough for them.
            if now >= next_control {
                next_control = now + SETUP_TICK_NS;
                self.run_timers(now, &mut sender);
            }
            backend.flush().map_err(|e| LoadError::Io("flush", e))?;
            self.publish(index);
            if next_start >= self.sessions.len() && self.settled >= self.sessions.len() {
                return Ok(());
            }
            let wake = self
                .sessions
                .get(next_start)
                .map(|s| start_at(s.id))
                .unwrap_or(u64::MAX)
                .min(next_control);
            let timeout =
                Duration::from_nanos(wake.saturating_sub(self.shared.now()).min(5_000_000));
            backend
                .poll(timeout, &mut |meta, data, sender| {
                    self.on_recv(meta, data, sender)
                })
                .map_err(|e| LoadError::Io("poll", e))?;
            backend.flush().map_err(|e| LoadError::Io("flush", e))?;
        }
    }

    /// Ramp-up, warm-up, measured window and drain: originals on the pacer's
    /// deadlines, echoes as they come.
    fn traffic(
        &mut self,
        backend: &mut dyn Backend,
        index: usize,
        t: Timeline,
        precise_wait: bool,
    ) -> Result<(), LoadError> {
        let period = self.shared.period;
        let window_ns = t.window_end - t.window_start;
        let expected = period.per_sec() * window_ns as f64 / 1e9;
        let mut pacer = Pacer::new(period, self.sessions.len());
        for (slot, s) in self.sessions.iter_mut().enumerate() {
            if !(s.client.is_ready() || self.direct && s.relayed.is_some()) {
                continue;
            }
            s.loss = LossTracker::with_capacity(expected as u64 + 2);
            if let Some((offset, k)) = self.shared.phases.first(s.id as usize, period) {
                pacer.add(t.ramp_start + offset, k);
                self.pacer_slots.push(slot as u32);
            }
        }
        let mut next_control = 0u64;
        let mut next_progress = 0u64;
        loop {
            let now = self.shared.now();
            if now >= t.drain_end {
                return Ok(());
            }
            let mut sender = backend.sender();
            while let Some(due) = pacer.pop_due(now, t.window_end) {
                let slot = self.pacer_slots.get(due.slot as usize).copied();
                // Window membership follows the schedule, not the actual
                // send time (see payload.rs).
                let measured = due.deadline >= t.window_start;
                if let Some(slot) = slot {
                    self.send_original(slot, now, measured, &mut sender);
                }
                if measured {
                    let late = now - due.deadline;
                    self.counters.max_late_ns = self.counters.max_late_ns.max(late);
                    self.counters.late_sends += u64::from(late > LATE_NS);
                }
            }
            if now >= next_control {
                next_control = now + CONTROL_TICK_NS;
                self.run_timers(now, &mut sender);
            }
            backend.flush().map_err(|e| LoadError::Io("flush", e))?;
            if now >= next_progress {
                next_progress = now + PROGRESS_TICK_NS;
                self.publish(index);
            }
            let next_send = pacer.next_deadline().filter(|d| *d < t.window_end);
            let wake = next_send
                .unwrap_or(u64::MAX)
                .min(next_control)
                .min(t.drain_end);
            let remaining = wake.saturating_sub(self.shared.now());
            let timeout = if precise_wait {
                remaining
            } else if remaining >= SPIN_NS {
                // Whole ms, rounded down: epoll rounds up.
                (remaining - SPIN_NS / 2) / 1_000_000 * 1_000_000
            } else {
                0
            };
            // A poll handles one batch; while batches keep coming and no
            // send is due, take more before going round, so receiving keeps
            // up with a send-heavy loop (echo RTTs stay honest).
            let mut timeout = Duration::from_nanos(timeout);
            for _ in 0..RECV_ROUNDS {
                let mut got = 0usize;
                backend
                    .poll(timeout, &mut |meta, data, sender| {
                        got += 1;
                        self.on_recv(meta, data, sender)
                    })
                    .map_err(|e| LoadError::Io("poll", e))?;
                backend.flush().map_err(|e| LoadError::Io("flush", e))?;
                if got == 0 || next_send.is_some_and(|d| d <= self.shared.now()) {
                    break;
                }
                timeout = Duration::ZERO;
            }
        }
    }

    /// Deletes every allocation (Refresh LIFETIME 0) and waits for the
    /// answers, at most [`TEARDOWN_NS`].
    fn teardown(&mut self, backend: &mut dyn Backend) -> Result<(), LoadError> {
        if self.direct {
            return Ok(());
        }
        let start = self.shared.now();
        for s in &mut self.sessions {
            s.client.close(start);
        }
        let mut sender = backend.sender();
        for slot in 0..self.sessions.len() {
            self.drive_client(slot as u32, start, &mut sender);
        }
        backend.flush().map_err(|e| LoadError::Io("flush", e))?;
        loop {
            let now = self.shared.now();
            let mut sender = backend.sender();
            self.run_timers(now, &mut sender);
            backend.flush().map_err(|e| LoadError::Io("flush", e))?;
            if self.sessions.iter().all(|s| s.client.is_done()) {
                return Ok(());
            }
            if now >= start + TEARDOWN_NS {
                self.report.teardown_unanswered =
                    self.sessions.iter().filter(|s| !s.client.is_done()).count() as u64;
                return Ok(());
            }
            backend
                .poll(Duration::from_millis(5), &mut |meta, data, sender| {
                    self.on_recv(meta, data, sender)
                })
                .map_err(|e| LoadError::Io("poll", e))?;
            backend.flush().map_err(|e| LoadError::Io("flush", e))?;
        }
    }

    fn finish(mut self) -> WorkerReport {
        let mut r = std::mem::take(&mut self.report);
        r.counters = self.counters;
        r.rtt = std::mem::take(&mut self.rtt);
        for s in &self.sessions {
            r.lost += s.loss.lost();
            r.counters.duplicates += s.loss.duplicates();
            if let Some(j) = s.jitter.value_ns() {
                r.jitter_sum_ns += j;
                r.jitter_sessions += 1;
            }
        }
        r
    }

    /// Publishes this worker's counters for the progress bar.
    fn publish(&self, index: usize) {
        if let Some(p) = self.shared.progress.get(index) {
            let c = &self.counters;
            p.established
                .store(self.report.established, Ordering::Relaxed);
            let failed: u64 = self.report.setup_failures.values().sum();
            p.failed.store(failed, Ordering::Relaxed);
            p.sent.store(
                c.sent_peer_to_client + c.sent_client_to_peer,
                Ordering::Relaxed,
            );
            p.received
                .store(c.recv_at_client + c.recv_at_peer, Ordering::Relaxed);
        }
    }

    /// Retransmissions, timeouts and refreshes that are due, for every
    /// session.
    fn run_timers(&mut self, now: u64, sender: &mut Sender<'_>) {
        for slot in 0..self.sessions.len() {
            let Some(s) = self.sessions.get_mut(slot) else {
                continue;
            };
            if s.client.poll_timeout().is_some_and(|t| t <= now) {
                s.client.handle_timeout(now);
                self.drive_client(slot as u32, now, sender);
            }
        }
    }

    /// Sends the client's pending request and handles its events.
    fn drive_client(&mut self, slot: u32, now: u64, sender: &mut Sender<'_>) {
        let server = self.server;
        let Some(s) = self.sessions.get_mut(slot as usize) else {
            return;
        };
        if let Some(bytes) = s.client.poll_transmit(now) {
            sender.send(s.socket, server, &[bytes]);
        }
        while let Some(event) = s.client.poll_event() {
            match event {
                Event::Ready { relayed } => {
                    s.relayed = Some(relayed);
                    self.by_relayed.insert(relayed, slot);
                    self.report.established += 1;
                    self.settled += 1;
                    self.report.setup_last_ns = Some(now);
                    let len = self.scratch.len();
                    s.framing = match self.mode {
                        Mode::Channel => Framing::channel(CHANNEL, len),
                        Mode::Send => Framing::send(s.client.peer(), len),
                    };
                    if s.framing.is_none() {
                        tracing::warn!(session = s.id, "cannot frame data for the relay");
                    }
                }
                Event::SetupFailed(f) => {
                    self.settled += 1;
                    *self.report.setup_failures.entry(f.key()).or_default() += 1;
                }
                Event::RefreshFailed(f) => {
                    tracing::warn!(failure = %f.key(), session = s.id, "refresh failed");
                    self.report.refresh_failures += 1;
                }
                Event::Closed => {}
            }
        }
    }

    /// Sends session `slot`'s next original from its originator.
    fn send_original(&mut self, slot: u32, now: u64, counted: bool, sender: &mut Sender<'_>) {
        let Some(s) = self.sessions.get_mut(slot as usize) else {
            return;
        };
        let Some(relayed) = s.relayed else {
            return;
        };
        let probe = Probe {
            session: s.id,
            seq: s.seq,
            sent_ns: now,
            measured: counted,
        };
        s.seq += 1;
        probe.write(&mut self.scratch);
        if counted {
            s.loss.on_sent(probe.seq);
        }
        match self.pattern {
            Pattern::PeerEcho => {
                sender.send(self.peer_socket, relayed, &[&self.scratch]);
                if counted {
                    self.counters.sent_peer_to_client += 1;
                }
            }
            Pattern::ClientEcho if self.direct => {
                sender.send(s.socket, self.peer_addr, &[&self.scratch]);
                if counted {
                    self.counters.sent_client_to_peer += 1;
                }
            }
            Pattern::ClientEcho => {
                if let Some(f) = &s.framing {
                    sender.send(s.socket, self.server, &f.parts(&self.scratch));
                }
                if counted {
                    self.counters.sent_client_to_peer += 1;
                }
            }
        }
    }

    /// One received datagram.
    fn on_recv(&mut self, meta: &RecvMeta, data: &[u8], sender: &mut Sender<'_>) {
        if meta.socket == self.peer_socket {
            self.on_peer_datagram(meta.source, data, sender);
            return;
        }
        let Some(&slot) = self.by_socket.get(&meta.socket) else {
            return;
        };
        let payload = match uturn_stun::classify(data) {
            _ if self.direct => data,
            PacketKind::ChannelData => match ChannelData::parse(data) {
                Ok(cd) => cd.payload(),
                Err(_) => {
                    self.counters.foreign += 1;
                    return;
                }
            },
            PacketKind::Stun => {
                let Ok(msg) = Message::parse(data) else {
                    self.counters.foreign += 1;
                    return;
                };
                if msg.class() == Class::Indication && msg.method() == Method::DATA {
                    match msg.attribute(AttributeType::DATA) {
                        Some(raw) => raw.value,
                        None => return,
                    }
                } else {
                    let now = self.shared.now();
                    if let Some(s) = self.sessions.get_mut(slot as usize) {
                        s.client.handle_response(now, &msg);
                    }
                    self.drive_client(slot, now, sender);
                    return;
                }
            }
            _ => {
                self.counters.foreign += 1;
                return;
            }
        };
        let Some(probe) = self.probe_of(slot, payload) else {
            return;
        };
        let now = self.shared.now();
        let counted = probe.measured;
        let Some(s) = self.sessions.get_mut(slot as usize) else {
            return;
        };
        match self.pattern {
            Pattern::PeerEcho => {
                // An original from the peer: echo it back unchanged.
                if counted {
                    self.counters.recv_at_client += 1;
                    s.jitter.on_arrival(probe.sent_ns, now);
                }
                if self.direct {
                    sender.send(s.socket, meta.source, &[data]);
                } else if self.mode == Mode::Channel
                    && uturn_stun::classify(data) == PacketKind::ChannelData
                {
                    // Same channel, same bytes: the echo is the datagram.
                    sender.send(s.socket, self.server, &[data]);
                } else {
                    if let Some(f) = &s.framing {
                        sender.send(s.socket, self.server, &f.parts(payload));
                    }
                }
                if counted {
                    self.counters.sent_client_to_peer += 1;
                }
            }
            Pattern::ClientEcho => {
                // The echo of our original, back from the peer.
                if s.loss.on_echo(probe.seq) == Echo::Counted {
                    self.counters.recv_at_client += 1;
                    self.rtt.record(now.saturating_sub(probe.sent_ns));
                }
            }
        }
    }

    /// The probe in `payload` if it belongs to the session in `slot`;
    /// anything else that is not a probe of that session counts as foreign.
    fn probe_of(&mut self, slot: u32, payload: &[u8]) -> Option<Probe> {
        let Some(probe) = Probe::read(payload) else {
            self.counters.foreign += 1;
            return None;
        };
        let session = self.sessions.get(slot as usize)?;
        if probe.session != session.id {
            self.counters.foreign += 1;
            return None;
        }
        Some(probe)
    }

    fn on_peer_datagram(&mut self, source: SocketAddr, data: &[u8], sender: &mut Sender<'_>) {
        let Some(&slot) = self.by_relayed.get(&source) else {
            self.counters.foreign += 1;
            return;
        };
        let Some(probe) = self.probe_of(slot, data) else {
            return;
        };
        let now = self.shared.now();
        let counted = probe.measured;
        let Some(s) = self.sessions.get_mut(slot as usize) else {
            return;
        };
        match self.pattern {
            Pattern::PeerEcho => {
                if s.loss.on_echo(probe.seq) == Echo::Counted {
                    self.counters.recv_at_peer += 1;
                    self.rtt.record(now.saturating_sub(probe.sent_ns));
                }
            }
            Pattern::ClientEcho => {
                if counted {
                    self.counters.recv_at_peer += 1;
                    s.jitter.on_arrival(probe.sent_ns, now);
                }
                sender.send(self.peer_socket, source, &[data]);
                if counted {
                    self.counters.sent_peer_to_client += 1;
                }
            }
        }
    }
}
