//! uturn's dataplane: one pinned worker thread per core, each with its own
//! SO_REUSEPORT listener sockets, its own I/O backend (io_uring, or epoll with
//! recvmmsg/sendmmsg), its own forwarding table and its own control-plane
//! [`Server`]. TODO(helper H3): implement; keep the public API below.
//!
//! A packet's path: the kernel hashes the client's 4-tuple to one worker's
//! listener (SO_REUSEPORT); that worker's allocation and relay socket serve it
//! from then on, so the hot path takes no lock and touches no other core's
//! memory.

use std::net::SocketAddr;
use std::sync::Arc;

use uturn_turn::Server;

pub mod metrics;

pub use metrics::{Counters, DropReason};

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
}

/// Builds worker `i`'s control plane, inside that worker's thread.
pub type ServerFactory = Arc<dyn Fn(usize) -> Server + Send + Sync>;

/// A running dataplane.
#[derive(Debug)]
pub struct Dataplane {}

impl Dataplane {
    /// Binds every listener on every worker and starts the workers. Returns
    /// once all listeners are bound (so STUN is answered from then on).
    pub fn start(config: Config, servers: ServerFactory) -> Result<Self, Error> {
        let _ = (config, servers);
        todo!()
    }

    /// The backend actually in use.
    pub fn backend(&self) -> &'static str {
        todo!()
    }

    /// Per-worker counters, for metrics.
    pub fn counters(&self) -> Arc<[Counters]> {
        todo!()
    }

    /// Stops the workers: each ends its allocations (closing relay sockets)
    /// and exits; joins them.
    pub fn shutdown(self) -> Result<(), Error> {
        todo!()
    }
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
