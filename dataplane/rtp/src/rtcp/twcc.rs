//! Transport-wide RTCP feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
//! §3.1): RTPFB (PT 205) with FMT 15, the "transport-cc" feedback a receiver
//! sends so that the media sender can run send-side bandwidth estimation.
//!
//! ```text
//! |V=2|P|  FMT=15 |    PT=205     |           length              |
//! |                     SSRC of packet sender                     |
//! |                      SSRC of media source                     |
//! |      base sequence number     |      packet status count      |
//! |                 reference time                | fb pkt. count |
//! |          packet chunk         |         packet chunk          |  ...
//! |  recv delta   |  recv delta   | ... (padding to 32 bits)
//! ```
//!
//! Each of the `packet status count` transport-wide sequence numbers from
//! `base sequence number` on gets a status symbol (§3.1.1): not received
//! (00), received with a small delta (01: one octet, 0..=255 × 250 µs) or
//! with a large or negative one (10: two octets, signed, × 250 µs). The
//! symbols are packed in 16-bit chunks, run-length (§3.1.3: `0|S(2)|run
//! length(13)`) or status vector (§3.1.4: `1|0|14 one-bit symbols` or
//! `1|1|7 two-bit symbols`); then one receive delta per received packet, in
//! sequence-number order. The first delta counts from the reference time
//! (24 bits, × 64 ms), each later one from the previous received packet.
//!
//! - [`write_transport_feedback`] writes one message for a run of arrivals,
//!   as much of the run as fits: the caller's buffer (the size cap), the
//!   16-bit status count, and deltas that fit 16 bits. The caller writes
//!   the rest of the run in further messages.
//! - [`TransportFeedback`] is the checked view that reads one back.
//!
//! Times are microseconds on the receiver's own clock (any epoch). The wire
//! carries 250 µs ticks, so an arrival time comes back rounded down to a
//! multiple of 250 µs, and modulo 2^24 × 64 ms (about 12.4 days), the
//! reference time's range.

use super::{packet_type, split_packet, write_header, HEADER_LEN};
use crate::Error;

/// The FMT of transport-wide feedback in RTPFB (draft §3.1).
pub const FMT: u8 = 15;
/// Octets before the first packet chunk: RTCP header, both SSRCs, base
/// sequence number, status count, reference time, feedback packet count.
pub const FIXED_LEN: usize = HEADER_LEN + 16;
/// Microseconds per unit of the reference time (draft §3.1: 64 ms).
pub const REFERENCE_TIME_US: u64 = 64_000;
/// Microseconds per unit of a receive delta (draft §3.1.5: 250 µs).
pub const DELTA_US: u64 = 250;
/// Delta ticks per reference-time unit.
const TICKS_PER_REFERENCE: i64 = (REFERENCE_TIME_US / DELTA_US) as i64;
/// The reference time is a 24-bit field.
const REFERENCE_MASK: u64 = 0x00ff_ffff;
/// The longest run a run-length chunk can say (13 bits, draft §3.1.3).
const MAX_RUN: u16 = 0x1fff;
/// Symbols in a one-bit and in a two-bit status vector chunk (draft §3.1.4).
const ONE_BIT_SYMBOLS: usize = 14;
const TWO_BIT_SYMBOLS: usize = 7;

/// Packet status symbols (draft §3.1.1).
mod symbol {
    pub const NOT_RECEIVED: u8 = 0;
    pub const SMALL_DELTA: u8 = 1;
    pub const LARGE_DELTA: u8 = 2;
}

/// The fixed fields of one feedback message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackHeader {
    /// Our SSRC (RFC 4585 §6.1 "SSRC of packet sender").
    pub sender_ssrc: u32,
    /// The SSRC of one of the media sender's streams (the draft does not
    /// use it; libwebrtc puts the first media SSRC there).
    pub media_ssrc: u32,
    /// Transport-wide sequence number of the first arrival in the run.
    pub base_sequence: u16,
    /// Counts feedback messages sent, modulo 256, so that the media sender
    /// can tell lost feedback from none (draft §3.1).
    pub feedback_count: u8,
}

/// What [`write_transport_feedback`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Octets of the message, padding included (a multiple of 4).
    pub len: usize,
    /// How many leading entries of the run the message reports; the rest
    /// go in the next message, with `base_sequence + packets` as its base.
    pub packets: usize,
}

