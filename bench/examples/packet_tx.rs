//! What the kernel's UDP send path costs a fan-out, against handing
//! finished IPv4 packets to the device through an `AF_PACKET` socket.
//!
//! ```sh
//! cargo run --release -p uturn-bench --example packet_tx -- [DATAGRAMS]
//! NOPACE=1 cargo run --release -p uturn-bench --example packet_tx
//! ```
//!
//! Needs root: it creates the TUN device `utptx0` (10.233.0.1/24, with the
//! checksum and segmentation offloads of `uturn-media-load --tun`), whose
//! reader drains it on CPU 1, and deletes it at the end. The sender, on
//! CPU 0, sends 1200-octet UDP datagrams from 10.233.0.1:40000 to 200
//! destinations round robin (10.233.0.2:20000..20199, the shape of a
//! fan-out to 200 viewers: no two consecutive datagrams share a
//! destination, so nothing is coalesced), in batches of 64, paced at
//! 100,000 datagrams/s (`NOPACE=1`: as fast as it can), twice in the
//! order `Udp`, `Packet`, `BuildOnly`, `UringAddressed`, `UringConnected`:
//!
//! - `Udp`: an unconnected UDP socket and `sendmmsg(2)`: the kernel path
//!   uturn's media sends take (as its epoll backend issues them);
//! - `Packet`: an `AF_PACKET` socket bound to the device with
//!   `PACKET_QDISC_BYPASS`, `sendmmsg(2)` of packets whose IPv4 and UDP
//!   headers and checksums the sender writes itself: no socket lookup,
//!   route lookup, IP ID, netfilter or qdisc;
//! - `BuildOnly`: `Packet` without the send: what writing the headers and
//!   checksums (and the pacing's sleeps) costs;
//! - `UringAddressed`: io_uring `IORING_OP_SEND` with the destination's
//!   address on one unconnected socket, 64 per `io_uring_enter`: exactly
//!   the sends uturn's io_uring backend issues for media;
//! - `UringConnected`: the same through 200 sockets bound to the same
//!   source with `SO_REUSEPORT`, each connected to one destination, sends
//!   without an address: the socket caches the route, and the kernel skips
//!   the per-send route lookup, the global IP ID hash and the cgroup
//!   `sendmsg` hooks that unconnected sends run (what a socket per viewer
//!   would save).
//!
//! Reported: the sender thread's CPU time per datagram
//! (`/proc/thread-self/schedstat`) and how many datagrams the reader got.
//! docs/benchmarks.md ("Media relay fan-out") cites it for why uturn keeps
//! the kernel's UDP path for media.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uturn_bench::load::sys::{pin_or_warn, pin_to_cpu, thread_cpu_ns};
use uturn_bench::media::tun::{self, Tun};

const DEVICE: &str = "utptx0";
const HOST: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 2);
const DESTINATIONS: u16 = 200;
const PAYLOAD: usize = 1200;
const BATCH: usize = 64;
/// Datagrams per second: below what the reader drains, so that neither
/// path is measured while the device drops.
const RATE: u64 = 100_000;

fn main() {
    let total: u64 = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 400_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => fail("DATAGRAMS: a positive number"),
    };
    let _ = Command::new("ip")
        .args(["link", "del", DEVICE])
        .stderr(std::process::Stdio::null())
        .status();
    for args in [
        vec!["tuntap", "add", "dev", DEVICE, "mode", "tun"],
        vec!["addr", "add", "10.233.0.1/24", "dev", DEVICE],
        vec!["link", "set", DEVICE, "txqueuelen", "20000", "up"],
    ] {
        let ok = Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            fail(&format!("ip {}: failed (needs root)", args.join(" ")));
        }
    }
    let result = std::panic::catch_unwind(|| {
        let modes = [
            Mode::Udp,
            Mode::Packet,
            Mode::BuildOnly,
            Mode::UringAddressed,
            Mode::UringConnected,
        ];
        for mode in modes.into_iter().chain(modes) {
            match run(mode, total) {
                Ok((cpu_ns, got)) => println!(
                    "{mode:?}: {:.3} µs sender CPU per datagram, {got} of {total} read from {DEVICE}",
                    cpu_ns as f64 / 1000.0 / total as f64
                ),
                Err(e) => eprintln!("{mode:?}: {e}"),
            }
        }
    });
    let _ = Command::new("ip").args(["link", "del", DEVICE]).status();
    if result.is_err() {
        std::process::exit(1);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("packet_tx: {message}");
    std::process::exit(2);
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Udp,
    Packet,
    /// `Packet` without the `sendmmsg`: what writing the headers and
    /// checksums costs (plus the pacing's sleeps, as in the others).
    BuildOnly,
    /// io_uring sends with an address, one unconnected socket.
    UringAddressed,
    /// io_uring sends without an address, one connected socket per
    /// destination.
    UringConnected,
}

