//! The STUN message header and the checked [`Message`] view.
//!
//! Implements RFC 8489 §5 (header: the two zero bits, the interleaved
//! class/method bits of the message type, the magic cookie, the length),
//! §6 (transaction ID), §14 (the TLV layout of attributes with 4-byte
//! padding) and the three checks computed over the message itself:
//! MESSAGE-INTEGRITY (§14.5, HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 (§14.6)
//! and FINGERPRINT (§14.7, CRC-32 XOR 0x5354554E).

use core::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::attribute::{AttributeType, RawAttribute};
use crate::Error;

/// The fixed value of header bytes 4–7 (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the STUN header (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;

/// Length of an attribute's type + length fields (RFC 8489 §14).
pub(crate) const ATTRIBUTE_HEADER_LEN: usize = 4;

/// Largest message a 16-bit length field can describe.
pub(crate) const MAX_MESSAGE_LEN: usize = HEADER_LEN + u16::MAX as usize;

/// XORed into the CRC-32 of FINGERPRINT so that a STUN message carried by
/// another protocol that also uses CRC-32 is not mistaken (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Length of a MESSAGE-INTEGRITY value (RFC 8489 §14.5).
pub(crate) const MESSAGE_INTEGRITY_LEN: usize = 20;

/// Length of a full MESSAGE-INTEGRITY-SHA256 value (RFC 8489 §14.6).
pub(crate) const MESSAGE_INTEGRITY_SHA256_LEN: usize = 32;

/// The 96-bit transaction ID (RFC 8489 §6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The class of a message: bits C1 and C0 of the message type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 0b00.
    Request,
    /// 0b01.
    Indication,
    /// 0b10.
    Success,
    /// 0b11.
    Error,
}

impl Class {
    /// The two class bits, C1 C0.
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    const fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }
}

/// A STUN method: the 12 method bits M11–M0 of the message type (RFC 8489 §5).
///
/// Values above 0x0FFF cannot be encoded; writers keep only the low 12 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(pub u16);

impl Method {
    /// Binding (RFC 8489 §18.2).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656 §17).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656 §17).
    pub const REFRESH: Method = Method(0x004);
    /// Send, indication only (RFC 8656 §17).
    pub const SEND: Method = Method(0x006);
    /// Data, indication only (RFC 8656 §17).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656 §17).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656 §17).
    pub const CHANNEL_BIND: Method = Method(0x009);
}

/// Builds the 14-bit message type from a class and a method.
///
/// The class bits sit between the method bits so that the first byte of a
/// STUN message stays below 0x40 (RFC 8489 §5, Figure 3):
/// `M11..M7 C1 M6..M4 C0 M3..M0`.
pub const fn message_type(class: Class, method: Method) -> u16 {
    let m = method.0 & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// Splits a message type into its class and method (inverse of [`message_type`]).
pub const fn split_message_type(typ: u16) -> (Class, Method) {
    let m = (typ & 0x000F) | ((typ & 0x00E0) >> 1) | ((typ & 0x3E00) >> 2);
    let c = ((typ >> 4) & 0b01) | ((typ >> 7) & 0b10);
    (Class::from_bits(c), Method(m))
}

/// Checks the 20-byte header against the datagram (RFC 8489 §5) and returns
/// the message type.
///
/// Shared by [`Message::parse`] and the dataplane fast path.
#[inline]
pub(crate) fn check_header(bytes: &[u8]) -> Result<u16, Error> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated);
    };
    if header[0] & 0xC0 != 0 {
        return Err(Error::NotStun);
    }
    if u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE {
        return Err(Error::BadMagicCookie);
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // Every attribute is padded to 4 bytes, so a length that is not a
    // multiple of 4 can only be a broken message (RFC 8489 §5). The length
    // must also account for exactly the rest of the datagram: over UDP a
    // datagram is one message.
    if length % 4 != 0 || length != bytes.len() - HEADER_LEN {
        return Err(Error::BadLength);
    }
    Ok(u16::from_be_bytes([header[0], header[1]]))
}

