//! Packet index estimation and the replay window.
//!
//! - [`estimate_index`]: RFC 3711 §3.3.1 and Appendix A, the receiver's
//!   guess of the rollover counter (ROC) from the 16-bit sequence number and
//!   the highest index seen so far.
//! - [`ReplayWindow`]: RFC 3711 §3.3.2, a sliding bitmap of the last
//!   [`WINDOW`] indices below the highest authenticated one. It is used for
//!   SRTP's 48-bit index and SRTCP's 31-bit index alike.
//!
//! Both are split into a pure check and an update so the caller can verify
//! the tag between them: a forged packet must move neither the ROC nor the
//! window (RFC 3711 §3.3 step 7 updates only after authentication).

use crate::error::Error;

/// Replay window size in packets. RFC 3711 §3.3.2 requires at least 64;
/// 128 (libsrtp's default for browsers) tolerates more reordering and still
/// fits one `u128`.
pub const WINDOW: u64 = 128;

/// Largest SRTP packet index (48 bits, RFC 3711 §3.3.1).
pub const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// The packet index `SEQ` most likely belongs to, given the highest index
/// seen so far (RFC 3711 Appendix A): whichever of ROC-1, ROC and ROC+1
/// puts it closest to `highest`. ROC-1 is not taken below zero, nor ROC+1
/// above 2^32-1.
pub fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = highest & 0xffff;
    let seq = u64::from(seq);
    let v = if s_l < 0x8000 {
        if seq > s_l + 0x8000 && roc > 0 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq && roc < u64::from(u32::MAX) {
        roc + 1
    } else {
        roc
    };
    (v << 16) | seq
}

/// Received-packet bookkeeping for one SSRC (RFC 3711 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest authenticated index.
    highest: u64,
    /// Bit `i` set: index `highest - i` was received.
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first authenticated packet had `index`.
    pub fn new(index: u64) -> ReplayWindow {
        ReplayWindow {
            highest: index,
            seen: 1,
        }
    }

    /// The highest authenticated index.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// `Err(Replay)` if `index` was already received or is older than the
    /// window. Changes nothing.
    pub fn check(&self, index: u64) -> Result<(), Error> {
        if index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= WINDOW || self.seen & (1u128 << age) != 0 {
            return Err(Error::Replay);
        }
        Ok(())
    }

    /// Records `index` as received; call only after the packet authenticated
    /// and [`check`](Self::check) passed.
    pub fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = index;
        } else {
            let age = self.highest - index;
            if age < WINDOW {
                self.seen |= 1u128 << age;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_follows_the_sequence_number() {
        assert_eq!(estimate_index(100, 101), 101);
        assert_eq!(estimate_index(100, 50), 50);
        // s_l < 2^15 and SEQ far above it with ROC = 0: stays in ROC 0.
        assert_eq!(estimate_index(5, 65530), 65530);
    }

    #[test]
    fn rollover_forward_and_back() {
        // Highest was 65535 with ROC 0; seq 0 is the next packet, ROC 1.
        assert_eq!(estimate_index(65535, 0), 1 << 16);
        assert_eq!(estimate_index(65535, 10), (1 << 16) | 10);
        // Highest is seq 2 with ROC 1; a late 65534 is from ROC 0.
        let highest = (1 << 16) | 2;
        assert_eq!(estimate_index(highest, 65534), 65534);
        // ROC 7, s_l in the upper half, SEQ small: ROC 8.
        assert_eq!(estimate_index((7 << 16) | 40000, 100), (8 << 16) | 100);
        // ROC 7, s_l in the upper half, SEQ just below: ROC 7.
        assert_eq!(estimate_index((7 << 16) | 40000, 39000), (7 << 16) | 39000);
    }

    #[test]
    fn roc_saturates_at_the_top() {
        let top = (u64::from(u32::MAX) << 16) | 65000;
        assert_eq!(estimate_index(top, 3), (u64::from(u32::MAX) << 16) | 3);
    }

    #[test]
    fn window_rejects_duplicates_and_old_accepts_reordered() {
        let mut w = ReplayWindow::new(1000);
        assert_eq!(w.check(1000), Err(Error::Replay));
        assert_eq!(w.check(1001), Ok(()));
        w.accept(1001);
        w.accept(1005);
        // Out of order inside the window: accepted once.
        assert_eq!(w.check(1003), Ok(()));
        w.accept(1003);
        assert_eq!(w.check(1003), Err(Error::Replay));
        assert_eq!(w.check(1001), Err(Error::Replay));
        assert_eq!(w.check(1002), Ok(()));
        // 1005 - 128 = 877 is just out of the window, 878 just in.
        assert_eq!(w.check(877), Err(Error::Replay));
        assert_eq!(w.check(878), Ok(()));
        assert_eq!(w.highest(), 1005);
    }

    #[test]
    fn big_jump_clears_the_window() {
        let mut w = ReplayWindow::new(10);
        w.accept(10_000);
        assert_eq!(w.check(10_000), Err(Error::Replay));
        assert_eq!(w.check(9_999), Ok(()));
        assert_eq!(w.check(10), Err(Error::Replay));
        // An accept of something older than the window changes nothing.
        let before = w;
        w.accept(5);
        assert_eq!(w, before);
    }
}
