//! Shared harness for uturn's integration tests: starts the relay on free
//! ports, waits until it answers STUN, stops it with SIGTERM (and checks the
//! clean exit), and runs external clients with a time limit.
//!
//! The tests target uturn. For validating the harness itself, setting
//! `UTURN_TEST_AGAINST=coturn` starts coTURN's `turnserver` with the
//! equivalent configuration instead (no HTTP API or uturn metrics there).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod http;
mod process;
pub mod turn;

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use http::{http_request, metric_sum};
#[allow(unused_imports)]
pub use process::{require_python_module, require_tool, run, Background, Output};

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Static user of every test relay.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
pub const REALM: &str = "test";
/// TURN REST API shared secret of the `Auth::Rest` relays.
pub const REST_SECRET: &str = "rest-secret";
/// Where test peers listen: 127.0.0.1, the relay's own IP, as in the
/// contract command line (`--allow-peer 127.0.0.0/8` opts in to loopback
/// peers; only the listener port itself stays denied, see
/// controlplane/turn/src/peer_filter.rs).
pub const PEER_IP: &str = "127.0.0.1";

/// How long a started relay gets to answer its first Binding request. The
/// contract is one second; the slack is for a loaded two-core CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM gets to end the relay.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Uturn,
    /// coTURN's `turnserver`: only to validate the harness and the clients.
    Coturn,
}

pub fn flavor() -> Flavor {
    match std::env::var("UTURN_TEST_AGAINST").as_deref() {
        Ok("coturn") => Flavor::Coturn,
        Ok("") | Ok("uturn") | Err(_) => Flavor::Uturn,
        Ok(other) => panic!("UTURN_TEST_AGAINST={other}: expected `uturn` or `coturn`"),
    }
}

/// Long-term credential mechanism of a test relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `--user alice:secret`.
    Static,
    /// `--auth-secret rest-secret` (TURN REST API usernames `EXPIRY[:USER]`).
    Rest,
}

/// What a test relay is started with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub auth: Auth,
    /// Index of this test's relay port block (see [`relay_ports`]); every
    /// test uses its own so parallel tests never share relay ports.
    pub port_block: u16,
    pub threads: Option<u32>,
    pub backend: Option<&'static str>,
    pub api: bool,
    pub metrics: bool,
    pub extra_args: Vec<String>,
}

impl ServerOptions {
    pub fn new(auth: Auth, port_block: u16) -> Self {
        Self {
            auth,
            port_block,
            threads: None,
            backend: None,
            api: false,
            metrics: false,
            extra_args: Vec::new(),
        }
    }
}

/// Relay ports of block `block`: 500 ports from 20000 on, below Linux's
/// ephemeral range (32768-60999) so the kernel's own picks of free ports
/// for listeners and clients do not land in them.
pub fn relay_ports(block: u16) -> (u16, u16) {
    assert!(block < 25, "port block {block} out of range");
    let min = 20000 + block * 500;
    (min, min + 499)
}

/// A running relay; SIGTERM on drop, and (for uturn) a check that it exits 0.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    pub flavor: Flavor,
    pub listen: SocketAddr,
    pub api: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub relay_ports: (u16, u16),
    log_path: PathBuf,
}

impl Server {
    /// Starts the relay and waits until it answers a Binding request.
    /// A child that dies before that (e.g. a port taken between our probe
    /// and its bind) is retried on fresh ports.
    pub fn start(opts: &ServerOptions) -> Server {
        let flavor = flavor();
        let mut last_log = String::new();
        for attempt in 0..3 {
            let listen: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
            // coTURN has neither uturn's credential API nor its metrics.
            let uturn = flavor == Flavor::Uturn;
            let api = (opts.api && uturn)
                .then(|| format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap());
            let metrics = (opts.metrics && uturn)
                .then(|| format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap());
            let relay = relay_ports(opts.port_block);
            let log_path = scratch_dir().join(format!(
                "server-{}-{}-{}.log",
                std::process::id(),
                opts.port_block,
                next_serial()
            ));
            let log = File::create(&log_path).expect("create server log file");
            let mut cmd = match flavor {
                Flavor::Uturn => uturn_command(opts, listen, api, metrics, relay),
                Flavor::Coturn => coturn_command(opts, listen, relay, &log_path),
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone log fd")))
                .stderr(Stdio::from(log));
            let command_line = format!("{cmd:?}");
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
            let mut server = Server {
                child: Some(child),
                flavor,
                listen,
                api,
                metrics,
                relay_ports: relay,
                log_path,
            };
            match server.wait_ready() {
                Ok(()) => {
                    for addr in server.api.iter().chain(&server.metrics) {
                        wait_tcp(*addr, READY_TIMEOUT);
                    }
                    return server;
                }
                Err(Exited(status)) => {
                    last_log = format!(
                        "exited with {status}\ncommand: {command_line}\n{}",
                        server.log()
                    );
                    eprintln!("attempt {attempt}: relay exited early ({status}); retrying");
                    server.child = None;
                }
            }
        }
        panic!("the relay did not start in 3 attempts; last one {last_log}");
    }

    /// Polls with Binding requests until one is answered. Returns `Err` if
    /// the child exits first; panics if it is alive but mute too long.
    fn wait_ready(&mut self) -> Result<(), Exited> {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind probe socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(Exited(status));
            }
            if binding(&sock, self.listen).is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "relay on {} did not answer a Binding request within {:?}; log:\n{}",
                    self.listen,
                    READY_TIMEOUT,
                    self.log()
                );
            }
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// Everything the relay printed so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Resident set size in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Prometheus text from `--metrics`.
    pub fn metrics_text(&self) -> String {
        let addr = self.metrics.expect("server started with metrics");
        let (status, body) = http_request(addr, "GET", "/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_none() {
            // Already reaped (a failed start that is being retried).
            return;
        }
        let flavor = self.flavor;
        let status = self.stop();
        if thread::panicking() {
            return;
        }
        match (flavor, status) {
            // coTURN's own exit code on SIGTERM is not ours to check.
            (Flavor::Coturn, _) => {}
            (Flavor::Uturn, Some(s)) if s.success() => {}
            (Flavor::Uturn, Some(s)) => {
                panic!("uturn exited with {s} after SIGTERM; log:\n{}", self.log())
            }
            (Flavor::Uturn, None) => panic!(
                "uturn did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            ),
        }
    }
}

