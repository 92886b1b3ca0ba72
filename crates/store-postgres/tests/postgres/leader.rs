//! Leadership: one session advisory lock per database, held on a connection of its
//! own. Of two stores on one database exactly one leads; when the leader goes away its
//! session ends and the other takes over on its next `try_lead`. Stores on different
//! databases do not contend.

use sealgate_store::Store;

use crate::support::{admin_url, TestDb};

#[tokio::test]
async fn one_store_leads_and_another_takes_over_when_it_is_gone() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let (a, b) = (db.store().await, db.store().await);
    assert!(a.try_lead().await.expect("a asks"));
    assert!(!b.try_lead().await.expect("b asks"));
    // Asking again keeps it where it is.
    assert!(a.try_lead().await.expect("a asks again"));
    assert!(!b.try_lead().await.expect("b asks again"));

    drop(a);
    let mut took_over = false;
    for _ in 0..50 {
        if b.try_lead().await.expect("b asks") {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(took_over, "b never took over after a was dropped");

    let other = TestDb::create(&admin).await;
    assert!(
        other.store().await.try_lead().await.expect("asks"),
        "another database has its own leader"
    );
    drop(b);
    db.drop_db().await;
    other.drop_db().await;
}
