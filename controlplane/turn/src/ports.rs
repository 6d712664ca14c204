//! The relay port pool, shared by every worker's [`Server`](crate::Server).
//!
//! RFC 8656 §7.2 leaves the choice of relayed transport address to the
//! server, with two client controls: EVEN-PORT (an even port, optionally with
//! the next port held back for a later allocation) and RESERVATION-TOKEN (take
//! the port held back earlier). §21 ("Security Considerations") and RFC 6056
//! explain why the port is picked at random rather than sequentially:
//! predictable relay ports make it easier for an off-path attacker to aim
//! traffic at an allocation.
//!
//! Every worker draws from this one pool so a relay address is unique across
//! the whole relay, which lets the dataplane name relay sockets by their
//! address. The pool is behind a [`Mutex`]: it is touched when an allocation
//! is created or deleted, never per relayed packet.
//!
//! A reservation only holds the port *number*: no socket is opened for it.
//! The worker that claims the token opens the socket (and answers 508 if the
//! bind then fails), so a token can be claimed from any worker.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rand::Rng;

/// An IP address family of the relay (each family has its own port space).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    fn index(self) -> usize {
        match self {
            IpFamily::V4 => 0,
            IpFamily::V6 => 1,
        }
    }
}

/// Which ports a caller accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    Any,
    /// EVEN-PORT (RFC 8656 §7.2).
    Even,
}

/// The 8-byte RESERVATION-TOKEN (RFC 8656 §18.9) naming a held port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationToken(pub [u8; 8]);

/// Why a reservation could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    #[error("unknown reservation token")]
    Unknown,
    #[error("reservation expired")]
    Expired,
}

/// Random relay ports in `[min, max]`, per family, plus reservations.
#[derive(Debug)]
pub struct PortPool {
    min: u16,
    max: u16,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One bit per port (all 65536), one set per family: 8 KiB each.
    used: [Vec<u64>; 2],
    in_use: [u32; 2],
    reservations: HashMap<ReservationToken, Reservation>,
}

#[derive(Debug, Clone, Copy)]
struct Reservation {
    family: IpFamily,
    port: u16,
    expires: Instant,
}

/// Random probes before falling back to a scan. With the pool mostly free a
/// probe almost always hits; the scan guarantees a free port is found when
/// one exists, however full the pool is.
const RANDOM_PROBES: usize = 16;

impl PortPool {
    /// A pool of the ports `min..=max` (port 0 is never handed out).
    pub fn new(min: u16, max: u16) -> Self {
        let min = min.max(1);
        let empty = || vec![0u64; 65536 / 64];
        PortPool {
            min,
            max,
            inner: Mutex::new(Inner {
                used: [empty(), empty()],
                in_use: [0, 0],
                reservations: HashMap::new(),
            }),
        }
    }

    /// The configured range.
    pub fn range(&self) -> std::ops::RangeInclusive<u16> {
        self.min..=self.max
    }

    /// Takes a random free port of `family`.
    pub fn acquire(&self, family: IpFamily, parity: Parity) -> Option<u16> {
        let mut inner = self.lock();
        let step = match parity {
            Parity::Any => 1,
            Parity::Even => 2,
        };
        let port = self.find(&inner, step, |inner, p| !inner.is_used(family, p))?;
        inner.set_used(family, port, true);
        Some(port)
    }

    /// Takes a random even port `p` together with `p + 1` (EVEN-PORT with the
    /// R bit, RFC 8656 §7.2). Returns `p`.
    pub fn acquire_pair(&self, family: IpFamily) -> Option<u16> {
        let mut inner = self.lock();
        let max = self.max;
        let port = self.find(&inner, 2, |inner, p| {
            p < max && !inner.is_used(family, p) && !inner.is_used(family, p + 1)
        })?;
        // `find` only returns p < max here, so p + 1 neither overflows nor
        // leaves the range.
        inner.set_used(family, port, true);
        inner.set_used(family, port + 1, true);
        Some(port)
    }

    /// Gives a port back.
    pub fn release(&self, family: IpFamily, port: u16) {
        self.lock().set_used(family, port, false);
    }

