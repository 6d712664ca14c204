//! uturn relays for aioice's TURN client (PyPI `aioice`, used by aiortc), an
//! independent implementation: allocation, channel binding and ChannelData
//! both ways to an echo peer, with static credentials and with TURN REST API
//! credentials issued by uturn's own HTTP endpoint (`--api`).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{client_asset, require_python_module, Auth, Flavor, Server, ServerOptions};

const COUNT: u32 = 25;

/// Runs tests/clients/aioice_turn.py; returns its exit success, its
/// `RESULT` JSON (if any) and the full output for messages.
fn run_script(server: &Server, args: &[&str]) -> (bool, Option<serde_json::Value>, String) {
    require_python_module("aioice");
    let out = common::run(
        Command::new("python3")
            .arg(client_asset("aioice_turn.py"))
            .args(["--server", &server.listen.to_string()])
            .args(["--peer-ip", common::PEER_IP])
            .args(["--count", &COUNT.to_string(), "--size", "300"])
            .args(args),
        Duration::from_secs(60),
    );
    let result = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT line is JSON"));
    let text = format!("{out}\n--- relay log ---\n{}", server.log());
    (out.success(), result, text)
}

/// The relayed address must be the relay IP and inside the port range.
fn check_relayed(server: &Server, result: &serde_json::Value, text: &str) {
    let ip = result["relayed"][0].as_str().unwrap_or_default();
    let port = result["relayed"][1].as_u64().unwrap_or_default();
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .unwrap_or_else(|_| panic!("bad relayed address in {result}\n{text}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{text}");
    let (min, max) = server.relay_ports;
    assert!(
        (u64::from(min)..=u64::from(max)).contains(&port),
        "relayed port {port} outside {min}-{max}\n{text}"
    );
    assert_eq!(result["echoed"].as_u64(), Some(u64::from(COUNT)), "{text}");
}

#[test]
fn aioice_relays_with_static_credentials() {
    let server = Server::start(&ServerOptions::new(Auth::Static, 4));
    let (ok, result, text) = run_script(
        &server,
        &["--username", common::USER, "--password", common::PASSWORD],
    );
    assert!(ok, "aioice client failed:\n{text}");
    check_relayed(&server, &result.expect("RESULT line"), &text);
}

#[test]
fn aioice_wrong_password_is_refused() {
    let server = Server::start(&ServerOptions::new(Auth::Static, 5));
    let (ok, result, text) = run_script(
        &server,
        &[
            "--username",
            common::USER,
            "--password",
            "not-the-password",
            "--timeout",
            "5",
        ],
    );
    assert!(
        !ok && result.is_none(),
        "a wrong password was accepted:\n{text}"
    );
}

#[test]
fn aioice_relays_with_rest_credentials_from_api() {
    let mut opts = ServerOptions::new(Auth::Rest, 6);
    opts.api = true;
    let server = Server::start(&opts);
    let (ok, result, text) = match server.flavor {
        Flavor::Uturn => {
            let api = format!("http://{}", server.api.expect("api address"));
            run_script(&server, &["--api", &api, "--api-user", "py"])
        }
        // coTURN has no credential endpoint: make the same credentials here.
        Flavor::Coturn => {
            let (user, pass) =
                common::rest_credentials(common::REST_SECRET, "py", Duration::from_secs(3600));
            run_script(&server, &["--username", &user, "--password", &pass])
        }
    };
    assert!(ok, "aioice client failed:\n{text}");
    let result = result.expect("RESULT line");
    check_relayed(&server, &result, &text);

    if server.flavor == Flavor::Uturn {
        // The script checked the JSON shape; here: the password really is
        // the REST password of that username under our secret, and the ttl
        // matches the expiry inside the username.
        let api = &result["api"];
        let username = api["username"].as_str().expect("username");
        let password = api["password"].as_str().expect("password");
        let expected = rest_password(common::REST_SECRET, username);
        assert_eq!(password, expected, "{text}");
        let expiry: u64 = username
            .split(':')
            .next()
            .unwrap_or("")
            .parse()
            .expect("expiry");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ttl = api["ttl"].as_u64().expect("ttl");
        assert!(
            expiry > now && expiry <= now + ttl + 5,
            "expiry {expiry} not within now {now} + ttl {ttl}"
        );
        // The advertised URI is the one the client used: our listener.
        let uri = format!("turn:{}?transport=udp", server.listen);
        let uris = api["uris"].as_array().expect("uris");
        assert!(
            uris.iter().any(|u| u.as_str() == Some(uri.as_str())),
            "{uri} not among the advertised uris: {api}"
        );
    }
}

fn rest_password(secret: &str, username: &str) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
