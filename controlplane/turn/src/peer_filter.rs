//! Which peers a client may reach: deny by default. TODO(helper H2).

/// The peer filter.
#[derive(Debug, Clone, Default)]
pub struct PeerFilter {}
