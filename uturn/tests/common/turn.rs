//! A deliberately small, independent TURN client for the tests (RFC 8656
//! over UDP with RFC 8489 long-term credentials, MD5 key). It is written
//! from the RFCs without `uturn-stun`, so a bug shared by uturn's codec and
//! this client cannot hide itself.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// RFC 8489 §5.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

// Message types (RFC 8489 §5, RFC 8656 §17): method | class bits.
pub const BINDING_REQUEST: u16 = 0x0001;
pub const BINDING_SUCCESS: u16 = 0x0101;
pub const BINDING_ERROR: u16 = 0x0111;
pub const ALLOCATE_REQUEST: u16 = 0x0003;
pub const ALLOCATE_SUCCESS: u16 = 0x0103;
pub const ALLOCATE_ERROR: u16 = 0x0113;
pub const REFRESH_REQUEST: u16 = 0x0004;
pub const CREATE_PERMISSION_REQUEST: u16 = 0x0008;
pub const CHANNEL_BIND_REQUEST: u16 = 0x0009;
pub const SEND_INDICATION: u16 = 0x0016;
pub const DATA_INDICATION: u16 = 0x0017;

// Attribute types (RFC 8489 §18.3, RFC 8656 §18).
pub const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
pub const ATTR_USERNAME: u16 = 0x0006;
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ATTR_ERROR_CODE: u16 = 0x0009;
pub const ATTR_UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const ATTR_CHANNEL_NUMBER: u16 = 0x000C;
pub const ATTR_LIFETIME: u16 = 0x000D;
pub const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
pub const ATTR_DATA: u16 = 0x0013;
pub const ATTR_REALM: u16 = 0x0014;
pub const ATTR_NONCE: u16 = 0x0015;
pub const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const ATTR_FINGERPRINT: u16 = 0x8028;

/// RFC 8489 §14.7.
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// A fresh, process-unique transaction id.
pub fn transaction_id() -> [u8; 12] {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tid = [0u8; 12];
    tid[0..4].copy_from_slice(&std::process::id().to_be_bytes());
    tid[4..12].copy_from_slice(&n.to_be_bytes());
    tid
}

/// Encodes a STUN message. `integrity` adds MESSAGE-INTEGRITY (HMAC-SHA1
/// under that key: the long-term MD5 key, or a short-term password, RFC 8489
/// §14.5); `fingerprint` adds FINGERPRINT. Padding is zeros.
pub fn encode(
    msg_type: u16,
    tid: &[u8; 12],
    attrs: &[(u16, &[u8])],
    integrity: Option<&[u8]>,
    fingerprint: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(tid);
    for (typ, value) in attrs {
        push_attr(&mut out, *typ, value);
    }
    if let Some(key) = integrity {
        // The length field covers MESSAGE-INTEGRITY itself (§14.5).
        let len = out.len() - 20 + 24;
        set_len(&mut out, len);
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&out);
        let digest = mac.finalize().into_bytes();
        push_attr(&mut out, ATTR_MESSAGE_INTEGRITY, &digest);
    }
    if fingerprint {
        let len = out.len() - 20 + 8;
        set_len(&mut out, len);
        let crc = crc32fast::hash(&out) ^ FINGERPRINT_XOR;
        push_attr(&mut out, ATTR_FINGERPRINT, &crc.to_be_bytes());
    }
    let body = out.len() - 20;
    set_len(&mut out, body);
    out
}

fn set_len(msg: &mut [u8], len: usize) {
    msg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

fn push_attr(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    out.extend_from_slice(&typ.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// RFC 8489 §9.2.2: MD5(username ":" realm ":" password).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(format!("{username}:{realm}:{password}").as_bytes());
    h.finalize().into()
}

/// XOR-*-ADDRESS value (RFC 8489 §14.2).
pub fn xor_address(addr: SocketAddr, tid: &[u8; 12]) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut v = vec![0u8];
    match addr.ip() {
        IpAddr::V4(ip) => {
            v.push(0x01);
            v.extend_from_slice(&port.to_be_bytes());
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            v.extend_from_slice(&x.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            v.push(0x02);
            v.extend_from_slice(&port.to_be_bytes());
            let mut mask = [0u8; 16];
            mask[0..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..16].copy_from_slice(tid);
            v.extend(ip.octets().iter().zip(mask).map(|(a, m)| a ^ m));
        }
    }
    v
}

pub fn decode_xor_address(value: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    match value.get(1)? {
        0x01 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            let ip = u32::from_be_bytes(raw) ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::V4(ip.into()), port))
        }
        0x02 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let mut mask = [0u8; 16];
            mask[0..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..16].copy_from_slice(tid);
            let mut ip = [0u8; 16];
            for ((o, r), m) in ip.iter_mut().zip(raw).zip(mask) {
                *o = r ^ m;
            }
            Some(SocketAddr::new(IpAddr::V6(ip.into()), port))
        }
        _ => None,
    }
}

