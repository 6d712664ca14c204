//! Outgoing datagrams of the media engine and its stream routers, in
//! reusable buffers: once the pool is warm, queueing a datagram allocates
//! nothing.
//!
//! [`TransmitQueue::group_by_destination`] puts a batch's datagrams for
//! the same destination next to each other (each destination's own order
//! kept): the dataplane's send queue turns such runs of equal-sized
//! datagrams into one UDP GSO send, which is what makes a publisher's
//! burst (a video frame) cheaper to fan out than the same packets one by
//! one (docs/benchmarks.md, "Media relay fan-out").

use std::collections::VecDeque;
use std::net::SocketAddr;

/// A datagram to send, borrowed from the queue until the next `pop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The listener to send from.
    pub source: SocketAddr,
    /// Where to send.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: &'a [u8],
}

/// Bound on queued datagrams: a stream's fan-out between two polls stays
/// far below it; past it the oldest datagrams are dropped (and counted),
/// so memory stays bounded whatever a caller does.
pub const MAX_QUEUED: usize = 16 * 1024;

/// A FIFO of datagrams with a pool of spare buffers.
#[derive(Debug, Default)]
pub struct TransmitQueue {
    queue: VecDeque<Queued>,
    free: Vec<Vec<u8>>,
    /// The buffer handed out by the last `pop`, returned to `free` on the next.
    lent: Option<Vec<u8>>,
    dropped: u64,
    /// Order of arrival of the next pushed datagram, so that grouping keeps
    /// each destination's datagrams in the order they were queued.
    next_seq: u64,
}

/// One queued datagram.
#[derive(Debug)]
struct Queued {
    source: SocketAddr,
    destination: SocketAddr,
    /// [`pair_key`] of (source, destination) in the high half, the order of
    /// arrival in the low half: grouping sorts on this one integer.
    order: u128,
    contents: Vec<u8>,
}

/// A 64-bit key for a (source, destination) pair. Exact for IPv4 (the
/// destination's address and port, the source's port; listeners on
/// different addresses with the same port to the same destination share a
/// key); IPv6 addresses are folded. Pairs that share a key are only
/// interleaved in arrival order, which costs coalescing, never order.
fn pair_key(source: SocketAddr, destination: SocketAddr) -> u64 {
    let ip = match destination {
        SocketAddr::V4(a) => u64::from(a.ip().to_bits()),
        SocketAddr::V6(a) => {
            let bits = a.ip().to_bits();
            let folded = (bits as u64) ^ ((bits >> 64) as u64);
            folded ^ (folded >> 32)
        }
    };
    (ip << 32) | (u64::from(destination.port()) << 16) | u64::from(source.port())
}

impl TransmitQueue {
    /// An empty buffer to fill and then [`push`](Self::push).
    pub fn buffer(&mut self) -> Vec<u8> {
        self.buffer_with_len(0)
    }

    /// A buffer of exactly `len` octets to write a datagram into. Only the
    /// part beyond what its previous datagram filled is zeroed (the rest
    /// holds that datagram's bytes), so a caller must overwrite every octet
    /// it sends: zeroing whole buffers was 1 % of a worker's time in the
    /// fan-out.
    pub fn buffer_with_len(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_else(|| Vec::with_capacity(1500));
        buf.resize(len, 0);
        buf
    }

    /// Gives a buffer back unused.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }

    /// Queues `contents` to go from `source` to `destination`.
    pub fn push(&mut self, source: SocketAddr, destination: SocketAddr, contents: Vec<u8>) {
        if self.queue.len() >= MAX_QUEUED {
            if let Some(old) = self.queue.pop_front() {
                self.free.push(old.contents);
            }
            self.dropped += 1;
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.queue.push_back(Queued {
            source,
            destination,
            order: (u128::from(pair_key(source, destination)) << 64) | u128::from(seq),
            contents,
        });
    }

    /// The next datagram; its bytes stay valid until the next call.
    pub fn pop(&mut self) -> Option<Transmit<'_>> {
        if let Some(buf) = self.lent.take() {
            self.free.push(buf);
        }
        let q = self.queue.pop_front()?;
        let lent = self.lent.insert(q.contents);
        Some(Transmit {
            source: q.source,
            destination: q.destination,
            contents: lent,
        })
    }

    /// Moves every queued datagram to the end of `out` without copying its
    /// bytes, and takes as many spare buffers back from `out`'s pool, so
    /// neither pool grows or runs dry when one queue feeds another.
    pub fn move_into(&mut self, out: &mut TransmitQueue) {
        if let Some(buf) = self.lent.take() {
            self.free.push(buf);
        }
        let moved = self.queue.len();
        while let Some(q) = self.queue.pop_front() {
            out.push(q.source, q.destination, q.contents);
        }
        for _ in 0..moved {
            match out.free.pop() {
                Some(buf) => self.free.push(buf),
                None => break,
            }
        }
    }

