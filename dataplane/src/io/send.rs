//! The send queue both backends share, and its UDP GSO coalescing.
//!
//! Datagrams are copied once, from the caller's parts, into preallocated
//! 64 KiB chunks, back to back. A chunk is filled, then sealed and handed to
//! the kernel by the backend's flush; io_uring keeps it until every send
//! that points into it has completed, epoll releases it when `sendmmsg`
//! returns. Nothing is allocated per datagram.
//!
//! Coalescing (UDP GSO, Linux `UDP_SEGMENT`, see `udp(7)`): consecutive
//! datagrams from the same socket to the same destination whose sizes are
//! equal (the last may be shorter) already lie contiguously in the chunk, so
//! they leave as one send with one iovec and a segment size; the kernel (or
//! the NIC) cuts them apart again. The kernel accepts at most 64 segments
//! (`UDP_MAX_SEGMENTS` before Linux 6.9) and one IP datagram's worth of
//! bytes per send.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{IoStats, SocketId};

/// Bytes per chunk: one largest UDP datagram always fits an empty chunk.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;
/// Datagrams per chunk (at ~250 bytes each a chunk is full either way).
pub(crate) const CHUNK_DATAGRAMS: usize = 256;
/// Chunks per queue: 512 KiB of queued or in-flight datagrams per worker.
pub(crate) const CHUNKS: usize = 8;

/// Largest UDP payload (IPv4: 65535 − 20 − 8).
pub(crate) const MAX_DATAGRAM: usize = 65507;
/// GSO limits: segments per send (kernel `UDP_MAX_SEGMENTS`, 64 until Linux
/// 6.9) and payload bytes per send (one IPv4 datagram's payload).
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = MAX_DATAGRAM;

/// One queued datagram: where it goes and where its bytes are in the chunk.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    socket: SocketId,
    dest: SocketAddr,
    offset: u32,
    len: u32,
}

/// One send operation: one datagram, or a GSO run of `count` datagrams of
/// `segment_size` bytes (the last may be shorter), contiguous in the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batch {
    pub socket: SocketId,
    pub dest: SocketAddr,
    /// Index of the first datagram in the chunk (backends use it to index
    /// per-datagram resources: a batch of `count` owns `first..first + count`).
    pub first: usize,
    pub offset: usize,
    pub len: usize,
    pub count: usize,
    /// Bytes per segment when `count > 1`.
    pub segment_size: u16,
}

#[derive(Debug)]
pub(crate) struct Chunk {
    data: Box<[u8]>,
    used: usize,
    datagrams: Vec<Datagram>,
    /// Send operations submitted from this chunk and not yet completed
    /// (io_uring only).
    pub(crate) in_flight: u32,
}

impl Chunk {
    fn new() -> Self {
        Self {
            data: vec![0; CHUNK_BYTES].into_boxed_slice(),
            used: 0,
            datagrams: Vec::with_capacity(CHUNK_DATAGRAMS),
            in_flight: 0,
        }
    }

    fn has_room(&self, len: usize) -> bool {
        self.used + len <= CHUNK_BYTES && self.datagrams.len() < CHUNK_DATAGRAMS
    }

    /// The bytes of a batch (or any range inside the used part).
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.data.get(offset..offset + len).unwrap_or(&[])
    }

    /// Start of the chunk's data, for iovecs that outlive a borrow (io_uring).
    pub(crate) fn base_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }

    /// The chunk's send operations, coalesced when `gso` is true.
    pub(crate) fn batches(&self, gso: bool) -> Batches<'_> {
        Batches {
            datagrams: &self.datagrams,
            next: 0,
            gso,
        }
    }
}

/// Iterator over a chunk's send operations; see [`Chunk::batches`].
#[derive(Debug)]
pub(crate) struct Batches<'a> {
    datagrams: &'a [Datagram],
    next: usize,
    gso: bool,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let first_index = self.next;
        let first = *self.datagrams.get(first_index)?;
        let segment = first.len as usize;
        let mut count = 1;
        let mut len = segment;
        // A zero-length segment size means nothing to the kernel; such
        // datagrams go alone.
        if self.gso && segment > 0 && segment <= usize::from(u16::MAX) {
            for d in &self.datagrams[first_index + 1..] {
                let d_len = d.len as usize;
                if count == GSO_MAX_SEGMENTS
                    || d.socket != first.socket
                    || d.dest != first.dest
                    || d_len > segment
                    || d_len == 0
                    || len + d_len > GSO_MAX_BYTES
                {
                    break;
                }
                // Contiguous by construction (appended back to back).
                debug_assert_eq!(d.offset as usize, first.offset as usize + len);
                count += 1;
                len += d_len;
                if d_len < segment {
                    break; // only the last segment may be shorter
                }
            }
        }
        self.next = first_index + count;
        Some(Batch {
            socket: first.socket,
            dest: first.dest,
            first: first_index,
            offset: first.offset as usize,
            len,
            count,
            segment_size: if count > 1 { segment as u16 } else { 0 },
        })
    }
}

