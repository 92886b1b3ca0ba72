//! Tamper drills: someone holding the database file drops the triggers and edits the
//! ledger; `sealgate verify` must catch every edit, exit 1 and say what and where.
//!
//! One real server builds a ledger (decisions, a redemption, checkpoints); each drill
//! tampers with its own copy of the data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::{json, Value};

#[path = "../common/served.rs"]
mod served;

use served::{free_port, Served, BIN};

/// A server on `dir` with checkpoints every 50 ms, answering /healthz. Its log goes
/// beside the data directory.
async fn start(dir: &Path) -> Served {
    let port = free_port();
    let cwd = dir.parent().expect("data dir has a parent");
    let log = cwd.join(format!("server-{port}.log"));
    let server = Served::spawn(
        port,
        cwd,
        log,
        [
            "--checkpoint-interval-ms".as_ref(),
            "50".as_ref(),
            "--data-dir".as_ref(),
            dir.as_os_str(),
        ],
    );
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(server.url("/healthz")).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sealgate did not start: {}", server.log());
}

async fn post(base: &str, path: &str, token: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    resp.json().await.expect("json")
}

/// Builds a ledger of a dozen entries with a redemption and checkpoints; returns the
/// data dir and the log's verifier key.
async fn build_ledger(dir: &Path, decisions: u32) -> String {
    let server = start(dir).await;
    let admin = std::fs::read_to_string(dir.join("admin-token"))
        .expect("admin token")
        .trim()
        .to_owned();
    let agent = post(&server.base, "/v1/keys", &admin, json!({"role": "agent"})).await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let executor = post(
        &server.base,
        "/v1/keys",
        &admin,
        json!({"role": "executor"}),
    )
    .await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let mut first_seal = None;
    for i in 0..decisions {
        let amount = if i % 3 == 0 { 9000 } else { 100 + i };
        let d = post(
            &server.base,
            "/v1/manifest/validate",
            &agent,
            json!({"manifest": {"agent_id": "drill", "org_id": "acme", "provider": "stripe", "method": "payment",
                                "parameters": {"amount": amount}}}),
        )
        .await;
        if first_seal.is_none() && d["approved"] == json!(true) {
            first_seal = Some((
                d["seal_id"].as_str().expect("id").to_owned(),
                d["seal"].as_str().expect("seal").to_owned(),
            ));
        }
    }
    let (seal_id, seal) = first_seal.expect("an approved decision");
    let r = post(
        &server.base,
        &format!("/v1/seals/{seal_id}/redeem"),
        &executor,
        json!({"seal": seal}),
    )
    .await;
    assert_eq!(r["redeemed"], json!(true), "{r}");
    tokio::time::sleep(Duration::from_millis(300)).await; // a checkpoint covers everything
    ledger_key(&server.base).await
}

/// The log's note verifier key, as GET /v1/ledger/key gives it.
async fn ledger_key(base: &str) -> String {
    let key = reqwest::get(format!("{base}/v1/ledger/key"))
        .await
        .expect("key")
        .text()
        .await
        .expect("text");
    key.trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// A copy of the pristine ledger with its triggers dropped, as an attacker would.
fn tampered_copy(pristine: &Path, name: &str) -> (PathBuf, Connection) {
    let dir = pristine.parent().expect("parent").join(name);
    copy_dir(pristine, &dir);
    let conn = Connection::open(dir.join("ledger.db")).expect("open");
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!triggers.is_empty());
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER {t}"))
            .expect("drop trigger");
    }
    (dir, conn)
}

fn verify(dir: &Path, key: &str) -> (i32, String) {
    verify_with(dir, key, &[])
}