/// Reads the attribute starting at `pos` while checking a message that
/// passed [`check_header`].
///
/// Returns `Ok(None)` at the end of the message, else the attribute and the
/// offset of the next one, or [`Error::AttributeOverrun`] if its value
/// does not fit. Its padding then fits too: attributes start at multiples
/// of 4 and the checked length is one, so what follows an attribute header
/// is a multiple of 4 long.
#[inline]
pub(crate) fn next_tlv(msg: &[u8], pos: usize) -> Result<Option<(RawAttribute<'_>, usize)>, Error> {
    if pos >= msg.len() {
        return Ok(None);
    }
    match checked_tlv(msg, pos) {
        Some(found) => Ok(Some(found)),
        None => {
            let typ = msg
                .get(pos..pos + 2)
                .map_or(0, |t| u16::from_be_bytes([t[0], t[1]]));
            Err(Error::AttributeOverrun(AttributeType(typ)))
        }
    }
}

/// Reads the attribute at `pos`: `None` at the end or if the value does
/// not fit. The lean form of [`next_tlv`], for messages already checked.
#[inline]
fn checked_tlv(msg: &[u8], pos: usize) -> Option<(RawAttribute<'_>, usize)> {
    let (head, after) = msg
        .get(pos..)?
        .split_first_chunk::<ATTRIBUTE_HEADER_LEN>()?;
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let raw = RawAttribute {
        typ: AttributeType(u16::from_be_bytes([head[0], head[1]])),
        value: after.get(..len)?,
    };
    Some((raw, pos + ATTRIBUTE_HEADER_LEN + padded_len(len)))
}

/// `len` rounded up to a multiple of 4 (RFC 8489 §14).
pub(crate) const fn padded_len(len: usize) -> usize {
    (len + 3) & !3
}

/// Which attributes still count while walking a message.
///
/// RFC 8489 §14.5: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256
/// and FINGERPRINT count; §14.6: after MESSAGE-INTEGRITY-SHA256 only
/// FINGERPRINT; §14.7: FINGERPRINT is last, so nothing after it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Open,
    AfterIntegrity,
    AfterIntegritySha256,
    Done,
}

impl Stage {
    /// Whether `typ` counts at this stage, advancing the stage.
    #[inline]
    pub(crate) fn admit(&mut self, typ: AttributeType) -> bool {
        let (admit, next) = match (*self, typ) {
            (Stage::Done, _) => (false, Stage::Done),
            (_, AttributeType::FINGERPRINT) => (true, Stage::Done),
            (Stage::Open | Stage::AfterIntegrity, AttributeType::MESSAGE_INTEGRITY_SHA256) => {
                (true, Stage::AfterIntegritySha256)
            }
            (Stage::Open, AttributeType::MESSAGE_INTEGRITY) => (true, Stage::AfterIntegrity),
            (Stage::Open, _) => (true, Stage::Open),
            (stage, _) => (false, stage),
        };
        *self = next;
        admit
    }
}

