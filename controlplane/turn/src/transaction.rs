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

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::FiveTuple;

/// How long a response is kept (RFC 8489 §6.3.1: "40 seconds").
pub const TRANSACTION_LIFETIME: Duration = Duration::from_secs(40);

/// A transaction: the 5-tuple it arrived on and its STUN transaction ID.
pub(crate) type TransactionKey = (FiveTuple, [u8; 12]);

#[derive(Debug)]
struct Entry {
    response: Vec<u8>,
    expires: Instant,
}

/// Responses by transaction, bounded in number, expiring after
/// [`TRANSACTION_LIFETIME`].
#[derive(Debug)]
pub(crate) struct TransactionCache {
    capacity: usize,
    entries: HashMap<TransactionKey, Entry>,
    /// Insertion order, which with a fixed lifetime is also expiry order.
    order: VecDeque<(Instant, TransactionKey)>,
}

impl TransactionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TransactionCache {
            capacity,
            entries: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// The response sent for `key`, if still remembered.
    pub(crate) fn get(&self, key: &TransactionKey, now: Instant) -> Option<&[u8]> {
        self.entries
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.response.as_slice())
    }

    /// Remembers the response sent for `key`.
    pub(crate) fn insert(&mut self, key: TransactionKey, response: Vec<u8>, now: Instant) {
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
        self.entries.insert(key, Entry { response, expires });
        self.order.push_back((expires, key));
    }

    /// Drops what expired by `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(expires, _)) = self.order.front() {
            if expires > now {
                break;
            }
            self.evict_oldest();
        }
    }

    /// When the oldest entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|&(at, _)| at)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes the front of `order`, and its entry unless the key was
    /// stored again later (then a newer `order` item owns it).
    fn evict_oldest(&mut self) -> bool {
        let Some((expires, key)) = self.order.pop_front() else {
            return false;
        };
        if self.entries.get(&key).is_some_and(|e| e.expires == expires) {
            self.entries.remove(&key);
        }
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
        cache.insert(key(1), vec![1, 2, 3], t0);
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
            cache.insert(key(n), vec![n], t0 + Duration::from_millis(u64::from(n)));
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
        cache.insert(key(1), vec![1], t0);
        assert_eq!(cache.get(&key(1), t0), None);
    }

    #[test]
    fn reinserted_key_survives_eviction_of_its_old_slot() {
        let t0 = Instant::now();
        let mut cache = TransactionCache::new(4);
        cache.insert(key(1), vec![1], t0);
        cache.insert(key(1), vec![9], t0 + Duration::from_secs(10));
        cache.expire(t0 + TRANSACTION_LIFETIME);
        assert_eq!(
            cache.get(&key(1), t0 + TRANSACTION_LIFETIME),
            Some(&[9u8][..])
        );
    }
}
