//! A COMMIT whose answer is lost is ambiguous. A proxy between the store and the
//! database cuts the connection at COMMIT, either after the server got it (it
//! commits; the store never hears) or before (it rolls back). Either way the retried
//! append lands the batch exactly once: a blind retry would write the decisions
//! again (a unique violation on decision_id, or duplicates).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sealgate_core::entry::Status;
use sealgate_store::conformance::decision;
use sealgate_store::Store;
use sealgate_store_postgres::{PostgresOptions, PostgresStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::support::{admin_url, TestDb};

#[derive(Clone, Copy)]
enum Cut {
    /// Forward COMMIT, then swallow the server's answer and close.
    AfterCommitSent,
    /// Close instead of forwarding COMMIT.
    BeforeCommitSent,
}

/// Proxies to `upstream`; the first COMMIT seen while `armed` is cut as `cut` says.
async fn proxy(upstream: String, armed: Arc<AtomicBool>, cut: Cut) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.expect("upstream");
            tokio::spawn(pipe(client, server, armed.clone(), cut));
        }
    });
    port
}

async fn pipe(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>, cut: Cut) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let blackhole = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(Notify::new());
    let (hole, done) = (blackhole.clone(), closed.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if hole.load(Ordering::SeqCst) {
                break; // the answer to COMMIT is lost
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        done.notify_one();
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from_client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = closed.notified() => return,
        };
        let chunk = &buf[..n];
        let is_commit = chunk.windows(7).any(|w| w == b"COMMIT\0");
        if is_commit && armed.swap(false, Ordering::SeqCst) {
            match cut {
                Cut::BeforeCommitSent => return,
                Cut::AfterCommitSent => {
                    blackhole.store(true, Ordering::SeqCst);
                    let _ = to_server.write_all(chunk).await;
                    closed.notified().await;
                    return;
                }
            }
        }
        if to_server.write_all(chunk).await.is_err() {
            return;
        }
    }
}

async fn lands_exactly_once(cut: Cut) {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    db.store().await; // migrate directly, not through the proxy
    let config: tokio_postgres::Config = admin.parse().expect("admin url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => {
            println!("skipped: the proxy needs a TCP database url");
            return;
        }
    };
    let upstream = format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    );
    let armed = Arc::new(AtomicBool::new(false));
    let port = proxy(upstream, armed.clone(), cut).await;
    let user = config.get_user().unwrap_or("postgres");
    let url = format!("host=127.0.0.1 port={port} user={user} dbname={}", db.name);
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect through the proxy");

    store
        .append(vec![decision(
            "amb",
            "payment",
            Status::Denied,
            None,
            "2026-11-23T09:00:00.000000Z",
        )])
        .await
        .expect("first batch");
    let batch: Vec<_> = (0..5)
        .map(|i| {
            decision(
                "amb",
                "payment",
                Status::Approved,
                Some(&format!("amb-{i}")),
                &format!("2026-11-23T10:00:0{i}.000000Z"),
            )
        })
        .collect();
    let hashes: Vec<_> = batch.iter().map(|e| e.leaf_hash).collect();
    armed.store(true, Ordering::SeqCst);
    let out = store.append(batch).await.expect("retried append");
    assert!(!armed.load(Ordering::SeqCst), "the COMMIT was cut");
    let indices: Vec<u64> = out.iter().map(|o| o.as_ref().expect("ok").index).collect();
    assert_eq!(indices, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        store.tree_size().await.expect("size"),
        6,
        "landed exactly once"
    );
    let stored = store.range(1, 6).await.expect("range");
    assert_eq!(
        stored.iter().map(|e| e.leaf_hash).collect::<Vec<_>>(),
        hashes
    );
    // The tree nodes landed exactly once too, and the next append builds on them.
    let next = decision(
        "amb",
        "payment",
        Status::Denied,
        None,
        "2026-11-23T11:00:00.000000Z",
    );
    store.append(vec![next]).await.expect("next batch");
    let leaves: Vec<[u8; 32]> = store
        .range(0, 7)
        .await
        .expect("range")
        .iter()
        .map(|e| e.leaf_hash)
        .collect();
    crate::support::assert_tree_is(&db.client().await, &store, &leaves).await;
    drop(store);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_answer_lost_after_the_server_committed_is_not_written_twice() {
    lands_exactly_once(Cut::AfterCommitSent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_lost_before_the_server_saw_it_is_written_on_retry() {
    lands_exactly_once(Cut::BeforeCommitSent).await;
}
