//! Small pieces of Linux socket ABI both backends need: socket options the
//! `socket2` crate lacks (`UDP_GRO`, DF bit), socket addresses to and from
//! their C layout, the `UDP_GRO` / `UDP_SEGMENT` control messages
//! (`udp(7)`, `cmsg(3)`), and the worker's wake-up eventfd (`eventfd(2)`:
//! create, signal, drain, and a `ppoll(2)` on it for epoll's batch wait).
//!
//! Received addresses and control messages are parsed from byte slices with
//! checked reads: the kernel wrote them, but a malformed one must not panic.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::Socket;

/// `UDP_SEGMENT` (Linux ≥ 4.18) and `UDP_GRO` (Linux ≥ 5.0), from
/// `include/uapi/linux/udp.h`; the `libc` crate does not export them for
/// glibc targets.
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
pub(crate) const UDP_GRO: libc::c_int = 104;

/// Space for one control message carrying a `u16` (`CMSG_SPACE(2)` on
/// 64-bit Linux: 16-byte header + 2, rounded up to 8).
pub(crate) const GSO_CMSG_SPACE: usize = 24;
/// Control buffer size for receiving: room for `UDP_GRO` (an `int`) and a
/// spare message, so an unexpected one does not truncate it.
pub(crate) const RECV_CMSG_SPACE: usize = 64;

const CMSG_HDR_LEN: usize = mem::size_of::<libc::cmsghdr>();
const CMSG_ALIGN: usize = mem::size_of::<usize>();
// The parser and `GsoCmsg` use the 64-bit layout: an 8-byte `cmsg_len`,
// then level and type, then data at offset 16.
const _: () = assert!(CMSG_HDR_LEN == 16 && CMSG_ALIGN == 8);

fn setsockopt_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns UDP GRO on or off for a socket.
pub(crate) fn set_gro(socket: &impl AsRawFd, on: bool) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_UDP, UDP_GRO, libc::c_int::from(on))
}

/// Sets the DF bit on every datagram (no fragmentation by this host, and
/// `EMSGSIZE` instead of fragmenting).
pub(crate) fn set_dont_fragment(socket: &Socket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(socket, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    } else {
        setsockopt_int(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    }
}

/// Asks for `bytes` of receive and send buffer. With `CAP_NET_ADMIN` the
/// `*BUFFORCE` options get them beyond `net.core.rmem_max`/`wmem_max`;
/// otherwise the kernel silently caps the plain options at those limits
/// (raise them for production).
pub(crate) fn set_buffer_sizes(socket: &Socket, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, value).is_err() {
        let _ = socket.set_recv_buffer_size(bytes);
    }
    if setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, value).is_err() {
        let _ = socket.set_send_buffer_size(bytes);
    }
}

/// A socket address in C layout; `len` 0 means none.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RawAddr {
    pub(crate) storage: libc::sockaddr_in6,
    pub(crate) len: libc::socklen_t,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAddr").field("len", &self.len).finish()
    }
}

impl RawAddr {
    pub(crate) fn zeroed() -> Self {
        // SAFETY: sockaddr_in6 is plain integers; all-zero is a valid value.
        Self {
            storage: unsafe { mem::zeroed() },
            len: 0,
        }
    }

    /// Writes `addr` in the layout `sendmsg` expects. `sockaddr_in6` is
    /// large enough for `sockaddr_in` too.
    pub(crate) fn set(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in (16 bytes) fits in sockaddr_in6 (28
                // bytes); the write is unaligned-safe and in bounds.
                unsafe {
                    std::ptr::write_unaligned(
                        (&mut self.storage as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>(),
                        sin,
                    );
                }
                self.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                self.storage = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                self.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_in6).cast()
    }
}

/// Reads a socket address the kernel wrote (`msg_name` bytes). `None` for an
/// unknown family or a short buffer.
pub(crate) fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match libc::c_int::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flowinfo = u32::from_ne_bytes(bytes.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            let scope_id = u32::from_ne_bytes(bytes.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope_id,
            )))
        }
        _ => None,
    }
}

