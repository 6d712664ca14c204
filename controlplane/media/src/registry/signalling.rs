//! The registry's side of WHIP (RFC 9725) and WHEP: negotiating offers
//! into unclaimed sessions, trickle ICE and ICE restarts by PATCH (RFC
//! 8840, RFC 9725 §4.3), DELETE, and the stream list.

use std::time::Instant;

use tracing::{debug, info};
use uturn_ice::Credentials;
use uturn_sdp::{answer_text, MediaKind, TrickleFragment};

use super::{Entry, Home, Registry, SessionSetup, State, Stream};
use crate::mailbox::{Command, SessionId};
use crate::negotiate::{self, StreamSsrcs};
use crate::signal::{
    valid_stream_name, Created, Kind, PatchOutcome, SignalError, Signalling, StreamInfo,
};

impl Registry {
    /// Finds session `key` of `kind` on `stream`, for PATCH and DELETE.
    pub(super) fn find(
        state: &State,
        kind: Kind,
        stream: &str,
        key: &str,
    ) -> Result<SessionId, SignalError> {
        state
            .sessions
            .iter()
            .find(|(_, e)| e.key == key && e.kind == kind && e.stream == stream)
            .map(|(id, _)| *id)
            .ok_or_else(|| SignalError::NotFound(format!("no session {key} on stream {stream}")))
    }

