//! The server's response cache for retransmitted requests (RFC 8489 §6.3.1).
//!
//! Over UDP a client retransmits a request until it sees the response; a
//! retransmission must get the same answer without running the request a
//! second time (an Allocate run twice would answer 437, a Refresh run twice
//! would move the expiry again). RFC 8489 §6.3.1 suggests remembering the
//! response for 40 s, just over the 39.5 s a client keeps retransmitting
//! (Rc = 7 with RTO = 500 ms, §6.2.1).
//!
//! Only responses to *authenticated* requests are stored: the 401 challenge
//! is cheap to recompute and caching it would let unauthenticated sources
//! fill memory. The cache is bounded by entry count; the oldest entry goes
//! first when it is full.
//!
//! Memory: a burst of set-ups (thousands of Allocates, CreatePermissions
//! and ChannelBinds) fills the cache, and 40 s later it is empty again.
//! Responses are therefore not kept in one heap block each: those would be
//! freed 40 s later, in between the long-lived state of the allocations
//! made meanwhile, and leave holes the allocator cannot give back to the
//! system. They are appended to one byte buffer instead, used as a FIFO
//! (the lifetime is fixed, so responses expire in insertion order), and
//! every buffer shrinks when it drains (`shrink`), so a relay holding N
//! quiet allocations does not keep the peak of its last burst.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::FiveTuple;

/// How long a response is kept (RFC 8489 §6.3.1: "40 seconds").
pub const TRANSACTION_LIFETIME: Duration = Duration::from_secs(40);

/// A transaction: the 5-tuple it arrived on and its STUN transaction ID.
pub(crate) type TransactionKey = (FiveTuple, [u8; 12]);

#[derive(Debug)]
struct Entry {
    /// Where the response starts in the byte FIFO (a logical offset: it
    /// only grows, see `TransactionCache::base`).
    start: u64,
    len: u32,
    expires: Instant,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start + u64::from(self.len)
    }
}

/// Responses by transaction, bounded in number, expiring after
/// [`TRANSACTION_LIFETIME`].
#[derive(Debug)]
pub(crate) struct TransactionCache {
    capacity: usize,
    entries: HashMap<TransactionKey, Entry>,
    /// Insertion order, which with a fixed lifetime is also expiry order,
    /// with where each response ends in `bytes`.
    order: VecDeque<(Instant, TransactionKey, u64)>,
    /// The responses, oldest first; `bytes[0]` is at logical offset `base`.
    bytes: Vec<u8>,
    base: u64,
    /// Logical offset of the first byte still referenced (the rest before
    /// it is dropped when it is at least half of `bytes`).
    head: u64,
}

