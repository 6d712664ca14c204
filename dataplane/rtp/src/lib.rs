//! RTP/RTCP wire formats and forwarding primitives. Being written.
#![forbid(unsafe_code)]
