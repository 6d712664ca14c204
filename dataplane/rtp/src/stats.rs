//! RTP statistics for the reports uturn writes: per received SSRC the
//! sequence tracking, loss and jitter of RFC 3550 Appendix A.1, A.3 and A.8
//! (for receiver reports to the publisher, §6.4.2), per sent SSRC the packet
//! and octet counts of a sender report (§6.4.1), and the NTP timestamp
//! format of §4.
//!
//! No clock is read here: arrival times come in as `Instant`s and wall-clock
//! time as a `Duration` since the UNIX epoch.

use std::time::{Duration, Instant};

use crate::rtcp::{ReportBlock, SenderInfo};

/// Sequence numbers a packet may jump ahead and still count as in order
/// (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers a packet may lag and count as reordered (A.1 `MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;
/// In-order packets a new source must send before it counts (A.1 `MIN_SEQUENTIAL`).
const MIN_SEQUENTIAL: u32 = 2;
/// One sequence-number cycle (A.1 `RTP_SEQ_MOD`).
const SEQ_MOD: u32 = 1 << 16;

/// Seconds from the NTP epoch (1900-01-01) to the UNIX epoch (1970-01-01),
/// RFC 5905 §6 / RFC 868.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Reception statistics of one RTP source (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    /// `None` until the first packet.
    epoch: Option<Instant>,
    max_seq: u16,
    /// Sequence-number wraps, shifted left 16 (A.1 `cycles`).
    cycles: u32,
    base_seq: u32,
    /// The sequence number after a large jump; if the next packet has it, the
    /// source restarted (A.1 `bad_seq`). Above 16 bits when unset.
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet (A.8), once known.
    transit: Option<u32>,
    /// Interarrival jitter scaled by 16 (A.8), in RTP timestamp units.
    jitter_x16: u32,
}