#[derive(Debug)]
struct Exited(ExitStatus);

fn uturn_command(
    opts: &ServerOptions,
    listen: SocketAddr,
    api: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    relay: (u16, u16),
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uturn"));
    cmd.args(["--listen", &listen.to_string()])
        .args(["--relay-ip", "127.0.0.1"])
        .args(["--realm", REALM])
        .args(["--allow-peer", "127.0.0.0/8"])
        .args(["--min-port", &relay.0.to_string()])
        .args(["--max-port", &relay.1.to_string()])
        .args(["--log-level", "info"]);
    match opts.auth {
        Auth::Static => cmd.args(["--user", &format!("{USER}:{PASSWORD}")]),
        Auth::Rest => cmd.args(["--auth-secret", REST_SECRET]),
    };
    if let Some(n) = opts.threads {
        cmd.args(["--threads", &n.to_string()]);
    }
    if let Some(b) = opts.backend {
        cmd.args(["--backend", b]);
    }
    if let Some(a) = api {
        cmd.args(["--api", &a.to_string()]);
    }
    if let Some(m) = metrics {
        cmd.args(["--metrics", &m.to_string()]);
    }
    cmd.args(&opts.extra_args);
    cmd
}

fn coturn_command(
    opts: &ServerOptions,
    listen: SocketAddr,
    relay: (u16, u16),
    log_path: &Path,
) -> Command {
    require_tool("turnserver");
    let mut cmd = Command::new("turnserver");
    cmd.args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp"])
        .args(["--no-rfc5780", "--no-tcp-relay", "--allow-loopback-peers"])
        .args(["--listening-ip", &listen.ip().to_string()])
        .args(["--listening-port", &listen.port().to_string()])
        .args(["--relay-ip", "127.0.0.1"])
        .args(["--realm", REALM])
        .args(["--min-port", &relay.0.to_string()])
        .args(["--max-port", &relay.1.to_string()])
        .args(["--log-file", "stdout"])
        .args([
            "--pidfile",
            &log_path.with_extension("pid").to_string_lossy(),
        ]);
    match opts.auth {
        Auth::Static => cmd.args(["--lt-cred-mech", "--user", &format!("{USER}:{PASSWORD}")]),
        Auth::Rest => cmd.args(["--use-auth-secret", "--static-auth-secret", REST_SECRET]),
    };
    cmd
}

/// Sends one Binding request (a bare 20-byte header) and waits up to the
/// socket's read timeout for the matching success response. Returns the
/// response bytes.
pub fn binding(sock: &UdpSocket, server: SocketAddr) -> Option<Vec<u8>> {
    let tid = turn::transaction_id();
    let mut req = [0u8; 20];
    req[0..2].copy_from_slice(&0x0001u16.to_be_bytes());
    req[4..8].copy_from_slice(&turn::MAGIC_COOKIE.to_be_bytes());
    req[8..20].copy_from_slice(&tid);
    sock.send_to(&req, server).ok()?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now()
        + sock
            .read_timeout()
            .ok()
            .flatten()
            .unwrap_or(Duration::from_secs(1));
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return None;
        };
        let resp = &buf[..n];
        if from == server && n >= 20 && resp[0..2] == [0x01, 0x01] && resp[8..20] == tid {
            return Some(resp.to_vec());
        }
    }
    None
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bound to port 0,
/// then released).
pub fn free_udp_port() -> u16 {
    free_udp_port_on("127.0.0.1")
}

pub fn free_udp_port_on(ip: &str) -> u16 {
    let s = UdpSocket::bind((ip, 0)).expect("bind udp :0");
    s.local_addr().expect("bound socket has an address").port()
}

pub fn free_tcp_port() -> u16 {
    let s = TcpListener::bind("127.0.0.1:0").expect("bind tcp :0");
    s.local_addr().unwrap().port()
}

fn wait_tcp(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Directory for logs and scratch files of this test run.
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uturn-it");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Path of a helper asset under tests/clients/.
pub fn client_asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join(name)
}

pub(crate) fn next_serial() -> u32 {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// TURN REST API credentials (draft-uberti-behave-turn-rest-00 §2.2, as
/// coTURN implements it): username `EXPIRY:USER`, password
/// base64(HMAC-SHA1(secret, username)).
pub fn rest_credentials(secret: &str, user: &str, ttl: Duration) -> (String, String) {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + ttl.as_secs();
    let username = format!("{expiry}:{user}");
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}
