//! Append throughput: rows/s for batches of 1, 100 and 1000 decision entries, one
//! batch per transaction, straight through `Store::append` (no appender), median of 3.
//!
//!     SEALGATE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo run --release -p sealgate-store-postgres --example bench_append_postgres
//!
//! Creates `sealgate_bench_<random>` through that admin URL and drops it afterwards.

use std::time::Instant;

use rand::Rng;
use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::{NewEntry, Store};
use sealgate_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

const RUNS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let admin_url = std::env::var("SEALGATE_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("SEALGATE_TEST_DATABASE_URL"))
        .map_err(|_| {
            "set SEALGATE_TEST_DATABASE_URL (or SEALGATE_BENCH_DATABASE_URL) to an admin URL"
        })?;
    let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await?;
    tokio::spawn(connection);
    let name = format!("sealgate_bench_{:08x}", rand::thread_rng().gen::<u32>());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let mut config: tokio_postgres::Config = admin_url.parse()?;
    config.dbname(&name);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let url = format!(
        "host={host} port={} user={} dbname={name}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
    );

    let result = run(&url).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    result
}

async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = PostgresStore::connect(url, PostgresOptions::default()).await?;
    println!("batch  rows/run  rows/s (median of {RUNS})  runs");
    for (batch_size, rows) in [(1usize, 2_000usize), (100, 20_000), (1000, 50_000)] {
        let mut rates = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            // Canonical bytes and leaf hashes are computed off the clock, as the
            // gateway does before handing entries to the appender.
            let batches: Vec<Vec<NewEntry>> = (0..rows)
                .map(|i| {
                    decision(
                        &format!("bench-{batch_size}-{run}-{i}"),
                        "payment",
                        Status::Denied,
                        None,
                        "2026-11-23T10:00:00.000000Z",
                    )
                })
                .collect::<Vec<_>>()
                .chunks(batch_size)
                .map(<[NewEntry]>::to_vec)
                .collect();
            let start = Instant::now();
            for batch in batches {
                store.append(batch).await?;
            }
            rates.push(rows as f64 / start.elapsed().as_secs_f64());
        }
        let runs = rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ");
        rates.sort_by(f64::total_cmp);
        println!(
            "{batch_size:>5}  {rows:>8}  {:>22.0}  {runs}",
            rates[RUNS / 2]
        );
    }
    println!("tree size: {}", store.tree_size().await?);
    Ok(())
}
