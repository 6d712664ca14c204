//! The io_uring backend (Linux ≥ 6.0): the relay's fast path.
//!
//! One ring per worker, no SQPOLL (a polling kernel thread would take a
//! core of the two we plan for). The ring is single-issuer with deferred
//! task running (`IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`,
//! Linux ≥ 6.1; cooperative task running before that): the kernel never
//! interrupts the worker to post completions, it produces them in one batch
//! when the worker enters the kernel. `flush` submits and collects
//! completions in one `io_uring_enter`, so under load `poll` finds them
//! waiting and needs no syscall: one `io_uring_enter` per cycle; an idle
//! worker sleeps in `poll`'s enter (submit + wait with a timeout).
//!
//! **Receiving.** Each socket has one multishot `IORING_OP_RECVMSG`
//! (`io_uring_prep_recvmsg_multishot`): it stays armed and posts one
//! completion per datagram, each in a buffer the kernel takes from a
//! provided buffer ring (`IORING_REGISTER_PBUF_RING`) shared by all sockets.
//! A buffer holds an `io_uring_recvmsg_out` header, the source address, the
//! control messages (the `UDP_GRO` segment size) and the payload. After the
//! callback the buffer goes straight back to the ring. When the ring runs
//! dry the receive ends with `ENOBUFS` (counted as
//! [`IoStats::recv_enobufs`]); the datagrams stay in the socket buffer and
//! the receive is re-armed at the end of the poll, so nothing is lost unless
//! the socket buffer itself overflows.
//!
//! Buffer size: sockets have UDP GRO on, and a GRO super-datagram can carry
//! up to 64 KiB, so a buffer must take 64 KiB of payload or the datagrams
//! would be truncated. Buffers are therefore [`DEFAULT_BUFFER_SIZE`] (68 KiB)
//! and there are [`DEFAULT_BUFFERS`] of them: 34 MiB of address space per
//! worker, but anonymous memory is only backed where the kernel wrote, so
//! small-packet traffic keeps about one page per buffer resident (2 MiB).
//! Deployments without GRO traffic can pick 2 KiB buffers
//! ([`UringConfig::buffer_size`]); a datagram that does not fit is dropped
//! and counted ([`IoStats::recv_truncated`]).
//!
//! **Sending.** [`Backend::flush`] turns the shared send queue's batches
//! (GSO-coalesced, see `send.rs`) into `IORING_OP_SENDMSG` entries and
//! submits them with one `io_uring_enter`. The `msghdr`, iovec, address and
//! `UDP_SEGMENT` control message of each send live in a preallocated slot
//! owned by the queue chunk holding its bytes, and the chunk is reused only
//! when every send from it has completed. A GSO send the kernel refuses
//! (`EIO`/`EINVAL`: no checksum offload, segment above the MTU) is resent
//! datagram by datagram from the same slots, and GSO stays off from then on.
//!
//! **Waking.** The worker's [`Wakeup`] eventfd, once registered
//! ([`Backend::watch_wake`]), is watched by a one-shot `IORING_OP_POLL_ADD`
//! (`POLLIN`) linked to an `IORING_OP_TIMEOUT` of zero. Its completion ends
//! a plain wait (one completion is all it waits for); the zero timeout is
//! what ends a batch wait, which waits for `BATCH_WAIT_COMPLETIONS`
//! completions and would otherwise sit out its `min_wait_usec`: the
//! kernel returns from any wait once a timeout has fired since the wait
//! began, however few completions it has (the kernel's `io_should_wake`
//! compares the ring's count of fired timeouts with the one at the start of
//! the wait). `poll` then delivers the receives already completed, drains
//! the eventfd with one `read` and re-arms the pair. One-shot rather than multishot: a multishot poll
//! cannot carry a link, and the re-arm costs two SQEs once per wake (one
//! wake per burst of mail), submitted with the next `io_uring_enter`
//! anyway. A signal that comes while the pair is not armed leaves the
//! eventfd readable, so the re-armed poll completes at once. The pair has
//! its own `user_data` tag and no buffer, so it never touches the
//! multishot receives, the provided buffer ring or the send slots.
//!
//! **Closing.** [`Backend::remove_socket`] cancels the socket's receive
//! (`IORING_OP_ASYNC_CANCEL`) and closes the descriptor only once that
//! receive and the socket's sends have completed, so no completion can name
//! a descriptor number the process has reused.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, EnterFlags, IoUring, Probe};

use super::bufring::BufRing;
use super::send::{Chunk, CHUNKS, CHUNK_DATAGRAMS};
use super::sys::{self, GsoCmsg, RawAddr, RECV_CMSG_SPACE};
use super::{
    Backend, Batch, IoStats, RecvMeta, SendQueue, Sender, SocketId, SocketTable, Submit, Wakeup,
};

/// Provided buffers in the ring (a power of two).
pub const DEFAULT_BUFFERS: u16 = 512;
/// Bytes per provided buffer: 64 KiB of payload plus the
/// `io_uring_recvmsg_out` header, address and control space, page-rounded.
pub const DEFAULT_BUFFER_SIZE: u32 = 68 * 1024;
/// Most receive completions handled by one [`Backend::poll`].
pub const POLL_BUDGET: usize = 256;

