//! The portable backend: level-triggered epoll over every socket,
//! `recvmmsg(2)` to read and `sendmmsg(2)` to write, both in batches.
//!
//! Receiving: on readiness a socket is read with `recvmmsg` in batches of
//! [`RECV_BATCH`] until it is drained or the poll's budget
//! ([`POLL_BUDGET`] datagrams) is spent; level triggering reports whatever is
//! left on the next poll, so one flooded socket cannot starve timers.
//! Buffers are 64 KiB because sockets have UDP GRO on and a GRO
//! super-datagram can be that large; they are allocated once and the kernel
//! only touches the pages a datagram covers (2 MiB virtual per worker,
//! a few pages resident for small-packet traffic).
//!
//! Sending: [`Backend::flush`] walks the shared send queue's batches (GSO
//! coalesced, see `send.rs`) and issues one `sendmmsg` per run of
//! consecutive batches on the same socket. When the socket buffer is full
//! (`EAGAIN`) the rest of that run is dropped and counted
//! ([`IoStats::send_dropped`]): UDP is lossy anyway, the sockets have 4 MiB
//! buffers, and keeping old media queued only adds latency.
//!
//! Waking: the worker's [`Wakeup`] eventfd, once registered
//! ([`Backend::watch_wake`]), is in the same epoll set, level-triggered like
//! the sockets: a wake makes `epoll_wait` return, the eventfd is drained
//! with one `read`, and should a drain ever be skipped the next
//! `epoll_wait` simply reports it again (edge triggering would save that
//! `read` but lose that safety; wakes are rare, one per burst of mail).
//! The batch wait's sleep watches the eventfd too (`ppoll`), so a wake cuts
//! it short.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::send::{Chunk, CHUNK_DATAGRAMS};
use super::sys::{self, GsoCmsg, RawAddr, RECV_CMSG_SPACE};
use super::{
    Backend, Batch, IoStats, RecvMeta, SendQueue, Sender, SocketId, SocketTable, Submit, Wakeup,
};

/// Datagrams per `recvmmsg`.
pub const RECV_BATCH: usize = 32;
/// Most datagrams (as the kernel returns them, before GRO splitting) read
/// in one [`Backend::poll`].
pub const POLL_BUDGET: usize = 256;
/// Receive buffer per datagram: the largest GRO super-datagram.
const RECV_BUF: usize = 64 * 1024;
/// Entries per `sendmmsg`.
const SEND_BATCH: usize = 64;
/// Events per `epoll_wait`.
const EVENTS: usize = 64;
/// The epoll token of the wake-up eventfd: sockets' tokens are their
/// 32-bit [`SocketId`]s, so no socket has this one.
const WAKE_TOKEN: u64 = u64::MAX;

/// Level-triggered epoll with `recvmmsg`/`sendmmsg`.
#[derive(Debug)]
pub struct EpollBackend {
    epoll: OwnedFd,
    events: Box<[libc::epoll_event]>,
    rx: RecvBuffers,
    queue: SendQueue,
    io: Io,
    /// See [`Backend::set_batch_wait`]; zero when off.
    batch_wait: Duration,
    /// The last poll handled datagrams: traffic is flowing, so the next
    /// poll first lets a batch gather (when `batch_wait` is on).
    busy: bool,
    /// The worker's wake-up, once watched.
    wake: Option<Arc<Wakeup>>,
}

/// What the send path needs; split from the receive buffers so callbacks can
/// hold a [`Sender`] while reading a received datagram.
#[derive(Debug)]
struct Io {
    sockets: SocketTable<Entry>,
    gso: bool,
    slots: Box<[SendSlot]>,
    /// One chunk's batches, sorted by socket (reused).
    batches: Vec<Batch>,
}

#[derive(Debug)]
struct Entry {
    socket: UdpSocket,
    local: SocketAddr,
}

