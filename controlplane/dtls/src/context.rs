//! A validated DTLS configuration, built once and shared by every
//! association made from it.
//!
//! Building a dimpl `Config` runs a self-test of its crypto provider
//! (`CryptoProvider::validate`, vendor/dimpl/src/crypto/validation: a P-384
//! key exchange and ECDSA signature verifications), which costs more than
//! the rest of a server's handshake. The built `Config` is immutable and
//! dimpl takes it behind an `Arc` ("DTLS configuration shared by all
//! connections", its rustdoc says), so uturn builds it once per distinct
//! [`DtlsConfig`] and hands the same one to every [`crate::Endpoint`].
//!
//! A long-lived owner (a worker's media engine) keeps a [`DtlsContext`]
//! and calls [`crate::Endpoint::with_context`]; [`crate::Endpoint::new`],
//! for callers that hold only a [`DtlsConfig`], looks its context up in a
//! small process-wide table ([`DtlsContext::shared`]), so they share too.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use dimpl::SrtpProfile;
use uturn_srtp::Profile;

use crate::endpoint::HANDSHAKE_TIMEOUT;
use crate::{DtlsConfig, Error};

/// Distinct configurations [`DtlsContext::shared`] keeps. A process uses
/// one or two (the relay's, a test peer's); the bound only keeps a caller
/// that varies its MTU per association from growing the table.
const MAX_SHARED: usize = 8;

/// The contexts [`DtlsContext::shared`] hands out.
static SHARED: Mutex<Table> = Mutex::new(Table {
    entries: Vec::new(),
});

/// A [`DtlsConfig`] checked and turned into dimpl's validated `Config`
/// once. Cloning is cheap (an `Arc`); every endpoint made from a context
/// and its clones shares one dimpl `Config`.
#[derive(Clone)]
pub struct DtlsContext {
    inner: Arc<Inner>,
}

struct Inner {
    /// As given (for [`DtlsContext::shared`]'s look-up).
    config: DtlsConfig,
    /// The profiles we allow, preference order, without duplicates, all
    /// implemented by dimpl.
    profiles: Vec<Profile>,
    dimpl: Arc<dimpl::Config>,
}

impl DtlsContext {
    /// Checks `config` and builds dimpl's configuration from it (this runs
    /// dimpl's crypto self-test). `Err(Config)` when no configured profile
    /// is one both dimpl and uturn-srtp implement, or dimpl refuses the
    /// settings.
    pub fn new(config: &DtlsConfig) -> Result<DtlsContext, Error> {
        let mut profiles = Vec::with_capacity(config.profiles.len());
        let mut offered = Vec::with_capacity(config.profiles.len());
        for &p in &config.profiles {
            if let Some(d) = to_dimpl(p) {
                if !profiles.contains(&p) {
                    profiles.push(p);
                    offered.push(d);
                }
            }
        }
        if profiles.is_empty() {
            return Err(Error::Config(
                "no SRTP profile that both dimpl and uturn-srtp implement".into(),
            ));
        }
        let dimpl = dimpl::Config::builder()
            .mtu(config.mtu)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .srtp_profiles(&offered)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(DtlsContext {
            inner: Arc::new(Inner {
                config: config.clone(),
                profiles,
                dimpl: Arc::new(dimpl),
            }),
        })
    }

    /// The process-wide context for `config`: built by the first call,
    /// then the same one for every equal `config`. An error is not kept
    /// (the next call tries again).
    pub fn shared(config: &DtlsConfig) -> Result<DtlsContext, Error> {
        // The table is valid after any panic (a push or a remove either
        // happened or not), so a poisoned lock is still usable. Built
        // under the lock, so that threads asking for the same
        // configuration at once validate it once, not once each.
        SHARED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_build(config)
    }

    /// The configuration this context was made from.
    pub fn config(&self) -> &DtlsConfig {
        &self.inner.config
    }

    /// Whether `self` and `other` share one dimpl configuration.
    pub fn ptr_eq(&self, other: &DtlsContext) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The allowed profiles in preference order, each implemented by dimpl.
    pub(crate) fn profiles(&self) -> &[Profile] {
        &self.inner.profiles
    }

    /// dimpl's validated configuration, for `Dtls::new_12`.
    pub(crate) fn dimpl(&self) -> Arc<dimpl::Config> {
        Arc::clone(&self.inner.dimpl)
    }
}

/// Contexts by configuration, oldest first, at most [`MAX_SHARED`].
struct Table {
    entries: Vec<DtlsContext>,
}

