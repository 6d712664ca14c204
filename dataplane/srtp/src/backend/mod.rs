//! The crypto primitives SRTP needs, behind one small trait so the protocol
//! code is written once and the primitives can come from either of two
//! well-kept libraries:
//!
//! - [`RustCrypto`]: the `aes`, `ctr`, `aes-gcm`, `hmac` and `sha1` crates
//!   (pure Rust, AES-NI/PCLMULQDQ detected at run time);
//! - [`AwsLc`] (feature `aws-lc`): `aws-lc-rs`, AWS-LC's assembly.
//!
//! [`DefaultBackend`] is the one the benchmarks picked: [`BestOf`], AES-GCM
//! from aws-lc-rs (about 5x faster than RustCrypto's here) and AES-CM +
//! HMAC-SHA1 from RustCrypto (about 5% faster than aws-lc-rs; HMAC-SHA1
//! dominates and both use the CPU's SHA extensions). README.md has the
//! numbers. Every method works on caller memory: nothing allocates.

mod rust_crypto;
pub use rust_crypto::RustCrypto;

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "aws-lc")]
pub use aws_lc::AwsLc;

use crate::error::Error;

/// The backend [`SrtpContext::new`](crate::SrtpContext::new) uses.
#[cfg(feature = "aws-lc")]
pub type DefaultBackend = BestOf;
/// The backend [`SrtpContext::new`](crate::SrtpContext::new) uses.
#[cfg(not(feature = "aws-lc"))]
pub type DefaultBackend = RustCrypto;

/// SRTP's three primitives, keyed once per context and then used per packet.
///
/// Implemented by the backends of this crate only; the associated types are
/// the libraries' own keyed states.
pub trait Backend: std::fmt::Debug + 'static {
    /// AES-128 keyed for counter mode.
    type Ctr: Send + Sync;
    /// HMAC-SHA1 keyed with the session authentication key.
    type Mac: Send + Sync;
    /// AES-128-GCM keyed with the session key.
    type Gcm: Send + Sync;

    /// A short name for benchmarks and logs.
    const NAME: &'static str;

    /// Keys AES-CM.
    fn ctr_new(key: &[u8; 16]) -> Self::Ctr;
    /// XORs `data` with the AES-CM keystream starting at counter block `iv`
    /// (RFC 3711 §4.1.1: the counter is the whole 128-bit block).
    fn ctr_apply(ctr: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), Error>;

    /// Keys HMAC-SHA1.
    fn mac_new(key: &[u8; 20]) -> Self::Mac;
    /// HMAC-SHA1 over `a || b` (RFC 3711 §4.2.1; `b` is the ROC or empty).
    fn mac_compute(mac: &Self::Mac, a: &[u8], b: &[u8]) -> [u8; 20];

    /// Keys AES-128-GCM.
    fn gcm_new(key: &[u8; 16]) -> Self::Gcm;
    /// Encrypts `data` in place and returns the 16-octet tag.
    fn gcm_seal(
        gcm: &Self::Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], Error>;
    /// Verifies the tag in the last 16 octets of `data_and_tag` and decrypts
    /// the rest in place; `Err(Auth)` if the tag is wrong.
    fn gcm_open(
        gcm: &Self::Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data_and_tag: &mut [u8],
    ) -> Result<(), Error>;
}

/// Each primitive from the backend that measured fastest on our machines
/// (`benches/srtp.rs`, `examples/srtp_min_time.rs`): AES-CTR and
/// HMAC-SHA1 from [`RustCrypto`], AES-128-GCM from [`AwsLc`]. The two
/// compute the same bytes (`tests::backends_agree`), so mixing is safe.
#[cfg(feature = "aws-lc")]
#[derive(Debug)]
pub struct BestOf;

#[cfg(feature = "aws-lc")]
impl Backend for BestOf {
    type Ctr = <RustCrypto as Backend>::Ctr;
    type Mac = <RustCrypto as Backend>::Mac;
    type Gcm = <AwsLc as Backend>::Gcm;

    const NAME: &'static str = "best-of";

    fn ctr_new(key: &[u8; 16]) -> Self::Ctr {
        RustCrypto::ctr_new(key)
    }

    fn ctr_apply(ctr: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), Error> {
        RustCrypto::ctr_apply(ctr, iv, data)
    }

