//! Typed, checked views over RTP and RTCP headers: just enough of RFC 3550
//! §5.1 and §6.4 to find the SSRC, the sequence number and where SRTP's
//! encrypted portion starts (RFC 3711 §3.1, §3.4).

use crate::error::Error;

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// The part of an RTCP packet SRTCP leaves in clear: V/P/RC, PT, length and
/// the sender's SSRC (RFC 3711 §3.4).
pub const RTCP_HEADER_LEN: usize = 8;

/// A checked view of an RTP header.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    bytes: &'a [u8],
    header_len: usize,
}

impl<'a> RtpHeader<'a> {
    /// Checks version 2 and that the fixed header, the CSRC list and the
    /// header extension (RFC 3550 §5.3.1) all fit in `packet`.
    pub fn new_checked(packet: &'a [u8]) -> Result<RtpHeader<'a>, Error> {
        let first = *packet.first().ok_or(Error::Truncated)?;
        if first >> 6 != 2 {
            return Err(Error::Version);
        }
        if packet.len() < RTP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let csrc_count = usize::from(first & 0x0f);
        let mut header_len = RTP_HEADER_LEN + 4 * csrc_count;
        if first & 0x10 != 0 {
            // Extension: 16-bit profile id, 16-bit length in 32-bit words.
            let ext = packet
                .get(header_len..header_len + 4)
                .ok_or(Error::Truncated)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            header_len += 4 + 4 * words;
        }
        if packet.len() < header_len {
            return Err(Error::Truncated);
        }
        Ok(RtpHeader {
            bytes: packet,
            header_len,
        })
    }

    /// Header length including CSRCs and extension: where the payload starts.
    pub fn len(&self) -> usize {
        self.header_len
    }

    /// Never true: a checked header has at least 12 octets.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The 16-bit sequence number.
    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]])
    }

    /// The payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.bytes[1] & 0x7f
    }
}

/// A checked view of the first RTCP header of a (compound) RTCP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtcpHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> RtcpHeader<'a> {
    /// Checks version 2 and that the 8 octets SRTCP leaves in clear are there.
    pub fn new_checked(packet: &'a [u8]) -> Result<RtcpHeader<'a>, Error> {
        let first = *packet.first().ok_or(Error::Truncated)?;
        if first >> 6 != 2 {
            return Err(Error::Version);
        }
        if packet.len() < RTCP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(RtcpHeader { bytes: packet })
    }

    /// The packet type of the first RTCP packet (200 = SR, 201 = RR, ...).
    pub fn packet_type(&self) -> u8 {
        self.bytes[1]
    }

    /// The SSRC of the packet's sender.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex;

    #[test]
    fn parses_fixed_header() {
        let p = unhex("8040f17b8041f8d35501a0b247616c6c");
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(h.len(), 12);
        assert_eq!(h.sequence_number(), 0xf17b);
        assert_eq!(h.ssrc(), 0x5501a0b2);
        assert_eq!(h.payload_type(), 0x40);
    }

    #[test]
    fn csrcs_and_extension_move_the_payload() {
        // CC = 2, X = 1, extension of 1 word.
        let mut p = unhex("9260000100000002deadbeef");
        p.extend([0x11; 8]); // two CSRCs
        p.extend(unhex("bede0001")); // one-byte header extension, 1 word
        p.extend([0x22; 4]);
        p.extend([0x33; 5]); // payload
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(h.len(), 12 + 8 + 4 + 4);
        // Cut inside the extension: truncated.
        assert_eq!(
            RtpHeader::new_checked(&p[..26]).unwrap_err(),
            Error::Truncated
        );
        // Cut inside the extension header itself.
        assert_eq!(
            RtpHeader::new_checked(&p[..22]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn rejects_short_and_wrong_version() {
        assert_eq!(RtpHeader::new_checked(&[]).unwrap_err(), Error::Truncated);
        assert_eq!(
            RtpHeader::new_checked(&[0x80; 11]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            RtpHeader::new_checked(&[0x40; 12]).unwrap_err(),
            Error::Version
        );
        // CC = 15 needs 72 octets.
        assert_eq!(
            RtpHeader::new_checked(&[0x8f; 40]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            RtcpHeader::new_checked(&[0x81, 0xc8, 0, 1]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            RtcpHeader::new_checked(&[0xc1; 8]).unwrap_err(),
            Error::Version
        );
        let r = unhex("81c8000d4d617273");
        let h = RtcpHeader::new_checked(&r).unwrap();
        assert_eq!(h.ssrc(), 0x4d617273);
        assert_eq!(h.packet_type(), 200);
    }
}
