//! One media session as its home worker holds it: the ICE-lite agent
//! (RFC 8445 §2.5, consent per RFC 7675), the DTLS server endpoint started
//! on the selected pair (RFC 5764 §4; RFC 8842: uturn is always
//! `setup:passive`), and, for a viewer, the inbound SRTCP context its
//! feedback is decrypted with. A publisher's SRTP contexts live in its
//! stream's [`StreamRouter`](crate::router::StreamRouter); a viewer's
//! outbound one too (so each context is touched by one thread).
//!
//! Also here: the [`TrackMap`]s the router gets, built from each side's
//! negotiated m-sections.

use std::net::SocketAddr;
use std::time::Instant;

use uturn_dtls::Endpoint;
use uturn_ice::{IceLite, Pair};
use uturn_rtp::keyframe::VideoCodec;
use uturn_sdp::answer::EXT_TRANSPORT_CC;
use uturn_sdp::{CodecName, NegotiatedMedia};
use uturn_srtp::SrtpContext;

use crate::mailbox::SessionId;
use crate::registry::SessionSetup;
use crate::router::TrackMap;
use crate::signal::Kind;

/// Remote addresses a session keeps mapped to itself on its home worker:
/// those that sent a valid check (RFC 8445 §7.3.1.3), the selected pair's
/// among them.
const MAX_REMOTES: usize = 8;

/// A session homed on this worker.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: SessionId,
    pub kind: Kind,
    pub ice: IceLite,
    /// The pair ICE selected; DTLS and media run on it.
    pub selected: Option<Pair>,
    /// Before a nomination: the pair the peer's DTLS came from (browsers
    /// may start DTLS as soon as a check succeeds, a moment before the
    /// nominating check arrives).
    pub dtls_pair: Option<Pair>,
    /// Every remote address mapped to this session in the engine.
    pub remotes: Vec<SocketAddr>,
    /// Started when ICE selects a pair.
    pub dtls: Option<Endpoint>,
    pub remote_fingerprint: [u8; 32],
    /// The accepted m-sections, from our side.
    pub media: Vec<NegotiatedMedia>,
    pub cname: String,
    /// Viewer: unprotects the SRTCP it sends (RFC 3711 §3.4).
    pub srtcp_in: Option<SrtpContext>,
    /// Viewer: its stream's publisher and the worker running the fan-out,
    /// once known.
    pub upstream: Option<(SessionId, usize)>,
    /// The deadline this session's entry in the engine's timer heap has
    /// (entries with another one are stale).
    pub armed: Option<Instant>,
}

impl Session {
    /// A claimed session, its agent created with the POST's time so that
    /// ICE must complete within 30 s of it (docs/media.md "Lifetimes").
    pub fn new(setup: SessionSetup) -> Session {
        let mut ice = IceLite::new(setup.created, setup.local, setup.remote);
        for (address, priority) in setup.remote_candidates {
            ice.add_remote_candidate(address, priority);
        }
        Session {
            id: setup.id,
            kind: setup.kind,
            ice,
            selected: None,
            dtls_pair: None,
            remotes: Vec::new(),
            dtls: None,
            remote_fingerprint: setup.remote_fingerprint,
            media: setup.media,
            cname: setup.cname,
            srtcp_in: None,
            upstream: None,
            armed: None,
        }
    }

    /// The earliest of the agent's and the DTLS endpoint's timers.
    pub fn timeout(&self) -> Option<Instant> {
        let dtls = self.dtls.as_ref().and_then(Endpoint::poll_timeout);
        self.ice.poll_timeout().into_iter().chain(dtls).min()
    }

    /// Where DTLS and media go: the selected pair, else the pair DTLS
    /// started on.
    pub fn path(&self) -> Option<Pair> {
        self.selected.or(self.dtls_pair)
    }

    /// Remembers `remote` as one of this session's; returns the address
    /// forgotten to make room, if any: the oldest one that media does not
    /// use (checks from a browser's other candidates must not push out
    /// the selected pair).
    pub fn add_remote(&mut self, remote: SocketAddr) -> Option<SocketAddr> {
        if self.remotes.contains(&remote) {
            return None;
        }
        let mut dropped = None;
        if self.remotes.len() >= MAX_REMOTES {
            let in_use = self.path().map(|p| p.remote);
            let old = self.remotes.iter().position(|r| Some(*r) != in_use);
            dropped = old.map(|i| self.remotes.remove(i));
        }
        self.remotes.push(remote);
        dropped
    }

