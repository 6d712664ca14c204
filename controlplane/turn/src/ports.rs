//! Relay port pool shared by all workers. TODO(helper H2).

/// The pool.
#[derive(Debug, Default)]
pub struct PortPool {}
