//! ChannelData messages (RFC 8656 §12.4, §12.5).
//!
//! A ChannelData message is a 4-byte header — channel number, payload
//! length — followed by the payload. Channel numbers have their first two
//! bits set to 01 (0x4000–0x7FFF), which is what lets a receiver tell
//! ChannelData from STUN (first two bits 00) by the first byte.
//!
//! RFC 8656 §12 narrowed the range a client may bind to 0x4000–0x4FFF;
//! RFC 5766 §11 allowed 0x4000–0x7FFE. The parser accepts the whole
//! 01-prefixed space and leaves the policy to the caller through
//! [`is_channel_rfc8656`] and [`is_channel_rfc5766`].

use crate::Error;

/// Length of the ChannelData header.
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// Whether `n` is a channel number RFC 8656 §12 lets a client bind (0x4000–0x4FFF).
pub const fn is_channel_rfc8656(n: u16) -> bool {
    matches!(n, 0x4000..=0x4FFF)
}

/// Whether `n` is a channel number RFC 5766 §11 let a client bind (0x4000–0x7FFE).
pub const fn is_channel_rfc5766(n: u16) -> bool {
    matches!(n, 0x4000..=0x7FFE)
}

/// A checked ChannelData message borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    channel: u16,
    payload: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Checks `bytes` as one ChannelData message received over UDP.
    ///
    /// The length field must not exceed the bytes that follow the header.
    /// Over UDP the payload need not be padded (RFC 8656 §12.5), but a
    /// sender may still pad it to a multiple of 4; those at most 3 padding
    /// bytes are accepted and ignored. Anything longer after the payload
    /// is an error ([`Error::TrailingBytes`]): it is not padding, and a
    /// datagram carries one message.
    pub fn parse(bytes: &'a [u8]) -> Result<ChannelData<'a>, Error> {
        let Some((head, rest)) = bytes.split_first_chunk::<CHANNEL_DATA_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let channel = u16::from_be_bytes([head[0], head[1]]);
        if channel & 0xC000 != 0x4000 {
            return Err(Error::InvalidChannelNumber(channel));
        }
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some((payload, trailing)) = rest.split_at_checked(len) else {
            return Err(Error::Truncated);
        };
        let padding = (4 - len % 4) % 4;
        if trailing.len() > padding {
            return Err(Error::TrailingBytes);
        }
        Ok(ChannelData { channel, payload })
    }

    /// The channel number (0x4000–0x7FFF).
    pub fn channel(&self) -> u16 {
        self.channel
    }

    /// The application data.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The header to put before a payload of `len` bytes on `channel`.
    /// Over UDP no padding needs to follow (RFC 8656 §12.5).
    pub const fn header(channel: u16, len: u16) -> [u8; CHANNEL_DATA_HEADER_LEN] {
        let c = channel.to_be_bytes();
        let l = len.to_be_bytes();
        [c[0], c[1], l[0], l[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_payload() {
        let bytes = [0x40, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o'];
        let cd = ChannelData::parse(&bytes).unwrap();
        assert_eq!(cd.channel(), 0x4001);
        assert_eq!(cd.payload(), b"hello");
    }

    #[test]
    fn header_writes_channel_and_length() {
        assert_eq!(
            ChannelData::header(0x4abc, 0x0102),
            [0x4a, 0xbc, 0x01, 0x02]
        );
        let mut bytes = ChannelData::header(0x7ffe, 3).to_vec();
        bytes.extend_from_slice(b"abc");
        let cd = ChannelData::parse(&bytes).unwrap();
        assert_eq!((cd.channel(), cd.payload()), (0x7ffe, &b"abc"[..]));
    }

    #[test]
    fn empty_payload_is_allowed() {
        let cd = ChannelData::parse(&[0x40, 0x00, 0x00, 0x00]).unwrap();
        assert!(cd.payload().is_empty());
    }

    #[test]
    fn short_header_is_truncated() {
        for len in 0..4 {
            assert_eq!(
                ChannelData::parse(&[0x40, 0x00, 0x00, 0x00][..len]),
                Err(Error::Truncated)
            );
        }
    }

    #[test]
    fn length_beyond_the_datagram_is_truncated() {
        assert_eq!(
            ChannelData::parse(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3]),
            Err(Error::Truncated)
        );
        assert_eq!(
            ChannelData::parse(&[0x40, 0x00, 0xff, 0xff, 1]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn padding_up_to_the_next_multiple_of_four_is_ignored() {
        // 5 bytes of data may be followed by up to 3 bytes of padding.
        for pad in 0..=3 {
            let mut bytes = vec![0x40, 0x02, 0x00, 0x05, 1, 2, 3, 4, 5];
            bytes.extend(std::iter::repeat_n(0, pad));
            assert_eq!(
                ChannelData::parse(&bytes).unwrap().payload(),
                &[1, 2, 3, 4, 5]
            );
        }
        let bytes = [0x40, 0x02, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0];
        assert_eq!(ChannelData::parse(&bytes), Err(Error::TrailingBytes));
        // Data already a multiple of 4 has no padding to allow.
        let bytes = [0x40, 0x02, 0x00, 0x04, 1, 2, 3, 4, 0];
        assert_eq!(ChannelData::parse(&bytes), Err(Error::TrailingBytes));
        let bytes = [0x40, 0x02, 0x00, 0x01, 1, 0, 0, 0, 0];
        assert_eq!(ChannelData::parse(&bytes), Err(Error::TrailingBytes));
    }

    #[test]
    fn channel_numbers_must_start_with_bits_01() {
        for channel in [0x0000u16, 0x3fff, 0x8000, 0xbfff, 0xc000, 0xffff] {
            let mut bytes = ChannelData::header(channel, 0).to_vec();
            bytes.push(0);
            bytes.truncate(4);
            assert_eq!(
                ChannelData::parse(&bytes),
                Err(Error::InvalidChannelNumber(channel))
            );
        }
        for channel in [0x4000u16, 0x4fff, 0x5000, 0x7fff] {
            assert!(ChannelData::parse(&ChannelData::header(channel, 0)).is_ok());
        }
    }

    #[test]
    fn channel_ranges() {
        assert!(!is_channel_rfc8656(0x3fff));
        assert!(is_channel_rfc8656(0x4000));
        assert!(is_channel_rfc8656(0x4fff));
        assert!(!is_channel_rfc8656(0x5000));
        assert!(!is_channel_rfc5766(0x3fff));
        assert!(is_channel_rfc5766(0x4000));
        assert!(is_channel_rfc5766(0x7ffe));
        assert!(!is_channel_rfc5766(0x7fff));
        assert!(!is_channel_rfc5766(0x8000));
    }
}
