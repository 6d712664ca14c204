//! A TUN device as the load generator's network (`uturn-media-load --tun`).
//!
//! On loopback the kernel runs the receiver's whole network stack inside
//! the sender's `sendmsg`: every datagram the relay sends to a viewer also
//! charges the relay's core with that viewer's IP and UDP receive path and,
//! later, with freeing its buffer. A real viewer is on another machine, so
//! that work is not the relay's. Behind a TUN device it is not either: the
//! relay's datagram leaves through the device like through a NIC (route,
//! qdisc) and waits in the device's ring, from which this generator reads
//! the raw IPv4 packet on its own core. What the generator sends it writes to the
//! device as IPv4/UDP packets, which the kernel receives like packets from
//! the wire.
//!
//! The device is opened with a virtio-net header (`IFF_VNET_HDR`) and
//! offers checksum and UDP segmentation offload (`TUN_F_CSUM |
//! TUN_F_USO4 | TUN_F_USO6`, Linux ≥ 6.2), as the NICs relays run on do
//! (mlx5, ice, i40e): the relay's kernel then neither checksums its datagrams nor
//! splits a UDP GSO send, and this generator splits it by the header's
//! `gso_size`, as such a NIC does in hardware. On older kernels it offers
//! checksum offload only.
//!
//! Every peer is `ADDR:port` on the device's network (ADDR the generator's
//! `--bind`, a port per peer); the relay listens on the device's own
//! address. This module builds and parses the IPv4 (RFC 791) and UDP
//! (RFC 768) headers for that; nothing else crosses the device.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const IPV4_HEADER: usize = 20;
/// `struct virtio_net_hdr` (linux/virtio_net.h), the device's default
/// vnet header: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset; little-endian on the machines this runs on.
const VNET_HEADER: usize = 10;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: a UDP GSO packet, `gso_size` per datagram.
const GSO_UDP_L4: u8 = 5;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;

/// An open TUN device (`IFF_TUN | IFF_NO_PI`: raw IP packets, no
/// packet-information prefix), non-blocking.
#[derive(Debug)]
pub struct Tun {
    file: File,
    /// IP identification of the next packet written.
    next_id: u16,
    /// Whether the device offers UDP segmentation offload.
    uso: bool,
}

impl Tun {
    /// Attaches to the TUN device `name` (created beforehand, e.g. with
    /// `ip tuntap add dev NAME mode tun`, addressed and up). Needs
    /// `CAP_NET_ADMIN`.
    #[allow(unsafe_code)]
    pub fn open(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TUN device name {name:?}: 1 to 15 bytes"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")?;
        // SAFETY: all-zero is a valid ifreq.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags =
            (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives on this
        // stack frame for the whole call; the descriptor is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        let offload = |flags: libc::c_uint| {
            // SAFETY: TUNSETOFFLOAD takes its argument by value.
            let rc = unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(flags),
                )
            };
            rc == 0
        };
        // The kernel takes UDP segmentation offload for both families or
        // neither.
        let uso = offload(libc::TUN_F_CSUM | libc::TUN_F_USO4 | libc::TUN_F_USO6);
        if !uso && !offload(libc::TUN_F_CSUM) {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("TUNSETOFFLOAD {name}: {e}"),
            ));
        }
        Ok(Self {
            file,
            next_id: 0,
            uso,
        })
    }

    /// Whether the relay's UDP GSO sends reach this device unsplit.
    pub fn segmentation_offload(&self) -> bool {
        self.uso
    }

    /// Writes one UDP datagram from `from` to `to` as an IPv4 packet
    /// (built in `scratch`). `WouldBlock` means the kernel refused it now.
    pub fn send(
        &mut self,
        from: SocketAddrV4,
        to: SocketAddrV4,
        payload: &[u8],
        scratch: &mut Vec<u8>,
    ) -> io::Result<()> {
        // A zero vnet header: no offload asked, the checksums are complete.
        scratch.clear();
        scratch.extend_from_slice(&[0; VNET_HEADER]);
        write_ipv4_udp(from, to, self.next_id, payload, scratch)?;
        self.next_id = self.next_id.wrapping_add(1);
        let written = self.file.write(scratch)?;
        if written != scratch.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "TUN device took part of a packet",
            ));
        }
        Ok(())
    }

    /// Reads one packet, with its vnet header, into `buf` (64 KiB for a
    /// GSO packet): its length, or `None` when none waits. [`datagrams`]
    /// takes it apart.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The UDP datagrams in one read from the device: one, or a GSO packet's
