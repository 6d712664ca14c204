//! Interop with an independent full ICE agent: aioice (PyPI, used by
//! aiortc; installed by scripts/install-test-deps.sh) checks, nominates and
//! sends data to an [`IceLite`] driven over a real loopback UDP socket.
//!
//! aioice parses our `a=candidate` line with its own SDP parser, signs its
//! checks with our password and verifies our answers (MESSAGE-INTEGRITY
//! with our password, FINGERPRINT, XOR-MAPPED-ADDRESS). Started in the
//! wrong role (controlled), it must get 487, switch to controlling and
//! still connect.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use uturn_ice::{candidates, Credentials, Event, IceLite, Pair, State};
use uturn_stun::{classify, PacketKind};

/// Upper bound on the whole exchange, so that a broken peer fails the
/// test instead of hanging it. Not a performance assertion: loopback ICE
/// takes well under a second.
const GIVE_UP: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (installs aioice)";

/// Kills the child on every exit path (a failed assertion included).
struct Peer {
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    events: Vec<Event>,
    agent: IceLite,
    lines: Vec<String>,
    ping_from: SocketAddr,
    listener: SocketAddr,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/aioice_full_agent.py")
}

fn run(controlled: bool) -> Run {
    let import = Command::new("python3")
        .args(["-c", "import aioice"])
        .output()
        .unwrap_or_else(|e| panic!("python3 not runnable ({e}): {INSTALL_HINT}"));
    assert!(
        import.status.success(),
        "python3 cannot import aioice: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&import.stderr)
    );

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let listener = socket.local_addr().unwrap();
    let local = Credentials::random();
    let candidate = candidates(&[listener], &[])[0];

    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .args(["--candidate", &candidate.to_string()])
        .args(["--ufrag", local.ufrag(), "--pwd", local.pwd()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if controlled {
        cmd.arg("--controlled");
    }
    let mut peer = Peer {
        child: cmd.spawn().expect("start python3"),
    };
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let stdout = peer.child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = peer.child.stderr.take().unwrap();
    let stderr_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let started = Instant::now();
    let mut lines = Vec::new();
    let mut agent: Option<IceLite> = None;
    let mut events = Vec::new();
    let mut ping_from = None;
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let done = loop {
        if started.elapsed() > GIVE_UP {
            break false;
        }
        while let Ok(line) = line_rx.try_recv() {
            if let Some(creds) = line.strip_prefix("CREDS ") {
                let (ufrag, pwd) = creds.split_once(' ').expect("CREDS ufrag pwd");
                let remote = Credentials::new(ufrag, pwd).expect("aioice's credentials are valid");
                agent = Some(IceLite::new(Instant::now(), local.clone(), remote));
            }
            lines.push(line);
        }
        if lines.iter().any(|l| l.starts_with("RECEIVED")) {
            break true;
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            // Collect what it printed last, then stop.
            thread::sleep(Duration::from_millis(50));
            lines.extend(line_rx.try_iter());
            break status.success() && lines.iter().any(|l| l.starts_with("RECEIVED"));
        }
        let Some(agent) = agent.as_mut() else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let now = Instant::now();
        if let Some(deadline) = agent.poll_timeout() {
            if now >= deadline {
                agent.handle_timeout(now);
            }
        }
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue, // read timeout: go round
        };
        let datagram = &buf[..len];
        let pair = Pair {
            local: listener,
            remote: from,
        };
        match classify(datagram) {
            PacketKind::Stun => {
                // Rejections are part of the test (the 487); their answers are queued.
                let _ = agent.handle_datagram(Instant::now(), pair, datagram);
            }
            _ if datagram == b"ping" => {
                assert_eq!(
                    agent.selected(),
                    Some(pair),
                    "data arrives on the selected pair"
                );
                ping_from = Some(from);
                socket.send_to(b"pong", from).unwrap();
            }
            _ => {}
        }
        while let Some(t) = agent.poll_transmit(&mut out) {
            assert_eq!(t.source, listener);
            socket.send_to(&out, t.destination).unwrap();
        }
        events.extend(std::iter::from_fn(|| agent.poll_event()));
    };
    drop(peer);
    let stderr = stderr_reader.join().unwrap_or_default();
    assert!(
        done,
        "aioice did not connect\nstdout: {lines:?}\nstderr:\n{stderr}"
    );
    Run {
        events,
        agent: agent.expect("agent created"),
        lines,
        ping_from: ping_from.expect("ping received"),
        listener,
    }
}

#[test]
fn aioice_controlling_agent_connects_to_ice_lite() {
    let r = run(false);
    let pair = Pair {
        local: r.listener,
        remote: r.ping_from,
    };
    assert_eq!(r.events, vec![Event::Selected(pair), Event::Connected]);
    assert_eq!(r.agent.state(), State::Connected);
    assert!(r.agent.stats().successes >= 1);
    assert_eq!(r.agent.stats().unauthorized, 0);
    assert_eq!(r.agent.stats().bad_requests, 0);
    assert!(r.lines.iter().any(|l| l == "CONNECTED controlling"));
    assert!(r.lines.iter().any(|l| l == "RECEIVED pong"));
}

#[test]
fn aioice_in_the_wrong_role_gets_487_and_switches() {
    let r = run(true);
    assert!(r.agent.stats().role_conflicts >= 1, "{:?}", r.agent.stats());
    assert!(
        r.lines.iter().any(|l| l == "CONNECTED controlling"),
        "{:?}",
        r.lines
    );
    let pair = Pair {
        local: r.listener,
        remote: r.ping_from,
    };
    assert_eq!(r.events, vec![Event::Selected(pair), Event::Connected]);
}
