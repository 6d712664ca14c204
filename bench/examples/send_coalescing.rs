//! What uturn's send path costs per datagram when consecutive datagrams go
//! to different destinations (one `sendmsg` each, the media fan-out today)
//! and when `k` consecutive datagrams go to the same destination (the
//! dataplane's send queue then coalesces them into one UDP GSO send, see
//! `uturn_dataplane::io` "send"), on this machine's loopback.
//!
//! ```sh
//! cargo run --release -p uturn-bench --example send_coalescing -- [uring|epoll] [DATAGRAMS]
//! ```
//!
//! The sender runs on CPU 0 through the real backend (io_uring or epoll),
//! 1200-byte datagrams to 16 receiving sockets drained by a thread on
//! CPU 1. Reported: the sending thread's CPU time (`/proc/thread-self/
//! schedstat`, exact scheduler run time) per datagram. On loopback that
//! includes the receivers' kernel path, which runs inside the sender's
//! `sendmsg`; the difference between the rows is what grouping saves.
//! This is a planning measurement for docs/benchmarks.md ("Media relay
//! fan-out"), not a test.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uturn_bench::load::sys::{pin_or_warn, thread_cpu_ns};
use uturn_dataplane::io;
use uturn_dataplane::BackendChoice;

const RECEIVERS: usize = 16;
const DATAGRAM: usize = 1200;
/// Datagrams queued between flushes: about what one media turn queues.
const FLUSH_EVERY: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let choice = match args.next().as_deref() {
        None | Some("uring") => BackendChoice::Uring,
        Some("epoll") => BackendChoice::Epoll,
        Some(other) => {
            eprintln!("unknown backend {other:?}: uring or epoll");
            std::process::exit(2);
        }
    };
    let total: usize = match args.next().map(|n| n.parse()) {
        None => 400_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("DATAGRAMS: {e}");
            std::process::exit(2);
        }
    };
    println!("backend {choice:?}, {total} datagrams of {DATAGRAM} bytes per row");
    for group in [1, 2, 4, 8] {
        match run(choice, total, group) {
            Ok(r) => println!(
                "{group} consecutive per destination: {:.3} µs sender CPU per datagram, \
                 {} sends coalesced into {} kernel sends, {} received, {} dropped",
                r.cpu_ns as f64 / 1000.0 / r.sent as f64,
                r.sent,
                r.kernel_sends,
                r.received,
                r.dropped,
            ),
            Err(e) => {
                eprintln!("{group}: {e}");
                std::process::exit(1);
            }
        }
    }
}

struct Row {
    sent: u64,
    kernel_sends: u64,
    received: u64,
    dropped: u64,
    cpu_ns: u64,
}

fn run(choice: BackendChoice, total: usize, group: usize) -> std::io::Result<Row> {
    let receivers: Vec<UdpSocket> = (0..RECEIVERS)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<_>>()?;
    let dests: Vec<SocketAddr> = receivers
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<std::io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            pin_or_warn(1);
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            let mut idle_after_stop = 0;
            while idle_after_stop < 1000 {
                let mut any = false;
                for s in &receivers {
                    while s.recv(&mut buf).is_ok() {
                        n += 1;
                        any = true;
                    }
                }
                if stop.load(Ordering::Relaxed) && !any {
                    idle_after_stop += 1;
                }
            }
            received.store(n, Ordering::Relaxed);
        })
    };

    pin_or_warn(0);
    let mut backend = io::open(choice).map_err(std::io::Error::other)?;
    let socket = backend.add_socket(io::bind_listener(
        "127.0.0.1:0".parse().expect("an address"),
    )?)?;
    let payload = [0xa5u8; DATAGRAM];
    let before = backend.stats();
    let cpu_before = thread_cpu_ns()?;
    let mut sent = 0u64;
    let mut next_dest = 0usize;
    while (sent as usize) < total {
        for _ in 0..FLUSH_EVERY / group.max(1) {
            let dest = dests[next_dest % RECEIVERS];
            next_dest += 1;
            for _ in 0..group {
                backend.sender().send(socket, dest, &[&payload]);
                sent += 1;
            }
        }
        backend.flush()?;
        backend.poll(Duration::ZERO, &mut |_, _, _| {})?;
        // Leave the receivers time to drain (about 100k datagrams/s).
        if sent % 4096 < FLUSH_EVERY as u64 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    backend.flush()?;
    let cpu_after = thread_cpu_ns()?;
    // Reap the last completions, then stop the drain.
    for _ in 0..10 {
        backend.poll(Duration::from_millis(10), &mut |_, _, _| {})?;
    }
    let after = backend.stats();
    stop.store(true, Ordering::Relaxed);
    drain
        .join()
        .map_err(|_| std::io::Error::other("drain thread panicked"))?;
    Ok(Row {
        sent,
        kernel_sends: after.send_ops.saturating_sub(before.send_ops),
        received: received.load(Ordering::Relaxed),
        dropped: (after.send_dropped + after.send_errors)
            .saturating_sub(before.send_dropped + before.send_errors),
        cpu_ns: cpu_after.saturating_sub(cpu_before),
    })
}
