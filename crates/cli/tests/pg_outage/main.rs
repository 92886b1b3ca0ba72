//! The PostgreSQL outage drill: stop the database under load, start it again.
//!
//! Stopping the shared cluster breaks every other test using it, so this binary runs
//! only when `SEALGATE_PG_DRILL=1` (and `SEALGATE_TEST_DATABASE_URL`) are set, one test
//! at a time: `scripts/drills`. It drives the local cluster with `pg_ctlcluster`
//! (`SEALGATE_PG_CLUSTER`, default "15 main").
//!
//! While the database is down every decision fails closed (503, never an approval),
//! /readyz shows the circuit breaker open, and once the database is back serving
//! recovers within 5 s; every decision answered before, during or after is in the
//! ledger with the leaf hash it was answered with, and the checkpoints verify.

#![allow(clippy::unwrap_used)]

#[path = "../common/served.rs"]
mod served;
#[path = "../replicas/support.rs"]
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use support::{join_load, spawn_load, Cluster};

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(6);
/// The acceptance bound: serving again within this long of the database returning.
const RECOVERY: Duration = Duration::from_secs(5);

fn pg_ctl(action: &str) {
    let cluster = std::env::var("SEALGATE_PG_CLUSTER").unwrap_or_else(|_| "15 main".into());
    let mut parts = cluster.split_whitespace();
    let (version, name) = (parts.next().unwrap(), parts.next().unwrap());
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", version, name, action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let status = cmd.status().expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
}

/// Starts the cluster again if the test panics while it is stopped.
struct Restart(bool);

impl Drop for Restart {
    fn drop(&mut self) {
        if self.0 {
            pg_ctl("start");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_fails_closed_and_recovers() {
    if std::env::var("SEALGATE_PG_DRILL").as_deref() != Ok("1") {
        println!("skipped: set SEALGATE_PG_DRILL=1 to stop and start PostgreSQL (scripts/drills)");
        return;
    }
    let Some(cluster) = Cluster::start(2, &[]).await else {
        return;
    };
    let agent = cluster.create_key(0, "agent").await;
    let verifier = cluster.verifier(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<_> = (0..2)
        .map(|i| (i, cluster.replicas[i].base.clone()))
        .collect();
    let load = spawn_load(&cluster.http, &bases, &agent.token, 3, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut restart = Restart(true);
    pg_ctl("stop");
    let stopped = Instant::now();

    // During the outage: the breaker opens on every replica and /readyz says so.
    let mut open_seen = [false; 2];
    while stopped.elapsed() < OUTAGE {
        for (i, seen) in open_seen.iter_mut().enumerate() {
            let r = cluster.get(i, "/readyz", None).await;
            if r.json["breaker"] == json!("open") {
                assert_eq!(r.status, 503, "{}", r.text);
                *seen = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open_seen,
        [true, true],
        "breaker never shown open; logs:\n{}",
        cluster.logs()
    );

    // The database may accept connections before `pg_ctlcluster start` returns, so
    // "down" ends when the start command begins and "back" when it has returned.
    let restarting = Instant::now();
    pg_ctl("start");
    restart.0 = false;
    let started = Instant::now();

    // Serving recovers: a decision on each replica is answered 200 again.
    let mut recovered = [None; 2];
    while recovered.iter().any(Option::is_none) {
        for (i, when) in recovered.iter_mut().enumerate() {
            if when.is_none() {
                let r = cluster
                    .post(
                        i,
                        "/v1/manifest/validate",
                        Some(&agent.token),
                        &support::manifest(7),
                    )
                    .await;
                if r.status == 200 {
                    *when = Some(started.elapsed());
                }
            }
        }
        assert!(
            started.elapsed() < RECOVERY * 3,
            "not serving {:?} after the database returned; logs:\n{}",
            started.elapsed(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("serving again after {recovered:?} (database start took its own time before that)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = join_load(load).await;

    // Fail closed: nothing sent while the database was certainly down was approved.
    let during: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent >= stopped && o.done <= restarting)
        .collect();
    assert!(!during.is_empty(), "no requests during the outage");
    for o in &during {
        assert_eq!(
            o.status,
            Some(503),
            "a request during the outage got {:?}",
            o.status
        );
    }
    for (i, when) in recovered.iter().enumerate() {
        let when = when.unwrap();
        assert!(when <= RECOVERY, "replica {i} took {when:?} to serve again");
    }

    // Nothing answered is lost, and the tree is whole.
    let answered: Vec<_> = outcomes.iter().filter_map(|o| o.answered.clone()).collect();
    println!(
        "{} answered, {} failed closed during the outage",
        answered.len(),
        during.len()
    );
    let size = cluster.tree_size(0).await;
    let leaves = cluster.ledger(size, &[0, 1]).await;
    Cluster::check_answered(&answered, &leaves);
    let cp = cluster
        .checkpoint_covering(1, &verifier, size, Duration::from_secs(10))
        .await;
    Cluster::check_root(&cp, &leaves);
    cluster.finish().await;
}
