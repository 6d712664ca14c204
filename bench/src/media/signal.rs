//! The load generator's WHIP/WHEP signalling (RFC 9725 §4.2, §4.3; WHEP
//! the same way): a few threads make the POSTs and DELETEs the driving
//! thread queues, so that many are in flight at once while that thread
//! keeps running ICE and DTLS for the peers already answered.
//!
//! Every request goes on a connection of its own, closed after the
//! response (`Connection: close`), as from the separate browsers a relay
//! serves. (It also kept the generator clear of a bug of uturn's former
//! HTTP server, tiny_http, which could leave a new connection unserved
//! behind idle kept-alive ones.)

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Error;

/// How long one request may take (connect, send, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do.
pub(super) enum Request {
    /// POST peer `peer`'s offer SDP to `url` (a WHIP or WHEP endpoint).
    Offer {
        peer: usize,
        url: String,
        sdp: String,
    },
    /// DELETE a session's URL.
    Delete { url: String },
}

/// What a [`Request`] got.
pub(super) enum Reply {
    /// The Location and the answer SDP of a 201, for peer `peer`.
    Answer {
        peer: usize,
        result: Result<(String, String), Error>,
    },
    Deleted {
        url: String,
        result: Result<(), Error>,
    },
}

/// The signalling threads. Dropping it lets each finish its current
/// request and end, and waits for them.
pub(super) struct Signalling {
    requests: Option<mpsc::Sender<Request>>,
    replies: mpsc::Receiver<Reply>,
    threads: Vec<JoinHandle<()>>,
}

impl Signalling {
    /// Starts `threads` threads (at least one).
    pub(super) fn start(threads: usize) -> Result<Signalling, Error> {
        let (requests, queue) = mpsc::channel::<Request>();
        let queue = Arc::new(Mutex::new(queue));
        let (done, replies) = mpsc::channel();
        let mut signalling = Signalling {
            requests: Some(requests),
            replies,
            threads: Vec::with_capacity(threads.max(1)),
        };
        for i in 0..threads.max(1) {
            let (queue, done) = (Arc::clone(&queue), done.clone());
            let thread = std::thread::Builder::new()
                .name(format!("signalling-{i}"))
                .spawn(move || serve(&queue, &done))?;
            signalling.threads.push(thread);
        }
        Ok(signalling)
    }

    /// Queues `request` for the next free thread.
    pub(super) fn send(&self, request: Request) -> Result<(), Error> {
        let url = match &request {
            Request::Offer { url, .. } | Request::Delete { url } => url.clone(),
        };
        self.requests
            .as_ref()
            .and_then(|requests| requests.send(request).ok())
            .ok_or_else(|| Error::Http {
                url,
                reason: "the signalling threads have ended".into(),
            })
    }

    /// A reply, if one is in.
    pub(super) fn try_reply(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    /// The next reply, waiting for it; `None` if every thread has ended.
    pub(super) fn reply(&self) -> Option<Reply> {
        self.replies.recv().ok()
    }
}

impl Drop for Signalling {
    fn drop(&mut self) {
        // Closing the queue ends each thread after its current request
        // (bounded by REQUEST_TIMEOUT).
        self.requests = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::warn!("a signalling thread panicked");
            }
        }
    }
}

/// A signalling thread: makes requests from `queue` until it is closed or
/// nobody waits for the replies.
fn serve(queue: &Mutex<mpsc::Receiver<Request>>, done: &mpsc::Sender<Reply>) {
    // No pool: a connection per request (module docs).
    let agent = ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .build();
    loop {
        // The receiver stays usable if another thread panicked holding the
        // lock: it only ever waits in `recv` under it.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(request) = next else {
            return;
        };
        let reply = match request {
            Request::Offer { peer, url, sdp } => Reply::Answer {
                peer,
                result: offer(&agent, &url, &sdp),
            },
            Request::Delete { url } => {
                let result = agent
                    .delete(&url)
                    .set("Connection", "close")
                    .call()
                    .map(drop)
                    .map_err(|e| http_error(&url, e.to_string()));
                Reply::Deleted { url, result }
            }
        };
        if done.send(reply).is_err() {
            return;
        }
    }
}

/// The WHIP/WHEP POST: 201 with a Location and the answer SDP
/// (RFC 9725 §4.2).
fn offer(agent: &ureq::Agent, url: &str, sdp: &str) -> Result<(String, String), Error> {
    let response = agent
        .post(url)
        .set("Content-Type", "application/sdp")
        .set("Connection", "close")
        .send_string(sdp)
        .map_err(|e| http_error(url, e.to_string()))?;
    if response.status() != 201 {
        return Err(http_error(url, format!("status {}", response.status())));
    }
    let location = response
        .header("Location")
        .ok_or_else(|| http_error(url, "201 without Location".into()))?
        .to_owned();
    let answer = response
        .into_string()
        .map_err(|e| http_error(url, e.to_string()))?;
    Ok((location, answer))
}

