//! WHIP (RFC 9725) and WHEP signalling over HTTP, and the demo page.
//!
//! Routes, all on the `--api` listener:
//!
//! - `POST /whip/{stream}` (publisher) and `POST /whep/{stream}` (viewer):
//!   an `application/sdp` offer → `201 Created` with the answer, the session's
//!   `Location` (`/whip/{stream}/{session}`), its `ETag` (RFC 9725 §4.2).
//! - `PATCH` on a Location with `application/trickle-ice-sdpfrag` (RFC 8840):
//!   204 for trickled candidates, 200 with our new fragment for an ICE
//!   restart (RFC 9725 §4.3); `If-Match` is passed through (412 on mismatch).
//! - `DELETE` on a Location ends the session: 200 (RFC 9725 §4.2).
//! - `OPTIONS` on both: 204 with `Accept-Post` / `Accept-Patch`, and the CORS
//!   preflight answer, so pages from any origin can publish and play
//!   (RFC 9725 §4.1 lets OPTIONS go unauthenticated: a browser's preflight
//!   never carries credentials).
//! - `GET /`: the demo page; `GET /streams`: the streams now published, as
//!   JSON, for the page.
//!
//! With `--whip-token TOKEN`, every WHIP/WHEP request except OPTIONS must
//! carry `Authorization: Bearer TOKEN` (RFC 9725 §4.5, RFC 6750 §2.1), else
//! 401 with `WWW-Authenticate: Bearer`. Every answer here carries the CORS
//! headers, errors included, or a page could not read why it failed.
//!
//! The routes are pure: they parse the request, call [`Signalling`] (the
//! media registry) and map its answer or [`SignalError::http_status`] to a
//! response, so they are tested with a fake registry.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use uturn_media::signal::{valid_stream_name, Kind, PatchOutcome, SignalError, Signalling};

use crate::api::{Handler, HttpRequest, HttpResponse, MAX_BODY};

/// The media type of offers and answers (RFC 3264, RFC 9725 §4.2).
const SDP: &str = "application/sdp";
/// The media type of PATCH bodies (RFC 8840 §9.1).
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The demo page (`GET /`): publish this camera, or watch a stream.
const DEMO_PAGE: &str = include_str!("demo/index.html");

/// CORS (the Fetch standard's response headers): any origin may call, with
/// the methods and request headers WHIP/WHEP use, and may read the headers a
/// WHIP client needs (Location for PATCH/DELETE, ETag for If-Match, Link for
/// ICE servers, Accept-Patch for trickle).
const CORS: [(&str, &str); 5] = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Methods",
        "GET, POST, PATCH, DELETE, OPTIONS",
    ),
    (
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, If-Match",
    ),
    (
        "Access-Control-Expose-Headers",
        "Location, ETag, Accept-Patch, Link",
    ),
    // Browsers cache the preflight at most this long (Chromium caps it at 2 h).
    ("Access-Control-Max-Age", "7200"),
];

/// Methods each kind of resource takes (the `Allow` of a 405).
const ENDPOINT_METHODS: &str = "POST, OPTIONS";
const SESSION_METHODS: &str = "PATCH, DELETE, OPTIONS";

/// The WHIP/WHEP routes, the demo page and the stream list.
pub struct WhipApi {
    signalling: Arc<dyn Signalling>,
    /// `--whip-token`; `None`: no authentication.
    token: Option<String>,
}

// By hand: the token must never be printed.
impl fmt::Debug for WhipApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhipApi")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Which resource a `/whip/…` or `/whep/…` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource<'a> {
    /// `/whip/{stream}`: the endpoint that takes offers.
    Endpoint { kind: Kind, stream: &'a str },
    /// `/whip/{stream}/{session}`: a session (the Location).
    Session {
        kind: Kind,
        stream: &'a str,
        session: &'a str,
    },
}

