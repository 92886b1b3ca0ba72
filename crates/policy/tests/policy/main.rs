//! Integration tests for sealgate-policy: one binary, a module per feature.

#![allow(clippy::unwrap_used)]

mod absorbed;
mod backends;
mod combine;
mod fail_closed;
mod finance;
mod support;
mod threads;
mod version;
