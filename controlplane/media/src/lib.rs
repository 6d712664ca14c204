//! uturn's media relay control plane and router, sans-IO (docs/media.md).
//! Being written.
#![forbid(unsafe_code)]

pub mod client;
pub mod registry;
pub mod router;
pub mod signal;
pub mod transmit;

pub use registry::Registry;
pub use signal::{Created, Kind, PatchOutcome, SignalError, Signalling, StreamInfo};
pub use transmit::{Transmit, TransmitQueue};
