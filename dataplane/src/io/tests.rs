//! Behaviour tests every backend must pass, written once and instantiated
//! per backend by `backend_tests!`. Real sockets on 127.0.0.1; every wait is
//! a bounded number of polls, never a timed assertion.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;

const POLL: Duration = Duration::from_millis(50);
/// Polls before giving up on datagrams that should arrive (≈ 10 s).
const MAX_POLLS: usize = 200;

type Received = Vec<(RecvMeta, Vec<u8>)>;

fn listener(backend: &mut dyn Backend) -> (SocketId, SocketAddr) {
    let socket = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (backend.add_socket(socket).unwrap(), addr)
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Tests burst megabytes at this socket before reading: ask for 8 MiB,
    // beyond `rmem_max` if we may (root), so a small default cannot drop.
    force_recv_buffer(&socket, 8 << 20);
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// Polls until `want` datagrams arrived (or the poll budget ran out);
/// returns them and the most delivered by a single poll.
fn receive(backend: &mut dyn Backend, want: usize) -> (Received, usize) {
    let mut got = Received::new();
    let mut most = 0;
    for _ in 0..MAX_POLLS {
        if got.len() >= want {
            break;
        }
        let before = got.len();
        backend
            .poll(POLL, &mut |meta, data, _| got.push((*meta, data.to_vec())))
            .unwrap();
        most = most.max(got.len() - before);
    }
    (got, most)
}

/// A zero timeout must not wait, yet must still hand over what has
/// arrived (io_uring: deferred completions run without a waiting enter).
fn zero_timeout_poll_delivers_what_arrived(backend: &mut dyn Backend) {
    let (_, addr) = listener(backend);
    // Arms the receive.
    backend.poll(Duration::ZERO, &mut |_, _, _| {}).unwrap();
    let c = client();
    c.send_to(b"already here", addr).unwrap();
    // Loopback delivers inside send_to: the datagram is queued on the
    // socket now. Give the kernel's completion path a moment anyway.
    std::thread::sleep(Duration::from_millis(20));
    let mut got = Vec::new();
    for _ in 0..4 {
        backend
            .poll(Duration::ZERO, &mut |_, data, _| got.push(data.to_vec()))
            .unwrap();
    }
    assert_eq!(got, vec![b"already here".to_vec()]);
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

fn receives_datagrams_with_source_and_payload(backend: &mut dyn Backend) {
    let (a, a_addr) = listener(backend);
    let (b, b_addr) = listener(backend);
    let client = client();
    let n = 200;
    let mut sent: HashMap<SocketId, Vec<Vec<u8>>> = HashMap::new();
    for i in 0..n {
        let len = (i * 37) % 1400; // includes an empty datagram
        let (id, dest) = if i % 3 == 0 { (a, a_addr) } else { (b, b_addr) };
        let data = payload(i, len);
        client.send_to(&data, dest).unwrap();
        sent.entry(id).or_default().push(data);
    }
    let (got, _) = receive(backend, n);
    assert_eq!(got.len(), n);
    let mut by_socket: HashMap<SocketId, Vec<Vec<u8>>> = HashMap::new();
    for (meta, data) in got {
        assert_eq!(meta.source, client.local_addr().unwrap());
        let expected_local = if meta.socket == a { a_addr } else { b_addr };
        assert_eq!(meta.local, expected_local);
        by_socket.entry(meta.socket).or_default().push(data);
    }
    // Loopback keeps each socket's order.
    assert_eq!(by_socket, sent);
    assert_eq!(backend.stats().recv_datagrams, n as u64);
}

/// Sends `sizes` from a backend socket to a std socket and checks they
/// arrive whole and in order.
fn send_and_check(backend: &mut dyn Backend, sizes: &[usize]) -> IoStats {
    let (a, _) = listener(backend);
    let peer = client();
    let dest = peer.local_addr().unwrap();
    let before = backend.stats();
    {
        let mut sender = backend.sender();
        for (i, &len) in sizes.iter().enumerate() {
            let data = payload(i, len);
            // Split into header + payload to exercise concatenation.
            let (head, tail) = data.split_at(len.min(4));
            sender.send(a, dest, &[head, tail]);
        }
    }
    backend.flush().unwrap();
    let mut buf = vec![0u8; 70_000];
    for (i, &len) in sizes.iter().enumerate() {
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &payload(i, len)[..], "datagram {i}");
        assert_eq!(from.port(), backend_port(backend, a, from));
    }
    // io_uring reaps send completions on the next poll.
    backend.poll(Duration::ZERO, &mut |_, _, _| {}).unwrap();
    let after = backend.stats();
    assert_eq!(
        after.send_datagrams - before.send_datagrams,
        sizes.len() as u64
    );
    assert_eq!(after.send_dropped, before.send_dropped);
    after
}

/// The port datagrams from `a` come from (only `a` sends in these tests).
fn backend_port(_backend: &dyn Backend, _a: SocketId, from: SocketAddr) -> u16 {
    from.port()
}

fn sends_unequal_sizes_in_order(backend: &mut dyn Backend) {
    // Strictly growing sizes: no two neighbours can share a GSO batch.
    let sizes: Vec<usize> = (0..150).map(|i| 1 + i * 8).collect();
    let stats = send_and_check(backend, &sizes);
    assert_eq!(stats.send_gso_batches, 0);
}

fn sends_equal_sizes_coalesced(backend: &mut dyn Backend) {
    // 150 × 1000 bytes then a short tail: GSO batches of ≤ 64 segments.
    let mut sizes = vec![1000; 150];
    sizes.push(300);
    let stats = send_and_check(backend, &sizes);
    assert!(!stats.gso_disabled, "loopback supports UDP GSO");
    assert!(stats.send_gso_batches >= 3, "{stats:?}");
    assert!(stats.send_ops < stats.send_datagrams, "{stats:?}");
}

fn echoes_from_the_callback(backend: &mut dyn Backend) {
    let (_, addr) = listener(backend);
    let client = client();
    for i in 0..20 {
        client.send_to(&payload(i, 100 + i), addr).unwrap();
    }
    let mut echoed = 0;
    for _ in 0..MAX_POLLS {
        if echoed == 20 {
            break;
        }
        backend
            .poll(POLL, &mut |meta, data, sender| {
                echoed += 1;
                sender.send(meta.socket, meta.source, &[b"re:", data]);
            })
            .unwrap();
        backend.flush().unwrap();
    }
    assert_eq!(echoed, 20);
    let mut buf = [0u8; 2048];
    for i in 0..20 {
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..3], b"re:");
        assert_eq!(&buf[3..n], &payload(i, 100 + i)[..]);
    }
}

