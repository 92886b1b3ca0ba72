//! Point 7: group commit is durable — every decision answered 200 before a SIGKILL is
//! in the ledger afterwards, with the bytes that hash to the leaf hash it was given.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::OpenFlags;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{client, manifest, Server};

struct Ack {
    ledger_index: u64,
    decision_id: String,
    leaf_hash: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_decisions_survive_sigkill_mid_load() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let url = server.url("/v1/manifest/validate");
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (url, token, acked, stop) = (
                url.clone(),
                agent.token.clone(),
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let http = client();
                let mut acks = Vec::new();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let amount = if n % 4 == 0 { 9000 } else { 100 + n };
                    let body = json!({"manifest": manifest(&format!("agent-load-{w}"), "payment", amount)});
                    let Ok(r) = http.post(&url).bearer_auth(&token).json(&body).send().await else {
                        break; // the server is gone
                    };
                    if r.status() != 200 {
                        break;
                    }
                    let Ok(v) = r.json::<Value>().await else {
                        break; // cut off mid-body: not an acknowledgement
                    };
                    acks.push(Ack {
                        ledger_index: v["ledger_index"].as_u64().expect("ledger_index"),
                        decision_id: v["decision_id"].as_str().expect("decision_id").to_owned(),
                        leaf_hash: B64
                            .decode(v["leaf_hash"].as_str().expect("leaf_hash"))
                            .expect("base64 leaf hash"),
                    });
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                acks
            })
        })
        .collect();

    // Let the load run until a fair number of decisions were acknowledged, then kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::Relaxed) < 500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill(); // SIGKILL while the 32 workers are still sending
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    for w in workers {
        acks.extend(
            tokio::time::timeout(Duration::from_secs(25), w)
                .await
                .expect("worker stopped")
                .expect("worker task"),
        );
    }
    assert!(
        acks.len() >= 100,
        "too little load before the kill: {}",
        acks.len()
    );

    eprintln!(
        "durability: {} decisions acknowledged before SIGKILL",
        acks.len()
    );

    server.restart().await;
    let size = server.tree_size().await;
    let max_index = acks.iter().map(|a| a.ledger_index).max().unwrap();
    assert!(
        size > max_index,
        "tree_size {size} after restart, acknowledged index {max_index}"
    );

    let db = rusqlite::Connection::open_with_flags(
        server.data_dir.join("ledger.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open ledger.db read-only");
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = db
        .prepare("SELECT kind, canonical, leaf_hash FROM entries WHERE idx = ?1")
        .unwrap();
    let mut indices = std::collections::HashSet::new();
    for ack in &acks {
        assert!(
            indices.insert(ack.ledger_index),
            "index {} acknowledged twice",
            ack.ledger_index
        );
        let (kind, canonical, leaf_hash): (String, Vec<u8>, Vec<u8>) = stmt
            .query_row([ack.ledger_index as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap_or_else(|e| {
                panic!(
                    "acknowledged decision {} at index {} is not in the ledger: {e}",
                    ack.decision_id, ack.ledger_index
                )
            });
        assert_eq!(kind, "decision", "index {}", ack.ledger_index);
        assert_eq!(
            leaf_hash, ack.leaf_hash,
            "leaf hash of index {}",
            ack.ledger_index
        );
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(&canonical);
        assert_eq!(
            h.finalize().as_slice(),
            leaf_hash.as_slice(),
            "index {}: SHA-256(0x00 || canonical) is not the leaf hash",
            ack.ledger_index
        );
        let entry: Value = serde_json::from_slice(&canonical).expect("canonical JSON");
        assert_eq!(entry["kind"], json!("decision"));
        assert_eq!(
            entry["decision_id"],
            json!(ack.decision_id),
            "index {} holds another decision",
            ack.ledger_index
        );
    }
    // Indices are contiguous: nothing committed is missing below the head.
    let (count, max): (i64, i64) = db
        .query_row("SELECT count(*), max(idx) FROM entries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(count, max + 1, "ledger indices have a gap");
    assert_eq!(
        count as u64, size,
        "tree_size disagrees with the entries table"
    );

    // And the restarted server decides again.
    server
        .validate(&agent, &manifest("agent-after", "payment", 1000))
        .await
        .expect(200);
}

/// A clean stop (SIGTERM) signs a checkpoint of every entry it committed: with ticks an
/// hour apart, only the stop can sign the decision made after the first one.
#[tokio::test]
async fn a_clean_stop_signs_what_the_last_tick_did_not() {
    let mut server = Server::start_with(&["--checkpoint-interval-ms", "3600000"]).await;
    let agent = server.create_key("agent").await;
    let signed_at_start = latest_checkpoint_size(&server);
    server
        .validate(&agent, &manifest("stop-agent", "payment", 1000))
        .await
        .expect(200);
    let size = server.tree_size().await;
    assert!(
        signed_at_start < size,
        "{signed_at_start} of {size} signed before the stop"
    );
    server.terminate();
    assert!(server.exited().await, "the server did not stop");
    assert_eq!(
        latest_checkpoint_size(&server),
        size,
        "log:\n{}",
        server.log()
    );
    assert!(
        server.log().contains("final checkpoint signed"),
        "{}",
        server.log()
    );
}

/// The size of the latest checkpoint in the server's ledger.db (0 without one).
fn latest_checkpoint_size(server: &Server) -> u64 {
    let db = rusqlite::Connection::open_with_flags(
        server.data_dir.join("ledger.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open ledger.db");
    db.query_row(
        "SELECT coalesce(max(tree_size), 0) FROM checkpoints",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("checkpoints") as u64
}