fn http_error(url: &str, reason: String) -> Error {
    Error::Http {
        url: url.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Condvar;

    use super::*;

    /// Holds requests until `size` of them are waiting, then lets those go
    /// together: requests that do not overlap never fill it.
    struct Gate {
        size: usize,
        /// Requests waiting, and how many groups went through.
        state: Mutex<(usize, u64)>,
        open: Condvar,
        /// A request gave up waiting (after 10 s: the requests did not
        /// overlap, a failure the test then reports).
        gave_up: AtomicBool,
    }

    impl Gate {
        fn pass(&self) {
            let mut state = self.state.lock().unwrap();
            state.0 += 1;
            if state.0 == self.size {
                *state = (0, state.1 + 1);
                self.open.notify_all();
                return;
            }
            let group = state.1;
            let (_state, wait) = self
                .open
                .wait_timeout_while(state, Duration::from_secs(10), |s| s.1 == group)
                .unwrap();
            if wait.timed_out() {
                self.gave_up.store(true, Ordering::SeqCst);
            }
        }
    }

    /// A WHIP-like HTTP server on loopback: answers each POST with 201, a
    /// Location naming the request's path and an SDP echoing its body, and
    /// each DELETE with 200 (404 for paths containing "gone"), each
    /// request once it passed the gate. Counts the connections it accepted
    /// and the requests that did not ask to close theirs.
    struct Server {
        url: String,
        connections: Arc<AtomicUsize>,
        kept_alive: Arc<AtomicUsize>,
        gate: Arc<Gate>,
    }

    impl Server {
        fn start(gate_size: usize) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let connections = Arc::new(AtomicUsize::new(0));
            let kept_alive = Arc::new(AtomicUsize::new(0));
            let gate = Arc::new(Gate {
                size: gate_size,
                state: Mutex::new((0, 0)),
                open: Condvar::new(),
                gave_up: AtomicBool::new(false),
            });
            let (c, k, g) = (connections.clone(), kept_alive.clone(), gate.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    c.fetch_add(1, Ordering::SeqCst);
                    let (k, g) = (k.clone(), g.clone());
                    std::thread::spawn(move || serve_connection(stream, &k, &g));
                }
            });
            Server {
                url,
                connections,
                kept_alive,
                gate,
            }
        }
    }

    fn serve_connection(stream: TcpStream, kept_alive: &AtomicUsize, gate: &Gate) {
        let Ok(read) = stream.try_clone() else { return };
        let mut reader = BufReader::new(read);
        let mut stream = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut length = 0usize;
            let mut close = false;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if name.eq_ignore_ascii_case("connection") {
                        close = value.trim().eq_ignore_ascii_case("close");
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            gate.pass();
            let response = match method.as_str() {
                "POST" => {
                    let answer = format!("answer to {}", String::from_utf8_lossy(&body));
                    format!(
                        "HTTP/1.1 201 Created\r\nLocation: /session{path}\r\n\
                         Content-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                }
                "DELETE" if path.contains("gone") => {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                }
                _ => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            if stream.write_all(response.as_bytes()).is_err() || close {
                return;
            }
            kept_alive.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn offers_are_in_flight_at_once_and_answered_per_peer() {
        let server = Server::start(4);
        let signalling = Signalling::start(4).unwrap();
        for peer in 0..8 {
            signalling
                .send(Request::Offer {
                    peer,
                    url: format!("{}/whep/s{peer}", server.url),
                    sdp: format!("offer {peer}"),
                })
                .unwrap();
        }
        let mut answered = [false; 8];
        for _ in 0..8 {
            let Some(Reply::Answer { peer, result }) = signalling.reply() else {
                panic!("not an answer");
            };
            let (location, sdp) = result.unwrap();
            assert_eq!(location, format!("/session/whep/s{peer}"));
            assert_eq!(sdp, format!("answer to offer {peer}"));
            assert!(!answered[peer], "peer {peer} answered twice");
            answered[peer] = true;
        }
        assert!(answered.iter().all(|a| *a));
        // The server let requests go four at a time only: four threads had
        // four in flight at once, each request on a connection of its own.
        assert!(!server.gate.gave_up.load(Ordering::SeqCst));
        assert_eq!(server.connections.load(Ordering::SeqCst), 8);
        assert_eq!(server.kept_alive.load(Ordering::SeqCst), 0);
        assert!(signalling.try_reply().is_none());
    }

    #[test]
    fn failures_are_replied_not_lost() {
        let server = Server::start(1);
        let signalling = Signalling::start(2).unwrap();
        signalling
            .send(Request::Delete {
                url: format!("{}/session/gone", server.url),
            })
            .unwrap();
        match signalling.reply() {
            Some(Reply::Deleted { url, result }) => {
                assert!(url.ends_with("/session/gone"));
                assert!(matches!(result, Err(Error::Http { .. })));
            }
            _ => panic!("not a DELETE reply"),
        }
        signalling
            .send(Request::Delete {
                url: format!("{}/session/here", server.url),
            })
            .unwrap();
        assert!(matches!(
            signalling.reply(),
            Some(Reply::Deleted { result: Ok(()), .. })
        ));
        // Nothing listens on port 1: the POST fails with an HTTP error.
        signalling
            .send(Request::Offer {
                peer: 7,
                url: "http://127.0.0.1:1/whip/x".into(),
                sdp: "offer".into(),
            })
            .unwrap();
        match signalling.reply() {
            Some(Reply::Answer { peer, result }) => {
                assert_eq!(peer, 7);
                assert!(matches!(result, Err(Error::Http { .. })));
            }
            _ => panic!("not an answer"),
        }
    }
}
