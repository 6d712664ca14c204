//! The HTTP side of the relay: a small hyper server on its own thread,
//! far from the packet path, and the credential API that runs on it.
//!
//! Credentials follow the TURN REST API (draft-uberti-behave-turn-rest-00 §2):
//! `POST /?service=turn&username=NAME` answers with a username
//! `EXPIRY[:NAME]`, its password `base64(HMAC-SHA1(secret, username))` under
//! the first `--auth-secret`, the TTL and the TURN URIs (RFC 7065) to use.
//! `GET /healthz` answers 200 while the process runs.
//!
//! Routing is a list of [`Handler`]s, each a pure function from
//! [`HttpRequest`] to an optional [`HttpResponse`] (`None`: not my path). The
//! first one that answers wins, so the metrics endpoint can share a listener
//! with the API, and WHIP/WHEP (`whip.rs`) are one more handler. Nothing but
//! [`HttpServer`] touches a socket, which keeps every route testable without
//! one. The server reads at most [`MAX_BODY`] + 1 bytes of a request body, so
//! a route sees that a body was too large without anyone buffering it whole.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use uturn_turn::auth::{rest_password, rest_username};
use uturn_turn::TimeProvider;

/// RFC 8489 §14.3: USERNAME is shorter than 509 bytes; the REST expiry and its
/// `:` take 21 at most, so a requested name stays well inside with this cap.
const MAX_USER_LEN: usize = 256;
const JSON: &str = "application/json";
/// The largest request body a route accepts (an SDP offer of a browser with
/// many m-sections stays far below it). A longer body reaches the routes cut
/// to `MAX_BODY + 1` bytes, which they answer with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// What a route sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path and query, as sent (`/?service=turn`).
    pub url: &'a str,
    /// Header fields in the order sent, names as sent.
    pub headers: &'a [(String, String)],
    /// The body, at most [`MAX_BODY`] + 1 bytes of it.
    pub body: &'a [u8],
}

impl<'a> HttpRequest<'a> {
    /// A request without headers or body.
    #[cfg(test)]
    pub fn new(method: &'a str, url: &'a str) -> Self {
        HttpRequest {
            method,
            url,
            headers: &[],
            body: &[],
        }
    }

    /// The first value of header `name` (names compare case-insensitively,
    /// RFC 9110 §5.1).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &'a str {
        self.url.split_once('?').map_or(self.url, |(path, _)| path)
    }

    /// The raw query string after `?`, empty when there is none.
    pub fn query(&self) -> &'a str {
        self.url.split_once('?').map_or("", |(_, query)| query)
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// `Allow` header, sent with 405.
    pub allow: Option<&'static str>,
    /// Further header fields (values must be ASCII).
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl HttpResponse {
    /// A response with `body` of type `content_type` and no other header.
    pub fn new(status: u16, content_type: &'static str, body: String) -> Self {
        HttpResponse {
            status,
            content_type,
            allow: None,
            headers: Vec::new(),
            body,
        }
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(status, JSON, body.to_string())
    }

    /// Adds header `name: value`.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name` among [`headers`](Self::headers).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json_error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        HttpResponse {
            allow: Some(allow),
            ..Self::json_error(405, "method not allowed")
        }
    }

    pub fn not_found() -> Self {
        Self::json_error(404, "not found")
    }
}

/// One or more routes.
pub trait Handler: Send + Sync + fmt::Debug {
    /// `None` when the path is not this handler's.
    fn handle(&self, request: &HttpRequest<'_>) -> Option<HttpResponse>;
}

/// Runs `request` through `handlers` (`&dyn Handler`s, or the server's
/// `Arc`s); 404 when none takes it.
pub fn route<H>(handlers: &[H], request: &HttpRequest<'_>) -> HttpResponse
where
    H: std::ops::Deref<Target = dyn Handler>,
{
    handlers
        .iter()
        .find_map(|h| h.handle(request))
        .unwrap_or_else(HttpResponse::not_found)
}

/// The credential API and health check.
pub struct CredentialApi {
    /// The secret that signs; `None` when no `--auth-secret` is configured.
    secret: Option<String>,
    ttl: Duration,
    uris: Vec<String>,
    time: Arc<dyn TimeProvider>,
}

// By hand: the secret must never be printed.
impl fmt::Debug for CredentialApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialApi")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("ttl", &self.ttl)
            .field("uris", &self.uris)
            .finish()
    }
}

