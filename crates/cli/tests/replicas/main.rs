//! Scale-out: several real `sealgate serve` processes on one PostgreSQL database (and
//! one data directory, for the shared seal and log keys), checked through the API
//! alone: one ledger with contiguous indices and one tree, checkpoints signed by one
//! leader at a time, seals redeemed once across replicas, a person's answer on one
//! replica reaching an agent waiting on another, nothing answered lost when a
//! replica is SIGKILLed.
//!
//! Needs `SEALGATE_TEST_DATABASE_URL` (admin URL); each test creates its own database.
//! Without it every test prints a skip notice and passes.

#![allow(clippy::unwrap_used)]

mod approvals;
mod leader;
mod ledger;
mod policies;
mod redeem;
#[path = "../common/served.rs"]
mod served;
mod sigkill;
mod support;
