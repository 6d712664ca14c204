//! Where a datagram goes on the worker that received it (docs/media.md,
//! "Where a media packet goes", steps 2–3): STUN by ICE ufrag (RFC 8445
//! §7.2.2), DTLS and SRTP by remote address, anything homed on another
//! worker through its mailbox; and the commands other threads leave in
//! this worker's mailbox.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::trace;
use uturn_ice::{ufrag_of, Pair};
use uturn_rtp::rtcp::{self, Packet};
use uturn_stun::{classify, Message, PacketKind};

use super::{touched, End, MediaEngine};
use crate::mailbox::{Command, SessionId};
use crate::registry::Claim;
use crate::router::Feedback;
use crate::signal::Kind;

/// How long a worker trusts what the registry said about the home of a
/// remote address homed elsewhere, before asking again.
const FOREIGN_TTL: Duration = Duration::from_secs(5);

/// Remote addresses homed elsewhere remembered at once; past it the cache
/// starts over (it is only a shortcut around the registry's lock).
const MAX_FOREIGN: usize = 4096;

/// Registry look-ups per second for DTLS/RTP from addresses this worker
/// does not know: a flood of junk from random addresses must not turn
/// into a flood of lock acquisitions that slows every worker down. Past
/// the budget such datagrams are dropped without a look-up (a genuine
/// peer's DTLS retransmits).
const MAX_LOOKUPS_PER_SECOND: u32 = 2000;

/// Largest datagram the engine decrypts (the viewer's SRTCP).
pub(super) const MAX_DATAGRAM: usize = 1500;

