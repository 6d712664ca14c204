//! The dataplane's I/O backends: how one worker moves UDP datagrams between
//! its sockets and the kernel, as fast as the kernel allows.
//!
//! Two backends implement [`Backend`]:
//!
//! - [`uring::UringBackend`] (Linux ≥ 6.0): one io_uring per worker; per
//!   socket one multishot `IORING_OP_RECVMSG` fed from a provided buffer
//!   ring, and batched `IORING_OP_SENDMSG`s, one `io_uring_enter` per
//!   [`Backend::flush`].
//! - [`epoll::EpollBackend`]: level-triggered epoll, `recvmmsg` and
//!   `sendmmsg`. Portable fallback when io_uring is disabled
//!   (`kernel.io_uring_disabled`, seccomp, old kernels).
//!
//! Both receive UDP GRO super-datagrams (the `UDP_GRO` socket option) and
//! split them into the original datagrams before the caller sees them, and
//! both coalesce queued sends into UDP GSO batches (`UDP_SEGMENT`) with the
//! same code (`send.rs`).
//!
//! Call order for a worker: [`Backend::poll`] (callbacks may queue replies on
//! the [`Sender`] they get), then queue any other output on
//! [`Backend::sender`], then [`Backend::flush`]; repeat. Nothing is sent
//! before `flush` unless the send queue fills up.
//!
//! A worker blocked in [`Backend::poll`] can be woken from another thread
//! through its [`Wakeup`] (an `eventfd(2)`), which the backend watches
//! next to its sockets once [`Backend::watch_wake`] registered it: the
//! media relay's mailboxes use it so that a command posted to an idle
//! worker (a WHEP viewer to attach, a DELETE, a datagram another worker
//! received) is handled at once instead of at the worker's next timer.
//! A wake ends the wait (a batch wait too); the datagrams already there
//! are delivered, and the eventfd is drained, so a wake is not sticky.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::Wake;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::{BackendChoice, Error};

mod bufring;
pub mod epoll;
mod send;
mod sys;
pub mod uring;

#[cfg(test)]
mod tests;

pub use send::Sender;
pub(crate) use send::{Batch, SendQueue, Submit};

/// Index of a socket inside one backend.
///
/// The low 20 bits index the backend's socket table, the high 12 bits are a
/// generation, so a stale id (kept by a caller after
/// [`Backend::remove_socket`]) never reaches a socket that reused the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(pub u32);

/// Where a received datagram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    pub socket: SocketId,
    pub source: SocketAddr,
    /// Local address of the socket (listener address or relay address).
    pub local: SocketAddr,
}

/// Counters kept by a backend (monotonic since it was opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams handed to `on_recv` (after GRO splitting).
    pub recv_datagrams: u64,
    /// GRO super-datagrams that were split.
    pub recv_gro_batches: u64,
    /// Datagrams dropped because they did not fit a receive buffer.
    pub recv_truncated: u64,
    /// io_uring: multishot receives that ended because the buffer ring ran
    /// dry (`ENOBUFS`); the data stays in the socket buffer and the receive
    /// is re-armed, so this costs latency, not packets.
    pub recv_enobufs: u64,
    /// io_uring: multishot receives re-armed for any reason.
    pub recv_rearms: u64,
    /// Datagrams the kernel accepted for sending.
    pub send_datagrams: u64,
    /// Send operations (sendmsg SQEs or sendmmsg entries); fewer than
    /// `send_datagrams` thanks to GSO.
    pub send_ops: u64,
    /// Send operations that carried more than one datagram (GSO).
    pub send_gso_batches: u64,
    /// Datagrams never handed to the kernel: queue full, datagram larger
    /// than 64 KiB, socket removed, or (epoll) socket buffer full.
    pub send_dropped: u64,
    /// Datagrams the kernel refused (e.g. `EMSGSIZE`, `ENETUNREACH`).
    pub send_errors: u64,
    /// GSO was turned off after the kernel refused a GSO send.
    pub gso_disabled: bool,
}

/// One worker's I/O: sockets in, datagrams out.
///
/// A backend is driven by one thread. It is `Send` so it can be created
/// before the worker thread starts, but io_uring binds to the thread that
/// first polls or flushes it (see [`uring::UringBackend`]).
///
/// Compared with the first contract in docs/architecture.md this trait
/// adds [`Backend::sender`] (queue output outside `poll`: control-plane
/// responses, timer output) and [`Backend::stats`].
pub trait Backend: Send {
    /// Registers a bound, non-blocking UDP socket; the backend starts
    /// receiving on it.
    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SocketId>;

