//! One worker thread: its backend, its forwarding table, its fast path and
//! its own control-plane [`Server`], driven in the call order `uturn_turn`
//! documents (input, then rule changes, then transmits, then timeout).
//!
//! Each loop turn:
//!
//! 1. [`Backend::poll`] for at most `min(next timer, 100 ms)`; each datagram
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
//! it straight from the receive callback (no copy; its answers and its
//! fan-out leave through the same batch), STUN goes to it first in step 2
//! (it takes the ICE checks for its ufrags and declines the rest, which go
//! to the TURN server), and its timers and mailbox (commands from the HTTP
//! thread and from other workers) run in step 3.
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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uturn_media::{MediaEngine, Registry};
use uturn_turn::{FiveTuple, PeerFilter, RuleChange, Server};

use crate::fastpath::{FastPath, Verdict};
use crate::io::{self, Backend};
use crate::metrics::Counters;
use crate::offload::Offload;
use crate::table::Table;
use crate::{BackendChoice, Error, ServerFactory};

/// Longest wait in `poll`: how late the stop flag may be noticed.
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
        })
    }

    /// One loop turn (see the module docs).
    fn turn(&mut self, counters: &Counters) {
        let now = Instant::now();
        let next_timer = match self.media.as_ref() {
            Some(media) if media.has_mail() => Some(now),
            Some(media) => earliest(self.server.poll_timeout(), media.poll_timeout()),
            None => self.server.poll_timeout(),
        };
        let wait = next_timer.map_or(MAX_WAIT, |at| {
            at.saturating_duration_since(now).min(MAX_WAIT)
        });

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
                    while let Some(t) = media.poll_transmit() {
                        if let Some(id) = table.listener(t.source) {
                            sender.send(id, t.destination, &[t.contents]);
                        }
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
    let mut sender = backend.sender();
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
