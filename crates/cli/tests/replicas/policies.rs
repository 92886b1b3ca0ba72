use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{manifest, Cluster};

const SHIPPED: &str = include_str!("../../../../policies/finance.rego");

/// A policy activated through one replica is in force on the others within seconds
/// (each polls the latest activation), and their decisions name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_activated_on_one_replica_is_followed_by_the_others() {
    let Some(cluster) = Cluster::start(3, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let source = format!("{SHIPPED}\n# revised by the replicas test\n");
    let up = cluster
        .post(
            0,
            "/v1/policies",
            Some(&cluster.admin_token),
            &json!({"files": {"finance.rego": source}}),
        )
        .await;
    assert!(up.status == 200 || up.status == 201, "{}", up.text);
    let version = up.json["version"].as_str().unwrap().to_owned();
    let act = cluster
        .post(
            0,
            &format!("/v1/policies/{version}/activate"),
            Some(&cluster.admin_token),
            &json!({}),
        )
        .await;
    assert_eq!(act.status, 200, "{}", act.text);

    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 1..3 {
        loop {
            let r = cluster
                .post(
                    i,
                    "/v1/manifest/validate",
                    Some(&agent.token),
                    &manifest(i as u64),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            if r.json["policy_version"] == json!(version) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} still decides with {} instead of {version}",
                r.json["policy_version"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.finish().await;
}
