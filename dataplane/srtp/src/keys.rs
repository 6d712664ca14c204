//! Keys: master keys as DTLS-SRTP exports them (RFC 5764 §4.2) and the
//! session keys derived from them with the AES-CM PRF (RFC 3711 §4.3.1,
//! §4.3.3), with a key derivation rate of zero.
//!
//! The derivation runs once per context, not per packet, so it always uses
//! the RustCrypto AES block cipher whatever the packet backend is.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128Enc;

use crate::error::Error;
use crate::profile::{Profile, AUTH_KEY_LEN, KEY_LEN, MAX_SALT_LEN};

/// RFC 3711 §4.3.1 key derivation labels (the SRTCP ones are §4.3.2).
mod label {
    pub const RTP_ENCRYPTION: u8 = 0x00;
    pub const RTP_AUTH: u8 = 0x01;
    pub const RTP_SALT: u8 = 0x02;
    pub const RTCP_ENCRYPTION: u8 = 0x03;
    pub const RTCP_AUTH: u8 = 0x04;
    pub const RTCP_SALT: u8 = 0x05;
}

/// One side's master key and master salt.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKeys {
    profile: Profile,
    key: [u8; KEY_LEN],
    /// Only the first `profile.salt_len()` octets are used.
    salt: [u8; MAX_SALT_LEN],
}

// Keys stay out of logs.
impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl MasterKeys {
    /// Master keys from their parts; the lengths must match the profile.
    pub fn new(profile: Profile, key: &[u8], salt: &[u8]) -> Result<MasterKeys, Error> {
        let key: [u8; KEY_LEN] = key.try_into().map_err(|_| Error::KeyLength)?;
        if salt.len() != profile.salt_len() {
            return Err(Error::KeyLength);
        }
        let mut padded = [0u8; MAX_SALT_LEN];
        padded[..salt.len()].copy_from_slice(salt);
        Ok(MasterKeys {
            profile,
            key,
            salt: padded,
        })
    }

    /// The profile these keys are for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The master salt (12 or 14 octets).
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.profile.salt_len()]
    }
}

/// Which end of the DTLS handshake we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// DTLS client (`a=setup:active`).
    Client,
    /// DTLS server (`a=setup:passive`).
    Server,
}

/// The two directions' master keys from one DTLS-SRTP export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsSrtpKeys {
    /// Protects what we send.
    pub local: MasterKeys,
    /// Unprotects what we receive.
    pub remote: MasterKeys,
}

impl DtlsSrtpKeys {
    /// Splits the output of the TLS exporter with label
    /// `EXTRACTOR-dtls_srtp` (RFC 5764 §4.2): it is laid out as
    /// `client_write_key | server_write_key | client_write_salt |
    /// server_write_salt`, and the client sends with the client keys.
    pub fn from_exporter(
        profile: Profile,
        role: Role,
        material: &[u8],
    ) -> Result<DtlsSrtpKeys, Error> {
        if material.len() != profile.exporter_len() {
            return Err(Error::KeyLength);
        }
        let (k, s) = (profile.key_len(), profile.salt_len());
        let (keys, salts) = material.split_at(2 * k);
        let (client_key, server_key) = keys.split_at(k);
        let (client_salt, server_salt) = salts.split_at(s);
        let client = MasterKeys::new(profile, client_key, client_salt)?;
        let server = MasterKeys::new(profile, server_key, server_salt)?;
        Ok(match role {
            Role::Client => DtlsSrtpKeys {
                local: client,
                remote: server,
            },
            Role::Server => DtlsSrtpKeys {
                local: server,
                remote: client,
            },
        })
    }
}

/// Session keys for one of SRTP or SRTCP.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// k_e, the AES-128 session encryption key.
    pub cipher: [u8; KEY_LEN],
    /// k_s, the session salt; GCM uses the first 12 octets.
    pub salt: [u8; MAX_SALT_LEN],
    /// k_a, the HMAC-SHA1 key; unused by GCM.
    pub auth: [u8; AUTH_KEY_LEN],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives the SRTP (`rtcp == false`) or SRTCP session keys from master
    /// keys (RFC 3711 §4.3.1 with kdr = 0, so `r = index DIV kdr = 0`).
    pub fn derive(master: &MasterKeys, rtcp: bool) -> SessionKeys {
        let prf = Aes128Enc::new(&master.key.into());
        let (l_enc, l_auth, l_salt) = if rtcp {
            (label::RTCP_ENCRYPTION, label::RTCP_AUTH, label::RTCP_SALT)
        } else {
            (label::RTP_ENCRYPTION, label::RTP_AUTH, label::RTP_SALT)
        };
        let mut keys = SessionKeys {
            cipher: [0; KEY_LEN],
            salt: [0; MAX_SALT_LEN],
            auth: [0; AUTH_KEY_LEN],
        };
        prf_fill(&prf, &master.salt, l_enc, &mut keys.cipher);
        prf_fill(&prf, &master.salt, l_auth, &mut keys.auth);
        let salt_len = master.profile.salt_len();
        prf_fill(&prf, &master.salt, l_salt, &mut keys.salt[..salt_len]);
        keys
    }
}

