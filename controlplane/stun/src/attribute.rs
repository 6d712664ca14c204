//! STUN/TURN attribute types and their decoded values.
//!
//! Implements the attribute formats of RFC 8489 §14 (addresses and the
//! XOR-address transform of §14.2, USERNAME, USERHASH, integrity,
//! FINGERPRINT, ERROR-CODE, REALM, NONCE, PASSWORD-ALGORITHM(S),
//! UNKNOWN-ATTRIBUTES, SOFTWARE, ALTERNATE-SERVER) and RFC 8656 §18
//! (CHANNEL-NUMBER, LIFETIME, XOR-PEER-ADDRESS, DATA, XOR-RELAYED-ADDRESS,
//! REQUESTED-ADDRESS-FAMILY, EVEN-PORT, REQUESTED-TRANSPORT, DONT-FRAGMENT,
//! RESERVATION-TOKEN, ADDITIONAL-ADDRESS-FAMILY, ADDRESS-ERROR-CODE) and
//! the ICE attributes of RFC 8445 §7.1.1–§7.1.3 and §16.1 (PRIORITY,
//! USE-CANDIDATE, ICE-CONTROLLED, ICE-CONTROLLING), which connectivity
//! checks carry. Codepoints are those of the IANA "STUN Attributes"
//! registry as listed in RFC 8489 §18.3, RFC 8656 §19 and RFC 8445 §16.1.
//!
//! [`RawAttribute`] is one TLV as found in a checked message;
//! [`Attribute::decode`] checks its value and gives the typed form, which
//! borrows from the datagram.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::message::{TransactionId, MAGIC_COOKIE};
use crate::Error;

/// A STUN attribute type (RFC 8489 §14, §18.3; RFC 8656 §19).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

impl AttributeType {
    /// RFC 8489 §14.1.
    pub const MAPPED_ADDRESS: AttributeType = AttributeType(0x0001);
    /// RFC 8489 §14.3.
    pub const USERNAME: AttributeType = AttributeType(0x0006);
    /// RFC 8489 §14.5.
    pub const MESSAGE_INTEGRITY: AttributeType = AttributeType(0x0008);
    /// RFC 8489 §14.8.
    pub const ERROR_CODE: AttributeType = AttributeType(0x0009);
    /// RFC 8489 §14.13.
    pub const UNKNOWN_ATTRIBUTES: AttributeType = AttributeType(0x000A);
    /// RFC 8656 §18.1.
    pub const CHANNEL_NUMBER: AttributeType = AttributeType(0x000C);
    /// RFC 8656 §18.2.
    pub const LIFETIME: AttributeType = AttributeType(0x000D);
    /// RFC 8656 §18.3.
    pub const XOR_PEER_ADDRESS: AttributeType = AttributeType(0x0012);
    /// RFC 8656 §18.4.
    pub const DATA: AttributeType = AttributeType(0x0013);
    /// RFC 8489 §14.9.
    pub const REALM: AttributeType = AttributeType(0x0014);
    /// RFC 8489 §14.10.
    pub const NONCE: AttributeType = AttributeType(0x0015);
    /// RFC 8656 §18.5.
    pub const XOR_RELAYED_ADDRESS: AttributeType = AttributeType(0x0016);
    /// RFC 8656 §18.6.
    pub const REQUESTED_ADDRESS_FAMILY: AttributeType = AttributeType(0x0017);
    /// RFC 8656 §18.7.
    pub const EVEN_PORT: AttributeType = AttributeType(0x0018);
    /// RFC 8656 §18.8.
    pub const REQUESTED_TRANSPORT: AttributeType = AttributeType(0x0019);
    /// RFC 8656 §18.9.
    pub const DONT_FRAGMENT: AttributeType = AttributeType(0x001A);
    /// RFC 8489 §14.6.
    pub const MESSAGE_INTEGRITY_SHA256: AttributeType = AttributeType(0x001C);
    /// RFC 8489 §14.12.
    pub const PASSWORD_ALGORITHM: AttributeType = AttributeType(0x001D);
    /// RFC 8489 §14.4.
    pub const USERHASH: AttributeType = AttributeType(0x001E);
    /// RFC 8489 §14.2.
    pub const XOR_MAPPED_ADDRESS: AttributeType = AttributeType(0x0020);
    /// RFC 8656 §18.10.
    pub const RESERVATION_TOKEN: AttributeType = AttributeType(0x0022);
    /// RFC 8445 §7.1.1, §16.1.
    pub const PRIORITY: AttributeType = AttributeType(0x0024);
    /// RFC 8445 §7.1.2, §16.1.
    pub const USE_CANDIDATE: AttributeType = AttributeType(0x0025);
    /// RFC 8656 §18.11.
    pub const ADDITIONAL_ADDRESS_FAMILY: AttributeType = AttributeType(0x8000);
    /// RFC 8656 §18.12.
    pub const ADDRESS_ERROR_CODE: AttributeType = AttributeType(0x8001);
    /// RFC 8489 §14.11.
    pub const PASSWORD_ALGORITHMS: AttributeType = AttributeType(0x8002);
    /// RFC 8489 §14.16.
    pub const ALTERNATE_DOMAIN: AttributeType = AttributeType(0x8003);
    /// RFC 8656 §18.13.
    pub const ICMP: AttributeType = AttributeType(0x8004);
    /// RFC 8489 §14.14.
    pub const SOFTWARE: AttributeType = AttributeType(0x8022);
    /// RFC 8489 §14.15.
    pub const ALTERNATE_SERVER: AttributeType = AttributeType(0x8023);
    /// RFC 8489 §14.7.
    pub const FINGERPRINT: AttributeType = AttributeType(0x8028);
    /// RFC 8445 §7.1.3, §16.1.
    pub const ICE_CONTROLLED: AttributeType = AttributeType(0x8029);
    /// RFC 8445 §7.1.3, §16.1.
    pub const ICE_CONTROLLING: AttributeType = AttributeType(0x802A);