/// Why a datagram was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// No free chunk: flush (and for io_uring, reap completions) first.
    Full,
    /// Larger than any UDP datagram.
    TooBig,
}

/// The chunks and their states: one filling, some sealed and waiting for
/// flush, some in flight (io_uring), the rest free.
#[derive(Debug)]
pub(crate) struct SendQueue {
    chunks: Box<[Chunk]>,
    filling: Option<usize>,
    sealed: VecDeque<usize>,
    free: Vec<usize>,
    pub(crate) stats: IoStats,
}

impl SendQueue {
    pub(crate) fn new() -> Self {
        Self {
            chunks: (0..CHUNKS).map(|_| Chunk::new()).collect(),
            filling: None,
            sealed: VecDeque::with_capacity(CHUNKS),
            free: (0..CHUNKS).rev().collect(),
            stats: IoStats::default(),
        }
    }

    /// Copies a datagram made of `parts` into the queue.
    pub(crate) fn push(
        &mut self,
        socket: SocketId,
        dest: SocketAddr,
        parts: &[&[u8]],
    ) -> Result<(), PushError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_DATAGRAM {
            return Err(PushError::TooBig);
        }
        let index = match self.filling {
            Some(i) if self.chunks[i].has_room(len) => i,
            _ => {
                let next = self.free.pop().ok_or(PushError::Full)?;
                if let Some(full) = self.filling.replace(next) {
                    self.sealed.push_back(full);
                }
                next
            }
        };
        let chunk = &mut self.chunks[index];
        let offset = chunk.used;
        let mut at = offset;
        for part in parts {
            // In bounds: has_room checked used + len <= CHUNK_BYTES.
            chunk.data[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        chunk.used = at;
        chunk.datagrams.push(Datagram {
            socket,
            dest,
            offset: offset as u32,
            len: len as u32,
        });
        Ok(())
    }

    /// Seals the filling chunk and returns the oldest sealed chunk, for the
    /// backend to send. The backend then calls [`SendQueue::release`] (when
    /// the kernel is done with it) .
    pub(crate) fn next_sealed(&mut self) -> Option<usize> {
        if let Some(i) = self.filling {
            if !self.chunks[i].datagrams.is_empty() {
                self.sealed.push_back(i);
                self.filling = None;
            }
        }
        self.sealed.pop_front()
    }

    pub(crate) fn chunk(&self, index: usize) -> &Chunk {
        &self.chunks[index]
    }

    /// A chunk and the counters, borrowed together.
    pub(crate) fn chunk_and_stats(&mut self, index: usize) -> (&Chunk, &mut IoStats) {
        (&self.chunks[index], &mut self.stats)
    }

    pub(crate) fn chunk_mut(&mut self, index: usize) -> &mut Chunk {
        &mut self.chunks[index]
    }

    /// Returns a chunk to the free list once the kernel no longer reads it.
    pub(crate) fn release(&mut self, index: usize) {
        let chunk = &mut self.chunks[index];
        chunk.used = 0;
        chunk.datagrams.clear();
        chunk.in_flight = 0;
        self.free.push(index);
    }
}

/// A backend's way to empty the queue when [`Sender::send`] finds it full.
pub(crate) trait Submit {
    /// Hands sealed chunks to the kernel and frees what it can.
    fn submit(&mut self, queue: &mut SendQueue);
}

/// Queues datagrams; the parts are concatenated (header + payload without a
/// copy by the caller). Never blocks; a full queue flushes first, and if
/// that frees nothing the datagram is dropped and counted
/// ([`IoStats::send_dropped`]).
pub struct Sender<'a> {
    queue: &'a mut SendQueue,
    submit: &'a mut dyn Submit,
}