/// A decoded STUN message (owned; test code, not a hot path).
#[derive(Debug, Clone)]
pub struct Message {
    pub msg_type: u16,
    pub tid: [u8; 12],
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl Message {
    /// Parses a STUN message; `None` for anything that is not one.
    pub fn parse(buf: &[u8]) -> Option<Message> {
        if buf.len() < 20 || buf[0] & 0xC0 != 0 {
            return None;
        }
        let msg_type = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf[4..8] != MAGIC_COOKIE.to_be_bytes() || buf.len() != 20 + len {
            return None;
        }
        let tid: [u8; 12] = buf[8..20].try_into().ok()?;
        let mut attrs = Vec::new();
        let mut rest = &buf[20..];
        while !rest.is_empty() {
            let typ = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
            let alen = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
            let value = rest.get(4..4 + alen)?;
            attrs.push((typ, value.to_vec()));
            let padded = (4 + alen + 3) & !3;
            rest = rest.get(padded..).unwrap_or(&[]);
        }
        Some(Message {
            msg_type,
            tid,
            attrs,
        })
    }

    pub fn attr(&self, typ: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(t, _)| *t == typ)
            .map(|(_, v)| v.as_slice())
    }

    /// ERROR-CODE as a number (RFC 8489 §14.8), if present.
    pub fn error_code(&self) -> Option<u16> {
        let v = self.attr(ATTR_ERROR_CODE)?;
        Some(u16::from(*v.get(2)? & 0x07) * 100 + u16::from(*v.get(3)?))
    }