    /// Types 0x0000–0x7FFF must be understood by the receiver (RFC 8489 §14).
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// Whether [`Attribute::decode`] has a variant for this type.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// The RFC name of a known type.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::MAPPED_ADDRESS => "MAPPED-ADDRESS",
            Self::USERNAME => "USERNAME",
            Self::MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            Self::ERROR_CODE => "ERROR-CODE",
            Self::UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            Self::CHANNEL_NUMBER => "CHANNEL-NUMBER",
            Self::LIFETIME => "LIFETIME",
            Self::XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
            Self::DATA => "DATA",
            Self::REALM => "REALM",
            Self::NONCE => "NONCE",
            Self::XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
            Self::REQUESTED_ADDRESS_FAMILY => "REQUESTED-ADDRESS-FAMILY",
            Self::EVEN_PORT => "EVEN-PORT",
            Self::REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
            Self::DONT_FRAGMENT => "DONT-FRAGMENT",
            Self::MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            Self::PASSWORD_ALGORITHM => "PASSWORD-ALGORITHM",
            Self::USERHASH => "USERHASH",
            Self::XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            Self::RESERVATION_TOKEN => "RESERVATION-TOKEN",
            Self::PRIORITY => "PRIORITY",
            Self::USE_CANDIDATE => "USE-CANDIDATE",
            Self::ADDITIONAL_ADDRESS_FAMILY => "ADDITIONAL-ADDRESS-FAMILY",
            Self::ADDRESS_ERROR_CODE => "ADDRESS-ERROR-CODE",
            Self::PASSWORD_ALGORITHMS => "PASSWORD-ALGORITHMS",
            Self::SOFTWARE => "SOFTWARE",
            Self::ALTERNATE_SERVER => "ALTERNATE-SERVER",
            Self::FINGERPRINT => "FINGERPRINT",
            Self::ICE_CONTROLLED => "ICE-CONTROLLED",
            Self::ICE_CONTROLLING => "ICE-CONTROLLING",
            _ => return None,
        })
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}(0x{:04x})", self.0),
            None => write!(f, "AttributeType(0x{:04x})", self.0),
        }
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:04x}", self.0),
        }
    }
}

/// One attribute TLV of a checked message: its type and its value without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub typ: AttributeType,
    /// The value, without its padding.
    pub value: &'a [u8],
}

/// The address family field of address attributes (RFC 8489 §14.1) and of
/// REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.6, §18.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 0x01.
    V4,
    /// 0x02.
    V6,
}

impl AddressFamily {
    /// The wire value.
    pub const fn to_u8(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }

    /// Reads a wire value; `None` for anything but 0x01 and 0x02.
    pub const fn from_u8(value: u8) -> Option<AddressFamily> {
        match value {
            0x01 => Some(AddressFamily::V4),
            0x02 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    /// The family of an IP address.
    pub const fn of(ip: &IpAddr) -> AddressFamily {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// Password algorithm numbers (RFC 8489 §18.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithmId(pub u16);

impl PasswordAlgorithmId {
    /// MD5 of `username:realm:password` (RFC 8489 §18.5.1.1).
    pub const MD5: PasswordAlgorithmId = PasswordAlgorithmId(0x0001);
    /// SHA-256 of `username:realm:password` (RFC 8489 §18.5.1.2).
    pub const SHA256: PasswordAlgorithmId = PasswordAlgorithmId(0x0002);
}

/// One password algorithm with its parameters (RFC 8489 §14.11, §14.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    /// The algorithm number.
    pub algorithm: PasswordAlgorithmId,
    /// Its parameters (empty for MD5 and SHA-256).
    pub parameters: &'a [u8],
}

impl PasswordAlgorithm<'_> {
    /// Length of this entry on the wire, padding included.
    const fn wire_len(&self) -> usize {
        4 + crate::message::padded_len(self.parameters.len())
    }
}

/// The list in PASSWORD-ALGORITHMS (RFC 8489 §14.11): either as received
/// (checked wire bytes) or as given to a writer.
#[derive(Clone, Copy)]
pub struct PasswordAlgorithms<'a>(AlgorithmsRepr<'a>);

#[derive(Clone, Copy)]
enum AlgorithmsRepr<'a> {
    Wire(&'a [u8]),
    List(&'a [PasswordAlgorithm<'a>]),
}

impl<'a> PasswordAlgorithms<'a> {
    /// MD5 then SHA-256, both without parameters: what uturn offers.
    pub const MD5_AND_SHA256: PasswordAlgorithms<'static> =
        PasswordAlgorithms(AlgorithmsRepr::List(&[
            PasswordAlgorithm {
                algorithm: PasswordAlgorithmId::MD5,
                parameters: &[],
            },
            PasswordAlgorithm {
                algorithm: PasswordAlgorithmId::SHA256,
                parameters: &[],
            },
        ]));

    /// A list to write.
    pub const fn from_list(list: &'a [PasswordAlgorithm<'a>]) -> PasswordAlgorithms<'a> {
        PasswordAlgorithms(AlgorithmsRepr::List(list))
    }

    /// Checks a PASSWORD-ALGORITHMS value: a sequence of (algorithm,
    /// parameters length, parameters padded to 4 bytes).
    pub fn from_wire(value: &'a [u8]) -> Result<PasswordAlgorithms<'a>, Error> {
        let mut rest = value;
        while !rest.is_empty() {
            let (_, after) = read_algorithm(rest, AttributeType::PASSWORD_ALGORITHMS)?;
            rest = after;
        }
        Ok(PasswordAlgorithms(AlgorithmsRepr::Wire(value)))
    }

    /// The algorithms, in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = PasswordAlgorithm<'a>> + 'a {
        let (mut wire, list) = match self.0 {
            AlgorithmsRepr::Wire(bytes) => (bytes, &[][..]),
            AlgorithmsRepr::List(list) => (&[][..], list),
        };
        let from_wire = core::iter::from_fn(move || {
            // `from_wire` checked the whole list, so this cannot fail.
            let (alg, after) = read_algorithm(wire, AttributeType::PASSWORD_ALGORITHMS).ok()?;
            wire = after;
            Some(alg)
        });
        from_wire.chain(list.iter().copied())
    }

    /// Length of the value as a writer encodes it: every entry padded.
    ///
    /// A received value may be shorter: the parser accepts a last entry
    /// whose padding is left to the attribute's own padding.
    pub fn wire_len(&self) -> usize {
        self.iter().map(|alg| alg.wire_len()).sum()
    }
}