    /// A fresh session id, unused so far.
    pub(super) fn new_id(state: &State) -> SessionId {
        loop {
            let id: u64 = rand::random();
            if id != 0 && !state.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Fresh local credentials whose ufrag no session uses.
    pub(super) fn new_credentials(state: &State) -> Credentials {
        loop {
            let c = Credentials::random();
            if !state.ufrags.contains_key(c.ufrag()) {
                return c;
            }
        }
    }

    pub(super) fn check_room(&self, state: &State) -> Result<(), SignalError> {
        if state.sessions.len() >= self.config.max_sessions {
            return Err(SignalError::TooManySessions(self.config.max_sessions));
        }
        Ok(())
    }

    /// Stores a negotiated session as unclaimed and returns its `Created`.
    pub(super) fn insert(
        state: &mut State,
        setup: SessionSetup,
        answer: String,
        mid: (String, MediaKind),
    ) -> Created {
        let key = format!("{:016x}", setup.id);
        let etag = new_etag();
        let id = setup.id;
        state.ufrags.insert(setup.local.ufrag().to_owned(), id);
        state.sessions.insert(
            id,
            Entry {
                kind: setup.kind,
                stream: setup.stream.clone(),
                key: key.clone(),
                etag: etag.clone(),
                ufrag: setup.local.ufrag().to_owned(),
                remote_ufrag: setup.remote.ufrag().to_owned(),
                mid,
                created: setup.created,
                home: Home::Unclaimed(Box::new(setup)),
                remotes: Vec::new(),
            },
        );
        Created {
            session: key,
            answer,
            etag,
        }
    }

    /// The part of a POST common to both kinds: negotiate with `config`
    /// (outside the lock: SDP work should not hold up the workers), then
    /// build the set-up.
    pub(super) fn negotiate(
        &self,
        now: Instant,
        kind: Kind,
        stream: &str,
        offer: &str,
        local: Credentials,
        config: &uturn_sdp::AnswerConfig,
    ) -> Result<(SessionSetup, String, (String, MediaKind)), SignalError> {
        let answer =
            answer_text(offer, config).map_err(|e| SignalError::BadOffer(e.to_string()))?;
        let remote = Credentials::new(&answer.remote_ice_ufrag, &answer.remote_ice_pwd)
            .map_err(|e| SignalError::BadOffer(e.to_string()))?;
        let media = negotiate::accepted_media(&answer);
        let mid = media
            .first()
            .map_or((String::new(), MediaKind::Audio), |m| {
                (m.mid.clone(), m.kind)
            });
        let setup = SessionSetup {
            id: 0,
            kind,
            stream: stream.into(),
            local,
            remote,
            remote_candidates: negotiate::udp_candidates(&answer.remote_candidates),
            remote_fingerprint: answer.remote_fingerprint,
            media,
            created: now,
            cname: config.cname.clone(),
        };
        Ok((setup, answer.sdp.to_string(), mid))
    }
}

impl Signalling for Registry {
    fn publish(&self, now: Instant, stream: &str, offer: &str) -> Result<Created, SignalError> {
        if !valid_stream_name(stream) {
            return Err(SignalError::BadStreamName(stream.into()));
        }
        let (local, id) = {
            let mut state = self.lock();
            self.collect_garbage_locked(&mut state, now);
            if state.streams.contains_key(stream) {
                return Err(SignalError::Busy(stream.into()));
            }
            self.check_room(&state)?;
            (Self::new_credentials(&state), Self::new_id(&state))
        };
        let config = negotiate::publisher_config(
            local.ufrag(),
            local.pwd(),
            self.fingerprint,
            &self.config.candidates,
        );
        let (mut setup, answer, mid) =
            self.negotiate(now, Kind::Publisher, stream, offer, local, &config)?;
        setup.id = id;
        let media = setup.media.clone();

        let mut state = self.lock();
        // Checked again: another POST may have won the race meanwhile.
        if state.streams.contains_key(stream) {
            return Err(SignalError::Busy(stream.into()));
        }
        self.check_room(&state)?;
        if state.ufrags.contains_key(setup.local.ufrag()) || state.sessions.contains_key(&id) {
            // Drawn twice between the two locks: astronomically unlikely,
            // and the client can simply retry.
            return Err(SignalError::TooManySessions(self.config.max_sessions));
        }
        state.streams.insert(
            stream.into(),
            Stream {
                publisher: id,
                media,
                ssrcs: StreamSsrcs::random(),
                viewers: Vec::new(),
                router: None,
                held: Vec::new(),
            },
        );
        info!(stream, session = id, "publisher negotiated");
        Ok(Self::insert(&mut state, setup, answer, mid))
    }

    fn play(&self, now: Instant, stream: &str, offer: &str) -> Result<Created, SignalError> {
        if !valid_stream_name(stream) {
            return Err(SignalError::BadStreamName(stream.into()));
        }
        let not_found = || SignalError::NotFound(format!("stream {stream:?} has no publisher"));
        let (local, id, publisher, publisher_media, ssrcs) = {
            let mut state = self.lock();
            self.collect_garbage_locked(&mut state, now);
            let s = state.streams.get(stream).ok_or_else(not_found)?;
            let found = (s.publisher, s.media.clone(), s.ssrcs);
            self.check_room(&state)?;
            (
                Self::new_credentials(&state),
                Self::new_id(&state),
                found.0,
                found.1,
                found.2,
            )
        };
        let config = negotiate::viewer_config(
            local.ufrag(),
            local.pwd(),
            self.fingerprint,
            &self.config.candidates,
            stream,
            &publisher_media,
            &ssrcs,
        );
        let (mut setup, answer, mid) =
            self.negotiate(now, Kind::Viewer, stream, offer, local, &config)?;
        setup.id = id;

        let mut state = self.lock();
        self.check_room(&state)?;
        if state.ufrags.contains_key(setup.local.ufrag()) || state.sessions.contains_key(&id) {
            return Err(SignalError::TooManySessions(self.config.max_sessions));
        }
        // The publisher may have left while we negotiated.
        let s = state
            .streams
            .get_mut(stream)
            .filter(|s| s.publisher == publisher)
            .ok_or_else(not_found)?;
        s.viewers.push(id);
        debug!(stream, session = id, "viewer negotiated");
        Ok(Self::insert(&mut state, setup, answer, mid))
    }

    fn patch(
        &self,
        _now: Instant,
        kind: Kind,
        stream: &str,
        session: &str,
        if_match: Option<&str>,
        fragment: &str,
    ) -> Result<PatchOutcome, SignalError> {
        let frag = TrickleFragment::parse(fragment)
            .map_err(|e| SignalError::BadFragment(e.to_string()))?;
        let mut guard = self.lock();
        let state = &mut *guard;
        let id = Self::find(state, kind, stream, session)?;
        let new_local = Self::new_credentials(state);
        let Some(entry) = state.sessions.get_mut(&id) else {
            return Err(SignalError::NotFound(session.into()));
        };
        // RFC 9725 §4.3.1: If-Match must name the current ICE session ("*"
        // matches any).
        if let Some(tag) = if_match.map(str::trim) {
            if tag != "*" && tag != entry.etag {
                return Err(SignalError::EtagMismatch);
            }
        }
        let candidates = negotiate::udp_candidates(frag.candidates().map(|(_, c)| c));
        let ufrag = frag
            .ice_ufrag
            .as_deref()
            .or_else(|| frag.media.iter().find_map(|m| m.ice_ufrag.as_deref()));
        let pwd = frag
            .ice_pwd
            .as_deref()
            .or_else(|| frag.media.iter().find_map(|m| m.ice_pwd.as_deref()));

        let restart = match ufrag {
            Some(u) if u != entry.remote_ufrag => {
                // New remote credentials: an ICE restart (RFC 8840 §4.4).
                let pwd = pwd.ok_or_else(|| {
                    SignalError::BadFragment("an ICE restart needs a=ice-pwd too".into())
                })?;
                Some(
                    Credentials::new(u, pwd)
                        .map_err(|e| SignalError::BadFragment(e.to_string()))?,
                )
            }
            _ => None,
        };

        let Some(remote) = restart else {
            match &mut entry.home {
                Home::Unclaimed(setup) => {
                    for c in candidates {
                        if !setup.remote_candidates.contains(&c) {
                            setup.remote_candidates.push(c);
                        }
                    }
                }
                Home::Claimed(w) => {
                    if !candidates.is_empty() {
                        self.send(
                            *w,
                            Command::Trickle {
                                session: id,
                                candidates,
                            },
                        );
                    }
                }
            }
            return Ok(PatchOutcome::Trickled);
        };

        let old_ufrag = std::mem::replace(&mut entry.ufrag, new_local.ufrag().to_owned());
        entry.remote_ufrag = remote.ufrag().to_owned();
        entry.etag = new_etag();
        let etag = entry.etag.clone();
        let fragment = negotiate::restart_fragment(
            new_local.ufrag(),
            new_local.pwd(),
            (&entry.mid.0, entry.mid.1),
            &self.config.candidates,
        );
        match &mut entry.home {
            Home::Unclaimed(setup) => {
                setup.local = new_local.clone();
                setup.remote = remote;
                setup.remote_candidates = candidates;
            }
            Home::Claimed(w) => {
                let w = *w;
                if !candidates.is_empty() {
                    self.send(
                        w,
                        Command::Trickle {
                            session: id,
                            candidates,
                        },
                    );
                }
                self.send(
                    w,
                    Command::Restart {
                        session: id,
                        local: new_local.clone(),
                        remote,
                    },
                );
            }
        }
        state.ufrags.remove(&old_ufrag);
        state.ufrags.insert(new_local.ufrag().to_owned(), id);
        debug!(session = id, "ICE restart");
        Ok(PatchOutcome::Restarted { fragment, etag })
    }

    fn delete(
        &self,
        _now: Instant,
        kind: Kind,
        stream: &str,
        session: &str,
    ) -> Result<(), SignalError> {
        let mut state = self.lock();
        let id = Self::find(&state, kind, stream, session)?;
        if let Some(Home::Claimed(w)) = state.sessions.get(&id).map(|e| &e.home) {
            self.send(*w, Command::EndSession(id));
        }
        self.remove_session(&mut state, id, None);
        info!(stream, session = id, ?kind, "session deleted");
        Ok(())
    }

    fn streams(&self) -> Vec<StreamInfo> {
        let state = self.lock();
        let mut list: Vec<StreamInfo> = state
            .streams
            .iter()
            .map(|(name, s)| StreamInfo {
                name: name.clone(),
                viewers: s.viewers.len(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// A fresh quoted entity tag (RFC 9110 §8.8.3) for an ICE session.
fn new_etag() -> String {
    format!("\"{:016x}\"", rand::random::<u64>())
}
