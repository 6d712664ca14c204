//! WHIP (RFC 9725) and WHEP signalling against the real binary, over real
//! HTTP on `--api`: every status a client can meet (201 with Location and
//! ETag, 404, 409, 415, 413, 400 with a message, 401 with a token), the CORS
//! headers pages from other origins need, OPTIONS, PATCH, DELETE then 404,
//! the demo page and the stream list. The offers are Chromium's own
//! (controlplane/sdp/tests/fixtures); no media flows here (see
//! media_chromium.rs for that).

mod common;

use std::net::SocketAddr;

use common::http::{request, HttpResponse as Response};
use common::{Auth, Server, ServerOptions};

const WHIP_OFFER: &str =
    include_str!("../../controlplane/sdp/tests/fixtures/chromium-whip-offer.sdp");
const WHEP_OFFER: &str =
    include_str!("../../controlplane/sdp/tests/fixtures/chromium-whep-offer.sdp");
const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// What the WHIP/WHEP answers must carry.
trait WhipResponse {
    /// CORS for pages from any origin (the Fetch standard's names).
    fn assert_cors(&self);
}

impl WhipResponse for Response {
    fn assert_cors(&self) {
        assert_eq!(
            self.header("access-control-allow-origin"),
            Some("*"),
            "{self:?}"
        );
        let exposed = self
            .header("access-control-expose-headers")
            .unwrap_or_default();
        for name in ["Location", "ETag", "Accept-Patch", "Link"] {
            assert!(exposed.contains(name), "{name} not exposed: {self:?}");
        }
        let allowed = self
            .header("access-control-allow-headers")
            .unwrap_or_default();
        for name in ["Authorization", "Content-Type", "If-Match"] {
            assert!(allowed.contains(name), "{name} not allowed: {self:?}");
        }
        let methods = self
            .header("access-control-allow-methods")
            .unwrap_or_default();
        for name in ["POST", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.contains(name), "{name} not allowed: {self:?}");
        }
    }
}

fn start(port_block: u16, extra: &[&str]) -> (Server, SocketAddr) {
    let mut opts = ServerOptions::new(Auth::Static, port_block);
    opts.api = true;
    opts.extra_args = extra.iter().map(|s| (*s).to_owned()).collect();
    let server = Server::start(&opts);
    let api = server.api.expect("started with --api");
    (server, api)
}

fn post_offer(api: SocketAddr, path: &str, offer: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![("Content-Type", SDP)];
    headers.extend_from_slice(extra);
    request(api, "POST", path, &headers, offer.as_bytes())
}

