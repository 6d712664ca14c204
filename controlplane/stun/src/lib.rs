//! STUN/TURN wire formats. TODO(helper H1).
