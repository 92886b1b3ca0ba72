//! sealgate's domain: manifests, decisions, seals, ledger entries and their canonical
//! JSON. Everything here is pure: no I/O, no clocks, no randomness — callers inject them.

pub mod canonical;
pub mod entry;
pub mod json;
pub mod limits;
pub mod manifest;
pub mod role;
pub mod seal;
pub mod timefmt;

pub use entry::{Entry, Status};
pub use manifest::{FieldError, Manifest};
pub use role::Role;
