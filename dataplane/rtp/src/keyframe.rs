//! Keyframe detection from an RTP payload, so a viewer's video can start at
//! a keyframe and the relay knows when a keyframe request was answered.
//!
//! - VP8 (RFC 7741 §4.2, §4.3): the payload descriptor's S bit set and
//!   partition index 0 (the start of the frame), and the P bit of the VP8
//!   payload header clear (inverse key frame flag).
//! - VP9 (RFC 9628 §4.2): the descriptor's P bit clear (not inter-picture
//!   predicted) and B bit set (start of a frame), on spatial layer 0 when
//!   the layer indices are present.
//! - H.264 (RFC 6184 §5.3, §5.7, §5.8): an IDR slice (NAL type 5) or a
//!   sequence parameter set (7), alone, inside a STAP-A/STAP-B aggregate,
//!   or at the start (S bit) of an FU-A/FU-B fragment.
//!
//! A packet too short for its descriptor is simply not a keyframe.

/// The video codecs whose keyframes uturn recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    /// Any other codec: never reported as a keyframe.
    Other,
}

/// Whether `payload` (an RTP payload, padding removed) starts a keyframe.
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8(payload).unwrap_or(false),
        VideoCodec::Vp9 => vp9(payload).unwrap_or(false),
        VideoCodec::H264 => h264(payload).unwrap_or(false),
        VideoCodec::Other => false,
    }
}