    /// Holds `port` (already acquired by the caller) for a later allocation
    /// until `expires`, under a fresh random token.
    pub fn reserve(&self, family: IpFamily, port: u16, expires: Instant) -> ReservationToken {
        let mut inner = self.lock();
        let mut rng = rand::thread_rng();
        loop {
            let token = ReservationToken(rng.gen());
            if let std::collections::hash_map::Entry::Vacant(slot) = inner.reservations.entry(token)
            {
                slot.insert(Reservation {
                    family,
                    port,
                    expires,
                });
                return token;
            }
        }
    }

    /// Takes the port held under `token`; it now belongs to the caller. An
    /// expired reservation gives its port back to the pool.
    pub fn claim(
        &self,
        token: ReservationToken,
        now: Instant,
    ) -> Result<(IpFamily, u16), ClaimError> {
        let mut inner = self.lock();
        let reservation = inner
            .reservations
            .remove(&token)
            .ok_or(ClaimError::Unknown)?;
        if reservation.expires <= now {
            inner.set_used(reservation.family, reservation.port, false);
            return Err(ClaimError::Expired);
        }
        Ok((reservation.family, reservation.port))
    }

    /// Ends the reservation under `token` if it has expired by `now`, giving
    /// its port back. Returns whether it did.
    pub fn expire_reservation(&self, token: ReservationToken, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.reservations.get(&token) {
            Some(r) if r.expires <= now => {
                let r = *r;
                inner.reservations.remove(&token);
                inner.set_used(r.family, r.port, false);
                true
            }
            _ => false,
        }
    }

    /// Ends the reservation under `token` now, expired or not (shutdown),
    /// giving its port back. Returns whether it existed.
    pub fn cancel_reservation(&self, token: ReservationToken) -> bool {
        let mut inner = self.lock();
        match inner.reservations.remove(&token) {
            Some(r) => {
                inner.set_used(r.family, r.port, false);
                true
            }
            None => false,
        }
    }

    /// Ports of `family` currently taken (allocated or reserved).
    pub fn in_use(&self, family: IpFamily) -> u32 {
        self.lock().in_use[family.index()]
    }

    /// Reservations currently held.
    pub fn reservations(&self) -> usize {
        self.lock().reservations.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before anything
        // that could panic, so a poisoned lock still guards valid state.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A random port `p` in range with `p % step == 0` (step 1 or 2) for
    /// which `free` holds.
    fn find(&self, inner: &Inner, step: u16, free: impl Fn(&Inner, u16) -> bool) -> Option<u16> {
        // First candidate >= min with the right parity.
        let first = if step == 2 {
            self.min.checked_add(self.min % 2)?
        } else {
            self.min
        };
        if first > self.max {
            return None;
        }
        let slots = u32::from(self.max - first) / u32::from(step) + 1;
        let port_at = |slot: u32| -> u16 {
            // slot < slots, so first + slot * step <= max: fits in u16.
            (u32::from(first) + slot * u32::from(step)) as u16
        };
        let mut rng = rand::thread_rng();
        for _ in 0..RANDOM_PROBES {
            let p = port_at(rng.gen_range(0..slots));
            if free(inner, p) {
                return Some(p);
            }
        }
        let start = rng.gen_range(0..slots);
        (0..slots)
            .map(|i| port_at((start + i) % slots))
            .find(|&p| free(inner, p))
    }
}

impl Inner {
    // Indexing below cannot fail: each bitmap has 65536 / 64 words and
    // `port / 64` is at most 1023.
    fn is_used(&self, family: IpFamily, port: u16) -> bool {
        let word = self.used[family.index()][usize::from(port / 64)];
        word & (1u64 << (port % 64)) != 0
    }

    fn set_used(&mut self, family: IpFamily, port: u16, used: bool) {
        let was = self.is_used(family, port);
        let word = &mut self.used[family.index()][usize::from(port / 64)];
        let bit = 1u64 << (port % 64);
        let count = &mut self.in_use[family.index()];
        match (was, used) {
            (false, true) => {
                *word |= bit;
                *count += 1;
            }
            (true, false) => {
                *word &= !bit;
                *count -= 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    #[test]
    fn acquires_every_port_once_then_none() {
        let pool = PortPool::new(50000, 50031);
        let mut seen = HashSet::new();
        for _ in 0..32 {
            let p = pool.acquire(IpFamily::V4, Parity::Any).unwrap();
            assert!((50000..=50031).contains(&p));
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), None);
        assert_eq!(pool.in_use(IpFamily::V4), 32);
        // The IPv6 port space is separate.
        assert!(pool.acquire(IpFamily::V6, Parity::Any).is_some());
        pool.release(IpFamily::V4, 50017);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), Some(50017));
    }