/// A STUN message whose framing has been checked.
///
/// Holding a `Message` means: the header is well formed (first two bits
/// zero, magic cookie, length a multiple of 4 equal to the rest of the
/// datagram) and every attribute TLV, padding included, lies inside the
/// message. Attribute values are only checked when decoded
/// ([`crate::Attribute::decode`]).
///
/// `parse` also notes where the attributes with special placement rules
/// are, so that looking an attribute up walks only the plain ones and the
/// integrity checks walk nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    /// Where the attributes that count without condition end: the offset
    /// of the first counting MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256
    /// or FINGERPRINT, else the end of the message.
    plain_end: usize,
    /// Offset of the counting MESSAGE-INTEGRITY (0: none; no attribute starts at 0).
    integrity: usize,
    /// Offset of the counting MESSAGE-INTEGRITY-SHA256 (0: none).
    integrity_sha256: usize,
    /// Offset of the counting FINGERPRINT (0: none).
    fingerprint: usize,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("class", &self.class())
            .field("method", &self.method())
            .field("transaction_id", &self.transaction_id())
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl<'a> Message<'a> {
    /// Checks `bytes` as one whole STUN message (RFC 8489 §5, §14).
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, Error> {
        check_header(bytes)?;
        let mut msg = Message {
            bytes,
            plain_end: 0,
            integrity: 0,
            integrity_sha256: 0,
            fingerprint: 0,
        };
        let mut stage = Stage::Open;
        let mut pos = HEADER_LEN;
        while let Some((raw, next)) = next_tlv(bytes, pos)? {
            if stage.admit(raw.typ) {
                match raw.typ {
                    AttributeType::MESSAGE_INTEGRITY => msg.integrity = pos,
                    AttributeType::MESSAGE_INTEGRITY_SHA256 => msg.integrity_sha256 = pos,
                    AttributeType::FINGERPRINT => msg.fingerprint = pos,
                    _ => {}
                }
                if stage != Stage::Open && msg.plain_end == 0 {
                    msg.plain_end = pos;
                }
            }
            pos = next;
        }
        if msg.plain_end == 0 {
            msg.plain_end = bytes.len();
        }
        Ok(msg)
    }

    /// The message's class.
    #[inline]
    pub fn class(&self) -> Class {
        split_message_type(self.message_type()).0
    }

    /// The message's method.
    #[inline]
    pub fn method(&self) -> Method {
        split_message_type(self.message_type()).1
    }

    /// The raw 14-bit message type.
    #[inline]
    pub fn message_type(&self) -> u16 {
        u16::from_be_bytes([self.header()[0], self.header()[1]])
    }

    /// The transaction ID (header bytes 8–19).
    #[inline]
    pub fn transaction_id(&self) -> TransactionId {
        let h = self.header();
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&h[8..HEADER_LEN]);
        TransactionId(tid)
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes that count, in order: those before
    /// MESSAGE-INTEGRITY, then MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    /// if they follow, and nothing after FINGERPRINT (RFC 8489 §14.5–§14.7).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            msg: self.bytes,
            pos: HEADER_LEN,
            stage: Stage::Open,
        }
    }

    /// Every attribute TLV in the message, including those that
    /// [`Message::attributes`] ignores.
    pub fn all_attributes(&self) -> AllAttributes<'a> {
        AllAttributes {
            msg: self.bytes,
            pos: HEADER_LEN,
        }
    }

    /// The first attribute of type `typ` that counts (see [`Message::attributes`]).
    ///
    /// RFC 8489 §14: when an attribute repeats, only the first one needs to
    /// be processed.
    #[inline]
    pub fn attribute(&self, typ: AttributeType) -> Option<RawAttribute<'a>> {
        self.find(typ).map(|(_, raw)| raw)
    }

    /// Comprehension-required attribute types (0x0000–0x7FFF) among those
    /// that count that this crate does not understand (RFC 8489 §7.3.1:
    /// a request carrying one gets a 420 with UNKNOWN-ATTRIBUTES).
    #[inline]
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttributeType> + 'a {
        // The attributes after `plain_end` that count are all known ones.
        self.plain()
            .map(|(_, raw)| raw.typ)
            .filter(|typ| typ.is_comprehension_required() && !typ.is_known())
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) with `key`.
    ///
    /// `key` is the long-term key ([`crate::integrity::long_term_key_md5`])
    /// or a short-term password. The comparison is constant-time.
    pub fn check_integrity(&self, key: &[u8]) -> Result<(), Error> {
        let typ = AttributeType::MESSAGE_INTEGRITY;
        let (offset, raw) = self.find(typ).ok_or(Error::MissingAttribute(typ))?;
        if raw.value.len() != MESSAGE_INTEGRITY_LEN {
            return Err(Error::InvalidAttribute {
                typ,
                reason: "length is not 20",
            });
        }
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(key).map_err(|_| Error::IntegrityMismatch)?;
        self.feed_prefix(&mut mac, offset, raw.value.len());
        mac.verify_slice(raw.value)
            .map_err(|_| Error::IntegrityMismatch)
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, RFC 8489 §14.6) with `key`.
    ///
    /// `key` is the SHA-256 long-term key
    /// ([`crate::integrity::long_term_key_sha256`]) or a short-term
    /// password. The value may be truncated to 16–32 bytes in steps of 4;
    /// its leftmost bytes are compared, in constant time.
    pub fn check_integrity_sha256(&self, key: &[u8]) -> Result<(), Error> {
        let typ = AttributeType::MESSAGE_INTEGRITY_SHA256;
        let (offset, raw) = self.find(typ).ok_or(Error::MissingAttribute(typ))?;
        let len = raw.value.len();
        if !(16..=MESSAGE_INTEGRITY_SHA256_LEN).contains(&len) || len % 4 != 0 {
            return Err(Error::InvalidAttribute {
                typ,
                reason: "length is not 16..=32 in steps of 4",
            });
        }
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| Error::IntegrityMismatch)?;
        self.feed_prefix(&mut mac, offset, len);
        mac.verify_truncated_left(raw.value)
            .map_err(|_| Error::IntegrityMismatch)
    }

    /// Checks FINGERPRINT (RFC 8489 §14.7).
    pub fn check_fingerprint(&self) -> Result<(), Error> {
        let typ = AttributeType::FINGERPRINT;
        let (offset, raw) = self.find(typ).ok_or(Error::MissingAttribute(typ))?;
        let Ok(value) = <[u8; 4]>::try_from(raw.value) else {
            return Err(Error::InvalidAttribute {
                typ,
                reason: "length is not 4",
            });
        };
        let mut crc = crc32fast::Hasher::new();
        self.feed_prefix(&mut crc, offset, value.len());
        if crc.finalize() ^ FINGERPRINT_XOR == u32::from_be_bytes(value) {
            Ok(())
        } else {
            Err(Error::FingerprintMismatch)
        }
    }

    /// Feeds the message up to the attribute at `offset` into `sink`, with
    /// the header length set as if that attribute (of value length
    /// `value_len`) were the last one: that is the length its sender
    /// computed it with (RFC 8489 §14.5, §14.6, §14.7).
    fn feed_prefix(&self, sink: &mut impl Update, offset: usize, value_len: usize) {
        let covered = offset + ATTRIBUTE_HEADER_LEN + value_len - HEADER_LEN;
        // `covered` fits: the attribute lies inside a message whose length
        // field is a u16, and `value_len` is at most its padded length.
        let length = u16::try_from(covered).unwrap_or(u16::MAX).to_be_bytes();
        let prefix = self.bytes.get(..offset).unwrap_or_default();
        sink.feed(prefix.get(..2).unwrap_or_default());
        sink.feed(&length);
        sink.feed(prefix.get(4..).unwrap_or_default());
    }

    /// The first counting attribute of type `typ` and its offset.
    #[inline]
    fn find(&self, typ: AttributeType) -> Option<(usize, RawAttribute<'a>)> {
        let special = match typ {
            AttributeType::MESSAGE_INTEGRITY => self.integrity,
            AttributeType::MESSAGE_INTEGRITY_SHA256 => self.integrity_sha256,
            AttributeType::FINGERPRINT => self.fingerprint,
            _ => return self.plain().find(|(_, raw)| raw.typ == typ),
        };
        if special == 0 {
            return None;
        }
        let (raw, _) = checked_tlv(self.bytes, special)?;
        Some((special, raw))
    }

    /// The attributes before `plain_end`, with their offsets.
    #[inline]
    fn plain(&self) -> impl Iterator<Item = (usize, RawAttribute<'a>)> + 'a {
        let region = self.bytes.get(..self.plain_end).unwrap_or_default();
        let mut pos = HEADER_LEN;
        core::iter::from_fn(move || {
            // `parse` checked every TLV, so the walk cannot fail.
            let (raw, next) = checked_tlv(region, pos)?;
            let offset = pos;
            pos = next;
            Some((offset, raw))
        })
    }

    #[inline]
    fn header(&self) -> &'a [u8; HEADER_LEN] {
        // `parse` checked that the message is at least a header long.
        self.bytes
            .first_chunk::<HEADER_LEN>()
            .unwrap_or(&[0; HEADER_LEN])
    }
}