impl CredentialApi {
    pub fn new(
        secret: Option<String>,
        ttl: Duration,
        uris: Vec<String>,
        time: Arc<dyn TimeProvider>,
    ) -> Self {
        CredentialApi {
            secret,
            ttl,
            uris,
            time,
        }
    }

    fn issue(&self, query: &str) -> HttpResponse {
        let params = match parse_query(query) {
            Ok(params) => params,
            Err(e) => return HttpResponse::json_error(400, e),
        };
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        match param("service") {
            Some("turn") => {}
            Some(_) => {
                return HttpResponse::json_error(400, "unsupported service: only service=turn")
            }
            None => return HttpResponse::json_error(400, "missing service=turn"),
        }
        let user = param("username").filter(|u| !u.is_empty());
        if let Some(user) = user {
            if user.len() > MAX_USER_LEN {
                return HttpResponse::json_error(400, "username too long");
            }
            if user.chars().any(char::is_control) {
                return HttpResponse::json_error(400, "username contains control characters");
            }
        }
        let Some(secret) = &self.secret else {
            return HttpResponse::json_error(
                503,
                "no --auth-secret configured: the relay cannot issue credentials",
            );
        };
        let ttl = self.ttl.as_secs();
        let expiry = self.time.unix_now().saturating_add(ttl);
        let username = rest_username(expiry, user);
        let password = rest_password(secret, &username);
        tracing::debug!(expiry, "issued TURN REST credentials");
        HttpResponse::json(
            200,
            &json!({
                "username": username,
                "password": password,
                "ttl": ttl,
                "uris": self.uris,
            }),
        )
    }
}

impl Handler for CredentialApi {
    fn handle(&self, request: &HttpRequest<'_>) -> Option<HttpResponse> {
        Some(match (request.path(), request.method) {
            ("/healthz", "GET" | "HEAD") => HttpResponse::json(200, &json!({ "status": "ok" })),
            ("/healthz", _) => HttpResponse::method_not_allowed("GET, HEAD"),
            ("/", "POST") => self.issue(request.query()),
            ("/", _) => HttpResponse::method_not_allowed("POST"),
            _ => return None,
        })
    }
}

/// Splits `a=1&b=2` into decoded pairs (`application/x-www-form-urlencoded`).
fn parse_query(query: &str) -> Result<Vec<(String, String)>, &'static str> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, &'static str> {
    const BAD: &str = "malformed percent-encoding in query";
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = bytes
                    .next()
                    .and_then(|c| (c as char).to_digit(16))
                    .ok_or(BAD)?;
                let lo = bytes
                    .next()
                    .and_then(|c| (c as char).to_digit(16))
                    .ok_or(BAD)?;
                // Two hex digits make at most 255.
                (hi * 16 + lo) as u8
            }
            b => b,
        });
    }
    String::from_utf8(out).map_err(|_| "query is not UTF-8")
}

/// Connections served at once; one more is accepted and closed at once.
/// Each costs a task and its buffers (a few KiB), so this bounds the
/// listener's memory whatever clients do.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's header, and how long
/// an idle kept-alive connection stays open (hyper's header read timeout
/// starts when the connection waits for a request).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Past [`MAX_BODY`] + 1, a body is read and dropped up to this many bytes
/// so the response reaches the client before the connection closes (a
/// close with unread data makes the kernel reset the connection, which can
/// destroy the response in flight); past this, the connection is closed.
const MAX_DISCARD: usize = 1024 * 1024;

/// Why an HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("cannot listen for HTTP on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot start the HTTP thread: {0}")]
    Thread(std::io::Error),
}

/// A running HTTP listener: hyper's HTTP/1.1 server on a current-thread
/// tokio runtime of its own thread. Routes run on that thread one at a
/// time (they are short, pure functions); connections are many, each a
/// task: an idle kept-alive connection holds no thread, and none can keep
/// another waiting (as tiny_http, used before, could: its pool served a
/// connection on one thread until it closed, and a race in it left a new
/// connection unserved behind idle ones). Every accepted socket gets
/// `TCP_NODELAY`: a response is written as header then body, and with
/// Nagle's algorithm the body waited for the client's delayed ACK, 40 ms
/// per request on Linux.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: JoinHandle<()>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpServer {
    /// Binds `addr` and answers requests with `handlers` on a new thread.
    pub fn spawn(addr: SocketAddr, handlers: Vec<Arc<dyn Handler>>) -> Result<Self, ApiError> {
        Self::spawn_with_limit(addr, handlers, MAX_CONNECTIONS)
    }

    /// [`spawn`](Self::spawn) serving at most `max_connections` at once.
    pub fn spawn_with_limit(
        addr: SocketAddr,
        handlers: Vec<Arc<dyn Handler>>,
        max_connections: usize,
    ) -> Result<Self, ApiError> {
        let bind_error = |e: std::io::Error| ApiError::Bind {
            addr,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        // The bound address (differs from `addr` when its port is 0).
        let addr = listener.local_addr().unwrap_or(addr);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ApiError::Thread)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let handlers: Arc<[Arc<dyn Handler>]> = handlers.into();
        let thread = std::thread::Builder::new()
            .name(format!("http-{addr}"))
            .spawn(move || {
                runtime.block_on(serve(listener, handlers, max_connections, stopped));
            })
            .map_err(ApiError::Thread)?;
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            thread,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the thread (connections in progress
    /// are dropped with the runtime).
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if self.thread.join().is_err() {
            tracing::error!(addr = %self.addr, "HTTP thread panicked");
        }
    }
}

