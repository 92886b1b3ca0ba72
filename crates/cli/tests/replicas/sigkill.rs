use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{join_load, spawn_load, Cluster};

/// SIGKILL of one replica during load over all three: every decision that was answered
/// (by any replica, the killed one included) is in the ledger at its index with the
/// leaf hash it was answered with, and the ledger stays one contiguous tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_a_replica_during_load_loses_nothing_answered() {
    let Some(mut cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let verifier = cluster.verifier(0).await;

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<_> = (0..3)
        .map(|i| (i, cluster.replicas[i].base.clone()))
        .collect();
    let load = spawn_load(&cluster.http, &bases, &agent.token, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.replicas[1].kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = join_load(load).await;

    let answered: Vec<_> = outcomes.iter().filter_map(|o| o.answered.clone()).collect();
    let from_killed = outcomes
        .iter()
        .filter(|o| o.replica == 1 && o.answered.is_some())
        .count();
    assert!(
        from_killed > 0,
        "the killed replica answered nothing before dying"
    );
    let unanswered = outcomes.iter().filter(|o| o.status.is_none()).count();
    println!(
        "{} answered ({from_killed} by the killed replica), {unanswered} without an answer",
        answered.len()
    );

    let size = cluster.tree_size(0).await;
    let leaves = cluster.ledger(size, &[0, 2]).await;
    Cluster::check_answered(&answered, &leaves);
    let cp = cluster
        .checkpoint_covering(2, &verifier, size, Duration::from_secs(10))
        .await;
    Cluster::check_root(&cp, &leaves);
    cluster.finish().await;
}
