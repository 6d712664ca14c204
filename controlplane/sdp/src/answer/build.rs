//! Writing the answer SDP (RFC 8829 §5.3.1, "Initial Answers") from the
//! per-m-section outcomes: session-level `ice-lite` and BUNDLE group,
//! accepted sections with our transport, codec and tracks, rejected ones
//! with port 0.

use std::net::SocketAddr;

use super::{AnswerConfig, MediaOutcome, NegotiatedMedia, Role, DTLS_SRTP_PROFILE};
use crate::attributes::{Fingerprint, Setup};
use crate::candidate::Candidate;
use crate::session::{Attribute, Connection, Media, MediaLine, Origin, SessionDescription, Timing};

pub(super) fn build_answer_sdp(
    offer: &SessionDescription,
    outcomes: &[MediaOutcome],
    mids: &[&str],
    bundle_order: &[usize],
    config: &AnswerConfig,
) -> SessionDescription {
    let default_addr = config.candidates.first().copied();
    let connection = match default_addr {
        Some(SocketAddr::V4(a)) => Connection {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: a.ip().to_string(),
        },
        Some(SocketAddr::V6(a)) => Connection {
            net_type: "IN".into(),
            addr_type: "IP6".into(),
            address: a.ip().to_string(),
        },
        // RFC 8829 §5.2.1: port 9 and 0.0.0.0 when there is no candidate.
        None => Connection::unspecified(),
    };
    let port = default_addr.map_or(9, |a| a.port());

    let mut session_attrs = vec![Attribute::flag("ice-lite")];
    if offer.bundle().is_some() {
        let mut group = String::from("BUNDLE");
        for mid in bundle_order.iter().filter_map(|&i| mids.get(i)) {
            group.push(' ');
            group.push_str(mid);
        }
        session_attrs.push(Attribute::new("group", group));
    }
    if config.role == Role::Send {
        session_attrs.push(Attribute::new(
            "msid-semantic",
            format!(" WMS {}", config.stream_id),
        ));
    }

    let tagged = bundle_order.first().copied();
    let mut media = Vec::with_capacity(outcomes.len());
    for (i, ((outcome, offered), mid)) in outcomes.iter().zip(&offer.media).zip(mids).enumerate() {
        match outcome {
            MediaOutcome::Rejected { .. } => {
                // RFC 8829 §5.3.1 / RFC 3264 §6: port 0, the offered
                // formats, and the mid so the offerer can match it.
                let mut m = Media::new(MediaLine {
                    port: 0,
                    port_count: None,
                    ..offered.line.clone()
                });
                m.connections.push(Connection::unspecified());
                m.attributes.push(Attribute::new("mid", *mid));
                media.push(m);
            }
            MediaOutcome::Accepted(n) => {
                media.push(accepted_media(
                    offered,
                    n,
                    port,
                    &connection,
                    tagged == Some(i),
                    config,
                ));
            }
        }
    }

    SessionDescription {
        origin: Origin {
            username: "-".into(),
            session_id: config.session_id.to_string(),
            session_version: "1".into(),
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: "127.0.0.1".into(),
        },
        name: "-".into(),
        info: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        timings: vec![Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }],
        zone: None,
        key: None,
        attributes: session_attrs,
        media,
    }
}

fn accepted_media(
    offered: &Media,
    n: &NegotiatedMedia,
    port: u16,
    connection: &Connection,
    with_candidates: bool,
    config: &AnswerConfig,
) -> Media {
    let pt = n.codec.payload_type;
    let mut formats = vec![pt.to_string()];
    if let Some(rtx) = n.rtx_payload_type {
        formats.push(rtx.to_string());
    }
    let mut m = Media::new(MediaLine {
        media: offered.line.media.clone(),
        port,
        port_count: None,
        proto: DTLS_SRTP_PROFILE.into(),
        formats,
    });
    m.connections.push(connection.clone());
    let a = &mut m.attributes;
    // Candidates go in the answerer-tagged m-section only: every other
    // section rides its transport (RFC 8843 §7.3).
    if with_candidates {
        for (i, addr) in config.candidates.iter().enumerate() {
            let foundation = (i + 1).to_string();
            a.push(Attribute::new(
                "candidate",
                Candidate::host(&foundation, *addr).to_string(),
            ));
        }
        a.push(Attribute::flag("end-of-candidates"));
    }
    a.push(Attribute::new("ice-ufrag", config.ice_ufrag.as_str()));
    a.push(Attribute::new("ice-pwd", config.ice_pwd.as_str()));
    a.push(Attribute::new(
        "fingerprint",
        Fingerprint::sha256(config.fingerprint).to_string(),
    ));
    a.push(Attribute::new("setup", Setup::Passive.as_str()));
    a.push(Attribute::new("mid", n.mid.as_str()));
    for e in &n.extmaps {
        a.push(Attribute::new("extmap", e.to_string()));
    }
    a.push(Attribute::flag(n.direction.as_str()));
    let track = n.local_track.as_ref().filter(|_| n.direction.sends());
    if let Some(t) = track {
        a.push(Attribute::new(
            "msid",
            format!("{} {}", config.stream_id, t.track_id),
        ));
    }
    a.push(Attribute::flag("rtcp-mux"));
    if n.rtcp_rsize {
        a.push(Attribute::flag("rtcp-rsize"));
    }
    let c = &n.codec;
    let mut rtpmap = format!("{pt} {}/{}", c.encoding, c.clock_rate);
    if let Some(ch) = c.channels {
        rtpmap.push_str(&format!("/{ch}"));
    }
    a.push(Attribute::new("rtpmap", rtpmap));
    for f in &c.feedback {
        a.push(Attribute::new("rtcp-fb", format!("{pt} {}", f.feedback())));
    }
    if let Some(fmtp) = &c.fmtp {
        a.push(Attribute::new("fmtp", format!("{pt} {fmtp}")));
    }
    if let Some(rtx) = n.rtx_payload_type {
        a.push(Attribute::new(
            "rtpmap",
            format!("{rtx} rtx/{}", c.clock_rate),
        ));
        a.push(Attribute::new("fmtp", format!("{rtx} apt={pt}")));
    }
    if let Some(t) = track {
        let rtx_ssrc = t.rtx_ssrc.filter(|_| n.rtx_payload_type.is_some());
        if let Some(rtx_ssrc) = rtx_ssrc {
            a.push(Attribute::new(
                "ssrc-group",
                format!("FID {} {rtx_ssrc}", t.ssrc),
            ));
        }
        for ssrc in std::iter::once(t.ssrc).chain(rtx_ssrc) {
            a.push(Attribute::new(
                "ssrc",
                format!("{ssrc} cname:{}", config.cname),
            ));
            a.push(Attribute::new(
                "ssrc",
                format!("{ssrc} msid:{} {}", config.stream_id, t.track_id),
            ));
        }
    }
    m
}