    /// Stops receiving on a socket and closes it. Datagrams still queued
    /// for it are dropped (counted in [`IoStats::send_dropped`]).
    /// On io_uring the file descriptor is closed only once the kernel has
    /// finished with it (after the cancelled receive and in-flight sends
    /// complete), so no completion can refer to a reused descriptor.
    /// Unknown or stale ids are ignored.
    fn remove_socket(&mut self, id: SocketId);

    /// Waits at most `timeout` for datagrams, then hands each one (GRO
    /// super-datagrams already split into segments) to `on_recv`, with a
    /// [`Sender`] for replies. Bounded: handles at most one batch per call
    /// (a few hundred datagrams) so timers and control work run.
    /// Replies are queued, not sent: call [`Backend::flush`] after `poll`.
    fn poll(
        &mut self,
        timeout: Duration,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) -> io::Result<()>;

    /// A [`Sender`] outside `poll`, for control-plane responses and timer
    /// output. Same queue as the one `poll` hands out.
    fn sender(&mut self) -> Sender<'_>;

    /// Submits what was queued with [`Sender::send`] (batched; GSO where
    /// consecutive datagrams share socket, destination and size).
    fn flush(&mut self) -> io::Result<()>;

    /// Counters since the backend was opened.
    fn stats(&self) -> IoStats;

    /// `"io_uring"` or `"epoll"`.
    fn name(&self) -> &'static str;

    /// Watches `wakeup` while waiting: once it is signalled (from any
    /// thread), the current or next [`Backend::poll`] returns as soon as it
    /// has delivered the datagrams already there, even before its timeout
    /// or batch wait ends, and drains the eventfd (the wake is consumed:
    /// a later poll waits again). The backend keeps `wakeup` (and so its
    /// descriptor) alive as long as it watches it. One per backend: a second
    /// call fails with `AlreadyExists`. Without one, `poll` waits for
    /// datagrams and its timeout only.
    fn watch_wake(&mut self, wakeup: Arc<Wakeup>) -> io::Result<()>;

    /// Lets a `poll` that found nothing waiting wait up to `wait` for more
    /// than one datagram before it returns (one wake-up per batch instead
    /// of one per datagram under load, at most `wait` of added latency).
    /// `Duration::ZERO` turns it off. Returns whether this backend (and
    /// kernel) can do it; the default cannot.
    fn set_batch_wait(&mut self, wait: Duration) -> bool {
        let _ = wait;
        false
    }
}

/// A worker's wake-up: an `eventfd(2)` (`EFD_CLOEXEC | EFD_NONBLOCK`)
/// that the worker's backend watches while it waits
/// ([`Backend::watch_wake`]) and that any thread can signal.
///
/// It implements [`std::task::Wake`], so crates that must not depend on the
/// dataplane (the media relay's mailboxes) hold it as a plain
/// [`std::task::Waker`]. Signalling costs one `write(2)`; signals that come
/// before the worker drains the eventfd add up to one wake-up.
#[derive(Debug)]
pub struct Wakeup {
    fd: OwnedFd,
}

impl Wakeup {
    /// A new eventfd, not signalled.
    pub fn new() -> io::Result<Arc<Wakeup>> {
        Ok(Arc::new(Wakeup {
            fd: sys::eventfd()?,
        }))
    }

    /// Makes the eventfd readable: a backend waiting on it returns.
    pub fn signal(&self) {
        if let Err(e) = sys::eventfd_signal(&self.fd) {
            // Cannot happen for a valid eventfd and an 8-byte write; the
            // worker then notices at its next timer.
            tracing::warn!(error = %e, "cannot signal a worker's eventfd");
        }
    }

    /// Consumes the pending signals (one 8-byte `read(2)`); false when
    /// there were none.
    pub(crate) fn drain(&self) -> bool {
        match sys::eventfd_drain(&self.fd) {
            Ok(count) => count > 0,
            Err(e) => {
                tracing::debug!(error = %e, "cannot drain a worker's eventfd");
                false
            }
        }
    }

    /// Waits at most `timeout` for a signal, without consuming it (epoll's
    /// batch wait sleeps in this instead of a plain sleep).
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<bool> {
        sys::wait_readable(&self.fd, timeout)
    }