impl PartialEq for PasswordAlgorithms<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PasswordAlgorithms<'_> {}

impl fmt::Debug for PasswordAlgorithms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Reads one (algorithm, length, parameters, padding) entry; the padding
/// may be absent only for the last entry of a PASSWORD-ALGORITHM value,
/// whose own TLV padding follows.
fn read_algorithm(
    bytes: &[u8],
    typ: AttributeType,
) -> Result<(PasswordAlgorithm<'_>, &[u8]), Error> {
    let Some((head, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(Error::InvalidAttribute {
            typ,
            reason: "truncated algorithm entry",
        });
    };
    let algorithm = PasswordAlgorithmId(u16::from_be_bytes([head[0], head[1]]));
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let parameters = rest.get(..len).ok_or(Error::InvalidAttribute {
        typ,
        reason: "parameters overrun",
    })?;
    let after = rest
        .get(crate::message::padded_len(len)..)
        .unwrap_or_default();
    Ok((
        PasswordAlgorithm {
            algorithm,
            parameters,
        },
        after,
    ))
}

/// The list in UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): either as received or
/// as given to a writer.
#[derive(Clone, Copy)]
pub struct UnknownAttributes<'a>(UnknownRepr<'a>);

#[derive(Clone, Copy)]
enum UnknownRepr<'a> {
    Wire(&'a [u8]),
    List(&'a [AttributeType]),
}

impl<'a> UnknownAttributes<'a> {
    /// A list to write.
    pub const fn from_list(list: &'a [AttributeType]) -> UnknownAttributes<'a> {
        UnknownAttributes(UnknownRepr::List(list))
    }

    /// Checks an UNKNOWN-ATTRIBUTES value: 16-bit types, so an even length.
    pub fn from_wire(value: &'a [u8]) -> Result<UnknownAttributes<'a>, Error> {
        if !value.len().is_multiple_of(2) {
            return Err(Error::InvalidAttribute {
                typ: AttributeType::UNKNOWN_ATTRIBUTES,
                reason: "odd length",
            });
        }
        Ok(UnknownAttributes(UnknownRepr::Wire(value)))
    }

    /// The attribute types.
    pub fn iter(&self) -> impl Iterator<Item = AttributeType> + 'a {
        let (wire, list) = match self.0 {
            UnknownRepr::Wire(bytes) => (bytes, &[][..]),
            UnknownRepr::List(list) => (&[][..], list),
        };
        wire.chunks_exact(2)
            .map(|pair| AttributeType(u16::from_be_bytes([pair[0], pair[1]])))
            .chain(list.iter().copied())
    }

    /// Length of the value on the wire.
    pub fn wire_len(&self) -> usize {
        match self.0 {
            UnknownRepr::Wire(bytes) => bytes.len(),
            UnknownRepr::List(list) => 2 * list.len(),
        }
    }
}

impl PartialEq for UnknownAttributes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UnknownAttributes<'_> {}

impl fmt::Debug for UnknownAttributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A decoded attribute. Values borrow from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    XorMappedAddress(SocketAddr),
    /// USERNAME, at most 513 bytes of UTF-8 (RFC 8489 §14.3).
    Username(&'a str),
    /// USERHASH, SHA-256(username ":" realm) (RFC 8489 §14.4).
    Userhash(&'a [u8; 32]),
    /// MESSAGE-INTEGRITY as found; write one with [`crate::MessageBuilder::message_integrity`].
    MessageIntegrity(&'a [u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256 as found (16–32 bytes); write one with
    /// [`crate::MessageBuilder::message_integrity_sha256`].
    MessageIntegritySha256(&'a [u8]),
    /// FINGERPRINT as found; write one with [`crate::MessageBuilder::fingerprint`].
    Fingerprint(u32),
    /// ERROR-CODE (RFC 8489 §14.8): `code` is 300–699.
    ErrorCode {
        /// Class × 100 + number.
        code: u16,
        /// Reason phrase.
        reason: &'a str,
    },
    /// REALM (RFC 8489 §14.9).
    Realm(&'a str),
    /// NONCE (RFC 8489 §14.10).
    Nonce(&'a str),
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    UnknownAttributes(UnknownAttributes<'a>),
    /// SOFTWARE (RFC 8489 §14.14).
    Software(&'a str),
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    AlternateServer(SocketAddr),
    /// CHANNEL-NUMBER (RFC 8656 §18.1); the RFFU half is dropped.
    ChannelNumber(u16),
    /// LIFETIME in seconds (RFC 8656 §18.2).
    Lifetime(u32),
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    XorPeerAddress(SocketAddr),
    /// DATA (RFC 8656 §18.4).
    Data(&'a [u8]),
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    XorRelayedAddress(SocketAddr),
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    RequestedAddressFamily(AddressFamily),
    /// EVEN-PORT (RFC 8656 §18.7): whether the R bit asks to reserve the next port.
    EvenPort(bool),
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8): an IP protocol number (17 = UDP).
    RequestedTransport(u8),
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    DontFragment,
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    ReservationToken(&'a [u8; 8]),
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    AdditionalAddressFamily(AddressFamily),
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    AddressErrorCode {
        /// The family the error is about.
        family: AddressFamily,
        /// Class × 100 + number, 300–699.
        code: u16,
        /// Reason phrase.
        reason: &'a str,
    },
    /// PRIORITY (RFC 8445 §7.1.1): the priority a peer-reflexive candidate
    /// learned from this check would get.
    Priority(u32),
    /// USE-CANDIDATE (RFC 8445 §7.1.2): the controlling agent nominates the
    /// pair this check is sent on. No value.
    UseCandidate,
    /// ICE-CONTROLLED (RFC 8445 §7.1.3): the sender thinks it is controlled;
    /// the value is its tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING (RFC 8445 §7.1.3): the sender thinks it is
    /// controlling; the value is its tie-breaker.
    IceControlling(u64),
    /// Any other attribute, kept as is.
    Unknown(RawAttribute<'a>),
}

/// Longest USERNAME value (RFC 8489 §14.3).
pub const MAX_USERNAME_LEN: usize = 513;

/// Longest REALM, NONCE, SOFTWARE or reason phrase a receiver accepts: 127
/// characters can take 763 bytes (RFC 8489 §14.8–§14.10, §14.14).
pub const MAX_TEXT_LEN: usize = 763;

/// IP protocol number of UDP, for REQUESTED-TRANSPORT (RFC 8656 §18.8).
pub const PROTOCOL_UDP: u8 = 17;

impl<'a> Attribute<'a> {
    /// Checks `raw`'s value and returns its typed form. `tid` is the
    /// message's transaction ID, which the XOR address transform of IPv6
    /// addresses uses (RFC 8489 §14.2).
    pub fn decode(raw: RawAttribute<'a>, tid: &TransactionId) -> Result<Attribute<'a>, Error> {
        let typ = raw.typ;
        let v = raw.value;
        let invalid = |reason| Error::InvalidAttribute { typ, reason };
        Ok(match typ {
            AttributeType::MAPPED_ADDRESS => Attribute::MappedAddress(decode_address(typ, v)?),
            AttributeType::ALTERNATE_SERVER => Attribute::AlternateServer(decode_address(typ, v)?),
            AttributeType::XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(decode_xor_address(typ, v, tid)?)
            }
            AttributeType::XOR_PEER_ADDRESS => {
                Attribute::XorPeerAddress(decode_xor_address(typ, v, tid)?)
            }
            AttributeType::XOR_RELAYED_ADDRESS => {
                Attribute::XorRelayedAddress(decode_xor_address(typ, v, tid)?)
            }
            AttributeType::USERNAME => Attribute::Username(decode_text(typ, v, MAX_USERNAME_LEN)?),
            AttributeType::REALM => Attribute::Realm(decode_text(typ, v, MAX_TEXT_LEN)?),
            AttributeType::NONCE => Attribute::Nonce(decode_text(typ, v, MAX_TEXT_LEN)?),
            AttributeType::SOFTWARE => Attribute::Software(decode_text(typ, v, MAX_TEXT_LEN)?),
            AttributeType::USERHASH => {
                Attribute::Userhash(v.try_into().map_err(|_| invalid("length is not 32"))?)
            }
            AttributeType::MESSAGE_INTEGRITY => {
                Attribute::MessageIntegrity(v.try_into().map_err(|_| invalid("length is not 20"))?)
            }
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                if !(16..=32).contains(&v.len()) || !v.len().is_multiple_of(4) {
                    return Err(invalid("length is not 16..=32 in steps of 4"));
                }
                Attribute::MessageIntegritySha256(v)
            }
            AttributeType::FINGERPRINT => {
                Attribute::Fingerprint(be_u32(v).ok_or(invalid("length is not 4"))?)
            }
            AttributeType::ERROR_CODE => {
                let (code, reason) = decode_error_code(typ, v)?;
                Attribute::ErrorCode { code, reason }
            }
            AttributeType::ADDRESS_ERROR_CODE => {
                let family = v
                    .first()
                    .and_then(|b| AddressFamily::from_u8(*b))
                    .ok_or(invalid("bad family"))?;
                let (code, reason) = decode_error_code(typ, v)?;
                Attribute::AddressErrorCode {
                    family,
                    code,
                    reason,
                }
            }
            AttributeType::PASSWORD_ALGORITHMS => {
                Attribute::PasswordAlgorithms(PasswordAlgorithms::from_wire(v)?)
            }
            AttributeType::PASSWORD_ALGORITHM => {
                let (alg, rest) = read_algorithm(v, typ)?;
                if !rest.is_empty() {
                    return Err(invalid("trailing bytes"));
                }
                Attribute::PasswordAlgorithm(alg)
            }
            AttributeType::UNKNOWN_ATTRIBUTES => {
                Attribute::UnknownAttributes(UnknownAttributes::from_wire(v)?)
            }
            AttributeType::CHANNEL_NUMBER => {
                let word = be_u32(v).ok_or(invalid("length is not 4"))?;
                // The low 16 bits are RFFU: ignored on receipt (RFC 8656 §18.1).
                Attribute::ChannelNumber((word >> 16) as u16)
            }
            AttributeType::LIFETIME => {
                Attribute::Lifetime(be_u32(v).ok_or(invalid("length is not 4"))?)
            }
            AttributeType::DATA => Attribute::Data(v),
            AttributeType::REQUESTED_ADDRESS_FAMILY => {
                Attribute::RequestedAddressFamily(decode_family_word(typ, v)?)
            }
            AttributeType::ADDITIONAL_ADDRESS_FAMILY => {
                Attribute::AdditionalAddressFamily(decode_family_word(typ, v)?)
            }
            AttributeType::EVEN_PORT => match v {
                [flags] => Attribute::EvenPort(flags & 0x80 != 0),
                _ => return Err(invalid("length is not 1")),
            },
            AttributeType::REQUESTED_TRANSPORT => match v {
                // The 24 RFFU bits are ignored on receipt (RFC 8656 §18.8).
                [protocol, _, _, _] => Attribute::RequestedTransport(*protocol),
                _ => return Err(invalid("length is not 4")),
            },
            AttributeType::DONT_FRAGMENT => {
                if !v.is_empty() {
                    return Err(invalid("value is not empty"));
                }
                Attribute::DontFragment
            }
            AttributeType::RESERVATION_TOKEN => {
                Attribute::ReservationToken(v.try_into().map_err(|_| invalid("length is not 8"))?)
            }
            AttributeType::PRIORITY => {
                Attribute::Priority(be_u32(v).ok_or(invalid("length is not 4"))?)
            }
            AttributeType::USE_CANDIDATE => {
                if !v.is_empty() {
                    return Err(invalid("value is not empty"));
                }
                Attribute::UseCandidate
            }
            AttributeType::ICE_CONTROLLED => {
                Attribute::IceControlled(be_u64(v).ok_or(invalid("length is not 8"))?)
            }
            AttributeType::ICE_CONTROLLING => {
                Attribute::IceControlling(be_u64(v).ok_or(invalid("length is not 8"))?)
            }
            _ => Attribute::Unknown(raw),
        })
    }

    /// The attribute's type.
    pub fn typ(&self) -> AttributeType {
        match self {
            Attribute::MappedAddress(_) => AttributeType::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => AttributeType::XOR_MAPPED_ADDRESS,
            Attribute::Username(_) => AttributeType::USERNAME,
            Attribute::Userhash(_) => AttributeType::USERHASH,
            Attribute::MessageIntegrity(_) => AttributeType::MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => AttributeType::MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => AttributeType::FINGERPRINT,
            Attribute::ErrorCode { .. } => AttributeType::ERROR_CODE,
            Attribute::Realm(_) => AttributeType::REALM,
            Attribute::Nonce(_) => AttributeType::NONCE,
            Attribute::PasswordAlgorithms(_) => AttributeType::PASSWORD_ALGORITHMS,
            Attribute::PasswordAlgorithm(_) => AttributeType::PASSWORD_ALGORITHM,
            Attribute::UnknownAttributes(_) => AttributeType::UNKNOWN_ATTRIBUTES,
            Attribute::Software(_) => AttributeType::SOFTWARE,
            Attribute::AlternateServer(_) => AttributeType::ALTERNATE_SERVER,
            Attribute::ChannelNumber(_) => AttributeType::CHANNEL_NUMBER,
            Attribute::Lifetime(_) => AttributeType::LIFETIME,
            Attribute::XorPeerAddress(_) => AttributeType::XOR_PEER_ADDRESS,
            Attribute::Data(_) => AttributeType::DATA,
            Attribute::XorRelayedAddress(_) => AttributeType::XOR_RELAYED_ADDRESS,
            Attribute::RequestedAddressFamily(_) => AttributeType::REQUESTED_ADDRESS_FAMILY,
            Attribute::EvenPort(_) => AttributeType::EVEN_PORT,
            Attribute::RequestedTransport(_) => AttributeType::REQUESTED_TRANSPORT,
            Attribute::DontFragment => AttributeType::DONT_FRAGMENT,
            Attribute::ReservationToken(_) => AttributeType::RESERVATION_TOKEN,
            Attribute::AdditionalAddressFamily(_) => AttributeType::ADDITIONAL_ADDRESS_FAMILY,
            Attribute::AddressErrorCode { .. } => AttributeType::ADDRESS_ERROR_CODE,
            Attribute::Priority(_) => AttributeType::PRIORITY,
            Attribute::UseCandidate => AttributeType::USE_CANDIDATE,
            Attribute::IceControlled(_) => AttributeType::ICE_CONTROLLED,
            Attribute::IceControlling(_) => AttributeType::ICE_CONTROLLING,
            Attribute::Unknown(raw) => raw.typ,
        }
    }
}

fn be_u32(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

fn be_u64(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

/// Text values: UTF-8 of bounded length.
fn decode_text(typ: AttributeType, v: &[u8], max: usize) -> Result<&str, Error> {
    if v.len() > max {
        return Err(Error::InvalidAttribute {
            typ,
            reason: "too long",
        });
    }
    core::str::from_utf8(v).map_err(|_| Error::InvalidAttribute {
        typ,
        reason: "not UTF-8",
    })
}

/// ERROR-CODE / ADDRESS-ERROR-CODE: class in bits 21–23, number in the
/// last byte, then the reason (RFC 8489 §14.8, RFC 8656 §18.12). The first
/// byte (reserved, or the family) is read by the caller.
fn decode_error_code(typ: AttributeType, v: &[u8]) -> Result<(u16, &str), Error> {
    let Some((head, reason)) = v.split_first_chunk::<4>() else {
        return Err(Error::InvalidAttribute {
            typ,
            reason: "shorter than 4 bytes",
        });
    };
    let class = u16::from(head[2] & 0x07);
    let number = u16::from(head[3]);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(Error::InvalidAttribute {
            typ,
            reason: "code out of 300..=699",
        });
    }
    Ok((
        class * 100 + number,
        decode_text(typ, reason, MAX_TEXT_LEN)?,
    ))
}

/// REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY: family then 24 RFFU bits.
fn decode_family_word(typ: AttributeType, v: &[u8]) -> Result<AddressFamily, Error> {
    match v {
        [family, _, _, _] => AddressFamily::from_u8(*family).ok_or(Error::InvalidAttribute {
            typ,
            reason: "bad family",
        }),
        _ => Err(Error::InvalidAttribute {
            typ,
            reason: "length is not 4",
        }),
    }
}

/// MAPPED-ADDRESS form (RFC 8489 §14.1): a reserved byte (ignored), the
/// family, the port, then 4 or 16 address bytes.
fn decode_address(typ: AttributeType, v: &[u8]) -> Result<SocketAddr, Error> {
    match v {
        [_, 0x01, p0, p1, a @ ..] => {
            let a: [u8; 4] = a.try_into().map_err(|_| Error::InvalidAttribute {
                typ,
                reason: "IPv4 length",
            })?;
            Ok(SocketAddr::new(
                Ipv4Addr::from(a).into(),
                u16::from_be_bytes([*p0, *p1]),
            ))
        }
        [_, 0x02, p0, p1, a @ ..] => {
            let a: [u8; 16] = a.try_into().map_err(|_| Error::InvalidAttribute {
                typ,
                reason: "IPv6 length",
            })?;
            Ok(SocketAddr::new(
                Ipv6Addr::from(a).into(),
                u16::from_be_bytes([*p0, *p1]),
            ))
        }
        [_, _, _, _, ..] => Err(Error::InvalidAttribute {
            typ,
            reason: "bad family",
        }),
        _ => Err(Error::InvalidAttribute {
            typ,
            reason: "shorter than 4 bytes",
        }),
    }
}

/// XOR-MAPPED-ADDRESS form (RFC 8489 §14.2): the port is XORed with the
/// cookie's top 16 bits, an IPv4 address with the cookie, an IPv6 address
/// with the cookie followed by the transaction ID.
pub(crate) fn decode_xor_address(
    typ: AttributeType,
    v: &[u8],
    tid: &TransactionId,
) -> Result<SocketAddr, Error> {
    let addr = decode_address(typ, v)?;
    Ok(xor_address(addr, tid))
}

/// The XOR transform of RFC 8489 §14.2; it is its own inverse.
pub(crate) fn xor_address(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match addr.ip() {
        IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(u32::from(ip) ^ MAGIC_COOKIE)),
        IpAddr::V6(ip) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(&tid.0);
            let x = u128::from(ip) ^ u128::from_be_bytes(mask);
            IpAddr::V6(Ipv6Addr::from(x))
        }
    };
    SocketAddr::new(ip, port)
}

/// Length of an address value (RFC 8489 §14.1).
pub(crate) const fn address_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// Writes an address value in MAPPED-ADDRESS form into `out`, which is
/// exactly [`address_len`] long.
pub(crate) fn write_address(out: &mut [u8], addr: &SocketAddr) {
    let family = AddressFamily::of(&addr.ip()).to_u8();
    let port = addr.port().to_be_bytes();
    if let Some((head, rest)) = out.split_first_chunk_mut::<4>() {
        *head = [0, family, port[0], port[1]];
        match addr.ip() {
            IpAddr::V4(ip) => copy_prefix(rest, &ip.octets()),
            IpAddr::V6(ip) => copy_prefix(rest, &ip.octets()),
        }
    }
}

fn copy_prefix(out: &mut [u8], src: &[u8]) {
    for (o, s) in out.iter_mut().zip(src) {
        *o = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    fn raw(typ: AttributeType, value: &[u8]) -> RawAttribute<'_> {
        RawAttribute { typ, value }
    }

    fn invalid(typ: AttributeType, value: &[u8]) -> bool {
        matches!(Attribute::decode(raw(typ, value), &TID), Err(Error::InvalidAttribute { typ: t, .. }) if t == typ)
    }

    #[test]
    fn xor_address_matches_rfc5769_values() {
        // RFC 5769 §2.2: 192.0.2.1:32853 is sent as port a147, address e112a643.
        let v4 = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let addr = decode_xor_address(AttributeType::XOR_MAPPED_ADDRESS, &v4, &TID).unwrap();
        assert_eq!(addr, "192.0.2.1:32853".parse().unwrap());
        let mut out = [0u8; 8];
        write_address(&mut out, &xor_address(addr, &TID));
        assert_eq!(out, v4);
        // RFC 5769 §2.3: the IPv6 address is XORed with cookie || transaction ID.
        let v6 = [
            0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
            0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        ];
        let addr = decode_xor_address(AttributeType::XOR_MAPPED_ADDRESS, &v6, &TID).unwrap();
        assert_eq!(
            addr,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()
        );
        let mut out = [0u8; 20];
        write_address(&mut out, &xor_address(addr, &TID));
        assert_eq!(out, v6);
    }

    #[test]
    fn plain_address_is_not_xored() {
        let value = [0x00, 0x01, 0x0d, 0x96, 192, 0, 2, 7];
        let attr = Attribute::decode(raw(AttributeType::MAPPED_ADDRESS, &value), &TID).unwrap();
        assert_eq!(
            attr,
            Attribute::MappedAddress("192.0.2.7:3478".parse().unwrap())
        );
        let attr = Attribute::decode(raw(AttributeType::ALTERNATE_SERVER, &value), &TID).unwrap();
        assert_eq!(
            attr,
            Attribute::AlternateServer("192.0.2.7:3478".parse().unwrap())
        );
    }

    #[test]
    fn malformed_addresses_are_errors() {
        let t = AttributeType::XOR_PEER_ADDRESS;
        assert!(invalid(t, &[]));
        assert!(invalid(t, &[0, 1, 0]));
        assert!(invalid(t, &[0, 1, 0, 0]));
        assert!(invalid(t, &[0, 1, 0, 0, 1, 2, 3]));
        assert!(invalid(t, &[0, 1, 0, 0, 1, 2, 3, 4, 5]));
        assert!(invalid(t, &[0, 2, 0, 0, 1, 2, 3, 4]));
        assert!(invalid(t, &[0, 3, 0, 0, 1, 2, 3, 4]));
        assert!(invalid(t, &[0; 21]));
    }

    #[test]
    fn text_attributes_check_utf8_and_length() {
        assert!(invalid(AttributeType::USERNAME, &[0xff, 0xfe]));
        assert!(invalid(AttributeType::USERNAME, &[b'a'; 514]));
        assert!(Attribute::decode(raw(AttributeType::USERNAME, &[b'a'; 513]), &TID).is_ok());
        assert!(invalid(AttributeType::REALM, &[b'r'; 764]));
        assert!(invalid(AttributeType::NONCE, &[0xc3]));
        assert!(invalid(AttributeType::SOFTWARE, &[0x80]));
        assert_eq!(
            Attribute::decode(raw(AttributeType::REALM, b"example.org"), &TID),
            Ok(Attribute::Realm("example.org"))
        );
    }

    #[test]
    fn fixed_length_attributes_reject_other_lengths() {
        assert!(invalid(AttributeType::USERHASH, &[0; 31]));
        assert!(invalid(AttributeType::MESSAGE_INTEGRITY, &[0; 21]));
        assert!(invalid(AttributeType::MESSAGE_INTEGRITY_SHA256, &[0; 12]));
        assert!(invalid(AttributeType::MESSAGE_INTEGRITY_SHA256, &[0; 18]));
        assert!(invalid(AttributeType::MESSAGE_INTEGRITY_SHA256, &[0; 36]));
        assert!(invalid(AttributeType::FINGERPRINT, &[0; 3]));
        assert!(invalid(AttributeType::CHANNEL_NUMBER, &[0x40, 0x00]));
        assert!(invalid(AttributeType::LIFETIME, &[0; 8]));
        assert!(invalid(AttributeType::REQUESTED_TRANSPORT, &[17]));
        assert!(invalid(AttributeType::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0]));
        assert!(invalid(
            AttributeType::REQUESTED_ADDRESS_FAMILY,
            &[3, 0, 0, 0]
        ));
        assert!(invalid(
            AttributeType::ADDITIONAL_ADDRESS_FAMILY,
            &[0, 0, 0, 0]
        ));
        assert!(invalid(AttributeType::EVEN_PORT, &[]));
        assert!(invalid(AttributeType::EVEN_PORT, &[0x80, 0]));
        assert!(invalid(AttributeType::DONT_FRAGMENT, &[0]));
        assert!(invalid(AttributeType::RESERVATION_TOKEN, &[0; 7]));
        assert!(invalid(AttributeType::UNKNOWN_ATTRIBUTES, &[0, 1, 0]));
    }

    #[test]
    fn turn_fixed_values_decode() {
        let d = |t, v: &'static [u8]| Attribute::decode(raw(t, v), &TID).unwrap();
        assert_eq!(
            d(AttributeType::CHANNEL_NUMBER, &[0x40, 0x01, 0xab, 0xcd]),
            Attribute::ChannelNumber(0x4001)
        );
        assert_eq!(
            d(AttributeType::LIFETIME, &[0, 0, 0x02, 0x58]),
            Attribute::Lifetime(600)
        );
        assert_eq!(
            d(AttributeType::REQUESTED_TRANSPORT, &[17, 0, 0, 0]),
            Attribute::RequestedTransport(17)
        );
        assert_eq!(
            d(AttributeType::EVEN_PORT, &[0x80]),
            Attribute::EvenPort(true)
        );
        assert_eq!(
            d(AttributeType::EVEN_PORT, &[0x7f]),
            Attribute::EvenPort(false)
        );
        assert_eq!(
            d(AttributeType::DONT_FRAGMENT, &[]),
            Attribute::DontFragment
        );
        assert_eq!(
            d(AttributeType::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]),
            Attribute::RequestedAddressFamily(AddressFamily::V6)
        );
        assert_eq!(
            d(AttributeType::RESERVATION_TOKEN, &[1, 2, 3, 4, 5, 6, 7, 8]),
            Attribute::ReservationToken(&[1, 2, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn error_codes_decode_and_reject_bad_classes() {
        let v = [0, 0, 4, 1, b'U', b'n', b'a', b'u', b't', b'h'];
        assert_eq!(
            Attribute::decode(raw(AttributeType::ERROR_CODE, &v), &TID),
            Ok(Attribute::ErrorCode {
                code: 401,
                reason: "Unauth"
            })
        );
        assert!(invalid(AttributeType::ERROR_CODE, &[0, 0, 2, 0]));
        assert!(invalid(AttributeType::ERROR_CODE, &[0, 0, 7, 0]));
        assert!(invalid(AttributeType::ERROR_CODE, &[0, 0, 4, 100]));
        assert!(invalid(AttributeType::ERROR_CODE, &[0, 0, 4]));
        assert!(invalid(AttributeType::ERROR_CODE, &[0, 0, 4, 0, 0xff]));
        let v = [2, 0, 4, 40, b'x'];
        assert_eq!(
            Attribute::decode(raw(AttributeType::ADDRESS_ERROR_CODE, &v), &TID),
            Ok(Attribute::AddressErrorCode {
                family: AddressFamily::V6,
                code: 440,
                reason: "x"
            })
        );
        assert!(invalid(AttributeType::ADDRESS_ERROR_CODE, &[9, 0, 4, 40]));
    }

    #[test]
    fn password_algorithms_list() {
        let v = [0, 1, 0, 0, 0, 2, 0, 0];
        let Attribute::PasswordAlgorithms(list) =
            Attribute::decode(raw(AttributeType::PASSWORD_ALGORITHMS, &v), &TID).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(list, PasswordAlgorithms::MD5_AND_SHA256);
        let ids: Vec<_> = list.iter().map(|a| a.algorithm).collect();
        assert_eq!(
            ids,
            vec![PasswordAlgorithmId::MD5, PasswordAlgorithmId::SHA256]
        );
        // Parameters with padding, then a parameter length that overruns.
        let v = [0, 9, 0, 3, 1, 2, 3, 0, 0, 2, 0, 0];
        let Attribute::PasswordAlgorithms(list) =
            Attribute::decode(raw(AttributeType::PASSWORD_ALGORITHMS, &v), &TID).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(list.iter().next().unwrap().parameters, &[1, 2, 3]);
        assert_eq!(list.iter().count(), 2);
        assert!(invalid(
            AttributeType::PASSWORD_ALGORITHMS,
            &[0, 1, 0, 8, 0, 0]
        ));
        assert!(invalid(AttributeType::PASSWORD_ALGORITHMS, &[0, 1, 0]));
        assert_eq!(
            Attribute::decode(raw(AttributeType::PASSWORD_ALGORITHM, &[0, 2, 0, 0]), &TID),
            Ok(Attribute::PasswordAlgorithm(PasswordAlgorithm {
                algorithm: PasswordAlgorithmId::SHA256,
                parameters: &[]
            }))
        );
        assert!(invalid(
            AttributeType::PASSWORD_ALGORITHM,
            &[0, 2, 0, 0, 0, 1, 0, 0]
        ));
    }

    #[test]
    fn unknown_attributes_list() {
        let v = [0x00, 0x24, 0x7f, 0xff];
        let Attribute::UnknownAttributes(list) =
            Attribute::decode(raw(AttributeType::UNKNOWN_ATTRIBUTES, &v), &TID).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(
            list,
            UnknownAttributes::from_list(&[AttributeType(0x0024), AttributeType(0x7fff)])
        );
    }

    #[test]
    fn unknown_types_are_kept_raw() {
        let r = raw(AttributeType(0x8099), &[1, 2, 3]);
        assert_eq!(Attribute::decode(r, &TID), Ok(Attribute::Unknown(r)));
        assert!(!AttributeType(0x8099).is_known());
        assert!(!AttributeType(0x8099).is_comprehension_required());
        assert!(AttributeType(0x0031).is_comprehension_required());
        assert!(!AttributeType(0x0031).is_known());
        assert!(AttributeType::XOR_PEER_ADDRESS.is_known());
    }

    #[test]
    fn ice_attributes_decode() {
        let d = |t, v: &'static [u8]| Attribute::decode(raw(t, v), &TID).unwrap();
        // RFC 5769 §2.1's PRIORITY and ICE-CONTROLLED values.
        assert_eq!(
            d(AttributeType::PRIORITY, &[0x6e, 0x00, 0x01, 0xff]),
            Attribute::Priority(0x6e00_01ff)
        );
        assert_eq!(
            d(
                AttributeType::ICE_CONTROLLED,
                &[0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36]
            ),
            Attribute::IceControlled(0x932f_f9b1_5126_3b36)
        );
        assert_eq!(
            d(AttributeType::ICE_CONTROLLING, &[0, 0, 0, 0, 0, 0, 1, 2]),
            Attribute::IceControlling(0x0102)
        );
        assert_eq!(
            d(AttributeType::USE_CANDIDATE, &[]),
            Attribute::UseCandidate
        );
        assert!(AttributeType::PRIORITY.is_comprehension_required());
        assert!(AttributeType::USE_CANDIDATE.is_comprehension_required());
        assert!(!AttributeType::ICE_CONTROLLED.is_comprehension_required());
        assert!(!AttributeType::ICE_CONTROLLING.is_comprehension_required());
    }

    #[test]
    fn ice_attributes_reject_other_lengths() {
        assert!(invalid(AttributeType::PRIORITY, &[]));
        assert!(invalid(AttributeType::PRIORITY, &[0; 3]));
        assert!(invalid(AttributeType::PRIORITY, &[0; 8]));
        assert!(invalid(AttributeType::USE_CANDIDATE, &[0]));
        assert!(invalid(AttributeType::USE_CANDIDATE, &[0; 4]));
        assert!(invalid(AttributeType::ICE_CONTROLLED, &[0; 4]));
        assert!(invalid(AttributeType::ICE_CONTROLLED, &[0; 9]));
        assert!(invalid(AttributeType::ICE_CONTROLLING, &[0; 7]));
        assert!(invalid(AttributeType::ICE_CONTROLLING, &[]));
    }

    #[test]
    fn codepoints_match_the_iana_registry() {
        // RFC 8489 §18.3 and RFC 8656 §19.
        let expected: &[(AttributeType, u16)] = &[
            (AttributeType::MAPPED_ADDRESS, 0x0001),
            (AttributeType::USERNAME, 0x0006),
            (AttributeType::MESSAGE_INTEGRITY, 0x0008),
            (AttributeType::ERROR_CODE, 0x0009),
            (AttributeType::UNKNOWN_ATTRIBUTES, 0x000A),
            (AttributeType::CHANNEL_NUMBER, 0x000C),
            (AttributeType::LIFETIME, 0x000D),
            (AttributeType::XOR_PEER_ADDRESS, 0x0012),
            (AttributeType::DATA, 0x0013),
            (AttributeType::REALM, 0x0014),
            (AttributeType::NONCE, 0x0015),
            (AttributeType::XOR_RELAYED_ADDRESS, 0x0016),
            (AttributeType::REQUESTED_ADDRESS_FAMILY, 0x0017),
            (AttributeType::EVEN_PORT, 0x0018),
            (AttributeType::REQUESTED_TRANSPORT, 0x0019),
            (AttributeType::DONT_FRAGMENT, 0x001A),
            (AttributeType::MESSAGE_INTEGRITY_SHA256, 0x001C),
            (AttributeType::PASSWORD_ALGORITHM, 0x001D),
            (AttributeType::USERHASH, 0x001E),
            (AttributeType::XOR_MAPPED_ADDRESS, 0x0020),
            (AttributeType::RESERVATION_TOKEN, 0x0022),
            (AttributeType::PRIORITY, 0x0024),
            (AttributeType::USE_CANDIDATE, 0x0025),
            (AttributeType::ADDITIONAL_ADDRESS_FAMILY, 0x8000),
            (AttributeType::ADDRESS_ERROR_CODE, 0x8001),
            (AttributeType::PASSWORD_ALGORITHMS, 0x8002),
            (AttributeType::SOFTWARE, 0x8022),
            (AttributeType::ALTERNATE_SERVER, 0x8023),
            (AttributeType::FINGERPRINT, 0x8028),
            // RFC 8445 §16.1.
            (AttributeType::ICE_CONTROLLED, 0x8029),
            (AttributeType::ICE_CONTROLLING, 0x802A),
        ];
        for (typ, value) in expected {
            assert_eq!(typ.0, *value, "{typ}");
            assert!(typ.is_known());
        }
    }
}
