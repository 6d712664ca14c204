//! uturn's network-namespace testbed: measures a TURN relay (uturn on
//! io_uring or epoll, or coTURN) under the seed benchmark's load and writes
//! a comparison.
//!
//! ```text
//!   root ns: uturn-testbed ── uturn-load (sockets opened in clients/peers ns)
//!
//!   <p>-clients ──veth── <p>-relay ──veth── <p>-peers
//!   TURN clients         relay under test   peers (send, receive echoes)
//!                        pinned to --relay-cpus
//! ```
//!
//! A run ([`runner::Testbed::run`]) starts a fresh relay, waits for it to
//! answer STUN, runs `uturn-load`, samples the relay's utime+stime, the
//! generator's CPU and the system's softirq time at the generator's
//! `@window-start`/`@window-end` markers, and reads the relay's peak RSS.
//! [`scenario`] holds what is run (seed rows, sweep), [`crosscheck`] the same
//! measurement driven by coTURN's `turnutils_uclient`, [`report`] the
//! Markdown table and the SVG plot. In the sweep every relay runs under the
//! same CPU budget, a cgroup ([`cgroup`]), so the sweep finds the relay's
//! limit before the generator's; for XDP runs [`bpfstats`] reads the XDP
//! program's own run time from the kernel's BPF statistics. With threaded
//! NAPI ([`napi`], the default) the veths' receive and XDP work runs in
//! kernel threads whose CPU time is counted exactly: the relay side's with
//! the relay (pinned to its CPUs, inside its budget), the far ends' with
//! the generator.
//!
//! Cleanup is not optional: the namespaces (and budget cgroups) are deleted
//! by a drop guard, by the SIGINT/SIGTERM handler
//! ([`process::install_signal_cleanup`]), and at the start of every run
//! (leftovers of a killed run with the same prefix).

#![forbid(unsafe_code)]

pub mod bpfstats;
pub mod cgroup;
pub mod crosscheck;
pub mod load;
pub mod measure;
pub mod napi;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod profile;
pub mod relay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod topology;