    #[test]
    fn even_ports_are_even() {
        let pool = PortPool::new(40001, 40010);
        let mut got = Vec::new();
        while let Some(p) = pool.acquire(IpFamily::V4, Parity::Even) {
            assert_eq!(p % 2, 0);
            got.push(p);
        }
        got.sort_unstable();
        assert_eq!(got, vec![40002, 40004, 40006, 40008, 40010]);
        // Odd ports are still free.
        assert_eq!(pool.in_use(IpFamily::V4), 5);
        assert!(pool.acquire(IpFamily::V4, Parity::Any).is_some());
    }

    #[test]
    fn pair_takes_both_ports_and_respects_max() {
        let pool = PortPool::new(40000, 40002);
        // Only 40000/40001 fits: 40002 + 1 is past max.
        assert_eq!(pool.acquire_pair(IpFamily::V4), Some(40000));
        assert_eq!(pool.in_use(IpFamily::V4), 2);
        assert_eq!(pool.acquire_pair(IpFamily::V4), None);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), Some(40002));
    }

    #[test]
    fn ports_are_not_sequential() {
        // With 10000 ports, 20 sequential picks from random probes forming
        // an increasing run 0,1,2,.. has probability ~0.
        let pool = PortPool::new(10000, 19999);
        let ports: Vec<u16> = (0..20)
            .map(|_| pool.acquire(IpFamily::V4, Parity::Any).unwrap())
            .collect();
        let sequential = ports.windows(2).all(|w| w[1] == w[0] + 1);
        assert!(!sequential, "{ports:?}");
    }

    #[test]
    fn reservation_claim_and_expiry() {
        let pool = PortPool::new(40000, 40100);
        let t0 = Instant::now();
        let p = pool.acquire_pair(IpFamily::V4).unwrap();
        let token = pool.reserve(IpFamily::V4, p + 1, t0 + Duration::from_secs(30));
        assert_eq!(pool.reservations(), 1);
        assert_eq!(
            pool.claim(token, t0 + Duration::from_secs(29)),
            Ok((IpFamily::V4, p + 1))
        );
        // Claimed once only.
        assert_eq!(pool.claim(token, t0), Err(ClaimError::Unknown));
        // The claimed port stays in use (it belongs to the claimer now).
        assert_eq!(pool.in_use(IpFamily::V4), 2);

        let q = pool.acquire(IpFamily::V6, Parity::Any).unwrap();
        let token = pool.reserve(IpFamily::V6, q, t0 + Duration::from_secs(30));
        assert!(!pool.expire_reservation(token, t0 + Duration::from_secs(29)));
        assert!(pool.expire_reservation(token, t0 + Duration::from_secs(30)));
        assert_eq!(pool.in_use(IpFamily::V6), 0);
        assert_eq!(pool.claim(token, t0), Err(ClaimError::Unknown));

        let r = pool.acquire(IpFamily::V6, Parity::Any).unwrap();
        let token = pool.reserve(IpFamily::V6, r, t0 + Duration::from_secs(30));
        assert_eq!(
            pool.claim(token, t0 + Duration::from_secs(31)),
            Err(ClaimError::Expired)
        );
        assert_eq!(pool.in_use(IpFamily::V6), 0);
    }

    #[test]
    fn empty_or_degenerate_ranges() {
        let pool = PortPool::new(5, 4);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), None);
        let pool = PortPool::new(0, 1);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), Some(1));
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), None);
        let pool = PortPool::new(65535, 65535);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Even), None);
        assert_eq!(pool.acquire_pair(IpFamily::V4), None);
        assert_eq!(pool.acquire(IpFamily::V4, Parity::Any), Some(65535));
    }
}
