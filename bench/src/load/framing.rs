//! How a session's client frames the data it sends through the relay:
//! ChannelData (RFC 8656 §12.4) in channel mode, a Send indication
//! (RFC 8656 §11.2) otherwise.
//!
//! The payload size is fixed for the run, so everything but the payload is
//! computed once per session: the 4-byte ChannelData header, or the Send
//! indication up to its DATA value (built with the STUN builder) plus the
//! padding after it. Each datagram is then handed to the send queue as
//! parts — header, payload, padding — with no per-packet encoding and
//! no allocation.

use std::net::SocketAddr;

use uturn_stun::channel_data::ChannelData;
use uturn_stun::{Attribute, AttributeType, Class, MessageBuilder, Method, TransactionId};

/// Zero bytes to pad a DATA value to a multiple of 4 (RFC 8489 §14).
const PADDING: [u8; 3] = [0; 3];

/// One session's framing of client → peer data.
#[derive(Debug, Clone)]
pub enum Framing {
    /// ChannelData on this channel.
    Channel { header: [u8; 4] },
    /// Send indications: the message up to the DATA value, then padding.
    Send { prefix: Vec<u8>, padding: usize },
}

impl Framing {
    /// ChannelData on `channel` for payloads of `len` bytes. Over UDP no
    /// padding is needed (RFC 8656 §12.5). `None` if `len` does not fit
    /// the 16-bit length field.
    pub fn channel(channel: u16, len: usize) -> Option<Framing> {
        let len = u16::try_from(len).ok()?;
        Some(Framing::Channel {
            header: ChannelData::header(channel, len),
        })
    }

    /// Send indications to `peer` for payloads of `len` bytes. `None` when
    /// the message would be too long.
    pub fn send(peer: SocketAddr, len: usize) -> Option<Framing> {
        let mut out = Vec::with_capacity(64 + len);
        let zeros = vec![0u8; len];
        // A fixed transaction ID per session: indications are not
        // transactions (RFC 8489 §6.3 only asks for uniqueness of
        // requests), and a fixed one keeps the datagram precomputed.
        let mut b = MessageBuilder::new(
            &mut out,
            Class::Indication,
            Method::SEND,
            TransactionId(rand::random()),
        );
        b.add(&Attribute::XorPeerAddress(peer)).ok()?;
        b.add_raw(AttributeType::DATA, &zeros).ok()?;
        b.finish();
        let padded = len.div_ceil(4) * 4;
        let cut = out.len().checked_sub(padded)?;
        out.truncate(cut);
        Some(Framing::Send {
            prefix: out,
            padding: padded - len,
        })
    }

    /// The datagram's parts around `payload` (whose length must be the one
    /// the framing was made for).
    pub fn parts<'a>(&'a self, payload: &'a [u8]) -> [&'a [u8]; 3] {
        match self {
            Framing::Channel { header } => [header, payload, &[]],
            Framing::Send { prefix, padding } => {
                [prefix, payload, PADDING.get(..*padding).unwrap_or(&[])]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uturn_stun::channel_data::CHANNEL_DATA_HEADER_LEN;

    use super::*;

    fn datagram(framing: &Framing, payload: &[u8]) -> Vec<u8> {
        framing.parts(payload).concat()
    }

    #[test]
    fn send_indication_carries_the_exact_payload() {
        let peer: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        for len in [24usize, 150, 1199, 1200] {
            let framing = Framing::send(peer, len).unwrap();
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = datagram(&framing, &payload);
            let (got_peer, got_data) = uturn_stun::fastpath::parse_send_indication(&bytes).unwrap();
            assert_eq!(got_peer, peer);
            assert_eq!(got_data, &payload[..], "exact payload size {len}");
            assert_eq!(bytes.len() % 4, 0);
        }
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let framing = Framing::send(v6, 150).unwrap();
        let bytes = datagram(&framing, &[1; 150]);
        let (got_peer, _) = uturn_stun::fastpath::parse_send_indication(&bytes).unwrap();
        assert_eq!(got_peer, v6);
    }

    #[test]
    fn channel_data_carries_the_exact_payload() {
        let payload = [7u8; 150];
        let framing = Framing::channel(0x4000, payload.len()).unwrap();
        let bytes = datagram(&framing, &payload);
        assert_eq!(bytes.len(), CHANNEL_DATA_HEADER_LEN + 150, "no padding");
        let cd = ChannelData::parse(&bytes).unwrap();
        assert_eq!(cd.channel(), 0x4000);
        assert_eq!(cd.payload(), &payload[..]);
        assert!(Framing::channel(0x4000, 70_000).is_none());
    }
}
