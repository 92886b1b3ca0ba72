use std::time::Duration;

use serde_json::json;

use crate::support::{answered, manifest, Cluster};

/// Load spread over three replicas makes one ledger: every answer has its own index,
/// the indices with the other entries are exactly 0..N, every leaf hash recomputes from
/// its entry, each replica serves a checkpoint signed by the one log key whose root is
/// the tree of those entries, and an early checkpoint is consistent with the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_keep_one_contiguous_ledger_and_tree() {
    let Some(cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let verifier = cluster.verifier(0).await;
    for i in 1..3 {
        assert_eq!(
            cluster.verifier(i).await.to_string(),
            verifier.to_string(),
            "replicas must share one log key"
        );
    }

    // A first wave, then an early checkpoint covering it.
    let mut answers = Vec::new();
    let wave = |from: u64, count: u64| {
        let cluster = &cluster;
        let agent = &agent;
        async move {
            let sends = (from..from + count).map(|n| async move {
                cluster
                    .post(
                        (n % 3) as usize,
                        "/v1/manifest/validate",
                        Some(&agent.token),
                        &manifest(n),
                    )
                    .await
            });
            futures::future::join_all(sends).await
        }
    };
    for r in wave(0, 60).await {
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push(answered(&r).unwrap());
    }
    let size = cluster.tree_size(1).await;
    let early = cluster
        .checkpoint_covering(2, &verifier, size, Duration::from_secs(10))
        .await;

    for r in wave(60, 150).await {
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push(answered(&r).unwrap());
    }
    let size = cluster.tree_size(2).await;
    assert!(size >= 210, "ledger of {size} after 210 decisions");

    let leaves = cluster.ledger(size, &[0, 1, 2]).await;
    Cluster::check_answered(&answers, &leaves);
    for i in 0..3 {
        let cp = cluster
            .checkpoint_covering(i, &verifier, size, Duration::from_secs(10))
            .await;
        Cluster::check_root(&cp, &leaves);
        cluster.check_consistency(i, &early, &cp).await;
    }
    Cluster::check_root(&early, &leaves);

    // Decisions carry the same policy everywhere, and one replica leads.
    let versions: Vec<_> = futures::future::join_all((0..3).map(|i| {
        let cluster = &cluster;
        async move {
            cluster
                .get(i, "/v1/policies", Some(&cluster.admin_token))
                .await
                .json["active"]
                .clone()
        }
    }))
    .await;
    assert!(
        versions
            .iter()
            .all(|v| v == &versions[0] && v != &json!(null)),
        "{versions:?}"
    );
    assert_eq!(cluster.leaders().await.len(), 1, "exactly one leader");
    cluster.finish().await;
}
