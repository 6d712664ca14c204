//! The per-datagram forwarding decision: what the worker does with a
//! datagram without asking the control plane.
//!
//! - ChannelData from a client (RFC 8656 §12.6) leaves the channel's relay
//!   socket as a plain UDP datagram to the bound peer (payload only; padding,
//!   if any, is not part of it).
//! - A Send indication from a client (RFC 8656 §11.2) leaves the allocation's
//!   relay socket to XOR-PEER-ADDRESS when the table has a permission for the
//!   peer's IP and the peer filter allows the peer's transport address.
//! - A datagram from a peer on a relay socket (RFC 8656 §11.3) goes to the
//!   client as ChannelData when a channel is bound to the peer (§12.7), else as
//!   a Data indication (§11.4), if the peer's IP has a permission.
//! - Any other STUN message from a client is for the control plane
//!   ([`Verdict::SlowPath`]: the TURN server, or the media engine for an ICE
//!   check).
//! - DTLS and RTP/RTCP on a listener (RFC 7983) belong to the WebRTC media
//!   relay ([`Verdict::Media`]) when the worker runs one; everything else is
//!   dropped and counted.
//!
//! Nothing here allocates or reads a clock. ChannelData towards the client is
//! queued as two parts (the 4-byte header and the received payload) so the
//! payload is copied only once, into the send queue. A Data indication has to
//! be written whole (its attributes precede the data), into one scratch buffer
//! per worker. Its transaction ID comes from a small per-worker PRNG seeded once
//! from the OS: an indication is never answered, so the ID only has to be
//! unpredictable enough that it cannot be mistaken for a client's transaction.

use std::net::SocketAddr;
use std::sync::Arc;

use uturn_stun::{classify, fastpath as wire, ChannelData, PacketKind, TransactionId};
use uturn_turn::PeerFilter;

use crate::io::{RecvMeta, Sender, SocketId};
use crate::metrics::{Counters, Direction, DropReason};
use crate::table::{SendRefused, Table};

/// STUN message type of a Send indication: method 0x006, class indication
/// (RFC 8656 §17, RFC 8489 §5 for the class bits).
const SEND_INDICATION_TYPE: [u8; 2] = [0x00, 0x16];

/// Largest UDP payload (65535 − 8-byte UDP header) plus room for a Data
/// indication's header and attributes (RFC 8656 §11.4: 20 + XOR-PEER-ADDRESS
/// (24 for IPv6) + DATA header 4 + padding 3).
const SCRATCH_LEN: usize = 65_535 + 64;

/// A datagram to queue: `parts` concatenated, from `socket` to `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward<'a> {
    /// The socket to send from.
    pub socket: SocketId,
    /// Where to.
    pub dest: SocketAddr,
    /// Header (may be empty) and payload.
    pub parts: [&'a [u8]; 2],
    /// Application bytes carried (for counters).
    pub payload_len: usize,
    /// For counters.
    pub direction: Direction,
}

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Queue this datagram.
    Forward(Forward<'a>),
    /// Give the datagram to `Server::handle_datagram`.
    SlowPath,
    /// DTLS or RTP/RTCP on a listener: the media engine's.
    Media,
    /// Drop it, counted under this reason.
    Drop(DropReason),
}

/// What the worker still has to do after [`FastPath::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded or dropped; nothing left to do.
    Done,
    /// A STUN message for the control plane.
    SlowPath,
    /// DTLS or RTP/RTCP for the media engine (only with
    /// [`FastPath::with_media`]).
    Media,
}

/// One worker's fast path: the peer filter, the scratch buffer for Data
/// indications and the transaction-ID generator.
#[derive(Debug)]
pub struct FastPath {
    filter: Arc<PeerFilter>,
    scratch: Box<[u8]>,
    channel_header: [u8; 4],
    rng: SplitMix64,
    /// Whether DTLS and RTP/RTCP on listeners go to a media engine.
    media: bool,
}

impl FastPath {
    /// A fast path checking Send indications against `filter`, with its
    /// PRNG seeded from the OS.
    pub fn new(filter: Arc<PeerFilter>) -> Self {
        Self::with_seed(filter, rand::random())
    }

    /// As [`FastPath::new`] with a fixed PRNG seed (tests, benchmarks).
    pub fn with_seed(filter: Arc<PeerFilter>, seed: u64) -> Self {
        Self {
            filter,
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
            channel_header: [0; 4],
            rng: SplitMix64(seed),
            media: false,
        }
    }

    /// Hands DTLS and RTP/RTCP on listeners to the worker's media engine
    /// ([`Verdict::Media`]) instead of dropping them.
    pub fn with_media(mut self, media: bool) -> Self {
        self.media = media;
        self
    }

