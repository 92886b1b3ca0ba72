use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{join_load, spawn_load, Cluster};

/// One replica signs checkpoints (its /readyz says `"leader": true`); when it is
/// SIGKILLed its advisory lock goes with its session and another replica takes over:
/// checkpoints keep advancing over entries written after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_continue_from_another_replica_when_the_leader_dies() {
    let Some(mut cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let verifier = cluster.verifier(0).await;
    let leader = cluster.wait_for_one_leader(Duration::from_secs(10)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<_> = (0..3)
        .map(|i| (i, cluster.replicas[i].base.clone()))
        .collect();
    let load = spawn_load(&cluster.http, &bases, &agent.token, 2, stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let survivor = (leader + 1) % 3;
    let before = cluster.tree_size(survivor).await;
    let cp = cluster
        .checkpoint_covering(survivor, &verifier, before, Duration::from_secs(10))
        .await;
    assert!(cp.size >= before);

    cluster.replicas[leader].kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = join_load(load).await;
    let after = cluster.tree_size(survivor).await;
    assert!(after > before, "no entries written after the kill");

    // Another replica leads and signs the entries written after the kill.
    let new_leader = cluster.wait_for_one_leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);
    let cp = cluster
        .checkpoint_covering(survivor, &verifier, after, Duration::from_secs(10))
        .await;
    let leaves = cluster
        .ledger(cp.size, &[(leader + 1) % 3, (leader + 2) % 3])
        .await;
    Cluster::check_root(&cp, &leaves);
    let answered: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.answered.clone())
        .filter(|a| a.index < cp.size)
        .collect();
    Cluster::check_answered(&answered, &leaves);
    cluster.finish().await;
}
