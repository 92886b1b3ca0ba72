//! Point 2: keys per role from POST /v1/keys and from `sealgate keys create`.

use serde_json::{json, Value};

use crate::support::{manifest, Server, BIN};

#[tokio::test]
async fn admin_creates_agent_and_executor_keys_that_work() {
    let server = Server::start().await;
    for role in ["agent", "executor"] {
        let r = server
            .post(
                "/v1/keys",
                Some(&server.admin_token),
                &json!({"role": role, "name": format!("{role} one")}),
            )
            .await
            .expect(201);
        let obj = r.json.as_object().expect("object");
        let mut fields: Vec<_> = obj.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["id", "name", "role", "token"], "{}", r.text);
        assert_eq!(r.json["role"], json!(role));
        assert_eq!(r.json["name"], json!(format!("{role} one")));
        assert!(r.json["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(r.json["token"].as_str().is_some_and(|s| s.len() >= 32));
    }
    // Without a name the key still gets one.
    let r = server
        .post(
            "/v1/keys",
            Some(&server.admin_token),
            &json!({"role": "agent"}),
        )
        .await
        .expect(201);
    assert!(
        r.json["name"].as_str().is_some_and(|s| !s.is_empty()),
        "{}",
        r.text
    );

    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    assert_ne!(agent.token, executor.token);
    let decision = server
        .approved(&agent, &manifest("agent-keys", "payment", 1000))
        .await;
    let verified = server
        .verify(&executor, decision["seal"].as_str().unwrap())
        .await;
    assert_eq!(verified["valid"], json!(true), "{verified}");

    // An unknown role is refused, naming the field.
    let r = server
        .post(
            "/v1/keys",
            Some(&server.admin_token),
            &json!({"role": "root"}),
        )
        .await
        .expect_problem(400);
    assert_eq!(r.json["field"], json!("/role"), "{}", r.text);
}

#[tokio::test]
async fn cli_keys_create_prints_a_working_agent_token() {
    let server = Server::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["keys", "create", "--role", "agent", "--server"])
        .arg(&server.base)
        .env("SEALGATE_TOKEN", &server.admin_token)
        .env_remove("SEALGATE_SERVER")
        .current_dir(cwd.path())
        .output()
        .await
        .expect("run sealgate keys create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keys create failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let created: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("keys create printed no JSON ({e}): {stdout}"));
    assert_eq!(created["role"], json!("agent"), "{created}");
    assert!(created["id"].is_string(), "{created}");
    assert!(created["name"].is_string(), "{created}");
    let token = created["token"].as_str().expect("token").to_owned();

    let r = server
        .post(
            "/v1/manifest/validate",
            Some(&token),
            &json!({"manifest": manifest("agent-cli", "payment", 1000)}),
        )
        .await
        .expect(200);
    assert_eq!(r.json["approved"], json!(true), "{}", r.text);
}

/// A token file that others can read is used, with a warning that names the file and
/// the ways out (secret volumes are often 0644 and read-only), and never the token.
#[tokio::test]
async fn cli_warns_of_a_token_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, &server.admin_token).unwrap();
    let create = |file: &std::path::Path| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["keys", "create", "--role", "agent", "--server"])
            .arg(&server.base)
            .arg("--token-file")
            .arg(file)
            .env_remove("SEALGATE_TOKEN")
            .env_remove("SEALGATE_SERVER");
        cmd
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = create(&file).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for part in ["warning", "chmod 600", "SEALGATE_TOKEN"] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(
        !stderr.contains(&server.admin_token),
        "the token leaked: {stderr}"
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = create(&file).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // An empty file is a usage error, said before anything is sent.
    std::fs::write(&file, "\n").unwrap();
    let out = create(&file).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");
}

/// `keys revoke` sends the id as a path segment: an id with `?` or `#` would revoke a
/// different key than the one it names, so anything but a key id is refused unsent.
#[tokio::test]
async fn cli_keys_revoke_refuses_what_is_not_a_key_id() {
    let server = Server::start().await;
    let cli = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["keys"])
            .args(args)
            .arg("--server")
            .arg(&server.base)
            .env("SEALGATE_TOKEN", &server.admin_token)
            .env_remove("SEALGATE_SERVER");
        cmd
    };
    let out = cli(&["create", "--role", "agent"])
        .output()
        .await
        .expect("create");
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (id, token) = (
        created["id"].as_str().expect("id"),
        created["token"].as_str().expect("token"),
    );
    for bad in [
        format!("{id}?other"),
        format!("{id}#x"),
        format!("{id}/x"),
        "a b".into(),
        String::new(),
    ] {
        let out = cli(&["revoke", &bad]).output().await.expect("revoke");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("is not a key id"), "{bad:?}: {stderr}");
    }
    // The key named before the `?` still works.
    server
        .post(
            "/v1/manifest/validate",
            Some(token),
            &json!({"manifest": manifest("agent-cli", "payment", 1000)}),
        )
        .await
        .expect(200);
    let out = cli(&["revoke", id]).output().await.expect("revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A well-formed id the server does not know: the request fails (exit 1).
    let out = cli(&["revoke", "key_0000"]).output().await.expect("revoke");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server answered 404"), "{stderr}");
}

/// The last live admin key cannot be revoked (nothing could create or revoke a key
/// after it): 409 saying why, and the key keeps working. Any other admin key can go.
#[tokio::test]
async fn the_last_admin_key_is_not_revoked() {
    let server = Server::start().await;
    let log = server.log();
    let bootstrap_id = log
        .lines()
        .find(|l| l.contains("bootstrap admin token written"))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["fields"]["key_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no bootstrap key id in the log:\n{log}"));
    let second = server.create_key("admin").await;

    server
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{bootstrap_id}"),
            Some(&second.token),
            None,
        )
        .await
        .expect(204);
    let r = server
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{}", second.id),
            Some(&second.token),
            None,
        )
        .await
        .expect_problem(409);
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("last live admin key")),
        "{}",
        r.text
    );
    // Still an admin: it creates keys, and the revoked bootstrap token does not.
    server
        .post("/v1/keys", Some(&second.token), &json!({"role": "agent"}))
        .await
        .expect(201);
    server
        .post(
            "/v1/keys",
            Some(&server.admin_token),
            &json!({"role": "agent"}),
        )
        .await
        .expect_problem(401);
}
