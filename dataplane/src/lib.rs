//! uturn's dataplane: one pinned worker thread per core, each with its own
//! SO_REUSEPORT listener sockets, its own I/O backend (io_uring, or epoll with
//! recvmmsg/sendmmsg), its own forwarding table and its own control-plane
//! [`Server`].
//!
//! A packet's path: the kernel hashes the client's 4-tuple to one worker's
//! listener (SO_REUSEPORT); that worker's allocation and relay socket serve it
//! from then on, so the hot path takes no lock and touches no other core's
//! memory.
//!
//! ```text
//!          +----------------- worker i (one thread, one core) -----------------+
//! client ->| listener --ChannelData, Send--> FastPath + Table --> relay socket |-> peer
//!          |     \--other STUN--> Server --rule changes--> Table               |
//! client <-| listener <--ChannelData, Data indication-- FastPath + Table <--   |<- peer
//!          +--------------------------------------------------------------------+
//! ```
//!
//! What the workers share: nothing on the hot path. `uturn_turn::Shared`
//! (port pool, quotas) is touched by a worker's `Server` when an allocation
//! is created or deleted; the [`Counters`] array is written by each worker
//! at its own index only.
//!
//! - [`io`]: the backends (sockets, batching, GSO/GRO).
//! - [`table`]: the forwarding rules, as the hot path looks them up.
//! - [`fastpath`]: the per-datagram decision.
//! - `worker`: the thread that ties one backend, one table and one
//!   `Server` together, in the call order `uturn_turn` documents.
//! - [`metrics`]: per-worker counters.
//! - `offload`: keeps the XDP fast path's rules (`uturn_ebpf`) in step with
//!   each worker's control plane, when `Config::xdp` is set.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use uturn_turn::{PeerFilter, Server};

pub mod fastpath;
pub mod io;
pub mod metrics;
mod offload;
pub mod table;
mod worker;

pub use metrics::{Counters, Direction, DropReason};

/// Which I/O backend the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// epoll with recvmmsg/sendmmsg.
    Epoll,
}

/// Dataplane configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener addresses; every worker binds each one with SO_REUSEPORT.
    pub listen: Vec<SocketAddr>,
    /// Worker threads (one per core by default).
    pub threads: usize,
    /// Pin worker `i` to CPU `i % ncpu`.
    pub pin: bool,
    /// I/O backend.
    pub backend: BackendChoice,
    /// The peer filter Send indications are checked against on the fast path
    /// (RFC 8656 §11.2 by way of the operator's allow/deny lists): the same
    /// one the control plane's `ServerConfig::peer_filter` holds.
    pub peer_filter: Arc<PeerFilter>,
    /// The XDP fast path, when attached: every worker installs its channel
    /// bindings there (and removes them) as its control plane decides.
    pub xdp: Option<Arc<uturn_ebpf::XdpFastPath>>,
    /// How long a worker woken by traffic may let more datagrams gather
    /// before it handles them (io_uring: `min_wait_usec`, Linux ≥ 6.12,
    /// ignored on older kernels; epoll: a sleep after a busy poll): fewer
    /// wake-ups per packet for at most this much added latency per hop.
    /// `Duration::ZERO` wakes for every datagram.
    pub batch_wait: Duration,
    /// The WebRTC media relay (WHIP/WHEP sessions, docs/media.md), when
    /// enabled: each worker runs a `uturn_media::MediaEngine` on it and
    /// hands it the listener datagrams that are media (ICE checks for a
    /// media ufrag, DTLS, RTP/RTCP).
    pub media: Option<Arc<uturn_media::Registry>>,
}

/// Builds worker `i`'s control plane, inside that worker's thread.
pub type ServerFactory = Arc<dyn Fn(usize) -> Server + Send + Sync>;

/// A running dataplane.
#[derive(Debug)]
pub struct Dataplane {
    backend: &'static str,
    counters: Arc<[Counters]>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Result<(), Error>>>,
}

