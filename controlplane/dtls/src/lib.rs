//! Sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 5764). Being written.
#![forbid(unsafe_code)]