/// Submission queue entries; the completion queue gets four times as many
/// (multishot receives post many completions per submission).
const SQ_ENTRIES: u32 = 1024;
/// Buffer group id of our provided buffer ring.
const BUFFER_GROUP: u16 = 0;
/// Oldest kernel with multishot recvmsg (6.0); provided buffer rings came
/// in 5.19.
const MIN_KERNEL: (u32, u32) = (6, 0);

/// `user_data` layout: the top two bits say what completed, the low 32 bits
/// say which socket (receive) or send slot (send). Tag 0 is the wake-up
/// pair: [`WAKE_POLL`] and [`WAKE_TIMEOUT`].
const TAG_SHIFT: u32 = 62;
const TAG_WAKE: u64 = 0;
const TAG_RECV: u64 = 1 << TAG_SHIFT;
const TAG_SEND: u64 = 2 << TAG_SHIFT;
const TAG_CANCEL: u64 = 3 << TAG_SHIFT;
const TAG_MASK: u64 = 3 << TAG_SHIFT;
/// `user_data` of the poll on the wake-up eventfd.
const WAKE_POLL: u64 = TAG_WAKE | 1;
/// `user_data` of the zero timeout linked after it.
const WAKE_TIMEOUT: u64 = TAG_WAKE | 2;

/// Completions a batch wait asks for before its `min_wait_usec` ends it
/// early (see [`Io::wait`]): well under [`POLL_BUDGET`], so a batch this
/// size is handled in one poll.
const BATCH_WAIT_COMPLETIONS: libc::c_uint = 64;
/// `io_uring_enter(2)` flags (include/uapi/linux/io_uring.h).
const IORING_ENTER_GETEVENTS: libc::c_uint = 1 << 0;
const IORING_ENTER_EXT_ARG: libc::c_uint = 1 << 3;

/// `struct io_uring_getevents_arg` (include/uapi/linux/io_uring.h; the
/// `pad` field became `min_wait_usec` in Linux 6.12).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// Sizes of one ring and its buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringConfig {
    /// Provided receive buffers; a power of two, at most 32768.
    pub buffers: u16,
    /// Bytes per receive buffer, headers included (at least 1 KiB).
    pub buffer_size: u32,
}

impl Default for UringConfig {
    fn default() -> Self {
        Self {
            buffers: DEFAULT_BUFFERS,
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

/// Checks that this kernel lets us create a ring and has what the backend
/// needs; see [`super::uring_available`].
pub(crate) fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    check_support(&ring)?;
    let mut bufs = BufRing::new(1, 4096)?;
    bufs.register(&ring, BUFFER_GROUP)?;
    bufs.unregister(&ring);
    Ok(())
}

fn check_support(ring: &IoUring) -> io::Result<()> {
    let (major, minor) = kernel_version().unwrap_or((0, 0));
    if (major, minor) < MIN_KERNEL {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("kernel {major}.{minor} lacks multishot recvmsg (needs 6.0)"),
        ));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::RecvMsg::CODE, "RECVMSG"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::Timeout::CODE, "TIMEOUT"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks IORING_OP_{name}"),
            ));
        }
    }
    Ok(())
}