/// Finds the `UDP_GRO` control message: the size of each segment of a GRO
/// super-datagram. `None` when absent or malformed (the payload is then one
/// datagram).
pub(crate) fn parse_gro_segment(control: &[u8]) -> Option<usize> {
    let mut rest = control;
    while rest.len() >= CMSG_HDR_LEN {
        // cmsghdr: size_t cmsg_len; int cmsg_level; int cmsg_type; data.
        let len = usize::from_ne_bytes(rest.get(0..8)?.try_into().ok()?);
        let level = i32::from_ne_bytes(rest.get(8..12)?.try_into().ok()?);
        let typ = i32::from_ne_bytes(rest.get(12..16)?.try_into().ok()?);
        if len < CMSG_HDR_LEN || len > rest.len() {
            return None;
        }
        let data = &rest[CMSG_HDR_LEN..len];
        if level == libc::SOL_UDP && typ == UDP_GRO {
            // The kernel writes an int (udp_cmsg_recv: put_cmsg(.., sizeof(int), ..)).
            let segment = match data.len() {
                4.. => i32::from_ne_bytes(data.get(0..4)?.try_into().ok()?),
                2 => i32::from(u16::from_ne_bytes(data.try_into().ok()?)),
                _ => return None,
            };
            return usize::try_from(segment).ok().filter(|&s| s > 0);
        }
        let advance = len.checked_add(CMSG_ALIGN - 1)? & !(CMSG_ALIGN - 1);
        rest = rest.get(advance..)?;
    }
    None
}

/// Splits a received payload into the datagrams GRO merged: `segment`
/// bytes each, the last possibly shorter. Without a segment size (or with
/// 0) the payload is one datagram, possibly empty.
pub(crate) fn gro_segments(payload: &[u8], segment: Option<usize>) -> Segments<'_> {
    Segments {
        rest: payload,
        size: segment.filter(|&s| s > 0).unwrap_or(usize::MAX),
        done: false,
    }
}

/// Iterator of [`gro_segments`].
#[derive(Debug)]
pub(crate) struct Segments<'a> {
    rest: &'a [u8],
    size: usize,
    done: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        if self.rest.len() <= self.size {
            self.done = true;
            return Some(self.rest);
        }
        let (head, tail) = self.rest.split_at(self.size);
        self.rest = tail;
        Some(head)
    }
}

/// An 8-byte aligned control buffer holding one `UDP_SEGMENT` message.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub(crate) struct GsoCmsg(pub(crate) [u8; GSO_CMSG_SPACE]);

impl GsoCmsg {
    pub(crate) fn new() -> Self {
        Self([0; GSO_CMSG_SPACE])
    }

    /// Writes `cmsghdr { CMSG_LEN(2), SOL_UDP, UDP_SEGMENT }` + the size.
    pub(crate) fn set(&mut self, segment_size: u16) {
        let cmsg_len = CMSG_HDR_LEN + 2;
        self.0[0..8].copy_from_slice(&cmsg_len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        self.0[12..16].copy_from_slice(&UDP_SEGMENT.to_ne_bytes());
        self.0[16..18].copy_from_slice(&segment_size.to_ne_bytes());
    }
}

/// True for the errors that mean "this kernel or device cannot do UDP
/// GSO": `EIO` (no checksum offload on the device), `EINVAL` (segment size
/// above the path MTU, or no GSO support), `ENOPROTOOPT` and `EOPNOTSUPP`.
pub(crate) fn is_gso_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP
    )
}