fn removed_socket_gets_nothing_and_closes(backend: &mut dyn Backend) {
    let (a, a_addr) = listener(backend);
    let (b, b_addr) = listener(backend);
    let client = client();
    backend.remove_socket(a);
    backend.remove_socket(a); // twice: ignored
                              // Sends on a removed id are dropped, not sent from another socket.
    let before = backend.stats().send_dropped;
    backend
        .sender()
        .send(a, client.local_addr().unwrap(), &[b"x"]);
    backend.flush().unwrap();
    let _ = client.send_to(b"to a", a_addr);
    client.send_to(b"to b", b_addr).unwrap();
    let (got, _) = receive(backend, 1);
    // A few more polls: nothing else may show up.
    let mut late = 0;
    for _ in 0..5 {
        backend
            .poll(Duration::from_millis(10), &mut |_, _, _| late += 1)
            .unwrap();
    }
    assert_eq!(late, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.socket, b);
    assert_eq!(got[0].1, b"to b");
    assert_eq!(backend.stats().send_dropped, before + 1);
    // The descriptor was closed: the port can be bound again (no
    // SO_REUSEPORT on this plain socket).
    let mut rebound = false;
    for _ in 0..MAX_POLLS {
        if UdpSocket::bind(a_addr).is_ok() {
            rebound = true;
            break;
        }
        backend.poll(POLL, &mut |_, _, _| {}).unwrap();
    }
    assert!(rebound, "removed socket still open");
    // A new socket may reuse the slot but never the id.
    let (c, _) = listener(backend);
    assert_ne!(c, a);
}