/// `gso_size` pieces, each with the packet's addresses. Empty for anything
/// that is not IPv4/UDP.
pub fn datagrams(read: &[u8]) -> impl Iterator<Item = Ipv4Udp<'_>> {
    let parsed = read
        .get(..VNET_HEADER)
        .zip(read.get(VNET_HEADER..))
        .and_then(|(vnet, packet)| {
            let udp = parse_ipv4_udp(packet)?;
            let gso_size = usize::from(u16::from_le_bytes([vnet[4], vnet[5]]));
            let piece = if vnet[1] & 0x7f == GSO_UDP_L4 && gso_size > 0 {
                gso_size
            } else {
                udp.payload.len().max(1)
            };
            Some((udp, piece))
        });
    parsed.into_iter().flat_map(|(udp, piece)| {
        // A zero-length datagram is still one datagram (`chunks` of an
        // empty payload yields none).
        let empty = udp.payload.is_empty();
        std::iter::once(udp.payload)
            .filter(move |_| empty)
            .chain(udp.payload.chunks(piece))
            .map(move |payload| Ipv4Udp { payload, ..udp })
    })
}

/// Appends to `out` an IPv4 packet (DF set, TTL 64, no options) carrying
/// one UDP datagram, both checksums computed.
pub fn write_ipv4_udp(
    from: SocketAddrV4,
    to: SocketAddrV4,
    id: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let udp_len = UDP_HEADER + payload.len();
    let total = IPV4_HEADER + udp_len;
    let (Ok(total16), Ok(udp16)) = (u16::try_from(total), u16::try_from(udp_len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte payload does not fit an IPv4 packet",
                payload.len()
            ),
        ));
    };
    let start = out.len();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total16.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    out.extend_from_slice(&[64, PROTO_UDP, 0, 0]);
    out.extend_from_slice(&from.ip().octets());
    out.extend_from_slice(&to.ip().octets());
    let ip_sum = !fold(sum(0, &out[start..start + IPV4_HEADER]));
    out[start + 10..start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let udp_start = start + IPV4_HEADER;

    out.extend_from_slice(&from.port().to_be_bytes());
    out.extend_from_slice(&to.port().to_be_bytes());
    out.extend_from_slice(&udp16.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let udp_sum = !fold(sum(
        pseudo_header(*from.ip(), *to.ip(), udp16),
        &out[udp_start..],
    ));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    let udp_sum = if udp_sum == 0 { 0xffff } else { udp_sum };
    out[udp_start + 6..udp_start + 8].copy_from_slice(&udp_sum.to_be_bytes());
    Ok(())
}

/// A UDP datagram in an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Udp<'a> {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: &'a [u8],
}

/// The UDP datagram in `packet`, or `None` for anything else (IPv6, other
/// protocols, fragments, inconsistent lengths). Checksums are not checked:
/// the packets come from this host's kernel.
pub fn parse_ipv4_udp(packet: &[u8]) -> Option<Ipv4Udp<'_>> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let flags_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    // More-fragments set, or a non-zero offset: a fragment.
    if header < IPV4_HEADER || flags_offset & 0x3fff != 0 || *packet.get(9)? != PROTO_UDP {
        return None;
    }
    let ip = packet.get(..total)?;
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let (src, dst) = (addr(12)?, addr(16)?);
    let udp = ip.get(header..)?;
    let port =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*udp.get(at)?, *udp.get(at + 1)?])) };
    let udp_len = usize::from(port(4)?);
    if udp_len < UDP_HEADER {
        return None;
    }
    Some(Ipv4Udp {
        source: SocketAddrV4::new(src, port(0)?),
        destination: SocketAddrV4::new(dst, port(2)?),
        payload: udp.get(UDP_HEADER..udp_len)?,
    })
}

/// The ones' complement sum's pseudo-header part (RFC 768).
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, udp_len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(PROTO_UDP) + u32::from(udp_len)
}

