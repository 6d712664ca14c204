//! RTCP: parsing compound packets (RFC 3550 §6.1, and RFC 5506 reduced-size
//! packets, which are just compounds that need not start with a report) and
//! writing the packets the media relay sends.
//!
//! - [`report`]: sender and receiver reports (RFC 3550 §6.4.1, §6.4.2).
//! - [`feedback`]: PLI and generic NACK (RFC 4585 §6.3.1, §6.2.1), FIR
//!   (RFC 5104 §4.3.1).
//! - [`sdes`]: SDES CNAME and BYE (RFC 3550 §6.5, §6.6).
//! - [`twcc`]: transport-wide congestion control feedback
//!   (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1), written by
//!   the relay to publishers and read back by its own view; the compound
//!   walk reports it as [`Packet::Other`].
//!
//! Every RTCP packet starts with the same header (RFC 3550 §6.4.1):
//!
//! ```text
//! |V=2|P| count/FMT |      PT       |   length (32-bit words - 1)   |
//! ```
//!
//! [`parse_compound`] walks the packets of one (decrypted) compound without
//! allocating and yields one [`Packet`] each; the first malformed packet is
//! yielded as an error and ends the walk, because after a bad length field
//! nothing that follows can be trusted.

pub mod feedback;
pub mod report;
pub mod sdes;
pub mod twcc;

pub use feedback::{write_fir, write_nack, write_pli, FirEntries, FirEntry, Nack, NackLost};
pub use report::{
    write_rr, write_sr, ReceiverReport, ReportBlock, ReportBlocks, SenderInfo, SenderReport,
};
pub use sdes::{write_bye, write_sdes_cname};
pub use twcc::{write_transport_feedback, FeedbackHeader, TransportFeedback};

use crate::Error;

/// Length of the common RTCP header (RFC 3550 §6.4.1).
pub const HEADER_LEN: usize = 4;

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
pub mod packet_type {
    pub const SR: u8 = 200;
    pub const RR: u8 = 201;
    pub const SDES: u8 = 202;
    pub const BYE: u8 = 203;
    pub const APP: u8 = 204;
    /// Transport-layer feedback (RFC 4585 §6.1).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (RFC 4585 §6.1).
    pub const PSFB: u8 = 206;
}

/// Feedback message types (the FMT field of RTPFB and PSFB packets).
pub mod fmt {
    /// Generic NACK, in RTPFB (RFC 4585 §6.2.1).
    pub const NACK: u8 = 1;
    /// Picture Loss Indication, in PSFB (RFC 4585 §6.3.1).
    pub const PLI: u8 = 1;
    /// Full Intra Request, in PSFB (RFC 5104 §4.3.1).
    pub const FIR: u8 = 4;
    /// Transport-wide congestion control feedback, in RTPFB
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
    pub const TRANSPORT_CC: u8 = 15;
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone)]
pub enum Packet<'a> {
    SenderReport(SenderReport<'a>),
    ReceiverReport(ReceiverReport<'a>),
    /// The whole SDES packet, header included (RFC 3550 §6.5).
    Sdes(&'a [u8]),
    /// The whole BYE packet, header included (RFC 3550 §6.6).
    Bye(&'a [u8]),
    /// Picture Loss Indication (RFC 4585 §6.3.1).
    Pli {
        sender_ssrc: u32,
        media_ssrc: u32,
    },
    /// Full Intra Request (RFC 5104 §4.3.1); the SSRCs asked for are in the entries.
    Fir {
        sender_ssrc: u32,
        entries: FirEntries<'a>,
    },
    /// Generic NACK (RFC 4585 §6.2.1).
    Nack(Nack<'a>),
    /// Any other packet (APP, XR, REMB, transport-cc, ...): skipped by uturn.
    Other {
        packet_type: u8,
        fmt: u8,
    },
}

/// Iterator over the packets of a compound RTCP packet; see [`parse_compound`].
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// Walks the RTCP packets in `buf` (RFC 3550 §6.1). Stops after the first
/// error, which it yields.
pub fn parse_compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<Packet<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = split_packet(self.rest).and_then(|(packet, rest)| {
            self.rest = rest;
            parse_packet(packet)
        });
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

/// Splits the first RTCP packet off `buf` by its header's length field.
fn split_packet(buf: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let header: &[u8; HEADER_LEN] = buf.first_chunk().ok_or(Error::Truncated)?;
    if header[0] >> 6 != 2 {
        return Err(Error::BadVersion);
    }
    let words = usize::from(u16::from_be_bytes([header[2], header[3]])) + 1;
    buf.split_at_checked(4 * words).ok_or(Error::Truncated)
}

/// The body of one whole RTCP packet (after its 4-octet header) without
/// its padding when the P bit of `first_octet` is set: RFC 3550 §6.4.1,
/// the last octet counts the padding, itself included.
pub(crate) fn unpadded_body(first_octet: u8, packet: &[u8]) -> Result<&[u8], Error> {
    let body = packet.get(HEADER_LEN..).unwrap_or_default();
    if first_octet & 0x20 == 0 {
        return Ok(body);
    }
    let padding = usize::from(*body.last().ok_or(Error::BadPadding)?);
    let keep = body
        .len()
        .checked_sub(padding)
        .filter(|_| padding != 0)
        .ok_or(Error::BadPadding)?;
    body.get(..keep).ok_or(Error::BadPadding)
}

/// Parses one whole RTCP packet (header included, length already checked).
fn parse_packet(packet: &[u8]) -> Result<Packet<'_>, Error> {
    let header: &[u8; HEADER_LEN] = packet.first_chunk().ok_or(Error::Truncated)?;
    let count = header[0] & 0x1f;
    let packet_type = header[1];
    let body = unpadded_body(header[0], packet)?;
    Ok(match packet_type {
        packet_type::SR => Packet::SenderReport(SenderReport::parse(count, body)?),
        packet_type::RR => Packet::ReceiverReport(ReceiverReport::parse(count, body)?),
        packet_type::SDES => Packet::Sdes(packet),
        packet_type::BYE => Packet::Bye(packet),
        packet_type::PSFB | packet_type::RTPFB => feedback::parse(packet_type, count, body)?,
        _ => Packet::Other {
            packet_type,
            fmt: count,
        },
    })
}

/// Writes the common header for a packet of `total_len` octets (a multiple
/// of 4) into the first four octets of `dst`, which the caller checked.
pub(crate) fn write_header(
    dst: &mut [u8],
    count: u8,
    packet_type: u8,
    total_len: usize,
) -> Result<(), Error> {
    let words = u16::try_from((total_len / 4).saturating_sub(1)).map_err(|_| Error::BadLength)?;
    let header: &mut [u8; HEADER_LEN] = dst.first_chunk_mut().ok_or(Error::BufferTooSmall)?;
    let [len_hi, len_lo] = words.to_be_bytes();
    *header = [0x80 | (count & 0x1f), packet_type, len_hi, len_lo];
    Ok(())
}

/// Reads a big-endian u32 at `at`; 0 past the end (callers check lengths first).
pub(crate) fn be_u32(buf: &[u8], at: usize) -> u32 {
    buf.get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(0, |b| u32::from_be_bytes(*b))
}

#[cfg(test)]
mod tests;
