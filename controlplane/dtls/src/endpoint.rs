//! One DTLS-SRTP association (RFC 5764 §4.1–4.2) over dimpl's DTLS 1.2.
//!
//! The [`Endpoint`] adds to dimpl what DTLS-SRTP needs and dimpl leaves to
//! its user:
//!
//! - the peer's certificate is checked against the SDP fingerprint
//!   (RFC 8122 §5) as soon as dimpl shows it, before the handshake can
//!   finish; a mismatch fails the association and nothing more is sent;
//! - the negotiated SRTP profile must be one we configured (RFC 5764
//!   §4.1.1; a client also refuses a profile it did not offer, §4.1.3);
//! - the exported keying material (RFC 5764 §4.2) is split into our and the
//!   peer's master keys for our role (RFC 8842: the `setup` attribute
//!   decides who is client);
//! - the whole handshake has [`HANDSHAKE_TIMEOUT`], counted from creation;
//! - input that is not DTLS 1.2 record framing (RFC 6347 §4.1) is refused
//!   with [`Error::Malformed`] before it reaches dimpl and does not harm
//!   the association.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use dimpl::{Dtls, Output, SrtpProfile};
use uturn_srtp::{DtlsSrtpKeys, Profile, Role};

use crate::certificate::sha256_fingerprint;
use crate::{Certificate, DtlsContext, Error};

/// How long a handshake may take from the endpoint's creation. A browser
/// that does not finish in this time has gone (or is not a browser); 30 s
/// also matches the consent-freshness timeout (RFC 7675 §5.1).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// DTLS record header: type, version, epoch, sequence number, length
/// (RFC 6347 §4.1).
const RECORD_HEADER_LEN: usize = 13;

/// Upper bound on dimpl outputs drained per call. dimpl ends every drain
/// with a `Timeout`; the bound only guards against a library bug spinning
/// a worker.
const MAX_OUTPUTS_PER_DRAIN: usize = 256;

/// What an [`Endpoint`] negotiates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsConfig {
    /// SRTP protection profiles in preference order: a client offers them
    /// in this order, a server picks the first one the client offered.
    pub profiles: Vec<Profile>,
    /// The largest datagram the endpoint sends; handshake messages are
    /// fragmented to fit.
    pub mtu: usize,
}

impl Default for DtlsConfig {
    /// AES-128-GCM first (about 150 ns against 800 ns to protect a
    /// 1200-byte packet, dataplane/srtp/README.md), then
    /// `SRTP_AES128_CM_HMAC_SHA1_80`, which every WebRTC endpoint has
    /// (RFC 8827 §6.5); an MTU of 1200, WebRTC's usual safe size.
    fn default() -> DtlsConfig {
        DtlsConfig {
            profiles: vec![Profile::AeadAes128Gcm, Profile::Aes128CmSha1_80],
            mtu: 1200,
        }
    }
}

/// What happened to the association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished and the peer proved its fingerprint: SRTP
    /// may flow with these keys.
    Connected {
        /// The negotiated protection profile.
        profile: Profile,
        /// `local` protects what we send, `remote` unprotects what we get.
        keys: DtlsSrtpKeys,
    },
    /// The association failed; the endpoint sends nothing more.
    Failed(Error),
    /// The peer sent `close_notify` (RFC 5246 §7.2.1).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    /// Closed by us or by the peer's close_notify.
    Closed,
    Failed,
}

/// One DTLS association, sans-IO. See the crate docs for the call order.
pub struct Endpoint {
    dtls: Dtls,
    role: Role,
    remote_fingerprint: [u8; 32],
    /// The shared configuration: the profiles we allow, dimpl's `Config`.
    context: DtlsContext,
    state: State,
    deadline: Instant,
    /// dimpl reported `Connected`; we report it once the checks passed.
    dimpl_connected: bool,
    peer_verified: bool,
    keys: Option<(Profile, DtlsSrtpKeys)>,
    /// dimpl's next timer.
    timer: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    /// Emptied transmit buffers, reused so a retransmission allocates nothing.
    spare: Vec<Vec<u8>>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
}

