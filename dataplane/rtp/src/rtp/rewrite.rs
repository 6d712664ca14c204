//! The per-viewer RTP writers: [`rewrite`] turns a publisher's plaintext
//! packet into the viewer's (SSRC, payload type and RFC 8285 extension ids
//! as the viewer negotiated), [`write_rtx`] wraps a cached packet as an RFC
//! 4588 §4 retransmission, [`set_sequence_number`] patches a header in place.
//!
//! [`rewrite`] runs once per packet per viewer, so it makes one pass over
//! the packet with no allocation: the kept extension elements are written
//! straight into the caller's buffer as they are read, the block header
//! once their length is known, then the payload.

use super::extension::ExtensionForm;
use super::{ExtIdMap, RtpPacket, FIXED_HEADER_LEN};
use crate::Error;

/// How one viewer's copy of a publisher's stream differs from the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The SSRC the viewer's answer announced for this stream.
    pub ssrc: u32,
    /// The viewer's payload type for the publisher's codec.
    pub payload_type: u8,
    /// Publisher extension id -> viewer extension id; unmapped ids are dropped.
    pub ext_ids: ExtIdMap,
}

/// Writes `src` rewritten into `dst` and returns the written length: new
/// SSRC and payload type, header-extension elements renumbered by
/// `rewrite.ext_ids` and unmapped ones dropped; version, padding, marker,
/// sequence number, timestamp, CSRCs, payload and padding octets kept.
///
/// The extension block is written in the one-byte form (RFC 8285 §4.2)
/// when every kept element fits it, which every receiver understands, else
/// in the two-byte form (§4.3); with no kept element the X bit is cleared.
/// A block whose profile is not RFC 8285's cannot be renumbered and is
/// dropped.
///
/// Only the returned length of `dst` is written: the caller sizes `dst` with
/// room for the SRTP tag after it. [`Error::BufferTooSmall`] when `dst` is
/// shorter than the rewritten packet; any error of [`RtpPacket::new_checked`]
/// for a malformed `src`.
pub fn rewrite(src: &[u8], dst: &mut [u8], rewrite: &Rewrite) -> Result<usize, Error> {
    let packet = RtpPacket::new_checked(src)?;
    let csrc_end = FIXED_HEADER_LEN + 4 * packet.csrc_count();
    let fixed_and_csrcs = src.get(..csrc_end).ok_or(Error::Truncated)?;
    let (head, rest) = dst
        .split_at_mut_checked(csrc_end)
        .ok_or(Error::BufferTooSmall)?;

    let ext_len = write_extension_block(rest, &packet, &rewrite.ext_ids)?;
    let body = packet.body();
    rest.get_mut(ext_len..ext_len + body.len())
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(body);

    // Fixed header and CSRCs: copied, then the changed fields patched
    // (`head` is at least the 12-octet fixed header, so the indexing holds).
    head.copy_from_slice(fixed_and_csrcs);
    head[0] = (head[0] & !0x10) | if ext_len == 0 { 0 } else { 0x10 };
    head[1] = (head[1] & 0x80) | (rewrite.payload_type & 0x7f);
    head[8..12].copy_from_slice(&rewrite.ssrc.to_be_bytes());
    Ok(csrc_end + ext_len + body.len())
}

/// Writes the renumbered extension block at the start of `out` and returns
/// its length, 0 when no element is kept. One pass in the one-byte form;
/// only when a kept element does not fit it (rare: browsers negotiate ids
/// 1–14) is the block written again in the two-byte form.
fn write_extension_block(
    out: &mut [u8],
    packet: &RtpPacket<'_>,
    map: &ExtIdMap,
) -> Result<usize, Error> {
    if packet.extension_profile().is_none() {
        return Ok(0);
    }
    match write_elements(out, packet, map, ExtensionForm::OneByte)? {
        Some(len) => Ok(len),
        None => Ok(write_elements(out, packet, map, ExtensionForm::TwoByte)?.unwrap_or(0)),
    }
}

