//! Exact per-session pacing: when each session sends its next original.
//!
//! Every session sends one datagram per period P = payload bits / rate.
//! Its k-th deadline is `start + phase + k·P`, computed from k with integer
//! arithmetic (P is kept as a fraction), so deadlines never drift however
//! long the run.
//!
//! Phases: the N sessions of the run get the N evenly spaced offsets
//! `i·P/N` (in a random order), so in steady state the whole run sends one
//! datagram every P/N — no two sessions in step, no bursts. Ramp-up: session
//! i's first deadline is the first one at or after `ramp_start + i·R/N`, so
//! sessions join evenly over the ramp-up time R without disturbing the even
//! spacing.
//!
//! A [`Pacer`] holds one thread's sessions in a min-heap of next deadlines;
//! the worker sends everything due, in one batch, then waits for the next
//! deadline. Time is plain `u64` nanoseconds, so tests drive it on a virtual
//! clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::seq::SliceRandom;
use rand::Rng;

/// A session's send period, as an exact fraction `num / den` ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    num: u128,
    den: u128,
}

impl Period {
    /// The period of `payload` bytes at `kbps` kilobits per second (the
    /// rate counts the payload bits: the seed benchmark's "50 kbps with
    /// 150 B" is 41.67 datagrams per second). `None` for a zero rate or size.
    pub fn from_rate(payload: usize, kbps: u64) -> Option<Period> {
        if payload == 0 || kbps == 0 {
            return None;
        }
        // bits / (kbps·1000) s = bits·10⁶ / kbps ns.
        Some(Period {
            num: payload as u128 * 8 * 1_000_000,
            den: u128::from(kbps),
        })
    }

    /// `k` periods in ns (rounded down).
    pub fn times(&self, k: u64) -> u64 {
        u64::try_from(u128::from(k) * self.num / self.den).unwrap_or(u64::MAX)
    }

    /// Datagrams per second.
    pub fn per_sec(&self) -> f64 {
        1e9 * self.den as f64 / self.num as f64
    }

    /// The period in ns (rounded down).
    pub fn ns(&self) -> u64 {
        self.times(1)
    }
}

/// Per-session start offsets for a run of `sessions` sessions: index i's
/// phase (`0 ≤ phase < P`, evenly spaced, shuffled by `rng`; or 0 for all
/// with `aligned`: every session sends in the same instant of each period,
/// the bursts turnutils_uclient makes) and join time (`i·R/N` after the
/// ramp start).
#[derive(Debug, Clone)]
pub struct Phases {
    phase: Vec<u64>,
    join: Vec<u64>,
}

impl Phases {
    pub fn new(
        sessions: usize,
        period: Period,
        ramp_ns: u64,
        aligned: bool,
        rng: &mut impl Rng,
    ) -> Phases {
        let n = sessions.max(1) as u128;
        let mut phase: Vec<u64> = (0..sessions)
            .map(|i| {
                if aligned {
                    0
                } else {
                    u64::try_from(i as u128 * period.num / (period.den * n)).unwrap_or(0)
                }
            })
            .collect();
        phase.shuffle(rng);
        let join = (0..sessions)
            .map(|i| u64::try_from(u128::from(ramp_ns) * i as u128 / n).unwrap_or(ramp_ns))
            .collect();
        Phases { phase, join }
    }

    /// Session `i`'s first deadline and its offset on the grid, relative to
    /// the ramp start: `(offset, first_k)` with deadline k at
    /// `ramp_start + offset + period.times(k)`.
    pub fn first(&self, i: usize, period: Period) -> Option<(u64, u64)> {
        let phase = *self.phase.get(i)?;
        let join = *self.join.get(i)?;
        // Smallest k with phase + k·P ≥ join.
        let mut k = if join > phase {
            let k = (u128::from(join - phase) * period.den / period.num) as u64;
            k.saturating_sub(1)
        } else {
            0
        };
        while phase + period.times(k) < join {
            k += 1;
        }
        Some((phase, k))
    }
}

/// One thread's sessions and their next deadlines.
#[derive(Debug)]
pub struct Pacer {
    period: Period,
    /// Per slot (the worker's session index): grid origin in ns, next k.
    flows: Vec<Flow>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    origin: u64,
    next_k: u64,
}