impl Endpoint {
    /// A new association. A client queues its ClientHello at once; a
    /// server waits for one. `remote_fingerprint` is the SHA-256 from the
    /// peer's SDP.
    ///
    /// The validated dimpl configuration comes from
    /// [`DtlsContext::shared`]: built on the first call with this
    /// `config`, shared after that. An owner that makes many endpoints
    /// can keep a [`DtlsContext`] and call [`Self::with_context`], which
    /// takes no lock.
    pub fn new(
        now: Instant,
        role: Role,
        cert: &Certificate,
        remote_fingerprint: [u8; 32],
        config: &DtlsConfig,
    ) -> Result<Endpoint, Error> {
        let context = DtlsContext::shared(config)?;
        Endpoint::with_context(now, role, cert, remote_fingerprint, &context)
    }

    /// [`Self::new`] with a context built beforehand: every endpoint made
    /// from `context` (or its clones) shares its dimpl configuration.
    pub fn with_context(
        now: Instant,
        role: Role,
        cert: &Certificate,
        remote_fingerprint: [u8; 32],
        context: &DtlsContext,
    ) -> Result<Endpoint, Error> {
        let mut dtls = Dtls::new_12(context.dimpl(), cert.dtls(), now);
        if role == Role::Client {
            dtls.set_active(true);
        }
        let mtu = context.config().mtu;
        let mut endpoint = Endpoint {
            dtls,
            role,
            remote_fingerprint,
            context: context.clone(),
            state: State::Handshaking,
            deadline: now + HANDSHAKE_TIMEOUT,
            dimpl_connected: false,
            peer_verified: false,
            keys: None,
            timer: None,
            transmits: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            scratch: vec![0; mtu.max(RECORD_HEADER_LEN)],
        };
        if let Err(e) = endpoint.dtls.handle_timeout(now) {
            return Err(map_error(e));
        }
        endpoint.drain();
        Ok(endpoint)
    }