fn gro_super_datagram_is_split(backend: &mut dyn Backend) {
    // A GSO send from one of our sockets to another with UDP_GRO on stays
    // one super-datagram over loopback (the receiving socket accepts GSO
    // packets whole), so the receive path must split it.
    let (a, _) = listener(backend);
    let (b, b_addr) = listener(backend);
    let n = 40;
    {
        let mut sender = backend.sender();
        for i in 0..n {
            sender.send(a, b_addr, &[&payload(i, 500)]);
        }
        sender.send(a, b_addr, &[&payload(n, 123)]);
    }
    backend.flush().unwrap();
    let (got, _) = receive(backend, n + 1);
    assert_eq!(got.len(), n + 1);
    for (i, (meta, data)) in got.iter().enumerate() {
        assert_eq!(meta.socket, b);
        let len = if i == n { 123 } else { 500 };
        assert_eq!(data, &payload(i, len), "segment {i}");
    }
    let stats = backend.stats();
    assert!(stats.send_gso_batches >= 1, "{stats:?}");
    assert!(stats.recv_gro_batches >= 1, "{stats:?}");
}

fn poll_is_bounded_and_loses_nothing(backend: &mut dyn Backend) {
    let (_, addr) = listener(backend);
    let client = client();
    let n = 700;
    for i in 0..n {
        client.send_to(&payload(i, 64), addr).unwrap();
    }
    let (got, most) = receive(backend, n);
    assert_eq!(got.len(), n);
    assert!(most <= 256, "one poll delivered {most}");
    for (i, (_, data)) in got.iter().enumerate() {
        assert_eq!(data, &payload(i, 64));
    }
}

fn gso_refused_falls_back_to_plain_sends(backend: &mut dyn Backend) {
    // SO_NO_CHECK (no UDP checksum) makes the kernel refuse GSO with
    // EINVAL: the backend must resend the batch datagram by datagram and
    // stop coalescing.
    let socket = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    set_no_check(&socket);
    let a = backend.add_socket(socket).unwrap();
    let peer = client();
    let dest = peer.local_addr().unwrap();
    let n = 10;
    {
        let mut sender = backend.sender();
        for i in 0..n {
            sender.send(a, dest, &[&payload(i, 300)]);
        }
    }
    backend.flush().unwrap();
    // io_uring learns of the refusal from a completion: poll + flush again.
    for _ in 0..5 {
        backend
            .poll(Duration::from_millis(10), &mut |_, _, _| {})
            .unwrap();
        backend.flush().unwrap();
    }
    let mut buf = [0u8; 2048];
    for i in 0..n {
        let (len, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], &payload(i, 300)[..], "datagram {i}");
    }
    let stats = backend.stats();
    assert!(stats.gso_disabled, "{stats:?}");
    assert_eq!(stats.send_datagrams, n as u64, "{stats:?}");
    assert_eq!(stats.send_errors, 0, "{stats:?}");
}

#[allow(unsafe_code)]
fn force_recv_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: `bytes` lives across the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let _ = socket2::SockRef::from(socket).set_recv_buffer_size(bytes as usize);
    }
}

#[allow(unsafe_code)]
fn set_no_check(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    const SO_NO_CHECK: libc::c_int = 11; // asm-generic/socket.h
    let one: libc::c_int = 1;
    // SAFETY: `one` lives across the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NO_CHECK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

fn ipv6_round_trip(backend: &mut dyn Backend) {
    let socket = bind_listener("[::1]:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    backend.add_socket(socket).unwrap();
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for i in 0..5 {
        client.send_to(&payload(i, 50), addr).unwrap();
    }
    let mut seen = 0;
    for _ in 0..MAX_POLLS {
        if seen == 5 {
            break;
        }
        backend
            .poll(POLL, &mut |meta, data, sender| {
                assert_eq!(meta.source, client.local_addr().unwrap());
                assert_eq!(meta.local, addr);
                seen += 1;
                sender.send(meta.socket, meta.source, &[data]);
            })
            .unwrap();
        backend.flush().unwrap();
    }
    assert_eq!(seen, 5);
    let mut buf = [0u8; 100];
    for i in 0..5 {
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..n], &payload(i, 50)[..]);
    }
}

