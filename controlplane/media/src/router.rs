//! The fan-out of one stream at its home worker (being written).