impl<'a> Resource<'a> {
    /// `None` for paths outside `/whip/` and `/whep/`; `Some(Err(()))` for
    /// paths inside that name nothing (empty segments, too many of them).
    fn parse(path: &'a str) -> Option<Result<Self, ()>> {
        let (kind, rest) = if let Some(rest) = path.strip_prefix("/whip/") {
            (Kind::Publisher, rest)
        } else if let Some(rest) = path.strip_prefix("/whep/") {
            (Kind::Viewer, rest)
        } else {
            return None;
        };
        let mut segments = rest.split('/');
        let stream = segments.next().filter(|s| !s.is_empty());
        let session = segments.next();
        Some(match (stream, session, segments.next()) {
            (Some(stream), None, None) => Ok(Resource::Endpoint { kind, stream }),
            (Some(stream), Some(session), None) if !session.is_empty() => Ok(Resource::Session {
                kind,
                stream,
                session,
            }),
            _ => Err(()),
        })
    }
}

impl WhipApi {
    pub fn new(signalling: Arc<dyn Signalling>, token: Option<String>) -> Self {
        WhipApi { signalling, token }
    }

    /// Whether the request carries `Authorization: Bearer <our token>`
    /// (always, when no token is configured).
    fn authorized(&self, request: &HttpRequest<'_>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(value) = request.header("Authorization") else {
            return false;
        };
        // RFC 6750 §2.1: `Bearer` (the scheme is case-insensitive, RFC 9110
        // §11.1), one or more spaces, the token.
        let Some((scheme, given)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("Bearer") && same_secret(given.trim_start(), token)
    }

    fn whip(&self, request: &HttpRequest<'_>, resource: Resource<'_>) -> HttpResponse {
        let now = Instant::now();
        match (resource, request.method) {
            (Resource::Endpoint { .. }, "OPTIONS") => HttpResponse::new(204, "", String::new())
                .with_header("Accept-Post", SDP)
                .with_header("Allow", ENDPOINT_METHODS),
            (Resource::Session { .. }, "OPTIONS") => HttpResponse::new(204, "", String::new())
                .with_header("Accept-Patch", SDPFRAG)
                .with_header("Allow", SESSION_METHODS),
            _ if !self.authorized(request) => {
                text(401, "a valid `Authorization: Bearer` token is required")
                    .with_header("WWW-Authenticate", "Bearer")
            }
            (Resource::Endpoint { kind, stream }, "POST") => {
                let offer = match sdp_body(request, SDP) {
                    Ok(offer) => offer,
                    Err(response) => return response,
                };
                if !valid_stream_name(stream) {
                    return signal_error(&SignalError::BadStreamName(stream.to_owned()));
                }
                let created = match kind {
                    Kind::Publisher => self.signalling.publish(now, stream, offer),
                    Kind::Viewer => self.signalling.play(now, stream, offer),
                };
                match created {
                    Ok(created) => {
                        let location = format!("{}/{stream}/{}", prefix(kind), created.session);
                        tracing::debug!(kind = ?kind, stream, session = %created.session, "media session created");
                        HttpResponse::new(201, SDP, created.answer)
                            .with_header("Location", location)
                            .with_header("ETag", created.etag)
                            .with_header("Accept-Patch", SDPFRAG)
                    }
                    Err(e) => {
                        tracing::debug!(kind = ?kind, stream, error = %e, "offer refused");
                        signal_error(&e)
                    }
                }
            }
            (
                Resource::Session {
                    kind,
                    stream,
                    session,
                },
                "PATCH",
            ) => {
                let fragment = match sdp_body(request, SDPFRAG) {
                    Ok(fragment) => fragment,
                    Err(response) => return response,
                };
                let if_match = request.header("If-Match");
                match self
                    .signalling
                    .patch(now, kind, stream, session, if_match, fragment)
                {
                    Ok(PatchOutcome::Trickled) => HttpResponse::new(204, "", String::new()),
                    Ok(PatchOutcome::Restarted { fragment, etag }) => {
                        HttpResponse::new(200, SDPFRAG, fragment).with_header("ETag", etag)
                    }
                    Err(e) => signal_error(&e),
                }
            }
            (
                Resource::Session {
                    kind,
                    stream,
                    session,
                },
                "DELETE",
            ) => match self.signalling.delete(now, kind, stream, session) {
                Ok(()) => {
                    tracing::debug!(kind = ?kind, stream, session, "media session deleted");
                    HttpResponse::new(200, "", String::new())
                }
                Err(e) => signal_error(&e),
            },
            (Resource::Endpoint { .. }, _) => method_not_allowed(ENDPOINT_METHODS),
            (Resource::Session { .. }, _) => method_not_allowed(SESSION_METHODS),
        }
    }

