//! sealgate runs as a login role that is a member of `sealgate_service`: it can
//! append, read, store policies and revoke keys, and nothing more. Every UPDATE,
//! DELETE or TRUNCATE of evidence is refused by the grants before the triggers are
//! even reached, and the role cannot disable the triggers.

use rand::Rng;
use sealgate_store::Store;
use sealgate_store_postgres::{PostgresOptions, PostgresStore};

use crate::immutability::{populate, refused, EVIDENCE};
use crate::support::{admin_client, admin_url, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_role_appends_but_cannot_change_evidence() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    // The owner migrates; this also creates sealgate_service.
    sealgate_store_postgres::migrate(&db.url)
        .await
        .expect("migrate as owner");
    let login = format!("sealgate_test_app_{:08x}", rand::thread_rng().gen::<u32>());
    let owner = admin_client(&admin).await;
    owner
        .batch_execute(&format!(
            "CREATE ROLE {login} LOGIN IN ROLE sealgate_service"
        ))
        .await
        .expect("create login role");

    let url = db.url_as(&login);
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect as the service role (migrations already applied)");
    populate(&store).await;
    assert_eq!(
        store
            .revoke_key("key-1", "2026-11-23T11:00:00.000000Z")
            .await
            .expect("revoking is allowed"),
        sealgate_store::Revocation::Revoked
    );
    assert_eq!(store.tree_size().await.expect("size"), 5);
    assert_eq!(
        store
            .latest_checkpoint()
            .await
            .expect("read checkpoint")
            .expect("stored as the service role")
            .tree_size,
        3
    );
    let leaves: Vec<[u8; 32]> = store
        .range(0, 5)
        .await
        .expect("range")
        .iter()
        .map(|e| e.leaf_hash)
        .collect();

    let raw = crate::support::admin_client(&url).await;
    crate::support::assert_tree_is(&raw, &store, &leaves).await;
    for (table, set) in EVIDENCE {
        for sql in [
            format!("UPDATE {table} SET {set}"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            format!("ALTER TABLE {table} DISABLE TRIGGER ALL"),
        ] {
            let msg = refused(&raw, &sql).await;
            assert!(
                msg.contains("permission denied")
                    || msg.contains("must be owner")
                    || msg.contains("immutable"),
                "{sql}: {msg}"
            );
        }
    }
    for (sql, expect) in [
        ("UPDATE log_head SET next_index = 0", "immutable"),
        ("DELETE FROM log_head", "permission denied"),
        ("UPDATE api_keys SET role = 'admin'", "permission denied"),
        ("DELETE FROM api_keys", "permission denied"),
        (
            "SELECT setval('checkpoints_seq_seq', 1)",
            "permission denied",
        ),
        ("CREATE TABLE sneaky (i int)", "permission denied"),
        (
            "SET session_replication_role = replica",
            "permission denied",
        ),
    ] {
        let msg = refused(&raw, sql).await;
        assert!(msg.contains(expect), "{sql}: {msg}");
    }

    // Locking the live admin keys to count them needs no more than the grants give.
    sealgate_store::conformance::the_last_live_admin_key_is_never_revoked(std::sync::Arc::new(
        store,
    ))
    .await;

    drop(raw);
    db.drop_db().await;
    owner
        .batch_execute(&format!("DROP ROLE {login}"))
        .await
        .expect("drop login role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_role_cannot_migrate_an_empty_database() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    // Make sure the group role exists (another database's migration may have made it).
    sealgate_store_postgres::migrate(&db.url)
        .await
        .expect("migrate");
    let empty = TestDb::create(&admin).await;
    let login = format!("sealgate_test_app_{:08x}", rand::thread_rng().gen::<u32>());
    let owner = admin_client(&admin).await;
    owner
        .batch_execute(&format!(
            "CREATE ROLE {login} LOGIN IN ROLE sealgate_service"
        ))
        .await
        .expect("create login role");
    let err = PostgresStore::connect(&empty.url_as(&login), PostgresOptions::default())
        .await
        .expect_err("no schema, no rights to make one");
    assert!(err.to_string().contains("schema owner"), "{err}");
    db.drop_db().await;
    empty.drop_db().await;
    owner
        .batch_execute(&format!("DROP ROLE {login}"))
        .await
        .expect("drop login role");
}
