//! SDP offer/answer (RFC 8866, RFC 8829 JSEP subset) for WHIP/WHEP: parse what browsers send, generate answers. TODO.
