//! The workers' mailboxes: how the HTTP thread and the other workers reach
//! the worker a session or a stream lives on (its *home*, docs/media.md
//! "Where a media packet goes", step 3 and 5).
//!
//! One mailbox per worker: a `Mutex<Vec<Command>>` plus an `AtomicBool`
//! that says whether anything is in it, so the worker's per-batch question
//! "any mail?" is one atomic load and the lock is taken only when there is
//! mail. Commands are control traffic (set-up, feedback, the rare datagram
//! that SO_REUSEPORT hashed to another worker), never the media fan-out.
//!
//! **Waking the worker.** An idle worker sleeps in its I/O backend until a
//! datagram or its next timer. So that mail does not wait for either, a
//! mailbox holds the worker's [`Waker`] (set once the worker runs,
//! [`Registry::set_waker`](crate::Registry::set_waker); the dataplane's is
//! an eventfd its backend watches). Posting wakes the worker only when the
//! flag goes from empty to non-empty: a burst of commands costs one wake,
//! and posting to a mailbox that already has mail costs no wake at all.
//! Std's `Waker` keeps this crate free of any dependency on the dataplane.
//!
//! Why no mail is lost (the worker's loop: compute its wait from its
//! timers and `Mailbox::has_mail`, sleep in the backend, which drains the
//! eventfd when it fires, then `has_mail` again and `Mailbox::take`):
//!
//! - A poster stores the command, then sets the flag (Release, under the
//!   lock), then — if the flag was clear — wakes. The worker drains the
//!   eventfd in its sleep and only afterwards swaps the flag clear
//!   (Acquire) in `take`. A wake therefore always comes after the flag it
//!   announces, and a drain always comes before the `take` that empties
//!   the mailbox: mail posted after a `take` clears the flag finds it
//!   clear and wakes again.
//! - Mail posted after the worker computed its wait (flag seen clear) but
//!   before it sleeps: the poster found the flag clear, so it signalled the
//!   eventfd, which stays readable until drained; the sleep returns at
//!   once and the mail is handled in that turn.
//! - Mail posted between the drain and the `take`: handled by that `take`;
//!   its signal makes the next sleep return at once, a harmless extra turn.
//! - A poster that finds the flag set does not wake: whoever set it woke
//!   (or is about to), and the worker has not taken the mail yet (`take`
//!   clears the flag before it takes the lock), so the coming `take` moves
//!   this command too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Waker;

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
    inner: Mutex<Inner>,
    dropped: AtomicU64,
}

/// What the mailbox's lock guards.
#[derive(Debug, Default)]
struct Inner {
    commands: Vec<Command>,
    /// Wakes the worker when mail arrives in an empty mailbox.
    waker: Option<Waker>,
}

impl Mailbox {
    /// Queues a command and wakes the worker if the mailbox was empty;
    /// returns false (and counts it) when the mailbox is full.
    pub(crate) fn push(&self, command: Command) -> bool {
        let waker = {
            let mut inner = self.lock();
            if inner.commands.len() >= MAX_COMMANDS {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            inner.commands.push(command);
            // Release pairs with the Acquire swap in `take`: a worker that
            // sees the flag sees the command. Only the empty → non-empty
            // step wakes (see the module docs for why that loses nothing).
            let had_mail = self.has_mail.swap(true, Ordering::Release);
            if had_mail {
                None
            } else {
                // Cloned (a reference count) so the wake itself, a
                // syscall for the dataplane, happens outside the lock.
                inner.waker.clone()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Whether commands are waiting: one load, for the worker's hot loop.
    /// Acquire: loaded after the worker drained a wake, it pairs with the
    /// Release of the poster that set the flag before waking (the eventfd's
    /// write and read themselves are ordered by the kernel's lock).
    pub(crate) fn has_mail(&self) -> bool {
        self.has_mail.load(Ordering::Acquire)
    }

    /// Moves every waiting command, in order, to the end of `out`.
    pub(crate) fn take(&self, out: &mut Vec<Command>) {
        if !self.has_mail.swap(false, Ordering::Acquire) {
            return;
        }
        out.append(&mut self.lock().commands);
    }

    /// Sets (or, with `None`, removes) the worker's waker. Wakes it at once
    /// if mail is already waiting, which was posted with no waker (or the
    /// old one) to announce it.
    pub(crate) fn set_waker(&self, waker: Option<Waker>) {
        let mut inner = self.lock();
        inner.waker = waker;
        if self.has_mail() {
            if let Some(waker) = inner.waker.as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves at worst a command half
        // pushed; the worker must keep draining regardless.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicU64);

    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (std::sync::Arc<Counter>, Waker) {
        let counter = std::sync::Arc::new(Counter::default());
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn wakes_once_per_empty_to_non_empty_step() {
        let m = Mailbox::default();
        let (count, waker) = counting_waker();
        m.set_waker(Some(waker));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "no mail, no wake");

        assert!(m.push(Command::EndSession(1)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "empty → non-empty wakes");
        for i in 2..10 {
            assert!(m.push(Command::EndSession(i)));
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "mail pending: no wake");

        let mut out = Vec::new();
        m.take(&mut out);
        assert_eq!(out.len(), 9);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "taking does not wake");

        assert!(m.push(Command::EndSession(10)));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "empty again: wakes again"
        );
    }

    #[test]
    fn a_dropped_command_does_not_wake() {
        let m = Mailbox::default();
        for i in 0..MAX_COMMANDS as u64 {
            assert!(m.push(Command::EndSession(i)));
        }
        let (count, waker) = counting_waker();
        // Mail was waiting before the waker came: it is woken for it once.
        m.set_waker(Some(waker));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!m.push(Command::EndSession(0)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_waker_no_wake_and_mail_still_arrives() {
        let m = Mailbox::default();
        let (count, waker) = counting_waker();
        m.set_waker(Some(waker));
        m.set_waker(None);
        assert!(m.push(Command::EndSession(1)));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let mut out = Vec::new();
        m.take(&mut out);
        assert_eq!(out.len(), 1);
    }

    /// Many posters, one worker that sleeps until woken: every command
    /// arrives, whatever the interleaving (a lost wake would leave the
    /// worker asleep with mail waiting, and the test would hang until its
    /// generous bound).
    #[test]
    fn concurrent_posters_never_strand_mail() {
        use std::sync::{Arc, Condvar};

        /// A wake flag a thread can sleep on (what the eventfd is for the
        /// dataplane).
        #[derive(Default)]
        struct Flag {
            set: Mutex<bool>,
            cond: Condvar,
        }
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                *self.set.lock().unwrap() = true;
                self.cond.notify_one();
            }
        }

        const POSTERS: u64 = 4;
        const EACH: u64 = 2000;
        let m = Arc::new(Mailbox::default());
        let flag = Arc::new(Flag::default());
        m.set_waker(Some(Waker::from(flag.clone())));
        let posters: Vec<_> = (0..POSTERS)
            .map(|p| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        // Full mailbox: retry (the worker is draining).
                        while !m.push(Command::EndSession(p * EACH + i)) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut got = 0;
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got < POSTERS * EACH {
            {
                // The worker's loop: sleep unless mail is flagged, consume
                // the wake, then take.
                let mut set = flag.set.lock().unwrap();
                while !*set && !m.has_mail() {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    assert!(!left.is_zero(), "mail stranded: got {got}");
                    set = flag.cond.wait_timeout(set, left).unwrap().0;
                }
                *set = false;
            }
            m.take(&mut out);
            got += out.len() as u64;
            out.clear();
        }
        for p in posters {
            p.join().unwrap();
        }
        assert_eq!(got, POSTERS * EACH);
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
