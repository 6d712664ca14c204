//! What one wake-up of an idle worker costs on this machine: the CPU time
//! a thread spends per datagram when every datagram finds it asleep.
//!
//! ```sh
//! cargo run --release -p uturn-bench --example wake_cost -- [DATAGRAMS]
//! ```
//!
//! A thread on CPU 1 sends one 1200-byte datagram every millisecond (busy
//! waiting, so it never sleeps itself) to a socket whose receiver runs on
//! CPU 0 and blocks between datagrams: in a plain `recv`, and in uturn's
//! own backends' `poll` (io_uring, epoll) with a 100 ms timeout. Reported:
//! the receiving thread's CPU time (`/proc/thread-self/schedstat`) per
//! datagram, i.e. per wake-up plus one receive. On loopback the datagram's
//! receive path runs in the sender's `sendto` on CPU 1, so it is not in
//! the figure. docs/benchmarks.md ("Media relay fan-out") uses it to
//! explain why an idle relay costs more per packet than a busy one.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uturn_bench::load::sys::{pin_or_warn, thread_cpu_ns};
use uturn_dataplane::io;
use uturn_dataplane::BackendChoice;

const DATAGRAM: usize = 1200;
const PERIOD: Duration = Duration::from_millis(1);

fn main() {
    let total: u64 = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 5_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("DATAGRAMS: a positive number");
            std::process::exit(2);
        }
    };
    println!("{total} datagrams, one every {PERIOD:?}, receiver asleep between them");
    for receiver in [Receiver::Recv, Receiver::Uring, Receiver::Epoll] {
        match run(receiver, total) {
            Ok((cpu_ns, got)) => println!(
                "{receiver:?}: {:.2} µs receiver CPU per wake-up ({got} datagrams)",
                cpu_ns as f64 / 1000.0 / got.max(1) as f64
            ),
            Err(e) => {
                eprintln!("{receiver:?}: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Receiver {
    /// A blocking `recv(2)`.
    Recv,
    /// uturn's io_uring backend, `poll` with a timeout.
    Uring,
    /// uturn's epoll backend, `poll` with a timeout.
    Epoll,
}

/// Receives `total` datagrams; returns the receiver's CPU ns and the count.
fn run(receiver: Receiver, total: u64) -> std::io::Result<(u64, u64)> {
    pin_or_warn(0);
    let mut backend = match receiver {
        Receiver::Recv => None,
        Receiver::Uring => Some(io::open(BackendChoice::Uring).map_err(std::io::Error::other)?),
        Receiver::Epoll => Some(io::open(BackendChoice::Epoll).map_err(std::io::Error::other)?),
    };
    let plain = UdpSocket::bind("127.0.0.1:0")?;
    let dest = match backend.as_mut() {
        None => plain.local_addr()?,
        Some(b) => {
            let socket = io::bind_listener("127.0.0.1:0".parse().expect("an address"))?;
            let addr = socket.local_addr()?;
            b.add_socket(socket)?;
            // Arms the receive before the first datagram.
            b.poll(Duration::ZERO, &mut |_, _, _| {})?;
            addr
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = spawn_sender(dest, stop.clone());

    let mut buf = [0u8; 2048];
    let mut got = 0u64;
    let start = thread_cpu_ns()?;
    while got < total {
        match backend.as_mut() {
            None => {
                plain.recv(&mut buf)?;
                got += 1;
            }
            Some(b) => b.poll(Duration::from_millis(100), &mut |_, _, _| got += 1)?,
        }
    }
    let cpu = thread_cpu_ns()?.saturating_sub(start);
    stop.store(true, Ordering::Relaxed);
    sender
        .join()
        .map_err(|_| std::io::Error::other("sender panicked"))??;
    Ok((cpu, got))
}

/// One datagram every [`PERIOD`] to `dest` from CPU 1 until `stop`.
fn spawn_sender(
    dest: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        pin_or_warn(1);
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let payload = [0x5au8; DATAGRAM];
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            next += PERIOD;
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            socket.send_to(&payload, dest)?;
        }
        Ok(())
    })
}
