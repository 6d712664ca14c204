//! The few Linux calls the generator needs beyond what `std`, `socket2` and
//! the dataplane's I/O backends give: entering a network namespace
//! (`setns(2)`), pinning a thread (`sched_setaffinity(2)`) and raising the
//! open-file limit (one socket per session); and a thread's exact CPU time
//! for the examples that measure the dataplane.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The calling thread's network namespace while a [`NetnsGuard`] lives.
#[derive(Debug)]
pub struct NetnsGuard {
    /// The namespace to return to.
    home: File,
}

/// Moves the calling thread into the network namespace `name`
/// (`/var/run/netns/NAME`, as `ip netns add` creates it) until the guard is
/// dropped. Sockets created meanwhile stay in that namespace for good.
/// `None` leaves the thread where it is.
pub fn enter_netns(name: Option<&str>) -> io::Result<Option<NetnsGuard>> {
    let Some(name) = name else {
        return Ok(None);
    };
    if name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "namespace name contains '/'",
        ));
    }
    let home = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(format!("/var/run/netns/{name}"))?;
    setns(&target)?;
    Ok(Some(NetnsGuard { home }))
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home) {
            // Staying in the wrong namespace would put the next sockets in
            // it; there is no way to go on correctly.
            panic!("cannot return to the original network namespace: {e}");
        }
    }
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor that stays open for the call.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `cpu_set_t` is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` (checked above): the write is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; pointer and size describe `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// [`pin_to_cpu`], best effort for the examples: a failure is printed
/// (their numbers then say which CPU they meant, not which they ran on).
pub fn pin_or_warn(cpu: usize) {
    if let Err(e) = pin_to_cpu(cpu) {
        eprintln!("could not pin to CPU {cpu}: {e}");
    }
}

/// The calling thread's time on a CPU so far, in ns: the first field of
/// `/proc/thread-self/schedstat` (the scheduler's exact run time, not
/// tick-sampled).
pub fn thread_cpu_ns() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other("unreadable schedstat"))
}

/// Raises the soft open-file limit to the hard one; returns the new soft
/// limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}
