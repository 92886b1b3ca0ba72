//! Builds a large ledger for measuring `sealgate verify`: N realistic decision entries
//! (876 bytes each on average; 80 % approved and sealed) appended through the real
//! SQLite store in batches of 1000, with a signed checkpoint every 100,000 entries and
//! at the end. Prints the log's verifier key.
//!
//!     cargo run --release -p sealgate --example fill_ledger -- DIR 1000000
//!     sealgate verify --data-dir DIR --key KEY

use std::path::PathBuf;

use anyhow::Context;
use sealgate_core::entry::{DecisionEntry, Entry, Latency, SealGrant, Status};
use sealgate_core::Manifest;
use sealgate_ledger::{Checkpoint, NoteSigner};
use sealgate_store::{NewCheckpoint, NewEntry, Store};
use sealgate_store_sqlite::SqliteStore;
use serde_json::json;

const ORIGIN: &str = "bench.sealgate.local/log";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: fill_ledger DIR N")?);
    let n: u64 = args.next().context("usage: fill_ledger DIR N")?.parse()?;
    sealgate_server::keystore::ensure_data_dir(&dir)?;
    let store = SqliteStore::open(&dir.join("ledger.db"))?;
    let (key, _) = sealgate_server::keystore::load_or_create_key(&dir.join("log-key.pem"))?;
    let signer = NoteSigner::new(ORIGIN, key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = store.tree_size().await?;
    let t0 = std::time::Instant::now();
    let mut i = start;
    while i < start + n {
        let batch: Vec<NewEntry> = (i..(i + 1000).min(start + n))
            .map(entry)
            .collect::<Result<_, _>>()?;
        i += batch.len() as u64;
        store.append(batch).await?;
        if i % 100_000 == 0 || i == start + n {
            checkpoint(&store, &signer, i).await?;
        }
    }
    eprintln!(
        "appended {n} entries in {:.1}s; key {}",
        t0.elapsed().as_secs_f64(),
        signer.verifier()
    );
    Ok(())
}

fn entry(i: u64) -> anyhow::Result<NewEntry> {
    let approved = !i.is_multiple_of(5);
    let manifest = Manifest::from_value(
        &json!({"agent_id": format!("agent-{}", i % 97), "org_id": "acme", "user_id": format!("u-{}", i % 1013),
                "provider": "stripe", "method": "payment",
                "parameters": {"amount": if approved { 1000 + i % 4000 } else { 9000 }, "currency": "usd",
                               "invoice": format!("INV-{i:09}")},
                "reasoning": "Invoice is due and matches the purchase order on file.",
                "confidence_score": 0.9, "environment": "production"}),
        "/manifest",
    )?;
    let e = Entry::Decision(Box::new(DecisionEntry {
        server_time: "2026-11-23T12:00:00.000000Z".into(),
        decision_id: format!("dec-{i:012}"),
        manifest_id: format!("man-{i:012}"),
        manifest_hash: hex_hash(&manifest)?,
        manifest,
        screening: json!({"prompt_injection": {"flagged": false, "score": 0.0, "families": [], "fields": []}, "secrets": []}),
        policy_version: Some("ab".repeat(32)),
        status: if approved {
            Status::Approved
        } else {
            Status::Denied
        },
        reasons: if approved {
            vec![]
        } else {
            vec!["Payment amount exceeds $50.00 limit".into()]
        },
        seal: approved.then(|| SealGrant {
            seal_id: format!("seal-{i:012}"),
            expires_at: "2026-11-23T12:05:00.000000Z".into(),
        }),
        latency_us: Latency {
            screen: 5,
            policy: 20,
            total: 80,
        },
        submitted_by: "key_bench".into(),
        redacted: vec![],
    }));
    Ok(NewEntry::new(e)?)
}

fn hex_hash(m: &Manifest) -> anyhow::Result<String> {
    Ok(m.canonical_hash()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

async fn checkpoint(store: &SqliteStore, signer: &NoteSigner, size: u64) -> anyhow::Result<()> {
    let root = sealgate_store::root(store, size).await?;
    let note = Checkpoint::new(ORIGIN, size, root)
        .sign(signer)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .put_checkpoint(&NewCheckpoint {
            tree_size: size,
            note,
            created_at: "2026-11-23T12:00:00.000000Z".into(),
        })
        .await?;
    Ok(())
}
