//! Interoperability with an independent DTLS-SRTP implementation: the
//! `openssl` command line (`s_client` / `s_server` with `-use_srtp` and
//! `-keymatexport`), over loopback UDP.
//!
//! Each test checks what only a second implementation can: the records
//! are understood, the SRTP profile is chosen by the server's preference
//! (RFC 5764 §4.1.1), the peer's certificate is checked against its
//! fingerprint (RFC 8122), and both sides export the same keying material
//! (RFC 5764 §4.2), split the same way (client key, server key, client
//! salt, server salt).
//!
//! Needs `openssl` on the PATH (scripts/install-test-deps.sh installs it).
//! Time here is real (sockets), so deadlines only bound a failing run.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use uturn_dtls::{Certificate, DtlsConfig, Endpoint, Error, Event};
use uturn_srtp::{DtlsSrtpKeys, Profile, Role};

const GCM: Profile = Profile::AeadAes128Gcm;
const CM: Profile = Profile::Aes128CmSha1_80;
/// Bounds a run that went wrong; a good handshake takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

/// A P-256 certificate made by openssl, and its SHA-256 fingerprint.
struct OpensslCert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    fingerprint: [u8; 32],
}

impl Drop for OpensslCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl_cert() -> OpensslCert {
    // Tests run in parallel: one directory per certificate.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("uturn-dtls-interop-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=uturn-interop", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl on the PATH (scripts/install-test-deps.sh)");
    assert!(status.success());
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    // "sha256 Fingerprint=AB:CD:..."
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap();
    let bytes: Vec<u8> = hex
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    OpensslCert {
        dir,
        cert,
        key,
        fingerprint: bytes.try_into().unwrap(),
    }
}

fn srtp_names(profiles: &[Profile]) -> String {
    profiles
        .iter()
        .map(|p| match p {
            Profile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            _ => "SRTP_AES128_CM_SHA1_80",
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// Spawns openssl with piped stdio; its stdout lines go to a channel.
fn spawn(args: &[&str], cert: &OpensslCert) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("openssl")
        .args(args)
        .arg("-cert")
        .arg(&cert.cert)
        .arg("-key")
        .arg(&cert.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Keep stderr drained so openssl never blocks on it.
    let mut stderr = child.stderr.take().unwrap();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink);
    });
    (child, rx)
}

/// What openssl printed about the session.
#[derive(Debug, Default)]
struct Printed {
    profile: Option<String>,
    material: Option<Vec<u8>>,
}

fn collect(lines: &mpsc::Receiver<String>, printed: &mut Printed) {
    while let Ok(line) = lines.try_recv() {
        let line = line.trim();
        if let Some(p) = line.strip_prefix("SRTP Extension negotiated, profile=") {
            printed.profile = Some(p.to_owned());
        }
        if let Some(hex) = line.strip_prefix("Keying material: ") {
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            printed.material = Some(bytes);
        }
    }
}

/// Runs `endpoint` over `socket` against `peer` until it connects or
/// fails, while collecting what openssl prints.
fn drive(
    endpoint: &mut Endpoint,
    socket: &UdpSocket,
    mut peer: Option<SocketAddr>,
    lines: &mpsc::Receiver<String>,
    printed: &mut Printed,
) -> Event {
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    loop {
        assert!(start.elapsed() < DEADLINE, "no DTLS outcome");
        collect(lines, printed);
        while let Some(n) = endpoint.poll_transmit(&mut out) {
            let to = peer.expect("a client speaks first");
            socket.send_to(&out[..n], to).unwrap();
        }
        if let Some(e) = endpoint.poll_event() {
            return e;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                peer.get_or_insert(from);
                let _ = endpoint.handle_datagram(Instant::now(), &buf[..n]);
            }
            Err(_) => endpoint.handle_timeout(Instant::now()),
        }
    }
}

/// Waits for openssl's exporter output (printed once its side finished).
fn wait_printed(lines: &mpsc::Receiver<String>, printed: &mut Printed) {
    let start = Instant::now();
    while printed.material.is_none() || printed.profile.is_none() {
        assert!(start.elapsed() < DEADLINE, "openssl printed {printed:?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
            let (tx, rx) = mpsc::channel();
            tx.send(line).unwrap();
            collect(&rx, printed);
        }
    }
}

