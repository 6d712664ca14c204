//! uturn relays coTURN's own test client, `turnutils_uclient`, to coTURN's
//! echo peer, `turnutils_peer`, without losing a packet: over channels, over
//! Send/Data indications, with 50 clients at once, and with TURN REST API
//! credentials. These are independent implementations of RFC 5766/8656
//! client behaviour, so they check interoperability, not just our codec.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::{require_tool, Auth, Background, Flavor, Server, ServerOptions};

/// Messages per client; small so each run takes a few seconds.
const MESSAGES: u32 = 20;
const LENGTH: u32 = 120;

/// uclient's closing statistics.
#[derive(Debug)]
struct Stats {
    sent: u64,
    received: u64,
    lost: u64,
    send_dropped: u64,
}

/// Parses the closing lines of a uclient run, e.g.
/// `4: : start_mclient: tot_send_msgs=40, tot_recv_msgs=40` and
/// `4: : Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)`
/// (format of coTURN 4.6's uclient, read from its real output).
fn parse_stats(out: &str) -> Option<Stats> {
    let totals = out
        .lines()
        .rev()
        .find(|l| l.contains("start_mclient: tot_send_msgs="))?;
    let sent = number_after(totals, "tot_send_msgs=")?;
    let received = number_after(totals, "tot_recv_msgs=")?;
    let loss = out
        .lines()
        .rev()
        .find(|l| l.contains("Total lost packets"))?;
    let lost = number_after(loss, "Total lost packets ")?;
    let send_dropped = number_after(loss, "total send dropped ")?;
    Some(Stats {
        sent,
        received,
        lost,
        send_dropped,
    })
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Waits until the echo peer answers, so uclient's first messages are not
/// lost to a peer that has not bound its socket yet.
fn wait_for_echo(peer: &mut Background, addr: (&str, u16)) {
    let sock = UdpSocket::bind((common::PEER_IP, 0)).expect("bind probe");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..100 {
        assert!(peer.is_alive(), "turnutils_peer exited:\n{}", peer.log());
        let _ = sock.send_to(b"probe", addr);
        if matches!(sock.recv_from(&mut buf), Ok((5, _))) {
            return;
        }
    }
    panic!("turnutils_peer on {addr:?} never echoed:\n{}", peer.log());
}

/// Runs uclient against a fresh relay and asserts zero loss.
fn relay_uclient(auth: Auth, port_block: u16, clients: u32, extra: &[&str]) {
    relay_uclient_with(ServerOptions::new(auth, port_block), clients, extra);
}

fn relay_uclient_with(mut opts: ServerOptions, clients: u32, extra: &[&str]) {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let auth = opts.auth;
    opts.metrics = true;
    if clients > 1 {
        // Several workers, so SO_REUSEPORT spreads the clients over them.
        opts.threads = Some(2);
    }
    let server = Server::start(&opts);

    let peer_port = common::free_udp_port_on(common::PEER_IP);
    let mut peer = Background::spawn(
        Command::new("turnutils_peer").args(["-L", common::PEER_IP, "-p", &peer_port.to_string()]),
        "turnutils_peer",
    );
    wait_for_echo(&mut peer, (common::PEER_IP, peer_port));

    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(["-p", &server.listen.port().to_string()])
        .args(["-e", common::PEER_IP, "-r", &peer_port.to_string()])
        .args(["-n", &MESSAGES.to_string(), "-l", &LENGTH.to_string()])
        .args(["-m", &clients.to_string()])
        .args(["-L", "127.0.0.1"]);
    match auth {
        Auth::Static => cmd.args(["-u", common::USER, "-w", common::PASSWORD]),
        // uclient builds the REST username `EXPIRY:bob` and its password
        // from the shared secret itself.
        Auth::Rest => cmd.args(["-u", "bob", "-W", common::REST_SECRET]),
    };
    cmd.args(extra).arg("127.0.0.1");

    let out = common::run(&mut cmd, Duration::from_secs(90));
    assert!(peer.is_alive(), "turnutils_peer died:\n{}", peer.log());
    let context = || format!("{out}\n--- relay log ---\n{}", server.log());
    assert!(out.success(), "turnutils_uclient failed:\n{}", context());
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        !all.contains("ERROR"),
        "turnutils_uclient reported an error:\n{}",
        context()
    );
    let stats = parse_stats(&all)
        .unwrap_or_else(|| panic!("no statistics in uclient output:\n{}", context()));
    assert!(
        stats.sent >= u64::from(MESSAGES * clients),
        "uclient sent too little: {stats:?}\n{}",
        context()
    );
    assert_eq!(stats.sent, stats.received, "{stats:?}\n{}", context());
    assert_eq!(stats.lost, 0, "{stats:?}\n{}", context());
    assert_eq!(stats.send_dropped, 0, "{stats:?}\n{}", context());
    if server.flavor == Flavor::Uturn {
        // Every message went out through a relay and came back through one;
        // uturn counts each forward before sending it.
        let metrics = server.metrics_text();
        let relayed = common::metric_sum(&metrics, "uturn_relayed_packets_total");
        assert!(
            relayed >= (stats.sent + stats.received) as f64,
            "uturn counted {relayed} relayed packets for {stats:?}:\n{metrics}"
        );
    }
}

#[test]
fn uclient_channels_static_credentials() {
    relay_uclient(Auth::Static, 0, 1, &[]);
}

#[test]
fn uclient_send_indications_static_credentials() {
    relay_uclient(Auth::Static, 1, 1, &["-s"]);
}

#[test]
fn uclient_fifty_clients() {
    relay_uclient(Auth::Static, 2, 50, &[]);
}

#[test]
fn uclient_channels_rest_credentials() {
    relay_uclient(Auth::Rest, 3, 1, &[]);
}

#[test]
fn uclient_channels_epoll_backend() {
    let mut opts = ServerOptions::new(Auth::Static, 12);
    opts.backend = Some("epoll");
    relay_uclient_with(opts, 1, &[]);
}

#[test]
fn uclient_statistics_parser_reads_real_output() {
    // Captured from coTURN 4.6.1's uclient (one client, 20 messages).
    let sample = "\
3: : start_mclient: msz=2, tot_send_msgs=20, tot_recv_msgs=20, tot_send_bytes ~ 2000, tot_recv_bytes ~ 2000
4: : start_mclient: tot_send_msgs=40, tot_recv_msgs=39
4: : start_mclient: tot_send_bytes ~ 4000, tot_recv_bytes ~ 3900
4: : Total transmit time is 4
4: : Total lost packets 1 (2.500000%), total send dropped 3 (0.000000%)
";
    let s = parse_stats(sample).expect("parses");
    assert_eq!((s.sent, s.received, s.lost, s.send_dropped), (40, 39, 1, 3));
    assert!(parse_stats("0: : ERROR: Cannot complete Allocation").is_none());
}
