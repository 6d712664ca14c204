//! [`SrtpContext`]: protect and unprotect SRTP (RFC 3711 §3.3, RFC 7714 §8)
//! and SRTCP (RFC 3711 §3.4, RFC 7714 §9) packets in place, for one
//! direction of one DTLS-SRTP association, with per-SSRC state inside.
//!
//! Per packet: parse the header view, find the SSRC's state (a short linear
//! scan), estimate the index, check the replay window, run the crypto on the
//! caller's buffer, and only then update the state. Nothing allocates except
//! the first packet of a new SSRC (one `Vec` push, bounded by
//! [`MAX_STREAMS`]).

use subtle::ConstantTimeEq;

use crate::backend::{Backend, DefaultBackend};
use crate::error::Error;
use crate::keys::{MasterKeys, SessionKeys};
use crate::packet::{RtcpHeader, RtpHeader, RTCP_HEADER_LEN};
use crate::profile::{Profile, GCM_TAG_LEN, MAX_SALT_LEN, SRTCP_INDEX_LEN};
use crate::replay::{estimate_index, ReplayWindow, MAX_RTP_INDEX};

/// Most SSRCs one context tracks, for SRTP and for SRTCP each. A WebRTC
/// session has a handful (audio, video, RTX, a few simulcast layers); the
/// bound keeps a peer that invents SSRCs from growing our memory.
pub const MAX_STREAMS: usize = 64;

/// The E flag of the SRTCP trailer word (RFC 3711 §3.4).
const E_FLAG: u32 = 0x8000_0000;
/// Largest SRTCP index (31 bits).
const MAX_RTCP_INDEX: u32 = 0x7fff_ffff;

/// Keyed primitives for one of SRTP or SRTCP.
struct Transform<B: Backend> {
    salt: [u8; MAX_SALT_LEN],
    cipher: Cipher<B>,
}

enum Cipher<B: Backend> {
    /// AES-CM + HMAC-SHA1 with the RTP tag length of the profile.
    Cm {
        ctr: B::Ctr,
        mac: B::Mac,
    },
    Gcm {
        gcm: B::Gcm,
    },
}

impl<B: Backend> Transform<B> {
    fn new(profile: Profile, keys: &SessionKeys) -> Transform<B> {
        let cipher = if profile.is_aead() {
            Cipher::Gcm {
                gcm: B::gcm_new(&keys.cipher),
            }
        } else {
            Cipher::Cm {
                ctr: B::ctr_new(&keys.cipher),
                mac: B::mac_new(&keys.auth),
            }
        };
        Transform {
            salt: keys.salt,
            cipher,
        }
    }

    /// AES-CM IV (RFC 3711 §4.1.1): (k_s * 2^16) XOR (SSRC * 2^64) XOR
    /// (i * 2^16); also SRTCP's with the SRTCP index as i (§4.1).
    fn cm_iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..MAX_SALT_LEN].copy_from_slice(&self.salt);
        xor(&mut iv[4..8], &ssrc.to_be_bytes());
        xor(&mut iv[8..14], &index.to_be_bytes()[2..]);
        iv
    }

    /// GCM IV (RFC 7714 §8.1 for SRTP: 0x0000 || SSRC || ROC || SEQ; §9.1
    /// for SRTCP: 0x0000 || SSRC || 0x0000 || 0 || SRTCP index), XOR the
    /// 96-bit salt. Both are the 48-bit index after the SSRC.
    fn gcm_nonce(&self, ssrc: u32, index: u64) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&self.salt[..12]);
        xor(&mut nonce[2..6], &ssrc.to_be_bytes());
        xor(&mut nonce[6..12], &index.to_be_bytes()[2..]);
        nonce
    }
}