    /// A datagram from the peer (RFC 7983 classified it as DTLS).
    ///
    /// `Err(Malformed)` refuses a datagram that is not DTLS 1.2 record
    /// framing and leaves the association alone; `Err(Closed)` says the
    /// association is over. Any other error ended the association and is
    /// also reported once as [`Event::Failed`].
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::Closed | State::Failed) {
            return Err(Error::Closed);
        }
        if !is_record_framing(datagram) {
            return Err(Error::Malformed);
        }
        if self.state == State::Handshaking && now >= self.deadline {
            self.fail(Error::HandshakeTimeout);
            return Err(Error::HandshakeTimeout);
        }
        // dimpl wants its logical clock advanced before input at a new instant.
        let result = self
            .dtls
            .handle_timeout(now)
            .and_then(|()| self.dtls.handle_packet(datagram));
        if let Err(e) = result {
            let e = map_error(e);
            self.fail(e.clone());
            return Err(e);
        }
        self.drain();
        match self.events.back() {
            Some(Event::Failed(e)) if self.state == State::Failed => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Retransmissions and the handshake deadline. Call at
    /// [`Self::poll_timeout`] (earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Failed) {
            return;
        }
        if self.state == State::Handshaking && now >= self.deadline {
            self.fail(Error::HandshakeTimeout);
            return;
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(map_error(e));
            return;
        }
        self.drain();
    }

    /// The next datagram to send: `buf` is cleared and then holds it;
    /// returns its length.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        let datagram = self.transmits.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&datagram);
        self.spare.push(datagram);
        Some(buf.len())
    }

    /// The next event, in the order they happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshaking => Some(match self.timer {
                Some(t) => t.min(self.deadline),
                None => self.deadline,
            }),
            State::Connected => self.timer,
            State::Closed | State::Failed => None,
        }
    }

    /// Ends the association: once connected, queues a `close_notify` alert
    /// (RFC 5246 §7.2.1); during the handshake it just stops.
    pub fn close(&mut self) {
        if matches!(self.state, State::Closed | State::Failed) {
            return;
        }
        self.state = State::Closed;
        if let Err(e) = self.dtls.close() {
            tracing::debug!(error = %e, "DTLS close");
        }
        self.drain();
    }

    /// Whether the handshake finished, the checks passed, and the
    /// association is neither closed nor failed.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Our DTLS role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The negotiated profile, once connected.
    pub fn profile(&self) -> Option<Profile> {
        self.keys.as_ref().map(|(p, _)| *p)
    }

    /// Collects dimpl's outputs after a mutation, until its `Timeout`.
    fn drain(&mut self) {
        let mut scratch = std::mem::take(&mut self.scratch);
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            if self.state == State::Failed {
                break;
            }
            match self.dtls.poll_output(&mut scratch) {
                Output::Timeout(t) => {
                    self.timer = Some(t);
                    break;
                }
                Output::BufferTooSmall { needed } => {
                    if needed <= scratch.len() {
                        break;
                    }
                    scratch.resize(needed, 0);
                }
                Output::Packet(datagram) => {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(datagram);
                    self.transmits.push_back(buf);
                }
                Output::PeerCert(der) => {
                    if sha256_fingerprint(der) == Some(self.remote_fingerprint) {
                        self.peer_verified = true;
                    } else {
                        tracing::debug!("DTLS peer certificate does not match the SDP fingerprint");
                        self.fail(Error::FingerprintMismatch);
                    }
                }
                Output::KeyingMaterial(material, profile) => {
                    self.on_keying_material(&material, profile);
                }
                Output::Connected => self.dimpl_connected = true,
                Output::CloseNotify if self.state != State::Closed => {
                    self.state = State::Closed;
                    self.events.push_back(Event::Closed);
                }
                Output::ApplicationData(data) => {
                    // uturn carries no data channels (SCTP over DTLS).
                    tracing::trace!(len = data.len(), "DTLS application data ignored");
                }
                _ => {}
            }
        }
        self.scratch = scratch;
        if self.state == State::Handshaking && self.dimpl_connected {
            self.on_connected();
        }
    }

    fn on_keying_material(&mut self, material: &[u8], profile: SrtpProfile) {
        let Some(profile) = from_dimpl(profile).filter(|p| self.context.profiles().contains(p))
        else {
            self.fail(Error::NoCommonProfile);
            return;
        };
        match DtlsSrtpKeys::from_exporter(profile, self.role, material) {
            Ok(keys) => self.keys = Some((profile, keys)),
            Err(e) => self.fail(Error::Protocol(format!("SRTP key export: {e}"))),
        }
    }

    fn on_connected(&mut self) {
        if !self.peer_verified {
            // dimpl requires a certificate of both sides, so this means a
            // library change, not a peer's doing; refuse all the same.
            self.fail(Error::Certificate("the peer sent no certificate".into()));
            return;
        }
        let Some((profile, keys)) = self.keys.clone() else {
            // The handshake finished without use_srtp (RFC 5764 §4.1.1).
            self.fail(Error::NoCommonProfile);
            return;
        };
        self.state = State::Connected;
        self.events.push_back(Event::Connected { profile, keys });
    }

    /// Ends the association with `error`: reported once, queued datagrams
    /// dropped, nothing sent from now on.
    fn fail(&mut self, error: Error) {
        if self.state == State::Failed {
            return;
        }
        tracing::debug!(%error, "DTLS association failed");
        self.state = State::Failed;
        self.timer = None;
        while let Some(buf) = self.transmits.pop_front() {
            self.spare.push(buf);
        }
        self.events.push_back(Event::Failed(error));
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("profile", &self.profile())
            .field("queued", &self.transmits.len())
            .finish_non_exhaustive()
    }
}

fn from_dimpl(profile: SrtpProfile) -> Option<Profile> {
    match profile {
        SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
        SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
        // AES-256-GCM and anything newer: uturn-srtp has no such profile.
        _ => None,
    }
}

fn map_error(e: dimpl::Error) -> Error {
    match e {
        dimpl::Error::Timeout(_) => Error::HandshakeTimeout,
        dimpl::Error::ConnectionClosed => Error::Closed,
        dimpl::Error::CertificateError(e) => Error::Certificate(e.to_string()),
        other => Error::Protocol(other.to_string()),
    }
}