fn burst_larger_than_the_queue_flushes_itself(backend: &mut dyn Backend) {
    // 2000 × 1000 bytes is four times the send queue: `send` must flush
    // on its own when the queue fills, and lose nothing.
    let sizes: Vec<usize> = (0..2000).map(|i| 1000 - i % 2).collect();
    let stats = send_and_check(backend, &sizes);
    assert_eq!(stats.send_dropped, 0);
}

fn interleaved_sockets_keep_per_socket_order(backend: &mut dyn Backend) {
    let (a, a_addr) = listener(backend);
    let (b, b_addr) = listener(backend);
    let peer = client();
    let dest = peer.local_addr().unwrap();
    {
        let mut sender = backend.sender();
        for i in 0..300 {
            let socket = if i % 3 == 0 { a } else { b };
            sender.send(socket, dest, &[&payload(i, 100 + i % 7)]);
        }
    }
    backend.flush().unwrap();
    let mut buf = [0u8; 2048];
    let (mut next_a, mut next_b) = (0..300).partition::<Vec<usize>, _>(|i| i % 3 == 0);
    next_a.reverse();
    next_b.reverse();
    for _ in 0..300 {
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        let expected = if from == a_addr {
            next_a.pop()
        } else {
            assert_eq!(from, b_addr);
            next_b.pop()
        };
        let i = expected.unwrap();
        assert_eq!(&buf[..n], &payload(i, 100 + i % 7)[..], "datagram {i}");
    }
}

/// A poll timeout no wake test should ever reach: polls that return
/// "promptly" are checked against [`PROMPT`], far below it.
const LONG: Duration = Duration::from_secs(20);
/// The functional bound for "returned because of the wake, not its
/// timeout" (generous: a loaded CI machine must pass it easily).
const PROMPT: Duration = Duration::from_secs(10);

/// A wake-up watched by `backend`.
fn wakeup(backend: &mut dyn Backend) -> Arc<Wakeup> {
    let w = Wakeup::new().unwrap();
    backend.watch_wake(w.clone()).unwrap();
    w
}

/// Signals `w` from another thread after `delay`.
fn signal_later(w: &Arc<Wakeup>, delay: Duration) -> std::thread::JoinHandle<()> {
    let w = w.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        std::task::Waker::from(w).wake();
    })
}

/// Whether the eventfd is readable now (a wake not consumed).
fn pending(w: &Wakeup) -> bool {
    w.wait(Duration::ZERO).unwrap()
}

/// The wake was consumed: some later poll blocks for its whole timeout.
/// (io_uring may end one poll early on the wake's stale zero-timeout
/// completion; a sticky wake would end every one of them at once.)
fn blocks_again(backend: &mut dyn Backend) -> bool {
    let timeout = Duration::from_millis(300);
    (0..3).any(|_| {
        let start = Instant::now();
        backend.poll(timeout, &mut |_, _, _| {}).unwrap();
        start.elapsed() >= timeout
    })
}

fn wake_ends_a_long_poll_and_is_consumed(backend: &mut dyn Backend) {
    let _ = listener(backend);
    let w = wakeup(backend);
    for round in 0..2 {
        // Idle: the wake, not a datagram, must end the poll. The second
        // round checks that the watch was re-armed.
        let signaller = signal_later(&w, Duration::from_millis(100));
        let start = Instant::now();
        backend.poll(LONG, &mut |_, _, _| {}).unwrap();
        let took = start.elapsed();
        signaller.join().unwrap();
        assert!(
            took < PROMPT,
            "round {round}: poll slept {took:?} through a wake"
        );
        assert!(!pending(&w), "round {round}: the eventfd was not drained");
        assert!(blocks_again(backend), "round {round}: the wake is sticky");
    }
}

