//! Point 1: first start writes private key material and logs only the token's path;
//! a restart on the same data directory keeps everything and creates nothing new.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{manifest, mode, raise_the_stored_payment_limit, Server};

#[tokio::test]
async fn first_start_writes_private_secrets_and_logs_only_the_token_path() {
    let server = Server::start().await;
    let token_path = server.data_dir.join("admin-token");
    let seal_key_path = server.data_dir.join("seal-key.pem");
    assert_eq!(mode(&token_path), 0o600, "admin-token mode");
    assert_eq!(mode(&seal_key_path), 0o600, "seal-key.pem mode");

    // The token works, and using it (and creating another key) leaves no trace in the log.
    let agent = server.create_key("agent").await;
    server
        .validate(&agent, &manifest("agent-startup", "payment", 1000))
        .await
        .expect(200);

    let log = server.log();
    assert!(
        log.contains(&token_path.display().to_string()),
        "the log must name the admin-token path {}; log:\n{log}",
        token_path.display()
    );
    assert!(
        !log.contains(&server.admin_token),
        "the admin token appears in the log:\n{log}"
    );
    assert!(
        !log.contains(&agent.token),
        "a created key's token appears in the log:\n{log}"
    );
}

/// The data directory's files and their contents, without SQLite's transient
/// -wal/-shm/-journal companions (their presence depends on how the process ended).
fn data_files(server: &Server) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(&server.data_dir)
        .expect("read data dir")
        .map(|e| e.expect("dir entry"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !(name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal"))
        })
        .map(|name| {
            let bytes = if name.ends_with(".db") || name.ends_with(".db.lock") {
                // The ledger changes with checkpoints (compared through the API); its
                // lock file names the process holding it.
                Vec::new()
            } else {
                std::fs::read(server.data_dir.join(&name)).expect("read data file")
            };
            (name, bytes)
        })
        .collect()
}

#[tokio::test]
async fn restart_keeps_token_key_policy_and_ledger_and_creates_nothing_new() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let approved = server
        .approved(&agent, &manifest("agent-restart", "payment", 1000))
        .await;
    let denied = server
        .validate(&agent, &manifest("agent-restart", "payment", 10000))
        .await
        .expect(200)
        .json;

    let files_before = data_files(&server);
    let token_before = std::fs::read(server.data_dir.join("admin-token")).unwrap();
    let jwk_before = server.jwk().await;
    let policies_before = server
        .get("/v1/policies", Some(&server.admin_token))
        .await
        .expect(200)
        .json;
    let size_before = server.tree_size().await;
    let audit_before = server.audit(&auditor.token, "agent_id=agent-restart").await;

    server.restart().await;

    assert_eq!(
        std::fs::read(server.data_dir.join("admin-token")).unwrap(),
        token_before,
        "admin-token rewritten by the restart"
    );
    assert_eq!(
        data_files(&server),
        files_before,
        "the restart created, removed or changed files in the data dir"
    );
    let jwk_after = server.jwk().await;
    assert_eq!(jwk_after["kid"], jwk_before["kid"], "seal key changed");
    assert_eq!(jwk_after, jwk_before, "JWKS changed");
    let policies_after = server
        .get("/v1/policies", Some(&server.admin_token))
        .await
        .expect(200)
        .json;
    assert!(policies_before["active"].is_string(), "{policies_before}");
    assert_eq!(
        policies_after["active"], policies_before["active"],
        "active policy changed"
    );
    assert_eq!(
        policies_after["policies"], policies_before["policies"],
        "policy list changed"
    );
    assert_eq!(
        server.tree_size().await,
        size_before,
        "the restart appended to the ledger"
    );

    // Earlier decisions are still in the audit trail, unchanged.
    let audit_after = server.audit(&auditor.token, "agent_id=agent-restart").await;
    assert_eq!(audit_after, audit_before);
    let ids: Vec<_> = audit_after["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision_id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![
            denied["decision_id"].clone(),
            approved["decision_id"].clone()
        ]
    );

    // Keys made before the restart still work, and so does a seal issued before it.
    let executor = server.create_key("executor").await;
    let seal = approved["seal"].as_str().unwrap();
    let seal_id = approved["seal_id"].as_str().unwrap();
    server.redeem(&executor, seal_id, seal).await.expect(200);
    let again = server
        .validate(&agent, &manifest("agent-restart", "refund", 500))
        .await
        .expect(200);
    assert_eq!(again.json["approved"], json!(true), "{}", again.text);
    assert_eq!(again.json["policy_version"], policies_before["active"]);

    // Neither process ever logged a token.
    let logs = server.all_logs();
    for token in [
        &server.admin_token,
        &agent.token,
        &auditor.token,
        &executor.token,
    ] {
        assert!(
            !logs.contains(token.as_str()),
            "a token appears in the logs:\n{logs}"
        );
    }
}