impl Dataplane {
    /// Binds every listener on every worker and starts the workers. Returns
    /// once all listeners are bound (so STUN is answered from then on).
    pub fn start(config: Config, servers: ServerFactory) -> Result<Self, Error> {
        let backend = choose_backend(config.backend)?;
        let threads = config.threads.max(1);
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let counters: Arc<[Counters]> = (0..threads).map(|_| Counters::default()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();

        let mut dataplane = Dataplane {
            backend: match backend {
                BackendChoice::Uring => "io_uring",
                _ => "epoll",
            },
            counters: counters.clone(),
            stop: stop.clone(),
            workers: Vec::with_capacity(threads),
        };
        for index in 0..threads {
            let spec = worker::Spec {
                index,
                cpu: config.pin.then_some(index % ncpu),
                listen: config.listen.clone(),
                backend,
                servers: servers.clone(),
                peer_filter: config.peer_filter.clone(),
                xdp: config.xdp.clone(),
                batch_wait: config.batch_wait,
                media: config.media.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
            };
            match worker::spawn(spec, ready_tx.clone()) {
                Ok(handle) => dataplane.workers.push(handle),
                Err(e) => {
                    // The spawn failure is the error to report.
                    let _ = dataplane.stop_and_join();
                    return Err(Error::Io(e));
                }
            }
        }
        drop(ready_tx);

        // Every worker reports once, after binding its listeners (or failing
        // to). A worker that panicked drops its sender without reporting.
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // This worker's error is the one to report.
                    let _ = dataplane.stop_and_join();
                    return Err(e);
                }
                Err(mpsc::RecvError) => {
                    let joined = dataplane.stop_and_join();
                    return Err(joined.err().unwrap_or(Error::WorkerPanicked(0)));
                }
            }
        }
        Ok(dataplane)
    }

    /// The backend actually in use.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Per-worker counters, for metrics.
    pub fn counters(&self) -> Arc<[Counters]> {
        self.counters.clone()
    }

    /// Stops the workers: each ends its allocations (closing relay sockets)
    /// and exits; joins them.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop_and_join()
    }

    /// Signals every worker and joins them; the first failure wins.
    fn stop_and_join(&mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for (index, handle) in self.workers.drain(..).enumerate() {
            let outcome = match handle.join() {
                Ok(r) => r,
                Err(_) => Err(Error::WorkerPanicked(index)),
            };
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // Workers hold sockets and a `Server`; never leave them running
        // behind a dropped handle.
        if !self.workers.is_empty() {
            let _ = self.stop_and_join();
        }
    }
}

/// Resolves [`BackendChoice::Auto`] and checks a forced io_uring, logging
/// the one line that says which backend serves traffic.
fn choose_backend(choice: BackendChoice) -> Result<BackendChoice, Error> {
    match choice {
        BackendChoice::Auto => match probe_uring() {
            Ok(()) => {
                tracing::info!(backend = "io_uring", "dataplane backend");
                Ok(BackendChoice::Uring)
            }
            Err(e) => {
                tracing::info!(backend = "epoll", reason = %e, "dataplane backend (io_uring unavailable)");
                Ok(BackendChoice::Epoll)
            }
        },
        BackendChoice::Uring => {
            probe_uring().map_err(Error::UringUnavailable)?;
            tracing::info!(backend = "io_uring", "dataplane backend (configured)");
            Ok(BackendChoice::Uring)
        }
        BackendChoice::Epoll => {
            tracing::info!(backend = "epoll", "dataplane backend (configured)");
            Ok(BackendChoice::Epoll)
        }
    }
}

/// [`io::uring_available`] on a short-lived thread. Closing an io_uring
/// makes the kernel queue clean-up work to the thread that used the ring,
/// and that notification interrupts the thread's next blocking socket call
/// that has a timeout with `EINTR`. The caller of `start` (the binary's main
/// thread, a test) should not inherit that.
fn probe_uring() -> std::io::Result<()> {
    std::thread::scope(|s| {
        s.spawn(io::uring_available)
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("io_uring probe panicked")))
    })
}

/// Dataplane errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot bind listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("io_uring unavailable: {0}")]
    UringUnavailable(std::io::Error),
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