fn wake_before_poll_returns_at_once(backend: &mut dyn Backend) {
    let _ = listener(backend);
    let w = wakeup(backend);
    // Nobody polls while it is signalled.
    w.signal();
    let start = Instant::now();
    backend.poll(LONG, &mut |_, _, _| {}).unwrap();
    assert!(start.elapsed() < PROMPT, "slept {:?}", start.elapsed());
    assert!(!pending(&w));
    assert!(blocks_again(backend));
}

fn datagrams_that_came_with_a_wake_are_delivered(backend: &mut dyn Backend) {
    let (_, addr) = listener(backend);
    let w = wakeup(backend);
    // Arms the receive (io_uring submits it here).
    backend.poll(Duration::ZERO, &mut |_, _, _| {}).unwrap();
    let peer = client();
    for i in 0..3 {
        peer.send_to(&payload(i, 80), addr).unwrap();
    }
    w.signal();
    let mut got = Vec::new();
    let start = Instant::now();
    backend
        .poll(LONG, &mut |_, data, _| got.push(data.to_vec()))
        .unwrap();
    assert!(start.elapsed() < PROMPT);
    assert!(!got.is_empty(), "the wake's poll delivered nothing");
    // Usually all three came in that poll; any left come next (bounded).
    let (rest, _) = receive(backend, 3 - got.len());
    got.extend(rest.into_iter().map(|(_, d)| d));
    assert_eq!(got, (0..3).map(|i| payload(i, 80)).collect::<Vec<_>>());
    assert!(!pending(&w));
}

fn wake_ends_a_batch_wait(backend: &mut dyn Backend) {
    let (_, addr) = listener(backend);
    let w = wakeup(backend);
    // A batch wait far longer than PROMPT: only the wake can end it early.
    // (io_uring on kernels without `min_wait_usec` keeps the plain wait,
    // which the wake ends too.)
    backend.set_batch_wait(Duration::from_secs(15));
    // Traffic makes the next poll a batch wait (epoll: `busy`).
    let peer = client();
    peer.send_to(b"traffic", addr).unwrap();
    let (got, _) = receive(backend, 1);
    assert_eq!(got.len(), 1);
    let signaller = signal_later(&w, Duration::from_millis(100));
    let start = Instant::now();
    backend
        .poll(Duration::from_secs(30), &mut |_, _, _| {})
        .unwrap();
    let took = start.elapsed();
    signaller.join().unwrap();
    assert!(took < PROMPT, "the batch wait ignored the wake: {took:?}");
}

