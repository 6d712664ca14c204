//! A sans-IO WebRTC peer for tests and the load generator (being written).
