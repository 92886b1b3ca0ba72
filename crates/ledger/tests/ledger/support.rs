//! Test support: locating the shared test data, and naive RFC 6962 definitions
//! (recursive MTH, PATH and SUBPROOF) to check the real implementation against.

use std::ops::Range;
use std::path::PathBuf;

use sealgate_ledger::{node_hash, Hash, EMPTY_ROOT};

/// `/work/shared/testdata/tlog` (`../shared/testdata` from the repository root), or
/// `None` after printing the skip notice when it is absent.
pub(crate) fn tlog_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if dir.is_dir() {
        Some(dir.join("tlog"))
    } else {
        println!("skipped: ../shared/testdata not present");
        None
    }
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[n]) straight from RFC 6962 section 2.1.
pub(crate) fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

/// The leaf ranges of PATH(m, D[n]) (RFC 6962 section 2.1.1), bottom-up.
pub(crate) fn naive_path(m: u64, range: Range<u64>) -> Vec<Range<u64>> {
    let n = range.end - range.start;
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    let mid = range.start + k;
    if m < k {
        let mut path = naive_path(m, range.start..mid);
        path.push(mid..range.end);
        path
    } else {
        let mut path = naive_path(m - k, mid..range.end);
        path.push(range.start..mid);
        path
    }
}

/// The leaf ranges of SUBPROOF(m, D[n], b) (RFC 6962 section 2.1.2).
pub(crate) fn naive_subproof(m: u64, range: Range<u64>, whole: bool) -> Vec<Range<u64>> {
    let n = range.end - range.start;
    if m == n {
        return if whole { Vec::new() } else { vec![range] };
    }
    let k = split(n);
    let mid = range.start + k;
    if m <= k {
        let mut proof = naive_subproof(m, range.start..mid, whole);
        proof.push(mid..range.end);
        proof
    } else {
        let mut proof = naive_subproof(m - k, mid..range.end, false);
        proof.push(range.start..mid);
        proof
    }
}