fn xor(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// SRTP state of one SSRC: the replay window, whose highest index also
/// carries the ROC (RFC 3711 §3.2.1's s_l and ROC).
#[derive(Debug, Clone, Copy)]
struct RtpStream {
    ssrc: u32,
    window: ReplayWindow,
}

/// SRTCP state of one SSRC.
#[derive(Debug, Clone, Copy)]
struct RtcpStream {
    ssrc: u32,
    /// Index of the next SRTCP packet we send (RFC 3711 §3.4: starts at 0).
    next_index: u32,
    /// Received indices; `None` until one authenticates.
    window: Option<ReplayWindow>,
}

/// One direction's SRTP and SRTCP crypto contexts (RFC 3711 §3.2), keyed
/// from one master key and salt, with state per SSRC.
///
/// Use one context to protect what you send and another to unprotect what
/// you receive ([`DtlsSrtpKeys`](crate::DtlsSrtpKeys) gives both master keys).
/// On any `Err` the context's state is unchanged: a forged, replayed or
/// malformed packet moves neither a ROC nor a replay window.
pub struct SrtpContext<B: Backend = DefaultBackend> {
    profile: Profile,
    rtp: Transform<B>,
    rtcp: Transform<B>,
    rtp_streams: Vec<RtpStream>,
    rtcp_streams: Vec<RtcpStream>,
}

impl<B: Backend> std::fmt::Debug for SrtpContext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("backend", &B::NAME)
            .field("rtp_streams", &self.rtp_streams.len())
            .field("rtcp_streams", &self.rtcp_streams.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext<DefaultBackend> {
    /// A context on the default backend, keyed from `master`.
    pub fn new(master: &MasterKeys) -> SrtpContext<DefaultBackend> {
        SrtpContext::with_backend(master)
    }
}

impl<B: Backend> SrtpContext<B> {
    /// A context on backend `B`, keyed from `master` (RFC 3711 §4.3).
    pub fn with_backend(master: &MasterKeys) -> SrtpContext<B> {
        let rtp = SessionKeys::derive(master, false);
        let rtcp = SessionKeys::derive(master, true);
        SrtpContext::from_session_keys(master.profile(), &rtp, &rtcp)
    }

    /// A context from already-derived session keys (RFC 7714's test
    /// vectors are given this way).
    pub fn from_session_keys(
        profile: Profile,
        rtp: &SessionKeys,
        rtcp: &SessionKeys,
    ) -> SrtpContext<B> {
        SrtpContext {
            profile,
            rtp: Transform::new(profile, rtp),
            rtcp: Transform::new(profile, rtcp),
            rtp_streams: Vec::new(),
            rtcp_streams: Vec::new(),
        }
    }

    /// The profile this context was keyed for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The highest SRTP packet index (ROC * 2^16 + SEQ) seen for `ssrc`.
    pub fn rtp_index(&self, ssrc: u32) -> Option<u64> {
        self.rtp_stream(ssrc)
            .map(|i| self.rtp_streams[i].window.highest())
    }

    fn rtp_stream(&self, ssrc: u32) -> Option<usize> {
        self.rtp_streams.iter().position(|s| s.ssrc == ssrc)
    }

    fn rtcp_stream(&self, ssrc: u32) -> Option<usize> {
        self.rtcp_streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// Protects the RTP packet in `buf[..len]` in place and appends the tag;
    /// returns the SRTP packet's length. `buf` must have
    /// [`Profile::rtp_tag_len`] octets of room after `len`.
    ///
    /// The index is estimated from the sequence number like a receiver does
    /// (RFC 3711 §3.3.1), so packets forwarded slightly out of order keep
    /// the right ROC.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let packet = buf.get(..len).ok_or(Error::Truncated)?;
        let header = RtpHeader::new_checked(packet)?;
        let (header_len, seq, ssrc) = (header.len(), header.sequence_number(), header.ssrc());
        let tag_len = self.profile.rtp_tag_len();
        let total = len + tag_len;
        if buf.len() < total {
            return Err(Error::NoTailroom);
        }
        let stream = self.rtp_stream(ssrc);
        let index = match stream {
            Some(i) => estimate_index(self.rtp_streams[i].window.highest(), seq),
            None if self.rtp_streams.len() >= MAX_STREAMS => return Err(Error::TooManyStreams),
            None => u64::from(seq),
        };
        if index > MAX_RTP_INDEX {
            return Err(Error::IndexExhausted);
        }

        match &self.rtp.cipher {
            Cipher::Cm { ctr, mac } => {
                let iv = self.rtp.cm_iv(ssrc, index);
                B::ctr_apply(ctr, &iv, &mut buf[header_len..len])?;
                // RFC 3711 §4.2: the tag covers header, payload and ROC.
                let roc = ((index >> 16) as u32).to_be_bytes();
                let full = B::mac_compute(mac, &buf[..len], &roc);
                buf[len..total].copy_from_slice(&full[..tag_len]);
            }
            Cipher::Gcm { gcm } => {
                let nonce = self.rtp.gcm_nonce(ssrc, index);
                // RFC 7714 §8.2: the header is the associated data.
                let (header, rest) = buf.split_at_mut(header_len);
                let tag = B::gcm_seal(gcm, &nonce, header, &mut rest[..len - header_len])?;
                buf[len..total].copy_from_slice(&tag);
            }
        }

        match stream {
            Some(i) => self.rtp_streams[i].window.accept(index),
            None => self.rtp_streams.push(RtpStream {
                ssrc,
                window: ReplayWindow::new(index),
            }),
        }
        Ok(total)
    }

    /// Verifies and decrypts the SRTP packet in `buf` in place; returns the
    /// RTP packet's length (the tag stripped).
    ///
    /// `Err(Replay)` for a packet already received or older than the
    /// window, `Err(Auth)` for a bad tag; neither changes any state. The
    /// first packet of an SSRC is taken to have ROC 0 (RFC 3711 §3.3.1).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let header = RtpHeader::new_checked(buf)?;
        let (header_len, seq, ssrc) = (header.len(), header.sequence_number(), header.ssrc());
        let tag_len = self.profile.rtp_tag_len();
        let len = buf
            .len()
            .checked_sub(tag_len)
            .filter(|&len| len >= header_len)
            .ok_or(Error::Truncated)?;
        let stream = self.rtp_stream(ssrc);
        let index = match stream {
            Some(i) => {
                let window = &self.rtp_streams[i].window;
                let index = estimate_index(window.highest(), seq);
                window.check(index)?;
                index
            }
            None if self.rtp_streams.len() >= MAX_STREAMS => return Err(Error::TooManyStreams),
            None => u64::from(seq),
        };

        match &self.rtp.cipher {
            Cipher::Cm { ctr, mac } => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                let full = B::mac_compute(mac, &buf[..len], &roc);
                // Verify before decrypting (RFC 3711 §3.3 step 5), in
                // constant time.
                if !bool::from(full[..tag_len].ct_eq(&buf[len..])) {
                    return Err(Error::Auth);
                }
                let iv = self.rtp.cm_iv(ssrc, index);
                B::ctr_apply(ctr, &iv, &mut buf[header_len..len])?;
            }
            Cipher::Gcm { gcm } => {
                let nonce = self.rtp.gcm_nonce(ssrc, index);
                let (header, rest) = buf.split_at_mut(header_len);
                B::gcm_open(gcm, &nonce, header, rest)?;
            }
        }

        match stream {
            Some(i) => self.rtp_streams[i].window.accept(index),
            None => self.rtp_streams.push(RtpStream {
                ssrc,
                window: ReplayWindow::new(index),
            }),
        }
        Ok(len)
    }

    /// Protects the (compound) RTCP packet in `buf[..len]` in place,
    /// encrypted (E = 1), with the sender SSRC's next SRTCP index; returns
    /// the SRTCP packet's length. `buf` must have
    /// [`Profile::rtcp_overhead`] octets of room after `len`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let packet = buf.get(..len).ok_or(Error::Truncated)?;
        let ssrc = RtcpHeader::new_checked(packet)?.ssrc();
        let total = len + self.profile.rtcp_overhead();
        if buf.len() < total {
            return Err(Error::NoTailroom);
        }
        let stream = self.rtcp_stream(ssrc);
        let index = match stream {
            Some(i) => self.rtcp_streams[i].next_index,
            None if self.rtcp_streams.len() >= MAX_STREAMS => return Err(Error::TooManyStreams),
            None => 0,
        };
        if index > MAX_RTCP_INDEX {
            return Err(Error::IndexExhausted);
        }
        let word = (E_FLAG | index).to_be_bytes();

        match &self.rtcp.cipher {
            Cipher::Cm { ctr, mac } => {
                // RFC 3711 §3.4: header | encrypted | E+index | tag, the tag
                // covering everything before it.
                let iv = self.rtcp.cm_iv(ssrc, u64::from(index));
                B::ctr_apply(ctr, &iv, &mut buf[RTCP_HEADER_LEN..len])?;
                buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&word);
                let full = B::mac_compute(mac, &buf[..len + SRTCP_INDEX_LEN], &[]);
                let tag_len = total - len - SRTCP_INDEX_LEN;
                buf[len + SRTCP_INDEX_LEN..total].copy_from_slice(&full[..tag_len]);
            }
            Cipher::Gcm { gcm } => {
                // RFC 7714 §9: header | ciphertext | tag | E+index, with the
                // header and E+index as associated data (§9.2).
                let nonce = self.rtcp.gcm_nonce(ssrc, u64::from(index));
                let (header, rest) = buf.split_at_mut(RTCP_HEADER_LEN);
                let aad = rtcp_aad(header, &word);
                let tag = B::gcm_seal(gcm, &nonce, &aad, &mut rest[..len - RTCP_HEADER_LEN])?;
                buf[len..len + GCM_TAG_LEN].copy_from_slice(&tag);
                buf[len + GCM_TAG_LEN..total].copy_from_slice(&word);
            }
        }

        match stream {
            Some(i) => self.rtcp_streams[i].next_index = index + 1,
            None => self.rtcp_streams.push(RtcpStream {
                ssrc,
                next_index: index + 1,
                window: None,
            }),
        }
        Ok(total)
    }

    /// Verifies and (if its E flag is set) decrypts the SRTCP packet in `buf`
    /// in place; returns the RTCP packet's length. Replay-checked on the
    /// SRTCP index (RFC 3711 §3.4).
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let ssrc = RtcpHeader::new_checked(buf)?.ssrc();
        let tag_len = self.profile.rtcp_tag_len();
        let len = buf
            .len()
            .checked_sub(tag_len + SRTCP_INDEX_LEN)
            .filter(|&len| len >= RTCP_HEADER_LEN)
            .ok_or(Error::Truncated)?;
        let word_at = match self.rtcp.cipher {
            Cipher::Cm { .. } => len,
            Cipher::Gcm { .. } => len + GCM_TAG_LEN,
        };
        let mut word = [0u8; SRTCP_INDEX_LEN];
        word.copy_from_slice(&buf[word_at..word_at + SRTCP_INDEX_LEN]);
        let e_index = u32::from_be_bytes(word);
        let encrypted = e_index & E_FLAG != 0;
        let index = e_index & MAX_RTCP_INDEX;

        let stream = self.rtcp_stream(ssrc);
        match stream {
            Some(i) => {
                if let Some(window) = &self.rtcp_streams[i].window {
                    window.check(u64::from(index))?;
                }
            }
            None if self.rtcp_streams.len() >= MAX_STREAMS => return Err(Error::TooManyStreams),
            None => {}
        }

        match &self.rtcp.cipher {
            Cipher::Cm { ctr, mac } => {
                let full = B::mac_compute(mac, &buf[..len + SRTCP_INDEX_LEN], &[]);
                if !bool::from(full[..tag_len].ct_eq(&buf[len + SRTCP_INDEX_LEN..])) {
                    return Err(Error::Auth);
                }
                if encrypted {
                    let iv = self.rtcp.cm_iv(ssrc, u64::from(index));
                    B::ctr_apply(ctr, &iv, &mut buf[RTCP_HEADER_LEN..len])?;
                }
            }
            Cipher::Gcm { gcm } => {
                let nonce = self.rtcp.gcm_nonce(ssrc, u64::from(index));
                if encrypted {
                    let (header, rest) = buf.split_at_mut(RTCP_HEADER_LEN);
                    let aad = rtcp_aad(header, &word);
                    B::gcm_open(
                        gcm,
                        &nonce,
                        &aad,
                        &mut rest[..len + GCM_TAG_LEN - RTCP_HEADER_LEN],
                    )?;
                } else {
                    // RFC 7714 §9.3 (E = 0): the whole packet and E+index
                    // are associated data, the plaintext is empty. Move the
                    // word to just after the packet so the AAD is one slice.
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(&buf[len..len + GCM_TAG_LEN]);
                    buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&word);
                    B::gcm_open(gcm, &nonce, &buf[..len + SRTCP_INDEX_LEN], &mut tag)?;
                }
            }
        }

        match stream {
            Some(i) => {
                let stream = &mut self.rtcp_streams[i];
                match &mut stream.window {
                    Some(window) => window.accept(u64::from(index)),
                    None => stream.window = Some(ReplayWindow::new(u64::from(index))),
                }
            }
            None => self.rtcp_streams.push(RtcpStream {
                ssrc,
                next_index: 0,
                window: Some(ReplayWindow::new(u64::from(index))),
            }),
        }
        Ok(len)
    }
}

/// SRTCP GCM associated data for E = 1: the 8-octet header and E+index.
fn rtcp_aad(
    header: &[u8],
    word: &[u8; SRTCP_INDEX_LEN],
) -> [u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN] {
    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
    aad[..RTCP_HEADER_LEN].copy_from_slice(header);
    aad[RTCP_HEADER_LEN..].copy_from_slice(word);
    aad
}
