//! A real browser's WebRTC stack through uturn: headless Chromium (Debian's
//! chromium + chromium-driver, driven by selenium) connects two
//! RTCPeerConnections with `iceTransportPolicy: 'relay'`, so the only
//! possible path is client → uturn → relay → relay → uturn → client. The
//! page (tests/clients/chromium_relay.html) passes when a data-channel
//! message arrives, more than 10 fake-camera frames are decoded, and both
//! selected candidate pairs are relay/relay.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{client_asset, require_python_module, require_tool, Auth, Server, ServerOptions};

/// Runs the selenium driver; returns success and the page's result JSON.
fn drive_chromium(
    server: &Server,
    credential: &str,
    timeout_secs: u32,
) -> (bool, serde_json::Value, String) {
    require_tool("chromium");
    require_tool("chromedriver");
    require_python_module("selenium");
    let turn = format!("turn:{}?transport=udp", server.listen);
    let out = common::run(
        Command::new("python3")
            .arg(client_asset("chromium_driver.py"))
            .args([
                "--turn",
                &turn,
                "--user",
                common::USER,
                "--cred",
                credential,
            ])
            .args(["--timeout", &timeout_secs.to_string()]),
        Duration::from_secs(u64::from(timeout_secs) + 60),
    );
    let text = format!("{out}\n--- relay log ---\n{}", server.log());
    let result = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT line is JSON"))
        .unwrap_or_else(|| panic!("the Chromium driver printed no RESULT:\n{text}"));
    (out.success(), result, text)
}

#[test]
fn chromium_webrtc_relays_data_and_video_through_turn() {
    let server = Server::start(&ServerOptions::new(Auth::Static, 7));
    let (ok, result, text) = drive_chromium(&server, common::PASSWORD, 60);
    assert!(ok, "WebRTC through the relay failed:\n{text}");
    assert_eq!(result["ok"], true, "{text}");
    assert_eq!(result["message"], "hello through the relay", "{text}");
    assert!(
        result["framesDecoded"].as_u64().unwrap_or(0) > 10,
        "too few frames decoded:\n{text}"
    );
    // Both ends of both selected pairs are relayed addresses of this relay.
    let (min, max) = server.relay_ports;
    for pair in ["pair1", "pair2"] {
        assert_eq!(result[pair]["local"], "relay", "{text}");
        assert_eq!(result[pair]["remote"], "relay", "{text}");
        for end in ["localAddress", "remoteAddress"] {
            let addr = result[pair][end].as_str().unwrap_or_default();
            let port: u16 = addr
                .strip_prefix("127.0.0.1:")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!("{pair}.{end} = {addr:?} is not a 127.0.0.1 relay address\n{text}")
                });
            assert!(
                (min..=max).contains(&port),
                "{pair}.{end} port {port} outside {min}-{max}\n{text}"
            );
        }
    }
}

#[test]
fn chromium_with_wrong_credential_gets_no_relay() {
    let server = Server::start(&ServerOptions::new(Auth::Static, 8));
    let (ok, result, text) = drive_chromium(&server, "wrong-password", 10);
    assert!(
        !ok,
        "WebRTC succeeded with a wrong TURN credential:\n{text}"
    );
    assert_ne!(result["ok"], true, "{text}");
    // Without an allocation there is no relay candidate to gather.
    let gathered = result["status"]["candidates"]["pc1"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        gathered, 0,
        "relay candidates despite a refused credential:\n{text}"
    );
}