/// Adds `data` as big-endian 16-bit words (an odd last byte padded with
/// zero) to `acc`, unfolded.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds the carries of an unfolded sum into 16 bits.
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().expect("an address")
    }

    #[test]
    fn built_packet_parses_back_with_valid_checksums() {
        let mut out = Vec::new();
        for len in [0usize, 1, 2, 99, 1200] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let (from, to) = (a("10.77.0.2:20001"), a("10.77.0.1:3478"));
            out.clear();
            write_ipv4_udp(from, to, 0x1234, &payload, &mut out).unwrap();
            assert_eq!(out.len(), 28 + len);
            // A receiver's check (RFC 791, RFC 768): the sum over the
            // header, checksum included, folds to all ones.
            assert_eq!(fold(sum(0, &out[..20])), 0xffff, "IPv4 header, {len} bytes");
            let udp_len = (8 + len) as u16;
            assert_eq!(
                fold(sum(
                    pseudo_header(*from.ip(), *to.ip(), udp_len),
                    &out[20..]
                )),
                0xffff,
                "UDP, {len} bytes"
            );
            let parsed = parse_ipv4_udp(&out).expect("parses");
            assert_eq!(parsed.source, from);
            assert_eq!(parsed.destination, to);
            assert_eq!(parsed.payload, &payload[..]);
        }
    }

    #[test]
    fn header_fields_are_where_rfc_791_puts_them() {
        let mut out = Vec::new();
        write_ipv4_udp(a("1.2.3.4:5"), a("6.7.8.9:10"), 0xabcd, b"xy", &mut out).unwrap();
        assert_eq!(
            &out[..20],
            &[
                0x45, 0, 0, 30, 0xab, 0xcd, 0x40, 0, 64, 17, out[10], out[11], 1, 2, 3, 4, 6, 7, 8,
                9
            ]
        );
        assert_eq!(&out[20..26], &[0, 5, 0, 10, 0, 10]);
        assert_eq!(&out[28..], b"xy");
    }

    #[test]
    fn other_packets_are_not_udp_datagrams() {
        let mut good = Vec::new();
        write_ipv4_udp(a("10.0.0.2:1"), a("10.0.0.1:2"), 0, b"data", &mut good).unwrap();
        assert!(parse_ipv4_udp(&good).is_some());
        // IPv6.
        let mut v6 = good.clone();
        v6[0] = 0x60;
        assert_eq!(parse_ipv4_udp(&v6), None);
        // TCP.
        let mut tcp = good.clone();
        tcp[9] = 6;
        assert_eq!(parse_ipv4_udp(&tcp), None);
        // A fragment (more fragments set), and a later fragment.
        let mut frag = good.clone();
        frag[6] = 0x20;
        assert_eq!(parse_ipv4_udp(&frag), None);
        let mut later = good.clone();
        later[7] = 1;
        assert_eq!(parse_ipv4_udp(&later), None);
        // Lengths beyond the packet, a short UDP length, a short header.
        let mut long = good.clone();
        long[3] = 200;
        assert_eq!(parse_ipv4_udp(&long), None);
        let mut short_udp = good.clone();
        short_udp[25] = 4;
        assert_eq!(parse_ipv4_udp(&short_udp), None);
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        assert_eq!(parse_ipv4_udp(&ihl), None);
        // Every truncation: never a panic, never a datagram.
        for n in 0..good.len() {
            assert_eq!(parse_ipv4_udp(&good[..n]), None, "{n} bytes");
        }
    }

    /// A read: a vnet header (`gso_type`, `gso_size`) and the packet.
    fn read_of(gso_type: u8, gso_size: u16, payload: &[u8]) -> Vec<u8> {
        let mut read = vec![0u8; VNET_HEADER];
        read[1] = gso_type;
        read[4..6].copy_from_slice(&gso_size.to_le_bytes());
        write_ipv4_udp(
            a("10.0.0.1:3478"),
            a("10.0.0.2:20007"),
            9,
            payload,
            &mut read,
        )
        .unwrap();
        read
    }

    #[test]
    fn gso_packet_splits_into_gso_size_datagrams() {
        let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let read = read_of(GSO_UDP_L4, 100, &payload);
        let got: Vec<Ipv4Udp<'_>> = datagrams(&read).collect();
        let sizes: Vec<usize> = got.iter().map(|d| d.payload.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let joined: Vec<u8> = got.iter().flat_map(|d| d.payload.iter().copied()).collect();
        assert_eq!(joined, payload);
        for d in &got {
            assert_eq!(d.source, a("10.0.0.1:3478"));
            assert_eq!(d.destination, a("10.0.0.2:20007"));
        }
        // The ECN bit does not change the type.
        assert_eq!(
            datagrams(&read_of(GSO_UDP_L4 | 0x80, 100, &payload)).count(),
            3
        );
    }

    #[test]
    fn plain_packet_is_one_datagram() {
        let payload = [7u8; 300];
        // No GSO, or GSO of another kind: the whole payload.
        for gso_type in [0u8, 1] {
            let read = read_of(gso_type, 100, &payload);
            let got: Vec<Ipv4Udp<'_>> = datagrams(&read).collect();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].payload, &payload[..]);
        }
        // An empty datagram is a datagram; a UDP GSO header with size 0
        // does not split.
        assert_eq!(datagrams(&read_of(0, 0, &[])).count(), 1);
        assert_eq!(datagrams(&read_of(GSO_UDP_L4, 0, &payload)).count(), 1);
        // Too short for the vnet header, or not UDP: nothing.
        assert_eq!(datagrams(&[0u8; 5]).count(), 0);
        let mut v6 = read_of(0, 0, &payload);
        v6[VNET_HEADER] = 0x60;
        assert_eq!(datagrams(&v6).count(), 0);
    }

    #[test]
    fn oversized_payload_is_an_error() {
        let mut out = Vec::new();
        let big = vec![0u8; 65_536];
        assert!(write_ipv4_udp(a("10.0.0.2:1"), a("10.0.0.1:2"), 0, &big, &mut out).is_err());
    }
}
