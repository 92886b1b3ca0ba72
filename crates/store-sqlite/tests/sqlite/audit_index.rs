//! The audit index (`decisions`) is written in bulk under load, yet the audit query
//! always sees every committed decision, and a crash before a bulk write loses no
//! audit row: reopening rebuilds them from the entries.

use rusqlite::Connection;
use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::{AuditQuery, NewCheckpoint, NewEntry, Store};
use sealgate_store_sqlite::SqliteStore;

fn batch(from: u32, n: u32) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| {
            let time = format!("2026-12-02T10:00:00.{i:06}Z");
            decision(
                &format!("agent-{}", i % 3),
                "payment",
                Status::Denied,
                None,
                &time,
            )
        })
        .collect()
}

fn indexed(path: &std::path::Path) -> i64 {
    Connection::open(path)
        .expect("raw connection")
        .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
        .expect("count")
}

fn all() -> AuditQuery {
    AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    }
}

#[tokio::test]
async fn batched_decisions_wait_for_a_bulk_write_but_queries_see_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).expect("open");
    store.append(batch(0, 8)).await.expect("append");
    store.append(batch(8, 8)).await.expect("append");
    assert_eq!(indexed(&path), 0, "batches of 8 are pending in the writer");

    let rows = store.decisions(&all()).await.expect("query");
    assert_eq!(rows.len(), 16, "the query flushed the pending rows first");
    assert_eq!(indexed(&path), 16);
    let by_agent = AuditQuery {
        agent_id: Some("agent-1".into()),
        ..all()
    };
    let rows = store.decisions(&by_agent).await.expect("query");
    let indices: Vec<u64> = rows.iter().map(|r| r.entry.index).collect();
    assert_eq!(indices, vec![13, 10, 7, 4, 1], "newest first, filtered");

    // A checkpoint (at most a second apart under load) writes them too.
    store.append(batch(16, 8)).await.expect("append");
    assert_eq!(indexed(&path), 16);
    store
        .put_checkpoint(&NewCheckpoint {
            tree_size: 24,
            note: "note".into(),
            created_at: "2026-12-02T10:00:01.000000Z".into(),
        })
        .await
        .expect("checkpoint");
    assert_eq!(indexed(&path), 24);
}

#[tokio::test]
async fn enough_pending_rows_are_written_with_the_batch_that_completes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).expect("open");
    // 128 rows pending (the bulk size) go out with the batch that reaches it.
    for b in 0..15 {
        store.append(batch(b * 8, 8)).await.expect("append");
    }
    assert_eq!(indexed(&path), 0);
    store.append(batch(120, 8)).await.expect("append");
    assert_eq!(indexed(&path), 128);
    // Single entries wait too (under load the group commit forms those as well).
    store.append(batch(128, 1)).await.expect("append");
    assert_eq!(indexed(&path), 128);
}

#[tokio::test]
async fn a_crash_before_the_bulk_write_loses_no_audit_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store.append(batch(0, 1)).await.expect("append");
        store.decisions(&all()).await.expect("query");
        store.append(batch(1, 8)).await.expect("append");
        store.append(batch(9, 8)).await.expect("append");
        assert_eq!(indexed(&path), 1);
        // Dropped without a query or checkpoint: the pending rows exist only in memory,
        // as after a SIGKILL.
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(indexed(&path), 17, "rebuilt from the entries at open");
    let rows = store.decisions(&all()).await.expect("query");
    let indices: Vec<u64> = rows.iter().map(|r| r.entry.index).collect();
    assert_eq!(indices, (0..17).rev().collect::<Vec<_>>());
    // Appending continues after the rebuilt rows.
    store.append(batch(17, 1)).await.expect("append");
    store.decisions(&all()).await.expect("query");
    assert_eq!(indexed(&path), 18);
}