impl TransactionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TransactionCache {
            capacity,
            // Grown on demand and shrunk when drained (`shrink`): most of the
            // time the cache holds far fewer entries than it may.
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: Vec::new(),
            base: 0,
            head: 0,
        }
    }

    /// The response sent for `key`, if still remembered.
    pub(crate) fn get(&self, key: &TransactionKey, now: Instant) -> Option<&[u8]> {
        let entry = self.entries.get(key).filter(|e| e.expires > now)?;
        // A live entry's bytes are at or after `head`, hence after `base`.
        let from = usize::try_from(entry.start.checked_sub(self.base)?).ok()?;
        let to = from.checked_add(usize::try_from(entry.len).ok()?)?;
        self.bytes.get(from..to)
    }

    /// Remembers the response sent for `key`.
    pub(crate) fn insert(&mut self, key: TransactionKey, response: &[u8], now: Instant) {
        let Ok(len) = u32::try_from(response.len()) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        self.expire(now);
        while self.entries.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        let expires = now + TRANSACTION_LIFETIME;
        let start = self.base + self.bytes.len() as u64;
        self.bytes.extend_from_slice(response);
        let entry = Entry {
            start,
            len,
            expires,
        };
        self.order.push_back((expires, key, entry.end()));
        self.entries.insert(key, entry);
    }

    /// Drops what expired by `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(expires, _, _)) = self.order.front() {
            if expires > now {
                break;
            }
            self.evict_oldest();
        }
        self.shrink();
    }

    /// Gives memory back once the cache is at most a quarter full, keeping
    /// room for twice what it holds (so a steady load does not make it
    /// shrink and grow in turn). Each shrink at least halves the capacity,
    /// so its cost is paid for by the insertions that made it grow.
    fn shrink(&mut self) {
        const MIN_CAPACITY: usize = 64;
        const MIN_BYTES: usize = 16 * 1024;
        // Drop the expired prefix of the byte FIFO once it is at least half
        // of it: the live bytes moved are at most what was dropped.
        let dead = usize::try_from(self.head - self.base).unwrap_or(usize::MAX);
        if dead > 0 && dead.saturating_mul(2) >= self.bytes.len() {
            self.bytes.drain(..dead.min(self.bytes.len()));
            self.base = self.head;
        }
        if self.bytes.capacity() > MIN_BYTES && self.bytes.len() * 4 <= self.bytes.capacity() {
            self.bytes.shrink_to((self.bytes.len() * 2).max(MIN_BYTES));
        }
        let keep = (self.entries.len() * 2).max(MIN_CAPACITY);
        if self.entries.capacity() > MIN_CAPACITY
            && self.entries.len() * 4 <= self.entries.capacity()
        {
            self.entries.shrink_to(keep);
        }
        if self.order.capacity() > MIN_CAPACITY && self.order.len() * 4 <= self.order.capacity() {
            self.order.shrink_to(keep);
        }
    }

    /// When the oldest entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|&(at, _, _)| at)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes the front of `order`, and its entry unless the key was
    /// stored again later (then a newer `order` item owns it); its bytes
    /// are no longer referenced.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, key, end)) = self.order.pop_front() else {
            return false;
        };
        if self.entries.get(&key).is_some_and(|e| e.end() == end) {
            self.entries.remove(&key);
        }
        self.head = end;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn key(n: u8) -> TransactionKey {
        let client: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
        (FiveTuple { client, server }, [n; 12])
    }

    #[test]
    fn remembers_until_lifetime() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(8);
        cache.insert(key(1), &[1, 2, 3], t0);
        assert_eq!(
            cache.get(&key(1), t0 + Duration::from_secs(39)),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(cache.get(&key(2), t0), None);
        assert_eq!(cache.next_expiry(), Some(t0 + TRANSACTION_LIFETIME));
        assert_eq!(cache.get(&key(1), t0 + TRANSACTION_LIFETIME), None);
        cache.expire(t0 + TRANSACTION_LIFETIME);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.next_expiry(), None);
    }

    #[test]
    fn bounded_by_capacity_oldest_first() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(3);
        for n in 0..5u8 {
            cache.insert(key(n), &[n], t0 + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(0), t0), None);
        assert_eq!(cache.get(&key(1), t0), None);
        assert_eq!(cache.get(&key(4), t0), Some(&[4u8][..]));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(0);
        cache.insert(key(1), &[1], t0);
        assert_eq!(cache.get(&key(1), t0), None);
    }

    #[test]
    fn gives_memory_back_when_drained() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(100_000);
        for n in 0..10_000u32 {
            let mut k = key(0);
            k.1[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(k, &[n as u8; 100], t0);
        }
        let full = (cache.entries.capacity(), cache.order.capacity());
        assert!(full.0 >= 10_000 && full.1 >= 10_000);
        assert!(cache.bytes.capacity() >= 1_000_000);
        cache.insert(key(1), &[1], t0 + Duration::from_secs(30));
        cache.expire(t0 + TRANSACTION_LIFETIME);
        assert_eq!(cache.len(), 1);
        assert!(
            cache.entries.capacity() < 1_000,
            "{}",
            cache.entries.capacity()
        );
        assert!(cache.order.capacity() < 1_000, "{}", cache.order.capacity());
        assert!(
            cache.bytes.capacity() <= 16 * 1024,
            "{}",
            cache.bytes.capacity()
        );
        assert_eq!(
            cache.get(&key(1), t0 + TRANSACTION_LIFETIME),
            Some(&[1u8][..])
        );
    }

    /// Expired responses are dropped from the front of the byte FIFO; the
    /// live ones keep their exact bytes through every compaction.
    #[test]
    fn live_responses_survive_compaction() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(10_000);
        let response = |n: u8| vec![n; 50 + usize::from(n)];
        for n in 0..200u8 {
            let at = t0 + Duration::from_millis(100 * u64::from(n));
            cache.insert(key(n), &response(n), at);
        }
        for step in 0..200u64 {
            let now = t0 + TRANSACTION_LIFETIME + Duration::from_millis(100 * step);
            cache.expire(now);
            assert!(cache.head >= cache.base);
            for n in 0..200u8 {
                let expected = (u64::from(n) > step).then(|| response(n));
                assert_eq!(
                    cache.get(&key(n), now).map(<[u8]>::to_vec),
                    expected,
                    "{step} {n}"
                );
            }
        }
    }

    #[test]
    fn reinserted_key_survives_eviction_of_its_old_slot() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(4);
        cache.insert(key(1), &[1], t0);
        cache.insert(key(1), &[9], t0 + Duration::from_secs(10));
        cache.expire(t0 + TRANSACTION_LIFETIME);
        assert_eq!(
            cache.get(&key(1), t0 + TRANSACTION_LIFETIME),
            Some(&[9u8][..])
        );
    }
}
