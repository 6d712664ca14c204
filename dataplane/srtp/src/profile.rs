//! SRTP protection profiles: the parameters RFC 5764 §4.1.2 (DTLS-SRTP) and
//! RFC 7714 §14.2 fix for each profile we support.

/// An SRTP protection profile as negotiated by DTLS-SRTP's `use_srtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 3711, RFC 5764 §4.1.2): AES-128 in
    /// counter mode, HMAC-SHA1 truncated to 80 bits for RTP and RTCP.
    Aes128CmSha1_80,
    /// `SRTP_AES128_CM_HMAC_SHA1_32` (RFC 5764 §4.1.2): as above with a 32-bit
    /// RTP tag; SRTCP keeps the 80-bit tag (RFC 5764 §4.1.2, last paragraph).
    Aes128CmSha1_32,
    /// `SRTP_AEAD_AES_128_GCM` (RFC 7714 §14.2): AES-128-GCM, 16-octet tag,
    /// 96-bit salt.
    AeadAes128Gcm,
}

/// Length of an AES-128 key, master or session.
pub const KEY_LEN: usize = 16;
/// Length of the HMAC-SHA1 session authentication key (RFC 3711 §8.2: n_a = 160).
pub const AUTH_KEY_LEN: usize = 20;
/// The longest master/session salt (AES-CM: 112 bits, RFC 3711 §8.2).
pub const MAX_SALT_LEN: usize = 14;
/// Length of the SRTCP trailer word `E || SRTCP index` (RFC 3711 §3.4).
pub const SRTCP_INDEX_LEN: usize = 4;
/// The AEAD tag (RFC 7714 §14.2: 16 octets).
pub const GCM_TAG_LEN: usize = 16;

impl Profile {
    /// The DTLS-SRTP protection profile id (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub fn dtls_id(self) -> u16 {
        match self {
            Profile::Aes128CmSha1_80 => 0x0001,
            Profile::Aes128CmSha1_32 => 0x0002,
            Profile::AeadAes128Gcm => 0x0007,
        }
    }

    /// The profile for a DTLS-SRTP protection profile id, if we support it.
    pub fn from_dtls_id(id: u16) -> Option<Profile> {
        match id {
            0x0001 => Some(Profile::Aes128CmSha1_80),
            0x0002 => Some(Profile::Aes128CmSha1_32),
            0x0007 => Some(Profile::AeadAes128Gcm),
            _ => None,
        }
    }

    /// Master (and session) key length in octets.
    pub fn key_len(self) -> usize {
        KEY_LEN
    }

    /// Master (and session) salt length in octets: 14 for AES-CM, 12 for GCM.
    pub fn salt_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 | Profile::Aes128CmSha1_32 => 14,
            Profile::AeadAes128Gcm => 12,
        }
    }

    /// Whether this is an AEAD profile (RFC 7714).
    pub fn is_aead(self) -> bool {
        matches!(self, Profile::AeadAes128Gcm)
    }

    /// Octets `protect_rtp` appends: the authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => 10,
            Profile::Aes128CmSha1_32 => 4,
            Profile::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Octets of SRTCP authentication tag.
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 | Profile::Aes128CmSha1_32 => 10,
            Profile::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Octets `protect_rtcp` appends: the tag and the `E || index` word.
    pub fn rtcp_overhead(self) -> usize {
        self.rtcp_tag_len() + SRTCP_INDEX_LEN
    }

    /// Length of the DTLS keying-material export for this profile
    /// (RFC 5764 §4.2: 2 * (key + salt)).
    pub fn exporter_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtls_ids_round_trip() {
        for p in [
            Profile::Aes128CmSha1_80,
            Profile::Aes128CmSha1_32,
            Profile::AeadAes128Gcm,
        ] {
            assert_eq!(Profile::from_dtls_id(p.dtls_id()), Some(p));
        }
        assert_eq!(Profile::from_dtls_id(0x0008), None);
    }

    #[test]
    fn exporter_lengths() {
        assert_eq!(Profile::Aes128CmSha1_80.exporter_len(), 60);
        assert_eq!(Profile::AeadAes128Gcm.exporter_len(), 56);
        assert_eq!(Profile::Aes128CmSha1_32.rtp_tag_len(), 4);
        assert_eq!(Profile::Aes128CmSha1_32.rtcp_overhead(), 14);
    }
}