    fn mac_new(key: &[u8; 20]) -> Self::Mac {
        RustCrypto::mac_new(key)
    }

    fn mac_compute(mac: &Self::Mac, a: &[u8], b: &[u8]) -> [u8; 20] {
        RustCrypto::mac_compute(mac, a, b)
    }

    fn gcm_new(key: &[u8; 16]) -> Self::Gcm {
        AwsLc::gcm_new(key)
    }

    fn gcm_seal(
        gcm: &Self::Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], Error> {
        AwsLc::gcm_seal(gcm, nonce, aad, data)
    }

    fn gcm_open(
        gcm: &Self::Gcm,
        nonce: &[u8; 12],
        aad: &[u8],
        data_and_tag: &mut [u8],
    ) -> Result<(), Error> {
        AwsLc::gcm_open(gcm, nonce, aad, data_and_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex;

    /// RFC 3711 Appendix B.2: the AES-CM keystream for a 1044512-octet
    /// segment; the first three and last three blocks are printed there.
    fn rfc3711_b2<B: Backend>() {
        let ctr = B::ctr_new(
            &unhex("2B7E151628AED2A6ABF7158809CF4F3C")
                .try_into()
                .unwrap(),
        );
        let iv: [u8; 16] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
            .try_into()
            .unwrap();
        let mut stream = vec![0u8; 1_044_512];
        B::ctr_apply(&ctr, &iv, &mut stream).unwrap();
        assert_eq!(
            stream[..48].to_vec(),
            unhex(
                "E03EAD0935C95E80E166B16DD92B4EB4\
                 D23513162B02D0F72A43A2FE4A5F97AB\
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
        assert_eq!(
            stream[stream.len() - 48..].to_vec(),
            unhex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4\
                 362B7C3C6773516318A077D7FC5073AE\
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )
        );
    }

    /// RFC 7714 §16.1.1 at the primitive level: IV 51753c6580c2726f20718414
    /// is the salt XORed with SSRC/ROC/SEQ (§8.1), AAD the 12-octet header.
    fn rfc7714_gcm<B: Backend>() {
        let gcm = B::gcm_new(
            &unhex("000102030405060708090a0b0c0d0e0f")
                .try_into()
                .unwrap(),
        );
        let nonce: [u8; 12] = unhex("51753c6580c2726f20718414").try_into().unwrap();
        let aad = unhex("8040f17b8041f8d35501a0b2");
        let plain =
            unhex("47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573");
        let mut data = plain.clone();
        let tag = B::gcm_seal(&gcm, &nonce, &aad, &mut data).unwrap();
        assert_eq!(
            data,
            unhex("f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833")
        );
        assert_eq!(tag.to_vec(), unhex("899d7f27beb16a9152cf765ee4390cce"));
        data.extend_from_slice(&tag);
        B::gcm_open(&gcm, &nonce, &aad, &mut data).unwrap();
        assert_eq!(&data[..plain.len()], &plain[..]);
        let mut forged = data.clone();
        forged[0] ^= 1;
        assert_eq!(
            B::gcm_open(&gcm, &nonce, &aad, &mut forged),
            Err(Error::Auth)
        );
    }

    /// RFC 2202 test case 2 for HMAC-SHA1 needs a 4-octet key, so check the
    /// split input instead: a||b must equal the one-shot MAC of the whole.
    fn mac_split<B: Backend>() {
        let mac = B::mac_new(&[0x0b; 20]);
        let whole = B::mac_compute(&mac, b"Hi There", &[]);
        let split = B::mac_compute(&mac, b"Hi ", b"There");
        assert_eq!(whole, split);
        // RFC 2202 test case 1: key = 0x0b * 20, data = "Hi There".
        assert_eq!(
            whole.to_vec(),
            unhex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
    }

    #[test]
    fn rust_crypto_vectors() {
        rfc3711_b2::<RustCrypto>();
        rfc7714_gcm::<RustCrypto>();
        mac_split::<RustCrypto>();
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_vectors() {
        rfc3711_b2::<AwsLc>();
        rfc7714_gcm::<AwsLc>();
        mac_split::<AwsLc>();
        rfc3711_b2::<BestOf>();
        rfc7714_gcm::<BestOf>();
        mac_split::<BestOf>();
    }
}