impl MediaEngine {
    pub(super) fn receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        mailed: bool,
    ) -> bool {
        match classify(datagram) {
            PacketKind::Stun => self.receive_stun(now, local, remote, datagram, mailed),
            kind @ (PacketKind::Dtls | PacketKind::Rtp) => {
                self.receive_media(now, local, remote, datagram, kind, mailed);
                true
            }
            _ => false,
        }
    }

    pub(super) fn receive_stun(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        mailed: bool,
    ) -> bool {
        let Ok(msg) = Message::parse(datagram) else {
            return false;
        };
        let Some(ufrag) = ufrag_of(&msg) else {
            return false;
        };
        let id = match self.by_ufrag.get(ufrag) {
            Some(&id) => id,
            None => match self.registry.claim(ufrag, self.worker, &msg) {
                Claim::Claimed(setup) => self.start(*setup),
                Claim::Elsewhere(home) => {
                    self.forward(home, local, remote, datagram, mailed);
                    return true;
                }
                Claim::Unauthenticated => {
                    self.stats.ice_rejected += 1;
                    return true;
                }
                Claim::Unknown => return false,
            },
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return true;
        };
        self.stats.ice_checks += 1;
        match session
            .ice
            .handle_message(now, Pair { local, remote }, &msg)
        {
            // A valid check proves the address is the peer's. Browsers may
            // start DTLS on a pair as soon as it is valid, a moment before
            // the nominating check arrives: it finds the session already.
            Ok(()) => self.map_remote(id, remote),
            Err(e) => {
                trace!(session = id, error = %e, "connectivity check refused");
                self.stats.ice_rejected += 1;
            }
        }
        self.drive(now, id);
        true
    }

    pub(super) fn receive_media(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        kind: PacketKind,
        mailed: bool,
    ) {
        let Some(&id) = self.by_remote.get(&remote) else {
            match self.foreign_home(now, remote) {
                Some(home) if !mailed => self.forward(home, local, remote, datagram, mailed),
                _ => self.stats.unknown_source += 1,
            }
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            self.stats.unknown_source += 1;
            return;
        };
        match kind {
            PacketKind::Dtls => {
                if session.dtls.is_none() {
                    session.dtls_pair = Some(Pair { local, remote });
                    if let Err(reason) = self.start_dtls(now, id) {
                        self.end(now, id, reason);
                        return;
                    }
                }
                let Some(dtls) = self.sessions.get_mut(&id).and_then(|s| s.dtls.as_mut()) else {
                    return;
                };
                if let Err(e) = dtls.handle_datagram(now, datagram) {
                    trace!(session = id, error = %e, "DTLS datagram refused");
                    if matches!(e, uturn_dtls::Error::Malformed) {
                        self.stats.malformed += 1;
                    }
                }
                self.drive(now, id);
            }
            _ => match session.kind {
                Kind::Publisher => match self.routers.get_mut(&id) {
                    Some(slot) => {
                        // Failures are counted in the router's stats.
                        if let Err(e) = slot.router.handle_publisher_datagram(now, datagram) {
                            trace!(session = id, error = %e, "publisher packet refused");
                        }
                        touched(&mut self.pending, &mut self.timers, slot, id);
                    }
                    None => self.stats.unexpected_media += 1,
                },
                Kind::Viewer => self.receive_viewer_rtcp(now, id, datagram),
            },
        }
    }

    /// SRTCP from a viewer (RFC 3711 §3.4): decrypted here, its feedback
    /// sent on to the stream's fan-out. Viewer RTP is not expected (the
    /// viewer is recvonly) and dropped.
    pub(super) fn receive_viewer_rtcp(&mut self, now: Instant, id: SessionId, datagram: &[u8]) {
        // RFC 5761 §4: RTCP packet types 192–223 in the second octet.
        if !datagram.get(1).is_some_and(|pt| (192..=223).contains(pt)) {
            self.stats.unexpected_media += 1;
            return;
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(ctx) = session.srtcp_in.as_mut() else {
            self.stats.unexpected_media += 1;
            return;
        };
        if datagram.len() > MAX_DATAGRAM {
            self.stats.malformed += 1;
            return;
        }
        self.stats.bytes_in += datagram.len() as u64;
        self.scratch.clear();
        self.scratch.extend_from_slice(datagram);
        let len = match ctx.unprotect_rtcp(&mut self.scratch) {
            Ok(len) => len,
            Err(e) => {
                self.count_srtp_error(e);
                return;
            }
        };
        self.stats.rtcp_in += 1;
        let mut requests: [Option<Feedback>; 2] = [None, None];
        let mut nack: Vec<u16> = Vec::new();
        for packet in rtcp::parse_compound(self.scratch.get(..len).unwrap_or_default()) {
            match packet {
                Ok(Packet::Pli { .. }) => requests[0] = Some(Feedback::Pli),
                Ok(Packet::Fir { .. }) => requests[1] = Some(Feedback::Fir),
                Ok(Packet::Nack(n)) => nack.extend(n.lost()),
                Ok(_) => {}
                Err(e) => {
                    trace!(session = id, error = %e, "malformed RTCP from a viewer");
                    self.stats.malformed += 1;
                    break;
                }
            }
        }
        let nack = (!nack.is_empty()).then_some(Feedback::Nack(nack));
        for feedback in requests.into_iter().flatten().chain(nack) {
            self.send_feedback(now, id, feedback);
        }
    }

    pub(super) fn send_feedback(&mut self, now: Instant, viewer: SessionId, feedback: Feedback) {
        let Some(session) = self.sessions.get_mut(&viewer) else {
            return;
        };
        if session.upstream.is_none() {
            session.upstream = self.registry.upstream_of(viewer);
        }
        let Some((publisher, home)) = session.upstream else {
            return;
        };
        if home == self.worker {
            if let Some(slot) = self.routers.get_mut(&publisher) {
                slot.router.handle_feedback(now, viewer, feedback);
                touched(&mut self.pending, &mut self.timers, slot, publisher);
            }
        } else {
            self.registry.send(
                home,
                Command::Feedback {
                    publisher,
                    viewer,
                    feedback,
                },
            );
        }
    }

    pub(super) fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Datagram {
                local,
                remote,
                contents,
            } => {
                self.stats.forwarded_in += 1;
                self.receive(now, local, remote, &contents, true);
            }
            Command::EndSession(id) => self.end(now, id, End::Ended),
            Command::Trickle {
                session,
                candidates,
            } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    for (address, priority) in candidates {
                        s.ice.add_remote_candidate(address, priority);
                    }
                }
            }
            Command::Restart {
                session,
                local,
                remote,
            } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    self.by_ufrag.remove(s.ice.local_credentials().ufrag());
                    self.by_ufrag.insert(local.ufrag().to_owned(), session);
                    s.ice.restart(local, remote);
                }
            }
            Command::AttachViewer { publisher, spec } => {
                if let Some(slot) = self.routers.get_mut(&publisher) {
                    slot.router.attach_viewer(now, *spec);
                    touched(&mut self.pending, &mut self.timers, slot, publisher);
                }
            }
            Command::ViewerPath {
                publisher,
                viewer,
                local,
                remote,
            } => {
                if let Some(slot) = self.routers.get_mut(&publisher) {
                    slot.router.set_viewer_path(viewer, local, remote);
                }
            }
            Command::DetachViewer { publisher, viewer } => {
                if let Some(slot) = self.routers.get_mut(&publisher) {
                    slot.router.detach_viewer(viewer);
                }
            }
            Command::Feedback {
                publisher,
                viewer,
                feedback,
            } => {
                if let Some(slot) = self.routers.get_mut(&publisher) {
                    slot.router.handle_feedback(now, viewer, feedback);
                    touched(&mut self.pending, &mut self.timers, slot, publisher);
                }
            }
        }
    }

    /// Hands a datagram to `home`'s mailbox, once: a datagram that already
    /// came through a mailbox and still finds no session is dropped, so two
    /// workers can never bounce it between them.
    pub(super) fn forward(
        &mut self,
        home: usize,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        mailed: bool,
    ) {
        if mailed {
            self.stats.unknown_source += 1;
            return;
        }
        let command = Command::Datagram {
            local,
            remote,
            contents: datagram.to_vec(),
        };
        if self.registry.send(home, command) {
            self.stats.forwarded_out += 1;
        }
    }

    /// The worker that `remote`'s session is homed on, if not this one.
    pub(super) fn foreign_home(&mut self, now: Instant, remote: SocketAddr) -> Option<usize> {
        if let Some(&(home, until)) = self.foreign.get(&remote) {
            if now < until {
                return Some(home);
            }
        }
        let (count, since) = &mut self.lookups;
        if since.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
            *since = Some(now);
            *count = 0;
        }
        if *count >= MAX_LOOKUPS_PER_SECOND {
            return None;
        }
        *count += 1;
        let home = self.registry.home_of(remote).filter(|&h| h != self.worker);
        match home {
            Some(h) => {
                if self.foreign.len() >= MAX_FOREIGN {
                    self.foreign.clear();
                }
                self.foreign.insert(remote, (h, now + FOREIGN_TTL));
            }
            None => {
                self.foreign.remove(&remote);
            }
        }
        home
    }

    pub(super) fn count_srtp_error(&mut self, e: uturn_srtp::Error) {
        match e {
            uturn_srtp::Error::Auth => self.stats.srtp_auth_failures += 1,
            uturn_srtp::Error::Replay => self.stats.srtp_replays += 1,
            _ => self.stats.malformed += 1,
        }
    }
}