    /// Attribute types listed in UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub fn unknown_attributes(&self) -> Vec<u16> {
        self.attr(ATTR_UNKNOWN_ATTRIBUTES)
            .map(|v| {
                v.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn xor_address(&self, typ: u16) -> Option<SocketAddr> {
        decode_xor_address(self.attr(typ)?, &self.tid)
    }
}

/// ChannelData framing (RFC 8656 §12.4): 4-byte header; over UDP no padding
/// is required, so none is added.
pub fn channel_data(channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// XOR-PEER-ADDRESS for [`Client::request`], which encodes attributes
/// before it picks the transaction id: only an IPv4 address's XOR mask does
/// not depend on the id (RFC 8489 §14.2), so this client takes IPv4 peers.
fn peer_address(peer: SocketAddr) -> Vec<u8> {
    assert!(peer.is_ipv4(), "the test client supports IPv4 peers only");
    xor_address(peer, &[0; 12])
}

/// One client allocation over one UDP socket.
#[derive(Debug)]
pub struct Client {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    username: String,
    password: String,
    realm: String,
    nonce: Vec<u8>,
    key: [u8; 16],
    pub relayed: Option<SocketAddr>,
}

/// What went wrong in a transaction.
#[derive(Debug)]
pub enum TurnError {
    Timeout,
    Error(u16, Message),
}

impl Client {
    pub fn new(server: SocketAddr, username: &str, password: &str) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Client {
            sock,
            server,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: String::new(),
            nonce: Vec::new(),
            key: [0; 16],
            relayed: None,
        }
    }

    /// Sends `msg` (re-encoded per attempt by `build`) and waits for the
    /// response with its transaction id, retransmitting (RFC 8489 §6.2.1,
    /// simplified: fixed 200 ms, 7 tries).
    pub fn transact(&self, build: &dyn Fn(&[u8; 12]) -> Vec<u8>) -> Result<Message, TurnError> {
        let tid = transaction_id();
        let req = build(&tid);
        let mut buf = vec![0u8; 65536];
        for _ in 0..7 {
            self.sock.send_to(&req, self.server).expect("send request");
            let deadline = Instant::now() + Duration::from_millis(200);
            while Instant::now() < deadline {
                let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                if from != self.server {
                    continue;
                }
                if let Some(m) = Message::parse(&buf[..n]) {
                    if m.tid == tid {
                        return match m.error_code() {
                            Some(code) if m.msg_type & 0x0110 == 0x0110 => {
                                Err(TurnError::Error(code, m))
                            }
                            _ => Ok(m),
                        };
                    }
                }
            }
        }
        Err(TurnError::Timeout)
    }

    /// An authenticated request: USERNAME, REALM, NONCE, extra attributes,
    /// MESSAGE-INTEGRITY. Handles 401 (first contact) and 438 (stale nonce)
    /// by taking the server's REALM/NONCE and trying again.
    pub fn request(
        &mut self,
        msg_type: u16,
        attrs: &[(u16, Vec<u8>)],
    ) -> Result<Message, TurnError> {
        for _ in 0..3 {
            let result = if self.nonce.is_empty() {
                self.transact(&|tid| {
                    let a: Vec<(u16, &[u8])> =
                        attrs.iter().map(|(t, v)| (*t, v.as_slice())).collect();
                    encode(msg_type, tid, &a, None, false)
                })
            } else {
                let (user, realm, nonce, key) = (
                    self.username.clone(),
                    self.realm.clone(),
                    self.nonce.clone(),
                    self.key,
                );
                self.transact(&|tid| {
                    let mut a: Vec<(u16, &[u8])> = vec![
                        (ATTR_USERNAME, user.as_bytes()),
                        (ATTR_REALM, realm.as_bytes()),
                        (ATTR_NONCE, &nonce),
                    ];
                    a.extend(attrs.iter().map(|(t, v)| (*t, v.as_slice())));
                    encode(msg_type, tid, &a, Some(&key[..]), true)
                })
            };
            match result {
                Err(TurnError::Error(401 | 438, m)) => {
                    let (Some(realm), Some(nonce)) = (m.attr(ATTR_REALM), m.attr(ATTR_NONCE))
                    else {
                        return Err(TurnError::Error(m.error_code().unwrap_or(0), m));
                    };
                    let had_nonce = !self.nonce.is_empty();
                    let code = m.error_code();
                    self.realm = String::from_utf8_lossy(realm).into_owned();
                    self.nonce = nonce.to_vec();
                    self.key = long_term_key(&self.username, &self.realm, &self.password);
                    if had_nonce && code == Some(401) {
                        // Our credentials were refused, not just unannounced.
                        return Err(TurnError::Error(401, m));
                    }
                }
                other => return other,
            }
        }
        Err(TurnError::Timeout)
    }

    /// Allocate (RFC 8656 §7) a UDP relay; returns XOR-RELAYED-ADDRESS.
    pub fn allocate(&mut self) -> Result<SocketAddr, TurnError> {
        let m = self.request(
            ALLOCATE_REQUEST,
            &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
        )?;
        let relayed = m
            .xor_address(ATTR_XOR_RELAYED_ADDRESS)
            .expect("Allocate success without XOR-RELAYED-ADDRESS");
        self.relayed = Some(relayed);
        Ok(relayed)
    }

    pub fn create_permission(&mut self, peer: SocketAddr) -> Result<(), TurnError> {
        self.request(
            CREATE_PERMISSION_REQUEST,
            &[(ATTR_XOR_PEER_ADDRESS, peer_address(peer))],
        )
        .map(drop)
    }

    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Result<(), TurnError> {
        self.request(
            CHANNEL_BIND_REQUEST,
            &[
                (
                    ATTR_CHANNEL_NUMBER,
                    vec![(channel >> 8) as u8, channel as u8, 0, 0],
                ),
                (ATTR_XOR_PEER_ADDRESS, peer_address(peer)),
            ],
        )
        .map(drop)
    }

    /// Refresh with LIFETIME 0 (RFC 8656 §8): deletes the allocation.
    pub fn delete(&mut self) -> Result<(), TurnError> {
        self.request(REFRESH_REQUEST, &[(ATTR_LIFETIME, vec![0, 0, 0, 0])])
            .map(drop)
    }

    pub fn send_channel(&self, channel: u16, payload: &[u8]) {
        self.sock
            .send_to(&channel_data(channel, payload), self.server)
            .expect("send ChannelData");
    }

    pub fn send_indication(&self, peer: SocketAddr, payload: &[u8]) {
        let tid = transaction_id();
        let msg = encode(
            SEND_INDICATION,
            &tid,
            &[
                (ATTR_XOR_PEER_ADDRESS, &xor_address(peer, &tid)),
                (ATTR_DATA, payload),
            ],
            None,
            false,
        );
        self.sock
            .send_to(&msg, self.server)
            .expect("send Send indication");
    }

    /// Waits up to `timeout` for ChannelData or a Data indication from the
    /// server; returns (channel or 0, peer if known, payload).
    pub fn recv_data(&self, timeout: Duration) -> Option<(u16, Option<SocketAddr>, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let pkt = &buf[..n];
            if from != self.server || n < 4 {
                continue;
            }
            if (0x40..=0x7F).contains(&pkt[0]) {
                let len = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
                let channel = u16::from_be_bytes([pkt[0], pkt[1]]);
                if let Some(payload) = pkt.get(4..4 + len) {
                    return Some((channel, None, payload.to_vec()));
                }
            } else if let Some(m) = Message::parse(pkt) {
                if m.msg_type == DATA_INDICATION {
                    let peer = m.xor_address(ATTR_XOR_PEER_ADDRESS);
                    let data = m.attr(ATTR_DATA).unwrap_or(&[]).to_vec();
                    return Some((0, peer, data));
                }
            }
        }
        None
    }
}