/// The accept loop: a task per connection, at most `max_connections`.
async fn serve(
    listener: std::net::TcpListener,
    handlers: Arc<[Arc<dyn Handler>]>,
    max_connections: usize,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "HTTP listener unusable");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "HTTP connection refused: too many open");
            continue; // dropping the stream closes it
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let handlers = Arc::clone(&handlers);
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let handlers = Arc::clone(&handlers);
                async move { Ok::<_, std::convert::Infallible>(answer(request, &handlers).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                // `Content-Type`, not `content-type`: the same to HTTP, but
                // line-oriented tools and older tests match the usual case.
                .title_case_headers(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
            drop(slot);
        });
    }
}

/// Reads what a route may see of `request` and answers it.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    handlers: &[Arc<dyn Handler>],
) -> Response {
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            // Names as hyper keeps them (lower case); routes compare
            // case-insensitively. A value that is not text reaches no
            // route as such (none expects one).
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP request body not read");
            return plain(400, "request body not read\n");
        }
        Err(_) => return plain(408, "request body too slow\n"),
    };
    let url = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let reply = route(
        handlers,
        &HttpRequest {
            method: parts.method.as_str(),
            url: &url,
            headers: &headers,
            body: &body.kept,
        },
    );
    let mut out = response(reply.status, reply.body);
    let content_type =
        (!reply.content_type.is_empty()).then_some(("Content-Type", reply.content_type));
    let allow = reply.allow.map(|allow| ("Allow", allow));
    let fixed = content_type.into_iter().chain(allow);
    let extra = reply.headers.iter().map(|(n, v)| (*n, v.as_str()));
    for (name, value) in fixed.chain(extra) {
        match hyper::header::HeaderValue::from_str(value) {
            Ok(v) => {
                if let Ok(name) = hyper::header::HeaderName::from_bytes(name.as_bytes()) {
                    out.headers_mut().append(name, v);
                }
            }
            // Routes build values from ASCII text; a non-ASCII one is a bug.
            Err(_) => tracing::warn!(header = name, "HTTP header value is not ASCII; dropped"),
        }
    }
    if body.truncated {
        close_after(&mut out);
    }
    out
}

/// What the listener sends back.
type Response = hyper::Response<http_body_util::Full<hyper::body::Bytes>>;

/// A request body as routes see it.
struct Body {
    /// At most [`MAX_BODY`] + 1 bytes: one byte past the limit tells the
    /// route the body was too long.
    kept: Vec<u8>,
    /// Not all of it was read: the connection must not carry another
    /// request.
    truncated: bool,
}

/// Reads the body, keeping [`MAX_BODY`] + 1 bytes and dropping the rest
/// up to [`MAX_DISCARD`].
async fn read_body(mut body: hyper::body::Incoming) -> Result<Body, hyper::Error> {
    use http_body_util::BodyExt;

    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        let room = (MAX_BODY + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if seen > MAX_DISCARD {
            return Ok(Body {
                kept,
                truncated: true,
            });
        }
    }
    Ok(Body {
        kept,
        truncated: false,
    })
}

/// A short text response after which the connection closes (the request
/// was not read whole).
fn plain(status: u16, text: &'static str) -> Response {
    let mut out = response(status, text);
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    close_after(&mut out);
    out
}

/// A response with `status` and `body`, no headers yet.
fn response(status: u16, body: impl Into<hyper::body::Bytes>) -> Response {
    let mut out = hyper::Response::new(http_body_util::Full::new(body.into()));
    *out.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    out
}

