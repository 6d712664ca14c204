//! The provided buffer ring of the io_uring backend
//! (`IORING_REGISTER_PBUF_RING`, Linux ≥ 5.19; `io_uring_setup_buf_ring(3)`):
//! receive buffers the kernel picks from when a multishot receive completes,
//! and that we hand back, one by one, once the datagram was handled.
//!
//! Both the ring of descriptors and the buffers are anonymous mappings: the
//! ring must be page-aligned, and untouched buffer pages cost no memory.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The provided buffer ring: `entries` descriptors (shared with the kernel)
/// and `entries` buffers of `size` bytes, both in anonymous mappings.
#[derive(Debug)]
pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    bufs: *mut u8,
    bufs_bytes: usize,
    entries: u16,
    size: u32,
    /// Our copy of the tail; published to the kernel after each change.
    tail: u16,
    /// The buffer group we are registered as, if registered.
    registered: Option<u16>,
    /// Set when the kernel may still use the memory: never unmap it.
    pub(crate) leak: bool,
}

impl BufRing {
    pub(crate) fn new(entries: u16, size: u32) -> io::Result<Self> {
        let ring_bytes = usize::from(entries) * mem::size_of::<BufRingEntry>();
        let bufs_bytes = usize::from(entries) * size as usize;
        let ring = map(ring_bytes)?.cast::<BufRingEntry>();
        let bufs = match map(bufs_bytes) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `ring` was mapped above with this length.
                unsafe { libc::munmap(ring.cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut this = Self {
            ring,
            ring_bytes,
            bufs,
            bufs_bytes,
            entries,
            size,
            tail: 0,
            registered: None,
            leak: false,
        };
        for bid in 0..entries {
            this.provide(bid);
        }
        Ok(this)
    }

    pub(crate) fn register(&mut self, ring: &IoUring, group: u16) -> io::Result<()> {
        // SAFETY: the mapping is page-aligned, `entries` long, and lives
        // until `unregister` (Drop of the backend unregisters first).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.ring as u64,
                self.entries,
                group,
                0,
            )?;
        }
        self.registered = Some(group);
        Ok(())
    }

    pub(crate) fn unregister(&mut self, ring: &IoUring) {
        if let Some(group) = self.registered.take() {
            let _ = ring.submitter().unregister_buf_ring(group);
        }
    }

    /// Gives buffer `bid` (back) to the kernel.
    pub(crate) fn provide(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let mask = self.entries - 1;
        // SAFETY: `tail & mask < entries`, inside the ring mapping; the
        // kernel only reads entries between its head and our tail, and this
        // one is past the published tail until the store below.
        unsafe {
            let entry = &mut *self.ring.add(usize::from(self.tail & mask));
            entry.set_addr(self.bufs.add(usize::from(bid) * self.size as usize) as u64);
            entry.set_len(self.size);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field overlays the first entry's `resv` in the
        // mapping (`io_uring_buf_ring`); the kernel reads it with acquire
        // semantics, so a release store publishes the entry written above.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, which the kernel handed to us
    /// in a completion and does not touch until we `provide` it again.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid >= self.entries || len > self.size as usize {
            return None;
        }
        // SAFETY: in bounds of the buffer mapping (checked above); the
        // kernel finished writing it before posting the completion, and the
        // returned borrow ends before `provide(bid)` (which takes `&mut self`).
        Some(unsafe {
            std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * self.size as usize), len)
        })
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leak || self.registered.is_some() {
            // Still registered means the ring may write into it: keep it.
            return;
        }
        // SAFETY: both regions were mapped by `map` with these lengths and
        // the kernel no longer uses them (unregistered, nothing in flight).
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.bufs.cast(), self.bufs_bytes);
        }
    }
}

/// Anonymous private mapping of `len` bytes (page-aligned, zeroed, backed
/// lazily).
fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}
