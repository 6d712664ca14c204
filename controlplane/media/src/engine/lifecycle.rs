//! A session's life on its home worker: claimed, ICE selects a pair
//! (RFC 8445 §8.2), the DTLS server runs on it (RFC 5764 §4; uturn is
//! always `setup:passive`, RFC 8842), `Connected` starts its media (a
//! publisher's stream router here, or a viewer attached to its stream's
//! router wherever that runs), and it ends (DELETE, consent lost per RFC
//! 7675, DTLS close_notify or failure, its publisher's end, shutdown).

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::Instant;

use tracing::debug;
use uturn_dtls::Endpoint;
use uturn_ice::Pair;
use uturn_srtp::SrtpContext;

use super::stats::add_router_stats;
use super::{touched, End, MediaEngine, RouterSlot, Timer};
use crate::mailbox::{Command, SessionId};
use crate::registry::{Attach, SessionSetup};
use crate::router::{PublisherSpec, StreamRouter, ViewerSpec};
use crate::session::Session;
use crate::signal::Kind;

impl MediaEngine {
    /// A session just claimed by this worker.
    pub(super) fn start(&mut self, setup: SessionSetup) -> SessionId {
        let session = Session::new(setup);
        let id = session.id;
        debug!(session = id, kind = ?session.kind, worker = self.worker, "media session homed here");
        self.by_ufrag
            .insert(session.ice.local_credentials().ufrag().to_owned(), id);
        self.sessions.insert(id, session);
        self.stats.sessions_started += 1;
        id
    }

    /// Drains session `id`'s agent and DTLS endpoint after an input: their
    /// datagrams to the transmit queue, their events acted on.
    pub(super) fn drive(&mut self, now: Instant, id: SessionId) {
        let mut end = None;
        let mut connected = None;
        {
            let Some(s) = self.sessions.get_mut(&id) else {
                return;
            };
            let mut buf = self.transmits.buffer();
            while let Some(t) = s.ice.poll_transmit(&mut buf) {
                self.transmits.push(t.source, t.destination, buf);
                buf = self.transmits.buffer();
            }
            // Collected first: acting on them needs `self` whole. Events
            // are rare (selection, consent loss), so this Vec is usually
            // never allocated.
            let mut events = Vec::new();
            while let Some(event) = s.ice.poll_event() {
                events.push(event);
            }
            for event in events {
                match event {
                    uturn_ice::Event::Selected(pair) => {
                        self.select(now, id, pair, &mut end);
                    }
                    uturn_ice::Event::SelectedChanged { previous, selected } => {
                        debug!(session = id, from = %previous.remote, to = %selected.remote, "selected pair changed");
                        self.select(now, id, selected, &mut end);
                        self.move_media(now, id, selected);
                    }
                    uturn_ice::Event::ConsentLost => self.stats.consent_lost += 1,
                    uturn_ice::Event::Closed => end = end.or(Some(End::Ice)),
                    _ => {}
                }
            }
            let Some(s) = self.sessions.get_mut(&id) else {
                self.transmits.recycle(buf);
                return;
            };
            if let (Some(pair), Some(dtls)) = (s.path(), s.dtls.as_mut()) {
                while let Some(len) = dtls.poll_transmit(&mut buf) {
                    buf.truncate(len);
                    self.transmits.push(pair.local, pair.remote, buf);
                    buf = self.transmits.buffer();
                }
                while let Some(event) = dtls.poll_event() {
                    match event {
                        uturn_dtls::Event::Connected { keys, profile } => {
                            debug!(session = id, ?profile, "DTLS connected");
                            self.stats.dtls_connected += 1;
                            connected = Some(keys);
                        }
                        uturn_dtls::Event::Failed(e) => {
                            debug!(session = id, error = %e, "DTLS failed");
                            self.stats.dtls_failures += 1;
                            end = end.or(Some(End::DtlsFailed));
                        }
                        uturn_dtls::Event::Closed => end = end.or(Some(End::PeerClosed)),
                    }
                }
            }
            self.transmits.recycle(buf);
        }
        if let Some(keys) = connected {
            if let Err(reason) = self.connected(now, id, keys) {
                end = end.or(Some(reason));
            }
        }
        match end {
            Some(reason) => self.end(now, id, reason),
            None => self.arm(id),
        }
    }

