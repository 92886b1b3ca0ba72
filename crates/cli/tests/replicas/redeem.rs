use serde_json::json;

use crate::support::{manifest, Cluster};

/// A seal issued by one replica verifies on every other one, and of 30 concurrent
/// redemptions spread over three replicas exactly one succeeds; the rest get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_seal_is_redeemed_exactly_once_across_replicas() {
    let Some(cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let executor = cluster.create_key(1, "executor").await;
    let r = cluster
        .post(0, "/v1/manifest/validate", Some(&agent.token), &manifest(1))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["approved"], json!(true), "{}", r.text);
    let seal = r.json["seal"].as_str().unwrap().to_owned();
    let seal_id = r.json["seal_id"].as_str().unwrap().to_owned();

    for i in 0..3 {
        let v = cluster
            .post(
                i,
                "/v1/seals/verify",
                Some(&executor.token),
                &json!({"seal": seal}),
            )
            .await;
        assert_eq!(v.status, 200, "{}", v.text);
        assert_eq!(v.json["valid"], json!(true), "replica {i}: {}", v.text);
    }

    let path = format!("/v1/seals/{seal_id}/redeem");
    let body = json!({ "seal": seal });
    let redeems = (0..30).map(|n| {
        let (cluster, path, body, token) = (&cluster, &path, &body, &executor.token);
        async move { cluster.post(n % 3, path, Some(token), body).await }
    });
    let results = futures::future::join_all(redeems).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let conflicts = results.iter().filter(|r| r.status == 409).count();
    assert_eq!(ok, 1, "exactly one redemption must succeed: {results:#?}");
    assert_eq!(
        conflicts, 29,
        "the others must be refused with 409: {results:#?}"
    );

    for i in 0..3 {
        let v = cluster
            .post(
                i,
                "/v1/seals/verify",
                Some(&executor.token),
                &json!({"seal": seal}),
            )
            .await;
        assert_eq!(v.json["redeemed"], json!(true), "replica {i}: {}", v.text);
    }
    cluster.finish().await;
}