    /// `GET /streams`: `{"streams": [{"name": "cam", "viewers": 2}]}`.
    fn streams(&self, request: &HttpRequest<'_>) -> HttpResponse {
        match request.method {
            "OPTIONS" => HttpResponse::new(204, "", String::new()),
            "GET" if !self.authorized(request) => {
                text(401, "a valid `Authorization: Bearer` token is required")
                    .with_header("WWW-Authenticate", "Bearer")
            }
            "GET" => {
                let mut streams = self.signalling.streams();
                streams.sort_by(|a, b| a.name.cmp(&b.name));
                let list: Vec<serde_json::Value> = streams
                    .iter()
                    .map(|s| json!({ "name": s.name, "viewers": s.viewers }))
                    .collect();
                HttpResponse::json(200, &json!({ "streams": list }))
            }
            _ => method_not_allowed("GET, OPTIONS"),
        }
    }
}

impl Handler for WhipApi {
    fn handle(&self, request: &HttpRequest<'_>) -> Option<HttpResponse> {
        let path = request.path();
        let response = match Resource::parse(path) {
            Some(Ok(resource)) => self.whip(request, resource),
            Some(Err(())) => text(404, "no such WHIP/WHEP resource"),
            None => match (path, request.method) {
                // Only GET: `POST /` stays the credential API's.
                ("/", "GET" | "HEAD") => HttpResponse::new(200, HTML, DEMO_PAGE.to_owned()),
                ("/streams", _) => self.streams(request),
                _ => return None,
            },
        };
        Some(with_cors(response))
    }
}

fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Publisher => "/whip",
        Kind::Viewer => "/whep",
    }
}