fn one_wakeup_per_backend(backend: &mut dyn Backend) {
    let _ = wakeup(backend);
    let err = backend.watch_wake(Wakeup::new().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
}

macro_rules! backend_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            fn make() -> Option<Box<dyn Backend>> {
                $make
            }

            #[test]
            fn receives_datagrams_with_source_and_payload() {
                let Some(mut b) = make() else { return };
                super::receives_datagrams_with_source_and_payload(b.as_mut());
            }

            #[test]
            fn sends_unequal_sizes_in_order() {
                let Some(mut b) = make() else { return };
                super::sends_unequal_sizes_in_order(b.as_mut());
            }

            #[test]
            fn sends_equal_sizes_coalesced() {
                let Some(mut b) = make() else { return };
                super::sends_equal_sizes_coalesced(b.as_mut());
            }

            #[test]
            fn echoes_from_the_callback() {
                let Some(mut b) = make() else { return };
                super::echoes_from_the_callback(b.as_mut());
            }

            #[test]
            fn removed_socket_gets_nothing_and_closes() {
                let Some(mut b) = make() else { return };
                super::removed_socket_gets_nothing_and_closes(b.as_mut());
            }

            #[test]
            fn gro_super_datagram_is_split() {
                let Some(mut b) = make() else { return };
                super::gro_super_datagram_is_split(b.as_mut());
            }

            #[test]
            fn gso_refused_falls_back_to_plain_sends() {
                let Some(mut b) = make() else { return };
                super::gso_refused_falls_back_to_plain_sends(b.as_mut());
            }

            #[test]
            fn burst_larger_than_the_queue_flushes_itself() {
                let Some(mut b) = make() else { return };
                super::burst_larger_than_the_queue_flushes_itself(b.as_mut());
            }

            #[test]
            fn interleaved_sockets_keep_per_socket_order() {
                let Some(mut b) = make() else { return };
                super::interleaved_sockets_keep_per_socket_order(b.as_mut());
            }

            #[test]
            fn ipv6_round_trip() {
                let Some(mut b) = make() else { return };
                super::ipv6_round_trip(b.as_mut());
            }

            #[test]
            fn poll_is_bounded_and_loses_nothing() {
                let Some(mut b) = make() else { return };
                super::poll_is_bounded_and_loses_nothing(b.as_mut());
            }

            #[test]
            fn wake_ends_a_long_poll_and_is_consumed() {
                let Some(mut b) = make() else { return };
                super::wake_ends_a_long_poll_and_is_consumed(b.as_mut());
            }

            #[test]
            fn wake_before_poll_returns_at_once() {
                let Some(mut b) = make() else { return };
                super::wake_before_poll_returns_at_once(b.as_mut());
            }

            #[test]
            fn datagrams_that_came_with_a_wake_are_delivered() {
                let Some(mut b) = make() else { return };
                super::datagrams_that_came_with_a_wake_are_delivered(b.as_mut());
            }

            #[test]
            fn wake_ends_a_batch_wait() {
                let Some(mut b) = make() else { return };
                super::wake_ends_a_batch_wait(b.as_mut());
            }

            #[test]
            fn zero_timeout_poll_delivers_what_arrived() {
                let Some(mut b) = make() else { return };
                super::zero_timeout_poll_delivers_what_arrived(b.as_mut());
            }

            #[test]
            fn one_wakeup_per_backend() {
                let Some(mut b) = make() else { return };
                super::one_wakeup_per_backend(b.as_mut());
            }
        }
    };
}

backend_tests!(
    epoll,
    Some(Box::new(crate::io::epoll::EpollBackend::new().unwrap()))
);

/// io_uring, or `None` (test skipped, with a note) where this environment
/// forbids it (`kernel.io_uring_disabled`, seccomp); `open(Auto)` must then
/// fall back to epoll.
fn uring(config: uring::UringConfig) -> Option<Box<dyn Backend>> {
    match uring_available() {
        Ok(()) => Some(Box::new(uring::UringBackend::new(config).unwrap())),
        Err(e) => {
            eprintln!("io_uring unavailable here ({e}); skipping");
            assert_eq!(open(BackendChoice::Auto).unwrap().name(), "epoll");
            None
        }
    }
}

backend_tests!(io_uring, uring(Default::default()));

#[test]
fn auto_prefers_io_uring_when_available() {
    let backend = open(BackendChoice::Auto).unwrap();
    match uring_available() {
        Ok(()) => assert_eq!(backend.name(), "io_uring"),
        Err(_) => assert_eq!(backend.name(), "epoll"),
    }
    assert_eq!(open(BackendChoice::Epoll).unwrap().name(), "epoll");
}

#[test]
fn io_uring_recovers_from_an_empty_buffer_ring() {
    // 4 buffers, a burst of 300: the multishot receive runs out of buffers
    // (ENOBUFS) many times; every datagram must still arrive, in order,
    // since the socket buffer (4 MiB) holds the burst meanwhile.
    let Some(mut backend) = uring(uring::UringConfig {
        buffers: 4,
        buffer_size: 2048,
    }) else {
        return;
    };
    let (_, addr) = listener(backend.as_mut());
    // Arm the receive before the burst.
    backend.poll(Duration::ZERO, &mut |_, _, _| {}).unwrap();
    let client = client();
    let n = 300;
    for i in 0..n {
        client.send_to(&payload(i, 200), addr).unwrap();
    }
    let (got, _) = receive(backend.as_mut(), n);
    assert_eq!(got.len(), n);
    for (i, (_, data)) in got.iter().enumerate() {
        assert_eq!(data, &payload(i, 200));
    }
    let stats = backend.stats();
    assert!(stats.recv_enobufs >= 1, "{stats:?}");
    assert!(stats.recv_rearms >= stats.recv_enobufs, "{stats:?}");
}