/// One send that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The worker's session index.
    pub slot: u32,
    /// When it should have been sent (ns).
    pub deadline: u64,
}

impl Pacer {
    pub fn new(period: Period, capacity: usize) -> Pacer {
        Pacer {
            period,
            flows: Vec::with_capacity(capacity),
            heap: BinaryHeap::with_capacity(capacity),
        }
    }

    /// Adds the next slot: its deadlines are `origin + period.times(k)` for
    /// k = `first_k`, `first_k + 1`, …
    pub fn add(&mut self, origin: u64, first_k: u64) -> u32 {
        let slot = self.flows.len() as u32;
        self.flows.push(Flow {
            origin,
            next_k: first_k,
        });
        self.heap
            .push(Reverse((origin + self.period.times(first_k), slot)));
        slot
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// The next send due at `now` with a deadline before `stop`, and
    /// schedules that slot's following deadline. Call until `None`.
    pub fn pop_due(&mut self, now: u64, stop: u64) -> Option<Due> {
        let &Reverse((deadline, slot)) = self.heap.peek()?;
        if deadline > now || deadline >= stop {
            return None;
        }
        self.heap.pop();
        if let Some(flow) = self.flows.get_mut(slot as usize) {
            flow.next_k += 1;
            let next = flow.origin + self.period.times(flow.next_k);
            // Pop then push keeps the heap's size: no allocation.
            self.heap.push(Reverse((next, slot)));
        }
        Some(Due { slot, deadline })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// Runs a pacer of `n` sessions on a virtual clock that jumps from
    /// deadline to deadline, returning every (slot, deadline) before `stop`.
    fn run(n: usize, period: Period, ramp_ns: u64, stop: u64) -> Vec<Due> {
        let phases = Phases::new(n, period, ramp_ns, false, &mut rng());
        let mut pacer = Pacer::new(period, n);
        for i in 0..n {
            let (offset, k) = phases.first(i, period).unwrap();
            pacer.add(offset, k);
        }
        let mut out = Vec::new();
        while let Some(now) = pacer.next_deadline() {
            if now >= stop {
                break;
            }
            while let Some(due) = pacer.pop_due(now, stop) {
                assert_eq!(due.deadline, now, "nothing is sent late or early");
                out.push(due);
            }
        }
        out
    }

    #[test]
    fn period_of_the_seed_rates() {
        let p = Period::from_rate(150, 50).unwrap();
        assert_eq!(p.ns(), 24_000_000); // 150 B at 50 kbps: every 24 ms
        let p = Period::from_rate(1200, 1500).unwrap();
        assert_eq!(p.ns(), 6_400_000);
        assert!((p.per_sec() - 156.25).abs() < 1e-9);
        // 1200 B at 50 kbps = 5.2083… pps: 192 ms exactly.
        assert_eq!(Period::from_rate(1200, 50).unwrap().times(3), 576_000_000);
        assert_eq!(Period::from_rate(0, 50), None);
        assert_eq!(Period::from_rate(100, 0), None);
    }

    #[test]
    fn deadlines_do_not_drift() {
        // 7 kbps with 100 B: 114 285 714.28… ns, not a whole number of ns.
        let p = Period::from_rate(100, 7).unwrap();
        assert_eq!(p.times(7), 800_000_000);
        assert_eq!(p.times(7_000), 800_000_000_000);
    }

    #[test]
    fn counts_per_session_are_exact() {
        // 20 sessions, 10 s at 24 ms: each sends exactly 10 s / 24 ms
        // (416.67: 416 or 417 depending on its phase) — and in total the run
        // sends N · window / P within one per session.
        let p = Period::from_rate(150, 50).unwrap();
        let stop = 10_000_000_000;
        let sent = run(20, p, 0, stop);
        let mut per_session = [0u64; 20];
        for d in &sent {
            per_session[d.slot as usize] += 1;
        }
        let phases = Phases::new(20, p, 0, false, &mut rng());
        for (i, count) in per_session.iter().enumerate() {
            let (offset, _) = phases.first(i, p).unwrap();
            // Deadlines offset + k·P < stop: k < (stop − offset) / P.
            let expected = (stop - offset).div_ceil(p.ns());
            assert_eq!(*count, expected, "session {i}");
        }
        assert!(sent.len() as u64 >= 20 * 416 && sent.len() as u64 <= 20 * 417);
    }

    #[test]
    fn aligned_phases_put_every_session_in_the_same_instant() {
        let p = Period::from_rate(150, 50).unwrap();
        let phases = Phases::new(10, p, 0, true, &mut rng());
        for i in 0..10 {
            assert_eq!(phases.first(i, p), Some((0, 0)), "session {i}");
        }
    }

    #[test]
    fn spacing_is_even_and_phases_are_spread() {
        // In steady state the run sends one datagram every P/N, from a
        // different session each time, and each session every P.
        let n = 50;
        let p = Period::from_rate(1200, 1500).unwrap(); // 6.4 ms
        let sent = run(n, p, 0, 1_000_000_000);
        let gap = p.ns() / n as u64; // 128 µs
        for w in sent.windows(2) {
            let d = w[1].deadline - w[0].deadline;
            assert!(d.abs_diff(gap) <= 1, "gap {d} ns, want {gap}");
            assert_ne!(w[0].slot, w[1].slot);
        }
        let mut last = vec![None::<u64>; n];
        for d in &sent {
            if let Some(prev) = last[d.slot as usize] {
                assert!((d.deadline - prev).abs_diff(p.ns()) <= 1);
            }
            last[d.slot as usize] = Some(d.deadline);
        }
        // Phases: all distinct and spread over the whole period.
        let phases = Phases::new(n, p, 0, false, &mut rng());
        let mut offsets: Vec<u64> = (0..n).map(|i| phases.first(i, p).unwrap().0).collect();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), n);
        assert!(offsets[0] < gap && offsets[n - 1] >= p.ns() - gap - 1);
    }

