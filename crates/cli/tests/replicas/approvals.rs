use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{manifest, Cluster};

/// An agent waiting on one replica for a person's answer given on another gets it
/// before its wait runs out (the waiting replica finds it by reading the store), with
/// the seal the approving replica granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_on_one_replica_reaches_an_agent_waiting_on_another() {
    let Some(cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    let agent = cluster.create_key(0, "agent").await;
    let approver = cluster.create_key(1, "approver").await;
    let mut risky = manifest(1);
    risky["manifest"]["environment"] = json!("production");
    risky["manifest"]["confidence_score"] = json!(0.3);
    let d = cluster
        .post(0, "/v1/manifest/validate", Some(&agent.token), &risky)
        .await;
    assert_eq!(d.json["status"], json!("pending_approval"), "{}", d.text);
    let id = d.json["decision_id"].as_str().unwrap().to_owned();

    let waiting = {
        let (cluster, id, token) = (cluster.clone(), id.clone(), agent.token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = cluster
                .get(0, &format!("/v1/decisions/{id}?wait=20"), Some(&token))
                .await;
            (started.elapsed(), r)
        })
    };
    // Until replica 0 counts the request as waiting.
    for _ in 0..200 {
        let m = cluster.get(0, "/metrics", None).await;
        if m.text.contains("sealgate_waiting_agents 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let a = cluster
        .post(
            1,
            &format!("/v1/approvals/{id}/approve"),
            Some(&approver.token),
            &json!({"reason": "checked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let (waited, s) = waiting.await.unwrap();
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(
        waited < Duration::from_secs(20),
        "found by reading the store, not by the wait running out ({waited:?})"
    );
    assert_eq!(s.json["approved"], json!(true), "{}", s.text);
    assert_eq!(s.json["seal"], a.json["seal"], "{}", s.text);
    assert_eq!(
        s.json["resolution"]["reason"],
        json!("checked"),
        "{}",
        s.text
    );
    match Arc::try_unwrap(cluster) {
        Ok(cluster) => cluster.finish().await,
        Err(_) => panic!("the waiting task still holds the cluster"),
    }
}