    /// The publisher's tracks: what it sends (our recvonly m-sections),
    /// with the SSRCs its SDP announced (else the router learns them).
    ///
    /// The transport-wide sequence number extension stays in a track's
    /// extensions only if the publisher also negotiated `transport-cc`
    /// feedback: the router sends that feedback exactly when a publisher
    /// track lists the extension. Without the feedback, viewers do not get
    /// the publisher's transport-wide numbers either; they describe the
    /// publisher's transport, not the viewer's.
    pub fn publisher_tracks(&self) -> Vec<TrackMap> {
        self.media
            .iter()
            .filter(|m| m.direction.receives())
            .map(publisher_track)
            .collect()
    }

    /// A viewer's tracks: what we send it (our sendonly m-sections with a
    /// track), with the stream's SSRCs.
    pub fn viewer_tracks(&self) -> Vec<TrackMap> {
        self.media
            .iter()
            .filter(|m| m.direction.sends())
            .filter_map(|m| {
                let t = m.local_track.as_ref()?;
                let rtx = t.rtx_ssrc.filter(|_| m.rtx_payload_type.is_some());
                Some(track_map(m, Some(t.ssrc), rtx))
            })
            .collect()
    }
}

/// A publisher's m-section as the router gets it (see
/// [`Session::publisher_tracks`]).
fn publisher_track(m: &NegotiatedMedia) -> TrackMap {
    let mut track = track_map(m, m.remote_ssrc, m.remote_rtx_ssrc);
    if !m.codec.has_feedback("transport-cc", None) {
        track.extensions.retain(|(uri, _)| uri != EXT_TRANSPORT_CC);
    }
    track
}

fn track_map(m: &NegotiatedMedia, ssrc: Option<u32>, rtx_ssrc: Option<u32>) -> TrackMap {
    let c = &m.codec;
    TrackMap {
        kind: m.kind,
        mid: m.mid.clone(),
        payload_type: c.payload_type,
        rtx_payload_type: m.rtx_payload_type,
        ssrc,
        rtx_ssrc,
        clock_rate: c.clock_rate,
        codec: match c.name {
            CodecName::Vp8 => VideoCodec::Vp8,
            CodecName::Vp9 => VideoCodec::Vp9,
            CodecName::H264 => VideoCodec::H264,
            _ => VideoCodec::Other,
        },
        extensions: m.extmaps.iter().map(|e| (e.uri.clone(), e.id)).collect(),
        // RFC 4585 §4.2: `nack` alone is generic NACK, `nack pli` PLI;
        // RFC 5104 §7.1: `ccm fir`.
        nack: c.has_feedback("nack", None),
        pli: c.has_feedback("nack", Some("pli")),
        fir: c.has_feedback("ccm", Some("fir")),
    }
}

#[cfg(test)]
mod tests {
    use uturn_sdp::{Codec, Direction, Extmap, MediaKind, RtcpFeedback};

    use super::*;

    fn media(feedback: &[&str]) -> NegotiatedMedia {
        let extmap = |id, uri: &str| Extmap {
            id,
            direction: None,
            uri: uri.to_owned(),
            attributes: None,
        };
        NegotiatedMedia {
            mid: "1".to_owned(),
            kind: MediaKind::Video,
            direction: Direction::RecvOnly,
            codec: Codec {
                payload_type: 96,
                name: CodecName::Vp8,
                encoding: "VP8".to_owned(),
                clock_rate: 90_000,
                channels: None,
                fmtp: None,
                feedback: feedback
                    .iter()
                    .map(|typ| RtcpFeedback {
                        payload_type: Some(96),
                        typ: (*typ).to_owned(),
                        parameter: None,
                    })
                    .collect(),
            },
            rtx_payload_type: None,
            extmaps: vec![
                extmap(1, "urn:ietf:params:rtp-hdrext:sdes:mid"),
                extmap(3, EXT_TRANSPORT_CC),
            ],
            rtcp_rsize: true,
            remote_ssrc: Some(7),
            remote_rtx_ssrc: None,
            remote_msid: None,
            local_track: None,
        }
    }

    /// The router sends transport-cc feedback exactly when a publisher
    /// track lists the extension: only with the feedback negotiated too.
    #[test]
    fn transport_cc_extension_kept_only_with_its_feedback() {
        let ids = |t: TrackMap| {
            t.extensions
                .into_iter()
                .map(|(_, id)| id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(publisher_track(&media(&["nack", "transport-cc"]))),
            [1, 3]
        );
        assert_eq!(ids(publisher_track(&media(&["nack"]))), [1]);
    }
}
