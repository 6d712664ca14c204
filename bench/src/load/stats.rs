//! What the generator measures: round-trip times (an HDR histogram), loss
//! from sequence numbers, and the interarrival jitter of RFC 3550 §6.4.1.
//!
//! All of it is per worker thread and merged at the end; nothing allocates
//! per packet (the loss bitmaps are sized before the measured window and
//! only grow if a session sends more than its rate allows).

use hdrhistogram::Histogram;

/// Largest round trip the histogram holds (60 s, in µs); larger ones are
/// recorded as this value.
const RTT_MAX_US: u64 = 60_000_000;
/// Significant figures of the histogram (0.1 % resolution).
const RTT_SIGFIG: u8 = 3;

/// Round-trip times in microseconds.
#[derive(Debug, Clone)]
pub struct RttHistogram(Histogram<u64>);

/// Percentiles of an [`RttHistogram`], in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RttSummary {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl RttHistogram {
    pub fn new() -> Self {
        // Fixed bounds: recording never resizes (no allocation per packet).
        // The bounds are valid constants (1 ≤ 2·1, sigfig ≤ 5): cannot fail.
        let h =
            Histogram::new_with_bounds(1, RTT_MAX_US, RTT_SIGFIG).expect("valid histogram bounds");
        Self(h)
    }

    /// Records one round trip (clamped into the histogram's range).
    pub fn record(&mut self, rtt_ns: u64) {
        let us = (rtt_ns / 1_000).clamp(1, RTT_MAX_US);
        self.0.saturating_record(us);
    }

    /// Adds another worker's histogram (same bounds: cannot fail).
    pub fn merge(&mut self, other: &RttHistogram) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> RttSummary {
        if self.0.is_empty() {
            return RttSummary::default();
        }
        RttSummary {
            p50: self.0.value_at_quantile(0.5),
            p99: self.0.value_at_quantile(0.99),
            p999: self.0.value_at_quantile(0.999),
            max: self.0.max(),
        }
    }
}

/// What [`LossTracker::on_echo`] made of an echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// First echo of an original sent in the measured window.
    Counted,
    /// An echo already seen.
    Duplicate,
    /// An echo of an original sent outside the measured window.
    Outside,
}

/// Loss of one session's originals in the measured window, from sequence
/// numbers: the originals sent in the window form one contiguous range of
/// sequence numbers; a bitmap over that range marks which came back, so
/// reordering and duplicates do not disturb the count.
#[derive(Debug, Clone, Default)]
pub struct LossTracker {
    /// First sequence number sent in the window.
    base: u64,
    /// Originals sent in the window.
    sent: u64,
    /// Distinct originals whose echo came back.
    received: u64,
    duplicates: u64,
    bits: Vec<u64>,
}

impl LossTracker {
    /// A tracker with room for `expected` originals (more still work: the
    /// bitmap grows then).
    pub fn with_capacity(expected: u64) -> Self {
        let words = usize::try_from(expected.div_ceil(64) + 1).unwrap_or(usize::MAX / 64);
        Self {
            bits: vec![0; words],
            ..Self::default()
        }
    }

    /// An original with sequence number `seq` was sent in the window.
    /// Sequence numbers come from the generator itself, one per send, so
    /// those in the window are consecutive.
    pub fn on_sent(&mut self, seq: u64) {
        if self.sent == 0 {
            self.base = seq;
        }
        self.sent += 1;
        let words = usize::try_from(self.sent.div_ceil(64)).unwrap_or(usize::MAX);
        if words > self.bits.len() {
            self.bits.resize(words, 0);
        }
    }