    /// Decides, queues the forward on `sender` and counts it. Returns
    /// [`Verdict::SlowPath`] for datagrams the control plane must see.
    #[inline]
    pub fn handle(
        &mut self,
        table: &Table,
        counters: &Counters,
        meta: &RecvMeta,
        data: &[u8],
        sender: &mut Sender<'_>,
    ) -> Verdict {
        match self.decide(table, meta.socket, meta.source, data) {
            Decision::Forward(f) => {
                sender.send(f.socket, f.dest, &f.parts);
                counters.forwarded(f.direction, f.payload_len);
                Verdict::Done
            }
            Decision::SlowPath => Verdict::SlowPath,
            Decision::Media => Verdict::Media,
            Decision::Drop(reason) => {
                counters.drop(reason);
                Verdict::Done
            }
        }
    }

    /// The decision alone, without sending (pure; used by tests and benches).
    /// `socket` and `source` are where the datagram arrived and who sent it.
    #[inline]
    pub fn decide<'a>(
        &'a mut self,
        table: &Table,
        socket: SocketId,
        source: SocketAddr,
        data: &'a [u8],
    ) -> Decision<'a> {
        if table.is_listener(socket) {
            self.client_datagram(table, socket, source, data)
        } else {
            // A relay socket, or one closed while its datagrams were queued:
            // `peer_to_client` refuses the latter (one look-up for both).
            self.peer_datagram(table, socket, source, data)
        }
    }

    fn client_datagram<'a>(
        &'a mut self,
        table: &Table,
        listener: SocketId,
        client: SocketAddr,
        data: &'a [u8],
    ) -> Decision<'a> {
        match classify(data) {
            PacketKind::ChannelData => {
                let Ok(frame) = ChannelData::parse(data) else {
                    return Decision::Drop(DropReason::Malformed);
                };
                let Some(to) = table.channel_to_peer(listener, client, frame.channel()) else {
                    return Decision::Drop(DropReason::NoChannel);
                };
                let payload = frame.payload();
                Decision::Forward(Forward {
                    socket: to.relay,
                    dest: to.peer,
                    parts: [&[], payload],
                    payload_len: payload.len(),
                    direction: Direction::ToPeer,
                })
            }
            PacketKind::Stun if data.get(..2) == Some(&SEND_INDICATION_TYPE[..]) => {
                let Ok((peer, payload)) = wire::parse_send_indication(data) else {
                    return Decision::Drop(DropReason::Malformed);
                };
                let to = match table.send_to_peer(listener, client, peer) {
                    Ok(to) => to,
                    // No allocation, no relay of the peer's family and no
                    // permission all mean "not permitted" (RFC 8656 §11.2:
                    // the indication is silently discarded).
                    Err(SendRefused::NoAllocation)
                    | Err(SendRefused::FamilyMismatch)
                    | Err(SendRefused::NoPermission) => {
                        return Decision::Drop(DropReason::NoPermission)
                    }
                };
                // The table's permission is per IP (checked by the control
                // plane with `check_ip`); the port can still point at one
                // of our own listeners or relay ports.
                if self.filter.check_addr(peer).is_err() {
                    return Decision::Drop(DropReason::PeerDenied);
                }
                Decision::Forward(Forward {
                    socket: to.relay,
                    dest: to.peer,
                    parts: [&[], payload],
                    payload_len: payload.len(),
                    direction: Direction::ToPeer,
                })
            }
            PacketKind::Stun => Decision::SlowPath,
            PacketKind::Dtls | PacketKind::Rtp if self.media => Decision::Media,
            _ => Decision::Drop(DropReason::Unrecognized),
        }
    }

    fn peer_datagram<'a>(
        &'a mut self,
        table: &Table,
        relay: SocketId,
        peer: SocketAddr,
        data: &'a [u8],
    ) -> Decision<'a> {
        let Ok(to) = table.peer_to_client(relay, peer) else {
            return Decision::Drop(DropReason::NoPermission);
        };
        match to.channel {
            Some(channel) => {
                // A UDP payload always fits the 16-bit length; a larger one
                // cannot have been received.
                let Ok(len) = u16::try_from(data.len()) else {
                    return Decision::Drop(DropReason::Malformed);
                };
                self.channel_header = ChannelData::header(channel, len);
                Decision::Forward(Forward {
                    socket: to.listener,
                    dest: to.client,
                    parts: [&self.channel_header, data],
                    payload_len: data.len(),
                    direction: Direction::ToClient,
                })
            }
            None => {
                let tid = TransactionId(self.rng.transaction_id());
                match wire::write_data_indication(&mut self.scratch, &tid, peer, data) {
                    Ok(len) => match self.scratch.get(..len) {
                        Some(message) => Decision::Forward(Forward {
                            socket: to.listener,
                            dest: to.client,
                            parts: [message, &[]],
                            payload_len: data.len(),
                            direction: Direction::ToClient,
                        }),
                        None => Decision::Drop(DropReason::Malformed),
                    },
                    // Only a datagram too large to wrap in a STUN message
                    // (the 16-bit message length) ends here.
                    Err(_) => Decision::Drop(DropReason::Malformed),
                }
            }
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number
/// generators", 2014): two multiplies per 64 bits, enough for indication IDs.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn transaction_id(&mut self) -> [u8; 12] {
        let a = self.next().to_le_bytes();
        let b = self.next().to_le_bytes();
        let mut id = [0; 12];
        id[..8].copy_from_slice(&a);
        id[8..].copy_from_slice(&b[..4]);
        id
    }
}