    /// The eventfd, for the backend to watch.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.signal();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signal();
    }
}

/// Opens the backend `choice` asks for: `Auto` is io_uring when
/// [`uring_available`] says so, else epoll.
pub fn open(choice: BackendChoice) -> Result<Box<dyn Backend>, Error> {
    match choice {
        BackendChoice::Epoll => Ok(Box::new(epoll::EpollBackend::new()?)),
        BackendChoice::Uring => {
            let backend = uring::UringBackend::new(uring::UringConfig::default())
                .map_err(Error::UringUnavailable)?;
            Ok(Box::new(backend))
        }
        BackendChoice::Auto => match uring::UringBackend::new(uring::UringConfig::default()) {
            Ok(backend) => Ok(Box::new(backend)),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable, using epoll");
                Ok(Box::new(epoll::EpollBackend::new()?))
            }
        },
    }
}

/// Checks that io_uring can be used here: a ring can be created (not
/// forbidden by `kernel.io_uring_disabled` or seccomp: `EPERM`/`ENOSYS`) and
/// the kernel has what [`uring::UringBackend`] needs (multishot recvmsg and
/// provided buffer rings: Linux ≥ 6.0).
pub fn uring_available() -> Result<(), io::Error> {
    uring::probe()
}

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max`
/// / `wmem_max` unless we may use the `*BUFFORCE` options).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Binds a listener: `SO_REUSEPORT` (every worker binds the same address and
/// the kernel spreads clients by 4-tuple), non-blocking, large buffers,
/// UDP GRO on.
pub fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    finish_socket(socket)
}

/// Binds a relay socket (no `SO_REUSEPORT`: a relay address belongs to one
/// allocation). With `dont_fragment`, sets the DF bit (`IP_PMTUDISC_DO` /
/// `IPV6_DONTFRAG`), as RFC 8656 §14 asks for a DONT-FRAGMENT attribute.
pub fn bind_relay(addr: SocketAddr, dont_fragment: bool) -> io::Result<UdpSocket> {
    let socket = new_socket(addr)?;
    socket.bind(&addr.into())?;
    if dont_fragment {
        sys::set_dont_fragment(&socket, addr.is_ipv6())?;
    }
    finish_socket(socket)
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // An IPv6 wildcard listener must not also take IPv4 (a separate
        // IPv4 listener may exist).
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn finish_socket(socket: Socket) -> io::Result<UdpSocket> {
    sys::set_buffer_sizes(&socket, SOCKET_BUFFER_BYTES);
    // GRO is an optimisation: kernels without it (< 5.0) still work.
    if let Err(e) = sys::set_gro(&socket, true) {
        tracing::debug!(error = %e, "UDP_GRO unavailable");
    }
    Ok(socket.into())
}

/// Socket table shared by both backends: slot index + generation in a
/// [`SocketId`].
#[derive(Debug)]
pub(crate) struct SocketTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GENERATION_MASK: u32 = (1 << (32 - INDEX_BITS)) - 1;

impl<T> SocketTable<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> io::Result<SocketId> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                if index > INDEX_MASK {
                    return Err(io::Error::other("too many sockets in one backend"));
                }
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize]; // index < len: popped from free or just pushed
        slot.value = Some(value);
        Ok(SocketId((slot.generation << INDEX_BITS) | index))
    }

    fn slot(&self, id: SocketId) -> Option<&Slot<T>> {
        let slot = self.slots.get((id.0 & INDEX_MASK) as usize)?;
        (slot.generation == id.0 >> INDEX_BITS).then_some(slot)
    }

    pub(crate) fn get(&self, id: SocketId) -> Option<&T> {
        self.slot(id)?.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: SocketId) -> Option<&mut T> {
        let slot = self.slots.get_mut((id.0 & INDEX_MASK) as usize)?;
        if slot.generation != id.0 >> INDEX_BITS {
            return None;
        }
        slot.value.as_mut()
    }

    /// Frees the slot; its next user gets a new generation.
    pub(crate) fn remove(&mut self, id: SocketId) -> Option<T> {
        let index = id.0 & INDEX_MASK;
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != id.0 >> INDEX_BITS {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = (slot.generation + 1) & GENERATION_MASK;
        self.free.push(index);
        Some(value)
    }
}
