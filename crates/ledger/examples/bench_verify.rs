//! Micro benchmark of offline verification: rebuild the root of 1,000,000 synthetic
//! 400-byte entries (leaf hashing included) through [`Replay`], checking a
//! checkpoint every 100,000 entries, and print entries per second.
//!
//! Run with `cargo run --release -p sealgate-ledger --example bench_verify [entries]`.
//! On a shared machine wall time overstates the cost; `bench_verify <entries>
//! unchecked` skips the untimed pass that computes the expected roots, so
//! `/usr/bin/time` then reports the CPU time of the replay alone.

use std::time::Instant;

use sealgate_ledger::{Frontier, Hash, Replay};

const ENTRY_LEN: usize = 400;

/// Entry `i`: 400 bytes, distinct per index.
fn entry(i: u64, buf: &mut [u8; ENTRY_LEN]) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let unchecked = std::env::args().nth(2).is_some_and(|a| a == "unchecked");
    let mut buf = [0x5au8; ENTRY_LEN];

    // Expected roots, computed once up front (not timed).
    let mut frontier = Frontier::new();
    let mut checkpoints: Vec<(u64, Hash)> = Vec::new();
    for i in 0..if unchecked { 0 } else { entries } {
        entry(i, &mut buf);
        frontier.push_entry(&buf);
        if frontier.size() % 100_000 == 0 || frontier.size() == entries {
            checkpoints.push((frontier.size(), frontier.root()));
        }
    }

    let start = Instant::now();
    let mut replay = match Replay::new(checkpoints) {
        Ok(replay) => replay,
        Err(e) => return eprintln!("replay refused its checkpoints: {e}"),
    };
    for i in 0..entries {
        entry(i, &mut buf);
        if let Err(e) = replay.push_entry(&buf) {
            return eprintln!("replay failed: {e}");
        }
    }
    let summary = match replay.finish() {
        Ok(summary) => summary,
        Err(e) => return eprintln!("replay failed: {e}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "replayed {} entries of {ENTRY_LEN} bytes, {} checkpoints matched, in {secs:.3} s: {:.0} entries/s",
        summary.size,
        summary.checkpoints,
        summary.size as f64 / secs
    );
}
