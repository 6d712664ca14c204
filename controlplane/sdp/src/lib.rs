//! SDP offer/answer for WHIP/WHEP: parse what browsers send, generate what
//! a media server answers.
//!
//! Three layers, each usable on its own, none doing I/O:
//!
//! - [`session`]: the RFC 8866 text format. [`SessionDescription::parse`]
//!   reads any SDP (bounded to [`MAX_SDP_LEN`]) into typed lines and keeps
//!   every attribute, so `to_string()` writes it back (CRLF, §5 order).
//! - [`attributes`] and [`candidate`]: the WebRTC subset as typed values
//!   (BUNDLE, mid, direction, ICE, fingerprint, setup, rtcp-mux, codecs,
//!   extmap, ssrc, msid, candidates) and [`codec`] (payload formats),
//!   parsed on demand with line-numbered
//!   errors.
//! - [`answer()`]: JSEP answer generation for an ICE-lite, DTLS-passive,
//!   BUNDLE-only forwarding server ([`AnswerConfig`] → [`Answer`] or a
//!   [`NegotiationError`] with its HTTP status), and [`trickle`]: the
//!   RFC 8840 `application/trickle-ice-sdpfrag` bodies of WHIP PATCH.
//!
//! Nothing here panics on input: every parse returns an error whose
//! `Display` is a sentence fit for an HTTP 400 body.
//!
//! Control-plane code: the SDP is parsed once per session set-up, never
//! per packet, so owned `String`s are fine here.

#![forbid(unsafe_code)]

pub mod answer;
pub mod attributes;
pub mod candidate;
pub mod codec;
pub mod session;
pub mod trickle;

pub use answer::{
    answer, answer_text, Answer, AnswerConfig, MediaOutcome, NegotiatedMedia, NegotiationError,
    OutgoingTrack, Role, SupportedCodec,
};
pub use attributes::{
    Direction, Extmap, Fingerprint, Group, MediaKind, Msid, MsidSemantic, Setup, SsrcAttribute,
    SsrcGroup,
};
pub use candidate::{Candidate, CandidateType};
pub use codec::{Codec, CodecName, RtcpFeedback};
pub use session::{
    Attribute, Connection, Error, Media, MediaLine, Origin, SessionDescription, Timing, MAX_SDP_LEN,
};
pub use trickle::{FragmentMedia, TrickleFragment};
