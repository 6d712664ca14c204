//! RTCP feedback messages the relay acts on: Picture Loss Indication (RFC
//! 4585 §6.3.1) and Full Intra Request (RFC 5104 §4.3.1) ask the publisher
//! for a keyframe; generic NACK (RFC 4585 §6.2.1) asks for retransmissions.
//!
//! ```text
//! header(FMT, PT=205|206) | SSRC of packet sender | SSRC of media source | FCI ...
//! NACK FCI: PID (16) | BLP (16)         one or more; BLP bit i = PID + i + 1 lost
//! FIR  FCI: SSRC | seq nr (8) | reserved (24)   one or more; media source SSRC is 0
//! PLI: no FCI
//! ```

use super::{be_u32, fmt, packet_type, write_header, Packet, HEADER_LEN};
use crate::Error;

/// Octets of the common feedback header after the RTCP header: the two SSRCs.
const SSRCS_LEN: usize = 8;
/// Octets of one FIR entry (RFC 5104 §4.3.1.1).
const FIR_ENTRY_LEN: usize = 8;
/// Octets of one NACK pair (RFC 4585 §6.2.1).
const NACK_PAIR_LEN: usize = 4;

/// Parses the body of an RTPFB or PSFB packet (after the RTCP header,
/// padding removed). Formats uturn does not act on become [`Packet::Other`].
pub(crate) fn parse(packet_type: u8, fmt: u8, body: &[u8]) -> Result<Packet<'_>, Error> {
    if body.len() < SSRCS_LEN {
        return Err(Error::BadLength);
    }
    let sender_ssrc = be_u32(body, 0);
    let media_ssrc = be_u32(body, 4);
    let fci = body.get(SSRCS_LEN..).unwrap_or_default();
    Ok(match (packet_type, fmt) {
        (packet_type::PSFB, fmt::PLI) => Packet::Pli {
            sender_ssrc,
            media_ssrc,
        },
        (packet_type::PSFB, fmt::FIR) => {
            if fci.is_empty() || fci.len() % FIR_ENTRY_LEN != 0 {
                return Err(Error::BadLength);
            }
            Packet::Fir {
                sender_ssrc,
                entries: FirEntries {
                    fci: fci.chunks_exact(FIR_ENTRY_LEN),
                },
            }
        }
        (packet_type::RTPFB, fmt::NACK) => {
            // One or more whole pairs (padding removal can leave a partial one).
            if fci.is_empty() || fci.len() % NACK_PAIR_LEN != 0 {
                return Err(Error::BadLength);
            }
            Packet::Nack(Nack {
                sender_ssrc,
                media_ssrc,
                fci,
            })
        }
        _ => Packet::Other { packet_type, fmt },
    })
}

/// One FIR request: the SSRC that should send a keyframe, and the command
/// sequence number that tells a repeated request from a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    pub ssrc: u32,
    pub seq_nr: u8,
}

/// Iterator over the entries of a FIR (RFC 5104 §4.3.1.1).
#[derive(Debug, Clone)]
pub struct FirEntries<'a> {
    fci: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for FirEntries<'_> {
    type Item = FirEntry;

    fn next(&mut self) -> Option<FirEntry> {
        let entry = self.fci.next()?;
        Some(FirEntry {
            ssrc: be_u32(entry, 0),
            seq_nr: entry.get(4).copied().unwrap_or_default(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fci.size_hint()
    }
}

/// A checked view of a generic NACK (RFC 4585 §6.2.1).
#[derive(Debug, Clone, Copy)]
pub struct Nack<'a> {
    sender_ssrc: u32,
    media_ssrc: u32,
    /// One or more 4-octet (PID, BLP) pairs.
    fci: &'a [u8],
}

impl<'a> Nack<'a> {
    pub fn sender_ssrc(&self) -> u32 {
        self.sender_ssrc
    }

    /// The SSRC whose packets were lost.
    pub fn media_ssrc(&self) -> u32 {
        self.media_ssrc
    }

    /// The (PID, BLP) pairs as sent.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.fci.chunks_exact(NACK_PAIR_LEN).map(|pair| {
            let word = be_u32(pair, 0);
            ((word >> 16) as u16, word as u16)
        })
    }

    /// Every lost sequence number, pair by pair, ascending within a pair.
    pub fn lost(&self) -> NackLost<'a> {
        NackLost {
            fci: self.fci,
            pid: 0,
            mask: 0,
        }
    }
}