/// Writes one transport-wide feedback message into `dst` for the run of
/// transport-wide sequence numbers `header.base_sequence + i`, where
/// `arrivals[i]` is when that packet arrived (µs on our clock; see the
/// module docs) or `None` if it did not.
///
/// The message reports the longest prefix of the run that fits in
/// `dst.len()` octets (pass a slice as long as the size cap), in the
/// 16-bit status count, and whose receive deltas fit 16 bits (a packet
/// arriving more than about 8 s before or after the previous one starts
/// the next message instead). The reference time is taken from the first
/// packet received in the message, so its first delta is always small.
///
/// Errors: [`Error::BadLength`] for an empty run, [`Error::BufferTooSmall`]
/// if not even the first entry fits.
pub fn write_transport_feedback(
    dst: &mut [u8],
    header: &FeedbackHeader,
    arrivals: &[Option<u64>],
) -> Result<Written, Error> {
    if arrivals.is_empty() {
        return Err(Error::BadLength);
    }
    let reference = arrivals
        .iter()
        .flatten()
        .next()
        .map_or(0, |&t| t / REFERENCE_TIME_US);
    let cap = dst.len().min(4 * (usize::from(u16::MAX) + 1));

    // Pass 1: how many entries fit, by running the chunk encoder over the
    // prefix and counting what finishing it would take after each entry.
    let mut encoder = ChunkEncoder::default();
    let mut chunks = 0usize;
    let mut delta_octets = 0usize;
    let mut deltas = DeltaClock::new(reference);
    let mut packets = 0usize;
    for arrival in arrivals.iter().take(usize::from(u16::MAX)) {
        let Some(symbol) = deltas.symbol(*arrival) else {
            break; // the delta does not fit 16 bits
        };
        let mut after = encoder;
        let mut emitted = 0usize;
        after.push(symbol, |_| emitted += 1);
        let pending = after.finish_len();
        let delta_len = match symbol {
            symbol::SMALL_DELTA => 1,
            symbol::LARGE_DELTA => 2,
            _ => 0,
        };
        let len = padded(FIXED_LEN + 2 * (chunks + emitted + pending) + delta_octets + delta_len);
        if len > cap {
            break;
        }
        encoder = after;
        chunks += emitted;
        delta_octets += delta_len;
        deltas.advance(*arrival);
        packets += 1;
    }
    if packets == 0 {
        return Err(Error::BufferTooSmall);
    }
    let chunks = chunks + encoder.finish_len();
    let unpadded = FIXED_LEN + 2 * chunks + delta_octets;
    let len = padded(unpadded);
    let out = dst.get_mut(..len).ok_or(Error::BufferTooSmall)?;

    // Pass 2: the same encoding, written.
    let (fixed, body) = out.split_at_mut(FIXED_LEN);
    let (chunk_area, delta_area) = body.split_at_mut(2 * chunks);
    let mut chunk_at = 0usize;
    let mut write_chunk = |chunk: u16| {
        if let Some(slot) = chunk_area.get_mut(chunk_at..chunk_at + 2) {
            slot.copy_from_slice(&chunk.to_be_bytes());
        }
        chunk_at += 2;
    };
    let mut encoder = ChunkEncoder::default();
    let mut deltas = DeltaClock::new(reference);
    let mut delta_at = 0usize;
    for arrival in arrivals.iter().take(packets) {
        // Pass 1 accepted every one of these entries.
        let symbol = deltas.symbol(*arrival).unwrap_or(symbol::NOT_RECEIVED);
        let delta = deltas.advance(*arrival);
        encoder.push(symbol, &mut write_chunk);
        let bytes = delta.to_be_bytes();
        let value: &[u8] = match symbol {
            symbol::SMALL_DELTA => &bytes[1..],
            symbol::LARGE_DELTA => &bytes[..],
            _ => &[],
        };
        if let Some(slot) = delta_area.get_mut(delta_at..delta_at + value.len()) {
            slot.copy_from_slice(value);
        }
        delta_at += value.len();
    }
    encoder.finish(&mut write_chunk);
    // RFC 3550 §6.4.1 padding: zeros, the last octet counting them all.
    let padding = len - unpadded;
    if let Some(tail) = delta_area.get_mut(delta_at..) {
        tail.fill(0);
        if let Some(last) = tail.last_mut() {
            *last = padding as u8;
        }
    }

    write_header(fixed, FMT, packet_type::RTPFB, len)?;
    if padding > 0 {
        fixed[0] |= 0x20;
    }
    fixed[4..8].copy_from_slice(&header.sender_ssrc.to_be_bytes());
    fixed[8..12].copy_from_slice(&header.media_ssrc.to_be_bytes());
    fixed[12..14].copy_from_slice(&header.base_sequence.to_be_bytes());
    // At most u16::MAX entries were taken above.
    fixed[14..16].copy_from_slice(&(packets as u16).to_be_bytes());
    let reference = ((reference & REFERENCE_MASK) as u32) << 8;
    fixed[16..20].copy_from_slice(&(reference | u32::from(header.feedback_count)).to_be_bytes());
    Ok(Written { len, packets })
}

/// `len` rounded up to a whole number of 32-bit words.
fn padded(len: usize) -> usize {
    len.next_multiple_of(4)
}

/// The receive-delta arithmetic of the writer: times become 250 µs ticks
/// and each delta counts from the previous received packet, so rounding
/// never accumulates.
#[derive(Debug, Clone, Copy)]
struct DeltaClock {
    previous_ticks: i64,
}

impl DeltaClock {
    fn new(reference: u64) -> DeltaClock {
        DeltaClock {
            previous_ticks: reference as i64 * TICKS_PER_REFERENCE,
        }
    }

    fn ticks(arrival: u64) -> i64 {
        (arrival / DELTA_US) as i64
    }