#[test]
fn whip_and_whep_sessions_over_http() {
    let (server, api) = start(13, &[]);

    // Nobody publishes `cam` yet.
    let response = post_offer(api, "/whep/cam", WHEP_OFFER, &[]);
    assert_eq!(response.status, 404, "{response:?}");
    response.assert_cors();

    // The publisher.
    let publish = post_offer(api, "/whip/cam", WHIP_OFFER, &[]);
    assert_eq!(publish.status, 201, "{publish:?}\n{}", server.log());
    publish.assert_cors();
    assert_eq!(publish.header("content-type"), Some(SDP));
    let location = publish.header("location").expect("Location").to_owned();
    let session = location
        .strip_prefix("/whip/cam/")
        .unwrap_or_else(|| panic!("Location {location:?} is not under /whip/cam/"));
    assert!(!session.is_empty() && !session.contains('/'), "{location}");
    let etag = publish.header("etag").expect("ETag").to_owned();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );
    // An ICE-lite answer with our listener as its host candidate.
    assert!(publish.body.starts_with("v=0\r\n"), "{}", publish.body);
    assert!(publish.body.contains("a=ice-lite"), "{}", publish.body);
    let candidate = format!("{} {} typ host", server.listen.ip(), server.listen.port());
    assert!(publish.body.contains(&candidate), "{}", publish.body);
    assert!(
        publish.body.contains("a=fingerprint:sha-256 "),
        "{}",
        publish.body
    );

    // A stream has one publisher.
    let busy = post_offer(api, "/whip/cam", WHIP_OFFER, &[]);
    assert_eq!(busy.status, 409, "{busy:?}");
    assert!(!busy.body.trim().is_empty());
    busy.assert_cors();

    // The stream list shows it.
    let list = request(api, "GET", "/streams", &[], b"");
    assert_eq!(list.status, 200);
    let streams: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(streams["streams"][0]["name"], "cam", "{streams}");

    // A viewer.
    let play = post_offer(api, "/whep/cam", WHEP_OFFER, &[]);
    assert_eq!(play.status, 201, "{play:?}\n{}", server.log());
    let viewer = play.header("location").expect("Location").to_owned();
    assert!(viewer.starts_with("/whep/cam/"), "{viewer}");
    assert!(play.header("etag").is_some());
    assert!(play.body.contains("a=ice-lite"), "{}", play.body);

    // Trickle: a candidate under the offer's own ICE credentials (204),
    // with the session's ETag in If-Match (RFC 9725 §4.3.1).
    let viewer_etag = play.header("etag").unwrap().to_owned();
    let trickle = "a=ice-ufrag:g49Y\r\na=ice-pwd:rRxvt0l6Rkl4CztkNkceZZHC\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122194687 192.0.2.2 51951 typ host\r\n";
    let patch = request(
        api,
        "PATCH",
        &viewer,
        &[("Content-Type", SDPFRAG), ("If-Match", &viewer_etag)],
        trickle.as_bytes(),
    );
    assert_eq!(patch.status, 204, "{patch:?}\n{}", server.log());
    patch.assert_cors();

    // New credentials restart ICE: 200 with our new fragment and ETag; the
    // old ETag no longer matches.
    let restart = "a=ice-ufrag:R3st\r\na=ice-pwd:restartrestartrestart123\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n";
    let patch = request(
        api,
        "PATCH",
        &viewer,
        &[("Content-Type", SDPFRAG), ("If-Match", &viewer_etag)],
        restart.as_bytes(),
    );
    assert_eq!(patch.status, 200, "{patch:?}\n{}", server.log());
    assert_eq!(patch.header("content-type"), Some(SDPFRAG));
    assert!(patch.body.contains("a=ice-ufrag:"), "{patch:?}");
    assert!(patch.body.contains("a=ice-pwd:"), "{patch:?}");
    let new_etag = patch.header("etag").expect("a new ETag").to_owned();
    assert_ne!(new_etag, viewer_etag);
    let stale = request(
        api,
        "PATCH",
        &viewer,
        &[("Content-Type", SDPFRAG), ("If-Match", &viewer_etag)],
        trickle.as_bytes(),
    );
    assert_eq!(stale.status, 412, "{stale:?}");

    // The wrong media type for a PATCH.
    let wrong = request(
        api,
        "PATCH",
        &viewer,
        &[("Content-Type", SDP)],
        trickle.as_bytes(),
    );
    assert_eq!(wrong.status, 415, "{wrong:?}");
    assert_eq!(wrong.header("accept-patch"), Some(SDPFRAG));

    // OPTIONS on both kinds of resource.
    let options = request(api, "OPTIONS", "/whip/cam", &[], b"");
    assert_eq!(options.status, 204, "{options:?}");
    assert_eq!(options.header("accept-post"), Some(SDP));
    assert_eq!(options.header("content-type"), None, "a 204 has no body");
    options.assert_cors();
    let options = request(api, "OPTIONS", &viewer, &[], b"");
    assert_eq!(options.status, 204, "{options:?}");
    assert_eq!(options.header("accept-patch"), Some(SDPFRAG));
    options.assert_cors();

    // DELETE ends the viewer; a second DELETE finds nothing.
    let deleted = request(api, "DELETE", &viewer, &[], b"");
    assert_eq!(deleted.status, 200, "{deleted:?}");
    deleted.assert_cors();
    let again = request(api, "DELETE", &viewer, &[], b"");
    assert_eq!(again.status, 404, "{again:?}");

    // The publisher leaving ends the stream: no more viewers, the name is free.
    let deleted = request(api, "DELETE", &location, &[], b"");
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(request(api, "DELETE", &location, &[], b"").status, 404);
    let late = post_offer(api, "/whep/cam", WHEP_OFFER, &[]);
    assert_eq!(late.status, 404, "{late:?}");
    let again = post_offer(api, "/whip/cam", WHIP_OFFER, &[]);
    assert_eq!(again.status, 201, "{again:?}");
}