/// Writes the block header and the kept elements in `form`, zero-padded to
/// the word. `None` when a kept element cannot be written in `form`.
fn write_elements(
    out: &mut [u8],
    packet: &RtpPacket<'_>,
    map: &ExtIdMap,
    form: ExtensionForm,
) -> Result<Option<usize>, Error> {
    const BLOCK_HEADER_LEN: usize = 4;
    let element_header_len = form.element_header_len();
    let mut at = BLOCK_HEADER_LEN;
    for (id, value) in packet.extensions() {
        let Some(to) = map.get(id) else { continue };
        if !form.fits(to, value.len()) {
            return Ok(None);
        }
        let element = out
            .get_mut(at..at + element_header_len + value.len())
            .ok_or(Error::BufferTooSmall)?;
        let (element_header, element_value) = element.split_at_mut(element_header_len);
        match form {
            // One-byte: id in the high nibble, value length minus one in the
            // low (`fits` checked 1..=16 octets).
            ExtensionForm::OneByte => {
                element_header.copy_from_slice(&[(to << 4) | (value.len() as u8 - 1)])
            }
            ExtensionForm::TwoByte => element_header.copy_from_slice(&[to, value.len() as u8]),
        }
        element_value.copy_from_slice(value);
        at += element_header_len + value.len();
    }
    if at == BLOCK_HEADER_LEN {
        return Ok(Some(0));
    }
    let end = at.next_multiple_of(4);
    out.get_mut(at..end).ok_or(Error::BufferTooSmall)?.fill(0);
    let words = u16::try_from((end - BLOCK_HEADER_LEN) / 4).map_err(|_| Error::ExtensionTooLong)?;
    let [profile_hi, profile_lo] = form.profile().to_be_bytes();
    let [words_hi, words_lo] = words.to_be_bytes();
    out.get_mut(..BLOCK_HEADER_LEN)
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(&[profile_hi, profile_lo, words_hi, words_lo]);
    Ok(Some(end))
}

/// Overwrites the sequence number of the RTP packet in `packet`.
pub fn set_sequence_number(packet: &mut [u8], seq: u16) -> Result<(), Error> {
    let fixed: &mut [u8; FIXED_HEADER_LEN] = packet.first_chunk_mut().ok_or(Error::Truncated)?;
    if fixed[0] >> 6 != super::VERSION {
        return Err(Error::BadVersion);
    }
    fixed[2..4].copy_from_slice(&seq.to_be_bytes());
    Ok(())
}

/// Writes the RFC 4588 §4 retransmission of `original` into `dst` and
/// returns its length: the original header (CSRCs and extensions included)
/// with the RTX stream's SSRC, payload type and sequence number, then the
/// original sequence number (OSN) and the original payload.
///
/// The original's padding is not retransmitted (it is not payload) and the
/// P bit is cleared. [`Error::BufferTooSmall`] when `dst` cannot hold the
/// result; leave room for the SRTP tag after it.
pub fn write_rtx(
    original: &[u8],
    dst: &mut [u8],
    rtx_ssrc: u32,
    rtx_payload_type: u8,
    rtx_seq: u16,
) -> Result<usize, Error> {
    let packet = RtpPacket::new_checked(original)?;
    let header = original
        .get(..packet.header_len())
        .ok_or(Error::Truncated)?;
    let payload = packet.payload();
    let total = header.len() + 2 + payload.len();
    let dst = dst.get_mut(..total).ok_or(Error::BufferTooSmall)?;

    // `head` is at least the 12-octet fixed header, so the indexing holds.
    let (head, rest) = dst.split_at_mut(header.len());
    head.copy_from_slice(header);
    head[0] &= !0x20;
    head[1] = (head[1] & 0x80) | (rtx_payload_type & 0x7f);
    head[2..4].copy_from_slice(&rtx_seq.to_be_bytes());
    head[8..12].copy_from_slice(&rtx_ssrc.to_be_bytes());

    let (osn, out_payload) = rest.split_at_mut(2);
    osn.copy_from_slice(&packet.sequence_number().to_be_bytes());
    out_payload.copy_from_slice(payload);
    Ok(total)
}
