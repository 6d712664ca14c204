//! Helpers shared by the testbed's end-to-end tests (each test binary uses
//! a part of them).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use uturn_testbed::relay::RelayBinaries;
use uturn_testbed::runner::Testbed;
use uturn_testbed::topology::{existing_namespaces, Topology};

pub fn require_root() {
    let uid = uturn_testbed::procfs::effective_uid().expect("read /proc/self/status");
    assert_eq!(
        uid, 0,
        "the testbed's end-to-end tests need root (network namespaces); run `cargo test` as root"
    );
}

pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uturn-testbed"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

pub fn require_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build -p uturn -p uturn-bench`)",
        path.display()
    );
    path
}

/// A prefix no other test (or concurrent test run) uses; `tag` tells test
/// binaries apart when their process ids collide modulo 100 000.
pub fn unique_topology(tag: char) -> Topology {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix = format!("{tag}{}{n}", std::process::id() % 100_000);
    Topology::new(
        &prefix,
        "10.77.1.0/24".parse().unwrap(),
        "10.77.2.0/24".parse().unwrap(),
    )
    .unwrap()
}

/// Relay and generator on different CPUs where there are two.
pub fn cpus() -> (Vec<usize>, Vec<usize>) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n >= 2 {
        (vec![1], vec![0])
    } else {
        (vec![0], vec![0])
    }
}

pub fn testbed(topology: &Topology, raw: &str) -> Testbed {
    let (relay_cpus, load_cpus) = cpus();
    Testbed {
        topology: topology.clone(),
        relay_bins: RelayBinaries {
            uturn: require_bin("uturn"),
            turnserver: "turnserver".into(),
        },
        load_bin: bin_dir().join("uturn-load"),
        self_exe: PathBuf::from(env!("CARGO_BIN_EXE_uturn-testbed")),
        relay_cpus,
        load_cpus,
        relay_threads: 1,
        load_threads: 1,
        perf: false,
        relay_cpu_limit: None,
        threaded_napi: uturn_testbed::napi::NapiMode::All,
        aligned_load: false,
        raw_dir: std::env::temp_dir().join(format!("uturn-testbed-e2e-{}-{raw}", topology.prefix)),
    }
}

pub fn assert_gone(topology: &Topology) {
    let left: Vec<String> = existing_namespaces()
        .into_iter()
        .filter(|n| topology.namespaces().contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