/// One `sendmmsg` entry's owned parts (pointers are made just before the
/// call, so the struct stays `Send`).
#[derive(Debug, Clone, Copy)]
struct SendSlot {
    offset: usize,
    len: usize,
    count: usize,
    segment_size: u16,
    addr: RawAddr,
    cmsg: GsoCmsg,
}

/// `recvmmsg` buffers: payloads, source addresses, control messages.
#[derive(Debug)]
struct RecvBuffers {
    data: Box<[u8]>,
    names: Box<[RawAddr]>,
    control: Box<[ControlBuf]>,
}

#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
struct ControlBuf([u8; RECV_CMSG_SPACE]);

impl EpollBackend {
    /// Creates the epoll instance and the buffers (about 2 MiB virtual).
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty_slot = SendSlot {
            offset: 0,
            len: 0,
            count: 0,
            segment_size: 0,
            addr: RawAddr::zeroed(),
            cmsg: GsoCmsg::new(),
        };
        Ok(Self {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS].into_boxed_slice(),
            rx: RecvBuffers {
                data: vec![0; RECV_BATCH * RECV_BUF].into_boxed_slice(),
                names: vec![RawAddr::zeroed(); RECV_BATCH].into_boxed_slice(),
                control: vec![ControlBuf([0; RECV_CMSG_SPACE]); RECV_BATCH].into_boxed_slice(),
            },
            queue: SendQueue::new(),
            batch_wait: Duration::ZERO,
            busy: false,
            wake: None,
            io: Io {
                sockets: SocketTable::new(),
                gso: true,
                slots: vec![empty_slot; SEND_BATCH].into_boxed_slice(),
                batches: Vec::with_capacity(CHUNK_DATAGRAMS),
            },
        })
    }

    fn epoll_ctl(&self, op: libc::c_int, fd: RawFd, id: SocketId) -> io::Result<()> {
        self.epoll_ctl_token(op, fd, u64::from(id.0))
    }

    /// `epoll_ctl` for readability (level-triggered) with `token` as the
    /// event's data.
    fn epoll_ctl_token(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` lives across the call; both fds are open.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Backend for EpollBackend {
    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SocketId> {
        let local = socket.local_addr()?;
        let fd = socket.as_raw_fd();
        let id = self.io.sockets.insert(Entry { socket, local })?;
        if let Err(e) = self.epoll_ctl(libc::EPOLL_CTL_ADD, fd, id) {
            self.io.sockets.remove(id);
            return Err(e);
        }
        Ok(id)
    }

    fn remove_socket(&mut self, id: SocketId) {
        if let Some(entry) = self.io.sockets.remove(id) {
            // Closing the socket also removes it from the epoll set; doing it
            // explicitly keeps that true if the fd was duplicated elsewhere.
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, entry.socket.as_raw_fd(), id);
        }
    }

    fn poll(
        &mut self,
        timeout: Duration,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) -> io::Result<()> {
        // Batch wait without kernel help (epoll has no `min_wait_usec`):
        // while traffic flows, sleep first so one wake-up (the timer's)
        // collects what arrived in `batch_wait`, instead of one wake-up per
        // datagram; the socket buffers (4 MiB) hold it meanwhile. An idle
        // worker (last poll empty) blocks in epoll_wait as usual.
        // With a wake-up watched, the sleep is a `ppoll` on its eventfd, so
        // a wake ends it (the eventfd stays readable: `epoll_wait` below
        // returns at once and drains it).
        if self.busy && !self.batch_wait.is_zero() && !timeout.is_zero() {
            let nap = self.batch_wait.min(timeout);
            match &self.wake {
                Some(wake) => {
                    if let Err(e) = wake.wait(nap) {
                        tracing::debug!(error = %e, "ppoll on the wake-up eventfd");
                        std::thread::sleep(nap);
                    }
                }
                None => std::thread::sleep(nap),
            }
        }
        // Round up so a 0.5 ms timer does not become a busy loop.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `events` is a live buffer of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        let mut budget = POLL_BUDGET;
        for i in 0..n as usize {
            let Some(event) = self.events.get(i) else {
                break;
            };
            if event.u64 == WAKE_TOKEN {
                // Consume the wake; the caller handles its mail after this
                // poll. The sockets' datagrams in this batch are still read.
                if let Some(wake) = &self.wake {
                    wake.drain();
                }
                continue;
            }
            let id = SocketId(event.u64 as u32);
            while budget > 0 {
                let Some(entry) = self.io.sockets.get(id) else {
                    break;
                };
                let meta_local = entry.local;
                let fd = entry.socket.as_raw_fd();
                let want = budget.min(RECV_BATCH);
                let got = match self.rx.recv(fd, want) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP errors surface here on some kernels
                        // (ECONNREFUSED on unconnected sockets only with
                        // IP_RECVERR); they concern one peer, not us.
                        tracing::debug!(error = %e, "recvmmsg");
                        break;
                    }
                };
                budget -= got.len().min(budget);
                for msg in got.iter() {
                    self.rx
                        .deliver(msg, id, meta_local, &mut self.queue, &mut self.io, on_recv);
                }
                if got.len() < want {
                    break; // drained: skip the syscall that would say EAGAIN
                }
            }
        }
        // A full budget means a backlog: poll again without sleeping.
        self.busy = budget > 0 && budget < POLL_BUDGET;
        Ok(())
    }

    fn sender(&mut self) -> Sender<'_> {
        Sender::new(&mut self.queue, &mut self.io)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.submit(&mut self.queue);
        Ok(())
    }

    fn stats(&self) -> IoStats {
        let mut stats = self.queue.stats;
        stats.gso_disabled = !self.io.gso;
        stats
    }

    fn set_batch_wait(&mut self, wait: Duration) -> bool {
        self.batch_wait = wait;
        true
    }

    fn watch_wake(&mut self, wakeup: Arc<Wakeup>) -> io::Result<()> {
        if self.wake.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a wake-up eventfd is already watched",
            ));
        }
        self.epoll_ctl_token(libc::EPOLL_CTL_ADD, wakeup.raw_fd(), WAKE_TOKEN)?;
        self.wake = Some(wakeup);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}

/// What one `recvmmsg` returned: per message (payload length, name length,
/// control length, flags).
struct Received {
    lens: [(u32, u32, usize, i32); RECV_BATCH],
    count: usize,
}

impl Received {
    fn len(&self) -> usize {
        self.count
    }

    fn iter(&self) -> impl Iterator<Item = (usize, (u32, u32, usize, i32))> + '_ {
        self.lens[..self.count].iter().copied().enumerate()
    }
}

impl RecvBuffers {
    /// One `recvmmsg` of up to `want` datagrams.
    fn recv(&mut self, fd: RawFd, want: usize) -> io::Result<Received> {
        let want = want.min(RECV_BATCH);
        // SAFETY: all-zero is a valid iovec/mmsghdr (null pointers, zero
        // lengths); every field the kernel reads is set below.
        let mut iovs: [libc::iovec; RECV_BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; RECV_BATCH] = unsafe { mem::zeroed() };
        let data = self.data.as_mut_ptr();
        for i in 0..want {
            iovs[i] = libc::iovec {
                // In bounds: i < RECV_BATCH and data is RECV_BATCH * RECV_BUF.
                iov_base: data.wrapping_add(i * RECV_BUF).cast(),
                iov_len: RECV_BUF,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i].storage as *mut libc::sockaddr_in6).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].0.as_mut_ptr().cast();
            h.msg_controllen = RECV_CMSG_SPACE;
        }
        // SAFETY: every pointer in `hdrs` points into `self`'s buffers or
        // the local `iovs`, all alive and exclusively borrowed for the call,
        // with the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Received {
            lens: [(0, 0, 0, 0); RECV_BATCH],
            count: n as usize,
        };
        for (slot, h) in out.lens.iter_mut().zip(hdrs.iter()).take(n as usize) {
            *slot = (
                h.msg_len,
                h.msg_hdr.msg_namelen,
                h.msg_hdr.msg_controllen,
                h.msg_hdr.msg_flags,
            );
        }
        Ok(out)
    }

    /// Hands message `i` of the last `recv` to the callback, split into its
    /// GRO segments.
    fn deliver(
        &self,
        (i, (len, name_len, control_len, flags)): (usize, (u32, u32, usize, i32)),
        socket: SocketId,
        local: SocketAddr,
        queue: &mut SendQueue,
        io: &mut Io,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) {
        if flags & libc::MSG_TRUNC != 0 {
            queue.stats.recv_truncated += 1;
            return;
        }
        let Some(name) = self.names.get(i) else {
            return;
        };
        // SAFETY: reading the bytes of a plain-integer struct we own.
        let name_bytes = unsafe {
            std::slice::from_raw_parts(
                (&name.storage as *const libc::sockaddr_in6).cast::<u8>(),
                mem::size_of::<libc::sockaddr_in6>(),
            )
        };
        let Some(source) = name_bytes
            .get(..name_len as usize)
            .and_then(sys::parse_sockaddr)
        else {
            return;
        };
        let control = self
            .control
            .get(i)
            .and_then(|c| c.0.get(..control_len))
            .unwrap_or(&[]);
        let segment = sys::parse_gro_segment(control);
        let start = i * RECV_BUF;
        let Some(payload) = self.data.get(start..start + len as usize) else {
            return;
        };
        let meta = RecvMeta {
            socket,
            source,
            local,
        };
        let mut sender = Sender::new(queue, io);
        let mut segments = 0;
        for datagram in sys::gro_segments(payload, segment) {
            segments += 1;
            on_recv(&meta, datagram, &mut sender);
        }
        queue.stats.recv_datagrams += segments;
        if segments > 1 {
            queue.stats.recv_gro_batches += 1;
        }
    }
}

impl Submit for Io {
    fn submit(&mut self, queue: &mut SendQueue) {
        while let Some(c) = queue.next_sealed() {
            let (chunk, stats) = queue.chunk_and_stats(c);
            self.send_chunk(chunk, stats);
            queue.release(c);
        }
    }
}

impl Io {
    /// Sends a chunk: one `sendmmsg` per run of batches on the same socket.
    fn send_chunk(&mut self, chunk: &Chunk, stats: &mut IoStats) {
        // Group by socket, so relay sockets whose datagrams interleave in
        // the queue still get one sendmmsg each instead of one per datagram;
        // the key (socket, position) keeps each socket's (and so each
        // destination's) order. The buffer keeps its capacity: no allocation.
        let mut batches = mem::take(&mut self.batches);
        batches.clear();
        batches.extend(chunk.batches(self.gso));
        batches.sort_unstable_by_key(|b| (b.socket.0, b.first));
        let mut run_socket = None;
        let mut run_len = 0;
        for batch in &batches {
            if run_len == SEND_BATCH || (run_len > 0 && run_socket != Some(batch.socket)) {
                self.send_run(run_socket, run_len, chunk, stats);
                run_len = 0;
            }
            run_socket = Some(batch.socket);
            let slot = &mut self.slots[run_len]; // run_len < SEND_BATCH
            slot.offset = batch.offset;
            slot.len = batch.len;
            slot.count = batch.count;
            slot.segment_size = batch.segment_size;
            slot.addr.set(batch.dest);
            if batch.count > 1 {
                slot.cmsg.set(batch.segment_size);
            }
            run_len += 1;
        }
        if run_len > 0 {
            self.send_run(run_socket, run_len, chunk, stats);
        }
        self.batches = batches;
    }

    fn send_run(
        &mut self,
        socket: Option<SocketId>,
        len: usize,
        chunk: &Chunk,
        stats: &mut IoStats,
    ) {
        let slots = &self.slots[..len];
        let Some(fd) = socket
            .and_then(|id| self.sockets.get(id))
            .map(|e| e.socket.as_raw_fd())
        else {
            // Removed socket: nothing to send from.
            stats.send_dropped += slots.iter().map(|s| s.count as u64).sum::<u64>();
            return;
        };
        let mut start = 0;
        while start < len {
            match send_mmsg(fd, &mut self.slots[start..len], chunk) {
                Ok(0) => break, // sends nothing; do not spin
                Ok(sent) => {
                    let end = (start + sent).min(len);
                    for s in &self.slots[start..end] {
                        stats.send_datagrams += s.count as u64;
                        stats.send_ops += 1;
                        stats.send_gso_batches += u64::from(s.count > 1);
                    }
                    start = end;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats.send_dropped += self.slots[start..len]
                        .iter()
                        .map(|s| s.count as u64)
                        .sum::<u64>();
                    return;
                }
                Err(e) => {
                    let slot = self.slots[start];
                    let errno = e.raw_os_error().unwrap_or(0);
                    if slot.count > 1 && sys::is_gso_error(errno) {
                        // The kernel or device cannot do GSO: remember, and
                        // send this batch's datagrams one by one.
                        if self.gso {
                            tracing::warn!(error = %e, "UDP GSO refused; sending without it");
                        }
                        self.gso = false;
                        self.send_unbatched(fd, slot, chunk, stats);
                    } else {
                        tracing::debug!(error = %e, "sendmmsg");
                        stats.send_errors += slot.count as u64;
                    }
                    start += 1;
                }
            }
        }
    }

    /// Sends a refused GSO batch as separate datagrams.
    fn send_unbatched(&self, fd: RawFd, batch: SendSlot, chunk: &Chunk, stats: &mut IoStats) {
        let bytes = chunk.bytes(batch.offset, batch.len);
        let size = usize::from(batch.segment_size).max(1);
        for (k, segment) in bytes.chunks(size).enumerate() {
            let mut single = SendSlot {
                offset: batch.offset + k * size,
                len: segment.len(),
                count: 1,
                segment_size: 0,
                ..batch
            };
            match send_mmsg(fd, std::slice::from_mut(&mut single), chunk) {
                Ok(1) => {
                    stats.send_datagrams += 1;
                    stats.send_ops += 1;
                }
                Ok(_) | Err(_) => stats.send_errors += 1,
            }
        }
    }
}

/// One `sendmmsg` over `slots`; returns how many entries the kernel took.
fn send_mmsg(fd: RawFd, slots: &mut [SendSlot], chunk: &Chunk) -> io::Result<usize> {
    let n = slots.len().min(SEND_BATCH);
    // SAFETY: all-zero is a valid iovec/mmsghdr; fields are set below.
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { mem::zeroed() };
    let base = chunk.base_ptr();
    for (i, slot) in slots.iter_mut().take(n).enumerate() {
        // The bytes are inside the chunk: batches only cover its used part.
        debug_assert!(slot.offset + slot.len <= super::send::CHUNK_BYTES);
        iovs[i] = libc::iovec {
            iov_base: base.wrapping_add(slot.offset).cast_mut().cast(),
            iov_len: slot.len,
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = slot.addr.as_ptr().cast_mut().cast();
        h.msg_namelen = slot.addr.len;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if slot.count > 1 {
            h.msg_control = slot.cmsg.0.as_mut_ptr().cast();
            h.msg_controllen = slot.cmsg.0.len();
        }
    }
    // SAFETY: the headers point at `slots` (addresses, control), `iovs`
    // and the chunk's bytes, all alive and unchanged for the duration of
    // the call; sendmmsg only reads them.
    let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}
