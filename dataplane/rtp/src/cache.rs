//! The per-stream packet cache that answers viewers' NACKs (RFC 4585
//! §6.2.1) with retransmissions (RFC 4588): the last `capacity` packets of
//! a publisher's video, by sequence number.
//!
//! All memory is allocated once in [`PacketCache::new`]: one slab of
//! `capacity × max_len` octets and a slot table. Packet `seq` lives in slot
//! `seq % capacity`, so an insert overwrites the packet `capacity` numbers
//! older, and a lookup checks the stored sequence number, so an old packet
//! is never returned for a new number.

/// A fixed-size ring of recent RTP packets indexed by sequence number.
#[derive(Debug, Clone)]
pub struct PacketCache {
    slab: Vec<u8>,
    slots: Vec<Slot>,
    max_len: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u16,
    /// Octets of the stored packet; `None` when the slot is empty.
    len: Option<usize>,
}

impl PacketCache {
    /// A cache of `capacity` packets of at most `max_len` octets each.
    /// `capacity` is capped at 65536 (more sequence numbers do not exist).
    pub fn new(capacity: usize, max_len: usize) -> Self {
        let capacity = capacity.min(usize::from(u16::MAX) + 1);
        Self {
            slab: vec![0; capacity * max_len],
            slots: vec![Slot::default(); capacity],
            max_len,
        }
    }

    /// How many packets the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Longest packet the cache stores.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Stores `packet` as sequence number `seq`, replacing whatever its slot
    /// held. A packet longer than `max_len` is not stored (and the slot is
    /// emptied, so a NACK for `seq` is not answered with an older packet);
    /// returns whether it was stored.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) -> bool {
        let Some(index) = self.index(seq) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        let start = index * self.max_len;
        let out = match self.slab.get_mut(start..start + packet.len()) {
            Some(out) if packet.len() <= self.max_len => out,
            _ => {
                *slot = Slot { seq, len: None };
                return false;
            }
        };
        out.copy_from_slice(packet);
        *slot = Slot {
            seq,
            len: Some(packet.len()),
        };
        true
    }

    /// The packet stored as exactly `seq`, if it is still in the cache.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let index = self.index(seq)?;
        let slot = self.slots.get(index)?;
        if slot.seq != seq {
            return None;
        }
        let start = index * self.max_len;
        self.slab.get(start..start + slot.len?)
    }

    /// Forgets every packet (a publisher restarted its stream).
    pub fn clear(&mut self) {
        self.slots.fill(Slot::default());
    }

    fn index(&self, seq: u16) -> Option<usize> {
        usize::from(seq).checked_rem(self.slots.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_returns_exact_sequence_numbers() {
        let mut cache = PacketCache::new(4, 8);
        assert_eq!(cache.capacity(), 4);
        assert_eq!(cache.max_len(), 8);
        assert!(cache.insert(10, b"ten"));
        assert!(cache.insert(11, b"eleven"));
        assert_eq!(cache.get(10), Some(&b"ten"[..]));
        assert_eq!(cache.get(11), Some(&b"eleven"[..]));
        assert_eq!(cache.get(12), None);
        // 14 shares 10's slot (14 % 4 == 10 % 4) and evicts it.
        assert!(cache.insert(14, b"fourteen"));
        assert_eq!(cache.get(10), None);
        assert_eq!(cache.get(14), Some(&b"fourteen"[..]));
        // A shorter packet in a slot returns only its own octets.
        assert!(cache.insert(18, b"x"));
        assert_eq!(cache.get(18), Some(&b"x"[..]));
    }

    #[test]
    fn too_long_packet_empties_its_slot() {
        let mut cache = PacketCache::new(4, 8);
        assert!(cache.insert(3, b"three"));
        assert!(!cache.insert(3, b"too long!"));
        assert_eq!(cache.get(3), None);
        // Also in the last slot, where the slab would end early.
        assert!(!cache.insert(7, b"too long!"));
        assert_eq!(cache.get(7), None);
        assert!(cache.insert(7, b"12345678"));
        assert_eq!(cache.get(7), Some(&b"12345678"[..]));
    }

    #[test]
    fn wraps_around_sequence_numbers() {
        let mut cache = PacketCache::new(512, 4);
        for seq in [65534u16, 65535, 0, 1] {
            assert!(cache.insert(seq, &seq.to_be_bytes()));
        }
        for seq in [65534u16, 65535, 0, 1] {
            assert_eq!(cache.get(seq), Some(&seq.to_be_bytes()[..]));
        }
        cache.clear();
        assert_eq!(cache.get(0), None);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut cache = PacketCache::new(0, 1200);
        assert!(!cache.insert(1, b"a"));
        assert_eq!(cache.get(1), None);
        let mut empty_slots = PacketCache::new(4, 0);
        assert!(cache.get(0).is_none());
        assert!(empty_slots.insert(1, b""));
        assert_eq!(empty_slots.get(1), Some(&b""[..]));
        assert!(!empty_slots.insert(2, b"a"));
    }

    #[test]
    fn capacity_is_capped_at_the_sequence_space() {
        let cache = PacketCache::new(100_000, 1);
        assert_eq!(cache.capacity(), 65536);
    }
}
