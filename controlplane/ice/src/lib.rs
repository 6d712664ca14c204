//! Sans-IO ICE-lite agent (RFC 8445 §2.5, RFC 7675 consent freshness). TODO.
