//! Someone with the database file and a SQL shell still cannot UPDATE or DELETE
//! evidence through SQL: the triggers refuse, naming immutability.

use rusqlite::Connection;
use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::{AuditQuery, Store};

#[tokio::test]
async fn update_and_delete_on_evidence_tables_fail_with_immutable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let store = sealgate_store_sqlite::SqliteStore::open(&path).expect("open");
    sealgate_store::conformance::fill_evidence(&store).await;

    // Audit rows are written in bulk; a query writes the pending ones, so every
    // table below has a row to protect.
    store
        .decisions(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("audit query");

    let conn = Connection::open(&path).expect("raw connection");
    for (table, set) in [
        ("entries", "kind = 'x'"),
        ("decisions", "status = 'approved'"),
        ("seals", "expires_at = '2099-01-01'"),
        ("redemptions", "redeemed_at = 'never'"),
        ("resolutions", "approved = 1"),
        ("policies", "bundle = x'00'"),
        ("policy_activations", "version = 'evil'"),
    ] {
        for sql in [
            format!("UPDATE {table} SET {set}"),
            format!("DELETE FROM {table}"),
        ] {
            match conn.execute(&sql, []) {
                Err(e) => assert!(e.to_string().contains("immutable"), "{sql}: {e}"),
                Ok(n) => panic!("{sql} changed {n} rows"),
            }
        }
    }
    assert_eq!(store.tree_size().await.expect("size"), 5);
}

#[tokio::test]
async fn reopening_keeps_the_ledger_and_continues_indices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let store = sealgate_store_sqlite::SqliteStore::open(&path).expect("open");
        store
            .append(vec![decision(
                "a",
                "payment",
                Status::Denied,
                None,
                "2026-11-23T10:00:00.000000Z",
            )])
            .await
            .expect("append");
    }
    let store = sealgate_store_sqlite::SqliteStore::open(&path).expect("reopen");
    let out = store
        .append(vec![decision(
            "a",
            "payment",
            Status::Denied,
            None,
            "2026-11-23T10:00:01.000000Z",
        )])
        .await
        .expect("append");
    assert_eq!(out[0].as_ref().expect("ok").index, 1);
}