/// The running kernel's (major, minor) version, from `uname(2)`.
fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain bytes; uname fills it or fails.
    let mut uts: libc::utsname = unsafe { mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let release = std::str::from_utf8(&release).ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// io_uring backend; see the module docs.
///
/// It may be created on one thread and moved, but once it has submitted
/// (the first `poll` or `flush`) it must stay on that thread: the ring is
/// single-issuer with deferred task running (Linux ≥ 6.1), and other
/// threads get `EEXIST`. Dropping it elsewhere leaks its buffers instead of
/// freeing memory the kernel may still use.
#[derive(Debug)]
pub struct UringBackend {
    rx: BufRing,
    /// The `msghdr` every multishot receive was armed with; the kernel reads
    /// its name and control lengths, and [`RecvMsgOut::parse`] needs the
    /// same values. Boxed so its address is stable while receives use it.
    recv_hdr: Box<RecvHdr>,
    queue: SendQueue,
    io: Io,
}

/// A `msghdr` template (its pointers are null, only lengths are set).
struct RecvHdr(libc::msghdr);

impl std::fmt::Debug for RecvHdr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHdr").finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers inside (msghdr templates, send slots, the
// buffer ring mapping) point only at memory this struct owns on the heap,
// which does not move when the struct moves to another thread; the ring
// itself is not tied to a thread (no SINGLE_ISSUER, no registered ring fd).
unsafe impl Send for UringBackend {}

/// The ring and everything the send path touches; split from the receive
/// buffers so a callback can hold a [`Sender`] while it reads a datagram.
struct Io {
    ring: IoUring,
    /// The ring was enabled (by the thread that drives it); see `new`.
    enabled: bool,
    sockets: SocketTable<UringSocket>,
    /// One send slot per queued datagram: `chunk * CHUNK_DATAGRAMS + index`.
    slots: Box<[SendSlot]>,
    gso: bool,
    /// Single datagrams go out as `IORING_OP_SEND` with a destination
    /// address (Linux 6.1) instead of `IORING_OP_SENDMSG`: the kernel then
    /// copies no `msghdr` and `iovec` from us, which was 3 % of a worker's
    /// time in the media fan-out (`io_sendmsg_setup`). Turned off for good
    /// if the kernel refuses one with `EINVAL`.
    sendto: bool,
    /// Test knob: give plain sends a 1-octet address length, which the
    /// kernel refuses with `EINVAL`, to exercise the fallback.
    #[cfg(test)]
    break_sendto: bool,
    /// Receive and cancel completions reaped but not yet handled.
    pending: VecDeque<Completion>,
    /// Sockets whose multishot receive ended and must be re-armed.
    rearm: VecDeque<SocketId>,
    /// Submitted operations whose final completion has not been reaped.
    outstanding: usize,
    /// Batch wait in µs (0: off): see [`Io::wait`]. Set only when the
    /// kernel has `IORING_FEAT_MIN_TIMEOUT`.
    batch_wait_us: u32,
    /// The kernel supports `min_wait_usec` (Linux ≥ 6.12).
    min_timeout: bool,
    /// The worker's wake-up, once watched (see the module docs).
    wake: Option<Arc<Wakeup>>,
    /// The wake-up's poll is submitted (or queued for submission).
    wake_armed: bool,
    /// The zero timeout linked after the wake-up's poll. Boxed: the kernel
    /// reads it when the link is submitted.
    wake_timeout: Box<Timespec>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("gso", &self.gso)
            .field("pending", &self.pending.len())
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct UringSocket {
    socket: UdpSocket,
    local: SocketAddr,
    /// A multishot receive is submitted (or queued for submission).
    armed: bool,
    /// `remove_socket` was called: close once `!armed && sends == 0`.
    closing: bool,
    /// Sends submitted and not completed.
    sends: u32,
}

#[derive(Debug, Clone, Copy)]
struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

/// What one `IORING_OP_SENDMSG` points at. Lives in [`Io::slots`] (heap,
/// never resized) from submission until its completion is reaped.
#[derive(Clone, Copy)]
#[repr(C)]
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: RawAddr,
    cmsg: GsoCmsg,
    socket: SocketId,
    dest: Option<SocketAddr>,
    offset: u32,
    len: u32,
    count: u16,
    segment_size: u16,
    /// Sent as `IORING_OP_SEND` with an address (not `SENDMSG`).
    sendto: bool,
}

impl std::fmt::Debug for SendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSlot")
            .field("socket", &self.socket)
            .field("len", &self.len)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl SendSlot {
    fn empty() -> Self {
        Self {
            // SAFETY: all-zero is a valid msghdr/iovec (null pointers, zero
            // lengths).
            hdr: unsafe { mem::zeroed() },
            iov: unsafe { mem::zeroed() },
            addr: RawAddr::zeroed(),
            cmsg: GsoCmsg::new(),
            socket: SocketId(0),
            dest: None,
            offset: 0,
            len: 0,
            count: 0,
            segment_size: 0,
            sendto: false,
        }
    }

    /// Points the slot's `msghdr` at its own address, iovec and control
    /// message, and the iovec at the batch's bytes in `chunk`.
    fn fill(&mut self, chunk: &Chunk, batch: &Batch) {
        self.socket = batch.socket;
        self.dest = Some(batch.dest);
        self.offset = batch.offset as u32;
        self.len = batch.len as u32;
        self.count = batch.count as u16;
        self.segment_size = batch.segment_size;
        self.addr.set(batch.dest);
        self.iov = libc::iovec {
            // In bounds: batches cover only the chunk's used bytes.
            iov_base: chunk
                .base_ptr()
                .wrapping_add(batch.offset)
                .cast_mut()
                .cast(),
            iov_len: batch.len,
        };
        self.hdr.msg_name = self.addr.as_ptr().cast_mut().cast();
        self.hdr.msg_namelen = self.addr.len;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        if batch.count > 1 {
            self.cmsg.set(batch.segment_size);
            self.hdr.msg_control = self.cmsg.0.as_mut_ptr().cast();
            self.hdr.msg_controllen = self.cmsg.0.len();
        } else {
            self.hdr.msg_control = std::ptr::null_mut();
            self.hdr.msg_controllen = 0;
        }
    }
}

impl UringBackend {
    /// Creates the ring and registers the buffer ring. Fails (so `Auto`
    /// falls back to epoll) when io_uring is disabled or too old.
    pub fn new(config: UringConfig) -> io::Result<Self> {
        if !config.buffers.is_power_of_two() || config.buffers > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "io_uring buffers must be a power of two ≤ 32768",
            ));
        }
        if config.buffer_size < 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "io_uring buffer size below 1 KiB",
            ));
        }
        // Deferred task running: completions are produced only when we
        // enter the kernel to wait for them, in one batch, instead of
        // interrupting the worker (Linux 6.1). It binds the ring to one
        // thread, so the ring starts disabled and is enabled by the thread
        // that first submits (the worker), wherever it was created.
        let (ring, enabled) = match IoUring::builder()
            .setup_cqsize(SQ_ENTRIES * 4)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .build(SQ_ENTRIES)
        {
            Ok(ring) => (ring, false),
            Err(_) => (
                IoUring::builder()
                    .setup_cqsize(SQ_ENTRIES * 4)
                    .setup_coop_taskrun()
                    .setup_taskrun_flag()
                    .build(SQ_ENTRIES)?,
                true,
            ),
        };
        check_support(&ring)?;
        let min_timeout = ring.params().is_feature_min_timeout();
        let mut rx = BufRing::new(config.buffers, config.buffer_size)?;
        rx.register(&ring, BUFFER_GROUP)?;

        // SAFETY: all-zero is a valid msghdr.
        let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
        hdr.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        hdr.msg_controllen = RECV_CMSG_SPACE;

        Ok(Self {
            rx,
            recv_hdr: Box::new(RecvHdr(hdr)),
            queue: SendQueue::new(),
            io: Io {
                ring,
                enabled,
                sockets: SocketTable::new(),
                slots: vec![SendSlot::empty(); CHUNKS * CHUNK_DATAGRAMS].into_boxed_slice(),
                gso: true,
                sendto: kernel_version().is_some_and(|v| v >= (6, 1)),
                #[cfg(test)]
                break_sendto: false,
                pending: VecDeque::with_capacity((SQ_ENTRIES * 4) as usize),
                rearm: VecDeque::new(),
                outstanding: 0,
                batch_wait_us: 0,
                min_timeout,
                wake: None,
                wake_armed: false,
                wake_timeout: Box::new(Timespec::new()),
            },
        })
    }

    /// Handles one reaped receive or cancel completion.
    fn handle(
        &mut self,
        c: Completion,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) {
        if c.user_data == WAKE_POLL {
            self.io.woken(c.result);
            return;
        }
        if c.user_data & TAG_MASK != TAG_RECV {
            // Cancel completions: 0, ENOENT (already ended) or EALREADY.
            return;
        }
        let id = SocketId(c.user_data as u32);
        if let Some(bid) = cqueue::buffer_select(c.flags) {
            if c.result >= 0 {
                self.deliver(id, bid, c.result as usize, on_recv);
            }
            self.rx.provide(bid);
        }
        if c.result < 0 {
            let errno = -c.result;
            match errno {
                libc::ENOBUFS => self.queue.stats.recv_enobufs += 1,
                libc::ECANCELED => {}
                _ => tracing::debug!(errno, "multishot recvmsg ended"),
            }
        }
        if !cqueue::more(c.flags) {
            self.io.outstanding = self.io.outstanding.saturating_sub(1);
            let Some(socket) = self.io.sockets.get_mut(id) else {
                return;
            };
            socket.armed = false;
            if socket.closing {
                self.io.try_close(id);
            } else if matches!(
                -c.result,
                libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EOPNOTSUPP
            ) {
                tracing::warn!(
                    errno = -c.result,
                    "receive cannot be armed; socket left idle"
                );
            } else {
                self.io.rearm.push_back(id);
            }
        }
    }

    /// Parses a filled buffer and hands its datagrams to `on_recv`.
    fn deliver(
        &mut self,
        id: SocketId,
        bid: u16,
        len: usize,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) {
        let Some(socket) = self.io.sockets.get(id) else {
            return;
        };
        if socket.closing {
            return;
        }
        let local = socket.local;
        let Some(buf) = self.rx.buffer(bid, len) else {
            return;
        };
        let Ok(out) = RecvMsgOut::parse(buf, &self.recv_hdr.0) else {
            return;
        };
        if out.is_payload_truncated() {
            self.queue.stats.recv_truncated += 1;
            return;
        }
        let Some(source) = sys::parse_sockaddr(out.name_data()) else {
            return;
        };
        let segment = sys::parse_gro_segment(out.control_data());
        let meta = RecvMeta {
            socket: id,
            source,
            local,
        };
        let mut segments = 0;
        {
            let mut sender = Sender::new(&mut self.queue, &mut self.io);
            for datagram in sys::gro_segments(out.payload_data(), segment) {
                segments += 1;
                on_recv(&meta, datagram, &mut sender);
            }
        }
        self.queue.stats.recv_datagrams += segments;
        if segments > 1 {
            self.queue.stats.recv_gro_batches += 1;
        }
    }
}