/// Iterator over the sequence numbers a NACK reports lost.
#[derive(Debug, Clone)]
pub struct NackLost<'a> {
    fci: &'a [u8],
    pid: u16,
    /// Bit i set: `pid + i` is lost still to be yielded (bit 0 is the PID itself).
    mask: u32,
}

impl Iterator for NackLost<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        while self.mask == 0 {
            let (pair, rest) = self.fci.split_first_chunk::<NACK_PAIR_LEN>()?;
            self.fci = rest;
            self.pid = u16::from_be_bytes([pair[0], pair[1]]);
            self.mask = 1 | u32::from(u16::from_be_bytes([pair[2], pair[3]])) << 1;
        }
        let offset = self.mask.trailing_zeros();
        self.mask &= self.mask - 1;
        Some(self.pid.wrapping_add(offset as u16))
    }
}

/// Writes a PLI (RFC 4585 §6.3.1): 12 octets.
pub fn write_pli(dst: &mut [u8], sender_ssrc: u32, media_ssrc: u32) -> Result<usize, Error> {
    const LEN: usize = HEADER_LEN + SSRCS_LEN;
    let out = dst.get_mut(..LEN).ok_or(Error::BufferTooSmall)?;
    write_header(out, fmt::PLI, packet_type::PSFB, LEN)?;
    out[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    Ok(LEN)
}

/// Writes a FIR (RFC 5104 §4.3.1) asking `media_ssrc` for a keyframe: 20
/// octets. The header's media source SSRC is 0 as §4.3.1.2 says; the
/// requested SSRC is in the one FCI entry.
pub fn write_fir(
    dst: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    seq_nr: u8,
) -> Result<usize, Error> {
    const LEN: usize = HEADER_LEN + SSRCS_LEN + FIR_ENTRY_LEN;
    let out = dst.get_mut(..LEN).ok_or(Error::BufferTooSmall)?;
    write_header(out, fmt::FIR, packet_type::PSFB, LEN)?;
    out[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    out[8..12].fill(0);
    out[12..16].copy_from_slice(&media_ssrc.to_be_bytes());
    out[16..20].copy_from_slice(&[seq_nr, 0, 0, 0]);
    Ok(LEN)
}

/// Writes a generic NACK (RFC 4585 §6.2.1) for the sequence numbers in
/// `lost` and returns its length. Each number within 16 after the current
/// pair's PID joins its bitmask, any other starts a new pair, so sorted
/// input packs tightly and unsorted input is still reported exactly;
/// repeated numbers are reported once when adjacent.
pub fn write_nack(
    dst: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    lost: &[u16],
) -> Result<usize, Error> {
    const FIXED: usize = HEADER_LEN + SSRCS_LEN;
    if lost.is_empty() {
        return Err(Error::EmptyNack);
    }
    let (head, fci) = dst
        .split_at_mut_checked(FIXED)
        .ok_or(Error::BufferTooSmall)?;
    let mut pairs = 0usize;
    let mut flush = |pid: u16, blp: u16| -> Result<(), Error> {
        let at = pairs * NACK_PAIR_LEN;
        let out = fci
            .get_mut(at..at + NACK_PAIR_LEN)
            .ok_or(Error::BufferTooSmall)?;
        out[0..2].copy_from_slice(&pid.to_be_bytes());
        out[2..4].copy_from_slice(&blp.to_be_bytes());
        pairs += 1;
        Ok(())
    };
    let mut current: Option<(u16, u16)> = None;
    for &seq in lost {
        if let Some((pid, blp)) = current.as_mut() {
            match seq.wrapping_sub(*pid) {
                0 => continue,
                offset @ 1..=16 => {
                    *blp |= 1 << (offset - 1);
                    continue;
                }
                _ => flush(*pid, *blp)?,
            }
        }
        current = Some((seq, 0));
    }
    if let Some((pid, blp)) = current {
        flush(pid, blp)?;
    }
    let total = FIXED + pairs * NACK_PAIR_LEN;
    write_header(head, fmt::NACK, packet_type::RTPFB, total)?;
    head[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    head[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    Ok(total)
}