#[cfg(test)]
mod tests {
    use uturn_stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method};
    use uturn_turn::{AllocationId, FiveTuple, RuleChange};

    use super::*;

    const LISTENER: SocketId = SocketId(1);
    const RELAY: SocketId = SocketId(10);
    const A: AllocationId = AllocationId(1);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn client() -> SocketAddr {
        addr("127.0.0.1:5000")
    }

    fn peer() -> SocketAddr {
        addr("127.0.0.2:4000")
    }

    fn fast_path() -> FastPath {
        let filter = PeerFilter::new(vec!["127.0.0.0/8".parse().unwrap()], vec![]);
        FastPath::with_seed(Arc::new(filter), 42)
    }

    /// Allocation `A` for `client()` with a permission for `peer()`'s IP and
    /// for 10.0.0.1 (which the filter denies), channel 0x4001 bound to `peer()`.
    fn table() -> Table {
        let mut t = Table::with_seed(3);
        let listener = addr("127.0.0.1:3478");
        let relay = addr("127.0.0.1:50000");
        t.add_listener(listener, LISTENER);
        t.add_relay(relay, RELAY);
        let rules = [
            RuleChange::AddAllocation {
                allocation: A,
                client: FiveTuple {
                    client: client(),
                    server: listener,
                },
                relays: vec![relay],
            },
            RuleChange::AddPermission {
                allocation: A,
                peer: peer().ip(),
            },
            RuleChange::AddPermission {
                allocation: A,
                peer: "10.0.0.1".parse().unwrap(),
            },
            RuleChange::AddChannel {
                allocation: A,
                channel: 0x4001,
                peer: peer(),
            },
        ];
        for rule in &rules {
            assert_eq!(t.apply(rule), None);
        }
        t
    }

    fn send_indication(to: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(
            &mut out,
            Class::Indication,
            Method::SEND,
            TransactionId([9; 12]),
        );
        b.add(&Attribute::XorPeerAddress(to)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        b.finish();
        out
    }

    fn forward(d: Decision<'_>) -> (SocketId, SocketAddr, Vec<u8>, Direction) {
        match d {
            Decision::Forward(f) => (f.socket, f.dest, f.parts.concat(), f.direction),
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    #[test]
    fn channel_data_goes_to_the_bound_peer_without_padding() {
        let (t, mut fp) = (table(), fast_path());
        // 3 payload bytes, padded to 4 as a sender may do.
        let frame = [0x40, 0x01, 0x00, 0x03, b'a', b'b', b'c', 0];
        let (socket, dest, bytes, dir) = forward(fp.decide(&t, LISTENER, client(), &frame));
        assert_eq!((socket, dest, dir), (RELAY, peer(), Direction::ToPeer));
        assert_eq!(bytes, b"abc");
    }

    #[test]
    fn channel_data_refusals() {
        let (t, mut fp) = (table(), fast_path());
        let unbound = [0x40, 0x02, 0x00, 0x01, b'x'];
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &unbound),
            Decision::Drop(DropReason::NoChannel)
        );
        // Another client (no allocation) using a channel number that exists.
        let bound = [0x40, 0x01, 0x00, 0x01, b'x'];
        assert_eq!(
            fp.decide(&t, LISTENER, addr("127.0.0.1:5001"), &bound),
            Decision::Drop(DropReason::NoChannel)
        );
        let truncated = [0x40, 0x01, 0x00, 0x09, b'x'];
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &truncated),
            Decision::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn send_indication_goes_to_a_permitted_peer() {
        let (t, mut fp) = (table(), fast_path());
        let to = addr("127.0.0.2:4321");
        let msg = send_indication(to, b"hello");
        let (socket, dest, bytes, dir) = forward(fp.decide(&t, LISTENER, client(), &msg));
        assert_eq!((socket, dest, dir), (RELAY, to, Direction::ToPeer));
        assert_eq!(bytes, b"hello");
    }

    #[test]
    fn send_indication_refusals() {
        let (t, mut fp) = (table(), fast_path());
        let no_permission = send_indication(addr("127.0.0.3:1"), b"x");
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &no_permission),
            Decision::Drop(DropReason::NoPermission)
        );
        // Permitted by the table, refused by the operator's filter.
        let denied = send_indication(addr("10.0.0.1:1"), b"x");
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &denied),
            Decision::Drop(DropReason::PeerDenied)
        );
        let no_allocation = send_indication(peer(), b"x");
        assert_eq!(
            fp.decide(&t, LISTENER, addr("127.0.0.1:5001"), &no_allocation),
            Decision::Drop(DropReason::NoPermission)
        );
        let mut broken = send_indication(peer(), b"x");
        broken.truncate(broken.len() - 4);
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &broken),
            Decision::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn other_stun_goes_to_the_control_plane_and_the_rest_is_dropped() {
        let (t, mut fp) = (table(), fast_path());
        let mut binding = Vec::new();
        MessageBuilder::new(
            &mut binding,
            Class::Request,
            Method::BINDING,
            TransactionId([1; 12]),
        )
        .finish();
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &binding),
            Decision::SlowPath
        );
        let rtp = [0x80, 0x00, 0x00, 0x01];
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &rtp),
            Decision::Drop(DropReason::Unrecognized)
        );
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &[]),
            Decision::Drop(DropReason::Unrecognized)
        );
        // A socket the table does not know (a relay closed mid-batch).
        assert_eq!(
            fp.decide(&t, SocketId(77), peer(), b"late"),
            Decision::Drop(DropReason::NoPermission)
        );
    }

    #[test]
    fn with_media_dtls_and_rtp_on_listeners_go_to_the_media_engine() {
        let t = table();
        let mut fp = fast_path().with_media(true);
        let rtp = [0x80, 0x60, 0x00, 0x01];
        let dtls_client_hello = [22, 0xfe, 0xfd, 0, 0];
        for datagram in [&rtp[..], &dtls_client_hello[..]] {
            assert_eq!(fp.decide(&t, LISTENER, client(), datagram), Decision::Media);
        }
        // Not on a relay socket: a peer's RTP there is plain TURN payload.
        let relay_side = fp.decide(&t, SocketId(77), peer(), &rtp);
        assert_ne!(relay_side, Decision::Media);
        // Garbage and STUN are unchanged.
        assert_eq!(
            fp.decide(&t, LISTENER, client(), &[0xff, 1]),
            Decision::Drop(DropReason::Unrecognized)
        );
    }

    #[test]
    fn peer_on_a_channel_gets_channel_data() {
        let (t, mut fp) = (table(), fast_path());
        match fp.decide(&t, RELAY, peer(), b"pong") {
            Decision::Forward(f) => {
                assert_eq!((f.socket, f.dest), (LISTENER, client()));
                assert_eq!(f.parts[0], [0x40, 0x01, 0x00, 0x04]);
                assert_eq!(f.parts[1], b"pong");
                assert_eq!(f.payload_len, 4);
                assert_eq!(f.direction, Direction::ToClient);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peer_without_channel_gets_a_data_indication() {
        let (t, mut fp) = (table(), fast_path());
        let from = addr("127.0.0.2:4001");
        let (socket, dest, bytes, dir) = forward(fp.decide(&t, RELAY, from, b"hello"));
        assert_eq!(
            (socket, dest, dir),
            (LISTENER, client(), Direction::ToClient)
        );
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.class(), Class::Indication);
        assert_eq!(msg.method(), Method::DATA);
        let tid = msg.transaction_id();
        let peer_attr = msg.attribute(AttributeType::XOR_PEER_ADDRESS).unwrap();
        assert_eq!(
            Attribute::decode(peer_attr, &tid).unwrap(),
            Attribute::XorPeerAddress(from)
        );
        let data = msg.attribute(AttributeType::DATA).unwrap();
        assert_eq!(data.value, b"hello");

        // Each indication gets a fresh transaction ID.
        let (_, _, again, _) = forward(fp.decide(&t, RELAY, from, b"hello"));
        assert_ne!(Message::parse(&again).unwrap().transaction_id(), tid);
    }

    #[test]
    fn peer_without_permission_is_dropped() {
        let (t, mut fp) = (table(), fast_path());
        assert_eq!(
            fp.decide(&t, RELAY, addr("127.0.0.9:4000"), b"x"),
            Decision::Drop(DropReason::NoPermission)
        );
    }

    #[test]
    fn counters_follow_decisions() {
        let c = Counters::default();
        c.forwarded(Direction::ToPeer, 10);
        c.forwarded(Direction::ToPeer, 5);
        c.forwarded(Direction::ToClient, 7);
        c.drop(DropReason::PeerDenied);
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(c.to_peer_packets.load(Relaxed), 2);
        assert_eq!(c.to_peer_bytes.load(Relaxed), 15);
        assert_eq!(c.to_client_bytes.load(Relaxed), 7);
        assert_eq!(c.drops[DropReason::PeerDenied.index()].load(Relaxed), 1);
        assert_eq!(c.dropped(), 1);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