impl Backend for UringBackend {
    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SocketId> {
        let local = socket.local_addr()?;
        let id = self.io.sockets.insert(UringSocket {
            socket,
            local,
            armed: false,
            closing: false,
            sends: 0,
        })?;
        self.io.arm(id, &self.recv_hdr);
        Ok(id)
    }

    fn remove_socket(&mut self, id: SocketId) {
        let Some(socket) = self.io.sockets.get_mut(id) else {
            return;
        };
        if socket.closing {
            return;
        }
        socket.closing = true;
        if socket.armed {
            let cancel = opcode::AsyncCancel::new(TAG_RECV | u64::from(id.0))
                .build()
                .user_data(TAG_CANCEL);
            // SAFETY: a cancel entry points at no memory.
            if unsafe { self.io.push(std::slice::from_ref(&cancel)) } {
                self.io.outstanding += 1;
            }
        }
        self.io.try_close(id);
    }

    fn poll(
        &mut self,
        timeout: Duration,
        on_recv: &mut dyn FnMut(&RecvMeta, &[u8], &mut Sender<'_>),
    ) -> io::Result<()> {
        if self.io.pending.is_empty() {
            self.io.reap(&mut self.queue);
        }
        if self.io.pending.is_empty() {
            self.io.wait(timeout)?;
            self.io.reap(&mut self.queue);
        }
        for _ in 0..POLL_BUDGET {
            let Some(c) = self.io.pending.pop_front() else {
                break;
            };
            self.handle(c, on_recv);
        }
        // Re-arm after the buffers went back, so an ENOBUFS'd receive finds
        // buffers; submitted by the next flush or poll.
        // Bounded by the current length: an `arm` that fails (full queue)
        // puts the socket back for the next poll.
        for _ in 0..self.io.rearm.len() {
            let Some(id) = self.io.rearm.pop_front() else {
                break;
            };
            if self
                .io
                .sockets
                .get(id)
                .is_some_and(|s| !s.closing && !s.armed)
            {
                self.queue.stats.recv_rearms += 1;
                self.io.arm(id, &self.recv_hdr);
            }
        }
        self.io.arm_wake();
        Ok(())
    }

    fn sender(&mut self) -> Sender<'_> {
        Sender::new(&mut self.queue, &mut self.io)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.push_sends(&mut self.queue);
        self.io.submit_now()
    }