/// Sends `total` datagrams in `mode`: the sender's CPU nanoseconds and the
/// number of datagrams the reader saw.
fn run(mode: Mode, total: u64) -> std::io::Result<(u64, u64)> {
    let mut device = Tun::open(DEVICE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, got) = (stop.clone(), got.clone());
        std::thread::spawn(move || {
            pin_or_warn(1);
            let mut buf = vec![0u8; 65_536 + 64];
            while !stop.load(Ordering::Relaxed) {
                match device.recv(&mut buf) {
                    Ok(Some(n)) => {
                        let count = tun::datagrams(&buf[..n]).count() as u64;
                        got.fetch_add(count, Ordering::Relaxed);
                    }
                    Ok(None) => std::hint::spin_loop(),
                    Err(_) => break,
                }
            }
        })
    };
    let sender = std::thread::spawn(move || -> std::io::Result<u64> {
        pin_to_cpu(0)?;
        let source = SocketAddrV4::new(HOST, 40_000);
        match mode {
            Mode::Udp => send_udp(source, total),
            Mode::Packet => send_packet(source, total, false),
            Mode::BuildOnly => send_packet(source, total, true),
            Mode::UringAddressed => send_uring(source, total, false),
            Mode::UringConnected => send_uring(source, total, true),
        }
    });
    let cpu = sender
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("sender panicked")));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    Ok((cpu?, got.load(Ordering::Relaxed)))
}

fn destination(i: u64) -> SocketAddrV4 {
    SocketAddrV4::new(PEER, 20_000 + (i % u64::from(DESTINATIONS)) as u16)
}

/// The kernel's UDP path: one unconnected socket, `sendmmsg` of 64.
#[allow(unsafe_code)]
fn send_udp(source: SocketAddrV4, total: u64) -> std::io::Result<u64> {
    let socket = UdpSocket::bind(source)?;
    let payload = vec![0x5au8; PAYLOAD];
    let start = thread_cpu_ns()?;
    let clock = Instant::now();
    let mut sent = 0u64;
    let mut names: Vec<libc::sockaddr_in> = Vec::with_capacity(BATCH);
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    while sent < total {
        let n = (total - sent).min(BATCH as u64) as usize;
        names.clear();
        iovs.clear();
        msgs.clear();
        for k in 0..n {
            names.push(sockaddr(destination(sent + k as u64)));
            iovs.push(libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            });
        }
        for k in 0..n {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = &mut names[k] as *mut libc::sockaddr_in as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[k];
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        sent += sendmmsg_all(socket.as_raw_fd(), &mut msgs)?;
        pace(&clock, sent);
    }
    Ok(thread_cpu_ns()? - start)
}

/// A UDP socket bound to `source` with `SO_REUSEPORT`, so that the
/// connected sockets can share the address.
fn reuseport_socket(source: SocketAddrV4) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    socket.set_reuse_port(true)?;
    socket.bind(&std::net::SocketAddr::V4(source).into())?;
    Ok(socket.into())
}