    /// An echo of original `seq` came back.
    pub fn on_echo(&mut self, seq: u64) -> Echo {
        if self.sent == 0 || seq < self.base || seq - self.base >= self.sent {
            return Echo::Outside;
        }
        let offset = seq - self.base;
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        let Some(w) = self.bits.get_mut(word) else {
            return Echo::Outside; // cannot happen: on_sent sized the bitmap
        };
        if *w & (1 << bit) != 0 {
            self.duplicates += 1;
            return Echo::Duplicate;
        }
        *w |= 1 << bit;
        self.received += 1;
        Echo::Counted
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Originals whose echo has not come back (yet).
    pub fn lost(&self) -> u64 {
        self.sent - self.received
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// Interarrival jitter of RFC 3550 §6.4.1, in ns: for consecutive arrivals
/// i, j with send times S and arrival times R,
/// D(i,j) = (Rj − Ri) − (Sj − Si) and J += (|D| − J) / 16.
/// The send time is the probe's timestamp: originator and echoer share one
/// clock (one process), so the transit R − S is real, not just relative.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    last_transit: Option<i128>,
    jitter: f64,
}

impl Jitter {
    /// One arrival of an original sent at `sent_ns`, received at `arrival_ns`.
    pub fn on_arrival(&mut self, sent_ns: u64, arrival_ns: u64) {
        let transit = i128::from(arrival_ns) - i128::from(sent_ns);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The current estimate (ns); `None` before two arrivals.
    pub fn value_ns(&self) -> Option<f64> {
        // One arrival gives a transit but no difference yet.
        self.last_transit.map(|_| self.jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = RttHistogram::new();
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let s = h.summary();
        assert_eq!(h.count(), 1000);
        // HDR with 3 significant figures is exact below 2048.
        assert_eq!(s.p50, 500);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert_eq!(s.max, 1000);
    }

    #[test]
    fn histograms_merge_and_clamp() {
        let mut a = RttHistogram::new();
        let mut b = RttHistogram::new();
        a.record(10_000);
        b.record(20_000);
        b.record(120_000_000_000); // 120 s: clamped to the 60 s bound
        a.merge(&b);
        assert_eq!(a.count(), 3);
        let s = a.summary();
        assert_eq!(s.p50, 20);
        assert!(s.max >= RTT_MAX_US && s.max <= RTT_MAX_US + RTT_MAX_US / 1000);
        assert_eq!(RttHistogram::new().summary(), RttSummary::default());
    }

    #[test]
    fn loss_from_gaps() {
        let mut t = LossTracker::with_capacity(10);
        for seq in 100..110 {
            t.on_sent(seq);
        }
        for seq in [100, 101, 103, 104, 105, 107, 108, 109] {
            assert_eq!(t.on_echo(seq), Echo::Counted);
        }
        assert_eq!(t.sent(), 10);
        assert_eq!(t.received(), 8);
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn duplicates_and_reordering_do_not_hide_loss() {
        let mut t = LossTracker::with_capacity(4);
        for seq in 0..6 {
            t.on_sent(seq);
        }
        // Out of order, one duplicated, seq 3 never comes back.
        for (seq, want) in [
            (5, Echo::Counted),
            (0, Echo::Counted),
            (2, Echo::Counted),
            (1, Echo::Counted),
            (2, Echo::Duplicate),
            (4, Echo::Counted),
        ] {
            assert_eq!(t.on_echo(seq), want, "seq {seq}");
        }
        assert_eq!(t.received(), 5);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.lost(), 1);
    }

    #[test]
    fn echoes_of_originals_outside_the_window_are_not_counted() {
        let mut t = LossTracker::with_capacity(0);
        assert_eq!(t.on_echo(0), Echo::Outside);
        for seq in 50..200 {
            t.on_sent(seq); // more than the capacity: the bitmap grows
        }
        assert_eq!(t.on_echo(49), Echo::Outside);
        assert_eq!(t.on_echo(200), Echo::Outside);
        assert_eq!(t.on_echo(199), Echo::Counted);
        assert_eq!(t.on_echo(50), Echo::Counted);
        assert_eq!(t.lost(), 148);
    }

    #[test]
    fn rfc3550_jitter_on_a_known_sequence() {
        // Sent every 20 ms; transit 10, 12, 11, 15, 15 ms.
        // D = 2, 1, 4, 0 ms; J = J + (|D| − J)/16 step by step:
        // 0.125, 0.1796875, 0.418457..., 0.392303... ms.
        let mut j = Jitter::default();
        assert_eq!(j.value_ns(), None);
        let ms = 1_000_000u64;
        let transits = [10, 12, 11, 15, 15];
        let mut expected = 0.0f64;
        let mut last: Option<f64> = None;
        for (i, t) in transits.iter().enumerate() {
            let sent = i as u64 * 20 * ms;
            j.on_arrival(sent, sent + t * ms);
            let transit = (*t * ms) as f64;
            if let Some(l) = last {
                expected += ((transit - l).abs() - expected) / 16.0;
            }
            last = Some(transit);
        }
        let got = j.value_ns().unwrap();
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        // The hand-computed value, independent of the loop above.
        assert!((got - 392_303.466_796_875).abs() < 1e-3, "{got}");
    }

    #[test]
    fn constant_transit_has_no_jitter() {
        let mut j = Jitter::default();
        for i in 0..100u64 {
            j.on_arrival(i * 1000, i * 1000 + 500);
        }
        assert_eq!(j.value_ns(), Some(0.0));
    }
}