    fn stats(&self) -> IoStats {
        let mut stats = self.queue.stats;
        stats.gso_disabled = !self.io.gso;
        stats
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn set_batch_wait(&mut self, wait: Duration) -> bool {
        if !self.io.min_timeout {
            self.io.batch_wait_us = 0;
            return wait.is_zero();
        }
        self.io.batch_wait_us = u32::try_from(wait.as_micros()).unwrap_or(u32::MAX);
        true
    }

    fn watch_wake(&mut self, wakeup: Arc<Wakeup>) -> io::Result<()> {
        if self.io.wake.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a wake-up eventfd is already watched",
            ));
        }
        self.io.wake = Some(wakeup);
        self.io.arm_wake();
        Ok(())
    }
}

impl Submit for Io {
    fn submit(&mut self, queue: &mut SendQueue) {
        self.push_sends(queue);
        if let Err(e) = self.submit_now() {
            tracing::debug!(error = %e, "io_uring submit");
        }
        // Sends usually complete inside the submit: free their chunks.
        self.reap(queue);
    }
}

impl Io {
    /// Pushes `entries`, all or none (a linked pair stays together),
    /// submitting first if the queue is full.
    ///
    /// # Safety
    /// Whatever the entries point at must stay valid until their completion.
    unsafe fn push(&mut self, entries: &[squeue::Entry]) -> bool {
        for _ in 0..2 {
            // SAFETY: forwarded from the caller.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return true;
            }
            if let Err(e) = self.submit_now() {
                tracing::debug!(error = %e, "io_uring submit with a full queue");
            }
        }
        false
    }

    /// Enables a ring created disabled, binding it to the calling thread.
    fn enable(&mut self) -> io::Result<()> {
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        Ok(())
    }

    /// Submits what is queued. With `GETEVENTS` (and no wait) the same
    /// syscall also runs the deferred completions, so under load the next
    /// `poll` finds them in the completion queue without entering the
    /// kernel again: one `io_uring_enter` per cycle.
    fn submit_now(&mut self) -> io::Result<()> {
        if self.ring.submission().is_empty() {
            return Ok(()); // nothing queued: save the syscall
        }
        self.collect()
    }

    /// Submits what is queued and runs the deferred completions, without
    /// waiting: `io_uring_enter(GETEVENTS)` with no minimum.
    fn collect(&mut self) -> io::Result<()> {
        self.enable()?;
        let to_submit = self.ring.submission().len();
        // SAFETY: no argument pointer; the entries were pushed with their
        // own safety contracts.
        let result = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                to_submit as u32,
                0,
                EnterFlags::GETEVENTS.bits(),
                None,
            )
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Queues a multishot receive for `id`.
    fn arm(&mut self, id: SocketId, hdr: &RecvHdr) {
        let Some(socket) = self.sockets.get(id) else {
            return;
        };
        let fd = socket.socket.as_raw_fd();
        let entry = opcode::RecvMsgMulti::new(Fd(fd), &hdr.0, BUFFER_GROUP)
            .build()
            .user_data(TAG_RECV | u64::from(id.0));
        // SAFETY: the msghdr template is boxed in the backend and outlives
        // every receive (they are cancelled before it drops); the fd stays
        // open until the receive's final completion (see `try_close`).
        if unsafe { self.push(std::slice::from_ref(&entry)) } {
            if let Some(socket) = self.sockets.get_mut(id) {
                socket.armed = true;
            }
            self.outstanding += 1;
        } else {
            self.rearm.push_back(id);
        }
    }

    /// Queues the wake-up's poll and its linked zero timeout, if a wake-up
    /// is watched and they are not armed yet. Both or neither: a poll
    /// without its timeout would not end a batch wait.
    fn arm_wake(&mut self) {
        let Some(wake) = self.wake.as_ref() else {
            return;
        };
        if self.wake_armed {
            return;
        }
        let poll = opcode::PollAdd::new(Fd(wake.raw_fd()), libc::POLLIN as u32)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(WAKE_POLL);
        let timeout = opcode::Timeout::new(&*self.wake_timeout)
            .build()
            .user_data(WAKE_TIMEOUT);
        // SAFETY: the poll points at no memory and its fd stays open while
        // `self.wake` holds the eventfd (dropped only with the backend,
        // after `quiesce`); the timeout points at the boxed `wake_timeout`,
        // which lives as long as the backend and is read by the kernel when
        // the entry is submitted.
        if unsafe { self.push(&[poll, timeout]) } {
            self.wake_armed = true;
            self.outstanding += 2;
        }
        // Else still full: `poll` tries again at its end.
    }

    /// The wake-up's poll completed with `result` (a `POLLIN` mask, or an
    /// error): drain the eventfd so the wake is not sticky; re-armed at the
    /// end of `poll`.
    fn woken(&mut self, result: i32) {
        self.wake_armed = false;
        if result >= 0 {
            if let Some(wake) = self.wake.as_ref() {
                wake.drain();
            }
            return;
        }
        if -result == libc::ECANCELED {
            return; // quiesce cancelled it: the backend is going away
        }
        // An error would come back at once on every re-arm: stop watching
        // rather than spin; mail then waits for the worker's next timer.
        tracing::warn!(
            errno = -result,
            "poll on the wake-up eventfd failed; no longer watched"
        );
        self.wake = None;
    }

    /// Closes a removed socket once the kernel no longer uses it.
    fn try_close(&mut self, id: SocketId) {
        if self
            .sockets
            .get(id)
            .is_some_and(|s| s.closing && !s.armed && s.sends == 0)
        {
            self.sockets.remove(id);
        }
    }

    /// Waits for at least one completion, at most `timeout`.
    ///
    /// With a batch wait of W µs (and a `timeout` of at least W) the wait
    /// is for [`BATCH_WAIT_COMPLETIONS`] completions, but once W has passed
    /// the kernel returns with whatever (≥ 1) has arrived; with none it
    /// keeps waiting for the first one until `timeout` (`min_wait_usec`,
    /// Linux 6.12, see liburing's `io_uring_submit_and_wait_min_timeout(3)`).
    /// Under load that is one wake-up per W instead of one per datagram,
    /// for at most W of added latency; an idle worker still wakes on the
    /// first datagram.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if timeout.is_zero() {
            // Nothing to wait for: a waiting enter would arm (and cancel) a
            // timer, which costs a clock-event reprogram; collecting the
            // deferred completions needs only a submit with GETEVENTS.
            return self.collect();
        }
        self.enable()?;
        let batched = self.batch_wait_us > 0
            && timeout >= Duration::from_micros(u64::from(self.batch_wait_us));
        let result = if batched {
            self.wait_batch(timeout)
        } else {
            let ts = Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos());
            let args = SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and waits as [`Io::wait`] describes, with
    /// `io_uring_enter(IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG)`: the
    /// `io-uring` crate's `SubmitArgs` cannot set `min_wait_usec`.
    fn wait_batch(&mut self, timeout: Duration) -> io::Result<usize> {
        let to_submit = self.ring.submission().len() as libc::c_uint;
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        let arg = GetEventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: self.batch_wait_us,
            ts: &ts as *const libc::timespec as u64,
        };
        // SAFETY: `arg` and the timespec it points at live on this stack
        // frame for the whole (synchronous) call, and the size passed is
        // the struct's; the kernel only reads them. The submitted entries
        // were pushed with their own safety contracts (see `push`).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.ring.as_raw_fd(),
                to_submit,
                BATCH_WAIT_COMPLETIONS,
                IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                &arg as *const GetEventsArg,
                mem::size_of::<GetEventsArg>(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// Drains the completion queue: sends are handled now (freeing their
    /// chunks), receives and cancels are kept for `poll`.
    fn reap(&mut self, queue: &mut SendQueue) {
        let mut batch = [Completion {
            user_data: 0,
            result: 0,
            flags: 0,
        }; 64];
        loop {
            let mut n = 0;
            {
                let mut cq = self.ring.completion();
                cq.sync();
                for (slot, cqe) in batch.iter_mut().zip(&mut cq) {
                    *slot = Completion {
                        user_data: cqe.user_data(),
                        result: cqe.result(),
                        flags: cqe.flags(),
                    };
                    n += 1;
                }
            }
            for &c in &batch[..n] {
                match c.user_data & TAG_MASK {
                    TAG_SEND => self.complete_send(c, queue),
                    TAG_CANCEL => self.outstanding = self.outstanding.saturating_sub(1),
                    TAG_WAKE => {
                        // Both are one-shot: this is their final completion.
                        self.outstanding = self.outstanding.saturating_sub(1);
                        // The poll's completion is handled by `poll`, in
                        // order with the receives; the timeout's only job
                        // was to end a wait.
                        if c.user_data == WAKE_POLL {
                            self.pending.push_back(c);
                        }
                    }
                    _ => self.pending.push_back(c),
                }
            }
            if n < batch.len() {
                break;
            }
        }
    }

    /// Queues the sealed chunks' batches as sendmsg entries.
    fn push_sends(&mut self, queue: &mut SendQueue) {
        while let Some(c) = queue.next_sealed() {
            let mut ops = 0;
            let (chunk, stats) = queue.chunk_and_stats(c);
            for batch in chunk.batches(self.gso) {
                let index = c * CHUNK_DATAGRAMS + batch.first;
                if self.push_send(index, chunk, &batch) {
                    ops += 1;
                } else {
                    stats.send_dropped += batch.count as u64;
                }
            }
            if ops == 0 {
                queue.release(c);
            } else {
                queue.chunk_mut(c).in_flight = ops;
            }
        }
    }

    /// Fills slot `index` for `batch` and queues its sendmsg.
    fn push_send(&mut self, index: usize, chunk: &Chunk, batch: &Batch) -> bool {
        let Some(socket) = self.sockets.get(batch.socket).filter(|s| !s.closing) else {
            return false;
        };
        let fd = socket.socket.as_raw_fd();
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        slot.fill(chunk, batch);
        slot.sendto = batch.count == 1 && self.sendto;
        let entry = if slot.sendto {
            #[cfg(test)]
            let addr_len = if self.break_sendto { 1 } else { slot.addr.len };
            #[cfg(not(test))]
            let addr_len = slot.addr.len;
            opcode::Send::new(Fd(fd), slot.iov.iov_base.cast(), slot.len)
                .dest_addr(slot.addr.as_ptr())
                .dest_addr_len(addr_len)
                .build()
        } else {
            opcode::SendMsg::new(Fd(fd), &slot.hdr).build()
        }
        .user_data(TAG_SEND | index as u64);
        // SAFETY: the slot (msghdr, iovec, address, control; for a plain
        // send the address and the iovec's bytes) is in the boxed
        // slot array and the bytes in the chunk; neither is written or freed
        // until this send's completion is reaped (`complete_send` releases
        // the chunk only when all its sends completed). The socket stays
        // open: `sends` below keeps `try_close` from closing it.
        if !unsafe { self.push(std::slice::from_ref(&entry)) } {
            return false;
        }
        if let Some(socket) = self.sockets.get_mut(batch.socket) {
            socket.sends += 1;
        }
        self.outstanding += 1;
        true
    }

    fn complete_send(&mut self, c: Completion, queue: &mut SendQueue) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let index = (c.user_data & 0xffff_ffff) as usize;
        let Some(slot) = self.slots.get(index).copied() else {
            return;
        };
        let chunk_index = index / CHUNK_DATAGRAMS;
        let count = u64::from(slot.count);
        let mut resent = 0;
        if c.result >= 0 {
            queue.stats.send_datagrams += count;
            queue.stats.send_ops += 1;
            queue.stats.send_gso_batches += u64::from(count > 1);
        } else if let Some(feature) = self.refused_feature(&slot, count, -c.result) {
            // Turned off for good; sends already in flight that used it are
            // refused too, and each is resent without it.
            if std::mem::replace(feature, false) {
                tracing::warn!(
                    errno = -c.result,
                    "{} refused; sending without it",
                    if count > 1 {
                        "UDP GSO"
                    } else {
                        "IORING_OP_SEND with an address"
                    }
                );
            }
            resent = self.resend_unbatched(index, &slot, queue.chunk(chunk_index));
            queue.stats.send_errors += count - u64::from(resent);
        } else if -c.result == libc::EAGAIN {
            queue.stats.send_dropped += count;
        } else {
            tracing::debug!(errno = -c.result, "sendmsg");
            queue.stats.send_errors += count;
        }
        if let Some(socket) = self.sockets.get_mut(slot.socket) {
            socket.sends = socket.sends.saturating_sub(1);
        }
        self.try_close(slot.socket);
        let chunk = queue.chunk_mut(chunk_index);
        chunk.in_flight = (chunk.in_flight + resent).saturating_sub(1);
        if chunk.in_flight == 0 {
            queue.release(chunk_index);
        }
    }

    /// The optional kernel feature a failed send of `slot` was refused
    /// for: UDP GSO (a batch, [`sys::is_gso_error`]) or the plain send with
    /// an address (`EINVAL`); `None` for any other failure.
    fn refused_feature(&mut self, slot: &SendSlot, count: u64, errno: i32) -> Option<&mut bool> {
        if count > 1 && sys::is_gso_error(errno) {
            Some(&mut self.gso)
        } else if slot.sendto && errno == libc::EINVAL {
            Some(&mut self.sendto)
        } else {
            None
        }
    }

    /// Resends a refused send one datagram per slot with `SENDMSG` and no
    /// GSO (the batch owns slots `index..index + count`; a single datagram
    /// goes back into its own slot). Returns how many were queued.
    fn resend_unbatched(&mut self, index: usize, slot: &SendSlot, chunk: &Chunk) -> u32 {
        let Some(dest) = slot.dest else { return 0 };
        let size = if slot.count > 1 {
            usize::from(slot.segment_size).max(1)
        } else {
            (slot.len as usize).max(1)
        };
        let mut queued = 0;
        let mut offset = slot.offset as usize;
        let end = offset + slot.len as usize;
        let mut k = 0;
        while offset < end {
            let len = size.min(end - offset);
            let single = Batch {
                socket: slot.socket,
                dest,
                first: 0,
                offset,
                len,
                count: 1,
                segment_size: 0,
            };
            if self.push_send(index + k, chunk, &single) {
                queued += 1;
            }
            offset += len;
            k += 1;
        }
        queued
    }
}

