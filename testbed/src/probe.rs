//! Readiness check: a STUN Binding request (RFC 8489 §3) to the relay,
//! answered by a Binding success response with the same transaction ID.
//!
//! The request must come from the clients' namespace, where the relay's
//! listener is reachable; the testbed runs itself there (`ip netns exec NS
//! uturn-testbed probe ADDR`) so it needs no `setns` of its own.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uturn_stun::{Class, Message, MessageBuilder, Method, TransactionId};

/// Sends Binding requests to `server` every 100 ms until one is answered
/// or `timeout` passes. Returns whether the server answered.
pub fn binding_answered(server: SocketAddr, timeout: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind(("0.0.0.0", 0)) else {
        return false;
    };
    if sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        return false;
    }
    let tid = transaction_id();
    let mut req = Vec::with_capacity(20);
    MessageBuilder::new(&mut req, Class::Request, Method::BINDING, tid).finish();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let _ = sock.send_to(&req, server);
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == server && is_binding_success(buf.get(..n).unwrap_or(&[]), tid) {
                return true;
            }
        }
    }
    false
}

/// Sends a short datagram to `peer` every 100 ms until it comes back
/// unchanged (a plain UDP echo such as `turnutils_peer`).
pub fn echo_answered(peer: SocketAddr, timeout: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind(("0.0.0.0", 0)) else {
        return false;
    };
    if sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        return false;
    }
    let probe = b"uturn-testbed-probe";
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let _ = sock.send_to(probe, peer);
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == peer && buf.get(..n) == Some(&probe[..]) {
                return true;
            }
        }
    }
    false
}

fn is_binding_success(datagram: &[u8], tid: TransactionId) -> bool {
    Message::parse(datagram).is_ok_and(|m| {
        m.class() == Class::Success && m.method() == Method::BINDING && m.transaction_id() == tid
    })
}

/// Unique enough for one probe: only this process waits for the answer.
fn transaction_id() -> TransactionId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
    id[8..].copy_from_slice(&std::process::id().to_be_bytes());
    TransactionId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_success_with_our_transaction_id_counts() {
        let tid = TransactionId([7; 12]);
        let mut ok = Vec::new();
        MessageBuilder::new(&mut ok, Class::Success, Method::BINDING, tid).finish();
        assert!(is_binding_success(&ok, tid));
        assert!(!is_binding_success(&ok, TransactionId([8; 12])));
        let mut err = Vec::new();
        MessageBuilder::new(&mut err, Class::Error, Method::BINDING, tid).finish();
        assert!(!is_binding_success(&err, tid));
        assert!(!is_binding_success(b"garbage", tid));
    }

    #[test]
    fn a_local_responder_is_detected_and_silence_is_not() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let req = Message::parse(&buf[..n]).unwrap();
            let mut resp = Vec::new();
            MessageBuilder::new(
                &mut resp,
                Class::Success,
                Method::BINDING,
                req.transaction_id(),
            )
            .finish();
            server.send_to(&resp, from).unwrap();
        });
        assert!(binding_answered(addr, Duration::from_secs(5)));
        responder.join().unwrap();
        // A plain echo is recognised by the echo probe only.
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        let echoer = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], from).unwrap();
        });
        assert!(echo_answered(echo_addr, Duration::from_secs(5)));
        echoer.join().unwrap();
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!binding_answered(
            silent.local_addr().unwrap(),
            Duration::from_millis(300)
        ));
        assert!(!echo_answered(
            silent.local_addr().unwrap(),
            Duration::from_millis(300)
        ));
    }
}
