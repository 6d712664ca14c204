//! Allocation quotas (RFC 8656 §7.2: "486 (Allocation Quota Reached)").
//!
//! One ledger is shared by every worker through [`Shared`](crate::Shared):
//! a client may land on any worker, and the quota is per user and per relay,
//! not per worker. It is behind a [`Mutex`], taken only when an allocation is
//! created or deleted.
//!
//! Users are counted by the USERNAME they authenticated with. For TURN REST
//! credentials (`EXPIRY:USER`) that is the whole string, so each freshly
//! minted credential has its own count; the total quota still bounds them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Which quota a new allocation would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    #[error("per-user allocation quota reached")]
    User,
    #[error("relay-wide allocation quota reached")]
    Total,
}

/// Live allocations per user and in total, against their limits.
#[derive(Debug)]
pub struct QuotaLedger {
    /// 0: unlimited.
    user_quota: u32,
    /// 0: unlimited.
    total_quota: u32,
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_user: HashMap<String, u32>,
}

impl QuotaLedger {
    /// A ledger with the given limits (0 means unlimited).
    pub fn new(user_quota: u32, total_quota: u32) -> Self {
        QuotaLedger {
            user_quota,
            total_quota,
            inner: Mutex::new(Counts::default()),
        }
    }

    /// Counts one more allocation for `user`, unless a limit is reached.
    pub fn acquire(&self, user: &str) -> Result<(), QuotaError> {
        let mut counts = self.lock();
        if self.total_quota != 0 && counts.total >= self.total_quota {
            return Err(QuotaError::Total);
        }
        let mine = counts.per_user.get(user).copied().unwrap_or(0);
        if self.user_quota != 0 && mine >= self.user_quota {
            return Err(QuotaError::User);
        }
        counts.total += 1;
        *counts.per_user.entry(user.to_owned()).or_insert(0) += 1;
        Ok(())
    }

    /// Forgets one allocation of `user` (it was deleted or never completed).
    pub fn release(&self, user: &str) {
        let mut counts = self.lock();
        let Some(mine) = counts.per_user.get_mut(user) else {
            return;
        };
        *mine -= 1;
        if *mine == 0 {
            counts.per_user.remove(user);
        }
        counts.total = counts.total.saturating_sub(1);
    }

    /// Live allocations on the whole relay.
    pub fn total(&self) -> u32 {
        self.lock().total
    }

    /// Live allocations of `user`.
    pub fn of_user(&self, user: &str) -> u32 {
        self.lock().per_user.get(user).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counts are updated in single statements; a poisoned lock still
        // holds consistent numbers.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_limit() {
        let ledger = QuotaLedger::new(2, 0);
        assert_eq!(ledger.acquire("alice"), Ok(()));
        assert_eq!(ledger.acquire("alice"), Ok(()));
        assert_eq!(ledger.acquire("alice"), Err(QuotaError::User));
        assert_eq!(ledger.acquire("bob"), Ok(()));
        ledger.release("alice");
        assert_eq!(ledger.of_user("alice"), 1);
        assert_eq!(ledger.acquire("alice"), Ok(()));
        assert_eq!(ledger.total(), 3);
    }

    #[test]
    fn total_limit_and_unlimited() {
        let ledger = QuotaLedger::new(0, 2);
        assert_eq!(ledger.acquire("a"), Ok(()));
        assert_eq!(ledger.acquire("b"), Ok(()));
        assert_eq!(ledger.acquire("c"), Err(QuotaError::Total));
        ledger.release("a");
        assert_eq!(ledger.acquire("c"), Ok(()));

        let unlimited = QuotaLedger::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(unlimited.acquire("x"), Ok(()));
        }
        assert_eq!(unlimited.total(), 1000);
    }

    #[test]
    fn releasing_unknown_user_changes_nothing() {
        let ledger = QuotaLedger::new(1, 1);
        ledger.acquire("a").unwrap();
        ledger.release("nobody");
        assert_eq!(ledger.total(), 1);
        ledger.release("a");
        ledger.release("a");
        assert_eq!(ledger.total(), 0);
        assert_eq!(ledger.of_user("a"), 0);
    }
}
