//! Nonces. TODO(helper H2).
