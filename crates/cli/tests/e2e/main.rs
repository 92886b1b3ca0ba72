//! End-to-end tests: the real `sealgate` binary, spawned per test on a free port with
//! a fresh data directory, driven over HTTP (and, where a point is about what is on
//! disk, through the files and the SQLite ledger it writes).
//!
//! One module per acceptance point; `support` is the harness.

#![allow(clippy::unwrap_used)]

mod approvals;
mod audit;
mod auth;
mod bad_input;
mod bench;
mod durability;
mod entries;
mod immutability;
mod integrity;
mod keys;
mod policies;
mod policy_cli;
mod ratelimit;
mod redaction;
mod relay;
mod seals;
#[path = "../common/served.rs"]
mod served;
mod startup;
mod support;
mod tiles;
