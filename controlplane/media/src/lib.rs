//! uturn's media relay control plane and router, sans-IO (docs/media.md).
//! Being written.
#![forbid(unsafe_code)]

pub mod signal;

pub use signal::{Created, Kind, PatchOutcome, SignalError, Signalling, StreamInfo};
