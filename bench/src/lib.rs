//! Benches live in benches/.

pub mod load;
pub mod media;
