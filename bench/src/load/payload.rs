//! The probe every original datagram carries, so the originator can match
//! an echo to what it sent and time the round trip.
//!
//! Layout (big endian), then filler up to the payload size:
//!
//! ```text
//!  0..3   magic "uLd"    (tells our probes from stray datagrams)
//!  3      flags          (bit 0: scheduled inside the measured window)
//!  4..8   session id     (index of the session in the whole run)
//!  8..16  sequence number (0, 1, 2, … per session and direction of origin)
//! 16..24  send time      (ns on the generator's monotonic clock)
//! ```
//!
//! The echoer returns the payload unchanged, so the same bytes come back.
//! Whether an original counts is decided once, by the originator, from its
//! *scheduled* send time, and travels in the flags: a send that runs late
//! across a window boundary cannot make the legs' counts disagree.
//! Nothing here allocates: probes are written into and read from caller
//! buffers.

/// Marks a probe (ASCII "uLd").
const MAGIC: [u8; 3] = *b"uLd";
/// Flag: the original belongs to the measured window.
const FLAG_MEASURED: u8 = 0x01;

/// Bytes of the probe header; the smallest payload the generator accepts.
pub const PROBE_LEN: usize = 24;

/// The header of one original datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Session index in the run.
    pub session: u32,
    /// Per-session sequence number.
    pub seq: u64,
    /// When the originator sent it (monotonic ns).
    pub sent_ns: u64,
    /// Scheduled inside the measured window: counted on every leg.
    pub measured: bool,
}

impl Probe {
    /// Writes the probe into the first [`PROBE_LEN`] bytes of `payload`;
    /// the rest is left as it is (the filler). Returns false, writing
    /// nothing, when `payload` is shorter than a probe.
    pub fn write(&self, payload: &mut [u8]) -> bool {
        let Some(head) = payload.get_mut(..PROBE_LEN) else {
            return false;
        };
        head[0..3].copy_from_slice(&MAGIC);
        head[3] = if self.measured { FLAG_MEASURED } else { 0 };
        head[4..8].copy_from_slice(&self.session.to_be_bytes());
        head[8..16].copy_from_slice(&self.seq.to_be_bytes());
        head[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        true
    }

    /// Reads a probe from a received payload; `None` for anything that is
    /// not one of ours (short, or without the magic).
    pub fn read(payload: &[u8]) -> Option<Probe> {
        let head: &[u8; PROBE_LEN] = payload.get(..PROBE_LEN)?.try_into().ok()?;
        if head[0..3] != MAGIC {
            return None;
        }
        Some(Probe {
            session: u32::from_be_bytes(head[4..8].try_into().ok()?),
            seq: u64::from_be_bytes(head[8..16].try_into().ok()?),
            sent_ns: u64::from_be_bytes(head[16..24].try_into().ok()?),
            measured: head[3] & FLAG_MEASURED != 0,
        })
    }
}

/// Fills a payload buffer once, before the run: a repeating byte ramp after
/// the probe header, so the bytes on the wire are not all zeros (which some
/// paths compress or special-case).
pub fn fill(payload: &mut [u8]) {
    for (i, b) in payload.iter_mut().enumerate().skip(PROBE_LEN) {
        *b = (i % 251) as u8; // 251 is prime: no alignment with headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trips_and_keeps_the_filler() {
        let mut buf = vec![0u8; 300];
        fill(&mut buf);
        let probe = Probe {
            session: 0x0102_0304,
            seq: 0x1122_3344_5566_7788,
            sent_ns: 987_654_321_000,
            measured: true,
        };
        assert!(probe.write(&mut buf));
        assert_eq!(buf.len(), 300, "the payload size is exact");
        assert_eq!(&buf[..4], b"uLd\x01");
        assert_eq!(&buf[4..8], &[1, 2, 3, 4]);
        assert_eq!(Probe::read(&buf), Some(probe));
        let unmeasured = Probe {
            measured: false,
            ..probe
        };
        assert!(unmeasured.write(&mut buf));
        assert_eq!(buf[3], 0);
        assert_eq!(Probe::read(&buf), Some(unmeasured));
        assert_eq!(buf[PROBE_LEN], (PROBE_LEN % 251) as u8);
        assert_eq!(buf[260], 9, "the ramp wraps at 251");
    }

    #[test]
    fn short_or_foreign_payloads_are_not_probes() {
        let mut short = [0u8; PROBE_LEN - 1];
        let probe = Probe {
            session: 1,
            seq: 2,
            sent_ns: 3,
            measured: false,
        };
        assert!(!probe.write(&mut short));
        assert_eq!(short, [0u8; PROBE_LEN - 1]);
        assert_eq!(Probe::read(&short), None);
        let mut buf = [0u8; PROBE_LEN];
        assert!(probe.write(&mut buf));
        buf[0] ^= 0xff;
        assert_eq!(Probe::read(&buf), None);
        assert_eq!(Probe::read(&[]), None);
    }
}
