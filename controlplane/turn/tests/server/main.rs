//! Behaviour tests of `uturn_turn::Server` on a fake clock: a small TURN
//! client built from `uturn_stun::builder` talks to a server through
//! [`harness::Harness`], which plays the dataplane (answers `OpenRelay`,
//! collects rule changes and transmits).

mod allocate;
mod auth;
mod harness;
mod lifetimes;
mod permission;
mod robustness;
