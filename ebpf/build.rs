//! Compiles the XDP programs (xdp/uturn.c, xdp/pass.c) with clang for
//! `-target bpf` when clang is present. Without clang the crate still
//! builds, without the programs: `XdpFastPath::attach` then fails at run time
//! with one clear error and uturn relays through its userspace path.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(uturn_xdp_program)");
    println!("cargo::rerun-if-changed=xdp/uturn.c");
    println!("cargo::rerun-if-changed=xdp/pass.c");
    println!("cargo::rerun-if-env-changed=CLANG");

    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo::warning=OUT_DIR unset; building without the XDP program");
        return;
    };
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    // Debian keeps asm/types.h under the multiarch directory, which clang
    // does not search for `-target bpf`.
    let multiarch = PathBuf::from("/usr/include").join(format!(
        "{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned())
    ));
    for name in ["uturn", "pass"] {
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c"])
            .arg(format!("xdp/{name}.c"))
            .arg("-o")
            .arg(out_dir.join(format!("{name}.bpf.o")));
        if multiarch.is_dir() {
            cmd.arg("-I").arg(&multiarch);
        }
        match cmd.status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                // A program that does not compile is a bug in it, not a missing tool.
                panic!("clang failed to compile xdp/{name}.c ({status})");
            }
            Err(e) => {
                println!(
                    "cargo::warning=no {clang} ({e}): building without the XDP program (--xdp will fail at run time)"
                );
                return;
            }
        }
    }
    println!("cargo::rustc-cfg=uturn_xdp_program");
}
