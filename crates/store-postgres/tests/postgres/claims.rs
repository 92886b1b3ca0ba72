//! Claims are judged in batch order with what earlier entries of the same batch did:
//! a seal issued earlier in the batch can be redeemed, one issued later cannot. (Not
//! in the shared suite yet; SQLite behaves the same because it checks row by row.)

use sealgate_core::entry::Status;
use sealgate_store::conformance::{decision, redemption};
use sealgate_store::{Rejection, Store};

use crate::support::{admin_url, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_see_seals_issued_earlier_in_the_same_batch_only() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let store = db.store().await;
    let out = store
        .append(vec![
            decision(
                "c",
                "payment",
                Status::Approved,
                Some("early"),
                "2026-11-23T10:00:00.000000Z",
            ),
            redemption("early", 0),
            redemption("early", 0),
            redemption("late", 3),
            decision(
                "c",
                "payment",
                Status::Approved,
                Some("late"),
                "2026-11-23T10:00:01.000000Z",
            ),
        ])
        .await
        .expect("append");
    let indices: Vec<_> = out.into_iter().map(|o| o.map(|a| a.index)).collect();
    assert_eq!(
        indices,
        vec![
            Ok(0),
            Ok(1),
            Err(Rejection::AlreadyRedeemed("early".into())),
            Err(Rejection::UnknownSeal("late".into())),
            Ok(2),
        ]
    );
    let early = store.seal("early").await.expect("read").expect("issued");
    assert_eq!(early.redemption.expect("redeemed").index, 1);
    let late = store.seal("late").await.expect("read").expect("issued");
    assert_eq!((late.decision_index, late.redemption), (2, None));
    assert_eq!(store.tree_size().await.expect("size"), 3);
    drop(store);
    db.drop_db().await;
}