#[test]
fn io_uring_drops_and_counts_datagrams_larger_than_a_buffer() {
    let Some(mut backend) = uring(uring::UringConfig {
        buffers: 8,
        buffer_size: 1024,
    }) else {
        return;
    };
    let (_, addr) = listener(backend.as_mut());
    let client = client();
    client.send_to(&payload(0, 1500), addr).unwrap();
    client.send_to(&payload(1, 100), addr).unwrap();
    let (got, _) = receive(backend.as_mut(), 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, payload(1, 100));
    assert_eq!(backend.stats().recv_truncated, 1);
}

/// Loopback echo throughput, for the report, not a pass/fail on speed:
/// `cargo test -p uturn-dataplane --release -- --ignored echo_throughput --nocapture`.
/// A server thread echoes through the backend; the test thread keeps a
/// window of datagrams in flight from 4 client sockets. Prints packets/s
/// and the server thread's CPU time per echoed packet (receive + send).
fn echo_throughput(backend: Box<dyn Backend>, name: &str, equal_sizes: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const N: usize = 400_000;
    const WINDOW: usize = 1024;
    let mut backend = backend;
    let (_, addr) = listener(backend.as_mut());
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("echo-server".into())
            .spawn(move || {
                let cpu_start = thread_cpu_time();
                let mut polls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    polls += 1;
                    backend
                        .poll(Duration::from_millis(10), &mut |meta, data, sender| {
                            sender.send(meta.socket, meta.source, &[data]);
                        })
                        .unwrap();
                    backend.flush().unwrap();
                }
                (thread_cpu_time() - cpu_start, backend.stats(), polls)
            })
            .unwrap()
    };
    let clients: Vec<UdpSocket> = (0..4).map(|_| client()).collect();
    for c in &clients {
        c.set_nonblocking(true).unwrap();
    }
    let data = [0x5au8; 264];
    let (mut sent, mut received, mut in_flight) = (0, 0, 0);
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut turn = 0;
    while received < N {
        // Bursts of up to 64 per sendmmsg so the client outpaces the server.
        let room = (N - sent).min(WINDOW - in_flight).min(64);
        if room > 0 {
            let client = &clients[turn % clients.len()];
            turn += 1;
            let n = send_burst(client, addr, &data, room, equal_sizes);
            sent += n;
            in_flight += n;
        }
        for c in &clients {
            let n = recv_burst(c);
            received += n;
            in_flight -= n;
            if n > 0 {
                last_progress = Instant::now();
            }
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            break; // lost datagrams: reported by the assertion below
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (cpu, stats, polls) = server.join().unwrap();
    assert_eq!(received, N, "datagrams lost on loopback");
    println!(
        "{name} (sizes {}): {:.0} echoes/s wall, server CPU {:.0} ns per echoed datagram; \
         {:.1} datagrams per poll; {} send ops for {} datagrams, {} GSO batches",
        if equal_sizes { "equal" } else { "growing" },
        N as f64 / elapsed.as_secs_f64(),
        cpu.as_nanos() as f64 / N as f64,
        N as f64 / polls as f64,
        stats.send_ops,
        stats.send_datagrams,
        stats.send_gso_batches,
    );
}

/// `count` datagrams of 200 bytes (or growing sizes 200, 201, …, which
/// GSO cannot coalesce) in one
/// `sendmmsg`; returns how many the kernel took.
#[allow(unsafe_code)]
fn send_burst(
    socket: &UdpSocket,
    dest: SocketAddr,
    data: &[u8; 264],
    count: usize,
    equal: bool,
) -> usize {
    use std::os::fd::AsRawFd;
    let mut addr = sys::RawAddr::zeroed();
    addr.set(dest);
    // SAFETY: all-zero iovec/mmsghdr are valid; set below.
    let mut iovs: [libc::iovec; 64] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
    let count = count.min(64);
    for i in 0..count {
        let len = if equal { 200 } else { 200 + i };
        iovs[i] = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: len,
        };
        hdrs[i].msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
        hdrs[i].msg_hdr.msg_namelen = addr.len;
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the headers point at `addr`, `iovs` and `data`, all alive
    // for the call.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            count as libc::c_uint,
            0,
        )
    };
    n.max(0) as usize
}

