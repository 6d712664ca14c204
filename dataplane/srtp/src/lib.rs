//! SRTP/SRTCP (RFC 3711, RFC 7714) protect/unprotect for the dataplane. TODO.
