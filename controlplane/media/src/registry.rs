//! The media sessions' registry (being written by m4).

/// Sessions, streams, ufrags and the workers' mailboxes.
#[derive(Debug)]
pub struct Registry {
    _private: (),
}