    #[test]
    fn ramp_up_joins_sessions_evenly_without_bursts() {
        // 100 sessions join over 1 s; never more than one deadline at the
        // same instant, and by the time all joined the spacing is P/N.
        let n = 100;
        let p = Period::from_rate(150, 50).unwrap(); // 24 ms
        let ramp = 1_000_000_000;
        let sent = run(n, p, ramp, 3_000_000_000);
        let phases = Phases::new(n, p, ramp, false, &mut rng());
        for i in 0..n {
            let (offset, k) = phases.first(i, p).unwrap();
            let first = offset + p.times(k);
            let join = ramp * i as u64 / n as u64;
            assert!(first >= join && first < join + p.ns(), "session {i}");
        }
        // Sessions active at time t ≈ t·N/R during the ramp: count the
        // datagrams in each 100 ms slice and check they grow steadily.
        let slice = |from: u64| {
            sent.iter()
                .filter(|d| d.deadline >= from && d.deadline < from + 100_000_000)
                .count()
        };
        assert!(slice(0) < slice(400_000_000));
        assert!(slice(400_000_000) < slice(800_000_000));
        let steady = slice(2_000_000_000);
        // 100 ms / 24 ms · 100 sessions = 416.7.
        assert!((416..=417).contains(&steady), "{steady}");
        for w in sent.windows(2) {
            assert!(w[1].deadline > w[0].deadline, "two sends at one instant");
        }
    }

    #[test]
    fn nothing_is_due_before_its_deadline_or_after_stop() {
        let p = Period::from_rate(1000, 80).unwrap(); // 100 ms
        let mut pacer = Pacer::new(p, 1);
        pacer.add(5, 0);
        assert_eq!(pacer.pop_due(4, u64::MAX), None);
        assert_eq!(
            pacer.pop_due(5, u64::MAX),
            Some(Due {
                slot: 0,
                deadline: 5
            })
        );
        assert_eq!(pacer.next_deadline(), Some(100_000_005));
        // Late wake-up: the missed deadlines come one by one, none skipped.
        assert_eq!(
            pacer.pop_due(300_000_005, u64::MAX).unwrap().deadline,
            100_000_005
        );
        assert_eq!(
            pacer.pop_due(300_000_005, u64::MAX).unwrap().deadline,
            200_000_005
        );
        assert_eq!(pacer.pop_due(300_000_005, 300_000_005), None);
    }
}