#[test]
fn bad_requests_get_their_status() {
    let (_server, api) = start(14, &[]);

    // 415: not application/sdp.
    let response = request(
        api,
        "POST",
        "/whip/cam",
        &[("Content-Type", "text/plain")],
        WHIP_OFFER.as_bytes(),
    );
    assert_eq!(response.status, 415, "{response:?}");
    assert_eq!(response.header("accept-post"), Some(SDP));
    response.assert_cors();
    let response = request(api, "POST", "/whip/cam", &[], WHIP_OFFER.as_bytes());
    assert_eq!(response.status, 415, "{response:?}");

    // 413: a body past 64 KiB.
    let big = format!("{WHIP_OFFER}{}", "a=x-padding\r\n".repeat(6000));
    assert!(big.len() > 64 * 1024);
    let response = post_offer(api, "/whip/cam", &big, &[]);
    assert_eq!(response.status, 413, "{response:?}");
    response.assert_cors();

    // 400 with the reason: malformed SDP, and an offer with no media.
    for offer in [
        "this is not SDP",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    ] {
        let response = post_offer(api, "/whip/cam", offer, &[]);
        assert_eq!(response.status, 400, "{offer:?}: {response:?}");
        assert!(
            response.body.len() > "cannot answer the offer: ".len(),
            "no reason given: {response:?}"
        );
        response.assert_cors();
    }
    // 400: a stream name outside [A-Za-z0-9_-]{1,64}.
    let response = post_offer(api, "/whip/a.b", WHIP_OFFER, &[]);
    assert_eq!(response.status, 400, "{response:?}");
    assert!(response.body.contains("stream name"), "{response:?}");

    // 404: paths that name no WHIP resource; 405: the wrong method.
    assert_eq!(
        post_offer(api, "/whip/cam/s/x", WHIP_OFFER, &[]).status,
        404
    );
    let response = request(api, "GET", "/whip/cam", &[], b"");
    assert_eq!(response.status, 405, "{response:?}");
    assert!(response
        .header("allow")
        .unwrap_or_default()
        .contains("POST"));
    assert_eq!(
        request(
            api,
            "PATCH",
            "/whep/cam/nosuchsession",
            &[("Content-Type", SDPFRAG)],
            b"a=end-of-candidates\r\n"
        )
        .status,
        404
    );

    // Nothing above broke the stream name: a good offer still works, and
    // the credential API and health check still answer on the listener.
    assert_eq!(post_offer(api, "/whip/cam", WHIP_OFFER, &[]).status, 201);
    assert_eq!(request(api, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(
        request(api, "POST", "/?service=turn&username=bob", &[], b"").status,
        503,
        "no --auth-secret: the credential API answers 503 as before"
    );

    // The demo page.
    let page = request(api, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(page.body.contains("Publish camera"), "{}", page.body);
    assert!(page.body.contains("Watch"));
}

#[test]
fn whip_token_and_session_limit() {
    // Two sessions at most: the third POST is refused with 503.
    let (_server, api) = start(
        15,
        &["--whip-token", "s3cr3t-t0ken", "--max-media-sessions", "2"],
    );

    let response = post_offer(api, "/whip/cam", WHIP_OFFER, &[]);
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    response.assert_cors();
    let response = post_offer(
        api,
        "/whip/cam",
        WHIP_OFFER,
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(
        request(api, "GET", "/streams", &[], b"").status,
        401,
        "the stream list is behind the token too"
    );

    // A preflight never carries credentials.
    let response = request(
        api,
        "OPTIONS",
        "/whip/cam",
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(response.status, 204, "{response:?}");
    response.assert_cors();

    let auth = ("Authorization", "Bearer s3cr3t-t0ken");
    let response = post_offer(api, "/whip/cam", WHIP_OFFER, &[auth]);
    assert_eq!(response.status, 201, "{response:?}");
    let location = response.header("location").unwrap().to_owned();
    let response = post_offer(api, "/whep/cam", WHEP_OFFER, &[auth]);
    assert_eq!(response.status, 201, "{response:?}");
    let full = post_offer(api, "/whep/cam", WHEP_OFFER, &[auth]);
    assert_eq!(full.status, 503, "{full:?}");
    assert!(full.body.contains("too many media sessions"), "{full:?}");
    full.assert_cors();

    assert_eq!(request(api, "DELETE", &location, &[], b"").status, 401);
    assert_eq!(request(api, "DELETE", &location, &[auth], b"").status, 200);
}