/// Whether `datagram` is one or more whole DTLS records of the types
/// DTLS 1.2 uses (RFC 6347 §4.1: change_cipher_spec 20, alert 21,
/// handshake 22, application_data 23) with major version 254 (DTLS). A
/// ClientHello record may say DTLS 1.0 (RFC 6347 §4.2.1), so the minor
/// version is not checked.
fn is_record_framing(mut datagram: &[u8]) -> bool {
    if datagram.is_empty() {
        return false;
    }
    while !datagram.is_empty() {
        let Some(&[content_type, major, _minor, _, _, _, _, _, _, _, _, len_hi, len_lo]) =
            datagram.get(..RECORD_HEADER_LEN)
        else {
            return false;
        };
        if !(20..=23).contains(&content_type) || major != 0xFE {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        match datagram.get(RECORD_HEADER_LEN + len..) {
            Some(rest) => datagram = rest,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::context::to_dimpl;

    #[test]
    fn framing_accepts_whole_records() {
        let mut two = vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2];
        two.extend_from_slice(&[21, 0xFE, 0xFF, 0, 1, 0, 0, 0, 0, 0, 5, 0, 0]);
        assert!(is_record_framing(&two));
    }

    #[test]
    fn framing_refuses_garbage() {
        assert!(!is_record_framing(&[]));
        assert!(!is_record_framing(&[22, 0xFE, 0xFD]));
        // Length runs past the end.
        assert!(!is_record_framing(&[
            22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1
        ]));
        // Heartbeat (24) and unknown types are not DTLS 1.2 for us.
        assert!(!is_record_framing(&[
            24, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
        // TLS, not DTLS.
        assert!(!is_record_framing(&[
            22, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
        // A trailing partial header.
        assert!(!is_record_framing(&[
            22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 22
        ]));
    }

    #[test]
    fn profile_mapping_round_trips() {
        for p in [Profile::AeadAes128Gcm, Profile::Aes128CmSha1_80] {
            assert_eq!(to_dimpl(p).and_then(from_dimpl), Some(p));
        }
        assert_eq!(to_dimpl(Profile::Aes128CmSha1_32), None);
        assert_eq!(from_dimpl(SrtpProfile::AEAD_AES_256_GCM), None);
    }

    #[test]
    fn config_without_a_dimpl_profile_is_refused() {
        let cert = Certificate::generate().unwrap();
        let config = DtlsConfig {
            profiles: vec![Profile::Aes128CmSha1_32],
            mtu: 1200,
        };
        let r = Endpoint::new(Instant::now(), Role::Server, &cert, [0; 32], &config);
        assert!(matches!(r, Err(Error::Config(_))));
    }

    #[test]
    fn endpoints_share_one_validated_config() {
        let cert = Certificate::generate().unwrap();
        let config = DtlsConfig::default();
        let now = Instant::now();
        let a = Endpoint::new(now, Role::Server, &cert, [1; 32], &config).unwrap();
        let b = Endpoint::new(now, Role::Client, &cert, [2; 32], &config.clone()).unwrap();
        assert!(a.context.ptr_eq(&b.context));
        assert!(Arc::ptr_eq(&a.context.dimpl(), &b.context.dimpl()));

        let context = DtlsContext::new(&config).unwrap();
        let c = Endpoint::with_context(now, Role::Server, &cert, [3; 32], &context).unwrap();
        let d = Endpoint::with_context(now, Role::Server, &cert, [4; 32], &context).unwrap();
        assert!(c.context.ptr_eq(&d.context));
        assert!(!c.context.ptr_eq(&a.context));
        // Each is its own association all the same: the client queued a
        // ClientHello, the servers nothing.
        let mut buf = Vec::new();
        let mut b = b;
        assert!(b.poll_transmit(&mut buf).is_some());
        let mut c = c;
        assert!(c.poll_transmit(&mut buf).is_none());
    }
}