/// The body of a request that must be of `media_type`: 415 for another
/// type, 413 past [`MAX_BODY`], 400 when it is not UTF-8.
fn sdp_body<'a>(request: &HttpRequest<'a>, media_type: &str) -> Result<&'a str, HttpResponse> {
    // RFC 9110 §8.3.1: the type is case-insensitive and may carry parameters.
    let given = request
        .header("Content-Type")
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !given.is_some_and(|t| t.eq_ignore_ascii_case(media_type)) {
        let header = if media_type == SDP {
            "Accept-Post"
        } else {
            "Accept-Patch"
        };
        return Err(text(415, &format!("Content-Type must be {media_type}"))
            .with_header(header, media_type));
    }
    if request.body.len() > MAX_BODY {
        return Err(text(
            413,
            &format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    std::str::from_utf8(request.body).map_err(|_| text(400, "the body is not UTF-8 text"))
}

fn signal_error(e: &SignalError) -> HttpResponse {
    text(e.http_status(), &e.to_string())
}

fn text(status: u16, message: &str) -> HttpResponse {
    HttpResponse::new(status, TEXT, format!("{message}\n"))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse {
        allow: Some(allow),
        ..text(405, "method not allowed")
    }
}

fn with_cors(mut response: HttpResponse) -> HttpResponse {
    for (name, value) in CORS {
        response.headers.push((name, value.to_owned()));
    }
    response
}

/// Compares a presented secret with ours in time that depends only on the
/// lengths, so the comparison does not reveal how much of a guess matched.
fn same_secret(given: &str, ours: &str) -> bool {
    let (given, ours) = (given.as_bytes(), ours.as_bytes());
    given.len() == ours.len()
        && given
            .iter()
            .zip(ours)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use uturn_media::signal::{Created, StreamInfo};

    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    /// What the fake registry was asked.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Publish(String, String),
        Play(String, String),
        Patch {
            kind: Kind,
            stream: String,
            session: String,
            if_match: Option<String>,
            fragment: String,
        },
        Delete(Kind, String, String),
    }

    /// A registry with one stream, `cam` (session `s1`, ETag `"e1"`), that
    /// records every call.
    #[derive(Default)]
    struct FakeSignalling {
        calls: Mutex<Vec<Call>>,
    }

    impl FakeSignalling {
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn record(&self, call: Call) {
            self.calls.lock().unwrap().push(call);
        }

        fn session(&self, stream: &str, session: &str) -> Result<(), SignalError> {
            if stream == "cam" && session == "s1" {
                Ok(())
            } else {
                Err(SignalError::NotFound(format!("no session {session}")))
            }
        }
    }

    impl Signalling for FakeSignalling {
        fn publish(&self, _: Instant, stream: &str, offer: &str) -> Result<Created, SignalError> {
            self.record(Call::Publish(stream.to_owned(), offer.to_owned()));
            match (stream, offer) {
                ("cam", _) => Err(SignalError::Busy(stream.to_owned())),
                (_, "garbage") => Err(SignalError::BadOffer("no m= line".to_owned())),
                _ => Ok(Created {
                    session: "p1".to_owned(),
                    answer: "v=0\r\nanswer\r\n".to_owned(),
                    etag: "\"e-p1\"".to_owned(),
                }),
            }
        }

        fn play(&self, _: Instant, stream: &str, offer: &str) -> Result<Created, SignalError> {
            self.record(Call::Play(stream.to_owned(), offer.to_owned()));
            if stream != "cam" {
                return Err(SignalError::NotFound(format!("no stream {stream:?}")));
            }
            Ok(Created {
                session: "v1".to_owned(),
                answer: "v=0\r\nviewer answer\r\n".to_owned(),
                etag: "\"e-v1\"".to_owned(),
            })
        }

        fn patch(
            &self,
            _: Instant,
            kind: Kind,
            stream: &str,
            session: &str,
            if_match: Option<&str>,
            fragment: &str,
        ) -> Result<PatchOutcome, SignalError> {
            self.record(Call::Patch {
                kind,
                stream: stream.to_owned(),
                session: session.to_owned(),
                if_match: if_match.map(str::to_owned),
                fragment: fragment.to_owned(),
            });
            self.session(stream, session)?;
            if if_match.is_some_and(|m| m != "\"e1\"" && m != "*") {
                return Err(SignalError::EtagMismatch);
            }
            if fragment.contains("a=ice-ufrag:") {
                Ok(PatchOutcome::Restarted {
                    fragment: "a=ice-ufrag:new\r\na=ice-pwd:newpassword\r\n".to_owned(),
                    etag: "\"e2\"".to_owned(),
                })
            } else {
                Ok(PatchOutcome::Trickled)
            }
        }

        fn delete(
            &self,
            _: Instant,
            kind: Kind,
            stream: &str,
            session: &str,
        ) -> Result<(), SignalError> {
            self.record(Call::Delete(kind, stream.to_owned(), session.to_owned()));
            self.session(stream, session)
        }

        fn streams(&self) -> Vec<StreamInfo> {
            vec![
                StreamInfo {
                    name: "zebra".to_owned(),
                    viewers: 0,
                },
                StreamInfo {
                    name: "cam".to_owned(),
                    viewers: 2,
                },
            ]
        }
    }

    fn api(token: Option<&str>) -> (WhipApi, Arc<FakeSignalling>) {
        let fake = Arc::new(FakeSignalling::default());
        (WhipApi::new(fake.clone(), token.map(str::to_owned)), fake)
    }

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn call(
        api: &WhipApi,
        method: &str,
        url: &str,
        header_list: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let headers = headers(header_list);
        let request = HttpRequest {
            method,
            url,
            headers: &headers,
            body,
        };
        let response = api.handle(&request).expect("a WHIP route");
        assert_cors(&response);
        response
    }

    fn post_sdp(api: &WhipApi, url: &str, offer: &str) -> HttpResponse {
        call(
            api,
            "POST",
            url,
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
    }

    fn assert_cors(response: &HttpResponse) {
        assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"));
        let methods = response.header("Access-Control-Allow-Methods").unwrap();
        for method in ["POST", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.contains(method), "{methods}");
        }
        let allowed = response.header("Access-Control-Allow-Headers").unwrap();
        for header in ["Authorization", "Content-Type", "If-Match"] {
            assert!(allowed.contains(header), "{allowed}");
        }
        let exposed = response.header("Access-Control-Expose-Headers").unwrap();
        for header in ["Location", "ETag", "Accept-Patch", "Link"] {
            assert!(exposed.contains(header), "{exposed}");
        }
    }

    #[test]
    fn publish_creates_a_session() {
        let (api, fake) = api(None);
        let response = post_sdp(&api, "/whip/studio", OFFER);
        assert_eq!(response.status, 201);
        assert_eq!(response.content_type, SDP);
        assert_eq!(response.body, "v=0\r\nanswer\r\n");
        assert_eq!(response.header("Location"), Some("/whip/studio/p1"));
        assert_eq!(response.header("ETag"), Some("\"e-p1\""));
        assert_eq!(response.header("Accept-Patch"), Some(SDPFRAG));
        assert_eq!(
            fake.calls(),
            vec![Call::Publish("studio".to_owned(), OFFER.to_owned())]
        );
    }

    #[test]
    fn play_creates_a_viewer_session_under_whep() {
        let (api, fake) = api(None);
        // A query string is not part of the stream name.
        let response = post_sdp(&api, "/whep/cam?x=1", OFFER);
        assert_eq!(response.status, 201);
        assert_eq!(response.header("Location"), Some("/whep/cam/v1"));
        assert_eq!(response.body, "v=0\r\nviewer answer\r\n");
        assert_eq!(
            fake.calls(),
            vec![Call::Play("cam".to_owned(), OFFER.to_owned())]
        );
    }

    #[test]
    fn signal_errors_keep_their_status_and_text() {
        let (api, _) = api(None);
        let busy = post_sdp(&api, "/whip/cam", OFFER);
        assert_eq!(busy.status, 409);
        assert_eq!(busy.content_type, TEXT);
        assert!(
            busy.body.contains("already has a publisher"),
            "{}",
            busy.body
        );

        let missing = post_sdp(&api, "/whep/nobody", OFFER);
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("nobody"), "{}", missing.body);

        let bad = post_sdp(&api, "/whip/studio", "garbage");
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("no m= line"), "{}", bad.body);
    }

    #[test]
    fn invalid_stream_names_are_400_without_a_call() {
        let (api, fake) = api(None);
        for url in [
            "/whip/a%20b",
            "/whip/has.dot",
            &format!("/whep/{}", "x".repeat(65)),
        ] {
            let response = post_sdp(&api, url, OFFER);
            assert_eq!(response.status, 400, "{url}");
            assert!(response.body.contains("invalid stream name"), "{url}");
        }
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn content_type_must_be_sdp() {
        let (api, fake) = api(None);
        for content_type in [None, Some("text/plain"), Some("application/sdpx")] {
            let mut list = Vec::new();
            if let Some(t) = content_type {
                list.push(("Content-Type", t));
            }
            let response = call(&api, "POST", "/whip/studio", &list, OFFER.as_bytes());
            assert_eq!(response.status, 415, "{content_type:?}");
            assert_eq!(response.header("Accept-Post"), Some(SDP));
        }
        assert!(fake.calls().is_empty());
        // Parameters and case do not matter.
        let response = call(
            &api,
            "POST",
            "/whip/studio",
            &[("content-type", "Application/SDP; charset=utf-8")],
            OFFER.as_bytes(),
        );
        assert_eq!(response.status, 201);
    }

    #[test]
    fn bodies_past_the_limit_are_413() {
        let (api, fake) = api(None);
        let big = vec![b'a'; MAX_BODY + 1];
        let response = call(&api, "POST", "/whip/studio", &[("Content-Type", SDP)], &big);
        assert_eq!(response.status, 413);
        assert!(fake.calls().is_empty());
        // Exactly at the limit is still taken.
        let limit = "a".repeat(MAX_BODY);
        assert_eq!(post_sdp(&api, "/whip/studio", &limit).status, 201);
    }

    #[test]
    fn non_utf8_bodies_are_400() {
        let (api, fake) = api(None);
        let response = call(
            &api,
            "POST",
            "/whip/studio",
            &[("Content-Type", SDP)],
            &[0xff, 0xfe],
        );
        assert_eq!(response.status, 400);
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn patch_trickles_restarts_and_passes_if_match() {
        let (api, fake) = api(None);
        let frag = [("Content-Type", SDPFRAG), ("If-Match", "\"e1\"")];
        let trickle = "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n";
        let response = call(&api, "PATCH", "/whip/cam/s1", &frag, trickle.as_bytes());
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());

        let restart = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n";
        let response = call(&api, "PATCH", "/whip/cam/s1", &frag, restart.as_bytes());
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type, SDPFRAG);
        assert!(response.body.contains("a=ice-ufrag:new"));
        assert_eq!(response.header("ETag"), Some("\"e2\""));

        let stale = [("Content-Type", SDPFRAG), ("If-Match", "\"old\"")];
        let response = call(&api, "PATCH", "/whip/cam/s1", &stale, trickle.as_bytes());
        assert_eq!(response.status, 412);

        let response = call(&api, "PATCH", "/whep/cam/nope", &frag, trickle.as_bytes());
        assert_eq!(response.status, 404);

        let calls = fake.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(
            calls[0],
            Call::Patch {
                kind: Kind::Publisher,
                stream: "cam".to_owned(),
                session: "s1".to_owned(),
                if_match: Some("\"e1\"".to_owned()),
                fragment: trickle.to_owned(),
            }
        );
        assert!(
            matches!(&calls[3], Call::Patch { kind: Kind::Viewer, session, .. } if session == "nope")
        );
    }

    #[test]
    fn patch_needs_the_trickle_media_type() {
        let (api, fake) = api(None);
        let response = call(
            &api,
            "PATCH",
            "/whip/cam/s1",
            &[("Content-Type", SDP)],
            b"a=end-of-candidates\r\n",
        );
        assert_eq!(response.status, 415);
        assert_eq!(response.header("Accept-Patch"), Some(SDPFRAG));
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn delete_ends_a_session_then_404() {
        let (api, fake) = api(None);
        let response = call(&api, "DELETE", "/whep/cam/s1", &[], b"");
        assert_eq!(response.status, 200);
        let response = call(&api, "DELETE", "/whip/cam/gone", &[], b"");
        assert_eq!(response.status, 404);
        assert_eq!(
            fake.calls(),
            vec![
                Call::Delete(Kind::Viewer, "cam".to_owned(), "s1".to_owned()),
                Call::Delete(Kind::Publisher, "cam".to_owned(), "gone".to_owned()),
            ]
        );
    }

    #[test]
    fn options_answers_preflights_without_a_token() {
        let (api, fake) = api(Some("t0ken"));
        let preflight = [
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
        ];
        let response = call(&api, "OPTIONS", "/whip/studio", &preflight, b"");
        assert_eq!(response.status, 204);
        assert_eq!(response.header("Accept-Post"), Some(SDP));
        let response = call(&api, "OPTIONS", "/whep/cam/s1", &preflight, b"");
        assert_eq!(response.status, 204);
        assert_eq!(response.header("Accept-Patch"), Some(SDPFRAG));
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn token_is_required_except_for_options() {
        let (api, fake) = api(Some("t0ken"));
        let unauthorized: [&[(&str, &str)]; 5] = [
            &[("Content-Type", SDP)],
            &[("Content-Type", SDP), ("Authorization", "Bearer wrong")],
            &[("Content-Type", SDP), ("Authorization", "Bearer t0ke")],
            &[("Content-Type", SDP), ("Authorization", "Basic t0ken")],
            &[("Content-Type", SDP), ("Authorization", "t0ken")],
        ];
        for list in unauthorized {
            let response = call(&api, "POST", "/whip/studio", list, OFFER.as_bytes());
            assert_eq!(response.status, 401, "{list:?}");
            assert_eq!(response.header("WWW-Authenticate"), Some("Bearer"));
        }
        assert_eq!(call(&api, "DELETE", "/whip/cam/s1", &[], b"").status, 401);
        assert_eq!(call(&api, "GET", "/streams", &[], b"").status, 401);
        assert!(fake.calls().is_empty());

        let good = [("Content-Type", SDP), ("Authorization", "bearer  t0ken")];
        let response = call(&api, "POST", "/whip/studio", &good, OFFER.as_bytes());
        assert_eq!(response.status, 201);
        let auth = [("Authorization", "Bearer t0ken")];
        assert_eq!(call(&api, "DELETE", "/whip/cam/s1", &auth, b"").status, 200);
        assert_eq!(call(&api, "GET", "/streams", &auth, b"").status, 200);
    }

    #[test]
    fn wrong_methods_and_paths() {
        let (api, fake) = api(None);
        let response = call(&api, "GET", "/whip/studio", &[], b"");
        assert_eq!(response.status, 405);
        assert_eq!(response.allow, Some(ENDPOINT_METHODS));
        let response = call(&api, "POST", "/whip/cam/s1", &[("Content-Type", SDP)], b"");
        assert_eq!(response.status, 405);
        assert_eq!(response.allow, Some(SESSION_METHODS));
        for url in ["/whip/", "/whep//s1", "/whip/cam/s1/extra", "/whip/cam/"] {
            assert_eq!(call(&api, "POST", url, &[], b"").status, 404, "{url}");
        }
        assert!(fake.calls().is_empty());
        // Paths that are not WHIP's are left to other handlers.
        for (method, url) in [("POST", "/"), ("GET", "/healthz"), ("POST", "/whipx/a")] {
            assert!(
                api.handle(&HttpRequest::new(method, url)).is_none(),
                "{url}"
            );
        }
    }

    #[test]
    fn demo_page_and_stream_list() {
        let (api, _) = api(None);
        let page = call(&api, "GET", "/", &[], b"");
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type, HTML);
        assert!(
            page.body.contains("Session(\"whip\""),
            "publishes with WHIP"
        );
        assert!(page.body.contains("Session(\"whep\""), "plays with WHEP");
        assert!(page.body.contains("getUserMedia"));

        let list = call(&api, "GET", "/streams", &[], b"");
        assert_eq!(list.status, 200);
        let body: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(
            body,
            json!({"streams": [{"name": "cam", "viewers": 2}, {"name": "zebra", "viewers": 0}]})
        );
        assert_eq!(call(&api, "DELETE", "/streams", &[], b"").status, 405);
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn debug_hides_the_token() {
        let (api, _) = api(Some("very-secret-token"));
        assert!(!format!("{api:?}").contains("very-secret-token"));
    }
}