impl Table {
    fn get_or_build(&mut self, config: &DtlsConfig) -> Result<DtlsContext, Error> {
        if let Some(found) = self.entries.iter().find(|c| c.inner.config == *config) {
            return Ok(found.clone());
        }
        let context = DtlsContext::new(config)?;
        if self.entries.len() >= MAX_SHARED {
            self.entries.remove(0);
        }
        self.entries.push(context.clone());
        Ok(context)
    }
}

impl fmt::Debug for DtlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsContext")
            .field("profiles", &self.inner.profiles)
            .field("mtu", &self.inner.config.mtu)
            .finish_non_exhaustive()
    }
}

pub(crate) fn to_dimpl(profile: Profile) -> Option<SrtpProfile> {
    match profile {
        Profile::AeadAes128Gcm => Some(SrtpProfile::AEAD_AES_128_GCM),
        Profile::Aes128CmSha1_80 => Some(SrtpProfile::AES128_CM_SHA1_80),
        // dimpl does not implement SRTP_AES128_CM_HMAC_SHA1_32 (nor would
        // it know a profile added to uturn-srtp later).
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_returns_one_context_per_config() {
        let config = DtlsConfig {
            mtu: 1187,
            ..DtlsConfig::default()
        };
        let a = DtlsContext::shared(&config).unwrap();
        let b = DtlsContext::shared(&config.clone()).unwrap();
        assert!(a.ptr_eq(&b));
        assert!(Arc::ptr_eq(&a.dimpl(), &b.dimpl()));
        assert_eq!(a.config(), &config);

        let other = DtlsConfig {
            profiles: vec![Profile::Aes128CmSha1_80],
            ..config.clone()
        };
        let c = DtlsContext::shared(&other).unwrap();
        assert!(!a.ptr_eq(&c));
        assert_eq!(c.profiles(), &[Profile::Aes128CmSha1_80]);
    }

    #[test]
    fn new_builds_a_fresh_context() {
        let config = DtlsConfig::default();
        let a = DtlsContext::new(&config).unwrap();
        let b = DtlsContext::new(&config).unwrap();
        assert!(!a.ptr_eq(&b));
        assert!(a.clone().ptr_eq(&a));
    }

    #[test]
    fn profiles_are_filtered_and_deduplicated() {
        let config = DtlsConfig {
            profiles: vec![
                Profile::Aes128CmSha1_32,
                Profile::Aes128CmSha1_80,
                Profile::AeadAes128Gcm,
                Profile::Aes128CmSha1_80,
            ],
            mtu: 1200,
        };
        let context = DtlsContext::new(&config).unwrap();
        assert_eq!(
            context.profiles(),
            &[Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm]
        );
        assert_eq!(
            context.dimpl().srtp_profiles(),
            &[
                SrtpProfile::AES128_CM_SHA1_80,
                SrtpProfile::AEAD_AES_128_GCM
            ]
        );
    }

    #[test]
    fn unusable_config_is_refused_and_not_kept() {
        let config = DtlsConfig {
            profiles: vec![Profile::Aes128CmSha1_32],
            mtu: 1200,
        };
        assert!(matches!(DtlsContext::new(&config), Err(Error::Config(_))));
        assert!(matches!(
            DtlsContext::shared(&config),
            Err(Error::Config(_))
        ));
        let mut table = Table {
            entries: Vec::new(),
        };
        assert!(matches!(table.get_or_build(&config), Err(Error::Config(_))));
        assert!(table.entries.is_empty());
    }

    #[test]
    fn table_is_bounded_and_drops_the_oldest() {
        // A table of its own: the process-wide one is shared with the
        // other tests, which rely on their entries staying.
        let mut table = Table {
            entries: Vec::new(),
        };
        let first = DtlsConfig {
            mtu: 1300,
            ..DtlsConfig::default()
        };
        let kept = table.get_or_build(&first).unwrap();
        assert!(table.get_or_build(&first).unwrap().ptr_eq(&kept));
        for mtu in 1301..1301 + MAX_SHARED {
            let config = DtlsConfig {
                mtu,
                ..DtlsConfig::default()
            };
            table.get_or_build(&config).unwrap();
        }
        assert_eq!(table.entries.len(), MAX_SHARED);
        assert!(table.entries.iter().all(|c| c.config() != &first));
        assert!(!table.get_or_build(&first).unwrap().ptr_eq(&kept));
    }
}
