//! The aws-lc-rs backend: AWS-LC's AES-CTR, HMAC-SHA1 and AES-128-GCM.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::hmac;

use super::Backend;
use crate::error::Error;

/// Primitives from AWS-LC through `aws-lc-rs`.
#[derive(Debug)]
pub struct AwsLc;

impl Backend for AwsLc {
    type Ctr = EncryptingKey;
    type Mac = hmac::Key;
    type Gcm = LessSafeKey;

    const NAME: &'static str = "aws-lc";

    fn ctr_new(key: &[u8; 16]) -> EncryptingKey {
        // A 16-octet key for AES-128 in CTR mode is always accepted.
        UnboundCipherKey::new(&AES_128, key)
            .and_then(EncryptingKey::ctr)
            .unwrap_or_else(|_| unreachable!())
    }

    fn ctr_apply(ctr: &EncryptingKey, iv: &[u8; 16], data: &mut [u8]) -> Result<(), Error> {
        // "less safe" only because the caller picks the IV: SRTP's IV is
        // unique per packet by construction (RFC 3711 §4.1.1).
        ctr.less_safe_encrypt(data, EncryptionContext::Iv128((*iv).into()))
            .map(|_| ())
            .map_err(|_| Error::Crypto)
    }

    fn mac_new(key: &[u8; 20]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key)
    }

    fn mac_compute(mac: &hmac::Key, a: &[u8], b: &[u8]) -> [u8; 20] {
        let mut ctx = hmac::Context::with_key(mac);
        ctx.update(a);
        ctx.update(b);
        let tag = ctx.sign();
        let mut out = [0u8; 20];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn gcm_new(key: &[u8; 16]) -> LessSafeKey {
        // A 16-octet key for AES-128-GCM is always accepted.
        LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).unwrap_or_else(|_| unreachable!()))
    }

    fn gcm_seal(
        gcm: &LessSafeKey,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], Error> {
        let tag = gcm
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data)
            .map_err(|_| Error::Crypto)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn gcm_open(
        gcm: &LessSafeKey,
        nonce: &[u8; 12],
        aad: &[u8],
        data_and_tag: &mut [u8],
    ) -> Result<(), Error> {
        gcm.open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            data_and_tag,
        )
        .map(|_| ())
        .map_err(|_| Error::Auth)
    }
}
