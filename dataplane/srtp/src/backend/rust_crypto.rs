//! The RustCrypto backend: `aes` + `ctr`, `aes-gcm`, `hmac` + `sha1`.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128Enc;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::Aes128Gcm;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::Backend;
use crate::error::Error;

/// Pure-Rust primitives from the RustCrypto project.
#[derive(Debug)]
pub struct RustCrypto;

impl Backend for RustCrypto {
    type Ctr = Aes128Enc;
    type Mac = Hmac<Sha1>;
    type Gcm = Aes128Gcm;

    const NAME: &'static str = "rustcrypto";

    fn ctr_new(key: &[u8; 16]) -> Aes128Enc {
        Aes128Enc::new(key.into())
    }

    fn ctr_apply(ctr: &Aes128Enc, iv: &[u8; 16], data: &mut [u8]) -> Result<(), Error> {
        // Borrowing the keyed cipher: no key schedule and no copy per packet.
        let core =
            ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(ctr, iv.into());
        let mut stream = ctr::cipher::StreamCipherCoreWrapper::from_core(core);
        stream.try_apply_keystream(data).map_err(|_| Error::Crypto)
    }

    fn mac_new(key: &[u8; 20]) -> Hmac<Sha1> {
        // HMAC accepts keys of any length: a 20-octet key cannot fail.
        <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
    }

    fn mac_compute(mac: &Hmac<Sha1>, a: &[u8], b: &[u8]) -> [u8; 20] {
        // The clone copies the precomputed inner/outer states (stack only).
        let mut mac = mac.clone();
        mac.update(a);
        mac.update(b);
        mac.finalize().into_bytes().into()
    }

    fn gcm_new(key: &[u8; 16]) -> Aes128Gcm {
        Aes128Gcm::new(key.into())
    }

    fn gcm_seal(
        gcm: &Aes128Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], Error> {
        gcm.encrypt_in_place_detached(nonce.into(), aad, data)
            .map(Into::into)
            .map_err(|_| Error::Crypto)
    }

    fn gcm_open(
        gcm: &Aes128Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data_and_tag: &mut [u8],
    ) -> Result<(), Error> {
        let split = data_and_tag.len().checked_sub(16).ok_or(Error::Truncated)?;
        let (data, tag) = data_and_tag.split_at_mut(split);
        let tag: &[u8] = tag;
        gcm.decrypt_in_place_detached(nonce.into(), aad, data, tag.into())
            .map_err(|_| Error::Auth)
    }
}
