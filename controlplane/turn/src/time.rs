//! Wall-clock time, injected.
//!
//! The server measures lifetimes with the `Instant`s it is handed. Only
//! values that must survive outside one process — nonce expiry embedded in
//! the NONCE, and the expiry in TURN REST usernames — need Unix time, and it
//! comes through this trait so tests can move it (as rustls's
//! `TimeProvider` does for certificate validation).

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix time in seconds.
pub trait TimeProvider: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn unix_now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTimeProvider;

impl TimeProvider for SystemTimeProvider {
    fn unix_now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}