    /// Datagrams queued now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Reorders the queued datagrams so that those from the same source to
    /// the same destination are consecutive, each pair's datagrams in the
    /// order they were queued (UDP promises nothing across destinations).
    /// In place: no allocation (an unstable sort on one integer per
    /// datagram; its low half, the order of arrival, keeps each pair's
    /// order). Comparing the addresses themselves cost 3 % of a worker's
    /// time in the fan-out benchmark.
    pub fn group_by_destination(&mut self) {
        if self.queue.len() > 1 {
            self.queue
                .make_contiguous()
                .sort_unstable_by_key(|q| q.order);
        }
    }

    /// Datagrams dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn fifo_and_buffers_are_reused() {
        let mut q = TransmitQueue::default();
        for i in 0..3u8 {
            let mut b = q.buffer();
            b.push(i);
            q.push(addr(1), addr(2), b);
        }
        for i in 0..3u8 {
            let t = q.pop().expect("queued");
            assert_eq!(t.contents, &[i]);
            assert_eq!(t.destination, addr(2));
        }
        assert!(q.pop().is_none());
        // The three buffers are back in the pool: taking one allocates nothing new.
        assert_eq!(q.free.len(), 3);
        let b = q.buffer();
        assert!(b.is_empty() && b.capacity() >= 1);
    }

    #[test]
    fn move_into_keeps_order_and_both_pools_steady() {
        let (mut a, mut b) = (TransmitQueue::default(), TransmitQueue::default());
        let mut pooled = Vec::new();
        for round in 0..4u8 {
            for i in 0..4u8 {
                let mut buf = a.buffer();
                buf.push(round * 10 + i);
                a.push(addr(1), addr(2), buf);
            }
            a.move_into(&mut b);
            assert!(a.is_empty());
            for i in 0..4u8 {
                assert_eq!(b.pop().expect("moved").contents, &[round * 10 + i]);
            }
            assert!(b.pop().is_none());
            pooled.push(a.free.len() + b.free.len());
        }
        // Buffers shuttle back: after warming up, no round adds any.
        assert_eq!(pooled[1], pooled[2], "{pooled:?}");
        assert_eq!(pooled[2], pooled[3], "{pooled:?}");
    }

    #[test]
    fn grouping_puts_each_destination_together_in_its_own_order() {
        let mut q = TransmitQueue::default();
        // Three publisher packets fanned out to three viewers: packet-major.
        for packet in 0..3u8 {
            for viewer in [30u16, 10, 20] {
                let mut b = q.buffer();
                b.extend_from_slice(&[packet, viewer as u8]);
                q.push(addr(1), addr(viewer), b);
            }
        }
        q.group_by_destination();
        let got: Vec<(u16, Vec<u8>)> =
            std::iter::from_fn(|| q.pop().map(|t| (t.destination.port(), t.contents.to_vec())))
                .collect();
        let mut want = Vec::new();
        for viewer in [10u16, 20, 30] {
            for packet in 0..3u8 {
                want.push((viewer, vec![packet, viewer as u8]));
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn grouping_ipv6_and_pairs_sharing_a_key_keep_their_order() {
        let mut q = TransmitQueue::default();
        let v6 = |port: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], port));
        // Two listeners on different addresses, same port, same viewer:
        // their pair keys are equal, so they may interleave, but only in
        // the order they were queued.
        let other_listener = SocketAddr::from(([127, 0, 0, 2], 1));
        let pushes = [
            (addr(1), v6(7), 0u8),
            (addr(1), addr(9), 1),
            (other_listener, addr(9), 2),
            (addr(1), v6(7), 3),
            (addr(1), addr(9), 4),
            (other_listener, addr(9), 5),
        ];
        for (source, destination, tag) in pushes {
            let mut b = q.buffer();
            b.push(tag);
            q.push(source, destination, b);
        }
        q.group_by_destination();
        let got: Vec<(SocketAddr, SocketAddr, u8)> =
            std::iter::from_fn(|| q.pop().map(|t| (t.source, t.destination, t.contents[0])))
                .collect();
        assert_eq!(got.len(), pushes.len());
        // Each destination's datagrams are consecutive...
        let runs = got.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert_eq!(runs, 1, "{got:?}");
        // ...and every (source, destination) pair is in arrival order.
        for (source, destination, _) in pushes {
            let tags: Vec<u8> = got
                .iter()
                .filter(|g| g.0 == source && g.1 == destination)
                .map(|g| g.2)
                .collect();
            assert!(tags.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        }
    }

    #[test]
    fn sized_buffers_reuse_and_extend_with_zeros() {
        let mut q = TransmitQueue::default();
        let mut b = q.buffer_with_len(4);
        assert_eq!(b, [0; 4]);
        b.copy_from_slice(&[1, 2, 3, 4]);
        q.recycle(b);
        // Shorter: the old bytes, cut.
        let b = q.buffer_with_len(2);
        assert_eq!(b, [1, 2]);
        q.recycle(b);
        // Longer: the old bytes, then zeros.
        assert_eq!(q.buffer_with_len(6), [1, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn bounded() {
        let mut q = TransmitQueue::default();
        for _ in 0..MAX_QUEUED + 5 {
            let b = q.buffer();
            q.push(addr(1), addr(2), b);
        }
        assert_eq!(q.len(), MAX_QUEUED);
        assert_eq!(q.dropped(), 5);
    }
}