impl ReceiverStats {
    /// Statistics for a source whose RTP clock runs at `clock_rate` Hz
    /// (90000 for video, 48000 for Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            epoch: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_x16: 0,
        }
    }

    /// Accounts one received packet. Returns whether it counted: a new source
    /// is on probation until `MIN_SEQUENTIAL` packets arrived in order, and a
    /// jump of more than `MAX_DROPOUT` counts only when the packet after it
    /// confirms it (then the source is taken as restarted), RFC 3550 A.1.
    pub fn on_packet(&mut self, seq: u16, rtp_timestamp: u32, arrival: Instant) -> bool {
        let epoch = match self.epoch {
            Some(epoch) => epoch,
            None => {
                // A.1: the first packet starts probation as if it followed seq - 1.
                self.max_seq = seq.wrapping_sub(1);
                self.epoch = Some(arrival);
                arrival
            }
        };
        if !self.update_seq(seq) {
            return false;
        }
        self.update_jitter(epoch, rtp_timestamp, arrival);
        true
    }

    /// A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> bool {
        let delta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.restart(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if delta < MAX_DROPOUT {
            // In order, with a permissible gap; a smaller number means it wrapped.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(delta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two packets in a row after a big jump: the sender restarted.
                self.restart(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, max_seq kept.
        self.received = self.received.wrapping_add(1);
        true
    }

    /// A.1 `init_seq`.
    fn restart(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
    }

    /// A.8: J += (|D| - J) / 16, kept scaled by 16 to stay in integers.
    fn update_jitter(&mut self, epoch: Instant, rtp_timestamp: u32, arrival: Instant) {
        let elapsed = arrival.saturating_duration_since(epoch);
        // Arrival time in RTP units; only differences matter, so wrapping is fine.
        let arrival_units =
            (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_units.wrapping_sub(rtp_timestamp);
        if let Some(previous) = self.transit {
            let d = i64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            let jitter = i64::from(self.jitter_x16);
            self.jitter_x16 =
                (jitter + d - ((jitter + 8) >> 4)).clamp(0, i64::from(u32::MAX)) as u32;
        }
        self.transit = Some(transit);
    }

    /// Whether the source passed probation (some packet counted).
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Extended highest sequence number received (A.1: cycles + max_seq).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets counted since the source (re)started, duplicates included.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected since the source (re)started (A.3).
    pub fn expected(&self) -> u32 {
        if !self.is_valid() {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (A.3): expected minus received, negative with duplicates.
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Interarrival jitter in RTP timestamp units (A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter_x16 >> 4
    }

    /// The report block for this source (RFC 3550 §6.4.1, A.3), and the start
    /// of the next report interval. `lsr` and `dlsr` describe the source's
    /// last SR (see [`ntp_short`] and [`dlsr_from`]); 0 when none arrived.
    pub fn report_block(&mut self, ssrc: u32, lsr: u32, dlsr: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // lost_interval <= expected_interval, so the fraction is below 256.
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

/// What a sender report says about one sent SSRC (RFC 3550 §6.4.1): packets
/// and payload octets sent, both wrapping at 2^32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    packet_count: u32,
    octet_count: u32,
}

impl SenderStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts one sent packet with `payload_len` payload octets (header
    /// and padding excluded, as §6.4.1 counts them).
    pub fn on_packet(&mut self, payload_len: usize) {
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add(payload_len as u32);
    }

    pub fn packet_count(&self) -> u32 {
        self.packet_count
    }

    pub fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// The sender info of an SR for `ssrc` at `ntp` / `rtp_timestamp`.
    pub fn sender_info(&self, ssrc: u32, ntp: u64, rtp_timestamp: u32) -> SenderInfo {
        SenderInfo {
            ssrc,
            ntp,
            rtp_timestamp,
            packet_count: self.packet_count,
            octet_count: self.octet_count,
        }
    }
}

/// The 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900 in the high 32
/// bits, the fraction of a second in the low 32) for `unix`, the time since
/// the UNIX epoch. The seconds wrap in 2036 as NTP era 0 does.
pub fn ntp_from(unix: Duration) -> u64 {
    let seconds = unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) as u32;
    let fraction = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    u64::from(seconds) << 32 | fraction
}

/// The middle 32 bits of an NTP timestamp: the LSR field of a report block
/// (RFC 3550 §6.4.1) for an SR carrying `ntp`.
pub fn ntp_short(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// `delay` in the DLSR field's unit, 1/65536 seconds (RFC 3550 §6.4.1),
/// saturating.
pub fn dlsr_from(delay: Duration) -> u32 {
    let units = (delay.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seqs` with a 90 kHz timestamp step of 3000 and arrivals every
    /// 1/30 s, so there is no jitter.
    fn feed(stats: &mut ReceiverStats, start: Instant, seqs: &[u16]) -> Vec<bool> {
        seqs.iter()
            .map(|&seq| {
                let n = u32::from(seq);
                let arrival = start + Duration::from_micros(u64::from(n) * 1_000_000 / 30);
                stats.on_packet(seq, n * 3000, arrival)
            })
            .collect()
    }

    #[test]
    fn new_source_is_on_probation_for_one_packet() {
        // A.1 with MIN_SEQUENTIAL = 2: the first packet is not counted, the
        // second validates the source and becomes the base.
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        assert!(!stats.is_valid());
        assert_eq!(stats.expected(), 0);
        assert_eq!(feed(&mut stats, start, &[1000]), vec![false]);
        assert_eq!(feed(&mut stats, start, &[1001, 1002]), vec![true, true]);
        assert!(stats.is_valid());
        assert_eq!(stats.received(), 2);
        assert_eq!(stats.expected(), 2);
        assert_eq!(stats.extended_highest_seq(), 1002);
        assert_eq!(stats.cumulative_lost(), 0);
    }

    #[test]
    fn out_of_order_start_restarts_probation() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        // 10 then 12: 12 is not 11, probation starts over at 12; 13 validates.
        assert_eq!(
            feed(&mut stats, start, &[10, 12, 13, 14]),
            vec![false, false, true, true]
        );
        assert_eq!(stats.expected(), 2);
    }

    #[test]
    fn loss_and_fraction_per_interval() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        // Base 1001; 1005 and 1006 lost; highest 1010.
        feed(
            &mut stats,
            start,
            &[1000, 1001, 1002, 1003, 1004, 1007, 1008, 1009, 1010],
        );
        assert_eq!(stats.expected(), 10);
        assert_eq!(stats.received(), 8);
        let block = stats.report_block(0xabc, 0x1234_5678, 0x0001_0000);
        // A.3: fraction = (lost_interval << 8) / expected_interval = 512 / 10 = 51.
        assert_eq!(
            block,
            ReportBlock {
                ssrc: 0xabc,
                fraction_lost: 51,
                cumulative_lost: 2,
                highest_seq: 1010,
                jitter: 0,
                lsr: 0x1234_5678,
                dlsr: 0x0001_0000,
            }
        );
        // Next interval: 10 more, none lost; the cumulative count stays.
        let seqs: Vec<u16> = (1011..1021).collect();
        feed(&mut stats, start, &seqs);
        let block = stats.report_block(0xabc, 0, 0);
        assert_eq!(block.fraction_lost, 0);
        assert_eq!(block.cumulative_lost, 2);
        assert_eq!(block.highest_seq, 1020);
        // An interval with nothing received reports no loss.
        assert_eq!(stats.report_block(0xabc, 0, 0).fraction_lost, 0);
    }

    #[test]
    fn duplicates_make_loss_negative() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        feed(&mut stats, start, &[1, 2, 3, 3]);
        assert_eq!(stats.received(), 3);
        assert_eq!(stats.expected(), 2);
        assert_eq!(stats.cumulative_lost(), -1);
        let block = stats.report_block(1, 0, 0);
        assert_eq!(block.cumulative_lost, -1);
        assert_eq!(block.fraction_lost, 0);
    }

    #[test]
    fn sequence_wrap_counts_a_cycle() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        let results = feed(&mut stats, start, &[65533, 65534, 65535, 0, 1]);
        assert_eq!(results, vec![false, true, true, true, true]);
        // One cycle (65536) plus max_seq 1.
        assert_eq!(stats.extended_highest_seq(), 65537);
        assert_eq!(stats.expected(), 4);
        assert_eq!(stats.cumulative_lost(), 0);
    }

    #[test]
    fn late_packets_count_without_moving_the_maximum() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        feed(&mut stats, start, &[100, 101, 103, 102]);
        assert_eq!(stats.extended_highest_seq(), 103);
        assert_eq!(stats.received(), 3);
        assert_eq!(stats.cumulative_lost(), 0);
    }

    #[test]
    fn big_jump_needs_confirmation_then_restarts() {
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        feed(&mut stats, start, &[100, 101, 102]);
        // 5000 ahead (> MAX_DROPOUT): not counted; the packet after it confirms a restart.
        assert_eq!(feed(&mut stats, start, &[5102]), vec![false]);
        assert_eq!(stats.extended_highest_seq(), 102);
        assert_eq!(feed(&mut stats, start, &[5103]), vec![true]);
        assert_eq!(stats.extended_highest_seq(), 5103);
        assert_eq!(stats.received(), 1);
        assert_eq!(stats.expected(), 1);
        // A lone stray far behind (beyond MAX_MISORDER) is not counted.
        assert_eq!(feed(&mut stats, start, &[2000]), vec![false]);
        assert_eq!(stats.received(), 1);
    }

    #[test]
    fn jitter_follows_a_8() {
        // 90 kHz, 20 ms frames (1800 ticks). Packet 4 arrives 10 ms (900
        // ticks) late, packet 5 on time: |D| = 900 both times. A.8's integer
        // form keeps 16 J: 0 + 900 - (8 >> 4) = 900, reported 900 >> 4 = 56;
        // then 900 + 900 - (908 >> 4) = 1744, reported 109 (the real-valued
        // J = J + (|D| - J) / 16 gives 56.25, then 108.98).
        let mut stats = ReceiverStats::new(90_000);
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        assert!(!stats.on_packet(1, 0, ms(0)));
        assert!(stats.on_packet(2, 1800, ms(20)));
        assert!(stats.on_packet(3, 3600, ms(40)));
        assert_eq!(stats.jitter(), 0);
        assert!(stats.on_packet(4, 5400, ms(70)));
        assert_eq!(stats.jitter(), 56);
        assert!(stats.on_packet(5, 7200, ms(80)));
        assert_eq!(stats.jitter(), 109);
        assert_eq!(stats.report_block(7, 0, 0).jitter, 109);
    }

    #[test]
    fn sender_stats_count_and_wrap() {
        let mut stats = SenderStats::new();
        stats.on_packet(1000);
        stats.on_packet(200);
        assert_eq!(stats.packet_count(), 2);
        assert_eq!(stats.octet_count(), 1200);
        let info = stats.sender_info(5, 0x1_0000_0000, 90);
        assert_eq!(
            (info.ssrc, info.ntp, info.rtp_timestamp),
            (5, 0x1_0000_0000, 90)
        );
        assert_eq!((info.packet_count, info.octet_count), (2, 1200));
        // Counts wrap at 2^32 (RFC 3550 §6.4.1).
        stats.octet_count = u32::MAX;
        stats.on_packet(2);
        assert_eq!(stats.octet_count(), 1);
    }

    #[test]
    fn ntp_timestamps() {
        // The UNIX epoch is 2 208 988 800 s after the NTP epoch (RFC 868).
        assert_eq!(ntp_from(Duration::ZERO), 0x83aa_7e80_0000_0000);
        // Half a second is 2^31 in the 32-bit fraction.
        assert_eq!(ntp_from(Duration::from_millis(1500)), 0x83aa_7e81_8000_0000);
        // 2001-09-09T01:46:40Z: 3 208 988 800 = 0xbf45_4880.
        assert_eq!(
            ntp_from(Duration::from_secs(1_000_000_000)) >> 32,
            0xbf45_4880
        );
        // Era 0 ends in 2036: the seconds wrap.
        let era_end = Duration::from_secs((1u64 << 32) - 2_208_988_800);
        assert_eq!(ntp_from(era_end), 0);
        assert_eq!(ntp_short(0x0123_4567_89ab_cdef), 0x4567_89ab);
        assert_eq!(dlsr_from(Duration::from_millis(1500)), 0x0001_8000);
        assert_eq!(dlsr_from(Duration::from_secs(1 << 20)), u32::MAX);
    }
}
