//! The signalling contract between the HTTP routes (WHIP, RFC 9725; WHEP)
//! and the media control plane. The HTTP layer (`uturn/src/whip.rs`) parses
//! requests and maps [`SignalError::http_status`] to responses; the
//! [`Signalling`] implementation (the registry) negotiates, creates and ends
//! sessions. Nothing here touches a socket.

use std::time::Instant;

/// Which side of a stream a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A WHIP publisher (`/whip/{stream}`): sends media to uturn.
    Publisher,
    /// A WHEP viewer (`/whep/{stream}`): receives the stream's media.
    Viewer,
}

/// A session created by a POST: what the `201 Created` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Opaque, URL-safe session id: the Location is
    /// `/whip/{stream}/{session}` or `/whep/{stream}/{session}`.
    pub session: String,
    /// The SDP answer (CRLF line ends).
    pub answer: String,
    /// Entity tag of the ICE session (RFC 9725 §4.3.1), quoted: `"..."`.
    pub etag: String,
}

/// What a PATCH did (RFC 9725 §4.3, RFC 8840).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Trickled candidates were added (or there were none): 204.
    Trickled,
    /// The fragment carried new ICE credentials: ICE restarted; answer 200
    /// with this `application/trickle-ice-sdpfrag` body and the new ETag.
    Restarted {
        /// Our new ice-ufrag/ice-pwd (and candidates) as an SDP fragment.
        fragment: String,
        /// The new entity tag, quoted.
        etag: String,
    },
}

/// Why a signalling request failed; [`http_status`](Self::http_status) is
/// the answer's status and `Display` its text/plain body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// No such stream (a WHEP POST for a stream nobody publishes) or no
    /// such session.
    #[error("{0}")]
    NotFound(String),
    /// The stream already has a publisher.
    #[error("stream {0:?} already has a publisher")]
    Busy(String),
    /// The stream name is not 1–64 of `[A-Za-z0-9_-]`.
    #[error("invalid stream name: {0}")]
    BadStreamName(String),
    /// The offer cannot be answered (malformed, or nothing we can do);
    /// the text says why.
    #[error("cannot answer the offer: {0}")]
    BadOffer(String),
    /// The trickle-ice-sdpfrag body is malformed.
    #[error("bad ICE fragment: {0}")]
    BadFragment(String),
    /// `If-Match` does not match the session's ETag (RFC 9725 §4.3.1).
    #[error("the ICE session's entity tag does not match If-Match")]
    EtagMismatch,
    /// The session limit is reached.
    #[error("too many media sessions (limit {0})")]
    TooManySessions(usize),
}

impl SignalError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Busy(_) => 409,
            Self::BadStreamName(_) | Self::BadOffer(_) | Self::BadFragment(_) => 400,
            Self::EtagMismatch => 412,
            Self::TooManySessions(_) => 503,
        }
    }
}

/// A stream as the demo page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream name.
    pub name: String,
    /// Viewers attached now.
    pub viewers: usize,
}

/// The signalling operations the HTTP layer calls, from its own thread.
/// `now` is the caller's clock reading (the implementation owns no clock).
pub trait Signalling: Send + Sync {
    /// WHIP POST: a publisher's offer for `stream`.
    fn publish(&self, now: Instant, stream: &str, offer: &str) -> Result<Created, SignalError>;
    /// WHEP POST: a viewer's offer for `stream`.
    fn play(&self, now: Instant, stream: &str, offer: &str) -> Result<Created, SignalError>;
    /// PATCH on a session's Location with an `application/trickle-ice-sdpfrag` body.
    fn patch(
        &self,
        now: Instant,
        kind: Kind,
        stream: &str,
        session: &str,
        if_match: Option<&str>,
        fragment: &str,
    ) -> Result<PatchOutcome, SignalError>;
    /// DELETE on a session's Location: ends it (a publisher's end ends its
    /// viewers' sessions too).
    fn delete(
        &self,
        now: Instant,
        kind: Kind,
        stream: &str,
        session: &str,
    ) -> Result<(), SignalError>;
    /// Streams with a publisher now.
    fn streams(&self) -> Vec<StreamInfo>;
}

/// Whether `name` is a valid stream name: 1–64 of `[A-Za-z0-9_-]`.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
