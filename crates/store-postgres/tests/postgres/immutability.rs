//! Someone with a SQL shell on the database, even as the schema owner, still cannot
//! UPDATE, DELETE or TRUNCATE evidence: the triggers refuse, naming immutability.

use sealgate_core::Role;
use sealgate_store::{NewApiKey, NewCheckpoint, Store};
use tokio_postgres::Client;

use crate::support::{admin_url, TestDb};

/// Fills every table with at least one row (three single-entry batches complete the
/// tree node covering leaves 0 and 1).
pub(crate) async fn populate(store: &dyn Store) {
    sealgate_store::conformance::fill_evidence(store).await;
    store
        .create_key(&NewApiKey {
            id: "key-1".into(),
            role: Role::Agent,
            name: "agent".into(),
            token_hash: sealgate_store::token_hash("sgk_test"),
            created_at: "2026-11-23T10:00:00.000000Z".into(),
        })
        .await
        .expect("key");
    store
        .put_checkpoint(&NewCheckpoint {
            tree_size: 3,
            note: "sealgate.test/log\n3\nroot\n\n— sig\n".into(),
            created_at: "2026-11-23T10:00:02.000000Z".into(),
        })
        .await
        .expect("checkpoint");
}

pub(crate) const EVIDENCE: [(&str, &str); 9] = [
    ("entries", "kind = 'x'"),
    ("decisions", "status = 'approved'"),
    ("seals", "expires_at = '2099-01-01'"),
    ("redemptions", "redeemed_at = 'never'"),
    ("resolutions", "approved = true"),
    ("policies", "bundle = '\\x00'::bytea"),
    ("policy_activations", "version = 'evil'"),
    ("tree_nodes", "hash = '\\x00'::bytea"),
    ("checkpoints", "note = 'forged'"),
];

/// The server's message for a statement that must fail.
pub(crate) async fn refused(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql} succeeded"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_delete_and_truncate_on_evidence_tables_fail_with_immutable() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let store = db.store().await;
    populate(&store).await;

    let raw = db.client().await;
    for table in ["tree_nodes", "checkpoints"] {
        let rows: i64 = raw
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert!(rows > 0, "{table} has rows to protect");
    }
    for (table, set) in EVIDENCE {
        for sql in [
            format!("UPDATE {table} SET {set}"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            // Statement-level triggers: refused even when no row matches.
            format!("DELETE FROM {table} WHERE false"),
        ] {
            let msg = refused(&raw, &sql).await;
            assert!(msg.contains("immutable"), "{sql}: {msg}");
        }
    }
    for sql in [
        "UPDATE log_head SET next_index = 0",
        "DELETE FROM log_head",
        "TRUNCATE log_head",
        "UPDATE api_keys SET role = 'admin'",
    ] {
        let msg = refused(&raw, sql).await;
        assert!(msg.contains("immutable"), "{sql}: {msg}");
    }
    assert_eq!(
        store
            .revoke_key("key-1", "2026-11-23T11:00:00.000000Z")
            .await
            .expect("revoke"),
        sealgate_store::Revocation::Revoked
    );
    let msg = refused(&raw, "UPDATE api_keys SET revoked_at = NULL").await;
    assert!(msg.contains("immutable"), "un-revoking: {msg}");

    assert_eq!(store.tree_size().await.expect("size"), 5);
    assert_eq!(store.checkpoints().await.expect("checkpoints").len(), 1);
    drop(store);
    db.drop_db().await;
}
