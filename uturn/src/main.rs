//! The `uturn` binary. TODO(helper H4).
fn main() {}
