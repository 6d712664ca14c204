//! The workers' mailboxes: how the HTTP thread and the other workers reach
//! the worker a session or a stream lives on (its *home*, docs/media.md
//! "Where a media packet goes", step 3 and 5).
//!
//! One mailbox per worker: a `Mutex<Vec<Command>>` plus an `AtomicBool`
//! that says whether anything is in it, so the worker's per-batch question
//! "any mail?" is one relaxed load and the lock is taken only when there is
//! mail. Commands are control traffic (set-up, feedback, the rare datagram
//! that SO_REUSEPORT hashed to another worker), never the media fan-out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use uturn_ice::Credentials;

use crate::router::{Feedback, ViewerSpec};

/// Commands queued per mailbox before further ones are dropped (and
/// counted): a worker that stopped draining must not make memory grow.
pub const MAX_COMMANDS: usize = 4096;

/// A media session's id: unique for the registry's life, never reused.
pub type SessionId = u64;

/// What another thread asks a worker to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// A datagram for a session homed on this worker that arrived on
    /// another one: handle it as if it had been received here.
    Datagram {
        /// The listener it arrived on (the answer leaves from it).
        local: SocketAddr,
        /// Who sent it.
        remote: SocketAddr,
        /// The whole datagram.
        contents: Vec<u8>,
    },
    /// End this session (DELETE, or its stream's publisher ended): DTLS
    /// close_notify, free everything.
    EndSession(SessionId),
    /// Trickled remote candidates (WHIP/WHEP PATCH, RFC 8840).
    Trickle {
        /// The session.
        session: SessionId,
        /// (address, priority) of each candidate.
        candidates: Vec<(SocketAddr, u32)>,
    },
    /// ICE restart (RFC 8445 §9): new credentials on both sides.
    Restart {
        /// The session.
        session: SessionId,
        /// Our new credentials.
        local: Credentials,
        /// The peer's new credentials.
        remote: Credentials,
    },
    /// A viewer's DTLS is up: add it to the fan-out of the stream whose
    /// publisher is `publisher` (homed on the receiving worker).
    AttachViewer {
        /// The stream's publisher session.
        publisher: SessionId,
        /// Where and how to send to the viewer.
        spec: Box<ViewerSpec>,
    },
    /// A viewer's selected candidate pair changed (ICE renomination):
    /// send its media on the new pair.
    ViewerPath {
        /// The stream's publisher session.
        publisher: SessionId,
        /// The viewer session.
        viewer: SessionId,
        /// The listener to send from.
        local: SocketAddr,
        /// The viewer's new address.
        remote: SocketAddr,
    },
    /// A viewer ended: stop sending to it.
    DetachViewer {
        /// The stream's publisher session.
        publisher: SessionId,
        /// The viewer session.
        viewer: SessionId,
    },
    /// RTCP feedback a viewer sent, decrypted at the viewer's home.
    Feedback {
        /// The stream's publisher session.
        publisher: SessionId,
        /// The viewer session that sent it.
        viewer: SessionId,
        /// What it asked for.
        feedback: Feedback,
    },
}

/// One worker's mailbox.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    has_mail: AtomicBool,
    commands: Mutex<Vec<Command>>,
    dropped: AtomicU64,
}

impl Mailbox {
    /// Queues a command; returns false (and counts it) when the mailbox is full.
    pub(crate) fn push(&self, command: Command) -> bool {
        let mut commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        if commands.len() >= MAX_COMMANDS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        commands.push(command);
        // Release pairs with the Acquire swap in `take`: a worker that sees
        // the flag sees the command.
        self.has_mail.store(true, Ordering::Release);
        true
    }

    /// Whether commands are waiting: one load, for the worker's hot loop.
    pub(crate) fn has_mail(&self) -> bool {
        self.has_mail.load(Ordering::Relaxed)
    }

    /// Moves every waiting command, in order, to the end of `out`.
    pub(crate) fn take(&self, out: &mut Vec<Command>) {
        if !self.has_mail.swap(false, Ordering::Acquire) {
            return;
        }
        let mut commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        out.append(&mut commands);
    }

    /// Commands dropped because the mailbox was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_arrive_in_order_and_the_flag_follows() {
        let m = Mailbox::default();
        assert!(!m.has_mail());
        assert!(m.push(Command::EndSession(1)));
        assert!(m.push(Command::EndSession(2)));
        assert!(m.has_mail());
        let mut out = Vec::new();
        m.take(&mut out);
        assert!(!m.has_mail());
        let ids: Vec<_> = out
            .iter()
            .map(|c| match c {
                Command::EndSession(id) => *id,
                _ => 0,
            })
            .collect();
        assert_eq!(ids, [1, 2]);
        out.clear();
        m.take(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn bounded() {
        let m = Mailbox::default();
        for i in 0..MAX_COMMANDS as u64 {
            assert!(m.push(Command::EndSession(i)));
        }
        assert!(!m.push(Command::EndSession(0)));
        assert_eq!(m.dropped(), 1);
    }
}
