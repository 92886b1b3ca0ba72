//! Integration tests of sealgate-ledger, one binary: known-answer vectors from
//! ../shared/testdata/tlog, signed-note vectors, and property tests.

mod notes;
mod properties;
mod support;
mod vectors;