/// RFC 7741 §4.2: `X R N S R PID(3)`, optional extension octets, then the
/// VP8 payload header whose low bit is P (0 = key frame, RFC 7741 §4.3).
fn vp8(payload: &[u8]) -> Option<bool> {
    let first = *payload.first()?;
    let start_of_partition = first & 0x10 != 0;
    let partition_index = first & 0x07;
    if !start_of_partition || partition_index != 0 {
        return Some(false);
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        // X: the I L T K octet, then PictureID (7 or 15 bits), TL0PICIDX, TID/KEYIDX.
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let picture_id = *payload.get(at)?;
            // M bit: a 15-bit PictureID takes a second octet.
            at += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    let header = *payload.get(at)?;
    Some(header & 0x01 == 0)
}

/// RFC 9628 §4.2: `I P L F B E V Z`, then PictureID if I (7 or 15 bits),
/// then the layer indices if L (`TID(3) U SID(3) D`).
fn vp9(payload: &[u8]) -> Option<bool> {
    let first = *payload.first()?;
    let inter_predicted = first & 0x40 != 0;
    let begins_frame = first & 0x08 != 0;
    if inter_predicted || !begins_frame {
        return Some(false);
    }
    if first & 0x20 == 0 {
        return Some(true);
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let picture_id = *payload.get(at)?;
        at += if picture_id & 0x80 != 0 { 2 } else { 1 };
    }
    let layers = *payload.get(at)?;
    let spatial_id = (layers >> 1) & 0x07;
    Some(spatial_id == 0)
}

/// NAL unit types (RFC 6184 §5.2, H.264 Table 7-1).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_STAP_B: u8 = 25;
const NAL_FU_A: u8 = 28;
const NAL_FU_B: u8 = 29;

fn starts_keyframe(nal_type: u8) -> bool {
    nal_type == NAL_IDR || nal_type == NAL_SPS
}

fn h264(payload: &[u8]) -> Option<bool> {
    let nal_type = payload.first()? & 0x1f;
    match nal_type {
        NAL_STAP_A | NAL_STAP_B => {
            // STAP-B carries a 16-bit DON before its units (RFC 6184 §5.7.1).
            let skip = if nal_type == NAL_STAP_B { 3 } else { 1 };
            let mut units = payload.get(skip..)?;
            while let Some((size, rest)) = units.split_first_chunk::<2>() {
                let size = usize::from(u16::from_be_bytes(*size));
                let (unit, rest) = rest.split_at_checked(size)?;
                if unit
                    .first()
                    .is_some_and(|header| starts_keyframe(header & 0x1f))
                {
                    return Some(true);
                }
                units = rest;
            }
            Some(false)
        }
        NAL_FU_A | NAL_FU_B => {
            // FU header: S E R Type (RFC 6184 §5.8).
            let fu_header = *payload.get(1)?;
            Some(fu_header & 0x80 != 0 && starts_keyframe(fu_header & 0x1f))
        }
        other => Some(starts_keyframe(other)),
    }
}

#[cfg(test)]
mod tests {
    //! Payloads built by hand from the descriptor layouts of RFC 7741 §4.2,
    //! RFC 9628 §4.2 and RFC 6184 §5.6–§5.8.
    use super::*;

    /// A VP8 key frame's first 10 octets (RFC 6386 §9.1): frame tag with the
    /// key-frame bit 0, start code 9d 01 2a, 640x480.
    const VP8_KEY_FRAME: [u8; 10] = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];

    fn vp8_with(descriptor: &[u8], frame: &[u8]) -> Vec<u8> {
        [descriptor, frame].concat()
    }

    #[test]
    fn vp8() {
        // S=1 PID=0, no extension: key frame.
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&[0x10], &VP8_KEY_FRAME)
        ));
        // Interframe: P bit (low bit of the frame tag) set.
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&[0x10], &[0x51, 0x42, 0x00])
        ));
        // Not the start of a partition, or not partition 0.
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&[0x00], &VP8_KEY_FRAME)
        ));
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&[0x11], &VP8_KEY_FRAME)
        ));
        // X=1, I=1 with a 15-bit PictureID (M=1): 4 descriptor octets.
        let descriptor = [0x90, 0x80, 0x81, 0x23];
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&descriptor, &VP8_KEY_FRAME)
        ));
        // X=1, I L T K all set, 7-bit PictureID: 5 octets; the frame tag's P bit decides.
        let descriptor = [0x90, 0xf0, 0x05, 0x01, 0x20];
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&descriptor, &VP8_KEY_FRAME)
        ));
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&descriptor, &[0x9d])
        ));
        // Only K set (TID/KEYIDX octet present).
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &vp8_with(&[0x90, 0x10, 0x00], &[0x00])
        ));
        // Truncated: descriptor only, or nothing.
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xf0, 0x05, 0x01, 0x20]
        ));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0x80]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn vp9() {
        // I P L F B E V Z: B=1 and P=0.
        assert!(is_keyframe(VideoCodec::Vp9, &[0x08, 0x00]));
        assert!(is_keyframe(VideoCodec::Vp9, &[0x8c, 0x05, 0x00])); // I=1 B=1 E=1
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x48, 0x00])); // P=1
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x04, 0x00])); // B=0 (end only)
                                                               // L=1: layer octet TID U SID D; SID 0 starts the key frame, SID 1 does not.
        assert!(is_keyframe(
            VideoCodec::Vp9,
            &[0xa8, 0x85, 0x01, 0x00, 0x00]
        )); // 15-bit PictureID
        assert!(is_keyframe(VideoCodec::Vp9, &[0xa8, 0x05, 0x00]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[0xa8, 0x05, 0x02]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x28, 0x03])); // no PictureID, SID 1
                                                               // Truncated before the layer octet.
        assert!(!is_keyframe(VideoCodec::Vp9, &[0xa8, 0x05]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[]));
    }

    #[test]
    fn h264_single_nal_units() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88, 0x84])); // IDR (5)
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42, 0xc0])); // SPS (7)
        assert!(!is_keyframe(VideoCodec::H264, &[0x68, 0xce])); // PPS (8)
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice (1)
        assert!(!is_keyframe(VideoCodec::H264, &[]));
    }

    #[test]
    fn h264_aggregates() {
        // STAP-A (24): [size 2: SPS] [size 1: PPS].
        let stap_a = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68];
        assert!(is_keyframe(VideoCodec::H264, &stap_a));
        // STAP-A with SEI (6) and a non-IDR slice only.
        let no_key = [0x78, 0x00, 0x01, 0x06, 0x00, 0x02, 0x41, 0x9a];
        assert!(!is_keyframe(VideoCodec::H264, &no_key));
        // A unit size running past the packet: not a keyframe, no panic.
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x09, 0x67]));
        // STAP-B (25): DON first.
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x79, 0x00, 0x00, 0x00, 0x01, 0x65]
        ));
        assert!(!is_keyframe(VideoCodec::H264, &[0x79, 0x00]));
    }

    #[test]
    fn h264_fragments() {
        // FU-A (28): FU header S=1 type 5.
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x88]));
        // Middle and end fragments of an IDR, and the start of a non-IDR slice.
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x45, 0x88]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x81, 0x9a]));
        // FU-B (29) start of an IDR; an FU without its header.
        assert!(is_keyframe(VideoCodec::H264, &[0x7d, 0x85, 0x00, 0x00]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c]));
    }

    #[test]
    fn other_codecs_never_have_keyframes() {
        assert!(!is_keyframe(
            VideoCodec::Other,
            &vp8_with(&[0x10], &VP8_KEY_FRAME)
        ));
    }
}
