//! Two `PostgresStore`s on one database stand in for two gateway replicas, each with
//! its own appender. The log-head lock serialises their batches: indices form one
//! contiguous sequence, and a seal redeemed from both at once is redeemed once.

use std::sync::Arc;

use sealgate_core::entry::Status;
use sealgate_store::conformance::{decision, redemption, resolution};
use sealgate_store::{Appender, Rejection, Store};

use crate::support::{admin_url, TestDb};

fn t(replica: usize, i: usize) -> String {
    format!("2026-11-23T1{replica}:{:02}:{:02}.000000Z", i / 60, i % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_appending_together_get_one_contiguous_sequence() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(db.store().await), Arc::new(db.store().await)];
    const PER_REPLICA: usize = 300;
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        let appender = Appender::spawn(store.clone(), 32, None);
        for i in 0..PER_REPLICA {
            let appender = appender.clone();
            tasks.push(tokio::spawn(async move {
                let e = decision(
                    &format!("replica-{r}"),
                    "payment",
                    Status::Denied,
                    None,
                    &t(r, i),
                );
                let hash = e.leaf_hash;
                let appended = appender.append(e).await.expect("append").expect("accepted");
                assert_eq!(appended.leaf_hash, hash);
                appended.index
            }));
        }
    }
    let mut indices = Vec::new();
    for task in tasks {
        indices.push(task.await.expect("task"));
    }
    indices.sort_unstable();
    let n = (2 * PER_REPLICA) as u64;
    assert_eq!(
        indices,
        (0..n).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    for store in &stores {
        assert_eq!(store.tree_size().await.expect("size"), n);
        let all = store.range(0, n).await.expect("range");
        assert_eq!(all.len() as u64, n);
        assert!(all
            .iter()
            .all(|e| sealgate_store::leaf_hash(&e.canonical) == e.leaf_hash));
    }
    // Each replica appended on top of the other's batches: its cached frontier was
    // stale most of the time, yet every tree node is the one the leaves give.
    let leaves: Vec<[u8; 32]> = stores[0]
        .range(0, n)
        .await
        .expect("range")
        .iter()
        .map(|e| e.leaf_hash)
        .collect();
    let raw = db.client().await;
    for store in &stores {
        crate::support::assert_tree_is(&raw, store.as_ref(), &leaves).await;
    }
    drop((stores, raw));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolving_from_two_replicas_at_once_lands_once() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let a: Arc<dyn Store> = Arc::new(db.store().await);
    let b: Arc<dyn Store> = Arc::new(db.store().await);
    const PENDING: usize = 40;
    let pending: Vec<_> = (0..PENDING)
        .map(|i| decision("waiter", "refund", Status::PendingApproval, None, &t(0, i)))
        .collect();
    let ids: Vec<String> = pending
        .iter()
        .map(|p| match &p.entry {
            sealgate_core::entry::Entry::Decision(d) => d.decision_id.clone(),
            _ => unreachable!("decision() makes decisions"),
        })
        .collect();
    let recorded = a.append(pending).await.expect("pending");
    let (appender_a, appender_b) = (
        Appender::spawn(a.clone(), 8, None),
        Appender::spawn(b.clone(), 8, None),
    );
    let mut races = Vec::new();
    for (i, r) in recorded.iter().enumerate() {
        let index = r.as_ref().expect("recorded").index;
        let (first, second, id) = (appender_a.clone(), appender_b.clone(), ids[i].clone());
        races.push(tokio::spawn(async move {
            // One replica approves (granting a seal), the other refuses.
            let (x, y) = tokio::join!(
                first.append(resolution(index, &id, true, Some(&format!("hitl-{i}")))),
                second.append(resolution(index, &id, false, None)),
            );
            (i, index, x.expect("store ok"), y.expect("store ok"))
        }));
    }
    for race in races {
        let (i, index, x, y) = race.await.expect("task");
        let approved = match (&x, &y) {
            (Ok(_), Err(Rejection::AlreadyResolved(d))) => {
                assert_eq!(*d, index);
                true
            }
            (Err(Rejection::AlreadyResolved(d)), Ok(_)) => {
                assert_eq!(*d, index);
                false
            }
            other => panic!("decision {index}: exactly one answer must land, got {other:?}"),
        };
        let row = b.decision(&ids[i]).await.expect("read").expect("found");
        let r = row.resolution.expect("resolved");
        let winner = x.as_ref().or(y.as_ref()).expect("one landed").index;
        assert_eq!((r.index, r.approved), (winner, approved));
        let seal = b.seal(&format!("hitl-{i}")).await.expect("read");
        assert_eq!(
            seal.is_some(),
            approved,
            "a seal exactly when the approval won"
        );
    }
    assert_eq!(a.tree_size().await.expect("size"), (2 * PENDING) as u64);
    assert!(a
        .pending_approvals(None, None, 10)
        .await
        .expect("queue")
        .is_empty());
    drop((a, b, appender_a, appender_b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeem_from_two_replicas_at_once_is_refused_once() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let a: Arc<dyn Store> = Arc::new(db.store().await);
    let b: Arc<dyn Store> = Arc::new(db.store().await);
    const SEALS: usize = 40;
    let grants: Vec<_> = (0..SEALS)
        .map(|i| {
            decision(
                "racer",
                "payment",
                Status::Approved,
                Some(&format!("race-{i}")),
                &t(0, i),
            )
        })
        .collect();
    let granted = a.append(grants).await.expect("grant");
    let (appender_a, appender_b) = (
        Appender::spawn(a.clone(), 8, None),
        Appender::spawn(b.clone(), 8, None),
    );
    let mut races = Vec::new();
    for (i, g) in granted.iter().enumerate() {
        let index = g.as_ref().expect("granted").index;
        let seal = format!("race-{i}");
        let (first, second) = (appender_a.clone(), appender_b.clone());
        let (s1, s2) = (seal.clone(), seal.clone());
        races.push(tokio::spawn(async move {
            let (x, y) = tokio::join!(
                first.append(redemption(&s1, index)),
                second.append(redemption(&s2, index)),
            );
            (seal, x.expect("store ok"), y.expect("store ok"))
        }));
    }
    for race in races {
        let (seal, x, y) = race.await.expect("task");
        match (&x, &y) {
            (Ok(_), Err(Rejection::AlreadyRedeemed(s)))
            | (Err(Rejection::AlreadyRedeemed(s)), Ok(_)) => {
                assert_eq!(s, &seal)
            }
            other => panic!("{seal}: exactly one redemption must win, got {other:?}"),
        }
        let record = b.seal(&seal).await.expect("read").expect("issued");
        let winner = x.as_ref().or(y.as_ref()).expect("one won").index;
        assert_eq!(record.redemption.expect("redeemed").index, winner);
    }
    assert_eq!(a.tree_size().await.expect("size"), (2 * SEALS) as u64);
    drop((a, b, appender_a, appender_b));
    db.drop_db().await;
}