/// A taken port fails the start before anything is written: no keys, no admin token,
/// no ledger in the data directory.
#[test]
fn a_taken_port_fails_before_the_data_directory_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let out = std::process::Command::new(crate::support::BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_DATABASE_URL")
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("binding 127.0.0.1:{port}")),
        "{stderr}"
    );
    let created: Vec<_> = std::fs::read_dir(&data)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(created.is_empty(), "created {created:?}");
}

/// `serve` on `data` with `extra` flags, expected to refuse: its exit code and stderr.
/// Killed (and the test failed) if it starts serving instead.
pub(crate) fn refused_start(data: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_DATABASE_URL")
        .env_remove("SEALGATE_ORIGIN")
        .env_remove("SEALGATE_REDIS_URL")
        .env_remove("SEALGATE_RATE_LIMIT_PER_KEY")
        .env_remove("SEALGATE_RATE_LIMIT_PER_IP")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {extra:?} started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A log keeps its name and its key: once the ledger holds a signed checkpoint, a
/// server started with another origin, without its log key or with another key
/// refuses to start (each would sign checkpoints the log's verifiers reject), and
/// creates no key of its own.
#[tokio::test]
async fn a_ledger_refuses_a_server_with_another_origin_or_log_key() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    server
        .validate(&agent, &manifest("agent-identity", "payment", 1000))
        .await
        .expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = server
            .get("/v1/ledger/checkpoint", Some(&auditor.token))
            .await;
        // A signed note: origin, tree size, root, signatures.
        let size = r.text.lines().nth(1).and_then(|l| l.parse::<u64>().ok());
        if r.status == 200 && size >= Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint: {}",
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill();
    let data = server.data_dir.clone();
    let key = data.join("log-key.pem");

    let (code, stderr) = refused_start(&data, &["--origin", "other.example/log"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("signed as origin \"sealgate.local/log\", not \"other.example/log\""),
        "{stderr}"
    );

    let kept = data.join("log-key.pem.kept");
    std::fs::rename(&key, &kept).expect("move the key away");
    let (code, stderr) = refused_start(&data, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("log-key.pem is missing"), "{stderr}");
    assert!(!key.exists(), "a new log key was created");

    // Another valid key in its place: the seal key.
    std::fs::copy(data.join("seal-key.pem"), &key).expect("another key");
    let (code, stderr) = refused_start(&data, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("does not verify with the log key"),
        "{stderr}"
    );

    std::fs::rename(&kept, &key).expect("restore the key");
    server.restart().await;
    server
        .validate(&agent, &manifest("agent-identity", "payment", 2000))
        .await
        .expect(200);
}

/// One server per SQLite data directory: a second one (an overlapping restart, a
/// second unit) refuses to start, naming the process that holds the ledger, instead of
/// answering every decision with a conflict; the first goes on deciding.
#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let before = server.tree_size().await;

    let (code, stderr) = refused_start(&server.data_dir, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("is open for writing by process {}", server.pid())),
        "{stderr}"
    );
    assert_eq!(server.tree_size().await, before, "the refused server wrote");

    server
        .validate(&agent, &manifest("agent-lock", "payment", 1000))
        .await
        .expect(200);
}

