//! sealgate's domain: manifests, decisions, seals, ledger entries and their canonical
//! JSON. Everything here is pure: no I/O, no clocks, no randomness — callers inject them.

pub mod canonical;
