//! uturn's XDP fast path: a C program (`xdp/uturn.c`, compiled by `build.rs`
//! with `clang -target bpf`) that relays channel traffic in the kernel's
//! receive path (RFC 8656 §12.5–§12.7 over UDP), and its loader.
//!
//! ```text
//!  client --ChannelData--> [XDP on the ingress interface] --UDP--> peer
//!                           strip the 4-byte header, relay addr/port as source,
//!                           fib lookup, XDP_TX or redirect
//!  client <--ChannelData-- [XDP] <--UDP-- peer
//!                           add the header, listener addr/port as source
//!  anything else, or anything in doubt --XDP_PASS--> the userspace relay
//! ```
//!
//! The maps are the contract (see [`rule`] for their layout): the control
//! plane inserts both directions of a channel binding with
//! [`XdpFastPath::insert`] once the binding and its permission exist, and
//! removes them ([`XdpFastPath::remove`]) when the channel, the permission or
//! the allocation ends. Lifetimes stay in the control plane: the kernel path
//! never reads a clock to decide, it only counts (per rule, per CPU) so that
//! metrics stay right for offloaded traffic.
//!
//! The loader is aya: pure Rust on the stable toolchain, reading the
//! clang-built ELF with its BTF map definitions; no libbpf C build. Programs
//! are attached with a BPF link (kernel ≥ 5.9), which the kernel detaches when
//! its last file descriptor closes: a crashed uturn leaves nothing attached.
//! A program attached the old way (netlink, by aya's fallback on old kernels)
//! survives its process; [`XdpFastPath::attach`] detaches such a stale
//! `uturn_xdp` first. docs/xdp.md has the rest.

#![deny(unsafe_code)]

mod iface;
pub mod rule;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

pub use rule::{ChannelRule, Flow, NotOffloadable, RuleCounters};

use crate::rule::{ClientKey, RelayTuple, Stats, STATS_WORDS};

/// The object file built from `xdp/uturn.c`, if clang was there to build it.
#[cfg(uturn_xdp_program)]
static PROGRAM: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/uturn.bpf.o"
)));
#[cfg(not(uturn_xdp_program))]
static PROGRAM: Option<&[u8]> = None;

/// An ELF object whose XDP program (section `xdp`, `uturn_pass`) passes
/// every frame, if clang was there to build it. veth delivers frames sent
/// with XDP_TX or redirect only to a far end that runs XDP (GRO alone is
/// not enough on current kernels), so tests and testbeds attach this to the
/// far ends of their veth pairs, e.g. with
/// `ip link set dev IFACE xdpdrv obj FILE sec xdp`.
#[cfg(uturn_xdp_program)]
pub static PASS_PROGRAM: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/pass.bpf.o"
)));
#[cfg(not(uturn_xdp_program))]
pub static PASS_PROGRAM: Option<&[u8]> = None;

/// The program's name in the object and in the kernel (stale-attach check).
pub const PROGRAM_NAME: &str = "uturn_xdp";

/// Whether this build carries the XDP program.
pub fn available() -> bool {
    PROGRAM.is_some()
}

/// Where the kernel runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// In the driver, before an skb exists (needs driver support).
    #[default]
    Native,
    /// In the core receive path, for any driver (slower; for testing or
    /// drivers without XDP).
    Generic,
}

impl Mode {
    fn flags(self) -> XdpMode {
        match self {
            Mode::Native => XdpMode::Driver,
            Mode::Generic => XdpMode::Skb,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
        }
    }
}

/// Why packets took the way they took, summed over CPUs (the program's
/// `events` map, indexed like `enum event` in xdp/uturn.c).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// Relayed to a peer in XDP.
    pub to_peer: u64,
    /// Relayed to a client in XDP.
    pub to_client: u64,
    /// ChannelData of a known channel whose length is not exactly the UDP
    /// payload (padding, truncation): passed to userspace.
    pub pass_length: u64,
    /// The route lookup failed (no route, blackhole, ...): passed.
    pub pass_route: u64,
    /// Forwarding is disabled on the ingress interface: passed.
    pub pass_forwarding_disabled: u64,
    /// The next hop's MAC is not resolved yet: passed (the stack resolves it).
    pub pass_no_neighbour: u64,
    /// The result would exceed the egress MTU: passed.
    pub pass_mtu: u64,
    /// No headroom to move the headers: passed.
    pub pass_headroom: u64,
    /// IPv6 datagram without a UDP checksum, or a partial checksum (a
    /// sender on this host whose device offloads checksums): passed.
    pub pass_checksum: u64,
}

/// Number of entries in the program's `events` map (`EV_COUNT`).
const EVENTS: u32 = 9;