/// The AES-CM PRF (RFC 3711 §4.3.3): the keystream of AES-CM keyed with the
/// master key, IV = (key_id XOR master_salt) * 2^16 where key_id = label ||
/// r and r = 0. The 56-bit key_id puts the label at octet 7 of the 14-octet
/// salt. A 12-octet GCM salt sits at the front with two zero octets after
/// it, as libsrtp and the browsers do (RFC 7714 §11 reuses this PRF).
fn prf_fill(prf: &Aes128Enc, master_salt: &[u8; MAX_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..MAX_SALT_LEN].copy_from_slice(master_salt);
    iv[7] ^= label;
    for (counter, chunk) in (0u16..).zip(out.chunks_mut(16)) {
        let mut block = iv;
        block[14..].copy_from_slice(&counter.to_be_bytes());
        let mut block = block.into();
        prf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex;

    /// RFC 3711 Appendix B.3, checked against the RFC text byte by byte.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = MasterKeys::new(
            Profile::Aes128CmSha1_80,
            &unhex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &unhex("0EC675AD498AFEEBB6960B3AABE6"),
        )
        .unwrap();
        let keys = SessionKeys::derive(&master, false);
        assert_eq!(
            keys.cipher.to_vec(),
            unhex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(keys.salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        // B.3 prints 94 octets of auth keystream; SHA1-80 uses the first 20.
        assert_eq!(
            keys.auth.to_vec(),
            unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
        // The full 94 octets, to check the PRF's counter runs over blocks.
        let mut long = [0u8; 94];
        prf_fill(
            &Aes128Enc::new(&master.key.into()),
            &master.salt,
            label::RTP_AUTH,
            &mut long,
        );
        assert_eq!(
            long.to_vec(),
            unhex(
                "CEBE321F6FF7716B6FD4AB49AF256A15\
                 6D38BAA48F0A0ACF3C34E2359E6CDBCE\
                 E049646C43D9327AD175578EF7227098\
                 6371C10C9A369AC2F94A8C5FBCDDDC25\
                 6D6E919A48B610EF17C2041E47403576\
                 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    #[test]
    fn srtcp_keys_differ_from_srtp_keys() {
        let master = MasterKeys::new(Profile::AeadAes128Gcm, &[7; 16], &[9; 12]).unwrap();
        let rtp = SessionKeys::derive(&master, false);
        let rtcp = SessionKeys::derive(&master, true);
        assert_ne!(rtp.cipher, rtcp.cipher);
        assert_ne!(rtp.salt, rtcp.salt);
        // GCM salts are 12 octets: the rest stays zero.
        assert_eq!(&rtp.salt[12..], &[0, 0]);
    }

    #[test]
    fn master_key_lengths_are_checked() {
        let p = Profile::AeadAes128Gcm;
        assert_eq!(
            MasterKeys::new(p, &[0; 15], &[0; 12]),
            Err(Error::KeyLength)
        );
        assert_eq!(
            MasterKeys::new(p, &[0; 16], &[0; 14]),
            Err(Error::KeyLength)
        );
        assert!(MasterKeys::new(Profile::Aes128CmSha1_80, &[0; 16], &[0; 14]).is_ok());
    }

    #[test]
    fn exporter_split_follows_rfc5764_layout() {
        let p = Profile::Aes128CmSha1_80;
        // client key = 0x01.., server key = 0x02.., client salt = 0x03..,
        // server salt = 0x04..
        let mut material = Vec::new();
        material.extend([1u8; 16]);
        material.extend([2u8; 16]);
        material.extend([3u8; 14]);
        material.extend([4u8; 14]);
        let client = DtlsSrtpKeys::from_exporter(p, Role::Client, &material).unwrap();
        assert_eq!(client.local.key(), &[1; 16]);
        assert_eq!(client.local.salt(), &[3; 14]);
        assert_eq!(client.remote.key(), &[2; 16]);
        assert_eq!(client.remote.salt(), &[4; 14]);
        let server = DtlsSrtpKeys::from_exporter(p, Role::Server, &material).unwrap();
        assert_eq!(server.local, client.remote);
        assert_eq!(server.remote, client.local);
        assert_eq!(
            DtlsSrtpKeys::from_exporter(p, Role::Client, &material[1..]),
            Err(Error::KeyLength)
        );
        let gcm =
            DtlsSrtpKeys::from_exporter(Profile::AeadAes128Gcm, Role::Client, &[5; 56]).unwrap();
        assert_eq!(gcm.local.salt().len(), 12);
    }
}
