//! RTP packets: a checked view over a received packet (RFC 3550 §5.1, with
//! the header extension of §5.3.1 read as RFC 8285 one-byte or two-byte
//! elements) and the per-viewer writers the media relay needs: [`rewrite`]
//! (new SSRC, payload type and extension ids), [`set_sequence_number`] and
//! [`write_rtx`] (RFC 4588 §4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |                             SSRC                              |
//! |                  CSRC list (CC x 32 bits)                     |
//! |   extension profile (0xBEDE | 0x100x)  |   length in words    |   if X
//! |                  extension elements ...                       |
//! |                  payload ...            | padding | pad count |   if P
//! ```
//!
//! Nothing here allocates; every read is bounds-checked, so any byte string
//! gives either a view or an [`Error`], never a panic.

mod extension;
mod rewrite;

pub use extension::{ExtIdMap, ExtensionForm, Extensions};
pub use rewrite::{rewrite, set_sequence_number, write_rtx, Rewrite};

use crate::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// The RTP version this crate speaks (RFC 3550 §5.1).
pub const VERSION: u8 = 2;

/// A checked view of one RTP packet (plaintext: after SRTP unprotect).
///
/// [`RtpPacket::new_checked`] validates the version, the CSRC list, the
/// extension block's length and the padding count once; the accessors then
/// cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    fixed: &'a [u8; FIXED_HEADER_LEN],
    /// CSRC list, extension header and extension data included.
    header_len: usize,
    padding_len: usize,
    /// (profile, element data) of the header extension when X is set.
    extension: Option<(u16, &'a [u8])>,
}

impl<'a> RtpPacket<'a> {
    /// Checks `buf` as an RTP packet: version 2, CSRC list, extension block
    /// (RFC 3550 §5.3.1) and padding (§5.1: the last octet counts the padding
    /// octets, itself included, so it is at least 1) all inside `buf`.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Error> {
        let fixed: &[u8; FIXED_HEADER_LEN] = buf.first_chunk().ok_or(Error::Truncated)?;
        if fixed[0] >> 6 != VERSION {
            return Err(Error::BadVersion);
        }
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let mut header_len = FIXED_HEADER_LEN + 4 * csrc_count;
        if buf.len() < header_len {
            return Err(Error::Truncated);
        }
        let mut extension = None;
        if fixed[0] & 0x10 != 0 {
            let ext_header: &[u8; 4] = buf
                .get(header_len..)
                .and_then(|rest| rest.first_chunk())
                .ok_or(Error::Truncated)?;
            let profile = u16::from_be_bytes([ext_header[0], ext_header[1]]);
            let words = usize::from(u16::from_be_bytes([ext_header[2], ext_header[3]]));
            let start = header_len + 4;
            let end = start + 4 * words;
            let data = buf.get(start..end).ok_or(Error::Truncated)?;
            extension = Some((profile, data));
            header_len = end;
        }
        let mut padding_len = 0;
        if fixed[0] & 0x20 != 0 {
            let count = usize::from(*buf.last().ok_or(Error::Truncated)?);
            if count == 0 || header_len + count > buf.len() {
                return Err(Error::BadPadding);
            }
            padding_len = count;
        }
        Ok(Self {
            buf,
            fixed,
            header_len,
            padding_len,
            extension,
        })
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The marker bit (for video: the last packet of a frame).
    pub fn marker(&self) -> bool {
        self.fixed[1] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.fixed[1] & 0x7f
    }

    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.fixed[2], self.fixed[3]])
    }

    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.fixed[4], self.fixed[5], self.fixed[6], self.fixed[7]])
    }

    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.fixed[8], self.fixed[9], self.fixed[10], self.fixed[11]])
    }

    /// Whether the P bit is set.
    pub fn has_padding(&self) -> bool {
        self.padding_len != 0
    }

    pub fn csrc_count(&self) -> usize {
        usize::from(self.fixed[0] & 0x0f)
    }

    /// The contributing sources (RFC 3550 §5.1).
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let end = FIXED_HEADER_LEN + 4 * self.csrc_count();
        // new_checked made sure the CSRC list lies inside the packet.
        self.buf
            .get(FIXED_HEADER_LEN..end)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Octets before the payload: fixed header, CSRCs and extension block.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        // new_checked made sure header_len + padding_len <= len.
        self.buf
            .get(self.header_len..self.buf.len() - self.padding_len)
            .unwrap_or_default()
    }

    /// The payload followed by the padding: everything after the header.
    pub fn body(&self) -> &'a [u8] {
        self.buf.get(self.header_len..).unwrap_or_default()
    }

    /// Padding octets at the end, the count octet included (0 without P).
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }

    /// The extension block's profile field (0xBEDE one-byte, 0x100x
    /// two-byte, anything else is not RFC 8285), when X is set.
    pub fn extension_profile(&self) -> Option<u16> {
        self.extension.map(|(profile, _)| profile)
    }

    /// The RFC 8285 elements of the header extension, in packet order. Empty
    /// when there is no extension or its profile is not RFC 8285's.
    pub fn extensions(&self) -> Extensions<'a> {
        match self.extension {
            Some((profile, data)) => Extensions::new(profile, data),
            None => Extensions::empty(),
        }
    }

    /// The value of the first RFC 8285 element with local id `id`.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        if id == 0 {
            return None;
        }
        self.extensions()
            .find(|&(element_id, _)| element_id == id)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests;