fn close_after(out: &mut Response) {
    out.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[derive(Debug)]
    struct FixedTime(u64);

    impl TimeProvider for FixedTime {
        fn unix_now(&self) -> u64 {
            self.0
        }
    }

    fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn api(secret: Option<&str>) -> CredentialApi {
        CredentialApi::new(
            secret.map(str::to_owned),
            Duration::from_secs(86400),
            vec!["turn:192.0.2.7:3478?transport=udp".to_owned()],
            Arc::new(FixedTime(NOW)),
        )
    }

    fn call(api: &CredentialApi, method: &str, url: &str) -> (u16, serde_json::Value) {
        let response = route(&[api as &dyn Handler], &HttpRequest::new(method, url));
        assert_eq!(response.content_type, JSON);
        let body = serde_json::from_str(&response.body).unwrap();
        (response.status, body)
    }

    /// RFC 2202 §3 test cases 1 and 2 check the test's own HMAC first, so the
    /// comparison below is against a known-good implementation.
    #[test]
    fn hmac_sha1_known_vectors() {
        assert_eq!(
            hex(&hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn issues_rest_credentials() {
        let (status, body) = call(
            &api(Some("s3cret")),
            "POST",
            "/?service=turn&username=alice",
        );
        assert_eq!(status, 200);
        let username = body["username"].as_str().unwrap();
        assert_eq!(username, format!("{}:alice", NOW + 86400));
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha1(b"s3cret", username.as_bytes()));
        assert_eq!(body["password"].as_str().unwrap(), expected);
        assert_eq!(body["ttl"].as_u64(), Some(86400));
        assert_eq!(body["uris"], json!(["turn:192.0.2.7:3478?transport=udp"]));
    }

    #[test]
    fn username_is_optional_and_decoded() {
        let api = api(Some("k"));
        let (status, body) = call(&api, "POST", "/?service=turn");
        assert_eq!(status, 200);
        assert_eq!(
            body["username"].as_str(),
            Some(format!("{}", NOW + 86400).as_str())
        );

        let (status, body) = call(&api, "POST", "/?username=a%20b+c&service=turn");
        assert_eq!(status, 200);
        let username = body["username"].as_str().unwrap();
        assert_eq!(username, format!("{}:a b c", NOW + 86400));
        let expected =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha1(b"k", username.as_bytes()));
        assert_eq!(body["password"].as_str().unwrap(), expected);
    }

    #[test]
    fn rejects_bad_requests() {
        let api = api(Some("k"));
        for url in [
            "/",
            "/?username=alice",
            "/?service=stun",
            "/?service=turn&username=%zz",
            "/?service=turn&username=%ff",
            "/?service=turn&username=a%0ab",
        ] {
            let (status, body) = call(&api, "POST", url);
            assert_eq!(status, 400, "{url}");
            assert!(body["error"].is_string(), "{url}");
        }
        let long = format!("/?service=turn&username={}", "x".repeat(MAX_USER_LEN + 1));
        assert_eq!(call(&api, "POST", &long).0, 400);
    }

    #[test]
    fn no_secret_is_503() {
        let (status, body) = call(&api(None), "POST", "/?service=turn&username=alice");
        assert_eq!(status, 503);
        assert!(body["error"].as_str().unwrap().contains("auth-secret"));
    }

    #[test]
    fn methods_and_paths() {
        let api = api(Some("k"));
        for method in ["GET", "PUT", "DELETE"] {
            assert_eq!(call(&api, method, "/?service=turn").0, 405, "{method}");
        }
        assert_eq!(call(&api, "GET", "/healthz").0, 200);
        assert_eq!(call(&api, "POST", "/healthz").0, 405);
        assert_eq!(call(&api, "GET", "/nope").0, 404);

        let response = api.handle(&HttpRequest::new("GET", "/")).unwrap();
        assert_eq!(response.allow, Some("POST"));
    }

    /// The one test with a socket: the thread answers over real HTTP and
    /// `stop` ends it (the shutdown path depends on that).
    #[test]
    fn serves_http_and_stops() {
        use std::io::{Read, Write};

        let handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(api(Some("k")))];
        let server = HttpServer::spawn("127.0.0.1:0".parse().unwrap(), handlers).unwrap();
        let addr = server.addr();
        assert_ne!(addr.port(), 0);

        let request = |text: &str| {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(text.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        };
        let health = request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.contains("application/json"), "{health}");

        let issued = request(
            "POST /?service=turn&username=bob HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(issued.starts_with("HTTP/1.1 200"), "{issued}");
        assert!(
            issued.contains(&format!("\"{}:bob\"", NOW + 86400)),
            "{issued}"
        );

        let wrong = request("DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
        assert!(wrong.contains("Allow: POST"), "{wrong}");

        // Returns only once the thread has seen the stop flag and ended.
        server.stop();
    }

    /// Echoes what a route saw of the request, in headers and body.
    #[derive(Debug)]
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &HttpRequest<'_>) -> Option<HttpResponse> {
            let body = String::from_utf8_lossy(request.body).into_owned();
            Some(
                HttpResponse::new(201, "text/plain", format!("{}:{body}", request.body.len()))
                    .with_header("X-Seen", request.header("x-custom").unwrap_or("none")),
            )
        }
    }

    #[test]
    fn passes_headers_and_bodies_both_ways() {
        use std::io::{Read, Write};

        let server =
            HttpServer::spawn("127.0.0.1:0".parse().unwrap(), vec![Arc::new(Echo)]).unwrap();
        let addr = server.addr();
        let request = |head: &str, body: &[u8]| {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            // The server may answer before reading a body past MAX_BODY.
            let _ = stream.write_all(body);
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            String::from_utf8_lossy(&response).into_owned()
        };
        let response = request(
            "POST /x HTTP/1.1\r\nHost: x\r\nX-Custom: hello\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            b"v=0\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
        assert!(response.contains("X-Seen: hello"), "{response}");
        assert!(response.contains("Content-Type: text/plain"), "{response}");
        assert!(response.ends_with("5:v=0\r\n"), "{response}");

        // A body past the limit reaches the route cut to MAX_BODY + 1 bytes.
        let big = vec![b'a'; MAX_BODY + 100];
        let head = format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            big.len()
        );
        let response = request(&head, &big);
        assert!(
            // (chunked: the length is the body's first characters after the chunk size)
            response.contains(&format!("\r\n{}:aaa", MAX_BODY + 1)),
            "{}",
            &response[..response.len().min(300)]
        );
        server.stop();
    }

    /// Sends one kept-alive request on `stream` and reads its response
    /// (Content-Length framed) without closing the connection.
    fn keep_alive_request(stream: &mut std::net::TcpStream) -> String {
        use std::io::{BufRead, BufReader, Read, Write};

        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head + &String::from_utf8_lossy(&body)
    }

    #[test]
    fn idle_kept_alive_connections_keep_no_new_one_waiting() {
        let handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(api(Some("k")))];
        let server = HttpServer::spawn("127.0.0.1:0".parse().unwrap(), handlers).unwrap();
        // Many clients that keep their connection open after a request
        // (browsers do): each connection answers again and again...
        let mut idle: Vec<std::net::TcpStream> = Vec::new();
        for _ in 0..64 {
            let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
            let first = keep_alive_request(&mut stream);
            assert!(first.starts_with("HTTP/1.1 200"), "{first}");
            idle.push(stream);
        }
        let again = keep_alive_request(&mut idle[0]);
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
        // ...and a new client is answered while all of them sit idle.
        let mut fresh = std::net::TcpStream::connect(server.addr()).unwrap();
        let answer = keep_alive_request(&mut fresh);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.stop();
    }

    #[test]
    fn connections_past_the_limit_are_closed_until_one_ends() {
        use std::io::Read;

        let handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(api(Some("k")))];
        let server =
            HttpServer::spawn_with_limit("127.0.0.1:0".parse().unwrap(), handlers, 4).unwrap();
        let mut open: Vec<std::net::TcpStream> = (0..4)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
                assert!(keep_alive_request(&mut stream).starts_with("HTTP/1.1 200"));
                stream
            })
            .collect();
        // The fifth is accepted and closed at once: end of stream (or a
        // reset), never an answer.
        let mut fifth = std::net::TcpStream::connect(server.addr()).unwrap();
        use std::io::Write;
        let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        fifth
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let _ = fifth.read_to_end(&mut got);
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        // One of the four leaves: its slot is free again.
        drop(open.remove(0));
        let mut served = None;
        for _ in 0..100 {
            let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if !response.is_empty() {
                served = Some(response);
                break;
            }
            // The server has not seen the close yet.
            std::thread::sleep(Duration::from_millis(20));
        }
        let served = served.expect("a slot freed by a closed connection");
        assert!(served.starts_with("HTTP/1.1 200"), "{served}");
        server.stop();
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", api(Some("very-secret-value")));
        assert!(!text.contains("very-secret-value"));
    }
}