/// A new `eventfd(2)` (counter 0, `EFD_CLOEXEC | EFD_NONBLOCK`): the
/// worker's wake-up (see [`super::Wakeup`]).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter, making it readable. `EAGAIN` (the
/// counter is at its maximum) is success: it is readable already.
pub(crate) fn eventfd_signal(fd: &impl AsRawFd) -> io::Result<()> {
    let one: u64 = 1;
    loop {
        // SAFETY: writes the 8 bytes of `one`, which lives across the call.
        let rc = unsafe {
            libc::write(
                fd.as_raw_fd(),
                (&one as *const u64).cast(),
                mem::size_of::<u64>(),
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(()),
            _ => return Err(e),
        }
    }
}

/// Reads (and so resets to 0) an eventfd's counter; 0 when it was 0
/// already (`EAGAIN` on a non-blocking eventfd).
pub(crate) fn eventfd_drain(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut count: u64 = 0;
    loop {
        // SAFETY: reads at most 8 bytes into `count`, which lives across
        // the call.
        let rc = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                mem::size_of::<u64>(),
            )
        };
        if rc >= 0 {
            return Ok(count);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Waits at most `timeout` (µs precision, `ppoll(2)`) for `fd` to become
/// readable. True when it is; false on timeout or a signal.
pub(crate) fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `pfd` and `ts` live across the call; one entry is passed;
    // a null signal mask leaves the mask unchanged.
    let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, typ: i32, data: &[u8]) -> Vec<u8> {
        let len = CMSG_HDR_LEN + data.len();
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&typ.to_ne_bytes());
        out.extend_from_slice(data);
        while out.len() % CMSG_ALIGN != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn gro_segment_is_found_after_another_message() {
        let mut control = cmsg(libc::SOL_IP, libc::IP_TOS, &[0x10, 0, 0, 0]);
        control.extend(cmsg(libc::SOL_UDP, UDP_GRO, &1200i32.to_ne_bytes()));
        assert_eq!(parse_gro_segment(&control), Some(1200));
    }

    #[test]
    fn malformed_control_is_ignored() {
        assert_eq!(parse_gro_segment(&[]), None);
        assert_eq!(parse_gro_segment(&[0xff; 16]), None);
        let mut bad = cmsg(libc::SOL_UDP, UDP_GRO, &1200i32.to_ne_bytes());
        bad[0] = 200; // cmsg_len beyond the buffer
        assert_eq!(parse_gro_segment(&bad), None);
        let zero = cmsg(libc::SOL_UDP, UDP_GRO, &0i32.to_ne_bytes());
        assert_eq!(parse_gro_segment(&zero), None);
        let short = cmsg(libc::SOL_UDP, UDP_GRO, &[5]);
        assert_eq!(parse_gro_segment(&short), None);
    }

    #[test]
    fn gro_super_datagram_splits_into_segments() {
        let payload: Vec<u8> = (0..250u8).collect();
        let parts: Vec<&[u8]> = gro_segments(&payload, Some(100)).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], &payload[..100]);
        assert_eq!(parts[1], &payload[100..200]);
        assert_eq!(parts[2], &payload[200..]);
        assert_eq!(gro_segments(&payload, None).count(), 1);
        assert_eq!(gro_segments(&payload, Some(0)).count(), 1);
        // An empty datagram is still one datagram.
        assert_eq!(
            gro_segments(&[], None).collect::<Vec<_>>(),
            vec![&[] as &[u8]]
        );
        assert_eq!(gro_segments(&payload[..200], Some(100)).count(), 2);
    }

    #[test]
    fn gso_cmsg_round_trips_through_the_parser_layout() {
        let mut c = GsoCmsg::new();
        c.set(1400);
        assert_eq!(usize::from_ne_bytes(c.0[0..8].try_into().unwrap()), 18);
        assert_eq!(
            i32::from_ne_bytes(c.0[12..16].try_into().unwrap()),
            UDP_SEGMENT
        );
        assert_eq!(u16::from_ne_bytes(c.0[16..18].try_into().unwrap()), 1400);
    }

    #[test]
    fn sockaddr_round_trip() {
        for addr in [
            "192.0.2.7:3478".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:49152".parse().unwrap(),
        ] {
            let mut raw = RawAddr::zeroed();
            raw.set(addr);
            // SAFETY: reading the bytes of a plain-integer struct.
            let bytes =
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len as usize) };
            assert_eq!(parse_sockaddr(bytes), Some(addr));
        }
        assert_eq!(parse_sockaddr(&[0; 3]), None);
        assert_eq!(parse_sockaddr(&[0; 28]), None); // AF_UNSPEC
    }
}
