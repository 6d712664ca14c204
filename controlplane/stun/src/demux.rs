//! Telling apart the protocols that share one UDP port by the first byte
//! of a datagram (RFC 7983 §7, as updated by RFC 7983bis for TURN
//! channels).
//!
//! | first byte | protocol                 |
//! |------------|--------------------------|
//! | 0–3        | STUN                     |
//! | 16–19      | ZRTP                     |
//! | 20–63      | DTLS                     |
//! | 64–127     | TURN ChannelData (below) |
//! | 128–191    | RTP/RTCP                 |
//! | other      | unknown: drop            |
//!
//! RFC 7983bis gives TURN channels only 64–79, which matches the channel
//! numbers RFC 8656 lets clients bind (0x4000–0x4FFF). uturn still accepts
//! RFC 5766 clients binding up to 0x7FFE, whose ChannelData starts with any
//! byte in 64–127, and nothing else uturn serves uses 80–127. So the whole
//! 64–127 range classifies as ChannelData.

/// What a datagram is, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// STUN (first byte 0–3).
    Stun,
    /// TURN ChannelData (64–127).
    ChannelData,
    /// DTLS (20–63).
    Dtls,
    /// RTP or RTCP (128–191).
    Rtp,
    /// ZRTP (16–19).
    Zrtp,
    /// Empty, or a first byte no protocol above uses.
    Unknown,
}

/// Classifies a datagram by its first byte (RFC 7983 §7).
pub const fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=127) => PacketKind::ChannelData,
        Some(128..=191) => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_byte_classifies_as_the_table_says() {
        for b in 0..=255u8 {
            let expected = match b {
                0..=3 => PacketKind::Stun,
                16..=19 => PacketKind::Zrtp,
                20..=63 => PacketKind::Dtls,
                64..=127 => PacketKind::ChannelData,
                128..=191 => PacketKind::Rtp,
                _ => PacketKind::Unknown,
            };
            assert_eq!(classify(&[b, 0, 0, 0]), expected, "first byte {b}");
        }
    }

    #[test]
    fn boundaries() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[3]), PacketKind::Stun);
        assert_eq!(classify(&[4]), PacketKind::Unknown);
        assert_eq!(classify(&[15]), PacketKind::Unknown);
        assert_eq!(classify(&[63]), PacketKind::Dtls);
        assert_eq!(classify(&[64]), PacketKind::ChannelData);
        // RFC 5766 channel 0x7FFE starts with 0x7F.
        assert_eq!(classify(&0x7ffeu16.to_be_bytes()), PacketKind::ChannelData);
        assert_eq!(classify(&[192]), PacketKind::Unknown);
        assert_eq!(classify(crate::rfc5769::SAMPLE_REQUEST), PacketKind::Stun);
    }
}
