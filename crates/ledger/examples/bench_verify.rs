//! Micro benchmark of offline verification: rebuild the root of 1,000,000 synthetic
//! entries (400 bytes unless told; leaf hashing included) through [`Replay`],
//! checking a checkpoint every 100,000 entries, and print entries per second.
//!
//! Run with `cargo run --release -p sealgate-ledger --example bench_verify [entries]
//! [checked|unchecked] [entry bytes]`. On a shared machine wall time overstates the
//! cost; `unchecked` skips the untimed pass that computes the expected roots, so
//! `/usr/bin/time` then reports the CPU time of the replay alone. `fill_ledger`'s
//! decision entries average 876 bytes, so `bench_verify 1000000 unchecked 876` is the
//! hashing floor of `sealgate verify` over that ledger.

use std::time::Instant;

use sealgate_ledger::{Frontier, Hash, Replay};

/// Entry `i`: distinct per index.
fn entry(i: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let unchecked = std::env::args().nth(2).is_some_and(|a| a == "unchecked");
    let entry_len: usize = std::env::args()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
        .max(8);
    let mut buf = vec![0x5au8; entry_len];

    // Expected roots, computed once up front (not timed).
    let mut frontier = Frontier::new();
    let mut checkpoints: Vec<(u64, Hash)> = Vec::new();
    for i in 0..if unchecked { 0 } else { entries } {
        entry(i, &mut buf);
        frontier.push_entry(&buf);
        if frontier.size().is_multiple_of(100_000) || frontier.size() == entries {
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
        "replayed {} entries of {entry_len} bytes, {} checkpoints matched, in {secs:.3} s: {:.0} entries/s",
        summary.size,
        summary.checkpoints,
        summary.size as f64 / secs
    );
}
