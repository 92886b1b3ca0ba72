//! The SQLite backend: the shared conformance suite plus what only SQLite has
//! (triggers reached through a raw connection, reopening a file).

mod audit_index;
mod immutability;
mod writer_lock;

use sealgate_store_sqlite::SqliteStore;

/// A fresh store in its own temporary directory; the directory lives as long as the test process.
async fn fresh() -> SqliteStore {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    SqliteStore::open(&dir.join("ledger.db")).expect("open")
}

sealgate_store::conformance_tests!(fresh);