    /// Puts session `id`'s next deadline in the timer heap if it changed.
    pub(super) fn arm(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let at = s.timeout();
        if at != s.armed {
            s.armed = at;
            if let Some(at) = at {
                self.timers.push(Reverse((at, Timer::Session(id))));
            }
        }
    }

    /// ICE selected `pair` for session `id`: media and DTLS use it; the
    /// DTLS server starts on the first selection.
    pub(super) fn select(
        &mut self,
        now: Instant,
        id: SessionId,
        pair: Pair,
        end: &mut Option<End>,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.selected = Some(pair);
        self.map_remote(id, pair.remote);
        if let Err(reason) = self.start_dtls(now, id) {
            *end = end.or(Some(reason));
        }
    }

    /// Session `id`'s media moves to `pair` (ICE renomination): the
    /// publisher's router sends its RTCP there; a viewer's fan-out, on the
    /// stream's home (here, or through its mailbox), sends the media there.
    pub(super) fn move_media(&mut self, now: Instant, id: SessionId, pair: Pair) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        match s.kind {
            Kind::Publisher => {
                if let Some(slot) = self.routers.get_mut(&id) {
                    slot.router.set_publisher_path(pair.local, pair.remote);
                }
            }
            Kind::Viewer => {
                if s.upstream.is_none() {
                    s.upstream = self.registry.upstream_of(id);
                }
                let Some((publisher, home)) = s.upstream else {
                    // Not attached yet: the attach will carry the new path.
                    return;
                };
                let command = Command::ViewerPath {
                    publisher,
                    viewer: id,
                    local: pair.local,
                    remote: pair.remote,
                };
                if home == self.worker {
                    self.handle_command(now, command);
                } else {
                    self.registry.send(home, command);
                }
            }
        }
    }

    /// Maps `remote` to session `id` here and in the registry (for
    /// datagrams that reach another worker).
    pub(super) fn map_remote(&mut self, id: SessionId, remote: SocketAddr) {
        if self.by_remote.get(&remote) == Some(&id) {
            return;
        }
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if let Some(old) = s.add_remote(remote) {
            if self.by_remote.get(&old) == Some(&id) {
                self.by_remote.remove(&old);
            }
            self.registry.forget_remote(id, old);
        }
        self.by_remote.insert(remote, id);
        self.foreign.remove(&remote);
        self.registry.register_remote(id, remote);
    }

    /// Starts session `id`'s DTLS server, if not yet started.
    pub(super) fn start_dtls(&mut self, now: Instant, id: SessionId) -> Result<(), End> {
        let Some(s) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if s.dtls.is_some() {
            return Ok(());
        }
        let started = self
            .dtls
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|context| {
                Endpoint::with_context(
                    now,
                    uturn_srtp::Role::Server,
                    &self.registry.config().certificate,
                    s.remote_fingerprint,
                    context,
                )
            });
        match started {
            Ok(dtls) => {
                s.dtls = Some(dtls);
                Ok(())
            }
            Err(e) => {
                debug!(session = id, error = %e, "cannot start DTLS");
                self.stats.dtls_failures += 1;
                Err(End::DtlsFailed)
            }
        }
    }

    /// DTLS is up for session `id`: its media starts.
    pub(super) fn connected(
        &mut self,
        now: Instant,
        id: SessionId,
        keys: uturn_srtp::DtlsSrtpKeys,
    ) -> Result<(), End> {
        let Some(s) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        let Some(pair) = s.path() else {
            return Ok(());
        };
        match s.kind {
            Kind::Publisher => {
                let spec = PublisherSpec {
                    local: pair.local,
                    remote: pair.remote,
                    keys,
                    tracks: s.publisher_tracks(),
                    rtcp_ssrc: rand::random(),
                };
                let mut router = StreamRouter::new(now, spec, self.registry.config().unix_epoch);
                for (_, viewer) in self.registry.publisher_ready(id, self.worker) {
                    router.attach_viewer(now, *viewer);
                }
                self.routers.insert(
                    id,
                    RouterSlot {
                        router,
                        armed: None,
                        active: false,
                    },
                );
                if let Some(slot) = self.routers.get_mut(&id) {
                    touched(&mut self.pending, &mut self.timers, slot, id);
                }
                Ok(())
            }
            Kind::Viewer => {
                s.srtcp_in = Some(SrtpContext::new(&keys.remote));
                let spec = Box::new(ViewerSpec {
                    id,
                    local: pair.local,
                    remote: pair.remote,
                    keys: keys.local,
                    tracks: s.viewer_tracks(),
                    cname: s.cname.clone(),
                });
                match self.registry.attach_viewer(id, spec, self.worker) {
                    Attach::Local { publisher, spec } => {
                        let slot = self.routers.get_mut(&publisher).ok_or(End::NoStream)?;
                        slot.router.attach_viewer(now, *spec);
                        touched(&mut self.pending, &mut self.timers, slot, publisher);
                        s.upstream = Some((publisher, self.worker));
                    }
                    Attach::Mailed { publisher, home } => s.upstream = Some((publisher, home)),
                    Attach::Held => {}
                    Attach::Gone => return Err(End::NoStream),
                }
                Ok(())
            }
        }
    }

    /// Ends session `id`: close_notify to the peer (unless it closed or
    /// failed), everything freed here and in the registry.
    pub(super) fn end(&mut self, _now: Instant, id: SessionId, reason: End) {
        let Some(mut s) = self.sessions.remove(&id) else {
            return;
        };
        debug!(session = id, kind = ?s.kind, ?reason, "media session ended");
        self.stats.sessions_ended += 1;
        if self.by_ufrag.get(s.ice.local_credentials().ufrag()) == Some(&id) {
            self.by_ufrag.remove(s.ice.local_credentials().ufrag());
        }
        for r in &s.remotes {
            if self.by_remote.get(r) == Some(&id) {
                self.by_remote.remove(r);
            }
        }
        if !matches!(reason, End::PeerClosed | End::DtlsFailed) {
            if let (Some(pair), Some(dtls)) = (s.path(), s.dtls.as_mut()) {
                // RFC 5246 §7.2.1: tell the peer, so it ends at once
                // rather than after its own consent timeout.
                dtls.close();
                let mut buf = self.transmits.buffer();
                while let Some(len) = dtls.poll_transmit(&mut buf) {
                    buf.truncate(len);
                    self.transmits.push(pair.local, pair.remote, buf);
                    buf = self.transmits.buffer();
                }
                self.transmits.recycle(buf);
            }
        }
        s.ice.close();
        match s.kind {
            Kind::Publisher => {
                if let Some(slot) = self.routers.remove(&id) {
                    // Its last datagrams (nothing important) go with it.
                    add_router_stats(&mut self.retired, &slot.router.stats());
                }
            }
            Kind::Viewer => {
                let upstream = s.upstream.or_else(|| self.registry.upstream_of(id));
                if let Some((publisher, home)) = upstream {
                    if home == self.worker {
                        if let Some(slot) = self.routers.get_mut(&publisher) {
                            slot.router.detach_viewer(id);
                        }
                    }
                }
            }
        }
        self.registry.session_ended(id, self.worker);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uturn_dtls::Certificate;
    use uturn_srtp::Profile;

    use super::*;
    use crate::registry::{Registry, RegistryConfig};

    fn registry(profiles: Vec<Profile>) -> Arc<Registry> {
        let candidates = vec!["127.0.0.1:3478".parse().expect("an address")];
        let mut config = RegistryConfig::new(candidates, 2, Certificate::generate().unwrap());
        config.srtp_profiles = profiles;
        Registry::new(config)
    }

    #[test]
    fn workers_share_one_validated_dtls_context() {
        let registry = registry(vec![Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm]);
        let a = MediaEngine::new(0, registry.clone());
        let b = MediaEngine::new(1, registry);
        let (a, b) = (a.dtls.as_ref().unwrap(), b.dtls.as_ref().unwrap());
        assert!(a.ptr_eq(b));
        // The relay's configured order, not the default one.
        assert_eq!(
            a.config().profiles,
            [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm]
        );
    }

    #[test]
    fn profiles_dimpl_lacks_leave_no_dtls_context() {
        let engine = MediaEngine::new(0, registry(vec![Profile::Aes128CmSha1_32]));
        assert!(matches!(engine.dtls, Err(uturn_dtls::Error::Config(_))));
    }
}