/// io_uring `IORING_OP_SEND`, 64 per submission: with the destination's
/// address on one socket, or (`connected`) without one on a socket
/// connected to each destination.
#[allow(unsafe_code)]
fn send_uring(source: SocketAddrV4, total: u64, connected: bool) -> std::io::Result<u64> {
    use io_uring::{opcode, types, IoUring};
    let unconnected = reuseport_socket(source)?;
    let mut per_destination = Vec::new();
    if connected {
        for i in 0..u64::from(DESTINATIONS) {
            let socket = reuseport_socket(source)?;
            socket.connect(destination(i))?;
            per_destination.push(socket);
        }
    }
    let names: Vec<libc::sockaddr_in> = (0..u64::from(DESTINATIONS))
        .map(|i| sockaddr(destination(i)))
        .collect();
    let mut ring = IoUring::new(2 * BATCH as u32)?;
    let payload = vec![0x5au8; PAYLOAD];
    let start = thread_cpu_ns()?;
    let clock = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(BATCH as u64);
        {
            let mut sq = ring.submission();
            for k in 0..n {
                let i = ((sent + k) % u64::from(DESTINATIONS)) as usize;
                let entry = if connected {
                    let fd = types::Fd(per_destination[i].as_raw_fd());
                    opcode::Send::new(fd, payload.as_ptr(), PAYLOAD as u32).build()
                } else {
                    let fd = types::Fd(unconnected.as_raw_fd());
                    opcode::Send::new(fd, payload.as_ptr(), PAYLOAD as u32)
                        .dest_addr(&names[i] as *const libc::sockaddr_in as *const libc::sockaddr)
                        .dest_addr_len(std::mem::size_of::<libc::sockaddr_in>() as u32)
                        .build()
                };
                // SAFETY: the payload and the addresses outlive the
                // submission: it is waited for below.
                unsafe { sq.push(&entry) }.map_err(std::io::Error::other)?;
            }
        }
        ring.submit_and_wait(n as usize)?;
        for completion in ring.completion() {
            if completion.result() < 0 {
                return Err(std::io::Error::from_raw_os_error(-completion.result()));
            }
        }
        sent += n;
        pace(&clock, sent);
    }
    Ok(thread_cpu_ns()? - start)
}

fn sockaddr(to: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sleeps until `sent` datagrams are due at [`RATE`].
fn pace(clock: &Instant, sent: u64) {
    if std::env::var_os("NOPACE").is_some() {
        return;
    }
    let due = Duration::from_nanos(sent * 1_000_000_000 / RATE);
    if let Some(wait) = due.checked_sub(clock.elapsed()) {
        std::thread::sleep(wait);
    }
}

/// Finished IPv4 packets through `AF_PACKET` (qdisc bypassed).
#[allow(unsafe_code)]
fn send_packet(source: SocketAddrV4, total: u64, build_only: bool) -> std::io::Result<u64> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let name = std::ffi::CString::new(DEVICE).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    ll.sll_ifindex = ifindex as i32;
    let payload = vec![0x5au8; PAYLOAD];
    let mut frames: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1500)).collect();
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    let start = thread_cpu_ns()?;
    let clock = Instant::now();
    let mut sent = 0u64;
    let mut id = 0u16;
    while sent < total {
        let n = (total - sent).min(BATCH as u64) as usize;
        iovs.clear();
        msgs.clear();
        for (k, frame) in frames.iter_mut().enumerate().take(n) {
            frame.clear();
            tun::write_ipv4_udp(source, destination(sent + k as u64), id, &payload, frame)?;
            id = id.wrapping_add(1);
            iovs.push(libc::iovec {
                iov_base: frame.as_mut_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            });
        }
        for iov in iovs.iter_mut() {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = &mut ll as *mut libc::sockaddr_ll as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        if !build_only {
            sendmmsg_all(socket.as_raw_fd(), &mut msgs)?;
        }
        sent += n as u64;
        pace(&clock, sent);
    }
    Ok(thread_cpu_ns()? - start)
}

/// `sendmmsg` until every message is taken (retrying on a full queue).
#[allow(unsafe_code)]
fn sendmmsg_all(fd: libc::c_int, msgs: &mut [libc::mmsghdr]) -> std::io::Result<u64> {
    let mut done = 0usize;
    while done < msgs.len() {
        let rest = &mut msgs[done..];
        // SAFETY: every header points at live buffers owned by the caller.
        let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) => std::thread::yield_now(),
                _ => return Err(e),
            }
        } else {
            done += rc as usize;
        }
    }
    Ok(done as u64)
}