fn verify_with(dir: &Path, key: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .args(["--key", key])
        .args(extra)
        .output()
        .expect("verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exit code"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_every_tamper_drill() {
    let root = tempfile::tempdir().expect("tempdir");
    let pristine = root.path().join("pristine");
    let key = build_ledger(&pristine, 12).await;

    let (code, text) = verify(&pristine, &key);
    assert_eq!(code, 0, "untouched ledger must verify: {text}");
    let summary: serde_json::Value = serde_json::from_str(
        &text[text.find('{').expect("a JSON summary")..=text.rfind('}').expect("its end")],
    )
    .expect("summary JSON");
    assert_eq!(
        summary["anchored_entries"], summary["entries"],
        "the last checkpoint covers the whole ledger: {text}"
    );
    assert_eq!(
        summary["unanchored_entries"],
        serde_json::json!(0),
        "{text}"
    );
    let (code, text) = verify_with(&pristine, &key, &["--sample", "5"]);
    assert_eq!(
        code, 0,
        "sampled proofs of an untouched ledger verify: {text}"
    );
    assert!(text.contains("\"sampled\": 5"), "{text}");
    let size: i64 = Connection::open(pristine.join("ledger.db"))
        .expect("open")
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .expect("count");
    assert!(
        size >= 14,
        "policy activation + 12 decisions + redemption: {size}"
    );

    // 1. One byte of one entry changed (the stored leaf hash left alone).
    let (dir, conn) = tampered_copy(&pristine, "one-byte");
    let mut bytes: Vec<u8> = conn
        .query_row("SELECT canonical FROM entries WHERE idx = 5", [], |r| {
            r.get(0)
        })
        .expect("row");
    let at = bytes.iter().position(|b| *b == b'"').expect("a quote") + 1;
    bytes[at] ^= 0x01;
    conn.execute(
        "UPDATE entries SET canonical = ?1 WHERE idx = 5",
        params![bytes],
    )
    .expect("update");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("entry 5") && text.contains("changed"),
        "{text}"
    );

    // 1b. The byte changed AND the leaf hash recomputed to match: the tree still catches it.
    let (dir, conn) = tampered_copy(&pristine, "byte-and-hash");
    let mut bytes: Vec<u8> = conn
        .query_row("SELECT canonical FROM entries WHERE idx = 6", [], |r| {
            r.get(0)
        })
        .expect("row");
    let pos = bytes
        .windows(6)
        .position(|w| w == b"amount")
        .expect("amount field");
    bytes[pos + 8] = if bytes[pos + 8] == b'1' { b'2' } else { b'1' };
    let leaf = sealgate_ledger::leaf_hash(&bytes);
    conn.execute(
        "UPDATE entries SET canonical = ?1, leaf_hash = ?2 WHERE idx = 6",
        params![bytes, leaf.to_vec()],
    )
    .expect("update");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("tree node") || text.contains("does not match the rebuilt tree"),
        "{text}"
    );

    // 2. The last entry deleted.
    let (dir, conn) = tampered_copy(&pristine, "delete-last");
    conn.execute(
        "DELETE FROM entries WHERE idx = (SELECT MAX(idx) FROM entries)",
        [],
    )
    .expect("delete");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("removed"), "{text}");

    // 3. Two entries swapped (bytes and hashes together).
    let (dir, conn) = tampered_copy(&pristine, "swap");
    conn.execute_batch(
        "UPDATE entries SET idx = -1 WHERE idx = 2;
         UPDATE entries SET idx = 2 WHERE idx = 9;
         UPDATE entries SET idx = 9 WHERE idx = -1;",
    )
    .expect("swap");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    let first_bad: u64 = text
        .split("first bad index ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no index named: {text}"));
    assert!(
        first_bad <= 2,
        "the swap starts at 2, so the named range must start at or before it: {text}"
    );

    // 4. A checkpoint replaced by one signed with another key.
    let (dir, conn) = tampered_copy(&pristine, "foreign-checkpoint");
    let (seq, note): (i64, String) = conn
        .query_row(
            "SELECT seq, note FROM checkpoints ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("checkpoint");
    let cp = sealgate_ledger::Checkpoint::parse(
        note.split("\n\n")
            .next()
            .map(|b| format!("{b}\n"))
            .as_deref()
            .expect("body"),
    )
    .expect("parse");
    let other = sealgate_ledger::NoteSigner::new(
        cp.origin.clone(),
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .expect("signer");
    let forged = cp.sign(&other).expect("sign");
    conn.execute(
        "UPDATE checkpoints SET note = ?1 WHERE seq = ?2",
        params![forged, seq],
    )
    .expect("update");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("does not verify with the trusted key"),
        "{text}"
    );

    // 4b. Every checkpoint deleted: the entries are consistent, but nothing signed
    // vouches for them.
    let (dir, conn) = tampered_copy(&pristine, "no-checkpoints");
    conn.execute("DELETE FROM checkpoints", []).expect("delete");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no signed checkpoint covers"), "{text}");
    let (code, text) = verify_with(&dir, &key, &["--sample", "5"]);
    assert_eq!(code, 1, "sampling must not pass it either: {text}");
    assert!(text.contains("no signed checkpoint covers"), "{text}");

    // 5. The log truncated and different entries re-appended by a real server.
    let (dir, conn) = tampered_copy(&pristine, "truncate-reappend");
    let cut = 8i64;
    conn.execute("DELETE FROM entries WHERE idx >= ?1", [cut])
        .expect("truncate");
    for table in ["decisions", "seals", "redemptions", "policy_activations"] {
        conn.execute(&format!("DELETE FROM {table} WHERE idx >= ?1"), [cut])
            .expect("derived");
    }
    conn.execute(
        "DELETE FROM tree_nodes WHERE ((idx + 1) << level) > ?1",
        [cut],
    )
    .expect("nodes");
    drop(conn);
    let _ = build_ledger(&dir, 10).await;
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("does not match the rebuilt tree") || text.contains("tree node"),
        "{text}"
    );

    // 6. An entry's bytes stored as TEXT are the same bytes: both checks pass them.
    // Stored as a number they are gone: tampering (1) for the full check and the
    // sample alike, not a failure to check (2).
    let (dir, conn) = tampered_copy(&pristine, "storage-class");
    conn.execute(
        "UPDATE entries SET canonical = CAST(canonical AS TEXT) WHERE idx = 3",
        [],
    )
    .expect("as text");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify_with(&dir, &key, &["--sample", "64"]);
    assert_eq!(code, 0, "{text}");
    // A leaf hash stored as TEXT (its length check switched off as well) is the same
    // hash too; the sample reads it to build proofs.
    conn.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE entries SET leaf_hash = CAST(leaf_hash AS TEXT) WHERE idx = 2;",
    )
    .expect("hash as text");
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify_with(&dir, &key, &["--sample", "64"]);
    assert_eq!(code, 0, "{text}");
    conn.execute("UPDATE entries SET canonical = 42 WHERE idx = 4", [])
        .expect("as a number");
    for extra in [&[][..], &["--one-thread"], &["--sample", "64"]] {
        let (code, text) = verify_with(&dir, &key, extra);
        assert_eq!(code, 1, "{extra:?}: {text}");
        assert!(text.contains("entry 4"), "{extra:?}: {text}");
    }

    // Usage errors are 2, not 1.
    let out = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(&pristine)
        .args(["--key", "nonsense"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_file_verifies_and_an_edited_export_fails() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ledger");
    let key = build_ledger(&dir, 5).await;
    let export = root.path().join("ledger.jsonl");
    let status = Command::new(BIN)
        .args(["ledger", "export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&export)
        .status()
        .expect("export");
    assert!(status.success());
    let ok = Command::new(BIN)
        .args(["verify", "--key", &key, "--export"])
        .arg(&export)
        .output()
        .expect("verify");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Edit one entry's bytes in the export, keeping its recorded hash.
    let text = std::fs::read_to_string(&export).expect("read");
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let entry = lines
        .iter_mut()
        .find(|l| l["kind"] == "entry" && l["index"] == 3)
        .expect("entry 3");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64
        .decode(entry["canonical"].as_str().expect("str"))
        .expect("b64");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    entry["canonical"] = json!(b64.encode(bytes));
    let edited: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&export, edited).expect("write");
    let bad = Command::new(BIN)
        .args(["verify", "--key", &key, "--export"])
        .arg(&export)
        .output()
        .expect("verify");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("entry 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_from_a_running_server_reads_full_and_partial_tiles() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("live");
    let server = start(&dir).await;
    let admin = std::fs::read_to_string(dir.join("admin-token"))
        .expect("admin token")
        .trim()
        .to_owned();
    let agent = post(&server.base, "/v1/keys", &admin, json!({"role": "agent"})).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // More than one 256-entry tile, so both a full and a partial entry bundle are read.
    for i in 0..300u32 {
        post(
            &server.base,
            "/v1/manifest/validate",
            &agent,
            json!({"manifest": {"agent_id": "live", "org_id": "acme", "provider": "stripe", "method": "payment",
                                "parameters": {"amount": 100 + i}}}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = ledger_key(&server.base).await;
    let out = Command::new(BIN)
        .args(["verify", "--server", &server.base, "--key", key.trim()])
        .env("SEALGATE_TOKEN", &admin)
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text).expect("json report");
    assert!(
        report["entries"].as_u64().expect("entries") >= 301,
        "{report}"
    );

    // A key other than the log's is refused as tampering, not as success.
    let other = sealgate_ledger::NoteSigner::new(
        "sealgate.local/log",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .expect("signer")
    .verifier()
    .to_string();
    let out = Command::new(BIN)
        .args(["verify", "--server", &server.base, "--key", &other])
        .env("SEALGATE_TOKEN", &admin)
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(1));
}

/// A current export is read in one pass, so it may come through a pipe; a version 1
/// export (checkpoints last) is read twice and must be a regular file. An export that
/// cannot be written fails and names its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_streams_through_a_pipe() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ledger");
    let key = build_ledger(&dir, 5).await;

    let mut export = Command::new(BIN)
        .args(["ledger", "export", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("export");
    let piped = Command::new(BIN)
        .args(["verify", "--key", &key, "--export", "/dev/stdin"])
        .stdin(export.stdout.take().expect("stdout"))
        .output()
        .expect("verify");
    assert!(export.wait().expect("wait").success());
    let report = String::from_utf8_lossy(&piped.stdout);
    assert_eq!(piped.status.code(), Some(0), "{report}");
    assert!(report.contains("\"ok\": true"), "{report}");

    // The same ledger in the version 1 layout, through a pipe.
    let file = root.path().join("ledger.jsonl");
    let status = Command::new(BIN)
        .args(["ledger", "export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&file)
        .status()
        .expect("export");
    assert!(status.success());
    let text = std::fs::read_to_string(&file).expect("read");
    let (checkpoints, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.starts_with("{\"kind\":\"checkpoint\""));
    assert!(!checkpoints.is_empty());
    let v1: String = rest
        .iter()
        .chain(&checkpoints)
        .map(|l| format!("{}\n", l.replace("export/2", "export/1")))
        .collect();
    let mut verify = Command::new(BIN)
        .args(["verify", "--key", &key, "--export", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("verify");
    let mut stdin = verify.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        // The reader may stop early; a broken pipe is its answer, not ours to judge.
        let _ = stdin.write_all(v1.as_bytes());
    });
    let refused = verify.wait_with_output().expect("verify");
    writer.join().expect("writer");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("export is read twice, so it must be a regular file"),
        "{stderr}"
    );

    let full = Command::new(BIN)
        .args(["ledger", "export", "--data-dir"])
        .arg(&dir)
        .args(["--out", "/dev/full"])
        .output()
        .expect("export");
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writing the export to /dev/full"),
        "{stderr}"
    );
    use std::os::unix::fs::FileTypeExt as _;
    let device = Path::new("/dev/full").metadata().expect("/dev/full");
    assert!(
        device.file_type().is_char_device(),
        "written in place, not replaced"
    );
}

/// Flag combinations that would check less than they seem to are refused; the data
/// directory in the environment does not conflict with --export; an export is never
/// written into the data directory, where it could replace the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_export_refuse_what_they_cannot_do_as_asked() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ledger");
    let key = build_ledger(&dir, 3).await;
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("SEALGATE_DATA_DIR", &dir)
            .output()
            .expect("run")
    };
    let cp = root.path().join("cp.txt");
    std::fs::write(&cp, "not a checkpoint").expect("write");
    let cp = cp.to_str().expect("utf-8");
    for bad in [
        &["verify", "--key", &key, "--sample", "0"][..],
        &["verify", "--key", &key, "--sample", "3", "--checkpoint", cp],
        &["verify", "--key", &key, "--sample", "3", "--strict"],
        &["verify", "--key", &key, "--sample", "3", "--one-thread"],
    ] {
        let out = run(bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["verify", "--key", &key, "--sample", "3"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let inside = dir.join("ledger.db");
    let before = std::fs::read(&inside).expect("ledger.db");
    let out = run(&["ledger", "export", "--out", inside.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inside the data directory"), "{stderr}");
    assert_eq!(std::fs::read(&inside).expect("ledger.db"), before);

    let file = root.path().join("export.jsonl");
    let out = run(&["ledger", "export", "--out", file.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "verify",
        "--key",
        &key,
        "--export",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A file that is not a ledger is named so, and left as it was: both only read.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::write(empty.join("ledger.db"), b"").expect("write");
    let out_file = root.path().join("empty.jsonl");
    for args in [
        &["verify", "--key", &key][..],
        &[
            "ledger",
            "export",
            "--out",
            out_file.to_str().expect("utf-8"),
        ],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .env("SEALGATE_DATA_DIR", &empty)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("not a sealgate ledger"),
            "{args:?}: {stderr}"
        );
        let len = std::fs::metadata(empty.join("ledger.db"))
            .expect("ledger.db")
            .len();
        assert_eq!(len, 0, "{args:?} wrote to the file");
    }

    // A reader that went away (`sealgate verify | head -0`): an error, not a panic.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .args(["verify", "--key", &key])
        .env("SEALGATE_DATA_DIR", &dir)
        .stdout(writer)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("writing to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A TLS-terminating proxy on loopback in front of `upstream` (host:port), with a
/// self-signed certificate for localhost and 127.0.0.1: its address and the
/// certificate's PEM.
async fn tls_proxy(upstream: String) -> (std::net::SocketAddr, String) {
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let at = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (at, cert.pem())
}

/// Behind a TLS proxy, as a server reached over another network would be: keys and
/// verify speak https to it, trusting what SSL_CERT_FILE names, and refuse a
/// certificate nothing vouches for (no token is sent to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_verify_speak_https_to_a_server_behind_a_tls_proxy() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("tls");
    let server = start(&dir).await;
    let upstream = server
        .base
        .strip_prefix("http://")
        .expect("http base")
        .to_owned();
    let (proxy, pem) = tls_proxy(upstream).await;
    let ca = root.path().join("proxy.pem");
    std::fs::write(&ca, pem).expect("write certificate");
    let admin_file = dir.join("admin-token");

    for https in [
        format!("https://localhost:{}", proxy.port()),
        format!("https://127.0.0.1:{}/", proxy.port()),
    ] {
        let out = Command::new(BIN)
            .args(["keys", "create", "--role", "auditor", "--server", &https])
            .arg("--token-file")
            .arg(&admin_file)
            .env("SSL_CERT_FILE", &ca)
            .env_remove("SEALGATE_TOKEN")
            .output()
            .expect("keys create");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{https}: {stderr}");
        let auditor: Value = serde_json::from_slice(&out.stdout).expect("key JSON");
        tokio::time::sleep(Duration::from_millis(200)).await;

        let key = ledger_key(&server.base).await;
        let out = Command::new(BIN)
            .args(["verify", "--server", &https, "--key", key.trim()])
            .env("SSL_CERT_FILE", &ca)
            .env("SEALGATE_TOKEN", auditor["token"].as_str().expect("token"))
            .output()
            .expect("verify");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{https}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A certificate that does not vouch for the proxy's.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("certificate")
        .cert
        .pem();
    let stranger = root.path().join("stranger.pem");
    std::fs::write(&stranger, other).expect("write");
    let out = Command::new(BIN)
        .args(["keys", "create", "--role", "agent", "--server"])
        .arg(format!("https://localhost:{}", proxy.port()))
        .arg("--token-file")
        .arg(&admin_file)
        .env("SSL_CERT_FILE", &stranger)
        .env_remove("SEALGATE_TOKEN")
        .output()
        .expect("keys create");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TLS with localhost"), "{stderr}");
    assert!(
        stderr.contains("certificate") || stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}

/// A stand-in for a server on loopback: answers each request (on keep-alive
/// connections) with what `answer` gives for its path, or never when it gives None.
async fn fake_server<F>(answer: F) -> String
where
    F: Fn(&str) -> Option<(u16, Vec<u8>)> + Send + Sync + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                        pending.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        let Some((status, body)) = answer(&path) else {
                            std::future::pending::<()>().await;
                            return;
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).await.is_err()
                            || stream.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    base
}

/// An entry bundle of `entries` (C2SP tlog-tiles: each entry after its 2-byte length).
fn bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&u16::try_from(e.len()).expect("short").to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// `verify --server` against a server that contradicts its own signed checkpoint
/// (tampering, exit 1), fails a request (exit 1), answers too much or nothing at all
/// (exit 2, in bounded time and memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_server_names_a_lying_failing_or_silent_server() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ledger");
    let key = build_ledger(&dir, 4).await;
    // The real log's checkpoint and entries, read from a server on the same data.
    let server = start(&dir).await;
    let admin = std::fs::read_to_string(dir.join("admin-token")).expect("admin token");
    let get = |path: String| {
        let (url, token) = (server.url(&path), admin.trim().to_owned());
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 200, "{path}");
            r.bytes().await.expect("body").to_vec()
        }
    };
    let note = get("/v1/ledger/tlog/checkpoint".into()).await;
    let size: usize = String::from_utf8_lossy(&note)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size");
    assert!((2..256).contains(&size), "{size}");
    let tile = format!("tile/entries/000.p/{size}");
    let real = get(format!("/v1/ledger/tlog/{tile}")).await;
    let mut entries = Vec::new();
    let mut at = 0;
    while at < real.len() {
        let len = usize::from(u16::from_be_bytes([real[at], real[at + 1]]));
        entries.push(real[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    assert_eq!(entries.len(), size);
    drop(server);

    let run = |base: String| {
        let key = key.clone();
        async move {
            let mut child = Command::new(BIN)
                .args(["verify", "--server", &base, "--key", &key])
                .env("SEALGATE_TOKEN", "auditor-token")
                .env("SEALGATE_HTTP_TIMEOUT_SECS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("verify");
            for _ in 0..600 {
                if child.try_wait().expect("wait").is_some() {
                    let out = child.wait_with_output().expect("output");
                    let text = String::from_utf8_lossy(&out.stderr).into_owned();
                    return (out.status.code().expect("exit code"), text);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            panic!("verify --server {base} did not give up");
        }
    };
    let serve = |bundle_answer: Option<(u16, Vec<u8>)>| {
        let note = note.clone();
        let tile = tile.clone();
        fake_server(move |path| {
            if path == "/v1/ledger/tlog/checkpoint" {
                Some((200, note.clone()))
            } else if path == format!("/v1/ledger/tlog/{tile}") {
                bundle_answer.clone()
            } else {
                Some((404, Vec::new()))
            }
        })
    };

    // The faithful copy verifies: the fake serves what the log signed.
    let (code, text) = run(serve(Some((200, real.clone()))).await).await;
    assert_eq!(code, 0, "{text}");

    let short = bundle(&entries[..size - 1]);
    let (code, text) = run(serve(Some((200, short))).await).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("TAMPERING") && text.contains(&tile), "{text}");
    assert!(text.contains("where the signed checkpoint"), "{text}");

    let (code, text) = run(serve(Some((200, vec![0, 9, b'{']))).await).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("not an entry bundle") && text.contains(&tile),
        "{text}"
    );

    let (code, text) = run(serve(Some((500, b"boom".to_vec()))).await).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("answered 500") && !text.contains("TAMPERING"),
        "{text}"
    );

    let (code, text) = run(serve(None).await).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no answer") && text.contains(&tile), "{text}");

    let huge = fake_server(|_| Some((200, vec![b'a'; 20 << 20]))).await;
    let (code, text) = run(huge).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("the answer is over"), "{text}");
}

/// The seal rows the server decides redemptions by: a redemption row deleted (the
/// seal could be used again) or a seal row deleted is caught by the spot check that
/// `verify --sample` and the server's scheduled integrity check share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_catches_seal_rows_deleted_behind_the_servers_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let pristine = root.path().join("ledger");
    let key = build_ledger(&pristine, 6).await;
    let all = ["--sample", "1000"];
    let (code, text) = verify_with(&pristine, &key, &all);
    assert_eq!(code, 0, "{text}");

    let (dir, conn) = tampered_copy(&pristine, "no-redemption");
    let deleted = conn.execute("DELETE FROM redemptions", []).expect("delete");
    assert_eq!(deleted, 1);
    drop(conn);
    let (code, text) = verify_with(&dir, &key, &all);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("holds no redemption"), "{text}");

    let (dir, conn) = tampered_copy(&pristine, "no-seal");
    let deleted = conn
        .execute(
            "DELETE FROM seals WHERE seal_id IN (SELECT seal_id FROM redemptions)",
            [],
        )
        .expect("delete");
    assert_eq!(deleted, 1);
    drop(conn);
    let (code, text) = verify_with(&dir, &key, &all);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("is not in the seal table"), "{text}");
}

/// Starts a server on the ledger in `dir` again and has an approver approve a decision
/// that policy sent for approval, so the ledger holds a resolution and its seal.
async fn approve_one(dir: &Path) {
    let server = start(dir).await;
    let admin = std::fs::read_to_string(dir.join("admin-token"))
        .expect("admin token")
        .trim()
        .to_owned();
    let token = |v: Value| v["token"].as_str().expect("token").to_owned();
    let agent = token(post(&server.base, "/v1/keys", &admin, json!({"role": "agent"})).await);
    let approver = token(
        post(
            &server.base,
            "/v1/keys",
            &admin,
            json!({"role": "approver"}),
        )
        .await,
    );
    let d = post(
        &server.base,
        "/v1/manifest/validate",
        &agent,
        json!({"manifest": {"agent_id": "drill", "org_id": "acme", "provider": "stripe", "method": "payment",
                            "parameters": {"amount": 120}, "environment": "production",
                            "confidence_score": 0.3}}),
    )
    .await;
    assert_eq!(d["status"], json!("pending_approval"), "{d}");
    let id = d["decision_id"].as_str().expect("decision_id");
    let a = post(
        &server.base,
        &format!("/v1/approvals/{id}/approve"),
        &approver,
        json!({"reason": "called the customer"}),
    )
    .await;
    assert_eq!(a["approved"], json!(true), "{a}");
    tokio::time::sleep(Duration::from_millis(300)).await; // a checkpoint covers everything
}

/// Edits a copy of the ledger; names the table and the entry verify must report.
type Drill = fn(&Connection) -> (&'static str, i64);

/// The first column of the first row `sql` selects.
fn at(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("index")
}

/// The rows the server decides by (is this seal spent, was this decision answered,
/// which policy is active) changed with the ledger left alone: the full check holds
/// every row to the entries, on one thread and on two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_holds_the_deciding_tables_to_the_ledger() {
    let root = tempfile::tempdir().expect("tempdir");
    let pristine = root.path().join("ledger");
    let key = build_ledger(&pristine, 6).await;
    approve_one(&pristine).await;
    let (code, text) = verify(&pristine, &key);
    assert_eq!(code, 0, "{text}");
    let summary: Value = serde_json::from_str(&text).expect("summary");
    assert_eq!(
        summary["tables"],
        json!({"seals": summary["seals"], "redemptions": 1, "resolutions": 1, "policy_activations": 1, "policies": 1}),
        "{text}"
    );

    // Each drill: what it does to the copy, then what verify must name.
    // `(name, tamper)`; `tamper` edits the copy and says which table and entry.
    let drills: [(&str, Drill); 9] = [
        ("redemption-deleted", |c| {
            let i = at(c, "SELECT idx FROM redemptions");
            c.execute("DELETE FROM redemptions", []).expect("delete");
            ("the redemptions table", i)
        }),
        ("resolution-deleted", |c| {
            let i = at(c, "SELECT idx FROM resolutions");
            c.execute("DELETE FROM resolutions", []).expect("delete");
            ("the resolutions table", i)
        }),
        ("resolution-refused", |c| {
            let i = at(c, "SELECT idx FROM resolutions");
            c.execute(
                "UPDATE resolutions SET approved = 0, seal_id = NULL, expires_at = NULL",
                [],
            )
            .expect("update");
            ("the resolutions table", i)
        }),
        ("seal-moved", |c| {
            let i = at(c, "SELECT MIN(idx) FROM seals");
            c.execute(
                "UPDATE seals SET decision_idx = decision_idx + 1 WHERE idx = ?1",
                [i],
            )
            .expect("update");
            ("the seals table", i)
        }),
        ("seal-forged", |c| {
            let i = at(c, "SELECT MIN(idx) FROM decisions WHERE status = 'denied'");
            c.execute(
                "INSERT INTO seals (seal_id, idx, decision_idx, expires_at) VALUES ('seal_forged', ?1, ?1, '2099-01-01T00:00:00Z')",
                [i],
            )
            .expect("insert");
            ("the seals table", i)
        }),
        ("policy-forged", |c| {
            let i = at(c, "SELECT MIN(idx) FROM decisions");
            c.execute(
                "INSERT INTO policy_activations (idx, version) VALUES (?1, 'forged')",
                [i],
            )
            .expect("insert");
            ("the policy_activations table", i)
        }),
        // The server takes the activation of the highest index: one far beyond the
        // ledger's end, naming a stored bundle, would put that policy in charge.
        ("policy-beyond-the-end", |c| {
            let i: i64 = 9_000_000_000_000_000_000;
            c.execute(
                "INSERT INTO policy_activations (idx, version) SELECT ?1, version FROM policies",
                [i],
            )
            .expect("insert");
            ("the policy_activations table", i)
        }),
        // The approver a resolution names may fetch its seal again.
        ("resolution-approver", |c| {
            let i = at(c, "SELECT idx FROM resolutions");
            c.execute("UPDATE resolutions SET approver = 'key_someone_else'", [])
                .expect("update");
            ("the resolutions table", i)
        }),
        ("policy-bundle-deleted", |c| {
            let i = at(c, "SELECT MIN(idx) FROM policy_activations");
            c.execute("DELETE FROM policies", []).expect("delete");
            ("the policies table", i)
        }),
    ];
    for (name, drill) in drills {
        let (dir, conn) = tampered_copy(&pristine, name);
        let (table, index) = drill(&conn);
        drop(conn);
        let named = format!("{table}, at entry {index}:");
        for threads in [&[][..], &["--one-thread"][..]] {
            let (code, text) = verify_with(&dir, &key, threads);
            assert_eq!(code, 1, "{name} {threads:?}: {text}");
            assert!(
                text.contains(&named),
                "{name} {threads:?}: {named:?} in {text}"
            );
            assert!(text.contains("behind the server's back"), "{name}: {text}");
        }
    }

    // A value of a type sealgate never writes there is tampering too, named by table
    // and column: a seal id as bytes, and a seal whose entry index is text (which no
    // integer bound would select, while the server finds the seal by its id).
    let (dir, conn) = tampered_copy(&pristine, "seal-id-blob");
    conn.execute("UPDATE redemptions SET seal_id = x'00'", [])
        .expect("update");
    drop(conn);
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the redemptions table: a row's seal_id holds a value of type Blob"),
        "{text}"
    );
    let (dir, conn) = tampered_copy(&pristine, "seal-idx-text");
    conn.execute(
        "INSERT INTO seals (seal_id, idx, decision_idx, expires_at) VALUES ('seal_forged', 'x', 1, '2099-01-01T00:00:00Z')",
        [],
    )
    .expect("insert");
    drop(conn);
    let (code, text) = verify(&dir, &key);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the seals table: a row's idx holds a value of type Text"),
        "{text}"
    );
}
