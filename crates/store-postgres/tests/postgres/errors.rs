//! What callers are told when things go wrong: a unique violation is a `Conflict`
//! (not whatever the later statements of the aborted batch said), and a database
//! that cannot be reached is `Unavailable` once the retry deadline passes.

use std::time::Duration;

use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::{Store, StoreError};
use sealgate_store_postgres::{PostgresOptions, PostgresStore, RetryPolicy};

use crate::support::{admin_url, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_repeating_a_decision_is_a_conflict_and_takes_no_index() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let store = db.store().await;
    let time = "2026-11-23T10:00:00.000000Z";
    store
        .append(vec![decision(
            "dup",
            "payment",
            Status::Approved,
            Some("dup-seal"),
            time,
        )])
        .await
        .expect("first");
    let err = store
        .append(vec![
            decision("other", "payment", Status::Denied, None, time),
            decision("dup", "payment", Status::Approved, Some("dup-seal"), time),
        ])
        .await
        .expect_err("duplicate decision_id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.tree_size().await.expect("size"),
        1,
        "the whole batch rolled back"
    );
    drop(store);
    db.drop_db().await;
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_after_the_deadline() {
    // Port 1 on loopback: nothing listens there, so connecting is refused at once.
    let options = PostgresOptions {
        connect_timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            deadline: Duration::from_millis(300),
            ..RetryPolicy::default()
        },
        ..PostgresOptions::default()
    };
    let err = PostgresStore::connect("host=127.0.0.1 port=1 user=postgres", options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