impl UringBackend {
    /// Cancels every operation and waits (bounded, about a second) until
    /// the kernel has completed them all, so it no longer writes into the
    /// receive buffers or reads the send slots. True when quiet.
    fn quiesce(&mut self) -> bool {
        let cancel = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
            .build()
            .user_data(TAG_CANCEL);
        // SAFETY: a cancel entry points at no memory.
        if unsafe { self.io.push(std::slice::from_ref(&cancel)) } {
            self.io.outstanding += 1;
        }
        for _ in 0..100 {
            if self.io.wait(Duration::from_millis(10)).is_err() {
                // Another thread owns the ring (EEXIST): cannot wait here.
                break;
            }
            self.io.reap(&mut self.queue);
            while let Some(c) = self.io.pending.pop_front() {
                if c.user_data & TAG_MASK == TAG_RECV {
                    if let Some(bid) = cqueue::buffer_select(c.flags) {
                        self.rx.provide(bid);
                    }
                    if !cqueue::more(c.flags) {
                        self.io.outstanding = self.io.outstanding.saturating_sub(1);
                    }
                }
            }
            if self.io.outstanding == 0 {
                return true;
            }
        }
        self.io.outstanding == 0
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // If the kernel does not finish in time, leak the memory rather
        // than free it under the kernel.
        if self.quiesce() {
            self.rx.unregister(&self.io.ring);
        } else {
            tracing::warn!(
                outstanding = self.io.outstanding,
                "io_uring operations did not finish; leaking their buffers"
            );
            self.rx.leak = true;
            mem::forget(mem::replace(&mut self.io.slots, Box::new([])));
            mem::forget(mem::replace(&mut self.queue, SendQueue::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_waits_for_every_operation() {
        if probe().is_err() {
            return; // io_uring forbidden here; the shared tests say so
        }
        let mut backend = UringBackend::new(UringConfig::default()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let socket = super::super::bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
            ids.push(backend.add_socket(socket).unwrap());
        }
        backend.poll(Duration::ZERO, &mut |_, _, _| {}).unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = sink.local_addr().unwrap();
        for i in 0..50 {
            backend.sender().send(ids[i % 3], dest, &[&[1u8; 300]]);
        }
        backend.flush().unwrap();
        backend.remove_socket(ids[0]);
        // Three armed receives, sends maybe completed: all must end.
        assert!(backend.io.outstanding >= 3);
        assert!(backend.quiesce());
        assert_eq!(backend.io.outstanding, 0);
    }

    /// Sends `sizes` single datagrams from `id` to `sink` and returns what
    /// arrived (each datagram's bytes are its index).
    fn send_singles(
        backend: &mut UringBackend,
        id: SocketId,
        sink: &UdpSocket,
        sizes: &[usize],
    ) -> Vec<Vec<u8>> {
        let dest = sink.local_addr().unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            backend.sender().send(id, dest, &[&vec![i as u8; n]]);
        }
        backend.flush().unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < sizes.len() {
            // Completions (and the fallback's resends) happen in poll.
            backend
                .poll(Duration::from_millis(1), &mut |_, _, _| {})
                .unwrap();
            match sink.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(e) => panic!("after {} datagrams: {e}", got.len()),
            }
        }
        got
    }

    #[test]
    fn single_datagrams_go_out_with_either_op_and_a_refused_send_falls_back() {
        if probe().is_err() {
            return; // io_uring forbidden here; the shared tests say so
        }
        let mut backend = UringBackend::new(UringConfig::default()).unwrap();
        let socket = super::super::bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let id = backend.add_socket(socket).unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let want = |sizes: &[usize]| -> Vec<Vec<u8>> {
            sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| vec![i as u8; n])
                .collect()
        };
        // Growing sizes: no datagram can join the one before it in a GSO
        // batch (segments after the first may only be shorter), so every
        // send is a single.
        let sizes = [1, 17, 600, 1200];
        let detected = backend.io.sendto;
        assert_eq!(detected, kernel_version().is_some_and(|v| v >= (6, 1)));
        assert_eq!(send_singles(&mut backend, id, &sink, &sizes), want(&sizes));
        backend.io.sendto = false;
        assert_eq!(send_singles(&mut backend, id, &sink, &sizes), want(&sizes));
        if detected {
            // The kernel refuses the plain send (EINVAL): every datagram is
            // resent with SENDMSG, and plain sends stay off.
            backend.io.sendto = true;
            backend.io.break_sendto = true;
            assert_eq!(send_singles(&mut backend, id, &sink, &sizes), want(&sizes));
            assert!(!backend.io.sendto);
            assert_eq!(backend.queue.stats.send_errors, 0);
        }
        assert!(backend.quiesce());
    }

    #[test]
    fn batch_wait_delivers_fewer_datagrams_than_a_batch() {
        if probe().is_err() {
            return; // io_uring forbidden here; the shared tests say so
        }
        let mut backend = UringBackend::new(UringConfig::default()).unwrap();
        let batching = backend.set_batch_wait(Duration::from_micros(200));
        // On by the kernel's word only: older kernels keep the plain wait.
        assert_eq!(batching, backend.io.min_timeout);
        assert_eq!(backend.io.batch_wait_us, if batching { 200 } else { 0 });
        let socket = super::super::bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        backend.add_socket(socket).unwrap();
        // Nothing arrives: the extended wait (an ABI mistake would be
        // EINVAL) times out cleanly.
        backend
            .poll(Duration::from_millis(2), &mut |_, _, _| {})
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 100], addr).unwrap();
        }
        // Three datagrams, far fewer than BATCH_WAIT_COMPLETIONS: the
        // batch wait must still hand them over.
        let mut got = Vec::new();
        while got.len() < 3 {
            backend
                .poll(Duration::from_secs(5), &mut |_, data, _| {
                    got.push(data.to_vec())
                })
                .unwrap();
        }
        assert_eq!(got, vec![vec![0u8; 100], vec![1u8; 100], vec![2u8; 100]]);
        assert!(backend.quiesce());
    }
}