    /// The status symbol of `arrival`, or `None` if its delta does not fit.
    fn symbol(&self, arrival: Option<u64>) -> Option<u8> {
        let Some(arrival) = arrival else {
            return Some(symbol::NOT_RECEIVED);
        };
        match Self::ticks(arrival) - self.previous_ticks {
            0..=255 => Some(symbol::SMALL_DELTA),
            d if i16::try_from(d).is_ok() => Some(symbol::LARGE_DELTA),
            _ => None,
        }
    }

    /// Moves past `arrival`; its delta (0 if not received or out of range).
    fn advance(&mut self, arrival: Option<u64>) -> i16 {
        let Some(arrival) = arrival else {
            return 0;
        };
        let ticks = Self::ticks(arrival);
        let delta = i16::try_from(ticks - self.previous_ticks).unwrap_or_default();
        self.previous_ticks = ticks;
        delta
    }
}

/// Packs status symbols into chunks as they come. Up to 14 pending symbols
/// are held; a new symbol joins them while some chunk can still carry them
/// all (a two-bit vector any 7, a one-bit vector 14 without a large delta,
/// a run-length chunk any number of equal ones), else one chunk is emitted
/// first: a run if they are all equal, a one-bit vector if 14 fit it, else
/// a two-bit vector of the first 7.
#[derive(Debug, Clone, Copy, Default)]
struct ChunkEncoder {
    /// The first pending symbols (all of them while there are at most 14).
    symbols: [u8; ONE_BIT_SYMBOLS],
    len: usize,
    all_equal: bool,
    has_large: bool,
}

impl ChunkEncoder {
    fn can_take(&self, symbol: u8) -> bool {
        self.len < TWO_BIT_SYMBOLS
            || (self.len < ONE_BIT_SYMBOLS && !self.has_large && symbol != symbol::LARGE_DELTA)
            || (self.all_equal && symbol == self.symbols[0] && self.len < usize::from(MAX_RUN))
    }

    fn push(&mut self, symbol: u8, mut emit: impl FnMut(u16)) {
        while !self.can_take(symbol) {
            self.emit_one(false, &mut emit);
        }
        if self.len == 0 {
            self.all_equal = true;
        } else if symbol != self.symbols[0] {
            self.all_equal = false;
        }
        self.has_large |= symbol == symbol::LARGE_DELTA;
        if let Some(slot) = self.symbols.get_mut(self.len) {
            *slot = symbol;
        }
        self.len += 1;
    }

    /// Emits the chunks that carry every pending symbol.
    fn finish(&mut self, mut emit: impl FnMut(u16)) {
        while self.len > 0 {
            self.emit_one(true, &mut emit);
        }
    }

    /// How many chunks [`finish`](Self::finish) would emit now.
    fn finish_len(&self) -> usize {
        let mut copy = *self;
        let mut count = 0;
        copy.finish(|_| count += 1);
        count
    }

    /// Emits one chunk, taking at least one pending symbol. A one-bit
    /// vector always carries 14 symbols to the reader, so it takes fewer
    /// only at the end of the message (`last`), where the status count
    /// tells the reader to ignore the rest.
    fn emit_one(&mut self, last: bool, emit: &mut impl FnMut(u16)) {
        if self.len == 0 {
            return;
        }
        if self.all_equal {
            // Run-length chunk (draft §3.1.3): 0 | S (2) | run length (13).
            // `len` never exceeds MAX_RUN (`can_take`).
            emit((u16::from(self.symbols[0]) << 13) | self.len as u16);
            self.len = 0;
            return;
        }
        if !self.has_large && (self.len == ONE_BIT_SYMBOLS || (last && self.len < ONE_BIT_SYMBOLS))
        {
            // One-bit status vector (draft §3.1.4): 1 | 0 | 14 symbols.
            let mut chunk = 0x8000u16;
            for (i, s) in self.symbols.iter().take(self.len).enumerate() {
                chunk |= u16::from(*s & 1) << (13 - i);
            }
            emit(chunk);
            self.len = 0;
            return;
        }
        // Two-bit status vector: 1 | 1 | 7 symbols, the first 7 pending.
        let take = self.len.min(TWO_BIT_SYMBOLS);
        let mut chunk = 0xc000u16;
        for (i, s) in self.symbols.iter().take(take).enumerate() {
            chunk |= u16::from(*s & 3) << (12 - 2 * i);
        }
        emit(chunk);
        self.symbols.copy_within(take.., 0);
        self.len -= take;
        let rest = &self.symbols[..self.len];
        self.all_equal = rest.iter().all(|s| Some(s) == rest.first());
        self.has_large = rest.contains(&symbol::LARGE_DELTA);
    }
}

/// A checked view of one transport-wide feedback message (draft §3.1).
#[derive(Debug, Clone, Copy)]
pub struct TransportFeedback<'a> {
    sender_ssrc: u32,
    media_ssrc: u32,
    base_sequence: u16,
    status_count: u16,
    reference_time: u32,
    feedback_count: u8,
    /// The packet chunks that carry the `status_count` symbols.
    chunks: &'a [u8],
    /// The receive deltas, exactly as many octets as the symbols say.
    deltas: &'a [u8],
}