fn finish(mut child: Child) {
    // Closing stdin ends s_client; s_server needs a kill.
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

/// The exporter output is client key | server key | client salt | server
/// salt (RFC 5764 §4.2); check our split for `role`.
fn assert_split(material: &[u8], profile: Profile, role: Role, keys: &DtlsSrtpKeys) {
    let (k, s) = (profile.key_len(), profile.salt_len());
    assert_eq!(material.len(), 2 * k + 2 * s);
    let (client, server) = match role {
        Role::Client => (&keys.local, &keys.remote),
        Role::Server => (&keys.remote, &keys.local),
    };
    assert_eq!(&material[..k], client.key());
    assert_eq!(&material[k..2 * k], server.key());
    assert_eq!(&material[2 * k..2 * k + s], client.salt());
    assert_eq!(&material[2 * k + s..], server.salt());
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// uturn as the DTLS server (its role in WebRTC), openssl s_client as the
/// browser.
fn uturn_server(ours: &[Profile], theirs: &[Profile], expected: Profile) {
    let peer_cert = openssl_cert();
    let cert = Certificate::generate().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let len = (2 * expected.key_len() + 2 * expected.salt_len()).to_string();
    let use_srtp = srtp_names(theirs);
    let (child, lines) = spawn(
        &[
            "s_client",
            "-dtls1_2",
            "-connect",
            &addr,
            "-use_srtp",
            &use_srtp,
            "-keymatexport",
            "EXTRACTOR-dtls_srtp",
            "-keymatexportlen",
            &len,
        ],
        &peer_cert,
    );
    let config = DtlsConfig {
        profiles: ours.to_vec(),
        ..DtlsConfig::default()
    };
    let mut server = Endpoint::new(
        Instant::now(),
        Role::Server,
        &cert,
        peer_cert.fingerprint,
        &config,
    )
    .unwrap();
    let mut printed = Printed::default();
    let event = drive(&mut server, &socket, None, &lines, &mut printed);
    let Event::Connected { profile, keys } = event else {
        finish(child);
        panic!("uturn server: {event:?}");
    };
    assert_eq!(profile, expected);
    wait_printed(&lines, &mut printed);
    finish(child);
    let name = srtp_names(&[expected]);
    assert_eq!(printed.profile.as_deref(), Some(name.as_str()));
    assert_split(
        printed.material.as_deref().unwrap(),
        profile,
        Role::Server,
        &keys,
    );
}

#[test]
fn uturn_server_and_openssl_client_agree_on_gcm() {
    uturn_server(&[GCM, CM], &[CM, GCM], GCM);
}

#[test]
fn uturn_server_and_openssl_client_agree_on_cm() {
    uturn_server(&[CM, GCM], &[GCM, CM], CM);
}

/// uturn as the DTLS client (the load generator's role), openssl s_server.
#[test]
fn uturn_client_and_openssl_server_agree() {
    let peer_cert = openssl_cert();
    let cert = Certificate::generate().unwrap();
    let port = free_port().to_string();
    let (child, lines) = spawn(
        &[
            "s_server",
            "-dtls1_2",
            "-accept",
            &port,
            "-use_srtp",
            "SRTP_AEAD_AES_128_GCM",
            "-keymatexport",
            "EXTRACTOR-dtls_srtp",
            "-keymatexportlen",
            "56",
        ],
        &peer_cert,
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut printed = Printed::default();
    // s_server needs a moment to bind; the client's retransmissions cover it.
    let mut client = Endpoint::new(
        Instant::now(),
        Role::Client,
        &cert,
        peer_cert.fingerprint,
        &DtlsConfig::default(),
    )
    .unwrap();
    let event = drive(&mut client, &socket, Some(server), &lines, &mut printed);
    let Event::Connected { profile, keys } = event else {
        finish(child);
        panic!("uturn client: {event:?}");
    };
    assert_eq!(profile, GCM);
    wait_printed(&lines, &mut printed);
    finish(child);
    assert_split(
        printed.material.as_deref().unwrap(),
        profile,
        Role::Client,
        &keys,
    );
}

#[test]
fn uturn_server_refuses_an_openssl_client_with_another_certificate() {
    let peer_cert = openssl_cert();
    let cert = Certificate::generate().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let (child, lines) = spawn(
        &[
            "s_client",
            "-dtls1_2",
            "-connect",
            &addr,
            "-use_srtp",
            "SRTP_AEAD_AES_128_GCM",
        ],
        &peer_cert,
    );
    let mut wrong = peer_cert.fingerprint;
    wrong[31] ^= 0x80;
    let mut server = Endpoint::new(
        Instant::now(),
        Role::Server,
        &cert,
        wrong,
        &DtlsConfig::default(),
    )
    .unwrap();
    let mut printed = Printed::default();
    let event = drive(&mut server, &socket, None, &lines, &mut printed);
    finish(child);
    assert_eq!(event, Event::Failed(Error::FingerprintMismatch));
    assert!(!server.is_connected());
    let mut buf = Vec::new();
    assert_eq!(server.poll_transmit(&mut buf), None);
}
