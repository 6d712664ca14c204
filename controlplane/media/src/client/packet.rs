//! RTP packets and VP8 payloads as the test peer sends them.
//!
//! - RTP header (RFC 3550 §5.1) with the one-byte header extension form
//!   (RFC 8285 §4.2) carrying mid (RFC 8843 §15), abs-send-time and the
//!   transport-wide sequence number, as Chromium does.
//! - VP8 payloads (RFC 7741 §4.2 descriptor with a 15-bit PictureID, §4.3
//!   payload header; a key frame also carries the frame tag's start code
//!   and dimensions, RFC 6386 §9.1) that a keyframe detector recognises.

use std::time::Duration;

use super::ClientError;

/// Fixed RTP header (RFC 3550 §5.1).
const RTP_HEADER_LEN: usize = 12;
/// The one-byte header extension profile (RFC 8285 §4.2).
const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// One header extension element to write: id 1-14, 1-16 bytes.
pub(super) type Extension<'a> = (u8, &'a [u8]);

/// The RTP fields the peer sets.
#[derive(Debug, Clone, Copy)]
pub(super) struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Writes header, extensions and payload into `dst`; returns the length.
/// Extensions that do not fit the one-byte form are skipped.
pub(super) fn write_rtp(
    dst: &mut [u8],
    h: &RtpHeader,
    extensions: &[Extension<'_>],
    payload: &[u8],
) -> Result<usize, ClientError> {
    let valid =
        |(id, data): &&Extension<'_>| (1..=14).contains(id) && (1..=16).contains(&data.len());
    let ext_bytes: usize = extensions
        .iter()
        .filter(valid)
        .map(|(_, d)| 1 + d.len())
        .sum();
    // Elements are padded to a whole number of 32-bit words (RFC 8285 §4.2).
    let ext_words = ext_bytes.div_ceil(4);
    let ext_len = if ext_bytes > 0 { 4 + 4 * ext_words } else { 0 };
    let total = RTP_HEADER_LEN + ext_len + payload.len();
    let out = dst.get_mut(..total).ok_or(ClientError::PacketTooLarge)?;
    let x = if ext_len > 0 { 0x10 } else { 0 };
    out[0] = 0x80 | x;
    out[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7F);
    out[2..4].copy_from_slice(&h.sequence_number.to_be_bytes());
    out[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    let mut at = RTP_HEADER_LEN;
    if ext_len > 0 {
        let words = u16::try_from(ext_words).map_err(|_| ClientError::PacketTooLarge)?;
        out[at..at + 2].copy_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
        at += 4;
        let end = at + 4 * ext_words;
        for (id, data) in extensions.iter().filter(valid) {
            // `valid` bounds len to 1..=16, so len - 1 fits the 4-bit field.
            out[at] = (id << 4) | (data.len() as u8 - 1);
            out[at + 1..at + 1 + data.len()].copy_from_slice(data);
            at += 1 + data.len();
        }
        out[at..end].fill(0);
        at = end;
    }
    out[at..].copy_from_slice(payload);
    Ok(total)
}

/// abs-send-time: 6.18 fixed-point seconds, 24 bits (webrtc.org
/// abs-send-time extension).
pub(super) fn abs_send_time(since_start: Duration) -> [u8; 3] {
    let v = ((since_start.as_micros() << 18) / 1_000_000) as u32 & 0x00FF_FFFF;
    let [_, a, b, c] = v.to_be_bytes();
    [a, b, c]
}

/// Length of the descriptor and payload header [`vp8_payload`] writes: 4
/// descriptor octets, 3 frame-tag octets, and for a key frame 3 start code
/// and 4 dimension octets.
const VP8_DELTA_HEADER: usize = 4 + 3;
const VP8_KEY_HEADER: usize = VP8_DELTA_HEADER + 3 + 4;

/// A VP8 RTP payload of `len` bytes (at least its headers): the start of a
/// key frame or of an interframe, then filler.
pub fn vp8_payload(keyframe: bool, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len.max(VP8_KEY_HEADER));
    // Descriptor: X=1, S=1, PID=0; I=1; 15-bit PictureID (M=1).
    p.extend_from_slice(&[0x90, 0x80, 0x80, 0x01]);
    // Frame tag (RFC 6386 §9.1): P (bit 0) clear for a key frame, version 0,
    // show_frame set; the first partition size is filler.
    let p_bit = u8::from(!keyframe);
    p.extend_from_slice(&[0x10 | p_bit, 0x02, 0x00]);
    if keyframe {
        // Start code, then 640x480 with no scaling.
        p.extend_from_slice(&[0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]);
    }
    let mut filler = 0u8;
    while p.len() < len {
        p.push(filler);
        filler = filler.wrapping_add(1);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use uturn_rtp::keyframe::{is_keyframe, VideoCodec};
    use uturn_rtp::rtp::RtpPacket;

    #[test]
    fn vp8_keyframes_are_recognised() {
        for len in [0, 14, 100, 1100] {
            let key = vp8_payload(true, len);
            let delta = vp8_payload(false, len);
            assert!(key.len() >= len.max(VP8_KEY_HEADER));
            assert!(is_keyframe(VideoCodec::Vp8, &key));
            assert!(!is_keyframe(VideoCodec::Vp8, &delta));
        }
    }

    #[test]
    fn rtp_with_extensions_parses_back() {
        let h = RtpHeader {
            payload_type: 96,
            marker: true,
            sequence_number: 0xFFFE,
            timestamp: 0x0102_0304,
            ssrc: 0xDEAD_BEEF,
        };
        let mut buf = [0u8; 200];
        let exts: [Extension<'_>; 3] = [(4, b"1"), (2, &[1, 2, 3]), (3, &[0, 9])];
        let n = write_rtp(&mut buf, &h, &exts, b"payload!").unwrap();
        let p = RtpPacket::new_checked(&buf[..n]).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.sequence_number(), 0xFFFE);
        assert_eq!(p.timestamp(), 0x0102_0304);
        assert_eq!(p.ssrc(), 0xDEAD_BEEF);
        assert_eq!(p.extension(4), Some(&b"1"[..]));
        assert_eq!(p.extension(2), Some(&[1, 2, 3][..]));
        assert_eq!(p.extension(3), Some(&[0, 9][..]));
        assert_eq!(p.payload(), b"payload!");
        // 1+1 + 1+3 + 1+2 = 9 bytes of elements: 3 words.
        assert_eq!(p.header_len(), 12 + 4 + 12);
    }

    #[test]
    fn rtp_without_extensions_and_too_small_buffers() {
        let h = RtpHeader {
            payload_type: 111,
            marker: false,
            sequence_number: 1,
            timestamp: 2,
            ssrc: 3,
        };
        let mut buf = [0u8; 20];
        let n = write_rtp(&mut buf, &h, &[(15, b"x")], b"abc").unwrap();
        assert_eq!(n, 15, "id 15 is not a one-byte extension: skipped");
        assert_eq!(buf[0], 0x80);
        assert!(matches!(
            write_rtp(&mut buf, &h, &[], &[0; 9]),
            Err(ClientError::PacketTooLarge)
        ));
    }

    #[test]
    fn abs_send_time_is_6_18_fixed_point() {
        assert_eq!(abs_send_time(Duration::from_secs(1)), [0x04, 0x00, 0x00]);
        assert_eq!(
            abs_send_time(Duration::from_millis(500)),
            [0x02, 0x00, 0x00]
        );
        // Wraps after 64 s.
        assert_eq!(abs_send_time(Duration::from_secs(64)), [0, 0, 0]);
    }
}