impl<'a> TransportFeedback<'a> {
    /// Checks one RTCP packet (header included; nothing after it): RTPFB
    /// with FMT 15, a length field that matches, RFC 3550 padding, enough
    /// chunks for the status count, no reserved symbol (11) among them,
    /// and a receive delta for every received packet.
    pub fn parse(packet: &'a [u8]) -> Result<TransportFeedback<'a>, Error> {
        let (packet, rest) = split_packet(packet)?;
        if !rest.is_empty() {
            return Err(Error::BadLength);
        }
        let header: &[u8; HEADER_LEN] = packet.first_chunk().ok_or(Error::Truncated)?;
        if header[1] != packet_type::RTPFB || header[0] & 0x1f != FMT {
            return Err(Error::BadLength);
        }
        let body = super::unpadded_body(header[0], packet)?;
        let (fixed, mut rest) = body
            .split_first_chunk::<{ FIXED_LEN - HEADER_LEN }>()
            .ok_or(Error::BadLength)?;
        let word = |at: usize| {
            u32::from_be_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]])
        };
        let status_count = u16::from_be_bytes([fixed[10], fixed[11]]);
        if status_count == 0 {
            return Err(Error::BadLength);
        }
        // Walk the chunks until they carry `status_count` symbols, counting
        // the delta octets those symbols need.
        let mut symbols = 0usize;
        let mut delta_len = 0usize;
        let mut chunk_len = 0usize;
        while symbols < usize::from(status_count) {
            let (chunk, after) = rest.split_first_chunk::<2>().ok_or(Error::Truncated)?;
            rest = after;
            chunk_len += 2;
            let chunk = Chunk::new(u16::from_be_bytes(*chunk));
            let take = chunk.len().min(usize::from(status_count) - symbols);
            for i in 0..take {
                delta_len += match chunk.symbol(i) {
                    symbol::NOT_RECEIVED => 0,
                    symbol::SMALL_DELTA => 1,
                    symbol::LARGE_DELTA => 2,
                    _ => return Err(Error::BadLength), // reserved (11)
                };
            }
            symbols += take;
        }
        let deltas = rest.get(..delta_len).ok_or(Error::Truncated)?;
        // Up to three octets of zero fill without the P bit are tolerated.
        if rest.len() - delta_len > 3 {
            return Err(Error::BadLength);
        }
        let chunks = body
            .get(FIXED_LEN - HEADER_LEN..FIXED_LEN - HEADER_LEN + chunk_len)
            .ok_or(Error::Truncated)?;
        Ok(TransportFeedback {
            sender_ssrc: word(0),
            media_ssrc: word(4),
            base_sequence: u16::from_be_bytes([fixed[8], fixed[9]]),
            status_count,
            reference_time: word(12) >> 8,
            feedback_count: fixed[15],
            chunks,
            deltas,
        })
    }

    pub fn sender_ssrc(&self) -> u32 {
        self.sender_ssrc
    }

    pub fn media_ssrc(&self) -> u32 {
        self.media_ssrc
    }

    /// The transport-wide sequence number of the first reported packet.
    pub fn base_sequence(&self) -> u16 {
        self.base_sequence
    }

    /// How many sequence numbers the message reports.
    pub fn status_count(&self) -> u16 {
        self.status_count
    }

    /// The 24-bit reference time, in units of 64 ms.
    pub fn reference_time(&self) -> u32 {
        self.reference_time
    }

    pub fn feedback_count(&self) -> u8 {
        self.feedback_count
    }

    /// Every reported sequence number with its receive delta in 250 µs
    /// units (`None`: not received), in sequence-number order.
    pub fn packets(&self) -> Packets<'a> {
        Packets {
            chunks: self.chunks,
            deltas: self.deltas,
            sequence: self.base_sequence,
            remaining: self.status_count,
            chunk: None,
            index: 0,
        }
    }

    /// Every reported sequence number with its arrival time in µs
    /// (`None`: not received), counted from the epoch of the 24-bit
    /// reference time: the writer's time modulo 2^24 × 64 ms, rounded
    /// down to 250 µs.
    pub fn arrivals(&self) -> impl Iterator<Item = (u16, Option<i64>)> + 'a {
        let mut ticks = i64::from(self.reference_time) * TICKS_PER_REFERENCE;
        self.packets().map(move |p| {
            let at = p.delta.map(|d| {
                ticks += i64::from(d);
                ticks * DELTA_US as i64
            });
            (p.sequence, at)
        })
    }
}

/// One reported sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketReport {
    pub sequence: u16,
    /// Receive delta in 250 µs units from the previous received packet
    /// (the first from the reference time); `None`: not received.
    pub delta: Option<i16>,
}

/// Iterator over the packets of a [`TransportFeedback`].
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    chunks: &'a [u8],
    deltas: &'a [u8],
    sequence: u16,
    remaining: u16,
    chunk: Option<Chunk>,
    index: usize,
}

