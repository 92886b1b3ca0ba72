//! Appends decision entries through the SQLite store in batches the size the group
//! commit forms under load, and prints the process CPU time per entry (user + system,
//! so the WAL writes and fsyncs count) and the wall time per batch.
//!
//!     cargo run --release -p sealgate-store-sqlite --example bench_append -- [BATCHES] [BATCH]

use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::Store;
use sealgate_store_sqlite::SqliteStore;

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the whole line are utime and stime; here 0-based after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let batch: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("ledger.db"))?;
    let statuses = [
        Status::Approved,
        Status::Approved,
        Status::Approved,
        Status::Approved,
        Status::Denied,
    ];
    let mut n = 0u64;
    // Entries are built up front so only the appends are timed.
    let all: Vec<Vec<_>> = (0..batches)
        .map(|_| {
            (0..batch)
                .map(|_| {
                    n += 1;
                    let status = statuses[(n % 5) as usize];
                    let seal = (status == Status::Approved).then(|| format!("seal-{n:012}"));
                    let time = format!("2026-12-02T10:00:00.{n:06}Z");
                    decision(
                        &format!("agent-{}", n % 16),
                        "payment",
                        status,
                        seal.as_deref(),
                        &time,
                    )
                })
                .collect()
        })
        .collect();
    let (cpu0, t0) = (cpu_seconds(), std::time::Instant::now());
    for entries in all {
        store.append(entries).await?;
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    println!(
        "{n} entries in batches of {batch}: {:.1} µs CPU per entry, {:.0} µs wall per batch, {:.0} entries/s",
        cpu * 1e6 / n as f64,
        wall * 1e6 / batches as f64,
        n as f64 / wall
    );
    Ok(())
}
