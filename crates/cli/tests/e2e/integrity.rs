//! The scheduled integrity check: the server spot-checks its own ledger against its
//! signed checkpoints, and an entry changed behind its back (triggers dropped, one byte
//! edited) is found, logged and counted.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::{manifest, raise_the_stored_payment_limit, Server};

/// The value of a metric line, when it is there.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = server.get("/metrics", None).await.expect(200).text;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `name` until `done` holds for it, for at most 30 s.
async fn wait_for(server: &Server, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = metric(server, name).await.filter(|v| done(*v)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got there; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `n` more integrity checks, none of which found anything.
async fn checks_pass(server: &Server, n: u32) {
    let before = metric(server, "sealgate_integrity_checks_total")
        .await
        .expect("checks");
    wait_for(server, "sealgate_integrity_checks_total", |v| {
        v >= before + f64::from(n)
    })
    .await;
    assert_eq!(
        metric(server, "sealgate_integrity_failures_total").await,
        Some(0.0),
        "{}",
        server.log()
    );
}

/// Waits for a failed integrity check; the log line that reports it.
async fn finding(server: &Server) -> String {
    wait_for(server, "sealgate_integrity_failures_total", |v| v >= 1.0).await;
    let log = server.log();
    log.lines()
        .find(|l| l.contains("integrity check failed"))
        .unwrap_or_else(|| panic!("no error logged:\n{log}"))
        .to_owned()
}

#[tokio::test]
async fn the_server_finds_an_entry_changed_behind_its_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sealgate.toml");
    // Sampling 200 times from a dozen entries reaches every one of them.
    std::fs::write(
        &config,
        "integrity_check_interval_secs = 1\nintegrity_sample = 200\ncheckpoint_interval_ms = 100\n",
    )
    .expect("config");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]).await;
    let agent = server.create_key("agent").await;
    for i in 0..5 {
        server
            .approved(&agent, &manifest(&format!("agent-{i}"), "payment", 100))
            .await;
    }
    let size = server.tree_size().await;
    // Everything checkpointed, and checks that passed over it.
    wait_for(&server, "sealgate_ledger_unanchored_entries", |v| v == 0.0).await;
    let age = metric(&server, "sealgate_checkpoint_age_seconds")
        .await
        .expect("checkpoint age");
    assert!((0.0..60.0).contains(&age), "{age}");
    checks_pass(&server, 2).await;

    // Someone with the database file drops the triggers and edits one byte of entry 2.
    let conn = Connection::open(server.data_dir.join("ledger.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    let mut bytes: Vec<u8> = conn
        .query_row("SELECT canonical FROM entries WHERE idx = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    conn.execute(
        "UPDATE entries SET canonical = ?1 WHERE idx = 2",
        rusqlite::params![bytes],
    )
    .unwrap();
    drop(conn);

    let line = finding(&server).await;
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    assert!(
        line.contains("entry 2: its bytes do not hash to the stored leaf hash"),
        "{line}"
    );
    // The server keeps answering; the finding is for an alert, and `sealgate verify`.
    assert!(server.tree_size().await >= size);
}

/// The policy in charge is part of the check: its stored bundle edited in place while
/// the server runs (a limit raised, valid Rego, the version's name kept) is found,
/// logged and counted, though no entry changed.
#[tokio::test]
async fn the_server_finds_its_policy_bundle_changed_behind_its_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sealgate.toml");
    std::fs::write(
        &config,
        "integrity_check_interval_secs = 1\ncheckpoint_interval_ms = 100\n",
    )
    .expect("config");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]).await;
    let agent = server.create_key("agent").await;
    server
        .approved(&agent, &manifest("agent-policy", "payment", 100))
        .await;
    wait_for(&server, "sealgate_ledger_unanchored_entries", |v| v == 0.0).await;
    checks_pass(&server, 1).await;

    let conn = Connection::open(server.data_dir.join("ledger.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let (version, _) = raise_the_stored_payment_limit(&conn);
    drop(conn);

    let line = finding(&server).await;
    assert!(
        line.contains(&format!("stored bundle {version} hashes to")),
        "{line}"
    );
}