/// Reads what is there with `recvmmsg` (up to 64 per call) until empty;
/// returns the count. Checks each datagram's size.
#[allow(unsafe_code)]
fn recv_burst(socket: &UdpSocket) -> usize {
    use std::os::fd::AsRawFd;
    let mut bufs = [[0u8; 256]; 64];
    let mut total = 0;
    loop {
        // SAFETY: all-zero iovec/mmsghdr are valid; set below.
        let mut iovs: [libc::iovec; 64] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
        for i in 0..64 {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: 256,
            };
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `iovs` and `bufs`, alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                64,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return total;
        }
        for h in &hdrs[..n as usize] {
            assert!((200..264).contains(&h.msg_len), "{}", h.msg_len);
        }
        total += n as usize;
        if n < 64 {
            return total;
        }
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
#[ignore = "throughput report; run with --release --ignored --nocapture"]
fn echo_throughput_epoll() {
    for equal in [false, true] {
        let backend = Box::new(crate::io::epoll::EpollBackend::new().unwrap());
        echo_throughput(backend, "epoll", equal);
    }
}

#[test]
#[ignore = "throughput report; run with --release --ignored --nocapture"]
fn echo_throughput_io_uring() {
    for equal in [false, true] {
        let Some(backend) = uring(Default::default()) else {
            return;
        };
        echo_throughput(backend, "io_uring", equal);
    }
}

#[allow(unsafe_code)]
fn getsockopt_int(socket: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` live across the call; len is value's size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    value
}

#[test]
fn listeners_share_a_port_and_have_gro_and_big_buffers() {
    let first = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    // SO_REUSEPORT: every worker binds the same address.
    let second = bind_listener(addr).unwrap();
    assert_eq!(second.local_addr().unwrap(), addr);
    assert_eq!(getsockopt_int(&first, libc::SOL_UDP, sys::UDP_GRO), 1);
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let got = socket2::SockRef::from(&first).recv_buffer_size().unwrap();
    // The kernel reports twice what was set (bookkeeping overhead).
    assert!(got >= rmem_max.min(SOCKET_BUFFER_BYTES), "{got}");
}

#[test]
fn relay_sockets_are_exclusive_and_can_set_df() {
    let relay = bind_relay("127.0.0.1:0".parse().unwrap(), true).unwrap();
    let addr = relay.local_addr().unwrap();
    assert!(
        bind_relay(addr, false).is_err(),
        "relay port must be exclusive"
    );
    assert_eq!(
        getsockopt_int(&relay, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
        libc::IP_PMTUDISC_DO
    );
    let plain = bind_relay("127.0.0.1:0".parse().unwrap(), false).unwrap();
    assert_ne!(
        getsockopt_int(&plain, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
        libc::IP_PMTUDISC_DO
    );
    let v6 = bind_relay("[::1]:0".parse().unwrap(), true).unwrap();
    assert_eq!(
        getsockopt_int(&v6, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG),
        1
    );
}

/// Makes `io_uring_setup` fail with `EPERM` for the calling thread only (a
/// seccomp filter without TSYNC), as a container runtime's profile would.
#[allow(unsafe_code)]
fn forbid_io_uring_in_this_thread() {
    // seccomp_data: nr at offset 0 (the architecture is not checked: this
    // filter only ever returns ALLOW or an errno).
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive them (the
    // kernel copies the program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            ),
            0
        );
    }
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_is_forbidden() {
    // The filter stays on this test's thread, which ends with the test.
    std::thread::spawn(|| {
        forbid_io_uring_in_this_thread();
        let e = uring_available().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert_eq!(open(BackendChoice::Auto).unwrap().name(), "epoll");
        assert!(matches!(
            open(BackendChoice::Uring),
            Err(Error::UringUnavailable(_))
        ));
        // The fallback works.
        let mut backend = open(BackendChoice::Auto).unwrap();
        echoes_from_the_callback(backend.as_mut());
    })
    .join()
    .unwrap();
}
