//! Deadlines of one server: a min-heap with lazy deletion.
//!
//! Every lifetime in RFC 8656 (allocation §7, permission §9, channel §12)
//! only needs "what expires next". A heap answers that in O(1) and inserts in
//! O(log n), so `poll_timeout` never scans the allocations. The server keeps
//! one entry per allocation, at its earliest deadline. Refreshing or deleting
//! does not touch the heap: the allocation keeps its true deadlines, and when
//! an entry comes due the server checks it against the allocation, drops it
//! if the allocation is gone or the entry superseded, and pushes the next
//! deadline. The server rebuilds the heap when stale entries pile up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines keyed by `K`, earliest first.
#[derive(Debug)]
pub(crate) struct Timers<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord> Timers<K> {
    pub(crate) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
        }
    }

    pub(crate) fn push(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline (possibly of a stale entry: a spurious early
    /// wake-up is harmless, a late one is not).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Replaces every entry (used to shed stale ones).
    pub(crate) fn rebuild(&mut self, entries: impl IntoIterator<Item = (Instant, K)>) {
        self.heap = entries.into_iter().map(Reverse).collect();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut timers = Timers::new();
        timers.push(t0 + s(30), 'c');
        timers.push(t0 + s(10), 'a');
        timers.push(t0 + s(20), 'b');
        assert_eq!(timers.next(), Some(t0 + s(10)));
        assert_eq!(timers.pop_due(t0 + s(5)), None);
        assert_eq!(timers.pop_due(t0 + s(25)), Some((t0 + s(10), 'a')));
        assert_eq!(timers.pop_due(t0 + s(25)), Some((t0 + s(20), 'b')));
        assert_eq!(timers.pop_due(t0 + s(25)), None);
        assert_eq!(timers.len(), 1);
        timers.rebuild([(t0 + s(1), 'z')]);
        assert_eq!(timers.pop_due(t0 + s(1)), Some((t0 + s(1), 'z')));
        assert_eq!(timers.next(), None);
    }
}
