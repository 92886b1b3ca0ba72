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
