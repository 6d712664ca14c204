//! Sender and receiver reports (RFC 3550 §6.4.1 SR, §6.4.2 RR) and their
//! report blocks: read from publishers and viewers, written by uturn as the
//! publisher's receiver and as each viewer's sender.
//!
//! ```text
//! SR: header(PT=200, RC) | SSRC | NTP msw | NTP lsw | RTP ts | packets | octets | RC x block
//! RR: header(PT=201, RC) | SSRC | RC x block
//! block: SSRC | fraction lost (8) | cumulative lost (24, signed) | extended highest seq |
//!        jitter | LSR | DLSR                                          (24 octets)
//! ```

use super::{be_u32, packet_type, write_header, HEADER_LEN};
use crate::Error;

/// Octets of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Octets of the sender info including the sender's SSRC (RFC 3550 §6.4.1).
const SENDER_INFO_LEN: usize = 24;
/// The 5-bit report count field's limit (RFC 3550 §6.4.1).
pub const MAX_REPORTS: usize = 31;

/// The sender-info part of an SR (RFC 3550 §6.4.1), for writing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (RFC 3550 §4), see [`crate::stats::ntp_from`].
    pub ntp: u64,
    /// The same instant in the stream's RTP clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since reception began; signed 24 bits on the wire
    /// (duplicates can make it negative), clamped when written.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 seconds.
    pub dlsr: u32,
}

impl ReportBlock {
    /// Largest and smallest values of the signed 24-bit cumulative-lost field.
    const LOST_MAX: i32 = 0x7f_ffff;
    const LOST_MIN: i32 = -0x80_0000;

    fn read(b: &[u8; REPORT_BLOCK_LEN]) -> Self {
        // Sign-extend the 24-bit field through the top of an i32.
        let cumulative_lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
        Self {
            ssrc: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            jitter: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            lsr: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
            dlsr: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        }
    }

    fn write(&self, out: &mut [u8; REPORT_BLOCK_LEN]) {
        let lost = self.cumulative_lost.clamp(Self::LOST_MIN, Self::LOST_MAX);
        let [_, l0, l1, l2] = lost.to_be_bytes();
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&[self.fraction_lost, l0, l1, l2]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    blocks: std::slice::ChunksExact<'a, u8>,
}

impl<'a> ReportBlocks<'a> {
    fn new(blocks: &'a [u8]) -> Self {
        Self {
            blocks: blocks.chunks_exact(REPORT_BLOCK_LEN),
        }
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let chunk = self.blocks.next()?;
        chunk.first_chunk().map(ReportBlock::read)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.blocks.size_hint()
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// A checked view of a sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy)]
pub struct SenderReport<'a> {
    /// Body after the common header, padding removed; at least the sender
    /// info and the counted blocks (checked by `parse`).
    body: &'a [u8],
    count: u8,
}

impl<'a> SenderReport<'a> {
    /// `body` follows the common header; profile-specific extensions after
    /// the blocks are allowed and ignored.
    pub(crate) fn parse(count: u8, body: &'a [u8]) -> Result<Self, Error> {
        if body.len() < SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(count) {
            return Err(Error::BadLength);
        }
        Ok(Self { body, count })
    }

    pub fn ssrc(&self) -> u32 {
        be_u32(self.body, 0)
    }

    /// The 64-bit NTP timestamp (RFC 3550 §4).
    pub fn ntp(&self) -> u64 {
        u64::from(be_u32(self.body, 4)) << 32 | u64::from(be_u32(self.body, 8))
    }

    pub fn rtp_timestamp(&self) -> u32 {
        be_u32(self.body, 12)
    }

    pub fn packet_count(&self) -> u32 {
        be_u32(self.body, 16)
    }

    pub fn octet_count(&self) -> u32 {
        be_u32(self.body, 20)
    }

    /// All sender-info fields at once.
    pub fn info(&self) -> SenderInfo {
        SenderInfo {
            ssrc: self.ssrc(),
            ntp: self.ntp(),
            rtp_timestamp: self.rtp_timestamp(),
            packet_count: self.packet_count(),
            octet_count: self.octet_count(),
        }
    }

    pub fn reports(&self) -> ReportBlocks<'a> {
        let end = SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(self.count);
        ReportBlocks::new(self.body.get(SENDER_INFO_LEN..end).unwrap_or_default())
    }
}

/// A checked view of a receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, Copy)]
pub struct ReceiverReport<'a> {
    /// Body after the common header: the SSRC and the counted blocks (checked by `parse`).
    body: &'a [u8],
    count: u8,
}

impl<'a> ReceiverReport<'a> {
    pub(crate) fn parse(count: u8, body: &'a [u8]) -> Result<Self, Error> {
        if body.len() < 4 + REPORT_BLOCK_LEN * usize::from(count) {
            return Err(Error::BadLength);
        }
        Ok(Self { body, count })
    }

    pub fn ssrc(&self) -> u32 {
        be_u32(self.body, 0)
    }

    pub fn reports(&self) -> ReportBlocks<'a> {
        let end = 4 + REPORT_BLOCK_LEN * usize::from(self.count);
        ReportBlocks::new(self.body.get(4..end).unwrap_or_default())
    }
}

/// Writes a sender report with `reports` (at most 31) and returns its length.
pub fn write_sr(
    dst: &mut [u8],
    info: &SenderInfo,
    reports: &[ReportBlock],
) -> Result<usize, Error> {
    let fixed = HEADER_LEN + SENDER_INFO_LEN;
    let out = report_buffer(dst, fixed, reports)?;
    let (head, blocks) = out.split_at_mut(fixed);
    write_header(
        head,
        reports.len() as u8,
        packet_type::SR,
        fixed + blocks.len(),
    )?;
    let fields = [
        info.ssrc,
        (info.ntp >> 32) as u32,
        info.ntp as u32,
        info.rtp_timestamp,
        info.packet_count,
        info.octet_count,
    ];
    for (field, out) in fields.iter().zip(head[HEADER_LEN..].chunks_exact_mut(4)) {
        out.copy_from_slice(&field.to_be_bytes());
    }
    write_blocks(blocks, reports);
    Ok(fixed + blocks.len())
}

/// Writes a receiver report with `reports` (at most 31) and returns its length.
pub fn write_rr(dst: &mut [u8], sender_ssrc: u32, reports: &[ReportBlock]) -> Result<usize, Error> {
    let fixed = HEADER_LEN + 4;
    let out = report_buffer(dst, fixed, reports)?;
    let (head, blocks) = out.split_at_mut(fixed);
    write_header(
        head,
        reports.len() as u8,
        packet_type::RR,
        fixed + blocks.len(),
    )?;
    head[HEADER_LEN..].copy_from_slice(&sender_ssrc.to_be_bytes());
    write_blocks(blocks, reports);
    Ok(fixed + blocks.len())
}

/// The exact slice of `dst` an SR or RR with `fixed` octets before its blocks takes.
fn report_buffer<'d>(
    dst: &'d mut [u8],
    fixed: usize,
    reports: &[ReportBlock],
) -> Result<&'d mut [u8], Error> {
    if reports.len() > MAX_REPORTS {
        return Err(Error::TooManyReports);
    }
    let total = fixed + REPORT_BLOCK_LEN * reports.len();
    dst.get_mut(..total).ok_or(Error::BufferTooSmall)
}

fn write_blocks(out: &mut [u8], reports: &[ReportBlock]) {
    for (block, chunk) in reports.iter().zip(out.chunks_exact_mut(REPORT_BLOCK_LEN)) {
        if let Some(chunk) = chunk.first_chunk_mut() {
            block.write(chunk);
        }
    }
}