impl std::fmt::Debug for Sender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<'a> Sender<'a> {
    pub(crate) fn new(queue: &'a mut SendQueue, submit: &'a mut dyn Submit) -> Self {
        Self { queue, submit }
    }

    /// Queues one datagram made of `parts` for `dest`, to leave `socket`.
    pub fn send(&mut self, socket: SocketId, dest: SocketAddr, parts: &[&[u8]]) {
        match self.queue.push(socket, dest, parts) {
            Ok(()) => {}
            Err(PushError::TooBig) => self.queue.stats.send_dropped += 1,
            Err(PushError::Full) => {
                self.submit.submit(self.queue);
                if self.queue.push(socket, dest, parts).is_err() {
                    self.queue.stats.send_dropped += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn queue_of(datagrams: &[(u32, u16, usize)]) -> SendQueue {
        let mut q = SendQueue::new();
        let payload = [7u8; 2000];
        for &(socket, port, len) in datagrams {
            q.push(SocketId(socket), addr(port), &[&payload[..len]])
                .unwrap();
        }
        q
    }

    fn batches(q: &mut SendQueue, gso: bool) -> Vec<(usize, usize, u16)> {
        let c = q.next_sealed().unwrap();
        q.chunk(c)
            .batches(gso)
            .map(|b| (b.count, b.len, b.segment_size))
            .collect()
    }

    #[test]
    fn equal_sizes_to_one_destination_coalesce() {
        let mut q = queue_of(&[(1, 9, 100), (1, 9, 100), (1, 9, 100)]);
        assert_eq!(batches(&mut q, true), vec![(3, 300, 100)]);
    }

    #[test]
    fn shorter_last_segment_ends_the_batch() {
        let mut q = queue_of(&[(1, 9, 100), (1, 9, 100), (1, 9, 40), (1, 9, 40)]);
        assert_eq!(batches(&mut q, true), vec![(3, 240, 100), (1, 40, 0)]);
    }

    #[test]
    fn larger_datagram_starts_a_new_batch() {
        let mut q = queue_of(&[(1, 9, 100), (1, 9, 200), (1, 9, 200)]);
        assert_eq!(batches(&mut q, true), vec![(1, 100, 0), (2, 400, 200)]);
    }

    #[test]
    fn different_socket_or_destination_splits() {
        let mut q = queue_of(&[(1, 9, 100), (2, 9, 100), (2, 8, 100), (2, 8, 100)]);
        assert_eq!(
            batches(&mut q, true),
            vec![(1, 100, 0), (1, 100, 0), (2, 200, 100)]
        );
    }

    #[test]
    fn without_gso_every_datagram_goes_alone() {
        let mut q = queue_of(&[(1, 9, 100), (1, 9, 100)]);
        assert_eq!(batches(&mut q, false), vec![(1, 100, 0), (1, 100, 0)]);
    }

    #[test]
    fn batches_respect_segment_and_byte_limits() {
        let mut q = queue_of(&[(1, 9, 10); 100]);
        assert_eq!(batches(&mut q, true), vec![(64, 640, 10), (36, 360, 10)]);
        let mut q = queue_of(&[(1, 9, 1500); 43]);
        // 65507 / 1500 = 43.67: 43 segments fit.
        assert_eq!(batches(&mut q, true), vec![(43, 64500, 1500)]);
    }

    #[test]
    fn parts_are_concatenated() {
        let mut q = SendQueue::new();
        q.push(SocketId(0), addr(1), &[b"ab", b"", b"cde"]).unwrap();
        let c = q.next_sealed().unwrap();
        let b = q.chunk(c).batches(true).next().unwrap();
        assert_eq!(q.chunk(c).bytes(b.offset, b.len), b"abcde");
    }

    #[test]
    fn full_queue_reports_full_until_released() {
        let mut q = SendQueue::new();
        let big = vec![0u8; 40_000];
        // One 40 KB datagram per chunk.
        for _ in 0..CHUNKS {
            q.push(SocketId(0), addr(1), &[&big]).unwrap();
        }
        assert_eq!(q.push(SocketId(0), addr(1), &[&big]), Err(PushError::Full));
        assert_eq!(
            q.push(SocketId(0), addr(1), &[&vec![0u8; MAX_DATAGRAM + 1]]),
            Err(PushError::TooBig)
        );
        let c = q.next_sealed().unwrap();
        q.release(c);
        q.push(SocketId(0), addr(1), &[&big]).unwrap();
    }
}