/// Something the message prefix can be fed into (HMAC or CRC).
pub(crate) trait Update {
    fn feed(&mut self, bytes: &[u8]);
}

impl Update for Hmac<Sha1> {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Update for Hmac<Sha256> {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Update for crc32fast::Hasher {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Iterator over the attributes of a [`Message`] that count (see [`Message::attributes`]).
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    msg: &'a [u8],
    pos: usize,
    stage: Stage,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        while self.stage != Stage::Done {
            // The message was checked by `Message::parse`, so the walk
            // cannot fail; should it, iteration simply ends.
            let (raw, next) = checked_tlv(self.msg, self.pos)?;
            self.pos = next;
            if self.stage.admit(raw.typ) {
                return Some(raw);
            }
        }
        None
    }
}

/// Iterator over every attribute TLV of a [`Message`] (see [`Message::all_attributes`]).
#[derive(Debug, Clone)]
pub struct AllAttributes<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AllAttributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        let (raw, next) = checked_tlv(self.msg, self.pos)?;
        self.pos = next;
        Some(raw)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::attribute::Attribute;
    use crate::integrity::long_term_key_md5;
    use crate::rfc5769 as v;

    fn decode<'a>(msg: &Message<'a>, typ: AttributeType) -> Attribute<'a> {
        let raw = msg.attribute(typ).expect("attribute present");
        Attribute::decode(raw, &msg.transaction_id()).expect("attribute decodes")
    }

    #[test]
    fn message_type_bits_follow_rfc8489_figure_3() {
        assert_eq!(message_type(Class::Request, Method::BINDING), 0x0001);
        assert_eq!(message_type(Class::Success, Method::BINDING), 0x0101);
        assert_eq!(message_type(Class::Error, Method::BINDING), 0x0111);
        assert_eq!(message_type(Class::Indication, Method::SEND), 0x0016);
        assert_eq!(message_type(Class::Indication, Method::DATA), 0x0017);
        assert_eq!(message_type(Class::Request, Method::ALLOCATE), 0x0003);
        assert_eq!(message_type(Class::Error, Method::ALLOCATE), 0x0113);
        assert_eq!(message_type(Class::Request, Method::CHANNEL_BIND), 0x0009);
        // All twelve method bits and both class bits land where Figure 3 puts them.
        assert_eq!(message_type(Class::Error, Method(0x0FFF)), 0x3FFF);
        assert_eq!(message_type(Class::Request, Method(0x0080)), 0x0200);
        assert_eq!(message_type(Class::Request, Method(0x0010)), 0x0020);
    }

    #[test]
    fn message_type_round_trips_for_every_class_and_method() {
        for m in 0..=0x0FFF {
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let typ = message_type(class, Method(m));
                assert_eq!(typ & 0xC000, 0, "first two bits stay zero");
                assert_eq!(split_message_type(typ), (class, Method(m)));
            }
        }
    }

    #[test]
    fn rfc5769_sample_request() {
        let msg = Message::parse(v::SAMPLE_REQUEST).unwrap();
        assert_eq!(msg.class(), Class::Request);
        assert_eq!(msg.method(), Method::BINDING);
        assert_eq!(
            msg.transaction_id(),
            TransactionId([0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae])
        );
        assert_eq!(
            decode(&msg, AttributeType::SOFTWARE),
            Attribute::Software(v::CLIENT_SOFTWARE)
        );
        assert_eq!(
            decode(&msg, AttributeType::USERNAME),
            Attribute::Username(v::SAMPLE_REQUEST_USERNAME)
        );
        // PRIORITY and ICE-CONTROLLED are known ICE attributes (RFC 8445 §16.1).
        assert_eq!(
            decode(&msg, AttributeType::PRIORITY),
            Attribute::Priority(0x6e00_01ff)
        );
        assert_eq!(
            decode(&msg, AttributeType::ICE_CONTROLLED),
            Attribute::IceControlled(0x932f_f9b1_5126_3b36)
        );
        let types: Vec<u16> = msg.attributes().map(|a| a.typ.0).collect();
        assert_eq!(types, vec![0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]);

        msg.check_integrity(v::SHORT_TERM_PASSWORD.as_bytes())
            .unwrap();
        assert_eq!(
            msg.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBT"),
            Err(Error::IntegrityMismatch)
        );
        msg.check_fingerprint().unwrap();
        assert_eq!(
            decode(&msg, AttributeType::FINGERPRINT),
            Attribute::Fingerprint(0xe57a3bcf)
        );
    }

    #[test]
    fn rfc5769_sample_request_has_no_unknown_comprehension_required_attribute() {
        // §2.1 carries PRIORITY (0x0024, comprehension-required) and
        // ICE-CONTROLLED: now that both are known, a server that checks
        // for unknown attributes (RFC 8489 §7.3.1) no longer answers 420.
        let msg = Message::parse(v::SAMPLE_REQUEST).unwrap();
        assert_eq!(msg.unknown_comprehension_required().count(), 0);
        assert!(msg
            .attributes()
            .any(|raw| raw.typ == AttributeType::PRIORITY && raw.typ.is_comprehension_required()));
    }

    #[test]
    fn rfc5769_sample_ipv4_response() {
        let msg = Message::parse(v::SAMPLE_IPV4_RESPONSE).unwrap();
        assert_eq!(msg.class(), Class::Success);
        assert_eq!(msg.method(), Method::BINDING);
        assert_eq!(
            decode(&msg, AttributeType::SOFTWARE),
            Attribute::Software(v::SERVER_SOFTWARE)
        );
        let mapped: SocketAddr = v::IPV4_MAPPED_ADDRESS.parse().unwrap();
        assert_eq!(
            decode(&msg, AttributeType::XOR_MAPPED_ADDRESS),
            Attribute::XorMappedAddress(mapped)
        );
        assert_eq!(msg.unknown_comprehension_required().count(), 0);
        msg.check_integrity(v::SHORT_TERM_PASSWORD.as_bytes())
            .unwrap();
        assert_eq!(msg.check_integrity(b"wrong"), Err(Error::IntegrityMismatch));
        msg.check_fingerprint().unwrap();
    }

    #[test]
    fn rfc5769_sample_ipv6_response() {
        let msg = Message::parse(v::SAMPLE_IPV6_RESPONSE).unwrap();
        assert_eq!(msg.class(), Class::Success);
        let mapped: SocketAddr = v::IPV6_MAPPED_ADDRESS.parse().unwrap();
        assert_eq!(
            decode(&msg, AttributeType::XOR_MAPPED_ADDRESS),
            Attribute::XorMappedAddress(mapped)
        );
        msg.check_integrity(v::SHORT_TERM_PASSWORD.as_bytes())
            .unwrap();
        assert_eq!(msg.check_integrity(b""), Err(Error::IntegrityMismatch));
        msg.check_fingerprint().unwrap();
    }

    #[test]
    fn rfc5769_sample_request_with_long_term_authentication() {
        let msg = Message::parse(v::SAMPLE_REQUEST_LONG_TERM).unwrap();
        assert_eq!(msg.class(), Class::Request);
        assert_eq!(msg.method(), Method::BINDING);
        assert_eq!(
            decode(&msg, AttributeType::USERNAME),
            Attribute::Username(v::LONG_TERM_USERNAME)
        );
        assert_eq!(
            decode(&msg, AttributeType::NONCE),
            Attribute::Nonce(v::LONG_TERM_NONCE)
        );
        assert_eq!(
            decode(&msg, AttributeType::REALM),
            Attribute::Realm(v::LONG_TERM_REALM)
        );

        let key = long_term_key_md5(
            v::LONG_TERM_USERNAME,
            v::LONG_TERM_REALM,
            v::LONG_TERM_PASSWORD,
        );
        msg.check_integrity(&key).unwrap();
        // The password before SASLprep gives another key, which must fail.
        let unprepared = long_term_key_md5(
            v::LONG_TERM_USERNAME,
            v::LONG_TERM_REALM,
            "The\u{00AD}M\u{00AA}tr\u{2168}",
        );
        assert_eq!(
            msg.check_integrity(&unprepared),
            Err(Error::IntegrityMismatch)
        );
        assert_eq!(
            msg.check_fingerprint(),
            Err(Error::MissingAttribute(AttributeType::FINGERPRINT))
        );
    }

    #[test]
    fn any_flipped_bit_breaks_integrity_or_fingerprint() {
        // Flip each bit of the §2.2 response outside the header's length
        // field: either parsing fails or a check does.
        for i in 0..v::SAMPLE_IPV4_RESPONSE.len() {
            for bit in 0..8 {
                let mut bytes = v::SAMPLE_IPV4_RESPONSE.to_vec();
                bytes[i] ^= 1 << bit;
                let Ok(msg) = Message::parse(&bytes) else {
                    continue;
                };
                let integrity = msg.check_integrity(v::SHORT_TERM_PASSWORD.as_bytes());
                let fingerprint = msg.check_fingerprint();
                assert!(
                    integrity.is_err() || fingerprint.is_err(),
                    "byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_header_is_an_error() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Message::parse(&v::SAMPLE_REQUEST[..len]),
                Err(Error::Truncated)
            );
        }
    }

    #[test]
    fn first_two_bits_must_be_zero() {
        let mut bytes = v::SAMPLE_REQUEST.to_vec();
        bytes[0] |= 0x40;
        assert_eq!(Message::parse(&bytes), Err(Error::NotStun));
        bytes[0] = 0x80;
        assert_eq!(Message::parse(&bytes), Err(Error::NotStun));
    }

    #[test]
    fn bad_cookie_is_an_error() {
        let mut bytes = v::SAMPLE_REQUEST.to_vec();
        bytes[7] ^= 1;
        assert_eq!(Message::parse(&bytes), Err(Error::BadMagicCookie));
    }

    #[test]
    fn lying_lengths_are_errors() {
        // Header length larger than the datagram.
        let mut bytes = v::SAMPLE_REQUEST.to_vec();
        bytes[3] += 4;
        assert_eq!(Message::parse(&bytes), Err(Error::BadLength));
        // Header length smaller than the datagram (trailing bytes).
        let mut bytes = v::SAMPLE_REQUEST.to_vec();
        bytes[3] -= 4;
        assert_eq!(Message::parse(&bytes), Err(Error::BadLength));
        // Not a multiple of 4.
        let mut bytes = v::SAMPLE_REQUEST.to_vec();
        bytes.push(0);
        bytes[3] += 1;
        assert_eq!(Message::parse(&bytes), Err(Error::BadLength));
        // Datagram cut in the middle of an attribute, header length matching the cut.
        let cut = &v::SAMPLE_REQUEST[..HEADER_LEN + 8];
        let mut bytes = cut.to_vec();
        bytes[2..4].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::AttributeOverrun(AttributeType::SOFTWARE))
        );
    }

    #[test]
    fn attribute_overrunning_the_message_is_an_error() {
        // An attribute claiming 9 bytes where 8 remain (its padding would need 12).
        let mut bytes = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        bytes.extend_from_slice(&[7; 12]);
        bytes.extend_from_slice(&[
            0x80, 0x22, 0x00, 0x09, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h',
        ]);
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::AttributeOverrun(AttributeType::SOFTWARE))
        );
        // An attribute whose length is far too large.
        bytes[22..24].copy_from_slice(&0xFFFFu16.to_be_bytes());
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::AttributeOverrun(AttributeType::SOFTWARE))
        );
        // Exactly fitting with an odd length and padding is fine.
        bytes[22..24].copy_from_slice(&5u16.to_be_bytes());
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(
            msg.attribute(AttributeType::SOFTWARE).unwrap().value,
            b"abcde"
        );
    }

    #[test]
    fn empty_message_parses() {
        let mut bytes = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        bytes.extend_from_slice(&[1; 12]);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.attributes().count(), 0);
        assert_eq!(
            msg.check_integrity(b"k"),
            Err(Error::MissingAttribute(AttributeType::MESSAGE_INTEGRITY))
        );
    }

    #[test]
    fn attributes_after_integrity_are_ignored_except_sha256_and_fingerprint() {
        let mut bytes = Vec::new();
        let mut b = crate::MessageBuilder::new(
            &mut bytes,
            Class::Request,
            Method::ALLOCATE,
            TransactionId([3; 12]),
        );
        b.add(&Attribute::Lifetime(600)).unwrap();
        b.message_integrity(b"key").unwrap();
        b.add(&Attribute::Realm("after-mi")).unwrap();
        b.add_raw(AttributeType(0x7777), b"x").unwrap();
        b.message_integrity_sha256(b"key").unwrap();
        b.add(&Attribute::Software("after-sha256")).unwrap();
        b.fingerprint().unwrap();
        b.add(&Attribute::Nonce("after-fingerprint")).unwrap();
        b.finish();

        let msg = Message::parse(&bytes).unwrap();
        let seen: Vec<_> = msg.attributes().map(|a| a.typ).collect();
        assert_eq!(
            seen,
            vec![
                AttributeType::LIFETIME,
                AttributeType::MESSAGE_INTEGRITY,
                AttributeType::MESSAGE_INTEGRITY_SHA256,
                AttributeType::FINGERPRINT
            ]
        );
        assert_eq!(msg.all_attributes().count(), 8);
        assert!(msg.attribute(AttributeType::REALM).is_none());
        assert!(msg.attribute(AttributeType::NONCE).is_none());
        // The unknown 0x7777 after MESSAGE-INTEGRITY does not count.
        assert_eq!(msg.unknown_comprehension_required().count(), 0);
        // Each check uses the length as it was when its attribute was added.
        msg.check_integrity(b"key").unwrap();
        msg.check_integrity_sha256(b"key").unwrap();
        msg.check_fingerprint().unwrap();
        assert_eq!(
            msg.check_integrity_sha256(b"other"),
            Err(Error::IntegrityMismatch)
        );
    }

    #[test]
    fn first_of_repeated_attributes_counts() {
        let mut bytes = Vec::new();
        let mut b = crate::MessageBuilder::new(
            &mut bytes,
            Class::Request,
            Method::REFRESH,
            TransactionId([4; 12]),
        );
        b.add(&Attribute::Lifetime(1)).unwrap();
        b.add(&Attribute::Lifetime(2)).unwrap();
        b.finish();
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(
            decode(&msg, AttributeType::LIFETIME),
            Attribute::Lifetime(1)
        );
    }

    #[test]
    fn integrity_with_wrong_length_is_an_error() {
        let mut bytes = Vec::new();
        let mut b = crate::MessageBuilder::new(
            &mut bytes,
            Class::Request,
            Method::BINDING,
            TransactionId([5; 12]),
        );
        b.add_raw(AttributeType::MESSAGE_INTEGRITY, &[0; 16])
            .unwrap();
        b.finish();
        let msg = Message::parse(&bytes).unwrap();
        assert!(matches!(
            msg.check_integrity(b"k"),
            Err(Error::InvalidAttribute { .. })
        ));

        let mut bytes = Vec::new();
        let mut b = crate::MessageBuilder::new(
            &mut bytes,
            Class::Request,
            Method::BINDING,
            TransactionId([5; 12]),
        );
        b.add_raw(AttributeType::MESSAGE_INTEGRITY_SHA256, &[0; 12])
            .unwrap();
        b.finish();
        let msg = Message::parse(&bytes).unwrap();
        assert!(matches!(
            msg.check_integrity_sha256(b"k"),
            Err(Error::InvalidAttribute { .. })
        ));
    }

    #[test]
    fn truncated_sha256_integrity_is_checked_on_its_leftmost_bytes() {
        for len in [16, 20, 24, 28, 32] {
            let mut bytes = Vec::new();
            let mut b = crate::MessageBuilder::new(
                &mut bytes,
                Class::Request,
                Method::ALLOCATE,
                TransactionId([6; 12]),
            );
            b.add(&Attribute::RequestedTransport(17)).unwrap();
            b.message_integrity_sha256_truncated(b"secret", len)
                .unwrap();
            b.finish();
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(
                msg.attribute(AttributeType::MESSAGE_INTEGRITY_SHA256)
                    .unwrap()
                    .value
                    .len(),
                len
            );
            msg.check_integrity_sha256(b"secret").unwrap();
            assert_eq!(
                msg.check_integrity_sha256(b"Secret"),
                Err(Error::IntegrityMismatch)
            );
            // Tampering with the tag itself is caught too.
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(
                msg.check_integrity_sha256(b"secret"),
                Err(Error::IntegrityMismatch)
            );
        }
    }
}