/// Loader and attachment errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("this uturn was built without the XDP program (clang missing at build time)")]
    NotBuilt,
    #[error("cannot load the XDP program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("cannot load or attach the XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("cannot attach XDP to {iface} ({mode} mode): {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("XDP map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("cannot count CPUs: {0}")]
    Cpus(std::io::Error),
    #[error(transparent)]
    NotOffloadable(#[from] NotOffloadable),
}

/// The loaded program, attached to some interfaces, and its maps.
///
/// Map updates are syscalls made on the control path (rule changes, metric
/// scrapes); the mutex is never taken per packet.
#[derive(Debug)]
pub struct XdpFastPath {
    interfaces: Vec<String>,
    mode: Mode,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Owns the program and its links; `None` once detached.
    ebpf: Option<Ebpf>,
    to_peer: HashMap<MapData, ClientKey, RelayTuple>,
    to_client: HashMap<MapData, RelayTuple, ClientKey>,
    stats: PerCpuHashMap<MapData, ClientKey, Stats>,
    events: PerCpuArray<MapData, u64>,
    /// Installed rules, so a removal finds its keys and double inserts or
    /// removals are harmless.
    installed: HashSet<ChannelRule>,
    /// Totals of rules already removed (their per-CPU counters are read
    /// just before the delete).
    retired: RuleCounters,
    /// Interfaces whose IPv4 forwarding we turned on, to restore.
    forwarding: Vec<iface::Forwarding>,
    cpus: usize,
}

