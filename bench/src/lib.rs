//! Benches live in benches/.

pub mod load;
