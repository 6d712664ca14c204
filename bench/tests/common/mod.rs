//! What the bench crate's integration tests share: the uturn binary.
//!
//! The relay binary is the workspace's `uturn`: found next to the test's
//! target directory (`cargo test --workspace` builds it), else built with
//! `cargo build -p uturn`, or taken from `$UTURN_BIN`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The relay binary, built at most once per test process (the tests run
/// in parallel).
pub fn uturn_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_or_build_uturn).clone()
}

fn find_or_build_uturn() -> PathBuf {
    if let Ok(path) = std::env::var("UTURN_BIN") {
        return PathBuf::from(path);
    }
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let candidate = profile_dir.join("uturn");
    if !candidate.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let target_dir = profile_dir.parent().expect("target directory");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "uturn", "--target-dir"])
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p uturn");
        assert!(status.success(), "cargo build -p uturn failed");
    }
    assert!(
        candidate.exists(),
        "no uturn binary at {}",
        candidate.display()
    );
    candidate
}