impl XdpFastPath {
    /// Loads the program and attaches it to every interface in `interfaces`
    /// (all or nothing: on any failure, what was attached is detached).
    pub fn attach(interfaces: &[String], mode: Mode) -> Result<Self, Error> {
        let object = PROGRAM.ok_or(Error::NotBuilt)?;
        let mut ebpf = Ebpf::load(object)?;
        let to_peer =
            HashMap::try_from(ebpf.take_map("to_peer").ok_or(Error::Missing("to_peer"))?)?;
        let to_client = HashMap::try_from(
            ebpf.take_map("to_client")
                .ok_or(Error::Missing("to_client"))?,
        )?;
        let stats = PerCpuHashMap::try_from(
            ebpf.take_map("rule_stats")
                .ok_or(Error::Missing("rule_stats"))?,
        )?;
        let events =
            PerCpuArray::try_from(ebpf.take_map("events").ok_or(Error::Missing("events"))?)?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| Error::Cpus(e))?;

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(Error::Missing("uturn_xdp program"))?
            .try_into()?;
        program.load()?;
        let mut forwarding = Vec::new();
        for name in interfaces {
            iface::detach_stale(name);
            if let Err(source) = program.attach(name, mode.flags()) {
                // Dropping `ebpf` detaches the interfaces done so far.
                for f in forwarding {
                    iface::restore_forwarding(f);
                }
                return Err(Error::Attach {
                    iface: name.clone(),
                    mode: mode.as_str(),
                    source,
                });
            }
            if let Some(f) = iface::enable_forwarding(name) {
                forwarding.push(f);
            }
        }
        Ok(Self {
            interfaces: interfaces.to_vec(),
            mode,
            inner: Mutex::new(Inner {
                ebpf: Some(ebpf),
                to_peer,
                to_client,
                stats,
                events,
                installed: HashSet::new(),
                retired: RuleCounters::default(),
                forwarding,
                cpus,
            }),
        })
    }

    /// The interfaces the program is attached to (empty once detached).
    pub fn interfaces(&self) -> &[String] {
        if self.lock().ebpf.is_some() {
            &self.interfaces
        } else {
            &[]
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Installs both directions of a channel binding. Inserting an installed
    /// rule again changes nothing (its counters keep counting).
    pub fn insert(&self, rule: &ChannelRule) -> Result<(), Error> {
        rule.check()?;
        let mut inner = self.lock();
        if inner.installed.contains(rule) {
            return Ok(());
        }
        let key = rule.client_key();
        let tuple = rule.relay_tuple();
        // Counters first, so the first forwarded packet is counted.
        let zeros =
            PerCpuValues::try_from(vec![[0u64; STATS_WORDS]; inner.cpus]).map_err(Error::Cpus)?;
        inner.stats.insert(key, zeros, 0)?;
        inner.to_client.insert(tuple, key, 0)?;
        if let Err(e) = inner.to_peer.insert(key, tuple, 0) {
            let _ = inner.to_client.remove(&tuple);
            let _ = inner.stats.remove(&key);
            return Err(e.into());
        }
        inner.installed.insert(*rule);
        Ok(())
    }

    /// Removes both directions of a channel binding and returns what XDP
    /// forwarded for it (also kept in [`XdpFastPath::totals`]). `None` if it
    /// was not installed.
    pub fn remove(&self, rule: &ChannelRule) -> Option<RuleCounters> {
        let mut inner = self.lock();
        if !inner.installed.remove(rule) {
            return None;
        }
        let key = rule.client_key();
        // Rules first: from here on no new packet is counted.
        let _ = inner.to_peer.remove(&key);
        let _ = inner.to_client.remove(&rule.relay_tuple());
        let counters = inner.read_stats(&key).unwrap_or_default();
        let _ = inner.stats.remove(&key);
        inner.retired.add(&counters);
        Some(counters)
    }

    /// What XDP forwarded for an installed rule.
    pub fn counters(&self, rule: &ChannelRule) -> Option<RuleCounters> {
        self.lock().read_stats(&rule.client_key())
    }

    /// Installed rules.
    pub fn rules(&self) -> usize {
        self.lock().installed.len()
    }

    /// Everything XDP forwarded since attach: the live rules' counters plus
    /// those of removed rules.
    pub fn totals(&self) -> RuleCounters {
        let inner = self.lock();
        let mut t = inner.retired;
        // An entry removed while iterating is skipped: its totals moved
        // to `retired` under this same lock, so nothing is lost.
        for (_, values) in inner.stats.iter().flatten() {
            let mut c = RuleCounters::default();
            for cpu in values.iter() {
                c.add_cpu(cpu);
            }
            t.add(&c);
        }
        t
    }

    /// The program's decisions, summed over CPUs.
    pub fn events(&self) -> Events {
        let inner = self.lock();
        let mut sums = [0u64; EVENTS as usize];
        for (index, sum) in (0u32..).zip(sums.iter_mut()) {
            if let Ok(values) = inner.events.get(&index, 0) {
                *sum = values.iter().fold(0u64, |a, v| a.wrapping_add(*v));
            }
        }
        let [to_peer, to_client, pass_length, pass_route, pass_forwarding_disabled, pass_no_neighbour, pass_mtu, pass_headroom, pass_checksum] =
            sums;
        Events {
            to_peer,
            to_client,
            pass_length,
            pass_route,
            pass_forwarding_disabled,
            pass_no_neighbour,
            pass_mtu,
            pass_headroom,
            pass_checksum,
        }
    }

    /// Detaches the program from every interface and restores the
    /// forwarding settings it changed. The maps stay readable (totals).
    pub fn detach(&self) {
        let mut inner = self.lock();
        if inner.ebpf.take().is_some() {
            for f in std::mem::take(&mut inner.forwarding) {
                iface::restore_forwarding(f);
            }
            tracing::info!(interfaces = %self.interfaces.join(","), "XDP program detached");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps as they were (each
        // update is one syscall), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for XdpFastPath {
    fn drop(&mut self) {
        self.detach();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("attached", &self.ebpf.is_some())
            .field("installed", &self.installed.len())
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn read_stats(&self, key: &ClientKey) -> Option<RuleCounters> {
        let values = self.stats.get(key, 0).ok()?;
        let mut c = RuleCounters::default();
        for cpu in values.iter() {
            c.add_cpu(cpu);
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loading runs the kernel's verifier over the program: a program that
    /// builds but would be rejected at run time fails here. Needs root
    /// (CAP_BPF), as CI has.
    #[test]
    fn the_kernel_verifier_accepts_the_program() {
        assert!(available(), "clang is needed to build the XDP program");
        let object = PROGRAM.unwrap_or_default();
        let mut ebpf = Ebpf::load(object).expect("load the object (root needed)");
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("the program is in the object")
            .try_into()
            .expect("an XDP program");
        if let Err(e) = program.load() {
            panic!("the verifier rejected the program: {e:?}");
        }
        for map in ["to_peer", "to_client", "rule_stats", "events"] {
            assert!(ebpf.map(map).is_some(), "map {map}");
        }
    }

    #[test]
    fn the_kernel_verifier_accepts_the_pass_program() {
        let object = PASS_PROGRAM.expect("clang is needed to build the XDP programs");
        let mut ebpf = Ebpf::load(object).expect("load the object (root needed)");
        let program: &mut Xdp = ebpf
            .program_mut("uturn_pass")
            .expect("the program is in the object")
            .try_into()
            .expect("an XDP program");
        if let Err(e) = program.load() {
            panic!("the verifier rejected the program: {e:?}");
        }
    }

    #[test]
    fn attaching_to_a_missing_interface_fails_with_its_name() {
        let err = XdpFastPath::attach(&["h8-nonexistent0".to_owned()], Mode::Generic)
            .expect_err("no such interface");
        assert!(err.to_string().contains("h8-nonexistent0"), "{err}");
    }
}