/// A policy version names its bundle's content, and decisions record the version: a
/// stored bundle edited behind the server's back (the triggers dropped, a limit raised,
/// still valid Rego) must not decide under the old version. The server refuses to
/// start on it, naming what it found; `verify` names it too.
#[tokio::test]
async fn an_edited_policy_bundle_is_refused_not_run_under_its_version() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    server
        .validate(&agent, &manifest("agent-policy", "payment", 1000))
        .await
        .expect(200);
    let key = server.get("/v1/ledger/key", None).await.expect(200).text;
    server.terminate();
    assert!(server.exited().await, "the server did not stop");
    let data = server.data_dir.clone();

    let db = rusqlite::Connection::open(data.join("ledger.db")).expect("open");
    let (version, bundle) = raise_the_stored_payment_limit(&db);
    drop(db);

    let (code, stderr) = refused_start(&data, &[]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("stored bundle {version} hashes to"))
            && stderr.contains("changed outside sealgate"),
        "{stderr}"
    );

    let verify = || {
        let out = std::process::Command::new(crate::support::BIN)
            .args(["verify", "--data-dir"])
            .arg(&data)
            .args(["--key", key.trim()])
            .output()
            .expect("verify");
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text)
    };
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("the policies table: bundle {version:?} hashes to")),
        "{text}"
    );

    // The original content in another spelling hashes alike, but is not what was
    // stored: refused as well.
    let respelled = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(&bundle).expect("bundle JSON"),
    )
    .expect("json");
    assert_ne!(respelled, bundle);
    rusqlite::Connection::open(data.join("ledger.db"))
        .expect("open")
        .execute(
            "UPDATE policies SET bundle = ?1 WHERE version = ?2",
            rusqlite::params![respelled, version],
        )
        .expect("respell the bundle");
    let (code, stderr) = refused_start(&data, &[]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("not in canonical form"), "{stderr}");
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is not stored in its canonical form"),
        "{text}"
    );
}

/// The server takes the activation of the highest index as the active policy. A row
/// added to that table behind its back, naming a bundle that was uploaded but never
/// activated, with an index beyond the ledger's end, is refused: no entry activates
/// that version there. The honest state starts again once the row is gone.
#[tokio::test]
async fn an_activation_row_no_entry_made_puts_no_policy_in_charge() {
    let mut server = Server::start().await;
    let admin = server.admin_token.clone();
    let up = server
        .post(
            "/v1/policies",
            Some(&admin),
            &json!({"files": {"x.rego": "package sealgate\n\ndecision := {\"allow\": true, \"deny\": [], \"require_approval\": []}\n"}}),
        )
        .await
        .expect(201);
    let uploaded = up.json["version"].as_str().expect("version").to_owned();
    server.terminate();
    assert!(server.exited().await, "the server did not stop");
    let data = server.data_dir.clone();

    let db = rusqlite::Connection::open(data.join("ledger.db")).expect("open");
    db.execute(
        "INSERT INTO policy_activations (idx, version) VALUES (9000000000000000000, ?1)",
        [&uploaded],
    )
    .expect("insert: the triggers refuse only UPDATE and DELETE");
    let (code, stderr) = refused_start(&data, &[]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the policy_activations row at 9000000000000000000 names {uploaded}, but ledger entry 9000000000000000000 is not its activation"
        )),
        "{stderr}"
    );

    db.execute_batch("DROP TRIGGER policy_activations_no_delete; DELETE FROM policy_activations WHERE idx = 9000000000000000000")
        .expect("remove the row");
    drop(db);
    server.restart().await;
    let listed = server.get("/v1/policies", Some(&admin)).await.expect(200);
    assert_ne!(listed.json["active"], json!(uploaded), "{}", listed.text);
}
