//! The relay's (or a test peer's) DTLS certificate and its fingerprint.
//!
//! WebRTC authenticates DTLS with self-signed certificates whose SHA-256
//! fingerprint travels in the SDP (`a=fingerprint:sha-256 …`, RFC 8122 §5);
//! browsers require ECDSA P-256 or RSA (RFC 8827 §6.5), and dimpl signs
//! only with ECDSA, so uturn uses P-256. One certificate serves every
//! session of a process, so it is generated once and shared behind an
//! `Arc`.

use std::fmt;
use std::sync::Arc;

use dimpl::DtlsCertificate;

use crate::Error;

/// A self-signed ECDSA P-256 certificate with its private key. Cloning is
/// cheap (an `Arc`).
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    dtls: DtlsCertificate,
    fingerprint: [u8; 32],
}

impl Certificate {
    /// Generates a fresh key pair and a self-signed certificate (random
    /// serial number, valid for a year from now).
    pub fn generate() -> Result<Certificate, Error> {
        let dtls = dimpl::certificate::generate_self_signed_certificate()
            .map_err(|e| Error::Certificate(e.to_string()))?;
        Certificate::from_dtls(dtls)
    }

    /// A certificate from its DER encoding and its private key (PKCS#8
    /// DER), for a key kept across restarts.
    pub fn from_der(certificate: Vec<u8>, private_key: Vec<u8>) -> Result<Certificate, Error> {
        Certificate::from_dtls(DtlsCertificate {
            certificate,
            private_key,
        })
    }

    fn from_dtls(dtls: DtlsCertificate) -> Result<Certificate, Error> {
        let fingerprint = sha256_fingerprint(&dtls.certificate)
            .ok_or_else(|| Error::Certificate("SHA-256 digest is not 32 bytes".into()))?;
        Ok(Certificate {
            inner: Arc::new(Inner { dtls, fingerprint }),
        })
    }

    /// SHA-256 of the DER certificate: the `a=fingerprint:sha-256` value
    /// (RFC 8122 §5).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint
    }

    /// The DER-encoded certificate.
    pub fn der(&self) -> &[u8] {
        &self.inner.dtls.certificate
    }

    /// What dimpl needs to construct an endpoint (one copy per association).
    pub(crate) fn dtls(&self) -> DtlsCertificate {
        self.inner.dtls.clone()
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("Certificate")
            .field("fingerprint", &Hex(&self.inner.fingerprint))
            .finish_non_exhaustive()
    }
}

/// SHA-256 over a DER certificate, the RFC 8122 fingerprint.
pub(crate) fn sha256_fingerprint(der: &[u8]) -> Option<[u8; 32]> {
    dimpl::certificate::calculate_fingerprint(der)
        .try_into()
        .ok()
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_of_der() {
        let cert = Certificate::generate().unwrap();
        // SHA-256 of the DER, computed independently of the cached value.
        let again = sha256_fingerprint(cert.der()).unwrap();
        assert_eq!(cert.fingerprint(), again);
        assert_ne!(cert.fingerprint(), [0; 32]);
    }

    #[test]
    fn fingerprint_known_vector() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        let digest = sha256_fingerprint(b"abc").unwrap();
        assert_eq!(
            format!("{:?}", Hex(&digest[..4])),
            "BA:78:16:BF",
            "SHA-256(\"abc\") starts ba7816bf"
        );
    }

    #[test]
    fn every_certificate_is_new() {
        let a = Certificate::generate().unwrap();
        let b = Certificate::generate().unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn clone_shares_and_debug_hides_the_key() {
        let a = Certificate::generate().unwrap();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        let text = format!("{a:?}");
        assert!(text.contains("fingerprint"));
        assert!(!text.contains("private"));
    }

    #[test]
    fn from_der_round_trips() {
        let a = Certificate::generate().unwrap();
        let b = Certificate::from_der(
            a.inner.dtls.certificate.clone(),
            a.inner.dtls.private_key.clone(),
        )
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
    }
}
