//! Replicas starting together all migrate; the advisory lock lets one apply each
//! migration once while the others wait and find nothing to do.

use sealgate_store_postgres::{migrate, SCHEMA_VERSION};

use crate::support::{admin_url, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_together_apply_each_migration_once() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { migrate(&url).await })
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        applied += run.await.expect("task").expect("migrate");
    }
    assert_eq!(
        applied, SCHEMA_VERSION as usize,
        "each migration ran exactly once"
    );
    assert_eq!(migrate(&db.url).await.expect("migrate again"), 0);
    let versions: Vec<i32> = db
        .client()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_newer_than_this_build_is_refused() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    migrate(&db.url).await.expect("migrate");
    db.client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .expect("insert");
    let err = migrate(&db.url).await.expect_err("newer schema");
    assert!(err.to_string().contains("newer"), "{err}");
    db.drop_db().await;
}

/// A ledger that was in use before `tree_nodes` existed gets its nodes computed by
/// the migration that adds the table, so appends and proofs work right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_migration_backfills_an_existing_ledger() {
    use sealgate_core::entry::Status;
    use sealgate_store::conformance::decision;
    use sealgate_store::Store;

    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let store = db.store().await;
    for batch in 0..4 {
        let entries = (0..5)
            .map(|i| {
                decision(
                    "old",
                    "payment",
                    Status::Denied,
                    None,
                    &format!("2026-11-23T10:0{batch}:0{i}.000000Z"),
                )
            })
            .collect();
        store.append(entries).await.expect("append");
    }
    drop(store);
    // Back to the schema before migration 3: the tables of 3 and later go (DROP is
    // not refused by the row triggers), the ledger stays.
    let raw = db.client().await;
    raw.batch_execute(
        "DROP TABLE tree_nodes, checkpoints, resolutions;
         DELETE FROM schema_migrations WHERE version >= 3;",
    )
    .await
    .expect("roll the schema back");
    assert_eq!(migrate(&db.url).await.expect("migrate"), 2);

    let store = db.store().await;
    store
        .append(vec![decision(
            "new",
            "payment",
            Status::Denied,
            None,
            "2026-11-23T11:00:00.000000Z",
        )])
        .await
        .expect("append after the backfill");
    let leaves: Vec<[u8; 32]> = store
        .range(0, 21)
        .await
        .expect("range")
        .iter()
        .map(|e| e.leaf_hash)
        .collect();
    assert_eq!(leaves.len(), 21);
    crate::support::assert_tree_is(&raw, &store, &leaves).await;
    drop((store, raw));
    db.drop_db().await;
}