impl Iterator for Packets<'_> {
    type Item = PacketReport;

    fn next(&mut self) -> Option<PacketReport> {
        if self.remaining == 0 {
            return None;
        }
        let chunk = match self.chunk {
            Some(chunk) if self.index < chunk.len() => chunk,
            _ => loop {
                // A run of length zero carries no symbol (the parser
                // accepts it): skip it rather than read its symbol.
                let (raw, rest) = self.chunks.split_first_chunk::<2>()?;
                self.chunks = rest;
                self.index = 0;
                let chunk = Chunk::new(u16::from_be_bytes(*raw));
                self.chunk = Some(chunk);
                if chunk.len() > 0 {
                    break chunk;
                }
            },
        };
        let symbol = chunk.symbol(self.index);
        self.index += 1;
        let delta = match symbol {
            symbol::SMALL_DELTA => {
                let (first, rest) = self.deltas.split_first()?;
                self.deltas = rest;
                Some(i16::from(*first))
            }
            symbol::LARGE_DELTA => {
                let (two, rest) = self.deltas.split_first_chunk::<2>()?;
                self.deltas = rest;
                Some(i16::from_be_bytes(*two))
            }
            _ => None,
        };
        let report = PacketReport {
            sequence: self.sequence,
            delta,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.remaining -= 1;
        Some(report)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

/// One decoded packet chunk (draft §3.1.3, §3.1.4).
#[derive(Debug, Clone, Copy)]
struct Chunk(u16);

impl Chunk {
    fn new(raw: u16) -> Chunk {
        Chunk(raw)
    }

    /// How many symbols it carries (a run may carry none).
    fn len(self) -> usize {
        match self.0 >> 14 {
            0 | 1 => usize::from(self.0 & MAX_RUN),
            2 => ONE_BIT_SYMBOLS,
            _ => TWO_BIT_SYMBOLS,
        }
    }

    /// Symbol `i` (`i < len()`).
    fn symbol(self, i: usize) -> u8 {
        match self.0 >> 14 {
            0 | 1 => ((self.0 >> 13) & 3) as u8,
            2 => ((self.0 >> (13 - i.min(13))) & 1) as u8,
            _ => ((self.0 >> (12 - 2 * i.min(6))) & 3) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Expected bytes are worked out by hand from the draft's §3.1 layout;
    //! the comment on each line names the fields and how they were derived.

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const SENDER: u32 = 0x1111_1111;
    const MEDIA: u32 = 0x2222_2222;

    fn header(base_sequence: u16, feedback_count: u8) -> FeedbackHeader {
        FeedbackHeader {
            sender_ssrc: SENDER,
            media_ssrc: MEDIA,
            base_sequence,
            feedback_count,
        }
    }

    fn write(base: u16, arrivals: &[Option<u64>]) -> (Vec<u8>, Written) {
        let mut buf = vec![0xee; 1500];
        let written = write_transport_feedback(&mut buf, &header(base, 7), arrivals).unwrap();
        buf.truncate(written.len);
        (buf, written)
    }

    /// What the reader should give back for `arrivals` from `base`: times
    /// rounded down to 250 µs.
    fn expected(base: u16, arrivals: &[Option<u64>]) -> Vec<(u16, Option<i64>)> {
        arrivals
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let seq = base.wrapping_add(i as u16);
                (seq, a.map(|t| (t / DELTA_US * DELTA_US) as i64))
            })
            .collect()
    }

    /// Small and large (negative) deltas, a loss, a two-bit vector, padding.
    /// Arrivals 129 ms, lost, 131.5 ms, 120 ms (reordered: it arrived
    /// before the first one).
    #[test]
    fn small_large_and_lost_in_a_two_bit_vector() {
        let arrivals = [Some(129_000), None, Some(131_500), Some(120_000)];
        let (bytes, written) = write(100, &arrivals);
        // Reference time 129 000 / 64 000 = 2 (128 ms = 512 ticks). Deltas
        // in 250 µs ticks: 516 - 512 = 4 (small), lost, 526 - 516 = 10
        // (small), 480 - 526 = -46 (large: 0xffd2). Symbols 01 00 01 10:
        // a two-bit vector 11|01|00|01|10|00|00|00 = 0xd180. 20 fixed + 2
        // chunk + 4 delta octets = 26, padded to 28 (P bit, last octet 2).
        let want: [u8; 28] = [
            0xaf, 0xcd, 0x00, 0x06, // V=2 P=1 FMT=15, PT=205, length 6 words
            0x11, 0x11, 0x11, 0x11, // sender SSRC
            0x22, 0x22, 0x22, 0x22, // media SSRC
            0x00, 0x64, 0x00, 0x04, // base sequence 100, status count 4
            0x00, 0x00, 0x02, 0x07, // reference time 2 (× 64 ms), feedback count 7
            0xd1, 0x80, 0x04, 0x0a, // two-bit vector chunk, deltas 4 and 10
            0xff, 0xd2, 0x00, 0x02, // delta -46 (two octets), padding 0, 2
        ];
        assert_eq!(bytes, want);
        assert_eq!(written.packets, 4);

        let view = TransportFeedback::parse(&bytes).unwrap();
        assert_eq!(view.sender_ssrc(), SENDER);
        assert_eq!(view.media_ssrc(), MEDIA);
        assert_eq!(view.base_sequence(), 100);
        assert_eq!(view.status_count(), 4);
        assert_eq!(view.reference_time(), 2);
        assert_eq!(view.feedback_count(), 7);
        let deltas: Vec<_> = view.packets().map(|p| (p.sequence, p.delta)).collect();
        assert_eq!(
            deltas,
            [
                (100, Some(4)),
                (101, None),
                (102, Some(10)),
                (103, Some(-46))
            ]
        );
        assert_eq!(
            view.arrivals().collect::<Vec<_>>(),
            expected(100, &arrivals)
        );
    }

    /// Twenty packets 1 ms apart across the sequence-number wrap: one
    /// run-length chunk.
    #[test]
    fn run_of_received_across_the_wrap() {
        let arrivals: Vec<Option<u64>> = (0..20).map(|i| Some(1_000 + i * 1_000)).collect();
        let (bytes, written) = write(65_534, &arrivals);
        // Reference time 0; first delta 1 000 / 250 = 4 ticks, then 4 each.
        // Run-length chunk 0|01|0000000010100 = 0x2014. 20 + 2 + 20 = 42,
        // padded to 44 (two octets: 0, 2); length 10 words.
        let mut want = vec![
            0xaf, 0xcd, 0x00, 0x0a, // V=2 P=1 FMT=15, PT=205, length 10 words
            0x11, 0x11, 0x11, 0x11, // sender SSRC
            0x22, 0x22, 0x22, 0x22, // media SSRC
            0xff, 0xfe, 0x00, 0x14, // base sequence 65534, status count 20
            0x00, 0x00, 0x00, 0x07, // reference time 0, feedback count 7
            0x20, 0x14, // run-length chunk: 20 × "small delta"
        ];
        want.extend_from_slice(&[0x04; 20]); // twenty deltas of 4 ticks
        want.extend_from_slice(&[0x00, 0x02]); // padding
        assert_eq!(bytes, want);
        assert_eq!(written.packets, 20);
        let view = TransportFeedback::parse(&bytes).unwrap();
        let seqs: Vec<u16> = view.packets().map(|p| p.sequence).collect();
        assert_eq!(&seqs[..3], [65_534, 65_535, 0]);
        assert_eq!(seqs[19], 17);
        assert_eq!(
            view.arrivals().collect::<Vec<_>>(),
            expected(65_534, &arrivals)
        );
    }

    /// Received, 30 lost, received: a one-bit vector, then runs.
    #[test]
    fn losses_in_a_one_bit_vector_and_a_run() {
        let mut arrivals = vec![Some(0)];
        arrivals.extend([None; 30]);
        arrivals.push(Some(5_000));
        let (bytes, written) = write(1, &arrivals);
        // The encoder holds 14 symbols (1 then thirteen 0) as a one-bit
        // vector 1|0|10000000000000 = 0xa000, then 17 equal 0s become a run
        // 0|00|0000000010001 = 0x0011 when the 1 cannot join them, and the
        // last 1 a run of one, 0x2001. Deltas: 0 (from reference time 0),
        // then 5 000 / 250 = 20. 20 + 6 + 2 = 28: no padding.
        let want: [u8; 28] = [
            0x8f, 0xcd, 0x00, 0x06, // V=2 P=0 FMT=15, PT=205, length 6 words
            0x11, 0x11, 0x11, 0x11, // sender SSRC
            0x22, 0x22, 0x22, 0x22, // media SSRC
            0x00, 0x01, 0x00, 0x20, // base sequence 1, status count 32
            0x00, 0x00, 0x00, 0x07, // reference time 0, feedback count 7
            0xa0, 0x00, 0x00, 0x11, // one-bit vector, run of 17 "not received"
            0x20, 0x01, 0x00, 0x14, // run of 1 "small delta", deltas 0 and 20
        ];
        assert_eq!(bytes, want);
        assert_eq!(written.packets, 32);
        let view = TransportFeedback::parse(&bytes).unwrap();
        assert_eq!(view.arrivals().collect::<Vec<_>>(), expected(1, &arrivals));
        assert_eq!(view.packets().filter(|p| p.delta.is_none()).count(), 30);
    }

    /// Fourteen 0/1 symbols share one chunk; a long run needs two run
    /// chunks once it passes 8191.
    #[test]
    fn compact_chunks() {
        let mixed: Vec<Option<u64>> = (0..14u64)
            .map(|i| (i % 3 != 1).then_some(i * 1_000))
            .collect();
        let (bytes, _) = write(0, &mixed);
        let deltas = mixed.iter().flatten().count();
        assert_eq!(bytes.len(), padded(FIXED_LEN + 2 + deltas));
        assert_eq!(bytes[FIXED_LEN] >> 6, 0b10, "one-bit vector");

        let mut long = vec![None; 9_000];
        long[0] = Some(0);
        let (bytes, written) = write(0, &long);
        assert_eq!(written.packets, 9_000);
        // The received one and 13 lost in a one-bit vector (0xa000), then
        // runs of 8191 (0x1fff) and 9000 - 14 - 8191 = 795 (0x031b) lost.
        assert_eq!(
            &bytes[FIXED_LEN..FIXED_LEN + 6],
            [0xa0, 0x00, 0x1f, 0xff, 0x03, 0x1b]
        );
        let view = TransportFeedback::parse(&bytes).unwrap();
        assert_eq!(view.packets().count(), 9_000);
        assert_eq!(view.arrivals().collect::<Vec<_>>(), expected(0, &long));
    }

    /// A delta beyond 16 bits (8.19 s) ends the message; the next one
    /// starts at that packet, with its own reference time.
    #[test]
    fn delta_too_large_starts_a_new_message() {
        let arrivals = [Some(0), Some(10_000), Some(9_000_000), Some(9_001_000)];
        let (first, written) = write(10, &arrivals);
        assert_eq!(written.packets, 2);
        let view = TransportFeedback::parse(&first).unwrap();
        assert_eq!(view.status_count(), 2);
        let (second, written) = write(12, &arrivals[2..]);
        assert_eq!(written.packets, 2);
        let view = TransportFeedback::parse(&second).unwrap();
        assert_eq!(view.base_sequence(), 12);
        // 9 000 000 / 64 000 = 140 (8.96 s); first delta 40 ms = 160 ticks.
        assert_eq!(view.reference_time(), 140);
        let deltas: Vec<_> = view.packets().map(|p| p.delta).collect();
        assert_eq!(deltas, [Some(160), Some(4)]);

        // Negative beyond -8192 ms too.
        let arrivals = [Some(20_000_000), Some(1_000_000)];
        let (_, written) = write(0, &arrivals);
        assert_eq!(written.packets, 1);
        // Within range, negative: a large delta.
        let arrivals = [Some(20_000_000), Some(19_000_000)];
        let (bytes, written) = write(0, &arrivals);
        assert_eq!(written.packets, 2);
        let deltas: Vec<_> = TransportFeedback::parse(&bytes)
            .unwrap()
            .packets()
            .map(|p| p.delta)
            .collect();
        // 20 000 000 µs = 312 × 64 ms + 32 ms: first delta 128 ticks.
        assert_eq!(deltas, [Some(128), Some(-4_000)]);
    }

    /// A run larger than the buffer is split; every message fits and
    /// together they report the run exactly.
    #[test]
    fn size_cap_splits_the_run() {
        let arrivals: Vec<Option<u64>> = (0..3_000u64)
            .map(|i| (i % 5 != 3).then_some(i * 300 + (i % 7) * 2_000))
            .collect();
        let mut buf = [0u8; 1000];
        let mut at = 0usize;
        let mut messages = 0;
        let mut got = Vec::new();
        while at < arrivals.len() {
            let base = at as u16;
            let w = write_transport_feedback(&mut buf, &header(base, messages), &arrivals[at..])
                .unwrap();
            assert!(w.len <= 1000 && w.len.is_multiple_of(4));
            let view = TransportFeedback::parse(&buf[..w.len]).unwrap();
            assert_eq!(view.feedback_count(), messages);
            assert_eq!(usize::from(view.status_count()), w.packets);
            got.extend(view.arrivals());
            at += w.packets;
            messages += 1;
        }
        assert!(messages >= 3, "{messages} messages");
        assert_eq!(got, expected(0, &arrivals));
    }

    #[test]
    fn writer_refuses_empty_and_tiny() {
        let mut buf = [0u8; 64];
        assert_eq!(
            write_transport_feedback(&mut buf, &header(0, 0), &[]),
            Err(Error::BadLength)
        );
        // 20 fixed + 2 chunk + 1 delta, padded: 24 octets.
        assert_eq!(
            write_transport_feedback(&mut buf[..23], &header(0, 0), &[Some(0)]),
            Err(Error::BufferTooSmall)
        );
        assert!(write_transport_feedback(&mut buf[..24], &header(0, 0), &[Some(0)]).is_ok());
    }

    #[test]
    fn parser_rejects_bad_messages() {
        let (good, _) = write(100, &[Some(129_000), None, Some(131_500), Some(120_000)]);
        // Another feedback format (generic NACK, FMT 1).
        let mut nack = good.clone();
        nack[0] = 0xa1;
        assert!(TransportFeedback::parse(&nack).is_err());
        // Deltas cut short (length field and padding still consistent).
        let mut short = good[..24].to_vec();
        short[0] = 0x8f;
        short[3] = 5;
        assert_eq!(
            TransportFeedback::parse(&short).unwrap_err(),
            Error::Truncated
        );
        // A reserved symbol (11) in the two-bit vector.
        let mut reserved = good.clone();
        reserved[21] = 0xc0; // symbol 3 = 11
        assert!(TransportFeedback::parse(&reserved).is_err());
        // Status count 0.
        let mut zero = good.clone();
        zero[14] = 0;
        zero[15] = 0;
        assert!(TransportFeedback::parse(&zero).is_err());
        // Trailing data after the packet.
        let mut trailing = good.clone();
        trailing.extend_from_slice(&good);
        assert!(TransportFeedback::parse(&trailing).is_err());
    }

    /// The media relay's RTCP parser skips transport-cc as "other".
    #[test]
    fn compound_parser_skips_it() {
        let (bytes, _) = write(100, &[Some(129_000), None, Some(131_500)]);
        let packets: Vec<_> = parse_compound(&bytes).collect();
        assert!(matches!(
            packets[..],
            [Ok(Packet::Other {
                packet_type: packet_type::RTPFB,
                fmt: FMT
            })]
        ));
    }

    use super::super::{parse_compound, Packet};

    /// parse(write(x)) == x (rounded to 250 µs) for random runs: losses,
    /// reordering, jitter, jumps beyond 16-bit deltas, random size caps,
    /// random bases near the wrap.
    #[test]
    fn round_trip_random_runs() {
        let mut rng = StdRng::seed_from_u64(0x7cc_2026);
        for _ in 0..400 {
            let n = rng.gen_range(1..600);
            let mut t: i64 = rng.gen_range(0..100_000_000_000);
            let arrivals: Vec<Option<u64>> = (0..n)
                .map(|_| {
                    t += match rng.gen_range(0..100) {
                        0 => rng.gen_range(-20_000_000..20_000_000), // beyond 16 bits
                        1..=10 => rng.gen_range(-30_000..0),         // reordered
                        _ => rng.gen_range(0..70_000),
                    };
                    t = t.max(0);
                    (rng.gen_range(0..10) != 0).then_some(t as u64)
                })
                .collect();
            let base: u16 = rng.gen();
            let cap = rng.gen_range(24..1500);
            let mut buf = vec![0u8; cap];
            let mut at = 0usize;
            let mut got = Vec::new();
            while at < arrivals.len() {
                let h = header(base.wrapping_add(at as u16), at as u8);
                let w = write_transport_feedback(&mut buf, &h, &arrivals[at..]).unwrap();
                assert!(w.packets > 0 && w.len <= cap);
                let view = TransportFeedback::parse(&buf[..w.len]).unwrap();
                assert_eq!(view.base_sequence(), h.base_sequence);
                assert_eq!(view.feedback_count(), h.feedback_count);
                got.extend(view.arrivals());
                at += w.packets;
            }
            assert_eq!(got, expected(base, &arrivals));
        }
    }

    /// No input makes the parser or its iterators panic: random bytes,
    /// and valid messages with random octets changed.
    /// Found by the rtp_rtcp fuzz target: run-length chunks of length
    /// zero are legal (they carry no symbol); the iterator must skip them,
    /// not read their symbol (here "large delta", with no delta octets,
    /// which ended the iteration with nothing reported).
    #[test]
    fn zero_length_runs_carry_no_symbol() {
        let bytes: [u8; 28] = [
            0x8f, 0xcd, 0x00, 0x06, // V=2 P=0 FMT=15, PT=205, length 6 words
            0x11, 0x11, 0x11, 0x11, // sender SSRC
            0x22, 0x22, 0x22, 0x22, // media SSRC
            0x00, 0x00, 0x00, 0x05, // base sequence 0, status count 5
            0x00, 0x00, 0x01, 0x00, // reference time 1, feedback count 0
            0x40, 0x00, // run of "large delta", length 0
            0x00, 0x00, // run of "not received", length 0
            0x20, 0x02, // run of "small delta", length 2
            0x00, 0x03, // run of "not received", length 3 (one unused)
        ];
        // Two small deltas would need two octets: there are none, so the
        // parser refuses it; with "not received" runs only it is valid.
        assert!(TransportFeedback::parse(&bytes).is_err());
        let mut lost = bytes;
        lost[24..26].copy_from_slice(&[0x00, 0x02]);
        let view = TransportFeedback::parse(&lost).unwrap();
        let reports: Vec<_> = view.packets().map(|p| (p.sequence, p.delta)).collect();
        assert_eq!(
            reports,
            [(0, None), (1, None), (2, None), (3, None), (4, None)]
        );
        assert_eq!(view.arrivals().count(), 5);
    }

    #[test]
    fn parser_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x0fee_d7cc);
        let (good, _) = write(100, &[Some(129_000), None, Some(131_500), Some(120_000)]);
        let mut run: Vec<Option<u64>> = (0..200u64).map(|i| Some(i * 900)).collect();
        run[50] = None;
        run[60] = Some(0);
        let (long, _) = write(7, &run);
        for i in 0..20_000 {
            let mut bytes = match i % 3 {
                0 => good.clone(),
                1 => long.clone(),
                _ => {
                    let len = rng.gen_range(0..80);
                    let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    if let Some(first) = b.first_mut() {
                        *first = 0x80 | (*first & 0x20) | FMT;
                    }
                    if let Some(pt) = b.get_mut(1) {
                        *pt = packet_type::RTPFB;
                    }
                    if b.len() >= 4 {
                        let words = (b.len() / 4).saturating_sub(1) as u16;
                        b[2..4].copy_from_slice(&words.to_be_bytes());
                    }
                    b
                }
            };
            for _ in 0..rng.gen_range(1..4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            if let Ok(view) = TransportFeedback::parse(&bytes) {
                let n = view.packets().count();
                assert!(n <= usize::from(view.status_count()));
                assert_eq!(view.arrivals().count(), n);
            }
        }
    }
}
